
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * API keys: files of SHA-256 key hashes with their client ids, roles
 * and expiry, loaded at configuration time, and the lookup of the key a
 * call presents.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ngx_http_grpc_guard_module.h"


/* the longest API key looked at; longer ones are unknown keys */
#define NGX_HTTP_GRPC_GUARD_API_KEY_MAX  4096

#define NGX_HTTP_GRPC_GUARD_API_KEY_MAX_FILE  (64 * 1024 * 1024)


static int ngx_libc_cdecl ngx_http_grpc_guard_api_key_cmp(const void *one,
    const void *two);
static ngx_http_grpc_guard_api_key_t *ngx_http_grpc_guard_api_key_find(
    ngx_array_t *keys, u_char *digest);


static ngx_str_t  ngx_http_grpc_guard_api_key_message =
    ngx_string("unauthenticated");
static ngx_str_t  ngx_http_grpc_guard_api_key_tls_message =
    ngx_string("transport security required");


char *
ngx_http_grpc_guard_api_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char                         *p, *last, *eol;
    ngx_str_t                      *value, file, content;
    ngx_uint_t                      line, i;
    ngx_http_grpc_guard_api_key_t  *k;

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (glcf->api_keys == NGX_CONF_UNSET_PTR) {
        glcf->api_keys = ngx_array_create(cf->pool, 16,
                                       sizeof(ngx_http_grpc_guard_api_key_t));
        if (glcf->api_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* read at configuration time, as nginx reads its own files */

    if (ngx_http_grpc_guard_read_file(cf, cf->temp_pool, &file,
                                      NGX_HTTP_GRPC_GUARD_API_KEY_MAX_FILE,
                                      &content)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    p = content.data;
    last = p + content.len;
    line = 0;

    while (p < last) {
        line++;

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        if (ngx_http_grpc_guard_api_key_parse_line(cf, &file, line, p, eol,
                                                   glcf->api_keys)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        p = eol + 1;
    }

    /* sorted by hash for a binary search; a hash may appear once */

    ngx_qsort(glcf->api_keys->elts, glcf->api_keys->nelts,
              sizeof(ngx_http_grpc_guard_api_key_t),
              ngx_http_grpc_guard_api_key_cmp);

    k = glcf->api_keys->elts;

    for (i = 1; i < glcf->api_keys->nelts; i++) {
        if (ngx_memcmp(k[i].hash, k[i - 1].hash, 32) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate API key hash in \"%V\" line %ui "
                               "(also in \"%V\" line %ui)",
                               k[i].file, k[i].line, k[i - 1].file,
                               k[i - 1].line);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_api_key_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->api_keys, prev->api_keys, NULL);
    ngx_conf_merge_str_value(conf->api_key_header, prev->api_key_header,
                             "x-api-key");

    if (conf->enable
        && conf->api_keys == NULL
        && (conf->auth & NGX_HTTP_GRPC_GUARD_AUTH_API_KEY))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_auth api_key\" needs "
                           "\"grpc_guard_api_key_file\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_http_grpc_guard_api_key_configured(ngx_http_grpc_guard_loc_conf_t *glcf)
{
    return glcf->api_keys != NULL;
}


ngx_int_t
ngx_http_grpc_guard_api_key_parse_line(ngx_conf_t *cf, ngx_str_t *file,
    ngx_uint_t line, u_char *p, u_char *last, ngx_array_t *keys)
{
    u_char                         *start, *comma;
    ngx_int_t                       c1, c2;
    ngx_str_t                       word, *role, *name;
    ngx_uint_t                      i, n;
    ngx_http_grpc_guard_api_key_t  *k;

    /* "sha256:HEX CLIENT_ID [role,...] [not_after=RFC3339]", "#" comments */

    for (start = p; start < last; start++) {
        if (*start == '#') {
            last = start;
            break;
        }
    }

    k = NULL;
    n = 0;

    name = ngx_palloc(cf->pool, sizeof(ngx_str_t));
    if (name == NULL) {
        return NGX_ERROR;
    }

    *name = *file;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == '\r')) {
            p++;
        }

        if (p == last) {
            break;
        }

        start = p;

        while (p < last && *p != ' ' && *p != '\t' && *p != '\r') {
            p++;
        }

        word.data = start;
        word.len = p - start;

        switch (n++) {

        case 0:
            if (word.len != sizeof("sha256:") - 1 + 64
                || ngx_strncmp(word.data, "sha256:", 7) != 0)
            {
                goto invalid;
            }

            k = ngx_array_push(keys);
            if (k == NULL) {
                return NGX_ERROR;
            }

            ngx_memzero(k, sizeof(ngx_http_grpc_guard_api_key_t));

            k->file = name;
            k->line = line;

            for (i = 0; i < 32; i++) {
                c1 = ngx_hextoi(&word.data[7 + 2 * i], 1);
                c2 = ngx_hextoi(&word.data[8 + 2 * i], 1);

                if (c1 == NGX_ERROR || c2 == NGX_ERROR) {
                    goto invalid;
                }

                k->hash[i] = (u_char) (c1 << 4 | c2);
            }

            break;

        case 1:
            k->client.data = ngx_pstrdup(cf->pool, &word);
            if (k->client.data == NULL) {
                return NGX_ERROR;
            }

            k->client.len = word.len;
            break;

        default:

            if (word.len > sizeof("not_after=") - 1
                && ngx_strncmp(word.data, "not_after=", 10) == 0)
            {
                if (k->not_after) {
                    goto invalid;
                }

                k->not_after = ngx_http_grpc_guard_api_key_parse_time(
                                                 word.data + 10, p);

                if (k->not_after == NGX_ERROR) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid not_after \"%V\" in API key "
                                       "file \"%V\" line %ui: it must be "
                                       "RFC 3339 with a zone, such as "
                                       "2027-01-01T00:00:00Z",
                                       &word, file, line);
                    return NGX_ERROR;
                }

                break;
            }

            if (k->roles || n != 3) {
                goto invalid;
            }

            k->roles = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
            if (k->roles == NULL) {
                return NGX_ERROR;
            }

            while (word.len) {
                comma = ngx_strlchr(word.data, word.data + word.len, ',');
                if (comma == NULL) {
                    comma = word.data + word.len;
                }

                if (comma == word.data) {
                    goto invalid;
                }

                role = ngx_array_push(k->roles);
                if (role == NULL) {
                    return NGX_ERROR;
                }

                role->len = comma - word.data;
                role->data = ngx_pnalloc(cf->pool, role->len);
                if (role->data == NULL) {
                    return NGX_ERROR;
                }

                ngx_memcpy(role->data, word.data, role->len);

                if (comma == word.data + word.len) {
                    break;
                }

                word.len -= role->len + 1;
                word.data = comma + 1;

                if (word.len == 0) {
                    goto invalid;
                }
            }

            break;
        }
    }

    if (n == 1) {
        goto invalid;
    }

    return NGX_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid line %ui in API key file \"%V\": expected "
                       "\"sha256:<64 hex digits> CLIENT_ID [role,...] "
                       "[not_after=TIME]\"", line, file);

    return NGX_ERROR;
}


time_t
ngx_http_grpc_guard_api_key_parse_time(u_char *p, u_char *last)
{
    time_t      t;
    ngx_int_t   year, month, day, hour, min, sec, off, y, m, era, yoe, doy;
    ngx_uint_t  i;

    static u_char  days[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */

    if (last - p < 20
        || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != 't')
        || p[13] != ':' || p[16] != ':')
    {
        return NGX_ERROR;
    }

    year = ngx_atoi(p, 4);
    month = ngx_atoi(p + 5, 2);
    day = ngx_atoi(p + 8, 2);
    hour = ngx_atoi(p + 11, 2);
    min = ngx_atoi(p + 14, 2);
    sec = ngx_atoi(p + 17, 2);

    if (year < 1970 || month < 1 || month > 12 || day < 1
        || day > days[month - 1] || hour < 0 || hour > 23
        || min < 0 || min > 59 || sec < 0 || sec > 60)
    {
        return NGX_ERROR;
    }

    if (month == 2 && day == 29
        && (year % 4 != 0 || (year % 100 == 0 && year % 400 != 0)))
    {
        return NGX_ERROR;
    }

    p += 19;

    if (*p == '.') {
        for (i = 0, p++; p < last && *p >= '0' && *p <= '9'; p++, i++) {
            /* void */
        }

        if (i == 0) {
            return NGX_ERROR;
        }
    }

    if (p == last) {
        return NGX_ERROR;
    }

    if ((*p == 'Z' || *p == 'z') && p + 1 == last) {
        off = 0;

    } else if ((*p == '+' || *p == '-') && last - p == 6 && p[3] == ':') {
        off = ngx_atoi(p + 1, 2);
        m = ngx_atoi(p + 4, 2);

        if (off == NGX_ERROR || m == NGX_ERROR || off > 23 || m > 59) {
            return NGX_ERROR;
        }

        off = (off * 60 + m) * 60;

        if (*p == '-') {
            off = -off;
        }

    } else {
        return NGX_ERROR;
    }

    /* days since the epoch of the proleptic Gregorian date */

    y = (month <= 2) ? year - 1 : year;
    m = (month <= 2) ? month + 9 : month - 3;
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * m + 2) / 5 + day - 1;

    t = (time_t) (era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy
                  - 719468);

    t = t * 86400 + hour * 3600 + min * 60 + sec - off;

    /* 0 is "no not_after": the epoch itself and earlier are refused */

    return (t > 0) ? t : NGX_ERROR;
}


static int ngx_libc_cdecl
ngx_http_grpc_guard_api_key_cmp(const void *one, const void *two)
{
    const ngx_http_grpc_guard_api_key_t  *a = one;
    const ngx_http_grpc_guard_api_key_t  *b = two;

    return ngx_memcmp(a->hash, b->hash, 32);
}


static ngx_http_grpc_guard_api_key_t *
ngx_http_grpc_guard_api_key_find(ngx_array_t *keys, u_char *digest)
{
    ngx_int_t                       rc;
    ngx_uint_t                      lo, hi, mid;
    ngx_http_grpc_guard_api_key_t  *k;

    k = keys->elts;
    lo = 0;
    hi = keys->nelts;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        rc = ngx_memcmp(digest, k[mid].hash, 32);

        if (rc == 0) {
            return &k[mid];
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_grpc_guard_api_key_strip(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_uint_t        n;
    ngx_table_elt_t  *h;

    if (glcf->forward_credentials) {
        return NGX_OK;
    }

    for ( ;; ) {
        h = ngx_http_grpc_guard_find_header(&r->headers_in.headers,
                                            &glcf->api_key_header, &n);
        if (h == NULL) {
            return NGX_OK;
        }

        if (ngx_http_grpc_guard_take_header(r, ctx, h) != NGX_OK) {
            return NGX_ERROR;
        }
    }
}


ngx_int_t
ngx_http_grpc_guard_api_key_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res)
{
    ngx_uint_t                      n;
    ngx_table_elt_t                *found;
    ngx_http_grpc_guard_api_key_t  *k;
    u_char                          digest[EVP_MAX_MD_SIZE];

    res->message = &ngx_http_grpc_guard_api_key_message;

    found = ngx_http_grpc_guard_credential(r, ctx, &glcf->api_key_header, &n);

    if (n == 0) {
        res->reason = "api_key_missing";
        return NGX_DECLINED;
    }

    res->presented = 1;

    /*
     * the keys the guard consumes are not sent upstream, a repeated one
     * neither, whatever the outcome: another method may still let the
     * call through
     */

    if (ngx_http_grpc_guard_api_key_strip(r, glcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (n > 1) {
        res->reason = "api_key_duplicate";
        return NGX_DECLINED;
    }

    if (glcf->require_tls && r->connection->ssl == NULL) {
        res->reason = "tls_required";
        res->message = &ngx_http_grpc_guard_api_key_tls_message;
        return NGX_DECLINED;
    }

    if (glcf->api_keys == NULL
        || found->value.len == 0
        || found->value.len > NGX_HTTP_GRPC_GUARD_API_KEY_MAX)
    {
        res->reason = "api_key_unknown";
        return NGX_DECLINED;
    }

    if (EVP_Digest(found->value.data, found->value.len, digest, NULL,
                   EVP_sha256(), NULL)
        == 0)
    {
        return NGX_ERROR;
    }

    /*
     * keys are looked up by their SHA-256: what a comparison could leak
     * about a hash tells nothing about a key
     */

    k = ngx_http_grpc_guard_api_key_find(glcf->api_keys, digest);

    if (k == NULL) {
        res->reason = "api_key_unknown";
        return NGX_DECLINED;
    }

    if (k->not_after && ngx_time() > k->not_after) {
        res->reason = "api_key_expired";
        return NGX_DECLINED;
    }

    ctx->call.api_key = k;

    return NGX_OK;
}
