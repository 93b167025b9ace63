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
    uint8_t marks[MAX_FRAMES];
    int16_t pcm[MAX_FRAMES * MIX_FRAME];
    size_t n;
};

/* A far end sending a PCMU tone, one packet per call. */
struct peer {
    int sock;
    uint16_t seq;
    uint32_t ts;
    double hz, phase;
    double amp; /* 0: it sends silence */
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
    p->amp = 8000.0;
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
        pcm[i] = (int16_t)lrint(p->amp * sin(p->phase));
        p->phase += 2.0 * M_PI * p->hz / 8000.0;
    }
    uint8_t payload[MIX_FRAME], pkt[RTP_HEADER_MIN + MIX_FRAME];
    codec_g711_encode(CODEC_PCMU, pcm, payload, MIX_FRAME);
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
            g->marks[g->n] = fr[i].mark;
            memcpy(g->pcm + g->n * MIX_FRAME, fr[i].pcm, sizeof(fr[i].pcm));
            g->n++;
        }
}

/* Runs the loop for ms: every 20 ms each peer sends to its port; the taps are drained. */
static void pump_peers(struct fx *f, int ms, struct peer **peers, const int *ports, size_t n_peers,
                       struct media_tap **taps, struct got **gots, size_t n)
{
    int64_t end = now_ms() + ms, next = now_ms();
    for (;;) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        int64_t t = now_ms();
        if (n_peers && t >= next) {
            for (size_t i = 0; i < n_peers; i++)
                peer_send(peers[i], ports[i]);
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

/* The same with one peer (or none). */
static void pump(struct fx *f, int ms, struct peer *p, int port, struct media_tap **taps,
                 struct got **gots, size_t n)
{
    pump_peers(f, ms, &p, &port, p ? 1 : 0, taps, gots, n);
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
    media_leg_set_remote(f->e, l, "127.0.0.1", remote_port, CODEC_PCMU, 0, -1, NULL);
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

/* Outside a room a leg's tap is what it says plus what it is played; its SAYS side is its audio
 * alone, its HEARS side the clip alone. */
static void test_leg_tap_with_clip(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    struct got *g = calloc(1, sizeof(*g)), *gs = calloc(1, sizeof(*gs)),
               *gh = calloc(1, sizeof(*gh));
    assert_non_null(f);
    assert_non_null(g);
    assert_non_null(gs);
    assert_non_null(gh);
    fx_init(f, 1, 45080);
    struct peer a;
    peer_open(&a, 440);
    struct media_leg *l = leg_new(f, "clip-leg", peer_port(&a));
    struct media_tap *t = media_tap_create(200), *ts = media_tap_create(200),
                     *th = media_tap_create(200);
    assert_int_equal(media_leg_tap(f->e, l, t), 0);
    assert_int_equal(media_leg_tap_side(f->e, l, ts, MEDIA_TAP_SAYS), 0);
    assert_int_equal(media_leg_tap_side(f->e, l, th, MEDIA_TAP_HEARS), 0);
    struct media_tap *taps[] = {t, ts, th};
    struct got *gots[] = {g, gs, gh};
    enum { N = 8000 * 3 };
    int16_t *tone = malloc(N * sizeof(*tone));
    assert_non_null(tone);
    for (size_t i = 0; i < N; i++)
        tone[i] = (int16_t)lrint(6000.0 * sin(2.0 * M_PI * 1000.0 * (double)i / 8000.0));
    struct media_clip *clip = media_clip_create(tone, N);
    free(tone);
    media_leg_play(f->e, l, clip, 1);
    media_clip_unref(clip);
    pump(f, 1000, NULL, 0, taps, gots, 3); /* the clip alone */
    size_t mark = g->n, mark_s = gs->n, mark_h = gh->n;
    assert_true(mark > 30);
    assert_true(level(g, 0, 1000) > 5000);
    assert_true(level(g, 0, 440) < 300);
    for (size_t i = 0; i < gs->n * MIX_FRAME; i++) /* nothing came: silence */
        assert_int_equal(gs->pcm[i], 0);
    assert_true(level(gh, 0, 1000) > 5000);
    pump(f, 1000, &a, media_leg_port(l), taps, gots, 3); /* the clip and the call's voice */
    assert_true(level(g, mark + 10, 1000) > 5000);
    assert_true(level(g, mark + 10, 440) > 6000);
    assert_true(level(gs, mark_s + 10, 440) > 6000);
    assert_true(level(gs, mark_s + 10, 1000) < 300);
    assert_true(level(gh, mark_h + 10, 1000) > 5000);
    assert_true(level(gh, mark_h + 10, 440) < 300);
    for (size_t i = 0; i < 3; i++)
        assert_ticks_rise(gots[i]);

    media_leg_untap(f->e, l, t);
    assert_true(wait_closed(f, t));
    media_tap_unref(t);
    media_leg_destroy(f->e, l); /* the sides' taps are closed with the leg */
    assert_true(wait_closed(f, ts));
    assert_true(wait_closed(f, th));
    media_tap_unref(ts);
    media_tap_unref(th);
    fx_fini(f);
    close(a.sock);
    for (size_t i = 0; i < 3; i++)
        free(gots[i]);
    free(f);
}

/* Two legs in a room, each sending its own tone: what A says has A's tone only, what A hears B's
 * only (its mix leaves itself out), and the other way round; once B is silent, A hears silence.
 * The engine's tick now is the tick of the frames being made. */
static void test_leg_sides_in_room(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    struct got *got[4];
    for (size_t i = 0; i < 4; i++) {
        got[i] = calloc(1, sizeof(*got[i]));
        assert_non_null(got[i]);
    }
    assert_non_null(f);
    fx_init(f, 2, 45200);
    struct peer a, b;
    peer_open(&a, 440);
    peer_open(&b, 1000);
    struct media_room *r = media_room_create(f->e, "sides-room");
    struct media_leg *la = leg_new(f, "side-a", peer_port(&a));
    struct media_leg *lb = leg_new(f, "side-b", peer_port(&b));
    media_leg_join(f->e, la, r);
    media_leg_join(f->e, lb, r);
    struct media_tap *taps[4];
    for (size_t i = 0; i < 4; i++)
        taps[i] = media_tap_create(200);
    assert_int_equal(media_leg_tap_side(f->e, la, taps[0], MEDIA_TAP_SAYS), 0);
    assert_int_equal(media_leg_tap_side(f->e, la, taps[1], MEDIA_TAP_HEARS), 0);
    assert_int_equal(media_leg_tap_side(f->e, lb, taps[2], MEDIA_TAP_SAYS), 0);
    assert_int_equal(media_leg_tap_side(f->e, lb, taps[3], MEDIA_TAP_HEARS), 0);
    struct peer *peers[] = {&a, &b};
    int ports[] = {media_leg_port(la), media_leg_port(lb)};
    uint64_t tick0 = media_engine_tick_now(f->e);
    pump_peers(f, 1500, peers, ports, 2, taps, got, 4);
    uint64_t tick1 = media_engine_tick_now(f->e);
    assert_true(tick1 - tick0 >= 70 && tick1 - tick0 <= 85); /* 1.5 s */
    for (size_t i = 0; i < 4; i++) {
        assert_true(got[i]->n > 50);
        assert_ticks_rise(got[i]);
        uint64_t last = got[i]->ticks[got[i]->n - 1];
        assert_true(last <= tick1 && last + 5 >= tick1);
    }
    assert_true(level(got[0], 0, 440) > 6000); /* A says */
    assert_true(level(got[0], 0, 1000) < 300);
    assert_true(level(got[1], 0, 1000) > 6000); /* A hears */
    assert_true(level(got[1], 0, 440) < 300);
    assert_true(level(got[2], 0, 1000) > 6000); /* B says */
    assert_true(level(got[2], 0, 440) < 300);
    assert_true(level(got[3], 0, 440) > 6000); /* B hears */
    assert_true(level(got[3], 0, 1000) < 300);

    b.amp = 0;
    size_t from = got[1]->n;
    pump_peers(f, 600, peers, ports, 2, taps, got, 4);
    assert_true(got[1]->n > from + 20);
    for (size_t i = (got[1]->n - 10) * MIX_FRAME; i < got[1]->n * MIX_FRAME; i++)
        assert_int_equal(got[1]->pcm[i], 0); /* nobody else talks */

    media_leg_destroy(f->e, la);
    media_leg_destroy(f->e, lb);
    for (size_t i = 0; i < 4; i++) {
        assert_true(wait_closed(f, taps[i]));
        media_tap_unref(taps[i]);
        free(got[i]);
    }
    media_room_destroy(f->e, r);
    fx_fini(f);
    close(a.sock);
    close(b.sock);
    free(f);
}

/* The one utterance a speech tap delivered: its first and last frame indexes in g. */
static void one_utterance(const struct got *g, size_t *first, size_t *last)
{
    size_t begins = 0, ends = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->marks[i] & MEDIA_TAP_BEGIN) {
            *first = i;
            begins++;
        }
        if (g->marks[i] & MEDIA_TAP_END) {
            *last = i;
            ends++;
        }
    }
    if (begins != 1 || ends != 1)
        fail_msg("%zu BEGIN and %zu END in %zu frames", begins, ends, g->n);
    assert_int_equal(*first, 0);
    assert_int_equal(*last, g->n - 1);
    assert_int_equal(g->ticks[*last] - g->ticks[*first], g->n - 1); /* no gap */
}

/* Two legs talk at once, A first and B last, each with a speech tap on what it says: each tap
 * has one utterance of its own leg's voice only, and the two overlap in time. */
static void test_speech_taps_overlap(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    struct got *ga = calloc(1, sizeof(*ga)), *gb = calloc(1, sizeof(*gb));
    assert_non_null(f);
    assert_non_null(ga);
    assert_non_null(gb);
    fx_init(f, 1, 45240);
    struct peer a, b;
    peer_open(&a, 440);
    peer_open(&b, 1000);
    a.amp = b.amp = 0;
    struct media_room *r = media_room_create(f->e, "talk-room");
    struct media_leg *la = leg_new(f, "talk-a", peer_port(&a));
    struct media_leg *lb = leg_new(f, "talk-b", peer_port(&b));
    media_leg_join(f->e, la, r);
    media_leg_join(f->e, lb, r);
    struct media_tap *ta = media_tap_create_speech(400, 8000, NULL);
    struct media_tap *tb = media_tap_create_speech(400, 8000, NULL);
    assert_int_equal(media_leg_tap_side(f->e, la, ta, MEDIA_TAP_SAYS), 0);
    assert_int_equal(media_leg_tap_side(f->e, lb, tb, MEDIA_TAP_SAYS), 0);
    struct peer *peers[] = {&a, &b};
    int ports[] = {media_leg_port(la), media_leg_port(lb)};
    struct media_tap *taps[] = {ta, tb};
    struct got *gots[] = {ga, gb};
    pump_peers(f, 400, peers, ports, 2, taps, gots, 2);
    a.amp = 8000;
    pump_peers(f, 600, peers, ports, 2, taps, gots, 2);
    b.amp = 8000;
    pump_peers(f, 1000, peers, ports, 2, taps, gots, 2);
    a.amp = 0;
    pump_peers(f, 600, peers, ports, 2, taps, gots, 2);
    b.amp = 0;
    pump_peers(f, 1200, peers, ports, 2, taps, gots, 2);

    size_t a0, a1, b0, b1;
    one_utterance(ga, &a0, &a1);
    one_utterance(gb, &b0, &b1);
    /* 1.6 s of voice each, with 15 frames of pre-roll and 30 of hangover */
    assert_true(ga->n >= 110 && ga->n <= 140);
    assert_true(gb->n >= 110 && gb->n <= 140);
    assert_true(level(ga, 0, 440) > 6000);
    assert_true(level(ga, 0, 1000) < 300);
    assert_true(level(gb, 0, 1000) > 6000);
    assert_true(level(gb, 0, 440) < 300);
    assert_true(ga->ticks[a0] < gb->ticks[b0] && gb->ticks[b0] < ga->ticks[a1] &&
                ga->ticks[a1] < gb->ticks[b1]);

    media_room_destroy(f->e, r); /* the legs leave; their taps stay */
    media_leg_destroy(f->e, la);
    media_leg_destroy(f->e, lb);
    assert_true(wait_closed(f, ta));
    assert_true(wait_closed(f, tb));
    media_tap_unref(ta);
    media_tap_unref(tb);
    fx_fini(f);
    close(a.sock);
    close(b.sock);
    free(ga);
    free(gb);
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
    /* the sides count in the same limit, and a tap is on one side only */
    media_leg_untap(f->e, l, lt[1]);
    media_leg_untap(f->e, l, lt[2]);
    assert_int_equal(media_leg_tap_side(f->e, l, lt[1], MEDIA_TAP_SAYS), 0);
    assert_int_equal(media_leg_tap_side(f->e, l, lt[1], MEDIA_TAP_HEARS), -1); /* on it */
    assert_int_equal(media_leg_tap_side(f->e, l, lt[2], MEDIA_TAP_HEARS), 0);
    assert_int_equal(media_leg_tap_side(f->e, l, lt[0], MEDIA_TAP_SAYS), -1); /* full */
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
        cmocka_unit_test(test_empty_room_ticks),    cmocka_unit_test(test_room_tap_holds_the_tone),
        cmocka_unit_test(test_leg_tap_with_clip),   cmocka_unit_test(test_leg_sides_in_room),
        cmocka_unit_test(test_speech_taps_overlap), cmocka_unit_test(test_leg_tap_moves),
        cmocka_unit_test(test_tap_limits),
    };
    return cmocka_run_group_tests_name("engine_tap", tests, NULL, NULL);
}
