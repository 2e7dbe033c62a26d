
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * An identity provider's reply to token introspection (RFC 7662):
 * ngx_http_grpc_guard_introspect_reply, the check that runs once per
 * reply, then ngx_http_grpc_guard_jwt_claims_ctx, which makes the kept
 * result the claims of every call with that token.
 *
 * Input: one byte of settings (bits 0-2: the HTTP status, 200 unless all
 * zero; bits 3-7: cache and negative_cache), then the reply's body.
 *
 * Properties: only a 200 reply can be an answer; an answer is a JSON
 * object (duplicates refused) whose "active" is a boolean and whose
 * registered members have their types ("exp", "nbf", "iat" numbers; "iss",
 * "sub", "client_id", "scope", "username", "token_type", "jti" strings,
 * "sub" and "client_id" without control characters; "aud" a string or an
 * array of strings); an inactive answer keeps {"active":false} for
 * negative_cache, an active one keeps the reply itself for at most cache,
 * and for nothing once "exp" has passed; what is kept always makes claims
 * whose "active" is that boolean; everything is freed with the pool.
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

static ngx_uint_t ngx_fuzz_introspection_typed(json_t *reply);
static ngx_uint_t ngx_fuzz_introspection_control(json_t *v);
static void ngx_fuzz_introspection_json(ngx_uint_t pooled);


static ngx_str_t  ngx_fuzz_introspection_token = ngx_string("opaque-token");


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();
    ngx_fuzz_introspection_json(1);

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                              *json, *active, *v;
    ngx_int_t                            rc;
    ngx_msec_t                           cache, negative;
    ngx_pool_t                          *pool;
    json_error_t                         error;
    ngx_http_grpc_guard_jwt_ctx_t       *jctx;
    ngx_http_grpc_guard_introspect_t    *ic;
    ngx_http_grpc_guard_remote_reply_t   reply;

    if (size == 0) {
        return 0;
    }

    pool = ngx_fuzz_pool();

    cache = (ngx_msec_t) (data[0] >> 3 & 0x03) * 150000;
    negative = (ngx_msec_t) (data[0] >> 5) * 5000;

    ic = ngx_http_grpc_guard_introspect_create(pool, cache, negative);
    if (ic == NULL) {
        abort();
    }

    ngx_memzero(&reply, sizeof(ngx_http_grpc_guard_remote_reply_t));

    reply.log = ngx_fuzz_log();
    reply.pool = pool;
    reply.status = (data[0] & 0x07) ? NGX_HTTP_OK : 503;
    reply.body.len = size - 1;
    reply.body.data = ngx_fuzz_dup(pool, data + 1, size - 1);
    reply.result = reply.body;
    reply.valid = 0;

    rc = ngx_http_grpc_guard_introspect_reply(&reply, ic);

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    /* the same text, parsed apart with jansson's own allocator */

    ngx_fuzz_introspection_json(0);

    json = json_loadb((char *) reply.body.data, reply.body.len,
                      JSON_REJECT_DUPLICATES, &error);

    ngx_fuzz_introspection_json(1);

    if (rc == NGX_DECLINED) {
        goto done;
    }

    ngx_fuzz_assert(reply.status == NGX_HTTP_OK);
    ngx_fuzz_assert(json != NULL && json_is_object(json));
    ngx_fuzz_assert(ngx_fuzz_introspection_typed(json));

    active = json_object_get(json, "active");

    if (json_is_false(active)) {
        ngx_fuzz_assert(reply.valid == negative);
        ngx_fuzz_assert(reply.result.len == sizeof("{\"active\":false}") - 1
                        && ngx_memcmp(reply.result.data, "{\"active\":false}",
                                      reply.result.len)
                           == 0);

    } else {
        ngx_fuzz_assert(reply.valid <= cache);
        ngx_fuzz_assert(reply.result.data == reply.body.data
                        && reply.result.len == reply.body.len);

        v = json_object_get(json, "exp");

        if (v && json_number_value(v) <= (double) ngx_time()) {
            ngx_fuzz_assert(reply.valid == 0);
        }
    }

    /* what is kept makes the claims of the calls */

    jctx = ngx_http_grpc_guard_jwt_claims_ctx(pool,
                                              &ngx_fuzz_introspection_token,
                                              &reply.result);

    ngx_fuzz_assert(jctx != NULL);
    ngx_fuzz_assert(json_is_true(json_object_get(jctx->payload, "active"))
                    == json_is_true(active));

done:

    if (json) {
        ngx_fuzz_introspection_json(0);
        json_decref(json);
        ngx_fuzz_introspection_json(1);
    }

    ngx_destroy_pool(pool);

    return 0;
}


static ngx_uint_t
ngx_fuzz_introspection_typed(json_t *reply)
{
    size_t       i;
    json_t      *v, *e;
    const char  *key;

    /* every member of RFC 7662 and RFC 7519 the guard reads, by its name */

    if (!json_is_boolean(json_object_get(reply, "active"))) {
        return 0;
    }

    json_object_foreach(reply, key, v) {

        if (strcmp(key, "exp") == 0 || strcmp(key, "nbf") == 0
            || strcmp(key, "iat") == 0)
        {
            if (json_typeof(v) != JSON_INTEGER && json_typeof(v) != JSON_REAL)
            {
                return 0;
            }

        } else if (strcmp(key, "sub") == 0
                   || strcmp(key, "client_id") == 0)
        {
            if (json_typeof(v) != JSON_STRING
                || ngx_fuzz_introspection_control(v))
            {
                return 0;
            }

        } else if (strcmp(key, "iss") == 0 || strcmp(key, "scope") == 0
                   || strcmp(key, "username") == 0
                   || strcmp(key, "token_type") == 0
                   || strcmp(key, "jti") == 0)
        {
            if (json_typeof(v) != JSON_STRING) {
                return 0;
            }

        } else if (strcmp(key, "aud") == 0) {

            if (json_typeof(v) == JSON_ARRAY) {
                json_array_foreach(v, i, e) {
                    if (json_typeof(e) != JSON_STRING) {
                        return 0;
                    }
                }

            } else if (json_typeof(v) != JSON_STRING) {
                return 0;
            }
        }
    }

    return 1;
}


static ngx_uint_t
ngx_fuzz_introspection_control(json_t *v)
{
    const char  *s, *last;

    s = json_string_value(v);
    last = s + json_string_length(v);

    while (s < last) {
        if ((u_char) *s < 0x20 || (u_char) *s == 0x7f) {
            return 1;
        }

        s++;
    }

    return 0;
}


static void
ngx_fuzz_introspection_json(ngx_uint_t pooled)
{
    /* the module's allocator (pools), or jansson's own for a parse apart */

    if (pooled) {
        json_set_alloc_funcs(ngx_http_grpc_guard_jwt_json_alloc,
                             ngx_http_grpc_guard_jwt_json_free);

    } else {
        json_set_alloc_funcs(malloc, free);
    }
}
