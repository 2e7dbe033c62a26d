
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The verified tokens remembered: a cache shared by the workers, and the
 * last token of each connection, so that a token is verified once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"


/* "sub" and "iss" larger than this together are not cached */
#define NGX_HTTP_GRPC_GUARD_JWT_CACHE_DATA    1024

/* the room an entry takes in the zone, to size the table of buckets */
#define NGX_HTTP_GRPC_GUARD_JWT_ENTRY_SIZE    128

/* the largest token, "sub" and "iss" a connection remembers */
#define NGX_HTTP_GRPC_GUARD_JWT_MEMO_MAX      4096
#define NGX_HTTP_GRPC_GUARD_JWT_MEMO_MIN      1024

/* LRU entries dropped to make room for a new one */
#define NGX_HTTP_GRPC_GUARD_JWT_EVICT         16


static ngx_int_t ngx_http_grpc_guard_jwt_set_names(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, u_char *data, size_t sub_len,
    size_t iss_len);
static ngx_http_grpc_guard_jwt_memo_t *ngx_http_grpc_guard_jwt_memo(
    ngx_connection_t *c, ngx_uint_t create);
static void ngx_http_grpc_guard_jwt_memo_cleanup(void *data);
static ngx_http_grpc_guard_jwt_node_t **ngx_http_grpc_guard_jwt_bucket(
    ngx_http_grpc_guard_jwt_cache_t *cache, u_char *hash);
static ngx_http_grpc_guard_jwt_node_t *ngx_http_grpc_guard_jwt_cache_find(
    ngx_http_grpc_guard_jwt_cache_t *cache, u_char *hash);
static void ngx_http_grpc_guard_jwt_cache_expire(
    ngx_http_grpc_guard_jwt_cache_t *cache, ngx_uint_t force, ngx_uint_t n);


ngx_int_t
ngx_http_grpc_guard_jwt_cache_key(ngx_http_grpc_guard_jwt_main_t *jm,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *set, ngx_str_t *token,
    u_char *hash)
{
    unsigned int  len;

    /*
     * the policy of the location comes first, then the digest of the
     * keys fetched from the identity provider, if any: a token verified
     * with other keys, issuers or audiences is another entry, and a key
     * the provider removed verifies nothing more once a worker has the
     * new set
     */

    if (EVP_DigestInit_ex(jm->hash, jm->md[NGX_HTTP_GRPC_GUARD_JWT_SHA256],
                          NULL)
        != 1
        || EVP_DigestUpdate(jm->hash, jcf->policy,
                            NGX_HTTP_GRPC_GUARD_SHA256_LEN)
           != 1
        || (set && EVP_DigestUpdate(jm->hash, set,
                                    NGX_HTTP_GRPC_GUARD_SHA256_LEN)
                   != 1)
        || EVP_DigestUpdate(jm->hash, token->data, token->len) != 1
        || EVP_DigestFinal_ex(jm->hash, hash, &len) != 1)
    {
        ERR_clear_error();
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
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
        ngx_http_grpc_guard_metrics_add(NGX_HTTP_GRPC_GUARD_METRIC_JWT_MISS, 1);
        return NGX_DECLINED;
    }

    ngx_http_grpc_guard_metrics_add(NGX_HTTP_GRPC_GUARD_METRIC_JWT_HIT_SHARED,
                                    1);

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


ngx_int_t
ngx_http_grpc_guard_jwt_memo_lookup(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *set,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok,
    char **reason)
{
    ngx_http_grpc_guard_jwt_memo_t  *memo;

    /* as ngx_http_grpc_guard_jwt_cache_lookup(), for the connection */

    memo = ngx_http_grpc_guard_jwt_memo(r->connection, 0);

    if (memo == NULL || memo->jcf != jcf
        || (set && ngx_memcmp(memo->set, set, NGX_HTTP_GRPC_GUARD_SHA256_LEN)
                   != 0)
        || memo->token_len != jctx->token.len
        || ngx_memcmp(memo->data, jctx->token.data, jctx->token.len) != 0)
    {
        return NGX_DECLINED;
    }

    ngx_http_grpc_guard_metrics_add(NGX_HTTP_GRPC_GUARD_METRIC_JWT_HIT_MEMO, 1);

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


char *
ngx_http_grpc_guard_jwt_recheck(ngx_http_grpc_guard_jwt_conf_t *jcf,
    ngx_http_grpc_guard_jwt_token_t *tok)
{
    double  now, leeway;

    /*
     * the time claims of a remembered token (or introspection answer),
     * checked again on every call
     */

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
    return ngx_http_grpc_guard_connection_memo(c,
                                   ngx_http_grpc_guard_jwt_memo_cleanup,
                                   sizeof(ngx_http_grpc_guard_jwt_memo_t),
                                   create);
}


void
ngx_http_grpc_guard_jwt_memo_set(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_conf_t *jcf, u_char *set,
    ngx_http_grpc_guard_jwt_ctx_t *jctx, ngx_http_grpc_guard_jwt_token_t *tok)
{
    size_t                           n;
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

    /* 1 KiB at least, doubled when a token needs more, up to 4 KiB */

    if (ngx_http_grpc_guard_memo_room(r->connection->pool, &memo->data,
                                      &memo->size, n,
                                      NGX_HTTP_GRPC_GUARD_JWT_MEMO_MIN,
                                      NGX_HTTP_GRPC_GUARD_JWT_MEMO_MAX)
        != NGX_OK)
    {
        return;
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

    if (set) {
        ngx_memcpy(memo->set, set, NGX_HTTP_GRPC_GUARD_SHA256_LEN);
    }

    memo->jcf = jcf;
}


static void
ngx_http_grpc_guard_jwt_memo_cleanup(void *data)
{
    /* nothing to free: the memo and its data are the pool's */
}


void
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


ngx_int_t
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
