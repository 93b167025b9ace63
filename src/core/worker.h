/* A small pool of our own worker threads for slow jobs (password hashing now; recording and
 * speech next), instead of libuv's shared default pool: N pthreads behind a bounded queue, each
 * finished job handed back to the control loop through one uv_async_t. Submitting never blocks:
 * when every thread is busy and the queue holds its maximum, the job is refused at once, so a
 * caller can answer "busy" instead of piling up work. Waiting jobs are grouped in lanes (a
 * client address, a customer): lanes take turns, so one lane's backlog does not delay the
 * others' jobs by more than one job each. */
#ifndef CONFERENCED_WORKER_H
#define CONFERENCED_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Submit refused: every thread is busy and queue_max jobs are already waiting. */
#define WORKER_FULL (-1)
/* Submit refused: the pool is being destroyed. */
#define WORKER_STOPPING (-2)
/* done() status of a job that never ran because the pool was destroyed first. */
#define WORKER_CANCELLED (-3)

struct worker_job;
/* Runs on a worker thread: must not touch control-thread state. */
typedef void (*worker_work_fn)(struct worker_job *job);
/* Runs on the control thread: status 0 (work ran) or WORKER_CANCELLED. May free the job. */
typedef void (*worker_done_fn)(struct worker_job *job, int status);

/* Caller-owned (embed it in the job's own struct, like uv_work_t); untouched by the pool
 * between done() and the next submit. */
struct worker_job {
    void *data; /* the caller's */
    worker_work_fn work;
    worker_done_fn done;
    uint64_t lane; /* jobs of one lane start in submission order; lanes take turns */
    /* The pool's. */
    struct worker_job *next, *prev;           /* ring of lanes' first jobs; the finished list */
    struct worker_job *lane_next, *lane_tail; /* the rest of the lane; its last (first job only) */
};

struct worker_pool;

/* Control thread. Starts threads (1..64) workers; queue_max (>= 0) jobs may wait for one. name
 * (at most 15 characters) names the threads for ps/top. Aborts when threads cannot start. */
struct worker_pool *worker_pool_create(uv_loop_t *loop, const char *name, int threads,
                                       int queue_max);
/* Control thread. Queues job (work and done must be set). Returns 0, WORKER_FULL or
 * WORKER_STOPPING; done() is called later (never from inside this call) only when 0 is returned.
 * While jobs are pending the pool keeps the loop alive. */
int worker_pool_submit(struct worker_pool *p, struct worker_job *job);
/* Control thread. Jobs waiting (not yet picked by a thread) and jobs running or finished but not
 * yet handed back. */
size_t worker_pool_waiting(const struct worker_pool *p);
size_t worker_pool_pending(const struct worker_pool *p);
/* Control thread. Lets running jobs finish (blocks for them), joins the threads, then calls
 * done() for every job not yet handed back: 0 for those that ran, WORKER_CANCELLED for those
 * still waiting. Frees the pool once the loop has run the handle's close callback (NULL: no-op). */
void worker_pool_destroy(struct worker_pool *p);

#endif
