
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Key files of grpc_guard_jwt_key_file: a JWK or a JWK Set
 * (ngx_http_grpc_guard_jwt_load_jwks), or PEM blocks
 * (ngx_http_grpc_guard_jwt_load_pem), chosen as the directive chooses;
 * and a JWK Set fetched from an identity provider
 * (grpc_guard_jwt_key_request: the same loader, keys it refuses skipped).
 *
 * Input: the content of the file, or the reply.
 *
 * Properties: every key loaded can verify something, with exactly one of
 * a public key or a secret; a public key is ready for each algorithm it
 * may verify (EdDSA apart); a "kid" has 1 to 256 bytes; a fetched set
 * never gives a secret ("oct") key; everything is freed with the pools
 * (LeakSanitizer).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/err.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void ngx_fuzz_jwks_check(ngx_array_t *keys, ngx_uint_t remote);


static ngx_str_t  ngx_fuzz_jwks_file = ngx_string("/fuzz/keys.jwks");
static ngx_str_t  ngx_fuzz_jwks_uri = ngx_string("/_jwks");


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    json_set_alloc_funcs(ngx_http_grpc_guard_jwt_json_alloc,
                         ngx_http_grpc_guard_jwt_json_free);

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                            *rv;
    u_char                          *p, *last;
    ngx_str_t                        content;
    ngx_fuzz_conf_t                  fc;
    ngx_http_grpc_guard_jwt_load_t   ld;

    ngx_fuzz_conf(&fc);

    content.len = size;
    content.data = ngx_fuzz_dup(fc.temp_pool, data, size);

    ngx_memzero(&ld, sizeof(ngx_http_grpc_guard_jwt_load_t));

    ld.cf = &fc.cf;
    ld.pool = fc.pool;
    ld.temp_pool = fc.temp_pool;
    ld.log = fc.cf.log;
    ld.file = &ngx_fuzz_jwks_file;
    ld.keys = ngx_array_create(fc.pool, 4,
                               sizeof(ngx_http_grpc_guard_jwt_key_t));
    if (ld.keys == NULL) {
        abort();
    }

    /* as ngx_http_grpc_guard_jwt_key_file() tells the formats apart */

    p = content.data;
    last = p + content.len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == CR || *p == LF)) {
        p++;
    }

    if (p < last && *p == '{') {
        rv = ngx_http_grpc_guard_jwt_load_jwks(&ld, &content);

    } else if (ngx_strlcasestrn(p, last, (u_char *) "-----BEGIN ", 11 - 1)
               != NULL)
    {
        rv = ngx_http_grpc_guard_jwt_load_pem(&ld, &content);

    } else {
        rv = NGX_CONF_ERROR;
    }

    ngx_fuzz_jwks_check(ld.keys, 0);

    if (rv != NGX_CONF_OK) {
        ngx_fuzz_assert(rv == NGX_CONF_ERROR);
    }

    /* the same text as a set fetched from an identity provider */

    if (p < last && *p == '{') {
        ngx_memzero(&ld, sizeof(ngx_http_grpc_guard_jwt_load_t));

        ld.pool = fc.pool;
        ld.temp_pool = fc.temp_pool;
        ld.log = fc.cf.log;
        ld.file = &ngx_fuzz_jwks_uri;
        ld.remote = 1;
        ld.quiet = size & 1;
        ld.keys = ngx_array_create(fc.pool, 4,
                                   sizeof(ngx_http_grpc_guard_jwt_key_t));
        if (ld.keys == NULL) {
            abort();
        }

        rv = ngx_http_grpc_guard_jwt_load_jwks(&ld, &content);

        ngx_fuzz_assert(rv == NGX_CONF_OK || rv == NGX_CONF_ERROR);

        ngx_fuzz_jwks_check(ld.keys, 1);
    }

    /* what a refused file leaves in OpenSSL's queue is not for the next */
    ERR_clear_error();

    ngx_fuzz_conf_free(&fc);

    return 0;
}


static void
ngx_fuzz_jwks_check(ngx_array_t *keys, ngx_uint_t remote)
{
    ngx_uint_t                       i, a;
    ngx_http_grpc_guard_jwt_key_t   *key;
    ngx_http_grpc_guard_jwt_alg_t   *alg;

    key = keys->elts;

    for (i = 0; i < keys->nelts; i++) {
        ngx_fuzz_assert(key[i].algs != 0);
        ngx_fuzz_assert((key[i].pkey == NULL) != (key[i].secret == NULL));
        ngx_fuzz_assert(key[i].kid.len <= NGX_HTTP_GRPC_GUARD_JWT_MAX_KID);

        if (key[i].secret) {
            ngx_fuzz_assert(!remote);
            ngx_fuzz_assert(key[i].secret_len >= 32);
            ngx_fuzz_assert(!(key[i].algs & ~NGX_HTTP_GRPC_GUARD_JWT_HMAC));
            continue;
        }

        ngx_fuzz_assert(!(key[i].algs & NGX_HTTP_GRPC_GUARD_JWT_HMAC));

        for (a = 0; a < NGX_HTTP_GRPC_GUARD_JWT_NALGS; a++) {
            alg = &ngx_http_grpc_guard_jwt_algs[a];

            if ((key[i].algs & alg->mask)
                && alg->kind != NGX_HTTP_GRPC_GUARD_JWT_KIND_EDDSA)
            {
                ngx_fuzz_assert(key[i].verify[a] != NULL);
            }
        }
    }
}
