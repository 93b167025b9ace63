/* WebSocket event stream: wslay speaks RFC 6455 over sockets the HTTP layer has upgraded; one
 * uv_poll_t per connection drives it (readable always while wslay wants to read, writable only
 * while it has something to send). The HTTP layer owns the fd: a connection that ends stops
 * polling and hands the socket back through its closed callback. */
#include "events/ws.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define WS_MAX_TOPICS 64
#define WS_MAX_RECV_MSG (64 * 1024)
#define WS_MAX_QUEUED_BYTES (1024 * 1024)
#define WS_MAX_QUEUED_MSGS 1000
/* Bytes the HTTP layer read past the request: a few frames at most; anything larger is not a
 * client. */
#define WS_MAX_EXTRA (WS_MAX_RECV_MSG + 1024)
#ifndef WS_PING_INTERVAL_MS /* overridable to test pings without waiting 30 s */
#define WS_PING_INTERVAL_MS 30000
#endif
/* A peer that has sent nothing (not even a pong) for this long is gone. */
#define WS_IDLE_LIMIT_MS (2 * WS_PING_INTERVAL_MS + WS_PING_INTERVAL_MS / 6)
#define WS_RESOURCE_MAX 63
#define WS_RESOURCE_ID_MAX 64
#define WS_TOPIC_PREFIX "customer_id:"
#define WS_ERROR_QUOTE_MAX 80
#define WS_CLOSE_REASON_MAX 100 /* a close frame's reason must fit in 123 bytes */

struct topic {
    char resource[WS_RESOURCE_MAX + 1];
    char resource_id[WS_RESOURCE_ID_MAX + 1]; /* "" = every resource of that kind */
};

struct ws_conn {
    uv_poll_t poll;
    struct ws_hub *hub;
    struct ws_conn *prev, *next;
    wslay_event_context_ptr ctx;
    int fd;
    char *extra; /* bytes read past the HTTP request, fed to wslay before the socket */
    size_t extra_len, extra_off;
    bool kick;     /* extra bytes are waiting for the kick timer */
    bool overflow; /* the outgoing queue hit its limit: close with 1008 */
    bool ended;
    int poll_events;
    uint64_t last_rx;
    struct ws_credential cred;
    char revoked[WS_CLOSE_REASON_MAX + 1]; /* "" = not revoked; else the close reason */
    struct topic topics[WS_MAX_TOPICS];
    size_t n_topics;
    ws_closed_cb closed_cb;
    void *closed_arg;
};

struct ws_hub {
    uv_loop_t *loop;
    uv_timer_t ping_timer;
    uv_timer_t kick_timer;
    uv_timer_t end_timer; /* closes revoked streams and those whose credential expired */
    int open_timers;      /* the hub is freed by the close callback that brings this to 0 */
    struct ws_conn *conns;
    size_t n_conns;
};

/* --- connection lifecycle ----------------------------------------------------------------- */

static void conn_close_cb(uv_handle_t *h)
{
    struct ws_conn *c = h->data;
    wslay_event_context_free(c->ctx);
    free(c->extra);
    free(c);
}

/* Why the order: the poll handle is closed (taken off epoll) while the fd is still open, then the
 * HTTP layer gets the fd back. c itself lives until the close callback, so callers that still
 * hold it (iterations, wslay frames below us) stay safe. */
static void conn_end(struct ws_conn *c)
{
    if (c->ended)
        return;
    c->ended = true;
    struct ws_hub *hub = c->hub;
    if (c->prev)
        c->prev->next = c->next;
    else
        hub->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    hub->n_conns--;
    uv_close((uv_handle_t *)&c->poll, conn_close_cb);
    c->closed_cb(c->closed_arg);
}

/* Queues a close frame, writes what the socket takes right now, and ends the connection without
 * waiting for the peer's reply (used for slow clients and shutdown). */
static void conn_abort(struct ws_conn *c, uint16_t code, const char *reason)
{
    wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason, strlen(reason));
    wslay_event_send(c->ctx);
    conn_end(c);
}

static void poll_cb(uv_poll_t *h, int status, int events);

/* Brings the poll handle in line with what wslay wants, or ends the connection when it wants
 * nothing more (close handshake done) or the client fell too far behind. */
static void conn_settle(struct ws_conn *c)
{
    if (c->ended)
        return;
    if (c->overflow) {
        log_info("msg=ws_slow_client customer_id=%s", c->cred.customer_id);
        conn_abort(c, WSLAY_CODE_POLICY_VIOLATION, "client too slow");
        return;
    }
    int want = 0;
    if (wslay_event_want_read(c->ctx))
        want |= UV_READABLE;
    if (wslay_event_want_write(c->ctx))
        want |= UV_WRITABLE;
    if (!want) {
        conn_end(c);
        return;
    }
    if (want != c->poll_events) {
        if (uv_poll_start(&c->poll, want, poll_cb) != 0) {
            conn_end(c);
            return;
        }
        c->poll_events = want;
    }
}

static void conn_read(struct ws_conn *c)
{
    if (wslay_event_recv(c->ctx) != 0) {
        conn_end(c); /* EOF, reset, or a failure wslay cannot answer with a close frame */
        return;
    }
    conn_settle(c);
}

static void conn_write(struct ws_conn *c)
{
    if (wslay_event_send(c->ctx) != 0) {
        conn_end(c);
        return;
    }
    conn_settle(c);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct ws_conn *c = h->data;
    if (status < 0) {
        conn_end(c);
        return;
    }
    if (events & UV_READABLE)
        conn_read(c);
    if (!c->ended && (events & UV_WRITABLE))
        conn_write(c);
}

/* --- wslay callbacks ---------------------------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data)
{
    (void)flags;
    struct ws_conn *c = user_data;
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
        c->last_rx = uv_now(c->hub->loop);
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
    struct ws_conn *c = user_data;
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

/* Queues a text frame unless the client's backlog is at its limit (then marks it for closing:
 * the caller's conn_settle() does that once wslay is no longer on the stack). */
static void conn_queue_text(struct ws_conn *c, const char *text, size_t len)
{
    if (c->overflow)
        return;
    if (wslay_event_get_queued_msg_count(c->ctx) >= WS_MAX_QUEUED_MSGS ||
        wslay_event_get_queued_msg_length(c->ctx) + len > WS_MAX_QUEUED_BYTES) {
        c->overflow = true;
        return;
    }
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    wslay_event_queue_msg(c->ctx, &m); /* fails only once a close is queued: nothing to do */
}

static void conn_send_error(struct ws_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void conn_send_error(struct ws_conn *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *m = json_string(msg);
    if (!m) /* a quoted fragment was not valid UTF-8 */
        m = json_string("invalid message");
    json_t *root = json_pack("{s:s, s:{s:o}}", "type", "error", "data", "message", m);
    if (!root)
        die("out of memory building a WebSocket error");
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        die("out of memory building a WebSocket error");
    conn_queue_text(c, text, strlen(text));
    free(text);
}

/* Copies at most WS_ERROR_QUOTE_MAX bytes of s for an error message, cut on a UTF-8 boundary. */
static void quote_cut(const char *s, char out[WS_ERROR_QUOTE_MAX + 4])
{
    size_t n = strnlen(s, WS_ERROR_QUOTE_MAX + 1);
    if (n <= WS_ERROR_QUOTE_MAX) {
        memcpy(out, s, n + 1);
        return;
    }
    n = WS_ERROR_QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    memcpy(out, s, n);
    memcpy(out + n, "...", 4);
}

static bool resource_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
}

static bool resource_id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

/* Parses "customer_id:<uuid>:<resource>[:<resource_id>]" owned by c's customer. On failure,
 * sends the client an error frame saying what was wrong and returns -1. */
static int topic_parse(struct ws_conn *c, const char *s, struct topic *out)
{
    char q[WS_ERROR_QUOTE_MAX + 4];
    quote_cut(s, q);
    static const char form[] = "expected customer_id:<id>:<resource>[:<resource_id>]";
    size_t plen = strlen(WS_TOPIC_PREFIX);
    if (strncmp(s, WS_TOPIC_PREFIX, plen) != 0) {
        conn_send_error(c, "topic \"%s\" is malformed: %s", q, form);
        return -1;
    }
    const char *p = s + plen;
    char id[ID_LEN + 1], norm[ID_LEN + 1];
    if (strnlen(p, ID_LEN) < ID_LEN || p[ID_LEN] != ':') {
        conn_send_error(c, "topic \"%s\" is malformed: %s", q, form);
        return -1;
    }
    memcpy(id, p, ID_LEN);
    id[ID_LEN] = '\0';
    if (id_normalize(id, norm) != 0) {
        conn_send_error(c, "topic \"%s\" has a customer id that is not a UUID: %s", q, form);
        return -1;
    }
    if (strcmp(norm, c->cred.customer_id) != 0) {
        conn_send_error(c,
                        "topic \"%s\" names another customer; only your own customer id (%s) "
                        "may be subscribed to",
                        q, c->cred.customer_id);
        return -1;
    }
    p += ID_LEN + 1;
    size_t rlen = 0;
    while (p[rlen] && p[rlen] != ':')
        rlen++;
    if (rlen == 0 || rlen > WS_RESOURCE_MAX) {
        conn_send_error(c, "topic \"%s\" needs a resource of 1 to %d characters: %s", q,
                        WS_RESOURCE_MAX, form);
        return -1;
    }
    for (size_t i = 0; i < rlen; i++) {
        if (!resource_char(p[i])) {
            conn_send_error(c,
                            "topic \"%s\" has a resource with characters other than a-z, 0-9 "
                            "and _: %s",
                            q, form);
            return -1;
        }
    }
    memcpy(out->resource, p, rlen);
    out->resource[rlen] = '\0';
    if (!events_resource_known(out->resource)) {
        char known[512];
        size_t kn = 0;
        known[0] = '\0';
        for (size_t i = 0; events_resources[i] && kn < sizeof(known); i++)
            kn += (size_t)snprintf(known + kn, sizeof(known) - kn, "%s%s", i ? ", " : "",
                                   events_resources[i]);
        conn_send_error(c, "topic \"%s\" has an unknown topic kind '%s'; known kinds: %s", q,
                        out->resource, known);
        return -1;
    }
    out->resource_id[0] = '\0';
    if (!p[rlen])
        return 0;
    const char *rid = p + rlen + 1;
    size_t idlen = strnlen(rid, WS_RESOURCE_ID_MAX + 1);
    bool ok = idlen > 0 && idlen <= WS_RESOURCE_ID_MAX;
    for (size_t i = 0; ok && i < idlen; i++)
        ok = resource_id_char(rid[i]);
    if (!ok) {
        conn_send_error(c,
                        "topic \"%s\" has a resource id that is empty, longer than %d "
                        "characters or not made of letters, digits, '-', '_' and '.': %s",
                        q, WS_RESOURCE_ID_MAX, form);
        return -1;
    }
    /* UUIDs are stored lower-case, the form events carry. */
    if (id_normalize(rid, out->resource_id) != 0)
        memcpy(out->resource_id, rid, idlen + 1);
    return 0;
}

static bool topic_eq(const struct topic *a, const struct topic *b)
{
    return !strcmp(a->resource, b->resource) && !strcmp(a->resource_id, b->resource_id);
}

static ssize_t topic_find(const struct topic *list, size_t n, const struct topic *t)
{
    for (size_t i = 0; i < n; i++)
        if (topic_eq(&list[i], t))
            return (ssize_t)i;
    return -1;
}

/* Answers an applied (un)subscribe with the topics of the message, as the server reads them
 * (lower-case ids, duplicates once). */
static void conn_send_topics(struct ws_conn *c, const char *type, const struct topic *t, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char buf[sizeof(WS_TOPIC_PREFIX) + ID_LEN + WS_RESOURCE_MAX + WS_RESOURCE_ID_MAX + 4];
        snprintf(buf, sizeof(buf), "%s%s:%s%s%s", WS_TOPIC_PREFIX, c->cred.customer_id,
                 t[i].resource, t[i].resource_id[0] ? ":" : "", t[i].resource_id);
        json_array_append_new(list, json_string(buf));
    }
    json_t *root = json_pack("{s:s, s:{s:o}}", "type", type, "data", "topics", list);
    if (!root)
        die("out of memory building a WebSocket answer");
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        die("out of memory building a WebSocket answer");
    conn_queue_text(c, text, strlen(text));
    free(text);
}

/* A subscribe/unsubscribe message is applied whole or not at all, then answered. */
static void handle_text(struct ws_conn *c, const uint8_t *msg, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)msg, len, 0, &jerr);
    if (!root) {
        conn_send_error(c, "message is not valid JSON: %s (line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
        return;
    }
    struct topic *parsed = NULL;
    const char *type = json_string_value(json_object_get(root, "type"));
    json_t *topics = json_object_get(root, "topics");
    if (!json_is_object(root) || !type ||
        (strcmp(type, "subscribe") != 0 && strcmp(type, "unsubscribe") != 0)) {
        conn_send_error(c, "message must be a JSON object with \"type\" \"subscribe\" or "
                           "\"unsubscribe\" and a \"topics\" array of strings");
        goto out;
    }
    if (!json_is_array(topics)) {
        conn_send_error(c, "\"topics\" must be an array of strings like "
                           "\"customer_id:<id>:<resource>[:<resource_id>]\"");
        goto out;
    }
    size_t n = json_array_size(topics);
    if (n > WS_MAX_TOPICS) {
        conn_send_error(c, "\"topics\" lists %zu topics; at most %d are allowed", n, WS_MAX_TOPICS);
        goto out;
    }
    parsed = xcalloc(n ? n : 1, sizeof(*parsed));
    size_t n_parsed = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(topics, i));
        if (!s) {
            conn_send_error(c, "\"topics\"[%zu] is not a string", i);
            goto out;
        }
        struct topic t;
        if (topic_parse(c, s, &t) != 0)
            goto out;
        if (topic_find(parsed, n_parsed, &t) < 0)
            parsed[n_parsed++] = t;
    }
    if (!strcmp(type, "subscribe")) {
        size_t fresh = 0;
        for (size_t i = 0; i < n_parsed; i++)
            if (topic_find(c->topics, c->n_topics, &parsed[i]) < 0)
                fresh++;
        if (c->n_topics + fresh > WS_MAX_TOPICS) {
            conn_send_error(c,
                            "subscribing would exceed %d topics on this connection (%zu now); "
                            "unsubscribe from some first",
                            WS_MAX_TOPICS, c->n_topics);
            goto out;
        }
        for (size_t i = 0; i < n_parsed; i++)
            if (topic_find(c->topics, c->n_topics, &parsed[i]) < 0)
                c->topics[c->n_topics++] = parsed[i];
        conn_send_topics(c, "subscribed", parsed, n_parsed);
    } else {
        for (size_t i = 0; i < n_parsed; i++) {
            ssize_t at = topic_find(c->topics, c->n_topics, &parsed[i]);
            if (at >= 0)
                c->topics[at] = c->topics[--c->n_topics];
        }
        conn_send_topics(c, "unsubscribed", parsed, n_parsed);
    }
out:
    free(parsed);
    json_decref(root);
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    (void)ctx;
    struct ws_conn *c = user_data;
    if (c->overflow)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        handle_text(c, arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_BINARY_FRAME)
        conn_send_error(c, "binary frames are not supported: send JSON text frames");
    /* close, ping and pong are answered by wslay itself */
}

/* --- hub ---------------------------------------------------------------------------------- */

static void ping_cb(uv_timer_t *t)
{
    struct ws_hub *hub = t->data;
    uint64_t now = uv_now(hub->loop);
    struct ws_conn *next;
    for (struct ws_conn *c = hub->conns; c; c = next) {
        next = c->next;
        if (now - c->last_rx > WS_IDLE_LIMIT_MS) {
            log_info("msg=ws_peer_silent customer_id=%s", c->cred.customer_id);
            conn_end(c);
            continue;
        }
        struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
        wslay_event_queue_msg(c->ctx, &ping);
        conn_settle(c);
    }
}

/* Why a timer: bytes the HTTP layer read ahead will not make the socket readable again, so they are
 * fed to wslay on the next loop iteration (not inside ws_hub_accept, whose caller is mid-upgrade).
 */
static void kick_cb(uv_timer_t *t)
{
    struct ws_hub *hub = t->data;
    struct ws_conn *next;
    for (struct ws_conn *c = hub->conns; c; c = next) {
        next = c->next;
        if (c->kick) {
            c->kick = false;
            conn_read(c);
        }
    }
}

static bool conn_expires(const struct ws_conn *c)
{
    return c->cred.expire_us > 0 && c->cred.expire_us < TM_NEVER;
}

static void end_cb(uv_timer_t *t);

/* Arms the end timer for the next revoked stream (at once) or the next credential to expire. */
static void hub_schedule_end(struct ws_hub *hub)
{
    int64_t now = tm_now_us(), next = INT64_MAX;
    for (struct ws_conn *c = hub->conns; c; c = c->next) {
        int64_t at = c->revoked[0] ? now : conn_expires(c) ? c->cred.expire_us : INT64_MAX;
        if (at < next)
            next = at;
    }
    if (next == INT64_MAX) {
        uv_timer_stop(&hub->end_timer);
        return;
    }
    int64_t ms = next > now ? (next - now + 999) / 1000 : 0;
    uv_timer_start(&hub->end_timer, end_cb, (uint64_t)ms, 0);
}

/* Why a timer: revocations arrive in the middle of an API request (an agent being deleted);
 * closing here, on the next iteration, keeps the HTTP layer's socket release out of its own
 * request handling. */
static void end_cb(uv_timer_t *t)
{
    struct ws_hub *hub = t->data;
    int64_t now = tm_now_us();
    struct ws_conn *next;
    for (struct ws_conn *c = hub->conns; c; c = next) {
        next = c->next;
        if (c->revoked[0]) {
            log_info("msg=ws_credential_revoked customer_id=%s credential_id=%s",
                     c->cred.customer_id, c->cred.credential_id);
            conn_abort(c, WSLAY_CODE_POLICY_VIOLATION, c->revoked);
        } else if (conn_expires(c) && c->cred.expire_us <= now) {
            log_info("msg=ws_credential_expired customer_id=%s credential_id=%s",
                     c->cred.customer_id, c->cred.credential_id);
            conn_abort(c, WSLAY_CODE_POLICY_VIOLATION, "credential expired");
        }
    }
    hub_schedule_end(hub);
}

struct ws_hub *ws_hub_create(uv_loop_t *loop)
{
    struct ws_hub *hub = xcalloc(1, sizeof(*hub));
    hub->loop = loop;
    uv_timer_init(loop, &hub->ping_timer);
    uv_timer_init(loop, &hub->kick_timer);
    uv_timer_init(loop, &hub->end_timer);
    hub->ping_timer.data = hub;
    hub->kick_timer.data = hub;
    hub->end_timer.data = hub;
    hub->open_timers = 3;
    uv_timer_start(&hub->ping_timer, ping_cb, WS_PING_INTERVAL_MS, WS_PING_INTERVAL_MS);
    /* Nothing but open connections should keep the loop alive. */
    uv_unref((uv_handle_t *)&hub->ping_timer);
    uv_unref((uv_handle_t *)&hub->end_timer);
    return hub;
}

static void hub_timer_close_cb(uv_handle_t *h)
{
    struct ws_hub *hub = h->data;
    if (--hub->open_timers == 0)
        free(hub);
}

void ws_hub_destroy(struct ws_hub *hub)
{
    if (!hub)
        return;
    while (hub->conns)
        conn_abort(hub->conns, WSLAY_CODE_GOING_AWAY, "server shutting down");
    uv_close((uv_handle_t *)&hub->ping_timer, hub_timer_close_cb);
    uv_close((uv_handle_t *)&hub->kick_timer, hub_timer_close_cb);
    uv_close((uv_handle_t *)&hub->end_timer, hub_timer_close_cb);
}

int ws_hub_accept(struct ws_hub *hub, int fd, const char *extra, size_t extra_len,
                  const struct ws_credential *cred, ws_closed_cb closed_cb, void *closed_arg)
{
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = on_msg_cb,
    };
    struct ws_conn *c = xcalloc(1, sizeof(*c));
    c->hub = hub;
    c->fd = fd;
    c->closed_cb = closed_cb;
    c->closed_arg = closed_arg;
    if (extra_len > WS_MAX_EXTRA || !cred || id_normalize(cred->customer_id, c->cred.customer_id) ||
        id_normalize(cred->credential_id, c->cred.credential_id)) {
        log_warn("msg=ws_accept_rejected extra_len=%zu", extra_len);
        goto fail;
    }
    c->cred.expire_us = cred->expire_us;
    if (wslay_event_context_server_init(&c->ctx, &callbacks, c) != 0)
        die("out of memory creating a WebSocket context");
    wslay_event_config_set_max_recv_msg_length(c->ctx, WS_MAX_RECV_MSG);
    if (uv_poll_init_socket(hub->loop, &c->poll, fd) != 0) {
        log_warn("msg=ws_poll_init_failed fd=%d", fd);
        goto fail;
    }
    c->poll.data = c;
    c->last_rx = uv_now(hub->loop);
    c->next = hub->conns;
    if (hub->conns)
        hub->conns->prev = c;
    hub->conns = c;
    hub->n_conns++;
    if (extra_len > 0) {
        c->extra = xmalloc(extra_len);
        memcpy(c->extra, extra, extra_len);
        c->extra_len = extra_len;
        c->kick = true;
        uv_timer_start(&hub->kick_timer, kick_cb, 0, 0);
    }
    if (conn_expires(c))
        hub_schedule_end(hub);
    conn_settle(c);
    return 0;
fail:
    if (c->ctx)
        wslay_event_context_free(c->ctx);
    free(c);
    closed_cb(closed_arg);
    return -1;
}

static bool conn_matches(const struct ws_conn *c, const struct event *ev)
{
    if (c->revoked[0] || !ev->customer_id || strcasecmp(c->cred.customer_id, ev->customer_id) != 0)
        return false;
    for (size_t i = 0; i < c->n_topics; i++) {
        const struct topic *t = &c->topics[i];
        if (strcmp(t->resource, ev->resource) != 0)
            continue;
        if (!t->resource_id[0] ||
            (ev->resource_id && strcasecmp(t->resource_id, ev->resource_id) == 0))
            return true;
    }
    return false;
}

void ws_hub_on_event(const struct event *ev, void *ctx)
{
    struct ws_hub *hub = ctx;
    struct ws_conn *next;
    for (struct ws_conn *c = hub->conns; c; c = next) {
        next = c->next;
        if (!conn_matches(c, ev))
            continue;
        conn_queue_text(c, ev->payload, ev->payload_len);
        conn_settle(c);
    }
}

void ws_hub_revoke(struct ws_hub *hub, const char *credential_id, const char *why)
{
    bool any = false;
    for (struct ws_conn *c = hub->conns; c; c = c->next) {
        if (c->revoked[0] || strcasecmp(c->cred.credential_id, credential_id) != 0)
            continue;
        /* Cut on a UTF-8 boundary: the reason must stay valid text. */
        size_t n = strnlen(why, WS_CLOSE_REASON_MAX);
        while (n > 0 && n < strlen(why) && ((unsigned char)why[n] & 0xc0) == 0x80)
            n--;
        memcpy(c->revoked, why, n);
        c->revoked[n] = '\0';
        if (!c->revoked[0])
            str_copy(c->revoked, sizeof(c->revoked), "credential revoked");
        any = true;
    }
    if (any)
        uv_timer_start(&hub->end_timer, end_cb, 0, 0);
}

size_t ws_hub_count(const struct ws_hub *hub)
{
    return hub ? hub->n_conns : 0;
}

int ws_accept_key(const char *client_key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /* The key is a base64 16-byte nonce: 22 alphabet characters and "==". */
    if (!client_key || strnlen(client_key, 25) != 24 || client_key[22] != '=' ||
        client_key[23] != '=')
        return -1;
    for (int i = 0; i < 22; i++) {
        char ch = client_key[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return -1;
    }
    unsigned char buf[24 + sizeof(guid) - 1];
    memcpy(buf, client_key, 24);
    memcpy(buf + 24, guid, sizeof(guid) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(buf, sizeof(buf), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return 0;
}
