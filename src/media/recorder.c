/* Each writer thread owns a list of recordings and wakes every drain_interval_ms (or when the
 * control thread hands it work) to drain their taps. Why threads of our own: a recording is a
 * stream that lives as long as a meeting, not a job, and a slow disk must only ever delay the
 * recordings, never the pools that serve logins or sound fetches. Control → writer: a
 * mutex-protected list of new recordings and a close flag per recording, with a condition
 * variable; writer → control: a mutex-protected list of finished recordings and one uv_async_t.
 * The media threads take neither mutex: they only push to the taps. A recording's struct is
 * allocated and freed on the control thread; the writer never touches it once it has posted it
 * as finished. */
#include "media/recorder.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "media/wav.h"

#define RECORDER_THREADS_MAX 16
#define DEFAULT_HEADER_INTERVAL_MS 10000
#define DEFAULT_DRAIN_INTERVAL_MS 100
#define FRAME_BYTES_MAX (MIX_FRAME_WB * 2)
#define POP_BATCH 64   /* frames taken from a tap at a time */
#define BUF_FRAMES 128 /* frames gathered for one write (2.56 s, 40 or 80 KiB) */

struct writer;

struct rec {
    /* control-owned */
    char id[ID_LEN + 1];
    struct writer *w;
    bool closing; /* recorder_close() was called */
    /* set before the writer gets it, then read-only */
    char *path;
    struct media_tap *tap; /* the recorder's reference (dropped by the writer at the end) */
    uint32_t rate;         /* the tap's, and the file's */
    size_t samples;        /* per frame */
    size_t frame_bytes;
    uint64_t limit;        /* max_frames, or what a WAV file can hold */
    bool limit_is_max;     /* limit came from max_frames */
    uint64_t silence_end;  /* this many quiet frames in a row end it (0: never) */
    /* under w->mu */
    bool close_asked;
    /* writer-owned */
    struct rec *w_next;
    bool ending; /* close asked (or the recorder stops): finish at this drain */
    int fd;
    bool header_written;
    bool have_tick; /* a frame has been written: next_tick is known */
    uint64_t next_tick;
    uint64_t last_dropped_before; /* the tap's drop count at the last frame taken */
    uint64_t frames;              /* in the file and the write buffer */
    uint64_t quiet;               /* quiet frames in a row, at the end of the file */
    uint64_t data_bytes;          /* written after the header */
    uint64_t header_bytes;        /* data bytes the header on disk describes */
    int64_t header_ms;            /* when the header was last rewritten */
    struct recorder_result res;
    /* the finished list (under r->done_mu) */
    struct rec *done_next;
};

struct writer {
    struct recorder *r;
    int index;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    struct rec *incoming; /* opened by the control thread, not yet taken (newest first) */
    bool kick;            /* something to do before the next drain time */
    bool stop;
    /* writer-owned */
    struct rec *recs;
    struct media_tap_frame frames[POP_BATCH];
    uint8_t buf[BUF_FRAMES * FRAME_BYTES_MAX];
    size_t len;
    /* control-owned */
    size_t n_recs;
};

struct recorder {
    uv_loop_t *loop;
    uv_async_t *async;
    recorder_done_cb cb;
    void *ctx;
    struct recorder_config cfg;
    struct writer *writers;
    int n_writers;
    /* control-owned */
    struct idmap open; /* id → struct rec, until its result is delivered */
    size_t n_open;
    /* writers → control */
    pthread_mutex_t done_mu;
    struct rec *done_head, *done_tail;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- writer thread ---- */

/* The first error ends the recording; later ones (the clean-up after it) are not reported. */
static void rec_fail(struct rec *c, const char *what, int err)
{
    if (c->res.error)
        return;
    c->res.error = err;
    char buf[128];
    snprintf(c->res.message, sizeof(c->res.message), "%s: %s", what,
             strerror_r(err, buf, sizeof(buf)));
}

static bool rec_failed(const struct rec *c)
{
    return c->res.error != 0;
}

static void rec_open(struct rec *c)
{
    c->fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (c->fd < 0) {
        rec_fail(c, "open", errno);
        return;
    }
    uint8_t h[WAV_HEADER_BYTES];
    wav_header_rate(h, c->rate, 0);
    ssize_t n;
    do
        n = write(c->fd, h, sizeof(h));
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(h)) {
        rec_fail(c, "write", n < 0 ? errno : EFBIG); /* short: only a file size limit does that */
        return;
    }
    c->header_written = true;
    c->header_ms = mono_ms();
}

/* Rewrites the header to what has been written, then syncs the file. */
static void rec_header(struct rec *c)
{
    uint8_t h[WAV_HEADER_BYTES];
    wav_header_rate(h, c->rate, (uint32_t)c->data_bytes);
    ssize_t n;
    do
        n = pwrite(c->fd, h, sizeof(h), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(h)) {
        rec_fail(c, "write", n < 0 ? errno : EIO);
        return;
    }
    if (fdatasync(c->fd) < 0) {
        rec_fail(c, "fdatasync", errno);
        return;
    }
    c->header_bytes = c->data_bytes;
    c->header_ms = mono_ms();
}

/* Writes what the buffer holds. A failed write ends the recording: a partly written frame is cut
 * off, so the file holds whole frames only. */
static void rec_flush(struct writer *w, struct rec *c)
{
    size_t off = 0;
    int err = 0;
    while (off < w->len) {
        ssize_t n = write(c->fd, w->buf + off, w->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        off += (size_t)n;
        c->data_bytes += (uint64_t)n;
    }
    bool wrote = w->len > 0;
    w->len = 0;
    if (err) {
        rec_fail(c, "write", err);
        uint64_t whole = c->data_bytes / c->frame_bytes * c->frame_bytes;
        if (whole != c->data_bytes && ftruncate(c->fd, (off_t)(WAV_HEADER_BYTES + whole)) == 0)
            c->data_bytes = whole;
        c->frames = c->data_bytes / c->frame_bytes;
        return;
    }
    if (wrote && w->r->cfg.sync_every_write && fdatasync(c->fd) < 0)
        rec_fail(c, "fdatasync", errno);
}

/* Appends one frame (NULL: silence) to the buffer, writing it out when full. */
static void rec_append(struct writer *w, struct rec *c, const int16_t *pcm)
{
    if (w->len + c->frame_bytes > BUF_FRAMES * c->frame_bytes) {
        rec_flush(w, c);
        if (rec_failed(c))
            return;
    }
    uint8_t *p = w->buf + w->len;
    if (!pcm) {
        memset(p, 0, c->frame_bytes);
    } else {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(p, pcm, c->frame_bytes);
#else
        for (size_t i = 0; i < c->samples; i++) {
            p[2 * i] = (uint8_t)((uint16_t)pcm[i] & 0xff);
            p[2 * i + 1] = (uint8_t)((uint16_t)pcm[i] >> 8);
        }
#endif
    }
    w->len += c->frame_bytes;
    c->frames++;
}

/* Silence for frames that never came (as far as the recording's limit), counted as dropped. */
static void rec_silence(struct writer *w, struct rec *c, uint64_t n)
{
    uint64_t room = c->limit - c->frames;
    if (n > room)
        n = room;
    for (uint64_t i = 0; i < n && !rec_failed(c); i++)
        rec_append(w, c, NULL);
    c->res.dropped += n;
    c->quiet += n;
}

/* end_of_silence: a frame whose peak stays under this (about -40 dBFS) is quiet: line noise
 * and comfort noise are, speech is not. */
#define QUIET_PEAK 330

static bool frame_quiet(const int16_t *pcm, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pcm[i] > QUIET_PEAK || pcm[i] < -QUIET_PEAK)
            return false;
    return true;
}

static bool rec_silent_end(const struct rec *c)
{
    return c->silence_end && c->quiet >= c->silence_end;
}

/* One frame from the tap: the ticks between the last one and it are silence; the first frame's
 * tick starts the file. A tick already written (never expected: the engine's ticks only go
 * forward) is skipped. */
static void rec_frame(struct writer *w, struct rec *c, const struct media_tap_frame *f)
{
    if (c->have_tick) {
        if (f->tick < c->next_tick)
            return;
        rec_silence(w, c, f->tick - c->next_tick);
    }
    c->have_tick = true;
    c->next_tick = f->tick + 1;
    c->last_dropped_before = f->dropped_before;
    if (!rec_failed(c) && c->frames < c->limit && !rec_silent_end(c)) {
        rec_append(w, c, f->pcm);
        c->quiet = frame_quiet(f->pcm, c->samples) ? c->quiet + 1 : 0;
    }
}

/* Takes what the tap holds into the file. True when the recording is over. */
static bool rec_drain(struct writer *w, struct rec *c)
{
    if (rec_failed(c))
        return true;
    bool closed = media_tap_closed(c->tap); /* seen before the ring is found empty */
    bool empty = false;
    while (!rec_failed(c) && c->frames < c->limit && !rec_silent_end(c)) {
        size_t n = media_tap_pop(c->tap, w->frames, POP_BATCH);
        for (size_t i = 0; i < n && !rec_failed(c) && c->frames < c->limit && !rec_silent_end(c);
             i++)
            rec_frame(w, c, &w->frames[i]);
        if (n < POP_BATCH) {
            empty = true;
            break;
        }
    }
    bool done = c->ending || (closed && empty) || rec_silent_end(c);
    if (rec_silent_end(c))
        c->res.ended_by_silence = true;
    /* Frames the tap dropped after the last one it delivered: no later frame shows their gap.
     * Put in once the tap has nothing more to give, so the file ends at wall time too. */
    if (done && c->have_tick && !rec_failed(c)) {
        uint64_t dropped = media_tap_dropped(c->tap);
        if (dropped > c->last_dropped_before) {
            rec_silence(w, c, dropped - c->last_dropped_before);
            c->last_dropped_before = dropped;
        }
    }
    if (!rec_failed(c))
        rec_flush(w, c);
    if (rec_failed(c))
        return true;
    if (c->frames >= c->limit) {
        if (c->limit_is_max)
            c->res.reached_max = true;
        else
            rec_fail(c, "write", EFBIG); /* a WAV file holds no more */
        return true;
    }
    if (c->data_bytes != c->header_bytes &&
        mono_ms() - c->header_ms >= w->r->cfg.header_interval_ms) {
        rec_header(c);
        if (rec_failed(c))
            return true;
    }
    return done;
}

static void post_done(struct recorder *r, struct rec *c)
{
    c->done_next = NULL;
    pthread_mutex_lock(&r->done_mu);
    if (r->done_tail)
        r->done_tail->done_next = c;
    else
        r->done_head = c;
    r->done_tail = c;
    pthread_mutex_unlock(&r->done_mu);
    uv_async_send(r->async);
}

/* The end of a recording: the header made right, the file synced and closed, the result posted. */
static void rec_finish(struct writer *w, struct rec *c)
{
    if (c->fd >= 0) {
        if (c->header_written)
            rec_header(c);
        if (close(c->fd) < 0)
            rec_fail(c, "close", errno);
        c->fd = -1;
    }
    struct recorder_result *res = &c->res;
    str_copy(res->id, sizeof(res->id), c->id);
    res->frames = c->data_bytes / c->frame_bytes;
    res->bytes = c->header_written ? WAV_HEADER_BYTES + c->data_bytes : 0;
    res->duration_ms = (int64_t)res->frames * 20;
    /* The one log line of its end is the caller's, which knows what the file was for. */
    media_tap_unref(c->tap);
    c->tap = NULL;
    post_done(w->r, c);
}

static void writer_drain(struct writer *w)
{
    struct rec **pp = &w->recs;
    while (*pp) {
        struct rec *c = *pp;
        if (rec_drain(w, c)) {
            *pp = c->w_next;
            rec_finish(w, c);
        } else {
            pp = &c->w_next;
        }
    }
}

/* A writer yields to the media threads when the machine is busy: its taps hold seconds of audio,
 * a tick has 20 ms. Raising a thread's own nice value needs no privilege (Linux applies it per
 * thread). */
#define WRITER_NICE 5

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), WRITER_NICE);
    int interval = w->r->cfg.drain_interval_ms;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        /* Nothing to drain: sleep until a recording comes (an idle server costs nothing). */
        while (!w->kick && !w->stop) {
            if (!w->recs)
                pthread_cond_wait(&w->cv, &w->mu);
            else if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) == ETIMEDOUT)
                break;
        }
        w->kick = false;
        bool stop = w->stop;
        struct rec *fresh = w->incoming;
        w->incoming = NULL;
        for (struct rec *c = w->recs; c; c = c->w_next)
            c->ending |= c->close_asked || stop;
        for (struct rec *c = fresh; c; c = c->w_next)
            c->ending |= c->close_asked || stop;
        pthread_mutex_unlock(&w->mu);

        /* The new ones, oldest first, at the end of the list. */
        struct rec *rev = NULL;
        while (fresh) {
            struct rec *next = fresh->w_next;
            fresh->w_next = rev;
            rev = fresh;
            fresh = next;
        }
        struct rec **tail = &w->recs;
        while (*tail)
            tail = &(*tail)->w_next;
        *tail = rev;
        for (struct rec *c = rev; c; c = c->w_next)
            rec_open(c);

        writer_drain(w);
        if (stop && !w->recs)
            return NULL; /* the mutex is not held here */

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += (long)(interval % 1000) * 1000000;
        deadline.tv_sec += interval / 1000 + deadline.tv_nsec / 1000000000;
        deadline.tv_nsec %= 1000000000;
        pthread_mutex_lock(&w->mu);
    }
}

/* ---- control thread ---- */

/* Hands finished recordings to the callback, in the order they finished. */
static void deliver(struct recorder *r)
{
    pthread_mutex_lock(&r->done_mu);
    struct rec *list = r->done_head;
    r->done_head = r->done_tail = NULL;
    pthread_mutex_unlock(&r->done_mu);
    while (list) {
        struct rec *c = list;
        list = c->done_next;
        idmap_del(&r->open, c->id);
        r->n_open--;
        c->w->n_recs--;
        r->cb(r->ctx, &c->res);
        free(c->path);
        free(c);
    }
    if (r->n_open == 0)
        uv_unref((uv_handle_t *)r->async);
}

static void on_async(uv_async_t *h)
{
    deliver(h->data);
}

struct recorder *recorder_create(uv_loop_t *loop, const struct recorder_config *cfg,
                                 recorder_done_cb cb, void *ctx)
{
    if (cfg->threads < 1 || cfg->threads > RECORDER_THREADS_MAX || cfg->header_interval_ms < 0 ||
        cfg->drain_interval_ms < 0)
        die("recorder: %d threads (1..%d), header every %d ms, drain every %d ms are out of range",
            cfg->threads, RECORDER_THREADS_MAX, cfg->header_interval_ms, cfg->drain_interval_ms);
    struct recorder *r = xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->cb = cb;
    r->ctx = ctx;
    r->cfg = *cfg;
    if (r->cfg.header_interval_ms == 0)
        r->cfg.header_interval_ms = DEFAULT_HEADER_INTERVAL_MS;
    if (r->cfg.drain_interval_ms == 0)
        r->cfg.drain_interval_ms = DEFAULT_DRAIN_INTERVAL_MS;
    idmap_init(&r->open);
    pthread_mutex_init(&r->done_mu, NULL);
    r->async = xcalloc(1, sizeof(*r->async));
    if (uv_async_init(loop, r->async, on_async) != 0)
        die("recorder: cannot create its wake-up handle");
    r->async->data = r;
    uv_unref((uv_handle_t *)r->async); /* an idle recorder does not keep the loop running */
    r->n_writers = cfg->threads;
    r->writers = xcalloc((size_t)cfg->threads, sizeof(*r->writers));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (int i = 0; i < r->n_writers; i++) {
        struct writer *w = &r->writers[i];
        w->r = r;
        w->index = i;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, &ca);
        int rc = pthread_create(&w->tid, NULL, writer_main, w);
        if (rc != 0)
            die("recorder: cannot start writer %d: %s", i, strerror(rc));
        char name[32];
        snprintf(name, sizeof(name), "recorder-%d", i);
        pthread_setname_np(w->tid, name);
    }
    pthread_condattr_destroy(&ca);
    return r;
}

static void free_async(uv_handle_t *h)
{
    free(h);
}

/* The writers finish every recording (the new ones are opened first) before they exit; their
 * results are then delivered here, before this returns. */
void recorder_destroy(struct recorder *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_writers; i++) {
        struct writer *w = &r->writers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    for (int i = 0; i < r->n_writers; i++)
        pthread_join(r->writers[i].tid, NULL);
    deliver(r);
    assert(r->n_open == 0);
    for (int i = 0; i < r->n_writers; i++) {
        pthread_mutex_destroy(&r->writers[i].mu);
        pthread_cond_destroy(&r->writers[i].cv);
    }
    free(r->writers);
    idmap_fini(&r->open);
    pthread_mutex_destroy(&r->done_mu);
    uv_close((uv_handle_t *)r->async, free_async);
    free(r);
}

/* Spread: the writer with the fewest recordings. */
static struct writer *pick_writer(struct recorder *r)
{
    struct writer *best = &r->writers[0];
    for (int i = 1; i < r->n_writers; i++)
        if (r->writers[i].n_recs < best->n_recs)
            best = &r->writers[i];
    return best;
}

int recorder_open(struct recorder *r, const char *id, const char *path, struct media_tap *tap,
                  uint64_t max_frames)
{
    return recorder_open_until_silence(r, id, path, tap, max_frames, 0);
}

int recorder_open_until_silence(struct recorder *r, const char *id, const char *path,
                                struct media_tap *tap, uint64_t max_frames, uint64_t silence_frames)
{
    if (strlen(id) > ID_LEN || idmap_get(&r->open, id))
        return -1;
    struct rec *c = xcalloc(1, sizeof(*c));
    str_copy(c->id, sizeof(c->id), id);
    c->path = xstrdup(path);
    c->tap = media_tap_ref(tap);
    c->rate = (uint32_t)media_tap_rate(tap);
    c->samples = media_tap_samples(tap);
    c->frame_bytes = c->samples * 2;
    c->fd = -1;
    uint64_t frames_max = WAV_DATA_MAX / c->frame_bytes; /* about 74 hours at 8 kHz, 37 at 16 */
    c->limit_is_max = max_frames > 0 && max_frames <= frames_max;
    c->limit = c->limit_is_max ? max_frames : frames_max;
    c->silence_end = silence_frames;
    c->w = pick_writer(r);
    c->w->n_recs++;
    idmap_put(&r->open, c->id, c);
    if (r->n_open++ == 0)
        uv_ref((uv_handle_t *)r->async);
    struct writer *w = c->w;
    pthread_mutex_lock(&w->mu);
    c->w_next = w->incoming;
    w->incoming = c;
    w->kick = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void recorder_close(struct recorder *r, const char *id)
{
    struct rec *c = idmap_get(&r->open, id);
    if (!c || c->closing)
        return;
    c->closing = true;
    struct writer *w = c->w;
    pthread_mutex_lock(&w->mu);
    c->close_asked = true; /* read by the writer only while it still has c */
    w->kick = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

size_t recorder_open_count(const struct recorder *r)
{
    return r->n_open;
}
