/* The voice activity detector on synthetic audio: speech-like bursts (syllables of harmonics and
 * noise, quick to rise and slow to fall, at speech levels) over low line noise give one utterance
 * each, cut a pre-roll before and a hangover after; short pauses keep an utterance, long ones
 * split it; monologues are split at pauses past the soft limit, or at the hard limit; digital
 * silence, steady noise and clicks never make an utterance; a steady tone after silence makes one
 * of about the floor window, then becomes the floor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "media/vad.h"

#define FS 8000
#define FRAMES_PER_S 50
#define MAX_UTT 64

/* Test audio: whole frames, built by the helpers below. */
struct sig {
    int16_t *x;
    size_t frames;
    uint32_t seed;
};

/* One utterance as the detector handed it on. */
struct utt {
    uint64_t first, last; /* ticks */
    size_t frames;
};

struct result {
    struct utt u[MAX_UTT];
    size_t n;
};

static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Uniform in [0, 1). */
static double unit(uint32_t *s)
{
    return (double)rnd(s) / (double)(1u << 24);
}

/* A frame's level in dBov as the detector measures it, from an rms amplitude. */
static double amp_of_db(double db)
{
    return 32768.0 * pow(10.0, db / 20.0);
}

static void sig_init(struct sig *g, double seconds)
{
    g->frames = (size_t)(seconds * FRAMES_PER_S);
    g->x = calloc(g->frames * MIX_FRAME, sizeof(int16_t));
    assert_non_null(g->x);
    g->seed = 12345;
}

static void sig_fini(struct sig *g)
{
    free(g->x);
}

static void add(struct sig *g, size_t at, double v)
{
    double s = g->x[at] + v;
    g->x[at] = (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : lrint(s));
}

/* White noise at rms db over the whole signal (a telephone line's hiss). */
static void add_noise(struct sig *g, double db)
{
    double a = amp_of_db(db) * sqrt(3.0); /* a uniform variable's rms is a / sqrt(3) */
    for (size_t i = 0; i < g->frames * MIX_FRAME; i++)
        add(g, i, a * (2.0 * unit(&g->seed) - 1.0));
}

/* A syllable's loudness at sample i of len: a 20 ms rise and a 60 ms fall (raised cosines), as a
 * consonant starts a syllable quickly and its vowel dies away. */
static double envelope(size_t i, size_t len)
{
    const size_t rise = FS / 50, fall = 3 * FS / 50;
    if (i < rise)
        return 0.5 - 0.5 * cos(M_PI * (double)i / (double)rise);
    if (i + fall > len)
        return 0.5 - 0.5 * cos(M_PI * (double)(len - i) / (double)fall);
    return 1.0;
}

/* Speech-like sound from frame `from` for `frames`: syllables of 120-280 ms with 20-60 ms gaps,
 * each a voiced sound (five harmonics of a pitch of 100-220 Hz) with some breath noise, under the
 * envelope above, peaking at db. Returns the frame after the last one that has sound. */
static size_t add_speech(struct sig *g, size_t from, size_t frames, double db)
{
    size_t at = from * MIX_FRAME, end = (from + frames) * MIX_FRAME, last = at;
    double peak = amp_of_db(db) * sqrt(2.0) / 1.6; /* the harmonics' rms at the envelope's top */
    while (at < end) {
        size_t len = (size_t)((0.12 + 0.16 * unit(&g->seed)) * FS);
        if (at + len > end)
            break; /* no cut syllable: the sound ends with a whole one */
        double f0 = 100.0 + 120.0 * unit(&g->seed);
        for (size_t i = 0; i < len; i++) {
            double env = envelope(i, len);
            double t = (double)i / FS, v = 0;
            for (int h = 1; h <= 5; h++)
                v += sin(2.0 * M_PI * f0 * h * t) / h;
            v += 0.3 * (2.0 * unit(&g->seed) - 1.0);
            add(g, at + i, peak * env * v);
        }
        at += len;
        last = at;
        at += (size_t)((0.02 + 0.04 * unit(&g->seed)) * FS);
    }
    return (last + MIX_FRAME - 1) / MIX_FRAME;
}

/* A tone of rms db from frame `from` for `frames`. */
static void add_tone(struct sig *g, size_t from, size_t frames, double db, double hz)
{
    double a = amp_of_db(db) * sqrt(2.0);
    for (size_t i = from * MIX_FRAME; i < (from + frames) * MIX_FRAME; i++)
        add(g, i, a * sin(2.0 * M_PI * hz * (double)i / FS));
}

/* Feeds every frame (tick = frame number) and checks what comes out: ticks rise by one without a
 * gap or a repeat inside an utterance and never go back, marks open and close each utterance. */
static void run(const struct vad_config *cfg, const struct sig *g, struct result *r)
{
    struct vad *v = vad_create(cfg, 8000);
    memset(r, 0, sizeof(*r));
    bool inside = false;
    uint64_t next = 0;
    for (size_t f = 0; f < g->frames; f++) {
        enum vad_out o = vad_feed(v, g->x + f * MIX_FRAME, f);
        size_t n = vad_out_count(v);
        assert_true(o == VAD_OUT_NONE ? n == 0 : n >= 1);
        for (size_t i = 0; i < n; i++) {
            uint64_t tick;
            uint8_t mark;
            const int16_t *pcm = vad_out_frame(v, i, &tick, &mark);
            assert_memory_equal(pcm, g->x + tick * MIX_FRAME, MIX_FRAME * sizeof(int16_t));
            assert_true(tick >= next);
            if (mark & VAD_MARK_BEGIN) {
                assert_false(inside);
                assert_true(r->n < MAX_UTT);
                inside = true;
                r->u[r->n].first = tick;
                r->u[r->n].frames = 0;
                r->n++;
            } else {
                assert_true(inside);
                assert_int_equal(tick, next);
            }
            r->u[r->n - 1].frames++;
            r->u[r->n - 1].last = tick;
            next = tick + 1;
            if (mark & VAD_MARK_END)
                inside = false;
        }
        assert_true(vad_in_utterance(v) == inside);
        if (o == VAD_OUT_END)
            assert_false(inside);
    }
    if (inside) /* the signal ended inside one: counted as it is */
        r->u[r->n - 1].last = next - 1;
    vad_destroy(v);
}

static void assert_between(long v, long lo, long hi, const char *what)
{
    if (v < lo || v > hi)
        fail_msg("%s %ld not in %ld..%ld", what, v, lo, hi);
}

static void test_config(void **state)
{
    struct vad_config c = vad_config_default();
    assert_int_equal(c.min_level_db, -50);
    assert_int_equal(c.margin_db, 10);
    assert_int_equal(c.floor_window_ms, 3000);
    assert_int_equal(c.onset_ms, 60);
    assert_int_equal(c.preroll_ms, 300);
    assert_int_equal(c.hangover_ms, 600);
    assert_int_equal(c.soft_max_ms, 10000);
    assert_int_equal(c.split_pause_ms, 160);
    assert_int_equal(c.max_ms, 15000);
    struct error e;
    assert_int_equal(vad_config_validate(&c, &e), 0);
    c.hangover_ms = 0;
    assert_int_equal(vad_config_validate(&c, &e), -ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.message, "hangover_ms"));
    c = vad_config_default();
    c.split_pause_ms = 700; /* longer than the hangover: the hangover would end it first */
    assert_int_equal(vad_config_validate(&c, &e), -ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.message, "split_pause_ms"));
    c = vad_config_default();
    c.max_ms = 300; /* cannot hold its pre-roll and onset */
    assert_int_equal(vad_config_validate(&c, &e), -ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.message, "max_ms"));
    c = vad_config_default();
    c.soft_max_ms = 20000;
    assert_int_equal(vad_config_validate(&c, &e), -ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.message, "soft_max_ms"));
    c = vad_config_default();
    c.margin_db = -1;
    assert_int_equal(vad_config_validate(&c, NULL), -ERR_INVALID_ARGUMENT);
    c = vad_config_default();
    c.floor_window_ms = 100;
    assert_int_equal(vad_config_validate(&c, &e), -ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.message, "floor_window_ms"));
}

/* Bursts of 0.5 to 3 s between a second of line noise before and two after: one utterance, from
 * the pre-roll (15 frames) before the first frame of sound to the hangover (30 frames) after the
 * last, within a frame or two (a syllable's envelope starts and ends below the threshold). */
static void test_burst(void **state)
{
    const double seconds[] = {0.5, 1.0, 2.0, 3.0};
    /* speech and line noise levels: quiet lines, and a noisy one (above the minimum level) */
    const double levels[][2] = {{-20, -62}, {-30, -62}, {-38, -62}, {-20, -45}, {-28, -45}};
    for (size_t k = 0; k < sizeof(seconds) / sizeof(seconds[0]); k++)
        for (size_t j = 0; j < sizeof(levels) / sizeof(levels[0]); j++) {
            struct sig g;
            sig_init(&g, 1.0 + seconds[k] + 2.0);
            g.seed += (uint32_t)(k * 7 + j);
            add_noise(&g, levels[j][1]);
            size_t start = FRAMES_PER_S;
            size_t end = add_speech(&g, start, (size_t)(seconds[k] * FRAMES_PER_S), levels[j][0]);
            struct result r;
            run(NULL, &g, &r);
            if (r.n != 1)
                fail_msg("%.1f s at %.0f dB over %.0f: %zu utterances", seconds[k], levels[j][0],
                         levels[j][1], r.n);
            assert_between((long)r.u[0].first, (long)start - 15, (long)start - 15 + 2, "first");
            assert_between((long)r.u[0].last, (long)end - 1 + 30 - 2, (long)end - 1 + 30, "last");
            assert_int_equal(r.u[0].frames, r.u[0].last - r.u[0].first + 1);
            sig_fini(&g);
        }
}

/* A burst at the very start: the pre-roll is only what there was. */
static void test_burst_at_start(void **state)
{
    struct sig g;
    sig_init(&g, 3.0);
    add_noise(&g, -62);
    add_speech(&g, 4, 50, -20);
    struct result r;
    run(NULL, &g, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.u[0].first, 0);
    sig_fini(&g);
}

/* Pauses shorter than the hangover (600 ms) keep one utterance; longer ones split it. */
static void test_pauses(void **state)
{
    const struct {
        double pause;
        size_t utterances;
    } cases[] = {{0.2, 1}, {0.4, 1}, {0.5, 1}, {0.8, 2}, {1.5, 2}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct sig g;
        sig_init(&g, 1.0 + 1.5 + cases[k].pause + 1.5 + 2.0);
        add_noise(&g, -62);
        size_t a = FRAMES_PER_S, b = a + 75 + (size_t)(cases[k].pause * FRAMES_PER_S);
        size_t a_end = add_speech(&g, a, 75, -24);
        size_t b_end = add_speech(&g, b, 75, -24);
        struct result r;
        run(NULL, &g, &r);
        if (r.n != cases[k].utterances)
            fail_msg("pause %.1f s: %zu utterances", cases[k].pause, r.n);
        if (r.n == 2) { /* the first ends a hangover after its sound; no frame comes twice */
            assert_between((long)r.u[0].last, (long)a_end - 1 + 28, (long)a_end - 1 + 30,
                           "end of the first");
            /* its pre-roll goes back no further than the end of the first */
            long pre = (long)b - 15 > (long)r.u[0].last + 1 ? (long)b - 15 : (long)r.u[0].last + 1;
            assert_between((long)r.u[1].first, pre, pre + 2, "second");
        }
        assert_between((long)r.u[r.n - 1].last, (long)b_end - 1 + 28, (long)b_end - 1 + 30, "end");
        sig_fini(&g);
    }
}

/* 25 s of talk with pauses of 200-400 ms every 1.5-3.5 s (none as long as the hangover): split at
 * a pause once 10 s are reached, so every utterance but the last is 10 to 15 s and ends inside a
 * pause, a split pause (8 frames) after its last sound. */
static void test_monologue_with_pauses(void **state)
{
    struct sig g;
    sig_init(&g, 28.0);
    add_noise(&g, -62);
    bool sound[28 * FRAMES_PER_S] = {false};
    size_t at = FRAMES_PER_S;
    uint32_t s = 99;
    while (at < 26 * FRAMES_PER_S) {
        size_t len = (size_t)((1.5 + 2.0 * unit(&s)) * FRAMES_PER_S);
        size_t end = add_speech(&g, at, len, -22 - 8 * unit(&s));
        for (size_t f = at; f < end; f++)
            sound[f] = true;
        at += len + (size_t)((0.2 + 0.2 * unit(&s)) * FRAMES_PER_S);
    }
    struct result r;
    run(NULL, &g, &r);
    assert_true(r.n >= 2);
    for (size_t i = 0; i < r.n; i++) {
        assert_true(r.u[i].frames <= 750);
        if (i + 1 == r.n)
            break;
        assert_true(r.u[i].frames >= 500);
        assert_true(r.u[i].frames < 750); /* split at a pause, not at the limit */
        uint64_t end = r.u[i].last;
        assert_false(sound[end]);
        size_t quiet = 0;
        while (!sound[end - quiet])
            quiet++;
        assert_between((long)quiet, 6, 8, "quiet frames before the split");
        assert_true(r.u[i + 1].first > end);
    }
    sig_fini(&g);
}

/* 25 s of talk with no pause: cut at exactly 15 s, and the next utterance starts with the next
 * frame. */
static void test_monologue_without_pauses(void **state)
{
    struct sig g;
    sig_init(&g, 28.0);
    add_noise(&g, -62);
    size_t end = add_speech(&g, FRAMES_PER_S, 25 * FRAMES_PER_S, -22);
    struct result r;
    run(NULL, &g, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.u[0].frames, 750);
    assert_int_equal(r.u[0].first, FRAMES_PER_S - 15);
    assert_int_equal(r.u[1].first, r.u[0].last + 1);
    /* the second is past the soft limit when the talk stops: a split pause ends it, not the
     * whole hangover */
    assert_true(r.u[1].frames >= 500 && r.u[1].frames < 750);
    assert_between((long)r.u[1].last, (long)end - 1 + 6, (long)end - 1 + 8, "end");
    sig_fini(&g);

    /* 40 s: three cuts' worth, every one at the limit */
    sig_init(&g, 42.0);
    add_noise(&g, -62);
    add_speech(&g, FRAMES_PER_S, 40 * FRAMES_PER_S, -22);
    run(NULL, &g, &r);
    assert_int_equal(r.n, 3);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(r.u[i].frames, 750);
        assert_int_equal(r.u[i + 1].first, r.u[i].last + 1);
    }
    sig_fini(&g);
}

/* Digital silence, noise below the minimum level and steady noise above it never make speech;
 * the floor follows the noise. */
static void test_silence_and_noise(void **state)
{
    struct sig g;
    struct result r;
    sig_init(&g, 60.0);
    run(NULL, &g, &r);
    assert_int_equal(r.n, 0);
    sig_fini(&g);

    const double noise[] = {-75, -60, -45, -30};
    for (size_t k = 0; k < sizeof(noise) / sizeof(noise[0]); k++) {
        sig_init(&g, 30.0);
        add_noise(&g, noise[k]);
        run(NULL, &g, &r);
        if (r.n)
            fail_msg("noise at %.0f dB: %zu utterances", noise[k], r.n);
        struct vad *v = vad_create(NULL, 8000);
        for (size_t f = 0; f < g.frames; f++)
            vad_feed(v, g.x + f * MIX_FRAME, f);
        assert_between(lrint(vad_floor_db(v)), lrint(noise[k]) - 2, lrint(noise[k]), "floor");
        vad_destroy(v);
        sig_fini(&g);
    }
}

/* A steady tone after silence: speech until the silence has left the floor's window (3 s to an
 * eighth more), then the floor: one utterance, and none after it while the tone goes on. */
static void test_tone_after_silence(void **state)
{
    struct sig g;
    sig_init(&g, 22.0);
    add_tone(&g, 2 * FRAMES_PER_S, 20 * FRAMES_PER_S, -20, 440);
    struct result r;
    run(NULL, &g, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.u[0].first, 2 * FRAMES_PER_S - 15);
    /* the floor catches up between 150 and 171 frames after the start, then the hangover */
    assert_between((long)(r.u[0].last - 2 * FRAMES_PER_S), 150 + 29, 171 + 30, "length");
    sig_fini(&g);

    /* the same tone from the start is never speech */
    sig_init(&g, 10.0);
    add_tone(&g, 0, 10 * FRAMES_PER_S, -20, 440);
    run(NULL, &g, &r);
    assert_int_equal(r.n, 0);
    sig_fini(&g);
}

/* Clicks (one or two loud frames) are shorter than the onset. */
static void test_clicks(void **state)
{
    struct sig g;
    sig_init(&g, 10.0);
    add_noise(&g, -62);
    for (size_t f = 25; f + 2 < g.frames; f += 25) {
        size_t frames = f % 50 ? 1 : 2;
        for (size_t i = f * MIX_FRAME; i < (f + frames) * MIX_FRAME; i++)
            g.x[i] = (int16_t)(i % 2 ? 30000 : -30000);
    }
    struct result r;
    run(NULL, &g, &r);
    assert_int_equal(r.n, 0);
    sig_fini(&g);
}

/* Other settings: no pre-roll, a one-frame onset, a short hangover. */
static void test_other_settings(void **state)
{
    struct vad_config c = vad_config_default();
    c.preroll_ms = 0;
    c.onset_ms = 20;
    c.hangover_ms = 200;
    c.split_pause_ms = 100;
    struct sig g;
    sig_init(&g, 4.0);
    add_tone(&g, 50, 50, -20, 300);
    struct result r;
    run(&c, &g, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.u[0].first, 50);
    assert_int_equal(r.u[0].last, 99 + 10);
    sig_fini(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_burst_at_start),
        cmocka_unit_test(test_pauses),
        cmocka_unit_test(test_monologue_with_pauses),
        cmocka_unit_test(test_monologue_without_pauses),
        cmocka_unit_test(test_silence_and_noise),
        cmocka_unit_test(test_tone_after_silence),
        cmocka_unit_test(test_clicks),
        cmocka_unit_test(test_other_settings),
    };
    return cmocka_run_group_tests_name("vad", tests, NULL, NULL);
}
