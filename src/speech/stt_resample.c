/* 8 → 16 kHz for the recognisers, with libsamplerate's SRC_SINC_MEDIUM_QUALITY: pocketsphinx's
 * en-us model and whisper are trained on 16 kHz audio, and a band-limited sinc adds no images
 * above 4 kHz for the front end to mistake for speech. It costs about 4 ms of CPU per second of
 * audio, a few per cent of decoding. The input goes through in chunks so that only the 16-bit
 * output needs a buffer of the utterance's size. */
#include <samplerate.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/mem.h"
#include "speech/stt_internal.h"

#define CHUNK 1024 /* input samples per src_process() */
#define RATIO ((double)STT_RECOGNISER_RATE / STT_RATE)

struct stt_resampler {
    SRC_STATE *src;
    int16_t *out;
    size_t cap; /* samples in out */
    float in[CHUNK];
    float tmp[CHUNK * 2 + 64];
};

struct stt_resampler *stt_resampler_create(size_t max_samples, char *err, size_t errlen)
{
    int e = 0;
    SRC_STATE *src = src_new(SRC_SINC_MEDIUM_QUALITY, 1, &e);
    if (!src) {
        snprintf(err, errlen, "cannot resample: %s", src_strerror(e));
        return NULL;
    }
    struct stt_resampler *r = xcalloc(1, sizeof(*r));
    r->src = src;
    /* The filter's flush can give a few samples over n * RATIO. */
    r->cap = (size_t)((double)max_samples * RATIO) + 256;
    r->out = xmalloc(r->cap * sizeof(int16_t));
    return r;
}

void stt_resampler_destroy(struct stt_resampler *r)
{
    if (!r)
        return;
    src_delete(r->src);
    free(r->out);
    free(r);
}

const int16_t *stt_resample(struct stt_resampler *r, const int16_t *pcm, size_t n, size_t *out_n,
                            char *err, size_t errlen)
{
    src_reset(r->src);
    size_t done = 0, got = 0;
    while (done < n) {
        size_t m = n - done < CHUNK ? n - done : CHUNK;
        src_short_to_float_array(pcm + done, r->in, (int)m);
        done += m;
        SRC_DATA d = {.data_in = r->in,
                      .input_frames = (long)m,
                      .src_ratio = RATIO,
                      .end_of_input = done == n};
        do { /* until the chunk is used (and, at the end, the filter is flushed) */
            d.data_out = r->tmp;
            d.output_frames = (long)(sizeof(r->tmp) / sizeof(r->tmp[0]));
            int e = src_process(r->src, &d);
            if (e != 0) {
                snprintf(err, errlen, "cannot resample: %s", src_strerror(e));
                return NULL;
            }
            size_t gen = (size_t)d.output_frames_gen;
            if (gen > r->cap - got)
                gen = r->cap - got;
            src_float_to_short_array(r->tmp, r->out + got, (int)gen);
            got += gen;
            d.input_frames -= d.input_frames_used;
            /* Used up, it points back at the start: one past the end of in is where tmp
             * begins, and libsamplerate refuses arrays that touch ("overlap"). */
            d.data_in = d.input_frames > 0 ? d.data_in + d.input_frames_used : r->in;
        } while (d.input_frames > 0 || (d.end_of_input && d.output_frames_gen > 0));
    }
    *out_n = got;
    return r->out;
}

int16_t *stt_resampled(struct stt_resampler *r)
{
    return r->out;
}
