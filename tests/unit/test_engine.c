/* The media engine on loopback with real sockets: rooms are not limited by the RTP port range (nor
 * by anything but memory); port pairs are drawn at random, skip pairs other programs hold and run
 * out with a clear error; strict RTP learning keeps a spray out of a call, learns a phone behind
 * a NAT and gives the leg back to the SDP's source; the inactivity timer waits for the answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fakes.h"
#include "media/engine.h"
#include "media/mixer.h"
#include "media/rtp.h"

#define MAX_EVS 256
#define MAX_HEARD (8000 * 6)

struct fx {
    uv_loop_t loop;
    struct media_engine *e;
    struct media_event evs[MAX_EVS];
    size_t n_evs;
};

/* A far end: a socket on a loopback address that sends a tone (or silence) as PCMU, one packet per
 * call, and keeps what it receives decoded. */
struct peer {
    int sock;
    char ip[16];
    int port;
    uint16_t seq;
    uint32_t ts, ssrc;
    double hz, phase;
    int16_t heard[MAX_HEARD];
    size_t n_heard;
    size_t packets;
};

static void on_event(void *ctx, const struct media_event *ev)
{
    struct fx *f = ctx;
    assert_true(f->n_evs < MAX_EVS);
    f->evs[f->n_evs++] = *ev;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fx_init(struct fx *f, int threads, int port_min, int port_max, int rtp_timeout_ms)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct media_config cfg = {.bind_ip = "127.0.0.1",
                               .port_min = port_min,
                               .port_max = port_max,
                               .threads = threads,
                               .rtp_timeout_ms = rtp_timeout_ms};
    char err[160];
    f->e = media_engine_create(&f->loop, &cfg, on_event, f, err, sizeof(err));
    assert_non_null(f->e);
}

static void fx_fini(struct fx *f)
{
    media_engine_destroy(f->e);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static size_t count_events(const struct fx *f, enum media_event_type type,
                           const struct media_leg *l)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_evs; i++)
        n += f->evs[i].type == type && (!l || f->evs[i].leg == l);
    return n;
}

static void peer_open(struct peer *p, const char *ip, double hz)
{
    memset(p, 0, sizeof(*p));
    p->sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(p->sock >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    assert_int_equal(bind(p->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(p->sock, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    snprintf(p->ip, sizeof(p->ip), "%s", ip);
    p->seq = (uint16_t)(rand() & 0xffff);
    p->ts = (uint32_t)rand();
    p->ssrc = (uint32_t)rand();
    p->hz = hz;
}

static void peer_close(struct peer *p)
{
    close(p->sock);
}

/* One 20 ms PCMU frame of the peer's tone (silence at 0 Hz) to a leg's port. */
static void peer_send(struct peer *p, int port)
{
    int16_t pcm[MIX_FRAME];
    for (int i = 0; i < MIX_FRAME; i++) {
        pcm[i] = p->hz > 0 ? (int16_t)lrint(8000.0 * sin(p->phase)) : 0;
        p->phase += 2.0 * M_PI * p->hz / 8000.0;
    }
    uint8_t payload[MIX_FRAME], pkt[RTP_HEADER_MIN + MIX_FRAME];
    codec_g711_encode(CODEC_PCMU, pcm, payload, MIX_FRAME);
    size_t n = rtp_build(pkt, sizeof(pkt), 0, false, p->seq++, p->ts, p->ssrc, payload, MIX_FRAME);
    p->ts += MIX_FRAME;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    assert_true(sendto(p->sock, pkt, n, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)n);
}

static void peer_drain(struct peer *p)
{
    uint8_t buf[RTP_MAX_PACKET];
    ssize_t n;
    while ((n = recv(p->sock, buf, sizeof(buf), 0)) >= 0) {
        struct rtp_packet pkt;
        if (rtp_parse(buf, (size_t)n, &pkt) < 0 || pkt.payload_len != MIX_FRAME)
            continue;
        p->packets++;
        if (p->n_heard + MIX_FRAME <= MAX_HEARD) {
            codec_g711_decode(CODEC_PCMU, pkt.payload, p->heard + p->n_heard, MIX_FRAME);
            p->n_heard += MIX_FRAME;
        }
    }
}

static void peer_forget(struct peer *p)
{
    p->n_heard = 0;
    p->packets = 0;
}

/* The loudest the tone is over half-second windows of what the peer heard. */
static double peer_level(const struct peer *p, double hz)
{
    double best = 0;
    for (size_t at = 0; at + 4000 <= p->n_heard; at += 4000) {
        double v = fake_tone_level(p->heard + at, 4000, hz);
        if (v > best)
            best = v;
    }
    return best;
}

struct sender {
    struct peer *peer;
    int port;
};

/* Runs the loop for ms; every 20 ms each sender sends a frame and every peer is drained. */
static void pump(struct fx *f, int ms, struct sender *senders, size_t n_senders,
                 struct peer **peers, size_t n_peers)
{
    int64_t end = now_ms() + ms, next = now_ms();
    for (;;) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        int64_t t = now_ms();
        if (t >= next) {
            for (size_t i = 0; i < n_senders; i++)
                peer_send(senders[i].peer, senders[i].port);
            next += 20;
        }
        for (size_t i = 0; i < n_peers; i++)
            peer_drain(peers[i]);
        if (t >= end)
            return;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static struct media_leg *leg_new(struct fx *f, const char *key, const char *ip, int port)
{
    char err[160];
    struct media_leg *l = media_leg_create(f->e, key, err, sizeof(err));
    if (!l)
        fail_msg("leg %s: %s", key, err);
    if (ip)
        media_leg_set_remote(f->e, l, ip, port, CODEC_PCMU, 0, -1, NULL);
    return l;
}

/* 3,000 rooms on a range of two port pairs (the rooms used to live in an array sized by the
 * range: the third room overflowed it), on two threads; legs join one of the last rooms and mix. */
static void test_rooms_beyond_port_range(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 2, 47000, 47003, 30000);
    enum { ROOMS = 3000 };
    struct media_room **rooms = calloc(ROOMS, sizeof(*rooms));
    assert_non_null(rooms);
    for (int i = 0; i < ROOMS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "room-%d", i);
        rooms[i] = media_room_create(f->e, key);
    }
    struct media_stats st;
    media_engine_stats(f->e, &st);
    assert_int_equal(st.rooms, ROOMS);

    struct peer a, b;
    peer_open(&a, "127.0.0.1", 440);
    peer_open(&b, "127.0.0.1", 0);
    struct media_leg *la = leg_new(f, "leg-a", a.ip, a.port);
    struct media_leg *lb = leg_new(f, "leg-b", b.ip, b.port);
    char err[160];
    assert_null(media_leg_create(f->e, "leg-c", err, sizeof(err))); /* both pairs are taken */
    assert_non_null(strstr(err, "rtp_ports 47000-47003"));
    media_leg_join(f->e, la, rooms[ROOMS - 7]);
    media_leg_join(f->e, lb, rooms[ROOMS - 7]);
    media_leg_join(f->e, lb, rooms[ROOMS - 7]); /* again: no change */
    struct sender s[] = {{&a, media_leg_port(la)}, {&b, media_leg_port(lb)}};
    struct peer *ps[] = {&a, &b};
    pump(f, 1500, s, 2, ps, 2);
    assert_int_equal(count_events(f, MEDIA_LEG_JOINED, la), 1);
    assert_true(count_events(f, MEDIA_LEG_JOINED, lb) >= 1);
    assert_true(peer_level(&b, 440) > 2000); /* b hears a */
    assert_true(peer_level(&a, 440) < 300);  /* a does not hear itself */

    for (int i = 0; i < ROOMS; i += 2)
        media_room_destroy(f->e, rooms[i]);
    media_room_destroy(f->e, rooms[ROOMS - 7]); /* odd: still there; its legs leave */
    pump(f, 200, NULL, 0, NULL, 0);
    assert_int_equal(count_events(f, MEDIA_LEG_LEFT, la), 1);
    assert_int_equal(count_events(f, MEDIA_LEG_LEFT, lb), 1);
    media_engine_stats(f->e, &st);
    assert_int_equal(st.rooms, ROOMS / 2 - 1);
    media_leg_destroy(f->e, la);
    fx_fini(f); /* frees lb and the rooms still there */
    peer_close(&a);
    peer_close(&b);
    free(rooms);
    free(f);
}

/* Port pairs are drawn at random (not in order), all of them can be used, and then the next leg
 * gets a clear error; a pair freed by a leg is used again; a pair another program holds is
 * skipped. */
static void test_ports_random_and_exhausted(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    enum { PAIRS = 64 };
    fx_init(f, 1, 47101, 47101 + 2 * PAIRS + 1, 30000); /* odd start: 47102 is the first pair */
    struct media_leg *legs[PAIRS];
    int ports[PAIRS];
    bool seen[PAIRS] = {false};
    int in_order = 0;
    for (int i = 0; i < PAIRS; i++) {
        char key[16];
        snprintf(key, sizeof(key), "l%d", i);
        legs[i] = leg_new(f, key, NULL, 0);
        ports[i] = media_leg_port(legs[i]);
        assert_true(ports[i] >= 47102 && ports[i] + 1 <= 47101 + 2 * PAIRS + 1);
        assert_int_equal(ports[i] % 2, 0);
        int k = (ports[i] - 47102) / 2;
        assert_false(seen[k]);
        seen[k] = true;
        if (i > 0 && ports[i] == ports[i - 1] + 2)
            in_order++;
    }
    assert_true(in_order < 8); /* handed out in order, it would be 63 */
    char err[160];
    assert_null(media_leg_create(f->e, "one-more", err, sizeof(err)));
    assert_non_null(strstr(err, "no free RTP port pair in rtp_ports 47101-47230"));
    assert_non_null(strstr(err, "64 pairs: 64 held by calls"));

    int freed = ports[10];
    media_leg_destroy(f->e, legs[10]);
    int64_t end = now_ms() + 1000;
    struct media_leg *again = NULL;
    while (!again && now_ms() < end) { /* the pair is free once the media thread let go */
        uv_run(&f->loop, UV_RUN_NOWAIT);
        again = media_leg_create(f->e, "again", err, sizeof(err));
        if (!again) {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_non_null(again);
    assert_int_equal(media_leg_port(again), freed);
    fx_fini(f);

    /* three pairs, the middle one's RTCP port held by someone else */
    int other = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(47303)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(other, (struct sockaddr *)&sa, sizeof(sa)), 0);
    fx_init(f, 1, 47300, 47305, 30000);
    for (int round = 0; round < 10; round++) {
        struct media_leg *x = leg_new(f, "x", NULL, 0), *y = leg_new(f, "y", NULL, 0);
        assert_int_not_equal(media_leg_port(x), 47302);
        assert_int_not_equal(media_leg_port(y), 47302);
        assert_null(media_leg_create(f->e, "z", err, sizeof(err)));
        assert_non_null(strstr(err, "3 pairs: 2 held by calls, 1 in use by other programs"));
        media_leg_destroy(f->e, x);
        media_leg_destroy(f->e, y);
        pump(f, 100, NULL, 0, NULL, 0); /* the frees come back */
    }
    fx_fini(f);
    close(other);
    free(f);
}

/* An attacker sprays in-sequence RTP at both legs of a call, from before the callers send and on
 * while they talk. Before any caller has sent, the SDP's source counts as silent and a stream is
 * learned (that is how a phone behind a NAT is heard at once); but the first packet from the
 * address the SDP named takes the leg back for good, while the spray goes on. The old engine
 * latched to whoever sent first and kept the caller out for as long as the spray lasted. */
static void test_spray_does_not_take_a_leg(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 1, 47400, 47409, 30000);
    struct peer a, b, evil1, evil2;
    peer_open(&a, "127.0.0.1", 440);
    peer_open(&b, "127.0.0.1", 0);
    peer_open(&evil1, "127.0.0.2", 1800);
    peer_open(&evil2, "127.0.0.2", 1800);
    struct media_room *r = media_room_create(f->e, "room");
    struct media_leg *la = leg_new(f, "leg-a", a.ip, a.port);
    struct media_leg *lb = leg_new(f, "leg-b", b.ip, b.port);
    media_leg_join(f->e, la, r);
    media_leg_join(f->e, lb, r);
    struct peer *ps[] = {&a, &b, &evil1, &evil2};
    struct sender spray[] = {{&evil1, media_leg_port(la)}, {&evil2, media_leg_port(lb)}};
    pump(f, 400, spray, 2, ps, 4);
    struct sender all[] = {{&evil1, media_leg_port(la)},
                           {&evil2, media_leg_port(lb)},
                           {&a, media_leg_port(la)},
                           {&b, media_leg_port(lb)}};
    pump(f, 300, all, 4, ps, 4);
    for (size_t i = 0; i < 4; i++)
        peer_forget(ps[i]);
    pump(f, 2500, all, 4, ps, 4); /* longer than the silence that lets a source be learned */
    assert_true(peer_level(&b, 440) > 2000);
    assert_true(peer_level(&b, 1800) < 300);
    assert_true(peer_level(&a, 1800) < 300);
    assert_true(a.packets > 100 && b.packets > 100);
    assert_true(evil1.packets + evil2.packets < 3); /* in flight at the switch, at most */
    struct media_stats st;
    media_engine_stats(f->e, &st);
    assert_true(st.rtp_refused >= 2 * (RTP_LEARN_PACKETS - 1));
    assert_int_equal(st.rtp_learned, 2); /* during the first 400 ms only */
    fx_fini(f);
    for (size_t i = 0; i < 4; i++)
        peer_close(ps[i]);
    free(f);
}

/* A phone behind a NAT: its SDP names an address that never sends; its packets come from another
 * one, which is learned (and answered: symmetric RTP). When the SDP's address sends after all, it
 * takes the leg back. */
static void test_nat_learning_and_sdp_regain(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 2, 47500, 47509, 30000);
    struct peer sdp, nat, b;
    peer_open(&sdp, "127.0.0.1", 700);
    peer_open(&nat, "127.0.0.2", 440);
    peer_open(&b, "127.0.0.1", 0);
    struct media_room *r = media_room_create(f->e, "room-nat");
    struct media_leg *la = leg_new(f, "leg-nat", sdp.ip, sdp.port);
    struct media_leg *lb = leg_new(f, "leg-b", b.ip, b.port);
    media_leg_join(f->e, la, r);
    media_leg_join(f->e, lb, r);
    struct peer *ps[] = {&sdp, &nat, &b};
    struct sender s1[] = {{&nat, media_leg_port(la)}, {&b, media_leg_port(lb)}};
    pump(f, 1500, s1, 2, ps, 3);
    assert_true(peer_level(&b, 440) > 2000); /* the NAT's audio is in the room */
    assert_true(nat.packets > 40);           /* and the leg answers it there */
    struct media_stats st;
    media_engine_stats(f->e, &st);
    assert_int_equal(st.rtp_learned, 1);

    /* the SDP's address speaks up: the leg is its own again, the NAT's packets are refused */
    pump(f, 100, (struct sender[]){{&sdp, media_leg_port(la)}}, 1, ps, 3);
    peer_forget(&b);
    peer_forget(&sdp);
    peer_forget(&nat);
    struct sender s2[] = {
        {&sdp, media_leg_port(la)}, {&nat, media_leg_port(la)}, {&b, media_leg_port(lb)}};
    pump(f, 1500, s2, 3, ps, 3);
    assert_true(peer_level(&b, 700) > 2000);
    assert_true(peer_level(&b, 440) < 300);
    assert_true(sdp.packets > 40);
    assert_true(nat.packets < 3);
    fx_fini(f);
    peer_close(&sdp);
    peer_close(&nat);
    peer_close(&b);
    free(f);
}

/* No RTP timeout before the answer (a ringing call sends nothing); armed, the timer runs, also
 * for a leg that moves to a room on another thread. */
static void test_timeout_waits_for_answer(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 2, 47600, 47609, 200);
    struct media_leg *ringing = leg_new(f, "ringing", "127.0.0.1", 9);
    struct media_leg *moved = leg_new(f, "moved", "127.0.0.1", 9);
    pump(f, 800, NULL, 0, NULL, 0);
    assert_int_equal(count_events(f, MEDIA_LEG_TIMEOUT, NULL), 0);

    int64_t armed = now_ms();
    media_leg_arm_timeout(f->e, ringing);
    media_leg_arm_timeout(f->e, ringing); /* twice: the same */
    media_leg_arm_timeout(f->e, moved);
    char key[16];
    for (int i = 0;; i++) { /* a room on the other thread than "moved" */
        snprintf(key, sizeof(key), "r%d", i);
        struct media_room *probe = media_room_create(f->e, key);
        media_leg_join(f->e, moved, probe);
        pump(f, 40, NULL, 0, NULL, 0);
        media_room_destroy(f->e, probe);
        if (i >= 3)
            break;
    }
    int64_t end = now_ms() + 2000;
    while (count_events(f, MEDIA_LEG_TIMEOUT, NULL) < 2 && now_ms() < end)
        pump(f, 10, NULL, 0, NULL, 0);
    assert_int_equal(count_events(f, MEDIA_LEG_TIMEOUT, ringing), 1);
    assert_int_equal(count_events(f, MEDIA_LEG_TIMEOUT, moved), 1);
    assert_true(now_ms() - armed >= 200);
    fx_fini(f);
    free(f);
}

int main(void)
{
    srand((unsigned)time(NULL));
    mix_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms_beyond_port_range),
        cmocka_unit_test(test_ports_random_and_exhausted),
        cmocka_unit_test(test_spray_does_not_take_a_leg),
        cmocka_unit_test(test_nat_learning_and_sdp_regain),
        cmocka_unit_test(test_timeout_waits_for_answer),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
