/* Taps on a real engine on loopback: an empty tapped room ticks (50 frames of silence a second);
 * a room's tap holds what its members say; a leg's tap outside a room holds its audio and the
 * clip it is played; a leg's tap follows it to a room on another thread with its ticks going
 * on; untapping, destroying the room or leg, or the engine closes the tap; at most MEDIA_TAPS_MAX
 * taps on one room or leg. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
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
#include "media/tap.h"

#define MAX_FRAMES 400 /* 8 s */

struct fx {
    uv_loop_t loop;
    struct media_engine *e;
    size_t n_evs;
};

/* What a tap delivered. */
struct got {
    uint64_t ticks[MAX_FRAMES];
    int16_t pcm[MAX_FRAMES * MIX_FRAME];
    size_t n;
};

/* A far end sending a PCMU tone, one packet per call. */
struct peer {
    int sock;
    uint16_t seq;
    uint32_t ts;
    double hz, phase;
};

static void on_event(void *ctx, const struct media_event *ev)
{
    struct fx *f = ctx;
    f->n_evs++;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fx_init(struct fx *f, int threads, int port_min)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct media_config cfg = {.bind_ip = "127.0.0.1",
                               .port_min = port_min,
                               .port_max = port_min + 39,
                               .threads = threads,
                               .rtp_timeout_ms = 30000};
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

static void peer_open(struct peer *p, double hz)
{
    memset(p, 0, sizeof(*p));
    p->sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(p->sock >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(p->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    p->seq = (uint16_t)rand();
    p->ts = (uint32_t)rand();
    p->hz = hz;
}

static int peer_port(const struct peer *p)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(p->sock, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

static void peer_send(struct peer *p, int port)
{
    int16_t pcm[MIX_FRAME];
    for (int i = 0; i < MIX_FRAME; i++) {
        pcm[i] = (int16_t)lrint(8000.0 * sin(p->phase));
        p->phase += 2.0 * M_PI * p->hz / 8000.0;
    }
    uint8_t payload[MIX_FRAME], pkt[RTP_HEADER_MIN + MIX_FRAME];
    mix_encode(MIX_PCMU, pcm, payload, MIX_FRAME);
    size_t n = rtp_build(pkt, sizeof(pkt), 0, false, p->seq++, p->ts, 0x1234, payload, MIX_FRAME);
    p->ts += MIX_FRAME;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(sendto(p->sock, pkt, n, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)n);
    char junk[512];
    while (recv(p->sock, junk, sizeof(junk), 0) > 0) { /* what the leg sends back */
    }
}

static void collect(struct media_tap *t, struct got *g)
{
    struct media_tap_frame fr[16];
    size_t n;
    while ((n = media_tap_pop(t, fr, 16)) > 0)
        for (size_t i = 0; i < n; i++) {
            if (g->n == MAX_FRAMES)
                continue;
            g->ticks[g->n] = fr[i].tick;
            memcpy(g->pcm + g->n * MIX_FRAME, fr[i].pcm, sizeof(fr[i].pcm));
            g->n++;
        }
}

/* Runs the loop for ms: every 20 ms the peer (if any) sends to port; the taps are drained. */
static void pump(struct fx *f, int ms, struct peer *p, int port, struct media_tap **taps,
                 struct got **gots, size_t n)
{
    int64_t end = now_ms() + ms, next = now_ms();
    for (;;) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        int64_t t = now_ms();
        if (p && t >= next) {
            peer_send(p, port);
            next += 20;
        }
        for (size_t i = 0; i < n; i++)
            collect(taps[i], gots[i]);
        if (t >= end)
            return;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

/* Waits (running the loop) until the tap is closed; false after a second. */
static bool wait_closed(struct fx *f, struct media_tap *t)
{
    int64_t end = now_ms() + 1000;
    while (!media_tap_closed(t) && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return media_tap_closed(t);
}

static void assert_ticks_rise(const struct got *g)
{
    for (size_t i = 1; i < g->n; i++)
        if (g->ticks[i] <= g->ticks[i - 1])
            fail_msg("frame %zu: tick %llu after %llu", i, (unsigned long long)g->ticks[i],
                     (unsigned long long)g->ticks[i - 1]);
}

/* The loudest the tone is over quarter-second windows of frames [from, n). */
static double level(const struct got *g, size_t from, double hz)
{
    double best = 0;
    for (size_t at = from * MIX_FRAME; at + 2000 <= g->n * MIX_FRAME; at += 2000) {
        double v = fake_tone_level(g->pcm + at, 2000, hz);
        if (v > best)
            best = v;
    }
    return best;
}

static struct media_leg *leg_new(struct fx *f, const char *key, int remote_port)
{
    char err[160];
    struct media_leg *l = media_leg_create(f->e, key, err, sizeof(err));
    if (!l)
        fail_msg("leg %s: %s", key, err);
    media_leg_set_remote(f->e, l, "127.0.0.1", remote_port, MIX_PCMU, -1, NULL);
    return l;
}

/* The engine's spread of keys over threads (FNV-1a), to put a leg and a room apart. */
static unsigned thread_of(const char *key, unsigned threads)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % threads;
}

static void test_empty_room_ticks(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    struct got *g = calloc(1, sizeof(*g));
    assert_non_null(f);
    assert_non_null(g);
    fx_init(f, 1, 45000);
    struct media_room *r = media_room_create(f->e, "empty-room");
    struct media_tap *t = media_tap_create(100);
    assert_int_equal(media_room_tap(f->e, r, t), 0);
    pump(f, 200, NULL, 0, &t, &g, 1); /* started */
    size_t before = g->n;
    int64_t start = now_ms();
    pump(f, 1000, NULL, 0, &t, &g, 1);
    size_t per_second = (size_t)((double)(g->n - before) * 1000.0 / (double)(now_ms() - start));
    if (per_second < 40 || per_second > 60)
        fail_msg("%zu frames a second", per_second);
    assert_ticks_rise(g);
    assert_true(g->ticks[g->n - 1] - g->ticks[0] + 1 >= g->n); /* wall time: one tick a frame */
    for (size_t i = 0; i < g->n * MIX_FRAME; i++)
        assert_int_equal(g->pcm[i], 0);
    assert_false(media_tap_closed(t));

    media_room_untap(f->e, r, t);
    assert_true(wait_closed(f, t));
    collect(t, g);
    size_t final = g->n;
    pump(f, 100, NULL, 0, &t, &g, 1);
    assert_int_equal(g->n, final); /* nothing after the close */
    media_room_untap(f->e, r, t);  /* not on it any more: nothing */
    media_tap_unref(t);

    /* tapped again, then the room is destroyed: the tap is closed */
    t = media_tap_create(100);
    assert_int_equal(media_room_tap(f->e, r, t), 0);
    pump(f, 100, NULL, 0, NULL, NULL, 0);
    media_room_destroy(f->e, r);
    assert_true(wait_closed(f, t));
    assert_true(media_tap_offered(t) > 0);
    media_tap_unref(t);
    fx_fini(f);
    free(g);
    free(f);
}

/* A leg sends a tone into a room: the room's tap has it, and so has the leg's own tap (the room's
 * whole mix, its own voice included). */
static void test_room_tap_holds_the_tone(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    struct got *gr = calloc(1, sizeof(*gr)), *gl = calloc(1, sizeof(*gl));
    assert_non_null(f);
    assert_non_null(gr);
    assert_non_null(gl);
    fx_init(f, 2, 45040);
    struct peer a;
    peer_open(&a, 440);
    struct media_room *r = media_room_create(f->e, "tone-room");
    struct media_leg *la = leg_new(f, "tone-leg", peer_port(&a));
    media_leg_join(f->e, la, r);
    struct media_tap *tr = media_tap_create(200), *tl = media_tap_create(200);
    assert_int_equal(media_room_tap(f->e, r, tr), 0);
    assert_int_equal(media_leg_tap(f->e, la, tl), 0);
    struct media_tap *taps[] = {tr, tl};
    struct got *gots[] = {gr, gl};
    pump(f, 1500, &a, media_leg_port(la), taps, gots, 2);
    assert_true(gr->n > 50 && gl->n > 50);
    assert_ticks_rise(gr);
    assert_ticks_rise(gl);
    assert_true(level(gr, 0, 440) > 6000); /* the tone went in at 8000 */
    assert_true(level(gl, 0, 440) > 6000);
    assert_true(level(gr, 0, 1000) < 300);

    media_leg_destroy(f->e, la); /* the leg's tap closes; the room's does not */
    assert_true(wait_closed(f, tl));
    pump(f, 100, NULL, 0, taps, gots, 1);
    assert_false(media_tap_closed(tr));
    media_tap_unref(tl);
    fx_fini(f); /* closes the room's tap */
    assert_true(media_tap_closed(tr));
    media_tap_unref(tr);
    close(a.sock);
    free(gr);
    free(gl);
    free(f);
}

/* Outside a room a leg's tap is what it says plus what it is played. */
static void test_leg_tap_with_clip(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    struct got *g = calloc(1, sizeof(*g));
    assert_non_null(f);
    assert_non_null(g);
    fx_init(f, 1, 45080);
    struct peer a;
    peer_open(&a, 440);
    struct media_leg *l = leg_new(f, "clip-leg", peer_port(&a));
    struct media_tap *t = media_tap_create(200);
    assert_int_equal(media_leg_tap(f->e, l, t), 0);
    enum { N = 8000 * 3 };
    int16_t *tone = malloc(N * sizeof(*tone));
    assert_non_null(tone);
    for (size_t i = 0; i < N; i++)
        tone[i] = (int16_t)lrint(6000.0 * sin(2.0 * M_PI * 1000.0 * (double)i / 8000.0));
    struct media_clip *clip = media_clip_create(tone, N);
    free(tone);
    media_leg_play(f->e, l, clip, 1);
    media_clip_unref(clip);
    pump(f, 1000, NULL, 0, &t, &g, 1); /* the clip alone */
    size_t mark = g->n;
    assert_true(mark > 30);
    assert_true(level(g, 0, 1000) > 5000);
    assert_true(level(g, 0, 440) < 300);
    pump(f, 1000, &a, media_leg_port(l), &t, &g, 1); /* the clip and the call's voice */
    assert_true(level(g, mark + 10, 1000) > 5000);
    assert_true(level(g, mark + 10, 440) > 6000);
    assert_ticks_rise(g);

    media_leg_untap(f->e, l, t);
    assert_true(wait_closed(f, t));
    media_tap_unref(t);
    media_leg_destroy(f->e, l);
    fx_fini(f);
    close(a.sock);
    free(g);
    free(f);
}

/* The leg's tap goes with it to a room on the other thread: its ticks only go up, and the frames
 * it did not get during the move are few. */
static void test_leg_tap_moves(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    struct got *g = calloc(1, sizeof(*g));
    assert_non_null(f);
    assert_non_null(g);
    fx_init(f, 2, 45120);
    char room_key[16];
    for (int i = 0;; i++) {
        snprintf(room_key, sizeof(room_key), "room-%d", i);
        if (thread_of(room_key, 2) != thread_of("mover", 2))
            break;
    }
    struct peer a;
    peer_open(&a, 440);
    struct media_leg *l = leg_new(f, "mover", peer_port(&a));
    struct media_room *r = media_room_create(f->e, room_key);
    struct media_tap *t = media_tap_create(200);
    assert_int_equal(media_leg_tap(f->e, l, t), 0);
    pump(f, 300, &a, media_leg_port(l), &t, &g, 1);
    media_leg_join(f->e, l, r);
    pump(f, 500, &a, media_leg_port(l), &t, &g, 1);
    media_leg_leave(f->e, l);
    pump(f, 300, &a, media_leg_port(l), &t, &g, 1);
    assert_ticks_rise(g);
    uint64_t span = g->ticks[g->n - 1] - g->ticks[0] + 1;
    assert_true(span - g->n < 10); /* a few ticks lost in the move, at most */
    assert_true(level(g, 0, 440) > 6000);
    media_leg_destroy(f->e, l);
    assert_true(wait_closed(f, t));
    media_tap_unref(t);
    media_room_destroy(f->e, r);
    fx_fini(f);
    close(a.sock);
    free(g);
    free(f);
}

static void test_tap_limits(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 1, 45160);
    struct media_room *r = media_room_create(f->e, "limits");
    struct media_leg *l = leg_new(f, "limits-leg", 9);
    struct media_tap *rt[MEDIA_TAPS_MAX + 1], *lt[MEDIA_TAPS_MAX + 1];
    for (int i = 0; i <= MEDIA_TAPS_MAX; i++) {
        rt[i] = media_tap_create(8);
        lt[i] = media_tap_create(8);
    }
    for (int i = 0; i < MEDIA_TAPS_MAX; i++) {
        assert_int_equal(media_room_tap(f->e, r, rt[i]), 0);
        assert_int_equal(media_leg_tap(f->e, l, lt[i]), 0);
    }
    assert_int_equal(media_room_tap(f->e, r, rt[MEDIA_TAPS_MAX]), -1);
    assert_int_equal(media_leg_tap(f->e, l, lt[MEDIA_TAPS_MAX]), -1);
    media_room_untap(f->e, r, rt[MEDIA_TAPS_MAX]); /* never on it: nothing */
    media_room_untap(f->e, r, rt[0]);
    media_leg_untap(f->e, l, lt[0]);
    assert_int_equal(media_room_tap(f->e, r, rt[MEDIA_TAPS_MAX]), 0); /* room for one again */
    assert_int_equal(media_leg_tap(f->e, l, lt[MEDIA_TAPS_MAX]), 0);
    assert_int_equal(media_room_tap(f->e, r, rt[1]), -1); /* full anyway */
    media_room_untap(f->e, r, rt[2]);
    assert_int_equal(media_room_tap(f->e, r, rt[1]), -1); /* already on it */
    assert_true(wait_closed(f, rt[0]));
    assert_true(wait_closed(f, lt[0]));
    assert_true(wait_closed(f, rt[2]));
    assert_false(media_tap_closed(rt[1]));
    media_room_destroy(f->e, r);
    assert_int_equal(media_room_tap(f->e, r, rt[0]), -1); /* destroyed */
    for (int i = 1; i <= MEDIA_TAPS_MAX; i++)
        assert_true(wait_closed(f, rt[i]));
    fx_fini(f); /* the leg's taps are closed with the engine */
    for (int i = 0; i <= MEDIA_TAPS_MAX; i++) {
        assert_true(media_tap_closed(lt[i]));
        media_tap_unref(rt[i]);
        media_tap_unref(lt[i]);
    }
    free(f);
}

int main(void)
{
    srand((unsigned)time(NULL));
    mix_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_room_ticks),  cmocka_unit_test(test_room_tap_holds_the_tone),
        cmocka_unit_test(test_leg_tap_with_clip), cmocka_unit_test(test_leg_tap_moves),
        cmocka_unit_test(test_tap_limits),
    };
    return cmocka_run_group_tests_name("engine_tap", tests, NULL, NULL);
}
