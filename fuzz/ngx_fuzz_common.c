
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <stdio.h>
#include <stdlib.h>

#include "ngx_fuzz_common.h"


static ngx_log_t        ngx_fuzz_log_main;
static ngx_open_file_t  ngx_fuzz_log_file;
static ngx_cycle_t      ngx_fuzz_cycle;


void
ngx_fuzz_init(void)
{
    ngx_uint_t  n;

    static ngx_uint_t  done;

    if (done) {
        return;
    }

    done = 1;

    ngx_pagesize = getpagesize();
    for (n = ngx_pagesize; n >>= 1; ngx_pagesize_shift++) { /* void */ }
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;
    ngx_pid = ngx_getpid();

    /* errors go to the log only, not to stderr as well */
    ngx_use_stderr = 0;

    if (ngx_strerror_init() != NGX_OK) {
        abort();
    }

    ngx_time_init();

    /*
     * every level, debug included: the messages of the code under test
     * are formatted (with the values it was given) and thrown away
     */

    ngx_fuzz_log_file.fd = open("/dev/null", O_WRONLY);
    if (ngx_fuzz_log_file.fd == -1) {
        abort();
    }

    ngx_str_set(&ngx_fuzz_log_file.name, "/dev/null");

    ngx_fuzz_log_main.file = &ngx_fuzz_log_file;
    ngx_fuzz_log_main.log_level = getenv("NGX_FUZZ_QUIET_LOG")
                                  ? NGX_LOG_EMERG : NGX_LOG_DEBUG_ALL;

    ngx_fuzz_cycle.log = &ngx_fuzz_log_main;
    ngx_fuzz_cycle.pool = ngx_create_pool(NGX_CYCLE_POOL_SIZE,
                                          &ngx_fuzz_log_main);
    if (ngx_fuzz_cycle.pool == NULL) {
        abort();
    }

    ngx_str_set(&ngx_fuzz_cycle.hostname, "fuzz");
    ngx_str_set(&ngx_fuzz_cycle.prefix, "/nonexistent/");
    ngx_str_set(&ngx_fuzz_cycle.conf_prefix, "/nonexistent/");

    ngx_cycle = &ngx_fuzz_cycle;

    ngx_queue_init(&ngx_posted_events);
    ngx_queue_init(&ngx_posted_next_events);
    ngx_event_timer_init(&ngx_fuzz_log_main);
}


ngx_log_t *
ngx_fuzz_log(void)
{
    return &ngx_fuzz_log_main;
}


ngx_pool_t *
ngx_fuzz_pool(void)
{
    ngx_pool_t  *pool;

    pool = ngx_create_pool(4096, &ngx_fuzz_log_main);
    if (pool == NULL) {
        abort();
    }

    return pool;
}


ngx_int_t
ngx_fuzz_conf(ngx_fuzz_conf_t *fc)
{
    ngx_memzero(fc, sizeof(ngx_fuzz_conf_t));

    fc->pool = ngx_fuzz_pool();
    fc->temp_pool = ngx_fuzz_pool();

    fc->args = ngx_array_create(fc->temp_pool, 8, sizeof(ngx_str_t));
    if (fc->args == NULL) {
        abort();
    }

    ngx_str_set(&fc->conf_file.file.name, "fuzz.conf");
    fc->conf_file.file.fd = NGX_INVALID_FILE - 1;
    fc->conf_file.file.log = &ngx_fuzz_log_main;
    fc->conf_file.line = 1;

    fc->cf.name = "fuzz";
    fc->cf.args = fc->args;
    fc->cf.cycle = &ngx_fuzz_cycle;
    fc->cf.pool = fc->pool;
    fc->cf.temp_pool = fc->temp_pool;
    fc->cf.conf_file = &fc->conf_file;
    fc->cf.log = &ngx_fuzz_log_main;

    return NGX_OK;
}


void
ngx_fuzz_conf_free(ngx_fuzz_conf_t *fc)
{
    ngx_destroy_pool(fc->temp_pool);
    ngx_destroy_pool(fc->pool);
}


ngx_int_t
ngx_fuzz_conf_args(ngx_fuzz_conf_t *fc, u_char *p, u_char *last)
{
    u_char     *start;
    ngx_str_t  *arg;

    fc->args->nelts = 0;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == last) {
            break;
        }

        start = p;

        while (p < last && *p != ' ' && *p != '\t') {
            p++;
        }

        arg = ngx_array_push(fc->args);
        if (arg == NULL) {
            abort();
        }

        /*
         * the arguments nginx gives a directive end with a NUL and are
         * in cf->pool, where a directive may keep pointers to them
         */

        arg->len = p - start;
        arg->data = ngx_pnalloc(fc->pool, arg->len + 1);
        if (arg->data == NULL) {
            abort();
        }

        ngx_memcpy(arg->data, start, arg->len);
        arg->data[arg->len] = '\0';
    }

    return fc->args->nelts ? NGX_OK : NGX_DECLINED;
}


u_char *
ngx_fuzz_dup(ngx_pool_t *pool, const u_char *data, size_t len)
{
    u_char  *p;

    /* with NGX_DEBUG_PALLOC every allocation is its own malloc() */

    p = ngx_pnalloc(pool, len ? len : 1);
    if (p == NULL) {
        abort();
    }

    if (len) {
        ngx_memcpy(p, data, len);
    }

    return p;
}


ngx_int_t
ngx_fuzz_next(const u_char **p, const u_char *last, u_char sep,
    ngx_str_t *part)
{
    const u_char  *s, *e;

    s = *p;

    if (s > last) {
        part->len = 0;
        part->data = (u_char *) last;
        return NGX_DECLINED;
    }

    e = ngx_strlchr((u_char *) s, (u_char *) last, sep);
    if (e == NULL) {
        e = last;
    }

    part->data = (u_char *) s;
    part->len = e - s;

    *p = e + 1;

    return NGX_OK;
}


ngx_uint_t
ngx_fuzz_utf8_valid(const u_char *s, size_t len)
{
    size_t     i, n, k;
    uint32_t   cp, min;

    /* RFC 3629, written apart from the module's own check */

    for (i = 0; i < len; i += n) {

        if (s[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((s[i] & 0xe0) == 0xc0) {
            n = 2; cp = s[i] & 0x1f; min = 0x80;

        } else if ((s[i] & 0xf0) == 0xe0) {
            n = 3; cp = s[i] & 0x0f; min = 0x800;

        } else if ((s[i] & 0xf8) == 0xf0) {
            n = 4; cp = s[i] & 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = cp << 6 | (s[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


void
ngx_fuzz_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "\n%s:%d: property does not hold: %s\n",
            file, line, expr);
    abort();
}
