#include "core/spsc.h"

#include <stdlib.h>

#include "core/log.h"
#include "core/mem.h"

void spsc_init(struct spsc *r, size_t capacity, size_t item_size)
{
    if (capacity == 0 || (capacity & (capacity - 1)) != 0)
        die("spsc capacity %zu is not a power of two", capacity);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->mask = capacity - 1;
    r->item_size = item_size;
    r->items = xcalloc(capacity, item_size);
}

void spsc_fini(struct spsc *r)
{
    free(r->items);
    r->items = NULL;
}
