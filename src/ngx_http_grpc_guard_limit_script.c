
/*
 * Copyright (C) ngx_http_grpc_guard_module authors
 */


/*
 * The limiter's Redis script, the arguments of one check and the
 * result of one check.  The Redis client (ngx_http_grpc_guard_redis.c)
 * sends the checks queued on a connection in one script call,
 * "EVALSHA sha 0 check1 check2 ...", and hands each check the element
 * of the reply array at its place; it knows nothing else of them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_grpc_guard_module.h"


/*
 * ARGV holds the checks one after the other: the number n of limits
 * of the check, then for each limit its key (a hash whose fields are
 * window numbers), its rate and its window in ms.  The keys are not
 * declared (numkeys 0): a batch touches the keys of many calls.
 *
 * The checks are made in order, on one clock (Redis TIME), each atomic:
 * all its limits pass and the call is counted against all of them, or
 * it is refused and counted nowhere.  The result of a check is the
 * calls remaining (>= 0), or -(wait * 32 + the limit over it).  The
 * wait is exact as long as no other call is admitted meanwhile, and
 * none is: until then every call of that key is over the limit.
 *
 * A key is read once per batch: its counts are kept in the script,
 * and the calls admitted are added at the end, one HINCRBY per key
 * and window; the script being atomic, the checks see exactly what
 * they would see one at a time.  The first calls of a window in a key
 * drop the field two windows back and set the key to expire two
 * windows on: the key outlives the last window it counts.
 */

ngx_str_t  ngx_http_grpc_guard_limit_script = ngx_string(
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local out, cw, seen, a = {}, {}, {}, 1\n"
    "while a <= #ARGV do\n"
    "  local n = tonumber(ARGV[a])\n"
    "  local rem, wait, worst = -1, 0, 0\n"
    "  for i = 1, n do\n"
    "    local k = a + 3 * i - 2\n"
    "    local lim = tonumber(ARGV[k + 1])\n"
    "    local win = tonumber(ARGV[k + 2])\n"
    "    local key = ARGV[k]\n"
    "    local byw = seen[key]\n"
    "    if not byw then byw = {}; seen[key] = byw end\n"
    "    local c = byw[win]\n"
    "    if not c then\n"
    "      local w = math.floor(now / win)\n"
    "      local v = redis.call('HMGET', key, w, w - 1)\n"
    "      c = {w, tonumber(v[1]) or 0, tonumber(v[2]) or 0, 0}\n"
    "      byw[win] = c\n"
    "    end\n"
    "    local cur, prev = c[2], c[3]\n"
    "    local e = now - c[1] * win\n"
    "    local est = prev * (win - e) / win + cur\n"
    "    if est + 1 > lim then\n"
    "      local d\n"
    "      if cur + 1 > lim then\n"
    "        d = win - e + math.ceil(win * (1 - (lim - 1) / cur))\n"
    "      else\n"
    "        d = math.ceil(win * (1 - (lim - 1 - cur) / prev)) - e\n"
    "      end\n"
    "      if d < 1 then d = 1 end\n"
    "      if d > wait then wait = d; worst = i end\n"
    "    else\n"
    "      local r = math.floor(lim - est - 1)\n"
    "      if rem < 0 or r < rem then rem = r end\n"
    "    end\n"
    "    cw[i] = c\n"
    "  end\n"
    "  if worst > 0 then\n"
    "    out[#out + 1] = -(wait * 32 + worst)\n"
    "  else\n"
    "    for i = 1, n do\n"
    "      local c = cw[i]\n"
    "      c[2] = c[2] + 1\n"
    "      c[4] = c[4] + 1\n"
    "    end\n"
    "    out[#out + 1] = rem\n"
    "  end\n"
    "  a = a + 1 + 3 * n\n"
    "end\n"
    "for key, byw in pairs(seen) do\n"
    "  for win, c in pairs(byw) do\n"
    "    if c[4] > 0\n"
    "       and redis.call('HINCRBY', key, c[1], c[4]) == c[4]\n"
    "    then\n"
    "      redis.call('HDEL', key, c[1] - 2)\n"
    "      redis.call('PEXPIRE', key, 2 * win)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n");


ngx_str_t *
ngx_http_grpc_guard_limit_script_args(ngx_pool_t *pool, ngx_uint_t n)
{
    u_char     *p;
    ngx_str_t  *argv;

    argv = ngx_palloc(pool, (1 + 3 * n) * sizeof(ngx_str_t) + NGX_INT_T_LEN);
    if (argv == NULL) {
        return NULL;
    }

    /* the number of limits; the caller sets each with _script_limit() */

    p = (u_char *) &argv[1 + 3 * n];

    argv[0].data = p;
    argv[0].len = ngx_sprintf(p, "%ui", n) - p;

    return argv;
}


void
ngx_http_grpc_guard_limit_script_limit(ngx_str_t *argv, ngx_uint_t i,
    ngx_str_t *key, ngx_str_t *rate, ngx_str_t *window)
{
    argv[1 + 3 * i] = *key;
    argv[2 + 3 * i] = *rate;
    argv[3 + 3 * i] = *window;
}


ngx_int_t
ngx_http_grpc_guard_limit_script_result(void *data, ngx_uint_t n,
    ngx_int_t *remaining, ngx_uint_t *index, ngx_msec_t *wait)
{
    redisReply  *reply = data;

    long long  v, w;

    /*
     * NGX_OK: allowed; NGX_DECLINED: refused by limit *index (0-based)
     * for *wait ms; NGX_ERROR: not a result of the script
     */

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_ERROR;
    }

    v = reply->integer;

    if (v >= 0) {
        *remaining = (v > NGX_MAX_INT_T_VALUE) ? NGX_MAX_INT_T_VALUE
                                               : (ngx_int_t) v;
        return NGX_OK;
    }

    if (v < -(long long) (2 * 3600 * 1000 + 1)
                          * NGX_HTTP_GRPC_GUARD_LIMIT_SCRIPT_SHIFT)
    {
        return NGX_ERROR;
    }

    v = -v;
    w = v / NGX_HTTP_GRPC_GUARD_LIMIT_SCRIPT_SHIFT;
    v %= NGX_HTTP_GRPC_GUARD_LIMIT_SCRIPT_SHIFT;

    if (v < 1 || (ngx_uint_t) v > n || w < 1 || w > 2 * 3600 * 1000) {
        return NGX_ERROR;
    }

    *index = (ngx_uint_t) v - 1;
    *wait = (ngx_msec_t) w;

    return NGX_DECLINED;
}
