/* Speech taps' cost on the media thread: pushes frames into many speech taps (the detector, its
 * pre-roll ring and the utterances' copies into the tap), as a media thread does for every leg
 * tapped for transcription, and prints the CPU time per frame and per tick of all the legs. The
 * audio alternates 2 s of a loud tone and 3 s of quiet noise, so about half the frames are
 * handed on; a consumer drains each tap after every tick's worth.
 *
 * usage: build/bench_vad [legs] [seconds] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "media/tap.h"

int main(int argc, char **argv)
{
    int legs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 500;
    int seconds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 60;
    if (legs < 1 || seconds < 1) {
        fprintf(stderr, "usage: bench_vad [legs >= 1] [seconds >= 1]\n");
        return 2;
    }
    struct media_tap **taps = calloc((size_t)legs, sizeof(*taps));
    if (!taps)
        return 1;
    for (int i = 0; i < legs; i++)
        taps[i] = media_tap_create_speech(250, 8000, NULL);
    /* one cycle of 5 s: 100 frames of tone, 150 of noise */
    static int16_t audio[250][MIX_FRAME];
    uint32_t seed = 1;
    for (int f = 0; f < 250; f++)
        for (int i = 0; i < MIX_FRAME; i++) {
            seed = seed * 1664525u + 1013904223u;
            int noise = (int)(seed >> 26) - 32;
            audio[f][i] = (int16_t)(f < 100 ? (i % 20 < 10 ? 6000 : -6000) + noise : noise);
        }
    uint64_t ticks = (uint64_t)seconds * 50, popped = 0;
    double cpu = 0;
    struct media_tap_frame out[32];
    for (uint64_t t = 0; t < ticks; t++) {
        clock_t t0 = clock();
        for (int i = 0; i < legs; i++) /* each leg at its own place in the cycle */
            media_tap_push(taps[i], t, audio[(t + (uint64_t)i * 7) % 250]);
        cpu += (double)(clock() - t0) / CLOCKS_PER_SEC;
        for (int i = 0; i < legs; i++)
            popped += media_tap_pop(taps[i], out, 32);
    }
    uint64_t frames = ticks * (uint64_t)legs;
    printf("speech taps: %d legs, %d s of audio each (%llu frames, %.0f %% handed on)\n", legs,
           seconds, (unsigned long long)frames, 100.0 * (double)popped / (double)frames);
    printf("producer CPU: %.0f ns per frame, %.1f us per tick for all the legs (a tick: 20 ms)\n",
           cpu * 1e9 / (double)frames, cpu * 1e6 / (double)ticks);
    for (int i = 0; i < legs; i++)
        media_tap_unref(taps[i]);
    free(taps);
    return 0;
}
