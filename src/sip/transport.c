/* The transport layer: the seam every SIP transport plugs into (peers, connections), SIP over
 * UDP (the socket on the libuv loop, reading, sending), and what every received message goes
 * through, whatever its transport: libosip2's parser, our checks, then its transaction, the
 * client side (a stray response) or the server side (a new request). */
#include "sip/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mem.h"

/* ---- peers and connections ---- */

struct sip_peer sip_peer_udp(const struct sockaddr_in *addr)
{
    struct sip_peer p = {.tp = &sip_tp_udp, .conn = NULL, .addr = *addr};
    return p;
}

void sip_peer_set(struct sip_peer *dst, const struct sip_peer *src)
{
    if (src->conn)
        src->conn->refs++;
    struct sip_conn *old = dst->conn;
    *dst = *src;
    if (old)
        sip_conn_release(old);
}

void sip_peer_clear(struct sip_peer *p)
{
    struct sip_conn *old = p->conn;
    memset(p, 0, sizeof(*p));
    if (old)
        sip_conn_release(old);
}

struct sip_conn *sip_conn_new(struct sip_stack *s, const struct sip_transport *tp, void *impl,
                              const struct sockaddr_in *remote, const char *local_host,
                              int local_port)
{
    struct sip_conn *c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->tp = tp;
    c->refs = 1;
    c->open = true;
    c->impl = impl;
    c->remote = *remote;
    uv_ip4_name(remote, c->remote_ip, sizeof(c->remote_ip));
    str_copy(c->local_host, sizeof(c->local_host), local_host);
    c->local_port = local_port;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    return c;
}

/* Why the dialogs end later: a connection may close in the middle of a send, deep inside a
 * transaction's state machine; the pump ends its dialogs at a point where that is safe. The
 * transport's reference moves to the queue until then. */
void sip_conn_close(struct sip_conn *c)
{
    if (!c || !c->open)
        return;
    struct sip_stack *s = c->s;
    c->open = false;
    c->impl = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_conns--;
    c->closed_queued = true;
    c->closed_next = s->closed_conns;
    s->closed_conns = c;
    sip_stack_kick(s);
}

void sip_conn_release(struct sip_conn *c)
{
    if (c && --c->refs == 0)
        free(c);
}

/* ---- UDP ---- */

struct send_req {
    uv_udp_send_t req;
    char data[];
};

static void on_sent(uv_udp_send_t *req, int status)
{
    free(req);
}

static int udp_send(struct sip_stack *s, const struct sip_peer *to, const char *buf, size_t len)
{
    const struct sockaddr *sa = (const struct sockaddr *)&to->addr;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_udp_try_send(&s->udp, &b, 1, sa);
    if (rc == UV_EAGAIN) {
        /* The socket buffer is full: queue a copy rather than lose it. */
        struct send_req *r = xmalloc(sizeof(*r) + len);
        memcpy(r->data, buf, len);
        b = uv_buf_init(r->data, (unsigned)len);
        rc = uv_udp_send(&r->req, &s->udp, &b, 1, sa, on_sent);
        if (rc < 0)
            free(r);
    }
    if (rc < 0)
        log_debug("msg=sip_send_failed error=%s", uv_strerror(rc));
    return rc < 0 ? rc : 0;
}

const struct sip_transport sip_tp_udp = {
    .name = "UDP",
    .param = NULL,
    .reliable = false,
    .send = udp_send,
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sip_stack *s = h->data;
    *buf = uv_buf_init(s->rbuf, SIP_MAX_DATAGRAM);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    if (nread <= 0 || !addr || addr->sa_family != AF_INET || (flags & UV_UDP_PARTIAL))
        return;
    struct sip_peer from = sip_peer_udp((const struct sockaddr_in *)addr);
    sip_tp_input(h->data, &from, buf->base, (size_t)nread);
}

static void on_udp_closed(uv_handle_t *h)
{
    sip_stack_handle_closed(h->data);
}

int sip_tp_udp_open(struct sip_stack *s, const char *addr, int port, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    uv_ip4_addr(addr, port, &sa);
    uv_udp_init(s->loop, &s->udp);
    s->udp.data = s;
    s->open_handles++;
    int rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&sa, 0);
    struct sockaddr_in bound;
    int blen = sizeof(bound);
    if (rc == 0)
        rc = uv_udp_getsockname(&s->udp, (struct sockaddr *)&bound, &blen);
    if (rc == 0)
        rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
    if (rc != 0) {
        snprintf(err, errlen, "sip: cannot listen on %s:%d: %s", addr, port, uv_strerror(rc));
        return -1;
    }
    s->port = ntohs(bound.sin_port);
    return 0;
}

void sip_tp_udp_close(struct sip_stack *s)
{
    uv_close((uv_handle_t *)&s->udp, on_udp_closed);
}

void sip_tp_udp_local(struct sip_stack *s, const struct sockaddr_in *to, char *out, size_t cap)
{
    str_copy(out, cap, s->addr);
    if (strcmp(s->addr, "0.0.0.0") != 0)
        return;
    /* connect() on a UDP socket sends nothing: it only makes the kernel pick the route. */
    str_copy(out, cap, "127.0.0.1");
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0 && a.sin_family == AF_INET &&
        a.sin_addr.s_addr != htonl(INADDR_ANY))
        uv_ip4_name(&a, out, cap);
    close(fd);
}

/* ---- sending ---- */

int sip_tp_send(struct sip_stack *s, const struct sip_peer *to, const char *buf, size_t len)
{
    if (!to || !to->tp)
        return -1;
    return to->tp->send(s, to, buf, len);
}

int sip_tp_send_msg(struct sip_stack *s, osip_message_t *m, const struct sip_peer *to)
{
    char *buf = NULL;
    size_t len = 0;
    if (osip_message_to_str(m, &buf, &len) != 0 || !buf)
        return -1;
    int rc = sip_tp_send(s, to, buf, len);
    osip_free(buf);
    return rc;
}

/* Every transaction sends to the peer its request came from (or, for our BYE, to the dialog's
 * peer; for our INVITE and CANCEL, to the address of the Request-URI, resolved before the
 * transaction starts). Why not the Via or Contact host: they may be names (a DNS lookup would
 * block the loop), addresses behind a NAT, or a WebSocket client's made-up ".invalid" host; the
 * peer is none of those. */
int sip_tp_osip_send(osip_transaction_t *tr, osip_message_t *m, char *host, int port, int sock)
{
    struct txinfo *info = tr ? osip_transaction_get_your_instance(tr) : NULL;
    if (!info)
        return -1;
    /* A lost message is the retransmission timers' business (or, on a connection, the
     * time-outs' and the closed connection's), not a transaction error. */
    sip_tp_send_msg(info->s, m, &info->peer);
    return 0;
}

/* ---- receiving ---- */

/* Checks what every later step relies on. Returns 0, -1 when a 400 is due, -2 to drop. */
static int check_message(const osip_message_t *m, char *cid, size_t cidcap, uint32_t *cseq)
{
    const osip_via_t *via = osip_list_get(&m->vias, 0);
    if (!via || !via->host || !via->protocol)
        return -2;
    if (!m->cseq || !m->cseq->number || !m->cseq->method || !m->from || !m->to || !m->from->url ||
        !m->to->url || sip_callid_of(m, cid, cidcap) < 0)
        return -1;
    if (sip_parse_u32(m->cseq->number, 0x7fffffffu, cseq) < 0)
        return -1;
    const char *ft = sip_tag_of(m->from), *tt = sip_tag_of(m->to);
    if ((ft && strlen(ft) > SIP_MAX_TOKEN) || (tt && strlen(tt) > SIP_MAX_TOKEN))
        return -1;
    if (MSG_IS_REQUEST(m) &&
        (!m->sip_method || !m->req_uri || strcmp(m->sip_method, m->cseq->method) != 0))
        return -1;
    return 0;
}

int sip_tp_input(struct sip_stack *s, const struct sip_peer *from, const char *buf, size_t len)
{
    /* Runts are keep-alives (CRLF, RFC 5626) or noise: nothing to answer. */
    if (s->closing || len < 16)
        return 1;
    if (len > SIP_MAX_DATAGRAM)
        return -1;
    memmove(s->rbuf, buf, len);
    memset(s->rbuf + len, 0, sizeof(s->rbuf) - SIP_MAX_DATAGRAM);
    osip_event_t *evt = osip_parse(s->rbuf, len);
    if (!evt || !evt->sip) {
        osip_event_free(evt);
        return -1;
    }
    osip_message_t *m = evt->sip;
    char cid[SIP_MAX_TOKEN + 1];
    uint32_t cseq = 0;
    int ok = check_message(m, cid, sizeof(cid), &cseq);
    if (ok < 0) {
        if (ok == -1 && MSG_IS_REQUEST(m) && m->sip_method && strcmp(m->sip_method, "ACK") != 0)
            sip_tx_reply_stateless(s, m, from, 400);
        osip_event_free(evt);
        return ok == -2 ? -1 : 0;
    }
    osip_transaction_t *tr = sip_tx_find(s, evt);
    if (tr) {
        sip_tx_add_event(s, tr, evt);
    } else if (MSG_IS_RESPONSE(m)) {
        sip_uac_stray_response(s, m, cid, cseq);
        osip_event_free(evt); /* a late response to a transaction that is gone */
    } else {
        sip_uas_request(s, evt, from, cid, cseq);
    }
    sip_stack_pump(s);
    return 0;
}

void sip_stack_input(struct sip_stack *s, const char *buf, size_t len, const char *ip, int port)
{
    struct sockaddr_in sa;
    if (!s || !buf || uv_ip4_addr(ip, port, &sa) != 0)
        return;
    struct sip_peer from = sip_peer_udp(&sa);
    sip_tp_input(s, &from, buf, len);
}
