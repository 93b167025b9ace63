/* The client side (UAC): our outgoing calls over UDP. The INVITE goes through an ICT
 * (retransmissions, Timer B, the ACK of a non-2xx final answer); its 2xx ends the ICT, so the ACK
 * for it is ours (RFC 3261 13.2.2.4) and is re-sent for every retransmitted 2xx, which no
 * transaction takes any more. A host name in the Request-URI is resolved on libuv's thread pool
 * (uv_getaddrinfo), bounded by 64*T1. CANCEL (RFC 3261 9.1), the deadlines of calls that wait too
 * long, and checking a URI to dial. */
#include "sip/internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

/* A name lookup for an outgoing call; d is NULL once the call is gone (the lookup still owns
 * this and one reference to the stack until its callback). */
struct resolve {
    uv_getaddrinfo_t req;
    struct sip_stack *s;
    struct sip_dialog *d;
    int port;
};

/* ---- messages ---- */

osip_message_t *sip_uac_request(struct sip_dialog *d, const char *method, uint32_t cseq,
                                const char *remote_tag, const osip_uri_t *target,
                                const osip_list_t *routes)
{
    osip_message_t *inv = d->invite, *r = sip_msg_request(method);
    osip_uri_t *uri = NULL;
    if (osip_uri_clone(target ? target : inv->req_uri, &uri) != 0 || !uri)
        die("out of memory in osip_uri_clone");
    osip_message_set_uri(r, uri);
    sip_msg_set_via(d->peer.tp, d->local_host, d->local_port, r);
    osip_from_clone(inv->from, &r->from);
    osip_to_clone(inv->to, &r->to);
    if (r->to && remote_tag && *remote_tag)
        osip_to_set_tag(r->to, osip_strdup(remote_tag));
    osip_call_id_clone(inv->call_id, &r->call_id);
    char cs[48];
    snprintf(cs, sizeof(cs), "%u %s", (unsigned)cseq, method);
    osip_message_set_cseq(r, cs);
    if (routes)
        osip_list_clone(routes, &r->routes, sip_from_clone);
    osip_message_set_header(r, "Max-Forwards", "70");
    osip_message_set_header(r, "User-Agent", d->s->user_agent);
    return r;
}

/* Its Request-URI, top Via (same branch), Route, From, To (no tag), Call-ID and CSeq number,
 * with the method CANCEL. */
osip_message_t *sip_uac_cancel_msg(struct sip_dialog *d)
{
    osip_message_t *inv = d->invite, *c = sip_msg_request("CANCEL");
    osip_uri_t *uri = NULL;
    if (osip_uri_clone(inv->req_uri, &uri) != 0 || !uri)
        die("out of memory in osip_uri_clone");
    osip_message_set_uri(c, uri);
    osip_via_t *v = osip_list_get(&inv->vias, 0), *copy = NULL;
    if (v && osip_via_clone(v, &copy) == 0)
        osip_list_add(&c->vias, copy, -1);
    osip_from_clone(inv->from, &c->from);
    osip_to_clone(inv->to, &c->to);
    osip_call_id_clone(inv->call_id, &c->call_id);
    char cs[32];
    snprintf(cs, sizeof(cs), "%u CANCEL", (unsigned)d->invite_cseq);
    osip_message_set_cseq(c, cs);
    osip_list_clone(&inv->routes, &c->routes, sip_from_clone);
    osip_message_set_header(c, "Max-Forwards", "70");
    osip_message_set_header(c, "User-Agent", d->s->user_agent);
    return c;
}

/* Our INVITE but its Via and Contact (added when it leaves, once we know our address). Takes
 * ruri and furi. */
static osip_message_t *make_invite(struct sip_stack *s, osip_uri_t *ruri, osip_uri_t *furi,
                                   const char *display, const char *call_id, const char *local_tag,
                                   const char *sdp)
{
    osip_message_t *m = sip_msg_request("INVITE");
    osip_uri_t *to_uri = NULL;
    if (osip_uri_clone(ruri, &to_uri) != 0 || !to_uri)
        die("out of memory in osip_uri_clone");
    osip_message_set_uri(m, ruri);
    osip_from_t *from = NULL, *to = NULL;
    if (osip_from_init(&from) != 0 || osip_to_init(&to) != 0)
        die("out of memory in osip_from_init");
    osip_from_set_url(from, furi);
    if (display && *display) {
        /* A quoted string (RFC 3261 25.1) without quotes, backslashes or control characters. */
        char q[SIP_MAX_DISPLAY + 3];
        size_t n = 0;
        q[n++] = '"';
        for (const char *c = display; *c && n < SIP_MAX_DISPLAY + 1; c++)
            if ((unsigned char)*c >= ' ' && *c != '"' && *c != '\\' && *c != 127)
                q[n++] = *c;
        q[n++] = '"';
        q[n] = '\0';
        if (n > 2)
            osip_from_set_displayname(from, osip_strdup(q));
    }
    osip_from_set_tag(from, osip_strdup(local_tag));
    osip_to_set_url(to, to_uri);
    m->from = from;
    m->to = to;
    osip_message_set_call_id(m, call_id);
    osip_message_set_cseq(m, "1 INVITE");
    osip_message_set_header(m, "Max-Forwards", "70");
    osip_message_set_header(m, "User-Agent", s->user_agent);
    osip_message_set_header(m, "Allow", SIP_ALLOW);
    sip_msg_set_sdp(m, sdp);
    return m;
}

/* ---- sending ---- */

/* host:port of a SIP URI when the host is an IPv4 literal (no lookup on the loop); -1 else. */
static int uri_addr(const osip_uri_t *u, struct sockaddr_in *out)
{
    uint32_t port = 5060;
    if (!u || !sip_is_ipv4(u->host) ||
        (u->port && (sip_parse_u32(u->port, 65535, &port) < 0 || !port)))
        return -1;
    return uv_ip4_addr(u->host, (int)port, out) == 0 ? 0 : -1;
}

static void set_udp_peer(struct sip_dialog *d, const struct sockaddr_in *a)
{
    struct sip_peer p = sip_peer_udp(a);
    sip_dlg_set_peer(d, &p);
}

/* CANCEL through its own NICT; the INVITE gets its final answer (487) within 64*T1 or we give
 * up on it (RFC 3261 9.1). */
static void send_cancel(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    osip_message_t *c = sip_uac_cancel_msg(d);
    osip_transaction_t *tr = sip_tx_new(s, NICT, c, &d->peer, NULL);
    if (tr) {
        sip_tx_send(s, tr, c);
    } else {
        sip_tp_send_msg(s, c, &d->peer);
        osip_message_free(c);
    }
    d->cancel_sent = true;
    sip_dlg_deadline_set(d, sip_now_ms() + 64 * (uint64_t)s->t1);
    log_info("msg=sip_cancel_sent call_id=%s", d->log_id);
}

/* Sends the INVITE of d (to d->peer) through a new ICT. */
static void start_invite(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    sip_tp_udp_local(s, &d->peer.addr, d->local_host, sizeof(d->local_host));
    d->local_port = s->port;
    sip_msg_set_via(d->peer.tp, d->local_host, d->local_port, d->invite);
    char contact[INET_ADDRSTRLEN + 48];
    sip_msg_contact(d->peer.tp, d->local_host, d->local_port, contact, sizeof(contact));
    osip_message_set_contact(d->invite, contact);
    osip_message_t *copy = NULL;
    osip_transaction_t *tr = NULL;
    if (osip_message_clone(d->invite, &copy) == 0 && copy)
        tr = sip_tx_new(s, ICT, copy, &d->peer, d);
    if (!tr) {
        osip_message_free(copy);
        sip_dlg_fail(d, 503, "no_transaction");
        return;
    }
    d->ict = tr;
    d->state = DLG_CALLING;
    sip_tx_send(s, tr, copy);
    log_info("msg=sip_invite_sent call_id=%s dst=%s:%d", d->log_id, d->peer_ip, d->peer_port);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct resolve *r = req->data;
    struct sip_stack *s = r->s;
    struct sip_dialog *d = r->d;
    if (d) {
        d->res = NULL;
        const struct addrinfo *p = status == 0 ? ai : NULL;
        while (p && (p->ai_family != AF_INET || p->ai_addrlen < sizeof(struct sockaddr_in)))
            p = p->ai_next;
        if (p) {
            struct sockaddr_in a = *(const struct sockaddr_in *)p->ai_addr;
            a.sin_port = htons((uint16_t)r->port);
            d->origin = a;
            set_udp_peer(d, &a);
            sip_dlg_deadline_clear(d);
            start_invite(d);
        } else {
            log_info("msg=sip_resolve_failed call_id=%s error=%s", d->log_id,
                     status ? uv_strerror(status) : "no_ipv4_address");
            sip_dlg_fail(d, 503, "resolve_failed");
        }
        sip_stack_pump(s);
    }
    uv_freeaddrinfo(ai);
    free(r);
    sip_stack_handle_closed(s);
}

void sip_uac_resolve_detach(struct sip_dialog *d)
{
    if (!d->res)
        return;
    d->res->d = NULL;
    uv_cancel((uv_req_t *)&d->res->req);
    d->res = NULL;
}

/* ---- answers ---- */

/* Our side of the session once the peer answered: our offer narrowed to the codec of the answer
 * (telephone-event only when the answer has it), same address, port, session id and version. A
 * re-INVITE from the peer is answered from it (sdp_build_reanswer), as for an incoming call.
 * NULL when either does not parse. */
static char *session_after_answer(const char *offer, const char *answer)
{
    struct sdp_offer_result mine, theirs;
    if (sdp_parse_offer(offer, &mine) < 0 || sdp_parse_answer(answer, &theirs) < 0)
        return NULL;
    uint64_t id = 0, ver = 0;
    bool found = false;
    for (const char *p = offer; p && *p && !found;) {
        if (strncmp(p, "o=", 2) == 0) {
            char user[64], a[24], b[24];
            found = sscanf(p, "o=%63s %23s %23s", user, a, b) == 3 &&
                    str_to_u64(a, UINT64_MAX, &id) == 0 && str_to_u64(b, UINT64_MAX, &ver) == 0;
            if (!found)
                return NULL;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!found)
        return NULL;
    mine.codec = theirs.codec;
    mine.audio_pt = theirs.audio_pt;
    mine.dtmf_pt = theirs.dtmf_pt; /* the answer takes our numbers (RFC 3264 6.1) */
    mine.dtmf_pt_8k = theirs.dtmf_pt_8k;
    mine.dtmf_pt_48k = theirs.dtmf_pt_48k;
    /* sdp_build_answer writes the direction that answers the one it is given: give it ours
     * mirrored so that it writes ours. */
    bool so = mine.remote_sendonly;
    mine.remote_sendonly = mine.remote_recvonly;
    mine.remote_recvonly = so;
    char buf[4096];
    if (sdp_build_answer(&mine, mine.remote_ip, mine.remote_port, id, ver, buf, sizeof(buf)) < 0)
        return NULL;
    return xstrdup(buf);
}

static void uac_provisional(struct sip_dialog *d, const osip_message_t *m)
{
    struct sip_stack *s = d->s;
    const char *tag = sip_tag_of(m->to);
    if (tag && strcmp(tag, d->remote_tag) != 0) { /* an early dialog (RFC 3261 12.1.2) */
        free(d->remote_tag);
        d->remote_tag = xstrdup(tag);
    }
    if (!d->provisional) {
        d->provisional = true;
        if (d->cancel_code && !d->cancel_sent)
            send_cancel(d); /* it was waiting for this */
        else if (!d->cancel_sent)
            sip_dlg_deadline_set(d, sip_now_ms() + SIP_RING_T1 * (uint64_t)s->t1);
    }
    if (m->status_code > 100) {
        log_info("msg=sip_call_progress call_id=%s code=%d", d->log_id, m->status_code);
        sip_dlg_note(s, NOTE_PROGRESS, d, false, false)->code = m->status_code;
    }
}

/* The 2xx to our INVITE: the dialog is confirmed (RFC 3261 12.1.2, 13.2.2.4). */
static void uac_answered(struct sip_dialog *d, const osip_message_t *m)
{
    struct sip_stack *s = d->s;
    const char *tag = sip_tag_of(m->to);
    free(d->remote_tag);
    d->remote_tag = xstrdup(tag ? tag : "");
    osip_contact_t *c = osip_list_get(&m->contacts, 0);
    if (c && c->url && c->url->host)
        osip_uri_clone(c->url, &d->target);
    for (int i = osip_list_size(&m->record_routes) - 1; i >= 0; i--) {
        osip_from_t *copy = NULL;
        if (osip_from_clone(osip_list_get(&m->record_routes, i), &copy) == 0)
            osip_list_add(&d->routes, copy, -1);
    }
    /* In-dialog requests go to the first Route, else the remote target, when it is an IPv4
     * literal; else where the INVITE went. */
    const osip_route_t *first = osip_list_get(&d->routes, 0);
    struct sockaddr_in a;
    if (uri_addr(first ? first->url : d->target, &a) == 0)
        set_udp_peer(d, &a);
    sip_dlg_deadline_clear(d);
    sip_tx_detach(d->ict); /* it ends right after this callback */
    d->ict = NULL;
    d->state = DLG_CONFIRMED;
    d->ack = sip_uac_request(d, "ACK", d->invite_cseq, d->remote_tag, d->target, &d->routes);
    sip_tp_send_msg(s, d->ack, &d->peer);
    int bad;
    const char *sdp = sip_sdp_body(m, &bad);
    char *sess = sdp ? session_after_answer(d->answer_sdp, sdp) : NULL;
    if (sess) {
        free(d->answer_sdp);
        d->answer_sdp = sess;
    }
    log_info("msg=sip_call_answered call_id=%s code=%d", d->log_id, m->status_code);
    sip_dlg_note(s, NOTE_ANSWERED, d, false, false)->sdp = xstrdup(sdp);
}

void sip_uac_on_ict(int type, osip_transaction_t *tr, osip_message_t *m)
{
    struct txinfo *info = osip_transaction_get_your_instance(tr);
    struct sip_dialog *d = info ? info->d : NULL;
    if (!d || d->ict != tr || d->state != DLG_CALLING)
        return;
    if (type == OSIP_ICT_STATUS_TIMEOUT) {
        sip_dlg_fail(d, d->cancel_code ? d->cancel_code : 408, "timeout");
        return;
    }
    if (!m)
        return;
    if (type == OSIP_ICT_STATUS_1XX_RECEIVED)
        uac_provisional(d, m);
    else if (type == OSIP_ICT_STATUS_2XX_RECEIVED)
        uac_answered(d, m);
    else /* libosip2 has sent the ACK */
        sip_dlg_fail(d, d->cancel_code ? d->cancel_code : m->status_code, "rejected");
}

/* A 2xx to one of our INVITEs that no transaction took (the ICT ends with the first one): a
 * retransmission gets our ACK again; one from another fork of the call (another To tag) is
 * acknowledged and hung up at once, best effort (RFC 3261 13.2.2.4). Any other response no
 * transaction wants is dropped. */
void sip_uac_stray_response(struct sip_stack *s, const osip_message_t *m, const char *cid,
                            uint32_t cseq)
{
    const char *ltag = sip_tag_of(m->from), *rtag = sip_tag_of(m->to);
    if (!MSG_IS_STATUS_2XX(m) || !ltag || strcmp(m->cseq->method, "INVITE") != 0)
        return;
    struct sip_dialog *d = sip_dlg_chain(s, cid);
    while (d && !(d->uac && d->ack && d->invite_cseq == cseq && strcmp(d->call_id, cid) == 0 &&
                  strcmp(d->local_tag, ltag) == 0))
        d = d->hnext;
    if (!d)
        return;
    if (strcmp(d->remote_tag, rtag ? rtag : "") == 0) {
        sip_tp_send_msg(s, d->ack, &d->peer);
        return;
    }
    osip_contact_t *c = osip_list_get(&m->contacts, 0);
    const osip_uri_t *target = c && c->url && c->url->host ? c->url : NULL;
    struct sockaddr_in to = d->origin;
    if (target)
        uri_addr(target, &to);
    log_info("msg=sip_fork_answer_dropped call_id=%s", d->log_id);
    osip_message_t *ack = sip_uac_request(d, "ACK", cseq, rtag, target, NULL);
    osip_message_t *bye = sip_uac_request(d, "BYE", cseq + 1, rtag, target, NULL);
    struct sip_peer p = sip_peer_udp(&to);
    sip_tp_send_msg(s, ack, &p);
    sip_tp_send_msg(s, bye, &p);
    osip_message_free(ack);
    osip_message_free(bye);
}

/* Outgoing calls waiting too long: for their name lookup (64*T1: 503), ringing (360*T1: CANCEL,
 * then 408), or for the final answer after our CANCEL (64*T1: the call is over, RFC 3261 9.1). */
void sip_uac_run_deadlines(struct sip_stack *s)
{
    if (!s->n_deadline)
        return;
    uint64_t now = sip_now_ms();
    for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
        if (!d->deadline || now < d->deadline)
            continue;
        sip_dlg_deadline_clear(d);
        if (d->state == DLG_RESOLVING) {
            sip_dlg_fail(d, 503, "resolve_timeout");
        } else if (d->state == DLG_CALLING && !d->cancel_sent) {
            log_info("msg=sip_ring_timeout call_id=%s", d->log_id);
            d->cancel_code = 408;
            send_cancel(d);
        } else if (d->state == DLG_CALLING) {
            if (d->ict)
                sip_tx_abandon(s, d->ict);
            d->ict = NULL;
            sip_dlg_fail(d, d->cancel_code, "cancel_timeout");
        }
    }
}

/* ---- the API ---- */

/* Checks the Request-URI of an outgoing call: sip: (no TLS, so no sips:), a host that is an
 * IPv4 literal or a name, a port 1-65535, UDP. *port gets the port. NULL, or the error. */
static const char *check_request_uri(const osip_uri_t *u, int *port)
{
    uint32_t p = 5060;
    if (!u->scheme || strcasecmp(u->scheme, "sip") != 0)
        return "the scheme must be sip:";
    if (!u->host || !*u->host || strlen(u->host) > 253)
        return "no host";
    for (const char *c = u->host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-'))
            return "the host must be an IPv4 address or a name";
    if (u->port && (sip_parse_u32(u->port, 65535, &p) < 0 || p == 0))
        return "bad port";
    osip_uri_param_t *t = NULL;
    if (osip_uri_uparam_get_byname((osip_uri_t *)u, "transport", &t) == 0 && t && t->gvalue &&
        strcasecmp(t->gvalue, "udp") != 0)
        return "only UDP is supported";
    *port = (int)p;
    return NULL;
}

struct sip_dialog *sip_dialog_invite(struct sip_stack *s, const struct sip_outgoing *o, void *data,
                                     char *err, size_t errlen)
{
    if (!s || !o || s->closing) {
        sip_set_err(err, errlen, "sip: no stack");
        return NULL;
    }
    if (!o->sdp || !*o->sdp || strlen(o->sdp) > SIP_MAX_SDP) {
        sip_set_err(err, errlen, "sip: an SDP offer of at most %d bytes is required", SIP_MAX_SDP);
        return NULL;
    }
    if (s->n_dialogs >= s->max_dialogs || s->n_tx >= s->max_tx) {
        sip_set_err(err, errlen, "sip: too many dialogs or transactions (max_dialogs %zu)",
                    s->max_dialogs);
        return NULL;
    }
    char why_text[160];
    if (sip_uri_check(o->request_uri, why_text, sizeof(why_text)) < 0) {
        sip_set_err(err, errlen, "sip: bad request URI: %s", why_text);
        return NULL;
    }
    osip_uri_t *ruri = sip_parse_uri(o->request_uri);
    int port = 0;
    const char *why = ruri ? check_request_uri(ruri, &port) : "not a SIP URI";
    if (why) {
        sip_set_err(err, errlen, "sip: bad request URI: %s", why);
        osip_uri_free(ruri);
        return NULL;
    }
    osip_uri_t *furi = sip_parse_uri(o->from_uri);
    if (!furi || !furi->scheme || !furi->host || !*furi->host) {
        sip_set_err(err, errlen, "sip: bad from URI");
        osip_uri_free(ruri);
        osip_uri_free(furi);
        return NULL;
    }
    char call_id[33], tag[17], host[256];
    sip_random_hex(call_id, 16);
    sip_random_hex(tag, 8);
    str_copy(host, sizeof(host), ruri->host);
    osip_message_t *inv = make_invite(s, ruri, furi, o->from_display, call_id, tag, o->sdp);
    struct sip_dialog *d = sip_dlg_add(s, inv, call_id, tag, "");
    d->uac = true;
    d->announced = true;
    d->invite_cseq = d->local_cseq = 1;
    d->answer_sdp = xstrdup(o->sdp);
    d->data = data;
    char ruri_log[128];
    log_info("msg=sip_invite_out call_id=%s uri=%s", d->log_id,
             sip_logsafe(o->request_uri, ruri_log, sizeof(ruri_log)));
    struct sockaddr_in a;
    if (uv_ip4_addr(host, port, &a) == 0 && sip_is_ipv4(host)) {
        d->origin = a;
        set_udp_peer(d, &a);
        start_invite(d);
    } else {
        d->state = DLG_RESOLVING;
        struct resolve *r = xcalloc(1, sizeof(*r));
        r->s = s;
        r->d = d;
        r->port = port;
        r->req.data = r;
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
        int rc = uv_getaddrinfo(s->loop, &r->req, on_resolved, host, NULL, &hints);
        if (rc != 0) {
            free(r);
            log_info("msg=sip_resolve_failed call_id=%s error=%s", d->log_id, uv_strerror(rc));
            sip_dlg_fail(d, 503, "resolve_failed");
        } else {
            s->open_handles++;
            d->res = r;
            sip_dlg_deadline_set(d, sip_now_ms() + 64 * (uint64_t)s->t1);
        }
    }
    sip_stack_kick(s);
    return d;
}

int sip_dialog_cancel(struct sip_dialog *d)
{
    if (!d || !d->uac || (d->state != DLG_RESOLVING && d->state != DLG_CALLING) ||
        d->cancel_code == 487)
        return -1;
    struct sip_stack *s = d->s;
    bool sent = d->cancel_sent; /* rang too long: our CANCEL is out already */
    d->cancel_code = 487;
    log_info("msg=sip_cancel call_id=%s", d->log_id);
    if (d->state == DLG_RESOLVING)
        sip_dlg_fail(d, 487, "cancelled");
    else if (d->provisional && !sent)
        send_cancel(d);
    /* else it leaves with the first provisional answer, or Timer B ends the call (RFC 3261 9.1) */
    sip_stack_kick(s);
    return 0;
}

/* ---- checking a URI to dial ---- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A DNS name (RFC 1123 labels: letters, digits, '-' not at either end, 1-63 each, at most 253 in
 * all, one trailing dot allowed) that is not only digits and dots (a broken IPv4 address). */
static const char *check_dns_name(const char *h, size_t n)
{
    if (n > 253)
        return "the host name is longer than 253 characters";
    bool numeric = true;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0)
                return "the host has an empty label";
            if (h[i - 1] == '-')
                return "a host label ends with '-'";
            label = 0;
            continue;
        }
        if (!is_alnum(c) && c != '-')
            return "the host must be an IPv4 address or a DNS name (letters, digits, '-', '.')";
        if (c == '-' && label == 0)
            return "a host label starts with '-'";
        if (c < '0' || c > '9')
            numeric = false;
        if (++label > 63)
            return "a host label is longer than 63 characters";
    }
    if (h[n - 1] == '-')
        return "a host label ends with '-'";
    if (numeric)
        return "the host is not a valid IPv4 address";
    return NULL;
}

int sip_uri_check(const char *uri, char *err, size_t errlen)
{
    const char *why = NULL;
    if (!uri || strncasecmp(uri, "sip:", 4) != 0) {
        why = !uri || strncasecmp(uri, "sips:", 5) != 0
                  ? "it must start with sip:"
                  : "sips: is not supported (no TLS); use sip:";
        goto out;
    }
    const char *p = uri + 4, *at = strchr(p, '@');
    if (strlen(uri) > SIP_MAX_URI) {
        why = "it is too long";
        goto out;
    }
    if (at) {
        if (at == p) {
            why = "the user part before '@' is empty";
            goto out;
        }
        for (const char *c = p; c < at; c++) {
            if (*c == ':') {
                why = "a password in the URI is not supported";
                goto out;
            }
            if (*c == '%') {
                if (c + 2 >= at || !is_hex(c[1]) || !is_hex(c[2])) {
                    why = "the user part has a bad %-escape";
                    goto out;
                }
                c += 2;
                continue;
            }
            if (!is_alnum(*c) && !strchr("-_.!~*'()&=+$,/", *c)) {
                why = (*c == ';' || *c == '?')
                          ? "URI parameters and headers (';', '?') are not supported"
                          : "the user part has a character that is not allowed";
                goto out;
            }
        }
        p = at + 1;
    }
    if (*p == '[') {
        why = "IPv6 addresses are not supported; use an IPv4 address or a name";
        goto out;
    }
    size_t hn = strcspn(p, ":;?");
    if (hn == 0) {
        why = "the host is missing";
        goto out;
    }
    char host[256];
    if (hn >= sizeof(host)) {
        why = "the host name is longer than 253 characters";
        goto out;
    }
    memcpy(host, p, hn);
    host[hn] = '\0';
    if (!sip_is_ipv4(host))
        why = check_dns_name(host, hn);
    if (why)
        goto out;
    p += hn;
    if (*p == ':') {
        p++;
        size_t dn = strspn(p, "0123456789");
        uint32_t port = 0;
        char digits[8];
        if (dn == 0 || dn > 5 || (p[dn] && p[dn] != ';' && p[dn] != '?')) {
            why = "the port must be a number from 1 to 65535";
            goto out;
        }
        memcpy(digits, p, dn);
        digits[dn] = '\0';
        if (sip_parse_u32(digits, 65535, &port) < 0 || port == 0) {
            why = "the port must be a number from 1 to 65535";
            goto out;
        }
        p += dn;
    }
    if (*p == ';' || *p == '?')
        why = "URI parameters and headers (';', '?') are not supported";
    else if (*p)
        why = "unexpected characters after the host";
out:
    if (why) {
        sip_set_err(err, errlen, "%s", why);
        return -1;
    }
    return 0;
}
