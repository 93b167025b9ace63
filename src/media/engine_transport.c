/* How a leg's datagrams come and go on its media thread (struct leg_transport): plain UDP RTP
 * with strict source learning and a connected socket, or WebRTC on the same one socket, where
 * STUN and DTLS go to the control thread (engine_secure.c), SRTP is checked and decrypted in place
 * and what is sent is protected and goes where ICE nominated. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "media/engine_internal.h"
#include "media/srtp_pair.h"

void engine_leg_disconnect(struct media_leg *l)
{
    if (!l->connected)
        return;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    connect(l->fd_rtp, &unspec, sizeof(unspec));
    l->connected = false;
}

/* ---- plain RTP ---- */

/* Strict learning of the source (media/rtp.h): false when the packet is refused. */
static bool source_accept(struct media_engine *e, struct media_leg *l, const struct rtp_packet *p,
                          const struct sockaddr_in *from, int64_t now)
{
    uint64_t learned = l->src.learned;
    switch (rtp_source_check(&l->src, from->sin_addr.s_addr, from->sin_port, p, now / 1000)) {
    case RTP_SOURCE_REFUSE:
        engine_count(&e->rtp_refused);
        return false;
    case RTP_SOURCE_SWITCH:
        /* Symmetric RTP: the audio goes where the accepted source sends from. */
        engine_leg_disconnect(l);
        l->remote = *from;
        l->remote_set = true;
        if (l->src.learned != learned)
            engine_count(&e->rtp_learned);
        break;
    case RTP_SOURCE_ACCEPT:
        break;
    }
    /* The SDP's own source, once heard, gets a connected socket: it sends without a route lookup
     * per packet, and the kernel drops every other sender before it reaches us. A learned source
     * does not: the SDP's source must still be seen, to take the leg back. */
    if (!l->connected && l->src.addr == l->src.sdp_addr && l->src.port == l->src.sdp_port)
        l->connected = connect(l->fd_rtp, (const struct sockaddr *)from, sizeof(*from)) == 0;
    return true;
}

static bool udp_take(struct media_thread *t, struct media_leg *l, uint8_t *buf, size_t n,
                     const struct sockaddr_in *from, int64_t now, struct rtp_packet *p)
{
    if (rtp_parse(buf, n, p) < 0) {
        engine_count(&t->e->bad_packets);
        return false;
    }
    return source_accept(t->e, l, p, from, now);
}

static bool udp_ready(const struct media_leg *l)
{
    return true;
}

static bool send_to_remote(struct media_leg *l, const uint8_t *pkt, size_t n)
{
    ssize_t sent = l->connected ? send(l->fd_rtp, pkt, n, MSG_DONTWAIT)
                                : sendto(l->fd_rtp, pkt, n, MSG_DONTWAIT,
                                         (struct sockaddr *)&l->remote, sizeof(l->remote));
    return sent >= 0;
}

static bool udp_send(struct media_leg *l, uint8_t *pkt, size_t n)
{
    return send_to_remote(l, pkt, n);
}

const struct leg_transport engine_transport_udp = {udp_take, udp_ready, udp_send};

/* ---- WebRTC ---- */

/* A STUN or DTLS datagram: to the control thread through the leg's mailbox (when it is full, the
 * peer is sending more than a handshake needs: dropped). */
static void post_mail(struct media_thread *t, struct media_leg *l, const uint8_t *buf, size_t n,
                      const struct sockaddr_in *from)
{
    static __thread struct secure_mail m;
    if (n > sizeof(m.data)) {
        engine_count(&t->e->bad_packets);
        return;
    }
    m.from = *from;
    m.len = (uint16_t)n;
    memcpy(m.data, buf, n);
    if (!spsc_push(&l->mail->ring, &m)) {
        engine_count(&t->e->secure_mail_dropped);
        return;
    }
    if (atomic_exchange(&l->mail->signalled, true))
        return; /* the control thread has yet to drain: it takes this one too */
    struct ev ev = {.type = EV_SECURE_MAIL, .pub = {.leg = l}};
    engine_emit(t, &ev);
}

/* By its first byte (RFC 7983): STUN and DTLS to the control thread; SRTP authenticated and
 * decrypted in place, which proves the sender (no source learning); SRTCP and the rest dropped
 * (reports are not used yet). */
static bool webrtc_take(struct media_thread *t, struct media_leg *l, uint8_t *buf, size_t n,
                        const struct sockaddr_in *from, int64_t now, struct rtp_packet *p)
{
    enum rtp_demux kind = rtp_demux(buf, n);
    if (kind == RTP_DEMUX_STUN || kind == RTP_DEMUX_DTLS) {
        post_mail(t, l, buf, n, from);
        return false;
    }
    if (kind != RTP_DEMUX_RTP || !l->srtp)
        return false;
    int m = srtp_pair_unprotect(l->srtp, buf, n);
    if (m < 0) {
        engine_count(&t->e->srtp_failed);
        return false;
    }
    if (rtp_parse(buf, (size_t)m, p) < 0) {
        engine_count(&t->e->bad_packets);
        return false;
    }
    return true;
}

static bool webrtc_ready(const struct media_leg *l)
{
    return l->srtp && l->remote_set;
}

static bool webrtc_send(struct media_leg *l, uint8_t *pkt, size_t n)
{
    int m = srtp_pair_protect(l->srtp, pkt, n);
    return m > 0 && send_to_remote(l, pkt, (size_t)m);
}

const struct leg_transport engine_transport_webrtc = {webrtc_take, webrtc_ready, webrtc_send};
