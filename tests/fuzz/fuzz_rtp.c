/* libFuzzer target: RTP parsing, telephone events and the jitter buffer. The whole input is parsed
 * as one packet (so a raw packet is a good seed). Then it is cut at each "\xA5\x5A" marker into
 * packets for one jitter buffer that lives for the whole input; the two bytes after a marker say
 * how the packet arrives: byte 0 the delay since the previous one (x 0.5 ms; 255: 10 s later,
 * 254: 1 s earlier), byte 1 how many jb_get calls follow (low 2 bits), whether the packet is
 * synthesised (bit 2: the bytes then give a sequence step, a timestamp step and flags, and the
 * packet is built with a 160-byte payload so the buffer's logic is reached) or parsed as is.
 * Any crash, UB or leak is a finding; the buffer's statistics must stay within their bounds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/rtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t marker[2] = {0xA5, 0x5A};

struct synth {
    uint16_t seq;
    uint32_t ts;
    uint32_t ssrc;
};

static void check_packet(const uint8_t *buf, size_t len, const struct rtp_packet *p)
{
    if (p->payload < buf + RTP_HEADER_MIN || p->payload + p->payload_len > buf + len)
        abort();
    /* rebuilt without CSRCs, extension or padding, it parses back to the same fields */
    uint8_t again[RTP_MAX_PACKET];
    size_t n = rtp_build(again, sizeof(again), p->payload_type, p->marker, p->seq, p->ts, p->ssrc,
                         p->payload, p->payload_len);
    if (p->payload_len > RTP_MAX_PACKET - RTP_HEADER_MIN) {
        if (n != 0)
            abort();
        return;
    }
    struct rtp_packet q;
    if (n != RTP_HEADER_MIN + p->payload_len || rtp_parse(again, n, &q) != 0)
        abort();
    if (q.payload_type != p->payload_type || q.marker != p->marker || q.seq != p->seq ||
        q.ts != p->ts || q.ssrc != p->ssrc || q.payload_len != p->payload_len ||
        (p->payload_len && memcmp(q.payload, p->payload, p->payload_len) != 0))
        abort();
}

static void feed_events(struct dtmf_tracker *t, const struct rtp_packet *p)
{
    struct rtp_dtmf d;
    if (rtp_dtmf_parse(p->payload, p->payload_len, &d) != 0)
        return;
    char k = dtmf_tracker_feed(t, p, &d);
    if (k && k != rtp_dtmf_char(d.event))
        abort();
}

static void drain(struct jitter_buffer *jb, int gets)
{
    uint8_t out[160];
    size_t out_len;
    for (int i = 0; i < gets; i++) {
        enum jb_result r = jb_get(jb, out, &out_len);
        if (r != JB_FRAME && r != JB_LOST && r != JB_EMPTY)
            abort();
    }
    struct jb_stats st;
    jb_get_stats(jb, &st);
    if (st.buffered < 0 || st.buffered > 32 || st.target_delay_ms < 20 ||
        st.target_delay_ms > 200 || st.delay_ms < -32 * 20 || st.delay_ms > 64 * 20 ||
        st.jitter_ms < 0 || st.played > st.received)
        abort();
}

static void put_synth(struct jitter_buffer *jb, struct synth *s, const uint8_t *b, size_t n,
                      int64_t arrival)
{
    uint8_t payload[320], pkt[RTP_MAX_PACKET];
    int8_t step = n > 0 ? (int8_t)b[0] : 1;
    int8_t ts_step = n > 1 ? (int8_t)b[1] : 1;
    uint8_t flags = n > 2 ? b[2] : 0;
    s->seq = (uint16_t)(s->seq + step);
    s->ts += (uint32_t)(int32_t)ts_step * 160u;
    if (flags & 1)
        s->ssrc ^= 0x5a5a0001u;
    size_t len = 160;
    if ((flags & 0x0c) == 0x08)
        len = n > 3 ? b[3] : 0;
    else if ((flags & 0x0c) == 0x0c)
        len = 320;
    for (size_t i = 0; i < len; i++)
        payload[i] = 4 + i < n ? b[4 + i] : (uint8_t)(i * 13);
    size_t plen = rtp_build(pkt, sizeof(pkt), 0, flags & 2, s->seq, s->ts, s->ssrc, payload, len);
    struct rtp_packet p;
    if (plen == 0 || rtp_parse(pkt, plen, &p) != 0)
        abort();
    jb_put(jb, &p, arrival);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rtp_packet p;
    struct dtmf_tracker tracker = {0};
    (void)rtp_is_rtcp(data, size);
    if (rtp_parse(data, size, &p) == 0) {
        check_packet(data, size, &p);
        feed_events(&tracker, &p);
    }

    struct jitter_buffer *jb = jb_create(160, 160);
    struct synth s = {.seq = 1000, .ts = 0, .ssrc = 0x1234};
    int64_t arrival = 0;
    uint8_t ctl0 = 40, ctl1 = 1; /* the first packet: 20 ms, one get, parsed as is */
    size_t pos = 0;
    while (pos <= size) {
        const uint8_t *next = pos < size ? memmem(data + pos, size - pos, marker, 2) : NULL;
        size_t end = next ? (size_t)(next - data) : size;
        const uint8_t *b = data + pos;
        size_t n = end - pos;
        if (ctl0 == 255)
            arrival += 10000000;
        else if (ctl0 == 254)
            arrival -= 1000000;
        else
            arrival += ctl0 * 500;
        if (ctl1 & 4) {
            put_synth(jb, &s, b, n, arrival);
        } else if (rtp_parse(b, n, &p) == 0) {
            check_packet(b, n, &p);
            feed_events(&tracker, &p);
            jb_put(jb, &p, arrival);
        }
        drain(jb, ctl1 & 3);
        if (!next)
            break;
        pos = end + 2;
        ctl0 = pos < size ? data[pos] : 40;
        ctl1 = pos + 1 < size ? data[pos + 1] : 1;
        pos = pos + 2 < size ? pos + 2 : size;
    }
    /* the sender stops: the buffer drains and goes quiet */
    drain(jb, 40);
    jb_destroy(jb);
    return 0;
}
