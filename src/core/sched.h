/* Timers on absolute wall-clock deadlines (µs), kept in one heap and driven by the event loop
 * (or by hand in tests, with a manual clock). Control thread only. */
#ifndef CONFERENCED_SCHED_H
#define CONFERENCED_SCHED_H

#include <stdint.h>
#include <uv.h>

struct sched;
struct sched_timer;
typedef void (*sched_cb)(void *arg);

/* Creates a scheduler on the real clock, armed through one uv_timer of loop. */
struct sched *sched_create_uv(uv_loop_t *loop);
/* Creates a scheduler on a manual clock starting at start_us (tests). */
struct sched *sched_create_manual(int64_t start_us);
/* Frees every pending timer without calling it; the uv variant closes its handle on the loop. */
void sched_destroy(struct sched *s);
/* The scheduler's notion of now (µs since the epoch). */
int64_t sched_now(const struct sched *s);
/* Calls cb(arg) once at or after when_us. The returned handle stays valid until the callback
 * starts or sched_cancel() is called; the owner must forget it at either point. */
struct sched_timer *sched_at(struct sched *s, int64_t when_us, sched_cb cb, void *arg);
/* Cancels a pending timer (NULL is a no-op). */
void sched_cancel(struct sched *s, struct sched_timer *t);
/* Manual clock only: moves the clock forward by us, firing due timers in deadline order. */
void sched_advance(struct sched *s, int64_t us);
/* Number of pending timers. */
size_t sched_pending(const struct sched *s);

#endif
