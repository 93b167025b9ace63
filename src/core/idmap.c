#include "core/idmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

static uint64_t hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = key; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    return h;
}

void idmap_init(struct idmap *m)
{
    memset(m, 0, sizeof(*m));
}

void idmap_fini(struct idmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static struct idmap_slot *find(const struct idmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t i = hash(key) & (m->cap - 1);
    for (;;) {
        struct idmap_slot *s = &m->slots[i];
        if (s->state == 0)
            return NULL;
        if (s->state == 1 && strcmp(s->key, key) == 0)
            return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static void grow(struct idmap *m)
{
    struct idmap_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? old_cap * 2 : 16;
    /* Shrink back when most slots were deletions. */
    if (old_cap && m->len * 4 < old_cap)
        m->cap = old_cap;
    m->slots = xcalloc(m->cap, sizeof(*m->slots));
    m->len = m->used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].state == 1)
            idmap_put(m, old[i].key, old[i].value);
    free(old);
}

void idmap_put(struct idmap *m, const char *key, void *value)
{
    struct idmap_slot *s = find(m, key);
    if (s) {
        s->value = value;
        return;
    }
    if ((m->used + 1) * 4 > m->cap * 3)
        grow(m);
    size_t i = hash(key) & (m->cap - 1);
    while (m->slots[i].state == 1)
        i = (i + 1) & (m->cap - 1);
    s = &m->slots[i];
    if (s->state == 0)
        m->used++;
    str_copy(s->key, sizeof(s->key), key);
    s->value = value;
    s->state = 1;
    m->len++;
}

void *idmap_get(const struct idmap *m, const char *key)
{
    struct idmap_slot *s = find(m, key);
    return s ? s->value : NULL;
}

void *idmap_del(struct idmap *m, const char *key)
{
    struct idmap_slot *s = find(m, key);
    if (!s)
        return NULL;
    void *v = s->value;
    s->state = 2;
    s->value = NULL;
    m->len--;
    return v;
}

int idmap_next(const struct idmap *m, size_t *iter, const char **key, void **value)
{
    while (*iter < m->cap) {
        struct idmap_slot *s = &m->slots[(*iter)++];
        if (s->state == 1) {
            if (key)
                *key = s->key;
            if (value)
                *value = s->value;
            return 1;
        }
    }
    return 0;
}
