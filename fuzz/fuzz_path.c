
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The raw :path grammar: ngx_http_grpc_guard_parse_path.
 *
 * Input: the path as the client sent it.
 *
 * Properties: the path is accepted exactly when a grammar written here
 * apart accepts it ("/" service "/" method, the service made of
 * dot-separated labels); an accepted path is its own normalised form:
 * no "//", no "." or ".." segment, no "%", no "?", nothing that nginx's
 * URI normalisation would change; the service and method are its parts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ngx_uint_t ngx_fuzz_path_word(u_char *p, u_char *last);
static ngx_uint_t ngx_fuzz_path_grammar(u_char *p, size_t len);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                     *s;
    size_t                      i;
    ngx_int_t                   rc;
    ngx_str_t                   path;
    ngx_pool_t                 *pool;
    ngx_http_grpc_guard_ctx_t   ctx;

    pool = ngx_fuzz_pool();

    path.len = size;
    path.data = ngx_fuzz_dup(pool, data, size);

    ngx_memzero(&ctx, sizeof(ngx_http_grpc_guard_ctx_t));

    rc = ngx_http_grpc_guard_parse_path(&ctx, &path);

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_ERROR);
    ngx_fuzz_assert((rc == NGX_OK) == ngx_fuzz_path_grammar(path.data,
                                                            path.len));

    if (rc != NGX_OK) {
        ngx_fuzz_assert(!ctx.call.canonical);
        goto done;
    }

    ngx_fuzz_assert(ctx.call.canonical);
    ngx_fuzz_assert(ctx.call.method.data == path.data);
    ngx_fuzz_assert(ctx.call.method.len == path.len);
    ngx_fuzz_assert(ctx.call.service.data == path.data + 1);
    ngx_fuzz_assert(ctx.call.service.len > 0);
    ngx_fuzz_assert(ctx.call.service.len + 3 <= path.len);
    ngx_fuzz_assert(path.data[ctx.call.service.len + 1] == '/');

    /* normalised: what nginx's URI parsing would rewrite is not there */

    s = path.data;

    ngx_fuzz_assert(s[0] == '/' && s[size - 1] != '/');

    for (i = 0; i < size; i++) {
        ngx_fuzz_assert(s[i] != '%' && s[i] != '?' && s[i] != '#'
                        && s[i] != '\\' && s[i] != '\0');
        ngx_fuzz_assert(s[i] > 0x20 && s[i] < 0x7f);

        if (i + 1 < size) {
            ngx_fuzz_assert(!(s[i] == '/' && s[i + 1] == '/'));
        }

        if (s[i] == '/') {
            ngx_fuzz_assert(!(i + 1 < size && s[i + 1] == '.'));
        }
    }

    /* exactly two "/" */

    ngx_fuzz_assert(ngx_strlchr(s + 1, s + size, '/')
                    == s + 1 + ctx.call.service.len);
    ngx_fuzz_assert(ngx_strlchr(s + 2 + ctx.call.service.len, s + size, '/')
                    == NULL);

done:

    ngx_destroy_pool(pool);

    return 0;
}


static ngx_uint_t
ngx_fuzz_path_word(u_char *p, u_char *last)
{
    /* [A-Za-z0-9_-]+ */

    if (p == last) {
        return 0;
    }

    for ( /* void */ ; p < last; p++) {
        if (!isalnum(*p) && *p != '_' && *p != '-') {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
ngx_fuzz_path_grammar(u_char *p, size_t len)
{
    u_char  *last, *slash, *dot, *start;

    /* "/" label ("." label)* "/" word */

    last = p + len;

    if (len == 0 || p[0] != '/') {
        return 0;
    }

    slash = memchr(p + 1, '/', len - 1);

    if (slash == NULL || !ngx_fuzz_path_word(slash + 1, last)) {
        return 0;
    }

    for (start = p + 1; ; start = dot + 1) {
        dot = memchr(start, '.', slash - start);

        if (dot == NULL) {
            return ngx_fuzz_path_word(start, slash);
        }

        if (!ngx_fuzz_path_word(start, dot)) {
            return 0;
        }
    }
}
