/* Recording captures: the recording module's media side (struct recording_capture). A capture
 * taps a conference's room or a call's leg (media/engine.h taps) into the recorder's writer
 * threads (media/recorder.h), which own the files; when the recorder has finished a file the
 * capture takes the tap off (if what it tapped is still there) and reports the result through
 * done. Rooms and legs are found through lookups by id, so a room or leg destroyed meanwhile is
 * never touched. Control thread only.
 *
 * Who calls whom: recording → capture (start/stop, through struct recording_capture) →
 * {engine, recorder}; the recorder's results → capture → done (the recording module's
 * recording_on_captured, wired in main.c). */
#ifndef CONFERENCED_CAPTURE_H
#define CONFERENCED_CAPTURE_H

#include <uv.h>

#include "media/engine.h"
#include "media/recorder.h"
#include "recording/recording.h"

struct capture_deps {
    uv_loop_t *loop;
    struct media_engine *media;
    struct recorder_config recorder;
    int buffer_ms; /* each tap holds this much audio for a writer that falls behind */
    /* Lookups (NULL when there is none now). */
    void *ctx;
    struct media_room *(*room)(void *ctx, const char *conference_id);
    struct media_leg *(*leg)(void *ctx, const char *call_id);
    /* A capture has finished (its file is complete). */
    void (*done)(void *done_ctx, const struct recording_captured *r);
    void *done_ctx;
};

struct capture;

struct capture *capture_create(const struct capture_deps *deps);
/* Finishes every capture (their results go to done), then frees. NULL is a no-op. Run the loop
 * afterwards so the recorder's handle closes. */
void capture_destroy(struct capture *c);
struct recording_capture capture_iface(struct capture *c);
/* Captures running now. */
size_t capture_running(const struct capture *c);

#endif
