
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
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


#define NGX_HTTP_GRPC_GUARD_JWT_MAX_SIZE      8192
#define NGX_HTTP_GRPC_GUARD_JWT_MIN_SIZE      256
#define NGX_HTTP_GRPC_GUARD_JWT_SIZE_LIMIT    65536
#define NGX_HTTP_GRPC_GUARD_JWT_LEEWAY        60

/* JSON nesting of the header and the payload */
#define NGX_HTTP_GRPC_GUARD_JWT_MAX_DEPTH     16

#define NGX_HTTP_GRPC_GUARD_JWT_MAX_KID       256

/* signature checks of one token when several keys fit it */
#define NGX_HTTP_GRPC_GUARD_JWT_MAX_TRIES     4

#define NGX_HTTP_GRPC_GUARD_JWT_MAX_FILE      (1024 * 1024)
#define NGX_HTTP_GRPC_GUARD_JWT_MIN_RSA_BITS  2048
#define NGX_HTTP_GRPC_GUARD_JWT_MAX_RSA_BITS  16384
#define NGX_HTTP_GRPC_GUARD_JWT_MIN_SECRET    32

/* "sub" and "iss" larger than this together are not cached */
#define NGX_HTTP_GRPC_GUARD_JWT_CACHE_DATA    1024

#define NGX_HTTP_GRPC_GUARD_JWT_CACHE_SIZE    (1024 * 1024)

/* the room an entry takes in the zone, to size the table of buckets */
#define NGX_HTTP_GRPC_GUARD_JWT_ENTRY_SIZE    128

/* the largest token, "sub" and "iss" a connection remembers */
#define NGX_HTTP_GRPC_GUARD_JWT_MEMO_MAX      4096
#define NGX_HTTP_GRPC_GUARD_JWT_MEMO_MIN      1024

/* LRU entries dropped to make room for a new one */
#define NGX_HTTP_GRPC_GUARD_JWT_EVICT         16

/* an ECDSA-Sig-Value of P-521: two INTEGERs of at most 67 bytes */
#define NGX_HTTP_GRPC_GUARD_JWT_DER_LEN       (3 + 2 * (2 + 67))

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


/* where jansson allocates while a token is parsed; NULL: malloc() */
static ngx_pool_t  *ngx_http_grpc_guard_jwt_json_pool;


struct ngx_http_grpc_guard_jwt_main_s {
    EVP_MD                     *md[3];
    EVP_MD_CTX                 *hash;   /* the cache key */
};


/* the verified token of a request */

struct ngx_http_grpc_guard_jwt_ctx_s {
    ngx_str_t                   token;
    ngx_str_t                   sub;
    ngx_str_t                   iss;
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
 * the shared cache, and only with the same location policy
 */

typedef struct {
    ngx_http_grpc_guard_jwt_conf_t  *jcf;   /* NULL: nothing remembered */
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


/* the key file being loaded, for messages */

typedef struct {
    ngx_conf_t                 *cf;
    ngx_str_t                  *file;
    ngx_array_t                *keys;
    ngx_uint_t                  n;
    ngx_str_t                   kid;
    ngx_str_t                   label;  /* "key 2 (kid "a")", "block 1" */
    u_char                      text[NGX_HTTP_GRPC_GUARD_JWT_MAX_KID + 64];
} ngx_http_grpc_guard_jwt_load_t;


static ngx_int_t ngx_http_grpc_guard_jwt_get_token(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_str_t *token,
    ngx_table_elt_t **header);
static ngx_http_grpc_guard_jwt_ctx_t *ngx_http_grpc_guard_jwt_create_ctx(
    ngx_pool_t *pool, ngx_str_t *token);
static void ngx_http_grpc_guard_jwt_ctx_cleanup(void *data);
static ngx_int_t ngx_http_grpc_guard_jwt_verify(ngx_http_request_t *r,
    ngx_http_grpc_guard_main_conf_t *gmcf,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok, char **reason);
static ngx_int_t ngx_http_grpc_guard_jwt_split(ngx_str_t *token,
    ngx_str_t *header, ngx_str_t *payload, ngx_str_t *signature);
static ngx_int_t ngx_http_grpc_guard_jwt_parse(ngx_pool_t *pool,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok);
static ngx_int_t ngx_http_grpc_guard_jwt_decode(ngx_str_t *dst,
    ngx_str_t *src);
static json_t *ngx_http_grpc_guard_jwt_json(ngx_pool_t *pool, u_char *data,
    size_t len);
static void *ngx_http_grpc_guard_jwt_json_alloc(size_t size);
static void ngx_http_grpc_guard_jwt_json_free(void *p);
static char *ngx_http_grpc_guard_jwt_check_header(
    ngx_http_grpc_guard_jwt_conf_t *jcf, json_t *header,
    ngx_http_grpc_guard_jwt_token_t *tok);
static ngx_http_grpc_guard_jwt_alg_t *ngx_http_grpc_guard_jwt_find_alg(
    u_char *name, size_t len);
static ngx_int_t ngx_http_grpc_guard_jwt_verify_signature(
    ngx_http_request_t *r, ngx_http_grpc_guard_main_conf_t *gmcf,
    ngx_http_grpc_guard_jwt_conf_t *jcf,
    ngx_http_grpc_guard_jwt_token_t *tok, char **reason);
static ngx_int_t ngx_http_grpc_guard_jwt_verify_key(ngx_http_request_t *r,
    ngx_http_grpc_guard_main_conf_t *gmcf, ngx_http_grpc_guard_jwt_key_t *key,
    ngx_http_grpc_guard_jwt_token_t *tok);
static size_t ngx_http_grpc_guard_jwt_ecdsa_der(u_char *der, u_char *sig,
    size_t size);
static u_char *ngx_http_grpc_guard_jwt_der_integer(u_char *p, u_char *n,
    size_t size);
static char *ngx_http_grpc_guard_jwt_check_claims(
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok);
static ngx_int_t ngx_http_grpc_guard_jwt_in_list(ngx_array_t *list,
    json_t *value);
static json_t *ngx_http_grpc_guard_jwt_claim(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_str_t *name);
static ngx_int_t ngx_http_grpc_guard_jwt_json_match(json_t *v,
    ngx_array_t *values, ngx_uint_t split, ngx_uint_t depth);
static ngx_int_t ngx_http_grpc_guard_jwt_format(ngx_pool_t *pool,
    json_t *value, ngx_uint_t nested, ngx_str_t *out);
static ngx_int_t ngx_http_grpc_guard_jwt_dump(ngx_pool_t *pool,
    json_t *value, ngx_str_t *out);

static ngx_int_t ngx_http_grpc_guard_jwt_cache_key(
    ngx_http_grpc_guard_jwt_main_t *jm, ngx_http_grpc_guard_jwt_conf_t *jcf,
    ngx_str_t *token, u_char *hash);
static ngx_int_t ngx_http_grpc_guard_jwt_cache_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_cache_t *cache,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *hash,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok,
    char **reason);
static void ngx_http_grpc_guard_jwt_cache_insert(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_cache_t *cache,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *hash,
    ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok);
static ngx_http_grpc_guard_jwt_node_t *ngx_http_grpc_guard_jwt_cache_find(
    ngx_http_grpc_guard_jwt_cache_t *cache, u_char *hash);
static void ngx_http_grpc_guard_jwt_cache_expire(
    ngx_http_grpc_guard_jwt_cache_t *cache, ngx_uint_t force, ngx_uint_t n);
static ngx_int_t ngx_http_grpc_guard_jwt_memo_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok, char **reason);
static ngx_http_grpc_guard_jwt_memo_t *ngx_http_grpc_guard_jwt_memo(
    ngx_connection_t *c, ngx_uint_t create);
static void ngx_http_grpc_guard_jwt_memo_set(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok);
static void ngx_http_grpc_guard_jwt_memo_cleanup(void *data);
static char *ngx_http_grpc_guard_jwt_recheck(
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_token_t *tok);
static ngx_int_t ngx_http_grpc_guard_jwt_set_names(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, u_char *data, size_t sub_len,
    size_t iss_len);
static ngx_http_grpc_guard_jwt_node_t **ngx_http_grpc_guard_jwt_bucket(
    ngx_http_grpc_guard_jwt_cache_t *cache, u_char *hash);
static ngx_int_t ngx_http_grpc_guard_jwt_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

static char *ngx_http_grpc_guard_jwt_load_jwks(
    ngx_http_grpc_guard_jwt_load_t *ld, ngx_str_t *content);
static char *ngx_http_grpc_guard_jwt_load_jwk(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk);
static void ngx_http_grpc_guard_jwt_label(ngx_http_grpc_guard_jwt_load_t *ld,
    char *what);
static char *ngx_http_grpc_guard_jwt_jwk_member(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk, char *name,
    ngx_str_t *value);
static EVP_PKEY *ngx_http_grpc_guard_jwt_jwk_rsa(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk);
static EVP_PKEY *ngx_http_grpc_guard_jwt_jwk_ec(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk, ngx_uint_t *algs);
static EVP_PKEY *ngx_http_grpc_guard_jwt_jwk_okp(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk);
static char *ngx_http_grpc_guard_jwt_load_pem(
    ngx_http_grpc_guard_jwt_load_t *ld, ngx_str_t *content);
static EVP_PKEY *ngx_http_grpc_guard_jwt_pem_rsa(u_char *der, long len);
static ngx_int_t ngx_http_grpc_guard_jwt_pkey_cleanup(ngx_conf_t *cf,
    EVP_PKEY *pkey);
static void ngx_http_grpc_guard_jwt_free_pkey(void *data);
static ngx_int_t ngx_http_grpc_guard_jwt_verify_ctx(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_key_t *key);
static void ngx_http_grpc_guard_jwt_free_pkey_ctx(void *data);
static char *ngx_http_grpc_guard_jwt_add_pkey(
    ngx_http_grpc_guard_jwt_load_t *ld, EVP_PKEY *pkey, ngx_uint_t algs);
static char *ngx_http_grpc_guard_jwt_add_key(
    ngx_http_grpc_guard_jwt_load_t *ld, ngx_http_grpc_guard_jwt_key_t *key);
static ngx_int_t ngx_http_grpc_guard_jwt_policy(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_conf_t *jcf);
static ngx_int_t ngx_http_grpc_guard_jwt_digest_str(EVP_MD_CTX *md,
    u_char *data, size_t len);
static ngx_int_t ngx_http_grpc_guard_jwt_digest_list(EVP_MD_CTX *md,
    ngx_array_t *list);
static void ngx_http_grpc_guard_jwt_main_cleanup(void *data);


static ngx_http_grpc_guard_jwt_alg_t
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


static char  *ngx_http_grpc_guard_jwt_md_names[] = {
    "SHA256", "SHA384", "SHA512"
};


/* JWK members that only a private key has */

static char  *ngx_http_grpc_guard_jwt_private[] = {
    "d", "p", "q", "dp", "dq", "qi", "oth", NULL
};


static ngx_str_t  ngx_http_grpc_guard_jwt_tls_message =
    ngx_string("transport security required");

static ngx_str_t  ngx_http_grpc_guard_jwt_zone_name =
    ngx_string("grpc_guard_jwt_cache");

static ngx_str_t  ngx_http_grpc_guard_jwt_exp = ngx_string("exp");


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
    char                             *reason;
    ngx_int_t                         rc;
    ngx_str_t                         token;
    ngx_table_elt_t                  *h;
    ngx_http_grpc_guard_jwt_ctx_t    *jctx;
    ngx_http_grpc_guard_jwt_conf_t   *jcf;
    ngx_http_grpc_guard_jwt_cache_t  *cache;
    ngx_http_grpc_guard_jwt_token_t   tok;
    ngx_http_grpc_guard_main_conf_t  *gmcf;
    u_char                            hash[NGX_HTTP_GRPC_GUARD_SHA256_LEN];

    jcf = &glcf->jwt;

    rc = ngx_http_grpc_guard_jwt_get_token(r, jcf, &token, &h);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        res->reason = "jwt_missing";
        return NGX_DECLINED;
    }

    res->presented = 1;

    if (h && !glcf->forward_credentials) {

        /*
         * the credential the guard consumes is not sent upstream,
         * whatever the outcome; r->headers_in.authorization stays
         */

        if (ngx_http_grpc_guard_remove_header(&r->headers_in.headers, h,
                                              r->pool)
            == NGX_ERROR)
        {
            return NGX_ERROR;
        }
    }

    if (glcf->require_tls && r->connection->ssl == NULL) {
        res->reason = "tls_required";
        res->message = &ngx_http_grpc_guard_jwt_tls_message;
        return NGX_DECLINED;
    }

    if (token.len == 0) {
        res->reason = "jwt_malformed";
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

    ngx_memzero(&tok, sizeof(ngx_http_grpc_guard_jwt_token_t));

    reason = NULL;

    if (cache) {

        /* the connection's last token first, then the shared cache */

        rc = ngx_http_grpc_guard_jwt_memo_lookup(r, jcf, jctx, &tok, &reason);

        if (rc == NGX_DECLINED) {
            if (ngx_http_grpc_guard_jwt_cache_key(gmcf->jwt, jcf, &token,
                                                  hash)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            rc = ngx_http_grpc_guard_jwt_cache_lookup(r, cache, jcf, hash,
                                                      jctx, &tok, &reason);

            if (rc == NGX_OK && reason == NULL) {
                ngx_http_grpc_guard_jwt_memo_set(r, jcf, jctx, &tok);
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

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        res->reason = reason;
        return NGX_DECLINED;
    }

    if (cache) {
        ngx_http_grpc_guard_jwt_cache_insert(r, cache, jcf, hash, jctx, &tok);
        ngx_http_grpc_guard_jwt_memo_set(r, jcf, jctx, &tok);
    }

verified:

    ctx->jwt = jctx;

    return NGX_OK;
}


static ngx_int_t
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


static ngx_http_grpc_guard_jwt_ctx_t *
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
    ngx_int_t  rc;

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

    rc = ngx_http_grpc_guard_jwt_verify_signature(r, gmcf, jcf, tok, reason);

    if (rc != NGX_OK) {
        return rc;
    }

    *reason = ngx_http_grpc_guard_jwt_check_claims(jcf, jctx, tok);

    if (*reason) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
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


static ngx_int_t
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
     * without "tok", for a variable after a cache hit
     */

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


static ngx_int_t
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


static json_t *
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

static void *
ngx_http_grpc_guard_jwt_json_alloc(size_t size)
{
    if (ngx_http_grpc_guard_jwt_json_pool) {
        return ngx_palloc(ngx_http_grpc_guard_jwt_json_pool, size);
    }

    return malloc(size);
}


static void
ngx_http_grpc_guard_jwt_json_free(void *p)
{
    if (ngx_http_grpc_guard_jwt_json_pool == NULL) {
        free(p);
    }
}


static char *
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


static ngx_http_grpc_guard_jwt_alg_t *
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
    ngx_uint_t                      i, pass, tries, named, fit;
    ngx_http_grpc_guard_jwt_key_t  *key;

    /*
     * with a "kid": the keys with that "kid", or else the keys that
     * have none; without: every key; in both cases only the keys bound
     * to the token's algorithm, and a few of them at most
     */

    key = jcf->keys->elts;
    tries = 0;
    named = 0;
    fit = 0;

    for (pass = 0; pass < 2; pass++) {

        for (i = 0; i < jcf->keys->nelts; i++) {

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


static size_t
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


static char *
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


ngx_int_t
ngx_http_grpc_guard_jwt_value(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t header, ngx_str_t *name,
    ngx_str_t *value)
{
    json_t                         *v;
    ngx_int_t                       rc;
    ngx_http_grpc_guard_jwt_ctx_t  *jctx;

    jctx = ctx->jwt;

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
    ngx_str_t *sub, ngx_str_t *iss)
{
    *sub = ctx->jwt->sub;
    *iss = ctx->jwt->iss;
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

    jctx = ctx->jwt;

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


static ngx_int_t
ngx_http_grpc_guard_jwt_cache_key(ngx_http_grpc_guard_jwt_main_t *jm,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_str_t *token, u_char *hash)
{
    unsigned int  len;

    /*
     * the policy of the location comes first: a token verified with
     * other keys, issuers or audiences is another entry
     */

    if (EVP_DigestInit_ex(jm->hash, jm->md[NGX_HTTP_GRPC_GUARD_JWT_SHA256],
                          NULL)
        != 1
        || EVP_DigestUpdate(jm->hash, jcf->policy,
                            NGX_HTTP_GRPC_GUARD_SHA256_LEN)
           != 1
        || EVP_DigestUpdate(jm->hash, token->data, token->len) != 1
        || EVP_DigestFinal_ex(jm->hash, hash, &len) != 1)
    {
        ERR_clear_error();
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_cache_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_cache_t *cache,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *hash,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok,
    char **reason)
{
    ngx_int_t                        rc;
    ngx_http_grpc_guard_jwt_node_t  *jn;

    ngx_shmtx_lock(&cache->shpool->mutex);

    jn = ngx_http_grpc_guard_jwt_cache_find(cache, hash);

    if (jn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_queue_remove(&jn->queue);
    ngx_queue_insert_head(&cache->sh->queue, &jn->queue);

    tok->has_exp = jn->has_exp;
    tok->has_nbf = jn->has_nbf;
    tok->exp = jn->exp;
    tok->nbf = jn->nbf;

    rc = NGX_OK;

    *reason = ngx_http_grpc_guard_jwt_recheck(jcf, tok);

    if (*reason == NULL) {
        rc = ngx_http_grpc_guard_jwt_set_names(r, jctx, jn->data, jn->sub_len,
                                               jn->iss_len);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard jwt: cache hit, %s",
                   *reason ? *reason : "valid");

    return rc;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_memo_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok, char **reason)
{
    ngx_http_grpc_guard_jwt_memo_t  *memo;

    /* as ngx_http_grpc_guard_jwt_cache_lookup(), for the connection */

    memo = ngx_http_grpc_guard_jwt_memo(r->connection, 0);

    if (memo == NULL || memo->jcf != jcf
        || memo->token_len != jctx->token.len
        || ngx_memcmp(memo->data, jctx->token.data, jctx->token.len) != 0)
    {
        return NGX_DECLINED;
    }

    tok->has_exp = memo->has_exp;
    tok->has_nbf = memo->has_nbf;
    tok->exp = memo->exp;
    tok->nbf = memo->nbf;

    *reason = ngx_http_grpc_guard_jwt_recheck(jcf, tok);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard jwt: connection hit, %s",
                   *reason ? *reason : "valid");

    if (*reason) {
        return NGX_OK;
    }

    return ngx_http_grpc_guard_jwt_set_names(r, jctx,
                                             memo->data + memo->token_len,
                                             memo->sub_len, memo->iss_len);
}


static char *
ngx_http_grpc_guard_jwt_recheck(ngx_http_grpc_guard_jwt_conf_t *jcf,
    ngx_http_grpc_guard_jwt_token_t *tok)
{
    double  now, leeway;

    /* the time claims of a remembered token, checked again on every call */

    now = (double) ngx_time();
    leeway = (double) jcf->leeway;

    if (tok->has_exp && now >= tok->exp + leeway) {
        return "jwt_expired";
    }

    if (tok->has_nbf && tok->nbf > now + leeway) {
        return "jwt_not_yet_valid";
    }

    return NULL;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_set_names(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, u_char *data, size_t sub_len,
    size_t iss_len)
{
    u_char  *p;

    /* "sub" and "iss" of a remembered token, for the request */

    p = NULL;

    if (sub_len + iss_len) {
        p = ngx_pnalloc(r->pool, sub_len + iss_len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, data, sub_len + iss_len);
    }

    jctx->sub.data = p;
    jctx->sub.len = sub_len;
    jctx->iss.data = p + sub_len;
    jctx->iss.len = iss_len;

    return NGX_OK;
}


static ngx_http_grpc_guard_jwt_memo_t *
ngx_http_grpc_guard_jwt_memo(ngx_connection_t *c, ngx_uint_t create)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_grpc_guard_jwt_memo_t  *memo;

    /*
     * the memo is an entry of the connection pool's cleanup list, known
     * by its handler; r->connection of an HTTP/2 stream shares the pool
     * of the client connection
     */

    for (cln = c->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_grpc_guard_jwt_memo_cleanup) {
            return cln->data;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(c->pool, sizeof(ngx_http_grpc_guard_jwt_memo_t));
    if (cln == NULL) {
        return NULL;
    }

    memo = cln->data;
    ngx_memzero(memo, sizeof(ngx_http_grpc_guard_jwt_memo_t));

    cln->handler = ngx_http_grpc_guard_jwt_memo_cleanup;

    return memo;
}


static void
ngx_http_grpc_guard_jwt_memo_set(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, ngx_http_grpc_guard_jwt_ctx_t *jctx,
    ngx_http_grpc_guard_jwt_token_t *tok)
{
    size_t                           n, size;
    u_char                          *p;
    ngx_http_grpc_guard_jwt_memo_t  *memo;

    n = jctx->token.len + jctx->sub.len + jctx->iss.len;

    if (n > NGX_HTTP_GRPC_GUARD_JWT_MEMO_MAX) {
        return;
    }

    memo = ngx_http_grpc_guard_jwt_memo(r->connection, 1);
    if (memo == NULL) {
        return;
    }

    memo->jcf = NULL;

    if (n > memo->size) {

        /*
         * 1 KiB at least, doubled when a token needs more, up to 4 KiB:
         * a connection's pool never holds more than 7 KiB of them
         */

        size = ngx_max(n, NGX_HTTP_GRPC_GUARD_JWT_MEMO_MIN);
        size = ngx_min(ngx_max(size, 2 * memo->size),
                       NGX_HTTP_GRPC_GUARD_JWT_MEMO_MAX);

        p = ngx_pnalloc(r->connection->pool, size);
        if (p == NULL) {
            return;
        }

        memo->data = p;
        memo->size = size;
    }

    p = ngx_cpymem(memo->data, jctx->token.data, jctx->token.len);
    p = ngx_cpymem(p, jctx->sub.data, jctx->sub.len);
    ngx_memcpy(p, jctx->iss.data, jctx->iss.len);

    memo->token_len = jctx->token.len;
    memo->sub_len = (u_short) jctx->sub.len;
    memo->iss_len = (u_short) jctx->iss.len;
    memo->has_exp = tok->has_exp;
    memo->has_nbf = tok->has_nbf;
    memo->exp = tok->exp;
    memo->nbf = tok->nbf;
    memo->jcf = jcf;
}


static void
ngx_http_grpc_guard_jwt_memo_cleanup(void *data)
{
    /* nothing to free: the memo and its data are the pool's */
}


static void
ngx_http_grpc_guard_jwt_cache_insert(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_cache_t *cache,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *hash,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok)
{
    size_t                            n;
    ngx_http_grpc_guard_jwt_node_t   *jn, **bucket;

    if (jctx->sub.len + jctx->iss.len > NGX_HTTP_GRPC_GUARD_JWT_CACHE_DATA) {
        return;
    }

    n = offsetof(ngx_http_grpc_guard_jwt_node_t, data)
        + jctx->sub.len + jctx->iss.len;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (ngx_http_grpc_guard_jwt_cache_find(cache, hash)) {

        /* another worker was quicker */

        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    ngx_http_grpc_guard_jwt_cache_expire(cache, 0, 2);

    jn = ngx_slab_alloc_locked(cache->shpool, n);

    if (jn == NULL) {
        ngx_http_grpc_guard_jwt_cache_expire(cache, 1,
                                             NGX_HTTP_GRPC_GUARD_JWT_EVICT);

        jn = ngx_slab_alloc_locked(cache->shpool, n);

        if (jn == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);

            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "grpc guard: no room in the jwt cache");
            return;
        }
    }

    ngx_memcpy(jn->hash, hash, NGX_HTTP_GRPC_GUARD_SHA256_LEN);

    jn->has_exp = tok->has_exp;
    jn->has_nbf = tok->has_nbf;
    jn->exp = tok->exp;
    jn->nbf = tok->nbf;

    if (tok->has_exp) {
        jn->expire = (tok->exp + jcf->leeway < (double) NGX_MAX_INT32_VALUE)
                     ? (time_t) tok->exp + jcf->leeway + 1
                     : 0;

    } else {
        jn->expire = 0;
    }

    jn->sub_len = (u_short) jctx->sub.len;
    jn->iss_len = (u_short) jctx->iss.len;

    ngx_memcpy(ngx_cpymem(jn->data, jctx->sub.data, jctx->sub.len),
               jctx->iss.data, jctx->iss.len);

    bucket = ngx_http_grpc_guard_jwt_bucket(cache, hash);

    jn->next = *bucket;
    *bucket = jn;

    ngx_queue_insert_head(&cache->sh->queue, &jn->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


static ngx_http_grpc_guard_jwt_node_t **
ngx_http_grpc_guard_jwt_bucket(ngx_http_grpc_guard_jwt_cache_t *cache,
    u_char *hash)
{
    ngx_uint_t  key;

    /* the hash is SHA-256: any of its bytes are as good as an index */

    ngx_memcpy(&key, hash, sizeof(ngx_uint_t));

    return &cache->sh->buckets[key & cache->sh->mask];
}


static ngx_http_grpc_guard_jwt_node_t *
ngx_http_grpc_guard_jwt_cache_find(ngx_http_grpc_guard_jwt_cache_t *cache,
    u_char *hash)
{
    ngx_http_grpc_guard_jwt_node_t  *jn;

    for (jn = *ngx_http_grpc_guard_jwt_bucket(cache, hash); jn; jn = jn->next)
    {
        if (ngx_memcmp(hash, jn->hash, NGX_HTTP_GRPC_GUARD_SHA256_LEN) == 0) {
            return jn;
        }
    }

    return NULL;
}


static void
ngx_http_grpc_guard_jwt_cache_expire(ngx_http_grpc_guard_jwt_cache_t *cache,
    ngx_uint_t force, ngx_uint_t n)
{
    time_t                            now;
    ngx_queue_t                      *q;
    ngx_http_grpc_guard_jwt_node_t   *jn, **p;

    /* from the least recently used end; forced: to make room */

    now = ngx_time();

    while (n--) {

        if (ngx_queue_empty(&cache->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&cache->sh->queue);

        jn = ngx_queue_data(q, ngx_http_grpc_guard_jwt_node_t, queue);

        if (!force && (jn->expire == 0 || jn->expire > now)) {
            return;
        }

        ngx_queue_remove(q);

        for (p = ngx_http_grpc_guard_jwt_bucket(cache, jn->hash);
             *p != jn;
             p = &(*p)->next)
        {
            /* void */
        }

        *p = jn->next;

        ngx_slab_free_locked(cache->shpool, jn);
    }
}


static ngx_int_t
ngx_http_grpc_guard_jwt_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_grpc_guard_jwt_cache_t  *ocache = data;

    size_t                            len;
    ngx_uint_t                        n;
    ngx_http_grpc_guard_jwt_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {

        /* a reload: the verified tokens are kept */

        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;

        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_grpc_guard_jwt_shctx_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    /* about a bucket for each entry the zone can hold */

    for (n = 64;
         n < shm_zone->shm.size / NGX_HTTP_GRPC_GUARD_JWT_ENTRY_SIZE;
         n <<= 1)
    {
        /* void */
    }

    cache->sh->buckets = ngx_slab_calloc(cache->shpool,
                                  n * sizeof(ngx_http_grpc_guard_jwt_node_t *));
    if (cache->sh->buckets == NULL) {
        return NGX_ERROR;
    }

    cache->sh->mask = n - 1;

    ngx_queue_init(&cache->sh->queue);

    len = sizeof(" in grpc_guard_jwt_cache zone \"\"")
          + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx,
                " in grpc_guard_jwt_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


void
ngx_http_grpc_guard_jwt_create_conf(ngx_http_grpc_guard_jwt_conf_t *conf)
{
    /*
     * set by ngx_pcalloc() of the location configuration:
     *
     *     conf->policy = { 0 };
     */

    conf->keys = NGX_CONF_UNSET_PTR;
    conf->algorithms = NGX_CONF_UNSET_UINT;
    conf->issuers = NGX_CONF_UNSET_PTR;
    conf->audiences = NGX_CONF_UNSET_PTR;
    conf->require = NGX_CONF_UNSET_PTR;
    conf->leeway = NGX_CONF_UNSET;
    conf->max_lifetime = NGX_CONF_UNSET;
    conf->max_size = NGX_CONF_UNSET_SIZE;
    conf->token = NGX_CONF_UNSET_PTR;
}


char *
ngx_http_grpc_guard_jwt_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_conf_t *prev, ngx_http_grpc_guard_jwt_conf_t *conf,
    ngx_uint_t used)
{
    ngx_str_t                      *s;
    ngx_uint_t                      i, algs;
    ngx_array_t                    *require;
    ngx_http_grpc_guard_jwt_key_t  *key;

    ngx_conf_merge_ptr_value(conf->keys, prev->keys, NULL);
    ngx_conf_merge_uint_value(conf->algorithms, prev->algorithms,
                              NGX_HTTP_GRPC_GUARD_JWT_DEFAULT_ALGS);
    ngx_conf_merge_ptr_value(conf->issuers, prev->issuers, NULL);
    ngx_conf_merge_ptr_value(conf->audiences, prev->audiences, NULL);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway,
                             NGX_HTTP_GRPC_GUARD_JWT_LEEWAY);
    ngx_conf_merge_sec_value(conf->max_lifetime, prev->max_lifetime, 0);
    ngx_conf_merge_size_value(conf->max_size, prev->max_size,
                              NGX_HTTP_GRPC_GUARD_JWT_MAX_SIZE);
    ngx_conf_merge_ptr_value(conf->token, prev->token, NULL);

    if (conf->require == NGX_CONF_UNSET_PTR) {

        if (prev->require == NGX_CONF_UNSET_PTR) {

            /* "exp" is required by default */

            require = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));
            if (require == NULL) {
                return NGX_CONF_ERROR;
            }

            s = ngx_array_push(require);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = ngx_http_grpc_guard_jwt_exp;

            prev->require = require;
        }

        conf->require = prev->require;
    }

    if (conf->max_size < NGX_HTTP_GRPC_GUARD_JWT_MIN_SIZE
        || conf->max_size > NGX_HTTP_GRPC_GUARD_JWT_SIZE_LIMIT)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_jwt_max_size\" must be between "
                           "%d and %d", NGX_HTTP_GRPC_GUARD_JWT_MIN_SIZE,
                           NGX_HTTP_GRPC_GUARD_JWT_SIZE_LIMIT);
        return NGX_CONF_ERROR;
    }

    if (!used) {
        return NGX_CONF_OK;
    }

    if (conf->keys == NULL || conf->keys->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_auth jwt\" needs keys: "
                           "no \"grpc_guard_jwt_key_file\" is defined");
        return NGX_CONF_ERROR;
    }

    algs = 0;
    key = conf->keys->elts;

    for (i = 0; i < conf->keys->nelts; i++) {
        algs |= key[i].algs;
    }

    if (!(algs & conf->algorithms)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "none of the keys of \"grpc_guard_jwt_key_file\" "
                           "can verify an algorithm that "
                           "\"grpc_guard_jwt_algorithms\" allows");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_jwt_policy(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_policy(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_conf_t *jcf)
{
    ngx_int_t                       rc;
    EVP_MD_CTX                     *md;
    ngx_uint_t                      i;
    ngx_http_grpc_guard_jwt_key_t  *key;
    int64_t                         n[5];

    /* everything that decides whether a token passes */

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        goto done;
    }

    key = jcf->keys->elts;

    for (i = 0; i < jcf->keys->nelts; i++) {
        n[0] = key[i].algs;

        if (ngx_http_grpc_guard_jwt_digest_str(md, key[i].kid.data,
                                               key[i].kid.len)
            != NGX_OK
            || EVP_DigestUpdate(md, &n[0], sizeof(int64_t)) != 1
            || EVP_DigestUpdate(md, key[i].digest,
                                NGX_HTTP_GRPC_GUARD_SHA256_LEN)
               != 1)
        {
            goto done;
        }
    }

    n[0] = jcf->algorithms;
    n[1] = jcf->leeway;
    n[2] = jcf->max_lifetime;
    n[3] = jcf->max_size;
    n[4] = jcf->keys->nelts;

    if (EVP_DigestUpdate(md, n, sizeof(n)) != 1
        || ngx_http_grpc_guard_jwt_digest_list(md, jcf->issuers) != NGX_OK
        || ngx_http_grpc_guard_jwt_digest_list(md, jcf->audiences) != NGX_OK
        || ngx_http_grpc_guard_jwt_digest_list(md, jcf->require) != NGX_OK
        || EVP_DigestFinal_ex(md, jcf->policy, NULL) != 1)
    {
        goto done;
    }

    rc = NGX_OK;

done:

    EVP_MD_CTX_free(md);

    if (rc != NGX_OK) {
        ERR_clear_error();
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc guard: SHA-256 is not available");
    }

    return rc;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_digest_str(EVP_MD_CTX *md, u_char *data, size_t len)
{
    uint64_t  n;

    n = len;

    if (EVP_DigestUpdate(md, &n, sizeof(uint64_t)) != 1
        || (len && EVP_DigestUpdate(md, data, len) != 1))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_digest_list(EVP_MD_CTX *md, ngx_array_t *list)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    /* a list that is not set differs from an empty one */

    if (list == NULL) {
        return ngx_http_grpc_guard_jwt_digest_str(md, (u_char *) "-", 1);
    }

    s = list->elts;

    if (ngx_http_grpc_guard_jwt_digest_str(md, (u_char *) "+", 1) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < list->nelts; i++) {
        if (ngx_http_grpc_guard_jwt_digest_str(md, s[i].data, s[i].len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_init_main(ngx_conf_t *cf,
    ngx_http_grpc_guard_main_conf_t *gmcf)
{
    ngx_uint_t                        i;
    ngx_shm_zone_t                   *shm_zone;
    ngx_pool_cleanup_t               *cln;
    ngx_http_grpc_guard_jwt_main_t   *jm;
    ngx_http_grpc_guard_jwt_cache_t  *cache;

    if (!gmcf->jwt_used) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(cf->pool,
                               sizeof(ngx_http_grpc_guard_jwt_main_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    jm = cln->data;
    ngx_memzero(jm, sizeof(ngx_http_grpc_guard_jwt_main_t));

    cln->handler = ngx_http_grpc_guard_jwt_main_cleanup;

    /* fetched once: an implicit fetch on every use costs time */

    for (i = 0; i < 3; i++) {
        jm->md[i] = EVP_MD_fetch(NULL, ngx_http_grpc_guard_jwt_md_names[i],
                                 NULL);
        if (jm->md[i] == NULL) {
            ERR_clear_error();
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc guard: %s is not available",
                               ngx_http_grpc_guard_jwt_md_names[i]);
            return NGX_ERROR;
        }
    }

    jm->hash = EVP_MD_CTX_new();
    if (jm->hash == NULL) {
        return NGX_ERROR;
    }

    /*
     * the JSON of a token is parsed into the request pool: some thirty
     * malloc() and free() calls fewer per token
     */

    json_set_alloc_funcs(ngx_http_grpc_guard_jwt_json_alloc,
                         ngx_http_grpc_guard_jwt_json_free);

    gmcf->jwt = jm;

    if (gmcf->jwt_cache_size == NGX_CONF_UNSET) {
        gmcf->jwt_cache_size = NGX_HTTP_GRPC_GUARD_JWT_CACHE_SIZE;
    }

    if (gmcf->jwt_cache_size == 0) {
        return NGX_OK;
    }

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_grpc_guard_jwt_zone_name,
                                     gmcf->jwt_cache_size,
                                     &ngx_http_grpc_guard_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (shm_zone->data == NULL) {
        cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_jwt_cache_t));
        if (cache == NULL) {
            return NGX_ERROR;
        }

        shm_zone->init = ngx_http_grpc_guard_jwt_init_zone;
        shm_zone->data = cache;
    }

    gmcf->jwt_cache = shm_zone;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_jwt_main_cleanup(void *data)
{
    ngx_http_grpc_guard_jwt_main_t  *jm = data;

    ngx_uint_t  i;

    for (i = 0; i < 3; i++) {
        if (jm->md[i]) {
            EVP_MD_free(jm->md[i]);
        }
    }

    if (jm->hash) {
        EVP_MD_CTX_free(jm->hash);
    }
}


char *
ngx_http_grpc_guard_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_grpc_guard_main_conf_t *gmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (gmcf->jwt_cache_size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        gmcf->jwt_cache_size = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jwt cache \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    gmcf->jwt_cache_size = size;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_algorithms(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i, algs;
    ngx_http_grpc_guard_jwt_alg_t  *alg;

    if (glcf->jwt.algorithms != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    algs = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "none") == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the \"none\" algorithm is never allowed");
            return NGX_CONF_ERROR;
        }

        alg = ngx_http_grpc_guard_jwt_find_alg(value[i].data, value[i].len);

        if (alg == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown JWS algorithm \"%V\" (names are "
                               "case-sensitive, e.g. \"RS256\", \"EdDSA\")",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        algs |= alg->mask;
    }

    glcf->jwt.algorithms = algs;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_list(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t     *value, *s;
    ngx_uint_t     i;
    ngx_array_t  **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a == NGX_CONF_UNSET_PTR) {
        *a = ngx_array_create(cf->pool, cf->args->nelts - 1,
                              sizeof(ngx_str_t));
        if (*a == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty value in \"%V\"", &cmd->name);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_max_lifetime(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    time_t      t;
    ngx_str_t  *value;

    if (glcf->jwt.max_lifetime != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        glcf->jwt.max_lifetime = 0;
        return NGX_CONF_OK;
    }

    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->jwt.max_lifetime = t;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char                          *p, *last;
    char                            *rv;
    ngx_str_t                       *value, file, content;
    ngx_uint_t                       n;
    ngx_http_grpc_guard_jwt_load_t   ld;

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (glcf->jwt.keys == NGX_CONF_UNSET_PTR) {
        glcf->jwt.keys = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_grpc_guard_jwt_key_t));
        if (glcf->jwt.keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_grpc_guard_read_file(cf, cf->temp_pool, &file,
                                      NGX_HTTP_GRPC_GUARD_JWT_MAX_FILE,
                                      &content)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (content.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc_guard_jwt_key_file \"%V\" is empty", &file);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ld, sizeof(ngx_http_grpc_guard_jwt_load_t));

    ld.cf = cf;
    ld.file = &file;
    ld.keys = glcf->jwt.keys;

    n = ld.keys->nelts;

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
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc_guard_jwt_key_file \"%V\" is neither a JWKS "
                           "(JSON) nor PEM", &file);
        rv = NGX_CONF_ERROR;
    }

    /* an "oct" key is a secret: it is not left in memory */

    OPENSSL_cleanse(content.data, content.len);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (ld.keys->nelts == n) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc_guard_jwt_key_file \"%V\" has no key", &file);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_grpc_guard_jwt_load_jwks(ngx_http_grpc_guard_jwt_load_t *ld,
    ngx_str_t *content)
{
    char          *rv;
    json_t        *root, *keys, *jwk;
    size_t         i;
    json_error_t   error;

    root = json_loadb((char *) content->data, content->len,
                      JSON_REJECT_DUPLICATES, &error);

    if (root == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": invalid JSON "
                           "at line %d: %s", ld->file, error.line,
                           error.text);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;

    keys = json_object_get(root, "keys");

    if (keys) {
        if (!json_is_array(keys)) {
            ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": \"keys\" is "
                               "not an array", ld->file);
            rv = NGX_CONF_ERROR;
            goto done;
        }

        for (i = 0; i < json_array_size(keys); i++) {
            jwk = json_array_get(keys, i);
            ld->n = i + 1;

            rv = ngx_http_grpc_guard_jwt_load_jwk(ld, jwk);
            if (rv != NGX_CONF_OK) {
                goto done;
            }
        }

    } else if (json_object_get(root, "kty")) {

        /* a single JWK */

        ld->n = 1;
        rv = ngx_http_grpc_guard_jwt_load_jwk(ld, root);

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": neither a JWK "
                           "Set (\"keys\") nor a JWK (\"kty\")", ld->file);
        rv = NGX_CONF_ERROR;
    }

done:

    json_decref(root);

    return rv;
}


static char *
ngx_http_grpc_guard_jwt_load_jwk(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk)
{
    char                           *rv, **priv, *what;
    json_t                         *v, *e;
    size_t                          i;
    EVP_PKEY                       *pkey;
    ngx_str_t                       kty, alg_name, use, secret;
    ngx_conf_t                     *cf;
    ngx_uint_t                      algs, type_algs;
    ngx_http_grpc_guard_jwt_alg_t  *alg;
    ngx_http_grpc_guard_jwt_key_t   key;

    cf = ld->cf;
    ngx_str_null(&ld->kid);
    ngx_http_grpc_guard_jwt_label(ld, "key");

    if (!json_is_object(jwk)) {
        what = "is not a JSON object";
        goto invalid;
    }

    v = json_object_get(jwk, "kid");

    if (v) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > NGX_HTTP_GRPC_GUARD_JWT_MAX_KID)
        {
            what = "has a \"kid\" that is not a string of 1 to 256 bytes";
            goto invalid;
        }

        ld->kid.data = (u_char *) json_string_value(v);
        ld->kid.len = json_string_length(v);
    }

    ngx_http_grpc_guard_jwt_label(ld, "key");

    rv = ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "kty", &kty);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    v = json_object_get(jwk, "use");

    if (v) {
        if (!json_is_string(v)) {
            what = "has a \"use\" that is not a string";
            goto invalid;
        }

        use.data = (u_char *) json_string_value(v);
        use.len = json_string_length(v);

        if (use.len != 3 || ngx_strncmp(use.data, "sig", 3) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V"
                               " has \"use\": \"%V\"; only "
                               "signature keys (\"sig\") are accepted",
                               ld->file, &ld->label, &use);
            return NGX_CONF_ERROR;
        }
    }

    v = json_object_get(jwk, "key_ops");

    if (v) {
        if (!json_is_array(v)) {
            what = "has a \"key_ops\" that is not an array";
            goto invalid;
        }

        for (i = 0; i < json_array_size(v); i++) {
            e = json_array_get(v, i);

            if (json_is_string(e)
                && ngx_strcmp(json_string_value(e), "verify") == 0)
            {
                break;
            }
        }

        if (i == json_array_size(v)) {
            what = "has \"key_ops\" without \"verify\"";
            goto invalid;
        }
    }

    alg = NULL;

    v = json_object_get(jwk, "alg");

    if (v) {
        if (!json_is_string(v)) {
            what = "has an \"alg\" that is not a string";
            goto invalid;
        }

        alg_name.data = (u_char *) json_string_value(v);
        alg_name.len = json_string_length(v);

        alg = ngx_http_grpc_guard_jwt_find_alg(alg_name.data, alg_name.len);

        if (alg == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V"
                               " has the unknown or refused "
                               "\"alg\": \"%V\"",
                               ld->file, &ld->label, &alg_name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strcmp(kty.data, "oct") != 0) {

        /* a JWK of a public key must not carry its private half */

        for (priv = ngx_http_grpc_guard_jwt_private; *priv; priv++) {
            if (json_object_get(jwk, *priv)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "grpc_guard_jwt_key_file \"%V\": %V"
                                   " contains private key "
                                   "material (\"%s\"); give the public key "
                                   "only", ld->file, &ld->label, *priv);
                return NGX_CONF_ERROR;
            }
        }
    }

    ngx_memzero(&key, sizeof(ngx_http_grpc_guard_jwt_key_t));

    pkey = NULL;
    type_algs = 0;

    if (ngx_strcmp(kty.data, "RSA") == 0) {
        pkey = ngx_http_grpc_guard_jwt_jwk_rsa(ld, jwk);
        type_algs = NGX_HTTP_GRPC_GUARD_JWT_RSA;

    } else if (ngx_strcmp(kty.data, "EC") == 0) {
        pkey = ngx_http_grpc_guard_jwt_jwk_ec(ld, jwk, &type_algs);

    } else if (ngx_strcmp(kty.data, "OKP") == 0) {
        pkey = ngx_http_grpc_guard_jwt_jwk_okp(ld, jwk);
        type_algs = NGX_HTTP_GRPC_GUARD_JWT_EDDSA;

    } else if (ngx_strcmp(kty.data, "oct") == 0) {

        /* a shared secret: HS* only, and only when long enough */

        rv = ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "k", &secret);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        if (secret.len < NGX_HTTP_GRPC_GUARD_JWT_MIN_SECRET) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V"
                               ": an \"oct\" key needs at least "
                               "%d bytes", ld->file, &ld->label,
                               NGX_HTTP_GRPC_GUARD_JWT_MIN_SECRET);
            return NGX_CONF_ERROR;
        }

        key.secret = ngx_pnalloc(cf->pool, secret.len);
        if (key.secret == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(key.secret, secret.data, secret.len);
        key.secret_len = secret.len;

        OPENSSL_cleanse(secret.data, secret.len);

        type_algs = NGX_HTTP_GRPC_GUARD_JWT_HS256;

        if (key.secret_len >= 48) {
            type_algs |= NGX_HTTP_GRPC_GUARD_JWT_HS384;
        }

        if (key.secret_len >= 64) {
            type_algs |= NGX_HTTP_GRPC_GUARD_JWT_HS512;
        }

        if (EVP_Digest(key.secret, key.secret_len, key.digest, NULL,
                       EVP_sha256(), NULL)
            != 1)
        {
            ERR_clear_error();
            return NGX_CONF_ERROR;
        }

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           " has the unsupported \"kty\": \"%V\"",
                           ld->file, &ld->label, &kty);
        return NGX_CONF_ERROR;
    }

    if (key.secret == NULL && pkey == NULL) {
        return NGX_CONF_ERROR;
    }

    /* freed with the configuration, whatever happens below */

    if (pkey && ngx_http_grpc_guard_jwt_pkey_cleanup(cf, pkey) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the key's own "alg" restricts it to that algorithm */

    algs = type_algs;

    if (alg) {
        if (!(alg->mask & type_algs)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V"
                               ": \"alg\": \"%V\" does not fit "
                               "this key (\"kty\": \"%V\", its curve or its "
                               "size)", ld->file, &ld->label, &alg_name,
                               &kty);
            return NGX_CONF_ERROR;
        }

        algs = alg->mask;
    }

    if (pkey) {
        return ngx_http_grpc_guard_jwt_add_pkey(ld, pkey, algs);
    }

    key.algs = algs;

    return ngx_http_grpc_guard_jwt_add_key(ld, &key);

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "grpc_guard_jwt_key_file \"%V\": %V %s",
                       ld->file, &ld->label, what);

    return NGX_CONF_ERROR;
}


static void
ngx_http_grpc_guard_jwt_label(ngx_http_grpc_guard_jwt_load_t *ld, char *what)
{
    u_char  *p;

    if (ld->kid.len) {
        p = ngx_snprintf(ld->text, sizeof(ld->text), "%s %ui (kid \"%V\")",
                         what, ld->n, &ld->kid);

    } else {
        p = ngx_snprintf(ld->text, sizeof(ld->text), "%s %ui", what, ld->n);
    }

    ld->label.data = ld->text;
    ld->label.len = p - ld->text;
}


static char *
ngx_http_grpc_guard_jwt_jwk_member(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk, char *name, ngx_str_t *value)
{
    json_t     *v;
    ngx_str_t   text;

    /* "kty" as text; the others decoded from base64url */

    v = json_object_get(jwk, name);

    if (!json_is_string(v) || json_string_length(v) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           " has no \"%s\" string",
                           ld->file, &ld->label, name);
        return NGX_CONF_ERROR;
    }

    text.data = (u_char *) json_string_value(v);
    text.len = json_string_length(v);

    if (ngx_strcmp(name, "kty") == 0) {
        *value = text;
        return NGX_CONF_OK;
    }

    value->data = ngx_pnalloc(ld->cf->temp_pool, text.len);
    if (value->data == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_jwt_decode(value, &text) != NGX_OK
        || value->len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": \"%s\" is not canonical base64url",
                           ld->file, &ld->label, name);
        return NGX_CONF_ERROR;
    }

    if (ngx_strcmp(name, "k") == 0) {

        /* the text of a secret goes with the JSON tree: wiped first */

        OPENSSL_cleanse(text.data, text.len);
    }

    return NGX_CONF_OK;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_jwk_rsa(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk)
{
    BIGNUM          *n, *e;
    EVP_PKEY        *pkey;
    ngx_str_t        ns, es;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *pctx;
    OSSL_PARAM_BLD  *bld;

    if (ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "n", &ns) != NGX_CONF_OK
        || ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "e", &es)
           != NGX_CONF_OK)
    {
        return NULL;
    }

    if (es.len > 8) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": the RSA exponent is too large",
                           ld->file, &ld->label);
        return NULL;
    }

    pkey = NULL;
    params = NULL;
    pctx = NULL;

    n = BN_bin2bn(ns.data, ns.len, NULL);
    e = BN_bin2bn(es.data, es.len, NULL);
    bld = OSSL_PARAM_BLD_new();

    if (n == NULL || e == NULL || bld == NULL
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
    {
        goto done;
    }

    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        goto done;
    }

    pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);

    if (pctx == NULL
        || EVP_PKEY_fromdata_init(pctx) != 1
        || EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    ERR_clear_error();

    if (pkey == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": invalid RSA key",
                           ld->file, &ld->label);
    }

    return pkey;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_jwk_ec(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk, ngx_uint_t *algs)
{
    char            *group;
    json_t          *v;
    size_t           size;
    u_char          *pub;
    EVP_PKEY        *pkey;
    ngx_str_t        x, y;
    OSSL_PARAM      *params;
    const char      *crv;
    EVP_PKEY_CTX    *pctx;
    OSSL_PARAM_BLD  *bld;

    v = json_object_get(jwk, "crv");
    crv = json_is_string(v) ? json_string_value(v) : "";

    if (ngx_strcmp(crv, "P-256") == 0) {
        group = "prime256v1";
        size = 32;
        *algs = NGX_HTTP_GRPC_GUARD_JWT_ES256;

    } else if (ngx_strcmp(crv, "P-384") == 0) {
        group = "secp384r1";
        size = 48;
        *algs = NGX_HTTP_GRPC_GUARD_JWT_ES384;

    } else if (ngx_strcmp(crv, "P-521") == 0) {
        group = "secp521r1";
        size = 66;
        *algs = NGX_HTTP_GRPC_GUARD_JWT_ES512;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": unsupported EC \"crv\": \"%s\" "
                           "(P-256, P-384 or P-521)",
                           ld->file, &ld->label, crv);
        return NULL;
    }

    if (ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "x", &x) != NGX_CONF_OK
        || ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "y", &y)
           != NGX_CONF_OK)
    {
        return NULL;
    }

    if (x.len != size || y.len != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": \"x\" and \"y\" do not match "
                           "\"crv\": \"%s\" (%uz bytes each expected)",
                           ld->file, &ld->label, crv, size);
        return NULL;
    }

    pub = ngx_pnalloc(ld->cf->temp_pool, 1 + 2 * size);
    if (pub == NULL) {
        return NULL;
    }

    /* an uncompressed point */

    pub[0] = 0x04;
    ngx_memcpy(pub + 1, x.data, size);
    ngx_memcpy(pub + 1 + size, y.data, size);

    pkey = NULL;
    params = NULL;
    pctx = NULL;

    bld = OSSL_PARAM_BLD_new();

    if (bld == NULL
        || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, 0)
           != 1
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            pub, 1 + 2 * size)
           != 1)
    {
        goto done;
    }

    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        goto done;
    }

    pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

    if (pctx == NULL
        || EVP_PKEY_fromdata_init(pctx) != 1
        || EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        pkey = NULL;
        goto done;
    }

    /* the point is on the curve */

    EVP_PKEY_CTX_free(pctx);

    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

    if (pctx == NULL || EVP_PKEY_public_check(pctx) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    ERR_clear_error();

    if (pkey == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": invalid EC public key on %s",
                           ld->file, &ld->label, crv);
    }

    return pkey;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_jwk_okp(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk)
{
    json_t      *v;
    EVP_PKEY    *pkey;
    ngx_str_t    x;
    const char  *crv;

    v = json_object_get(jwk, "crv");
    crv = json_is_string(v) ? json_string_value(v) : "";

    if (ngx_strcmp(crv, "Ed25519") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": unsupported OKP \"crv\": \"%s\" "
                           "(Ed25519 only)", ld->file, &ld->label, crv);
        return NULL;
    }

    if (ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "x", &x) != NGX_CONF_OK) {
        return NULL;
    }

    if (x.len != 32) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": \"x\" does not match \"crv\": "
                           "\"Ed25519\" (32 bytes expected)",
                           ld->file, &ld->label);
        return NULL;
    }

    pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x.data,
                                          x.len);

    ERR_clear_error();

    if (pkey == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V"
                           ": invalid Ed25519 public key",
                           ld->file, &ld->label);
    }

    return pkey;
}


static char *
ngx_http_grpc_guard_jwt_load_pem(ngx_http_grpc_guard_jwt_load_t *ld,
    ngx_str_t *content)
{
    char    *name, *header, *rv;
    u_char  *der;
    long            len;
    BIO            *bio;
    X509           *x509;
    EVP_PKEY       *pkey;
    const u_char   *p;
    unsigned long   err;

    bio = BIO_new_mem_buf(content->data, (int) content->len);
    if (bio == NULL) {
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;

    for ( ;; ) {

        name = NULL;
        header = NULL;
        der = NULL;

        if (PEM_read_bio(bio, &name, &header, &der, &len) != 1) {
            err = ERR_peek_last_error();

            if (ERR_GET_LIB(err) == ERR_LIB_PEM
                && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)
            {
                /* no more blocks */
                break;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": invalid PEM",
                               ld->file);
            rv = NGX_CONF_ERROR;
            break;
        }

        ld->n++;
        ngx_http_grpc_guard_jwt_label(ld, "block");

        pkey = NULL;
        p = der;

        if (ngx_strcmp(name, "PUBLIC KEY") == 0) {
            pkey = d2i_PUBKEY(NULL, &p, len);

        } else if (ngx_strcmp(name, "RSA PUBLIC KEY") == 0) {
            pkey = ngx_http_grpc_guard_jwt_pem_rsa(der, len);

        } else if (ngx_strcmp(name, "CERTIFICATE") == 0) {

            /* a container for the key: its dates and chain do not count */

            x509 = d2i_X509(NULL, &p, len);

            if (x509) {
                pkey = X509_get_pubkey(x509);
                X509_free(x509);
            }

        } else if (ngx_strstr(name, "PRIVATE KEY") != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V is a "
                               "private key (\"%s\"); give the public key "
                               "or certificate only",
                               ld->file, &ld->label, name);
            rv = NGX_CONF_ERROR;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V "
                               "(\"%s\") is not a public key or certificate",
                               ld->file, &ld->label, name);
            rv = NGX_CONF_ERROR;
        }

        if (der) {
            OPENSSL_cleanse(der, len);
        }

        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);

        if (rv != NGX_CONF_OK) {
            break;
        }

        if (pkey == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V "
                               "could not be decoded", ld->file, &ld->label);
            rv = NGX_CONF_ERROR;
            break;
        }

        if (ngx_http_grpc_guard_jwt_pkey_cleanup(ld->cf, pkey) != NGX_OK) {
            rv = NGX_CONF_ERROR;
            break;
        }

        rv = ngx_http_grpc_guard_jwt_add_pkey(ld, pkey, 0);

        if (rv != NGX_CONF_OK) {
            break;
        }
    }

    BIO_free(bio);
    ERR_clear_error();

    return rv;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_pem_rsa(u_char *der, long len)
{
    size_t             size;
    EVP_PKEY          *pkey;
    const u_char      *p;
    OSSL_DECODER_CTX  *dctx;

    /* PKCS #1 RSAPublicKey */

    pkey = NULL;

    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", "type-specific",
                                         "RSA", EVP_PKEY_PUBLIC_KEY,
                                         NULL, NULL);
    if (dctx == NULL) {
        return NULL;
    }

    p = der;
    size = (size_t) len;

    if (OSSL_DECODER_from_data(dctx, &p, &size) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

    OSSL_DECODER_CTX_free(dctx);

    return pkey;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_pkey_cleanup(ngx_conf_t *cf, EVP_PKEY *pkey)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        EVP_PKEY_free(pkey);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_grpc_guard_jwt_free_pkey;
    cln->data = pkey;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_jwt_free_pkey(void *data)
{
    EVP_PKEY  *pkey = data;

    EVP_PKEY_free(pkey);
}


static ngx_int_t
ngx_http_grpc_guard_jwt_verify_ctx(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_key_t *key)
{
    ngx_uint_t                      i;
    const EVP_MD                   *md;
    EVP_PKEY_CTX                   *pctx;
    ngx_pool_cleanup_t             *cln;
    ngx_http_grpc_guard_jwt_alg_t  *alg;

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_JWT_NALGS; i++) {

        alg = &ngx_http_grpc_guard_jwt_algs[i];

        if (!(key->algs & alg->mask)
            || alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_EDDSA
            || alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_HMAC)
        {
            continue;
        }

        md = EVP_get_digestbyname(ngx_http_grpc_guard_jwt_md_names[alg->md]);
        if (md == NULL) {
            return NGX_ERROR;
        }

        pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
        if (pctx == NULL) {
            return NGX_ERROR;
        }

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            EVP_PKEY_CTX_free(pctx);
            return NGX_ERROR;
        }

        cln->handler = ngx_http_grpc_guard_jwt_free_pkey_ctx;
        cln->data = pctx;

        if (EVP_PKEY_verify_init(pctx) != 1
            || EVP_PKEY_CTX_set_signature_md(pctx, md) != 1)
        {
            return NGX_ERROR;
        }

        if (alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_PSS) {

            /* RFC 7518, 3.5: MGF1 with the same hash, salt as long as it */

            if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
                != 1
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                    RSA_PSS_SALTLEN_DIGEST)
                   != 1
                || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1)
            {
                return NGX_ERROR;
            }

        } else if (alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_RSA
                   && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING)
                      != 1)
        {
            return NGX_ERROR;
        }

        key->verify[i] = pctx;
    }

    return NGX_OK;
}


static void
ngx_http_grpc_guard_jwt_free_pkey_ctx(void *data)
{
    EVP_PKEY_CTX  *pctx = data;

    EVP_PKEY_CTX_free(pctx);
}


static char *
ngx_http_grpc_guard_jwt_add_pkey(ngx_http_grpc_guard_jwt_load_t *ld,
    EVP_PKEY *pkey, ngx_uint_t algs)
{
    int                            bits, len;
    size_t                         n;
    u_char                        *der, *p;
    ngx_uint_t                     type_algs;
    ngx_http_grpc_guard_jwt_key_t  key;
    char                           group[64];

    /*
     * the algorithms the type of the key allows; the caller has made
     * sure that the key is freed with the configuration
     */

    if (EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        bits = EVP_PKEY_get_bits(pkey);

        if (bits < NGX_HTTP_GRPC_GUARD_JWT_MIN_RSA_BITS
            || bits > NGX_HTTP_GRPC_GUARD_JWT_MAX_RSA_BITS)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V is an "
                               "RSA key of %d bits; %d to %d are accepted",
                               ld->file, &ld->label, bits,
                               NGX_HTTP_GRPC_GUARD_JWT_MIN_RSA_BITS,
                               NGX_HTTP_GRPC_GUARD_JWT_MAX_RSA_BITS);
            return NGX_CONF_ERROR;
        }

        type_algs = EVP_PKEY_is_a(pkey, "RSA-PSS")
                    ? NGX_HTTP_GRPC_GUARD_JWT_PSS : NGX_HTTP_GRPC_GUARD_JWT_RSA;

    } else if (EVP_PKEY_is_a(pkey, "EC")) {

        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &n) != 1) {
            group[0] = '\0';
        }

        if (ngx_strcmp(group, "prime256v1") == 0) {
            type_algs = NGX_HTTP_GRPC_GUARD_JWT_ES256;

        } else if (ngx_strcmp(group, "secp384r1") == 0) {
            type_algs = NGX_HTTP_GRPC_GUARD_JWT_ES384;

        } else if (ngx_strcmp(group, "secp521r1") == 0) {
            type_algs = NGX_HTTP_GRPC_GUARD_JWT_ES512;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                               "grpc_guard_jwt_key_file \"%V\": %V is on "
                               "the unsupported curve \"%s\" (P-256, P-384 "
                               "or P-521)", ld->file, &ld->label, group);
            return NGX_CONF_ERROR;
        }

    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        type_algs = NGX_HTTP_GRPC_GUARD_JWT_EDDSA;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V has the "
                           "unsupported type \"%s\"", ld->file, &ld->label,
                           EVP_PKEY_get0_type_name(pkey));
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&key, sizeof(ngx_http_grpc_guard_jwt_key_t));

    key.pkey = pkey;
    key.algs = algs ? algs : type_algs;

    if (!(key.algs & type_algs)) {
        return NGX_CONF_ERROR;
    }

    /* the fingerprint of the key, for the cache policy */

    len = i2d_PUBKEY(pkey, NULL);

    if (len <= 0) {
        ERR_clear_error();
        return NGX_CONF_ERROR;
    }

    der = ngx_pnalloc(ld->cf->temp_pool, len);
    if (der == NULL) {
        return NGX_CONF_ERROR;
    }

    p = der;

    if (i2d_PUBKEY(pkey, &p) != len
        || EVP_Digest(der, len, key.digest, NULL, EVP_sha256(), NULL) != 1)
    {
        ERR_clear_error();
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_jwt_verify_ctx(ld->cf, &key) != NGX_OK) {
        ERR_clear_error();
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\": %V cannot be "
                           "set up for verification", ld->file, &ld->label);
        return NGX_CONF_ERROR;
    }

    return ngx_http_grpc_guard_jwt_add_key(ld, &key);
}


static char *
ngx_http_grpc_guard_jwt_add_key(ngx_http_grpc_guard_jwt_load_t *ld,
    ngx_http_grpc_guard_jwt_key_t *key)
{
    ngx_http_grpc_guard_jwt_key_t  *k;

    k = ngx_array_push(ld->keys);
    if (k == NULL) {
        return NGX_CONF_ERROR;
    }

    *k = *key;

    /* the JSON text the "kid" points to is freed after loading */

    if (ld->kid.len) {
        k->kid.data = ngx_pstrdup(ld->cf->pool, &ld->kid);
        if (k->kid.data == NULL) {
            return NGX_CONF_ERROR;
        }

        k->kid.len = ld->kid.len;
    }

    return NGX_CONF_OK;
}
