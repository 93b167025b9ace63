/* WebSocket event stream: each connection is a core/wsconn (wslay over the socket the HTTP
 * layer upgraded, its pings and limits); this file holds what a stream is: its credential, its
 * topics, the events it is sent, and the end of streams whose credential stopped working. The
 * HTTP layer owns the fd: a connection that ends hands the socket back through its closed
 * callback. */
#include "events/ws.h"

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
#include <sys/types.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "core/wsconn.h"

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
    struct wsconn *ws;
    struct ws_hub *hub;
    struct ws_conn *prev, *next;
    struct ws_credential cred;
    char revoked[WS_CLOSE_REASON_MAX + 1]; /* "" = not revoked; else the close reason */
    struct topic topics[WS_MAX_TOPICS];
    size_t n_topics;
    ws_closed_cb closed_cb;
    void *closed_arg;
};

struct ws_hub {
    uv_loop_t *loop;
    /* Closes revoked streams and those whose credential expired; the hub is freed by its close
     * callback. */
    uv_timer_t end_timer;
    struct ws_conn *conns;
    size_t n_conns;
};

/* --- connection lifecycle ----------------------------------------------------------------- */

/* The wsconn ended: the stream is forgotten and the HTTP layer gets the socket back. */
static void on_conn_closed(void *ctx, struct wsconn *ws, enum wsconn_end why)
{
    struct ws_conn *c = ctx;
    struct ws_hub *hub = c->hub;
    if (why == WSCONN_END_SLOW)
        log_info("msg=ws_slow_client customer_id=%s", c->cred.customer_id);
    else if (why == WSCONN_END_SILENT)
        log_info("msg=ws_peer_silent customer_id=%s", c->cred.customer_id);
    if (c->prev)
        c->prev->next = c->next;
    else
        hub->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    hub->n_conns--;
    c->closed_cb(c->closed_arg);
    free(c);
}

/* Queues a close frame, writes what the socket takes right now, and ends the connection without
 * waiting for the peer's reply (used for revoked streams and shutdown). c is freed. */
static void conn_abort(struct ws_conn *c, uint16_t code, const char *reason)
{
    wsconn_abort(c->ws, code, reason);
}

/* Queues a text frame unless the client's backlog is at its limit (then the connection closes
 * with 1008 at the caller's wsconn_flush(), or after wslay is no longer on the stack). */
static void conn_queue_text(struct ws_conn *c, const char *text, size_t len)
{
    wsconn_send(c->ws, false, text, len);
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

static void on_conn_message(void *ctx, struct wsconn *ws, bool binary, const uint8_t *msg,
                            size_t len)
{
    struct ws_conn *c = ctx;
    if (!binary)
        handle_text(c, msg, len);
    else
        conn_send_error(c, "binary frames are not supported: send JSON text frames");
}

/* --- hub ---------------------------------------------------------------------------------- */

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
            conn_abort(c, WSCONN_POLICY_VIOLATION, c->revoked);
        } else if (conn_expires(c) && c->cred.expire_us <= now) {
            log_info("msg=ws_credential_expired customer_id=%s credential_id=%s",
                     c->cred.customer_id, c->cred.credential_id);
            conn_abort(c, WSCONN_POLICY_VIOLATION, "credential expired");
        }
    }
    hub_schedule_end(hub);
}

struct ws_hub *ws_hub_create(uv_loop_t *loop)
{
    struct ws_hub *hub = xcalloc(1, sizeof(*hub));
    hub->loop = loop;
    uv_timer_init(loop, &hub->end_timer);
    hub->end_timer.data = hub;
    /* Nothing but open connections should keep the loop alive. */
    uv_unref((uv_handle_t *)&hub->end_timer);
    return hub;
}

static void hub_timer_close_cb(uv_handle_t *h)
{
    free(h->data);
}

void ws_hub_destroy(struct ws_hub *hub)
{
    if (!hub)
        return;
    while (hub->conns)
        conn_abort(hub->conns, WSCONN_GOING_AWAY, "server shutting down");
    uv_close((uv_handle_t *)&hub->end_timer, hub_timer_close_cb);
}

int ws_hub_accept(struct ws_hub *hub, int fd, const char *extra, size_t extra_len,
                  const struct ws_credential *cred, ws_closed_cb closed_cb, void *closed_arg)
{
    static const struct wsconn_config limits = {
        .max_message = WS_MAX_RECV_MSG,
        .too_big_reason = "message too big: at most 65536 bytes",
        .max_queued_bytes = WS_MAX_QUEUED_BYTES,
        .max_queued_msgs = WS_MAX_QUEUED_MSGS,
        .ping_interval_ms = WS_PING_INTERVAL_MS,
    };
    struct ws_conn *c = xcalloc(1, sizeof(*c));
    c->hub = hub;
    c->closed_cb = closed_cb;
    c->closed_arg = closed_arg;
    if (extra_len > WS_MAX_EXTRA || !cred || id_normalize(cred->customer_id, c->cred.customer_id) ||
        id_normalize(cred->credential_id, c->cred.credential_id)) {
        log_warn("msg=ws_accept_rejected extra_len=%zu", extra_len);
        goto fail;
    }
    c->cred.expire_us = cred->expire_us;
    struct wsconn_callbacks cb = {c, on_conn_message, on_conn_closed};
    c->ws = wsconn_accept(hub->loop, fd, extra, extra_len, &limits, &cb);
    if (!c->ws)
        goto fail;
    c->next = hub->conns;
    if (hub->conns)
        hub->conns->prev = c;
    hub->conns = c;
    hub->n_conns++;
    if (conn_expires(c))
        hub_schedule_end(hub);
    return 0;
fail:
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
        wsconn_flush(c->ws); /* may end c: the 1008 of a client too slow */
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
