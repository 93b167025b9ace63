/* WebSocket hub over a socketpair: the test plays a raw RFC 6455 client (masked frames written
 * by hand) against ws_hub_accept() on the other end, driving the hub's uv loop itself. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "events/bus.h"
#include "events/ws.h"

#define CUST "11111111-2222-4333-8444-555555555555"
#define OTHER "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define CONF1 "c0000000-0000-4000-8000-000000000001"
#define CONF2 "c0000000-0000-4000-8000-000000000002"
#define AGENT "a0000000-0000-4000-8000-00000000000a"
#define KEY2 "b0000000-0000-4000-8000-00000000000b"
#define RXCAP (256 * 1024)
#define WAIT_MS 2000

struct fx {
    uv_loop_t loop;
    struct ws_hub *hub;
    struct event_bus *bus;
    int server_fd;
    int client_fd;
    int closed_count;
    uint8_t *rx;
    size_t rx_len;
};

struct frame {
    uint8_t opcode;
    char data[RXCAP];
    size_t len;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_closed(void *arg)
{
    struct fx *f = arg;
    f->closed_count++;
    /* What the HTTP layer does: release the socket. */
    close(f->server_fd);
    f->server_fd = -1;
}

static void accept_cred(struct fx *f, const uint8_t *extra, size_t extra_len, int64_t expire_us)
{
    struct ws_credential cred = {CUST, AGENT, expire_us};
    assert_int_equal(
        ws_hub_accept(f->hub, f->server_fd, (const char *)extra, extra_len, &cred, on_closed, f),
        0);
    assert_int_equal(ws_hub_count(f->hub), 1);
}

static void accept_with(struct fx *f, const uint8_t *extra, size_t extra_len)
{
    accept_cred(f, extra, extra_len, TM_NEVER);
}

static int setup_noaccept(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->rx = malloc(RXCAP);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->hub = ws_hub_create(&f->loop);
    f->bus = events_bus_create();
    events_subscribe(f->bus, ws_hub_on_event, f->hub);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    f->server_fd = sv[0];
    f->client_fd = sv[1];
    *state = f;
    return 0;
}

static int setup(void **state)
{
    setup_noaccept(state);
    accept_with(*state, NULL, 0);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ws_hub_destroy(f->hub);
    events_bus_destroy(f->bus);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_true(f->closed_count <= 1);
    if (f->server_fd >= 0)
        close(f->server_fd);
    close(f->client_fd);
    free(f->rx);
    free(f);
    return 0;
}

/* Builds one masked client frame (FIN set). */
static size_t client_frame(uint8_t *out, uint8_t opcode, const void *payload, size_t len)
{
    size_t n = 0;
    out[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(out + n, mask, 4);
    n += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = p[i] ^ mask[i % 4];
    return n + len;
}

/* Writes a frame; returns 0, or -1 when the server has gone (EPIPE / reset). */
static int client_send_try(struct fx *f, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t *buf = malloc(len + 14);
    size_t n = client_frame(buf, opcode, payload, len);
    size_t off = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while (off < n) {
        ssize_t w = send(f->client_fd, buf + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            free(buf);
            return -1;
        }
        assert_true(w < 0 && errno == EAGAIN);
        assert_true(now_ms() < deadline);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    free(buf);
    return 0;
}

static void client_send(struct fx *f, uint8_t opcode, const void *payload, size_t len)
{
    assert_int_equal(client_send_try(f, opcode, payload, len), 0);
}

static void client_text(struct fx *f, const char *text)
{
    client_send(f, 0x1, text, strlen(text));
}

/* Parses one server frame from the receive buffer: 1 done, 0 incomplete. */
static int parse_frame(struct fx *f, struct frame *fr)
{
    if (f->rx_len < 2)
        return 0;
    assert_int_equal(f->rx[1] & 0x80, 0); /* server frames are never masked */
    size_t hdr = 2;
    uint64_t len = f->rx[1] & 0x7f;
    if (len == 126) {
        if (f->rx_len < 4)
            return 0;
        len = ((uint64_t)f->rx[2] << 8) | f->rx[3];
        hdr = 4;
    } else if (len == 127) {
        if (f->rx_len < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | f->rx[2 + i];
        hdr = 10;
    }
    assert_true(len < RXCAP);
    if (f->rx_len < hdr + len)
        return 0;
    assert_int_equal(f->rx[0] & 0x80, 0x80);
    fr->opcode = f->rx[0] & 0x0f;
    memcpy(fr->data, f->rx + hdr, len);
    fr->data[len] = '\0';
    fr->len = len;
    memmove(f->rx, f->rx + hdr + len, f->rx_len - hdr - len);
    f->rx_len -= hdr + len;
    return 1;
}

/* Runs the loop until a whole frame arrives or ms pass: 0 or -1. */
static int client_read(struct fx *f, struct frame *fr, int ms)
{
    int64_t deadline = now_ms() + ms;
    for (;;) {
        if (parse_frame(f, fr))
            return 0;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(f->client_fd, f->rx + f->rx_len, RXCAP - f->rx_len, 0);
        if (n > 0) {
            f->rx_len += (size_t)n;
            continue;
        }
        if (now_ms() >= deadline)
            return -1;
        usleep(1000);
    }
}

static void run_for(struct fx *f, int ms)
{
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void expect_no_frame(struct fx *f)
{
    struct frame *fr = malloc(sizeof(*fr));
    assert_int_equal(client_read(f, fr, 100), -1);
    free(fr);
}

static struct frame *expect_frame(struct fx *f, uint8_t opcode)
{
    struct frame *fr = malloc(sizeof(*fr));
    assert_int_equal(client_read(f, fr, WAIT_MS), 0);
    assert_int_equal(fr->opcode, opcode);
    return fr;
}

static void expect_error_containing(struct fx *f, const char *needle)
{
    struct frame *fr = expect_frame(f, 0x1);
    json_error_t jerr;
    json_t *root = json_loads(fr->data, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "type")), "error");
    const char *msg = json_string_value(json_object_get(json_object_get(root, "data"), "message"));
    assert_non_null(msg);
    if (!strstr(msg, needle))
        fail_msg("error message \"%s\" lacks \"%s\"", msg, needle);
    json_decref(root);
    free(fr);
}

/* Expects a close frame with code; reason (when not NULL) must be its reason text. */
static void expect_close_reason(struct fx *f, uint16_t code, const char *reason)
{
    struct frame *fr = expect_frame(f, 0x8);
    assert_true(fr->len >= 2);
    assert_int_equal(((uint8_t)fr->data[0] << 8) | (uint8_t)fr->data[1], code);
    if (reason)
        assert_string_equal(fr->data + 2, reason);
    free(fr);
}

static void expect_close(struct fx *f, uint16_t code)
{
    expect_close_reason(f, code, NULL);
}

/* Expects {"type":type,"data":{"topics":[...]}} listing exactly the topics given (in order). */
static void expect_topics(struct fx *f, const char *type, const char *const *topics, size_t n)
{
    struct frame *fr = expect_frame(f, 0x1);
    json_error_t jerr;
    json_t *root = json_loads(fr->data, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "type")), type);
    json_t *list = json_object_get(json_object_get(root, "data"), "topics");
    assert_true(json_is_array(list));
    if (json_array_size(list) != n)
        fail_msg("expected %zu topics in %s", n, fr->data);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(list, i)), topics[i]);
    json_decref(root);
    free(fr);
}

static void publish(struct fx *f, const char *type, const char *customer, const char *id)
{
    events_publish(f->bus, type, customer, id, json_pack("{s:s}", "id", id));
}

/* Subscribes (or unsubscribes) one topic and reads the answer naming it. */
static void subscribe(struct fx *f, const char *verb, const char *topic)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "{\"type\":\"%s\",\"topics\":[\"%s\"]}", verb, topic);
    client_text(f, msg);
    const char *answer = !strcmp(verb, "subscribe") ? "subscribed" : "unsubscribed";
    struct frame *fr = expect_frame(f, 0x1);
    json_t *root = json_loads(fr->data, 0, NULL);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "type")), answer);
    assert_int_equal(json_array_size(json_object_get(json_object_get(root, "data"), "topics")), 1);
    json_decref(root);
    free(fr);
}

static void expect_event(struct fx *f, const char *type, const char *id)
{
    struct frame *fr = expect_frame(f, 0x1);
    json_error_t jerr;
    json_t *root = json_loads(fr->data, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "type")), type);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "data"), "id")),
                        id);
    json_decref(root);
    free(fr);
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out), -1);
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", out), -1);
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", out), -1);
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQAA", out), -1);
    assert_int_equal(ws_accept_key("", out), -1);
    assert_int_equal(ws_accept_key(NULL, out), -1);
}

static void test_subscribe_matching_only(void **state)
{
    struct fx *f = *state;
    publish(f, "conference_created", CUST, CONF1); /* before subscribing: not sent */
    subscribe(f, "subscribe", "customer_id:" CUST ":conference");
    publish(f, "conferencecall_joined", CUST, CONF1);
    publish(f, "conference_created", OTHER, CONF1);
    publish(f, "conference_updated", CUST, CONF2);
    expect_event(f, "conference_updated", CONF2);
    expect_no_frame(f);
    assert_int_equal(f->closed_count, 0);
}

static void test_topic_with_resource_id(void **state)
{
    struct fx *f = *state;
    /* Upper-case ids are accepted and compared case-insensitively. */
    subscribe(f, "subscribe",
              "customer_id:11111111-2222-4333-8444-555555555555:conference:"
              "C0000000-0000-4000-8000-000000000001");
    publish(f, "conference_updated", CUST, CONF2);
    publish(f, "conference_updated", CUST, CONF1);
    expect_event(f, "conference_updated", CONF1);
    expect_no_frame(f);
}

static void test_unsubscribe(void **state)
{
    struct fx *f = *state;
    subscribe(f, "subscribe", "customer_id:" CUST ":conference");
    publish(f, "conference_created", CUST, CONF1);
    expect_event(f, "conference_created", CONF1);
    subscribe(f, "unsubscribe", "customer_id:" CUST ":conference");
    publish(f, "conference_updated", CUST, CONF1);
    expect_no_frame(f);
}

static void test_foreign_customer_error(void **state)
{
    struct fx *f = *state;
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST
                   ":conference\",\"customer_id:" OTHER ":conference\"]}");
    expect_error_containing(f, "another customer");
    /* Applied all or nothing: the valid topic of that message was not subscribed. */
    publish(f, "conference_created", CUST, CONF1);
    publish(f, "conference_created", OTHER, CONF1);
    expect_no_frame(f);
    /* The connection is still usable. */
    subscribe(f, "subscribe", "customer_id:" CUST ":conference");
    publish(f, "conference_created", CUST, CONF2);
    expect_event(f, "conference_created", CONF2);
    assert_int_equal(f->closed_count, 0);
    assert_int_equal(ws_hub_count(f->hub), 1);
}

static void test_bad_messages(void **state)
{
    struct fx *f = *state;
    client_text(f, "{not json");
    expect_error_containing(f, "not valid JSON");
    client_text(f, "[1,2]");
    expect_error_containing(f, "\"subscribe\"");
    client_text(f, "{\"type\":\"subscribe\",\"topics\":\"x\"}");
    expect_error_containing(f, "array");
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[42]}");
    expect_error_containing(f, "not a string");
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"conference\"]}");
    expect_error_containing(f, "malformed");
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:xyz:conference\"]}");
    expect_error_containing(f, "malformed");
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST ":\"]}");
    expect_error_containing(f, "resource");
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST ":conference:\"]}");
    expect_error_containing(f, "resource id");
    client_send(f, 0x2, "\x01\x02", 2);
    expect_error_containing(f, "binary");

    /* 64 topics fit; a 65th is refused. */
    char *msg = malloc(16384);
    size_t n = (size_t)snprintf(msg, 16384, "{\"type\":\"subscribe\",\"topics\":[");
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(msg + n, 16384 - n, "%s\"customer_id:%s:conference:id%d\"",
                              i ? "," : "", CUST, i);
    snprintf(msg + n, 16384 - n, "]}");
    client_text(f, msg);
    struct frame *fr = expect_frame(f, 0x1);
    assert_non_null(strstr(fr->data, "\"subscribed\""));
    assert_non_null(strstr(fr->data, ":conference:id63\""));
    free(fr);
    expect_no_frame(f);
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST
                   ":conference:one-more\"]}");
    expect_error_containing(f, "exceed 64");
    free(msg);
    assert_int_equal(f->closed_count, 0);
}

static void test_ping_pong(void **state)
{
    struct fx *f = *state;
    client_send(f, 0x9, "hi", 2);
    struct frame *fr = expect_frame(f, 0xa);
    assert_string_equal(fr->data, "hi");
    free(fr);
}

static void test_close_frame(void **state)
{
    struct fx *f = *state;
    const uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
    client_send(f, 0x8, code, 2);
    expect_close(f, 1000);
    run_for(f, 20);
    assert_int_equal(f->closed_count, 1);
    assert_int_equal(ws_hub_count(f->hub), 0);
    publish(f, "conference_created", CUST, CONF1);
    run_for(f, 20);
    assert_int_equal(f->closed_count, 1);
}

static void test_peer_eof(void **state)
{
    struct fx *f = *state;
    shutdown(f->client_fd, SHUT_WR);
    run_for(f, 20);
    assert_int_equal(f->closed_count, 1);
    assert_int_equal(ws_hub_count(f->hub), 0);
}

static void test_extra_bytes(void **state)
{
    struct fx *f = *state;
    /* A subscribe frame plus half of a ping that MHD read past the request. */
    const char *sub = "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST ":conference\"]}";
    uint8_t extra[512];
    size_t n = client_frame(extra, 0x1, sub, strlen(sub));
    uint8_t ping[16];
    size_t pn = client_frame(ping, 0x9, "ab", 2);
    memcpy(extra + n, ping, 3);
    accept_with(f, extra, n + 3);
    run_for(f, 20);
    ssize_t w = send(f->client_fd, ping + 3, pn - 3, 0);
    assert_int_equal(w, (ssize_t)(pn - 3));
    const char *want[] = {"customer_id:" CUST ":conference"};
    expect_topics(f, "subscribed", want, 1);
    struct frame *fr = expect_frame(f, 0xa);
    assert_string_equal(fr->data, "ab");
    free(fr);
    publish(f, "conference_created", CUST, CONF1);
    expect_event(f, "conference_created", CONF1);
}

static void test_destroy_going_away(void **state)
{
    struct fx *f = *state;
    ws_hub_destroy(f->hub);
    f->hub = NULL;
    assert_int_equal(f->closed_count, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ssize_t n = recv(f->client_fd, f->rx, RXCAP, 0);
    assert_true(n > 0);
    f->rx_len = (size_t)n;
    struct frame *fr = malloc(sizeof(*fr));
    assert_int_equal(parse_frame(f, fr), 1);
    assert_int_equal(fr->opcode, 0x8);
    assert_int_equal(((uint8_t)fr->data[0] << 8) | (uint8_t)fr->data[1], 1001);
    free(fr);
}

static void test_slow_client(void **state)
{
    struct fx *f = *state;
    subscribe(f, "subscribe", "customer_id:" CUST ":conference");
    /* Nothing runs the loop, so nothing is written: the 1001st event overflows the queue. */
    for (int i = 0; i < 1001; i++)
        publish(f, "conference_updated", CUST, CONF1);
    assert_int_equal(f->closed_count, 1);
    assert_int_equal(ws_hub_count(f->hub), 0);
    expect_close(f, 1008);
}

static void test_message_too_big(void **state)
{
    struct fx *f = *state;
    size_t len = 64 * 1024 + 1;
    char *big = malloc(len);
    memset(big, ' ', len);
    /* The server fails the connection as soon as it sees the length: the rest of the write may
     * find the socket gone. */
    client_send_try(f, 0x1, big, len);
    free(big);
    expect_close(f, 1009);
    run_for(f, 20);
    assert_int_equal(f->closed_count, 1);
}

static void test_subscribe_answers(void **state)
{
    struct fx *f = *state;
    /* Duplicates once, ids as the server reads them (lower case). */
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST
                   ":conference\",\"customer_id:11111111-2222-4333-8444-555555555555:call:"
                   "C0000000-0000-4000-8000-000000000001\",\"customer_id:" CUST ":conference\"]}");
    const char *want[] = {"customer_id:" CUST ":conference", "customer_id:" CUST ":call:" CONF1};
    expect_topics(f, "subscribed", want, 2);
    /* Subscribing again is accepted and answered the same way. */
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST ":conference\"]}");
    expect_topics(f, "subscribed", want, 1);
    /* Unsubscribing a topic never subscribed is answered too. */
    client_text(f, "{\"type\":\"unsubscribe\",\"topics\":[\"customer_id:" CUST
                   ":conference\",\"customer_id:" CUST ":activeflow\"]}");
    const char *gone[] = {"customer_id:" CUST ":conference", "customer_id:" CUST ":activeflow"};
    expect_topics(f, "unsubscribed", gone, 2);
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[]}");
    expect_topics(f, "subscribed", NULL, 0);
    publish(f, "conference_created", CUST, CONF1);
    publish(f, "call_created", CUST, CONF1);
    expect_event(f, "call_created", CONF1);
    expect_no_frame(f);
}

static void test_unknown_kind(void **state)
{
    struct fx *f = *state;
    client_text(f, "{\"type\":\"subscribe\",\"topics\":[\"customer_id:" CUST
                   ":conference\",\"customer_id:" CUST ":xyz\"]}");
    expect_error_containing(f, "unknown topic kind 'xyz'; known kinds: activeflow, agent, call, "
                               "conference, conferencecall, customer, flow, number");
    /* Nothing of that message was applied. */
    publish(f, "conference_created", CUST, CONF1);
    expect_no_frame(f);
    /* Every kind the server publishes is accepted, with and without an id. */
    for (size_t i = 0; events_resources[i]; i++) {
        char topic[128];
        snprintf(topic, sizeof(topic), "customer_id:%s:%s", CUST, events_resources[i]);
        subscribe(f, "subscribe", topic);
        snprintf(topic, sizeof(topic), "customer_id:%s:%s:%s", CUST, events_resources[i], CONF2);
        subscribe(f, "subscribe", topic);
    }
    assert_int_equal(f->closed_count, 0);
}

static void test_revoke_closes_1008(void **state)
{
    struct fx *f = *state;
    subscribe(f, "subscribe", "customer_id:" CUST ":conference");
    ws_hub_revoke(f->hub, KEY2, "access key deleted"); /* another credential: no effect */
    publish(f, "conference_created", CUST, CONF1);
    expect_event(f, "conference_created", CONF1);
    /* Upper case names the same agent. */
    ws_hub_revoke(f->hub, "A0000000-0000-4000-8000-00000000000A", "agent deleted");
    /* Not one more event, even before the loop runs again. */
    publish(f, "conference_updated", CUST, CONF1);
    expect_close_reason(f, 1008, "agent deleted");
    run_for(f, 20);
    assert_int_equal(f->closed_count, 1);
    assert_int_equal(ws_hub_count(f->hub), 0);
}

static void test_revoke_long_reason(void **state)
{
    struct fx *f = *state;
    char why[300];
    memset(why, 'w', sizeof(why) - 1);
    why[sizeof(why) - 1] = '\0';
    ws_hub_revoke(f->hub, AGENT, why);
    why[100] = '\0'; /* a close reason must fit in a control frame */
    expect_close_reason(f, 1008, why);
}

static void test_expiry_closes_1008(void **state)
{
    struct fx *f = *state;
    accept_cred(f, NULL, 0, tm_now_us() + 300 * 1000);
    subscribe(f, "subscribe", "customer_id:" CUST ":conference");
    publish(f, "conference_created", CUST, CONF1);
    expect_event(f, "conference_created", CONF1);
    int64_t t0 = now_ms();
    expect_close_reason(f, 1008, "credential expired");
    int64_t took = now_ms() - t0;
    assert_true(took < 1500);
    run_for(f, 20);
    assert_int_equal(f->closed_count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test_setup_teardown(test_subscribe_matching_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_with_resource_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_customer_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_bytes, setup_noaccept, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_going_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_closes_1008, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_long_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_closes_1008, setup_noaccept, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
