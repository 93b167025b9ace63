/* Building and reading SIP messages for every layer of the stack: responses (ours and a dialog's,
 * with Contact and Record-Route), requests, our Via and Contact as the transport wants them, SDP
 * bodies; and the small helpers the layers share (time, random tags, log-safe text). */
#include "sip/internal.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

/* ---- small helpers ---- */

uint64_t sip_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

void sip_random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof(b) || uv_random(NULL, NULL, b, nbytes, 0, NULL) != 0)
        die("uv_random failed");
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

const char *sip_logsafe(const char *in, char *buf, size_t cap)
{
    if (!in)
        return "-";
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        buf[n++] = (*in > ' ' && *in < 127 && *in != '"' && *in != '\\') ? *in : '?';
    buf[n] = '\0';
    return buf;
}

int sip_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (str_to_u64(s, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

bool sip_is_ipv4(const char *s)
{
    struct in_addr a;
    return s && inet_pton(AF_INET, s, &a) == 1;
}

uint32_t sip_hash_str(const char *p)
{
    uint32_t h = 2166136261u;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

void sip_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *sip_tag_of(osip_from_t *h)
{
    osip_generic_param_t *p = NULL;
    if (!h || osip_from_get_tag(h, &p) != 0 || !p || !p->gvalue)
        return NULL;
    return p->gvalue;
}

int sip_callid_of(const osip_message_t *m, char *out, size_t cap)
{
    const osip_call_id_t *c = m->call_id;
    if (!c || !c->number)
        return -1;
    int n = c->host ? snprintf(out, cap, "%s@%s", c->number, c->host)
                    : snprintf(out, cap, "%s", c->number);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

const char *sip_reason_for(int code)
{
    switch (code) {
    case 100:
        return "Trying";
    case 180:
        return "Ringing";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Unsupported URI Scheme";
    case 420:
        return "Bad Extension";
    case 480:
        return "Temporarily Unavailable";
    case 481:
        return "Call/Transaction Does Not Exist";
    case 486:
        return "Busy Here";
    case 487:
        return "Request Terminated";
    case 488:
        return "Not Acceptable Here";
    case 491:
        return "Request Pending";
    case 500:
        return "Server Internal Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 603:
        return "Decline";
    default:
        break;
    }
    if (code < 300)
        return "OK";
    if (code < 400)
        return "Redirection";
    if (code < 500)
        return "Client Error";
    if (code < 600)
        return "Server Error";
    return "Global Failure";
}

int sip_via_clone(void *a, void **b)
{
    return osip_via_clone(a, (osip_via_t **)b);
}

int sip_from_clone(void *a, void **b)
{
    return osip_from_clone(a, (osip_from_t **)b);
}

void sip_route_free(void *r)
{
    osip_from_free(r);
}

const char *sip_sdp_body(const osip_message_t *m, int *bad)
{
    *bad = 0;
    osip_body_t *b = osip_list_get(&m->bodies, 0);
    if (!b || !b->body || b->length == 0)
        return NULL;
    const osip_content_type_t *ct = m->content_type;
    if (ct && (!ct->type || !ct->subtype || strcasecmp(ct->type, "application") != 0 ||
               strcasecmp(ct->subtype, "sdp") != 0)) {
        *bad = 415;
        return NULL;
    }
    if (b->length > SIP_MAX_SDP) {
        *bad = 413;
        return NULL;
    }
    return b->body;
}

osip_uri_t *sip_parse_uri(const char *text)
{
    osip_uri_t *u = NULL;
    if (!text || !*text || strlen(text) > SIP_MAX_URI || osip_uri_init(&u) != 0)
        return NULL;
    if (osip_uri_parse(u, text) != 0) {
        osip_uri_free(u);
        return NULL;
    }
    return u;
}

/* ---- messages ---- */

osip_message_t *sip_msg_response(struct sip_stack *s, const osip_message_t *req, int code,
                                 const char *reason, const char *to_tag)
{
    osip_message_t *r = NULL;
    if (osip_message_init(&r) != 0)
        die("out of memory in osip_message_init");
    osip_message_set_version(r, osip_strdup("SIP/2.0"));
    osip_message_set_status_code(r, code);
    osip_message_set_reason_phrase(r, osip_strdup(reason ? reason : sip_reason_for(code)));
    osip_list_clone(&req->vias, &r->vias, sip_via_clone);
    if (req->from)
        osip_from_clone(req->from, &r->from);
    if (req->to) {
        osip_to_clone(req->to, &r->to);
        /* Every response but 100 carries our To tag (RFC 3261 8.2.6.2). */
        if (r->to && code > 100 && !sip_tag_of(r->to)) {
            char tag[17];
            if (!to_tag) {
                sip_random_hex(tag, 8);
                to_tag = tag;
            }
            osip_to_set_tag(r->to, osip_strdup(to_tag));
        }
    }
    if (req->call_id)
        osip_call_id_clone(req->call_id, &r->call_id);
    if (req->cseq)
        osip_cseq_clone(req->cseq, &r->cseq);
    osip_message_set_header(r, "Server", s->user_agent);
    return r;
}

void sip_msg_contact(const struct sip_transport *tp, const char *host, int port, char *out,
                     size_t cap)
{
    if (tp && tp->param)
        snprintf(out, cap, "<sip:%s:%d;transport=%s>", host, port, tp->param);
    else
        snprintf(out, cap, "<sip:%s:%d>", host, port);
}

osip_message_t *sip_msg_dialog_response(struct sip_dialog *d, const osip_message_t *req, int code,
                                        const char *reason)
{
    struct sip_stack *s = d->s;
    osip_message_t *r = sip_msg_response(s, req, code, reason, d->local_tag);
    if (code > 100 && code < 300 && MSG_IS_INVITE(req)) {
        char contact[INET_ADDRSTRLEN + 48];
        sip_msg_contact(d->peer.tp, d->local_host, d->local_port, contact, sizeof(contact));
        osip_message_set_contact(r, contact);
        osip_message_set_header(r, "Allow", SIP_ALLOW);
        if (req == d->invite)
            osip_list_clone(&req->record_routes, &r->record_routes, sip_from_clone);
    }
    return r;
}

void sip_msg_set_sdp(osip_message_t *m, const char *sdp)
{
    osip_message_set_content_type(m, "application/sdp");
    osip_message_set_body(m, sdp, strlen(sdp));
}

void sip_msg_set_via(const struct sip_transport *tp, const char *host, int port, osip_message_t *m)
{
    char branch[25], via[INET_ADDRSTRLEN + 96];
    sip_random_hex(branch, 12);
    /* rport (RFC 3581) asks a UDP peer to answer where the request came from; over a
     * connection the answer takes the connection anyway. */
    bool udp = !tp || tp == &sip_tp_udp;
    snprintf(via, sizeof(via), "SIP/2.0/%s %s:%d;%sbranch=z9hG4bK%s", udp ? "UDP" : tp->name, host,
             port, udp ? "rport;" : "", branch);
    osip_message_set_via(m, via);
}

osip_message_t *sip_msg_request(const char *method)
{
    osip_message_t *m = NULL;
    if (osip_message_init(&m) != 0)
        die("out of memory in osip_message_init");
    osip_message_set_method(m, osip_strdup(method));
    osip_message_set_version(m, osip_strdup("SIP/2.0"));
    return m;
}
