#include "media/engine.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <spandsp/telephony.h>
#include <spandsp/plc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/spsc.h"
#include "media/rtp.h"

#define TICK_NS INT64_C(20000000)
#define CMD_RING 4096
#define EV_RING 16384
#define MAX_RX_PER_TICK 16
#define ROOM_INITIAL_CAP 8

enum cmd_type {
    CMD_ROOM_REMOVE,
    CMD_ROOM_RESIZE,
    CMD_LEG_ADD,
    CMD_LEG_REMOVE,
    CMD_LEG_REMOTE,
    CMD_LEG_JOIN,
    CMD_LEG_LEAVE,
    CMD_LEG_DETACH,
    CMD_LEG_PLAY,
    CMD_LEG_PLAY_STOP,
    CMD_LEG_ARM_TIMEOUT,
    CMD_STOP,
};

struct cmd {
    enum cmd_type type;
    struct media_leg *leg;
    struct media_room *room;
    struct sockaddr_in remote;
    uint32_t signal_addr; /* CMD_LEG_REMOTE: learning only from here or the SDP (0: anywhere) */
    int codec, dtmf_pt;
    struct mix_participant **array; /* CMD_ROOM_RESIZE */
    size_t cap;
    struct media_clip *clip; /* CMD_LEG_PLAY: a reference the command carries */
    uint32_t play_id;
};

enum ev_type {
    EV_PUBLIC = 0,   /* a media_event for the application */
    EV_LEG_REMOVED,  /* the thread forgot the leg: free it */
    EV_ROOM_REMOVED, /* the thread forgot the room: free it */
    EV_LEG_DETACHED, /* the leg left this thread to join a room on another one */
    EV_FREE_ARRAY,   /* a room's old participant array */
};

struct ev {
    enum ev_type type;
    struct media_event pub;
    struct media_room *room;
    void *ptr; /* EV_FREE_ARRAY: the array; EV_PUBLIC: a clip reference to drop, or NULL */
};

struct media_clip {
    atomic_size_t refs;
    size_t n;
    int16_t samples[];
};

struct media_thread;

/* Rooms and legs are on intrusive lists, so how many there are is limited by nothing but memory
 * (and the settings above the engine): a media thread lists its legs and the rooms that have
 * members (an empty room costs nothing per tick); the control thread lists every room it has not
 * freed yet, for the shutdown. */
struct media_room {
    /* control-owned */
    struct media_room *prev, *next; /* the engine's list of rooms */
    struct media_thread *thread;
    size_t reserved; /* legs joined or joining, as the control thread counts them */
    size_t cap;      /* capacity of the arrays the control thread last handed over */
    bool gone;       /* the media thread has dropped it: freed once no leg counts it */
    bool destroyed;  /* media_room_destroy() was called (legs on their way do not join) */
    /* media-owned */
    size_t media_cap;
    struct mix_room mix;
    struct media_leg **members;                   /* parallel to mix.p */
    struct media_room *prev_active, *next_active; /* the thread's rooms with members */
};

struct media_leg {
    /* control-owned */
    char key[ID_LEN + 1];
    int port;
    int fd_rtp, fd_rtcp;
    struct media_thread *thread;
    struct media_room *ctl_room;  /* the room it was last asked to join (capacity accounting) */
    bool moving;                  /* detached from one thread, not yet attached to the next */
    struct media_room *move_room; /* where it is moving to (counted in its reserved) */
    struct cmd *deferred;         /* commands given while moving, sent once it has arrived */
    size_t n_deferred, cap_deferred;
    bool destroying;
    /* media-owned */
    struct media_leg *prev, *next; /* the thread's list of legs */
    struct mix_participant mp;
    struct jitter_buffer *jb;
    plc_state_t *plc;
    struct dtmf_tracker dtmf;
    struct rtp_source src;     /* strict learning: whose audio is taken */
    struct sockaddr_in remote; /* where the audio goes: the current source */
    bool remote_set;
    bool connected; /* fd_rtp is connected to remote (only while that is the SDP's source) */
    int audio_pt, dtmf_pt;
    uint16_t seq;
    uint32_t ts, ssrc;
    int64_t last_rx_ns;
    bool timeout_armed; /* the call is answered: MEDIA_LEG_TIMEOUT after rtp_timeout_ms */
    bool timed_out;
    struct media_room *room;
    size_t room_index;
    struct media_clip *clip; /* playing (outside a room): the engine's reference */
    size_t clip_pos;         /* next sample to send */
    uint32_t play_id;
    bool play_first; /* the next frame starts the play (marker bit) */
};

struct media_thread {
    struct media_engine *e;
    int id;
    pthread_t tid;
    struct spsc cmds;
    struct spsc events;
    int wake_fd; /* eventfd: commands are waiting */
    /* media-owned */
    struct media_leg *legs; /* every leg of the thread */
    size_t n_legs;
    struct media_room *active; /* the rooms that have members */
    uint64_t tick_count;
    struct ev *pending; /* events that did not fit the ring, retried each tick */
    size_t n_pending, cap_pending;
    bool events_pushed;
    struct log_limit alarm_log; /* "never expected" lines: at most one a second */
};

struct media_engine {
    struct media_config cfg;
    char bind_ip[64];
    uv_loop_t *loop;
    uv_async_t *async;
    media_event_cb cb;
    void *ctx;
    struct media_thread *threads;
    int n_threads;
    /* control-owned: the RTP port pairs (port_base + 2 i, + 1) and which ones legs hold */
    int port_base, n_pairs, n_pairs_used;
    uint64_t *pairs_used;     /* bitmap, n_pairs bits */
    uint64_t *pairs_tried;    /* scratch of media_leg_create: pairs another program holds */
    struct media_room *rooms; /* every room not freed yet */
    size_t n_legs, n_rooms;   /* control's count */
    /* statistics written by media threads */
    _Atomic uint64_t ticks, late_ticks, packets_in, packets_out, bad_packets, max_tick_us;
    _Atomic uint64_t rtp_refused, rtp_learned;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- media thread side ---- */

/* Back to an unconnected socket: every sender reaches us again (strict learning decides). */
static void leg_disconnect(struct media_leg *l)
{
    if (!l->connected)
        return;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    connect(l->fd_rtp, &unspec, sizeof(unspec));
    l->connected = false;
}

/* Logs a "never expected" condition from the media thread, at most once a second (the lines in
 * between are counted in the next one). */
static void alarm_log(struct media_thread *t, const char *what)
{
    uint64_t before;
    if (log_limit_allow(&t->alarm_log, mono_ns() / 1000, 1000000, 1, &before))
        log_error("msg=\"%s\" thread=%d unlogged_before=%llu", what, t->id,
                  (unsigned long long)before);
}

static void emit(struct media_thread *t, const struct ev *ev)
{
    if (t->n_pending == 0 && spsc_push(&t->events, ev)) {
        t->events_pushed = true;
        return;
    }
    if (t->n_pending < t->cap_pending)
        t->pending[t->n_pending++] = *ev;
    else
        alarm_log(t, "media event lost"); /* never expected */
}

static void emit_public(struct media_thread *t, enum media_event_type type, struct media_leg *l,
                        char digit)
{
    struct ev ev = {.type = EV_PUBLIC, .pub = {.type = type, .leg = l, .digit = digit}};
    emit(t, &ev);
}

/* Ends the leg's playback, if any: the event carries the clip reference back to the control
 * thread, which drops it (a clip is never freed inside the tick). */
static void play_end(struct media_thread *t, struct media_leg *l, bool stopped)
{
    if (!l->clip)
        return;
    struct ev ev = {
        .type = EV_PUBLIC,
        .pub = {.type = MEDIA_LEG_PLAY_DONE, .leg = l, .play_id = l->play_id, .stopped = stopped},
        .ptr = l->clip};
    l->clip = NULL;
    emit(t, &ev);
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

/* A room is on its thread's active list while it has members. */
static void room_activate(struct media_thread *t, struct media_room *r)
{
    r->prev_active = NULL;
    r->next_active = t->active;
    if (t->active)
        t->active->prev_active = r;
    t->active = r;
}

static void room_deactivate(struct media_thread *t, struct media_room *r)
{
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
    if (r->mix.n == 0)
        room_deactivate(t, r);
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

static void thread_unlink_leg(struct media_thread *t, struct media_leg *l)
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
        emit_public(t, MEDIA_LEG_LEFT, l, 0);
}

static void leg_join(struct media_thread *t, struct media_leg *l, struct media_room *r)
{
    play_end(t, l, true);
    if (l->room == r) {
        emit_public(t, MEDIA_LEG_JOINED, l, 0);
        return;
    }
    leg_leave(t, l, true);
    if (r->mix.n >= r->media_cap) { /* the control thread grows rooms first: not expected */
        alarm_log(t, "room full");
        emit_public(t, MEDIA_LEG_LEFT, l, 0);
        return;
    }
    if (r->mix.n == 0)
        room_activate(t, r);
    l->room = r;
    l->room_index = r->mix.n;
    r->mix.p[r->mix.n] = &l->mp;
    r->members[r->mix.n] = l;
    r->mix.n++;
    mix_vad_init(&l->mp.vad);
    l->last_rx_ns = mono_ns(); /* the inactivity clock starts now */
    l->timed_out = false;
    emit_public(t, MEDIA_LEG_JOINED, l, 0);
}

static void apply(struct media_thread *t, const struct cmd *c)
{
    struct media_leg *l = c->leg;
    struct media_room *r = c->room;
    switch (c->type) {
    case CMD_ROOM_REMOVE: {
        while (r->mix.n > 0)
            leg_leave(t, r->members[r->mix.n - 1], true);
        struct ev ev = {.type = EV_ROOM_REMOVED, .room = r};
        emit(t, &ev);
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
        emit(t, &ev);
        break;
    }
    case CMD_LEG_ADD:
        thread_link_leg(t, l);
        l->last_rx_ns = mono_ns();
        break;
    case CMD_LEG_REMOVE: {
        leg_leave(t, l, false);
        thread_unlink_leg(t, l);
        struct ev ev = {.type = EV_LEG_REMOVED, .pub = {.leg = l}};
        emit(t, &ev);
        break;
    }
    case CMD_LEG_REMOTE:
        l->remote = c->remote;
        l->remote_set = true;
        rtp_source_expect(&l->src, c->remote.sin_addr.s_addr, c->remote.sin_port);
        rtp_source_trust(&l->src, c->signal_addr);
        leg_disconnect(l);
        l->audio_pt = c->codec == MIX_PCMA ? 8 : 0;
        l->mp.codec = (enum mix_codec)c->codec;
        l->dtmf_pt = c->dtmf_pt;
        break;
    case CMD_LEG_JOIN:
        leg_join(t, l, r);
        break;
    case CMD_LEG_LEAVE:
        if (l->room)
            leg_leave(t, l, true);
        else
            emit_public(t, MEDIA_LEG_LEFT, l, 0);
        break;
    case CMD_LEG_DETACH: {
        play_end(t, l, true); /* it joins a room: the event leaves before the leg does */
        leg_leave(t, l, false);
        thread_unlink_leg(t, l);
        struct ev ev = {.type = EV_LEG_DETACHED, .pub = {.leg = l}, .room = r};
        emit(t, &ev);
        break;
    }
    case CMD_LEG_PLAY:
        play_end(t, l, true);
        if (l->room) { /* joined since the play was asked for: nothing to play to */
            struct ev ev = {.type = EV_PUBLIC,
                            .pub = {.type = MEDIA_LEG_PLAY_DONE,
                                    .leg = l,
                                    .play_id = c->play_id,
                                    .stopped = true},
                            .ptr = c->clip};
            emit(t, &ev);
            break;
        }
        if (c->clip->n == 0) { /* nothing to send: done at once */
            struct ev ev = {.type = EV_PUBLIC,
                            .pub = {.type = MEDIA_LEG_PLAY_DONE, .leg = l, .play_id = c->play_id},
                            .ptr = c->clip};
            emit(t, &ev);
            break;
        }
        l->clip = c->clip;
        l->clip_pos = 0;
        l->play_id = c->play_id;
        l->play_first = true;
        break;
    case CMD_LEG_PLAY_STOP:
        play_end(t, l, true);
        break;
    case CMD_LEG_ARM_TIMEOUT:
        if (!l->timeout_armed) {
            l->timeout_armed = true;
            l->last_rx_ns = mono_ns(); /* the inactivity clock starts at the answer */
        }
        break;
    case CMD_STOP:
        break;
    }
}

/* One received datagram of a leg. */
static void take_packet(struct media_thread *t, struct media_leg *l, const uint8_t *buf, size_t n,
                        const struct sockaddr_in *from, int64_t now)
{
    struct media_engine *e = t->e;
    struct rtp_packet p;
    if (rtp_parse(buf, n, &p) < 0) {
        atomic_fetch_add_explicit(&e->bad_packets, 1, memory_order_relaxed);
        return;
    }
    uint64_t learned = l->src.learned;
    switch (rtp_source_check(&l->src, from->sin_addr.s_addr, from->sin_port, &p, now / 1000)) {
    case RTP_SOURCE_REFUSE:
        atomic_fetch_add_explicit(&e->rtp_refused, 1, memory_order_relaxed);
        return;
    case RTP_SOURCE_SWITCH:
        /* Symmetric RTP: the audio goes where the accepted source sends from. */
        leg_disconnect(l);
        l->remote = *from;
        l->remote_set = true;
        if (l->src.learned != learned)
            atomic_fetch_add_explicit(&e->rtp_learned, 1, memory_order_relaxed);
        break;
    case RTP_SOURCE_ACCEPT:
        break;
    }
    /* The SDP's own source, once heard, gets a connected socket: it sends without a route lookup
     * per packet, and the kernel drops every other sender before it reaches us. A learned source
     * does not: the SDP's source must still be seen, to take the leg back. */
    if (!l->connected && l->src.addr == l->src.sdp_addr && l->src.port == l->src.sdp_port)
        l->connected = connect(l->fd_rtp, (const struct sockaddr *)from, sizeof(*from)) == 0;
    l->last_rx_ns = now;
    atomic_fetch_add_explicit(&e->packets_in, 1, memory_order_relaxed);
    if (p.payload_type == l->audio_pt) {
        jb_put(l->jb, &p, now / 1000);
    } else if (l->dtmf_pt >= 0 && p.payload_type == l->dtmf_pt) {
        struct rtp_dtmf d;
        if (rtp_dtmf_parse(p.payload, p.payload_len, &d) == 0) {
            char key = dtmf_tracker_feed(&l->dtmf, &p, &d);
            if (key)
                emit_public(t, MEDIA_LEG_DTMF, l, key);
        }
    }
}

#define RX_BATCH 4

/* Reads what arrived on a leg's sockets: RTP into the jitter buffer, telephone events into key
 * presses, from the source strict learning accepts (the replies go where it sends from). One
 * recvmmsg() per leg per tick takes everything that is normally waiting (one packet per 20 ms), so
 * an idle socket costs one system call, not a read that only returns EAGAIN after the data. */
static void drain_leg(struct media_thread *t, struct media_leg *l, int64_t now, bool rtcp_too)
{
    struct media_engine *e = t->e;
    static __thread uint8_t bufs[RX_BATCH][RTP_MAX_PACKET];
    struct sockaddr_in from[RX_BATCH];
    struct iovec iov[RX_BATCH];
    struct mmsghdr msgs[RX_BATCH];
    for (int rounds = 0; rounds < MAX_RX_PER_TICK / RX_BATCH; rounds++) {
        for (int i = 0; i < RX_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof(bufs[i]);
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(l->fd_rtp, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0)
            break;
        for (int i = 0; i < got; i++)
            take_packet(t, l, bufs[i], msgs[i].msg_len, &from[i], now);
        if (got < RX_BATCH)
            break;
    }
    (void)e;
    /* RTCP: read and drop (reports are not used yet), once a second rather than every tick. */
    if (rtcp_too)
        for (int i = 0; i < 8; i++)
            if (recv(l->fd_rtcp, bufs[0], sizeof(bufs[0]), MSG_DONTWAIT) < 0)
                break;
}

/* The leg's contribution to this tick: a decoded frame, a concealed one, or nothing. */
static void fill_input(struct media_leg *l)
{
    uint8_t enc[MIX_FRAME];
    switch (jb_get(l->jb, enc)) {
    case JB_FRAME:
        mix_decode(l->mp.codec, enc, l->mp.in, MIX_FRAME);
        plc_rx(l->plc, l->mp.in, MIX_FRAME);
        l->mp.has_in = true;
        break;
    case JB_LOST:
        plc_fillin(l->plc, l->mp.in, MIX_FRAME);
        l->mp.has_in = true;
        break;
    case JB_EMPTY:
        l->mp.has_in = false;
        break;
    }
}

/* Sends one encoded 20 ms frame; sequence and timestamp are the leg's whoever made the frame. */
static void send_frame(struct media_thread *t, struct media_leg *l, const uint8_t *payload,
                       bool marker)
{
    uint8_t pkt[RTP_HEADER_MIN + MIX_FRAME];
    size_t n = rtp_build(pkt, sizeof(pkt), (uint8_t)l->audio_pt, marker, l->seq++, l->ts, l->ssrc,
                         payload, MIX_FRAME);
    l->ts += MIX_FRAME;
    ssize_t sent = l->connected ? send(l->fd_rtp, pkt, n, MSG_DONTWAIT)
                                : sendto(l->fd_rtp, pkt, n, MSG_DONTWAIT,
                                         (struct sockaddr *)&l->remote, sizeof(l->remote));
    if (sent >= 0)
        atomic_fetch_add_explicit(&t->e->packets_out, 1, memory_order_relaxed);
}

static void send_output(struct media_thread *t, struct media_leg *l)
{
    if (!l->mp.out || !l->remote_set)
        return;
    send_frame(t, l, l->mp.out, false);
}

/* A leg outside a room: its received audio is dropped as it comes due (so the jitter buffer stays
 * current for a later join instead of holding the call's first seconds), and it is sent the next
 * frame of its clip, if it plays one. While nothing is sent the timestamp still follows the clock,
 * as RFC 3550 wants; the marker bit then starts the next play. */
static void idle_leg_tick(struct media_thread *t, struct media_leg *l)
{
    uint8_t enc[MIX_FRAME];
    (void)jb_get(l->jb, enc);
    if (!l->clip) {
        l->ts += MIX_FRAME;
        return;
    }
    const struct media_clip *c = l->clip;
    size_t left = c->n - l->clip_pos, take = left < MIX_FRAME ? left : MIX_FRAME;
    int16_t pcm[MIX_FRAME];
    memcpy(pcm, c->samples + l->clip_pos, take * sizeof(*pcm));
    memset(pcm + take, 0, (MIX_FRAME - take) * sizeof(*pcm));
    l->clip_pos += take;
    mix_encode(l->mp.codec, pcm, enc, MIX_FRAME);
    if (l->remote_set)
        send_frame(t, l, enc, l->play_first);
    else
        l->ts += MIX_FRAME;
    l->play_first = false;
    if (l->clip_pos >= c->n)
        play_end(t, l, false);
}

static void tick(struct media_thread *t, int64_t now)
{
    struct media_engine *e = t->e;
    bool rtcp_too = (t->tick_count++ % 50) == 0;
    for (struct media_leg *l = t->legs; l; l = l->next)
        drain_leg(t, l, now, rtcp_too);
    for (struct media_room *r = t->active; r; r = r->next_active) { /* empty rooms are not here */
        for (size_t k = 0; k < r->mix.n; k++)
            fill_input(r->members[k]);
        mix_room_tick(&r->mix);
        for (size_t k = 0; k < r->mix.n; k++)
            send_output(t, r->members[k]);
    }
    int64_t timeout = (int64_t)e->cfg.rtp_timeout_ms * 1000000;
    for (struct media_leg *l = t->legs; l; l = l->next) {
        if (!l->room)
            idle_leg_tick(t, l);
        if (l->connected && rtp_source_silent(&l->src, now / 1000))
            leg_disconnect(l); /* silent: let another sender be seen (a NAT may have moved it) */
        if (l->timeout_armed && !l->timed_out && now - l->last_rx_ns > timeout) {
            l->timed_out = true;
            emit_public(t, MEDIA_LEG_TIMEOUT, l, 0);
        }
    }
}

static void *thread_main(void *arg)
{
    struct media_thread *t = arg;
    struct media_engine *e = t->e;
    int64_t next = mono_ns() + TICK_NS;
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
        if (t->n_legs == 0 && t->n_pending == 0) {
            /* Idle: sleep until a command arrives; the clock restarts with the next leg. */
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
            next = mono_ns() + TICK_NS;
            continue;
        }
        int64_t start = mono_ns();
        tick(t, start);
        flush_pending(t);
        if (t->events_pushed) {
            t->events_pushed = false;
            uv_async_send(e->async);
        }
        int64_t end = mono_ns();
        uint64_t took = (uint64_t)(end - start) / 1000;
        uint64_t max = atomic_load_explicit(&e->max_tick_us, memory_order_relaxed);
        while (took > max && !atomic_compare_exchange_weak(&e->max_tick_us, &max, took)) {
        }
        atomic_fetch_add_explicit(&e->ticks, 1, memory_order_relaxed);
        /* Absolute clock: the next tick is due 20 ms after the previous deadline, not after this
         * tick's end. A tick that starts after its deadline has passed is late; missed ticks are
         * skipped rather than run back to back. */
        next += TICK_NS;
        if (end > next) {
            atomic_fetch_add_explicit(&e->late_ticks, 1, memory_order_relaxed);
            while (next < end)
                next += TICK_NS;
        }
        struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    return NULL;
}

/* ---- control thread side ---- */

static void send_cmd(struct media_thread *t, const struct cmd *c)
{
    /* The ring holds 4096 commands and the media thread drains it every 20 ms: waiting here is
     * an overload safeguard, not a normal path. */
    for (int spins = 0; !spsc_push(&t->cmds, c); spins++) {
        if (spins > 20000)
            die("media thread %d does not take commands", t->id);
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    uint64_t one = 1;
    ssize_t w = write(t->wake_fd, &one, sizeof(one));
    (void)w;
}

static void room_release_ptr(struct media_room *r);

static void pair_release(struct media_engine *e, int port);

/* The media threads are done with the leg: what it still holds (a clip it was playing, commands
 * it did not get to) goes with it; its port pair is free again. */
static void free_leg(struct media_leg *l)
{
    close(l->fd_rtp);
    close(l->fd_rtcp);
    pair_release(l->thread->e, l->port);
    jb_destroy(l->jb);
    plc_free(l->plc);
    media_clip_unref(l->clip);
    for (size_t i = 0; i < l->n_deferred; i++)
        if (l->deferred[i].type == CMD_LEG_PLAY)
            media_clip_unref(l->deferred[i].clip);
    free(l->deferred);
    if (l->move_room) {
        room_release_ptr(l->move_room);
        l->move_room = NULL;
    }
    free(l);
}

static void free_room(struct media_room *r)
{
    struct media_engine *e = r->thread->e;
    if (r->prev)
        r->prev->next = r->next;
    else
        e->rooms = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r->mix.p);
    free(r);
}

static void leg_send(struct media_leg *l, const struct cmd *c);

/* Second half of a move: attach the leg to its room's thread, join there (unless the room was
 * destroyed meanwhile: then it just leaves, MEDIA_LEG_LEFT), then send what was asked of it on the
 * way, in order. */
static void leg_arrive(struct media_leg *l)
{
    struct media_room *r = l->move_room;
    l->moving = false;
    if (l->destroying) { /* destroyed on the way */
        free_leg(l);
        return;
    }
    l->move_room = NULL;
    l->thread = r->thread;
    struct cmd add = {.type = CMD_LEG_ADD, .leg = l};
    send_cmd(l->thread, &add);
    /* Asked to leave or go elsewhere on the way: it leaves (MEDIA_LEG_LEFT) rather than join. */
    bool join = !r->destroyed && l->ctl_room == r;
    struct cmd jc = {.type = join ? CMD_LEG_JOIN : CMD_LEG_LEAVE, .leg = l, .room = r};
    send_cmd(l->thread, &jc);
    room_release_ptr(r);
    struct cmd *d = l->deferred;
    size_t n = l->n_deferred;
    l->deferred = NULL;
    l->n_deferred = l->cap_deferred = 0;
    for (size_t i = 0; i < n; i++)
        leg_send(l, &d[i]); /* a join among them may start another move */
    free(d);
}

static void on_async(uv_async_t *h)
{
    struct media_engine *e = h->data;
    for (int i = 0; i < e->n_threads; i++) {
        struct media_thread *t = &e->threads[i];
        struct ev ev;
        while (spsc_pop(&t->events, &ev)) {
            switch (ev.type) {
            case EV_PUBLIC:
                if (!ev.pub.leg->destroying)
                    e->cb(e->ctx, &ev.pub);
                media_clip_unref(ev.ptr);
                break;
            case EV_LEG_REMOVED:
                free_leg(ev.pub.leg);
                break;
            case EV_ROOM_REMOVED:
                ev.room->gone = true;
                if (ev.room->reserved == 0)
                    free_room(ev.room);
                break;
            case EV_FREE_ARRAY:
                free(ev.ptr);
                break;
            case EV_LEG_DETACHED:
                leg_arrive(ev.pub.leg);
                break;
            }
        }
    }
}

static struct media_thread *thread_for(struct media_engine *e, const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &e->threads[h % (uint32_t)e->n_threads];
}

struct media_engine *media_engine_create(uv_loop_t *loop, const struct media_config *cfg,
                                         media_event_cb cb, void *ctx, char *err, size_t errlen)
{
    mix_init();
    int base = cfg->port_min + (cfg->port_min & 1);
    if (cfg->threads < 1 || cfg->port_min < 1024 || cfg->port_max > 65535 ||
        cfg->port_max - base < 1 || cfg->rtp_timeout_ms < 1) {
        snprintf(err, errlen,
                 "invalid media configuration (threads %d, ports %d-%d: at least one even port "
                 "with the next one, rtp timeout %d ms)",
                 cfg->threads, cfg->port_min, cfg->port_max, cfg->rtp_timeout_ms);
        return NULL;
    }
    struct media_engine *e = xcalloc(1, sizeof(*e));
    e->cfg = *cfg;
    str_copy(e->bind_ip, sizeof(e->bind_ip), cfg->bind_ip);
    e->cfg.bind_ip = e->bind_ip;
    e->loop = loop;
    e->cb = cb;
    e->ctx = ctx;
    e->port_base = base;
    e->n_pairs = (cfg->port_max - base - 1) / 2 + 1;
    e->pairs_used = xcalloc(((size_t)e->n_pairs + 63) / 64, sizeof(uint64_t));
    e->pairs_tried = xcalloc(((size_t)e->n_pairs + 63) / 64, sizeof(uint64_t));
    e->async = xcalloc(1, sizeof(*e->async));
    uv_async_init(loop, e->async, on_async);
    e->async->data = e;
    e->n_threads = cfg->threads;
    e->threads = xcalloc((size_t)cfg->threads, sizeof(*e->threads));
    for (int i = 0; i < cfg->threads; i++) {
        struct media_thread *t = &e->threads[i];
        t->e = e;
        t->id = i;
        spsc_init(&t->cmds, CMD_RING, sizeof(struct cmd));
        spsc_init(&t->events, EV_RING, sizeof(struct ev));
        t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        t->cap_pending = 4096;
        t->pending = xcalloc(t->cap_pending, sizeof(*t->pending));
        if (pthread_create(&t->tid, NULL, thread_main, t) != 0)
            die("cannot start media thread %d", i);
        char name[32];
        snprintf(name, sizeof(name), "media-%d", i);
        pthread_setname_np(t->tid, name);
    }
    return e;
}

static void free_async(uv_handle_t *h)
{
    free(h);
}

static void room_release(struct media_leg *l);

static void final_free_leg(struct media_leg *l)
{
    room_release(l);
    free_leg(l);
}

/* An event left over at shutdown: frees what it hands back, tells no one. */
static void drop_event(struct ev *ev)
{
    switch (ev->type) {
    case EV_PUBLIC:
        media_clip_unref(ev->ptr);
        break;
    case EV_LEG_REMOVED:
    case EV_LEG_DETACHED:
        final_free_leg(ev->pub.leg);
        break;
    case EV_ROOM_REMOVED:
        ev->room->gone = true;
        if (ev->room->reserved == 0)
            free_room(ev->room);
        break;
    case EV_FREE_ARRAY:
        free(ev->ptr);
        break;
    }
}

/* Frees everything the stopped threads still hold or handed back, legs first (releasing the rooms
 * they count), then the rooms still listed. */
void media_engine_destroy(struct media_engine *e)
{
    if (!e)
        return;
    struct media_stats st;
    media_engine_stats(e, &st);
    log_info("msg=\"media stats\" ticks=%llu late_ticks=%llu max_tick_us=%llu packets_in=%llu "
             "packets_out=%llu bad_packets=%llu rtp_refused=%llu rtp_learned=%llu",
             (unsigned long long)st.ticks, (unsigned long long)st.late_ticks,
             (unsigned long long)st.max_tick_us, (unsigned long long)st.packets_in,
             (unsigned long long)st.packets_out, (unsigned long long)st.bad_packets,
             (unsigned long long)st.rtp_refused, (unsigned long long)st.rtp_learned);
    for (int i = 0; i < e->n_threads; i++) {
        struct cmd stop = {.type = CMD_STOP};
        send_cmd(&e->threads[i], &stop);
    }
    for (int i = 0; i < e->n_threads; i++)
        pthread_join(e->threads[i].tid, NULL);
    for (int i = 0; i < e->n_threads; i++) {
        struct media_thread *t = &e->threads[i];
        struct ev ev;
        while (spsc_pop(&t->events, &ev))
            drop_event(&ev);
        for (size_t k = 0; k < t->n_pending; k++) /* events that never made it to the ring */
            drop_event(&t->pending[k]);
        t->n_pending = 0;
        struct cmd c;
        while (spsc_pop(&t->cmds, &c)) { /* commands never applied */
            if (c.type == CMD_LEG_ADD)
                final_free_leg(c.leg);
            else if (c.type == CMD_ROOM_RESIZE)
                free(c.array);
            else if (c.type == CMD_LEG_PLAY)
                media_clip_unref(c.clip);
        }
    }
    for (int i = 0; i < e->n_threads; i++) {
        struct media_thread *t = &e->threads[i];
        while (t->legs) {
            struct media_leg *l = t->legs;
            thread_unlink_leg(t, l);
            final_free_leg(l);
        }
    }
    while (e->rooms) /* whatever no leg counts any more */
        free_room(e->rooms);
    for (int i = 0; i < e->n_threads; i++) {
        struct media_thread *t = &e->threads[i];
        close(t->wake_fd);
        spsc_fini(&t->cmds);
        spsc_fini(&t->events);
        free(t->pending);
    }
    free(e->pairs_used);
    free(e->pairs_tried);
    free(e->threads);
    uv_close((uv_handle_t *)e->async, free_async);
    free(e);
}

struct media_room *media_room_create(struct media_engine *e, const char *key)
{
    struct media_room *r = xcalloc(1, sizeof(*r));
    r->thread = thread_for(e, key);
    r->cap = r->media_cap = ROOM_INITIAL_CAP;
    /* One allocation: participant pointers, then member pointers. */
    r->mix.p = xcalloc(2 * r->cap, sizeof(void *));
    r->members = (struct media_leg **)(r->mix.p + r->cap);
    /* The media thread first hears of it when a leg joins (or it is removed). */
    r->next = e->rooms;
    if (e->rooms)
        e->rooms->prev = r;
    e->rooms = r;
    e->n_rooms++;
    return r;
}

void media_room_destroy(struct media_engine *e, struct media_room *r)
{
    if (!r)
        return;
    r->destroyed = true;
    struct cmd c = {.type = CMD_ROOM_REMOVE, .room = r};
    send_cmd(r->thread, &c);
    e->n_rooms--;
}

static int bind_udp(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool bit_get(const uint64_t *map, int i)
{
    return (map[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *map, int i, bool on)
{
    if (on)
        map[i / 64] |= UINT64_C(1) << (i % 64);
    else
        map[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

/* The index of the k-th pair (from 0) that is neither in used nor in tried. */
static int nth_free_pair(const struct media_engine *e, const uint64_t *tried, uint32_t k)
{
    size_t words = ((size_t)e->n_pairs + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        uint64_t taken = e->pairs_used[w] | tried[w];
        if (w == words - 1 && e->n_pairs % 64)
            taken |= ~UINT64_C(0) << (e->n_pairs % 64); /* beyond the last pair */
        uint32_t free_here = 64 - (uint32_t)__builtin_popcountll(taken);
        if (k >= free_here) {
            k -= free_here;
            continue;
        }
        for (int b = 0; b < 64; b++)
            if (!((taken >> b) & 1) && k-- == 0)
                return (int)(w * 64) + b;
    }
    return -1; /* not reached while k < the number of free pairs */
}

static void pair_release(struct media_engine *e, int port)
{
    int i = (port - e->port_base) / 2;
    assert(bit_get(e->pairs_used, i));
    if (bit_get(e->pairs_used, i)) {
        bit_set(e->pairs_used, i, false);
        e->n_pairs_used--;
    }
}

/* A port pair chosen uniformly at random among those no leg holds (so the next caller's port
 * cannot be guessed from the last one's), then bound; a pair another program holds is left out
 * and another one drawn, until none is left. */
struct media_leg *media_leg_create(struct media_engine *e, const char *key, char *err,
                                   size_t errlen)
{
    int rtp = -1, rtcp = -1, port = 0, foreign = 0;
    uint64_t *tried = e->pairs_tried;
    for (int left = e->n_pairs - e->n_pairs_used; left > 0 && rtp < 0; left--) {
        int i = nth_free_pair(e, tried, randombytes_uniform((uint32_t)left));
        assert(i >= 0);
        port = e->port_base + 2 * i;
        rtp = bind_udp(e->bind_ip, port);
        if (rtp >= 0 && (rtcp = bind_udp(e->bind_ip, port + 1)) < 0) {
            close(rtp);
            rtp = -1;
        }
        if (rtp < 0) {
            bit_set(tried, i, true);
            foreign++;
        } else {
            bit_set(e->pairs_used, i, true);
            e->n_pairs_used++;
        }
    }
    if (foreign)
        memset(tried, 0, ((size_t)e->n_pairs + 63) / 64 * sizeof(uint64_t));
    if (rtp < 0) {
        snprintf(err, errlen,
                 "no free RTP port pair in rtp_ports %d-%d (%d pairs: %d held by calls, %d in use "
                 "by other programs)",
                 e->cfg.port_min, e->cfg.port_max, e->n_pairs, e->n_pairs_used, foreign);
        return NULL;
    }
    struct media_leg *l = xcalloc(1, sizeof(*l));
    str_copy(l->key, sizeof(l->key), key);
    l->port = port;
    l->fd_rtp = rtp;
    l->fd_rtcp = rtcp;
    l->jb = jb_create();
    l->plc = plc_init(NULL);
    if (!l->plc)
        die("out of memory for packet loss concealment");
    l->audio_pt = 0;
    l->dtmf_pt = -1;
    randombytes_buf(&l->ssrc, sizeof(l->ssrc));
    randombytes_buf(&l->seq, sizeof(l->seq));
    randombytes_buf(&l->ts, sizeof(l->ts));
    mix_vad_init(&l->mp.vad);
    l->thread = thread_for(e, key);
    struct cmd c = {.type = CMD_LEG_ADD, .leg = l};
    send_cmd(l->thread, &c);
    e->n_legs++;
    return l;
}

int media_leg_port(const struct media_leg *l)
{
    return l->port;
}

const char *media_leg_key(const struct media_leg *l)
{
    return l->key;
}

void media_leg_set_remote(struct media_engine *e, struct media_leg *l, const char *ip, int port,
                          enum mix_codec codec, int dtmf_pt, const char *signal_ip)
{
    struct cmd c = {.type = CMD_LEG_REMOTE, .leg = l, .codec = (int)codec, .dtmf_pt = dtmf_pt};
    struct in_addr sig;
    if (signal_ip && inet_pton(AF_INET, signal_ip, &sig) == 1)
        c.signal_addr = sig.s_addr;
    c.remote.sin_family = AF_INET;
    c.remote.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &c.remote.sin_addr) != 1)
        c.remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    leg_send(l, &c);
}

static void room_release_ptr(struct media_room *r)
{
    if (--r->reserved == 0 && r->gone)
        free_room(r);
}

static void room_release(struct media_leg *l)
{
    struct media_room *r = l->ctl_room;
    if (!r)
        return;
    l->ctl_room = NULL;
    room_release_ptr(r);
}

/* Makes sure the room's arrays can take one more leg before the join reaches the thread. */
static void room_reserve(struct media_leg *l, struct media_room *r)
{
    if (l->ctl_room == r)
        return;
    room_release(l);
    l->ctl_room = r;
    r->reserved++;
    if (r->reserved <= r->cap)
        return;
    size_t cap = r->cap * 2;
    struct cmd c = {.type = CMD_ROOM_RESIZE, .room = r, .cap = cap};
    c.array = xcalloc(2 * cap, sizeof(void *));
    r->cap = cap;
    send_cmd(r->thread, &c);
}

/* Sends a command to the leg's thread. A leg on its way to another thread has none: what is asked
 * of it meanwhile waits in order and is sent when it arrives (leg_arrive). A join to a room on
 * another thread starts a move: detach here, attach there (the room is counted until then, so it
 * outlives the move whatever happens to it). */
static void leg_send(struct media_leg *l, const struct cmd *c)
{
    if (l->moving) {
        if (l->n_deferred == l->cap_deferred) {
            l->cap_deferred = l->cap_deferred ? 2 * l->cap_deferred : 4;
            l->deferred = xrealloc(l->deferred, l->cap_deferred * sizeof(*l->deferred));
        }
        l->deferred[l->n_deferred++] = *c;
        return;
    }
    if (c->type == CMD_LEG_JOIN && c->room->thread != l->thread) {
        l->moving = true;
        l->move_room = c->room;
        c->room->reserved++;
        struct cmd d = {.type = CMD_LEG_DETACH, .leg = l, .room = c->room};
        send_cmd(l->thread, &d);
        return;
    }
    send_cmd(l->thread, c);
}

void media_leg_join(struct media_engine *e, struct media_leg *l, struct media_room *r)
{
    room_reserve(l, r);
    struct cmd c = {.type = CMD_LEG_JOIN, .leg = l, .room = r};
    leg_send(l, &c);
}

void media_leg_leave(struct media_engine *e, struct media_leg *l)
{
    room_release(l);
    struct cmd c = {.type = CMD_LEG_LEAVE, .leg = l};
    leg_send(l, &c);
}

void media_leg_play(struct media_engine *e, struct media_leg *l, struct media_clip *clip,
                    uint32_t play_id)
{
    struct cmd c = {
        .type = CMD_LEG_PLAY, .leg = l, .clip = media_clip_ref(clip), .play_id = play_id};
    leg_send(l, &c);
}

void media_leg_play_stop(struct media_engine *e, struct media_leg *l)
{
    struct cmd c = {.type = CMD_LEG_PLAY_STOP, .leg = l};
    leg_send(l, &c);
}

void media_leg_arm_timeout(struct media_engine *e, struct media_leg *l)
{
    struct cmd c = {.type = CMD_LEG_ARM_TIMEOUT, .leg = l};
    leg_send(l, &c);
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

void media_leg_destroy(struct media_engine *e, struct media_leg *l)
{
    if (!l)
        return;
    l->destroying = true;
    room_release(l);
    e->n_legs--;
    if (l->moving)
        return; /* freed when the detach comes back (on_async) */
    struct cmd c = {.type = CMD_LEG_REMOVE, .leg = l};
    send_cmd(l->thread, &c);
}

void media_engine_stats(const struct media_engine *e, struct media_stats *out)
{
    out->ticks = atomic_load(&e->ticks);
    out->late_ticks = atomic_load(&e->late_ticks);
    out->packets_in = atomic_load(&e->packets_in);
    out->packets_out = atomic_load(&e->packets_out);
    out->bad_packets = atomic_load(&e->bad_packets);
    out->max_tick_us = atomic_load(&e->max_tick_us);
    out->rtp_refused = atomic_load(&e->rtp_refused);
    out->rtp_learned = atomic_load(&e->rtp_learned);
    out->legs = e->n_legs;
    out->rooms = e->n_rooms;
}
