
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * API-key files: every line through ngx_http_grpc_guard_api_key_parse_line
 * as grpc_guard_api_key_file reads them, and every line as a timestamp
 * through ngx_http_grpc_guard_api_key_parse_time.
 *
 * Input: the content of the file.
 *
 * Properties: a key taken has its hash, a client id, roles that are not
 * empty and hold no ','; a time accepted is the one glibc's timegm()
 * computes from its fields and zone, and is after the epoch.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <time.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_fuzz_common.h"


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ngx_fuzz_apikey_time(u_char *p, u_char *last);
static void ngx_fuzz_apikey_check_time(u_char *p, u_char *last, time_t t);
static ngx_int_t ngx_fuzz_apikey_num(u_char *p, size_t n);


static ngx_str_t  ngx_fuzz_apikey_file = ngx_string("/fuzz/api-keys");


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_fuzz_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                         *p, *last, *eol, *line;
    ngx_str_t                      *role;
    ngx_int_t                       rc;
    ngx_uint_t                      n, i, j, nelts;
    ngx_array_t                    *keys;
    ngx_fuzz_conf_t                 fc;
    ngx_http_grpc_guard_api_key_t  *k;

    ngx_fuzz_conf(&fc);

    keys = ngx_array_create(fc.pool, 16,
                            sizeof(ngx_http_grpc_guard_api_key_t));
    if (keys == NULL) {
        abort();
    }

    p = ngx_fuzz_dup(fc.temp_pool, data, size);
    last = p + size;
    n = 0;

    while (p < last) {
        n++;

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        /* each line on its own, exactly as long as it is */

        line = ngx_fuzz_dup(fc.temp_pool, p, eol - p);

        nelts = keys->nelts;

        rc = ngx_http_grpc_guard_api_key_parse_line(&fc.cf,
                                                    &ngx_fuzz_apikey_file, n,
                                                    line, line + (eol - p),
                                                    keys);

        ngx_fuzz_assert(rc == NGX_OK || rc == NGX_ERROR);
        ngx_fuzz_assert(keys->nelts - nelts <= 1);

        if (rc == NGX_OK && keys->nelts > nelts) {
            k = (ngx_http_grpc_guard_api_key_t *) keys->elts + nelts;

            ngx_fuzz_assert(k->client.len > 0);
            ngx_fuzz_assert(k->line == n);
            ngx_fuzz_assert(k->file->len == ngx_fuzz_apikey_file.len);
            ngx_fuzz_assert(k->not_after >= 0);

            for (i = 0; i < k->client.len; i++) {
                ngx_fuzz_assert(k->client.data[i] != ' '
                                && k->client.data[i] != '\t'
                                && k->client.data[i] != '#');
            }

            if (k->roles) {
                ngx_fuzz_assert(k->roles->nelts > 0);

                role = k->roles->elts;

                for (i = 0; i < k->roles->nelts; i++) {
                    ngx_fuzz_assert(role[i].len > 0);

                    for (j = 0; j < role[i].len; j++) {
                        ngx_fuzz_assert(role[i].data[j] != ',');
                    }
                }
            }
        }

        ngx_fuzz_apikey_time(line, line + (eol - p));

        p = eol + 1;
    }

    ngx_fuzz_conf_free(&fc);

    return 0;
}


static void
ngx_fuzz_apikey_time(u_char *p, u_char *last)
{
    time_t  t;

    t = ngx_http_grpc_guard_api_key_parse_time(p, last);

    if (t != NGX_ERROR) {
        ngx_fuzz_apikey_check_time(p, last, t);
    }
}


static void
ngx_fuzz_apikey_check_time(u_char *p, u_char *last, time_t t)
{
    time_t     want;
    ngx_int_t  off, year, month, day, hour, min, sec;
    struct tm  tm;

    static int  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), read here again */

    ngx_fuzz_assert(last - p >= 20);

    year = ngx_fuzz_apikey_num(p, 4);
    month = ngx_fuzz_apikey_num(p + 5, 2);
    day = ngx_fuzz_apikey_num(p + 8, 2);
    hour = ngx_fuzz_apikey_num(p + 11, 2);
    min = ngx_fuzz_apikey_num(p + 14, 2);
    sec = ngx_fuzz_apikey_num(p + 17, 2);

    ngx_fuzz_assert(year >= 1970 && month >= 1 && month <= 12);
    ngx_fuzz_assert(hour <= 23 && min <= 59 && sec <= 60);
    ngx_fuzz_assert(day >= 1
                    && day <= mdays[month - 1]
                              + (month == 2
                                 && (year % 4 == 0
                                     && (year % 100 != 0
                                         || year % 400 == 0))));

    if (last[-1] == 'Z' || last[-1] == 'z') {
        off = 0;

    } else {
        ngx_fuzz_assert(last - p >= 25);
        ngx_fuzz_assert(last[-6] == '+' || last[-6] == '-');
        ngx_fuzz_assert(last[-3] == ':');

        off = (ngx_fuzz_apikey_num(last - 5, 2) * 60
               + ngx_fuzz_apikey_num(last - 2, 2)) * 60;

        if (last[-6] == '-') {
            off = -off;
        }
    }

    ngx_memzero(&tm, sizeof(struct tm));

    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;

    want = timegm(&tm) - off;

    ngx_fuzz_assert(t == want);
    ngx_fuzz_assert(t > 0);
}


static ngx_int_t
ngx_fuzz_apikey_num(u_char *p, size_t n)
{
    ngx_int_t  v;

    for (v = 0; n; n--, p++) {
        ngx_fuzz_assert(*p >= '0' && *p <= '9');
        v = v * 10 + (*p - '0');
    }

    return v;
}
