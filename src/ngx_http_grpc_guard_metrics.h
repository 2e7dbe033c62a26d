
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * What the metrics files (ngx_http_grpc_guard_metrics*.c) share: the
 * layout of the zone, the names and counters, and the tables and
 * functions one of them gives the others.
 */


#ifndef _NGX_HTTP_GRPC_GUARD_METRICS_H_INCLUDED_
#define _NGX_HTTP_GRPC_GUARD_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * The zone holds
 *
 *   - fixed counters: JWT cache, audit records, authentication results,
 *     remote fetches and lookups of their results;
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

/*
 * authentication: jwt, api_key, mtls, introspection; success, missing,
 * failure
 */
#define NGX_HTTP_GRPC_GUARD_METRICS_METHODS     4
#define NGX_HTTP_GRPC_GUARD_METRICS_RESULTS     3
#define NGX_HTTP_GRPC_GUARD_METRICS_AUTH        NGX_HTTP_GRPC_GUARD_METRIC_FIXED

/* remote fetches: by kind, NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_* */
#define NGX_HTTP_GRPC_GUARD_METRICS_REMOTE                                    \
    (NGX_HTTP_GRPC_GUARD_METRICS_AUTH                                         \
     + NGX_HTTP_GRPC_GUARD_METRICS_METHODS                                    \
       * NGX_HTTP_GRPC_GUARD_METRICS_RESULTS)

#define NGX_HTTP_GRPC_GUARD_METRICS_FIXED                                     \
    (NGX_HTTP_GRPC_GUARD_METRICS_REMOTE                                       \
     + NGX_HTTP_GRPC_GUARD_REMOTE_KINDS                                       \
       * NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_RESULTS)

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


/* the reason codes the module gives: ngx_http_grpc_guard_metrics_reasons */
#define NGX_HTTP_GRPC_GUARD_METRICS_REASONS     54


ngx_int_t ngx_http_grpc_guard_metrics_log_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_grpc_guard_metrics_handler(ngx_http_request_t *r);


extern ngx_str_t  ngx_http_grpc_guard_metrics_reasons[
    NGX_HTTP_GRPC_GUARD_METRICS_REASONS];
extern ngx_str_t  ngx_http_grpc_guard_metrics_decisions[
    NGX_HTTP_GRPC_GUARD_METRICS_DECISIONS];
extern ngx_str_t  ngx_http_grpc_guard_metrics_zone_name;
extern ngx_http_grpc_guard_metrics_main_t  *ngx_http_grpc_guard_metrics;


#endif /* _NGX_HTTP_GRPC_GUARD_METRICS_H_INCLUDED_ */
