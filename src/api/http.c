#include "api/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

struct http_server {
    uv_loop_t *loop;
    struct MHD_Daemon *d;
    struct api *api;
    struct ws_hub *hub;
    uv_poll_t *poll;
    uv_timer_t *timer;
    unsigned inflight;
    int port;
};

enum conn_state { CONN_RECEIVING = 0, CONN_DISPATCHING, CONN_PENDING, CONN_READY, CONN_DONE };

/* One request on a connection (MHD's con_cls). */
struct conn {
    struct http_server *srv;
    struct MHD_Connection *mc;
    char *body;
    size_t len, cap;
    bool too_large;
    enum conn_state state;
    struct api_response *ready;
    id_t_ ws_customer_id;
    bool upgraded;
    bool uri_has_nul; /* %00 in the raw URI */
    char client_ip[INET6_ADDRSTRLEN];
};

/* The link between an upgraded socket and MHD, released when the WebSocket ends. */
struct ws_link {
    struct http_server *srv;
    struct MHD_UpgradeResponseHandle *urh;
};

static void reschedule(struct http_server *s);

/* MHD closes connections it gave up on (an upgraded socket released, a request too large for
 * its memory pool) at the start of its next run, and nothing would wake the loop for that: so
 * every wake-up runs it twice. The second run costs one epoll_wait with a zero timeout. */
static void run(struct http_server *s)
{
    MHD_run(s->d);
    MHD_run(s->d);
    reschedule(s);
}

static void on_timer(uv_timer_t *t)
{
    run(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    run(p->data);
}

/* MHD keeps connections with buffered work on an internal ready list that does not wake its
 * epoll fd again; MHD_get_timeout() then answers 0, so the timer runs it again at once. */
static void reschedule(struct http_server *s)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(s->d, &ms) == MHD_YES)
        uv_timer_start(s->timer, on_timer, ms, 0);
    else
        uv_timer_stop(s->timer);
}

static const char *lookup(struct conn *cn, enum MHD_ValueKind kind, const char *key)
{
    return MHD_lookup_connection_value(cn->mc, kind, key);
}

static const char *query_lookup(void *ctx, const char *key)
{
    return lookup(ctx, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header_lookup(void *ctx, const char *name)
{
    return lookup(ctx, MHD_HEADER_KIND, name);
}

static void ws_closed(void *arg)
{
    struct ws_link *link = arg;
    MHD_upgrade_action(link->urh, MHD_UPGRADE_ACTION_CLOSE);
    struct http_server *s = link->srv;
    free(link);
    /* MHD closes the socket in its next run; nothing else would wake it. */
    if (s->d)
        uv_timer_start(s->timer, on_timer, 0, 0);
}

static void on_upgrade(void *cls, struct MHD_Connection *mc, void *con_cls, const char *extra,
                       size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct http_server *s = cls;
    struct conn *cn = con_cls;
    /* An upgraded connection is no longer a request in flight: shutdown does not wait for it. */
    if (!cn->upgraded && s->inflight)
        s->inflight--;
    cn->upgraded = true;
    struct ws_link *link = xcalloc(1, sizeof(*link));
    link->srv = s;
    link->urh = urh;
    int flags = fcntl(sock, F_GETFL);
    if (flags >= 0)
        fcntl(sock, F_SETFL, flags | O_NONBLOCK);
    ws_hub_accept(s->hub, sock, extra, extra_len, cn->ws_customer_id, ws_closed, link);
}

static enum MHD_Result send_response(struct conn *cn, struct api_response *r)
{
    struct MHD_Response *resp;
    unsigned status = (unsigned)r->status;
    if (r->ws_upgrade) {
        memcpy(cn->ws_customer_id, r->ws_customer_id, sizeof(cn->ws_customer_id));
        resp = MHD_create_response_for_upgrade(on_upgrade, cn->srv);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
        MHD_add_response_header(resp, "Sec-WebSocket-Accept", r->ws_accept);
        status = MHD_HTTP_SWITCHING_PROTOCOLS;
    } else {
        resp = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
        r->body = NULL; /* now MHD's */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    }
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    enum MHD_Result ok = MHD_queue_response(cn->mc, status, resp);
    MHD_destroy_response(resp);
    cn->state = CONN_DONE;
    return ok;
}

/* A pending answer: usually later (after suspension), but it may also come synchronously from
 * inside api_handle() when the work turned out not to need the thread pool. */
static void on_done(void *arg, struct api_response *r)
{
    struct conn *cn = arg;
    bool suspended = cn->state == CONN_PENDING;
    cn->ready = r;
    cn->state = CONN_READY;
    if (suspended) {
        MHD_resume_connection(cn->mc);
        uv_timer_start(cn->srv->timer, on_timer, 0, 0);
    }
}

/* Sends the answer a pending request received through on_done(). */
static enum MHD_Result send_ready(struct conn *cn)
{
    struct api_response *r = cn->ready;
    cn->ready = NULL;
    enum MHD_Result ok = send_response(cn, r);
    api_response_fini(r);
    free(r);
    return ok;
}

static enum MHD_Result dispatch(struct conn *cn, const char *url, const char *method)
{
    struct api_request req = {
        .method = method,
        .path = url,
        .body = cn->body,
        .body_len = cn->len,
        .body_too_large = cn->too_large,
        .uri_has_nul = cn->uri_has_nul,
        .client_ip = cn->client_ip,
        .query = query_lookup,
        .header = header_lookup,
        .ctx = cn,
    };
    struct api_response r;
    cn->state = CONN_DISPATCHING;
    int rc = api_handle(cn->srv->api, &req, &r, on_done, cn);
    free(cn->body);
    cn->body = NULL;
    cn->len = cn->cap = 0;
    if (rc == 1 && cn->state == CONN_READY) /* answered during the call */
        return send_ready(cn);
    if (rc == 1) {
        cn->state = CONN_PENDING;
        MHD_suspend_connection(cn->mc);
        return MHD_YES;
    }
    enum MHD_Result ok = send_response(cn, &r);
    api_response_fini(&r);
    return ok;
}

/* MHD calls this with the raw URI of each request before decoding it, and passes what it returns
 * to the handler as the request's context. It only marks a %00 (which decoding would turn into a
 * string end): MHD does not report requests it drops before the handler, so nothing may be
 * allocated here. */
static char uri_nul_marker;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    return strcasestr(uri, "%00") ? &uri_nul_marker : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct conn *cn = *con_cls;
    if (!cn || *con_cls == &uri_nul_marker) {
        cn = xcalloc(1, sizeof(*cn));
        cn->srv = s;
        cn->mc = mc;
        cn->uri_has_nul = *con_cls == &uri_nul_marker;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr,
                      cn->client_ip, sizeof(cn->client_ip));
        *con_cls = cn;
        s->inflight++;
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end != cl && n > API_MAX_BODY) {
                cn->too_large = true; /* answer at once; MHD closes after it */
                return dispatch(cn, url, method);
            }
        }
        return MHD_YES;
    }
    if (cn->state == CONN_READY)
        return send_ready(cn);
    if (cn->state != CONN_RECEIVING)
        return MHD_YES;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (!cn->too_large && cn->len + n > API_MAX_BODY) {
            cn->too_large = true;
            free(cn->body);
            cn->body = NULL;
            cn->len = cn->cap = 0;
        }
        if (!cn->too_large) {
            if (cn->len + n + 1 > cn->cap) {
                cn->cap = (cn->len + n + 1) * 2;
                if (cn->cap > API_MAX_BODY + 1)
                    cn->cap = API_MAX_BODY + 1;
                cn->body = xrealloc(cn->body, cn->cap);
            }
            memcpy(cn->body + cn->len, upload_data, n);
            cn->len += n;
            cn->body[cn->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(cn, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct conn *cn = *con_cls;
    if (!cn || *con_cls == &uri_nul_marker)
        return;
    if (cn->ready) {
        api_response_fini(cn->ready);
        free(cn->ready);
    }
    free(cn->body);
    bool counted = !cn->upgraded;
    free(cn);
    *con_cls = NULL;
    if (counted && s->inflight)
        s->inflight--;
}

struct http_server *http_start(uv_loop_t *loop, const char *addr, int port, struct api *api,
                               struct ws_hub *hub, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "invalid HTTP address %s", addr);
        return NULL;
    }
    struct http_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->api = api;
    s->hub = hub;
    unsigned flags =
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_TURBO | MHD_USE_ITC;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(32 * 1024), MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d (address in use or not permitted)", addr,
                 port);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : port;
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    s->poll = xcalloc(1, sizeof(*s->poll));
    s->timer = xcalloc(1, sizeof(*s->timer));
    uv_poll_init(loop, s->poll, info->epoll_fd);
    s->poll->data = s;
    uv_poll_start(s->poll, UV_READABLE, on_poll);
    uv_timer_init(loop, s->timer);
    s->timer->data = s;
    reschedule(s);
    return s;
}

int http_port(const struct http_server *s)
{
    return s->port;
}

void http_quiesce(struct http_server *s)
{
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

unsigned http_inflight(const struct http_server *s)
{
    return s->inflight;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    uv_poll_stop(s->poll);
    uv_timer_stop(s->timer);
    uv_close((uv_handle_t *)s->poll, free_handle);
    uv_close((uv_handle_t *)s->timer, free_handle);
    MHD_stop_daemon(s->d);
    s->d = NULL;
    free(s);
}
