
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Which server the limiter talks to.  One server: the address of the
 * grpc_guard_redis directive (nothing to do here).  Sentinel: every
 * worker asks the sentinels for the master, connects to it (the data
 * connections check ROLE), and follows a failover:
 *
 *   - a connection on one sentinel is subscribed to +switch-master; the
 *     message moves the limiter to the new master at once, and the
 *     connections to the old one are closed (after a SENTINEL FAILOVER
 *     the old master stays writable for a while: counting there would
 *     be lost);
 *   - after a failure of the master (connect, handshake, ROLE that is
 *     not master, -READONLY, -LOADING) the sentinels are asked again,
 *     one after the other, each for at most "timeout";
 *   - whenever the subscription is made again, the sentinels are asked
 *     too, for a switch missed meanwhile.
 *
 * The sentinel connections are the client's own connections (nginx
 * events, TLS when configured, AUTH with sentinel_password); while no
 * master is known, calls get the failure mode at once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_redis.h"


struct ngx_http_grpc_guard_sentinel_s {
    ngx_array_t                        addrs;   /* ngx_addr_t */
    ngx_str_t                          master;
    ngx_str_t                          password;

    /* per worker */

    ngx_http_grpc_guard_redis_conn_t   query;   /* get-master-addr-by-name */
    ngx_http_grpc_guard_redis_conn_t   sub;     /* +switch-master */

    ngx_uint_t                         next;    /* the sentinel to ask */
    ngx_uint_t                         tried;   /* in this round */
    ngx_uint_t                         failures;    /* rounds without */
    ngx_event_t                        ask;     /* the next round */

    ngx_uint_t                         sub_next;
    ngx_uint_t                         sub_failures;
    ngx_event_t                        resubscribe;

    ngx_sockaddr_t                     sockaddr;    /* the master */
    u_char                             text[NGX_SOCKADDR_STRLEN];

    unsigned                           asking:1;
};


static void ngx_http_grpc_guard_sentinel_ask_handler(ngx_event_t *ev);
static void ngx_http_grpc_guard_sentinel_ask_next(
    ngx_http_grpc_guard_redis_t *rd);
static void ngx_http_grpc_guard_sentinel_ask_reply(void *data, void *reply);
static ngx_int_t ngx_http_grpc_guard_sentinel_master(
    ngx_http_grpc_guard_redis_t *rd, u_char *ip, size_t iplen, u_char *port,
    size_t portlen);
static void ngx_http_grpc_guard_sentinel_subscribe(ngx_event_t *ev);
static void ngx_http_grpc_guard_sentinel_sub_reply(void *data, void *reply);
static void ngx_http_grpc_guard_sentinel_message(
    ngx_http_grpc_guard_redis_conn_t *conn, redisReply *reply);
static void ngx_http_grpc_guard_sentinel_sub_closed(
    ngx_http_grpc_guard_redis_conn_t *conn, ngx_uint_t failed);
static ngx_msec_t ngx_http_grpc_guard_sentinel_backoff(ngx_uint_t failures);


ngx_int_t
ngx_http_grpc_guard_sentinel_param(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd, ngx_str_t *value)
{
    char                            *rv;
    ngx_str_t                        s, file;
    ngx_http_grpc_guard_sentinel_t  *sn;

    if (ngx_strncmp(value->data, "sentinel=", 9) != 0
        && ngx_strncmp(value->data, "master=", 7) != 0
        && ngx_strncmp(value->data, "sentinel_password=", 18) != 0
        && ngx_strncmp(value->data, "sentinel_password_file=", 23) != 0)
    {
        return NGX_DECLINED;
    }

    sn = rd->sentinel;

    if (sn == NULL) {
        sn = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_sentinel_t));
        if (sn == NULL) {
            return NGX_ERROR;
        }

        if (ngx_array_init(&sn->addrs, cf->pool, 3, sizeof(ngx_addr_t))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        rd->sentinel = sn;
    }

    if (ngx_strncmp(value->data, "sentinel=", 9) == 0) {
        s.len = value->len - 9;
        s.data = value->data + 9;

        rv = ngx_http_grpc_guard_redis_addrs(cf, &sn->addrs, &s, "sentinel",
                                             26379);
        if (rv != NGX_CONF_OK) {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_strncmp(value->data, "master=", 7) == 0) {
        sn->master.len = value->len - 7;
        sn->master.data = value->data + 7;

        if (sn->master.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty master name in \"%V\"", value);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (sn->password.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_redis\" takes either "
                           "\"sentinel_password=\" or "
                           "\"sentinel_password_file=\"");
        return NGX_ERROR;
    }

    if (ngx_strncmp(value->data, "sentinel_password=", 18) == 0) {
        sn->password.len = value->len - 18;
        sn->password.data = value->data + 18;

    } else {
        file.len = value->len - 23;
        file.data = value->data + 23;

        if (file.len
            && ngx_http_grpc_guard_redis_read_password(cf, &file,
                                                       &sn->password)
               != NGX_CONF_OK)
        {
            return NGX_ERROR;
        }
    }

    if (sn->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", value);
        return NGX_ERROR;
    }

    return NGX_OK;
}


char *
ngx_http_grpc_guard_redis_addrs(ngx_conf_t *cf, ngx_array_t *addrs,
    ngx_str_t *list, char *what, in_port_t port)
{
    u_char      *p, *last, *comma;
    ngx_url_t    u;
    ngx_addr_t  *addr;

    /* "sentinel=" or "cluster=": a list of HOST:PORT */

    if (list->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s=\" has no address", what);
        return NGX_CONF_ERROR;
    }

    p = list->data;
    last = list->data + list->len;

    while (p <= last) {

        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        if (comma == p) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty address in \"%s=%V\"", what, list);
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url.data = p;
        u.url.len = comma - p;
        u.default_port = port;

        /* resolved here, at configuration time: workers never resolve */

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in %s \"%V\"", u.err, what, &u.url);
            }

            return NGX_CONF_ERROR;
        }

        if (u.naddrs == 0 || u.family == AF_UNIX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no address for %s \"%V\"", what, &u.url);
            return NGX_CONF_ERROR;
        }

        addr = ngx_array_push(addrs);
        if (addr == NULL) {
            return NGX_CONF_ERROR;
        }

        *addr = u.addrs[0];

        p = comma + 1;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_sentinel_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd)
{
    ngx_http_grpc_guard_sentinel_t  *s;

    s = rd->sentinel;

    if (s == NULL) {
        return NGX_CONF_OK;
    }

    if (s->addrs.nelts == 0) {

        if (s->master.len) {
            return "has \"master=\" without \"sentinel=\"";
        }

        return "has \"sentinel_password=\" without \"sentinel=\"";
    }

    if (rd->sockaddr) {
        return "takes either an address or \"sentinel=\"";
    }

    if (s->master.len == 0) {
        return "has \"sentinel=\" without \"master=\"";
    }

    /* until a sentinel says where the master is */

    rd->name = s->master;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_grpc_guard_sentinel_init_process(ngx_cycle_t *cycle,
    ngx_http_grpc_guard_redis_t *rd)
{
    ngx_http_grpc_guard_sentinel_t  *s;

    s = rd->sentinel;

    ngx_http_grpc_guard_redis_init_conn(&s->query, rd,
                                        NGX_HTTP_GRPC_GUARD_REDIS_SENTINEL,
                                        cycle->log);
    s->query.password = &s->password;

    ngx_http_grpc_guard_redis_init_conn(&s->sub, rd,
                                        NGX_HTTP_GRPC_GUARD_REDIS_SENTINEL,
                                        cycle->log);
    s->sub.password = &s->password;
    s->sub.closed = ngx_http_grpc_guard_sentinel_sub_closed;

    s->ask.handler = ngx_http_grpc_guard_sentinel_ask_handler;
    s->ask.data = rd;
    s->ask.log = cycle->log;
    s->ask.cancelable = 1;

    s->resubscribe.handler = ngx_http_grpc_guard_sentinel_subscribe;
    s->resubscribe.data = rd;
    s->resubscribe.log = cycle->log;
    s->resubscribe.cancelable = 1;

    /* workers start on different sentinels */

    s->next = ngx_worker % s->addrs.nelts;
    s->sub_next = s->next;

    /* once the event loop runs */

    ngx_add_timer(&s->ask, 1);
    ngx_add_timer(&s->resubscribe, 1);

    return NGX_OK;
}


void
ngx_http_grpc_guard_sentinel_exit_process(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_http_grpc_guard_sentinel_t  *s;

    s = rd->sentinel;

    if (s->ask.timer_set) {
        ngx_del_timer(&s->ask);
    }

    if (s->resubscribe.timer_set) {
        ngx_del_timer(&s->resubscribe);
    }

    ngx_http_grpc_guard_redis_drop(&s->query);
    ngx_http_grpc_guard_redis_drop(&s->sub);
}


void
ngx_http_grpc_guard_sentinel_ask(ngx_http_grpc_guard_redis_t *rd)
{
    ngx_http_grpc_guard_sentinel_t  *s;

    s = rd->sentinel;

    /* one round at a time; after a round that failed, its timer asks */

    if (rd->exiting || s->asking || s->ask.timer_set) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "grpc guard sentinel: asking for master \"%V\"",
                   &s->master);

    s->asking = 1;
    s->tried = 0;

    ngx_http_grpc_guard_sentinel_ask_next(rd);
}


static void
ngx_http_grpc_guard_sentinel_ask_handler(ngx_event_t *ev)
{
    ngx_http_grpc_guard_sentinel_ask(ev->data);
}


static void
ngx_http_grpc_guard_sentinel_ask_next(ngx_http_grpc_guard_redis_t *rd)
{
    size_t                             argvlen[3];
    ngx_addr_t                        *addr;
    const char                        *argv[3];
    ngx_http_grpc_guard_sentinel_t    *s;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    s = rd->sentinel;
    conn = &s->query;

    argv[0] = "SENTINEL";
    argvlen[0] = 8;
    argv[1] = "get-master-addr-by-name";
    argvlen[1] = 23;
    argv[2] = (const char *) s->master.data;
    argvlen[2] = s->master.len;

    while (s->tried < s->addrs.nelts) {

        addr = (ngx_addr_t *) s->addrs.elts + s->next;

        if (conn->state != NGX_HTTP_GRPC_GUARD_REDIS_DOWN
            && conn->sockaddr != addr->sockaddr)
        {
            ngx_http_grpc_guard_redis_close(conn, 0);
        }

        if (conn->state == NGX_HTTP_GRPC_GUARD_REDIS_DOWN) {
            conn->sockaddr = addr->sockaddr;
            conn->socklen = addr->socklen;
            conn->name = &addr->name;

            if (ngx_http_grpc_guard_redis_connect(conn) != NGX_OK) {
                goto next;
            }
        }

        if (ngx_http_grpc_guard_redis_command(conn, 3, argv, argvlen,
                                       ngx_http_grpc_guard_sentinel_ask_reply,
                                       rd)
            != NULL)
        {
            return;
        }

        ngx_http_grpc_guard_redis_close(conn, 0);

    next:

        s->next = (s->next + 1) % s->addrs.nelts;
        s->tried++;
    }

    /* no sentinel said: the failure mode applies, and later again */

    s->asking = 0;
    s->failures++;

    if (s->failures == 1) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "grpc guard: no sentinel told where master \"%V\" is",
                      &s->master);
    }

    ngx_add_timer(&s->ask,
                  ngx_http_grpc_guard_sentinel_backoff(s->failures));
}


static void
ngx_http_grpc_guard_sentinel_ask_reply(void *data, void *reply)
{
    ngx_http_grpc_guard_redis_t *rd = data;

    redisReply                      *r, **e;
    ngx_http_grpc_guard_sentinel_t  *s;

    s = rd->sentinel;
    r = reply;

    if (!s->asking || rd->exiting) {
        return;
    }

    if (r == NULL) {

        /* the connection failed (and said so), or no answer in time */

        if (s->query.state != NGX_HTTP_GRPC_GUARD_REDIS_DOWN) {
            ngx_log_error(NGX_LOG_ERR, &s->query.log, 0,
                          "sentinel did not answer in time");
        }

        goto next;
    }

    if (r->type == REDIS_REPLY_ARRAY
        && r->elements == 2
        && r->element[0]->type == REDIS_REPLY_STRING
        && r->element[1]->type == REDIS_REPLY_STRING)
    {
        e = r->element;

        if (ngx_http_grpc_guard_sentinel_master(rd, (u_char *) e[0]->str,
                                                e[0]->len,
                                                (u_char *) e[1]->str,
                                                e[1]->len)
            == NGX_OK)
        {
            s->asking = 0;
            s->failures = 0;
            return;
        }

        ngx_log_error(NGX_LOG_ERR, &s->query.log, 0,
                      "sentinel gave an invalid address for master "
                      "\"%V\": \"%*s\" port \"%*s\"", &s->master,
                      (size_t) e[0]->len, e[0]->str,
                      (size_t) e[1]->len, e[1]->str);
        goto next;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &s->query.log, 0,
                      "sentinel refused SENTINEL get-master-addr-by-name: "
                      "%*s", (size_t) r->len, r->str);

    } else {
        ngx_log_error(NGX_LOG_ERR, &s->query.log, 0,
                      "sentinel does not know master \"%V\"", &s->master);
    }

next:

    s->next = (s->next + 1) % s->addrs.nelts;
    s->tried++;

    ngx_http_grpc_guard_sentinel_ask_next(rd);
}


ngx_int_t
ngx_http_grpc_guard_redis_sockaddr(u_char *ip, size_t iplen, ngx_int_t port,
    ngx_sockaddr_t *sa, socklen_t *len)
{
    in_addr_t  inaddr;

    if (port < 1 || port > 65535) {
        return NGX_ERROR;
    }

    /* an address: a worker never resolves a host name */

    ngx_memzero(sa, sizeof(ngx_sockaddr_t));

    inaddr = ngx_inet_addr(ip, iplen);

    if (inaddr != INADDR_NONE) {
        sa->sockaddr_in.sin_family = AF_INET;
        sa->sockaddr_in.sin_port = htons((in_port_t) port);
        sa->sockaddr_in.sin_addr.s_addr = inaddr;
        *len = sizeof(struct sockaddr_in);
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)

    if (ngx_inet6_addr(ip, iplen, sa->sockaddr_in6.sin6_addr.s6_addr)
        == NGX_OK)
    {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        sa->sockaddr_in6.sin6_port = htons((in_port_t) port);
        *len = sizeof(struct sockaddr_in6);
        return NGX_OK;
    }

#endif

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_sentinel_master(ngx_http_grpc_guard_redis_t *rd,
    u_char *ip, size_t iplen, u_char *port, size_t portlen)
{
    ngx_int_t                        n;
    socklen_t                        len;
    ngx_sockaddr_t                   sa;
    ngx_http_grpc_guard_sentinel_t  *s;
    u_char                           text[NGX_SOCKADDR_STRLEN];

    s = rd->sentinel;

    if (ngx_http_grpc_guard_redis_sockaddr(ip, iplen, ngx_atoi(port, portlen),
                                           &sa, &len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rd->sockaddr
        && ngx_cmp_sockaddr(&sa.sockaddr, len, rd->sockaddr, rd->socklen, 1)
           == NGX_OK)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                       "grpc guard sentinel: master is still %V",
                       &rd->name);
        return NGX_OK;
    }

    n = ngx_sock_ntop(&sa.sockaddr, len, text, NGX_SOCKADDR_STRLEN, 1);

    if (rd->sockaddr) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "grpc guard: redis master \"%V\" moved from %V to %*s",
                      &s->master, &rd->name, (size_t) n, text);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "grpc guard: redis master \"%V\" is %*s",
                      &s->master, (size_t) n, text);
    }

    ngx_memcpy(&s->sockaddr, &sa, len);
    ngx_memcpy(s->text, text, n);

    rd->sockaddr = &s->sockaddr.sockaddr;
    rd->socklen = len;
    rd->name.data = s->text;
    rd->name.len = n;

    ngx_http_grpc_guard_redis_reset(rd);

    return NGX_OK;
}


static void
ngx_http_grpc_guard_sentinel_subscribe(ngx_event_t *ev)
{
    ngx_http_grpc_guard_redis_t *rd = ev->data;

    size_t                             argvlen[2];
    ngx_addr_t                        *addr;
    const char                        *argv[2];
    ngx_http_grpc_guard_sentinel_t    *s;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    s = rd->sentinel;
    conn = &s->sub;

    if (rd->exiting || conn->state != NGX_HTTP_GRPC_GUARD_REDIS_DOWN) {
        return;
    }

    addr = (ngx_addr_t *) s->addrs.elts + s->sub_next;

    conn->sockaddr = addr->sockaddr;
    conn->socklen = addr->socklen;
    conn->name = &addr->name;

    if (ngx_http_grpc_guard_redis_connect(conn) != NGX_OK) {

        if (conn->state == NGX_HTTP_GRPC_GUARD_REDIS_DOWN
            && !s->resubscribe.timer_set)
        {
            ngx_http_grpc_guard_sentinel_sub_closed(conn, 1);
        }

        return;
    }

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = "+switch-master";
    argvlen[1] = 14;

    if (ngx_http_grpc_guard_redis_command(conn, 2, argv, argvlen,
                                       ngx_http_grpc_guard_sentinel_sub_reply,
                                       rd)
        == NULL)
    {
        ngx_http_grpc_guard_redis_close(conn, 1);
    }
}


static void
ngx_http_grpc_guard_sentinel_sub_reply(void *data, void *reply)
{
    ngx_http_grpc_guard_redis_t *rd = data;

    redisReply                      *r;
    ngx_http_grpc_guard_sentinel_t  *s;

    s = rd->sentinel;
    r = reply;

    if (rd->exiting) {
        return;
    }

    if (r == NULL) {

        /* closed already (then it is made again), or no answer in time */

        if (s->sub.state != NGX_HTTP_GRPC_GUARD_REDIS_DOWN) {
            ngx_log_error(NGX_LOG_ERR, &s->sub.log, 0,
                          "sentinel did not answer SUBSCRIBE in time");
            ngx_http_grpc_guard_redis_close(&s->sub, 1);
        }

        return;
    }

    if (r->type != REDIS_REPLY_ARRAY
        || r->elements != 3
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[0]->len != 9
        || ngx_strncmp(r->element[0]->str, "subscribe", 9) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, &s->sub.log, 0,
                      "sentinel refused SUBSCRIBE: %*s",
                      (size_t) (r->type == REDIS_REPLY_ERROR ? r->len : 0),
                      r->type == REDIS_REPLY_ERROR ? r->str : "");
        ngx_http_grpc_guard_redis_close(&s->sub, 1);
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, &s->sub.log, 0,
                   "grpc guard sentinel: subscribed to +switch-master");

    s->sub.push = ngx_http_grpc_guard_sentinel_message;
    s->sub_failures = 0;

    /* a switch may have happened while nobody listened */

    ngx_http_grpc_guard_sentinel_ask(rd);
}


static void
ngx_http_grpc_guard_sentinel_message(ngx_http_grpc_guard_redis_conn_t *conn,
    redisReply *reply)
{
    u_char                          *p, *last, *f[5];
    size_t                           n[5];
    ngx_uint_t                       i;
    redisReply                      *msg;
    ngx_http_grpc_guard_redis_t     *rd;
    ngx_http_grpc_guard_sentinel_t  *s;

    rd = conn->redis;
    s = rd->sentinel;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    msg = reply->element[2];

    /* "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT" */

    p = (u_char *) msg->str;
    last = p + msg->len;

    for (i = 0; i < 5; i++) {
        f[i] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        n[i] = p - f[i];

        if (n[i] == 0) {
            goto invalid;
        }

        if (p < last) {
            p++;
        }
    }

    if (n[0] != s->master.len
        || ngx_strncmp(f[0], s->master.data, n[0]) != 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, &conn->log, 0,
                  "sentinel: +switch-master %*s",
                  (size_t) msg->len, msg->str);

    if (ngx_http_grpc_guard_sentinel_master(rd, f[3], n[3], f[4], n[4])
        == NGX_OK)
    {
        return;
    }

invalid:

    ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                  "sentinel sent an invalid +switch-master message: %*s",
                  (size_t) ngx_min(msg->len, 256), msg->str);

    ngx_http_grpc_guard_sentinel_ask(rd);
}


static void
ngx_http_grpc_guard_sentinel_sub_closed(ngx_http_grpc_guard_redis_conn_t *conn,
    ngx_uint_t failed)
{
    ngx_http_grpc_guard_redis_t     *rd;
    ngx_http_grpc_guard_sentinel_t  *s;

    rd = conn->redis;
    s = rd->sentinel;

    if (rd->exiting || s->resubscribe.timer_set) {
        return;
    }

    /* the next sentinel, after a backoff */

    s->sub_next = (s->sub_next + 1) % s->addrs.nelts;
    s->sub_failures++;

    ngx_add_timer(&s->resubscribe,
                  ngx_http_grpc_guard_sentinel_backoff(s->sub_failures));
}


static ngx_msec_t
ngx_http_grpc_guard_sentinel_backoff(ngx_uint_t failures)
{
    ngx_msec_t  backoff;

    /* 100 ms, doubled on every failure, up to 2 s; then 50-100% of it */

    backoff = NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MAX;

    if (failures < 8) {
        backoff = ngx_min(NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MIN
                          << (failures - 1),
                          NGX_HTTP_GRPC_GUARD_REDIS_BACKOFF_MAX);
    }

    return backoff / 2 + (ngx_msec_t) ngx_random() % (backoff / 2 + 1);
}
