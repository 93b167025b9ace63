/* RTP (RFC 3550) parsing and building, RFC 4733 telephone events, and the adaptive jitter buffer.
 * Written by hand: the parsing is a few bounds checks, and the jitter buffer has to fit the media
 * tick's rules (no allocation, no locks, no system calls, O(1) per packet), which the packaged RTP
 * stacks (oRTP, libre/baresip's jbuf) do not promise. */
#include "media/rtp.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/log.h"
#include "core/mem.h"

/* Signed distance a - b on the 16-bit sequence circle (-32768..32767), without relying on
 * implementation-defined narrowing. */
static int seq_diff(uint16_t a, uint16_t b)
{
    unsigned d = (uint16_t)(a - b);
    return d < 0x8000u ? (int)d : (int)d - 0x10000;
}

/* Signed distance a - b on the 32-bit timestamp circle. */
static int64_t ts_diff(uint32_t a, uint32_t b)
{
    uint32_t d = a - b;
    return d < 0x80000000u ? (int64_t)d : (int64_t)d - 0x100000000LL;
}

/* Each length is checked against what is left before it is used, so no sum can wrap and nothing
 * outside buf[0..len) is read: the CSRC list, then the extension header and its body, then the
 * padding count in the last byte (which must fit in what the header left over). */
int rtp_parse(const uint8_t *buf, size_t len, struct rtp_packet *out)
{
    if (!buf || len < RTP_HEADER_MIN || (buf[0] >> 6) != 2)
        return -1;
    size_t off = RTP_HEADER_MIN + 4u * (size_t)(buf[0] & 0x0F);
    if (off > len)
        return -1;
    if (buf[0] & 0x10) {
        if (len - off < 4)
            return -1;
        size_t ext = 4u * (size_t)rd16(buf + off + 2);
        off += 4;
        if (len - off < ext)
            return -1;
        off += ext;
    }
    size_t end = len;
    if (buf[0] & 0x20) {
        size_t pad = buf[len - 1];
        if (pad == 0 || pad > end - off)
            return -1;
        end -= pad;
    }
    out->payload_type = buf[1] & 0x7F;
    out->marker = (buf[1] & 0x80) != 0;
    out->seq = rd16(buf + 2);
    out->ts = rd32(buf + 4);
    out->ssrc = rd32(buf + 8);
    out->payload = buf + off;
    out->payload_len = end - off;
    return 0;
}

bool rtp_is_rtcp(const uint8_t *buf, size_t len)
{
    return buf && len >= 4 && (buf[0] >> 6) == 2 && buf[1] >= 192 && buf[1] <= 223;
}

enum rtp_demux rtp_demux(const uint8_t *buf, size_t len)
{
    if (!buf || len == 0)
        return RTP_DEMUX_OTHER;
    uint8_t b = buf[0];
    if (b <= 3)
        return RTP_DEMUX_STUN;
    if (b >= 20 && b <= 63)
        return RTP_DEMUX_DTLS;
    if (b >= 128 && b <= 191)
        return rtp_is_rtcp(buf, len) ? RTP_DEMUX_RTCP : RTP_DEMUX_RTP;
    return RTP_DEMUX_OTHER; /* ZRTP, TURN channels, garbage */
}

size_t rtp_build(uint8_t *buf, size_t cap, uint8_t payload_type, bool marker, uint16_t seq,
                 uint32_t ts, uint32_t ssrc, const uint8_t *payload, size_t payload_len)
{
    if (!buf || cap < RTP_HEADER_MIN || payload_len > cap - RTP_HEADER_MIN)
        return 0;
    if (payload_len && !payload)
        return 0;
    buf[0] = 0x80; /* version 2, no padding, no extension, no CSRC */
    buf[1] = (uint8_t)((marker ? 0x80 : 0) | (payload_type & 0x7F));
    wr16(buf + 2, seq);
    wr32(buf + 4, ts);
    wr32(buf + 8, ssrc);
    if (payload_len)
        memcpy(buf + RTP_HEADER_MIN, payload, payload_len);
    return RTP_HEADER_MIN + payload_len;
}

int rtp_dtmf_parse(const uint8_t *payload, size_t len, struct rtp_dtmf *out)
{
    if (!payload || len < 4)
        return -1;
    out->event = payload[0];
    out->end = (payload[1] & 0x80) != 0;
    out->volume = payload[1] & 0x3F; /* 0x40 is reserved */
    out->duration = rd16(payload + 2);
    return 0;
}

char rtp_dtmf_char(uint8_t event)
{
    static const char keys[] = "0123456789*#ABCD";
    return event < 16 ? keys[event] : 0;
}

/* An event is reported at the first packet that shows it: a newer timestamp (RFC 4733: all the
 * packets of one event carry its start timestamp), a new source, or a marker after the previous
 * event ended (a sender reusing the timestamp). Continuations, retransmitted starts and the three
 * end packets share the timestamp and are ignored; stragglers of an older event are too. */
char dtmf_tracker_feed(struct dtmf_tracker *t, const struct rtp_packet *p, const struct rtp_dtmf *d)
{
    bool fresh = !t->active || p->ssrc != t->ssrc;
    if (!fresh) {
        int64_t age = ts_diff(p->ts, t->ts);
        if (age < 0)
            return 0;
        fresh = age > 0 || (p->marker && t->ended);
    }
    if (!fresh) {
        if (d->end)
            t->ended = true;
        return 0;
    }
    t->active = true;
    t->ssrc = p->ssrc;
    t->ts = p->ts;
    t->event = d->event;
    t->ended = d->end;
    return rtp_dtmf_char(d->event);
}

/* ---- Strict source learning ---- */

void rtp_source_expect(struct rtp_source *s, uint32_t addr, uint16_t port)
{
    s->expected = true;
    s->sdp_addr = s->addr = addr;
    s->sdp_port = s->port = port;
    s->heard = false;
    s->heard_us = 0;
    s->cand_count = 0;
}

void rtp_source_trust(struct rtp_source *s, uint32_t addr)
{
    s->trusted_addr = addr;
}

bool rtp_source_silent(const struct rtp_source *s, int64_t now_us)
{
    return !s->heard || now_us - s->heard_us >= RTP_LEARN_SILENCE_US;
}

/* The SDP source first (it takes the leg back at once), then the current one; a third sender
 * only by learning while the current source is silent. A candidate restarts on any break: another
 * sender, another SSRC, or a sequence number that is not the next one. */
enum rtp_source_verdict rtp_source_check(struct rtp_source *s, uint32_t addr, uint16_t port,
                                         const struct rtp_packet *p, int64_t now_us)
{
    if (!s->expected) {
        s->refused++;
        return RTP_SOURCE_REFUSE;
    }
    bool current = addr == s->addr && port == s->port;
    if (!current && addr == s->sdp_addr && port == s->sdp_port) {
        s->addr = addr;
        s->port = port;
        s->heard = true;
        s->heard_us = now_us;
        s->cand_count = 0;
        return RTP_SOURCE_SWITCH;
    }
    if (current) {
        s->heard = true;
        s->heard_us = now_us;
        s->cand_count = 0;
        return RTP_SOURCE_ACCEPT;
    }
    if (s->trusted_addr && addr != s->trusted_addr && addr != s->sdp_addr) {
        s->refused++; /* never a candidate: it must not break the learning of the real one */
        return RTP_SOURCE_REFUSE;
    }
    if (!rtp_source_silent(s, now_us)) {
        s->cand_count = 0;
        s->refused++;
        return RTP_SOURCE_REFUSE;
    }
    if (s->cand_count > 0 && addr == s->cand_addr && port == s->cand_port &&
        p->ssrc == s->cand_ssrc && p->seq == (uint16_t)(s->cand_seq + 1)) {
        s->cand_count++;
    } else {
        s->cand_addr = addr;
        s->cand_port = port;
        s->cand_ssrc = p->ssrc;
        s->cand_count = 1;
    }
    s->cand_seq = p->seq;
    if (s->cand_count < RTP_LEARN_PACKETS) {
        s->refused++;
        return RTP_SOURCE_REFUSE;
    }
    s->addr = addr;
    s->port = port;
    s->heard = true;
    s->heard_us = now_us;
    s->cand_count = 0;
    s->learned++;
    return RTP_SOURCE_SWITCH;
}

/* ---- Jitter buffer ----
 *
 * A ring of JB_SLOTS frames indexed by sequence number; play_seq is the frame due at the next tick.
 * The target delay T (frames) comes from the RFC 3550 jitter J (its peaks, see jb_update_target),
 * clamped to 1..10. The actual delay is measured per packet as the number of ticks before it will
 * be played (ahead + 1), smoothed (delay_q, 1/16 gain); late packets pull it down. Each tick:
 * delay < T - 0.5 frame: return JB_LOST without advancing (the caller conceals; +20 ms);
 * delay > T + 1.5 frames and a second since the last shrink: drop the due frame, or skip it if it
 * is missing, and play the next one (-20 ms). The band of two frames keeps it from oscillating.
 * A packet that comes after its slot was concealed in an underflow rewinds the play position to it
 * (the concealment becomes a stretch, the audio is not lost): this also absorbs short DTX pauses.
 * Five misses with nothing buffered mean silence: back to filling, which waits until T frames
 * are buffered. */

#define JB_SLOTS 32 /* 640 ms: the 200 ms maximum target plus room for bursts; a power of two */
#define JB_MASK (JB_SLOTS - 1)
#define JB_FRAME_US 20000
#define JB_MIN_TARGET 1
#define JB_MAX_TARGET 10
#define JB_START_TARGET 2
#define JB_MAX_MISSES 5
#define JB_MAX_JUMP 100
#define JB_PROBE_SPAN 5
#define JB_SHRINK_TICKS 50          /* at most one shrink per second */
#define JB_DISCONTINUITY_US 1000000 /* |transit change| beyond this is not jitter */
#define JB_Q 256                    /* fixed point for frame counts */

struct jb_slot {
    uint8_t *data; /* max_bytes of the buffer's store */
    uint16_t len;
    uint16_t seq;
    bool full;
};

struct jitter_buffer {
    size_t min_bytes, max_bytes; /* the payload sizes taken */
    struct jb_slot slot[JB_SLOTS];
    int count; /* full slots */
    bool started, playing;
    uint32_t ssrc;
    uint16_t play_seq; /* due at the next tick */
    uint16_t high_seq; /* newest stored (valid while count > 0) */
    bool have_out;
    uint16_t last_out;    /* last frame played */
    uint64_t out_history; /* bit i: last_out - i was played (tells copies from late packets) */
    int misses;           /* consecutive JB_LOST with nothing buffered */
    /* RFC 3550 interarrival jitter */
    bool have_ref;
    int64_t ref_arrival;
    uint32_t ref_ts;
    int64_t jitter16; /* J in µs, times 16 (reported) */
    int64_t adapt16;  /* the same with |D| capped and hopeless packets left out */
    int64_t peak16;   /* adapt16 followed up at once, down slowly: what the target is made from */
    /* delay control */
    int target;      /* frames */
    int32_t delay_q; /* measured delay, frames * JB_Q */
    int since_shrink;
    /* a packet that does not fit the stream (new SSRC, big jump), kept until confirmed */
    bool probe_full;
    uint32_t probe_ssrc;
    uint16_t probe_seq;
    uint32_t probe_ts;
    int64_t probe_arrival;
    uint8_t *probe_data;
    uint16_t probe_len;
    struct jb_stats st; /* counters only; the rest is filled by jb_get_stats */
};

struct jitter_buffer *jb_create(size_t min_bytes, size_t max_bytes)
{
    if (min_bytes < 1 || max_bytes < min_bytes || max_bytes > UINT16_MAX)
        die("jitter buffer for %zu..%zu bytes", min_bytes, max_bytes); /* a programmer error */
    /* One allocation: the buffer, then a store of max_bytes per slot and one for the probe. */
    struct jitter_buffer *jb = xcalloc(1, sizeof(*jb) + (JB_SLOTS + 1) * max_bytes);
    uint8_t *store = (uint8_t *)(jb + 1);
    for (int i = 0; i < JB_SLOTS; i++)
        jb->slot[i].data = store + (size_t)i * max_bytes;
    jb->probe_data = store + (size_t)JB_SLOTS * max_bytes;
    jb->min_bytes = min_bytes;
    jb->max_bytes = max_bytes;
    jb->target = JB_START_TARGET;
    return jb;
}

void jb_destroy(struct jitter_buffer *jb)
{
    free(jb);
}

static void jb_restart(struct jitter_buffer *jb, uint32_t ssrc, uint16_t seq)
{
    for (int i = 0; i < JB_SLOTS; i++)
        jb->slot[i].full = false;
    jb->count = 0;
    jb->started = true;
    jb->playing = false;
    jb->ssrc = ssrc;
    jb->play_seq = jb->high_seq = seq;
    jb->have_out = false;
    jb->misses = 0;
    jb->have_ref = false;
    jb->probe_full = false;
}

/* J itself is noisy (gain 1/16): a target made from it wanders by a frame every few seconds, each
 * wander costing a concealed and a dropped frame. The target follows J's peaks instead: up at once,
 * down with a time constant of 128 packets (2.5 s). T = ceil((20 ms + 2.5 peak) / 20 ms): for
 * Gaussian jitter J ~ 1.13 sigma, so the playout point is about 3 sigma past the mean arrival. */
static void jb_update_target(struct jitter_buffer *jb)
{
    if (jb->adapt16 >= jb->peak16)
        jb->peak16 = jb->adapt16;
    else
        jb->peak16 -= (jb->peak16 - jb->adapt16 + 127) / 128;
    int64_t peak_us = jb->peak16 / 16;
    int64_t t = (2 * JB_FRAME_US + 5 * peak_us + 2 * JB_FRAME_US - 1) / (2 * JB_FRAME_US);
    jb->target = t < JB_MIN_TARGET ? JB_MIN_TARGET : t > JB_MAX_TARGET ? JB_MAX_TARGET : (int)t;
}

/* RFC 3550 A.8: D = (Rj - Ri) - (Sj - Si) between consecutive arrivals, J += (|D| - J) / 16, kept
 * in µs * 16 so the update is integer. A change beyond a second is a discontinuity (the source's
 * clock jumped, or the sender paused without advancing it), not jitter: it restarts the estimate
 * rather than inflating J for a minute. The reported J is the RFC's (RTCP needs it); the target
 * comes from a twin that caps |D| at the largest delay there is (a 400 ms stall should not weigh
 * twice a 200 ms one) and skips packets too late for any delay to have saved (!adapt). */
static void jb_update_jitter(struct jitter_buffer *jb, uint32_t ts, int64_t arrival_us, bool adapt)
{
    if (jb->have_ref) {
        int64_t ref = jb->ref_arrival, d = INT64_MAX;
        /* arrival times are the caller's: subtract only what cannot overflow */
        bool fits = ref < 0 ? arrival_us <= INT64_MAX + ref : arrival_us >= INT64_MIN + ref;
        if (fits && arrival_us - ref < INT64_MAX / 2 && arrival_us - ref > INT64_MIN / 2)
            d = (arrival_us - ref) - ts_diff(ts, jb->ref_ts) * 125;
        if (d > JB_DISCONTINUITY_US || d < -JB_DISCONTINUITY_US) {
            jb->st.resyncs++;
        } else {
            int64_t ad = d < 0 ? -d : d;
            jb->jitter16 += ad - ((jb->jitter16 + 8) >> 4);
            if (adapt) {
                int64_t cap = (int64_t)JB_MAX_TARGET * JB_FRAME_US;
                jb->adapt16 += (ad < cap ? ad : cap) - ((jb->adapt16 + 8) >> 4);
                jb_update_target(jb);
            }
        }
    }
    jb->have_ref = true;
    jb->ref_arrival = arrival_us;
    jb->ref_ts = ts;
}

static void jb_observe_delay(struct jitter_buffer *jb, int ahead)
{
    jb->delay_q += ((ahead + 1) * JB_Q - jb->delay_q) / 16;
}

/* Places a frame of the current stream relative to the play position (see the design above). */
static void jb_place(struct jitter_buffer *jb, uint16_t seq, const uint8_t *payload, size_t len)
{
    if (!jb->playing) {
        if (jb->have_out && seq_diff(seq, jb->last_out) <= 0) {
            jb->st.late++; /* its slot was concealed (copies of played frames never get here) */
            return;
        }
        if (jb->count == 0) {
            jb->play_seq = jb->high_seq = seq;
        } else {
            int d = seq_diff(seq, jb->play_seq);
            if (d < 0 && seq_diff(jb->high_seq, seq) < JB_SLOTS) {
                jb->play_seq = seq;
            } else if (d < 0 || d >= JB_SLOTS) {
                jb->st.dropped++;
                return;
            }
        }
    } else {
        int ahead = seq_diff(seq, jb->play_seq);
        if (ahead < 0) {
            if (jb->count == 0 && -ahead <= jb->misses) {
                /* concealed in this underflow: rewind to it, the concealment was a stretch */
                jb->st.lost -= (uint64_t)-ahead;
                jb->st.stretched += (uint64_t)-ahead;
                jb->delay_q += -ahead * JB_Q;
                jb->play_seq = seq;
                jb->misses = 0;
                ahead = 0;
            } else {
                if (ahead >= -JB_MAX_TARGET) /* later than that, no delay would have saved it */
                    jb_observe_delay(jb, ahead);
                jb->st.late++;
                return;
            }
        } else if (ahead >= JB_SLOTS) {
            if (jb->count > 0) {
                jb->st.dropped++;
                return;
            }
            /* the stream moved on while nothing was buffered: fill again from here */
            jb->playing = false;
            jb->play_seq = jb->high_seq = seq;
        }
        if (jb->playing)
            jb_observe_delay(jb, ahead);
    }
    struct jb_slot *s = &jb->slot[seq & JB_MASK];
    /* full slots all lie in [play_seq, play_seq + SLOTS), and copies were caught before */
    assert(!s->full);
    if (s->full) {
        jb->st.dropped++;
        return;
    }
    memcpy(s->data, payload, len);
    s->len = (uint16_t)len;
    s->seq = seq;
    s->full = true;
    if (++jb->count == 1 || seq_diff(seq, jb->high_seq) > 0)
        jb->high_seq = seq;
}

/* A copy of a frame that is buffered or was played (within the last 64) is no news about the
 * network: it is counted and ignored, and in particular kept out of the jitter estimate. */
static bool jb_is_duplicate(const struct jitter_buffer *jb, uint16_t seq)
{
    const struct jb_slot *s = &jb->slot[seq & JB_MASK];
    if (s->full && s->seq == seq)
        return true;
    if (!jb->have_out)
        return false;
    int back = seq_diff(jb->last_out, seq);
    return back >= 0 && back < 64 && (jb->out_history >> back) & 1;
}

static void jb_accept(struct jitter_buffer *jb, uint16_t seq, uint32_t ts, const uint8_t *payload,
                      size_t len, int64_t arrival_us)
{
    if (jb_is_duplicate(jb, seq)) {
        jb->st.duplicate++;
        return;
    }
    bool hopeless = jb->playing && seq_diff(seq, jb->play_seq) < -JB_MAX_TARGET;
    jb_update_jitter(jb, ts, arrival_us, !hopeless);
    jb_place(jb, seq, payload, len);
}

/* A packet from another SSRC, or more than 100 away from the newest, is held as a probe (RFC 3550
 * A.1's probation): only when the next such packet follows it (same SSRC, within a few sequence
 * numbers) does the buffer resynchronise, with both. A stray packet is just dropped. */
void jb_put(struct jitter_buffer *jb, const struct rtp_packet *p, int64_t arrival_us)
{
    jb->st.received++;
    if (p->payload_len < jb->min_bytes || p->payload_len > jb->max_bytes || !p->payload) {
        jb->st.dropped++;
        return;
    }
    if (!jb->started) {
        jb_restart(jb, p->ssrc, p->seq);
        jb_accept(jb, p->seq, p->ts, p->payload, p->payload_len, arrival_us);
        return;
    }
    int jump = seq_diff(p->seq, jb->high_seq);
    if (p->ssrc == jb->ssrc && jump <= JB_MAX_JUMP && jump >= -JB_MAX_JUMP) {
        jb_accept(jb, p->seq, p->ts, p->payload, p->payload_len, arrival_us);
        return;
    }
    int from_probe = seq_diff(p->seq, jb->probe_seq);
    if (jb->probe_full && p->ssrc == jb->probe_ssrc && from_probe != 0 &&
        from_probe <= JB_PROBE_SPAN && from_probe >= -JB_PROBE_SPAN) {
        jb_restart(jb, jb->probe_ssrc, jb->probe_seq);
        jb->st.resyncs++;
        jb_accept(jb, jb->probe_seq, jb->probe_ts, jb->probe_data, jb->probe_len,
                  jb->probe_arrival);
        jb_accept(jb, p->seq, p->ts, p->payload, p->payload_len, arrival_us);
        return;
    }
    if (jb->probe_full)
        jb->st.dropped++;
    jb->probe_full = true;
    jb->probe_ssrc = p->ssrc;
    jb->probe_seq = p->seq;
    jb->probe_ts = p->ts;
    jb->probe_arrival = arrival_us;
    memcpy(jb->probe_data, p->payload, p->payload_len);
    jb->probe_len = (uint16_t)p->payload_len;
}

static bool jb_has(const struct jitter_buffer *jb, uint16_t seq)
{
    const struct jb_slot *s = &jb->slot[seq & JB_MASK];
    return s->full && s->seq == seq;
}

static void jb_discard(struct jitter_buffer *jb, uint16_t seq)
{
    if (jb_has(jb, seq)) {
        jb->slot[seq & JB_MASK].full = false;
        jb->count--;
    }
}

/* Starts playing once T frames are buffered. After a burst (a stall that ended) more may be there:
 * the oldest are dropped down to T + 1 (the top of the band the delay is kept in), so playout
 * starts near the target rather than seconds late and then shrinking at one frame a second. */
static bool jb_try_start(struct jitter_buffer *jb)
{
    if (jb->count == 0)
        return false;
    int span = seq_diff(jb->high_seq, jb->play_seq) + 1;
    if (span < jb->target)
        return false;
    for (; span > jb->target + 1; span--) {
        if (jb_has(jb, jb->play_seq))
            jb->st.dropped++;
        jb_discard(jb, jb->play_seq);
        jb->play_seq++;
    }
    jb->playing = true;
    jb->delay_q = span * JB_Q;
    jb->since_shrink = 0;
    jb->misses = 0;
    return true;
}

enum jb_result jb_get(struct jitter_buffer *jb, uint8_t *out, size_t *len)
{
    if (!jb->playing && !jb_try_start(jb))
        return JB_EMPTY;
    if (jb->since_shrink < INT_MAX)
        jb->since_shrink++;
    if (jb->delay_q < jb->target * JB_Q - JB_Q / 2) {
        jb->delay_q += JB_Q;
        jb->st.stretched++;
        return JB_LOST;
    }
    if (jb->since_shrink >= JB_SHRINK_TICKS && jb->delay_q > jb->target * JB_Q + JB_Q + JB_Q / 2 &&
        jb_has(jb, (uint16_t)(jb->play_seq + 1))) {
        jb_discard(jb, jb->play_seq);
        jb->play_seq++;
        jb->delay_q -= JB_Q;
        jb->since_shrink = 0;
        jb->st.shrunk++;
    }
    struct jb_slot *s = &jb->slot[jb->play_seq & JB_MASK];
    if (s->full && s->seq == jb->play_seq) {
        memcpy(out, s->data, s->len);
        *len = s->len;
        s->full = false;
        jb->count--;
        int shift = jb->have_out ? seq_diff(jb->play_seq, jb->last_out) : 64;
        jb->out_history = (shift > 0 && shift < 64 ? jb->out_history << shift : 0) | 1;
        jb->have_out = true;
        jb->last_out = jb->play_seq++;
        jb->misses = 0;
        jb->st.played++;
        return JB_FRAME;
    }
    if (jb->count == 0 && ++jb->misses >= JB_MAX_MISSES) {
        jb->playing = false; /* silence: fill again when the sender resumes */
        return JB_EMPTY;
    }
    if (jb->count > 0)
        jb->misses = 0;
    jb->play_seq++;
    jb->st.lost++;
    return JB_LOST;
}

const uint8_t *jb_peek(const struct jitter_buffer *jb, size_t *len)
{
    if (!jb->playing)
        return NULL;
    const struct jb_slot *s = &jb->slot[jb->play_seq & JB_MASK];
    if (!s->full || s->seq != jb->play_seq)
        return NULL;
    *len = s->len;
    return s->data;
}

void jb_get_stats(const struct jitter_buffer *jb, struct jb_stats *out)
{
    *out = jb->st;
    out->jitter_ms = (double)jb->jitter16 / 16.0 / 1000.0;
    out->target_delay_ms = jb->target * (JB_FRAME_US / 1000);
    out->delay_ms = jb->playing ? jb->delay_q * (JB_FRAME_US / 1000) / JB_Q : 0;
    out->buffered = jb->count;
}
