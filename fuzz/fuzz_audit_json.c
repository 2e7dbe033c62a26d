
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The audit record: ngx_http_grpc_guard_audit_collect gathers the values
 * of a call (with the size it reserves for the record), and
 * ngx_http_grpc_guard_audit_record writes the JSON line; on the way,
 * ngx_http_grpc_guard_final_status reads an upstream grpc-status and
 * ngx_http_grpc_guard_is_grpc the content type.
 *
 * The record and sink types are private to audit.c: this file includes
 * it (the target is linked without its object).
 *
 * Input: fields separated by 0x1e, in this order: flags (at least 8
 * bytes, see below), :path, :authority, decision, reason, rule, limit
 * name, principal kind, principal, sub, iss, client, SPIFFE ID,
 * fingerprint, two upstream peers, the upstream's grpc-status (and
 * grpc-timeout), the peer address (its bytes), the content type.
 *
 * Properties: the record fits in the size collect reserved (it is
 * written into exactly that many bytes, ASan watches), is one JSON
 * object (jansson parses it, duplicates refused) and valid UTF-8 with no
 * raw control character, and holds the values given where they are
 * valid UTF-8 and not cut.
 */


#include "ngx_http_grpc_guard_audit.c"

#include <jansson.h>

#include "ngx_fuzz_common.h"


#define NGX_FUZZ_AUDIT_FIELDS  19


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_fuzz_audit_same(json_t *obj, const char *key,
    ngx_str_t *value, size_t max);
static ngx_table_elt_t *ngx_fuzz_audit_header(ngx_list_t *list, char *key,
    ngx_str_t *value);


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
    u_char                            *buf, *p, f[8];
    size_t                             len;
    void                              *ctxs[1], *loc_conf[1];
    ngx_str_t                          s[NGX_FUZZ_AUDIT_FIELDS];
    ngx_uint_t                         i;
    json_t                            *json, *v;
    ngx_pool_t                        *pool;
    json_error_t                       error;
    const u_char                      *q, *last;
    ngx_connection_t                  *c;
    ngx_http_request_t                *r;
    struct sockaddr_in                 sin;
    struct sockaddr_in6                sin6;
    struct sockaddr_un                 sun;
    ngx_http_upstream_state_t         *state;
    ngx_http_grpc_guard_ctx_t         *ctx, tmp;
    ngx_http_variable_value_t          vv[1];
    ngx_http_grpc_guard_audit_t        audit;
    ngx_http_grpc_guard_loc_conf_t     glcf;
    ngx_http_grpc_guard_audit_rec_t    rec;
    ngx_http_grpc_guard_audit_sink_t   sink;

    pool = ngx_fuzz_pool();

    /* the fields, each its own allocation */

    q = data;
    last = data + size;

    for (i = 0; i < NGX_FUZZ_AUDIT_FIELDS; i++) {
        if (ngx_fuzz_next(&q, last, 0x1e, &s[i]) != NGX_OK) {
            s[i].len = 0;
        }

        s[i].data = ngx_fuzz_dup(pool, s[i].data, s[i].len);
    }

    ngx_memzero(f, sizeof(f));
    ngx_memcpy(f, s[0].data, ngx_min(s[0].len, sizeof(f)));

    /* the location */

    ngx_memzero(&glcf, sizeof(ngx_http_grpc_guard_loc_conf_t));
    ngx_memzero(&audit, sizeof(ngx_http_grpc_guard_audit_t));

    glcf.enable = 1;
    glcf.audit = &audit;
    audit.request_id = 0;

    ngx_memzero(&sink, sizeof(ngx_http_grpc_guard_audit_sink_t));
    sink.seq = f[7] * 1000003ULL;
    sink.ts_sec = -1;

    /* the connection and the request */

    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    if (c == NULL || r == NULL) {
        abort();
    }

    c->log = ngx_fuzz_log();
    c->pool = pool;
    c->error = (f[0] & 0x08) != 0;
    c->sent = f[5] * 7919;

    if (f[0] & 0x04) {
        ngx_memzero(&sun, sizeof(struct sockaddr_un));
        sun.sun_family = AF_UNIX;
        c->sockaddr = (struct sockaddr *) &sun;

    } else if (f[0] & 0x02) {
        ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(f[6] * 256 + f[5]);
        c->sockaddr = (struct sockaddr *) &sin6;

    } else {
        ngx_memzero(&sin, sizeof(struct sockaddr_in));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(f[6] * 256 + f[5]);
        c->sockaddr = (struct sockaddr *) &sin;
    }

    ctxs[0] = NULL;
    loc_conf[0] = &glcf;

    /*
     * the address text is nginx's (ngx_sock_ntop() at accept, and again
     * after realip or PROXY protocol): made here the same way, from the
     * field's bytes
     */

    if (f[0] & 0x02) {
        ngx_memcpy(&sin6.sin6_addr, s[17].data, ngx_min(s[17].len, 16));

    } else if (!(f[0] & 0x04)) {
        ngx_memcpy(&sin.sin_addr, s[17].data, ngx_min(s[17].len, 4));
    }

    c->socklen = (f[0] & 0x04) ? sizeof(struct sockaddr_un)
                 : (f[0] & 0x02) ? sizeof(struct sockaddr_in6)
                 : sizeof(struct sockaddr_in);

    c->addr_text.data = ngx_pnalloc(pool, NGX_SOCKADDR_STRLEN);
    if (c->addr_text.data == NULL) {
        abort();
    }

    c->addr_text.len = ngx_sock_ntop(c->sockaddr, c->socklen,
                                     c->addr_text.data, NGX_SOCKADDR_STRLEN,
                                     0);

    ngx_memzero(vv, sizeof(vv));

    r->connection = c;
    r->pool = pool;
    r->main = r;
    r->ctx = ctxs;
    r->loc_conf = loc_conf;
    r->variables = vv;
    r->start_sec = ngx_time() - f[4] % 4;
    r->start_msec = f[4] * 4;
    r->request_length = f[3] * 131;
    r->headers_out.status = f[2] * 4;
    r->unparsed_uri = s[1];
    r->valid_unparsed_uri = 1;
    r->uri = s[1];

    if (ngx_list_init(&r->headers_in.headers, pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK
        || ngx_list_init(&r->headers_out.headers, pool, 2,
                         sizeof(ngx_table_elt_t))
           != NGX_OK
        || ngx_list_init(&r->headers_out.trailers, pool, 2,
                         sizeof(ngx_table_elt_t))
           != NGX_OK)
    {
        abort();
    }

    if (s[2].len) {
        r->headers_in.host = ngx_fuzz_audit_header(&r->headers_in.headers,
                                                   "host", &s[2]);
    }

    if (s[18].len) {
        r->headers_in.content_type = ngx_fuzz_audit_header(
                                    &r->headers_in.headers, "content-type",
                                    &s[18]);
    }

    if (f[0] & 0x10) {
        (void) ngx_fuzz_audit_header((f[1] & 0x80) ? &r->headers_out.headers
                                                   : &r->headers_out.trailers,
                                     "grpc-status", &s[16]);
    }

    if (f[0] & 0x20) {
        (void) ngx_fuzz_audit_header(&r->headers_in.headers, "grpc-timeout",
                                     &s[16]);
    }

    if (s[14].len || s[15].len) {
        r->upstream_states = ngx_array_create(pool, 2,
                                          sizeof(ngx_http_upstream_state_t));
        if (r->upstream_states == NULL) {
            abort();
        }

        for (i = 14; i < 16; i++) {
            state = ngx_array_push(r->upstream_states);
            if (state == NULL) {
                abort();
            }

            ngx_memzero(state, sizeof(ngx_http_upstream_state_t));
            state->peer = s[i].len ? &s[i] : NULL;
        }
    }

    /* the call, as the access phase left it (or no guard at all) */

    if (f[0] & 0x01) {
        ctx = ngx_pcalloc(pool, sizeof(ngx_http_grpc_guard_ctx_t));
        if (ctx == NULL) {
            abort();
        }

        ctx->conf = &glcf;
        ctx->call.path = s[1];
        ctx->call.grpc = f[1] & 3;
        ctx->call.grpc_status = (f[1] >> 2) < 17 ? (f[1] >> 2)
                                : NGX_HTTP_GRPC_GUARD_NO_STATUS;
        ctx->call.limit_remaining = (ngx_int_t) f[3] - 8;
        ctx->call.decision = s[3];
        ctx->call.reason = s[4];
        ctx->call.rule = s[5];
        ctx->call.limit_name = s[6];
        ctx->call.principal_kind = s[7];
        ctx->call.principal = s[8];
        ctx->call.sub = s[9];
        ctx->call.iss = s[10];
        ctx->call.client = s[11];
        ctx->call.spiffe = s[12];
        ctx->call.fingerprint = s[13];
        ctx->call.has_timeout = (f[0] & 0x20) != 0;
        ctx->call.timeout = f[6] * 10;
        ctx->rewritten = (f[0] & 0x40) != 0;

        if (f[0] & 0x80) {
            ctx->call.limit = (ngx_http_grpc_guard_limit_ctx_t *) pool;
        }

        (void) ngx_http_grpc_guard_parse_path(ctx, &s[1]);

        ctxs[0] = ctx;
    }

    /* the log phase */

    ngx_http_grpc_guard_audit_collect(r, &glcf, &rec, &tmp);

    ngx_fuzz_assert(rec.len >= NGX_HTTP_GRPC_GUARD_AUDIT_FIXED);

    /* written into exactly the size reserved */

    buf = ngx_pnalloc(pool, rec.len);
    if (buf == NULL) {
        abort();
    }

    sink.seq++;

    p = ngx_http_grpc_guard_audit_record(buf, &rec, &sink);

    len = p - buf;

    ngx_fuzz_assert(len <= rec.len);
    ngx_fuzz_assert(ngx_fuzz_utf8_valid(buf, len));

    for (i = 0; i < len; i++) {
        if (buf[i] < 0x20 || buf[i] == 0x7f) {
            fprintf(stderr, "\nrecord: %.*s\nbyte %d at %d\n", (int) len, buf,
                    buf[i], (int) i);
        }

        ngx_fuzz_assert(buf[i] >= 0x20 && buf[i] != 0x7f);
    }

    json = json_loadb((char *) buf, len, JSON_ALLOW_NUL
                      | JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK,
                      &error);

    if (json == NULL) {
        fprintf(stderr, "\n%.*s\njansson: %s at %d\n", (int) len, buf,
                error.text, error.position);
    }

    ngx_fuzz_assert(json != NULL);
    ngx_fuzz_assert(json_is_object(json));
    ngx_fuzz_assert((size_t) error.position == len);

    v = json_object_get(json, "seq");
    ngx_fuzz_assert(json_is_integer(v));

    if (rec.ctx == ctxs[0] && ctxs[0] != NULL) {
        ctx = ctxs[0];

        ngx_fuzz_audit_same(json, "authority", &s[2],
                            NGX_HTTP_GRPC_GUARD_AUDIT_MAX_HOST);
        ngx_fuzz_audit_same(json, "reason", &ctx->call.reason,
                            NGX_HTTP_GRPC_GUARD_AUDIT_MAX_SHORT);
        ngx_fuzz_audit_same(json, "rule", &ctx->call.rule,
                            NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);
        ngx_fuzz_audit_same(json, "method", &s[1], (size_t) -1);

        v = json_object_get(json, "principal");

        if (ctx->call.sub.len || ctx->call.iss.len || ctx->call.client.len
            || ctx->call.spiffe.len || ctx->call.principal.len
            || ctx->call.principal_kind.len || ctx->call.fingerprint.len)
        {
            ngx_fuzz_assert(json_is_object(v));

            ngx_fuzz_audit_same(v, "sub", &ctx->call.sub,
                                NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);
            ngx_fuzz_audit_same(v, "iss", &ctx->call.iss,
                                NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);
            ngx_fuzz_audit_same(v, "client", &ctx->call.client,
                                NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);
            ngx_fuzz_audit_same(v, "spiffe", &ctx->call.spiffe,
                                NGX_HTTP_GRPC_GUARD_AUDIT_MAX_FIELD);

        } else {
            ngx_fuzz_assert(v == NULL);
        }
    }

    json_decref(json);

    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_fuzz_audit_same(json_t *obj, const char *key, ngx_str_t *value,
    size_t max)
{
    json_t  *v;

    /* a value written whole and valid comes back as it was */

    v = json_object_get(obj, key);

    if (value->len == 0) {
        ngx_fuzz_assert(v == NULL);
        return;
    }

    ngx_fuzz_assert(json_is_string(v));

    if (value->len > max || !ngx_fuzz_utf8_valid(value->data, value->len)) {
        return;
    }

    ngx_fuzz_assert(json_string_length(v) == value->len);
    ngx_fuzz_assert(ngx_memcmp(json_string_value(v), value->data, value->len)
                    == 0);
}


static ngx_table_elt_t *
ngx_fuzz_audit_header(ngx_list_t *list, char *key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(list);
    if (h == NULL) {
        abort();
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->lowcase_key = (u_char *) key;
    h->value = *value;

    return h;
}
