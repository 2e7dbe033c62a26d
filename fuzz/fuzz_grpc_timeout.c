
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * grpc-timeout: ngx_http_grpc_guard_parse_timeout, and
 * ngx_http_grpc_guard_format_timeout that writes the deadlines the guard
 * sends upstream.
 *
 * Input: the header value.
 *
 * Properties: accepted exactly when it is 1 to 8 digits and a unit of
 * "HMSmun"; the milliseconds never overflow: they are the digits times
 * the unit (rounded up for "u" and "n"), capped at 2^31 - 1; a deadline
 * written by the guard is valid, at most 9 bytes, and reads back as the
 * same deadline, or up to 999 ms later when written in seconds.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_fuzz_timeout_format(ngx_pool_t *pool, ngx_msec_t ms);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t       i;
    uint64_t     n, want;
    ngx_int_t    rc;
    ngx_str_t    value;
    ngx_uint_t   valid;
    ngx_msec_t   ms;
    ngx_pool_t  *pool;

    pool = ngx_fuzz_pool();

    value.len = size;
    value.data = ngx_fuzz_dup(pool, data, size);

    ms = 12345;

    rc = ngx_http_grpc_guard_parse_timeout(&value, &ms);

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_ERROR);

    /* the grammar, and the value in 128 bits of headroom, apart */

    valid = (size >= 2 && size <= 9);
    n = 0;

    for (i = 0; valid && i + 1 < size; i++) {
        if (data[i] < '0' || data[i] > '9') {
            valid = 0;
            break;
        }

        n = n * 10 + (data[i] - '0');
    }

    want = 0;

    if (valid) {
        switch (data[size - 1]) {
        case 'H': want = n * 3600 * 1000; break;
        case 'M': want = n * 60 * 1000; break;
        case 'S': want = n * 1000; break;
        case 'm': want = n; break;
        case 'u': want = n / 1000 + (n % 1000 != 0); break;
        case 'n': want = n / 1000000 + (n % 1000000 != 0); break;
        default: valid = 0;
        }
    }

    ngx_fuzz_assert((rc == NGX_OK) == valid);

    if (rc == NGX_OK) {
        ngx_fuzz_assert(n <= 99999999);
        ngx_fuzz_assert(want / 3600000 <= n);

        if (want > 0x7fffffff) {
            want = 0x7fffffff;
        }

        ngx_fuzz_assert((uint64_t) ms == want);

        ngx_fuzz_timeout_format(pool, ms);

    } else {
        ngx_fuzz_assert(ms == 12345);
    }

    /* any deadline a configuration can give, from the input's bytes */

    if (size >= 4) {
        ngx_fuzz_timeout_format(pool,
                                ((ngx_msec_t) data[0] << 24
                                 | (ngx_msec_t) data[1] << 16
                                 | (ngx_msec_t) data[2] << 8
                                 | data[3]) & 0x7fffffff);
    }

    ngx_destroy_pool(pool);

    return 0;
}


static void
ngx_fuzz_timeout_format(ngx_pool_t *pool, ngx_msec_t ms)
{
    u_char      *buf, *p;
    ngx_str_t    text;
    ngx_msec_t   back;

    /* ngx_http_grpc_guard_timeout_text() gives it NGX_INT64_LEN + 1 */

    buf = ngx_pnalloc(pool, NGX_INT64_LEN + 1);
    if (buf == NULL) {
        abort();
    }

    p = ngx_http_grpc_guard_format_timeout(buf, ms);

    text.data = buf;
    text.len = p - buf;

    ngx_fuzz_assert(text.len >= 2 && text.len <= 9);
    ngx_fuzz_assert(ngx_http_grpc_guard_parse_timeout(&text, &back)
                    == NGX_OK);
    ngx_fuzz_assert(back >= ms && back - ms <= 999);

    if (ms <= 99999999) {
        ngx_fuzz_assert(back == ms);
    }
}
