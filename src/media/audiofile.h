/* Sounds to play, loaded from a file or a URL: fetched with libcurl, decoded with libsndfile (WAV
 * and whatever else it reads: FLAC, Ogg/Vorbis, Opus, MP3, AIFF, AU...), mixed down to mono and
 * resampled to 8 kHz with libsamplerate into a media clip. The work runs on the libuv thread pool.
 *
 * Functions here are for the loop thread. */
#ifndef CONFERENCED_AUDIOFILE_H
#define CONFERENCED_AUDIOFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "media/engine.h"

#define AUDIO_MAX_BODY ((size_t)20 << 20) /* bytes fetched over HTTP */
#define AUDIO_MAX_SECONDS 600
#define AUDIO_HTTP_TIMEOUT_S 15
#define AUDIO_HTTP_MAX_REDIRECTS 3

struct audio_job;

/* Called on the loop thread, never from inside audio_load(). clip: one reference for the callee,
 * or NULL with error saying what was wrong ("HTTP 404 fetching http://...", "file not found:
 * ...", "not a sound file libsndfile can read: ..."). The job handle is gone once this is called.
 */
typedef void (*audio_done_cb)(void *arg, struct media_clip *clip, const char *error);

/* Loads a sound for playback from an absolute local path, a file:// URL (local), or an http(s)
 * URL (timeout 15 s, at most 3 redirects, http/https only, body at most 20 MiB); at most 10
 * minutes of audio. Returns a job handle, or NULL with a message in err for an unusable location
 * (a relative path, another scheme, a file:// URL naming another host). */
/* Start-up, before any load: whether http(s) sounds may come from private, loopback or
 * link-local addresses (refused by default, like webhooks). */
void audio_allow_private_hosts(bool allow);
struct audio_job *audio_load(uv_loop_t *loop, const char *location, audio_done_cb cb, void *arg,
                             char *err, size_t errlen);
/* Before the callback: it will not be called; a fetch in progress is aborted, and the job freed
 * once the pool is done with it (run the loop). */
void audio_cancel(struct audio_job *j);

#endif
