/* Activeflows: a flow running on a call. Executes the actions one after another (answer, talk,
 * play, sleep, hangup, digits_receive, branch, goto, conference_join, fetch_flow), with nested
 * action stacks for fetched flows and the conference's pre- and post-flow (SPEC §4). The call
 * module's reports (struct call_listener, wired in main.c to the af_on_* functions below) drive it:
 * media done, key presses, hang-ups; it acts for the call through struct flow_call_ops. Control
 * thread only. */
#ifndef CONFERENCED_ACTIVEFLOW_H
#define CONFERENCED_ACTIVEFLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conference/conference.h"
#include "core/error.h"
#include "core/sched.h"
#include "events/bus.h"
#include "flow/flow.h"
#include "model/model.h"
#include "store/store.h"

struct media_clip;
struct tts;

/* What a flow asks of its call. */
struct flow_call_ops {
    void *ctx;
    /* Answers an incoming call that is not answered yet (no-op otherwise): 0 or negative. */
    int (*answer)(void *ctx, const char *call_id);
    /* Plays a clip (the callee takes its own reference); af_on_play_done() follows with
     * play_id. Negative when the call has no media. */
    int (*play)(void *ctx, const char *call_id, struct media_clip *clip, uint32_t play_id);
    void (*play_stop)(void *ctx, const char *call_id);
    /* Hangs the call up. */
    void (*hangup)(void *ctx, const char *call_id, const char *reason);
    /* The flow runs action now (the flow's Action object, borrowed): the call shows it. May be
     * NULL. */
    void (*action)(void *ctx, const char *call_id, const json_t *action);
};

/* What a flow asks of recordings (the flow actions recording_start / recording_stop). */
struct flow_recordings {
    void *ctx;
    /* Starts recording the call with the action's resolved options (format, duration,
     * end_of_silence, on_end_flow_id): 0 or negative with e. */
    int (*start)(void *ctx, const char *customer_id, const char *call_id, const char *activeflow_id,
                 const json_t *option, struct error *e);
    /* Stops the call's recording, if one runs. */
    void (*stop)(void *ctx, const char *customer_id, const char *call_id);
};

/* What a flow asks of transcribes (the flow actions transcribe_start / transcribe_stop). */
struct flow_transcribes {
    void *ctx;
    /* Starts transcribing the call with the action's resolved options (language, direction,
     * on_end_flow_id): 0 or negative with e. */
    int (*start)(void *ctx, const char *customer_id, const char *call_id, const char *activeflow_id,
                 const json_t *option, struct error *e);
    /* Stops the call's transcribes, if one is progressing. */
    void (*stop)(void *ctx, const char *customer_id, const char *call_id);
};

struct af_deps {
    uv_loop_t *loop; /* for speech and sound loading; NULL: talk and play are skipped */
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct flow_mgr *flows;
    struct conference_mgr *conferences;
    struct tts *tts;
    const char *sounds_dir; /* play's local files must be inside it (NULL: none allowed) */
    struct flow_call_ops call;
    struct flow_recordings recordings;   /* start NULL: the recording actions are skipped */
    struct flow_transcribes transcribes; /* start NULL: the transcribe actions are skipped */
};

struct af_mgr;

struct af_mgr *af_mgr_create(const struct af_deps *deps);
/* Frees every running activeflow without touching the store or the calls. NULL is a no-op. */
void af_mgr_destroy(struct af_mgr *m);
/* Start-up: activeflows left running by a previous run are marked ended. */
int af_mgr_recover(struct af_mgr *m);

/* What the flow's variables start with (strings; NULL = empty). */
struct af_call_info {
    const char *call_id;
    const char *source_target, *source_name;
    const char *destination_target;
    const char *direction; /* "incoming" / "outgoing" */
    /* What the activeflow runs for when it is not a call (NULL: "call", the call id): a
     * recording's on_end_flow_id runs with "recording" and its id, call_id ID_NIL. */
    const char *reference_type, *reference_id;
};

/* Creates the activeflow of a call (status running) without executing anything yet: flow_id (a
 * flow of the customer) or, when flow_id is NULL/nil, actions (already validated with
 * action_list_validate). vars: extra variables (object of strings, borrowed; keys starting with
 * "voipbin." are ignored) or NULL. out_id receives the activeflow id. */
int af_create(struct af_mgr *m, const char *customer_id, const char *flow_id, json_t *actions,
              const struct af_call_info *call, json_t *vars, char out_id[ID_LEN + 1],
              struct error *e);
/* Starts executing (the call is up or, for an incoming call, waiting for the flow to answer). */
void af_run(struct af_mgr *m, const char *activeflow_id);

/* Reports from the call. Unknown or ended activeflows are ignored. */
void af_on_play_done(struct af_mgr *m, const char *activeflow_id, uint32_t play_id, bool stopped);
void af_on_dtmf(struct af_mgr *m, const char *activeflow_id, char digit);
/* The call hung up: the activeflow ends. */
void af_on_call_ended(struct af_mgr *m, const char *activeflow_id);
/* The call's participant left the conference: the flow goes on after its conference_join (with
 * the conference's post-flow first when the conference has ended). */
void af_on_conference_left(struct af_mgr *m, const char *activeflow_id,
                           const struct conferencecall *cc, const struct conference *c);

/* API. 0 with *out filled (caller finis it), or a negative error in e. */
int af_get(struct af_mgr *m, const char *customer_id, const char *id, struct activeflow *out,
           struct error *e);
/* Ends a running activeflow and hangs up its call; an ended one is returned as it is. */
int af_stop(struct af_mgr *m, const char *customer_id, const char *id, struct activeflow *out,
            struct error *e);
/* Stops it if running, then marks it deleted. */
int af_delete(struct af_mgr *m, const char *customer_id, const char *id, struct activeflow *out,
              struct error *e);
/* Number of running activeflows. */
size_t af_mgr_running(const struct af_mgr *m);

#endif
