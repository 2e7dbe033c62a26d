
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * What the libFuzzer targets share: a process set up just enough for
 * the module's parsers (time, page size, a log to /dev/null, a cycle),
 * pools, a configuration context and a request made by hand.
 */


#ifndef _NGX_FUZZ_COMMON_H_INCLUDED_
#define _NGX_FUZZ_COMMON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <stdint.h>


/* a property of the code under test does not hold: report and abort */
#define ngx_fuzz_assert(expr)                                                 \
    do {                                                                      \
        if (!(expr)) {                                                        \
            ngx_fuzz_fail(__FILE__, __LINE__, #expr);                         \
        }                                                                     \
    } while (0)


typedef struct {
    ngx_pool_t                 *pool;
    ngx_pool_t                 *temp_pool;
    ngx_conf_t                  cf;
    ngx_conf_file_t             conf_file;
    ngx_array_t                *args;
} ngx_fuzz_conf_t;


/* the state every target starts from, made once per process */
void ngx_fuzz_init(void);

ngx_log_t *ngx_fuzz_log(void);
ngx_pool_t *ngx_fuzz_pool(void);

/* a configuration context with its own pools; ngx_fuzz_conf_free() */
ngx_int_t ngx_fuzz_conf(ngx_fuzz_conf_t *fc);
void ngx_fuzz_conf_free(ngx_fuzz_conf_t *fc);

/* splits a directive line into NUL-terminated arguments, as nginx does */
ngx_int_t ngx_fuzz_conf_args(ngx_fuzz_conf_t *fc, u_char *p, u_char *last);

/* a copy of the bytes into exactly len bytes of the pool (ASan sees past) */
u_char *ngx_fuzz_dup(ngx_pool_t *pool, const u_char *data, size_t len);

/* the next part of the input, up to a separator byte, or the rest */
ngx_int_t ngx_fuzz_next(const u_char **p, const u_char *last, u_char sep,
    ngx_str_t *part);

/* whether s is valid UTF-8 (RFC 3629) */
ngx_uint_t ngx_fuzz_utf8_valid(const u_char *s, size_t len);

void ngx_fuzz_fail(const char *file, int line, const char *expr);


#endif /* _NGX_FUZZ_COMMON_H_INCLUDED_ */
