/* A media thread: it applies the control thread's commands, then ticks every 20 ms on the
 * engine's absolute clock (receive, mix, send, tap), and hands events back. It owns its legs and
 * the rooms that have members or taps; nothing here allocates, blocks, or takes a lock. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "media/engine_internal.h"

int64_t engine_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The lines in between are counted in the next one. */
void engine_alarm_log(struct media_thread *t, const char *what)
{
    uint64_t before;
    if (log_limit_allow(&t->alarm_log, engine_mono_ns() / 1000, 1000000, 1, &before))
        log_error("msg=\"%s\" thread=%d unlogged_before=%llu", what, t->id,
                  (unsigned long long)before);
}

void engine_emit(struct media_thread *t, const struct ev *ev)
{
    if (t->n_pending == 0 && spsc_push(&t->events, ev)) {
        t->events_pushed = true;
        return;
    }
    if (t->n_pending < t->cap_pending)
        t->pending[t->n_pending++] = *ev;
    else
        engine_alarm_log(t, "media event lost"); /* never expected */
}

static void emit_public(struct media_thread *t, enum media_event_type type, struct media_leg *l)
{
    struct ev ev = {.type = EV_PUBLIC, .pub = {.type = type, .leg = l}};
    engine_emit(t, &ev);
}

static void flush_pending(struct media_thread *t)
{
    size_t i = 0;
    while (i < t->n_pending && spsc_push(&t->events, &t->pending[i]))
        i++;
    if (i) {
        memmove(t->pending, t->pending + i, (t->n_pending - i) * sizeof(*t->pending));
        t->n_pending -= i;
        t->events_pushed = true;
    }
}

void engine_room_update_active(struct media_thread *t, struct media_room *r)
{
    bool want = r->mix.n > 0 || r->taps.n > 0;
    if (want == r->on_active)
        return;
    r->on_active = want;
    if (want) {
        r->prev_active = NULL;
        r->next_active = t->active;
        if (t->active)
            t->active->prev_active = r;
        t->active = r;
        return;
    }
    if (r->prev_active)
        r->prev_active->next_active = r->next_active;
    else
        t->active = r->next_active;
    if (r->next_active)
        r->next_active->prev_active = r->prev_active;
    r->prev_active = r->next_active = NULL;
}

static void room_unlink_leg(struct media_thread *t, struct media_leg *l)
{
    struct media_room *r = l->room;
    if (!r)
        return;
    size_t i = l->room_index, last = r->mix.n - 1;
    r->mix.p[i] = r->mix.p[last];
    r->members[i] = r->members[last];
    r->members[i]->room_index = i;
    r->mix.n--;
    l->room = NULL;
    engine_room_update_active(t, r);
}

static void thread_link_leg(struct media_thread *t, struct media_leg *l)
{
    l->prev = NULL;
    l->next = t->legs;
    if (t->legs)
        t->legs->prev = l;
    t->legs = l;
    t->n_legs++;
}

void engine_thread_unlink_leg(struct media_thread *t, struct media_leg *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        t->legs = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    t->n_legs--;
}

static void leg_leave(struct media_thread *t, struct media_leg *l, bool notify)
{
    if (!l->room)
        return;
    room_unlink_leg(t, l);
    if (notify)
        emit_public(t, MEDIA_LEG_LEFT, l);
}

static void leg_join(struct media_thread *t, struct media_leg *l, struct media_room *r)
{
    engine_play_end(t, l, true);
    if (l->room == r) {
        emit_public(t, MEDIA_LEG_JOINED, l);
        return;
    }
    leg_leave(t, l, true);
    if (r->mix.n >= r->media_cap) { /* the control thread grows rooms first: not expected */
        engine_alarm_log(t, "room full");
        emit_public(t, MEDIA_LEG_LEFT, l);
        return;
    }
    l->room = r;
    l->room_index = r->mix.n;
    r->mix.p[r->mix.n] = &l->mp;
    r->members[r->mix.n] = l;
    r->mix.n++;
    engine_room_update_active(t, r);
    mix_vad_init(&l->mp.vad);
    l->last_rx_ns = engine_mono_ns(); /* the inactivity clock starts now */
    l->timed_out = false;
    emit_public(t, MEDIA_LEG_JOINED, l);
}

static void apply(struct media_thread *t, const struct cmd *c)
{
    struct media_leg *l = c->leg;
    struct media_room *r = c->room;
    switch (c->type) {
    case CMD_ROOM_REMOVE: {
        while (r->mix.n > 0)
            leg_leave(t, r->members[r->mix.n - 1], true);
        engine_taps_hand_back(t, &r->taps); /* closed: their recordings end */
        engine_room_update_active(t, r);
        struct ev ev = {.type = EV_ROOM_REMOVED, .room = r};
        engine_emit(t, &ev);
        break;
    }
    case CMD_ROOM_RESIZE: {
        /* One allocation holds both arrays: participants then members. */
        struct mix_participant **np = c->array;
        struct media_leg **nm = (struct media_leg **)(np + c->cap);
        memcpy(np, r->mix.p, r->mix.n * sizeof(*np));
        memcpy(nm, r->members, r->mix.n * sizeof(*nm));
        struct ev ev = {.type = EV_FREE_ARRAY, .ptr = r->mix.p};
        r->mix.p = np;
        r->members = nm;
        r->media_cap = c->cap;
        engine_emit(t, &ev);
        break;
    }
    case CMD_LEG_ADD:
        thread_link_leg(t, l);
        l->last_rx_ns = engine_mono_ns();
        break;
    case CMD_LEG_REMOVE: {
        leg_leave(t, l, false);
        engine_taps_hand_back(t, &l->taps);
        engine_thread_unlink_leg(t, l);
        struct ev ev = {.type = EV_LEG_REMOVED, .pub = {.leg = l}};
        engine_emit(t, &ev);
        break;
    }
    case CMD_LEG_REMOTE:
        if (!l->mail) { /* a WebRTC leg's address is ICE's (CMD_LEG_PEER) */
            l->remote = c->remote;
            l->remote_set = true;
            rtp_source_expect(&l->src, c->remote.sin_addr.s_addr, c->remote.sin_port);
            rtp_source_trust(&l->src, c->signal_addr);
            engine_leg_disconnect(l);
        }
        if (c->lc) { /* another codec: its own state from now on */
            if (l->lc) {
                struct ev ev = {.type = EV_FREE_CODEC, .ptr = l->lc};
                engine_emit(t, &ev);
            }
            l->lc = c->lc;
            l->mp.codec = c->lc->id;
            l->mp.enc = c->lc->enc;
            l->mp.has_in = false;
            mix_vad_init(&l->mp.vad);
        }
        l->audio_pt = c->audio_pt;
        l->dtmf_pt = c->dtmf_pt;
        break;
    case CMD_ROOM_CODEC:
        engine_room_codec_apply(r, c);
        break;
    case CMD_LEG_JOIN:
        leg_join(t, l, r);
        break;
    case CMD_LEG_LEAVE:
        if (l->room)
            leg_leave(t, l, true);
        else
            emit_public(t, MEDIA_LEG_LEFT, l);
        break;
    case CMD_LEG_DETACH: {
        engine_play_end(t, l, true); /* it joins a room: the event leaves before the leg does */
        leg_leave(t, l, false);
        engine_thread_unlink_leg(t, l); /* its taps go with it */
        struct ev ev = {.type = EV_LEG_DETACHED, .pub = {.leg = l}, .room = r};
        engine_emit(t, &ev);
        break;
    }
    case CMD_LEG_PLAY:
        engine_play_start(t, l, c);
        break;
    case CMD_LEG_PLAY_STOP:
        engine_play_end(t, l, true);
        break;
    case CMD_LEG_ARM_TIMEOUT:
        if (!l->timeout_armed) {
            l->timeout_armed = true;
            l->last_rx_ns = engine_mono_ns(); /* the inactivity clock starts at the answer */
        }
        break;
    case CMD_ROOM_TAP:
    case CMD_ROOM_UNTAP:
    case CMD_LEG_TAP:
    case CMD_LEG_UNTAP:
        engine_tap_apply(t, c);
        break;
    case CMD_LEG_SECURE:
        engine_leg_disconnect(l);
        l->mail = c->mail;
        l->tp = &engine_transport_webrtc;
        break;
    case CMD_LEG_PEER:
        l->remote = c->remote;
        l->remote_set = true;
        break;
    case CMD_LEG_SRTP:
        if (l->srtp) {
            struct ev ev = {.type = EV_FREE_SRTP, .ptr = l->srtp};
            engine_emit(t, &ev);
        }
        l->srtp = c->srtp;
        break;
    case CMD_STOP:
        break;
    }
}

static void send_output(struct media_thread *t, struct media_leg *l)
{
    if (!l->mp.out || !l->remote_set)
        return;
    engine_leg_send_frame(t, l, l->mp.out, l->mp.out_len, false);
}

/* A leg outside a room: its received audio is dropped as it comes due (so the jitter buffer stays
 * current for a later join instead of holding the call's first seconds), or decoded for its taps,
 * and it is sent the next frame of its clip, if it plays one. */
static void idle_leg_tick(struct media_thread *t, struct media_leg *l, uint64_t tick_no)
{
    bool tapped = l->taps.n > 0;
    if (tapped) {
        engine_leg_fill_input(l);
    } else if (l->lc) {
        uint8_t enc[CODEC_MAX_PAYLOAD];
        size_t len;
        (void)jb_get(l->lc->jb, enc, &len);
    }
    int16_t clip[MIX_FRAME];
    bool played = engine_play_next(t, l, clip);
    if (tapped)
        engine_tap_idle_leg(l, tick_no, played ? clip : NULL);
}

static void tick(struct media_thread *t, int64_t now, uint64_t tick_no)
{
    struct media_engine *e = t->e;
    bool rtcp_too = (t->tick_count++ % 50) == 0;
    for (struct media_leg *l = t->legs; l; l = l->next)
        engine_leg_receive(t, l, now, rtcp_too);
    for (struct media_room *r = t->active; r; r = r->next_active) { /* rooms with members or taps */
        bool tapped = r->taps.n > 0;
        for (size_t k = 0; k < r->mix.n; k++) {
            engine_leg_fill_input(r->members[k]);
            tapped |= r->members[k]->taps.n > 0;
        }
        r->mix.want_whole = tapped; /* taps take the room's whole mix, in its widest band */
        mix_room_tick(&r->mix);
        for (size_t k = 0; k < r->mix.n; k++)
            send_output(t, r->members[k]);
        engine_tap_room(r, tick_no);
    }
    int64_t timeout = (int64_t)e->cfg.rtp_timeout_ms * 1000000;
    for (struct media_leg *l = t->legs; l; l = l->next) {
        if (!l->room)
            idle_leg_tick(t, l, tick_no);
        if (l->connected && rtp_source_silent(&l->src, now / 1000))
            engine_leg_disconnect(l); /* silent: let another sender be seen (a NAT moved it) */
        if (l->timeout_armed && !l->timed_out && now - l->last_rx_ns > timeout) {
            l->timed_out = true;
            emit_public(t, MEDIA_LEG_TIMEOUT, l);
        }
    }
}

/* The start of the 20 ms slot now falls in, on the engine's grid. */
static int64_t slot_start(const struct media_engine *e, int64_t now)
{
    return e->epoch_ns + (now - e->epoch_ns) / TICK_NS * TICK_NS;
}

uint64_t media_engine_tick_now(const struct media_engine *e)
{
    return (uint64_t)((engine_mono_ns() - e->epoch_ns) / TICK_NS);
}

/* Why one grid for every thread, and a tick numbered by the slot it is for: a tap's frames carry
 * the tick number, and a leg moving between threads must not get a number twice (nor, as a
 * rule, go back). Every deadline is a grid point; a thread sleeps to the next one after its last
 * tick, so its numbers only go up, and a leg that left one thread after a tick arrives on
 * another one in a later slot (a thread that is catching up may still be on an earlier one: a
 * tap's reader skips a number it already had).
 *
 * A thread woken late (the machine was busy) runs the slots it slept through back to back, up to
 * CATCH_UP_MAX of them, so what it sends, mixes and taps stays continuous: each leg's jitter
 * buffer has the frames that arrived meanwhile, and the peers' jitter buffers absorb a burst.
 * Further behind than that, it skips to the current slot and counts the skipped ones as
 * missed. */
#define CATCH_UP_MAX 5 /* 100 ms */

void *engine_thread_main(void *arg)
{
    struct media_thread *t = arg;
    struct media_engine *e = t->e;
    int64_t next = slot_start(e, engine_mono_ns());
    bool running = true;
    while (running) {
        struct cmd c;
        while (spsc_pop(&t->cmds, &c)) {
            if (c.type == CMD_STOP)
                running = false;
            else
                apply(t, &c);
        }
        if (!running)
            break;
        if (t->n_legs == 0 && !t->active && t->n_pending == 0) {
            /* Idle: sleep until a command arrives; the clock restarts with the next leg or tap. */
            if (t->events_pushed) {
                t->events_pushed = false;
                uv_async_send(e->async);
            }
            struct pollfd pfd = {.fd = t->wake_fd, .events = POLLIN};
            if (poll(&pfd, 1, -1) > 0) {
                uint64_t v;
                ssize_t rd = read(t->wake_fd, &v, sizeof(v));
                (void)rd;
            }
            next = slot_start(e, engine_mono_ns());
            continue;
        }
        int64_t start = engine_mono_ns();
        uint64_t tick_no = (uint64_t)((next - e->epoch_ns) / TICK_NS);
        uint64_t now_no = (uint64_t)((start - e->epoch_ns) / TICK_NS);
        if (now_no > tick_no + CATCH_UP_MAX) {
            atomic_fetch_add_explicit(&e->missed_ticks, now_no - tick_no, memory_order_relaxed);
            tick_no = now_no;
            next = e->epoch_ns + (int64_t)now_no * TICK_NS;
        }
        if (now_no > tick_no)
            atomic_fetch_add_explicit(&e->late_ticks, 1, memory_order_relaxed);
        tick(t, start, tick_no);
        flush_pending(t);
        if (t->events_pushed) {
            t->events_pushed = false;
            uv_async_send(e->async);
        }
        int64_t end = engine_mono_ns();
        uint64_t took = (uint64_t)(end - start) / 1000;
        uint64_t max = atomic_load_explicit(&e->max_tick_us, memory_order_relaxed);
        while (took > max && !atomic_compare_exchange_weak(&e->max_tick_us, &max, took)) {
        }
        atomic_fetch_add_explicit(&e->ticks, 1, memory_order_relaxed);
        /* Absolute clock: the next tick is due 20 ms after this one's slot began (at once when
         * that has passed). */
        next += TICK_NS;
        struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    return NULL;
}
