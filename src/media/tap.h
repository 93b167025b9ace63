/* A media tap: audio a media thread hands to a worker thread without ever waiting for it. A fixed
 * ring of 20 ms frames (mono signed 16-bit at the tap's rate: 8 kHz, MIX_FRAME samples, or 16 kHz,
 * MIX_FRAME_WB samples) with one producer (the media thread that owns what is tapped) and one
 * consumer (a worker thread). The rate is the consumer's choice, made at creation; the producer
 * hands each frame in its own band (a G.711 leg's at 8 kHz, a wideband one's at 16 kHz) and the tap
 * converts it with a resampler of its own when the two differ. When the ring is full the
 * frame is dropped and counted: the producer never blocks and never allocates. Each frame carries
 * the engine's tick number, so the consumer sees the ticks it did not get (drops, or a leg moving
 * between media threads) and can keep file time equal to wall time. Shared by reference count
 * between the control thread, the engine and the consumer.
 *
 * A speech tap (media_tap_create_speech) runs a voice activity detector (media/vad.h) on its
 * producer's side and holds only the frames of utterances, pre-roll included, each frame with the
 * tick it was captured at: the first frame of an utterance is marked MEDIA_TAP_BEGIN, its last
 * MEDIA_TAP_END. Its ring keeps one slot for the END of the utterance in progress: another frame
 * is dropped rather than take it, so an utterance whose BEGIN went in always gets its END while
 * the tap is open. When the frame that starts an utterance is dropped, the first of its frames
 * that goes in carries BEGIN; an utterance none of whose frames went in before its last is
 * dropped whole. Frames dropped inside an utterance are missing from it (ticks and dropped_before
 * show where). offered and dropped count the frames of utterances only.
 *
 * Reading a speech tap: an utterance is the frames from a BEGIN to the next END (one frame may
 * carry both). A tap closed while an utterance is in progress gives no END: the consumer takes
 * "closed, and a pop finds nothing" as the end of it. Defensively, a BEGIN while inside an
 * utterance also ends the one before (the rules above do not produce it). */
#ifndef CONFERENCED_TAP_H
#define CONFERENCED_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/mixer.h"

struct media_tap;
struct vad_config;

struct media_tap_frame {
    uint64_t tick; /* the engine's tick number (20 ms each, one clock for every media thread) */
    /* How many frames the tap had dropped when this one was pushed: the drops after the last
     * frame a consumer got are media_tap_dropped() minus this (no later frame shows their gap). */
    uint64_t dropped_before;
    uint8_t mark; /* speech taps: MEDIA_TAP_BEGIN / MEDIA_TAP_END of an utterance (else 0) */
    int16_t pcm[MIX_FRAME_WB]; /* media_tap_samples() of them */
};

/* Marks of a speech tap's frames (or-ed): the first frame of an utterance, its last. */
#define MEDIA_TAP_BEGIN 1u
#define MEDIA_TAP_END 2u

/* Any thread. A tap of 8 kHz frames holding up to capacity frames (2 .. 2^20; outside that range
 * is a programmer error and aborts); the caller holds the one reference. */
struct media_tap *media_tap_create(size_t capacity);
/* Any thread. The same at rate (8000 or 16000; another is a programmer error and aborts). */
struct media_tap *media_tap_create_rate(size_t capacity, int rate);
/* Any thread. A speech tap (above) at rate holding up to capacity frames, with the detector's
 * settings (NULL: vad_config_default(); invalid ones are a programmer error: validate them
 * first). */
struct media_tap *media_tap_create_speech(size_t capacity, int rate, const struct vad_config *cfg);
/* Any thread. Takes another reference; returns t. */
struct media_tap *media_tap_ref(struct media_tap *t);
/* Any thread. Drops a reference, freeing the tap at zero; NULL is a no-op. */
void media_tap_unref(struct media_tap *t);
/* Producer. Copies one frame at the tap's rate stamped with tick; false (and counted in dropped)
 * when the ring is full. Never blocks, never allocates. On a closed tap: false, and nothing is
 * counted. On a speech tap the frame goes to the detector, and the frames of utterances it hands
 * on (none, one, or a pre-roll and an onset) to the ring: false when one of them was dropped. */
bool media_tap_push(struct media_tap *t, uint64_t tick, const int16_t *pcm);
/* Producer. The same with a frame at rate (8000 or 16000; NULL: silence), converted to the tap's
 * rate when it differs (the converter's history is forgotten when the frames before it came at
 * the tap's own rate or a tick was skipped). */
bool media_tap_push_from(struct media_tap *t, uint64_t tick, const int16_t *pcm, int rate);
/* Producer, plain taps only (a speech tap makes its own marks). The same, with the frame's mark. */
bool media_tap_push_marked(struct media_tap *t, uint64_t tick, const int16_t *pcm, uint8_t mark);
/* Consumer. Moves up to max frames, oldest first, into out; returns how many. */
size_t media_tap_pop(struct media_tap *t, struct media_tap_frame *out, size_t max);
/* Producer (or the control thread once the producer has let go): no more frames will come. A
 * consumer that sees media_tap_closed() before a pop that finds nothing has had every frame (on a
 * speech tap, an utterance still without its END ends there). */
void media_tap_close(struct media_tap *t);
/* Any thread. */
bool media_tap_closed(const struct media_tap *t);
bool media_tap_is_speech(const struct media_tap *t);
/* Any thread: frames dropped because the ring was full, and frames offered (dropped included);
 * on a speech tap, of utterances only. */
uint64_t media_tap_dropped(const struct media_tap *t);
uint64_t media_tap_offered(const struct media_tap *t);
size_t media_tap_capacity(const struct media_tap *t);
/* Any thread: the tap's rate (8000 or 16000) and samples per frame (MIX_FRAME or MIX_FRAME_WB). */
int media_tap_rate(const struct media_tap *t);
size_t media_tap_samples(const struct media_tap *t);

#endif
