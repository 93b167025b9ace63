/* The worker pool: jobs run on its threads, come back on the loop thread, a full queue refuses
 * at once, destroy cancels what never ran, and an idle pool does not keep the loop alive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/worker.h"

#define MAX_JOBS 16

/* A gate the jobs wait at, so a test decides when they finish. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open = true;
static int started;                  /* under gate_mu */
static int order[MAX_JOBS], n_order; /* jobs' indexes as they ran, under gate_mu */

static void gate_set(bool open)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = open;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static int started_count(void)
{
    pthread_mutex_lock(&gate_mu);
    int n = started;
    pthread_mutex_unlock(&gate_mu);
    return n;
}

struct tjob {
    struct worker_job w;
    struct fx *f;
    int index;
    pthread_t ran_on;
    int status;
    bool done;
};

struct fx {
    uv_loop_t loop;
    struct worker_pool *pool;
    pthread_t main_thread;
    struct tjob jobs[MAX_JOBS];
    int n_done;
    int resubmit_rc; /* what a submit from inside done() returned */
    bool resubmit;
};

static void work(struct worker_job *w)
{
    struct tjob *j = w->data;
    pthread_mutex_lock(&gate_mu);
    started++;
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    order[n_order++] = j->index;
    pthread_mutex_unlock(&gate_mu);
    j->ran_on = pthread_self();
}

static void done(struct worker_job *w, int status)
{
    struct tjob *j = w->data;
    assert_true(pthread_equal(pthread_self(), j->f->main_thread));
    assert_false(j->done);
    j->done = true;
    j->status = status;
    j->f->n_done++;
    if (j->f->resubmit)
        j->f->resubmit_rc = worker_pool_submit(j->f->pool, w);
}

static int submit_lane(struct fx *f, int i, uint64_t lane)
{
    struct tjob *j = &f->jobs[i];
    memset(j, 0, sizeof(*j));
    j->f = f;
    j->index = i;
    j->w.lane = lane;
    j->w.data = j;
    j->w.work = work;
    j->w.done = done;
    return worker_pool_submit(f->pool, &j->w);
}

static int submit(struct fx *f, int i)
{
    return submit_lane(f, i, 0);
}

static void on_guard(uv_timer_t *t)
{
    fail_msg("the loop ran for more than 10 s");
}

/* Runs the loop until it has nothing left to do, bounded by an unreferenced guard timer. */
static void run_loop(struct fx *f)
{
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    uv_timer_start(&guard, on_guard, 10000, 0);
    uv_unref((uv_handle_t *)&guard);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void wait_started(int n)
{
    for (int i = 0; i < 5000 && started_count() < n; i++)
        usleep(1000);
    assert_int_equal(started_count(), n);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->main_thread = pthread_self();
    gate_set(true);
    started = 0;
    n_order = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    gate_set(true);
    worker_pool_destroy(f->pool);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void test_runs_on_threads_done_on_loop(void **state)
{
    struct fx *f = *state;
    f->pool = worker_pool_create(&f->loop, "t-run", 2, 8);
    for (int i = 0; i < 10; i++)
        assert_int_equal(submit(f, i), 0);
    assert_int_equal(worker_pool_pending(f->pool), 10);
    run_loop(f); /* returns only once every job came back: pending jobs keep the loop alive */
    assert_int_equal(f->n_done, 10);
    assert_int_equal(worker_pool_pending(f->pool), 0);
    for (int i = 0; i < 10; i++) {
        assert_true(f->jobs[i].done);
        assert_int_equal(f->jobs[i].status, 0);
        assert_false(pthread_equal(f->jobs[i].ran_on, f->main_thread));
    }
}

static void test_full_queue_refuses_at_once(void **state)
{
    struct fx *f = *state;
    f->pool = worker_pool_create(&f->loop, "t-full", 2, 3);
    gate_set(false);
    for (int i = 0; i < 5; i++) /* 2 running + 3 waiting */
        assert_int_equal(submit(f, i), 0);
    wait_started(2);
    assert_int_equal(worker_pool_waiting(f->pool), 3);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(submit(f, 5), WORKER_FULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 50000000L);
    gate_set(true);
    run_loop(f);
    assert_int_equal(f->n_done, 5);
    assert_false(f->jobs[5].done);
    /* Room again. */
    assert_int_equal(submit(f, 6), 0);
    run_loop(f);
    assert_int_equal(f->n_done, 6);
}

static void *open_gate_later(void *arg)
{
    usleep(100 * 1000);
    gate_set(true);
    return NULL;
}

static void test_destroy_cancels_waiting(void **state)
{
    struct fx *f = *state;
    f->pool = worker_pool_create(&f->loop, "t-stop", 1, 4);
    gate_set(false);
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(f, i), 0);
    wait_started(1);
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
    f->resubmit = true;
    worker_pool_destroy(f->pool); /* blocks until the running job finished */
    f->pool = NULL;
    pthread_join(opener, NULL);
    assert_int_equal(f->n_done, 3);
    assert_int_equal(f->jobs[0].status, 0);
    assert_int_equal(f->jobs[1].status, WORKER_CANCELLED);
    assert_int_equal(f->jobs[2].status, WORKER_CANCELLED);
    assert_int_equal(f->resubmit_rc, WORKER_STOPPING);
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void test_idle_pool_lets_loop_end(void **state)
{
    struct fx *f = *state;
    f->pool = worker_pool_create(&f->loop, "t-idle", 3, 0);
    /* Nothing pending: uv_run returns at once instead of waiting on the pool. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    /* A queue of 0: only as many jobs as threads. */
    gate_set(false);
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(f, i), 0);
    assert_int_equal(submit(f, 3), WORKER_FULL);
    gate_set(true);
    run_loop(f);
    assert_int_equal(f->n_done, 3);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

static void test_lanes_take_turns(void **state)
{
    struct fx *f = *state;
    f->pool = worker_pool_create(&f->loop, "t-lanes", 1, 8);
    gate_set(false);
    assert_int_equal(submit_lane(f, 0, 7), 0); /* lane 7 runs job 0 at once */
    wait_started(1);
    for (int i = 1; i <= 3; i++) /* a backlog in lane 7 */
        assert_int_equal(submit_lane(f, i, 7), 0);
    assert_int_equal(submit_lane(f, 4, 8), 0);
    assert_int_equal(submit_lane(f, 5, 9), 0);
    assert_int_equal(submit_lane(f, 6, 8), 0);
    gate_set(true);
    run_loop(f);
    assert_int_equal(n_order, 7);
    /* Lane 7 had the turn when 8 and 9 came: one more of its jobs, then the others in turn. */
    const int want[] = {0, 1, 4, 5, 2, 6, 3};
    for (int i = 0; i < 7; i++)
        assert_int_equal(order[i], want[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_on_threads_done_on_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_refuses_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_cancels_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_pool_lets_loop_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lanes_take_turns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
