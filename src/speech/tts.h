/* Text to speech for prompts: flite with the voice cmu_us_kal (8 kHz, ready for the media engine
 * without resampling). Renders run on the libuv thread pool, one at a time (flite is not
 * thread-safe), so a burst of prompts takes one pool thread, not all of them. A cache keeps recent
 * renders (keyed by language and text, LRU, bounded by bytes) so a repeated prompt costs nothing.
 *
 * Functions here are for the loop thread unless marked otherwise. */
#ifndef CONFERENCED_TTS_H
#define CONFERENCED_TTS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "media/engine.h"

#define TTS_MAX_TEXT 4000                  /* bytes */
#define TTS_CACHE_BYTES ((size_t)32 << 20) /* rendered audio kept for reuse */

struct tts;
struct tts_job;

/* Loop thread. Languages: "en-US" only (tts_languages()). */
struct tts *tts_create(uv_loop_t *loop);
/* Loop thread. Pending jobs are cancelled (their callbacks are not called); NULL is a no-op. Run
 * the loop afterwards so the handles close and a render in progress is freed. */
void tts_destroy(struct tts *t);

/* Called on the loop thread, never from inside tts_render(). clip: one reference for the callee,
 * or NULL with error set (message text). The job handle is gone once this is called. */
typedef void (*tts_done_cb)(void *arg, struct media_clip *clip, const char *error);

/* Loop thread. Starts rendering text (UTF-8; what flite cannot say is spoken as a pause) in
 * language (NULL: "en-US"). Returns a job handle, or NULL with a message in err for bad input:
 * an unsupported language (the message names the supported ones), empty text, text over
 * TTS_MAX_TEXT bytes. */
struct tts_job *tts_render(struct tts *t, const char *text, const char *language, tts_done_cb cb,
                           void *arg, char *err, size_t errlen);
/* Loop thread, before the callback: the callback will not be called; a render already running
 * finishes in the background (its result still fills the cache) and is freed. */
void tts_cancel(struct tts_job *j);
/* Any thread. The supported languages, comma separated: "en-US". */
const char *tts_languages(void);
/* Any thread (serialised with the renders). Renders text synchronously for benchmarks and tests:
 * 8 kHz samples in *samples (the caller frees them with free()) and their count in *n. Returns 0,
 * or -1 for text that is empty, too long or that flite fails on. */
int tts_render_sync(const char *text, int16_t **samples, size_t *n);

#endif
