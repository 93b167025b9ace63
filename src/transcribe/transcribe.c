#include "transcribe/transcribe.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "flow/activeflow.h"

/* A transcribe that is progressing. */
struct live_tr {
    id_t_ id;
    id_t_ customer_id;
    enum transcribe_target target;
    id_t_ target_id;
    char direction[8];
    char language[TRANSCRIBE_LANGUAGE_MAX + 1];
};

struct transcribe_mgr {
    struct transcribe_deps d;
    struct idmap live; /* transcribe id -> struct live_tr */
};

static const char *target_word(enum transcribe_target t)
{
    return t == TRANSCRIBE_OF_CONFERENCE ? "conference" : "call";
}

static int64_t now_us(const struct transcribe_mgr *m)
{
    return sched_now(m->d.sched);
}

static void publish(struct transcribe_mgr *m, const char *type, const struct transcribe *t)
{
    events_publish(m->d.bus, type, t->customer_id, t->id, transcribe_to_json(t));
}

static int load(struct transcribe_mgr *m, const char *customer_id, const char *id,
                struct transcribe *out, struct error *e)
{
    int rc = store_transcribe_get(m->d.store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return error_set(e, ERR_NOT_FOUND, "TRANSCRIBE_NOT_FOUND",
                         "No transcribe with id %s exists for this customer.", id);
    if (rc != 0)
        return error_store_failed(e, "read the transcribe", rc);
    return 0;
}

size_t transcribe_mgr_running(const struct transcribe_mgr *m)
{
    return m->live.len;
}

/* The live transcribes on a target, collected first: finishing one changes the map. */
static size_t live_on(struct transcribe_mgr *m, enum transcribe_target t, const char *target_id,
                      id_t_ *ids, size_t cap)
{
    size_t k = 0, it = 0;
    void *v;
    while (k < cap && idmap_next(&m->live, &it, NULL, &v)) {
        struct live_tr *lt = v;
        if (lt->target == t && !strcmp(lt->target_id, target_id))
            memcpy(ids[k++], lt->id, sizeof(id_t_));
    }
    return k;
}

/* ---- the end of a transcribe ---- */

/* Done: nobody is listened to any more, the record says so, its conference no longer has it as
 * current, transcribe_done, then its on_end_flow_id. */
static void finish(struct transcribe_mgr *m, const char *id, const char *why)
{
    struct live_tr *lt = idmap_del(&m->live, id);
    if (!lt)
        return;
    m->d.listen.remove(m->d.listen.ctx, lt->id, NULL);
    if (lt->target == TRANSCRIBE_OF_CONFERENCE)
        m->d.targets.set_active(m->d.targets.ctx, lt->target_id, ID_NIL);
    struct transcribe t;
    if (store_transcribe_get(m->d.store, NULL, lt->id, &t) == 0) {
        t.status = TRANSCRIBE_DONE;
        t.tm_update = now_us(m);
        if (store_transcribe_update(m->d.store, &t) != 0)
            log_error("msg=\"transcribe end not stored\" transcribe_id=%s", t.id);
        log_info("msg=\"transcribe done\" transcribe_id=%s reason=%s skipped=%" PRId64
                 " failed=%" PRId64,
                 t.id, why, t.skipped, t.failed);
        publish(m, "transcribe_done", &t);
        if (!id_is_nil(t.on_end_flow_id) && m->d.flows.on_end)
            m->d.flows.on_end(m->d.flows.ctx, &t);
    }
    free(lt);
}

static void finish_on(struct transcribe_mgr *m, enum transcribe_target t, const char *target_id,
                      const char *why)
{
    id_t_ ids[16];
    size_t n;
    while ((n = live_on(m, t, target_id, ids, 16)) > 0)
        for (size_t i = 0; i < n; i++)
            finish(m, ids[i], why);
}

/* ---- who is listened to ---- */

static void add_speaker(struct transcribe_mgr *m, const struct live_tr *lt, const char *call_id,
                        const char *conferencecall_id, const char *direction)
{
    struct transcribe_speaker sp = {lt->id, call_id, conferencecall_id, direction, lt->language};
    struct error e;
    if (m->d.listen.add(m->d.listen.ctx, &sp, &e) < 0)
        log_warn("msg=\"speaker not transcribed\" transcribe_id=%s call_id=%s error=\"%s\"", lt->id,
                 call_id, e.message);
}

struct joined_arg {
    struct transcribe_mgr *m;
    const struct live_tr *lt;
};

static void on_joined(void *arg, const char *conferencecall_id, const char *call_id)
{
    struct joined_arg *a = arg;
    add_speaker(a->m, a->lt, call_id, conferencecall_id, "in");
}

/* What the bus says about the conferences and calls transcribed. */
static void on_event(const struct event *ev, void *ctx)
{
    struct transcribe_mgr *m = ctx;
    if (m->live.len == 0 || !ev->data)
        return;
    const char *status = json_string_value(json_object_get(ev->data, "status"));
    if (!strcmp(ev->resource, "conferencecall")) {
        const char *conf = json_string_value(json_object_get(ev->data, "conference_id"));
        const char *call = json_string_value(json_object_get(ev->data, "reference_id"));
        if (!conf || !call)
            return;
        bool joined = !strcmp(ev->type, "conferencecall_joined");
        bool left = !strcmp(ev->type, "conferencecall_leaving") ||
                    !strcmp(ev->type, "conferencecall_leaved");
        if (!joined && !left)
            return;
        id_t_ ids[16];
        size_t n = live_on(m, TRANSCRIBE_OF_CONFERENCE, conf, ids, 16);
        for (size_t i = 0; i < n; i++) {
            struct live_tr *lt = idmap_get(&m->live, ids[i]);
            if (joined)
                add_speaker(m, lt, call, ev->resource_id, "in");
            else
                m->d.listen.remove(m->d.listen.ctx, lt->id, call);
        }
    } else if (!strcmp(ev->resource, "conference")) {
        if (status && (!strcmp(status, "terminating") || !strcmp(status, "terminated")))
            finish_on(m, TRANSCRIBE_OF_CONFERENCE, ev->resource_id, "conference ended");
    } else if (!strcmp(ev->resource, "call")) {
        if (!strcmp(ev->type, "call_terminating") || !strcmp(ev->type, "call_hangup"))
            finish_on(m, TRANSCRIBE_OF_CALL, ev->resource_id, "call ended");
    }
}

struct transcribe_mgr *transcribe_mgr_create(const struct transcribe_deps *deps)
{
    struct transcribe_mgr *m = xcalloc(1, sizeof(*m));
    m->d = *deps;
    idmap_init(&m->live);
    events_subscribe(m->d.bus, on_event, m);
    return m;
}

void transcribe_mgr_destroy(struct transcribe_mgr *m)
{
    if (!m)
        return;
    size_t it = 0;
    void *v;
    while (idmap_next(&m->live, &it, NULL, &v))
        free(v);
    idmap_fini(&m->live);
    free(m);
}

void transcribe_mgr_shutdown(struct transcribe_mgr *m)
{
    size_t n;
    while ((n = m->live.len) > 0) {
        size_t it = 0;
        void *v;
        if (!idmap_next(&m->live, &it, NULL, &v))
            break;
        id_t_ id;
        memcpy(id, ((struct live_tr *)v)->id, sizeof(id));
        finish(m, id, "shutdown");
    }
}

int transcribe_mgr_recover(struct transcribe_mgr *m)
{
    struct transcribe *list;
    size_t n;
    if (store_transcribe_list_progressing(m->d.store, &list, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct transcribe *t = &list[i];
        t->status = TRANSCRIBE_DONE;
        t->tm_update = now_us(m);
        if (store_transcribe_update(m->d.store, t) != 0)
            continue;
        log_warn("msg=\"transcribe left progressing by a previous run is done\" transcribe_id=%s",
                 t->id);
        if (!strcmp(t->reference_type, "confbridge"))
            m->d.targets.set_active(m->d.targets.ctx, t->reference_id, ID_NIL);
        publish(m, "transcribe_done", t);
    }
    store_free_transcribes(list, n);
    return 0;
}

/* ---- start / stop ---- */

static bool valid_direction(const char *d)
{
    return !strcmp(d, "in") || !strcmp(d, "out") || !strcmp(d, "both");
}

static int check_request(struct transcribe_mgr *m, enum transcribe_target t,
                         const char *customer_id, const struct transcribe_start_req *req,
                         struct error *e)
{
    const char *lang = req->language;
    if (!lang || !lang[0])
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_LANGUAGE",
                         "language is required (supported here: %s).",
                         m->d.listen.languages(m->d.listen.ctx));
    if (strlen(lang) > TRANSCRIBE_LANGUAGE_MAX || !m->d.listen.supported(m->d.listen.ctx, lang))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_LANGUAGE",
                         "language \"%.40s\" is not supported here; supported: %s.", lang,
                         m->d.listen.languages(m->d.listen.ctx));
    const char *dir = req->direction;
    if (dir && dir[0] && !valid_direction(dir))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DIRECTION",
                         "direction \"%.16s\" must be in, out or both.", dir);
    if (t == TRANSCRIBE_OF_CONFERENCE && dir && dir[0] && strcmp(dir, "in"))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DIRECTION",
                         "A conference is transcribed speaker by speaker, from what each one "
                         "says: its direction is \"in\".");
    const char *flow = req->on_end_flow_id;
    if (flow && !id_is_nil(flow) &&
        !(m->d.flows.exists && m->d.flows.exists(m->d.flows.ctx, customer_id, flow)))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "on_end_flow_id %s is not a flow of this customer.", flow);
    return 0;
}

int transcribe_start(struct transcribe_mgr *m, enum transcribe_target t, const char *customer_id,
                     const char *target_id, const struct transcribe_start_req *req,
                     struct transcribe *out, struct error *e)
{
    struct transcribe_target_state st;
    int rc;
    if ((rc = m->d.targets.get(m->d.targets.ctx, t, customer_id, target_id, &st, e)) < 0)
        return rc;
    if ((rc = check_request(m, t, customer_id, req, e)) < 0)
        return rc;
    if (!st.progressing)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The %s is not progressing: only a progressing %s can be transcribed.",
                         target_word(t), target_word(t));
    id_t_ running;
    if (live_on(m, t, target_id, &running, 1) > 0)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The %s is already being transcribed (transcribe_id %s); stop it first.",
                         target_word(t), running);
    if (m->d.max_running > 0 && m->live.len >= (size_t)m->d.max_running)
        return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_TRANSCRIBES",
                         "This server already runs %d transcribes (the max_transcribes setting); "
                         "stop one or try again later.",
                         m->d.max_running);

    struct transcribe tr;
    memset(&tr, 0, sizeof(tr));
    id_new(tr.id);
    memcpy(tr.customer_id, st.customer_id, sizeof(tr.customer_id));
    memcpy(tr.activeflow_id, req->activeflow_id ? req->activeflow_id : ID_NIL, ID_LEN + 1);
    memcpy(tr.on_end_flow_id, req->on_end_flow_id ? req->on_end_flow_id : ID_NIL, ID_LEN + 1);
    snprintf(tr.reference_type, sizeof(tr.reference_type), "%s",
             t == TRANSCRIBE_OF_CONFERENCE ? "confbridge" : "call");
    memcpy(tr.reference_id, target_id, ID_LEN + 1);
    tr.status = TRANSCRIBE_PROGRESSING;
    snprintf(tr.language, sizeof(tr.language), "%s", req->language);
    const char *dir = req->direction && req->direction[0] ? req->direction
                      : t == TRANSCRIBE_OF_CONFERENCE     ? "in"
                                                          : "both";
    snprintf(tr.direction, sizeof(tr.direction), "%s", dir);
    tr.tm_create = tr.tm_update = now_us(m);
    tr.tm_delete = TM_NEVER;
    if ((rc = store_transcribe_insert(m->d.store, &tr)) != 0)
        return error_store_failed(e, "store the transcribe", rc);

    struct live_tr *lt = xcalloc(1, sizeof(*lt));
    memcpy(lt->id, tr.id, sizeof(lt->id));
    memcpy(lt->customer_id, tr.customer_id, sizeof(lt->customer_id));
    lt->target = t;
    memcpy(lt->target_id, target_id, ID_LEN + 1);
    snprintf(lt->direction, sizeof(lt->direction), "%s", tr.direction);
    snprintf(lt->language, sizeof(lt->language), "%s", tr.language);

    if (t == TRANSCRIBE_OF_CALL) {
        /* The call's audio is the whole of it: no audio, no transcribe. */
        bool in = strcmp(dir, "out") != 0, both = !strcmp(dir, "both");
        struct transcribe_speaker sp = {tr.id, target_id, ID_NIL, in ? "in" : "out", tr.language};
        if ((rc = m->d.listen.add(m->d.listen.ctx, &sp, e)) == 0 && both) {
            sp.direction = "out";
            if ((rc = m->d.listen.add(m->d.listen.ctx, &sp, e)) < 0)
                m->d.listen.remove(m->d.listen.ctx, tr.id, NULL);
        }
        if (rc < 0) {
            tr.status = TRANSCRIBE_DONE;
            tr.tm_update = now_us(m);
            store_transcribe_update(m->d.store, &tr);
            free(lt);
            return rc;
        }
        idmap_put(&m->live, lt->id, lt);
    } else {
        if ((rc = m->d.targets.set_active(m->d.targets.ctx, target_id, tr.id)) != 0) {
            tr.status = TRANSCRIBE_DONE;
            store_transcribe_update(m->d.store, &tr);
            free(lt);
            return error_store_failed(e, "store the transcribe", rc);
        }
        idmap_put(&m->live, lt->id, lt);
        struct joined_arg a = {m, lt};
        m->d.targets.joined(m->d.targets.ctx, target_id, on_joined, &a);
    }
    log_info("msg=\"transcribe started\" transcribe_id=%s %s_id=%s language=%s direction=%s", tr.id,
             target_word(t), target_id, tr.language, tr.direction);
    publish(m, "transcribe_started", &tr);
    *out = tr;
    return 0;
}

int transcribe_stop_conference(struct transcribe_mgr *m, const char *customer_id,
                               const char *conference_id, struct error *e)
{
    struct transcribe_target_state st;
    int rc;
    if ((rc = m->d.targets.get(m->d.targets.ctx, TRANSCRIBE_OF_CONFERENCE, customer_id,
                               conference_id, &st, e)) < 0)
        return rc;
    id_t_ id;
    if (live_on(m, TRANSCRIBE_OF_CONFERENCE, conference_id, &id, 1) == 0)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The conference is not being transcribed: there is nothing to stop.");
    finish(m, id, "stopped");
    return 0;
}

int transcribe_stop(struct transcribe_mgr *m, const char *customer_id, const char *id,
                    struct transcribe *out, struct error *e)
{
    int rc;
    if ((rc = load(m, customer_id, id, out, e)) < 0)
        return rc;
    if (idmap_get(&m->live, out->id)) {
        finish(m, out->id, "stopped");
        if ((rc = load(m, customer_id, id, out, e)) < 0)
            return rc;
    }
    return 0;
}

/* ---- reads, delete ---- */

int transcribe_get(struct transcribe_mgr *m, const char *customer_id, const char *id,
                   struct transcribe *out, struct error *e)
{
    return load(m, customer_id, id, out, e);
}

int transcribe_list(struct transcribe_mgr *m, const char *customer_id, const char *reference_id,
                    const struct store_page *p, struct transcribe **out, size_t *n, struct error *e)
{
    int rc = store_transcribe_list(m->d.store, customer_id, reference_id, p, out, n);
    return rc ? error_store_failed(e, "list the transcribes", rc) : 0;
}

int transcribe_delete(struct transcribe_mgr *m, const char *customer_id, const char *id,
                      struct transcribe *out, struct error *e)
{
    int rc;
    if ((rc = load(m, customer_id, id, out, e)) < 0)
        return rc;
    if (out->tm_delete != TM_NEVER)
        return 0;
    if (idmap_get(&m->live, out->id)) {
        finish(m, out->id, "deleted");
        if ((rc = load(m, customer_id, id, out, e)) < 0)
            return rc;
    }
    out->tm_delete = out->tm_update = now_us(m);
    if ((rc = store_transcribe_update(m->d.store, out)) != 0)
        return error_store_failed(e, "delete the transcribe", rc);
    log_info("msg=\"transcribe deleted\" transcribe_id=%s", out->id);
    return 0;
}

int transcribe_transcripts(struct transcribe_mgr *m, const char *customer_id,
                           const char *transcribe_id, const struct store_page *p,
                           struct transcript **out, size_t *n, struct error *e)
{
    struct transcribe t;
    int rc;
    if ((rc = load(m, customer_id, transcribe_id, &t, e)) < 0)
        return rc;
    if (t.tm_delete != TM_NEVER)
        return error_set(e, ERR_NOT_FOUND, "TRANSCRIBE_NOT_FOUND",
                         "Transcribe %s was deleted, and its transcripts with it.", transcribe_id);
    rc = store_transcript_list(m->d.store, t.customer_id, t.id, p, out, n);
    return rc ? error_store_failed(e, "list the transcripts", rc) : 0;
}

/* ---- what was heard ---- */

static void count(struct transcribe_mgr *m, const struct transcribe_heard *h)
{
    struct transcribe t;
    if (store_transcribe_get(m->d.store, NULL, h->transcribe_id, &t) != 0)
        return;
    if (h->kind == TRANSCRIBE_HEARD_SKIPPED) {
        t.skipped++;
    } else {
        t.failed++;
        snprintf(t.error, sizeof(t.error), "%s", h->error ? h->error : "recognition failed");
    }
    t.tm_update = now_us(m);
    if (store_transcribe_update(m->d.store, &t) != 0)
        log_error("msg=\"transcribe count not stored\" transcribe_id=%s", t.id);
    /* No event for each one: the counts are read with the transcribe. */
}

void transcribe_on_heard(struct transcribe_mgr *m, const struct transcribe_heard *h)
{
    if (h->kind != TRANSCRIBE_HEARD_TEXT) {
        count(m, h);
        return;
    }
    struct transcribe t;
    if (store_transcribe_get(m->d.store, NULL, h->transcribe_id, &t) != 0 ||
        t.tm_delete != TM_NEVER)
        return;
    struct transcript tr;
    memset(&tr, 0, sizeof(tr));
    id_new(tr.id);
    memcpy(tr.customer_id, t.customer_id, sizeof(tr.customer_id));
    memcpy(tr.transcribe_id, t.id, sizeof(tr.transcribe_id));
    snprintf(tr.direction, sizeof(tr.direction), "%s", h->direction ? h->direction : "in");
    tr.message = (char *)h->text;
    memcpy(tr.conferencecall_id, h->conferencecall_id ? h->conferencecall_id : ID_NIL, ID_LEN + 1);
    memcpy(tr.call_id, h->call_id ? h->call_id : ID_NIL, ID_LEN + 1);
    tr.confidence = h->confidence < 0 ? 0 : h->confidence > 1 ? 1 : h->confidence;
    tr.tm_transcript = h->tm_begin;
    tr.tm_end = h->tm_end;
    tr.offset_ms = h->tm_begin > t.tm_create ? (h->tm_begin - t.tm_create) / 1000 : 0;
    tr.tm_create = now_us(m);
    if (store_transcript_insert(m->d.store, &tr) != 0) {
        log_error("msg=\"transcript not stored\" transcribe_id=%s", t.id);
        return;
    }
    events_publish(m->d.bus, "transcript_created", tr.customer_id, tr.id, transcript_to_json(&tr));
}

/* ---- the flow actions ---- */

static int flow_start(void *ctx, const char *customer_id, const char *call_id,
                      const char *activeflow_id, const json_t *option, struct error *e)
{
    struct transcribe_mgr *m = ctx;
    const char *flow = json_string_value(json_object_get(option, "on_end_flow_id"));
    id_t_ flow_id;
    if (flow && flow[0] && id_normalize(flow, flow_id) < 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "on_end_flow_id \"%.64s\" is not a flow id.", flow);
    struct transcribe_start_req req = {
        .language = json_string_value(json_object_get(option, "language")),
        .direction = json_string_value(json_object_get(option, "direction")),
        .on_end_flow_id = flow && flow[0] ? flow_id : NULL,
        .activeflow_id = activeflow_id,
    };
    struct transcribe t;
    return transcribe_start(m, TRANSCRIBE_OF_CALL, customer_id, call_id, &req, &t, e);
}

static void flow_stop(void *ctx, const char *customer_id, const char *call_id)
{
    (void)customer_id; /* the call is the flow's own */
    finish_on(ctx, TRANSCRIBE_OF_CALL, call_id, "stopped by the flow");
}

struct flow_transcribes transcribe_flow_iface(struct transcribe_mgr *m)
{
    struct flow_transcribes f = {m, flow_start, flow_stop};
    return f;
}
