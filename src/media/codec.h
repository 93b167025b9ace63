/* The codec layer: what a leg's RTP payload is, and how 20 ms of it becomes PCM and back.
 * PCMU and PCMA (G.711, table driven) and G.722 (spandsp) carry 8 and 16 kHz audio; Opus
 * (libopus) is decoded to and encoded from 16 kHz, the rate rooms mix at. Every frame is 20 ms:
 * 160 samples narrowband (8 kHz), 320 wideband (16 kHz).
 *
 * Encoders and decoders are created on the control thread (they allocate) and used on one media
 * thread at a time; encoding, decoding and concealment never allocate, block or lock. */
#ifndef CONFERENCED_CODEC_H
#define CONFERENCED_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum codec_id { CODEC_PCMU = 0, CODEC_PCMA, CODEC_G722, CODEC_OPUS, CODEC_COUNT };

#define CODEC_FRAME_NB 160 /* samples per 20 ms at 8 kHz */
#define CODEC_FRAME_WB 320 /* samples per 20 ms at 16 kHz */
/* The largest 20 ms payload a leg takes: an Opus frame at its highest rate (RFC 6716 3.2.1:
 * 1,275 bytes of frame and its table-of-contents byte). Larger ones are dropped and counted. */
#define CODEC_MAX_PAYLOAD 1276
/* The most our encoders write for 20 ms (Opus at the highest bitrate we allow: 128 kbit/s is
 * 320 bytes). */
#define CODEC_OUT_MAX 400

struct codec_info {
    const char *name; /* the rtpmap encoding name */
    int clock;        /* the RTP clock (and the rtpmap rate; G.722's is 8000 by RFC 3551) */
    int channels;     /* the rtpmap's channel count, 0 when it has none (Opus: 2, RFC 7587) */
    int static_pt;    /* the static payload type, or -1 (dynamic) */
    bool wide;        /* 16 kHz PCM (else 8 kHz) */
    uint32_t ts_step; /* RTP timestamp advance per 20 ms */
    size_t min_payload, max_payload; /* the 20 ms payload sizes taken */
};

/* Pure, any thread. c must be below CODEC_COUNT. */
const struct codec_info *codec_info(enum codec_id c);
/* Samples per 20 ms frame of the codec's PCM: CODEC_FRAME_NB or CODEC_FRAME_WB. */
size_t codec_samples(enum codec_id c);
/* True when the codec keeps state between frames (so a shared frame needs its own encoder). */
bool codec_stateful(enum codec_id c);

/* Opus encoder settings (the others have none). */
struct codec_settings {
    int opus_bitrate;    /* bit/s, 6000..128000 */
    int opus_complexity; /* 0..10 */
};
#define CODEC_OPUS_BITRATE_DEFAULT 32000
#define CODEC_OPUS_COMPLEXITY_DEFAULT 0

/* Any thread, once at start-up (idempotent): the G.711 tables and the prebuilt silent frames. */
void codec_init(void);

struct codec_enc;
/* Control thread (allocates). NULL settings: the defaults. Never NULL (aborts when out of
 * memory). Stateless codecs get a small object too, so every listener has one. */
struct codec_enc *codec_enc_create(enum codec_id c, const struct codec_settings *s);
void codec_enc_destroy(struct codec_enc *e); /* NULL is a no-op */
enum codec_id codec_enc_codec(const struct codec_enc *e);
/* Media thread. Encodes codec_samples() samples into out; returns the payload length (0 when the
 * encoder failed: send nothing). */
size_t codec_encode(struct codec_enc *e, const int16_t *pcm, uint8_t out[CODEC_OUT_MAX]);
/* Stateless G.711 encoding, for the mixer's shared frames and for tests. */
void codec_g711_encode(enum codec_id c, const int16_t *in, uint8_t *out, size_t n);
void codec_g711_decode(enum codec_id c, const uint8_t *in, int16_t *out, size_t n);
/* A prebuilt frame of silence in the codec (*len set), valid for the whole process. */
const uint8_t *codec_silence(enum codec_id c, size_t *len);

struct codec_dec;
/* Control thread (allocates). Never NULL. Includes the loss concealment. */
struct codec_dec *codec_dec_create(enum codec_id c);
void codec_dec_destroy(struct codec_dec *d); /* NULL is a no-op */
/* Pure, any thread: a payload the decoder takes as one 20 ms frame (its size in range, and for
 * Opus a well-formed packet of 20 ms). */
bool codec_payload_ok(enum codec_id c, const uint8_t *p, size_t len);
/* Media thread. Decodes one frame (checked with codec_payload_ok) into codec_samples() samples;
 * a frame the decoder refuses is concealed instead. */
void codec_decode(struct codec_dec *d, const uint8_t *p, size_t len, int16_t *pcm);
/* Media thread. A missing frame: concealed from what came before, or (Opus) rebuilt from the
 * in-band FEC of the frame after it when next is given and carries it. */
void codec_conceal(struct codec_dec *d, const uint8_t *next, size_t next_len, int16_t *pcm);

#endif
