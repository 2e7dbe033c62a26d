
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The Redis client of the limiter on nginx's events: connections, TLS,
 * pipelined commands and their replies, timeouts and the circuit
 * breaker.  The directive is read in ngx_http_grpc_guard_redis_conf.c;
 * which server is the master, in ngx_http_grpc_guard_redis_topology.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_redis.h"


/*
 * A small Redis client on nginx events.  Every worker keeps up to
 * "keepalive" connections to one Redis server; commands are written
 * into a per-connection buffer and pipelined, replies come back in
 * order and are matched with a queue of pending commands.  hiredis
 * only formats commands (redisFormatCommandArgv) and parses replies
 * (redisReader).
 *
 * A connection says AUTH, SELECT and SCRIPT LOAD first, in the same
 * write as the first commands.  With "tls", nginx's own SSL layer runs
 * on the same connection: the handshake and the check of the server's
 * certificate come before a byte of that (the password above all) is
 * sent; the TLS session is kept and offered on the next connection.
 *
 * A command waits at most "timeout"; then its caller gets no reply and
 * the command stays in the queue, detached, until Redis answers it.
 * Failures (connect, TLS, handshake, a connection lost, repeated
 * timeouts) open a circuit breaker: the callers get no reply at once,
 * and a timer with a jittered, exponential backoff tries one connection
 * until Redis answers again.
 */


/*
 * elements of a reply array: a batch's reply has one per check, CLUSTER
 * SLOTS one for each range of slots, at most one for each slot
 */
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_ELEMENTS  16384


/* what hiredis's createArray is given: int before 1.0, then size_t */
#if (HIREDIS_MAJOR >= 1)
typedef size_t  ngx_http_grpc_guard_redis_nelts_t;
#else
typedef int     ngx_http_grpc_guard_redis_nelts_t;
#endif


static ngx_int_t ngx_http_grpc_guard_redis_handshake(
    ngx_http_grpc_guard_redis_conn_t *conn);
static ngx_http_grpc_guard_redis_conn_t *ngx_http_grpc_guard_redis_pick(
    ngx_http_grpc_guard_redis_t *rd);
static ngx_int_t ngx_http_grpc_guard_redis_append(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t argc,
    const char **argv, size_t *argvlen);
static ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_redis_queue(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t type);
static ngx_int_t ngx_http_grpc_guard_redis_test_connect(ngx_connection_t *c);
static void ngx_http_grpc_guard_redis_connected(
    ngx_http_grpc_guard_redis_conn_t *conn);
static void ngx_http_grpc_guard_redis_dispatch(
    ngx_http_grpc_guard_redis_conn_t *conn, redisReply *reply);
static ngx_int_t ngx_http_grpc_guard_redis_handshake_reply(
    ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_grpc_guard_redis_timeout(ngx_event_t *ev);
static void ngx_http_grpc_guard_redis_failed(ngx_http_grpc_guard_redis_t *rd);
static void ngx_http_grpc_guard_redis_retry(ngx_event_t *ev);
static u_char *ngx_http_grpc_guard_redis_log_error(ngx_log_t *log,
    u_char *buf, size_t len);
static redisReader *ngx_http_grpc_guard_redis_reader(void);
static void *ngx_http_grpc_guard_redis_create_array(
    const redisReadTask *task, ngx_http_grpc_guard_redis_nelts_t elements);


/*
 * hiredis's reply functions with a bounded createArray: an array header
 * alone ("*500000000") would have the reader allocate 8 bytes for each
 * element at once; set up with the first reader, they stay the same
 */

static redisReplyObjectFunctions  ngx_http_grpc_guard_redis_fn;
static void *(*ngx_http_grpc_guard_redis_array)(const redisReadTask *task,
    ngx_http_grpc_guard_redis_nelts_t elements);


static ngx_str_t  ngx_http_grpc_guard_redis_cmd_names[] = {
    ngx_string("EVALSHA"),
    ngx_string("AUTH"),
    ngx_string("SELECT"),
    ngx_string("SCRIPT LOAD"),
    ngx_string("ROLE"),
    ngx_string("PING"),
    ngx_string("EVALSHA"),
    ngx_string("CLUSTER")
};


void
ngx_http_grpc_guard_redis_set_script(ngx_http_grpc_guard_redis_t *rd,
    ngx_str_t *script)
{
    u_char        digest[20];
    ngx_sha1_t    sha1;

    rd->script = *script;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, script->data, script->len);
    ngx_sha1_final(digest, &sha1);

    /* Redis names scripts by the lowercase hex SHA-1 of their text */

    ngx_hex_dump(rd->sha1, digest, 20);
}


ngx_int_t
ngx_http_grpc_guard_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_grpc_guard_redis_t      *rd;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_grpc_guard_module);

    if (gmcf == NULL || gmcf->redis == NULL || !gmcf->limit_used) {
        return NGX_OK;
    }

    rd = gmcf->redis;

    if (rd->cluster) {

        /* the nodes have the connections */

        rd->log = cycle->log;

        return ngx_http_grpc_guard_cluster_init_process(cycle, rd);
    }

    if (ngx_http_grpc_guard_redis_init_worker(rd, cycle->pool, cycle->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rd->sentinel) {
        return ngx_http_grpc_guard_sentinel_init_process(cycle, rd);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_redis_init_worker(ngx_http_grpc_guard_redis_t *rd,
    ngx_pool_t *pool, ngx_log_t *log)
{
    ngx_uint_t  i;

    rd->conns = ngx_pcalloc(pool, rd->keepalive
                                  * sizeof(ngx_http_grpc_guard_redis_conn_t));
    if (rd->conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < rd->keepalive; i++) {
        ngx_http_grpc_guard_redis_init_conn(&rd->conns[i], rd,
                                            NGX_HTTP_GRPC_GUARD_REDIS_DATA,
                                            log);
    }

    ngx_queue_init(&rd->free);

    rd->log = log;

    rd->retry.handler = ngx_http_grpc_guard_redis_retry;
    rd->retry.data = rd;
    rd->retry.log = log;
    rd->retry.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_grpc_guard_redis_init_conn(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_t *rd, ngx_uint_t kind, ngx_log_t *log)
{
    conn->redis = rd;
    conn->kind = kind;
    ngx_queue_init(&conn->pending);
    ngx_queue_init(&conn->waiting);

    if (kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA) {
        conn->name = &rd->name;
        conn->password = &rd->password;
    }

    conn->log = *log;
    conn->log.handler = ngx_http_grpc_guard_redis_log_error;
    conn->log.data = conn;
    conn->log.action = NULL;
}


void
ngx_http_grpc_guard_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_grpc_guard_redis_t      *rd;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_grpc_guard_module);

    if (gmcf == NULL || gmcf->redis == NULL) {
        return;
    }

    rd = gmcf->redis;

    if (rd->cluster) {
        ngx_http_grpc_guard_cluster_exit_process(rd);
        return;
    }

    if (rd->conns == NULL) {
        return;
    }

    if (rd->sentinel) {

        /* set first: the sentinel connections close without a retry */

        rd->exiting = 1;

        ngx_http_grpc_guard_sentinel_exit_process(rd);
    }

    ngx_http_grpc_guard_redis_exit_worker(rd);
}


void
ngx_http_grpc_guard_redis_exit_worker(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_uint_t    i;
    ngx_queue_t  *q;

    /*
     * requests still parked are not resumed: on a fast shutdown the
     * process goes away without finalizing them
     */

    rd->exiting = 1;

    if (rd->retry.timer_set) {
        ngx_del_timer(&rd->retry);
    }

    for (i = 0; i < rd->keepalive; i++) {
        ngx_http_grpc_guard_redis_drop(&rd->conns[i]);
    }

    while (!ngx_queue_empty(&rd->free)) {
        q = ngx_queue_head(&rd->free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue));
    }

    rd->nfree = 0;

#if (NGX_SSL)

    if (rd->tls_session) {
        ngx_ssl_free_session(rd->tls_session);
        rd->tls_session = NULL;
    }

#endif
}


void
ngx_http_grpc_guard_redis_drop(ngx_http_grpc_guard_redis_conn_t *conn)
{
    ngx_queue_t                      *q;
    ngx_http_grpc_guard_redis_cmd_t  *cmd;

    /* the process exits: nobody is told about the pending commands */

    if (!ngx_queue_empty(&conn->waiting)) {
        ngx_queue_add(&conn->pending, &conn->waiting);
        ngx_queue_init(&conn->waiting);
    }

    conn->nwaiting = 0;

    while (!ngx_queue_empty(&conn->pending)) {
        q = ngx_queue_head(&conn->pending);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

        if (cmd->type == NGX_HTTP_GRPC_GUARD_REDIS_CMD_BATCH
            && !ngx_queue_empty(&cmd->checks))
        {
            ngx_queue_add(&conn->pending, &cmd->checks);
        }

        if (cmd->timer.timer_set) {
            ngx_del_timer(&cmd->timer);
        }

        ngx_free(cmd);
    }

    ngx_http_grpc_guard_redis_close(conn, 0);

    if (conn->start) {
        ngx_free(conn->start);
        conn->start = NULL;
    }
}


ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_eval(ngx_http_grpc_guard_redis_t *rd,
    ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data)
{
    size_t                             size;
    ngx_uint_t                         i;
    ngx_http_grpc_guard_redis_cmd_t   *cmd;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    /*
     * a check: it waits on a connection until the next batch carries
     * it, at once when no batch is in flight there (the write is
     * posted: the checks of one event loop iteration go together)
     */

    if (rd->cluster && !rd->node) {

        /* one check on each master that has some of the keys */

        return ngx_http_grpc_guard_cluster_eval(rd, argc, argv, handler,
                                                data);
    }

    if (rd->conns == NULL || rd->exiting || rd->sockaddr == NULL
        || argc > NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS)
    {
        /* with Sentinel: no master known yet, or any more */

        return NULL;
    }

    conn = ngx_http_grpc_guard_redis_pick(rd);
    if (conn == NULL) {
        return NULL;
    }

    cmd = ngx_http_grpc_guard_redis_alloc_cmd(conn,
                                           NGX_HTTP_GRPC_GUARD_REDIS_CMD_CALL);
    if (cmd == NULL) {
        return NULL;
    }

    /* "$" length CRLF data CRLF for each argument */

    size = 0;

    for (i = 0; i < argc; i++) {
        size += argv[i].len + 1 + NGX_SIZE_T_LEN + 4;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->argc = argc;
    cmd->argv = argv;
    cmd->size = size;
    cmd->waiting = 1;
    cmd->start = ngx_http_grpc_guard_metrics_now();

    ngx_queue_insert_tail(&conn->waiting, &cmd->queue);
    conn->nwaiting++;

    ngx_add_timer(&cmd->timer, rd->timeout);

    if (conn->nbatches == 0
        || conn->nwaiting >= NGX_HTTP_GRPC_GUARD_REDIS_BATCH_CALLS)
    {
        ngx_http_grpc_guard_redis_post_write(conn);
    }

    return cmd;
}


ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_node_eval(ngx_http_grpc_guard_redis_t *rd,
    ngx_uint_t argc, ngx_str_t *argv, ngx_uint_t asking,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data)
{
    size_t                             len[NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS];
    ngx_uint_t                         i;
    const char                        *args[NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS];
    ngx_http_grpc_guard_redis_cmd_t   *cmd;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    /*
     * Redis Cluster: a check alone, "EVAL script numkeys ...", outside
     * the batches, with its keys declared so that Redis redirects it;
     * after -ASK, ASKING first, whose reply is dropped.  EVAL, not
     * EVALSHA: rare, and never NOSCRIPT
     */

    if (rd->conns == NULL || rd->exiting || rd->sockaddr == NULL
        || argc + 2 > NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS)
    {
        return NULL;
    }

    conn = ngx_http_grpc_guard_redis_pick(rd);
    if (conn == NULL) {
        return NULL;
    }

    if (asking) {
        args[0] = "ASKING";
        len[0] = 6;

        cmd = ngx_http_grpc_guard_redis_command(conn, 1, args, len, NULL,
                                                NULL);
        if (cmd == NULL) {
            return NULL;
        }

        cmd->start = ngx_http_grpc_guard_metrics_now();
    }

    args[0] = "EVAL";
    len[0] = 4;
    args[1] = (const char *) rd->script.data;
    len[1] = rd->script.len;

    for (i = 0; i < argc; i++) {
        args[i + 2] = (const char *) argv[i].data;
        len[i + 2] = argv[i].len;
    }

    cmd = ngx_http_grpc_guard_redis_command(conn, argc + 2, args, len,
                                            handler, data);
    if (cmd) {
        cmd->start = ngx_http_grpc_guard_metrics_now();
    }

    return cmd;
}


ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_node_command(ngx_http_grpc_guard_redis_t *rd,
    ngx_uint_t argc, const char **argv, size_t *argvlen,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data)
{
    ngx_http_grpc_guard_redis_cmd_t   *cmd;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    /* a command on a data connection, e.g. CLUSTER SLOTS */

    if (rd->conns == NULL || rd->exiting || rd->sockaddr == NULL) {
        return NULL;
    }

    conn = ngx_http_grpc_guard_redis_pick(rd);
    if (conn == NULL) {
        return NULL;
    }

    cmd = ngx_http_grpc_guard_redis_command(conn, argc, argv, argvlen,
                                            handler, data);
    if (cmd) {
        cmd->start = ngx_http_grpc_guard_metrics_now();
    }

    return cmd;
}


ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_command(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t argc, const char **argv, size_t *argvlen,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data)
{
    ngx_http_grpc_guard_redis_cmd_t  *cmd;

    cmd = ngx_http_grpc_guard_redis_queue(conn,
                                          NGX_HTTP_GRPC_GUARD_REDIS_CMD_CALL);
    if (cmd == NULL) {
        return NULL;
    }

    if (ngx_http_grpc_guard_redis_append(conn, argc, argv, argvlen)
        != NGX_OK)
    {
        ngx_queue_remove(&cmd->queue);
        conn->npending--;
        ngx_http_grpc_guard_redis_free_cmd(conn->redis, cmd);
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;

    ngx_add_timer(&cmd->timer, conn->redis->timeout);

    ngx_http_grpc_guard_redis_post_write(conn);

    return cmd;
}


void
ngx_http_grpc_guard_redis_cancel(ngx_http_grpc_guard_redis_cmd_t *cmd)
{
    if (cmd->type == NGX_HTTP_GRPC_GUARD_REDIS_CMD_CLUSTER) {
        ngx_http_grpc_guard_cluster_cancel(cmd);
        return;
    }

    if (cmd->waiting) {

        /* not sent: it never will be */

        ngx_queue_remove(&cmd->queue);
        cmd->conn->nwaiting--;
        ngx_http_grpc_guard_redis_free_cmd(cmd->conn->redis, cmd);
        return;
    }

    /* the reply, when it comes, is read and dropped */

    cmd->handler = NULL;
    cmd->data = NULL;
    cmd->argv = NULL;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }
}


static ngx_http_grpc_guard_redis_conn_t *
ngx_http_grpc_guard_redis_pick(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_uint_t                         i;
    ngx_http_grpc_guard_redis_conn_t  *conn, *best, *busy, *down, *opening;

    /*
     * the first working connection that has less than a batch waiting:
     * the calls queue on one connection and go out together; another
     * connection is used only while every one is that far behind
     */

    busy = NULL;
    down = NULL;
    opening = NULL;

    for (i = 0; i < rd->keepalive; i++) {
        conn = &rd->conns[i];

        switch (conn->state) {

        case NGX_HTTP_GRPC_GUARD_REDIS_READY:
            if (conn->nwaiting < NGX_HTTP_GRPC_GUARD_REDIS_BATCH_CALLS) {
                return conn;
            }

            if (conn->nwaiting < NGX_HTTP_GRPC_GUARD_REDIS_MAX_PENDING
                && (busy == NULL || conn->nwaiting < busy->nwaiting))
            {
                busy = conn;
            }

            break;

        case NGX_HTTP_GRPC_GUARD_REDIS_DOWN:
            if (down == NULL) {
                down = conn;
            }

            break;

        default:
            if (opening == NULL) {
                opening = conn;
            }
        }
    }

    best = busy;

    if (rd->open) {

        /*
         * the breaker is open: only a connection that already works
         * is used; no caller waits for a connection to come up
         */

        return best;
    }

    if (best) {

        if (down && opening == NULL) {

            /* behind: one more connection, for the calls to come */

            (void) ngx_http_grpc_guard_redis_connect(down);
        }

        return best;
    }

    if (opening) {
        return opening->nwaiting < NGX_HTTP_GRPC_GUARD_REDIS_MAX_PENDING
               ? opening : NULL;
    }

    if (down && ngx_http_grpc_guard_redis_connect(down) == NGX_OK) {
        return down;
    }

    return NULL;
}


ngx_int_t
ngx_http_grpc_guard_redis_connect(ngx_http_grpc_guard_redis_conn_t *conn)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_grpc_guard_redis_t  *rd;

    rd = conn->redis;

    if (conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA) {

        if (rd->sockaddr == NULL) {
            return NGX_ERROR;
        }

        /* the master: with Sentinel it may have moved since */

        conn->sockaddr = rd->sockaddr;
        conn->socklen = rd->socklen;
    }

    ngx_memzero(&conn->peer, sizeof(ngx_peer_connection_t));

    conn->peer.sockaddr = conn->sockaddr;
    conn->peer.socklen = conn->socklen;
    conn->peer.name = conn->name;
    conn->peer.get = ngx_event_get_peer;
    conn->peer.log = &conn->log;
    conn->peer.log_error = NGX_ERROR_ERR;

    conn->log.action = "connecting to redis";

    rc = ngx_event_connect_peer(&conn->peer);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                   "grpc guard redis connect %V: %i", conn->name, rc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        conn->peer.connection = NULL;
        conn->log.action = NULL;

        if (conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA) {
            ngx_http_grpc_guard_redis_failed(rd);
        }

        return NGX_ERROR;
    }

    c = conn->peer.connection;

    /* pipelined commands must not wait for the replies of earlier ones */

    if (rd->nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_close_connection(c);
        conn->peer.connection = NULL;

        if (conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA) {
            ngx_http_grpc_guard_redis_failed(rd);
        }

        return NGX_ERROR;
    }

    c->data = conn;
    c->read->handler = ngx_http_grpc_guard_redis_read_handler;
    c->write->handler = ngx_http_grpc_guard_redis_write_handler;
    c->log = &conn->log;
    c->read->log = &conn->log;
    c->write->log = &conn->log;

    conn->reader = ngx_http_grpc_guard_redis_reader();
    if (conn->reader == NULL) {
        ngx_http_grpc_guard_redis_close(conn, 1);
        return NGX_ERROR;
    }

    conn->state = NGX_HTTP_GRPC_GUARD_REDIS_CONNECTING;
    conn->timeouts = 0;

    /*
     * the handshake goes first into the buffer, so that commands
     * queued while connecting follow it in the same write
     */

    if (ngx_http_grpc_guard_redis_handshake(conn) != NGX_OK) {
        ngx_http_grpc_guard_redis_close(conn, 1);
        return NGX_ERROR;
    }

    /* the connect timeout also covers AUTH, SELECT and SCRIPT LOAD */

    c->read->cancelable = 1;
    ngx_add_timer(c->read, rd->connect_timeout);

    if (rc == NGX_OK) {

        /* connected at once, as a unix socket usually is */

        ngx_http_grpc_guard_redis_connected(conn);
    }

    return NGX_OK;
}


static void
ngx_http_grpc_guard_redis_connected(ngx_http_grpc_guard_redis_conn_t *conn)
{
#if (NGX_SSL)

    if (conn->redis->ssl) {
        ngx_http_grpc_guard_redis_tls_start(conn);
        return;
    }

#endif

    conn->state = NGX_HTTP_GRPC_GUARD_REDIS_HANDSHAKE;
    conn->log.action = "talking to redis";

    ngx_http_grpc_guard_redis_post_write(conn);
}


static ngx_int_t
ngx_http_grpc_guard_redis_handshake(ngx_http_grpc_guard_redis_conn_t *conn)
{
    u_char                       *p;
    size_t                        argvlen[3];
    ngx_uint_t                    argc;
    const char                   *argv[3];
    ngx_http_grpc_guard_redis_t  *rd;
    u_char                        db[NGX_INT_T_LEN];

    rd = conn->redis;

    if (conn->password->len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (rd->user.len && conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA) {
            argv[argc] = (const char *) rd->user.data;
            argvlen[argc++] = rd->user.len;
        }

        argv[argc] = (const char *) conn->password->data;
        argvlen[argc++] = conn->password->len;

        if (ngx_http_grpc_guard_redis_append(conn, argc, argv, argvlen)
            != NGX_OK
            || ngx_http_grpc_guard_redis_queue(conn,
                                       NGX_HTTP_GRPC_GUARD_REDIS_CMD_AUTH)
               == NULL)
        {
            return NGX_ERROR;
        }
    }

    if (conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_SENTINEL) {

        /* its reply says that the connection works */

        argv[0] = "PING";
        argvlen[0] = 4;

        if (ngx_http_grpc_guard_redis_append(conn, 1, argv, argvlen)
            != NGX_OK
            || ngx_http_grpc_guard_redis_queue(conn,
                                       NGX_HTTP_GRPC_GUARD_REDIS_CMD_PING)
               == NULL)
        {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (rd->db) {
        p = ngx_sprintf(db, "%ui", rd->db);

        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = p - db;

        if (ngx_http_grpc_guard_redis_append(conn, 2, argv, argvlen)
            != NGX_OK
            || ngx_http_grpc_guard_redis_queue(conn,
                                       NGX_HTTP_GRPC_GUARD_REDIS_CMD_SELECT)
               == NULL)
        {
            return NGX_ERROR;
        }
    }

    if (rd->sentinel) {

        /* what a sentinel said may be out of date: a replica refuses */

        argv[0] = "ROLE";
        argvlen[0] = 4;

        if (ngx_http_grpc_guard_redis_append(conn, 1, argv, argvlen)
            != NGX_OK
            || ngx_http_grpc_guard_redis_queue(conn,
                                       NGX_HTTP_GRPC_GUARD_REDIS_CMD_ROLE)
               == NULL)
        {
            return NGX_ERROR;
        }
    }

    /* a restarted or flushed Redis has lost the script: load it again */

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;
    argv[2] = (const char *) rd->script.data;
    argvlen[2] = rd->script.len;

    if (ngx_http_grpc_guard_redis_append(conn, 3, argv, argvlen) != NGX_OK
        || ngx_http_grpc_guard_redis_queue(conn,
                                       NGX_HTTP_GRPC_GUARD_REDIS_CMD_SCRIPT)
           == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_redis_append(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t argc, const char **argv, size_t *argvlen)
{
    int    len;
    char  *cmd;

    len = redisFormatCommandArgv(&cmd, (int) argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_redis_reserve(conn, len) != NGX_OK) {
        redisFreeCommand(cmd);
        return NGX_ERROR;
    }

    conn->last = ngx_cpymem(conn->last, cmd, len);

    redisFreeCommand(cmd);

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_redis_reserve(ngx_http_grpc_guard_redis_conn_t *conn,
    size_t len)
{
    size_t   size, used;
    u_char  *p;

    /* room for len more bytes in the output buffer */

    if (conn->start && (size_t) (conn->end - conn->last) >= len) {
        return NGX_OK;
    }

    /* move what is left to send to the front, or grow the buffer */

    used = conn->start ? (size_t) (conn->last - conn->pos) : 0;

    if (conn->start && conn->pos != conn->start) {

        if (used) {
            ngx_memmove(conn->start, conn->pos, used);
        }

        conn->pos = conn->start;
        conn->last = conn->start + used;
    }

    if (conn->start && (size_t) (conn->end - conn->last) >= len) {
        return NGX_OK;
    }

    size = conn->start ? (size_t) (conn->end - conn->start) : 4096;

    while (size - used < len) {
        size *= 2;
    }

    if (size > NGX_HTTP_GRPC_GUARD_REDIS_MAX_OUTPUT) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis output buffer is full");
        return NGX_ERROR;
    }

    p = ngx_alloc(size, &conn->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (used) {
        ngx_memcpy(p, conn->pos, used);
    }

    if (conn->start) {
        ngx_free(conn->start);
    }

    conn->start = p;
    conn->pos = p;
    conn->last = p + used;
    conn->end = p + size;

    return NGX_OK;
}


static ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_queue(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t type)
{
    ngx_http_grpc_guard_redis_cmd_t  *cmd;

    cmd = ngx_http_grpc_guard_redis_alloc_cmd(conn, type);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_queue_insert_tail(&conn->pending, &cmd->queue);
    conn->npending++;

    return cmd;
}


ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_alloc_cmd(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t type)
{
    ngx_queue_t                      *q;
    ngx_http_grpc_guard_redis_t      *rd;
    ngx_http_grpc_guard_redis_cmd_t  *cmd;

    rd = conn->redis;

    if (!ngx_queue_empty(&rd->free)) {
        q = ngx_queue_head(&rd->free);
        ngx_queue_remove(q);
        rd->nfree--;

        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

    } else {
        cmd = ngx_alloc(sizeof(ngx_http_grpc_guard_redis_cmd_t), rd->log);
        if (cmd == NULL) {
            return NULL;
        }
    }

    ngx_memzero(cmd, sizeof(ngx_http_grpc_guard_redis_cmd_t));

    cmd->conn = conn;
    cmd->type = type;

    cmd->timer.handler = ngx_http_grpc_guard_redis_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = rd->log;

    return cmd;
}


void
ngx_http_grpc_guard_redis_free_cmd(ngx_http_grpc_guard_redis_t *rd,
    ngx_http_grpc_guard_redis_cmd_t *cmd)
{
    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (rd->nfree < NGX_HTTP_GRPC_GUARD_REDIS_MAX_FREE) {
        ngx_queue_insert_head(&rd->free, &cmd->queue);
        rd->nfree++;
        return;
    }

    ngx_free(cmd);
}


void
ngx_http_grpc_guard_redis_post_write(ngx_http_grpc_guard_redis_conn_t *conn)
{
    ngx_connection_t  *c;

    /*
     * the write is posted, not made at once: the commands of every
     * request handled in this event loop iteration go out together
     */

    c = conn->peer.connection;

    if (c == NULL
        || conn->state == NGX_HTTP_GRPC_GUARD_REDIS_CONNECTING
        || conn->state == NGX_HTTP_GRPC_GUARD_REDIS_TLS)
    {
        return;
    }

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


void
ngx_http_grpc_guard_redis_write_handler(ngx_event_t *wev)
{
    ssize_t                            n;
    ngx_connection_t                  *c;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    if (conn->state == NGX_HTTP_GRPC_GUARD_REDIS_CONNECTING) {

        if (ngx_http_grpc_guard_redis_test_connect(c) != NGX_OK) {
            ngx_http_grpc_guard_redis_close(conn, 1);
            return;
        }

        ngx_http_grpc_guard_redis_connected(conn);
        return;
    }

    if (conn->nwaiting && ngx_http_grpc_guard_redis_flush(conn) != NGX_OK) {
        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    while (conn->pos < conn->last) {

        n = c->send(c, conn->pos, conn->last - conn->pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_grpc_guard_redis_close(conn, 1);
            return;
        }

        conn->pos += n;
    }

    if (conn->pos == conn->last) {
        conn->pos = conn->start;
        conn->last = conn->start;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_grpc_guard_redis_close(conn, 1);
    }
}


static ngx_int_t
ngx_http_grpc_guard_redis_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_grpc_guard_redis_read_handler(ngx_event_t *rev)
{
    void                              *reply;
    ssize_t                            n;
    ngx_uint_t                         generation, level;
    ngx_connection_t                  *c;
    ngx_http_grpc_guard_redis_conn_t  *conn;
    u_char                             buf[16384];

    c = rev->data;
    conn = c->data;

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, NGX_ETIMEDOUT,
                      "redis did not answer in time");
        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    if (conn->state == NGX_HTTP_GRPC_GUARD_REDIS_CONNECTING) {
        return;
    }

    generation = conn->generation;

    for ( ;; ) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {

            if (n == 0) {
                level = (conn->npending || conn->nwaiting) ? NGX_LOG_ERR
                                                           : NGX_LOG_INFO;

                ngx_log_error(level, &conn->log, 0,
                              "redis closed the connection");
            }

            /* an idle connection closed by Redis is no failure */

            ngx_http_grpc_guard_redis_close(conn, conn->npending != 0
                || conn->nwaiting != 0
                || conn->state != NGX_HTTP_GRPC_GUARD_REDIS_READY);
            return;
        }

        if (redisReaderFeed(conn->reader, (const char *) buf, n)
            != REDIS_OK)
        {
            goto protocol_error;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(conn->reader, &reply) != REDIS_OK) {
                goto protocol_error;
            }

            if (reply == NULL) {
                break;
            }

            ngx_http_grpc_guard_redis_dispatch(conn, reply);

            freeReplyObject(reply);

            /* a handler may have closed this connection */

            if (conn->generation != generation) {
                return;
            }
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_grpc_guard_redis_close(conn, 1);
    }

    return;

protocol_error:

    ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                  "redis sent an invalid reply: %s",
                  ((redisReader *) conn->reader)->errstr);

    ngx_http_grpc_guard_redis_close(conn, 1);
}


static void
ngx_http_grpc_guard_redis_dispatch(ngx_http_grpc_guard_redis_conn_t *conn,
    redisReply *reply)
{
    void                                  *data;
    ngx_queue_t                           *q;
    ngx_http_grpc_guard_redis_t           *rd;
    ngx_http_grpc_guard_redis_cmd_t       *cmd;
    ngx_http_grpc_guard_redis_handler_pt   handler;

    rd = conn->redis;

    if (conn->push && ngx_queue_empty(&conn->pending)) {

        /* a message of a subscription */

        conn->push(conn, reply);
        return;
    }

    if (ngx_queue_empty(&conn->pending)) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis sent a reply nobody asked for");
        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    q = ngx_queue_head(&conn->pending);
    ngx_queue_remove(q);
    conn->npending--;
    conn->timeouts = 0;

    cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

    if (cmd->type == NGX_HTTP_GRPC_GUARD_REDIS_CMD_BATCH) {
        ngx_http_grpc_guard_redis_batch_reply(conn, cmd, reply);
        return;
    }

    ngx_http_grpc_guard_metrics_latency(rd->metrics, cmd->start);

    if (cmd->type != NGX_HTTP_GRPC_GUARD_REDIS_CMD_CALL) {

        if (ngx_http_grpc_guard_redis_handshake_reply(conn, cmd, reply)
            != NGX_OK)
        {
            ngx_http_grpc_guard_redis_free_cmd(rd, cmd);
            ngx_http_grpc_guard_redis_close(conn, 1);
            return;
        }

        ngx_http_grpc_guard_redis_free_cmd(rd, cmd);
        return;
    }

    handler = cmd->handler;
    data = cmd->data;

    ngx_http_grpc_guard_redis_free_cmd(rd, cmd);

    if (handler) {
        handler(data, reply);
    }
}


static ngx_int_t
ngx_http_grpc_guard_redis_handshake_reply(
    ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_cmd_t *cmd, redisReply *reply)
{
    ngx_str_t                     role;
    ngx_connection_t             *c;
    ngx_http_grpc_guard_redis_t  *rd;

    rd = conn->redis;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis refused %V: %*s",
                      &ngx_http_grpc_guard_redis_cmd_names[cmd->type],
                      (size_t) reply->len, reply->str);
        return NGX_ERROR;
    }

    if (cmd->type == NGX_HTTP_GRPC_GUARD_REDIS_CMD_ROLE) {

        ngx_str_null(&role);

        if (reply->type == REDIS_REPLY_ARRAY
            && reply->elements
            && reply->element[0]->type == REDIS_REPLY_STRING)
        {
            role.data = (u_char *) reply->element[0]->str;
            role.len = reply->element[0]->len;
        }

        if (role.len != 6 || ngx_strncmp(role.data, "master", 6) != 0) {
            ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                          "redis is not the master: its role is \"%V\"",
                          &role);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (cmd->type == NGX_HTTP_GRPC_GUARD_REDIS_CMD_PING) {

        /* a sentinel connection works: no breaker for it */

        c = conn->peer.connection;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        conn->state = NGX_HTTP_GRPC_GUARD_REDIS_READY;

        return NGX_OK;
    }

    if (cmd->type != NGX_HTTP_GRPC_GUARD_REDIS_CMD_SCRIPT) {
        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_STRING
        || reply->len != 40
        || ngx_strncasecmp((u_char *) reply->str, rd->sha1, 40) != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, &conn->log, 0,
                      "redis answered SCRIPT LOAD with an unexpected "
                      "reply");
        return NGX_ERROR;
    }

    /* the last step of the handshake: the connection works */

    c = conn->peer.connection;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    conn->state = NGX_HTTP_GRPC_GUARD_REDIS_READY;

    ngx_http_grpc_guard_metrics_redis(rd->metrics, 1);

    if (rd->open) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "grpc guard: redis %V is available again", &rd->name);
    }

    rd->open = 0;
    rd->failures = 0;

    if (rd->retry.timer_set) {
        ngx_del_timer(&rd->retry);
    }

    return NGX_OK;
}


static void
ngx_http_grpc_guard_redis_timeout(ngx_event_t *ev)
{
    void                                  *data;
    ngx_http_grpc_guard_redis_cmd_t       *cmd;
    ngx_http_grpc_guard_redis_conn_t      *conn;
    ngx_http_grpc_guard_redis_handler_pt   handler;

    cmd = ev->data;
    conn = cmd->conn;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "grpc guard redis command timed out");

    handler = cmd->handler;
    data = cmd->data;

    if (cmd->waiting) {

        /* not sent yet: it never will be */

        ngx_queue_remove(&cmd->queue);
        conn->nwaiting--;
        ngx_http_grpc_guard_redis_free_cmd(conn->redis, cmd);

    } else {

        /* detached: the reply, if it ever comes, is dropped */

        cmd->handler = NULL;
        cmd->data = NULL;
        cmd->argv = NULL;
    }

    if (conn->state == NGX_HTTP_GRPC_GUARD_REDIS_READY
        && ++conn->timeouts >= NGX_HTTP_GRPC_GUARD_REDIS_MAX_TIMEOUTS)
    {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis did not answer %ui commands in time, "
                      "closing the connection", conn->timeouts);

        ngx_http_grpc_guard_redis_close(conn, 1);
    }

    if (handler) {
        handler(data, NULL);
    }
}


void
ngx_http_grpc_guard_redis_close(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t failed)
{
    void                                  *data;
    ngx_queue_t                           *q, pending, checks, batch;
    ngx_http_grpc_guard_redis_t           *rd;
    ngx_http_grpc_guard_redis_cmd_t       *cmd;
    ngx_http_grpc_guard_redis_handler_pt   handler;

    rd = conn->redis;

    if (conn->peer.connection) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                       "grpc guard redis close, %ui pending",
                       conn->npending);

#if (NGX_SSL)

        if (conn->peer.connection->ssl) {

            /* close_notify is sent when it can be, never waited for */

            conn->peer.connection->ssl->no_wait_shutdown = 1;

            if (ngx_ssl_shutdown(conn->peer.connection) == NGX_AGAIN) {
                conn->peer.connection->ssl->no_send_shutdown = 1;
                (void) ngx_ssl_shutdown(conn->peer.connection);
            }
        }

#endif

        if (conn->peer.connection->pool) {
            ngx_destroy_pool(conn->peer.connection->pool);
        }

        ngx_close_connection(conn->peer.connection);
        conn->peer.connection = NULL;
    }

    if (conn->reader) {
        redisReaderFree(conn->reader);
        conn->reader = NULL;
    }

    conn->pos = conn->start;
    conn->last = conn->start;
    conn->state = NGX_HTTP_GRPC_GUARD_REDIS_DOWN;
    conn->timeouts = 0;
    conn->generation++;
    conn->log.action = NULL;
    conn->push = NULL;

    /*
     * the breaker opens before the callers learn about the failure,
     * so that they do not try this Redis again at once
     */

    if (failed && conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA) {
        ngx_http_grpc_guard_redis_failed(rd);
    }

    /*
     * what waits for a reply, the checks of the batches and those not
     * sent included, is taken off the connection before anyone is told
     */

    ngx_queue_init(&pending);
    ngx_queue_init(&checks);

    while (!ngx_queue_empty(&conn->pending)) {
        q = ngx_queue_head(&conn->pending);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

        if (cmd->type == NGX_HTTP_GRPC_GUARD_REDIS_CMD_BATCH) {
            ngx_http_grpc_guard_redis_collect(cmd, &batch);

            if (!ngx_queue_empty(&batch)) {
                ngx_queue_add(&checks, &batch);
            }

            continue;
        }

        ngx_queue_insert_tail(&pending, q);
    }

    if (!ngx_queue_empty(&conn->waiting)) {
        ngx_queue_add(&checks, &conn->waiting);
        ngx_queue_init(&conn->waiting);
    }

    if (!ngx_queue_empty(&checks)) {
        ngx_queue_add(&pending, &checks);
    }

    conn->npending = 0;
    conn->nwaiting = 0;
    conn->nbatches = 0;

    while (!ngx_queue_empty(&pending)) {
        q = ngx_queue_head(&pending);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

        handler = cmd->handler;
        data = cmd->data;

        ngx_http_grpc_guard_redis_free_cmd(rd, cmd);

        if (handler) {
            handler(data, NULL);
        }
    }

    if (conn->closed && conn->state == NGX_HTTP_GRPC_GUARD_REDIS_DOWN) {
        conn->closed(conn, failed);
    }
}


static void
ngx_http_grpc_guard_redis_failed(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_msec_t  backoff, delay;

    if (rd->exiting) {
        return;
    }

    rd->failures++;

    ngx_http_grpc_guard_metrics_redis(rd->metrics, 0);

    if (!rd->open) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "grpc guard: redis %V is unavailable", &rd->name);
    }

    rd->open = 1;

    if (rd->sentinel) {

        /* the master may have moved */

        ngx_http_grpc_guard_sentinel_ask(rd);
    }

    if (rd->node) {

        /* its replica may be promoted: the slot map is read again */

        ngx_http_grpc_guard_cluster_failed(rd);
    }

    if (rd->retry.timer_set) {
        return;
    }

    /* 100 ms, doubled on every failure, up to 2 s; then 50-100% of it */

    backoff = NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MAX;

    if (rd->failures < 8) {
        backoff = ngx_min(NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MIN
                          << (rd->failures - 1),
                          NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MAX);
    }

    delay = backoff / 2 + (ngx_msec_t) ngx_random() % (backoff / 2 + 1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "grpc guard redis: failure %ui, retry in %M ms",
                   rd->failures, delay);

    ngx_add_timer(&rd->retry, delay);
}


void
ngx_http_grpc_guard_redis_reset(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_uint_t  i, old[NGX_HTTP_GRPC_GUARD_REDIS_MAX_KEEPALIVE];

    /*
     * the master moved (rd->sockaddr is the new one): no failure counts
     * against it, and the connections to the old one go at once; the
     * calls waiting on them get the failure mode, and may make new
     * connections meanwhile, which stay
     */

    rd->open = 0;
    rd->failures = 0;

    if (rd->retry.timer_set) {
        ngx_del_timer(&rd->retry);
    }

#if (NGX_SSL)

    if (rd->tls_session) {
        ngx_ssl_free_session(rd->tls_session);
        rd->tls_session = NULL;
    }

#endif

    for (i = 0; i < rd->keepalive; i++) {
        old[i] = (rd->conns[i].state == NGX_HTTP_GRPC_GUARD_REDIS_DOWN)
                 ? (ngx_uint_t) -1 : rd->conns[i].generation;
    }

    for (i = 0; i < rd->keepalive; i++) {
        if (old[i] == rd->conns[i].generation) {
            ngx_http_grpc_guard_redis_close(&rd->conns[i], 0);
        }
    }
}


static void
ngx_http_grpc_guard_redis_retry(ngx_event_t *ev)
{
    ngx_uint_t                    i;
    ngx_http_grpc_guard_redis_t  *rd;

    rd = ev->data;

    if (rd->exiting || !rd->open) {
        return;
    }

    for (i = 0; i < rd->keepalive; i++) {

        if (rd->conns[i].state == NGX_HTTP_GRPC_GUARD_REDIS_READY) {

            /* another connection failed, this one works */

            rd->open = 0;
            rd->failures = 0;
            return;
        }
    }

    for (i = 0; i < rd->keepalive; i++) {

        if (rd->conns[i].state != NGX_HTTP_GRPC_GUARD_REDIS_DOWN) {

            /* its outcome closes the breaker or sets the next retry */

            return;
        }
    }

    /* one connection probes Redis; it takes no calls until it works */

    (void) ngx_http_grpc_guard_redis_connect(&rd->conns[0]);
}


static redisReader *
ngx_http_grpc_guard_redis_reader(void)
{
    redisReader  *reader;

    reader = redisReaderCreate();
    if (reader == NULL) {
        return NULL;
    }

    if (ngx_http_grpc_guard_redis_array == NULL) {
        ngx_http_grpc_guard_redis_fn = *reader->fn;
        ngx_http_grpc_guard_redis_array = reader->fn->createArray;
        ngx_http_grpc_guard_redis_fn.createArray =
                                       ngx_http_grpc_guard_redis_create_array;
    }

    reader->fn = &ngx_http_grpc_guard_redis_fn;

    return reader;
}


static void *
ngx_http_grpc_guard_redis_create_array(const redisReadTask *task,
    ngx_http_grpc_guard_redis_nelts_t elements)
{
    /*
     * NULL fails the reader ("Out of memory"): the connection is closed
     * as for any invalid reply
     */

    if (elements > NGX_HTTP_GRPC_GUARD_REDIS_MAX_ELEMENTS) {
        return NULL;
    }

    return ngx_http_grpc_guard_redis_array(task, elements);
}


static u_char *
ngx_http_grpc_guard_redis_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                            *p;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    conn = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    return ngx_snprintf(p, len, ", grpc guard %s: %V",
                        conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_SENTINEL
                        ? "sentinel" : "redis",
                        conn->name);
}
