/* sip/ over WebSocket: the stack takes one end of a loopback TCP connection as a SIP WebSocket
 * (sip_ws_accept); the test is the browser on the other end, writing masked frames by hand. What
 * comes back comes back on the socket; nothing is retransmitted on it; the ACK time-out stays; a
 * closed socket ends its dialogs; what is not SIP, or too large, closes it with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "core/log.h"
#include "sip/sip.h"

#define T1 20 /* ms: the ACK time-out is 64*T1 = 1.28 s */
#define RXCAP (128 * 1024)
#define OFFER                                                                                      \
    "v=0\r\no=web 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"                  \
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"

struct fx {
    uv_loop_t loop;
    struct sip_stack *s;
    int server_fd, client_fd;
    int closed; /* closed_cb calls */
    struct sip_dialog *d;
    int invites, established, ended;
    bool ended_remote, ended_cancelled, ended_unacked;
    char source_ip[32];
    int answer_mode; /* 0: answer at once; 1: ring only */
    uint8_t rx[RXCAP];
    size_t rx_len;
    char msg[RXCAP];
    uint8_t opcode;
    size_t len;
    char totag[64], contact[256];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct fx *f = ctx;
    f->invites++;
    f->d = d;
    snprintf(f->source_ip, sizeof(f->source_ip), "%s", inv->source_ip);
    assert_string_equal(inv->transport, "WS");
    if (f->answer_mode == 1) {
        assert_int_equal(sip_dialog_ringing(d), 0);
        return;
    }
    struct sdp_offer_result o;
    char sdp[1024];
    assert_int_equal(sdp_parse_offer(inv->sdp, &o), 0);
    assert_true(sdp_build_answer(&o, "127.0.0.1", 50000, 7, 1, sdp, sizeof(sdp)) > 0);
    assert_int_equal(sip_dialog_answer(d, sdp), 0);
}

static void on_established(void *ctx, struct sip_dialog *d)
{
    ((struct fx *)ctx)->established++;
}

static void on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    struct fx *f = ctx;
    f->ended++;
    f->ended_remote = remote;
    f->ended_cancelled = cancelled;
    f->ended_unacked = sip_dialog_unacked(d);
    f->d = NULL;
}

static void on_closed(void *arg)
{
    struct fx *f = arg;
    f->closed++;
    close(f->server_fd); /* what the HTTP layer does */
    f->server_fd = -1;
}

struct closer {
    int fd, n;
};

static void close_fd(void *arg)
{
    struct closer *c = arg;
    c->n++;
    close(c->fd);
}

static struct fx *fx_new(int max_conns, int max_message)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct sip_config cfg = {.addr = "127.0.0.1",
                             .port = 0,
                             .t1_ms = T1,
                             .ws_max_connections = max_conns,
                             .ws_max_message = max_message};
    struct sip_callbacks cb = {
        .ctx = f, .on_invite = on_invite, .on_established = on_established, .on_ended = on_ended};
    char err[128];
    f->s = sip_create(&f->loop, &cfg, &cb, err, sizeof(err));
    assert_non_null(f->s);
    f->server_fd = f->client_fd = -1;
    return f;
}

/* A loopback TCP connection: the server end (non-blocking) and the client end. */
static void tcp_pair(int *server, int *client)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*client, (struct sockaddr *)&a, sizeof(a)), 0);
    *server = accept(l, NULL, NULL);
    assert_true(*server >= 0);
    close(l);
    fcntl(*server, F_SETFL, fcntl(*server, F_GETFL) | O_NONBLOCK);
    fcntl(*client, F_SETFL, fcntl(*client, F_GETFL) | O_NONBLOCK);
}

static void fx_connect(struct fx *f)
{
    if (f->client_fd >= 0)
        close(f->client_fd);
    f->rx_len = 0;
    tcp_pair(&f->server_fd, &f->client_fd);
    assert_int_equal(sip_ws_accept(f->s, f->server_fd, NULL, 0, on_closed, f), 0);
    assert_int_equal(sip_ws_count(f->s), 1);
}

static void fx_free(struct fx *f)
{
    sip_destroy(f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->server_fd >= 0)
        close(f->server_fd);
    if (f->client_fd >= 0)
        close(f->client_fd);
    free(f);
}

/* Runs the loop until *counter reaches want or ms pass (a loaded machine may be slow). */
static void wait_count(struct fx *f, const int *counter, int want, int ms)
{
    int64_t deadline = now_ms() + ms;
    while (*counter < want && now_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(*counter, want);
}

/* One masked client frame (FIN set). */
static void client_send(struct fx *f, uint8_t opcode, const char *payload, size_t len)
{
    uint8_t *out = malloc(len + 14);
    size_t n = 0;
    out[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    }
    const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    memcpy(out + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        out[n + i] = (uint8_t)payload[i] ^ mask[i % 4];
    n += len;
    for (size_t off = 0; off < n;) {
        ssize_t w = send(f->client_fd, out + off, n - off, MSG_NOSIGNAL);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            break; /* the server has closed */
        else
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    free(out);
}

static void client_text(struct fx *f, const char *text)
{
    client_send(f, 0x1, text, strlen(text));
}

/* The next whole server frame into f->msg within ms: 0, or -1. */
static int client_read(struct fx *f, int ms)
{
    int64_t deadline = now_ms() + ms;
    for (;;) {
        if (f->rx_len >= 2) {
            assert_int_equal(f->rx[1] & 0x80, 0);
            size_t hdr = 2, len = f->rx[1] & 0x7f;
            if (len == 126 && f->rx_len >= 4) {
                len = ((size_t)f->rx[2] << 8) | f->rx[3];
                hdr = 4;
            }
            assert_true(len != 127 && len < sizeof(f->msg));
            if (!(len == 126 && hdr == 2) && f->rx_len >= hdr + len) {
                f->opcode = f->rx[0] & 0x0f;
                memcpy(f->msg, f->rx + hdr, len);
                f->msg[len] = '\0';
                f->len = len;
                memmove(f->rx, f->rx + hdr + len, f->rx_len - hdr - len);
                f->rx_len -= hdr + len;
                return 0;
            }
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(f->client_fd, f->rx + f->rx_len, sizeof(f->rx) - f->rx_len, 0);
        if (n > 0) {
            f->rx_len += (size_t)n;
            continue;
        }
        if (now_ms() >= deadline)
            return -1;
        usleep(1000);
    }
}

/* The next SIP message whose first line starts with start. */
static void expect_sip(struct fx *f, const char *start)
{
    assert_int_equal(client_read(f, 2000), 0);
    assert_int_equal(f->opcode, 0x1);
    if (strncmp(f->msg, start, strlen(start)) != 0)
        fail_msg("expected \"%s\", got:\n%s", start, f->msg);
}

static void expect_close(struct fx *f, int code, const char *reason_part)
{
    assert_int_equal(client_read(f, 2000), 0);
    assert_int_equal(f->opcode, 0x8);
    assert_true(f->len >= 2);
    assert_int_equal(((uint8_t)f->msg[0] << 8) | (uint8_t)f->msg[1], code);
    if (reason_part && !strstr(f->msg + 2, reason_part))
        fail_msg("close reason \"%s\" lacks \"%s\"", f->msg + 2, reason_part);
}

/* A header's value in f->msg (NULL when absent), copied into out. */
static const char *header(struct fx *f, const char *name, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\r\n%s: ", name);
    const char *p = strstr(f->msg, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    return out;
}

static void send_invite(struct fx *f)
{
    char msg[2048];
    snprintf(msg, sizeof(msg),
             "INVITE sip:direct.0a1b2c3d4e5f@127.0.0.1 SIP/2.0\r\n"
             "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKinv1\r\n"
             "Max-Forwards: 69\r\nTo: <sip:direct.0a1b2c3d4e5f@127.0.0.1>\r\n"
             "From: \"Web\" <sip:web@127.0.0.1>;tag=wtag\r\nCall-ID: wscall1\r\n"
             "CSeq: 10 INVITE\r\nContact: <sip:xyz@df7jal23ls0d.invalid;transport=ws>\r\n"
             "Content-Type: application/sdp\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(OFFER), OFFER);
    client_text(f, msg);
}

/* INVITE, 100, 200 (its To tag and Contact kept). */
static void call_up(struct fx *f)
{
    send_invite(f);
    expect_sip(f, "SIP/2.0 100 ");
    expect_sip(f, "SIP/2.0 200 ");
    char to[256];
    assert_non_null(header(f, "To", to, sizeof(to)));
    const char *t = strstr(to, "tag=");
    assert_non_null(t);
    snprintf(f->totag, sizeof(f->totag), "%s", t + 4);
    assert_non_null(header(f, "Contact", f->contact, sizeof(f->contact)));
}

static void send_in_dialog(struct fx *f, const char *method, int cseq)
{
    char msg[1024];
    snprintf(msg, sizeof(msg),
             "%s sip:127.0.0.1;transport=ws SIP/2.0\r\n"
             "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK%s%d\r\n"
             "Max-Forwards: 69\r\nTo: <sip:direct.0a1b2c3d4e5f@127.0.0.1>;tag=%s\r\n"
             "From: \"Web\" <sip:web@127.0.0.1>;tag=wtag\r\nCall-ID: wscall1\r\n"
             "CSeq: %d %s\r\nContent-Length: 0\r\n\r\n",
             method, method, cseq, f->totag, cseq, method);
    client_text(f, msg);
}

static void test_options_and_keepalive(void **state)
{
    struct fx *f = fx_new(0, 0);
    fx_connect(f);
    client_text(f, "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
                   "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKopt1\r\n"
                   "To: <sip:127.0.0.1>\r\nFrom: <sip:web@127.0.0.1>;tag=o1\r\n"
                   "Call-ID: opt1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    expect_sip(f, "SIP/2.0 200 OK");
    char via[256];
    assert_non_null(header(f, "Via", via, sizeof(via)));
    assert_string_equal(via, "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKopt1");
    /* a CRLF keep-alive gets a CRLF, a binary frame is one SIP message too */
    client_text(f, "\r\n\r\n");
    assert_int_equal(client_read(f, 2000), 0);
    assert_string_equal(f->msg, "\r\n");
    const char *bin = "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
                      "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKopt2\r\n"
                      "To: <sip:127.0.0.1>\r\nFrom: <sip:web@127.0.0.1>;tag=o2\r\n"
                      "Call-ID: opt2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    client_send(f, 0x2, bin, strlen(bin));
    expect_sip(f, "SIP/2.0 200 OK");
    assert_int_equal(f->closed, 0);
    fx_free(f);
}

static void test_call_no_retransmission_then_bye(void **state)
{
    struct fx *f = fx_new(0, 0);
    fx_connect(f);
    call_up(f);
    assert_int_equal(f->invites, 1);
    assert_string_equal(f->source_ip, "127.0.0.1");
    assert_non_null(strstr(f->contact, ";transport=ws>"));
    /* Over UDP the 200 would come again after T1, 2*T1, 4*T1...: not on a WebSocket. */
    assert_int_equal(client_read(f, 8 * T1), -1);
    send_in_dialog(f, "ACK", 10);
    wait_count(f, &f->established, 1, 2000);
    /* the state of a WebSocket dialog names its transport; a later run cannot reach it */
    char state_text[4096], err[128];
    assert_true(sip_dialog_state(f->d, state_text, sizeof(state_text)) > 0);
    assert_non_null(strstr(state_text, "\"transport\":\"WS\""));
    assert_int_equal(sip_bye_saved(f->s, state_text, err, sizeof(err)), 0);
    send_in_dialog(f, "BYE", 11);
    expect_sip(f, "SIP/2.0 200 OK");
    wait_count(f, &f->ended, 1, 2000);
    assert_true(f->ended_remote);
    assert_false(f->ended_cancelled);
    fx_free(f);
}

static void test_our_bye_goes_over_the_socket(void **state)
{
    struct fx *f = fx_new(0, 0);
    fx_connect(f);
    call_up(f);
    send_in_dialog(f, "ACK", 10);
    wait_count(f, &f->established, 1, 2000);
    assert_non_null(f->d);
    assert_int_equal(sip_dialog_bye(f->d), 0);
    expect_sip(f, "BYE sip:xyz@df7jal23ls0d.invalid;transport=ws SIP/2.0");
    char via[256];
    assert_non_null(header(f, "Via", via, sizeof(via)));
    assert_true(strncmp(via, "SIP/2.0/WS 127.0.0.1:", 21) == 0);
    assert_null(strstr(via, "rport"));
    /* unanswered on a reliable transport: not sent again, and it ends at 64*T1 */
    assert_int_equal(client_read(f, 8 * T1), -1);
    wait_count(f, &f->ended, 1, 64 * T1 + 3000);
    assert_false(f->ended_remote);
    fx_free(f);
}

static void test_ack_timeout_stays(void **state)
{
    struct fx *f = fx_new(0, 0);
    fx_connect(f);
    int64_t t0 = now_ms(); /* before the answer: the time-out runs from it */
    call_up(f);
    /* no ACK: after 64*T1 a BYE over the socket, the dialog ends unacknowledged */
    assert_int_equal(client_read(f, 64 * T1 + 3000), 0);
    assert_true(strncmp(f->msg, "BYE ", 4) == 0);
    assert_true(now_ms() - t0 >= 64 * T1);
    wait_count(f, &f->ended, 1, 2000);
    assert_true(f->ended_unacked);
    fx_free(f);
}

static void test_close_ends_dialogs(void **state)
{
    /* an established call: ended as by a BYE from the peer */
    struct fx *f = fx_new(0, 0);
    fx_connect(f);
    call_up(f);
    send_in_dialog(f, "ACK", 10);
    wait_count(f, &f->established, 1, 2000);
    close(f->client_fd);
    f->client_fd = -1;
    wait_count(f, &f->ended, 1, 2000);
    assert_int_equal(f->closed, 1);
    assert_int_equal(sip_ws_count(f->s), 0);
    assert_true(f->ended_remote);
    assert_false(f->ended_cancelled);
    fx_free(f);
    /* a ringing one: as by a CANCEL */
    f = fx_new(0, 0);
    f->answer_mode = 1;
    fx_connect(f);
    send_invite(f);
    expect_sip(f, "SIP/2.0 100 ");
    expect_sip(f, "SIP/2.0 180 ");
    const uint8_t code[2] = {0x03, 0xe8};
    client_send(f, 0x8, (const char *)code, 2);
    wait_count(f, &f->ended, 1, 2000);
    assert_int_equal(f->closed, 1);
    assert_true(f->ended_remote && f->ended_cancelled);
    fx_free(f);
}

static void test_not_sip_and_too_big(void **state)
{
    struct fx *f = fx_new(0, 1024);
    fx_connect(f);
    client_text(f, "hello");
    expect_close(f, 1008, "not a SIP message");
    wait_count(f, &f->closed, 1, 2000);
    fx_connect(f);
    /* a SIP request that cannot be answered in a dialog: 400, the connection stays */
    client_text(f, "INVITE sip:x@127.0.0.1 SIP/2.0\r\n"
                   "Via: SIP/2.0/WSS a.invalid;branch=z9hG4bKbad\r\nTo: <sip:x@127.0.0.1>\r\n"
                   "Call-ID: bad\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    expect_sip(f, "SIP/2.0 400 ");
    char big[1500];
    memset(big, 'a', sizeof(big));
    memcpy(big, "OPTIONS ", 8);
    client_send(f, 0x1, big, sizeof(big));
    expect_close(f, 1009, "sip_ws_max_message");
    wait_count(f, &f->closed, 2, 2000);
    fx_free(f);
}

static void test_connection_limit(void **state)
{
    struct fx *f = fx_new(1, 0);
    char err[256];
    assert_int_equal(sip_ws_admit(f->s, err, sizeof(err)), 0);
    fx_connect(f);
    assert_int_equal(sip_ws_admit(f->s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "sip_ws_max_connections"));
    int client;
    struct closer refused = {0};
    tcp_pair(&refused.fd, &client);
    assert_int_equal(sip_ws_accept(f->s, refused.fd, NULL, 0, close_fd, &refused), -1);
    assert_int_equal(refused.n, 1);
    close(client);
    /* shutting down: the open one gets 1001, its socket handed back */
    sip_destroy(f->s);
    f->s = NULL;
    expect_close(f, 1001, NULL);
    assert_int_equal(f->closed, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->client_fd);
    free(f);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_and_keepalive),
        cmocka_unit_test(test_call_no_retransmission_then_bye),
        cmocka_unit_test(test_our_bye_goes_over_the_socket),
        cmocka_unit_test(test_ack_timeout_stays),
        cmocka_unit_test(test_close_ends_dialogs),
        cmocka_unit_test(test_not_sip_and_too_big),
        cmocka_unit_test(test_connection_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
