/* RTP (RFC 3550) packets, RFC 4733 telephone events, and the per-participant adaptive jitter
 * buffer with loss concealment. Pure functions and caller-owned state: no allocation after
 * jb_create(), no locks, no system calls. Media thread only (jb_create/jb_destroy: any thread). */
#ifndef CONFERENCED_RTP_H
#define CONFERENCED_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTP_HEADER_MIN 12
#define RTP_MAX_PACKET 1500

struct rtp_packet {
    uint8_t payload_type;
    bool marker;
    uint16_t seq;
    uint32_t ts;
    uint32_t ssrc;
    const uint8_t *payload; /* points into the parsed buffer */
    size_t payload_len;
};

/* Parses an RTP packet (version 2; CSRCs, header extension and padding handled). Returns 0, or -1
 * for anything malformed (which the caller drops). Never reads outside buf[0..len). */
int rtp_parse(const uint8_t *buf, size_t len, struct rtp_packet *out);
/* True when the packet looks like RTCP (RFC 5761 rule: second byte 192..223). */
bool rtp_is_rtcp(const uint8_t *buf, size_t len);
/* What a datagram on a WebRTC leg's one socket is, by its first byte (RFC 7983 7): STUN 0-3,
 * DTLS 20-63, RTP and RTCP 128-191 (told apart as rtp_is_rtcp does), anything else other. */
enum rtp_demux { RTP_DEMUX_STUN, RTP_DEMUX_DTLS, RTP_DEMUX_RTP, RTP_DEMUX_RTCP, RTP_DEMUX_OTHER };
enum rtp_demux rtp_demux(const uint8_t *buf, size_t len);
/* Writes a 12-byte header and the payload; returns the packet length, or 0 when cap is too small.
 */
size_t rtp_build(uint8_t *buf, size_t cap, uint8_t payload_type, bool marker, uint16_t seq,
                 uint32_t ts, uint32_t ssrc, const uint8_t *payload, size_t payload_len);

/* RFC 4733 telephone-event payload. */
struct rtp_dtmf {
    uint8_t event; /* 0-9, 10 '*', 11 '#', 12-15 A-D */
    bool end;
    uint8_t volume;
    uint16_t duration;
};
/* Pure, any thread. Reads the first 4 bytes of payload; returns 0, or -1 when len < 4. */
int rtp_dtmf_parse(const uint8_t *payload, size_t len, struct rtp_dtmf *out);
/* Pure, any thread. '0'..'9', '*', '#', 'A'..'D', or 0 for other events. */
char rtp_dtmf_char(uint8_t event);

/* Tracks received telephone events and reports each key press once (at its first packet), however
 * many packets and end retransmissions it takes. */
struct dtmf_tracker {
    bool active;
    uint32_t ts; /* RTP timestamp of the event in progress */
    uint8_t event;
    bool ended;    /* its end packet was seen (a marker with the same timestamp restarts) */
    uint32_t ssrc; /* a new source starts afresh whatever its timestamps */
};
/* Caller-owned, zero-initialised; media thread. Returns the key ('0'..'D') when p starts a new
 * event (a newer timestamp, a new SSRC, or a marker after the end), else 0; packets of older
 * events are ignored. */
char dtmf_tracker_feed(struct dtmf_tracker *t, const struct rtp_packet *p,
                       const struct rtp_dtmf *d);

/* Strict RTP source learning (as Asterisk's strictrtp): which sender a leg takes audio from and
 * sends to. The expected source is the address and port the SDP named. Its packets are always
 * taken, and it takes the leg back whenever it sends again. Another sender is taken only after
 * RTP_LEARN_PACKETS consecutive in-sequence packets with one SSRC, sent while the current source
 * has been silent for RTP_LEARN_SILENCE_US (or never sent): that is a phone behind a NAT, which
 * sends from another address than its SDP says, or a source that moved. A sender is learned only
 * from the trusted address (where the call's SIP comes from; see rtp_source_trust) or the SDP's;
 * anything else is refused without disturbing a learning in progress. Refusals are counted. Addresses and ports are compared as given (any byte order).
 *
 * Why 4: Asterisk's learning_min_sequential default. It is 80 ms of audio, and a sender has to
 * keep one stream going (not one packet per port) to be learned. Why 2 s: a live sender sends
 * every 20 ms, so 2 s is 100 missing packets: it has stopped or moved. Shorter would open a leg
 * to whoever sprays it in the pauses of a sender that stops sending while nobody talks (DTX);
 * longer would keep a phone whose address changed (NAT rebinding, Wi-Fi to mobile) mute for
 * longer. Before the current source has sent at all it counts as silent, so a phone behind a NAT
 * is heard from its first packets: the window this leaves (a stream sent to a new leg before its
 * caller's first packet) closes at the first packet from the SDP's own address. */
#define RTP_LEARN_PACKETS 4
#define RTP_LEARN_SILENCE_US INT64_C(2000000)

struct rtp_source {
    bool expected;     /* an SDP source was given */
    uint32_t sdp_addr; /* the source the SDP named */
    uint16_t sdp_port;
    uint32_t trusted_addr; /* learning takes a sender only from this or the SDP's address (0: any) */
    uint32_t addr;         /* the current source: where audio is taken from and sent to */
    uint16_t port;
    bool heard;         /* the current source has sent since it became current */
    int64_t heard_us;   /* when it last did */
    uint32_t cand_addr; /* a sender being learned */
    uint16_t cand_port;
    uint32_t cand_ssrc;
    uint16_t cand_seq;
    int cand_count;   /* its consecutive in-sequence packets (0: none) */
    uint64_t refused; /* packets refused */
    uint64_t learned; /* times another source than the SDP's was taken */
};

enum rtp_source_verdict {
    RTP_SOURCE_REFUSE = 0, /* drop the packet */
    RTP_SOURCE_ACCEPT,     /* from the current source */
    RTP_SOURCE_SWITCH,     /* accepted, and its sender is the current source from now on */
};

/* Caller-owned; media thread (pure). Sets the expected source and makes it current (not heard
 * yet); the counters run on. A zeroed struct refuses everything until this is called. */
void rtp_source_expect(struct rtp_source *s, uint32_t addr, uint16_t port);
/* Media thread (pure). Learning will take another sender only from addr (the address the call's
 * signalling comes from: a phone behind a NAT sends its RTP from there too) or from the SDP's
 * address; 0 lifts the restriction. Kept across rtp_source_expect(). */
void rtp_source_trust(struct rtp_source *s, uint32_t addr);
/* Media thread (pure). The verdict on a parsed packet p from addr:port at now_us (monotonic). */
enum rtp_source_verdict rtp_source_check(struct rtp_source *s, uint32_t addr, uint16_t port,
                                         const struct rtp_packet *p, int64_t now_us);
/* Media thread (pure). True when the current source has been quiet long enough for another
 * sender to be learned (or never sent). */
bool rtp_source_silent(const struct rtp_source *s, int64_t now_us);

/* Adaptive jitter buffer for 20 ms frames (any codec: each slot holds up to max_bytes). */
struct jitter_buffer;

/* Any thread, not in the tick: allocates the whole buffer (33 slots of max_bytes and about 1 KB);
 * never NULL. Payloads outside min_bytes..max_bytes are dropped and counted (a G.711 or G.722
 * frame of 20 ms is exactly 160 bytes; an Opus one 1 to 1,276). */
struct jitter_buffer *jb_create(size_t min_bytes, size_t max_bytes);
/* Any thread, once the media thread no longer uses it; NULL is a no-op. */
void jb_destroy(struct jitter_buffer *jb);
/* Stores an audio packet that arrived at arrival_us (monotonic µs). Late (already played),
 * duplicate, too-early (beyond capacity) and wrongly sized packets are dropped and counted. An SSRC
 * change or a sequence jump > 100 resynchronises once a second packet confirms it (a stray packet
 * does not); a timestamp discontinuity restarts the jitter estimate. */
void jb_put(struct jitter_buffer *jb, const struct rtp_packet *p, int64_t arrival_us);

enum jb_result {
    JB_FRAME = 0, /* out holds the next frame */
    JB_LOST,      /* the next frame is missing, or the delay grows: conceal (caller runs PLC) */
    JB_EMPTY,     /* nothing buffered or still filling: contribute nothing (silence) */
};
/* Takes the frame due at this 20 ms tick into out (max_bytes of room), its length in *len. The
 * playout delay adapts to the measured inter-arrival jitter (RFC 3550 estimator): it grows
 * quickly when packets come late (concealing a frame: JB_LOST) and shrinks slowly (dropping a
 * frame or skipping a gap, at most one per second), between 20 and 200 ms. */
enum jb_result jb_get(struct jitter_buffer *jb, uint8_t *out, size_t *len);
/* The frame the next jb_get() would give, if it is buffered (else NULL): after a JB_LOST, the
 * frame following the lost one, whose in-band FEC (Opus) can rebuild it. Valid until the next
 * jb_put() or jb_get(). */
const uint8_t *jb_peek(const struct jitter_buffer *jb, size_t *len);

struct jb_stats {
    uint64_t received, played, lost, late, duplicate, dropped, resyncs;
    uint64_t stretched;  /* JB_LOST returned to grow the delay (not a missing packet) */
    uint64_t shrunk;     /* frames dropped or gaps skipped to shrink the delay */
    double jitter_ms;    /* RFC 3550 interarrival jitter */
    int target_delay_ms; /* playout delay aimed at */
    int delay_ms;        /* measured playout delay (smoothed; 0 while filling) */
    int buffered;        /* frames in the buffer */
};
/* Media thread (or whoever owns jb): a copy of the counters and current figures. */
void jb_get_stats(const struct jitter_buffer *jb, struct jb_stats *out);

#endif
