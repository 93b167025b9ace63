/* What the media engine's files share (not for use outside src/media/engine*.c): the commands
 * to the media threads, the events back, the engine's objects with every field labelled by the
 * thread that owns it, and the functions one layer offers another. The layers:
 *   engine.c         control thread: the engine, rooms, legs, moves between threads, frees
 *   engine_thread.c  media thread: commands, the tick, the clock
 *   engine_rtp.c     media thread: a leg's RTP in (jitter buffer, PLC, DTMF) and out
 *   engine_transport.c media thread: how a leg's datagrams come and go (UDP RTP, WebRTC)
 *   engine_ports.c   control thread: the RTP port pairs
 *   engine_play.c    clips and their playback to legs outside rooms
 *   engine_tap.c     taps of rooms and legs (media/tap.h)
 *   engine_codec.c   a leg's codec state and a room's shared encoders and band bridges
 *   engine_secure.c  control thread: a WebRTC leg's ICE-lite and DTLS, its keys to SRTP */
#ifndef CONFERENCED_ENGINE_INTERNAL_H
#define CONFERENCED_ENGINE_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "core/spsc.h"
#include "media/codec.h"
#include "media/engine.h"
#include "media/resample.h"
#include "media/rtp.h"
#include "media/tap.h"

#define TICK_NS INT64_C(20000000)
#define CMD_RING 4096
#define EV_RING 16384
#define MAX_RX_PER_TICK 16
#define ROOM_INITIAL_CAP 8

enum cmd_type {
    CMD_ROOM_REMOVE,
    CMD_ROOM_RESIZE,
    CMD_ROOM_CODEC,
    CMD_LEG_ADD,
    CMD_LEG_REMOVE,
    CMD_LEG_REMOTE,
    CMD_LEG_JOIN,
    CMD_LEG_LEAVE,
    CMD_LEG_DETACH,
    CMD_LEG_PLAY,
    CMD_LEG_PLAY_STOP,
    CMD_LEG_ARM_TIMEOUT,
    CMD_ROOM_TAP,
    CMD_ROOM_UNTAP,
    CMD_LEG_TAP,
    CMD_LEG_UNTAP,
    CMD_LEG_SECURE, /* the leg is a WebRTC one: its mailbox (mail) */
    CMD_LEG_PEER,   /* where ICE says a WebRTC leg's audio goes (remote) */
    CMD_LEG_SRTP,   /* a WebRTC leg's SRTP keys (srtp) */
    CMD_STOP,
};

struct cmd {
    enum cmd_type type;
    struct media_leg *leg;
    struct media_room *room;
    struct sockaddr_in remote;
    uint32_t signal_addr; /* CMD_LEG_REMOTE: learning only from here or the SDP (0: anywhere) */
    int codec, audio_pt, dtmf_pt;
    struct leg_codec *lc;  /* CMD_LEG_REMOTE: the leg's new codec state (NULL: it keeps its own) */
    struct codec_enc *enc; /* CMD_ROOM_CODEC: the room's shared encoder of codec, or NULL */
    struct resampler *up, *down;    /* CMD_ROOM_CODEC: the band bridges, or NULL */
    struct mix_participant **array; /* CMD_ROOM_RESIZE */
    size_t cap;
    struct media_clip *clip; /* CMD_LEG_PLAY: a reference the command carries */
    uint32_t play_id;
    struct media_tap *tap;    /* CMD_*_TAP: a reference the command carries; CMD_*_UNTAP: which */
    enum media_tap_side side; /* CMD_LEG_TAP */
    struct secure_mailbox *mail; /* CMD_LEG_SECURE */
    struct srtp_pair *srtp;   /* CMD_LEG_SRTP: the sessions the command carries */
};

enum ev_type {
    EV_PUBLIC = 0,   /* a media_event for the application */
    EV_LEG_REMOVED,  /* the thread forgot the leg: free it */
    EV_ROOM_REMOVED, /* the thread forgot the room: free it */
    EV_LEG_DETACHED, /* the leg left this thread to join a room on another one */
    EV_FREE_ARRAY,   /* a room's old participant array */
    EV_TAP_RELEASE,  /* the thread let go of a tap (closed): drop the reference in ptr */
    EV_FREE_CODEC,   /* a leg's codec state it no longer uses (ptr) */
    EV_SECURE_MAIL,  /* a WebRTC leg's mailbox has STUN or DTLS datagrams for the control thread */
    EV_FREE_SRTP,    /* SRTP sessions a leg no longer uses (ptr) */
};

struct ev {
    enum ev_type type;
    struct media_event pub;
    struct media_room *room;
    void *ptr; /* EV_FREE_ARRAY: the array; EV_PUBLIC: a clip reference to drop, or NULL;
                * EV_TAP_RELEASE: the tap */
};

struct media_clip {
    atomic_size_t refs;
    size_t n;
    int16_t samples[];
};

/* The taps on a room or a leg: a fixed array, so that adding one never allocates. */
struct engine_taps {
    struct media_tap *tap[MEDIA_TAPS_MAX];
    enum media_tap_side side[MEDIA_TAPS_MAX]; /* a leg's (a room's are all MEDIA_TAP_BOTH) */
    size_t n;
};

/* A leg's codec: made on the control thread when the SDP names it (engine_codec_create), used
 * by the media thread that has the leg, handed back when replaced and freed with the leg. */
struct leg_codec {
    enum codec_id id;
    struct jitter_buffer *jb;
    struct codec_dec *dec;
    struct codec_enc *enc;                    /* the leg's own encoder (its mix-minus, its clips) */
    struct resampler *clip_up;                /* wideband legs: 8 kHz clips up to 16 kHz */
    struct resampler *says_down; /* wideband legs out of a room: the voice down to 8 kHz, for a
                                  * tap of both sides (summed with the 8 kHz clips it hears) */
};

/* A STUN or DTLS datagram a WebRTC leg received, on its way to the control thread (the mailbox is
 * an spsc ring of these: media thread in, control thread out; full, it drops). */
#define SECURE_MAIL_DGRAM 1500
#define SECURE_MAIL_SLOTS 8
struct secure_mail {
    struct sockaddr_in from;
    uint16_t len;
    uint8_t data[SECURE_MAIL_DGRAM];
};
/* A leg's mailbox. signalled: an EV_SECURE_MAIL is on its way (the media thread sets it when it
 * emits one, the control thread clears it before it drains), so a leg has at most one such event
 * in the ring however fast its peer sends. */
struct secure_mailbox {
    struct spsc ring;
    atomic_bool signalled;
};

struct leg_secure; /* engine_secure.c: control-owned */
struct srtp_pair;
struct media_thread;
struct media_leg;

/* A leg's transport (engine_transport.c), on its media thread. */
struct leg_transport {
    /* One datagram in (buf writable, n bytes): true with the RTP packet to take in *p (pointing
     * into buf); false when it is not one (refused, or taken elsewhere: STUN, DTLS). */
    bool (*take)(struct media_thread *t, struct media_leg *l, uint8_t *buf, size_t n,
                 const struct sockaddr_in *from, int64_t now, struct rtp_packet *p);
    /* Whether it can send now. */
    bool (*ready)(const struct media_leg *l);
    /* One RTP packet out (pkt has SRTP_PAIR_TRAILER more bytes of room): true when sent. */
    bool (*send)(struct media_leg *l, uint8_t *pkt, size_t n);
};
extern const struct leg_transport engine_transport_udp;    /* strict learning, connected socket */
extern const struct leg_transport engine_transport_webrtc; /* ICE-lite, DTLS-SRTP, rtcp-mux */

static inline void engine_count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

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
    struct engine_taps ctl_taps; /* asked for and not untapped (no references: those go with
                                  * the commands) */
    unsigned ctl_codecs;         /* bit per codec: its shared encoder was sent (CMD_ROOM_CODEC) */
    bool ctl_bridged;            /* the band bridges were sent */
    /* media-owned (mix.shared_enc, mix.up and mix.down are freed with the room) */
    size_t media_cap;
    struct mix_room mix;
    struct media_leg **members;                   /* parallel to mix.p */
    struct media_room *prev_active, *next_active; /* the thread's rooms with members or taps */
    bool on_active;
    struct engine_taps taps; /* the engine's references */
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
    struct engine_taps ctl_taps; /* as for rooms */
    int ctl_codec;               /* the codec last given (media_leg_set_remote), or -1 */
    struct leg_secure *ctl_secure; /* a WebRTC leg's ICE and DTLS (NULL: plain RTP) */
    /* media-owned (and moving with the leg between threads) */
    struct media_leg *prev, *next; /* the thread's list of legs */
    struct mix_participant mp;
    struct leg_codec *lc; /* NULL until the first media_leg_set_remote() arrives */
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
    bool play_first;         /* the next frame starts the play (marker bit) */
    struct engine_taps taps; /* the engine's references */
    const struct leg_transport *tp; /* engine_transport_udp until CMD_LEG_SECURE */
    struct secure_mailbox *mail; /* a WebRTC leg's mailbox (NULL: plain RTP) */
    struct srtp_pair *srtp;  /* its keys, once DTLS has made them (freed with the leg) */
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
    struct media_room *active; /* the rooms that have members or taps */
    uint64_t tick_count;
    struct ev *pending; /* events that did not fit the ring, retried each tick */
    size_t n_pending, cap_pending;
    bool events_pushed;
    struct log_limit alarm_log; /* "never expected" lines: at most one a second */
};

struct media_engine {
    struct media_config cfg;
    int64_t epoch_ns; /* tick 0: every media thread ticks on this one 20 ms grid */
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
    _Atomic uint64_t ticks, late_ticks, missed_ticks, packets_in, packets_out, bad_packets,
        max_tick_us;
    _Atomic uint64_t rtp_refused, rtp_learned;
    _Atomic uint64_t srtp_failed, secure_mail_dropped;
};

/* ---- engine.c (control thread) ---- */

/* Queues a command to a media thread and wakes it. */
void engine_send_cmd(struct media_thread *t, const struct cmd *c);
/* Sends a command to a leg wherever it is (waiting while it moves; a join may start a move). */
void engine_leg_send(struct media_leg *l, const struct cmd *c);

/* ---- engine_thread.c (media thread) ---- */

int64_t engine_mono_ns(void);
void *engine_thread_main(void *arg);
/* An event for the control thread (kept and retried when the ring is full). */
void engine_emit(struct media_thread *t, const struct ev *ev);
/* A "never expected" condition, logged at most once a second. */
void engine_alarm_log(struct media_thread *t, const char *what);
/* A room is on its thread's active list (ticked) while it has members or taps. */
void engine_room_update_active(struct media_thread *t, struct media_room *r);
/* Control thread too, once the threads have stopped. */
void engine_thread_unlink_leg(struct media_thread *t, struct media_leg *l);

/* ---- engine_transport.c (media thread) ---- */

/* Back to an unconnected socket: every sender reaches us again (strict learning decides). */
void engine_leg_disconnect(struct media_leg *l);

/* ---- engine_rtp.c (media thread) ---- */

/* Reads what arrived on the leg's sockets (RTCP too when rtcp_too). */
void engine_leg_receive(struct media_thread *t, struct media_leg *l, int64_t now, bool rtcp_too);
/* The leg's input for this tick from its jitter buffer (decoded, or concealed): l->mp.in and
 * l->mp.has_in. */
void engine_leg_fill_input(struct media_leg *l);
/* Sends one encoded 20 ms frame; sequence and timestamp are the leg's whoever made the frame. */
void engine_leg_send_frame(struct media_thread *t, struct media_leg *l, const uint8_t *payload,
                           size_t len, bool marker);
/* The leg's RTP timestamp moves on by one frame of its codec (nothing sent). */
void engine_leg_skip_frame(struct media_leg *l);

/* ---- engine_ports.c (control thread) ---- */

void engine_ports_init(struct media_engine *e);
void engine_ports_fini(struct media_engine *e);
/* Binds a free pair: its RTP port, with the sockets in *rtp and *rtcp, or -1 with err. */
int engine_ports_take(struct media_engine *e, int *rtp, int *rtcp, char *err, size_t errlen);
void engine_ports_release(struct media_engine *e, int port);

/* ---- engine_play.c ---- */

/* Media thread. Starts a CMD_LEG_PLAY (or refuses it: the leg is in a room, the clip is empty). */
void engine_play_start(struct media_thread *t, struct media_leg *l, const struct cmd *c);
/* Media thread. Ends the leg's playback, if any (MEDIA_LEG_PLAY_DONE). */
void engine_play_end(struct media_thread *t, struct media_leg *l, bool stopped);
/* Media thread, for a leg outside a room: sends the next frame of its clip, if it plays one, and
 * gives it in pcm (true); else the timestamp just follows the clock (false). */
bool engine_play_next(struct media_thread *t, struct media_leg *l, int16_t pcm[MIX_FRAME]);

/* ---- engine_codec.c ---- */

/* Control thread. The state of a leg in codec c (allocates; never NULL). */
struct leg_codec *engine_codec_create(const struct media_engine *e, enum codec_id c);
/* Any thread that owns it; NULL is a no-op. */
void engine_codec_free(struct leg_codec *lc);
/* Control thread. Makes sure room r can mix a leg in codec c: its shared encoder (stateful
 * codecs) and, for a wideband codec, the band bridges are sent to the room (CMD_ROOM_CODEC)
 * the first time they are needed. Nothing for a destroyed room. */
void engine_room_need_codec(struct media_engine *e, struct media_room *r, enum codec_id c);
/* Media thread. CMD_ROOM_CODEC. */
void engine_room_codec_apply(struct media_room *r, const struct cmd *c);
/* Control thread, freeing a room (or an unapplied CMD_ROOM_CODEC). */
void engine_room_codecs_free(struct media_room *r);
void engine_room_codec_cmd_free(const struct cmd *c);

/* ---- engine_secure.c (control thread) ---- */

/* EV_SECURE_MAIL: answers the checks and runs the handshake from what the leg's mailbox holds. */
void engine_secure_mail(struct media_engine *e, struct media_leg *l);
/* Frees a leg's ICE and DTLS state (the media threads are done with the leg). NULL: no-op. */
void engine_secure_free(struct leg_secure *s);

/* ---- engine_tap.c ---- */

/* Media thread. CMD_ROOM_TAP, CMD_ROOM_UNTAP, CMD_LEG_TAP, CMD_LEG_UNTAP. */
void engine_tap_apply(struct media_thread *t, const struct cmd *c);
/* Media thread. Closes every tap and hands the references back (EV_TAP_RELEASE). */
void engine_taps_hand_back(struct media_thread *t, struct engine_taps *taps);
/* Media thread, after the room's mix: its frame to the room's taps and its tapped members'. */
void engine_tap_room(struct media_room *r, uint64_t tick);
/* Media thread: a tapped leg outside a room, from its input (l->mp) and the clip frame it was
 * sent (NULL: none). */
void engine_tap_idle_leg(struct media_leg *l, uint64_t tick, const int16_t *clip);
/* Control thread. Closes the tap and drops a reference the engine held. */
void engine_tap_release(struct media_tap *tap);
/* Control thread. engine_tap_release() for every tap of an object being freed. */
void engine_taps_release(struct engine_taps *taps);

#endif
