/* The dialog layer: the table of dialogs (both directions), the note queue that reports to the
 * application once the layers below are done, hanging up with BYE, the dialogs a closed
 * connection takes down, and a dialog's state written down so that a later run can end it. */
#include "sip/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/mem.h"

/* ---- the table ---- */

static size_t bucket_of(const char *call_id)
{
    return sip_hash_str(call_id) % SIP_BUCKETS;
}

/* An outgoing call becomes a dialog requests can reach with its 2xx (no early-dialog requests). */
static bool reachable(const struct sip_dialog *d)
{
    return d->state != DLG_ENDED && d->state != DLG_RESOLVING && d->state != DLG_CALLING;
}

struct sip_dialog *sip_dlg_chain(struct sip_stack *s, const char *call_id)
{
    return s->buckets[bucket_of(call_id)];
}

struct sip_dialog *sip_dlg_find(struct sip_stack *s, const char *call_id, const char *local_tag,
                                const char *remote_tag)
{
    for (struct sip_dialog *d = s->buckets[bucket_of(call_id)]; d; d = d->hnext)
        if (reachable(d) && strcmp(d->call_id, call_id) == 0 &&
            strcmp(d->local_tag, local_tag) == 0 && strcmp(d->remote_tag, remote_tag) == 0)
            return d;
    return NULL;
}

struct sip_dialog *sip_dlg_find_by_invite(struct sip_stack *s, const char *call_id,
                                          const char *remote_tag, uint32_t cseq)
{
    for (struct sip_dialog *d = s->buckets[bucket_of(call_id)]; d; d = d->hnext)
        if (!d->uac && d->state != DLG_ENDED && d->invite_cseq == cseq &&
            strcmp(d->call_id, call_id) == 0 && strcmp(d->remote_tag, remote_tag) == 0)
            return d;
    return NULL;
}

struct sip_dialog *sip_dlg_add(struct sip_stack *s, osip_message_t *invite, const char *call_id,
                               const char *local_tag, const char *remote_tag)
{
    struct sip_dialog *d = xcalloc(1, sizeof(*d));
    d->s = s;
    d->invite = invite;
    d->call_id = xstrdup(call_id);
    d->local_tag = xstrdup(local_tag);
    d->remote_tag = xstrdup(remote_tag);
    osip_list_init(&d->routes);
    sip_logsafe(call_id, d->log_id, sizeof(d->log_id));
    size_t b = bucket_of(call_id);
    d->hnext = s->buckets[b];
    s->buckets[b] = d;
    d->next = s->dialogs;
    if (s->dialogs)
        s->dialogs->prev = d;
    s->dialogs = d;
    s->n_dialogs++;
    return d;
}

void sip_dlg_set_peer(struct sip_dialog *d, const struct sip_peer *p)
{
    sip_peer_set(&d->peer, p);
    uv_ip4_name(&p->addr, d->peer_ip, sizeof(d->peer_ip));
    d->peer_port = ntohs(p->addr.sin_port);
}

void sip_dlg_deadline_set(struct sip_dialog *d, uint64_t at)
{
    if (!d->deadline)
        d->s->n_deadline++;
    d->deadline = at ? at : 1;
}

void sip_dlg_deadline_clear(struct sip_dialog *d)
{
    if (d->deadline)
        d->s->n_deadline--;
    d->deadline = 0;
}

void sip_dlg_free(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    sip_uas_setup_leave(d);
    struct sip_dialog **pp = &s->buckets[bucket_of(d->call_id)];
    while (*pp && *pp != d)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = d->hnext;
    if (d->prev)
        d->prev->next = d->next;
    else
        s->dialogs = d->next;
    if (d->next)
        d->next->prev = d->prev;
    sip_tx_detach(d->ist);
    sip_tx_detach(d->bye_tr);
    sip_tx_detach(d->ict);
    sip_uas_rtx_stop(d);
    sip_dlg_deadline_clear(d);
    sip_uac_resolve_detach(d);
    sip_peer_clear(&d->peer);
    osip_message_free(d->invite);
    osip_message_free(d->ok);
    osip_message_free(d->ack);
    osip_uri_free(d->target);
    osip_list_special_free(&d->routes, sip_route_free);
    free(d->answer_sdp);
    free(d->call_id);
    free(d->local_tag);
    free(d->remote_tag);
    free(d);
    s->n_dialogs--;
}

/* ---- reports to the application ---- */

struct note *sip_dlg_note(struct sip_stack *s, enum note_kind kind, struct sip_dialog *d,
                          bool remote, bool cancelled)
{
    struct note *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->d = d;
    n->remote = remote;
    n->cancelled = cancelled;
    if (s->notes_tail)
        s->notes_tail->next = n;
    else
        s->notes_head = n;
    s->notes_tail = n;
    s->again = true;
    return n;
}

void sip_dlg_end(struct sip_dialog *d, bool remote, bool cancelled, const char *why)
{
    if (d->state == DLG_ENDED)
        return;
    sip_uas_rtx_stop(d);
    d->state = DLG_ENDED;
    log_info("msg=sip_dialog_ended call_id=%s reason=%s", d->log_id, why);
    sip_dlg_note(d->s, NOTE_ENDED, d, remote, cancelled);
}

void sip_dlg_fail(struct sip_dialog *d, int code, const char *why)
{
    if (d->state == DLG_ENDED)
        return;
    d->state = DLG_ENDED;
    sip_dlg_deadline_clear(d);
    sip_uac_resolve_detach(d);
    sip_tx_detach(d->ict);
    d->ict = NULL;
    log_info("msg=sip_call_failed call_id=%s code=%d reason=%s", d->log_id, code, why);
    sip_dlg_note(d->s, NOTE_FAILED, d, false, false)->code = code;
}

void sip_dlg_run_notes(struct sip_stack *s)
{
    struct note *n;
    while ((n = s->notes_head)) {
        s->notes_head = n->next;
        if (!s->notes_head)
            s->notes_tail = NULL;
        struct sip_dialog *d = n->d;
        switch (n->kind) {
        case NOTE_INVITE:
            if (d->state == DLG_EARLY)
                sip_uas_deliver_invite(s, d);
            break;
        case NOTE_ESTABLISHED:
            if (d->state == DLG_CONFIRMED && s->cb.on_established)
                s->cb.on_established(s->cb.ctx, d);
            break;
        case NOTE_ENDED:
            /* A dialog the application never saw ends silently. */
            if (d->announced && s->cb.on_ended)
                s->cb.on_ended(s->cb.ctx, d, n->remote, n->cancelled);
            sip_dlg_free(d);
            break;
        case NOTE_FREE:
            sip_dlg_free(d);
            break;
        case NOTE_PROGRESS:
            if (d->state == DLG_CALLING && s->cb.on_progress)
                s->cb.on_progress(s->cb.ctx, d, n->code);
            break;
        case NOTE_ANSWERED:
            /* Even when the call ended meanwhile: on_ended follows, and needs this first. */
            if (s->cb.on_answered)
                s->cb.on_answered(s->cb.ctx, d, n->sdp);
            break;
        case NOTE_FAILED:
            if (s->cb.on_failed)
                s->cb.on_failed(s->cb.ctx, d, n->code);
            sip_dlg_free(d);
            break;
        }
        free(n->sdp);
        free(n);
    }
}

void sip_dlg_drop_notes(struct sip_stack *s)
{
    struct note *n;
    while ((n = s->notes_head)) {
        s->notes_head = n->next;
        free(n->sdp);
        free(n);
    }
    s->notes_tail = NULL;
}

/* A connection closed: each of its dialogs ends as a BYE from the peer would end it (RFC 7118
 * 5: nothing can reach the peer any more). One that was still ringing gets its 487 (to nowhere)
 * so that its INVITE transaction moves on and ends. */
void sip_dlg_run_closed(struct sip_stack *s)
{
    struct sip_conn *c;
    while ((c = s->closed_conns)) {
        s->closed_conns = c->closed_next;
        c->closed_next = NULL;
        c->closed_queued = false;
        for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
            if (d->peer.conn != c)
                continue;
            switch (d->state) {
            case DLG_ENDED:
                break;
            case DLG_EARLY:
                if (d->ist)
                    sip_tx_send(s, d->ist, sip_msg_dialog_response(d, d->invite, 487, NULL));
                sip_dlg_end(d, true, true, "connection_closed_early");
                break;
            case DLG_RESOLVING:
            case DLG_CALLING:
                sip_dlg_fail(d, 503, "connection_closed");
                break;
            case DLG_BYE_SENT:
                sip_dlg_end(d, false, false, "connection_closed");
                break;
            case DLG_ANSWERED:
            case DLG_CONFIRMED:
                sip_dlg_end(d, !d->bye_pending, false, "connection_closed");
                break;
            }
        }
        sip_conn_release(c);
    }
}

/* ---- hanging up ---- */

/* The remote target of an incoming call: the Contact of its INVITE, else its From URI; NULL when
 * neither has a host (then the BYE goes to sip:<source address>). */
static const osip_uri_t *uas_target(const struct sip_dialog *d)
{
    const osip_message_t *inv = d->invite;
    const osip_contact_t *c = osip_list_get(&inv->contacts, 0);
    if (c && c->url && c->url->host)
        return c->url;
    if (inv->from && inv->from->url && inv->from->url->host)
        return inv->from->url;
    return NULL;
}

/* Request-URI = the remote target (Contact of the INVITE), Route = its Record-Route set, From =
 * the INVITE's To with our tag, To = its From. In our outgoing dialogs: see sip_uac_request. */
osip_message_t *sip_dlg_make_bye(struct sip_dialog *d)
{
    if (d->uac)
        return sip_uac_request(d, "BYE", ++d->local_cseq, d->remote_tag, d->target, &d->routes);
    osip_message_t *inv = d->invite, *b = sip_msg_request("BYE");
    const osip_uri_t *target = uas_target(d);
    osip_uri_t *uri = NULL;
    if (target) {
        osip_uri_clone(target, &uri);
    } else {
        char text[INET_ADDRSTRLEN + 16];
        snprintf(text, sizeof(text), "sip:%s:%d", d->peer_ip, d->peer_port);
        if (osip_uri_init(&uri) == 0 && osip_uri_parse(uri, text) != 0) {
            osip_uri_free(uri);
            uri = NULL;
        }
    }
    if (!uri)
        die("cannot build a Request-URI for BYE");
    osip_message_set_uri(b, uri);
    sip_msg_set_via(d->peer.tp, d->local_host, d->local_port, b);
    osip_from_clone(inv->to, &b->from);
    if (b->from && !sip_tag_of(b->from))
        osip_from_set_tag(b->from, osip_strdup(d->local_tag));
    osip_to_clone(inv->from, &b->to);
    osip_call_id_clone(inv->call_id, &b->call_id);
    char cseq[32];
    snprintf(cseq, sizeof(cseq), "%u BYE", (unsigned)++d->local_cseq);
    osip_message_set_cseq(b, cseq);
    osip_list_clone(&inv->record_routes, &b->routes, sip_from_clone);
    osip_message_set_header(b, "Max-Forwards", "70");
    osip_message_set_header(b, "User-Agent", d->s->user_agent);
    return b;
}

void sip_dlg_start_bye(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    osip_message_t *bye = sip_dlg_make_bye(d);
    osip_transaction_t *tr = sip_tx_new(s, NICT, bye, &d->peer, d);
    log_info("msg=sip_bye_sent call_id=%s", d->log_id);
    if (!tr) {
        sip_tp_send_msg(s, bye, &d->peer);
        osip_message_free(bye);
        sip_dlg_end(d, false, false, "local_bye");
        return;
    }
    d->state = DLG_BYE_SENT;
    d->bye_tr = tr;
    sip_tx_send(s, tr, bye);
}

void sip_dlg_bye_done(struct sip_dialog *d)
{
    if (d->state == DLG_BYE_SENT)
        sip_dlg_end(d, false, false, "local_bye");
}

int sip_dialog_bye(struct sip_dialog *d)
{
    if (!d)
        return -1;
    struct sip_stack *s = d->s;
    if (d->state == DLG_ANSWERED && !d->bye_pending) {
        d->bye_pending = true;
        log_info("msg=sip_bye_pending call_id=%s", d->log_id);
        return 0;
    }
    if (d->state != DLG_CONFIRMED)
        return -1;
    sip_dlg_start_bye(d);
    sip_stack_pump(s);
    return 0;
}

/* ---- the application's view ---- */

void sip_dialog_set_data(struct sip_dialog *d, void *data)
{
    d->data = data;
}

void *sip_dialog_data(const struct sip_dialog *d)
{
    return d->data;
}

const char *sip_dialog_call_id(const struct sip_dialog *d)
{
    return d->call_id;
}

const char *sip_dialog_peer_ip(const struct sip_dialog *d)
{
    return d->peer_ip;
}

bool sip_dialog_unacked(const struct sip_dialog *d)
{
    return d && d->unacked;
}

/* ---- dialogs that outlive the process ---- */

static char *uri_text(const osip_uri_t *u)
{
    char *t = NULL;
    if (!u || osip_uri_to_str(u, &t) != 0)
        return NULL;
    return t;
}

static void state_add_route(json_t *routes, const osip_from_t *r)
{
    char *t = NULL;
    if (r && osip_from_to_str(r, &t) == 0 && t)
        json_array_append_new(routes, json_string(t));
    osip_free(t);
}

/* A dialog on a connection-oriented transport is written down too (with its "transport"), so
 * that the call's record says what it was; a later run cannot reach its peer (the connection
 * ended with the process) and sip_bye_saved() only logs it. */
int sip_dialog_state(const struct sip_dialog *d, char *out, size_t cap)
{
    if (!d || !out || (d->state != DLG_ANSWERED && d->state != DLG_CONFIRMED))
        return -1;
    const osip_message_t *inv = d->invite;
    const osip_uri_t *local, *remote, *target;
    json_t *routes = json_array();
    if (d->uac) { /* our INVITE: From is us; route set from the 2xx, already in order */
        local = inv->from ? inv->from->url : NULL;
        remote = inv->to ? inv->to->url : NULL;
        target = d->target ? d->target : inv->req_uri;
        for (int i = 0; i < osip_list_size(&d->routes); i++)
            state_add_route(routes, osip_list_get(&d->routes, i));
    } else { /* their INVITE: To is us; route set = its Record-Route in order (RFC 3261 12.1.1) */
        local = inv->to ? inv->to->url : NULL;
        remote = inv->from ? inv->from->url : NULL;
        target = uas_target(d);
        for (int i = 0; i < osip_list_size(&inv->record_routes); i++)
            state_add_route(routes, osip_list_get(&inv->record_routes, i));
    }
    char *lt = uri_text(local), *rt = uri_text(remote), *tt = uri_text(target);
    char fallback[INET_ADDRSTRLEN + 16];
    snprintf(fallback, sizeof(fallback), "sip:%s:%d", d->peer_ip, d->peer_port);
    json_t *j = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:s,s:i}", "call_id", d->call_id, "local_tag",
        d->local_tag, "remote_tag", d->remote_tag, "local_uri", lt ? lt : "", "remote_uri",
        rt ? rt : "", "remote_target", tt ? tt : fallback, "route_set", routes, "cseq",
        (json_int_t)d->local_cseq + 1, "peer_ip", d->peer_ip, "peer_port", d->peer_port);
    osip_free(lt);
    osip_free(rt);
    osip_free(tt);
    if (!j) /* a string that is not UTF-8: nothing we could send again */
        return -1;
    if (d->peer.tp && d->peer.tp != &sip_tp_udp)
        json_object_set_new(j, "transport", json_string(d->peer.tp->name));
    size_t n = json_dumpb(j, out, cap, JSON_COMPACT);
    json_decref(j);
    if (n == 0 || n >= cap)
        return -1;
    out[n] = '\0';
    return (int)n;
}

static const char *state_str(json_t *j, const char *key, size_t max)
{
    const char *v = json_string_value(json_object_get(j, key));
    return v && strlen(v) <= max ? v : NULL;
}

/* A From/To header for a saved dialog: <uri>;tag=tag (no tag when empty). NULL when the URI does
 * not parse. */
static osip_from_t *state_party(const char *uri, const char *tag)
{
    osip_uri_t *u = sip_parse_uri(uri);
    osip_from_t *f = NULL;
    if (!u || osip_from_init(&f) != 0) {
        osip_uri_free(u);
        return NULL;
    }
    osip_from_set_url(f, u);
    if (tag && *tag)
        osip_from_set_tag(f, osip_strdup(tag));
    return f;
}

int sip_bye_saved(struct sip_stack *s, const char *state, char *err, size_t errlen)
{
    if (!s || s->closing || !state) {
        sip_set_err(err, errlen, "sip: no stack");
        return -1;
    }
    if (strlen(state) > SIP_MAX_STATE) {
        sip_set_err(err, errlen, "sip: saved dialog state too long");
        return -1;
    }
    json_t *j = json_loads(state, 0, NULL);
    const char *cid = state_str(j, "call_id", SIP_MAX_TOKEN),
               *ltag = state_str(j, "local_tag", SIP_MAX_TOKEN),
               *rtag = state_str(j, "remote_tag", SIP_MAX_TOKEN),
               *luri = state_str(j, "local_uri", SIP_MAX_URI),
               *ruri = state_str(j, "remote_uri", SIP_MAX_URI),
               *target = state_str(j, "remote_target", SIP_MAX_URI),
               *ip = state_str(j, "peer_ip", INET_ADDRSTRLEN),
               *transport = state_str(j, "transport", 16);
    json_t *routes = json_object_get(j, "route_set");
    json_int_t cseq = json_integer_value(json_object_get(j, "cseq"));
    json_int_t port = json_integer_value(json_object_get(j, "peer_port"));
    struct sockaddr_in peer;
    osip_message_t *b = NULL;
    const char *why = NULL;
    char lid[72], tp[24];
    if (j && cid && transport && strcmp(transport, "UDP") != 0) {
        log_info("msg=sip_bye_saved_skipped call_id=%s transport=%s reason=connection_gone",
                 sip_logsafe(cid, lid, sizeof(lid)), sip_logsafe(transport, tp, sizeof(tp)));
        json_decref(j);
        return 0;
    }
    if (!j || !cid || !*cid || !ltag || !rtag || !luri || !ruri || !target || !ip)
        why = "a field is missing";
    else if (cseq < 1 || cseq > 0x7fffffff)
        why = "bad cseq";
    else if (port < 1 || port > 65535 || !sip_is_ipv4(ip) || uv_ip4_addr(ip, (int)port, &peer) != 0)
        why = "bad peer address";
    else if (routes && (!json_is_array(routes) || json_array_size(routes) > SIP_MAX_ROUTES))
        why = "bad route set";
    if (!why) {
        b = sip_msg_request("BYE");
        osip_uri_t *u = sip_parse_uri(target);
        b->from = state_party(luri, ltag);
        b->to = state_party(ruri, rtag);
        if (!u || !b->from || !b->to) {
            osip_uri_free(u);
            why = "a URI does not parse";
        } else {
            osip_message_set_uri(b, u);
        }
    }
    for (size_t i = 0; !why && i < json_array_size(routes); i++) {
        const char *r = json_string_value(json_array_get(routes, i));
        if (!r || strlen(r) > SIP_MAX_URI || osip_message_set_route(b, r) != 0)
            why = "a route does not parse";
    }
    if (why) {
        sip_set_err(err, errlen, "sip: saved dialog state unusable: %s", why);
        osip_message_free(b);
        json_decref(j);
        return -1;
    }
    char host[INET_ADDRSTRLEN], cs[32];
    sip_tp_udp_local(s, &peer, host, sizeof(host));
    sip_msg_set_via(&sip_tp_udp, host, s->port, b);
    osip_message_set_call_id(b, cid);
    snprintf(cs, sizeof(cs), "%u BYE", (unsigned)cseq);
    osip_message_set_cseq(b, cs);
    osip_message_set_header(b, "Max-Forwards", "70");
    osip_message_set_header(b, "User-Agent", s->user_agent);
    log_info("msg=sip_bye_saved call_id=%s dst=%s:%d", sip_logsafe(cid, lid, sizeof(lid)), ip,
             (int)port);
    json_decref(j);
    struct sip_peer to = sip_peer_udp(&peer);
    osip_transaction_t *tr = s->n_tx < s->max_tx ? sip_tx_new(s, NICT, b, &to, NULL) : NULL;
    if (tr) {
        sip_tx_send(s, tr, b);
    } else {
        sip_tp_send_msg(s, b, &to);
        osip_message_free(b);
    }
    sip_stack_kick(s);
    return 0;
}
