
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The keys of grpc_guard_jwt_key_file: a JWK, a JWK Set or PEM blocks
 * loaded into key sets, each key made ready for verification and freed
 * with the configuration; and the keys of grpc_guard_jwt_key_request, a
 * JWK Set fetched from the identity provider, under the same rules, in
 * each worker's own memory.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"


#define NGX_HTTP_GRPC_GUARD_JWT_MIN_RSA_BITS  2048
#define NGX_HTTP_GRPC_GUARD_JWT_MAX_RSA_BITS  16384
#define NGX_HTTP_GRPC_GUARD_JWT_MIN_SECRET    32


static char *ngx_http_grpc_guard_jwt_load_jwk(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk);
static void ngx_http_grpc_guard_jwt_load_error(
    ngx_http_grpc_guard_jwt_load_t *ld, ngx_uint_t what, const char *fmt, ...);
static ngx_int_t ngx_http_grpc_guard_jwt_load_remote(ngx_log_t *log,
    ngx_str_t *uri, ngx_pool_t *pool, ngx_str_t *text, ngx_uint_t quiet,
    ngx_array_t **keys);
static ngx_int_t ngx_http_grpc_guard_jwt_set_digest(ngx_array_t *keys,
    u_char *digest);
static void ngx_http_grpc_guard_jwt_label(ngx_http_grpc_guard_jwt_load_t *ld,
    char *what);
static char *ngx_http_grpc_guard_jwt_jwk_member(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk, char *name,
    ngx_str_t *value);
static EVP_PKEY *ngx_http_grpc_guard_jwt_jwk_rsa(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk);
static EVP_PKEY *ngx_http_grpc_guard_jwt_jwk_ec(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk, ngx_uint_t *algs);
static EVP_PKEY *ngx_http_grpc_guard_jwt_jwk_okp(
    ngx_http_grpc_guard_jwt_load_t *ld, json_t *jwk);
static EVP_PKEY *ngx_http_grpc_guard_jwt_pem_rsa(u_char *der, long len);
static ngx_int_t ngx_http_grpc_guard_jwt_pkey_cleanup(ngx_pool_t *pool,
    EVP_PKEY *pkey);
static void ngx_http_grpc_guard_jwt_free_pkey(void *data);
static ngx_int_t ngx_http_grpc_guard_jwt_verify_ctx(ngx_pool_t *pool,
    ngx_http_grpc_guard_jwt_key_t *key);
static void ngx_http_grpc_guard_jwt_free_pkey_ctx(void *data);
static char *ngx_http_grpc_guard_jwt_add_pkey(
    ngx_http_grpc_guard_jwt_load_t *ld, EVP_PKEY *pkey, ngx_uint_t algs);
static char *ngx_http_grpc_guard_jwt_add_key(
    ngx_http_grpc_guard_jwt_load_t *ld, ngx_http_grpc_guard_jwt_key_t *key);


/* JWK members that only a private key has */

static char  *ngx_http_grpc_guard_jwt_private[] = {
    "d", "p", "q", "dp", "dq", "qi", "oth", NULL
};


char *
ngx_http_grpc_guard_jwt_load_jwks(ngx_http_grpc_guard_jwt_load_t *ld,
    ngx_str_t *content)
{
    char          *rv;
    json_t        *root, *keys, *jwk;
    size_t         i;
    json_error_t   error;

    root = json_loadb((char *) content->data, content->len,
                      JSON_REJECT_DUPLICATES, &error);

    if (root == NULL) {
        ngx_http_grpc_guard_jwt_load_error(ld, 0,
                                           ": invalid JSON at line %d: %s",
                                           error.line, error.text);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;

    keys = json_object_get(root, "keys");

    if (keys) {
        if (!json_is_array(keys)) {
            ngx_http_grpc_guard_jwt_load_error(ld, 0,
                                               ": \"keys\" is not an array");
            rv = NGX_CONF_ERROR;
            goto done;
        }

        for (i = 0; i < json_array_size(keys); i++) {
            jwk = json_array_get(keys, i);
            ld->n = i + 1;

            rv = ngx_http_grpc_guard_jwt_load_jwk(ld, jwk);

            if (rv != NGX_CONF_OK) {

                /*
                 * an identity provider's set may hold keys of other uses
                 * (encryption) or types: those are skipped, and so are
                 * the ones the rules refuse; a set with no key left is
                 * refused by the caller
                 */

                if (ld->remote) {
                    rv = NGX_CONF_OK;
                    continue;
                }

                goto done;
            }
        }

    } else if (!ld->remote && json_object_get(root, "kty")) {

        /* a single JWK */

        ld->n = 1;
        rv = ngx_http_grpc_guard_jwt_load_jwk(ld, root);

    } else {
        ngx_http_grpc_guard_jwt_load_error(ld, 0,
                                           ld->remote
                                           ? ": not a JWK Set (\"keys\")"
                                           : ": neither a JWK Set "
                                             "(\"keys\") nor a JWK "
                                             "(\"kty\")");
        rv = NGX_CONF_ERROR;
    }

done:

    json_decref(root);

    return rv;
}


static char *
ngx_http_grpc_guard_jwt_load_jwk(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk)
{
    char                           *rv, **priv, *what;
    json_t                         *v, *e;
    size_t                          i;
    EVP_PKEY                       *pkey;
    ngx_str_t                       kty, alg_name, use, secret;
    ngx_uint_t                      algs, type_algs;
    ngx_http_grpc_guard_jwt_alg_t  *alg;
    ngx_http_grpc_guard_jwt_key_t   key;

    ngx_str_null(&ld->kid);
    ngx_http_grpc_guard_jwt_label(ld, "key");

    if (!json_is_object(jwk)) {
        what = "is not a JSON object";
        goto invalid;
    }

    v = json_object_get(jwk, "kid");

    if (v) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > NGX_HTTP_GRPC_GUARD_JWT_MAX_KID)
        {
            what = "has a \"kid\" that is not a string of 1 to 256 bytes";
            goto invalid;
        }

        ld->kid.data = (u_char *) json_string_value(v);
        ld->kid.len = json_string_length(v);
    }

    ngx_http_grpc_guard_jwt_label(ld, "key");

    rv = ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "kty", &kty);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    v = json_object_get(jwk, "use");

    if (v) {
        if (!json_is_string(v)) {
            what = "has a \"use\" that is not a string";
            goto invalid;
        }

        use.data = (u_char *) json_string_value(v);
        use.len = json_string_length(v);

        if (use.len != 3 || ngx_strncmp(use.data, "sig", 3) != 0) {
            ngx_http_grpc_guard_jwt_load_error(ld, 2,
                                               ": %V has \"use\": \"%V\"; "
                                               "only signature keys "
                                               "(\"sig\") are accepted",
                                               &ld->label, &use);
            return NGX_CONF_ERROR;
        }
    }

    v = json_object_get(jwk, "key_ops");

    if (v) {
        if (!json_is_array(v)) {
            what = "has a \"key_ops\" that is not an array";
            goto invalid;
        }

        for (i = 0; i < json_array_size(v); i++) {
            e = json_array_get(v, i);

            if (json_is_string(e)
                && ngx_strcmp(json_string_value(e), "verify") == 0)
            {
                break;
            }
        }

        if (i == json_array_size(v)) {
            what = "has \"key_ops\" without \"verify\"";
            goto invalid;
        }
    }

    alg = NULL;

    v = json_object_get(jwk, "alg");

    if (v) {
        if (!json_is_string(v)) {
            what = "has an \"alg\" that is not a string";
            goto invalid;
        }

        alg_name.data = (u_char *) json_string_value(v);
        alg_name.len = json_string_length(v);

        alg = ngx_http_grpc_guard_jwt_find_alg(alg_name.data, alg_name.len);

        if (alg == NULL) {
            ngx_http_grpc_guard_jwt_load_error(ld, 2,
                                               ": %V has the unknown or "
                                               "refused \"alg\": \"%V\"",
                                               &ld->label, &alg_name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strcmp(kty.data, "oct") != 0) {

        /* a JWK of a public key must not carry its private half */

        for (priv = ngx_http_grpc_guard_jwt_private; *priv; priv++) {
            if (json_object_get(jwk, *priv)) {
                ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                                   ": %V contains private "
                                                   "key material (\"%s\"); "
                                                   "give the public key only",
                                                   &ld->label, *priv);
                return NGX_CONF_ERROR;
            }
        }
    }

    ngx_memzero(&key, sizeof(ngx_http_grpc_guard_jwt_key_t));

    pkey = NULL;
    type_algs = 0;

    if (ngx_strcmp(kty.data, "RSA") == 0) {
        pkey = ngx_http_grpc_guard_jwt_jwk_rsa(ld, jwk);
        type_algs = NGX_HTTP_GRPC_GUARD_JWT_RSA;

    } else if (ngx_strcmp(kty.data, "EC") == 0) {
        pkey = ngx_http_grpc_guard_jwt_jwk_ec(ld, jwk, &type_algs);

    } else if (ngx_strcmp(kty.data, "OKP") == 0) {
        pkey = ngx_http_grpc_guard_jwt_jwk_okp(ld, jwk);
        type_algs = NGX_HTTP_GRPC_GUARD_JWT_EDDSA;

    } else if (ngx_strcmp(kty.data, "oct") == 0) {

        /* a shared secret: HS* only, and only when long enough */

        if (ld->remote) {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V is an \"oct\" key: "
                                               "a secret is never taken "
                                               "from a fetched set",
                                               &ld->label);
            return NGX_CONF_ERROR;
        }

        rv = ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "k", &secret);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        if (secret.len < NGX_HTTP_GRPC_GUARD_JWT_MIN_SECRET) {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V: an \"oct\" key needs "
                                               "at least %d bytes",
                                               &ld->label,
                                            NGX_HTTP_GRPC_GUARD_JWT_MIN_SECRET);
            return NGX_CONF_ERROR;
        }

        key.secret = ngx_pnalloc(ld->pool, secret.len);
        if (key.secret == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(key.secret, secret.data, secret.len);
        key.secret_len = secret.len;

        OPENSSL_cleanse(secret.data, secret.len);

        type_algs = NGX_HTTP_GRPC_GUARD_JWT_HS256;

        if (key.secret_len >= 48) {
            type_algs |= NGX_HTTP_GRPC_GUARD_JWT_HS384;
        }

        if (key.secret_len >= 64) {
            type_algs |= NGX_HTTP_GRPC_GUARD_JWT_HS512;
        }

        if (EVP_Digest(key.secret, key.secret_len, key.digest, NULL,
                       EVP_sha256(), NULL)
            != 1)
        {
            ERR_clear_error();
            return NGX_CONF_ERROR;
        }

    } else {
        ngx_http_grpc_guard_jwt_load_error(ld, 2,
                                           ": %V has the unsupported "
                                           "\"kty\": \"%V\"", &ld->label,
                                           &kty);
        return NGX_CONF_ERROR;
    }

    if (key.secret == NULL && pkey == NULL) {
        return NGX_CONF_ERROR;
    }

    /* freed with the configuration, whatever happens below */

    if (pkey && ngx_http_grpc_guard_jwt_pkey_cleanup(ld->pool, pkey) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* the key's own "alg" restricts it to that algorithm */

    algs = type_algs;

    if (alg) {
        if (!(alg->mask & type_algs)) {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V: \"alg\": \"%V\" does "
                                               "not fit this key (\"kty\": "
                                               "\"%V\", its curve or its "
                                               "size)", &ld->label, &alg_name,
                                               &kty);
            return NGX_CONF_ERROR;
        }

        algs = alg->mask;
    }

    if (pkey) {
        return ngx_http_grpc_guard_jwt_add_pkey(ld, pkey, algs);
    }

    key.algs = algs;

    return ngx_http_grpc_guard_jwt_add_key(ld, &key);

invalid:

    ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                       ": %V %s", &ld->label, what);

    return NGX_CONF_ERROR;
}


static void
ngx_http_grpc_guard_jwt_label(ngx_http_grpc_guard_jwt_load_t *ld, char *what)
{
    u_char  *p;

    if (ld->kid.len) {
        p = ngx_snprintf(ld->text, sizeof(ld->text), "%s %ui (kid \"%V\")",
                         what, ld->n, &ld->kid);

    } else {
        p = ngx_snprintf(ld->text, sizeof(ld->text), "%s %ui", what, ld->n);
    }

    ld->label.data = ld->text;
    ld->label.len = p - ld->text;
}


static char *
ngx_http_grpc_guard_jwt_jwk_member(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk, char *name, ngx_str_t *value)
{
    json_t     *v;
    ngx_str_t   text;

    /* "kty" as text; the others decoded from base64url */

    v = json_object_get(jwk, name);

    if (!json_is_string(v) || json_string_length(v) == 0) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V has no \"%s\" string",
                                           &ld->label, name);
        return NGX_CONF_ERROR;
    }

    text.data = (u_char *) json_string_value(v);
    text.len = json_string_length(v);

    if (ngx_strcmp(name, "kty") == 0) {
        *value = text;
        return NGX_CONF_OK;
    }

    value->data = ngx_pnalloc(ld->temp_pool, text.len);
    if (value->data == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_jwt_decode(value, &text) != NGX_OK
        || value->len == 0)
    {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: \"%s\" is not canonical "
                                           "base64url", &ld->label, name);
        return NGX_CONF_ERROR;
    }

    if (ngx_strcmp(name, "k") == 0) {

        /* the text of a secret goes with the JSON tree: wiped first */

        OPENSSL_cleanse(text.data, text.len);
    }

    return NGX_CONF_OK;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_jwk_rsa(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk)
{
    BIGNUM          *n, *e;
    EVP_PKEY        *pkey;
    ngx_str_t        ns, es;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *pctx;
    OSSL_PARAM_BLD  *bld;

    if (ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "n", &ns) != NGX_CONF_OK
        || ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "e", &es)
           != NGX_CONF_OK)
    {
        return NULL;
    }

    if (es.len > 8) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: the RSA exponent is too "
                                           "large", &ld->label);
        return NULL;
    }

    pkey = NULL;
    params = NULL;
    pctx = NULL;

    n = BN_bin2bn(ns.data, ns.len, NULL);
    e = BN_bin2bn(es.data, es.len, NULL);
    bld = OSSL_PARAM_BLD_new();

    if (n == NULL || e == NULL || bld == NULL
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
    {
        goto done;
    }

    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        goto done;
    }

    pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);

    if (pctx == NULL
        || EVP_PKEY_fromdata_init(pctx) != 1
        || EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    ERR_clear_error();

    if (pkey == NULL) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: invalid RSA key",
                                           &ld->label);
    }

    return pkey;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_jwk_ec(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk, ngx_uint_t *algs)
{
    char            *group;
    json_t          *v;
    size_t           size;
    u_char          *pub;
    EVP_PKEY        *pkey;
    ngx_str_t        x, y;
    OSSL_PARAM      *params;
    const char      *crv;
    EVP_PKEY_CTX    *pctx;
    OSSL_PARAM_BLD  *bld;

    v = json_object_get(jwk, "crv");
    crv = json_is_string(v) ? json_string_value(v) : "";

    if (ngx_strcmp(crv, "P-256") == 0) {
        group = "prime256v1";
        size = 32;
        *algs = NGX_HTTP_GRPC_GUARD_JWT_ES256;

    } else if (ngx_strcmp(crv, "P-384") == 0) {
        group = "secp384r1";
        size = 48;
        *algs = NGX_HTTP_GRPC_GUARD_JWT_ES384;

    } else if (ngx_strcmp(crv, "P-521") == 0) {
        group = "secp521r1";
        size = 66;
        *algs = NGX_HTTP_GRPC_GUARD_JWT_ES512;

    } else {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: unsupported EC \"crv\": "
                                           "\"%s\" (P-256, P-384 or P-521)",
                                           &ld->label, crv);
        return NULL;
    }

    if (ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "x", &x) != NGX_CONF_OK
        || ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "y", &y)
           != NGX_CONF_OK)
    {
        return NULL;
    }

    if (x.len != size || y.len != size) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: \"x\" and \"y\" do not "
                                           "match \"crv\": \"%s\" (%uz bytes "
                                           "each expected)", &ld->label, crv,
                                           size);
        return NULL;
    }

    pub = ngx_pnalloc(ld->temp_pool, 1 + 2 * size);
    if (pub == NULL) {
        return NULL;
    }

    /* an uncompressed point */

    pub[0] = 0x04;
    ngx_memcpy(pub + 1, x.data, size);
    ngx_memcpy(pub + 1 + size, y.data, size);

    pkey = NULL;
    params = NULL;
    pctx = NULL;

    bld = OSSL_PARAM_BLD_new();

    if (bld == NULL
        || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, 0)
           != 1
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            pub, 1 + 2 * size)
           != 1)
    {
        goto done;
    }

    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        goto done;
    }

    pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

    if (pctx == NULL
        || EVP_PKEY_fromdata_init(pctx) != 1
        || EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        pkey = NULL;
        goto done;
    }

    /* the point is on the curve */

    EVP_PKEY_CTX_free(pctx);

    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

    if (pctx == NULL || EVP_PKEY_public_check(pctx) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    ERR_clear_error();

    if (pkey == NULL) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: invalid EC public key on %s",
                                           &ld->label, crv);
    }

    return pkey;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_jwk_okp(ngx_http_grpc_guard_jwt_load_t *ld,
    json_t *jwk)
{
    json_t      *v;
    EVP_PKEY    *pkey;
    ngx_str_t    x;
    const char  *crv;

    v = json_object_get(jwk, "crv");
    crv = json_is_string(v) ? json_string_value(v) : "";

    if (ngx_strcmp(crv, "Ed25519") != 0) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: unsupported OKP \"crv\": "
                                           "\"%s\" (Ed25519 only)",
                                           &ld->label, crv);
        return NULL;
    }

    if (ngx_http_grpc_guard_jwt_jwk_member(ld, jwk, "x", &x) != NGX_CONF_OK) {
        return NULL;
    }

    if (x.len != 32) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: \"x\" does not match "
                                           "\"crv\": \"Ed25519\" (32 bytes "
                                           "expected)", &ld->label);
        return NULL;
    }

    pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x.data,
                                          x.len);

    ERR_clear_error();

    if (pkey == NULL) {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V: invalid Ed25519 public key",
                                           &ld->label);
    }

    return pkey;
}


char *
ngx_http_grpc_guard_jwt_load_pem(ngx_http_grpc_guard_jwt_load_t *ld,
    ngx_str_t *content)
{
    char    *name, *header, *rv;
    u_char  *der;
    long            len;
    BIO            *bio;
    X509           *x509;
    EVP_PKEY       *pkey;
    const u_char   *p;
    unsigned long   err;

    bio = BIO_new_mem_buf(content->data, (int) content->len);
    if (bio == NULL) {
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;

    for ( ;; ) {

        name = NULL;
        header = NULL;
        der = NULL;

        if (PEM_read_bio(bio, &name, &header, &der, &len) != 1) {
            err = ERR_peek_last_error();

            if (ERR_GET_LIB(err) == ERR_LIB_PEM
                && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)
            {
                /* no more blocks */
                break;
            }

            ngx_http_grpc_guard_jwt_load_error(ld, 0,
                                               ": invalid PEM");
            rv = NGX_CONF_ERROR;
            break;
        }

        ld->n++;
        ngx_http_grpc_guard_jwt_label(ld, "block");

        pkey = NULL;
        p = der;

        if (ngx_strcmp(name, "PUBLIC KEY") == 0) {
            pkey = d2i_PUBKEY(NULL, &p, len);

        } else if (ngx_strcmp(name, "RSA PUBLIC KEY") == 0) {
            pkey = ngx_http_grpc_guard_jwt_pem_rsa(der, len);

        } else if (ngx_strcmp(name, "CERTIFICATE") == 0) {

            /* a container for the key: its dates and chain do not count */

            x509 = d2i_X509(NULL, &p, len);

            if (x509) {
                pkey = X509_get_pubkey(x509);
                X509_free(x509);
            }

        } else if (ngx_strstr(name, "PRIVATE KEY") != NULL) {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V is a private key "
                                               "(\"%s\"); give the public "
                                               "key or certificate only",
                                               &ld->label, name);
            rv = NGX_CONF_ERROR;

        } else {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V (\"%s\") is not a "
                                               "public key or certificate",
                                               &ld->label, name);
            rv = NGX_CONF_ERROR;
        }

        if (der) {
            OPENSSL_cleanse(der, len);
        }

        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);

        if (rv != NGX_CONF_OK) {
            break;
        }

        if (pkey == NULL) {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V could not be decoded",
                                               &ld->label);
            rv = NGX_CONF_ERROR;
            break;
        }

        if (ngx_http_grpc_guard_jwt_pkey_cleanup(ld->pool, pkey) != NGX_OK) {
            rv = NGX_CONF_ERROR;
            break;
        }

        rv = ngx_http_grpc_guard_jwt_add_pkey(ld, pkey, 0);

        if (rv != NGX_CONF_OK) {
            break;
        }
    }

    BIO_free(bio);
    ERR_clear_error();

    return rv;
}


static EVP_PKEY *
ngx_http_grpc_guard_jwt_pem_rsa(u_char *der, long len)
{
    size_t             size;
    EVP_PKEY          *pkey;
    const u_char      *p;
    OSSL_DECODER_CTX  *dctx;

    /* PKCS #1 RSAPublicKey */

    pkey = NULL;

    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", "type-specific",
                                         "RSA", EVP_PKEY_PUBLIC_KEY,
                                         NULL, NULL);
    if (dctx == NULL) {
        return NULL;
    }

    p = der;
    size = (size_t) len;

    if (OSSL_DECODER_from_data(dctx, &p, &size) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

    OSSL_DECODER_CTX_free(dctx);

    return pkey;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_pkey_cleanup(ngx_pool_t *pool, EVP_PKEY *pkey)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        EVP_PKEY_free(pkey);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_grpc_guard_jwt_free_pkey;
    cln->data = pkey;

    return NGX_OK;
}


static void
ngx_http_grpc_guard_jwt_free_pkey(void *data)
{
    EVP_PKEY  *pkey = data;

    EVP_PKEY_free(pkey);
}


static ngx_int_t
ngx_http_grpc_guard_jwt_verify_ctx(ngx_pool_t *pool,
    ngx_http_grpc_guard_jwt_key_t *key)
{
    ngx_uint_t                      i;
    const EVP_MD                   *md;
    EVP_PKEY_CTX                   *pctx;
    ngx_pool_cleanup_t             *cln;
    ngx_http_grpc_guard_jwt_alg_t  *alg;

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_JWT_NALGS; i++) {

        alg = &ngx_http_grpc_guard_jwt_algs[i];

        if (!(key->algs & alg->mask)
            || alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_EDDSA
            || alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_HMAC)
        {
            continue;
        }

        md = EVP_get_digestbyname(ngx_http_grpc_guard_jwt_md_names[alg->md]);
        if (md == NULL) {
            return NGX_ERROR;
        }

        pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
        if (pctx == NULL) {
            return NGX_ERROR;
        }

        cln = ngx_pool_cleanup_add(pool, 0);
        if (cln == NULL) {
            EVP_PKEY_CTX_free(pctx);
            return NGX_ERROR;
        }

        cln->handler = ngx_http_grpc_guard_jwt_free_pkey_ctx;
        cln->data = pctx;

        if (EVP_PKEY_verify_init(pctx) != 1
            || EVP_PKEY_CTX_set_signature_md(pctx, md) != 1)
        {
            return NGX_ERROR;
        }

        if (alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_PSS) {

            /* RFC 7518, 3.5: MGF1 with the same hash, salt as long as it */

            if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
                != 1
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                    RSA_PSS_SALTLEN_DIGEST)
                   != 1
                || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1)
            {
                return NGX_ERROR;
            }

        } else if (alg->kind == NGX_HTTP_GRPC_GUARD_JWT_KIND_RSA
                   && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING)
                      != 1)
        {
            return NGX_ERROR;
        }

        key->verify[i] = pctx;
    }

    return NGX_OK;
}


static void
ngx_http_grpc_guard_jwt_free_pkey_ctx(void *data)
{
    EVP_PKEY_CTX  *pctx = data;

    EVP_PKEY_CTX_free(pctx);
}


static char *
ngx_http_grpc_guard_jwt_add_pkey(ngx_http_grpc_guard_jwt_load_t *ld,
    EVP_PKEY *pkey, ngx_uint_t algs)
{
    int                            bits, len;
    size_t                         n;
    u_char                        *der, *p;
    ngx_uint_t                     type_algs;
    ngx_http_grpc_guard_jwt_key_t  key;
    char                           group[64];

    /*
     * the algorithms the type of the key allows; the caller has made
     * sure that the key is freed with the configuration
     */

    if (EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS")) {
        bits = EVP_PKEY_get_bits(pkey);

        if (bits < NGX_HTTP_GRPC_GUARD_JWT_MIN_RSA_BITS
            || bits > NGX_HTTP_GRPC_GUARD_JWT_MAX_RSA_BITS)
        {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V is an RSA key of %d "
                                               "bits; %d to %d are accepted",
                                               &ld->label, bits,
                                          NGX_HTTP_GRPC_GUARD_JWT_MIN_RSA_BITS,
                                          NGX_HTTP_GRPC_GUARD_JWT_MAX_RSA_BITS);
            return NGX_CONF_ERROR;
        }

        type_algs = EVP_PKEY_is_a(pkey, "RSA-PSS")
                    ? NGX_HTTP_GRPC_GUARD_JWT_PSS : NGX_HTTP_GRPC_GUARD_JWT_RSA;

    } else if (EVP_PKEY_is_a(pkey, "EC")) {

        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &n) != 1) {
            group[0] = '\0';
        }

        if (ngx_strcmp(group, "prime256v1") == 0) {
            type_algs = NGX_HTTP_GRPC_GUARD_JWT_ES256;

        } else if (ngx_strcmp(group, "secp384r1") == 0) {
            type_algs = NGX_HTTP_GRPC_GUARD_JWT_ES384;

        } else if (ngx_strcmp(group, "secp521r1") == 0) {
            type_algs = NGX_HTTP_GRPC_GUARD_JWT_ES512;

        } else {
            ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                               ": %V is on the unsupported "
                                               "curve \"%s\" (P-256, P-384 "
                                               "or P-521)", &ld->label, group);
            return NGX_CONF_ERROR;
        }

    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        type_algs = NGX_HTTP_GRPC_GUARD_JWT_EDDSA;

    } else {
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V has the unsupported type "
                                           "\"%s\"", &ld->label,
                                           EVP_PKEY_get0_type_name(pkey));
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&key, sizeof(ngx_http_grpc_guard_jwt_key_t));

    key.pkey = pkey;
    key.algs = algs ? algs : type_algs;

    if (!(key.algs & type_algs)) {
        return NGX_CONF_ERROR;
    }

    /* the fingerprint of the key, for the cache policy */

    len = i2d_PUBKEY(pkey, NULL);

    if (len <= 0) {
        ERR_clear_error();
        return NGX_CONF_ERROR;
    }

    der = ngx_pnalloc(ld->temp_pool, len);
    if (der == NULL) {
        return NGX_CONF_ERROR;
    }

    p = der;

    if (i2d_PUBKEY(pkey, &p) != len
        || EVP_Digest(der, len, key.digest, NULL, EVP_sha256(), NULL) != 1)
    {
        ERR_clear_error();
        return NGX_CONF_ERROR;
    }

    if (ngx_http_grpc_guard_jwt_verify_ctx(ld->pool, &key) != NGX_OK) {
        ERR_clear_error();
        ngx_http_grpc_guard_jwt_load_error(ld, 1,
                                           ": %V cannot be set up for "
                                           "verification", &ld->label);
        return NGX_CONF_ERROR;
    }

    return ngx_http_grpc_guard_jwt_add_key(ld, &key);
}


static char *
ngx_http_grpc_guard_jwt_add_key(ngx_http_grpc_guard_jwt_load_t *ld,
    ngx_http_grpc_guard_jwt_key_t *key)
{
    ngx_http_grpc_guard_jwt_key_t  *k;

    k = ngx_array_push(ld->keys);
    if (k == NULL) {
        return NGX_CONF_ERROR;
    }

    *k = *key;

    /* the JSON text the "kid" points to is freed after loading */

    if (ld->kid.len) {
        k->kid.data = ngx_pstrdup(ld->pool, &ld->kid);
        if (k->kid.data == NULL) {
            return NGX_CONF_ERROR;
        }

        k->kid.len = ld->kid.len;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_grpc_guard_jwt_load_error(ngx_http_grpc_guard_jwt_load_t *ld,
    ngx_uint_t what, const char *fmt, ...)
{
    u_char      *p;
    va_list      args;
    ngx_uint_t   level;
    u_char       errstr[NGX_MAX_CONF_ERRSTR];

    /*
     * "what": 0 the whole file or set is refused, 1 a key is refused,
     * 2 a key has another use or an unknown type; a key file is refused
     * in each case, a fetched set only in the first (and when no key is
     * left)
     */

    if (ld->quiet) {
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(errstr, errstr + NGX_MAX_CONF_ERRSTR, fmt, args);
    va_end(args);

    if (ld->cf) {
        ngx_conf_log_error(NGX_LOG_EMERG, ld->cf, 0,
                           "grpc_guard_jwt_key_file \"%V\"%*s", ld->file,
                           p - errstr, errstr);
        return;
    }

    level = (what == 2) ? NGX_LOG_NOTICE : NGX_LOG_ERR;

    ngx_log_error(level, ld->log, 0,
                  "grpc guard: JWKS from \"%V\"%*s%s", ld->file,
                  p - errstr, errstr, what ? "; the key is not used" : "");
}


ngx_int_t
ngx_http_grpc_guard_jwt_check_jwks(ngx_log_t *log, ngx_str_t *body,
    void *data)
{
    ngx_http_grpc_guard_jwt_remote_t *jr = data;

    ngx_int_t     rc;
    ngx_str_t    *uri;
    ngx_pool_t   *pool;
    ngx_array_t  *keys;

    /*
     * a reply of the identity provider, in the worker that fetched it:
     * kept only when it has a key that passes the rules; the messages
     * about the keys are logged here, once
     */

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    uri = ngx_http_grpc_guard_remote_uri(jr->remote);

    rc = ngx_http_grpc_guard_jwt_load_remote(log, uri, pool, body, 0, &keys);

    ngx_destroy_pool(pool);

    return rc;
}


ngx_int_t
ngx_http_grpc_guard_jwt_remote_update(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_remote_t *jr, ngx_uint_t force)
{
    ngx_int_t     rc;
    ngx_str_t     text;
    ngx_uint_t    version;
    ngx_pool_t   *pool;
    ngx_array_t  *keys;
    u_char        digest[NGX_HTTP_GRPC_GUARD_SHA256_LEN];

    /*
     * the worker's keys follow the zone: looked at once a second at most
     * (every call when forced), parsed once per version, in a pool of
     * their own that goes when the next version comes; no key is in use
     * between two events, so it goes at once
     */

    if (!force && jr->has_checked
        && (ngx_msec_int_t) (ngx_current_msec - jr->checked) < 1000)
    {
        return NGX_OK;
    }

    jr->checked = ngx_current_msec;
    jr->has_checked = 1;

    version = jr->version;

    rc = ngx_http_grpc_guard_remote_result(r, jr->remote, &version,
                                           &jr->fetched, r->pool, &text);
    if (rc != NGX_OK) {
        return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_grpc_guard_jwt_load_remote(r->connection->log,
                                             ngx_http_grpc_guard_remote_uri(
                                                 jr->remote),
                                             pool, &text, 1, &keys);

    /* a set this worker cannot load is not tried again */

    jr->version = version;

    if (rc != NGX_OK
        || ngx_http_grpc_guard_jwt_set_digest(keys, digest) != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
    }

    if (jr->pool) {
        ngx_destroy_pool(jr->pool);
    }

    jr->pool = pool;
    jr->keys = keys;
    ngx_memcpy(jr->digest, digest, NGX_HTTP_GRPC_GUARD_SHA256_LEN);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "grpc guard jwt: %ui keys from \"%V\", version %ui",
                   keys->nelts, ngx_http_grpc_guard_remote_uri(jr->remote),
                   version);

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_jwt_remote_ready(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_remote_t *jr)
{
    ngx_int_t  rc;

    /*
     * NGX_OK: go on, with the worker's current keys (maybe none, when
     * they cannot be had); NGX_AGAIN: the call waits for a fetch
     */

    if (ngx_http_grpc_guard_jwt_remote_update(r, jr, jr->keys == NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    if (jr->keys == NULL) {

        /* none yet: the call waits for a fetch, its own or another's */

        rc = ngx_http_grpc_guard_remote_fetch(r, jr->remote, jr->version, 0,
                                              0, 1);

    } else if ((ngx_msec_int_t) (ngx_current_msec - jr->fetched)
               >= (ngx_msec_int_t) jr->refresh)
    {
        /*
         * old: one call fetches them again, the others go on (signed:
         * another worker's fetch time may be a little ahead of this
         * worker's clock)
         */

        rc = ngx_http_grpc_guard_remote_fetch(r, jr->remote, jr->version,
                                              jr->refresh, 0, 0);
    }

    if (rc == NGX_OK) {

        /* another worker has fetched them meanwhile */

        rc = ngx_http_grpc_guard_jwt_remote_update(r, jr, 1);

    } else if (rc == NGX_DECLINED) {
        rc = NGX_OK;
    }

    if (rc == NGX_OK) {
        ngx_http_grpc_guard_remote_used(r, jr->remote, jr->keys != NULL);
    }

    return rc;
}


ngx_int_t
ngx_http_grpc_guard_jwt_remote_kid(ngx_http_request_t *r,
    ngx_http_grpc_guard_jwt_remote_t *jr)
{
    ngx_int_t   rc;
    ngx_uint_t  version;

    /*
     * NGX_OK: a newer set is there, to try again; NGX_AGAIN: the call
     * waits for a refetch; NGX_DECLINED: the "kid" stays unknown
     */

    version = jr->version;

    if (ngx_http_grpc_guard_jwt_remote_update(r, jr, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    if (jr->version != version) {
        return NGX_OK;
    }

    rc = ngx_http_grpc_guard_remote_fetch(r, jr->remote, jr->version, 0,
                                          jr->min_refetch, 1);

    if (rc == NGX_OK) {
        return ngx_http_grpc_guard_jwt_remote_update(r, jr, 1);
    }

    return rc;
}


void
ngx_http_grpc_guard_jwt_remote_cleanup(void *data)
{
    ngx_http_grpc_guard_jwt_remote_t *jr = data;

    if (jr->pool) {
        ngx_destroy_pool(jr->pool);
        jr->pool = NULL;
        jr->keys = NULL;
    }
}


static ngx_int_t
ngx_http_grpc_guard_jwt_load_remote(ngx_log_t *log, ngx_str_t *uri,
    ngx_pool_t *pool, ngx_str_t *text, ngx_uint_t quiet, ngx_array_t **keys)
{
    ngx_http_grpc_guard_jwt_load_t  ld;

    ngx_memzero(&ld, sizeof(ngx_http_grpc_guard_jwt_load_t));

    ld.pool = pool;
    ld.temp_pool = pool;
    ld.log = log;
    ld.file = uri;
    ld.remote = 1;
    ld.quiet = quiet;

    ld.keys = ngx_array_create(pool, 4, sizeof(ngx_http_grpc_guard_jwt_key_t));
    if (ld.keys == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_jwt_load_jwks(&ld, text) != NGX_CONF_OK) {
        return NGX_DECLINED;
    }

    if (ld.keys->nelts == 0) {
        if (!quiet) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "grpc guard: JWKS from \"%V\" has no usable key",
                          uri);
        }

        return NGX_DECLINED;
    }

    *keys = ld.keys;

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_jwt_set_digest(ngx_array_t *keys, u_char *digest)
{
    ngx_int_t                       rc;
    EVP_MD_CTX                     *md;
    ngx_uint_t                      i;
    ngx_http_grpc_guard_jwt_key_t  *key;
    uint64_t                        n[2];

    /* what the keys verify with: "kid", algorithms, the key itself */

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        goto done;
    }

    key = keys->elts;

    for (i = 0; i < keys->nelts; i++) {
        n[0] = key[i].kid.len;
        n[1] = key[i].algs;

        if (EVP_DigestUpdate(md, n, sizeof(n)) != 1
            || (key[i].kid.len
                && EVP_DigestUpdate(md, key[i].kid.data, key[i].kid.len)
                   != 1)
            || EVP_DigestUpdate(md, key[i].digest,
                                NGX_HTTP_GRPC_GUARD_SHA256_LEN)
               != 1)
        {
            goto done;
        }
    }

    if (EVP_DigestFinal_ex(md, digest, NULL) == 1) {
        rc = NGX_OK;
    }

done:

    EVP_MD_CTX_free(md);
    ERR_clear_error();

    return rc;
}
