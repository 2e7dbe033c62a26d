
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Metrics, the configuration: the grpc_guard_metrics* directives, the
 * merge that names a location's services, and the zone, whose names the
 * master adds when it loads a configuration.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"
#include "ngx_http_grpc_guard_metrics.h"


static ngx_http_grpc_guard_metrics_main_t *ngx_http_grpc_guard_metrics_main(
    ngx_conf_t *cf);
static ngx_http_grpc_guard_metrics_loc_t *ngx_http_grpc_guard_metrics_loc(
    ngx_conf_t *cf, ngx_http_grpc_guard_loc_conf_t *glcf);
static ngx_http_grpc_guard_metrics_name_t *ngx_http_grpc_guard_metrics_find(
    ngx_conf_t *cf, ngx_http_grpc_guard_metrics_main_t *mm, ngx_uint_t kind,
    ngx_str_t *name0, ngx_str_t *name1, ngx_uint_t *index);
static ngx_int_t ngx_http_grpc_guard_metrics_add_service(ngx_array_t *a,
    ngx_str_t *text);
static int ngx_http_grpc_guard_metrics_cmp_service(const void *one,
    const void *two);
static ngx_int_t ngx_http_grpc_guard_metrics_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_grpc_guard_metrics_resolve(ngx_shm_zone_t *shm_zone,
    ngx_http_grpc_guard_metrics_main_t *mm);
static ngx_http_grpc_guard_metrics_shname_t *
    ngx_http_grpc_guard_metrics_shname(ngx_http_grpc_guard_metrics_main_t *mm,
    ngx_uint_t kind, ngx_str_t *name0, ngx_str_t *name1);
static uint32_t ngx_http_grpc_guard_metrics_layout(void);


static ngx_str_t  ngx_http_grpc_guard_metrics_other = ngx_string("other");

ngx_str_t  ngx_http_grpc_guard_metrics_zone_name =
    ngx_string("grpc_guard_metrics");


char *
ngx_http_grpc_guard_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_grpc_guard_metrics_loc_t   *lm;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    mm = ngx_http_grpc_guard_metrics_main(cf);
    lm = ngx_http_grpc_guard_metrics_loc(cf, glcf);

    if (mm == NULL || lm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lm->handler) {
        return "is duplicate";
    }

    lm->handler = 1;
    mm->enabled = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_grpc_guard_metrics_handler;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ssize_t                              size;
    ngx_str_t                           *value;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    mm = ngx_http_grpc_guard_metrics_main(cf);
    if (mm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mm->size) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone size \"%V\" is too small, it must be at "
                           "least %uzk", &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    mm->size = size;
    mm->enabled = 1;

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_metrics_requests(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_str_t                          *value;
    ngx_http_grpc_guard_metrics_loc_t  *lm;

    lm = ngx_http_grpc_guard_metrics_loc(cf, glcf);
    if (lm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lm->requests != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        lm->requests = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        lm->requests = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"on\" or "
                           "\"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_grpc_guard_metrics_services(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char                             *p;
    ngx_str_t                          *value, *s;
    ngx_uint_t                          i;
    ngx_http_grpc_guard_metrics_loc_t  *lm;

    lm = ngx_http_grpc_guard_metrics_loc(cf, glcf);
    if (lm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lm->services == NGX_CONF_UNSET_PTR) {
        lm->services = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (lm->services == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        /* a service as gRPC names it: "pkg.Service", no "/" */

        for (p = value[i].data; p < value[i].data + value[i].len; p++) {
            if (*p <= 0x20 || *p >= 0x7f || *p == '/' || *p == '"'
                || *p == '\\')
            {
                break;
            }
        }

        if (value[i].len == 0
            || value[i].len > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME
            || p != value[i].data + value[i].len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid service name \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(lm->services);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_http_grpc_guard_metrics_name(ngx_conf_t *cf, ngx_uint_t kind,
    ngx_str_t *name)
{
    ngx_uint_t                           index;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    /*
     * a limit or a Redis node of the configuration: its number for
     * ngx_http_grpc_guard_metrics_limit() and _redis(); a number past
     * the end (nothing is counted) when there is no memory
     */

    mm = ngx_http_grpc_guard_metrics_main(cf);

    if (mm == NULL
        || ngx_http_grpc_guard_metrics_find(cf, mm, kind, name, NULL, &index)
           == NULL)
    {
        return NGX_HTTP_GRPC_GUARD_METRICS_NONE;
    }

    return index;
}


char *
ngx_http_grpc_guard_metrics_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    ngx_str_t                               *s, *sp, server;
    ngx_uint_t                               i, j;
    ngx_array_t                              services;
    ngx_http_core_srv_conf_t                *cscf;
    ngx_http_core_loc_conf_t                *clcf;
    ngx_http_grpc_guard_pattern_t           *pattern;
    ngx_http_grpc_guard_main_conf_t         *gmcf;
    ngx_http_grpc_guard_metrics_loc_t       *lm, *pm, *m;
    ngx_http_grpc_guard_metrics_main_t      *mm;
    ngx_http_grpc_guard_metrics_service_t   *t;

    static ngx_http_grpc_guard_metrics_loc_t  unset = {
        NGX_CONF_UNSET, NGX_CONF_UNSET_PTR, NULL, 0, NULL, 0, 0
    };

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);
    mm = gmcf->metrics;

    if (mm == NULL || !mm->enabled) {
        conf->metrics = NULL;
        return NGX_CONF_OK;
    }

    lm = conf->metrics;
    pm = prev->metrics;

    /* every level gets its own record: the table is the location's */

    m = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_loc_t));
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    m->requests = lm ? lm->requests : NGX_CONF_UNSET;
    m->services = lm ? lm->services : NGX_CONF_UNSET_PTR;
    m->handler = lm ? lm->handler : 0;

    if (pm == NULL) {
        pm = &unset;
    }

    ngx_conf_merge_value(m->requests, pm->requests, 1);
    ngx_conf_merge_ptr_value(m->services, pm->services, NULL);

    conf->metrics = m;

    if (m->handler && conf->enable) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_metrics\" is in a location where "
                           "the guard is on: add \"grpc_guard off;\" to it");
        return NGX_CONF_ERROR;
    }

    if (!conf->enable || !m->requests) {
        return NGX_CONF_OK;
    }

    /*
     * the services the location names get their own series: those of
     * grpc_guard_metrics_services, of the public and ACL patterns, and
     * of the location's own prefix ("/pkg.Service/"); other calls are
     * counted as service "other"
     */

    if (ngx_array_init(&services, cf->temp_pool, 8, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (m->services) {
        s = m->services->elts;

        for (i = 0; i < m->services->nelts; i++) {
            sp = ngx_array_push(&services);
            if (sp == NULL) {
                return NGX_CONF_ERROR;
            }

            *sp = s[i];
        }
    }

    if (conf->public) {
        pattern = conf->public->elts;

        for (i = 0; i < conf->public->nelts; i++) {
            if (ngx_http_grpc_guard_metrics_add_service(&services,
                                                        &pattern[i].text)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }
    }

    if (conf->acl_rules) {
        for (i = 0; i < conf->acl_rules->nelts; i++) {
            pattern = ngx_http_grpc_guard_acl_pattern(conf->acl_rules, i);

            if (ngx_http_grpc_guard_metrics_add_service(&services,
                                                        &pattern->text)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (!clcf->named && !clcf->noname
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && ngx_http_grpc_guard_metrics_add_service(&services, &clcf->name)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_qsort(services.elts, services.nelts, sizeof(ngx_str_t),
              ngx_http_grpc_guard_metrics_cmp_service);

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    server = cscf->server_name;

    if (server.len > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME) {
        server.len = NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME;
    }

    m->table = ngx_palloc(cf->pool, (services.nelts + 1)
                              * sizeof(ngx_http_grpc_guard_metrics_service_t));
    if (m->table == NULL) {
        return NGX_CONF_ERROR;
    }

    s = services.elts;
    t = m->table;
    j = 0;

    for (i = 0; i < services.nelts; i++) {

        if (j && s[i].len == t[j - 1].service.len
            && ngx_strncmp(s[i].data, t[j - 1].service.data, s[i].len) == 0)
        {
            continue;
        }

        t[j].service = s[i];
        t[j].pair = ngx_http_grpc_guard_metrics_find(cf, mm,
                                          NGX_HTTP_GRPC_GUARD_METRICS_PAIR,
                                          &server, &s[i], NULL);
        if (t[j].pair == NULL) {
            return NGX_CONF_ERROR;
        }

        j++;
    }

    m->ntable = j;

    m->other = ngx_http_grpc_guard_metrics_find(cf, mm,
                                            NGX_HTTP_GRPC_GUARD_METRICS_PAIR,
                                            &server,
                                            &ngx_http_grpc_guard_metrics_other,
                                            NULL);
    if (m->other == NULL) {
        return NGX_CONF_ERROR;
    }

    m->count = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_add_service(ngx_array_t *a, ngx_str_t *text)
{
    u_char     *p, *last;
    ngx_str_t  *s;

    /* "/pkg.Service/..." names "pkg.Service"; "/pkg.*" or "*" none */

    if (text->len < 3 || text->data[0] != '/') {
        return NGX_OK;
    }

    last = text->data + text->len;

    for (p = text->data + 1; p < last && *p != '/'; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
            return NGX_OK;
        }
    }

    if (p == last
        || p == text->data + 1
        || p - text->data - 1 > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME)
    {
        return NGX_OK;
    }

    s = ngx_array_push(a);
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->data = text->data + 1;
    s->len = p - s->data;

    return NGX_OK;
}


static int
ngx_http_grpc_guard_metrics_cmp_service(const void *one, const void *two)
{
    ngx_str_t  *a = (ngx_str_t *) one;
    ngx_str_t  *b = (ngx_str_t *) two;

    return (int) ngx_memn2cmp(a->data, b->data, a->len, b->len);
}


static ngx_http_grpc_guard_metrics_main_t *
ngx_http_grpc_guard_metrics_main(ngx_conf_t *cf)
{
    ngx_uint_t                           i;
    ngx_http_grpc_guard_main_conf_t     *gmcf;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);

    if (gmcf->metrics) {
        return gmcf->metrics;
    }

    mm = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_main_t));
    if (mm == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mm->size = 0;
     *     mm->enabled = 0;
     *     mm->zone = NULL;
     *     mm->sh = NULL;
     */

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_KINDS; i++) {
        if (ngx_array_init(&mm->names[i], cf->pool, 8, sizeof(void *))
            != NGX_OK)
        {
            return NULL;
        }
    }

    gmcf->metrics = mm;

    return mm;
}


static ngx_http_grpc_guard_metrics_loc_t *
ngx_http_grpc_guard_metrics_loc(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *glcf)
{
    ngx_http_grpc_guard_metrics_loc_t  *lm;

    /* the level's own settings, made by its first metrics directive */

    if (glcf->metrics) {
        return glcf->metrics;
    }

    lm = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_loc_t));
    if (lm == NULL) {
        return NULL;
    }

    lm->requests = NGX_CONF_UNSET;
    lm->services = NGX_CONF_UNSET_PTR;

    glcf->metrics = lm;

    return lm;
}


static ngx_http_grpc_guard_metrics_name_t *
ngx_http_grpc_guard_metrics_find(ngx_conf_t *cf,
    ngx_http_grpc_guard_metrics_main_t *mm, ngx_uint_t kind,
    ngx_str_t *name0, ngx_str_t *name1, ngx_uint_t *index)
{
    ngx_str_t                             none;
    ngx_uint_t                            i;
    ngx_http_grpc_guard_metrics_name_t   *n, **names, **np;

    ngx_str_null(&none);

    if (name1 == NULL) {
        name1 = &none;
    }

    names = mm->names[kind].elts;

    for (i = 0; i < mm->names[kind].nelts; i++) {
        n = names[i];

        /* an empty name has no data: nothing to compare */

        if (n->name[0].len == name0->len
            && n->name[1].len == name1->len
            && (name0->len == 0
                || ngx_strncmp(n->name[0].data, name0->data, name0->len)
                   == 0)
            && (name1->len == 0
                || ngx_strncmp(n->name[1].data, name1->data, name1->len)
                   == 0))
        {
            goto found;
        }
    }

    n = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_metrics_name_t));
    if (n == NULL) {
        return NULL;
    }

    np = ngx_array_push(&mm->names[kind]);
    if (np == NULL) {
        return NULL;
    }

    *np = n;

    n->kind = kind;
    n->name[0] = *name0;
    n->name[1] = *name1;

    if (n->name[0].len > NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME) {
        n->name[0].len = NGX_HTTP_GRPC_GUARD_METRICS_MAX_NAME;
    }

found:

    if (index) {
        *index = i;
    }

    return n;
}


ngx_int_t
ngx_http_grpc_guard_metrics_init(ngx_conf_t *cf)
{
    ngx_uint_t                           i;
    ngx_http_handler_pt                 *h;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_grpc_guard_main_conf_t     *gmcf;
    ngx_http_grpc_guard_metrics_main_t  *mm;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);
    mm = gmcf->metrics;

    if (mm == NULL || !mm->enabled) {
        return NGX_OK;
    }

    /* the reasons are looked up with a binary search */

    for (i = 2; i < NGX_HTTP_GRPC_GUARD_METRICS_REASONS - 1; i++) {
        if (ngx_memn2cmp(ngx_http_grpc_guard_metrics_reasons[i - 1].data,
                         ngx_http_grpc_guard_metrics_reasons[i].data,
                         ngx_http_grpc_guard_metrics_reasons[i - 1].len,
                         ngx_http_grpc_guard_metrics_reasons[i].len)
            >= 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "grpc guard metrics: reason \"%V\" is out "
                               "of order",
                               &ngx_http_grpc_guard_metrics_reasons[i]);
            return NGX_ERROR;
        }
    }

    if (mm->size == 0) {
        mm->size = 1024 * 1024;
    }

    mm->zone = ngx_shared_memory_add(cf,
                                     &ngx_http_grpc_guard_metrics_zone_name,
                                     mm->size, &ngx_http_grpc_guard_module);
    if (mm->zone == NULL) {
        return NGX_ERROR;
    }

    mm->zone->init = ngx_http_grpc_guard_metrics_init_zone;
    mm->zone->data = mm;

    /* the calls are counted in the log phase, when their status is known */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_grpc_guard_metrics_log_handler;

    return NGX_OK;
}


ngx_int_t
ngx_http_grpc_guard_metrics_init_module(ngx_cycle_t *cycle)
{
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    gmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_grpc_guard_module);

    if (gmcf && gmcf->metrics && gmcf->metrics->zone) {
        ngx_http_grpc_guard_metrics = gmcf->metrics;

    } else {
        ngx_http_grpc_guard_metrics = NULL;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_grpc_guard_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_grpc_guard_metrics_main_t  *omm = data;

    size_t                                n, size;
    ngx_uint_t                            kind;
    ngx_slab_pool_t                      *shpool;
    ngx_http_grpc_guard_metrics_main_t   *mm;
    ngx_http_grpc_guard_metrics_shctx_t  *sh;

    mm = shm_zone->data;

    if (omm) {

        /* a reload: the counters go on */

        if (omm->sh->layout != ngx_http_grpc_guard_metrics_layout()) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "the \"%V\" zone was made by another version of "
                          "the module: change grpc_guard_metrics_zone's "
                          "size to start new counters", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        mm->sh = omm->sh;
        mm->shpool = omm->shpool;

        return ngx_http_grpc_guard_metrics_resolve(shm_zone, mm);
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    mm->shpool = shpool;

    if (shm_zone->shm.exists) {
        mm->sh = shpool->data;
        return ngx_http_grpc_guard_metrics_resolve(shm_zone, mm);
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_grpc_guard_metrics_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    mm->sh = sh;

    sh->layout = ngx_http_grpc_guard_metrics_layout();

    size = sizeof(" in grpc_guard_metrics_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, size);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in grpc_guard_metrics_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* the zone says itself when it is full */

    shpool->log_nomem = 0;

    /* what a name is counted as when there is no room for it */

    for (kind = 0; kind < NGX_HTTP_GRPC_GUARD_METRICS_KINDS; kind++) {
        sh->other[kind] = ngx_http_grpc_guard_metrics_shname(mm, kind,
                                 &ngx_http_grpc_guard_metrics_other,
                                 (kind == NGX_HTTP_GRPC_GUARD_METRICS_PAIR)
                                 ? &ngx_http_grpc_guard_metrics_other : NULL);
        if (sh->other[kind] == NULL) {
            return NGX_ERROR;
        }

        sh->other[kind]->other = 1;
    }

    /*
     * the table of calls takes half of the zone, the names the rest; a
     * small zone has less room than it says (its pages cost some)
     */

    n = shm_zone->shm.size / 2 / sizeof(ngx_http_grpc_guard_metrics_entry_t);

    for (size = 64; size * 2 <= n; size *= 2) {
        /* void */
    }

    for ( ;; ) {
        sh->table = ngx_slab_calloc(shpool,
                            size * sizeof(ngx_http_grpc_guard_metrics_entry_t));

        if (sh->table || size == 64) {
            break;
        }

        size /= 2;
    }

    if (sh->table == NULL) {
        return NGX_ERROR;
    }

    sh->mask = size - 1;

    return ngx_http_grpc_guard_metrics_resolve(shm_zone, mm);
}


static ngx_int_t
ngx_http_grpc_guard_metrics_resolve(ngx_shm_zone_t *shm_zone,
    ngx_http_grpc_guard_metrics_main_t *mm)
{
    ngx_uint_t                             i, kind, full;
    ngx_http_grpc_guard_metrics_name_t   **names;
    ngx_http_grpc_guard_metrics_shname_t  *sn;

    /* each name of the configuration finds its counters, or gets them */

    full = 0;

    for (kind = 0; kind < NGX_HTTP_GRPC_GUARD_METRICS_KINDS; kind++) {

        names = mm->names[kind].elts;

        for (i = 0; i < mm->names[kind].nelts; i++) {

            sn = ngx_http_grpc_guard_metrics_shname(mm, kind,
                                                    &names[i]->name[0],
                                                    &names[i]->name[1]);
            if (sn == NULL) {
                sn = mm->sh->other[kind];
                full++;
            }

            names[i]->id = sn->id;
            names[i]->counters = sn->counters;
        }
    }

    if (full) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "the \"%V\" zone is full: %ui names of the "
                      "configuration are counted as \"other\"",
                      &shm_zone->shm.name, full);
    }

    return NGX_OK;
}


static ngx_http_grpc_guard_metrics_shname_t *
ngx_http_grpc_guard_metrics_shname(ngx_http_grpc_guard_metrics_main_t *mm,
    ngx_uint_t kind, ngx_str_t *name0, ngx_str_t *name1)
{
    size_t                                 size, len1, counters;
    ngx_http_grpc_guard_metrics_shctx_t   *sh;
    ngx_http_grpc_guard_metrics_shname_t  *sn;

    sh = mm->sh;
    len1 = name1 ? name1->len : 0;

    for (sn = sh->names; sn; sn = sn->next) {
        if (sn->kind == kind
            && !sn->other
            && sn->len[0] == name0->len
            && sn->len[1] == len1
            && (name0->len == 0
                || ngx_memcmp(sn->data, name0->data, name0->len) == 0)
            && (len1 == 0
                || ngx_memcmp(sn->data + sn->len[0], name1->data, len1) == 0))
        {
            return sn;
        }
    }

    switch (kind) {

    case NGX_HTTP_GRPC_GUARD_METRICS_LIMIT:
        counters = NGX_HTTP_GRPC_GUARD_METRICS_LIMIT_SIZE;
        break;

    case NGX_HTTP_GRPC_GUARD_METRICS_NODE:
        counters = NGX_HTTP_GRPC_GUARD_METRICS_NODE_SIZE;
        break;

    default: /* NGX_HTTP_GRPC_GUARD_METRICS_PAIR */
        counters = 0;
        break;
    }

    size = offsetof(ngx_http_grpc_guard_metrics_shname_t, data)
           + name0->len + len1;
    size = ngx_align(size, sizeof(ngx_atomic_t));

    /* only the master process allocates, while it loads a configuration */

    ngx_shmtx_lock(&mm->shpool->mutex);

    sn = ngx_slab_calloc_locked(mm->shpool,
                                size + counters * sizeof(ngx_atomic_t));

    ngx_shmtx_unlock(&mm->shpool->mutex);

    if (sn == NULL) {
        return NULL;
    }

    sn->kind = kind;
    sn->id = sh->ids;
    sn->len[0] = name0->len;
    sn->len[1] = len1;

    if (name0->len) {
        ngx_memcpy(sn->data, name0->data, name0->len);
    }

    if (len1) {
        ngx_memcpy(sn->data + name0->len, name1->data, len1);
    }

    if (counters) {
        sn->counters = (ngx_atomic_t *) ((u_char *) sn + size);
    }

    if (kind == NGX_HTTP_GRPC_GUARD_METRICS_NODE) {
        sn->counters[NGX_HTTP_GRPC_GUARD_METRICS_NODE_UP] = 1;
    }

    /* the workers read the list as it grows: the name is complete first */

    ngx_memory_barrier();

    if (sh->last) {
        sh->last->next = sn;

    } else {
        sh->names = sn;
    }

    sh->last = sn;
    sh->ids++;

    return sn;
}


static uint32_t
ngx_http_grpc_guard_metrics_layout(void)
{
    uint32_t    crc;
    ngx_uint_t  i, sizes[5];

    /* what a key and the fixed counters mean, as this module says it */

    ngx_crc32_init(crc);

    for (i = 0; i < NGX_HTTP_GRPC_GUARD_METRICS_REASONS; i++) {
        ngx_crc32_update(&crc, ngx_http_grpc_guard_metrics_reasons[i].data,
                         ngx_http_grpc_guard_metrics_reasons[i].len);
        ngx_crc32_update(&crc, (u_char *) "\n", 1);
    }

    sizes[0] = NGX_HTTP_GRPC_GUARD_METRICS_FIXED;
    sizes[1] = NGX_HTTP_GRPC_GUARD_METRICS_DECISIONS;
    sizes[2] = NGX_HTTP_GRPC_GUARD_METRICS_STATUSES;
    sizes[3] = NGX_HTTP_GRPC_GUARD_METRICS_NODE_SIZE;
    sizes[4] = sizeof(ngx_http_grpc_guard_metrics_shctx_t);

    ngx_crc32_update(&crc, (u_char *) sizes, sizeof(sizes));

    ngx_crc32_final(crc);

    return crc;
}
