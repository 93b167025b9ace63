/* The recorder: writer threads of its own (not libuv's shared pool) that drain media taps into
 * WAV files (media/wav.h). The media threads never wait for the disk: a frame the writer did not
 * take in time is dropped by the tap and counted, and the file gets silence in its place so file
 * time stays wall time. The header's sizes are rewritten and the file synced (fdatasync) at least
 * every header_interval_ms, so a crash loses at most that much. A failed write (a full disk, an
 * unwritable directory, a file size limit) ends that recording with what was written (header
 * made right) and its error. Each finished recording comes back to the control loop through one
 * uv_async_t as a recorder_result.
 *
 * A file size limit (RLIMIT_FSIZE) is an error like the others only while the process ignores
 * SIGXFSZ (signal(SIGXFSZ, SIG_IGN) at start-up); else the signal kills it.
 *
 * Functions are for the control thread. */
#ifndef CONFERENCED_RECORDER_H
#define CONFERENCED_RECORDER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/ids.h"
#include "media/tap.h"

/* Out of range (threads, or a negative interval) is a programmer error: the configuration is
 * validated before; it aborts. */
struct recorder_config {
    int threads;            /* writer threads, 1..16 (recordings are spread over them) */
    int header_interval_ms; /* header rewrite + fdatasync at least this often (0: 10,000) */
    int drain_interval_ms;  /* how often a writer drains its taps (0: 100) */
    bool sync_every_write;  /* fdatasync after every write: a slow disk, for the benchmark */
};

struct recorder_result {
    char id[ID_LEN + 1];
    uint64_t frames;       /* 20 ms frames in the file (silence put in for lost ones included) */
    uint64_t dropped;      /* frames lost (the tap was full, or never delivered): silence instead */
    uint64_t bytes;        /* the file's size, header included */
    int64_t duration_ms;   /* frames * 20 */
    bool reached_max;      /* ended at its max_frames */
    bool ended_by_silence; /* ended by recorder_open_until_silence's silence */
    int error;             /* 0, or the errno that ended it (open or write) */
    char message[160];     /* with error: what failed, e.g. "write: No space left on device" */
};

/* Control thread, once per finished recording (in the order they finished). */
typedef void (*recorder_done_cb)(void *ctx, const struct recorder_result *r);

/* The uv_async_t keeps the loop alive only while recordings are open. */
struct recorder *recorder_create(uv_loop_t *loop, const struct recorder_config *cfg,
                                 recorder_done_cb cb, void *ctx);
/* Finishes every open recording (what its tap holds is written, header right, synced), joins the
 * threads, and calls cb for each result not yet delivered before it returns (cb must not call
 * back into the recorder then). NULL is a no-op. Run the loop afterwards so the handle closes. */
void recorder_destroy(struct recorder *r);
/* Starts writing tap into a new file at path (created with mode 0640, or truncated) under id, at
 * the tap's rate, ending by itself after max_frames (0: no limit but a WAV file's, about 74 hours
 * at 8 kHz and 37 at 16 kHz: then error
 * EFBIG) or once the tap is closed and empty. The first frame's tick starts the file; frames the
 * tap dropped, after the last one too, become silence (counted in dropped). The recorder takes
 * its own reference on the tap and only ever reads it (it does not close it). The file is opened
 * on the writer thread: an open failure comes back as a result with error set. Returns 0, or -1
 * when id is already open (until its result is delivered) or longer than ID_LEN. */
int recorder_open(struct recorder *r, const char *id, const char *path, struct media_tap *tap,
                  uint64_t max_frames);
/* The same, also ending once silence_frames quiet frames in a row were written (a peak under
 * about -40 dBFS; lost frames count as quiet); 0: never. The result says ended_by_silence. The
 * quiet frames stay in the file. */
int recorder_open_until_silence(struct recorder *r, const char *id, const char *path,
                                struct media_tap *tap, uint64_t max_frames,
                                uint64_t silence_frames);
/* Ends the recording id: what its tap still holds is written, the header finished, the file synced
 * and closed; its result follows through cb. Nothing when id is not open (or already ending). */
void recorder_close(struct recorder *r, const char *id);
/* Recordings open now: opened and their result not delivered yet. */
size_t recorder_open_count(const struct recorder *r);

#endif
