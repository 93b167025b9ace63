/* Worker pool: one mutex guards the waiting jobs, the finished list and the counters; threads
 * sleep on one condition variable. Waiting jobs form a ring of lanes, each lane a chain of jobs
 * hanging from its first one (so no allocation): a thread takes the first job of the lane at the
 * ring's cursor and moves the cursor on, which makes lanes take turns. Finding a job's lane at
 * submit walks the ring: at most one step per lane with waiting jobs, itself at most the queue
 * size. Finished jobs go back to the loop through a single uv_async_t (libuv coalesces sends, so
 * the callback drains the whole list). The async handle is referenced only while jobs are
 * pending, so an idle pool never keeps the loop running. */
#include "core/worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

#define WORKER_MAX_THREADS 64

struct worker_pool {
    uv_loop_t *loop;
    uv_async_t async;
    pthread_t *threads;
    int n_threads;
    size_t queue_max;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu. */
    struct worker_job *ring; /* the lane to serve next (circular, by next/prev); NULL: none */
    size_t n_waiting;
    size_t n_running;
    struct worker_job *done_head, *done_tail;
    bool stopping;

    /* Control thread only. */
    size_t pending; /* submitted and not yet handed back through done() */
    bool destroyed;
};

static void list_push(struct worker_job **head, struct worker_job **tail, struct worker_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Adds j behind the other jobs of its lane, or as a new lane at the end of the turn. */
static void ring_add(struct worker_pool *p, struct worker_job *j)
{
    j->lane_next = NULL;
    j->lane_tail = j;
    struct worker_job *h = p->ring;
    if (h) {
        do {
            if (h->lane == j->lane) {
                h->lane_tail->lane_next = j;
                h->lane_tail = j;
                return;
            }
            h = h->next;
        } while (h != p->ring);
        j->next = p->ring; /* just before the cursor: last in this turn */
        j->prev = p->ring->prev;
        j->prev->next = j;
        p->ring->prev = j;
        return;
    }
    j->next = j->prev = j;
    p->ring = j;
}

/* Takes the first job of the lane at the cursor; the cursor moves to the next lane. */
static struct worker_job *ring_take(struct worker_pool *p)
{
    struct worker_job *h = p->ring, *k = h->lane_next;
    if (k) { /* k heads the lane now, in h's place */
        k->lane_tail = h->lane_tail;
        if (h->next == h) {
            k->next = k->prev = k;
        } else {
            k->next = h->next;
            k->prev = h->prev;
            k->prev->next = k;
            k->next->prev = k;
        }
        p->ring = k->next;
    } else if (h->next == h) {
        p->ring = NULL;
    } else {
        h->prev->next = h->next;
        h->next->prev = h->prev;
        p->ring = h->next;
    }
    return h;
}

static void *thread_main(void *arg)
{
    struct worker_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && !p->ring)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break; /* waiting jobs are cancelled by worker_pool_destroy() */
        struct worker_job *j = ring_take(p);
        p->n_waiting--;
        p->n_running++;
        pthread_mutex_unlock(&p->mu);
        j->work(j);
        pthread_mutex_lock(&p->mu);
        p->n_running--;
        list_push(&p->done_head, &p->done_tail, j);
        uv_async_send(&p->async);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Hands finished jobs back; done() may submit again or free its job. */
static void deliver(struct worker_pool *p, struct worker_job *list, int status)
{
    while (list) {
        struct worker_job *next = list->next;
        p->pending--;
        list->done(list, status);
        list = next;
    }
}

static void on_async(uv_async_t *h)
{
    struct worker_pool *p = h->data;
    pthread_mutex_lock(&p->mu);
    struct worker_job *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    deliver(p, list, 0);
    if (p->pending == 0 && !p->destroyed)
        uv_unref((uv_handle_t *)&p->async);
}

struct worker_pool *worker_pool_create(uv_loop_t *loop, const char *name, int threads,
                                       int queue_max)
{
    if (threads < 1 || threads > WORKER_MAX_THREADS || queue_max < 0)
        die("worker pool %s: %d threads and a queue of %d are out of range", name, threads,
            queue_max);
    struct worker_pool *p = xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->queue_max = (size_t)queue_max;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (uv_async_init(loop, &p->async, on_async) != 0)
        die("worker pool %s: cannot create its wake-up handle", name);
    p->async.data = p;
    uv_unref((uv_handle_t *)&p->async);
    p->threads = xcalloc((size_t)threads, sizeof(*p->threads));
    char tname[16];
    str_copy(tname, sizeof(tname), name);
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, thread_main, p);
        if (rc != 0)
            die("worker pool %s: cannot start thread %d: %s", name, i, strerror(rc));
        pthread_setname_np(p->threads[i], tname);
        p->n_threads++;
    }
    return p;
}

int worker_pool_submit(struct worker_pool *p, struct worker_job *job)
{
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return WORKER_STOPPING;
    }
    /* Busy threads plus waiting jobs: a job submitted while a thread is idle does not wait. */
    if (p->n_running + p->n_waiting >= (size_t)p->n_threads + p->queue_max) {
        pthread_mutex_unlock(&p->mu);
        return WORKER_FULL;
    }
    ring_add(p, job);
    p->n_waiting++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->pending++ == 0)
        uv_ref((uv_handle_t *)&p->async);
    return 0;
}

size_t worker_pool_waiting(const struct worker_pool *p)
{
    struct worker_pool *mp = (struct worker_pool *)p;
    pthread_mutex_lock(&mp->mu);
    size_t n = mp->n_waiting;
    pthread_mutex_unlock(&mp->mu);
    return n;
}

size_t worker_pool_pending(const struct worker_pool *p)
{
    return p->pending;
}

static void close_cb(uv_handle_t *h)
{
    struct worker_pool *p = h->data;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

void worker_pool_destroy(struct worker_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    /* No thread is left: the lists are ours. */
    p->destroyed = true;
    struct worker_job *finished = p->done_head, *waiting = NULL, *wtail = NULL;
    p->done_head = p->done_tail = NULL;
    while (p->ring)
        list_push(&waiting, &wtail, ring_take(p));
    p->n_waiting = 0;
    deliver(p, finished, 0);
    deliver(p, waiting, WORKER_CANCELLED);
    uv_close((uv_handle_t *)&p->async, close_cb);
}
