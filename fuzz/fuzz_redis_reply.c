
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Redis replies: the bytes a Redis server sends, read by the module's
 * read handler (ngx_http_grpc_guard_redis_read_handler: hiredis's
 * redisReader, then the dispatch to the pending commands, the handshake
 * replies, the reply of a batch of checks split into the checks'
 * results (ngx_http_grpc_guard_redis_batch_reply: an error for all, the
 * NOSCRIPT retry, an array of the wrong size), the close on a protocol
 * error), and each check's result interpreted by
 * ngx_http_grpc_guard_limit_parse.
 *
 * The connection, command and limiter types are private to redis.c and
 * limit.c: this file includes both sources (and the target is linked
 * without their objects), so what runs is still the module's code.
 *
 * Input: 3 bytes of setup, then what Redis sends:
 *   [0] bit 0: AUTH, bit 1: SELECT, bit 2: SCRIPT LOAD are pending
 *       before the calls (the handshake); bits 3-5: 1 to 8 calls, sent
 *       in one batch (a script call); bit 6: the second call was
 *       cancelled; bit 7: the server closes the connection after the
 *       bytes (else they simply stop)
 *   [1] bytes handed over per recv(): 1 to 255, 0: up to 16384
 *   [2] limits of the calls: 1 to 16
 *
 * Properties: the reply handler never reads past a reply (hiredis
 * allocates each string and array with its exact size, ASan watches);
 * no reply header makes the reader allocate much more than was sent
 * (libFuzzer's malloc limit: fuzz/redis_reply.options);
 * every call is answered at most once, and exactly once when the
 * connection closes; a limiter reply is allowed with remaining >= 0,
 * refused by one of the call's limits for 1 ms to 2 h, or failed; the
 * connection's memory is all freed (LeakSanitizer).
 */


#include "ngx_http_grpc_guard_redis.c"
#include "ngx_http_grpc_guard_limit.c"

#include "ngx_fuzz_common.h"


#define NGX_FUZZ_REDIS_MAX_CALLS  8


typedef struct {
    ngx_http_grpc_guard_limit_ctx_t   lctx;
    ngx_uint_t                        answers;
    ngx_uint_t                        failed;   /* answered with NULL */
} ngx_fuzz_redis_call_t;


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssize_t ngx_fuzz_redis_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
static void ngx_fuzz_redis_handler(void *data, void *reply);


static ngx_str_t  ngx_fuzz_redis_argv[] = {
    ngx_string("1"),
    ngx_string("grpc_guard:{limit}:calls:alice"),
    ngx_string("100"),
    ngx_string("1000")
};


/* what the fake connection's recv() hands over */

static const u_char  *ngx_fuzz_redis_pos;
static const u_char  *ngx_fuzz_redis_last;
static size_t         ngx_fuzz_redis_chunk;
static ngx_uint_t     ngx_fuzz_redis_eof;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    ngx_http_grpc_guard_module.ctx_index = 0;

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                            *input;
    void                              *main_conf[1];
    ngx_uint_t                         i, ncalls, generation, answered;
    ngx_uint_t                         pending, handshake;
    ngx_log_t                         *log;
    ngx_pool_t                        *pool;
    ngx_queue_t                       *q;
    ngx_event_t                       *rev, *wev;
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    ngx_fuzz_redis_call_t             *calls;
    ngx_http_grpc_guard_redis_t       *rd;
    ngx_http_grpc_guard_redis_cmd_t   *cmd, *batch;
    ngx_http_grpc_guard_redis_conn_t  *conn;
    ngx_http_grpc_guard_main_conf_t   *gmcf;

    if (size < 3) {
        return 0;
    }

    log = ngx_fuzz_log();
    pool = ngx_fuzz_pool();

    /* the bytes Redis sends, each recv() from an exact-size copy */

    input = ngx_fuzz_dup(pool, data + 3, size - 3);

    ngx_fuzz_redis_pos = input;
    ngx_fuzz_redis_last = input + (size - 3);
    ngx_fuzz_redis_chunk = data[1] ? data[1] : 16384;
    ngx_fuzz_redis_eof = (data[0] & 0x80) != 0;

    /* the server, as ngx_http_grpc_guard_redis_directive() leaves it */

    rd = ngx_pcalloc(pool, sizeof(ngx_http_grpc_guard_redis_t));
    conn = ngx_pcalloc(pool, sizeof(ngx_http_grpc_guard_redis_conn_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    rev = ngx_pcalloc(pool, sizeof(ngx_event_t));
    wev = ngx_pcalloc(pool, sizeof(ngx_event_t));
    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    gmcf = ngx_pcalloc(pool, sizeof(ngx_http_grpc_guard_main_conf_t));

    if (rd == NULL || conn == NULL || c == NULL || rev == NULL || wev == NULL
        || r == NULL || gmcf == NULL)
    {
        abort();
    }

    ngx_str_set(&rd->name, "127.0.0.1:6379");
    rd->timeout = 1000;
    rd->keepalive = 1;
    rd->conns = conn;
    rd->log = log;
    ngx_queue_init(&rd->free);

    /* no backoff timer: there is no event loop here */
    rd->exiting = 1;

    ngx_http_grpc_guard_redis_set_script(rd,
                                         &ngx_http_grpc_guard_limit_script);

    /* a connection that is open: fd -1 makes closing it a no-op */

    c->fd = (ngx_socket_t) -1;
    c->data = conn;
    c->read = rev;
    c->write = wev;
    c->log = &conn->log;
    c->recv = ngx_fuzz_redis_recv;

    rev->data = c;
    rev->log = &conn->log;
    rev->active = 1;
    rev->ready = 1;
    wev->data = c;
    wev->log = &conn->log;
    wev->active = 1;

    conn->redis = rd;
    conn->log = *log;
    conn->peer.connection = c;
    conn->peer.name = &rd->name;
    ngx_queue_init(&conn->pending);
    ngx_queue_init(&conn->waiting);

    /* as ngx_http_grpc_guard_redis_connect() makes it */
    conn->reader = ngx_http_grpc_guard_redis_reader();
    if (conn->reader == NULL) {
        abort();
    }

    /* the request of the limiter calls */

    main_conf[0] = gmcf;

    r->connection = c;
    r->pool = pool;
    r->main = r;
    r->main_conf = main_conf;

    /* what is pending, in the order it was written */

    handshake = 0;

    for (i = 0; i < 3; i++) {
        if (data[0] & (1 << i)) {
            if (ngx_http_grpc_guard_redis_queue(conn, i + 1) == NULL) {
                abort();
            }

            handshake++;
        }
    }

    conn->state = handshake ? NGX_HTTP_GRPC_GUARD_REDIS_HANDSHAKE
                            : NGX_HTTP_GRPC_GUARD_REDIS_READY;

    ncalls = ((data[0] >> 3) & 7) + 1;

    calls = ngx_pcalloc(pool, ncalls * sizeof(ngx_fuzz_redis_call_t));
    if (calls == NULL) {
        abort();
    }

    /* the calls, sent in one batch, as ngx_http_grpc_guard_redis_flush() */

    batch = ngx_http_grpc_guard_redis_queue(conn,
                                          NGX_HTTP_GRPC_GUARD_REDIS_CMD_BATCH);
    if (batch == NULL) {
        abort();
    }

    ngx_queue_init(&batch->checks);
    conn->nbatches++;

    for (i = 0; i < ncalls; i++) {
        cmd = ngx_http_grpc_guard_redis_alloc_cmd(conn,
                                           NGX_HTTP_GRPC_GUARD_REDIS_CMD_CALL);
        if (cmd == NULL) {
            abort();
        }

        ngx_queue_insert_tail(&batch->checks, &cmd->queue);
        batch->nchecks++;

        calls[i].lctx.request = r;
        calls[i].lctx.n = (data[2] % 16) + 1;
        calls[i].lctx.cmd = cmd;

        if (i == 1 && (data[0] & 0x40)) {

            /* the client went away: the reply is read and dropped */

            ngx_http_grpc_guard_redis_cancel(cmd);
            continue;
        }

        cmd->handler = ngx_fuzz_redis_handler;
        cmd->data = &calls[i];
        cmd->argc = 4;
        cmd->argv = ngx_fuzz_redis_argv;
    }

    generation = conn->generation;

    ngx_http_grpc_guard_redis_read_handler(rev);

    answered = 0;

    for (i = 0; i < ncalls; i++) {
        ngx_fuzz_assert(calls[i].answers <= 1);
        answered += calls[i].answers;
    }

    if (conn->generation != generation) {

        /* closed: every caller knows, nothing is left */

        ngx_fuzz_assert(conn->reader == NULL);
        ngx_fuzz_assert(conn->npending == 0);
        ngx_fuzz_assert(ngx_queue_empty(&conn->pending));
        ngx_fuzz_assert(conn->state == NGX_HTTP_GRPC_GUARD_REDIS_DOWN);

        for (i = 0; i < ncalls; i++) {
            if (i == 1 && (data[0] & 0x40)) {
                ngx_fuzz_assert(calls[i].answers == 0);
                continue;
            }

            ngx_fuzz_assert(calls[i].answers == 1);
        }

    } else {
        /* open: it read everything and waits for more */

        ngx_fuzz_assert(!ngx_fuzz_redis_eof
                        && ngx_fuzz_redis_pos == ngx_fuzz_redis_last);

        pending = 0;

        for (q = ngx_queue_head(&conn->pending);
             q != ngx_queue_sentinel(&conn->pending);
             q = ngx_queue_next(q))
        {
            pending++;
        }

        ngx_fuzz_assert(pending == conn->npending);
        ngx_fuzz_assert(pending <= handshake + 1);
        ngx_fuzz_assert(conn->nbatches <= 1);

        /* a batch retried after NOSCRIPT is pending again, unanswered */

        ngx_fuzz_assert(conn->nbatches == 0 || answered == 0);

        ngx_http_grpc_guard_redis_close(conn, 0);

        for (i = 0; i < ncalls; i++) {
            if (!(i == 1 && (data[0] & 0x40))) {
                ngx_fuzz_assert(calls[i].answers == 1);
            }
        }
    }

    /* what ngx_http_grpc_guard_redis_exit_process() frees */

    while (!ngx_queue_empty(&rd->free)) {
        q = ngx_queue_head(&rd->free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_grpc_guard_redis_cmd_t, queue));
    }

    if (conn->start) {
        ngx_free(conn->start);
    }

    if (wev->posted) {
        ngx_delete_posted_event(wev);
    }

    ngx_destroy_pool(pool);

    return 0;
}


static ssize_t
ngx_fuzz_redis_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    size_t  n;

    if (ngx_fuzz_redis_pos == ngx_fuzz_redis_last) {
        return ngx_fuzz_redis_eof ? 0 : NGX_AGAIN;
    }

    n = ngx_min(size, ngx_fuzz_redis_chunk);
    n = ngx_min(n, (size_t) (ngx_fuzz_redis_last - ngx_fuzz_redis_pos));

    ngx_memcpy(buf, ngx_fuzz_redis_pos, n);
    ngx_fuzz_redis_pos += n;

    return n;
}


static void
ngx_fuzz_redis_handler(void *data, void *reply)
{
    ngx_fuzz_redis_call_t  *call = data;

    ngx_http_grpc_guard_limit_ctx_t  *lctx;

    call->answers++;

    if (reply == NULL) {
        call->failed++;
        return;
    }

    /* what ngx_http_grpc_guard_limit_reply() does with a reply */

    lctx = &call->lctx;
    lctx->cmd = NULL;
    lctx->outcome = (ngx_uint_t) -1;

    ngx_http_grpc_guard_limit_parse(lctx, reply);

    switch (lctx->outcome) {

    case NGX_HTTP_GRPC_GUARD_LIMIT_ALLOWED:
        ngx_fuzz_assert(lctx->remaining >= 0);
        break;

    case NGX_HTTP_GRPC_GUARD_LIMIT_REFUSED:
        ngx_fuzz_assert(lctx->index < lctx->n);
        ngx_fuzz_assert(lctx->wait >= 1 && lctx->wait <= 2 * 3600 * 1000);
        ngx_fuzz_assert(lctx->remaining == 0);
        break;

    case NGX_HTTP_GRPC_GUARD_LIMIT_FAILED:
        break;

    default:
        ngx_fuzz_assert(0 && "no outcome");
    }
}
