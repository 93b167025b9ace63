/* Live transcription (SPEC §5): the rules of starting and stopping a transcribe of a conference
 * or a call, who is listened to (each participant of a conference on their own; a call's own
 * audio, what it hears, or both), and the Transcribe and Transcript records and their events.
 * The media side (taps, voice activity, recognisers) is reached only through the listen
 * interface; conferences and calls through the targets interface; what happens to them (people
 * joining and leaving, a conference ending, a call hanging up) is read from the event bus. What
 * is heard comes back through transcribe_on_heard(). Control thread only.
 *
 * Who calls whom: api/ and flow/ → transcribe → {store, bus, listen, targets, flows}; the bus's
 * events and the listen side's results → transcribe. */
#ifndef CONFERENCED_TRANSCRIBE_H
#define CONFERENCED_TRANSCRIBE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/sched.h"
#include "events/bus.h"
#include "model/model.h"
#include "store/store.h"

enum transcribe_target { TRANSCRIBE_OF_CONFERENCE = 0, TRANSCRIBE_OF_CALL };

/* One speaker of a transcribe: a call's audio in one direction. */
struct transcribe_speaker {
    const char *transcribe_id;
    const char *call_id;
    const char *conferencecall_id; /* ID_NIL for a call's transcribe */
    const char *direction;         /* "in": what the call says; "out": what it hears */
    const char *language;
};

/* The media side. */
struct transcribe_listen {
    void *ctx;
    /* Whether a recogniser for the language is configured, and the list for messages. */
    bool (*supported)(void *ctx, const char *language);
    const char *(*languages)(void *ctx);
    /* Starts listening to a speaker: 0, or negative with e (the call has no audio now, too many
     * taps). What is heard comes back through transcribe_on_heard(). */
    int (*add)(void *ctx, const struct transcribe_speaker *sp, struct error *e);
    /* Stops listening to one speaker or (call_id NULL) every speaker of the transcribe. An
     * utterance in progress is still transcribed. Never calls back from inside. */
    void (*remove)(void *ctx, const char *transcribe_id, const char *call_id);
};

/* What the listen side heard. */
enum transcribe_heard_kind {
    TRANSCRIBE_HEARD_TEXT,    /* an utterance, recognised */
    TRANSCRIBE_HEARD_SKIPPED, /* an utterance not transcribed: the recogniser fell behind */
    TRANSCRIBE_HEARD_FAILED,  /* an utterance the recogniser could not transcribe (error) */
};
struct transcribe_heard {
    enum transcribe_heard_kind kind;
    const char *transcribe_id;
    const char *call_id;
    const char *conferencecall_id;
    const char *direction;
    const char *text; /* TEXT */
    double confidence;
    int64_t tm_begin, tm_end; /* wall clock (µs) of the utterance's first and last frame */
    const char *error;        /* FAILED */
};

/* A conference or call transcribed. */
struct transcribe_target_state {
    id_t_ customer_id;
    bool progressing;
};
struct transcribe_targets {
    void *ctx;
    /* The conference or call id of customer_id (NULL: any): 0 with its state, or negative
     * (NOT_FOUND in e). */
    int (*get)(void *ctx, enum transcribe_target t, const char *customer_id, const char *id,
               struct transcribe_target_state *out, struct error *e);
    /* The conference's current transcribe (ID_NIL when it ended); a new one is appended to its
     * history (transcribe_ids). Conferences only. 0 or negative. */
    int (*set_active)(void *ctx, const char *conference_id, const char *transcribe_id);
    /* The conference's participants in the room now: calls fn for each (conferencecall id, its
     * call id). */
    void (*joined)(void *ctx, const char *conference_id,
                   void (*fn)(void *arg, const char *conferencecall_id, const char *call_id),
                   void *arg);
};

struct transcribe_flows {
    void *ctx;
    /* True when flow_id is a flow of the customer. */
    bool (*exists)(void *ctx, const char *customer_id, const char *flow_id);
    /* The transcribe is done: its on_end_flow_id runs. */
    void (*on_end)(void *ctx, const struct transcribe *t);
};

struct transcribe_deps {
    struct store *store;
    struct event_bus *bus; /* published to, and subscribed to at create */
    struct sched *sched;
    struct transcribe_listen listen;
    struct transcribe_targets targets;
    struct transcribe_flows flows;
    /* The max_transcribes setting: transcribes progressing at once; more are refused (429
     * TOO_MANY_TRANSCRIBES). 0: no limit. */
    int max_running;
};

struct transcribe_mgr;

struct transcribe_mgr *transcribe_mgr_create(const struct transcribe_deps *deps);
/* NULL is a no-op. */
void transcribe_mgr_destroy(struct transcribe_mgr *m);
/* Start-up: transcribes a previous run left progressing are done (transcribe_done sent), and
 * their conferences no longer transcribe. */
int transcribe_mgr_recover(struct transcribe_mgr *m);
/* Shutdown: every progressing transcribe is done. */
void transcribe_mgr_shutdown(struct transcribe_mgr *m);

struct transcribe_start_req {
    const char *language;       /* required */
    const char *direction;      /* NULL: "both" for a call, "in" for a conference */
    const char *on_end_flow_id; /* NULL or ID_NIL: none; else a flow of the customer */
    const char *activeflow_id;  /* the flow that starts it, or NULL (the API) */
};

/* Starts transcribing a conference (only progressing, one at a time: 409 STATE_INVALID) or a
 * call (only progressing; 409 when one is progressing on it). Bad input (a language no
 * recogniser serves: the message lists those that are) is 400. 0 with *out (progressing), or a
 * negative error in e. */
int transcribe_start(struct transcribe_mgr *m, enum transcribe_target t, const char *customer_id,
                     const char *target_id, const struct transcribe_start_req *req,
                     struct transcribe *out, struct error *e);
/* The conference's transcribe_stop: 409 when none is progressing on it. */
int transcribe_stop_conference(struct transcribe_mgr *m, const char *customer_id,
                               const char *conference_id, struct error *e);
/* POST /transcribes/{id}/stop: done now (a done one is returned as it is). */
int transcribe_stop(struct transcribe_mgr *m, const char *customer_id, const char *id,
                    struct transcribe *out, struct error *e);
/* Deleted ones are found too (tm_delete set). customer_id NULL = any. */
int transcribe_get(struct transcribe_mgr *m, const char *customer_id, const char *id,
                   struct transcribe *out, struct error *e);
/* Newest first; reference_id NULL = any. *out freed with store_free_transcribes. */
int transcribe_list(struct transcribe_mgr *m, const char *customer_id, const char *reference_id,
                    const struct store_page *p, struct transcribe **out, size_t *n,
                    struct error *e);
/* Stops it if progressing, then marks it deleted (its transcripts are no longer listed). */
int transcribe_delete(struct transcribe_mgr *m, const char *customer_id, const char *id,
                      struct transcribe *out, struct error *e);
/* A transcribe's transcripts, oldest first (404 for another customer's or a deleted one). *out
 * freed with store_free_transcripts. */
int transcribe_transcripts(struct transcribe_mgr *m, const char *customer_id,
                           const char *transcribe_id, const struct store_page *p,
                           struct transcript **out, size_t *n, struct error *e);

/* The listen side's results (control thread). Unknown transcribes are ignored. */
void transcribe_on_heard(struct transcribe_mgr *m, const struct transcribe_heard *h);

/* The flow actions' side (flow/activeflow.h): transcribe_start / transcribe_stop of a call. */
struct flow_transcribes;
struct flow_transcribes transcribe_flow_iface(struct transcribe_mgr *m);
/* Transcribes progressing now. */
size_t transcribe_mgr_running(const struct transcribe_mgr *m);

#endif
