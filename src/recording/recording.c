#include "recording/recording.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "flow/activeflow.h"

/* A recording whose capture runs (or is finishing). */
struct live_rec {
    id_t_ id;
    enum recording_target target;
    id_t_ target_id;
    bool stopping;
};

struct recording_mgr {
    struct recording_deps d;
    struct idmap live; /* recording id -> struct live_rec */
};

static const char *target_word(enum recording_target t)
{
    return t == RECORDING_OF_CONFERENCE ? "conference" : "call";
}

static int64_t now_us(const struct recording_mgr *m)
{
    return sched_now(m->d.sched);
}

static int path_of(const struct recording_mgr *m, const char *id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s.wav", m->d.dir, id);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static void publish(struct recording_mgr *m, const char *type, const struct recording *r)
{
    events_publish(m->d.bus, type, r->customer_id, r->id, recording_to_json(r));
}

static int load(struct recording_mgr *m, const char *customer_id, const char *id,
                struct recording *out, struct error *e)
{
    int rc = store_recording_get(m->d.store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return error_set(e, ERR_NOT_FOUND, "RECORDING_NOT_FOUND",
                         "No recording with id %s exists for this customer.", id);
    if (rc != 0)
        return error_store_failed(e, "read the recording", rc);
    return 0;
}

struct recording_mgr *recording_mgr_create(const struct recording_deps *deps)
{
    struct recording_mgr *m = xcalloc(1, sizeof(*m));
    m->d = *deps;
    idmap_init(&m->live);
    return m;
}

void recording_mgr_destroy(struct recording_mgr *m)
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

size_t recording_mgr_running(const struct recording_mgr *m)
{
    return m->live.len;
}

/* The target no longer records rec (when rec is what it records). */
static void clear_target(struct recording_mgr *m, enum recording_target t, const char *target_id,
                         const char *rec_id)
{
    struct recording_target_state st;
    struct error e;
    if (m->d.targets.get(m->d.targets.ctx, t, NULL, target_id, &st, &e) == 0 &&
        !strcmp(st.recording_id, rec_id))
        m->d.targets.set_active(m->d.targets.ctx, t, target_id, ID_NIL);
}

static enum recording_target target_of(const struct recording *r)
{
    return strcmp(r->reference_type, "call") ? RECORDING_OF_CONFERENCE : RECORDING_OF_CALL;
}

/* ---- start / stop ---- */

static int check_request(struct recording_mgr *m, const char *customer_id,
                         const struct recording_start_req *req, struct error *e)
{
    if (req->format && strcmp(req->format, "wav"))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FORMAT",
                         "format \"%.32s\" is not supported: recordings are \"wav\" (mono 16-bit "
                         "PCM at 8 kHz).",
                         req->format);
    if (req->end_of_silence < 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DURATION",
                         "end_of_silence must be 0 (never) or a positive number of seconds.");
    if (req->duration < 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DURATION",
                         "duration must be 0 (up to %d s) or a positive number of seconds.",
                         RECORDING_MAX_SECONDS);
    const char *flow = req->on_end_flow_id;
    if (flow && !id_is_nil(flow) &&
        !(m->d.flows.exists && m->d.flows.exists(m->d.flows.ctx, customer_id, flow)))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "on_end_flow_id %s is not a flow of this customer.", flow);
    return 0;
}

int recording_start(struct recording_mgr *m, enum recording_target t, const char *customer_id,
                    const char *target_id, const struct recording_start_req *req,
                    struct recording *out, struct error *e)
{
    struct recording_target_state st;
    int rc;
    if ((rc = m->d.targets.get(m->d.targets.ctx, t, customer_id, target_id, &st, e)) < 0)
        return rc;
    if ((rc = check_request(m, customer_id, req, e)) < 0)
        return rc;
    if (!st.progressing)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The %s is not progressing: only a progressing %s can be recorded.",
                         target_word(t), target_word(t));
    if (!id_is_nil(st.recording_id))
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The %s is already recording (recording_id %s); stop it first.",
                         target_word(t), st.recording_id);
    if (m->d.max_running > 0 && m->live.len >= (size_t)m->d.max_running)
        return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_RECORDINGS",
                         "This server already runs %d recordings (the max_recordings setting); "
                         "stop one or try again later.",
                         m->d.max_running);

    struct recording r;
    memset(&r, 0, sizeof(r));
    id_new(r.id);
    memcpy(r.customer_id, st.customer_id, sizeof(r.customer_id));
    snprintf(r.owner_type, sizeof(r.owner_type), "%s", target_word(t));
    memcpy(r.owner_id, target_id, ID_LEN + 1);
    memcpy(r.activeflow_id, req->activeflow_id ? req->activeflow_id : ID_NIL, ID_LEN + 1);
    snprintf(r.reference_type, sizeof(r.reference_type), "%s",
             t == RECORDING_OF_CONFERENCE ? "confbridge" : "call");
    memcpy(r.reference_id, target_id, ID_LEN + 1);
    r.status = RECORDING_INITIATING;
    snprintf(r.format, sizeof(r.format), "wav");
    memcpy(r.on_end_flow_id, req->on_end_flow_id ? req->on_end_flow_id : ID_NIL, ID_LEN + 1);
    int64_t secs = req->duration == 0 || req->duration > RECORDING_MAX_SECONDS
                       ? RECORDING_MAX_SECONDS
                       : req->duration;
    r.max_ms = secs * 1000;
    r.tm_create = r.tm_update = now_us(m);
    r.tm_delete = TM_NEVER;
    char path[4096];
    if (path_of(m, r.id, path, sizeof(path)) < 0)
        return error_set(e, ERR_INTERNAL, "INTERNAL", "The recordings directory path is too long.");
    if ((rc = store_recording_insert(m->d.store, &r)) != 0)
        return error_store_failed(e, "store the recording", rc);
    int64_t silence_ms = req->end_of_silence > 0 ? req->end_of_silence * 1000 : 0;
    if ((rc = m->d.capture.start(m->d.capture.ctx, &r, path, r.max_ms, silence_ms, e)) < 0) {
        /* Nothing was captured: the record says so rather than disappearing. */
        r.status = RECORDING_ENDED;
        r.tm_end = r.tm_update = now_us(m);
        store_recording_update(m->d.store, &r);
        return rc;
    }
    r.status = RECORDING_RECORDING;
    r.tm_start = r.tm_update = now_us(m);
    if ((rc = store_recording_update(m->d.store, &r)) != 0 ||
        (rc = m->d.targets.set_active(m->d.targets.ctx, t, target_id, r.id)) != 0) {
        m->d.capture.stop(m->d.capture.ctx, r.id);
        r.status = RECORDING_STOPPING;
        store_recording_update(m->d.store, &r);
        struct live_rec *lr = xcalloc(1, sizeof(*lr));
        memcpy(lr->id, r.id, sizeof(lr->id));
        lr->target = t;
        memcpy(lr->target_id, target_id, ID_LEN + 1);
        lr->stopping = true;
        idmap_put(&m->live, lr->id, lr);
        return error_store_failed(e, "store the recording", rc);
    }
    struct live_rec *lr = xcalloc(1, sizeof(*lr));
    memcpy(lr->id, r.id, sizeof(lr->id));
    lr->target = t;
    memcpy(lr->target_id, target_id, ID_LEN + 1);
    idmap_put(&m->live, lr->id, lr);
    log_info("msg=\"recording started\" recording_id=%s %s_id=%s max_s=%" PRId64, r.id,
             target_word(t), target_id, secs);
    publish(m, "recording_started", &r);
    *out = r;
    return 0;
}

/* Asks the capture of a live recording to finish; the target stops recording it at once. */
static void stop_live(struct recording_mgr *m, struct live_rec *lr)
{
    if (lr->stopping)
        return;
    lr->stopping = true;
    struct recording r;
    if (store_recording_get(m->d.store, NULL, lr->id, &r) == 0 && r.status != RECORDING_ENDED) {
        r.status = RECORDING_STOPPING;
        r.tm_update = now_us(m);
        store_recording_update(m->d.store, &r);
    }
    clear_target(m, lr->target, lr->target_id, lr->id);
    m->d.capture.stop(m->d.capture.ctx, lr->id);
}

int recording_stop(struct recording_mgr *m, enum recording_target t, const char *customer_id,
                   const char *target_id, struct error *e)
{
    struct recording_target_state st;
    int rc;
    if ((rc = m->d.targets.get(m->d.targets.ctx, t, customer_id, target_id, &st, e)) < 0)
        return rc;
    if (id_is_nil(st.recording_id))
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The %s is not recording: there is nothing to stop.", target_word(t));
    struct live_rec *lr = idmap_get(&m->live, st.recording_id);
    if (lr)
        stop_live(m, lr);
    else
        clear_target(m, t, target_id, st.recording_id); /* a leftover: nothing runs */
    return 0;
}

void recording_mgr_shutdown(struct recording_mgr *m)
{
    size_t n = m->live.len;
    if (!n)
        return;
    /* Collected first: the map must not change while iterating, and capture.stop is a call out. */
    id_t_ *ids = xcalloc(n, sizeof(*ids));
    size_t k = 0, it = 0;
    void *v;
    while (k < n && idmap_next(&m->live, &it, NULL, &v))
        memcpy(ids[k++], ((struct live_rec *)v)->id, sizeof(id_t_));
    for (size_t i = 0; i < k; i++) {
        struct live_rec *lr = idmap_get(&m->live, ids[i]);
        if (lr)
            stop_live(m, lr);
    }
    free(ids);
}

/* ---- completion ---- */

static void remove_file(struct recording_mgr *m, const struct recording *r)
{
    char path[4096];
    if (path_of(m, r->id, path, sizeof(path)) == 0 && unlink(path) != 0 && errno != ENOENT)
        log_warn("msg=\"cannot remove a recording's file\" recording_id=%s error=\"%s\"", r->id,
                 strerror(errno));
}

void recording_on_captured(struct recording_mgr *m, const struct recording_captured *c)
{
    struct live_rec *lr = idmap_del(&m->live, c->id);
    if (!lr)
        return;
    struct recording r;
    if (store_recording_get(m->d.store, NULL, c->id, &r) != 0) {
        free(lr);
        return;
    }
    r.status = RECORDING_ENDED;
    r.duration_ms = c->duration_ms;
    r.size = c->size;
    r.frames_dropped = c->frames_dropped;
    r.tm_end = r.tm_update = now_us(m);
    const char *why = c->error ? "error" : c->reached_max ? "duration" : "stopped";
    if (c->error)
        log_warn("msg=\"recording ended early\" recording_id=%s duration_ms=%" PRId64
                 " frames_dropped=%" PRId64 " error=\"%s\"",
                 r.id, r.duration_ms, r.frames_dropped,
                 c->message ? c->message : strerror(c->error));
    else
        log_info("msg=\"recording ended\" recording_id=%s reason=%s duration_ms=%" PRId64
                 " frames_dropped=%" PRId64,
                 r.id, why, r.duration_ms, r.frames_dropped);
    if (store_recording_update(m->d.store, &r) != 0)
        log_error("msg=\"recording end not stored\" recording_id=%s", r.id);
    clear_target(m, lr->target, lr->target_id, r.id);
    free(lr);
    if (r.tm_delete != TM_NEVER)
        remove_file(m, &r);
    publish(m, "recording_finished", &r);
    if (!id_is_nil(r.on_end_flow_id) && m->d.flows.on_end)
        m->d.flows.on_end(m->d.flows.ctx, &r);
}

int recording_mgr_recover(struct recording_mgr *m)
{
    struct recording *list;
    size_t n;
    if (store_recording_list_unfinished(m->d.store, &list, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct recording *r = &list[i];
        char path[4096];
        int64_t ms = 0, size = 0;
        bool have = path_of(m, r->id, path, sizeof(path)) == 0 &&
                    m->d.capture.repair(m->d.capture.ctx, path, &ms, &size) == 0;
        r->duration_ms = have ? ms : 0;
        r->size = have ? size : 0;
        r->status = RECORDING_ENDED;
        r->tm_end = r->tm_start ? r->tm_start + r->duration_ms * 1000 : now_us(m);
        r->tm_update = now_us(m);
        if (store_recording_update(m->d.store, r) != 0)
            continue;
        log_warn("msg=\"recording left by a crash repaired\" recording_id=%s duration_ms=%" PRId64,
                 r->id, r->duration_ms);
        clear_target(m, target_of(r), r->reference_id, r->id);
        if (r->tm_delete != TM_NEVER)
            remove_file(m, r);
        publish(m, "recording_finished", r);
    }
    store_free_recordings(list, n);
    return 0;
}

/* ---- reads, delete, file ---- */

int recording_get(struct recording_mgr *m, const char *customer_id, const char *id,
                  struct recording *out, struct error *e)
{
    return load(m, customer_id, id, out, e);
}

int recording_list(struct recording_mgr *m, const char *customer_id, const char *owner_id,
                   const char *reference_id, const struct store_page *p, struct recording **out,
                   size_t *n, struct error *e)
{
    int rc = store_recording_list(m->d.store, customer_id, owner_id, reference_id, p, out, n);
    return rc ? error_store_failed(e, "list the recordings", rc) : 0;
}

int recording_delete(struct recording_mgr *m, const char *customer_id, const char *id,
                     struct recording *out, struct error *e)
{
    struct recording r;
    int rc;
    if ((rc = load(m, customer_id, id, &r, e)) < 0)
        return rc;
    if (r.tm_delete == TM_NEVER) {
        struct live_rec *lr = idmap_get(&m->live, r.id);
        if (lr)
            stop_live(m, lr);
        if ((rc = load(m, customer_id, id, &r, e)) < 0)
            return rc;
        r.tm_delete = r.tm_update = now_us(m);
        if ((rc = store_recording_update(m->d.store, &r)) != 0)
            return error_store_failed(e, "delete the recording", rc);
        if (!lr)
            remove_file(m, &r); /* else once its capture has finished */
        log_info("msg=\"recording deleted\" recording_id=%s", r.id);
    }
    *out = r;
    return 0;
}

int recording_file(struct recording_mgr *m, const char *customer_id, const char *id, char *path,
                   size_t cap, struct error *e)
{
    struct recording r;
    int rc;
    if ((rc = load(m, customer_id, id, &r, e)) < 0)
        return rc;
    if (r.tm_delete != TM_NEVER)
        return error_set(e, ERR_NOT_FOUND, "RECORDING_NOT_FOUND",
                         "Recording %s was deleted, and its file with it.", id);
    if (r.status != RECORDING_ENDED)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "Recording %s is still %s: its file can be downloaded once it has ended.",
                         id, recording_status_name(r.status));
    if (r.size <= 0 || path_of(m, r.id, path, cap) < 0 || access(path, R_OK) != 0)
        return error_set(e, ERR_NOT_FOUND, "RECORDING_FILE_NOT_FOUND",
                         "Recording %s has no file (nothing could be written).", id);
    return 0;
}

/* ---- the flow actions ---- */

static int flow_start(void *ctx, const char *customer_id, const char *call_id,
                      const char *activeflow_id, const json_t *option, struct error *e)
{
    struct recording_mgr *m = ctx;
    const char *format = json_string_value(json_object_get(option, "format"));
    const char *flow = json_string_value(json_object_get(option, "on_end_flow_id"));
    id_t_ flow_id;
    if (flow && flow[0] && id_normalize(flow, flow_id) < 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "on_end_flow_id \"%.64s\" is not a flow id.", flow);
    struct recording_start_req req = {
        .format = format && format[0] ? format : NULL,
        .duration = json_integer_value(json_object_get(option, "duration")),
        .end_of_silence = json_integer_value(json_object_get(option, "end_of_silence")),
        .on_end_flow_id = flow && flow[0] ? flow_id : NULL,
        .activeflow_id = activeflow_id,
    };
    struct recording r;
    return recording_start(m, RECORDING_OF_CALL, customer_id, call_id, &req, &r, e);
}

static void flow_stop(void *ctx, const char *customer_id, const char *call_id)
{
    struct error e;
    recording_stop(ctx, RECORDING_OF_CALL, customer_id, call_id, &e); /* none running: fine */
}

struct flow_recordings recording_flow_iface(struct recording_mgr *m)
{
    struct flow_recordings f = {m, flow_start, flow_stop};
    return f;
}
