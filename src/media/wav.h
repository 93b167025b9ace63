/* WAV files of the recorder: RIFF/WAVE, one PCM fmt chunk (8 or 16 kHz, mono, signed 16-bit little
 * endian) and one data chunk, the canonical 44-byte header. Written by hand rather than through
 * libsndfile because crash safety needs exact control of when the header's sizes are rewritten in
 * place and synced, and of every write's error (ENOSPC, EFBIG); libsndfile reads them back in the
 * tests. Any thread. */
#ifndef CONFERENCED_WAV_H
#define CONFERENCED_WAV_H

#include <stdint.h>

#define WAV_HEADER_BYTES 44
#define WAV_RATE 8000     /* narrowband (G.711) */
#define WAV_RATE_WB 16000 /* wideband (G.722, Opus) */
/* The largest data chunk a WAV header can describe (a RIFF size is 32 bits). */
#define WAV_DATA_MAX (UINT32_C(0xFFFFFFFF) - 36)

/* The header of a file holding data_bytes of audio at WAV_RATE (at most WAV_DATA_MAX: larger is
 * taken as that). */
void wav_header(uint8_t out[WAV_HEADER_BYTES], uint32_t data_bytes);
/* The same header at another sample rate (mono 16-bit still). */
void wav_header_rate(uint8_t out[WAV_HEADER_BYTES], uint32_t rate, uint32_t data_bytes);
/* A file a crash left behind: its header is rewritten to describe the whole samples on disk (an odd
 * trailing byte is cut), and the file synced. A file shorter than a header gets an empty one.
 * Audio beyond what a header can describe (WAV_DATA_MAX) is left in place, not described. A file
 * whose first 44 bytes are neither this format's header (whatever its sizes say) nor all zeros (a
 * crash before the header reached the disk: taken as WAV_RATE) is someone else's: -EINVAL,
 * untouched; "this format" is either of our rates, and the rate is kept. Returns 0 with the data
 * bytes in *data_bytes and the rate in *rate (NULL: not wanted), or -errno. */
int wav_repair(const char *path, uint64_t *data_bytes, uint32_t *rate);

#endif
