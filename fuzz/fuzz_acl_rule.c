
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * ACL rules: grpc_guard_allow / grpc_guard_deny through their directive
 * handler (ngx_http_grpc_guard_acl_rule: method patterns, conditions,
 * CIDRs, globs), the index built by ngx_http_grpc_guard_acl_merge_conf,
 * and a call matched against it by ngx_http_grpc_guard_acl_check.
 *
 * Input, one item per line:
 *   allow|deny ARGS...      a rule (the pattern, then the conditions)
 *   dry_run                 grpc_guard_acl_mode dry_run
 *   --                      then the call, one line each, all optional:
 *       the :path, JWT "sub", "iss", API-key client, its roles (a,b),
 *       SPIFFE ID, URI SANs, DNS SANs, the peer address, and the rest of
 *       the input: the JWT payload (JSON)
 *
 * Properties: a configuration accepted is indexed; a call is allowed
 * (NGX_DECLINED) or refused (NGX_DONE) with 7 or 16 and "deny", the same
 * way every time it is asked; a refusal in dry-run mode is no refusal;
 * every pool and JSON value is freed (LeakSanitizer).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_fuzz_acl_call(ngx_fuzz_conf_t *fc,
    ngx_http_grpc_guard_loc_conf_t *glcf, const u_char *p,
    const u_char *last);
static ngx_str_t *ngx_fuzz_acl_str(ngx_pool_t *pool, ngx_str_t *s);


static ngx_str_t  ngx_fuzz_acl_allow = ngx_string("grpc_guard_allow");
static ngx_str_t  ngx_fuzz_acl_deny = ngx_string("grpc_guard_deny");


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
    const u_char                    *p, *last;
    ngx_str_t                        line, *value;
    ngx_uint_t                       rules;
    ngx_command_t                    cmd;
    ngx_fuzz_conf_t                  fc;
    ngx_http_grpc_guard_loc_conf_t  *glcf, *prev;

    ngx_fuzz_conf(&fc);

    glcf = ngx_pcalloc(fc.pool, sizeof(ngx_http_grpc_guard_loc_conf_t));
    prev = ngx_pcalloc(fc.pool, sizeof(ngx_http_grpc_guard_loc_conf_t));
    if (glcf == NULL || prev == NULL) {
        abort();
    }

    /* as ngx_http_grpc_guard_create_loc_conf() */

    glcf->acl_rules = NGX_CONF_UNSET_PTR;
    glcf->acl_mode = NGX_CONF_UNSET_UINT;
    glcf->log_level = NGX_LOG_INFO;
    prev->acl_rules = NGX_CONF_UNSET_PTR;
    prev->acl_mode = NGX_CONF_UNSET_UINT;

    ngx_memzero(&cmd, sizeof(ngx_command_t));

    p = data;
    last = data + size;
    rules = 0;

    while (ngx_fuzz_next(&p, last, '\n', &line) == NGX_OK) {

        if (line.len == 2 && ngx_strncmp(line.data, "--", 2) == 0) {
            break;
        }

        if (line.len == 7 && ngx_strncmp(line.data, "dry_run", 7) == 0) {
            glcf->acl_mode = NGX_HTTP_GRPC_GUARD_ACL_DRY_RUN;
            continue;
        }

        if (ngx_fuzz_conf_args(&fc, line.data, line.data + line.len)
            != NGX_OK
            || fc.args->nelts < 2)
        {
            continue;
        }

        value = fc.args->elts;

        cmd.name = (value[0].len == 4
                    && ngx_strncmp(value[0].data, "deny", 4) == 0)
                   ? ngx_fuzz_acl_deny : ngx_fuzz_acl_allow;

        value[0] = cmd.name;
        fc.conf_file.line++;

        rv = ngx_http_grpc_guard_acl_rule(&fc.cf, &cmd, glcf);

        if (rv != NGX_CONF_OK) {

            /* nginx stops at the first error */

            ngx_fuzz_assert(rv == NGX_CONF_ERROR);
            goto done;
        }

        rules++;
    }

    rv = ngx_http_grpc_guard_acl_merge_conf(&fc.cf, prev, glcf);

    ngx_fuzz_assert(rv == NGX_CONF_OK);

    if (rules == 0) {
        ngx_fuzz_assert(glcf->acl == NULL && glcf->acl_rules == NULL);
        goto done;
    }

    ngx_fuzz_assert(glcf->acl != NULL);
    ngx_fuzz_assert(glcf->acl_rules->nelts == rules);

    ngx_fuzz_acl_call(&fc, glcf, p, last);

done:

    ngx_fuzz_conf_free(&fc);

    return 0;
}


static void
ngx_fuzz_acl_call(ngx_fuzz_conf_t *fc, ngx_http_grpc_guard_loc_conf_t *glcf,
    const u_char *p, const u_char *last)
{
    u_char                          *q, *comma;
    ngx_int_t                        rc, rc2;
    ngx_str_t                        s[9], *role, rule;
    ngx_uint_t                       i;
    ngx_addr_t                       addr;
    json_error_t                     error;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_grpc_guard_ctx_t        ctx;
    ngx_http_grpc_guard_peer_t       peer;
    ngx_http_grpc_guard_jwt_ctx_t    jctx;
    ngx_http_grpc_guard_api_key_t    key;
    struct sockaddr_in               sin;

    for (i = 0; i < 9; i++) {
        if (ngx_fuzz_next(&p, last, '\n', &s[i]) != NGX_OK) {
            ngx_str_null(&s[i]);
        }

        /* each its own allocation, as long as it is */
        s[i] = *ngx_fuzz_acl_str(fc->temp_pool, &s[i]);
    }

    c = ngx_pcalloc(fc->temp_pool, sizeof(ngx_connection_t));
    r = ngx_pcalloc(fc->temp_pool, sizeof(ngx_http_request_t));
    if (c == NULL || r == NULL) {
        abort();
    }

    c->log = fc->cf.log;
    c->pool = fc->temp_pool;

    ngx_memzero(&sin, sizeof(struct sockaddr_in));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x0a010203);

    c->sockaddr = (struct sockaddr *) &sin;
    c->socklen = sizeof(struct sockaddr_in);

    if (s[8].len
        && ngx_parse_addr(fc->temp_pool, &addr, s[8].data, s[8].len)
           == NGX_OK)
    {
        c->sockaddr = addr.sockaddr;
        c->socklen = addr.socklen;
    }

    r->connection = c;
    r->pool = fc->temp_pool;
    r->main = r;

    ngx_memzero(&ctx, sizeof(ngx_http_grpc_guard_ctx_t));

    ctx.conf = glcf;
    ctx.call.grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
    ctx.call.path = s[0];

    (void) ngx_http_grpc_guard_parse_path(&ctx, &s[0]);

    /* a verified token: its payload is read for claim: and role= */

    ngx_memzero(&jctx, sizeof(ngx_http_grpc_guard_jwt_ctx_t));

    if (s[1].len || s[2].len || p < last) {
        jctx.parsed = 1;
        jctx.header = json_object();
        jctx.payload = NULL;

        if (p < last) {
            jctx.payload = json_loadb((const char *) p, last - p,
                                      JSON_REJECT_DUPLICATES, &error);

            if (jctx.payload && !json_is_object(jctx.payload)) {
                json_decref(jctx.payload);
                jctx.payload = NULL;
            }
        }

        if (jctx.payload == NULL) {
            jctx.payload = json_object();
        }

        if (jctx.header == NULL || jctx.payload == NULL) {
            abort();
        }

        jctx.sub = s[1];
        jctx.iss = s[2];

        ctx.call.jwt = &jctx;
        ctx.call.sub = s[1];
        ctx.call.iss = s[2];
        ctx.call.auth |= NGX_HTTP_GRPC_GUARD_AUTH_JWT;
    }

    if (s[3].len) {
        ngx_memzero(&key, sizeof(ngx_http_grpc_guard_api_key_t));

        key.client = s[3];

        if (s[4].len) {
            key.roles = ngx_array_create(fc->temp_pool, 2, sizeof(ngx_str_t));
            if (key.roles == NULL) {
                abort();
            }

            for (q = s[4].data; q < s[4].data + s[4].len; q = comma + 1) {
                comma = ngx_strlchr(q, s[4].data + s[4].len, ',');
                if (comma == NULL) {
                    comma = s[4].data + s[4].len;
                }

                role = ngx_array_push(key.roles);
                if (role == NULL) {
                    abort();
                }

                role->data = q;
                role->len = comma - q;
            }
        }

        ctx.call.api_key = &key;
        ctx.call.client = s[3];
        ctx.call.auth |= NGX_HTTP_GRPC_GUARD_AUTH_API_KEY;
    }

    if (s[5].len || s[6].len || s[7].len) {
        ngx_memzero(&peer, sizeof(ngx_http_grpc_guard_peer_t));

        peer.spiffe_id = s[5];
        peer.uri_san = s[6];
        peer.dns_san = s[7];
        peer.present = 1;
        peer.verified = 1;

        ctx.call.peer = &peer;
        ctx.call.spiffe = s[5];
        ctx.call.auth |= NGX_HTTP_GRPC_GUARD_AUTH_MTLS;
    }

    rc = ngx_http_grpc_guard_acl_check(r, glcf, &ctx);

    ngx_fuzz_assert(rc == NGX_DECLINED || rc == NGX_DONE);

    if (!ctx.call.canonical) {
        ngx_fuzz_assert(rc == NGX_DECLINED && ctx.call.rule.len == 0);
        goto done;
    }

    if (rc == NGX_DONE) {
        ngx_fuzz_assert(glcf->acl_mode != NGX_HTTP_GRPC_GUARD_ACL_DRY_RUN);
        ngx_fuzz_assert(ctx.call.grpc_status
                        == NGX_HTTP_GRPC_GUARD_PERMISSION_DENIED
                        || ctx.call.grpc_status
                           == NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED);
        ngx_fuzz_assert(ctx.call.decision.len == 4
                        && ngx_strncmp(ctx.call.decision.data, "deny", 4)
                           == 0);

        if (ctx.call.grpc_status == NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED) {
            ngx_fuzz_assert(ctx.call.auth == 0);
        }
    }

    /* the same answer when asked again */

    rule = ctx.call.rule;
    ctx.call.grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
    ngx_str_null(&ctx.call.decision);

    rc2 = ngx_http_grpc_guard_acl_check(r, glcf, &ctx);

    ngx_fuzz_assert(rc2 == rc);
    ngx_fuzz_assert(rule.len == ctx.call.rule.len && rule.data
                    == ctx.call.rule.data);

done:

    if (ctx.call.jwt) {
        json_decref(jctx.header);
        json_decref(jctx.payload);
    }
}


static ngx_str_t *
ngx_fuzz_acl_str(ngx_pool_t *pool, ngx_str_t *s)
{
    ngx_str_t  *d;

    d = ngx_palloc(pool, sizeof(ngx_str_t));
    if (d == NULL) {
        abort();
    }

    d->len = s->len;
    d->data = ngx_fuzz_dup(pool, s->data, s->len);

    return d;
}
