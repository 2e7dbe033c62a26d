
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * What the guard asks of other services: a subrequest to a location the
 * operator writes, its reply read in memory, checked by the concern that
 * asked, and kept in a shared zone that every worker reads.  One fetch of
 * a thing at a time across all the workers; the calls that need its
 * result wait for it, parked, and the others go on with the last good
 * result.  Each fetch that ends and each call that looks for a result is
 * counted with an atomic add (see ngx_http_grpc_guard_metrics_remote());
 * the metrics page asks for the age of the results
 * (ngx_http_grpc_guard_remote_age()).
 *
 * Two sorts of things:
 *
 * - one result per thing (a JWKS): ngx_http_grpc_guard_remote_add(),
 *   ngx_http_grpc_guard_remote_result() and
 *   ngx_http_grpc_guard_remote_fetch(); a GET with an empty body.
 *
 * - keyed things (introspection by the SHA-256 of a token, external
 *   authorization by the SHA-256 of its input): one result per key, each
 *   with its own expiry.  At configuration time
 *   ngx_http_grpc_guard_remote_add_keyed() with a check callback; at run
 *   time one call, ngx_http_grpc_guard_remote_keyed(r, rm, key, body,
 *   pool, &result, &expires):
 *
 *     NGX_OK        "result" holds a result (in "pool"): one in the zone
 *                   that has not expired, or the one the call waited for
 *                   (even when it is not kept); with "expires" (or
 *                   NULL), when the zone's result expires (ngx_current_msec
 *                   for a result waited for: not to be kept by the caller);
 *     NGX_AGAIN     the call is parked: its own fetch, or another
 *                   worker's fetch of the same key, is under way; the
 *                   stage runs again when it ends (at most the fetch
 *                   timeout later) and the same call gives the outcome;
 *     NGX_DECLINED  no answer: the fetch failed (status, size, timeout,
 *                   or the check said so), a fetch of this key failed
 *                   less than a second ago, or no room in the zone; the
 *                   caller maps it to 14 (a failure is never kept);
 *     NGX_ERROR     no memory.
 *
 *   The check callback runs once per reply, in the worker that fetched
 *   it, on the status and the body: NGX_OK is an answer, kept as
 *   reply->result (the body unless the check puts something else there,
 *   allocated from reply->pool) for reply->valid ms (0: given to the
 *   calls that waited for it, not kept); NGX_DECLINED is a failure.
 *
 *   The subrequest's body is "body" (a copy lives as long as the call):
 *   the location sends it with "proxy_method POST; proxy_set_body
 *   $VARIABLE;" where the variable's handler returns
 *   ngx_http_grpc_guard_remote_body(r, kind, &value), which finds the
 *   body only inside a guard subrequest of that kind.  As every guard
 *   subrequest, it carries none of the client's headers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


#define NGX_HTTP_GRPC_GUARD_REMOTE_SIZE       (4 * 1024 * 1024)

/* a thing that failed is not fetched again sooner (ms) */
#define NGX_HTTP_GRPC_GUARD_REMOTE_BACKOFF    1000

/* how often a call waiting for another worker's fetch looks (ms) */
#define NGX_HTTP_GRPC_GUARD_REMOTE_POLL       20

/*
 * the time since "t", in ms, as this worker sees it: the workers' clocks
 * are one clock (monotonic), but each worker reads it at its own moments,
 * so another worker's "t" may be a little ahead of this one's "now"
 */
#define ngx_http_grpc_guard_remote_since(t, now)                              \
    ((ngx_msec_int_t) ((now) - (t)))

/* LRU entries looked at to make room */
#define NGX_HTTP_GRPC_GUARD_REMOTE_EVICT      8

/* the longest URI of a thing */
#define NGX_HTTP_GRPC_GUARD_REMOTE_URI_MAX    1024

/* the longest name of a node: the URI, then a key */
#define NGX_HTTP_GRPC_GUARD_REMOTE_NAME                                       \
    (NGX_HTTP_GRPC_GUARD_REMOTE_URI_MAX + NGX_HTTP_GRPC_GUARD_SHA256_LEN)


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;      /* LRU */
    ngx_uint_t                  version;    /* of the last result stored */
    ngx_uint_t                  fetches;    /* fetches started */
} ngx_http_grpc_guard_remote_shctx_t;


typedef struct {
    ngx_http_grpc_guard_remote_shctx_t  *sh;
    ngx_slab_pool_t            *shpool;

    /* per worker */
    ngx_queue_t                 waiters;    /* parked calls */
    ngx_msec_t                  logged;     /* the last failure logged */
} ngx_http_grpc_guard_remote_zone_t;


/* a thing in the zone: its last good result and its fetch */

typedef struct {
    ngx_rbtree_node_t           node;       /* key: crc32 of the name */
    ngx_queue_t                 queue;
    u_char                     *data;       /* the result, or NULL */
    size_t                      len;
    ngx_uint_t                  version;    /* 0: no result yet */
    ngx_uint_t                  owner;      /* the fetch under way, or 0 */
    ngx_uint_t                  ended;      /* fetches ended */
    ngx_msec_t                  fetched;    /* when the result came */
    ngx_msec_t                  failed;     /* the last failure */
    ngx_msec_t                  deadline;   /* of the fetch under way */
    ngx_msec_t                  refetched;  /* the last on-demand fetch */
    ngx_msec_t                  expires;    /* keyed: of the result */
    unsigned                    has_failed:1;
    unsigned                    has_refetched:1;
    u_short                     name_len;   /* URI, then the key if any */
    u_char                      name[1];
} ngx_http_grpc_guard_remote_node_t;


struct ngx_http_grpc_guard_remote_s {
    ngx_uint_t                  kind;       /* for the metrics */
    ngx_str_t                   uri;        /* the location, and the name */
    uint32_t                    hash;
    size_t                      max_size;
    ngx_msec_t                  timeout;
    ngx_http_grpc_guard_remote_check_pt  check;
    ngx_http_grpc_guard_remote_keyed_pt  keyed;  /* NULL: one result */
    void                       *data;
};


/* a call parked for a fetch; one wait per call at most */

struct ngx_http_grpc_guard_remote_wait_s {
    ngx_http_request_t         *request;
    ngx_http_grpc_guard_remote_t  *remote;
    ngx_http_grpc_guard_remote_zone_t  *zone;
    ngx_event_t                 event;
    ngx_queue_t                 queue;
    ngx_msec_t                  deadline;
    ngx_uint_t                  ended;      /* of the node, at the start */
    ngx_uint_t                  owner;      /* the call's own fetch, or 0 */
    ngx_buf_t                  *body;       /* the reply, up to max_size */

    /* keyed things */
    u_char                      key[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
    ngx_str_t                   send;       /* the subrequest's body */
    ngx_str_t                   result;     /* of the call's own fetch */
    ngx_uint_t                  version;    /* of the node, at the start */

    unsigned                    queued:1;
    unsigned                    done:1;
    unsigned                    too_big:1;
    unsigned                    keyed:1;
    unsigned                    answered:1; /* "result" is the answer */
};


static ngx_http_grpc_guard_remote_zone_t *ngx_http_grpc_guard_remote_zone(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_grpc_guard_remote_copy(
    ngx_http_grpc_guard_remote_node_t *node, ngx_uint_t *version,
    ngx_pool_t *pool, ngx_str_t *result);
static ngx_uint_t ngx_http_grpc_guard_remote_lock(
    ngx_http_grpc_guard_remote_zone_t *zone, ngx_http_grpc_guard_remote_t *rm,
    ngx_http_grpc_guard_remote_node_t *node);
static ngx_http_grpc_guard_remote_wait_t *ngx_http_grpc_guard_remote_wait(
    ngx_http_request_t *r, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_remote_t *rm, u_char *key, ngx_uint_t owner,
    ngx_uint_t ended);
static ngx_int_t ngx_http_grpc_guard_remote_park(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_wait_t *w);
static void ngx_http_grpc_guard_remote_release(
    ngx_http_grpc_guard_remote_zone_t *zone, ngx_http_grpc_guard_remote_t *rm,
    u_char *key, ngx_uint_t owner);
static ngx_http_grpc_guard_remote_node_t *ngx_http_grpc_guard_remote_lookup(
    ngx_http_grpc_guard_remote_zone_t *zone, ngx_http_grpc_guard_remote_t *rm,
    u_char *key, ngx_uint_t create);
static void ngx_http_grpc_guard_remote_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_grpc_guard_remote_evict(
    ngx_http_grpc_guard_remote_zone_t *zone,
    ngx_http_grpc_guard_remote_node_t *keep);
static ngx_uint_t ngx_http_grpc_guard_remote_busy(
    ngx_http_grpc_guard_remote_node_t *node);
static ngx_int_t ngx_http_grpc_guard_remote_subrequest(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_wait_t *w);
static ngx_int_t ngx_http_grpc_guard_remote_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_grpc_guard_remote_store(ngx_log_t *log,
    ngx_http_grpc_guard_remote_wait_t *w, ngx_str_t *body, char *failure,
    ngx_uint_t status, ngx_msec_t valid);
static void ngx_http_grpc_guard_remote_wake_all(
    ngx_http_grpc_guard_remote_zone_t *zone, ngx_http_grpc_guard_remote_t *rm,
    u_char *key);
static void ngx_http_grpc_guard_remote_wake(
    ngx_http_grpc_guard_remote_wait_t *w);
static void ngx_http_grpc_guard_remote_handler(ngx_event_t *ev);
static void ngx_http_grpc_guard_remote_cleanup(void *data);
static ngx_int_t ngx_http_grpc_guard_remote_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_grpc_guard_remote_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_body_filter_pt  ngx_http_next_body_filter;


static ngx_str_t  ngx_http_grpc_guard_remote_zone_name =
    ngx_string("grpc_guard_remote_cache");


ngx_http_grpc_guard_remote_t *
ngx_http_grpc_guard_remote_add_keyed(ngx_conf_t *cf, ngx_uint_t kind,
    ngx_str_t *uri, size_t max_size, ngx_msec_t timeout,
    ngx_http_grpc_guard_remote_keyed_pt check, void *data)
{
    ngx_http_grpc_guard_remote_t  *rm;

    rm = ngx_http_grpc_guard_remote_add(cf, kind, uri, max_size, timeout,
                                        NULL, data);
    if (rm == NULL) {
        return NULL;
    }

    rm->keyed = check;

    return rm;
}


ngx_http_grpc_guard_remote_t *
ngx_http_grpc_guard_remote_add(ngx_conf_t *cf, ngx_uint_t kind,
    ngx_str_t *uri, size_t max_size, ngx_msec_t timeout,
    ngx_http_grpc_guard_remote_check_pt check, void *data)
{
    ngx_uint_t                         i;
    ngx_http_grpc_guard_remote_t      *rm, **rms;
    ngx_http_grpc_guard_main_conf_t   *gmcf;

    if (uri->len == 0 || uri->data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": the URI of a location (\"/...\") is "
                           "expected", uri);
        return NULL;
    }

    if (uri->len > NGX_HTTP_GRPC_GUARD_REMOTE_URI_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "the URI is too long");
        return NULL;
    }

    rm = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_remote_t));
    if (rm == NULL) {
        return NULL;
    }

    rm->kind = kind;
    rm->uri = *uri;
    rm->hash = ngx_crc32_short(uri->data, uri->len);
    rm->max_size = max_size;
    rm->timeout = timeout;
    rm->check = check;
    rm->data = data;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);
    gmcf->remote_used = 1;

    /* the things fetched, for the metrics page: each kind and URI once */

    if (gmcf->remotes == NULL) {
        gmcf->remotes = ngx_array_create(cf->pool, 4, sizeof(void *));
        if (gmcf->remotes == NULL) {
            return NULL;
        }
    }

    rms = gmcf->remotes->elts;

    for (i = 0; i < gmcf->remotes->nelts; i++) {
        if (rms[i]->kind == kind
            && rms[i]->uri.len == uri->len
            && ngx_memcmp(rms[i]->uri.data, uri->data, uri->len) == 0)
        {
            return rm;
        }
    }

    rms = ngx_array_push(gmcf->remotes);
    if (rms == NULL) {
        return NULL;
    }

    *rms = rm;

    return rm;
}


ngx_str_t *
ngx_http_grpc_guard_remote_uri(ngx_http_grpc_guard_remote_t *rm)
{
    return &rm->uri;
}


ngx_int_t
ngx_http_grpc_guard_remote_result(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, ngx_uint_t *version,
    ngx_msec_t *fetched, ngx_pool_t *pool, ngx_str_t *text)
{
    ngx_int_t                           rc;
    ngx_http_grpc_guard_remote_node_t  *node;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    /*
     * the thing's last good result, copied into "pool" when it is not
     * "*version" any more; NGX_DECLINED: no result, or the same one
     */

    zone = ngx_http_grpc_guard_remote_zone(r);

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_grpc_guard_remote_lookup(zone, rm, NULL, 0);

    if (node == NULL || node->version == 0) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_DECLINED;
    }

    *fetched = node->fetched;

    if (node->version == *version) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_DECLINED;
    }

    rc = NGX_OK;

    text->data = ngx_pnalloc(pool, node->len);

    if (text->data == NULL) {
        rc = NGX_ERROR;

    } else {
        ngx_memcpy(text->data, node->data, node->len);
        text->len = node->len;
        *version = node->version;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_grpc_guard_remote_fetch(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, ngx_uint_t version, ngx_msec_t refresh,
    ngx_msec_t interval, ngx_uint_t join)
{
    ngx_msec_t                          now;
    ngx_uint_t                          owner, ended;
    ngx_http_grpc_guard_ctx_t          *ctx;
    ngx_http_grpc_guard_remote_node_t  *node;
    ngx_http_grpc_guard_remote_wait_t  *w;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    /*
     * NGX_AGAIN: the call waits, for a fetch of its own or for the one
     * under way (with "join"); NGX_OK: a result newer than "version" is
     * there already; NGX_DECLINED: nothing to wait for: a fetch under
     * way (without "join"), a recent failure, a result younger than
     * "refresh", a fetch of this kind sooner than "interval" after the
     * last one, or the call waited once already
     */

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL || (ctx->remote && ctx->remote->done)) {
        return NGX_DECLINED;
    }

    zone = ngx_http_grpc_guard_remote_zone(r);
    now = ngx_current_msec;
    owner = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_grpc_guard_remote_lookup(zone, rm, NULL, 1);

    if (node == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "grpc guard: no room in the grpc_guard_remote_cache "
                      "zone for \"%V\"", &rm->uri);
        return NGX_DECLINED;
    }

    if (ngx_http_grpc_guard_remote_busy(node)) {

        if (!join) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_DECLINED;
        }

    } else if (node->version != version) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_OK;

    } else if ((node->has_failed
                && ngx_http_grpc_guard_remote_since(node->failed, now)
                   < NGX_HTTP_GRPC_GUARD_REMOTE_BACKOFF)
               || (refresh && node->version
                   && ngx_http_grpc_guard_remote_since(node->fetched, now)
                      < (ngx_msec_int_t) refresh)
               || (interval && node->has_refetched
                   && ngx_http_grpc_guard_remote_since(node->refetched, now)
                      < (ngx_msec_int_t) interval))
    {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_DECLINED;

    } else {

        owner = ngx_http_grpc_guard_remote_lock(zone, rm, node);

        if (interval) {
            node->refetched = now;
            node->has_refetched = 1;
        }
    }

    ended = node->ended;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    w = ngx_http_grpc_guard_remote_wait(r, ctx, rm, NULL, owner, ended);

    if (w == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_grpc_guard_remote_park(r, w);
}


ngx_int_t
ngx_http_grpc_guard_remote_keyed(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, u_char *key, ngx_str_t *body,
    ngx_pool_t *pool, ngx_str_t *result, ngx_msec_t *expires)
{
    ngx_int_t                           rc;
    ngx_msec_t                          now;
    ngx_uint_t                          owner, ended, version;
    ngx_http_grpc_guard_ctx_t          *ctx;
    ngx_http_grpc_guard_remote_node_t  *node;
    ngx_http_grpc_guard_remote_wait_t  *w;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    /* what the outcomes mean: the comment at the top of this file */

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (expires) {
        *expires = ngx_current_msec;
    }

    zone = ngx_http_grpc_guard_remote_zone(r);
    w = ctx->remote;

    if (w && w->done && w->keyed && w->remote == rm
        && ngx_memcmp(w->key, key, NGX_HTTP_GRPC_GUARD_SHA256_LEN) == 0)
    {
        /* the call has waited for this key: the outcome, counted then */

        if (w->answered) {
            *result = w->result;
            return NGX_OK;
        }

        ngx_shmtx_lock(&zone->shpool->mutex);

        node = ngx_http_grpc_guard_remote_lookup(zone, rm, key, 0);

        rc = ngx_http_grpc_guard_remote_copy(node, &w->version, pool,
                                             result);

        ngx_shmtx_unlock(&zone->shpool->mutex);

        return (rc == NGX_DONE) ? NGX_DECLINED : rc;
    }

    now = ngx_current_msec;
    owner = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_grpc_guard_remote_lookup(zone, rm, key, 1);

    /* a result that has not expired */

    rc = ngx_http_grpc_guard_remote_copy(node, NULL, pool, result);

    if (rc != NGX_DONE) {
        if (rc == NGX_OK && expires) {
            *expires = node->expires;
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_http_grpc_guard_metrics_remote(rm->kind,
                                         NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_HIT);
        return rc;
    }

    if (node == NULL
        || (!ngx_http_grpc_guard_remote_busy(node)
            && node->has_failed
            && ngx_http_grpc_guard_remote_since(node->failed, now)
               < NGX_HTTP_GRPC_GUARD_REMOTE_BACKOFF))
    {
        /* no room, or the last fetch of this key failed a moment ago */

        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_http_grpc_guard_metrics_remote(rm->kind,
                                 NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_UNAVAILABLE);
        return NGX_DECLINED;
    }

    if (!ngx_http_grpc_guard_remote_busy(node)) {
        owner = ngx_http_grpc_guard_remote_lock(zone, rm, node);
    }

    ended = node->ended;
    version = node->version;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    w = ngx_http_grpc_guard_remote_wait(r, ctx, rm, key, owner, ended);

    if (w == NULL) {
        return NGX_ERROR;
    }

    w->version = version;

    if (owner && body->len) {
        w->send.data = ngx_pstrdup(r->pool, body);
        if (w->send.data == NULL) {
            ngx_http_grpc_guard_remote_release(zone, rm, key, owner);
            return NGX_ERROR;
        }

        w->send.len = body->len;
    }

    return ngx_http_grpc_guard_remote_park(r, w);
}


ngx_int_t
ngx_http_grpc_guard_remote_body(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_str_t *value)
{
    ngx_http_grpc_guard_remote_wait_t  *w;

    /*
     * a variable's value inside the guard's own subrequest of a keyed
     * thing of "kind", and only there: NGX_DECLINED anywhere else
     */

    if (r == r->main
        || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_grpc_guard_remote_done)
    {
        return NGX_DECLINED;
    }

    w = r->post_subrequest->data;

    if (!w->keyed || w->remote->kind != kind) {
        return NGX_DECLINED;
    }

    *value = w->send;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_remote_copy(ngx_http_grpc_guard_remote_node_t *node,
    ngx_uint_t *version, ngx_pool_t *pool, ngx_str_t *result)
{
    /*
     * the zone is locked; a keyed result copied into "pool": one that has
     * not expired, or, with "version", any result stored since the node
     * had that version (the fetch the call waited for, even when it is
     * not kept); NGX_DONE: none
     */

    if (node == NULL || node->data == NULL
        || (!(version && node->version != *version)
            && (ngx_msec_int_t) (node->expires - ngx_current_msec) <= 0))
    {
        return NGX_DONE;
    }

    result->data = ngx_pnalloc(pool, ngx_max(node->len, 1));
    if (result->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(result->data, node->data, node->len);
    result->len = node->len;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_grpc_guard_remote_lock(ngx_http_grpc_guard_remote_zone_t *zone,
    ngx_http_grpc_guard_remote_t *rm, ngx_http_grpc_guard_remote_node_t *node)
{
    ngx_uint_t  owner;

    /*
     * the zone is locked; this call fetches, and the lock on the node
     * ends by itself at the deadline
     */

    owner = ++zone->sh->fetches;

    if (owner == 0) {
        owner = ++zone->sh->fetches;
    }

    node->owner = owner;
    node->deadline = ngx_current_msec + rm->timeout;

    return owner;
}


static ngx_http_grpc_guard_remote_wait_t *
ngx_http_grpc_guard_remote_wait(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_remote_t *rm,
    u_char *key, ngx_uint_t owner, ngx_uint_t ended)
{
    ngx_pool_cleanup_t                 *cln;
    ngx_http_grpc_guard_remote_wait_t  *w;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    /*
     * the call's wait: made once, then used for each fetch it waits for;
     * without memory, the call's lock goes
     */

    zone = ngx_http_grpc_guard_remote_zone(r);
    w = ctx->remote;

    if (w == NULL) {
        cln = ngx_pool_cleanup_add(r->pool,
                                   sizeof(ngx_http_grpc_guard_remote_wait_t));
        if (cln == NULL) {
            ngx_http_grpc_guard_remote_release(zone, rm, key, owner);
            return NULL;
        }

        w = cln->data;
        ngx_memzero(w, sizeof(ngx_http_grpc_guard_remote_wait_t));

        w->event.handler = ngx_http_grpc_guard_remote_handler;
        w->event.data = w;
        w->event.log = r->connection->log;

        cln->handler = ngx_http_grpc_guard_remote_cleanup;

        ctx->remote = w;
    }

    w->request = r;
    w->remote = rm;
    w->zone = zone;
    w->ended = ended;
    w->owner = owner;
    w->body = NULL;
    w->done = 0;
    w->too_big = 0;
    w->answered = 0;
    w->keyed = (key != NULL);
    ngx_str_null(&w->send);
    ngx_str_null(&w->result);

    if (key) {
        ngx_memcpy(w->key, key, NGX_HTTP_GRPC_GUARD_SHA256_LEN);
    }

    return w;
}


static ngx_int_t
ngx_http_grpc_guard_remote_park(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_wait_t *w)
{
    ngx_http_grpc_guard_remote_t  *rm;

    /* the call waits for its own subrequest, or for another's fetch */

    rm = w->remote;

    w->deadline = ngx_current_msec + rm->timeout;

    ngx_queue_insert_tail(&w->zone->waiters, &w->queue);
    w->queued = 1;

    if (w->owner) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "grpc guard remote: fetching \"%V\"", &rm->uri);

        if (ngx_http_grpc_guard_remote_subrequest(r, w) != NGX_OK) {
            ngx_queue_remove(&w->queue);
            w->queued = 0;

            ngx_http_grpc_guard_remote_store(r->connection->log, w, NULL,
                                             "cannot start the subrequest",
                                             0, 0);
            return NGX_ERROR;
        }

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "grpc guard remote: waiting for \"%V\"", &rm->uri);

        ngx_add_timer(&w->event, NGX_HTTP_GRPC_GUARD_REMOTE_POLL);
    }

    ngx_http_grpc_guard_metrics_remote(rm->kind,
                                       NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_WAIT);

    return NGX_AGAIN;
}


static void
ngx_http_grpc_guard_remote_release(ngx_http_grpc_guard_remote_zone_t *zone,
    ngx_http_grpc_guard_remote_t *rm, u_char *key, ngx_uint_t owner)
{
    ngx_http_grpc_guard_remote_node_t  *node;

    /* a fetch that will not be made, or whose call went away */

    if (owner == 0) {
        return;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_grpc_guard_remote_lookup(zone, rm, key, 0);

    if (node && node->owner == owner) {
        node->owner = 0;
        node->ended++;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


void
ngx_http_grpc_guard_remote_used(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, ngx_uint_t found)
{
    ngx_http_grpc_guard_ctx_t  *ctx;

    /*
     * the call goes on with what the worker has, a result ("found") or
     * none; a call that has waited for a fetch was counted then
     */

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx && ctx->remote && ctx->remote->done) {
        return;
    }

    ngx_http_grpc_guard_metrics_remote(rm->kind,
                        found ? NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_HIT
                              : NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_UNAVAILABLE);
}


ngx_int_t
ngx_http_grpc_guard_remote_age(ngx_http_request_t *r, ngx_uint_t i,
    ngx_uint_t *kind, ngx_str_t **uri, ngx_msec_t *age)
{
    ngx_msec_t                          fetched;
    ngx_uint_t                          found;
    ngx_msec_int_t                      d;
    ngx_http_grpc_guard_remote_t      **rms;
    ngx_http_grpc_guard_main_conf_t    *gmcf;
    ngx_http_grpc_guard_remote_node_t  *node;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    /*
     * for the metrics page: the i-th thing the configuration fetches and
     * the age of its last good result; NGX_DECLINED: no result (none yet,
     * or evicted), NGX_DONE: no i-th thing
     */

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    if (gmcf->remotes == NULL || gmcf->remote_zone == NULL
        || i >= gmcf->remotes->nelts)
    {
        return NGX_DONE;
    }

    rms = gmcf->remotes->elts;

    *kind = rms[i]->kind;
    *uri = &rms[i]->uri;

    if (rms[i]->keyed) {

        /* a result per key: no age of the thing */

        return NGX_DECLINED;
    }

    zone = gmcf->remote_zone->data;
    fetched = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_grpc_guard_remote_lookup(zone, rms[i], NULL, 0);
    found = (node && node->version);

    if (found) {
        fetched = node->fetched;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (!found) {
        return NGX_DECLINED;
    }

    /* another worker's clock may be a little ahead */

    d = ngx_http_grpc_guard_remote_since(fetched, ngx_current_msec);
    *age = (d > 0) ? (ngx_msec_t) d : 0;

    return NGX_OK;
}


static ngx_http_grpc_guard_remote_zone_t *
ngx_http_grpc_guard_remote_zone(ngx_http_request_t *r)
{
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    return gmcf->remote_zone->data;
}


static ngx_http_grpc_guard_remote_node_t *
ngx_http_grpc_guard_remote_lookup(ngx_http_grpc_guard_remote_zone_t *zone,
    ngx_http_grpc_guard_remote_t *rm, u_char *key, ngx_uint_t create)
{
    size_t                              n, len;
    uint32_t                            hash;
    ngx_rbtree_node_t                  *node, *sentinel;
    ngx_http_grpc_guard_remote_node_t  *rn;
    u_char                              name[NGX_HTTP_GRPC_GUARD_REMOTE_NAME];

    /*
     * the zone is locked; a keyed thing's name is its URI and then the
     * key, and the key's first bytes spread its nodes over the tree
     */

    hash = rm->hash;
    len = rm->uri.len;

    ngx_memcpy(name, rm->uri.data, len);

    if (key) {
        hash ^= (uint32_t) key[0] << 24 | (uint32_t) key[1] << 16
                | (uint32_t) key[2] << 8 | key[3];

        ngx_memcpy(name + len, key, NGX_HTTP_GRPC_GUARD_SHA256_LEN);
        len += NGX_HTTP_GRPC_GUARD_SHA256_LEN;
    }

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        rn = (ngx_http_grpc_guard_remote_node_t *) node;

        if (rn->name_len == len && ngx_memcmp(rn->name, name, len) == 0) {
            ngx_queue_remove(&rn->queue);
            ngx_queue_insert_head(&zone->sh->queue, &rn->queue);
            return rn;
        }

        /* the same hash: the nodes are in either subtree */

        node = (ngx_memn2cmp(name, rn->name, len, rn->name_len) < 0)
               ? node->left : node->right;
    }

    if (!create) {
        return NULL;
    }

    n = offsetof(ngx_http_grpc_guard_remote_node_t, name) + len;

    rn = ngx_slab_calloc_locked(zone->shpool, n);

    if (rn == NULL) {
        ngx_http_grpc_guard_remote_evict(zone, NULL);

        rn = ngx_slab_calloc_locked(zone->shpool, n);
        if (rn == NULL) {
            return NULL;
        }
    }

    rn->node.key = hash;
    rn->name_len = (u_short) len;
    ngx_memcpy(rn->name, name, len);

    ngx_rbtree_insert(&zone->sh->rbtree, &rn->node);
    ngx_queue_insert_head(&zone->sh->queue, &rn->queue);

    return rn;
}


static void
ngx_http_grpc_guard_remote_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                  **p;
    ngx_http_grpc_guard_remote_node_t   *rn, *rnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            rn = (ngx_http_grpc_guard_remote_node_t *) node;
            rnt = (ngx_http_grpc_guard_remote_node_t *) temp;

            p = (ngx_memn2cmp(rn->name, rnt->name, rn->name_len,
                              rnt->name_len)
                 < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_http_grpc_guard_remote_evict(ngx_http_grpc_guard_remote_zone_t *zone,
    ngx_http_grpc_guard_remote_node_t *keep)
{
    ngx_uint_t                          n;
    ngx_queue_t                        *q, *prev;
    ngx_http_grpc_guard_remote_node_t  *rn;

    /*
     * from the least recently used end, a few things that no fetch is
     * under way for, and not the one that needs the room
     */

    n = 0;

    for (q = ngx_queue_last(&zone->sh->queue);
         q != ngx_queue_sentinel(&zone->sh->queue)
         && n < NGX_HTTP_GRPC_GUARD_REMOTE_EVICT;
         q = prev)
    {
        prev = ngx_queue_prev(q);

        rn = ngx_queue_data(q, ngx_http_grpc_guard_remote_node_t, queue);

        if (rn == keep || ngx_http_grpc_guard_remote_busy(rn)) {
            continue;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&zone->sh->rbtree, &rn->node);

        if (rn->data) {
            ngx_slab_free_locked(zone->shpool, rn->data);
        }

        ngx_slab_free_locked(zone->shpool, rn);

        n++;
    }
}


static ngx_uint_t
ngx_http_grpc_guard_remote_busy(ngx_http_grpc_guard_remote_node_t *node)
{
    /* a worker that died with the lock loses it at the deadline */

    return node->owner
           && (ngx_msec_int_t) (node->deadline - ngx_current_msec) > 0;
}


static ngx_int_t
ngx_http_grpc_guard_remote_subrequest(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_wait_t *w)
{
    ngx_list_t                  *headers;
    ngx_http_request_t          *sr;
    ngx_http_request_body_t     *body;
    ngx_http_post_subrequest_t  *ps;

    /*
     * nothing of the client's request goes to the other service: the
     * subrequest gets a header list of its own, empty (no authorization,
     * API key or cookie), and an empty body; the method is GET.  All is
     * allocated first: nothing can fail once the subrequest exists
     */

    headers = ngx_list_create(r->pool, 1, sizeof(ngx_table_elt_t));
    if (headers == NULL) {
        return NGX_ERROR;
    }

    body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (body == NULL) {
        return NGX_ERROR;
    }

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_grpc_guard_remote_done;
    ps->data = w;

    if (ngx_http_subrequest(r, &w->remote->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    sr->headers_in.headers = *headers;
    sr->headers_in.content_length_n = -1;
    sr->headers_in.keep_alive_n = -1;

    sr->request_body = body;

    sr->method = NGX_HTTP_GET;
    sr->method_name = ngx_http_core_get_method;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_remote_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_grpc_guard_remote_wait_t *w = data;

    char                                *failure;
    ngx_str_t                            body;
    ngx_uint_t                           status;
    ngx_http_grpc_guard_remote_t        *rm;
    ngx_http_grpc_guard_remote_reply_t   reply;

    if (w->owner == 0) {

        /* finalized once more, or given up already */

        return rc;
    }

    rm = w->remote;
    status = sr->headers_out.status;

    ngx_str_null(&body);

    if (w->body) {
        body.data = w->body->pos;
        body.len = w->body->last - w->body->pos;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "grpc guard remote: \"%V\" done: %i, status %ui",
                   &rm->uri, rc, status);

    failure = NULL;

    reply.log = sr->connection->log;
    reply.pool = sr->pool;
    reply.status = status;
    reply.body = body;
    reply.result = body;
    reply.valid = 0;

    if (w->too_big) {
        failure = "the reply is larger than max_size";

    } else if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        failure = "the subrequest failed";

    } else if (w->keyed) {

        /* the status is the check's to judge (2xx, or 200 only) */

        if (rm->keyed(&reply, rm->data) != NGX_OK) {
            failure = "the reply is not an answer";
        }

    } else if (status != NGX_HTTP_OK) {
        failure = "the reply's status is not 200";

    } else if (rm->check(sr->connection->log, &body, rm->data) != NGX_OK) {
        failure = "the reply is not usable";
    }

    ngx_http_grpc_guard_remote_store(sr->connection->log, w,
                                     failure ? NULL : &reply.result, failure,
                                     status, reply.valid);

    return rc;
}


static ngx_int_t
ngx_http_grpc_guard_remote_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                              n, room;
    ngx_chain_t                        *cl;
    ngx_http_grpc_guard_remote_wait_t  *w;

    /*
     * the reply of the guard's own subrequest is taken here, up to
     * max_size, and goes no further: nginx's in-memory buffer
     * (subrequest_output_buffer_size) is not used, and a larger reply
     * is the fetch's failure, never an error of the client's request
     */

    if (r == r->main
        || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_grpc_guard_remote_done)
    {
        return ngx_http_next_body_filter(r, in);
    }

    w = r->post_subrequest->data;

    for (cl = in; cl; cl = cl->next) {

        n = ngx_buf_size(cl->buf);

        if (n && !w->too_big && ngx_buf_in_memory(cl->buf)) {

            if (w->body == NULL) {
                w->body = ngx_create_temp_buf(r->pool,
                                              w->remote->max_size);
                if (w->body == NULL) {
                    return NGX_ERROR;
                }
            }

            room = w->body->end - w->body->last;

            if (n > room) {
                w->too_big = 1;

            } else {
                w->body->last = ngx_cpymem(w->body->last, cl->buf->pos, n);
            }

        } else if (n) {

            /* in a file: not for a reply that is read in memory */

            w->too_big = 1;
        }

        cl->buf->pos = cl->buf->last;

        if (cl->buf->in_file) {
            cl->buf->file_pos = cl->buf->file_last;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_remote_init_filter(ngx_conf_t *cf)
{
    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_grpc_guard_remote_body_filter;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_remote_store(ngx_log_t *log,
    ngx_http_grpc_guard_remote_wait_t *w, ngx_str_t *body, char *failure,
    ngx_uint_t status, ngx_msec_t valid)
{
    u_char                             *p, *key;
    ngx_msec_t                          now;
    ngx_http_grpc_guard_remote_t       *rm;
    ngx_http_grpc_guard_remote_node_t  *node;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    /*
     * the end of the call's fetch: a good result replaces the last one,
     * a failure never does; the lock is released when it is still the
     * call's, and every call of this worker waiting for the thing goes on;
     * a keyed answer is the call's own even when the zone cannot keep it
     * (it lives in the request pool, as the subrequest's does)
     */

    rm = w->remote;
    zone = w->zone;
    now = ngx_current_msec;
    key = w->keyed ? w->key : NULL;

    if (key && body) {
        w->result = *body;
        w->answered = 1;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = ngx_http_grpc_guard_remote_lookup(zone, rm, key, 1);

    if (node && body) {
        p = ngx_slab_alloc_locked(zone->shpool, ngx_max(body->len, 1));

        if (p == NULL) {
            ngx_http_grpc_guard_remote_evict(zone, node);
            p = ngx_slab_alloc_locked(zone->shpool, ngx_max(body->len, 1));
        }

        if (p == NULL) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "grpc guard: no room in the grpc_guard_remote_cache "
                          "zone for a result of \"%V\"", &rm->uri);

            if (key == NULL) {
                failure = "no room in the grpc_guard_remote_cache zone";
            }

        } else {
            if (node->data) {
                ngx_slab_free_locked(zone->shpool, node->data);
            }

            ngx_memcpy(p, body->data, body->len);

            node->data = p;
            node->len = body->len;
            node->version = ++zone->sh->version;
            node->fetched = now;
            node->expires = now + valid;
            node->has_failed = 0;
        }
    }

    if (node) {
        if (failure) {
            node->failed = now;
            node->has_failed = 1;
        }

        if (node->owner == w->owner) {
            node->owner = 0;
        }

        node->ended++;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    w->owner = 0;

    ngx_http_grpc_guard_metrics_remote(rm->kind,
                          failure ? NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_FAILED
                                  : NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_OK);

    if (failure && (zone->logged == 0
                    || ngx_http_grpc_guard_remote_since(zone->logged, now)
                       >= 1000))
    {

        /* at most once a second in each worker */

        zone->logged = now;

        if (status) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "grpc guard: fetch of \"%V\" failed: %s "
                          "(status %ui)%s",
                          &rm->uri, failure, status,
                          key ? "" : "; the last good result is kept");

        } else {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "grpc guard: fetch of \"%V\" failed: %s%s",
                          &rm->uri, failure,
                          key ? "" : "; the last good result is kept");
        }

    } else if (!failure && key) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "grpc guard remote: fetched a result of \"%V\"",
                       &rm->uri);

    } else if (!failure) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "grpc guard: fetched \"%V\"", &rm->uri);
    }

    ngx_http_grpc_guard_remote_wake_all(zone, rm, key);
}


static void
ngx_http_grpc_guard_remote_wake_all(ngx_http_grpc_guard_remote_zone_t *zone,
    ngx_http_grpc_guard_remote_t *rm, u_char *key)
{
    ngx_queue_t                        *q, *next;
    ngx_http_grpc_guard_remote_wait_t  *w;

    for (q = ngx_queue_head(&zone->waiters);
         q != ngx_queue_sentinel(&zone->waiters);
         q = next)
    {
        next = ngx_queue_next(q);

        w = ngx_queue_data(q, ngx_http_grpc_guard_remote_wait_t, queue);

        if (w->owner == 0
            && w->remote->uri.len == rm->uri.len
            && ngx_memcmp(w->remote->uri.data, rm->uri.data, rm->uri.len)
               == 0
            && w->keyed == (key != NULL)
            && (key == NULL
                || ngx_memcmp(w->key, key, NGX_HTTP_GRPC_GUARD_SHA256_LEN)
                   == 0))
        {
            ngx_http_grpc_guard_remote_wake(w);
        }
    }
}


static void
ngx_http_grpc_guard_remote_wake(ngx_http_grpc_guard_remote_wait_t *w)
{
    /* resumed from the event loop, not from inside another request */

    if (w->event.timer_set) {
        ngx_del_timer(&w->event);
    }

    if (!w->event.posted) {
        ngx_post_event(&w->event, &ngx_posted_events);
    }

    w->deadline = ngx_current_msec;
}


static void
ngx_http_grpc_guard_remote_handler(ngx_event_t *ev)
{
    ngx_http_grpc_guard_remote_wait_t *w = ev->data;

    ngx_uint_t                          wake;
    ngx_http_grpc_guard_remote_node_t  *node;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    if (w->owner) {

        /* the call's own subrequest ends the wait */

        return;
    }

    zone = w->zone;

    if ((ngx_msec_int_t) (w->deadline - ngx_current_msec) > 0) {

        /* another worker's fetch: has it ended? */

        ngx_shmtx_lock(&zone->shpool->mutex);

        node = ngx_http_grpc_guard_remote_lookup(zone, w->remote,
                                               w->keyed ? w->key : NULL, 0);

        wake = (node == NULL || node->ended != w->ended
                || !ngx_http_grpc_guard_remote_busy(node));

        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (!wake) {
            ngx_add_timer(ev, NGX_HTTP_GRPC_GUARD_REMOTE_POLL);
            return;
        }
    }

    if (w->queued) {
        ngx_queue_remove(&w->queue);
        w->queued = 0;
    }

    w->done = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "grpc guard remote: done waiting for \"%V\"",
                   &w->remote->uri);

    ngx_http_grpc_guard_resume(w->request, NGX_OK);
}


static void
ngx_http_grpc_guard_remote_cleanup(void *data)
{
    ngx_http_grpc_guard_remote_wait_t *w = data;

    u_char                             *key;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    /* the call went away while it waited */

    if (w->event.timer_set) {
        ngx_del_timer(&w->event);
    }

    if (w->event.posted) {
        ngx_delete_posted_event(&w->event);
    }

    if (w->queued) {
        ngx_queue_remove(&w->queue);
        w->queued = 0;
    }

    if (w->owner == 0) {
        return;
    }

    /* with its fetch: the lock goes, and another call may fetch */

    zone = w->zone;
    key = w->keyed ? w->key : NULL;

    ngx_http_grpc_guard_remote_release(zone, w->remote, key, w->owner);

    w->owner = 0;

    /* a fetch without a reply: failed, as every fetch is counted once */

    ngx_http_grpc_guard_metrics_remote(w->remote->kind,
                                     NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_FAILED);

    ngx_http_grpc_guard_remote_wake_all(zone, w->remote, key);
}


ngx_int_t
ngx_http_grpc_guard_remote_init_main(ngx_conf_t *cf,
    ngx_http_grpc_guard_main_conf_t *gmcf)
{
    ngx_shm_zone_t                     *shm_zone;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    if (gmcf->remote_cache_size == NGX_CONF_UNSET_SIZE) {
        gmcf->remote_cache_size = NGX_HTTP_GRPC_GUARD_REMOTE_SIZE;
    }

    if (!gmcf->remote_used) {
        return NGX_OK;
    }

    if (gmcf->remote_cache_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_remote_cache\" is too small");
        return NGX_ERROR;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_remote_zone_t));
    if (zone == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&zone->waiters);

    shm_zone = ngx_shared_memory_add(cf,
                                     &ngx_http_grpc_guard_remote_zone_name,
                                     gmcf->remote_cache_size,
                                     &ngx_http_grpc_guard_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_grpc_guard_remote_init_zone;
    shm_zone->data = zone;

    gmcf->remote_zone = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_remote_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_grpc_guard_remote_zone_t  *ozone = data;

    size_t                              len;
    ngx_http_grpc_guard_remote_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {

        /* a reload: the results and the fetches under way are kept */

        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;

        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_calloc(zone->shpool,
                               sizeof(ngx_http_grpc_guard_remote_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_grpc_guard_remote_insert_value);

    ngx_queue_init(&zone->sh->queue);

    len = sizeof(" in grpc_guard_remote_cache zone \"\"")
          + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx,
                " in grpc_guard_remote_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


char *
ngx_http_grpc_guard_remote_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_main_conf_t *gmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (gmcf->remote_cache_size != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" (at least %uzk)",
                           &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    gmcf->remote_cache_size = size;

    return NGX_CONF_OK;
}
