/* The call records and their state machine: status changes written and published, hang-ups
 * from our side, the end of a call; the manager's lifecycle and the API operations. */
#include "call/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

static int call_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "CALL_NOT_FOUND",
                     "No call with id %s exists for this customer.", id);
}

void call_publish(struct call_mgr *m, const char *type, const struct call *c)
{
    events_publish(m->d.bus, type, c->customer_id, c->id, call_to_json(c));
}

/* Writes a status change of a live call to its record and publishes call_<status>. dialog: the
 * SIP dialog's saved state to keep with the record (NULL: unchanged); a hang-up clears it. */
static void set_status_dialog(struct call_mgr *m, struct live_call *lc, enum call_status st,
                              const char *hangup_by, const char *reason, const char *dialog)
{
    struct call c;
    if (store_call_get(m->d.store, NULL, lc->id, &c) != 0)
        return;
    int64_t now = tm_now_us();
    c.status = st;
    lc->status = st;
    if (st == CALL_RINGING && !c.tm_ringing)
        c.tm_ringing = now;
    if (st == CALL_PROGRESSING && !c.tm_progressing)
        c.tm_progressing = now;
    if (st == CALL_HANGUP)
        c.tm_hangup = now;
    if (dialog || st == CALL_HANGUP) {
        free(c.dialog);
        c.dialog = xstrdup(st == CALL_HANGUP ? "" : dialog);
    }
    if (hangup_by && !c.hangup_by[0])
        str_copy(c.hangup_by, sizeof(c.hangup_by), hangup_by);
    if (reason && !c.hangup_reason[0])
        str_copy(c.hangup_reason, sizeof(c.hangup_reason), reason);
    c.tm_update = now;
    if (store_call_update(m->d.store, &c) == 0) {
        char type[32];
        snprintf(type, sizeof(type), "call_%s", call_status_name(st));
        call_publish(m, type, &c);
    }
    call_fini(&c);
}

void call_set_status(struct call_mgr *m, struct live_call *lc, enum call_status st,
                     const char *hangup_by, const char *reason)
{
    set_status_dialog(m, lc, st, hangup_by, reason, NULL);
}

void call_set_answered(struct call_mgr *m, struct live_call *lc)
{
    char state[4096];
    bool saved = lc->dialog && m->sip.state(m->sip.ctx, lc->dialog, state, sizeof(state)) > 0;
    if (!saved && !lc->whip) /* a WHIP session has no dialog to end after a restart */
        log_warn("msg=\"dialog state not saved\" call_id=%s", lc->id);
    set_status_dialog(m, lc, CALL_PROGRESSING, NULL, NULL, saved ? state : NULL);
}

char *call_address_text(const char *type, const char *target, const char *target_name)
{
    json_t *a = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", type, "target", target ? target : "",
                          "target_name", target_name ? target_name : "", "name", "", "detail", "");
    if (!a) /* only when target is not valid UTF-8: keep the record, drop the text */
        a = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", type, "target", "", "target_name", "",
                      "name", "", "detail", "");
    char *s = json_dump_compact(a);
    json_decref(a);
    return s;
}

struct live_call *call_live(struct call_mgr *m, const char *id)
{
    return idmap_get(&m->live, id);
}

static void live_free(struct call_mgr *m, struct live_call *lc)
{
    call_cancel_ring_timer(m, lc);
    idmap_del(&m->live, lc->id);
    free(lc);
}

struct live_call *call_live_new(struct call_mgr *m, const struct call *c, struct sip_dialog *d,
                                struct media_leg *leg)
{
    struct live_call *lc = xcalloc(1, sizeof(*lc));
    lc->m = m;
    memcpy(lc->id, c->id, sizeof(lc->id));
    memcpy(lc->customer_id, c->customer_id, sizeof(lc->customer_id));
    memcpy(lc->activeflow_id, c->activeflow_id, sizeof(lc->activeflow_id));
    lc->direction = c->direction;
    lc->status = c->status;
    lc->dialog = d;
    lc->leg = leg;
    idmap_put(&m->live, lc->id, lc);
    if (d)
        m->sip.set_data(m->sip.ctx, d, lc);
    return lc;
}

void call_record_init(struct call *c, const char *customer_id, const char *type)
{
    memset(c, 0, sizeof(*c));
    id_new(c->id);
    memcpy(c->customer_id, customer_id, ID_LEN + 1);
    memcpy(c->owner_id, ID_NIL, ID_LEN + 1);
    memcpy(c->flow_id, ID_NIL, ID_LEN + 1);
    memcpy(c->activeflow_id, ID_NIL, ID_LEN + 1);
    memcpy(c->master_call_id, ID_NIL, ID_LEN + 1);
    str_copy(c->type, sizeof(c->type), type);
    c->action = xstrdup("{}");
    c->metadata = xstrdup("{}");
    c->tm_create = c->tm_update = tm_unique_us();
    c->tm_delete = TM_NEVER;
}

/* ---- the call's flow ---- */

int call_flow_create(struct call_mgr *m, const char *customer_id, const char *flow_id,
                     json_t *actions, const struct af_call_info *info, json_t *vars,
                     char out_id[ID_LEN + 1], struct error *e)
{
    if (!m->d.flows.create)
        return error_set(e, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE",
                         "Calls cannot run flows on this server.");
    return m->d.flows.create(m->d.flows.ctx, customer_id, flow_id, actions, info, vars, out_id, e);
}

/* The reports copy the ids: the listener may end the call (and free it) from inside. */
void call_report_ready(struct call_mgr *m, const char *call_id, const char *activeflow_id)
{
    id_t_ call, af;
    memcpy(call, call_id, sizeof(call));
    memcpy(af, activeflow_id, sizeof(af));
    if (m->d.listener.on_ready)
        m->d.listener.on_ready(m->d.listener.ctx, call, af);
}

void call_report_ended(struct call_mgr *m, const char *call_id, const char *activeflow_id)
{
    id_t_ call, af;
    memcpy(call, call_id, sizeof(call));
    memcpy(af, activeflow_id, sizeof(af));
    if (m->d.listener.on_ended)
        m->d.listener.on_ended(m->d.listener.ctx, call, af);
}

/* ---- the end of a call ---- */

/* The call is over: record it, tell the listener (its flow ends, which takes it out of its
 * conference; the bridge reports a leave it was working on) and forget it. The dialog, if any,
 * is already gone or about to be freed by the SIP side. */
void call_finish(struct call_mgr *m, struct live_call *lc, const char *by, const char *reason)
{
    call_whip_reply(lc, 403, NULL, "The call ended before it was answered.");
    if (lc->dialog)
        m->sip.set_data(m->sip.ctx, lc->dialog, NULL);
    lc->dialog = NULL;
    if (lc->leg) {
        media_leg_destroy(m->d.media, lc->leg); /* out of the room at once, no event */
        lc->leg = NULL;
    }
    call_set_status(m, lc, CALL_HANGUP, by, reason);
    log_info("msg=\"call ended\" call_id=%s by=%s reason=%s", lc->id, by, reason);
    call_report_ended(m, lc->id, lc->activeflow_id);
    live_free(m, lc);
}

/* SIP codes for refusing an incoming call that was never answered. */
static int reject_code(const char *reason)
{
    if (!strcmp(reason, "busy"))
        return 486;
    if (!strcmp(reason, "noanswer"))
        return 480;
    return 603;
}

void call_hangup_live(struct call_mgr *m, struct live_call *lc, const char *reason)
{
    if (lc->hanging_up)
        return;
    lc->hanging_up = true;
    log_info("msg=\"call hangup\" call_id=%s reason=%s", lc->id, reason);
    if (lc->dialog && !lc->answered && lc->direction == CALL_OUTGOING) {
        lc->cancel_reason = !strcmp(reason, "noanswer") ? "noanswer" : "cancel";
        call_set_status(m, lc, CALL_CANCELING, "local", NULL);
        if (m->sip.cancel(m->sip.ctx, lc->dialog) == 0)
            return; /* on_failed(487) finishes it */
        call_finish(m, lc, "local", lc->cancel_reason);
        return;
    }
    if (lc->whip && !lc->answered) {
        call_whip_reply(lc, m->draining ? 503 : 403, NULL,
                        m->draining ? "The server is shutting down."
                                    : "The conference's flow refused the call.");
        call_finish(m, lc, "local", reason);
        return;
    }
    if (lc->dialog && !lc->answered) {
        /* frees the dialog; at shutdown "try again later" rather than a refusal */
        m->sip.reject(m->sip.ctx, lc->dialog, m->draining ? 503 : reject_code(reason), NULL);
        lc->dialog = NULL;
        call_finish(m, lc, "local", reason);
        return;
    }
    call_set_status(m, lc, CALL_TERMINATING, "local", reason);
    if (!lc->dialog || m->sip.bye(m->sip.ctx, lc->dialog) < 0)
        call_finish(m, lc, "local", reason); /* no dialog to end */
}

static void on_ring_timeout(void *arg)
{
    struct live_call *lc = arg;
    lc->ring_timer = NULL;
    log_info("msg=\"no answer\" call_id=%s", lc->id);
    call_hangup_live(lc->m, lc, "noanswer");
}

/* Both ways a call may ring for at most ring_timeout_ms: an outgoing one is cancelled, an
 * incoming one whose flow has not answered is refused with 480 (hangup_reason noanswer). */
void call_arm_ring_timer(struct call_mgr *m, struct live_call *lc)
{
    int ring_ms = m->d.ring_timeout_ms > 0 ? m->d.ring_timeout_ms : 60000;
    lc->ring_timer =
        sched_at(m->d.sched, sched_now(m->d.sched) + (int64_t)ring_ms * 1000, on_ring_timeout, lc);
}

void call_cancel_ring_timer(struct call_mgr *m, struct live_call *lc)
{
    if (lc->ring_timer) {
        sched_cancel(m->d.sched, lc->ring_timer);
        lc->ring_timer = NULL;
    }
}

/* ---- lifecycle ---- */

struct call_mgr *call_mgr_create(const struct call_deps *deps)
{
    struct call_mgr *m = xcalloc(1, sizeof(*m));
    m->d = *deps;
    str_copy(m->media_ip, sizeof(m->media_ip), deps->media_ip ? deps->media_ip : "127.0.0.1");
    idmap_init(&m->live);
    return m;
}

void call_mgr_destroy(struct call_mgr *m)
{
    if (!m)
        return;
    size_t it = 0;
    void *v;
    while (idmap_next(&m->live, &it, NULL, &v)) {
        struct live_call *lc = v;
        if (lc->ring_timer)
            sched_cancel(m->d.sched, lc->ring_timer);
        free(lc);
    }
    idmap_fini(&m->live);
    for (size_t i = 0; i < m->n_saved; i++)
        free(m->saved[i]);
    free(m->saved);
    free(m);
}

void call_mgr_set_sip(struct call_mgr *m, const struct call_sip *sip)
{
    if (sip)
        m->sip = *sip;
    else
        memset(&m->sip, 0, sizeof(m->sip));
    m->has_sip = sip != NULL;
}

/* The ids of the live calls, so that ending them (which frees them) does not disturb the walk. */
static id_t_ *live_ids(struct call_mgr *m, size_t *n)
{
    id_t_ *ids = xcalloc(m->live.len + 1, sizeof(*ids));
    size_t it = 0, k = 0;
    const char *key;
    void *v;
    while (k < m->live.len && idmap_next(&m->live, &it, &key, &v))
        memcpy(ids[k++], ((struct live_call *)v)->id, sizeof(id_t_));
    *n = k;
    return ids;
}

size_t call_mgr_drain(struct call_mgr *m)
{
    m->draining = true;
    size_t n = 0;
    id_t_ *ids = live_ids(m, &n);
    for (size_t i = 0; i < n; i++) {
        struct live_call *lc = idmap_get(&m->live, ids[i]);
        if (lc)
            call_hangup_live(m, lc, "normal");
    }
    free(ids);
    if (n)
        log_info("msg=\"hanging up every call\" count=%zu still_live=%zu", n, m->live.len);
    return m->live.len;
}

void call_mgr_shutdown(struct call_mgr *m)
{
    m->draining = true;
    size_t n = 0;
    id_t_ *ids = live_ids(m, &n);
    for (size_t i = 0; i < n; i++) {
        struct live_call *lc = idmap_get(&m->live, ids[i]);
        if (!lc)
            continue;
        log_info("msg=\"call ended at shutdown\" call_id=%s status=%s", lc->id,
                 call_status_name(lc->status));
        call_finish(m, lc, "local", lc->cancel_reason ? lc->cancel_reason : "normal");
    }
    free(ids);
}

/* ---- API ---- */

int call_get(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
             struct error *e)
{
    int rc = store_call_get(m->d.store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return call_not_found(id, e);
    if (rc != 0)
        return error_set(e, ERR_INTERNAL, "INTERNAL", "The call could not be read.");
    return 0;
}

int call_hangup(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
                struct error *e)
{
    int rc = call_get(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    struct live_call *lc = idmap_get(&m->live, id);
    if (!lc)
        return 0;
    call_fini(out);
    call_hangup_live(m, lc, "normal");
    return call_get(m, customer_id, id, out, e);
}

int call_delete(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
                struct error *e)
{
    int rc = call_hangup(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    if (out->tm_delete == TM_NEVER) {
        out->tm_delete = out->tm_update = tm_now_us();
        if (store_call_update(m->d.store, out) == 0)
            call_publish(m, "call_deleted", out);
    }
    return 0;
}

size_t call_mgr_live(const struct call_mgr *m)
{
    return m->live.len;
}
