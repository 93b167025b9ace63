/* The ring is core/spsc (one producer, one consumer, C11 atomics) sized to the next power of two,
 * with the tap's own capacity checked before each push, so a tap holds exactly what it was asked
 * to hold. The counters are atomics the producer alone writes. */
#include "media/tap.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/spsc.h"

/* A ring larger than this (almost six hours of audio, 350 MB) is a mistake, not a setting. */
#define TAP_CAPACITY_MAX ((size_t)1 << 20)

struct media_tap {
    struct spsc ring; /* of struct media_tap_frame */
    size_t capacity;
    atomic_size_t refs;
    atomic_bool closed;
    _Atomic uint64_t dropped, offered; /* written by the producer only */
};

struct media_tap *media_tap_create(size_t capacity)
{
    if (capacity < 2 || capacity > TAP_CAPACITY_MAX)
        die("tap capacity %zu is out of range (2..%zu frames)", capacity, TAP_CAPACITY_MAX);
    size_t pow2 = 2;
    while (pow2 < capacity)
        pow2 *= 2;
    struct media_tap *t = xcalloc(1, sizeof(*t));
    spsc_init(&t->ring, pow2, sizeof(struct media_tap_frame));
    t->capacity = capacity;
    atomic_init(&t->refs, 1);
    atomic_init(&t->closed, false);
    atomic_init(&t->dropped, 0);
    atomic_init(&t->offered, 0);
    return t;
}

struct media_tap *media_tap_ref(struct media_tap *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void media_tap_unref(struct media_tap *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    spsc_fini(&t->ring);
    free(t);
}

bool media_tap_push(struct media_tap *t, uint64_t tick, const int16_t *pcm)
{
    return media_tap_push_marked(t, tick, pcm, 0);
}

bool media_tap_push_marked(struct media_tap *t, uint64_t tick, const int16_t *pcm, uint8_t mark)
{
    if (atomic_load_explicit(&t->closed, memory_order_relaxed))
        return false;
    uint64_t dropped = atomic_load_explicit(&t->dropped, memory_order_relaxed);
    atomic_store_explicit(&t->offered, atomic_load_explicit(&t->offered, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    size_t head = atomic_load_explicit(&t->ring.head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&t->ring.tail, memory_order_acquire);
    if (head - tail >= t->capacity) {
        atomic_store_explicit(&t->dropped, dropped + 1, memory_order_relaxed);
        return false;
    }
    struct media_tap_frame f = {.tick = tick, .dropped_before = dropped, .mark = mark};
    memcpy(f.pcm, pcm, sizeof(f.pcm));
    bool ok = spsc_push(&t->ring, &f); /* cannot fail: the ring is at least capacity */
    assert(ok);
    (void)ok;
    return true;
}

size_t media_tap_pop(struct media_tap *t, struct media_tap_frame *out, size_t max)
{
    size_t n = 0;
    while (n < max && spsc_pop(&t->ring, &out[n]))
        n++;
    return n;
}

void media_tap_close(struct media_tap *t)
{
    atomic_store_explicit(&t->closed, true, memory_order_release);
}

bool media_tap_closed(const struct media_tap *t)
{
    return atomic_load_explicit(&t->closed, memory_order_acquire);
}

uint64_t media_tap_dropped(const struct media_tap *t)
{
    return atomic_load_explicit(&t->dropped, memory_order_relaxed);
}

uint64_t media_tap_offered(const struct media_tap *t)
{
    return atomic_load_explicit(&t->offered, memory_order_relaxed);
}

size_t media_tap_capacity(const struct media_tap *t)
{
    return t->capacity;
}
