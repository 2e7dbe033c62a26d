
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * JWS compact tokens: ngx_http_grpc_guard_jwt_split/_parse (base64url
 * segments, JSON header and payload), _check_header, _check_claims, and
 * the ECDSA signature rewrite into DER.
 *
 * Input: one byte choosing the location's JWT settings, then the token.
 *
 * Properties:
 *   - a segment the module decodes is canonical base64url: encoding the
 *     bytes again gives the same text, and a segment that nginx's lenient
 *     decoder reads and that encodes back to itself is accepted;
 *   - a parsed token is header.payload.signature, its signed part is
 *     "header.payload", its signature the decoded third segment;
 *   - an accepted header names an algorithm the location allows;
 *   - accepted claims are not expired, and "sub" has no control character;
 *   - the DER of an ECDSA signature decodes to the same R and S.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <jansson.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_jwt.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_fuzz_jws_segment(ngx_pool_t *pool, ngx_str_t *seg);
static void ngx_fuzz_jws_ecdsa(ngx_pool_t *pool, ngx_str_t *sig);
static ngx_array_t *ngx_fuzz_jws_list(ngx_pool_t *pool, char **s);


static ngx_http_grpc_guard_jwt_conf_t  ngx_fuzz_jws_confs[8];


static char  *ngx_fuzz_jws_issuers[] = {
    "https://issuer.test", "iss2", NULL
};

static char  *ngx_fuzz_jws_audiences[] = { "grpc-guard-tests", "api", NULL };

static char  *ngx_fuzz_jws_require[] = { "sub", "scope", NULL };

static char  *ngx_fuzz_jws_default[] = { "exp", NULL };


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_uint_t                       i;
    ngx_pool_t                      *pool;
    ngx_http_grpc_guard_jwt_conf_t  *jcf;

    ngx_fuzz_init();

    /* as ngx_http_grpc_guard_jwt_init_main() sets them */

    json_set_alloc_funcs(ngx_http_grpc_guard_jwt_json_alloc,
                         ngx_http_grpc_guard_jwt_json_free);

    pool = ngx_fuzz_pool();

    for (i = 0; i < 8; i++) {
        jcf = &ngx_fuzz_jws_confs[i];

        ngx_http_grpc_guard_jwt_create_conf(jcf);

        jcf->algorithms = (i & 1) ? NGX_HTTP_GRPC_GUARD_JWT_DEFAULT_ALGS
                                  : 0x1fff;
        jcf->issuers = (i & 2) ? ngx_fuzz_jws_list(pool, ngx_fuzz_jws_issuers)
                               : NULL;
        jcf->audiences = (i & 4)
                         ? ngx_fuzz_jws_list(pool, ngx_fuzz_jws_audiences)
                         : NULL;
        jcf->require = ngx_fuzz_jws_list(pool, (i & 2) ? ngx_fuzz_jws_require
                                                       : ngx_fuzz_jws_default);
        jcf->leeway = (i & 1) ? 60 : 0;
        jcf->max_lifetime = (i & 4) ? 3600 : 0;
        jcf->max_size = 8192;
    }

    return 0;
}


static ngx_array_t *
ngx_fuzz_jws_list(ngx_pool_t *pool, char **s)
{
    ngx_str_t    *v;
    ngx_array_t  *a;

    a = ngx_array_create(pool, 2, sizeof(ngx_str_t));
    if (a == NULL) {
        abort();
    }

    for ( /* void */ ; *s; s++) {
        v = ngx_array_push(a);
        if (v == NULL) {
            abort();
        }

        v->data = (u_char *) *s;
        v->len = ngx_strlen(*s);
    }

    return a;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                            *reason;
    u_char                          *p;
    size_t                           i;
    ngx_int_t                        rc, split;
    ngx_str_t                        token, hdr, pay, sig;
    ngx_pool_t                      *pool;
    ngx_http_grpc_guard_jwt_ctx_t   *jctx;
    ngx_http_grpc_guard_jwt_conf_t  *jcf;
    ngx_http_grpc_guard_jwt_token_t  tok;

    if (size < 1) {
        return 0;
    }

    jcf = &ngx_fuzz_jws_confs[data[0] & 7];

    pool = ngx_fuzz_pool();

    token.len = size - 1;
    token.data = ngx_fuzz_dup(pool, data + 1, token.len);

    split = ngx_http_grpc_guard_jwt_split(&token, &hdr, &pay, &sig);

    if (split == NGX_OK) {
        ngx_fuzz_assert(hdr.data == token.data);
        ngx_fuzz_assert(hdr.len + pay.len + sig.len + 2 == token.len);
        ngx_fuzz_assert(hdr.len && pay.len);
        ngx_fuzz_assert(ngx_strlchr(sig.data, sig.data + sig.len, '.')
                        == NULL);

        ngx_fuzz_jws_segment(pool, &hdr);
        ngx_fuzz_jws_segment(pool, &pay);
        ngx_fuzz_jws_segment(pool, &sig);

    } else {
        ngx_fuzz_jws_segment(pool, &token);
    }

    /* the token path: as ngx_http_grpc_guard_jwt_verify() calls it */

    jctx = ngx_pcalloc(pool, sizeof(ngx_http_grpc_guard_jwt_ctx_t));
    if (jctx == NULL) {
        abort();
    }

    jctx->token = token;

    ngx_memzero(&tok, sizeof(ngx_http_grpc_guard_jwt_token_t));

    rc = ngx_http_grpc_guard_jwt_parse(pool, jctx, &tok);

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (split != NGX_OK) {
        ngx_fuzz_assert(rc == NGX_DECLINED);
    }

    if (rc != NGX_OK) {
        goto done;
    }

    ngx_fuzz_assert(jctx->parsed && jctx->pooled);
    ngx_fuzz_assert(json_is_object(jctx->header));
    ngx_fuzz_assert(json_is_object(jctx->payload));
    ngx_fuzz_assert(tok.signed_part.data == token.data);
    ngx_fuzz_assert(tok.signed_part.len == hdr.len + 1 + pay.len);
    ngx_fuzz_assert(tok.signature.len == sig.len / 4 * 3
                    + (sig.len % 4 ? sig.len % 4 - 1 : 0));

    ngx_fuzz_jws_ecdsa(pool, &tok.signature);

    reason = ngx_http_grpc_guard_jwt_check_header(jcf, jctx->header, &tok);

    if (reason == NULL) {
        ngx_fuzz_assert(tok.alg != NULL);
        ngx_fuzz_assert(tok.alg->mask & jcf->algorithms);

        if (tok.has_kid) {
            ngx_fuzz_assert(tok.kid.data != NULL || tok.kid.len == 0);
        }
    }

    /* the claims are checked after the signature; any payload is safe */

    reason = ngx_http_grpc_guard_jwt_check_claims(jcf, jctx, &tok);

    if (reason == NULL) {
        if (tok.has_exp) {
            ngx_fuzz_assert((double) ngx_time() < tok.exp + jcf->leeway);
        }

        for (i = 0; i < jctx->sub.len; i++) {
            p = jctx->sub.data + i;
            ngx_fuzz_assert(*p >= 0x20 && *p != 0x7f);
        }

        if (jcf->max_lifetime) {
            ngx_fuzz_assert(tok.has_exp);
        }
    }

done:

    /* the JSON of the token is in the pool (jctx->pooled) */

    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_fuzz_jws_segment(ngx_pool_t *pool, ngx_str_t *seg)
{
    ngx_int_t  rc, lenient;
    ngx_str_t  dec, dec2, enc;

    dec.data = ngx_pnalloc(pool, seg->len + 1);
    dec2.data = ngx_pnalloc(pool, seg->len + 1);
    enc.data = ngx_pnalloc(pool, seg->len + 4);

    if (dec.data == NULL || dec2.data == NULL || enc.data == NULL) {
        abort();
    }

    rc = ngx_http_grpc_guard_jwt_decode(&dec, seg);

    /* nginx's own decoder does not look at the bits past the data */

    lenient = ngx_decode_base64url(&dec2, seg);

    if (rc == NGX_OK) {
        ngx_fuzz_assert(lenient == NGX_OK);
        ngx_fuzz_assert(dec.len == dec2.len);
        ngx_fuzz_assert(ngx_memcmp(dec.data, dec2.data, dec.len) == 0);

        ngx_encode_base64url(&enc, &dec);

        ngx_fuzz_assert(enc.len == seg->len);
        ngx_fuzz_assert(ngx_memcmp(enc.data, seg->data, seg->len) == 0);

        return;
    }

    if (lenient == NGX_OK) {
        ngx_encode_base64url(&enc, &dec2);

        /* refused: then it was not the canonical text of its bytes */

        ngx_fuzz_assert(enc.len != seg->len
                        || ngx_memcmp(enc.data, seg->data, seg->len) != 0);
    }
}


static void
ngx_fuzz_jws_ecdsa(ngx_pool_t *pool, ngx_str_t *sig)
{
    size_t            size, len, i;
    u_char           *der;
    BIGNUM           *r, *s;
    ECDSA_SIG        *esig;
    const BIGNUM     *er, *es;
    const u_char     *p;
    ngx_uint_t        k;

    static size_t  sizes[] = { 32, 48, 66 };

    for (k = 0; k < 3; k++) {
        size = sizes[k];

        if (sig->len != 2 * size) {
            continue;
        }

        /* as ngx_http_grpc_guard_jwt_verify_key(): R and S not zero */

        for (i = 0; i < size && sig->data[i] == 0; i++) { /* void */ }

        if (i == size) {
            return;
        }

        for (i = size; i < 2 * size && sig->data[i] == 0; i++) { /* void */ }

        if (i == 2 * size) {
            return;
        }

        der = ngx_pnalloc(pool, 3 + 2 * (2 + 67));
        if (der == NULL) {
            abort();
        }

        len = ngx_http_grpc_guard_jwt_ecdsa_der(der, sig->data, size);

        ngx_fuzz_assert(len <= 3 + 2 * (2 + 67));

        p = der;
        esig = d2i_ECDSA_SIG(NULL, &p, (long) len);

        ngx_fuzz_assert(esig != NULL);
        ngx_fuzz_assert(p == der + len);

        ECDSA_SIG_get0(esig, &er, &es);

        r = BN_bin2bn(sig->data, (int) size, NULL);
        s = BN_bin2bn(sig->data + size, (int) size, NULL);

        ngx_fuzz_assert(r != NULL && s != NULL);
        ngx_fuzz_assert(BN_cmp(r, er) == 0);
        ngx_fuzz_assert(BN_cmp(s, es) == 0);

        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(esig);

        return;
    }
}
