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

/* An INVITE: a new incoming call (call_incoming_start), refused with a SIP code when it
 * cannot be one. */
static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct call_mgr *m = ctx;
    char *source = call_address_text("sip", inv->from_uri, inv->from_display);
    char *destination = call_address_text("sip", inv->request_uri, NULL);
    struct call_incoming in = {.user = inv->request_user ? inv->request_user : "",
                               .sdp = inv->sdp,
                               .source = source,
                               .destination = destination,
                               .signal_ip = inv->source_ip,
                               .from_uri = inv->from_uri,
                               .from_display = inv->from_display,
                               .what = inv->call_id};
    const char *reason = NULL;
    int code = 0;
    struct live_call *lc = call_incoming_start(m, &in, d, &code, &reason);
    free(source);
    free(destination);
    if (!lc) {
        reject(m, d, code, reason);
        return;
    }
    call_report_ready(m, lc->id, lc->activeflow_id); /* its flow starts (and may answer) */
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
