
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Opaque tokens (RFC 7662): the bearer token that only the identity
 * provider can check is sent to its introspection endpoint through a
 * subrequest (remote.c, keyed by the SHA-256 of the token), the reply is
 * judged once when it comes and kept in the shared zone, and on every
 * call its members become the call's claims, checked as a JWT's are
 * (exp, nbf, iss, aud with grpc_guard_jwt_*), for the ACL, the variables
 * and the audit principal.
 *
 * A reply is an answer when its status is 200 and its body a JSON object
 * whose "active" member is a boolean and whose registered members have
 * their types (numbers for the times, strings for the names, "aud" a
 * string or an array of strings, no control character in "sub" or
 * "client_id"); anything else is the provider's failure: 14, never kept.
 * "active": false is kept for negative_cache; "active": true for cache,
 * never past "exp".
 *
 * A connection remembers its last token with an active answer, until the
 * zone's answer expires: gRPC clients make many calls with one token on a
 * connection, and such a call needs no digest, no zone and no JSON; its
 * time claims are checked again, and the answer is parsed only when a
 * claim is read (an ACL condition, a variable, the authorization input).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"


#define NGX_HTTP_GRPC_GUARD_INTROSPECT_CACHE     300000
#define NGX_HTTP_GRPC_GUARD_INTROSPECT_NEGATIVE  10000
#define NGX_HTTP_GRPC_GUARD_INTROSPECT_SIZE      65536
#define NGX_HTTP_GRPC_GUARD_INTROSPECT_LIMIT     (16 * 1024 * 1024)
#define NGX_HTTP_GRPC_GUARD_INTROSPECT_TIMEOUT   5000

/* the most a connection keeps of its last token and answer */
#define NGX_HTTP_GRPC_GUARD_INTROSPECT_MEMO_MAX  8192
#define NGX_HTTP_GRPC_GUARD_INTROSPECT_MEMO_MIN  1024


struct ngx_http_grpc_guard_introspect_s {
    ngx_http_grpc_guard_remote_t  *remote;
    ngx_msec_t                  cache;      /* active replies, at most */
    ngx_msec_t                  negative;   /* inactive replies */
};


/* a connection's last token with an active answer, and until when */

typedef struct {
    ngx_http_grpc_guard_introspect_t  *ic;  /* NULL: nothing remembered */
    ngx_http_grpc_guard_jwt_conf_t    *jcf;
    u_char                     *data;   /* token, answer, sub, iss, id */
    size_t                      size;
    size_t                      token_len;
    size_t                      claims_len;
    size_t                      sub_len;
    size_t                      iss_len;
    size_t                      client_id_len;
    ngx_msec_t                  expires;    /* the zone's answer */
    ngx_http_grpc_guard_jwt_token_t  tok;   /* exp, nbf */
} ngx_http_grpc_guard_introspect_memo_t;


static ngx_int_t ngx_http_grpc_guard_introspect_recall(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_str_t *token,
    ngx_http_grpc_guard_jwt_ctx_t **jctx, char **reason);
static void ngx_http_grpc_guard_introspect_remember(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok, ngx_msec_t expires);
static void ngx_http_grpc_guard_introspect_memo_cleanup(void *data);
static ngx_int_t ngx_http_grpc_guard_introspect_body(ngx_pool_t *pool,
    ngx_str_t *token, ngx_str_t *body);
static ngx_int_t ngx_http_grpc_guard_introspect_types(json_t *reply);
static ngx_uint_t ngx_http_grpc_guard_introspect_text(json_t *v);


static ngx_str_t  ngx_http_grpc_guard_introspect_inactive =
    ngx_string("{\"active\":false}");


ngx_int_t
ngx_http_grpc_guard_introspect_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res)
{
    char                              *reason;
    ngx_int_t                          rc;
    ngx_str_t                          token, body, text, s;
    ngx_msec_t                         expires;
    ngx_http_grpc_guard_jwt_ctx_t     *jctx;
    ngx_http_grpc_guard_jwt_token_t    tok;
    ngx_http_grpc_guard_introspect_t  *ic;
    u_char                             key[NGX_HTTP_GRPC_GUARD_SHA256_LEN];

    ic = glcf->introspect;

    rc = ngx_http_grpc_guard_jwt_bearer(r, glcf, ctx, res, "token_missing",
                                        &token);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_grpc_guard_introspect_shared(glcf)
        && ngx_http_grpc_guard_jwt_split(&token, &s, &s, &s) == NGX_OK)
    {
        /* a JWS: verified locally, as a JWT */

        res->presented = 0;
        res->reason = "token_missing";
        return NGX_DECLINED;
    }

    if (token.len == 0 || token.len > glcf->jwt.max_size) {
        res->reason = "token_malformed";
        return NGX_DECLINED;
    }

    rc = ngx_http_grpc_guard_introspect_recall(r, glcf, &token, &jctx,
                                               &reason);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {
        goto checked;
    }

    if (EVP_Digest(token.data, token.len, key, NULL, EVP_sha256(), NULL)
        != 1)
    {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_introspect_body(r->pool, &token, &body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_grpc_guard_remote_keyed(r, ic->remote, key, &body, r->pool,
                                          &text, &expires);

    if (rc == NGX_AGAIN || rc == NGX_ERROR) {
        return rc;
    }

    if (rc == NGX_DECLINED) {
        res->reason = "introspection_unavailable";
        res->status = NGX_HTTP_GRPC_GUARD_UNAVAILABLE;
        return NGX_DECLINED;
    }

    /* an answer, judged when it came: its members are the claims */

    jctx = ngx_http_grpc_guard_jwt_claims_ctx(r->pool, &token, &text);

    if (jctx == NULL) {
        return NGX_ERROR;
    }

    if (!json_is_true(json_object_get(jctx->payload, "active"))) {
        res->reason = "token_inactive";
        return NGX_DECLINED;
    }

    /* the claims about time, issuer and audience, as of a JWT */

    ngx_memzero(&tok, sizeof(ngx_http_grpc_guard_jwt_token_t));

    reason = ngx_http_grpc_guard_jwt_check_claims(&glcf->jwt, jctx, &tok);

    if (reason == NULL) {
        ngx_http_grpc_guard_introspect_remember(r, glcf, jctx, &tok, expires);
    }

checked:

    if (reason) {
        ngx_log_error(glcf->log_level, r->connection->log, 0,
                      "grpc guard: an introspected token is refused: %s",
                      reason);

        res->reason = "token_inactive";
        return NGX_DECLINED;
    }

    ctx->call.jwt = jctx;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_introspect_recall(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_str_t *token,
    ngx_http_grpc_guard_jwt_ctx_t **jctx, char **reason)
{
    u_char                                 *p;
    ngx_http_grpc_guard_jwt_ctx_t          *j;
    ngx_http_grpc_guard_jwt_token_t         tok;
    ngx_http_grpc_guard_introspect_memo_t  *memo;

    /*
     * the connection's last token, with the same settings, while the
     * zone keeps its answer: NGX_OK with the claims in "jctx", or with
     * "reason" when a time claim refuses the token now; NGX_DECLINED
     * when there is no such token
     */

    *jctx = NULL;

    memo = ngx_http_grpc_guard_connection_memo(r->connection,
                           ngx_http_grpc_guard_introspect_memo_cleanup,
                           sizeof(ngx_http_grpc_guard_introspect_memo_t), 0);

    if (memo == NULL
        || memo->ic != glcf->introspect
        || memo->jcf != &glcf->jwt
        || memo->token_len != token->len
        || (ngx_msec_int_t) (memo->expires - ngx_current_msec) <= 0
        || ngx_memcmp(memo->data, token->data, token->len) != 0)
    {
        return NGX_DECLINED;
    }

    ngx_http_grpc_guard_metrics_remote(NGX_HTTP_GRPC_GUARD_REMOTE_INTROSPECTION,
                                       NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_HIT);

    tok = memo->tok;

    *reason = ngx_http_grpc_guard_jwt_recheck(&glcf->jwt, &tok);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard introspection: connection hit, %s",
                   *reason ? *reason : "valid");

    if (*reason) {
        return NGX_OK;
    }

    /* a copy for the call: another call may change the memo meanwhile */

    p = ngx_pnalloc(r->pool, memo->claims_len + memo->sub_len
                             + memo->iss_len + memo->client_id_len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    j = ngx_http_grpc_guard_jwt_create_ctx(r->pool, token);
    if (j == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, memo->data + memo->token_len,
               memo->claims_len + memo->sub_len + memo->iss_len
               + memo->client_id_len);

    j->claims.data = p;
    j->claims.len = memo->claims_len;
    p += memo->claims_len;

    j->sub.data = p;
    j->sub.len = memo->sub_len;
    p += memo->sub_len;

    j->iss.data = p;
    j->iss.len = memo->iss_len;
    p += memo->iss_len;

    j->client_id.data = p;
    j->client_id.len = memo->client_id_len;

    *jctx = j;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_introspect_remember(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok, ngx_msec_t expires)
{
    size_t                                  n;
    u_char                                 *p;
    ngx_http_grpc_guard_introspect_memo_t  *memo;

    /* an answer the zone keeps until "expires", passed by its claims */

    if ((ngx_msec_int_t) (expires - ngx_current_msec) <= 0) {
        return;
    }

    n = jctx->token.len + jctx->claims.len + jctx->sub.len + jctx->iss.len
        + jctx->client_id.len;

    if (n > NGX_HTTP_GRPC_GUARD_INTROSPECT_MEMO_MAX) {
        return;
    }

    memo = ngx_http_grpc_guard_connection_memo(r->connection,
                           ngx_http_grpc_guard_introspect_memo_cleanup,
                           sizeof(ngx_http_grpc_guard_introspect_memo_t), 1);
    if (memo == NULL) {
        return;
    }

    memo->ic = NULL;

    if (ngx_http_grpc_guard_memo_room(r->connection->pool, &memo->data,
                                      &memo->size, n,
                                      NGX_HTTP_GRPC_GUARD_INTROSPECT_MEMO_MIN,
                                      NGX_HTTP_GRPC_GUARD_INTROSPECT_MEMO_MAX)
        != NGX_OK)
    {
        return;
    }

    /* "sub", "iss" or "client_id" may be absent: no data to copy */

    p = ngx_cpymem(memo->data, jctx->token.data, jctx->token.len);
    p = ngx_cpymem(p, jctx->claims.data, jctx->claims.len);

    if (jctx->sub.len) {
        p = ngx_cpymem(p, jctx->sub.data, jctx->sub.len);
    }

    if (jctx->iss.len) {
        p = ngx_cpymem(p, jctx->iss.data, jctx->iss.len);
    }

    if (jctx->client_id.len) {
        ngx_memcpy(p, jctx->client_id.data, jctx->client_id.len);
    }

    memo->token_len = jctx->token.len;
    memo->claims_len = jctx->claims.len;
    memo->sub_len = jctx->sub.len;
    memo->iss_len = jctx->iss.len;
    memo->client_id_len = jctx->client_id.len;
    memo->expires = expires;
    memo->tok = *tok;
    memo->jcf = &glcf->jwt;
    memo->ic = glcf->introspect;
}


static void
ngx_http_grpc_guard_introspect_memo_cleanup(void *data)
{
    /* nothing to free: the memo and its data are the connection pool's */
}


static ngx_int_t
ngx_http_grpc_guard_introspect_body(ngx_pool_t *pool, ngx_str_t *token,
    ngx_str_t *body)
{
    u_char     *p, *s, *last;
    ngx_str_t   hint;

    static u_char  hex[] = "0123456789ABCDEF";

    /*
     * application/x-www-form-urlencoded: every byte of the token but the
     * unreserved ones is percent-encoded
     */

    ngx_str_set(&hint, "&token_type_hint=access_token");

    p = ngx_pnalloc(pool, sizeof("token=") - 1 + 3 * token->len + hint.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    p = ngx_cpymem(p, "token=", sizeof("token=") - 1);

    last = token->data + token->len;

    for (s = token->data; s < last; s++) {

        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
            || (*s >= '0' && *s <= '9')
            || *s == '-' || *s == '.' || *s == '_' || *s == '~')
        {
            *p++ = *s;
            continue;
        }

        *p++ = '%';
        *p++ = hex[*s >> 4];
        *p++ = hex[*s & 0xf];
    }

    p = ngx_cpymem(p, hint.data, hint.len);

    body->len = p - body->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_introspect_reply(ngx_http_grpc_guard_remote_reply_t *reply,
    void *data)
{
    ngx_http_grpc_guard_introspect_t *ic = data;

    double          exp, left;
    json_t         *json, *v;
    ngx_int_t       rc;
    ngx_pool_t     *jpool;
    json_free_t     free_func;
    json_malloc_t   malloc_func;

    /*
     * once per reply, in the worker that fetched it: an answer or not,
     * and how long it is kept (see the top of this file)
     */

    if (reply->status != NGX_HTTP_OK) {
        return NGX_DECLINED;
    }

    json_get_alloc_funcs(&malloc_func, &free_func);

    jpool = (malloc_func == ngx_http_grpc_guard_jwt_json_alloc)
            ? reply->pool : NULL;

    json = ngx_http_grpc_guard_jwt_json(jpool, reply->body.data,
                                        reply->body.len);
    if (json == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_http_grpc_guard_introspect_types(json);

    if (rc != NGX_OK) {
        goto done;
    }

    if (json_is_false(json_object_get(json, "active"))) {

        /* nothing of an inactive token's reply is needed */

        reply->result = ngx_http_grpc_guard_introspect_inactive;
        reply->valid = ic->negative;

        goto done;
    }

    reply->valid = ic->cache;

    v = json_object_get(json, "exp");

    if (v) {
        exp = json_number_value(v);
        left = (exp - (double) ngx_time()) * 1000;

        if (left < (double) reply->valid) {
            reply->valid = (left > 0) ? (ngx_msec_t) left : 0;
        }
    }

done:

    if (jpool == NULL) {
        json_decref(json);
    }

    return rc;
}


static ngx_int_t
ngx_http_grpc_guard_introspect_types(json_t *reply)
{
    size_t       i;
    json_t      *v;
    ngx_uint_t   n;

    static char  *numbers[] = { "exp", "nbf", "iat", NULL };
    static char  *strings[] = { "iss", "sub", "client_id", "scope",
                                "username", "token_type", "jti", NULL };

    v = json_object_get(reply, "active");

    if (!json_is_boolean(v)) {
        return NGX_DECLINED;
    }

    for (n = 0; numbers[n]; n++) {
        v = json_object_get(reply, numbers[n]);

        if (v && !json_is_number(v)) {
            return NGX_DECLINED;
        }
    }

    for (n = 0; strings[n]; n++) {
        v = json_object_get(reply, strings[n]);

        if (v && !json_is_string(v)) {
            return NGX_DECLINED;
        }
    }

    v = json_object_get(reply, "aud");

    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++) {
            if (!json_is_string(json_array_get(v, i))) {
                return NGX_DECLINED;
            }
        }

    } else if (v && !json_is_string(v)) {
        return NGX_DECLINED;
    }

    /* the principal goes into logs and upstream metadata: text only */

    if (!ngx_http_grpc_guard_introspect_text(json_object_get(reply, "sub"))
        || !ngx_http_grpc_guard_introspect_text(
               json_object_get(reply, "client_id")))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_grpc_guard_introspect_text(json_t *v)
{
    u_char  *p, *last;

    if (v == NULL) {
        return 1;
    }

    p = (u_char *) json_string_value(v);
    last = p + json_string_length(v);

    for ( /* void */ ; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }

    return 1;
}


ngx_http_grpc_guard_introspect_t *
ngx_http_grpc_guard_introspect_create(ngx_pool_t *pool, ngx_msec_t cache,
    ngx_msec_t negative)
{
    ngx_http_grpc_guard_introspect_t  *ic;

    /* the settings the reply check needs (the fuzz target makes its own) */

    ic = ngx_pcalloc(pool, sizeof(ngx_http_grpc_guard_introspect_t));
    if (ic == NULL) {
        return NULL;
    }

    ic->cache = cache;
    ic->negative = negative;

    return ic;
}


ngx_uint_t
ngx_http_grpc_guard_introspect_shared(ngx_http_grpc_guard_loc_conf_t *glcf)
{
    ngx_uint_t  both;

    /*
     * whether jwt and introspection both look at the location's bearer
     * tokens, and so take them by their form: listed with "satisfy any",
     * or both configured where no method is required but the ACL asks
     * for identities
     */

    both = NGX_HTTP_GRPC_GUARD_AUTH_JWT|NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION;

    if (glcf->auth == 0) {
        return glcf->introspect != NULL
               && ngx_http_grpc_guard_jwt_configured(glcf);
    }

    return (glcf->auth & both) == both
           && glcf->satisfy == NGX_HTTP_GRPC_GUARD_SATISFY_ANY;
}


ngx_uint_t
ngx_http_grpc_guard_introspect_configured(
    ngx_http_grpc_guard_loc_conf_t *glcf)
{
    return glcf->introspect != NULL;
}


char *
ngx_http_grpc_guard_introspect_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->introspect, prev->introspect, NULL);

    if (conf->enable
        && (conf->auth & NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION)
        && conf->introspect == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_auth introspection\" needs "
                           "\"grpc_guard_introspection_request\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_introspection_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    size_t                             max_size;
    ssize_t                            size;
    ngx_str_t                         *value, s;
    ngx_int_t                          ms;
    ngx_uint_t                         i, n;
    ngx_msec_t                         cache, negative, timeout;
    ngx_http_grpc_guard_introspect_t  *ic;

    if (glcf->introspect != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        glcf->introspect = NULL;
        return NGX_CONF_OK;
    }

    cache = NGX_HTTP_GRPC_GUARD_INTROSPECT_CACHE;
    negative = NGX_HTTP_GRPC_GUARD_INTROSPECT_NEGATIVE;
    timeout = NGX_HTTP_GRPC_GUARD_INTROSPECT_TIMEOUT;
    max_size = NGX_HTTP_GRPC_GUARD_INTROSPECT_SIZE;

    for (i = 2; i < cf->args->nelts; i++) {

        /* NAME=VALUE: a size for max_size, a time for the others */

        s.data = (u_char *) ngx_strlchr(value[i].data,
                                        value[i].data + value[i].len, '=');
        if (s.data == NULL) {
            goto invalid;
        }

        n = s.data - value[i].data;
        s.data++;
        s.len = value[i].len - n - 1;

        if (n == 8 && ngx_strncmp(value[i].data, "max_size", 8) == 0) {
            size = ngx_parse_size(&s);

            if (size <= 0 || size > NGX_HTTP_GRPC_GUARD_INTROSPECT_LIMIT) {
                goto invalid;
            }

            max_size = size;
            continue;
        }

        ms = ngx_parse_time(&s, 0);

        if (ms == NGX_ERROR) {
            goto invalid;
        }

        if (n == 5 && ngx_strncmp(value[i].data, "cache", 5) == 0) {
            cache = ms;

        } else if (n == 14
                   && ngx_strncmp(value[i].data, "negative_cache", 14) == 0)
        {
            negative = ms;

        } else if (n == 7 && ngx_strncmp(value[i].data, "timeout", 7) == 0
                   && ms > 0)
        {
            timeout = ms;

        } else {
            goto invalid;
        }
    }

    ic = ngx_http_grpc_guard_introspect_create(cf->pool, cache, negative);
    if (ic == NULL) {
        return NGX_CONF_ERROR;
    }

    ic->remote = ngx_http_grpc_guard_remote_add_keyed(cf,
                                     NGX_HTTP_GRPC_GUARD_REMOTE_INTROSPECTION,
                                     &value[1], max_size, timeout,
                                     ngx_http_grpc_guard_introspect_reply, ic);
    if (ic->remote == NULL) {
        return NGX_CONF_ERROR;
    }

    glcf->introspect = ic;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}
