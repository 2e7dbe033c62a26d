
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * x-forwarded-client-cert from a trusted proxy:
 * ngx_http_grpc_guard_xfcc_parse.
 *
 * Input: the header's value.
 *
 * Properties: an empty value or one over 16 KiB is refused with a
 * reason; an accepted value gives an identity made of its last element:
 * the principal is the SPIFFE ID, else the first DNS SAN, else the
 * subject (empty only when there is none of them); a SPIFFE ID starts with "spiffe://" and is
 * one of the URI SANs; the SAN lists hold names without blanks or
 * control characters, joined by single spaces; a fingerprint is 64
 * lowercase hex digits; the same value parsed again gives the same
 * identity.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_fuzz_xfcc_list(ngx_str_t *list);
static ngx_uint_t ngx_fuzz_xfcc_in_list(ngx_str_t *list, ngx_str_t *name);
static ngx_uint_t ngx_fuzz_xfcc_same(ngx_str_t *a, ngx_str_t *b);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                        *err;
    u_char                      *s;
    size_t                       i;
    ngx_int_t                    rc, rc2;
    ngx_pool_t                  *pool;
    ngx_str_t                    first;
    ngx_http_grpc_guard_peer_t   peer, again;

    pool = ngx_fuzz_pool();

    s = ngx_fuzz_dup(pool, data, size);

    ngx_memzero(&peer, sizeof(ngx_http_grpc_guard_peer_t));
    err = NULL;

    rc = ngx_http_grpc_guard_xfcc_parse(pool, s, size, &peer, &err);

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (size == 0 || size > 16384) {
        ngx_fuzz_assert(rc == NGX_DECLINED);
    }

    if (rc == NGX_DECLINED) {
        ngx_fuzz_assert(err != NULL && err[0] != '\0');
        goto done;
    }

    /* the identity (none at all is mtls_no_identity for the caller) */

    ngx_fuzz_xfcc_list(&peer.uri_san);
    ngx_fuzz_xfcc_list(&peer.dns_san);

    if (peer.spiffe_id.len) {
        ngx_fuzz_assert(peer.spiffe_id.len > sizeof("spiffe://") - 1);
        ngx_fuzz_assert(ngx_strncmp(peer.spiffe_id.data, "spiffe://",
                                    sizeof("spiffe://") - 1)
                        == 0);
        ngx_fuzz_assert(ngx_fuzz_xfcc_in_list(&peer.uri_san,
                                              &peer.spiffe_id));
        ngx_fuzz_assert(ngx_fuzz_xfcc_same(&peer.principal,
                                           &peer.spiffe_id));

    } else if (peer.dns_san.len) {
        first.data = peer.dns_san.data;
        first.len = peer.dns_first;

        ngx_fuzz_assert(first.len > 0 && first.len <= peer.dns_san.len);
        ngx_fuzz_assert(ngx_fuzz_xfcc_same(&peer.principal, &first));

    } else {
        ngx_fuzz_assert(ngx_fuzz_xfcc_same(&peer.principal, &peer.subject));
    }

    ngx_fuzz_assert(peer.principal.len > 0
                    || (peer.spiffe_id.len == 0 && peer.dns_san.len == 0
                        && peer.subject.len == 0));

    if (peer.fingerprint.len) {
        ngx_fuzz_assert(peer.fingerprint.len == 64);

        for (i = 0; i < peer.fingerprint.len; i++) {
            ngx_fuzz_assert((peer.fingerprint.data[i] >= '0'
                             && peer.fingerprint.data[i] <= '9')
                            || (peer.fingerprint.data[i] >= 'a'
                                && peer.fingerprint.data[i] <= 'f'));
        }
    }

    /* the same value, the same identity */

    ngx_memzero(&again, sizeof(ngx_http_grpc_guard_peer_t));

    s = ngx_fuzz_dup(pool, data, size);

    rc2 = ngx_http_grpc_guard_xfcc_parse(pool, s, size, &again, &err);

    ngx_fuzz_assert(rc2 == NGX_OK);
    ngx_fuzz_assert(ngx_fuzz_xfcc_same(&again.principal, &peer.principal));
    ngx_fuzz_assert(ngx_fuzz_xfcc_same(&again.spiffe_id, &peer.spiffe_id));
    ngx_fuzz_assert(ngx_fuzz_xfcc_same(&again.uri_san, &peer.uri_san));
    ngx_fuzz_assert(ngx_fuzz_xfcc_same(&again.dns_san, &peer.dns_san));
    ngx_fuzz_assert(ngx_fuzz_xfcc_same(&again.subject, &peer.subject));
    ngx_fuzz_assert(ngx_fuzz_xfcc_same(&again.fingerprint,
                                       &peer.fingerprint));

done:

    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_fuzz_xfcc_list(ngx_str_t *list)
{
    size_t  i;

    /* names without blanks or control characters, one space between */

    if (list->len == 0) {
        return;
    }

    ngx_fuzz_assert(list->data[0] != ' ');
    ngx_fuzz_assert(list->data[list->len - 1] != ' ');

    for (i = 0; i < list->len; i++) {
        ngx_fuzz_assert(list->data[i] > 0x20 || list->data[i] == ' ');
        ngx_fuzz_assert(list->data[i] != 0x7f);

        if (list->data[i] == ' ') {
            ngx_fuzz_assert(list->data[i + 1] != ' ');
        }
    }
}


static ngx_uint_t
ngx_fuzz_xfcc_in_list(ngx_str_t *list, ngx_str_t *name)
{
    u_char  *p, *last, *end;

    p = list->data;
    last = list->data + list->len;

    while (p < last) {
        end = ngx_strlchr(p, last, ' ');
        if (end == NULL) {
            end = last;
        }

        if ((size_t) (end - p) == name->len
            && ngx_memcmp(p, name->data, name->len) == 0)
        {
            return 1;
        }

        p = end + 1;
    }

    return 0;
}


static ngx_uint_t
ngx_fuzz_xfcc_same(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}
