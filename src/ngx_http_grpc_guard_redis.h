
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


#ifndef _NGX_HTTP_GRPC_GUARD_REDIS_H_INCLUDED_
#define _NGX_HTTP_GRPC_GUARD_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"


/*
 * What the Redis client (ngx_http_grpc_guard_redis.c), its directive
 * (ngx_http_grpc_guard_redis_conf.c) and the topology code
 * (ngx_http_grpc_guard_redis_topology.c: which server is the master)
 * share.
 */


#define NGX_HTTP_GRPC_GUARD_REDIS_DOWN          0
#define NGX_HTTP_GRPC_GUARD_REDIS_CONNECTING    1
#define NGX_HTTP_GRPC_GUARD_REDIS_TLS           2
#define NGX_HTTP_GRPC_GUARD_REDIS_HANDSHAKE     3
#define NGX_HTTP_GRPC_GUARD_REDIS_READY         4

/* what a pending command is */

#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_CALL      0
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_AUTH      1
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_SELECT    2
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_SCRIPT    3
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_ROLE      4
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_PING      5
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_BATCH     6   /* checks, one script */
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_CLUSTER   7   /* a call over nodes */

/* what a connection is for */

#define NGX_HTTP_GRPC_GUARD_REDIS_DATA          0   /* the limiter's calls */
#define NGX_HTTP_GRPC_GUARD_REDIS_SENTINEL      1

#define NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MAX   2000

/* consecutive timed out commands that make a connection suspect */
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_TIMEOUTS  3

#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_PENDING   4096
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_OUTPUT    (1024 * 1024)
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_FREE      256
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS      64
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_KEEPALIVE 64

/* checks in one script call, and their arguments' bytes */
#define NGX_HTTP_GRPC_GUARD_REDIS_BATCH_CALLS   64
#define NGX_HTTP_GRPC_GUARD_REDIS_BATCH_SIZE    (64 * 1024)
/* batches in flight on a connection: MAX_PENDING checks */
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_BATCHES   64


typedef struct ngx_http_grpc_guard_redis_conn_s
    ngx_http_grpc_guard_redis_conn_t;
typedef struct ngx_http_grpc_guard_sentinel_s
    ngx_http_grpc_guard_sentinel_t;
typedef struct ngx_http_grpc_guard_cluster_s
    ngx_http_grpc_guard_cluster_t;

/* a reply that answers no command: a message of a subscription */
typedef void (*ngx_http_grpc_guard_redis_push_pt)(
    ngx_http_grpc_guard_redis_conn_t *conn, redisReply *reply);

/* a sentinel connection was closed */
typedef void (*ngx_http_grpc_guard_redis_closed_pt)(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t failed);


struct ngx_http_grpc_guard_redis_cmd_s {
    ngx_queue_t                            queue;
    ngx_event_t                            timer;
    ngx_http_grpc_guard_redis_conn_t      *conn;

    /* NULL when nobody waits for the reply any more */
    ngx_http_grpc_guard_redis_handler_pt   handler;
    void                                  *data;

    /* the caller's arguments, kept for a NOSCRIPT retry */
    ngx_uint_t                             argc;
    ngx_str_t                             *argv;

    /* a check: what its arguments take in a batch, at most */
    size_t                                 size;

    /* a batch: its checks, in the order of the script's arguments */
    ngx_queue_t                            checks;
    ngx_uint_t                             nchecks;

    ngx_uint_t                             type;
    uint64_t                               start;   /* for the metrics */
    unsigned                               retried:1;
    unsigned                               waiting:1;   /* not sent yet */
};


struct ngx_http_grpc_guard_redis_conn_s {
    ngx_peer_connection_t                  peer;
    ngx_http_grpc_guard_redis_t           *redis;
    ngx_log_t                              log;
    redisReader                           *reader;

    /* where to connect: set by the owner before connecting */
    struct sockaddr                       *sockaddr;
    socklen_t                              socklen;
    ngx_str_t                             *name;
    ngx_str_t                             *password;    /* AUTH, or empty */

    ngx_uint_t                             kind;
    ngx_http_grpc_guard_redis_push_pt      push;
    ngx_http_grpc_guard_redis_closed_pt    closed;

    u_char                                *start;   /* output buffer */
    u_char                                *pos;
    u_char                                *last;
    u_char                                *end;

    ngx_queue_t                            pending;
    ngx_uint_t                             npending;

    /*
     * checks not sent yet: while a batch is in flight, the calls that
     * come meanwhile wait here and go in the next batch
     */
    ngx_queue_t                            waiting;
    ngx_uint_t                             nwaiting;
    ngx_uint_t                             nbatches;    /* in flight */
    ngx_uint_t                             state;
    ngx_uint_t                             timeouts;
    ngx_uint_t                             generation;

#if (NGX_SSL)
    /* the name verified when tls_name= is not given: the address */
    ngx_str_t                              tls_name;
    u_char                                 tls_addr[NGX_SOCKADDR_STRLEN + 1];
#endif
};


struct ngx_http_grpc_guard_redis_s {
    ngx_str_t                              name;    /* the master's */
    ngx_uint_t                             metrics; /* the node's number */
    struct sockaddr                       *sockaddr;    /* NULL: unknown */
    socklen_t                              socklen;
    ngx_str_t                              user;
    ngx_str_t                              password;
    ngx_uint_t                             db;
    ngx_msec_t                             timeout;
    ngx_msec_t                             connect_timeout;
    ngx_uint_t                             keepalive;
    ngx_flag_t                             nodelay;    /* TCP */

    ngx_str_t                              script;
    u_char                                 sha1[40];

    /* NULL: one server, the address of the directive */
    ngx_http_grpc_guard_sentinel_t        *sentinel;

    /*
     * Redis Cluster: the directive's own structure routes the calls;
     * every master has a structure of its own ("node" set), made by
     * ngx_http_grpc_guard_redis_cluster.c, with the same parameters
     */
    ngx_http_grpc_guard_cluster_t         *cluster;

#if (NGX_SSL)
    ngx_ssl_t                             *ssl;     /* NULL: no TLS */
    ngx_str_t                              tls_name;    /* null-terminated */
    ngx_flag_t                             tls_verify;
    ngx_flag_t                             tls_name_ip;
    ngx_ssl_session_t                     *tls_session;     /* per worker */
#endif

    /* per worker, from ngx_http_grpc_guard_redis_init_process() */

    ngx_http_grpc_guard_redis_conn_t      *conns;
    ngx_queue_t                            free;    /* unused commands */
    ngx_uint_t                             nfree;
    ngx_uint_t                             failures;
    ngx_event_t                            retry;
    ngx_log_t                             *log;

    unsigned                               open:1;  /* breaker */
    unsigned                               exiting:1;
    unsigned                               node:1;  /* of a cluster */
};


/* ngx_http_grpc_guard_redis.c */

void ngx_http_grpc_guard_redis_init_conn(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_http_grpc_guard_redis_t *rd,
    ngx_uint_t kind, ngx_log_t *log);
ngx_int_t ngx_http_grpc_guard_redis_connect(
    ngx_http_grpc_guard_redis_conn_t *conn);
ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_redis_command(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t argc,
    const char **argv, size_t *argvlen,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data);
void ngx_http_grpc_guard_redis_close(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t failed);
void ngx_http_grpc_guard_redis_drop(ngx_http_grpc_guard_redis_conn_t *conn);
void ngx_http_grpc_guard_redis_reset(ngx_http_grpc_guard_redis_t *rd);
ngx_int_t ngx_http_grpc_guard_redis_reserve(
    ngx_http_grpc_guard_redis_conn_t *conn, size_t len);
ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_redis_alloc_cmd(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t type);
void ngx_http_grpc_guard_redis_free_cmd(ngx_http_grpc_guard_redis_t *rd,
    ngx_http_grpc_guard_redis_cmd_t *cmd);

/* ngx_http_grpc_guard_redis_batch.c: the checks, in batches */

ngx_int_t ngx_http_grpc_guard_redis_flush(
    ngx_http_grpc_guard_redis_conn_t *conn);
void ngx_http_grpc_guard_redis_batch_reply(
    ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_cmd_t *batch, redisReply *reply);
void ngx_http_grpc_guard_redis_collect(ngx_http_grpc_guard_redis_cmd_t *batch,
    ngx_queue_t *checks);
ngx_int_t ngx_http_grpc_guard_redis_init_worker(
    ngx_http_grpc_guard_redis_t *rd, ngx_pool_t *pool, ngx_log_t *log);
void ngx_http_grpc_guard_redis_exit_worker(ngx_http_grpc_guard_redis_t *rd);
ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_redis_node_eval(
    ngx_http_grpc_guard_redis_t *rd, ngx_uint_t argc, ngx_str_t *argv,
    ngx_uint_t asking, ngx_http_grpc_guard_redis_handler_pt handler,
    void *data);
ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_redis_node_command(
    ngx_http_grpc_guard_redis_t *rd, ngx_uint_t argc, const char **argv,
    size_t *argvlen, ngx_http_grpc_guard_redis_handler_pt handler,
    void *data);

/* ngx_http_grpc_guard_redis_conf.c */

char *ngx_http_grpc_guard_redis_read_password(ngx_conf_t *cf,
    ngx_str_t *file, ngx_str_t *password);

/* ngx_http_grpc_guard_redis_topology.c */

char *ngx_http_grpc_guard_redis_addrs(ngx_conf_t *cf, ngx_array_t *addrs,
    ngx_str_t *list, char *what, in_port_t port);
ngx_int_t ngx_http_grpc_guard_redis_sockaddr(u_char *ip, size_t iplen,
    ngx_int_t port, ngx_sockaddr_t *sa, socklen_t *len);

ngx_int_t ngx_http_grpc_guard_sentinel_param(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd, ngx_str_t *value);
char *ngx_http_grpc_guard_sentinel_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd);
ngx_int_t ngx_http_grpc_guard_sentinel_init_process(ngx_cycle_t *cycle,
    ngx_http_grpc_guard_redis_t *rd);
void ngx_http_grpc_guard_sentinel_exit_process(
    ngx_http_grpc_guard_redis_t *rd);
void ngx_http_grpc_guard_sentinel_ask(ngx_http_grpc_guard_redis_t *rd);


/* ngx_http_grpc_guard_redis_cluster.c */

ngx_int_t ngx_http_grpc_guard_cluster_param(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd, ngx_str_t *value);
ngx_int_t ngx_http_grpc_guard_cluster_init_process(ngx_cycle_t *cycle,
    ngx_http_grpc_guard_redis_t *rd);
void ngx_http_grpc_guard_cluster_exit_process(ngx_http_grpc_guard_redis_t *rd);
ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_cluster_eval(
    ngx_http_grpc_guard_redis_t *rd, ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data);
void ngx_http_grpc_guard_cluster_cancel(ngx_http_grpc_guard_redis_cmd_t *cmd);
void ngx_http_grpc_guard_cluster_failed(ngx_http_grpc_guard_redis_t *node);
ngx_uint_t ngx_http_grpc_guard_cluster_slot(u_char *key, size_t len);
ngx_int_t ngx_http_grpc_guard_cluster_parse_redirect(u_char *p, size_t len,
    ngx_uint_t *ask, ngx_uint_t *slot, ngx_str_t *ip, ngx_int_t *port);
ngx_int_t ngx_http_grpc_guard_cluster_parse_range(redisReply *r,
    ngx_uint_t *start, ngx_uint_t *end, ngx_str_t *ip, ngx_int_t *port);


/* ngx_http_grpc_guard_redis.c, for the TLS of a connection */
void ngx_http_grpc_guard_redis_post_write(
    ngx_http_grpc_guard_redis_conn_t *conn);
void ngx_http_grpc_guard_redis_write_handler(ngx_event_t *wev);
void ngx_http_grpc_guard_redis_read_handler(ngx_event_t *rev);

#if (NGX_SSL)
/* ngx_http_grpc_guard_redis_tls.c */
void ngx_http_grpc_guard_redis_tls_start(
    ngx_http_grpc_guard_redis_conn_t *conn);
#endif


#endif /* _NGX_HTTP_GRPC_GUARD_REDIS_H_INCLUDED_ */
