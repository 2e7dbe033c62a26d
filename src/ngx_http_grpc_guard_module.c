
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   mask;
    ngx_http_grpc_guard_auth_pt  handler;
} ngx_http_grpc_guard_auth_method_t;


static ngx_int_t ngx_http_grpc_guard_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_grpc_guard_run(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_finish(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_grpc_guard_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
static void ngx_http_grpc_guard_identify(ngx_http_grpc_guard_ctx_t *ctx);
static void ngx_http_grpc_guard_ctx_cleanup(void *data);

static ngx_int_t ngx_http_grpc_guard_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_grpc_guard_init(ngx_conf_t *cf);
static void *ngx_http_grpc_guard_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_grpc_guard_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_grpc_guard_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_grpc_guard_turns_on(
    ngx_http_grpc_guard_loc_conf_t *conf);
static char *ngx_http_grpc_guard_public(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_grpc_guard_deadline(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_grpc_guard_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);



/*
 * the methods grpc_guard_auth accepts, in the order they are tried:
 * the cheapest first
 */

static ngx_http_grpc_guard_auth_method_t  ngx_http_grpc_guard_auth_methods[] = {

    { ngx_string("mtls"), NGX_HTTP_GRPC_GUARD_AUTH_MTLS,
      ngx_http_grpc_guard_mtls_authenticate },

    { ngx_string("api_key"), NGX_HTTP_GRPC_GUARD_AUTH_API_KEY,
      ngx_http_grpc_guard_api_key_authenticate },

    { ngx_string("jwt"), NGX_HTTP_GRPC_GUARD_AUTH_JWT,
      ngx_http_grpc_guard_jwt_authenticate },

    { ngx_null_string, 0, NULL }
};


static ngx_conf_enum_t  ngx_http_grpc_guard_acl_modes[] = {
    { ngx_string("enforce"), NGX_HTTP_GRPC_GUARD_ACL_ENFORCE },
    { ngx_string("dry_run"), NGX_HTTP_GRPC_GUARD_ACL_DRY_RUN },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_grpc_guard_satisfy[] = {
    { ngx_string("all"), NGX_HTTP_GRPC_GUARD_SATISFY_ALL },
    { ngx_string("any"), NGX_HTTP_GRPC_GUARD_SATISFY_ANY },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_grpc_guard_limit_failure[] = {
    { ngx_string("open"), NGX_HTTP_GRPC_GUARD_LIMIT_OPEN },
    { ngx_string("closed"), NGX_HTTP_GRPC_GUARD_LIMIT_CLOSED },
    { ngx_string("local"), NGX_HTTP_GRPC_GUARD_LIMIT_LOCAL },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_grpc_guard_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_grpc_guard_commands[] = {

    { ngx_string("grpc_guard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, enable),
      NULL },

    { ngx_string("grpc_guard_public"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_public,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_reflection"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, reflection),
      NULL },

    { ngx_string("grpc_guard_deadline"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_deadline,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_require_tls"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, require_tls),
      NULL },

    { ngx_string("grpc_guard_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, log_level),
      &ngx_http_grpc_guard_log_levels },

    { ngx_string("grpc_guard_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_main_conf_t, limit_zone_size),
      NULL },

    { ngx_string("grpc_guard_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_limit_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_auth,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_audit_log,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_limit_failure"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, limit.failure),
      &ngx_http_grpc_guard_limit_failure },

    { ngx_string("grpc_guard_limit_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, limit.dry_run),
      NULL },

    { ngx_string("grpc_guard_auth_satisfy"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, satisfy),
      &ngx_http_grpc_guard_satisfy },

    { ngx_string("grpc_guard_forward_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, forward_credentials),
      NULL },

    { ngx_string("grpc_guard_jwt_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_jwt_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_jwt_algorithms"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_jwt_algorithms,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_jwt_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, jwt.issuers),
      NULL },

    { ngx_string("grpc_guard_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_jwt_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, jwt.audiences),
      NULL },

    { ngx_string("grpc_guard_jwt_require"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_jwt_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, jwt.require),
      NULL },

    { ngx_string("grpc_guard_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, jwt.leeway),
      NULL },

    { ngx_string("grpc_guard_jwt_max_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_jwt_max_lifetime,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, jwt.max_lifetime),
      NULL },

    { ngx_string("grpc_guard_jwt_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, jwt.max_size),
      NULL },

    { ngx_string("grpc_guard_jwt_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, jwt.token),
      NULL },

    { ngx_string("grpc_guard_api_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_api_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_api_key_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, api_key_header),
      NULL },

    { ngx_string("grpc_guard_allow"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_acl_rule,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_deny"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_acl_rule,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_acl_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_grpc_guard_loc_conf_t, acl_mode),
      &ngx_http_grpc_guard_acl_modes },

    { ngx_string("grpc_guard_jwt_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_jwt_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_grpc_guard_module_ctx = {
    ngx_http_grpc_guard_preconfiguration,  /* preconfiguration */
    ngx_http_grpc_guard_init,              /* postconfiguration */

    ngx_http_grpc_guard_create_main_conf,  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_grpc_guard_create_loc_conf,   /* create location configuration */
    ngx_http_grpc_guard_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_grpc_guard_module = {
    NGX_MODULE_V1,
    &ngx_http_grpc_guard_module_ctx,       /* module context */
    ngx_http_grpc_guard_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_grpc_guard_redis_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_grpc_guard_redis_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_grpc_guard_access_handler(ngx_http_request_t *r)
{
    ngx_http_grpc_guard_ctx_t       *ctx;
    ngx_http_grpc_guard_loc_conf_t  *glcf;

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_grpc_guard_module);

    if (!glcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_grpc_guard_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_grpc_guard_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (ctx->waiting) {
        /* an asynchronous step is still under way */
        return NGX_DONE;

    } else if (ctx->done) {

        if (ctx->conf == glcf) {
            return ctx->result;
        }

        /*
         * an internal redirect moved the request to a location
         * with other settings: evaluate it again there
         */

        ctx->done = 0;
        ctx->stage = NGX_HTTP_GRPC_GUARD_STAGE_CLASSIFY;
        ctx->grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
        ngx_str_null(&ctx->reason);
        ngx_str_null(&ctx->decision);
        ngx_str_null(&ctx->principal);
        ctx->message = NULL;
        ctx->auth = 0;
        ctx->jwt = NULL;
        ctx->public = 0;

        ctx->headers = NULL;
        ngx_str_null(&ctx->limit_name);
        ctx->limit_remaining = -1;
        ctx->limit = NULL;
        ctx->credentials = 0;

        ctx->api_key = NULL;
        ctx->peer = NULL;
        ngx_str_null(&ctx->principal_kind);
        ngx_str_null(&ctx->sub);
        ngx_str_null(&ctx->iss);
        ngx_str_null(&ctx->client);
        ngx_str_null(&ctx->spiffe);
        ngx_str_null(&ctx->fingerprint);
        ngx_str_null(&ctx->rule);
    }

    ctx->conf = glcf;

    return ngx_http_grpc_guard_run(r, glcf, ctx);
}


static ngx_int_t
ngx_http_grpc_guard_run(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_int_t  rc;

    while (ctx->stage < NGX_HTTP_GRPC_GUARD_STAGE_DONE) {

        switch (ctx->stage) {

        case NGX_HTTP_GRPC_GUARD_STAGE_CLASSIFY:
            rc = ngx_http_grpc_guard_classify(r, glcf, ctx);
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_LIMIT_PRE:
        case NGX_HTTP_GRPC_GUARD_STAGE_LIMIT_POST:
            rc = ngx_http_grpc_guard_limit(r, glcf, ctx);
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_AUTHENTICATE:
            rc = ngx_http_grpc_guard_authenticate(r, glcf, ctx);
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_AUTHORIZE:
            rc = ngx_http_grpc_guard_acl_check(r, glcf, ctx);
            break;

        default:
            rc = NGX_DECLINED;
            break;
        }

        if (rc == NGX_DECLINED) {
            ctx->stage++;
            continue;
        }

        if (rc == NGX_AGAIN) {

            /*
             * the stage waits for an event (e.g. a Redis reply); it
             * calls ngx_http_grpc_guard_resume() when it is done, and
             * the same stage is entered again to take its result
             */

            ctx->waiting = 1;
            r->main->count++;
            r->write_event_handler = ngx_http_request_empty_handler;

            return NGX_DONE;
        }

        if (rc == NGX_DONE) {
            return ngx_http_grpc_guard_finish(r, ctx, rc);
        }

        /* NGX_ERROR or any other failure of a stage */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "grpc guard: stage %ui failed", ctx->stage);

        (void) ngx_http_grpc_guard_refuse(r, ctx,
                                          NGX_HTTP_GRPC_GUARD_INTERNAL,
                                          "internal_error");

        return ngx_http_grpc_guard_finish(r, ctx, NGX_DONE);
    }

    return ngx_http_grpc_guard_finish(r, ctx, NGX_OK);
}


static ngx_int_t
ngx_http_grpc_guard_finish(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_int_t rc)
{
    ctx->done = 1;

    if (rc == NGX_OK) {

        if (ctx->decision.len == 0) {
            if (ctx->public) {
                ngx_str_set(&ctx->decision, "public");

            } else {
                ngx_str_set(&ctx->decision, "allow");
            }
        }

        /*
         * NGX_DECLINED lets the other access handlers (allow/deny,
         * auth_basic, auth_request) have their say as well
         */

        ctx->result = NGX_DECLINED;

        return NGX_DECLINED;
    }

    /* refused: the reply is final, whatever "satisfy" says */

    ctx->result = NGX_DONE;

    rc = ngx_http_grpc_guard_send_refusal(r, ctx);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_grpc_guard_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_int_t                           rc;
    ngx_uint_t                          want, optional;
    ngx_http_grpc_guard_auth_method_t  *m;
    ngx_http_grpc_guard_auth_result_t   res, failed;

    if (ctx->public) {
        return NGX_DECLINED;
    }

    want = glcf->auth;
    optional = 0;

    if (want == 0) {

        /*
         * nothing is required, but ACL rules ask for identities: the
         * credentials presented are looked at, and a failure only
         * leaves the caller without an identity
         */

        if (!ngx_http_grpc_guard_acl_identity(glcf->acl)) {
            return NGX_DECLINED;
        }

        want = NGX_HTTP_GRPC_GUARD_AUTH_MTLS;

        if (glcf->api_keys) {
            want |= NGX_HTTP_GRPC_GUARD_AUTH_API_KEY;
        }

        if (ngx_http_grpc_guard_jwt_configured(glcf)) {
            want |= NGX_HTTP_GRPC_GUARD_AUTH_JWT;
        }

        optional = 1;
    }

    ngx_memzero(&failed, sizeof(ngx_http_grpc_guard_auth_result_t));

    for (m = ngx_http_grpc_guard_auth_methods; m->handler; m++) {

        if (!(want & m->mask)) {
            continue;
        }

        if (optional && m->mask == NGX_HTTP_GRPC_GUARD_AUTH_MTLS
            && r->connection->ssl == NULL)
        {
            continue;
        }

        ngx_memzero(&res, sizeof(ngx_http_grpc_guard_auth_result_t));

        rc = m->handler(r, glcf, ctx, &res);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            ctx->auth |= m->mask;
            continue;
        }

        if (optional) {
            if (res.presented) {
                ctx->credentials = 1;
                ngx_log_error(glcf->log_level, r->connection->log, 0,
                              "grpc guard: credentials not accepted: %s",
                              res.reason);
            }

            continue;
        }

        /*
         * the reason reported is the first failure, preferring a
         * credential that was presented and refused over one that
         * is merely missing
         */

        if (failed.reason == NULL || (res.presented && !failed.presented)) {
            failed = res;
        }

        if (glcf->satisfy == NGX_HTTP_GRPC_GUARD_SATISFY_ALL) {
            break;
        }
    }

    /* with "any", one method that succeeded is enough */

    if (optional
        || failed.reason == NULL
        || (glcf->satisfy == NGX_HTTP_GRPC_GUARD_SATISFY_ANY && ctx->auth))
    {
        ngx_http_grpc_guard_identify(ctx);
        return NGX_DECLINED;
    }

    /* refused: nothing of what may have succeeded is kept */

    ctx->auth = 0;
    ctx->jwt = NULL;
    ctx->api_key = NULL;
    ctx->peer = NULL;
    ngx_str_null(&ctx->principal);

    ctx->credentials = failed.presented;

    if (failed.message) {
        ctx->message = failed.message;
    }

    return ngx_http_grpc_guard_refuse(r, ctx,
                                      NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED,
                                      failed.reason);
}


static void
ngx_http_grpc_guard_identify(ngx_http_grpc_guard_ctx_t *ctx)
{
    static ngx_str_t  kinds[] = {
        ngx_null_string,
        ngx_string("jwt"),
        ngx_string("api_key"),
        ngx_string("api_key+jwt"),
        ngx_string("mtls"),
        ngx_string("jwt+mtls"),
        ngx_string("api_key+mtls"),
        ngx_string("api_key+jwt+mtls")
    };

    /*
     * the principal is the JWT "sub", else the API-key client id, else
     * the certificate's identity; the audit record keeps all of them
     */

    ngx_str_null(&ctx->principal);

    if (ctx->peer) {
        ctx->spiffe = ctx->peer->spiffe_id;
        ctx->fingerprint = ctx->peer->fingerprint;
        ctx->principal = ctx->peer->principal;
    }

    if (ctx->api_key) {
        ctx->client = ctx->api_key->client;
        ctx->principal = ctx->api_key->client;
    }

    if (ctx->jwt) {
        ngx_http_grpc_guard_jwt_identity(ctx, &ctx->sub, &ctx->iss);

        if (ctx->sub.len) {
            ctx->principal = ctx->sub;
        }
    }

    ctx->principal_kind = kinds[ctx->auth & 7];
}


void
ngx_http_grpc_guard_resume(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t           *c;
    ngx_http_grpc_guard_ctx_t  *ctx;

    c = r->connection;

    ctx = ngx_http_grpc_guard_get_ctx(r);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "grpc guard resume: %i", rc);

    if (ctx == NULL || !ctx->waiting) {
        return;
    }

    ctx->waiting = 0;
    r->main->count--;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);

    ngx_http_run_posted_requests(c);
}


ngx_http_grpc_guard_ctx_t *
ngx_http_grpc_guard_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_grpc_guard_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_grpc_guard_module);

    if (ctx || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    /*
     * an internal redirect zeroes module contexts; the decision
     * record is found again through its pool cleanup, as realip does
     */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_grpc_guard_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_grpc_guard_module);
            return ctx;
        }
    }

    return NULL;
}


ngx_http_grpc_guard_ctx_t *
ngx_http_grpc_guard_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_grpc_guard_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_grpc_guard_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_grpc_guard_ctx_t));

    /*
     * set by ngx_memzero():
     *
     *     ctx->path = { 0, NULL };
     *     ctx->method = { 0, NULL };
     *     ctx->service = { 0, NULL };
     *     ctx->decision = { 0, NULL };
     *     ctx->reason = { 0, NULL };
     *     ctx->stage = NGX_HTTP_GRPC_GUARD_STAGE_CLASSIFY;
     *     ctx->grpc = 0;
     *     ctx->done = 0;
     */

    ctx->grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
    ctx->limit_remaining = -1;

    cln->handler = ngx_http_grpc_guard_ctx_cleanup;
    ngx_http_set_ctx(r, ctx, ngx_http_grpc_guard_module);

    return ctx;
}


static void
ngx_http_grpc_guard_ctx_cleanup(void *data)
{
    /* the record lives in the request pool; nothing to release */
}


static ngx_int_t
ngx_http_grpc_guard_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_grpc_guard_add_variables(cf);
}


static ngx_int_t
ngx_http_grpc_guard_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt              *h;
    ngx_http_core_main_conf_t        *cmcf;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    /*
     * the locations are merged by now: the token cache and the
     * limiter's zone are set up if they are needed
     */

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_grpc_guard_module);

    if (ngx_http_grpc_guard_jwt_init_main(cf, gmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_mtls_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_limit_init_main(cf, gmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * the handler pushed last runs first: a dynamic module's
     * postconfiguration runs after the static access modules', so
     * the guard decides before allow/deny, auth_basic and auth_request
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_grpc_guard_access_handler;

    if (ngx_http_grpc_guard_audit_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_grpc_guard_init_filters(cf);
}


static void *
ngx_http_grpc_guard_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_grpc_guard_main_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->redis = NULL;
     *     conf->limit_zone = NULL;
     *     conf->limit_used = 0;
     *     conf->limit_failed_logged = 0;
     *     conf->limit_failed_calls = 0;
     *     conf->limit_error_logged = 0;
     *     conf->used = 0;
     *     conf->jwt_used = 0;
     *     conf->jwt_cache = NULL;
     *     conf->jwt = NULL;
     */

    conf->limit_zone_size = NGX_CONF_UNSET_SIZE;
    conf->jwt_cache_size = NGX_CONF_UNSET;

    return conf;
}


static void *
ngx_http_grpc_guard_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_grpc_guard_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_grpc_guard_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    conf->public = NGX_CONF_UNSET_PTR;
    conf->reflection = NGX_CONF_UNSET;
    conf->deadline = NGX_CONF_UNSET_UINT;
    conf->deadline_max = NGX_CONF_UNSET_MSEC;
    conf->deadline_default = NGX_CONF_UNSET_MSEC;
    conf->require_tls = NGX_CONF_UNSET;
    conf->log_level = NGX_CONF_UNSET_UINT;
    conf->audit = NGX_CONF_UNSET_PTR;

    conf->auth = NGX_CONF_UNSET_UINT;
    conf->satisfy = NGX_CONF_UNSET_UINT;
    conf->forward_credentials = NGX_CONF_UNSET;

    conf->api_keys = NGX_CONF_UNSET_PTR;
    conf->acl_rules = NGX_CONF_UNSET_PTR;
    conf->acl_mode = NGX_CONF_UNSET_UINT;

    ngx_http_grpc_guard_limit_create_conf(&conf->limit);
    ngx_http_grpc_guard_jwt_create_conf(&conf->jwt);

    return conf;
}


static char *
ngx_http_grpc_guard_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_grpc_guard_loc_conf_t  *prev = parent;
    ngx_http_grpc_guard_loc_conf_t  *conf = child;

    ngx_flag_t                        enable;
    ngx_http_grpc_guard_main_conf_t  *gmcf;

    /*
     * an authentication requirement or a limit turns the guard on; of
     * it and an explicit "grpc_guard", the one set at the innermost
     * level wins; the outermost level is never merged itself, so its
     * settings are looked at here
     */

    if (conf->enable == NGX_CONF_UNSET
        && ngx_http_grpc_guard_turns_on(conf))
    {
        conf->enable = 1;
    }

    enable = prev->enable;

    if (enable == NGX_CONF_UNSET && ngx_http_grpc_guard_turns_on(prev)) {
        enable = 1;
    }

    ngx_conf_merge_value(conf->enable, enable, 0);

    if (conf->enable) {
        gmcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_grpc_guard_module);
        gmcf->used = 1;
    }
    ngx_conf_merge_ptr_value(conf->public, prev->public, NULL);
    ngx_conf_merge_value(conf->reflection, prev->reflection, 0);

    /* the three deadline settings come from one directive */

    if (conf->deadline == NGX_CONF_UNSET_UINT) {
        conf->deadline = prev->deadline;
        conf->deadline_max = prev->deadline_max;
        conf->deadline_default = prev->deadline_default;
    }

    ngx_conf_merge_uint_value(conf->deadline, prev->deadline,
                              NGX_HTTP_GRPC_GUARD_DEADLINE_OFF);
    ngx_conf_merge_msec_value(conf->deadline_max, prev->deadline_max, 0);
    ngx_conf_merge_msec_value(conf->deadline_default,
                              prev->deadline_default, 0);

    /* the grpc-timeout values the guard may send upstream, made once */

    if (ngx_http_grpc_guard_timeout_text(cf->pool, conf->deadline_max,
                                         &conf->deadline_max_text)
        != NGX_OK
        || ngx_http_grpc_guard_timeout_text(cf->pool, conf->deadline_default,
                                            &conf->deadline_default_text)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->require_tls, prev->require_tls, 1);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_INFO);

    if (ngx_http_grpc_guard_limit_merge_conf(cf, &prev->limit, &conf->limit,
                                             conf->enable)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_ptr_value(conf->audit, prev->audit, NULL);

    ngx_conf_merge_ptr_value(conf->api_keys, prev->api_keys, NULL);
    ngx_conf_merge_str_value(conf->api_key_header, prev->api_key_header,
                             "x-api-key");

    if (ngx_http_grpc_guard_acl_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_uint_value(conf->acl_mode, prev->acl_mode,
                              NGX_HTTP_GRPC_GUARD_ACL_ENFORCE);

    ngx_conf_merge_uint_value(conf->auth, prev->auth, 0);
    ngx_conf_merge_uint_value(conf->satisfy, prev->satisfy,
                              NGX_HTTP_GRPC_GUARD_SATISFY_ALL);
    ngx_conf_merge_value(conf->forward_credentials,
                         prev->forward_credentials, 0);

    if (conf->enable
        && (conf->api_keys == NULL)
        && (conf->auth & NGX_HTTP_GRPC_GUARD_AUTH_API_KEY))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"grpc_guard_auth api_key\" needs "
                           "\"grpc_guard_api_key_file\"");
        return NGX_CONF_ERROR;
    }

    return ngx_http_grpc_guard_jwt_merge_conf(cf, prev, conf);
}


static char *
ngx_http_grpc_guard_public(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    char                           *rv;
    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_grpc_guard_pattern_t  *p;

    if (glcf->public == NGX_CONF_UNSET_PTR) {
        glcf->public = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_grpc_guard_pattern_t));
        if (glcf->public == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_array_push(glcf->public);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        rv = ngx_http_grpc_guard_parse_pattern(cf, &value[i], p);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_grpc_guard_deadline(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_str_t   *value, s;
    ngx_msec_t  *msp;
    ngx_uint_t   i;

    if (glcf->deadline != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        glcf->deadline = NGX_HTTP_GRPC_GUARD_DEADLINE_OFF;

    } else if (ngx_strcmp(value[1].data, "optional") == 0) {
        glcf->deadline = NGX_HTTP_GRPC_GUARD_DEADLINE_OPTIONAL;

    } else if (ngx_strcmp(value[1].data, "required") == 0) {
        glcf->deadline = NGX_HTTP_GRPC_GUARD_DEADLINE_REQUIRED;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"off\", "
                           "\"optional\" or \"required\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->deadline_max = 0;
    glcf->deadline_default = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            msp = &glcf->deadline_max;
            s.len = value[i].len - 4;
            s.data = value[i].data + 4;

        } else if (ngx_strncmp(value[i].data, "default=", 8) == 0) {
            msp = &glcf->deadline_default;
            s.len = value[i].len - 8;
            s.data = value[i].data + 8;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *msp = ngx_parse_time(&s, 0);

        if (*msp == (ngx_msec_t) NGX_ERROR || *msp == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (glcf->deadline == NGX_HTTP_GRPC_GUARD_DEADLINE_OFF
        && cf->args->nelts > 2)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"off\" takes no parameters");
        return NGX_CONF_ERROR;
    }

    if (glcf->deadline_max && glcf->deadline_default > glcf->deadline_max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"default=\" is longer than \"max=\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_grpc_guard_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_grpc_guard_loc_conf_t *glcf = conf;

    ngx_str_t                          *value;
    ngx_uint_t                          i, auth;
    ngx_http_grpc_guard_auth_method_t  *m;

    if (glcf->auth != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        glcf->auth = 0;
        return NGX_CONF_OK;
    }

    auth = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        for (m = ngx_http_grpc_guard_auth_methods; m->handler; m++) {
            if (m->name.len == value[i].len
                && ngx_strcmp(m->name.data, value[i].data) == 0)
            {
                break;
            }
        }

        if (m->handler == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid authentication method \"%V\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (auth & m->mask) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "authentication method \"%V\" is listed "
                               "twice", &value[i]);
            return NGX_CONF_ERROR;
        }

        auth |= m->mask;
    }

    glcf->auth = auth;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_grpc_guard_turns_on(ngx_http_grpc_guard_loc_conf_t *conf)
{
    /* settings that need the guard, as the level itself gives them */

    if (conf->auth != NGX_CONF_UNSET_UINT && conf->auth != 0) {
        return 1;
    }

    if (conf->limit.limits != NGX_CONF_UNSET_PTR
        && conf->limit.limits != NULL)
    {
        return 1;
    }

    if (conf->acl_rules != NGX_CONF_UNSET_PTR && conf->acl_rules != NULL) {
        return 1;
    }

    return 0;
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
