/* Conferences and their participants (conferencecalls): the rules and state machines of SPEC §3,
 * §4 and §6. Uses the store, the event bus, the scheduler and three narrow interfaces (the media
 * bridge, the calls, the flows) so tests run it with fakes. Control thread only. */
#ifndef CONFERENCED_CONFERENCE_H
#define CONFERENCED_CONFERENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/sched.h"
#include "events/bus.h"
#include "model/model.h"
#include "store/store.h"

/* The media side. join/kick are requests: the bridge answers later through
 * conference_on_joined() / conference_on_leaved() (possibly from inside the call). */
struct conference_bridge {
    void *ctx;
    /* Sets up the mixing bridge of a new (or recovered) conference: 0 or negative. */
    int (*create)(void *ctx, const struct conference *c);
    /* Tears the bridge of a terminated conference down. */
    void (*destroy)(void *ctx, const char *conference_id);
    /* Connects a participant's audio: 0, or negative when it cannot (the participant leaves). */
    int (*join)(void *ctx, const struct conferencecall *cc);
    /* Takes a participant's audio out of the bridge. */
    void (*kick)(void *ctx, const struct conferencecall *cc);
};

/* What conferences need to know about calls. */
struct conference_calls {
    void *ctx;
    /* True when the participant's call is up (status progressing): the health check. */
    bool (*is_progressing)(void *ctx, enum cc_reference_type type, const char *reference_id);
    /* The participant has left (leaved): the call's flow goes on (post-flow first when the
     * conference has ended). */
    void (*left)(void *ctx, const struct conferencecall *cc, const struct conference *c);
};

/* What conferences need to know about flows. */
struct conference_flows {
    void *ctx;
    /* True when flow_id is a flow of the customer. */
    bool (*exists)(void *ctx, const char *customer_id, const char *flow_id);
};

struct conference_deps {
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct conference_bridge bridge;
    struct conference_calls calls;
    struct conference_flows flows;
    /* The max_conferences setting: conferences of one customer that are not terminated; more
     * are refused (429 TOO_MANY_CONFERENCES). 0: no limit. */
    int max_conferences;
};

#define CONFERENCE_HEALTH_INTERVAL_US INT64_C(5000000)
#define CONFERENCE_HEALTH_MAX_FAILS 3
#define CONFERENCE_MAX_PARTICIPANT_AGE_US (INT64_C(24) * 3600 * 1000000)

struct conference_mgr;

struct conference_mgr *conference_mgr_create(const struct conference_deps *deps);
/* Cancels timers and frees in-memory state (stored data is untouched). NULL is a no-op. */
void conference_mgr_destroy(struct conference_mgr *m);
/* Start-up recovery: re-arms timeouts and health checks from stored times, finishes
 * conferences left starting or terminating. Every conference that is not terminated comes back,
 * even beyond max_conferences (a warning is logged; only new ones are refused). 0 or negative
 * (the store could not be read). */
int conference_mgr_recover(struct conference_mgr *m);
/* Start-up, after the calls recovered and before conference_mgr_recover(): the participants of
 * calls that did not survive the restart (calls.is_progressing false) leave at once, with their
 * events, rather than after the health checks' 15 s. A store that cannot be read leaves them to
 * the health checks. */
void conference_mgr_recover_participants(struct conference_mgr *m);

/* Create / update requests; NULL pointers and has_* false mean "not sent". */
struct conference_create_req {
    const char *type; /* required */
    const char *name, *detail;
    const char *data; /* JSON object text */
    bool has_timeout;
    int64_t timeout;
    const char *pre_flow_id, *post_flow_id; /* normalised UUIDs */
};
struct conference_update_req {
    const char *name, *detail, *data;
    bool has_timeout;
    int64_t timeout;
    const char *pre_flow_id, *post_flow_id;
};

/* Every call below returns 0 with *out filled (caller finis it), or a negative error in e.
 * conference_create refuses with RESOURCE_EXHAUSTED (TOO_MANY_CONFERENCES) when the customer has
 * max_conferences conferences that are not terminated. */
int conference_create(struct conference_mgr *m, const char *customer_id,
                      const struct conference_create_req *req, struct conference *out,
                      struct error *e);
/* Deleted conferences are found too (tm_delete set). */
int conference_get(struct conference_mgr *m, const char *customer_id, const char *id,
                   struct conference *out, struct error *e);
int conference_update(struct conference_mgr *m, const char *customer_id, const char *id,
                      const struct conference_update_req *req, struct conference *out,
                      struct error *e);
/* DELETE: terminating + kick everyone; terminated at once when empty. Repeat = no-op. */
int conference_delete(struct conference_mgr *m, const char *customer_id, const char *id,
                      struct conference *out, struct error *e);
int conference_regenerate_hash(struct conference_mgr *m, const char *customer_id, const char *id,
                               struct conference *out, struct error *e);
/* The conference reachable through a direct hash (not deleted), or NOT_FOUND. */
int conference_find_by_hash(struct conference_mgr *m, const char *direct_hash,
                            struct conference *out, struct error *e);

/* Participants. join: a call's flow asks to join (refused with FAILED_PRECONDITION when the
 * conference is not progressing or a connect conference is full); the participant is joining
 * while the pre-flow runs. connect: the pre-flow is done, ask the bridge for audio. */
int conference_join(struct conference_mgr *m, const char *conference_id,
                    enum cc_reference_type ref_type, const char *reference_id,
                    const char *activeflow_id, struct conferencecall *out, struct error *e);
int conference_connect(struct conference_mgr *m, const char *conferencecall_id, struct error *e);
/* Bridge reports: audio connected / participant out of the bridge. Unknown ids are ignored. */
void conference_on_joined(struct conference_mgr *m, const char *conferencecall_id);
void conference_on_leaved(struct conference_mgr *m, const char *conferencecall_id);
/* Kick (DELETE /conferencecalls/{id}): only joining/joined (else 409 STATE_INVALID); returns the
 * participant as leaving (or leaved when it was not in the bridge yet). customer_id NULL = any. */
int conference_kick(struct conference_mgr *m, const char *customer_id,
                    const char *conferencecall_id, struct conferencecall *out, struct error *e);
/* The participant's call hung up: leave (idempotent, no error when already leaving/leaved). */
void conference_leave(struct conference_mgr *m, const char *conferencecall_id);
int conferencecall_get(struct conference_mgr *m, const char *customer_id, const char *id,
                       struct conferencecall *out, struct error *e);

/* The recording module's: the recording running on the conference (ID_NIL: none any more); a new
 * one is appended to recording_ids. conference_updated follows. 0 or negative (not found, store
 * failure). */
int conference_set_recording(struct conference_mgr *m, const char *conference_id,
                             const char *recording_id);
/* The transcribe module's: the same for transcribe_id / transcribe_ids. */
int conference_set_transcribe(struct conference_mgr *m, const char *conference_id,
                              const char *transcribe_id);

/* Number of participants with in-memory state (health checks running). */
size_t conference_mgr_active_participants(const struct conference_mgr *m);

#endif
