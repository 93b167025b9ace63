/* What the SIP stack's files share (not for use outside src/sip/): its objects, every field
 * labelled with the layer that owns it (the only one that writes it), and the functions one layer
 * offers another. Control thread only. The layers, from the wire up:
 *   transport.c     the transport seam (struct sip_transport, sip_conn, sip_peer), SIP over UDP
 *                   (the socket, reading, sending), parsing and checking what arrives and handing
 *                   it to a transaction, the client side or the server side
 *   transport_ws.c  SIP over WebSocket (RFC 7118): each connection the HTTP layer hands over is
 *                   a sip_conn of the WS transport (core/wsconn does the WebSocket itself)
 *   message.c       building and reading messages (responses, requests, Via, Contact, bodies),
 *                   small helpers every layer uses
 *   transaction.c   libosip2's transaction state machines in our index, work list and timer heap;
 *                   answering a new request through a fresh server transaction
 *   dialog.c        the dialog table, the note queue to the application, hanging up (BYE), the
 *                   dialogs a closed connection takes down, saved dialog state
 *   client.c        outgoing calls (UAC): INVITE, CANCEL, their answers, name lookups, deadlines,
 *                   checking a URI to dial
 *   server.c        incoming requests (UAS): INVITE, re-INVITE, ACK, BYE, CANCEL, OPTIONS, the
 *                   application's answers, our 2xx retransmissions, calls in set-up per source
 *   stack.c         the stack itself: creation, the pump that runs the layers in order, the timer,
 *                   destruction
 *
 * How it runs: every message a transport receives is parsed and checked (sip_tp_input) together
 * with the peer it came from (transport, connection, address); a message that belongs to a live
 * transaction goes to it; a new request goes to the server side, which picks the response at
 * once, creates the server transaction and queues both the request and the response on it, so
 * that libosip2 sends, retransmits and absorbs. After every input, timer tick or application call,
 * sip_stack_pump() runs the libosip2 timers that expired, the state machines of the transactions
 * that have events, our 2xx retransmissions and deadlines, frees the transactions libosip2
 * declared dead, and only then calls the application back (from the note queue), so that the
 * application may call any sip_dialog_* function from its callbacks.
 *
 * The transport seam (RFC 3261 18): a received message knows its peer (struct sip_peer); every
 * response and every in-dialog request to that peer goes back through the same transport and, for
 * a connection-oriented one, the same connection. Our Via names the transport, our Contact adds
 * ;transport= for any but UDP; on a reliable transport libosip2's retransmission timers (A, E, G)
 * and our 2xx retransmissions are off and the wait timers D, I, J, K are zero (RFC 3261 17), the
 * time-outs (B, F, H, 64*T1 for the ACK) stay. A connection that closes ends its dialogs as a BYE
 * would. */
#ifndef CONFERENCED_SIP_INTERNAL_H
#define CONFERENCED_SIP_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <osip2/osip.h>
#include <osipparser2/osip_parser.h>

#include "core/log.h"
#include "sip/sip.h"

#define SIP_MAX_DATAGRAM 65535 /* also the largest message any transport hands in */
#define SIP_MAX_TOKEN 256      /* Call-ID and tags: longer ones get 400 */
#define SIP_MAX_SDP 16384      /* bodies larger than this get 413 */
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

struct sip_conn;
struct sip_peer;
struct resolve;

/* ---- the transport seam (transport.c) ---- */

/* One kind of transport. Its connections, if it has any, are struct sip_conn. */
struct sip_transport {
    const char *name;  /* the Via transport: "UDP", "WS" */
    const char *param; /* ;transport= of our Contact, NULL for none (UDP, the default) */
    bool reliable;     /* RFC 3261 17: no retransmissions; D, I, J, K are zero */
    /* Sends one whole message to the peer: a datagram to to->addr, or a message on to->conn.
     * 0, or a negative error (the message is lost: retransmissions or time-outs take over). */
    int (*send)(struct sip_stack *s, const struct sip_peer *to, const char *buf, size_t len);
};

extern const struct sip_transport sip_tp_udp;
extern const struct sip_transport sip_tp_ws;

/* One connection of a connection-oriented transport. Counted references: the transport holds
 * one while it is open, and so does every peer (a transaction's, a dialog's) that names it, so
 * that it outlives its socket as long as anything may still try to send on it. */
struct sip_conn {
    /* transport */
    struct sip_stack *s;
    const struct sip_transport *tp;
    unsigned refs;
    bool open;                        /* false once its transport closed it: sends are lost */
    void *impl;                       /* the transport's own connection, NULL once closed */
    struct sockaddr_in remote;        /* the peer's address */
    char remote_ip[INET_ADDRSTRLEN];  /* the same as text */
    char local_host[INET_ADDRSTRLEN]; /* our end of it, for our Via and Contact */
    int local_port;
    struct sip_conn *prev, *next; /* s->conns, while open */
    /* dialog: closed, its dialogs not yet ended (s->closed_conns) */
    struct sip_conn *closed_next;
    bool closed_queued;
};

/* Where a message came from, and so where the answers and in-dialog requests to that peer go. */
struct sip_peer {
    const struct sip_transport *tp; /* NULL: none yet (an outgoing call before its lookup) */
    struct sip_conn *conn;          /* a connection-oriented transport's connection (a reference:
                                       see sip_peer_set), else NULL */
    struct sockaddr_in addr;        /* UDP: where to send; a connection: its remote address */
};

/* A UDP peer (no reference to hold). */
struct sip_peer sip_peer_udp(const struct sockaddr_in *addr);
/* dst = src, taking a reference to src's connection and dropping dst's old one (dst zeroed or
 * set before). */
void sip_peer_set(struct sip_peer *dst, const struct sip_peer *src);
/* Drops the peer's reference; the peer is zeroed. */
void sip_peer_clear(struct sip_peer *p);
/* A new open connection of transport tp (one reference: the transport's). */
struct sip_conn *sip_conn_new(struct sip_stack *s, const struct sip_transport *tp, void *impl,
                              const struct sockaddr_in *remote, const char *local_host,
                              int local_port);
/* The transport closed it: no more sends; its dialogs end on the next pump (as by a BYE), then
 * the transport's reference is dropped. */
void sip_conn_close(struct sip_conn *c);
void sip_conn_release(struct sip_conn *c);

/* Binds the UDP socket. 0, or -1 with a message in err. */
int sip_tp_udp_open(struct sip_stack *s, const char *addr, int port, char *err, size_t errlen);
/* Closes the UDP socket (its close callback counts s->open_handles down). */
void sip_tp_udp_close(struct sip_stack *s);
/* Sends through the peer's transport. 0 or negative. */
int sip_tp_send(struct sip_stack *s, const struct sip_peer *to, const char *buf, size_t len);
/* Serialises m and sends it (m stays the caller's). */
int sip_tp_send_msg(struct sip_stack *s, osip_message_t *m, const struct sip_peer *to);
/* libosip2's send callback: every transaction sends to the peer its request came from (or, for
 * our requests, the peer they are for). */
int sip_tp_osip_send(osip_transaction_t *tr, osip_message_t *m, char *host, int port, int sock);
/* One received message from a peer: parsed, checked, handed on; then the pump runs. 0 when it
 * was taken (answered, or dropped as RFC 3261 says), 1 when ignored (a keep-alive, a runt, the
 * stack closing), -1 when it is not a SIP message anything could answer. */
int sip_tp_input(struct sip_stack *s, const struct sip_peer *from, const char *buf, size_t len);
/* SIP over WebSocket (transport_ws.c): ends every connection (sip_destroy). */
void sip_ws_close_all(struct sip_stack *s);

/* Our address as seen on the way to `to` over UDP: the listen address, or when bound to every
 * interface the one the kernel picks for that route. */
void sip_tp_udp_local(struct sip_stack *s, const struct sockaddr_in *to, char *out, size_t cap);

/* ---- transactions (transaction.c) ---- */

/* Our data on every transaction (libosip2's "your_instance"). All transaction-owned, but d. */
struct txinfo {
    struct sip_stack *s;
    struct sip_dialog *d; /* dialog: the dialog whose d->ist, d->ict or d->bye_tr this is */
    struct sip_peer peer; /* who it talks to (a reference) */
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

/* Sets up libosip2 (callbacks) and our index for up to s->max_tx transactions. */
void sip_tx_init(struct sip_stack *s);
/* Frees every transaction and libosip2. */
void sip_tx_fini(struct sip_stack *s);
/* A new transaction of type for req with peer (d: the dialog it belongs to, or NULL). NULL when
 * libosip2 refuses it. */
osip_transaction_t *sip_tx_new(struct sip_stack *s, osip_fsm_type_t type, osip_message_t *req,
                               const struct sip_peer *peer, struct sip_dialog *d);
/* Queues an outgoing message (owned by the transaction from now on). */
void sip_tx_send(struct sip_stack *s, osip_transaction_t *tr, osip_message_t *m);
/* Gives tr an event. Takes evt. */
void sip_tx_add_event(struct sip_stack *s, osip_transaction_t *tr, osip_event_t *evt);
/* The live transaction an incoming message belongs to, or NULL. */
osip_transaction_t *sip_tx_find(struct sip_stack *s, osip_event_t *evt);
/* The transaction no longer belongs to a dialog. NULL is a no-op. */
void sip_tx_detach(osip_transaction_t *tr);
/* Drops a transaction that would otherwise wait forever (an ICT in Proceeding has no timer).
 * Only from the pump, after the state machines ran. */
void sip_tx_abandon(struct sip_stack *s, osip_transaction_t *tr);
/* The pump's steps: expired timers, the transactions with events, the dead ones freed. */
void sip_tx_run_timers(struct sip_stack *s);
void sip_tx_run_work(struct sip_stack *s);
void sip_tx_free_dead(struct sip_stack *s);
/* ms until the earliest transaction timer (0: due now), UINT64_MAX: none. */
uint64_t sip_tx_next_ms(const struct sip_stack *s);
/* Answers a request without transaction (malformed, or too many transactions). */
void sip_tx_reply_stateless(struct sip_stack *s, const osip_message_t *req,
                            const struct sip_peer *to, int code);
/* Answers a new request with resp through a fresh server transaction, which then absorbs the
 * request's retransmissions (and, for INVITE, the ACK). Takes evt and resp. */
void sip_tx_reply_new(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                      osip_message_t *resp);
/* The same with a response built for code (Allow and Accept where they belong). */
void sip_tx_reply(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from, int code,
                  const char *to_tag);

/* ---- dialogs (dialog.c) ---- */

enum dlg_state {
    DLG_EARLY,     /* INVITE received, no final answer yet */
    DLG_ANSWERED,  /* 200 sent, retransmitting it until the ACK */
    DLG_CONFIRMED, /* ACK received */
    DLG_BYE_SENT,  /* our BYE in flight */
    DLG_ENDED,     /* waiting in the note queue to be freed */
    DLG_RESOLVING, /* outgoing: looking up the host of the Request-URI */
    DLG_CALLING,   /* outgoing: INVITE sent, no final answer yet (then DLG_CONFIRMED) */
};

struct sip_dialog {
    /* dialog */
    struct sip_stack *s;
    struct sip_dialog *hnext;       /* hash chain */
    struct sip_dialog *prev, *next; /* every dialog */
    enum dlg_state state;           /* written by every layer through the dialog's functions */
    char *call_id, *local_tag, *remote_tag; /* remote_tag: client.c updates it from answers */
    char log_id[72];                        /* the Call-ID, made safe for a log line */
    uint32_t invite_cseq, remote_cseq, local_cseq;
    osip_message_t *invite; /* copy of the INVITE: From, To, Contact, Record-Route */
    bool announced;         /* the application knows it (on_invite, or its own INVITE) */
    void *data;
    /* The peer: where its requests came from, where ours go (a reference). server.c moves it
     * to where a re-INVITE came from; client.c to the 2xx's route. */
    struct sip_peer peer;
    char peer_ip[INET_ADDRSTRLEN];
    int peer_port;
    char local_host[INET_ADDRSTRLEN]; /* our address towards the peer (Via, Contact) */
    int local_port;
    osip_transaction_t *bye_tr; /* our BYE while it lives */
    bool bye_pending;           /* server: the application hung up before the ACK */
    /* server: incoming calls */
    osip_transaction_t *ist; /* the INVITE server transaction while it lives */
    char *answer_sdp;   /* our SDP in the call (outgoing calls: our offer narrowed by the answer) */
    osip_message_t *ok; /* our last 2xx to an INVITE, for retransmission */
    uint32_t ok_cseq;
    bool rtx;
    uint64_t rtx_next, rtx_end; /* ms on the monotonic clock (rtx_next UINT64_MAX: only the
                                   time-out, on a reliable transport) */
    unsigned rtx_iv;
    bool in_setup, unacked; /* counted against its source address until our 2xx is acked */
    uint32_t setup_ip;      /* network order */
    /* client: outgoing calls only (d->invite is then our INVITE, its top Via once sent) */
    bool uac, provisional, cancel_sent;
    int cancel_code;           /* 487: the application cancelled; 408: rang too long; else 0 */
    osip_transaction_t *ict;   /* our INVITE client transaction while it decides the call */
    struct resolve *res;       /* the name lookup in flight */
    struct sockaddr_in origin; /* where the Request-URI resolved to */
    osip_message_t *ack;       /* our ACK for the 2xx, re-sent for its retransmissions */
    osip_uri_t *target;        /* remote target: the Contact of the 2xx */
    osip_list_t routes;        /* route set: the Record-Route of the 2xx, reversed */
    uint64_t deadline;         /* ms on the monotonic clock, 0: none (see run_deadlines) */
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

/* A report for the application, delivered from the pump once the layers are done. */
struct note {
    struct note *next;
    enum note_kind kind;
    struct sip_dialog *d;
    bool remote, cancelled;
    int code;  /* NOTE_PROGRESS, NOTE_FAILED */
    char *sdp; /* NOTE_ANSWERED (owned) */
};

/* The first dialog of the hash chain call_id falls in (walk it with hnext). */
struct sip_dialog *sip_dlg_chain(struct sip_stack *s, const char *call_id);
/* A dialog requests can reach (confirmed or being answered) by its three ids. */
struct sip_dialog *sip_dlg_find(struct sip_stack *s, const char *call_id, const char *local_tag,
                                const char *remote_tag);
/* The dialog an INVITE (without To tag) created: for its retransmissions and its CANCEL. */
struct sip_dialog *sip_dlg_find_by_invite(struct sip_stack *s, const char *call_id,
                                          const char *remote_tag, uint32_t cseq);
/* A dialog in the table: the parts both directions share. Takes invite. */
struct sip_dialog *sip_dlg_add(struct sip_stack *s, osip_message_t *invite, const char *call_id,
                               const char *local_tag, const char *remote_tag);
/* The peer of d is now p (peer_ip and peer_port follow). */
void sip_dlg_set_peer(struct sip_dialog *d, const struct sip_peer *p);
void sip_dlg_free(struct sip_dialog *d);
/* Queues a report for the application. */
struct note *sip_dlg_note(struct sip_stack *s, enum note_kind kind, struct sip_dialog *d,
                          bool remote, bool cancelled);
/* Ends d: the application hears of it (on_ended) from the note queue, then d is freed. */
void sip_dlg_end(struct sip_dialog *d, bool remote, bool cancelled, const char *why);
/* An outgoing call ends before its answer: on_failed(code) from the note queue, then d is freed.
 * A transaction it still has lives on alone (an ICT absorbing retransmitted final answers). */
void sip_dlg_fail(struct sip_dialog *d, int code, const char *why);
/* A BYE in dialog d (RFC 3261 12.2.1.1), its CSeq counted. */
osip_message_t *sip_dlg_make_bye(struct sip_dialog *d);
/* Hangs up through a BYE client transaction. */
void sip_dlg_start_bye(struct sip_dialog *d);
/* Our BYE got its final response (or timed out): the dialog is over. */
void sip_dlg_bye_done(struct sip_dialog *d);
void sip_dlg_deadline_set(struct sip_dialog *d, uint64_t at);
void sip_dlg_deadline_clear(struct sip_dialog *d);
/* The pump's steps: the dialogs of connections that closed end; the reports are delivered. */
void sip_dlg_run_closed(struct sip_stack *s);
void sip_dlg_run_notes(struct sip_stack *s);
/* Frees every note (sip_destroy). */
void sip_dlg_drop_notes(struct sip_stack *s);

/* ---- the client side (client.c) ---- */

/* A request in our outgoing dialog d (RFC 3261 12.2.1.1): Request-URI = target (NULL: our
 * INVITE's), Route = routes, From = our INVITE's From (our tag), To = its To with remote_tag. */
osip_message_t *sip_uac_request(struct sip_dialog *d, const char *method, uint32_t cseq,
                                const char *remote_tag, const osip_uri_t *target,
                                const osip_list_t *routes);
/* The CANCEL of our INVITE (RFC 3261 9.1). */
osip_message_t *sip_uac_cancel_msg(struct sip_dialog *d);
/* libosip2's ICT: a response to our INVITE, or Timer B. */
void sip_uac_on_ict(int type, osip_transaction_t *tr, osip_message_t *m);
/* A response no transaction took (a retransmitted 2xx to our INVITE, or another fork's). */
void sip_uac_stray_response(struct sip_stack *s, const osip_message_t *m, const char *cid,
                            uint32_t cseq);
/* The pump's step: outgoing calls waiting too long. */
void sip_uac_run_deadlines(struct sip_stack *s);
/* Forgets the name lookup of d; its callback still comes (cancelled or not) and frees it. */
void sip_uac_resolve_detach(struct sip_dialog *d);

/* ---- the server side (server.c) ---- */

/* A request no transaction took, from a peer. Takes evt. */
void sip_uas_request(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                     const char *cid, uint32_t cseq);
/* The pump's step: our 2xx retransmissions and the ACK time-out (RFC 3261 13.3.1.4). */
void sip_uas_run_rtx(struct sip_stack *s);
/* Reports a new INVITE to the application (from the note queue). */
void sip_uas_deliver_invite(struct sip_stack *s, struct sip_dialog *d);
void sip_uas_rtx_stop(struct sip_dialog *d);
/* The call is set up (its 2xx acknowledged) or over: it no longer counts against its source. */
void sip_uas_setup_leave(struct sip_dialog *d);

/* ---- messages and helpers (message.c) ---- */

uint64_t sip_now_ms(void);
void sip_random_hex(char *out, size_t nbytes); /* 2*nbytes hex digits and a NUL */
/* Input-driven text in a log line: printable, no spaces or quotes, bounded. */
const char *sip_logsafe(const char *in, char *buf, size_t cap);
int sip_parse_u32(const char *s, uint32_t max, uint32_t *out);
bool sip_is_ipv4(const char *s);
uint32_t sip_hash_str(const char *p); /* FNV-1a */
void sip_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *sip_tag_of(osip_from_t *h);
/* The whole Call-ID ("number@host"); -1 when absent or longer than cap allows. */
int sip_callid_of(const osip_message_t *m, char *out, size_t cap);
const char *sip_reason_for(int code);
/* libosip2 clone and free functions with the signatures osip_list_clone() and
 * osip_list_special_free() call. */
int sip_via_clone(void *a, void **b);
int sip_from_clone(void *a, void **b);
void sip_route_free(void *r);
/* The first body when it is SDP. *bad: 415 (not SDP), 413 (too large), else 0. */
const char *sip_sdp_body(const osip_message_t *m, int *bad);
osip_message_t *sip_msg_response(struct sip_stack *s, const osip_message_t *req, int code,
                                 const char *reason, const char *to_tag);
/* A response in dialog d to its INVITE or a later request: our tag, and for 18x/2xx to an
 * INVITE the Contact and (initial INVITE only) the Record-Route set (RFC 3261 12.1.1). */
osip_message_t *sip_msg_dialog_response(struct sip_dialog *d, const osip_message_t *req, int code,
                                        const char *reason);
void sip_msg_set_sdp(osip_message_t *m, const char *sdp);
/* Our Via for transport tp with a fresh branch (RFC 3261 8.1.1.7, 18.1.1). */
void sip_msg_set_via(const struct sip_transport *tp, const char *host, int port, osip_message_t *m);
/* Our Contact for transport tp: "<sip:host:port>" (";transport=..." for any but UDP). */
void sip_msg_contact(const struct sip_transport *tp, const char *host, int port, char *out,
                     size_t cap);
osip_message_t *sip_msg_request(const char *method);
/* A URI of ours to send to: bounded, parsed by libosip2. NULL when it does not parse. */
osip_uri_t *sip_parse_uri(const char *text);

/* ---- the stack (stack.c) ---- */

/* Incoming calls in set-up from one source address (see max_setup_per_source). */
struct src_count {
    struct src_count *next;
    uint32_t ip; /* network order */
    size_t n;
};

struct sip_stack {
    /* stack */
    uv_loop_t *loop;
    uv_timer_t timer;
    int open_handles; /* the socket, the timer and every name lookup in flight */
    bool closing, pumping, again;
    struct sip_callbacks cb;
    char *user_agent;
    size_t max_dialogs, max_tx;
    unsigned t1, t2, t4;
    /* transport */
    uv_udp_t udp;
    char addr[INET_ADDRSTRLEN];
    int port;
    struct sip_conn *conns; /* open connections of every connection-oriented transport */
    size_t n_conns;
    char rbuf[SIP_MAX_DATAGRAM + 16]; /* zeroed slack after the text, as in sdp.c */
    /* transport_ws.c */
    size_t n_ws, ws_max_conns, ws_max_message;
    char ws_too_big[128];    /* the close reason for a message over ws_max_message */
    struct log_limit ws_log; /* lines about connections that send what is not SIP */
    /* transactions: ours, not in libosip2's lists (see sip_tx_new): our index (tx_key), the ones
     * without key (legacy[ICT..NIST]), the ones with events to run (the work list), the ones with
     * a timer running (a min-heap on due), and all of them. */
    osip_t *osip;
    size_t n_tx;
    osip_transaction_t **dead;
    size_t n_dead, cap_dead;
    struct txinfo **tx_index;
    size_t tx_mask;
    osip_list_t legacy[4];
    struct txinfo *work_head, *work_tail;
    struct txinfo **heap;
    size_t n_heap, cap_heap;
    struct txinfo *all;
    /* dialogs */
    struct sip_dialog *buckets[SIP_BUCKETS];
    struct sip_dialog *dialogs;
    size_t n_dialogs, n_deadline;
    struct note *notes_head, *notes_tail;
    struct sip_conn *closed_conns;
    /* server */
    size_t n_rtx;
    size_t max_setup; /* per source address, 0: no limit */
    struct src_count *src[SIP_SRC_BUCKETS];
    struct log_limit setup_log; /* the "source over its limit" line */
};

/* Runs the layers until nothing is left to do (bounded), then rearms the timer. */
void sip_stack_pump(struct sip_stack *s);
/* Runs the pump on the next loop turn rather than now: for the API calls whose callbacks must not
 * run before they return. */
void sip_stack_kick(struct sip_stack *s);
/* A handle of the stack has closed: the last one frees it. */
void sip_stack_handle_closed(struct sip_stack *s);

#endif
