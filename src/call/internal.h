/* Shared inside the call module (call.c: records and the state machine; dialog.c: the SIP
 * dialogs; iface.c: what the other modules ask of calls; dial.c: POST /calls; recover.c:
 * start-up); not for other modules. Control thread only. */
#ifndef CONFERENCED_CALL_INTERNAL_H
#define CONFERENCED_CALL_INTERNAL_H

#include "call/call.h"
#include "core/idmap.h"

/* A call that is not hung up yet: its dialog, its media leg and its activeflow. */
struct live_call {
    struct call_mgr *m;
    id_t_ id;
    id_t_ customer_id;
    id_t_ activeflow_id;
    struct sip_dialog *dialog;
    struct media_leg *leg;
    enum call_direction direction;
    enum call_status status;
    bool answered; /* incoming: our 200 went out; outgoing: the peer's 200 came */
    bool acked;    /* incoming: our 200 was acknowledged; outgoing: set with answered */
    bool hanging_up;
    const char *cancel_reason;     /* outgoing, cancelled before the answer: "cancel"/"noanswer" */
    struct sdp_offer_result offer; /* incoming: the offer, answered when the flow answers */
    char signal_ip[64];            /* incoming: where its SIP comes from (RTP learning) */
    struct media_secure_local secure; /* incoming WebRTC (offer.secure): our ICE and DTLS side */
    bool whip;                     /* a WHIP session (no SIP dialog) */
    call_whip_done_cb whip_done;   /* its POST, until answered or refused */
    void *whip_arg;
    struct sched_timer *ring_timer;
};

struct call_mgr {
    struct call_deps d;
    struct call_sip sip;
    bool has_sip;
    struct idmap live; /* call id -> struct live_call */
    char media_ip[64];
    bool draining; /* shutting down: no new calls */
    /* Start-up: the saved SIP dialogs of the calls a previous run left up, waiting for the SIP
     * side to send their BYEs (call_mgr_end_saved_dialogs). */
    char **saved;
    size_t n_saved;
};

/* An incoming call as its signalling gives it (incoming.c). */
struct call_incoming {
    const char *user;                /* what routes it: the Request-URI user, a direct hash */
    const char *customer_id;         /* the route must be this customer's (NULL: any) */
    const char *sdp;                 /* the offer */
    const char *source, *destination; /* the record's Address objects (JSON text) */
    const char *signal_ip;           /* where its signalling comes from ("" or NULL: anywhere) */
    const char *from_uri, *from_display; /* for its flow's variables */
    const char *what;                /* for log lines: the SIP Call-ID, "whip" */
    bool webrtc_only;                /* a plain RTP offer is refused (488) */
};
/* Routes it, reads its offer, makes its media leg, flow run and record, and starts its ring
 * timer; d is its SIP dialog (NULL for WHIP). NULL with a SIP-style *code (and *reason, or NULL)
 * when it cannot be a call. The caller then reports it ready (its flow starts). */
struct live_call *call_incoming_start(struct call_mgr *m, const struct call_incoming *in,
                                      struct sip_dialog *d, int *code, const char **reason);

/* A WHIP call's POST is answered (whip.c): 201 with sdp, or refused with status. */
void call_whip_reply(struct live_call *lc, int status, const char *sdp, const char *message);

/* The live call of an id, or NULL. */
struct live_call *call_live(struct call_mgr *m, const char *id);
/* Records a new live call (with its dialog's data pointing at it). */
struct live_call *call_live_new(struct call_mgr *m, const struct call *c, struct sip_dialog *d,
                                struct media_leg *leg);
/* A fresh record: new id, nil ids, empty action and metadata, created now. */
void call_record_init(struct call *c, const char *customer_id, const char *type);
/* An Address object as JSON text (caller frees). */
char *call_address_text(const char *type, const char *target, const char *target_name);
void call_publish(struct call_mgr *m, const char *type, const struct call *c);
/* Writes a status change to the record and publishes call_<status> (see call.c). */
void call_set_status(struct call_mgr *m, struct live_call *lc, enum call_status st,
                     const char *hangup_by, const char *reason);
/* The call is answered: progressing, with what a restart needs to end its dialog. */
void call_set_answered(struct call_mgr *m, struct live_call *lc);
/* The call is over: recorded, reported to the listener and forgotten (lc is freed). */
void call_finish(struct call_mgr *m, struct live_call *lc, const char *by, const char *reason);
/* Ends a live call from our side (BYE, a refusal or CANCEL); may finish it at once. */
void call_hangup_live(struct call_mgr *m, struct live_call *lc, const char *reason);
/* Starts the ring timer: a call not answered within ring_timeout_ms is hung up (noanswer). */
void call_arm_ring_timer(struct call_mgr *m, struct live_call *lc);
void call_cancel_ring_timer(struct call_mgr *m, struct live_call *lc);

/* The call's flow: create (struct call_flows) and the listener's reports, each a no-op when
 * the function is not wired. */
int call_flow_create(struct call_mgr *m, const char *customer_id, const char *flow_id,
                     json_t *actions, const struct af_call_info *info, json_t *vars,
                     char out_id[ID_LEN + 1], struct error *e);
void call_report_ready(struct call_mgr *m, const char *call_id, const char *activeflow_id);
void call_report_ended(struct call_mgr *m, const char *call_id, const char *activeflow_id);

#endif
