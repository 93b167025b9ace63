/* A WebRTC leg's ICE-lite and DTLS on the control thread. The media thread hands its STUN and
 * DTLS datagrams over through the leg's mailbox (EV_SECURE_MAIL): checks are answered here,
 * where a valid one nominates becomes where the leg's audio goes (CMD_LEG_PEER), and the DTLS
 * handshake runs here too, off the tick; its SRTP keys go to the leg (CMD_LEG_SRTP). What this
 * sends (STUN answers, DTLS flights) goes out on the leg's own socket, which the control thread
 * owns and closes after this state is gone. */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/mem.h"
#include "media/dtls.h"
#include "media/engine_internal.h"
#include "media/srtp_pair.h"
#include "media/stun.h"

struct leg_secure {
    struct media_engine *e;
    struct media_leg *l;
    char ufrag[MEDIA_ICE_UFRAG_MAX + 1], pwd[MEDIA_ICE_PWD_MAX + 1];
    char remote_ufrag[MEDIA_ICE_UFRAG_MAX * 8 + 1]; /* "" when the offer had none */
    char remote_fingerprint[256];
    bool dtls_client;
    uint32_t remote_ssrc;
    struct secure_mailbox mail;
    struct sockaddr_in peer; /* the address checks nominated: audio and DTLS go there */
    bool peer_set;
    struct dtls_conn *dtls;
    uv_timer_t *timer; /* DTLS retransmissions */
    bool keyed, failed, closed;
    uint64_t errors_window_ms; /* error answers: at most STUN_ERRORS_PER_S in each second */
    unsigned errors_in_window;
};

/* Error answers go to whoever a datagram says it is from (perhaps not who sent it): a few a
 * second keep a leg from being made to reflect a flood. */
#define STUN_ERRORS_PER_S 5

static bool error_answer_allowed(struct leg_secure *s)
{
    uint64_t now = uv_now(s->e->loop);
    if (now - s->errors_window_ms >= 1000) {
        s->errors_window_ms = now;
        s->errors_in_window = 0;
    }
    return s->errors_in_window++ < STUN_ERRORS_PER_S;
}

static bool same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

static void send_to(struct leg_secure *s, const uint8_t *buf, size_t len,
                    const struct sockaddr_in *to)
{
    ssize_t n =
        sendto(s->l->fd_rtp, buf, len, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof(*to));
    (void)n; /* UDP: a lost datagram is the peer's to retransmit (or ours, by the DTLS timer) */
}

static void dtls_out(void *ctx, const uint8_t *buf, size_t len)
{
    struct leg_secure *s = ctx;
    if (s->peer_set)
        send_to(s, buf, len, &s->peer);
}

static void fail(struct leg_secure *s, const char *why)
{
    if (s->failed)
        return;
    s->failed = true;
    uv_timer_stop(s->timer);
    log_warn("msg=\"WebRTC media failed\" leg=%s error=\"%s\"", s->l->key, why);
    struct media_event ev = {.type = MEDIA_LEG_SECURE_FAILED, .leg = s->l};
    if (!s->l->destroying) /* as for the media threads' events: none for a leg being freed */
        s->e->cb(s->e->ctx, &ev);
}

static void on_timer(uv_timer_t *h);

/* After the handshake moved: the keys to the leg once it is up, the timer for what is next. */
static void dtls_progress(struct leg_secure *s, enum dtls_state st)
{
    if (st == DTLS_FAILED || (st == DTLS_CLOSED && !s->keyed)) {
        fail(s, dtls_conn_error(s->dtls));
        return;
    }
    if (st == DTLS_CLOSED) { /* the peer closed its connection (a page gone without a word) */
        uv_timer_stop(s->timer);
        if (!s->closed) {
            s->closed = true;
            log_info("msg=\"WebRTC peer closed\" leg=%s", s->l->key);
            struct media_event ev = {.type = MEDIA_LEG_SECURE_CLOSED, .leg = s->l};
            if (!s->l->destroying)
                s->e->cb(s->e->ctx, &ev);
        }
        return;
    }
    if (st == DTLS_CONNECTED && !s->keyed) {
        struct dtls_srtp_keys k = {0};
        char err[160];
        struct srtp_pair *p = NULL;
        if (dtls_conn_srtp_keys(s->dtls, &k) == 0)
            p = srtp_pair_create(k.profile, k.local, k.remote, k.key_len + k.salt_len, s->l->ssrc,
                                 s->remote_ssrc, err, sizeof(err));
        else
            str_copy(err, sizeof(err), "no SRTP keys from the handshake");
        int profile = k.profile;
        explicit_bzero(&k, sizeof(k));
        if (!p) {
            fail(s, err);
            return;
        }
        s->keyed = true;
        struct cmd c = {.type = CMD_LEG_SRTP, .leg = s->l, .srtp = p};
        engine_leg_send(s->l, &c);
        log_info("msg=\"WebRTC media up\" leg=%s srtp_profile=%d", s->l->key, profile);
    }
    int64_t ms = dtls_conn_next_timeout_ms(s->dtls);
    if (ms >= 0 && st == DTLS_HANDSHAKING)
        uv_timer_start(s->timer, on_timer, (uint64_t)ms, 0);
    else
        uv_timer_stop(s->timer);
}

static void on_timer(uv_timer_t *h)
{
    struct leg_secure *s = h->data;
    if (s->dtls && !s->failed && !s->l->destroying)
        dtls_progress(s, dtls_conn_timeout(s->dtls));
}

/* A Binding request: answered when it carries our credentials; a valid one from a new address
 * makes it the peer while none is chosen, and one with USE-CANDIDATE always does (the peer, as
 * the controlling agent, nominates). The first valid check also starts DTLS. */
static void on_stun(struct leg_secure *s, const uint8_t *buf, size_t len,
                    const struct sockaddr_in *from)
{
    struct stun_binding b;
    uint8_t out[STUN_RESPONSE_MAX];
    size_t n = 0;
    int r = stun_parse_binding(buf, len, s->ufrag, s->pwd, &b);
    if (r == STUN_OK && s->remote_ufrag[0] &&
        (b.remote_ufrag_len != strlen(s->remote_ufrag) ||
         memcmp(b.remote_ufrag, s->remote_ufrag, b.remote_ufrag_len) != 0))
        r = STUN_UNAUTHORIZED; /* our ufrag, but not with the peer the SDP named */
    int code = stun_reply_code(r, &b);
    if (code == 200)
        n = stun_build_binding_success(out, sizeof(out), b.txid, from, s->pwd);
    else if (code && error_answer_allowed(s)) /* 400, 401: no integrity of ours */
        n = stun_build_binding_error(out, sizeof(out), b.txid, code,
                                     code == 400 || code == 401 ? NULL : s->pwd, b.unknown,
                                     b.unknown_count);
    if (n)
        send_to(s, out, n, from);
    if (code != 200)
        return;
    if (!s->peer_set || (b.use_candidate && !same_addr(&s->peer, from))) {
        s->peer = *from;
        s->peer_set = true;
        struct cmd c = {.type = CMD_LEG_PEER, .leg = s->l, .remote = *from};
        engine_leg_send(s->l, &c);
    }
    if (!s->dtls && !s->failed) {
        char err[160];
        s->dtls = dtls_conn_create(s->e->cfg.dtls_cert,
                                   s->dtls_client ? DTLS_ROLE_CLIENT : DTLS_ROLE_SERVER,
                                   s->remote_fingerprint, dtls_out, s, err, sizeof(err));
        if (!s->dtls)
            fail(s, err);
        else
            dtls_progress(s, dtls_conn_state(s->dtls));
    }
}

void engine_secure_mail(struct media_engine *e, struct media_leg *l)
{
    struct leg_secure *s = l->ctl_secure;
    struct secure_mail m;
    if (!s)
        return;
    /* Cleared first: what arrives from now on signals again; what is there is drained here. */
    atomic_store(&s->mail.signalled, false);
    while (!l->destroying && spsc_pop(&s->mail.ring, &m)) { /* the callback may destroy it */
        if (rtp_demux(m.data, m.len) == RTP_DEMUX_STUN)
            on_stun(s, m.data, m.len, &m.from);
        else if (s->dtls && !s->failed && !s->closed && s->peer_set && same_addr(&m.from, &s->peer))
            dtls_progress(s, dtls_conn_input(s->dtls, m.data, m.len));
    }
}

int media_leg_secure(struct media_engine *e, struct media_leg *l,
                     const struct media_secure_offer *offer, struct media_secure_local *out,
                     char *err, size_t errlen)
{
    if (!e->cfg.dtls_cert) {
        snprintf(err, errlen, "WebRTC media is not available: no DTLS certificate");
        return -1;
    }
    if (l->ctl_secure) {
        snprintf(err, errlen, "the leg already has WebRTC media");
        return -1;
    }
    if (offer->ice_ufrag && strlen(offer->ice_ufrag) >= sizeof(l->ctl_secure->remote_ufrag)) {
        snprintf(err, errlen, "the offer's ice-ufrag is too long");
        return -1;
    }
    struct leg_secure *s = xcalloc(1, sizeof(*s));
    s->e = e;
    s->l = l;
    stun_make_credentials(s->ufrag, s->pwd);
    str_copy(s->remote_ufrag, sizeof(s->remote_ufrag), offer->ice_ufrag ? offer->ice_ufrag : "");
    str_copy(s->remote_fingerprint, sizeof(s->remote_fingerprint),
             offer->fingerprint ? offer->fingerprint : "");
    s->dtls_client = offer->dtls_client;
    s->remote_ssrc = offer->ssrc;
    spsc_init(&s->mail.ring, SECURE_MAIL_SLOTS, sizeof(struct secure_mail));
    atomic_init(&s->mail.signalled, false);
    s->timer = xcalloc(1, sizeof(*s->timer));
    uv_timer_init(e->loop, s->timer);
    s->timer->data = s;
    l->ctl_secure = s;
    str_copy(out->ice_ufrag, sizeof(out->ice_ufrag), s->ufrag);
    str_copy(out->ice_pwd, sizeof(out->ice_pwd), s->pwd);
    out->fingerprint = dtls_cert_fingerprint(e->cfg.dtls_cert);
    out->ssrc = l->ssrc;
    struct cmd c = {.type = CMD_LEG_SECURE, .leg = l, .mail = &s->mail};
    engine_leg_send(l, &c);
    return 0;
}

bool media_leg_is_secure(const struct media_leg *l)
{
    return l->ctl_secure != NULL;
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

void engine_secure_free(struct leg_secure *s)
{
    if (!s)
        return;
    dtls_conn_free(s->dtls);
    spsc_fini(&s->mail.ring);
    uv_close((uv_handle_t *)s->timer, free_timer);
    free(s);
}
