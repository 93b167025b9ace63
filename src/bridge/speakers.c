#include "bridge/speakers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "media/tap.h"
#include "media/vad.h"

#define FRAME_US 20000

struct speaker {
    char id[ID_LEN + 1]; /* the stream's id at the recognisers */
    char transcribe_id[ID_LEN + 1];
    char call_id[ID_LEN + 1];
    char conferencecall_id[ID_LEN + 1];
    char direction[8];
    struct media_tap *tap; /* our reference */
    bool tapped;           /* still on the leg (as far as we know) */
    bool closing;          /* stt_stream_close asked: STT_CLOSED ends it */
    /* A frame's tick to wall-clock time: the engine's tick and the wall clock at the start. */
    uint64_t tick0;
    int64_t wall0_us;
};

struct speakers {
    struct speakers_deps d;
    char none[300];       /* without a recogniser: "none (why)" */
    struct idmap streams; /* stream id -> struct speaker */
};

static void untap(struct speakers *s, struct speaker *sp)
{
    if (!sp->tapped)
        return;
    sp->tapped = false;
    struct media_leg *l = s->d.leg(s->d.ctx, sp->call_id);
    if (l)
        media_leg_untap(s->d.media, l, sp->tap);
}

static void close_speaker(struct speakers *s, struct speaker *sp)
{
    untap(s, sp);
    if (sp->closing)
        return;
    sp->closing = true;
    stt_stream_close(s->d.stt, sp->id); /* the utterance in progress is still recognised */
}

static int64_t wall_of(const struct speaker *sp, uint64_t tick)
{
    int64_t frames = (int64_t)(tick - sp->tick0);
    return sp->wall0_us + frames * FRAME_US;
}

void speakers_on_stt(void *ctx, const struct stt_result *r)
{
    struct speakers *s = ctx;
    struct speaker *sp = idmap_get(&s->streams, r->stream_id);
    if (!sp)
        return;
    if (r->kind == STT_CLOSED) {
        idmap_del(&s->streams, sp->id);
        untap(s, sp);
        media_tap_unref(sp->tap);
        free(sp);
        return;
    }
    struct transcribe_heard h = {
        .kind = r->kind == STT_TRANSCRIPT ? TRANSCRIBE_HEARD_TEXT
                : r->kind == STT_SKIPPED  ? TRANSCRIBE_HEARD_SKIPPED
                                          : TRANSCRIBE_HEARD_FAILED,
        .transcribe_id = sp->transcribe_id,
        .call_id = sp->call_id,
        .conferencecall_id = sp->conferencecall_id,
        .direction = sp->direction,
        .text = r->text,
        .confidence = r->confidence,
        .tm_begin = wall_of(sp, r->begin_tick),
        .tm_end = wall_of(sp, r->end_tick + 1),
        .error = r->error,
    };
    s->d.heard(s->d.heard_ctx, &h);
}

static int add(void *ctx, const struct transcribe_speaker *in, struct error *e)
{
    struct speakers *s = ctx;
    if (s->streams.len >= (size_t)s->d.max_speakers)
        return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_SPEAKERS",
                         "This server already listens to %d speakers (the "
                         "max_transcribe_speakers setting).",
                         s->d.max_speakers);
    struct media_leg *leg = s->d.leg(s->d.ctx, in->call_id);
    if (!leg)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "Call %s has no audio to transcribe.", in->call_id);
    size_t frames = (size_t)(s->d.buffer_ms > 40 ? s->d.buffer_ms : 40) / 20;
    struct vad_config vc = vad_config_default();
    /* The leg's own band: a wideband caller is recognised from its 16 kHz audio. */
    struct media_tap *tap = media_tap_create_speech(frames, media_leg_rate(leg), &vc);
    bool hears = !strcmp(in->direction, "out");
    if (media_leg_tap_side(s->d.media, leg, tap, hears ? MEDIA_TAP_HEARS : MEDIA_TAP_SAYS) < 0) {
        media_tap_unref(tap);
        return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_TAPS",
                         "Call %s already has %d recordings or transcriptions on it.", in->call_id,
                         MEDIA_TAPS_MAX);
    }
    struct speaker *sp = xcalloc(1, sizeof(*sp));
    id_new(sp->id);
    memcpy(sp->transcribe_id, in->transcribe_id, ID_LEN + 1);
    memcpy(sp->call_id, in->call_id, ID_LEN + 1);
    memcpy(sp->conferencecall_id, in->conferencecall_id ? in->conferencecall_id : ID_NIL,
           ID_LEN + 1);
    snprintf(sp->direction, sizeof(sp->direction), "%s", hears ? "out" : "in");
    sp->tap = tap;
    sp->tapped = true;
    sp->tick0 = media_engine_tick_now(s->d.media);
    sp->wall0_us = tm_now_us();
    char err[256];
    if (stt_stream_open(s->d.stt, sp->id, tap, in->language, err, sizeof(err)) < 0) {
        untap(s, sp);
        media_tap_unref(tap);
        free(sp);
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_LANGUAGE", "%s", err);
    }
    idmap_put(&s->streams, sp->id, sp);
    return 0;
}

static void remove_speakers(void *ctx, const char *transcribe_id, const char *call_id)
{
    struct speakers *s = ctx;
    size_t it = 0;
    void *v;
    while (idmap_next(&s->streams, &it, NULL, &v)) {
        struct speaker *sp = v;
        if (!strcmp(sp->transcribe_id, transcribe_id) &&
            (!call_id || !strcmp(sp->call_id, call_id)))
            close_speaker(s, sp); /* the map is unchanged: STT_CLOSED comes later */
    }
}

static bool supported(void *ctx, const char *language)
{
    struct speakers *s = ctx;
    return s->d.stt && stt_language_supported(s->d.stt, language);
}

static const char *languages(void *ctx)
{
    struct speakers *s = ctx;
    return s->d.stt ? stt_languages(s->d.stt) : s->none;
}

struct speakers *speakers_create(const struct speakers_deps *deps)
{
    struct speakers *s = xcalloc(1, sizeof(*s));
    s->d = *deps;
    snprintf(s->none, sizeof(s->none), "none (%s)",
             deps->unavailable && deps->unavailable[0] ? deps->unavailable
                                                       : "no recogniser is configured");
    idmap_init(&s->streams);
    return s;
}

void speakers_destroy(struct speakers *s)
{
    if (!s)
        return;
    size_t it = 0;
    void *v;
    while (idmap_next(&s->streams, &it, NULL, &v)) {
        struct speaker *sp = v;
        untap(s, sp);
        media_tap_unref(sp->tap);
        free(sp);
    }
    idmap_fini(&s->streams);
    free(s);
}

struct transcribe_listen speakers_iface(struct speakers *s)
{
    struct transcribe_listen l = {s, supported, languages, add, remove_speakers};
    return l;
}

size_t speakers_count(const struct speakers *s)
{
    return s->streams.len;
}
