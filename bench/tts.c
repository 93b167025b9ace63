/* Text-to-speech render time: renders prompts of several lengths with the server's TTS (flite,
 * cmu_us_kal, 8 kHz) and prints the CPU time per second of speech and the real-time factor.
 * Repeated prompts are served from the server's cache; this measures the uncached render.
 *
 * usage: build/bench_tts [rounds] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "speech/tts.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5;
    if (rounds < 1)
        rounds = 1;
    static const char *const prompts[] = {
        "Goodbye.",
        "Welcome to the conference. Please enter your pin.",
        "Thank you for calling. All of our agents are busy helping other customers right now. "
        "Please stay on the line and the next available agent will be with you shortly. Your "
        "call is important to us.",
    };
    printf("conferenced text to speech (flite cmu_us_kal, 8 kHz), %d renders per prompt\n",
           rounds);
    double all_cpu = 0, all_audio = 0;
    for (size_t p = 0; p < sizeof(prompts) / sizeof(*prompts); p++) {
        double cpu = 0, audio = 0;
        for (int r = 0; r < rounds; r++) {
            int16_t *samples = NULL;
            size_t n = 0;
            double t0 = cpu_seconds();
            if (tts_render_sync(prompts[p], &samples, &n) != 0) {
                fprintf(stderr, "render failed\n");
                return 1;
            }
            cpu += cpu_seconds() - t0;
            audio += (double)n / 8000.0;
            free(samples);
        }
        all_cpu += cpu;
        all_audio += audio;
        printf("  %5.1f s of speech: %6.1f ms CPU per render, %5.1f ms per second of speech "
               "(%.0fx real time)\n",
               audio / rounds, cpu / rounds * 1000, cpu / audio * 1000, audio / cpu);
    }
    printf("  overall: %.1f ms CPU per second of speech (%.0fx real time)\n",
           all_cpu / all_audio * 1000, all_audio / all_cpu);
    return 0;
}
