
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * A policy engine's reply (OPA's REST Data API):
 * ngx_http_grpc_guard_authz_reply.
 *
 * Input: the body of a 2xx reply.
 *
 * Properties: a body that is not one JSON object (jansson, duplicate
 * members refused) is no answer; an answer allows exactly when "result"
 * is true or an object whose "allow" is true; the decision is one byte
 * ('A' or 'D'), then for a refusal only the string "reason", at most
 * NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION bytes in all, valid UTF-8 without
 * control characters, a prefix of the reason (control characters made
 * '?'), the whole reason when it fits, and never longer than the body
 * (it takes the body's place in the zone); the same body gives the same
 * decision again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ngx_int_t ngx_fuzz_authz_expect(ngx_str_t *body, ngx_uint_t *allow,
    ngx_str_t *reason, json_t **root);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *s, c;
    size_t       i;
    json_t      *root;
    ngx_int_t    rc, rc2, expect;
    ngx_str_t    body, decision, again, reason;
    ngx_uint_t   allow;
    ngx_pool_t  *pool;

    pool = ngx_fuzz_pool();

    s = ngx_fuzz_dup(pool, data, size);

    body.data = s;
    body.len = size;

    decision.data = ngx_palloc(pool, NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION);
    again.data = ngx_palloc(pool, NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION);
    ngx_fuzz_assert(decision.data != NULL && again.data != NULL);

    rc = ngx_http_grpc_guard_authz_reply(&body, &decision);

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    /* the body is read, never written */

    ngx_fuzz_assert(ngx_memcmp(s, data, size) == 0);

    root = NULL;
    expect = ngx_fuzz_authz_expect(&body, &allow, &reason, &root);

    ngx_fuzz_assert(rc == expect);

    if (rc != NGX_OK) {
        goto done;
    }

    ngx_fuzz_assert(decision.len >= 1);
    ngx_fuzz_assert(decision.len <= NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION);
    ngx_fuzz_assert(decision.len <= body.len);
    ngx_fuzz_assert(decision.data[0] == (allow ? 'A' : 'D'));

    if (allow || reason.len == 0) {
        ngx_fuzz_assert(decision.len == 1);

    } else {

        /* a prefix of the reason, whole when it fits */

        ngx_fuzz_assert(decision.len - 1 <= reason.len);

        if (reason.len < NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION) {
            ngx_fuzz_assert(decision.len - 1 == reason.len);
        }

        /* at most one UTF-8 sequence (4 bytes) is cut off */

        ngx_fuzz_assert(decision.len - 1 + 4
                        >= ngx_min(reason.len,
                                   NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION - 1));

        for (i = 1; i < decision.len; i++) {
            c = reason.data[i - 1];

            if (c < 0x20 || c == 0x7f) {
                ngx_fuzz_assert(decision.data[i] == '?');

            } else {
                ngx_fuzz_assert(decision.data[i] == c);
            }
        }

        ngx_fuzz_assert(ngx_fuzz_utf8_valid(decision.data + 1,
                                            decision.len - 1));
    }

    /* the same body, the same decision */

    rc2 = ngx_http_grpc_guard_authz_reply(&body, &again);

    ngx_fuzz_assert(rc2 == NGX_OK);
    ngx_fuzz_assert(again.len == decision.len);
    ngx_fuzz_assert(ngx_memcmp(again.data, decision.data, decision.len) == 0);

done:

    json_decref(root);

    ngx_destroy_pool(pool);

    return 0;
}


static ngx_int_t
ngx_fuzz_authz_expect(ngx_str_t *body, ngx_uint_t *allow, ngx_str_t *reason,
    json_t **root)
{
    json_t        *result, *v;
    json_error_t   error;

    /* the reply as OPA's Data API documents it, read apart */

    *allow = 0;
    ngx_str_null(reason);

    *root = json_loadb((char *) body->data, body->len,
                       JSON_REJECT_DUPLICATES, &error);

    if (*root == NULL || !json_is_object(*root)) {
        return NGX_DECLINED;
    }

    result = json_object_get(*root, "result");

    if (result == NULL) {
        return NGX_OK;
    }

    if (json_typeof(result) == JSON_TRUE) {
        *allow = 1;
        return NGX_OK;
    }

    if (json_typeof(result) != JSON_OBJECT) {
        return NGX_OK;
    }

    v = json_object_get(result, "allow");
    *allow = (v != NULL && json_typeof(v) == JSON_TRUE);

    v = json_object_get(result, "reason");

    if (v != NULL && json_typeof(v) == JSON_STRING) {
        reason->data = (u_char *) json_string_value(v);
        reason->len = json_string_length(v);
    }

    return NGX_OK;
}
