/* A hash map from UUID strings to pointers (open addressing, grows by doubling). Not thread-safe:
 * one owner thread. Keys are copied; values are borrowed. */
#ifndef CONFERENCED_IDMAP_H
#define CONFERENCED_IDMAP_H

#include <stddef.h>

#include "core/ids.h"

struct idmap_slot {
    char key[ID_LEN + 1];
    void *value;
    int state; /* 0 empty, 1 used, 2 deleted */
};

struct idmap {
    struct idmap_slot *slots;
    size_t cap, len, used; /* used counts live + deleted slots */
};

void idmap_init(struct idmap *m);
/* Frees the table (values are not touched). */
void idmap_fini(struct idmap *m);
/* Returns the value or NULL. */
void *idmap_get(const struct idmap *m, const char *key);
/* Inserts or replaces. */
void idmap_put(struct idmap *m, const char *key, void *value);
/* Removes and returns the value (NULL when absent). */
void *idmap_del(struct idmap *m, const char *key);
/* Iteration: for (size_t i = 0; idmap_next(m, &i, &k, &v);) ... (do not modify while iterating) */
int idmap_next(const struct idmap *m, size_t *iter, const char **key, void **value);

#endif
