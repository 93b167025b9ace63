#include "core/sched.h"

#include <stdlib.h>

#include "core/mem.h"
#include "core/timeutil.h"

struct sched_timer {
    int64_t when;
    uint64_t seq; /* ties fire in creation order */
    size_t index;
    sched_cb cb;
    void *arg;
};

struct sched {
    struct sched_timer **heap;
    size_t len, cap;
    uint64_t next_seq;
    int manual;
    int64_t manual_now;
    uv_timer_t *uv_timer; /* real clock only */
};

static int before(const struct sched_timer *a, const struct sched_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_swap(struct sched *s, size_t i, size_t j)
{
    struct sched_timer *t = s->heap[i];
    s->heap[i] = s->heap[j];
    s->heap[j] = t;
    s->heap[i]->index = i;
    s->heap[j]->index = j;
}

static void sift_up(struct sched *s, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(s->heap[i], s->heap[p]))
            break;
        heap_swap(s, i, p);
        i = p;
    }
}

static void sift_down(struct sched *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->len && before(s->heap[l], s->heap[m]))
            m = l;
        if (r < s->len && before(s->heap[r], s->heap[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_remove(struct sched *s, size_t i)
{
    s->len--;
    if (i != s->len) {
        s->heap[i] = s->heap[s->len];
        s->heap[i]->index = i;
        sift_down(s, i);
        sift_up(s, i);
    }
}

int64_t sched_now(const struct sched *s)
{
    return s->manual ? s->manual_now : tm_now_us();
}

static void fire_due(struct sched *s)
{
    /* Timers added by callbacks for "now" fire in this same pass, after the current ones. */
    while (s->len > 0 && s->heap[0]->when <= sched_now(s)) {
        struct sched_timer *t = s->heap[0];
        heap_remove(s, 0);
        t->cb(t->arg);
        free(t);
    }
}

static void on_uv_timer(uv_timer_t *h);

static void rearm(struct sched *s)
{
    if (s->manual || !s->uv_timer)
        return;
    if (s->len == 0) {
        uv_timer_stop(s->uv_timer);
        return;
    }
    int64_t delta = s->heap[0]->when - sched_now(s);
    uint64_t ms = delta <= 0 ? 0 : (uint64_t)((delta + 999) / 1000);
    uv_timer_start(s->uv_timer, on_uv_timer, ms, 0);
}

static void on_uv_timer(uv_timer_t *h)
{
    struct sched *s = h->data;
    fire_due(s);
    rearm(s);
}

struct sched *sched_create_uv(uv_loop_t *loop)
{
    struct sched *s = xcalloc(1, sizeof(*s));
    s->uv_timer = xcalloc(1, sizeof(*s->uv_timer));
    uv_timer_init(loop, s->uv_timer);
    s->uv_timer->data = s;
    return s;
}

struct sched *sched_create_manual(int64_t start_us)
{
    struct sched *s = xcalloc(1, sizeof(*s));
    s->manual = 1;
    s->manual_now = start_us;
    return s;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void sched_destroy(struct sched *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->len; i++)
        free(s->heap[i]);
    free(s->heap);
    if (s->uv_timer) {
        uv_timer_stop(s->uv_timer);
        uv_close((uv_handle_t *)s->uv_timer, free_handle);
    }
    free(s);
}

struct sched_timer *sched_at(struct sched *s, int64_t when_us, sched_cb cb, void *arg)
{
    struct sched_timer *t = xmalloc(sizeof(*t));
    t->when = when_us;
    t->seq = s->next_seq++;
    t->cb = cb;
    t->arg = arg;
    if (s->len == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->heap = xrealloc(s->heap, s->cap * sizeof(*s->heap));
    }
    t->index = s->len;
    s->heap[s->len++] = t;
    sift_up(s, t->index);
    if (t->index == 0)
        rearm(s);
    return t;
}

void sched_cancel(struct sched *s, struct sched_timer *t)
{
    if (!t)
        return;
    int was_first = t->index == 0;
    heap_remove(s, t->index);
    free(t);
    if (was_first)
        rearm(s);
}

void sched_advance(struct sched *s, int64_t us)
{
    int64_t target = s->manual_now + us;
    /* Step through deadlines so each callback sees the clock at its own deadline. */
    while (s->len > 0 && s->heap[0]->when <= target) {
        if (s->heap[0]->when > s->manual_now)
            s->manual_now = s->heap[0]->when;
        fire_due(s);
    }
    s->manual_now = target;
}

size_t sched_pending(const struct sched *s)
{
    return s->len;
}
