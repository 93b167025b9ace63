#include "conference/conference.h"

#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define HASH_ATTEMPTS 5

/* In-memory state of a participant that is joining, joined or leaving. */
struct cc_state {
    struct conference_mgr *m;
    id_t_ id;
    struct sched_timer *health;
    int fails;
    bool in_bridge; /* audio was requested from the bridge: leaving waits for it */
};

/* In-memory state of a conference with a timeout. */
struct conf_timer {
    struct conference_mgr *m;
    id_t_ id;
    struct sched_timer *timer;
};

/* Conferences of one customer that are not terminated (for max_conferences). */
struct open_count {
    size_t n;
};

/* Whether a conference was progressing when a health check last read it. The participants of
 * one room share a read for HEALTH_STATUS_MAX_AGE_US instead of each reading the whole conference
 * (its participant list with it) from the store: a room of 200 did that 40 times a second. */
struct conf_seen {
    int64_t at_us;
    bool progressing;
};
#define HEALTH_STATUS_MAX_AGE_US INT64_C(1000000)

struct conference_mgr {
    struct conference_deps d;
    struct idmap participants; /* conferencecall id -> struct cc_state */
    struct idmap timers;       /* conference id -> struct conf_timer */
    struct idmap open;         /* customer id -> struct open_count (absent: 0) */
    struct idmap seen;         /* conference id -> struct conf_seen (health checks) */
    int64_t seen_pruned_us;    /* when entries of rooms no longer checked were last dropped */
};

static int64_t now_us(const struct conference_mgr *m)
{
    return sched_now(m->d.sched);
}

/* ---- conferences not terminated, per customer ----
 * Counted here rather than in the store: a conference enters the count when it is inserted and
 * leaves when it is stored terminated, both in this module; recovery counts what the store holds.
 */

static size_t open_get(const struct conference_mgr *m, const char *customer_id)
{
    const struct open_count *o = idmap_get(&m->open, customer_id);
    return o ? o->n : 0;
}

static void open_add(struct conference_mgr *m, const char *customer_id)
{
    struct open_count *o = idmap_get(&m->open, customer_id);
    if (!o) {
        o = xcalloc(1, sizeof(*o));
        idmap_put(&m->open, customer_id, o);
    }
    o->n++;
}

static void open_remove(struct conference_mgr *m, const char *customer_id)
{
    struct open_count *o = idmap_get(&m->open, customer_id);
    if (o && --o->n == 0)
        free(idmap_del(&m->open, customer_id));
}

static void open_clear(struct conference_mgr *m)
{
    size_t it = 0;
    void *v;
    while (idmap_next(&m->open, &it, NULL, &v))
        free(v);
    idmap_fini(&m->open);
    idmap_init(&m->open);
}

static int conference_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "CONFERENCE_NOT_FOUND",
                     "No conference with id %s exists for this customer.", id);
}

static int cc_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "CONFERENCECALL_NOT_FOUND",
                     "No conferencecall with id %s exists for this customer.", id);
}

static int load_conf(struct conference_mgr *m, const char *customer_id, const char *id,
                     struct conference *out, struct error *e)
{
    int rc = store_conference_get(m->d.store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return conference_not_found(id, e);
    if (rc != 0)
        return error_store_failed(e, "read the conference", rc);
    return 0;
}

static int load_cc(struct conference_mgr *m, const char *customer_id, const char *id,
                   struct conferencecall *out, struct error *e)
{
    int rc = store_conferencecall_get(m->d.store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return cc_not_found(id, e);
    if (rc != 0)
        return error_store_failed(e, "read the conferencecall", rc);
    return 0;
}

/* Publishes the conference as stored now (so conferencecall_ids is current). */
static void publish_conf(struct conference_mgr *m, const char *type, const char *id)
{
    struct conference c;
    if (store_conference_get(m->d.store, NULL, id, &c) != 0)
        return;
    events_publish(m->d.bus, type, c.customer_id, c.id, conference_to_json(&c));
    conference_fini(&c);
}

static void publish_cc(struct conference_mgr *m, const char *type, const struct conferencecall *cc)
{
    events_publish(m->d.bus, type, cc->customer_id, cc->id, conferencecall_to_json(cc));
}

static bool flow_ok(struct conference_mgr *m, const char *customer_id, const char *flow_id)
{
    if (!flow_id || id_is_nil(flow_id))
        return true;
    return m->d.flows.exists && m->d.flows.exists(m->d.flows.ctx, customer_id, flow_id);
}

static int check_flows(struct conference_mgr *m, const char *customer_id, const char *pre,
                       const char *post, struct error *e)
{
    if (!flow_ok(m, customer_id, pre))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "Field 'pre_flow_id' must be the id of one of your flows (GET "
                         "/v1.0/flows) or the nil UUID.");
    if (!flow_ok(m, customer_id, post))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "Field 'post_flow_id' must be the id of one of your flows (GET "
                         "/v1.0/flows) or the nil UUID.");
    return 0;
}

static int check_timeout(bool has, int64_t t, struct error *e)
{
    if (has && (t < 0 || t > TIMEOUT_MAX_SECONDS))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field 'timeout' must be seconds from 0 (no timeout) to %d.",
                         TIMEOUT_MAX_SECONDS);
    return 0;
}

/* ---- timeout timers ---- */

static void timeout_fired(void *arg);

static void disarm_timeout(struct conference_mgr *m, const char *id)
{
    struct conf_timer *t = idmap_del(&m->timers, id);
    if (t) {
        sched_cancel(m->d.sched, t->timer);
        free(t);
    }
}

static void arm_timeout(struct conference_mgr *m, const struct conference *c)
{
    disarm_timeout(m, c->id);
    if (c->tm_timeout <= 0 || c->status != CONFERENCE_PROGRESSING)
        return;
    struct conf_timer *t = xcalloc(1, sizeof(*t));
    t->m = m;
    memcpy(t->id, c->id, sizeof(t->id));
    t->timer = sched_at(m->d.sched, c->tm_timeout, timeout_fired, t);
    idmap_put(&m->timers, c->id, t);
}

/* ---- participant state ---- */

static void health_fired(void *arg);

static struct cc_state *cc_state_add(struct conference_mgr *m, const char *id, bool in_bridge)
{
    struct cc_state *st = xcalloc(1, sizeof(*st));
    st->m = m;
    memcpy(st->id, id, sizeof(st->id));
    st->in_bridge = in_bridge;
    st->health = sched_at(m->d.sched, now_us(m) + CONFERENCE_HEALTH_INTERVAL_US, health_fired, st);
    idmap_put(&m->participants, id, st);
    return st;
}

static void cc_state_drop(struct conference_mgr *m, const char *id)
{
    struct cc_state *st = idmap_del(&m->participants, id);
    if (st) {
        sched_cancel(m->d.sched, st->health);
        free(st);
    }
}

static int count_active(struct conference_mgr *m, const char *conference_id)
{
    struct conferencecall *list = NULL;
    size_t n = 0;
    if (store_conferencecall_list_active(m->d.store, conference_id, &list, &n) != 0)
        return -1;
    free(list);
    return (int)n;
}

/* A terminating conference with nobody left becomes terminated. */
static void finish_if_empty(struct conference_mgr *m, const char *conference_id)
{
    struct conference c;
    if (store_conference_get(m->d.store, NULL, conference_id, &c) != 0)
        return;
    if (c.status == CONFERENCE_TERMINATING && count_active(m, conference_id) == 0) {
        c.status = CONFERENCE_TERMINATED;
        c.tm_end = c.tm_update = tm_unique_us();
        if (store_conference_update(m->d.store, &c) == 0) {
            open_remove(m, c.customer_id);
            log_info("msg=\"conference terminated\" conference_id=%s", c.id);
            if (m->d.bridge.destroy)
                m->d.bridge.destroy(m->d.bridge.ctx, c.id);
            publish_conf(m, "conference_deleted", c.id);
        }
    }
    conference_fini(&c);
}

static void begin_leave(struct conference_mgr *m, struct conferencecall *cc);

/* Moves a conference to terminating (DELETE, timeout, connect end) and kicks everyone. */
static int terminate(struct conference_mgr *m, const char *conference_id, bool deleted,
                     struct error *e)
{
    struct conference c;
    int rc = load_conf(m, NULL, conference_id, &c, e);
    if (rc < 0)
        return rc;
    bool changed = false;
    if (deleted && c.tm_delete == TM_NEVER) {
        c.tm_delete = now_us(m);
        changed = true;
    }
    if (c.status < CONFERENCE_TERMINATING) {
        c.status = CONFERENCE_TERMINATING;
        changed = true;
    }
    if (!changed) {
        conference_fini(&c);
        return 0;
    }
    c.tm_update = now_us(m);
    rc = store_conference_update(m->d.store, &c);
    conference_fini(&c);
    if (rc != 0)
        return error_store_failed(e, "update the conference", rc);
    disarm_timeout(m, conference_id);
    log_info("msg=\"conference terminating\" conference_id=%s deleted=%d", conference_id, deleted);
    publish_conf(m, deleted ? "conference_deleted" : "conference_updated", conference_id);

    struct conferencecall *list = NULL;
    size_t n = 0;
    if (store_conferencecall_list_active(m->d.store, conference_id, &list, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (list[i].status == CC_JOINING || list[i].status == CC_JOINED)
                begin_leave(m, &list[i]);
        free(list);
    }
    finish_if_empty(m, conference_id);
    return 0;
}

static void timeout_fired(void *arg)
{
    struct conf_timer *t = arg;
    struct conference_mgr *m = t->m;
    id_t_ id;
    memcpy(id, t->id, sizeof(id));
    t->timer = NULL;
    idmap_del(&m->timers, id);
    free(t);
    log_info("msg=\"conference timeout\" conference_id=%s", id);
    struct error e;
    if (terminate(m, id, true, &e) < 0)
        log_warn("msg=\"timeout failed\" conference_id=%s reason=%s", id, e.reason);
}

/* joining/joined -> leaving, then out of the bridge (at once when it never got audio). */
static void begin_leave(struct conference_mgr *m, struct conferencecall *cc)
{
    cc->status = CC_LEAVING;
    cc->tm_update = now_us(m);
    if (store_conferencecall_update(m->d.store, cc) != 0)
        return;
    publish_cc(m, "conferencecall_leaving", cc);
    publish_conf(m, "conference_updated", cc->conference_id);
    struct cc_state *st = idmap_get(&m->participants, cc->id);
    if (st && st->in_bridge && m->d.bridge.kick)
        m->d.bridge.kick(m->d.bridge.ctx, cc);
    else
        conference_on_leaved(m, cc->id);
}

/* Drops what no health check has read for a while (rooms that emptied or ended). */
static void seen_prune(struct conference_mgr *m, int64_t now)
{
    if (now - m->seen_pruned_us < 10 * HEALTH_STATUS_MAX_AGE_US)
        return;
    m->seen_pruned_us = now;
    struct idmap keep;
    idmap_init(&keep);
    size_t it = 0;
    const char *k;
    void *v;
    while (idmap_next(&m->seen, &it, &k, &v)) {
        struct conf_seen *cs = v;
        if (now - cs->at_us < 2 * CONFERENCE_HEALTH_INTERVAL_US)
            idmap_put(&keep, k, cs);
        else
            free(cs);
    }
    idmap_fini(&m->seen);
    m->seen = keep;
}

static bool conference_progressing(struct conference_mgr *m, const char *id)
{
    int64_t now = now_us(m);
    struct conf_seen *cs = idmap_get(&m->seen, id);
    if (cs && now - cs->at_us < HEALTH_STATUS_MAX_AGE_US)
        return cs->progressing;
    struct conference c;
    bool got = store_conference_get(m->d.store, NULL, id, &c) == 0;
    bool ok = got && c.status == CONFERENCE_PROGRESSING;
    if (got)
        conference_fini(&c);
    seen_prune(m, now);
    if (!cs) {
        cs = xcalloc(1, sizeof(*cs));
        idmap_put(&m->seen, id, cs);
    }
    cs->at_us = now;
    cs->progressing = ok;
    return ok;
}

static void health_fired(void *arg)
{
    struct cc_state *st = arg;
    struct conference_mgr *m = st->m;
    id_t_ id;
    memcpy(id, st->id, sizeof(id));
    st->health = NULL;

    struct conferencecall cc;
    if (store_conferencecall_get(m->d.store, NULL, id, &cc) != 0 || cc.status == CC_LEAVED) {
        cc_state_drop(m, id);
        return;
    }
    bool ok = false;
    if (cc.status == CC_JOINING || cc.status == CC_JOINED) {
        ok = conference_progressing(m, cc.conference_id) &&
             now_us(m) - cc.tm_create < CONFERENCE_MAX_PARTICIPANT_AGE_US &&
             m->d.calls.is_progressing &&
             m->d.calls.is_progressing(m->d.calls.ctx, cc.reference_type, cc.reference_id);
    }
    if (ok) {
        st->fails = 0;
    } else if (++st->fails >= CONFERENCE_HEALTH_MAX_FAILS) {
        st->fails = 0;
        log_info("msg=\"participant removed by health check\" conferencecall_id=%s status=%s", id,
                 cc_status_name(cc.status));
        if (cc.status == CC_LEAVING)
            conference_on_leaved(m, id); /* the bridge never confirmed: finish it */
        else
            begin_leave(m, &cc);
    }
    /* The participant may be gone now; re-arm only if its state still exists. */
    st = idmap_get(&m->participants, id);
    if (st && !st->health)
        st->health =
            sched_at(m->d.sched, now_us(m) + CONFERENCE_HEALTH_INTERVAL_US, health_fired, st);
}

/* ---- lifecycle ---- */

struct conference_mgr *conference_mgr_create(const struct conference_deps *deps)
{
    struct conference_mgr *m = xcalloc(1, sizeof(*m));
    m->d = *deps;
    idmap_init(&m->participants);
    idmap_init(&m->timers);
    idmap_init(&m->open);
    idmap_init(&m->seen);
    return m;
}

void conference_mgr_destroy(struct conference_mgr *m)
{
    if (!m)
        return;
    size_t it = 0;
    void *v;
    while (idmap_next(&m->participants, &it, NULL, &v)) {
        struct cc_state *st = v;
        sched_cancel(m->d.sched, st->health);
        free(st);
    }
    it = 0;
    while (idmap_next(&m->timers, &it, NULL, &v)) {
        struct conf_timer *t = v;
        sched_cancel(m->d.sched, t->timer);
        free(t);
    }
    it = 0;
    while (idmap_next(&m->seen, &it, NULL, &v))
        free(v);
    idmap_fini(&m->seen);
    idmap_fini(&m->participants);
    idmap_fini(&m->timers);
    open_clear(m);
    idmap_fini(&m->open);
    free(m);
}

static int bridge_create(struct conference_mgr *m, const struct conference *c)
{
    return m->d.bridge.create ? m->d.bridge.create(m->d.bridge.ctx, c) : 0;
}

void conference_mgr_recover_participants(struct conference_mgr *m)
{
    struct conferencecall *ccs = NULL;
    size_t n = 0;
    if (store_conferencecall_list_active(m->d.store, NULL, &ccs, &n) != 0)
        return;
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        struct conferencecall *cc = &ccs[i];
        if (cc->reference_type != CC_REFERENCE_CALL ||
            (m->d.calls.is_progressing &&
             m->d.calls.is_progressing(m->d.calls.ctx, cc->reference_type, cc->reference_id)))
            continue;
        if (cc->status == CC_LEAVING)
            conference_on_leaved(m, cc->id); /* no bridge will ever confirm */
        else
            conference_leave(m, cc->id);
        left++;
    }
    free(ccs);
    if (left)
        log_info("msg=\"participants of the previous run left\" count=%zu", left);
}

int conference_mgr_recover(struct conference_mgr *m)
{
    struct conference *list = NULL;
    size_t n = 0;
    if (store_conference_list_unfinished(m->d.store, &list, &n) != 0)
        return -1;
    /* Every one of them comes back, whatever the limit is now: it is for new conferences. */
    open_clear(m);
    for (size_t i = 0; i < n; i++)
        open_add(m, list[i].customer_id);
    if (m->d.max_conferences > 0) {
        size_t it = 0;
        const char *customer_id;
        void *v;
        while (idmap_next(&m->open, &it, &customer_id, &v))
            if (((struct open_count *)v)->n > (size_t)m->d.max_conferences)
                log_warn("msg=\"more conferences than max_conferences\" customer_id=%s "
                         "conferences=%zu max_conferences=%d",
                         customer_id, ((struct open_count *)v)->n, m->d.max_conferences);
    }
    for (size_t i = 0; i < n; i++) {
        struct conference *c = &list[i];
        if (c->status == CONFERENCE_STARTING || c->status == CONFERENCE_PROGRESSING) {
            if (bridge_create(m, c) < 0) {
                log_error("msg=\"bridge recovery failed\" conference_id=%s", c->id);
                continue;
            }
            if (c->status == CONFERENCE_STARTING) {
                c->status = CONFERENCE_PROGRESSING;
                store_conference_update(m->d.store, c);
            }
            arm_timeout(m, c);
        }
    }
    /* Participants from before the restart: health checks decide (their calls are gone). */
    struct conferencecall *ccs = NULL;
    size_t ncc = 0;
    if (store_conferencecall_list_active(m->d.store, NULL, &ccs, &ncc) == 0) {
        for (size_t i = 0; i < ncc; i++)
            cc_state_add(m, ccs[i].id, false);
        free(ccs);
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].status == CONFERENCE_TERMINATING) {
            struct conferencecall *act = NULL;
            size_t na = 0;
            if (store_conferencecall_list_active(m->d.store, list[i].id, &act, &na) == 0) {
                for (size_t j = 0; j < na; j++)
                    if (act[j].status == CC_JOINING || act[j].status == CC_JOINED)
                        begin_leave(m, &act[j]);
                free(act);
            }
            finish_if_empty(m, list[i].id);
        }
    }
    log_info("msg=\"conferences recovered\" unfinished=%zu participants=%zu", n, ncc);
    store_free_conferences(list, n);
    return 0;
}

/* ---- conferences ---- */

int conference_create(struct conference_mgr *m, const char *customer_id,
                      const struct conference_create_req *req, struct conference *out,
                      struct error *e)
{
    enum conference_type type;
    int rc;
    if (!req->type)
        return error_set(e, ERR_INVALID_ARGUMENT, "MISSING_FIELD",
                         "Field 'type' is required: \"conference\" or \"connect\".");
    if (conference_type_parse(req->type, &type) < 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field 'type' must be \"conference\" or \"connect\".");
    if ((rc = check_timeout(req->has_timeout, req->timeout, e)) < 0 ||
        (rc = check_flows(m, customer_id, req->pre_flow_id, req->post_flow_id, e)) < 0)
        return rc;
    size_t open = open_get(m, customer_id);
    if (m->d.max_conferences > 0 && open >= (size_t)m->d.max_conferences)
        return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_CONFERENCES",
                         "This customer has %zu conferences that are not terminated and the "
                         "server's limit (setting max_conferences) is %d; end some (DELETE "
                         "/v1.0/conferences/{id}) before creating more.",
                         open, m->d.max_conferences);

    struct conference c;
    memset(&c, 0, sizeof(c));
    id_new(c.id);
    memcpy(c.customer_id, customer_id, ID_LEN + 1);
    c.type = type;
    c.status = CONFERENCE_STARTING;
    c.name = xstrdup(req->name ? req->name : "");
    c.detail = xstrdup(req->detail ? req->detail : "");
    c.data = xstrdup(req->data ? req->data : "{}");
    c.timeout = req->has_timeout ? req->timeout : 0;
    memcpy(c.pre_flow_id, req->pre_flow_id ? req->pre_flow_id : ID_NIL, ID_LEN + 1);
    memcpy(c.post_flow_id, req->post_flow_id ? req->post_flow_id : ID_NIL, ID_LEN + 1);
    memcpy(c.recording_id, ID_NIL, ID_LEN + 1);
    memcpy(c.transcribe_id, ID_NIL, ID_LEN + 1);
    c.recording_ids = xstrdup("[]");
    c.transcribe_ids = xstrdup("[]");
    c.tm_create = c.tm_update = tm_unique_us();
    c.tm_delete = TM_NEVER;
    c.tm_timeout = c.timeout > 0 ? now_us(m) + c.timeout * 1000000 : 0;

    rc = STORE_CONFLICT;
    for (int i = 0; i < HASH_ATTEMPTS && rc == STORE_CONFLICT; i++) {
        id_direct_hash_new(c.direct_hash);
        rc = store_conference_insert(m->d.store, &c);
    }
    if (rc != 0) {
        conference_fini(&c);
        return error_store_failed(e, "create the conference", rc);
    }
    open_add(m, customer_id);
    if (bridge_create(m, &c) < 0) {
        c.status = CONFERENCE_TERMINATED;
        c.tm_end = now_us(m);
        if (store_conference_update(m->d.store, &c) == 0)
            open_remove(m, customer_id);
        conference_fini(&c);
        return error_set(e, ERR_UNAVAILABLE, "BRIDGE_UNAVAILABLE",
                         "The media bridge could not be set up; try again later.");
    }
    c.status = CONFERENCE_PROGRESSING;
    if ((rc = store_conference_update(m->d.store, &c)) != 0) {
        conference_fini(&c);
        return error_store_failed(e, "start the conference", rc);
    }
    arm_timeout(m, &c);
    log_info("msg=\"conference created\" conference_id=%s customer_id=%s type=%s", c.id,
             customer_id, conference_type_name(type));
    events_publish(m->d.bus, "conference_created", c.customer_id, c.id, conference_to_json(&c));
    *out = c;
    return 0;
}

int conference_get(struct conference_mgr *m, const char *customer_id, const char *id,
                   struct conference *out, struct error *e)
{
    return load_conf(m, customer_id, id, out, e);
}

static int state_invalid(const struct conference *c, const char *what, struct error *e)
{
    return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                     "Cannot %s: the conference is %s%s.", what, conference_status_name(c->status),
                     c->tm_delete != TM_NEVER ? " and deleted" : "");
}

int conference_update(struct conference_mgr *m, const char *customer_id, const char *id,
                      const struct conference_update_req *req, struct conference *out,
                      struct error *e)
{
    int rc;
    if ((rc = check_timeout(req->has_timeout, req->timeout, e)) < 0 ||
        (rc = check_flows(m, customer_id, req->pre_flow_id, req->post_flow_id, e)) < 0)
        return rc;
    struct conference c;
    if ((rc = load_conf(m, customer_id, id, &c, e)) < 0)
        return rc;
    if (c.status >= CONFERENCE_TERMINATING || c.tm_delete != TM_NEVER) {
        rc = state_invalid(&c, "update it", e);
        conference_fini(&c);
        return rc;
    }
    if (req->name) {
        free(c.name);
        c.name = xstrdup(req->name);
    }
    if (req->detail) {
        free(c.detail);
        c.detail = xstrdup(req->detail);
    }
    if (req->data) {
        free(c.data);
        c.data = xstrdup(req->data);
    }
    if (req->pre_flow_id)
        memcpy(c.pre_flow_id, req->pre_flow_id, ID_LEN + 1);
    if (req->post_flow_id)
        memcpy(c.post_flow_id, req->post_flow_id, ID_LEN + 1);
    if (req->has_timeout) {
        c.timeout = req->timeout;
        c.tm_timeout = req->timeout > 0 ? now_us(m) + req->timeout * 1000000 : 0;
    }
    c.tm_update = now_us(m);
    if ((rc = store_conference_update(m->d.store, &c)) != 0) {
        conference_fini(&c);
        return error_store_failed(e, "update the conference", rc);
    }
    if (req->has_timeout)
        arm_timeout(m, &c);
    events_publish(m->d.bus, "conference_updated", c.customer_id, c.id, conference_to_json(&c));
    *out = c;
    return 0;
}

int conference_delete(struct conference_mgr *m, const char *customer_id, const char *id,
                      struct conference *out, struct error *e)
{
    struct conference c;
    int rc = load_conf(m, customer_id, id, &c, e);
    if (rc < 0)
        return rc;
    if (c.tm_delete != TM_NEVER) { /* a second DELETE changes nothing */
        *out = c;
        return 0;
    }
    conference_fini(&c);
    if ((rc = terminate(m, id, true, e)) < 0)
        return rc;
    return load_conf(m, customer_id, id, out, e);
}

int conference_regenerate_hash(struct conference_mgr *m, const char *customer_id, const char *id,
                               struct conference *out, struct error *e)
{
    struct conference c;
    int rc = load_conf(m, customer_id, id, &c, e);
    if (rc < 0)
        return rc;
    if (c.status >= CONFERENCE_TERMINATING || c.tm_delete != TM_NEVER) {
        rc = state_invalid(&c, "regenerate its direct hash", e);
        conference_fini(&c);
        return rc;
    }
    char old[DIRECT_HASH_SIZE];
    memcpy(old, c.direct_hash, sizeof(old));
    rc = STORE_CONFLICT;
    for (int i = 0; i < HASH_ATTEMPTS && rc == STORE_CONFLICT; i++) {
        do
            id_direct_hash_new(c.direct_hash);
        while (strcmp(old, c.direct_hash) == 0);
        c.tm_update = now_us(m);
        rc = store_conference_update(m->d.store, &c);
    }
    if (rc != 0) {
        conference_fini(&c);
        return error_store_failed(e, "regenerate the direct hash", rc);
    }
    events_publish(m->d.bus, "conference_updated", c.customer_id, c.id, conference_to_json(&c));
    *out = c;
    return 0;
}

int conference_find_by_hash(struct conference_mgr *m, const char *direct_hash,
                            struct conference *out, struct error *e)
{
    int rc = store_conference_get_by_hash(m->d.store, direct_hash, out);
    if (rc == STORE_NOT_FOUND)
        return error_set(e, ERR_NOT_FOUND, "CONFERENCE_NOT_FOUND",
                         "No conference has the direct hash %s.", direct_hash);
    if (rc != 0)
        return error_store_failed(e, "read the conference", rc);
    return 0;
}

/* ---- participants ---- */

int conference_join(struct conference_mgr *m, const char *conference_id,
                    enum cc_reference_type ref_type, const char *reference_id,
                    const char *activeflow_id, struct conferencecall *out, struct error *e)
{
    struct conference c;
    int rc = load_conf(m, NULL, conference_id, &c, e);
    if (rc < 0)
        return rc;
    if (c.status != CONFERENCE_PROGRESSING) {
        rc = error_set(e, ERR_FAILED_PRECONDITION, "CONFERENCE_NOT_PROGRESSING",
                       "The conference is %s; only a progressing conference can be joined.",
                       conference_status_name(c.status));
        conference_fini(&c);
        return rc;
    }
    if (c.type == CONFERENCE_TYPE_CONNECT && c.n_call_ids >= 2) {
        conference_fini(&c);
        return error_set(e, ERR_FAILED_PRECONDITION, "CONFERENCE_FULL",
                         "A connect conference holds two participants and already has them.");
    }
    struct conferencecall cc;
    memset(&cc, 0, sizeof(cc));
    id_new(cc.id);
    memcpy(cc.customer_id, c.customer_id, ID_LEN + 1);
    memcpy(cc.activeflow_id, activeflow_id ? activeflow_id : ID_NIL, ID_LEN + 1);
    memcpy(cc.conference_id, c.id, ID_LEN + 1);
    cc.reference_type = ref_type;
    memcpy(cc.reference_id, reference_id, ID_LEN + 1);
    cc.status = CC_JOINING;
    cc.tm_create = cc.tm_update = tm_unique_us();
    cc.tm_delete = TM_NEVER;
    conference_fini(&c);
    if ((rc = store_conferencecall_insert(m->d.store, &cc)) != 0)
        return error_store_failed(e, "create the conferencecall", rc);
    cc_state_add(m, cc.id, false);
    log_info("msg=\"participant joining\" conferencecall_id=%s conference_id=%s", cc.id,
             conference_id);
    publish_cc(m, "conferencecall_joining", &cc);
    publish_conf(m, "conference_updated", conference_id);
    *out = cc;
    return 0;
}

int conference_connect(struct conference_mgr *m, const char *conferencecall_id, struct error *e)
{
    struct conferencecall cc;
    int rc = load_cc(m, NULL, conferencecall_id, &cc, e);
    if (rc < 0)
        return rc;
    struct cc_state *st = idmap_get(&m->participants, cc.id);
    if (cc.status != CC_JOINING || !st)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The participant is %s; only a joining participant can connect.",
                         cc_status_name(cc.status));
    st->in_bridge = true;
    if (m->d.bridge.join && m->d.bridge.join(m->d.bridge.ctx, &cc) < 0) {
        st->in_bridge = false;
        begin_leave(m, &cc);
        return error_set(e, ERR_UNAVAILABLE, "BRIDGE_UNAVAILABLE",
                         "The media bridge could not connect the participant.");
    }
    return 0;
}

void conference_on_joined(struct conference_mgr *m, const char *conferencecall_id)
{
    struct conferencecall cc;
    if (store_conferencecall_get(m->d.store, NULL, conferencecall_id, &cc) != 0 ||
        cc.status != CC_JOINING)
        return;
    cc.status = CC_JOINED;
    cc.tm_update = now_us(m);
    if (store_conferencecall_update(m->d.store, &cc) != 0)
        return;
    log_info("msg=\"participant joined\" conferencecall_id=%s conference_id=%s", cc.id,
             cc.conference_id);
    publish_cc(m, "conferencecall_joined", &cc);
    publish_conf(m, "conference_updated", cc.conference_id);
}

void conference_on_leaved(struct conference_mgr *m, const char *conferencecall_id)
{
    struct conferencecall cc;
    if (store_conferencecall_get(m->d.store, NULL, conferencecall_id, &cc) != 0 ||
        cc.status == CC_LEAVED)
        return;
    cc.status = CC_LEAVED;
    cc.tm_update = now_us(m);
    if (store_conferencecall_update(m->d.store, &cc) != 0)
        return;
    cc_state_drop(m, cc.id);
    log_info("msg=\"participant left\" conferencecall_id=%s conference_id=%s", cc.id,
             cc.conference_id);
    publish_cc(m, "conferencecall_leaved", &cc);
    publish_conf(m, "conference_updated", cc.conference_id);

    struct conference c;
    if (store_conference_get(m->d.store, NULL, cc.conference_id, &c) != 0)
        return;
    enum conference_type type = c.type;
    enum conference_status status = c.status;
    conference_fini(&c);
    struct error e;
    if (type == CONFERENCE_TYPE_CONNECT && status == CONFERENCE_PROGRESSING)
        terminate(m, cc.conference_id, false, &e); /* ejects the other party */
    else if (status == CONFERENCE_TERMINATING)
        finish_if_empty(m, cc.conference_id);

    if (m->d.calls.left && store_conference_get(m->d.store, NULL, cc.conference_id, &c) == 0) {
        m->d.calls.left(m->d.calls.ctx, &cc, &c);
        conference_fini(&c);
    }
}

int conference_kick(struct conference_mgr *m, const char *customer_id,
                    const char *conferencecall_id, struct conferencecall *out, struct error *e)
{
    struct conferencecall cc;
    int rc = load_cc(m, customer_id, conferencecall_id, &cc, e);
    if (rc < 0)
        return rc;
    if (cc.status != CC_JOINING && cc.status != CC_JOINED)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The participant is %s; only a joining or joined participant can be "
                         "kicked.",
                         cc_status_name(cc.status));
    begin_leave(m, &cc);
    return load_cc(m, customer_id, conferencecall_id, out, e);
}

void conference_leave(struct conference_mgr *m, const char *conferencecall_id)
{
    struct conferencecall cc;
    if (store_conferencecall_get(m->d.store, NULL, conferencecall_id, &cc) != 0)
        return;
    if (cc.status == CC_JOINING || cc.status == CC_JOINED)
        begin_leave(m, &cc);
}

int conferencecall_get(struct conference_mgr *m, const char *customer_id, const char *id,
                       struct conferencecall *out, struct error *e)
{
    return load_cc(m, customer_id, id, out, e);
}

size_t conference_mgr_active_participants(const struct conference_mgr *m)
{
    return m->participants.len;
}

/* The current id (ID_NIL: none) and, for a new one, its place at the end of the history. */
static void set_current(id_t_ current, char **history, const char *id)
{
    memcpy(current, id, ID_LEN + 1);
    if (id_is_nil(id))
        return;
    json_t *ids = *history ? json_loads(*history, 0, NULL) : NULL;
    if (!json_is_array(ids)) {
        json_decref(ids);
        ids = json_array();
    }
    json_array_append_new(ids, json_string(id));
    free(*history);
    *history = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
}

static int set_media_job(struct conference_mgr *m, const char *conference_id, const char *id,
                         bool transcribe)
{
    struct conference c;
    if (store_conference_get(m->d.store, NULL, conference_id, &c) != 0)
        return -1;
    if (transcribe)
        set_current(c.transcribe_id, &c.transcribe_ids, id);
    else
        set_current(c.recording_id, &c.recording_ids, id);
    c.tm_update = now_us(m);
    int rc = store_conference_update(m->d.store, &c);
    conference_fini(&c);
    if (rc != 0)
        return -1;
    publish_conf(m, "conference_updated", conference_id);
    return 0;
}

int conference_set_recording(struct conference_mgr *m, const char *conference_id,
                             const char *recording_id)
{
    return set_media_job(m, conference_id, recording_id, false);
}

int conference_set_transcribe(struct conference_mgr *m, const char *conference_id,
                              const char *transcribe_id)
{
    return set_media_job(m, conference_id, transcribe_id, true);
}
