/* The media engine: media threads on an absolute 20 ms clock that receive RTP, run the jitter
 * buffers and the mixer, and send the mixes. The control thread creates legs (a call's audio:
 * an RTP/RTCP socket pair from the port range) and rooms (a conference's mix), and joins legs to
 * rooms; commands reach the media threads through lock-free queues and events come back the same
 * way. Inside the tick nothing allocates, blocks, or takes a lock the control thread holds.
 * A leg outside a room hears nothing unless it is played a clip (media_leg_play); what it sends
 * is dropped as it comes due.
 *
 * Functions here are for the control thread unless marked otherwise. */
#ifndef CONFERENCED_ENGINE_H
#define CONFERENCED_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ids.h"
#include "media/mixer.h"

struct media_engine;
struct media_leg;
struct media_room;
struct media_tap;
struct dtls_cert;

enum media_event_type {
    MEDIA_LEG_JOINED = 0, /* the leg's audio is in its room */
    MEDIA_LEG_LEFT,       /* the leg's audio is out of its room */
    MEDIA_LEG_DTMF,       /* a telephone-event key press (RFC 4733) */
    MEDIA_LEG_TIMEOUT,    /* no RTP for the inactivity time, once armed (media_leg_arm_timeout) */
    MEDIA_LEG_PLAY_DONE,  /* a clip played to the end (stopped=false) or was cut short (true) */
    MEDIA_LEG_SECURE_FAILED, /* a WebRTC leg's DTLS handshake failed: it can carry no audio */
    MEDIA_LEG_SECURE_CLOSED, /* a WebRTC peer closed its DTLS (close_notify): it has gone */
};

struct media_event {
    enum media_event_type type;
    struct media_leg *leg;
    char digit;
    uint32_t play_id; /* MEDIA_LEG_PLAY_DONE: the id given to media_leg_play() */
    bool stopped;     /* MEDIA_LEG_PLAY_DONE: cut short rather than played to the end */
};

/* Called on the control thread for every event. */
typedef void (*media_event_cb)(void *ctx, const struct media_event *ev);

struct media_config {
    const char *bind_ip;    /* address the RTP sockets bind to (and the SDP announces) */
    int port_min, port_max; /* RTP ports (even); RTCP is port + 1 */
    int threads;            /* media threads (>= 1) */
    int rtp_timeout_ms;     /* inactivity before MEDIA_LEG_TIMEOUT (30,000) */
    int opus_bitrate;       /* what Opus listeners are sent, bit/s (0: the codec's default) */
    int opus_complexity;    /* the Opus encoders' complexity 0..10 (-1: the codec's default) */
    struct dtls_cert *dtls_cert; /* the identity WebRTC legs show (media/dtls.h); NULL: none */
};

struct media_engine *media_engine_create(uv_loop_t *loop, const struct media_config *cfg,
                                         media_event_cb cb, void *ctx, char *err, size_t errlen);
/* Stops the threads and frees every room and leg. NULL is a no-op. Run the loop afterwards so
 * the wake-up handle closes. */
void media_engine_destroy(struct media_engine *e);

/* A conference's mix. key: the conference id (rooms are spread over the threads by it). There is
 * no limit on rooms here (only memory): limits are the callers' settings. */
struct media_room *media_room_create(struct media_engine *e, const char *key);
/* Legs still in the room leave it first (MEDIA_LEG_LEFT for each). */
void media_room_destroy(struct media_engine *e, struct media_room *r);

/* A call's audio: binds an RTP/RTCP port pair chosen at random in the range. key: the call id.
 * Returns NULL with a message in err when no pair is free. The leg is not in a room yet, takes no
 * RTP until media_leg_set_remote() and never times out until media_leg_arm_timeout(). */
struct media_leg *media_leg_create(struct media_engine *e, const char *key, char *err,
                                   size_t errlen);
int media_leg_port(const struct media_leg *l);
/* Control thread. The rate of the leg's audio in its codec (media_leg_set_remote()'s last):
 * 16000 for a wideband one (G.722, Opus), else 8000 (G.711, or none set yet). */
int media_leg_rate(const struct media_leg *l);
const char *media_leg_key(const struct media_leg *l);
/* Where to send (from the SDP), in which codec and payload type (audio_pt); dtmf_pt is -1 without
 * telephone-event. A codec other than the leg's last one starts its audio afresh. The
 * address is the expected source of strict RTP learning (see rtp_source in media/rtp.h): audio is
 * taken from it, or from a sender learned while it is silent (a NAT), and sent where it comes
 * from. signal_ip is where the call's SIP comes from: a sender is learned only from it or from the
 * SDP's address (NULL: from any address). Calling it again starts over from the new address. */
void media_leg_set_remote(struct media_engine *e, struct media_leg *l, const char *ip, int port,
                          enum codec_id codec, int audio_pt, int dtmf_pt, const char *signal_ip);
/* WebRTC media (RFC 8829's audio profile): the leg's one RTP socket carries ICE, DTLS and SRTP
 * and RTCP muxed (RFC 7983, RFC 5761). The engine is ICE-lite (RFC 8445 2.5): it answers the
 * peer's connectivity checks on its one host candidate and sends where a valid check nominated;
 * the DTLS 1.2 handshake (DTLS-SRTP, RFC 5763/5764) runs on the control thread, never in the tick,
 * and its keys go to the leg's SRTP. Until then the leg neither takes nor sends audio. Call it once,
 * before media_leg_set_remote() (whose address is then not used: ICE finds it). */
struct media_secure_offer {
    const char *ice_ufrag;   /* the peer's a=ice-ufrag ("" or NULL: not checked) */
    const char *fingerprint; /* the peer's a=fingerprint value, e.g. "sha-256 AB:CD:..." */
    bool dtls_client;        /* we open the handshake (the offer said a=setup:passive) */
    uint32_t ssrc;           /* the peer's a=ssrc, 0 when the offer has none */
};
#define MEDIA_ICE_UFRAG_MAX 32
#define MEDIA_ICE_PWD_MAX 64
struct media_secure_local {
    char ice_ufrag[MEDIA_ICE_UFRAG_MAX + 1], ice_pwd[MEDIA_ICE_PWD_MAX + 1];
    const char *fingerprint; /* ours (the engine's certificate), for a=fingerprint */
    uint32_t ssrc;           /* what we send under, for a=ssrc */
};
/* 0 with our side's parameters in out, or -1 with err (no certificate configured, already
 * secure). */
int media_leg_secure(struct media_engine *e, struct media_leg *l,
                     const struct media_secure_offer *offer, struct media_secure_local *out,
                     char *err, size_t errlen);
bool media_leg_is_secure(const struct media_leg *l);

/* Puts the leg's audio into a room (MEDIA_LEG_JOINED follows) / takes it out (MEDIA_LEG_LEFT).
 * A leg is in at most one room. */
void media_leg_join(struct media_engine *e, struct media_leg *l, struct media_room *r);
void media_leg_leave(struct media_engine *e, struct media_leg *l);
/* Starts the inactivity timer: MEDIA_LEG_TIMEOUT once no RTP came for rtp_timeout_ms. Call it
 * when the call is answered (a ringing call sends no audio). Later calls change nothing. */
void media_leg_arm_timeout(struct media_engine *e, struct media_leg *l);
/* Closes the sockets and frees the leg (leaving its room first, without an event). */
void media_leg_destroy(struct media_engine *e, struct media_leg *l);

/* Audio to play: 8 kHz mono 16-bit samples (a wideband leg is played them resampled), immutable once created and shared by reference count
 * (any thread may take or drop a reference). */
struct media_clip;
/* Any thread. Copies samples[0..n); the caller holds the one reference. */
struct media_clip *media_clip_create(const int16_t *samples, size_t n);
/* Any thread. Takes another reference; returns c. */
struct media_clip *media_clip_ref(struct media_clip *c);
/* Any thread. Drops a reference and frees the clip at zero; NULL is a no-op. */
void media_clip_unref(struct media_clip *c);
/* Any thread, while holding a reference. */
size_t media_clip_samples(const struct media_clip *c);
const int16_t *media_clip_data(const struct media_clip *c);

/* Plays a clip to a leg that is not in a room, from its start, in the leg's codec, one 20 ms frame
 * per tick (the last frame padded with silence); the engine takes its own reference (the caller
 * keeps its own). MEDIA_LEG_PLAY_DONE with play_id follows when the clip has been sent entirely
 * (stopped=false) or was cut short (stopped=true: media_leg_play_stop(), another media_leg_play()
 * on the leg, the leg joining a room, or the leg being in a room when the play reaches it). A
 * destroyed leg gives no event. RTP sequence numbers and timestamps run on across plays and mixes
 * (one SSRC); the first packet of a play carries the marker bit. */
void media_leg_play(struct media_engine *e, struct media_leg *l, struct media_clip *clip,
                    uint32_t play_id);
/* Cuts the leg's playback short (MEDIA_LEG_PLAY_DONE, stopped=true); nothing when idle. */
void media_leg_play_stop(struct media_engine *e, struct media_leg *l);

/* Taps (media/tap.h): from the tick the command arrives until it is untapped or what it taps is
 * destroyed (then the engine closes the tap), each tick pushes one frame to the tap:
 * - a room's tap: the room's whole mix, everyone and nobody subtracted, limited as listeners hear
 *   it. A tapped room is ticked even when it has no members (silence is pushed), so the tap's time
 *   is wall time.
 * - a leg's tap, by the side it taps (media_leg_tap_side; media_leg_tap is MEDIA_TAP_BOTH):
 *   MEDIA_TAP_BOTH   what its call says and what it hears, summed and limited (in a room: the
 *                    room's whole mix; outside one: its audio plus the clip it is played);
 *   MEDIA_TAP_SAYS   its own decoded audio after the jitter buffer (concealment included), the
 *                    frame the mixer takes from it, in a room or not; silence when nothing came;
 *   MEDIA_TAP_HEARS  what it is sent, before encoding: in a room its mix (everyone talking but
 *                    itself), outside one the clip it is played; else silence.
 *   A speech tap (media/tap.h) on MEDIA_TAP_SAYS cuts one participant's voice into utterances.
 * A leg's taps move with it between media threads. The engine takes a reference on the tap. At
 * most MEDIA_TAPS_MAX taps on one room or leg, whatever their sides: -1 beyond, else 0. */
#define MEDIA_TAPS_MAX 4
enum media_tap_side { MEDIA_TAP_BOTH = 0, MEDIA_TAP_SAYS, MEDIA_TAP_HEARS };
int media_room_tap(struct media_engine *e, struct media_room *r, struct media_tap *tap);
int media_leg_tap(struct media_engine *e, struct media_leg *l, struct media_tap *tap);
int media_leg_tap_side(struct media_engine *e, struct media_leg *l, struct media_tap *tap,
                       enum media_tap_side side);
/* Stops pushing to tap (it is closed, and the engine drops its reference); nothing when tap is not
 * on it. */
void media_room_untap(struct media_engine *e, struct media_room *r, struct media_tap *tap);
void media_leg_untap(struct media_engine *e, struct media_leg *l, struct media_tap *tap);
/* A tap has one producer: it is on one room or leg at a time (the same tap again on the same one,
 * on another side too, or on a room or leg already destroyed: -1). */

/* Any thread. The number of the 20 ms slot now falls in on the engine's grid: the tick a media
 * thread ticking now gives its frames. A frame's wall-clock time is the wall-clock time when this
 * was read, plus (its tick - this) * 20 ms. */
uint64_t media_engine_tick_now(const struct media_engine *e);

/* Counters for tests and benchmarks (read from any thread; approximate while running). */
struct media_stats {
    uint64_t ticks, packets_in, packets_out, bad_packets;
    uint64_t late_ticks;   /* ticks run a slot or more after their time (caught up) */
    uint64_t missed_ticks; /* slots never ticked: a thread more than 100 ms behind skips them */
    uint64_t rtp_refused;  /* packets strict learning refused (from other senders) */
    uint64_t rtp_learned;  /* times a leg took another sender than its SDP named (a NAT) */
    uint64_t max_tick_us;  /* the longest tick so far */
    uint64_t srtp_failed;  /* WebRTC packets that failed SRTP authentication (or replays) */
    uint64_t secure_mail_dropped; /* STUN and DTLS datagrams dropped: a peer sent too many */
    size_t legs, rooms;
};
void media_engine_stats(const struct media_engine *e, struct media_stats *out);

#endif
