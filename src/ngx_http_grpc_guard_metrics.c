
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Metrics, the counting: counters in a shared zone that every worker adds
 * to with atomic operations, in the log phase and where the other
 * concerns call in.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_metrics.h"


static ngx_http_grpc_guard_metrics_name_t *ngx_http_grpc_guard_metrics_pair(
    ngx_http_grpc_guard_metrics_loc_t *lm, ngx_str_t *service);
static ngx_uint_t ngx_http_grpc_guard_metrics_decision(ngx_str_t *decision);
static ngx_uint_t ngx_http_grpc_guard_metrics_reason(ngx_str_t *reason);
static void ngx_http_grpc_guard_metrics_count(ngx_http_request_t *r,
    ngx_http_grpc_guard_metrics_shctx_t *sh, ngx_uint_t pair,
    ngx_atomic_uint_t outcome);


/*
 * the reason codes the module gives, sorted (they are looked up with a
 * binary search); a reason not listed here is counted as "other"
 */

ngx_str_t  ngx_http_grpc_guard_metrics_reasons[] = {
    ngx_string("none"),
    ngx_string("acl_default_deny"),
    ngx_string("acl_deny_rule"),
    ngx_string("acl_unauthenticated"),
    ngx_string("api_key_duplicate"),
    ngx_string("api_key_expired"),
    ngx_string("api_key_missing"),
    ngx_string("api_key_unknown"),
    ngx_string("authz_denied"),
    ngx_string("authz_unavailable"),
    ngx_string("bad_request"),
    ngx_string("body_too_large"),
    ngx_string("deadline_malformed"),
    ngx_string("deadline_missing"),
    ngx_string("http_error"),
    ngx_string("internal_error"),
    ngx_string("introspection_unavailable"),
    ngx_string("jwks_unavailable"),
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
    ngx_string("token_inactive"),
    ngx_string("token_malformed"),
    ngx_string("token_missing"),
    ngx_string("upstream_timeout"),
    ngx_string("upstream_unavailable"),
    ngx_string("other")
};


ngx_str_t  ngx_http_grpc_guard_metrics_decisions[] = {
    ngx_string("none"),
    ngx_string("allow"),
    ngx_string("deny"),
    ngx_string("dry_run_deny"),
    ngx_string("public"),
    ngx_string("other")
};


/* the upper bounds of the latency buckets, in us and as printed */

static ngx_uint_t  ngx_http_grpc_guard_metrics_bounds[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000
};


/*
 * the zone and the names of the running configuration: set in every
 * process when a configuration is in effect (init_module runs once the
 * new cycle can no longer fail), for the calls that have no request
 */

ngx_http_grpc_guard_metrics_main_t  *ngx_http_grpc_guard_metrics;


ngx_int_t
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

    case NGX_HTTP_GRPC_GUARD_AUTH_MTLS:
        m = 2;
        break;

    default: /* NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION */
        m = 3;
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


void
ngx_http_grpc_guard_metrics_remote(ngx_uint_t kind, ngx_uint_t result)
{
    /* a fetch that ended, or a call that looked for its result */

    if (ngx_http_grpc_guard_metrics == NULL
        || kind >= NGX_HTTP_GRPC_GUARD_REMOTE_KINDS)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_grpc_guard_metrics->sh->fixed[
                              NGX_HTTP_GRPC_GUARD_METRICS_REMOTE
                              + kind * NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_RESULTS
                              + result],
                                1);
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
