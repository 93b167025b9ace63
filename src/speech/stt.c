/* The collector, the recognisers' queues and threads, the results and the API. Threads of our
 * own, not libuv's shared pool: the collector is a stream that lives as long as the streams, and
 * a recogniser holds a 90 MB decoder for its life and may be busy for seconds per utterance;
 * neither must starve the pool that serves logins and sound fetches.
 *
 * One mutex (s->mu) guards what the threads share: the new streams and close requests
 * (control → collector), the recognisers' queues (collector → recognisers), the pool of
 * utterance buffers, the statistics and the results (→ control). It is held only to move
 * pointers and count, never while decoding or draining, so one lock is simpler than several and
 * costs nothing measurable. The media threads take no lock: they only push to the taps.
 *
 * Memory: an utterance buffer (max_utterance_ms of 8 kHz audio, 240 KB at 15 s) is taken from
 * a pool when an utterance begins and returned once it is recognised or dropped. A buffer is
 * always in exactly one place: a stream's assembly (at most one per stream), a queue (at most
 * queue_max each) or a recogniser thread (one each), so the buffers in use are bounded by those;
 * the pool keeps at most as many idle ones as the queues and threads can hold and frees the
 * rest.
 *
 * Order: a stream's utterances are recognised one at a time (a thread skips, in the queue, those
 * of a stream already being recognised), so one talkative stream cannot hold every thread, and
 * each utterance is numbered: the control thread delivers a stream's results in that order, so
 * an utterance dropped while the one before it is still being recognised is reported after it.
 *
 * Lifetimes: a stream is allocated by stt_stream_open() and freed by the control thread when
 * its STT_CLOSED result is delivered. That result is posted (under s->mu) only once the
 * collector has let go of the stream and none of its utterances is queued or being recognised;
 * neither thread touches the stream after the unlock that follows. */
#include "speech/stt.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "speech/stt_internal.h"

#define DEFAULT_MODEL_DIR "/usr/share/pocketsphinx/model/en-us"
#define DEFAULT_THREADS 2
#define DEFAULT_QUEUE 16
#define DEFAULT_HTTP_TIMEOUT_MS 30000
#define DEFAULT_MAX_UTTERANCE_MS 15000

#define FRAME_MS 20
#define DRAIN_MS                                                                                   \
    50 /* the collector's pass: the taps hold seconds, a reader wants the words soon               \
        */
/* An utterance whose END was lost: no frame for this long, by tick or by the collector's clock. */
#define LOST_END_MS 1000
#define LOST_END_TICKS (LOST_END_MS / FRAME_MS)
#define POP_BATCH 64
/* The collector yields to the media threads on a busy machine, the recognisers (seconds of CPU
 * per utterance) even more: a late transcript costs nothing, a late tick costs everyone's audio.
 * Raising a thread's own nice value needs no privilege (Linux applies it per thread). */
#define COLLECTOR_NICE 5
#define RECOGNISER_NICE 10
#define LOG_WINDOW_US (10 * 1000000LL)
#define LOG_BURST 5

struct stream;

/* An utterance: a pooled buffer of max_samples samples and what it belongs to. */
struct utt {
    struct utt *next;
    struct stream *st;
    uint64_t begin_tick, end_tick;
    uint64_t seq; /* its place among the stream's utterances */
    int rate;     /* its stream's tap's */
    size_t n;     /* samples */
    int16_t pcm[];
};

/* A recogniser: a backend, its threads and its queue of waiting utterances. */
struct rec {
    struct stt *s;
    const struct stt_backend *be;
    void *shared;
    int n_threads;
    pthread_t *tids;
    /* under s->mu */
    pthread_cond_t cv; /* an utterance is waiting, a stream is free again, or stop */
    struct utt *head, *tail;
    size_t n;
    bool launched; /* its threads were started (the built-in ones at the first stream) */
    int started;   /* threads past open() */
    bool open_failed;
    char open_error[STT_ERROR_MAX];
    struct log_limit log_fail;
};

struct stream {
    /* set by stt_stream_open(), then read-only */
    char id[ID_LEN + 1];
    char language[STT_LANGUAGE_LEN + 1];
    struct rec *rec;
    int rate;       /* its tap's: 8000 or 16000 */
    size_t samples; /* per frame */
    size_t max_n;   /* samples of its longest utterance (max_utterance_ms) */
    /* control-owned */
    bool closing;      /* stt_stream_close() was called */
    uint64_t next_seq; /* the result to deliver next */
    struct res *held;  /* results that came before their turn, by seq */
    /* under s->mu */
    struct stream *in_next; /* the collector's incoming list */
    bool close_asked;
    bool collector_done; /* the collector has let go of it */
    bool busy;           /* an utterance of it is being recognised (one at a time, in order) */
    bool closed_posted;
    unsigned outstanding; /* utterances queued or being recognised */
    uint64_t closed_seq;  /* STT_CLOSED's place: written by the collector before collector_done */
    /* collector-owned */
    uint64_t seq_next;
    struct media_tap *tap; /* the stream's reference; NULL once released */
    struct stream *c_next;
    bool c_ending;
    struct utt *cur; /* the utterance being assembled */
    uint64_t last_tick;
    int64_t last_frame_ms; /* the collector's clock when it took the last frame */
};

/* A result on its way to the control thread. Each utterance has one, in its seq place (one
 * recognised as nothing too, silent, so that the places have no holes), and STT_CLOSED the last
 * place: the control thread delivers a stream's results in that order. */
struct res {
    struct res *next;
    struct stream *st;
    uint64_t seq;
    bool silent; /* nothing to deliver: it only takes its place */
    enum stt_kind kind;
    uint64_t begin_tick, end_tick;
    double confidence;
    char *text;
    char *error;
};

struct stt {
    uv_loop_t *loop;
    uv_async_t *async; /* the one wake-up of the control loop: results, and the HTTP request */
    stt_result_cb cb;
    void *ctx;
    size_t max_samples;
    int queue_max;
    char *model_dir;
    char *http_url;
    char http_langs[STT_HTTP_LANGUAGES_MAX][STT_LANGUAGE_LEN + 1];
    int n_http_langs;
    char languages[STT_HTTP_LANGUAGES_MAX * (STT_LANGUAGE_LEN + 2) + 16];
    struct rec builtin, http;
    bool has_builtin, has_http;
    struct stt_http *h;
    atomic_bool stop;

    pthread_mutex_t mu;
    pthread_cond_t start_cv; /* a recogniser thread is past open() */
    pthread_cond_t collector_cv;
    pthread_t collector;
    bool collector_started;
    /* under mu */
    struct stream *incoming; /* newest first */
    bool kick;
    struct utt *pool;
    size_t pool_n, pool_keep;
    struct res *res_head, *res_tail;
    struct stt_stats stats;

    /* control-owned */
    struct idmap streams; /* id → stream, until its STT_CLOSED is delivered */
    size_t n_streams;
    bool *alive; /* set while results are delivered: cleared by stt_destroy() */

    /* collector-owned */
    struct stream *c_streams;
    struct media_tap_frame frames[POP_BATCH];
    struct log_limit log_skip;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void stt_config_defaults(struct stt_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = DEFAULT_THREADS;
    cfg->queue_max = DEFAULT_QUEUE;
    cfg->http_timeout_ms = DEFAULT_HTTP_TIMEOUT_MS;
    cfg->max_utterance_ms = DEFAULT_MAX_UTTERANCE_MS;
}

void stt_text_tidy(char *text, size_t max)
{
    size_t len = strlen(text);
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
            len--; /* not inside a UTF-8 sequence */
        text[len] = '\0';
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            text[i] = ' '; /* one line: newlines and tabs of a long answer */
    size_t start = 0;
    while (start < len && text[start] == ' ')
        start++;
    while (len > start && text[len - 1] == ' ')
        len--;
    memmove(text, text + start, len - start);
    text[len - start] = '\0';
}

/* ---- under s->mu: the pool, the results, the queues ---- */

/* A result of u (NULL: STT_CLOSED) for the control thread. */
static void res_post_locked(struct stt *s, struct stream *st, enum stt_kind kind,
                            const struct utt *u, const char *text, double confidence,
                            const char *error)
{
    struct res *r = xcalloc(1, sizeof(*r));
    r->st = st;
    r->kind = kind;
    r->seq = u ? u->seq : st->closed_seq;
    if (u) {
        r->begin_tick = u->begin_tick;
        r->end_tick = u->end_tick;
    }
    r->confidence = confidence;
    r->text = xstrdup(text ? text : "");
    r->error = xstrdup(error ? error : "");
    if (s->res_tail)
        s->res_tail->next = r;
    else
        s->res_head = r;
    s->res_tail = r;
    uv_async_send(s->async); /* thread-safe, never blocks */
}

/* STT_CLOSED once nothing else of the stream can come. */
static void maybe_closed_locked(struct stt *s, struct stream *st)
{
    if (st->collector_done && st->outstanding == 0 && !st->closed_posted) {
        st->closed_posted = true;
        res_post_locked(s, st, STT_CLOSED, NULL, NULL, 0, NULL);
    }
}

static void pool_put_locked(struct stt *s, struct utt *u)
{
    if (s->pool_n >= s->pool_keep) {
        free(u);
        return;
    }
    u->next = s->pool;
    s->pool = u;
    s->pool_n++;
}

/* Collector. A buffer from the pool, or a new one (see the bound at the top). */
static struct utt *pool_get(struct stt *s)
{
    pthread_mutex_lock(&s->mu);
    struct utt *u = s->pool;
    if (u) {
        s->pool = u->next;
        s->pool_n--;
    }
    pthread_mutex_unlock(&s->mu);
    if (!u)
        u = xmalloc(sizeof(*u) + s->max_samples * sizeof(int16_t));
    memset(u, 0, sizeof(*u));
    return u;
}

/* The first waiting utterance whose stream has none being recognised: a stream's utterances
 * are recognised one at a time, so its results keep their order with several threads. */
static struct utt *queue_take_locked(struct rec *r)
{
    struct utt *prev = NULL;
    for (struct utt *u = r->head; u; prev = u, u = u->next) {
        if (u->st->busy)
            continue;
        if (prev)
            prev->next = u->next;
        else
            r->head = u->next;
        if (r->tail == u)
            r->tail = prev;
        u->next = NULL;
        r->n--;
        return u;
    }
    return NULL;
}

/* ---- recogniser threads ---- */

static void *rec_main(void *arg)
{
    struct rec *r = arg;
    struct stt *s = r->s;
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), RECOGNISER_NICE);
    char err[STT_ERROR_MAX] = "";
    void *state = r->be->open(r->shared, s->max_samples, &s->stop, err, sizeof(err));
    if (!state)
        log_error("msg=stt_decoder_failed recogniser=%s error=\"%s\"", r->be->name, err);
    pthread_mutex_lock(&s->mu);
    r->started++;
    if (!state && !r->open_failed) {
        r->open_failed = true;
        str_copy(r->open_error, sizeof(r->open_error), err[0] ? err : "it could not start");
    }
    pthread_cond_broadcast(&s->start_cv);
    /* A thread whose decoder did not load still takes its share of the queue and fails each
     * utterance with the reason, so that every stream still gets its results and its end. */
    struct stt_answer *ans = xmalloc(sizeof(*ans));
    while (!atomic_load(&s->stop)) {
        struct utt *u = queue_take_locked(r);
        if (!u) {
            pthread_cond_wait(&r->cv, &s->mu);
            continue;
        }
        struct stream *st = u->st;
        st->busy = true;
        pthread_mutex_unlock(&s->mu);

        memset(ans, 0, sizeof(*ans));
        struct stt_audio a = {.pcm = u->pcm,
                              .n = u->n,
                              .rate = u->rate,
                              .language = st->language,
                              .stream_id = st->id};
        double t0 = mono_s();
        int rc = -1;
        if (state)
            rc = r->be->recognise(state, &a, ans);
        else
            str_copy(ans->error, sizeof(ans->error), r->open_error);
        double busy = mono_s() - t0;
        if (rc == 0)
            stt_text_tidy(ans->text, STT_TEXT_MAX);
        else if (!ans->error[0])
            str_copy(ans->error, sizeof(ans->error), "the recogniser failed");

        pthread_mutex_lock(&s->mu);
        s->stats.busy_s += busy;
        st->busy = false;
        bool log_it = false;
        uint64_t suppressed = 0;
        if (rc != 0) {
            s->stats.failed++;
            res_post_locked(s, st, STT_FAILED, u, NULL, 0, ans->error);
            log_it =
                !atomic_load(&s->stop) && log_limit_allow(&r->log_fail, mono_ms() * 1000,
                                                          LOG_WINDOW_US, LOG_BURST, &suppressed);
        } else if (ans->text[0]) {
            s->stats.recognised++;
            res_post_locked(s, st, STT_TRANSCRIPT, u, ans->text, ans->confidence, NULL);
        } else {
            s->stats.empty++;
            res_post_locked(s, st, STT_TRANSCRIPT, u, NULL, 0, NULL);
            s->res_tail->silent = true;
        }
        char id[ID_LEN + 1];
        if (log_it)
            str_copy(id, sizeof(id), st->id);
        st->outstanding--;
        maybe_closed_locked(s, st); /* st may be freed once s->mu is released */
        pool_put_locked(s, u);
        pthread_cond_broadcast(&r->cv); /* the stream's next utterance may be taken now */
        if (log_it) {
            pthread_mutex_unlock(&s->mu);
            log_warn("msg=stt_failed recogniser=%s stream_id=%s error=\"%s\" suppressed=%llu",
                     r->be->name, id, ans->error, (unsigned long long)suppressed);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(ans);
    if (state)
        r->be->close(state);
    return NULL;
}

/* ---- collector thread ---- */

/* Hands a finished utterance to its recogniser's queue; a full queue drops its oldest waiting
 * one (reported STT_SKIPPED) rather than make anyone wait. */
static void utt_finish(struct stt *s, struct stream *st)
{
    struct utt *u = st->cur;
    st->cur = NULL;
    struct rec *r = st->rec;
    pthread_mutex_lock(&s->mu);
    struct utt *old = NULL;
    if (r->n >= (size_t)s->queue_max) {
        old = r->head;
        r->head = old->next;
        if (!r->head)
            r->tail = NULL;
        r->n--;
    }
    u->next = NULL;
    u->seq = st->seq_next++;
    if (r->tail)
        r->tail->next = u;
    else
        r->head = u;
    r->tail = u;
    r->n++;
    st->outstanding++;
    s->stats.utterances++;
    s->stats.audio_s += (double)u->n / u->rate;
    pthread_cond_signal(&r->cv);
    uint64_t suppressed = 0;
    bool log_it = false;
    char id[ID_LEN + 1];
    if (old) {
        struct stream *ost = old->st;
        s->stats.skipped++;
        res_post_locked(s, ost, STT_SKIPPED, old, NULL, 0, NULL);
        log_it = log_limit_allow(&s->log_skip, mono_ms() * 1000, LOG_WINDOW_US, 1, &suppressed);
        if (log_it)
            str_copy(id, sizeof(id), ost->id);
        ost->outstanding--;
        maybe_closed_locked(s, ost);
        pool_put_locked(s, old);
    }
    pthread_mutex_unlock(&s->mu);
    if (log_it)
        log_warn("msg=stt_queue_full recogniser=%s queue_max=%d stream_id=%s skipped=%llu",
                 r->be->name, s->queue_max, id, (unsigned long long)suppressed + 1);
}

static void utt_start(struct stt *s, struct stream *st, uint64_t tick)
{
    st->cur = pool_get(s);
    st->cur->st = st;
    st->cur->rate = st->rate;
    st->cur->begin_tick = st->cur->end_tick = tick;
}

/* One frame of audio (NULL: silence) at tick; a full buffer ends the utterance there and the
 * frame starts the next one. */
static void utt_append(struct stt *s, struct stream *st, const int16_t *pcm, uint64_t tick)
{
    if (st->cur->n + st->samples > st->max_n) {
        utt_finish(s, st);
        utt_start(s, st, tick);
    }
    int16_t *p = st->cur->pcm + st->cur->n;
    if (pcm)
        memcpy(p, pcm, st->samples * sizeof(int16_t));
    else
        memset(p, 0, st->samples * sizeof(int16_t));
    st->cur->n += st->samples;
    st->cur->end_tick = tick;
}

static void frame_in(struct stt *s, struct stream *st, const struct media_tap_frame *f, int64_t now)
{
    if (st->cur) {
        if (f->tick <= st->last_tick)
            return; /* never expected: the engine's ticks only go forward */
        uint64_t gap = f->tick - st->last_tick;
        if (gap > LOST_END_TICKS || (f->mark & MEDIA_TAP_BEGIN)) {
            utt_finish(s, st); /* its END was lost */
        } else {
            for (uint64_t k = 1; k < gap; k++) /* frames the full ring dropped */
                utt_append(s, st, NULL, st->last_tick + k);
        }
    }
    /* A frame outside an utterance starts one, marked BEGIN or not (a dropped BEGIN). */
    if (!st->cur)
        utt_start(s, st, f->tick);
    utt_append(s, st, f->pcm, f->tick);
    st->last_tick = f->tick;
    st->last_frame_ms = now;
    if (f->mark & MEDIA_TAP_END)
        utt_finish(s, st);
}

/* Takes what the tap holds. True when the stream is over. */
static bool stream_drain(struct stt *s, struct stream *st, int64_t now)
{
    /* Seen before the pops: once they find the ring empty, every frame has been taken. */
    bool closed = media_tap_closed(st->tap);
    size_t n;
    do {
        n = media_tap_pop(st->tap, s->frames, POP_BATCH);
        for (size_t i = 0; i < n; i++)
            frame_in(s, st, &s->frames[i], now);
    } while (n == POP_BATCH);
    if (st->cur && now - st->last_frame_ms > LOST_END_MS)
        utt_finish(s, st); /* no frame for a second: its END was lost */
    if (!st->c_ending && !closed)
        return false;
    if (st->cur)
        utt_finish(s, st);
    return true;
}

/* The collector lets go of a stream: its tap is released, and STT_CLOSED follows once its
 * utterances are through. */
static void stream_release(struct stt *s, struct stream *st)
{
    media_tap_unref(st->tap);
    st->tap = NULL;
    st->closed_seq = st->seq_next;
    pthread_mutex_lock(&s->mu);
    st->collector_done = true;
    maybe_closed_locked(s, st);
    pthread_mutex_unlock(&s->mu); /* st may be freed from here on */
}

static void *collector_main(void *arg)
{
    struct stt *s = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), COLLECTOR_NICE);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* No stream: sleep until one comes (an idle server costs nothing). */
        while (!s->kick && !atomic_load(&s->stop)) {
            if (!s->c_streams)
                pthread_cond_wait(&s->collector_cv, &s->mu);
            else if (pthread_cond_timedwait(&s->collector_cv, &s->mu, &deadline) == ETIMEDOUT)
                break;
        }
        s->kick = false;
        if (atomic_load(&s->stop))
            break; /* stt_destroy() frees the streams and their taps */
        struct stream *fresh = s->incoming, *rev = NULL;
        s->incoming = NULL;
        while (fresh) { /* oldest first, into the collector's own list */
            struct stream *next = fresh->in_next;
            fresh->c_next = rev;
            rev = fresh;
            fresh = next;
        }
        struct stream **tail = &s->c_streams;
        while (*tail)
            tail = &(*tail)->c_next;
        *tail = rev;
        for (struct stream *st = s->c_streams; st; st = st->c_next)
            st->c_ending = st->close_asked;
        pthread_mutex_unlock(&s->mu);

        int64_t now = mono_ms();
        struct stream **pp = &s->c_streams;
        while (*pp) {
            struct stream *st = *pp;
            if (stream_drain(s, st, now)) {
                *pp = st->c_next;
                stream_release(s, st);
            } else {
                pp = &st->c_next;
            }
        }

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += (long)DRAIN_MS * 1000000;
        deadline.tv_sec += deadline.tv_nsec / 1000000000;
        deadline.tv_nsec %= 1000000000;
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- control thread ---- */

static void res_free(struct res *r)
{
    free(r->text);
    free(r->error);
    free(r);
}

/* Hands r to the callback (unless silent) and frees it. False when the callback destroyed the
 * stt. */
static bool emit(struct stt *s, struct res *r)
{
    struct stream *st = r->st;
    st->next_seq++;
    bool closed = r->kind == STT_CLOSED;
    bool alive = true;
    if (!r->silent) {
        struct stt_result out = {.stream_id = st->id,
                                 .kind = r->kind,
                                 .text = r->text,
                                 .confidence = r->confidence,
                                 .begin_tick = r->begin_tick,
                                 .end_tick = r->end_tick,
                                 .error = r->error};
        s->alive = &alive;
        s->cb(s->ctx, &out);
        if (alive)
            s->alive = NULL;
    }
    res_free(r);
    if (!alive)
        return false;
    if (closed) { /* the last place: nothing is held behind it */
        assert(!st->held);
        idmap_del(&s->streams, st->id);
        free(st);
        if (--s->n_streams == 0)
            uv_unref((uv_handle_t *)s->async);
    }
    return true;
}

static void hold(struct stream *st, struct res *r)
{
    struct res **pp = &st->held;
    while (*pp && (*pp)->seq < r->seq)
        pp = &(*pp)->next;
    r->next = *pp;
    *pp = r;
}

/* Results in each stream's order: one that comes before its turn (an utterance dropped from
 * the queue while the one before it is still being recognised) waits for it. */
static void deliver(struct stt *s)
{
    pthread_mutex_lock(&s->mu);
    struct res *list = s->res_head;
    s->res_head = s->res_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        struct res *r = list;
        list = r->next;
        r->next = NULL;
        struct stream *st = r->st;
        if (r->seq != st->next_seq) {
            hold(st, r);
            continue;
        }
        bool more = true;
        while (r) {
            struct res *next = st->held && st->held->seq == r->seq + 1 ? st->held : NULL;
            if (next)
                st->held = next->next;
            if (!emit(s, r)) { /* the callback destroyed the stt: the rest is dropped */
                if (next)
                    res_free(next);
                more = false;
                break;
            }
            r = next;
        }
        if (!more) {
            while (list) {
                r = list;
                list = r->next;
                res_free(r);
            }
            return;
        }
    }
}

static void on_async(uv_async_t *h)
{
    struct stt *s = h->data;
    if (s->has_http)
        stt_http_poll(s->h);
    deliver(s);
}

/* Splits http_languages into s->http_langs. */
static int parse_languages(struct stt *s, const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        size_t len = (size_t)(p - start);
        bool ok = len >= 2 && len <= STT_LANGUAGE_LEN;
        for (size_t i = 0; ok && i < len; i++) {
            char c = start[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c == '-' && i > 0 && i + 1 < len);
        }
        if (!ok) {
            snprintf(err, errlen,
                     "stt_languages: \"%.*s\" is not a language tag (2..%d letters, digits and "
                     "inner hyphens, e.g. de-DE)",
                     (int)(len > 32 ? 32 : len), start, STT_LANGUAGE_LEN);
            return -1;
        }
        if (s->n_http_langs == STT_HTTP_LANGUAGES_MAX) {
            snprintf(err, errlen, "stt_languages: more than %d languages", STT_HTTP_LANGUAGES_MAX);
            return -1;
        }
        memcpy(s->http_langs[s->n_http_langs], start, len);
        s->http_langs[s->n_http_langs][len] = '\0';
        s->n_http_langs++;
    }
    return 0;
}

static bool http_serves(const struct stt *s, const char *language)
{
    for (int i = 0; i < s->n_http_langs; i++)
        if (strcasecmp(s->http_langs[i], language) == 0)
            return true;
    return false;
}

/* A language the external recogniser serves goes there, even en-US: an operator who lists it
 * has a better recogniser for it than the built-in one. */
static struct rec *rec_for(struct stt *s, const char *language)
{
    if (!language)
        return NULL;
    if (s->has_http && http_serves(s, language))
        return &s->http;
    if (s->has_builtin && strcasecmp(language, STT_BUILTIN_LANGUAGE) == 0)
        return &s->builtin;
    return NULL;
}

static void languages_text(struct stt *s)
{
    size_t off = 0;
    s->languages[0] = '\0';
    if (s->has_builtin && !(s->has_http && http_serves(s, STT_BUILTIN_LANGUAGE)))
        off += (size_t)snprintf(s->languages, sizeof(s->languages), "%s", STT_BUILTIN_LANGUAGE);
    for (int i = 0; s->has_http && i < s->n_http_langs; i++) {
        bool dup = false;
        for (int k = 0; k < i; k++)
            dup |= strcasecmp(s->http_langs[k], s->http_langs[i]) == 0;
        if (!dup)
            off += (size_t)snprintf(s->languages + off, sizeof(s->languages) - off, "%s%s",
                                    off ? ", " : "", s->http_langs[i]);
    }
}

static int check_config(const struct stt_config *cfg, char *err, size_t errlen)
{
    bool url = cfg->http_url && cfg->http_url[0];
    bool langs = cfg->http_languages && cfg->http_languages[0];
    if (cfg->threads < 0 || cfg->threads > STT_THREADS_MAX) {
        snprintf(err, errlen, "stt_workers is %d: it must be 0..%d (0: no built-in recogniser)",
                 cfg->threads, STT_THREADS_MAX);
        return -1;
    }
    if (cfg->queue_max < 1 || cfg->queue_max > STT_QUEUE_MAX) {
        snprintf(err, errlen, "stt_queue is %d: it must be 1..%d utterances", cfg->queue_max,
                 STT_QUEUE_MAX);
        return -1;
    }
    if (cfg->max_utterance_ms < STT_UTTERANCE_MS_MIN ||
        cfg->max_utterance_ms > STT_UTTERANCE_MS_MAX) {
        snprintf(err, errlen, "stt_max_utterance_ms is %d: it must be %d..%d",
                 cfg->max_utterance_ms, STT_UTTERANCE_MS_MIN, STT_UTTERANCE_MS_MAX);
        return -1;
    }
    if (url && (cfg->http_timeout_ms < STT_HTTP_TIMEOUT_MS_MIN ||
                cfg->http_timeout_ms > STT_HTTP_TIMEOUT_MS_MAX)) {
        snprintf(err, errlen, "stt_timeout_ms is %d: it must be %d..%d", cfg->http_timeout_ms,
                 STT_HTTP_TIMEOUT_MS_MIN, STT_HTTP_TIMEOUT_MS_MAX);
        return -1;
    }
    if (url && stt_http_check_url(cfg->http_url, err, errlen) < 0)
        return -1;
    if (url && !langs) {
        snprintf(err, errlen,
                 "stt_url is set but stt_languages is empty: name the languages the recogniser "
                 "at stt_url serves, e.g. stt_languages=de-DE,fr-FR");
        return -1;
    }
    if (!url && langs) {
        snprintf(err, errlen,
                 "stt_languages is set but stt_url is not: the languages are those of an "
                 "external recogniser");
        return -1;
    }
    if (cfg->threads == 0 && !url) {
        snprintf(err, errlen, "no speech recogniser: stt_workers is 0 and stt_url is not set");
        return -1;
    }
    return 0;
}

static void rec_init(struct stt *s, struct rec *r, const struct stt_backend *be, void *shared,
                     int threads)
{
    r->s = s;
    r->be = be;
    r->shared = shared;
    r->n_threads = threads;
    r->tids = xcalloc((size_t)threads, sizeof(pthread_t));
    pthread_cond_init(&r->cv, NULL);
}

/* Starts r's threads (once). */
static void rec_launch(struct rec *r, const char *name)
{
    if (r->launched)
        return;
    r->launched = true;
    for (int i = 0; i < r->n_threads; i++) {
        int rc = pthread_create(&r->tids[i], NULL, rec_main, r);
        if (rc != 0)
            die("stt: cannot start a recogniser thread: %s", strerror(rc));
        char tname[16];
        snprintf(tname, sizeof(tname), "%s-%d", name, i);
        pthread_setname_np(r->tids[i], tname);
    }
}

/* Starts r's threads and waits until each is past open(). Returns 0, or -1 with the first
 * thread's message (every thread is then failing what it is given). */
static int rec_start(struct stt *s, struct rec *r, const char *name, char *err, size_t errlen)
{
    rec_launch(r, name);
    pthread_mutex_lock(&s->mu);
    while (r->started < r->n_threads)
        pthread_cond_wait(&s->start_cv, &s->mu);
    bool failed = r->open_failed;
    if (failed)
        snprintf(err, errlen, "%s", r->open_error);
    pthread_mutex_unlock(&s->mu);
    return failed ? -1 : 0;
}

static void rec_join(struct stt *s, struct rec *r)
{
    if (!r->launched)
        return;
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < r->n_threads; i++)
        pthread_join(r->tids[i], NULL);
}

static void rec_fini(struct rec *r)
{
    while (r->head) {
        struct utt *u = r->head;
        r->head = u->next;
        free(u);
    }
    pthread_cond_destroy(&r->cv);
    free(r->tids);
}

static void free_async(uv_handle_t *h)
{
    free(h);
}

/* Frees what create made before any loop handle existed (builtin threads joined). */
static void stt_free_early(struct stt *s)
{
    if (s->has_builtin)
        rec_fini(&s->builtin);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->start_cv);
    pthread_cond_destroy(&s->collector_cv);
    idmap_fini(&s->streams);
    free(s->model_dir);
    free(s->http_url);
    free(s);
}

struct stt *stt_create_with(uv_loop_t *loop, const struct stt_config *cfg,
                            const struct stt_backend *builtin, void *builtin_shared,
                            stt_result_cb cb, void *ctx, char *err, size_t errlen)
{
    if (check_config(cfg, err, errlen) < 0)
        return NULL;
    struct stt *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cb = cb;
    s->ctx = ctx;
    s->queue_max = cfg->queue_max;
    /* Buffers hold the longest utterance at the wider rate; an 8 kHz one uses half. */
    s->max_samples = (size_t)(cfg->max_utterance_ms / FRAME_MS) * MIX_FRAME_WB;
    s->has_builtin = cfg->threads > 0;
    s->has_http = cfg->http_url && cfg->http_url[0];
    atomic_init(&s->stop, false);
    idmap_init(&s->streams);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->start_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->collector_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (s->has_http) {
        s->http_url = xstrdup(cfg->http_url);
        if (parse_languages(s, cfg->http_languages, err, errlen) < 0) {
            stt_free_early(s);
            return NULL;
        }
    }
    /* Idle buffers worth keeping: as many as the queues and the recognisers can hold. */
    s->pool_keep = (size_t)cfg->queue_max * (s->has_builtin + s->has_http) + (size_t)cfg->threads +
                   (s->has_http ? 1 : 0);

    /* The decoders load when the first stream of theirs opens, on their own threads: a server
     * that never transcribes spends neither their memory (about 90 MB each) nor the seconds
     * of loading, and the control loop never waits for them. */
    if (s->has_builtin)
        rec_init(s, &s->builtin, builtin, builtin_shared, cfg->threads);

    s->async = xcalloc(1, sizeof(*s->async));
    if (uv_async_init(loop, s->async, on_async) != 0)
        die("stt: cannot create its wake-up handle");
    s->async->data = s;
    uv_unref((uv_handle_t *)s->async); /* an stt without streams does not keep the loop running */
    if (s->has_http) {
        s->h = stt_http_create(loop, s->async, s->http_url, cfg->http_timeout_ms);
        rec_init(s, &s->http, &stt_http_backend, s->h, 1);
        /* Its open() only sets up a resampler: a failure is libsamplerate out of memory. */
        if (rec_start(s, &s->http, "stt-http", err, errlen) < 0)
            die("stt: the HTTP recogniser's thread cannot start: %s", err);
    }
    languages_text(s);
    int rc = pthread_create(&s->collector, NULL, collector_main, s);
    if (rc != 0)
        die("stt: cannot start the collector: %s", strerror(rc));
    pthread_setname_np(s->collector, "stt-collect");
    s->collector_started = true;
    log_info("msg=stt_started decoders=%d queue_max=%d max_utterance_ms=%d languages=\"%s\"",
             cfg->threads, cfg->queue_max, cfg->max_utterance_ms, s->languages);
    return s;
}

struct stt *stt_create(uv_loop_t *loop, const struct stt_config *cfg, stt_result_cb cb, void *ctx,
                       char *err, size_t errlen)
{
    if (check_config(cfg, err, errlen) < 0)
        return NULL;
    const char *dir = cfg->model_dir && cfg->model_dir[0] ? cfg->model_dir : DEFAULT_MODEL_DIR;
    if (cfg->threads > 0 && stt_sphinx_check_model(dir, err, errlen) < 0)
        return NULL;
    char *model_dir = xstrdup(dir);
    struct stt *s =
        stt_create_with(loop, cfg, &stt_sphinx_backend, model_dir, cb, ctx, err, errlen);
    if (!s) {
        free(model_dir);
        return NULL;
    }
    s->model_dir = model_dir; /* the decoders' shared state, freed with s */
    return s;
}

void stt_destroy(struct stt *s)
{
    if (!s)
        return;
    if (s->alive)
        *s->alive = false;
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, true);
    pthread_cond_broadcast(&s->collector_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->h)
        stt_http_cancel(s->h); /* its thread may be waiting for the request */
    if (s->collector_started)
        pthread_join(s->collector, NULL);
    if (s->has_builtin)
        rec_join(s, &s->builtin);
    if (s->http.tids) {
        rec_join(s, &s->http);
        rec_fini(&s->http);
    }
    if (s->h)
        stt_http_destroy(s->h);
    for (struct stream *st = s->c_streams; st; st = st->c_next)
        free(st->cur);
    while (s->res_head) {
        struct res *r = s->res_head;
        s->res_head = r->next;
        res_free(r);
    }
    while (s->pool) {
        struct utt *u = s->pool;
        s->pool = u->next;
        free(u);
    }
    const char *key;
    void *value;
    for (size_t i = 0; idmap_next(&s->streams, &i, &key, &value);) {
        struct stream *st = value;
        media_tap_unref(st->tap); /* still the stream's unless the collector released it */
        while (st->held) {
            struct res *r = st->held;
            st->held = r->next;
            res_free(r);
        }
        free(st);
    }
    uv_close((uv_handle_t *)s->async, free_async);
    stt_free_early(s);
}

bool stt_language_supported(const struct stt *s, const char *language)
{
    return rec_for((struct stt *)s, language) != NULL;
}

const char *stt_languages(const struct stt *s)
{
    return s->languages;
}

int stt_stream_open(struct stt *s, const char *stream_id, struct media_tap *tap,
                    const char *language, char *err, size_t errlen)
{
    size_t len = strlen(stream_id);
    if (len == 0 || len > ID_LEN) {
        snprintf(err, errlen, "a transcription stream id must be 1..%d characters", ID_LEN);
        return -1;
    }
    if (idmap_get(&s->streams, stream_id)) {
        snprintf(err, errlen, "transcription stream %s is already open", stream_id);
        return -1;
    }
    struct rec *r = rec_for(s, language);
    if (!r) {
        snprintf(err, errlen, "unsupported transcription language \"%.32s\" (supported: %s)",
                 language ? language : "", s->languages);
        return -1;
    }
    struct stream *st = xcalloc(1, sizeof(*st));
    str_copy(st->id, sizeof(st->id), stream_id);
    str_copy(st->language, sizeof(st->language), language);
    st->rec = r;
    st->rate = media_tap_rate(tap);
    st->samples = media_tap_samples(tap);
    st->max_n = s->max_samples / MIX_FRAME_WB * st->samples;
    if (r == &s->builtin)
        rec_launch(r, "stt-decode");
    st->tap = media_tap_ref(tap);
    idmap_put(&s->streams, st->id, st);
    if (s->n_streams++ == 0)
        uv_ref((uv_handle_t *)s->async);
    pthread_mutex_lock(&s->mu);
    st->in_next = s->incoming;
    s->incoming = st;
    s->kick = true;
    pthread_cond_signal(&s->collector_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void stt_stream_close(struct stt *s, const char *stream_id)
{
    struct stream *st = idmap_get(&s->streams, stream_id);
    if (!st || st->closing)
        return;
    st->closing = true;
    pthread_mutex_lock(&s->mu);
    st->close_asked = true; /* read by the collector only while it still has st */
    s->kick = true;
    pthread_cond_signal(&s->collector_cv);
    pthread_mutex_unlock(&s->mu);
}

size_t stt_stream_count(const struct stt *s)
{
    return s->n_streams;
}

void stt_stats(const struct stt *s, struct stt_stats *out)
{
    struct stt *m = (struct stt *)s; /* the lock, not the counters */
    pthread_mutex_lock(&m->mu);
    *out = s->stats;
    pthread_mutex_unlock(&m->mu);
}
