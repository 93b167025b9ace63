/* Calls: every SIP leg is a call record (the VoIPBIN Call object) with its state machine, its SIP
 * dialog and its media leg.
 *
 * Who calls whom (one way each): sip -> call (struct sip_callbacks), call -> sip (struct call_sip);
 * call -> routing (struct call_router: where an incoming call goes); call -> flows (struct
 * call_flows: a new call's flow is created); call -> its listener (struct call_listener: what
 * happens to a call, reported upward; main.c wires it to the activeflows and the bridge);
 * activeflow -> call (struct flow_call_ops), conference -> call (struct conference_calls), bridge
 * -> call (struct bridge_legs: leg lookups and the leg events). The call module calls no function
 * of the conference, activeflow or bridge modules. Control thread only. */
#ifndef CONFERENCED_CALL_H
#define CONFERENCED_CALL_H

#include <stdbool.h>

#include <jansson.h>

#include "bridge/bridge.h"
#include "conference/conference.h"
#include "core/error.h"
#include "core/sched.h"
#include "events/bus.h"
#include "flow/activeflow.h"
#include "media/engine.h"
#include "model/model.h"
#include "routing/routing.h"
#include "sip/sip.h"
#include "store/store.h"

/* What calls ask of the SIP side: the dialog operations of sip/sip.h (call_sip_stack() gives
 * them over a real stack; tests give fakes). Dialogs are the SIP side's, handed to the call
 * module by struct sip_callbacks. */
struct call_sip {
    void *ctx;
    int (*answer)(void *ctx, struct sip_dialog *d, const char *sdp);
    /* The dialog is freed by the SIP side: forget it. */
    int (*reject)(void *ctx, struct sip_dialog *d, int code, const char *reason);
    int (*bye)(void *ctx, struct sip_dialog *d);
    int (*cancel)(void *ctx, struct sip_dialog *d);
    struct sip_dialog *(*invite)(void *ctx, const struct sip_outgoing *o, void *data, char *err,
                                 size_t errlen);
    int (*state)(void *ctx, const struct sip_dialog *d, char *out, size_t cap);
    int (*bye_saved)(void *ctx, const char *state, char *err, size_t errlen);
    bool (*unacked)(void *ctx, const struct sip_dialog *d);
    const char *(*peer_ip)(void *ctx, const struct sip_dialog *d);
    void (*set_data)(void *ctx, struct sip_dialog *d, void *data);
    void *(*data)(void *ctx, const struct sip_dialog *d);
};

/* Where incoming calls go (routing/routing.h: routing_route; tests: a fake). */
struct call_router {
    void *ctx;
    /* Fills *out (struct route: out->actions is the caller's) and returns out->refuse. */
    int (*route)(void *ctx, const char *user, struct route *out);
};

/* What calls ask of the flows (flow/: flow_exists and af_create; tests: fakes). */
struct call_flows {
    void *ctx;
    /* True when flow_id is a flow of the customer (POST /calls checks it before dialling). */
    bool (*exists)(void *ctx, const char *customer_id, const char *flow_id);
    /* Creates the flow run of a new call, not running yet: flow_id, or the validated actions
     * when flow_id is NULL or nil; vars as af_create() takes them. Writes its id into out_id.
     * 0, or negative with e (ERR_INVALID_ARGUMENT: no such flow). */
    int (*create)(void *ctx, const char *customer_id, const char *flow_id, json_t *actions,
                  const struct af_call_info *call, json_t *vars, char out_id[ID_LEN + 1],
                  struct error *e);
};

/* What happens to a call, reported upward (main.c wires it to the activeflows and the bridge;
 * tests: a recorder). Every report names the call and its flow run; any function may be NULL. The
 * listener may call back into the call module (struct flow_call_ops) from a report. */
struct call_listener {
    void *ctx;
    /* The call's flow may run: an incoming call once recorded (its flow answers it), an outgoing
     * call once answered. */
    void (*on_ready)(void *ctx, const char *call_id, const char *activeflow_id);
    /* The call is over: recorded as hung up, its media leg destroyed. Also for a call whose flow
     * was created (struct call_flows) but which could not start. */
    void (*on_ended)(void *ctx, const char *call_id, const char *activeflow_id);
    /* A key press (RFC 4733) on the call's media. */
    void (*on_dtmf)(void *ctx, const char *call_id, const char *activeflow_id, char digit);
    /* A clip the flow played (flow_call_ops.play) ended: played out, or cut short (stopped). */
    void (*on_play_done)(void *ctx, const char *call_id, const char *activeflow_id,
                         uint32_t play_id, bool stopped);
    /* The call's participant cc has left conference c (struct conference_calls.left); its flow
     * run is cc->activeflow_id. */
    void (*on_conference_left)(void *ctx, const struct conferencecall *cc,
                               const struct conference *c);
};

struct call_deps {
    struct store *store;
    struct event_bus *bus;
    struct media_engine *media; /* NULL only without a SIP side (POST /calls answers 503) */
    struct sched *sched;
    const char *media_ip; /* announced in SDP and used in our SIP URIs */
    int ring_timeout_ms;  /* calls not answered in this time: noanswer (0: 60,000) */
    struct call_router router;
    struct call_flows flows;
    struct call_listener listener;
};

struct call_mgr;

/* Control thread. The caller owns the result (call_mgr_destroy). */
struct call_mgr *call_mgr_create(const struct call_deps *deps);
/* Forgets live calls (their dialogs and legs belong to the SIP stack and the media engine, which
 * are destroyed separately). NULL is a no-op. */
void call_mgr_destroy(struct call_mgr *m);
/* Control thread. Gives the call module its SIP side (copied; the ops' ctx is borrowed). A setter
 * rather than a dependency given at creation because the SIP stack is created with this module's
 * callbacks (call_sip_callbacks), so after it; one way: call -> sip. Without it, POST /calls
 * answers 503 and saved dialogs get no BYE. */
void call_mgr_set_sip(struct call_mgr *m, const struct call_sip *sip);
/* Control thread. The dialog operations of a real SIP stack (ctx = s, borrowed). */
struct call_sip call_sip_stack(struct sip_stack *s);
/* Shutdown, first step: new calls are refused (incoming 503, POST /calls 503 SHUTTING_DOWN)
 * and every live call is hung up as call_hangup() does (BYE, CANCEL or a refusal); each ends,
 * with its events, when the SIP stack completes its hang-up. Returns how many are still live. */
size_t call_mgr_drain(struct call_mgr *m);
/* Shutdown, last step (before the SIP stack is destroyed): the calls still live are ended at once
 * as hung up by us (reason normal): recorded, and reported ended to the listener. */
void call_mgr_shutdown(struct call_mgr *m);
/* Start-up, before the conferences recover: calls left up by a previous run are marked hung up
 * (reason failed); the SIP dialogs of those that were answered are kept for
 * call_mgr_end_saved_dialogs(). 0, or -1 when the store could not be read. */
int call_mgr_recover(struct call_mgr *m);
/* Start-up, once the SIP side is set (call_mgr_set_sip): a BYE to each dialog a previous run left
 * up, from the state saved with its call. */
void call_mgr_end_saved_dialogs(struct call_mgr *m);

/* Control thread. Interfaces handed to the other modules (ctx = m, borrowed). */
struct sip_callbacks call_sip_callbacks(struct call_mgr *m);
struct conference_calls call_conference_iface(struct call_mgr *m);
struct flow_call_ops call_flow_ops(struct call_mgr *m);
struct bridge_legs call_bridge_legs(struct call_mgr *m);

/* WHIP (RFC 9725): an SDP offer POSTed to a conference's WHIP URL is an incoming call to the
 * conference's direct address (direct_hash), through the same routing, flow and record as a SIP
 * INVITE, from the customer's own credentials (another customer's conference: 404). done is
 * called exactly once, perhaps before call_whip_offer returns: status 201 with the call's id and
 * our answer when its flow answers; else an HTTP status and a message: 400 (an offer we cannot
 * run), 404 (no such conference), 403 (its flow refused or ended it before answering), 503 (no
 * media port free, shutting down). sdp and message live only during the call. */
typedef void (*call_whip_done_cb)(void *arg, int status, const char *call_id, const char *sdp,
                                  const char *message);
void call_whip_offer(struct call_mgr *m, const char *customer_id, const char *conference_id,
                     const char *direct_hash, const char *sdp, const char *client_ip,
                     call_whip_done_cb done, void *arg);
/* DELETE of a WHIP session: its call ends as hung up by the remote side (reason normal). 0, or
 * -1 when this customer has no live WHIP call with that id. */
int call_whip_end(struct call_mgr *m, const char *customer_id, const char *call_id);

/* API operations: 0 with *out filled (caller finis it), or a negative error. */
int call_get(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
             struct error *e);
/* Hangs up a live call (BYE); the call is returned as terminating (or as it is when already
 * ended). */
int call_hangup(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
                struct error *e);
/* Hangs up if live, then marks the record deleted. */
int call_delete(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
                struct error *e);
/* POST /calls: one outgoing call per destination (sip addresses), each running flow_id (a flow
 * of the customer) or the inline actions once answered. On success *out is a JSON array of the
 * calls (caller decrefs). Everything is checked before the first call is dialled. */
struct call_dial_req {
    json_t *source;       /* Address object, or NULL */
    json_t *destinations; /* array of Address objects */
    const char *flow_id;  /* normalised UUID, or NULL */
    json_t *actions;      /* action array (validated here), or NULL */
    json_t *variables;    /* object of strings, or NULL */
};
int call_dial(struct call_mgr *m, const char *customer_id, const struct call_dial_req *req,
              json_t **out, struct error *e);
/* For recordings (call/recording.c): whether the call is up; the recording running on the call
 * (ID_NIL: none any more; a new one is appended to recording_ids, call_updated follows). */
bool call_is_progressing(struct call_mgr *m, const char *call_id);
int call_set_recording(struct call_mgr *m, const char *call_id, const char *recording_id);
/* Control thread. Number of live calls. */
size_t call_mgr_live(const struct call_mgr *m);

#endif
