
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Per-message size limits (grpc_guard_max_message_size): a request body
 * filter that reads the 5-byte prefix of every gRPC and gRPC-Web request
 * message as the body streams through, and refuses the call before the
 * bytes of a message declared larger than the limit go upstream.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


/* gRPC's own default receive limit (MaxRecvMsgSize) */
#define NGX_HTTP_GRPC_GUARD_MESSAGE_DEFAULT     (4 * 1024 * 1024)

/* 1 byte of flags, 4 bytes of big-endian length */
#define NGX_HTTP_GRPC_GUARD_MESSAGE_PREFIX      5


/* how a request body is framed */

#define NGX_HTTP_GRPC_GUARD_FRAMING_NONE        0
#define NGX_HTTP_GRPC_GUARD_FRAMING_BINARY      1
#define NGX_HTTP_GRPC_GUARD_FRAMING_TEXT        2


static ngx_int_t ngx_http_grpc_guard_message_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_uint_t ngx_http_grpc_guard_message_framing(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_message_read(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    u_char *p, u_char *last);
static ngx_int_t ngx_http_grpc_guard_message_decode(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    u_char *p, u_char *last);
static ngx_int_t ngx_http_grpc_guard_message_base64(u_char c);
static ngx_int_t ngx_http_grpc_guard_message_refuse(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t status, char *reason,
    ngx_str_t *message, ngx_int_t http_status);


static ngx_str_t  ngx_http_grpc_guard_message_too_large =
    ngx_string("message too large");
static ngx_str_t  ngx_http_grpc_guard_message_malformed =
    ngx_string("malformed message");


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


static ngx_int_t
ngx_http_grpc_guard_message_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t                           rc;
    ngx_buf_t                          *b;
    ngx_chain_t                        *cl;
    ngx_http_grpc_guard_ctx_t          *ctx;
    ngx_http_grpc_guard_loc_conf_t     *glcf;
    ngx_http_grpc_guard_message_ctx_t  *mc;

    if (in == NULL) {
        return ngx_http_next_request_body_filter(r, in);
    }

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_grpc_guard_module);

    if (!glcf->enable || glcf->max_message_size == 0) {
        return ngx_http_next_request_body_filter(r, in);
    }

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL) {
        return ngx_http_next_request_body_filter(r, in);
    }

    mc = &ctx->body;

    if (!mc->started) {

        /* the rest of the state was zeroed with the context */

        mc->framing = ngx_http_grpc_guard_message_framing(r, ctx);
        mc->started = 1;
    }

    if (mc->framing == NGX_HTTP_GRPC_GUARD_FRAMING_NONE) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "grpc guard: request body not framed");

        return ngx_http_next_request_body_filter(r, in);
    }

    if (mc->refused) {
        return mc->refused;
    }

    /*
     * nothing of "in" is passed on when a message is refused: the bytes
     * of the messages before it in these buffers never go upstream
     * either, as the call ends here
     */

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last == b->pos) {
            continue;
        }

        if (!ngx_buf_in_memory(b)) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "grpc guard: request body buffer not in memory");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (mc->framing == NGX_HTTP_GRPC_GUARD_FRAMING_TEXT) {
            rc = ngx_http_grpc_guard_message_decode(r, glcf, ctx, b->pos,
                                                    b->last);

        } else {
            rc = ngx_http_grpc_guard_message_read(r, glcf, ctx, b->pos,
                                                  b->last);
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


static ngx_uint_t
ngx_http_grpc_guard_message_framing(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    /*
     * gRPC and gRPC-Web ("application/grpc-web", "+proto") frame their
     * messages alike, "application/grpc-web-text" in base64; other
     * bodies are not framed
     */

    switch (ctx->call.grpc) {

    case NGX_HTTP_GRPC_GUARD_GRPC:
    case NGX_HTTP_GRPC_GUARD_GRPC_WEB:
        return NGX_HTTP_GRPC_GUARD_FRAMING_BINARY;

    case NGX_HTTP_GRPC_GUARD_GRPC_WEB_TEXT:
        return NGX_HTTP_GRPC_GUARD_FRAMING_TEXT;

    default:
        return NGX_HTTP_GRPC_GUARD_FRAMING_NONE;
    }
}


static ngx_int_t
ngx_http_grpc_guard_message_read(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    u_char *p, u_char *last)
{
    u_char                             *q;
    size_t                              n;
    uint32_t                            len;
    ngx_http_grpc_guard_message_ctx_t  *mc;

    mc = &ctx->body;

    while (p < last) {

        /* the rest of a message that was declared small enough */

        if (mc->left) {
            n = last - p;

            if ((uint64_t) n > mc->left) {
                n = (size_t) mc->left;
            }

            p += n;
            mc->left -= n;

            continue;
        }

        if (mc->have == 0 && last - p >= NGX_HTTP_GRPC_GUARD_MESSAGE_PREFIX) {

            /* a whole prefix in this buffer, as is usual */

            q = p;
            p += NGX_HTTP_GRPC_GUARD_MESSAGE_PREFIX;

        } else {
            mc->prefix[mc->have++] = *p++;

            if (mc->have < NGX_HTTP_GRPC_GUARD_MESSAGE_PREFIX) {
                continue;
            }

            mc->have = 0;
            q = mc->prefix;
        }

        mc->messages++;

        len = ((uint32_t) q[1] << 24) | ((uint32_t) q[2] << 16)
              | ((uint32_t) q[3] << 8) | (uint32_t) q[4];

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "grpc guard: request message %ui of %uD bytes",
                       mc->messages, len);

        if ((uint64_t) len > (uint64_t) glcf->max_message_size) {
            ngx_log_error(glcf->log_level, r->connection->log, 0,
                          "grpc guard: request message %ui declares %uD "
                          "bytes, over grpc_guard_max_message_size %uz",
                          mc->messages, len, glcf->max_message_size);

            return ngx_http_grpc_guard_message_refuse(r, ctx,
                                     NGX_HTTP_GRPC_GUARD_RESOURCE_EXHAUSTED,
                                     "message_too_large",
                                     &ngx_http_grpc_guard_message_too_large,
                                     NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
        }

        mc->left = len;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_message_decode(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    u_char *p, u_char *last)
{
    u_char                              out[3];
    uint32_t                            bits;
    ngx_int_t                           v, rc;
    ngx_http_grpc_guard_message_ctx_t  *mc;

    /*
     * base64 in quanta of 4 characters; a client may send several
     * padded chunks one after the other, so padding ends a quantum,
     * not the body; anything else than the alphabet and padding leaves
     * the framing unknown, and the call is refused rather than guessed
     */

    mc = &ctx->body;

    for ( /* void */ ; p < last; p++) {

        if (*p == '=') {
            if (mc->chars < 2) {
                goto malformed;
            }

            mc->pads++;
            mc->bits <<= 6;

        } else {
            v = ngx_http_grpc_guard_message_base64(*p);

            if (v < 0 || mc->pads) {
                goto malformed;
            }

            mc->bits = (mc->bits << 6) | (uint32_t) v;
        }

        if (++mc->chars < 4) {
            continue;
        }

        bits = mc->bits;

        out[0] = (u_char) (bits >> 16);
        out[1] = (u_char) (bits >> 8);
        out[2] = (u_char) bits;

        rc = ngx_http_grpc_guard_message_read(r, glcf, ctx, out,
                                              out + 3 - mc->pads);

        mc->bits = 0;
        mc->chars = 0;
        mc->pads = 0;

        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;

malformed:

    ngx_log_error(glcf->log_level, r->connection->log, 0,
                  "grpc guard: request body is not base64");

    return ngx_http_grpc_guard_message_refuse(r, ctx,
                                       NGX_HTTP_GRPC_GUARD_INVALID_ARGUMENT,
                                       "message_malformed",
                                       &ngx_http_grpc_guard_message_malformed,
                                       NGX_HTTP_BAD_REQUEST);
}


static ngx_int_t
ngx_http_grpc_guard_message_base64(u_char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


static ngx_int_t
ngx_http_grpc_guard_message_refuse(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t status, char *reason,
    ngx_str_t *message, ngx_int_t http_status)
{
    /*
     * the HTTP status goes back through whoever reads the body
     * (grpc_pass, the HTTP/2 read handler) and nginx finalizes the
     * request with it: while no response header was sent, its error
     * page becomes a Trailers-Only reply with the status set here (the
     * header filter in ngx_http_grpc_guard_grpc.c); once the upstream
     * has answered, the upstream connection is closed and the client's
     * stream is reset; the audit record says the status set here either
     * way
     */

    ctx->call.message = message;

    (void) ngx_http_grpc_guard_refuse(r, ctx, status, reason);

    ctx->body.refused = http_status;

    return http_status;
}


char *
ngx_http_grpc_guard_max_message_size(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (glcf->max_message_size != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        glcf->max_message_size = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid message size \"%V\", it must be a size "
                           "greater than 0 or \"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->max_message_size = (size_t) size;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_message_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_conf_merge_size_value(conf->max_message_size, prev->max_message_size,
                              NGX_HTTP_GRPC_GUARD_MESSAGE_DEFAULT);

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_grpc_guard_message_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_grpc_guard_message_filter;

    return NGX_OK;
}
