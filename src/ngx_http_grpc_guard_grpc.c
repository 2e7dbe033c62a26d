
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The gRPC protocol: which requests are gRPC calls, the raw :path
 * grammar, method patterns, public methods, reflection and deadlines
 * (grpc-timeout), Trailers-Only refusals, and nginx's own error pages
 * turned into gRPC statuses.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


/*
 * what limit_req and limit_conn leave in r->main->limit_req_status and
 * limit_conn_status ($limit_req_status, $limit_conn_status) on a refusal
 */

#define NGX_HTTP_GRPC_GUARD_LIMIT_REQ_REJECTED   3
#define NGX_HTTP_GRPC_GUARD_LIMIT_CONN_REJECTED  2


typedef struct {
    ngx_uint_t                  status;
    ngx_uint_t                  http_status;
    ngx_str_t                   message;
} ngx_http_grpc_guard_reply_t;


static ngx_int_t ngx_http_grpc_guard_sent_path(ngx_http_request_t *r,
    ngx_str_t *path);
static void ngx_http_grpc_guard_trim_path(ngx_str_t *path);
static ngx_int_t ngx_http_grpc_guard_check_deadline(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_timeout_text(ngx_pool_t *pool,
    ngx_msec_t ms, ngx_str_t *text);
static ngx_int_t ngx_http_grpc_guard_match_pattern(ngx_array_t *patterns,
    ngx_str_t *method);
static ngx_int_t ngx_http_grpc_guard_set_trailers_only(ngx_http_request_t *r,
    ngx_http_grpc_guard_call_t *call, ngx_uint_t status, ngx_str_t *message);
static ngx_int_t ngx_http_grpc_guard_add_headers(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_www_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx);
static ngx_str_t *ngx_http_grpc_guard_percent_encode(ngx_pool_t *pool,
    ngx_str_t *s);
static ngx_http_grpc_guard_reply_t *ngx_http_grpc_guard_reply(
    ngx_uint_t status);
static ngx_uint_t ngx_http_grpc_guard_http_to_grpc(ngx_uint_t http_status);
static ngx_int_t ngx_http_grpc_guard_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_grpc_guard_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_grpc_guard_reply_t  ngx_http_grpc_guard_replies[] = {

    { NGX_HTTP_GRPC_GUARD_CANCELLED, NGX_HTTP_CLIENT_CLOSED_REQUEST,
      ngx_string("cancelled") },

    { NGX_HTTP_GRPC_GUARD_UNKNOWN, NGX_HTTP_INTERNAL_SERVER_ERROR,
      ngx_string("unknown") },

    { NGX_HTTP_GRPC_GUARD_INVALID_ARGUMENT, NGX_HTTP_BAD_REQUEST,
      ngx_string("invalid argument") },

    { NGX_HTTP_GRPC_GUARD_DEADLINE_EXCEEDED, NGX_HTTP_GATEWAY_TIME_OUT,
      ngx_string("deadline exceeded") },

    { NGX_HTTP_GRPC_GUARD_PERMISSION_DENIED, NGX_HTTP_FORBIDDEN,
      ngx_string("permission denied") },

    { NGX_HTTP_GRPC_GUARD_RESOURCE_EXHAUSTED, NGX_HTTP_TOO_MANY_REQUESTS,
      ngx_string("rate limit exceeded") },

    { NGX_HTTP_GRPC_GUARD_UNIMPLEMENTED, NGX_HTTP_NOT_FOUND,
      ngx_string("unimplemented") },

    { NGX_HTTP_GRPC_GUARD_INTERNAL, NGX_HTTP_INTERNAL_SERVER_ERROR,
      ngx_string("internal error") },

    { NGX_HTTP_GRPC_GUARD_UNAVAILABLE, NGX_HTTP_SERVICE_UNAVAILABLE,
      ngx_string("service unavailable") },

    { NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED, NGX_HTTP_UNAUTHORIZED,
      ngx_string("unauthenticated") },

    { 0, 0, ngx_null_string }
};


static ngx_str_t  ngx_http_grpc_guard_grpc_timeout = ngx_string("grpc-timeout");
static ngx_str_t  ngx_http_grpc_guard_grpc_status = ngx_string("grpc-status");
static ngx_str_t  ngx_http_grpc_guard_grpc_message =
    ngx_string("grpc-message");
/* the reply's content type, by what the call is */

static ngx_str_t  ngx_http_grpc_guard_content_types[] = {
    ngx_string("application/grpc"),
    ngx_string("application/grpc"),
    ngx_string("application/grpc-web+proto"),
    ngx_string("application/grpc-web-text+proto")
};

static ngx_str_t  ngx_http_grpc_guard_www_auth =
    ngx_string("WWW-Authenticate");
static ngx_str_t  ngx_http_grpc_guard_bearer = ngx_string("Bearer");
static ngx_str_t  ngx_http_grpc_guard_bearer_invalid =
    ngx_string("Bearer error=\"invalid_token\"");

static ngx_str_t  ngx_http_grpc_guard_deadline_message =
    ngx_string("deadline required");
static ngx_str_t  ngx_http_grpc_guard_bad_deadline_message =
    ngx_string("invalid deadline");


/* a header that no filter writes: hides "server" and "date" */
static ngx_table_elt_t  ngx_http_grpc_guard_hidden_header;


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_uint_t
ngx_http_grpc_guard_is_grpc(ngx_http_request_t *r)
{
    u_char      c, *p;
    size_t      len;
    ngx_str_t  *ct;
    ngx_uint_t  kind;

    /*
     * "application/grpc", "application/grpc-web" or
     * "application/grpc-web-text", each alone or followed by "+proto",
     * ";charset=..." and the like
     */

    if (r->headers_in.content_type == NULL) {
        return NGX_HTTP_GRPC_GUARD_NOT_GRPC;
    }

    ct = &r->headers_in.content_type->value;

    len = sizeof("application/grpc") - 1;

    if (ct->len < len
        || ngx_strncasecmp(ct->data, (u_char *) "application/grpc", len) != 0)
    {
        return NGX_HTTP_GRPC_GUARD_NOT_GRPC;
    }

    p = ct->data + len;
    kind = NGX_HTTP_GRPC_GUARD_GRPC;

    if (ct->len - len >= sizeof("-web") - 1
        && ngx_strncasecmp(p, (u_char *) "-web", sizeof("-web") - 1) == 0)
    {
        len += sizeof("-web") - 1;
        p += sizeof("-web") - 1;
        kind = NGX_HTTP_GRPC_GUARD_GRPC_WEB;

        if (ct->len - len >= sizeof("-text") - 1
            && ngx_strncasecmp(p, (u_char *) "-text", sizeof("-text") - 1)
               == 0)
        {
            len += sizeof("-text") - 1;
            kind = NGX_HTTP_GRPC_GUARD_GRPC_WEB_TEXT;
        }
    }

    if (ct->len == len) {
        return kind;
    }

    c = ct->data[len];

    if (c == '+' || c == ';' || c == ' ') {
        return kind;
    }

    return NGX_HTTP_GRPC_GUARD_NOT_GRPC;
}


static ngx_int_t
ngx_http_grpc_guard_sent_path(ngx_http_request_t *r, ngx_str_t *path)
{
    u_char     *p;
    uintptr_t   escape;

    /*
     * the :path grpc_pass sends: the client's own, unless a rewrite or an
     * internal redirect changed $uri, which is then sent escaped and with
     * its arguments
     */

    if (r->valid_unparsed_uri) {
        *path = r->unparsed_uri;
        return NGX_OK;
    }

    escape = 2 * ngx_escape_uri(NULL, r->uri.data, r->uri.len,
                                NGX_ESCAPE_URI);

    if (escape == 0 && r->args.len == 0) {
        *path = r->uri;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, r->uri.len + escape + 1 + r->args.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    path->data = p;

    if (escape) {
        p = (u_char *) ngx_escape_uri(p, r->uri.data, r->uri.len,
                                      NGX_ESCAPE_URI);

    } else {
        p = ngx_copy(p, r->uri.data, r->uri.len);
    }

    if (r->args.len) {
        *p++ = '?';
        p = ngx_copy(p, r->args.data, r->args.len);
    }

    path->len = p - path->data;

    return NGX_OK;
}


void
ngx_http_grpc_guard_raw_path(ngx_http_request_t *r, ngx_str_t *path)
{
    if (ngx_http_grpc_guard_sent_path(r, path) != NGX_OK) {
        *path = r->uri;
    }

    ngx_http_grpc_guard_trim_path(path);
}


static void
ngx_http_grpc_guard_trim_path(ngx_str_t *path)
{
    u_char  *q;

    /*
     * the :path as records and logs show it: without a query, which
     * may carry a credential (?access_token=...), and at most 1 KiB
     */

    if (path->len == 0) {

        /* a request nginx refused before it had a path */

        return;
    }

    if (path->len > NGX_HTTP_GRPC_GUARD_MAX_PATH) {
        path->len = NGX_HTTP_GRPC_GUARD_MAX_PATH;
    }

    q = ngx_strlchr(path->data, path->data + path->len, '?');

    if (q) {
        path->len = q - path->data;
    }
}


ngx_int_t
ngx_http_grpc_guard_classify(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_str_t  path;

    ctx->call.grpc = ngx_http_grpc_guard_is_grpc(r);

    /*
     * nginx matches locations on the normalized $uri but forwards the
     * raw :path upstream (or, after a rewrite, $uri escaped), so the
     * method is taken from what will be sent, and anything that is not
     * "/<service>/<method>" in canonical form is refused before any
     * rule could be looked at
     */

    if (ngx_http_grpc_guard_sent_path(r, &path) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->call.path = path;
    ngx_http_grpc_guard_trim_path(&ctx->call.path);

    if (path.len > NGX_HTTP_GRPC_GUARD_MAX_PATH
        || ngx_http_grpc_guard_parse_path(ctx, &path) != NGX_OK)
    {
        return ngx_http_grpc_guard_refuse(r, ctx,
                                          NGX_HTTP_GRPC_GUARD_UNIMPLEMENTED,
                                          "path_not_canonical");
    }

    if (ctx->call.grpc && r->method != NGX_HTTP_POST) {
        return ngx_http_grpc_guard_refuse(r, ctx,
                                          NGX_HTTP_GRPC_GUARD_UNIMPLEMENTED,
                                          "method_not_post");
    }

    if (glcf->public
        && ngx_http_grpc_guard_match_pattern(glcf->public, &ctx->call.method))
    {
        ctx->call.public = 1;
    }

    if (!glcf->reflection
        && ctx->call.service.len > sizeof("grpc.reflection.") - 1
        && ngx_strncmp(ctx->call.service.data, "grpc.reflection.",
                       sizeof("grpc.reflection.") - 1)
           == 0)
    {
        return ngx_http_grpc_guard_refuse(r, ctx,
                                          NGX_HTTP_GRPC_GUARD_UNIMPLEMENTED,
                                          "reflection_disabled");
    }

    /* whatever the content type: backends may take any as gRPC */

    return ngx_http_grpc_guard_check_deadline(r, glcf, ctx);
}


ngx_int_t
ngx_http_grpc_guard_parse_path(ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *path)
{
    u_char      *p, *last, *service, *method, c;
    ngx_uint_t   dot;

    /*
     * service: dot-separated labels of [A-Za-z0-9_-], no empty label;
     * method: [A-Za-z0-9_-]+; nothing else, so no "//", no "." or ".."
     * segments, no %-escapes and no query
     */

    p = path->data;
    last = p + path->len;

    if (p == last || *p++ != '/') {
        return NGX_ERROR;
    }

    service = p;
    dot = 1;

    for ( /* void */ ; p < last; p++) {
        c = *p;

        if (c == '/') {
            break;
        }

        if (c == '.') {
            if (dot) {
                return NGX_ERROR;
            }

            dot = 1;
            continue;
        }

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '_' || c == '-')
        {
            dot = 0;
            continue;
        }

        return NGX_ERROR;
    }

    if (p == last || p == service || dot) {
        return NGX_ERROR;
    }

    ctx->call.service.data = service;
    ctx->call.service.len = p - service;

    method = ++p;

    for ( /* void */ ; p < last; p++) {
        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '_' || c == '-')
        {
            continue;
        }

        return NGX_ERROR;
    }

    if (p == method) {
        return NGX_ERROR;
    }

    ctx->call.method = *path;
    ctx->call.canonical = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_check_deadline(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_msec_t        ms;
    ngx_uint_t        n;
    ngx_table_elt_t  *h;

    if (glcf->deadline == NGX_HTTP_GRPC_GUARD_DEADLINE_OFF) {
        return NGX_DECLINED;
    }

    h = ngx_http_grpc_guard_find_header(&r->headers_in.headers,
                                        &ngx_http_grpc_guard_grpc_timeout,
                                        &n);

    if (n > 1) {
        ctx->call.message = &ngx_http_grpc_guard_bad_deadline_message;

        return ngx_http_grpc_guard_refuse(r, ctx,
                                          NGX_HTTP_GRPC_GUARD_INVALID_ARGUMENT,
                                          "deadline_malformed");
    }

    if (h == NULL) {

        if (glcf->deadline_default == 0) {

            if (glcf->deadline == NGX_HTTP_GRPC_GUARD_DEADLINE_REQUIRED) {
                ctx->call.message = &ngx_http_grpc_guard_deadline_message;

                return ngx_http_grpc_guard_refuse(r, ctx,
                                         NGX_HTTP_GRPC_GUARD_INVALID_ARGUMENT,
                                         "deadline_missing");
            }

            return NGX_DECLINED;
        }

        /* the default deadline is added to the request sent upstream */

        h = ngx_list_push(&r->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->key = ngx_http_grpc_guard_grpc_timeout;
        h->lowcase_key = ngx_http_grpc_guard_grpc_timeout.data;
        h->hash = ngx_hash_key(h->key.data, h->key.len);
        h->value = glcf->deadline_default_text;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif

        ctx->call.timeout = glcf->deadline_default;
        ctx->call.has_timeout = 1;

        return NGX_DECLINED;
    }

    if (ngx_http_grpc_guard_parse_timeout(&h->value, &ms) != NGX_OK) {
        ctx->call.message = &ngx_http_grpc_guard_bad_deadline_message;

        return ngx_http_grpc_guard_refuse(r, ctx,
                                          NGX_HTTP_GRPC_GUARD_INVALID_ARGUMENT,
                                          "deadline_malformed");
    }

    if (glcf->deadline_max && ms > glcf->deadline_max) {

        /* lower the deadline in the request sent upstream */

        h->value = glcf->deadline_max_text;
        ms = glcf->deadline_max;
    }

    ctx->call.timeout = ms;
    ctx->call.has_timeout = 1;

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_grpc_guard_parse_timeout(ngx_str_t *value, ngx_msec_t *ms)
{
    u_char      *p, *last;
    uint64_t     n, v;

    /* TimeoutValue is 1-8 ASCII digits, TimeoutUnit one of H M S m u n */

    if (value->len < 2 || value->len > 9) {
        return NGX_ERROR;
    }

    last = value->data + value->len - 1;
    n = 0;

    for (p = value->data; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        n = n * 10 + (*p - '0');
    }

    switch (*last) {

    case 'H':
        v = n * 3600000;
        break;

    case 'M':
        v = n * 60000;
        break;

    case 'S':
        v = n * 1000;
        break;

    case 'm':
        v = n;
        break;

    case 'u':
        v = (n + 999) / 1000;
        break;

    case 'n':
        v = (n + 999999) / 1000000;
        break;

    default:
        return NGX_ERROR;
    }

    if (v > (uint64_t) NGX_MAX_INT32_VALUE) {
        v = NGX_MAX_INT32_VALUE;
    }

    *ms = (ngx_msec_t) v;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_timeout_text(ngx_pool_t *pool, ngx_msec_t ms,
    ngx_str_t *text)
{
    u_char  *p;

    /* ms as a grpc-timeout value; nothing for 0 */

    if (ms == 0) {
        ngx_str_null(text);
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    text->data = p;
    text->len = ngx_http_grpc_guard_format_timeout(p, ms) - p;

    return NGX_OK;
}


u_char *
ngx_http_grpc_guard_format_timeout(u_char *p, ngx_msec_t ms)
{
    /* at most 8 digits: milliseconds, else whole seconds rounded up */

    if (ms <= 99999999) {
        return ngx_sprintf(p, "%Mm", ms);
    }

    return ngx_sprintf(p, "%MS", (ms + 999) / 1000);
}


ngx_int_t
ngx_http_grpc_guard_refuse(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t status, char *reason)
{
    ngx_uint_t  level;

    ctx->call.grpc_status = status;
    ctx->call.reason.data = (u_char *) reason;
    ctx->call.reason.len = ngx_strlen(reason);
    ngx_str_set(&ctx->call.decision, "deny");

    level = ctx->conf ? ctx->conf->log_level : NGX_LOG_INFO;

    if (ctx->call.canonical) {
        ngx_log_error(level, r->connection->log, 0,
                      "grpc guard: refused \"%V\" with %ui: %V",
                      &ctx->call.method, status, &ctx->call.reason);

    } else {
        ngx_log_error(level, r->connection->log, 0,
                      "grpc guard: refused with %ui: %V",
                      status, &ctx->call.reason);
    }

    return NGX_DONE;
}


ngx_int_t
ngx_http_grpc_guard_send_refusal(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_str_t                    *message;
    ngx_http_grpc_guard_reply_t  *reply;

    reply = ngx_http_grpc_guard_reply(ctx->call.grpc_status);

    if (!ctx->call.grpc) {

        /* not a gRPC call: the HTTP equivalent, nginx's own page */

        if (reply->http_status == NGX_HTTP_UNAUTHORIZED
            && ngx_http_grpc_guard_www_authenticate(r, ctx) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_grpc_guard_add_headers(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return reply->http_status;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    message = ctx->call.message ? ctx->call.message : &reply->message;

    if (ngx_http_grpc_guard_set_trailers_only(r, &ctx->call,
                                              ctx->call.grpc_status, message)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_add_headers(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_send_header(r);
}


static ngx_int_t
ngx_http_grpc_guard_add_headers(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    /* what the refusing stage adds, e.g. retry-after for limits */

    if (ctx->call.headers == NULL) {
        return NGX_OK;
    }

    kv = ctx->call.headers->elts;

    for (i = 0; i < ctx->call.headers->nelts; i++) {
        if (ngx_http_grpc_guard_add_header(&r->headers_out.headers,
                                           &kv[i].key, &kv[i].value)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_www_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_table_elt_t  *h;

    if (ctx->conf == NULL
        || !(ctx->conf->auth & (NGX_HTTP_GRPC_GUARD_AUTH_JWT
                                |NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION)))
    {
        return NGX_OK;
    }

    /* RFC 6750, section 3: no error code when nothing was presented */

    h = ngx_http_grpc_guard_add_header(&r->headers_out.headers,
                                       &ngx_http_grpc_guard_www_auth,
                                       ctx->call.credentials
                                       ? &ngx_http_grpc_guard_bearer_invalid
                                       : &ngx_http_grpc_guard_bearer);
    if (h == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.www_authenticate = h;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_set_trailers_only(ngx_http_request_t *r,
    ngx_http_grpc_guard_call_t *call, ngx_uint_t status, ngx_str_t *message)
{
    u_char     *p;
    ngx_str_t   value, *encoded;

    /*
     * Trailers-Only: one HEADERS frame with END_STREAM that carries
     * :status 200, content-type and the status; no body, and neither
     * "server" nor "date", which a client would read as trailers
     */

    if (ngx_list_init(&r->headers_out.headers, r->pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.status_line.len = 0;

    r->headers_out.content_type =
                        ngx_http_grpc_guard_content_types[call->grpc];
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    r->headers_out.content_length = NULL;

    /*
     * gRPC-Web runs over HTTP/1.1 too, where a reply without a length
     * would be sent chunked without an end, or read until the connection
     * closes
     */

    r->headers_out.content_length_n =
                        (call->grpc >= NGX_HTTP_GRPC_GUARD_GRPC_WEB
                         || r->http_version < NGX_HTTP_VERSION_20) ? 0 : -1;
    r->headers_out.last_modified = NULL;
    r->headers_out.last_modified_time = -1;
    r->headers_out.etag = NULL;
    r->headers_out.location = NULL;
    r->headers_out.refresh = NULL;
    r->headers_out.www_authenticate = NULL;
    r->headers_out.accept_ranges = NULL;
    r->headers_out.content_encoding = NULL;
    r->headers_out.expires = NULL;

    r->headers_out.server = &ngx_http_grpc_guard_hidden_header;
    r->headers_out.date = &ngx_http_grpc_guard_hidden_header;

    r->header_only = 1;
    r->allow_ranges = 0;
    r->expect_trailers = 0;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%ui", status) - p;

    if (ngx_http_grpc_guard_add_header(&r->headers_out.headers,
                                       &ngx_http_grpc_guard_grpc_status,
                                       &value)
        == NULL)
    {
        return NGX_ERROR;
    }

    encoded = ngx_http_grpc_guard_percent_encode(r->pool, message);
    if (encoded == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_add_header(&r->headers_out.headers,
                                       &ngx_http_grpc_guard_grpc_message,
                                       encoded)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_str_t *
ngx_http_grpc_guard_percent_encode(ngx_pool_t *pool, ngx_str_t *s)
{
    size_t      n;
    u_char     *p, *q;
    ngx_str_t  *out;

    static u_char  hex[] = "0123456789ABCDEF";

    /* gRPC's Percent-Byte-Unreserved: 0x20-0x24 and 0x26-0x7e */

    n = 0;

    for (p = s->data; p < s->data + s->len; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            n++;
        }
    }

    out = ngx_palloc(pool, sizeof(ngx_str_t));
    if (out == NULL) {
        return NULL;
    }

    if (n == 0) {
        *out = *s;
        return out;
    }

    q = ngx_pnalloc(pool, s->len + 2 * n);
    if (q == NULL) {
        return NULL;
    }

    out->data = q;

    for (p = s->data; p < s->data + s->len; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            *q++ = '%';
            *q++ = hex[*p >> 4];
            *q++ = hex[*p & 0xf];

        } else {
            *q++ = *p;
        }
    }

    out->len = q - out->data;

    return out;
}


static ngx_http_grpc_guard_reply_t *
ngx_http_grpc_guard_reply(ngx_uint_t status)
{
    ngx_http_grpc_guard_reply_t  *reply;

    for (reply = ngx_http_grpc_guard_replies; reply->status; reply++) {
        if (reply->status == status) {
            return reply;
        }
    }

    /* UNKNOWN */

    return &ngx_http_grpc_guard_replies[1];
}


static ngx_uint_t
ngx_http_grpc_guard_http_to_grpc(ngx_uint_t http_status)
{
    /*
     * nginx-generated errors, then gRPC's HTTP-to-gRPC status mapping
     * for the others ("doc/http-grpc-status-mapping.md")
     */

    switch (http_status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return NGX_HTTP_GRPC_GUARD_RESOURCE_EXHAUSTED;

    case NGX_HTTP_BAD_GATEWAY:
    case NGX_HTTP_SERVICE_UNAVAILABLE:
    case NGX_HTTP_TOO_MANY_REQUESTS:
        return NGX_HTTP_GRPC_GUARD_UNAVAILABLE;

    case NGX_HTTP_GATEWAY_TIME_OUT:
        return NGX_HTTP_GRPC_GUARD_DEADLINE_EXCEEDED;

    case NGX_HTTP_UNAUTHORIZED:
    case 495:
    case 496:
        return NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED;

    case NGX_HTTP_FORBIDDEN:
        return NGX_HTTP_GRPC_GUARD_PERMISSION_DENIED;

    case NGX_HTTP_NOT_FOUND:
        return NGX_HTTP_GRPC_GUARD_UNIMPLEMENTED;

    case NGX_HTTP_BAD_REQUEST:
        return NGX_HTTP_GRPC_GUARD_INTERNAL;

    case NGX_HTTP_REQUEST_TIME_OUT:
        return NGX_HTTP_GRPC_GUARD_DEADLINE_EXCEEDED;

    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        return NGX_HTTP_GRPC_GUARD_INTERNAL;

    default:
        return NGX_HTTP_GRPC_GUARD_UNKNOWN;
    }
}


ngx_int_t
ngx_http_grpc_guard_final_status(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t *source)
{
    ngx_int_t         n;
    ngx_uint_t        count, status;
    ngx_msec_t        timeout, slack;
    ngx_time_t       *tp;
    ngx_msec_int_t    elapsed;
    ngx_table_elt_t  *h;

    if (ctx->call.grpc_status != NGX_HTTP_GRPC_GUARD_NO_STATUS) {

        /*
         * the module's own refusal; or an nginx error page (502, 504,
         * 413...) that the header filter turned into a gRPC status,
         * which tells what happened rather than what anyone answered
         */

        *source = ctx->rewritten ? NGX_HTTP_GRPC_GUARD_SOURCE_SYNTHESIZED
                                 : NGX_HTTP_GRPC_GUARD_SOURCE_LOCAL;
        return ctx->call.grpc_status;
    }

    h = ngx_http_grpc_guard_find_header(&r->headers_out.trailers,
                                        &ngx_http_grpc_guard_grpc_status,
                                        &count);
    if (h) {
        *source = NGX_HTTP_GRPC_GUARD_SOURCE_TRAILER;
        goto found;
    }

    h = ngx_http_grpc_guard_find_header(&r->headers_out.headers,
                                        &ngx_http_grpc_guard_grpc_status,
                                        &count);
    if (h) {
        *source = NGX_HTTP_GRPC_GUARD_SOURCE_TRAILERS_ONLY;
        goto found;
    }

    *source = NGX_HTTP_GRPC_GUARD_SOURCE_SYNTHESIZED;

    status = r->headers_out.status;

#if (NGX_HTTP_V2)

    /*
     * nginx reset the stream itself, for a protocol error of the client
     * (bad bytes in a header, flow control): gRPC clients read that
     * RST_STREAM as INTERNAL; it is not a cancel, though it sets c->error
     */

    if (r->stream && r->stream->rst_sent) {
        return NGX_HTTP_GRPC_GUARD_INTERNAL;
    }

#endif

    /*
     * the client went away before the call ended: RST_STREAM or a
     * closed connection set c->error (an upstream failure does not),
     * and nginx ends such a call with 499 while no header was sent
     */

    if (r->connection->error || status == NGX_HTTP_CLIENT_CLOSED_REQUEST) {

        if (ctx->call.has_timeout) {
            timeout = ctx->call.timeout;

        } else {
            h = ngx_http_grpc_guard_find_header(&r->headers_in.headers,
                                            &ngx_http_grpc_guard_grpc_timeout,
                                            &count);

            if (h == NULL || count != 1
                || ngx_http_grpc_guard_parse_timeout(&h->value, &timeout)
                   != NGX_OK)
            {
                return NGX_HTTP_GRPC_GUARD_CANCELLED;
            }
        }

        /*
         * the client's clock started before nginx saw the call (by a
         * connect and a TLS handshake, for the first call of a channel),
         * so its cancel at the deadline comes "early" here: a cancel
         * within a tenth of the deadline (10 ms to 1 s) of it counts
         */

        slack = timeout / 10;
        slack = ngx_max(slack, NGX_HTTP_GRPC_GUARD_DEADLINE_SLACK_MIN);
        slack = ngx_min(slack, NGX_HTTP_GRPC_GUARD_DEADLINE_SLACK_MAX);

        tp = ngx_timeofday();
        elapsed = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                                    + (tp->msec - r->start_msec));

        if (elapsed + (ngx_msec_int_t) slack >= (ngx_msec_int_t) timeout) {
            return NGX_HTTP_GRPC_GUARD_DEADLINE_EXCEEDED;
        }

        return NGX_HTTP_GRPC_GUARD_CANCELLED;
    }

    if (status == NGX_HTTP_OK) {

        /*
         * the response started but ended without grpc-status: the
         * upstream reset the stream or closed the connection mid-call,
         * or timed out, and nginx reset the stream to the client
         */

        return NGX_HTTP_GRPC_GUARD_INTERNAL;
    }

    if (status) {

        /* nginx's own error page, in a location without the guard */

        return ngx_http_grpc_guard_http_to_grpc(status);
    }

    return NGX_HTTP_GRPC_GUARD_UNKNOWN;

found:

    n = ngx_atoi(h->value.data, h->value.len);

    if (n == NGX_ERROR) {
        return NGX_HTTP_GRPC_GUARD_UNKNOWN;
    }

    return n;
}


static ngx_int_t
ngx_http_grpc_guard_match_pattern(ngx_array_t *patterns, ngx_str_t *method)
{
    ngx_uint_t                      i;
    ngx_http_grpc_guard_pattern_t  *p;

    p = patterns->elts;

    for (i = 0; i < patterns->nelts; i++) {

        if (p[i].prefix) {
            if (method->len >= p[i].text.len
                && ngx_strncmp(method->data, p[i].text.data, p[i].text.len)
                   == 0)
            {
                return 1;
            }

            continue;
        }

        if (method->len == p[i].text.len
            && ngx_strncmp(method->data, p[i].text.data, p[i].text.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


char *
ngx_http_grpc_guard_parse_pattern(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_grpc_guard_pattern_t *pattern)
{
    u_char  *p, *last;

    /*
     * "*", "/pkg.Svc/Method", or a prefix ending in "*", such as
     * "/pkg.Svc/Get*" or "/pkg.*"
     */

    pattern->text = *value;
    pattern->prefix = 0;

    if (value->len == 1 && value->data[0] == '*') {
        pattern->text.len = 0;
        pattern->prefix = 1;
        return NGX_CONF_OK;
    }

    if (value->len < 2 || value->data[0] != '/') {
        goto invalid;
    }

    last = value->data + value->len;

    if (last[-1] == '*') {
        pattern->text.len--;
        pattern->prefix = 1;
        last--;
    }

    for (p = value->data + 1; p < last; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9')
            || *p == '_' || *p == '-' || *p == '.' || *p == '/')
        {
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid method pattern \"%V\": it must be \"*\", "
                       "\"/pkg.Service/Method\" or a prefix ending in \"*\"",
                       value);

    return NGX_CONF_ERROR;
}


char *
ngx_http_grpc_guard_public_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    char                           *rv;
    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_grpc_guard_pattern_t  *p;

    if (glcf->public == NGX_CONF_UNSET_PTR) {
        glcf->public = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_grpc_guard_pattern_t));
        if (glcf->public == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_array_push(glcf->public);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        rv = ngx_http_grpc_guard_parse_pattern(cf, &value[i], p);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_deadline_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_str_t   *value, s;
    ngx_msec_t  *msp;
    ngx_uint_t   i;

    if (glcf->deadline != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        glcf->deadline = NGX_HTTP_GRPC_GUARD_DEADLINE_OFF;

    } else if (ngx_strcmp(value[1].data, "optional") == 0) {
        glcf->deadline = NGX_HTTP_GRPC_GUARD_DEADLINE_OPTIONAL;

    } else if (ngx_strcmp(value[1].data, "required") == 0) {
        glcf->deadline = NGX_HTTP_GRPC_GUARD_DEADLINE_REQUIRED;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"off\", "
                           "\"optional\" or \"required\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->deadline_max = 0;
    glcf->deadline_default = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            msp = &glcf->deadline_max;
            s.len = value[i].len - 4;
            s.data = value[i].data + 4;

        } else if (ngx_strncmp(value[i].data, "default=", 8) == 0) {
            msp = &glcf->deadline_default;
            s.len = value[i].len - 8;
            s.data = value[i].data + 8;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *msp = ngx_parse_time(&s, 0);

        if (*msp == (ngx_msec_t) NGX_ERROR || *msp == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (glcf->deadline == NGX_HTTP_GRPC_GUARD_DEADLINE_OFF
        && cf->args->nelts > 2)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"off\" takes no parameters");
        return NGX_CONF_ERROR;
    }

    if (glcf->deadline_max && glcf->deadline_default > glcf->deadline_max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"default=\" is longer than \"max=\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_grpc_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->public, prev->public, NULL);
    ngx_conf_merge_value(conf->reflection, prev->reflection, 0);

    /* the three deadline settings come from one directive */

    if (conf->deadline == NGX_CONF_UNSET_UINT) {
        conf->deadline = prev->deadline;
        conf->deadline_max = prev->deadline_max;
        conf->deadline_default = prev->deadline_default;
    }

    ngx_conf_merge_uint_value(conf->deadline, prev->deadline,
                              NGX_HTTP_GRPC_GUARD_DEADLINE_OFF);
    ngx_conf_merge_msec_value(conf->deadline_max, prev->deadline_max, 0);
    ngx_conf_merge_msec_value(conf->deadline_default,
                              prev->deadline_default, 0);

    /* the grpc-timeout values the guard may send upstream, made once */

    if (ngx_http_grpc_guard_timeout_text(cf->pool, conf->deadline_max,
                                         &conf->deadline_max_text)
        != NGX_OK
        || ngx_http_grpc_guard_timeout_text(cf->pool, conf->deadline_default,
                                            &conf->deadline_default_text)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_grpc_guard_init_filters(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_grpc_guard_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_grpc_guard_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                        *message;
    ngx_uint_t                        status, code, kind, early;
    ngx_http_grpc_guard_ctx_t        *ctx;
    ngx_http_core_srv_conf_t         *cscf;
    ngx_http_grpc_guard_loc_conf_t   *glcf;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    status = r->headers_out.status;

    if (r != r->main || status == NGX_HTTP_OK || status < NGX_HTTP_OK) {
        return ngx_http_next_header_filter(r);
    }

    early = 0;

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL) {

        /*
         * an error found before the access phase, e.g. 413 for a
         * content-length over client_max_body_size
         */

        glcf = ngx_http_get_module_loc_conf(r, ngx_http_grpc_guard_module);

        kind = ngx_http_grpc_guard_is_grpc(r);

        if (kind == NGX_HTTP_GRPC_GUARD_NOT_GRPC) {
            return ngx_http_next_header_filter(r);
        }

        if (!glcf->enable) {

            /*
             * before a location is matched (e.g. a client certificate
             * nginx could not verify), the server's settings are all
             * there is: a server with guarded locations answers gRPC
             */

            cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
            gmcf = ngx_http_get_module_main_conf(r,
                                                 ngx_http_grpc_guard_module);

            if (!gmcf->used || r->loc_conf != cscf->ctx->loc_conf) {
                return ngx_http_next_header_filter(r);
            }
        }

        ctx = ngx_http_grpc_guard_create_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ctx->call.grpc = kind;
        ctx->conf = glcf;
        ngx_http_grpc_guard_raw_path(r, &ctx->call.path);

        early = 1;

    } else if (!ctx->call.grpc || ctx->rewritten) {
        return ngx_http_next_header_filter(r);

    } else if (ctx->call.grpc_status != NGX_HTTP_GRPC_GUARD_NO_STATUS) {

        /*
         * the guard refused the call after the access phase (a request
         * message over grpc_guard_max_message_size) and nginx finalized
         * the request with the HTTP status it returned: the reply is
         * the guard's own status and message
         */

        message = ctx->call.message;

        if (message == NULL) {
            message = &ngx_http_grpc_guard_reply(ctx->call.grpc_status)
                          ->message;
        }

        if (ngx_http_grpc_guard_set_trailers_only(r, &ctx->call,
                                                  ctx->call.grpc_status,
                                                  message)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_http_next_header_filter(r);
    }

    /*
     * nginx answered a gRPC call with an HTTP error page (413, 502,
     * 504...), which clients read as INTERNAL or UNKNOWN: answer with
     * the matching gRPC status instead
     */

    code = ngx_http_grpc_guard_http_to_grpc(status);

#if (NGX_HTTP_SSL)

    /* 495 and 496, answered as 400, are a refused client certificate */

    if (status == NGX_HTTP_BAD_REQUEST && ngx_http_grpc_guard_mtls_refused(r)) {
        code = NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED;

        if (ctx->call.reason.len == 0) {
            ngx_str_set(&ctx->call.reason, "mtls_untrusted");
        }
    }

#endif

    /*
     * limit_req and limit_conn refuse with 503 (or limit_req_status):
     * the caller is over a limit, not facing an unavailable service
     */

    if (r->main->limit_req_status == NGX_HTTP_GRPC_GUARD_LIMIT_REQ_REJECTED
        || r->main->limit_conn_status
           == NGX_HTTP_GRPC_GUARD_LIMIT_CONN_REJECTED)
    {
        code = NGX_HTTP_GRPC_GUARD_RESOURCE_EXHAUSTED;

        if (ctx->call.reason.len == 0) {
            if (r->main->limit_req_status) {
                ngx_str_set(&ctx->call.reason, "nginx_limit_req");

            } else {
                ngx_str_set(&ctx->call.reason, "nginx_limit_conn");
            }
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard: http status %ui becomes grpc-status %ui",
                   status, code);

    ctx->rewritten = 1;
    ctx->call.grpc_status = code;

    if (ctx->call.reason.len == 0) {
        switch (status) {

        case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
            ngx_str_set(&ctx->call.reason, "body_too_large");
            break;

        case NGX_HTTP_BAD_GATEWAY:
        case NGX_HTTP_SERVICE_UNAVAILABLE:
            ngx_str_set(&ctx->call.reason, "upstream_unavailable");
            break;

        case NGX_HTTP_GATEWAY_TIME_OUT:
            ngx_str_set(&ctx->call.reason, "upstream_timeout");
            break;

        case NGX_HTTP_BAD_REQUEST:

            /* refused by nginx before the guard saw it: bad headers */

            if (early) {
                ngx_str_set(&ctx->call.reason, "bad_request");
                break;
            }

            /* fall through */

        default:
            ngx_str_set(&ctx->call.reason, "http_error");
        }
    }

    if (ngx_http_grpc_guard_set_trailers_only(r, &ctx->call, code,
                                   &ngx_http_grpc_guard_reply(code)->message)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_grpc_guard_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                *cl;
    ngx_http_grpc_guard_ctx_t  *ctx;

    if (in == NULL || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_grpc_guard_module);

    if (ctx == NULL || !ctx->rewritten) {
        return ngx_http_next_body_filter(r, in);
    }

    /* the error page a Trailers-Only reply replaced is not sent */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    return NGX_OK;
}
