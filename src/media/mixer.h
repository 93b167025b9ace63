/* The conference mixer: one 20 ms frame of a room at a time. Every listener hears the sum of
 * everyone else who is talking, never itself; the sum is taken in 32 bits and limited once per
 * output sample. Listeners who are not talking share one encoded frame per codec, so a room of
 * mostly silent participants costs one mix, not one per listener. No allocation, no locks, no
 * system calls: this runs inside the media tick. Media thread only. */
#ifndef CONFERENCED_MIXER_H
#define CONFERENCED_MIXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIX_FRAME 160 /* samples per 20 ms at 8 kHz */

enum mix_codec { MIX_PCMU = 0, MIX_PCMA = 1, MIX_CODECS };

/* Talk detection state: a level above an absolute threshold, held for a short hangover. */
struct mix_vad {
    uint32_t noise_floor; /* level (mean |x|) of the last frame */
    int hangover;         /* frames left before "talking" drops */
};

struct mix_participant {
    /* Filled by the caller before mix_room_tick(): */
    int16_t in[MIX_FRAME];
    bool has_in;          /* false: nothing to contribute this tick (muted, no audio yet) */
    enum mix_codec codec; /* what this listener receives */
    bool deaf;            /* true: receives nothing (no output produced) */
    /* Filled by mix_room_tick(): */
    struct mix_vad vad;
    bool talking;
    const uint8_t *out;     /* encoded 20 ms for this listener; valid until the next tick */
    uint8_t own[MIX_FRAME]; /* storage when the listener needs its own mix */
};

/* A room's mixing state; participants are owned by the caller (pointers stay valid). */
struct mix_room {
    struct mix_participant **p;
    size_t n;
    int32_t sum[MIX_FRAME];
    uint8_t shared[MIX_CODECS][MIX_FRAME];
    /* Statistics of the last tick (for tests and benchmarks). */
    size_t talkers;
    size_t mixes; /* frames limited and encoded this tick */
};

/* Any thread, once at start-up: builds the codec tables. */
void mix_init(void);
/* Resets talk detection for a new participant. */
void mix_vad_init(struct mix_vad *v);
/* Runs one tick: talk detection, the sum, the shared frames and the per-talker mixes. */
void mix_room_tick(struct mix_room *r);
/* After mix_room_tick(), until the next one: what participant p of r was sent, as PCM before
 * encoding (its own mix, the shared one, or silence when nobody else talks or it is deaf). */
void mix_heard(const struct mix_room *r, const struct mix_participant *p, int16_t pcm[MIX_FRAME]);

/* Codec helpers (table driven). */
void mix_decode(enum mix_codec c, const uint8_t *in, int16_t *out, size_t n);
void mix_encode(enum mix_codec c, const int16_t *in, uint8_t *out, size_t n);
/* The soft limiter applied once to a 32-bit sum. */
int16_t mix_limit(int32_t s);

#endif
