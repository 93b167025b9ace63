#include "call/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/idmap.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "flow/action.h"

#define MAX_DESTINATIONS 10
#define ADDRESS_TARGET_MAX 256

enum media_state { MEDIA_NONE = 0, MEDIA_JOINING, MEDIA_JOINED, MEDIA_LEAVING };

/* A call that is not hung up yet: its dialog, its media leg and its activeflow. */
struct live_call {
    struct call_mgr *m;
    id_t_ id;
    id_t_ customer_id;
    id_t_ activeflow_id;
    struct sip_dialog *dialog;
    struct media_leg *leg;
    enum call_direction direction;
    enum call_status status;
    bool answered; /* incoming: our 200 went out; outgoing: the peer's 200 came */
    bool acked;    /* incoming: our 200 was acknowledged; outgoing: set with answered */
    bool hanging_up;
    const char *cancel_reason;     /* outgoing, cancelled before the answer: "cancel"/"noanswer" */
    struct sdp_offer_result offer; /* incoming: the offer, answered when the flow answers */
    char signal_ip[64];            /* incoming: where its SIP comes from (RTP learning) */
    struct sched_timer *ring_timer;
    id_t_ cc_id; /* the participant whose audio is in (or going to) a room */
    enum media_state media;
};

struct call_mgr {
    struct call_deps d;
    struct conference_mgr *conferences;
    struct sip_stack *sip;
    struct flow_mgr *flows;
    struct af_mgr *afs;
    struct idmap live;  /* call id -> struct live_call */
    struct idmap rooms; /* conference id -> struct media_room */
    char media_ip[64];
    bool draining; /* shutting down: no new calls */
    /* Start-up: the saved SIP dialogs of the calls a previous run left up, waiting for the SIP
     * stack to send their BYEs (call_mgr_end_saved_dialogs). */
    char **saved;
    size_t n_saved;
};

static void arm_ring_timer(struct call_mgr *m, struct live_call *lc);

static int call_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "CALL_NOT_FOUND",
                     "No call with id %s exists for this customer.", id);
}

static void publish(struct call_mgr *m, const char *type, const struct call *c)
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
        publish(m, type, &c);
    }
    call_fini(&c);
}

static void set_status(struct call_mgr *m, struct live_call *lc, enum call_status st,
                       const char *hangup_by, const char *reason)
{
    set_status_dialog(m, lc, st, hangup_by, reason, NULL);
}

/* The call is answered: progressing, with what a restart needs to end its dialog. */
static void set_answered(struct call_mgr *m, struct live_call *lc)
{
    char state[4096];
    bool saved = lc->dialog && sip_dialog_state(lc->dialog, state, sizeof(state)) > 0;
    if (!saved)
        log_warn("msg=\"dialog state not saved\" call_id=%s", lc->id);
    set_status_dialog(m, lc, CALL_PROGRESSING, NULL, NULL, saved ? state : NULL);
}

static char *address_text(const char *type, const char *target, const char *target_name)
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

static void live_free(struct call_mgr *m, struct live_call *lc)
{
    if (lc->ring_timer)
        sched_cancel(m->d.sched, lc->ring_timer);
    idmap_del(&m->live, lc->id);
    free(lc);
}

/* The call is over: record it, end its flow (which takes it out of its conference) and forget
 * it. The dialog, if any, is already gone or about to be freed by the SIP stack. */
static void finish_call(struct call_mgr *m, struct live_call *lc, const char *by,
                        const char *reason)
{
    if (lc->dialog)
        sip_dialog_set_data(lc->dialog, NULL);
    lc->dialog = NULL;
    bool leaving = lc->media == MEDIA_LEAVING && lc->cc_id[0];
    if (lc->leg) {
        media_leg_destroy(m->d.media, lc->leg); /* out of the room at once, no event */
        lc->leg = NULL;
    }
    lc->media = MEDIA_NONE;
    set_status(m, lc, CALL_HANGUP, by, reason);
    log_info("msg=\"call ended\" call_id=%s by=%s reason=%s", lc->id, by, reason);
    if (m->afs)
        af_on_call_ended(m->afs, lc->activeflow_id);
    /* A leave the bridge was working on (a kick, the flow's end): its report died with the leg. */
    if (leaving && lc->cc_id[0] && m->conferences)
        conference_on_leaved(m->conferences, lc->cc_id);
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

/* Ends a live call from our side: BYE (answered), a refusal (incoming, not answered) or CANCEL
 * (outgoing, not answered). */
static void hangup_live(struct call_mgr *m, struct live_call *lc, const char *reason)
{
    if (lc->hanging_up)
        return;
    lc->hanging_up = true;
    log_info("msg=\"call hangup\" call_id=%s reason=%s", lc->id, reason);
    if (lc->dialog && !lc->answered && lc->direction == CALL_OUTGOING) {
        lc->cancel_reason = !strcmp(reason, "noanswer") ? "noanswer" : "cancel";
        set_status(m, lc, CALL_CANCELING, "local", NULL);
        if (sip_dialog_cancel(lc->dialog) == 0)
            return; /* on_failed(487) finishes it */
        finish_call(m, lc, "local", lc->cancel_reason);
        return;
    }
    if (lc->dialog && !lc->answered) {
        /* frees the dialog; at shutdown "try again later" rather than a refusal */
        sip_dialog_reject(lc->dialog, m->draining ? 503 : reject_code(reason), NULL);
        lc->dialog = NULL;
        finish_call(m, lc, "local", reason);
        return;
    }
    set_status(m, lc, CALL_TERMINATING, "local", reason);
    if (!lc->dialog || sip_dialog_bye(lc->dialog) < 0)
        finish_call(m, lc, "local", reason); /* no dialog to end */
}

static struct live_call *live_new(struct call_mgr *m, const struct call *c, struct sip_dialog *d,
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
        sip_dialog_set_data(d, lc);
    return lc;
}

static void call_record_init(struct call *c, const char *customer_id, const char *type)
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

/* ---- incoming calls ---- */

/* The built-in flow of a direct-hash call: answer, then join the conference. */
static json_t *direct_flow(const char *conference_id)
{
    json_t *in = json_pack("[{s:s},{s:s,s:{s:s}}]", "type", "answer", "type", "conference_join",
                           "option", "conference_id", conference_id);
    json_t *out = NULL;
    struct error e;
    if (action_list_validate(in, &out, &e) < 0)
        out = json_array();
    json_decref(in);
    return out;
}

/* Where an incoming call goes: a conference's direct hash or a number's call flow. Returns the
 * SIP code to refuse with, or 0 with the customer, flow and (for direct calls) actions. */
static int route(struct call_mgr *m, const char *user, id_t_ customer_id, id_t_ flow_id,
                 json_t **actions, const char **type)
{
    struct error e;
    *actions = NULL;
    if (!strncmp(user, "direct.", 7)) {
        /* The seeds write the URI "sip:direct.<hash>@host"; applied to our direct_hash (which is
         * "direct.<12hex>" already) that gives direct.direct.<12hex>: both forms reach it. */
        const char *hash = !strncmp(user, "direct.direct.", 14) ? user + 7 : user;
        struct conference conf;
        if (!m->conferences || conference_find_by_hash(m->conferences, hash, &conf, &e) < 0)
            return 404;
        int code = 0;
        if (conf.status != CONFERENCE_PROGRESSING)
            code = 403;
        else if (conf.type == CONFERENCE_TYPE_CONNECT && conf.n_call_ids >= 2)
            code = 486;
        if (!code) {
            memcpy(customer_id, conf.customer_id, ID_LEN + 1);
            memcpy(flow_id, ID_NIL, ID_LEN + 1);
            *actions = direct_flow(conf.id);
            *type = "conference";
        }
        conference_fini(&conf);
        return code;
    }
    struct number num;
    if (!m->flows || number_route(m->flows, user, &num, &e) < 0)
        return 404;
    /* A flow that does not exist (deleted) is found out by af_create(): also a 404. */
    int code = id_is_nil(num.call_flow_id) ? 404 : 0;
    memcpy(customer_id, num.customer_id, ID_LEN + 1);
    memcpy(flow_id, num.call_flow_id, ID_LEN + 1);
    *type = "flow";
    number_fini(&num);
    return code;
}

static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct call_mgr *m = ctx;
    const char *user = inv->request_user ? inv->request_user : "";
    if (m->draining) {
        log_info("msg=\"incoming call refused\" reason=shutting_down sip_call_id=%s", inv->call_id);
        sip_dialog_reject(d, 503, "Shutting Down");
        return;
    }
    id_t_ customer_id, flow_id;
    json_t *actions = NULL;
    const char *type = "flow";
    int code = route(m, user, customer_id, flow_id, &actions, &type);
    if (code) {
        log_info("msg=\"incoming call refused\" user=\"%.64s\" code=%d sip_call_id=%s", user, code,
                 inv->call_id);
        sip_dialog_reject(d, code, NULL);
        return;
    }
    struct sdp_offer_result offer;
    if (!inv->sdp || sdp_parse_offer(inv->sdp, &offer) < 0) {
        json_decref(actions);
        sip_dialog_reject(d, 488, "Not Acceptable Here");
        return;
    }
    struct call c;
    call_record_init(&c, customer_id, type);
    char err[128];
    struct media_leg *leg = media_leg_create(m->d.media, c.id, err, sizeof(err));
    if (!leg) {
        log_warn("msg=\"no media port\" sip_call_id=%s error=\"%s\"", inv->call_id, err);
        goto fail_503;
    }
    memcpy(c.flow_id, flow_id, ID_LEN + 1);
    c.source = address_text("sip", inv->from_uri, inv->from_display);
    c.destination = address_text("sip", inv->request_uri, NULL);
    c.status = CALL_RINGING;
    c.direction = CALL_INCOMING;
    c.tm_ringing = c.tm_create;
    struct af_call_info info = {.call_id = c.id,
                                .source_target = inv->from_uri,
                                .source_name = inv->from_display,
                                .destination_target = user,
                                .direction = "incoming"};
    struct error e;
    if (!m->afs ||
        af_create(m->afs, customer_id, flow_id, actions, &info, NULL, c.activeflow_id, &e) < 0) {
        media_leg_destroy(m->d.media, leg);
        if (m->afs && e.status == ERR_INVALID_ARGUMENT) { /* the number's flow is gone */
            log_info("msg=\"incoming call refused\" user=\"%.64s\" code=404 reason=%s", user,
                     e.reason);
            json_decref(actions);
            call_fini(&c);
            sip_dialog_reject(d, 404, NULL);
            return;
        }
        goto fail_503;
    }
    json_decref(actions);
    actions = NULL;
    if (store_call_insert(m->d.store, &c) != 0) {
        media_leg_destroy(m->d.media, leg);
        af_on_call_ended(m->afs, c.activeflow_id);
        call_fini(&c);
        sip_dialog_reject(d, 500, NULL);
        return;
    }
    struct live_call *lc = live_new(m, &c, d, leg);
    lc->offer = offer;
    arm_ring_timer(m, lc); /* until its flow answers */
    log_info("msg=\"call created\" call_id=%s sip_call_id=%s user=\"%.64s\" activeflow_id=%s "
             "port=%d",
             c.id, inv->call_id, user, c.activeflow_id, media_leg_port(leg));
    publish(m, "call_created", &c);
    call_fini(&c);
    /* The media starts with the ACK (on_established): until the caller has proved it exists,
     * nothing is sent to the address its offer names (a spoofed INVITE must not turn us into a
     * reflector). */
    str_copy(lc->signal_ip, sizeof(lc->signal_ip), inv->source_ip);
    af_run(m->afs, lc->activeflow_id);
    return;
fail_503:
    json_decref(actions);
    call_fini(&c);
    sip_dialog_reject(d, 503, "Service Unavailable");
}

/* The call counts as up from our 200; the ACK only tells that the caller is there. */
static void on_established(void *ctx, struct sip_dialog *d)
{
    struct live_call *lc = sip_dialog_data(d);
    struct call_mgr *m = ctx;
    if (!lc || lc->acked)
        return;
    lc->acked = true;
    if (lc->leg && lc->direction == CALL_INCOMING)
        media_leg_set_remote(m->d.media, lc->leg, lc->offer.remote_ip, lc->offer.remote_port,
                             lc->offer.codec == SDP_PCMA ? MIX_PCMA : MIX_PCMU, lc->offer.dtmf_pt,
                             lc->signal_ip);
}

static void on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = sip_dialog_data(d);
    if (!lc)
        return;
    lc->dialog = NULL;
    /* Our 2xx never acknowledged: the call failed to set up, whatever came first. */
    const char *reason = cancelled ? "cancel" : sip_dialog_unacked(d) ? "failed" : "normal";
    finish_call(m, lc, remote ? "remote" : "local", reason);
}

/* ---- outgoing calls ---- */

static void on_progress(void *ctx, struct sip_dialog *d, int code)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = sip_dialog_data(d);
    (void)code;
    if (lc && lc->status == CALL_DIALING)
        set_status(m, lc, CALL_RINGING, NULL, NULL);
}

static void on_answered(void *ctx, struct sip_dialog *d, const char *sdp)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = sip_dialog_data(d);
    if (!lc)
        return;
    if (lc->ring_timer) {
        sched_cancel(m->d.sched, lc->ring_timer);
        lc->ring_timer = NULL;
    }
    lc->answered = lc->acked = true; /* we have sent the ACK */
    if (lc->hanging_up) {            /* our CANCEL crossed the 200 */
        lc->hanging_up = false;
        hangup_live(m, lc, lc->cancel_reason ? lc->cancel_reason : "cancel");
        return;
    }
    struct sdp_offer_result ans;
    if (!sdp || sdp_parse_answer(sdp, &ans) < 0) {
        log_warn("msg=\"unusable SDP answer\" call_id=%s", lc->id);
        hangup_live(m, lc, "failed");
        return;
    }
    media_leg_set_remote(m->d.media, lc->leg, ans.remote_ip, ans.remote_port,
                         ans.codec == SDP_PCMA ? MIX_PCMA : MIX_PCMU, ans.dtmf_pt,
                         sip_dialog_peer_ip(d));
    media_leg_arm_timeout(m->d.media, lc->leg); /* no RTP timeout while ringing */
    set_answered(m, lc);
    if (m->afs)
        af_run(m->afs, lc->activeflow_id); /* outgoing calls start their flow when answered */
}

static void on_failed(void *ctx, struct sip_dialog *d, int code)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = sip_dialog_data(d);
    if (!lc)
        return;
    lc->dialog = NULL;
    const char *reason, *by = "remote";
    if (code == 487 && lc->cancel_reason) {
        reason = lc->cancel_reason;
        by = "local";
    } else if (code == 486 || code == 600 || code == 603) {
        reason = "busy";
    } else if (code == 480) {
        reason = "noanswer";
    } else {
        reason = "failed";
    }
    log_info("msg=\"outgoing call failed\" call_id=%s code=%d", lc->id, code);
    finish_call(m, lc, by, reason);
}

static void on_ring_timeout(void *arg)
{
    struct live_call *lc = arg;
    lc->ring_timer = NULL;
    log_info("msg=\"no answer\" call_id=%s", lc->id);
    hangup_live(lc->m, lc, "noanswer");
}

/* Both ways a call may ring for at most ring_timeout_ms: an outgoing one is cancelled, an
 * incoming one whose flow has not answered is refused with 480 (hangup_reason noanswer). */
static void arm_ring_timer(struct call_mgr *m, struct live_call *lc)
{
    int ring_ms = m->d.ring_timeout_ms > 0 ? m->d.ring_timeout_ms : 60000;
    lc->ring_timer =
        sched_at(m->d.sched, sched_now(m->d.sched) + (int64_t)ring_ms * 1000, on_ring_timeout, lc);
}

struct sip_callbacks call_sip_callbacks(struct call_mgr *m)
{
    struct sip_callbacks cb = {
        .ctx = m,
        .on_invite = on_invite,
        .on_established = on_established,
        .on_ended = on_ended,
        .on_progress = on_progress,
        .on_answered = on_answered,
        .on_failed = on_failed,
    };
    return cb;
}

/* ---- media ---- */

static struct live_call *live_by_leg(struct call_mgr *m, struct media_leg *leg)
{
    struct live_call *lc = idmap_get(&m->live, media_leg_key(leg));
    return lc && lc->leg == leg ? lc : NULL;
}

void call_on_media_event(void *ctx, const struct media_event *ev)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = live_by_leg(m, ev->leg);
    if (!lc)
        return;
    switch (ev->type) {
    case MEDIA_LEG_JOINED:
        lc->media = MEDIA_JOINED;
        conference_on_joined(m->conferences, lc->cc_id);
        break;
    case MEDIA_LEG_LEFT:
        lc->media = MEDIA_NONE;
        conference_on_leaved(m->conferences, lc->cc_id);
        break;
    case MEDIA_LEG_DTMF: {
        log_info("msg=dtmf call_id=%s digit=%c", lc->id, ev->digit);
        char digit[2] = {ev->digit, 0};
        events_publish(m->d.bus, "call_dtmf_received", lc->customer_id, lc->id,
                       json_pack("{s:s,s:s}", "call_id", lc->id, "digit", digit));
        if (m->afs)
            af_on_dtmf(m->afs, lc->activeflow_id, ev->digit);
        break;
    }
    case MEDIA_LEG_TIMEOUT:
        /* An answer never acknowledged: the SIP side ends it at 64*T1 as failed. */
        if (!lc->acked)
            break;
        log_info("msg=\"rtp timeout\" call_id=%s", lc->id);
        hangup_live(m, lc, "timeout");
        break;
    case MEDIA_LEG_PLAY_DONE:
        if (m->afs)
            af_on_play_done(m->afs, lc->activeflow_id, ev->play_id, ev->stopped);
        break;
    }
}

/* ---- bridge (for conferences) ---- */

static struct media_room *room_for(struct call_mgr *m, const char *conference_id)
{
    struct media_room *r = idmap_get(&m->rooms, conference_id);
    if (!r) {
        r = media_room_create(m->d.media, conference_id);
        idmap_put(&m->rooms, conference_id, r);
    }
    return r;
}

static int bridge_create(void *ctx, const struct conference *c)
{
    room_for(ctx, c->id);
    return 0;
}

static void bridge_destroy(void *ctx, const char *conference_id)
{
    struct call_mgr *m = ctx;
    struct media_room *r = idmap_del(&m->rooms, conference_id);
    if (r)
        media_room_destroy(m->d.media, r);
}

static int bridge_join(void *ctx, const struct conferencecall *cc)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, cc->reference_id);
    if (!lc || !lc->leg || lc->hanging_up || lc->media != MEDIA_NONE)
        return -1;
    memcpy(lc->cc_id, cc->id, sizeof(lc->cc_id));
    lc->media = MEDIA_JOINING;
    media_leg_join(m->d.media, lc->leg, room_for(m, cc->conference_id));
    return 0;
}

static void bridge_kick(void *ctx, const struct conferencecall *cc)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, cc->reference_id);
    if (lc && lc->leg && lc->media != MEDIA_NONE && !strcmp(lc->cc_id, cc->id)) {
        lc->media = MEDIA_LEAVING;
        media_leg_leave(m->d.media, lc->leg); /* MEDIA_LEG_LEFT follows */
        return;
    }
    conference_on_leaved(m->conferences, cc->id); /* nothing in the bridge */
}

struct conference_bridge call_bridge_iface(struct call_mgr *m)
{
    struct conference_bridge b = {m, bridge_create, bridge_destroy, bridge_join, bridge_kick};
    return b;
}

static bool calls_is_progressing(void *ctx, enum cc_reference_type t, const char *id)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, id);
    return t == CC_REFERENCE_CALL && lc && lc->status == CALL_PROGRESSING && !lc->hanging_up;
}

static void calls_left(void *ctx, const struct conferencecall *cc, const struct conference *c)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, cc->reference_id);
    if (lc && !strcmp(lc->cc_id, cc->id))
        lc->cc_id[0] = '\0';
    if (m->afs)
        af_on_conference_left(m->afs, cc->activeflow_id, cc, c); /* the flow goes on */
}

struct conference_calls call_conference_iface(struct call_mgr *m)
{
    struct conference_calls c = {m, calls_is_progressing, calls_left};
    return c;
}

/* ---- what flows ask of calls ---- */

static int op_answer(void *ctx, const char *call_id)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, call_id);
    if (!lc || lc->hanging_up)
        return -1;
    if (lc->answered || lc->direction == CALL_OUTGOING)
        return 0;
    char sdp[2048];
    uint64_t session = (uint64_t)tm_now_us();
    if (!lc->dialog ||
        sdp_build_answer(&lc->offer, m->media_ip, media_leg_port(lc->leg), session, session, sdp,
                         sizeof(sdp)) < 0 ||
        sip_dialog_answer(lc->dialog, sdp) < 0)
        return -1;
    lc->answered = true;
    if (lc->ring_timer) {
        sched_cancel(m->d.sched, lc->ring_timer);
        lc->ring_timer = NULL;
    }
    media_leg_arm_timeout(m->d.media, lc->leg); /* no RTP timeout while ringing */
    set_answered(m, lc);
    return 0;
}

static int op_play(void *ctx, const char *call_id, struct media_clip *clip, uint32_t play_id)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, call_id);
    if (!lc || !lc->leg || lc->hanging_up || !lc->answered)
        return -1;
    media_leg_play(m->d.media, lc->leg, clip, play_id);
    return 0;
}

static void op_play_stop(void *ctx, const char *call_id)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, call_id);
    if (lc && lc->leg)
        media_leg_play_stop(m->d.media, lc->leg);
}

static void op_hangup(void *ctx, const char *call_id, const char *reason)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, call_id);
    if (lc)
        hangup_live(m, lc, reason);
}

/* The call's action is the one its flow runs now: id, type and option as the flow has them. */
static void op_action(void *ctx, const char *call_id, const json_t *action)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, call_id);
    struct call c;
    if (!lc || !json_is_object(action) || store_call_get(m->d.store, NULL, call_id, &c) != 0)
        return;
    json_t *id = json_object_get(action, "id"), *type = json_object_get(action, "type"),
           *opt = json_object_get(action, "option");
    json_t *v = json_object();
    json_object_set_new(v, "id", json_is_string(id) ? json_copy(id) : json_string(ID_NIL));
    json_object_set_new(v, "type", json_is_string(type) ? json_copy(type) : json_string(""));
    json_object_set_new(v, "option", json_is_object(opt) ? json_deep_copy(opt) : json_object());
    free(c.action);
    c.action = json_dump_compact(v);
    json_decref(v);
    c.tm_update = tm_now_us();
    if (store_call_update(m->d.store, &c) == 0)
        publish(m, "call_updated", &c);
    call_fini(&c);
}

struct flow_call_ops call_flow_ops(struct call_mgr *m)
{
    struct flow_call_ops ops = {m, op_answer, op_play, op_play_stop, op_hangup, op_action};
    return ops;
}

/* ---- POST /calls ---- */

struct dest {
    char uri[ADDRESS_TARGET_MAX + 8];
    json_t *address;
};

/* "sip:user@host[:port]" or "user@host[:port]" -> a SIP URI we can dial (sip_uri_check: the
 * host an IPv4 address or a DNS name, the port 1-65535, nothing else). -1 with what is wrong in
 * why. */
static int dest_uri(const char *target, char *out, size_t cap, char *why, size_t whylen)
{
    const char *t = strncasecmp(target, "sip:", 4) == 0 ? target + 4 : target;
    size_t scheme = strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (t == target && scheme > 0 && t[scheme] == ':') {
        snprintf(why, whylen, "only sip: addresses can be dialled (the scheme must be sip:)");
        return -1;
    }
    const char *at = strchr(t, '@');
    if (!at || at == t || !at[1]) {
        snprintf(why, whylen, "it needs a user and a host (user@host)");
        return -1;
    }
    if (snprintf(out, cap, "sip:%s", t) >= (int)cap) {
        snprintf(why, whylen, "it is too long");
        return -1;
    }
    return sip_uri_check(out, why, whylen);
}

static int check_address(json_t *a, const char *field, size_t i, struct error *e)
{
    if (!json_is_object(a))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_ADDRESS",
                         "\"%s\"[%zu] must be an address object {\"type\",\"target\"}.", field, i);
    const char *keys[] = {"type", "target", "target_name", "name", "detail"};
    for (size_t k = 0; k < 5; k++) {
        json_t *v = json_object_get(a, keys[k]);
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 256))
            return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_ADDRESS",
                             "\"%s\"[%zu].%s must be a string of at most 256 bytes.", field, i,
                             keys[k]);
    }
    return 0;
}

/* Input shown in an error message: printable ASCII, '?' for the rest, cut to fit. */
static const char *printable(const char *in, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        buf[n++] = (*in >= ' ' && *in < 127 && *in != '"' && *in != '\\') ? *in : '?';
    buf[n] = '\0';
    return buf;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *address_copy(json_t *a)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", jstr(a, "type"), "target", jstr(a, "target"),
                     "target_name", jstr(a, "target_name"), "name", jstr(a, "name"), "detail",
                     jstr(a, "detail"));
}

/* Dials one destination; returns the call's JSON, or NULL (logged) when it could not start. */
static json_t *dial_one(struct call_mgr *m, const char *customer_id, const struct call_dial_req *r,
                        json_t *actions, json_t *source, const char *from_uri,
                        const struct dest *dst, struct error *e)
{
    struct call c;
    call_record_init(&c, customer_id, "flow");
    char err[160];
    struct media_leg *leg = media_leg_create(m->d.media, c.id, err, sizeof(err));
    if (!leg) {
        call_fini(&c);
        error_set(e, ERR_UNAVAILABLE, "NO_MEDIA_PORT", "No RTP port is free: %s", err);
        return NULL;
    }
    if (r->flow_id)
        memcpy(c.flow_id, r->flow_id, ID_LEN + 1);
    c.source = json_dump_compact(source);
    c.destination = json_dump_compact(dst->address);
    c.status = CALL_DIALING;
    c.direction = CALL_OUTGOING;
    struct af_call_info info = {.call_id = c.id,
                                .source_target = jstr(source, "target"),
                                .source_name = jstr(source, "target_name"),
                                .destination_target = jstr(dst->address, "target"),
                                .direction = "outgoing"};
    if (af_create(m->afs, customer_id, r->flow_id, actions, &info, r->variables, c.activeflow_id,
                  e) < 0) {
        media_leg_destroy(m->d.media, leg);
        call_fini(&c);
        return NULL;
    }
    char sdp[1024];
    uint64_t session = (uint64_t)tm_now_us();
    struct sip_outgoing o = {.request_uri = dst->uri, .from_uri = from_uri, .sdp = sdp};
    struct sip_dialog *d = NULL;
    if (sdp_build_offer(m->media_ip, media_leg_port(leg), session, session, sdp, sizeof(sdp)) >= 0)
        d = sip_dialog_invite(m->sip, &o, NULL, err, sizeof(err));
    if (!d) {
        media_leg_destroy(m->d.media, leg);
        af_on_call_ended(m->afs, c.activeflow_id);
        call_fini(&c);
        error_set(e, ERR_UNAVAILABLE, "DIAL_FAILED", "The call to %s could not start: %s", dst->uri,
                  err);
        return NULL;
    }
    if (store_call_insert(m->d.store, &c) != 0) {
        sip_dialog_cancel(d);
        sip_dialog_set_data(d, NULL);
        media_leg_destroy(m->d.media, leg);
        af_on_call_ended(m->afs, c.activeflow_id);
        call_fini(&c);
        error_set(e, ERR_INTERNAL, "INTERNAL", "The call could not be stored.");
        return NULL;
    }
    struct live_call *lc = live_new(m, &c, d, leg);
    arm_ring_timer(m, lc);
    log_info("msg=\"call dialled\" call_id=%s to=\"%s\" activeflow_id=%s port=%d", c.id, dst->uri,
             c.activeflow_id, media_leg_port(leg));
    publish(m, "call_created", &c);
    publish(m, "call_dialing", &c);
    json_t *v = call_to_json(&c);
    call_fini(&c);
    return v;
}

int call_dial(struct call_mgr *m, const char *customer_id, const struct call_dial_req *r,
              json_t **out, struct error *e)
{
    if (!m->afs || !m->flows)
        return error_set(e, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE",
                         "Outgoing calls are not available on this server.");
    json_t *dsts = r->destinations;
    if (!json_is_array(dsts) || json_array_size(dsts) == 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                         "\"destinations\" must be an array of 1 to %d addresses, e.g. "
                         "[{\"type\":\"sip\",\"target\":\"sip:alice@192.0.2.10:5060\"}].",
                         MAX_DESTINATIONS);
    size_t n = json_array_size(dsts);
    if (n > MAX_DESTINATIONS)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                         "At most %d destinations per request; this one has %zu.", MAX_DESTINATIONS,
                         n);
    if (r->source && !json_is_null(r->source) && check_address(r->source, "source", 0, e) < 0)
        return -ERR_INVALID_ARGUMENT;
    bool has_flow = r->flow_id && !id_is_nil(r->flow_id);
    if (!has_flow && !r->actions)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW",
                         "Give \"flow_id\" (a flow of yours) or \"actions\" (the flow to run "
                         "when the call is answered).");
    if (has_flow && !flow_exists(m->flows, customer_id, r->flow_id))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "No flow with id %s exists for this customer.", r->flow_id);
    if (r->variables && !json_is_null(r->variables)) {
        if (!json_is_object(r->variables) || json_object_size(r->variables) > 100)
            return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_VARIABLES",
                             "\"variables\" must be an object of at most 100 string values.");
        const char *k;
        json_t *v;
        json_object_foreach(r->variables, k, v)
        {
            if (!json_is_string(v) || strlen(k) > 128 || json_string_length(v) > 4096)
                return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_VARIABLES",
                                 "Variable \"%.64s\" must be a string (names up to 128 bytes, "
                                 "values up to 4096).",
                                 k);
        }
    }
    struct dest *list = xcalloc(n, sizeof(*list));
    json_t *actions = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *a = json_array_get(dsts, i);
        if ((rc = check_address(a, "destinations", i, e)) < 0)
            break;
        const char *type = jstr(a, "type");
        if (strcmp(type, "sip") != 0) {
            rc = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                           "destinations[%zu] has type \"%.32s\"; this server dials \"sip\" "
                           "addresses only.",
                           i, type);
            break;
        }
        char why[160], shown[68];
        if (dest_uri(jstr(a, "target"), list[i].uri, sizeof(list[i].uri), why, sizeof(why)) < 0) {
            rc = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                           "destinations[%zu].target \"%s\" is not a SIP address this server "
                           "can dial: %s. Use e.g. \"sip:alice@192.0.2.10:5060\" (host an IPv4 "
                           "address or a DNS name, port 1-65535).",
                           i, printable(jstr(a, "target"), shown, sizeof(shown)), why);
            break;
        }
        list[i].address = address_copy(a);
    }
    if (rc == 0 && !has_flow && (rc = action_list_validate(r->actions, &actions, e)) < 0)
        actions = NULL;
    json_t *source = NULL;
    char from_uri[ADDRESS_TARGET_MAX + 80];
    if (rc == 0) {
        source = r->source && json_is_object(r->source)
                     ? address_copy(r->source)
                     : json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "sip", "target", "",
                                 "target_name", "", "name", "", "detail", "");
        const char *st = jstr(source, "target");
        char user[ADDRESS_TARGET_MAX + 1];
        char why[160];
        if (!strncmp(st, "sip:", 4) &&
            dest_uri(st, from_uri, sizeof(from_uri), why, sizeof(why)) == 0) {
            /* a full SIP address: used as it is */
        } else {
            size_t k = 0;
            for (const char *p = st; *p && k < sizeof(user) - 1; p++)
                if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= 'A' && *p <= 'Z') || strchr("+-_.", *p))
                    user[k++] = *p;
            user[k] = '\0';
            snprintf(from_uri, sizeof(from_uri), "sip:%s@%s", k ? user : "conferenced",
                     m->media_ip);
        }
    }
    if (rc == 0 && (!m->sip || !m->d.media))
        rc = error_set(e, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE",
                       "Outgoing calls are not available on this server.");
    if (rc == 0 && m->draining)
        rc = error_set(e, ERR_UNAVAILABLE, "SHUTTING_DOWN",
                       "The server is shutting down and places no new calls; try again later.");
    json_t *calls = json_array();
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *v = dial_one(m, customer_id, r, actions, source, from_uri, &list[i], e);
        if (!v) {
            if (i == 0)
                rc = -(int)e->status;
            break; /* the calls already dialled stand */
        }
        json_array_append_new(calls, v);
    }
    for (size_t i = 0; i < n; i++)
        json_decref(list[i].address);
    free(list);
    json_decref(actions);
    json_decref(source);
    if (rc < 0) {
        json_decref(calls);
        return rc;
    }
    *out = calls;
    return 0;
}

/* ---- lifecycle and API ---- */

struct call_mgr *call_mgr_create(const struct call_deps *deps)
{
    struct call_mgr *m = xcalloc(1, sizeof(*m));
    m->d = *deps;
    str_copy(m->media_ip, sizeof(m->media_ip), deps->media_ip ? deps->media_ip : "127.0.0.1");
    idmap_init(&m->live);
    idmap_init(&m->rooms);
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
    idmap_fini(&m->rooms);
    for (size_t i = 0; i < m->n_saved; i++)
        free(m->saved[i]);
    free(m->saved);
    free(m);
}

void call_mgr_set_conferences(struct call_mgr *m, struct conference_mgr *conferences)
{
    m->conferences = conferences;
}

void call_mgr_set_sip(struct call_mgr *m, struct sip_stack *sip)
{
    m->sip = sip;
}

void call_mgr_set_media(struct call_mgr *m, struct media_engine *media)
{
    m->d.media = media;
}

void call_mgr_set_flows(struct call_mgr *m, struct flow_mgr *flows, struct af_mgr *activeflows)
{
    m->flows = flows;
    m->afs = activeflows;
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
            hangup_live(m, lc, "normal");
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
        finish_call(m, lc, "local", lc->cancel_reason ? lc->cancel_reason : "normal");
    }
    free(ids);
}

/* Start-up: the participants of calls that did not survive the restart leave at once (with
 * their events), rather than after the health checks' 15 s. */
static void recover_participants(struct call_mgr *m)
{
    struct conferencecall *ccs = NULL;
    size_t n = 0;
    if (!m->conferences || store_conferencecall_list_active(m->d.store, NULL, &ccs, &n) != 0)
        return;
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        struct conferencecall *cc = &ccs[i];
        if (cc->reference_type != CC_REFERENCE_CALL || idmap_get(&m->live, cc->reference_id))
            continue;
        if (cc->status == CC_LEAVING)
            conference_on_leaved(m->conferences, cc->id); /* no bridge will ever confirm */
        else
            conference_leave(m->conferences, cc->id);
        left++;
    }
    free(ccs);
    if (left)
        log_info("msg=\"participants of the previous run left\" count=%zu", left);
}

int call_mgr_recover(struct call_mgr *m)
{
    struct call *list = NULL;
    size_t n = 0;
    if (store_call_list_live(m->d.store, &list, &n) != 0)
        return -1;
    int64_t now = tm_now_us();
    for (size_t i = 0; i < n; i++) {
        struct call *c = &list[i];
        if (c->dialog && c->dialog[0]) { /* answered: its peer still thinks it is up */
            m->saved = xrealloc(m->saved, (m->n_saved + 1) * sizeof(*m->saved));
            m->saved[m->n_saved++] = xstrdup(c->dialog);
            c->dialog[0] = '\0';
        }
        c->status = CALL_HANGUP;
        c->tm_hangup = c->tm_update = now;
        if (!c->hangup_reason[0])
            str_copy(c->hangup_reason, sizeof(c->hangup_reason), "failed");
        if (!c->hangup_by[0])
            str_copy(c->hangup_by, sizeof(c->hangup_by), "local");
        if (store_call_update(m->d.store, c) == 0)
            publish(m, "call_hangup", c);
    }
    if (n)
        log_info("msg=\"calls from the previous run ended\" count=%zu dialogs=%zu", n, m->n_saved);
    store_free_calls(list, n);
    recover_participants(m);
    return 0;
}

void call_mgr_end_saved_dialogs(struct call_mgr *m)
{
    for (size_t i = 0; i < m->n_saved; i++) {
        char err[160];
        if (!m->sip || sip_bye_saved(m->sip, m->saved[i], err, sizeof(err)) < 0)
            log_warn("msg=\"no BYE for a dialog of the previous run\" error=\"%s\"",
                     m->sip ? err : "no SIP stack");
        free(m->saved[i]);
    }
    free(m->saved);
    m->saved = NULL;
    m->n_saved = 0;
}

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
    hangup_live(m, lc, "normal");
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
            publish(m, "call_deleted", out);
    }
    return 0;
}

size_t call_mgr_live(const struct call_mgr *m)
{
    return m->live.len;
}

/* ---- for recordings ---- */

struct media_room *call_conference_room(struct call_mgr *m, const char *conference_id)
{
    return idmap_get(&m->rooms, conference_id);
}

struct media_leg *call_media_leg(struct call_mgr *m, const char *call_id)
{
    struct live_call *lc = idmap_get(&m->live, call_id);
    return lc && !lc->hanging_up ? lc->leg : NULL;
}

bool call_is_progressing(struct call_mgr *m, const char *call_id)
{
    struct live_call *lc = idmap_get(&m->live, call_id);
    return lc && lc->status == CALL_PROGRESSING && !lc->hanging_up && lc->leg;
}

int call_set_recording(struct call_mgr *m, const char *call_id, const char *recording_id)
{
    struct call c;
    if (store_call_get(m->d.store, NULL, call_id, &c) != 0)
        return -1;
    char *ids = NULL;
    if (!id_is_nil(recording_id)) {
        json_t *arr = c.recording_ids ? json_loads(c.recording_ids, 0, NULL) : NULL;
        if (!json_is_array(arr)) {
            json_decref(arr);
            arr = json_array();
        }
        json_array_append_new(arr, json_string(recording_id));
        ids = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
    }
    int64_t now = tm_now_us();
    int rc = store_call_set_recording(m->d.store, call_id, recording_id,
                                      ids ? ids : c.recording_ids, now);
    free(ids);
    call_fini(&c);
    if (rc != 0)
        return -1;
    if (store_call_get(m->d.store, NULL, call_id, &c) == 0) {
        publish(m, "call_updated", &c);
        call_fini(&c);
    }
    return 0;
}
