/* The codec layer (see codec.h): G.711 by tables, G.722 by spandsp, Opus by libopus, and the
 * loss concealment of each (spandsp's for G.711 and G.722, Opus's own with its in-band FEC). */
#include "media/codec.h"

#include <opus/opus.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <spandsp/g722.h>
#include <spandsp/plc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

static const struct codec_info infos[CODEC_COUNT] = {
    [CODEC_PCMU] = {"PCMU", 8000, 0, 0, false, 160, 160, 160},
    [CODEC_PCMA] = {"PCMA", 8000, 0, 8, false, 160, 160, 160},
    [CODEC_G722] = {"G722", 8000, 0, 9, true, 160, 160, 160},
    [CODEC_OPUS] = {"opus", 48000, 2, -1, true, 960, 1, CODEC_MAX_PAYLOAD},
};

const struct codec_info *codec_info(enum codec_id c)
{
    return &infos[c];
}

size_t codec_samples(enum codec_id c)
{
    return infos[c].wide ? CODEC_FRAME_WB : CODEC_FRAME_NB;
}

bool codec_stateful(enum codec_id c)
{
    return c == CODEC_G722 || c == CODEC_OPUS;
}

/* ---- G.711: decode tables (256 entries), encode tables on the top 14 bits of a sample ---- */

static int16_t g711_dec[2][256];
static uint8_t g711_enc[2][1 << 14];
static uint8_t silence[CODEC_COUNT][CODEC_OUT_MAX];
static size_t silence_len[CODEC_COUNT];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void codec_g711_decode(enum codec_id c, const uint8_t *in, int16_t *out, size_t n)
{
    const int16_t *t = g711_dec[c == CODEC_PCMA];
    for (size_t i = 0; i < n; i++)
        out[i] = t[in[i]];
}

void codec_g711_encode(enum codec_id c, const int16_t *in, uint8_t *out, size_t n)
{
    const uint8_t *t = g711_enc[c == CODEC_PCMA];
    for (size_t i = 0; i < n; i++)
        out[i] = t[(in[i] >> 2) + (1 << 13)];
}

struct codec_enc {
    enum codec_id codec;
    g722_encode_state_t *g722;
    OpusEncoder *opus;
};

struct codec_dec {
    enum codec_id codec;
    plc_state_t *plc; /* G.711 and G.722 */
    g722_decode_state_t *g722;
    OpusDecoder *opus;
};

/* Silence in a stateful codec: what a fresh encoder gives for zeros once it has settled. */
static void build_silence(enum codec_id c)
{
    struct codec_enc *e = codec_enc_create(c, NULL);
    int16_t zero[CODEC_FRAME_WB] = {0};
    for (int i = 0; i < 10; i++)
        silence_len[c] = codec_encode(e, zero, silence[c]);
    codec_enc_destroy(e);
    if (silence_len[c] == 0)
        die("cannot encode a silent %s frame", infos[c].name);
}

static void init_tables(void)
{
    for (int i = 0; i < 256; i++) {
        g711_dec[0][i] = ulaw_to_linear((uint8_t)i);
        g711_dec[1][i] = alaw_to_linear((uint8_t)i);
    }
    for (int i = 0; i < (1 << 14); i++) {
        int s = (i - (1 << 13)) * 4; /* the 14-bit value back to 16-bit scale */
        g711_enc[0][i] = linear_to_ulaw(s);
        g711_enc[1][i] = linear_to_alaw(s);
    }
    memset(silence[CODEC_PCMU], linear_to_ulaw(0), CODEC_FRAME_NB);
    memset(silence[CODEC_PCMA], linear_to_alaw(0), CODEC_FRAME_NB);
    silence_len[CODEC_PCMU] = silence_len[CODEC_PCMA] = CODEC_FRAME_NB;
    build_silence(CODEC_G722);
    build_silence(CODEC_OPUS);
}

void codec_init(void)
{
    pthread_once(&init_once, init_tables);
}

const uint8_t *codec_silence(enum codec_id c, size_t *len)
{
    *len = silence_len[c];
    return silence[c];
}

/* ---- encoders ---- */

struct codec_enc *codec_enc_create(enum codec_id c, const struct codec_settings *s)
{
    struct codec_settings def = {CODEC_OPUS_BITRATE_DEFAULT, CODEC_OPUS_COMPLEXITY_DEFAULT};
    if (!s)
        s = &def;
    struct codec_enc *e = xcalloc(1, sizeof(*e));
    e->codec = c;
    if (c == CODEC_G722) {
        e->g722 = g722_encode_init(NULL, 64000, 0);
        if (!e->g722)
            die("out of memory for a G.722 encoder");
    } else if (c == CODEC_OPUS) {
        int err;
        /* Why RESTRICTED_LOWDELAY (CELT only): a room encodes one frame per talking listener
         * every 20 ms, so the encoder's cost is the room's cost. CELT at complexity 0 costs about
         * 12 µs a frame here against 50-140 µs for SILK at the same rate, and handles the mixes
         * of several voices (and tones) a conference sends as well as speech alone. */
        e->opus = opus_encoder_create(16000, 1, OPUS_APPLICATION_RESTRICTED_LOWDELAY, &err);
        if (!e->opus)
            die("cannot create an Opus encoder: %s", opus_strerror(err));
        opus_encoder_ctl(e->opus, OPUS_SET_BITRATE(s->opus_bitrate));
        opus_encoder_ctl(e->opus, OPUS_SET_COMPLEXITY(s->opus_complexity));
        opus_encoder_ctl(e->opus, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    }
    return e;
}

void codec_enc_destroy(struct codec_enc *e)
{
    if (!e)
        return;
    if (e->g722)
        g722_encode_free(e->g722);
    if (e->opus)
        opus_encoder_destroy(e->opus);
    free(e);
}

enum codec_id codec_enc_codec(const struct codec_enc *e)
{
    return e->codec;
}

size_t codec_encode(struct codec_enc *e, const int16_t *pcm, uint8_t out[CODEC_OUT_MAX])
{
    switch (e->codec) {
    case CODEC_PCMU:
    case CODEC_PCMA:
        codec_g711_encode(e->codec, pcm, out, CODEC_FRAME_NB);
        return CODEC_FRAME_NB;
    case CODEC_G722:
        return (size_t)g722_encode(e->g722, out, pcm, CODEC_FRAME_WB);
    case CODEC_OPUS: {
        opus_int32 n = opus_encode(e->opus, pcm, CODEC_FRAME_WB, out, CODEC_OUT_MAX);
        return n > 0 ? (size_t)n : 0;
    }
    case CODEC_COUNT:
        break;
    }
    return 0;
}

/* ---- decoders ---- */

struct codec_dec *codec_dec_create(enum codec_id c)
{
    struct codec_dec *d = xcalloc(1, sizeof(*d));
    d->codec = c;
    if (c == CODEC_OPUS) {
        int err;
        d->opus = opus_decoder_create(16000, 1, &err); /* a stereo stream is mixed down */
        if (!d->opus)
            die("cannot create an Opus decoder: %s", opus_strerror(err));
        return d;
    }
    d->plc = plc_init(NULL);
    if (!d->plc)
        die("out of memory for packet loss concealment");
    if (c == CODEC_G722) {
        d->g722 = g722_decode_init(NULL, 64000, 0);
        if (!d->g722)
            die("out of memory for a G.722 decoder");
    }
    return d;
}

void codec_dec_destroy(struct codec_dec *d)
{
    if (!d)
        return;
    if (d->plc)
        plc_free(d->plc);
    if (d->g722)
        g722_decode_free(d->g722);
    if (d->opus)
        opus_decoder_destroy(d->opus);
    free(d);
}

bool codec_payload_ok(enum codec_id c, const uint8_t *p, size_t len)
{
    const struct codec_info *ci = &infos[c];
    if (!p || len < ci->min_payload || len > ci->max_payload)
        return false;
    if (c != CODEC_OPUS)
        return true;
    /* A well-formed packet (its frame lengths inside it) of 20 ms at 48 kHz. */
    const unsigned char *frames[48];
    opus_int16 sizes[48];
    if (opus_packet_parse(p, (opus_int32)len, NULL, frames, sizes, NULL) <= 0)
        return false;
    return opus_packet_get_nb_samples(p, (opus_int32)len, 48000) == 960;
}

void codec_conceal(struct codec_dec *d, const uint8_t *next, size_t next_len, int16_t *pcm)
{
    if (d->opus) {
        bool fec = next && codec_payload_ok(CODEC_OPUS, next, next_len);
        int n = opus_decode(d->opus, fec ? next : NULL, fec ? (opus_int32)next_len : 0, pcm,
                            CODEC_FRAME_WB, fec ? 1 : 0);
        if (n != CODEC_FRAME_WB)
            memset(pcm, 0, CODEC_FRAME_WB * sizeof(*pcm));
        return;
    }
    plc_fillin(d->plc, pcm, (int)codec_samples(d->codec));
}

void codec_decode(struct codec_dec *d, const uint8_t *p, size_t len, int16_t *pcm)
{
    switch (d->codec) {
    case CODEC_PCMU:
    case CODEC_PCMA:
        codec_g711_decode(d->codec, p, pcm, CODEC_FRAME_NB);
        plc_rx(d->plc, pcm, CODEC_FRAME_NB);
        return;
    case CODEC_G722:
        if (g722_decode(d->g722, pcm, p, (int)len) != CODEC_FRAME_WB) {
            codec_conceal(d, NULL, 0, pcm);
            return;
        }
        plc_rx(d->plc, pcm, CODEC_FRAME_WB);
        return;
    case CODEC_OPUS:
        if (opus_decode(d->opus, p, (opus_int32)len, pcm, CODEC_FRAME_WB, 0) != CODEC_FRAME_WB)
            codec_conceal(d, NULL, 0, pcm);
        return;
    case CODEC_COUNT:
        break;
    }
}
