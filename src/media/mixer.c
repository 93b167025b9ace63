#include "media/mixer.h"

#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <stdlib.h>
#include <string.h>

/* Decode tables (256 entries) and encode tables indexed by the top 14 bits of a sample. */
static int16_t decode_table[MIX_CODECS][256];
static uint8_t encode_table[MIX_CODECS][1 << 14];
static uint8_t silence[MIX_CODECS];
static uint8_t silence_frame[MIX_CODECS][MIX_FRAME];
static int tables_ready;

void mix_init(void)
{
    if (tables_ready)
        return;
    for (int i = 0; i < 256; i++) {
        decode_table[MIX_PCMU][i] = ulaw_to_linear((uint8_t)i);
        decode_table[MIX_PCMA][i] = alaw_to_linear((uint8_t)i);
    }
    for (int i = 0; i < (1 << 14); i++) {
        int s = (i - (1 << 13)) * 4; /* the 14-bit value back to 16-bit scale */
        encode_table[MIX_PCMU][i] = linear_to_ulaw(s);
        encode_table[MIX_PCMA][i] = linear_to_alaw(s);
    }
    silence[MIX_PCMU] = linear_to_ulaw(0);
    silence[MIX_PCMA] = linear_to_alaw(0);
    for (int c = 0; c < MIX_CODECS; c++)
        memset(silence_frame[c], silence[c], MIX_FRAME);
    tables_ready = 1;
}

void mix_decode(enum mix_codec c, const uint8_t *in, int16_t *out, size_t n)
{
    const int16_t *t = decode_table[c];
    for (size_t i = 0; i < n; i++)
        out[i] = t[in[i]];
}

void mix_encode(enum mix_codec c, const int16_t *in, uint8_t *out, size_t n)
{
    const uint8_t *t = encode_table[c];
    for (size_t i = 0; i < n; i++)
        out[i] = t[(in[i] >> 2) + (1 << 13)];
}

/* Why a soft knee: a hard clip of a loud sum is harsh and a gain change per frame pumps. Below
 * the knee the sum passes unchanged (so quiet rooms are bit-exact); above it, the excess is
 * compressed by x / (1 + x) towards full scale, which is continuous and never exceeds int16. */
#define KNEE 24576
#define HEADROOM (32767 - KNEE)

int16_t mix_limit(int32_t s)
{
    int32_t a = s < 0 ? -s : s;
    if (a <= KNEE)
        return (int16_t)s;
    int64_t excess = a - KNEE;
    int32_t c = KNEE + (int32_t)((int64_t)HEADROOM * excess / (excess + HEADROOM));
    return (int16_t)(s < 0 ? -c : c);
}

void mix_vad_init(struct mix_vad *v)
{
    v->noise_floor = 0;
    v->hangover = 0;
}

#define VAD_LEVEL 20    /* mean |x| above this is sound (about -64 dBov) */
#define VAD_HANGOVER 15 /* 300 ms */

/* Why an absolute level and no adaptive noise floor: talk detection here decides only who needs
 * an own mix (a talker must not hear itself) and what goes into the sum. A floor that follows
 * the signal would, after a few seconds, classify any steady sound (a held note, a tone, music)
 * as noise and silence it, and quiet speech in a large room must still be heard. Digital silence
 * and the quantisation noise of G.711 stay below the level; anything audible is mixed. */
static bool vad_update(struct mix_vad *v, const int16_t *x)
{
    uint32_t acc = 0;
    for (int i = 0; i < MIX_FRAME; i++)
        acc += (uint32_t)(x[i] < 0 ? -x[i] : x[i]);
    uint32_t level = acc / MIX_FRAME;
    v->noise_floor = level; /* the last frame's level, for statistics */
    if (level > VAD_LEVEL)
        v->hangover = VAD_HANGOVER;
    else if (v->hangover > 0)
        v->hangover--;
    return v->hangover > 0;
}

static void limit_frame(const int32_t *sum, const int16_t *minus, int16_t *pcm)
{
    if (minus)
        for (int i = 0; i < MIX_FRAME; i++)
            pcm[i] = mix_limit(sum[i] - minus[i]);
    else
        for (int i = 0; i < MIX_FRAME; i++)
            pcm[i] = mix_limit(sum[i]);
}

static void limit_encode(enum mix_codec c, const int32_t *sum, const int16_t *minus, uint8_t *out)
{
    int16_t pcm[MIX_FRAME];
    limit_frame(sum, minus, pcm);
    mix_encode(c, pcm, out, MIX_FRAME);
}

void mix_room_tick(struct mix_room *r)
{
    size_t talkers = 0;
    memset(r->sum, 0, sizeof(r->sum));
    for (size_t i = 0; i < r->n; i++) {
        struct mix_participant *p = r->p[i];
        p->talking = p->has_in && vad_update(&p->vad, p->in);
        if (!p->has_in && p->vad.hangover > 0)
            p->vad.hangover--;
        if (p->talking) {
            talkers++;
            for (int k = 0; k < MIX_FRAME; k++)
                r->sum[k] += p->in[k];
        }
    }
    r->talkers = talkers;
    r->mixes = 0;
    bool shared_done[MIX_CODECS] = {false, false};
    for (size_t i = 0; i < r->n; i++) {
        struct mix_participant *p = r->p[i];
        if (p->deaf) {
            p->out = NULL;
            continue;
        }
        if (talkers == 0 || (p->talking && talkers == 1)) {
            /* Nobody (else) speaks: the prebuilt silent frame. */
            p->out = silence_frame[p->codec];
        } else if (p->talking) {
            limit_encode(p->codec, r->sum, p->in, p->own);
            r->mixes++;
            p->out = p->own;
        } else {
            if (!shared_done[p->codec]) {
                limit_encode(p->codec, r->sum, NULL, r->shared[p->codec]);
                r->mixes++;
                shared_done[p->codec] = true;
            }
            p->out = r->shared[p->codec];
        }
    }
}

/* Which frame the listener got is read back from where out points, so the choice is made in one
 * place (mix_room_tick) and the PCM is the one that was encoded, not a decoding of it. */
void mix_heard(const struct mix_room *r, const struct mix_participant *p, int16_t pcm[MIX_FRAME])
{
    if (!p->out || p->out == silence_frame[p->codec])
        memset(pcm, 0, MIX_FRAME * sizeof(*pcm));
    else
        limit_frame(r->sum, p->out == p->own ? p->in : NULL, pcm);
}
