
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The Redis client of the limiter on nginx's events: the
 * grpc_guard_redis directive, connections, pipelined commands and their
 * replies, timeouts and the circuit breaker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"


/*
 * A small Redis client on nginx events.  Every worker keeps up to
 * "keepalive" connections to one Redis server; commands are written
 * into a per-connection buffer and pipelined, replies come back in
 * order and are matched with a queue of pending commands.  hiredis
 * only formats commands (redisFormatCommandArgv) and parses replies
 * (redisReader).
 *
 * A connection says AUTH, SELECT and SCRIPT LOAD first, in the same
 * write as the first commands.  A command waits at most "timeout";
 * then its caller gets no reply and the command stays in the queue,
 * detached, until Redis answers it.  Failures (connect, handshake,
 * a connection lost, repeated timeouts) open a circuit breaker: the
 * callers get no reply at once, and a timer with a jittered,
 * exponential backoff tries one connection until Redis answers again.
 */


#define NGX_HTTP_GRPC_GUARD_REDIS_DOWN          0
#define NGX_HTTP_GRPC_GUARD_REDIS_CONNECTING    1
#define NGX_HTTP_GRPC_GUARD_REDIS_HANDSHAKE     2
#define NGX_HTTP_GRPC_GUARD_REDIS_READY         3

/* what a pending command is */

#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_CALL      0
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_AUTH      1
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_SELECT    2
#define NGX_HTTP_GRPC_GUARD_REDIS_CMD_SCRIPT    3

#define NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MAX   2000

/* consecutive timed out commands that make a connection suspect */
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_TIMEOUTS  3

#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_PENDING   4096
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_OUTPUT    (1024 * 1024)
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_FREE      256
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS      64

/* elements of a reply array: the limiter script sends 4 */
#define NGX_HTTP_GRPC_GUARD_REDIS_MAX_ELEMENTS  64


typedef struct ngx_http_grpc_guard_redis_conn_s
    ngx_http_grpc_guard_redis_conn_t;

/* what hiredis's createArray is given: int before 1.0, then size_t */
#if (HIREDIS_MAJOR >= 1)
typedef size_t  ngx_http_grpc_guard_redis_nelts_t;
#else
typedef int     ngx_http_grpc_guard_redis_nelts_t;
#endif


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

    ngx_uint_t                             type;
    unsigned                               retried:1;
};


struct ngx_http_grpc_guard_redis_conn_s {
    ngx_peer_connection_t                  peer;
    ngx_http_grpc_guard_redis_t           *redis;
    ngx_log_t                              log;
    redisReader                           *reader;

    u_char                                *start;   /* output buffer */
    u_char                                *pos;
    u_char                                *last;
    u_char                                *end;

    ngx_queue_t                            pending;
    ngx_uint_t                             npending;
    ngx_uint_t                             state;
    ngx_uint_t                             timeouts;
    ngx_uint_t                             generation;
};


struct ngx_http_grpc_guard_redis_s {
    ngx_str_t                              name;    /* as configured */
    struct sockaddr                       *sockaddr;
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

    /* per worker, from ngx_http_grpc_guard_redis_init_process() */

    ngx_http_grpc_guard_redis_conn_t      *conns;
    ngx_queue_t                            free;    /* unused commands */
    ngx_uint_t                             nfree;
    ngx_uint_t                             failures;
    ngx_event_t                            retry;
    ngx_log_t                             *log;

    unsigned                               open:1;  /* breaker */
    unsigned                               exiting:1;
};


static ngx_int_t ngx_http_grpc_guard_redis_connect(
    ngx_http_grpc_guard_redis_conn_t *conn);
static ngx_int_t ngx_http_grpc_guard_redis_handshake(
    ngx_http_grpc_guard_redis_conn_t *conn);
static ngx_http_grpc_guard_redis_conn_t *ngx_http_grpc_guard_redis_pick(
    ngx_http_grpc_guard_redis_t *rd);
static ngx_int_t ngx_http_grpc_guard_redis_append(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t argc,
    const char **argv, size_t *argvlen);
static ngx_int_t ngx_http_grpc_guard_redis_append_call(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t argc, ngx_str_t *argv,
    ngx_uint_t eval);
static ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_redis_queue(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t type);
static void ngx_http_grpc_guard_redis_free_cmd(
    ngx_http_grpc_guard_redis_t *rd, ngx_http_grpc_guard_redis_cmd_t *cmd);
static void ngx_http_grpc_guard_redis_post_write(
    ngx_http_grpc_guard_redis_conn_t *conn);
static void ngx_http_grpc_guard_redis_write_handler(ngx_event_t *wev);
static void ngx_http_grpc_guard_redis_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_grpc_guard_redis_test_connect(ngx_connection_t *c);
static void ngx_http_grpc_guard_redis_dispatch(
    ngx_http_grpc_guard_redis_conn_t *conn, redisReply *reply);
static ngx_int_t ngx_http_grpc_guard_redis_handshake_reply(
    ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_grpc_guard_redis_timeout(ngx_event_t *ev);
static void ngx_http_grpc_guard_redis_close(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t failed);
static void ngx_http_grpc_guard_redis_failed(ngx_http_grpc_guard_redis_t *rd);
static void ngx_http_grpc_guard_redis_retry(ngx_event_t *ev);
static u_char *ngx_http_grpc_guard_redis_log_error(ngx_log_t *log,
    u_char *buf, size_t len);
static char *ngx_http_grpc_guard_redis_read_password(ngx_conf_t *cf,
    ngx_str_t *file, ngx_str_t *password);
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
    ngx_string("SCRIPT LOAD")
};


char *
ngx_http_grpc_guard_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_main_conf_t *gmcf = conf;

    char                         *rv;
    ngx_int_t                     n;
    ngx_str_t                    *value, s, file;
    ngx_url_t                     u;
    ngx_uint_t                    i;
    ngx_http_grpc_guard_redis_t  *rd;

    if (gmcf->redis) {
        return "is duplicate";
    }

    rd = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_redis_t));
    if (rd == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rd->user = { 0, NULL };
     *     rd->password = { 0, NULL };
     *     rd->db = 0;
     *     rd->conns = NULL;
     *     rd->failures = 0;
     *     rd->open = 0;
     */

    rd->timeout = 50;
    rd->connect_timeout = 500;
    rd->keepalive = 1;

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    /* resolved here, at configuration time: workers never resolve */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\"", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no address for \"%V\"", &u.url);
        return NGX_CONF_ERROR;
    }

    rd->name = u.addrs[0].name;
    rd->sockaddr = u.addrs[0].sockaddr;
    rd->socklen = u.addrs[0].socklen;
    rd->nodelay = (u.family != AF_UNIX);

    ngx_str_null(&file);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rd->password.len = value[i].len - 9;
            rd->password.data = value[i].data + 9;

            if (rd->password.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "password_file=", 14) == 0) {
            file.len = value[i].len - 14;
            file.data = value[i].data + 14;

            if (file.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            rd->user.len = value[i].len - 5;
            rd->user.data = value[i].data + 5;

            if (rd->user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rd->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "keepalive=", 10) == 0) {
            n = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (n == NGX_ERROR || n == 0 || n > 64) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"keepalive=\" must be 1 to 64 in "
                                   "\"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            rd->keepalive = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.len = value[i].len - 8;
            s.data = value[i].data + 8;

            rd->timeout = ngx_parse_time(&s, 0);
            if (rd->timeout == (ngx_msec_t) NGX_ERROR || rd->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.len = value[i].len - 16;
            s.data = value[i].data + 16;

            rd->connect_timeout = ngx_parse_time(&s, 0);
            if (rd->connect_timeout == (ngx_msec_t) NGX_ERROR
                || rd->connect_timeout == 0)
            {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (file.len) {

        if (rd->password.len) {
            return "takes either \"password=\" or \"password_file=\"";
        }

        rv = ngx_http_grpc_guard_redis_read_password(cf, &file,
                                                     &rd->password);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (rd->user.len && rd->password.len == 0) {
        return "has \"user=\" without a password";
    }

    gmcf->redis = rd;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_grpc_guard_redis_read_password(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *password)
{
    u_char     *p, *last;
    ngx_str_t   content;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_read_file(cf, cf->pool, file, 4096, &content)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* the first line, without its line break */

    p = content.data;

    last = ngx_strlchr(p, p + content.len, LF);
    if (last == NULL) {
        last = p + content.len;
    }

    if (last > p && last[-1] == CR) {
        last--;
    }

    if (last == p) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "password file \"%V\" is empty", file);
        return NGX_CONF_ERROR;
    }

    password->data = p;
    password->len = last - p;

    return NGX_CONF_OK;
}


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
    ngx_uint_t                        i;
    ngx_http_grpc_guard_redis_t      *rd;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_grpc_guard_module);

    if (gmcf == NULL || gmcf->redis == NULL || !gmcf->limit_used) {
        return NGX_OK;
    }

    rd = gmcf->redis;

    rd->conns = ngx_pcalloc(cycle->pool, rd->keepalive
                            * sizeof(ngx_http_grpc_guard_redis_conn_t));
    if (rd->conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < rd->keepalive; i++) {
        rd->conns[i].redis = rd;
        ngx_queue_init(&rd->conns[i].pending);

        rd->conns[i].log = *cycle->log;
        rd->conns[i].log.handler = ngx_http_grpc_guard_redis_log_error;
        rd->conns[i].log.data = &rd->conns[i];
        rd->conns[i].log.action = NULL;
    }

    ngx_queue_init(&rd->free);

    rd->log = cycle->log;

    rd->retry.handler = ngx_http_grpc_guard_redis_retry;
    rd->retry.data = rd;
    rd->retry.log = cycle->log;
    rd->retry.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_grpc_guard_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                        i;
    ngx_queue_t                      *q;
    ngx_http_grpc_guard_redis_t      *rd;
    ngx_http_grpc_guard_main_conf_t  *gmcf;
    ngx_http_grpc_guard_redis_cmd_t  *cmd;

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_grpc_guard_module);

    if (gmcf == NULL || gmcf->redis == NULL || gmcf->redis->conns == NULL) {
        return;
    }

    rd = gmcf->redis;

    /*
     * requests still parked are not resumed: on a fast shutdown the
     * process goes away without finalizing them
     */

    rd->exiting = 1;

    if (rd->retry.timer_set) {
        ngx_del_timer(&rd->retry);
    }

    for (i = 0; i < rd->keepalive; i++) {

        while (!ngx_queue_empty(&rd->conns[i].pending)) {
            q = ngx_queue_head(&rd->conns[i].pending);
            ngx_queue_remove(q);

            cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

            if (cmd->timer.timer_set) {
                ngx_del_timer(&cmd->timer);
            }

            ngx_free(cmd);
        }

        ngx_http_grpc_guard_redis_close(&rd->conns[i], 0);

        if (rd->conns[i].start) {
            ngx_free(rd->conns[i].start);
            rd->conns[i].start = NULL;
        }
    }

    while (!ngx_queue_empty(&rd->free)) {
        q = ngx_queue_head(&rd->free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue));
    }

    rd->nfree = 0;
}


ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_eval(ngx_http_grpc_guard_redis_t *rd,
    ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data)
{
    ngx_http_grpc_guard_redis_cmd_t   *cmd;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    if (rd->conns == NULL || rd->exiting) {
        return NULL;
    }

    conn = ngx_http_grpc_guard_redis_pick(rd);
    if (conn == NULL) {
        return NULL;
    }

    /* queued first: bytes in the buffer always have their command */

    cmd = ngx_http_grpc_guard_redis_queue(conn,
                                          NGX_HTTP_GRPC_GUARD_REDIS_CMD_CALL);
    if (cmd == NULL) {
        return NULL;
    }

    if (ngx_http_grpc_guard_redis_append_call(conn, argc, argv, 0)
        != NGX_OK)
    {
        ngx_queue_remove(&cmd->queue);
        conn->npending--;
        ngx_http_grpc_guard_redis_free_cmd(rd, cmd);
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->argc = argc;
    cmd->argv = argv;

    ngx_add_timer(&cmd->timer, rd->timeout);

    ngx_http_grpc_guard_redis_post_write(conn);

    return cmd;
}


void
ngx_http_grpc_guard_redis_cancel(ngx_http_grpc_guard_redis_cmd_t *cmd)
{
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
    ngx_http_grpc_guard_redis_conn_t  *conn, *best, *down, *opening;

    best = NULL;
    down = NULL;
    opening = NULL;

    for (i = 0; i < rd->keepalive; i++) {
        conn = &rd->conns[i];

        switch (conn->state) {

        case NGX_HTTP_GRPC_GUARD_REDIS_READY:
            if (conn->npending < NGX_HTTP_GRPC_GUARD_REDIS_MAX_PENDING
                && (best == NULL || conn->npending < best->npending))
            {
                best = conn;
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

    if (rd->open) {

        /*
         * the breaker is open: only a connection that already works
         * is used; no caller waits for a connection to come up
         */

        return best;
    }

    if (best) {

        if (best->npending && down && opening == NULL) {

            /* busy: one more connection, for the calls to come */

            (void) ngx_http_grpc_guard_redis_connect(down);
        }

        return best;
    }

    if (opening) {
        return opening->npending < NGX_HTTP_GRPC_GUARD_REDIS_MAX_PENDING
               ? opening : NULL;
    }

    if (down && ngx_http_grpc_guard_redis_connect(down) == NGX_OK) {
        return down;
    }

    return NULL;
}


static ngx_int_t
ngx_http_grpc_guard_redis_connect(ngx_http_grpc_guard_redis_conn_t *conn)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_grpc_guard_redis_t  *rd;

    rd = conn->redis;

    ngx_memzero(&conn->peer, sizeof(ngx_peer_connection_t));

    conn->peer.sockaddr = rd->sockaddr;
    conn->peer.socklen = rd->socklen;
    conn->peer.name = &rd->name;
    conn->peer.get = ngx_event_get_peer;
    conn->peer.log = &conn->log;
    conn->peer.log_error = NGX_ERROR_ERR;

    conn->log.action = "connecting to redis";

    rc = ngx_event_connect_peer(&conn->peer);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                   "grpc guard redis connect %V: %i", &rd->name, rc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        conn->peer.connection = NULL;
        conn->log.action = NULL;
        ngx_http_grpc_guard_redis_failed(rd);
        return NGX_ERROR;
    }

    c = conn->peer.connection;

    /* pipelined commands must not wait for the replies of earlier ones */

    if (rd->nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_close_connection(c);
        conn->peer.connection = NULL;
        ngx_http_grpc_guard_redis_failed(rd);
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

        conn->state = NGX_HTTP_GRPC_GUARD_REDIS_HANDSHAKE;
        conn->log.action = "talking to redis";

        ngx_http_grpc_guard_redis_post_write(conn);
    }

    return NGX_OK;
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

    if (rd->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (rd->user.len) {
            argv[argc] = (const char *) rd->user.data;
            argvlen[argc++] = rd->user.len;
        }

        argv[argc] = (const char *) rd->password.data;
        argvlen[argc++] = rd->password.len;

        if (ngx_http_grpc_guard_redis_append(conn, argc, argv, argvlen)
            != NGX_OK
            || ngx_http_grpc_guard_redis_queue(conn,
                                       NGX_HTTP_GRPC_GUARD_REDIS_CMD_AUTH)
               == NULL)
        {
            return NGX_ERROR;
        }
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
ngx_http_grpc_guard_redis_append_call(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t argc, ngx_str_t *argv, ngx_uint_t eval)
{
    size_t                        argvlen[NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS];
    ngx_uint_t                    i;
    const char                   *args[NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS];
    ngx_http_grpc_guard_redis_t  *rd;

    rd = conn->redis;

    if (argc + 2 > NGX_HTTP_GRPC_GUARD_REDIS_MAX_ARGS) {
        return NGX_ERROR;
    }

    if (eval) {
        args[0] = "EVAL";
        argvlen[0] = 4;
        args[1] = (const char *) rd->script.data;
        argvlen[1] = rd->script.len;

    } else {
        args[0] = "EVALSHA";
        argvlen[0] = 7;
        args[1] = (const char *) rd->sha1;
        argvlen[1] = 40;
    }

    for (i = 0; i < argc; i++) {
        args[i + 2] = (const char *) argv[i].data;
        argvlen[i + 2] = argv[i].len;
    }

    return ngx_http_grpc_guard_redis_append(conn, argc + 2, args, argvlen);
}


static ngx_int_t
ngx_http_grpc_guard_redis_append(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t argc, const char **argv, size_t *argvlen)
{
    int      len;
    char    *cmd;
    size_t   size, used;
    u_char  *p;

    len = redisFormatCommandArgv(&cmd, (int) argc, argv, argvlen);
    if (len < 0) {
        return NGX_ERROR;
    }

    if (conn->start == NULL
        || (size_t) (conn->end - conn->last) < (size_t) len)
    {
        /* move what is left to send to the front, or grow the buffer */

        used = conn->start ? (size_t) (conn->last - conn->pos) : 0;

        if (conn->start && conn->pos != conn->start) {

            if (used) {
                ngx_memmove(conn->start, conn->pos, used);
            }

            conn->pos = conn->start;
            conn->last = conn->start + used;
        }

        if (conn->start == NULL
            || (size_t) (conn->end - conn->last) < (size_t) len)
        {
            size = conn->start ? (size_t) (conn->end - conn->start) : 4096;

            while (size - used < (size_t) len) {
                size *= 2;
            }

            if (size > NGX_HTTP_GRPC_GUARD_REDIS_MAX_OUTPUT) {
                ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                              "redis output buffer is full");
                redisFreeCommand(cmd);
                return NGX_ERROR;
            }

            p = ngx_alloc(size, &conn->log);
            if (p == NULL) {
                redisFreeCommand(cmd);
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
        }
    }

    conn->last = ngx_cpymem(conn->last, cmd, len);

    redisFreeCommand(cmd);

    return NGX_OK;
}


static ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_redis_queue(ngx_http_grpc_guard_redis_conn_t *conn,
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

    ngx_queue_insert_tail(&conn->pending, &cmd->queue);
    conn->npending++;

    return cmd;
}


static void
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


static void
ngx_http_grpc_guard_redis_post_write(ngx_http_grpc_guard_redis_conn_t *conn)
{
    ngx_connection_t  *c;

    /*
     * the write is posted, not made at once: the commands of every
     * request handled in this event loop iteration go out together
     */

    c = conn->peer.connection;

    if (c == NULL || conn->state == NGX_HTTP_GRPC_GUARD_REDIS_CONNECTING) {
        return;
    }

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


static void
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

        conn->state = NGX_HTTP_GRPC_GUARD_REDIS_HANDSHAKE;
        conn->log.action = "talking to redis";
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


static void
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
                level = conn->npending ? NGX_LOG_ERR : NGX_LOG_INFO;

                ngx_log_error(level, &conn->log, 0,
                              "redis closed the connection");
            }

            /* an idle connection closed by Redis is no failure */

            ngx_http_grpc_guard_redis_close(conn, conn->npending != 0
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

    if (reply->type == REDIS_REPLY_ERROR
        && reply->len >= sizeof("NOSCRIPT") - 1
        && ngx_strncmp(reply->str, "NOSCRIPT", sizeof("NOSCRIPT") - 1) == 0
        && cmd->handler
        && !cmd->retried)
    {
        /* the script was flushed since the connection loaded it */

        ngx_log_error(NGX_LOG_WARN, &conn->log, 0,
                      "redis lost the limiter script, sending EVAL");

        if (ngx_http_grpc_guard_redis_append_call(conn, cmd->argc, cmd->argv,
                                                  1)
            == NGX_OK)
        {
            cmd->retried = 1;
            ngx_queue_insert_tail(&conn->pending, &cmd->queue);
            conn->npending++;
            ngx_http_grpc_guard_redis_post_write(conn);
            return;
        }
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

    /* detached: the reply, if it ever comes, is dropped */

    cmd->handler = NULL;
    cmd->data = NULL;
    cmd->argv = NULL;

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


static void
ngx_http_grpc_guard_redis_close(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t failed)
{
    void                                  *data;
    ngx_queue_t                           *q, pending;
    ngx_http_grpc_guard_redis_t           *rd;
    ngx_http_grpc_guard_redis_cmd_t       *cmd;
    ngx_http_grpc_guard_redis_handler_pt   handler;

    rd = conn->redis;

    if (conn->peer.connection) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                       "grpc guard redis close, %ui pending",
                       conn->npending);

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

    /*
     * the breaker opens before the callers learn about the failure,
     * so that they do not try this Redis again at once
     */

    if (failed) {
        ngx_http_grpc_guard_redis_failed(rd);
    }

    ngx_queue_init(&pending);

    if (!ngx_queue_empty(&conn->pending)) {
        pending = conn->pending;
        pending.next->prev = &pending;
        pending.prev->next = &pending;
        ngx_queue_init(&conn->pending);
    }

    conn->npending = 0;

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
}


static void
ngx_http_grpc_guard_redis_failed(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_msec_t  backoff, delay;

    if (rd->exiting) {
        return;
    }

    rd->failures++;

    if (!rd->open) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "grpc guard: redis %V is unavailable", &rd->name);
    }

    rd->open = 1;

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

    return ngx_snprintf(p, len, ", grpc guard redis: %V",
                        &conn->redis->name);
}
