/* The built-in speech recogniser's cost: loads one pocketsphinx decoder (as a recogniser thread
 * does), then recognises sentences rendered by the server's TTS (flite, 8 kHz, telephone band)
 * on this one thread, and prints the decoder's memory, the CPU time per second of speech (the
 * real-time factor on one core) and what was recognised.
 *
 * usage: build/bench_stt [rounds] [model_dir] */
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

int main(int argc, char **argv)
{
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
            struct stt_audio a = {
                .pcm = pcm[i], .n = len[i], .language = "en-US", .stream_id = "bench"};
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
