
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The grpc_guard_redis directive: the address (or the Sentinel
 * parameters, read by ngx_http_grpc_guard_redis_topology.c, or the
 * cluster's, by ngx_http_grpc_guard_redis_cluster.c),
 * credentials, timeouts, and the TLS context, all checked when the
 * configuration is loaded.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_redis.h"


#if (NGX_SSL)
static char *ngx_http_grpc_guard_redis_tls_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd, ngx_str_t *host, ngx_str_t *cert,
    ngx_str_t *key, ngx_str_t *trusted);
static char *ngx_http_grpc_guard_redis_tls_file(ngx_conf_t *cf,
    char *what, ngx_str_t *file);
#endif


char *
ngx_http_grpc_guard_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_main_conf_t *gmcf = conf;

    char                         *rv;
    ngx_int_t                     n, tls, verify;
    ngx_str_t                    *value, *tls_param, *db, s, file;
    ngx_str_t                     cert, key, trusted, name;
    ngx_url_t                     u;
    ngx_uint_t                    i;
    ngx_http_grpc_guard_redis_t  *rd;

    if (gmcf->redis) {
        return "is duplicate";
    }

    rd = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_redis_t));
    if (rd == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rd->user = { 0, NULL };
     *     rd->password = { 0, NULL };
     *     rd->db = 0;
     *     rd->conns = NULL;
     *     rd->failures = 0;
     *     rd->open = 0;
     */

    rd->timeout = 50;
    rd->connect_timeout = 500;
    rd->keepalive = 1;

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    /*
     * "sentinel=..." or "cluster=..." instead of an address: the
     * sentinels or the cluster's nodes say where
     */

    i = 1;

    if (ngx_strncmp(value[1].data, "sentinel=", 9) != 0
        && ngx_strncmp(value[1].data, "cluster=", 8) != 0)
    {

        u.url = value[1];
        u.default_port = 6379;

        /* resolved here, at configuration time: workers never resolve */

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"%V\"", u.err, &u.url);
            }

            return NGX_CONF_ERROR;
        }

        if (u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no address for \"%V\"", &u.url);
            return NGX_CONF_ERROR;
        }

        rd->name = u.addrs[0].name;
        rd->sockaddr = u.addrs[0].sockaddr;
        rd->socklen = u.addrs[0].socklen;
        rd->nodelay = (u.family != AF_UNIX);

        i = 2;

    } else {
        rd->nodelay = 1;
    }

    ngx_str_null(&file);
    ngx_str_null(&cert);
    ngx_str_null(&key);
    ngx_str_null(&trusted);
    ngx_str_null(&name);

    tls = 0;
    verify = 1;
    tls_param = NULL;
    db = NULL;

    for ( /* void */ ; i < cf->args->nelts; i++) {

        n = ngx_http_grpc_guard_sentinel_param(cf, rd, &value[i]);

        if (n == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (n == NGX_OK) {
            continue;
        }

        n = ngx_http_grpc_guard_cluster_param(cf, rd, &value[i]);

        if (n == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (n == NGX_OK) {
            continue;
        }

        if (value[i].len == 3 && ngx_strcmp(value[i].data, "tls") == 0) {
            tls = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_", 4) == 0) {

            if (tls_param == NULL) {
                tls_param = &value[i];
            }

            if (ngx_strcmp(value[i].data, "tls_verify=on") == 0) {
                verify = 1;
                continue;
            }

            if (ngx_strcmp(value[i].data, "tls_verify=off") == 0) {
                verify = 0;
                continue;
            }

            if (ngx_strncmp(value[i].data, "tls_trusted_certificate=", 24)
                == 0)
            {
                trusted.len = value[i].len - 24;
                trusted.data = value[i].data + 24;

                if (trusted.len == 0) {
                    goto invalid;
                }

                continue;
            }

            if (ngx_strncmp(value[i].data, "tls_certificate=", 16) == 0) {
                cert.len = value[i].len - 16;
                cert.data = value[i].data + 16;

                if (cert.len == 0) {
                    goto invalid;
                }

                continue;
            }

            if (ngx_strncmp(value[i].data, "tls_certificate_key=", 20) == 0) {
                key.len = value[i].len - 20;
                key.data = value[i].data + 20;

                if (key.len == 0) {
                    goto invalid;
                }

                continue;
            }

            if (ngx_strncmp(value[i].data, "tls_name=", 9) == 0) {
                name.len = value[i].len - 9;
                name.data = value[i].data + 9;

                if (name.len == 0) {
                    goto invalid;
                }

                continue;
            }

            goto invalid;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rd->password.len = value[i].len - 9;
            rd->password.data = value[i].data + 9;

            if (rd->password.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "password_file=", 14) == 0) {
            file.len = value[i].len - 14;
            file.data = value[i].data + 14;

            if (file.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            rd->user.len = value[i].len - 5;
            rd->user.data = value[i].data + 5;

            if (rd->user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rd->db = n;
            db = &value[i];
            continue;
        }

        if (ngx_strncmp(value[i].data, "keepalive=", 10) == 0) {
            n = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (n == NGX_ERROR
                || n == 0
                || n > NGX_HTTP_GRPC_GUARD_REDIS_MAX_KEEPALIVE)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"keepalive=\" must be 1 to 64 in "
                                   "\"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            rd->keepalive = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.len = value[i].len - 8;
            s.data = value[i].data + 8;

            rd->timeout = ngx_parse_time(&s, 0);
            if (rd->timeout == (ngx_msec_t) NGX_ERROR || rd->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.len = value[i].len - 16;
            s.data = value[i].data + 16;

            rd->connect_timeout = ngx_parse_time(&s, 0);
            if (rd->connect_timeout == (ngx_msec_t) NGX_ERROR
                || rd->connect_timeout == 0)
            {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (file.len) {

        if (rd->password.len) {
            return "takes either \"password=\" or \"password_file=\"";
        }

        rv = ngx_http_grpc_guard_redis_read_password(cf, &file,
                                                     &rd->password);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (rd->user.len && rd->password.len == 0) {
        return "has \"user=\" without a password";
    }

    if (rd->cluster) {

        if (rd->sentinel) {
            return "takes either \"sentinel=\" or \"cluster=\"";
        }

        if (rd->sockaddr) {
            return "takes either an address or \"cluster=\"";
        }

        if (db) {

            /* a cluster has database 0 only */

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" cannot be used with \"cluster=\": "
                               "Redis Cluster has database 0 only", db);
            return NGX_CONF_ERROR;
        }

        /* counters carry hash tags of their own, spread over the nodes */

        gmcf->limit_cluster = 1;
    }

    rv = ngx_http_grpc_guard_sentinel_conf(cf, rd);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (tls_param && !tls) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs \"tls\"", tls_param);
        return NGX_CONF_ERROR;
    }

    if (tls) {

#if (NGX_SSL)

        rd->tls_verify = verify;

        if (name.len == 0 && rd->sentinel == NULL && rd->cluster == NULL) {

            if (u.family == AF_UNIX && verify) {
                return "needs \"tls_name=\" with \"tls\" on a unix socket";
            }

            name = u.host;

            /* an IPv6 address is verified without its brackets */

            if (name.len > 2 && name.data[0] == '[') {
                name.data++;
                name.len -= 2;
            }
        }

        rv = ngx_http_grpc_guard_redis_tls_conf(cf, rd, &name, &cert, &key,
                                                &trusted);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

#else

        return "cannot use \"tls\": nginx was built without SSL";

#endif
    }

    /*
     * the node of the metrics: the address, or the sentinels' list, or
     * the cluster's (its nodes are found at run time); never another
     * parameter, which may be a password
     */

    s = rd->name;

    for (i = 1; rd->sentinel && i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0) {
            s = value[i];
        }
    }

    rd->metrics = ngx_http_grpc_guard_metrics_name(cf,
                                   NGX_HTTP_GRPC_GUARD_METRICS_NODE, &s);

    gmcf->redis = rd;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


char *
ngx_http_grpc_guard_redis_read_password(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *password)
{
    u_char     *p, *last;
    ngx_str_t   content;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_read_file(cf, cf->pool, file, 4096, &content)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* the first line, without its line break */

    p = content.data;

    last = ngx_strlchr(p, p + content.len, LF);
    if (last == NULL) {
        last = p + content.len;
    }

    if (last > p && last[-1] == CR) {
        last--;
    }

    if (last == p) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "password file \"%V\" is empty", file);
        return NGX_CONF_ERROR;
    }

    password->data = p;
    password->len = last - p;

    return NGX_CONF_OK;
}


#if (NGX_SSL)

static char *
ngx_http_grpc_guard_redis_tls_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_redis_t *rd, ngx_str_t *name, ngx_str_t *cert,
    ngx_str_t *key, ngx_str_t *trusted)
{
    char                *rv;
    ngx_pool_cleanup_t  *cln;

    if (rd->tls_verify && trusted->len == 0) {
        return "verifies the certificate of Redis with \"tls\": it needs "
               "\"tls_trusted_certificate=\" (or \"tls_verify=off\")";
    }

    if (cert->len && key->len == 0) {
        return "has \"tls_certificate=\" without \"tls_certificate_key=\"";
    }

    if (key->len && cert->len == 0) {
        return "has \"tls_certificate_key=\" without \"tls_certificate=\"";
    }

    /* the files are named here, with this line, when they cannot be read */

    if (cert->len) {
        rv = ngx_http_grpc_guard_redis_tls_file(cf, "tls_certificate=", cert);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        rv = ngx_http_grpc_guard_redis_tls_file(cf, "tls_certificate_key=",
                                                key);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (trusted->len) {
        rv = ngx_http_grpc_guard_redis_tls_file(cf,
                                                "tls_trusted_certificate=",
                                                trusted);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    /*
     * SNI and X509_check_host() want the name null-terminated; without
     * a name (Sentinel) each server is verified by the address it has
     */

    if (name->len) {
        rd->tls_name.len = name->len;
        rd->tls_name.data = ngx_pnalloc(cf->pool, name->len + 1);
        if (rd->tls_name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn(rd->tls_name.data, name->data, name->len + 1);

        rd->tls_name_ip = (ngx_inet_addr(name->data, name->len)
                           != INADDR_NONE);

#if (NGX_HAVE_INET6)
        {
        u_char  addr6[16];

        if (ngx_inet6_addr(name->data, name->len, addr6) == NGX_OK) {
            rd->tls_name_ip = 1;
        }
        }
#endif
    }

    rd->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rd->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    rd->ssl->log = cf->log;

    if (ngx_ssl_create(rd->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rd->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rd->ssl;

    if (cert->len
        && ngx_ssl_certificate(cf, rd->ssl, cert, key, NULL) != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot load \"tls_certificate=%V\" and "
                           "\"tls_certificate_key=%V\"", cert, key);
        return NGX_CONF_ERROR;
    }

    /*
     * the verify mode stays SSL_VERIFY_NONE, as with proxy_ssl_verify:
     * the result is checked once the handshake is done, so that the
     * error log can say what was wrong with the certificate
     */

    if (rd->tls_verify
        && ngx_ssl_trusted_certificate(cf, rd->ssl, trusted, 9) != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot load \"tls_trusted_certificate=%V\"",
                           trusted);
        return NGX_CONF_ERROR;
    }

    if (ngx_ssl_client_session_cache(cf, rd->ssl, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_grpc_guard_redis_tls_file(ngx_conf_t *cf, char *what,
    ngx_str_t *file)
{
    ngx_fd_t  fd;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read \"%s%V\"", what, file);
        return NGX_CONF_ERROR;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", file);
    }

    return NGX_CONF_OK;
}

#endif
