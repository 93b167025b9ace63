/* Playback on media legs through a real engine on loopback: a clip reaches the far end as PCMU
 * packets that decode back to it, then MEDIA_LEG_PLAY_DONE; stopping, replacing, joining a room
 * (on another media thread) cut it short; a leg or engine destroyed mid-play gives no event and
 * leaks nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "media/engine.h"
#include "media/mixer.h"
#include "media/rtp.h"

#define MAX_PKTS 512
#define MAX_EVS 64
#define PKT_LEN (RTP_HEADER_MIN + MIX_FRAME)

struct fx {
    uv_loop_t loop;
    struct media_engine *e;
    int sock, port; /* the far end */
    struct media_event evs[MAX_EVS];
    size_t n_evs;
    uint8_t pkts[MAX_PKTS][PKT_LEN];
    size_t n_pkts;
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

static void fx_init(struct fx *f, int threads, int port_min)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct media_config cfg = {.bind_ip = "127.0.0.1",
                               .port_min = port_min,
                               .port_max = port_min + 39,
                               .threads = threads,
                               .rtp_timeout_ms = 30000};
    char err[128];
    f->e = media_engine_create(&f->loop, &cfg, on_event, f, err, sizeof(err));
    assert_non_null(f->e);
    f->sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(f->sock >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(f->sock, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
}

static void fx_fini(struct fx *f)
{
    media_engine_destroy(f->e);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* closes the wake-up handle */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->sock);
}

static struct media_leg *fx_leg(struct fx *f, const char *key)
{
    char err[128];
    struct media_leg *l = media_leg_create(f->e, key, err, sizeof(err));
    assert_non_null(l);
    media_leg_set_remote(f->e, l, "127.0.0.1", f->port, CODEC_PCMU, 0, -1, NULL);
    return l;
}

static void drain_socket(struct fx *f)
{
    uint8_t buf[RTP_MAX_PACKET];
    ssize_t n;
    while ((n = recv(f->sock, buf, sizeof(buf), 0)) >= 0) {
        assert_int_equal(n, PKT_LEN);
        assert_true(f->n_pkts < MAX_PKTS);
        memcpy(f->pkts[f->n_pkts++], buf, PKT_LEN);
    }
}

static const struct media_event *find_event(struct fx *f, enum media_event_type type,
                                            uint32_t play_id)
{
    for (size_t i = 0; i < f->n_evs; i++)
        if (f->evs[i].type == type && (type != MEDIA_LEG_PLAY_DONE || f->evs[i].play_id == play_id))
            return &f->evs[i];
    return NULL;
}

/* Runs the loop and reads the far end for ms, or until an event of type (with play_id) came. */
static const struct media_event *pump(struct fx *f, int ms, int type, uint32_t play_id)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        drain_socket(f);
        const struct media_event *ev =
            type >= 0 ? find_event(f, (enum media_event_type)type, play_id) : NULL;
        if (ev)
            return ev;
        if (now_ms() >= end)
            return NULL;
        struct pollfd pfd = {.fd = f->sock, .events = POLLIN};
        poll(&pfd, 1, 5);
    }
}

static int16_t *make_tone(size_t n, double hz, double amp)
{
    int16_t *x = malloc(n * sizeof(*x));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (int16_t)lrint(amp * sin(2.0 * M_PI * hz * (double)i / 8000.0));
    return x;
}

static void parse(struct fx *f, size_t i, struct rtp_packet *p)
{
    assert_int_equal(rtp_parse(f->pkts[i], PKT_LEN, p), 0);
    assert_int_equal(p->payload_type, 0);
    assert_int_equal(p->payload_len, MIX_FRAME);
}

/* Packets [from, to) are one stream: consecutive sequence numbers, 160 timestamp steps, one SSRC.
 */
static void check_continuous(struct fx *f, size_t from, size_t to)
{
    struct rtp_packet a, b;
    for (size_t i = from + 1; i < to; i++) {
        parse(f, i - 1, &a);
        parse(f, i, &b);
        assert_int_equal((uint16_t)(a.seq + 1), b.seq);
        assert_int_equal(b.ssrc, a.ssrc);
        assert_true((uint32_t)(b.ts - a.ts) >= MIX_FRAME); /* a move may skip ticks */
    }
}

static void test_play_to_end(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 1, 46000);
    struct media_leg *l = fx_leg(f, "leg-play");
    int16_t *tone = make_tone(1000, 440.0, 8000.0);
    struct media_clip *clip = media_clip_create(tone, 1000);
    assert_int_equal(media_clip_samples(clip), 1000);
    assert_memory_equal(media_clip_data(clip), tone, 1000 * sizeof(int16_t));
    media_leg_play(f->e, l, clip, 42);
    media_clip_unref(clip); /* the engine keeps its own */

    const struct media_event *ev = pump(f, 2000, MEDIA_LEG_PLAY_DONE, 42);
    assert_non_null(ev);
    assert_ptr_equal(ev->leg, l);
    assert_false(ev->stopped);
    pump(f, 100, -1, 0);            /* anything after the end would show up here */
    assert_int_equal(f->n_pkts, 7); /* ceil(1000 / 160) */
    assert_int_equal(f->n_evs, 1);

    int16_t got[7 * MIX_FRAME];
    struct rtp_packet p;
    for (size_t i = 0; i < 7; i++) {
        parse(f, i, &p);
        assert_int_equal(p.marker, i == 0);
        codec_g711_decode(CODEC_PCMU, p.payload, got + i * MIX_FRAME, MIX_FRAME);
    }
    check_continuous(f, 0, 7);
    for (size_t i = 0; i < 7 * MIX_FRAME; i++) {
        int want = i < 1000 ? tone[i] : 0;
        int bound = abs(want) / 16 + 40; /* G.711 */
        if (abs(got[i] - want) > bound)
            fail_msg("sample %zu: want %d got %d", i, want, got[i]);
    }
    free(tone);
    media_leg_destroy(f->e, l);
    fx_fini(f);
    free(f);
}

static void test_stop_and_replace(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 1, 46040);
    struct media_leg *l = fx_leg(f, "leg-stop");
    int16_t *tone = make_tone(8000 * 10, 1000.0, 6000.0);
    struct media_clip *clip = media_clip_create(tone, 8000 * 10);
    free(tone);

    media_leg_play(f->e, l, clip, 1);
    pump(f, 120, -1, 0);
    assert_true(f->n_pkts >= 2);
    media_leg_play_stop(f->e, l);
    const struct media_event *ev = pump(f, 1000, MEDIA_LEG_PLAY_DONE, 1);
    assert_non_null(ev);
    assert_true(ev->stopped);
    pump(f, 60, -1, 0);
    size_t after_stop = f->n_pkts;
    assert_true(after_stop < 20);
    pump(f, 100, -1, 0);
    assert_int_equal(f->n_pkts, after_stop); /* silent once stopped */
    media_leg_play_stop(f->e, l);            /* idle: no event */

    /* A second play cuts the first short; the second then plays to its end. */
    struct media_clip *shortc = media_clip_create(media_clip_data(clip), 320);
    media_leg_play(f->e, l, clip, 2);
    media_leg_play(f->e, l, shortc, 3);
    media_clip_unref(shortc);
    ev = pump(f, 1000, MEDIA_LEG_PLAY_DONE, 3);
    assert_non_null(ev);
    assert_false(ev->stopped);
    ev = find_event(f, MEDIA_LEG_PLAY_DONE, 2);
    assert_non_null(ev);
    assert_true(ev->stopped);
    assert_true(ev < find_event(f, MEDIA_LEG_PLAY_DONE, 3)); /* in order */
    pump(f, 60, -1, 0);
    assert_int_equal(f->n_evs, 3);
    check_continuous(f, 0, f->n_pkts); /* one stream across plays */

    media_clip_unref(clip);
    media_leg_destroy(f->e, l);
    fx_fini(f);
    free(f);
}

static void test_destroy_mid_play(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 2, 46080);
    int16_t *tone = make_tone(8000 * 5, 500.0, 6000.0);
    struct media_clip *clip = media_clip_create(tone, 8000 * 5);
    free(tone);
    struct media_leg *a = fx_leg(f, "leg-a"), *b = fx_leg(f, "leg-b");
    media_leg_play(f->e, a, clip, 7);
    media_leg_play(f->e, b, clip, 8);
    pump(f, 100, -1, 0);
    assert_true(f->n_pkts >= 4);
    media_leg_destroy(f->e, a); /* mid-play: no event, the clip reference goes with the leg */
    pump(f, 200, -1, 0);
    assert_int_equal(f->n_evs, 0);
    media_clip_unref(clip);
    /* b still plays (holding the last reference) when the engine goes. */
    fx_fini(f);
    assert_int_equal(f->n_evs, 0);
    free(f);
}

/* The engine's spread of keys over threads (FNV-1a), to put a leg and a room apart. */
static unsigned thread_of(const char *key, unsigned threads)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % threads;
}

static void test_join_stops_play_across_threads(void **state)
{
    struct fx *f = malloc(sizeof(*f));
    assert_non_null(f);
    fx_init(f, 2, 46120);
    char leg_key[16] = "leg-0", room_key[16];
    for (int i = 0;; i++) {
        snprintf(room_key, sizeof(room_key), "room-%d", i);
        if (thread_of(room_key, 2) != thread_of(leg_key, 2))
            break;
    }
    struct media_leg *l = fx_leg(f, leg_key);
    struct media_room *r = media_room_create(f->e, room_key);
    int16_t *tone = make_tone(8000 * 10, 700.0, 6000.0);
    struct media_clip *clip = media_clip_create(tone, 8000 * 10);
    free(tone);

    media_leg_play(f->e, l, clip, 11);
    pump(f, 100, -1, 0);
    size_t played = f->n_pkts;
    assert_true(played >= 2);
    media_leg_join(f->e, l, r);        /* moves the leg to the room's thread */
    media_leg_play(f->e, l, clip, 12); /* asked on the way: it is in a room by then */
    const struct media_event *ev = pump(f, 1000, MEDIA_LEG_PLAY_DONE, 12);
    assert_non_null(ev);
    assert_true(ev->stopped);
    const struct media_event *first = find_event(f, MEDIA_LEG_PLAY_DONE, 11);
    const struct media_event *joined = find_event(f, MEDIA_LEG_JOINED, 0);
    assert_non_null(first);
    assert_true(first->stopped);
    assert_non_null(joined);
    assert_true(first < joined && joined < ev); /* stopped, joined, then the refused play */
    pump(f, 200, -1, 0);                        /* the room's mix (silence) reaches the far end */
    assert_true(f->n_pkts >= played + 5);
    check_continuous(f, 0, f->n_pkts); /* one stream across play, move and mix */
    assert_int_equal(f->n_evs, 3);

    /* Out of the room again, it plays once more on its new thread. */
    media_leg_leave(f->e, l);
    assert_non_null(pump(f, 1000, MEDIA_LEG_LEFT, 0));
    struct media_clip *shortc = media_clip_create(media_clip_data(clip), 400);
    media_leg_play(f->e, l, shortc, 13);
    media_clip_unref(shortc);
    ev = pump(f, 1000, MEDIA_LEG_PLAY_DONE, 13);
    assert_non_null(ev);
    assert_false(ev->stopped);
    drain_socket(f);
    check_continuous(f, 0, f->n_pkts);

    /* Destroyed while moving, with a play waiting for it: no event, nothing leaks. */
    struct media_room *r2 = media_room_create(f->e, leg_key); /* the leg's first thread */
    size_t before = f->n_evs;
    media_leg_join(f->e, l, r2);
    media_leg_play(f->e, l, clip, 14);
    media_leg_destroy(f->e, l);
    pump(f, 200, -1, 0);
    assert_int_equal(f->n_evs, before);

    media_clip_unref(clip);
    media_room_destroy(f->e, r);
    media_room_destroy(f->e, r2);
    pump(f, 100, -1, 0);
    fx_fini(f);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_play_to_end),
        cmocka_unit_test(test_stop_and_replace),
        cmocka_unit_test(test_destroy_mid_play),
        cmocka_unit_test(test_join_stops_play_across_threads),
    };
    return cmocka_run_group_tests_name("engine_play", tests, NULL, NULL);
}
