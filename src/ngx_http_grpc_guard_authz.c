
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * External authorization: after the ACL let a call through, a policy
 * engine speaking OPA's REST Data API is asked about it.  The question is
 * an input document made of what the guard knows of the call (never the
 * credential itself), posted by a subrequest to a location the operator
 * writes; the answer allows or refuses the call, and may be kept in the
 * grpc_guard_remote_cache zone, keyed by the SHA-256 of the input.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"


#define NGX_HTTP_GRPC_GUARD_AUTHZ_CLOSED      0
#define NGX_HTTP_GRPC_GUARD_AUTHZ_OPEN        1

/* grpc_guard_authz_request defaults and bounds */
#define NGX_HTTP_GRPC_GUARD_AUTHZ_SIZE        65536
#define NGX_HTTP_GRPC_GUARD_AUTHZ_SIZE_LIMIT  (1024 * 1024)
#define NGX_HTTP_GRPC_GUARD_AUTHZ_TIMEOUT     10000

/* the longest input document sent */
#define NGX_HTTP_GRPC_GUARD_AUTHZ_INPUT       65536

/* the most a connection keeps of its last question */
#define NGX_HTTP_GRPC_GUARD_AUTHZ_MEMO_MAX    8192

/* a decision as the zone keeps it: one byte, then the reason */
#define NGX_HTTP_GRPC_GUARD_AUTHZ_ALLOWED     'A'
#define NGX_HTTP_GRPC_GUARD_AUTHZ_DENIED      'D'


struct ngx_http_grpc_guard_authz_s {
    ngx_http_grpc_guard_remote_t  *remote;
    ngx_msec_t                  cache;      /* 0: off */
    ngx_uint_t                  failure;    /* NGX_HTTP_GRPC_GUARD_AUTHZ_* */
    ngx_array_t                *metadata;   /* ngx_str_t, lowercase */
};


/* a call's question, made once and kept while it waits for the answer */

struct ngx_http_grpc_guard_authz_ctx_s {
    ngx_str_t                   body;       /* {"input": {...}} */
    u_char                      key[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
};


/*
 * the last question asked on a connection: gRPC clients make many calls
 * of one caller on a connection, and a call whose ingredients (the same
 * bytes of everything the input is made of) are those of the last one
 * asks the same question, with no JSON to make, dump or hash again
 */

typedef struct {
    ngx_http_grpc_guard_authz_t  *az;   /* NULL: nothing remembered */
    u_char                     *data;   /* the ingredients, then the body */
    size_t                      size;
    size_t                      len;    /* of the ingredients */
    size_t                      body_len;
    u_char                      key[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
} ngx_http_grpc_guard_authz_memo_t;


/* the text of a JSON dump, in a pool */

typedef struct {
    ngx_pool_t                 *pool;
    u_char                     *start;
    u_char                     *last;
    u_char                     *end;
    unsigned                    too_big:1;
} ngx_http_grpc_guard_authz_buf_t;


static ngx_int_t ngx_http_grpc_guard_authz_ask(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_authz_decided(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *decision);
static ngx_int_t ngx_http_grpc_guard_authz_failed(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_authz_check_reply(
    ngx_http_grpc_guard_remote_reply_t *reply, void *data);
static ngx_int_t ngx_http_grpc_guard_authz_ingredients(ngx_http_request_t *r,
    ngx_http_grpc_guard_authz_t *az, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *authority, ngx_http_grpc_guard_peer_t *peer, ngx_str_t *text);
static u_char *ngx_http_grpc_guard_authz_put(u_char *p, size_t *total,
    void *data, size_t len);
static ngx_http_grpc_guard_authz_memo_t *ngx_http_grpc_guard_authz_memo(
    ngx_connection_t *c, ngx_uint_t create);
static void ngx_http_grpc_guard_authz_remember(ngx_http_request_t *r,
    ngx_http_grpc_guard_authz_t *az, ngx_str_t *ingredients,
    ngx_http_grpc_guard_authz_ctx_t *actx);
static void ngx_http_grpc_guard_authz_memo_cleanup(void *data);
static json_t *ngx_http_grpc_guard_authz_input(ngx_http_request_t *r,
    ngx_http_grpc_guard_authz_t *az, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *authority, ngx_http_grpc_guard_peer_t *peer);
static ngx_int_t ngx_http_grpc_guard_authz_set_str(json_t *obj,
    const char *name, ngx_str_t *value);
static ngx_int_t ngx_http_grpc_guard_authz_auth(json_t *input,
    ngx_uint_t auth);
static ngx_int_t ngx_http_grpc_guard_authz_claims(ngx_http_request_t *r,
    json_t *input, ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_authz_roles(ngx_http_request_t *r,
    json_t *input, ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_authz_words(json_t *array,
    u_char *p, u_char *last);
static ngx_int_t ngx_http_grpc_guard_authz_peer(json_t *input,
    ngx_http_grpc_guard_peer_t *p);
static ngx_int_t ngx_http_grpc_guard_authz_metadata_object(
    ngx_http_request_t *r, json_t *input, ngx_http_grpc_guard_authz_t *az,
    ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_authz_join(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
static ngx_uint_t ngx_http_grpc_guard_authz_holds(ngx_str_t *value,
    ngx_str_t *token);
static ngx_int_t ngx_http_grpc_guard_authz_dump(ngx_pool_t *pool,
    json_t *json, ngx_str_t *text);
static int ngx_http_grpc_guard_authz_dump_chunk(const char *buffer,
    size_t size, void *data);
static ngx_int_t ngx_http_grpc_guard_authz_digest(ngx_str_t *text,
    u_char *key);
static ngx_uint_t ngx_http_grpc_guard_authz_forbidden(ngx_str_t *name,
    ngx_str_t *api_key_header);


static ngx_conf_enum_t  ngx_http_grpc_guard_authz_failures[] = {
    { ngx_string("closed"), NGX_HTTP_GRPC_GUARD_AUTHZ_CLOSED },
    { ngx_string("open"), NGX_HTTP_GRPC_GUARD_AUTHZ_OPEN },
    { ngx_null_string, 0 }
};


/* claims that change with every token: the guard checks them itself */

static ngx_str_t  ngx_http_grpc_guard_authz_token_claims[] = {
    ngx_string("exp"),
    ngx_string("iat"),
    ngx_string("nbf"),
    ngx_string("jti"),
    ngx_null_string
};


ngx_int_t
ngx_http_grpc_guard_authz(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_int_t                         rc;
    ngx_str_t                         decision;
    ngx_http_grpc_guard_authz_t      *az;
    ngx_http_grpc_guard_authz_ctx_t  *actx;

    /*
     * asked only for a call the ACL let through: a public method, a
     * path refused already or an ACL deny never reach the engine
     */

    az = glcf->authz;

    if (az == NULL || ctx->call.public || !ctx->call.canonical) {
        return NGX_DECLINED;
    }

    actx = ctx->call.authz;

    if (actx == NULL) {
        rc = ngx_http_grpc_guard_authz_ask(r, glcf, ctx);

        if (rc == NGX_DECLINED) {
            return ngx_http_grpc_guard_authz_failed(r, glcf, ctx);
        }

        if (rc != NGX_OK) {
            return rc;
        }

        actx = ctx->call.authz;
    }

    /*
     * a decision kept for the same question, or the answer of a fetch:
     * the call's own, or another call's that asked the same (the call
     * waits for it, parked, and comes back here)
     */

    rc = ngx_http_grpc_guard_remote_keyed(r, az->remote, actx->key,
                                          &actx->body, r->pool, &decision,
                                          NULL);

    switch (rc) {

    case NGX_OK:
        return ngx_http_grpc_guard_authz_decided(r, glcf, ctx, &decision);

    case NGX_DECLINED:
        return ngx_http_grpc_guard_authz_failed(r, glcf, ctx);

    default: /* NGX_AGAIN, NGX_ERROR */
        return rc;
    }
}


static ngx_int_t
ngx_http_grpc_guard_authz_ask(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    json_t                            *input, *root;
    ngx_int_t                          rc;
    ngx_str_t                          authority, ingredients;
    ngx_http_grpc_guard_authz_t       *az;
    ngx_http_grpc_guard_peer_t        *peer;
    ngx_http_grpc_guard_authz_ctx_t   *actx;
    ngx_http_grpc_guard_authz_memo_t  *memo;

    /* the question: made once per call, kept while it waits */

    az = glcf->authz;

    actx = ngx_pcalloc(r->pool, sizeof(ngx_http_grpc_guard_authz_ctx_t));
    if (actx == NULL) {
        return NGX_ERROR;
    }

    if (r->headers_in.host) {
        authority = r->headers_in.host->value;

    } else {
        authority = r->headers_in.server;
    }

    /* the verified certificate: the connection's, or a trusted proxy's */

    peer = ctx->call.peer ? ctx->call.peer
                          : ngx_http_grpc_guard_mtls_identity(r);

    if (ngx_http_grpc_guard_authz_ingredients(r, az, ctx, &authority, peer,
                                              &ingredients)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    memo = ngx_http_grpc_guard_authz_memo(r->connection, 0);

    if (memo && memo->az == az && memo->len == ingredients.len
        && ngx_memcmp(memo->data, ingredients.data, ingredients.len) == 0)
    {
        /* the connection's last question, asked again */

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "grpc guard authz: the connection's last question");

        actx->body.len = memo->body_len;
        actx->body.data = ngx_pnalloc(r->pool, memo->body_len);
        if (actx->body.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(actx->body.data, memo->data + memo->len, memo->body_len);
        ngx_memcpy(actx->key, memo->key, NGX_HTTP_GRPC_GUARD_SHA256_LEN);

        ctx->call.authz = actx;

        return NGX_OK;
    }

    input = ngx_http_grpc_guard_authz_input(r, az, ctx, &authority, peer);
    if (input == NULL) {
        return NGX_ERROR;
    }

    root = json_object();

    if (root == NULL || json_object_set_new(root, "input", input) != 0) {
        json_decref(root);
        return NGX_ERROR;
    }

    rc = ngx_http_grpc_guard_authz_dump(r->pool, root, &actx->body);

    json_decref(root);

    if (rc == NGX_DECLINED) {

        /* claims or metadata too large to ask about: no answer */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "grpc guard: the authorization input of \"%V\" is "
                      "more than %d bytes", &ctx->call.method,
                      NGX_HTTP_GRPC_GUARD_AUTHZ_INPUT);
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_grpc_guard_authz_digest(&actx->body, actx->key) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard authz: %V", &actx->body);

    ngx_http_grpc_guard_authz_remember(r, az, &ingredients, actx);

    ctx->call.authz = actx;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_authz_ingredients(ngx_http_request_t *r,
    ngx_http_grpc_guard_authz_t *az, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *authority, ngx_http_grpc_guard_peer_t *peer, ngx_str_t *text)
{
    u_char                      *p;
    size_t                       len;
    ngx_str_t                   *name, token, *addr;
    ngx_uint_t                   i, j, pass;
    ngx_list_part_t             *part;
    ngx_table_elt_t             *h;
    ngx_http_grpc_guard_call_t  *call;

    /*
     * everything the input is made of, each part after its length, in
     * an order that tells the parts apart: the same ingredients make the
     * same input.  The API key is known by its address (its client id
     * and roles are the configuration's), the token by its bytes (the
     * claims and roles come from it).  Two passes: count, then copy
     */

    ngx_str_null(text);

    call = &ctx->call;
    addr = &r->connection->addr_text;
    name = az->metadata ? az->metadata->elts : NULL;

    ngx_str_null(&token);

    if (call->jwt) {
        token = call->jwt->token;
    }

    len = 0;
    p = NULL;

    for (pass = 0; pass < 2; pass++) {

        if (pass == 1) {
            text->data = ngx_pnalloc(r->pool, len);
            if (text->data == NULL) {
                return NGX_ERROR;
            }

            p = text->data;
        }

        p = ngx_http_grpc_guard_authz_put(p, &len, &call->api_key,
                                          sizeof(void *));
        p = ngx_http_grpc_guard_authz_put(p, &len, &call->auth,
                                          sizeof(ngx_uint_t));
        p = ngx_http_grpc_guard_authz_put(p, &len, call->method.data,
                                          call->method.len);
        p = ngx_http_grpc_guard_authz_put(p, &len, authority->data,
                                          authority->len);
        p = ngx_http_grpc_guard_authz_put(p, &len, call->principal.data,
                                          call->principal.len);
        p = ngx_http_grpc_guard_authz_put(p, &len, token.data, token.len);
        p = ngx_http_grpc_guard_authz_put(p, &len, addr->data, addr->len);
        p = ngx_http_grpc_guard_authz_put(p, &len, "s",
                                          r->connection->ssl ? 1 : 0);
        p = ngx_http_grpc_guard_authz_put(p, &len, "p", peer ? 1 : 0);

        if (peer) {
            p = ngx_http_grpc_guard_authz_put(p, &len, peer->spiffe_id.data,
                                              peer->spiffe_id.len);
            p = ngx_http_grpc_guard_authz_put(p, &len, peer->dns_san.data,
                                              peer->dns_san.len);
            p = ngx_http_grpc_guard_authz_put(p, &len, peer->subject.data,
                                              peer->subject.len);
            p = ngx_http_grpc_guard_authz_put(p, &len, peer->fingerprint.data,
                                              peer->fingerprint.len);
        }

        if (name == NULL) {
            continue;
        }

        /* then the listed headers, in the order of the request */

        part = &r->headers_in.headers.part;
        h = part->elts;

        for (i = 0; /* void */; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            for (j = 0; j < az->metadata->nelts; j++) {
                if (h[i].key.len == name[j].len
                    && ngx_strncasecmp(h[i].key.data, name[j].data,
                                       name[j].len)
                       == 0)
                {
                    p = ngx_http_grpc_guard_authz_put(p, &len, &j,
                                                      sizeof(ngx_uint_t));
                    p = ngx_http_grpc_guard_authz_put(p, &len,
                                                      h[i].value.data,
                                                      h[i].value.len);
                    break;
                }
            }
        }
    }

    text->len = p - text->data;

    return NGX_OK;
}


static u_char *
ngx_http_grpc_guard_authz_put(u_char *p, size_t *total, void *data,
    size_t len)
{
    /* p == NULL: the first pass, which only counts */

    if (p == NULL) {
        *total += sizeof(size_t) + len;
        return NULL;
    }

    p = ngx_cpymem(p, &len, sizeof(size_t));

    return len ? ngx_cpymem(p, data, len) : p;
}


static ngx_http_grpc_guard_authz_memo_t *
ngx_http_grpc_guard_authz_memo(ngx_connection_t *c, ngx_uint_t create)
{
    return ngx_http_grpc_guard_connection_memo(c,
                                 ngx_http_grpc_guard_authz_memo_cleanup,
                                 sizeof(ngx_http_grpc_guard_authz_memo_t),
                                 create);
}


static void
ngx_http_grpc_guard_authz_remember(ngx_http_request_t *r,
    ngx_http_grpc_guard_authz_t *az, ngx_str_t *ingredients,
    ngx_http_grpc_guard_authz_ctx_t *actx)
{
    u_char                            *p;
    size_t                             n;
    ngx_http_grpc_guard_authz_memo_t  *memo;

    n = ingredients->len + actx->body.len;

    if (n > NGX_HTTP_GRPC_GUARD_AUTHZ_MEMO_MAX) {
        return;
    }

    memo = ngx_http_grpc_guard_authz_memo(r->connection, 1);
    if (memo == NULL) {
        return;
    }

    memo->az = NULL;

    if (n > memo->size) {

        /*
         * 1 KiB at least, doubled when more is needed, up to the maximum:
         * a connection's pool never holds more than twice the maximum
         */

        n = ngx_max(n, ngx_max(2 * memo->size, 1024));
        n = ngx_min(n, NGX_HTTP_GRPC_GUARD_AUTHZ_MEMO_MAX);

        p = ngx_pnalloc(r->connection->pool, n);
        if (p == NULL) {
            return;
        }

        memo->data = p;
        memo->size = n;
    }

    p = ngx_cpymem(memo->data, ingredients->data, ingredients->len);
    ngx_memcpy(p, actx->body.data, actx->body.len);

    memo->len = ingredients->len;
    memo->body_len = actx->body.len;
    ngx_memcpy(memo->key, actx->key, NGX_HTTP_GRPC_GUARD_SHA256_LEN);

    memo->az = az;
}


static void
ngx_http_grpc_guard_authz_memo_cleanup(void *data)
{
    /* the memo lives in the connection pool; nothing to release */
}


static ngx_int_t
ngx_http_grpc_guard_authz_decided(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *decision)
{
    ngx_str_t  reason;

    if (decision->len == 0) {
        return ngx_http_grpc_guard_authz_failed(r, glcf, ctx);
    }

    if (decision->data[0] == NGX_HTTP_GRPC_GUARD_AUTHZ_ALLOWED) {
        return NGX_DECLINED;
    }

    reason.data = decision->data + 1;
    reason.len = decision->len - 1;

    /* the policy's reason stands for the rule that refused the call */

    if (reason.len) {
        ctx->call.rule = reason;

        ngx_log_error(glcf->log_level, r->connection->log, 0,
                      "grpc guard: the policy engine denied \"%V\": %V",
                      &ctx->call.method, &reason);

    } else {
        ngx_str_null(&ctx->call.rule);
    }

    return ngx_http_grpc_guard_refuse(r, ctx,
                                      NGX_HTTP_GRPC_GUARD_PERMISSION_DENIED,
                                      "authz_denied");
}


static ngx_int_t
ngx_http_grpc_guard_authz_failed(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    /* no usable answer: the failure mode of the location decides */

    if (glcf->authz->failure == NGX_HTTP_GRPC_GUARD_AUTHZ_OPEN) {
        ngx_str_set(&ctx->call.reason, "authz_unavailable");

        ngx_log_error(glcf->log_level, r->connection->log, 0,
                      "grpc guard: no decision for \"%V\", let through "
                      "(failure=open)", &ctx->call.method);

        return NGX_DECLINED;
    }

    return ngx_http_grpc_guard_refuse(r, ctx, NGX_HTTP_GRPC_GUARD_UNAVAILABLE,
                                      "authz_unavailable");
}


ngx_int_t
ngx_http_grpc_guard_authz_reply(ngx_str_t *body, ngx_str_t *decision)
{
    u_char        *p, *last;
    size_t         len;
    json_t        *root, *result, *allow, *reason;
    ngx_uint_t     allowed;
    json_error_t   error;

    /*
     * a 2xx reply of OPA's Data API: {"result": true} or {"result":
     * {"allow": true, ...}} allows; any other result, or none (the
     * document is undefined), refuses; anything that is not a JSON
     * object is no answer (NGX_DECLINED).  The decision is written into
     * decision->data (NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION bytes) as the
     * zone keeps it: one byte, then the string "reason" of a refusal,
     * cut at a character boundary, control characters made '?'
     */

    root = json_loadb((char *) body->data, body->len,
                      JSON_REJECT_DUPLICATES, &error);

    if (root == NULL) {
        return NGX_DECLINED;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        return NGX_DECLINED;
    }

    allowed = 0;
    reason = NULL;

    result = json_object_get(root, "result");

    if (json_is_true(result)) {
        allowed = 1;

    } else if (json_is_object(result)) {
        allow = json_object_get(result, "allow");
        allowed = json_is_true(allow);

        reason = json_object_get(result, "reason");

        if (!json_is_string(reason)) {
            reason = NULL;
        }
    }

    decision->data[0] = allowed ? NGX_HTTP_GRPC_GUARD_AUTHZ_ALLOWED
                                : NGX_HTTP_GRPC_GUARD_AUTHZ_DENIED;
    decision->len = 1;

    len = 0;

    if (!allowed && reason) {
        len = ngx_min(json_string_length(reason),
                      NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION - 1);
    }

    if (len) {
        p = (u_char *) json_string_value(reason);

        /* not in the middle of a UTF-8 sequence */

        while (len && len < json_string_length(reason)
               && (p[len] & 0xc0) == 0x80)
        {
            len--;
        }

        last = ngx_cpymem(decision->data + 1, p, len);

        for (p = decision->data + 1; p < last; p++) {
            if (*p < 0x20 || *p == 0x7f) {
                *p = '?';
            }
        }

        decision->len += len;
    }

    json_decref(root);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_authz_check_reply(
    ngx_http_grpc_guard_remote_reply_t *reply, void *data)
{
    ngx_http_grpc_guard_authz_t  *az = data;

    ngx_int_t  rc;

    /*
     * whether a reply is an answer; what is kept of it is the decision
     * alone, a few bytes that a cache hit reads without parsing
     */

    if (reply->status < NGX_HTTP_OK
        || reply->status >= NGX_HTTP_SPECIAL_RESPONSE)
    {
        return NGX_DECLINED;
    }

    reply->result.data = ngx_pnalloc(reply->pool,
                                     NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION);
    if (reply->result.data == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_grpc_guard_authz_reply(&reply->body, &reply->result);

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    reply->valid = az->cache;

    return NGX_OK;
}


static json_t *
ngx_http_grpc_guard_authz_input(ngx_http_request_t *r,
    ngx_http_grpc_guard_authz_t *az, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *authority, ngx_http_grpc_guard_peer_t *peer)
{
    json_t  *input, *source;

    /*
     * what the guard knows of the call, the same for every call of the
     * same caller and method, so that the decisions can be kept; members
     * without a value are left out; never a credential
     */

    input = json_object();
    if (input == NULL) {
        return NULL;
    }

    if (ngx_http_grpc_guard_authz_set_str(input, "method", &ctx->call.method)
        != NGX_OK
        || ngx_http_grpc_guard_authz_set_str(input, "service",
                                             &ctx->call.service)
           != NGX_OK
        || ngx_http_grpc_guard_authz_set_str(input, "authority", authority)
           != NGX_OK
        || ngx_http_grpc_guard_authz_set_str(input, "principal",
                                             &ctx->call.principal)
           != NGX_OK
        || ngx_http_grpc_guard_authz_auth(input, ctx->call.auth) != NGX_OK
        || ngx_http_grpc_guard_authz_claims(r, input, ctx) != NGX_OK
        || ngx_http_grpc_guard_authz_set_str(input, "api_key_client",
                                             &ctx->call.client)
           != NGX_OK
        || ngx_http_grpc_guard_authz_roles(r, input, ctx) != NGX_OK
        || ngx_http_grpc_guard_authz_peer(input, peer) != NGX_OK
        || ngx_http_grpc_guard_authz_metadata_object(r, input, az, ctx)
           != NGX_OK)
    {
        json_decref(input);
        return NULL;
    }

    source = json_object();

    if (source == NULL
        || ngx_http_grpc_guard_authz_set_str(source, "ip",
                                             &r->connection->addr_text)
           != NGX_OK
        || json_object_set_new(input, "source", source) != 0
        || json_object_set_new(input, "tls",
                               json_boolean(r->connection->ssl != NULL))
           != 0)
    {
        json_decref(input);
        return NULL;
    }

    return input;
}


static ngx_int_t
ngx_http_grpc_guard_authz_set_str(json_t *obj, const char *name,
    ngx_str_t *value)
{
    json_t  *s;

    if (value->len == 0) {
        return NGX_OK;
    }

    /* text that is not UTF-8 is left out, as a value the guard lacks */

    s = json_stringn((char *) value->data, value->len);

    if (s == NULL) {
        return NGX_OK;
    }

    return json_object_set_new(obj, name, s) == 0 ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_authz_auth(json_t *input, ngx_uint_t auth)
{
    json_t  *methods;

    /* the methods that succeeded, in one order: ["api_key", "jwt"] */

    if (auth == 0) {
        return NGX_OK;
    }

    methods = json_array();
    if (methods == NULL) {
        return NGX_ERROR;
    }

    if (((auth & NGX_HTTP_GRPC_GUARD_AUTH_API_KEY)
         && json_array_append_new(methods, json_string("api_key")) != 0)
        || ((auth & NGX_HTTP_GRPC_GUARD_AUTH_JWT)
            && json_array_append_new(methods, json_string("jwt")) != 0)
        || ((auth & NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION)
            && json_array_append_new(methods, json_string("introspection"))
               != 0)
        || ((auth & NGX_HTTP_GRPC_GUARD_AUTH_MTLS)
            && json_array_append_new(methods, json_string("mtls")) != 0))
    {
        json_decref(methods);
        return NGX_ERROR;
    }

    return json_object_set_new(input, "auth", methods) == 0 ? NGX_OK
                                                            : NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_authz_claims(ngx_http_request_t *r, json_t *input,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    json_t                         *claims;
    ngx_str_t                      *skip;
    ngx_http_grpc_guard_jwt_ctx_t  *jctx;

    jctx = ctx->call.jwt;

    if (jctx == NULL) {
        return NGX_OK;
    }

    if (!jctx->parsed) {

        /* a cache hit: the token is parsed when a claim is first read */

        if (ngx_http_grpc_guard_jwt_parse(r->pool, jctx, NULL) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "grpc guard: a verified token could not be parsed");
            return NGX_ERROR;
        }
    }

    if (!json_is_object(jctx->payload)) {
        return NGX_OK;
    }

    /*
     * a copy of the payload's top level without the claims that change
     * with every token, so that a caller's next token asks the same
     * question; the values are the payload's own, shared
     */

    claims = json_object();
    if (claims == NULL) {
        return NGX_ERROR;
    }

    if (json_object_update(claims, jctx->payload) != 0) {
        json_decref(claims);
        return NGX_ERROR;
    }

    for (skip = ngx_http_grpc_guard_authz_token_claims; skip->len; skip++) {
        (void) json_object_del(claims, (char *) skip->data);
    }

    return json_object_set_new(input, "claims", claims) == 0 ? NGX_OK
                                                             : NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_authz_roles(ngx_http_request_t *r, json_t *input,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    u_char                         *p;
    size_t                          i;
    json_t                         *roles, *claim, *v, *s;
    ngx_str_t                      *role;
    ngx_http_grpc_guard_jwt_ctx_t  *jctx;

    /*
     * the roles of the API key, then those of the JWT "roles" claim (an
     * array, or a space-separated string), as the ACL's role= sees them
     */

    roles = json_array();
    if (roles == NULL) {
        return NGX_ERROR;
    }

    if (ctx->call.api_key && ctx->call.api_key->roles) {
        role = ctx->call.api_key->roles->elts;

        for (i = 0; i < ctx->call.api_key->roles->nelts; i++) {
            s = json_stringn((char *) role[i].data, role[i].len);

            if (s && json_array_append_new(roles, s) != 0) {
                goto failed;
            }
        }
    }

    jctx = ctx->call.jwt;
    claim = NULL;

    if (jctx && jctx->parsed && json_is_object(jctx->payload)) {
        claim = json_object_get(jctx->payload, "roles");
    }

    if (json_is_string(claim)) {
        p = (u_char *) json_string_value(claim);

        if (ngx_http_grpc_guard_authz_words(roles, p,
                                            p + json_string_length(claim))
            != NGX_OK)
        {
            goto failed;
        }

    } else if (json_is_array(claim)) {

        json_array_foreach(claim, i, v) {
            if (json_is_string(v) && json_array_append(roles, v) != 0) {
                goto failed;
            }
        }
    }

    if (json_array_size(roles) == 0) {
        json_decref(roles);
        return NGX_OK;
    }

    return json_object_set_new(input, "roles", roles) == 0 ? NGX_OK
                                                           : NGX_ERROR;

failed:

    json_decref(roles);

    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                  "grpc guard: the roles of the authorization input could "
                  "not be made");

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_authz_words(json_t *array, u_char *p, u_char *last)
{
    u_char  *end;
    json_t  *s;

    while (p < last) {

        if (*p == ' ') {
            p++;
            continue;
        }

        end = ngx_strlchr(p, last, ' ');
        if (end == NULL) {
            end = last;
        }

        s = json_stringn((char *) p, end - p);

        if (s && json_array_append_new(array, s) != 0) {
            return NGX_ERROR;
        }

        p = end;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_authz_peer(json_t *input, ngx_http_grpc_guard_peer_t *p)
{
    json_t  *peer, *dns;

    if (p == NULL) {
        return NGX_OK;
    }

    peer = json_object();
    dns = json_array();

    if (peer == NULL || dns == NULL) {
        goto failed;
    }

    if (ngx_http_grpc_guard_authz_words(dns, p->dns_san.data,
                                        p->dns_san.data + p->dns_san.len)
        != NGX_OK)
    {
        goto failed;
    }

    if (json_array_size(dns)) {
        if (json_object_set(peer, "dns_san", dns) != 0) {
            goto failed;
        }
    }

    json_decref(dns);
    dns = NULL;

    if (ngx_http_grpc_guard_authz_set_str(peer, "spiffe", &p->spiffe_id)
        != NGX_OK
        || ngx_http_grpc_guard_authz_set_str(peer, "subject", &p->subject)
           != NGX_OK
        || ngx_http_grpc_guard_authz_set_str(peer, "fingerprint",
                                             &p->fingerprint)
           != NGX_OK)
    {
        goto failed;
    }

    if (json_object_size(peer) == 0) {
        json_decref(peer);
        return NGX_OK;
    }

    return json_object_set_new(input, "peer", peer) == 0 ? NGX_OK
                                                         : NGX_ERROR;

failed:

    json_decref(peer);
    json_decref(dns);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_authz_metadata_object(ngx_http_request_t *r,
    json_t *input, ngx_http_grpc_guard_authz_t *az,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    json_t           *metadata, *s;
    ngx_str_t        *name, value, *token;
    ngx_uint_t        i, n;
    ngx_table_elt_t  *h;

    if (az->metadata == NULL) {
        return NGX_OK;
    }

    metadata = json_object();
    if (metadata == NULL) {
        return NGX_ERROR;
    }

    token = ctx->call.jwt ? &ctx->call.jwt->token : NULL;
    name = az->metadata->elts;

    for (i = 0; i < az->metadata->nelts; i++) {

        n = 0;
        h = ngx_http_grpc_guard_find_header(&r->headers_in.headers, &name[i],
                                            &n);
        if (h == NULL) {
            continue;
        }

        value = h->value;

        /* a header sent more than once: its values joined by ", " */

        if (n > 1) {
            if (ngx_http_grpc_guard_authz_join(r, &name[i], &value)
                != NGX_OK)
            {
                goto failed;
            }
        }

        /*
         * the token never goes to the engine, whatever header it came
         * in (grpc_guard_jwt_token may read any)
         */

        if (token && ngx_http_grpc_guard_authz_holds(&value, token)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "grpc guard: \"%V\" holds the token: left out "
                          "of the authorization input", &name[i]);
            continue;
        }

        s = json_stringn((char *) value.data, value.len);

        if (s == NULL) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "grpc guard: \"%V\" is not UTF-8: left out of the "
                          "authorization input", &name[i]);
            continue;
        }

        if (json_object_setn_new(metadata, (char *) name[i].data,
                                 name[i].len, s)
            != 0)
        {
            goto failed;
        }
    }

    if (json_object_size(metadata) == 0) {
        json_decref(metadata);
        return NGX_OK;
    }

    return json_object_set_new(input, "metadata", metadata) == 0 ? NGX_OK
                                                                 : NGX_ERROR;

failed:

    json_decref(metadata);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_authz_join(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char           *p;
    size_t            len;
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    p = NULL;
    len = 0;

    for (i = 0; i < 2; i++) {

        part = &r->headers_in.headers.part;
        h = part->elts;

        for (n = 0; /* void */; n++) {

            if (n >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                n = 0;
            }

            if (h[n].key.len != name->len
                || ngx_strncasecmp(h[n].key.data, name->data, name->len)
                   != 0)
            {
                continue;
            }

            if (i == 0) {
                len += h[n].value.len + 2;
                continue;
            }

            if (p != value->data) {
                *p++ = ',';
                *p++ = ' ';
            }

            p = ngx_cpymem(p, h[n].value.data, h[n].value.len);
        }

        if (i == 0) {
            value->data = ngx_pnalloc(r->pool, len);
            if (value->data == NULL) {
                return NGX_ERROR;
            }

            p = value->data;
        }
    }

    value->len = p - value->data;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_grpc_guard_authz_holds(ngx_str_t *value, ngx_str_t *token)
{
    u_char  *p, *last;

    if (token->len == 0 || value->len < token->len) {
        return 0;
    }

    last = value->data + value->len - token->len;

    for (p = value->data; p <= last; p++) {
        if (*p == token->data[0]
            && ngx_memcmp(p, token->data, token->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_grpc_guard_authz_dump(ngx_pool_t *pool, json_t *json,
    ngx_str_t *text)
{
    ngx_http_grpc_guard_authz_buf_t  buf;

    /* sorted members: the same input is the same text, and the same key */

    /* NGX_DECLINED: more than NGX_HTTP_GRPC_GUARD_AUTHZ_INPUT bytes */

    ngx_memzero(&buf, sizeof(ngx_http_grpc_guard_authz_buf_t));
    buf.pool = pool;

    if (json_dump_callback(json, ngx_http_grpc_guard_authz_dump_chunk, &buf,
                           JSON_COMPACT|JSON_SORT_KEYS)
        != 0)
    {
        return buf.too_big ? NGX_DECLINED : NGX_ERROR;
    }

    text->data = buf.start;
    text->len = buf.last - buf.start;

    return NGX_OK;
}


static int
ngx_http_grpc_guard_authz_dump_chunk(const char *buffer, size_t size,
    void *data)
{
    ngx_http_grpc_guard_authz_buf_t *buf = data;

    u_char  *p;
    size_t   len, used;

    used = buf->last - buf->start;

    if (used + size > NGX_HTTP_GRPC_GUARD_AUTHZ_INPUT) {
        buf->too_big = 1;
        return -1;
    }

    if ((size_t) (buf->end - buf->last) < size) {
        len = ngx_max(2 * (size_t) (buf->end - buf->start), used + size);
        len = ngx_max(len, 512);

        p = ngx_pnalloc(buf->pool, len);
        if (p == NULL) {
            return -1;
        }

        if (used) {
            ngx_memcpy(p, buf->start, used);
        }

        buf->start = p;
        buf->last = p + used;
        buf->end = p + len;
    }

    buf->last = ngx_cpymem(buf->last, buffer, size);

    return 0;
}


static ngx_int_t
ngx_http_grpc_guard_authz_digest(ngx_str_t *text, u_char *key)
{
    unsigned int  len;

    len = NGX_HTTP_GRPC_GUARD_SHA256_LEN;

    if (EVP_Digest(text->data, text->len, key, &len, EVP_sha256(), NULL)
        != 1)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


char *
ngx_http_grpc_guard_authz_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ssize_t                       size;
    ngx_str_t                    *value, s;
    ngx_int_t                     ms;
    ngx_uint_t                    i, j;
    ngx_http_grpc_guard_authz_t  *az;

    if (glcf->authz != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        glcf->authz = NULL;
        return NGX_CONF_OK;
    }

    az = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_authz_t));
    if (az == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     az->cache = 0;
     *     az->failure = NGX_HTTP_GRPC_GUARD_AUTHZ_CLOSED;
     *     az->metadata = NULL;
     */

    size = NGX_HTTP_GRPC_GUARD_AUTHZ_SIZE;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            size = ngx_parse_size(&s);

            if (size <= 0 || size > NGX_HTTP_GRPC_GUARD_AUTHZ_SIZE_LIMIT) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "cache=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                az->cache = 0;
                continue;
            }

            ms = ngx_parse_time(&s, 0);
            if (ms == NGX_ERROR || ms < 1000) {
                goto invalid;
            }

            az->cache = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "failure=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            for (j = 0; ngx_http_grpc_guard_authz_failures[j].name.len; j++) {
                if (ngx_http_grpc_guard_authz_failures[j].name.len == s.len
                    && ngx_strncmp(ngx_http_grpc_guard_authz_failures[j]
                                   .name.data, s.data, s.len) == 0)
                {
                    break;
                }
            }

            if (ngx_http_grpc_guard_authz_failures[j].name.len == 0) {
                goto invalid;
            }

            az->failure = ngx_http_grpc_guard_authz_failures[j].value;
            continue;
        }

        goto invalid;
    }

    az->remote = ngx_http_grpc_guard_remote_add_keyed(cf,
                                          NGX_HTTP_GRPC_GUARD_REMOTE_AUTHZ,
                                          &value[1], size,
                                          NGX_HTTP_GRPC_GUARD_AUTHZ_TIMEOUT,
                                          ngx_http_grpc_guard_authz_check_reply,
                                          az);
    if (az->remote == NULL) {
        return NGX_CONF_ERROR;
    }

    glcf->authz = az;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


char *
ngx_http_grpc_guard_authz_metadata(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char      *p;
    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (glcf->authz_metadata != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    glcf->authz_metadata = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                            sizeof(ngx_str_t));
    if (glcf->authz_metadata == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        for (p = value[i].data; p < value[i].data + value[i].len; p++) {

            /* a header name as HTTP/2 sends it: a token, lowercase */

            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                  || (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_'
                  || *p == '.'))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid metadata name \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            *p = ngx_tolower(*p);
        }

        if (value[i].len == 0) {
            return "takes an empty name";
        }

        name = ngx_array_push(glcf->authz_metadata);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_authz_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_str_t                    *name;
    ngx_uint_t                    i;
    ngx_http_grpc_guard_authz_t  *az;

    ngx_conf_merge_ptr_value(conf->authz, prev->authz, NULL);
    ngx_conf_merge_ptr_value(conf->authz_metadata, prev->authz_metadata,
                             NULL);

    /*
     * a credential never goes to the policy engine: the names are
     * checked against the API-key header the location has in the end
     */

    if (conf->authz_metadata) {
        name = conf->authz_metadata->elts;

        for (i = 0; i < conf->authz_metadata->nelts; i++) {
            if (ngx_http_grpc_guard_authz_forbidden(&name[i],
                                                    &conf->api_key_header))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"grpc_guard_authz_metadata\" may not "
                                   "list \"%V\": it carries a credential",
                                   &name[i]);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (conf->authz == NULL) {
        return NGX_CONF_OK;
    }

    /* the metadata list of this level goes with the request of any level */

    if (conf->authz->metadata != conf->authz_metadata) {
        az = ngx_palloc(cf->pool, sizeof(ngx_http_grpc_guard_authz_t));
        if (az == NULL) {
            return NGX_CONF_ERROR;
        }

        *az = *conf->authz;
        az->metadata = conf->authz_metadata;
        conf->authz = az;
    }

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_grpc_guard_authz_forbidden(ngx_str_t *name,
    ngx_str_t *api_key_header)
{
    static ngx_str_t  credentials[] = {
        ngx_string("authorization"),
        ngx_string("proxy-authorization"),
        ngx_string("cookie"),
        ngx_null_string
    };

    ngx_str_t  *c;

    if (name->len == api_key_header->len
        && ngx_strncasecmp(name->data, api_key_header->data, name->len) == 0)
    {
        return 1;
    }

    for (c = credentials; c->len; c++) {
        if (name->len == c->len
            && ngx_strncmp(name->data, c->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
