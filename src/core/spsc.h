/* A bounded single-producer single-consumer ring of fixed-size items (lock-free, C11 atomics).
 * One thread pushes, one other thread pops; neither blocks. Used for commands to media threads
 * and events back. */
#ifndef CONFERENCED_SPSC_H
#define CONFERENCED_SPSC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct spsc {
    alignas(64) atomic_size_t head; /* next slot to write (producer) */
    alignas(64) atomic_size_t tail; /* next slot to read (consumer) */
    size_t mask;
    size_t item_size;
    unsigned char *items;
};

/* Any thread, before use: capacity must be a power of two. Allocates. */
void spsc_init(struct spsc *r, size_t capacity, size_t item_size);
void spsc_fini(struct spsc *r);

/* Producer thread. Copies the item in; false when the ring is full. */
static inline bool spsc_push(struct spsc *r, const void *item)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail > r->mask)
        return false;
    memcpy(r->items + (head & r->mask) * r->item_size, item, r->item_size);
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return true;
}

/* Consumer thread. Copies the oldest item out; false when the ring is empty. */
static inline bool spsc_pop(struct spsc *r, void *item)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail == head)
        return false;
    memcpy(item, r->items + (tail & r->mask) * r->item_size, r->item_size);
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}

#endif
