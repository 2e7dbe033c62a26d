
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * Method ACLs: grpc_guard_allow and grpc_guard_deny rules compiled at
 * configuration time into an index by method pattern, and matched at
 * request time against the method and the caller's identity.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


#define NGX_HTTP_GRPC_GUARD_COND_CLAIM   0
#define NGX_HTTP_GRPC_GUARD_COND_SUB     1
#define NGX_HTTP_GRPC_GUARD_COND_ISS     2
#define NGX_HTTP_GRPC_GUARD_COND_CLIENT  3
#define NGX_HTTP_GRPC_GUARD_COND_ROLE    4
#define NGX_HTTP_GRPC_GUARD_COND_SPIFFE  5
#define NGX_HTTP_GRPC_GUARD_COND_SAN     6
#define NGX_HTTP_GRPC_GUARD_COND_IP      7
#define NGX_HTTP_GRPC_GUARD_COND_AUTH    8


typedef struct {
    ngx_uint_t                      type;
    ngx_str_t                       claim;
    ngx_array_t                    *values;     /* ngx_str_t, ngx_cidr_t */
    ngx_uint_t                      auth;       /* for auth= */
    unsigned                        split:1;    /* scope, scp */
} ngx_http_grpc_guard_acl_cond_t;


typedef struct {
    ngx_http_grpc_guard_pattern_t   pattern;
    ngx_http_grpc_guard_acl_cond_t *conds;
    ngx_uint_t                      nconds;
    ngx_uint_t                      index;      /* order in the location */
    ngx_str_t                       name;       /* name= or FILE:LINE */
    unsigned                        deny:1;
    unsigned                        identity:1;
} ngx_http_grpc_guard_acl_rule_t;


/* the rules of one pattern text: exact methods and prefixes */

typedef struct {
    ngx_str_t                       text;
    ngx_http_grpc_guard_acl_rule_t **rules;
    ngx_uint_t                      nrules;
} ngx_http_grpc_guard_acl_bucket_t;


typedef struct {
    ngx_http_grpc_guard_acl_bucket_t  *buckets;
    ngx_uint_t                      mask;       /* size - 1, a power of 2 */
} ngx_http_grpc_guard_acl_table_t;


struct ngx_http_grpc_guard_acl_s {
    ngx_http_grpc_guard_acl_table_t exact;
    ngx_http_grpc_guard_acl_table_t prefix;
    size_t                         *lengths;    /* distinct prefix lengths */
    ngx_uint_t                      nlengths;
    ngx_http_grpc_guard_acl_bucket_t  any;      /* "*" */
    ngx_uint_t                      identity;   /* some rule needs one */
};


static char *ngx_http_grpc_guard_acl_parse_cond(ngx_conf_t *cf,
    ngx_str_t *value, ngx_http_grpc_guard_acl_cond_t *cond);
static ngx_int_t ngx_http_grpc_guard_acl_table(ngx_conf_t *cf,
    ngx_http_grpc_guard_acl_table_t *table, ngx_array_t *buckets);
static ngx_http_grpc_guard_acl_bucket_t *ngx_http_grpc_guard_acl_find(
    ngx_http_grpc_guard_acl_table_t *table, u_char *data, size_t len,
    ngx_uint_t key);
static void ngx_http_grpc_guard_acl_bucket_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_acl_bucket_t *b,
    ngx_http_grpc_guard_acl_rule_t **allow,
    ngx_http_grpc_guard_acl_rule_t **deny, ngx_uint_t *identity);
static ngx_int_t ngx_http_grpc_guard_acl_rule_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_acl_rule_t *rule);
static ngx_int_t ngx_http_grpc_guard_acl_cond_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_acl_cond_t *cond);
static ngx_int_t ngx_http_grpc_guard_acl_words_match(u_char *p, size_t len,
    ngx_array_t *values);
static ngx_int_t ngx_http_grpc_guard_acl_str_match(ngx_str_t *s,
    ngx_array_t *values, ngx_uint_t glob);
static ngx_int_t ngx_http_grpc_guard_acl_glob(u_char *p, u_char *last,
    u_char *s, u_char *end);


static ngx_str_t  ngx_http_grpc_guard_acl_roles = ngx_string("roles");


char *
ngx_http_grpc_guard_acl_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    u_char                          *p;
    char                            *rv;
    ngx_str_t                       *value;
    ngx_uint_t                       i;
    ngx_http_grpc_guard_acl_rule_t  *rule;

    if (glcf->acl_rules == NGX_CONF_UNSET_PTR) {
        glcf->acl_rules = ngx_array_create(cf->pool, 8,
                                      sizeof(ngx_http_grpc_guard_acl_rule_t));
        if (glcf->acl_rules == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rule = ngx_array_push(glcf->acl_rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rule, sizeof(ngx_http_grpc_guard_acl_rule_t));

    value = cf->args->elts;

    rule->deny = (value[0].data[sizeof("grpc_guard_") - 1] == 'd');
    rule->index = glcf->acl_rules->nelts - 1;

    rv = ngx_http_grpc_guard_parse_pattern(cf, &value[1], &rule->pattern);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rule->conds = ngx_pcalloc(cf->pool, cf->args->nelts
                                 * sizeof(ngx_http_grpc_guard_acl_cond_t));
    if (rule->conds == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "name=", 5) == 0) {
            if (value[i].len == 5 || rule->name.len) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid rule name \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            rule->name.data = value[i].data + 5;
            rule->name.len = value[i].len - 5;
            continue;
        }

        rv = ngx_http_grpc_guard_acl_parse_cond(cf, &value[i],
                                                &rule->conds[rule->nconds]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        if (rule->conds[rule->nconds].type != NGX_HTTP_GRPC_GUARD_COND_IP) {
            rule->identity = 1;
        }

        rule->nconds++;
    }

    if (rule->name.len == 0) {

        /* FILE:LINE of the directive */

        p = ngx_pnalloc(cf->pool, cf->conf_file->file.name.len
                                  + 1 + NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        rule->name.data = p;
        rule->name.len = ngx_sprintf(p, "%V:%ui",
                                     &cf->conf_file->file.name,
                                     cf->conf_file->line)
                         - p;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_grpc_guard_acl_parse_cond(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_grpc_guard_acl_cond_t *cond)
{
    u_char      *p, *eq, *last, *comma;
    ngx_str_t    key, v, *s;
    ngx_int_t    rc;
    ngx_uint_t   i;
    ngx_cidr_t  *cidr;

    static struct {
        ngx_str_t   name;
        ngx_uint_t  type;
    } types[] = {
        { ngx_string("sub"), NGX_HTTP_GRPC_GUARD_COND_SUB },
        { ngx_string("iss"), NGX_HTTP_GRPC_GUARD_COND_ISS },
        { ngx_string("client"), NGX_HTTP_GRPC_GUARD_COND_CLIENT },
        { ngx_string("role"), NGX_HTTP_GRPC_GUARD_COND_ROLE },
        { ngx_string("spiffe"), NGX_HTTP_GRPC_GUARD_COND_SPIFFE },
        { ngx_string("san"), NGX_HTTP_GRPC_GUARD_COND_SAN },
        { ngx_string("ip"), NGX_HTTP_GRPC_GUARD_COND_IP },
        { ngx_string("auth"), NGX_HTTP_GRPC_GUARD_COND_AUTH },
        { ngx_null_string, 0 }
    };

    eq = ngx_strlchr(value->data, value->data + value->len, '=');

    if (eq == NULL || eq + 1 == value->data + value->len) {
        goto invalid;
    }

    key.data = value->data;
    key.len = eq - value->data;

    if (key.len > 6 && ngx_strncmp(key.data, "claim:", 6) == 0) {
        cond->type = NGX_HTTP_GRPC_GUARD_COND_CLAIM;
        cond->claim.data = key.data + 6;
        cond->claim.len = key.len - 6;

        if ((cond->claim.len == 5
             && ngx_strncmp(cond->claim.data, "scope", 5) == 0)
            || (cond->claim.len == 3
                && ngx_strncmp(cond->claim.data, "scp", 3) == 0))
        {
            cond->split = 1;
        }

    } else {
        for (i = 0; types[i].name.len; i++) {
            if (types[i].name.len == key.len
                && ngx_strncmp(types[i].name.data, key.data, key.len) == 0)
            {
                break;
            }
        }

        if (types[i].name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown condition \"%V\"", value);
            return NGX_CONF_ERROR;
        }

        cond->type = types[i].type;
    }

    cond->values = ngx_array_create(cf->pool, 2,
                                    cond->type == NGX_HTTP_GRPC_GUARD_COND_IP
                                    ? sizeof(ngx_cidr_t) : sizeof(ngx_str_t));
    if (cond->values == NULL) {
        return NGX_CONF_ERROR;
    }

    /* comma-separated alternatives */

    p = eq + 1;
    last = value->data + value->len;

    while (p <= last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        v.data = p;
        v.len = comma - p;

        if (v.len == 0) {
            goto invalid;
        }

        switch (cond->type) {

        case NGX_HTTP_GRPC_GUARD_COND_IP:
            cidr = ngx_array_push(cond->values);
            if (cidr == NULL) {
                return NGX_CONF_ERROR;
            }

            rc = ngx_ptocidr(&v, cidr);

            if (rc == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid CIDR \"%V\" in \"%V\"",
                                   &v, value);
                return NGX_CONF_ERROR;
            }

            if (rc == NGX_DONE) {
                ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                                   "low address bits of %V are meaningless",
                                   &v);
            }

            break;

        case NGX_HTTP_GRPC_GUARD_COND_AUTH:
            if (v.len == 3 && ngx_strncmp(v.data, "jwt", 3) == 0) {
                cond->auth |= NGX_HTTP_GRPC_GUARD_AUTH_JWT;

            } else if (v.len == 7 && ngx_strncmp(v.data, "api_key", 7) == 0) {
                cond->auth |= NGX_HTTP_GRPC_GUARD_AUTH_API_KEY;

            } else if (v.len == 4 && ngx_strncmp(v.data, "mtls", 4) == 0) {
                cond->auth |= NGX_HTTP_GRPC_GUARD_AUTH_MTLS;

            } else if (v.len == 13
                       && ngx_strncmp(v.data, "introspection", 13) == 0)
            {
                cond->auth |= NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid authentication method \"%V\" "
                                   "in \"%V\"", &v, value);
                return NGX_CONF_ERROR;
            }

            break;

        case NGX_HTTP_GRPC_GUARD_COND_SPIFFE:
        case NGX_HTTP_GRPC_GUARD_COND_SAN:
            for (i = 0; i < v.len; i++) {
                if (v.data[i] == '*' && i + 1 < v.len
                    && v.data[i + 1] == '*')
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid glob \"%V\" in \"%V\": "
                                       "\"**\" is not supported", &v, value);
                    return NGX_CONF_ERROR;
                }
            }

            /* fall through */

        default:
            s = ngx_array_push(cond->values);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = v;
        }

        p = comma + 1;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid condition \"%V\"", value);

    return NGX_CONF_ERROR;
}


char *
ngx_http_grpc_guard_acl_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev, ngx_http_grpc_guard_loc_conf_t *conf)
{
    size_t                            *len;
    ngx_uint_t                         i, j, n;
    ngx_array_t                        exact, prefix, lengths;
    ngx_http_grpc_guard_acl_t         *acl;
    ngx_http_grpc_guard_acl_rule_t    *rule, **rp;
    ngx_http_grpc_guard_acl_bucket_t  *b, *bucket;

    ngx_conf_merge_uint_value(conf->acl_mode, prev->acl_mode,
                              NGX_HTTP_GRPC_GUARD_ACL_ENFORCE);

    /* a rule list given at an inner level replaces the outer one */

    if (conf->acl_rules == NGX_CONF_UNSET_PTR) {
        conf->acl_rules = prev->acl_rules;
        conf->acl = prev->acl;
    }

    if (conf->acl_rules == NGX_CONF_UNSET_PTR || conf->acl_rules == NULL) {
        conf->acl_rules = NULL;
        conf->acl = NULL;
        return NGX_CONF_OK;
    }

    if (conf->acl) {
        return NGX_CONF_OK;
    }

    /*
     * the rules are indexed by pattern: a hash of exact methods, a hash
     * of prefixes with the list of their lengths, and the "*" rules; a
     * call looks at the few rules whose pattern can match its method
     */

    acl = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_acl_t));
    if (acl == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&exact, cf->temp_pool, 16,
                       sizeof(ngx_http_grpc_guard_acl_bucket_t))
        != NGX_OK
        || ngx_array_init(&prefix, cf->temp_pool, 16,
                          sizeof(ngx_http_grpc_guard_acl_bucket_t))
           != NGX_OK
        || ngx_array_init(&lengths, cf->pool, 4, sizeof(size_t)) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    rule = conf->acl_rules->elts;
    n = conf->acl_rules->nelts;

    acl->any.rules = ngx_pcalloc(cf->pool, n * sizeof(void *));
    if (acl->any.rules == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < n; i++) {

        if (rule[i].identity) {
            acl->identity = 1;
        }

        if (rule[i].pattern.prefix && rule[i].pattern.text.len == 0) {
            acl->any.rules[acl->any.nrules++] = &rule[i];
            continue;
        }

        bucket = rule[i].pattern.prefix ? prefix.elts : exact.elts;
        j = rule[i].pattern.prefix ? prefix.nelts : exact.nelts;

        for (b = bucket; j; b++, j--) {
            if (b->text.len == rule[i].pattern.text.len
                && ngx_strncmp(b->text.data, rule[i].pattern.text.data,
                               b->text.len)
                   == 0)
            {
                break;
            }
        }

        if (j == 0) {
            b = ngx_array_push(rule[i].pattern.prefix ? &prefix : &exact);
            if (b == NULL) {
                return NGX_CONF_ERROR;
            }

            b->text = rule[i].pattern.text;
            b->nrules = 0;
            b->rules = ngx_pcalloc(cf->pool, n * sizeof(void *));
            if (b->rules == NULL) {
                return NGX_CONF_ERROR;
            }

            if (rule[i].pattern.prefix) {
                len = lengths.elts;

                for (j = 0; j < lengths.nelts; j++) {
                    if (len[j] == b->text.len) {
                        break;
                    }
                }

                if (j == lengths.nelts) {
                    len = ngx_array_push(&lengths);
                    if (len == NULL) {
                        return NGX_CONF_ERROR;
                    }

                    *len = b->text.len;
                }
            }
        }

        rp = b->rules;
        rp[b->nrules++] = &rule[i];
    }

    if (ngx_http_grpc_guard_acl_table(cf, &acl->exact, &exact) != NGX_OK
        || ngx_http_grpc_guard_acl_table(cf, &acl->prefix, &prefix) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    acl->lengths = lengths.elts;
    acl->nlengths = lengths.nelts;

    conf->acl = acl;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_grpc_guard_acl_table(ngx_conf_t *cf,
    ngx_http_grpc_guard_acl_table_t *table, ngx_array_t *buckets)
{
    ngx_uint_t                         i, size, k;
    ngx_http_grpc_guard_acl_bucket_t  *b, *slot;

    /* open addressing, at most half full */

    for (size = 4; size < 2 * buckets->nelts; size <<= 1) {
        /* void */
    }

    table->buckets = ngx_pcalloc(cf->pool,
                          size * sizeof(ngx_http_grpc_guard_acl_bucket_t));
    if (table->buckets == NULL) {
        return NGX_ERROR;
    }

    table->mask = size - 1;

    b = buckets->elts;

    for (i = 0; i < buckets->nelts; i++) {
        k = ngx_hash_key(b[i].text.data, b[i].text.len);

        for ( ;; ) {
            slot = &table->buckets[k & table->mask];

            if (slot->rules == NULL) {
                *slot = b[i];
                break;
            }

            k++;
        }
    }

    return NGX_OK;
}


static ngx_http_grpc_guard_acl_bucket_t *
ngx_http_grpc_guard_acl_find(ngx_http_grpc_guard_acl_table_t *table,
    u_char *data, size_t len, ngx_uint_t key)
{
    ngx_http_grpc_guard_acl_bucket_t  *slot;

    for ( ;; ) {
        slot = &table->buckets[key & table->mask];

        if (slot->rules == NULL) {
            return NULL;
        }

        if (slot->text.len == len
            && ngx_memcmp(slot->text.data, data, len) == 0)
        {
            return slot;
        }

        key++;
    }
}


ngx_uint_t
ngx_http_grpc_guard_acl_identity(ngx_http_grpc_guard_acl_t *acl)
{
    return acl ? acl->identity : 0;
}


ngx_int_t
ngx_http_grpc_guard_acl_check(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    u_char                            *m;
    size_t                             len;
    ngx_uint_t                         i, identity, key;
    ngx_http_grpc_guard_acl_t         *acl;
    ngx_http_grpc_guard_acl_rule_t    *allow, *deny;
    ngx_http_grpc_guard_acl_bucket_t  *b;

    acl = glcf->acl;

    if (acl == NULL || ctx->call.public || !ctx->call.canonical) {
        return NGX_DECLINED;
    }

    allow = NULL;
    deny = NULL;
    identity = 0;

    m = ctx->call.method.data;
    len = ctx->call.method.len;

    b = ngx_http_grpc_guard_acl_find(&acl->exact, m, len,
                                     ngx_hash_key(m, len));
    if (b) {
        ngx_http_grpc_guard_acl_bucket_match(r, ctx, b, &allow, &deny,
                                             &identity);
    }

    for (i = 0; i < acl->nlengths; i++) {

        if (acl->lengths[i] > len) {
            continue;
        }

        key = ngx_hash_key(m, acl->lengths[i]);

        b = ngx_http_grpc_guard_acl_find(&acl->prefix, m, acl->lengths[i],
                                         key);
        if (b) {
            ngx_http_grpc_guard_acl_bucket_match(r, ctx, b, &allow, &deny,
                                                 &identity);
        }
    }

    ngx_http_grpc_guard_acl_bucket_match(r, ctx, &acl->any, &allow, &deny,
                                         &identity);

    if (deny) {
        ctx->call.rule = deny->name;
        goto refuse;
    }

    if (allow) {
        ctx->call.rule = allow->name;
        return NGX_DECLINED;
    }

    ngx_str_null(&ctx->call.rule);

refuse:

    if (glcf->acl_mode == NGX_HTTP_GRPC_GUARD_ACL_DRY_RUN) {
        ngx_str_set(&ctx->call.decision, "dry_run_deny");

        ngx_log_error(glcf->log_level, r->connection->log, 0,
                      "grpc guard: dry run, would refuse \"%V\" with 7: %s%s%V",
                      &ctx->call.method,
                      deny ? "acl_deny_rule" : "acl_default_deny",
                      ctx->call.rule.len ? ", rule " : "", &ctx->call.rule);

        return NGX_DECLINED;
    }

    /*
     * a caller with no identity at all that only an identity rule could
     * let through gets 16: it has to authenticate first
     */

    if (deny == NULL && identity && ctx->call.auth == 0) {
        return ngx_http_grpc_guard_refuse(r, ctx,
                                          NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED,
                                          "acl_unauthenticated");
    }

    return ngx_http_grpc_guard_refuse(r, ctx,
                                      NGX_HTTP_GRPC_GUARD_PERMISSION_DENIED,
                                      deny ? "acl_deny_rule"
                                           : "acl_default_deny");
}


ngx_http_grpc_guard_pattern_t *
ngx_http_grpc_guard_acl_pattern(ngx_array_t *rules, ngx_uint_t i)
{
    ngx_http_grpc_guard_acl_rule_t  *rule;

    /* the method pattern of rule i, e.g. for the metrics' service names */

    rule = rules->elts;

    return &rule[i].pattern;
}


static void
ngx_http_grpc_guard_acl_bucket_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_acl_bucket_t *b,
    ngx_http_grpc_guard_acl_rule_t **allow,
    ngx_http_grpc_guard_acl_rule_t **deny, ngx_uint_t *identity)
{
    ngx_uint_t                       i;
    ngx_http_grpc_guard_acl_rule_t  *rule;

    for (i = 0; i < b->nrules; i++) {
        rule = b->rules[i];

        /* the first rule of the location that matches is reported */

        if (rule->deny) {
            if (*deny && (*deny)->index < rule->index) {
                continue;
            }

        } else {
            if (*deny || (*allow && (*allow)->index < rule->index)) {
                continue;
            }

            if (rule->identity) {
                *identity = 1;
            }
        }

        if (!ngx_http_grpc_guard_acl_rule_match(r, ctx, rule)) {
            continue;
        }

        if (rule->deny) {
            *deny = rule;

        } else {
            *allow = rule;
        }
    }
}


static ngx_int_t
ngx_http_grpc_guard_acl_rule_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_acl_rule_t *rule)
{
    ngx_uint_t  i;

    for (i = 0; i < rule->nconds; i++) {
        if (!ngx_http_grpc_guard_acl_cond_match(r, ctx, &rule->conds[i])) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_grpc_guard_acl_cond_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_http_grpc_guard_acl_cond_t *cond)
{
    ngx_uint_t  i;

    switch (cond->type) {

    case NGX_HTTP_GRPC_GUARD_COND_IP:
        return ngx_cidr_match(r->connection->sockaddr, cond->values)
               == NGX_OK;

    case NGX_HTTP_GRPC_GUARD_COND_AUTH:
        return (ctx->call.auth & cond->auth) != 0;

    case NGX_HTTP_GRPC_GUARD_COND_CLAIM:
        return ngx_http_grpc_guard_jwt_claim_match(r, ctx, &cond->claim,
                                                   cond->values, cond->split);

    case NGX_HTTP_GRPC_GUARD_COND_SUB:

        /*
         * the token's "sub" and "iss" (strings) are in the context since
         * the identity stage, even after a cache hit: no parse for them
         */

        return ctx->call.jwt
               && ngx_http_grpc_guard_acl_str_match(&ctx->call.sub,
                                                    cond->values, 0);

    case NGX_HTTP_GRPC_GUARD_COND_ISS:
        return ctx->call.jwt
               && ngx_http_grpc_guard_acl_str_match(&ctx->call.iss,
                                                    cond->values, 0);

    case NGX_HTTP_GRPC_GUARD_COND_CLIENT:
        return ctx->call.api_key
               && ngx_http_grpc_guard_acl_str_match(&ctx->call.api_key->client,
                                                    cond->values, 0);

    case NGX_HTTP_GRPC_GUARD_COND_ROLE:
        if (ctx->call.api_key && ctx->call.api_key->roles) {
            for (i = 0; i < ctx->call.api_key->roles->nelts; i++) {
                if (ngx_http_grpc_guard_acl_str_match(
                        &((ngx_str_t *) ctx->call.api_key->roles->elts)[i],
                        cond->values, 0))
                {
                    return 1;
                }
            }
        }

        return ngx_http_grpc_guard_jwt_claim_match(r, ctx,
                                                &ngx_http_grpc_guard_acl_roles,
                                                cond->values, 1);

    case NGX_HTTP_GRPC_GUARD_COND_SPIFFE:
        return ctx->call.peer
               && ngx_http_grpc_guard_acl_str_match(&ctx->call.peer->spiffe_id,
                                                    cond->values, 1);

    case NGX_HTTP_GRPC_GUARD_COND_SAN:
        if (ctx->call.peer == NULL) {
            return 0;
        }

        return ngx_http_grpc_guard_acl_words_match(ctx->call.peer->uri_san.data,
                                                   ctx->call.peer->uri_san.len,
                                                   cond->values)
               || ngx_http_grpc_guard_acl_words_match(
                                                   ctx->call.peer->dns_san.data,
                                                   ctx->call.peer->dns_san.len,
                                                   cond->values);
    }

    return 0;
}


ngx_int_t
ngx_http_grpc_guard_acl_text_match(ngx_str_t *text, ngx_array_t *values,
    ngx_uint_t words)
{
    /*
     * a text against the values of a condition: as a whole, or, when
     * asked, as words split at spaces, any of which may match, a "*" in
     * a value then matching within one "/" segment
     */

    if (words) {
        return ngx_http_grpc_guard_acl_words_match(text->data, text->len,
                                                   values);
    }

    return ngx_http_grpc_guard_acl_str_match(text, values, 0);
}


static ngx_int_t
ngx_http_grpc_guard_acl_words_match(u_char *p, size_t len,
    ngx_array_t *values)
{
    u_char     *last, *start;
    ngx_str_t   s;

    if (len == 0) {
        return 0;
    }

    last = p + len;

    while (p < last) {
        while (p < last && *p == ' ') {
            p++;
        }

        start = p;

        while (p < last && *p != ' ') {
            p++;
        }

        if (p > start) {
            s.data = start;
            s.len = p - start;

            if (ngx_http_grpc_guard_acl_str_match(&s, values, 1)) {
                return 1;
            }
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_grpc_guard_acl_str_match(ngx_str_t *s, ngx_array_t *values,
    ngx_uint_t glob)
{
    ngx_str_t   *v;
    ngx_uint_t   i;

    /* an empty name (no SPIFFE ID, say) matches nothing */

    if (s->len == 0) {
        return 0;
    }

    v = values->elts;

    for (i = 0; i < values->nelts; i++) {

        if (glob && ngx_strlchr(v[i].data, v[i].data + v[i].len, '*')) {
            if (ngx_http_grpc_guard_acl_glob(v[i].data, v[i].data + v[i].len,
                                             s->data, s->data + s->len))
            {
                return 1;
            }

            continue;
        }

        if (v[i].len == s->len && ngx_memcmp(v[i].data, s->data, s->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_grpc_guard_acl_glob(u_char *p, u_char *last, u_char *s, u_char *end)
{
    u_char  *q;

    /* "*" matches any run of characters within one "/" segment */

    while (p < last) {

        if (*p == '*') {
            p++;

            for (q = s; ; q++) {
                if (ngx_http_grpc_guard_acl_glob(p, last, q, end)) {
                    return 1;
                }

                if (q == end || *q == '/') {
                    return 0;
                }
            }
        }

        if (s == end || *s != *p) {
            return 0;
        }

        p++;
        s++;
    }

    return s == end;
}
