
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * TLS on the limiter's connections to Redis, with nginx's own SSL layer:
 * the handshake after the TCP connect, the check of the server's
 * certificate and name before a byte of the handshake (the password
 * above all) is sent, and the session kept for the next connection.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_redis.h"


#if (NGX_SSL)

static void ngx_http_grpc_guard_redis_tls_handshake(ngx_connection_t *c);
static ngx_int_t ngx_http_grpc_guard_redis_tls_verify(
    ngx_http_grpc_guard_redis_conn_t *conn);
static void ngx_http_grpc_guard_redis_tls_save_session(ngx_connection_t *c);


void
ngx_http_grpc_guard_redis_tls_start(ngx_http_grpc_guard_redis_conn_t *conn)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_grpc_guard_redis_t  *rd;

    rd = conn->redis;
    c = conn->peer.connection;

    conn->state = NGX_HTTP_GRPC_GUARD_REDIS_TLS;
    conn->log.action = "TLS handshaking to redis";

    /* the SSL layer keeps its state in the connection's pool */

    c->pool = ngx_create_pool(1024, &conn->log);
    if (c->pool == NULL) {
        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    if (ngx_ssl_create_connection(rd->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    if (rd->tls_name.len) {
        conn->tls_name = rd->tls_name;

    } else {
        conn->tls_name.len = ngx_sock_ntop(conn->peer.sockaddr,
                                           conn->peer.socklen, conn->tls_addr,
                                           NGX_SOCKADDR_STRLEN, 0);
        conn->tls_addr[conn->tls_name.len] = '\0';
        conn->tls_name.data = conn->tls_addr;
    }

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME

    /* as per RFC 6066, literal IPv4 and IPv6 addresses are not sent */

    if (rd->tls_name.len
        && !rd->tls_name_ip
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) rd->tls_name.data)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_ERR, &conn->log, 0,
                      "SSL_set_tlsext_host_name(\"%V\") failed",
                      &rd->tls_name);
        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

#endif

    /* the session kept is the master's: a sentinel has its own */

    if (conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA) {
        c->ssl->save_session = ngx_http_grpc_guard_redis_tls_save_session;

        if (ngx_ssl_set_session(c, rd->tls_session) != NGX_OK) {
            ngx_http_grpc_guard_redis_close(conn, 1);
            return;
        }
    }

    /* the connect timer on the read event also bounds the handshake */

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_http_grpc_guard_redis_tls_handshake;
        return;
    }

    ngx_http_grpc_guard_redis_tls_handshake(c);
}


static void
ngx_http_grpc_guard_redis_tls_handshake(ngx_connection_t *c)
{
    ngx_http_grpc_guard_redis_conn_t  *conn;

    conn = c->data;

    if (!c->ssl->handshaked) {

        if (c->read->timedout || c->write->timedout) {
            ngx_log_error(NGX_LOG_ERR, &conn->log, NGX_ETIMEDOUT,
                          "redis did not complete the TLS handshake in time");

        } else {
            ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                          "TLS handshake with redis failed");
        }

        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    if (conn->redis->tls_verify
        && ngx_http_grpc_guard_redis_tls_verify(conn) != NGX_OK)
    {
        ngx_http_grpc_guard_redis_close(conn, 1);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                   "grpc guard redis TLS session reused: %d",
                   SSL_session_reused(c->ssl->connection));

    c->read->handler = ngx_http_grpc_guard_redis_read_handler;
    c->write->handler = ngx_http_grpc_guard_redis_write_handler;

    conn->state = NGX_HTTP_GRPC_GUARD_REDIS_HANDSHAKE;
    conn->log.action = "talking to redis";

    ngx_http_grpc_guard_redis_post_write(conn);
}


static ngx_int_t
ngx_http_grpc_guard_redis_tls_verify(ngx_http_grpc_guard_redis_conn_t *conn)
{
    long                          rc;
    X509                         *cert;
    ngx_int_t                     match;
    ngx_connection_t             *c;
    ngx_http_grpc_guard_redis_t  *rd;

    rd = conn->redis;
    c = conn->peer.connection;

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis certificate verify failed: (%l:%s)",
                      rc, X509_verify_cert_error_string(rc));
        goto failed;
    }

    if (rd->tls_name.len && !rd->tls_name_ip) {
        match = ngx_ssl_check_host(c, &conn->tls_name);

    } else {

        /*
         * ngx_ssl_check_host() compares DNS names only: an address is
         * looked for among the certificate's IP address SANs
         */

        cert = SSL_get_peer_certificate(c->ssl->connection);
        if (cert == NULL) {
            match = NGX_ERROR;

        } else {
            match = (X509_check_ip_asc(cert, (char *) conn->tls_name.data,
                                       0)
                     == 1) ? NGX_OK : NGX_ERROR;
            X509_free(cert);
        }
    }

    if (match != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "redis certificate does not match \"%V\"",
                      &conn->tls_name);
        goto failed;
    }

    return NGX_OK;

failed:

    /* a session of a server that was not trusted is not offered again */

    if (conn->kind == NGX_HTTP_GRPC_GUARD_REDIS_DATA && rd->tls_session) {
        ngx_ssl_free_session(rd->tls_session);
        rd->tls_session = NULL;
    }

    return NGX_ERROR;
}


static void
ngx_http_grpc_guard_redis_tls_save_session(ngx_connection_t *c)
{
    ngx_ssl_session_t                 *session;
    ngx_http_grpc_guard_redis_t       *rd;
    ngx_http_grpc_guard_redis_conn_t  *conn;

    conn = c->data;
    rd = conn->redis;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                   "grpc guard redis TLS session saved: %p", session);

    if (rd->tls_session) {
        ngx_ssl_free_session(rd->tls_session);
    }

    rd->tls_session = session;
}

#endif
