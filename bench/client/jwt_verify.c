/*
 * What OpenSSL alone needs to verify one JWT signature, for comparison with
 * what the guard spends on a cache miss.  The public key is loaded once;
 * each verify then covers the token's signing input:
 *
 *   oneshot   EVP_DigestVerifyInit + EVP_DigestVerify for every token: how
 *             a JWT library verifies with a key loaded once (the "raw
 *             OpenSSL verify" of the JWT issue and of DESIGN.md section 10)
 *   prepared  SHA-256 of the signing input, then EVP_PKEY_verify on a
 *             context set up once, as `openssl speed` and the guard do;
 *             Ed25519 has no separate hash, so it is oneshot there
 *
 * For ES256 the raw R||S signature is turned into DER first, as OpenSSL
 * wants it.
 *
 *   jwt_verify PUBLIC_KEY.pem TOKEN_FILE N [oneshot|prepared]
 *
 * TOKEN_FILE holds a token, possibly as "authorization: Bearer TOKEN" (the
 * first line is used).  Prints "oneshot: ... T us/verify" and "prepared:
 * ... T us/verify" (or only the one named); under callgrind, run one of them
 * with two values of N and divide the difference of the totals by the
 * difference of the N.
 */

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static void
die(const char *msg)
{
    fprintf(stderr, "jwt_verify: %s\n", msg);
    exit(2);
}


static size_t
b64url_decode(const char *in, size_t len, unsigned char *out)
{
    size_t         i, n;
    unsigned int   acc, bits;
    int            v;
    char           c;

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        c = in[i];
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '-') {
            v = 62;
        } else if (c == '_') {
            v = 63;
        } else {
            die("token: not base64url");
        }
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
        }
    }

    return n;
}


/* DER from the fixed-width R || S of a JWS ECDSA signature */

static size_t
ecdsa_der(unsigned char *sig, size_t siglen, unsigned char *der)
{
    size_t          half, len;
    BIGNUM         *r, *s;
    ECDSA_SIG      *es;
    unsigned char  *dp;

    half = siglen / 2;
    r = BN_bin2bn(sig, half, NULL);
    s = BN_bin2bn(sig + half, half, NULL);
    es = ECDSA_SIG_new();
    if (r == NULL || s == NULL || es == NULL || !ECDSA_SIG_set0(es, r, s)) {
        die("ECDSA_SIG");
    }

    dp = der;
    len = i2d_ECDSA_SIG(es, &dp);
    ECDSA_SIG_free(es);

    return len;
}


static double
elapsed(struct timespec *t0)
{
    struct timespec  t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);

    return (t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}


int
main(int argc, char **argv)
{
    int              type, modes;
    long             i, count;
    char             line[16384], *tok, *dot2, *p;
    size_t           siglen, len, slen;
    double           t;
    FILE            *f;
    EVP_PKEY        *pkey;
    EVP_MD_CTX      *md;
    EVP_PKEY_CTX    *pctx;
    const EVP_MD    *sha256;
    unsigned int     dlen;
    unsigned char    sig[1024], der[1024], *dp, digest[EVP_MAX_MD_SIZE];
    struct timespec  t0;

    modes = 3;

    if (argc == 5 && strcmp(argv[4], "oneshot") == 0) {
        modes = 1;

    } else if (argc == 5 && strcmp(argv[4], "prepared") == 0) {
        modes = 2;

    } else if (argc != 4) {
        die("usage: jwt_verify PUBLIC_KEY.pem TOKEN_FILE N"
            " [oneshot|prepared]");
    }

    count = atol(argv[3]);

    f = fopen(argv[1], "r");
    if (f == NULL || (pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL)) == NULL) {
        die("cannot read the public key");
    }
    fclose(f);

    f = fopen(argv[2], "r");
    if (f == NULL || fgets(line, sizeof(line), f) == NULL) {
        die("cannot read the token");
    }
    fclose(f);

    line[strcspn(line, "\r\n")] = '\0';
    p = strstr(line, "Bearer ");
    tok = p ? p + 7 : line;

    dot2 = strrchr(tok, '.');
    if (dot2 == NULL || strchr(tok, '.') == dot2) {
        die("token: want three segments");
    }

    siglen = b64url_decode(dot2 + 1, strlen(dot2 + 1), sig);
    slen = dot2 - tok;

    type = EVP_PKEY_get_base_id(pkey);
    sha256 = (type == EVP_PKEY_ED25519) ? NULL : EVP_sha256();

    if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC
        && type != EVP_PKEY_ED25519)
    {
        die("unsupported key type");
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        die("out of memory");
    }

    /* oneshot */

    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (i = 0; (modes & 1) && i < count; i++) {
        dp = sig;
        len = siglen;

        if (type == EVP_PKEY_EC) {
            len = ecdsa_der(sig, siglen, der);
            dp = der;
        }

        if (EVP_DigestVerifyInit(md, NULL, sha256, NULL, pkey) != 1) {
            die("EVP_DigestVerifyInit");
        }

        if (EVP_DigestVerify(md, dp, len, (unsigned char *) tok, slen)
            != 1)
        {
            die("the signature does not verify");
        }

        EVP_MD_CTX_reset(md);
    }

    t = elapsed(&t0);
    if (modes & 1) {
        printf("oneshot: %ld verifies in %.3f s: %.2f us/verify\n", count, t,
               count ? t * 1e6 / count : 0.0);
    }

    /* prepared */

    pctx = NULL;

    if (type != EVP_PKEY_ED25519) {
        pctx = EVP_PKEY_CTX_new(pkey, NULL);
        if (pctx == NULL || EVP_PKEY_verify_init(pctx) != 1
            || EVP_PKEY_CTX_set_signature_md(pctx, sha256) != 1
            || (type == EVP_PKEY_RSA
                && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING)
                   != 1))
        {
            die("EVP_PKEY_verify_init");
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (i = 0; (modes & 2) && i < count; i++) {
        dp = sig;
        len = siglen;

        if (type == EVP_PKEY_ED25519) {
            if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) != 1
                || EVP_DigestVerify(md, dp, len, (unsigned char *) tok, slen)
                   != 1)
            {
                die("the signature does not verify");
            }

            EVP_MD_CTX_reset(md);
            continue;
        }

        if (type == EVP_PKEY_EC) {
            len = ecdsa_der(sig, siglen, der);
            dp = der;
        }

        if (EVP_Digest(tok, slen, digest, &dlen, sha256, NULL) != 1
            || EVP_PKEY_verify(pctx, dp, len, digest, dlen) != 1)
        {
            die("the signature does not verify");
        }
    }

    t = elapsed(&t0);
    if (modes & 2) {
        printf("prepared: %ld verifies in %.3f s: %.2f us/verify\n", count,
               t, count ? t * 1e6 / count : 0.0);
    }

    EVP_MD_CTX_free(md);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pkey);

    return 0;
}
