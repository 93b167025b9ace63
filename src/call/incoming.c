/* An incoming call, however it came (a SIP INVITE, a WHIP offer): routed (struct call_router),
 * its offer read, a media leg (a WebRTC one for a WebRTC offer) and the flow run created, the
 * record stored; then its flow runs (it answers) while the call rings, for at most
 * ring_timeout_ms. */
#include "call/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

/* The offer's WebRTC side on the leg: our ICE and DTLS parameters for the answer in *out. */
static int make_secure(struct call_mgr *m, struct media_leg *leg,
                       const struct sdp_offer_result *offer, struct media_secure_local *out,
                       char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!offer->secure)
        return 0;
    struct media_secure_offer so = {.ice_ufrag = offer->ice_ufrag,
                                    .fingerprint = offer->fingerprint,
                                    .dtls_client = offer->setup == SDP_SETUP_PASSIVE,
                                    .ssrc = offer->ssrc};
    return media_leg_secure(m->d.media, leg, &so, out, err, errlen);
}

struct live_call *call_incoming_start(struct call_mgr *m, const struct call_incoming *in,
                                      struct sip_dialog *d, int *code, const char **reason)
{
    *reason = NULL;
    if (m->draining) {
        log_info("msg=\"incoming call refused\" reason=shutting_down what=%s", in->what);
        *code = 503;
        *reason = "Shutting Down";
        return NULL;
    }
    struct route rt;
    memset(&rt, 0, sizeof(rt));
    rt.type = "flow";
    *code = m->d.router.route ? m->d.router.route(m->d.router.ctx, in->user, &rt) : 404;
    if (!*code && in->customer_id && strcmp(in->customer_id, rt.customer_id) != 0)
        *code = 404; /* another customer's: as if it did not exist */
    if (*code) {
        json_decref(rt.actions);
        log_info("msg=\"incoming call refused\" user=\"%.64s\" code=%d what=%s", in->user, *code,
                 in->what);
        return NULL;
    }
    json_t *actions = rt.actions;
    struct sdp_offer_result offer;
    if (!in->sdp || sdp_parse_offer(in->sdp, &offer) < 0 || (in->webrtc_only && !offer.secure)) {
        json_decref(actions);
        *code = 488;
        *reason = "Not Acceptable Here";
        return NULL;
    }
    struct call c;
    call_record_init(&c, rt.customer_id, rt.type);
    char err[160];
    struct media_secure_local secure;
    struct media_leg *leg = media_leg_create(m->d.media, c.id, err, sizeof(err));
    if (!leg) {
        log_warn("msg=\"no media port\" what=%s error=\"%s\"", in->what, err);
        goto fail_503;
    }
    if (make_secure(m, leg, &offer, &secure, err, sizeof(err)) < 0) {
        log_info("msg=\"incoming call refused\" code=488 what=%s error=\"%s\"", in->what, err);
        media_leg_destroy(m->d.media, leg);
        json_decref(actions);
        call_fini(&c);
        *code = 488;
        *reason = "Not Acceptable Here";
        return NULL;
    }
    memcpy(c.flow_id, rt.flow_id, ID_LEN + 1);
    c.source = xstrdup(in->source);
    c.destination = xstrdup(in->destination);
    c.status = CALL_RINGING;
    c.direction = CALL_INCOMING;
    c.tm_ringing = c.tm_create;
    struct af_call_info info = {.call_id = c.id,
                                .source_target = in->from_uri,
                                .source_name = in->from_display,
                                .destination_target = in->user,
                                .direction = "incoming"};
    struct error e;
    if (call_flow_create(m, rt.customer_id, rt.flow_id, actions, &info, NULL, c.activeflow_id, &e) <
        0) {
        media_leg_destroy(m->d.media, leg);
        if (e.status == ERR_INVALID_ARGUMENT) { /* the number's flow is gone */
            log_info("msg=\"incoming call refused\" user=\"%.64s\" code=404 reason=%s", in->user,
                     e.reason);
            json_decref(actions);
            call_fini(&c);
            *code = 404;
            return NULL;
        }
        goto fail_503;
    }
    json_decref(actions);
    actions = NULL;
    if (store_call_insert(m->d.store, &c) != 0) {
        media_leg_destroy(m->d.media, leg);
        call_report_ended(m, c.id, c.activeflow_id);
        call_fini(&c);
        *code = 500;
        return NULL;
    }
    struct live_call *lc = call_live_new(m, &c, d, leg);
    lc->offer = offer;
    lc->secure = secure;
    call_arm_ring_timer(m, lc); /* until its flow answers */
    log_info("msg=\"call created\" call_id=%s what=%s user=\"%.64s\" activeflow_id=%s port=%d "
             "webrtc=%s",
             c.id, in->what, in->user, c.activeflow_id, media_leg_port(leg),
             offer.secure ? "yes" : "no");
    call_publish(m, "call_created", &c);
    call_fini(&c);
    /* The media starts with the ACK (on_established): until the caller has proved it exists,
     * nothing is sent to the address its offer names (a spoofed INVITE must not turn us into a
     * reflector). */
    str_copy(lc->signal_ip, sizeof(lc->signal_ip), in->signal_ip ? in->signal_ip : "");
    return lc;
fail_503:
    json_decref(actions);
    call_fini(&c);
    *code = 503;
    *reason = "Service Unavailable";
    return NULL;
}
