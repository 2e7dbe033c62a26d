
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * What the JWT files (ngx_http_grpc_guard_jwt*.c) share: the key, algorithm,
 * token and cache types, and the functions one of them gives the others.
 */


#ifndef _NGX_HTTP_GRPC_GUARD_JWT_H_INCLUDED_
#define _NGX_HTTP_GRPC_GUARD_JWT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"


/* algorithms, as a bitmask */

#define NGX_HTTP_GRPC_GUARD_JWT_RS256         0x0001
#define NGX_HTTP_GRPC_GUARD_JWT_RS384         0x0002
#define NGX_HTTP_GRPC_GUARD_JWT_RS512         0x0004
#define NGX_HTTP_GRPC_GUARD_JWT_PS256         0x0008
#define NGX_HTTP_GRPC_GUARD_JWT_PS384         0x0010
#define NGX_HTTP_GRPC_GUARD_JWT_PS512         0x0020
#define NGX_HTTP_GRPC_GUARD_JWT_ES256         0x0040
#define NGX_HTTP_GRPC_GUARD_JWT_ES384         0x0080
#define NGX_HTTP_GRPC_GUARD_JWT_ES512         0x0100
#define NGX_HTTP_GRPC_GUARD_JWT_EDDSA         0x0200
#define NGX_HTTP_GRPC_GUARD_JWT_HS256         0x0400
#define NGX_HTTP_GRPC_GUARD_JWT_HS384         0x0800
#define NGX_HTTP_GRPC_GUARD_JWT_HS512         0x1000

#define NGX_HTTP_GRPC_GUARD_JWT_PSS                                           \
    (NGX_HTTP_GRPC_GUARD_JWT_PS256|NGX_HTTP_GRPC_GUARD_JWT_PS384              \
     |NGX_HTTP_GRPC_GUARD_JWT_PS512)

#define NGX_HTTP_GRPC_GUARD_JWT_RSA                                           \
    (NGX_HTTP_GRPC_GUARD_JWT_RS256|NGX_HTTP_GRPC_GUARD_JWT_RS384              \
     |NGX_HTTP_GRPC_GUARD_JWT_RS512|NGX_HTTP_GRPC_GUARD_JWT_PSS)

#define NGX_HTTP_GRPC_GUARD_JWT_HMAC                                          \
    (NGX_HTTP_GRPC_GUARD_JWT_HS256|NGX_HTTP_GRPC_GUARD_JWT_HS384              \
     |NGX_HTTP_GRPC_GUARD_JWT_HS512)

#define NGX_HTTP_GRPC_GUARD_JWT_DEFAULT_ALGS                                  \
    (NGX_HTTP_GRPC_GUARD_JWT_RSA|NGX_HTTP_GRPC_GUARD_JWT_ES256                \
     |NGX_HTTP_GRPC_GUARD_JWT_ES384|NGX_HTTP_GRPC_GUARD_JWT_ES512             \
     |NGX_HTTP_GRPC_GUARD_JWT_EDDSA)


#define NGX_HTTP_GRPC_GUARD_JWT_KIND_RSA      1
#define NGX_HTTP_GRPC_GUARD_JWT_KIND_PSS      2
#define NGX_HTTP_GRPC_GUARD_JWT_KIND_EC       3
#define NGX_HTTP_GRPC_GUARD_JWT_KIND_EDDSA    4
#define NGX_HTTP_GRPC_GUARD_JWT_KIND_HMAC     5

#define NGX_HTTP_GRPC_GUARD_JWT_SHA256        0
#define NGX_HTTP_GRPC_GUARD_JWT_SHA384        1
#define NGX_HTTP_GRPC_GUARD_JWT_SHA512        2
#define NGX_HTTP_GRPC_GUARD_JWT_NO_MD         3


#define NGX_HTTP_GRPC_GUARD_JWT_MAX_KID       256

/* the entries of ngx_http_grpc_guard_jwt_algs[] */
#define NGX_HTTP_GRPC_GUARD_JWT_NALGS         13


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  mask;
    ngx_uint_t                  kind;
    ngx_uint_t                  md;
    size_t                      size;   /* ECDSA: bytes of R; HMAC: of MAC */
} ngx_http_grpc_guard_jwt_alg_t;


typedef struct {
    ngx_str_t                   kid;    /* empty when the key has none */
    ngx_uint_t                  algs;   /* what the key may verify */
    EVP_PKEY                   *pkey;
    u_char                     *secret; /* "oct" keys */
    size_t                      secret_len;

    /*
     * ready for EVP_PKEY_verify(), one for each algorithm of the key
     * but EdDSA (one-shot only): setting up a context for every token
     * would cost a tenth of an RSA verification
     */
    EVP_PKEY_CTX               *verify[NGX_HTTP_GRPC_GUARD_JWT_NALGS];

    u_char                      digest[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
} ngx_http_grpc_guard_jwt_key_t;


struct ngx_http_grpc_guard_jwt_main_s {
    EVP_MD                     *md[3];
    EVP_MD_CTX                 *hash;   /* the cache key */
};


/* the verified token of a request */

struct ngx_http_grpc_guard_jwt_ctx_s {
    ngx_str_t                   token;
    ngx_str_t                   sub;
    ngx_str_t                   iss;
    ngx_str_t                   client_id;  /* introspection: no "sub" */
    ngx_str_t                   claims;     /* introspection: the answer */
    json_t                     *header;
    json_t                     *payload;
    unsigned                    parsed:1;
    unsigned                    pooled:1;   /* JSON in the request pool */
};


/* a token under verification */

typedef struct {
    ngx_str_t                   signed_part;
    ngx_str_t                   signature;
    ngx_str_t                   kid;
    ngx_http_grpc_guard_jwt_alg_t  *alg;
    double                      exp;
    double                      nbf;
    unsigned                    has_kid:1;
    unsigned                    has_exp:1;
    unsigned                    has_nbf:1;
} ngx_http_grpc_guard_jwt_token_t;


typedef struct ngx_http_grpc_guard_jwt_node_s  ngx_http_grpc_guard_jwt_node_t;

/*
 * the verified tokens, found through a table of chains indexed by the
 * first bytes of their hash: one or two memory reads per lookup, where a
 * tree of thousands of entries costs a dozen cache misses on every call
 * with a new token
 */

typedef struct {
    ngx_http_grpc_guard_jwt_node_t  **buckets;
    ngx_uint_t                        mask;
    ngx_queue_t                       queue;
} ngx_http_grpc_guard_jwt_shctx_t;


typedef struct {
    ngx_http_grpc_guard_jwt_shctx_t  *sh;
    ngx_slab_pool_t                  *shpool;
} ngx_http_grpc_guard_jwt_cache_t;


struct ngx_http_grpc_guard_jwt_node_s {
    ngx_http_grpc_guard_jwt_node_t  *next;  /* in its bucket */
    ngx_queue_t                 queue;
    u_char                      hash[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
    time_t                      expire; /* LRU cleanup; 0: never */
    double                      exp;
    double                      nbf;
    u_short                     sub_len;
    u_short                     iss_len;
    u_char                      has_exp;
    u_char                      has_nbf;
    u_char                      data[1];    /* sub, then iss */
};


/*
 * the last token verified on a connection, kept in the connection's pool:
 * gRPC clients send the same token on every call of a connection, which
 * is then recognized by comparing its bytes, with no hashing and no lock;
 * the claims about time are checked again on every call, as on a hit in
 * the shared cache, and only with the same location policy and the same
 * fetched key set
 */

typedef struct {
    ngx_http_grpc_guard_jwt_conf_t  *jcf;   /* NULL: nothing remembered */
    u_char                       set[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
    u_char                      *data;      /* token, sub, then iss */
    size_t                       size;
    size_t                       token_len;
    double                       exp;
    double                       nbf;
    u_short                      sub_len;
    u_short                      iss_len;
    unsigned                     has_exp:1;
    unsigned                     has_nbf:1;
} ngx_http_grpc_guard_jwt_memo_t;


/*
 * keys being loaded: from a key file at configuration time (cf is set),
 * or from a fetched JWKS at run time, into memory the caller controls
 */

typedef struct {
    ngx_conf_t                 *cf;
    ngx_pool_t                 *pool;   /* the keys and their cleanups */
    ngx_pool_t                 *temp_pool;
    ngx_log_t                  *log;    /* run time */
    ngx_str_t                  *file;   /* or the URI fetched */
    ngx_array_t                *keys;
    ngx_uint_t                  n;
    ngx_str_t                   kid;
    ngx_str_t                   label;  /* "key 2 (kid "a")", "block 1" */
    unsigned                    remote:1;   /* a key refused is skipped */
    unsigned                    quiet:1;    /* checked before: no messages */
    u_char                      text[NGX_HTTP_GRPC_GUARD_JWT_MAX_KID + 64];
} ngx_http_grpc_guard_jwt_load_t;


/*
 * grpc_guard_jwt_key_request: the subrequest's settings, and each
 * worker's keys parsed from the zone's JWKS text, once per version
 */

struct ngx_http_grpc_guard_jwt_remote_s {
    ngx_http_grpc_guard_remote_t  *remote;
    ngx_msec_t                  refresh;
    ngx_msec_t                  min_refetch;

    /* per worker */
    ngx_uint_t                  version;    /* of the zone's result */
    ngx_msec_t                  fetched;    /* when the IdP gave it */
    ngx_msec_t                  checked;    /* the zone last looked at */
    ngx_pool_t                 *pool;       /* the keys */
    ngx_array_t                *keys;       /* NULL: none yet */
    u_char                      digest[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
    unsigned                    has_checked:1;
};


/* ngx_http_grpc_guard_jwt.c */

ngx_int_t ngx_http_grpc_guard_jwt_get_token(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_table_elt_t **header);
ngx_int_t ngx_http_grpc_guard_jwt_bearer(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res, char *missing, ngx_str_t *token);
ngx_http_grpc_guard_jwt_ctx_t *ngx_http_grpc_guard_jwt_create_ctx(
    ngx_pool_t *pool, ngx_str_t *token);
json_t *ngx_http_grpc_guard_jwt_json(ngx_pool_t *pool, u_char *data,
    size_t len);

ngx_int_t ngx_http_grpc_guard_jwt_split(ngx_str_t *token,
    ngx_str_t *header, ngx_str_t *payload, ngx_str_t *signature);
ngx_int_t ngx_http_grpc_guard_jwt_parse(ngx_pool_t *pool,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok);
ngx_int_t ngx_http_grpc_guard_jwt_decode(ngx_str_t *dst, ngx_str_t *src);
char *ngx_http_grpc_guard_jwt_check_header(
    ngx_http_grpc_guard_jwt_conf_t *jcf, json_t *header,
    ngx_http_grpc_guard_jwt_token_t *tok);
char *ngx_http_grpc_guard_jwt_check_claims(
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok);
size_t ngx_http_grpc_guard_jwt_ecdsa_der(u_char *der, u_char *sig,
    size_t size);
void *ngx_http_grpc_guard_jwt_json_alloc(size_t size);
void ngx_http_grpc_guard_jwt_json_free(void *p);
ngx_http_grpc_guard_jwt_alg_t *ngx_http_grpc_guard_jwt_find_alg(u_char *name,
    size_t len);

/* ngx_http_grpc_guard_jwt_claims.c */

ngx_http_grpc_guard_jwt_ctx_t *ngx_http_grpc_guard_jwt_claims_ctx(
    ngx_pool_t *pool, ngx_str_t *token, ngx_str_t *text);
ngx_int_t ngx_http_grpc_guard_jwt_claims_parse(ngx_pool_t *pool,
    ngx_http_grpc_guard_jwt_ctx_t *jctx);

/* ngx_http_grpc_guard_jwt_cache.c */

ngx_int_t ngx_http_grpc_guard_jwt_cache_key(
    ngx_http_grpc_guard_jwt_main_t *jm, ngx_http_grpc_guard_jwt_conf_t *jcf,
    u_char *set, ngx_str_t *token, u_char *hash);
ngx_int_t ngx_http_grpc_guard_jwt_cache_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_cache_t *cache,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *hash,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok,
    char **reason);
char *ngx_http_grpc_guard_jwt_recheck(ngx_http_grpc_guard_jwt_conf_t *jcf,
    ngx_http_grpc_guard_jwt_token_t *tok);
void ngx_http_grpc_guard_jwt_cache_insert(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_cache_t *cache,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *hash,
    ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok);
ngx_int_t ngx_http_grpc_guard_jwt_memo_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *set,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok,
    char **reason);
void ngx_http_grpc_guard_jwt_memo_set(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *set,
    ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok);
ngx_int_t ngx_http_grpc_guard_jwt_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

/* ngx_http_grpc_guard_jwt_keys.c */

char *ngx_http_grpc_guard_jwt_load_jwks(
    ngx_http_grpc_guard_jwt_load_t *ld, ngx_str_t *content);
char *ngx_http_grpc_guard_jwt_load_pem(
    ngx_http_grpc_guard_jwt_load_t *ld, ngx_str_t *content);
ngx_int_t ngx_http_grpc_guard_jwt_check_jwks(ngx_log_t *log, ngx_str_t *body,
    void *data);
ngx_int_t ngx_http_grpc_guard_jwt_remote_update(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_remote_t *jr, ngx_uint_t force);
ngx_int_t ngx_http_grpc_guard_jwt_remote_ready(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_remote_t *jr);
ngx_int_t ngx_http_grpc_guard_jwt_remote_kid(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_remote_t *jr);
void ngx_http_grpc_guard_jwt_remote_cleanup(void *data);


extern ngx_http_grpc_guard_jwt_alg_t
    ngx_http_grpc_guard_jwt_algs[NGX_HTTP_GRPC_GUARD_JWT_NALGS + 1];
extern char  *ngx_http_grpc_guard_jwt_md_names[];


#endif /* _NGX_HTTP_GRPC_GUARD_JWT_H_INCLUDED_ */
