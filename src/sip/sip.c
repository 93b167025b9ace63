/* SIP over UDP: the socket and one timer on the libuv loop, libosip2's transaction state machines
 * (INVITE/non-INVITE server; INVITE client for our outgoing calls, non-INVITE client for our BYE
 * and CANCEL), and our own dialog layer on top.
 *
 * How it runs: every datagram is parsed by osip_parse(); a message that belongs to a live
 * transaction goes to it; a new request is answered here: we pick the response at once, create
 * the server transaction and queue both the request and our response on it, so libosip2 sends,
 * retransmits and absorbs. After every input, timer tick or application call, pump() runs the
 * libosip2 timers that expired, the state machines of the transactions that have events, our 2xx
 * retransmissions, frees the transactions libosip2 declared dead, and only then calls the
 * application back (from a queue), so the application may call any sip_dialog_* function from its
 * callbacks.
 *
 * The transactions are libosip2's, but not in its lists: under load some 6,000 linger (a
 * non-INVITE server transaction lives 64*T1 = 32 s after its answer), and libosip2 walks all of
 * them per lookup (osip_find_transaction_and_add_event), per timer scan, per state machine pass
 * and per new transaction. We keep them in a hash table (tx_key: RFC 3261 17.1.3 / 17.2.3
 * matching), a list of those with events (run_work) and a heap of their timers (run_timers), so
 * the cost of a datagram does not grow with them.
 *
 * Outgoing calls (UAC): the INVITE goes through an ICT (retransmissions, Timer B, the ACK of a
 * non-2xx final answer); its 2xx ends the ICT, so the ACK for it is ours (RFC 3261 13.2.2.4) and
 * is re-sent for every retransmitted 2xx, which no transaction takes any more. A host name in the
 * Request-URI is resolved on libuv's thread pool (uv_getaddrinfo), bounded by 64*T1.
 *
 * Incoming calls count against their source address from the INVITE until the ACK of our 2xx
 * (or their end): an address that answers nothing cannot hold more than max_setup_per_source
 * calls (and their media ports) for the 64*T1 the 2xx is retransmitted. An answered dialog can
 * be written down (sip_dialog_state) and ended by a later run (sip_bye_saved). */
#include "sip/sip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <osip2/osip.h>
#include <osipparser2/osip_parser.h>

#include "core/log.h"
#include "core/mem.h"

#define SIP_MAX_DATAGRAM 65535
#define SIP_MAX_TOKEN 256 /* Call-ID and tags: longer ones get 400 */
#define SIP_MAX_SDP 16384 /* bodies larger than this get 413 */
#define SIP_MAX_REASON 64
#define SIP_BUCKETS 1024
#define SIP_ALLOW "INVITE, ACK, BYE, CANCEL, OPTIONS"
#define SIP_DEFAULT_MAX_DIALOGS 1000
#define SIP_MAX_TIMER_MS 3600000u
#define SIP_MAX_INDEX (1u << 20)
#define SIP_MAX_URI 1024   /* request_uri and from_uri of an outgoing call */
#define SIP_MAX_DISPLAY 64 /* its display name, cut beyond */
#define SIP_RING_T1 360    /* an outgoing call rings at most 360*T1 (3 min), then CANCEL, 408 */
#define SIP_SRC_BUCKETS 256
/* Why 5 s: a source at its limit has calls that are not acknowledged; a well-behaved one finishes
 * set-up in milliseconds, so a short wait is enough for it, and one that never acknowledges gets
 * nothing more by retrying sooner. */
#define SIP_SETUP_RETRY_AFTER "5"
/* Log lines about refused sources per window: a flood must not flood the log too. */
#define SIP_LOG_WINDOW_MS 10000
#define SIP_LOG_BURST 10
#define SIP_MAX_STATE 8192 /* a saved dialog state (sip_dialog_state) */
#define SIP_MAX_ROUTES 16  /* route set entries in a saved state */

enum dlg_state {
    DLG_EARLY,     /* INVITE received, no final answer yet */
    DLG_ANSWERED,  /* 200 sent, retransmitting it until the ACK */
    DLG_CONFIRMED, /* ACK received */
    DLG_BYE_SENT,  /* our BYE in flight */
    DLG_ENDED,     /* waiting in the note queue to be freed */
    DLG_RESOLVING, /* outgoing: looking up the host of the Request-URI */
    DLG_CALLING,   /* outgoing: INVITE sent, no final answer yet (then DLG_CONFIRMED) */
};

struct resolve;

/* Our data on every transaction (libosip2's "your_instance"). */
struct txinfo {
    struct sip_stack *s;
    struct sip_dialog *d; /* the dialog whose d->ist, d->ict or d->bye_tr this is, else NULL */
    struct sockaddr_in peer;
    osip_transaction_t *tr;
    char *key;                    /* in the transaction index under this key, else NULL */
    uint32_t hash;                /* of key */
    struct txinfo *hnext;         /* index chain */
    struct txinfo *wprev, *wnext; /* the work list, while queued */
    struct txinfo *aprev, *anext; /* every transaction not yet freed */
    bool queued;                  /* has events waiting in its fifo (on the work list) */
    bool legacy;                  /* no key: in s->legacy instead of the index */
    bool dead;                    /* killed or abandoned, waiting for free_dead() */
    uint64_t due;                 /* its earliest running libosip2 timer (see tx_due) */
    size_t heap_pos;              /* 1 + its place in the timer heap, 0: not there */
};

struct sip_dialog {
    struct sip_stack *s;
    struct sip_dialog *hnext;       /* hash chain */
    struct sip_dialog *prev, *next; /* every dialog */
    enum dlg_state state;
    char *call_id, *local_tag, *remote_tag;
    char log_id[72]; /* the Call-ID, made safe for a log line */
    uint32_t invite_cseq, remote_cseq, local_cseq;
    osip_message_t *invite;     /* copy of the INVITE: From, To, Contact, Record-Route */
    osip_transaction_t *ist;    /* the INVITE server transaction while it lives */
    osip_transaction_t *bye_tr; /* our BYE while it lives */
    char *answer_sdp;   /* our SDP in the call (outgoing calls: our offer narrowed by the answer) */
    osip_message_t *ok; /* our last 2xx to an INVITE, for retransmission */
    uint32_t ok_cseq;
    bool rtx, bye_pending, announced;
    uint64_t rtx_next, rtx_end; /* ms on the monotonic clock */
    unsigned rtx_iv;
    struct sockaddr_in peer;
    char peer_ip[INET_ADDRSTRLEN];
    int peer_port;
    char local_host[INET_ADDRSTRLEN];
    void *data;
    /* Outgoing calls only (uac): d->invite is then our INVITE (its top Via once sent). */
    bool uac, provisional, cancel_sent;
    int cancel_code;           /* 487: the application cancelled; 408: rang too long; else 0 */
    osip_transaction_t *ict;   /* our INVITE client transaction while it decides the call */
    struct resolve *res;       /* the name lookup in flight */
    struct sockaddr_in origin; /* where the Request-URI resolved to */
    osip_message_t *ack;       /* our ACK for the 2xx, re-sent for its retransmissions */
    osip_uri_t *target;        /* remote target: the Contact of the 2xx */
    osip_list_t routes;        /* route set: the Record-Route of the 2xx, reversed */
    uint64_t deadline;         /* ms on the monotonic clock, 0: none (see run_deadlines) */
    /* Incoming calls: counted against their source address until our 2xx is acknowledged. */
    bool in_setup, unacked;
    uint32_t setup_ip; /* network order */
};

/* Incoming calls in set-up from one source address (see max_setup_per_source). */
struct src_count {
    struct src_count *next;
    uint32_t ip; /* network order */
    size_t n;
};

/* A name lookup for an outgoing call; d is NULL once the call is gone (the lookup still owns
 * this and one reference to the stack until its callback). */
struct resolve {
    uv_getaddrinfo_t req;
    struct sip_stack *s;
    struct sip_dialog *d;
    int port;
};

enum note_kind {
    NOTE_INVITE,
    NOTE_ESTABLISHED,
    NOTE_ENDED,
    NOTE_FREE,
    NOTE_PROGRESS,
    NOTE_ANSWERED,
    NOTE_FAILED,
};

struct note {
    struct note *next;
    enum note_kind kind;
    struct sip_dialog *d;
    bool remote, cancelled;
    int code;  /* NOTE_PROGRESS, NOTE_FAILED */
    char *sdp; /* NOTE_ANSWERED (owned) */
};

struct sip_stack {
    uv_loop_t *loop;
    uv_udp_t udp;
    uv_timer_t timer;
    int open_handles; /* the socket, the timer and every name lookup in flight */
    bool closing, pumping, again;
    osip_t *osip;
    struct sip_callbacks cb;
    char addr[INET_ADDRSTRLEN];
    int port;
    char *user_agent;
    size_t max_dialogs, max_tx;
    unsigned t1, t2, t4;
    struct sip_dialog *buckets[SIP_BUCKETS];
    struct sip_dialog *dialogs;
    size_t n_dialogs, n_tx, n_rtx, n_deadline;
    osip_transaction_t **dead;
    size_t n_dead, cap_dead;
    /* The transactions are ours, not in libosip2's lists (see tx_new): our index (tx_key), the
     * ones without key (legacy[ICT..NIST]), the ones with events to run (the work list), the
     * ones with a timer running (a min-heap on due), and all of them. */
    struct txinfo **tx_index;
    size_t tx_mask;
    osip_list_t legacy[4];
    struct txinfo *work_head, *work_tail;
    struct txinfo **heap;
    size_t n_heap, cap_heap;
    struct txinfo *all;
    struct note *notes_head, *notes_tail;
    size_t max_setup; /* per source address, 0: no limit */
    struct src_count *src[SIP_SRC_BUCKETS];
    struct log_limit setup_log; /* the "source over its limit" line */
    char rbuf[SIP_MAX_DATAGRAM + 16]; /* zeroed slack after the text, as in sdp.c */
};

static void pump(struct sip_stack *s);

/* ---- small helpers ---- */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof(b) || uv_random(NULL, NULL, b, nbytes, 0, NULL) != 0)
        die("uv_random failed");
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

/* Input-driven text in a log line: printable, no spaces or quotes, bounded. */
static const char *logsafe(const char *in, char *buf, size_t cap)
{
    if (!in)
        return "-";
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        buf[n++] = (*in > ' ' && *in < 127 && *in != '"' && *in != '\\') ? *in : '?';
    buf[n] = '\0';
    return buf;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (str_to_u64(s, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static const char *tag_of(osip_from_t *h)
{
    osip_generic_param_t *p = NULL;
    if (!h || osip_from_get_tag(h, &p) != 0 || !p || !p->gvalue)
        return NULL;
    return p->gvalue;
}

/* The whole Call-ID ("number@host"); -1 when absent or longer than cap allows. */
static int callid_of(const osip_message_t *m, char *out, size_t cap)
{
    const osip_call_id_t *c = m->call_id;
    if (!c || !c->number)
        return -1;
    int n = c->host ? snprintf(out, cap, "%s@%s", c->number, c->host)
                    : snprintf(out, cap, "%s", c->number);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static bool is_ipv4(const char *s)
{
    struct in_addr a;
    return s && inet_pton(AF_INET, s, &a) == 1;
}

static const char *reason_for(int code)
{
    switch (code) {
    case 100:
        return "Trying";
    case 180:
        return "Ringing";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Unsupported URI Scheme";
    case 420:
        return "Bad Extension";
    case 480:
        return "Temporarily Unavailable";
    case 481:
        return "Call/Transaction Does Not Exist";
    case 486:
        return "Busy Here";
    case 487:
        return "Request Terminated";
    case 488:
        return "Not Acceptable Here";
    case 491:
        return "Request Pending";
    case 500:
        return "Server Internal Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 603:
        return "Decline";
    default:
        break;
    }
    if (code < 300)
        return "OK";
    if (code < 400)
        return "Redirection";
    if (code < 500)
        return "Client Error";
    if (code < 600)
        return "Server Error";
    return "Global Failure";
}

/* libosip2 clone functions with the signature osip_list_clone() calls. */
static int via_clone(void *a, void **b)
{
    return osip_via_clone(a, (osip_via_t **)b);
}

static int from_clone(void *a, void **b)
{
    return osip_from_clone(a, (osip_from_t **)b);
}

static void route_free(void *r)
{
    osip_from_free(r);
}

/* The first body when it is SDP. *bad: 415 (not SDP), 413 (too large), else 0. */
static const char *sdp_body(const osip_message_t *m, int *bad)
{
    *bad = 0;
    osip_body_t *b = osip_list_get(&m->bodies, 0);
    if (!b || !b->body || b->length == 0)
        return NULL;
    const osip_content_type_t *ct = m->content_type;
    if (ct && (!ct->type || !ct->subtype || strcasecmp(ct->type, "application") != 0 ||
               strcasecmp(ct->subtype, "sdp") != 0)) {
        *bad = 415;
        return NULL;
    }
    if (b->length > SIP_MAX_SDP) {
        *bad = 413;
        return NULL;
    }
    return b->body;
}

/* ---- sending ---- */

struct send_req {
    uv_udp_send_t req;
    char data[];
};

static void on_sent(uv_udp_send_t *req, int status)
{
    free(req);
}

static int send_raw(struct sip_stack *s, const char *buf, size_t len, const struct sockaddr_in *to)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)to);
    if (rc == UV_EAGAIN) {
        /* The socket buffer is full: queue a copy rather than lose it. */
        struct send_req *r = xmalloc(sizeof(*r) + len);
        memcpy(r->data, buf, len);
        b = uv_buf_init(r->data, (unsigned)len);
        rc = uv_udp_send(&r->req, &s->udp, &b, 1, (const struct sockaddr *)to, on_sent);
        if (rc < 0)
            free(r);
    }
    if (rc < 0)
        log_debug("msg=sip_send_failed error=%s", uv_strerror(rc));
    return rc < 0 ? rc : 0;
}

static int send_msg(struct sip_stack *s, osip_message_t *m, const struct sockaddr_in *to)
{
    char *buf = NULL;
    size_t len = 0;
    if (osip_message_to_str(m, &buf, &len) != 0 || !buf)
        return -1;
    int rc = send_raw(s, buf, len, to);
    osip_free(buf);
    return rc;
}

/* libosip2's transport: every transaction sends to the address its request came from (or, for
 * our BYE, to where the INVITE came from; for our INVITE and CANCEL, to the address of the
 * Request-URI, resolved before the transaction starts). Why not the Via or Contact host: they may
 * be names (a DNS lookup would block the loop) or addresses behind a NAT; the source address is
 * neither. */
static int osip_send_cb(osip_transaction_t *tr, osip_message_t *m, char *host, int port, int sock)
{
    struct txinfo *info = tr ? osip_transaction_get_your_instance(tr) : NULL;
    if (!info)
        return -1;
    /* UDP: a lost datagram is the retransmission timers' business, not a transaction error. */
    send_msg(info->s, m, &info->peer);
    return 0;
}

/* ---- messages ---- */

static osip_message_t *make_response(struct sip_stack *s, const osip_message_t *req, int code,
                                     const char *reason, const char *to_tag)
{
    osip_message_t *r = NULL;
    if (osip_message_init(&r) != 0)
        die("out of memory in osip_message_init");
    osip_message_set_version(r, osip_strdup("SIP/2.0"));
    osip_message_set_status_code(r, code);
    osip_message_set_reason_phrase(r, osip_strdup(reason ? reason : reason_for(code)));
    osip_list_clone(&req->vias, &r->vias, via_clone);
    if (req->from)
        osip_from_clone(req->from, &r->from);
    if (req->to) {
        osip_to_clone(req->to, &r->to);
        /* Every response but 100 carries our To tag (RFC 3261 8.2.6.2). */
        if (r->to && code > 100 && !tag_of(r->to)) {
            char tag[17];
            if (!to_tag) {
                random_hex(tag, 8);
                to_tag = tag;
            }
            osip_to_set_tag(r->to, osip_strdup(to_tag));
        }
    }
    if (req->call_id)
        osip_call_id_clone(req->call_id, &r->call_id);
    if (req->cseq)
        osip_cseq_clone(req->cseq, &r->cseq);
    osip_message_set_header(r, "Server", s->user_agent);
    return r;
}

/* A response in dialog d to its INVITE or a later request: our tag, and for 18x/2xx to an
 * INVITE the Contact and (initial INVITE only) the Record-Route set (RFC 3261 12.1.1). */
static osip_message_t *dialog_response(struct sip_dialog *d, const osip_message_t *req, int code,
                                       const char *reason)
{
    struct sip_stack *s = d->s;
    osip_message_t *r = make_response(s, req, code, reason, d->local_tag);
    if (code > 100 && code < 300 && MSG_IS_INVITE(req)) {
        char contact[INET_ADDRSTRLEN + 32];
        snprintf(contact, sizeof(contact), "<sip:%s:%d>", d->local_host, s->port);
        osip_message_set_contact(r, contact);
        osip_message_set_header(r, "Allow", SIP_ALLOW);
        if (req == d->invite)
            osip_list_clone(&req->record_routes, &r->record_routes, from_clone);
    }
    return r;
}

static void set_sdp(osip_message_t *m, const char *sdp)
{
    osip_message_set_content_type(m, "application/sdp");
    osip_message_set_body(m, sdp, strlen(sdp));
}

/* Our Via with a fresh branch (RFC 3261 8.1.1.7). */
static void set_via(struct sip_stack *s, const char *host, osip_message_t *m)
{
    char branch[25], via[INET_ADDRSTRLEN + 96];
    random_hex(branch, 12);
    snprintf(via, sizeof(via), "SIP/2.0/UDP %s:%d;rport;branch=z9hG4bK%s", host, s->port, branch);
    osip_message_set_via(m, via);
}

static void set_our_via(struct sip_dialog *d, osip_message_t *m)
{
    set_via(d->s, d->local_host, m);
}

static osip_message_t *new_request(const char *method)
{
    osip_message_t *m = NULL;
    if (osip_message_init(&m) != 0)
        die("out of memory in osip_message_init");
    osip_message_set_method(m, osip_strdup(method));
    osip_message_set_version(m, osip_strdup("SIP/2.0"));
    return m;
}

/* A request in our outgoing dialog d (RFC 3261 12.2.1.1): Request-URI = target (NULL: our
 * INVITE's), Route = routes, From = our INVITE's From (our tag), To = its To with remote_tag. */
static osip_message_t *uac_request(struct sip_dialog *d, const char *method, uint32_t cseq,
                                   const char *remote_tag, const osip_uri_t *target,
                                   const osip_list_t *routes)
{
    osip_message_t *inv = d->invite, *r = new_request(method);
    osip_uri_t *uri = NULL;
    if (osip_uri_clone(target ? target : inv->req_uri, &uri) != 0 || !uri)
        die("out of memory in osip_uri_clone");
    osip_message_set_uri(r, uri);
    set_our_via(d, r);
    osip_from_clone(inv->from, &r->from);
    osip_to_clone(inv->to, &r->to);
    if (r->to && remote_tag && *remote_tag)
        osip_to_set_tag(r->to, osip_strdup(remote_tag));
    osip_call_id_clone(inv->call_id, &r->call_id);
    char cs[48];
    snprintf(cs, sizeof(cs), "%u %s", (unsigned)cseq, method);
    osip_message_set_cseq(r, cs);
    if (routes)
        osip_list_clone(routes, &r->routes, from_clone);
    osip_message_set_header(r, "Max-Forwards", "70");
    osip_message_set_header(r, "User-Agent", d->s->user_agent);
    return r;
}

/* The CANCEL of our INVITE (RFC 3261 9.1): its Request-URI, top Via (same branch), Route, From,
 * To (no tag), Call-ID and CSeq number, with the method CANCEL. */
static osip_message_t *make_cancel(struct sip_dialog *d)
{
    osip_message_t *inv = d->invite, *c = new_request("CANCEL");
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
    osip_list_clone(&inv->routes, &c->routes, from_clone);
    osip_message_set_header(c, "Max-Forwards", "70");
    osip_message_set_header(c, "User-Agent", d->s->user_agent);
    return c;
}

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

/* A BYE in dialog d (RFC 3261 12.2.1.1): Request-URI = the remote target (Contact of the INVITE),
 * Route = its Record-Route set, From = the INVITE's To with our tag, To = its From. In our
 * outgoing dialogs: see uac_request. */
static osip_message_t *make_bye(struct sip_dialog *d)
{
    if (d->uac)
        return uac_request(d, "BYE", ++d->local_cseq, d->remote_tag, d->target, &d->routes);
    osip_message_t *inv = d->invite, *b = new_request("BYE");
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
    set_our_via(d, b);
    osip_from_clone(inv->to, &b->from);
    if (b->from && !tag_of(b->from))
        osip_from_set_tag(b->from, osip_strdup(d->local_tag));
    osip_to_clone(inv->from, &b->to);
    osip_call_id_clone(inv->call_id, &b->call_id);
    char cseq[32];
    snprintf(cseq, sizeof(cseq), "%u BYE", (unsigned)++d->local_cseq);
    osip_message_set_cseq(b, cseq);
    osip_list_clone(&inv->record_routes, &b->routes, from_clone);
    osip_message_set_header(b, "Max-Forwards", "70");
    osip_message_set_header(b, "User-Agent", d->s->user_agent);
    return b;
}

/* ---- transactions ---- */

static void tv_in(struct timeval *tv, unsigned ms)
{
    osip_gettimeofday(tv, NULL);
    tv->tv_sec += ms / 1000;
    tv->tv_usec += (long)(ms % 1000) * 1000;
    if (tv->tv_usec >= 1000000) {
        tv->tv_sec++;
        tv->tv_usec -= 1000000;
    }
}

/* libosip2 fixes T1 at compile time; its timer lengths live in the transaction contexts, so a
 * configured T1 is applied right after creation (before any event ran). */
static void tx_set_timers(struct sip_stack *s, osip_transaction_t *tr)
{
    int t1 = (int)s->t1, t4 = (int)s->t4;
    if (tr->ctx_type == IST && tr->ist_context) {
        if (tr->ist_context->timer_g_length > 0) {
            tr->ist_context->timer_g_length = t1;
            tr->ist_context->timer_i_length = t4;
        }
        tr->ist_context->timer_h_length = 64 * t1;
    } else if (tr->ctx_type == NIST && tr->nist_context) {
        if (tr->nist_context->timer_j_length > 0)
            tr->nist_context->timer_j_length = 64 * t1;
    } else if (tr->ctx_type == ICT && tr->ict_context) {
        /* Timer A starts at T1 and doubles without the T2 cap (RFC 3261 17.1.1.2); B = 64*T1;
         * D (absorbing retransmitted final answers) 32 s at the default T1. */
        if (tr->ict_context->timer_a_length > 0) {
            tr->ict_context->timer_a_length = t1;
            tv_in(&tr->ict_context->timer_a_start, s->t1);
        }
        if (tr->ict_context->timer_d_length > 0)
            tr->ict_context->timer_d_length = 64 * t1;
        tr->ict_context->timer_b_length = 64 * t1;
        tv_in(&tr->ict_context->timer_b_start, 64 * s->t1);
    } else if (tr->ctx_type == NICT && tr->nict_context) {
        if (tr->nict_context->timer_e_length > 0)
            tr->nict_context->timer_e_length = t1;
        if (tr->nict_context->timer_k_length > 0)
            tr->nict_context->timer_k_length = t4;
        tr->nict_context->timer_f_length = 64 * t1;
        tv_in(&tr->nict_context->timer_f_start, 64 * s->t1);
    }
}

/* The key of a transaction in our index (RFC 3261 17.1.3, 17.2.3): a server transaction by the
 * branch and sent-by of the top Via and the method (an ACK belongs to the INVITE's; a CANCEL has
 * its own), a client transaction by its branch and CSeq method. The same fields, compared the same
 * way, as libosip2's matching (a missing port is 5060). Returns the length, or -1 when the branch
 * is not RFC 3261's (then libosip2's own matching decides, over s->legacy: see tx_find). */
static int tx_key(bool server, osip_via_t *via, const char *method, char *out, size_t cap)
{
    osip_generic_param_t *b = NULL;
    if (!via || !method || osip_via_param_get_byname(via, "branch", &b) != 0 || !b || !b->gvalue ||
        strncmp(b->gvalue, "z9hG4bK", 7) != 0)
        return -1;
    int n;
    if (server) {
        if (!via->host)
            return -1;
        if (strcmp(method, "ACK") == 0)
            method = "INVITE";
        n = snprintf(out, cap, "S\n%s\n%s\n%s\n%s", b->gvalue, via->host,
                     via->port ? via->port : "5060", method);
    } else {
        n = snprintf(out, cap, "C\n%s\n%s", b->gvalue, method);
    }
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static uint32_t hash_str(const char *p)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static void index_add(struct sip_stack *s, struct txinfo *info, const char *key)
{
    info->key = xstrdup(key);
    info->hash = hash_str(key);
    struct txinfo **b = &s->tx_index[info->hash & s->tx_mask];
    info->hnext = *b;
    *b = info;
}

/* The list of transactions without key that libosip2 would search for m (as
 * __osip_find_transaction picks one): INVITE and ACK go to INVITE server transactions. */
static osip_list_t *legacy_list(struct sip_stack *s, const osip_message_t *m)
{
    bool invite = strcmp(m->cseq->method, "INVITE") == 0;
    if (MSG_IS_REQUEST(m))
        return &s->legacy[invite || strcmp(m->cseq->method, "ACK") == 0 ? IST : NIST];
    return &s->legacy[invite ? ICT : NICT];
}

/* Takes a transaction out of the index or the legacy list (no-op when in neither). */
static void index_remove(struct sip_stack *s, struct txinfo *info)
{
    if (!info)
        return;
    if (info->legacy) {
        osip_list_t *l = &s->legacy[info->tr->ctx_type];
        osip_list_iterator_t it;
        int pos = 0;
        for (void *p = osip_list_get_first(l, &it); osip_list_iterator_has_elem(it);
             p = osip_list_get_next(&it), pos++)
            if (p == info->tr) {
                osip_list_remove(l, pos);
                break;
            }
        info->legacy = false;
    }
    if (!info->key)
        return;
    struct txinfo **pp = &s->tx_index[info->hash & s->tx_mask];
    while (*pp && *pp != info)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = info->hnext;
    free(info->key);
    info->key = NULL;
    info->hnext = NULL;
}

/* The live transaction an incoming message belongs to: from the index, or for a message without
 * key from libosip2's own (linear) matching over the transactions without key — only those can
 * match it (libosip2 never matches an RFC 3261 branch with an older one). */
static osip_transaction_t *tx_find(struct sip_stack *s, osip_event_t *evt)
{
    osip_message_t *m = evt->sip;
    char key[512];
    if (tx_key(MSG_IS_REQUEST(m), osip_list_get(&m->vias, 0), m->cseq->method, key, sizeof(key)) <
        0) {
        osip_list_t *l = legacy_list(s, m);
        return osip_list_size(l) > 0 ? osip_transaction_find(l, evt) : NULL;
    }
    uint32_t h = hash_str(key);
    for (struct txinfo *i = s->tx_index[h & s->tx_mask]; i; i = i->hnext)
        if (i->hash == h && strcmp(i->key, key) == 0)
            return i->tr;
    return NULL;
}

static void work_unlink(struct sip_stack *s, struct txinfo *info)
{
    if (!info->queued)
        return;
    if (info->wprev)
        info->wprev->wnext = info->wnext;
    else
        s->work_head = info->wnext;
    if (info->wnext)
        info->wnext->wprev = info->wprev;
    else
        s->work_tail = info->wprev;
    info->wprev = info->wnext = NULL;
    info->queued = false;
}

/* Puts tr on the work list: the events in its fifo run in the next pump round (run_work). */
static void tx_queue(struct sip_stack *s, struct txinfo *info)
{
    s->again = true;
    if (info->queued)
        return;
    info->queued = true;
    info->wprev = s->work_tail;
    info->wnext = NULL;
    if (s->work_tail)
        s->work_tail->wnext = info;
    else
        s->work_head = info;
    s->work_tail = info;
}

/* Gives tr an event. Takes evt. */
static void tx_add_event(struct sip_stack *s, osip_transaction_t *tr, osip_event_t *evt)
{
    osip_transaction_add_event(tr, evt);
    tx_queue(s, osip_transaction_get_your_instance(tr));
}

/* ---- libosip2's timers, driven from a heap ----
 *
 * libosip2 keeps each timer as an absolute time in the transaction's context and finds the
 * expired ones by scanning all its transactions (osip_timers_*_execute). Ours are not in its
 * lists, so we keep them in a min-heap on the earliest timer each has running — the same
 * timers in the same states as libosip2's __osip_*_need_timer_*_event — and hand libosip2 only
 * the expired ones to scan (run_timers). */

/* A libosip2 timer (its clock, osip_gettimeofday) in ms, rounded so that the timer has expired
 * (libosip2 wants now > timer) once that ms is reached; UINT64_MAX when not running. */
static uint64_t timer_ms(const struct timeval *tv)
{
    if (tv->tv_sec < 0)
        return UINT64_MAX;
    return (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000 + 1;
}

static uint64_t osip_now_ms(void)
{
    struct timeval tv;
    osip_gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* The earliest timer tr has running in its state (RFC 3261 17: A, B in Calling, D in Completed;
 * G, H in Completed, I in Confirmed; E, F in Trying and Proceeding, K in Completed; J in
 * Completed), or UINT64_MAX. */
static uint64_t tx_due(const osip_transaction_t *tr)
{
    switch (tr->ctx_type) {
    case ICT:
        if (!tr->ict_context)
            break;
        if (tr->state == ICT_CALLING)
            return min_u64(timer_ms(&tr->ict_context->timer_a_start),
                           timer_ms(&tr->ict_context->timer_b_start));
        if (tr->state == ICT_COMPLETED)
            return timer_ms(&tr->ict_context->timer_d_start);
        break;
    case IST:
        if (!tr->ist_context)
            break;
        if (tr->state == IST_COMPLETED)
            return min_u64(timer_ms(&tr->ist_context->timer_g_start),
                           timer_ms(&tr->ist_context->timer_h_start));
        if (tr->state == IST_CONFIRMED)
            return timer_ms(&tr->ist_context->timer_i_start);
        break;
    case NICT:
        if (!tr->nict_context)
            break;
        if (tr->state == NICT_TRYING || tr->state == NICT_PROCEEDING)
            return min_u64(timer_ms(&tr->nict_context->timer_e_start),
                           timer_ms(&tr->nict_context->timer_f_start));
        if (tr->state == NICT_COMPLETED)
            return timer_ms(&tr->nict_context->timer_k_start);
        break;
    case NIST:
        if (tr->nist_context && tr->state == NIST_COMPLETED)
            return timer_ms(&tr->nist_context->timer_j_start);
        break;
    }
    return UINT64_MAX;
}

static void heap_swap(struct sip_stack *s, size_t a, size_t b)
{
    struct txinfo *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_pos = a + 1;
    s->heap[b]->heap_pos = b + 1;
}

/* Restores the heap order around position i. */
static void heap_fix(struct sip_stack *s, size_t i)
{
    while (i > 0 && s->heap[(i - 1) / 2]->due > s->heap[i]->due) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n_heap && s->heap[l]->due < s->heap[m]->due)
            m = l;
        if (r < s->n_heap && s->heap[r]->due < s->heap[m]->due)
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_remove(struct sip_stack *s, struct txinfo *info)
{
    if (!info->heap_pos)
        return;
    size_t i = info->heap_pos - 1;
    info->heap_pos = 0;
    if (i != --s->n_heap) {
        s->heap[i] = s->heap[s->n_heap];
        s->heap[i]->heap_pos = i + 1;
        heap_fix(s, i);
    }
}

/* Files tr in the heap under the earliest timer it has running now (after its events ran). */
static void tx_schedule(struct sip_stack *s, struct txinfo *info)
{
    uint64_t due = info->dead ? UINT64_MAX : tx_due(info->tr);
    if (due == UINT64_MAX) {
        heap_remove(s, info);
        return;
    }
    info->due = due;
    if (!info->heap_pos) {
        if (s->n_heap == s->cap_heap) {
            s->cap_heap = s->cap_heap ? 2 * s->cap_heap : 64;
            s->heap = xrealloc(s->heap, s->cap_heap * sizeof(*s->heap));
        }
        s->heap[s->n_heap] = info;
        info->heap_pos = ++s->n_heap;
    }
    heap_fix(s, info->heap_pos - 1);
}

/* Lets libosip2 queue the events of the timers that expired (its own checks, on a list of just
 * those transactions), which run_work() then runs and reschedules. */
static void run_timers(struct sip_stack *s)
{
    uint64_t now = osip_now_ms();
    if (!s->n_heap || s->heap[0]->due > now)
        return;
    osip_list_t *lists[4] = {&s->osip->osip_ict_transactions, &s->osip->osip_ist_transactions,
                             &s->osip->osip_nict_transactions, &s->osip->osip_nist_transactions};
    while (s->n_heap && s->heap[0]->due <= now) {
        struct txinfo *info = s->heap[0];
        heap_remove(s, info);
        osip_list_add(lists[info->tr->ctx_type], info->tr, 0);
        tx_queue(s, info);
    }
    osip_timers_ict_execute(s->osip);
    osip_timers_ist_execute(s->osip);
    osip_timers_nict_execute(s->osip);
    osip_timers_nist_execute(s->osip);
    for (int i = 0; i < 4; i++)
        while (osip_list_size(lists[i]) > 0)
            osip_list_remove(lists[i], 0);
}

/* Runs the events of the transactions that have some (the work list), and only those. A
 * transaction killed meanwhile stays valid until free_dead(). */
static void run_work(struct sip_stack *s)
{
    struct txinfo *info;
    while ((info = s->work_head)) {
        work_unlink(s, info);
        osip_transaction_t *tr = info->tr;
        osip_event_t *evt;
        while ((evt = osip_fifo_tryget(tr->transactionff)))
            osip_transaction_execute(tr, evt);
        tx_schedule(s, info);
    }
}

/* Out of every list, then freed (libosip2's part by the caller). */
static void txinfo_free(struct sip_stack *s, struct txinfo *info)
{
    if (!info)
        return;
    index_remove(s, info);
    work_unlink(s, info);
    heap_remove(s, info);
    if (info->aprev)
        info->aprev->anext = info->anext;
    else
        s->all = info->anext;
    if (info->anext)
        info->anext->aprev = info->aprev;
    free(info);
}

/* A killed or abandoned transaction: found by nothing any more, freed by free_dead(). */
static void tx_retire(struct sip_stack *s, struct txinfo *info)
{
    if (!info)
        return;
    info->dead = true;
    index_remove(s, info);
    heap_remove(s, info);
    work_unlink(s, info);
}

/* A new transaction. libosip2 files it in its list of that kind, where every lookup, timer scan
 * and state machine pass would walk it (and appending walks the whole list): we take it out at
 * once (the list is empty otherwise, so both are O(1)) and keep it in our own structures. */
static osip_transaction_t *tx_new(struct sip_stack *s, osip_fsm_type_t type, osip_message_t *req,
                                  const struct sockaddr_in *peer, struct sip_dialog *d)
{
    osip_transaction_t *tr = NULL;
    if (osip_transaction_init(&tr, type, s->osip, req) != 0 || !tr)
        return NULL;
    osip_remove_transaction(s->osip, tr);
    struct txinfo *info = xcalloc(1, sizeof(*info));
    info->s = s;
    info->d = d;
    info->peer = *peer;
    info->tr = tr;
    info->anext = s->all;
    if (s->all)
        s->all->aprev = info;
    s->all = info;
    osip_transaction_set_your_instance(tr, info);
    char key[512];
    if (tr->cseq &&
        tx_key(type == IST || type == NIST, tr->topvia, tr->cseq->method, key, sizeof(key)) >= 0) {
        index_add(s, info, key);
    } else {
        osip_list_add(&s->legacy[type], tr, -1);
        info->legacy = true;
    }
    tx_set_timers(s, tr);
    s->n_tx++;
    s->again = true;
    return tr;
}

/* Queues an outgoing message (owned by the transaction from now on). */
static void tx_send(struct sip_stack *s, osip_transaction_t *tr, osip_message_t *m)
{
    osip_event_t *evt = osip_new_outgoing_sipmessage(m);
    if (!evt) {
        osip_message_free(m);
        return;
    }
    tx_add_event(s, tr, evt);
}

/* Answers a request without transaction (malformed, or too many transactions). */
static void reply_stateless(struct sip_stack *s, const osip_message_t *req,
                            const struct sockaddr_in *to, int code)
{
    osip_message_t *r = make_response(s, req, code, NULL, NULL);
    send_msg(s, r, to);
    osip_message_free(r);
}

/* Answers a new request with resp through a fresh server transaction, which then absorbs the
 * request's retransmissions (and, for INVITE, the ACK). Takes evt and resp. */
static void reply_new(struct sip_stack *s, osip_event_t *evt, const struct sockaddr_in *from,
                      osip_message_t *resp)
{
    osip_fsm_type_t type = MSG_IS_INVITE(evt->sip) ? IST : NIST;
    osip_transaction_t *tr = tx_new(s, type, evt->sip, from, NULL);
    if (!tr) {
        send_msg(s, resp, from);
        osip_message_free(resp);
        osip_event_free(evt);
        return;
    }
    tx_add_event(s, tr, evt);
    tx_send(s, tr, resp);
}

static void reply(struct sip_stack *s, osip_event_t *evt, const struct sockaddr_in *from, int code,
                  const char *to_tag)
{
    osip_message_t *r = make_response(s, evt->sip, code, NULL, to_tag);
    if (code == 405 || code == 501 || (code == 200 && MSG_IS_OPTIONS(evt->sip)))
        osip_message_set_header(r, "Allow", SIP_ALLOW);
    if (code == 415 || (code == 200 && MSG_IS_OPTIONS(evt->sip)))
        osip_message_set_header(r, "Accept", "application/sdp");
    reply_new(s, evt, from, r);
}

/* ---- dialogs ---- */

static size_t bucket_of(const char *call_id)
{
    return hash_str(call_id) % SIP_BUCKETS;
}

/* An outgoing call becomes a dialog requests can reach with its 2xx (no early-dialog requests). */
static bool reachable(const struct sip_dialog *d)
{
    return d->state != DLG_ENDED && d->state != DLG_RESOLVING && d->state != DLG_CALLING;
}

static struct sip_dialog *find_dialog(struct sip_stack *s, const char *call_id,
                                      const char *local_tag, const char *remote_tag)
{
    for (struct sip_dialog *d = s->buckets[bucket_of(call_id)]; d; d = d->hnext)
        if (reachable(d) && strcmp(d->call_id, call_id) == 0 &&
            strcmp(d->local_tag, local_tag) == 0 && strcmp(d->remote_tag, remote_tag) == 0)
            return d;
    return NULL;
}

/* The dialog an INVITE (without To tag) created: for its retransmissions and its CANCEL. */
static struct sip_dialog *find_by_invite(struct sip_stack *s, const char *call_id,
                                         const char *remote_tag, uint32_t cseq)
{
    for (struct sip_dialog *d = s->buckets[bucket_of(call_id)]; d; d = d->hnext)
        if (!d->uac && d->state != DLG_ENDED && d->invite_cseq == cseq &&
            strcmp(d->call_id, call_id) == 0 && strcmp(d->remote_tag, remote_tag) == 0)
            return d;
    return NULL;
}

/* A dialog in the table: the parts both directions share. Takes invite. */
static struct sip_dialog *dialog_add(struct sip_stack *s, osip_message_t *invite,
                                     const char *call_id, const char *local_tag,
                                     const char *remote_tag)
{
    struct sip_dialog *d = xcalloc(1, sizeof(*d));
    d->s = s;
    d->invite = invite;
    d->call_id = xstrdup(call_id);
    d->local_tag = xstrdup(local_tag);
    d->remote_tag = xstrdup(remote_tag);
    osip_list_init(&d->routes);
    logsafe(call_id, d->log_id, sizeof(d->log_id));
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

static struct sip_dialog *dialog_new(struct sip_stack *s, osip_message_t *inv, const char *call_id,
                                     const char *remote_tag, uint32_t cseq,
                                     const struct sockaddr_in *from)
{
    osip_message_t *copy = NULL;
    if (osip_message_clone(inv, &copy) != 0 || !copy)
        return NULL;
    char tag[17];
    random_hex(tag, 8);
    struct sip_dialog *d = dialog_add(s, copy, call_id, tag, remote_tag);
    d->state = DLG_EARLY;
    d->invite_cseq = d->remote_cseq = cseq;
    d->peer = *from;
    uv_ip4_name(from, d->peer_ip, sizeof(d->peer_ip));
    d->peer_port = ntohs(from->sin_port);
    /* Bound to every interface, we know our address only from how the caller reached us. */
    const char *host = s->addr;
    if (strcmp(s->addr, "0.0.0.0") == 0 && inv->req_uri && is_ipv4(inv->req_uri->host))
        host = inv->req_uri->host;
    str_copy(d->local_host, sizeof(d->local_host), host);
    return d;
}

static void detach(osip_transaction_t *tr)
{
    struct txinfo *info = tr ? osip_transaction_get_your_instance(tr) : NULL;
    if (info)
        info->d = NULL;
}

static void rtx_start(struct sip_dialog *d)
{
    if (!d->rtx)
        d->s->n_rtx++;
    d->rtx = true;
    d->rtx_iv = d->s->t1;
    uint64_t now = now_ms();
    d->rtx_next = now + d->rtx_iv;
    d->rtx_end = now + 64 * (uint64_t)d->s->t1;
}

static void rtx_stop(struct sip_dialog *d)
{
    if (d->rtx)
        d->s->n_rtx--;
    d->rtx = false;
}

static void deadline_set(struct sip_dialog *d, uint64_t at)
{
    if (!d->deadline)
        d->s->n_deadline++;
    d->deadline = at ? at : 1;
}

static void deadline_clear(struct sip_dialog *d)
{
    if (d->deadline)
        d->s->n_deadline--;
    d->deadline = 0;
}

/* Forgets the name lookup of d; its callback still comes (cancelled or not) and frees it. */
static void resolve_detach(struct sip_dialog *d)
{
    if (!d->res)
        return;
    d->res->d = NULL;
    uv_cancel((uv_req_t *)&d->res->req);
    d->res = NULL;
}

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

/* The call is set up (its 2xx acknowledged) or over: it no longer counts against its source. */
static void setup_leave(struct sip_dialog *d)
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
    if (!log_limit_allow(&s->setup_log, (int64_t)now_ms() * 1000, SIP_LOG_WINDOW_MS * 1000,
                         SIP_LOG_BURST, &before))
        return;
    char lid[72];
    log_warn("msg=sip_invite_refused reason=max_setup_per_source src=%s:%d limit=%zu call_id=%s "
             "suppressed=%llu",
             src, port, s->max_setup, logsafe(cid, lid, sizeof(lid)), (unsigned long long)before);
}

static void dialog_free(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    setup_leave(d);
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
    detach(d->ist);
    detach(d->bye_tr);
    detach(d->ict);
    rtx_stop(d);
    deadline_clear(d);
    resolve_detach(d);
    osip_message_free(d->invite);
    osip_message_free(d->ok);
    osip_message_free(d->ack);
    osip_uri_free(d->target);
    osip_list_special_free(&d->routes, route_free);
    free(d->answer_sdp);
    free(d->call_id);
    free(d->local_tag);
    free(d->remote_tag);
    free(d);
    s->n_dialogs--;
}

static struct note *push_note(struct sip_stack *s, enum note_kind kind, struct sip_dialog *d,
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

/* Ends d: the application hears of it (on_ended) from the note queue, then d is freed. */
static void dialog_end(struct sip_dialog *d, bool remote, bool cancelled, const char *why)
{
    if (d->state == DLG_ENDED)
        return;
    rtx_stop(d);
    d->state = DLG_ENDED;
    log_info("msg=sip_dialog_ended call_id=%s reason=%s", d->log_id, why);
    push_note(d->s, NOTE_ENDED, d, remote, cancelled);
}

static void start_bye(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    osip_message_t *bye = make_bye(d);
    osip_transaction_t *tr = tx_new(s, NICT, bye, &d->peer, d);
    log_info("msg=sip_bye_sent call_id=%s", d->log_id);
    if (!tr) {
        send_msg(s, bye, &d->peer);
        osip_message_free(bye);
        dialog_end(d, false, false, "local_bye");
        return;
    }
    d->state = DLG_BYE_SENT;
    d->bye_tr = tr;
    tx_send(s, tr, bye);
}

/* An outgoing call ends before its answer: on_failed(code) from the note queue, then d is freed.
 * A transaction it still has lives on alone (an ICT absorbing retransmitted final answers). */
static void dialog_fail(struct sip_dialog *d, int code, const char *why)
{
    if (d->state == DLG_ENDED)
        return;
    d->state = DLG_ENDED;
    deadline_clear(d);
    resolve_detach(d);
    detach(d->ict);
    d->ict = NULL;
    log_info("msg=sip_call_failed call_id=%s code=%d reason=%s", d->log_id, code, why);
    push_note(d->s, NOTE_FAILED, d, false, false)->code = code;
}

/* Our BYE got its final response (or timed out): the dialog is over. */
static void bye_done(struct sip_dialog *d)
{
    if (d->state == DLG_BYE_SENT)
        dialog_end(d, false, false, "local_bye");
}

/* ---- libosip2 callbacks ---- */

static void push_dead(struct sip_stack *s, osip_transaction_t *tr)
{
    if (s->n_dead == s->cap_dead) {
        s->cap_dead = s->cap_dead ? 2 * s->cap_dead : 16;
        s->dead = xrealloc(s->dead, s->cap_dead * sizeof(*s->dead));
    }
    s->dead[s->n_dead++] = tr;
}

/* A transaction reached TERMINATED. It is out of our lookups now but freed only after the state
 * machines ran (free_dead): run_work() may still be running its events. */
static void on_kill(int type, osip_transaction_t *tr)
{
    struct sip_stack *s = osip_get_application_context(tr->config);
    struct txinfo *info = osip_transaction_get_your_instance(tr);
    if (!info || info->dead)
        return;
    tx_retire(s, info);
    if (info->d) {
        struct sip_dialog *d = info->d;
        info->d = NULL;
        if (d->ist == tr)
            d->ist = NULL;
        if (d->bye_tr == tr) {
            d->bye_tr = NULL;
            bye_done(d);
        }
        if (d->ict == tr) { /* ended without deciding the call (it could not build its ACK) */
            d->ict = NULL;
            if (d->state == DLG_CALLING)
                dialog_fail(d, 503, "transaction_ended");
        }
    }
    push_dead(s, tr);
}

static void on_nict_final(int type, osip_transaction_t *tr, osip_message_t *m)
{
    struct txinfo *info = osip_transaction_get_your_instance(tr);
    if (info && info->d && info->d->bye_tr == tr)
        bye_done(info->d);
}

static void free_dead(struct sip_stack *s)
{
    for (size_t i = 0; i < s->n_dead; i++) {
        txinfo_free(s, osip_transaction_get_your_instance(s->dead[i]));
        osip_transaction_free2(s->dead[i]);
        s->n_tx--;
    }
    s->n_dead = 0;
}

/* ---- outgoing calls ---- */

/* host:port of a SIP URI when the host is an IPv4 literal (no lookup on the loop); -1 else. */
static int uri_addr(const osip_uri_t *u, struct sockaddr_in *out)
{
    uint32_t port = 5060;
    if (!u || !is_ipv4(u->host) || (u->port && (parse_u32(u->port, 65535, &port) < 0 || !port)))
        return -1;
    return uv_ip4_addr(u->host, (int)port, out) == 0 ? 0 : -1;
}

static void set_peer(struct sip_dialog *d, const struct sockaddr_in *a)
{
    d->peer = *a;
    uv_ip4_name(a, d->peer_ip, sizeof(d->peer_ip));
    d->peer_port = ntohs(a->sin_port);
}

/* Our address as seen on the way to `to`: the listen address, or when bound to every interface
 * the one the kernel picks for that route (connect() on a UDP socket sends nothing). */
static void local_host_for(struct sip_stack *s, const struct sockaddr_in *to, char *out, size_t cap)
{
    str_copy(out, cap, s->addr);
    if (strcmp(s->addr, "0.0.0.0") != 0)
        return;
    str_copy(out, cap, "127.0.0.1");
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0 && a.sin_family == AF_INET &&
        a.sin_addr.s_addr != htonl(INADDR_ANY))
        uv_ip4_name(&a, out, cap);
    close(fd);
}

/* Drops a transaction that would otherwise wait forever (an ICT in Proceeding has no timer).
 * Only from pump(), after the state machines ran. */
static void tx_abandon(struct sip_stack *s, osip_transaction_t *tr)
{
    detach(tr);
    tx_retire(s, osip_transaction_get_your_instance(tr));
    push_dead(s, tr);
}

/* CANCEL through its own NICT; the INVITE gets its final answer (487) within 64*T1 or we give
 * up on it (RFC 3261 9.1). */
static void send_cancel(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    osip_message_t *c = make_cancel(d);
    osip_transaction_t *tr = tx_new(s, NICT, c, &d->peer, NULL);
    if (tr) {
        tx_send(s, tr, c);
    } else {
        send_msg(s, c, &d->peer);
        osip_message_free(c);
    }
    d->cancel_sent = true;
    deadline_set(d, now_ms() + 64 * (uint64_t)s->t1);
    log_info("msg=sip_cancel_sent call_id=%s", d->log_id);
}

/* Sends the INVITE of d (to d->peer) through a new ICT. */
static void start_invite(struct sip_dialog *d)
{
    struct sip_stack *s = d->s;
    local_host_for(s, &d->peer, d->local_host, sizeof(d->local_host));
    set_our_via(d, d->invite);
    char contact[INET_ADDRSTRLEN + 32];
    snprintf(contact, sizeof(contact), "<sip:%s:%d>", d->local_host, s->port);
    osip_message_set_contact(d->invite, contact);
    osip_message_t *copy = NULL;
    osip_transaction_t *tr = NULL;
    if (osip_message_clone(d->invite, &copy) == 0 && copy)
        tr = tx_new(s, ICT, copy, &d->peer, d);
    if (!tr) {
        osip_message_free(copy);
        dialog_fail(d, 503, "no_transaction");
        return;
    }
    d->ict = tr;
    d->state = DLG_CALLING;
    tx_send(s, tr, copy);
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
            set_peer(d, &a);
            deadline_clear(d);
            start_invite(d);
        } else {
            log_info("msg=sip_resolve_failed call_id=%s error=%s", d->log_id,
                     status ? uv_strerror(status) : "no_ipv4_address");
            dialog_fail(d, 503, "resolve_failed");
        }
        pump(s);
    }
    uv_freeaddrinfo(ai);
    free(r);
    if (--s->open_handles == 0)
        free(s);
}

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
    const char *tag = tag_of(m->to);
    if (tag && strcmp(tag, d->remote_tag) != 0) { /* an early dialog (RFC 3261 12.1.2) */
        free(d->remote_tag);
        d->remote_tag = xstrdup(tag);
    }
    if (!d->provisional) {
        d->provisional = true;
        if (d->cancel_code && !d->cancel_sent)
            send_cancel(d); /* it was waiting for this */
        else if (!d->cancel_sent)
            deadline_set(d, now_ms() + SIP_RING_T1 * (uint64_t)s->t1);
    }
    if (m->status_code > 100) {
        log_info("msg=sip_call_progress call_id=%s code=%d", d->log_id, m->status_code);
        push_note(s, NOTE_PROGRESS, d, false, false)->code = m->status_code;
    }
}

/* The 2xx to our INVITE: the dialog is confirmed (RFC 3261 12.1.2, 13.2.2.4). */
static void uac_answered(struct sip_dialog *d, const osip_message_t *m)
{
    struct sip_stack *s = d->s;
    const char *tag = tag_of(m->to);
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
        set_peer(d, &a);
    deadline_clear(d);
    detach(d->ict); /* it ends right after this callback */
    d->ict = NULL;
    d->state = DLG_CONFIRMED;
    d->ack = uac_request(d, "ACK", d->invite_cseq, d->remote_tag, d->target, &d->routes);
    send_msg(s, d->ack, &d->peer);
    int bad;
    const char *sdp = sdp_body(m, &bad);
    char *sess = sdp ? session_after_answer(d->answer_sdp, sdp) : NULL;
    if (sess) {
        free(d->answer_sdp);
        d->answer_sdp = sess;
    }
    log_info("msg=sip_call_answered call_id=%s code=%d", d->log_id, m->status_code);
    push_note(s, NOTE_ANSWERED, d, false, false)->sdp = xstrdup(sdp);
}

/* libosip2's ICT: a response to our INVITE, or Timer B. */
static void on_ict(int type, osip_transaction_t *tr, osip_message_t *m)
{
    struct txinfo *info = osip_transaction_get_your_instance(tr);
    struct sip_dialog *d = info ? info->d : NULL;
    if (!d || d->ict != tr || d->state != DLG_CALLING)
        return;
    if (type == OSIP_ICT_STATUS_TIMEOUT) {
        dialog_fail(d, d->cancel_code ? d->cancel_code : 408, "timeout");
        return;
    }
    if (!m)
        return;
    if (type == OSIP_ICT_STATUS_1XX_RECEIVED)
        uac_provisional(d, m);
    else if (type == OSIP_ICT_STATUS_2XX_RECEIVED)
        uac_answered(d, m);
    else /* libosip2 has sent the ACK */
        dialog_fail(d, d->cancel_code ? d->cancel_code : m->status_code, "rejected");
}

/* A 2xx to one of our INVITEs that no transaction took (the ICT ends with the first one): a
 * retransmission gets our ACK again; one from another fork of the call (another To tag) is
 * acknowledged and hung up at once, best effort (RFC 3261 13.2.2.4). */
static void handle_stray_2xx(struct sip_stack *s, const osip_message_t *m, const char *cid,
                             uint32_t cseq)
{
    const char *ltag = tag_of(m->from), *rtag = tag_of(m->to);
    if (!MSG_IS_STATUS_2XX(m) || !ltag || strcmp(m->cseq->method, "INVITE") != 0)
        return;
    struct sip_dialog *d = s->buckets[bucket_of(cid)];
    while (d && !(d->uac && d->ack && d->invite_cseq == cseq && strcmp(d->call_id, cid) == 0 &&
                  strcmp(d->local_tag, ltag) == 0))
        d = d->hnext;
    if (!d)
        return;
    if (strcmp(d->remote_tag, rtag ? rtag : "") == 0) {
        send_msg(s, d->ack, &d->peer);
        return;
    }
    osip_contact_t *c = osip_list_get(&m->contacts, 0);
    const osip_uri_t *target = c && c->url && c->url->host ? c->url : NULL;
    struct sockaddr_in to = d->origin;
    if (target)
        uri_addr(target, &to);
    log_info("msg=sip_fork_answer_dropped call_id=%s", d->log_id);
    osip_message_t *ack = uac_request(d, "ACK", cseq, rtag, target, NULL);
    osip_message_t *bye = uac_request(d, "BYE", cseq + 1, rtag, target, NULL);
    send_msg(s, ack, &to);
    send_msg(s, bye, &to);
    osip_message_free(ack);
    osip_message_free(bye);
}

/* Outgoing calls waiting too long: for their name lookup (64*T1: 503), ringing (360*T1: CANCEL,
 * then 408), or for the final answer after our CANCEL (64*T1: the call is over, RFC 3261 9.1). */
static void run_deadlines(struct sip_stack *s)
{
    if (!s->n_deadline)
        return;
    uint64_t now = now_ms();
    for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
        if (!d->deadline || now < d->deadline)
            continue;
        deadline_clear(d);
        if (d->state == DLG_RESOLVING) {
            dialog_fail(d, 503, "resolve_timeout");
        } else if (d->state == DLG_CALLING && !d->cancel_sent) {
            log_info("msg=sip_ring_timeout call_id=%s", d->log_id);
            d->cancel_code = 408;
            send_cancel(d);
        } else if (d->state == DLG_CALLING) {
            if (d->ict)
                tx_abandon(s, d->ict);
            d->ict = NULL;
            dialog_fail(d, d->cancel_code, "cancel_timeout");
        }
    }
}

/* ---- requests ---- */

static void handle_reinvite(struct sip_stack *s, osip_event_t *evt, const struct sockaddr_in *from,
                            const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    const char *rtag = tag_of(m->from);
    struct sip_dialog *d = find_dialog(s, cid, tag_of(m->to), rtag ? rtag : "");
    if (!d) {
        reply(s, evt, from, 481, NULL);
        return;
    }
    if (d->ok && cseq == d->ok_cseq) { /* retransmission after our 2xx ended its transaction */
        send_msg(s, d->ok, &d->peer);
        osip_event_free(evt);
        return;
    }
    if (cseq <= d->remote_cseq) {
        reply(s, evt, from, 500, d->local_tag);
        return;
    }
    d->remote_cseq = cseq;
    if (d->state != DLG_CONFIRMED) {
        reply(s, evt, from, 491, d->local_tag);
        return;
    }
    int bad;
    const char *offer = sdp_body(m, &bad);
    if (bad) {
        reply(s, evt, from, bad, d->local_tag);
        return;
    }
    /* A new offer gets our previous answer again (same codec, address and port; the direction
     * follows the offer, e.g. hold); an INVITE without offer gets it as our offer. */
    char answer[4096];
    if (offer && sdp_build_reanswer(offer, d->answer_sdp, answer, sizeof(answer)) < 0) {
        log_info("msg=sip_reinvite_refused call_id=%s", d->log_id);
        reply(s, evt, from, 488, d->local_tag);
        return;
    }
    if (offer) {
        free(d->answer_sdp);
        d->answer_sdp = xstrdup(answer);
    }
    osip_message_t *r = dialog_response(d, m, 200, NULL);
    set_sdp(r, d->answer_sdp);
    osip_message_free(d->ok);
    d->ok = NULL;
    osip_message_clone(r, &d->ok);
    d->ok_cseq = cseq;
    d->peer = *from;
    if (d->ok)
        rtx_start(d);
    log_info("msg=sip_reinvite_answered call_id=%s", d->log_id);
    reply_new(s, evt, from, r);
}

static void handle_invite(struct sip_stack *s, osip_event_t *evt, const struct sockaddr_in *from,
                          const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    if (tag_of(m->to)) {
        handle_reinvite(s, evt, from, cid, cseq);
        return;
    }
    const char *rtag = tag_of(m->from) ? tag_of(m->from) : "";
    struct sip_dialog *old = find_by_invite(s, cid, rtag, cseq);
    if (old) {
        /* A retransmission that outlived the INVITE transaction (it ends with our 2xx). */
        if (old->ok && old->ok_cseq == cseq)
            send_msg(s, old->ok, &old->peer);
        osip_event_free(evt);
        return;
    }
    const char *scheme = m->req_uri->scheme;
    if (!scheme || (strcasecmp(scheme, "sip") != 0 && strcasecmp(scheme, "sips") != 0)) {
        reply(s, evt, from, 416, NULL);
        return;
    }
    osip_header_t *require = NULL;
    if (osip_message_header_get_byname(m, "require", 0, &require) >= 0 && require) {
        osip_message_t *r = make_response(s, m, 420, NULL, NULL);
        if (require->hvalue && strlen(require->hvalue) < SIP_MAX_TOKEN)
            osip_message_set_header(r, "Unsupported", require->hvalue);
        reply_new(s, evt, from, r);
        return;
    }
    int bad;
    sdp_body(m, &bad);
    if (bad) {
        reply(s, evt, from, bad, NULL);
        return;
    }
    char src[INET_ADDRSTRLEN], lid[72];
    uv_ip4_name(from, src, sizeof(src));
    if (s->n_dialogs >= s->max_dialogs) {
        log_warn("msg=sip_invite_refused reason=max_dialogs call_id=%s src=%s:%d",
                 logsafe(cid, lid, sizeof(lid)), src, ntohs(from->sin_port));
        reply(s, evt, from, 503, NULL);
        return;
    }
    if (s->max_setup && setup_count(s, from->sin_addr.s_addr) >= s->max_setup) {
        log_setup_refused(s, src, ntohs(from->sin_port), cid);
        osip_message_t *r = make_response(s, m, 503, NULL, NULL);
        osip_message_set_header(r, "Retry-After", SIP_SETUP_RETRY_AFTER);
        reply_new(s, evt, from, r);
        return;
    }
    struct sip_dialog *d = dialog_new(s, m, cid, rtag, cseq, from);
    osip_transaction_t *tr = d ? tx_new(s, IST, m, from, d) : NULL;
    if (!tr) {
        if (d)
            dialog_free(d);
        reply_stateless(s, m, from, 500);
        osip_event_free(evt);
        return;
    }
    d->ist = tr;
    setup_enter(d, from->sin_addr.s_addr);
    char user[64], fromuri[128];
    char *furi = NULL;
    if (m->from->url)
        osip_uri_to_str(m->from->url, &furi);
    log_info("msg=sip_invite call_id=%s user=%s from=%s src=%s:%d", d->log_id,
             logsafe(m->req_uri->username, user, sizeof(user)),
             logsafe(furi, fromuri, sizeof(fromuri)), d->peer_ip, d->peer_port);
    osip_free(furi);
    tx_add_event(s, tr, evt);
    tx_send(s, tr, make_response(s, m, 100, NULL, NULL));
    push_note(s, NOTE_INVITE, d, false, false);
}

static void handle_ack(struct sip_stack *s, osip_message_t *m, const char *cid, uint32_t cseq)
{
    const char *ltag = tag_of(m->to), *rtag = tag_of(m->from);
    struct sip_dialog *d = ltag ? find_dialog(s, cid, ltag, rtag ? rtag : "") : NULL;
    if (!d || !d->rtx || cseq != d->ok_cseq)
        return; /* an ACK for nothing we wait for: dropped (RFC 3261 17.2.3) */
    rtx_stop(d);
    if (d->state != DLG_ANSWERED)
        return; /* the ACK of a re-INVITE */
    setup_leave(d);
    if (d->bye_pending) {
        start_bye(d);
        return;
    }
    d->state = DLG_CONFIRMED;
    log_info("msg=sip_established call_id=%s", d->log_id);
    push_note(s, NOTE_ESTABLISHED, d, false, false);
}

static void handle_bye(struct sip_stack *s, osip_event_t *evt, const struct sockaddr_in *from,
                       const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    const char *ltag = tag_of(m->to), *rtag = tag_of(m->from);
    struct sip_dialog *d = ltag ? find_dialog(s, cid, ltag, rtag ? rtag : "") : NULL;
    if (!d) {
        reply(s, evt, from, 481, NULL);
        return;
    }
    if (cseq < d->remote_cseq) {
        reply(s, evt, from, 500, d->local_tag);
        return;
    }
    d->remote_cseq = cseq;
    reply(s, evt, from, 200, d->local_tag);
    switch (d->state) {
    case DLG_EARLY: /* BYE in the early dialog: like CANCEL (RFC 3261 15.1.2) */
        if (d->ist)
            tx_send(s, d->ist, dialog_response(d, d->invite, 487, NULL));
        dialog_end(d, true, true, "remote_bye_early");
        break;
    case DLG_BYE_SENT: /* both hung up at once: ours is the hang-up the application asked for */
        dialog_end(d, false, false, "bye_glare");
        break;
    default:
        dialog_end(d, true, false, "remote_bye");
        break;
    }
}

static void handle_cancel(struct sip_stack *s, osip_event_t *evt, const struct sockaddr_in *from,
                          const char *cid, uint32_t cseq)
{
    osip_message_t *m = evt->sip;
    const char *rtag = tag_of(m->from);
    struct sip_dialog *d = find_by_invite(s, cid, rtag ? rtag : "", cseq);
    if (!d) {
        reply(s, evt, from, 481, NULL);
        return;
    }
    reply(s, evt, from, 200, d->local_tag);
    /* After our final answer a CANCEL changes nothing (RFC 3261 9.2). */
    if (d->state == DLG_EARLY && d->ist) {
        tx_send(s, d->ist, dialog_response(d, d->invite, 487, NULL));
        dialog_end(d, true, true, "cancel");
    }
}

/* Checks what every later step relies on. Returns 0, -1 when a 400 is due, -2 to drop. */
static int check_message(const osip_message_t *m, char *cid, size_t cidcap, uint32_t *cseq)
{
    const osip_via_t *via = osip_list_get(&m->vias, 0);
    if (!via || !via->host || !via->protocol)
        return -2;
    if (!m->cseq || !m->cseq->number || !m->cseq->method || !m->from || !m->to || !m->from->url ||
        !m->to->url || callid_of(m, cid, cidcap) < 0)
        return -1;
    if (parse_u32(m->cseq->number, 0x7fffffffu, cseq) < 0)
        return -1;
    const char *ft = tag_of(m->from), *tt = tag_of(m->to);
    if ((ft && strlen(ft) > SIP_MAX_TOKEN) || (tt && strlen(tt) > SIP_MAX_TOKEN))
        return -1;
    if (MSG_IS_REQUEST(m) &&
        (!m->sip_method || !m->req_uri || strcmp(m->sip_method, m->cseq->method) != 0))
        return -1;
    return 0;
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

static void handle_request(struct sip_stack *s, osip_event_t *evt, const struct sockaddr_in *from,
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
        reply_stateless(s, m, from, 503);
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
        reply(s, evt, from, 200, NULL);
    else
        reply(s, evt, from, method_known(m->sip_method) ? 405 : 501, NULL);
}

static void input(struct sip_stack *s, const char *buf, size_t len, const struct sockaddr_in *from)
{
    /* Runts are keep-alives (CRLF, RFC 5626) or noise: nothing to answer. */
    if (s->closing || len < 16 || len > SIP_MAX_DATAGRAM)
        return;
    memmove(s->rbuf, buf, len);
    memset(s->rbuf + len, 0, sizeof(s->rbuf) - SIP_MAX_DATAGRAM);
    osip_event_t *evt = osip_parse(s->rbuf, len);
    if (!evt || !evt->sip) {
        osip_event_free(evt);
        return;
    }
    osip_message_t *m = evt->sip;
    char cid[SIP_MAX_TOKEN + 1];
    uint32_t cseq = 0;
    int ok = check_message(m, cid, sizeof(cid), &cseq);
    if (ok < 0) {
        if (ok == -1 && MSG_IS_REQUEST(m) && m->sip_method && strcmp(m->sip_method, "ACK") != 0)
            reply_stateless(s, m, from, 400);
        osip_event_free(evt);
        return;
    }
    osip_transaction_t *tr = tx_find(s, evt);
    if (tr) {
        tx_add_event(s, tr, evt);
    } else if (MSG_IS_RESPONSE(m)) {
        handle_stray_2xx(s, m, cid, cseq);
        osip_event_free(evt); /* a late response to a transaction that is gone */
    } else {
        handle_request(s, evt, from, cid, cseq);
    }
    pump(s);
}

/* ---- the engine ---- */

static void deliver_invite(struct sip_stack *s, struct sip_dialog *d)
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
        .sdp = sdp_body(m, &bad),
    };
    d->announced = true;
    s->cb.on_invite(s->cb.ctx, d, &inv);
    osip_free(ruri);
    osip_free(furi);
    osip_free(turi);
}

static void run_notes(struct sip_stack *s)
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
                deliver_invite(s, d);
            break;
        case NOTE_ESTABLISHED:
            if (d->state == DLG_CONFIRMED && s->cb.on_established)
                s->cb.on_established(s->cb.ctx, d);
            break;
        case NOTE_ENDED:
            /* A dialog the application never saw ends silently. */
            if (d->announced && s->cb.on_ended)
                s->cb.on_ended(s->cb.ctx, d, n->remote, n->cancelled);
            dialog_free(d);
            break;
        case NOTE_FREE:
            dialog_free(d);
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
            dialog_free(d);
            break;
        }
        free(n->sdp);
        free(n);
    }
}

/* RFC 3261 13.3.1.4: the UAS core (not the transaction) retransmits its 2xx, T1 doubling up to
 * T2, until the ACK; after 64*T1 without one it ends the dialog with a BYE. */
static void run_rtx(struct sip_stack *s)
{
    if (!s->n_rtx)
        return;
    uint64_t now = now_ms();
    for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
        if (!d->rtx)
            continue;
        if (now >= d->rtx_end) {
            rtx_stop(d);
            d->unacked = true;
            log_info("msg=sip_ack_timeout call_id=%s", d->log_id);
            bool ours = d->bye_pending;
            osip_message_t *bye = make_bye(d);
            osip_transaction_t *tr = tx_new(s, NICT, bye, &d->peer, NULL);
            if (tr) {
                tx_send(s, tr, bye);
            } else {
                send_msg(s, bye, &d->peer);
                osip_message_free(bye);
            }
            dialog_end(d, !ours, false, "ack_timeout");
        } else if (now >= d->rtx_next) {
            send_msg(s, d->ok, &d->peer);
            d->rtx_iv = d->rtx_iv * 2 > s->t2 ? s->t2 : d->rtx_iv * 2;
            d->rtx_next = now + d->rtx_iv;
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* Sleeps until the earliest libosip2 timer, 2xx retransmission or deadline. */
static void rearm(struct sip_stack *s)
{
    uint64_t ms = UINT64_MAX;
    if (s->n_heap) {
        uint64_t now = osip_now_ms();
        ms = s->heap[0]->due > now ? s->heap[0]->due - now : 0;
    }
    if (s->n_rtx || s->n_deadline) {
        uint64_t now = now_ms();
        for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
            uint64_t next = UINT64_MAX;
            if (d->rtx)
                next = d->rtx_next < d->rtx_end ? d->rtx_next : d->rtx_end;
            if (d->deadline && d->deadline < next)
                next = d->deadline;
            if (next == UINT64_MAX)
                continue;
            uint64_t wait = next > now ? next - now : 0;
            if (wait < ms)
                ms = wait;
        }
    }
    if (s->again)
        ms = 0;
    if (ms > SIP_MAX_TIMER_MS)
        ms = SIP_MAX_TIMER_MS;
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void pump(struct sip_stack *s)
{
    if (s->pumping) {
        s->again = true;
        return;
    }
    s->pumping = true;
    /* Bounded: whatever is left after these rounds runs on the next (immediate) timer tick. */
    for (int round = 0; round < 16; round++) {
        s->again = false;
        run_timers(s);
        run_work(s);
        run_rtx(s);
        run_deadlines(s);
        free_dead(s);
        run_notes(s);
        if (!s->again)
            break;
    }
    s->pumping = false;
    if (!s->closing)
        rearm(s);
}

/* ---- the socket ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sip_stack *s = h->data;
    *buf = uv_buf_init(s->rbuf, SIP_MAX_DATAGRAM);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    if (nread <= 0 || !addr || addr->sa_family != AF_INET || (flags & UV_UDP_PARTIAL))
        return;
    input(h->data, buf->base, (size_t)nread, (const struct sockaddr_in *)addr);
}

static void on_closed(uv_handle_t *h)
{
    struct sip_stack *s = h->data;
    if (--s->open_handles == 0)
        free(s);
}

/* ---- the API ---- */

static void osip_trace_sink(const char *file, int line, osip_trace_level_t level, const char *fmt,
                            va_list ap)
{
}

static void quiet_osip(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    /* libosip2 traces every parse error to stderr: input-driven noise, and no rate limit. Our own
     * log lines say what happened to each message that matters. */
    osip_trace_initialize_func(END_TRACE_LEVEL, osip_trace_sink);
    for (int l = TRACE_LEVEL0; l < END_TRACE_LEVEL; l++)
        osip_trace_disable_level((osip_trace_level_t)l);
}

struct sip_stack *sip_create(uv_loop_t *loop, const struct sip_config *cfg,
                             const struct sip_callbacks *cb, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    if (!cfg || !cfg->addr || !is_ipv4(cfg->addr) || cfg->port < 0 || cfg->port > 65535 ||
        uv_ip4_addr(cfg->addr, cfg->port, &sa) != 0) {
        snprintf(err, errlen, "sip: listen address must be an IPv4 address and a port 0-65535");
        return NULL;
    }
    if (cfg->t1_ms < 0 || cfg->t1_ms > 10000) {
        snprintf(err, errlen, "sip: t1_ms must be 0 (500) to 10000");
        return NULL;
    }
    quiet_osip();
    struct sip_stack *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    if (cb)
        s->cb = *cb;
    str_copy(s->addr, sizeof(s->addr), cfg->addr);
    s->user_agent = xstrdup(cfg->user_agent && *cfg->user_agent ? cfg->user_agent : "conferenced");
    s->max_dialogs = cfg->max_dialogs > 0 ? (size_t)cfg->max_dialogs : SIP_DEFAULT_MAX_DIALOGS;
    s->max_tx = 8 * s->max_dialogs + 1024;
    s->max_setup = cfg->max_setup_per_source > 0 ? (size_t)cfg->max_setup_per_source : 0;
    s->t1 = cfg->t1_ms > 0 ? (unsigned)cfg->t1_ms : 500;
    s->t2 = 8 * s->t1;
    s->t4 = 10 * s->t1;
    size_t buckets = 1024;
    while (buckets < s->max_tx && buckets < SIP_MAX_INDEX)
        buckets *= 2;
    s->tx_index = xcalloc(buckets, sizeof(*s->tx_index));
    s->tx_mask = buckets - 1;
    for (int i = 0; i < 4; i++)
        osip_list_init(&s->legacy[i]);
    uv_udp_init(loop, &s->udp);
    s->udp.data = s;
    s->open_handles = 1;
    int rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&sa, 0);
    struct sockaddr_in bound;
    int blen = sizeof(bound);
    if (rc == 0)
        rc = uv_udp_getsockname(&s->udp, (struct sockaddr *)&bound, &blen);
    if (rc == 0)
        rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
    if (rc != 0) {
        snprintf(err, errlen, "sip: cannot listen on %s:%d: %s", cfg->addr, cfg->port,
                 uv_strerror(rc));
        free(s->user_agent);
        free(s->tx_index);
        s->closing = true;
        uv_close((uv_handle_t *)&s->udp, on_closed);
        return NULL;
    }
    s->port = ntohs(bound.sin_port);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles++;
    if (osip_init(&s->osip) != 0)
        die("out of memory in osip_init");
    osip_set_application_context(s->osip, s);
    osip_set_cb_send_message(s->osip, osip_send_cb);
    osip_set_kill_transaction_callback(s->osip, OSIP_ICT_KILL_TRANSACTION, on_kill);
    osip_set_kill_transaction_callback(s->osip, OSIP_IST_KILL_TRANSACTION, on_kill);
    osip_set_kill_transaction_callback(s->osip, OSIP_NICT_KILL_TRANSACTION, on_kill);
    osip_set_kill_transaction_callback(s->osip, OSIP_NIST_KILL_TRANSACTION, on_kill);
    static const int ict_events[] = {OSIP_ICT_STATUS_1XX_RECEIVED, OSIP_ICT_STATUS_2XX_RECEIVED,
                                     OSIP_ICT_STATUS_3XX_RECEIVED, OSIP_ICT_STATUS_4XX_RECEIVED,
                                     OSIP_ICT_STATUS_5XX_RECEIVED, OSIP_ICT_STATUS_6XX_RECEIVED,
                                     OSIP_ICT_STATUS_TIMEOUT};
    for (size_t i = 0; i < sizeof(ict_events) / sizeof(ict_events[0]); i++)
        osip_set_message_callback(s->osip, ict_events[i], on_ict);
    static const int finals[] = {OSIP_NICT_STATUS_2XX_RECEIVED, OSIP_NICT_STATUS_3XX_RECEIVED,
                                 OSIP_NICT_STATUS_4XX_RECEIVED, OSIP_NICT_STATUS_5XX_RECEIVED,
                                 OSIP_NICT_STATUS_6XX_RECEIVED, OSIP_NICT_STATUS_TIMEOUT};
    for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
        osip_set_message_callback(s->osip, finals[i], on_nict_final);
    log_info("msg=sip_listening addr=%s port=%d t1_ms=%u", s->addr, s->port, s->t1);
    return s;
}

void sip_destroy(struct sip_stack *s)
{
    if (!s)
        return;
    s->closing = true;
    /* Best effort, nothing waits: a BYE for every answered call, a 503 for every ringing one, a
     * CANCEL for every outgoing one that may have one (RFC 3261 9.1: not before a provisional
     * answer; the others are just dropped). */
    for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
        osip_message_t *m = NULL;
        if (d->state == DLG_ANSWERED || d->state == DLG_CONFIRMED)
            m = make_bye(d);
        else if (d->state == DLG_EARLY && d->ist)
            m = dialog_response(d, d->invite, 503, NULL);
        else if (d->state == DLG_CALLING && d->provisional && !d->cancel_sent)
            m = make_cancel(d);
        if (m) {
            send_msg(s, m, &d->peer);
            osip_message_free(m);
        }
    }
    while (s->dialogs)
        dialog_free(s->dialogs);
    struct note *n;
    while ((n = s->notes_head)) {
        s->notes_head = n->next;
        free(n->sdp);
        free(n);
    }
    free_dead(s);
    while (s->all) {
        osip_transaction_t *tr = s->all->tr;
        txinfo_free(s, s->all);
        osip_transaction_free2(tr);
    }
    osip_release(s->osip);
    free(s->tx_index);
    free(s->heap);
    free(s->dead);
    free(s->user_agent);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
    uv_close((uv_handle_t *)&s->udp, on_closed);
}

int sip_port(const struct sip_stack *s)
{
    return s->port;
}

void sip_stack_input(struct sip_stack *s, const char *buf, size_t len, const char *ip, int port)
{
    struct sockaddr_in sa;
    if (!s || !buf || uv_ip4_addr(ip, port, &sa) != 0)
        return;
    input(s, buf, len, &sa);
}

int sip_dialog_ringing(struct sip_dialog *d)
{
    if (!d || d->state != DLG_EARLY || !d->ist)
        return -1;
    struct sip_stack *s = d->s;
    tx_send(s, d->ist, dialog_response(d, d->invite, 180, NULL));
    log_info("msg=sip_ringing call_id=%s", d->log_id);
    pump(s);
    return 0;
}

int sip_dialog_answer(struct sip_dialog *d, const char *sdp)
{
    if (!d || d->state != DLG_EARLY || !d->ist || !sdp || !*sdp || strlen(sdp) > SIP_MAX_SDP)
        return -1;
    struct sip_stack *s = d->s;
    osip_message_t *r = dialog_response(d, d->invite, 200, NULL);
    set_sdp(r, sdp);
    if (osip_message_clone(r, &d->ok) != 0 || !d->ok) {
        osip_message_free(r);
        return -1;
    }
    d->ok_cseq = d->invite_cseq;
    d->answer_sdp = xstrdup(sdp);
    d->state = DLG_ANSWERED;
    rtx_start(d);
    tx_send(s, d->ist, r);
    log_info("msg=sip_answered call_id=%s", d->log_id);
    pump(s);
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
        str_copy(phrase, sizeof(phrase), reason_for(code));
    }
    tx_send(s, d->ist, dialog_response(d, d->invite, code, phrase));
    d->state = DLG_ENDED;
    log_info("msg=sip_rejected call_id=%s code=%d", d->log_id, code);
    push_note(s, NOTE_FREE, d, false, false);
    pump(s);
    return 0;
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
    start_bye(d);
    pump(s);
    return 0;
}

/* Runs the engine on the next loop turn rather than now: the API calls whose callbacks must not
 * run before they return. */
static void kick(struct sip_stack *s)
{
    s->again = true;
    if (!s->pumping && !s->closing)
        uv_timer_start(&s->timer, on_timer, 0, 0);
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A URI of ours to send to: bounded, parsed by libosip2. NULL when it does not parse. */
static osip_uri_t *parse_uri(const char *text)
{
    osip_uri_t *u = NULL;
    if (!text || !*text || strlen(text) > SIP_MAX_URI || osip_uri_init(&u) != 0)
        return NULL;
    if (osip_uri_parse(u, text) != 0) {
        osip_uri_free(u);
        return NULL;
    }
    return u;
}

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
    if (u->port && (parse_u32(u->port, 65535, &p) < 0 || p == 0))
        return "bad port";
    osip_uri_param_t *t = NULL;
    if (osip_uri_uparam_get_byname((osip_uri_t *)u, "transport", &t) == 0 && t && t->gvalue &&
        strcasecmp(t->gvalue, "udp") != 0)
        return "only UDP is supported";
    *port = (int)p;
    return NULL;
}

/* Our INVITE but its Via and Contact (added when it leaves, once we know our address). Takes
 * ruri and furi. */
static osip_message_t *make_invite(struct sip_stack *s, osip_uri_t *ruri, osip_uri_t *furi,
                                   const char *display, const char *call_id, const char *local_tag,
                                   const char *sdp)
{
    osip_message_t *m = new_request("INVITE");
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
    set_sdp(m, sdp);
    return m;
}

struct sip_dialog *sip_dialog_invite(struct sip_stack *s, const struct sip_outgoing *o, void *data,
                                     char *err, size_t errlen)
{
    if (!s || !o || s->closing) {
        set_err(err, errlen, "sip: no stack");
        return NULL;
    }
    if (!o->sdp || !*o->sdp || strlen(o->sdp) > SIP_MAX_SDP) {
        set_err(err, errlen, "sip: an SDP offer of at most %d bytes is required", SIP_MAX_SDP);
        return NULL;
    }
    if (s->n_dialogs >= s->max_dialogs || s->n_tx >= s->max_tx) {
        set_err(err, errlen, "sip: too many dialogs or transactions (max_dialogs %zu)",
                s->max_dialogs);
        return NULL;
    }
    char why_text[160];
    if (sip_uri_check(o->request_uri, why_text, sizeof(why_text)) < 0) {
        set_err(err, errlen, "sip: bad request URI: %s", why_text);
        return NULL;
    }
    osip_uri_t *ruri = parse_uri(o->request_uri);
    int port = 0;
    const char *why = ruri ? check_request_uri(ruri, &port) : "not a SIP URI";
    if (why) {
        set_err(err, errlen, "sip: bad request URI: %s", why);
        osip_uri_free(ruri);
        return NULL;
    }
    osip_uri_t *furi = parse_uri(o->from_uri);
    if (!furi || !furi->scheme || !furi->host || !*furi->host) {
        set_err(err, errlen, "sip: bad from URI");
        osip_uri_free(ruri);
        osip_uri_free(furi);
        return NULL;
    }
    char call_id[33], tag[17], host[256];
    random_hex(call_id, 16);
    random_hex(tag, 8);
    str_copy(host, sizeof(host), ruri->host);
    osip_message_t *inv = make_invite(s, ruri, furi, o->from_display, call_id, tag, o->sdp);
    struct sip_dialog *d = dialog_add(s, inv, call_id, tag, "");
    d->uac = true;
    d->announced = true;
    d->invite_cseq = d->local_cseq = 1;
    d->answer_sdp = xstrdup(o->sdp);
    d->data = data;
    char ruri_log[128];
    log_info("msg=sip_invite_out call_id=%s uri=%s", d->log_id,
             logsafe(o->request_uri, ruri_log, sizeof(ruri_log)));
    struct sockaddr_in a;
    if (uv_ip4_addr(host, port, &a) == 0 && is_ipv4(host)) {
        d->origin = a;
        set_peer(d, &a);
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
            dialog_fail(d, 503, "resolve_failed");
        } else {
            s->open_handles++;
            d->res = r;
            deadline_set(d, now_ms() + 64 * (uint64_t)s->t1);
        }
    }
    kick(s);
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
        dialog_fail(d, 487, "cancelled");
    else if (d->provisional && !sent)
        send_cancel(d);
    /* else it leaves with the first provisional answer, or Timer B ends the call (RFC 3261 9.1) */
    kick(s);
    return 0;
}

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
    osip_uri_t *u = parse_uri(uri);
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
        set_err(err, errlen, "sip: no stack");
        return -1;
    }
    if (strlen(state) > SIP_MAX_STATE) {
        set_err(err, errlen, "sip: saved dialog state too long");
        return -1;
    }
    json_t *j = json_loads(state, 0, NULL);
    const char *cid = state_str(j, "call_id", SIP_MAX_TOKEN),
               *ltag = state_str(j, "local_tag", SIP_MAX_TOKEN),
               *rtag = state_str(j, "remote_tag", SIP_MAX_TOKEN),
               *luri = state_str(j, "local_uri", SIP_MAX_URI),
               *ruri = state_str(j, "remote_uri", SIP_MAX_URI),
               *target = state_str(j, "remote_target", SIP_MAX_URI),
               *ip = state_str(j, "peer_ip", INET_ADDRSTRLEN);
    json_t *routes = json_object_get(j, "route_set");
    json_int_t cseq = json_integer_value(json_object_get(j, "cseq"));
    json_int_t port = json_integer_value(json_object_get(j, "peer_port"));
    struct sockaddr_in peer;
    osip_message_t *b = NULL;
    const char *why = NULL;
    if (!j || !cid || !*cid || !ltag || !rtag || !luri || !ruri || !target || !ip)
        why = "a field is missing";
    else if (cseq < 1 || cseq > 0x7fffffff)
        why = "bad cseq";
    else if (port < 1 || port > 65535 || !is_ipv4(ip) || uv_ip4_addr(ip, (int)port, &peer) != 0)
        why = "bad peer address";
    else if (routes && (!json_is_array(routes) || json_array_size(routes) > SIP_MAX_ROUTES))
        why = "bad route set";
    if (!why) {
        b = new_request("BYE");
        osip_uri_t *u = parse_uri(target);
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
        set_err(err, errlen, "sip: saved dialog state unusable: %s", why);
        osip_message_free(b);
        json_decref(j);
        return -1;
    }
    char host[INET_ADDRSTRLEN], cs[32], lid[72];
    local_host_for(s, &peer, host, sizeof(host));
    set_via(s, host, b);
    osip_message_set_call_id(b, cid);
    snprintf(cs, sizeof(cs), "%u BYE", (unsigned)cseq);
    osip_message_set_cseq(b, cs);
    osip_message_set_header(b, "Max-Forwards", "70");
    osip_message_set_header(b, "User-Agent", s->user_agent);
    log_info("msg=sip_bye_saved call_id=%s dst=%s:%d", logsafe(cid, lid, sizeof(lid)), ip,
             (int)port);
    json_decref(j);
    osip_transaction_t *tr = s->n_tx < s->max_tx ? tx_new(s, NICT, b, &peer, NULL) : NULL;
    if (tr) {
        tx_send(s, tr, b);
    } else {
        send_msg(s, b, &peer);
        osip_message_free(b);
    }
    kick(s);
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
    if (!is_ipv4(host))
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
        if (parse_u32(digits, 65535, &port) < 0 || port == 0) {
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
        set_err(err, errlen, "%s", why);
        return -1;
    }
    return 0;
}
