
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Redis Cluster replies: what a node sends to the limiter and the module
 * reads for routing (ngx_http_grpc_guard_redis_cluster.c).  The input is
 * RESP bytes, read by the module's reader (hiredis's redisReader with the
 * module's bound on arrays: this file includes
 * ngx_http_grpc_guard_redis.c, whose reader is private, and the target is
 * linked without its object); every complete reply goes through:
 *
 *   - ngx_http_grpc_guard_cluster_parse_range, for each element of an
 *     array (a CLUSTER SLOTS range) and the array itself;
 *   - ngx_http_grpc_guard_cluster_parse_redirect, for an error or status
 *     text (-MOVED SLOT HOST:PORT, -ASK ...);
 *   - ngx_http_grpc_guard_cluster_slot, for a string (a key).
 *
 * Properties: a range taken has start <= end < 16384, a port 1-65535 and
 * an address inside the reply; a redirection taken has a slot < 16384, a
 * port 1-65535, an address inside the text and not empty, and written
 * again as "MOVED|ASK SLOT ADDRESS:PORT" it reads back the same; the slot
 * of a key is < 16384 and is the slot of its hash tag alone when it has
 * one; the reader never allocates much more than was sent (libFuzzer's
 * malloc limit), and every reply is freed (LeakSanitizer).
 */


#include "ngx_http_grpc_guard_redis.c"

#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_fuzz_cluster_reply(redisReply *r, ngx_uint_t depth);
static void ngx_fuzz_cluster_range(redisReply *r);
static void ngx_fuzz_cluster_redirect(u_char *p, size_t len);
static void ngx_fuzz_cluster_slot(u_char *p, size_t len);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    /* CRC-16/XMODEM's check value, and Redis's own example */

    if (ngx_http_grpc_guard_cluster_slot((u_char *) "123456789", 9)
        != (0x31c3 & 16383)
        || ngx_http_grpc_guard_cluster_slot((u_char *) "foo", 3) != 12182
        || ngx_http_grpc_guard_cluster_slot((u_char *) "{foo}.bar", 9)
           != 12182)
    {
        abort();
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void         *reply;
    u_char       *input;
    ngx_pool_t   *pool;
    redisReader  *reader;

    pool = ngx_fuzz_pool();

    input = ngx_fuzz_dup(pool, data, size);

    ngx_fuzz_cluster_slot(input, size);

    reader = ngx_http_grpc_guard_redis_reader();
    if (reader == NULL) {
        abort();
    }

    if (redisReaderFeed(reader, (const char *) input, size) == REDIS_OK) {

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(reader, &reply) != REDIS_OK
                || reply == NULL)
            {
                break;
            }

            ngx_fuzz_cluster_reply(reply, 0);

            freeReplyObject(reply);
        }
    }

    redisReaderFree(reader);

    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_fuzz_cluster_reply(redisReply *r, ngx_uint_t depth)
{
    size_t  i;

    switch (r->type) {

    case REDIS_REPLY_ARRAY:
        ngx_fuzz_cluster_range(r);

        for (i = 0; i < r->elements && depth < 2; i++) {
            ngx_fuzz_cluster_reply(r->element[i], depth + 1);
        }

        break;

    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
        ngx_fuzz_cluster_redirect((u_char *) r->str, r->len);
        break;

    case REDIS_REPLY_STRING:
        ngx_fuzz_cluster_slot((u_char *) r->str, r->len);
        ngx_fuzz_cluster_redirect((u_char *) r->str, r->len);
        break;

    default:
        break;
    }
}


static void
ngx_fuzz_cluster_range(redisReply *r)
{
    ngx_int_t   port;
    ngx_str_t   ip;
    ngx_uint_t  start, end;
    redisReply  *m;

    if (ngx_http_grpc_guard_cluster_parse_range(r, &start, &end, &ip, &port)
        != NGX_OK)
    {
        return;
    }

    m = r->element[2]->element[0];

    if (start > end || end >= 16384 || port < 1 || port > 65535
        || ip.data != (u_char *) m->str || ip.len != m->len)
    {
        abort();
    }
}


static void
ngx_fuzz_cluster_redirect(u_char *p, size_t len)
{
    u_char      *again, *last;
    ngx_int_t    port, port2;
    ngx_str_t    ip, ip2;
    ngx_uint_t   ask, ask2, slot, slot2;

    if (ngx_http_grpc_guard_cluster_parse_redirect(p, len, &ask, &slot, &ip,
                                                   &port)
        != NGX_OK)
    {
        return;
    }

    if (slot >= 16384 || port < 1 || port > 65535
        || ip.len == 0 || ip.data < p || ip.data + ip.len > p + len)
    {
        abort();
    }

    /* written again, canonically, it reads back the same */

    again = malloc(ip.len + 64);
    if (again == NULL) {
        abort();
    }

    last = ngx_sprintf(again, "%s %ui %V:%i", ask ? "ASK" : "MOVED", slot,
                       &ip, port);

    if (ngx_http_grpc_guard_cluster_parse_redirect(again, last - again,
                                                   &ask2, &slot2, &ip2,
                                                   &port2)
        != NGX_OK
        || ask2 != ask || slot2 != slot || port2 != port
        || ip2.len != ip.len || ngx_memcmp(ip2.data, ip.data, ip.len) != 0)
    {
        /* an address in brackets loses them: "[x]" read back as "x" */

        if (!(ip.len > 2 && ip.data[0] == '[')) {
            abort();
        }
    }

    free(again);
}


static void
ngx_fuzz_cluster_slot(u_char *p, size_t len)
{
    u_char      *open, *close, *last;
    ngx_uint_t   slot;

    slot = ngx_http_grpc_guard_cluster_slot(p, len);

    if (slot >= 16384) {
        abort();
    }

    /* the slot of a key with a hash tag is the tag's */

    last = p + len;
    open = ngx_strlchr(p, last, '{');

    if (open == NULL) {
        return;
    }

    close = ngx_strlchr(open + 1, last, '}');

    if (close == NULL || close == open + 1) {
        return;
    }

    if (ngx_strlchr(open + 1, close, '{') == NULL
        && ngx_http_grpc_guard_cluster_slot(open + 1, close - open - 1)
           != slot)
    {
        abort();
    }
}
