/* The conference mixer: one 20 ms frame of a room at a time. Every listener hears the sum of
 * everyone else who is talking, never itself; the sum is taken in 32 bits and limited once per
 * output sample. Listeners who are not talking share one encoded frame per codec, so a room of
 * mostly silent participants costs one mix, not one per listener.
 *
 * Two bands: a room's mix is 16 kHz, but narrowband participants (G.711) are summed at their own
 * 8 kHz and wideband ones (G.722, Opus) at 16 kHz, and each band's sum reaches the other band
 * through one resampler per room and direction. A listener's mix is its band's sum plus the
 * other band's, minus its own voice in its own band (exact). A room of phones alone resamples
 * nothing, and a room of any mixture resamples twice per tick, however many are in it.
 *
 * No allocation, no locks, no system calls: this runs inside the media tick. Media thread only. */
#ifndef CONFERENCED_MIXER_H
#define CONFERENCED_MIXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/codec.h"

#define MIX_FRAME CODEC_FRAME_NB    /* samples per 20 ms at 8 kHz */
#define MIX_FRAME_WB CODEC_FRAME_WB /* samples per 20 ms at 16 kHz */

struct resampler;

/* Talk detection state: a level above an absolute threshold, held for a short hangover. */
struct mix_vad {
    uint32_t noise_floor; /* level (mean |x|) of the last frame */
    int hangover;         /* frames left before "talking" drops */
};

struct mix_participant {
    /* Filled by the caller before mix_room_tick(): */
    int16_t in[MIX_FRAME_WB]; /* codec_samples(codec) samples: 8 or 16 kHz by the codec */
    bool has_in;              /* false: nothing to contribute this tick (muted, no audio yet) */
    enum codec_id codec;      /* what this listener receives (and its band) */
    struct codec_enc *enc;    /* its own encoder, in codec (NULL: G.711 by table; a stateful
                               * codec without one is sent nothing) */
    bool deaf;                /* true: receives nothing (no output produced) */
    /* Filled by mix_room_tick(): */
    struct mix_vad vad;
    bool talking;
    const uint8_t *out; /* encoded 20 ms for this listener; valid until the next tick */
    size_t out_len;
    uint8_t own[CODEC_OUT_MAX]; /* storage when the listener needs its own mix */
};

/* A room's mixing state; participants are owned by the caller (pointers stay valid). */
struct mix_room {
    struct mix_participant **p;
    size_t n;
    /* Set by the caller: the room's shared encoders of stateful codecs (NULL: a listener in that
     * codec is sent its own encoding instead), the band bridges (NULL: the bands are not
     * joined; both are given once the room has a wideband member), and whether the whole mix is
     * wanted in both bands (for taps) even when no listener is in one of them. */
    struct codec_enc *shared_enc[CODEC_COUNT];
    struct resampler *up, *down; /* 8 -> 16 kHz, 16 -> 8 kHz */
    bool want_whole;
    /* Made by mix_room_tick(): each band's own sum, and its whole mix (the other band in). */
    int32_t sum_nb[MIX_FRAME], sum_wb[MIX_FRAME_WB];
    int32_t cross_nb[MIX_FRAME], cross_wb[MIX_FRAME_WB];
    const int32_t *whole_nb, *whole_wb;
    bool whole_wb_ok; /* whole_wb holds everyone who talks (the room has a wideband member, and
                       * its narrowband talkers were bridged in) */
    bool up_cold, down_cold; /* the bridge skipped a tick: its history is stale */
    uint8_t shared[CODEC_COUNT][CODEC_OUT_MAX];
    size_t shared_len[CODEC_COUNT];
    /* Statistics of the last tick (for tests and benchmarks). */
    size_t talkers;
    size_t mixes; /* frames limited and encoded this tick */
};

/* Any thread, once at start-up: builds the codec tables (codec_init). */
void mix_init(void);
/* Resets talk detection for a new participant. */
void mix_vad_init(struct mix_vad *v);
/* Runs one tick: talk detection, the sums, the band bridges, the shared frames and the
 * per-talker mixes. */
void mix_room_tick(struct mix_room *r);
/* After mix_room_tick(), until the next one: what participant p of r was sent, as PCM before
 * encoding (its own mix, the shared one, or silence when nobody else talks or it is deaf), in
 * p's band (codec_samples(p->codec) samples). */
void mix_heard(const struct mix_room *r, const struct mix_participant *p, int16_t *pcm);
/* After mix_room_tick() with want_whole set: the room's whole mix (everyone who talks, nobody
 * subtracted, limited) at 16 kHz when the room has a wideband member, else at 8 kHz (the phones'
 * own band, nothing resampled). Returns the rate, 16000 or 8000. */
int mix_whole(const struct mix_room *r, int16_t pcm[MIX_FRAME_WB]);

/* The soft limiter applied once to a 32-bit sum. */
int16_t mix_limit(int32_t s);

#endif
