/* A leg's RTP on its media thread: datagrams in through the leg's transport (engine_transport.c)
 * into the jitter buffer (audio) or the DTMF tracker (telephone events), frames out from the
 * jitter buffer through packet loss concealment, and encoded frames sent through the transport. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "media/engine_internal.h"
#include "media/srtp_pair.h"

/* One received datagram of a leg: its transport says whether it is RTP to take. */
static void take_packet(struct media_thread *t, struct media_leg *l, uint8_t *buf, size_t n,
                        const struct sockaddr_in *from, int64_t now)
{
    struct media_engine *e = t->e;
    struct rtp_packet p;
    if (!l->tp->take(t, l, buf, n, from, now, &p))
        return;
    l->last_rx_ns = now;
    engine_count(&e->packets_in);
    if (p.payload_type == l->audio_pt && l->lc) {
        if (codec_payload_ok(l->lc->id, p.payload, p.payload_len))
            jb_put(l->lc->jb, &p, now / 1000);
        else
            engine_count(&e->bad_packets);
    } else if (l->dtmf_pt >= 0 && p.payload_type == l->dtmf_pt) {
        struct rtp_dtmf d;
        if (rtp_dtmf_parse(p.payload, p.payload_len, &d) == 0) {
            char key = dtmf_tracker_feed(&l->dtmf, &p, &d);
            if (key) {
                struct ev ev = {.type = EV_PUBLIC,
                                .pub = {.type = MEDIA_LEG_DTMF, .leg = l, .digit = key}};
                engine_emit(t, &ev);
            }
        }
    }
}

#define RX_BATCH 4

/* Reads what arrived on a leg's sockets: RTP into the jitter buffer, telephone events into key
 * presses, from the source strict learning accepts (the replies go where it sends from). One
 * recvmmsg() per leg per tick takes everything that is normally waiting (one packet per 20 ms), so
 * an idle socket costs one system call, not a read that only returns EAGAIN after the data. */
void engine_leg_receive(struct media_thread *t, struct media_leg *l, int64_t now, bool rtcp_too)
{
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
    /* RTCP: read and drop (reports are not used yet), once a second rather than every tick. */
    if (rtcp_too)
        for (int i = 0; i < 8; i++)
            if (recv(l->fd_rtcp, bufs[0], sizeof(bufs[0]), MSG_DONTWAIT) < 0)
                break;
}

/* The leg's contribution to this tick: a decoded frame, a concealed one, or nothing. */
void engine_leg_fill_input(struct media_leg *l)
{
    struct leg_codec *lc = l->lc;
    if (!lc) {
        l->mp.has_in = false;
        return;
    }
    uint8_t enc[CODEC_MAX_PAYLOAD];
    size_t len = 0, next_len = 0;
    const uint8_t *next;
    switch (jb_get(lc->jb, enc, &len)) {
    case JB_FRAME:
        codec_decode(lc->dec, enc, len, l->mp.in);
        l->mp.has_in = true;
        break;
    case JB_LOST:
        next = jb_peek(lc->jb, &next_len); /* Opus rebuilds the frame from the next one's FEC */
        codec_conceal(lc->dec, next, next_len, l->mp.in);
        l->mp.has_in = true;
        break;
    case JB_EMPTY:
        l->mp.has_in = false;
        break;
    }
}

void engine_leg_skip_frame(struct media_leg *l)
{
    l->ts += codec_info(l->mp.codec)->ts_step;
}

void engine_leg_send_frame(struct media_thread *t, struct media_leg *l, const uint8_t *payload,
                           size_t len, bool marker)
{
    uint8_t pkt[RTP_HEADER_MIN + CODEC_OUT_MAX + SRTP_PAIR_TRAILER];
    if (!l->tp->ready(l)) { /* WebRTC before its keys: nothing can be sent yet */
        engine_leg_skip_frame(l);
        return;
    }
    size_t n = rtp_build(pkt, sizeof(pkt) - SRTP_PAIR_TRAILER, (uint8_t)l->audio_pt, marker,
                         l->seq++, l->ts, l->ssrc, payload, len);
    engine_leg_skip_frame(l);
    if (n > 0 && l->tp->send(l, pkt, n))
        engine_count(&t->e->packets_out);
}
