
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Client-certificate identity forwarded by a proxy that terminated the
 * client's mTLS (an Envoy or Istio sidecar, an ingress): the
 * x-forwarded-client-cert header, believed from the peers that
 * grpc_guard_xfcc_trusted lists and removed from the request of any
 * other peer.
 *
 * The peer that must be trusted is the one at the other end of the TCP
 * connection.  ngx_http_realip_module replaces the address of the
 * request's connection with an address taken from a header: the guard
 * looks at the address the connection had before that, the HTTP/2
 * connection's own for an HTTP/2 stream, else the one kept by a
 * post-read handler that runs before realip's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


/* a longer header is no identity */
#define NGX_HTTP_GRPC_GUARD_XFCC_MAX_LEN    16384

/* elements (one per proxy) in a header, at most */
#define NGX_HTTP_GRPC_GUARD_XFCC_MAX_ELTS   16

/* key=value pairs in an element, at most */
#define NGX_HTTP_GRPC_GUARD_XFCC_PAIRS      32

/* as for a certificate's own SANs: a longer name is left out */
#define NGX_HTTP_GRPC_GUARD_XFCC_MAX_NAME   1024

/* and the names of one kind kept, space-separated, at most */
#define NGX_HTTP_GRPC_GUARD_XFCC_MAX_LIST   8192


#define NGX_HTTP_GRPC_GUARD_XFCC_OTHER      0
#define NGX_HTTP_GRPC_GUARD_XFCC_HASH       1
#define NGX_HTTP_GRPC_GUARD_XFCC_SUBJECT    2
#define NGX_HTTP_GRPC_GUARD_XFCC_URI        3
#define NGX_HTTP_GRPC_GUARD_XFCC_DNS        4


/* a value of the element being parsed, in place in the header */

typedef struct {
    u_char                     *data;
    size_t                      len;
    ngx_uint_t                  key;        /* NGX_HTTP_GRPC_GUARD_XFCC_* */
    unsigned                    escaped:1;  /* holds \" */
} ngx_http_grpc_guard_xfcc_value_t;


static ngx_int_t ngx_http_grpc_guard_xfcc_post_read(ngx_http_request_t *r);
static void ngx_http_grpc_guard_xfcc_addr_cleanup(void *data);
static struct sockaddr *ngx_http_grpc_guard_xfcc_addr(ngx_http_request_t *r);
static ngx_uint_t ngx_http_grpc_guard_xfcc_trusted(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf);
static ngx_int_t ngx_http_grpc_guard_xfcc_read(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx);
static void ngx_http_grpc_guard_xfcc_join(ngx_str_t *value,
    ngx_table_elt_t *h);
static ngx_uint_t ngx_http_grpc_guard_xfcc_key(u_char *key, size_t len);
static ngx_int_t ngx_http_grpc_guard_xfcc_identity(ngx_pool_t *pool,
    ngx_http_grpc_guard_xfcc_value_t *values, ngx_uint_t n,
    ngx_http_grpc_guard_peer_t *peer, char **err);
static size_t ngx_http_grpc_guard_xfcc_unescape(u_char *dst,
    ngx_http_grpc_guard_xfcc_value_t *v);
static ngx_uint_t ngx_http_grpc_guard_xfcc_name(u_char *data, size_t len);


static ngx_str_t  ngx_http_grpc_guard_xfcc_header =
    ngx_string("x-forwarded-client-cert");


char *
ngx_http_grpc_guard_xfcc_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_cidr_t  *cidr;
    ngx_uint_t   i;

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {

        if (glcf->xfcc_trusted != NGX_CONF_UNSET_PTR) {
            return "is duplicate";
        }

        glcf->xfcc_trusted = NULL;
        return NGX_CONF_OK;
    }

    if (glcf->xfcc_trusted == NULL) {
        return "is duplicate";
    }

    if (glcf->xfcc_trusted == NGX_CONF_UNSET_PTR) {
        glcf->xfcc_trusted = ngx_array_create(cf->pool, 2, sizeof(ngx_cidr_t));
        if (glcf->xfcc_trusted == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    for (i = 1; i < cf->args->nelts; i++) {

        cidr = ngx_array_push(glcf->xfcc_trusted);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

#if (NGX_HAVE_UNIX_DOMAIN)

        if (ngx_strcmp(value[i].data, "unix:") == 0) {
            ngx_memzero(cidr, sizeof(ngx_cidr_t));
            cidr->family = AF_UNIX;
            continue;
        }

#endif

        /* addresses only: a name would be resolved once, at startup */

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_xfcc_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    ngx_conf_merge_ptr_value(conf->xfcc_trusted, prev->xfcc_trusted, NULL);

    if (conf->enable && conf->xfcc_trusted) {
        gmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_grpc_guard_module);
        gmcf->xfcc_used = 1;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_grpc_guard_xfcc_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt              *h;
    ngx_http_core_main_conf_t        *cmcf;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);

    if (!gmcf->xfcc_used) {
        return NGX_OK;
    }

    /*
     * the handler pushed last runs first: a dynamic module's
     * postconfiguration runs after realip's, so the address is kept
     * before realip replaces it
     */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_grpc_guard_xfcc_post_read;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_xfcc_post_read(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    /* an HTTP/2 stream has the address of its connection, untouched */

    if (r != r->main || r->stream) {
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(struct sockaddr *));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* realip replaces the pointer; what it pointed to stays */

    *(struct sockaddr **) cln->data = r->connection->sockaddr;
    cln->handler = ngx_http_grpc_guard_xfcc_addr_cleanup;

    return NGX_DECLINED;
}


static void
ngx_http_grpc_guard_xfcc_addr_cleanup(void *data)
{
    /* the address belongs to the connection; nothing to release */
}


static struct sockaddr *
ngx_http_grpc_guard_xfcc_addr(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    r = r->main;

    if (r->stream) {
        return r->stream->connection->connection->sockaddr;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_grpc_guard_xfcc_addr_cleanup) {
            return *(struct sockaddr **) cln->data;
        }
    }

    /* not kept: the peer is not known, and so not trusted */

    return NULL;
}


static ngx_uint_t
ngx_http_grpc_guard_xfcc_trusted(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf)
{
    struct sockaddr  *sa;

    sa = ngx_http_grpc_guard_xfcc_addr(r);

    return sa && ngx_cidr_match(sa, glcf->xfcc_trusted) == NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_xfcc_strip(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_uint_t        n, trusted;
    ngx_table_elt_t  *h;

    /*
     * the header goes upstream only from a trusted peer, and then as
     * any credential the guard consumes: with forward_credentials on
     */

    if (glcf->xfcc_trusted == NULL) {
        return NGX_OK;
    }

    trusted = ngx_http_grpc_guard_xfcc_trusted(r, glcf);

    if (trusted && glcf->forward_credentials) {
        return NGX_OK;
    }

    for ( ;; ) {
        h = ngx_http_grpc_guard_find_header(&r->headers_in.headers,
                                            &ngx_http_grpc_guard_xfcc_header,
                                            &n);
        if (h == NULL) {
            return NGX_OK;
        }

        if (!trusted) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "grpc guard: x-forwarded-client-cert from an "
                          "untrusted peer removed");
        }

        if (ngx_http_grpc_guard_take_header(r, ctx, h) != NGX_OK) {
            return NGX_ERROR;
        }
    }
}


ngx_int_t
ngx_http_grpc_guard_xfcc_peer(ngx_http_request_t *r,
    ngx_http_grpc_guard_peer_t **peer)
{
    ngx_http_grpc_guard_ctx_t       *ctx;
    ngx_http_grpc_guard_loc_conf_t  *glcf;

    /*
     * NGX_DECLINED: the identity is the connection's own certificate;
     * NGX_OK: a trusted proxy's, *peer is NULL without the header, and
     * not verified when the header is not valid
     */

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_grpc_guard_module);

    if (!glcf->enable || glcf->xfcc_trusted == NULL) {
        return NGX_DECLINED;
    }

    if (!ngx_http_grpc_guard_xfcc_trusted(r, glcf)) {
        return NGX_DECLINED;
    }

    /* a variable may be read before the access phase */

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_grpc_guard_create_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    if (!ctx->call.xfcc_read) {
        if (ngx_http_grpc_guard_xfcc_read(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->call.xfcc_read = 1;
    }

    *peer = ctx->call.xfcc;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_xfcc_read(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx)
{
    char                        *err;
    ngx_int_t                    rc;
    ngx_str_t                    value;
    ngx_uint_t                   i, n;
    ngx_list_part_t             *part;
    ngx_table_elt_t             *h, **t;
    ngx_http_grpc_guard_peer_t  *peer;

    h = ngx_http_grpc_guard_credential(r, ctx, &ngx_http_grpc_guard_xfcc_header,
                                       &n);
    if (h == NULL) {
        return NGX_OK;
    }

    value = h->value;

    if (n > 1) {

        /*
         * several header lines are one list, in their order (those the
         * guard took out of the request came first): a proxy that adds
         * a line of its own still comes last
         */

        value.len = 0;
        value.data = ngx_pnalloc(r->pool,
                                 NGX_HTTP_GRPC_GUARD_XFCC_MAX_LEN + 1);
        if (value.data == NULL) {
            return NGX_ERROR;
        }

        if (ctx->taken) {
            t = ctx->taken->elts;

            for (i = 0; i < ctx->taken->nelts; i++) {
                ngx_http_grpc_guard_xfcc_join(&value, t[i]);
            }
        }

        part = &r->headers_in.headers.part;
        h = part->elts;

        for (i = 0; /* void */; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            ngx_http_grpc_guard_xfcc_join(&value, &h[i]);
        }
    }

    peer = ngx_pcalloc(r->pool, sizeof(ngx_http_grpc_guard_peer_t));
    if (peer == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_grpc_guard_xfcc_parse(r->pool, value.data, value.len, peer,
                                        &err);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "grpc guard: invalid x-forwarded-client-cert from a "
                      "trusted peer: %s", err);

        ngx_memzero(peer, sizeof(ngx_http_grpc_guard_peer_t));
        peer->present = 1;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard: x-forwarded-client-cert, verified:%ui "
                   "principal:\"%V\"", (ngx_uint_t) peer->verified,
                   &peer->principal);

    ctx->call.xfcc = peer;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_xfcc_join(ngx_str_t *value, ngx_table_elt_t *h)
{
    size_t  len;

    /*
     * into a buffer of NGX_HTTP_GRPC_GUARD_XFCC_MAX_LEN + 1 bytes: what
     * does not fit makes the value one byte too long, and so invalid
     */

    if (h->key.len != ngx_http_grpc_guard_xfcc_header.len
        || ngx_strncasecmp(h->key.data, ngx_http_grpc_guard_xfcc_header.data,
                           h->key.len) != 0)
    {
        return;
    }

    if (value->len) {
        if (value->len > NGX_HTTP_GRPC_GUARD_XFCC_MAX_LEN) {
            return;
        }

        value->data[value->len++] = ',';
    }

    len = ngx_min(h->value.len,
                  NGX_HTTP_GRPC_GUARD_XFCC_MAX_LEN + 1 - value->len);

    value->len = ngx_cpymem(value->data + value->len, h->value.data, len)
                 - value->data;
}


ngx_int_t
ngx_http_grpc_guard_xfcc_parse(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_http_grpc_guard_peer_t *peer, char **err)
{
    u_char                            *p, *last, *key;
    ngx_uint_t                         n, elts, k, seen;
    ngx_http_grpc_guard_xfcc_value_t  *v;
    ngx_http_grpc_guard_xfcc_value_t   values[NGX_HTTP_GRPC_GUARD_XFCC_PAIRS];

    /*
     * Envoy's format: elements separated by ",", one per proxy, the
     * last one added by the proxy closest to nginx; in each, key=value
     * pairs separated by ";"; a value with "," ";" "=" or '"' in it is
     * double-quoted, with '"' escaped as \"; keys are By, Hash, Cert,
     * Chain, Subject, URI and DNS (URI and DNS may repeat), others are
     * skipped.  One pass; the pairs of the element under way are kept
     * in place, and the identity is made from those of the last one
     */

    if (len == 0) {
        *err = "empty";
        return NGX_DECLINED;
    }

    if (len > NGX_HTTP_GRPC_GUARD_XFCC_MAX_LEN) {
        *err = "too long";
        return NGX_DECLINED;
    }

    p = data;
    last = data + len;
    elts = 1;
    n = 0;
    seen = 0;

    for ( ;; ) {

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        key = p;

        while (p < last
               && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                   || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            p++;
        }

        if (p == key || p == last || *p != '=') {
            *err = "a key and \"=\" expected";
            return NGX_DECLINED;
        }

        if (n == NGX_HTTP_GRPC_GUARD_XFCC_PAIRS) {
            *err = "too many values in an element";
            return NGX_DECLINED;
        }

        v = &values[n++];
        v->key = ngx_http_grpc_guard_xfcc_key(key, p - key);
        v->escaped = 0;

        p++;

        if (p < last && *p == '"') {

            v->data = ++p;

            for ( ;; ) {

                if (p == last) {
                    *err = "unterminated quoted value";
                    return NGX_DECLINED;
                }

                if (*p == '"') {
                    break;
                }

                if (*p == '\\' && p + 1 < last && p[1] == '"') {
                    v->escaped = 1;
                    p += 2;
                    continue;
                }

                if (*p < 0x20 || *p == 0x7f) {
                    *err = "control character";
                    return NGX_DECLINED;
                }

                p++;
            }

            v->len = p++ - v->data;

            while (p < last && (*p == ' ' || *p == '\t')) {
                p++;
            }

        } else {

            v->data = p;

            while (p < last && *p != ',' && *p != ';') {

                if (*p == '"' || *p == '=') {
                    *err = "'\"' or \"=\" in a value that is not quoted";
                    return NGX_DECLINED;
                }

                if (*p < 0x20 || *p == 0x7f) {
                    *err = "control character";
                    return NGX_DECLINED;
                }

                p++;
            }

            v->len = p - v->data;

            while (v->len
                   && (v->data[v->len - 1] == ' '
                       || v->data[v->len - 1] == '\t'))
            {
                v->len--;
            }
        }

        /* one Hash and one Subject per element */

        k = v->key;

        if (k == NGX_HTTP_GRPC_GUARD_XFCC_HASH
            || k == NGX_HTTP_GRPC_GUARD_XFCC_SUBJECT)
        {
            if (seen & (1 << k)) {
                *err = "a key repeated that may not be";
                return NGX_DECLINED;
            }

            seen |= 1 << k;
        }

        if (p == last) {
            break;
        }

        if (*p == ';') {
            p++;
            continue;
        }

        if (*p != ',') {
            *err = "\";\" or \",\" expected after a quoted value";
            return NGX_DECLINED;
        }

        p++;

        if (++elts > NGX_HTTP_GRPC_GUARD_XFCC_MAX_ELTS) {
            *err = "too many elements";
            return NGX_DECLINED;
        }

        /* the next element: only the last one names the client */

        n = 0;
        seen = 0;
    }

    return ngx_http_grpc_guard_xfcc_identity(pool, values, n, peer, err);
}


static ngx_uint_t
ngx_http_grpc_guard_xfcc_key(u_char *key, size_t len)
{
    static struct {
        ngx_str_t   name;
        ngx_uint_t  key;
    } keys[] = {
        { ngx_string("Hash"), NGX_HTTP_GRPC_GUARD_XFCC_HASH },
        { ngx_string("Subject"), NGX_HTTP_GRPC_GUARD_XFCC_SUBJECT },
        { ngx_string("URI"), NGX_HTTP_GRPC_GUARD_XFCC_URI },
        { ngx_string("DNS"), NGX_HTTP_GRPC_GUARD_XFCC_DNS },
        { ngx_null_string, 0 }
    };

    ngx_uint_t  i;

    /* By, Cert, Chain and keys of later versions carry no identity */

    for (i = 0; keys[i].name.len; i++) {
        if (keys[i].name.len == len
            && ngx_strncasecmp(keys[i].name.data, key, len) == 0)
        {
            return keys[i].key;
        }
    }

    return NGX_HTTP_GRPC_GUARD_XFCC_OTHER;
}


static ngx_int_t
ngx_http_grpc_guard_xfcc_identity(ngx_pool_t *pool,
    ngx_http_grpc_guard_xfcc_value_t *values, ngx_uint_t n,
    ngx_http_grpc_guard_peer_t *peer, char **err)
{
    u_char                            *p;
    size_t                             len, size[2];
    ngx_str_t                         *list;
    ngx_uint_t                         i, k, spiffe;
    ngx_http_grpc_guard_xfcc_value_t  *v;

    ngx_memzero(peer, sizeof(ngx_http_grpc_guard_peer_t));

    /* the proxy verified the certificate it describes */

    peer->present = 1;
    peer->verified = 1;

    /*
     * the room each list of names needs, then the lists: names left out
     * are left out of both loops alike, as for a certificate's own SANs
     */

    size[0] = 0;
    size[1] = 0;

    for (i = 0; i < n; i++) {
        v = &values[i];

        switch (v->key) {

        case NGX_HTTP_GRPC_GUARD_XFCC_HASH:

            /* lowercase hex SHA-256 of the DER, as for a certificate */

            if (v->len == 0) {
                break;
            }

            if (v->len != 2 * NGX_HTTP_GRPC_GUARD_SHA256_LEN || v->escaped) {
                *err = "Hash is not a hex SHA-256";
                return NGX_DECLINED;
            }

            for (k = 0; k < v->len; k++) {
                if (!((v->data[k] >= '0' && v->data[k] <= '9')
                      || ((v->data[k] | 0x20) >= 'a'
                          && (v->data[k] | 0x20) <= 'f')))
                {
                    *err = "Hash is not a hex SHA-256";
                    return NGX_DECLINED;
                }
            }

            peer->fingerprint.data = ngx_pnalloc(pool, v->len);
            if (peer->fingerprint.data == NULL) {
                return NGX_ERROR;
            }

            peer->fingerprint.len = v->len;
            ngx_strlow(peer->fingerprint.data, v->data, v->len);

            break;

        case NGX_HTTP_GRPC_GUARD_XFCC_SUBJECT:

            if (v->len == 0) {
                break;
            }

            peer->subject.data = ngx_pnalloc(pool, v->len);
            if (peer->subject.data == NULL) {
                return NGX_ERROR;
            }

            peer->subject.len = ngx_http_grpc_guard_xfcc_unescape(
                                                      peer->subject.data, v);
            break;

        case NGX_HTTP_GRPC_GUARD_XFCC_URI:
        case NGX_HTTP_GRPC_GUARD_XFCC_DNS:

            k = (v->key == NGX_HTTP_GRPC_GUARD_XFCC_DNS);

            if (!ngx_http_grpc_guard_xfcc_name(v->data, v->len)
                || size[k] + v->len + 1 > NGX_HTTP_GRPC_GUARD_XFCC_MAX_LIST)
            {
                v->key = NGX_HTTP_GRPC_GUARD_XFCC_OTHER;
                break;
            }

            size[k] += v->len + 1;
            break;

        default:
            break;
        }
    }

    for (k = 0; k < 2; k++) {
        if (size[k] == 0) {
            continue;
        }

        list = k ? &peer->dns_san : &peer->uri_san;

        list->data = ngx_pnalloc(pool, size[k]);
        if (list->data == NULL) {
            return NGX_ERROR;
        }
    }

    spiffe = 0;

    for (i = 0; i < n; i++) {
        v = &values[i];

        if (v->key == NGX_HTTP_GRPC_GUARD_XFCC_URI) {
            list = &peer->uri_san;

        } else if (v->key == NGX_HTTP_GRPC_GUARD_XFCC_DNS) {
            list = &peer->dns_san;

        } else {
            continue;
        }

        if (list->len) {
            list->data[list->len++] = ' ';
        }

        p = list->data + list->len;
        len = v->len;
        ngx_memcpy(p, v->data, len);

        if (list == &peer->uri_san
            && len > sizeof("spiffe://") - 1
            && ngx_strncmp(p, "spiffe://", sizeof("spiffe://") - 1) == 0)
        {
            spiffe++;
            peer->spiffe_id.data = p;
            peer->spiffe_id.len = len;
        }

        if (list == &peer->dns_san && list->len == 0) {
            peer->dns_first = len;
        }

        list->len += len;
    }

    /* an X.509 SVID has exactly one SPIFFE ID; several identify nobody */

    if (spiffe > 1) {
        ngx_str_null(&peer->spiffe_id);
    }

    /* the SPIFFE ID, else the first DNS SAN, else the subject */

    if (peer->spiffe_id.len) {
        peer->principal = peer->spiffe_id;

    } else if (peer->dns_san.len) {
        peer->principal.data = peer->dns_san.data;
        peer->principal.len = peer->dns_first;

    } else {
        peer->principal = peer->subject;
    }

    return NGX_OK;
}


static size_t
ngx_http_grpc_guard_xfcc_unescape(u_char *dst,
    ngx_http_grpc_guard_xfcc_value_t *v)
{
    u_char  *p, *last, *d;

    if (!v->escaped) {
        ngx_memcpy(dst, v->data, v->len);
        return v->len;
    }

    d = dst;
    p = v->data;
    last = v->data + v->len;

    while (p < last) {
        if (*p == '\\' && p + 1 < last && p[1] == '"') {
            p++;
        }

        *d++ = *p++;
    }

    return d - dst;
}


static ngx_uint_t
ngx_http_grpc_guard_xfcc_name(u_char *data, size_t len)
{
    size_t  i;

    /*
     * as for a certificate's own SANs: a name with blanks, controls,
     * quotes or non-ASCII bytes, empty, or longer than 1 KiB is left out
     */

    if (len == 0 || len > NGX_HTTP_GRPC_GUARD_XFCC_MAX_NAME) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (data[i] <= 0x20 || data[i] >= 0x7f || data[i] == '"') {
            return 0;
        }
    }

    return 1;
}
