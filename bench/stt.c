/* The built-in speech recogniser's cost: loads one pocketsphinx decoder (as a recogniser thread
 * does), then recognises sentences rendered by the server's TTS (flite, 8 kHz, telephone band)
 * on this one thread, and prints the decoder's memory, the CPU time per second of speech (the
 * real-time factor on one core) and what was recognised.
 *
 * usage: build/bench_stt [rounds] [model_dir]
 *        build/bench_stt --files [--model DIR] FILE.wav...
 * The second form decodes each file directly with the same recogniser (8 kHz files as the
 * collector hands them over, 16 kHz files as they are) and prints one line per file:
 * its name, the CPU seconds it took, its seconds of audio and what was recognised, separated
 * by tabs (bench/stt compares these with what a call into a conference gives). */
#include <sndfile.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "speech/stt_internal.h"
#include "speech/tts.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* A mono 16-bit file at 8 or 16 kHz, read whole. */
static int16_t *read_wav(const char *path, size_t *n, int *rate)
{
    SF_INFO info = {0};
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, sf_strerror(NULL));
        return NULL;
    }
    if (info.channels != 1 ||
        (info.samplerate != STT_RATE && info.samplerate != STT_RECOGNISER_RATE)) {
        fprintf(stderr, "%s: want mono at 8000 or 16000 Hz (it has %d channels at %d Hz)\n", path,
                info.channels, info.samplerate);
        sf_close(f);
        return NULL;
    }
    int16_t *pcm = malloc((size_t)info.frames * sizeof(int16_t) + 2);
    *n = (size_t)sf_readf_short(f, pcm, info.frames);
    *rate = info.samplerate;
    sf_close(f);
    return pcm;
}

static int decode_files(int argc, char **argv)
{
    const char *dir = "/usr/share/pocketsphinx/model/en-us";
    int first = 2;
    if (argc > 3 && strcmp(argv[2], "--model") == 0) {
        dir = argv[3];
        first = 4;
    }
    char err[STT_ERROR_MAX];
    atomic_bool stop = false;
    size_t max = 60 * STT_RECOGNISER_RATE;
    void *dec = stt_sphinx_backend.open((void *)dir, max, &stop, err, sizeof(err));
    if (!dec) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 0;
    for (int i = first; i < argc; i++) {
        size_t n = 0;
        int rate = 0;
        int16_t *pcm = read_wav(argv[i], &n, &rate);
        if (!pcm || n == 0 || n > max) {
            free(pcm);
            rc = 1;
            continue;
        }
        struct stt_answer ans;
        memset(&ans, 0, sizeof(ans));
        struct stt_audio a = {
            .pcm = pcm, .n = n, .rate = rate, .language = "en-US", .stream_id = "bench"};
        double c0 = cpu_seconds();
        if (stt_sphinx_backend.recognise(dec, &a, &ans) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], ans.error);
            rc = 1;
        } else {
            printf("%s\t%.3f\t%.3f\t%s\n", argv[i], cpu_seconds() - c0, (double)n / rate, ans.text);
        }
        fflush(stdout);
        free(pcm);
    }
    stt_sphinx_backend.close(dec);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--files") == 0)
        return decode_files(argc, argv);
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 3;
    if (rounds < 1)
        rounds = 1;
    const char *dir = argc > 2 ? argv[2] : "/usr/share/pocketsphinx/model/en-us";
    static const char *const sentences[] = {
        "Please call me back tomorrow about the budget meeting.",
        "We should buy a new computer for the office.",
        "Hello everyone, thank you for joining the conference today.",
        "The weather in Paris is very cold this morning.",
    };
    size_t n_sent = sizeof(sentences) / sizeof(sentences[0]);
    char err[STT_ERROR_MAX];
    if (stt_sphinx_check_model(dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* The longest sentence bounds the decoder's buffers, as max_utterance_ms does. */
    int16_t *pcm[sizeof(sentences) / sizeof(sentences[0])];
    size_t len[sizeof(sentences) / sizeof(sentences[0])], max = 0;
    for (size_t i = 0; i < n_sent; i++) {
        if (tts_render_sync(sentences[i], &pcm[i], &len[i]) != 0) {
            fprintf(stderr, "render failed\n");
            return 1;
        }
        max = len[i] > max ? len[i] : max;
    }
    atomic_bool stop = false;
    long before = rss_kb();
    double t0 = cpu_seconds();
    void *dec = stt_sphinx_backend.open((void *)dir, max, &stop, err, sizeof(err));
    if (!dec) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double load = cpu_seconds() - t0;
    long after = rss_kb();
    printf("conferenced speech to text (pocketsphinx en-us, 8 kHz audio resampled to 16 kHz), "
           "%d rounds, one core\n",
           rounds);
    printf("  decoder: %.2f s to load, %.1f MB resident\n", load, (double)(after - before) / 1024);
    double all_cpu = 0, all_audio = 0;
    for (size_t i = 0; i < n_sent; i++) {
        double cpu = 0;
        struct stt_answer ans;
        for (int r = 0; r < rounds; r++) {
            memset(&ans, 0, sizeof(ans));
            struct stt_audio a = {.pcm = pcm[i],
                                  .n = len[i],
                                  .rate = STT_RATE,
                                  .language = "en-US",
                                  .stream_id = "bench"};
            double c0 = cpu_seconds();
            if (stt_sphinx_backend.recognise(dec, &a, &ans) != 0) {
                fprintf(stderr, "%s\n", ans.error);
                return 1;
            }
            cpu += cpu_seconds() - c0;
        }
        double audio = (double)len[i] / STT_RATE * rounds;
        all_cpu += cpu;
        all_audio += audio;
        printf("  %4.1f s: RTF %.2f, confidence %.2f: \"%s\" (said: \"%s\")\n",
               (double)len[i] / STT_RATE, cpu / audio, ans.confidence, ans.text, sentences[i]);
        free(pcm[i]);
    }
    printf("  overall: real-time factor %.2f (%.0f ms CPU per second of speech)\n",
           all_cpu / all_audio, all_cpu / all_audio * 1000);
    stt_sphinx_backend.close(dec);
    return 0;
}
