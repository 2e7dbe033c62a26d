
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The audit log: one JSON line per call, written in the log phase to a
 * file or to syslog, buffered, never with a token, key or payload.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


/*
 * longest values written: longer ones are cut (a multi-byte character
 * cut in two is replaced like any invalid UTF-8)
 */

#define NGX_HTTP_GRPC_GUARD_AUDIT_MAX_HOST      256
#define NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD     512
#define NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT     64

/* keys, punctuation, numbers and the timestamp of a record, at most */
#define NGX_HTTP_GRPC_GUARD_AUDIT_FIXED         1024

/* records are built here unless written into a buffer directly */
#define NGX_HTTP_GRPC_GUARD_AUDIT_SCRATCH       8192

/* write failures are reported at most once in this many seconds */
#define NGX_HTTP_GRPC_GUARD_AUDIT_REPORT        60


#define ngx_http_grpc_guard_audit_lit(p, s)                                   \
    ngx_cpymem(p, s, sizeof(s) - 1)


typedef struct {
    u_char                     *start;
    u_char                     *pos;
    u_char                     *last;
    ngx_event_t                *event;      /* flush= timer, or NULL */
    ngx_msec_t                  flush;
    ngx_uint_t                  records;    /* in the buffer */
} ngx_http_grpc_guard_audit_buf_t;


/*
 * One destination: a file (shared by every directive naming it) or a
 * syslog peer (one per directive).  After fork() each worker has its
 * own copy, so the sequence numbers, buffers and counters are per worker.
 */

typedef struct {
    ngx_open_file_t            *file;
    ngx_syslog_peer_t          *peer;
    ngx_http_grpc_guard_audit_buf_t  *buffer;   /* NULL: unbuffered */
    u_char                     *scratch;

    uint64_t                    seq;
    ngx_uint_t                  lost;       /* since the last report */
    ngx_uint_t                  lost_total;
    time_t                      reported;
    time_t                      disk_full_time;
    ngx_err_t                   err;        /* of the last failure */
    ngx_fd_t                    fd;         /* last fd made non-blocking */

    time_t                      ts_sec;     /* ts_text is for this second */
    u_char                      ts_text[sizeof("1970-01-01T00:00:00") - 1];
} ngx_http_grpc_guard_audit_sink_t;


typedef struct {
    ngx_http_grpc_guard_audit_sink_t  *sink;
    ngx_http_complex_value_t   *filter;     /* if= */
} ngx_http_grpc_guard_audit_log_t;


struct ngx_http_grpc_guard_audit_s {
    ngx_array_t                 logs;   /* ngx_http_grpc_guard_audit_log_t */
    ngx_int_t                   request_id; /* index of $request_id */

    /* request ids made here: a per-worker random prefix and a counter */
    uint64_t                    id_count;
    u_char                      id_prefix[16];
    unsigned                    id_ready:1;
};


/* the values of one record, gathered once for all the sinks */

typedef struct {
    ngx_http_grpc_guard_ctx_t  *ctx;
    ngx_array_t                *upstream;   /* r->upstream_states */

    ngx_str_t                   request_id;
    ngx_str_t                   method;
    ngx_str_t                   authority;
    ngx_str_t                   addr;
    ngx_str_t                   tls_version;
    ngx_str_t                   tls_cipher;
    ngx_str_t                   decision;

    time_t                      sec;
    ngx_msec_t                  msec;
    ngx_msec_int_t              duration;
    off_t                       bytes_in;
    off_t                       bytes_out;
    ngx_int_t                   grpc_status;
    ngx_uint_t                  source;
    ngx_uint_t                  http_status;
    in_port_t                   port;

    size_t                      len;        /* the record is no longer */

    u_char                      id[32];     /* request_id, if made here */

    unsigned                    method_safe:1;
    unsigned                    ipv6:1;
} ngx_http_grpc_guard_audit_rec_t;


static ngx_int_t ngx_http_grpc_guard_audit_handler(ngx_http_request_t *r);
static void ngx_http_grpc_guard_audit_collect(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_audit_rec_t *rec,
    ngx_http_grpc_guard_ctx_t *tmp);
static void ngx_http_grpc_guard_audit_emit(ngx_http_request_t *r,
    ngx_http_grpc_guard_audit_rec_t *rec,
    ngx_http_grpc_guard_audit_sink_t *sink);
static ngx_uint_t ngx_http_grpc_guard_audit_bad_request(
    ngx_http_request_t *r);
static void ngx_http_grpc_guard_audit_request_id(
    ngx_http_grpc_guard_audit_t *audit, u_char *id);
static u_char *ngx_http_grpc_guard_audit_record(u_char *p,
    ngx_http_grpc_guard_audit_rec_t *rec,
    ngx_http_grpc_guard_audit_sink_t *sink);
static u_char *ngx_http_grpc_guard_audit_principal(u_char *p,
    ngx_http_grpc_guard_ctx_t *ctx);
static u_char *ngx_http_grpc_guard_audit_upstream(u_char *p,
    ngx_array_t *states);
static u_char *ngx_http_grpc_guard_audit_ts(u_char *p, time_t sec,
    ngx_msec_t msec, ngx_http_grpc_guard_audit_sink_t *sink);
static u_char *ngx_http_grpc_guard_audit_field(u_char *p, char *key,
    size_t klen, ngx_str_t *value, size_t max);
static u_char *ngx_http_grpc_guard_audit_escape(u_char *p, u_char *src,
    size_t len);
static ngx_uint_t ngx_http_grpc_guard_audit_utf8(u_char *p, u_char *last);
static u_char *ngx_http_grpc_guard_audit_uint(u_char *p, uint64_t n);
static void ngx_http_grpc_guard_audit_write(
    ngx_http_grpc_guard_audit_sink_t *sink, ngx_log_t *log, u_char *buf,
    size_t len, ngx_uint_t records);
static ngx_int_t ngx_http_grpc_guard_audit_take_back(
    ngx_open_file_t *file, u_char *cut, size_t len);
static void ngx_http_grpc_guard_audit_failed(
    ngx_http_grpc_guard_audit_sink_t *sink, ngx_log_t *log,
    ngx_uint_t records, ngx_err_t err);
static void ngx_http_grpc_guard_audit_report(
    ngx_http_grpc_guard_audit_sink_t *sink, ngx_log_t *log);
static void ngx_http_grpc_guard_audit_flush(ngx_open_file_t *file,
    ngx_log_t *log);
static void ngx_http_grpc_guard_audit_flush_handler(ngx_event_t *ev);
static ngx_http_grpc_guard_audit_sink_t *ngx_http_grpc_guard_audit_file(
    ngx_conf_t *cf, ngx_str_t *name, ssize_t size, ngx_msec_t flush);


static ngx_str_t  ngx_http_grpc_guard_audit_sources[] = {
    ngx_null_string,
    ngx_string("local"),
    ngx_string("trailer"),
    ngx_string("trailers_only"),
    ngx_string("synthesized")
};


/* bytes written as they are in a JSON string: 0x20-0x7e but '"' and '\' */

static uint32_t  ngx_http_grpc_guard_audit_plain[] = {
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */

                /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
    0xfffffffb, /* 1111 1111 1111 1111  1111 1111 1111 1011 */

                /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
    0xefffffff, /* 1110 1111 1111 1111  1111 1111 1111 1111 */

                /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
    0x7fffffff, /* 0111 1111 1111 1111  1111 1111 1111 1111 */

    0x00000000, /* 1000 0000 .. 1111 1111: see ..._audit_utf8() */
    0x00000000,
    0x00000000,
    0x00000000
};


static ngx_int_t
ngx_http_grpc_guard_audit_handler(ngx_http_request_t *r)
{
    ngx_str_t                         val;
    ngx_uint_t                        i, collected;
    ngx_http_grpc_guard_ctx_t         tmp;
    ngx_http_grpc_guard_audit_t      *audit;
    ngx_http_grpc_guard_loc_conf_t   *glcf;
    ngx_http_grpc_guard_audit_log_t  *log;
    ngx_http_grpc_guard_audit_rec_t   rec;

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_grpc_guard_module);

    audit = glcf->audit;

    if (audit == NULL || r != r->main) {
        return NGX_OK;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard audit handler");

    collected = 0;
    log = audit->logs.elts;

    for (i = 0; i < audit->logs.nelts; i++) {

        if (log[i].filter) {
            if (ngx_http_complex_value(r, log[i].filter, &val) != NGX_OK) {
                ngx_http_grpc_guard_audit_failed(log[i].sink,
                                                 r->connection->log, 1, 0);
                continue;
            }

            if (val.len == 0 || (val.len == 1 && val.data[0] == '0')) {
                continue;
            }
        }

        if (!collected) {
            ngx_http_grpc_guard_audit_collect(r, glcf, &rec, &tmp);
            collected = 1;
        }

        ngx_http_grpc_guard_audit_emit(r, &rec, log[i].sink);
    }

    /* an audit record never changes how the request ends */

    return NGX_OK;
}


static void
ngx_http_grpc_guard_audit_collect(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_audit_rec_t *rec,
    ngx_http_grpc_guard_ctx_t *tmp)
{
    size_t                        n, esc, up;
    ngx_uint_t                    i;
    ngx_time_t                   *tp;
    ngx_connection_t             *c;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_grpc_guard_ctx_t    *ctx;
    ngx_http_upstream_state_t    *state;
    ngx_http_variable_value_t    *vv;

    c = r->connection;

    ngx_memzero(rec, sizeof(ngx_http_grpc_guard_audit_rec_t));

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL) {

        /*
         * the guard is off here, or the request ended before the access
         * phase (e.g. a 400 for a bad header): record what is known
         */

        ngx_memzero(tmp, sizeof(ngx_http_grpc_guard_ctx_t));
        tmp->call.grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
        tmp->call.limit_remaining = -1;
        tmp->call.grpc = ngx_http_grpc_guard_is_grpc(r);
        ngx_http_grpc_guard_raw_path(r, &tmp->call.path);

        if ((glcf->enable || tmp->call.grpc)
            && ngx_http_grpc_guard_audit_bad_request(r))
        {
            /*
             * nginx refused the request before it was complete; on a
             * guarded server one whose content type is not known yet is
             * a gRPC call, and its status is what the client saw
             */

            ngx_str_set(&tmp->call.reason, "bad_request");

            if (r->headers_in.content_type == NULL) {
                tmp->call.grpc = 1;
            }
        }

        ctx = tmp;
    }

    rec->ctx = ctx;

    /*
     * n counts the bytes written as they are (what nginx or the guard
     * made), esc those that go through the JSON escaping
     */

    esc = 0;
    n = NGX_HTTP_GRPC_GUARD_AUDIT_FIXED;

    rec->sec = r->start_sec;
    rec->msec = r->start_msec;

    vv = &r->variables[glcf->audit->request_id];

    if (vv->valid) {

        /*
         * $request_id was used by this request (e.g. "grpc_set_header
         * x-request-id $request_id"): the record has the same id
         */

        rec->request_id.len = vv->len;
        rec->request_id.data = vv->data;

    } else {
        rec->request_id.len = sizeof(rec->id);
        rec->request_id.data = rec->id;
        ngx_http_grpc_guard_audit_request_id(glcf->audit, rec->id);
    }

    n += rec->request_id.len;

    if (ctx->call.canonical) {
        rec->method = ctx->call.method;
        rec->method_safe = 1;
        n += rec->method.len;

    } else {
        rec->method = ctx->call.path;
        esc += rec->method.len;
    }

    if (r->headers_in.host) {
        rec->authority = r->headers_in.host->value;
        esc += ngx_min(rec->authority.len, NGX_HTTP_GRPC_GUARD_AUDIT_MAX_HOST);
    }

    rec->addr = c->addr_text;

    if (c->sockaddr->sa_family != AF_UNIX) {
        rec->port = ngx_inet_get_port(c->sockaddr);
        rec->ipv6 = (c->sockaddr->sa_family == AF_INET6);
    }

    n += rec->addr.len;

#if (NGX_HTTP_SSL)

    if (c->ssl) {
        rec->tls_version.data = (u_char *) SSL_get_version(c->ssl->connection);
        rec->tls_version.len = ngx_strlen(rec->tls_version.data);

        rec->tls_cipher.data =
                         (u_char *) SSL_get_cipher_name(c->ssl->connection);
        rec->tls_cipher.len = ngx_strlen(rec->tls_cipher.data);

        n += rec->tls_version.len + rec->tls_cipher.len;
    }

#endif

    rec->decision = ctx->call.decision;

    if (rec->decision.len == 0 && !glcf->enable) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        /*
         * "bypass" when a location turned the guard off; a request that
         * ended before any location was found (a bad header) has none
         */

        if (clcf->name.len) {
            ngx_str_set(&rec->decision, "bypass");
        }
    }

    esc += rec->decision.len + ctx->call.reason.len
           + ngx_min(ctx->call.rule.len, NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD)
           + ngx_min(ctx->call.limit_name.len,
                     NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD)
           + ngx_min(ctx->call.principal_kind.len,
                     NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT)
           + ngx_min(ctx->call.principal.len,
                     NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD)
           + ngx_min(ctx->call.sub.len, NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD)
           + ngx_min(ctx->call.iss.len, NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD)
           + ngx_min(ctx->call.client.len, NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD)
           + ngx_min(ctx->call.spiffe.len, NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD)
           + ngx_min(ctx->call.fingerprint.len,
                     NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT);

    rec->grpc_status = ngx_http_grpc_guard_final_status(r, ctx, &rec->source);

    if (!ctx->call.grpc
        && rec->source == NGX_HTTP_GRPC_GUARD_SOURCE_SYNTHESIZED)
    {
        /*
         * another content type: a status only where one was given, by
         * the guard's refusal or by an upstream that answered as gRPC
         */

        rec->grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
    }

    /* as $status */

    if (r->err_status) {
        rec->http_status = r->err_status;

    } else {
        rec->http_status = r->headers_out.status;
    }

    tp = ngx_timeofday();

    rec->duration = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                                      + (tp->msec - r->start_msec));
    rec->duration = ngx_max(rec->duration, 0);

    rec->bytes_in = r->request_length;
    rec->bytes_out = c->sent;

    if (r->upstream_states && r->upstream_states->nelts) {
        rec->upstream = r->upstream_states;

        state = rec->upstream->elts;
        up = 0;

        for (i = 0; i < rec->upstream->nelts; i++) {
            if (state[i].peer) {
                up += state[i].peer->len + 2;
            }
        }

        esc += ngx_min(up, NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);
    }

    /* an escaped byte takes at most 6: "\u001f", "\ufffd" */

    rec->len = n + 6 * esc;
}


static ngx_uint_t
ngx_http_grpc_guard_audit_bad_request(ngx_http_request_t *r)
{
#if (NGX_HTTP_V2)

    ngx_uint_t  status;

    if (r->stream == NULL) {
        return 0;
    }

    /* a stream reset by nginx for a protocol error of the client */

    if (r->stream->rst_sent) {
        return 1;
    }

    /* a 400 before the request line was made: the headers were bad */

    status = r->err_status ? r->err_status : r->headers_out.status;

    return status == NGX_HTTP_BAD_REQUEST && r->request_line.len == 0;

#else

    return 0;

#endif
}


static void
ngx_http_grpc_guard_audit_request_id(ngx_http_grpc_guard_audit_t *audit,
    u_char *id)
{
    u_char    *p;
    uint32_t   r1, r2;
    uint64_t   n;
    u_char     rnd[8];

    /*
     * An id of the form of $request_id (32 hex digits), unique without
     * asking for 16 random bytes per call as $request_id does: with
     * OpenSSL's generator that costs about 7,000 instructions, more
     * than the whole record.  The first 8 bytes are random, once per
     * worker (and per audit setting), the last 8 count calls.
     */

    if (!audit->id_ready) {
        r1 = (uint32_t) ngx_random() ^ (uint32_t) ngx_pid;
        r2 = (uint32_t) ngx_random() ^ (uint32_t) ngx_time();

        ngx_memcpy(rnd, &r1, 4);
        ngx_memcpy(&rnd[4], &r2, 4);

#if (NGX_OPENSSL)
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            ERR_clear_error();
        }
#endif

        ngx_hex_dump(audit->id_prefix, rnd, sizeof(rnd));
        audit->id_ready = 1;
    }

    p = ngx_cpymem(id, audit->id_prefix, sizeof(audit->id_prefix));

    n = ++audit->id_count;

    for (p += 15; p >= id + 16; p--) {
        *p = "0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
}


static void
ngx_http_grpc_guard_audit_emit(ngx_http_request_t *r,
    ngx_http_grpc_guard_audit_rec_t *rec,
    ngx_http_grpc_guard_audit_sink_t *sink)
{
    u_char                           *line, *p;
    size_t                            len;
    ssize_t                           n;
    ngx_http_grpc_guard_audit_buf_t  *buffer;

    /* a record that is lost leaves a gap in the numbers */

    sink->seq++;

    ngx_http_grpc_guard_metrics_add(NGX_HTTP_GRPC_GUARD_METRIC_AUDIT_RECORDS,
                                    1);

    len = rec->len;

    if (sink->peer) {
        len += sizeof("<255>Jan 01 00:00:00 ") - 1
               + ngx_cycle->hostname.len + 1 + sink->peer->tag.len + 2;

        if (len <= NGX_HTTP_GRPC_GUARD_AUDIT_SCRATCH) {
            line = sink->scratch;

        } else {
            line = ngx_pnalloc(r->pool, len);
            if (line == NULL) {
                ngx_http_grpc_guard_audit_failed(sink, r->connection->log,
                                                 1, 0);
                return;
            }
        }

        p = ngx_syslog_add_header(sink->peer, line);
        p = ngx_http_grpc_guard_audit_record(p, rec, sink);

        n = ngx_syslog_send(sink->peer, line, p - line);

        if (n != p - line) {
            ngx_http_grpc_guard_audit_failed(sink, r->connection->log, 1,
                                             n == -1 ? ngx_socket_errno : 0);
        }

        return;
    }

    if (ngx_time() == sink->disk_full_time) {

        /*
         * as access_log does, no write is tried for a second after
         * ENOSPC: some file systems make a write to a full disk slow
         */

        ngx_http_grpc_guard_audit_failed(sink, r->connection->log, 1,
                                         NGX_ENOSPC);
        return;
    }

    len++;      /* "\n" */

    buffer = sink->buffer;

    if (buffer) {

        if (len > (size_t) (buffer->last - buffer->pos)) {
            ngx_http_grpc_guard_audit_flush(sink->file, r->connection->log);
        }

        if (len <= (size_t) (buffer->last - buffer->pos)) {

            if (buffer->event && buffer->pos == buffer->start) {
                ngx_add_timer(buffer->event, buffer->flush);
            }

            p = ngx_http_grpc_guard_audit_record(buffer->pos, rec, sink);
            *p++ = '\n';

            buffer->pos = p;
            buffer->records++;

            return;
        }

        /* longer than the whole buffer: written on its own */
    }

    if (len <= NGX_HTTP_GRPC_GUARD_AUDIT_SCRATCH) {
        line = sink->scratch;

    } else {
        line = ngx_pnalloc(r->pool, len);
        if (line == NULL) {
            ngx_http_grpc_guard_audit_failed(sink, r->connection->log, 1, 0);
            return;
        }
    }

    p = ngx_http_grpc_guard_audit_record(line, rec, sink);
    *p++ = '\n';

    ngx_http_grpc_guard_audit_write(sink, r->connection->log, line, p - line,
                                    1);
}


static u_char *
ngx_http_grpc_guard_audit_record(u_char *p,
    ngx_http_grpc_guard_audit_rec_t *rec,
    ngx_http_grpc_guard_audit_sink_t *sink)
{
    ngx_uint_t                  remaining;
    ngx_http_grpc_guard_ctx_t  *ctx;

    ctx = rec->ctx;

    p = ngx_http_grpc_guard_audit_lit(p, "{\"ts\":\"");
    p = ngx_http_grpc_guard_audit_ts(p, rec->sec, rec->msec, sink);

    p = ngx_http_grpc_guard_audit_lit(p, "\",\"pid\":");
    p = ngx_http_grpc_guard_audit_uint(p, (uint64_t) ngx_pid);

    p = ngx_http_grpc_guard_audit_lit(p, ",\"seq\":");
    p = ngx_http_grpc_guard_audit_uint(p, sink->seq);

    if (rec->request_id.len) {
        p = ngx_http_grpc_guard_audit_lit(p, ",\"request_id\":\"");
        p = ngx_cpymem(p, rec->request_id.data, rec->request_id.len);
        *p++ = '"';
    }

    if (rec->method.len) {
        p = ngx_http_grpc_guard_audit_lit(p, ",\"method\":\"");

        if (rec->method_safe) {
            p = ngx_cpymem(p, rec->method.data, rec->method.len);

        } else {
            p = ngx_http_grpc_guard_audit_escape(p, rec->method.data,
                                                 rec->method.len);
        }

        *p++ = '"';
    }

    p = ngx_http_grpc_guard_audit_field(p, ",\"authority\":\"",
                                        sizeof(",\"authority\":\"") - 1,
                                        &rec->authority,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_HOST);

    if (rec->addr.len) {
        p = ngx_http_grpc_guard_audit_lit(p, ",\"peer\":\"");

        if (rec->ipv6) {
            *p++ = '[';
        }

        p = ngx_cpymem(p, rec->addr.data, rec->addr.len);

        if (rec->ipv6) {
            *p++ = ']';
        }

        if (rec->port) {
            *p++ = ':';
            p = ngx_http_grpc_guard_audit_uint(p, rec->port);
        }

        *p++ = '"';
    }

    if (rec->tls_version.len) {
        p = ngx_http_grpc_guard_audit_lit(p, ",\"tls\":{\"version\":\"");
        p = ngx_cpymem(p, rec->tls_version.data, rec->tls_version.len);
        p = ngx_http_grpc_guard_audit_lit(p, "\",\"cipher\":\"");
        p = ngx_cpymem(p, rec->tls_cipher.data, rec->tls_cipher.len);
        p = ngx_http_grpc_guard_audit_lit(p, "\"}");
    }

    p = ngx_http_grpc_guard_audit_principal(p, ctx);

    p = ngx_http_grpc_guard_audit_field(p, ",\"decision\":\"",
                                        sizeof(",\"decision\":\"") - 1,
                                        &rec->decision,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT);

    p = ngx_http_grpc_guard_audit_field(p, ",\"reason\":\"",
                                        sizeof(",\"reason\":\"") - 1,
                                        &ctx->call.reason,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT);

    p = ngx_http_grpc_guard_audit_field(p, ",\"rule\":\"",
                                        sizeof(",\"rule\":\"") - 1,
                                        &ctx->call.rule,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);

    /*
     * no "remaining" when it is not known (every key empty, Redis down
     * with grpc_guard_limit_failure open): 0 would read as "used up"
     */

    remaining = (ctx->call.limit || ctx->call.limit_name.len)
                && ctx->call.limit_remaining >= 0;

    if (ctx->call.limit_name.len || remaining) {
        p = ngx_http_grpc_guard_audit_lit(p, ",\"limit\":{");

        if (ctx->call.limit_name.len) {
            p = ngx_http_grpc_guard_audit_field(p, "\"name\":\"",
                                          sizeof("\"name\":\"") - 1,
                                          &ctx->call.limit_name,
                                          NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);
        }

        if (remaining) {
            if (ctx->call.limit_name.len) {
                *p++ = ',';
            }

            p = ngx_http_grpc_guard_audit_lit(p, "\"remaining\":");
            p = ngx_http_grpc_guard_audit_uint(p, ctx->call.limit_remaining);
        }

        *p++ = '}';
    }

    if (rec->grpc_status != NGX_HTTP_GRPC_GUARD_NO_STATUS) {
        p = ngx_http_grpc_guard_audit_lit(p, ",\"grpc_status\":");
        p = ngx_http_grpc_guard_audit_uint(p, rec->grpc_status);

        if (rec->source) {
            p = ngx_http_grpc_guard_audit_lit(p,
                                              ",\"grpc_status_source\":\"");
            p = ngx_cpymem(p,
                           ngx_http_grpc_guard_audit_sources[rec->source].data,
                           ngx_http_grpc_guard_audit_sources[rec->source].len);
            *p++ = '"';
        }
    }

    if (rec->http_status) {
        p = ngx_http_grpc_guard_audit_lit(p, ",\"http_status\":");
        p = ngx_http_grpc_guard_audit_uint(p, rec->http_status);
    }

    p = ngx_http_grpc_guard_audit_lit(p, ",\"duration_ms\":");
    p = ngx_http_grpc_guard_audit_uint(p, rec->duration);

    p = ngx_http_grpc_guard_audit_lit(p, ",\"bytes_in\":");
    p = ngx_http_grpc_guard_audit_uint(p, rec->bytes_in);

    p = ngx_http_grpc_guard_audit_lit(p, ",\"bytes_out\":");
    p = ngx_http_grpc_guard_audit_uint(p, rec->bytes_out);

    if (rec->upstream) {
        p = ngx_http_grpc_guard_audit_upstream(p, rec->upstream);
    }

    *p++ = '}';

    return p;
}


static u_char *
ngx_http_grpc_guard_audit_principal(u_char *p, ngx_http_grpc_guard_ctx_t *ctx)
{
    u_char  *start;

    if (ctx->call.principal_kind.len == 0
        && ctx->call.principal.len == 0
        && ctx->call.sub.len == 0
        && ctx->call.iss.len == 0
        && ctx->call.client.len == 0
        && ctx->call.spiffe.len == 0
        && ctx->call.fingerprint.len == 0)
    {
        return p;
    }

    p = ngx_http_grpc_guard_audit_lit(p, ",\"principal\":{");
    start = p;

    /* every member starts with ',': the first one is cut out below */

    p = ngx_http_grpc_guard_audit_field(p, ",\"kind\":\"",
                                        sizeof(",\"kind\":\"") - 1,
                                        &ctx->call.principal_kind,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT);

    p = ngx_http_grpc_guard_audit_field(p, ",\"id\":\"",
                                        sizeof(",\"id\":\"") - 1,
                                        &ctx->call.principal,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);

    p = ngx_http_grpc_guard_audit_field(p, ",\"sub\":\"",
                                        sizeof(",\"sub\":\"") - 1,
                                        &ctx->call.sub,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);

    p = ngx_http_grpc_guard_audit_field(p, ",\"iss\":\"",
                                        sizeof(",\"iss\":\"") - 1,
                                        &ctx->call.iss,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);

    p = ngx_http_grpc_guard_audit_field(p, ",\"client\":\"",
                                        sizeof(",\"client\":\"") - 1,
                                        &ctx->call.client,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);

    p = ngx_http_grpc_guard_audit_field(p, ",\"spiffe\":\"",
                                        sizeof(",\"spiffe\":\"") - 1,
                                        &ctx->call.spiffe,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);

    p = ngx_http_grpc_guard_audit_field(p, ",\"fingerprint\":\"",
                                        sizeof(",\"fingerprint\":\"") - 1,
                                        &ctx->call.fingerprint,
                                        NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT);

    ngx_memmove(start, start + 1, p - start - 1);
    p[-1] = '}';

    return p;
}


static u_char *
ngx_http_grpc_guard_audit_upstream(u_char *p, ngx_array_t *states)
{
    u_char                     *last, *q;
    ngx_str_t                   s;
    ngx_uint_t                  i;
    ngx_http_upstream_state_t  *state;
    u_char                      buf[NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD];

    /* every peer tried, as $upstream_addr lists them, joined by ", " */

    q = buf;
    last = buf + sizeof(buf);
    state = states->elts;

    for (i = 0; i < states->nelts; i++) {

        if (state[i].peer == NULL) {
            continue;
        }

        if (q != buf) {
            if (last - q < 2) {
                break;
            }

            *q++ = ',';
            *q++ = ' ';
        }

        s.len = ngx_min(state[i].peer->len, (size_t) (last - q));
        q = ngx_cpymem(q, state[i].peer->data, s.len);
    }

    s.data = buf;
    s.len = q - buf;

    return ngx_http_grpc_guard_audit_field(p, ",\"upstream\":\"",
                                          sizeof(",\"upstream\":\"") - 1,
                                          &s, sizeof(buf));
}


static u_char *
ngx_http_grpc_guard_audit_ts(u_char *p, time_t sec, ngx_msec_t msec,
    ngx_http_grpc_guard_audit_sink_t *sink)
{
    u_char    *t;
    ngx_tm_t   tm;

    /* RFC 3339, UTC, milliseconds: "2024-05-01T12:34:56.789Z" */

    if (sec != sink->ts_sec) {
        ngx_gmtime(sec, &tm);

        t = sink->ts_text;

        t[0] = (u_char) ('0' + tm.ngx_tm_year / 1000 % 10);
        t[1] = (u_char) ('0' + tm.ngx_tm_year / 100 % 10);
        t[2] = (u_char) ('0' + tm.ngx_tm_year / 10 % 10);
        t[3] = (u_char) ('0' + tm.ngx_tm_year % 10);
        t[4] = '-';
        t[5] = (u_char) ('0' + tm.ngx_tm_mon / 10);
        t[6] = (u_char) ('0' + tm.ngx_tm_mon % 10);
        t[7] = '-';
        t[8] = (u_char) ('0' + tm.ngx_tm_mday / 10);
        t[9] = (u_char) ('0' + tm.ngx_tm_mday % 10);
        t[10] = 'T';
        t[11] = (u_char) ('0' + tm.ngx_tm_hour / 10);
        t[12] = (u_char) ('0' + tm.ngx_tm_hour % 10);
        t[13] = ':';
        t[14] = (u_char) ('0' + tm.ngx_tm_min / 10);
        t[15] = (u_char) ('0' + tm.ngx_tm_min % 10);
        t[16] = ':';
        t[17] = (u_char) ('0' + tm.ngx_tm_sec / 10);
        t[18] = (u_char) ('0' + tm.ngx_tm_sec % 10);

        sink->ts_sec = sec;
    }

    p = ngx_cpymem(p, sink->ts_text, sizeof(sink->ts_text));

    *p++ = '.';
    *p++ = (u_char) ('0' + msec / 100 % 10);
    *p++ = (u_char) ('0' + msec / 10 % 10);
    *p++ = (u_char) ('0' + msec % 10);
    *p++ = 'Z';

    return p;
}


static u_char *
ngx_http_grpc_guard_audit_field(u_char *p, char *key, size_t klen,
    ngx_str_t *value, size_t max)
{
    if (value->len == 0) {
        return p;
    }

    p = ngx_cpymem(p, key, klen);
    p = ngx_http_grpc_guard_audit_escape(p, value->data,
                                         ngx_min(value->len, max));
    *p++ = '"';

    return p;
}


static u_char *
ngx_http_grpc_guard_audit_escape(u_char *p, u_char *src, size_t len)
{
    u_char      c, *last;
    ngx_uint_t  n;

    static u_char  hex[] = "0123456789abcdef";

    /*
     * JSON string contents: valid UTF-8 is kept, a byte that does not
     * start a valid sequence (RFC 3629: no overlong forms, surrogates or
     * code points above U+10FFFF) becomes U+FFFD, and control characters,
     * DEL, '"' and '\' are escaped, so every record is valid JSON and
     * plain text whatever bytes a client sent
     */

    last = src + len;

    while (src < last) {
        c = *src;

        if (ngx_http_grpc_guard_audit_plain[c >> 5] & (1U << (c & 0x1f))) {
            *p++ = c;
            src++;
            continue;
        }

        if (c >= 0x80) {
            n = ngx_http_grpc_guard_audit_utf8(src, last);

            if (n == 0) {
                p = ngx_http_grpc_guard_audit_lit(p, "\\ufffd");
                src++;
                continue;
            }

            while (n--) {
                *p++ = *src++;
            }

            continue;
        }

        *p++ = '\\';

        switch (c) {

        case '"':
        case '\\':
            *p++ = c;
            break;

        case '\n':
            *p++ = 'n';
            break;

        case '\r':
            *p++ = 'r';
            break;

        case '\t':
            *p++ = 't';
            break;

        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }

        src++;
    }

    return p;
}


static ngx_uint_t
ngx_http_grpc_guard_audit_utf8(u_char *p, u_char *last)
{
    u_char      c, lo, hi;
    ngx_uint_t  n, i;

    /* the length of the valid UTF-8 sequence at p, or 0 */

    c = *p;
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n) {
        return 0;
    }

    /* the second byte has the narrower range, the others 0x80-0xbf */

    if (p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


static u_char *
ngx_http_grpc_guard_audit_uint(u_char *p, uint64_t n)
{
    u_char  *q;
    u_char   buf[NGX_INT64_LEN];

    q = buf + NGX_INT64_LEN;

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, buf + NGX_INT64_LEN - q);
}


static void
ngx_http_grpc_guard_audit_write(ngx_http_grpc_guard_audit_sink_t *sink,
    ngx_log_t *log, u_char *buf, size_t len, ngx_uint_t records)
{
    u_char    *p, *last;
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_int_t  rc;
    ngx_err_t  err;

    fd = sink->file->fd;

    if (fd != sink->fd) {

        /*
         * a FIFO or a socket must not block the worker either: a
         * record that does not fit at once is lost and counted
         */

        (void) ngx_nonblocking(fd);
        sink->fd = fd;
    }

    n = ngx_write_fd(fd, buf, len);

    if (n == (ssize_t) len) {
        return;
    }

    err = (n == -1) ? ngx_errno : 0;

    if (n > 0) {

        /*
         * a write cut short (a full disk, a file size limit, a full
         * pipe): the whole lines written stay and are not lost; a line
         * cut in the middle is taken back, so that the file holds whole
         * records only and the next record is not glued to it
         */

        for (last = buf + n; last > buf && last[-1] != '\n'; last--) {
            /* void */
        }

        for (p = buf; p < last; p++) {
            if (*p == '\n') {
                records--;
            }
        }

        if (last != buf + n) {
            rc = ngx_http_grpc_guard_audit_take_back(sink->file, last,
                                                     buf + n - last);

            if (rc == NGX_DECLINED || rc == NGX_ERROR) {

                /* a pipe, or a file that cannot be cut: the line is ended */

                (void) ngx_write_fd(fd, (u_char *) "\n", 1);
            }
        }
    }

    if (err == NGX_ENOSPC) {
        sink->disk_full_time = ngx_time();
    }

    if (records) {
        ngx_http_grpc_guard_audit_failed(sink, log, records, err);
    }
}


static ngx_int_t
ngx_http_grpc_guard_audit_take_back(ngx_open_file_t *file, u_char *cut,
    size_t len)
{
    off_t            end, off;
    size_t           size;
    ngx_fd_t         fd;
    ngx_int_t        rc;
    ngx_file_info_t  fi, rfi;
    u_char           buf[256];

    /*
     * the file ends with the cut line unless another worker has written
     * after it since (then the line is glued to that worker's record,
     * and NGX_BUSY says that nothing can be done): the end of the file
     * is compared with the line, which must start after a "\n", before
     * the file is truncated to the line's start; the file is open for
     * writing only, so it is read through a descriptor of its own
     */

    if (ngx_fd_info(file->fd, &fi) == NGX_FILE_ERROR) {
        return NGX_ERROR;
    }

    if (!ngx_is_file(&fi)) {
        return NGX_DECLINED;
    }

    fd = ngx_open_file(file->name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    rc = NGX_BUSY;

    if (ngx_fd_info(fd, &rfi) == NGX_FILE_ERROR
        || ngx_file_uniq(&rfi) != ngx_file_uniq(&fi)
        || rfi.st_dev != fi.st_dev)
    {
        rc = NGX_ERROR;
        goto done;
    }

    end = ngx_file_size(&fi) - (off_t) len;

    if (end < 0) {
        goto done;
    }

    if (end > 0 && (pread(fd, buf, 1, end - 1) != 1 || buf[0] != '\n')) {
        goto done;
    }

    for (off = 0; off < (off_t) len; off += size) {
        size = ngx_min(len - (size_t) off, sizeof(buf));

        if (pread(fd, buf, size, end + off) != (ssize_t) size
            || ngx_memcmp(buf, cut + off, size) != 0)
        {
            goto done;
        }
    }

    rc = (ftruncate(file->fd, end) == 0) ? NGX_OK : NGX_ERROR;

done:

    (void) ngx_close_file(fd);

    return rc;
}


static void
ngx_http_grpc_guard_audit_failed(ngx_http_grpc_guard_audit_sink_t *sink,
    ngx_log_t *log, ngx_uint_t records, ngx_err_t err)
{
    sink->lost += records;
    sink->lost_total += records;
    sink->err = err;

    ngx_http_grpc_guard_metrics_add(NGX_HTTP_GRPC_GUARD_METRIC_AUDIT_DROPPED,
                                    records);

    if (sink->reported == 0
        || ngx_time() - sink->reported >= NGX_HTTP_GRPC_GUARD_AUDIT_REPORT)
    {
        ngx_http_grpc_guard_audit_report(sink, log);
    }
}


static void
ngx_http_grpc_guard_audit_report(ngx_http_grpc_guard_audit_sink_t *sink,
    ngx_log_t *log)
{
    ngx_str_t  *name;

    static ngx_str_t  syslog = ngx_string("syslog");

    name = sink->file ? &sink->file->name : &syslog;

    ngx_log_error(NGX_LOG_ALERT, log, sink->err,
                  "grpc guard: audit log \"%V\": %ui record(s) lost, "
                  "%ui since the worker started", name, sink->lost,
                  sink->lost_total);

    sink->lost = 0;
    sink->reported = ngx_time();
}


static void
ngx_http_grpc_guard_audit_flush(ngx_open_file_t *file, ngx_log_t *log)
{
    size_t                             len;
    ngx_http_grpc_guard_audit_buf_t   *buffer;
    ngx_http_grpc_guard_audit_sink_t  *sink;

    /*
     * called when the buffer is full, by the flush= timer, and by nginx
     * before it reopens the file (USR1) and when the worker exits
     */

    sink = file->data;
    buffer = sink->buffer;

    if (buffer) {
        len = buffer->pos - buffer->start;

        if (buffer->event && buffer->event->timer_set) {
            ngx_del_timer(buffer->event);
        }

        if (len) {
            buffer->pos = buffer->start;

            if (ngx_time() == sink->disk_full_time) {
                ngx_http_grpc_guard_audit_failed(sink, log, buffer->records,
                                                 NGX_ENOSPC);

            } else {
                ngx_http_grpc_guard_audit_write(sink, log, buffer->start,
                                                len, buffer->records);
            }

            buffer->records = 0;
        }
    }

    /* losses not reported yet are reported when the worker exits */

    if (sink->lost && (ngx_exiting || ngx_terminate || ngx_quit)) {
        ngx_http_grpc_guard_audit_report(sink, log);
    }
}


static void
ngx_http_grpc_guard_audit_flush_handler(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "grpc guard audit flush timer");

    ngx_http_grpc_guard_audit_flush(ev->data, ev->log);
}


char *
ngx_http_grpc_guard_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ssize_t                            size;
    ngx_str_t                         *value, s, name;
    ngx_msec_t                         flush;
    ngx_uint_t                         i;
    ngx_syslog_peer_t                 *peer;
    ngx_http_grpc_guard_audit_t       *audit;
    ngx_http_grpc_guard_audit_log_t   *log;
    ngx_http_compile_complex_value_t   ccv;
    ngx_http_grpc_guard_audit_sink_t  *sink;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {

        if (glcf->audit != NGX_CONF_UNSET_PTR) {
            return "is duplicate";
        }

        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        glcf->audit = NULL;

        return NGX_CONF_OK;
    }

    if (glcf->audit == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_audit_log off\" was specified "
                           "at this level");
        return NGX_CONF_ERROR;
    }

    if (glcf->audit == NGX_CONF_UNSET_PTR) {
        audit = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_audit_t));
        if (audit == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_array_init(&audit->logs, cf->pool, 1,
                           sizeof(ngx_http_grpc_guard_audit_log_t))
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&name, "request_id");

        audit->request_id = ngx_http_get_variable_index(cf, &name);
        if (audit->request_id == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        glcf->audit = audit;
    }

    log = ngx_array_push(&glcf->audit->logs);
    if (log == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(log, sizeof(ngx_http_grpc_guard_audit_log_t));

    size = 0;
    flush = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "buffer=", 7) == 0) {
            s.len = value[i].len - 7;
            s.data = value[i].data + 7;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid buffer size \"%V\"", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "flush=", 6) == 0) {
            s.len = value[i].len - 6;
            s.data = value[i].data + 6;

            flush = ngx_parse_time(&s, 0);

            if (flush == (ngx_msec_t) NGX_ERROR || flush == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid flush time \"%V\"", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "if=", 3) == 0) {
            s.len = value[i].len - 3;
            s.data = value[i].data + 3;

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

            ccv.cf = cf;
            ccv.value = &s;
            ccv.complex_value = ngx_palloc(cf->pool,
                                      sizeof(ngx_http_complex_value_t));
            if (ccv.complex_value == NULL) {
                return NGX_CONF_ERROR;
            }

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            log->filter = ccv.complex_value;

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (flush && size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no buffer is defined for grpc_guard_audit_log "
                           "\"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_strncmp(value[1].data, "syslog:", 7) == 0) {

        if (size) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "logs to syslog cannot be buffered");
            return NGX_CONF_ERROR;
        }

        peer = ngx_pcalloc(cf->pool, sizeof(ngx_syslog_peer_t));
        if (peer == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_syslog_process_conf(cf, peer) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

        sink = ngx_pcalloc(cf->pool,
                           sizeof(ngx_http_grpc_guard_audit_sink_t));
        if (sink == NULL) {
            return NGX_CONF_ERROR;
        }

        sink->scratch = ngx_pnalloc(cf->pool,
                                    NGX_HTTP_GRPC_GUARD_AUDIT_SCRATCH);
        if (sink->scratch == NULL) {
            return NGX_CONF_ERROR;
        }

        sink->peer = peer;
        sink->fd = NGX_INVALID_FILE;
        sink->ts_sec = -1;

        log->sink = sink;

        return NGX_CONF_OK;
    }

    name = value[1];

    log->sink = ngx_http_grpc_guard_audit_file(cf, &name, size, flush);
    if (log->sink == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_http_grpc_guard_audit_sink_t *
ngx_http_grpc_guard_audit_file(ngx_conf_t *cf, ngx_str_t *name,
    ssize_t size, ngx_msec_t flush)
{
    ngx_uint_t                         i;
    ngx_list_part_t                   *part;
    ngx_open_file_t                   *file;
    ngx_http_grpc_guard_audit_buf_t   *buffer;
    ngx_http_grpc_guard_audit_sink_t  *sink;

    if (ngx_conf_full_name(cf->cycle, name, 0) != NGX_OK) {
        return NULL;
    }

    /*
     * The file is an entry of cycle->open_files, as ngx_conf_open_file()
     * makes them: nginx opens it at start and reload (as the user of the
     * master process, before workers drop privileges), reopens it on
     * USR1 ("nginx -s reopen") and calls its flush handler before that
     * and when a worker exits.  The entry is our own, as its flush
     * handler and data hold the audit state: an access_log with buffer=
     * naming the same file would take them over.
     */

    part = &cf->cycle->open_files.part;
    file = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            file = part->elts;
            i = 0;
        }

        if (file[i].flush != ngx_http_grpc_guard_audit_flush
            || file[i].name.len != name->len
            || ngx_strcmp(file[i].name.data, name->data) != 0)
        {
            continue;
        }

        sink = file[i].data;
        buffer = sink->buffer;

        if ((buffer == NULL && size != 0)
            || (buffer
                && (buffer->last - buffer->start != size
                    || buffer->flush != flush)))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc_guard_audit_log \"%V\" already defined "
                               "with conflicting parameters", name);
            return NULL;
        }

        return sink;
    }

    /*
     * ngx_conf_open_file() returns the first entry with the name: the
     * shared one is made first, so that an access_log or error_log
     * naming this file later gets that one and not ours
     */

    if (ngx_conf_open_file(cf->cycle, name) == NULL) {
        return NULL;
    }

    file = ngx_list_push(&cf->cycle->open_files);
    if (file == NULL) {
        return NULL;
    }

    sink = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_audit_sink_t));
    if (sink == NULL) {
        return NULL;
    }

    sink->scratch = ngx_pnalloc(cf->pool, NGX_HTTP_GRPC_GUARD_AUDIT_SCRATCH);
    if (sink->scratch == NULL) {
        return NULL;
    }

    sink->file = file;
    sink->fd = NGX_INVALID_FILE;
    sink->ts_sec = -1;

    file->fd = NGX_INVALID_FILE;
    file->name = *name;
    file->flush = ngx_http_grpc_guard_audit_flush;
    file->data = sink;

    if (size == 0) {
        return sink;
    }

    buffer = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_audit_buf_t));
    if (buffer == NULL) {
        return NULL;
    }

    buffer->start = ngx_pnalloc(cf->pool, size);
    if (buffer->start == NULL) {
        return NULL;
    }

    buffer->pos = buffer->start;
    buffer->last = buffer->start + size;

    if (flush) {
        buffer->event = ngx_pcalloc(cf->pool, sizeof(ngx_event_t));
        if (buffer->event == NULL) {
            return NULL;
        }

        buffer->event->data = file;
        buffer->event->handler = ngx_http_grpc_guard_audit_flush_handler;
        buffer->event->log = &cf->cycle->new_log;
        buffer->event->cancelable = 1;

        buffer->flush = flush;
    }

    sink->buffer = buffer;

    return sink;
}


char *
ngx_http_grpc_guard_audit_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->audit, prev->audit, NULL);

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_grpc_guard_audit_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_grpc_guard_audit_handler;

    return NGX_OK;
}
