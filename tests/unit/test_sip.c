/* sip/: the stack on 127.0.0.1 driven by hand-written SIP over a plain UDP socket (the "phone"),
 * two stacks calling each other in one loop (outgoing calls), and the SDP offer/answer functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "core/log.h"
#include "sip/sip.h"

#define OFFER                                                                                      \
    "v=0\r\n"                                                                                      \
    "o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n"                                           \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 127.0.0.1\r\n"                                                                       \
    "t=0 0\r\n"                                                                                    \
    "m=audio 40000 RTP/AVP 8 0 101\r\n"                                                            \
    "a=rtpmap:8 PCMA/8000\r\n"                                                                     \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=fmtp:101 0-16\r\n"                                                                          \
    "a=sendrecv\r\n"

struct fx {
    uv_loop_t loop;
    struct sip_stack *s;
    int fd, port, my_port;
    int answer_mode; /* 0: the test answers; 1: answer in on_invite; 2: 486; 3: 404 */
    bool multi;      /* several dialogs at once: f->d is only the latest */
    struct sip_dialog *d;
    int invites, established, ended;
    bool ended_remote, ended_cancelled, ended_unacked;
    char request_user[64], from_display[64], call_id[128], source_ip[32], sdp[2048];
    int source_port;
    char totag[64]; /* our tag, read from the last 200 */
    char msg[65536];
    int branch;
    /* outgoing calls */
    int progress, last_progress, answered, failed, fail_code;
    char answer_sdp[2048];
};

static int answer(struct sip_dialog *d, const char *offer)
{
    struct sdp_offer_result o;
    if (sdp_parse_offer(offer, &o) < 0)
        return -1;
    char sdp[1024];
    if (sdp_build_answer(&o, "127.0.0.1", 50000, 42, 1, sdp, sizeof(sdp)) < 0)
        return -1;
    return sip_dialog_answer(d, sdp);
}

static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct fx *f = ctx;
    f->invites++;
    f->d = d;
    snprintf(f->request_user, sizeof(f->request_user), "%s", inv->request_user);
    snprintf(f->from_display, sizeof(f->from_display), "%s", inv->from_display);
    snprintf(f->call_id, sizeof(f->call_id), "%s", inv->call_id);
    snprintf(f->source_ip, sizeof(f->source_ip), "%s", inv->source_ip);
    snprintf(f->sdp, sizeof(f->sdp), "%s", inv->sdp ? inv->sdp : "");
    f->source_port = inv->source_port;
    if (f->answer_mode == 1)
        assert_int_equal(answer(d, inv->sdp), 0);
    else if (f->answer_mode == 2)
        assert_int_equal(sip_dialog_reject(d, 486, NULL), 0);
    else if (f->answer_mode == 3)
        assert_int_equal(sip_dialog_reject(d, 404, "No Such Conference"), 0);
    if (f->answer_mode >= 2)
        f->d = NULL;
}

static void on_established(void *ctx, struct sip_dialog *d)
{
    struct fx *f = ctx;
    if (!f->multi)
        assert_ptr_equal(d, f->d);
    f->established++;
}

static void on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    struct fx *f = ctx;
    if (!f->multi)
        assert_ptr_equal(d, f->d);
    f->ended++;
    f->ended_remote = remote;
    f->ended_cancelled = cancelled;
    f->ended_unacked = sip_dialog_unacked(d);
    if (d == f->d)
        f->d = NULL;
}

static void on_progress(void *ctx, struct sip_dialog *d, int code)
{
    struct fx *f = ctx;
    assert_ptr_equal(d, f->d);
    f->progress++;
    f->last_progress = code;
}

static void on_answered(void *ctx, struct sip_dialog *d, const char *sdp)
{
    struct fx *f = ctx;
    assert_ptr_equal(d, f->d);
    f->answered++;
    snprintf(f->answer_sdp, sizeof(f->answer_sdp), "%s", sdp ? sdp : "");
}

static void on_failed(void *ctx, struct sip_dialog *d, int code)
{
    struct fx *f = ctx;
    assert_ptr_equal(d, f->d);
    f->failed++;
    f->fail_code = code;
    f->d = NULL;
}

static struct fx *fx_new_setup(int t1_ms, int max_dialogs, int max_setup)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct sip_config cfg = {.addr = "127.0.0.1",
                             .port = 0,
                             .user_agent = "conferenced-test",
                             .max_dialogs = max_dialogs,
                             .max_setup_per_source = max_setup,
                             .t1_ms = t1_ms};
    struct sip_callbacks cb = {.ctx = f,
                               .on_invite = on_invite,
                               .on_established = on_established,
                               .on_ended = on_ended,
                               .on_progress = on_progress,
                               .on_answered = on_answered,
                               .on_failed = on_failed};
    char err[256];
    f->s = sip_create(&f->loop, &cfg, &cb, err, sizeof(err));
    if (!f->s)
        fail_msg("sip_create: %s", err);
    f->port = sip_port(f->s);
    assert_true(f->port > 0);
    f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(f->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &alen), 0);
    f->my_port = ntohs(a.sin_port);
    return f;
}

static struct fx *fx_new(int t1_ms, int max_dialogs)
{
    return fx_new_setup(t1_ms, max_dialogs, 0);
}

static void fx_free(struct fx *f)
{
    sip_destroy(f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->fd);
    free(f);
}

/* Runs the loop for ms. */
static void spin(struct fx *f, int ms)
{
    uint64_t end = uv_hrtime() / 1000000 + (uint64_t)ms;
    while (uv_hrtime() / 1000000 < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

/* The next datagram to the phone within ms (in f->msg), or NULL. */
static const char *next_msg(struct fx *f, int ms)
{
    uint64_t end = uv_hrtime() / 1000000 + (uint64_t)ms;
    do {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t n = recv(f->fd, f->msg, sizeof(f->msg) - 1, 0);
        if (n > 0) {
            f->msg[n] = '\0';
            return f->msg;
        }
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        poll(&p, 1, 1);
    } while (uv_hrtime() / 1000000 < end);
    return NULL;
}

/* The next datagram must start with prefix (e.g. "SIP/2.0 200"). */
static const char *expect(struct fx *f, const char *prefix, int ms)
{
    const char *m = next_msg(f, ms);
    if (!m)
        fail_msg("nothing arrived, expected '%s'", prefix);
    if (strncmp(m, prefix, strlen(prefix)) != 0)
        fail_msg("expected '%s', got:\n%s", prefix, m);
    return m;
}

static void expect_nothing(struct fx *f, int ms)
{
    const char *m = next_msg(f, ms);
    if (m)
        fail_msg("expected silence, got:\n%s", m);
}

/* The value of header name in msg, or "". */
static const char *hdr(const char *msg, const char *name, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = strcasestr(msg, key);
    out[0] = '\0';
    if (!p)
        return out;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

static void remember_totag(struct fx *f, const char *msg)
{
    char to[256];
    hdr(msg, "To", to, sizeof(to));
    const char *t = strstr(to, "tag=");
    assert_non_null(t);
    snprintf(f->totag, sizeof(f->totag), "%.*s", (int)strcspn(t + 4, ";>"), t + 4);
}

/* Sends a request: head lines end in \n (made \r\n here), then Content-Length and the body. */
__attribute__((format(printf, 3, 4))) static void send_req(struct fx *f, const char *body,
                                                           const char *fmt, ...)
{
    char head[4096], out[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    size_t n = 0;
    for (const char *p = head; *p && n + 2 < sizeof(out); p++) {
        if (*p == '\n')
            out[n++] = '\r';
        out[n++] = *p;
    }
    out[n] = '\0';
    size_t blen = body ? strlen(body) : 0;
    n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%sContent-Length: %zu\r\n\r\n%s",
                          blen ? "Content-Type: application/sdp\r\n" : "", "", blen,
                          body ? body : "");
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)f->port)};
    assert_int_equal(sendto(f->fd, out, n, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)n);
}

static void send_raw(struct fx *f, const void *buf, size_t n)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)f->port)};
    assert_int_equal(sendto(f->fd, buf, n, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)n);
}

static void send_invite(struct fx *f, const char *call_id, const char *branch)
{
    send_req(f, OFFER,
             "INVITE sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\n"
             "Max-Forwards: 70\n"
             "From: \"Alice\" <sip:alice@127.0.0.1:%d>;tag=from1\n"
             "To: <sip:direct.0123456789ab@127.0.0.1:%d>\n"
             "Call-ID: %s\n"
             "CSeq: 1 INVITE\n"
             "Contact: <sip:alice@127.0.0.1:%d>\n",
             f->port, f->my_port, branch, f->my_port, f->port, call_id, f->my_port);
}

/* An in-dialog request from the phone (ACK, BYE, re-INVITE). */
static void send_in_dialog(struct fx *f, const char *method, int cseq, const char *call_id,
                           const char *totag, const char *body)
{
    send_req(f, body,
             "%s sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdlg%d;rport\n"
             "Max-Forwards: 70\n"
             "From: \"Alice\" <sip:alice@127.0.0.1:%d>;tag=from1\n"
             "To: <sip:direct.0123456789ab@127.0.0.1:%d>;tag=%s\n"
             "Call-ID: %s\n"
             "CSeq: %d %s\n"
             "Contact: <sip:alice@127.0.0.1:%d>\n",
             method, f->port, f->my_port, ++f->branch, f->my_port, f->port, totag, call_id, cseq,
             method, f->my_port);
}

/* INVITE, 100, 200 (answered in on_invite), ACK: an established call. */
static void establish(struct fx *f, const char *call_id)
{
    f->answer_mode = 1;
    send_invite(f, call_id, "z9hG4bKinv1");
    expect(f, "SIP/2.0 100", 1000);
    const char *ok = expect(f, "SIP/2.0 200", 1000);
    remember_totag(f, ok);
    send_in_dialog(f, "ACK", 1, call_id, f->totag, NULL);
    spin(f, 30);
    assert_int_equal(f->established, 1);
}

static void test_invite_answer_ack_bye(void **state)
{
    struct fx *f = fx_new(0, 10);
    send_invite(f, "call-1@test", "z9hG4bKinv1");
    expect(f, "SIP/2.0 100 Trying", 1000);
    spin(f, 20);
    assert_int_equal(f->invites, 1);
    assert_non_null(f->d);
    assert_string_equal(f->request_user, "direct.0123456789ab");
    assert_string_equal(f->from_display, "Alice");
    assert_string_equal(f->call_id, "call-1@test");
    assert_string_equal(f->source_ip, "127.0.0.1");
    assert_int_equal(f->source_port, f->my_port);
    assert_string_equal(sip_dialog_call_id(f->d), "call-1@test");
    assert_non_null(strstr(f->sdp, "m=audio 40000"));
    int x;
    sip_dialog_set_data(f->d, &x);
    assert_ptr_equal(sip_dialog_data(f->d), &x);
    assert_int_equal(sip_dialog_bye(f->d), -1); /* not answered yet */

    assert_int_equal(sip_dialog_ringing(f->d), 0);
    const char *m = expect(f, "SIP/2.0 180 Ringing", 1000);
    char h[512];
    assert_non_null(strstr(hdr(m, "To", h, sizeof(h)), ";tag="));
    assert_int_equal(answer(f->d, f->sdp), 0);
    m = expect(f, "SIP/2.0 200 OK", 1000);
    assert_non_null(strstr(hdr(m, "Contact", h, sizeof(h)), "sip:127.0.0.1:"));
    assert_string_equal(hdr(m, "Content-Type", h, sizeof(h)), "application/sdp");
    assert_string_equal(hdr(m, "Server", h, sizeof(h)), "conferenced-test");
    assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "1 INVITE");
    assert_non_null(strstr(m, "\r\n\r\nv=0\r\n"));
    assert_non_null(strstr(m, "m=audio 50000 RTP/AVP 8 101\r\n"));
    remember_totag(f, m);
    assert_int_equal(f->established, 0);

    send_in_dialog(f, "ACK", 1, "call-1@test", f->totag, NULL);
    expect_nothing(f, 50);
    assert_int_equal(f->established, 1);

    send_in_dialog(f, "BYE", 2, "call-1@test", f->totag, NULL);
    m = expect(f, "SIP/2.0 200 OK", 1000);
    assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "2 BYE");
    assert_int_equal(f->ended, 1);
    assert_true(f->ended_remote);
    assert_false(f->ended_cancelled);
    assert_false(f->ended_unacked);
    /* a retransmitted BYE gets the same answer from the transaction */
    f->branch--;
    send_in_dialog(f, "BYE", 2, "call-1@test", f->totag, NULL);
    expect(f, "SIP/2.0 200 OK", 1000);
    assert_int_equal(f->ended, 1);
    fx_free(f);
}

static void test_2xx_retransmitted_until_ack(void **state)
{
    struct fx *f = fx_new(40, 10);
    f->answer_mode = 1;
    send_invite(f, "call-rtx@test", "z9hG4bKinv1");
    expect(f, "SIP/2.0 100", 1000);
    const char *m = expect(f, "SIP/2.0 200", 1000);
    remember_totag(f, m);
    /* T1 = 40 ms: again after 40, 80, 160 ms */
    expect(f, "SIP/2.0 200", 200);
    expect(f, "SIP/2.0 200", 300);
    /* the INVITE retransmitted after the transaction ended also gets the 200 */
    send_invite(f, "call-rtx@test", "z9hG4bKinv1");
    expect(f, "SIP/2.0 200", 300);
    assert_int_equal(f->invites, 1);
    send_in_dialog(f, "ACK", 1, "call-rtx@test", f->totag, NULL);
    spin(f, 10);
    assert_int_equal(f->established, 1);
    while (next_msg(f, 0)) /* one may have crossed the ACK */
        ;
    expect_nothing(f, 500);
    assert_int_equal(f->ended, 0);
    fx_free(f);
}

static void test_no_ack_bye_and_ended(void **state)
{
    struct fx *f = fx_new(20, 10);
    f->answer_mode = 1;
    send_invite(f, "call-noack@test", "z9hG4bKinv1");
    expect(f, "SIP/2.0 100", 1000);
    int oks = 0;
    const char *m;
    /* 64 * T1 = 1.28 s of 200s, then a BYE */
    while ((m = next_msg(f, 2000)) && strncmp(m, "SIP/2.0 200", 11) == 0)
        oks++;
    assert_non_null(m);
    assert_true(oks >= 4);
    assert_true(strncmp(m, "BYE sip:alice@127.0.0.1:", 24) == 0);
    spin(f, 10);
    assert_int_equal(f->established, 0);
    assert_int_equal(f->ended, 1);
    assert_true(f->ended_remote);
    assert_false(f->ended_cancelled);
    assert_true(f->ended_unacked);
    fx_free(f);
}

static void test_cancel(void **state)
{
    struct fx *f = fx_new(0, 10);
    send_invite(f, "call-cancel@test", "z9hG4bKinv7");
    expect(f, "SIP/2.0 100", 1000);
    spin(f, 10);
    assert_int_equal(f->invites, 1);
    send_req(f, NULL,
             "CANCEL sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKinv7;rport\n"
             "Max-Forwards: 70\n"
             "From: \"Alice\" <sip:alice@127.0.0.1:%d>;tag=from1\n"
             "To: <sip:direct.0123456789ab@127.0.0.1:%d>\n"
             "Call-ID: call-cancel@test\n"
             "CSeq: 1 CANCEL\n",
             f->port, f->my_port, f->my_port, f->port);
    bool got200 = false, got487 = false;
    char h[256];
    for (int i = 0; i < 2; i++) {
        const char *m = next_msg(f, 1000);
        assert_non_null(m);
        if (strncmp(m, "SIP/2.0 200", 11) == 0) {
            assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "1 CANCEL");
            got200 = true;
        } else if (strncmp(m, "SIP/2.0 487", 11) == 0) {
            assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "1 INVITE");
            remember_totag(f, m);
            got487 = true;
        }
    }
    assert_true(got200 && got487);
    assert_int_equal(f->ended, 1);
    assert_true(f->ended_remote);
    assert_true(f->ended_cancelled);
    /* the ACK for the 487 is absorbed by the transaction */
    send_req(f, NULL,
             "ACK sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKinv7;rport\n"
             "From: \"Alice\" <sip:alice@127.0.0.1:%d>;tag=from1\n"
             "To: <sip:direct.0123456789ab@127.0.0.1:%d>;tag=%s\n"
             "Call-ID: call-cancel@test\n"
             "CSeq: 1 ACK\n",
             f->port, f->my_port, f->my_port, f->port, f->totag);
    expect_nothing(f, 100);
    fx_free(f);
}

static void test_reinvite(void **state)
{
    struct fx *f = fx_new(0, 10);
    establish(f, "call-re@test");
    const char *hold = "v=0\r\no=alice 2890844526 2890844527 IN IP4 127.0.0.1\r\ns=-\r\n"
                       "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\n"
                       "a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
    send_in_dialog(f, "INVITE", 2, "call-re@test", f->totag, hold);
    const char *m = expect(f, "SIP/2.0 200", 1000);
    assert_non_null(strstr(m, "o=conferenced 42 2 IN IP4 127.0.0.1\r\n"));
    assert_non_null(strstr(m, "m=audio 50000 RTP/AVP 8 101\r\n"));
    assert_non_null(strstr(m, "a=recvonly\r\n"));
    send_in_dialog(f, "ACK", 2, "call-re@test", f->totag, NULL);
    expect_nothing(f, 100);
    /* an offer without our codec is refused; the call goes on */
    const char *g722 = "v=0\r\no=alice 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                       "t=0 0\r\nm=audio 40000 RTP/AVP 9\r\n";
    send_in_dialog(f, "INVITE", 3, "call-re@test", f->totag, g722);
    expect(f, "SIP/2.0 488", 1000);
    /* without an offer: our answer again, as an offer */
    send_in_dialog(f, "INVITE", 4, "call-re@test", f->totag, NULL);
    m = expect(f, "SIP/2.0 200", 1000);
    assert_non_null(strstr(m, "m=audio 50000 RTP/AVP 8 101\r\n"));
    send_in_dialog(f, "ACK", 4, "call-re@test", f->totag, NULL);
    /* a re-INVITE for a dialog that does not exist */
    send_in_dialog(f, "INVITE", 5, "call-re@test", "nosuchtag", hold);
    expect(f, "SIP/2.0 481", 1000);
    assert_int_equal(f->ended, 0);
    assert_int_equal(f->invites, 1);
    fx_free(f);
}

/* A request outside any dialog: method, port, Via port, branch, port, Call-ID, CSeq method. */
#define OUT_OF_DIALOG                                                                              \
    "%s sip:127.0.0.1:%d SIP/2.0\n"                                                                \
    "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKopt%d\n"                                          \
    "From: <sip:probe@127.0.0.1>;tag=p1\n"                                                         \
    "To: <sip:127.0.0.1:%d>\n"                                                                     \
    "Call-ID: opt%d@test\n"                                                                        \
    "CSeq: 7 %s\n"

static void test_options_and_methods(void **state)
{
    struct fx *f = fx_new(0, 10);

    send_req(f, NULL, OUT_OF_DIALOG, "OPTIONS", f->port, f->my_port, 1, f->port, 1, "OPTIONS");
    const char *m = expect(f, "SIP/2.0 200 OK", 1000);
    char h[256];
    assert_string_equal(hdr(m, "Allow", h, sizeof(h)), "INVITE, ACK, BYE, CANCEL, OPTIONS");
    assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "7 OPTIONS");
    assert_non_null(strstr(hdr(m, "To", h, sizeof(h)), ";tag="));
    send_req(f, NULL, OUT_OF_DIALOG, "REGISTER", f->port, f->my_port, 2, f->port, 2, "REGISTER");
    m = expect(f, "SIP/2.0 405", 1000);
    assert_string_equal(hdr(m, "Allow", h, sizeof(h)), "INVITE, ACK, BYE, CANCEL, OPTIONS");
    send_req(f, NULL, OUT_OF_DIALOG, "FROBNICATE", f->port, f->my_port, 3, f->port, 3,
             "FROBNICATE");
    expect(f, "SIP/2.0 501", 1000);
    /* BYE for a dialog that does not exist */
    send_in_dialog(f, "BYE", 2, "nosuchcall@test", "nosuchtag", NULL);
    expect(f, "SIP/2.0 481", 1000);
    /* an ACK for nothing: silence */
    send_in_dialog(f, "ACK", 1, "nosuchcall@test", "nosuchtag", NULL);
    expect_nothing(f, 50);
    /* CSeq method differs from the request method: 400 */
    send_req(f, NULL, OUT_OF_DIALOG, "OPTIONS", f->port, f->my_port, 4, f->port, 4, "INVITE");
    expect(f, "SIP/2.0 400", 1000);
    fx_free(f);
}

static void test_garbage(void **state)
{
    struct fx *f = fx_new(0, 10);
    const char *junk[] = {
        "hello world, this is not SIP at all",
        "\r\n\r\n",
        "INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKnone\r\nCSeq: 1 BYE\r\n"
         "Call-ID: x\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nContent-Length: 0\r\n\r\n"),
        "INVITE sip:x@y SIP/2.0\r\nVia: \r\nFrom: <>\r\nTo: <>\r\nCall-ID: \r\nCSeq: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        send_raw(f, junk[i], strlen(junk[i]));
    unsigned char bin[1500];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 7 + 3);
    send_raw(f, bin, sizeof(bin));
    expect_nothing(f, 100);
    assert_int_equal(f->invites, 0);
    send_req(f, NULL,
             "OPTIONS sip:127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKok\n"
             "From: <sip:p@q>;tag=1\nTo: <sip:r@s>\nCall-ID: alive@test\nCSeq: 1 OPTIONS\n",
             f->my_port);
    expect(f, "SIP/2.0 200", 1000);
    fx_free(f);
}

static void test_local_bye(void **state)
{
    struct fx *f = fx_new(0, 10);
    establish(f, "call-lb@test");
    assert_int_equal(sip_dialog_bye(f->d), 0);
    const char *m = expect(f, "BYE sip:alice@127.0.0.1:", 1000);
    char h[256], via[256], from[256], to[256], cseq[64];
    assert_non_null(strstr(hdr(m, "From", from, sizeof(from)), f->totag));
    assert_non_null(strstr(hdr(m, "To", to, sizeof(to)), "tag=from1"));
    assert_string_equal(hdr(m, "Call-ID", h, sizeof(h)), "call-lb@test");
    hdr(m, "CSeq", cseq, sizeof(cseq));
    assert_non_null(strstr(cseq, " BYE"));
    hdr(m, "Via", via, sizeof(via));
    assert_non_null(strstr(via, "branch=z9hG4bK"));
    assert_int_equal(f->ended, 0);
    char resp[2048];
    int n = snprintf(resp, sizeof(resp),
                     "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: call-lb@test\r\n"
                     "CSeq: %s\r\nContent-Length: 0\r\n\r\n",
                     via, from, to, cseq);
    send_raw(f, resp, (size_t)n);
    spin(f, 30);
    assert_int_equal(f->ended, 1);
    assert_false(f->ended_remote);
    assert_false(f->ended_cancelled);
    expect_nothing(f, 100);
    fx_free(f);
}

static void test_reject(void **state)
{
    struct fx *f = fx_new(0, 10);
    f->answer_mode = 2;
    send_invite(f, "call-486@test", "z9hG4bKinv486");
    expect(f, "SIP/2.0 100", 1000);
    const char *m = expect(f, "SIP/2.0 486 Busy Here", 1000);
    remember_totag(f, m);
    f->answer_mode = 3;
    send_invite(f, "call-404@test", "z9hG4bKinv404");
    expect(f, "SIP/2.0 100", 1000);
    expect(f, "SIP/2.0 404 No Such Conference", 1000);
    /* the 486 is retransmitted (timer G) until its ACK */
    expect(f, "SIP/2.0 486", 1500);
    send_req(f, NULL,
             "ACK sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKinv486;rport\n"
             "From: \"Alice\" <sip:alice@127.0.0.1:%d>;tag=from1\n"
             "To: <sip:direct.0123456789ab@127.0.0.1:%d>;tag=%s\n"
             "Call-ID: call-486@test\nCSeq: 1 ACK\n",
             f->port, f->my_port, f->my_port, f->port, f->totag);
    assert_int_equal(f->invites, 2);
    assert_int_equal(f->ended, 0);
    fx_free(f);
}

static void test_max_dialogs(void **state)
{
    struct fx *f = fx_new(0, 1);
    send_invite(f, "call-a@test", "z9hG4bKa");
    expect(f, "SIP/2.0 100", 1000);
    send_invite(f, "call-b@test", "z9hG4bKb");
    expect(f, "SIP/2.0 503", 1000);
    assert_int_equal(f->invites, 1);
    fx_free(f);
}

static void test_destroy_sends_bye(void **state)
{
    struct fx *f = fx_new(0, 10);
    establish(f, "call-d@test");
    sip_destroy(f->s);
    f->s = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    char buf[4096];
    struct pollfd p = {.fd = f->fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 1000), 1);
    ssize_t n = recv(f->fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_true(strncmp(buf, "BYE ", 4) == 0);
    assert_int_equal(f->ended, 0); /* no callbacks from sip_destroy */
    fx_free(f);
}

/* ---- many transactions at once ---- */

/* OPTIONS number n (branch z9hG4bKopt<n>, Call-ID opt<n>@test), from Via port via_port; its 200
 * must come, and its To tag (new per transaction) goes to f->totag. */
static void options_roundtrip(struct fx *f, int n, int via_port)
{
    send_req(f, NULL, OUT_OF_DIALOG, "OPTIONS", f->port, via_port, n, f->port, n, "OPTIONS");
    const char *m = expect(f, "SIP/2.0 200", 1000);
    char want[64], h[256];
    snprintf(want, sizeof(want), "opt%d@test", n);
    assert_string_equal(hdr(m, "Call-ID", h, sizeof(h)), want);
    remember_totag(f, m);
}

/* Thousands of non-INVITE server transactions linger (Timer J, 64*T1 = 32 s): a retransmission
 * still finds its own (the same 200, To tag and all, not a new transaction), a new request gets a
 * new one, and calls go on. */
static void test_many_lingering_transactions(void **state)
{
    struct fx *f = fx_new(0, 500); /* room for 8*500 + 1024 transactions */
    enum { N = 3000 };
    char first[64] = "", middle[64] = "", last[64] = "";
    for (int i = 0; i < N; i++) {
        options_roundtrip(f, 1000 + i, f->my_port);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", f->totag);
        else if (i == N / 2)
            snprintf(middle, sizeof(middle), "%s", f->totag);
        else if (i == N - 1)
            snprintf(last, sizeof(last), "%s", f->totag);
    }
    options_roundtrip(f, 1000, f->my_port);
    assert_string_equal(f->totag, first);
    options_roundtrip(f, 1000 + N / 2, f->my_port);
    assert_string_equal(f->totag, middle);
    options_roundtrip(f, 1000 + N - 1, f->my_port);
    assert_string_equal(f->totag, last);
    /* the same branch from another sent-by is another transaction (RFC 3261 17.2.3) */
    options_roundtrip(f, 1000, f->my_port + 1);
    assert_string_not_equal(f->totag, first);
    /* a new request: a new transaction */
    options_roundtrip(f, 1000 + N, f->my_port);
    assert_string_not_equal(f->totag, first);
    assert_string_not_equal(f->totag, last);
    /* a BYE for no dialog, twice: 481, then the same 481 from its transaction */
    send_in_dialog(f, "BYE", 2, "nosuchcall@test", "nosuchtag", NULL);
    remember_totag(f, expect(f, "SIP/2.0 481", 1000));
    char tag481[64];
    snprintf(tag481, sizeof(tag481), "%s", f->totag);
    f->branch--;
    send_in_dialog(f, "BYE", 2, "nosuchcall@test", "nosuchtag", NULL);
    remember_totag(f, expect(f, "SIP/2.0 481", 1000));
    assert_string_equal(f->totag, tag481);
    /* a call among them */
    establish(f, "call-many@test");
    send_in_dialog(f, "BYE", 2, "call-many@test", f->totag, NULL);
    expect(f, "SIP/2.0 200", 1000);
    assert_int_equal(f->ended, 1);
    fx_free(f);
}

/* An OPTIONS whose branch lacks the RFC 3261 cookie: port, Via port, port. */
#define LEGACY_OPTIONS                                                                             \
    "OPTIONS sip:127.0.0.1:%d SIP/2.0\n"                                                           \
    "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=oldstyle42\n"                                            \
    "From: <sip:probe@127.0.0.1>;tag=p1\n"                                                         \
    "To: <sip:127.0.0.1:%d>\n"                                                                     \
    "Call-ID: legacy@test\n"                                                                       \
    "CSeq: 7 OPTIONS\n"

/* Timer J ends each transaction on its own time: a retransmission within 64*T1 gets the same 200,
 * one after it a new transaction (a new To tag). Also for a branch without the RFC 3261 cookie,
 * which libosip2's own matching finds. */
static void test_timer_j(void **state)
{
    struct fx *f = fx_new(10, 100); /* Timer J: 640 ms */
    for (int i = 0; i < 200; i++)
        options_roundtrip(f, 1000 + i, f->my_port);
    options_roundtrip(f, 1, f->my_port);
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", f->totag);
    send_req(f, NULL, LEGACY_OPTIONS, f->port, f->my_port, f->port);
    remember_totag(f, expect(f, "SIP/2.0 200", 1000));
    char ltag[64];
    snprintf(ltag, sizeof(ltag), "%s", f->totag);
    spin(f, 100);
    options_roundtrip(f, 1, f->my_port);
    assert_string_equal(f->totag, tag);
    send_req(f, NULL, LEGACY_OPTIONS, f->port, f->my_port, f->port);
    remember_totag(f, expect(f, "SIP/2.0 200", 1000));
    assert_string_equal(f->totag, ltag);
    spin(f, 800);
    options_roundtrip(f, 1, f->my_port);
    assert_string_not_equal(f->totag, tag);
    send_req(f, NULL, LEGACY_OPTIONS, f->port, f->my_port, f->port);
    remember_totag(f, expect(f, "SIP/2.0 200", 1000));
    assert_string_not_equal(f->totag, ltag);
    expect_nothing(f, 50);
    fx_free(f);
}

/* ---- outgoing calls: the stack calls the phone ---- */

/* The phone's answer to the request req: its Via, From, To (with totag unless it has one),
 * Call-ID and CSeq; extra: header lines ending in \n. */
static void phone_respond(struct fx *f, const char *req, const char *status, const char *totag,
                          const char *extra, const char *body)
{
    char via[256], from[256], to[256], cid[256], cseq[64];
    hdr(req, "Via", via, sizeof(via));
    hdr(req, "From", from, sizeof(from));
    hdr(req, "To", to, sizeof(to));
    hdr(req, "Call-ID", cid, sizeof(cid));
    hdr(req, "CSeq", cseq, sizeof(cseq));
    bool tagged = strstr(to, "tag=") != NULL;
    send_req(f, body, "SIP/2.0 %s\nVia: %s\nFrom: %s\nTo: %s%s%s\nCall-ID: %s\nCSeq: %s\n%s",
             status, via, from, to, totag && !tagged ? ";tag=" : "", totag && !tagged ? totag : "",
             cid, cseq, extra);
}

#define ANSWER_PCMA                                                                                \
    "v=0\r\n"                                                                                      \
    "o=bob 77 1 IN IP4 127.0.0.1\r\n"                                                              \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 127.0.0.1\r\n"                                                                       \
    "t=0 0\r\n"                                                                                    \
    "m=audio 40000 RTP/AVP 8 101\r\n"                                                              \
    "a=rtpmap:8 PCMA/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=sendrecv\r\n"

static void test_uac_wire(void **state)
{
    struct fx *f = fx_new(0, 10);
    char uri[64], offer[1024], err[128], want[128], h[512];
    snprintf(uri, sizeof(uri), "sip:bob@127.0.0.1:%d", f->my_port);
    assert_true(sdp_build_offer("127.0.0.1", 30000, 5, 1, offer, sizeof(offer)) > 0);
    struct sip_outgoing o = {.request_uri = uri,
                             .from_uri = "sip:+15550001111@127.0.0.1",
                             .from_display = "Conf \"Room\" 1",
                             .sdp = offer};
    int x;
    f->d = sip_dialog_invite(f->s, &o, &x, err, sizeof(err));
    assert_non_null(f->d);
    assert_ptr_equal(sip_dialog_data(f->d), &x);
    assert_int_equal(sip_dialog_bye(f->d), -1); /* not answered */
    assert_int_equal(sip_dialog_ringing(f->d), -1);

    snprintf(want, sizeof(want), "INVITE %s SIP/2.0", uri);
    char inv[8192];
    snprintf(inv, sizeof(inv), "%s", expect(f, want, 1000));
    char via1[256], ourfrom[256];
    hdr(inv, "Via", via1, sizeof(via1));
    assert_non_null(strstr(via1, "SIP/2.0/UDP 127.0.0.1:"));
    assert_non_null(strstr(via1, "branch=z9hG4bK"));
    hdr(inv, "From", ourfrom, sizeof(ourfrom));
    assert_non_null(strstr(ourfrom, "\"Conf Room 1\""));
    assert_non_null(strstr(ourfrom, "sip:+15550001111@127.0.0.1"));
    assert_non_null(strstr(ourfrom, ";tag="));
    hdr(inv, "To", h, sizeof(h));
    assert_non_null(strstr(h, uri));
    assert_null(strstr(h, "tag="));
    assert_string_equal(hdr(inv, "Call-ID", h, sizeof(h)), sip_dialog_call_id(f->d));
    assert_true(strlen(h) >= 16);
    assert_string_equal(hdr(inv, "CSeq", h, sizeof(h)), "1 INVITE");
    assert_string_equal(hdr(inv, "Max-Forwards", h, sizeof(h)), "70");
    assert_string_equal(hdr(inv, "User-Agent", h, sizeof(h)), "conferenced-test");
    assert_string_equal(hdr(inv, "Content-Type", h, sizeof(h)), "application/sdp");
    snprintf(want, sizeof(want), "<sip:127.0.0.1:%d>", f->port);
    assert_string_equal(hdr(inv, "Contact", h, sizeof(h)), want);
    assert_non_null(strstr(inv, "\r\n\r\nv=0\r\n"));
    assert_non_null(strstr(inv, "m=audio 30000 RTP/AVP 111 9 0 8 101 102\r\n"));

    /* 100 (no report), 180 with a tag: on_progress(180) */
    phone_respond(f, inv, "100 Trying", NULL, "", NULL);
    phone_respond(f, inv, "180 Ringing", "callee1", "", NULL);
    spin(f, 30);
    assert_int_equal(f->progress, 1);
    assert_int_equal(f->last_progress, 180);
    expect_nothing(f, 20); /* no retransmission after a provisional answer */

    /* 200 with a Contact and an answer choosing PCMA: the ACK (new branch, CSeq 1 ACK, to the
     * Contact, both tags), then on_answered */
    char contact[96];
    snprintf(contact, sizeof(contact), "Contact: <sip:bob@127.0.0.1:%d;line=2>\n", f->my_port);
    phone_respond(f, inv, "200 OK", "callee1", contact, ANSWER_PCMA);
    snprintf(want, sizeof(want), "ACK sip:bob@127.0.0.1:%d;line=2 SIP/2.0", f->my_port);
    const char *m = expect(f, want, 1000);
    assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "1 ACK");
    assert_non_null(strstr(hdr(m, "Via", h, sizeof(h)), "branch=z9hG4bK"));
    assert_string_not_equal(h, via1);
    assert_non_null(strstr(hdr(m, "To", h, sizeof(h)), "tag=callee1"));
    assert_string_equal(hdr(m, "From", h, sizeof(h)), ourfrom);
    spin(f, 20);
    assert_int_equal(f->answered, 1);
    assert_non_null(strstr(f->answer_sdp, "m=audio 40000 RTP/AVP 8 101\r\n"));
    assert_int_equal(sip_dialog_cancel(f->d), -1); /* answered */

    /* the 200 again (our ACK was lost): the ACK again */
    phone_respond(f, inv, "200 OK", "callee1", contact, ANSWER_PCMA);
    m = expect(f, want, 1000);
    assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "1 ACK");
    assert_int_equal(f->answered, 1);

    /* a 200 from another fork of the call: acknowledged and hung up at once */
    char contact2[96];
    snprintf(contact2, sizeof(contact2), "Contact: <sip:fork@127.0.0.1:%d>\n", f->my_port);
    phone_respond(f, inv, "200 OK", "fork2", contact2, ANSWER_PCMA);
    m = expect(f, "ACK sip:fork@127.0.0.1:", 1000);
    assert_non_null(strstr(hdr(m, "To", h, sizeof(h)), "tag=fork2"));
    m = expect(f, "BYE sip:fork@127.0.0.1:", 1000);
    assert_non_null(strstr(hdr(m, "To", h, sizeof(h)), "tag=fork2"));
    assert_int_equal(f->answered, 1);

    /* a re-INVITE from the peer (hold), in its own CSeq space: answered with the codec of the
     * call, our address and session, version + 1 */
    const char *hold = "v=0\r\no=bob 77 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                       "t=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\n"
                       "a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
    char cid[128];
    hdr(inv, "Call-ID", cid, sizeof(cid));
    send_req(f, hold,
             "INVITE sip:127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKre1\n"
             "From: <sip:bob@127.0.0.1:%d>;tag=callee1\nTo: %s\nCall-ID: %s\nCSeq: 1 INVITE\n"
             "Contact: <sip:bob@127.0.0.1:%d>\n",
             f->port, f->my_port, f->my_port, ourfrom, cid, f->my_port);
    m = expect(f, "SIP/2.0 200", 1000);
    assert_non_null(strstr(m, "o=conferenced 5 2 IN IP4 127.0.0.1\r\n"));
    assert_non_null(strstr(m, "m=audio 30000 RTP/AVP 8 101\r\n"));
    assert_non_null(strstr(m, "a=recvonly\r\n"));
    send_req(f, NULL,
             "ACK sip:127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKre1ack\n"
             "From: <sip:bob@127.0.0.1:%d>;tag=callee1\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\n",
             f->port, f->my_port, f->my_port, ourfrom, cid);
    /* OPTIONS in the dialog */
    send_req(f, NULL,
             "OPTIONS sip:127.0.0.1:%d SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKo1\n"
             "From: <sip:bob@127.0.0.1:%d>;tag=callee1\nTo: %s\nCall-ID: %s\nCSeq: 2 OPTIONS\n",
             f->port, f->my_port, f->my_port, ourfrom, cid);
    expect(f, "SIP/2.0 200", 1000);
    expect_nothing(f, 50);

    /* our BYE: to the Contact, CSeq 2, both tags; on_ended(remote=false) with its 200 */
    assert_int_equal(sip_dialog_bye(f->d), 0);
    snprintf(want, sizeof(want), "BYE sip:bob@127.0.0.1:%d;line=2 SIP/2.0", f->my_port);
    char bye[4096];
    snprintf(bye, sizeof(bye), "%s", expect(f, want, 1000));
    assert_string_equal(hdr(bye, "CSeq", h, sizeof(h)), "2 BYE");
    assert_string_equal(hdr(bye, "From", h, sizeof(h)), ourfrom);
    assert_non_null(strstr(hdr(bye, "To", h, sizeof(h)), "tag=callee1"));
    assert_int_equal(f->ended, 0);
    phone_respond(f, bye, "200 OK", NULL, "", NULL);
    spin(f, 30);
    assert_int_equal(f->ended, 1);
    assert_false(f->ended_remote);
    assert_int_equal(f->failed, 0);
    fx_free(f);
}

/* A 487 (after our CANCEL) and a 3xx are ACKed by the transaction; Timer B gives 408. */
static void test_uac_wire_cancel_and_timeout(void **state)
{
    struct fx *f = fx_new(20, 10);
    char uri[64], offer[1024], err[128], h[256];
    snprintf(uri, sizeof(uri), "sip:bob@127.0.0.1:%d", f->my_port);
    assert_true(sdp_build_offer("127.0.0.1", 30000, 5, 1, offer, sizeof(offer)) > 0);
    struct sip_outgoing o = {.request_uri = uri, .from_uri = "sip:me@127.0.0.1", .sdp = offer};

    /* cancelled before any provisional answer: the CANCEL waits for the 100 */
    f->d = sip_dialog_invite(f->s, &o, NULL, err, sizeof(err));
    assert_non_null(f->d);
    assert_int_equal(sip_dialog_cancel(f->d), 0);
    assert_int_equal(sip_dialog_cancel(f->d), -1);
    char inv[8192];
    snprintf(inv, sizeof(inv), "%s", expect(f, "INVITE ", 1000));
    expect(f, "INVITE ", 100); /* Timer A: T1 = 20 ms */
    phone_respond(f, inv, "100 Trying", NULL, "", NULL);
    const char *m = expect(f, "CANCEL ", 1000);
    char via[256];
    assert_string_equal(hdr(m, "Via", h, sizeof(h)), hdr(inv, "Via", via, sizeof(via)));
    assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "1 CANCEL");
    assert_null(strstr(hdr(m, "To", h, sizeof(h)), "tag="));
    char cancel[4096];
    snprintf(cancel, sizeof(cancel), "%s", m);
    phone_respond(f, cancel, "200 OK", "t9", "", NULL);
    phone_respond(f, inv, "487 Request Terminated", "t9", "", NULL);
    m = expect(f, "ACK ", 1000);
    assert_string_equal(hdr(m, "CSeq", h, sizeof(h)), "1 ACK");
    assert_string_equal(hdr(m, "Via", h, sizeof(h)), via); /* same transaction */
    spin(f, 10);
    assert_int_equal(f->failed, 1);
    assert_int_equal(f->fail_code, 487);
    /* the 487 again: the transaction ACKs it again, no second report */
    phone_respond(f, inv, "487 Request Terminated", "t9", "", NULL);
    expect(f, "ACK ", 1000);
    assert_int_equal(f->failed, 1);

    /* a redirect is a failure (we do not follow it) */
    f->d = sip_dialog_invite(f->s, &o, NULL, err, sizeof(err));
    assert_non_null(f->d);
    snprintf(inv, sizeof(inv), "%s", expect(f, "INVITE ", 1000));
    phone_respond(f, inv, "302 Moved Temporarily", "t10", "Contact: <sip:else@127.0.0.1>\n", NULL);
    expect(f, "ACK ", 1000);
    spin(f, 10);
    assert_int_equal(f->failed, 2);
    assert_int_equal(f->fail_code, 302);

    /* nothing answers: INVITE retransmitted (A doubling), then 408 after 64*T1 = 1.28 s */
    f->d = sip_dialog_invite(f->s, &o, NULL, err, sizeof(err));
    assert_non_null(f->d);
    uint64_t t0 = uv_hrtime() / 1000000;
    int invites = 0;
    while (next_msg(f, 400) && strncmp(f->msg, "INVITE ", 7) == 0)
        invites++;
    while (f->failed == 2 && uv_hrtime() / 1000000 - t0 < 3000)
        spin(f, 10);
    uint64_t took = uv_hrtime() / 1000000 - t0;
    assert_int_equal(f->failed, 3);
    assert_int_equal(f->fail_code, 408);
    assert_true(invites >= 5 && invites <= 8);
    assert_true(took >= 1200 && took < 3000);
    fx_free(f);
}

/* Bounded waits: ringing for 360*T1 gives a CANCEL, then 408 when no final answer follows within
 * 64*T1; after our own CANCEL, 487 the same way. */
static void test_uac_wire_deadlines(void **state)
{
    struct fx *f = fx_new(5, 10);
    char uri[64], offer[1024], err[128];
    snprintf(uri, sizeof(uri), "sip:bob@127.0.0.1:%d", f->my_port);
    assert_true(sdp_build_offer("127.0.0.1", 30000, 5, 1, offer, sizeof(offer)) > 0);
    struct sip_outgoing o = {.request_uri = uri, .from_uri = "sip:me@127.0.0.1", .sdp = offer};

    f->d = sip_dialog_invite(f->s, &o, NULL, err, sizeof(err));
    assert_non_null(f->d);
    char inv[8192];
    snprintf(inv, sizeof(inv), "%s", expect(f, "INVITE ", 1000));
    phone_respond(f, inv, "180 Ringing", "r1", "", NULL);
    uint64_t t0 = uv_hrtime() / 1000000;
    const char *m;
    while ((m = next_msg(f, 3000)) && strncmp(m, "CANCEL ", 7) != 0) /* skip INVITE rtx */
        ;
    assert_non_null(m);
    uint64_t rang = uv_hrtime() / 1000000 - t0;
    assert_true(rang >= 1700 && rang < 2500); /* 360 * 5 ms */
    assert_int_equal(f->failed, 0);
    while (f->failed == 0 && uv_hrtime() / 1000000 - t0 < 3500) /* no 487: 64*T1 = 320 ms */
        spin(f, 10);
    assert_int_equal(f->failed, 1);
    assert_int_equal(f->fail_code, 408);
    while (next_msg(f, 0)) /* CANCEL retransmissions */
        ;

    f->d = sip_dialog_invite(f->s, &o, NULL, err, sizeof(err));
    assert_non_null(f->d);
    snprintf(inv, sizeof(inv), "%s", expect(f, "INVITE ", 1000));
    phone_respond(f, inv, "183 Session Progress", "r2", "", NULL);
    spin(f, 10);
    assert_int_equal(f->last_progress, 183);
    assert_int_equal(sip_dialog_cancel(f->d), 0);
    m = expect(f, "CANCEL ", 1000);
    phone_respond(f, m, "200 OK", "r2", "", NULL);
    t0 = uv_hrtime() / 1000000;
    while (f->failed == 1 && uv_hrtime() / 1000000 - t0 < 1500)
        spin(f, 10);
    assert_int_equal(f->failed, 2);
    assert_int_equal(f->fail_code, 487);
    /* a late 487 finds no transaction and no call */
    phone_respond(f, inv, "487 Request Terminated", "r2", "", NULL);
    spin(f, 20);
    assert_int_equal(f->failed, 2);
    fx_free(f);
}

/* ---- outgoing calls: two stacks ---- */

struct pair;
struct side {
    struct pair *p;
    struct sip_stack *s;
    int port;
    struct sip_dialog *d;
    int mode; /* as the called side: 0 the test answers, 1 ring at once, 2 reject with 486 */
    int invites, established, ended, progress, last_progress, answered, failed, fail_code;
    bool ended_remote, ended_cancelled;
    char sdp[2048];
};

struct pair {
    uv_loop_t loop;
    struct side a, b; /* a calls b */
};

static void p_on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct side *x = ctx;
    x->invites++;
    x->d = d;
    snprintf(x->sdp, sizeof(x->sdp), "%s", inv->sdp ? inv->sdp : "");
    if (x->mode == 1) {
        assert_int_equal(sip_dialog_ringing(d), 0);
    } else if (x->mode == 2) {
        assert_int_equal(sip_dialog_reject(d, 486, NULL), 0);
        x->d = NULL;
    }
}

static void p_on_established(void *ctx, struct sip_dialog *d)
{
    struct side *x = ctx;
    assert_ptr_equal(d, x->d);
    x->established++;
}

static void p_on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    struct side *x = ctx;
    assert_ptr_equal(d, x->d);
    x->ended++;
    x->ended_remote = remote;
    x->ended_cancelled = cancelled;
    x->d = NULL;
}

static void p_on_progress(void *ctx, struct sip_dialog *d, int code)
{
    struct side *x = ctx;
    assert_ptr_equal(d, x->d);
    x->progress++;
    x->last_progress = code;
}

static void p_on_answered(void *ctx, struct sip_dialog *d, const char *sdp)
{
    struct side *x = ctx;
    assert_ptr_equal(d, x->d);
    x->answered++;
    snprintf(x->sdp, sizeof(x->sdp), "%s", sdp ? sdp : "");
}

static void p_on_failed(void *ctx, struct sip_dialog *d, int code)
{
    struct side *x = ctx;
    assert_ptr_equal(d, x->d);
    x->failed++;
    x->fail_code = code;
    x->d = NULL;
}

static void side_init(struct pair *p, struct side *x, int t1_ms, int max_dialogs)
{
    x->p = p;
    struct sip_config cfg = {.addr = "127.0.0.1",
                             .user_agent = "conferenced-test",
                             .max_dialogs = max_dialogs,
                             .t1_ms = t1_ms};
    struct sip_callbacks cb = {.ctx = x,
                               .on_invite = p_on_invite,
                               .on_established = p_on_established,
                               .on_ended = p_on_ended,
                               .on_progress = p_on_progress,
                               .on_answered = p_on_answered,
                               .on_failed = p_on_failed};
    char err[256];
    x->s = sip_create(&p->loop, &cfg, &cb, err, sizeof(err));
    if (!x->s)
        fail_msg("sip_create: %s", err);
    x->port = sip_port(x->s);
}

static struct pair *pair_new(int t1_ms, int max_dialogs)
{
    struct pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(uv_loop_init(&p->loop), 0);
    side_init(p, &p->a, t1_ms, max_dialogs);
    side_init(p, &p->b, t1_ms, 10);
    return p;
}

static void pair_free(struct pair *p)
{
    sip_destroy(p->a.s);
    sip_destroy(p->b.s);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    free(p);
}

/* Runs the loop until cond holds; fails after ms. */
#define WAIT_FOR(p, cond, ms)                                                                      \
    do {                                                                                           \
        uint64_t end_ = uv_hrtime() / 1000000 + (ms);                                              \
        while (!(cond) && uv_hrtime() / 1000000 < end_) {                                          \
            uv_run(&(p)->loop, UV_RUN_NOWAIT);                                                     \
            usleep(1000);                                                                          \
        }                                                                                          \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for %s", #cond);                                           \
    } while (0)

/* a calls host:port (b's port when 0); returns the dialog (also in a.d). */
static struct sip_dialog *pair_call(struct pair *p, const char *host, int port)
{
    char uri[128], offer[1024], err[256];
    snprintf(uri, sizeof(uri), "sip:room.1@%s:%d", host, port ? port : p->b.port);
    assert_true(sdp_build_offer("127.0.0.1", 30000, 5, 1, offer, sizeof(offer)) > 0);
    struct sip_outgoing o = {.request_uri = uri,
                             .from_uri = "sip:+15550001111@127.0.0.1",
                             .from_display = "Conference",
                             .sdp = offer};
    p->a.d = sip_dialog_invite(p->a.s, &o, p, err, sizeof(err));
    if (!p->a.d)
        fail_msg("sip_dialog_invite: %s", err);
    return p->a.d;
}

/* a calls b, b rings and answers: both sides up. */
static void pair_establish(struct pair *p)
{
    pair_call(p, "127.0.0.1", 0);
    WAIT_FOR(p, p->b.invites == 1, 1000);
    assert_non_null(strstr(p->b.sdp, "m=audio 30000 RTP/AVP 111 9 0 8 101 102\r\n"));
    assert_int_equal(sip_dialog_ringing(p->b.d), 0);
    WAIT_FOR(p, p->a.progress == 1, 1000);
    assert_int_equal(p->a.last_progress, 180);
    assert_int_equal(answer(p->b.d, p->b.sdp), 0);
    WAIT_FOR(p, p->a.answered == 1 && p->b.established == 1, 1000);
    assert_non_null(strstr(p->a.sdp, "m=audio 50000 RTP/AVP 111 102\r\n"));
    struct sdp_offer_result r;
    assert_int_equal(sdp_parse_answer(p->a.sdp, &r), 0);
    assert_int_equal(r.codec, CODEC_OPUS);
    assert_int_equal(r.remote_port, 50000);
    assert_ptr_equal(sip_dialog_data(p->a.d), p);
}

static void test_uac_call_and_bye(void **state)
{
    struct pair *p = pair_new(0, 10);
    pair_establish(p);
    assert_string_equal(sip_dialog_call_id(p->a.d), sip_dialog_call_id(p->b.d));
    assert_int_equal(sip_dialog_bye(p->a.d), 0);
    assert_int_equal(sip_dialog_bye(p->a.d), -1); /* already hanging up */
    WAIT_FOR(p, p->a.ended == 1 && p->b.ended == 1, 1000);
    assert_false(p->a.ended_remote);
    assert_true(p->b.ended_remote);
    assert_false(p->b.ended_cancelled);
    assert_int_equal(p->a.failed, 0);
    pair_free(p);
}

static void test_uac_remote_bye(void **state)
{
    struct pair *p = pair_new(0, 10);
    pair_establish(p);
    assert_int_equal(sip_dialog_bye(p->b.d), 0);
    WAIT_FOR(p, p->a.ended == 1 && p->b.ended == 1, 1000);
    assert_true(p->a.ended_remote);
    assert_false(p->a.ended_cancelled);
    assert_false(p->b.ended_remote);
    pair_free(p);
}

static void test_uac_rejected(void **state)
{
    struct pair *p = pair_new(0, 10);
    p->b.mode = 2;
    pair_call(p, "127.0.0.1", 0);
    WAIT_FOR(p, p->a.failed == 1, 1000);
    assert_int_equal(p->a.fail_code, 486);
    assert_int_equal(p->a.answered, 0);
    assert_int_equal(p->b.invites, 1);
    /* by name: the same through the resolver */
    pair_call(p, "localhost", 0);
    WAIT_FOR(p, p->a.failed == 2, 3000);
    assert_int_equal(p->a.fail_code, 486);
    assert_int_equal(p->b.invites, 2);
    pair_free(p);
}

static void test_uac_cancel(void **state)
{
    struct pair *p = pair_new(0, 10);
    p->b.mode = 1;
    pair_call(p, "127.0.0.1", 0);
    WAIT_FOR(p, p->a.progress == 1, 1000);
    assert_int_equal(sip_dialog_cancel(p->b.d), -1); /* an incoming call */
    assert_int_equal(sip_dialog_cancel(p->a.d), 0);
    WAIT_FOR(p, p->a.failed == 1 && p->b.ended == 1, 1000);
    assert_int_equal(p->a.fail_code, 487);
    assert_true(p->b.ended_remote);
    assert_true(p->b.ended_cancelled);
    assert_int_equal(p->a.answered, 0);

    /* cancelled at once, before the 100 Trying: the CANCEL follows it */
    pair_call(p, "127.0.0.1", 0);
    assert_int_equal(sip_dialog_cancel(p->a.d), 0);
    WAIT_FOR(p, p->a.failed == 2 && p->b.ended == 2, 1000);
    assert_int_equal(p->a.fail_code, 487);
    assert_true(p->b.ended_cancelled);

    /* cancelled while resolving: nothing is sent */
    pair_call(p, "localhost", 0);
    assert_int_equal(sip_dialog_cancel(p->a.d), 0);
    WAIT_FOR(p, p->a.failed == 3, 1000);
    assert_int_equal(p->a.fail_code, 487);
    for (int i = 0; i < 50; i++) {
        uv_run(&p->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(p->b.invites, 2);
    pair_free(p);
}

static void test_uac_nobody_there(void **state)
{
    struct pair *p = pair_new(10, 10);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd); /* a closed port */
    uint64_t t0 = uv_hrtime() / 1000000;
    pair_call(p, "127.0.0.1", ntohs(a.sin_port));
    WAIT_FOR(p, p->a.failed == 1, 3000);
    uint64_t took = uv_hrtime() / 1000000 - t0;
    assert_int_equal(p->a.fail_code, 408);
    assert_true(took >= 600); /* 64*T1 = 640 ms */
    pair_free(p);
}

static void test_uac_bad_requests(void **state)
{
    struct pair *p = pair_new(0, 1);
    char offer[1024], err[256];
    assert_true(sdp_build_offer("127.0.0.1", 30000, 5, 1, offer, sizeof(offer)) > 0);
    const char *bad[] = {
        "not a uri",
        "tel:+15550001111",
        "sips:bob@127.0.0.1",
        "sip:bob@[::1]:5060",
        "sip:bob@127.0.0.1:0",
        "sip:bob@127.0.0.1:70000",
        "sip:bob@127.0.0.1;transport=tcp",
        "sip:bob@bad_host",
        "",
        NULL,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sip_outgoing o = {
            .request_uri = bad[i], .from_uri = "sip:me@127.0.0.1", .sdp = offer};
        err[0] = '\0';
        if (sip_dialog_invite(p->a.s, &o, NULL, err, sizeof(err)))
            fail_msg("accepted bad request URI %zu", i);
        assert_true(strlen(err) > 0);
    }
    char uri[64];
    snprintf(uri, sizeof(uri), "sip:room@127.0.0.1:%d", p->b.port);
    struct sip_outgoing nosdp = {.request_uri = uri, .from_uri = "sip:me@127.0.0.1"};
    assert_null(sip_dialog_invite(p->a.s, &nosdp, NULL, err, sizeof(err)));
    struct sip_outgoing badfrom = {.request_uri = uri, .from_uri = "me", .sdp = offer};
    assert_null(sip_dialog_invite(p->a.s, &badfrom, NULL, err, sizeof(err)));
    assert_int_equal(sip_dialog_cancel(NULL), -1);
    /* max_dialogs = 1 */
    struct sip_outgoing ok = {.request_uri = uri, .from_uri = "sip:me@127.0.0.1", .sdp = offer};
    p->a.d = sip_dialog_invite(p->a.s, &ok, NULL, err, sizeof(err));
    assert_non_null(p->a.d);
    err[0] = '\0';
    assert_null(sip_dialog_invite(p->a.s, &ok, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "too many"));
    pair_free(p);
}

/* sip_destroy: a CANCEL for a ringing outgoing call, a dropped name lookup, no callbacks. */
static void test_uac_destroy(void **state)
{
    struct pair *p = pair_new(0, 10);
    p->b.mode = 1;
    pair_call(p, "127.0.0.1", 0);
    WAIT_FOR(p, p->a.progress == 1, 1000);
    char offer[1024], err[256], uri[64];
    assert_true(sdp_build_offer("127.0.0.1", 30000, 5, 1, offer, sizeof(offer)) > 0);
    snprintf(uri, sizeof(uri), "sip:room@localhost:%d", p->b.port);
    struct sip_outgoing o = {.request_uri = uri, .from_uri = "sip:me@127.0.0.1", .sdp = offer};
    assert_non_null(sip_dialog_invite(p->a.s, &o, NULL, err, sizeof(err)));
    sip_destroy(p->a.s);
    p->a.s = NULL;
    WAIT_FOR(p, p->b.ended == 1, 1000);
    assert_true(p->b.ended_cancelled);
    assert_int_equal(p->a.failed, 0);
    pair_free(p);
}

/* ---- calls in set-up per source address ---- */

/* A socket on another loopback address: "another client". */
static int socket_on(const char *ip, int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* The next final answer for Call-ID cid arriving on fd (in f->msg): its status code. Others (the
 * 2xx retransmissions of other calls) are skipped. */
static int final_for(struct fx *f, int fd, const char *cid)
{
    uint64_t end = uv_hrtime() / 1000000 + 1000;
    char h[128];
    while (uv_hrtime() / 1000000 < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t got = recv(fd, f->msg, sizeof(f->msg) - 1, 0);
        if (got <= 0) {
            usleep(1000);
            continue;
        }
        f->msg[got] = '\0';
        long code = strncmp(f->msg, "SIP/2.0 ", 8) == 0 ? strtol(f->msg + 8, NULL, 10) : 0;
        if (code >= 200 && strcmp(hdr(f->msg, "Call-ID", h, sizeof(h)), cid) == 0)
            return (int)code;
    }
    fail_msg("no final answer to %s", cid);
    return 0;
}

/* An INVITE from fd (ip:port) with Call-ID cid; returns the status code of its final answer. */
static int invite_from(struct fx *f, int fd, const char *ip, int port, const char *cid)
{
    char msg[4096];
    int n = snprintf(msg, sizeof(msg),
                     "INVITE sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:x@%s:%d>;tag=t%s\r\n"
                     "To: <sip:direct.0123456789ab@127.0.0.1:%d>\r\n"
                     "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:x@%s:%d>\r\n"
                     "Content-Type: application/sdp\r\nContent-Length: %zu\r\n\r\n%s",
                     f->port, ip, port, cid, ip, port, cid, f->port, cid, ip, port, strlen(OFFER),
                     OFFER);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)f->port)};
    assert_int_equal(sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to)), n);
    return final_for(f, fd, cid);
}

/* The ACK for the 2xx in f->msg, sent from fd. */
static void ack_from(struct fx *f, int fd, const char *ip, int port, const char *cid)
{
    char to[256], msg[2048];
    hdr(f->msg, "To", to, sizeof(to));
    int n = snprintf(msg, sizeof(msg),
                     "ACK sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKack%s;rport\r\n"
                     "Max-Forwards: 70\r\nFrom: <sip:x@%s:%d>;tag=t%s\r\nTo: %s\r\n"
                     "Call-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                     f->port, ip, port, cid, ip, port, cid, to, cid);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)f->port)};
    assert_int_equal(sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&a, sizeof(a)), n);
    spin(f, 20);
}

/* max_setup_per_source: answered calls count until their 2xx is acknowledged or they end; the
 * next INVITE from that address gets 503 with Retry-After, other addresses are not affected. */
static void test_setup_per_source(void **state)
{
    struct fx *f = fx_new_setup(10, 50, 2); /* 64*T1 = 640 ms */
    f->multi = true;
    f->answer_mode = 1;
    int pa, pb;
    int a = socket_on("127.0.0.1", &pa), b = socket_on("127.0.0.2", &pb);
    char h[64];
    assert_int_equal(invite_from(f, a, "127.0.0.1", pa, "a1"), 200);
    assert_int_equal(invite_from(f, a, "127.0.0.1", pa, "a2"), 200);
    assert_int_equal(invite_from(f, a, "127.0.0.1", pa, "a3"), 503);
    assert_string_equal(hdr(f->msg, "Retry-After", h, sizeof(h)), "5");
    assert_int_equal(f->invites, 2); /* the application never saw a3 */
    /* another address has its own budget */
    assert_int_equal(invite_from(f, b, "127.0.0.2", pb, "b1"), 200);
    ack_from(f, b, "127.0.0.2", pb, "b1");
    /* an acknowledged call no longer counts: a4 gets in once a2 is ACKed */
    assert_int_equal(final_for(f, a, "a2"), 200); /* a retransmission of its 2xx */
    ack_from(f, a, "127.0.0.1", pa, "a2");
    assert_int_equal(f->established, 2);
    assert_int_equal(invite_from(f, a, "127.0.0.1", pa, "a4"), 200);
    assert_int_equal(invite_from(f, a, "127.0.0.1", pa, "a5"), 503);
    /* refused calls never count */
    f->answer_mode = 2;
    assert_int_equal(invite_from(f, b, "127.0.0.2", pb, "b2"), 486);
    assert_int_equal(invite_from(f, b, "127.0.0.2", pb, "b3"), 486);
    assert_int_equal(invite_from(f, b, "127.0.0.2", pb, "b4"), 486);
    /* a1 and a4 are never acknowledged: at 64*T1 they end (BYE) and free the address */
    f->answer_mode = 1;
    uint64_t end = uv_hrtime() / 1000000 + 3000;
    while (f->ended < 2 && uv_hrtime() / 1000000 < end)
        spin(f, 10);
    assert_int_equal(f->ended, 2);
    assert_true(f->ended_unacked);
    assert_int_equal(invite_from(f, a, "127.0.0.1", pa, "a6"), 200);
    close(a);
    close(b);
    fx_free(f);
}

/* ---- a dialog ended by a later run ---- */

/* The saved state of an answered incoming call (with a route set) lets another stack send the
 * BYE the peer expects: Request-URI its Contact, Route the Record-Route set, From our URI and tag,
 * To its URI and tag, the same Call-ID, our next CSeq, to its address; retransmitted until
 * answered. */
static void test_dialog_state_and_saved_bye(void **state)
{
    struct fx *f = fx_new(20, 10);
    char st[4096], err[256], h[512], want[256];
    send_req(f, OFFER,
             "INVITE sip:direct.0123456789ab@127.0.0.1:%d SIP/2.0\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKrr1;rport\n"
             "Record-Route: <sip:p1.example.com;lr>\n"
             "Record-Route: <sip:127.0.0.1:%d;lr>\n"
             "Max-Forwards: 70\n"
             "From: \"Alice\" <sip:alice@127.0.0.1:%d>;tag=from1\n"
             "To: <sip:direct.0123456789ab@127.0.0.1:%d>\n"
             "Call-ID: call-saved@test\nCSeq: 7 INVITE\n"
             "Contact: <sip:alice@127.0.0.1:%d;ob>\n",
             f->port, f->my_port, f->my_port, f->my_port, f->port, f->my_port);
    expect(f, "SIP/2.0 100", 1000);
    spin(f, 10);
    assert_non_null(f->d);
    assert_int_equal(sip_dialog_state(f->d, st, sizeof(st)), -1); /* not answered yet */
    assert_int_equal(answer(f->d, f->sdp), 0);
    remember_totag(f, expect(f, "SIP/2.0 200", 1000));
    assert_true(sip_dialog_state(f->d, st, sizeof(st)) > 0);
    assert_int_equal(sip_dialog_state(f->d, st, 16), -1); /* too small */
    assert_true(sip_dialog_state(f->d, st, sizeof(st)) > 0);
    json_t *j = json_loads(st, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "call_id")), "call-saved@test");
    assert_string_equal(json_string_value(json_object_get(j, "local_tag")), f->totag);
    assert_string_equal(json_string_value(json_object_get(j, "remote_tag")), "from1");
    assert_int_equal(json_integer_value(json_object_get(j, "cseq")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "peer_port")), f->my_port);
    assert_int_equal(json_array_size(json_object_get(j, "route_set")), 2);
    json_decref(j);
    send_in_dialog(f, "ACK", 7, "call-saved@test", f->totag, NULL);
    spin(f, 20);
    /* On a slow machine (sanitizers, a loaded CI) the 200 may have been retransmitted (T1 = 20
     * ms) before the ACK was read; the ACK stops it, and what came before is not the BYE. */
    while (next_msg(f, 0))
        ;

    /* another run of the server (another stack) ends the call from the state alone */
    struct sip_config cfg = {.addr = "127.0.0.1", .user_agent = "next-run", .t1_ms = 20};
    struct sip_callbacks cb = {0};
    struct sip_stack *s2 = sip_create(&f->loop, &cfg, &cb, err, sizeof(err));
    assert_non_null(s2);
    assert_int_equal(sip_bye_saved(s2, "{}", err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(sip_bye_saved(s2, "not json", err, sizeof(err)), -1);
    assert_int_equal(sip_bye_saved(s2, st, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "BYE sip:alice@127.0.0.1:%d;ob SIP/2.0", f->my_port);
    const char *m = expect(f, want, 1000);
    char bye[8192];
    snprintf(bye, sizeof(bye), "%s", m);
    assert_string_equal(hdr(bye, "Call-ID", h, sizeof(h)), "call-saved@test");
    assert_string_equal(hdr(bye, "CSeq", h, sizeof(h)), "1 BYE");
    assert_non_null(strstr(hdr(bye, "From", h, sizeof(h)), f->totag));
    assert_non_null(strstr(h, "sip:direct.0123456789ab@127.0.0.1"));
    assert_non_null(strstr(hdr(bye, "To", h, sizeof(h)), "tag=from1"));
    assert_non_null(strstr(h, "sip:alice@127.0.0.1"));
    assert_non_null(strstr(hdr(bye, "Route", h, sizeof(h)), "p1.example.com"));
    assert_string_equal(hdr(bye, "User-Agent", h, sizeof(h)), "next-run");
    char via[256];
    snprintf(want, sizeof(want), "SIP/2.0/UDP 127.0.0.1:%d;", sip_port(s2));
    assert_non_null(strstr(hdr(bye, "Via", via, sizeof(via)), want));
    /* not answered: retransmitted (T1 = 20 ms) */
    expect(f, "BYE ", 200);
    /* answered: no more */
    char resp[4096], cseq[64], from[256], to[256], cid[128];
    int n = snprintf(resp, sizeof(resp),
                     "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\n"
                     "CSeq: %s\r\nContent-Length: 0\r\n\r\n",
                     via, hdr(bye, "From", from, sizeof(from)), hdr(bye, "To", to, sizeof(to)),
                     hdr(bye, "Call-ID", cid, sizeof(cid)), hdr(bye, "CSeq", cseq, sizeof(cseq)));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)sip_port(s2))};
    assert_int_equal(sendto(f->fd, resp, (size_t)n, 0, (struct sockaddr *)&a, sizeof(a)), n);
    spin(f, 30);
    while (next_msg(f, 0)) /* one may have crossed the 200 */
        ;
    expect_nothing(f, 300);
    sip_destroy(s2);
    fx_free(f);
}

/* The same for an outgoing call: our INVITE's From, the callee's Contact and To tag, CSeq 2. */
static void test_uac_saved_bye(void **state)
{
    struct pair *p = pair_new(0, 10);
    pair_establish(p);
    char st[4096], err[256];
    assert_true(sip_dialog_state(p->a.d, st, sizeof(st)) > 0);
    json_t *j = json_loads(st, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "local_uri")),
                        "sip:+15550001111@127.0.0.1");
    char target[64];
    snprintf(target, sizeof(target), "sip:127.0.0.1:%d", p->b.port);
    assert_string_equal(json_string_value(json_object_get(j, "remote_target")), target);
    assert_int_equal(json_integer_value(json_object_get(j, "cseq")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "peer_port")), p->b.port);
    json_decref(j);
    /* b's side of the call ends on that BYE as on any other from the caller */
    assert_int_equal(sip_bye_saved(p->a.s, st, err, sizeof(err)), 0);
    WAIT_FOR(p, p->b.ended == 1, 1000);
    assert_true(p->b.ended_remote);
    assert_false(p->b.ended_cancelled);
    pair_free(p);
}

/* ---- URIs to dial ---- */

static void test_uri_check(void **state)
{
    const char *good[] = {
        "sip:alice@192.0.2.10",    "sip:alice@192.0.2.10:5060",
        "SIP:alice@example.com",   "sip:+15550001111@sip.example.com:65535",
        "sip:bob%20x@example.com", "sip:direct.0123456789ab@127.0.0.1:1",
        "sip:example.com",         "sip:a@host-1.example.com.",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char err[160] = "";
        if (sip_uri_check(good[i], err, sizeof(err)) != 0)
            fail_msg("refused %s: %s", good[i], err);
    }
    struct {
        const char *uri, *why;
    } bad[] = {
        {"sip:alice@192.0.2.10:0", "port"},
        {"sip:alice@192.0.2.10:99999", "port"},
        {"sip:alice@192.0.2.10:-5", "port"},
        {"sip:alice@192.0.2.10:", "port"},
        {"sip:alice@192.0.2.10:50x", "port"},
        {"sip:alice@999.0.2.10", "IPv4"},
        {"sip:alice@1.2.3", "IPv4"},
        {"sip:alice@[::1]:5060", "IPv6"},
        {"sip:alice@bad_host", "DNS name"},
        {"sip:alice@-bad.example.com", "'-'"},
        {"sip:alice@bad-.example.com", "'-'"},
        {"sip:alice@a..b", "empty label"},
        {"sip:alice@", "host"},
        {"sip:@example.com", "user"},
        {"sip:alice:secret@example.com", "password"},
        {"sip:alice@example.com;transport=tcp", "parameters"},
        {"sip:alice@example.com?subject=x", "parameters"},
        {"sip:al ice@example.com", "user part"},
        {"sip:alice@example.com junk", "DNS name"},
        {"sip:alice@example.com:5060junk", "port"},
        {"sips:alice@example.com", "sips"},
        {"tel:+15550001111", "sip:"},
        {"", "sip:"},
        {"sip:a@b%zz", "DNS name"},
        {"sip:a%2@example.com", "escape"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[160] = "";
        if (sip_uri_check(bad[i].uri, err, sizeof(err)) == 0)
            fail_msg("accepted %s", bad[i].uri);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: '%s' does not mention '%s'", bad[i].uri, err, bad[i].why);
    }
    char err[160];
    assert_int_equal(sip_uri_check(NULL, err, sizeof(err)), -1);
    char longhost[300] = "sip:a@";
    for (int i = 0; i < 260; i++)
        strcat(longhost, "a");
    assert_int_equal(sip_uri_check(longhost, err, sizeof(err)), -1);
}

/* ---- SDP ---- */

static void test_sdp_parse(void **state)
{
    struct sdp_offer_result r;
    assert_int_equal(sdp_parse_offer(OFFER, &r), 0);
    assert_int_equal(r.codec, CODEC_PCMA);
    assert_int_equal(r.dtmf_pt, 101);
    assert_string_equal(r.remote_ip, "127.0.0.1");
    assert_int_equal(r.remote_port, 40000);
    assert_false(r.remote_sendonly || r.remote_recvonly || r.remote_inactive);

    /* PCMU first, telephone-event on another type, session-level c=, session direction */
    const char *b =
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
        "a=sendonly\r\nm=audio 5004 RTP/AVP 0 8 96\r\na=rtpmap:96 telephone-event/8000\r\n";
    assert_int_equal(sdp_parse_offer(b, &r), 0);
    assert_int_equal(r.codec, CODEC_PCMU);
    assert_int_equal(r.dtmf_pt, 96);
    assert_string_equal(r.remote_ip, "192.0.2.7");
    assert_true(r.remote_sendonly);

    /* media-level c= and direction win; unknown codecs are skipped; no telephone-event */
    const char *c = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
                    "a=sendonly\r\nm=audio 5006 RTP/AVP 4 18 8\r\nc=IN IP4 198.51.100.1\r\n"
                    "a=inactive\r\n";
    assert_int_equal(sdp_parse_offer(c, &r), 0);
    assert_int_equal(r.codec, CODEC_PCMA);
    assert_int_equal(r.audio_pt, 8);
    assert_int_equal(r.dtmf_pt, -1);
    assert_string_equal(r.remote_ip, "198.51.100.1");
    assert_true(r.remote_inactive);
    assert_false(r.remote_sendonly);

    /* PCMU by rtpmap name on a dynamic type */
    const char *d = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
                    "m=audio 5008 RTP/AVP 97\r\na=rtpmap:97 PCMU/8000\r\n";
    assert_int_equal(sdp_parse_offer(d, &r), 0);
    assert_int_equal(r.codec, CODEC_PCMU);
    assert_int_equal(r.audio_pt, 97);

    /* video first: audio is the second line */
    const char *e = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
                    "m=video 6000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                    "m=audio 5010 RTP/AVP 8\r\n";
    assert_int_equal(sdp_parse_offer(e, &r), 0);
    assert_int_equal(r.media_count, 2);
    assert_int_equal(r.audio_index, 1);
    assert_string_equal(r.media_lines[0], "video 0 RTP/AVP 96");

    const char *bad[] = {
        /* port 0 */
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP "
        "0\r\n",
        /* no audio */
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        "m=video 6000 RTP/AVP 96\r\n",
        /* no codec of ours */
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 4 18\r\n",
        /* Opus at another clock, or on a static type */
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 111\r\na=rtpmap:111 opus/16000/2\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 18\r\na=rtpmap:18 opus/48000/2\r\n",
        /* secure RTP only */
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        "m=audio 5000 RTP/SAVP 0\r\n",
        /* IPv6 */
        "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
        /* no c= at all */
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
        /* bad port */
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        "m=audio 70000 RTP/AVP 0\r\n",
        "garbage",
        "",
        "v=0\r\nm=audio",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sdp_parse_offer(bad[i], &r) == 0)
            fail_msg("accepted bad offer %zu", i);
    assert_int_equal(sdp_parse_offer(NULL, &r), -1);
}

static void test_sdp_answer(void **state)
{
    struct sdp_offer_result r;
    char out[1024];
    assert_int_equal(sdp_parse_offer(OFFER, &r), 0);
    int n = sdp_build_answer(&r, "127.0.0.1", 50000, 7, 1, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_string_equal(out, "v=0\r\n"
                             "o=conferenced 7 1 IN IP4 127.0.0.1\r\n"
                             "s=conferenced\r\n"
                             "c=IN IP4 127.0.0.1\r\n"
                             "t=0 0\r\n"
                             "m=audio 50000 RTP/AVP 8 101\r\n"
                             "a=rtpmap:8 PCMA/8000\r\n"
                             "a=rtpmap:101 telephone-event/8000\r\n"
                             "a=fmtp:101 0-16\r\n"
                             "a=ptime:20\r\n"
                             "a=sendrecv\r\n");
    /* our answer reads back as the same stream */
    struct sdp_offer_result back;
    assert_int_equal(sdp_parse_offer(out, &back), 0);
    assert_int_equal(back.codec, CODEC_PCMA);
    assert_int_equal(back.remote_port, 50000);
    /* too small */
    assert_int_equal(sdp_build_answer(&r, "127.0.0.1", 50000, 7, 1, out, 40), -1);
    /* directions */
    r.remote_sendonly = true;
    assert_true(sdp_build_answer(&r, "127.0.0.1", 50000, 7, 1, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "a=recvonly\r\n"));
    r.remote_sendonly = false;
    r.remote_recvonly = true;
    assert_true(sdp_build_answer(&r, "127.0.0.1", 50000, 7, 1, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "a=sendonly\r\n"));
    /* other m= lines are kept, rejected, in their order; PCMU without telephone-event */
    const char *e = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
                    "m=video 6000 RTP/AVP 96\r\nm=audio 5010 RTP/AVP 0\r\n"
                    "m=text 7000 RTP/AVP 98\r\n";
    assert_int_equal(sdp_parse_offer(e, &r), 0);
    assert_true(sdp_build_answer(&r, "10.1.1.1", 40002, 9, 3, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "t=0 0\r\nm=video 0 RTP/AVP 96\r\nm=audio 40002 RTP/AVP 0\r\n"
                                "a=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
                                "m=text 0 RTP/AVP 98\r\n"));
    /* a hand-made result (no media lines) gives one audio line */
    struct sdp_offer_result z = {.codec = CODEC_PCMU, .dtmf_pt = -1};
    assert_true(sdp_build_answer(&z, "10.1.1.1", 40002, 9, 3, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "m=audio 40002 RTP/AVP 0\r\n"));
    assert_int_equal(sdp_build_answer(&z, "not-an-ip", 40002, 9, 3, out, sizeof(out)), -1);

    /* re-offer: same codec, address, port and session, version + 1, direction of the offer */
    char first[1024], again[1024];
    assert_int_equal(sdp_parse_offer(OFFER, &r), 0);
    assert_true(sdp_build_answer(&r, "127.0.0.1", 50000, 7, 1, first, sizeof(first)) > 0);
    const char *hold = "v=0\r\no=a 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                       "m=audio 40000 RTP/AVP 0 8\r\na=sendonly\r\n";
    assert_true(sdp_build_reanswer(hold, first, again, sizeof(again)) > 0);
    assert_non_null(strstr(again, "o=conferenced 7 2 IN IP4 127.0.0.1\r\n"));
    assert_non_null(strstr(again, "m=audio 50000 RTP/AVP 8\r\n"));
    assert_non_null(strstr(again, "a=recvonly\r\n"));
    const char *pcmu_only = "v=0\r\no=a 1 3 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                            "m=audio 40000 RTP/AVP 0\r\n";
    assert_int_equal(sdp_build_reanswer(pcmu_only, first, again, sizeof(again)), -1);
    assert_int_equal(sdp_build_reanswer("garbage", first, again, sizeof(again)), -1);
}

static void test_sdp_offer_and_answer_to_it(void **state)
{
    char out[1024];
    int n = sdp_build_offer("127.0.0.1", 30000, 5, 1, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    assert_string_equal(out, "v=0\r\n"
                             "o=conferenced 5 1 IN IP4 127.0.0.1\r\n"
                             "s=conferenced\r\n"
                             "c=IN IP4 127.0.0.1\r\n"
                             "t=0 0\r\n"
                             "m=audio 30000 RTP/AVP 111 9 0 8 101 102\r\n"
                             "a=rtpmap:111 opus/48000/2\r\n"
                             "a=fmtp:111 maxplaybackrate=16000;sprop-maxcapturerate=16000;"
                             "stereo=0;sprop-stereo=0;useinbandfec=1\r\n"
                             "a=rtpmap:9 G722/8000\r\n"
                             "a=rtpmap:0 PCMU/8000\r\n"
                             "a=rtpmap:8 PCMA/8000\r\n"
                             "a=rtpmap:101 telephone-event/8000\r\n"
                             "a=fmtp:101 0-16\r\n"
                             "a=rtpmap:102 telephone-event/48000\r\n"
                             "a=fmtp:102 0-16\r\n"
                             "a=ptime:20\r\n"
                             "a=sendrecv\r\n");
    assert_int_equal(sdp_build_offer("127.0.0.1", 30000, 5, 1, out, 60), -1);
    assert_int_equal(sdp_build_offer("nowhere", 30000, 5, 1, out, sizeof(out)), -1);
    assert_int_equal(sdp_build_offer("127.0.0.1", 0, 5, 1, out, sizeof(out)), -1);
    n = sdp_build_offer("127.0.0.1", 30000, 5, 1, out, sizeof(out));

    /* a peer reads our offer as any other */
    struct sdp_offer_result r;
    assert_int_equal(sdp_parse_offer(out, &r), 0);
    assert_int_equal(r.codec, CODEC_OPUS);
    assert_int_equal(r.audio_pt, 111);
    assert_int_equal(r.dtmf_pt, 102); /* the one at Opus's clock */
    assert_string_equal(r.remote_ip, "127.0.0.1");
    assert_int_equal(r.remote_port, 30000);
    /* and our own answer to it reads back as an answer */
    char ans[1024];
    assert_true(sdp_build_answer(&r, "127.0.0.2", 50000, 9, 1, ans, sizeof(ans)) > 0);
    struct sdp_offer_result a;
    assert_int_equal(sdp_parse_answer(ans, &a), 0);
    assert_int_equal(a.codec, CODEC_OPUS);
    assert_int_equal(a.audio_pt, 111);
    assert_int_equal(a.dtmf_pt, 102);
    assert_non_null(strstr(ans, "m=audio 50000 RTP/AVP 111 102\r\na=rtpmap:111 opus/48000/2\r\n"));
    assert_non_null(strstr(ans, "a=rtpmap:102 telephone-event/48000\r\n"));
    assert_string_equal(a.remote_ip, "127.0.0.2");
    assert_int_equal(a.remote_port, 50000);

    /* an answer choosing PCMA, telephone-event on another type, recvonly */
    const char *pcma = "v=0\r\no=bob 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
                       "m=audio 40000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n"
                       "a=rtpmap:96 telephone-event/8000\r\na=recvonly\r\n";
    assert_int_equal(sdp_parse_answer(pcma, &a), 0);
    assert_int_equal(a.codec, CODEC_PCMA);
    assert_int_equal(a.dtmf_pt, 96);
    assert_string_equal(a.remote_ip, "192.0.2.9");
    assert_int_equal(a.remote_port, 40000);
    assert_true(a.remote_recvonly);
    /* no telephone-event */
    const char *plain = "v=0\r\no=bob 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\n"
                        "t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    assert_int_equal(sdp_parse_answer(plain, &a), 0);
    assert_int_equal(a.codec, CODEC_PCMU);
    assert_int_equal(a.dtmf_pt, -1);
    /* audio refused (port 0), a codec we did not offer, garbage */
    const char *refused = "v=0\r\no=bob 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\n"
                          "t=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
    const char *gsm = "v=0\r\no=bob 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\n"
                      "t=0 0\r\nm=audio 40000 RTP/AVP 3\r\n";
    assert_int_equal(sdp_parse_answer(refused, &a), -1);
    assert_int_equal(sdp_parse_answer(gsm, &a), -1);
    assert_int_equal(sdp_parse_answer("garbage", &a), -1);
    assert_int_equal(sdp_parse_answer(NULL, &a), -1);
}

/* The best codec both sides have: Opus > G.722 > PCMU/PCMA (their order in the offer), and the
 * telephone-event at the chosen codec's clock. */
static void test_sdp_codec_choice(void **state)
{
    struct sdp_offer_result r;
    char out[1024];
    /* a browser: Opus first among others, telephone-event at both rates */
    const char *browser =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 111 63 9 0 8 13 110 126\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\n"
        "a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n"
        "a=rtpmap:126 telephone-event/8000\r\n";
    assert_int_equal(sdp_parse_offer(browser, &r), 0);
    assert_int_equal(r.codec, CODEC_OPUS);
    assert_int_equal(r.audio_pt, 111);
    assert_int_equal(r.dtmf_pt, 110);
    assert_int_equal(r.dtmf_pt_8k, 126);
    assert_int_equal(r.pts[CODEC_G722], 9);
    assert_int_equal(r.pts[CODEC_PCMU], 0);
    assert_true(sdp_build_answer(&r, "127.0.0.1", 40000, 1, 1, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "m=audio 40000 RTP/AVP 111 110\r\n"
                                "a=rtpmap:111 opus/48000/2\r\n"
                                "a=fmtp:111 maxplaybackrate=16000;"));
    assert_non_null(strstr(out, "a=rtpmap:110 telephone-event/48000\r\n"));
    /* a wideband phone: PCMU listed first, G.722 after it: G.722 wins */
    const char *phone = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                        "t=0 0\r\nm=audio 5000 RTP/AVP 0 9 101\r\n"
                        "a=rtpmap:101 telephone-event/8000\r\n";
    assert_int_equal(sdp_parse_offer(phone, &r), 0);
    assert_int_equal(r.codec, CODEC_G722);
    assert_int_equal(r.audio_pt, 9);
    assert_int_equal(r.dtmf_pt, 101);
    assert_true(sdp_build_answer(&r, "127.0.0.1", 40000, 1, 1, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "m=audio 40000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\n"));
    /* Opus with only an 8 kHz telephone-event: that one; Opus without "/2" is still Opus */
    const char *mono = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                       "t=0 0\r\nm=audio 5000 RTP/AVP 0 96 101\r\na=rtpmap:96 OPUS/48000\r\n"
                       "a=rtpmap:101 telephone-event/8000\r\n";
    assert_int_equal(sdp_parse_offer(mono, &r), 0);
    assert_int_equal(r.codec, CODEC_OPUS);
    assert_int_equal(r.audio_pt, 96);
    assert_int_equal(r.dtmf_pt, 101);
    /* a re-offer keeps the call's codec and takes its new payload type */
    char first[1024], again[1024];
    assert_int_equal(sdp_parse_offer(browser, &r), 0);
    assert_true(sdp_build_answer(&r, "127.0.0.1", 40000, 1, 1, first, sizeof(first)) > 0);
    const char *renumbered =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 0 109\r\na=rtpmap:109 opus/48000/2\r\n";
    assert_true(sdp_build_reanswer(renumbered, first, again, sizeof(again)) > 0);
    assert_non_null(strstr(again, "m=audio 40000 RTP/AVP 109\r\na=rtpmap:109 opus/48000/2\r\n"));
    const char *no_opus = "v=0\r\no=- 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                          "t=0 0\r\nm=audio 5000 RTP/AVP 0 9\r\n";
    assert_int_equal(sdp_build_reanswer(no_opus, first, again, sizeof(again)), -1);
}

int main(void)
{
    log_set_level(LOG_LEVEL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invite_answer_ack_bye),
        cmocka_unit_test(test_2xx_retransmitted_until_ack),
        cmocka_unit_test(test_no_ack_bye_and_ended),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_reinvite),
        cmocka_unit_test(test_options_and_methods),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_local_bye),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_max_dialogs),
        cmocka_unit_test(test_destroy_sends_bye),
        cmocka_unit_test(test_many_lingering_transactions),
        cmocka_unit_test(test_timer_j),
        cmocka_unit_test(test_uac_wire),
        cmocka_unit_test(test_uac_wire_cancel_and_timeout),
        cmocka_unit_test(test_uac_wire_deadlines),
        cmocka_unit_test(test_uac_call_and_bye),
        cmocka_unit_test(test_uac_remote_bye),
        cmocka_unit_test(test_uac_rejected),
        cmocka_unit_test(test_uac_cancel),
        cmocka_unit_test(test_uac_nobody_there),
        cmocka_unit_test(test_uac_bad_requests),
        cmocka_unit_test(test_uac_destroy),
        cmocka_unit_test(test_setup_per_source),
        cmocka_unit_test(test_dialog_state_and_saved_bye),
        cmocka_unit_test(test_uac_saved_bye),
        cmocka_unit_test(test_uri_check),
        cmocka_unit_test(test_sdp_parse),
        cmocka_unit_test(test_sdp_codec_choice),
        cmocka_unit_test(test_sdp_answer),
        cmocka_unit_test(test_sdp_offer_and_answer_to_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
