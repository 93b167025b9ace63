/* Media taps: frames come out in order with their ticks; a full ring drops (counted, push false)
 * and never blocks; close; references; a producer and a consumer thread at full speed lose
 * nothing and reorder nothing beyond what the drop counter says. Speech taps: only utterances,
 * pre-roll frames with their own ticks, BEGIN and END marks, the END's slot kept in a full ring,
 * BEGIN carried to the first frame that goes in, close in the middle of an utterance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <math.h>

#include "media/tap.h"
#include "media/vad.h"

static void fill(int16_t *pcm, int v)
{
    for (int i = 0; i < MIX_FRAME; i++)
        pcm[i] = (int16_t)(v + i);
}

/* A tone of hz at amplitude a, frame k of n samples per 20 ms. */
static void tone(int16_t *pcm, size_t n, int k, double hz, double a)
{
    double rate = (double)n * 50;
    for (size_t i = 0; i < n; i++)
        pcm[i] = (int16_t)(a * sin(2 * M_PI * hz * (double)((size_t)k * n + i) / rate));
}

/* The amplitude of hz in n samples at rate (a correlation). */
static double level(const int16_t *x, size_t n, double rate, double hz)
{
    double re = 0, im = 0;
    for (size_t i = 0; i < n; i++) {
        re += x[i] * cos(2 * M_PI * hz * (double)i / rate);
        im += x[i] * sin(2 * M_PI * hz * (double)i / rate);
    }
    return 2 * sqrt(re * re + im * im) / (double)n;
}

/* A 16 kHz tap: frames of its own rate go in as they are; 8 kHz ones come out at 16 kHz (320
 * samples), the same tone at the same level; silence (NULL) is silence. An 8 kHz tap takes a 16
 * kHz frame down to 160 samples. */
static void test_rates(void **state)
{
    struct media_tap *t = media_tap_create_rate(64, 16000);
    assert_int_equal(media_tap_rate(t), 16000);
    assert_int_equal(media_tap_samples(t), MIX_FRAME_WB);
    int16_t wide[MIX_FRAME_WB], narrow[MIX_FRAME];
    tone(wide, MIX_FRAME_WB, 0, 6000, 8000);
    assert_true(media_tap_push_from(t, 1, wide, 16000));
    for (int k = 0; k < 10; k++) {
        tone(narrow, MIX_FRAME, k, 1000, 8000);
        assert_true(media_tap_push_from(t, 2 + (uint64_t)k, narrow, 8000));
    }
    assert_true(media_tap_push_from(t, 12, NULL, 8000));
    struct media_tap_frame out[16];
    assert_int_equal(media_tap_pop(t, out, 16), 12);
    assert_memory_equal(out[0].pcm, wide, sizeof(wide));
    double got = level(out[10].pcm, MIX_FRAME_WB, 16000, 1000);
    assert_true(got > 7000 && got < 9000);
    int16_t zero[MIX_FRAME_WB] = {0};
    assert_memory_equal(out[11].pcm, zero, sizeof(zero));
    media_tap_unref(t);

    t = media_tap_create(64);
    assert_int_equal(media_tap_rate(t), 8000);
    for (int k = 0; k < 10; k++) {
        tone(wide, MIX_FRAME_WB, k, 1000, 8000);
        assert_true(media_tap_push_from(t, (uint64_t)k, wide, 16000));
    }
    assert_int_equal(media_tap_pop(t, out, 16), 10);
    got = level(out[9].pcm, MIX_FRAME, 8000, 1000);
    assert_true(got > 7000 && got < 9000);
    media_tap_unref(t);
}

/* A 16 kHz speech tap cuts a 16 kHz voice into an utterance of 320-sample frames. */
static void test_speech_wideband(void **state)
{
    struct media_tap *t = media_tap_create_speech(400, 16000, NULL);
    int16_t pcm[MIX_FRAME_WB];
    uint64_t tick = 0;
    for (int k = 0; k < 50; k++, tick++)
        assert_true(media_tap_push(t, tick, (int16_t[MIX_FRAME_WB]){0}));
    for (int k = 0; k < 50; k++, tick++) {
        tone(pcm, MIX_FRAME_WB, k, 5000, 6000);
        media_tap_push(t, tick, pcm);
    }
    for (int k = 0; k < 60; k++, tick++)
        media_tap_push(t, tick, (int16_t[MIX_FRAME_WB]){0});
    struct media_tap_frame out[400];
    size_t n = media_tap_pop(t, out, 400);
    assert_true(n > 50);
    assert_true(out[0].mark & MEDIA_TAP_BEGIN);
    assert_true(out[n - 1].mark & MEDIA_TAP_END);
    bool loud = false;
    for (size_t i = 0; i < n; i++)
        loud |= level(out[i].pcm, MIX_FRAME_WB, 16000, 5000) > 5000;
    assert_true(loud);
    media_tap_unref(t);
}

static void test_order(void **state)
{
    struct media_tap *t = media_tap_create(8);
    assert_int_equal(media_tap_capacity(t), 8);
    int16_t pcm[MIX_FRAME];
    for (int k = 0; k < 5; k++) {
        fill(pcm, k * 10);
        assert_true(media_tap_push(t, 100 + (uint64_t)k, pcm));
    }
    struct media_tap_frame out[8];
    assert_int_equal(media_tap_pop(t, out, 3), 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(out[k].tick, 100 + (uint64_t)k);
        fill(pcm, k * 10);
        assert_memory_equal(out[k].pcm, pcm, sizeof(pcm));
        assert_int_equal(out[k].dropped_before, 0);
    }
    assert_int_equal(media_tap_pop(t, out, 8), 2);
    assert_int_equal(out[0].tick, 103);
    assert_int_equal(out[1].tick, 104);
    assert_int_equal(media_tap_pop(t, out, 8), 0);
    assert_int_equal(media_tap_offered(t), 5);
    assert_int_equal(media_tap_dropped(t), 0);
    media_tap_unref(t);
}

/* Not a power of two: exactly that many frames are held. */
static void test_full_drops(void **state)
{
    struct media_tap *t = media_tap_create(5);
    int16_t pcm[MIX_FRAME];
    fill(pcm, 1);
    for (uint64_t k = 0; k < 5; k++)
        assert_true(media_tap_push(t, k, pcm));
    assert_false(media_tap_push(t, 5, pcm));
    assert_false(media_tap_push(t, 6, pcm));
    assert_int_equal(media_tap_dropped(t), 2);
    assert_int_equal(media_tap_offered(t), 7);
    struct media_tap_frame out[8];
    assert_int_equal(media_tap_pop(t, out, 1), 1);
    assert_true(media_tap_push(t, 7, pcm)); /* room for one again */
    assert_false(media_tap_push(t, 8, pcm));
    assert_int_equal(media_tap_pop(t, out, 8), 5);
    assert_int_equal(out[3].tick, 4);
    assert_int_equal(out[4].tick, 7);
    assert_int_equal(out[4].dropped_before, 2); /* 5 and 6 were lost before it */
    assert_int_equal(media_tap_dropped(t), 3);  /* and 8 after it */
    assert_int_equal(media_tap_dropped(t) - out[4].dropped_before, 1);
    media_tap_unref(t);
}

static void test_close_and_refs(void **state)
{
    struct media_tap *t = media_tap_create(4);
    int16_t pcm[MIX_FRAME] = {0};
    assert_false(media_tap_closed(t));
    assert_true(media_tap_push(t, 1, pcm));
    assert_ptr_equal(media_tap_ref(t), t);
    media_tap_close(t);
    assert_true(media_tap_closed(t));
    assert_false(media_tap_push(t, 2, pcm)); /* closed: refused, not counted */
    assert_int_equal(media_tap_dropped(t), 0);
    assert_int_equal(media_tap_offered(t), 1);
    struct media_tap_frame out[4];
    assert_int_equal(media_tap_pop(t, out, 4), 1); /* what it held is still there */
    media_tap_unref(t);
    assert_true(media_tap_closed(t)); /* one reference left: still alive */
    media_tap_unref(t);
    media_tap_unref(NULL);
}

#define STRESS_FRAMES 200000

struct stress {
    struct media_tap *t;
    uint64_t pushed_ok;
};

static void *producer(void *arg)
{
    struct stress *s = arg;
    int16_t pcm[MIX_FRAME];
    for (uint64_t k = 0; k < STRESS_FRAMES; k++) {
        for (int i = 0; i < MIX_FRAME; i++)
            pcm[i] = (int16_t)(k * 7 + (uint64_t)i);
        if (media_tap_push(s->t, k, pcm))
            s->pushed_ok++;
        if (k % 1024 == 0) { /* now and then a pause, so that both full and empty rings happen */
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    media_tap_close(s->t);
    return NULL;
}

static void test_threads(void **state)
{
    struct stress s = {.t = media_tap_create(64)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer, &s), 0);
    struct media_tap_frame out[16];
    uint64_t got = 0, next = 0, gaps = 0;
    for (;;) {
        bool closed = media_tap_closed(s.t);
        size_t n = media_tap_pop(s.t, out, 16);
        for (size_t i = 0; i < n; i++) {
            assert_true(out[i].tick >= next); /* in order */
            gaps += out[i].tick - next;
            assert_true(out[i].dropped_before >= gaps); /* every gap was a counted drop */
            for (int k = 0; k < MIX_FRAME; k++)
                if (out[i].pcm[k] != (int16_t)(out[i].tick * 7 + (uint64_t)k))
                    fail_msg("frame %llu sample %d torn", (unsigned long long)out[i].tick, k);
            next = out[i].tick + 1;
        }
        got += n;
        if (closed && n == 0)
            break;
        if (n == 0)
            sched_yield();
    }
    pthread_join(th, NULL);
    assert_int_equal(got, s.pushed_ok);
    assert_int_equal(media_tap_offered(s.t), STRESS_FRAMES);
    assert_int_equal(media_tap_dropped(s.t), STRESS_FRAMES - s.pushed_ok);
    /* frames lost after the last one are the drops it did not see */
    assert_int_equal(gaps + (STRESS_FRAMES - next), media_tap_dropped(s.t));
    media_tap_unref(s.t);
}

/* ---- speech taps (the default detector: 15 frames of pre-roll, onset 3, hangover 30) ---- */

/* Silence or a loud tone, frame by frame: the frame's samples say its tick. */
static void speech_frame(int16_t *pcm, uint64_t tick, bool loud)
{
    for (int i = 0; i < MIX_FRAME; i++)
        pcm[i] = loud ? (int16_t)(i % 8 < 4 ? 8000 : -8000) : (int16_t)(tick % 2);
}

/* Pushes ticks [from, to) of the pattern: loud inside [on, off). */
static void push_span(struct media_tap *t, uint64_t from, uint64_t to, uint64_t on, uint64_t off)
{
    int16_t pcm[MIX_FRAME];
    for (uint64_t k = from; k < to; k++) {
        speech_frame(pcm, k, k >= on && k < off);
        media_tap_push(t, k, pcm);
    }
}

static size_t pop_all(struct media_tap *t, struct media_tap_frame *out, size_t max)
{
    size_t n = 0, got;
    while (n < max && (got = media_tap_pop(t, out + n, max - n)) > 0)
        n += got;
    return n;
}

static void assert_frame(const struct media_tap_frame *f, uint64_t tick, uint8_t mark)
{
    if (f->tick != tick || f->mark != mark)
        fail_msg("frame of tick %llu mark %u, expected %llu mark %u", (unsigned long long)f->tick,
                 f->mark, (unsigned long long)tick, mark);
    int16_t pcm[MIX_FRAME];
    speech_frame(pcm, tick, f->pcm[0] > 1);
    assert_memory_equal(f->pcm, pcm, sizeof(pcm));
}

/* Loud from tick 50 to 99: the utterance is 35 (the pre-roll) to 129 (the hangover), and nothing
 * else goes in. */
static void test_speech_marks(void **state)
{
    struct media_tap *t = media_tap_create_speech(200, 8000, NULL);
    assert_true(media_tap_is_speech(t));
    push_span(t, 0, 52, 50, 100); /* onset not reached yet */
    struct media_tap_frame out[200];
    assert_int_equal(media_tap_pop(t, out, 200), 0);
    push_span(t, 52, 53, 50, 100); /* the third loud frame: pre-roll and onset at once */
    assert_int_equal(pop_all(t, out, 200), 18);
    for (size_t i = 0; i < 18; i++)
        assert_frame(&out[i], 35 + i, i == 0 ? MEDIA_TAP_BEGIN : 0);
    push_span(t, 53, 200, 50, 100);
    size_t n = pop_all(t, out, 200);
    assert_int_equal(n, 129 - 53 + 1);
    for (size_t i = 0; i < n; i++)
        assert_frame(&out[i], 53 + i, 53 + i == 129 ? MEDIA_TAP_END : 0);
    assert_int_equal(media_tap_offered(t), 129 - 35 + 1);
    assert_int_equal(media_tap_dropped(t), 0);

    /* a second utterance, loud from 200 to 229 */
    push_span(t, 200, 270, 200, 230);
    n = pop_all(t, out, 200);
    assert_int_equal(n, 259 - 185 + 1);
    assert_frame(&out[0], 185, MEDIA_TAP_BEGIN);
    assert_frame(&out[n - 1], 259, MEDIA_TAP_END);

    /* loud again 10 frames after an end: the pre-roll goes back no further than the end */
    push_span(t, 270, 400, 270, 330);
    n = pop_all(t, out, 200);
    assert_frame(&out[0], 260, MEDIA_TAP_BEGIN);
    assert_frame(&out[n - 1], 359, MEDIA_TAP_END);
    media_tap_unref(t);
}

/* A ring of 10 that nobody reads: 9 frames go in with the BEGIN, then frames are dropped rather
 * than take the END's slot; the END goes in. */
static void test_speech_full_ring(void **state)
{
    struct media_tap *t = media_tap_create_speech(10, 8000, NULL);
    push_span(t, 0, 200, 50, 100);
    struct media_tap_frame out[16];
    assert_int_equal(pop_all(t, out, 16), 10);
    for (size_t i = 0; i < 9; i++)
        assert_frame(&out[i], 35 + i, i == 0 ? MEDIA_TAP_BEGIN : 0);
    assert_frame(&out[9], 129, MEDIA_TAP_END);
    assert_int_equal(media_tap_offered(t), 95);
    assert_int_equal(media_tap_dropped(t), 85);
    assert_int_equal(out[9].dropped_before, 85);
    media_tap_unref(t);
}

/* The ring is full when an utterance starts: the first of its frames that goes in carries the
 * BEGIN. An utterance none of whose frames fit before its end is dropped whole, END included. */
static void test_speech_begin_carried(void **state)
{
    struct media_tap *t = media_tap_create_speech(4, 8000, NULL);
    struct media_tap_frame out[8];
    push_span(t, 0, 200, 50, 100);    /* 35, 36, 37 and the END 129 fill it */
    push_span(t, 200, 260, 240, 300); /* onset at 242: nothing fits */
    assert_int_equal(pop_all(t, out, 8), 4);
    assert_frame(&out[3], 129, MEDIA_TAP_END);
    push_span(t, 260, 262, 240, 300);
    assert_int_equal(pop_all(t, out, 8), 2);
    assert_frame(&out[0], 260, MEDIA_TAP_BEGIN);
    assert_frame(&out[1], 261, 0);
    assert_int_equal(out[0].dropped_before, (95 - 4) + (242 - 225 + 1) + (259 - 243 + 1));

    /* ends while the ring is full: everything of a third utterance is lost */
    push_span(t, 262, 450, 240, 300); /* 262 to 264 go in; the END 329 takes the kept slot */
    struct media_tap *u = media_tap_create_speech(4, 8000, NULL);
    push_span(u, 0, 200, 50, 100);    /* full: 35, 36, 37, END 129 */
    push_span(u, 200, 400, 240, 300); /* a whole utterance while full */
    uint64_t dropped = media_tap_dropped(u);
    assert_int_equal(pop_all(u, out, 8), 4);
    push_span(u, 400, 500, 1000, 1000); /* quiet: nothing more */
    assert_int_equal(media_tap_pop(u, out, 8), 0);
    assert_int_equal(dropped, (129 - 35 + 1 - 4) + (329 - 225 + 1));
    media_tap_unref(u);
    assert_int_equal(pop_all(t, out, 8), 4);
    assert_frame(&out[0], 262, 0);
    assert_frame(&out[1], 263, 0);
    assert_frame(&out[2], 264, 0);
    assert_frame(&out[3], 329, MEDIA_TAP_END);
    media_tap_unref(t);
}

/* Closed in the middle of an utterance: what went in stays, with no END; nothing more goes in. */
static void test_speech_close(void **state)
{
    struct media_tap *t = media_tap_create_speech(100, 8000, NULL);
    push_span(t, 0, 60, 50, 100);
    media_tap_close(t);
    int16_t pcm[MIX_FRAME];
    speech_frame(pcm, 60, true);
    assert_false(media_tap_push(t, 60, pcm));
    struct media_tap_frame out[100];
    size_t n = pop_all(t, out, 100);
    assert_int_equal(n, 60 - 35);
    assert_frame(&out[0], 35, MEDIA_TAP_BEGIN);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(out[i].mark, 0);
    assert_true(media_tap_closed(t));
    assert_int_equal(media_tap_offered(t), n);
    media_tap_unref(t);

    struct vad_config c = vad_config_default();
    c.preroll_ms = 0;
    t = media_tap_create_speech(100, 8000, &c);
    push_span(t, 0, 60, 50, 100);
    assert_int_equal(pop_all(t, out, 100), 60 - 50);
    assert_frame(&out[0], 50, MEDIA_TAP_BEGIN);
    media_tap_unref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_full_drops),
        cmocka_unit_test(test_close_and_refs),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_speech_marks),
        cmocka_unit_test(test_speech_full_ring),
        cmocka_unit_test(test_speech_begin_carried),
        cmocka_unit_test(test_speech_close),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_speech_wideband),
    };
    return cmocka_run_group_tests_name("tap", tests, NULL, NULL);
}
