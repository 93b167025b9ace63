/* The typed store interface. Domain code sees only these calls; a backend (SQLite now,
 * PostgreSQL later) fills in struct store_ops. Control thread only.
 *
 * Return codes: 0 on success, STORE_NOT_FOUND, STORE_CONFLICT (a unique key is taken) or
 * STORE_ERROR (logged by the backend). Records read are owned by the caller (x_fini / free). */
#ifndef CONFERENCED_STORE_H
#define CONFERENCED_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

#define STORE_NOT_FOUND (-1)
#define STORE_CONFLICT (-2)
#define STORE_ERROR (-3)

/* A page of a list: items with tm_create < before_us, newest first, at most limit. */
struct store_page {
    int64_t before_us;
    int limit;
};

struct store;

struct store_ops {
    void (*close)(struct store *s);
    int (*begin)(struct store *s);
    int (*commit)(struct store *s);
    int (*rollback)(struct store *s);

    /* Small server-wide settings (e.g. the JWT secret). */
    int (*meta_get)(struct store *s, const char *key, char **value);
    int (*meta_set)(struct store *s, const char *key, const char *value);
    /* The largest tm_create of any record (0 when empty). */
    int (*newest_time)(struct store *s, int64_t *out);

    int (*customer_insert)(struct store *s, const struct customer *c);
    int (*customer_get)(struct store *s, const char *id, struct customer *out);
    int (*customer_update)(struct store *s, const struct customer *c);
    /* Not deleted only. */
    int (*customer_list)(struct store *s, const struct store_page *p, struct customer **out,
                         size_t *n);
    int (*customer_count)(struct store *s, int64_t *n);

    /* username is unique among agents that are not deleted (STORE_CONFLICT). */
    int (*agent_insert)(struct store *s, const struct agent *a);
    /* customer_id NULL = any customer. Deleted agents are returned too (check tm_delete). */
    int (*agent_get)(struct store *s, const char *customer_id, const char *id, struct agent *out);
    /* Not deleted only. */
    int (*agent_get_by_username)(struct store *s, const char *username, struct agent *out);
    int (*agent_update)(struct store *s, const struct agent *a);
    /* Not deleted only. */
    int (*agent_list)(struct store *s, const char *customer_id, const struct store_page *p,
                      struct agent **out, size_t *n);

    int (*accesskey_insert)(struct store *s, const struct accesskey *k);
    int (*accesskey_get)(struct store *s, const char *customer_id, const char *id,
                         struct accesskey *out);
    /* Not deleted only. */
    int (*accesskey_get_by_hash)(struct store *s, const char *token_hash, struct accesskey *out);
    int (*accesskey_update)(struct store *s, const struct accesskey *k);
    /* Not deleted only. */
    int (*accesskey_list)(struct store *s, const char *customer_id, const struct store_page *p,
                          struct accesskey **out, size_t *n);

    /* direct_hash is unique among conferences that are not deleted (STORE_CONFLICT). Reads fill
     * call_ids with the conference's joining/joined participants in join order. */
    int (*conference_insert)(struct store *s, const struct conference *c);
    int (*conference_get)(struct store *s, const char *customer_id, const char *id,
                          struct conference *out);
    /* Not deleted only. */
    int (*conference_get_by_hash)(struct store *s, const char *direct_hash,
                                  struct conference *out);
    /* Writes every column except id, customer_id, type, tm_create (call_ids is ignored). */
    int (*conference_update)(struct store *s, const struct conference *c);
    /* Not deleted only. */
    int (*conference_list)(struct store *s, const char *customer_id, const struct store_page *p,
                           struct conference **out, size_t *n);
    /* Every conference not yet terminated, of all customers (start-up recovery). */
    int (*conference_list_unfinished)(struct store *s, struct conference **out, size_t *n);

    int (*conferencecall_insert)(struct store *s, const struct conferencecall *cc);
    int (*conferencecall_get)(struct store *s, const char *customer_id, const char *id,
                              struct conferencecall *out);
    /* Writes status, tm_update, tm_delete. */
    int (*conferencecall_update)(struct store *s, const struct conferencecall *cc);
    /* conference_id NULL = all of the customer's participants. */
    int (*conferencecall_list)(struct store *s, const char *customer_id, const char *conference_id,
                               const struct store_page *p, struct conferencecall **out,
                               size_t *n);
    /* Participants joining, joined or leaving; conference_id NULL = of every conference. In
     * join order. */
    int (*conferencecall_list_active)(struct store *s, const char *conference_id,
                                      struct conferencecall **out, size_t *n);

    int (*call_insert)(struct store *s, const struct call *c);
    /* customer_id NULL = any customer. Deleted calls are returned too (check tm_delete). */
    int (*call_get)(struct store *s, const char *customer_id, const char *id, struct call *out);
    /* Writes every column except id, customer_id, direction, tm_create. */
    int (*call_update)(struct store *s, const struct call *c);
    /* Not deleted only. */
    int (*call_list)(struct store *s, const char *customer_id, const struct store_page *p,
                     struct call **out, size_t *n);
    /* Calls not hung up, of all customers (start-up recovery). */
    int (*call_list_live)(struct store *s, struct call **out, size_t *n);
};

struct store {
    const struct store_ops *ops;
};

/* Opens (creating if needed) the SQLite store in dir/conferenced.db, WAL mode with exclusive
 * locking (one server per directory), and migrates it to the current schema version. dir ":memory:" gives a private in-memory store (tests). */
int store_sqlite_open(const char *dir, struct store **out);

/* Thin wrappers so callers read as store_<object>_<verb>(). */
static inline void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}
static inline int store_begin(struct store *s) { return s->ops->begin(s); }
static inline int store_commit(struct store *s) { return s->ops->commit(s); }
static inline int store_rollback(struct store *s) { return s->ops->rollback(s); }
static inline int store_meta_get(struct store *s, const char *k, char **v) { return s->ops->meta_get(s, k, v); }
static inline int store_meta_set(struct store *s, const char *k, const char *v) { return s->ops->meta_set(s, k, v); }
static inline int store_newest_time(struct store *s, int64_t *out) { return s->ops->newest_time(s, out); }

static inline int store_customer_insert(struct store *s, const struct customer *c) { return s->ops->customer_insert(s, c); }
static inline int store_customer_get(struct store *s, const char *id, struct customer *o) { return s->ops->customer_get(s, id, o); }
static inline int store_customer_update(struct store *s, const struct customer *c) { return s->ops->customer_update(s, c); }
static inline int store_customer_list(struct store *s, const struct store_page *p, struct customer **o, size_t *n) { return s->ops->customer_list(s, p, o, n); }
static inline int store_customer_count(struct store *s, int64_t *n) { return s->ops->customer_count(s, n); }

static inline int store_agent_insert(struct store *s, const struct agent *a) { return s->ops->agent_insert(s, a); }
static inline int store_agent_get(struct store *s, const char *cid, const char *id, struct agent *o) { return s->ops->agent_get(s, cid, id, o); }
static inline int store_agent_get_by_username(struct store *s, const char *u, struct agent *o) { return s->ops->agent_get_by_username(s, u, o); }
static inline int store_agent_update(struct store *s, const struct agent *a) { return s->ops->agent_update(s, a); }
static inline int store_agent_list(struct store *s, const char *cid, const struct store_page *p, struct agent **o, size_t *n) { return s->ops->agent_list(s, cid, p, o, n); }

static inline int store_accesskey_insert(struct store *s, const struct accesskey *k) { return s->ops->accesskey_insert(s, k); }
static inline int store_accesskey_get(struct store *s, const char *cid, const char *id, struct accesskey *o) { return s->ops->accesskey_get(s, cid, id, o); }
static inline int store_accesskey_get_by_hash(struct store *s, const char *h, struct accesskey *o) { return s->ops->accesskey_get_by_hash(s, h, o); }
static inline int store_accesskey_update(struct store *s, const struct accesskey *k) { return s->ops->accesskey_update(s, k); }
static inline int store_accesskey_list(struct store *s, const char *cid, const struct store_page *p, struct accesskey **o, size_t *n) { return s->ops->accesskey_list(s, cid, p, o, n); }

static inline int store_conference_insert(struct store *s, const struct conference *c) { return s->ops->conference_insert(s, c); }
static inline int store_conference_get(struct store *s, const char *cid, const char *id, struct conference *o) { return s->ops->conference_get(s, cid, id, o); }
static inline int store_conference_get_by_hash(struct store *s, const char *h, struct conference *o) { return s->ops->conference_get_by_hash(s, h, o); }
static inline int store_conference_update(struct store *s, const struct conference *c) { return s->ops->conference_update(s, c); }
static inline int store_conference_list(struct store *s, const char *cid, const struct store_page *p, struct conference **o, size_t *n) { return s->ops->conference_list(s, cid, p, o, n); }
static inline int store_conference_list_unfinished(struct store *s, struct conference **o, size_t *n) { return s->ops->conference_list_unfinished(s, o, n); }

static inline int store_conferencecall_insert(struct store *s, const struct conferencecall *cc) { return s->ops->conferencecall_insert(s, cc); }
static inline int store_conferencecall_get(struct store *s, const char *cid, const char *id, struct conferencecall *o) { return s->ops->conferencecall_get(s, cid, id, o); }
static inline int store_conferencecall_update(struct store *s, const struct conferencecall *cc) { return s->ops->conferencecall_update(s, cc); }
static inline int store_conferencecall_list(struct store *s, const char *cid, const char *conf, const struct store_page *p, struct conferencecall **o, size_t *n) { return s->ops->conferencecall_list(s, cid, conf, p, o, n); }
static inline int store_conferencecall_list_active(struct store *s, const char *conf, struct conferencecall **o, size_t *n) { return s->ops->conferencecall_list_active(s, conf, o, n); }

static inline int store_call_insert(struct store *s, const struct call *c) { return s->ops->call_insert(s, c); }
static inline int store_call_get(struct store *s, const char *cid, const char *id, struct call *o) { return s->ops->call_get(s, cid, id, o); }
static inline int store_call_update(struct store *s, const struct call *c) { return s->ops->call_update(s, c); }
static inline int store_call_list(struct store *s, const char *cid, const struct store_page *p, struct call **o, size_t *n) { return s->ops->call_list(s, cid, p, o, n); }
static inline int store_call_list_live(struct store *s, struct call **o, size_t *n) { return s->ops->call_list_live(s, o, n); }

/* Frees an array returned by a list call (NULL is a no-op). */
void store_free_customers(struct customer *a, size_t n);
void store_free_agents(struct agent *a, size_t n);
void store_free_accesskeys(struct accesskey *a, size_t n);
void store_free_conferences(struct conference *a, size_t n);
void store_free_calls(struct call *a, size_t n);

#endif
