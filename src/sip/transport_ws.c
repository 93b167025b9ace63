/* SIP over WebSocket (RFC 7118): the HTTP layer upgrades a connection (subprotocol "sip") and
 * hands the socket over; core/wsconn speaks RFC 6455 on it; each connection is one sip_conn of the
 * WS transport, so that its messages enter the stack like datagrams do (sip_tp_input) but carry
 * their connection, and whatever goes back to that peer is sent on it as one text message.
 *
 * What is not SIP: a message of only CR and LF is a keep-alive (RFC 5626 4.4.1, as SIP.js sends
 * them) and is answered with CRLF; anything else that does not parse as a SIP message closes the
 * connection with 1008, saying so (over a reliable transport nothing would ever repeat it, and
 * there is no Via to answer to). A message over ws_max_message closes it with 1009 (core/wsconn,
 * with the limit as reason). */
#include "sip/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/mem.h"
#include "core/wsconn.h"

#define WS_QUEUED_BYTES (1024 * 1024) /* a peer that lets this much pile up is dropped */
#define WS_QUEUED_MSGS 1000
#define WS_PING_MS 30000
#define WS_LOG_WINDOW_MS 10000
#define WS_LOG_BURST 10

/* One connection: the WebSocket, its sip_conn, and the HTTP layer's callback for the socket. */
struct ws_link {
    struct sip_stack *s;
    struct wsconn *ws;
    struct sip_conn *conn;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

static int ws_send(struct sip_stack *s, const struct sip_peer *to, const char *buf, size_t len)
{
    struct ws_link *l = to->conn && to->conn->open ? to->conn->impl : NULL;
    if (!l || wsconn_send(l->ws, false, buf, len) != 0) {
        log_debug("msg=sip_send_failed transport=WS reason=%s", l ? "backlog_full" : "closed");
        return -1;
    }
    return 0;
}

const struct sip_transport sip_tp_ws = {
    .name = "WS",
    .param = "ws",
    .reliable = true,
    .send = ws_send,
};

static bool only_crlf(const uint8_t *msg, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (msg[i] != '\r' && msg[i] != '\n')
            return false;
    return true;
}

static void on_message(void *ctx, struct wsconn *ws, bool binary, const uint8_t *msg, size_t len)
{
    struct ws_link *l = ctx;
    struct sip_stack *s = l->s;
    if (len > 0 && only_crlf(msg, len)) {
        wsconn_send(ws, binary, "\r\n", 2);
        return;
    }
    struct sip_peer from = {.tp = &sip_tp_ws, .conn = l->conn, .addr = l->conn->remote};
    /* A runt that is no keep-alive is not SIP either (a datagram one is just noise). */
    if (sip_tp_input(s, &from, (const char *)msg, len) == 0 || s->closing)
        return;
    uint64_t before;
    if (log_limit_allow(&s->ws_log, (int64_t)sip_now_ms() * 1000, WS_LOG_WINDOW_MS * 1000,
                        WS_LOG_BURST, &before))
        log_info("msg=sip_ws_not_sip src=%s:%d len=%zu suppressed=%llu", l->conn->remote_ip,
                 ntohs(l->conn->remote.sin_port), len, (unsigned long long)before);
    wsconn_close(ws, WSCONN_POLICY_VIOLATION, "not a SIP message (one SIP message per frame)");
}

static const char *end_text(enum wsconn_end why)
{
    switch (why) {
    case WSCONN_END_CLOSED:
        return "closed";
    case WSCONN_END_ERROR:
        return "error";
    case WSCONN_END_SLOW:
        return "too_slow";
    case WSCONN_END_SILENT:
        return "silent";
    case WSCONN_END_ABORT:
        break;
    }
    return "server";
}

static void on_closed(void *ctx, struct wsconn *ws, enum wsconn_end why)
{
    struct ws_link *l = ctx;
    struct sip_stack *s = l->s;
    log_info("msg=sip_ws_closed src=%s:%d reason=%s", l->conn->remote_ip,
             ntohs(l->conn->remote.sin_port), end_text(why));
    sip_conn_close(l->conn); /* its dialogs end on the next pump */
    s->n_ws--;
    l->closed_cb(l->closed_arg);
    free(l);
}

int sip_ws_admit(const struct sip_stack *s, char *err, size_t errlen)
{
    if (!s || s->closing) {
        sip_set_err(err, errlen, "The SIP service is shutting down.");
        return -2;
    }
    if (s->n_ws >= s->ws_max_conns) {
        sip_set_err(err, errlen,
                    "The server has %zu SIP WebSocket connections open, its limit (setting "
                    "sip_ws_max_connections); try again later.",
                    s->n_ws);
        return -1;
    }
    return 0;
}

int sip_ws_accept(struct sip_stack *s, int fd, const char *extra, size_t extra_len,
                  void (*closed_cb)(void *arg), void *arg)
{
    struct sockaddr_in remote, local;
    socklen_t rlen = sizeof(remote), llen = sizeof(local);
    char why[160];
    if (sip_ws_admit(s, why, sizeof(why)) < 0 || extra_len > s->ws_max_message + 1024 ||
        getpeername(fd, (struct sockaddr *)&remote, &rlen) != 0 ||
        getsockname(fd, (struct sockaddr *)&local, &llen) != 0 || remote.sin_family != AF_INET ||
        local.sin_family != AF_INET) {
        log_warn("msg=sip_ws_refused extra_len=%zu", extra_len);
        closed_cb(arg);
        return -1;
    }
    struct wsconn_config cfg = {
        .max_message = s->ws_max_message,
        .too_big_reason = s->ws_too_big,
        .max_queued_bytes = WS_QUEUED_BYTES,
        .max_queued_msgs = WS_QUEUED_MSGS,
        .ping_interval_ms = WS_PING_MS,
    };
    struct ws_link *l = xcalloc(1, sizeof(*l));
    l->s = s;
    l->closed_cb = closed_cb;
    l->closed_arg = arg;
    struct wsconn_callbacks cb = {l, on_message, on_closed};
    l->ws = wsconn_accept(s->loop, fd, extra, extra_len, &cfg, &cb);
    if (!l->ws) {
        free(l);
        closed_cb(arg);
        return -1;
    }
    char host[INET_ADDRSTRLEN];
    uv_ip4_name(&local, host, sizeof(host));
    l->conn = sip_conn_new(s, &sip_tp_ws, l, &remote, host, ntohs(local.sin_port));
    s->n_ws++;
    log_info("msg=sip_ws_connected src=%s:%d open=%zu", l->conn->remote_ip, ntohs(remote.sin_port),
             s->n_ws);
    return 0;
}

size_t sip_ws_count(const struct sip_stack *s)
{
    return s ? s->n_ws : 0;
}

void sip_ws_close_all(struct sip_stack *s)
{
    struct sip_conn *next;
    for (struct sip_conn *c = s->conns; c; c = next) {
        next = c->next;
        if (c->tp == &sip_tp_ws && c->impl)
            wsconn_abort(((struct ws_link *)c->impl)->ws, WSCONN_GOING_AWAY,
                         "server shutting down");
    }
}
