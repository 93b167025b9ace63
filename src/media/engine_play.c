/* Clips (immutable shared audio) and their playback to legs outside rooms: the control side
 * queues a play with its own clip reference; the media thread sends one frame per tick and hands
 * the reference back in MEDIA_LEG_PLAY_DONE (a clip is never freed inside the tick). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "media/engine_internal.h"

/* ---- media thread ---- */

/* The event carries the clip reference back to the control thread, which drops it. */
void engine_play_end(struct media_thread *t, struct media_leg *l, bool stopped)
{
    if (!l->clip)
        return;
    struct ev ev = {
        .type = EV_PUBLIC,
        .pub = {.type = MEDIA_LEG_PLAY_DONE, .leg = l, .play_id = l->play_id, .stopped = stopped},
        .ptr = l->clip};
    l->clip = NULL;
    engine_emit(t, &ev);
}

void engine_play_start(struct media_thread *t, struct media_leg *l, const struct cmd *c)
{
    engine_play_end(t, l, true);
    if (l->room || c->clip->n == 0) {
        /* Joined since the play was asked for (nothing to play to), or nothing to send: done at
         * once. */
        struct ev ev = {.type = EV_PUBLIC,
                        .pub = {.type = MEDIA_LEG_PLAY_DONE,
                                .leg = l,
                                .play_id = c->play_id,
                                .stopped = l->room != NULL},
                        .ptr = c->clip};
        engine_emit(t, &ev);
        return;
    }
    l->clip = c->clip;
    l->clip_pos = 0;
    l->play_id = c->play_id;
    l->play_first = true;
}

/* While nothing is sent the timestamp still follows the clock, as RFC 3550 wants; the marker bit
 * then starts the next play. */
bool engine_play_next(struct media_thread *t, struct media_leg *l, int16_t pcm[MIX_FRAME])
{
    if (!l->clip) {
        engine_leg_skip_frame(l);
        return false;
    }
    const struct media_clip *c = l->clip;
    size_t left = c->n - l->clip_pos, take = left < MIX_FRAME ? left : MIX_FRAME;
    memcpy(pcm, c->samples + l->clip_pos, take * sizeof(*pcm));
    memset(pcm + take, 0, (MIX_FRAME - take) * sizeof(*pcm));
    l->clip_pos += take;
    struct leg_codec *lc = l->lc;
    if (l->remote_set && lc) {
        int16_t wide[MIX_FRAME_WB];
        const int16_t *frame = pcm;
        if (lc->clip_up) {
            resampler_run_i16(lc->clip_up, pcm, MIX_FRAME, wide);
            frame = wide;
        }
        uint8_t enc[CODEC_OUT_MAX];
        size_t len = codec_encode(lc->enc, frame, enc);
        if (len)
            engine_leg_send_frame(t, l, enc, len, l->play_first);
        else
            engine_leg_skip_frame(l);
    } else {
        engine_leg_skip_frame(l);
    }
    l->play_first = false;
    if (l->clip_pos >= c->n)
        engine_play_end(t, l, false);
    return true;
}

/* ---- control thread (clips: any thread) ---- */

void media_leg_play(struct media_engine *e, struct media_leg *l, struct media_clip *clip,
                    uint32_t play_id)
{
    struct cmd c = {
        .type = CMD_LEG_PLAY, .leg = l, .clip = media_clip_ref(clip), .play_id = play_id};
    engine_leg_send(l, &c);
}

void media_leg_play_stop(struct media_engine *e, struct media_leg *l)
{
    struct cmd c = {.type = CMD_LEG_PLAY_STOP, .leg = l};
    engine_leg_send(l, &c);
}

struct media_clip *media_clip_create(const int16_t *samples, size_t n)
{
    if (n > (SIZE_MAX - sizeof(struct media_clip)) / sizeof(int16_t))
        die("clip of %zu samples is too large", n);
    struct media_clip *c = xmalloc(sizeof(*c) + n * sizeof(int16_t));
    atomic_init(&c->refs, 1);
    c->n = n;
    if (n)
        memcpy(c->samples, samples, n * sizeof(int16_t));
    return c;
}

struct media_clip *media_clip_ref(struct media_clip *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void media_clip_unref(struct media_clip *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

size_t media_clip_samples(const struct media_clip *c)
{
    return c->n;
}

const int16_t *media_clip_data(const struct media_clip *c)
{
    return c->samples;
}
