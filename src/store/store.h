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
#define STORE_BUSY (-4) /* store_sqlite_open: another process (a running server) holds it */

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
    int (*conference_get_by_hash)(struct store *s, const char *direct_hash, struct conference *out);
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
                               const struct store_page *p, struct conferencecall **out, size_t *n);
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

    int (*flow_insert)(struct store *s, const struct flow *f);
    /* customer_id NULL = any customer. Deleted flows are returned too (check tm_delete). */
    int (*flow_get)(struct store *s, const char *customer_id, const char *id, struct flow *out);
    /* Writes every column except id, customer_id, tm_create. */
    int (*flow_update)(struct store *s, const struct flow *f);
    /* Not deleted only. */
    int (*flow_list)(struct store *s, const char *customer_id, const struct store_page *p,
                     struct flow **out, size_t *n);

    /* number is unique among numbers that are not deleted (STORE_CONFLICT). */
    int (*number_insert)(struct store *s, const struct number *n);
    int (*number_get)(struct store *s, const char *customer_id, const char *id, struct number *out);
    /* Not deleted only. */
    int (*number_get_by_number)(struct store *s, const char *number, struct number *out);
    /* Writes call_flow_id, message_flow_id, name, detail, status, tm_renew, tm_update,
     * tm_delete. */
    int (*number_update)(struct store *s, const struct number *n);
    int (*number_list)(struct store *s, const char *customer_id, const struct store_page *p,
                       struct number **out, size_t *n);

    int (*activeflow_insert)(struct store *s, const struct activeflow *a);
    int (*activeflow_get)(struct store *s, const char *customer_id, const char *id,
                          struct activeflow *out);
    /* Writes status, current_action, forward_action_id, executed_actions, tm_update,
     * tm_delete. */
    int (*activeflow_update)(struct store *s, const struct activeflow *a);
    int (*activeflow_list)(struct store *s, const char *customer_id, const struct store_page *p,
                           struct activeflow **out, size_t *n);
    /* Running activeflows of all customers (start-up recovery). */
    int (*activeflow_list_running)(struct store *s, struct activeflow **out, size_t *n);

    int (*recording_insert)(struct store *s, const struct recording *r);
    /* customer_id NULL = any customer. Deleted recordings are returned too (check tm_delete). */
    int (*recording_get)(struct store *s, const char *customer_id, const char *id,
                         struct recording *out);
    /* Writes every column except id, customer_id, owner, reference, format, tm_create. */
    int (*recording_update)(struct store *s, const struct recording *r);
    /* Not deleted only, newest first; owner_id / reference_id NULL = any. */
    int (*recording_list)(struct store *s, const char *customer_id, const char *owner_id,
                          const char *reference_id, const struct store_page *p,
                          struct recording **out, size_t *n);
    /* Recordings not ended, of all customers (start-up repair). */
    int (*recording_list_unfinished)(struct store *s, struct recording **out, size_t *n);
    /* A call's running recording (ID_NIL: none) and its recording_ids (JSON array text). */
    int (*call_set_recording)(struct store *s, const char *call_id, const char *recording_id,
                              const char *recording_ids, int64_t tm_update);

    int (*transcribe_insert)(struct store *s, const struct transcribe *t);
    /* customer_id NULL = any customer. Deleted transcribes are returned too (check tm_delete). */
    int (*transcribe_get)(struct store *s, const char *customer_id, const char *id,
                          struct transcribe *out);
    /* Writes status, skipped, failed, error, tm_update, tm_delete. */
    int (*transcribe_update)(struct store *s, const struct transcribe *t);
    /* Not deleted only, newest first; reference_id NULL = any. */
    int (*transcribe_list)(struct store *s, const char *customer_id, const char *reference_id,
                           const struct store_page *p, struct transcribe **out, size_t *n);
    /* Transcribes still progressing, of all customers (start-up). */
    int (*transcribe_list_progressing)(struct store *s, struct transcribe **out, size_t *n);
    int (*transcript_insert)(struct store *s, const struct transcript *t);
    /* A transcribe's transcripts, oldest first (the page token is a tm_create to start after). */
    int (*transcript_list)(struct store *s, const char *customer_id, const char *transcribe_id,
                           const struct store_page *p, struct transcript **out, size_t *n);
};

struct store {
    const struct store_ops *ops;
};

/* Opens (creating if needed) the SQLite store in dir/conferenced.db, WAL mode with exclusive
 * locking (one server per directory), and migrates it to the current schema version. dir ":memory:"
 * gives a private in-memory store (tests). Returns 0, STORE_BUSY when another process holds the
 * store, or STORE_ERROR (logged). */
int store_sqlite_open(const char *dir, struct store **out);

/* Thin wrappers so callers read as store_<object>_<verb>(). */
static inline void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}
static inline int store_begin(struct store *s)
{
    return s->ops->begin(s);
}
static inline int store_commit(struct store *s)
{
    return s->ops->commit(s);
}
static inline int store_rollback(struct store *s)
{
    return s->ops->rollback(s);
}
static inline int store_meta_get(struct store *s, const char *k, char **v)
{
    return s->ops->meta_get(s, k, v);
}
static inline int store_meta_set(struct store *s, const char *k, const char *v)
{
    return s->ops->meta_set(s, k, v);
}
static inline int store_newest_time(struct store *s, int64_t *out)
{
    return s->ops->newest_time(s, out);
}

static inline int store_customer_insert(struct store *s, const struct customer *c)
{
    return s->ops->customer_insert(s, c);
}
static inline int store_customer_get(struct store *s, const char *id, struct customer *o)
{
    return s->ops->customer_get(s, id, o);
}
static inline int store_customer_update(struct store *s, const struct customer *c)
{
    return s->ops->customer_update(s, c);
}
static inline int store_customer_list(struct store *s, const struct store_page *p,
                                      struct customer **o, size_t *n)
{
    return s->ops->customer_list(s, p, o, n);
}
static inline int store_customer_count(struct store *s, int64_t *n)
{
    return s->ops->customer_count(s, n);
}

static inline int store_agent_insert(struct store *s, const struct agent *a)
{
    return s->ops->agent_insert(s, a);
}
static inline int store_agent_get(struct store *s, const char *cid, const char *id, struct agent *o)
{
    return s->ops->agent_get(s, cid, id, o);
}
static inline int store_agent_get_by_username(struct store *s, const char *u, struct agent *o)
{
    return s->ops->agent_get_by_username(s, u, o);
}
static inline int store_agent_update(struct store *s, const struct agent *a)
{
    return s->ops->agent_update(s, a);
}
static inline int store_agent_list(struct store *s, const char *cid, const struct store_page *p,
                                   struct agent **o, size_t *n)
{
    return s->ops->agent_list(s, cid, p, o, n);
}

static inline int store_accesskey_insert(struct store *s, const struct accesskey *k)
{
    return s->ops->accesskey_insert(s, k);
}
static inline int store_accesskey_get(struct store *s, const char *cid, const char *id,
                                      struct accesskey *o)
{
    return s->ops->accesskey_get(s, cid, id, o);
}
static inline int store_accesskey_get_by_hash(struct store *s, const char *h, struct accesskey *o)
{
    return s->ops->accesskey_get_by_hash(s, h, o);
}
static inline int store_accesskey_update(struct store *s, const struct accesskey *k)
{
    return s->ops->accesskey_update(s, k);
}
static inline int store_accesskey_list(struct store *s, const char *cid, const struct store_page *p,
                                       struct accesskey **o, size_t *n)
{
    return s->ops->accesskey_list(s, cid, p, o, n);
}

static inline int store_conference_insert(struct store *s, const struct conference *c)
{
    return s->ops->conference_insert(s, c);
}
static inline int store_conference_get(struct store *s, const char *cid, const char *id,
                                       struct conference *o)
{
    return s->ops->conference_get(s, cid, id, o);
}
static inline int store_conference_get_by_hash(struct store *s, const char *h, struct conference *o)
{
    return s->ops->conference_get_by_hash(s, h, o);
}
static inline int store_conference_update(struct store *s, const struct conference *c)
{
    return s->ops->conference_update(s, c);
}
static inline int store_conference_list(struct store *s, const char *cid,
                                        const struct store_page *p, struct conference **o,
                                        size_t *n)
{
    return s->ops->conference_list(s, cid, p, o, n);
}
static inline int store_conference_list_unfinished(struct store *s, struct conference **o,
                                                   size_t *n)
{
    return s->ops->conference_list_unfinished(s, o, n);
}

static inline int store_conferencecall_insert(struct store *s, const struct conferencecall *cc)
{
    return s->ops->conferencecall_insert(s, cc);
}
static inline int store_conferencecall_get(struct store *s, const char *cid, const char *id,
                                           struct conferencecall *o)
{
    return s->ops->conferencecall_get(s, cid, id, o);
}
static inline int store_conferencecall_update(struct store *s, const struct conferencecall *cc)
{
    return s->ops->conferencecall_update(s, cc);
}
static inline int store_conferencecall_list(struct store *s, const char *cid, const char *conf,
                                            const struct store_page *p, struct conferencecall **o,
                                            size_t *n)
{
    return s->ops->conferencecall_list(s, cid, conf, p, o, n);
}
static inline int store_conferencecall_list_active(struct store *s, const char *conf,
                                                   struct conferencecall **o, size_t *n)
{
    return s->ops->conferencecall_list_active(s, conf, o, n);
}

static inline int store_call_insert(struct store *s, const struct call *c)
{
    return s->ops->call_insert(s, c);
}
static inline int store_call_get(struct store *s, const char *cid, const char *id, struct call *o)
{
    return s->ops->call_get(s, cid, id, o);
}
static inline int store_call_update(struct store *s, const struct call *c)
{
    return s->ops->call_update(s, c);
}
static inline int store_call_list(struct store *s, const char *cid, const struct store_page *p,
                                  struct call **o, size_t *n)
{
    return s->ops->call_list(s, cid, p, o, n);
}
static inline int store_call_list_live(struct store *s, struct call **o, size_t *n)
{
    return s->ops->call_list_live(s, o, n);
}

static inline int store_flow_insert(struct store *s, const struct flow *f)
{
    return s->ops->flow_insert(s, f);
}
static inline int store_flow_get(struct store *s, const char *cid, const char *id, struct flow *o)
{
    return s->ops->flow_get(s, cid, id, o);
}
static inline int store_flow_update(struct store *s, const struct flow *f)
{
    return s->ops->flow_update(s, f);
}
static inline int store_flow_list(struct store *s, const char *cid, const struct store_page *p,
                                  struct flow **o, size_t *n)
{
    return s->ops->flow_list(s, cid, p, o, n);
}

static inline int store_number_insert(struct store *s, const struct number *x)
{
    return s->ops->number_insert(s, x);
}
static inline int store_number_get(struct store *s, const char *cid, const char *id,
                                   struct number *o)
{
    return s->ops->number_get(s, cid, id, o);
}
static inline int store_number_get_by_number(struct store *s, const char *num, struct number *o)
{
    return s->ops->number_get_by_number(s, num, o);
}
static inline int store_number_update(struct store *s, const struct number *x)
{
    return s->ops->number_update(s, x);
}
static inline int store_number_list(struct store *s, const char *cid, const struct store_page *p,
                                    struct number **o, size_t *n)
{
    return s->ops->number_list(s, cid, p, o, n);
}

static inline int store_activeflow_insert(struct store *s, const struct activeflow *a)
{
    return s->ops->activeflow_insert(s, a);
}
static inline int store_activeflow_get(struct store *s, const char *cid, const char *id,
                                       struct activeflow *o)
{
    return s->ops->activeflow_get(s, cid, id, o);
}
static inline int store_activeflow_update(struct store *s, const struct activeflow *a)
{
    return s->ops->activeflow_update(s, a);
}
static inline int store_activeflow_list(struct store *s, const char *cid,
                                        const struct store_page *p, struct activeflow **o,
                                        size_t *n)
{
    return s->ops->activeflow_list(s, cid, p, o, n);
}
static inline int store_activeflow_list_running(struct store *s, struct activeflow **o, size_t *n)
{
    return s->ops->activeflow_list_running(s, o, n);
}

static inline int store_recording_insert(struct store *s, const struct recording *r)
{
    return s->ops->recording_insert(s, r);
}
static inline int store_recording_get(struct store *s, const char *cid, const char *id,
                                      struct recording *o)
{
    return s->ops->recording_get(s, cid, id, o);
}
static inline int store_recording_update(struct store *s, const struct recording *r)
{
    return s->ops->recording_update(s, r);
}
static inline int store_recording_list(struct store *s, const char *cid, const char *owner,
                                       const char *ref, const struct store_page *p,
                                       struct recording **o, size_t *n)
{
    return s->ops->recording_list(s, cid, owner, ref, p, o, n);
}
static inline int store_recording_list_unfinished(struct store *s, struct recording **o, size_t *n)
{
    return s->ops->recording_list_unfinished(s, o, n);
}
static inline int store_call_set_recording(struct store *s, const char *call_id, const char *rec_id,
                                           const char *rec_ids, int64_t tm)
{
    return s->ops->call_set_recording(s, call_id, rec_id, rec_ids, tm);
}

static inline int store_transcribe_insert(struct store *s, const struct transcribe *t)
{
    return s->ops->transcribe_insert(s, t);
}
static inline int store_transcribe_get(struct store *s, const char *cid, const char *id,
                                       struct transcribe *o)
{
    return s->ops->transcribe_get(s, cid, id, o);
}
static inline int store_transcribe_update(struct store *s, const struct transcribe *t)
{
    return s->ops->transcribe_update(s, t);
}
static inline int store_transcribe_list(struct store *s, const char *cid, const char *ref,
                                        const struct store_page *p, struct transcribe **o,
                                        size_t *n)
{
    return s->ops->transcribe_list(s, cid, ref, p, o, n);
}
static inline int store_transcribe_list_progressing(struct store *s, struct transcribe **o,
                                                    size_t *n)
{
    return s->ops->transcribe_list_progressing(s, o, n);
}
static inline int store_transcript_insert(struct store *s, const struct transcript *t)
{
    return s->ops->transcript_insert(s, t);
}
static inline int store_transcript_list(struct store *s, const char *cid, const char *tid,
                                        const struct store_page *p, struct transcript **o,
                                        size_t *n)
{
    return s->ops->transcript_list(s, cid, tid, p, o, n);
}

/* Frees an array returned by a list call (NULL is a no-op). */
void store_free_customers(struct customer *a, size_t n);
void store_free_agents(struct agent *a, size_t n);
void store_free_accesskeys(struct accesskey *a, size_t n);
void store_free_conferences(struct conference *a, size_t n);
void store_free_calls(struct call *a, size_t n);
void store_free_flows(struct flow *a, size_t n);
void store_free_numbers(struct number *a, size_t n);
void store_free_activeflows(struct activeflow *a, size_t n);
void store_free_recordings(struct recording *a, size_t n);
void store_free_transcribes(struct transcribe *a, size_t n);
void store_free_transcripts(struct transcript *a, size_t n);

#endif
