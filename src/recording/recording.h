/* Recordings (SPEC §5): a conference's whole mix or a call's audio into a WAV file, the rules of
 * starting and stopping, the Recording records and their events. The media side is reached only
 * through the capture interface (the bridge taps the room or the call's leg into the recorder);
 * the conferences and calls recorded through the targets interface (is it up, and which
 * recording runs on it); flows through their own. Nothing calls back into this module but the
 * capture's completion (recording_on_captured), so tests run it on fakes. Control thread only.
 *
 * Who calls whom: api/ and flow/ → recording → {store, bus, capture, targets, flows}. */
#ifndef CONFERENCED_RECORDING_H
#define CONFERENCED_RECORDING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/sched.h"
#include "events/bus.h"
#include "model/model.h"
#include "store/store.h"

enum recording_target { RECORDING_OF_CONFERENCE = 0, RECORDING_OF_CALL };

/* How a capture ended (what the file holds). */
struct recording_captured {
    const char *id;
    int64_t duration_ms;
    int64_t size; /* bytes, header included; 0 when no file could be made */
    int64_t frames_dropped;
    bool reached_max; /* at its duration */
    int error;        /* 0, or the errno that ended it */
    const char *message;
};

/* The media side. */
struct recording_capture {
    void *ctx;
    /* Starts capturing rec's target (a conference's room, a call's leg) into path, ending by
     * itself after max_ms, or after silence_ms of silence (0: never). 0, or negative with e
     * (nothing to capture, too many taps). */
    int (*start)(void *ctx, const struct recording *rec, const char *path, int64_t max_ms,
                 int64_t silence_ms, struct error *e);
    /* Ends a capture started above: what is captured so far is written, then
     * recording_on_captured() follows (never from inside this call). */
    void (*stop)(void *ctx, const char *recording_id);
    /* Makes the file a crash left behind playable (its header fixed to the audio on disk):
     * 0 with the audio's duration and the file's size, or negative (no such file, unreadable). */
    int (*repair)(void *ctx, const char *path, int64_t *duration_ms, int64_t *size);
};

/* What is recorded. */
struct recording_target_state {
    id_t_ customer_id;
    bool progressing;   /* it can record now */
    id_t_ recording_id; /* the one running on it (ID_NIL: none) */
};
struct recording_targets {
    void *ctx;
    /* The conference or call id of customer_id (NULL: any): 0 with its state, or negative
     * (NOT_FOUND in e). */
    int (*get)(void *ctx, enum recording_target t, const char *customer_id, const char *id,
               struct recording_target_state *out, struct error *e);
    /* Sets the recording running on it (ID_NIL when it ended); a new one is appended to its
     * history (recording_ids). 0 or negative (the store failed). */
    int (*set_active)(void *ctx, enum recording_target t, const char *id, const char *recording_id);
};

struct recording_flows {
    void *ctx;
    /* True when flow_id is a flow of the customer. */
    bool (*exists)(void *ctx, const char *customer_id, const char *flow_id);
    /* The recording has ended: its on_end_flow_id runs (with variables voipbin.recording.*). */
    void (*on_end)(void *ctx, const struct recording *rec);
};

struct recording_deps {
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct recording_capture capture;
    struct recording_targets targets;
    struct recording_flows flows;
    const char *dir; /* where the files are: <dir>/<id>.wav */
    /* The max_recordings setting: recordings running at once; more are refused (429
     * TOO_MANY_RECORDINGS). 0: no limit. */
    int max_running;
};

struct recording_mgr;

struct recording_mgr *recording_mgr_create(const struct recording_deps *deps);
/* NULL is a no-op. Captures still running are not stopped here (recording_mgr_shutdown). */
void recording_mgr_destroy(struct recording_mgr *m);
/* Start-up: every recording a previous run left unfinished (a crash) gets its file repaired and
 * is marked ended (recording_finished sent); its conference or call no longer records. */
int recording_mgr_recover(struct recording_mgr *m);
/* Shutdown: every running capture is asked to stop (results follow as usual). */
void recording_mgr_shutdown(struct recording_mgr *m);

struct recording_start_req {
    const char *format;         /* NULL = "wav"; anything else is refused */
    int64_t duration;           /* seconds; 0 = up to RECORDING_MAX_SECONDS; longer is capped */
    int64_t end_of_silence;     /* seconds of silence that end it; 0 = never */
    const char *on_end_flow_id; /* NULL or ID_NIL: none; else a flow of the customer */
    const char *activeflow_id;  /* the flow that starts it, or NULL (the API) */
};

/* Starts recording a conference (only progressing) or a call (only progressing), refused with
 * FAILED_PRECONDITION / STATE_INVALID when it is not or one is already running. 0 with the new
 * recording in *out (recording), or a negative error in e. */
int recording_start(struct recording_mgr *m, enum recording_target t, const char *customer_id,
                    const char *target_id, const struct recording_start_req *req,
                    struct recording *out, struct error *e);
/* Stops the recording running on the target (409 STATE_INVALID when none): it is stopping until
 * its file is complete, then ended; the target records nothing from now on. 0 or negative. */
int recording_stop(struct recording_mgr *m, enum recording_target t, const char *customer_id,
                   const char *target_id, struct error *e);
/* Deleted recordings are found too (tm_delete set). customer_id NULL = any. */
int recording_get(struct recording_mgr *m, const char *customer_id, const char *id,
                  struct recording *out, struct error *e);
/* Newest first; owner_id / reference_id NULL = any. *out freed with store_free_recordings. */
int recording_list(struct recording_mgr *m, const char *customer_id, const char *owner_id,
                   const char *reference_id, const struct store_page *p, struct recording **out,
                   size_t *n, struct error *e);
/* DELETE: a running recording is stopped first; the file is removed (once complete). Repeat =
 * no-op. Returns the recording as it is then. */
int recording_delete(struct recording_mgr *m, const char *customer_id, const char *id,
                     struct recording *out, struct error *e);
/* GET /recordingfiles/{id}: the path of the finished file of customer_id's recording (cap bytes
 * at most), or NOT_FOUND (no recording, deleted, no file) / FAILED_PRECONDITION (still
 * recording). */
int recording_file(struct recording_mgr *m, const char *customer_id, const char *id, char *path,
                   size_t cap, struct error *e);
/* The capture's completion (from the capture side, on the control thread). Unknown ids are
 * ignored. */
void recording_on_captured(struct recording_mgr *m, const struct recording_captured *r);
/* The flow actions' side (flow/activeflow.h): recording_start / recording_stop of a call. */
struct flow_recordings;
struct flow_recordings recording_flow_iface(struct recording_mgr *m);
/* Recordings running now. */
size_t recording_mgr_running(const struct recording_mgr *m);

#endif
