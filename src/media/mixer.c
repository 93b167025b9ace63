#include "media/mixer.h"

#include <string.h>

#include "media/resample.h"

void mix_init(void)
{
    codec_init();
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
static bool vad_update(struct mix_vad *v, const int16_t *x, size_t n)
{
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += (uint32_t)(x[i] < 0 ? -x[i] : x[i]);
    uint32_t level = acc / (uint32_t)n;
    v->noise_floor = level; /* the last frame's level, for statistics */
    if (level > VAD_LEVEL)
        v->hangover = VAD_HANGOVER;
    else if (v->hangover > 0)
        v->hangover--;
    return v->hangover > 0;
}

static bool is_wide(const struct mix_participant *p)
{
    return codec_info(p->codec)->wide;
}

/* The whole mix of p's band, minus p's own voice when it talks (or minus nothing), limited. */
static void limit_frame(const struct mix_room *r, const struct mix_participant *p, bool minus,
                        int16_t *pcm)
{
    bool wide = is_wide(p);
    const int32_t *whole = wide ? r->whole_wb : r->whole_nb;
    size_t n = wide ? MIX_FRAME_WB : MIX_FRAME;
    if (minus)
        for (size_t i = 0; i < n; i++)
            pcm[i] = mix_limit(whole[i] - p->in[i]);
    else
        for (size_t i = 0; i < n; i++)
            pcm[i] = mix_limit(whole[i]);
}

static size_t limit_encode(const struct mix_room *r, const struct mix_participant *p, bool minus,
                           struct codec_enc *enc, uint8_t *out)
{
    int16_t pcm[MIX_FRAME_WB];
    limit_frame(r, p, minus, pcm);
    if (!enc) { /* G.711 needs no encoder object */
        codec_g711_encode(p->codec, pcm, out, MIX_FRAME);
        return MIX_FRAME;
    }
    return codec_encode(enc, pcm, out);
}

/* The band bridges: each band's whole mix is its own sum plus the other band's, resampled, when
 * someone in the other band talks and someone in this one listens. A bridge that is not needed
 * is not run; its history is then stale and reset before its next use. */
static void bridge(struct mix_room *r, size_t nb_talkers, size_t wb_talkers, bool nb_listeners,
                   bool wb_listeners)
{
    r->whole_nb = r->sum_nb;
    r->whole_wb = r->sum_wb;
    if (r->down && wb_talkers && (nb_listeners || r->want_whole)) {
        if (r->down_cold)
            resampler_reset(r->down);
        r->down_cold = false;
        resampler_run_i32(r->down, r->sum_wb, MIX_FRAME_WB, r->cross_nb);
        for (int i = 0; i < MIX_FRAME; i++)
            r->cross_nb[i] += r->sum_nb[i];
        r->whole_nb = r->cross_nb;
    } else {
        r->down_cold = true;
    }
    if (r->up && nb_talkers && (wb_listeners || r->want_whole)) {
        if (r->up_cold)
            resampler_reset(r->up);
        r->up_cold = false;
        resampler_run_i32(r->up, r->sum_nb, MIX_FRAME, r->cross_wb);
        for (int i = 0; i < MIX_FRAME_WB; i++)
            r->cross_wb[i] += r->sum_wb[i];
        r->whole_wb = r->cross_wb;
    } else {
        r->up_cold = true;
    }
}

void mix_room_tick(struct mix_room *r)
{
    size_t nb_talkers = 0, wb_talkers = 0;
    bool nb_listeners = false, wb_listeners = false;
    memset(r->sum_nb, 0, sizeof(r->sum_nb));
    bool wb_zeroed = false;
    for (size_t i = 0; i < r->n; i++) {
        struct mix_participant *p = r->p[i];
        bool wide = is_wide(p);
        size_t n = wide ? MIX_FRAME_WB : MIX_FRAME;
        if (!p->deaf) {
            nb_listeners |= !wide;
            wb_listeners |= wide;
        }
        if (wide && !wb_zeroed) { /* a room of phones alone never touches the wide band */
            memset(r->sum_wb, 0, sizeof(r->sum_wb));
            wb_zeroed = true;
        }
        p->talking = p->has_in && vad_update(&p->vad, p->in, n);
        if (!p->has_in && p->vad.hangover > 0)
            p->vad.hangover--;
        if (!p->talking)
            continue;
        int32_t *sum = wide ? r->sum_wb : r->sum_nb;
        for (size_t k = 0; k < n; k++)
            sum[k] += p->in[k];
        if (wide)
            wb_talkers++;
        else
            nb_talkers++;
    }
    size_t talkers = nb_talkers + wb_talkers;
    r->talkers = talkers;
    r->mixes = 0;
    bridge(r, nb_talkers, wb_talkers, nb_listeners, wb_listeners);
    r->whole_wb_ok = wb_zeroed && (nb_talkers == 0 || r->whole_wb == r->cross_wb);
    bool shared_done[CODEC_COUNT] = {false};
    for (size_t i = 0; i < r->n; i++) {
        struct mix_participant *p = r->p[i];
        if (p->deaf || (!p->enc && codec_stateful(p->codec))) {
            p->out = NULL;
            p->out_len = 0;
            continue;
        }
        enum codec_id c = p->codec;
        if (talkers == 0 || (p->talking && talkers == 1)) {
            /* Nobody (else) speaks: the prebuilt silent frame. */
            p->out = codec_silence(c, &p->out_len);
        } else if (p->talking || (codec_stateful(c) && !r->shared_enc[c])) {
            p->out_len = limit_encode(r, p, p->talking, p->enc, p->own);
            r->mixes++;
            p->out = p->own;
        } else {
            if (!shared_done[c]) {
                r->shared_len[c] = limit_encode(r, p, false, r->shared_enc[c], r->shared[c]);
                r->mixes++;
                shared_done[c] = true;
            }
            p->out = r->shared[c];
            p->out_len = r->shared_len[c];
        }
    }
}

/* Which frame the listener got is read back from where out points, so the choice is made in one
 * place (mix_room_tick) and the PCM is the one that was encoded, not a decoding of it. */
void mix_heard(const struct mix_room *r, const struct mix_participant *p, int16_t *pcm)
{
    size_t len;
    size_t n = codec_samples(p->codec);
    if (!p->out || p->out == codec_silence(p->codec, &len))
        memset(pcm, 0, n * sizeof(*pcm));
    else
        limit_frame(r, p, p->out == p->own && p->talking, pcm);
}

int mix_whole(const struct mix_room *r, int16_t pcm[MIX_FRAME_WB])
{
    if (r->whole_wb_ok) {
        for (int i = 0; i < MIX_FRAME_WB; i++)
            pcm[i] = mix_limit(r->whole_wb[i]);
        return 16000;
    }
    for (int i = 0; i < MIX_FRAME; i++)
        pcm[i] = mix_limit(r->whole_nb[i]);
    return 8000;
}
