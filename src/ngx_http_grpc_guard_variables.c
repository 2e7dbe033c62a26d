
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The $grpc_guard_* variables, read from the request context.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


static void ngx_http_grpc_guard_set_value(ngx_http_variable_value_t *v,
    u_char *data, size_t len);
static ngx_int_t ngx_http_grpc_guard_str_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_grpc_guard_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_grpc_guard_peer_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_grpc_guard_remaining_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_grpc_guard_jwt_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_grpc_guard_jwt_header_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_grpc_guard_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_grpc_guard_jwt_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, ngx_str_t *name, ngx_uint_t header);
static ngx_int_t ngx_http_grpc_guard_remote_body_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);


#define NGX_HTTP_GRPC_GUARD_CLAIM_PREFIX   "grpc_guard_jwt_claim_"
#define NGX_HTTP_GRPC_GUARD_HEADER_PREFIX  "grpc_guard_jwt_header_"

/* the claims of a JWT or of an introspection reply alike */
#define NGX_HTTP_GRPC_GUARD_ALIAS_PREFIX   "grpc_guard_claim_"


static ngx_http_variable_t  ngx_http_grpc_guard_vars[] = {

    { ngx_string("grpc_guard_method"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.method),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_service"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.service),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_decision"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.decision),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_reason"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.reason),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_grpc_status"), NULL,
      ngx_http_grpc_guard_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_rule"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.rule),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_api_key_client"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.client),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_peer_spiffe_id"), NULL,
      ngx_http_grpc_guard_peer_variable,
      offsetof(ngx_http_grpc_guard_peer_t, spiffe_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_peer_uri_san"), NULL,
      ngx_http_grpc_guard_peer_variable,
      offsetof(ngx_http_grpc_guard_peer_t, uri_san),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_peer_dns_san"), NULL,
      ngx_http_grpc_guard_peer_variable,
      offsetof(ngx_http_grpc_guard_peer_t, dns_san),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_peer_subject"), NULL,
      ngx_http_grpc_guard_peer_variable,
      offsetof(ngx_http_grpc_guard_peer_t, subject),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_peer_fingerprint"), NULL,
      ngx_http_grpc_guard_peer_variable,
      offsetof(ngx_http_grpc_guard_peer_t, fingerprint),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_limit_remaining"), NULL,
      ngx_http_grpc_guard_remaining_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_principal"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.principal),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_auth_method"), NULL,
      ngx_http_grpc_guard_str_variable,
      offsetof(ngx_http_grpc_guard_ctx_t, call.principal_kind),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string(NGX_HTTP_GRPC_GUARD_CLAIM_PREFIX), NULL,
      ngx_http_grpc_guard_jwt_claim_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string(NGX_HTTP_GRPC_GUARD_HEADER_PREFIX), NULL,
      ngx_http_grpc_guard_jwt_header_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string(NGX_HTTP_GRPC_GUARD_ALIAS_PREFIX), NULL,
      ngx_http_grpc_guard_claim_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    /* the body of the guard's own subrequests, inside them only */

    { ngx_string("grpc_guard_introspection_body"), NULL,
      ngx_http_grpc_guard_remote_body_variable,
      NGX_HTTP_GRPC_GUARD_REMOTE_INTROSPECTION,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("grpc_guard_authz_body"), NULL,
      ngx_http_grpc_guard_remote_body_variable,
      NGX_HTTP_GRPC_GUARD_REMOTE_AUTHZ,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_grpc_guard_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_grpc_guard_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void
ngx_http_grpc_guard_set_value(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    /* values change while the request goes on: never cached */

    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = data;
}


static ngx_int_t
ngx_http_grpc_guard_str_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_grpc_guard_ctx_t  *ctx;

    ctx = ngx_http_grpc_guard_get_ctx(r->main);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_grpc_guard_set_value(v, s->data, s->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                     *p;
    ngx_int_t                   status;
    ngx_uint_t                  source, kind;
    ngx_http_grpc_guard_ctx_t  *ctx, tmp;

    r = r->main;

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL) {

        /* a location without the guard: still report gRPC calls */

        kind = ngx_http_grpc_guard_is_grpc(r);

        if (kind == NGX_HTTP_GRPC_GUARD_NOT_GRPC) {
            v->not_found = 1;
            return NGX_OK;
        }

        ngx_memzero(&tmp, sizeof(ngx_http_grpc_guard_ctx_t));
        tmp.call.grpc = kind;
        tmp.call.grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
        ctx = &tmp;

    } else if (!ctx->call.grpc) {
        v->not_found = 1;
        return NGX_OK;
    }

    status = ngx_http_grpc_guard_final_status(r, ctx, &source);

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_grpc_guard_set_value(v, p, ngx_sprintf(p, "%i", status) - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_peer_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                   *s;
    ngx_http_grpc_guard_peer_t  *peer;

    /*
     * only a certificate nginx verified, or that a trusted proxy
     * forwarded, identifies anybody
     */

    peer = ngx_http_grpc_guard_mtls_identity(r->main);

    if (peer == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) peer + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_grpc_guard_set_value(v, s->data, s->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_remaining_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                     *p, *last;
    ngx_http_grpc_guard_ctx_t  *ctx;

    ctx = ngx_http_grpc_guard_get_ctx(r->main);

    if (ctx == NULL || ctx->call.limit_remaining < 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_sprintf(p, "%i", ctx->call.limit_remaining);

    ngx_http_grpc_guard_set_value(v, p, last - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  *var = (ngx_str_t *) data;

    ngx_str_t  name;

    name.len = var->len - (sizeof(NGX_HTTP_GRPC_GUARD_CLAIM_PREFIX) - 1);
    name.data = var->data + sizeof(NGX_HTTP_GRPC_GUARD_CLAIM_PREFIX) - 1;

    return ngx_http_grpc_guard_jwt_variable(r, v, &name, 0);
}


static ngx_int_t
ngx_http_grpc_guard_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  *var = (ngx_str_t *) data;

    ngx_str_t  name;

    name.len = var->len - (sizeof(NGX_HTTP_GRPC_GUARD_ALIAS_PREFIX) - 1);
    name.data = var->data + sizeof(NGX_HTTP_GRPC_GUARD_ALIAS_PREFIX) - 1;

    return ngx_http_grpc_guard_jwt_variable(r, v, &name, 0);
}


static ngx_int_t
ngx_http_grpc_guard_remote_body_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  body;

    if (ngx_http_grpc_guard_remote_body(r, data, &body) != NGX_OK
        || body.len == 0)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_grpc_guard_set_value(v, body.data, body.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_header_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  *var = (ngx_str_t *) data;

    ngx_str_t  name;

    name.len = var->len - (sizeof(NGX_HTTP_GRPC_GUARD_HEADER_PREFIX) - 1);
    name.data = var->data + sizeof(NGX_HTTP_GRPC_GUARD_HEADER_PREFIX) - 1;

    return ngx_http_grpc_guard_jwt_variable(r, v, &name, 1);
}


static ngx_int_t
ngx_http_grpc_guard_jwt_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, ngx_str_t *name, ngx_uint_t header)
{
    ngx_int_t                   rc;
    ngx_str_t                   value;
    ngx_http_grpc_guard_ctx_t  *ctx;

    ctx = ngx_http_grpc_guard_get_ctx(r->main);

    if (ctx == NULL || ctx->call.jwt == NULL || name->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    rc = ngx_http_grpc_guard_jwt_value(r->main, ctx, header, name, &value);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_grpc_guard_set_value(v, value.data, value.len);

    return NGX_OK;
}

