#include "speech/tts.h"

#include <assert.h>
#include <flite/flite.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/mem.h"

/* flite's voices have no header of their own. */
cst_voice *register_cmu_us_kal(const char *voxdir);

#define TTS_LANG "en-US"
#define TTS_RATE 8000

/* ---- synthesis (any thread, one at a time) ---- */

/* flite writes its complaints (a diphone the voice lacks: "udb failed to find entry for: y-n")
 * straight to stderr through this function. Defined here, it takes the place of libflite's own
 * (the shared library calls it through its PLT), so they become debug log lines instead of stray
 * text in the server's log. */
int cst_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cst_errmsg(const char *fmt, ...)
{
    if (!log_enabled(LOG_LEVEL_DEBUG))
        return 0;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    buf[strcspn(buf, "\r\n")] = '\0';
    log_debug("msg=\"flite\" detail=\"%s\"", buf);
    return 0;
}

static pthread_mutex_t synth_lock = PTHREAD_MUTEX_INITIALIZER;
static cst_voice *voice; /* registered once, under synth_lock, kept for the process */

/* What flite is given: printable ASCII. Typographic quotes, dashes, ellipses and no-break spaces
 * become their ASCII forms; control characters and other non-ASCII characters become spaces
 * (flite reads bytes as Latin-1 and would spell out the pieces of a UTF-8 sequence). Never longer
 * than the input. */
static char *sanitize(const char *in)
{
    size_t len = strlen(in);
    char *out = xmalloc(len + 1), *o = out;
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    while (p < end) {
        unsigned char c = *p;
        if (c < 0x80) {
            *o++ = c >= 0x20 && c != 0x7f ? (char)c : ' ';
            p++;
            continue;
        }
        size_t seq = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (seq > (size_t)(end - p))
            seq = (size_t)(end - p);
        const char *rep = " ";
        if (seq == 3 && p[0] == 0xe2 && p[1] == 0x80) {
            switch (p[2]) {
            case 0x98:
            case 0x99:
                rep = "'";
                break; /* ‘ ’ */
            case 0x9c:
            case 0x9d:
                rep = "\"";
                break; /* “ ” */
            case 0x93:
            case 0x94:
                rep = " - ";
                break; /* – — */
            case 0xa6:
                rep = "...";
                break; /* … */
            }
        }
        size_t rl = strlen(rep); /* rl <= seq, except "'" / "\"" / " " which are 1 */
        memcpy(o, rep, rl);
        o += rl;
        p += seq;
    }
    *o = '\0';
    return out;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return false;
    return true;
}

/* Renders sanitized text. flite reports fatal errors through cst_errjmp (else it exits the
 * process): the jump lands here, with whatever flite had allocated for that text lost. */
static int synth(const char *text, int16_t **samples, size_t *n, char *err, size_t errlen)
{
    pthread_mutex_lock(&synth_lock);
    if (!voice) {
        flite_init();
        voice = register_cmu_us_kal(NULL);
    }
    int rc = -1;
    jmp_buf env;
    cst_wave *volatile w = NULL;
    if (!voice) {
        snprintf(err, errlen, "the flite voice cmu_us_kal is not available");
        goto out;
    }
    cst_errjmp = &env;
    if (setjmp(env) == 0)
        w = flite_text_to_wave(text, voice);
    cst_errjmp = NULL;
    if (!w) {
        snprintf(err, errlen, "flite could not render the text");
        goto out;
    }
    if (w->sample_rate != TTS_RATE || w->num_channels != 1) {
        snprintf(err, errlen, "flite rendered %d Hz, %d channels (want %d Hz mono)", w->sample_rate,
                 w->num_channels, TTS_RATE);
        goto out;
    }
    if (w->num_samples <= 0) {
        snprintf(err, errlen, "the text has nothing to say");
        goto out;
    }
    *n = (size_t)w->num_samples;
    *samples = xmalloc(*n * sizeof(int16_t));
    memcpy(*samples, w->samples, *n * sizeof(int16_t));
    rc = 0;
out:
    if (w)
        delete_wave(w);
    pthread_mutex_unlock(&synth_lock);
    return rc;
}

static int check_text(const char *text, char *err, size_t errlen)
{
    if (!text || blank(text)) {
        snprintf(err, errlen, "the text is empty");
        return -1;
    }
    size_t len = strlen(text);
    if (len > TTS_MAX_TEXT) {
        snprintf(err, errlen, "the text is %zu bytes long (at most %d)", len, TTS_MAX_TEXT);
        return -1;
    }
    return 0;
}

int tts_render_sync(const char *text, int16_t **samples, size_t *n)
{
    char err[128];
    if (check_text(text, err, sizeof(err)) < 0)
        return -1;
    char *clean = sanitize(text);
    int rc = synth(clean, samples, n, err, sizeof(err));
    free(clean);
    return rc;
}

const char *tts_languages(void)
{
    return TTS_LANG;
}

/* ---- jobs and the cache (loop thread) ---- */

struct cache_entry {
    struct cache_entry *prev, *next; /* most recently used first */
    uint64_t hash;
    char *key; /* language '\n' sanitized text */
    struct media_clip *clip;
    size_t bytes;
};

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_READY };

struct tts_job {
    struct tts *t;               /* NULL once the tts is destroyed while the job runs */
    struct tts_job *prev, *next; /* in the queue or the ready list */
    enum job_state state;
    bool cancelled;
    uv_work_t work;
    char *key;  /* language '\n' sanitized text */
    char *text; /* points into key */
    uint64_t hash;
    tts_done_cb cb;
    void *arg;
    /* results */
    struct media_clip *clip;
    int16_t *samples;
    size_t n;
    int rc;
    char error[160];
};

struct job_list {
    struct tts_job *head, *tail;
    size_t n;
};

struct tts {
    uv_loop_t *loop;
    uv_timer_t *timer;     /* delivers ready jobs on the next loop iteration */
    struct job_list queue; /* waiting to render, in order */
    struct job_list ready; /* answered from the cache, to call back */
    struct tts_job *running;
    struct cache_entry *lru_head, *lru_tail;
    size_t cache_bytes, cache_max;
    bool *alive; /* set while callbacks run: cleared by tts_destroy() */
};

static void list_push(struct job_list *l, struct tts_job *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static void list_remove(struct job_list *l, struct tts_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
    l->n--;
}

static void job_free(struct tts_job *j)
{
    media_clip_unref(j->clip);
    free(j->samples);
    free(j->key);
    free(j);
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 14695981039346656037u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void lru_unlink(struct tts *t, struct cache_entry *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        t->lru_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        t->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push_front(struct tts *t, struct cache_entry *c)
{
    c->prev = NULL;
    c->next = t->lru_head;
    if (t->lru_head)
        t->lru_head->prev = c;
    else
        t->lru_tail = c;
    t->lru_head = c;
}

static void cache_entry_free(struct cache_entry *c)
{
    media_clip_unref(c->clip);
    free(c->key);
    free(c);
}

/* A linear scan of the entries by hash: a few thousand prompts at most fit in the budget, and a
 * lookup happens once per prompt, not per frame. */
static struct media_clip *cache_get(struct tts *t, const char *key, uint64_t hash)
{
    for (struct cache_entry *c = t->lru_head; c; c = c->next) {
        if (c->hash == hash && strcmp(c->key, key) == 0) {
            lru_unlink(t, c);
            lru_push_front(t, c);
            return media_clip_ref(c->clip);
        }
    }
    return NULL;
}

static void cache_put(struct tts *t, const char *key, uint64_t hash, struct media_clip *clip)
{
    size_t bytes =
        media_clip_samples(clip) * sizeof(int16_t) + strlen(key) + sizeof(struct cache_entry);
    if (bytes > t->cache_max)
        return;
    for (struct cache_entry *c = t->lru_head; c; c = c->next)
        if (c->hash == hash && strcmp(c->key, key) == 0)
            return; /* rendered twice (asked again while the first render ran) */
    while (t->cache_bytes + bytes > t->cache_max && t->lru_tail) {
        struct cache_entry *old = t->lru_tail;
        lru_unlink(t, old);
        t->cache_bytes -= old->bytes;
        cache_entry_free(old);
    }
    struct cache_entry *c = xcalloc(1, sizeof(*c));
    c->hash = hash;
    c->key = xstrdup(key);
    c->clip = media_clip_ref(clip);
    c->bytes = bytes;
    t->cache_bytes += bytes;
    lru_push_front(t, c);
}

static void pump(struct tts *t);

static void work_cb(uv_work_t *w)
{
    struct tts_job *j = w->data;
    j->rc = synth(j->text, &j->samples, &j->n, j->error, sizeof(j->error));
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct tts_job *j = w->data;
    struct tts *t = j->t;
    if (status == 0 && j->rc == 0) {
        j->clip = media_clip_create(j->samples, j->n);
        free(j->samples);
        j->samples = NULL;
    } else if (status != 0 && j->rc == 0) {
        snprintf(j->error, sizeof(j->error), "rendering was cancelled");
    }
    if (!t) { /* the tts is gone */
        job_free(j);
        return;
    }
    t->running = NULL;
    if (j->clip)
        cache_put(t, j->key, j->hash, j->clip);
    pump(t);
    if (!j->cancelled) {
        struct media_clip *clip = j->clip;
        j->clip = NULL;
        /* last: the callback may destroy the tts */
        j->cb(j->arg, clip, clip ? NULL : j->error);
    }
    job_free(j);
}

static void on_ready(uv_timer_t *h)
{
    struct tts *t = h->data;
    bool alive = true;
    t->alive = &alive;
    /* Only those ready now: a callback that asks for a cached prompt again is answered next time.
     */
    for (size_t k = t->ready.n; k > 0 && t->ready.head; k--) {
        struct tts_job *j = t->ready.head;
        list_remove(&t->ready, j);
        struct media_clip *clip = j->clip;
        j->clip = NULL;
        j->cb(j->arg, clip, NULL);
        job_free(j);
        if (!alive)
            return;
    }
    t->alive = NULL;
}

static void make_ready(struct tts *t, struct tts_job *j, struct media_clip *clip)
{
    j->clip = clip;
    j->state = JOB_READY;
    list_push(&t->ready, j);
    uv_timer_start(t->timer, on_ready, 0, 0);
}

/* Starts the next render when none runs; prompts cached meanwhile are answered from the cache. */
static void pump(struct tts *t)
{
    while (!t->running && t->queue.head) {
        struct tts_job *j = t->queue.head;
        list_remove(&t->queue, j);
        struct media_clip *clip = cache_get(t, j->key, j->hash);
        if (clip) {
            make_ready(t, j, clip);
            continue;
        }
        j->state = JOB_RUNNING;
        j->work.data = j;
        t->running = j;
        int rc = uv_queue_work(t->loop, &j->work, work_cb, after_work_cb);
        assert(rc == 0); /* fails only for a missing work callback */
        (void)rc;
    }
}

struct tts *tts_create(uv_loop_t *loop)
{
    struct tts *t = xcalloc(1, sizeof(*t));
    t->loop = loop;
    t->cache_max = TTS_CACHE_BYTES;
    t->timer = xcalloc(1, sizeof(*t->timer));
    uv_timer_init(loop, t->timer);
    t->timer->data = t;
    return t;
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

void tts_destroy(struct tts *t)
{
    if (!t)
        return;
    if (t->alive)
        *t->alive = false;
    struct tts_job *j;
    while ((j = t->queue.head)) {
        list_remove(&t->queue, j);
        job_free(j);
    }
    while ((j = t->ready.head)) {
        list_remove(&t->ready, j);
        job_free(j);
    }
    if (t->running) { /* finishes on the pool; after_work_cb frees it */
        t->running->t = NULL;
        uv_cancel((uv_req_t *)&t->running->work);
    }
    while (t->lru_head) {
        struct cache_entry *c = t->lru_head;
        lru_unlink(t, c);
        cache_entry_free(c);
    }
    uv_close((uv_handle_t *)t->timer, free_timer);
    free(t);
}

struct tts_job *tts_render(struct tts *t, const char *text, const char *language, tts_done_cb cb,
                           void *arg, char *err, size_t errlen)
{
    if (!language)
        language = TTS_LANG;
    if (strcasecmp(language, TTS_LANG) != 0) {
        snprintf(err, errlen, "unsupported language \"%.32s\" (supported: %s)", language,
                 tts_languages());
        return NULL;
    }
    if (check_text(text, err, errlen) < 0)
        return NULL;
    char *clean = sanitize(text);
    size_t klen = strlen(TTS_LANG) + 1 + strlen(clean) + 1;
    struct tts_job *j = xcalloc(1, sizeof(*j));
    j->t = t;
    j->cb = cb;
    j->arg = arg;
    j->key = xmalloc(klen);
    snprintf(j->key, klen, "%s\n%s", TTS_LANG, clean);
    free(clean);
    j->text = j->key + strlen(TTS_LANG) + 1;
    j->hash = hash_key(j->key);
    struct media_clip *clip = cache_get(t, j->key, j->hash);
    if (clip) {
        make_ready(t, j, clip);
        return j;
    }
    j->state = JOB_QUEUED;
    list_push(&t->queue, j);
    pump(t);
    return j;
}

void tts_cancel(struct tts_job *j)
{
    if (!j)
        return;
    struct tts *t = j->t;
    switch (j->state) {
    case JOB_QUEUED:
        list_remove(&t->queue, j);
        job_free(j);
        break;
    case JOB_READY:
        list_remove(&t->ready, j);
        job_free(j);
        break;
    case JOB_RUNNING:
        j->cancelled = true;
        break;
    }
}
