/* Voice activity detection that cuts one voice (a leg's own audio) into utterances for speech
 * recognition: 20 ms frames at 8 or 16 kHz mono in, and for each one what to hand on (nothing, or
 * frames of an utterance with its first and last marked).
 *
 * A frame is speech when its level is both above an absolute minimum (digital silence and line
 * noise never are) and a margin above the noise floor, the quietest frame of the last few seconds.
 * An utterance starts after onset_ms of speech in a row, and begins preroll_ms before that speech
 * (the frames are kept in the detector's own ring, and reach back no further than the end of the
 * utterance before), so word starts are not cut. It ends after hangover_ms without speech (the
 * hangover is its last part). Past soft_max_ms it ends at the next pause of split_pause_ms
 * instead; at max_ms it is cut at once, and speech that goes on starts the next utterance with the
 * frame after the cut (the frames since the cut are its pre-roll). No utterance is longer than
 * max_ms, pre-roll and hangover included, and no frame is handed on twice. Durations count the
 * frames fed, whatever their ticks (a gap in the ticks is not silence).
 *
 * Why the floor is the quietest frame of a window (minimum statistics) and not a slow average:
 * speech has quiet gaps between syllables every few hundred milliseconds, so the minimum stays at
 * the line's noise however long someone talks, while a steady sound (a fan, a held tone) becomes
 * the floor once the quieter frames before it have left the window. Such a sound starting after
 * a quieter one therefore counts as speech for floor_window_ms to an eighth more, then never again
 * while it lasts: one utterance of about that length plus the hangover, not an endless one.
 *
 * Media thread: after vad_create() nothing allocates, locks or calls the system; a frame costs one
 * pass of 160 (8 kHz) or 320 (16 kHz) multiply-adds and a copy into the ring. One detector serves
 * one stream. */
#ifndef CONFERENCED_VAD_H
#define CONFERENCED_VAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "media/mixer.h"

/* Durations are rounded up to whole 20 ms frames. Levels are dBov: a frame's mean square against
 * full scale (a full-scale sine is -3 dBov). */
struct vad_config {
    int min_level_db;    /* a frame below this is never speech (-50) */
    int margin_db;       /* speech is more than this above the noise floor (10) */
    int floor_window_ms; /* the noise floor is the quietest frame of about this long (3000) */
    int onset_ms;        /* speech in a row that starts an utterance (60) */
    int preroll_ms;      /* handed on from before the onset's first frame (300) */
    int hangover_ms;     /* without speech: the utterance ends (600) */
    int soft_max_ms;     /* this long: the utterance ends at the next pause of split_pause_ms
                          * (10,000) */
    int split_pause_ms;  /* (160) */
    int max_ms;          /* this long: the utterance is cut at once (15,000) */
};

/* Marks of a frame handed on (or-ed; the same values as media/tap.h's). */
#define VAD_MARK_BEGIN 1u
#define VAD_MARK_END 2u

/* What a fed frame asks of the caller: hand on vad_out_count() frames, vad_out_frame(0 ..). */
enum vad_out {
    VAD_OUT_NONE = 0, /* outside an utterance: nothing (the frame is kept as possible pre-roll) */
    VAD_OUT_BEGIN,  /* an utterance starts: its pre-roll and onset frames, the first marked BEGIN */
    VAD_OUT_INSIDE, /* this frame, inside the utterance */
    VAD_OUT_END,    /* this frame, the utterance's last, marked END */
};

struct vad;

/* Any thread. The defaults above. */
struct vad_config vad_config_default(void);
/* Any thread. 0, or -ERR_INVALID_ARGUMENT with e saying which field is out of its range. */
int vad_config_validate(const struct vad_config *cfg, struct error *e);
/* Any thread. A detector with cfg (NULL: the defaults) for frames at rate (8000 or 16000: 160 or
 * 320 samples); an invalid cfg or rate is a programmer error (cfg is validated first) and aborts.
 * Levels mean the same at either rate (they are per sample). */
struct vad *vad_create(const struct vad_config *cfg, int rate);
/* Any thread, once its user has let go. NULL is a no-op. */
void vad_destroy(struct vad *v);
/* The detector's thread. Takes the frame captured at tick and says what to hand on. */
enum vad_out vad_feed(struct vad *v, const int16_t *pcm, uint64_t tick);
/* The detector's thread: how many frames the last vad_feed() hands on (0 .. pre-roll + onset). */
size_t vad_out_count(const struct vad *v);
/* The detector's thread: frame i (oldest first) of those, its tick (when it was fed) and marks;
 * valid until the next vad_feed(). */
const int16_t *vad_out_frame(const struct vad *v, size_t i, uint64_t *tick, uint8_t *mark);
/* The detector's thread: inside an utterance (its END not handed on yet). */
bool vad_in_utterance(const struct vad *v);
/* The detector's thread: the noise floor now, dBov (-100 for digital silence or before any
 * frame). For tests and diagnostics. */
double vad_floor_db(const struct vad *v);

#endif
