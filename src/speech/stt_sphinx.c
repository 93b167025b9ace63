/* The built-in recogniser: pocketsphinx 0.8 (Debian's 0.8+5prealpha) with the pocketsphinx-en-us
 * model, one decoder per recogniser thread (a decoder is not thread-safe and holds about 90 MB:
 * the language model, the dictionary and the acoustic model are its own).
 *
 * Settings beyond the model's, each measured on telephone-band speech (flite's 8 kHz voices,
 * resampled to 16 kHz as the model wants; bench_stt --files, 30 sentences by four voices):
 *   -maxhmmpf 3000       at most this many HMMs active per frame, and at most 5 word exits
 *   -maxwpf 5            per frame: the same words as the defaults (30,000 / -1) on our test
 *                        sentences at about half the CPU time (real-time factor 0.2-0.3 instead
 *                        of 0.45 on one core);
 *   -remove_noise no     its spectral subtraction estimates a steady background noise: G.711's
 *                        noise follows the signal, and through G.711 it cost 20.1 % word errors
 *                        against 17.8 % without (the plain files: 15.6 and 15.8 %), at a fifth
 *                        more CPU; the codec's noise is taken out by stt_g711.c instead;
 *   -dither no           replaced by dither() below, which depends on the utterance only.
 * The utterance goes in whole (full_utt), so the model's batch cepstral mean normalisation sees
 * all of it: fed in pieces (live normalisation) the first utterance of a decoder was lost. And
 * each utterance is a stream of its own, so that nothing of one speaker's utterance carries
 * into the next one the decoder is given.
 * A faint mirror image of the telephone band fills the empty bands above 4 kHz (fold_high_band:
 * 25.3 % → 19.0 % word errors over four voices through G.711). Things tried that did not help:
 * narrowing the filter bank to the telephone band (the model was trained with 130-6800 Hz),
 * padding utterances with silence.
 *
 * Confidence: the mean of the words' posterior probabilities in the lattice (ps_seg_prob,
 * through the decoder's logmath). ps_get_prob() is the whole sentence's posterior, the product
 * of the words': it falls towards 0 as sentences get longer (1e-5 for a correctly recognised
 * 9-word sentence), so it says more about length than about trust. The word mean stays in 0..1
 * with 0.6-0.75 for correct sentences and under 0.5 for garbled ones. */
#include <errno.h>
#include <pocketsphinx.h>
#include <pthread.h>
#include <sphinxbase/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/mem.h"
#include "speech/stt_internal.h"

#define HMM_DIR "en-us"
#define LM_FILE "en-us.lm.bin"
#define DICT_FILE "cmudict-en-us.dict"
/* Measured (bench_stt --files, 30 sentences by 4 flite voices through G.711, 796 words):
 * without the mirror 25.3 % word errors; with gain 0.15 19.0 %; 0.5 22.1 %. A faint mirror is
 * what helps: a loud one makes vowels look like fricatives. */
#define FOLD_GAIN 0.15

struct sphinx {
    ps_decoder_t *ps;
    struct stt_resampler *rs;
    struct stt_g711 *g711;
    int16_t *wide; /* a copy of wideband input, to dither */
    size_t max_samples;
};

/* sphinxbase logs through one process-wide callback: its lines become debug lines (it is
 * chatty: a hundred lines per decoder loaded), and the last error of a thread is kept for the
 * message when loading fails. */
static _Thread_local char last_error[160];
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
/* Loading is serialised: sphinxbase's loading code is not documented as re-entrant, and it runs
 * once per thread at start-up only. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static void sphinx_log(void *user, err_lvl_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sphinx_log(void *user, err_lvl_t level, const char *fmt, ...)
{
    (void)user;
    bool debug = log_enabled(LOG_LEVEL_DEBUG);
    if (!debug && level < ERR_ERROR)
        return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0])
        return;
    if (level >= ERR_ERROR)
        str_copy(last_error, sizeof(last_error), buf);
    if (debug)
        log_debug("msg=\"pocketsphinx\" detail=\"%s\"", buf);
}

static void log_setup(void)
{
    err_set_logfp(NULL); /* no raw dumps to stderr (the settings table ps_init() prints) */
    err_set_callback(sphinx_log, NULL);
}

static int check_path(const char *dir, const char *name, bool want_dir, char *err, size_t errlen)
{
    char path[1024];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        snprintf(err, errlen, "the speech model directory's name is too long: %.64s...", dir);
        return -1;
    }
    struct stat st;
    const char *hint = "install the Debian package pocketsphinx-en-us, point stt_model_dir at a "
                       "copy of its model, or set stt_workers to 0 to use only stt_url";
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "the speech model is missing: %s: %s (%s)", path, strerror(errno),
                 hint);
        return -1;
    }
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "the speech model is incomplete: %s is not a %s (%s)", path,
                 want_dir ? "directory" : "file", hint);
        return -1;
    }
    return 0;
}

int stt_sphinx_check_model(const char *model_dir, char *err, size_t errlen)
{
    if (check_path(model_dir, HMM_DIR, true, err, errlen) < 0 ||
        check_path(model_dir, HMM_DIR "/mdef", false, err, errlen) < 0 ||
        check_path(model_dir, LM_FILE, false, err, errlen) < 0 ||
        check_path(model_dir, DICT_FILE, false, err, errlen) < 0)
        return -1;
    return 0;
}

static void *sphinx_open(void *shared, size_t max_samples, const atomic_bool *stop, char *err,
                         size_t errlen)
{
    (void)stop; /* a decode is not interruptible: stt_destroy() waits for it */
    const char *dir = shared;
    pthread_once(&log_once, log_setup);
    char hmm[1024], lm[1024], dict[1024];
    snprintf(hmm, sizeof(hmm), "%s/%s", dir, HMM_DIR);
    snprintf(lm, sizeof(lm), "%s/%s", dir, LM_FILE);
    snprintf(dict, sizeof(dict), "%s/%s", dir, DICT_FILE);
    struct stt_resampler *rs = stt_resampler_create(max_samples, err, errlen);
    if (!rs)
        return NULL;
    struct stt_g711 *g711 = stt_g711_create(max_samples, err, errlen);
    if (!g711) {
        stt_resampler_destroy(rs);
        return NULL;
    }

    pthread_mutex_lock(&load_lock);
    last_error[0] = '\0';
    cmd_ln_t *cfg = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict,
                                "-samprate", "16000", "-dither", "no", "-remove_noise", "no",
                                "-maxhmmpf", "3000", "-maxwpf", "5", NULL);
    ps_decoder_t *ps = cfg ? ps_init(cfg) : NULL;
    if (cfg)
        cmd_ln_free_r(cfg); /* the decoder holds its own reference */
    pthread_mutex_unlock(&load_lock);
    if (!ps) {
        snprintf(err, errlen, "pocketsphinx could not load the speech model in %s: %s", dir,
                 last_error[0] ? last_error : "no reason given");
        stt_resampler_destroy(rs);
        stt_g711_destroy(g711);
        return NULL;
    }
    struct sphinx *x = xcalloc(1, sizeof(*x));
    x->ps = ps;
    x->rs = rs;
    x->g711 = g711;
    x->max_samples = max_samples;
    x->wide = xmalloc((max_samples ? max_samples : 1) * sizeof(int16_t));
    return x;
}

/* Fillers and silences in the lattice (<s>, </s>, <sil>, [NOISE], ...) are not words. */
static bool is_word(const char *w)
{
    return w && w[0] && w[0] != '<' && w[0] != '[';
}

static double mean_word_posterior(ps_decoder_t *ps)
{
    logmath_t *lm = ps_get_logmath(ps);
    double sum = 0;
    int words = 0;
    for (ps_seg_t *seg = ps_seg_iter(ps); seg; seg = ps_seg_next(seg)) {
        if (!is_word(ps_seg_word(seg)))
            continue;
        int32 ascr, lscr, lback;
        double p = logmath_exp(lm, ps_seg_prob(seg, &ascr, &lscr, &lback));
        sum += p < 0 ? 0 : p > 1 ? 1 : p;
        words++;
    }
    return words ? sum / words : 0;
}

/* The model was trained on wideband speech: its filter bank spans 130-6800 Hz, and telephone
 * audio resampled to 16 kHz leaves the bands above 4 kHz empty, which the model has never seen
 * in speech. Adding the baseband's mirror image gives those bands the energy pattern of the
 * speech below (fricatives stay loud up there, vowels quiet), as upsampling without a filter
 * would, only much fainter. The mirror of a band-limited signal y at 16 kHz is y[n]·(-1)^n, so the
 * whole operation is a gain on even and odd samples: y[n]·(1 + g·(-1)^n). What lands above
 * 6800 Hz (the mirror of 0-1200 Hz) is outside the filter bank and costs nothing. Written by
 * hand: no packaged library does this, and it is one multiply per sample. */
static void fold_high_band(struct stt_resampler *rs, size_t n)
{
    int16_t *y = stt_resampled(rs);
    const double g = FOLD_GAIN;
    for (size_t i = 0; i < n; i++) {
        double v = y[i] * (i % 2 ? 1.0 - g : 1.0 + g);
        y[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
    }
}

/* A frame whose every sample is within this of zero is digital silence: what G.711 carries
 * from a phone that sends nothing (about -72 dBov; a real microphone's noise is louder). */
#define SILENT_PEAK 8

static bool frame_silent(const int16_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] > SILENT_PEAK || p[i] < -SILENT_PEAK)
            return false;
    return true;
}

/* The utterance without the digital silence at its ends, in whole 20 ms frames; *n 0 when it
 * holds nothing else. The voice activity detector's pre-roll and hangover give every utterance
 * 0.3 s of leading and 0.6 s of trailing audio, which from a phone that sends silence is
 * zeros; the model's batch normalisation, trained on recorded speech with its room noise,
 * takes such zeros for a signal. Leaving them out took the call path's excess of word errors
 * over decoding the same sentences' files from +5.0 to +3.6 points over four voices
 * (bench/stt); padding the files with as much digital silence cost 3.5-5 points per voice. */
static const int16_t *trim_silence(const int16_t *pcm, size_t *n, int rate)
{
    size_t frame = (size_t)rate / 50;
    size_t start = 0, end = *n;
    while (start + frame <= end && frame_silent(pcm + start, frame))
        start += frame;
    while (end >= start + frame && frame_silent(pcm + end - frame, frame))
        end -= frame;
    *n = end - start;
    return pcm + start;
}

/* A little noise where the signal has none: the upsampled audio is empty above 4 kHz and has
 * digital silence between words, where the log spectrum would be minus infinity. pocketsphinx's
 * own dither (-dither) draws from sphinxbase's one process-wide random generator: decoder
 * threads share it unlocked, and each utterance's words depend on what was decoded before it.
 * This one adds 1 to a quarter of the samples, as sphinxbase's does, from a generator started
 * afresh for each utterance, so an utterance's words depend on its audio only. */
#define DITHER_SEED 0x2545f491u

static void dither(int16_t *y, size_t n)
{
    uint32_t s = DITHER_SEED;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        if ((s & 3) == 0 && y[i] < 32767)
            y[i]++;
    }
}

static int sphinx_recognise(void *state, const struct stt_audio *a, struct stt_answer *out)
{
    struct sphinx *x = state;
    size_t n = a->n;
    const int16_t *pcm = trim_silence(a->pcm, &n, a->rate);
    if (n == 0)
        return 0; /* nothing but silence */
    if (a->rate != STT_RECOGNISER_RATE) {
        pcm = stt_g711_clean(x->g711, stt_g711_law(pcm, n), pcm, n);
        if (!(pcm = stt_resample(x->rs, pcm, n, &n, out->error, sizeof(out->error))))
            return -1;
        fold_high_band(x->rs, n);
        dither(stt_resampled(x->rs), n);
    } else {
        if (n > x->max_samples) {
            snprintf(out->error, sizeof(out->error),
                     "utterance of %zu samples over the %zu allowed", n, x->max_samples);
            return -1;
        }
        memcpy(x->wide, pcm, n * sizeof(int16_t));
        dither(x->wide, n);
        pcm = x->wide;
    }
    /* Each utterance its own stream: the channel's noise level and cepstral mean that
     * pocketsphinx keeps across a stream's utterances would be other speakers'. */
    if (ps_start_stream(x->ps) < 0 || ps_start_utt(x->ps) < 0) {
        snprintf(out->error, sizeof(out->error), "pocketsphinx could not start an utterance");
        return -1;
    }
    int rc = ps_process_raw(x->ps, pcm, n, FALSE, TRUE);
    if (ps_end_utt(x->ps) < 0 || rc < 0) {
        snprintf(out->error, sizeof(out->error), "pocketsphinx could not decode the utterance");
        return -1;
    }
    int32 score;
    const char *hyp = ps_get_hyp(x->ps, &score);
    if (!hyp || !hyp[0])
        return 0; /* nothing recognised */
    str_copy(out->text, sizeof(out->text), hyp);
    out->confidence = mean_word_posterior(x->ps);
    return 0;
}

static void sphinx_close(void *state)
{
    struct sphinx *x = state;
    ps_free(x->ps);
    stt_resampler_destroy(x->rs);
    stt_g711_destroy(x->g711);
    free(x->wide);
    free(x);
}

const struct stt_backend stt_sphinx_backend = {
    .name = "pocketsphinx",
    .open = sphinx_open,
    .recognise = sphinx_recognise,
    .close = sphinx_close,
};
