/* Text to speech: flite renders speech-like audio at 8 kHz, synchronously and on the pool; a
 * repeated prompt comes from the cache; bad input is refused with a message; cancelled jobs and a
 * destroyed tts call nothing back and leak nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "speech/tts.h"

static double rms(const int16_t *x, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return n ? sqrt(sum / (double)n) : 0;
}

static void test_render_sync(void **state)
{
    int16_t *s = NULL;
    size_t n = 0;
    assert_int_equal(tts_render_sync("hello world", &s, &n), 0);
    double seconds = (double)n / 8000.0;
    assert_true(seconds >= 0.4 && seconds <= 3.0);
    assert_true(rms(s, n) > 300.0); /* speech, not silence */
    free(s);

    assert_int_equal(tts_render_sync("", &s, &n), -1);
    assert_int_equal(tts_render_sync(" \t\n", &s, &n), -1);
    /* UTF-8 punctuation and control characters do not upset flite */
    const char *typographic = "It\xe2\x80\x99s \xe2\x80\x9c"
                              "fine\xe2\x80\x9d \xe2\x80\x94 \x01 caf\xc3\xa9";
    assert_int_equal(tts_render_sync(typographic, &s, &n), 0);
    assert_true(n > 4000);
    free(s);
}

struct result {
    int calls;
    struct media_clip *clip;
    char error[256];
    uint64_t at_ns;
};

static void on_done(void *arg, struct media_clip *clip, const char *error)
{
    struct result *r = arg;
    r->calls++;
    r->clip = clip;
    r->at_ns = uv_hrtime();
    if (error)
        snprintf(r->error, sizeof(r->error), "%s", error);
}

static void on_done_fail(void *arg, struct media_clip *clip, const char *error)
{
    fail_msg("a cancelled job called back");
}

static void test_render_async_and_cache(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct tts *t = tts_create(&loop);
    char err[256];
    const char *text = "Welcome to the conference. Please enter your participant code.";

    struct result first = {0};
    uint64_t t0 = uv_hrtime();
    struct tts_job *j = tts_render(t, text, "en-US", on_done, &first, err, sizeof(err));
    assert_non_null(j);
    assert_int_equal(first.calls, 0); /* never from inside tts_render() */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(first.calls, 1);
    assert_non_null(first.clip);
    uint64_t render_ns = first.at_ns - t0;
    size_t n = media_clip_samples(first.clip);
    assert_true(n > 8000 * 2);
    assert_true(rms(media_clip_data(first.clip), n) > 300.0);

    struct result second = {0};
    t0 = uv_hrtime();
    j = tts_render(t, text, "en-us", on_done, &second, err, sizeof(err));
    assert_non_null(j);
    assert_int_equal(second.calls, 0); /* a cache hit still answers from the loop */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(second.calls, 1);
    assert_non_null(second.clip);
    uint64_t hit_ns = second.at_ns - t0;
    assert_int_equal(media_clip_samples(second.clip), n);
    assert_ptr_equal(second.clip, first.clip); /* the same rendering, shared */
    assert_true(hit_ns < render_ns);
    print_message("render %.2f ms, cache hit %.3f ms\n", render_ns / 1e6, hit_ns / 1e6);
    media_clip_unref(first.clip);
    media_clip_unref(second.clip);

    /* Bad input: no job, a message. */
    assert_null(tts_render(t, "bonjour", "fr-FR", on_done, &first, err, sizeof(err)));
    assert_non_null(strstr(err, "en-US"));
    assert_null(tts_render(t, "", "en-US", on_done, &first, err, sizeof(err)));
    assert_non_null(strstr(err, "empty"));
    char *big = malloc(TTS_MAX_TEXT + 2);
    memset(big, 'a', TTS_MAX_TEXT + 1);
    big[TTS_MAX_TEXT + 1] = '\0';
    assert_null(tts_render(t, big, "en-US", on_done, &first, err, sizeof(err)));
    assert_non_null(strstr(err, "4000"));
    free(big);
    assert_string_equal(tts_languages(), "en-US");

    /* Cancelled: queued, running and cached jobs call nothing back. */
    struct tts_job *a =
        tts_render(t, "one two three four five", NULL, on_done_fail, NULL, err, sizeof(err));
    struct tts_job *b =
        tts_render(t, "six seven eight", NULL, on_done_fail, NULL, err, sizeof(err));
    struct tts_job *c = tts_render(t, text, NULL, on_done_fail, NULL, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    tts_cancel(a); /* running */
    tts_cancel(b); /* queued */
    tts_cancel(c); /* cached, not yet delivered */
    uv_run(&loop, UV_RUN_DEFAULT);

    /* Destroyed with jobs pending: nothing called back, nothing leaked. */
    assert_non_null(tts_render(t, "nine ten", NULL, on_done_fail, NULL, err, sizeof(err)));
    assert_non_null(tts_render(t, "eleven", NULL, on_done_fail, NULL, err, sizeof(err)));
    assert_non_null(tts_render(t, text, NULL, on_done_fail, NULL, err, sizeof(err)));
    tts_destroy(t);
    tts_destroy(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A callback may destroy the tts while other answers are waiting. */
static void on_done_destroy(void *arg, struct media_clip *clip, const char *error)
{
    struct tts **t = arg;
    media_clip_unref(clip);
    tts_destroy(*t);
    *t = NULL;
}

static void test_destroy_from_callback(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct tts *t = tts_create(&loop);
    char err[256];
    struct result r = {0};
    assert_non_null(tts_render(t, "hello", NULL, on_done, &r, err, sizeof(err)));
    uv_run(&loop, UV_RUN_DEFAULT);
    media_clip_unref(r.clip);
    /* two cache hits: the first callback destroys the tts, the second is never called */
    assert_non_null(tts_render(t, "hello", NULL, on_done_destroy, &t, err, sizeof(err)));
    assert_non_null(tts_render(t, "hello", NULL, on_done_fail, NULL, err, sizeof(err)));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_null(t);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_sync),
        cmocka_unit_test(test_render_async_and_cache),
        cmocka_unit_test(test_destroy_from_callback),
    };
    return cmocka_run_group_tests_name("speech", tests, NULL, NULL);
}
