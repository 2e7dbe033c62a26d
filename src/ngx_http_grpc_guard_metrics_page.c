
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Metrics, the page: grpc_guard_metrics answers the counters of the zone,
 * summed over the workers, in Prometheus text exposition format 0.0.4.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_metrics.h"


static ngx_int_t ngx_http_grpc_guard_metrics_write(
    ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_main_t *mm);
static ngx_int_t ngx_http_grpc_guard_metrics_requests_total(
    ngx_http_grpc_guard_metrics_out_t *out,
    ngx_http_grpc_guard_metrics_shctx_t *sh);
static ngx_int_t ngx_http_grpc_guard_metrics_remote_series(
    ngx_http_grpc_guard_metrics_out_t *out, ngx_atomic_t *fixed);
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


static ngx_str_t  ngx_http_grpc_guard_metrics_statuses[] = {
    ngx_string("0"), ngx_string("1"), ngx_string("2"), ngx_string("3"),
    ngx_string("4"), ngx_string("5"), ngx_string("6"), ngx_string("7"),
    ngx_string("8"), ngx_string("9"), ngx_string("10"), ngx_string("11"),
    ngx_string("12"), ngx_string("13"), ngx_string("14"), ngx_string("15"),
    ngx_string("16"), ngx_string("other"), ngx_string("none")
};


/* in the order of NGX_HTTP_GRPC_GUARD_AUTH_* bits */

static char  *ngx_http_grpc_guard_metrics_methods[] = {
    "jwt", "api_key", "mtls", "introspection"
};


static char  *ngx_http_grpc_guard_metrics_auth_results[] = {
    "success", "missing", "failure"
};


static char  *ngx_http_grpc_guard_metrics_jwt_results[] = {
    "hit_connection", "hit_shared", "miss"
};


/* NGX_HTTP_GRPC_GUARD_REMOTE_* and NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_* */

static char  *ngx_http_grpc_guard_metrics_remote_kinds[] = {
    "jwks", "introspection", "authz"
};


static char  *ngx_http_grpc_guard_metrics_remote_results[] = {
    "ok", "failed", "hit", "wait", "unavailable"
};


static char  *ngx_http_grpc_guard_metrics_limit_results[] = {
    "passed", "limited", "unavailable"
};


static char  *ngx_http_grpc_guard_metrics_le[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "+Inf"
};


ngx_int_t
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

    if (ngx_http_grpc_guard_metrics_remote_series(out, fixed) != NGX_OK
        || ngx_http_grpc_guard_metrics_limits(out, sh) != NGX_OK
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
ngx_http_grpc_guard_metrics_remote_series(
    ngx_http_grpc_guard_metrics_out_t *out, ngx_atomic_t *fixed)
{
    u_char      *p;
    ngx_int_t    rc;
    ngx_str_t   *uri;
    ngx_msec_t   age;
    ngx_uint_t   i, j, kind, kinds, header;

    /*
     * only what the configuration fetches: the age of each JWK Set that
     * was fetched (a set never fetched has no age, and no series), then
     * the counters of each kind fetched
     */

    kinds = 0;
    header = 0;

    for (i = 0; /* void */ ; i++) {

        rc = ngx_http_grpc_guard_remote_age(out->request, i, &kind, &uri,
                                            &age);
        if (rc == NGX_DONE) {
            break;
        }

        kinds |= (ngx_uint_t) 1 << kind;

        if (rc != NGX_OK || kind != NGX_HTTP_GRPC_GUARD_REMOTE_JWKS) {
            continue;
        }

        if (!header) {
            if (ngx_http_grpc_guard_metrics_text(out,
                    "# HELP grpc_guard_jwks_age_seconds Seconds since the "
                    "JWK Set in use was fetched, by "
                    "grpc_guard_jwt_key_request URI.\n"
                    "# TYPE grpc_guard_jwks_age_seconds gauge\n")
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            header = 1;
        }

        p = ngx_http_grpc_guard_metrics_reserve(out, 2 * uri->len + 128);
        if (p == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(p, "grpc_guard_jwks_age_seconds{uri=\"",
                       sizeof("grpc_guard_jwks_age_seconds{uri=\"") - 1);
        p = ngx_http_grpc_guard_metrics_escape(p, uri->data, uri->len);

        out->buf->last = ngx_sprintf(p, "\"} %M.%03M\n",
                                     age / 1000, age % 1000);
    }

    if (kinds == 0) {
        return NGX_OK;
    }

    if (ngx_http_grpc_guard_metrics_text(out,
            "# HELP grpc_guard_remote_requests_total Fetches (subrequests) "
            "the guard made, by kind and result (failed: no usable "
            "reply).\n"
            "# TYPE grpc_guard_remote_requests_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_REMOTE_KINDS; i++) {

        if (!(kinds & ((ngx_uint_t) 1 << i))) {
            continue;
        }

        for (j = NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_OK;
             j <= NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_FAILED;
             j++)
        {
            p = ngx_http_grpc_guard_metrics_reserve(out, 128);
            if (p == NULL) {
                return NGX_ERROR;
            }

            out->buf->last = ngx_sprintf(p,
                              "grpc_guard_remote_requests_total{kind=\"%s\","
                              "result=\"%s\"} %uA\n",
                              ngx_http_grpc_guard_metrics_remote_kinds[i],
                              ngx_http_grpc_guard_metrics_remote_results[j],
                              fixed[NGX_HTTP_GRPC_GUARD_METRICS_REMOTE
                                    + i
                                    * NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_RESULTS
                                    + j]);
        }
    }

    if (ngx_http_grpc_guard_metrics_text(out,
            "# HELP grpc_guard_remote_cache_total Calls that looked for a "
            "fetched result, by kind and result (hit: served at once; "
            "wait: waited for a fetch; unavailable: no result).\n"
            "# TYPE grpc_guard_remote_cache_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_REMOTE_KINDS; i++) {

        if (!(kinds & ((ngx_uint_t) 1 << i))) {
            continue;
        }

        for (j = NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_HIT;
             j < NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_RESULTS;
             j++)
        {
            p = ngx_http_grpc_guard_metrics_reserve(out, 128);
            if (p == NULL) {
                return NGX_ERROR;
            }

            out->buf->last = ngx_sprintf(p,
                              "grpc_guard_remote_cache_total{kind=\"%s\","
                              "result=\"%s\"} %uA\n",
                              ngx_http_grpc_guard_metrics_remote_kinds[i],
                              ngx_http_grpc_guard_metrics_remote_results[j],
                              fixed[NGX_HTTP_GRPC_GUARD_METRICS_REMOTE
                                    + i
                                    * NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_RESULTS
                                    + j]);
        }
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
