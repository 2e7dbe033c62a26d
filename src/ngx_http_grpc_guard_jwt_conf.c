
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The JWT configuration: the grpc_guard_jwt_* directives, the merge of a
 * location's settings with the digest of its policy, and the setup shared
 * by all locations (digests, jansson's allocator, the cache zone).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"


#define NGX_HTTP_GRPC_GUARD_JWT_MAX_SIZE      8192
#define NGX_HTTP_GRPC_GUARD_JWT_MIN_SIZE      256
#define NGX_HTTP_GRPC_GUARD_JWT_SIZE_LIMIT    65536
#define NGX_HTTP_GRPC_GUARD_JWT_LEEWAY        60

#define NGX_HTTP_GRPC_GUARD_JWT_MAX_FILE      (1024 * 1024)

#define NGX_HTTP_GRPC_GUARD_JWT_CACHE_SIZE    (1024 * 1024)

/* grpc_guard_jwt_key_request defaults */
#define NGX_HTTP_GRPC_GUARD_JWT_REFRESH       600000
#define NGX_HTTP_GRPC_GUARD_JWT_MIN_REFETCH   30000
#define NGX_HTTP_GRPC_GUARD_JWT_JWKS_SIZE     65536
#define NGX_HTTP_GRPC_GUARD_JWT_JWKS_LIMIT    (16 * 1024 * 1024)
#define NGX_HTTP_GRPC_GUARD_JWT_JWKS_TIMEOUT  5000


static char *ngx_http_grpc_guard_jwt_merge(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_conf_t *prev, ngx_http_grpc_guard_jwt_conf_t *conf,
    ngx_uint_t used);
static ngx_int_t ngx_http_grpc_guard_jwt_policy(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_conf_t *jcf);
static ngx_int_t ngx_http_grpc_guard_jwt_digest_str(EVP_MD_CTX *md,
    u_char *data, size_t len);
static ngx_int_t ngx_http_grpc_guard_jwt_digest_list(EVP_MD_CTX *md,
    ngx_array_t *list);
static void ngx_http_grpc_guard_jwt_main_cleanup(void *data);


static ngx_str_t  ngx_http_grpc_guard_jwt_zone_name =
    ngx_string("grpc_guard_jwt_cache");

static ngx_str_t  ngx_http_grpc_guard_jwt_exp = ngx_string("exp");


void
ngx_http_grpc_guard_jwt_create_conf(ngx_http_grpc_guard_jwt_conf_t *conf)
{
    /*
     * set by ngx_pcalloc() of the location configuration:
     *
     *     conf->policy = { 0 };
     */

    conf->keys = NGX_CONF_UNSET_PTR;
    conf->algorithms = NGX_CONF_UNSET_UINT;
    conf->issuers = NGX_CONF_UNSET_PTR;
    conf->audiences = NGX_CONF_UNSET_PTR;
    conf->require = NGX_CONF_UNSET_PTR;
    conf->leeway = NGX_CONF_UNSET;
    conf->max_lifetime = NGX_CONF_UNSET;
    conf->max_size = NGX_CONF_UNSET_SIZE;
    conf->token = NGX_CONF_UNSET_PTR;
    conf->remote = NGX_CONF_UNSET_PTR;
}


char *
ngx_http_grpc_guard_jwt_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_uint_t                        used;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    /*
     * keys are needed where "grpc_guard_auth jwt" is set; with no method
     * required, a token is looked at where ACL rules ask for an identity
     * and keys are there to check it with
     */

    ngx_conf_merge_ptr_value(conf->jwt.keys, prev->jwt.keys, NULL);
    ngx_conf_merge_ptr_value(conf->jwt.remote, prev->jwt.remote, NULL);

    used = conf->enable
           && ((conf->auth & NGX_HTTP_GRPC_GUARD_AUTH_JWT)
               || (conf->auth == 0
                   && ngx_http_grpc_guard_jwt_configured(conf)
                   && ngx_http_grpc_guard_acl_identity(conf->acl)));

    if (used) {
        gmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_grpc_guard_module);
        gmcf->jwt_used = 1;
    }

    return ngx_http_grpc_guard_jwt_merge(cf, &prev->jwt, &conf->jwt, used);
}


static char *
ngx_http_grpc_guard_jwt_merge(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_conf_t *prev, ngx_http_grpc_guard_jwt_conf_t *conf,
    ngx_uint_t used)
{
    ngx_str_t                      *s;
    ngx_uint_t                      i, algs;
    ngx_array_t                    *require;
    ngx_http_grpc_guard_jwt_key_t  *key;

    ngx_conf_merge_ptr_value(conf->keys, prev->keys, NULL);
    ngx_conf_merge_uint_value(conf->algorithms, prev->algorithms,
                              NGX_HTTP_GRPC_GUARD_JWT_DEFAULT_ALGS);
    ngx_conf_merge_ptr_value(conf->issuers, prev->issuers, NULL);
    ngx_conf_merge_ptr_value(conf->audiences, prev->audiences, NULL);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway,
                             NGX_HTTP_GRPC_GUARD_JWT_LEEWAY);
    ngx_conf_merge_sec_value(conf->max_lifetime, prev->max_lifetime, 0);
    ngx_conf_merge_size_value(conf->max_size, prev->max_size,
                              NGX_HTTP_GRPC_GUARD_JWT_MAX_SIZE);
    ngx_conf_merge_ptr_value(conf->token, prev->token, NULL);
    ngx_conf_merge_ptr_value(conf->remote, prev->remote, NULL);

    if (conf->require == NGX_CONF_UNSET_PTR) {

        if (prev->require == NGX_CONF_UNSET_PTR) {

            /* "exp" is required by default */

            require = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));
            if (require == NULL) {
                return NGX_CONF_ERROR;
            }

            s = ngx_array_push(require);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = ngx_http_grpc_guard_jwt_exp;

            prev->require = require;
        }

        conf->require = prev->require;
    }

    if (conf->max_size < NGX_HTTP_GRPC_GUARD_JWT_MIN_SIZE
        || conf->max_size > NGX_HTTP_GRPC_GUARD_JWT_SIZE_LIMIT)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_jwt_max_size\" must be between "
                           "%d and %d", NGX_HTTP_GRPC_GUARD_JWT_MIN_SIZE,
                           NGX_HTTP_GRPC_GUARD_JWT_SIZE_LIMIT);
        return NGX_CONF_ERROR;
    }

    if (!used) {
        return NGX_CONF_OK;
    }

    if ((conf->keys == NULL || conf->keys->nelts == 0)
        && conf->remote == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_auth jwt\" needs keys: "
                           "no \"grpc_guard_jwt_key_file\" is defined "
                           "(nor \"grpc_guard_jwt_key_request\")");
        return NGX_CONF_ERROR;
    }

    algs = 0;

    if (conf->keys) {
        key = conf->keys->elts;

        for (i = 0; i < conf->keys->nelts; i++) {
            algs |= key[i].algs;
        }
    }

    /* the fetched keys are known later: they are checked when they come */

    if (conf->remote == NULL && !(algs & conf->algorithms)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "none of the keys of \"grpc_guard_jwt_key_file\" "
                           "can verify an algorithm that "
                           "\"grpc_guard_jwt_algorithms\" allows");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_jwt_policy(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_http_grpc_guard_jwt_configured(ngx_http_grpc_guard_loc_conf_t *glcf)
{
    return glcf->jwt.keys != NULL || glcf->jwt.remote != NULL;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_policy(ngx_conf_t *cf,
    ngx_http_grpc_guard_jwt_conf_t *jcf)
{
    ngx_int_t                       rc;
    ngx_str_t                      *uri;
    EVP_MD_CTX                     *md;
    ngx_uint_t                      i;
    ngx_http_grpc_guard_jwt_key_t  *key;
    int64_t                         n[5];

    /* everything that decides whether a token passes */

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        goto done;
    }

    key = jcf->keys ? jcf->keys->elts : NULL;

    for (i = 0; jcf->keys && i < jcf->keys->nelts; i++) {
        n[0] = key[i].algs;

        if (ngx_http_grpc_guard_jwt_digest_str(md, key[i].kid.data,
                                               key[i].kid.len)
            != NGX_OK
            || EVP_DigestUpdate(md, &n[0], sizeof(int64_t)) != 1
            || EVP_DigestUpdate(md, key[i].digest,
                                NGX_HTTP_GRPC_GUARD_SHA256_LEN)
               != 1)
        {
            goto done;
        }
    }

    n[0] = jcf->algorithms;
    n[1] = jcf->leeway;
    n[2] = jcf->max_lifetime;
    n[3] = jcf->max_size;
    n[4] = jcf->keys ? jcf->keys->nelts : 0;

    /* the keys fetched: the cache keys take their digest too */

    if (jcf->remote) {
        uri = ngx_http_grpc_guard_remote_uri(jcf->remote->remote);

        if (ngx_http_grpc_guard_jwt_digest_str(md, uri->data, uri->len)
            != NGX_OK)
        {
            goto done;
        }
    }

    if (EVP_DigestUpdate(md, n, sizeof(n)) != 1
        || ngx_http_grpc_guard_jwt_digest_list(md, jcf->issuers) != NGX_OK
        || ngx_http_grpc_guard_jwt_digest_list(md, jcf->audiences) != NGX_OK
        || ngx_http_grpc_guard_jwt_digest_list(md, jcf->require) != NGX_OK
        || EVP_DigestFinal_ex(md, jcf->policy, NULL) != 1)
    {
        goto done;
    }

    rc = NGX_OK;

done:

    EVP_MD_CTX_free(md);

    if (rc != NGX_OK) {
        ERR_clear_error();
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc guard: SHA-256 is not available");
    }

    return rc;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_digest_str(EVP_MD_CTX *md, u_char *data, size_t len)
{
    uint64_t  n;

    n = len;

    if (EVP_DigestUpdate(md, &n, sizeof(uint64_t)) != 1
        || (len && EVP_DigestUpdate(md, data, len) != 1))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_digest_list(EVP_MD_CTX *md, ngx_array_t *list)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    /* a list that is not set differs from an empty one */

    if (list == NULL) {
        return ngx_http_grpc_guard_jwt_digest_str(md, (u_char *) "-", 1);
    }

    s = list->elts;

    if (ngx_http_grpc_guard_jwt_digest_str(md, (u_char *) "+", 1) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < list->nelts; i++) {
        if (ngx_http_grpc_guard_jwt_digest_str(md, s[i].data, s[i].len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_init_main(ngx_conf_t *cf,
    ngx_http_grpc_guard_main_conf_t *gmcf)
{
    ngx_uint_t                        i;
    ngx_shm_zone_t                   *shm_zone;
    ngx_pool_cleanup_t               *cln;
    ngx_http_grpc_guard_jwt_main_t   *jm;
    ngx_http_grpc_guard_jwt_cache_t  *cache;

    if (!gmcf->jwt_used) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(cf->pool,
                               sizeof(ngx_http_grpc_guard_jwt_main_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    jm = cln->data;
    ngx_memzero(jm, sizeof(ngx_http_grpc_guard_jwt_main_t));

    cln->handler = ngx_http_grpc_guard_jwt_main_cleanup;

    /* fetched once: an implicit fetch on every use costs time */

    for (i = 0; i < 3; i++) {
        jm->md[i] = EVP_MD_fetch(NULL, ngx_http_grpc_guard_jwt_md_names[i],
                                 NULL);
        if (jm->md[i] == NULL) {
            ERR_clear_error();
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc guard: %s is not available",
                               ngx_http_grpc_guard_jwt_md_names[i]);
            return NGX_ERROR;
        }
    }

    jm->hash = EVP_MD_CTX_new();
    if (jm->hash == NULL) {
        return NGX_ERROR;
    }

    /*
     * the JSON of a token is parsed into the request pool: some thirty
     * malloc() and free() calls fewer per token
     */

    json_set_alloc_funcs(ngx_http_grpc_guard_jwt_json_alloc,
                         ngx_http_grpc_guard_jwt_json_free);

    gmcf->jwt = jm;

    if (gmcf->jwt_cache_size == NGX_CONF_UNSET) {
        gmcf->jwt_cache_size = NGX_HTTP_GRPC_GUARD_JWT_CACHE_SIZE;
    }

    if (gmcf->jwt_cache_size == 0) {
        return NGX_OK;
    }

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_grpc_guard_jwt_zone_name,
                                     gmcf->jwt_cache_size,
                                     &ngx_http_grpc_guard_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (shm_zone->data == NULL) {
        cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_jwt_cache_t));
        if (cache == NULL) {
            return NGX_ERROR;
        }

        shm_zone->init = ngx_http_grpc_guard_jwt_init_zone;
        shm_zone->data = cache;
    }

    gmcf->jwt_cache = shm_zone;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_jwt_main_cleanup(void *data)
{
    ngx_http_grpc_guard_jwt_main_t  *jm = data;

    ngx_uint_t  i;

    for (i = 0; i < 3; i++) {
        if (jm->md[i]) {
            EVP_MD_free(jm->md[i]);
        }
    }

    if (jm->hash) {
        EVP_MD_CTX_free(jm->hash);
    }
}


char *
ngx_http_grpc_guard_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_grpc_guard_main_conf_t *gmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (gmcf->jwt_cache_size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        gmcf->jwt_cache_size = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jwt cache \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    gmcf->jwt_cache_size = size;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_algorithms(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i, algs;
    ngx_http_grpc_guard_jwt_alg_t  *alg;

    if (glcf->jwt.algorithms != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    algs = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "none") == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the \"none\" algorithm is never allowed");
            return NGX_CONF_ERROR;
        }

        alg = ngx_http_grpc_guard_jwt_find_alg(value[i].data, value[i].len);

        if (alg == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown JWS algorithm \"%V\" (names are "
                               "case-sensitive, e.g. \"RS256\", \"EdDSA\")",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        algs |= alg->mask;
    }

    glcf->jwt.algorithms = algs;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_list(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t     *value, *s;
    ngx_uint_t     i;
    ngx_array_t  **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a == NGX_CONF_UNSET_PTR) {
        *a = ngx_array_create(cf->pool, cf->args->nelts - 1,
                              sizeof(ngx_str_t));
        if (*a == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty value in \"%V\"", &cmd->name);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_max_lifetime(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    time_t      t;
    ngx_str_t  *value;

    if (glcf->jwt.max_lifetime != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        glcf->jwt.max_lifetime = 0;
        return NGX_CONF_OK;
    }

    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->jwt.max_lifetime = t;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char                          *p, *last;
    char                            *rv;
    ngx_str_t                       *value, file, content;
    ngx_uint_t                       n;
    ngx_http_grpc_guard_jwt_load_t   ld;

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (glcf->jwt.keys == NGX_CONF_UNSET_PTR) {
        glcf->jwt.keys = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_grpc_guard_jwt_key_t));
        if (glcf->jwt.keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_grpc_guard_read_file(cf, cf->temp_pool, &file,
                                      NGX_HTTP_GRPC_GUARD_JWT_MAX_FILE,
                                      &content)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (content.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc_guard_jwt_key_file \"%V\" is empty", &file);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ld, sizeof(ngx_http_grpc_guard_jwt_load_t));

    ld.cf = cf;
    ld.pool = cf->pool;
    ld.temp_pool = cf->temp_pool;
    ld.log = cf->log;
    ld.file = &file;
    ld.keys = glcf->jwt.keys;

    n = ld.keys->nelts;

    p = content.data;
    last = p + content.len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == CR || *p == LF)) {
        p++;
    }

    if (p < last && *p == '{') {
        rv = ngx_http_grpc_guard_jwt_load_jwks(&ld, &content);

    } else if (ngx_strlcasestrn(p, last, (u_char *) "-----BEGIN ", 11 - 1)
               != NULL)
    {
        rv = ngx_http_grpc_guard_jwt_load_pem(&ld, &content);

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc_guard_jwt_key_file \"%V\" is neither a JWKS "
                           "(JSON) nor PEM", &file);
        rv = NGX_CONF_ERROR;
    }

    /* an "oct" key is a secret: it is not left in memory */

    OPENSSL_cleanse(content.data, content.len);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (ld.keys->nelts == n) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "grpc_guard_jwt_key_file \"%V\" has no key", &file);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_jwt_key_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    size_t                             max_size;
    ssize_t                            size;
    ngx_str_t                         *value, s;
    ngx_int_t                          ms;
    ngx_uint_t                         i;
    ngx_msec_t                         refresh, min_refetch, timeout;
    ngx_pool_cleanup_t                *cln;
    ngx_http_grpc_guard_jwt_remote_t  *jr;

    if (glcf->jwt.remote != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        glcf->jwt.remote = NULL;
        return NGX_CONF_OK;
    }

    refresh = NGX_HTTP_GRPC_GUARD_JWT_REFRESH;
    min_refetch = NGX_HTTP_GRPC_GUARD_JWT_MIN_REFETCH;
    timeout = NGX_HTTP_GRPC_GUARD_JWT_JWKS_TIMEOUT;
    max_size = NGX_HTTP_GRPC_GUARD_JWT_JWKS_SIZE;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            size = ngx_parse_size(&s);

            if (size <= 0 || size > NGX_HTTP_GRPC_GUARD_JWT_JWKS_LIMIT) {
                goto invalid;
            }

            max_size = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "refresh=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            ms = ngx_parse_time(&s, 0);
            if (ms == NGX_ERROR || ms < 1000) {
                goto invalid;
            }

            refresh = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "min_refetch=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;

            ms = ngx_parse_time(&s, 0);
            if (ms == NGX_ERROR || ms < 1000) {
                goto invalid;
            }

            min_refetch = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            ms = ngx_parse_time(&s, 0);
            if (ms == NGX_ERROR || ms < 1) {
                goto invalid;
            }

            timeout = ms;
            continue;
        }

        goto invalid;
    }

    jr = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_jwt_remote_t));
    if (jr == NULL) {
        return NGX_CONF_ERROR;
    }

    /* each worker's keys go with the configuration */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_grpc_guard_jwt_remote_cleanup;
    cln->data = jr;

    jr->refresh = refresh;
    jr->min_refetch = min_refetch;

    jr->remote = ngx_http_grpc_guard_remote_add(cf,
                                          NGX_HTTP_GRPC_GUARD_REMOTE_JWKS,
                                          &value[1], max_size, timeout,
                                          ngx_http_grpc_guard_jwt_check_jwks,
                                          jr);
    if (jr->remote == NULL) {
        return NGX_CONF_ERROR;
    }

    glcf->jwt.remote = jr;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}
