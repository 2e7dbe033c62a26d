
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The claims of a call, read for variables, for the identity and for ACL
 * conditions: the payload of a verified token, or the reply of the
 * identity provider that introspected an opaque one.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"


static ngx_int_t ngx_http_grpc_guard_jwt_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t header, ngx_str_t *name,
    ngx_str_t *value);
static json_t *ngx_http_grpc_guard_jwt_claim(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_str_t *name);
static ngx_int_t ngx_http_grpc_guard_jwt_json_match(json_t *v,
    ngx_array_t *values, ngx_uint_t split, ngx_uint_t depth);
static ngx_int_t ngx_http_grpc_guard_jwt_format(ngx_pool_t *pool,
    json_t *value, ngx_uint_t nested, ngx_str_t *out);
static ngx_int_t ngx_http_grpc_guard_jwt_dump(ngx_pool_t *pool,
    json_t *value, ngx_str_t *out);


ngx_int_t
ngx_http_grpc_guard_jwt_value(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t header, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char     *p, *last;
    ngx_int_t   rc;

    rc = ngx_http_grpc_guard_jwt_lookup(r, ctx, header, name, value);

    if (rc != NGX_OK) {
        return rc;
    }

    /*
     * the value goes into request headers and text logs: one with a
     * control character is taken as absent; the line logged names the
     * claim, never its value
     */

    last = value->data + value->len;

    for (p = value->data; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "grpc guard: JWT %s \"%V\" holds a control "
                          "character, taken as empty",
                          header ? "header member" : "claim", name);
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t header, ngx_str_t *name,
    ngx_str_t *value)
{
    json_t                         *v;
    ngx_int_t                       rc;
    ngx_http_grpc_guard_jwt_ctx_t  *jctx;

    jctx = ctx->call.jwt;

    /* what the cache keeps needs no parsing */

    if (!header && !jctx->parsed) {

        if (name->len == 3 && ngx_strncmp(name->data, "sub", 3) == 0) {
            *value = jctx->sub;
            return value->len ? NGX_OK : NGX_DECLINED;
        }

        if (name->len == 3 && ngx_strncmp(name->data, "iss", 3) == 0) {
            *value = jctx->iss;
            return value->len ? NGX_OK : NGX_DECLINED;
        }
    }

    if (!jctx->parsed) {

        /* a cache hit: the token is parsed when a claim is first read */

        rc = ngx_http_grpc_guard_jwt_parse(r->pool, jctx, NULL);

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "grpc guard: a verified token could not be parsed");
            return NGX_ERROR;
        }
    }

    v = json_object_getn(header ? jctx->header : jctx->payload,
                         (char *) name->data, name->len);

    if (v == NULL || json_is_null(v)) {
        return NGX_DECLINED;
    }

    return ngx_http_grpc_guard_jwt_format(r->pool, v, 0, value);
}


void
ngx_http_grpc_guard_jwt_identity(ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *sub, ngx_str_t *iss, ngx_str_t *id)
{
    /* who the claims say the caller is: "sub", else "client_id" */

    *sub = ctx->call.jwt->sub;
    *iss = ctx->call.jwt->iss;
    *id = sub->len ? *sub : ctx->call.jwt->client_id;
}


ngx_http_grpc_guard_jwt_ctx_t *
ngx_http_grpc_guard_jwt_claims_ctx(ngx_pool_t *pool, ngx_str_t *token,
    ngx_str_t *text)
{
    ngx_http_grpc_guard_jwt_ctx_t  *jctx;

    /*
     * claims that another source vouches for (an introspection reply,
     * checked when it came): a JSON object as the payload of a verified
     * token; NULL on no memory, or a text that is no JSON object
     */

    jctx = ngx_http_grpc_guard_jwt_create_ctx(pool, token);
    if (jctx == NULL) {
        return NULL;
    }

    jctx->claims = *text;

    if (ngx_http_grpc_guard_jwt_claims_parse(pool, jctx) != NGX_OK) {
        return NULL;
    }

    return jctx;
}


ngx_int_t
ngx_http_grpc_guard_jwt_claims_parse(ngx_pool_t *pool,
    ngx_http_grpc_guard_jwt_ctx_t *jctx)
{
    json_t         *v;
    ngx_pool_t     *jpool;
    json_free_t     free_func;
    json_malloc_t   malloc_func;

    /* the text of "claims" as the payload: NGX_DECLINED if no object */

    json_get_alloc_funcs(&malloc_func, &free_func);

    jpool = (malloc_func == ngx_http_grpc_guard_jwt_json_alloc) ? pool : NULL;
    jctx->pooled = (jpool != NULL);

    jctx->payload = ngx_http_grpc_guard_jwt_json(jpool, jctx->claims.data,
                                                 jctx->claims.len);
    if (jctx->payload == NULL) {
        return NGX_DECLINED;
    }

    jctx->parsed = 1;

    v = json_object_get(jctx->payload, "client_id");

    if (json_is_string(v)) {
        jctx->client_id.data = (u_char *) json_string_value(v);
        jctx->client_id.len = json_string_length(v);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_claim_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_str_t *name, ngx_array_t *values,
    ngx_uint_t split)
{
    json_t  *v;

    /*
     * a claim of the payload against the values of an ACL condition:
     * a string, split into words when asked, an integer or a boolean as
     * its JSON text, or any element of an array of them
     */

    v = ngx_http_grpc_guard_jwt_claim(r, ctx, name);

    return v && ngx_http_grpc_guard_jwt_json_match(v, values, split, 0);
}


static json_t *
ngx_http_grpc_guard_jwt_claim(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_str_t *name)
{
    json_t                         *v;
    ngx_http_grpc_guard_jwt_ctx_t  *jctx;

    jctx = ctx->call.jwt;

    if (jctx == NULL) {
        return NULL;
    }

    if (!jctx->parsed) {

        /* a cache hit: the token is parsed when a claim is first read */

        if (ngx_http_grpc_guard_jwt_parse(r->pool, jctx, NULL) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "grpc guard: a verified token could not be parsed");
            return NULL;
        }
    }

    v = json_object_getn(jctx->payload, (char *) name->data, name->len);

    if (v == NULL || json_is_null(v)) {
        return NULL;
    }

    return v;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_json_match(json_t *v, ngx_array_t *values,
    ngx_uint_t split, ngx_uint_t depth)
{
    u_char      *p;
    size_t       i;
    ngx_str_t    s;
    u_char       buf[NGX_INT64_LEN + 2];

    switch (json_typeof(v)) {

    case JSON_STRING:
        s.data = (u_char *) json_string_value(v);
        s.len = json_string_length(v);

        return ngx_http_grpc_guard_acl_text_match(&s, values, split);

    case JSON_INTEGER:
        p = ngx_sprintf(buf, "%L", (int64_t) json_integer_value(v));
        s.data = buf;
        s.len = p - buf;

        return ngx_http_grpc_guard_acl_text_match(&s, values, 0);

    case JSON_TRUE:
        ngx_str_set(&s, "true");
        return ngx_http_grpc_guard_acl_text_match(&s, values, 0);

    case JSON_FALSE:
        ngx_str_set(&s, "false");
        return ngx_http_grpc_guard_acl_text_match(&s, values, 0);

    case JSON_ARRAY:

        /* any element; arrays of arrays are not looked into */

        if (depth) {
            return 0;
        }

        for (i = 0; i < json_array_size(v); i++) {
            if (ngx_http_grpc_guard_jwt_json_match(json_array_get(v, i),
                                                   values, 0, 1))
            {
                return 1;
            }
        }

        return 0;

    default:
        return 0;
    }
}


static ngx_int_t
ngx_http_grpc_guard_jwt_format(ngx_pool_t *pool, json_t *value,
    ngx_uint_t nested, ngx_str_t *out)
{
    size_t      i, n, len;
    u_char     *p;
    ngx_str_t  *parts;

    switch (json_typeof(value)) {

    case JSON_STRING:
        out->data = (u_char *) json_string_value(value);
        out->len = json_string_length(value);
        return NGX_OK;

    case JSON_INTEGER:
        p = ngx_pnalloc(pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        out->data = p;
        out->len = ngx_sprintf(p, "%L", (int64_t) json_integer_value(value))
                   - p;
        return NGX_OK;

    case JSON_TRUE:
        ngx_str_set(out, "true");
        return NGX_OK;

    case JSON_FALSE:
        ngx_str_set(out, "false");
        return NGX_OK;

    case JSON_NULL:
        ngx_str_set(out, "null");
        return NGX_OK;

    case JSON_ARRAY:

        if (nested) {
            break;
        }

        /* the elements, joined with a space */

        n = json_array_size(value);

        if (n == 0) {
            out->len = 0;
            out->data = (u_char *) "";
            return NGX_OK;
        }

        parts = ngx_palloc(pool, n * sizeof(ngx_str_t));
        if (parts == NULL) {
            return NGX_ERROR;
        }

        len = n - 1;

        for (i = 0; i < n; i++) {
            if (ngx_http_grpc_guard_jwt_format(pool, json_array_get(value, i),
                                               1, &parts[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            len += parts[i].len;
        }

        p = ngx_pnalloc(pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        out->data = p;
        out->len = len;

        for (i = 0; i < n; i++) {
            if (i) {
                *p++ = ' ';
            }

            p = ngx_cpymem(p, parts[i].data, parts[i].len);
        }

        return NGX_OK;

    default:
        break;
    }

    /* reals, objects, and arrays inside arrays: their JSON text */

    return ngx_http_grpc_guard_jwt_dump(pool, value, out);
}


static ngx_int_t
ngx_http_grpc_guard_jwt_dump(ngx_pool_t *pool, json_t *value, ngx_str_t *out)
{
    size_t  len;

    /*
     * straight into the pool: what json_dumps() returns would have to go
     * to jansson's free function, which need not be free(3)
     */

    len = json_dumpb(value, NULL, 0, JSON_ENCODE_ANY|JSON_COMPACT);
    if (len == 0) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = json_dumpb(value, (char *) out->data, len,
                          JSON_ENCODE_ANY|JSON_COMPACT);

    return (out->len == len) ? NGX_OK : NGX_ERROR;
}
