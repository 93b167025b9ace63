/* Media taps: frames come out in order with their ticks; a full ring drops (counted, push false)
 * and never blocks; close; references; a producer and a consumer thread at full speed lose
 * nothing and reorder nothing beyond what the drop counter says. */
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

#include "media/tap.h"

static void fill(int16_t *pcm, int v)
{
    for (int i = 0; i < MIX_FRAME; i++)
        pcm[i] = (int16_t)(v + i);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_full_drops),
        cmocka_unit_test(test_close_and_refs),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("tap", tests, NULL, NULL);
}
