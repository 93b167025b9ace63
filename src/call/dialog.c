/* The SIP side's reports (struct sip_callbacks): incoming INVITEs routed to a flow, ACKs,
 * hang-ups, and the answers to our outgoing INVITEs. */
#include "call/internal.h"

#include <string.h>

#include "core/log.h"
#include "core/mem.h"

static struct live_call *dialog_call(struct call_mgr *m, const struct sip_dialog *d)
{
    return m->sip.data(m->sip.ctx, d);
}

static void reject(struct call_mgr *m, struct sip_dialog *d, int code, const char *reason)
{
    m->sip.reject(m->sip.ctx, d, code, reason);
}

/* ---- incoming calls ---- */

/* An INVITE: routed (struct call_router), its offer read, a media leg and the flow run created,
 * the record stored; then its flow runs (it answers) while the call rings, for at most
 * ring_timeout_ms. Anything missing refuses the call with a SIP code. */
static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct call_mgr *m = ctx;
    const char *user = inv->request_user ? inv->request_user : "";
    if (m->draining) {
        log_info("msg=\"incoming call refused\" reason=shutting_down sip_call_id=%s", inv->call_id);
        reject(m, d, 503, "Shutting Down");
        return;
    }
    struct route rt;
    memset(&rt, 0, sizeof(rt));
    rt.type = "flow";
    int code = m->d.router.route ? m->d.router.route(m->d.router.ctx, user, &rt) : 404;
    if (code) {
        json_decref(rt.actions);
        log_info("msg=\"incoming call refused\" user=\"%.64s\" code=%d sip_call_id=%s", user, code,
                 inv->call_id);
        reject(m, d, code, NULL);
        return;
    }
    json_t *actions = rt.actions;
    struct sdp_offer_result offer;
    if (!inv->sdp || sdp_parse_offer(inv->sdp, &offer) < 0) {
        json_decref(actions);
        reject(m, d, 488, "Not Acceptable Here");
        return;
    }
    struct call c;
    call_record_init(&c, rt.customer_id, rt.type);
    char err[128];
    struct media_leg *leg = media_leg_create(m->d.media, c.id, err, sizeof(err));
    if (!leg) {
        log_warn("msg=\"no media port\" sip_call_id=%s error=\"%s\"", inv->call_id, err);
        goto fail_503;
    }
    memcpy(c.flow_id, rt.flow_id, ID_LEN + 1);
    c.source = call_address_text("sip", inv->from_uri, inv->from_display);
    c.destination = call_address_text("sip", inv->request_uri, NULL);
    c.status = CALL_RINGING;
    c.direction = CALL_INCOMING;
    c.tm_ringing = c.tm_create;
    struct af_call_info info = {.call_id = c.id,
                                .source_target = inv->from_uri,
                                .source_name = inv->from_display,
                                .destination_target = user,
                                .direction = "incoming"};
    struct error e;
    if (call_flow_create(m, rt.customer_id, rt.flow_id, actions, &info, NULL, c.activeflow_id, &e) <
        0) {
        media_leg_destroy(m->d.media, leg);
        if (e.status == ERR_INVALID_ARGUMENT) { /* the number's flow is gone */
            log_info("msg=\"incoming call refused\" user=\"%.64s\" code=404 reason=%s", user,
                     e.reason);
            json_decref(actions);
            call_fini(&c);
            reject(m, d, 404, NULL);
            return;
        }
        goto fail_503;
    }
    json_decref(actions);
    actions = NULL;
    if (store_call_insert(m->d.store, &c) != 0) {
        media_leg_destroy(m->d.media, leg);
        call_report_ended(m, c.id, c.activeflow_id);
        call_fini(&c);
        reject(m, d, 500, NULL);
        return;
    }
    struct live_call *lc = call_live_new(m, &c, d, leg);
    lc->offer = offer;
    call_arm_ring_timer(m, lc); /* until its flow answers */
    log_info("msg=\"call created\" call_id=%s sip_call_id=%s user=\"%.64s\" activeflow_id=%s "
             "port=%d",
             c.id, inv->call_id, user, c.activeflow_id, media_leg_port(leg));
    call_publish(m, "call_created", &c);
    call_fini(&c);
    /* The media starts with the ACK (on_established): until the caller has proved it exists,
     * nothing is sent to the address its offer names (a spoofed INVITE must not turn us into a
     * reflector). */
    str_copy(lc->signal_ip, sizeof(lc->signal_ip), inv->source_ip);
    call_report_ready(m, lc->id, lc->activeflow_id);
    return;
fail_503:
    json_decref(actions);
    call_fini(&c);
    reject(m, d, 503, "Service Unavailable");
}

/* The call counts as up from our 200; the ACK only tells that the caller is there. */
static void on_established(void *ctx, struct sip_dialog *d)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = dialog_call(m, d);
    if (!lc || lc->acked)
        return;
    lc->acked = true;
    if (lc->leg && lc->direction == CALL_INCOMING)
        media_leg_set_remote(m->d.media, lc->leg, lc->offer.remote_ip, lc->offer.remote_port,
                             lc->offer.codec, lc->offer.audio_pt, lc->offer.dtmf_pt,
                             lc->signal_ip);
}

static void on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = dialog_call(m, d);
    if (!lc)
        return;
    lc->dialog = NULL;
    /* Our 2xx never acknowledged: the call failed to set up, whatever came first. */
    const char *reason = cancelled ? "cancel" : m->sip.unacked(m->sip.ctx, d) ? "failed" : "normal";
    call_finish(m, lc, remote ? "remote" : "local", reason);
}

/* ---- outgoing calls ---- */

static void on_progress(void *ctx, struct sip_dialog *d, int code)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = dialog_call(m, d);
    (void)code;
    if (lc && lc->status == CALL_DIALING)
        call_set_status(m, lc, CALL_RINGING, NULL, NULL);
}

static void on_answered(void *ctx, struct sip_dialog *d, const char *sdp)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = dialog_call(m, d);
    if (!lc)
        return;
    call_cancel_ring_timer(m, lc);
    lc->answered = lc->acked = true; /* we have sent the ACK */
    if (lc->hanging_up) {            /* our CANCEL crossed the 200 */
        lc->hanging_up = false;
        call_hangup_live(m, lc, lc->cancel_reason ? lc->cancel_reason : "cancel");
        return;
    }
    struct sdp_offer_result ans;
    if (!sdp || sdp_parse_answer(sdp, &ans) < 0) {
        log_warn("msg=\"unusable SDP answer\" call_id=%s", lc->id);
        call_hangup_live(m, lc, "failed");
        return;
    }
    media_leg_set_remote(m->d.media, lc->leg, ans.remote_ip, ans.remote_port,
                         ans.codec, ans.audio_pt, ans.dtmf_pt,
                         m->sip.peer_ip(m->sip.ctx, d));
    media_leg_arm_timeout(m->d.media, lc->leg); /* no RTP timeout while ringing */
    call_set_answered(m, lc);
    call_report_ready(m, lc->id, lc->activeflow_id); /* outgoing calls start their flow now */
}

static void on_failed(void *ctx, struct sip_dialog *d, int code)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = dialog_call(m, d);
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
    call_finish(m, lc, by, reason);
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
