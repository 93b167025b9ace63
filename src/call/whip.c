/* WHIP sessions (RFC 9725) as calls: the offer is an incoming call without a SIP dialog. The POST
 * waits for its flow to answer (op_answer replies 201 with our answer) or to end it first (a
 * refusal); DELETE of the session's resource is the remote side's hang-up. */
#include "call/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

void call_whip_reply(struct live_call *lc, int status, const char *sdp, const char *message)
{
    call_whip_done_cb done = lc->whip_done;
    if (!done)
        return;
    lc->whip_done = NULL;
    done(lc->whip_arg, status, lc->id, sdp, message);
}

/* SIP-style refusal codes of call_incoming_start as HTTP ones. */
static void refuse(call_whip_done_cb done, void *arg, int code, const char *reason)
{
    switch (code) {
    case 404:
        done(arg, 404, NULL, NULL, "No such conference.");
        break;
    case 488:
        done(arg, 400, NULL, NULL,
             "The offer has no audio stream this server can run: WHIP takes WebRTC audio "
             "(UDP/TLS/RTP/SAVPF with ICE credentials, a DTLS fingerprint and rtcp-mux) in Opus, "
             "G.722, PCMU or PCMA.");
        break;
    case 503:
        done(arg, 503, NULL, NULL,
             reason && !strcmp(reason, "Shutting Down") ? "The server is shutting down."
                                                        : "No media port is free.");
        break;
    case 403:
        done(arg, 403, NULL, NULL, "The conference takes no calls now: it is not progressing.");
        break;
    case 486:
        done(arg, 403, NULL, NULL, "The conference is full: a connect conference has its two.");
        break;
    default:
        done(arg, 500, NULL, NULL, "The call could not be created.");
        break;
    }
}

void call_whip_offer(struct call_mgr *m, const char *customer_id, const char *conference_id,
                     const char *direct_hash, const char *sdp, const char *client_ip,
                     call_whip_done_cb done, void *arg)
{
    char *src = call_address_text("web_session", client_ip ? client_ip : "", NULL);
    char *dst = call_address_text("conference", conference_id, NULL);
    struct call_incoming in = {.user = direct_hash,
                               .customer_id = customer_id,
                               .sdp = sdp,
                               .source = src,
                               .destination = dst,
                               .from_uri = client_ip ? client_ip : "",
                               .what = "whip",
                               .webrtc_only = true}; /* no ACK proves a plain RTP address */
    int code = 0;
    const char *reason = NULL;
    struct live_call *lc = call_incoming_start(m, &in, NULL, &code, &reason);
    free(src);
    free(dst);
    if (!lc) {
        refuse(done, arg, code, reason);
        return;
    }
    lc->whip = true;
    lc->whip_done = done;
    lc->whip_arg = arg;
    call_report_ready(m, lc->id, lc->activeflow_id); /* its flow starts (and may answer) */
}

int call_whip_end(struct call_mgr *m, const char *customer_id, const char *call_id)
{
    struct live_call *lc = call_live(m, call_id);
    if (!lc || !lc->whip || strcmp(lc->customer_id, customer_id) != 0)
        return -1;
    call_whip_reply(lc, 403, NULL, "The session was deleted before it was answered.");
    call_finish(m, lc, "remote", "normal");
    return 0;
}
