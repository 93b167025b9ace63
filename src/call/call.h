/* Calls: every SIP leg is a call record (the VoIPBIN Call object) with its state machine. This
 * module ties the SIP dialogs, the media legs and the conferences together: a SIP INVITE to a
 * conference's direct URI runs the built-in flow "answer → conference_join"; the conference's
 * bridge operations put the call's media leg into the conference's room. Control thread only. */
#ifndef CONFERENCED_CALL_H
#define CONFERENCED_CALL_H

#include <stdbool.h>

#include <jansson.h>

#include "conference/conference.h"
#include "core/sched.h"
#include "flow/activeflow.h"
#include "flow/flow.h"
#include "core/error.h"
#include "events/bus.h"
#include "media/engine.h"
#include "model/model.h"
#include "sip/sip.h"
#include "store/store.h"

struct call_mgr;

struct call_deps {
    struct store *store;
    struct event_bus *bus;
    struct media_engine *media;
    struct sched *sched;
    const char *media_ip; /* announced in SDP and used in our SIP URIs */
    int ring_timeout_ms;  /* outgoing calls not answered in this time: noanswer (0: 60,000) */
};

struct call_mgr *call_mgr_create(const struct call_deps *deps);
/* Forgets live calls (their dialogs and legs belong to the SIP stack and the media engine, which
 * are destroyed separately). NULL is a no-op. */
void call_mgr_destroy(struct call_mgr *m);
/* Wiring after creation (the conference manager and SIP stack need this module's interfaces). */
void call_mgr_set_conferences(struct call_mgr *m, struct conference_mgr *conferences);
void call_mgr_set_sip(struct call_mgr *m, struct sip_stack *sip);
void call_mgr_set_media(struct call_mgr *m, struct media_engine *media);
void call_mgr_set_flows(struct call_mgr *m, struct flow_mgr *flows, struct af_mgr *activeflows);
/* Shutdown, first step: new calls are refused (incoming 503, POST /calls 503 SHUTTING_DOWN)
 * and every live call is hung up as call_hangup() does (BYE, CANCEL or a refusal); each ends,
 * with its events, when the SIP stack completes its hang-up. Returns how many are still live. */
size_t call_mgr_drain(struct call_mgr *m);
/* Shutdown, last step (before the SIP stack is destroyed): the calls still live are ended at once
 * as hung up by us (reason normal): recorded, their flows ended, their participants leaved. */
void call_mgr_shutdown(struct call_mgr *m);
/* Start-up, before the conferences recover: calls left up by a previous run are marked hung up
 * (reason failed) and their participants leave at once; the SIP dialogs of those that were
 * answered are kept for call_mgr_end_saved_dialogs(). */
int call_mgr_recover(struct call_mgr *m);
/* Start-up, once the SIP stack runs (call_mgr_set_sip): a BYE to each dialog a previous run left
 * up, from the state saved with its call. */
void call_mgr_end_saved_dialogs(struct call_mgr *m);

/* Interfaces handed to the other modules. */
struct sip_callbacks call_sip_callbacks(struct call_mgr *m);
struct conference_bridge call_bridge_iface(struct call_mgr *m);
struct conference_calls call_conference_iface(struct call_mgr *m);
struct flow_call_ops call_flow_ops(struct call_mgr *m);
/* Media engine event handler (ctx = the call manager). */
void call_on_media_event(void *ctx, const struct media_event *ev);

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
/* For recordings (the capture and the recording targets): the room of a conference and the
 * media leg of a live call (NULL when none now); whether the call is up; the recording running on
 * the call (ID_NIL: none any more; a new one is appended to recording_ids, call_updated follows).
 */
struct media_room *call_conference_room(struct call_mgr *m, const char *conference_id);
struct media_leg *call_media_leg(struct call_mgr *m, const char *call_id);
bool call_is_progressing(struct call_mgr *m, const char *call_id);
int call_set_recording(struct call_mgr *m, const char *call_id, const char *recording_id);
/* Number of live calls. */
size_t call_mgr_live(const struct call_mgr *m);

#endif
