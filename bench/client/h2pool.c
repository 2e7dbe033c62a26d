/*
 * Bench load client for calls that must each carry a different header:
 * h2load sends the same headers on every request, so it cannot make every
 * JWT distinct.  h2pool sends gRPC unary calls over h2c like h2load does,
 * and takes one header per request, in turn, from a pool file.
 *
 *   h2pool -c CONNS -m STREAMS -n N -d BODY [-H 'name: value']...
 *          -P POOL [-s STATE] [-g STATUS] [--log-file=FILE] URL
 *
 * POOL has one "name: value" header per line; request i carries line
 * (start + i) mod lines, where start is read from STATE (0 when absent) and
 * the next start is written back to it, so that consecutive runs go on
 * through the pool instead of sending its first tokens again.
 *
 * With -g, a call counts as succeeded only when its HTTP status is 200 and
 * its grpc-status is STATUS (h2load cannot see grpc-status).  The summary
 * lines and the --log-file lines (start, status, microseconds) have the
 * format of h2load's, which bench/run.sh reads.
 *
 * Only http://IPv4:PORT/path URLs; one thread, poll(2).
 */

#include <nghttp2/nghttp2.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define H2POOL_MAX_HEADERS  16


typedef struct {
    char            *name;
    size_t           name_len;
    char            *value;
    size_t           value_len;
} h2pool_header_t;


typedef struct h2pool_conn_s  h2pool_conn_t;

typedef struct {
    h2pool_conn_t   *conn;
    double           start;
    int              http_status;
    int              grpc_status;
    size_t           body_sent;
} h2pool_stream_t;


struct h2pool_conn_s {
    int              fd;
    nghttp2_session *session;
    int              in_flight;
    int              dead;
};


static struct {
    long             total;
    long             issued;
    long             done;
    long             succeeded;
    long             failed;
    long             errored;
    long             status_2xx;
    long             status_3xx;
    long             status_4xx;
    long             status_5xx;
    int              streams;
    int              want_grpc;
    char             authority[64];
    char            *path;
    unsigned char   *body;
    size_t           body_len;
    h2pool_header_t  headers[H2POOL_MAX_HEADERS];
    int              nheaders;
    h2pool_header_t *pool;
    long             pool_len;
    long             pool_start;
    FILE            *log;
} g;


static void
die(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fprintf(stderr, "h2pool: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* "name: value" -> header, names lower-cased as HTTP/2 wants them */

static int
parse_header(char *line, h2pool_header_t *h)
{
    char    *colon, *p;
    size_t   len;

    len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        line[--len] = '\0';
    }

    colon = strchr(line, ':');
    if (colon == NULL || colon == line) {
        return -1;
    }

    for (p = line; p < colon; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p += 'a' - 'A';
        }
    }

    h->name = line;
    h->name_len = colon - line;
    p = colon + 1;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    h->value = p;
    h->value_len = strlen(p);
    return 0;
}


static void
load_pool(const char *file)
{
    FILE    *f;
    char    *line;
    size_t   cap, n;
    ssize_t  len;

    f = fopen(file, "r");
    if (f == NULL) {
        die("%s: %s", file, strerror(errno));
    }

    cap = 1024;
    g.pool = malloc(cap * sizeof(h2pool_header_t));
    if (g.pool == NULL) {
        die("out of memory");
    }

    for ( ;; ) {
        line = NULL;
        n = 0;
        len = getline(&line, &n, f);
        if (len < 0) {
            free(line);
            break;
        }
        if (len <= 1) {
            free(line);
            continue;
        }
        if ((size_t) g.pool_len == cap) {
            cap *= 2;
            g.pool = realloc(g.pool, cap * sizeof(h2pool_header_t));
            if (g.pool == NULL) {
                die("out of memory");
            }
        }
        if (parse_header(line, &g.pool[g.pool_len]) != 0) {
            die("%s: line %ld is not \"name: value\"", file, g.pool_len + 1);
        }
        g.pool_len++;
    }

    fclose(f);

    if (g.pool_len == 0) {
        die("%s: no headers", file);
    }
}


static ssize_t
body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
    size_t length, uint32_t *flags, nghttp2_data_source *source,
    void *user_data)
{
    size_t            n;
    h2pool_stream_t  *st;

    (void) session;
    (void) stream_id;
    (void) user_data;

    st = source->ptr;
    n = g.body_len - st->body_sent;
    if (n > length) {
        n = length;
    }

    memcpy(buf, g.body + st->body_sent, n);
    st->body_sent += n;

    if (st->body_sent == g.body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }

    return n;
}


static void
submit(h2pool_conn_t *c)
{
    int                     i, n;
    long                    k;
    int32_t                 id;
    nghttp2_nv              nv[H2POOL_MAX_HEADERS + 5];
    h2pool_stream_t        *st;
    h2pool_header_t        *h;
    nghttp2_data_provider   dp;

#define NV(nm, nl, v, vl)                                                    \
    nv[n].name = (uint8_t *) (nm); nv[n].namelen = (nl);                     \
    nv[n].value = (uint8_t *) (v); nv[n].valuelen = (vl);                    \
    nv[n].flags = NGHTTP2_NV_FLAG_NONE; n++

    while (c->in_flight < g.streams && g.issued < g.total && !c->dead) {
        n = 0;
        NV(":method", 7, "POST", 4);
        NV(":scheme", 7, "http", 4);
        NV(":authority", 10, g.authority, strlen(g.authority));
        NV(":path", 5, g.path, strlen(g.path));

        for (i = 0; i < g.nheaders; i++) {
            h = &g.headers[i];
            NV(h->name, h->name_len, h->value, h->value_len);
        }

        k = (g.pool_start + g.issued) % g.pool_len;
        h = &g.pool[k];
        NV(h->name, h->name_len, h->value, h->value_len);

        st = calloc(1, sizeof(h2pool_stream_t));
        if (st == NULL) {
            die("out of memory");
        }
        st->conn = c;
        st->grpc_status = -1;
        st->start = now();

        dp.source.ptr = st;
        dp.read_callback = body_read;

        id = nghttp2_submit_request(c->session, NULL, nv, n, &dp, st);
        if (id < 0) {
            die("nghttp2_submit_request: %s", nghttp2_strerror(id));
        }

        c->in_flight++;
        g.issued++;
    }

#undef NV
}


static ssize_t
on_send(nghttp2_session *session, const uint8_t *data, size_t length,
    int flags, void *user_data)
{
    ssize_t         n;
    h2pool_conn_t  *c;

    (void) session;
    (void) flags;

    c = user_data;
    n = write(c->fd, data, length);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            return NGHTTP2_ERR_WOULDBLOCK;
        }
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }

    return n;
}


static int
on_header(nghttp2_session *session, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *user_data)
{
    char              buf[8];
    h2pool_stream_t  *st;

    (void) flags;
    (void) user_data;

    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }

    st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL || valuelen >= sizeof(buf)) {
        return 0;
    }

    memcpy(buf, value, valuelen);
    buf[valuelen] = '\0';

    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        st->http_status = atoi(buf);

    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        st->grpc_status = atoi(buf);
    }

    return 0;
}


static int
on_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
    void *user_data)
{
    int               ok;
    double            t;
    h2pool_stream_t  *st;

    (void) user_data;

    st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL) {
        return 0;
    }

    t = now();
    g.done++;
    st->conn->in_flight--;

    if (error_code != NGHTTP2_NO_ERROR || st->http_status == 0) {
        g.errored++;

    } else {
        if (st->http_status < 300) {
            g.status_2xx++;
        } else if (st->http_status < 400) {
            g.status_3xx++;
        } else if (st->http_status < 500) {
            g.status_4xx++;
        } else {
            g.status_5xx++;
        }

        ok = st->http_status == 200
             && (g.want_grpc < 0 || st->grpc_status == g.want_grpc);

        if (ok) {
            g.succeeded++;
        } else {
            g.failed++;
        }
    }

    if (g.log) {
        fprintf(g.log, "%.0f\t%d\t%.0f\n", st->start * 1e6,
                error_code == NGHTTP2_NO_ERROR && st->http_status
                ? st->http_status : -1,
                (t - st->start) * 1e6);
    }

    free(st);
    return 0;
}


static void
conn_open(h2pool_conn_t *c, struct sockaddr_in *sin)
{
    int                        on, rc;
    nghttp2_settings_entry     iv[2];
    nghttp2_session_callbacks *cb;

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        die("socket: %s", strerror(errno));
    }

    if (connect(c->fd, (struct sockaddr *) sin, sizeof(*sin)) != 0) {
        die("connect: %s", strerror(errno));
    }

    on = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);

    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);

    rc = nghttp2_session_client_new(&c->session, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) {
        die("nghttp2_session_client_new: %s", nghttp2_strerror(rc));
    }

    iv[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
    iv[0].value = 0;
    iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
    iv[1].value = 1 << 30;

    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                          1 << 30);
}


/* a connection lost: its calls in flight count as errors */

static void
conn_fail(h2pool_conn_t *c, const char *why)
{
    fprintf(stderr, "h2pool: connection lost: %s\n", why);
    g.errored += c->in_flight;
    g.done += c->in_flight;
    c->in_flight = 0;
    c->dead = 1;
    close(c->fd);
}


static void
conn_read(h2pool_conn_t *c)
{
    ssize_t  n, rc;
    uint8_t  buf[65536];

    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            conn_fail(c, strerror(errno));
            return;
        }

        if (n == 0) {
            conn_fail(c, "closed by the server");
            return;
        }

        rc = nghttp2_session_mem_recv(c->session, buf, n);
        if (rc < 0) {
            conn_fail(c, nghttp2_strerror((int) rc));
            return;
        }
    }
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: h2pool -c CONNS -m STREAMS -n N -d BODY [-H 'name: value']...\n"
        "              -P POOL [-s STATE] [-g STATUS] [--log-file=FILE] URL\n");
    exit(2);
}


static void
read_body(const char *file)
{
    FILE  *f;
    long   len;

    f = fopen(file, "rb");
    if (f == NULL) {
        die("%s: %s", file, strerror(errno));
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    g.body = malloc(len ? len : 1);
    if (g.body == NULL || fread(g.body, 1, len, f) != (size_t) len) {
        die("%s: cannot read", file);
    }
    g.body_len = len;
    fclose(f);
}


static void
parse_url(const char *url, struct sockaddr_in *sin)
{
    int          port;
    char         host[32];
    const char  *p, *slash, *colon;

    if (strncmp(url, "http://", 7) != 0) {
        die("only http:// URLs: %s", url);
    }

    p = url + 7;
    slash = strchr(p, '/');
    colon = strchr(p, ':');
    if (slash == NULL || colon == NULL || colon > slash
        || (size_t) (colon - p) >= sizeof(host))
    {
        die("want http://IPv4:PORT/path, got %s", url);
    }

    memcpy(host, p, colon - p);
    host[colon - p] = '\0';
    port = atoi(colon + 1);

    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sin->sin_addr)
        != 1)
    {
        die("bad address in %s", url);
    }

    snprintf(g.authority, sizeof(g.authority), "%s:%d", host, port);
    g.path = strdup(slash);
}


static void
state_read(const char *file)
{
    FILE  *f;

    f = fopen(file, "r");
    if (f == NULL) {
        return;
    }
    if (fscanf(f, "%ld", &g.pool_start) != 1 || g.pool_start < 0) {
        g.pool_start = 0;
    }
    fclose(f);
}


static void
state_write(const char *file)
{
    FILE  *f;

    f = fopen(file, "w");
    if (f == NULL) {
        die("%s: %s", file, strerror(errno));
    }
    fprintf(f, "%ld\n", (g.pool_start + g.issued) % g.pool_len);
    fclose(f);
}


int
main(int argc, char **argv)
{
    int                 i, conns, alive, rc;
    char               *body, *pool, *state, *url, *logf;
    double              t0, t1;
    h2pool_conn_t      *c, *cs;
    struct pollfd      *pfd;
    struct sockaddr_in  sin;

    conns = 1;
    g.streams = 1;
    g.want_grpc = -1;
    body = pool = state = url = logf = NULL;

    for (i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--log-file=", 11) == 0) {
            logf = argv[i] + 11;
            continue;
        }
        if (argv[i][0] != '-') {
            url = argv[i];
            continue;
        }
        if (i + 1 >= argc || argv[i][2] != '\0') {
            usage();
        }
        switch (argv[i][1]) {
        case 'c':
            conns = atoi(argv[++i]);
            break;
        case 'm':
            g.streams = atoi(argv[++i]);
            break;
        case 'n':
            g.total = atol(argv[++i]);
            break;
        case 'd':
            body = argv[++i];
            break;
        case 'P':
            pool = argv[++i];
            break;
        case 's':
            state = argv[++i];
            break;
        case 'g':
            g.want_grpc = atoi(argv[++i]);
            break;
        case 'H':
            if (g.nheaders == H2POOL_MAX_HEADERS) {
                die("too many -H");
            }
            if (parse_header(strdup(argv[++i]), &g.headers[g.nheaders])
                != 0)
            {
                die("-H wants \"name: value\"");
            }
            g.nheaders++;
            break;
        default:
            usage();
        }
    }

    if (url == NULL || pool == NULL || body == NULL || conns < 1
        || g.streams < 1 || g.total < 1)
    {
        usage();
    }

    parse_url(url, &sin);
    read_body(body);
    load_pool(pool);
    if (state) {
        state_read(state);
        g.pool_start %= g.pool_len;
    }
    if (logf) {
        g.log = fopen(logf, "w");
        if (g.log == NULL) {
            die("%s: %s", logf, strerror(errno));
        }
    }

    cs = calloc(conns, sizeof(h2pool_conn_t));
    pfd = calloc(conns, sizeof(struct pollfd));
    if (cs == NULL || pfd == NULL) {
        die("out of memory");
    }

    t0 = now();

    for (i = 0; i < conns; i++) {
        conn_open(&cs[i], &sin);
        submit(&cs[i]);
    }

    while (g.done < g.total) {
        alive = 0;

        for (i = 0; i < conns; i++) {
            c = &cs[i];
            pfd[i].fd = -1;
            pfd[i].events = 0;
            if (c->dead) {
                continue;
            }

            rc = nghttp2_session_send(c->session);
            if (rc != 0) {
                conn_fail(c, nghttp2_strerror(rc));
                continue;
            }

            pfd[i].fd = c->fd;
            pfd[i].events = POLLIN;
            if (nghttp2_session_want_write(c->session)) {
                pfd[i].events |= POLLOUT;
            }
            alive++;
        }

        if (alive == 0) {
            break;
        }

        if (poll(pfd, conns, 10000) <= 0) {
            fprintf(stderr, "h2pool: no progress for 10 s\n");
            break;
        }

        for (i = 0; i < conns; i++) {
            c = &cs[i];
            if (c->dead || pfd[i].revents == 0) {
                continue;
            }
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                conn_read(c);
            }
            submit(c);
        }
    }

    t1 = now();

    for (i = 0; i < conns; i++) {
        if (!cs[i].dead) {
            nghttp2_session_del(cs[i].session);
            close(cs[i].fd);
        }
    }

    if (state) {
        state_write(state);
    }
    if (g.log) {
        fclose(g.log);
    }

    printf("finished in %.2fs, %.2f req/s, pool %ld headers from %ld\n",
           t1 - t0, (t1 > t0) ? g.done / (t1 - t0) : 0.0, g.pool_len,
           g.pool_start);
    printf("requests: %ld total, %ld started, %ld done, %ld succeeded, "
           "%ld failed, %ld errored, 0 timeout\n", g.total, g.issued,
           g.done, g.succeeded, g.failed, g.errored);
    printf("status codes: %ld 2xx, %ld 3xx, %ld 4xx, %ld 5xx\n",
           g.status_2xx, g.status_3xx, g.status_4xx, g.status_5xx);

    return (g.done == g.total && g.succeeded == g.total) ? 0 : 1;
}
