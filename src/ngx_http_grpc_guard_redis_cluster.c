
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Redis Cluster for the limiter: which master owns the slot of each
 * counter, and one call split into one script call per master.
 *
 *   - every worker reads the slot map (CLUSTER SLOTS) from one of the
 *     nodes it knows (first the addresses of "cluster="), again every
 *     few seconds, at once after -MOVED or a node's failure, and every
 *     half second while a master that owns slots is unreachable;
 *   - every master is a client of its own (ngx_http_grpc_guard_redis.c:
 *     connections, script loaded on each, NOSCRIPT, breaker), so that a
 *     master that is down fails only the counters it owns;
 *   - a call's keys are grouped by master: one check per master, all
 *     sent at once, the call waits for the slowest, at most "timeout";
 *     each check goes in the next batch of its master's connection
 *     (ngx_http_grpc_guard_redis_batch.c: one EVALSHA for the checks of
 *     many calls, keys after numkeys 0), and the script is loaded with
 *     the flag "allow-cross-slot-keys";
 *   - Redis cannot redirect a script whose keys it was not told: a node
 *     that does not own a key of a batch fails the whole batch ("Script
 *     attempted to access a non local key"); its checks are then sent
 *     again one EVAL per slot, outside the batches, with the keys
 *     declared: -MOVED updates the slot and sends again, -ASK sends again
 *     to the node named, after ASKING;
 *   - the results are merged into one for the limiter: a refusal wins
 *     (with the longest wait), then a failure (with the limits of the
 *     masters that failed, when others answered: the failure mode is for
 *     those), else the fewest calls remaining.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_redis.h"


#define NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS       16384
#define NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_NODES   64

/* the keys of one call (the limits of a location) */
#define NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_KEYS    32

/* redirections of one part of a call */
#define NGX_HTTP_GRPC_GUARD_CLUSTER_REDIRECTS   3

#define NGX_HTTP_GRPC_GUARD_CLUSTER_PERIOD      5000
#define NGX_HTTP_GRPC_GUARD_CLUSTER_FAST        500

/*
 * put before the limiter's script: keys in several slots are allowed;
 * a check sent alone declares its keys (KEYS, then a rate and a window
 * for each in ARGV), which become one check of a batch's ARGV
 */
#define NGX_HTTP_GRPC_GUARD_CLUSTER_SHEBANG                                  \
    "#!lua flags=allow-cross-slot-keys\n"                                    \
    "local ARGV = ARGV\n"                                                    \
    "if #KEYS > 0 then\n"                                                    \
    "  local a = {#KEYS}\n"                                                  \
    "  for i = 1, #KEYS do\n"                                                \
    "    a[3 * i - 1] = KEYS[i]\n"                                           \
    "    a[3 * i] = ARGV[2 * i - 1]\n"                                       \
    "    a[3 * i + 1] = ARGV[2 * i]\n"                                       \
    "  end\n"                                                                \
    "  ARGV = a\n"                                                           \
    "end\n"


typedef struct {
    ngx_http_grpc_guard_redis_t         redis;  /* its client */
    ngx_sockaddr_t                      sockaddr;
    ngx_uint_t                          nslots;
    u_char                              text[NGX_SOCKADDR_STRLEN];
} ngx_http_grpc_guard_cluster_node_t;


struct ngx_http_grpc_guard_cluster_s {
    ngx_array_t                         seeds;  /* ngx_addr_t */

    /* per worker */

    ngx_http_grpc_guard_redis_t        *conf;   /* the directive's */
    ngx_pool_t                         *pool;
    ngx_log_t                          *log;

    ngx_http_grpc_guard_cluster_node_t *nodes[
                                        NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_NODES];
    ngx_uint_t                          nnodes;

    ngx_event_t                         refresh;
    ngx_uint_t                          next;   /* the node to ask */
    ngx_uint_t                          tried;
    ngx_uint_t                          failures;
    ngx_msec_t                          error_logged;

    unsigned                            refreshing:1;
    unsigned                            known:1;    /* a map was read */
    unsigned                            full:1;     /* said once */

    /* the node of each slot, 1-based; 0: not known */
    u_char                              slots[
                                        NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS];
    u_char                              read[
                                        NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS];
};


typedef struct ngx_http_grpc_guard_cluster_call_s
    ngx_http_grpc_guard_cluster_call_t;


/* the part of a call sent to one master */

typedef struct {
    ngx_http_grpc_guard_cluster_call_t  *call;
    ngx_http_grpc_guard_redis_cmd_t     *cmd;
    ngx_http_grpc_guard_cluster_node_t  *node;
    ngx_str_t                           *argv;  /* 1 + 3 * call->n */
    ngx_uint_t                           nkeys;
    ngx_uint_t                           redirects;
    u_char                               keys[
                                         NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_KEYS];
    u_char                               num[NGX_INT_T_LEN];
    unsigned                             used:1;
    unsigned                             direct:1;  /* one slot, alone */
} ngx_http_grpc_guard_cluster_part_t;


struct ngx_http_grpc_guard_cluster_call_s {

    /* what the limiter holds; its timer is the call's */
    ngx_http_grpc_guard_redis_cmd_t      handle;

    ngx_http_grpc_guard_cluster_t       *cluster;
    ngx_http_grpc_guard_redis_handler_pt  handler;
    void                                *data;

    ngx_uint_t                           n;     /* keys */
    ngx_str_t                           *argv;  /* the limiter's */
    ngx_http_grpc_guard_cluster_part_t  *parts;     /* n */
    ngx_uint_t                           pending;

    /* the merged outcome */
    ngx_uint_t                           index;     /* refused: the key */
    ngx_msec_t                           wait;
    ngx_int_t                            remaining;     /* -1: none */
    uint32_t                             failed_keys;
    unsigned                             refused:1;
    unsigned                             failed:1;
    unsigned                             sending:1;

    uint16_t                             slot[
                                         NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_KEYS];
};


static ngx_http_grpc_guard_cluster_node_t *ngx_http_grpc_guard_cluster_node(
    ngx_http_grpc_guard_cluster_t *cl, u_char *ip, size_t iplen,
    ngx_int_t port);
static ngx_http_grpc_guard_cluster_node_t *
    ngx_http_grpc_guard_cluster_route(ngx_http_grpc_guard_cluster_t *cl,
    ngx_uint_t slot);
static void ngx_http_grpc_guard_cluster_split(
    ngx_http_grpc_guard_cluster_call_t *call, u_char *keys, ngx_uint_t n,
    ngx_uint_t direct, ngx_uint_t redirects);
static void ngx_http_grpc_guard_cluster_send(
    ngx_http_grpc_guard_cluster_part_t *part, ngx_uint_t asking);
static void ngx_http_grpc_guard_cluster_reply(void *data, void *reply);
static ngx_int_t ngx_http_grpc_guard_cluster_redirected(
    ngx_http_grpc_guard_cluster_part_t *part, redisReply *r);
static void ngx_http_grpc_guard_cluster_resend(
    ngx_http_grpc_guard_cluster_part_t *part);
static void ngx_http_grpc_guard_cluster_merge(
    ngx_http_grpc_guard_cluster_part_t *part, redisReply *r);
static void ngx_http_grpc_guard_cluster_fail(
    ngx_http_grpc_guard_cluster_part_t *part);
static void ngx_http_grpc_guard_cluster_done(
    ngx_http_grpc_guard_cluster_part_t *part);
static void ngx_http_grpc_guard_cluster_timeout(ngx_event_t *ev);
static void ngx_http_grpc_guard_cluster_finish(
    ngx_http_grpc_guard_cluster_call_t *call);
static void ngx_http_grpc_guard_cluster_error(
    ngx_http_grpc_guard_cluster_t *cl, ngx_http_grpc_guard_redis_t *node,
    char *what, redisReply *r);

static void ngx_http_grpc_guard_cluster_refresh_handler(ngx_event_t *ev);
static void ngx_http_grpc_guard_cluster_refresh(
    ngx_http_grpc_guard_cluster_t *cl);
static void ngx_http_grpc_guard_cluster_ask_next(
    ngx_http_grpc_guard_cluster_t *cl);
static void ngx_http_grpc_guard_cluster_slots_reply(void *data, void *reply);
static ngx_int_t ngx_http_grpc_guard_cluster_read_map(
    ngx_http_grpc_guard_cluster_t *cl, redisReply *r);
static void ngx_http_grpc_guard_cluster_schedule(
    ngx_http_grpc_guard_cluster_t *cl);


ngx_int_t
ngx_http_grpc_guard_cluster_param(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd, ngx_str_t *value)
{
    ngx_str_t                       list;
    ngx_http_grpc_guard_cluster_t  *cl;

    if (ngx_strncmp(value->data, "cluster=", 8) != 0) {
        return NGX_DECLINED;
    }

    if (rd->cluster) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"cluster=\" in \"grpc_guard_redis\"");
        return NGX_ERROR;
    }

    cl = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_cluster_t));
    if (cl == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&cl->seeds, cf->pool, 3, sizeof(ngx_addr_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    list.len = value->len - 8;
    list.data = value->data + 8;

    if (ngx_http_grpc_guard_redis_addrs(cf, &cl->seeds, &list, "cluster",
                                        6379)
        != NGX_CONF_OK)
    {
        return NGX_ERROR;
    }

    /* the name of the metrics' node, and of the log lines */

    rd->name = *value;
    rd->cluster = cl;

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_cluster_init_process(ngx_cycle_t *cycle,
    ngx_http_grpc_guard_redis_t *rd)
{
    u_char                         *p;
    ngx_str_t                       script;
    ngx_uint_t                      i;
    ngx_addr_t                     *seed;
    ngx_http_grpc_guard_cluster_t  *cl;
    u_char                          text[NGX_SOCKADDR_STRLEN];

    cl = rd->cluster;

    cl->conf = rd;
    cl->pool = cycle->pool;
    cl->log = cycle->log;

    /* the script loaded on the nodes: its keys may be in several slots */

    script.len = sizeof(NGX_HTTP_GRPC_GUARD_CLUSTER_SHEBANG) - 1
                 + rd->script.len;
    script.data = ngx_pnalloc(cycle->pool, script.len);
    if (script.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(script.data, NGX_HTTP_GRPC_GUARD_CLUSTER_SHEBANG,
                   sizeof(NGX_HTTP_GRPC_GUARD_CLUSTER_SHEBANG) - 1);
    ngx_memcpy(p, rd->script.data, rd->script.len);

    ngx_http_grpc_guard_redis_set_script(rd, &script);

    seed = cl->seeds.elts;

    for (i = 0; i < cl->seeds.nelts; i++) {
        p = text + ngx_sock_ntop(seed[i].sockaddr, seed[i].socklen, text,
                                 NGX_SOCKADDR_STRLEN, 0);

        if (ngx_http_grpc_guard_cluster_node(cl, text, p - text,
                               ngx_inet_get_port(seed[i].sockaddr))
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    cl->refresh.handler = ngx_http_grpc_guard_cluster_refresh_handler;
    cl->refresh.data = cl;
    cl->refresh.log = cycle->log;
    cl->refresh.cancelable = 1;

    /* workers start on different nodes; the map is read at once */

    cl->next = ngx_worker % cl->nnodes;

    ngx_add_timer(&cl->refresh, 1);

    return NGX_OK;
}


void
ngx_http_grpc_guard_cluster_exit_process(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_uint_t                      i;
    ngx_http_grpc_guard_cluster_t  *cl;

    cl = rd->cluster;

    rd->exiting = 1;

    if (cl->conf == NULL) {
        return;
    }

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    for (i = 0; i < cl->nnodes; i++) {
        cl->nodes[i]->redis.exiting = 1;
    }

    for (i = 0; i < cl->nnodes; i++) {
        ngx_http_grpc_guard_redis_exit_worker(&cl->nodes[i]->redis);
    }
}


ngx_uint_t
ngx_http_grpc_guard_cluster_slot(u_char *key, size_t len)
{
    u_char      *p, *last, *open, *close;
    ngx_uint_t   crc, i;

    /* a hash tag, "{...}" not empty, names the slot instead of the key */

    last = key + len;

    open = ngx_strlchr(key, last, '{');

    if (open) {
        close = ngx_strlchr(open + 1, last, '}');

        if (close && close > open + 1) {
            key = open + 1;
            last = close;
        }
    }

    /* CRC-16/XMODEM: polynomial 0x1021, no reflection, initial 0 */

    crc = 0;

    for (p = key; p < last; p++) {
        crc ^= (ngx_uint_t) *p << 8;

        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
        }

        crc &= 0xffff;
    }

    return crc & (NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS - 1);
}


ngx_int_t
ngx_http_grpc_guard_cluster_parse_redirect(u_char *p, size_t len,
    ngx_uint_t *ask, ngx_uint_t *slot, ngx_str_t *ip, ngx_int_t *port)
{
    u_char     *last, *sp, *colon;
    ngx_int_t   n;

    /* "MOVED 3999 127.0.0.1:6381", "ASK 3999 [::1]:6381" or "::1:6381" */

    last = p + len;

    if (len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        *ask = 0;
        p += 6;

    } else if (len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        *ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    sp = ngx_strlchr(p, last, ' ');
    if (sp == NULL) {
        return NGX_ERROR;
    }

    n = ngx_atoi(p, sp - p);
    if (n == NGX_ERROR || n >= NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS) {
        return NGX_ERROR;
    }

    *slot = n;

    p = sp + 1;

    /* the port follows the last ":" */

    for (colon = last - 1; colon >= p && *colon != ':'; colon--) {
        /* void */
    }

    if (colon <= p) {
        return NGX_ERROR;
    }

    *port = ngx_atoi(colon + 1, last - colon - 1);
    if (*port < 1 || *port > 65535) {
        return NGX_ERROR;
    }

    if (colon - p > 2 && *p == '[' && colon[-1] == ']') {
        p++;
        colon--;
    }

    ip->data = p;
    ip->len = colon - p;

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_cluster_parse_range(redisReply *r, ngx_uint_t *start,
    ngx_uint_t *end, ngx_str_t *ip, ngx_int_t *port)
{
    redisReply  *master;

    /* [start, end, [ip, port, id, ...], replicas...] */

    if (r->type != REDIS_REPLY_ARRAY
        || r->elements < 3
        || r->element[0]->type != REDIS_REPLY_INTEGER
        || r->element[1]->type != REDIS_REPLY_INTEGER
        || r->element[2]->type != REDIS_REPLY_ARRAY
        || r->element[2]->elements < 2)
    {
        return NGX_ERROR;
    }

    if (r->element[0]->integer < 0
        || r->element[1]->integer < r->element[0]->integer
        || r->element[1]->integer >= NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS)
    {
        return NGX_ERROR;
    }

    master = r->element[2];

    if (master->element[0]->type != REDIS_REPLY_STRING
        || master->element[1]->type != REDIS_REPLY_INTEGER
        || master->element[1]->integer < 1
        || master->element[1]->integer > 65535)
    {
        return NGX_ERROR;
    }

    *start = (ngx_uint_t) r->element[0]->integer;
    *end = (ngx_uint_t) r->element[1]->integer;
    ip->data = (u_char *) master->element[0]->str;
    ip->len = master->element[0]->len;
    *port = (ngx_int_t) master->element[1]->integer;

    return NGX_OK;
}


static ngx_http_grpc_guard_cluster_node_t *
ngx_http_grpc_guard_cluster_node(ngx_http_grpc_guard_cluster_t *cl,
    u_char *ip, size_t iplen, ngx_int_t port)
{
    size_t                               n;
    socklen_t                            len;
    ngx_uint_t                           i;
    ngx_sockaddr_t                       sa;
    ngx_http_grpc_guard_redis_t         *rd;
    ngx_http_grpc_guard_cluster_node_t  *node;

    if (ngx_http_grpc_guard_redis_sockaddr(ip, iplen, port, &sa, &len)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "grpc guard: redis cluster named a node that is not "
                      "an address: \"%*s\" port %i",
                      ngx_min(iplen, 64), ip, port);
        return NULL;
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (ngx_cmp_sockaddr(&sa.sockaddr, len, node->redis.sockaddr,
                             node->redis.socklen, 1)
            == NGX_OK)
        {
            return node;
        }
    }

    if (cl->nnodes == NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_NODES) {

        if (!cl->full) {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "grpc guard: redis cluster has more than %d "
                          "nodes, the others are not used",
                          NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_NODES);
            cl->full = 1;
        }

        return NULL;
    }

    /* a client of its own with the directive's parameters, per worker */

    node = ngx_pcalloc(cl->pool, sizeof(ngx_http_grpc_guard_cluster_node_t));
    if (node == NULL) {
        return NULL;
    }

    rd = &node->redis;

    *rd = *cl->conf;

    ngx_memcpy(&node->sockaddr, &sa, len);
    n = ngx_sock_ntop(&sa.sockaddr, len, node->text, NGX_SOCKADDR_STRLEN, 1);

    rd->name.data = node->text;
    rd->name.len = n;
    rd->sockaddr = &node->sockaddr.sockaddr;
    rd->socklen = len;
    rd->node = 1;
    rd->open = 0;
    rd->exiting = 0;
    rd->failures = 0;

#if (NGX_SSL)
    rd->tls_session = NULL;
#endif

    if (ngx_http_grpc_guard_redis_init_worker(rd, cl->pool, cl->log)
        != NGX_OK)
    {
        return NULL;
    }

    cl->nodes[cl->nnodes++] = node;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cl->log, 0,
                   "grpc guard cluster: node %V", &rd->name);

    return node;
}


static ngx_http_grpc_guard_cluster_node_t *
ngx_http_grpc_guard_cluster_route(ngx_http_grpc_guard_cluster_t *cl,
    ngx_uint_t slot)
{
    ngx_uint_t  i;

    if (cl->slots[slot]) {
        return cl->nodes[cl->slots[slot] - 1];
    }

    /* no map yet, or a slot nobody serves: a node that works redirects */

    for (i = 0; i < cl->nnodes; i++) {
        if (!cl->nodes[i]->redis.open) {
            return cl->nodes[i];
        }
    }

    return cl->nodes[0];
}


ngx_http_grpc_guard_redis_cmd_t *
ngx_http_grpc_guard_cluster_eval(ngx_http_grpc_guard_redis_t *rd,
    ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data)
{
    u_char                               *p;
    ngx_int_t                             n;
    ngx_uint_t                            i;
    ngx_http_grpc_guard_cluster_t        *cl;
    ngx_http_grpc_guard_cluster_call_t   *call;
    u_char                                keys[
                                          NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_KEYS];

    cl = rd->cluster;

    if (rd->exiting || cl->conf == NULL) {
        return NULL;
    }

    /* the number of limits, then a key, a rate and a window for each */

    n = ngx_atoi(argv[0].data, argv[0].len);

    if (n < 1
        || n > NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_KEYS
        || argc != 1 + 3 * (ngx_uint_t) n)
    {
        ngx_log_error(NGX_LOG_ALERT, cl->log, 0,
                      "grpc guard cluster: a call with %ui arguments",
                      argc);
        return NULL;
    }

    p = ngx_alloc(sizeof(ngx_http_grpc_guard_cluster_call_t)
                  + n * sizeof(ngx_http_grpc_guard_cluster_part_t)
                  + n * (1 + 3 * n) * sizeof(ngx_str_t), cl->log);
    if (p == NULL) {
        return NULL;
    }

    call = (ngx_http_grpc_guard_cluster_call_t *) p;

    ngx_memzero(call, sizeof(ngx_http_grpc_guard_cluster_call_t)
                      + n * sizeof(ngx_http_grpc_guard_cluster_part_t));

    call->handle.type = NGX_HTTP_GRPC_GUARD_REDIS_CMD_CLUSTER;
    call->handle.timer.handler = ngx_http_grpc_guard_cluster_timeout;
    call->handle.timer.data = call;
    call->handle.timer.log = cl->log;

    call->cluster = cl;
    call->handler = handler;
    call->data = data;
    call->n = n;
    call->argv = argv;
    call->remaining = -1;

    call->parts = (ngx_http_grpc_guard_cluster_part_t *) &call[1];
    p = (u_char *) &call->parts[n];

    for (i = 0; i < (ngx_uint_t) n; i++) {
        call->parts[i].call = call;
        call->parts[i].argv = (ngx_str_t *) p + i * (1 + 3 * n);

        call->slot[i] = (uint16_t) ngx_http_grpc_guard_cluster_slot(
                                   argv[1 + 3 * i].data, argv[1 + 3 * i].len);
        keys[i] = (u_char) i;
    }

    call->sending = 1;

    ngx_http_grpc_guard_cluster_split(call, keys, n, 0, 0);

    call->sending = 0;

    if (call->pending == 0) {

        /* no master could be asked: the limiter's failure mode */

        ngx_free(call);
        return NULL;
    }

    ngx_add_timer(&call->handle.timer, rd->timeout);

    return &call->handle;
}


static void
ngx_http_grpc_guard_cluster_split(ngx_http_grpc_guard_cluster_call_t *call,
    u_char *keys, ngx_uint_t n, ngx_uint_t direct, ngx_uint_t redirects)
{
    ngx_uint_t                           i, j, k, done;
    ngx_http_grpc_guard_cluster_t       *cl;
    ngx_http_grpc_guard_cluster_node_t  *node;
    ngx_http_grpc_guard_cluster_part_t  *part;
    u_char                               taken[
                                         NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_KEYS];

    /*
     * the keys, grouped by master (sent alone: by slot), one part for
     * each group
     */

    cl = call->cluster;

    ngx_memzero(taken, n);

    for (i = 0; i < n; i++) {

        if (taken[i]) {
            continue;
        }

        part = NULL;

        for (k = 0; k < call->n; k++) {
            if (!call->parts[k].used) {
                part = &call->parts[k];
                break;
            }
        }

        if (part == NULL) {

            /* cannot happen: each key is in one part at most */

            call->failed = 1;
            return;
        }

        node = ngx_http_grpc_guard_cluster_route(cl, call->slot[keys[i]]);

        part->used = 1;
        part->node = node;
        part->nkeys = 0;
        part->redirects = redirects;
        part->direct = direct;
        part->cmd = NULL;

        for (j = i; j < n; j++) {

            if (taken[j]) {
                continue;
            }

            done = direct
                   ? (call->slot[keys[j]] == call->slot[keys[i]])
                   : (ngx_http_grpc_guard_cluster_route(cl,
                                                  call->slot[keys[j]])
                      == node);

            if (done) {
                taken[j] = 1;
                part->keys[part->nkeys++] = keys[j];
            }
        }

        call->pending++;

        ngx_http_grpc_guard_cluster_send(part, 0);
    }
}


static void
ngx_http_grpc_guard_cluster_send(ngx_http_grpc_guard_cluster_part_t *part,
    ngx_uint_t asking)
{
    u_char                              *p;
    ngx_str_t                           *argv, *a;
    ngx_uint_t                           i, k, m, argc;
    ngx_http_grpc_guard_redis_t         *rd;
    ngx_http_grpc_guard_cluster_call_t  *call;

    call = part->call;
    argv = part->argv;
    a = call->argv;
    m = part->nkeys;
    rd = &part->node->redis;

    p = part->num;
    argv[0].data = p;
    argv[0].len = ngx_sprintf(p, "%ui", m) - p;
    argc = 1;

    if (!part->direct) {

        /* a check of the next batch: a key, a rate, a window for each */

        for (i = 0; i < m; i++) {
            k = part->keys[i];
            argv[argc++] = a[1 + 3 * k];
            argv[argc++] = a[2 + 3 * k];
            argv[argc++] = a[3 + 3 * k];
        }

        part->cmd = ngx_http_grpc_guard_redis_eval(rd, argc, argv,
                                            ngx_http_grpc_guard_cluster_reply,
                                            part);

    } else {

        /* alone, one slot: the keys declared, so that Redis redirects */

        for (i = 0; i < m; i++) {
            argv[argc++] = a[1 + 3 * part->keys[i]];
        }

        for (i = 0; i < m; i++) {
            k = part->keys[i];
            argv[argc++] = a[2 + 3 * k];
            argv[argc++] = a[3 + 3 * k];
        }

        part->cmd = ngx_http_grpc_guard_redis_node_eval(rd, argc, argv,
                                            asking,
                                            ngx_http_grpc_guard_cluster_reply,
                                            part);
    }

    if (part->cmd == NULL) {

        /* that master is known to be down: only its keys fail */

        ngx_http_grpc_guard_cluster_fail(part);
        ngx_http_grpc_guard_cluster_done(part);
    }
}


static void
ngx_http_grpc_guard_cluster_reply(void *data, void *reply)
{
    ngx_http_grpc_guard_cluster_part_t *part = data;

    redisReply  *r;

    r = reply;

    part->cmd = NULL;

    if (r == NULL) {
        ngx_http_grpc_guard_cluster_fail(part);
        ngx_http_grpc_guard_cluster_done(part);
        return;
    }

    if (r->type == REDIS_REPLY_ERROR) {

        if (ngx_http_grpc_guard_cluster_redirected(part, r) == NGX_OK) {
            return;
        }

        ngx_http_grpc_guard_cluster_fail(part);
        ngx_http_grpc_guard_cluster_done(part);
        return;
    }

    /* sent alone: the script's array of one result */

    if (part->direct && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        r = r->element[0];
    }

    ngx_http_grpc_guard_cluster_merge(part, r);
    ngx_http_grpc_guard_cluster_done(part);
}


static ngx_int_t
ngx_http_grpc_guard_cluster_redirected(
    ngx_http_grpc_guard_cluster_part_t *part, redisReply *r)
{
    ngx_int_t                            rc, port;
    ngx_str_t                            ip;
    ngx_uint_t                           ask, slot, i;
    ngx_http_grpc_guard_cluster_t       *cl;
    ngx_http_grpc_guard_cluster_node_t  *node;
    ngx_http_grpc_guard_cluster_call_t  *call;

    call = part->call;
    cl = call->cluster;

    rc = ngx_http_grpc_guard_cluster_parse_redirect((u_char *) r->str,
                                                    r->len, &ask, &slot,
                                                    &ip, &port);

    if (rc == NGX_ERROR) {
        ngx_http_grpc_guard_cluster_error(cl, &part->node->redis,
                                          "an invalid redirection", r);
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {

        node = ngx_http_grpc_guard_cluster_node(cl, ip.data, ip.len, port);

        if (node == NULL) {
            return NGX_ERROR;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, cl->log, 0,
                       "grpc guard cluster: %s slot %ui to %V",
                       ask ? "ask" : "moved", slot, &node->redis.name);

        if (!ask) {

            /* the slot moved for good: the map is read again meanwhile */

            for (i = 0; i < cl->nnodes; i++) {
                if (cl->nodes[i] == node) {
                    cl->slots[slot] = (u_char) (i + 1);
                }
            }

            ngx_http_grpc_guard_cluster_refresh(cl);
        }

        if (part->redirects++ >= NGX_HTTP_GRPC_GUARD_CLUSTER_REDIRECTS) {
            ngx_http_grpc_guard_cluster_error(cl, &part->node->redis,
                                              "too many redirections", r);
            return NGX_ERROR;
        }

        if (ask) {

            /* this part again, to the node named, once */

            part->node = node;
            ngx_http_grpc_guard_cluster_send(part, 1);
            return NGX_OK;
        }

        /* the keys of this part again, routed by the map now */

        ngx_http_grpc_guard_cluster_resend(part);

        return NGX_OK;
    }

    if (r->len > sizeof("CLUSTERDOWN") - 1
        && ngx_strncmp(r->str, "CLUSTERDOWN", sizeof("CLUSTERDOWN") - 1)
           == 0)
    {
        ngx_http_grpc_guard_cluster_error(cl, &part->node->redis,
                                          "an error", r);
        ngx_http_grpc_guard_cluster_refresh(cl);
        return NGX_ERROR;
    }

    /*
     * a batch's keys are not declared: a node that does not own one of
     * them says "non local key", a replica (a master demoted by a
     * failover) says READONLY
     */

    if ((ngx_strlcasestrn((u_char *) r->str, (u_char *) r->str + r->len,
                          (u_char *) "non local key", 13 - 1)
         == NULL
         && (r->len < sizeof("READONLY") - 1
             || ngx_strncmp(r->str, "READONLY", sizeof("READONLY") - 1)
                != 0))
        || part->redirects++ >= NGX_HTTP_GRPC_GUARD_CLUSTER_REDIRECTS)
    {
        ngx_http_grpc_guard_cluster_error(cl, &part->node->redis,
                                          "an error", r);
        return NGX_ERROR;
    }

    /* one EVAL per slot, alone, which Redis can redirect */

    ngx_http_grpc_guard_cluster_refresh(cl);

    ngx_http_grpc_guard_cluster_resend(part);

    return NGX_OK;
}


static void
ngx_http_grpc_guard_cluster_resend(ngx_http_grpc_guard_cluster_part_t *part)
{
    ngx_uint_t                           n, redirects;
    ngx_http_grpc_guard_cluster_call_t  *call;
    u_char                               keys[
                                         NGX_HTTP_GRPC_GUARD_CLUSTER_MAX_KEYS];

    call = part->call;

    /* copied: the part is free again, and may be taken by the split */

    n = part->nkeys;
    redirects = part->redirects;
    ngx_memcpy(keys, part->keys, n);

    part->used = 0;
    call->pending--;

    call->sending = 1;

    ngx_http_grpc_guard_cluster_split(call, keys, n, 1, redirects);

    call->sending = 0;

    if (call->pending == 0) {
        ngx_http_grpc_guard_cluster_finish(call);
    }
}


static void
ngx_http_grpc_guard_cluster_merge(ngx_http_grpc_guard_cluster_part_t *part,
    redisReply *r)
{
    ngx_int_t                            rc, remaining;
    ngx_uint_t                           index;
    ngx_msec_t                           wait;
    ngx_http_grpc_guard_cluster_call_t  *call;

    call = part->call;

    rc = ngx_http_grpc_guard_limit_script_result(r, part->nkeys, &remaining,
                                                 &index, &wait);

    if (rc == NGX_OK) {

        if (call->remaining < 0 || remaining < call->remaining) {
            call->remaining = remaining;
        }

        return;
    }

    if (rc == NGX_DECLINED) {

        if (!call->refused || wait > call->wait) {
            call->refused = 1;
            call->wait = wait;
            call->index = part->keys[index];
        }

        return;
    }

    ngx_http_grpc_guard_cluster_error(call->cluster, &part->node->redis,
                                      "an invalid reply", NULL);
    ngx_http_grpc_guard_cluster_fail(part);
}


static void
ngx_http_grpc_guard_cluster_fail(ngx_http_grpc_guard_cluster_part_t *part)
{
    ngx_uint_t  i;

    /* the failure mode, for the limits of this master only */

    part->call->failed = 1;

    for (i = 0; i < part->nkeys; i++) {
        part->call->failed_keys |= (uint32_t) 1 << part->keys[i];
    }
}


static void
ngx_http_grpc_guard_cluster_done(ngx_http_grpc_guard_cluster_part_t *part)
{
    ngx_http_grpc_guard_cluster_call_t  *call;

    call = part->call;

    part->used = 0;
    part->cmd = NULL;
    call->pending--;

    /* while the call is being sent, its end is seen by the sender */

    if (call->pending == 0 && !call->sending) {
        ngx_http_grpc_guard_cluster_finish(call);
    }
}


static void
ngx_http_grpc_guard_cluster_timeout(ngx_event_t *ev)
{
    ngx_uint_t                           i;
    ngx_http_grpc_guard_cluster_call_t  *call;

    call = ev->data;

    /* the slowest master did not answer in time: its keys fail */

    for (i = 0; i < call->n; i++) {
        if (call->parts[i].used && call->parts[i].cmd) {
            ngx_http_grpc_guard_redis_cancel(call->parts[i].cmd);
            call->parts[i].cmd = NULL;
            ngx_http_grpc_guard_cluster_fail(&call->parts[i]);
        }
    }

    call->failed = 1;

    ngx_http_grpc_guard_cluster_finish(call);
}


static void
ngx_http_grpc_guard_cluster_finish(ngx_http_grpc_guard_cluster_call_t *call)
{
    void                                  *data;
    redisReply                             reply, element[2], *e[2];
    ngx_uint_t                             answered;
    ngx_http_grpc_guard_redis_handler_pt   handler;

    handler = call->handler;
    data = call->data;

    if (call->handle.timer.timer_set) {
        ngx_del_timer(&call->handle.timer);
    }

    /*
     * one result, as one check on one server would have had: a
     * refusal is sure, whatever the other masters said
     */

    ngx_memzero(&reply, sizeof(redisReply));

    reply.type = REDIS_REPLY_INTEGER;
    reply.integer = call->refused
                    ? -((long long) call->wait
                        * NGX_HTTP_GRPC_GUARD_LIMIT_SCRIPT_SHIFT
                        + call->index + 1)
                    : (call->remaining < 0 ? 0 : call->remaining);

    answered = call->refused || !call->failed;

    if (!answered
        && call->failed_keys
        && call->failed_keys != ((uint32_t) 1 << call->n) - 1)
    {
        /*
         * some masters allowed the call, others failed: the calls
         * remaining and the limits that failed, for the failure mode
         */

        ngx_memzero(element, sizeof(element));

        element[0].type = REDIS_REPLY_INTEGER;
        element[0].integer = reply.integer;
        element[1].type = REDIS_REPLY_INTEGER;
        element[1].integer = call->failed_keys;
        e[0] = &element[0];
        e[1] = &element[1];

        reply.type = REDIS_REPLY_ARRAY;
        reply.elements = 2;
        reply.element = e;
        answered = 1;
    }

    ngx_free(call);

    if (handler) {
        handler(data, answered ? &reply : NULL);
    }
}


void
ngx_http_grpc_guard_cluster_cancel(ngx_http_grpc_guard_redis_cmd_t *cmd)
{
    ngx_uint_t                           i;
    ngx_http_grpc_guard_cluster_call_t  *call;

    call = (ngx_http_grpc_guard_cluster_call_t *) cmd;

    /* the replies, when they come, are read and dropped */

    for (i = 0; i < call->n; i++) {
        if (call->parts[i].used && call->parts[i].cmd) {
            ngx_http_grpc_guard_redis_cancel(call->parts[i].cmd);
        }
    }

    if (call->handle.timer.timer_set) {
        ngx_del_timer(&call->handle.timer);
    }

    ngx_free(call);
}


static void
ngx_http_grpc_guard_cluster_error(ngx_http_grpc_guard_cluster_t *cl,
    ngx_http_grpc_guard_redis_t *node, char *what, redisReply *r)
{
    /* said at most once a second per worker */

    if (cl->error_logged && ngx_current_msec - cl->error_logged < 1000) {
        return;
    }

    cl->error_logged = ngx_current_msec ? ngx_current_msec : 1;

    ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                  "grpc guard: redis cluster node %V sent %s to the "
                  "limiter script: %*s", &node->name, what,
                  (size_t) (r ? ngx_min(r->len, 128) : 0),
                  r ? r->str : "");
}


void
ngx_http_grpc_guard_cluster_failed(ngx_http_grpc_guard_redis_t *node)
{
    ngx_http_grpc_guard_cluster_t  *cl;

    cl = node->cluster;

    /* a master down: its replica may take over, the map will say */

    if (!node->exiting && cl->conf) {
        ngx_http_grpc_guard_cluster_refresh(cl);
    }
}


static void
ngx_http_grpc_guard_cluster_refresh_handler(ngx_event_t *ev)
{
    ngx_http_grpc_guard_cluster_refresh(ev->data);
}


static void
ngx_http_grpc_guard_cluster_refresh(ngx_http_grpc_guard_cluster_t *cl)
{
    /* one reading of the map at a time */

    if (cl->refreshing || cl->conf->exiting) {
        return;
    }

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    cl->refreshing = 1;
    cl->tried = 0;

    ngx_http_grpc_guard_cluster_ask_next(cl);
}


static void
ngx_http_grpc_guard_cluster_ask_next(ngx_http_grpc_guard_cluster_t *cl)
{
    size_t                               argvlen[2];
    const char                          *argv[2];
    ngx_http_grpc_guard_cluster_node_t  *node;

    argv[0] = "CLUSTER";
    argvlen[0] = 7;
    argv[1] = "SLOTS";
    argvlen[1] = 5;

    while (cl->tried < cl->nnodes) {

        node = cl->nodes[cl->next % cl->nnodes];

        cl->tried++;

        /* a node whose breaker is open gives no command at once */

        if (ngx_http_grpc_guard_redis_node_command(&node->redis, 2, argv,
                                     argvlen,
                                     ngx_http_grpc_guard_cluster_slots_reply,
                                     cl)
            != NULL)
        {
            return;
        }

        cl->next++;
    }

    /* no node answered: later again */

    cl->refreshing = 0;

    if (cl->failures++ == 0) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "grpc guard: no redis cluster node could tell the "
                      "slot map");
    }

    ngx_http_grpc_guard_cluster_schedule(cl);
}


static void
ngx_http_grpc_guard_cluster_slots_reply(void *data, void *reply)
{
    ngx_http_grpc_guard_cluster_t *cl = data;

    redisReply  *r;

    r = reply;

    if (!cl->refreshing || cl->conf->exiting) {
        return;
    }

    if (r && ngx_http_grpc_guard_cluster_read_map(cl, r) == NGX_OK) {
        cl->refreshing = 0;
        cl->failures = 0;
        ngx_http_grpc_guard_cluster_schedule(cl);
        return;
    }

    if (r && r->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "grpc guard: redis cluster node %V refused "
                      "CLUSTER SLOTS: %*s",
                      &cl->nodes[cl->next % cl->nnodes]->redis.name,
                      (size_t) ngx_min(r->len, 128), r->str);
    }

    /* the next node */

    cl->next++;

    ngx_http_grpc_guard_cluster_ask_next(cl);
}


static ngx_int_t
ngx_http_grpc_guard_cluster_read_map(ngx_http_grpc_guard_cluster_t *cl,
    redisReply *r)
{
    ngx_int_t                            port;
    ngx_str_t                            ip;
    ngx_uint_t                           i, j, start, end, nodes;
    ngx_http_grpc_guard_cluster_node_t  *node;

    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {

        if (r->type != REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "grpc guard: redis cluster sent an empty or "
                          "invalid slot map");
        }

        return NGX_ERROR;
    }

    ngx_memzero(cl->read, NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS);

    for (i = 0; i < r->elements; i++) {

        if (ngx_http_grpc_guard_cluster_parse_range(r->element[i], &start,
                                                    &end, &ip, &port)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "grpc guard: redis cluster sent an invalid "
                          "slot map");
            return NGX_ERROR;
        }

        /* a master without a known address ("?"): its slots wait */

        if (ip.len == 0 || (ip.len == 1 && ip.data[0] == '?')) {
            continue;
        }

        node = ngx_http_grpc_guard_cluster_node(cl, ip.data, ip.len, port);
        if (node == NULL) {
            continue;
        }

        for (j = 0; j < cl->nnodes; j++) {
            if (cl->nodes[j] == node) {
                ngx_memset(&cl->read[start], (u_char) (j + 1),
                           end - start + 1);
                break;
            }
        }
    }

    if (cl->known
        && ngx_memcmp(cl->read, cl->slots, NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS)
           == 0)
    {
        return NGX_OK;
    }

    ngx_memcpy(cl->slots, cl->read, NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS);

    for (j = 0; j < cl->nnodes; j++) {
        cl->nodes[j]->nslots = 0;
    }

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_CLUSTER_SLOTS; i++) {
        if (cl->slots[i]) {
            cl->nodes[cl->slots[i] - 1]->nslots++;
        }
    }

    nodes = 0;

    for (j = 0; j < cl->nnodes; j++) {
        if (cl->nodes[j]->nslots) {
            nodes++;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, cl->log, 0,
                  "grpc guard: redis cluster slot map %s, %ui masters",
                  cl->known ? "changed" : "read", nodes);

    cl->known = 1;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_cluster_schedule(ngx_http_grpc_guard_cluster_t *cl)
{
    ngx_uint_t  i;
    ngx_msec_t  delay;

    /* soon again while a master of some slots is down, or no map */

    delay = cl->known ? NGX_HTTP_GRPC_GUARD_CLUSTER_PERIOD
                      : NGX_HTTP_GRPC_GUARD_CLUSTER_FAST;

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i]->nslots && cl->nodes[i]->redis.open) {
            delay = NGX_HTTP_GRPC_GUARD_CLUSTER_FAST;
        }
    }

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    ngx_add_timer(&cl->refresh, delay);
}
