/* The server side (UAS): new requests from any transport — INVITE (a new dialog, reported to the
 * application), re-INVITE, ACK, BYE, CANCEL, OPTIONS and the methods we refuse — the
 * application's answers to an INVITE, our 2xx retransmissions until the ACK (RFC 3261 13.3.1.4),
 * and the count of incoming calls in set-up per source address.
 *
 * Incoming calls count against their source address from the INVITE until the ACK of our 2xx
 * (or their end): an address that answers nothing cannot hold more than max_setup_per_source
 * calls (and their media ports) for the 64*T1 the 2xx is retransmitted. */
#include "sip/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

/* ---- incoming calls in set-up, per source address ---- */

static struct src_count **src_slot(struct sip_stack *s, uint32_t ip)
{
    struct src_count **pp = &s->src[(uint32_t)(ip * 2654435761u) >> 24];
    while (*pp && (*pp)->ip != ip)
        pp = &(*pp)->next;
    return pp;
}

static size_t setup_count(struct sip_stack *s, uint32_t ip)
{
    struct src_count *c = *src_slot(s, ip);
    return c ? c->n : 0;
}

static void setup_enter(struct sip_dialog *d, uint32_t ip)
{
    struct src_count **pp = src_slot(d->s, ip);
    if (!*pp) {
        *pp = xcalloc(1, sizeof(**pp));
        (*pp)->ip = ip;
    }
    (*pp)->n++;
    d->in_setup = true;
    d->setup_ip = ip;
}

void sip_uas_setup_leave(struct sip_dialog *d)
{
    if (!d->in_setup)
        return;
    d->in_setup = false;
    struct src_count **pp = src_slot(d->s, d->setup_ip);
    struct src_count *c = *pp;
    if (c && --c->n == 0) {
        *pp = c->next;
        free(c);
    }
}

/* One log line per refused source, at most SIP_LOG_BURST per SIP_LOG_WINDOW_MS; the next line
 * that gets out says how many were left out. */
static void log_setup_refused(struct sip_stack *s, const char *src, int port, const char *cid)
{
    uint64_t before;
    if (!log_limit_allow(&s->setup_log, (int64_t)sip_now_ms() * 1000, SIP_LOG_WINDOW_MS * 1000,
                         SIP_LOG_BURST, &before))
        return;
    char lid[72];
    log_warn("msg=sip_invite_refused reason=max_setup_per_source src=%s:%d limit=%zu call_id=%s "
             "suppressed=%llu",
             src, port, s->max_setup, sip_logsafe(cid, lid, sizeof(lid)),
             (unsigned long long)before);
}

/* ---- our 2xx retransmissions ---- */

/* On a reliable transport nothing is retransmitted (the transport does not lose it), but the
 * ACK is still awaited for 64*T1. */
static void rtx_start(struct sip_dialog *d)
{
    if (!d->rtx)
        d->s->n_rtx++;
    d->rtx = true;
    d->rtx_iv = d->s->t1;
    uint64_t now = sip_now_ms();
    d->rtx_next = d->peer.tp && d->peer.tp->reliable ? UINT64_MAX : now + d->rtx_iv;
    d->rtx_end = now + 64 * (uint64_t)d->s->t1;
}

void sip_uas_rtx_stop(struct sip_dialog *d)
{
    if (d->rtx)
        d->s->n_rtx--;
    d->rtx = false;
}

/* RFC 3261 13.3.1.4: the UAS core (not the transaction) retransmits its 2xx, T1 doubling up to
 * T2, until the ACK; after 64*T1 without one it ends the dialog with a BYE. */
void sip_uas_run_rtx(struct sip_stack *s)
{
    if (!s->n_rtx)
        return;
    uint64_t now = sip_now_ms();
    for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
        if (!d->rtx)
            continue;
        if (now >= d->rtx_end) {
            sip_uas_rtx_stop(d);
            d->unacked = true;
            log_info("msg=sip_ack_timeout call_id=%s", d->log_id);
            bool ours = d->bye_pending;
            osip_message_t *bye = sip_dlg_make_bye(d);
            osip_transaction_t *tr = sip_tx_new(s, NICT, bye, &d->peer, NULL);
            if (tr) {
                sip_tx_send(s, tr, bye);
            } else {
                sip_tp_send_msg(s, bye, &d->peer);
                osip_message_free(bye);
            }
            sip_dlg_end(d, !ours, false, "ack_timeout");
        } else if (now >= d->rtx_next) {
            sip_tp_send_msg(s, d->ok, &d->peer);
            d->rtx_iv = d->rtx_iv * 2 > s->t2 ? s->t2 : d->rtx_iv * 2;
            d->rtx_next = now + d->rtx_iv;
        }
    }
}

/* ---- requests ---- */

static struct sip_dialog *dialog_new(struct sip_stack *s, osip_message_t *inv, const char *call_id,
                                     const char *remote_tag, uint32_t cseq,
                                     const struct sip_peer *from)
{
    osip_message_t *copy = NULL;
    if (osip_message_clone(inv, &copy) != 0 || !copy)
        return NULL;
    char tag[17];
    sip_random_hex(tag, 8);
    struct sip_dialog *d = sip_dlg_add(s, copy, call_id, tag, remote_tag);
    d->state = DLG_EARLY;
    d->invite_cseq = d->remote_cseq = cseq;
    sip_dlg_set_peer(d, from);
    if (from->conn) { /* our end of the connection */
        str_copy(d->local_host, sizeof(d->local_host), from->conn->local_host);
        d->local_port = from->conn->local_port;
        return d;
    }
    /* Bound to every interface, we know our address only from how the caller reached us. */
    const char *host = s->addr;
    if (strcmp(s->addr, "0.0.0.0") == 0 && inv->req_uri && sip_is_ipv4(inv->req_uri->host))
        host = inv->req_uri->host;
    str_copy(d->local_host, sizeof(d->local_host), host);
    d->local_port = s->port;
    return d;
}

static void handle_reinvite(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                            const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    const char *rtag = sip_tag_of(m->from);
    struct sip_dialog *d = sip_dlg_find(s, cid, sip_tag_of(m->to), rtag ? rtag : "");
    if (!d) {
        sip_tx_reply(s, evt, from, 481, NULL);
        return;
    }
    if (d->ok && cseq == d->ok_cseq) { /* retransmission after our 2xx ended its transaction */
        sip_tp_send_msg(s, d->ok, &d->peer);
        osip_event_free(evt);
        return;
    }
    if (cseq <= d->remote_cseq) {
        sip_tx_reply(s, evt, from, 500, d->local_tag);
        return;
    }
    d->remote_cseq = cseq;
    if (d->state != DLG_CONFIRMED) {
        sip_tx_reply(s, evt, from, 491, d->local_tag);
        return;
    }
    int bad;
    const char *offer = sip_sdp_body(m, &bad);
    if (bad) {
        sip_tx_reply(s, evt, from, bad, d->local_tag);
        return;
    }
    /* A new offer gets our previous answer again (same codec, address and port; the direction
     * follows the offer, e.g. hold); an INVITE without offer gets it as our offer. */
    char answer[4096];
    if (offer && sdp_build_reanswer(offer, d->answer_sdp, answer, sizeof(answer)) < 0) {
        log_info("msg=sip_reinvite_refused call_id=%s", d->log_id);
        sip_tx_reply(s, evt, from, 488, d->local_tag);
        return;
    }
    if (offer) {
        free(d->answer_sdp);
        d->answer_sdp = xstrdup(answer);
    }
    osip_message_t *r = sip_msg_dialog_response(d, m, 200, NULL);
    sip_msg_set_sdp(r, d->answer_sdp);
    osip_message_free(d->ok);
    d->ok = NULL;
    osip_message_clone(r, &d->ok);
    d->ok_cseq = cseq;
    sip_peer_set(&d->peer, from); /* the peer's requests now come from there */
    if (d->ok)
        rtx_start(d);
    log_info("msg=sip_reinvite_answered call_id=%s", d->log_id);
    sip_tx_reply_new(s, evt, from, r);
}

static void handle_invite(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                          const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    if (sip_tag_of(m->to)) {
        handle_reinvite(s, evt, from, cid, cseq);
        return;
    }
    const char *rtag = sip_tag_of(m->from) ? sip_tag_of(m->from) : "";
    struct sip_dialog *old = sip_dlg_find_by_invite(s, cid, rtag, cseq);
    if (old) {
        /* A retransmission that outlived the INVITE transaction (it ends with our 2xx). */
        if (old->ok && old->ok_cseq == cseq)
            sip_tp_send_msg(s, old->ok, &old->peer);
        osip_event_free(evt);
        return;
    }
    const char *scheme = m->req_uri->scheme;
    if (!scheme || (strcasecmp(scheme, "sip") != 0 && strcasecmp(scheme, "sips") != 0)) {
        sip_tx_reply(s, evt, from, 416, NULL);
        return;
    }
    osip_header_t *require = NULL;
    if (osip_message_header_get_byname(m, "require", 0, &require) >= 0 && require) {
        osip_message_t *r = sip_msg_response(s, m, 420, NULL, NULL);
        if (require->hvalue && strlen(require->hvalue) < SIP_MAX_TOKEN)
            osip_message_set_header(r, "Unsupported", require->hvalue);
        sip_tx_reply_new(s, evt, from, r);
        return;
    }
    int bad;
    sip_sdp_body(m, &bad);
    if (bad) {
        sip_tx_reply(s, evt, from, bad, NULL);
        return;
    }
    char src[INET_ADDRSTRLEN], lid[72];
    uv_ip4_name(&from->addr, src, sizeof(src));
    int src_port = ntohs(from->addr.sin_port);
    if (s->n_dialogs >= s->max_dialogs) {
        log_warn("msg=sip_invite_refused reason=max_dialogs call_id=%s src=%s:%d",
                 sip_logsafe(cid, lid, sizeof(lid)), src, src_port);
        sip_tx_reply(s, evt, from, 503, NULL);
        return;
    }
    uint32_t ip = from->addr.sin_addr.s_addr;
    if (s->max_setup && setup_count(s, ip) >= s->max_setup) {
        log_setup_refused(s, src, src_port, cid);
        osip_message_t *r = sip_msg_response(s, m, 503, NULL, NULL);
        osip_message_set_header(r, "Retry-After", SIP_SETUP_RETRY_AFTER);
        sip_tx_reply_new(s, evt, from, r);
        return;
    }
    struct sip_dialog *d = dialog_new(s, m, cid, rtag, cseq, from);
    osip_transaction_t *tr = d ? sip_tx_new(s, IST, m, from, d) : NULL;
    if (!tr) {
        if (d)
            sip_dlg_free(d);
        sip_tx_reply_stateless(s, m, from, 500);
        osip_event_free(evt);
        return;
    }
    d->ist = tr;
    setup_enter(d, ip);
    char user[64], fromuri[128];
    char *furi = NULL;
    if (m->from->url)
        osip_uri_to_str(m->from->url, &furi);
    log_info("msg=sip_invite call_id=%s user=%s from=%s src=%s:%d%s%s", d->log_id,
             sip_logsafe(m->req_uri->username, user, sizeof(user)),
             sip_logsafe(furi, fromuri, sizeof(fromuri)), d->peer_ip, d->peer_port,
             from->conn ? " transport=" : "", from->conn ? from->tp->name : "");
    osip_free(furi);
    sip_tx_add_event(s, tr, evt);
    sip_tx_send(s, tr, sip_msg_response(s, m, 100, NULL, NULL));
    sip_dlg_note(s, NOTE_INVITE, d, false, false);
}

static void handle_ack(struct sip_stack *s, osip_message_t *m, const char *cid, uint32_t cseq)
{
    const char *ltag = sip_tag_of(m->to), *rtag = sip_tag_of(m->from);
    struct sip_dialog *d = ltag ? sip_dlg_find(s, cid, ltag, rtag ? rtag : "") : NULL;
    if (!d || !d->rtx || cseq != d->ok_cseq)
        return; /* an ACK for nothing we wait for: dropped (RFC 3261 17.2.3) */
    sip_uas_rtx_stop(d);
    if (d->state != DLG_ANSWERED)
        return; /* the ACK of a re-INVITE */
    sip_uas_setup_leave(d);
    if (d->bye_pending) {
        sip_dlg_start_bye(d);
        return;
    }
    d->state = DLG_CONFIRMED;
    log_info("msg=sip_established call_id=%s", d->log_id);
    sip_dlg_note(s, NOTE_ESTABLISHED, d, false, false);
}

static void handle_bye(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                       const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    const char *ltag = sip_tag_of(m->to), *rtag = sip_tag_of(m->from);
    struct sip_dialog *d = ltag ? sip_dlg_find(s, cid, ltag, rtag ? rtag : "") : NULL;
    if (!d) {
        sip_tx_reply(s, evt, from, 481, NULL);
        return;
    }
    if (cseq < d->remote_cseq) {
        sip_tx_reply(s, evt, from, 500, d->local_tag);
        return;
    }
    d->remote_cseq = cseq;
    sip_tx_reply(s, evt, from, 200, d->local_tag);
    switch (d->state) {
    case DLG_EARLY: /* BYE in the early dialog: like CANCEL (RFC 3261 15.1.2) */
        if (d->ist)
            sip_tx_send(s, d->ist, sip_msg_dialog_response(d, d->invite, 487, NULL));
        sip_dlg_end(d, true, true, "remote_bye_early");
        break;
    case DLG_BYE_SENT: /* both hung up at once: ours is the hang-up the application asked for */
        sip_dlg_end(d, false, false, "bye_glare");
        break;
    default:
        sip_dlg_end(d, true, false, "remote_bye");
        break;
    }
}

static void handle_cancel(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                          const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    const char *rtag = sip_tag_of(m->from);
    struct sip_dialog *d = sip_dlg_find_by_invite(s, cid, rtag ? rtag : "", cseq);
    if (!d) {
        sip_tx_reply(s, evt, from, 481, NULL);
        return;
    }
    sip_tx_reply(s, evt, from, 200, d->local_tag);
    /* After our final answer a CANCEL changes nothing (RFC 3261 9.2). */
    if (d->state == DLG_EARLY && d->ist) {
        sip_tx_send(s, d->ist, sip_msg_dialog_response(d, d->invite, 487, NULL));
        sip_dlg_end(d, true, true, "cancel");
    }
}

static bool method_known(const char *m)
{
    static const char *const known[] = {"REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE",
                                        "REFER",    "INFO",      "UPDATE", "PRACK"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(m, known[i]) == 0)
            return true;
    return false;
}

void sip_uas_request(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                     const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    if (MSG_IS_ACK(m)) {
        handle_ack(s, m, cid, cseq);
        osip_event_free(evt);
        return;
    }
    /* Under a flood every transaction costs memory for 32 s: past the limit, answer without. */
    if (s->n_tx >= s->max_tx) {
        sip_tx_reply_stateless(s, m, from, 503);
        osip_event_free(evt);
        return;
    }
    if (MSG_IS_INVITE(m))
        handle_invite(s, evt, from, cid, cseq);
    else if (MSG_IS_BYE(m))
        handle_bye(s, evt, from, cid, cseq);
    else if (MSG_IS_CANCEL(m))
        handle_cancel(s, evt, from, cid, cseq);
    else if (MSG_IS_OPTIONS(m))
        sip_tx_reply(s, evt, from, 200, NULL);
    else
        sip_tx_reply(s, evt, from, method_known(m->sip_method) ? 405 : 501, NULL);
}

/* ---- the application ---- */

void sip_uas_deliver_invite(struct sip_stack *s, struct sip_dialog *d)
{
    osip_message_t *m = d->invite;
    if (!s->cb.on_invite) {
        sip_dialog_reject(d, 480, NULL);
        return;
    }
    char *ruri = NULL, *furi = NULL, *turi = NULL, display[128] = "";
    osip_uri_to_str(m->req_uri, &ruri);
    if (m->from->url)
        osip_uri_to_str(m->from->url, &furi);
    if (m->to->url)
        osip_uri_to_str(m->to->url, &turi);
    const char *dn = m->from->displayname;
    if (dn) {
        size_t n = strlen(dn);
        if (n >= 2 && dn[0] == '"' && dn[n - 1] == '"') {
            dn++;
            n -= 2;
        }
        if (n >= sizeof(display))
            n = sizeof(display) - 1;
        memcpy(display, dn, n);
        display[n] = '\0';
    }
    int bad;
    struct sip_invite inv = {
        .request_user = m->req_uri->username ? m->req_uri->username : "",
        .request_uri = ruri ? ruri : "",
        .from_uri = furi ? furi : "",
        .from_display = display,
        .to_uri = turi ? turi : "",
        .call_id = d->call_id,
        .source_ip = d->peer_ip,
        .source_port = d->peer_port,
        .transport = d->peer.tp ? d->peer.tp->name : "UDP",
        .sdp = sip_sdp_body(m, &bad),
    };
    d->announced = true;
    s->cb.on_invite(s->cb.ctx, d, &inv);
    osip_free(ruri);
    osip_free(furi);
    osip_free(turi);
}

int sip_dialog_ringing(struct sip_dialog *d)
{
    if (!d || d->state != DLG_EARLY || !d->ist)
        return -1;
    struct sip_stack *s = d->s;
    sip_tx_send(s, d->ist, sip_msg_dialog_response(d, d->invite, 180, NULL));
    log_info("msg=sip_ringing call_id=%s", d->log_id);
    sip_stack_pump(s);
    return 0;
}

int sip_dialog_answer(struct sip_dialog *d, const char *sdp)
{
    if (!d || d->state != DLG_EARLY || !d->ist || !sdp || !*sdp || strlen(sdp) > SIP_MAX_SDP)
        return -1;
    struct sip_stack *s = d->s;
    osip_message_t *r = sip_msg_dialog_response(d, d->invite, 200, NULL);
    sip_msg_set_sdp(r, sdp);
    if (osip_message_clone(r, &d->ok) != 0 || !d->ok) {
        osip_message_free(r);
        return -1;
    }
    d->ok_cseq = d->invite_cseq;
    d->answer_sdp = xstrdup(sdp);
    d->state = DLG_ANSWERED;
    rtx_start(d);
    sip_tx_send(s, d->ist, r);
    log_info("msg=sip_answered call_id=%s", d->log_id);
    sip_stack_pump(s);
    return 0;
}

int sip_dialog_reject(struct sip_dialog *d, int code, const char *reason)
{
    if (!d || d->state != DLG_EARLY || !d->ist || code < 300 || code > 699)
        return -1;
    struct sip_stack *s = d->s;
    char phrase[SIP_MAX_REASON];
    if (reason && *reason) {
        size_t n = 0;
        for (; reason[n] && n + 1 < sizeof(phrase); n++)
            phrase[n] = (reason[n] >= ' ' && reason[n] < 127) ? reason[n] : ' ';
        phrase[n] = '\0';
    } else {
        str_copy(phrase, sizeof(phrase), sip_reason_for(code));
    }
    sip_tx_send(s, d->ist, sip_msg_dialog_response(d, d->invite, code, phrase));
    d->state = DLG_ENDED;
    log_info("msg=sip_rejected call_id=%s code=%d", d->log_id, code);
    sip_dlg_note(s, NOTE_FREE, d, false, false);
    sip_stack_pump(s);
    return 0;
}
