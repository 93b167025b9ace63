/* SDP offer/answer for one audio stream (RFC 3264), on libosip2's SDP parser. */
#include "sip/sip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <osipparser2/osip_port.h>
#include <osipparser2/sdp_message.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/mem.h"

/* Offers longer than this are refused: a real one is well under 2 KiB. */
#define SDP_MAX_TEXT 16384
/* Zeroed bytes after the text we hand to libosip2 (see parse_sdp). */
#define SDP_SLACK 16

/* What we read from an SDP beyond the public result. */
struct sdp_info {
    struct sdp_offer_result r;
    uint64_t sess_id, sess_version;
};

/* "name/rate[/channels]" of the a=rtpmap line for pt in media m, or NULL. */
static const char *rtpmap_of(sdp_media_t *m, uint64_t pt)
{
    for (int i = 0; !osip_list_eol(&m->a_attributes, i); i++) {
        sdp_attribute_t *a = osip_list_get(&m->a_attributes, i);
        if (!a->a_att_field || !a->a_att_value || strcasecmp(a->a_att_field, "rtpmap") != 0)
            continue;
        char *end;
        errno = 0;
        unsigned long v = strtoul(a->a_att_value, &end, 10);
        if (errno || end == a->a_att_value || *end != ' ' || v != pt)
            continue;
        while (*end == ' ')
            end++;
        return end;
    }
    return NULL;
}

/* True when an rtpmap encoding ("PCMU/8000", "telephone-event/8000/1", "opus/48000/2") names
 * enc at rate. */
static bool encoding_is(const char *map, const char *enc, int rate)
{
    char want[32];
    size_t n = (size_t)snprintf(want, sizeof(want), "%s/%d", enc, rate);
    if (!map || strncasecmp(map, want, n) != 0)
        return false;
    return map[n] == '\0' || map[n] == '/';
}

/* Applies a=sendonly/recvonly/inactive/sendrecv from one attribute list. */
static void read_direction(osip_list_t *attrs, struct sdp_offer_result *r)
{
    for (int i = 0; !osip_list_eol(attrs, i); i++) {
        sdp_attribute_t *a = osip_list_get(attrs, i);
        if (!a->a_att_field)
            continue;
        bool so = strcasecmp(a->a_att_field, "sendonly") == 0;
        bool ro = strcasecmp(a->a_att_field, "recvonly") == 0;
        bool in = strcasecmp(a->a_att_field, "inactive") == 0;
        if (so || ro || in || strcasecmp(a->a_att_field, "sendrecv") == 0) {
            r->remote_sendonly = so;
            r->remote_recvonly = ro;
            r->remote_inactive = in;
        }
    }
}

/* A value of ours to copy from an attribute: printable, no spaces unless allowed, fits. */
static bool copy_value(char *dst, size_t cap, const char *v, bool spaces)
{
    if (!v || !*v || strlen(v) >= cap)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < ' ' || *p >= 127 || (*p == ' ' && !spaces))
            return false;
    str_copy(dst, cap, v);
    return true;
}

/* WebRTC attributes (ICE, DTLS, mid, ssrc) from one attribute list; a media level list read after
 * the session level one overrides it. */
static void read_secure(osip_list_t *attrs, struct sdp_offer_result *r)
{
    for (int i = 0; !osip_list_eol(attrs, i); i++) {
        sdp_attribute_t *a = osip_list_get(attrs, i);
        const char *f = a->a_att_field, *v = a->a_att_value;
        if (!f || !v)
            continue;
        if (strcasecmp(f, "ice-ufrag") == 0)
            copy_value(r->ice_ufrag, sizeof(r->ice_ufrag), v, false);
        else if (strcasecmp(f, "ice-pwd") == 0)
            copy_value(r->ice_pwd, sizeof(r->ice_pwd), v, false);
        else if (strcasecmp(f, "fingerprint") == 0 && strncasecmp(r->fingerprint, "sha-256 ", 8))
            copy_value(r->fingerprint, sizeof(r->fingerprint), v, true); /* sha-256 if listed */
        else if (strcasecmp(f, "mid") == 0)
            copy_value(r->mid, sizeof(r->mid), v, false);
        else if (strcasecmp(f, "setup") == 0)
            r->setup = strcasecmp(v, "actpass") == 0   ? SDP_SETUP_ACTPASS
                       : strcasecmp(v, "active") == 0  ? SDP_SETUP_ACTIVE
                       : strcasecmp(v, "passive") == 0 ? SDP_SETUP_PASSIVE
                                                       : SDP_SETUP_NONE;
        else if (strcasecmp(f, "ssrc") == 0 && !r->ssrc) {
            uint64_t ssrc;
            char num[16];
            size_t n = strcspn(v, " ");
            if (n < sizeof(num)) {
                memcpy(num, v, n);
                num[n] = '\0';
                if (str_to_u64(num, UINT32_MAX, &ssrc) == 0)
                    r->ssrc = (uint32_t)ssrc;
            }
        }
    }
}

static bool has_attribute(osip_list_t *attrs, const char *name)
{
    for (int i = 0; !osip_list_eol(attrs, i); i++) {
        sdp_attribute_t *a = osip_list_get(attrs, i);
        if (a->a_att_field && strcasecmp(a->a_att_field, name) == 0)
            return true;
    }
    return false;
}

/* The stream profiles we take: plain RTP, and WebRTC's DTLS-SRTP over ICE (RFC 5764 8). */
static bool proto_plain(const char *proto)
{
    return strcasecmp(proto, "RTP/AVP") == 0;
}

static bool proto_secure(const char *proto)
{
    return strcasecmp(proto, "UDP/TLS/RTP/SAVPF") == 0 || strcasecmp(proto, "UDP/TLS/RTP/SAVP") == 0;
}

/* A WebRTC stream we can run: ICE credentials, a fingerprint, rtcp-mux (one port is all we
 * have), and an a=setup that lets one side be the DTLS client. */
static int check_secure(sdp_message_t *sdp, sdp_media_t *m, struct sdp_offer_result *r)
{
    read_secure(&sdp->a_attributes, r);
    read_secure(&m->a_attributes, r);
    if (strlen(r->ice_ufrag) < 4 || strlen(r->ice_pwd) < 22 || !r->fingerprint[0] ||
        !has_attribute(&m->a_attributes, "rtcp-mux"))
        return -1;
    return 0;
}

/* A token for an m= line that we copy into the answer: short, printable, no spaces. */
static bool token_ok(const char *t, size_t max)
{
    if (!t || !*t || strlen(t) > max)
        return false;
    for (const char *p = t; *p; p++)
        if (*p <= ' ' || *p >= 127)
            return false;
    return true;
}

/* Which of our codecs payload type pt is (its rtpmap map, or none): -1 for none of them. Static
 * types keep their meaning (RFC 3551); dynamic ones are known by their rtpmap. */
static int codec_of(uint64_t pt, const char *map)
{
    for (int c = 0; c < CODEC_COUNT; c++) {
        const struct codec_info *ci = codec_info((enum codec_id)c);
        if (ci->static_pt >= 0 && pt == (uint64_t)ci->static_pt)
            return c;
        if (pt >= 96 && encoding_is(map, ci->name, ci->clock))
            return c;
    }
    return -1;
}

/* Opus > G.722 > PCMU/PCMA (the first of those two in the stream's order). */
static const enum codec_id preference[] = {CODEC_OPUS, CODEC_G722};

/* Reads the codecs of media m into info; returns 0 when one of ours is there. */
static int read_codecs(sdp_media_t *m, struct sdp_info *info)
{
    struct sdp_offer_result *r = &info->r;
    int first_g711 = -1;
    for (int c = 0; c < CODEC_COUNT; c++)
        r->pts[c] = -1;
    r->dtmf_pt = r->dtmf_pt_8k = r->dtmf_pt_48k = -1;
    for (int i = 0; !osip_list_eol(&m->m_payloads, i); i++) {
        uint64_t pt;
        if (str_to_u64(osip_list_get(&m->m_payloads, i), 127, &pt) < 0)
            continue;
        const char *map = rtpmap_of(m, pt);
        int codec = codec_of(pt, map);
        if (codec >= 0 && r->pts[codec] < 0) {
            r->pts[codec] = (int)pt;
            if (first_g711 < 0 && (codec == CODEC_PCMU || codec == CODEC_PCMA))
                first_g711 = codec;
        } else if (codec < 0 && pt >= 96) {
            if (r->dtmf_pt_8k < 0 && encoding_is(map, "telephone-event", 8000))
                r->dtmf_pt_8k = (int)pt;
            else if (r->dtmf_pt_48k < 0 && encoding_is(map, "telephone-event", 48000))
                r->dtmf_pt_48k = (int)pt;
        }
    }
    int chosen = first_g711;
    for (size_t i = sizeof(preference) / sizeof(preference[0]); i-- > 0;)
        if (r->pts[preference[i]] >= 0)
            chosen = (int)preference[i];
    if (chosen < 0)
        return -1;
    r->codec = (enum codec_id)chosen;
    r->audio_pt = r->pts[chosen];
    bool at48 = codec_info(r->codec)->clock == 48000;
    r->dtmf_pt = at48 ? (r->dtmf_pt_48k >= 0 ? r->dtmf_pt_48k : r->dtmf_pt_8k)
                      : (r->dtmf_pt_8k >= 0 ? r->dtmf_pt_8k : r->dtmf_pt_48k);
    return 0;
}

/* The connection address of media m (media level, else session level), as an IPv4 literal. */
static int read_address(sdp_message_t *sdp, sdp_media_t *m, struct sdp_offer_result *r)
{
    sdp_connection_t *c = osip_list_get(&m->c_connections, 0);
    if (!c)
        c = sdp->c_connection;
    if (!c || !c->c_nettype || !c->c_addrtype || !c->c_addr)
        return -1;
    if (strcasecmp(c->c_nettype, "IN") != 0 || strcasecmp(c->c_addrtype, "IP4") != 0)
        return -1;
    struct in_addr a;
    if (inet_pton(AF_INET, c->c_addr, &a) != 1)
        return -1;
    return str_copy(r->remote_ip, sizeof(r->remote_ip), c->c_addr);
}

static int parse_sdp(const char *text, struct sdp_info *info)
{
    memset(info, 0, sizeof(*info));
    info->r.dtmf_pt = info->r.dtmf_pt_8k = info->r.dtmf_pt_48k = -1;
    for (int c = 0; c < CODEC_COUNT; c++)
        info->r.pts[c] = -1;
    size_t len = text ? strlen(text) : 0;
    if (!text || len > SDP_MAX_TEXT)
        return -1;
    /* libosip2's SDP parser reads up to two bytes past the terminator on some malformed lines
     * (an m= line ending in a lone LF at the end of the text: strchr(tmp + 1) after the NUL).
     * Found by fuzz_sdp; a copy with zeroed slack keeps those reads inside our buffer. */
    char *copy = xcalloc(1, len + SDP_SLACK);
    memcpy(copy, text, len);
    sdp_message_t *sdp = NULL;
    if (sdp_message_init(&sdp) != 0)
        die("out of memory in sdp_message_init");
    int rc = -1;
    if (sdp_message_parse(sdp, copy) != 0)
        goto done;
    uint64_t v;
    if (str_to_u64(sdp->o_sess_id, UINT64_MAX, &v) == 0)
        info->sess_id = v;
    if (str_to_u64(sdp->o_sess_version, UINT64_MAX, &v) == 0)
        info->sess_version = v;
    int chosen = -1;
    for (int i = 0; !osip_list_eol(&sdp->m_medias, i); i++) {
        if (i >= SDP_MAX_MEDIA)
            goto done;
        sdp_media_t *m = osip_list_get(&sdp->m_medias, i);
        const char *fmt = osip_list_get(&m->m_payloads, 0);
        if (!token_ok(m->m_media, 15) || !token_ok(m->m_proto, 31) || !token_ok(fmt, 11))
            goto done;
        snprintf(info->r.media_lines[i], sizeof(info->r.media_lines[i]), "%s 0 %s %s", m->m_media,
                 m->m_proto, fmt);
        info->r.media_count = i + 1;
        bool secure = proto_secure(m->m_proto);
        if (chosen >= 0 || strcasecmp(m->m_media, "audio") != 0 ||
            (!proto_plain(m->m_proto) && !secure))
            continue;
        /* The first RTP/AVP audio stream that is not rejected (port 0) is ours: without a codec
         * or an address we support, the offer is unusable. */
        uint64_t port;
        if (str_to_u64(m->m_port, 65535, &port) < 0)
            goto done;
        if (port == 0)
            continue;
        if (read_codecs(m, info) < 0)
            goto done;
        if (secure) { /* ICE finds the address: c= may be anything (0.0.0.0, IP6) */
            if (check_secure(sdp, m, &info->r) < 0)
                goto done;
            info->r.secure = true;
            if (read_address(sdp, m, &info->r) < 0)
                str_copy(info->r.remote_ip, sizeof(info->r.remote_ip), "0.0.0.0");
        } else if (read_address(sdp, m, &info->r) < 0) {
            goto done;
        }
        info->r.remote_port = (int)port;
        read_direction(&sdp->a_attributes, &info->r);
        read_direction(&m->a_attributes, &info->r);
        info->r.audio_index = i;
        chosen = i;
    }
    rc = chosen >= 0 ? 0 : -1;
done:
    sdp_message_free(sdp);
    free(copy);
    return rc;
}

int sdp_parse_offer(const char *sdp, struct sdp_offer_result *out)
{
    struct sdp_info info;
    if (parse_sdp(sdp, &info) < 0)
        return -1;
    *out = info.r;
    return 0;
}

/* Appends to out with snprintf; *len becomes -1 once anything did not fit. */
__attribute__((format(printf, 4, 5))) static void put(char *out, size_t cap, int *len,
                                                      const char *fmt, ...)
{
    if (*len < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, cap - (size_t)*len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - (size_t)*len)
        *len = -1;
    else
        *len += n;
}

/* The rtpmap (and fmtp) lines of codec c as payload type pt. */
static void put_codec(char *out, size_t cap, int *len, enum codec_id c, int pt)
{
    const struct codec_info *ci = codec_info(c);
    put(out, cap, len, "a=rtpmap:%d %s/%d", pt, ci->name, ci->clock);
    if (ci->channels)
        put(out, cap, len, "/%d", ci->channels);
    put(out, cap, len, "\r\n");
    /* Opus: we mix at 16 kHz and send mono (RFC 7587 7: the peer need not send more), and take
     * its in-band FEC to rebuild lost frames. */
    if (c == CODEC_OPUS)
        put(out, cap, len,
            "a=fmtp:%d maxplaybackrate=16000;sprop-maxcapturerate=16000;stereo=0;"
            "sprop-stereo=0;useinbandfec=1\r\n",
            pt);
}

static bool pt_ok(int pt)
{
    return pt >= 0 && pt <= 127 && (pt < 64 || pt > 95); /* 64-95 are RTCP's (RFC 5761) */
}

/* Our ICE-lite and DTLS attributes for a WebRTC stream (RFC 8839, RFC 8842). */
static void put_secure(char *out, size_t cap, int *len, const struct sdp_offer_result *offer,
                       const struct sdp_secure_local *sec, const char *ip, int port)
{
    if (offer->mid[0])
        put(out, cap, len, "a=mid:%s\r\n", offer->mid);
    put(out, cap, len, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s\r\n", sec->ice_ufrag,
        sec->ice_pwd, sec->fingerprint);
    /* We wait for the ClientHello unless the offerer insists on waiting itself. */
    put(out, cap, len, "a=setup:%s\r\na=rtcp-mux\r\n",
        offer->setup == SDP_SETUP_PASSIVE ? "active" : "passive");
    put(out, cap, len, "a=candidate:1 1 udp 2130706431 %s %d typ host\r\na=end-of-candidates\r\n",
        ip, port);
}

int sdp_build_answer(const struct sdp_offer_result *offer, const char *local_ip, int local_port,
                     uint64_t session_id, uint64_t version, char *out, size_t cap)
{
    return sdp_build_answer_secure(offer, local_ip, local_port, session_id, version, NULL, out,
                                   cap);
}

int sdp_build_answer_secure(const struct sdp_offer_result *offer, const char *local_ip,
                            int local_port, uint64_t session_id, uint64_t version,
                            const struct sdp_secure_local *sec, char *out, size_t cap)
{
    struct in_addr a;
    if (!offer || !local_ip || inet_pton(AF_INET, local_ip, &a) != 1 || local_port <= 0 ||
        local_port > 65535 || !out || cap == 0 || (unsigned)offer->codec >= CODEC_COUNT)
        return -1;
    if (offer->secure && (!sec || !sec->ice_ufrag || !sec->ice_pwd || !sec->fingerprint))
        return -1;
    enum codec_id codec = offer->codec;
    const struct codec_info *ci = codec_info(codec);
    /* The offer's number for it (RFC 3264 6.1): what we send is what we take. */
    int pt = offer->audio_pt;
    if (!pt_ok(pt) || (ci->static_pt < 0 ? pt < 96 : pt != ci->static_pt && pt < 96))
        return -1;
    int dtmf =
        offer->dtmf_pt >= 96 && offer->dtmf_pt <= 127 && offer->dtmf_pt != pt ? offer->dtmf_pt : -1;
    int dtmf_rate = dtmf >= 0 && dtmf == offer->dtmf_pt_48k ? 48000 : 8000;
    const char *dir = offer->remote_inactive   ? "inactive"
                      : offer->remote_sendonly ? "recvonly"
                      : offer->remote_recvonly ? "sendonly"
                                               : "sendrecv";
    int count =
        offer->media_count > 0 && offer->media_count <= SDP_MAX_MEDIA ? offer->media_count : 1;
    int audio = offer->media_count > 0 ? offer->audio_index : 0;
    int len = 0;
    put(out, cap, &len, "v=0\r\no=conferenced %llu %llu IN IP4 %s\r\ns=conferenced\r\n",
        (unsigned long long)session_id, (unsigned long long)version, local_ip);
    put(out, cap, &len, "c=IN IP4 %s\r\nt=0 0\r\n", local_ip);
    if (offer->secure) {
        put(out, cap, &len, "a=ice-lite\r\n");
        if (offer->mid[0])
            put(out, cap, &len, "a=group:BUNDLE %s\r\n", offer->mid);
    }
    for (int i = 0; i < count; i++) {
        if (i != audio) {
            put(out, cap, &len, "m=%.63s\r\n", offer->media_lines[i]);
            continue;
        }
        put(out, cap, &len, "m=audio %d %s %d", local_port,
            offer->secure ? "UDP/TLS/RTP/SAVPF" : "RTP/AVP", pt);
        if (dtmf >= 0)
            put(out, cap, &len, " %d", dtmf);
        put(out, cap, &len, "\r\n");
        put_codec(out, cap, &len, codec, pt);
        if (dtmf >= 0)
            put(out, cap, &len, "a=rtpmap:%d telephone-event/%d\r\na=fmtp:%d 0-16\r\n", dtmf,
                dtmf_rate, dtmf);
        put(out, cap, &len, "a=ptime:20\r\na=%s\r\n", dir);
        if (offer->secure) {
            put_secure(out, cap, &len, offer, sec, local_ip, local_port);
            put(out, cap, &len, "a=ssrc:%u cname:conferenced\r\n", (unsigned)sec->ssrc);
        }
    }
    return len;
}

int sdp_build_reanswer(const char *offer, const char *prev_answer, char *out, size_t cap)
{
    struct sdp_info now, before;
    if (parse_sdp(offer, &now) < 0 || parse_sdp(prev_answer, &before) < 0)
        return -1;
    /* The media path keeps its codec for the whole call: a new offer without it is refused. */
    enum codec_id c = before.r.codec;
    if (now.r.pts[c] < 0)
        return -1;
    now.r.codec = c;
    now.r.audio_pt = now.r.pts[c];
    bool at48 = codec_info(c)->clock == 48000;
    now.r.dtmf_pt = at48 ? (now.r.dtmf_pt_48k >= 0 ? now.r.dtmf_pt_48k : now.r.dtmf_pt_8k)
                         : (now.r.dtmf_pt_8k >= 0 ? now.r.dtmf_pt_8k : now.r.dtmf_pt_48k);
    /* A WebRTC call keeps its ICE credentials, certificate, DTLS role and SSRC (our previous
     * answer's); a plain one stays plain. */
    if (now.r.secure != before.r.secure)
        return -1;
    struct sdp_secure_local sec = {before.r.ice_ufrag, before.r.ice_pwd, before.r.fingerprint,
                                   before.r.ssrc};
    if (now.r.secure)
        now.r.setup = before.r.setup == SDP_SETUP_ACTIVE ? SDP_SETUP_PASSIVE : SDP_SETUP_ACTIVE;
    return sdp_build_answer_secure(&now.r, before.r.remote_ip, before.r.remote_port,
                                   before.sess_id, before.sess_version + 1,
                                   now.r.secure ? &sec : NULL, out, cap);
}

int sdp_build_offer(const char *local_ip, int local_port, uint64_t session_id, uint64_t version,
                    char *out, size_t cap)
{
    struct in_addr a;
    if (!local_ip || inet_pton(AF_INET, local_ip, &a) != 1 || local_port <= 0 ||
        local_port > 65535 || !out || cap == 0)
        return -1;
    int len = 0;
    put(out, cap, &len, "v=0\r\no=conferenced %llu %llu IN IP4 %s\r\ns=conferenced\r\n",
        (unsigned long long)session_id, (unsigned long long)version, local_ip);
    put(out, cap, &len, "c=IN IP4 %s\r\nt=0 0\r\n", local_ip);
    put(out, cap, &len, "m=audio %d RTP/AVP 111 9 0 8 101 102\r\n", local_port);
    put_codec(out, cap, &len, CODEC_OPUS, 111);
    put_codec(out, cap, &len, CODEC_G722, 9);
    put_codec(out, cap, &len, CODEC_PCMU, 0);
    put_codec(out, cap, &len, CODEC_PCMA, 8);
    put(out, cap, &len,
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=rtpmap:102 telephone-event/48000\r\n"
        "a=fmtp:102 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n");
    return len;
}

/* What we need from an answer is what we read from an offer (RFC 3264 6): the first audio stream
 * not rejected, the first of our codecs on it (the peer lists the one it chose first), its
 * telephone-event type, address, port and direction. */
int sdp_parse_answer(const char *sdp, struct sdp_offer_result *out)
{
    struct sdp_info info;
    if (parse_sdp(sdp, &info) < 0)
        return -1;
    *out = info.r;
    return 0;
}
