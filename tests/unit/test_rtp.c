/* RTP parsing and building (well-formed and malformed packets), RFC 4733 telephone events and the
 * key tracker, strict source learning (a spray, a NAT, a source that moves, the SDP's source
 * taking the leg back), and the jitter buffer driven by simulated networks: in order, reordered,
 * lossy, duplicated, wrapping, switching source, jittery, and silent for a while. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "media/rtp.h"

#define FRAME 160
#define TICK_US 20000
#define TAIL_LOST 4 /* when a stream stops: 4 frames concealed, then JB_EMPTY */

/* ---- parsing ---- */

static const uint8_t pcmu_header[12] = {0x80, 0x00, 0x12, 0x34, 0x00, 0x01,
                                        0x02, 0x03, 0xde, 0xad, 0xbe, 0xef};

/* Parses a copy in a buffer of exactly len bytes, so ASan sees any read past the end. */
static int parse_exact(const uint8_t *bytes, size_t len, struct rtp_packet *p)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, bytes, len);
    int rc = rtp_parse(copy, len, p);
    if (rc == 0) {
        assert_true(p->payload >= copy && p->payload + p->payload_len <= copy + len);
        /* point back into the caller's bytes so the result outlives the copy */
        p->payload = bytes + (p->payload - copy);
    }
    free(copy);
    return rc;
}

static void test_parse_normal(void **state)
{
    uint8_t pkt[12 + FRAME];
    memcpy(pkt, pcmu_header, 12);
    for (int i = 0; i < FRAME; i++)
        pkt[12 + i] = (uint8_t)i;
    pkt[1] = 0x80 | 8; /* marker, PCMA */
    struct rtp_packet p;
    assert_int_equal(parse_exact(pkt, sizeof(pkt), &p), 0);
    assert_int_equal(p.payload_type, 8);
    assert_true(p.marker);
    assert_int_equal(p.seq, 0x1234);
    assert_int_equal(p.ts, 0x00010203);
    assert_int_equal(p.ssrc, 0xdeadbeef);
    assert_int_equal(p.payload_len, FRAME);
    assert_ptr_equal(p.payload, pkt + 12);
    /* a header alone is a packet with an empty payload */
    assert_int_equal(parse_exact(pkt, 12, &p), 0);
    assert_int_equal(p.payload_len, 0);
}

static void test_parse_csrc_extension_padding(void **state)
{
    uint8_t pkt[64];
    memcpy(pkt, pcmu_header, 12);
    /* two CSRCs */
    pkt[0] = 0x82;
    memset(pkt + 12, 0x11, 8);
    memset(pkt + 20, 0x55, 10);
    struct rtp_packet p;
    assert_int_equal(parse_exact(pkt, 30, &p), 0);
    assert_ptr_equal(p.payload, pkt + 20);
    assert_int_equal(p.payload_len, 10);

    /* extension: profile 0xBEDE, 2 words */
    pkt[0] = 0x90;
    uint8_t ext[12] = {0xbe, 0xde, 0x00, 0x02, 1, 2, 3, 4, 5, 6, 7, 8};
    memcpy(pkt + 12, ext, sizeof(ext));
    memset(pkt + 24, 0x66, 5);
    assert_int_equal(parse_exact(pkt, 29, &p), 0);
    assert_ptr_equal(p.payload, pkt + 24);
    assert_int_equal(p.payload_len, 5);
    /* an empty extension (length 0) */
    pkt[15] = 0;
    assert_int_equal(parse_exact(pkt, 20, &p), 0);
    assert_ptr_equal(p.payload, pkt + 16);
    assert_int_equal(p.payload_len, 4);

    /* padding: 6 payload bytes, then 3 of padding whose last byte says 3 */
    pkt[0] = 0xa0;
    memset(pkt + 12, 0x77, 6);
    pkt[18] = 0;
    pkt[19] = 0;
    pkt[20] = 3;
    assert_int_equal(parse_exact(pkt, 21, &p), 0);
    assert_ptr_equal(p.payload, pkt + 12);
    assert_int_equal(p.payload_len, 6);
    /* padding that takes the whole payload */
    pkt[20] = 9;
    assert_int_equal(parse_exact(pkt, 21, &p), 0);
    assert_int_equal(p.payload_len, 0);

    /* all three: 1 CSRC, a 1-word extension, 4 bytes of payload, 4 of padding */
    pkt[0] = 0xb1;
    memset(pkt + 12, 0x22, 4);                                      /* CSRC */
    memcpy(pkt + 16, (const uint8_t[]){0x10, 0x00, 0x00, 0x01}, 4); /* ext header */
    memset(pkt + 20, 0x33, 4);                                      /* ext body */
    memset(pkt + 24, 0x44, 4);                                      /* payload */
    memcpy(pkt + 28, (const uint8_t[]){0, 0, 0, 4}, 4);             /* padding */
    assert_int_equal(parse_exact(pkt, 32, &p), 0);
    assert_ptr_equal(p.payload, pkt + 24);
    assert_int_equal(p.payload_len, 4);
    assert_int_equal(p.payload[0], 0x44);

    /* every truncation of it fails or stays inside the shorter buffer */
    for (size_t len = 0; len < 32; len++)
        (void)parse_exact(pkt, len, &p);
}

static void test_parse_malformed(void **state)
{
    uint8_t pkt[64];
    struct rtp_packet p;
    memcpy(pkt, pcmu_header, 12);
    memset(pkt + 12, 0, sizeof(pkt) - 12);

    /* truncated fixed header */
    for (size_t len = 0; len < 12; len++)
        assert_int_equal(parse_exact(pkt, len, &p), -1);
    assert_int_equal(rtp_parse(NULL, 40, &p), -1);

    /* versions other than 2 */
    for (int v = 0; v < 4; v++) {
        pkt[0] = (uint8_t)(v << 6);
        assert_int_equal(parse_exact(pkt, 20, &p), v == 2 ? 0 : -1);
    }

    /* CSRC list beyond the end: 15 CSRCs need 72 bytes */
    pkt[0] = 0x8f;
    assert_int_equal(parse_exact(pkt, 64, &p), -1);
    pkt[0] = 0x83; /* 3 CSRCs need 24 */
    assert_int_equal(parse_exact(pkt, 23, &p), -1);
    assert_int_equal(parse_exact(pkt, 24, &p), 0);

    /* extension header cut short, then its body beyond the end */
    pkt[0] = 0x90;
    assert_int_equal(parse_exact(pkt, 14, &p), -1);
    assert_int_equal(parse_exact(pkt, 15, &p), -1);
    pkt[14] = 0x00;
    pkt[15] = 0x03; /* 12 bytes of body */
    assert_int_equal(parse_exact(pkt, 27, &p), -1);
    assert_int_equal(parse_exact(pkt, 28, &p), 0);
    pkt[14] = 0xff;
    pkt[15] = 0xff; /* 262140 bytes */
    assert_int_equal(parse_exact(pkt, 64, &p), -1);
    /* extension after CSRCs, beyond the end */
    pkt[0] = 0x91;
    pkt[18] = 0x00;
    pkt[19] = 0x20;
    assert_int_equal(parse_exact(pkt, 64, &p), -1);

    /* padding: zero count, larger than the payload, in a header-only packet */
    pkt[0] = 0xa0;
    memset(pkt + 12, 0, 8);
    assert_int_equal(parse_exact(pkt, 20, &p), -1); /* count 0 */
    pkt[19] = 9;
    assert_int_equal(parse_exact(pkt, 20, &p), -1); /* 9 > 8 */
    pkt[19] = 8;
    assert_int_equal(parse_exact(pkt, 20, &p), 0);
    pkt[11] = 1; /* the last byte of a header-only packet is not padding */
    assert_int_equal(parse_exact(pkt, 12, &p), -1);
    /* padding that would eat into the CSRC list */
    pkt[0] = 0xa1;
    pkt[19] = 5;
    assert_int_equal(parse_exact(pkt, 20, &p), -1);
    pkt[19] = 4;
    assert_int_equal(parse_exact(pkt, 20, &p), 0);
    assert_int_equal(p.payload_len, 0);
}

static void test_build_roundtrip(void **state)
{
    uint8_t payload[FRAME], buf[RTP_MAX_PACKET];
    for (int i = 0; i < FRAME; i++)
        payload[i] = (uint8_t)(255 - i);
    size_t n =
        rtp_build(buf, sizeof(buf), 0, true, 65535, 0xfffffff0u, 0x01020304u, payload, FRAME);
    assert_int_equal(n, 12 + FRAME);
    struct rtp_packet p;
    assert_int_equal(parse_exact(buf, n, &p), 0);
    assert_int_equal(p.payload_type, 0);
    assert_true(p.marker);
    assert_int_equal(p.seq, 65535);
    assert_int_equal(p.ts, 0xfffffff0u);
    assert_int_equal(p.ssrc, 0x01020304u);
    assert_int_equal(p.payload_len, FRAME);
    assert_memory_equal(p.payload, payload, FRAME);

    n = rtp_build(buf, sizeof(buf), 0xff, false, 1, 2, 3, NULL, 0);
    assert_int_equal(n, 12);
    assert_int_equal(parse_exact(buf, n, &p), 0);
    assert_int_equal(p.payload_type, 127);
    assert_false(p.marker);

    /* capacity: exact fits, one short does not */
    assert_int_equal(rtp_build(buf, 12 + FRAME, 0, false, 1, 2, 3, payload, FRAME), 12 + FRAME);
    assert_int_equal(rtp_build(buf, 11 + FRAME, 0, false, 1, 2, 3, payload, FRAME), 0);
    assert_int_equal(rtp_build(buf, 11, 0, false, 1, 2, 3, NULL, 0), 0);
    assert_int_equal(rtp_build(buf, 100, 0, false, 1, 2, 3, payload, SIZE_MAX), 0);
}

static void test_is_rtcp(void **state)
{
    uint8_t b[8] = {0x80, 200, 0, 6, 1, 2, 3, 4};
    assert_true(rtp_is_rtcp(b, 8)); /* SR */
    b[1] = 201;                     /* RR */
    assert_true(rtp_is_rtcp(b, 8));
    b[1] = 223;
    assert_true(rtp_is_rtcp(b, 8));
    b[1] = 192;
    assert_true(rtp_is_rtcp(b, 8));
    b[1] = 0; /* PCMU */
    assert_false(rtp_is_rtcp(b, 8));
    b[1] = 0x80 | 101; /* telephone-event with marker: 229 */
    assert_false(rtp_is_rtcp(b, 8));
    b[1] = 191;
    assert_false(rtp_is_rtcp(b, 8));
    b[1] = 200;
    assert_false(rtp_is_rtcp(b, 1));
    assert_false(rtp_is_rtcp(NULL, 0));
}

/* ---- telephone events ---- */

static void test_dtmf_parse(void **state)
{
    struct rtp_dtmf d;
    const uint8_t ev[4] = {5, 0x8a, 0x03, 0x20};
    assert_int_equal(rtp_dtmf_parse(ev, 4, &d), 0);
    assert_int_equal(d.event, 5);
    assert_true(d.end);
    assert_int_equal(d.volume, 10);
    assert_int_equal(d.duration, 800);
    const uint8_t ev2[4] = {11, 0x7f, 0xff, 0xff}; /* reserved bit set, volume 63 */
    assert_int_equal(rtp_dtmf_parse(ev2, 4, &d), 0);
    assert_int_equal(d.event, 11);
    assert_false(d.end);
    assert_int_equal(d.volume, 63);
    assert_int_equal(d.duration, 65535);
    for (size_t len = 0; len < 4; len++)
        assert_int_equal(rtp_dtmf_parse(ev, len, &d), -1);

    const char *keys = "0123456789*#ABCD";
    for (int e = 0; e < 16; e++)
        assert_int_equal(rtp_dtmf_char((uint8_t)e), keys[e]);
    assert_int_equal(rtp_dtmf_char(16), 0);
    assert_int_equal(rtp_dtmf_char(255), 0);
}

/* Feeds one press as a sender does: 5 packets (the first with the marker) with a growing
 * duration, then the end packet three times. Returns the keys reported. */
static int press(struct dtmf_tracker *t, uint32_t ssrc, uint16_t *seq, uint32_t ts, uint8_t event,
                 char *keys, int nkeys)
{
    for (int i = 0; i < 8; i++) {
        bool end = i >= 5;
        uint16_t dur = (uint16_t)(160 * (end ? 5 : i + 1));
        uint8_t ev[4] = {event, (uint8_t)((end ? 0x80 : 0) | 10), (uint8_t)(dur >> 8),
                         (uint8_t)dur};
        uint8_t buf[64];
        size_t n = rtp_build(buf, sizeof(buf), 101, i == 0, (*seq)++, ts, ssrc, ev, 4);
        struct rtp_packet p;
        struct rtp_dtmf d;
        assert_int_equal(rtp_parse(buf, n, &p), 0);
        assert_int_equal(rtp_dtmf_parse(p.payload, p.payload_len, &d), 0);
        char k = dtmf_tracker_feed(t, &p, &d);
        if (k)
            keys[nkeys++] = k;
    }
    return nkeys;
}

static void test_dtmf_tracker(void **state)
{
    struct dtmf_tracker t = {0};
    char keys[16];
    uint16_t seq = 100;
    int n = press(&t, 7, &seq, 8000, 5, keys, 0);
    assert_int_equal(n, 1);
    assert_int_equal(keys[0], '5');
    /* the same digit again, at a new timestamp: a second press */
    n = press(&t, 7, &seq, 16000, 5, keys, n);
    assert_int_equal(n, 2);
    assert_int_equal(keys[1], '5');
    n = press(&t, 7, &seq, 24000, 11, keys, n);
    assert_int_equal(n, 3);
    assert_int_equal(keys[2], '#');

    /* a straggler of an older event (reordered end packet) is not a press */
    struct rtp_packet p = {.payload_type = 101, .seq = 1, .ts = 16000, .ssrc = 7};
    struct rtp_dtmf d = {.event = 5, .end = true, .volume = 10, .duration = 800};
    assert_int_equal(dtmf_tracker_feed(&t, &p, &d), 0);
    /* a sender that reuses the timestamp: a marker after the end starts a new press */
    p.ts = 24000;
    p.marker = true;
    d.event = 11;
    d.end = false;
    assert_int_equal(dtmf_tracker_feed(&t, &p, &d), '#');
    /* a retransmitted start before the end is not */
    assert_int_equal(dtmf_tracker_feed(&t, &p, &d), 0);
    /* a new source counts even with an older timestamp; wrap-around counts as newer */
    n = press(&t, 8, &seq, 5, 1, keys, n);
    assert_int_equal(n, 4);
    assert_int_equal(keys[3], '1');
    n = press(&t, 8, &seq, 0xffffff00u, 2, keys, n); /* older: ignored */
    assert_int_equal(n, 4);
    n = press(&t, 8, &seq, 800, 3, keys, n);
    assert_int_equal(n, 5);
    /* other events are tracked but are no key */
    n = press(&t, 8, &seq, 1600, 16, keys, n);
    assert_int_equal(n, 5);
    /* an event whose first packets were lost is reported at the first one that arrives */
    p.ssrc = 8;
    p.ts = 2400;
    p.marker = false;
    d.event = 0;
    d.end = true;
    assert_int_equal(dtmf_tracker_feed(&t, &p, &d), '0');
}

/* ---- strict source learning ---- */

#define SDP_ADDR 0x0100007fu /* any values: compared as given */
#define SDP_PORT 4000
#define NAT_ADDR 0x020000c6u
#define EVIL_ADDR 0x0a0000c6u

static enum rtp_source_verdict src_feed(struct rtp_source *s, uint32_t addr, uint16_t port,
                                        uint32_t ssrc, uint16_t seq, int64_t now_us)
{
    struct rtp_packet p = {.payload_type = 0, .seq = seq, .ssrc = ssrc};
    return rtp_source_check(s, addr, port, &p, now_us);
}

static void test_source_sdp_first(void **state)
{
    struct rtp_source s;
    memset(&s, 0, sizeof(s));
    /* nothing expected yet (no SDP): everything is refused */
    assert_int_equal(src_feed(&s, SDP_ADDR, SDP_PORT, 1, 1, 0), RTP_SOURCE_REFUSE);
    rtp_source_expect(&s, SDP_ADDR, SDP_PORT);
    assert_true(rtp_source_silent(&s, 0));
    int64_t t = 1000000;
    assert_int_equal(src_feed(&s, SDP_ADDR, SDP_PORT, 7, 100, t), RTP_SOURCE_ACCEPT);
    assert_false(rtp_source_silent(&s, t));
    /* a spray while the SDP's source talks: in sequence, one SSRC, for ever: never taken */
    uint64_t refused = s.refused;
    for (int i = 0; i < 500; i++) {
        t += 10000;
        assert_int_equal(src_feed(&s, EVIL_ADDR, 5000, 99, (uint16_t)i, t), RTP_SOURCE_REFUSE);
        if (i % 2 == 0)
            assert_int_equal(src_feed(&s, SDP_ADDR, SDP_PORT, 7, (uint16_t)(101 + i / 2), t),
                             RTP_SOURCE_ACCEPT);
    }
    assert_int_equal(s.refused - refused, 500);
    assert_int_equal(s.learned, 0);
    /* the same address on another port is another sender */
    assert_int_equal(src_feed(&s, SDP_ADDR, SDP_PORT + 2, 7, 400, t), RTP_SOURCE_REFUSE);
    assert_int_equal(s.addr, SDP_ADDR);
    assert_int_equal(s.port, SDP_PORT);
}

/* A phone behind a NAT: its SDP names a private address that never sends; the packets come from
 * the NAT's address. Learned after four in-sequence packets of one SSRC. */
static void test_source_nat_learning(void **state)
{
    struct rtp_source s;
    memset(&s, 0, sizeof(s));
    rtp_source_expect(&s, SDP_ADDR, SDP_PORT);
    int64_t t = 5000;
    for (int i = 0; i < RTP_LEARN_PACKETS - 1; i++, t += 20000)
        assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 42, (uint16_t)(65534 + i), t),
                         RTP_SOURCE_REFUSE); /* across the sequence wrap */
    assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 42, (uint16_t)(65534 + RTP_LEARN_PACKETS - 1), t),
                     RTP_SOURCE_SWITCH);
    assert_int_equal(s.addr, NAT_ADDR);
    assert_int_equal(s.port, 6000);
    assert_int_equal(s.learned, 1);
    assert_int_equal(s.refused, RTP_LEARN_PACKETS - 1);
    t += 20000;
    assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 42, 3, t), RTP_SOURCE_ACCEPT);
    /* now that the learned source talks, nobody else is learned */
    for (int i = 0; i < 20; i++, t += 20000) {
        assert_int_equal(src_feed(&s, EVIL_ADDR, 1, 5, (uint16_t)i, t), RTP_SOURCE_REFUSE);
        assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 42, (uint16_t)(4 + i), t), RTP_SOURCE_ACCEPT);
    }
    /* the SDP's own source takes the leg back at its first packet, and keeps it */
    assert_int_equal(src_feed(&s, SDP_ADDR, SDP_PORT, 1, 9, t), RTP_SOURCE_SWITCH);
    assert_int_equal(s.addr, SDP_ADDR);
    assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 42, 30, t + 1000), RTP_SOURCE_REFUSE);
    assert_int_equal(s.learned, 1);
}

/* Learning needs one unbroken stream: other senders, SSRC changes, gaps and repeats start over;
 * a spray of one packet per sender never gets anywhere. */
static void test_source_learning_needs_sequence(void **state)
{
    struct rtp_source s;
    memset(&s, 0, sizeof(s));
    rtp_source_expect(&s, SDP_ADDR, SDP_PORT);
    int64_t t = 0;
    /* round robin of four senders, each in sequence */
    for (int i = 0; i < 400; i++, t += 1000)
        assert_int_equal(src_feed(&s, EVIL_ADDR + (uint32_t)(i % 4), 7000, 1, (uint16_t)(i / 4), t),
                         RTP_SOURCE_REFUSE);
    /* one sender whose SSRC changes every third packet */
    for (int i = 0; i < 60; i++, t += 1000)
        assert_int_equal(src_feed(&s, EVIL_ADDR, 7000, (uint32_t)(i / 3), (uint16_t)i, t),
                         RTP_SOURCE_REFUSE);
    /* a gap, a repeat: start over */
    uint16_t seqs[] = {10, 11, 12, 14, 15, 16, 16, 17, 18};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++, t += 1000)
        assert_int_equal(src_feed(&s, EVIL_ADDR, 7000, 3, seqs[i], t), RTP_SOURCE_REFUSE);
    assert_int_equal(src_feed(&s, EVIL_ADDR, 7000, 3, 19, t), RTP_SOURCE_SWITCH); /* 16..19 */
    assert_int_equal(s.learned, 1);
}

/* A source that moves (Wi-Fi to mobile): the new one is learned only once the old one has been
 * quiet for RTP_LEARN_SILENCE_US; a new SDP (re-INVITE) starts over from its address. */
static void test_source_moves(void **state)
{
    struct rtp_source s;
    memset(&s, 0, sizeof(s));
    rtp_source_expect(&s, SDP_ADDR, SDP_PORT);
    int64_t t = 0;
    assert_int_equal(src_feed(&s, SDP_ADDR, SDP_PORT, 1, 1, t), RTP_SOURCE_ACCEPT);
    int64_t last = t;
    for (int i = 0; i < 8; i++) /* up to just before the silence is long enough */
        assert_int_equal(
            src_feed(&s, NAT_ADDR, 6000, 2, (uint16_t)i, last + RTP_LEARN_SILENCE_US - 8 + i),
            RTP_SOURCE_REFUSE);
    t = last + RTP_LEARN_SILENCE_US;
    assert_true(rtp_source_silent(&s, t));
    for (int i = 0; i < RTP_LEARN_PACKETS - 1; i++, t += 20000)
        assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 2, (uint16_t)(8 + i), t), RTP_SOURCE_REFUSE);
    assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 2, (uint16_t)(8 + RTP_LEARN_PACKETS - 1), t),
                     RTP_SOURCE_SWITCH);
    /* re-INVITE with a new address: expected from now on, the counters run on */
    uint64_t refused = s.refused;
    rtp_source_expect(&s, EVIL_ADDR, 1234);
    assert_int_equal(s.addr, EVIL_ADDR);
    assert_int_equal(src_feed(&s, EVIL_ADDR, 1234, 5, 1, t), RTP_SOURCE_ACCEPT);
    assert_int_equal(src_feed(&s, SDP_ADDR, SDP_PORT, 1, 2, t), RTP_SOURCE_REFUSE);
    assert_int_equal(s.refused, refused + 1);
}

/* Learning is only from the call's signalling address (where a phone behind a NAT sends its RTP
 * from too) or the SDP's: a stream from anywhere else, however well-formed, is never taken. */
static void test_source_trusted_address(void **state)
{
    struct rtp_source s;
    memset(&s, 0, sizeof(s));
    rtp_source_expect(&s, SDP_ADDR, SDP_PORT);
    rtp_source_trust(&s, NAT_ADDR);
    int64_t t = 0;
    for (int i = 0; i < 200; i++, t += 20000) /* before the phone's first packet */
        assert_int_equal(src_feed(&s, EVIL_ADDR, 7000, 9, (uint16_t)i, t), RTP_SOURCE_REFUSE);
    assert_int_equal(s.learned, 0);
    /* the phone's stream is learned even while the spray goes on between its packets */
    for (int i = 0; i < RTP_LEARN_PACKETS - 1; i++, t += 20000) {
        assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 4, (uint16_t)i, t), RTP_SOURCE_REFUSE);
        assert_int_equal(src_feed(&s, EVIL_ADDR, 7000, 9, (uint16_t)(300 + i), t + 1),
                         RTP_SOURCE_REFUSE);
    }
    assert_int_equal(src_feed(&s, NAT_ADDR, 6000, 4, (uint16_t)(RTP_LEARN_PACKETS - 1), t),
                     RTP_SOURCE_SWITCH);
    /* the SDP's address on another port may be learned too; a re-INVITE keeps the trust */
    rtp_source_expect(&s, SDP_ADDR, SDP_PORT);
    for (int i = 0; i < RTP_LEARN_PACKETS; i++, t += 20000)
        src_feed(&s, SDP_ADDR, SDP_PORT + 2, 5, (uint16_t)i, t);
    assert_int_equal(s.port, SDP_PORT + 2);
    assert_int_equal(s.trusted_addr, NAT_ADDR);
}

/* ---- jitter buffer ---- */

struct pkt {
    uint32_t ssrc;
    uint16_t seq;
    uint32_t ts;
    int64_t arrival;
    size_t size;
    size_t order; /* tie-break: equal arrivals keep their order */
};

struct res {
    enum jb_result r;
    uint16_t seq;
    uint32_t ssrc;
    uint64_t shrunk;
    int delay_ms;
};

static void fill_payload(uint8_t *b, size_t n, uint32_t ssrc, uint16_t seq)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seq * 7 + i + ssrc);
    b[0] = (uint8_t)(seq >> 8);
    b[1] = (uint8_t)seq;
    b[2] = (uint8_t)(ssrc >> 8);
    b[3] = (uint8_t)ssrc;
}

static void put_pkt(struct jitter_buffer *jb, const struct pkt *k)
{
    uint8_t payload[2 * FRAME], wire[RTP_MAX_PACKET];
    assert_true(k->size <= sizeof(payload));
    fill_payload(payload, k->size, k->ssrc, k->seq);
    size_t n = rtp_build(wire, sizeof(wire), 0, false, k->seq, k->ts, k->ssrc, payload, k->size);
    struct rtp_packet p;
    assert_int_equal(rtp_parse(wire, n, &p), 0);
    jb_put(jb, &p, k->arrival);
}

/* Packets sent every 20 ms from t0_us, arriving 5 ms later. */
static void stream(struct pkt *p, size_t n, uint32_t ssrc, uint16_t seq0, uint32_t ts0,
                   int64_t t0_us)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (struct pkt){.ssrc = ssrc,
                            .seq = (uint16_t)(seq0 + i),
                            .ts = ts0 + 160u * (uint32_t)i,
                            .arrival = t0_us + (int64_t)i * TICK_US + 5000,
                            .size = FRAME};
    }
}

static int by_arrival(const void *a, const void *b)
{
    const struct pkt *x = a, *y = b;
    if (x->arrival != y->arrival)
        return x->arrival < y->arrival ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Runs the media tick every 20 ms (at 10 ms past each send time): every packet that has arrived
 * is put, then one frame is taken. Checks that every frame played is intact. */
static void simulate(struct jitter_buffer *jb, struct pkt *p, size_t n, struct res *r, size_t ticks)
{
    for (size_t i = 0; i < n; i++)
        p[i].order = i;
    qsort(p, n, sizeof(*p), by_arrival);
    size_t next = 0;
    for (size_t t = 0; t < ticks; t++) {
        int64_t now = (int64_t)t * TICK_US + 10000;
        while (next < n && p[next].arrival <= now)
            put_pkt(jb, &p[next++]);
        uint8_t out[FRAME];
        size_t out_len;
        r[t] = (struct res){.r = jb_get(jb, out, &out_len)};
        if (r[t].r == JB_FRAME) {
            r[t].seq = (uint16_t)(out[0] << 8 | out[1]);
            r[t].ssrc = (uint32_t)(out[2] << 8 | out[3]);
            uint8_t want[FRAME];
            fill_payload(want, FRAME, r[t].ssrc, r[t].seq);
            assert_memory_equal(out, want, FRAME);
        }
        struct jb_stats st;
        jb_get_stats(jb, &st);
        r[t].shrunk = st.shrunk;
        r[t].delay_ms = st.delay_ms;
        assert_true(st.target_delay_ms >= 20 && st.target_delay_ms <= 200);
        assert_true(st.buffered >= 0 && st.buffered <= 32);
    }
}

struct summary {
    size_t frames, lost, empty, first_frame; /* lost: JB_LOST before the last frame */
    bool in_order; /* every frame is later than the one before (a frame dropped to shrink the
                      delay or concealed leaves a gap: compare frames with what was sent) */
};

static struct summary summarize(const struct res *r, size_t ticks)
{
    struct summary s = {.first_frame = SIZE_MAX, .in_order = true};
    bool have = false;
    uint16_t prev = 0;
    while (ticks > 0 && r[ticks - 1].r != JB_FRAME)
        ticks--; /* the stream's end: a few frames concealed, then nothing */
    for (size_t t = 0; t < ticks; t++) {
        if (r[t].r == JB_EMPTY) {
            s.empty++;
            continue;
        }
        if (r[t].r == JB_LOST) {
            s.lost++;
            continue;
        }
        if (s.first_frame == SIZE_MAX)
            s.first_frame = t;
        if (have && (uint16_t)(r[t].seq - prev) >= 0x8000u)
            s.in_order = false;
        if (have && r[t].seq == prev)
            s.in_order = false;
        prev = r[t].seq;
        have = true;
        s.frames++;
    }
    return s;
}

static void test_jb_in_order(void **state)
{
    enum { N = 300 };
    static struct pkt p[N];
    static struct res r[N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 1, 1000, 5000, 0);
    simulate(jb, p, N, r, N + 20);
    struct summary s = summarize(r, N + 20);
    assert_true(s.first_frame <= 2); /* the initial fill: 20-40 ms */
    assert_int_equal(s.lost, 0);
    assert_true(s.in_order);
    assert_int_equal(s.frames, N);
    assert_int_equal(r[s.first_frame].seq, 1000);
    size_t end = s.first_frame + N;
    for (size_t t = end; t < end + TAIL_LOST; t++)
        assert_int_equal(r[t].r, JB_LOST);
    for (size_t t = end + TAIL_LOST; t < N + 20; t++)
        assert_int_equal(r[t].r, JB_EMPTY);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.received, N);
    assert_int_equal(st.played, N);
    assert_int_equal(st.lost, TAIL_LOST);
    assert_int_equal(st.late + st.duplicate + st.dropped + st.resyncs, 0);
    assert_int_equal(st.stretched + st.shrunk, 0);
    assert_true(st.jitter_ms < 0.01);
    assert_int_equal(st.buffered, 0);
    jb_destroy(jb);
    jb_destroy(NULL);
}

static void test_jb_reordered(void **state)
{
    enum { N = 400 };
    static struct pkt p[N];
    static struct res r[N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 2, 0, 0, 0);
    for (size_t i = 0; i + 1 < N; i += 2) { /* swap pairs: 1 0 3 2 5 4 ... */
        int64_t a = p[i].arrival;
        p[i].arrival = p[i + 1].arrival;
        p[i + 1].arrival = a;
    }
    simulate(jb, p, N, r, N + 20);
    struct summary s = summarize(r, N + 20);
    assert_true(s.in_order);
    assert_int_equal(s.frames, N);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.lost, TAIL_LOST);
    assert_int_equal(st.late, 0);
    assert_int_equal(st.stretched, s.lost);
    jb_destroy(jb);
}

static void test_jb_lost_packet(void **state)
{
    enum { N = 300 };
    static struct pkt p[N];
    static struct res r[N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 3, 500, 0, 0);
    p[150] = p[N - 1]; /* seq 650 never arrives (the last packet's slot is reused) */
    simulate(jb, p, N - 1, r, N + 20);
    struct summary s = summarize(r, N + 20);
    assert_int_equal(s.lost, 1);
    assert_int_equal(s.frames, N - 1);
    for (size_t t = 1; t + 1 < s.first_frame + N; t++) { /* up to the stream's end */
        if (r[t].r == JB_LOST) {
            assert_int_equal(r[t - 1].r, JB_FRAME);
            assert_int_equal(r[t - 1].seq, 649);
            assert_int_equal(r[t + 1].r, JB_FRAME);
            assert_int_equal(r[t + 1].seq, 651);
        }
    }
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.lost, 1 + TAIL_LOST);
    jb_destroy(jb);
}

static void test_jb_duplicate_and_late(void **state)
{
    enum { N = 200, EXTRA = 20 };
    static struct pkt p[N + EXTRA];
    static struct res r[N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 4, 0, 0, 0);
    for (int i = 0; i < 10; i++) { /* copies arriving 1 ms after the original */
        p[N + i] = p[20 + 10 * i];
        p[N + i].arrival += 1000;
    }
    for (int i = 0; i < 10; i++) { /* copies arriving half a second later */
        p[N + 10 + i] = p[30 + 10 * i];
        p[N + 10 + i].arrival += 500000;
    }
    for (int i = 0; i < 3; i++) /* three packets held up for 300 ms: concealed, then late */
        p[45 + 50 * i].arrival += 300000;
    simulate(jb, p, N + EXTRA, r, N + 20);
    struct summary s = summarize(r, N + 20);
    assert_true(s.in_order);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(s.frames + st.shrunk, N - 3); /* the late ones pushed the delay up */
    assert_int_equal(st.received, N + EXTRA);
    assert_int_equal(st.duplicate, 20);
    assert_int_equal(st.late, 3);
    assert_int_equal(st.played, s.frames);
    assert_int_equal(st.lost, 3 + TAIL_LOST);
    assert_int_equal(s.lost, 3 + st.stretched);

    /* wrongly sized packets and packets beyond the buffer's capacity are dropped */
    struct pkt odd = {
        .ssrc = 4, .seq = N, .ts = N * 160, .arrival = (N + 20) * TICK_US, .size = 80};
    put_pkt(jb, &odd);
    odd.size = 2 * FRAME;
    put_pkt(jb, &odd);
    odd.size = FRAME;
    put_pkt(jb, &odd); /* seq N: accepted (the stream moved on), buffered */
    odd.seq = (uint16_t)(odd.seq + 40);
    put_pkt(jb, &odd); /* 40 ahead of the play position with a frame buffered */
    jb_get_stats(jb, &st);
    assert_int_equal(st.dropped, 3);
    assert_int_equal(st.buffered, 1);
    jb_destroy(jb);
}

static void test_jb_seq_wrap(void **state)
{
    enum { N = 40 };
    static struct pkt p[N];
    static struct res r[N + 10];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 5, 65530, 0xffffff00u, 0); /* both seq and ts wrap */
    simulate(jb, p, N, r, N + 10);
    struct summary s = summarize(r, N + 10);
    assert_true(s.in_order);
    assert_int_equal(s.lost, 0);
    assert_int_equal(s.frames, N);
    assert_int_equal(r[s.first_frame].seq, 65530);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.resyncs, 0);
    assert_true(st.jitter_ms < 0.01);
    jb_destroy(jb);
}

static void test_jb_ssrc_change(void **state)
{
    enum { N = 100 };
    static struct pkt p[2 * N];
    static struct res r[2 * N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 0xa, 100, 0, 0);
    stream(p + N, N, 0xb, 40000, 123456789u, (int64_t)N * TICK_US);
    simulate(jb, p, 2 * N, r, 2 * N + 20);
    size_t a = 0, b = 0, switches = 0;
    uint32_t last = 0;
    uint16_t expect_b = 40000;
    for (size_t t = 0; t < 2 * N + 20; t++) {
        if (r[t].r != JB_FRAME)
            continue;
        if (r[t].ssrc == 0xa) {
            a++;
        } else {
            assert_int_equal(r[t].ssrc, 0xb);
            assert_int_equal(r[t].seq, expect_b); /* from its first packet, in order */
            expect_b++;
            b++;
        }
        if (last && r[t].ssrc != last)
            switches++;
        last = r[t].ssrc;
    }
    assert_int_equal(switches, 1);
    assert_int_equal(b, N);
    assert_true(a >= N - 3); /* what was buffered when the new source was confirmed is dropped */
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.resyncs, 1);
    assert_true(st.jitter_ms < 0.5);
    jb_destroy(jb);
}

static void test_jb_seq_jump(void **state)
{
    enum { N = 100 };
    static struct pkt p[2 * N + 1];
    static struct res r[2 * N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 6, 0, 0, 0);
    stream(p + N, N, 6, 20000, (uint32_t)N * 160, (int64_t)N * TICK_US);
    p[2 * N] = p[N / 2]; /* a stray packet far away: ignored */
    p[2 * N].seq = 9999;
    p[2 * N].arrival += 1000;
    simulate(jb, p, 2 * N + 1, r, 2 * N + 20);
    struct summary s = summarize(r, 2 * N + 20);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.resyncs, 1);
    assert_int_equal(st.dropped, 1);
    assert_true(s.frames >= 2 * N - 3);
    /* frames after the jump come from 20000 on, in order */
    bool jumped = false;
    for (size_t t = 0; t < 2 * N + 20; t++) {
        if (r[t].r == JB_FRAME && r[t].seq >= 20000)
            jumped = true;
        else if (r[t].r == JB_FRAME)
            assert_false(jumped);
    }
    assert_true(jumped);
    jb_destroy(jb);
}

static void test_jb_ts_discontinuity(void **state)
{
    enum { N = 200 };
    static struct pkt p[N];
    static struct res r[N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 7, 0, 0, 0);
    for (size_t i = N / 2; i < N; i++)
        p[i].ts += 80000000u; /* the source's clock jumps by 10000 s */
    simulate(jb, p, N, r, N + 20);
    struct summary s = summarize(r, N + 20);
    assert_true(s.in_order);
    assert_int_equal(s.frames, N);
    assert_int_equal(s.lost, 0);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.resyncs, 1);
    assert_true(st.jitter_ms < 0.01); /* not taken for jitter */
    jb_destroy(jb);
}

static uint32_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

static void test_jb_jitter(void **state)
{
    enum { NJ = 1500, NC = 1500, N = NJ + NC, TICKS = N + 30 };
    static struct pkt p[N];
    static struct res r[TICKS];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 8, 60000, 0, 0);
    uint64_t seed = 42;
    for (size_t i = 0; i < NJ; i++)
        p[i].arrival += (int64_t)(rng_next(&seed) % 80001); /* 0-80 ms extra */
    simulate(jb, p, N, r, TICKS);
    struct summary s = summarize(r, TICKS);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    print_message("jitter: played %llu lost %llu late %llu stretched %llu shrunk %llu\n",
                  (unsigned long long)st.played, (unsigned long long)st.lost,
                  (unsigned long long)st.late, (unsigned long long)st.stretched,
                  (unsigned long long)st.shrunk);
    assert_true(s.in_order || st.shrunk > 0 || st.lost > 0);
    assert_true(st.lost + st.late <= N / 200); /* loss near 0: at most 0.5 % */
    assert_true(st.played + st.shrunk + st.lost >= N - 5);

    /* during the jitter, the delay grew to cover it */
    int peak = 0;
    for (size_t t = 200; t < NJ; t++)
        peak = r[t].delay_ms > peak ? r[t].delay_ms : peak;
    assert_true(peak >= 80);
    assert_true(r[NJ].delay_ms >= 80);

    /* afterwards it shrinks, one frame at most per second (and never faster before) */
    uint64_t prev = 0;
    size_t last_shrink = 0;
    for (size_t t = 0; t < TICKS; t++) {
        if (r[t].shrunk != prev) {
            assert_int_equal(r[t].shrunk, prev + 1);
            assert_true(prev == 0 || t - last_shrink >= 50);
            last_shrink = t;
            prev = r[t].shrunk;
        }
    }
    assert_true(r[N - 1].shrunk - r[NJ].shrunk >= 3);
    assert_true(r[N - 1].delay_ms <= 60);
    assert_true(st.target_delay_ms <= 40);
    jb_destroy(jb);
}

static void test_jb_delay_step(void **state)
{
    /* the path gets 70 ms slower at once: the first late packets are concealed, then played
     * (the buffer rewinds to them) instead of being thrown away */
    enum { N = 300 };
    static struct pkt p[N];
    static struct res r[N + 20];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 9, 0, 0, 0);
    for (size_t i = 100; i < N; i++)
        p[i].arrival += 70000;
    simulate(jb, p, N, r, N + 20);
    struct summary s = summarize(r, N + 20);
    assert_true(s.in_order);
    assert_int_equal(s.frames, N);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.lost, TAIL_LOST);
    assert_int_equal(st.late, 0);
    assert_true(st.stretched >= 3);
    jb_destroy(jb);
}

static void test_jb_silence_gap(void **state)
{
    enum { N = 100, GAP = 100, TICKS = 2 * N + GAP + 20 };
    static struct pkt p[2 * N];
    static struct res r[TICKS];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 10, 300, 0, 0);
    /* the sender stops for 2 s: sequence numbers continue, the timestamp counts the pause */
    stream(p + N, N, 10, 300 + N, (uint32_t)(N + GAP) * 160, (int64_t)(N + GAP) * TICK_US);
    p[50].arrival += 1000000; /* concealed in time, arrives during the pause: late */
    simulate(jb, p, 2 * N, r, TICKS);
    struct summary s = summarize(r, TICKS);
    assert_true(s.in_order);
    assert_int_equal(s.frames, 2 * N - 1);
    assert_true(s.lost <= 5);
    /* the pause: a few concealed frames, then nothing, then the resumed talk */
    size_t t = N + 5;
    while (r[t].r == JB_LOST)
        t++;
    size_t empty_from = t;
    while (r[t].r == JB_EMPTY)
        t++;
    assert_true(t - empty_from >= GAP - 10);
    assert_int_equal(r[t].r, JB_FRAME);
    assert_int_equal(r[t].seq, 300 + N);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_int_equal(st.resyncs, 0);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.played, 2 * N - 1);
    jb_destroy(jb);
}

static void test_jb_stall_then_burst(void **state)
{
    /* the network holds 20 packets for 400 ms and delivers them at once: after a few concealed
     * frames the buffer goes quiet, then restarts near its target instead of 400 ms late */
    enum { N = 300, TICKS = N + 30 };
    static struct pkt p[N];
    static struct res r[TICKS];
    struct jitter_buffer *jb = jb_create(160, 160);
    stream(p, N, 11, 0, 0, 0);
    for (size_t i = 100; i < 120; i++)
        p[i].arrival = 120 * TICK_US + 5000;
    simulate(jb, p, N, r, TICKS);
    struct summary s = summarize(r, TICKS);
    assert_true(s.in_order);
    assert_true(s.empty > 10);
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_true(st.dropped >= 10); /* the stale part of the burst */
    assert_int_equal(st.played + st.dropped + st.shrunk, N);
    assert_true(r[125].delay_ms <= 100);
    assert_true(r[TICKS - 40].delay_ms < r[125].delay_ms); /* and shrinks back */
    assert_int_equal(st.late, 0);
    jb_destroy(jb);
}

static void test_jb_too_early(void **state)
{
    struct jitter_buffer *jb = jb_create(160, 160);
    uint8_t out[FRAME];
    size_t out_len;
    struct pkt k = {.ssrc = 12, .seq = 10, .ts = 1600, .arrival = 0, .size = FRAME};
    for (int i = 0; i < 10; i++) {
        put_pkt(jb, &k);
        k.seq++;
        k.ts += 160;
        k.arrival += TICK_US;
        (void)jb_get(jb, out, &out_len);
    }
    struct jb_stats st;
    jb_get_stats(jb, &st);
    assert_true(st.buffered >= 1);
    /* 40 ahead of the play position, beyond the ring, with frames buffered: dropped */
    struct pkt far = k;
    far.seq = (uint16_t)(k.seq + 40);
    put_pkt(jb, &far);
    jb_get_stats(jb, &st);
    assert_int_equal(st.dropped, 1);
    /* once the buffer is empty, a packet that far ahead restarts the fill from there */
    while (st.buffered > 0) {
        assert_int_equal(jb_get(jb, out, &out_len), JB_FRAME);
        jb_get_stats(jb, &st);
    }
    assert_int_equal(jb_get(jb, out, &out_len), JB_LOST);
    far.arrival = k.arrival + 3 * TICK_US;
    put_pkt(jb, &far);
    far.seq++;
    far.ts += 160;
    far.arrival += TICK_US;
    put_pkt(jb, &far);
    assert_int_equal(jb_get(jb, out, &out_len), JB_FRAME);
    assert_int_equal(out[0] << 8 | out[1], k.seq + 40);
    jb_get_stats(jb, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.resyncs, 0);
    jb_destroy(jb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_normal),
        cmocka_unit_test(test_parse_csrc_extension_padding),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_build_roundtrip),
        cmocka_unit_test(test_is_rtcp),
        cmocka_unit_test(test_dtmf_parse),
        cmocka_unit_test(test_dtmf_tracker),
        cmocka_unit_test(test_source_sdp_first),
        cmocka_unit_test(test_source_nat_learning),
        cmocka_unit_test(test_source_learning_needs_sequence),
        cmocka_unit_test(test_source_moves),
        cmocka_unit_test(test_source_trusted_address),
        cmocka_unit_test(test_jb_in_order),
        cmocka_unit_test(test_jb_reordered),
        cmocka_unit_test(test_jb_lost_packet),
        cmocka_unit_test(test_jb_duplicate_and_late),
        cmocka_unit_test(test_jb_seq_wrap),
        cmocka_unit_test(test_jb_ssrc_change),
        cmocka_unit_test(test_jb_seq_jump),
        cmocka_unit_test(test_jb_ts_discontinuity),
        cmocka_unit_test(test_jb_jitter),
        cmocka_unit_test(test_jb_delay_step),
        cmocka_unit_test(test_jb_silence_gap),
        cmocka_unit_test(test_jb_stall_then_burst),
        cmocka_unit_test(test_jb_too_early),
    };
    return cmocka_run_group_tests_name("rtp", tests, NULL, NULL);
}
