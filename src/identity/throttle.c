/* Why a GCRA: one number per key (the "theoretical arrival time" of the next failure) gives a
 * sliding budget with no buckets to rotate, and the time until the next admitted attempt falls
 * out of it for the Retry-After message.
 *
 * Why the table stays small: an entry lives while it holds a reservation or a failure of the
 * last minute. Every failure needed a password check, and checks are bounded by the worker pool
 * (threads and queue), so live entries are bounded by what the workers can hash in a minute. */
#include "identity/throttle.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

#define WINDOW_US INT64_C(60000000)
#define MIN_CAP 64

struct entry {
    uint64_t key; /* 0 = empty slot */
    int64_t tat;  /* the budget is back to full at this time */
    uint32_t pending;
};

struct login_throttle {
    int64_t interval_us; /* one failure's share of the window */
    unsigned char sip_key[crypto_shorthash_KEYBYTES];
    struct entry *slots;
    size_t cap, len;
};

static uint64_t key_of(const struct login_throttle *t, char kind, const char *s)
{
    size_t n = strlen(s);
    unsigned char *buf = xmalloc(n + 2);
    buf[0] = (unsigned char)kind; /* domain separation: a username never meets an address */
    buf[1] = 0;
    memcpy(buf + 2, s, n);
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, buf, n + 2, t->sip_key);
    free(buf);
    uint64_t k;
    memcpy(&k, out, sizeof(k));
    return k ? k : 1;
}

static struct entry *slot_for(struct entry *slots, size_t cap, uint64_t key)
{
    size_t i = (size_t)key & (cap - 1);
    while (slots[i].key && slots[i].key != key)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static bool entry_dead(const struct entry *e, int64_t now_us)
{
    return e->pending == 0 && e->tat <= now_us;
}

/* Rebuilds the table without the entries that no longer matter, growing it when the live ones
 * would still fill more than half. */
static void rebuild(struct login_throttle *t, int64_t now_us)
{
    size_t live = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key && !entry_dead(&t->slots[i], now_us))
            live++;
    size_t cap = t->cap;
    while (live + 1 > cap / 2)
        cap *= 2;
    struct entry *slots = xcalloc(cap, sizeof(*slots));
    for (size_t i = 0; i < t->cap; i++) {
        const struct entry *e = &t->slots[i];
        if (e->key && !entry_dead(e, now_us))
            *slot_for(slots, cap, e->key) = *e;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->len = live;
}

static struct entry *lookup(struct login_throttle *t, uint64_t key, int64_t now_us, bool create)
{
    struct entry *e = slot_for(t->slots, t->cap, key);
    if (e->key || !create)
        return e->key ? e : NULL;
    if (t->len + 1 > t->cap * 3 / 4) {
        rebuild(t, now_us);
        e = slot_for(t->slots, t->cap, key);
    }
    e->key = key;
    e->tat = now_us;
    e->pending = 0;
    t->len++;
    return e;
}

struct login_throttle *login_throttle_create(int failures_per_minute)
{
    if (failures_per_minute < 1)
        die("login throttle: %d failures per minute", failures_per_minute);
    struct login_throttle *t = xcalloc(1, sizeof(*t));
    t->interval_us = WINDOW_US / failures_per_minute;
    if (t->interval_us < 1)
        t->interval_us = 1;
    randombytes_buf(t->sip_key, sizeof(t->sip_key));
    t->cap = MIN_CAP;
    t->slots = xcalloc(t->cap, sizeof(*t->slots));
    return t;
}

void login_throttle_destroy(struct login_throttle *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

/* Microseconds until e admits one more reservation (<= 0: now). */
static int64_t wait_us(const struct login_throttle *t, const struct entry *e, int64_t now_us)
{
    if (!e)
        return 0;
    int64_t base = e->tat > now_us ? e->tat : now_us;
    return base + ((int64_t)e->pending + 1) * t->interval_us - WINDOW_US - now_us;
}

int login_throttle_begin(struct login_throttle *t, const char *username, const char *address,
                         int64_t now_us, struct login_ticket *ticket, int64_t *retry_after_s)
{
    uint64_t uk = key_of(t, 'u', username);
    uint64_t ak = address && address[0] ? key_of(t, 'a', address) : 0;
    int64_t wu = wait_us(t, lookup(t, uk, now_us, false), now_us);
    int64_t wa = ak ? wait_us(t, lookup(t, ak, now_us, false), now_us) : 0;
    if (wu > 0 || wa > 0) {
        int64_t w = wu > wa ? wu : wa;
        *retry_after_s = (w + 999999) / 1000000;
        return wu > 0 ? LOGIN_THROTTLE_USERNAME : LOGIN_THROTTLE_ADDRESS;
    }
    lookup(t, uk, now_us, true)->pending++;
    if (ak)
        lookup(t, ak, now_us, true)->pending++; /* may rebuild: the username entry is not held */
    ticket->user_key = uk;
    ticket->addr_key = ak;
    return 0;
}

static void end_one(struct login_throttle *t, uint64_t key, bool failed, int64_t now_us)
{
    struct entry *e = lookup(t, key, now_us, false);
    if (!e || e->pending == 0)
        die("login throttle: an attempt ended that was never admitted");
    e->pending--;
    if (failed)
        e->tat = (e->tat > now_us ? e->tat : now_us) + t->interval_us;
}

void login_throttle_end(struct login_throttle *t, const struct login_ticket *ticket, bool failed,
                        int64_t now_us)
{
    end_one(t, ticket->user_key, failed, now_us);
    if (ticket->addr_key)
        end_one(t, ticket->addr_key, failed, now_us);
}

size_t login_throttle_size(const struct login_throttle *t)
{
    return t->len;
}
