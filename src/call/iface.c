/* What the other modules ask of calls: the conferences (is the call up, its participant left),
 * the flows (answer, play, hang up, show the action) and the bridge (the call's media leg, and
 * the leg events that are the call's). */
#include "call/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

/* ---- conferences ---- */

static bool calls_is_progressing(void *ctx, enum cc_reference_type t, const char *id)
{
    struct live_call *lc = call_live(ctx, id);
    return t == CC_REFERENCE_CALL && lc && lc->status == CALL_PROGRESSING && !lc->hanging_up;
}

static void calls_left(void *ctx, const struct conferencecall *cc, const struct conference *c)
{
    struct call_mgr *m = ctx;
    if (m->d.listener.on_conference_left) /* the flow goes on */
        m->d.listener.on_conference_left(m->d.listener.ctx, cc, c);
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
    struct live_call *lc = call_live(m, call_id);
    if (!lc || lc->hanging_up)
        return -1;
    if (lc->answered || lc->direction == CALL_OUTGOING)
        return 0;
    char sdp[4096];
    uint64_t session = (uint64_t)tm_now_us();
    struct sdp_secure_local sec = {lc->secure.ice_ufrag, lc->secure.ice_pwd,
                                   lc->secure.fingerprint, lc->secure.ssrc};
    if ((!lc->dialog && !lc->whip) ||
        sdp_build_answer_secure(&lc->offer, m->media_ip, media_leg_port(lc->leg), session,
                                session, lc->offer.secure ? &sec : NULL, sdp, sizeof(sdp)) < 0)
        return -1;
    if (lc->whip) { /* the POST's 201; there is no ACK: the media starts now */
        call_whip_reply(lc, 201, sdp, NULL);
        lc->acked = true;
        media_leg_set_remote(m->d.media, lc->leg, lc->offer.remote_ip, lc->offer.remote_port,
                             lc->offer.codec, lc->offer.audio_pt, lc->offer.dtmf_pt, NULL);
    } else if (m->sip.answer(m->sip.ctx, lc->dialog, sdp) < 0) {
        return -1;
    }
    lc->answered = true;
    call_cancel_ring_timer(m, lc);
    media_leg_arm_timeout(m->d.media, lc->leg); /* no RTP timeout while ringing */
    call_set_answered(m, lc);
    return 0;
}

static int op_play(void *ctx, const char *call_id, struct media_clip *clip, uint32_t play_id)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = call_live(m, call_id);
    if (!lc || !lc->leg || lc->hanging_up || !lc->answered)
        return -1;
    media_leg_play(m->d.media, lc->leg, clip, play_id);
    return 0;
}

static void op_play_stop(void *ctx, const char *call_id)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = call_live(m, call_id);
    if (lc && lc->leg)
        media_leg_play_stop(m->d.media, lc->leg);
}

static void op_hangup(void *ctx, const char *call_id, const char *reason)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = call_live(m, call_id);
    if (lc)
        call_hangup_live(m, lc, reason);
}

/* The call's action is the one its flow runs now: id, type and option as the flow has them. */
static void op_action(void *ctx, const char *call_id, const json_t *action)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = call_live(m, call_id);
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
        call_publish(m, "call_updated", &c);
    call_fini(&c);
}

struct flow_call_ops call_flow_ops(struct call_mgr *m)
{
    struct flow_call_ops ops = {m, op_answer, op_play, op_play_stop, op_hangup, op_action};
    return ops;
}

/* ---- the bridge: legs and their events ---- */

static struct media_leg *legs_leg(void *ctx, const char *call_id)
{
    struct live_call *lc = call_live(ctx, call_id);
    return lc ? lc->leg : NULL;
}

static bool legs_joinable(void *ctx, const char *call_id)
{
    struct live_call *lc = call_live(ctx, call_id);
    return lc && lc->leg && !lc->hanging_up;
}

static struct live_call *live_by_leg(struct call_mgr *m, struct media_leg *leg)
{
    struct live_call *lc = call_live(m, media_leg_key(leg));
    return lc && lc->leg == leg ? lc : NULL;
}

/* Key presses are published (call_dtmf_received) and reported; an RTP timeout hangs the call
 * up; a clip's end is reported. The reports copy the ids: the flow may end the call. */
static void legs_on_event(void *ctx, const struct media_event *ev)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = live_by_leg(m, ev->leg);
    if (!lc)
        return;
    id_t_ call_id, af_id;
    memcpy(call_id, lc->id, sizeof(call_id));
    memcpy(af_id, lc->activeflow_id, sizeof(af_id));
    struct call_listener *l = &m->d.listener;
    switch (ev->type) {
    case MEDIA_LEG_DTMF: {
        log_info("msg=dtmf call_id=%s digit=%c", lc->id, ev->digit);
        char digit[2] = {ev->digit, 0};
        events_publish(m->d.bus, "call_dtmf_received", lc->customer_id, lc->id,
                       json_pack("{s:s,s:s}", "call_id", lc->id, "digit", digit));
        if (l->on_dtmf)
            l->on_dtmf(l->ctx, call_id, af_id, ev->digit);
        break;
    }
    case MEDIA_LEG_TIMEOUT:
        /* An answer never acknowledged: the SIP side ends it at 64*T1 as failed. */
        if (!lc->acked)
            break;
        log_info("msg=\"rtp timeout\" call_id=%s", lc->id);
        call_hangup_live(m, lc, "timeout");
        break;
    case MEDIA_LEG_SECURE_FAILED:
        log_info("msg=\"WebRTC media failed\" call_id=%s", lc->id);
        call_hangup_live(m, lc, "failed");
        break;
    case MEDIA_LEG_SECURE_CLOSED: /* the peer is gone: a WHIP page closed without its DELETE */
        if (lc->whip && lc->answered)
            call_finish(m, lc, "remote", "normal");
        else
            call_hangup_live(m, lc, "normal");
        break;
    case MEDIA_LEG_PLAY_DONE:
        if (l->on_play_done)
            l->on_play_done(l->ctx, call_id, af_id, ev->play_id, ev->stopped);
        break;
    case MEDIA_LEG_JOINED:
    case MEDIA_LEG_LEFT:
        break; /* the bridge's */
    }
}

struct bridge_legs call_bridge_legs(struct call_mgr *m)
{
    struct bridge_legs l = {m, legs_leg, legs_joinable, legs_on_event};
    return l;
}
