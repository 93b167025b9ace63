/* The band bridge (resample.h) on speexdsp. */
#include "media/resample.h"

#include <math.h>
#include <speex/speex_resampler.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

/* Why quality 3 (speexdsp's "VoIP" setting): the bridge runs once per room per tick, or once per
 * tapped wideband leg, so its cost is small either way, and 3 keeps the pass band flat to about
 * 3.4 kHz of the narrow band with 48 samples of filter. */
#define RESAMPLER_QUALITY SPEEX_RESAMPLER_QUALITY_VOIP
#define FRAME_MAX 320 /* the largest frame either way: 20 ms at 16 kHz */

struct resampler {
    SpeexResamplerState *st;
    int in_rate, out_rate;
};

struct resampler *resampler_create(int in_rate, int out_rate)
{
    struct resampler *r = xcalloc(1, sizeof(*r));
    int err = 0;
    r->st = speex_resampler_init(1, (spx_uint32_t)in_rate, (spx_uint32_t)out_rate,
                                 RESAMPLER_QUALITY, &err);
    if (!r->st)
        die("cannot create a resampler %d -> %d: %s", in_rate, out_rate,
            speex_resampler_strerror(err));
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    return r;
}

void resampler_destroy(struct resampler *r)
{
    if (!r)
        return;
    speex_resampler_destroy(r->st);
    free(r);
}

void resampler_reset(struct resampler *r)
{
    speex_resampler_reset_mem(r->st);
}

/* Runs float frames; whatever the resampler did not produce is silence (it produces a whole
 * frame for a whole frame at these exact ratios). */
static size_t run(struct resampler *r, const float *in, size_t n, float *out)
{
    size_t want = n * (size_t)r->out_rate / (size_t)r->in_rate;
    spx_uint32_t in_len = (spx_uint32_t)n, out_len = (spx_uint32_t)want;
    speex_resampler_process_float(r->st, 0, in, &in_len, out, &out_len);
    if (out_len < want)
        memset(out + out_len, 0, (want - out_len) * sizeof(*out));
    return want;
}

void resampler_run_i32(struct resampler *r, const int32_t *in, size_t n, int32_t *out)
{
    float fin[FRAME_MAX], fout[FRAME_MAX];
    if (n > FRAME_MAX || n * (size_t)r->out_rate / (size_t)r->in_rate > FRAME_MAX)
        die("resampler frame of %zu samples", n); /* a programmer error */
    for (size_t i = 0; i < n; i++)
        fin[i] = (float)in[i];
    size_t m = run(r, fin, n, fout);
    for (size_t i = 0; i < m; i++)
        out[i] = (int32_t)lrintf(fout[i]);
}

void resampler_run_i16(struct resampler *r, const int16_t *in, size_t n, int16_t *out)
{
    float fin[FRAME_MAX], fout[FRAME_MAX];
    if (n > FRAME_MAX || n * (size_t)r->out_rate / (size_t)r->in_rate > FRAME_MAX)
        die("resampler frame of %zu samples", n);
    for (size_t i = 0; i < n; i++)
        fin[i] = (float)in[i];
    size_t m = run(r, fin, n, fout);
    for (size_t i = 0; i < m; i++) {
        long v = lrintf(fout[i]);
        out[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
    }
}
