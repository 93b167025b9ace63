#include "api/http.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <h2o/http1.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/uri.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

/* The name of our only host configuration. A request without a Host header is given this
 * authority by h2o, which is how an HTTP/1.1 request missing it is told apart. */
#define HOST_NAME "conferenced.invalid"
#define MAX_HEADER_NAME 64

struct http_conn;
struct pending;

struct http_server {
    uv_loop_t *loop;
    struct http_config cfg;
    char addr[64];
    char cors[256]; /* cfg.cors_origin */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_hostconf_t *host;
    uv_tcp_t *listener; /* NULL once closed */
    struct api *api;
    struct ws_hub *hub;
    unsigned inflight;
    struct idmap per_addr;    /* client address -> open connections (HTTP and WebSocket) */
    size_t n_conns;           /* open connections, as counted against the limits */
    struct http_conn *conns;  /* connections h2o is serving (not yet handed to the hub) */
    struct pending *pendings; /* requests waiting for the API's answer */
    uint64_t accepted, refused_total, refused_per_address;
    struct log_limit refusal_log;
    int port;
    bool stopping; /* http_stop() was called */
};

struct handler {
    h2o_handler_t super;
    struct http_server *srv;
};

/* One connection h2o serves. The uv handle comes first: h2o's close callback hands it back. */
struct http_conn {
    uv_tcp_t tcp;
    struct http_server *srv;
    h2o_socket_t *sock;
    struct http_conn *prev, *next;
    char ip[INET6_ADDRSTRLEN];
    bool counted;  /* counted against the limits */
    bool upgraded; /* handed to the WebSocket hub, which now holds the count */
};

/* A request the API answers later. The guard lives in the request's memory pool, so h2o tells us
 * when the request is gone (its connection closed) before the answer comes. */
struct guard {
    struct pending *p;
};

struct pending {
    struct http_server *srv; /* NULL once the server stopped */
    h2o_req_t *req;          /* NULL once h2o freed the request */
    struct guard *guard;
    struct api_response *ready; /* the answer came during api_handle() itself */
    bool async;
    struct pending *prev, *next;
};

/* A WebSocket taken over from h2o: the hub owns the socket until it calls ws_closed. */
struct ws_link {
    struct http_server *srv;
    int fd;
    char ip[INET6_ADDRSTRLEN];
};

/* What the API's header() and query() lookups read. */
struct req_view {
    h2o_req_t *req;
    struct uri_query query;
};

#define LINK(head, x)                                                                              \
    do {                                                                                           \
        (x)->prev = NULL;                                                                          \
        (x)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (x);                                                                    \
        (head) = (x);                                                                              \
    } while (0)
#define UNLINK(head, x)                                                                            \
    do {                                                                                           \
        if ((x)->prev)                                                                             \
            (x)->prev->next = (x)->next;                                                           \
        else                                                                                       \
            (head) = (x)->next;                                                                    \
        if ((x)->next)                                                                             \
            (x)->next->prev = (x)->prev;                                                           \
        (x)->prev = (x)->next = NULL;                                                              \
    } while (0)

/* ---- limits ---- */

static int addr_count(const struct http_server *s, const char *ip)
{
    return (int)(intptr_t)idmap_get(&s->per_addr, ip);
}

static void addr_adjust(struct http_server *s, const char *ip, int delta)
{
    int n = addr_count(s, ip) + delta;
    if (n > 0)
        idmap_put(&s->per_addr, ip, (void *)(intptr_t)n);
    else
        idmap_del(&s->per_addr, ip);
}

static void release_count(struct http_server *s, const char *ip)
{
    addr_adjust(s, ip, -1);
    s->n_conns--;
}

/* Refusals are logged at most once a second, with how many there were. */
static void log_refusal(struct http_server *s, const char *ip, const char *setting, int limit)
{
    uint64_t before;
    if (log_limit_allow(&s->refusal_log, tm_now_us(), 1000000, 1, &before))
        log_warn("msg=\"connection refused\" address=%s setting=%s limit=%d not_logged_before=%llu",
                 ip, setting, limit, (unsigned long long)before);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* A refused connection: one JSON answer (written without waiting), then closed. */
static void refused_closed(uv_handle_t *h)
{
    free(h);
}

static void refuse(uv_tcp_t *tcp, enum err_status status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refuse(uv_tcp_t *tcp, enum err_status status, const char *reason, const char *fmt, ...)
{
    struct error e = {.status = status};
    str_copy(e.reason, sizeof(e.reason), reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    struct api_response r;
    api_error_response(&r, &e);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "X-Request-Id: %s\r\nConnection: close\r\n\r\n",
                     r.status, reason_phrase(r.status), r.body_len, r.request_id);
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)n), uv_buf_init(r.body, (unsigned)r.body_len)};
    (void)uv_try_write((uv_stream_t *)tcp, bufs, 2);
    api_response_fini(&r);
    uv_close((uv_handle_t *)tcp, refused_closed);
}

/* ---- connections ---- */

/* After http_stop(): h2o leaves a timeout's uv timer running until it fires even when nothing
 * waits on it any more; stop the idle ones so the loop can end at once. */
static void stop_idle_timers(struct http_server *s)
{
    h2o_timeout_t *all[] = {&s->ctx.zero_timeout,
                            &s->ctx.one_sec_timeout,
                            &s->ctx.hundred_ms_timeout,
                            &s->ctx.handshake_timeout,
                            &s->ctx.http1.req_timeout,
                            &s->ctx.http2.idle_timeout,
                            &s->ctx.http2.graceful_shutdown_timeout,
                            &s->ctx.proxy.io_timeout};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (h2o_linklist_is_empty(&all[i]->_entries))
            uv_timer_stop(&all[i]->_backend.timer);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct http_conn *c = (struct http_conn *)h;
    struct http_server *s = c->srv;
    UNLINK(s->conns, c);
    if (c->counted && !c->upgraded)
        release_count(s, c->ip);
    free(c);
    if (s->stopping)
        stop_idle_timers(s);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status < 0)
        return;
    uv_tcp_t *tcp = xcalloc(1, sizeof(struct http_conn));
    uv_tcp_init(s->loop, tcp);
    if (uv_accept(listener, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, refused_closed);
        return;
    }
    struct http_conn *c = (struct http_conn *)tcp;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->ip, sizeof(c->ip));
    else
        str_copy(c->ip, sizeof(c->ip), "unknown");
    if (s->n_conns >= (size_t)s->cfg.max_connections) {
        s->refused_total++;
        log_refusal(s, c->ip, "http_max_connections", s->cfg.max_connections);
        refuse(tcp, ERR_UNAVAILABLE, "TOO_MANY_CONNECTIONS",
               "The server has %d open connections, its limit (setting http_max_connections); "
               "try again shortly.",
               s->cfg.max_connections);
        return;
    }
    if (addr_count(s, c->ip) >= s->cfg.max_connections_per_address) {
        s->refused_per_address++;
        log_refusal(s, c->ip, "http_max_connections_per_address",
                    s->cfg.max_connections_per_address);
        refuse(tcp, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_CONNECTIONS",
               "Address %s already has %d open connections, the most one address may have "
               "(setting http_max_connections_per_address); close some or reuse them.",
               c->ip, s->cfg.max_connections_per_address);
        return;
    }
    s->accepted++;
    s->n_conns++;
    addr_adjust(s, c->ip, 1);
    c->counted = true;
    c->srv = s;
    LINK(s->conns, c);
    c->sock = h2o_uv_socket_create((uv_stream_t *)tcp, on_conn_closed);
    h2o_accept(&s->accept_ctx, c->sock);
}

/* ---- answers ---- */

static void free_body(void *p)
{
    free(*(char **)p);
}

/* The request id and the response's extra headers. */
static void add_headers(h2o_req_t *req, const struct api_response *r)
{
    h2o_iovec_t id = h2o_strdup(&req->pool, r->request_id, strlen(r->request_id));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0,
                          "X-Request-Id", id.base, id.len);
    for (int i = 0; i < r->n_headers; i++) {
        h2o_iovec_t n = h2o_strdup(&req->pool, r->headers[i].name, strlen(r->headers[i].name));
        h2o_iovec_t v = h2o_strdup(&req->pool, r->headers[i].value, strlen(r->headers[i].value));
        h2o_strtolower(n.base, n.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, r->headers[i].name,
                              v.base, v.len);
    }
}

/* Sends an API response on an h2o request; the body is handed to the request's pool. */
static void send_response(h2o_req_t *req, struct api_response *r)
{
    req->res.status = r->status;
    req->res.reason = reason_phrase(r->status);
    if (r->status == 204) { /* no body, and so neither a length nor a type */
        req->res.content_length = SIZE_MAX;
    } else {
        req->res.content_length = r->body_len;
        const char *type = r->body_type ? r->body_type : "application/json";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
                       strlen(type));
    }
    add_headers(req, r);
    char **owned = h2o_mem_alloc_shared(&req->pool, sizeof(*owned), free_body);
    *owned = r->body;
    h2o_iovec_t body = h2o_iovec_init(r->body, r->body_len);
    r->body = NULL;
    static h2o_generator_t generator = {NULL, NULL};
    h2o_start_response(req, &generator);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) || r->body_len == 0)
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

static void send_error(h2o_req_t *req, enum err_status status, const char *reason,
                       const char *message, bool close)
{
    struct error e = {.status = status};
    str_copy(e.reason, sizeof(e.reason), reason);
    str_copy(e.message, sizeof(e.message), message);
    struct api_response r;
    api_error_response(&r, &e);
    if (close)
        req->http1_is_persistent = 0;
    send_response(req, &r);
    api_response_fini(&r);
}

static void ws_closed(void *arg)
{
    struct ws_link *link = arg;
    close(link->fd);
    release_count(link->srv, link->ip);
    free(link);
}

struct upgrade {
    struct http_server *srv;
    struct http_conn *conn;
    enum api_ws_kind kind;
    struct ws_credential cred;
};

/* h2o has sent our 101: take the socket (and any bytes already read past the request) out of
 * h2o and give it to the WebSocket hub. */
static void on_upgraded(void *data, h2o_socket_t *sock, size_t reqsize)
{
    struct upgrade *u = data;
    struct http_server *s = u->srv;
    if (!sock) { /* the 101 could not be written: h2o closed the connection */
        free(u);
        return;
    }
    struct ws_link *link = xcalloc(1, sizeof(*link));
    link->srv = s;
    str_copy(link->ip, sizeof(link->ip), u->conn->ip);
    u->conn->upgraded = true; /* the count moves to the link */
    h2o_buffer_consume(&sock->input, reqsize);
    h2o_socket_export_t info;
    if (h2o_socket_export(sock, &info) != 0) {
        h2o_socket_close(sock);
        release_count(s, link->ip);
        free(link);
        free(u);
        return;
    }
    link->fd = info.fd;
    if (u->kind == API_WS_SIP && s->cfg.sip_ws.accept)
        s->cfg.sip_ws.accept(s->cfg.sip_ws.ctx, info.fd, info.input->bytes, info.input->size,
                             ws_closed, link);
    else if (u->kind == API_WS_SIP)
        ws_closed(link);
    else
        ws_hub_accept(s->hub, info.fd, info.input->bytes, info.input->size, &u->cred, ws_closed,
                      link);
    h2o_buffer_dispose(&info.input);
    free(u);
}

static struct http_conn *conn_of(struct http_server *s, h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    for (struct http_conn *c = s->conns; c && sock; c = c->next)
        if (c->sock == sock)
            return c;
    return NULL;
}

static void start_upgrade(struct http_server *s, h2o_req_t *req, struct api_response *r)
{
    struct http_conn *c = conn_of(s, req);
    if (req->version >= 0x200 || !c) {
        send_error(req, ERR_INVALID_ARGUMENT, "WEBSOCKET_REQUIRED",
                   "A WebSocket needs an HTTP/1.1 connection (Upgrade: websocket).", false);
        return;
    }
    if (r->ws_kind == API_WS_SIP) {
        char why[256] = "SIP over WebSocket is not available on this server.";
        int rc = !s->cfg.sip_ws.accept ? -2
                 : s->cfg.sip_ws.admit ? s->cfg.sip_ws.admit(s->cfg.sip_ws.ctx, why, sizeof(why))
                                       : 0;
        if (rc < 0) {
            send_error(req, ERR_UNAVAILABLE,
                       rc == -1 ? "TOO_MANY_SIP_CONNECTIONS" : "SIP_UNAVAILABLE", why, false);
            return;
        }
    }
    struct upgrade *u = xcalloc(1, sizeof(*u));
    u->srv = s;
    u->conn = c;
    u->kind = r->ws_kind;
    u->cred = r->ws_cred;
    req->res.status = 101;
    req->res.reason = reason_phrase(101);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_iovec_t accept = h2o_strdup(&req->pool, r->ws_accept, strlen(r->ws_accept));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0,
                          "Sec-WebSocket-Accept", accept.base, accept.len);
    if (r->ws_protocol) /* RFC 6455 4.2.2: the one subprotocol we speak, of those offered */
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-protocol"),
                              0, "Sec-WebSocket-Protocol", r->ws_protocol, strlen(r->ws_protocol));
    h2o_iovec_t id = h2o_strdup(&req->pool, r->request_id, strlen(r->request_id));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0,
                          "X-Request-Id", id.base, id.len);
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, u);
}

/* A file answer (a recording): a part of a file read in chunks of FILE_CHUNK as the client takes
 * them (h2o calls proceed when the last chunk is out), so a slow reader holds one chunk, not the
 * file. The reads are of the page cache of a file the recorder has finished, on the loop. */
#define FILE_CHUNK 65536

struct file_gen {
    h2o_generator_t super;
    int fd;
    uint64_t off, left;
    char buf[FILE_CHUNK];
};

static void file_close(struct file_gen *g)
{
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
}

static void file_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    struct file_gen *g = (struct file_gen *)self;
    size_t want = g->left < FILE_CHUNK ? (size_t)g->left : FILE_CHUNK;
    ssize_t n = want ? pread(g->fd, g->buf, want, (off_t)g->off) : 0;
    if (n < 0 || (size_t)n != want) { /* the file shrank or failed: end the body short */
        file_close(g);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    g->off += (uint64_t)n;
    g->left -= (uint64_t)n;
    h2o_iovec_t v = h2o_iovec_init(g->buf, (size_t)n);
    bool last = g->left == 0;
    if (last)
        file_close(g);
    h2o_send(req, &v, 1, last ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void file_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    file_close((struct file_gen *)self);
}

static void file_dispose(void *p)
{
    file_close(p);
}

static void send_file(h2o_req_t *req, struct api_response *r)
{
    int fd = open(r->file_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { /* gone between the lookup and now (deleted meanwhile) */
        struct error e;
        error_set(&e, ERR_NOT_FOUND, "FILE_NOT_FOUND", "The file is no longer there.");
        struct api_response er;
        api_error_response(&er, &e);
        send_response(req, &er);
        api_response_fini(&er);
        return;
    }
    struct file_gen *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), file_dispose);
    g->super.proceed = file_proceed;
    g->super.stop = file_stop;
    g->fd = fd;
    g->off = r->file_offset;
    g->left = r->file_length;
    req->res.status = r->status;
    req->res.reason = reason_phrase(r->status);
    req->res.content_length = r->file_length;
    const char *type = r->file_type ? r->file_type : "application/octet-stream";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL,
                   H2O_STRLIT("bytes"));
    add_headers(req, r);
    h2o_start_response(req, &g->super);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) || g->left == 0) {
        file_close(g);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    file_proceed(&g->super, req);
}

/* CORS (the Fetch standard): a page on an allowed origin may read our answers, and the headers
 * a WHIP client needs (Location). Credentials are bearer tokens, never cookies, so no
 * Allow-Credentials. */
static bool cors_request(const struct http_server *s, h2o_req_t *req)
{
    return s->cors[0] && h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1) >= 0;
}

static void add_cors(struct http_server *s, h2o_req_t *req)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   s->cors, strlen(s->cors));
    h2o_add_header_by_str(&req->pool, &req->res.headers,
                          H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                          H2O_STRLIT("Location, X-Request-Id, Content-Range, Retry-After"));
    if (strcmp(s->cors, "*") != 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
}

/* A preflight (OPTIONS with Access-Control-Request-Method): 204 naming what may be sent. */
static bool cors_preflight(struct http_server *s, h2o_req_t *req)
{
    if (!cors_request(s, req) ||
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) ||
        h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) < 0)
        return false;
    req->res.status = 204;
    req->res.reason = "No Content";
    add_cors(s, req);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"),
                          0, NULL, H2O_STRLIT("GET, POST, PUT, DELETE, PATCH"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"),
                          0, NULL, H2O_STRLIT("Authorization, Content-Type, Range"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0,
                          NULL, H2O_STRLIT("600"));
    h2o_send_inline(req, NULL, 0);
    return true;
}

static void answer(struct http_server *s, h2o_req_t *req, struct api_response *r)
{
    if (!r->ws_upgrade && cors_request(s, req))
        add_cors(s, req);
    if (r->ws_upgrade)
        start_upgrade(s, req, r);
    else if (r->file_path)
        send_file(req, r);
    else
        send_response(req, r);
}

/* ---- pending answers ---- */

static void guard_dispose(void *arg)
{
    struct guard *g = arg;
    struct pending *p = g->p;
    if (!p)
        return;
    p->req = NULL;
    p->guard = NULL;
    if (p->srv && p->srv->inflight)
        p->srv->inflight--; /* it will never be answered */
}

static void on_done(void *arg, struct api_response *r)
{
    struct pending *p = arg;
    if (!p->async) { /* still inside api_handle() */
        p->ready = r;
        return;
    }
    struct http_server *s = p->srv;
    if (s) {
        UNLINK(s->pendings, p);
        if (p->req) {
            p->guard->p = NULL;
            if (s->inflight)
                s->inflight--;
            answer(s, p->req, r);
        }
    }
    api_response_fini(r);
    free(r);
    free(p);
}

/* ---- requests ---- */

static const char *view_header(void *ctx, const char *name)
{
    struct req_view *v = ctx;
    h2o_req_t *req = v->req;
    char lower[MAX_HEADER_NAME];
    size_t n = strlen(name);
    if (n >= sizeof(lower))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    h2o_iovec_t value;
    if (!strcmp(lower, "upgrade")) {
        value = req->upgrade;
    } else if (!strcmp(lower, "host")) {
        value = req->input.authority;
    } else {
        ssize_t i = h2o_find_header_by_str(&req->headers, lower, n, -1);
        if (i < 0)
            return NULL;
        value = req->headers.entries[i].value;
    }
    if (!value.base)
        return NULL;
    return h2o_strdup(&req->pool, value.base, value.len).base;
}

static const char *view_query(void *ctx, const char *key)
{
    struct req_view *v = ctx;
    return uri_query_get(&v->query, key);
}

/* h2o reads one Content-Length and drops the header; two that disagree would let a proxy in
 * front of us and us see different requests. The request head is still at the start of the
 * connection's input buffer while the handler runs (HTTP/1 only). */
static bool conflicting_content_length(h2o_req_t *req)
{
    if (req->version >= 0x200 || !req->conn->callbacks->get_socket)
        return false;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (!sock || !sock->input)
        return false;
    const char *p = sock->input->bytes, *end = p + sock->input->size;
    const char *first = NULL;
    size_t first_len = 0;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return false;
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (len == 0)
            return false; /* the end of the head */
        if (len > 15 && !strncasecmp(p, "content-length:", 15)) {
            const char *v = p + 15, *ve = p + len;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (!first) {
                first = v;
                first_len = (size_t)(ve - v);
            } else if ((size_t)(ve - v) != first_len || memcmp(first, v, first_len) != 0) {
                return true;
            }
        }
        p = nl + 1;
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct http_server *s = ((struct handler *)self)->srv;
    if (req->version == 0x101 && req->input.authority.base == s->host->authority.hostport.base) {
        send_error(req, ERR_INVALID_ARGUMENT, "MISSING_HOST",
                   "An HTTP/1.1 request needs a Host header.", true);
        return 0;
    }
    if (conflicting_content_length(req)) {
        send_error(req, ERR_INVALID_ARGUMENT, "INVALID_CONTENT_LENGTH",
                   "The request has Content-Length headers that disagree.", true);
        return 0;
    }
    if (cors_preflight(s, req))
        return 0;
    /* The target as sent: origin form "/path?query", or absolute form "http://host/path". */
    const char *t = req->input.path.base;
    size_t tlen = req->input.path.len;
    if (tlen > 7 && (!strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8))) {
        const char *slash = memchr(t + 8, '/', tlen - 8);
        size_t skip = slash ? (size_t)(slash - t) : tlen;
        t += skip;
        tlen -= skip;
    }
    const char *q = memchr(t, '?', tlen);
    size_t plen = q ? (size_t)(q - t) : tlen;
    struct req_view view = {.req = req};
    const char *uri_error = NULL;
    if (q) {
        int rc = uri_query_parse(&view.query, q + 1, tlen - plen - 1);
        if (rc < 0)
            uri_error = uri_result_text(rc);
    }
    char ip[INET6_ADDRSTRLEN] = "";
    struct sockaddr_storage ss;
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) &&
        ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
    struct api_request areq = {
        .method = h2o_strdup(&req->pool, req->method.base, req->method.len).base,
        .path = plen ? h2o_strdup(&req->pool, t, plen).base : "/",
        .body = req->entity.base,
        .body_len = req->entity.base ? req->entity.len : 0,
        .uri_error = uri_error,
        .client_ip = ip,
        .query = view_query,
        .header = view_header,
        .ctx = &view,
    };
    s->inflight++;
    struct pending *p = xcalloc(1, sizeof(*p));
    p->srv = s;
    p->req = req;
    struct api_response r;
    int rc = api_handle(s->api, &areq, &r, on_done, p);
    uri_query_fini(&view.query);
    if (rc == 1 && !p->ready) { /* answered later, through on_done */
        p->async = true;
        p->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*p->guard), guard_dispose);
        p->guard->p = p;
        LINK(s->pendings, p);
        return 0;
    }
    s->inflight--;
    if (rc == 1) {
        answer(s, req, p->ready);
        api_response_fini(p->ready);
        free(p->ready);
    } else {
        answer(s, req, &r);
        api_response_fini(&r);
    }
    free(p);
    return 0;
}

/* ---- h2o's own error answers as JSON ---- */

/* h2o answers some malformed requests itself (a bad or too large Content-Length, a broken
 * chunked body, an unknown Expect) with a text/plain body; this output filter turns each into
 * our JSON error envelope. (Requests it cannot parse at all get its fixed "400 Bad Request".) */
struct json_error_ostream {
    h2o_ostream_t super;
};

static void json_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                            h2o_send_state_t state)
{
    char text[200];
    size_t len = 0;
    for (size_t i = 0; i < n && len + 1 < sizeof(text); i++) {
        size_t take = bufs[i].len < sizeof(text) - 1 - len ? bufs[i].len : sizeof(text) - 1 - len;
        memcpy(text + len, bufs[i].base, take);
        len += take;
    }
    text[len] = '\0';
    struct error e;
    switch (req->res.status) {
    case 413:
        error_set(&e, ERR_PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE",
                  "The request body is larger than %d bytes.", API_MAX_BODY);
        break;
    case 417:
        error_set(&e, ERR_INVALID_ARGUMENT, "EXPECTATION_FAILED",
                  "Only 'Expect: 100-continue' is understood.");
        break;
    default:
        error_set(&e, ERR_INVALID_ARGUMENT, "BAD_REQUEST", "The request is malformed: %s.", text);
        break;
    }
    struct api_response r;
    api_error_response(&r, &e);
    h2o_iovec_t body = h2o_strdup(&req->pool, r.body, r.body_len);
    api_response_fini(&r);
    req->res.content_length = body.len;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_ostream_send_next(self, req, NULL, 0, state);
    else
        h2o_ostream_send_next(self, req, &body, 1, state);
}

static void json_error_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req->res.status >= 400 && i >= 0 &&
        h2o_memis(req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len,
                  H2O_STRLIT("text/plain; charset=utf-8"))) {
        req->res.headers.entries[i].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        struct json_error_ostream *o = (void *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = json_error_send;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- life cycle ---- */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void collect_async(uv_handle_t *h, void *arg)
{
    struct idmap *seen = arg;
    char key[32];
    snprintf(key, sizeof(key), "%p", (void *)h);
    if (h->type == UV_ASYNC && !idmap_get(seen, key))
        idmap_put(seen, key, h);
}

struct http_server *http_start(uv_loop_t *loop, const struct http_config *cfg, struct api *api,
                               struct ws_hub *hub, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    if (uv_ip4_addr(cfg->addr, cfg->port, &sa) != 0) {
        snprintf(err, errlen, "invalid HTTP address %s", cfg->addr);
        return NULL;
    }
    uv_tcp_t *listener = xcalloc(1, sizeof(*listener));
    uv_tcp_init(loop, listener);
    int rc = uv_tcp_bind(listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)listener, 1024, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->addr, cfg->port, uv_strerror(rc));
        uv_close((uv_handle_t *)listener, free_handle);
        return NULL;
    }
    struct http_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cfg = *cfg;
    str_copy(s->addr, sizeof(s->addr), cfg->addr);
    s->cfg.addr = s->addr;
    str_copy(s->cors, sizeof(s->cors), cfg->cors_origin ? cfg->cors_origin : "");
    s->cfg.cors_origin = s->cors;
    s->api = api;
    s->hub = hub;
    s->listener = listener;
    listener->data = s;
    idmap_init(&s->per_addr);
    struct sockaddr_in bound;
    int blen = sizeof(bound);
    s->port = uv_tcp_getsockname(listener, (struct sockaddr *)&bound, &blen) == 0
                  ? ntohs(bound.sin_port)
                  : cfg->port;

    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("conferenced"));
    s->config.max_request_entity_size = API_MAX_BODY;
    s->config.http1.req_timeout = (uint64_t)cfg->request_timeout_ms;
    s->config.http2.idle_timeout = (uint64_t)cfg->request_timeout_ms;
    s->host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT(HOST_NAME)), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(s->host, "/", 0);
    struct handler *h = (struct handler *)h2o_create_handler(path, sizeof(*h));
    h->srv = s;
    h->super.on_req = on_req;
    h2o_create_filter(path, sizeof(h2o_filter_t))->on_setup_ostream = json_error_setup;
    h2o_create_filter(&s->host->fallback_path, sizeof(h2o_filter_t))->on_setup_ostream =
        json_error_setup;
    /* h2o's context keeps a wake-up handle for work from other threads, which we never give
     * it: unref it so that the loop can end once everything else has closed. */
    struct idmap before;
    idmap_init(&before);
    uv_walk(loop, collect_async, &before);
    struct idmap after;
    idmap_init(&after);
    h2o_context_init(&s->ctx, loop, &s->config);
    uv_walk(loop, collect_async, &after);
    size_t it = 0;
    const char *key;
    void *handle;
    while (idmap_next(&after, &it, &key, &handle))
        if (!idmap_get(&before, key))
            uv_unref(handle);
    idmap_fini(&before);
    idmap_fini(&after);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    return s;
}

int http_port(const struct http_server *s)
{
    return s->port;
}

void http_quiesce(struct http_server *s)
{
    if (s->listener) {
        uv_close((uv_handle_t *)s->listener, free_handle);
        s->listener = NULL;
    }
    h2o_context_request_shutdown(&s->ctx); /* no more keep-alive; HTTP/2 GOAWAY */
}

/* A request whose first bytes have arrived but that h2o has not handed to us yet (its head or
 * body is still coming). */
static int count_receiving(h2o_req_t *req, void *arg)
{
    if (req->timestamps.request_begin_at.tv_sec != 0 && req->processed_at.at.tv_sec == 0)
        (*(unsigned *)arg)++;
    return 0;
}

unsigned http_inflight(const struct http_server *s)
{
    unsigned n = s->inflight;
    h2o_context_t *ctx = (h2o_context_t *)&s->ctx;
    if (s->config.http1.callbacks.foreach_request)
        s->config.http1.callbacks.foreach_request(ctx, count_receiving, &n);
    if (s->config.http2.callbacks.foreach_request)
        s->config.http2.callbacks.foreach_request(ctx, count_receiving, &n);
    return n;
}

void http_stats(const struct http_server *s, struct http_stats *out)
{
    out->connections = s->n_conns;
    out->accepted = s->accepted;
    out->refused_total = s->refused_total;
    out->refused_per_address = s->refused_per_address;
}

void http_stop(struct http_server *s)
{
    if (!s || s->stopping)
        return;
    http_quiesce(s);
    s->stopping = true;
    /* Answers still owed: nobody will wait for them any more. */
    while (s->pendings) {
        struct pending *p = s->pendings;
        UNLINK(s->pendings, p);
        p->srv = NULL;
        if (p->req) {
            p->guard->p = NULL;
            if (s->inflight)
                s->inflight--;
            send_error(p->req, ERR_UNAVAILABLE, "SHUTTING_DOWN", "The server is shutting down.",
                       true);
            p->req = NULL;
        }
    }
    h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout); /* no GOAWAY resends */
    stop_idle_timers(s);
    /* h2o closes each connection when it sees the end of its stream. */
    for (struct http_conn *c = s->conns; c; c = c->next) {
        int fd = h2o_socket_get_fd(c->sock);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
    }
}

void http_destroy(struct http_server *s)
{
    if (!s)
        return;
    if (s->conns) { /* cannot happen once the loop has run dry; never free under h2o's feet */
        log_error("msg=\"HTTP connections left at exit\"");
        return;
    }
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    idmap_fini(&s->per_addr);
    free(s);
}
