/* The engine on the control thread: rooms and legs are created, freed and moved here; commands
 * go to the media threads through their rings and events come back through one uv_async_t. */
#include "media/engine.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "media/engine_internal.h"
#include "media/srtp_pair.h"

void engine_send_cmd(struct media_thread *t, const struct cmd *c)
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

/* The media threads are done with the leg: what it still holds (a clip it was playing, taps still
 * on it at shutdown, commands it did not get to) goes with it; its port pair is free again. */
static void free_leg(struct media_leg *l)
{
    close(l->fd_rtp);
    close(l->fd_rtcp);
    engine_ports_release(l->thread->e, l->port);
    engine_codec_free(l->lc);
    engine_secure_free(l->ctl_secure);
    srtp_pair_free(l->srtp);
    media_clip_unref(l->clip);
    engine_taps_release(&l->taps);
    for (size_t i = 0; i < l->n_deferred; i++) {
        if (l->deferred[i].type == CMD_LEG_PLAY)
            media_clip_unref(l->deferred[i].clip);
        else if (l->deferred[i].type == CMD_LEG_TAP)
            engine_tap_release(l->deferred[i].tap);
        else if (l->deferred[i].type == CMD_LEG_REMOTE)
            engine_codec_free(l->deferred[i].lc);
        else if (l->deferred[i].type == CMD_LEG_SRTP)
            srtp_pair_free(l->deferred[i].srtp);
    }
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
    engine_taps_release(&r->taps); /* none but at shutdown: the thread hands them back */
    engine_room_codecs_free(r);
    free(r->mix.p);
    free(r);
}

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
    engine_send_cmd(l->thread, &add);
    /* Asked to leave or go elsewhere on the way: it leaves (MEDIA_LEG_LEFT) rather than join. */
    bool join = !r->destroyed && l->ctl_room == r;
    struct cmd jc = {.type = join ? CMD_LEG_JOIN : CMD_LEG_LEAVE, .leg = l, .room = r};
    engine_send_cmd(l->thread, &jc);
    room_release_ptr(r);
    struct cmd *d = l->deferred;
    size_t n = l->n_deferred;
    l->deferred = NULL;
    l->n_deferred = l->cap_deferred = 0;
    for (size_t i = 0; i < n; i++)
        engine_leg_send(l, &d[i]); /* a join among them may start another move */
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
            case EV_TAP_RELEASE:
                media_tap_unref(ev.ptr);
                break;
            case EV_FREE_CODEC:
                engine_codec_free(ev.ptr);
                break;
            case EV_SECURE_MAIL:
                if (!ev.pub.leg->destroying)
                    engine_secure_mail(e, ev.pub.leg);
                break;
            case EV_FREE_SRTP:
                srtp_pair_free(ev.ptr);
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
    engine_ports_init(e);
    e->epoch_ns = engine_mono_ns();
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
        if (pthread_create(&t->tid, NULL, engine_thread_main, t) != 0)
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
    case EV_TAP_RELEASE:
        media_tap_unref(ev->ptr);
        break;
    case EV_FREE_CODEC:
        engine_codec_free(ev->ptr);
        break;
    case EV_SECURE_MAIL:
        break;
    case EV_FREE_SRTP:
        srtp_pair_free(ev->ptr);
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
    log_info("msg=\"media stats\" ticks=%llu late_ticks=%llu missed_ticks=%llu max_tick_us=%llu "
             "packets_in=%llu "
             "packets_out=%llu bad_packets=%llu rtp_refused=%llu rtp_learned=%llu srtp_failed=%llu "
             "secure_mail_dropped=%llu",
             (unsigned long long)st.ticks, (unsigned long long)st.late_ticks,
             (unsigned long long)st.missed_ticks, (unsigned long long)st.max_tick_us,
             (unsigned long long)st.packets_in, (unsigned long long)st.packets_out,
             (unsigned long long)st.bad_packets, (unsigned long long)st.rtp_refused,
             (unsigned long long)st.rtp_learned, (unsigned long long)st.srtp_failed,
             (unsigned long long)st.secure_mail_dropped);
    for (int i = 0; i < e->n_threads; i++) {
        struct cmd stop = {.type = CMD_STOP};
        engine_send_cmd(&e->threads[i], &stop);
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
            else if (c.type == CMD_ROOM_TAP || c.type == CMD_LEG_TAP)
                engine_tap_release(c.tap);
            else if (c.type == CMD_LEG_REMOTE)
                engine_codec_free(c.lc);
            else if (c.type == CMD_ROOM_CODEC)
                engine_room_codec_cmd_free(&c);
            else if (c.type == CMD_LEG_SRTP)
                srtp_pair_free(c.srtp);
        }
    }
    for (int i = 0; i < e->n_threads; i++) {
        struct media_thread *t = &e->threads[i];
        while (t->legs) {
            struct media_leg *l = t->legs;
            engine_thread_unlink_leg(t, l);
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
    engine_ports_fini(e);
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
    /* The media thread first hears of it when a leg joins, it is tapped or it is removed. */
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
    engine_send_cmd(r->thread, &c);
    e->n_rooms--;
}

/* The port pair is drawn at random (engine_ports_take). */
struct media_leg *media_leg_create(struct media_engine *e, const char *key, char *err,
                                   size_t errlen)
{
    int rtp, rtcp;
    int port = engine_ports_take(e, &rtp, &rtcp, err, errlen);
    if (port < 0)
        return NULL;
    struct media_leg *l = xcalloc(1, sizeof(*l));
    str_copy(l->key, sizeof(l->key), key);
    l->port = port;
    l->fd_rtp = rtp;
    l->fd_rtcp = rtcp;
    l->ctl_codec = -1;
    l->tp = &engine_transport_udp;
    l->audio_pt = 0;
    l->dtmf_pt = -1;
    randombytes_buf(&l->ssrc, sizeof(l->ssrc));
    randombytes_buf(&l->seq, sizeof(l->seq));
    randombytes_buf(&l->ts, sizeof(l->ts));
    mix_vad_init(&l->mp.vad);
    l->thread = thread_for(e, key);
    struct cmd c = {.type = CMD_LEG_ADD, .leg = l};
    engine_send_cmd(l->thread, &c);
    e->n_legs++;
    return l;
}

int media_leg_port(const struct media_leg *l)
{
    return l->port;
}

int media_leg_rate(const struct media_leg *l)
{
    return l->ctl_codec >= 0 && codec_info((enum codec_id)l->ctl_codec)->wide ? 16000 : 8000;
}

const char *media_leg_key(const struct media_leg *l)
{
    return l->key;
}

void media_leg_set_remote(struct media_engine *e, struct media_leg *l, const char *ip, int port,
                          enum codec_id codec, int audio_pt, int dtmf_pt, const char *signal_ip)
{
    struct cmd c = {.type = CMD_LEG_REMOTE,
                    .leg = l,
                    .codec = (int)codec,
                    .audio_pt = audio_pt,
                    .dtmf_pt = dtmf_pt};
    if (l->ctl_codec != (int)codec) {
        c.lc = engine_codec_create(e, codec);
        l->ctl_codec = (int)codec;
        if (l->ctl_room)
            engine_room_need_codec(e, l->ctl_room, codec);
    }
    struct in_addr sig;
    if (signal_ip && inet_pton(AF_INET, signal_ip, &sig) == 1)
        c.signal_addr = sig.s_addr;
    c.remote.sin_family = AF_INET;
    c.remote.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &c.remote.sin_addr) != 1)
        c.remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    engine_leg_send(l, &c);
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
    engine_send_cmd(r->thread, &c);
}

/* Sends a command to the leg's thread. A leg on its way to another thread has none: what is asked
 * of it meanwhile waits in order and is sent when it arrives (leg_arrive). A join to a room on
 * another thread starts a move: detach here, attach there (the room is counted until then, so it
 * outlives the move whatever happens to it). */
void engine_leg_send(struct media_leg *l, const struct cmd *c)
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
        engine_send_cmd(l->thread, &d);
        return;
    }
    engine_send_cmd(l->thread, c);
}

void media_leg_join(struct media_engine *e, struct media_leg *l, struct media_room *r)
{
    room_reserve(l, r);
    if (l->ctl_codec >= 0)
        engine_room_need_codec(e, r, (enum codec_id)l->ctl_codec);
    struct cmd c = {.type = CMD_LEG_JOIN, .leg = l, .room = r};
    engine_leg_send(l, &c);
}

void media_leg_leave(struct media_engine *e, struct media_leg *l)
{
    room_release(l);
    struct cmd c = {.type = CMD_LEG_LEAVE, .leg = l};
    engine_leg_send(l, &c);
}

void media_leg_arm_timeout(struct media_engine *e, struct media_leg *l)
{
    struct cmd c = {.type = CMD_LEG_ARM_TIMEOUT, .leg = l};
    engine_leg_send(l, &c);
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
    engine_send_cmd(l->thread, &c);
}

void media_engine_stats(const struct media_engine *e, struct media_stats *out)
{
    out->ticks = atomic_load(&e->ticks);
    out->late_ticks = atomic_load(&e->late_ticks);
    out->missed_ticks = atomic_load(&e->missed_ticks);
    out->packets_in = atomic_load(&e->packets_in);
    out->packets_out = atomic_load(&e->packets_out);
    out->bad_packets = atomic_load(&e->bad_packets);
    out->max_tick_us = atomic_load(&e->max_tick_us);
    out->rtp_refused = atomic_load(&e->rtp_refused);
    out->rtp_learned = atomic_load(&e->rtp_learned);
    out->srtp_failed = atomic_load(&e->srtp_failed);
    out->secure_mail_dropped = atomic_load(&e->secure_mail_dropped);
    out->legs = e->n_legs;
    out->rooms = e->n_rooms;
}