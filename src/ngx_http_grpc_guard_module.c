
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The module's glue: the directive table, the configuration's creation
 * and merge (each concern merges its own part), and the access-phase
 * pipeline that runs the stages in turn and takes them up again after
 * an asynchronous step.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_grpc_guard_module.h"


typedef struct {
    ngx_str_t                          name;
    ngx_uint_t                         mask;
    ngx_http_grpc_guard_auth_pt        handler;

    /* whether the location has what the method needs (keys...) */
    ngx_http_grpc_guard_configured_pt  configured;

    /* takes the method's credential out of the request, unchecked */
    ngx_http_grpc_guard_strip_pt       strip;
} ngx_http_grpc_guard_auth_method_t;


static ngx_int_t ngx_http_grpc_guard_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_grpc_guard_run(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
static ngx_int_t ngx_http_grpc_guard_finish(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_grpc_guard_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
static void ngx_http_grpc_guard_identify(ngx_http_grpc_guard_ctx_t *ctx);
static void ngx_http_grpc_guard_reset_call(ngx_http_grpc_guard_call_t *call);
static void ngx_http_grpc_guard_init_call(ngx_http_grpc_guard_call_t *call);
static void ngx_http_grpc_guard_ctx_cleanup(void *data);

static ngx_int_t ngx_http_grpc_guard_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_grpc_guard_init(ngx_conf_t *cf);
static void *ngx_http_grpc_guard_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_grpc_guard_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_grpc_guard_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_grpc_guard_turns_on(
    ngx_http_grpc_guard_loc_conf_t *conf);
static char *ngx_http_grpc_guard_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);



/*
 * the methods grpc_guard_auth accepts, in the order they are tried:
 * the cheapest first
 */

static ngx_http_grpc_guard_auth_method_t  ngx_http_grpc_guard_auth_methods[] = {

    { ngx_string("mtls"), NGX_HTTP_GRPC_GUARD_AUTH_MTLS,
      ngx_http_grpc_guard_mtls_authenticate,
      ngx_http_grpc_guard_mtls_configured, NULL },

    { ngx_string("api_key"), NGX_HTTP_GRPC_GUARD_AUTH_API_KEY,
      ngx_http_grpc_guard_api_key_authenticate,
      ngx_http_grpc_guard_api_key_configured,
      ngx_http_grpc_guard_api_key_strip },

    { ngx_string("jwt"), NGX_HTTP_GRPC_GUARD_AUTH_JWT,
      ngx_http_grpc_guard_jwt_authenticate,
      ngx_http_grpc_guard_jwt_configured,
      ngx_http_grpc_guard_jwt_strip },

    /* the same bearer token as jwt, so the same strip */

    { ngx_string("introspection"), NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION,
      ngx_http_grpc_guard_introspect_authenticate,
      ngx_http_grpc_guard_introspect_configured,
      ngx_http_grpc_guard_jwt_strip },

    { ngx_null_string, 0, NULL, NULL, NULL }
};


/*
 * the concerns' own merges, in order: the JWT settings are checked
 * when the ACL is known, which may ask for a JWT identity
 */

static ngx_http_grpc_guard_merge_pt  ngx_http_grpc_guard_merges[] = {
    ngx_http_grpc_guard_grpc_merge_conf,
    ngx_http_grpc_guard_limit_merge_conf,
    ngx_http_grpc_guard_audit_merge_conf,
    ngx_http_grpc_guard_api_key_merge_conf,
    ngx_http_grpc_guard_acl_merge_conf,
    ngx_http_grpc_guard_authz_merge_conf,
    ngx_http_grpc_guard_jwt_merge_conf,
    ngx_http_grpc_guard_introspect_merge_conf,
    ngx_http_grpc_guard_message_merge_conf,
    ngx_http_grpc_guard_xfcc_merge_conf,
    ngx_http_grpc_guard_metrics_merge_conf,
    NULL
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
      ngx_http_grpc_guard_public_directive,
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
      ngx_http_grpc_guard_deadline_directive,
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

    { ngx_string("grpc_guard_xfcc_trusted"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_xfcc_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
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

    { ngx_string("grpc_guard_authz_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_authz_request,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_authz_metadata"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_authz_metadata,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_max_message_size,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_jwt_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_jwt_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_jwt_key_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_jwt_key_request,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_introspection_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_introspection_request,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_remote_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_remote_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_grpc_guard_metrics_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_metrics_requests"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_grpc_guard_metrics_requests,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("grpc_guard_metrics_services"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_grpc_guard_metrics_services,
      NGX_HTTP_LOC_CONF_OFFSET,
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
    ngx_http_grpc_guard_metrics_init_module,  /* init module */
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

    } else if (ctx->call.done) {

        if (ctx->conf == glcf) {
            return ctx->call.result;
        }

        /*
         * an internal redirect moved the request to a location
         * with other settings: evaluate it again there
         */

        ngx_http_grpc_guard_reset_call(&ctx->call);
    }

    ctx->conf = glcf;

    return ngx_http_grpc_guard_run(r, glcf, ctx);
}


static ngx_int_t
ngx_http_grpc_guard_run(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx)
{
    ngx_int_t  rc;

    while (ctx->call.stage < NGX_HTTP_GRPC_GUARD_STAGE_DONE) {

        switch (ctx->call.stage) {

        case NGX_HTTP_GRPC_GUARD_STAGE_CLASSIFY:
            rc = ngx_http_grpc_guard_classify(r, glcf, ctx);
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_LIMIT_PRE:
            rc = glcf->limit.pre ? ngx_http_grpc_guard_limit(r, glcf, ctx)
                                 : NGX_DECLINED;
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_LIMIT_POST:
            rc = glcf->limit.post ? ngx_http_grpc_guard_limit(r, glcf, ctx)
                                  : NGX_DECLINED;
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_AUTHENTICATE:
            rc = ngx_http_grpc_guard_authenticate(r, glcf, ctx);
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_AUTHORIZE:
            rc = ngx_http_grpc_guard_acl_check(r, glcf, ctx);
            break;

        case NGX_HTTP_GRPC_GUARD_STAGE_AUTHZ:
            rc = glcf->authz ? ngx_http_grpc_guard_authz(r, glcf, ctx)
                             : NGX_DECLINED;
            break;

        default:
            rc = NGX_DECLINED;
            break;
        }

        if (rc == NGX_DECLINED) {
            ctx->call.stage++;
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
                      "grpc guard: stage %ui failed", ctx->call.stage);

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
    ctx->call.done = 1;

    if (rc == NGX_OK) {

        if (ctx->call.decision.len == 0) {
            if (ctx->call.public) {
                ngx_str_set(&ctx->call.decision, "public");

            } else {
                ngx_str_set(&ctx->call.decision, "allow");
            }
        }

        /*
         * NGX_DECLINED lets the other access handlers (allow/deny,
         * auth_basic, auth_request) have their say as well
         */

        ctx->call.result = NGX_DECLINED;

        return NGX_DECLINED;
    }

    /* refused: the reply is final, whatever "satisfy" says */

    ctx->call.result = NGX_DONE;

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

    /* a forwarded certificate goes upstream from a trusted peer only */

    if (glcf->xfcc_trusted
        && ngx_http_grpc_guard_xfcc_strip(r, glcf, ctx) != NGX_OK)
    {
        return NGX_ERROR;
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

        for (m = ngx_http_grpc_guard_auth_methods; m->handler; m++) {
            if (m->configured(glcf)) {
                want |= m->mask;
            }
        }

        optional = 1;
    }

    if (ctx->call.public) {

        /*
         * a public method is not authenticated, but the credentials the
         * location would consume do not go upstream either: clients
         * attach them to every call, health checks included
         */

        if (glcf->forward_credentials) {
            return NGX_DECLINED;
        }

        for (m = ngx_http_grpc_guard_auth_methods; m->handler; m++) {
            if ((want & m->mask) && m->strip && m->strip(r, glcf, ctx)
                                                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return NGX_DECLINED;
    }

    ngx_memzero(&failed, sizeof(ngx_http_grpc_guard_auth_result_t));

    for (m = ngx_http_grpc_guard_auth_methods; m->handler; m++) {

        if (!(want & m->mask)) {
            continue;
        }

        ngx_memzero(&res, sizeof(ngx_http_grpc_guard_auth_result_t));

        rc = m->handler(r, glcf, ctx, &res);

        if (rc == NGX_ERROR || rc == NGX_AGAIN) {

            /*
             * NGX_AGAIN: the method waits for a subrequest (keys from
             * the identity provider); the stage runs again when it is
             * done, every method from the first
             */

            return rc;
        }

        ngx_http_grpc_guard_metrics_auth(m->mask, rc, res.presented);

        if (rc == NGX_OK) {
            ctx->call.auth |= m->mask;
            continue;
        }

        if (optional) {
            if (res.presented) {
                ctx->call.credentials = 1;
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
        || (glcf->satisfy == NGX_HTTP_GRPC_GUARD_SATISFY_ANY && ctx->call.auth))
    {
        ngx_http_grpc_guard_identify(ctx);
        return NGX_DECLINED;
    }

    /* refused: nothing of what may have succeeded is kept */

    ctx->call.auth = 0;
    ctx->call.jwt = NULL;
    ctx->call.api_key = NULL;
    ctx->call.peer = NULL;
    ngx_str_null(&ctx->call.principal);

    ctx->call.credentials = failed.presented;

    if (failed.message) {
        ctx->call.message = failed.message;
    }

    if (failed.status == 0) {
        failed.status = NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED;
    }

    return ngx_http_grpc_guard_refuse(r, ctx, failed.status, failed.reason);
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
        ngx_string("api_key+jwt+mtls"),
        ngx_string("introspection"),
        ngx_string("introspection+jwt"),
        ngx_string("api_key+introspection"),
        ngx_string("api_key+introspection+jwt"),
        ngx_string("introspection+mtls"),
        ngx_string("introspection+jwt+mtls"),
        ngx_string("api_key+introspection+mtls"),
        ngx_string("api_key+introspection+jwt+mtls")
    };

    ngx_str_t  id;

    /*
     * the principal is the JWT "sub" (or, from an introspection reply,
     * "sub" else "client_id"), else the API-key client id, else the
     * certificate's identity; the audit record keeps all of them
     */

    ngx_str_null(&ctx->call.principal);

    if (ctx->call.peer) {
        ctx->call.spiffe = ctx->call.peer->spiffe_id;
        ctx->call.fingerprint = ctx->call.peer->fingerprint;
        ctx->call.principal = ctx->call.peer->principal;
    }

    if (ctx->call.api_key) {
        ctx->call.client = ctx->call.api_key->client;
        ctx->call.principal = ctx->call.api_key->client;
    }

    if (ctx->call.jwt) {
        ngx_http_grpc_guard_jwt_identity(ctx, &ctx->call.sub, &ctx->call.iss,
                                         &id);

        if (id.len) {
            ctx->call.principal = id;
        }
    }

    ctx->call.principal_kind = kinds[ctx->call.auth & 15];
}


ngx_int_t
ngx_http_grpc_guard_take_header(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_table_elt_t *h)
{
    ngx_int_t          rc;
    ngx_table_elt_t  **t;

    /*
     * a credential the guard consumes leaves the request sent upstream;
     * it is kept here, so that another guarded location, after an
     * internal redirect, still finds it
     */

    rc = ngx_http_grpc_guard_remove_header(&r->headers_in.headers, h,
                                           r->pool);

    if (rc != NGX_OK) {

        /* NGX_DECLINED: taken before */

        return (rc == NGX_DECLINED) ? NGX_OK : NGX_ERROR;
    }

    if (ctx->taken == NULL) {
        ctx->taken = ngx_array_create(r->pool, 2, sizeof(ngx_table_elt_t *));
        if (ctx->taken == NULL) {
            return NGX_ERROR;
        }
    }

    t = ngx_array_push(ctx->taken);
    if (t == NULL) {
        return NGX_ERROR;
    }

    *t = h;

    return NGX_OK;
}


ngx_table_elt_t *
ngx_http_grpc_guard_credential(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_str_t *name, ngx_uint_t *count)
{
    ngx_uint_t         i;
    ngx_table_elt_t   *found, **t;

    /* a header of the request, or one the guard took out of it */

    found = ngx_http_grpc_guard_find_header(&r->headers_in.headers, name,
                                            count);

    if (ctx->taken == NULL) {
        return found;
    }

    t = ctx->taken->elts;

    for (i = 0; i < ctx->taken->nelts; i++) {
        if (t[i]->key.len == name->len
            && ngx_strncasecmp(t[i]->key.data, name->data, name->len) == 0)
        {
            if (found == NULL) {
                found = t[i];
            }

            (*count)++;
        }
    }

    return found;
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
     *     ctx->conf = NULL;
     *     ctx->taken = NULL;
     *     ctx->body = { 0 };
     *     ctx->remote = NULL;
     *     ctx->waiting = 0;
     *     ctx->rewritten = 0;
     */

    ngx_http_grpc_guard_init_call(&ctx->call);

    cln->handler = ngx_http_grpc_guard_ctx_cleanup;
    ngx_http_set_ctx(r, ctx, ngx_http_grpc_guard_module);

    return ctx;
}


static void
ngx_http_grpc_guard_reset_call(ngx_http_grpc_guard_call_t *call)
{
    ngx_memzero(call, sizeof(ngx_http_grpc_guard_call_t));

    ngx_http_grpc_guard_init_call(call);
}


static void
ngx_http_grpc_guard_init_call(ngx_http_grpc_guard_call_t *call)
{
    /*
     * the members that are not 0 in a zeroed record; the others:
     *
     *     call->stage = NGX_HTTP_GRPC_GUARD_STAGE_CLASSIFY;
     *     call->done = 0;
     *     ... every other member empty, NULL or 0
     */

    call->grpc_status = NGX_HTTP_GRPC_GUARD_NO_STATUS;
    call->limit_remaining = -1;
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

    if (ngx_http_grpc_guard_remote_init_main(cf, gmcf) != NGX_OK) {
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

    if (ngx_http_grpc_guard_message_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_metrics_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_grpc_guard_remote_init_filter(cf) != NGX_OK) {
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
     *     conf->remote_used = 0;
     *     conf->remote_zone = NULL;
     *     conf->remotes = NULL;
     */

    conf->limit_zone_size = NGX_CONF_UNSET_SIZE;
    conf->jwt_cache_size = NGX_CONF_UNSET;
    conf->remote_cache_size = NGX_CONF_UNSET_SIZE;

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
    conf->xfcc_trusted = NGX_CONF_UNSET_PTR;

    conf->api_keys = NGX_CONF_UNSET_PTR;
    conf->acl_rules = NGX_CONF_UNSET_PTR;
    conf->acl_mode = NGX_CONF_UNSET_UINT;
    conf->authz = NGX_CONF_UNSET_PTR;
    conf->authz_metadata = NGX_CONF_UNSET_PTR;
    conf->max_message_size = NGX_CONF_UNSET_SIZE;

    ngx_http_grpc_guard_limit_create_conf(&conf->limit);
    ngx_http_grpc_guard_jwt_create_conf(&conf->jwt);
    conf->introspect = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_grpc_guard_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_grpc_guard_loc_conf_t  *prev = parent;
    ngx_http_grpc_guard_loc_conf_t  *conf = child;

    ngx_flag_t                        enable;
    ngx_http_grpc_guard_merge_pt     *merge;
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
    ngx_conf_merge_value(conf->require_tls, prev->require_tls, 1);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_INFO);

    ngx_conf_merge_uint_value(conf->auth, prev->auth, 0);
    ngx_conf_merge_uint_value(conf->satisfy, prev->satisfy,
                              NGX_HTTP_GRPC_GUARD_SATISFY_ALL);
    ngx_conf_merge_value(conf->forward_credentials,
                         prev->forward_credentials, 0);

    /* each concern merges its own settings */

    for (merge = ngx_http_grpc_guard_merges; *merge; merge++) {
        if ((*merge)(cf, prev, conf) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
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
    /*
     * settings that ask for a check, as the level itself gives them: a
     * check must not be silently left out for want of "grpc_guard on"
     */

    if (conf->auth != NGX_CONF_UNSET_UINT && conf->auth != 0) {
        return 1;
    }

    if (conf->deadline != NGX_CONF_UNSET_UINT
        && conf->deadline != NGX_HTTP_GRPC_GUARD_DEADLINE_OFF)
    {
        return 1;
    }

    if (conf->public != NGX_CONF_UNSET_PTR && conf->public != NULL) {
        return 1;
    }

    if (conf->reflection == 0 || conf->require_tls == 1) {
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

    if (conf->max_message_size != NGX_CONF_UNSET_SIZE
        && conf->max_message_size != 0)
    {
        return 1;
    }

    if (conf->authz != NGX_CONF_UNSET_PTR && conf->authz != NULL) {
        return 1;
    }

    if (conf->xfcc_trusted != NGX_CONF_UNSET_PTR && conf->xfcc_trusted) {
        return 1;
    }

    return 0;
}
