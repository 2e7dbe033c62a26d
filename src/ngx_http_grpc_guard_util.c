
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Small helpers every concern uses: looking up, adding and removing
 * headers in nginx's header lists, and reading a file while the
 * configuration is loaded.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


ngx_table_elt_t *
ngx_http_grpc_guard_find_header(ngx_list_t *headers, ngx_str_t *name,
    ngx_uint_t *count)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    found = NULL;
    *count = 0;

    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /* names come lowercase from HTTP/2: the exact compare is quicker */

        if (h[i].hash == 0
            || h[i].key.len != name->len
            || (ngx_strncmp(h[i].key.data, name->data, name->len) != 0
                && ngx_strncasecmp(h[i].key.data, name->data, name->len)
                   != 0))
        {
            continue;
        }

        if (found == NULL) {
            found = &h[i];
        }

        (*count)++;
    }

    return found;
}


ngx_table_elt_t *
ngx_http_grpc_guard_add_header(ngx_list_t *headers, ngx_str_t *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key = *key;
    h->value = *value;

    return h;
}


ngx_int_t
ngx_http_grpc_guard_remove_header(ngx_list_t *list, ngx_table_elt_t *h,
    ngx_pool_t *pool)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part, *prev, *tail;
    ngx_table_elt_t  *elts;

    /*
     * The only code of the module that edits an ngx_list_t's internals.
     * It relies on ngx_list_t as ngx_list.c defines it: a chain of parts
     * from list->part to list->last, each an array of part->nelts
     * elements, and ngx_list_push() appending to list->last while its
     * nelts is below list->nalloc, else starting a new part.
     *
     * r->headers_in keeps pointers to the elements, so none of them
     * may move: the part that holds the element is cut around it
     * instead.  Two rules of ngx_list_t are kept: no part is empty
     * unless it is the only one (the loops over headers do not expect
     * an empty part after the first), and ngx_list_push() never
     * writes past the array of the last part nor over the removed
     * element: the next push starts a new part
     */

    prev = NULL;

    for (part = &list->part; part; prev = part, part = part->next) {

        elts = part->elts;

        if (h < elts || h >= elts + part->nelts) {
            continue;
        }

        i = h - elts;
        n = part->nelts;

        if (n == 1) {

            if (part->next) {

                if (prev) {
                    prev->next = part->next;

                } else {
                    tail = part->next;
                    *part = *tail;

                    if (list->last == tail) {
                        list->last = part;
                    }
                }

            } else if (prev) {
                prev->next = NULL;
                list->last = prev;

            } else {

                /* the only element of the list: a fresh, empty array */

                part->elts = ngx_palloc(pool, list->nalloc * list->size);
                if (part->elts == NULL) {
                    return NGX_ERROR;
                }

                part->nelts = 0;

                return NGX_OK;
            }

        } else if (i == 0) {
            part->elts = &elts[1];
            part->nelts = n - 1;

        } else if (i == n - 1) {
            part->nelts = n - 1;

        } else {
            tail = ngx_palloc(pool, sizeof(ngx_list_part_t));
            if (tail == NULL) {
                return NGX_ERROR;
            }

            tail->elts = &elts[i + 1];
            tail->nelts = n - i - 1;
            tail->next = part->next;

            part->nelts = i;
            part->next = tail;

            if (list->last == part) {
                list->last = tail;
            }
        }

        list->nalloc = list->last->nelts;

        return NGX_OK;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_grpc_guard_read_file(ngx_conf_t *cf, ngx_pool_t *pool,
    ngx_str_t *name, size_t max, ngx_str_t *content)
{
    off_t            size;
    ssize_t          n;
    ngx_int_t        rc;
    ngx_file_t       file;
    ngx_file_info_t  fi;

    /*
     * a whole file, read when the configuration is loaded (key files,
     * a password file): at most "max" bytes, errors named for nginx -t
     */

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = *name;
    file.log = cf->log;

    file.fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", name);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", name);
        goto done;
    }

    size = ngx_file_size(&fi);

    if (size < 0 || (size_t) size > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is larger than %uz bytes", name, max);
        goto done;
    }

    content->data = ngx_pnalloc(pool, size ? (size_t) size : 1);
    if (content->data == NULL) {
        goto done;
    }

    n = (size == 0) ? 0 : ngx_read_file(&file, content->data, (size_t) size,
                                        0);

    if (n == NGX_ERROR) {
        goto done;
    }

    if (n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           ngx_read_file_n " \"%V\" returned only "
                           "%z bytes instead of %O", name, n, size);
        goto done;
    }

    content->len = (size_t) size;

    rc = NGX_OK;

done:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", name);
    }

    return rc;
}


void *
ngx_http_grpc_guard_connection_memo(ngx_connection_t *c,
    ngx_pool_cleanup_pt handler, size_t size, ngx_uint_t create)
{
    ngx_pool_cleanup_t  *cln;

    /*
     * what a concern remembers of a connection's last call: an entry of
     * the connection pool's cleanup list, known by its handler, zeroed
     * when made; r->connection of an HTTP/2 stream shares the pool of the
     * client connection.  NULL: none yet (and "create" not set), or no
     * memory
     */

    for (cln = c->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == handler) {
            return cln->data;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(c->pool, size);
    if (cln == NULL) {
        return NULL;
    }

    ngx_memzero(cln->data, size);

    cln->handler = handler;

    return cln->data;
}


ngx_int_t
ngx_http_grpc_guard_memo_room(ngx_pool_t *pool, u_char **data, size_t *size,
    size_t n, size_t min, size_t max)
{
    size_t   s;
    u_char  *p;

    /*
     * room for "n" bytes (at most "max") in the buffer of a connection
     * memo: "min" at least, doubled when more is needed, up to "max", so
     * that the pool never holds more than twice "max" of them
     */

    if (n <= *size) {
        return NGX_OK;
    }

    s = ngx_max(n, min);
    s = ngx_min(ngx_max(s, 2 * *size), max);

    p = ngx_pnalloc(pool, s);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;
    *size = s;

    return NGX_OK;
}
