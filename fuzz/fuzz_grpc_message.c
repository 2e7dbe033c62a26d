
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The prefixes of gRPC request messages as a body streams through
 * (grpc_guard_max_message_size): ngx_http_grpc_guard_message_read, and
 * ngx_http_grpc_guard_message_decode for application/grpc-web-text.
 *
 * Input: byte 0 chooses the framing (bit 0: base64 text) and, with byte
 * 1, how the body is cut into buffers; bytes 2-4 are the limit (big
 * endian, at least 1); the rest is the body.
 *
 * Properties: the body is read in buffers of the sizes chosen, each an
 * allocation of its own size (ASan sees a read past one); the outcome
 * is the one a reference reading of the whole body gives: the number of
 * message prefixes read, and the first message declared over the limit
 * refused with 8 (message_too_large) before anything after it is read,
 * or for the text form the first byte that is not base64 refused with
 * 3 (message_malformed), whichever comes first; however the body is cut.
 */


#include "ngx_http_grpc_guard_message.c"

#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


typedef struct {
    ngx_uint_t   messages;
    ngx_int_t    refused;       /* 0, 413 or 400 */
    size_t       have;          /* bytes of the prefix */
    u_char       prefix[5];
    uint64_t     left;
} ngx_fuzz_message_ref_t;


static ngx_int_t ngx_fuzz_message_bytes(ngx_fuzz_message_ref_t *ref,
    const u_char *p, size_t len, uint32_t max);
static void ngx_fuzz_message_reference(ngx_fuzz_message_ref_t *ref,
    const u_char *p, size_t len, uint32_t max, ngx_uint_t text);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                          *buf;
    size_t                           n, off, len;
    uint32_t                         max, seed;
    ngx_int_t                        rc;
    ngx_uint_t                       text;
    ngx_pool_t                      *pool;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_fuzz_message_ref_t           ref;
    ngx_http_grpc_guard_ctx_t        ctx;
    ngx_http_grpc_guard_loc_conf_t   glcf;

    if (size < 5) {
        return 0;
    }

    text = data[0] & 0x01;
    seed = (uint32_t) data[0] << 8 | data[1];
    max = (uint32_t) data[2] << 16 | (uint32_t) data[3] << 8 | data[4];

    if (max == 0) {
        max = 1;
    }

    data += 5;
    size -= 5;

    pool = ngx_fuzz_pool();

    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    if (c == NULL || r == NULL) {
        abort();
    }

    c->log = ngx_fuzz_log();
    c->pool = pool;
    r->connection = c;
    r->pool = pool;

    ngx_memzero(&glcf, sizeof(ngx_http_grpc_guard_loc_conf_t));
    glcf.enable = 1;
    glcf.max_message_size = max;
    glcf.log_level = NGX_LOG_INFO;

    ngx_memzero(&ctx, sizeof(ngx_http_grpc_guard_ctx_t));
    ctx.conf = &glcf;
    ctx.call.grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
    ctx.call.grpc = text ? NGX_HTTP_GRPC_GUARD_GRPC_WEB_TEXT
                         : NGX_HTTP_GRPC_GUARD_GRPC;
    ctx.body.framing = ngx_http_grpc_guard_message_framing(r, &ctx);
    ctx.body.started = 1;

    ngx_fuzz_assert(ctx.body.framing == (text
                                         ? NGX_HTTP_GRPC_GUARD_FRAMING_TEXT
                                         : NGX_HTTP_GRPC_GUARD_FRAMING_BINARY));

    /* the body in buffers of 1 to 16 bytes, or whole, as the seed says */

    rc = NGX_OK;

    for (off = 0; off < size && rc == NGX_OK; off += n) {
        seed = seed * 1103515245 + 12345;
        len = (seed >> 16) & 0x1f;
        n = (len >= 16) ? size - off : ngx_min(len + 1, size - off);

        buf = ngx_fuzz_dup(pool, data + off, n);

        if (text) {
            rc = ngx_http_grpc_guard_message_decode(r, &glcf, &ctx, buf,
                                                    buf + n);

        } else {
            rc = ngx_http_grpc_guard_message_read(r, &glcf, &ctx, buf,
                                                  buf + n);
        }
    }

    ngx_fuzz_message_reference(&ref, data, size, max, text);

    ngx_fuzz_assert(ctx.body.messages == ref.messages);

    if (ref.refused == 0) {
        ngx_fuzz_assert(rc == NGX_OK);
        ngx_fuzz_assert(ctx.call.grpc_status == NGX_HTTP_GRPC_GUARD_NO_STATUS);
        goto done;
    }

    ngx_fuzz_assert(rc == ref.refused);
    ngx_fuzz_assert(ctx.body.refused == ref.refused);

    if (ref.refused == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        ngx_fuzz_assert(ctx.call.grpc_status
                        == NGX_HTTP_GRPC_GUARD_RESOURCE_EXHAUSTED);
        ngx_fuzz_assert(ctx.call.reason.len == sizeof("message_too_large") - 1
                        && ngx_strncmp(ctx.call.reason.data,
                                       "message_too_large",
                                       ctx.call.reason.len)
                           == 0);

    } else {
        ngx_fuzz_assert(ctx.call.grpc_status
                        == NGX_HTTP_GRPC_GUARD_INVALID_ARGUMENT);
    }

done:

    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_fuzz_message_reference(ngx_fuzz_message_ref_t *ref, const u_char *p,
    size_t len, uint32_t max, ngx_uint_t text)
{
    size_t      i, q, pads;
    u_char      out[3];
    uint32_t    bits;
    const char  *a, *alphabet;

    ngx_memzero(ref, sizeof(ngx_fuzz_message_ref_t));

    if (!text) {
        (void) ngx_fuzz_message_bytes(ref, p, len, max);
        return;
    }

    /*
     * base64 in quanta of four characters, "=" only at the end of a
     * quantum and after two characters at least; a quantum is read as
     * soon as it is complete
     */

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789+/";
    bits = 0;
    q = 0;
    pads = 0;

    for (i = 0; i < len; i++) {

        if (p[i] == '=') {
            if (q < 2) {
                ref->refused = NGX_HTTP_BAD_REQUEST;
                return;
            }

            pads++;
            bits <<= 6;

        } else {
            a = (p[i] == '\0') ? NULL : strchr(alphabet, p[i]);

            if (a == NULL || pads) {
                ref->refused = NGX_HTTP_BAD_REQUEST;
                return;
            }

            bits = (bits << 6) | (uint32_t) (a - alphabet);
        }

        if (++q < 4) {
            continue;
        }

        out[0] = (u_char) (bits >> 16);
        out[1] = (u_char) (bits >> 8);
        out[2] = (u_char) bits;

        if (ngx_fuzz_message_bytes(ref, out, 3 - pads, max) != NGX_OK) {
            return;
        }

        bits = 0;
        q = 0;
        pads = 0;
    }
}


static ngx_int_t
ngx_fuzz_message_bytes(ngx_fuzz_message_ref_t *ref, const u_char *p,
    size_t len, uint32_t max)
{
    size_t    i;
    uint32_t  n;

    /* the framing read byte by byte, the plainest way */

    for (i = 0; i < len; i++) {

        if (ref->left) {
            ref->left--;
            continue;
        }

        ref->prefix[ref->have++] = p[i];

        if (ref->have < 5) {
            continue;
        }

        ref->have = 0;
        ref->messages++;

        n = (uint32_t) ref->prefix[1] << 24 | (uint32_t) ref->prefix[2] << 16
            | (uint32_t) ref->prefix[3] << 8 | ref->prefix[4];

        if (n > max) {
            ref->refused = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
            return NGX_ERROR;
        }

        ref->left = n;
    }

    return NGX_OK;
}
