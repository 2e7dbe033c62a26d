
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * What every file of the module needs: the configuration, the request
 * context and the calls that one concern makes of another.
 */


#ifndef _NGX_HTTP_GRPC_GUARD_MODULE_H_INCLUDED_
#define _NGX_HTTP_GRPC_GUARD_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* gRPC status codes, as the gRPC specification numbers them */

#define NGX_HTTP_GRPC_GUARD_OK                  0
#define NGX_HTTP_GRPC_GUARD_CANCELLED           1
#define NGX_HTTP_GRPC_GUARD_UNKNOWN             2
#define NGX_HTTP_GRPC_GUARD_INVALID_ARGUMENT    3
#define NGX_HTTP_GRPC_GUARD_DEADLINE_EXCEEDED   4
#define NGX_HTTP_GRPC_GUARD_NOT_FOUND           5
#define NGX_HTTP_GRPC_GUARD_PERMISSION_DENIED   7
#define NGX_HTTP_GRPC_GUARD_RESOURCE_EXHAUSTED  8
#define NGX_HTTP_GRPC_GUARD_UNIMPLEMENTED       12
#define NGX_HTTP_GRPC_GUARD_INTERNAL            13
#define NGX_HTTP_GRPC_GUARD_UNAVAILABLE         14
#define NGX_HTTP_GRPC_GUARD_UNAUTHENTICATED     16

#define NGX_HTTP_GRPC_GUARD_NO_STATUS           (-1)


#define NGX_HTTP_GRPC_GUARD_DEADLINE_OFF        0
#define NGX_HTTP_GRPC_GUARD_DEADLINE_OPTIONAL   1
#define NGX_HTTP_GRPC_GUARD_DEADLINE_REQUIRED   2

/* a client cancel this close to its deadline is the deadline (ms) */
#define NGX_HTTP_GRPC_GUARD_DEADLINE_SLACK_MIN  10
#define NGX_HTTP_GRPC_GUARD_DEADLINE_SLACK_MAX  1000


/* the stages of the access pipeline, in order */

#define NGX_HTTP_GRPC_GUARD_STAGE_CLASSIFY      0
#define NGX_HTTP_GRPC_GUARD_STAGE_LIMIT_PRE     1
#define NGX_HTTP_GRPC_GUARD_STAGE_AUTHENTICATE  2
#define NGX_HTTP_GRPC_GUARD_STAGE_AUTHORIZE     3
#define NGX_HTTP_GRPC_GUARD_STAGE_AUTHZ         4
#define NGX_HTTP_GRPC_GUARD_STAGE_LIMIT_POST    5
#define NGX_HTTP_GRPC_GUARD_STAGE_DONE          6


/* where the final grpc-status of an RPC came from */

#define NGX_HTTP_GRPC_GUARD_SOURCE_NONE         0
#define NGX_HTTP_GRPC_GUARD_SOURCE_LOCAL        1
#define NGX_HTTP_GRPC_GUARD_SOURCE_TRAILER      2
#define NGX_HTTP_GRPC_GUARD_SOURCE_TRAILERS_ONLY  3
#define NGX_HTTP_GRPC_GUARD_SOURCE_SYNTHESIZED  4


/* what the content type says a request is */

#define NGX_HTTP_GRPC_GUARD_NOT_GRPC            0
#define NGX_HTTP_GRPC_GUARD_GRPC                1
#define NGX_HTTP_GRPC_GUARD_GRPC_WEB            2
#define NGX_HTTP_GRPC_GUARD_GRPC_WEB_TEXT       3


/* the longest raw :path accepted as a gRPC method */
#define NGX_HTTP_GRPC_GUARD_MAX_PATH            1024


/* grpc_guard_limit_failure */

#define NGX_HTTP_GRPC_GUARD_LIMIT_OPEN          0
#define NGX_HTTP_GRPC_GUARD_LIMIT_CLOSED        1
#define NGX_HTTP_GRPC_GUARD_LIMIT_LOCAL         2


/* authentication methods of grpc_guard_auth, as a bitmask */

#define NGX_HTTP_GRPC_GUARD_AUTH_JWT            0x0001
#define NGX_HTTP_GRPC_GUARD_AUTH_API_KEY        0x0002
#define NGX_HTTP_GRPC_GUARD_AUTH_MTLS           0x0004
#define NGX_HTTP_GRPC_GUARD_AUTH_INTROSPECTION  0x0008

#define NGX_HTTP_GRPC_GUARD_SATISFY_ALL         0
#define NGX_HTTP_GRPC_GUARD_SATISFY_ANY         1


#define NGX_HTTP_GRPC_GUARD_SHA256_LEN          32


#define NGX_HTTP_GRPC_GUARD_ACL_ENFORCE         0
#define NGX_HTTP_GRPC_GUARD_ACL_DRY_RUN         1


typedef struct {
    ngx_str_t                   text;       /* without the trailing '*' */
    unsigned                    prefix:1;
} ngx_http_grpc_guard_pattern_t;


/* a location's grpc_guard_audit_log settings: ngx_http_grpc_guard_audit.c */
typedef struct ngx_http_grpc_guard_audit_s  ngx_http_grpc_guard_audit_t;

typedef struct ngx_http_grpc_guard_redis_s  ngx_http_grpc_guard_redis_t;
typedef struct ngx_http_grpc_guard_redis_cmd_s
    ngx_http_grpc_guard_redis_cmd_t;
typedef struct ngx_http_grpc_guard_limit_ctx_s
    ngx_http_grpc_guard_limit_ctx_t;

/* reply == NULL: no answer in time (timeout, connection lost, shutdown) */
typedef void (*ngx_http_grpc_guard_redis_handler_pt)(void *data,
    void *reply);


typedef struct {
    ngx_array_t                *limits;     /* limit.c's limit type */
    ngx_uint_t                  failure;    /* NGX_HTTP_GRPC_GUARD_LIMIT_* */
    ngx_flag_t                  dry_run;
    unsigned                    pre:1;      /* some need no identity */
    unsigned                    post:1;     /* some are keyed on identity */
} ngx_http_grpc_guard_limit_conf_t;


typedef struct ngx_http_grpc_guard_acl_s  ngx_http_grpc_guard_acl_t;


/* grpc_guard_authz_request, and a call's question: authz.c */
typedef struct ngx_http_grpc_guard_authz_s  ngx_http_grpc_guard_authz_t;
typedef struct ngx_http_grpc_guard_authz_ctx_s
    ngx_http_grpc_guard_authz_ctx_t;

/* the room a decision of the policy engine takes: a byte and a reason */
#define NGX_HTTP_GRPC_GUARD_AUTHZ_DECISION      (1 + 256)


/*
 * ngx_http_grpc_guard_message.c: where the reading of a request body
 * stands; the prefix of a message and a base64 quantum may both be cut
 * across buffers
 */

typedef struct {
    uint64_t                    left;       /* of the message to pass */
    ngx_uint_t                  messages;   /* prefixes read */
    ngx_int_t                   refused;    /* the status returned */
    ngx_uint_t                  framing;

    u_char                      prefix[5];  /* flags, length (BE) */
    ngx_uint_t                  have;       /* bytes of the prefix */

    /* application/grpc-web-text: base64 of the same framing */
    uint32_t                    bits;
    ngx_uint_t                  chars;      /* of the quantum, pads too */
    ngx_uint_t                  pads;

    unsigned                    started:1;
} ngx_http_grpc_guard_message_ctx_t;


/* ngx_http_grpc_guard_metrics.c: the zone, and a location's settings */
typedef struct ngx_http_grpc_guard_metrics_main_s
    ngx_http_grpc_guard_metrics_main_t;
typedef struct ngx_http_grpc_guard_metrics_loc_s
    ngx_http_grpc_guard_metrics_loc_t;

/* what the other concerns count: ngx_http_grpc_guard_metrics_add() */

#define NGX_HTTP_GRPC_GUARD_METRIC_JWT_HIT_MEMO     0
#define NGX_HTTP_GRPC_GUARD_METRIC_JWT_HIT_SHARED   1
#define NGX_HTTP_GRPC_GUARD_METRIC_JWT_MISS         2
#define NGX_HTTP_GRPC_GUARD_METRIC_AUDIT_RECORDS    3
#define NGX_HTTP_GRPC_GUARD_METRIC_AUDIT_DROPPED    4
#define NGX_HTTP_GRPC_GUARD_METRIC_FIXED            5

/* ngx_http_grpc_guard_metrics_limit() */
#define NGX_HTTP_GRPC_GUARD_METRIC_LIMIT_PASSED     0
#define NGX_HTTP_GRPC_GUARD_METRIC_LIMIT_LIMITED    1
#define NGX_HTTP_GRPC_GUARD_METRIC_LIMIT_UNAVAILABLE  2

/*
 * ngx_http_grpc_guard_metrics_remote(): what the guard fetches (the kind
 * of ngx_http_grpc_guard_remote_add()), and what happened: a fetch ended
 * (ok, failed), or a call looked for the result (hit, wait, unavailable)
 */
#define NGX_HTTP_GRPC_GUARD_REMOTE_JWKS             0
#define NGX_HTTP_GRPC_GUARD_REMOTE_INTROSPECTION    1
#define NGX_HTTP_GRPC_GUARD_REMOTE_AUTHZ            2
#define NGX_HTTP_GRPC_GUARD_REMOTE_KINDS            3

#define NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_OK        0
#define NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_FAILED    1
#define NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_HIT       2
#define NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_WAIT      3
#define NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_UNAVAILABLE  4
#define NGX_HTTP_GRPC_GUARD_METRIC_REMOTE_RESULTS   5

/* ngx_http_grpc_guard_metrics_name() */
#define NGX_HTTP_GRPC_GUARD_METRICS_LIMIT           1
#define NGX_HTTP_GRPC_GUARD_METRICS_NODE            2
#define NGX_HTTP_GRPC_GUARD_METRICS_NONE            ((ngx_uint_t) -1)


/* a line of an API-key file */

typedef struct {
    u_char                      hash[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
    ngx_str_t                   client;
    ngx_array_t                *roles;      /* ngx_str_t */
    time_t                      not_after;  /* 0: none */
    ngx_str_t                  *file;
    ngx_uint_t                  line;
} ngx_http_grpc_guard_api_key_t;


/* the identity in a verified client certificate, once per connection */

typedef struct {
    ngx_str_t                   spiffe_id;
    ngx_str_t                   uri_san;    /* space-separated */
    ngx_str_t                   dns_san;    /* space-separated */
    size_t                      dns_first;  /* length of the first one */
    ngx_str_t                   subject;    /* RFC 2253 */
    ngx_str_t                   fingerprint;    /* hex SHA-256 of DER */
    ngx_str_t                   principal;
    unsigned                    present:1;
    unsigned                    verified:1;
} ngx_http_grpc_guard_peer_t;


typedef struct ngx_http_grpc_guard_jwt_ctx_s  ngx_http_grpc_guard_jwt_ctx_t;
typedef struct ngx_http_grpc_guard_jwt_main_s  ngx_http_grpc_guard_jwt_main_t;

/* the keys of grpc_guard_jwt_key_request: ngx_http_grpc_guard_jwt.h */
typedef struct ngx_http_grpc_guard_jwt_remote_s
    ngx_http_grpc_guard_jwt_remote_t;


/* grpc_guard_introspection_request: ngx_http_grpc_guard_introspect.c */
typedef struct ngx_http_grpc_guard_introspect_s
    ngx_http_grpc_guard_introspect_t;


/* a thing fetched with a subrequest: ngx_http_grpc_guard_remote.c */
typedef struct ngx_http_grpc_guard_remote_s  ngx_http_grpc_guard_remote_t;
typedef struct ngx_http_grpc_guard_remote_wait_s
    ngx_http_grpc_guard_remote_wait_t;

/* whether a reply is good enough to replace the last result: NGX_OK */
typedef ngx_int_t (*ngx_http_grpc_guard_remote_check_pt)(ngx_log_t *log,
    ngx_str_t *body, void *data);

/* a reply to a keyed thing, as its check callback sees it */

typedef struct {
    ngx_log_t                  *log;
    ngx_pool_t                 *pool;       /* for a result of its own */
    ngx_uint_t                  status;     /* HTTP status of the reply */
    ngx_str_t                   body;       /* up to max_size */
    ngx_str_t                   result;     /* what is kept: the body... */
    ngx_msec_t                  valid;      /* ...for so long; 0: not kept */
} ngx_http_grpc_guard_remote_reply_t;

/*
 * NGX_OK: an answer (reply->result, kept for reply->valid ms, given to
 * every call that waited for it); NGX_DECLINED: not an answer, a failure
 * that is never kept
 */
typedef ngx_int_t (*ngx_http_grpc_guard_remote_keyed_pt)(
    ngx_http_grpc_guard_remote_reply_t *reply, void *data);


typedef struct {
    ngx_array_t                *keys;       /* jwt.h's key type */
    ngx_uint_t                  algorithms; /* bitmask */
    ngx_array_t                *issuers;    /* ngx_str_t */
    ngx_array_t                *audiences;  /* ngx_str_t */
    ngx_array_t                *require;    /* ngx_str_t */
    time_t                      leeway;
    time_t                      max_lifetime;
    size_t                      max_size;
    ngx_http_complex_value_t   *token;
    ngx_http_grpc_guard_jwt_remote_t  *remote;  /* grpc_guard_jwt_key_request */

    /* digest of the settings above: cache entries are kept apart by it */
    u_char                      policy[NGX_HTTP_GRPC_GUARD_SHA256_LEN];
} ngx_http_grpc_guard_jwt_conf_t;


typedef struct {
    ngx_http_grpc_guard_redis_t  *redis;    /* grpc_guard_redis */
    size_t                      limit_zone_size;
    ngx_shm_zone_t             *limit_zone; /* blocked-until, local windows */
    ngx_flag_t                  limit_used;
    ngx_flag_t                  limit_cluster;  /* a tag for each counter */
    ngx_msec_t                  limit_failed_logged;    /* per worker */
    ngx_uint_t                  limit_failed_calls;     /* per worker */
    ngx_msec_t                  limit_error_logged;     /* per worker */
    ngx_flag_t                  used;       /* a location is guarded */
    ngx_flag_t                  xfcc_used;  /* grpc_guard_xfcc_trusted */
    ssize_t                     jwt_cache_size;
    ngx_flag_t                  jwt_used;
    ngx_shm_zone_t             *jwt_cache;
    ngx_http_grpc_guard_jwt_main_t  *jwt;
    ngx_http_grpc_guard_metrics_main_t  *metrics;
    size_t                      remote_cache_size;
    ngx_flag_t                  remote_used;
    ngx_shm_zone_t             *remote_zone;
    ngx_array_t                *remotes;    /* one per kind and URI */
} ngx_http_grpc_guard_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_array_t                *public;     /* ngx_http_grpc_guard_pattern_t */
    ngx_flag_t                  reflection;
    ngx_uint_t                  deadline;
    ngx_msec_t                  deadline_max;
    ngx_msec_t                  deadline_default;
    ngx_str_t                   deadline_max_text;      /* grpc-timeout */
    ngx_str_t                   deadline_default_text;
    ngx_flag_t                  require_tls;
    ngx_uint_t                  log_level;
    ngx_http_grpc_guard_limit_conf_t  limit;
    ngx_http_grpc_guard_audit_t  *audit;    /* NULL: grpc_guard_audit_log off */
    ngx_uint_t                  auth;       /* NGX_HTTP_GRPC_GUARD_AUTH_* */
    ngx_uint_t                  satisfy;
    ngx_flag_t                  forward_credentials;
    ngx_array_t                *xfcc_trusted;   /* ngx_cidr_t, NULL: off */
    ngx_http_grpc_guard_jwt_conf_t  jwt;
    ngx_http_grpc_guard_introspect_t  *introspect;
    ngx_array_t                *api_keys;   /* sorted by hash */
    ngx_str_t                   api_key_header;
    ngx_array_t                *acl_rules;  /* acl.c's rule type */
    ngx_http_grpc_guard_acl_t  *acl;        /* the rules, indexed */
    ngx_uint_t                  acl_mode;
    ngx_http_grpc_guard_authz_t  *authz;    /* NULL: no external decision */
    ngx_array_t                *authz_metadata;     /* ngx_str_t */
    size_t                      max_message_size;   /* 0: off */
    ngx_http_grpc_guard_metrics_loc_t  *metrics;
} ngx_http_grpc_guard_loc_conf_t;


/*
 * what the guard finds out about a call in the location that runs it;
 * an internal redirect to another location finds it all out again, from
 * a record reset in one go (ngx_http_grpc_guard_reset_call())
 */

typedef struct {
    ngx_str_t                   path;       /* raw :path, capped */
    ngx_str_t                   method;     /* "/pkg.Svc/M" when canonical */
    ngx_str_t                   service;    /* "pkg.Svc" */

    ngx_str_t                   decision;
    ngx_str_t                   reason;
    ngx_str_t                  *message;    /* grpc-message, if not generic */
    ngx_array_t                *headers;    /* ngx_keyval_t, refusal only */

    ngx_str_t                   limit_name; /* the limit that refused */
    ngx_int_t                   limit_remaining;    /* -1: no limit */
    ngx_http_grpc_guard_limit_ctx_t  *limit;

    /*
     * who called and which rule and limit applied, as the auth, ACL
     * and limit stages find them; the audit record has a field for each
     * one that is not empty
     */

    ngx_str_t                   principal;      /* $grpc_guard_principal */
    ngx_str_t                   principal_kind; /* "jwt", "api_key+jwt" */
    ngx_str_t                   sub;        /* JWT "sub" */
    ngx_str_t                   iss;        /* JWT "iss" */
    ngx_str_t                   client;     /* API-key client id */
    ngx_str_t                   spiffe;     /* peer certificate SPIFFE ID */
    ngx_str_t                   fingerprint;    /* hex SHA-256, peer cert */
    ngx_str_t                   rule;       /* name= or FILE:LINE */

    ngx_uint_t                  auth;       /* methods that succeeded */
    ngx_http_grpc_guard_jwt_ctx_t  *jwt;    /* the verified token */
    ngx_http_grpc_guard_api_key_t  *api_key;    /* the key that matched */
    ngx_http_grpc_guard_peer_t  *peer;      /* a verified certificate */
    ngx_http_grpc_guard_peer_t  *xfcc;      /* x-forwarded-client-cert */
    ngx_http_grpc_guard_authz_ctx_t  *authz;    /* the engine's question */

    ngx_int_t                   grpc_status;    /* local reply, or -1 */
    ngx_uint_t                  stage;
    ngx_int_t                   result;     /* handler result when done */

    ngx_msec_t                  timeout;    /* grpc-timeout, ms */

    unsigned                    grpc:2;     /* NGX_HTTP_GRPC_GUARD_GRPC... */
    unsigned                    canonical:1;
    unsigned                    public:1;
    unsigned                    has_timeout:1;
    unsigned                    done:1;
    unsigned                    credentials:1;  /* some were presented */
    unsigned                    xfcc_read:1;    /* call.xfcc is known */
} ngx_http_grpc_guard_call_t;


/* the request context: survives internal redirects */

typedef struct {
    ngx_http_grpc_guard_call_t  call;
    ngx_http_grpc_guard_loc_conf_t  *conf;  /* location that decided */
    ngx_http_grpc_guard_message_ctx_t  body;    /* request messages */

    /* credential headers taken out of the request (ngx_table_elt_t *) */
    ngx_array_t                *taken;

    /* a wait for a subrequest's result (one per call at most) */
    ngx_http_grpc_guard_remote_wait_t  *remote;

    unsigned                    waiting:1;  /* an asynchronous step runs */
    unsigned                    rewritten:1;    /* an nginx error page */
} ngx_http_grpc_guard_ctx_t;


/* what an authentication method found when it did not succeed */

typedef struct {
    char                       *reason;
    ngx_str_t                  *message;    /* grpc-message, if not generic */
    ngx_uint_t                  status;     /* grpc-status; 0: 16 */
    unsigned                    presented:1;
} ngx_http_grpc_guard_auth_result_t;


typedef ngx_int_t (*ngx_http_grpc_guard_auth_pt)(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res);


/* a concern's part of the location merge (module.c calls them in turn) */
typedef char *(*ngx_http_grpc_guard_merge_pt)(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);

/* whether a location has what an authentication method needs */
typedef ngx_uint_t (*ngx_http_grpc_guard_configured_pt)(
    ngx_http_grpc_guard_loc_conf_t *glcf);

/* takes an authentication method's credential out of the request */
typedef ngx_int_t (*ngx_http_grpc_guard_strip_pt)(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);


/* ngx_http_grpc_guard_module.c: the access pipeline */

ngx_http_grpc_guard_ctx_t *ngx_http_grpc_guard_get_ctx(ngx_http_request_t *r);
ngx_http_grpc_guard_ctx_t *ngx_http_grpc_guard_create_ctx(
    ngx_http_request_t *r);
void ngx_http_grpc_guard_resume(ngx_http_request_t *r, ngx_int_t rc);
ngx_int_t ngx_http_grpc_guard_take_header(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_table_elt_t *h);
ngx_table_elt_t *ngx_http_grpc_guard_credential(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_str_t *name, ngx_uint_t *count);

/* ngx_http_grpc_guard_grpc.c: the gRPC protocol */

ngx_int_t ngx_http_grpc_guard_classify(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
ngx_uint_t ngx_http_grpc_guard_is_grpc(ngx_http_request_t *r);
void ngx_http_grpc_guard_raw_path(ngx_http_request_t *r, ngx_str_t *path);
ngx_int_t ngx_http_grpc_guard_refuse(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t status, char *reason);
ngx_int_t ngx_http_grpc_guard_send_refusal(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx);
ngx_int_t ngx_http_grpc_guard_final_status(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t *source);
ngx_int_t ngx_http_grpc_guard_parse_path(ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *path);
ngx_int_t ngx_http_grpc_guard_parse_timeout(ngx_str_t *value, ngx_msec_t *ms);
u_char *ngx_http_grpc_guard_format_timeout(u_char *p, ngx_msec_t ms);
char *ngx_http_grpc_guard_parse_pattern(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_grpc_guard_pattern_t *pattern);
char *ngx_http_grpc_guard_public_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_deadline_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_grpc_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_init_filters(ngx_conf_t *cf);

/* ngx_http_grpc_guard_util.c: header lists, files, connection memos */

ngx_table_elt_t *ngx_http_grpc_guard_find_header(ngx_list_t *headers,
    ngx_str_t *name, ngx_uint_t *count);
ngx_table_elt_t *ngx_http_grpc_guard_add_header(ngx_list_t *headers,
    ngx_str_t *key, ngx_str_t *value);
ngx_int_t ngx_http_grpc_guard_remove_header(ngx_list_t *list,
    ngx_table_elt_t *h, ngx_pool_t *pool);
ngx_int_t ngx_http_grpc_guard_read_file(ngx_conf_t *cf, ngx_pool_t *pool,
    ngx_str_t *name, size_t max, ngx_str_t *content);
void *ngx_http_grpc_guard_connection_memo(ngx_connection_t *c,
    ngx_pool_cleanup_pt handler, size_t size, ngx_uint_t create);
ngx_int_t ngx_http_grpc_guard_memo_room(ngx_pool_t *pool, u_char **data,
    size_t *size, size_t n, size_t min, size_t max);

ngx_int_t ngx_http_grpc_guard_jwt_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res);
ngx_int_t ngx_http_grpc_guard_jwt_value(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_uint_t header, ngx_str_t *name,
    ngx_str_t *value);
void ngx_http_grpc_guard_jwt_create_conf(ngx_http_grpc_guard_jwt_conf_t *conf);
char *ngx_http_grpc_guard_jwt_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_jwt_strip(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
ngx_uint_t ngx_http_grpc_guard_jwt_configured(
    ngx_http_grpc_guard_loc_conf_t *glcf);
ngx_int_t ngx_http_grpc_guard_jwt_init_main(ngx_conf_t *cf,
    ngx_http_grpc_guard_main_conf_t *gmcf);
char *ngx_http_grpc_guard_jwt_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_jwt_algorithms(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_jwt_list(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_jwt_max_lifetime(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_jwt_key_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_grpc_guard_variables.c */

ngx_int_t ngx_http_grpc_guard_add_variables(ngx_conf_t *cf);

void ngx_http_grpc_guard_jwt_identity(ngx_http_grpc_guard_ctx_t *ctx,
    ngx_str_t *sub, ngx_str_t *iss, ngx_str_t *id);
ngx_int_t ngx_http_grpc_guard_jwt_claim_match(ngx_http_request_t *r,
    ngx_http_grpc_guard_ctx_t *ctx, ngx_str_t *name, ngx_array_t *values,
    ngx_uint_t split);

/* ngx_http_grpc_guard_introspect.c: opaque tokens (RFC 7662) */

char *ngx_http_grpc_guard_introspection_request(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_introspect_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_uint_t ngx_http_grpc_guard_introspect_configured(
    ngx_http_grpc_guard_loc_conf_t *glcf);
ngx_uint_t ngx_http_grpc_guard_introspect_shared(
    ngx_http_grpc_guard_loc_conf_t *glcf);
ngx_int_t ngx_http_grpc_guard_introspect_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res);
ngx_int_t ngx_http_grpc_guard_introspect_reply(
    ngx_http_grpc_guard_remote_reply_t *reply, void *data);
ngx_http_grpc_guard_introspect_t *ngx_http_grpc_guard_introspect_create(
    ngx_pool_t *pool, ngx_msec_t cache, ngx_msec_t negative);

/* ngx_http_grpc_guard_apikey.c: API keys */

char *ngx_http_grpc_guard_api_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_api_key_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_uint_t ngx_http_grpc_guard_api_key_configured(
    ngx_http_grpc_guard_loc_conf_t *glcf);
ngx_int_t ngx_http_grpc_guard_api_key_strip(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
ngx_int_t ngx_http_grpc_guard_api_key_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res);
ngx_int_t ngx_http_grpc_guard_api_key_parse_line(ngx_conf_t *cf,
    ngx_str_t *file, ngx_uint_t line, u_char *p, u_char *last,
    ngx_array_t *keys);
time_t ngx_http_grpc_guard_api_key_parse_time(u_char *p, u_char *last);

/* ngx_http_grpc_guard_mtls.c: client certificate identity */

ngx_int_t ngx_http_grpc_guard_mtls_init(ngx_conf_t *cf);
ngx_http_grpc_guard_peer_t *ngx_http_grpc_guard_mtls_peer(
    ngx_http_request_t *r);
ngx_http_grpc_guard_peer_t *ngx_http_grpc_guard_mtls_identity(
    ngx_http_request_t *r);
ngx_uint_t ngx_http_grpc_guard_mtls_trusted(ngx_http_request_t *r,
    ngx_http_grpc_guard_peer_t *peer);
ngx_uint_t ngx_http_grpc_guard_mtls_configured(
    ngx_http_grpc_guard_loc_conf_t *glcf);
ngx_int_t ngx_http_grpc_guard_mtls_authenticate(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx,
    ngx_http_grpc_guard_auth_result_t *res);
#if (NGX_HTTP_SSL)
ngx_int_t ngx_http_grpc_guard_mtls_refused(ngx_http_request_t *r);
#endif

/* ngx_http_grpc_guard_xfcc.c: identity forwarded by a trusted proxy */

char *ngx_http_grpc_guard_xfcc_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_xfcc_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_xfcc_init(ngx_conf_t *cf);
ngx_int_t ngx_http_grpc_guard_xfcc_strip(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
ngx_int_t ngx_http_grpc_guard_xfcc_peer(ngx_http_request_t *r,
    ngx_http_grpc_guard_peer_t **peer);
ngx_int_t ngx_http_grpc_guard_xfcc_parse(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_http_grpc_guard_peer_t *peer, char **err);

/* ngx_http_grpc_guard_acl.c: method ACLs */

char *ngx_http_grpc_guard_acl_rule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_acl_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_acl_check(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
ngx_uint_t ngx_http_grpc_guard_acl_identity(ngx_http_grpc_guard_acl_t *acl);
ngx_http_grpc_guard_pattern_t *ngx_http_grpc_guard_acl_pattern(
    ngx_array_t *rules, ngx_uint_t i);
ngx_int_t ngx_http_grpc_guard_acl_text_match(ngx_str_t *text,
    ngx_array_t *values, ngx_uint_t words);

/* ngx_http_grpc_guard_authz.c: the external decision (OPA Data API) */

ngx_int_t ngx_http_grpc_guard_authz(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
ngx_int_t ngx_http_grpc_guard_authz_reply(ngx_str_t *body,
    ngx_str_t *decision);
char *ngx_http_grpc_guard_authz_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_authz_metadata(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_authz_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);

/* ngx_http_grpc_guard_limit.c: the rate limiter's policy */

ngx_int_t ngx_http_grpc_guard_limit(ngx_http_request_t *r,
    ngx_http_grpc_guard_loc_conf_t *glcf, ngx_http_grpc_guard_ctx_t *ctx);
void ngx_http_grpc_guard_limit_create_conf(
    ngx_http_grpc_guard_limit_conf_t *conf);
char *ngx_http_grpc_guard_limit_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_limit_init_main(ngx_conf_t *cf,
    ngx_http_grpc_guard_main_conf_t *gmcf);
char *ngx_http_grpc_guard_limit_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);

/* ngx_http_grpc_guard_limit_script.c: the limiter's script in Redis */

/*
 * A refused check's result: -(wait in ms * 32 + the limit over it,
 * 1-based); at most 16 limits a call
 */
#define NGX_HTTP_GRPC_GUARD_LIMIT_SCRIPT_SHIFT  32

extern ngx_str_t  ngx_http_grpc_guard_limit_script;

ngx_str_t *ngx_http_grpc_guard_limit_script_args(ngx_pool_t *pool,
    ngx_uint_t n);
void ngx_http_grpc_guard_limit_script_limit(ngx_str_t *argv, ngx_uint_t i,
    ngx_str_t *key, ngx_str_t *rate, ngx_str_t *window);
ngx_int_t ngx_http_grpc_guard_limit_script_result(void *reply, ngx_uint_t n,
    ngx_int_t *remaining, ngx_uint_t *index, ngx_msec_t *wait);

/* ngx_http_grpc_guard_redis.c: the Redis client */

char *ngx_http_grpc_guard_redis_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
void ngx_http_grpc_guard_redis_set_script(ngx_http_grpc_guard_redis_t *rd,
    ngx_str_t *script);
ngx_http_grpc_guard_redis_cmd_t *ngx_http_grpc_guard_redis_eval(
    ngx_http_grpc_guard_redis_t *rd, ngx_uint_t argc, ngx_str_t *argv,
    ngx_http_grpc_guard_redis_handler_pt handler, void *data);
void ngx_http_grpc_guard_redis_cancel(ngx_http_grpc_guard_redis_cmd_t *cmd);
ngx_int_t ngx_http_grpc_guard_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_grpc_guard_redis_exit_process(ngx_cycle_t *cycle);

/* ngx_http_grpc_guard_message.c: per-message size limits */

char *ngx_http_grpc_guard_max_message_size(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_message_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_message_init(ngx_conf_t *cf);

/* ngx_http_grpc_guard_remote.c: subrequests and their shared results */

ngx_http_grpc_guard_remote_t *ngx_http_grpc_guard_remote_add(ngx_conf_t *cf,
    ngx_uint_t kind, ngx_str_t *uri, size_t max_size, ngx_msec_t timeout,
    ngx_http_grpc_guard_remote_check_pt check, void *data);
ngx_str_t *ngx_http_grpc_guard_remote_uri(ngx_http_grpc_guard_remote_t *rm);

/*
 * keyed things (a result per SHA-256 key, each with its own expiry):
 * the outcomes of ngx_http_grpc_guard_remote_keyed() are described at the
 * top of ngx_http_grpc_guard_remote.c; the subrequest's body is "body",
 * the value of a variable whose handler calls
 * ngx_http_grpc_guard_remote_body() with the thing's kind
 */
ngx_http_grpc_guard_remote_t *ngx_http_grpc_guard_remote_add_keyed(
    ngx_conf_t *cf, ngx_uint_t kind, ngx_str_t *uri, size_t max_size,
    ngx_msec_t timeout, ngx_http_grpc_guard_remote_keyed_pt check,
    void *data);
ngx_int_t ngx_http_grpc_guard_remote_keyed(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, u_char *key, ngx_str_t *body,
    ngx_pool_t *pool, ngx_str_t *result, ngx_msec_t *expires);
ngx_int_t ngx_http_grpc_guard_remote_body(ngx_http_request_t *r,
    ngx_uint_t kind, ngx_str_t *value);
ngx_int_t ngx_http_grpc_guard_remote_result(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, ngx_uint_t *version,
    ngx_msec_t *fetched, ngx_pool_t *pool, ngx_str_t *text);
ngx_int_t ngx_http_grpc_guard_remote_fetch(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, ngx_uint_t version, ngx_msec_t refresh,
    ngx_msec_t interval, ngx_uint_t join);
void ngx_http_grpc_guard_remote_used(ngx_http_request_t *r,
    ngx_http_grpc_guard_remote_t *rm, ngx_uint_t found);
ngx_int_t ngx_http_grpc_guard_remote_age(ngx_http_request_t *r, ngx_uint_t i,
    ngx_uint_t *kind, ngx_str_t **uri, ngx_msec_t *age);
ngx_int_t ngx_http_grpc_guard_remote_init_main(ngx_conf_t *cf,
    ngx_http_grpc_guard_main_conf_t *gmcf);
char *ngx_http_grpc_guard_remote_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_grpc_guard_remote_init_filter(ngx_conf_t *cf);

/* ngx_http_grpc_guard_audit.c: the audit log */

char *ngx_http_grpc_guard_audit_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_audit_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_audit_init(ngx_conf_t *cf);

/* ngx_http_grpc_guard_metrics.c: counters, Prometheus exposition */

char *ngx_http_grpc_guard_metrics_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_grpc_guard_metrics_requests(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_metrics_services(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_grpc_guard_metrics_merge_conf(ngx_conf_t *cf,
    ngx_http_grpc_guard_loc_conf_t *prev,
    ngx_http_grpc_guard_loc_conf_t *conf);
ngx_int_t ngx_http_grpc_guard_metrics_init(ngx_conf_t *cf);
ngx_int_t ngx_http_grpc_guard_metrics_init_module(ngx_cycle_t *cycle);
ngx_uint_t ngx_http_grpc_guard_metrics_name(ngx_conf_t *cf, ngx_uint_t kind,
    ngx_str_t *name);
void ngx_http_grpc_guard_metrics_add(ngx_uint_t id, ngx_uint_t n);
void ngx_http_grpc_guard_metrics_auth(ngx_uint_t method, ngx_int_t rc,
    ngx_uint_t presented);
void ngx_http_grpc_guard_metrics_limit(ngx_uint_t limit, ngx_uint_t result);
void ngx_http_grpc_guard_metrics_redis(ngx_uint_t node, ngx_uint_t up);
void ngx_http_grpc_guard_metrics_remote(ngx_uint_t kind, ngx_uint_t result);
uint64_t ngx_http_grpc_guard_metrics_now(void);
void ngx_http_grpc_guard_metrics_latency(ngx_uint_t node, uint64_t start);


extern ngx_module_t  ngx_http_grpc_guard_module;


#endif /* _NGX_HTTP_GRPC_GUARD_MODULE_H_INCLUDED_ */
