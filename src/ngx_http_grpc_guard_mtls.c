
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Client certificates: what a verified certificate is, and the identity
 * it carries (SPIFFE ID, SANs, subject, fingerprint), parsed once per
 * connection; or, from a trusted proxy, the identity it forwards
 * (ngx_http_grpc_guard_xfcc.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/x509v3.h>

#include "ngx_http_grpc_guard_module.h"


/* a SAN longer than this is left out */
#define NGX_HTTP_GRPC_GUARD_MTLS_MAX_NAME  1024

/* the SANs of one kind kept, space-separated, at most */
#define NGX_HTTP_GRPC_GUARD_MTLS_MAX_LIST  8192


static ngx_http_grpc_guard_peer_t *ngx_http_grpc_guard_mtls_parse(
    ngx_connection_t *c, ngx_ssl_conn_t *ssl_conn);
static ngx_int_t ngx_http_grpc_guard_mtls_sans(ngx_pool_t *pool, X509 *cert,
    ngx_http_grpc_guard_peer_t *peer);
static size_t ngx_http_grpc_guard_mtls_name(ASN1_IA5STRING *s,
    const u_char **data);
static ngx_int_t ngx_http_grpc_guard_mtls_fingerprint(ngx_pool_t *pool,
    X509 *cert, ngx_str_t *s);
static ngx_int_t ngx_http_grpc_guard_mtls_verified(ngx_ssl_conn_t *ssl_conn);
static ngx_uint_t ngx_http_grpc_guard_mtls_same(ngx_str_t *a, ngx_str_t *b);


/* SSL ex_data slot that holds the parsed identity of a connection */
static int  ngx_http_grpc_guard_mtls_index = -1;


static ngx_str_t  ngx_http_grpc_guard_mtls_message =
    ngx_string("unauthenticated");


ngx_int_t
ngx_http_grpc_guard_mtls_init(ngx_conf_t *cf)
{
    if (ngx_http_grpc_guard_xfcc_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

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


ngx_uint_t
ngx_http_grpc_guard_mtls_configured(ngx_http_grpc_guard_loc_conf_t *glcf)
{
    /* nginx's ssl_verify_client settings are all a certificate needs */

    return 1;
}


ngx_int_t
ngx_http_grpc_guard_mtls_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res)
{
    ngx_int_t                    rc;
    ngx_http_grpc_guard_peer_t  *peer;

    res->message = &ngx_http_grpc_guard_mtls_message;

    /*
     * from a trusted proxy the identity is the one it forwards; the
     * proxy's own certificate, if it has sent one, is not the caller's
     */

    peer = NULL;

    rc = ngx_http_grpc_guard_xfcc_peer(r, &peer);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {

        if (peer == NULL) {
            res->reason = "mtls_no_certificate";
            return NGX_DECLINED;
        }

        res->presented = 1;

        if (!peer->verified) {
            res->reason = "mtls_xfcc_invalid";
            return NGX_DECLINED;
        }

        goto identity;
    }

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

    if (!ngx_http_grpc_guard_mtls_trusted(r, peer)) {
        res->reason = "mtls_untrusted";
        return NGX_DECLINED;
    }

identity:

    if (peer->principal.len == 0) {
        res->reason = "mtls_no_identity";
        return NGX_DECLINED;
    }

    ctx->call.peer = peer;

    return NGX_OK;
}


ngx_http_grpc_guard_peer_t *
ngx_http_grpc_guard_mtls_identity(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_grpc_guard_peer_t  *peer;

    /*
     * the identity of a verified certificate: forwarded by a trusted
     * proxy, else the connection's own; NULL when there is none
     */

    peer = NULL;

    rc = ngx_http_grpc_guard_xfcc_peer(r, &peer);

    if (rc == NGX_OK) {
        return (peer && peer->verified) ? peer : NULL;
    }

    if (rc == NGX_ERROR) {
        return NULL;
    }

    peer = ngx_http_grpc_guard_mtls_peer(r);

    return ngx_http_grpc_guard_mtls_trusted(r, peer) ? peer : NULL;
}


ngx_uint_t
ngx_http_grpc_guard_mtls_trusted(ngx_http_request_t *r,
    ngx_http_grpc_guard_peer_t *peer)
{
    ngx_ssl_conn_t           *ssl_conn;
    ngx_http_ssl_srv_conf_t  *sscf, *hscf;

    if (peer == NULL || !peer->verified) {
        return 0;
    }

    /*
     * the certificate was verified in the handshake, by the server that
     * the client named in SNI, or by the default server of the listener
     * when it named none; a call may then address another server by
     * :authority: the certificate identifies nobody there unless that
     * server checks client certificates the same way
     */

    ssl_conn = r->connection->ssl->connection;

    hscf = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl_conn),
                               ngx_ssl_server_conf_index);

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_ssl_module);

    if (hscf == sscf) {
        return 1;
    }

    if (hscf == NULL || sscf == NULL
        || hscf->verify != sscf->verify
        || hscf->verify_depth != sscf->verify_depth
        || !ngx_http_grpc_guard_mtls_same(&hscf->client_certificate,
                                          &sscf->client_certificate)
        || !ngx_http_grpc_guard_mtls_same(&hscf->trusted_certificate,
                                          &sscf->trusted_certificate)
        || !ngx_http_grpc_guard_mtls_same(&hscf->crl, &sscf->crl))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "grpc guard: the client certificate was verified for "
                      "another server");
        return 0;
    }

    return 1;
}


static ngx_uint_t
ngx_http_grpc_guard_mtls_same(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len && ngx_strncmp(a->data, b->data, a->len) == 0;
}


#if (NGX_HTTP_SSL)

ngx_int_t
ngx_http_grpc_guard_mtls_refused(ngx_http_request_t *r)
{
    X509                     *cert;
    ngx_ssl_conn_t           *ssl_conn;
    ngx_http_ssl_srv_conf_t  *sscf;

    /*
     * nginx answers 495 and 496 (a client certificate it could not
     * verify, or none while "ssl_verify_client on") as 400: this tells
     * such a 400 from the others
     */

    if (r->connection->ssl == NULL) {
        return 0;
    }

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_ssl_module);

    if (sscf == NULL || !sscf->verify) {
        return 0;
    }

    ssl_conn = r->connection->ssl->connection;

    if (!ngx_http_grpc_guard_mtls_verified(ssl_conn)) {
        return 1;
    }

    if (sscf->verify != 1) {
        return 0;
    }

    cert = SSL_get_peer_certificate(ssl_conn);

    if (cert == NULL) {
        return 1;
    }

    X509_free(cert);

    return 0;
}

#endif


static ngx_int_t
ngx_http_grpc_guard_mtls_verified(ngx_ssl_conn_t *ssl_conn)
{
    /*
     * what a verified client certificate means, for the guard and for
     * nginx alike: the chain checked against ssl_client_certificate;
     * with "ssl_verify_client optional_no_ca" nginx lets unverified
     * certificates through, and such a certificate identifies nobody
     */

    return SSL_get_verify_result(ssl_conn) == X509_V_OK;
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

    peer->verified = ngx_http_grpc_guard_mtls_verified(ssl_conn);

    if (ngx_http_grpc_guard_mtls_sans(c->pool, cert, peer) != NGX_OK
        || ngx_ssl_get_subject_dn(c, c->pool, &peer->subject) != NGX_OK
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
    int              i, n;
    size_t           len, size[2];
    u_char          *p[2];
    ngx_str_t       *list;
    ngx_uint_t       pass, spiffe, k;
    const u_char    *data;
    GENERAL_NAME    *name;
    GENERAL_NAMES   *names;

    names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

    if (names == NULL) {
        return NGX_OK;
    }

    /*
     * two passes over the names: their room in each list first, then
     * each list built in one allocation; names beyond what a list holds
     * are left out, in both passes alike
     */

    n = sk_GENERAL_NAME_num(names);
    size[0] = 0;
    size[1] = 0;
    spiffe = 0;

    for (pass = 0; pass < 2; pass++) {

        if (pass == 1) {
            for (i = 0; i < 2; i++) {
                p[i] = size[i] ? ngx_pnalloc(pool, size[i]) : NULL;

                if (size[i] && p[i] == NULL) {
                    GENERAL_NAMES_free(names);
                    return NGX_ERROR;
                }
            }

            peer->uri_san.data = p[0];
            peer->dns_san.data = p[1];
            size[0] = 0;
            size[1] = 0;
        }

        for (i = 0; i < n; i++) {
            name = sk_GENERAL_NAME_value(names, i);

            if (name->type == GEN_URI) {
                k = 0;
                list = &peer->uri_san;
                len = ngx_http_grpc_guard_mtls_name(
                                      name->d.uniformResourceIdentifier, &data);

            } else if (name->type == GEN_DNS) {
                k = 1;
                list = &peer->dns_san;
                len = ngx_http_grpc_guard_mtls_name(name->d.dNSName, &data);

            } else {
                continue;
            }

            if (len == 0
                || size[k] + len + 1 > NGX_HTTP_GRPC_GUARD_MTLS_MAX_LIST)
            {
                continue;
            }

            size[k] += len + 1;

            if (pass == 0) {
                continue;
            }

            if (list->len) {
                list->data[list->len++] = ' ';
            }

            ngx_memcpy(list->data + list->len, data, len);

            if (k == 0
                && len > sizeof("spiffe://") - 1
                && ngx_strncmp(data, "spiffe://", sizeof("spiffe://") - 1)
                   == 0)
            {
                spiffe++;
                peer->spiffe_id.data = list->data + list->len;
                peer->spiffe_id.len = len;
            }

            if (k == 1 && list->len == 0) {

                /* the first DNS SAN, the principal without a SPIFFE ID */

                peer->dns_first = len;
            }

            list->len += len;
        }
    }

    /* an X.509 SVID has exactly one SPIFFE ID; several identify nobody */

    if (spiffe > 1) {
        ngx_str_null(&peer->spiffe_id);
    }

    GENERAL_NAMES_free(names);

    return NGX_OK;
}


static size_t
ngx_http_grpc_guard_mtls_name(ASN1_IA5STRING *s, const u_char **data)
{
    size_t  len, i;

    *data = ASN1_STRING_get0_data(s);
    len = ASN1_STRING_length(s);

    /*
     * 0 for a name to leave out: with blanks, controls or non-ASCII
     * bytes (the list is space-separated and may be forwarded as gRPC
     * metadata), empty, or longer than 1 KiB
     */

    if (len > NGX_HTTP_GRPC_GUARD_MTLS_MAX_NAME) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((*data)[i] <= 0x20 || (*data)[i] >= 0x7f) {
            return 0;
        }
    }

    return len;
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
