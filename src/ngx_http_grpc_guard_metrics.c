
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Metrics: counters in a shared zone that every worker adds to with
 * atomic operations, counted in the log phase and where the other
 * concerns call in, and their Prometheus text exposition
 * (grpc_guard_metrics).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


/*
 * The zone holds
 *
 *   - fixed counters: JWT cache, audit records, authentication results;
 *   - a list of names, each with an id: (server, service) pairs, limits
 *     and Redis nodes; the counters of a limit or a node follow its name;
 *   - the table of calls: an open-addressing hash whose key packs a pair
 *     id, a decision, a reason and a grpc-status, and whose value counts
 *     the calls with them.  A worker takes a free slot with one
 *     compare-and-swap and a slot is never given back, so a call is
 *     counted without a lock and without an allocation.
 *
 * Names come from the configuration only and every other part of a key
 * from a fixed list, so what clients send cannot grow the zone.  Names
 * are added by the master process when it loads a configuration, before
 * the workers start, and are kept, with their ids and counters, across
 * reloads.
 */


#define NGX_HTTP_GRPC_GUARD_METRICS_PAIR        0
#define NGX_HTTP_GRPC_GUARD_METRICS_KINDS       3

/* decisions: none, allow, deny, dry_run_deny, public, other */
#define NGX_HTTP_GRPC_GUARD_METRICS_DECISIONS   6
#define NGX_HTTP_GRPC_GUARD_METRICS_DEC_OTHER   5

/* grpc_status: 0-16, then other and none */
#define NGX_HTTP_GRPC_GUARD_METRICS_STATUSES    19
#define NGX_HTTP_GRPC_GUARD_METRICS_ST_OTHER    17
#define NGX_HTTP_GRPC_GUARD_METRICS_ST_NONE     18

/* authentication: mtls, api_key, jwt; success, missing, failure */
#define NGX_HTTP_GRPC_GUARD_METRICS_METHODS     3
#define NGX_HTTP_GRPC_GUARD_METRICS_RESULTS     3
#define NGX_HTTP_GRPC_GUARD_METRICS_AUTH        NGX_HTTP_GRPC_GUARD_METRIC_FIXED
#define NGX_HTTP_GRPC_GUARD_METRICS_FIXED                                     \
    (NGX_HTTP_GRPC_GUARD_METRIC_FIXED + 3 * 3)

/* the counters of a limit: passed, limited, unavailable */
#define NGX_HTTP_GRPC_GUARD_METRICS_LIMIT_SIZE  3

/* of a Redis node: up, circuit open, the buckets, the sum in us */
#define NGX_HTTP_GRPC_GUARD_METRICS_BUCKETS     12
#define NGX_HTTP_GRPC_GUARD_METRICS_NODE_UP     0
#define NGX_HTTP_GRPC_GUARD_METRICS_NODE_OPEN   1
#define NGX_HTTP_GRPC_GUARD_METRICS_NODE_BUCKET 2
#define NGX_HTTP_GRPC_GUARD_METRICS_NODE_SUM    14
#define NGX_HTTP_GRPC_GUARD_METRICS_NODE_SIZE   15

/* slots looked at for a key before the table counts as full */
#define NGX_HTTP_GRPC_GUARD_METRICS_PROBES      32

/* the longest label value kept (server names, services, limits) */
#define NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME    256

#define NGX_HTTP_GRPC_GUARD_METRICS_OUT_SIZE    16384


/*
 * a key: the pair id + 1 (a key is never 0, a free slot), then the
 * outcome of the call: decision, reason and grpc-status
 */
#define ngx_http_grpc_guard_metrics_outcome(decision, reason, status)       \
    (((ngx_atomic_uint_t) (decision) << 13)                                  \
     | ((ngx_atomic_uint_t) (reason) << 5)                                   \
     | (ngx_atomic_uint_t) (status))


typedef struct {
    ngx_atomic_t                             key;   /* 0: free */
    ngx_atomic_t                             value;
} ngx_http_grpc_guard_metrics_entry_t;


typedef struct ngx_http_grpc_guard_metrics_shname_s
    ngx_http_grpc_guard_metrics_shname_t;

struct ngx_http_grpc_guard_metrics_shname_s {
    ngx_http_grpc_guard_metrics_shname_t    *next;
    ngx_uint_t                               kind;
    ngx_uint_t                               id;
    ngx_atomic_t                            *counters;  /* limits, nodes */
    size_t                                   len[2];
    unsigned                                 other:1;   /* the fallback */
    u_char                                   data[1];
};


typedef struct {
    uint32_t                                 layout;
    ngx_uint_t                               ids;   /* names so far */
    ngx_http_grpc_guard_metrics_shname_t    *names;
    ngx_http_grpc_guard_metrics_shname_t    *last;

    /* what a name that does not fit in the zone is counted as */
    ngx_http_grpc_guard_metrics_shname_t    *other[
                                        NGX_HTTP_GRPC_GUARD_METRICS_KINDS];

    ngx_http_grpc_guard_metrics_entry_t     *table;
    ngx_uint_t                               mask;
    ngx_atomic_t                             full;  /* said once */
    ngx_atomic_t                             lost;  /* calls not in table */
    ngx_atomic_t                             fixed[
                                        NGX_HTTP_GRPC_GUARD_METRICS_FIXED];
} ngx_http_grpc_guard_metrics_shctx_t;


/* a name of the configuration, and where its counters are in the zone */

typedef struct {
    ngx_uint_t                               kind;
    ngx_str_t                                name[2];
    ngx_uint_t                               id;
    ngx_atomic_t                            *counters;
} ngx_http_grpc_guard_metrics_name_t;


typedef struct {
    ngx_str_t                                service;
    ngx_http_grpc_guard_metrics_name_t      *pair;
} ngx_http_grpc_guard_metrics_service_t;


struct ngx_http_grpc_guard_metrics_loc_s {
    ngx_flag_t                               requests;
    ngx_array_t                             *services;  /* ngx_str_t */

    /* the services this location names, sorted, and the rest */
    ngx_http_grpc_guard_metrics_service_t   *table;
    ngx_uint_t                               ntable;
    ngx_http_grpc_guard_metrics_name_t      *other;

    unsigned                                 handler:1;
    unsigned                                 count:1;
};


struct ngx_http_grpc_guard_metrics_main_s {
    size_t                                   size;
    ngx_flag_t                               enabled;
    ngx_shm_zone_t                          *zone;

    /* ngx_http_grpc_guard_metrics_name_t *, by kind, in order */
    ngx_array_t                              names[
                                        NGX_HTTP_GRPC_GUARD_METRICS_KINDS];

    ngx_http_grpc_guard_metrics_shctx_t     *sh;
    ngx_slab_pool_t                         *shpool;
};


typedef struct {
    ngx_http_request_t                      *request;
    ngx_chain_t                             *out;
    ngx_chain_t                            **last;
    ngx_buf_t                               *buf;
    off_t                                    len;
} ngx_http_grpc_guard_metrics_out_t;


static ngx_int_t ngx_http_grpc_guard_metrics_log_handler(
    ngx_http_request_t *r);
static ngx_http_grpc_guard_metrics_name_t *ngx_http_grpc_guard_metrics_pair(
    ngx_http_grpc_guard_metrics_loc_t *lm, ngx_str_t *service);
static ngx_uint_t ngx_http_grpc_guard_metrics_decision(ngx_str_t *decision);
static ngx_uint_t ngx_http_grpc_guard_metrics_reason(ngx_str_t *reason);
static void ngx_http_grpc_guard_metrics_count(ngx_http_request_t *r,
    ngx_http_grpc_guard_metrics_shctx_t *sh, ngx_uint_t pair,
    ngx_atomic_uint_t outcome);
static ngx_int_t ngx_http_grpc_guard_metrics_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_grpc_guard_metrics_write(
    ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_main_t *mm);
static ngx_int_t ngx_http_grpc_guard_metrics_requests_total(
    ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_shctx_t *sh);
static ngx_int_t ngx_http_grpc_guard_metrics_limits(
    ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_shctx_t *sh);
static ngx_int_t ngx_http_grpc_guard_metrics_nodes(
    ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_shctx_t *sh);
static u_char *ngx_http_grpc_guard_metrics_reserve(
    ngx_http_grpc_guard_metrics_out_t *out, size_t size);
static ngx_int_t ngx_http_grpc_guard_metrics_text(
    ngx_http_grpc_guard_metrics_out_t *out, char *text);
static u_char *ngx_http_grpc_guard_metrics_escape(u_char *p, u_char *src,
    size_t len);
static ngx_uint_t ngx_http_grpc_guard_metrics_show(
    ngx_http_grpc_guard_metrics_shname_t *n, ngx_uint_t size);

static ngx_http_grpc_guard_metrics_main_t *ngx_http_grpc_guard_metrics_main(
    ngx_conf_t *cf);
static ngx_http_grpc_guard_metrics_loc_t *ngx_http_grpc_guard_metrics_loc(
    ngx_conf_t *cf, ngx_http_grpc_guard_loc_conf_t *glcf);
static ngx_http_grpc_guard_metrics_name_t *ngx_http_grpc_guard_metrics_find(
    ngx_conf_t *cf, ngx_http_grpc_guard_metrics_main_t *mm, ngx_uint_t kind,
    ngx_str_t *name0, ngx_str_t *name1, ngx_uint_t *index);
static ngx_int_t ngx_http_grpc_guard_metrics_add_service(ngx_array_t *a,
    ngx_str_t *text);
static int ngx_http_grpc_guard_metrics_cmp_service(const void *one,
    const void *two);
static ngx_int_t ngx_http_grpc_guard_metrics_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_grpc_guard_metrics_resolve(ngx_shm_zone_t *shm_zone,
    ngx_http_grpc_guard_metrics_main_t *mm);
static ngx_http_grpc_guard_metrics_shname_t *
    ngx_http_grpc_guard_metrics_shname(ngx_http_grpc_guard_metrics_main_t *mm,
    ngx_uint_t kind, ngx_str_t *name0, ngx_str_t *name1);
static uint32_t ngx_http_grpc_guard_metrics_layout(void);


/*
 * the reason codes the module gives, sorted (they are looked up with a
 * binary search); a reason not listed here is counted as "other"
 */

static ngx_str_t  ngx_http_grpc_guard_metrics_reasons[] = {
    ngx_string("none"),
    ngx_string("acl_default_deny"),
    ngx_string("acl_deny_rule"),
    ngx_string("acl_unauthenticated"),
    ngx_string("api_key_duplicate"),
    ngx_string("api_key_expired"),
    ngx_string("api_key_missing"),
    ngx_string("api_key_unknown"),
    ngx_string("bad_request"),
    ngx_string("body_too_large"),
    ngx_string("deadline_malformed"),
    ngx_string("deadline_missing"),
    ngx_string("http_error"),
    ngx_string("internal_error"),
    ngx_string("jwt_bad_alg"),
    ngx_string("jwt_bad_audience"),
    ngx_string("jwt_bad_issuer"),
    ngx_string("jwt_bad_signature"),
    ngx_string("jwt_bad_typ"),
    ngx_string("jwt_crit"),
    ngx_string("jwt_expired"),
    ngx_string("jwt_iat_future"),
    ngx_string("jwt_lifetime"),
    ngx_string("jwt_malformed"),
    ngx_string("jwt_missing"),
    ngx_string("jwt_missing_claim"),
    ngx_string("jwt_not_yet_valid"),
    ngx_string("jwt_too_long"),
    ngx_string("jwt_unknown_kid"),
    ngx_string("message_malformed"),
    ngx_string("message_too_large"),
    ngx_string("method_not_post"),
    ngx_string("mtls_no_certificate"),
    ngx_string("mtls_no_identity"),
    ngx_string("mtls_no_tls"),
    ngx_string("mtls_untrusted"),
    ngx_string("mtls_xfcc_invalid"),
    ngx_string("nginx_limit_conn"),
    ngx_string("nginx_limit_req"),
    ngx_string("path_not_canonical"),
    ngx_string("rate_limited"),
    ngx_string("redis_unavailable"),
    ngx_string("reflection_disabled"),
    ngx_string("tls_required"),
    ngx_string("upstream_timeout"),
    ngx_string("upstream_unavailable"),
    ngx_string("other")
};

#define NGX_HTTP_GRPC_GUARD_METRICS_REASONS                                   \
    (sizeof(ngx_http_grpc_guard_metrics_reasons) / sizeof(ngx_str_t))


static ngx_str_t  ngx_http_grpc_guard_metrics_decisions[] = {
    ngx_string("none"),
    ngx_string("allow"),
    ngx_string("deny"),
    ngx_string("dry_run_deny"),
    ngx_string("public"),
    ngx_string("other")
};


static ngx_str_t  ngx_http_grpc_guard_metrics_statuses[] = {
    ngx_string("0"), ngx_string("1"), ngx_string("2"), ngx_string("3"),
    ngx_string("4"), ngx_string("5"), ngx_string("6"), ngx_string("7"),
    ngx_string("8"), ngx_string("9"), ngx_string("10"), ngx_string("11"),
    ngx_string("12"), ngx_string("13"), ngx_string("14"), ngx_string("15"),
    ngx_string("16"), ngx_string("other"), ngx_string("none")
};


/* in the order of NGX_HTTP_GRPC_GUARD_AUTH_* bits: jwt, api_key, mtls */

static char  *ngx_http_grpc_guard_metrics_methods[] = {
    "jwt", "api_key", "mtls"
};


static char  *ngx_http_grpc_guard_metrics_auth_results[] = {
    "success", "missing", "failure"
};


static char  *ngx_http_grpc_guard_metrics_jwt_results[] = {
    "hit_connection", "hit_shared", "miss"
};


static char  *ngx_http_grpc_guard_metrics_limit_results[] = {
    "passed", "limited", "unavailable"
};


/* the upper bounds of the latency buckets, in us and as printed */

static ngx_uint_t  ngx_http_grpc_guard_metrics_bounds[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000
};


static char  *ngx_http_grpc_guard_metrics_le[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "+Inf"
};


static ngx_str_t  ngx_http_grpc_guard_metrics_other = ngx_string("other");

static ngx_str_t  ngx_http_grpc_guard_metrics_zone_name =
    ngx_string("grpc_guard_metrics");


/*
 * the zone and the names of the running configuration: set in every
 * process when a configuration is in effect (init_module runs once the
 * new cycle can no longer fail), for the calls that have no request
 */

static ngx_http_grpc_guard_metrics_main_t  *ngx_http_grpc_guard_metrics;


static ngx_int_t
ngx_http_grpc_guard_metrics_log_handler(ngx_http_request_t *r)
{
    ngx_int_t                            status;
    ngx_uint_t                           source, decision, reason;
    ngx_http_grpc_guard_ctx_t           *ctx, tmp;
    ngx_http_grpc_guard_loc_conf_t      *glcf;
    ngx_http_grpc_guard_main_conf_t     *gmcf;
    ngx_http_grpc_guard_metrics_loc_t   *lm;
    ngx_http_grpc_guard_metrics_name_t  *pair;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_grpc_guard_get_ctx(r);

    /* the location that decided; after a redirect, the one that ends it */

    if (ctx && ctx->conf) {
        lm = ctx->conf->metrics;

    } else {
        glcf = ngx_http_get_module_loc_conf(r, ngx_http_grpc_guard_module);
        lm = glcf->enable ? glcf->metrics : NULL;
    }

    if (lm == NULL || !lm->count) {
        return NGX_OK;
    }

    if (ctx == NULL) {

        /* the request ended before the access phase (e.g. a bad header) */

        ngx_memzero(&tmp, sizeof(ngx_http_grpc_guard_ctx_t));
        tmp.call.grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
        tmp.call.grpc = ngx_http_grpc_guard_is_grpc(r);
        ctx = &tmp;
    }

    /* a path that is not a method names no service */

    pair = ctx->call.canonical
           ? ngx_http_grpc_guard_metrics_pair(lm, &ctx->call.service)
           : lm->other;
    decision = ngx_http_grpc_guard_metrics_decision(&ctx->call.decision);
    reason = ngx_http_grpc_guard_metrics_reason(&ctx->call.reason);

    status = ngx_http_grpc_guard_final_status(r, ctx, &source);

    if (status < 0 || status > 16) {
        status = (status == NGX_HTTP_GRPC_GUARD_NO_STATUS)
                 ? NGX_HTTP_GRPC_GUARD_METRICS_ST_NONE
                 : NGX_HTTP_GRPC_GUARD_METRICS_ST_OTHER;

    } else if (!ctx->call.grpc
               && source == NGX_HTTP_GRPC_GUARD_SOURCE_SYNTHESIZED)
    {
        /* as in the audit record: another content type has no status */

        status = NGX_HTTP_GRPC_GUARD_METRICS_ST_NONE;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    ngx_http_grpc_guard_metrics_count(r, gmcf->metrics->sh, pair->id,
                   ngx_http_grpc_guard_metrics_outcome(decision, reason,
                                                       status));

    return NGX_OK;
}


static ngx_http_grpc_guard_metrics_name_t *
ngx_http_grpc_guard_metrics_pair(ngx_http_grpc_guard_metrics_loc_t *lm,
    ngx_str_t *service)
{
    ngx_int_t                               rc;
    ngx_uint_t                              lo, hi, mid;
    ngx_http_grpc_guard_metrics_service_t  *s;

    lo = 0;
    hi = lm->ntable;
    s = lm->table;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        rc = ngx_memn2cmp(service->data, s[mid].service.data, service->len,
                          s[mid].service.len);

        if (rc == 0) {
            return s[mid].pair;
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return lm->other;
}


static ngx_uint_t
ngx_http_grpc_guard_metrics_decision(ngx_str_t *decision)
{
    ngx_uint_t  id;

    /*
     * the guard's own words: told apart by their length and first
     * letter, without a string comparison on every call
     */

    switch (decision->len) {

    case 0:
        return 0;

    case sizeof("allow") - 1:
        id = 1;
        break;

    case sizeof("deny") - 1:
        id = 2;
        break;

    case sizeof("dry_run_deny") - 1:
        id = 3;
        break;

    case sizeof("public") - 1:
        id = 4;
        break;

    default:
        return NGX_HTTP_GRPC_GUARD_METRICS_DEC_OTHER;
    }

    if (decision->data[0] != ngx_http_grpc_guard_metrics_decisions[id].data[0])
    {
        return NGX_HTTP_GRPC_GUARD_METRICS_DEC_OTHER;
    }

    return id;
}


static ngx_uint_t
ngx_http_grpc_guard_metrics_reason(ngx_str_t *reason)
{
    ngx_int_t    rc;
    ngx_str_t   *s;
    ngx_uint_t   lo, hi, mid;

    if (reason->len == 0) {
        return 0;
    }

    /* between "none" and "other", which are not looked up */

    s = ngx_http_grpc_guard_metrics_reasons;
    lo = 1;
    hi = NGX_HTTP_GRPC_GUARD_METRICS_REASONS - 1;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        rc = ngx_memn2cmp(reason->data, s[mid].data, reason->len,
                          s[mid].len);

        if (rc == 0) {
            return mid;
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return NGX_HTTP_GRPC_GUARD_METRICS_REASONS - 1;
}


static void
ngx_http_grpc_guard_metrics_count(ngx_http_request_t *r,
    ngx_http_grpc_guard_metrics_shctx_t *sh, ngx_uint_t pair,
    ngx_atomic_uint_t outcome)
{
    uint64_t                              h;
    ngx_uint_t                            i, n;
    ngx_atomic_uint_t                     key, k;
    ngx_http_grpc_guard_metrics_entry_t  *e;

    for (n = 0; n < 2; n++) {

        key = outcome | (((ngx_atomic_uint_t) pair + 1) << 16);

        h = ((uint64_t) key * 0x9e3779b97f4a7c15ULL) >> 32;

        for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_PROBES; i++) {
            e = &sh->table[(h + i) & sh->mask];

            k = e->key;

            if (k == key) {
                goto found;
            }

            if (k == 0) {
                if (ngx_atomic_cmp_set(&e->key, 0, key)) {
                    goto found;
                }

                /* another worker took it, maybe for the same key */

                if (e->key == key) {
                    goto found;
                }
            }
        }

        /* no room near the key's place: the pair is counted as "other" */

        if (ngx_atomic_cmp_set(&sh->full, 0, 1)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "grpc guard: the \"%V\" zone is full, calls are "
                          "counted as \"other\"",
                          &ngx_http_grpc_guard_metrics_zone_name);
        }

        if (pair == sh->other[NGX_HTTP_GRPC_GUARD_METRICS_PAIR]->id) {
            break;
        }

        pair = sh->other[NGX_HTTP_GRPC_GUARD_METRICS_PAIR]->id;
    }

    (void) ngx_atomic_fetch_add(&sh->lost, 1);

    return;

found:

    (void) ngx_atomic_fetch_add(&e->value, 1);
}


void
ngx_http_grpc_guard_metrics_add(ngx_uint_t id, ngx_uint_t n)
{
    if (ngx_http_grpc_guard_metrics == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_grpc_guard_metrics->sh->fixed[id],
                                n);
}


void
ngx_http_grpc_guard_metrics_auth(ngx_uint_t method, ngx_int_t rc,
    ngx_uint_t presented)
{
    ngx_uint_t  m, result;

    if (ngx_http_grpc_guard_metrics == NULL) {
        return;
    }

    switch (method) {

    case NGX_HTTP_GRPC_GUARD_AUTH_JWT:
        m = 0;
        break;

    case NGX_HTTP_GRPC_GUARD_AUTH_API_KEY:
        m = 1;
        break;

    default: /* NGX_HTTP_GRPC_GUARD_AUTH_MTLS */
        m = 2;
        break;
    }

    result = (rc == NGX_OK) ? 0 : (presented ? 2 : 1);

    (void) ngx_atomic_fetch_add(&ngx_http_grpc_guard_metrics->sh->fixed[
                                    NGX_HTTP_GRPC_GUARD_METRICS_AUTH
                                    + m * NGX_HTTP_GRPC_GUARD_METRICS_RESULTS
                                    + result],
                                1);
}


void
ngx_http_grpc_guard_metrics_limit(ngx_uint_t limit, ngx_uint_t result)
{
    ngx_http_grpc_guard_metrics_name_t  **names;

    if (ngx_http_grpc_guard_metrics == NULL) {
        return;
    }

    names = ngx_http_grpc_guard_metrics->names[
                                     NGX_HTTP_GRPC_GUARD_METRICS_LIMIT].elts;

    if (limit >= ngx_http_grpc_guard_metrics->names[
                                     NGX_HTTP_GRPC_GUARD_METRICS_LIMIT].nelts)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&names[limit]->counters[result], 1);
}


void
ngx_http_grpc_guard_metrics_redis(ngx_uint_t node, ngx_uint_t up)
{
    ngx_atomic_t                         *c;
    ngx_http_grpc_guard_metrics_name_t  **names;

    if (ngx_http_grpc_guard_metrics == NULL
        || node >= ngx_http_grpc_guard_metrics->names[
                                     NGX_HTTP_GRPC_GUARD_METRICS_NODE].nelts)
    {
        return;
    }

    names = ngx_http_grpc_guard_metrics->names[
                                     NGX_HTTP_GRPC_GUARD_METRICS_NODE].elts;
    c = names[node]->counters;

    /* gauges: the state the last worker to talk to the node saw */

    (void) ngx_atomic_cmp_set(&c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_UP], !up,
                              up);
    (void) ngx_atomic_cmp_set(&c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_OPEN], up,
                              !up);
}


uint64_t
ngx_http_grpc_guard_metrics_now(void)
{
    struct timespec  ts;

    /* microseconds on a clock that does not jump; 0: not counted */

    if (ngx_http_grpc_guard_metrics == NULL
        || clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
    {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + 1;
}


void
ngx_http_grpc_guard_metrics_latency(ngx_uint_t node, uint64_t start)
{
    uint64_t                              us;
    ngx_uint_t                            i;
    ngx_atomic_t                         *c;
    ngx_http_grpc_guard_metrics_name_t  **names;

    if (start == 0
        || ngx_http_grpc_guard_metrics == NULL
        || node >= ngx_http_grpc_guard_metrics->names[
                                     NGX_HTTP_GRPC_GUARD_METRICS_NODE].nelts)
    {
        return;
    }

    us = ngx_http_grpc_guard_metrics_now();

    if (us < start) {
        return;
    }

    us -= start;

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_BUCKETS - 1; i++) {
        if (us <= ngx_http_grpc_guard_metrics_bounds[i]) {
            break;
        }
    }

    names = ngx_http_grpc_guard_metrics->names[
                                     NGX_HTTP_GRPC_GUARD_METRICS_NODE].elts;
    c = names[node]->counters;

    (void) ngx_atomic_fetch_add(&c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_BUCKET
                                   + i], 1);
    (void) ngx_atomic_fetch_add(&c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_SUM],
                                (ngx_atomic_int_t) us);
}


static ngx_int_t
ngx_http_grpc_guard_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_chain_t                        *cl;
    ngx_http_grpc_guard_main_conf_t    *gmcf;
    ngx_http_grpc_guard_metrics_out_t   out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_grpc_guard_module);

    ngx_memzero(&out, sizeof(ngx_http_grpc_guard_metrics_out_t));
    out.request = r;
    out.last = &out.out;

    if (ngx_http_grpc_guard_metrics_write(&out, gmcf->metrics) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (cl = out.out; cl; cl = cl->next) {
        out.len += cl->buf->last - cl->buf->pos;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = out.len;

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = NULL;

    if (r->method == NGX_HTTP_HEAD || out.out == NULL) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf->last_buf = (r == r->main) ? 1 : 0;
    out.buf->last_in_chain = 1;

    return ngx_http_output_filter(r, out.out);
}


static ngx_int_t
ngx_http_grpc_guard_metrics_write(ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_main_t *mm)
{
    u_char                               *p;
    ngx_uint_t                            i, j;
    ngx_atomic_t                         *fixed;
    ngx_http_grpc_guard_metrics_shctx_t  *sh;

    sh = mm->sh;
    fixed = sh->fixed;

    if (ngx_http_grpc_guard_metrics_requests_total(out, sh) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_metrics_text(out,
            "# HELP grpc_guard_auth_total Authentication attempts by method "
            "and result (missing: no credential of the method; failure: "
            "presented and refused).\n"
            "# TYPE grpc_guard_auth_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_METHODS; i++) {
        for (j = 0; j < NGX_HTTP_GRPC_GUARD_METRICS_RESULTS; j++) {

            p = ngx_http_grpc_guard_metrics_reserve(out, 128);
            if (p == NULL) {
                return NGX_ERROR;
            }

            out->buf->last = ngx_sprintf(p,
                          "grpc_guard_auth_total{method=\"%s\",result=\"%s\"}"
                          " %uA\n",
                          ngx_http_grpc_guard_metrics_methods[i],
                          ngx_http_grpc_guard_metrics_auth_results[j],
                          fixed[NGX_HTTP_GRPC_GUARD_METRICS_AUTH
                                + i * NGX_HTTP_GRPC_GUARD_METRICS_RESULTS
                                + j]);
        }
    }

    if (ngx_http_grpc_guard_metrics_text(out,
            "# HELP grpc_guard_jwt_cache_total Verified-token cache lookups: "
            "hits in the connection's memo, in the shared cache, and "
            "misses.\n"
            "# TYPE grpc_guard_jwt_cache_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < 3; i++) {
        p = ngx_http_grpc_guard_metrics_reserve(out, 128);
        if (p == NULL) {
            return NGX_ERROR;
        }

        out->buf->last = ngx_sprintf(p,
                                "grpc_guard_jwt_cache_total{result=\"%s\"} "
                                "%uA\n",
                                ngx_http_grpc_guard_metrics_jwt_results[i],
                                fixed[NGX_HTTP_GRPC_GUARD_METRIC_JWT_HIT_MEMO
                                      + i]);
    }

    /*
     * the identity provider's series go here when it is fetched from a
     * remote location: grpc_guard_jwks_age_seconds,
     * grpc_guard_remote_requests_total{kind,result} and
     * grpc_guard_remote_cache_total{kind,result}
     */

    if (ngx_http_grpc_guard_metrics_limits(out, sh) != NGX_OK
        || ngx_http_grpc_guard_metrics_nodes(out, sh) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_http_grpc_guard_metrics_reserve(out, 512);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->buf->last = ngx_sprintf(p,
                       "# HELP grpc_guard_audit_records_total Audit records "
                       "made, one per call and audit log.\n"
                       "# TYPE grpc_guard_audit_records_total counter\n"
                       "grpc_guard_audit_records_total %uA\n"
                       "# HELP grpc_guard_audit_dropped_total Audit records "
                       "lost: failed or short writes, a full disk.\n"
                       "# TYPE grpc_guard_audit_dropped_total counter\n"
                       "grpc_guard_audit_dropped_total %uA\n",
                       fixed[NGX_HTTP_GRPC_GUARD_METRIC_AUDIT_RECORDS],
                       fixed[NGX_HTTP_GRPC_GUARD_METRIC_AUDIT_DROPPED]);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_requests_total(
    ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_shctx_t *sh)
{
    u_char                                 *p;
    size_t                                  size;
    ngx_uint_t                              i, n, id, decision, reason;
    ngx_uint_t                              status;
    ngx_atomic_uint_t                       key, value;
    ngx_http_grpc_guard_metrics_shname_t   *name, **pairs;

    if (ngx_http_grpc_guard_metrics_text(out,
            "# HELP grpc_guard_requests_total Calls in guarded locations by "
            "server, service, decision, reason and final grpc-status.\n"
            "# TYPE grpc_guard_requests_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the names of the pairs by id; names added since are left out */

    n = sh->ids;

    ngx_memory_barrier();

    pairs = ngx_pcalloc(out->request->pool, n * sizeof(void *));
    if (pairs == NULL) {
        return NGX_ERROR;
    }

    for (name = sh->names; name; name = name->next) {
        if (name->id < n && name->kind == NGX_HTTP_GRPC_GUARD_METRICS_PAIR) {
            pairs[name->id] = name;
        }
    }

    for (i = 0; i <= sh->mask; i++) {

        key = sh->table[i].key;

        if (key == 0) {
            continue;
        }

        value = sh->table[i].value;

        id = (key >> 16) - 1;
        decision = (key >> 13) & 0x7;
        reason = (key >> 5) & 0xff;
        status = key & 0x1f;

        if (id >= n
            || pairs[id] == NULL
            || decision >= NGX_HTTP_GRPC_GUARD_METRICS_DECISIONS
            || reason >= NGX_HTTP_GRPC_GUARD_METRICS_REASONS
            || status >= NGX_HTTP_GRPC_GUARD_METRICS_STATUSES)
        {
            continue;
        }

        name = pairs[id];

        size = sizeof("grpc_guard_requests_total{server=\"\",service=\"\","
                      "decision=\"\",reason=\"\",grpc_status=\"\"} \n")
               + 2 * (name->len[0] + name->len[1])
               + ngx_http_grpc_guard_metrics_decisions[decision].len
               + ngx_http_grpc_guard_metrics_reasons[reason].len
               + ngx_http_grpc_guard_metrics_statuses[status].len
               + NGX_ATOMIC_T_LEN;

        p = ngx_http_grpc_guard_metrics_reserve(out, size);
        if (p == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(p, "grpc_guard_requests_total{server=\"",
                       sizeof("grpc_guard_requests_total{server=\"") - 1);
        p = ngx_http_grpc_guard_metrics_escape(p, name->data, name->len[0]);
        p = ngx_cpymem(p, "\",service=\"", sizeof("\",service=\"") - 1);
        p = ngx_http_grpc_guard_metrics_escape(p, name->data + name->len[0],
                                               name->len[1]);

        out->buf->last = ngx_sprintf(p,
                          "\",decision=\"%V\",reason=\"%V\","
                          "grpc_status=\"%V\"} %uA\n",
                          &ngx_http_grpc_guard_metrics_decisions[decision],
                          &ngx_http_grpc_guard_metrics_reasons[reason],
                          &ngx_http_grpc_guard_metrics_statuses[status],
                          value);
    }

    if (sh->lost) {
        p = ngx_http_grpc_guard_metrics_reserve(out, 256);
        if (p == NULL) {
            return NGX_ERROR;
        }

        out->buf->last = ngx_sprintf(p,
                          "grpc_guard_requests_total{server=\"other\","
                          "service=\"other\",decision=\"other\","
                          "reason=\"other\",grpc_status=\"other\"} %uA\n",
                          sh->lost);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_limits(ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_shctx_t *sh)
{
    u_char                                *p;
    ngx_uint_t                             i, header;
    ngx_http_grpc_guard_metrics_shname_t  *n;

    header = 0;

    for (n = sh->names; n; n = n->next) {

        if (n->kind != NGX_HTTP_GRPC_GUARD_METRICS_LIMIT
            || !ngx_http_grpc_guard_metrics_show(n,
                                       NGX_HTTP_GRPC_GUARD_METRICS_LIMIT_SIZE))
        {
            continue;
        }

        if (!header) {
            if (ngx_http_grpc_guard_metrics_text(out,
                    "# HELP grpc_guard_limit_total Limit checks by limit "
                    "and result (unavailable: Redis did not answer).\n"
                    "# TYPE grpc_guard_limit_total counter\n")
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            header = 1;
        }

        for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_LIMIT_SIZE; i++) {
            p = ngx_http_grpc_guard_metrics_reserve(out, 2 * n->len[0] + 128);
            if (p == NULL) {
                return NGX_ERROR;
            }

            p = ngx_cpymem(p, "grpc_guard_limit_total{limit=\"",
                           sizeof("grpc_guard_limit_total{limit=\"") - 1);
            p = ngx_http_grpc_guard_metrics_escape(p, n->data, n->len[0]);

            out->buf->last = ngx_sprintf(p, "\",result=\"%s\"} %uA\n",
                                  ngx_http_grpc_guard_metrics_limit_results[i],
                                  n->counters[i]);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_nodes(ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_shctx_t *sh)
{
    u_char                                *p, *label;
    size_t                                 len;
    ngx_uint_t                             i, family, any;
    ngx_atomic_t                          *c;
    ngx_atomic_uint_t                      total;
    ngx_http_grpc_guard_metrics_shname_t  *n;

    static char  *help[] = {
        "# HELP grpc_guard_redis_up Whether the last attempt of a worker to "
        "reach the Redis node worked (1 before the first one).\n"
        "# TYPE grpc_guard_redis_up gauge\n",

        "# HELP grpc_guard_redis_circuit_open Whether the circuit breaker of "
        "the last worker to try the Redis node is open.\n"
        "# TYPE grpc_guard_redis_circuit_open gauge\n",

        "# HELP grpc_guard_redis_latency_seconds Round trips of limiter "
        "commands to the Redis node.\n"
        "# TYPE grpc_guard_redis_latency_seconds histogram\n"
    };

    any = 0;

    for (n = sh->names; n; n = n->next) {
        if (n->kind == NGX_HTTP_GRPC_GUARD_METRICS_NODE
            && ngx_http_grpc_guard_metrics_show(n,
                                        NGX_HTTP_GRPC_GUARD_METRICS_NODE_SIZE))
        {
            any = 1;
            break;
        }
    }

    if (!any) {
        return NGX_OK;
    }

    /* the label is written once per node and family in a scratch buffer */

    for (family = 0; family < 3; family++) {

        if (ngx_http_grpc_guard_metrics_text(out, help[family]) != NGX_OK) {
            return NGX_ERROR;
        }

        for (n = sh->names; n; n = n->next) {

            if (n->kind != NGX_HTTP_GRPC_GUARD_METRICS_NODE
                || !ngx_http_grpc_guard_metrics_show(n,
                                        NGX_HTTP_GRPC_GUARD_METRICS_NODE_SIZE))
            {
                continue;
            }

            c = n->counters;

            label = ngx_pnalloc(out->request->pool, 2 * n->len[0] + 1);
            if (label == NULL) {
                return NGX_ERROR;
            }

            len = ngx_http_grpc_guard_metrics_escape(label, n->data,
                                                     n->len[0])
                  - label;

            p = ngx_http_grpc_guard_metrics_reserve(out,
                            (len + 128) * (NGX_HTTP_GRPC_GUARD_METRICS_BUCKETS
                                           + 2));
            if (p == NULL) {
                return NGX_ERROR;
            }

            if (family == 0) {
                p = ngx_sprintf(p, "grpc_guard_redis_up{node=\"%*s\"} %uA\n",
                                len, label,
                                c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_UP]);

            } else if (family == 1) {
                p = ngx_sprintf(p,
                                "grpc_guard_redis_circuit_open{node=\"%*s\"} "
                                "%uA\n",
                                len, label,
                                c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_OPEN]);

            } else {
                total = 0;

                for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_BUCKETS; i++) {
                    total += c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_BUCKET + i];

                    p = ngx_sprintf(p,
                                "grpc_guard_redis_latency_seconds_bucket{"
                                "node=\"%*s\",le=\"%s\"} %uA\n",
                                len, label, ngx_http_grpc_guard_metrics_le[i],
                                total);
                }

                p = ngx_sprintf(p,
                                "grpc_guard_redis_latency_seconds_sum{"
                                "node=\"%*s\"} %uA.%06uA\n"
                                "grpc_guard_redis_latency_seconds_count{"
                                "node=\"%*s\"} %uA\n",
                                len, label,
                                c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_SUM]
                                / 1000000,
                                c[NGX_HTTP_GRPC_GUARD_METRICS_NODE_SUM]
                                % 1000000,
                                len, label, total);
            }

            out->buf->last = p;
        }
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_grpc_guard_metrics_show(ngx_http_grpc_guard_metrics_shname_t *n,
    ngx_uint_t size)
{
    ngx_uint_t  i;

    /* a fallback is shown once something was counted in it */

    if (!n->other) {
        return 1;
    }

    for (i = 0; i < size; i++) {
        if (n->counters[i] != 0
            && (n->kind != NGX_HTTP_GRPC_GUARD_METRICS_NODE
                || i != NGX_HTTP_GRPC_GUARD_METRICS_NODE_UP))
        {
            return 1;
        }
    }

    return 0;
}


static u_char *
ngx_http_grpc_guard_metrics_reserve(ngx_http_grpc_guard_metrics_out_t *out,
    size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = out->buf;

    if (b && (size_t) (b->end - b->last) >= size) {
        return b->last;
    }

    size = ngx_max(size, NGX_HTTP_GRPC_GUARD_METRICS_OUT_SIZE);

    b = ngx_create_temp_buf(out->request->pool, size);
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(out->request->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    *out->last = cl;
    out->last = &cl->next;
    out->buf = b;

    return b->last;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_text(ngx_http_grpc_guard_metrics_out_t *out,
    char *text)
{
    u_char  *p;
    size_t   len;

    len = ngx_strlen(text);

    p = ngx_http_grpc_guard_metrics_reserve(out, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->buf->last = ngx_cpymem(p, text, len);

    return NGX_OK;
}


static u_char *
ngx_http_grpc_guard_metrics_escape(u_char *p, u_char *src, size_t len)
{
    u_char  c;

    /* a label value: backslash, double quote and newline are escaped */

    while (len--) {
        c = *src++;

        if (c == '\\' || c == '"') {
            *p++ = '\\';
            *p++ = c;

        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = c;
        }
    }

    return p;
}


char *
ngx_http_grpc_guard_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_grpc_guard_metrics_loc_t   *lm;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    mm = ngx_http_grpc_guard_metrics_main(cf);
    lm = ngx_http_grpc_guard_metrics_loc(cf, glcf);

    if (mm == NULL || lm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lm->handler) {
        return "is duplicate";
    }

    lm->handler = 1;
    mm->enabled = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_grpc_guard_metrics_handler;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ssize_t                              size;
    ngx_str_t                           *value;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    mm = ngx_http_grpc_guard_metrics_main(cf);
    if (mm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mm->size) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone size \"%V\" is too small, it must be at "
                           "least %uzk", &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    mm->size = size;
    mm->enabled = 1;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_metrics_requests(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_str_t                          *value;
    ngx_http_grpc_guard_metrics_loc_t  *lm;

    lm = ngx_http_grpc_guard_metrics_loc(cf, glcf);
    if (lm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lm->requests != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        lm->requests = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        lm->requests = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"on\" or "
                           "\"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_metrics_services(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char                             *p;
    ngx_str_t                          *value, *s;
    ngx_uint_t                          i;
    ngx_http_grpc_guard_metrics_loc_t  *lm;

    lm = ngx_http_grpc_guard_metrics_loc(cf, glcf);
    if (lm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lm->services == NGX_CONF_UNSET_PTR) {
        lm->services = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (lm->services == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        /* a service as gRPC names it: "pkg.Service", no "/" */

        for (p = value[i].data; p < value[i].data + value[i].len; p++) {
            if (*p <= 0x20 || *p >= 0x7f || *p == '/' || *p == '"'
                || *p == '\\')
            {
                break;
            }
        }

        if (value[i].len == 0
            || value[i].len > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME
            || p != value[i].data + value[i].len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid service name \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(lm->services);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_http_grpc_guard_metrics_name(ngx_conf_t *cf, ngx_uint_t kind,
    ngx_str_t *name)
{
    ngx_uint_t                           index;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    /*
     * a limit or a Redis node of the configuration: its number for
     * ngx_http_grpc_guard_metrics_limit() and _redis(); a number past
     * the end (nothing is counted) when there is no memory
     */

    mm = ngx_http_grpc_guard_metrics_main(cf);

    if (mm == NULL
        || ngx_http_grpc_guard_metrics_find(cf, mm, kind, name, NULL, &index)
           == NULL)
    {
        return NGX_HTTP_GRPC_GUARD_METRICS_NONE;
    }

    return index;
}


char *
ngx_http_grpc_guard_metrics_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_str_t                               *s, *sp, server;
    ngx_uint_t                               i, j;
    ngx_array_t                              services;
    ngx_http_core_srv_conf_t                *cscf;
    ngx_http_core_loc_conf_t                *clcf;
    ngx_http_grpc_guard_pattern_t           *pattern;
    ngx_http_grpc_guard_main_conf_t         *gmcf;
    ngx_http_grpc_guard_metrics_loc_t       *lm, *pm, *m;
    ngx_http_grpc_guard_metrics_main_t      *mm;
    ngx_http_grpc_guard_metrics_service_t   *t;

    static ngx_http_grpc_guard_metrics_loc_t  unset = {
        NGX_CONF_UNSET, NGX_CONF_UNSET_PTR, NULL, 0, NULL, 0, 0
    };

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);
    mm = gmcf->metrics;

    if (mm == NULL || !mm->enabled) {
        conf->metrics = NULL;
        return NGX_CONF_OK;
    }

    lm = conf->metrics;
    pm = prev->metrics;

    /* every level gets its own record: the table is the location's */

    m = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_loc_t));
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    m->requests = lm ? lm->requests : NGX_CONF_UNSET;
    m->services = lm ? lm->services : NGX_CONF_UNSET_PTR;
    m->handler = lm ? lm->handler : 0;

    if (pm == NULL) {
        pm = &unset;
    }

    ngx_conf_merge_value(m->requests, pm->requests, 1);
    ngx_conf_merge_ptr_value(m->services, pm->services, NULL);

    conf->metrics = m;

    if (m->handler && conf->enable) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_metrics\" is in a location where "
                           "the guard is on: add \"grpc_guard off;\" to it");
        return NGX_CONF_ERROR;
    }

    if (!conf->enable || !m->requests) {
        return NGX_CONF_OK;
    }

    /*
     * the services the location names get their own series: those of
     * grpc_guard_metrics_services, of the public and ACL patterns, and
     * of the location's own prefix ("/pkg.Service/"); other calls are
     * counted as service "other"
     */

    if (ngx_array_init(&services, cf->temp_pool, 8, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (m->services) {
        s = m->services->elts;

        for (i = 0; i < m->services->nelts; i++) {
            sp = ngx_array_push(&services);
            if (sp == NULL) {
                return NGX_CONF_ERROR;
            }

            *sp = s[i];
        }
    }

    if (conf->public) {
        pattern = conf->public->elts;

        for (i = 0; i < conf->public->nelts; i++) {
            if (ngx_http_grpc_guard_metrics_add_service(&services,
                                                        &pattern[i].text)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }
    }

    if (conf->acl_rules) {
        for (i = 0; i < conf->acl_rules->nelts; i++) {
            pattern = ngx_http_grpc_guard_acl_pattern(conf->acl_rules, i);

            if (ngx_http_grpc_guard_metrics_add_service(&services,
                                                        &pattern->text)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (!clcf->named && !clcf->noname
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && ngx_http_grpc_guard_metrics_add_service(&services, &clcf->name)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_qsort(services.elts, services.nelts, sizeof(ngx_str_t),
              ngx_http_grpc_guard_metrics_cmp_service);

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    server = cscf->server_name;

    if (server.len > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME) {
        server.len = NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME;
    }

    m->table = ngx_palloc(cf->pool, (services.nelts + 1)
                              * sizeof(ngx_http_grpc_guard_metrics_service_t));
    if (m->table == NULL) {
        return NGX_CONF_ERROR;
    }

    s = services.elts;
    t = m->table;
    j = 0;

    for (i = 0; i < services.nelts; i++) {

        if (j && s[i].len == t[j - 1].service.len
            && ngx_strncmp(s[i].data, t[j - 1].service.data, s[i].len) == 0)
        {
            continue;
        }

        t[j].service = s[i];
        t[j].pair = ngx_http_grpc_guard_metrics_find(cf, mm,
                                          NGX_HTTP_GRPC_GUARD_METRICS_PAIR,
                                          &server, &s[i], NULL);
        if (t[j].pair == NULL) {
            return NGX_CONF_ERROR;
        }

        j++;
    }

    m->ntable = j;

    m->other = ngx_http_grpc_guard_metrics_find(cf, mm,
                                            NGX_HTTP_GRPC_GUARD_METRICS_PAIR,
                                            &server,
                                            &ngx_http_grpc_guard_metrics_other,
                                            NULL);
    if (m->other == NULL) {
        return NGX_CONF_ERROR;
    }

    m->count = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_add_service(ngx_array_t *a, ngx_str_t *text)
{
    u_char     *p, *last;
    ngx_str_t  *s;

    /* "/pkg.Service/..." names "pkg.Service"; "/pkg.*" or "*" none */

    if (text->len < 3 || text->data[0] != '/') {
        return NGX_OK;
    }

    last = text->data + text->len;

    for (p = text->data + 1; p < last && *p != '/'; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
            return NGX_OK;
        }
    }

    if (p == last
        || p == text->data + 1
        || p - text->data - 1 > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME)
    {
        return NGX_OK;
    }

    s = ngx_array_push(a);
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->data = text->data + 1;
    s->len = p - s->data;

    return NGX_OK;
}


static int
ngx_http_grpc_guard_metrics_cmp_service(const void *one, const void *two)
{
    ngx_str_t  *a = (ngx_str_t *) one;
    ngx_str_t  *b = (ngx_str_t *) two;

    return (int) ngx_memn2cmp(a->data, b->data, a->len, b->len);
}


static ngx_http_grpc_guard_metrics_main_t *
ngx_http_grpc_guard_metrics_main(ngx_conf_t *cf)
{
    ngx_uint_t                           i;
    ngx_http_grpc_guard_main_conf_t     *gmcf;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);

    if (gmcf->metrics) {
        return gmcf->metrics;
    }

    mm = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_main_t));
    if (mm == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mm->size = 0;
     *     mm->enabled = 0;
     *     mm->zone = NULL;
     *     mm->sh = NULL;
     */

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_KINDS; i++) {
        if (ngx_array_init(&mm->names[i], cf->pool, 8, sizeof(void *))
            != NGX_OK)
        {
            return NULL;
        }
    }

    gmcf->metrics = mm;

    return mm;
}


static ngx_http_grpc_guard_metrics_loc_t *
ngx_http_grpc_guard_metrics_loc(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *glcf)
{
    ngx_http_grpc_guard_metrics_loc_t  *lm;

    /* the level's own settings, made by its first metrics directive */

    if (glcf->metrics) {
        return glcf->metrics;
    }

    lm = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_loc_t));
    if (lm == NULL) {
        return NULL;
    }

    lm->requests = NGX_CONF_UNSET;
    lm->services = NGX_CONF_UNSET_PTR;

    glcf->metrics = lm;

    return lm;
}


static ngx_http_grpc_guard_metrics_name_t *
ngx_http_grpc_guard_metrics_find(ngx_conf_t *cf,
    ngx_http_grpc_guard_metrics_main_t *mm, ngx_uint_t kind,
    ngx_str_t *name0, ngx_str_t *name1, ngx_uint_t *index)
{
    ngx_str_t                             none;
    ngx_uint_t                            i;
    ngx_http_grpc_guard_metrics_name_t   *n, **names, **np;

    ngx_str_null(&none);

    if (name1 == NULL) {
        name1 = &none;
    }

    names = mm->names[kind].elts;

    for (i = 0; i < mm->names[kind].nelts; i++) {
        n = names[i];

        if (n->name[0].len == name0->len
            && n->name[1].len == name1->len
            && ngx_strncmp(n->name[0].data, name0->data, name0->len) == 0
            && ngx_strncmp(n->name[1].data, name1->data, name1->len) == 0)
        {
            goto found;
        }
    }

    n = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_name_t));
    if (n == NULL) {
        return NULL;
    }

    np = ngx_array_push(&mm->names[kind]);
    if (np == NULL) {
        return NULL;
    }

    *np = n;

    n->kind = kind;
    n->name[0] = *name0;
    n->name[1] = *name1;

    if (n->name[0].len > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME) {
        n->name[0].len = NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME;
    }

found:

    if (index) {
        *index = i;
    }

    return n;
}


ngx_int_t
ngx_http_grpc_guard_metrics_init(ngx_conf_t *cf)
{
    ngx_uint_t                           i;
    ngx_http_handler_pt                 *h;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_grpc_guard_main_conf_t     *gmcf;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);
    mm = gmcf->metrics;

    if (mm == NULL || !mm->enabled) {
        return NGX_OK;
    }

    /* the reasons are looked up with a binary search */

    for (i = 2; i < NGX_HTTP_GRPC_GUARD_METRICS_REASONS - 1; i++) {
        if (ngx_memn2cmp(ngx_http_grpc_guard_metrics_reasons[i - 1].data,
                         ngx_http_grpc_guard_metrics_reasons[i].data,
                         ngx_http_grpc_guard_metrics_reasons[i - 1].len,
                         ngx_http_grpc_guard_metrics_reasons[i].len)
            >= 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc guard metrics: reason \"%V\" is out "
                               "of order",
                               &ngx_http_grpc_guard_metrics_reasons[i]);
            return NGX_ERROR;
        }
    }

    if (mm->size == 0) {
        mm->size = 1024 * 1024;
    }

    mm->zone = ngx_shared_memory_add(cf,
                                     &ngx_http_grpc_guard_metrics_zone_name,
                                     mm->size, &ngx_http_grpc_guard_module);
    if (mm->zone == NULL) {
        return NGX_ERROR;
    }

    mm->zone->init = ngx_http_grpc_guard_metrics_init_zone;
    mm->zone->data = mm;

    /* the calls are counted in the log phase, when their status is known */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_grpc_guard_metrics_log_handler;

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_metrics_init_module(ngx_cycle_t *cycle)
{
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_grpc_guard_module);

    if (gmcf && gmcf->metrics && gmcf->metrics->zone) {
        ngx_http_grpc_guard_metrics = gmcf->metrics;

    } else {
        ngx_http_grpc_guard_metrics = NULL;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_grpc_guard_metrics_main_t  *omm = data;

    size_t                                n, size;
    ngx_uint_t                            kind;
    ngx_slab_pool_t                      *shpool;
    ngx_http_grpc_guard_metrics_main_t   *mm;
    ngx_http_grpc_guard_metrics_shctx_t  *sh;

    mm = shm_zone->data;

    if (omm) {

        /* a reload: the counters go on */

        if (omm->sh->layout != ngx_http_grpc_guard_metrics_layout()) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "the \"%V\" zone was made by another version of "
                          "the module: change grpc_guard_metrics_zone's "
                          "size to start new counters", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        mm->sh = omm->sh;
        mm->shpool = omm->shpool;

        return ngx_http_grpc_guard_metrics_resolve(shm_zone, mm);
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    mm->shpool = shpool;

    if (shm_zone->shm.exists) {
        mm->sh = shpool->data;
        return ngx_http_grpc_guard_metrics_resolve(shm_zone, mm);
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_grpc_guard_metrics_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    mm->sh = sh;

    sh->layout = ngx_http_grpc_guard_metrics_layout();

    size = sizeof(" in grpc_guard_metrics_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, size);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in grpc_guard_metrics_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* the zone says itself when it is full */

    shpool->log_nomem = 0;

    /* what a name is counted as when there is no room for it */

    for (kind = 0; kind < NGX_HTTP_GRPC_GUARD_METRICS_KINDS; kind++) {
        sh->other[kind] = ngx_http_grpc_guard_metrics_shname(mm, kind,
                                 &ngx_http_grpc_guard_metrics_other,
                                 (kind == NGX_HTTP_GRPC_GUARD_METRICS_PAIR)
                                 ? &ngx_http_grpc_guard_metrics_other : NULL);
        if (sh->other[kind] == NULL) {
            return NGX_ERROR;
        }

        sh->other[kind]->other = 1;
    }

    /*
     * the table of calls takes half of the zone, the names the rest; a
     * small zone has less room than it says (its pages cost some)
     */

    n = shm_zone->shm.size / 2 / sizeof(ngx_http_grpc_guard_metrics_entry_t);

    for (size = 64; size * 2 <= n; size *= 2) {
        /* void */
    }

    for ( ;; ) {
        sh->table = ngx_slab_calloc(shpool,
                            size * sizeof(ngx_http_grpc_guard_metrics_entry_t));

        if (sh->table || size == 64) {
            break;
        }

        size /= 2;
    }

    if (sh->table == NULL) {
        return NGX_ERROR;
    }

    sh->mask = size - 1;

    return ngx_http_grpc_guard_metrics_resolve(shm_zone, mm);
}


static ngx_int_t
ngx_http_grpc_guard_metrics_resolve(ngx_shm_zone_t *shm_zone,
    ngx_http_grpc_guard_metrics_main_t *mm)
{
    ngx_uint_t                             i, kind, full;
    ngx_http_grpc_guard_metrics_name_t   **names;
    ngx_http_grpc_guard_metrics_shname_t  *sn;

    /* each name of the configuration finds its counters, or gets them */

    full = 0;

    for (kind = 0; kind < NGX_HTTP_GRPC_GUARD_METRICS_KINDS; kind++) {

        names = mm->names[kind].elts;

        for (i = 0; i < mm->names[kind].nelts; i++) {

            sn = ngx_http_grpc_guard_metrics_shname(mm, kind,
                                                    &names[i]->name[0],
                                                    &names[i]->name[1]);
            if (sn == NULL) {
                sn = mm->sh->other[kind];
                full++;
            }

            names[i]->id = sn->id;
            names[i]->counters = sn->counters;
        }
    }

    if (full) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "the \"%V\" zone is full: %ui names of the "
                      "configuration are counted as \"other\"",
                      &shm_zone->shm.name, full);
    }

    return NGX_OK;
}


static ngx_http_grpc_guard_metrics_shname_t *
ngx_http_grpc_guard_metrics_shname(ngx_http_grpc_guard_metrics_main_t *mm,
    ngx_uint_t kind, ngx_str_t *name0, ngx_str_t *name1)
{
    size_t                                 size, len1, counters;
    ngx_http_grpc_guard_metrics_shctx_t   *sh;
    ngx_http_grpc_guard_metrics_shname_t  *sn;

    sh = mm->sh;
    len1 = name1 ? name1->len : 0;

    for (sn = sh->names; sn; sn = sn->next) {
        if (sn->kind == kind
            && !sn->other
            && sn->len[0] == name0->len
            && sn->len[1] == len1
            && ngx_memcmp(sn->data, name0->data, name0->len) == 0
            && (len1 == 0
                || ngx_memcmp(sn->data + sn->len[0], name1->data, len1) == 0))
        {
            return sn;
        }
    }

    switch (kind) {

    case NGX_HTTP_GRPC_GUARD_METRICS_LIMIT:
        counters = NGX_HTTP_GRPC_GUARD_METRICS_LIMIT_SIZE;
        break;

    case NGX_HTTP_GRPC_GUARD_METRICS_NODE:
        counters = NGX_HTTP_GRPC_GUARD_METRICS_NODE_SIZE;
        break;

    default: /* NGX_HTTP_GRPC_GUARD_METRICS_PAIR */
        counters = 0;
        break;
    }

    size = offsetof(ngx_http_grpc_guard_metrics_shname_t, data)
           + name0->len + len1;
    size = ngx_align(size, sizeof(ngx_atomic_t));

    /* only the master process allocates, while it loads a configuration */

    ngx_shmtx_lock(&mm->shpool->mutex);

    sn = ngx_slab_calloc_locked(mm->shpool,
                                size + counters * sizeof(ngx_atomic_t));

    ngx_shmtx_unlock(&mm->shpool->mutex);

    if (sn == NULL) {
        return NULL;
    }

    sn->kind = kind;
    sn->id = sh->ids;
    sn->len[0] = name0->len;
    sn->len[1] = len1;

    ngx_memcpy(sn->data, name0->data, name0->len);

    if (len1) {
        ngx_memcpy(sn->data + name0->len, name1->data, len1);
    }

    if (counters) {
        sn->counters = (ngx_atomic_t *) ((u_char *) sn + size);
    }

    if (kind == NGX_HTTP_GRPC_GUARD_METRICS_NODE) {
        sn->counters[NGX_HTTP_GRPC_GUARD_METRICS_NODE_UP] = 1;
    }

    /* the workers read the list as it grows: the name is complete first */

    ngx_memory_barrier();

    if (sh->last) {
        sh->last->next = sn;

    } else {
        sh->names = sn;
    }

    sh->last = sn;
    sh->ids++;

    return sn;
}


static uint32_t
ngx_http_grpc_guard_metrics_layout(void)
{
    uint32_t    crc;
    ngx_uint_t  i, sizes[5];

    /* what a key and the fixed counters mean, as this module says it */

    ngx_crc32_init(crc);

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_REASONS; i++) {
        ngx_crc32_update(&crc, ngx_http_grpc_guard_metrics_reasons[i].data,
                         ngx_http_grpc_guard_metrics_reasons[i].len);
        ngx_crc32_update(&crc, (u_char *) "\n", 1);
    }

    sizes[0] = NGX_HTTP_GRPC_GUARD_METRICS_FIXED;
    sizes[1] = NGX_HTTP_GRPC_GUARD_METRICS_DECISIONS;
    sizes[2] = NGX_HTTP_GRPC_GUARD_METRICS_STATUSES;
    sizes[3] = NGX_HTTP_GRPC_GUARD_METRICS_NODE_SIZE;
    sizes[4] = sizeof(ngx_http_grpc_guard_metrics_shctx_t);

    ngx_crc32_update(&crc, (u_char *) sizes, sizeof(sizes));

    ngx_crc32_final(crc);

    return crc;
}
