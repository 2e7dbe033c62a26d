
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/x509v3.h>

#include "ngx_http_grpc_guard_module.h"


static ngx_http_grpc_guard_peer_t *ngx_http_grpc_guard_mtls_parse(
    ngx_connection_t *c, ngx_ssl_conn_t *ssl_conn);
static ngx_int_t ngx_http_grpc_guard_mtls_sans(ngx_pool_t *pool, X509 *cert,
    ngx_http_grpc_guard_peer_t *peer);
static ngx_int_t ngx_http_grpc_guard_mtls_join(ngx_pool_t *pool,
    ngx_str_t *list, ASN1_IA5STRING *s);
static ngx_int_t ngx_http_grpc_guard_mtls_subject(ngx_pool_t *pool,
    X509 *cert, ngx_str_t *s);
static ngx_int_t ngx_http_grpc_guard_mtls_fingerprint(ngx_pool_t *pool,
    X509 *cert, ngx_str_t *s);


/* SSL ex_data slot that holds the parsed identity of a connection */
static int  ngx_http_grpc_guard_mtls_index = -1;


static ngx_str_t  ngx_http_grpc_guard_mtls_message =
    ngx_string("unauthenticated");


ngx_int_t
ngx_http_grpc_guard_mtls_init(ngx_conf_t *cf)
{
    if (ngx_http_grpc_guard_mtls_index != -1) {
        return NGX_OK;
    }

    ngx_http_grpc_guard_mtls_index = SSL_get_ex_new_index(0, NULL, NULL,
                                                          NULL, NULL);

    if (ngx_http_grpc_guard_mtls_index == -1) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_get_ex_new_index() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_http_grpc_guard_peer_t *
ngx_http_grpc_guard_mtls_peer(ngx_http_request_t *r)
{
    ngx_connection_t            *c;
    ngx_ssl_conn_t              *ssl_conn;
    ngx_http_grpc_guard_peer_t  *peer;

    if (r->connection->ssl == NULL || ngx_http_grpc_guard_mtls_index == -1) {
        return NULL;
    }

    ssl_conn = r->connection->ssl->connection;

    /*
     * HTTP/2 carries many RPCs on one connection: the certificate is
     * parsed once, on the first RPC, and kept with the TLS connection
     */

    peer = SSL_get_ex_data(ssl_conn, ngx_http_grpc_guard_mtls_index);

    if (peer) {
        return peer;
    }

    /* the client connection itself, not an HTTP/2 stream's copy */

    c = ngx_ssl_get_connection(ssl_conn);
    if (c == NULL) {
        c = r->connection;
    }

    peer = ngx_http_grpc_guard_mtls_parse(c, ssl_conn);
    if (peer == NULL) {
        return NULL;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard: peer certificate parsed, verified:%ui "
                   "principal:\"%V\"", (ngx_uint_t) peer->verified,
                   &peer->principal);

    if (SSL_set_ex_data(ssl_conn, ngx_http_grpc_guard_mtls_index, peer) == 0)
    {
        ngx_ssl_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "SSL_set_ex_data() failed");
        return NULL;
    }

    return peer;
}


ngx_int_t
ngx_http_grpc_guard_mtls_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res)
{
    ngx_http_grpc_guard_peer_t  *peer;

    res->message = &ngx_http_grpc_guard_mtls_message;

    if (r->connection->ssl == NULL) {
        res->reason = "mtls_no_tls";
        return NGX_DECLINED;
    }

    peer = ngx_http_grpc_guard_mtls_peer(r);

    if (peer == NULL) {
        return NGX_ERROR;
    }

    if (!peer->present) {
        res->reason = "mtls_no_certificate";
        return NGX_DECLINED;
    }

    res->presented = 1;

    if (!peer->verified) {
        res->reason = "mtls_untrusted";
        return NGX_DECLINED;
    }

    if (peer->principal.len == 0) {
        res->reason = "mtls_no_identity";
        return NGX_DECLINED;
    }

    ctx->peer = peer;

    return NGX_OK;
}


static ngx_http_grpc_guard_peer_t *
ngx_http_grpc_guard_mtls_parse(ngx_connection_t *c, ngx_ssl_conn_t *ssl_conn)
{
    X509                        *cert;
    ngx_http_grpc_guard_peer_t  *peer;

    peer = ngx_pcalloc(c->pool, sizeof(ngx_http_grpc_guard_peer_t));
    if (peer == NULL) {
        return NULL;
    }

    cert = SSL_get_peer_certificate(ssl_conn);

    if (cert == NULL) {
        return peer;
    }

    peer->present = 1;

    /*
     * with "ssl_verify_client optional_no_ca" nginx lets unverified
     * certificates through: such a certificate identifies nobody
     */

    peer->verified = (SSL_get_verify_result(ssl_conn) == X509_V_OK);

    if (ngx_http_grpc_guard_mtls_sans(c->pool, cert, peer) != NGX_OK
        || ngx_http_grpc_guard_mtls_subject(c->pool, cert, &peer->subject)
           != NGX_OK
        || ngx_http_grpc_guard_mtls_fingerprint(c->pool, cert,
                                                &peer->fingerprint)
           != NGX_OK)
    {
        X509_free(cert);
        return NULL;
    }

    X509_free(cert);

    /* the SPIFFE ID, else the first DNS SAN, else the subject */

    if (peer->spiffe_id.len) {
        peer->principal = peer->spiffe_id;

    } else if (peer->dns_san.len) {
        peer->principal.data = peer->dns_san.data;
        peer->principal.len = peer->dns_first;

    } else {
        peer->principal = peer->subject;
    }

    return peer;
}


static ngx_int_t
ngx_http_grpc_guard_mtls_sans(ngx_pool_t *pool, X509 *cert,
    ngx_http_grpc_guard_peer_t *peer)
{
    int                      i, n;
    size_t                   len;
    ngx_uint_t               spiffe;
    ASN1_IA5STRING          *s;
    GENERAL_NAME            *name;
    GENERAL_NAMES           *names;

    names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

    if (names == NULL) {
        return NGX_OK;
    }

    spiffe = 0;
    n = sk_GENERAL_NAME_num(names);

    for (i = 0; i < n; i++) {
        name = sk_GENERAL_NAME_value(names, i);

        switch (name->type) {

        case GEN_URI:
            s = name->d.uniformResourceIdentifier;

            if (ngx_http_grpc_guard_mtls_join(pool, &peer->uri_san, s)
                != NGX_OK)
            {
                goto failed;
            }

            len = ASN1_STRING_length(s);

            if (len > sizeof("spiffe://") - 1
                && ngx_strncmp(ASN1_STRING_get0_data(s), "spiffe://",
                               sizeof("spiffe://") - 1)
                   == 0
                && peer->uri_san.len >= len)
            {
                spiffe++;
                peer->spiffe_id.data = peer->uri_san.data
                                       + peer->uri_san.len - len;
                peer->spiffe_id.len = len;
            }

            break;

        case GEN_DNS:
            len = peer->dns_san.len;

            if (ngx_http_grpc_guard_mtls_join(pool, &peer->dns_san,
                                              name->d.dNSName)
                != NGX_OK)
            {
                goto failed;
            }

            if (len == 0) {
                peer->dns_first = peer->dns_san.len;
            }

            break;

        default:
            break;
        }
    }

    /* an X.509 SVID has exactly one SPIFFE ID; several identify nobody */

    if (spiffe > 1) {
        ngx_str_null(&peer->spiffe_id);
    }

    GENERAL_NAMES_free(names);

    return NGX_OK;

failed:

    GENERAL_NAMES_free(names);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_grpc_guard_mtls_join(ngx_pool_t *pool, ngx_str_t *list,
    ASN1_IA5STRING *s)
{
    u_char        *p;
    size_t         len, i;
    const u_char  *data;

    data = ASN1_STRING_get0_data(s);
    len = ASN1_STRING_length(s);

    /*
     * names with blanks, controls or non-ASCII bytes are skipped: the
     * list is space-separated and may be forwarded as gRPC metadata
     */

    if (len == 0 || len > 1024) {
        return NGX_OK;
    }

    for (i = 0; i < len; i++) {
        if (data[i] <= 0x20 || data[i] >= 0x7f) {
            return NGX_OK;
        }
    }

    p = ngx_pnalloc(pool, list->len + 1 + len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (list->len) {
        ngx_memcpy(p, list->data, list->len);
        p[list->len] = ' ';
        ngx_memcpy(p + list->len + 1, data, len);
        list->len += 1 + len;

    } else {
        ngx_memcpy(p, data, len);
        list->len = len;
    }

    list->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_mtls_subject(ngx_pool_t *pool, X509 *cert, ngx_str_t *s)
{
    BIO        *bio;
    size_t      len;
    X509_NAME  *name;

    name = X509_get_subject_name(cert);
    if (name == NULL) {
        return NGX_OK;
    }

    bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return NGX_ERROR;
    }

    /* RFC 2253, as nginx's $ssl_client_s_dn */

    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
        BIO_free(bio);
        return NGX_ERROR;
    }

    len = BIO_pending(bio);

    s->data = ngx_pnalloc(pool, len ? len : 1);
    if (s->data == NULL) {
        BIO_free(bio);
        return NGX_ERROR;
    }

    s->len = len;

    if (len && BIO_read(bio, s->data, len) != (int) len) {
        BIO_free(bio);
        return NGX_ERROR;
    }

    BIO_free(bio);

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_mtls_fingerprint(ngx_pool_t *pool, X509 *cert,
    ngx_str_t *s)
{
    u_char        *p;
    unsigned int   len;
    u_char         md[EVP_MAX_MD_SIZE];

    /* lowercase hex SHA-256 of the certificate's DER, no colons */

    if (X509_digest(cert, EVP_sha256(), md, &len) == 0) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(pool, 2 * len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    s->data = p;
    s->len = ngx_hex_dump(p, md, len) - p;

    return NGX_OK;
}
