
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Natural batching of the limiter's checks on a Redis connection.
 *
 * A check (ngx_http_grpc_guard_redis_eval()) waits on its connection
 * while a batch is in flight there; the next write carries every check
 * waiting, up to NGX_HTTP_GRPC_GUARD_REDIS_BATCH_CALLS of them and
 * NGX_HTTP_GRPC_GUARD_REDIS_BATCH_SIZE bytes of arguments, in one
 * script call, "EVALSHA sha1 0 <check> <check> ...", whose reply is an
 * array with one element per check, in order.  A check on an idle
 * connection goes out in the write of the same event loop iteration:
 * no timer, no added wait.  Each check keeps its own timeout and may be
 * cancelled; an error reply fails every check of its batch.  What a
 * check's arguments and its element mean is the script's business
 * (ngx_http_grpc_guard_limit_script.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_redis.h"


static ngx_int_t ngx_http_grpc_guard_redis_write_batch(
    ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_cmd_t *batch, ngx_uint_t eval);
static u_char *ngx_http_grpc_guard_redis_bulk(u_char *p, u_char *data,
    size_t len);


ngx_int_t
ngx_http_grpc_guard_redis_flush(ngx_http_grpc_guard_redis_conn_t *conn)
{
    size_t                            size;
    ngx_queue_t                      *q;
    ngx_http_grpc_guard_redis_cmd_t  *batch, *cmd;

    /*
     * the checks waiting go in batches: one when none is in flight (the
     * next goes when its reply is read), more only while a full batch
     * is waiting, and not past MAX_PENDING checks in flight
     */

    while (conn->nwaiting
           && (conn->nbatches == 0
               || (conn->nwaiting >= NGX_HTTP_GRPC_GUARD_REDIS_BATCH_CALLS
                   && conn->nbatches < NGX_HTTP_GRPC_GUARD_REDIS_MAX_BATCHES)))
    {
        batch = ngx_http_grpc_guard_redis_alloc_cmd(conn,
                                          NGX_HTTP_GRPC_GUARD_REDIS_CMD_BATCH);
        if (batch == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&batch->checks);
        size = 0;

        while (!ngx_queue_empty(&conn->waiting)
               && batch->nchecks < NGX_HTTP_GRPC_GUARD_REDIS_BATCH_CALLS)
        {
            q = ngx_queue_head(&conn->waiting);
            cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

            if (batch->nchecks
                && size + cmd->size > NGX_HTTP_GRPC_GUARD_REDIS_BATCH_SIZE)
            {
                break;
            }

            ngx_queue_remove(q);
            conn->nwaiting--;

            cmd->waiting = 0;
            size += cmd->size;

            ngx_queue_insert_tail(&batch->checks, q);
            batch->nchecks++;
        }

        /* queued first: bytes in the buffer always have their command */

        ngx_queue_insert_tail(&conn->pending, &batch->queue);
        conn->npending++;
        conn->nbatches++;

        if (ngx_http_grpc_guard_redis_write_batch(conn, batch, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_redis_write_batch(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_cmd_t *batch, ngx_uint_t eval)
{
    u_char                           *p;
    size_t                            size;
    ngx_uint_t                        argc, i;
    ngx_queue_t                      *q;
    ngx_http_grpc_guard_redis_t      *rd;
    ngx_http_grpc_guard_redis_cmd_t  *cmd;

    /*
     * "EVALSHA sha1 0" (or "EVAL script 0") and the arguments of every
     * check, one after the other: no key is declared, the script finds
     * the checks in ARGV
     */

    rd = conn->redis;

    argc = 3;
    size = 3 * (1 + NGX_SIZE_T_LEN + 4) + rd->script.len + 4;

    for (q = ngx_queue_head(&batch->checks);
         q != ngx_queue_sentinel(&batch->checks);
         q = ngx_queue_next(q))
    {
        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);
        argc += cmd->argc;
        size += cmd->size;
    }

    if (ngx_http_grpc_guard_redis_reserve(conn, size) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(conn->last, "*%ui\r\n", argc);

    if (eval) {
        p = ngx_http_grpc_guard_redis_bulk(p, (u_char *) "EVAL", 4);
        p = ngx_http_grpc_guard_redis_bulk(p, rd->script.data,
                                           rd->script.len);

    } else {
        p = ngx_http_grpc_guard_redis_bulk(p, (u_char *) "EVALSHA", 7);
        p = ngx_http_grpc_guard_redis_bulk(p, rd->sha1, 40);
    }

    p = ngx_http_grpc_guard_redis_bulk(p, (u_char *) "0", 1);

    for (q = ngx_queue_head(&batch->checks);
         q != ngx_queue_sentinel(&batch->checks);
         q = ngx_queue_next(q))
    {
        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

        for (i = 0; i < cmd->argc; i++) {
            p = ngx_http_grpc_guard_redis_bulk(p, cmd->argv[i].data,
                                               cmd->argv[i].len);
        }
    }

    conn->last = p;

    return NGX_OK;
}


static u_char *
ngx_http_grpc_guard_redis_bulk(u_char *p, u_char *data, size_t len)
{
    u_char  *d;
    size_t   n;
    u_char   digits[NGX_SIZE_T_LEN];

    /* "$" length CRLF data CRLF: a bulk string of the protocol */

    d = digits + NGX_SIZE_T_LEN;
    n = len;

    do {
        *--d = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    *p++ = '$';
    p = ngx_cpymem(p, d, digits + NGX_SIZE_T_LEN - d);
    *p++ = CR;
    *p++ = LF;
    p = ngx_cpymem(p, data, len);
    *p++ = CR;
    *p++ = LF;

    return p;
}


void
ngx_http_grpc_guard_redis_batch_reply(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_http_grpc_guard_redis_cmd_t *batch, redisReply *reply)
{
    void                                  *data, *result;
    ngx_uint_t                             i, n, stale, generation;
    ngx_queue_t                           *q, checks;
    ngx_http_grpc_guard_redis_t           *rd;
    ngx_http_grpc_guard_redis_cmd_t       *cmd;
    ngx_http_grpc_guard_redis_handler_pt   handler;

    rd = conn->redis;

    conn->nbatches--;

    /* the checks nobody waits for any more are dropped */

    for (q = ngx_queue_head(&batch->checks);
         q != ngx_queue_sentinel(&batch->checks);
         /* void */)
    {
        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);
        q = ngx_queue_next(q);

        if (cmd->handler == NULL && reply->type == REDIS_REPLY_ERROR) {
            ngx_queue_remove(&cmd->queue);
            batch->nchecks--;
            ngx_http_grpc_guard_redis_free_cmd(rd, cmd);
        }
    }

    if (reply->type == REDIS_REPLY_ERROR
        && reply->len >= sizeof("NOSCRIPT") - 1
        && ngx_strncmp(reply->str, "NOSCRIPT", sizeof("NOSCRIPT") - 1) == 0
        && batch->nchecks
        && !batch->retried)
    {
        /* the script was flushed since the connection loaded it */

        ngx_log_error(NGX_LOG_WARN, &conn->log, 0,
                      "redis lost the limiter script, sending EVAL");

        ngx_queue_insert_tail(&conn->pending, &batch->queue);
        conn->npending++;
        conn->nbatches++;
        batch->retried = 1;

        if (ngx_http_grpc_guard_redis_write_batch(conn, batch, 1) == NGX_OK) {
            ngx_http_grpc_guard_redis_post_write(conn);
            return;
        }

        ngx_queue_remove(&batch->queue);
        conn->npending--;
        conn->nbatches--;
    }

    /*
     * with Sentinel, a replica (the old master after a failover) or a
     * server still loading its data: these calls fail as the failure
     * mode says, the connection goes and the sentinels are asked again
     */

    stale = rd->sentinel
            && conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA
            && reply->type == REDIS_REPLY_ERROR
            && ((reply->len >= sizeof("READONLY") - 1
                 && ngx_strncmp(reply->str, "READONLY",
                                sizeof("READONLY") - 1) == 0)
                || (reply->len >= sizeof("LOADING") - 1
                    && ngx_strncmp(reply->str, "LOADING",
                                   sizeof("LOADING") - 1) == 0));

    /*
     * the reply has an element for each check, in order; an error fails
     * every check of the batch; anything else is no answer
     */

    n = batch->nchecks;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements != n) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis sent %uz results for %ui checks",
                      (size_t) reply->elements, n);
    }

    ngx_http_grpc_guard_redis_collect(batch, &checks);

    generation = conn->generation;

    for (i = 0; !ngx_queue_empty(&checks); i++) {
        q = ngx_queue_head(&checks);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue);

        handler = cmd->handler;
        data = cmd->data;

        if (handler) {
            ngx_http_grpc_guard_metrics_latency(rd->metrics, cmd->start);
        }

        ngx_http_grpc_guard_redis_free_cmd(rd, cmd);

        if (reply->type != REDIS_REPLY_ARRAY) {
            result = reply;

        } else {
            result = (reply->elements == n) ? reply->element[i] : NULL;
        }

        if (handler) {
            handler(data, result);
        }
    }

    if (conn->generation != generation) {
        return;
    }

    if (stale) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis is no longer the master: %*s",
                      (size_t) ngx_min(reply->len, 64), reply->str);

        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    if (conn->nwaiting) {

        /* the calls that came meanwhile: the next batch */

        ngx_http_grpc_guard_redis_post_write(conn);
    }
}


void
ngx_http_grpc_guard_redis_collect(ngx_http_grpc_guard_redis_cmd_t *batch,
    ngx_queue_t *checks)
{
    ngx_http_grpc_guard_redis_conn_t  *conn;

    /* the checks of a batch, which goes back to the free commands */

    conn = batch->conn;

    ngx_queue_init(checks);

    if (!ngx_queue_empty(&batch->checks)) {
        *checks = batch->checks;
        checks->next->prev = checks;
        checks->prev->next = checks;
    }

    ngx_http_grpc_guard_redis_free_cmd(conn->redis, batch);
}
