
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The token path of JWT authentication: a bearer token taken from the
 * call, parsed and verified, its claims checked, and then read for the
 * identity, for variables and for ACL conditions.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"


/* JSON nesting of the header and the payload */
#define NGX_HTTP_GRPC_GUARD_JWT_MAX_DEPTH     16

/* signature checks of one token when several keys fit it */
#define NGX_HTTP_GRPC_GUARD_JWT_MAX_TRIES     4

/* an ECDSA-Sig-Value of P-521: two INTEGERs of at most 67 bytes */
#define NGX_HTTP_GRPC_GUARD_JWT_DER_LEN       (3 + 2 * (2 + 67))


static void ngx_http_grpc_guard_jwt_ctx_cleanup(void *data);
static ngx_int_t ngx_http_grpc_guard_jwt_verify(ngx_http_request_t *r,
    ngx_http_grpc_guard_main_conf_t *gmcf,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok, char **reason);
static ngx_int_t ngx_http_grpc_guard_jwt_verify_signature(
    ngx_http_request_t *r, ngx_http_grpc_guard_main_conf_t *gmcf,
    ngx_http_grpc_guard_jwt_conf_t *jcf,
    ngx_http_grpc_guard_jwt_token_t *tok, char **reason);
static ngx_int_t ngx_http_grpc_guard_jwt_verify_key(ngx_http_request_t *r,
    ngx_http_grpc_guard_main_conf_t *gmcf, ngx_http_grpc_guard_jwt_key_t *key,
    ngx_http_grpc_guard_jwt_token_t *tok);
static u_char *ngx_http_grpc_guard_jwt_der_integer(u_char *p, u_char *n,
    size_t size);
static ngx_int_t ngx_http_grpc_guard_jwt_in_list(ngx_array_t *list,
    json_t *value);


ngx_http_grpc_guard_jwt_alg_t
    ngx_http_grpc_guard_jwt_algs[NGX_HTTP_GRPC_GUARD_JWT_NALGS + 1] = {

    { ngx_string("RS256"), NGX_HTTP_GRPC_GUARD_JWT_RS256,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_RSA, NGX_HTTP_GRPC_GUARD_JWT_SHA256, 0 },

    { ngx_string("RS384"), NGX_HTTP_GRPC_GUARD_JWT_RS384,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_RSA, NGX_HTTP_GRPC_GUARD_JWT_SHA384, 0 },

    { ngx_string("RS512"), NGX_HTTP_GRPC_GUARD_JWT_RS512,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_RSA, NGX_HTTP_GRPC_GUARD_JWT_SHA512, 0 },

    { ngx_string("PS256"), NGX_HTTP_GRPC_GUARD_JWT_PS256,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_PSS, NGX_HTTP_GRPC_GUARD_JWT_SHA256, 0 },

    { ngx_string("PS384"), NGX_HTTP_GRPC_GUARD_JWT_PS384,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_PSS, NGX_HTTP_GRPC_GUARD_JWT_SHA384, 0 },

    { ngx_string("PS512"), NGX_HTTP_GRPC_GUARD_JWT_PS512,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_PSS, NGX_HTTP_GRPC_GUARD_JWT_SHA512, 0 },

    { ngx_string("ES256"), NGX_HTTP_GRPC_GUARD_JWT_ES256,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_EC, NGX_HTTP_GRPC_GUARD_JWT_SHA256, 32 },

    { ngx_string("ES384"), NGX_HTTP_GRPC_GUARD_JWT_ES384,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_EC, NGX_HTTP_GRPC_GUARD_JWT_SHA384, 48 },

    { ngx_string("ES512"), NGX_HTTP_GRPC_GUARD_JWT_ES512,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_EC, NGX_HTTP_GRPC_GUARD_JWT_SHA512, 66 },

    { ngx_string("EdDSA"), NGX_HTTP_GRPC_GUARD_JWT_EDDSA,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_EDDSA, NGX_HTTP_GRPC_GUARD_JWT_NO_MD, 64 },

    { ngx_string("HS256"), NGX_HTTP_GRPC_GUARD_JWT_HS256,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_HMAC, NGX_HTTP_GRPC_GUARD_JWT_SHA256, 32 },

    { ngx_string("HS384"), NGX_HTTP_GRPC_GUARD_JWT_HS384,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_HMAC, NGX_HTTP_GRPC_GUARD_JWT_SHA384, 48 },

    { ngx_string("HS512"), NGX_HTTP_GRPC_GUARD_JWT_HS512,
      NGX_HTTP_GRPC_GUARD_JWT_KIND_HMAC, NGX_HTTP_GRPC_GUARD_JWT_SHA512, 64 },

    { ngx_null_string, 0, 0, 0, 0 }
};


char  *ngx_http_grpc_guard_jwt_md_names[] = {
    "SHA256", "SHA384", "SHA512"
};


/* where jansson allocates while a token is parsed; NULL: malloc() */
static ngx_pool_t  *ngx_http_grpc_guard_jwt_json_pool;


static ngx_str_t  ngx_http_grpc_guard_jwt_tls_message =
    ngx_string("transport security required");


/* base64url: 0-63, or 0xff for a byte outside the alphabet */

static u_char  ngx_http_grpc_guard_jwt_b64[256] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,     /*  !"#$%&'()  */
    0xff, 0xff, 0xff, 0xff, 0xff, 62,   0xff, 0xff,     /* *+,-./      */
    52,   53,   54,   55,   56,   57,   58,   59,       /* 01234567    */
    60,   61,   0xff, 0xff, 0xff, 0xff, 0xff, 0xff,     /* 89:;<=>?    */
    0xff, 0,    1,    2,    3,    4,    5,    6,        /* @ABCDEFG    */
    7,    8,    9,    10,   11,   12,   13,   14,       /* HIJKLMNO    */
    15,   16,   17,   18,   19,   20,   21,   22,       /* PQRSTUVW    */
    23,   24,   25,   0xff, 0xff, 0xff, 0xff, 63,       /* XYZ[\]^_    */
    0xff, 26,   27,   28,   29,   30,   31,   32,       /* `abcdefg    */
    33,   34,   35,   36,   37,   38,   39,   40,       /* hijklmno    */
    41,   42,   43,   44,   45,   46,   47,   48,       /* pqrstuvw    */
    49,   50,   51,   0xff, 0xff, 0xff, 0xff, 0xff,     /* xyz{|}~     */

    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
};


ngx_int_t
ngx_http_grpc_guard_jwt_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res)
{
    char                              *reason;
    u_char                            *set;
    ngx_int_t                          rc;
    ngx_str_t                          token, s;
    ngx_http_grpc_guard_jwt_ctx_t     *jctx;
    ngx_http_grpc_guard_jwt_conf_t    *jcf;
    ngx_http_grpc_guard_jwt_cache_t   *cache;
    ngx_http_grpc_guard_jwt_token_t    tok;
    ngx_http_grpc_guard_jwt_remote_t  *jr;
    ngx_http_grpc_guard_main_conf_t   *gmcf;
    u_char                             hash[NGX_HTTP_GRPC_GUARD_SHA256_LEN];

    jcf = &glcf->jwt;

    rc = ngx_http_grpc_guard_jwt_bearer(r, glcf, ctx, res, "jwt_missing",
                                        &token);
    if (rc != NGX_OK) {
        return rc;
    }

    if (token.len == 0) {
        res->reason = "jwt_malformed";
        return NGX_DECLINED;
    }

    if (ngx_http_grpc_guard_introspect_shared(glcf)
        && ngx_http_grpc_guard_jwt_split(&token, &s, &s, &s) != NGX_OK)
    {
        /* not in JWS compact form: the identity provider introspects it */

        res->presented = 0;
        res->reason = "jwt_missing";
        return NGX_DECLINED;
    }

    if (token.len > jcf->max_size) {
        res->reason = "jwt_too_long";
        return NGX_DECLINED;
    }

    jctx = ngx_http_grpc_guard_jwt_create_ctx(r->pool, &token);
    if (jctx == NULL) {
        return NGX_ERROR;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    cache = gmcf->jwt_cache ? gmcf->jwt_cache->data : NULL;

    /*
     * the keys of the identity provider: fetched first when there are
     * none yet, refreshed when old; the call may wait for them
     */

    jr = jcf->remote;
    set = NULL;

    if (jr) {
        rc = ngx_http_grpc_guard_jwt_remote_ready(r, jr);

        if (rc != NGX_OK) {
            return rc;
        }

        set = jr->keys ? jr->digest : NULL;
    }

    ngx_memzero(&tok, sizeof(ngx_http_grpc_guard_jwt_token_t));

    reason = NULL;

    if (cache) {

        /* the connection's last token first, then the shared cache */

        rc = ngx_http_grpc_guard_jwt_memo_lookup(r, jcf, set, jctx, &tok,
                                                 &reason);

        if (rc == NGX_DECLINED) {
            if (ngx_http_grpc_guard_jwt_cache_key(gmcf->jwt, jcf, set, &token,
                                                  hash)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            rc = ngx_http_grpc_guard_jwt_cache_lookup(r, cache, jcf, hash,
                                                      jctx, &tok, &reason);

            if (rc == NGX_OK && reason == NULL) {
                ngx_http_grpc_guard_jwt_memo_set(r, jcf, set, jctx, &tok);
            }
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {

            if (reason) {
                res->reason = reason;
                return NGX_DECLINED;
            }

            goto verified;
        }
    }

    rc = ngx_http_grpc_guard_jwt_verify(r, gmcf, jcf, jctx, &tok, &reason);

    if (rc == NGX_ERROR || rc == NGX_AGAIN) {
        return rc;
    }

    if (rc == NGX_DECLINED) {

        if (jr && jr->keys == NULL
            && (ngx_strcmp(reason, "jwt_unknown_kid") == 0
                || ngx_strcmp(reason, "jwt_bad_alg") == 0))
        {
            /* no key fits, and the provider's keys cannot be had */

            reason = "jwks_unavailable";
            res->status = NGX_HTTP_GRPC_GUARD_UNAVAILABLE;
        }

        res->reason = reason;
        return NGX_DECLINED;
    }

    if (cache) {

        if (jr && jr->keys && (set == NULL
                               || ngx_memcmp(set, jr->digest,
                                             NGX_HTTP_GRPC_GUARD_SHA256_LEN)
                                  != 0))
        {
            /* verified with a set that came in the meantime */

            set = jr->digest;

            if (ngx_http_grpc_guard_jwt_cache_key(gmcf->jwt, jcf, set, &token,
                                                  hash)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        ngx_http_grpc_guard_jwt_cache_insert(r, cache, jcf, hash, jctx, &tok);
        ngx_http_grpc_guard_jwt_memo_set(r, jcf, set, jctx, &tok);
    }

verified:

    ctx->call.jwt = jctx;

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_bearer(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res, char *missing, ngx_str_t *token)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    /*
     * the bearer token of a call, for jwt and for introspection alike:
     * NGX_DECLINED with the reason when there is none or it came without
     * TLS; the header is taken out of the request whatever the outcome
     * (r->headers_in.authorization stays)
     */

    rc = ngx_http_grpc_guard_jwt_get_token(r, &glcf->jwt, token, &h);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        res->reason = missing;
        return NGX_DECLINED;
    }

    res->presented = 1;

    if (h && !glcf->forward_credentials) {
        if (ngx_http_grpc_guard_take_header(r, ctx, h) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (glcf->require_tls && r->connection->ssl == NULL) {
        res->reason = "tls_required";
        res->message = &ngx_http_grpc_guard_jwt_tls_message;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_strip(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_str_t         token;
    ngx_table_elt_t  *h;

    if (glcf->forward_credentials) {
        return NGX_OK;
    }

    /* a bearer token in "authorization"; a variable's source stays */

    if (ngx_http_grpc_guard_jwt_get_token(r, &glcf->jwt, &token, &h)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    if (h == NULL) {
        return NGX_OK;
    }

    return ngx_http_grpc_guard_take_header(r, ctx, h);
}


ngx_int_t
ngx_http_grpc_guard_jwt_get_token(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_table_elt_t **header)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    *header = NULL;

    if (jcf->token) {

        /* the bare token, from where the operator said */

        if (ngx_http_complex_value(r, jcf->token, token) != NGX_OK) {
            return NGX_ERROR;
        }

        return token->len ? NGX_OK : NGX_DECLINED;
    }

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_DECLINED;
    }

    /* RFC 6750, section 2.1: "Bearer" 1*SP b64token; the scheme in any case */

    p = h->value.data;
    last = p + h->value.len;

    if (h->value.len < sizeof("Bearer") - 1
        || ngx_strncasecmp(p, (u_char *) "Bearer", sizeof("Bearer") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof("Bearer") - 1;

    if (p < last && *p != ' ') {

        /* another scheme whose name begins with "Bearer" */

        return NGX_DECLINED;
    }

    while (p < last && *p == ' ') {
        p++;
    }

    token->data = p;
    token->len = last - p;

    *header = h;

    return NGX_OK;
}


ngx_http_grpc_guard_jwt_ctx_t *
ngx_http_grpc_guard_jwt_create_ctx(ngx_pool_t *pool, ngx_str_t *token)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_grpc_guard_jwt_ctx_t  *jctx;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_http_grpc_guard_jwt_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    jctx = cln->data;
    ngx_memzero(jctx, sizeof(ngx_http_grpc_guard_jwt_ctx_t));

    jctx->token = *token;

    cln->handler = ngx_http_grpc_guard_jwt_ctx_cleanup;

    return jctx;
}


static void
ngx_http_grpc_guard_jwt_ctx_cleanup(void *data)
{
    ngx_http_grpc_guard_jwt_ctx_t  *jctx = data;

    /* JSON parsed into the request pool goes with the pool */

    if (jctx->header && !jctx->pooled) {
        json_decref(jctx->header);
    }

    if (jctx->payload && !jctx->pooled) {
        json_decref(jctx->payload);
    }

    jctx->header = NULL;
    jctx->payload = NULL;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_verify(ngx_http_request_t *r,
    ngx_http_grpc_guard_main_conf_t *gmcf,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok, char **reason)
{
    ngx_int_t   rc;
    ngx_uint_t  tries;

    /*
     * everything is checked strictly before any cryptography: the
     * shape, the encoding, the JSON and the header
     */

    rc = ngx_http_grpc_guard_jwt_parse(r->pool, jctx, tok);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        *reason = "jwt_malformed";
        return NGX_DECLINED;
    }

    *reason = ngx_http_grpc_guard_jwt_check_header(jcf, jctx->header, tok);

    if (*reason) {
        return NGX_DECLINED;
    }

    for (tries = 0; /* void */ ; tries++) {

        rc = ngx_http_grpc_guard_jwt_verify_signature(r, gmcf, jcf, tok,
                                                      reason);

        if (rc != NGX_DECLINED
            || jcf->remote == NULL
            || jcf->remote->keys == NULL
            || tries == 2
            || ngx_strcmp(*reason, "jwt_unknown_kid") != 0)
        {
            break;
        }

        /*
         * a "kid" that no key has: the provider may have a new key; the
         * call waits for a refetch, at most one per min_refetch in all
         */

        rc = ngx_http_grpc_guard_jwt_remote_kid(r, jcf->remote);

        if (rc == NGX_DECLINED) {
            break;
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (rc != NGX_OK) {
        return rc;
    }

    *reason = ngx_http_grpc_guard_jwt_check_claims(jcf, jctx, tok);

    if (*reason) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_split(ngx_str_t *token, ngx_str_t *header,
    ngx_str_t *payload, ngx_str_t *signature)
{
    u_char  *p, *last, *dot1, *dot2;

    /* exactly three segments; the header and the payload not empty */

    p = token->data;
    last = p + token->len;

    dot1 = ngx_strlchr(p, last, '.');
    if (dot1 == NULL) {
        return NGX_ERROR;
    }

    dot2 = ngx_strlchr(dot1 + 1, last, '.');
    if (dot2 == NULL) {
        return NGX_ERROR;
    }

    if (ngx_strlchr(dot2 + 1, last, '.') != NULL) {
        return NGX_ERROR;
    }

    header->data = p;
    header->len = dot1 - p;

    payload->data = dot1 + 1;
    payload->len = dot2 - dot1 - 1;

    signature->data = dot2 + 1;
    signature->len = last - dot2 - 1;

    if (header->len == 0 || payload->len == 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_parse(ngx_pool_t *pool,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok)
{
    u_char         *buf;
    ngx_str_t       header, payload, sig, decoded;
    ngx_pool_t     *jpool;
    json_free_t     free_func;
    json_malloc_t   malloc_func;

    /*
     * decodes the three segments of a token and parses the header and
     * the payload, and with "tok" gives the signed part and the decoded
     * signature; the token was verified already when this is called
     * without "tok", for a variable after a cache hit.  The claims of an
     * introspected token are the answer kept for it ("claims"), parsed
     * as the payload, with no header.
     */

    if (jctx->claims.data) {
        return ngx_http_grpc_guard_jwt_claims_parse(pool, jctx);
    }

    if (ngx_http_grpc_guard_jwt_split(&jctx->token, &header, &payload, &sig)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_http_grpc_guard_jwt_ctx_cleanup(jctx);

    buf = ngx_pnalloc(pool, jctx->token.len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    decoded.data = buf;

    /*
     * jansson allocates from the request pool, unless something else has
     * replaced the allocation functions the guard set
     */

    json_get_alloc_funcs(&malloc_func, &free_func);

    jpool = (malloc_func == ngx_http_grpc_guard_jwt_json_alloc) ? pool : NULL;
    jctx->pooled = (jpool != NULL);

    if (ngx_http_grpc_guard_jwt_decode(&decoded, &header) != NGX_OK) {
        return NGX_DECLINED;
    }

    jctx->header = ngx_http_grpc_guard_jwt_json(jpool, decoded.data,
                                                decoded.len);

    if (jctx->header == NULL) {
        return NGX_DECLINED;
    }

    decoded.data += decoded.len;

    if (ngx_http_grpc_guard_jwt_decode(&decoded, &payload) != NGX_OK) {
        return NGX_DECLINED;
    }

    jctx->payload = ngx_http_grpc_guard_jwt_json(jpool, decoded.data,
                                                 decoded.len);

    if (jctx->payload == NULL) {
        return NGX_DECLINED;
    }

    jctx->parsed = 1;

    if (tok == NULL) {
        return NGX_OK;
    }

    tok->signed_part.data = jctx->token.data;
    tok->signed_part.len = header.len + 1 + payload.len;

    decoded.data += decoded.len;

    if (ngx_http_grpc_guard_jwt_decode(&decoded, &sig) != NGX_OK) {
        return NGX_DECLINED;
    }

    tok->signature = decoded;

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_decode(ngx_str_t *dst, ngx_str_t *src)
{
    size_t   rest;
    u_char  *s, *d, *last, a, b, c, e;

    /*
     * canonical base64url only: its alphabet, no padding, and the bits
     * that the last character carries beyond the data are zero, so one
     * value has exactly one encoding
     */

    rest = src->len % 4;

    if (rest == 1) {
        return NGX_ERROR;
    }

    s = src->data;
    d = dst->data;
    last = s + src->len - rest;

    while (s < last) {
        a = ngx_http_grpc_guard_jwt_b64[s[0]];
        b = ngx_http_grpc_guard_jwt_b64[s[1]];
        c = ngx_http_grpc_guard_jwt_b64[s[2]];
        e = ngx_http_grpc_guard_jwt_b64[s[3]];

        if ((a | b | c | e) == 0xff) {
            return NGX_ERROR;
        }

        *d++ = (u_char) (a << 2 | b >> 4);
        *d++ = (u_char) (b << 4 | c >> 2);
        *d++ = (u_char) (c << 6 | e);

        s += 4;
    }

    if (rest) {
        a = ngx_http_grpc_guard_jwt_b64[s[0]];
        b = ngx_http_grpc_guard_jwt_b64[s[1]];

        if ((a | b) == 0xff) {
            return NGX_ERROR;
        }

        *d++ = (u_char) (a << 2 | b >> 4);

        if (rest == 2) {
            if (b & 0x0f) {
                return NGX_ERROR;
            }

        } else {
            c = ngx_http_grpc_guard_jwt_b64[s[2]];

            if (c == 0xff || (c & 0x03)) {
                return NGX_ERROR;
            }

            *d++ = (u_char) (b << 4 | c >> 2);
        }
    }

    dst->len = d - dst->data;

    return NGX_OK;
}


json_t *
ngx_http_grpc_guard_jwt_json(ngx_pool_t *pool, u_char *data, size_t len)
{
    json_t        *json;
    u_char        *p, *last;
    ngx_uint_t     depth, string;
    json_error_t   error;

    /* the nesting is bounded before the parser sees the text */

    depth = 0;
    string = 0;
    last = data + len;

    for (p = data; p < last; p++) {

        if (string) {
            if (*p == '\\') {
                p++;

            } else if (*p == '"') {
                string = 0;
            }

            continue;
        }

        switch (*p) {

        case '"':
            string = 1;
            break;

        case '{':
        case '[':
            if (++depth > NGX_HTTP_GRPC_GUARD_JWT_MAX_DEPTH) {
                return NULL;
            }

            break;

        case '}':
        case ']':
            if (depth) {
                depth--;
            }

            break;
        }
    }

    /*
     * with a pool, jansson allocates from it; a refused text is released
     * while the pool is still set, so its free() is no call to free(3)
     */

    ngx_http_grpc_guard_jwt_json_pool = pool;

    json = json_loadb((char *) data, len, JSON_REJECT_DUPLICATES, &error);

    if (json && !json_is_object(json)) {
        json_decref(json);
        json = NULL;
    }

    ngx_http_grpc_guard_jwt_json_pool = NULL;

    return json;
}


/*
 * jansson's allocation functions, set for the whole process: outside a
 * parse of a token (configuration, other modules) they are malloc() and
 * free(), so a pointer jansson hands out there may still be given to free()
 */

void *
ngx_http_grpc_guard_jwt_json_alloc(size_t size)
{
    if (ngx_http_grpc_guard_jwt_json_pool) {
        return ngx_palloc(ngx_http_grpc_guard_jwt_json_pool, size);
    }

    return malloc(size);
}


void
ngx_http_grpc_guard_jwt_json_free(void *p)
{
    if (ngx_http_grpc_guard_jwt_json_pool == NULL) {
        free(p);
    }
}


char *
ngx_http_grpc_guard_jwt_check_header(ngx_http_grpc_guard_jwt_conf_t *jcf,
    json_t *header, ngx_http_grpc_guard_jwt_token_t *tok)
{
    json_t      *v;
    const char  *typ;

    v = json_object_get(header, "alg");

    if (!json_is_string(v)) {
        return "jwt_malformed";
    }

    /* case-sensitive; "none" is not in the table */

    tok->alg = ngx_http_grpc_guard_jwt_find_alg((u_char *) json_string_value(v),
                                                json_string_length(v));

    if (tok->alg == NULL || !(tok->alg->mask & jcf->algorithms)) {
        return "jwt_bad_alg";
    }

    v = json_object_get(header, "typ");

    if (v) {
        if (!json_is_string(v)) {
            return "jwt_bad_typ";
        }

        /* media types compare case-insensitively (RFC 7515, 4.1.9) */

        typ = json_string_value(v);

        if (ngx_strcasecmp((u_char *) typ, (u_char *) "JWT") != 0
            && ngx_strcasecmp((u_char *) typ, (u_char *) "at+jwt") != 0
            && ngx_strcasecmp((u_char *) typ, (u_char *) "application/jwt")
               != 0
            && ngx_strcasecmp((u_char *) typ,
                              (u_char *) "application/at+jwt")
               != 0)
        {
            return "jwt_bad_typ";
        }
    }

    /* no extension is understood: only an empty "crit" passes */

    v = json_object_get(header, "crit");

    if (v && (!json_is_array(v) || json_array_size(v) != 0)) {
        return "jwt_crit";
    }

    /* "jwk", "jku", "x5u" and "x5c" are never used to find a key */

    v = json_object_get(header, "kid");

    if (v) {
        if (!json_is_string(v)) {
            return "jwt_malformed";
        }

        tok->kid.data = (u_char *) json_string_value(v);
        tok->kid.len = json_string_length(v);
        tok->has_kid = 1;
    }

    return NULL;
}


ngx_http_grpc_guard_jwt_alg_t *
ngx_http_grpc_guard_jwt_find_alg(u_char *name, size_t len)
{
    ngx_http_grpc_guard_jwt_alg_t  *alg;

    for (alg = ngx_http_grpc_guard_jwt_algs; alg->mask; alg++) {
        if (alg->name.len == len
            && ngx_strncmp(alg->name.data, name, len) == 0)
        {
            return alg;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_verify_signature(ngx_http_request_t *r,
    ngx_http_grpc_guard_main_conf_t *gmcf,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_token_t *tok,
    char **reason)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i, n, pass, tries, named, fit;
    ngx_array_t                    *sets[2];
    ngx_http_grpc_guard_jwt_key_t  *key;

    /*
     * with a "kid": the keys with that "kid", or else the keys that
     * have none; without: every key; in both cases only the keys bound
     * to the token's algorithm, and a few of them at most; the keys of
     * the files, then the keys fetched from the identity provider
     */

    sets[0] = jcf->keys;
    sets[1] = jcf->remote ? jcf->remote->keys : NULL;

    tries = 0;
    named = 0;
    fit = 0;

    for (pass = 0; pass < 2; pass++) {

        for (n = 0; n < 2; n++) {

            if (sets[n] == NULL) {
                continue;
            }

            key = sets[n]->elts;

            for (i = 0; i < sets[n]->nelts; i++) {

                if (tok->has_kid) {

                    if (pass == 0) {
                        if (key[i].kid.len != tok->kid.len
                            || ngx_memcmp(key[i].kid.data, tok->kid.data,
                                          tok->kid.len)
                               != 0)
                        {
                            continue;
                        }

                        named = 1;

                    } else if (key[i].kid.len) {
                        continue;
                    }

                } else if (pass == 1) {
                    break;
                }

                if (!(key[i].algs & tok->alg->mask)) {
                    continue;
                }

                fit = 1;

                if (tries++ == NGX_HTTP_GRPC_GUARD_JWT_MAX_TRIES) {
                    *reason = "jwt_bad_signature";
                    return NGX_DECLINED;
                }

                rc = ngx_http_grpc_guard_jwt_verify_key(r, gmcf, &key[i], tok);

                if (rc != NGX_DECLINED) {
                    return rc;
                }
            }
        }

        if (named) {
            break;
        }
    }

    if (fit) {
        *reason = "jwt_bad_signature";

    } else if (tok->has_kid && !named) {
        *reason = "jwt_unknown_kid";

    } else {
        *reason = "jwt_bad_alg";
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_verify_key(ngx_http_request_t *r,
    ngx_http_grpc_guard_main_conf_t *gmcf, ngx_http_grpc_guard_jwt_key_t *key,
    ngx_http_grpc_guard_jwt_token_t *tok)
{
    int                             ok;
    EVP_MD                         *md;
    size_t                          len, i;
    EVP_MD_CTX                     *mctx;
    unsigned int                    n;
    EVP_PKEY_CTX                   *pctx;
    ngx_http_grpc_guard_jwt_alg_t  *alg;
    u_char                         *sig, der[NGX_HTTP_GRPC_GUARD_JWT_DER_LEN];
    u_char                          hash[EVP_MAX_MD_SIZE];

    alg = tok->alg;
    sig = tok->signature.data;
    len = tok->signature.len;

    md = (alg->md == NGX_HTTP_GRPC_GUARD_JWT_NO_MD) ? NULL
                                                  : gmcf->jwt->md[alg->md];

    switch (alg->kind) {

    case NGX_HTTP_GRPC_GUARD_JWT_KIND_HMAC:

        if (len != alg->size || key->secret == NULL) {
            return NGX_DECLINED;
        }

        if (EVP_Q_mac(NULL, "HMAC", NULL,
                      ngx_http_grpc_guard_jwt_md_names[alg->md], NULL,
                      key->secret, key->secret_len,
                      tok->signed_part.data, tok->signed_part.len,
                      hash, sizeof(hash), &len)
            == NULL
            || len != alg->size)
        {
            ERR_clear_error();
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "grpc guard: HMAC computation failed");
            return NGX_ERROR;
        }

        return CRYPTO_memcmp(hash, sig, alg->size) == 0 ? NGX_OK
                                                         : NGX_DECLINED;

    case NGX_HTTP_GRPC_GUARD_JWT_KIND_EC:

        /* JWS carries R || S of fixed width; OpenSSL wants DER */

        if (len != 2 * alg->size) {
            return NGX_DECLINED;
        }

        for (i = 0; i < alg->size && sig[i] == 0; i++) { /* void */ }

        if (i == alg->size) {
            return NGX_DECLINED;
        }

        for (i = alg->size; i < len && sig[i] == 0; i++) { /* void */ }

        if (i == len) {
            return NGX_DECLINED;
        }

        len = ngx_http_grpc_guard_jwt_ecdsa_der(der, sig, alg->size);
        sig = der;
        break;

    case NGX_HTTP_GRPC_GUARD_JWT_KIND_EDDSA:

        if (len != alg->size) {
            return NGX_DECLINED;
        }

        break;

    default: /* RSA */

        if (len == 0 || len != (size_t) EVP_PKEY_get_size(key->pkey)) {
            return NGX_DECLINED;
        }
    }

    if (alg->kind != NGX_HTTP_GRPC_GUARD_JWT_KIND_EDDSA) {

        /* the digest, then the prepared context of the key */

        pctx = key->verify[alg - ngx_http_grpc_guard_jwt_algs];

        if (pctx == NULL
            || EVP_DigestInit_ex(gmcf->jwt->hash, md, NULL) != 1
            || EVP_DigestUpdate(gmcf->jwt->hash, tok->signed_part.data,
                                tok->signed_part.len)
               != 1
            || EVP_DigestFinal_ex(gmcf->jwt->hash, hash, &n) != 1)
        {
            goto failed;
        }

        ok = EVP_PKEY_verify(pctx, sig, len, hash, n);

        ERR_clear_error();

        return ok == 1 ? NGX_OK : NGX_DECLINED;
    }

    /* pure EdDSA signs the message itself, in one go */

    mctx = EVP_MD_CTX_new();
    if (mctx == NULL) {
        return NGX_ERROR;
    }

    if (EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, key->pkey) != 1) {
        EVP_MD_CTX_free(mctx);
        goto failed;
    }

    ok = EVP_DigestVerify(mctx, sig, len, tok->signed_part.data,
                          tok->signed_part.len);

    EVP_MD_CTX_free(mctx);
    ERR_clear_error();

    return ok == 1 ? NGX_OK : NGX_DECLINED;

failed:

    ERR_clear_error();

    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                  "grpc guard: signature verification could not start");

    return NGX_ERROR;
}


size_t
ngx_http_grpc_guard_jwt_ecdsa_der(u_char *der, u_char *sig, size_t size)
{
    size_t   len;
    u_char  *p, *body;

    /*
     * SEQUENCE { INTEGER r, INTEGER s }; the body, at most 138 bytes,
     * is written after room for the longest header, then moved up when
     * the length fits in one byte
     */

    body = der + 3;

    p = ngx_http_grpc_guard_jwt_der_integer(body, sig, size);
    p = ngx_http_grpc_guard_jwt_der_integer(p, sig + size, size);

    len = p - body;

    if (len < 0x80) {
        der[0] = 0x30;
        der[1] = (u_char) len;
        ngx_memmove(der + 2, body, len);

        return len + 2;
    }

    der[0] = 0x30;
    der[1] = 0x81;
    der[2] = (u_char) len;

    return len + 3;
}


static u_char *
ngx_http_grpc_guard_jwt_der_integer(u_char *p, u_char *n, size_t size)
{
    size_t  pad;

    /* minimal encoding: no leading zeros, one zero before a high bit */

    while (size > 1 && *n == 0) {
        n++;
        size--;
    }

    pad = (*n & 0x80) ? 1 : 0;

    *p++ = 0x02;
    *p++ = (u_char) (size + pad);

    if (pad) {
        *p++ = 0;
    }

    return ngx_cpymem(p, n, size);
}


char *
ngx_http_grpc_guard_jwt_check_claims(ngx_http_grpc_guard_jwt_conf_t *jcf,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok)
{
    double      now, leeway, iat, base;
    json_t     *payload, *v, *e;
    size_t      i;
    u_char     *p, *last;
    ngx_str_t  *name;
    ngx_uint_t  n, has_iat;

    payload = jctx->payload;

    now = (double) ngx_time();
    leeway = (double) jcf->leeway;

    name = jcf->require->elts;

    for (n = 0; n < jcf->require->nelts; n++) {
        v = json_object_getn(payload, (char *) name[n].data, name[n].len);

        if (v == NULL || json_is_null(v)) {
            return "jwt_missing_claim";
        }
    }

    /* NumericDate: a JSON number, integer or not */

    v = json_object_get(payload, "exp");

    if (v) {
        if (!json_is_number(v)) {
            return "jwt_malformed";
        }

        tok->exp = json_number_value(v);
        tok->has_exp = 1;

        if (now >= tok->exp + leeway) {
            return "jwt_expired";
        }
    }

    v = json_object_get(payload, "nbf");

    if (v) {
        if (!json_is_number(v)) {
            return "jwt_malformed";
        }

        tok->nbf = json_number_value(v);
        tok->has_nbf = 1;

        if (tok->nbf > now + leeway) {
            return "jwt_not_yet_valid";
        }
    }

    iat = 0;
    has_iat = 0;

    v = json_object_get(payload, "iat");

    if (v) {
        if (!json_is_number(v)) {
            return "jwt_malformed";
        }

        iat = json_number_value(v);
        has_iat = 1;

        if (iat > now + leeway) {
            return "jwt_iat_future";
        }
    }

    if (jcf->max_lifetime) {

        /* without "iat", the lifetime left is what counts */

        if (!tok->has_exp) {
            return "jwt_lifetime";
        }

        base = has_iat ? iat : now;

        if (tok->exp - base > (double) jcf->max_lifetime) {
            return "jwt_lifetime";
        }
    }

    v = json_object_get(payload, "iss");

    if (v) {
        if (!json_is_string(v)) {
            return "jwt_malformed";
        }

        jctx->iss.data = (u_char *) json_string_value(v);
        jctx->iss.len = json_string_length(v);
    }

    if (jcf->issuers
        && (v == NULL || !ngx_http_grpc_guard_jwt_in_list(jcf->issuers, v)))
    {
        return "jwt_bad_issuer";
    }

    if (jcf->audiences) {
        v = json_object_get(payload, "aud");

        if (v == NULL) {
            return "jwt_bad_audience";
        }

        if (json_is_string(v)) {
            if (!ngx_http_grpc_guard_jwt_in_list(jcf->audiences, v)) {
                return "jwt_bad_audience";
            }

        } else if (json_is_array(v)) {

            for (i = 0; i < json_array_size(v); i++) {
                e = json_array_get(v, i);

                if (json_is_string(e)
                    && ngx_http_grpc_guard_jwt_in_list(jcf->audiences, e))
                {
                    break;
                }
            }

            if (i == json_array_size(v)) {
                return "jwt_bad_audience";
            }

        } else {
            return "jwt_malformed";
        }
    }

    /* the principal goes into logs and upstream metadata: text only */

    v = json_object_get(payload, "sub");

    if (v) {
        if (!json_is_string(v)) {
            return "jwt_malformed";
        }

        p = (u_char *) json_string_value(v);
        last = p + json_string_length(v);

        jctx->sub.data = p;
        jctx->sub.len = last - p;

        for ( /* void */ ; p < last; p++) {
            if (*p < 0x20 || *p == 0x7f) {
                return "jwt_malformed";
            }
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_in_list(ngx_array_t *list, json_t *value)
{
    size_t       len;
    ngx_str_t   *s;
    const char  *data;
    ngx_uint_t   i;

    data = json_string_value(value);
    len = json_string_length(value);

    s = list->elts;

    for (i = 0; i < list->nelts; i++) {
        if (s[i].len == len && ngx_memcmp(s[i].data, data, len) == 0) {
            return 1;
        }
    }

    return 0;
}
