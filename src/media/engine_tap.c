/* Taps of rooms and legs (media/tap.h). The control thread counts a room's or a leg's taps (the
 * limit is answered at once) and sends the engine's reference with the command; the media thread
 * keeps the taps in a fixed array on the object and pushes one frame per tick; when it lets a tap
 * go (untapped, or what it taps removed) it closes it and hands the reference back in an event,
 * so that the last reference is never dropped inside the tick. A leg's taps are on the leg, so
 * they move with it between threads, each with the side it taps. */
#include <assert.h>

#include "media/engine_internal.h"

static bool taps_has(const struct engine_taps *ts, const struct media_tap *tap)
{
    for (size_t i = 0; i < ts->n; i++)
        if (ts->tap[i] == tap)
            return true;
    return false;
}

static bool taps_remove(struct engine_taps *ts, const struct media_tap *tap)
{
    for (size_t i = 0; i < ts->n; i++)
        if (ts->tap[i] == tap) {
            ts->n--;
            ts->tap[i] = ts->tap[ts->n];
            ts->side[i] = ts->side[ts->n];
            ts->tap[ts->n] = NULL;
            return true;
        }
    return false;
}

/* A frame of one side, in its own band (NULL: silence). */
struct side_frame {
    const int16_t *pcm;
    int rate;
};

static void taps_push(const struct engine_taps *ts, uint64_t tick, struct side_frame f)
{
    for (size_t i = 0; i < ts->n; i++) /* a drop is counted by the tap */
        (void)media_tap_push_from(ts->tap[i], tick, f.pcm, f.rate);
}

/* Which sides a leg's taps want this tick (a bit per side), so each frame is made only when some
 * tap takes it. */
static unsigned taps_sides(const struct engine_taps *ts)
{
    unsigned want = 0;
    for (size_t i = 0; i < ts->n; i++)
        want |= 1u << ts->side[i];
    return want;
}

#define WANTS(want, side) (((want) >> (side)) & 1u)

/* frame[side]: the tick's frame of each side a tap wants (the others are not read). */
static void taps_push_sides(const struct engine_taps *ts, uint64_t tick,
                            const struct side_frame frame[3])
{
    for (size_t i = 0; i < ts->n; i++) {
        struct side_frame f = frame[ts->side[i]];
        (void)media_tap_push_from(ts->tap[i], tick, f.pcm, f.rate);
    }
}

static int leg_rate(const struct media_leg *l)
{
    return codec_info(l->mp.codec)->wide ? 16000 : 8000;
}

/* What the leg says this tick: the frame its jitter buffer gave the mixer, in its band. */
static struct side_frame says(const struct media_leg *l)
{
    return (struct side_frame){l->mp.has_in ? l->mp.in : NULL, leg_rate(l)};
}

/* What the leg is sent this tick in its room, in its band. */
static struct side_frame hears(const struct media_room *r, const struct media_leg *l,
                               int16_t pcm[MIX_FRAME_WB])
{
    mix_heard(&r->mix, &l->mp, pcm);
    return (struct side_frame){pcm, leg_rate(l)};
}

/* ---- media thread ---- */

static void hand_back(struct media_thread *t, struct media_tap *tap)
{
    media_tap_close(tap);
    struct ev ev = {.type = EV_TAP_RELEASE, .ptr = tap};
    engine_emit(t, &ev);
}

void engine_taps_hand_back(struct media_thread *t, struct engine_taps *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        hand_back(t, ts->tap[i]);
        ts->tap[i] = NULL;
    }
    ts->n = 0;
}

void engine_tap_apply(struct media_thread *t, const struct cmd *c)
{
    bool room = c->type == CMD_ROOM_TAP || c->type == CMD_ROOM_UNTAP;
    struct engine_taps *ts = room ? &c->room->taps : &c->leg->taps;
    if (c->type == CMD_ROOM_TAP || c->type == CMD_LEG_TAP) {
        if (ts->n < MEDIA_TAPS_MAX) {
            ts->side[ts->n] = room ? MEDIA_TAP_BOTH : c->side;
            ts->tap[ts->n++] = c->tap;
        } else { /* the control thread counts them first: not expected */
            engine_alarm_log(t, "too many taps");
            hand_back(t, c->tap);
        }
    } else if (taps_remove(ts, c->tap)) {
        hand_back(t, c->tap);
    }
    if (room)
        engine_room_update_active(t, c->room);
}

/* The room as a whole: the sum of everyone who talks, nobody subtracted, limited once, as a
 * listener who does not talk hears it (before encoding), in the room's widest band. Members who
 * do not talk are left out, as from every mix: they are below the talk threshold (digital
 * silence, line noise), and a recording of a large room would otherwise carry the noise floor of
 * every silent line. */
static struct side_frame room_frame(const struct media_room *r, int16_t pcm[MIX_FRAME_WB])
{
    return (struct side_frame){pcm, mix_whole(&r->mix, pcm)};
}

void engine_tap_room(struct media_room *r, uint64_t tick)
{
    int16_t whole_pcm[MIX_FRAME_WB], heard_pcm[MIX_FRAME_WB];
    struct side_frame whole = {NULL, 8000};
    bool made = false;
    if (r->taps.n) {
        whole = room_frame(r, whole_pcm);
        made = true;
        taps_push(&r->taps, tick, whole);
    }
    for (size_t k = 0; k < r->mix.n; k++) {
        const struct media_leg *m = r->members[k];
        if (!m->taps.n)
            continue;
        unsigned want = taps_sides(&m->taps);
        if (WANTS(want, MEDIA_TAP_BOTH) && !made) {
            whole = room_frame(r, whole_pcm); /* a member's call in a room: the room's whole mix */
            made = true;
        }
        struct side_frame frame[3] = {[MEDIA_TAP_BOTH] = whole, [MEDIA_TAP_SAYS] = says(m)};
        if (WANTS(want, MEDIA_TAP_HEARS))
            frame[MEDIA_TAP_HEARS] = hears(r, m, heard_pcm);
        taps_push_sides(&m->taps, tick, frame);
    }
}

/* A leg out of a room hears only clips (8 kHz); what it says is in its band. Both sides at once
 * are the two summed at 8 kHz (a wideband leg's voice brought down to it). */
void engine_tap_idle_leg(struct media_leg *l, uint64_t tick, const int16_t *clip)
{
    int16_t both[MIX_FRAME], said[MIX_FRAME];
    struct side_frame in = says(l);
    if (WANTS(taps_sides(&l->taps), MEDIA_TAP_BOTH)) {
        const int16_t *voice = in.pcm;
        if (voice && in.rate != 8000 && l->lc && l->lc->says_down) {
            resampler_run_i16(l->lc->says_down, voice, MIX_FRAME_WB, said);
            voice = said;
        } else if (in.rate != 8000) {
            voice = NULL; /* never expected: a wideband leg has its converter */
        }
        for (int i = 0; i < MIX_FRAME; i++)
            both[i] = mix_limit((voice ? voice[i] : 0) + (clip ? clip[i] : 0));
    }
    const struct side_frame frame[3] = {
        [MEDIA_TAP_BOTH] = {both, 8000}, [MEDIA_TAP_SAYS] = in, [MEDIA_TAP_HEARS] = {clip, 8000}};
    taps_push_sides(&l->taps, tick, frame);
}

/* ---- control thread ---- */

void engine_tap_release(struct media_tap *tap)
{
    media_tap_close(tap);
    media_tap_unref(tap);
}

void engine_taps_release(struct engine_taps *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        engine_tap_release(ts->tap[i]);
        ts->tap[i] = NULL;
    }
    ts->n = 0;
}

/* The same tap twice on one object would be two pushes a tick into one ring. */
static int ctl_add(struct engine_taps *ts, struct media_tap *tap)
{
    if (ts->n >= MEDIA_TAPS_MAX || taps_has(ts, tap))
        return -1;
    ts->tap[ts->n++] = tap;
    return 0;
}

int media_room_tap(struct media_engine *e, struct media_room *r, struct media_tap *tap)
{
    if (r->destroyed || ctl_add(&r->ctl_taps, tap) < 0)
        return -1;
    struct cmd c = {.type = CMD_ROOM_TAP, .room = r, .tap = media_tap_ref(tap)};
    engine_send_cmd(r->thread, &c);
    return 0;
}

int media_leg_tap(struct media_engine *e, struct media_leg *l, struct media_tap *tap)
{
    return media_leg_tap_side(e, l, tap, MEDIA_TAP_BOTH);
}

int media_leg_tap_side(struct media_engine *e, struct media_leg *l, struct media_tap *tap,
                       enum media_tap_side side)
{
    assert(side == MEDIA_TAP_BOTH || side == MEDIA_TAP_SAYS || side == MEDIA_TAP_HEARS);
    if (l->destroying || ctl_add(&l->ctl_taps, tap) < 0)
        return -1;
    struct cmd c = {.type = CMD_LEG_TAP, .leg = l, .tap = media_tap_ref(tap), .side = side};
    engine_leg_send(l, &c);
    return 0;
}

void media_room_untap(struct media_engine *e, struct media_room *r, struct media_tap *tap)
{
    if (r->destroyed || !taps_remove(&r->ctl_taps, tap))
        return;
    struct cmd c = {.type = CMD_ROOM_UNTAP, .room = r, .tap = tap};
    engine_send_cmd(r->thread, &c);
}

void media_leg_untap(struct media_engine *e, struct media_leg *l, struct media_tap *tap)
{
    if (l->destroying || !taps_remove(&l->ctl_taps, tap))
        return;
    struct cmd c = {.type = CMD_LEG_UNTAP, .leg = l, .tap = tap};
    engine_leg_send(l, &c);
}
