/* Speech to text with its real threads. A recogniser of the test's own (through
 * stt_create_with(), the path production takes with pocketsphinx) shows what the collector
 * assembled and can be held busy: utterances cut at marks, a BEGIN inside one, tick gaps filled
 * with silence, a lost END found by tick and by clock, the length limit, close and a closed tap;
 * a full queue drops its oldest waiting utterance, reported STT_SKIPPED in the stream's order.
 * Then the real recognisers: pocketsphinx on sentences flite says at 8 kHz, and an HTTP server
 * (libmicrohttpd) speaking whisper.cpp's /inference, down, slow and answering badly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>

#include "core/mem.h"
#include "media/tap.h"
#include "speech/stt.h"
#include "speech/stt_internal.h"
#include "speech/tts.h"

#define MAX_RESULTS 64
#define MAX_CALLS 64
#define WAIT_MS 5000
#define TAP_FRAMES 2048
/* The fake recogniser's answers, chosen by an utterance's first sample. */
#define SAY_NOTHING 30001
#define SAY_FAIL 30002

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Every sample of the frame of tick k: never 0 (silence), recognisable in the utterance. */
static int16_t sample_of(uint64_t k)
{
    return (int16_t)(k % 20000 + 1);
}

static void push_frame(struct media_tap *t, uint64_t tick, uint8_t mark, int16_t value)
{
    int16_t pcm[MIX_FRAME];
    for (int i = 0; i < MIX_FRAME; i++)
        pcm[i] = value;
    assert_true(media_tap_push_marked(t, tick, pcm, mark));
}

/* Frames from..to (inclusive), BEGIN on the first and END on the last when asked. */
static void push_range(struct media_tap *t, uint64_t from, uint64_t to, bool begin, bool end)
{
    for (uint64_t k = from; k <= to; k++) {
        uint8_t mark = (uint8_t)((begin && k == from ? MEDIA_TAP_BEGIN : 0) |
                                 (end && k == to ? MEDIA_TAP_END : 0));
        push_frame(t, k, mark, sample_of(k));
    }
}

/* ---- the test's recogniser ---- */

struct call {
    char stream_id[ID_LEN + 1];
    char language[16];
    size_t n;
    int rate;
    int16_t *pcm;
};

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_closed; /* recognise() waits while set */
    int entered;      /* recognise() calls begun */
    int opened;
    bool fail_open; /* open() refuses: "the model is broken" */
    struct call calls[MAX_CALLS];
    int n_calls;
};

static struct fake fake = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

struct fake_thread {
    const atomic_bool *stop;
};

static void *fake_open(void *shared, size_t max_samples, const atomic_bool *stop, char *err,
                       size_t errlen)
{
    (void)shared;
    (void)max_samples;
    (void)err;
    (void)errlen;
    pthread_mutex_lock(&fake.mu);
    fake.opened++;
    bool fail = fake.fail_open;
    pthread_mutex_unlock(&fake.mu);
    if (fail) {
        snprintf(err, errlen, "the model is broken");
        return NULL;
    }
    struct fake_thread *t = xcalloc(1, sizeof(*t));
    t->stop = stop;
    return t;
}

/* Says what it was given: "n=<frames> first=<value of the first frame> last=<of the last>". */
static int fake_recognise(void *state, const struct stt_audio *a, struct stt_answer *out)
{
    struct fake_thread *t = state;
    pthread_mutex_lock(&fake.mu);
    if (fake.n_calls < MAX_CALLS) {
        struct call *c = &fake.calls[fake.n_calls++];
        str_copy(c->stream_id, sizeof(c->stream_id), a->stream_id);
        str_copy(c->language, sizeof(c->language), a->language);
        c->n = a->n;
        c->rate = a->rate;
        c->pcm = xmalloc(a->n * sizeof(int16_t));
        memcpy(c->pcm, a->pcm, a->n * sizeof(int16_t));
    }
    fake.entered++;
    pthread_cond_broadcast(&fake.cv);
    while (fake.gate_closed && !atomic_load(t->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&fake.cv, &fake.mu, &ts);
    }
    pthread_mutex_unlock(&fake.mu);
    if (a->pcm[0] == SAY_FAIL) {
        snprintf(out->error, sizeof(out->error), "the fake recogniser fails on request");
        return -1;
    }
    if (a->pcm[0] != SAY_NOTHING)
        snprintf(out->text, sizeof(out->text), "  n=%zu first=%d last=%d\n", a->n / MIX_FRAME,
                 a->pcm[0], a->pcm[a->n - 1]);
    out->confidence = 0.5;
    return 0;
}

static void fake_close(void *state)
{
    free(state);
}

static const struct stt_backend fake_backend = {
    .name = "fake", .open = fake_open, .recognise = fake_recognise, .close = fake_close};

static void fake_reset(void)
{
    pthread_mutex_lock(&fake.mu);
    for (int i = 0; i < fake.n_calls; i++)
        free(fake.calls[i].pcm);
    fake.n_calls = 0;
    fake.entered = 0;
    fake.opened = 0;
    fake.fail_open = false;
    fake.gate_closed = false;
    pthread_mutex_unlock(&fake.mu);
}

static void fake_gate(bool closed)
{
    pthread_mutex_lock(&fake.mu);
    fake.gate_closed = closed;
    pthread_cond_broadcast(&fake.cv);
    pthread_mutex_unlock(&fake.mu);
}

static int fake_entered(void)
{
    pthread_mutex_lock(&fake.mu);
    int n = fake.entered;
    pthread_mutex_unlock(&fake.mu);
    return n;
}

/* ---- the fixture ---- */

struct got {
    char id[ID_LEN + 1];
    enum stt_kind kind;
    char text[STT_TEXT_MAX + 1];
    double confidence;
    uint64_t begin_tick, end_tick;
    char error[STT_ERROR_MAX];
};

struct fx {
    uv_loop_t loop;
    struct stt *s;
    struct got res[MAX_RESULTS];
    size_t n_res;
    bool destroy_on_result;
};

static void on_result(void *ctx, const struct stt_result *r)
{
    struct fx *f = ctx;
    assert_true(f->n_res < MAX_RESULTS);
    struct got *g = &f->res[f->n_res++];
    str_copy(g->id, sizeof(g->id), r->stream_id);
    g->kind = r->kind;
    str_copy(g->text, sizeof(g->text), r->text);
    g->confidence = r->confidence;
    g->begin_tick = r->begin_tick;
    g->end_tick = r->end_tick;
    str_copy(g->error, sizeof(g->error), r->error);
    if (r->kind == STT_TRANSCRIPT)
        assert_true(r->text[0] != '\0');
    if (f->destroy_on_result) {
        stt_destroy(f->s);
        f->s = NULL;
    }
}

static struct stt_config fake_config(int threads, int queue_max, int max_utterance_ms)
{
    struct stt_config cfg;
    stt_config_defaults(&cfg);
    cfg.threads = threads;
    cfg.queue_max = queue_max;
    cfg.max_utterance_ms = max_utterance_ms;
    return cfg;
}

static struct fx *fx_new(const struct stt_config *cfg)
{
    fake_reset();
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char err[512] = "";
    f->s = stt_create_with(&f->loop, cfg, &fake_backend, NULL, on_result, f, err, sizeof(err));
    if (!f->s)
        fail_msg("stt_create_with: %s", err);
    return f;
}

static void fx_free(struct fx *f)
{
    stt_destroy(f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns: the handles close */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    fake_reset();
}

static bool wait_results(struct fx *f, size_t n, int ms)
{
    int64_t end = now_ms() + ms;
    while (f->n_res < n && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        sleep_ms(2);
    }
    return f->n_res >= n;
}

static void run_for(struct fx *f, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        sleep_ms(2);
    }
}

static struct media_tap *open_stream(struct fx *f, const char *id, const char *language)
{
    struct media_tap *t = media_tap_create(TAP_FRAMES);
    char err[256];
    if (stt_stream_open(f->s, id, t, language, err, sizeof(err)) != 0)
        fail_msg("stt_stream_open %s: %s", id, err);
    return t;
}

static void expect(const struct got *g, const char *id, enum stt_kind kind, uint64_t begin,
                   uint64_t end)
{
    if (strcmp(g->id, id) != 0 || g->kind != kind || g->begin_tick != begin || g->end_tick != end)
        fail_msg("got %s kind %d ticks %llu..%llu \"%s\", want %s kind %d ticks %llu..%llu", g->id,
                 g->kind, (unsigned long long)g->begin_tick, (unsigned long long)g->end_tick,
                 g->text, id, kind, (unsigned long long)begin, (unsigned long long)end);
}

static void expect_text(const struct got *g, size_t frames, uint64_t first_tick, uint64_t last_tick)
{
    char want[128];
    snprintf(want, sizeof(want), "n=%zu first=%d last=%d", frames, sample_of(first_tick),
             sample_of(last_tick));
    assert_string_equal(g->text, want); /* trimmed: the fake pads it with blanks */
}

/* ---- settings and opening ---- */

static void expect_refused(struct stt_config *cfg, const char *words)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[512] = "";
    struct stt *s = stt_create(&loop, cfg, on_result, NULL, err, sizeof(err));
    assert_null(s);
    if (!strstr(err, words))
        fail_msg("message \"%s\" does not say \"%s\"", err, words);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0); /* nothing left to close */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_settings_refused(void **state)
{
    (void)state;
    struct stt_config cfg;
    stt_config_defaults(&cfg);
    assert_int_equal(cfg.threads, 2);
    assert_int_equal(cfg.queue_max, 16);
    assert_int_equal(cfg.http_timeout_ms, 30000);
    assert_int_equal(cfg.max_utterance_ms, 15000);

    cfg.queue_max = 0;
    expect_refused(&cfg, "stt_queue");
    stt_config_defaults(&cfg);
    cfg.threads = STT_THREADS_MAX + 1;
    expect_refused(&cfg, "stt_workers");
    stt_config_defaults(&cfg);
    cfg.max_utterance_ms = 100;
    expect_refused(&cfg, "stt_max_utterance_ms");
    stt_config_defaults(&cfg);
    cfg.threads = 0;
    expect_refused(&cfg, "no speech recogniser");
    stt_config_defaults(&cfg);
    cfg.http_url = "ftp://example.com/x";
    cfg.http_languages = "de-DE";
    expect_refused(&cfg, "stt_url");
    stt_config_defaults(&cfg);
    cfg.http_url = "http://127.0.0.1:8080/inference";
    expect_refused(&cfg, "stt_languages is empty");
    cfg.http_languages = "de-DE,not a tag!";
    expect_refused(&cfg, "is not a language tag");
    cfg.http_languages = "de-DE";
    cfg.http_timeout_ms = 10;
    expect_refused(&cfg, "stt_timeout_ms");
    stt_config_defaults(&cfg);
    cfg.http_languages = "de-DE";
    expect_refused(&cfg, "stt_url is not");
    stt_config_defaults(&cfg);
    cfg.threads = 1;
    cfg.model_dir = "/nonexistent/model";
    expect_refused(&cfg, "the speech model is missing: /nonexistent/model/en-us");
    expect_refused(&cfg, "pocketsphinx-en-us");
}

static void test_open_refused(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 4, 15000);
    struct fx *f = fx_new(&cfg);
    assert_true(stt_language_supported(f->s, "en-US"));
    assert_true(stt_language_supported(f->s, "en-us"));
    assert_false(stt_language_supported(f->s, "de-DE"));
    assert_false(stt_language_supported(f->s, NULL));
    assert_string_equal(stt_languages(f->s), "en-US");
    struct media_tap *t = media_tap_create(16);
    char err[256] = "";
    assert_int_equal(stt_stream_open(f->s, "a", t, "de-DE", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unsupported transcription language \"de-DE\" (supported: en-US)"));
    assert_int_equal(stt_stream_open(f->s, "a", t, "en-US", err, sizeof(err)), 0);
    assert_int_equal(stt_stream_open(f->s, "a", t, "en-US", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already open"));
    char long_id[ID_LEN + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[ID_LEN + 1] = '\0';
    assert_int_equal(stt_stream_open(f->s, long_id, t, "en-US", err, sizeof(err)), -1);
    assert_int_equal(stt_stream_count(f->s), 1);
    stt_stream_close(f->s, "a");
    stt_stream_close(f->s, "a"); /* already closing: nothing */
    stt_stream_close(f->s, "never-opened");
    assert_true(wait_results(f, 1, WAIT_MS));
    expect(&f->res[0], "a", STT_CLOSED, 0, 0);
    assert_int_equal(stt_stream_count(f->s), 0);
    /* the id can be used again once its STT_CLOSED is delivered */
    assert_int_equal(stt_stream_open(f->s, "a", t, "en-US", err, sizeof(err)), 0);
    media_tap_unref(t);
    fx_free(f); /* with the stream still open: its tap reference is released */
}

/* Every length resamples to twice as many samples, and the signal survives: lengths that are a
 * whole number of the resampler's chunks (1,024 samples) once failed at the end. */
static void test_resample_lengths(void **state)
{
    (void)state;
    char err[256];
    struct stt_resampler *r = stt_resampler_create(8000, err, sizeof(err));
    assert_non_null(r);
    static int16_t in[8000];
    for (size_t i = 0; i < 8000; i++)
        in[i] = (int16_t)(8000 * sin(2 * M_PI * 500 * (double)i / 8000));
    const size_t lens[] = {160, 1023, 1024, 1025, 2048, 5120, 8000};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t n = 0;
        const int16_t *out = stt_resample(r, in, lens[k], &n, err, sizeof(err));
        if (!out)
            fail_msg("%zu samples: %s", lens[k], err);
        assert_true(n + 4 >= 2 * lens[k] && n <= 2 * lens[k] + 4);
        double e = 0;
        for (size_t i = n / 4; i < 3 * n / 4; i++)
            e += (double)out[i] * out[i];
        e /= (double)(n / 2);
        assert_true(e > 0.8 * 8000.0 * 8000 / 2 && e < 1.2 * 8000.0 * 8000 / 2);
    }
    stt_resampler_destroy(r);
}

/* ---- G.711's noise ---- */

/* A voiced sound's shape: harmonics of 150 Hz falling 12 dB an octave to 2.9 kHz, under a
 * swelling and fading envelope, as loud as speech on a phone. */
static void voiced(int16_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / STT_RATE, v = 0;
        for (int k = 1; k < 20; k++)
            v += sin(2 * M_PI * 150 * k * t + k * k * 0.7) / (k * k);
        double env = sin(M_PI * (double)i / (double)n);
        x[i] = (int16_t)(9000 * env * v);
    }
}

static uint8_t code_of(int law, int16_t v)
{
    return law == STT_LAW_ULAW ? linear_to_ulaw(v) : linear_to_alaw(v);
}

static int16_t level_of(int law, uint8_t c)
{
    return law == STT_LAW_ULAW ? ulaw_to_linear(c) : alaw_to_linear(c);
}

/* Which law an utterance's samples are levels of: either law, or neither for linear audio and
 * for silence. */
static void test_g711_law(void **state)
{
    (void)state;
    enum { N = 8000 };
    static int16_t x[N], y[N];
    voiced(x, N);
    assert_int_equal(stt_g711_law(x, N), STT_LAW_NONE);
    for (int law = STT_LAW_ULAW; law <= STT_LAW_ALAW; law++) {
        for (size_t i = 0; i < N; i++)
            y[i] = level_of(law, code_of(law, x[i]));
        assert_int_equal(stt_g711_law(y, N), law);
        /* a few samples off the levels (concealment, a mix) are still that law */
        for (size_t i = 0; i < N; i += 100)
            y[i] = x[i];
        assert_int_equal(stt_g711_law(y, N), law);
    }
    memset(y, 0, sizeof(y));
    assert_int_equal(stt_g711_law(y, N), STT_LAW_NONE);
}

/* The cleaned signal is closer to what the speaker said than the codec's levels are, and every
 * sample is still inside the interval its level stands for (it codes to the same byte). Linear
 * audio is handed back as it is. */
static void test_g711_clean(void **state)
{
    (void)state;
    enum { N = 12000 };
    static int16_t x[N], y[N];
    char err[256];
    struct stt_g711 *g = stt_g711_create(N, err, sizeof(err));
    if (!g)
        fail_msg("stt_g711_create: %s", err);
    voiced(x, N);
    assert_ptr_equal(stt_g711_clean(g, STT_LAW_NONE, x, N), x);
    assert_ptr_equal(stt_g711_clean(g, STT_LAW_ULAW, x, N + 1), x); /* too long: as it is */
    for (int law = STT_LAW_ULAW; law <= STT_LAW_ALAW; law++) {
        for (size_t i = 0; i < N; i++)
            y[i] = level_of(law, code_of(law, x[i]));
        const int16_t *z = stt_g711_clean(g, law, y, N);
        double coded = 0, cleaned = 0;
        for (size_t i = 0; i < N; i++) {
            assert_int_equal(code_of(law, z[i]), code_of(law, y[i]));
            coded += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            cleaned += ((double)z[i] - x[i]) * ((double)z[i] - x[i]);
        }
        double gain_db = 10 * log10(coded / cleaned);
        print_message("g711 law %d: noise %.1f dB lower after cleaning\n", law, gain_db);
        assert_true(gain_db > 1.5);
    }
    stt_g711_destroy(g);
}

static int fake_opened(void)
{
    pthread_mutex_lock(&fake.mu);
    int n = fake.opened;
    pthread_mutex_unlock(&fake.mu);
    return n;
}

/* The decoders load when the first stream opens, not at create; one that cannot load fails
 * each utterance it is given with the reason, and the stream still ends. */
static void test_decoders_load_late(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(2, 4, 15000);
    struct fx *f = fx_new(&cfg);
    usleep(100 * 1000);
    assert_int_equal(fake_opened(), 0);
    pthread_mutex_lock(&fake.mu);
    fake.fail_open = true;
    pthread_mutex_unlock(&fake.mu);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    push_range(t, 100, 109, true, true);
    push_range(t, 120, 129, true, true);
    assert_true(wait_results(f, 2, WAIT_MS));
    assert_int_equal(fake_opened(), 2);
    expect(&f->res[0], "s1", STT_FAILED, 100, 109);
    assert_string_equal(f->res[0].error, "the model is broken");
    expect(&f->res[1], "s1", STT_FAILED, 120, 129);
    stt_stream_close(f->s, "s1");
    assert_true(wait_results(f, 3, WAIT_MS));
    expect(&f->res[2], "s1", STT_CLOSED, 0, 0);
    struct media_tap *t2 = open_stream(f, "s2", "en-US"); /* no second load */
    stt_stream_close(f->s, "s2");
    assert_true(wait_results(f, 4, WAIT_MS));
    assert_int_equal(fake_opened(), 2);
    media_tap_unref(t);
    media_tap_unref(t2);
    fx_free(f);
}

static void test_languages_with_http(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 4, 15000);
    cfg.http_url = "http://127.0.0.1:9/inference";
    cfg.http_languages = "de-DE, fr-FR,de-de";
    struct fx *f = fx_new(&cfg);
    assert_string_equal(stt_languages(f->s), "en-US, de-DE, fr-FR");
    assert_true(stt_language_supported(f->s, "fr-fr"));
    assert_false(stt_language_supported(f->s, "fr"));
    fx_free(f);
}

/* ---- assembly ---- */

static void test_assembly_marks(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    push_range(t, 100, 109, true, true);                                 /* a whole utterance */
    push_frame(t, 120, MEDIA_TAP_BEGIN | MEDIA_TAP_END, sample_of(120)); /* one frame */
    push_range(t, 130, 139, true, false);                                /* its END lost ... */
    push_range(t, 140, 144, true, true);  /* ... seen at the next BEGIN */
    push_range(t, 150, 152, false, true); /* a lost BEGIN: it starts one anyway */
    assert_true(wait_results(f, 5, WAIT_MS));
    expect(&f->res[0], "s1", STT_TRANSCRIPT, 100, 109);
    expect_text(&f->res[0], 10, 100, 109);
    assert_true(f->res[0].confidence == 0.5);
    expect(&f->res[1], "s1", STT_TRANSCRIPT, 120, 120);
    expect_text(&f->res[1], 1, 120, 120);
    expect(&f->res[2], "s1", STT_TRANSCRIPT, 130, 139);
    expect_text(&f->res[2], 10, 130, 139);
    expect(&f->res[3], "s1", STT_TRANSCRIPT, 140, 144);
    expect(&f->res[4], "s1", STT_TRANSCRIPT, 150, 152);
    assert_string_equal(fake.calls[0].language, "en-US");
    stt_stream_close(f->s, "s1");
    assert_true(wait_results(f, 6, WAIT_MS));
    expect(&f->res[5], "s1", STT_CLOSED, 0, 0);
    struct stt_stats st;
    stt_stats(f->s, &st);
    assert_int_equal(st.utterances, 5);
    assert_int_equal(st.recognised, 5);
    assert_true(st.audio_s > 0.579 && st.audio_s < 0.581); /* 29 frames */
    media_tap_unref(t);
    fx_free(f);
}

static void test_assembly_gaps(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    /* 205..209 dropped by a full ring: silence in their place */
    push_range(t, 200, 204, true, false);
    push_range(t, 210, 214, false, true);
    /* a gap over a second (51 ticks) without END or BEGIN: two utterances */
    push_range(t, 300, 304, true, false);
    push_range(t, 356, 358, false, true);
    /* exactly a second (50 ticks): still one, with 49 frames of silence */
    push_range(t, 400, 401, true, false);
    push_range(t, 451, 451, false, true);
    assert_true(wait_results(f, 4, WAIT_MS));
    expect(&f->res[0], "s1", STT_TRANSCRIPT, 200, 214);
    expect_text(&f->res[0], 15, 200, 214);
    expect(&f->res[1], "s1", STT_TRANSCRIPT, 300, 304);
    expect(&f->res[2], "s1", STT_TRANSCRIPT, 356, 358);
    expect(&f->res[3], "s1", STT_TRANSCRIPT, 400, 451);
    expect_text(&f->res[3], 52, 400, 451);
    const struct call *c = &fake.calls[0];
    assert_int_equal(c->n, 15 * MIX_FRAME);
    for (size_t i = 0; i < c->n; i++) {
        uint64_t tick = 200 + i / MIX_FRAME;
        int16_t want = tick >= 205 && tick <= 209 ? 0 : sample_of(tick);
        if (c->pcm[i] != want)
            fail_msg("sample %zu (tick %llu) is %d, want %d", i, (unsigned long long)tick,
                     c->pcm[i], want);
    }
    media_tap_unref(t);
    fx_free(f);
}

static void test_lost_end_by_clock(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    push_range(t, 10, 14, true, false); /* no END, and nothing after it */
    run_for(f, 700);
    assert_int_equal(f->n_res, 0); /* not yet: under a second */
    assert_true(wait_results(f, 1, WAIT_MS));
    expect(&f->res[0], "s1", STT_TRANSCRIPT, 10, 14);
    assert_int_equal(stt_stream_count(f->s), 1); /* the stream goes on */
    media_tap_unref(t);
    fx_free(f);
}

static void test_max_length_cut(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 1000); /* 50 frames */
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    push_range(t, 0, 119, true, true);
    assert_true(wait_results(f, 3, WAIT_MS));
    expect(&f->res[0], "s1", STT_TRANSCRIPT, 0, 49);
    expect_text(&f->res[0], 50, 0, 49);
    expect(&f->res[1], "s1", STT_TRANSCRIPT, 50, 99);
    expect_text(&f->res[1], 50, 50, 99);
    expect(&f->res[2], "s1", STT_TRANSCRIPT, 100, 119);
    expect_text(&f->res[2], 20, 100, 119);
    media_tap_unref(t);
    fx_free(f);
}

/* A 16 kHz tap's utterances reach the recogniser at 16 kHz, cut at max_utterance_ms in frames
 * as at 8 kHz. */
static void test_wideband_stream(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 1000); /* 50 frames */
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = media_tap_create_rate(TAP_FRAMES, 16000);
    char err[256];
    assert_int_equal(stt_stream_open(f->s, "w", t, "en-US", err, sizeof(err)), 0);
    int16_t pcm[MIX_FRAME_WB];
    for (uint64_t k = 0; k < 60; k++) {
        for (int i = 0; i < MIX_FRAME_WB; i++)
            pcm[i] = sample_of(k);
        uint8_t mark = (uint8_t)((k == 0 ? MEDIA_TAP_BEGIN : 0) | (k == 59 ? MEDIA_TAP_END : 0));
        assert_true(media_tap_push_marked(t, k, pcm, mark));
    }
    assert_true(wait_results(f, 2, WAIT_MS));
    expect(&f->res[0], "w", STT_TRANSCRIPT, 0, 49);
    expect(&f->res[1], "w", STT_TRANSCRIPT, 50, 59);
    pthread_mutex_lock(&fake.mu);
    assert_int_equal(fake.n_calls, 2);
    assert_int_equal(fake.calls[0].rate, 16000);
    assert_int_equal(fake.calls[0].n, 50 * MIX_FRAME_WB);
    assert_int_equal(fake.calls[1].n, 10 * MIX_FRAME_WB);
    assert_int_equal(fake.calls[1].pcm[10 * MIX_FRAME_WB - 1], sample_of(59));
    pthread_mutex_unlock(&fake.mu);
    struct stt_stats st;
    stt_stats(f->s, &st);
    assert_true(st.audio_s > 1.199 && st.audio_s < 1.201);
    media_tap_unref(t);
    fx_free(f);
}

static void test_close_mid_utterance(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    fake_gate(true); /* its recognition is slow: STT_CLOSED must still come after it */
    push_range(t, 0, 9, true, true);
    push_range(t, 20, 31, true, false); /* in progress at the close */
    stt_stream_close(f->s, "s1");
    run_for(f, 200);
    assert_int_equal(f->n_res, 0);
    fake_gate(false);
    assert_true(wait_results(f, 3, WAIT_MS));
    expect(&f->res[0], "s1", STT_TRANSCRIPT, 0, 9);
    expect(&f->res[1], "s1", STT_TRANSCRIPT, 20, 31);
    expect_text(&f->res[1], 12, 20, 31);
    expect(&f->res[2], "s1", STT_CLOSED, 0, 0);
    run_for(f, 100);
    assert_int_equal(f->n_res, 3);
    assert_int_equal(stt_stream_count(f->s), 0);
    media_tap_unref(t);
    fx_free(f);
}

static void test_tap_closed(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    push_range(t, 0, 4, true, false);
    media_tap_close(t); /* the participant left: the stream ends by itself */
    assert_true(wait_results(f, 2, WAIT_MS));
    expect(&f->res[0], "s1", STT_TRANSCRIPT, 0, 4);
    expect(&f->res[1], "s1", STT_CLOSED, 0, 0);
    stt_stream_close(f->s, "s1"); /* gone: nothing */
    media_tap_unref(t);
    fx_free(f);
}

static void test_empty_and_failed(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 16, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *t = open_stream(f, "s1", "en-US");
    push_frame(t, 0, MEDIA_TAP_BEGIN | MEDIA_TAP_END, SAY_NOTHING);
    push_frame(t, 10, MEDIA_TAP_BEGIN | MEDIA_TAP_END, SAY_FAIL);
    push_range(t, 20, 21, true, true);
    stt_stream_close(f->s, "s1");
    assert_true(wait_results(f, 3, WAIT_MS));
    expect(&f->res[0], "s1", STT_FAILED, 10, 10);
    assert_string_equal(f->res[0].error, "the fake recogniser fails on request");
    assert_string_equal(f->res[0].text, "");
    expect(&f->res[1], "s1", STT_TRANSCRIPT, 20, 21);
    expect(&f->res[2], "s1", STT_CLOSED, 0, 0);
    struct stt_stats st;
    stt_stats(f->s, &st);
    assert_int_equal(st.utterances, 3);
    assert_int_equal(st.empty, 1);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.recognised, 1);
    media_tap_unref(t);
    fx_free(f);
}

/* ---- the queue ---- */

static void wait_utterances(struct fx *f, uint64_t n)
{
    int64_t end = now_ms() + WAIT_MS;
    struct stt_stats st;
    do {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        stt_stats(f->s, &st);
        if (st.utterances >= n)
            return;
        sleep_ms(2);
    } while (now_ms() < end);
    fail_msg("%llu utterances assembled, want %llu", (unsigned long long)st.utterances,
             (unsigned long long)n);
}

static void wait_entered(int n)
{
    int64_t end = now_ms() + WAIT_MS;
    while (fake_entered() < n && now_ms() < end)
        sleep_ms(2);
    assert_int_equal(fake_entered(), n);
}

static void test_queue_drops_oldest(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 2, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *a = open_stream(f, "A", "en-US");
    struct media_tap *b = open_stream(f, "B", "en-US");
    fake_gate(true);
    push_range(a, 0, 4, true, true); /* A1: taken by the one thread, held there */
    wait_entered(1);
    push_range(b, 10, 14, true, true); /* B1 waits: [B1] */
    wait_utterances(f, 2);
    push_range(a, 20, 24, true, true); /* A2: [B1 A2] */
    wait_utterances(f, 3);
    push_range(b, 30, 34, true, true); /* B2: B1 dropped, [A2 B2] */
    wait_utterances(f, 4);
    push_range(a, 40, 44, true, true); /* A3: A2 dropped, [B2 A3] */
    wait_utterances(f, 5);
    struct stt_stats st;
    stt_stats(f->s, &st);
    assert_int_equal(st.skipped, 2);
    /* B1's STT_SKIPPED comes at once; A2's waits for A1, still being recognised */
    assert_true(wait_results(f, 1, WAIT_MS));
    run_for(f, 100);
    assert_int_equal(f->n_res, 1);
    expect(&f->res[0], "B", STT_SKIPPED, 10, 14);
    fake_gate(false);
    stt_stream_close(f->s, "A");
    stt_stream_close(f->s, "B");
    assert_true(wait_results(f, 7, WAIT_MS));
    run_for(f, 100);
    assert_int_equal(f->n_res, 7);
    /* each stream's results in the order of its utterances, STT_CLOSED last */
    const struct got *ra[4], *rb[3];
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < f->n_res; i++) {
        if (!strcmp(f->res[i].id, "A") && na < 4)
            ra[na++] = &f->res[i];
        else if (!strcmp(f->res[i].id, "B") && nb < 3)
            rb[nb++] = &f->res[i];
    }
    assert_int_equal(na, 4);
    assert_int_equal(nb, 3);
    expect(ra[0], "A", STT_TRANSCRIPT, 0, 4);
    expect(ra[1], "A", STT_SKIPPED, 20, 24);
    expect(ra[2], "A", STT_TRANSCRIPT, 40, 44);
    expect(ra[3], "A", STT_CLOSED, 0, 0);
    expect(rb[0], "B", STT_SKIPPED, 10, 14);
    expect(rb[1], "B", STT_TRANSCRIPT, 30, 34);
    expect(rb[2], "B", STT_CLOSED, 0, 0);
    /* the newest were recognised, in the order they were queued */
    assert_int_equal(fake.n_calls, 3);
    assert_string_equal(fake.calls[1].stream_id, "B");
    assert_int_equal(fake.calls[1].pcm[0], sample_of(30));
    assert_string_equal(fake.calls[2].stream_id, "A");
    assert_int_equal(fake.calls[2].pcm[0], sample_of(40));
    stt_stats(f->s, &st);
    assert_int_equal(st.utterances, 5);
    assert_int_equal(st.skipped, 2);
    assert_int_equal(st.recognised, 3);
    media_tap_unref(a);
    media_tap_unref(b);
    fx_free(f);
}

/* With two threads, a stream's second utterance waits for its first (results in order, and one
 * talkative stream cannot take every thread); another stream's goes to the free thread. */
static void test_one_thread_per_stream(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(2, 8, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *a = open_stream(f, "A", "en-US");
    struct media_tap *b = open_stream(f, "B", "en-US");
    fake_gate(true);
    push_range(a, 0, 4, true, true);
    wait_entered(1);
    push_range(a, 10, 14, true, true);
    wait_utterances(f, 2);
    sleep_ms(100);
    assert_int_equal(fake_entered(), 1); /* A's second waits */
    push_range(b, 20, 24, true, true);
    wait_entered(2); /* B's takes the second thread */
    fake_gate(false);
    assert_true(wait_results(f, 3, WAIT_MS));
    size_t first_a = 99, second_a = 99;
    for (size_t i = 0; i < 3; i++)
        if (f->res[i].begin_tick == 0)
            first_a = i;
        else if (f->res[i].begin_tick == 10)
            second_a = i;
    assert_true(first_a < second_a && second_a < 3);
    media_tap_unref(a);
    media_tap_unref(b);
    fx_free(f);
}

static void test_destroy_with_work_pending(void **state)
{
    (void)state;
    struct stt_config cfg = fake_config(1, 4, 15000);
    struct fx *f = fx_new(&cfg);
    struct media_tap *a = open_stream(f, "A", "en-US");
    fake_gate(true);
    push_range(a, 0, 4, true, true);
    wait_entered(1);
    push_range(a, 10, 14, true, true);
    push_range(a, 20, 24, true, false); /* being assembled */
    wait_utterances(f, 2);
    /* destroyed from inside a callback of another stream's result */
    struct media_tap *b = open_stream(f, "B", "en-US");
    stt_stream_close(f->s, "B");
    f->destroy_on_result = true;
    assert_true(wait_results(f, 1, WAIT_MS));
    expect(&f->res[0], "B", STT_CLOSED, 0, 0);
    assert_null(f->s);
    run_for(f, 100);
    assert_int_equal(f->n_res, 1);
    media_tap_unref(a);
    media_tap_unref(b);
    fx_free(f);
}

/* ---- pocketsphinx ---- */

/* The real recogniser on one thread, its results collected in f. */
static struct fx *sphinx_fx(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct stt_config cfg;
    stt_config_defaults(&cfg);
    cfg.threads = 1;
    char err[512] = "";
    f->s = stt_create(&f->loop, &cfg, on_result, f, err, sizeof(err));
    if (!f->s)
        fail_msg("stt_create: %s", err);
    return f;
}

static void sphinx_fx_free(struct fx *f)
{
    stt_destroy(f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p++)
        if ((p == text || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

static void push_speech(struct media_tap *t, uint64_t first_tick, const int16_t *s, size_t n)
{
    size_t frames = (n + MIX_FRAME - 1) / MIX_FRAME;
    for (size_t k = 0; k < frames; k++) {
        int16_t pcm[MIX_FRAME] = {0};
        size_t have = n - k * MIX_FRAME < MIX_FRAME ? n - k * MIX_FRAME : MIX_FRAME;
        memcpy(pcm, s + k * MIX_FRAME, have * sizeof(int16_t));
        uint8_t mark =
            (uint8_t)((k == 0 ? MEDIA_TAP_BEGIN : 0) | (k + 1 == frames ? MEDIA_TAP_END : 0));
        assert_true(media_tap_push_marked(t, first_tick + k, pcm, mark));
    }
}

static void test_pocketsphinx(void **state)
{
    (void)state;
    static const struct {
        const char *said;
        const char *words[4];
    } sentences[] = {
        {"Please call me back tomorrow about the budget meeting.",
         {"call", "tomorrow", "budget", "meeting"}},
        {"We should buy a new computer for the office.", {"buy", "computer", "office", "new"}},
    };
    struct fx *f = sphinx_fx();
    struct media_tap *t = open_stream(f, "s1", "en-us");
    uint64_t tick = 1000;
    for (size_t i = 0; i < 2; i++) {
        int16_t *s = NULL;
        size_t n = 0;
        assert_int_equal(tts_render_sync(sentences[i].said, &s, &n), 0);
        push_speech(t, tick, s, n);
        tick += (n + MIX_FRAME - 1) / MIX_FRAME + 100;
        free(s);
    }
    assert_true(wait_results(f, 2, 30000));
    for (size_t i = 0; i < 2; i++) {
        const struct got *g = &f->res[i];
        assert_int_equal(g->kind, STT_TRANSCRIPT);
        int hits = 0;
        for (size_t w = 0; w < 4; w++)
            hits += has_word(g->text, sentences[i].words[w]);
        print_message("pocketsphinx: \"%s\" -> \"%s\" (confidence %.2f, %d of 4 key words)\n",
                      sentences[i].said, g->text, g->confidence, hits);
        /* telephone audio, open vocabulary: some words are lost, most are not */
        assert_true(hits >= 2);
        assert_true(g->confidence >= 0 && g->confidence <= 1);
    }
    struct stt_stats st;
    stt_stats(f->s, &st);
    print_message("pocketsphinx: %.1f s of speech in %.2f s: real-time factor %.2f\n", st.audio_s,
                  st.busy_s, st.busy_s / st.audio_s);
    media_tap_unref(t);
    sphinx_fx_free(f);
}

/* An utterance's words depend on its audio only, not on what the decoder heard before: the same
 * sentences (through G.711, as a phone sends them) decoded in one order and then in the other
 * give the same words. pocketsphinx's own dither (one random generator for the process) and the
 * noise level and cepstral mean it carries from one utterance to the next made them differ. */
static void test_pocketsphinx_order(void **state)
{
    (void)state;
    static const char *said[] = {
        "the weather today is sunny and warm",    "please send the report to the office",
        "we will meet again next tuesday",        "the train leaves the station at noon",
        "the price of bread went up again",       "the river runs through the old town",
        "the dog sleeps under the kitchen table", "please speak a little slower",
    };
    enum { K = sizeof(said) / sizeof(said[0]) };
    struct fx *f = sphinx_fx();
    struct media_tap *t = open_stream(f, "s1", "en-us");
    int16_t *pcm[K];
    size_t len[K];
    for (size_t i = 0; i < K; i++) {
        assert_int_equal(tts_render_sync(said[i], &pcm[i], &len[i]), 0);
        for (size_t j = 0; j < len[i]; j++)
            pcm[i][j] = ulaw_to_linear(linear_to_ulaw(pcm[i][j]));
    }
    uint64_t tick = 1000;
    for (size_t r = 0; r < 2 * K; r++) {
        size_t i = r < K ? r : 2 * K - 1 - r; /* 0 1 ... 7, then 7 6 ... 0 */
        push_speech(t, tick, pcm[i], len[i]);
        tick += (len[i] + MIX_FRAME - 1) / MIX_FRAME + 100;
    }
    assert_true(wait_results(f, 2 * K, 60000));
    for (size_t i = 0; i < K; i++) {
        const struct got *a = &f->res[i], *b = &f->res[2 * K - 1 - i];
        assert_int_equal(a->kind, STT_TRANSCRIPT);
        assert_int_equal(b->kind, STT_TRANSCRIPT);
        print_message("pocketsphinx order: \"%s\" -> \"%s\" / \"%s\"\n", said[i], a->text, b->text);
        assert_string_equal(a->text, b->text);
        free(pcm[i]);
    }
    media_tap_unref(t);
    sphinx_fx_free(f);
}

/* ---- the HTTP recogniser ---- */

enum server_mode { ANSWER_TEXT, ANSWER_SLOW, ANSWER_500, ANSWER_NOT_JSON, ANSWER_BLANK };

struct server {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    enum server_mode mode;
    int delay_ms;
    int requests, in_flight, max_in_flight;
    /* the last request's fields */
    char url[64], language[32], response_format[32], temperature[16], filename[64], ctype[64];
    char problem[160]; /* what was wrong with the last request, if anything */
    size_t wav_samples;
};

static struct server srv;

struct upload {
    struct MHD_PostProcessor *pp;
    uint8_t *file;
    size_t file_len;
    char language[32], response_format[32], temperature[16], filename[64], ctype[64];
};

static void field_copy(char *dst, size_t cap, size_t off, const char *data, size_t size)
{
    if (off + size >= cap)
        return;
    memcpy(dst + off, data, size);
    dst[off + size] = '\0';
}

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *content_type,
                                const char *transfer_encoding, const char *data, uint64_t off,
                                size_t size)
{
    (void)kind;
    (void)transfer_encoding;
    struct upload *u = cls;
    if (!strcmp(key, "file")) {
        if (filename)
            str_copy(u->filename, sizeof(u->filename), filename);
        if (content_type)
            str_copy(u->ctype, sizeof(u->ctype), content_type);
        u->file = realloc(u->file, (size_t)off + size);
        assert_non_null(u->file);
        memcpy(u->file + off, data, size);
        u->file_len = (size_t)off + size;
    } else if (!strcmp(key, "language")) {
        field_copy(u->language, sizeof(u->language), (size_t)off, data, size);
    } else if (!strcmp(key, "response_format")) {
        field_copy(u->response_format, sizeof(u->response_format), (size_t)off, data, size);
    } else if (!strcmp(key, "temperature")) {
        field_copy(u->temperature, sizeof(u->temperature), (size_t)off, data, size);
    }
    return MHD_YES;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* whisper.cpp reads 16 kHz mono 16-bit PCM WAV files. */
static void check_wav(const struct upload *u, char *problem, size_t cap, size_t *samples)
{
    const uint8_t *w = u->file;
    if (u->file_len < 44 || memcmp(w, "RIFF", 4) || memcmp(w + 8, "WAVEfmt ", 8) ||
        memcmp(w + 36, "data", 4)) {
        snprintf(problem, cap, "file is not a WAV file (%zu bytes)", u->file_len);
        return;
    }
    if (le16(w + 20) != 1 || le16(w + 22) != 1 || le32(w + 24) != 16000 || le16(w + 34) != 16) {
        snprintf(problem, cap, "file is not 16 kHz mono 16-bit PCM");
        return;
    }
    if (le32(w + 40) != u->file_len - 44 || le32(w + 4) != u->file_len - 8) {
        snprintf(problem, cap, "the WAV sizes do not match the file");
        return;
    }
    *samples = (u->file_len - 44) / 2;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof(*u));
        assert_non_null(u);
        u->pp = MHD_create_post_processor(conn, 65536, on_field, u);
        *con_cls = u;
        pthread_mutex_lock(&srv.mu);
        srv.requests++;
        if (++srv.in_flight > srv.max_in_flight)
            srv.max_in_flight = srv.in_flight;
        pthread_mutex_unlock(&srv.mu);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (u->pp)
            MHD_post_process(u->pp, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&srv.mu);
    enum server_mode mode = srv.mode;
    int delay = srv.delay_ms;
    str_copy(srv.url, sizeof(srv.url), url);
    str_copy(srv.language, sizeof(srv.language), u->language);
    str_copy(srv.response_format, sizeof(srv.response_format), u->response_format);
    str_copy(srv.temperature, sizeof(srv.temperature), u->temperature);
    str_copy(srv.filename, sizeof(srv.filename), u->filename);
    str_copy(srv.ctype, sizeof(srv.ctype), u->ctype);
    srv.problem[0] = '\0';
    srv.wav_samples = 0;
    if (strcmp(method, "POST") != 0)
        snprintf(srv.problem, sizeof(srv.problem), "method %s", method);
    else if (!u->pp)
        snprintf(srv.problem, sizeof(srv.problem), "not multipart/form-data");
    else
        check_wav(u, srv.problem, sizeof(srv.problem), &srv.wav_samples);
    pthread_mutex_unlock(&srv.mu);
    if (mode == ANSWER_SLOW)
        delay = 1500;
    if (delay)
        sleep_ms(delay);
    static const char *const bodies[] = {
        [ANSWER_TEXT] = "{\"text\":\" Hallo aus dem Server.\\n\"}",
        [ANSWER_SLOW] = "{\"text\":\"too late\"}",
        [ANSWER_500] = "{\"error\":\"model not loaded\"}",
        [ANSWER_NOT_JSON] = "<html>not found</html>",
        [ANSWER_BLANK] = "{\"text\":\" [BLANK_AUDIO]\\n\"}",
    };
    const char *body = bodies[mode];
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, mode == ANSWER_500 ? 500 : MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct upload *u = *con_cls;
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    free(u->file);
    free(u);
    pthread_mutex_lock(&srv.mu);
    srv.in_flight--;
    pthread_mutex_unlock(&srv.mu);
}

static void server_start(enum server_mode mode, int delay_ms)
{
    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.mu, NULL);
    srv.mode = mode;
    srv.delay_ms = delay_ms;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                             NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                             MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    assert_non_null(srv.d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
    srv.port = info->port;
}

static void server_stop(void)
{
    MHD_stop_daemon(srv.d);
    pthread_mutex_destroy(&srv.mu);
}

static struct fx *fx_http(uint16_t port, int timeout_ms)
{
    static char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/inference?key=secret", port);
    struct stt_config cfg = fake_config(0, 4, 15000);
    cfg.http_url = url;
    cfg.http_languages = "de-DE";
    cfg.http_timeout_ms = timeout_ms;
    return fx_new(&cfg);
}

static void test_http_whisper_shape(void **state)
{
    (void)state;
    server_start(ANSWER_TEXT, 0);
    struct fx *f = fx_http(srv.port, 5000);
    assert_string_equal(stt_languages(f->s), "de-DE");
    assert_false(stt_language_supported(f->s, "en-US")); /* no built-in threads */
    struct media_tap *t = open_stream(f, "s1", "de-DE");
    push_range(t, 0, 49, true, true); /* one second */
    assert_true(wait_results(f, 1, WAIT_MS));
    expect(&f->res[0], "s1", STT_TRANSCRIPT, 0, 49);
    assert_string_equal(f->res[0].text, "Hallo aus dem Server.");
    assert_true(f->res[0].confidence == -1);
    pthread_mutex_lock(&srv.mu);
    assert_string_equal(srv.problem, "");
    assert_string_equal(srv.url, "/inference");
    assert_string_equal(srv.language, "de");
    assert_string_equal(srv.response_format, "json");
    assert_string_equal(srv.temperature, "0");
    assert_string_equal(srv.filename, "utterance.wav");
    assert_string_equal(srv.ctype, "audio/wav");
    assert_int_equal(srv.wav_samples, 16000); /* 8,000 samples at 8 kHz, resampled */
    pthread_mutex_unlock(&srv.mu);

    /* nothing said: whisper.cpp's [BLANK_AUDIO] is dropped and counted */
    pthread_mutex_lock(&srv.mu);
    srv.mode = ANSWER_BLANK;
    pthread_mutex_unlock(&srv.mu);
    push_range(t, 100, 109, true, true);
    stt_stream_close(f->s, "s1");
    assert_true(wait_results(f, 2, WAIT_MS));
    expect(&f->res[1], "s1", STT_CLOSED, 0, 0);
    struct stt_stats st;
    stt_stats(f->s, &st);
    assert_int_equal(st.empty, 1);
    assert_int_equal(st.recognised, 1);
    media_tap_unref(t);
    fx_free(f);
    server_stop();
}

static void test_http_one_at_a_time(void **state)
{
    (void)state;
    server_start(ANSWER_TEXT, 150);
    struct fx *f = fx_http(srv.port, 5000);
    struct media_tap *t[3];
    char id[8];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        t[i] = open_stream(f, id, "de-de");
        push_range(t[i], (uint64_t)i * 100, (uint64_t)i * 100 + 9, true, true);
    }
    assert_true(wait_results(f, 3, WAIT_MS));
    for (int i = 0; i < 3; i++)
        assert_int_equal(f->res[i].kind, STT_TRANSCRIPT);
    pthread_mutex_lock(&srv.mu);
    assert_int_equal(srv.requests, 3);
    assert_int_equal(srv.max_in_flight, 1);
    pthread_mutex_unlock(&srv.mu);
    for (int i = 0; i < 3; i++)
        media_tap_unref(t[i]);
    fx_free(f);
    server_stop();
}

static void expect_http_failure(enum server_mode mode, int timeout_ms, const char *words)
{
    server_start(mode, 0);
    struct fx *f = fx_http(srv.port, timeout_ms);
    struct media_tap *t = open_stream(f, "s1", "de-DE");
    push_range(t, 0, 9, true, true);
    assert_true(wait_results(f, 1, WAIT_MS));
    expect(&f->res[0], "s1", STT_FAILED, 0, 9);
    char want[128];
    snprintf(want, sizeof(want), "the recogniser at http://127.0.0.1:%u/inference ", srv.port);
    if (!strstr(f->res[0].error, want) || !strstr(f->res[0].error, words))
        fail_msg("error \"%s\" does not say \"%s\" and \"%s\"", f->res[0].error, want, words);
    assert_null(strstr(f->res[0].error, "secret")); /* the URL's query is not shown */
    struct stt_stats st;
    stt_stats(f->s, &st);
    assert_int_equal(st.failed, 1);
    media_tap_unref(t);
    fx_free(f);
    server_stop();
}

static void test_http_failures(void **state)
{
    (void)state;
    expect_http_failure(ANSWER_SLOW, 300, "did not answer within 300 ms");
    expect_http_failure(ANSWER_500, 5000, "answered HTTP 500: {'error':'model not loaded'}");
    expect_http_failure(
        ANSWER_NOT_JSON, 5000,
        "answered something other than JSON with a \"text\" string: <html>not found</html>");
}

static void test_http_down(void **state)
{
    (void)state;
    /* a port nobody listens on: bound, then closed */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    uint16_t port = ntohs(sa.sin_port);
    close(fd);
    struct fx *f = fx_http(port, 5000);
    struct media_tap *t = open_stream(f, "s1", "de-DE");
    push_range(t, 0, 9, true, true);
    push_range(t, 20, 29, true, true);
    stt_stream_close(f->s, "s1");
    assert_true(wait_results(f, 3, WAIT_MS));
    char want[128];
    snprintf(want, sizeof(want),
             "the recogniser at http://127.0.0.1:%u/inference did not answer: ", port);
    expect(&f->res[0], "s1", STT_FAILED, 0, 9);
    if (!strstr(f->res[0].error, want))
        fail_msg("error \"%s\" does not say \"%s\"", f->res[0].error, want);
    print_message("stt down: %s\n", f->res[0].error);
    expect(&f->res[1], "s1", STT_FAILED, 20, 29);
    expect(&f->res[2], "s1", STT_CLOSED, 0, 0);
    media_tap_unref(t);
    fx_free(f);
}

/* Destroyed while a request is in flight: the thread is released, nothing is called back. */
static void test_http_destroy_in_flight(void **state)
{
    (void)state;
    server_start(ANSWER_SLOW, 0);
    struct fx *f = fx_http(srv.port, 5000);
    struct media_tap *t = open_stream(f, "s1", "de-DE");
    push_range(t, 0, 9, true, true);
    int64_t end = now_ms() + WAIT_MS;
    for (;;) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        pthread_mutex_lock(&srv.mu);
        int n = srv.requests;
        pthread_mutex_unlock(&srv.mu);
        if (n > 0 || now_ms() > end)
            break;
        sleep_ms(2);
    }
    assert_int_equal(f->n_res, 0);
    media_tap_unref(t);
    fx_free(f);
    server_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_refused),
        cmocka_unit_test(test_open_refused),
        cmocka_unit_test(test_decoders_load_late),
        cmocka_unit_test(test_resample_lengths),
        cmocka_unit_test(test_g711_law),
        cmocka_unit_test(test_g711_clean),
        cmocka_unit_test(test_languages_with_http),
        cmocka_unit_test(test_assembly_marks),
        cmocka_unit_test(test_assembly_gaps),
        cmocka_unit_test(test_lost_end_by_clock),
        cmocka_unit_test(test_max_length_cut),
        cmocka_unit_test(test_wideband_stream),
        cmocka_unit_test(test_close_mid_utterance),
        cmocka_unit_test(test_tap_closed),
        cmocka_unit_test(test_empty_and_failed),
        cmocka_unit_test(test_queue_drops_oldest),
        cmocka_unit_test(test_one_thread_per_stream),
        cmocka_unit_test(test_destroy_with_work_pending),
        cmocka_unit_test(test_pocketsphinx),
        cmocka_unit_test(test_pocketsphinx_order),
        cmocka_unit_test(test_http_whisper_shape),
        cmocka_unit_test(test_http_one_at_a_time),
        cmocka_unit_test(test_http_failures),
        cmocka_unit_test(test_http_down),
        cmocka_unit_test(test_http_destroy_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
