/* Speakers: the transcribe module's media side (struct transcribe_listen). Each speaker is one
 * call's audio in one direction (what it says, or what it hears), tapped after its jitter buffer
 * by a speech tap (the voice activity detector runs on the media thread and cuts utterances) and
 * handed to the recognisers (speech/stt.h). What they recognise comes back as heard results
 * with wall-clock times. Legs are found through a lookup by call id, so a leg destroyed
 * meanwhile is never touched. Control thread only.
 *
 * Who calls whom: transcribe → speakers (through struct transcribe_listen) → {engine, stt}; the
 * recognisers' results → speakers → heard (the transcribe module's transcribe_on_heard, wired in
 * main.c). */
#ifndef CONFERENCED_SPEAKERS_H
#define CONFERENCED_SPEAKERS_H

#include "media/engine.h"
#include "speech/stt.h"
#include "transcribe/transcribe.h"

struct speakers_deps {
    struct media_engine *media;
    struct stt *stt;         /* NULL: no recogniser (no language is supported) */
    const char *unavailable; /* with stt NULL: why, for the messages (copied) */
    int buffer_ms;           /* each speaker's tap holds this much audio for the collector */
    int max_speakers;        /* the max_transcribe_speakers setting */
    void *ctx;
    struct media_leg *(*leg)(void *ctx, const char *call_id); /* NULL when it has none now */
    void (*heard)(void *heard_ctx, const struct transcribe_heard *h);
    void *heard_ctx;
};

struct speakers;

struct speakers *speakers_create(const struct speakers_deps *deps);
/* Untaps every speaker; the stt must be destroyed after this. NULL is a no-op. */
void speakers_destroy(struct speakers *s);
struct transcribe_listen speakers_iface(struct speakers *s);
/* The recognisers' results, to be wired as stt's callback (ctx: the struct speakers). */
void speakers_on_stt(void *ctx, const struct stt_result *r);
/* Speakers listened to now. */
size_t speakers_count(const struct speakers *s);

#endif
