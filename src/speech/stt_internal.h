/* What the layers of speech to text share: stt.c (the collector, the queues, the results and the
 * API) runs recognisers through struct stt_backend, implemented by stt_sphinx.c (built in) and
 * stt_http.c (an external server driven from the control loop). The tests give stt_create_with()
 * a backend of their own in place of pocketsphinx, to hold a recogniser busy or look at what it
 * was handed; production code goes through the same path with the real one. */
#ifndef CONFERENCED_STT_INTERNAL_H
#define CONFERENCED_STT_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "speech/stt.h"

/* Narrowband audio as the collector assembles it from a G.711 leg's tap (8 kHz mono signed
 * 16-bit); a wideband leg's comes at STT_RECOGNISER_RATE already. */
#define STT_RATE 8000
/* What recognisers are given after resampling (pocketsphinx's en-us model, whisper). */
#define STT_RECOGNISER_RATE 16000
#define STT_ERROR_MAX 512

/* One utterance as a recogniser sees it. Valid during recognise() only. */
struct stt_audio {
    const int16_t *pcm; /* at rate */
    size_t n;           /* samples, >= 1 */
    int rate;           /* STT_RATE (a narrowband tap's), or STT_RECOGNISER_RATE (a wideband
                           tap's, and the benchmark's direct files: decoded as it is) */
    const char *language;
    const char *stream_id;
};

struct stt_answer {
    char text[STT_TEXT_MAX + 1]; /* "" when nothing was recognised */
    double confidence;           /* 0..1, or -1: the recogniser gives none */
    char error[STT_ERROR_MAX];   /* with -1 from recognise() */
};

/* A recogniser: its threads (started and joined by stt.c) each call open() once at their start,
 * recognise() for each utterance they take from the recogniser's queue, and close() at their
 * end. */
struct stt_backend {
    const char *name; /* in logs: "pocketsphinx", "http" */
    /* Recogniser thread. The thread's own state (a decoder), or NULL with a message in err.
     * shared is what stt_create_with() was given for this recogniser; max_samples bounds every
     * utterance at STT_RECOGNISER_RATE (one at STT_RATE has at most half as many); stop is set when
     * the stt is being destroyed (a long wait should give up). */
    void *(*open)(void *shared, size_t max_samples, const atomic_bool *stop, char *err,
                  size_t errlen);
    /* Recogniser thread. Returns 0 with out->text (and out->confidence), or -1 with
     * out->error. out arrives zeroed. */
    int (*recognise)(void *state, const struct stt_audio *a, struct stt_answer *out);
    /* Recogniser thread. Frees the state (NULL is never passed). */
    void (*close)(void *state);
};

/* stt_sphinx.c: pocketsphinx. shared: the model directory (a NUL-terminated string). */
extern const struct stt_backend stt_sphinx_backend;
/* Any thread. Checks that model_dir holds the files a decoder loads (en-us/, en-us.lm.bin,
 * cmudict-en-us.dict), so that a missing package is a clear message rather than a decoder's
 * complaint. Returns 0, or -1 with a message in err. */
int stt_sphinx_check_model(const char *model_dir, char *err, size_t errlen);

/* stt_http.c: the external recogniser. Its one thread turns an utterance into a WAV file and
 * hands it to the control loop, which sends it with libcurl's multi interface and hands the
 * answer back; shared: the struct stt_http. */
struct stt_http;
extern const struct stt_backend stt_http_backend;
/* Any thread. Checks the setting stt_url: an absolute http or https URL with a host, at most
 * STT_URL_MAX characters. Returns 0, or -1 with a message in err. */
int stt_http_check_url(const char *url, char *err, size_t errlen);
/* Control thread. The loop side, for a url that passed stt_http_check_url(). wake is the stt's
 * one uv_async_t: the thread sends it when a request is ready. */
struct stt_http *stt_http_create(uv_loop_t *loop, uv_async_t *wake, const char *url,
                                 int timeout_ms);
/* Control thread, from the wake-up's callback: starts the request the thread has ready, if any. */
void stt_http_poll(struct stt_http *h);
/* Control thread. Cancels a request in flight (its thread is told: "stopping"), so the thread
 * can be joined; then, after the join, stt_http_destroy() closes the handles (run the loop
 * afterwards) and frees h. */
void stt_http_cancel(struct stt_http *h);
void stt_http_destroy(struct stt_http *h);

/* Resampling for both recognisers (libsamplerate, SRC_SINC_MEDIUM_QUALITY): one per recogniser
 * thread, sized for max_samples at STT_RATE. */
struct stt_resampler;
/* Any thread. NULL with a message in err when libsamplerate refuses. */
struct stt_resampler *stt_resampler_create(size_t max_samples, char *err, size_t errlen);
void stt_resampler_destroy(struct stt_resampler *r);
/* The resampler's thread. Converts n samples at STT_RATE (n <= max_samples) into
 * STT_RECOGNISER_RATE samples held by r until the next call; returns them and their count in
 * *out_n, or NULL with a message in err. */
/* The resampler's thread. The output of the last stt_resample(), to adjust in place. */
int16_t *stt_resampled(struct stt_resampler *r);
const int16_t *stt_resample(struct stt_resampler *r, const int16_t *pcm, size_t n, size_t *out_n,
                            char *err, size_t errlen);

/* stt_g711.c: G.711's quantisation noise taken out of an utterance at STT_RATE, for the built-in
 * recogniser (one per recogniser thread, sized for max_samples). */
enum { STT_LAW_NONE, STT_LAW_ULAW, STT_LAW_ALAW };
struct stt_g711;
/* Any thread. STT_LAW_ULAW or STT_LAW_ALAW when the samples are that law's decoded levels
 * (at least 98 % of those not zero), else STT_LAW_NONE. */
int stt_g711_law(const int16_t *pcm, size_t n);
/* Any thread. NULL with a message in err when fftw cannot plan its transform. */
struct stt_g711 *stt_g711_create(size_t max_samples, char *err, size_t errlen);
void stt_g711_destroy(struct stt_g711 *g);
/* g's thread. The n samples (n <= max_samples) coded with law, less the codec's noise, each
 * still inside the interval its level stands for; held by g until the next call. pcm itself
 * when law is STT_LAW_NONE or n is out of range. */
const int16_t *stt_g711_clean(struct stt_g711 *g, int law, const int16_t *pcm, size_t n);

/* Control thread. stt_create() with builtin (and its shared state, borrowed for the life of the
 * stt) in place of pocketsphinx for STT_BUILTIN_LANGUAGE; cfg->model_dir is then not used. */
struct stt *stt_create_with(uv_loop_t *loop, const struct stt_config *cfg,
                            const struct stt_backend *builtin, void *builtin_shared,
                            stt_result_cb cb, void *ctx, char *err, size_t errlen);

/* Any thread. Cuts text to at most max bytes at a UTF-8 character boundary, and trims white
 * space at both ends, in place. */
void stt_text_tidy(char *text, size_t max);

#endif
