/* The recorder with its real writer threads into a temporary directory: frames with consecutive
 * ticks come out exactly; missing ticks (between frames, or dropped after the last one) become
 * silence and are counted; max_frames ends a recording; the header is rewritten while it runs; a
 * file size limit ends one with EFBIG and a playable file; an open failure is a result; close and
 * destroy finish what is open. Files are read back with libsndfile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "media/recorder.h"
#include "media/wav.h"

#define MAX_RESULTS 16
#define FRAME_BYTES (MIX_FRAME * 2)

struct fx {
    uv_loop_t loop;
    struct recorder *r;
    char dir[64];
    struct recorder_result res[MAX_RESULTS];
    size_t n_res;
};

static void on_done(void *ctx, const struct recorder_result *r)
{
    struct fx *f = ctx;
    assert_true(f->n_res < MAX_RESULTS);
    f->res[f->n_res++] = *r;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct fx *fx_new(int header_interval_ms)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_recorder.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    struct recorder_config cfg = {
        .threads = 2, .header_interval_ms = header_interval_ms, .drain_interval_ms = 10};
    f->r = recorder_create(&f->loop, &cfg, on_done, f);
    assert_non_null(f->r);
    return f;
}

static void fx_free(struct fx *f)
{
    recorder_destroy(f->r);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns: the handle closes */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

static void path_of(const struct fx *f, char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", f->dir, name);
}

/* The samples of a frame of tick k: recognisable anywhere in a file. */
static int16_t sample(uint64_t k, int i)
{
    return (int16_t)((k % 200) * 150 + (uint64_t)i + 1);
}

static void push(struct media_tap *t, uint64_t from, uint64_t to)
{
    int16_t pcm[MIX_FRAME];
    for (uint64_t k = from; k < to; k++) {
        for (int i = 0; i < MIX_FRAME; i++)
            pcm[i] = sample(k, i);
        media_tap_push(t, k, pcm);
    }
}

/* Runs the loop until n results came (false after ms). */
static bool wait_results(struct fx *f, size_t n, int ms)
{
    int64_t end = now_ms() + ms;
    while (f->n_res < n && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return f->n_res >= n;
}

static void run_for(struct fx *f, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

/* Reads a recording: it must be 8 kHz mono 16-bit of frames frames; returns its samples. */
static short *read_wav(const char *path, sf_count_t frames)
{
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        fail_msg("sf_open %s: %s", path, sf_strerror(NULL));
    assert_int_equal(info.samplerate, 8000);
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    assert_int_equal(info.frames, frames * MIX_FRAME);
    short *x = calloc((size_t)(frames * MIX_FRAME) + 1, sizeof(short));
    assert_non_null(x);
    assert_int_equal(sf_read_short(sf, x, frames * MIX_FRAME), frames * MIX_FRAME);
    sf_close(sf);
    return x;
}

/* Frame at of samples x is tick k's (or silence for k == UINT64_MAX). */
static void assert_frame(const short *x, size_t at, uint64_t k)
{
    for (int i = 0; i < MIX_FRAME; i++) {
        short want = k == UINT64_MAX ? 0 : sample(k, i);
        if (x[at * MIX_FRAME + (size_t)i] != want)
            fail_msg("frame %zu sample %d: want %d got %d", at, i, want,
                     x[at * MIX_FRAME + (size_t)i]);
    }
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static const char *ID_A = "4f1c1a3e-8f6b-4c2a-9d6e-0a1b2c3d4e5f";
static const char *ID_B = "5e2d2b4f-9a7c-4d3b-8e7f-1b2c3d4e5f60";

/* A 16 kHz tap makes a 16 kHz file: 320 samples a frame, the header saying so. */
static void test_wideband_file(void **state)
{
    struct fx *f = fx_new(10000);
    char path[128];
    path_of(f, path, sizeof(path), "wide.wav");
    struct media_tap *t = media_tap_create_rate(200, 16000);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 0), 0);
    int16_t pcm[MIX_FRAME_WB];
    for (uint64_t k = 0; k < 50; k++) {
        for (int i = 0; i < MIX_FRAME_WB; i++)
            pcm[i] = (int16_t)(k * 10 + (uint64_t)i);
        media_tap_push(t, 500 + k, pcm);
    }
    media_tap_close(t);
    assert_true(wait_results(f, 1, 2000));
    const struct recorder_result *r = &f->res[0];
    assert_int_equal(r->error, 0);
    assert_int_equal(r->frames, 50);
    assert_int_equal(r->duration_ms, 1000);
    assert_int_equal(r->bytes, WAV_HEADER_BYTES + 50 * MIX_FRAME_WB * 2);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    assert_non_null(sf);
    assert_int_equal(info.samplerate, 16000);
    assert_int_equal(info.frames, 50 * MIX_FRAME_WB);
    short x[MIX_FRAME_WB * 50];
    assert_int_equal(sf_read_short(sf, x, info.frames), info.frames);
    sf_close(sf);
    assert_int_equal(x[49 * MIX_FRAME_WB + 319], 490 + 319);
    media_tap_unref(t);
    fx_free(f);
}

static void test_exact_frames(void **state)
{
    struct fx *f = fx_new(10000);
    char path[128];
    path_of(f, path, sizeof(path), "a.wav");
    struct media_tap *t = media_tap_create(200);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 0), 0);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 0), -1); /* already open */
    assert_int_equal(recorder_open_count(f->r), 1);
    push(t, 1000, 1100);
    media_tap_close(t); /* the end of what is tapped: the recording ends with it */
    assert_true(wait_results(f, 1, 2000));
    const struct recorder_result *r = &f->res[0];
    assert_string_equal(r->id, ID_A);
    assert_int_equal(r->error, 0);
    assert_int_equal(r->frames, 100);
    assert_int_equal(r->dropped, 0);
    assert_int_equal(r->bytes, WAV_HEADER_BYTES + 100 * FRAME_BYTES);
    assert_int_equal(r->duration_ms, 2000);
    assert_false(r->reached_max);
    assert_int_equal(recorder_open_count(f->r), 0);
    assert_int_equal(file_size(path), WAV_HEADER_BYTES + 100 * FRAME_BYTES);
    short *x = read_wav(path, 100);
    for (size_t k = 0; k < 100; k++)
        assert_frame(x, k, 1000 + k);
    free(x);
    media_tap_unref(t);
    /* the id is free again */
    t = media_tap_create(8);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 0), 0);
    media_tap_close(t);
    assert_true(wait_results(f, 2, 2000));
    assert_int_equal(f->res[1].frames, 0);
    assert_int_equal(f->res[1].bytes, WAV_HEADER_BYTES);
    media_tap_unref(t);
    fx_free(f);
}

/* Ticks 10..14 never came: silence in their place. Then a full tap dropped the last four ticks:
 * no later frame shows that gap, the recording puts it in at the end. */
static void test_gaps_are_silence(void **state)
{
    struct fx *f = fx_new(10000);
    char path[128];
    path_of(f, path, sizeof(path), "gap.wav");
    struct media_tap *t = media_tap_create(40);
    push(t, 0, 10);
    push(t, 15, 20);
    media_tap_close(t);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 0), 0);
    assert_true(wait_results(f, 1, 2000));
    const struct recorder_result *r = &f->res[0];
    assert_int_equal(r->error, 0);
    assert_int_equal(r->frames, 20);
    assert_int_equal(r->dropped, 5);
    short *x = read_wav(path, 20);
    for (uint64_t k = 0; k < 20; k++)
        assert_frame(x, k, k >= 10 && k < 15 ? UINT64_MAX : k);
    free(x);
    media_tap_unref(t);

    path_of(f, path, sizeof(path), "full.wav");
    t = media_tap_create(10);
    push(t, 100, 114); /* 10 fit */
    assert_int_equal(media_tap_dropped(t), 4);
    media_tap_close(t);
    assert_int_equal(recorder_open(f->r, ID_B, path, t, 0), 0);
    assert_true(wait_results(f, 2, 2000));
    r = &f->res[1];
    assert_int_equal(r->error, 0);
    assert_int_equal(r->frames, 14);
    assert_int_equal(r->dropped, 4);
    x = read_wav(path, 14);
    for (uint64_t k = 0; k < 14; k++)
        assert_frame(x, k, k < 10 ? 100 + k : UINT64_MAX);
    free(x);
    media_tap_unref(t);
    fx_free(f);
}

static void test_max_frames(void **state)
{
    struct fx *f = fx_new(10000);
    char path[128];
    path_of(f, path, sizeof(path), "max.wav");
    struct media_tap *t = media_tap_create(100);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 30), 0);
    push(t, 7, 27);
    push(t, 37, 70); /* the gap counts towards the limit: 20 + 10 of silence */
    assert_true(wait_results(f, 1, 2000));
    const struct recorder_result *r = &f->res[0];
    assert_true(r->reached_max);
    assert_int_equal(r->error, 0);
    assert_int_equal(r->frames, 30);
    assert_int_equal(r->dropped, 10);
    assert_int_equal(r->duration_ms, 600);
    assert_false(media_tap_closed(t)); /* the recorder only reads it */
    short *x = read_wav(path, 30);
    assert_frame(x, 19, 26);
    assert_frame(x, 20, UINT64_MAX);
    assert_frame(x, 29, UINT64_MAX);
    free(x);
    recorder_close(f->r, ID_A); /* over already: nothing */
    run_for(f, 50);
    assert_int_equal(f->n_res, 1);
    media_tap_unref(t);
    fx_free(f);
}

/* header_interval_ms 50: while the recording runs, the header on disk describes the data. */
static void test_header_rewritten(void **state)
{
    struct fx *f = fx_new(50);
    char path[128];
    path_of(f, path, sizeof(path), "live.wav");
    struct media_tap *t = media_tap_create(100);
    assert_int_equal(recorder_open(f->r, ID_B, path, t, 0), 0);
    for (int round = 1; round <= 3; round++) {
        push(t, (uint64_t)(round - 1) * 25, (uint64_t)round * 25);
        run_for(f, 400);
        uint8_t h[WAV_HEADER_BYTES];
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        assert_int_equal(fread(h, 1, sizeof(h), fp), sizeof(h));
        fclose(fp);
        uint32_t data = (uint32_t)round * 25 * FRAME_BYTES;
        assert_int_equal(file_size(path), WAV_HEADER_BYTES + data);
        assert_int_equal(le32(h + 40), data);
        assert_int_equal(le32(h + 4), 36 + data);
        short *x = read_wav(path, round * 25); /* playable as it is */
        assert_frame(x, (size_t)round * 25 - 1, (uint64_t)round * 25 - 1);
        free(x);
    }
    assert_int_equal(f->n_res, 0);
    recorder_close(f->r, ID_B);
    recorder_close(f->r, ID_B); /* ending already: nothing */
    assert_true(wait_results(f, 1, 2000));
    assert_int_equal(f->res[0].frames, 75);
    assert_int_equal(f->res[0].error, 0);
    assert_false(f->res[0].reached_max);
    run_for(f, 50);
    assert_int_equal(f->n_res, 1);
    media_tap_unref(t);
    fx_free(f);
}

/* A file size limit in the middle of a frame: EFBIG, the half frame cut, the header right. */
static void test_write_failure(void **state)
{
    struct fx *f = fx_new(10000);
    char path[128];
    path_of(f, path, sizeof(path), "limited.wav");
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = WAV_HEADER_BYTES + 10 * FRAME_BYTES + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    struct media_tap *t = media_tap_create(100);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 0), 0);
    push(t, 0, 20);
    bool done = wait_results(f, 1, 2000);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_true(done);
    const struct recorder_result *r = &f->res[0];
    assert_int_equal(r->error, EFBIG);
    assert_string_equal(r->message, "write: File too large");
    assert_int_equal(r->frames, 10);
    assert_int_equal(r->bytes, WAV_HEADER_BYTES + 10 * FRAME_BYTES);
    assert_false(r->reached_max);
    assert_int_equal(file_size(path), WAV_HEADER_BYTES + 10 * FRAME_BYTES);
    short *x = read_wav(path, 10);
    for (uint64_t k = 0; k < 10; k++)
        assert_frame(x, k, k);
    free(x);
    assert_false(media_tap_closed(t));
    media_tap_unref(t);
    fx_free(f);
}

static void test_open_failure(void **state)
{
    struct fx *f = fx_new(10000);
    char path[160];
    path_of(f, path, sizeof(path), "no-such-dir/x.wav");
    struct media_tap *t = media_tap_create(10);
    assert_int_equal(recorder_open(f->r, ID_A, path, t, 0), 0);
    push(t, 0, 5);
    assert_true(wait_results(f, 1, 2000));
    const struct recorder_result *r = &f->res[0];
    assert_string_equal(r->id, ID_A);
    assert_int_equal(r->error, ENOENT);
    assert_string_equal(r->message, "open: No such file or directory");
    assert_int_equal(r->frames, 0);
    assert_int_equal(r->bytes, 0);
    assert_int_equal(recorder_open_count(f->r), 0);
    assert_int_equal(recorder_open(f->r, "not-an-id-but-a-name-longer-than-an-id-is", path, t, 0),
                     -1);
    media_tap_unref(t);
    fx_free(f);
}

/* Destroyed with two recordings open (one just opened): both are finished, their results given
 * before recorder_destroy() returns. */
static void test_destroy_finishes(void **state)
{
    struct fx *f = fx_new(10000);
    char pa[128], pb[128];
    path_of(f, pa, sizeof(pa), "d1.wav");
    path_of(f, pb, sizeof(pb), "d2.wav");
    struct media_tap *ta = media_tap_create(100), *tb = media_tap_create(100);
    assert_int_equal(recorder_open(f->r, ID_A, pa, ta, 0), 0);
    push(ta, 0, 12);
    run_for(f, 100);
    push(ta, 12, 20);
    assert_int_equal(recorder_open(f->r, ID_B, pb, tb, 0), 0);
    push(tb, 5, 9);
    recorder_destroy(f->r);
    f->r = NULL;
    assert_int_equal(f->n_res, 2);
    for (size_t i = 0; i < 2; i++) {
        const struct recorder_result *r = &f->res[i];
        bool a = strcmp(r->id, ID_A) == 0;
        assert_int_equal(r->error, 0);
        assert_int_equal(r->frames, a ? 20 : 4);
    }
    short *x = read_wav(pa, 20);
    assert_frame(x, 19, 19);
    free(x);
    x = read_wav(pb, 4);
    assert_frame(x, 0, 5);
    free(x);
    media_tap_unref(ta);
    media_tap_unref(tb);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_frames),     cmocka_unit_test(test_wideband_file),
        cmocka_unit_test(test_gaps_are_silence), cmocka_unit_test(test_max_frames),
        cmocka_unit_test(test_header_rewritten), cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_open_failure),     cmocka_unit_test(test_destroy_finishes),
    };
    return cmocka_run_group_tests_name("recorder", tests, NULL, NULL);
}
