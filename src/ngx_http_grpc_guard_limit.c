
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The rate limiter's policy: the grpc_guard_limit keys and windows, the
 * decision of a sliding-window check made in Redis, the blocked-until
 * cache, the local windows and the failure modes.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"


/*
 * Sliding-window limits counted in Redis: for each limit and key value,
 * one hash whose fields count the calls of fixed windows (numbered on
 * the Redis clock); a call is estimated as the previous window's count
 * weighted by how much of it still overlaps the sliding window, plus
 * the current window's count.  One script checks every limit of a call
 * and counts the call against all of them only when all of them pass
 * (ngx_http_grpc_guard_limit_script.c); the Redis client sends the
 * checks of the calls waiting on a connection in one script call.
 *
 * A shared zone remembers, per key, until when Redis said it is over
 * its limit (later calls are refused without asking Redis), and holds
 * the per-instance windows of "grpc_guard_limit_failure local".
 */


#define NGX_HTTP_GRPC_GUARD_LIMIT_PER_NONE      0
#define NGX_HTTP_GRPC_GUARD_LIMIT_PER_METHOD    1
#define NGX_HTTP_GRPC_GUARD_LIMIT_PER_SERVICE   2
#define NGX_HTTP_GRPC_GUARD_LIMIT_PER_LOCATION  3

/* at most this many limits in one location: one script call checks them */
#define NGX_HTTP_GRPC_GUARD_LIMIT_MAX           16

/*
 * longer key values (escaped, with their method, service or location)
 * are replaced by "#" and their SHA-1
 */
#define NGX_HTTP_GRPC_GUARD_LIMIT_MAX_VALUE     256

#define NGX_HTTP_GRPC_GUARD_LIMIT_IDLE          0
#define NGX_HTTP_GRPC_GUARD_LIMIT_WAITING       1
#define NGX_HTTP_GRPC_GUARD_LIMIT_DONE          2

#define NGX_HTTP_GRPC_GUARD_LIMIT_ALLOWED       0
#define NGX_HTTP_GRPC_GUARD_LIMIT_REFUSED       1
#define NGX_HTTP_GRPC_GUARD_LIMIT_FAILED        2

#define NGX_HTTP_GRPC_GUARD_LIMIT_KEY_PREFIX    "grpc_guard:{limit}:"


typedef struct {
    ngx_str_t                         name;
    ngx_str_t                         sf_name;  /* quoted, for headers */
    ngx_http_complex_value_t          key;
    ngx_uint_t                        rate;     /* calls per window */
    ngx_msec_t                        window;
    ngx_uint_t                        per;
    ngx_str_t                         prefix;   /* "NAME:WINDOW:" */
    ngx_str_t                         rate_arg;
    ngx_str_t                         window_arg;
    ngx_uint_t                        metrics;  /* the limit's number */
    unsigned                          identity:1;
} ngx_http_grpc_guard_limit_t;


struct ngx_http_grpc_guard_limit_ctx_s {
    ngx_http_request_t               *request;
    ngx_http_grpc_guard_redis_cmd_t  *cmd;
    ngx_http_event_handler_pt         read_event_handler;   /* parked */

    ngx_uint_t                        stage;
    ngx_uint_t                        state;

    /* the limits of this stage whose key is not empty */
    ngx_uint_t                        n;
    ngx_http_grpc_guard_limit_t     **limits;
    ngx_str_t                        *keys;
    ngx_str_t                        *argv;

    /* the outcome */
    ngx_uint_t                        outcome;
    ngx_uint_t                        index;    /* the limit over it */
    ngx_msec_t                        wait;
    ngx_int_t                         remaining;

    /* Redis Cluster: the limits whose master failed; 0: all of them */
    uint32_t                          failed;

    unsigned                          cached:1;
    unsigned                          cleanup:1;
};


typedef struct {
    u_char                            color;
    u_char                            dummy;
    u_short                           len;
    ngx_queue_t                       queue;
    ngx_msec_t                        expire;   /* ngx_current_msec */
    ngx_msec_t                        blocked;  /* ngx_current_msec */
    uint64_t                          window;   /* local window number */
    ngx_uint_t                        count;
    ngx_uint_t                        prev;
    u_char                            data[1];
} ngx_http_grpc_guard_limit_node_t;


typedef struct {
    ngx_rbtree_t                      rbtree;
    ngx_rbtree_node_t                 sentinel;
    ngx_queue_t                       queue;
} ngx_http_grpc_guard_limit_shctx_t;


typedef struct {
    ngx_http_grpc_guard_limit_shctx_t  *sh;
    ngx_slab_pool_t                  *shpool;
} ngx_http_grpc_guard_limit_zone_t;


static ngx_int_t ngx_http_grpc_guard_limit_keys(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_limit_ctx_t *lctx, ngx_uint_t post);
static ngx_int_t ngx_http_grpc_guard_limit_key(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_limit_t *limit,
    ngx_str_t *value, ngx_str_t *key);
static ngx_int_t ngx_http_grpc_guard_limit_argv(ngx_http_request_t *r,
    ngx_http_grpc_guard_limit_ctx_t *lctx);
static void ngx_http_grpc_guard_limit_reply(void *data, void *reply);
static void ngx_http_grpc_guard_limit_parse(
    ngx_http_grpc_guard_limit_ctx_t *lctx, redisReply *reply);
static void ngx_http_grpc_guard_limit_parked(ngx_http_request_t *r);
static void ngx_http_grpc_guard_limit_cleanup(void *data);
static ngx_int_t ngx_http_grpc_guard_limit_decide(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_limit_ctx_t *lctx);
static void ngx_http_grpc_guard_limit_count(
    ngx_http_grpc_guard_limit_ctx_t *lctx);
static ngx_int_t ngx_http_grpc_guard_limit_refused(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_limit_ctx_t *lctx);
static ngx_int_t ngx_http_grpc_guard_limit_headers(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_limit_t *limit,
    ngx_msec_t wait);
static ngx_int_t ngx_http_grpc_guard_limit_push_header(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, char *key, u_char *value, u_char *last);
static void ngx_http_grpc_guard_limit_failed(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf);

static ngx_http_grpc_guard_limit_zone_t *ngx_http_grpc_guard_limit_get_zone(
    ngx_http_request_t *r);
static void ngx_http_grpc_guard_limit_blocked(
    ngx_http_grpc_guard_limit_zone_t *zone,
    ngx_http_grpc_guard_limit_ctx_t *lctx);
static void ngx_http_grpc_guard_limit_block(
    ngx_http_grpc_guard_limit_zone_t *zone, ngx_str_t *key, ngx_msec_t wait);
static void ngx_http_grpc_guard_limit_local(
    ngx_http_grpc_guard_limit_zone_t *zone,
    ngx_http_grpc_guard_limit_ctx_t *lctx);
static ngx_msec_t ngx_http_grpc_guard_limit_wait(double rate, double window,
    double elapsed, double cur, double prev);
static ngx_http_grpc_guard_limit_node_t *ngx_http_grpc_guard_limit_lookup(
    ngx_http_grpc_guard_limit_zone_t *zone, ngx_str_t *key,
    ngx_uint_t create);
static void ngx_http_grpc_guard_limit_expire(
    ngx_http_grpc_guard_limit_zone_t *zone, ngx_uint_t force);
static void ngx_http_grpc_guard_limit_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_grpc_guard_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

static ngx_uint_t ngx_http_grpc_guard_limit_needs_identity(ngx_str_t *key);
static ngx_int_t ngx_http_grpc_guard_limit_parse_rate(ngx_str_t *value,
    ngx_http_grpc_guard_limit_t *limit);
static ngx_int_t ngx_http_grpc_guard_limit_quote(ngx_pool_t *pool,
    ngx_str_t *name, ngx_str_t *quoted);


static ngx_str_t  ngx_http_grpc_guard_limit_zone_name =
    ngx_string("grpc_guard_limit");


ngx_int_t
ngx_http_grpc_guard_limit(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_uint_t                         post, n;
    ngx_http_cleanup_t                *cln;
    ngx_http_grpc_guard_limit_ctx_t   *lctx;
    ngx_http_grpc_guard_main_conf_t   *gmcf;
    ngx_http_grpc_guard_limit_conf_t  *lcf;
    ngx_http_grpc_guard_limit_zone_t  *zone;

    lcf = &glcf->limit;
    post = (ctx->call.stage == NGX_HTTP_GRPC_GUARD_STAGE_LIMIT_POST);

    if (ctx->call.public
        || lcf->limits == NULL
        || (post ? !lcf->post : !lcf->pre))
    {
        return NGX_DECLINED;
    }

    lctx = ctx->call.limit;

    if (lctx && lctx->stage == ctx->call.stage) {

        /* entered again after the reply, or the timeout */

        if (lctx->state == NGX_HTTP_GRPC_GUARD_LIMIT_DONE) {
            return ngx_http_grpc_guard_limit_decide(r, glcf, ctx, lctx);
        }

        if (lctx->state == NGX_HTTP_GRPC_GUARD_LIMIT_WAITING) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "grpc guard limit entered while waiting");
            return NGX_ERROR;
        }
    }

    if (lctx == NULL) {
        n = lcf->limits->nelts;

        lctx = ngx_pcalloc(r->pool, sizeof(ngx_http_grpc_guard_limit_ctx_t)
                           + n * sizeof(ngx_http_grpc_guard_limit_t *)
                           + n * sizeof(ngx_str_t));
        if (lctx == NULL) {
            return NGX_ERROR;
        }

        lctx->request = r;
        lctx->limits = (ngx_http_grpc_guard_limit_t **) &lctx[1];
        lctx->keys = (ngx_str_t *) &lctx->limits[n];

        ctx->call.limit = lctx;
    }

    lctx->stage = ctx->call.stage;
    lctx->state = NGX_HTTP_GRPC_GUARD_LIMIT_IDLE;
    lctx->cached = 0;

    if (ngx_http_grpc_guard_limit_keys(r, glcf, ctx, lctx, post) != NGX_OK) {
        return NGX_ERROR;
    }

    if (lctx->n == 0) {

        /* every key is empty: such calls are not limited */

        return NGX_DECLINED;
    }

    lctx->state = NGX_HTTP_GRPC_GUARD_LIMIT_DONE;

    zone = ngx_http_grpc_guard_limit_get_zone(r);

    ngx_http_grpc_guard_limit_blocked(zone, lctx);

    if (lctx->cached) {
        return ngx_http_grpc_guard_limit_decide(r, glcf, ctx, lctx);
    }

    if (ngx_http_grpc_guard_limit_argv(r, lctx) != NGX_OK) {
        return NGX_ERROR;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    lctx->cmd = ngx_http_grpc_guard_redis_eval(gmcf->redis, 1 + 3 * lctx->n,
                                               lctx->argv,
                                               ngx_http_grpc_guard_limit_reply,
                                               lctx);

    if (lctx->cmd == NULL) {

        /* Redis is known to be down: no wait */

        lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_FAILED;

        return ngx_http_grpc_guard_limit_decide(r, glcf, ctx, lctx);
    }

    if (!lctx->cleanup) {

        /* a request that goes away while it waits drops its command */

        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            ngx_http_grpc_guard_redis_cancel(lctx->cmd);
            lctx->cmd = NULL;
            return NGX_ERROR;
        }

        cln->handler = ngx_http_grpc_guard_limit_cleanup;
        cln->data = lctx;

        lctx->cleanup = 1;
    }

    lctx->state = NGX_HTTP_GRPC_GUARD_LIMIT_WAITING;

    lctx->read_event_handler = r->read_event_handler;
    r->read_event_handler = ngx_http_grpc_guard_limit_parked;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard limit: %ui limits sent to redis", lctx->n);

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_grpc_guard_limit_keys(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_limit_ctx_t *lctx, ngx_uint_t post)
{
    ngx_str_t                     value;
    ngx_uint_t                    i;
    ngx_http_grpc_guard_limit_t  *limit;

    lctx->n = 0;

    limit = glcf->limit.limits->elts;

    for (i = 0; i < glcf->limit.limits->nelts; i++) {

        if (limit[i].identity != post) {
            continue;
        }

        if (ngx_http_complex_value(r, &limit[i].key, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        if (value.len == 0) {
            continue;
        }

        if (ngx_http_grpc_guard_limit_key(r, ctx, &limit[i], &value,
                                          &lctx->keys[lctx->n])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        lctx->limits[lctx->n++] = &limit[i];
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_limit_key(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_limit_t *limit,
    ngx_str_t *value, ngx_str_t *key)
{
    u_char                            c, *p, *suffix;
    size_t                            len;
    ngx_str_t                        *per;
    ngx_uint_t                        i, n, tag;
    ngx_sha1_t                        sha1;
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_grpc_guard_main_conf_t  *gmcf;
    u_char                            digest[20];
    static u_char                     hex[] = "0123456789abcdef";
    static ngx_str_t                  start[] = {
        ngx_string(NGX_HTTP_GRPC_GUARD_LIMIT_KEY_PREFIX),
        ngx_string("grpc_guard:{")
    };

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);
    tag = gmcf->limit_cluster;

    switch (limit->per) {

    case NGX_HTTP_GRPC_GUARD_LIMIT_PER_METHOD:
        per = &ctx->call.method;
        break;

    case NGX_HTTP_GRPC_GUARD_LIMIT_PER_SERVICE:
        per = &ctx->call.service;
        break;

    case NGX_HTTP_GRPC_GUARD_LIMIT_PER_LOCATION:
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        per = &clcf->name;
        break;

    default:
        per = NULL;
    }

    /*
     * the value is stored with "%", "#" and ":" escaped: without a per=
     * part the raw form never holds a "#", with one it holds a ":" (the
     * first one ends the value), and the hashed form, "#" and 40 hex
     * digits, has no ":", so no raw value names a hashed counter; with
     * Redis Cluster, "grpc_guard:{NAME:WINDOW:VALUE}", "{" and "}"
     * escaped too: a hash tag for each counter, spread over the masters
     */

    n = 0;

    for (p = value->data; p < value->data + value->len; p++) {
        if (*p == '%' || *p == '#' || *p == ':'
            || (tag && (*p == '{' || *p == '}')))
        {
            n++;
        }
    }

    len = value->len + 2 * n + (per ? 1 + per->len : 0);

    p = ngx_pnalloc(r->pool, start[0].len + limit->prefix.len
                             + ngx_max(len, 1 + 2 * sizeof(digest)) + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    key->data = p;
    p = ngx_cpymem(p, start[tag].data, start[tag].len);
    p = ngx_cpymem(p, limit->prefix.data, limit->prefix.len);
    suffix = p;

    for (i = 0; i < value->len; i++) {
        c = value->data[i];

        if (c == '%' || c == '#' || c == ':'
            || (tag && (c == '{' || c == '}')))
        {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
            continue;
        }

        *p++ = c;
    }

    if (per) {
        *p++ = ':';
        p = ngx_cpymem(p, per->data, per->len);
    }

    if (len > NGX_HTTP_GRPC_GUARD_LIMIT_MAX_VALUE) {

        /* long values are named by their digest: Redis keys stay small */

        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, suffix, len);
        ngx_sha1_final(digest, &sha1);

        p = suffix;
        *p++ = '#';
        p = ngx_hex_dump(p, digest, sizeof(digest));
    }

    if (tag) {
        *p++ = '}';
    }

    key->len = p - key->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_limit_argv(ngx_http_request_t *r,
    ngx_http_grpc_guard_limit_ctx_t *lctx)
{
    ngx_uint_t  i;

    lctx->argv = ngx_http_grpc_guard_limit_script_args(r->pool, lctx->n);
    if (lctx->argv == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < lctx->n; i++) {
        ngx_http_grpc_guard_limit_script_limit(lctx->argv, i, &lctx->keys[i],
                                               &lctx->limits[i]->rate_arg,
                                               &lctx->limits[i]->window_arg);
    }

    return NGX_OK;
}


static void
ngx_http_grpc_guard_limit_reply(void *data, void *reply)
{
    ngx_http_grpc_guard_limit_ctx_t *lctx = data;

    ngx_http_request_t  *r;

    r = lctx->request;

    lctx->cmd = NULL;
    lctx->state = NGX_HTTP_GRPC_GUARD_LIMIT_DONE;

    if (reply == NULL) {
        lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_FAILED;

    } else {
        ngx_http_grpc_guard_limit_parse(lctx, reply);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard limit: outcome %ui, wait %M",
                   lctx->outcome, lctx->wait);

    r->read_event_handler = lctx->read_event_handler;

    ngx_http_grpc_guard_resume(r, NGX_OK);
}


static void
ngx_http_grpc_guard_limit_parse(ngx_http_grpc_guard_limit_ctx_t *lctx,
    redisReply *reply)
{
    ngx_http_request_t               *r;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    r = lctx->request;

    lctx->failed = 0;

    if (reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->integer > 0
        && reply->element[1]->integer < ((long long) 1 << lctx->n) - 1)
    {
        /*
         * Redis Cluster: the masters of some limits allowed the call
         * (the calls remaining), the others failed (the limits in the
         * bit mask): the failure mode applies to those limits only
         */

        lctx->remaining = (ngx_int_t) reply->element[0]->integer;
        lctx->failed = (uint32_t) reply->element[1]->integer;

        goto failed;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        /* e.g. a read-only replica: said at most once a second */

        gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

        if (gmcf->limit_error_logged == 0
            || ngx_current_msec - gmcf->limit_error_logged >= 1000)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "grpc guard: redis limiter script failed: %*s",
                          (size_t) reply->len, reply->str);

            gmcf->limit_error_logged = ngx_current_msec ? ngx_current_msec
                                                        : 1;
        }

        goto failed;
    }

    switch (ngx_http_grpc_guard_limit_script_result(reply, lctx->n,
                                                    &lctx->remaining,
                                                    &lctx->index,
                                                    &lctx->wait))
    {
    case NGX_OK:
        lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_ALLOWED;
        return;

    case NGX_DECLINED:
        lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_REFUSED;
        lctx->remaining = 0;
        return;

    default:
        break;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "grpc guard: redis limiter script sent an invalid reply");

failed:

    lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_FAILED;
}


static void
ngx_http_grpc_guard_limit_parked(ngx_http_request_t *r)
{
    /*
     * the client reset the stream or closed the connection while the
     * call waits for Redis: the request ends now; its cleanup detaches
     * the command, whose reply is then dropped
     */

    if (r->connection->error) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "grpc guard limit: client gone while waiting");

        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    ngx_http_block_reading(r);
}


static void
ngx_http_grpc_guard_limit_cleanup(void *data)
{
    ngx_http_grpc_guard_limit_ctx_t *lctx = data;

    if (lctx->cmd) {
        ngx_http_grpc_guard_redis_cancel(lctx->cmd);
        lctx->cmd = NULL;
    }
}


static ngx_int_t
ngx_http_grpc_guard_limit_decide(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_limit_ctx_t *lctx)
{
    ngx_http_grpc_guard_limit_zone_t  *zone;

    ngx_http_grpc_guard_limit_count(lctx);

    if (lctx->outcome == NGX_HTTP_GRPC_GUARD_LIMIT_REFUSED && !lctx->cached) {

        /* Redis said so: this key is refused here until the wait ends */

        zone = ngx_http_grpc_guard_limit_get_zone(r);
        ngx_http_grpc_guard_limit_block(zone, &lctx->keys[lctx->index],
                                        lctx->wait);
    }

    if (lctx->outcome == NGX_HTTP_GRPC_GUARD_LIMIT_FAILED) {

        ngx_http_grpc_guard_limit_failed(r, glcf);

        switch (glcf->limit.failure) {

        case NGX_HTTP_GRPC_GUARD_LIMIT_CLOSED:
            return ngx_http_grpc_guard_refuse(r, ctx,
                                              NGX_HTTP_GRPC_GUARD_UNAVAILABLE,
                                              "redis_unavailable");

        case NGX_HTTP_GRPC_GUARD_LIMIT_LOCAL:
            zone = ngx_http_grpc_guard_limit_get_zone(r);
            ngx_http_grpc_guard_limit_local(zone, lctx);
            break;

        default: /* NGX_HTTP_GRPC_GUARD_LIMIT_OPEN */
            return NGX_DECLINED;
        }
    }

    if (lctx->outcome == NGX_HTTP_GRPC_GUARD_LIMIT_ALLOWED) {

        if (ctx->call.limit_remaining < 0
            || lctx->remaining < ctx->call.limit_remaining)
        {
            ctx->call.limit_remaining = lctx->remaining;
        }

        return NGX_DECLINED;
    }

    return ngx_http_grpc_guard_limit_refused(r, glcf, ctx, lctx);
}


static void
ngx_http_grpc_guard_limit_count(ngx_http_grpc_guard_limit_ctx_t *lctx)
{
    ngx_uint_t  i;

    /* the metrics: every limit checked, or the one over it */

    if (lctx->outcome == NGX_HTTP_GRPC_GUARD_LIMIT_REFUSED) {
        ngx_http_grpc_guard_metrics_limit(lctx->limits[lctx->index]->metrics,
                                   NGX_HTTP_GRPC_GUARD_METRIC_LIMIT_LIMITED);
        return;
    }

    for (i = 0; i < lctx->n; i++) {
        ngx_http_grpc_guard_metrics_limit(lctx->limits[i]->metrics,
                        lctx->outcome == NGX_HTTP_GRPC_GUARD_LIMIT_ALLOWED
                        ? NGX_HTTP_GRPC_GUARD_METRIC_LIMIT_PASSED
                        : NGX_HTTP_GRPC_GUARD_METRIC_LIMIT_UNAVAILABLE);
    }
}


static ngx_int_t
ngx_http_grpc_guard_limit_refused(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_limit_ctx_t *lctx)
{
    ngx_http_grpc_guard_limit_t  *limit;

    limit = lctx->limits[lctx->index];

    ctx->call.limit_name = limit->name;
    ctx->call.limit_remaining = 0;

    if (glcf->limit.dry_run) {
        ngx_str_set(&ctx->call.decision, "dry_run_deny");
        ngx_str_set(&ctx->call.reason, "rate_limited");

        ngx_log_error(glcf->log_level, r->connection->log, 0,
                      "grpc guard: dry run, limit \"%V\" would refuse "
                      "\"%V\" for %M ms",
                      &limit->name, &ctx->call.method, lctx->wait);

        return NGX_DECLINED;
    }

    if (ngx_http_grpc_guard_limit_headers(r, ctx, limit, lctx->wait)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard limit: \"%V\" exceeded, retry in %M ms",
                   &limit->name, lctx->wait);

    return ngx_http_grpc_guard_refuse(r, ctx,
                                      NGX_HTTP_GRPC_GUARD_RESOURCE_EXHAUSTED,
                                      "rate_limited");
}


static ngx_int_t
ngx_http_grpc_guard_limit_headers(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_limit_t *limit,
    ngx_msec_t wait)
{
    u_char      *p, *last;
    ngx_msec_t   seconds;

    /* Retry-After is in whole seconds, rounded up, at least 1 */

    seconds = (wait + 999) / 1000;

    if (seconds == 0) {
        seconds = 1;
    }

    ctx->call.headers = ngx_array_create(r->pool, 4, sizeof(ngx_keyval_t));
    if (ctx->call.headers == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN + 2 * limit->sf_name.len
                             + 4 * NGX_INT_T_LEN + sizeof(";q=;w=;r=0;t="));
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ctx->call.grpc) {
        last = ngx_sprintf(p, "%M", wait);

        if (ngx_http_grpc_guard_limit_push_header(r, ctx,
                                                  "grpc-retry-pushback-ms",
                                                  p, last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        p = last;
    }

    last = ngx_sprintf(p, "%M", seconds);

    if (ngx_http_grpc_guard_limit_push_header(r, ctx, "Retry-After", p, last)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = last;

    /* draft-ietf-httpapi-ratelimit-headers: the policy and its state */

    last = ngx_sprintf(p, "%V;q=%ui;w=%M", &limit->sf_name, limit->rate,
                       limit->window / 1000);

    if (ngx_http_grpc_guard_limit_push_header(r, ctx, "RateLimit-Policy",
                                              p, last)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = last;

    last = ngx_sprintf(p, "%V;r=0;t=%M", &limit->sf_name, seconds);

    return ngx_http_grpc_guard_limit_push_header(r, ctx, "RateLimit", p,
                                                 last);
}


static ngx_int_t
ngx_http_grpc_guard_limit_push_header(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, char *key, u_char *value, u_char *last)
{
    ngx_keyval_t  *kv;

    kv = ngx_array_push(ctx->call.headers);
    if (kv == NULL) {
        return NGX_ERROR;
    }

    kv->key.data = (u_char *) key;
    kv->key.len = ngx_strlen(key);
    kv->value.data = value;
    kv->value.len = last - value;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_limit_failed(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf)
{
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    static char  *modes[] = {
        "passed without their limits",
        "refused",
        "counted in local windows"
    };

    /* said at most once a second per worker, with the number of calls */

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    gmcf->limit_failed_calls++;

    if (gmcf->limit_failed_logged
        && ngx_current_msec - gmcf->limit_failed_logged < 1000)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "grpc guard: redis did not answer, %ui calls %s "
                  "(grpc_guard_limit_failure)",
                  gmcf->limit_failed_calls, modes[glcf->limit.failure]);

    gmcf->limit_failed_logged = ngx_current_msec ? ngx_current_msec : 1;
    gmcf->limit_failed_calls = 0;
}


static ngx_http_grpc_guard_limit_zone_t *
ngx_http_grpc_guard_limit_get_zone(ngx_http_request_t *r)
{
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    return gmcf->limit_zone->data;
}


static void
ngx_http_grpc_guard_limit_blocked(ngx_http_grpc_guard_limit_zone_t *zone,
    ngx_http_grpc_guard_limit_ctx_t *lctx)
{
    ngx_uint_t                         i;
    ngx_msec_int_t                     left;
    ngx_http_grpc_guard_limit_node_t  *lr;

    /* a key that Redis said is over its limit: no need to ask again */

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < lctx->n; i++) {

        lr = ngx_http_grpc_guard_limit_lookup(zone, &lctx->keys[i], 0);

        if (lr == NULL) {
            continue;
        }

        left = (ngx_msec_int_t) (lr->blocked - ngx_current_msec);

        if (left > 0 && (!lctx->cached || (ngx_msec_t) left > lctx->wait)) {
            lctx->cached = 1;
            lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_REFUSED;
            lctx->index = i;
            lctx->wait = left;
            lctx->remaining = 0;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


static void
ngx_http_grpc_guard_limit_block(ngx_http_grpc_guard_limit_zone_t *zone,
    ngx_str_t *key, ngx_msec_t wait)
{
    ngx_http_grpc_guard_limit_node_t  *lr;

    ngx_shmtx_lock(&zone->shpool->mutex);

    lr = ngx_http_grpc_guard_limit_lookup(zone, key, 1);

    if (lr) {
        lr->blocked = ngx_current_msec + wait;

        if ((ngx_msec_int_t) (lr->blocked - lr->expire) > 0) {
            lr->expire = lr->blocked;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


static void
ngx_http_grpc_guard_limit_local(ngx_http_grpc_guard_limit_zone_t *zone,
    ngx_http_grpc_guard_limit_ctx_t *lctx)
{
    double                             est, rate, window, elapsed;
    uint64_t                           now, w;
    ngx_int_t                          r;
    ngx_msec_t                         wait;
    ngx_time_t                        *tp;
    ngx_uint_t                         i;
    ngx_http_grpc_guard_limit_node_t  *lr;

    /*
     * the same sliding window as the script, in this instance only,
     * on this host's clock
     */

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    /* with Redis Cluster, only the limits whose master failed */

    lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_ALLOWED;
    lctx->remaining = lctx->failed ? lctx->remaining : -1;
    lctx->wait = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < lctx->n; i++) {

        if (lctx->failed && !(lctx->failed & (1 << i))) {
            continue;
        }

        lr = ngx_http_grpc_guard_limit_lookup(zone, &lctx->keys[i], 1);

        if (lr == NULL) {

            /* the zone is full even after expiring: not limited here */

            continue;
        }

        w = now / lctx->limits[i]->window;

        if (lr->window != w) {
            lr->prev = (lr->window + 1 == w) ? lr->count : 0;
            lr->count = 0;
            lr->window = w;
        }

        rate = (double) lctx->limits[i]->rate;
        window = (double) lctx->limits[i]->window;
        elapsed = (double) (now - w * lctx->limits[i]->window);

        est = (double) lr->prev * (window - elapsed) / window
              + (double) lr->count;

        if (est + 1 > rate) {
            wait = ngx_http_grpc_guard_limit_wait(rate, window, elapsed,
                                                  (double) lr->count,
                                                  (double) lr->prev);

            if (wait > lctx->wait) {
                lctx->outcome = NGX_HTTP_GRPC_GUARD_LIMIT_REFUSED;
                lctx->index = i;
                lctx->wait = wait;
                lctx->remaining = 0;
            }

            continue;
        }

        r = (ngx_int_t) (rate - est - 1);

        if (lctx->remaining < 0 || r < lctx->remaining) {
            lctx->remaining = r;
        }
    }

    if (lctx->outcome == NGX_HTTP_GRPC_GUARD_LIMIT_ALLOWED) {

        /* looked up again: a node may have been expired meanwhile */

        for (i = 0; i < lctx->n; i++) {

            if (lctx->failed && !(lctx->failed & (1 << i))) {
                continue;
            }

            lr = ngx_http_grpc_guard_limit_lookup(zone, &lctx->keys[i], 0);

            if (lr && lr->window == now / lctx->limits[i]->window) {
                lr->count++;
                lr->expire = ngx_current_msec
                             + 2 * lctx->limits[i]->window;
            }
        }

        if (lctx->remaining < 0) {
            lctx->remaining = 0;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


static ngx_msec_t
ngx_http_grpc_guard_limit_wait(double rate, double window, double elapsed,
    double cur, double prev)
{
    double      d;
    ngx_msec_t  ms;

    /* as the script computes it, in whole milliseconds rounded up */

    if (cur + 1 > rate) {
        d = window - elapsed + window * (1 - (rate - 1) / cur);

    } else {
        d = window * (1 - (rate - 1 - cur) / prev) - elapsed;
    }

    if (d < 1) {
        return 1;
    }

    ms = (ngx_msec_t) d;

    return ((double) ms < d) ? ms + 1 : ms;
}


static ngx_http_grpc_guard_limit_node_t *
ngx_http_grpc_guard_limit_lookup(ngx_http_grpc_guard_limit_zone_t *zone,
    ngx_str_t *key, ngx_uint_t create)
{
    size_t                             size;
    uint32_t                           hash;
    ngx_int_t                          rc;
    ngx_rbtree_node_t                 *node, *sentinel;
    ngx_http_grpc_guard_limit_node_t  *lr;

    hash = ngx_crc32_short(key->data, key->len);

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

        /* hash == node->key */

        lr = (ngx_http_grpc_guard_limit_node_t *) &node->color;

        rc = ngx_memn2cmp(key->data, lr->data, key->len, (size_t) lr->len);

        if (rc == 0) {
            ngx_queue_remove(&lr->queue);
            ngx_queue_insert_head(&zone->sh->queue, &lr->queue);
            return lr;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    if (!create) {
        return NULL;
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_grpc_guard_limit_node_t, data)
           + key->len;

    ngx_http_grpc_guard_limit_expire(zone, 1);

    node = ngx_slab_alloc_locked(zone->shpool, size);

    if (node == NULL) {
        ngx_http_grpc_guard_limit_expire(zone, 0);

        node = ngx_slab_alloc_locked(zone->shpool, size);
        if (node == NULL) {
            return NULL;
        }
    }

    node->key = hash;

    lr = (ngx_http_grpc_guard_limit_node_t *) &node->color;

    lr->len = (u_short) key->len;
    lr->expire = ngx_current_msec;
    lr->blocked = ngx_current_msec;
    lr->window = 0;
    lr->count = 0;
    lr->prev = 0;
    ngx_memcpy(lr->data, key->data, key->len);

    ngx_rbtree_insert(&zone->sh->rbtree, node);
    ngx_queue_insert_head(&zone->sh->queue, &lr->queue);

    return lr;
}


static void
ngx_http_grpc_guard_limit_expire(ngx_http_grpc_guard_limit_zone_t *zone,
    ngx_uint_t force)
{
    ngx_uint_t                         n;
    ngx_queue_t                       *q;
    ngx_rbtree_node_t                 *node;
    ngx_http_grpc_guard_limit_node_t  *lr;

    /*
     * force == 1 removes up to two expired entries, force == 0 also
     * the least recently used entry, expired or not
     */

    for (n = force; n < 3; n++) {

        if (ngx_queue_empty(&zone->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&zone->sh->queue);

        lr = ngx_queue_data(q, ngx_http_grpc_guard_limit_node_t, queue);

        if (n != 0 && (ngx_msec_int_t) (lr->expire - ngx_current_msec) > 0) {
            return;
        }

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) lr - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&zone->sh->rbtree, node);

        ngx_slab_free_locked(zone->shpool, node);
    }
}


static void
ngx_http_grpc_guard_limit_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                **p;
    ngx_http_grpc_guard_limit_node_t  *lr, *lrt;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            lr = (ngx_http_grpc_guard_limit_node_t *) &node->color;
            lrt = (ngx_http_grpc_guard_limit_node_t *) &temp->color;

            p = (ngx_memn2cmp(lr->data, lrt->data, lr->len, lrt->len) < 0)
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


static ngx_int_t
ngx_http_grpc_guard_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_grpc_guard_limit_zone_t  *ozone = data;

    size_t                             len;
    ngx_http_grpc_guard_limit_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {

        /* a reload: the blocked keys and local windows are kept */

        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;

        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;

        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool,
                              sizeof(ngx_http_grpc_guard_limit_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_grpc_guard_limit_rbtree_insert_value);

    ngx_queue_init(&zone->sh->queue);

    len = sizeof(" in grpc guard zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in grpc guard zone \"%V\"%Z",
                &shm_zone->shm.name);

    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


void
ngx_http_grpc_guard_limit_create_conf(ngx_http_grpc_guard_limit_conf_t *conf)
{
    conf->limits = NGX_CONF_UNSET_PTR;
    conf->failure = NGX_CONF_UNSET_UINT;
    conf->dry_run = NGX_CONF_UNSET;
}


char *
ngx_http_grpc_guard_limit_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_uint_t                         i;
    ngx_http_grpc_guard_limit_t       *limit;
    ngx_http_grpc_guard_limit_conf_t  *lcf, *plcf;
    ngx_http_grpc_guard_main_conf_t   *gmcf;

    lcf = &conf->limit;
    plcf = &prev->limit;

    ngx_conf_merge_ptr_value(lcf->limits, plcf->limits, NULL);
    ngx_conf_merge_uint_value(lcf->failure, plcf->failure,
                              NGX_HTTP_GRPC_GUARD_LIMIT_OPEN);
    ngx_conf_merge_value(lcf->dry_run, plcf->dry_run, 0);

    lcf->pre = 0;
    lcf->post = 0;

    if (lcf->limits == NULL) {
        return NGX_CONF_OK;
    }

    limit = lcf->limits->elts;

    for (i = 0; i < lcf->limits->nelts; i++) {
        if (limit[i].identity) {
            lcf->post = 1;

        } else {
            lcf->pre = 1;
        }
    }

    if (conf->enable) {
        gmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_grpc_guard_module);
        gmcf->limit_used = 1;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_grpc_guard_limit_init_main(ngx_conf_t *cf,
    ngx_http_grpc_guard_main_conf_t *gmcf)
{
    ngx_http_grpc_guard_limit_zone_t  *zone;

    ngx_conf_init_size_value(gmcf->limit_zone_size, 1024 * 1024);

    if (!gmcf->limit_used) {
        return NGX_OK;
    }

    if (gmcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_limit\" needs \"grpc_guard_redis\"");
        return NGX_ERROR;
    }

    if (gmcf->limit_zone_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_limit_zone\" is too small");
        return NGX_ERROR;
    }

    ngx_http_grpc_guard_redis_set_script(gmcf->redis,
                                         &ngx_http_grpc_guard_limit_script);

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_limit_zone_t));
    if (zone == NULL) {
        return NGX_ERROR;
    }

    gmcf->limit_zone = ngx_shared_memory_add(cf,
                                       &ngx_http_grpc_guard_limit_zone_name,
                                       gmcf->limit_zone_size,
                                       &ngx_http_grpc_guard_module);
    if (gmcf->limit_zone == NULL) {
        return NGX_ERROR;
    }

    gmcf->limit_zone->init = ngx_http_grpc_guard_limit_init_zone;
    gmcf->limit_zone->data = zone;

    return NGX_OK;
}


char *
ngx_http_grpc_guard_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char                            *p;
    ngx_str_t                         *value, s, key;
    ngx_uint_t                         i;
    ngx_http_grpc_guard_limit_t       *limit, *other;
    ngx_http_compile_complex_value_t   ccv;
    ngx_http_grpc_guard_limit_conf_t  *lcf;

    lcf = &glcf->limit;
    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {

        if (lcf->limits != NGX_CONF_UNSET_PTR) {
            return "is duplicate";
        }

        lcf->limits = NULL;
        return NGX_CONF_OK;
    }

    if (lcf->limits == NULL) {
        return "is duplicate";
    }

    if (lcf->limits == NGX_CONF_UNSET_PTR) {
        lcf->limits = ngx_array_create(cf->pool, 2,
                                       sizeof(ngx_http_grpc_guard_limit_t));
        if (lcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (lcf->limits->nelts == NGX_HTTP_GRPC_GUARD_LIMIT_MAX) {
        return "is repeated too many times";
    }

    limit = ngx_array_push(lcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(limit, sizeof(ngx_http_grpc_guard_limit_t));

    ngx_str_null(&key);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            s.len = value[i].len - 5;
            s.data = value[i].data + 5;

            if (ngx_http_grpc_guard_limit_parse_rate(&s, limit) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid rate \"%V\", it must be like "
                                   "\"10r/s\", \"600r/m\" or \"5000r/h\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            key.len = value[i].len - 4;
            key.data = value[i].data + 4;

            if (key.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "name=", 5) == 0) {
            limit->name.len = value[i].len - 5;
            limit->name.data = value[i].data + 5;

            if (limit->name.len == 0) {
                goto invalid;
            }

            for (p = limit->name.data;
                 p < limit->name.data + limit->name.len;
                 p++)
            {
                /* ":" separates the parts of a counter's Redis key */

                if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\'
                    || *p == ':')
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid limit name \"%V\"",
                                       &value[i]);
                    return NGX_CONF_ERROR;
                }
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "per=method") == 0) {
            limit->per = NGX_HTTP_GRPC_GUARD_LIMIT_PER_METHOD;
            continue;
        }

        if (ngx_strcmp(value[i].data, "per=service") == 0) {
            limit->per = NGX_HTTP_GRPC_GUARD_LIMIT_PER_SERVICE;
            continue;
        }

        if (ngx_strcmp(value[i].data, "per=location") == 0) {
            limit->per = NGX_HTTP_GRPC_GUARD_LIMIT_PER_LOCATION;
            continue;
        }

        goto invalid;
    }

    if (limit->rate == 0) {
        return "needs \"rate=\"";
    }

    if (key.len == 0) {
        return "needs \"key=\"";
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &key;
    ccv.complex_value = &limit->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* keys on the caller's identity wait until it is known */

    limit->identity = ngx_http_grpc_guard_limit_needs_identity(&key);

    if (limit->name.len == 0) {
        limit->name = key;
    }

    limit->metrics = ngx_http_grpc_guard_metrics_name(cf,
                                             NGX_HTTP_GRPC_GUARD_METRICS_LIMIT,
                                             &limit->name);

    other = lcf->limits->elts;

    for (i = 0; i < lcf->limits->nelts - 1; i++) {
        if (other[i].window == limit->window
            && other[i].name.len == limit->name.len
            && ngx_strncmp(other[i].name.data, limit->name.data,
                           limit->name.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "limit \"%V\" is defined twice with the same "
                               "window; tell them apart with \"name=\"",
                               &limit->name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_grpc_guard_limit_quote(cf->pool, &limit->name,
                                        &limit->sf_name)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* "grpc_guard:{limit}:" or "grpc_guard:{", "NAME:WINDOW:", the value */

    p = ngx_pnalloc(cf->pool, limit->name.len + 3 + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    limit->prefix.data = p;
    p = ngx_sprintf(p, "%V:%Ms:", &limit->name, limit->window / 1000);
    limit->prefix.len = p - limit->prefix.data;

    p = ngx_pnalloc(cf->pool, 2 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    limit->rate_arg.data = p;
    p = ngx_sprintf(p, "%ui", limit->rate);
    limit->rate_arg.len = p - limit->rate_arg.data;

    limit->window_arg.data = p;
    p = ngx_sprintf(p, "%M", limit->window);
    limit->window_arg.len = p - limit->window_arg.data;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_uint_t
ngx_http_grpc_guard_limit_needs_identity(ngx_str_t *key)
{
    u_char     *p, *last, *name;
    ngx_str_t   var;

    /*
     * any of the guard's variables but the method and the service is
     * known only after authentication: $grpc_guard_principal,
     * $grpc_guard_jwt_claim_*, $grpc_guard_api_key_client,
     * $grpc_guard_peer_*, ...
     */

    p = key->data;
    last = p + key->len;

    while (p < last) {

        if (*p++ != '$') {
            continue;
        }

        if (p < last && *p == '{') {
            p++;
        }

        name = p;

        while (p < last
               && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                   || (*p >= '0' && *p <= '9') || *p == '_'))
        {
            p++;
        }

        var.data = name;
        var.len = p - name;

        if (var.len < sizeof("grpc_guard_") - 1
            || ngx_strncmp(var.data, "grpc_guard_", sizeof("grpc_guard_") - 1)
               != 0)
        {
            continue;
        }

        if ((var.len == sizeof("grpc_guard_method") - 1
             && ngx_strncmp(var.data, "grpc_guard_method", var.len) == 0)
            || (var.len == sizeof("grpc_guard_service") - 1
                && ngx_strncmp(var.data, "grpc_guard_service", var.len) == 0))
        {
            continue;
        }

        return 1;
    }

    return 0;
}


static ngx_int_t
ngx_http_grpc_guard_limit_parse_rate(ngx_str_t *value,
    ngx_http_grpc_guard_limit_t *limit)
{
    ngx_int_t  n;

    if (value->len < 4
        || value->data[value->len - 3] != 'r'
        || value->data[value->len - 2] != '/')
    {
        return NGX_ERROR;
    }

    n = ngx_atoi(value->data, value->len - 3);

    if (n == NGX_ERROR || n == 0 || n > 1000000000) {
        return NGX_ERROR;
    }

    switch (value->data[value->len - 1]) {

    case 's':
        limit->window = 1000;
        break;

    case 'm':
        limit->window = 60 * 1000;
        break;

    case 'h':
        limit->window = 3600 * 1000;
        break;

    default:
        return NGX_ERROR;
    }

    limit->rate = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_limit_quote(ngx_pool_t *pool, ngx_str_t *name,
    ngx_str_t *quoted)
{
    u_char  *p, *q;

    /* a Structured Field string: '"' and '\' escaped, printable ASCII */

    q = ngx_pnalloc(pool, 2 * name->len + 2);
    if (q == NULL) {
        return NGX_ERROR;
    }

    quoted->data = q;

    *q++ = '"';

    for (p = name->data; p < name->data + name->len; p++) {

        if (*p == '"' || *p == '\\') {
            *q++ = '\\';
            *q++ = *p;

        } else if (*p < 0x20 || *p > 0x7e) {
            *q++ = '?';

        } else {
            *q++ = *p;
        }
    }

    *q++ = '"';

    quoted->len = q - quoted->data;

    return NGX_OK;
}
