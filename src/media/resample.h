/* Sample-rate conversion between the two bands rooms mix in (8 and 16 kHz), on speexdsp's
 * resampler: 20 ms frames in, 20 ms frames out, with the filter's history kept between them.
 * Created on the control thread; used on one media thread (never allocates, blocks or locks). */
#ifndef CONFERENCED_RESAMPLE_H
#define CONFERENCED_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct resampler;

/* Control thread. 8000 -> 16000 or 16000 -> 8000. Never NULL (aborts when out of memory). */
struct resampler *resampler_create(int in_rate, int out_rate);
void resampler_destroy(struct resampler *r); /* NULL is a no-op */
/* Forgets the history (the next frame does not follow the last one). */
void resampler_reset(struct resampler *r);
/* Media thread. One 20 ms frame: n samples in, n * out_rate / in_rate out. The 32-bit form
 * converts the mixer's sums (which may exceed 16 bits); the 16-bit form saturates. */
void resampler_run_i32(struct resampler *r, const int32_t *in, size_t n, int32_t *out);
void resampler_run_i16(struct resampler *r, const int16_t *in, size_t n, int16_t *out);

#endif
