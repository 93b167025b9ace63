/* Speech to text for live transcription. Per participant, the media side's voice activity
 * detector pushes only the frames of utterances into a speech tap (media/tap.h, marks
 * MEDIA_TAP_BEGIN / MEDIA_TAP_END). A collector thread of our own drains every open stream's tap
 * about every 50 ms and assembles whole utterances; each goes to the recogniser of its stream's
 * language:
 *   - the built-in one (en-US): pocketsphinx 0.8 with Debian's pocketsphinx-en-us model, on
 *     `threads` threads of our own, each with its own decoder (a decoder is not thread-safe, and
 *     costs about 90 MB);
 *   - an external one (http_url, for http_languages): a whisper.cpp server (POST /inference) or
 *     an OpenAI-style endpoint (POST /v1/audio/transcriptions), one request at a time, sent by
 *     libcurl on the control loop.
 * Each recogniser has a bounded queue of waiting utterances. The media path never waits and the
 * collector never waits for a recogniser: when a queue is full, its oldest waiting utterance is
 * dropped and reported STT_SKIPPED. Every result comes back to the control loop through one
 * uv_async_t and is handed to the callback there.
 *
 * An utterance ends at a frame marked END, at a BEGIN inside one (its END was lost), when the
 * tick gap since its last frame exceeds 1 s or no frame came for 1 s (a lost END), when it
 * reaches max_utterance_ms (the rest starts a new one), or when the stream is closed or its tap
 * is closed and empty. Frames the tap dropped inside an utterance (tick gaps) become silence.
 *
 * Functions are for the control (loop) thread unless marked otherwise. */
#ifndef CONFERENCED_STT_H
#define CONFERENCED_STT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ids.h"
#include "media/tap.h"

/* Limits of the settings (stt_create refuses values outside them, naming the setting). */
#define STT_THREADS_MAX 16
#define STT_QUEUE_MAX 1024
#define STT_UTTERANCE_MS_MIN 1000
#define STT_UTTERANCE_MS_MAX 60000
#define STT_HTTP_TIMEOUT_MS_MIN 100
#define STT_HTTP_TIMEOUT_MS_MAX 600000
#define STT_URL_MAX 2048
#define STT_HTTP_LANGUAGES_MAX 16 /* languages in http_languages */
#define STT_LANGUAGE_LEN 15       /* characters of one language tag ("de-DE", "zh-Hant-TW") */
/* A transcript longer than this (bytes) is cut at a character boundary. */
#define STT_TEXT_MAX 4096
/* The built-in recogniser's language. */
#define STT_BUILTIN_LANGUAGE "en-US"

struct stt_config {
    int threads;                /* built-in recogniser threads, 0..16 (setting stt_workers, 2);
                                   0: no built-in recogniser (only http_url's languages) */
    int queue_max;              /* utterances waiting per recogniser, 1..1024 (stt_queue, 16) */
    const char *model_dir;      /* NULL or "": /usr/share/pocketsphinx/model/en-us (holding
                                   en-us/, en-us.lm.bin, cmudict-en-us.dict) */
    const char *http_url;       /* the external recogniser's full endpoint URL (stt_url);
                                   NULL or "": none */
    const char *http_languages; /* comma-separated languages it serves (stt_languages), e.g.
                                   "de-DE,fr-FR"; required with http_url, refused without */
    int http_timeout_ms;        /* one request, 100..600,000 (stt_timeout_ms, 30,000) */
    int max_utterance_ms;       /* longest utterance, 1,000..60,000 (stt_max_utterance_ms,
                                   15,000); longer is cut and the rest starts a new one */
};

/* Any thread. Fills cfg with the defaults above (the strings NULL). */
void stt_config_defaults(struct stt_config *cfg);

enum stt_kind {
    STT_TRANSCRIPT, /* an utterance recognised as text */
    STT_SKIPPED,    /* an utterance dropped unrecognised: its recogniser's queue was full */
    STT_FAILED,     /* an utterance the recogniser failed on (error says why) */
    STT_CLOSED,     /* the stream's last result: nothing more comes for stream_id */
};

/* Valid during the callback only. */
struct stt_result {
    const char *stream_id;
    enum stt_kind kind;
    const char *text;  /* STT_TRANSCRIPT: what was said, UTF-8, never "" (an utterance
                          recognised as nothing is dropped and counted in stt_stats.empty);
                          else "" */
    double confidence; /* STT_TRANSCRIPT: 0..1, or -1 when the recogniser gives none (the
                          external one); else 0 */
    uint64_t begin_tick, end_tick; /* the utterance's first and last frame's tick (not
                                      STT_CLOSED: 0) */
    const char *error; /* STT_FAILED: why, e.g. "the recogniser at http://127.0.0.1:8080/inference
                          did not answer: ..."; else "" */
};

/* Control thread, once per result; a stream's results come in the order of its utterances, and
 * STT_CLOSED last. The callback may open and close streams, and may destroy the stt (then no
 * further result is delivered). */
typedef void (*stt_result_cb)(void *ctx, const struct stt_result *r);

struct stt;

/* Control thread. Starts the collector and the external recogniser's thread; the built-in
 * decoders load on their own threads when the first en-US stream opens (about half a second
 * each, in turn; meanwhile utterances wait in the queue, and a decoder that fails to load fails
 * each utterance it takes with the reason). Returns NULL with a message in err for a setting
 * out of range (naming it), a bad URL, a missing model file, or no recogniser at all. The uv_async_t keeps the loop alive only while streams are
 * open. */
struct stt *stt_create(uv_loop_t *loop, const struct stt_config *cfg, stt_result_cb cb, void *ctx,
                       char *err, size_t errlen);
/* Control thread. Stops the threads (an utterance being decoded is finished first: at most a
 * few seconds), cancels a request in flight, drops pending results (the callback is not called
 * again) and releases every tap. NULL is a no-op. Run the loop afterwards so the handles close. */
void stt_destroy(struct stt *s);
/* Control thread. True when language (case-insensitive, e.g. "en-us") has a recogniser:
 * STT_BUILTIN_LANGUAGE with built-in threads, and http_languages. */
bool stt_language_supported(const struct stt *s, const char *language);
/* Control thread. The supported languages for messages, e.g. "en-US, de-DE". Owned by s. */
const char *stt_languages(const struct stt *s);
/* Control thread. Starts transcribing tap under stream_id (at most ID_LEN characters) in
 * language. Takes its own reference on the tap (released once the stream ends; the tap is only
 * read, never closed). The stream ends at stt_stream_close(), or by itself once the tap is closed
 * and empty; either way STT_CLOSED is its last result, and the id can be used again once it has
 * been delivered. Returns 0, or -1 with a message in err: an unsupported language (naming the
 * supported ones), an id already open or too long. */
int stt_stream_open(struct stt *s, const char *stream_id, struct media_tap *tap,
                    const char *language, char *err, size_t errlen);
/* Control thread. Ends the stream: what its tap holds is taken, the utterance in progress is
 * finished and still recognised, and STT_CLOSED follows all its other results. Nothing when the
 * id is not open or already closing. */
void stt_stream_close(struct stt *s, const char *stream_id);
/* Control thread. Streams opened whose STT_CLOSED has not been delivered yet. */
size_t stt_stream_count(const struct stt *s);

struct stt_stats {
    uint64_t utterances; /* assembled and handed to a recogniser's queue */
    uint64_t recognised; /* reported as STT_TRANSCRIPT */
    uint64_t empty;      /* recognised as nothing (not reported) */
    uint64_t skipped;    /* dropped from a full queue (reported as STT_SKIPPED) */
    uint64_t failed;     /* reported as STT_FAILED */
    double audio_s;      /* seconds of audio in the utterances assembled */
    double busy_s;       /* seconds (wall time) recognisers spent on utterances */
};

/* Any thread. Counters since stt_create. */
void stt_stats(const struct stt *s, struct stt_stats *out);

#endif
