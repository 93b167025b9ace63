/* A WebSocket connection on the loop: wslay's event API over a non-blocking socket. */
#include "core/wsconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/mem.h"

#define WSCONN_MAX_REASON 120 /* a close frame's payload is at most 125 bytes */
#define WSCONN_REASON_SLACK 65536

struct wsconn {
    uv_poll_t poll;
    uv_timer_t timer; /* extra bytes, overflow, pings */
    int open_handles; /* freed when both have closed */
    uv_loop_t *loop;
    int fd;
    wslay_event_context_ptr ctx;
    struct wsconn_config cfg;
    struct wsconn_callbacks cb;
    char *extra; /* bytes read past the HTTP request, fed to wslay before the socket */
    size_t extra_len, extra_off;
    bool kick;     /* extra bytes wait for the timer */
    bool overflow; /* the outgoing backlog hit its limit: close with 1008 */
    bool ended;
    int poll_events;
    uint64_t last_rx;
    uint64_t incoming; /* bytes of the message being received so far */
};

static void handle_closed(uv_handle_t *h)
{
    struct wsconn *c = h->data;
    if (--c->open_handles > 0)
        return;
    wslay_event_context_free(c->ctx);
    free(c->extra);
    free(c);
}

/* Why the order: the poll handle is closed (taken off epoll) while the fd is still open, then the
 * owner gets the end and closes the fd. c itself lives until the close callbacks, so callers that
 * still hold it (wslay frames below us) stay safe. */
static void conn_end(struct wsconn *c, enum wsconn_end why)
{
    if (c->ended)
        return;
    c->ended = true;
    uv_close((uv_handle_t *)&c->poll, handle_closed);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    c->cb.on_closed(c->cb.ctx, c, why);
}

static void poll_cb(uv_poll_t *h, int status, int events);

/* The poll mask wslay wants. False when it wants nothing more (or the poll cannot be set). */
static bool arm(struct wsconn *c)
{
    int want = 0;
    if (wslay_event_want_read(c->ctx))
        want |= UV_READABLE;
    if (wslay_event_want_write(c->ctx))
        want |= UV_WRITABLE;
    if (!want)
        return false;
    if (want != c->poll_events) {
        if (uv_poll_start(&c->poll, want, poll_cb) != 0)
            return false;
        c->poll_events = want;
    }
    return true;
}

/* Brings the poll handle in line with what wslay wants, or ends the connection when it wants
 * nothing more (close handshake done) or the peer fell too far behind. */
static void settle(struct wsconn *c)
{
    if (c->ended)
        return;
    if (c->overflow) {
        wsconn_abort(c, WSCONN_POLICY_VIOLATION, "client too slow");
        return;
    }
    if (!arm(c))
        conn_end(c, WSCONN_END_CLOSED);
}

static void conn_read(struct wsconn *c)
{
    if (wslay_event_recv(c->ctx) != 0) {
        conn_end(c, WSCONN_END_ERROR); /* EOF, reset, or a failure wslay cannot answer */
        return;
    }
    settle(c);
}

static void conn_write(struct wsconn *c)
{
    if (wslay_event_send(c->ctx) != 0) {
        conn_end(c, WSCONN_END_ERROR);
        return;
    }
    settle(c);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct wsconn *c = h->data;
    if (status < 0) {
        conn_end(c, WSCONN_END_ERROR);
        return;
    }
    if (events & UV_READABLE)
        conn_read(c);
    if (!c->ended && (events & UV_WRITABLE))
        conn_write(c);
}

/* The extra bytes (they will not make the socket readable again, and the caller of
 * wsconn_accept is mid-upgrade), an overflow, or a ping; then the next ping. */
static void timer_cb(uv_timer_t *t)
{
    struct wsconn *c = t->data;
    if (c->ended)
        return;
    if (c->kick) {
        c->kick = false;
        conn_read(c);
        return;
    }
    if (c->overflow) {
        settle(c);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uint64_t idle = 2 * (uint64_t)c->cfg.ping_interval_ms + c->cfg.ping_interval_ms / 6;
    if (now - c->last_rx > idle) {
        conn_end(c, WSCONN_END_SILENT);
        return;
    }
    struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
    wslay_event_queue_msg(c->ctx, &ping);
    settle(c);
}

/* ---- wslay callbacks ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data)
{
    (void)flags;
    struct wsconn *c = user_data;
    if (c->ended) { /* the owner may have closed the fd already */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (c->extra) {
        size_t n = c->extra_len - c->extra_off;
        if (n > len)
            n = len;
        memcpy(buf, c->extra + c->extra_off, n);
        c->extra_off += n;
        if (c->extra_off == c->extra_len) {
            free(c->extra);
            c->extra = NULL;
        }
        return (ssize_t)n;
    }
    ssize_t n;
    do
        n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->last_rx = uv_now(c->loop);
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE); /* EOF or reset */
    return -1;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data)
{
    (void)flags;
    struct wsconn *c = user_data;
    if (c->ended) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ssize_t n;
    do
        n = send(c->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* Why here and not only wslay's own limit: wslay closes an oversized message with 1009 and no
 * reason; we see the length in the frame header and say what the limit is (see wsconn_accept for
 * the larger ones). */
static void on_frame_start_cb(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg,
                              void *user_data)
{
    struct wsconn *c = user_data;
    if (arg->opcode & 0x8) /* a control frame: wslay bounds those to 125 bytes */
        return;
    if (arg->opcode != WSLAY_CONTINUATION_FRAME)
        c->incoming = 0;
    c->incoming += arg->payload_length;
    if (c->incoming > c->cfg.max_message && wslay_event_get_read_enabled(ctx)) {
        const char *r = c->cfg.too_big_reason ? c->cfg.too_big_reason : "message too big";
        wslay_event_queue_close(ctx, WSCONN_MESSAGE_TOO_BIG, (const uint8_t *)r,
                                strnlen(r, WSCONN_MAX_REASON));
        wslay_event_shutdown_read(ctx);
    }
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    (void)ctx;
    struct wsconn *c = user_data;
    c->incoming = 0;
    if (c->ended || c->overflow)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        c->cb.on_message(c->cb.ctx, c, arg->opcode == WSLAY_BINARY_FRAME, arg->msg,
                         arg->msg_length);
    /* close, ping and pong are answered by wslay itself */
}

/* ---- the API ---- */

struct wsconn *wsconn_accept(uv_loop_t *loop, int fd, const char *extra, size_t extra_len,
                             const struct wsconn_config *cfg, const struct wsconn_callbacks *cb)
{
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_frame_recv_start_callback = on_frame_start_cb,
        .on_msg_recv_callback = on_msg_cb,
    };
    struct wsconn *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->fd = fd;
    c->cfg = *cfg;
    c->cb = *cb;
    if (uv_poll_init_socket(loop, &c->poll, fd) != 0) {
        log_warn("msg=ws_poll_init_failed fd=%d", fd);
        free(c);
        return NULL;
    }
    if (wslay_event_context_server_init(&c->ctx, &callbacks, c) != 0)
        die("out of memory creating a WebSocket context");
    /* wslay checks its own limit before our frame callback sees the frame, and closes without a
     * reason: it gets ours plus some slack, so that a message a little too large (the usual case)
     * hears our reason, and one absurdly large is still refused before it is buffered. */
    wslay_event_config_set_max_recv_msg_length(c->ctx,
                                               (uint64_t)cfg->max_message + WSCONN_REASON_SLACK);
    c->poll.data = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    /* Nothing but the socket should keep the loop alive. */
    uv_unref((uv_handle_t *)&c->timer);
    c->last_rx = uv_now(loop);
    uint64_t first = cfg->ping_interval_ms;
    if (extra_len > 0) {
        c->extra = xmalloc(extra_len);
        memcpy(c->extra, extra, extra_len);
        c->extra_len = extra_len;
        c->kick = true;
        first = 0;
    }
    uv_timer_start(&c->timer, timer_cb, first, cfg->ping_interval_ms);
    if (!arm(c)) { /* cannot happen for a fresh context (it wants to read) */
        c->ended = true;
        uv_close((uv_handle_t *)&c->poll, handle_closed);
        uv_close((uv_handle_t *)&c->timer, handle_closed);
        return NULL;
    }
    return c;
}

int wsconn_send(struct wsconn *c, bool binary, const void *data, size_t len)
{
    if (c->ended || c->overflow)
        return -1;
    if (wslay_event_get_queued_msg_count(c->ctx) >= c->cfg.max_queued_msgs ||
        wslay_event_get_queued_msg_length(c->ctx) + len > c->cfg.max_queued_bytes) {
        c->overflow = true;
        uv_timer_start(&c->timer, timer_cb, 0, c->cfg.ping_interval_ms);
        return -1;
    }
    struct wslay_event_msg m = {binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len};
    if (wslay_event_queue_msg(c->ctx, &m) != 0) /* a close is queued already */
        return -1;
    arm(c); /* a failure shows at the next settle */
    return 0;
}

void wsconn_flush(struct wsconn *c)
{
    settle(c);
}

void wsconn_close(struct wsconn *c, uint16_t code, const char *reason)
{
    if (c->ended)
        return;
    wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason,
                            reason ? strnlen(reason, WSCONN_MAX_REASON) : 0);
    wslay_event_shutdown_read(c->ctx);
    arm(c);
}

void wsconn_abort(struct wsconn *c, uint16_t code, const char *reason)
{
    if (c->ended)
        return;
    wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason,
                            reason ? strnlen(reason, WSCONN_MAX_REASON) : 0);
    wslay_event_send(c->ctx);
    conn_end(c, c->overflow ? WSCONN_END_SLOW : WSCONN_END_ABORT);
}
