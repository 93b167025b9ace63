/* STUN Binding for ICE-lite, written by hand: an ICE-lite agent needs only to parse one request,
 * check two hashes and build two kinds of response, a few hundred lines, while the packaged ICE
 * stacks (libnice, libjuice, pjnath) are full agents that own their sockets and run their own
 * loops or threads, which the media path's seams (commands in, events out) would have to wrap;
 * so this stays small and pure, and the caller owns the socket. HMAC-SHA1 is OpenSSL's; the CRC-32
 * is ours (zlib's crc32 would be a dependency for ten lines). */
#include "media/stun.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <string.h>

#include "core/bytes.h"

#define MAGIC_COOKIE 0x2112A442u
#define FINGERPRINT_XOR 0x5354554eu
#define HMAC_LEN 20
#define MI_ATTR_LEN (4 + HMAC_LEN)
#define FP_ATTR_LEN 8
#define USERNAME_MAX 512 /* RFC 8489 §14.3: fewer than 513 bytes */
#define PWD_MAX 256      /* RFC 8839: at most 256 ice-chars */

enum {
    TYPE_BINDING_REQUEST = 0x0001,
    TYPE_BINDING_SUCCESS = 0x0101,
    TYPE_BINDING_ERROR = 0x0111,
};

enum {
    ATTR_MAPPED_ADDRESS = 0x0001,
    ATTR_USERNAME = 0x0006,
    ATTR_MESSAGE_INTEGRITY = 0x0008,
    ATTR_ERROR_CODE = 0x0009,
    ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
    ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    ATTR_PRIORITY = 0x0024,
    ATTR_USE_CANDIDATE = 0x0025,
    ATTR_FINGERPRINT = 0x8028,
    ATTR_ICE_CONTROLLED = 0x8029,
    ATTR_ICE_CONTROLLING = 0x802A,
};

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* CRC-32 as ISO HDLC and zlib define it (reflected 0xEDB88320, initial and final XOR all ones),
 * four bits at a time: a 16-entry table can be checked by eye, and a check is about 100 bytes,
 * so the speed of a 256-entry table would buy nothing here. */
static uint32_t crc32_hdlc(const uint8_t *p, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
    };
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc = (crc >> 4) ^ nibble[(crc ^ p[i]) & 0x0f];
        crc = (crc >> 4) ^ nibble[(crc ^ (p[i] >> 4)) & 0x0f];
    }
    return crc ^ 0xffffffffu;
}

/* Short-term credentials: the key is the password itself (OpaqueString leaves ice-chars as they
 * are). False when OpenSSL fails, which then counts as a mismatch. */
static bool hmac_sha1(const char *pwd, const uint8_t *data, size_t len, uint8_t mac[HMAC_LEN])
{
    size_t klen = strlen(pwd);
    assert(klen <= PWD_MAX);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!HMAC(EVP_sha1(), pwd, (int)klen, data, len, md, &md_len) || md_len != HMAC_LEN)
        return false;
    memcpy(mac, md, HMAC_LEN);
    return true;
}

bool stun_is_message(const uint8_t *buf, size_t n)
{
    if (!buf || n < STUN_HEADER_LEN || (buf[0] & 0xc0) != 0)
        return false;
    size_t len = rd16(buf + 2);
    return len % 4 == 0 && len == n - STUN_HEADER_LEN && rd32(buf + 4) == MAGIC_COOKIE;
}

/* What one walk over the attributes found: offsets of attribute headers (0: absent, as no
 * attribute starts inside the header) and the request's values, first occurrences only. */
struct scan {
    size_t mi, fp;
    size_t username, username_len; /* offset of the value */
    bool has_priority;
    struct stun_binding b;
};

static void note_unknown(struct stun_binding *b, uint16_t type)
{
    for (size_t i = 0; i < b->unknown_count; i++)
        if (b->unknown[i] == type)
            return;
    if (b->unknown_count < STUN_MAX_UNKNOWN)
        b->unknown[b->unknown_count++] = type;
}

/* One attribute before MESSAGE-INTEGRITY: the ones ICE uses must have their fixed sizes; other
 * known comprehension-required ones are unexpected in a request and ignored (RFC 8489 §6.3), as
 * are unknown comprehension-optional ones (0x8000 and up); unknown comprehension-required ones
 * are noted. -1 when malformed. */
static int scan_attr(struct scan *s, uint16_t type, const uint8_t *v, size_t len, size_t voff)
{
    struct stun_binding *b = &s->b;
    switch (type) {
    case ATTR_USERNAME:
        if (len > USERNAME_MAX)
            return -1;
        if (!s->username) {
            s->username = voff;
            s->username_len = len;
        }
        return 0;
    case ATTR_PRIORITY:
        if (len != 4)
            return -1;
        if (!s->has_priority)
            b->priority = rd32(v);
        s->has_priority = true;
        return 0;
    case ATTR_USE_CANDIDATE:
        if (len != 0)
            return -1;
        b->use_candidate = true;
        return 0;
    case ATTR_ICE_CONTROLLING:
    case ATTR_ICE_CONTROLLED:
        if (len != 8)
            return -1;
        if (!b->ice_controlling && !b->ice_controlled)
            b->tie_breaker = rd64(v);
        if (type == ATTR_ICE_CONTROLLING)
            b->ice_controlling = true;
        else
            b->ice_controlled = true;
        return 0;
    case ATTR_MAPPED_ADDRESS:
    case ATTR_ERROR_CODE:
    case ATTR_UNKNOWN_ATTRIBUTES:
    case ATTR_XOR_MAPPED_ADDRESS:
        return 0;
    default:
        if (type < 0x8000)
            note_unknown(b, type);
        return 0;
    }
}

/* Walks the attributes of a message that passed stun_is_message(). Each attribute's padded
 * length is checked against what is left before anything in it is read, so no offset can pass
 * n; since n - 20 is a multiple of 4 and so is every step, an attribute header always fits. */
static int scan_message(const uint8_t *buf, size_t n, struct scan *s)
{
    memset(s, 0, sizeof(*s));
    if (n > STUN_MAX_MESSAGE)
        return STUN_MALFORMED;
    size_t off = STUN_HEADER_LEN;
    while (off < n) {
        if (s->fp || n - off < 4)
            return STUN_MALFORMED; /* FINGERPRINT must be the last attribute */
        uint16_t type = rd16(buf + off);
        size_t len = rd16(buf + off + 2);
        if (pad4(len) > n - off - 4)
            return STUN_MALFORMED;
        if (type == ATTR_FINGERPRINT) {
            if (len != 4)
                return STUN_MALFORMED;
            s->fp = off;
        } else if (s->mi) {
            /* after MESSAGE-INTEGRITY: ignored (RFC 8489 §14.5) */
        } else if (type == ATTR_MESSAGE_INTEGRITY) {
            if (len != HMAC_LEN)
                return STUN_MALFORMED;
            s->mi = off;
        } else if (scan_attr(s, type, buf + off + 4, len, off + 4) < 0) {
            return STUN_MALFORMED;
        }
        off += 4 + pad4(len);
    }
    if (s->b.ice_controlling && s->b.ice_controlled)
        return STUN_MALFORMED;
    return STUN_OK;
}

/* FINGERPRINT is last, so the header's length already ends at it: the CRC covers the message
 * as it is, up to the attribute. */
static bool fingerprint_ok(const uint8_t *buf, size_t fp)
{
    return (crc32_hdlc(buf, fp) ^ FINGERPRINT_XOR) == rd32(buf + fp + 4);
}

/* The HMAC covers the message up to MESSAGE-INTEGRITY with the header's length ending at it
 * (not at a FINGERPRINT after it): a copy with that length is hashed, as buf is the caller's. */
static bool integrity_ok(const uint8_t *buf, size_t mi, const char *pwd)
{
    uint8_t copy[STUN_MAX_MESSAGE], mac[HMAC_LEN];
    assert(mi <= sizeof(copy));
    memcpy(copy, buf, mi);
    wr16(copy + 2, (uint16_t)(mi + MI_ATTR_LEN - STUN_HEADER_LEN));
    if (!hmac_sha1(pwd, copy, mi, mac))
        return false;
    return CRYPTO_memcmp(mac, buf + mi + 4, HMAC_LEN) == 0;
}

int stun_verify_message(const uint8_t *buf, size_t n, const char *pwd)
{
    if (!stun_is_message(buf, n))
        return STUN_NOT_STUN;
    struct scan s;
    int rc = scan_message(buf, n, &s);
    if (rc != STUN_OK)
        return rc;
    if (s.fp && !fingerprint_ok(buf, s.fp))
        return STUN_BAD_FINGERPRINT;
    if (!pwd)
        return STUN_OK;
    if (!s.mi)
        return STUN_NO_CREDENTIALS;
    return integrity_ok(buf, s.mi, pwd) ? STUN_OK : STUN_UNAUTHORIZED;
}

/* The order of RFC 8489 §6.3 and §9.1.3: the class and method, the structure, the FINGERPRINT
 * (a mismatch means the packet is not STUN: dropped), the credentials being there (400), the
 * USERNAME naming us and the HMAC (401), and only then unknown attributes (420), so that an
 * unauthenticated sender learns nothing. The ufrag is public (it is in the SDP): it is compared
 * plainly before the HMAC is computed. */
int stun_parse_binding(const uint8_t *buf, size_t n, const char *local_ufrag, const char *local_pwd,
                       struct stun_binding *out)
{
    assert(local_ufrag && local_pwd && out);
    memset(out, 0, sizeof(*out));
    if (!stun_is_message(buf, n))
        return STUN_NOT_STUN;
    memcpy(out->txid, buf + 8, sizeof(out->txid));
    if (rd16(buf) != TYPE_BINDING_REQUEST)
        return STUN_NOT_BINDING_REQUEST;
    struct scan s;
    int rc = scan_message(buf, n, &s);
    if (rc != STUN_OK)
        return rc;
    if (s.fp && !fingerprint_ok(buf, s.fp))
        return STUN_BAD_FINGERPRINT;
    if (!s.username || !s.mi)
        return STUN_NO_CREDENTIALS;
    size_t ulen = strlen(local_ufrag);
    const uint8_t *user = buf + s.username;
    if (ulen == 0 || s.username_len <= ulen + 1 || memcmp(user, local_ufrag, ulen) != 0 ||
        user[ulen] != ':')
        return STUN_UNAUTHORIZED;
    if (!integrity_ok(buf, s.mi, local_pwd))
        return STUN_UNAUTHORIZED;
    if (s.b.unknown_count) {
        memcpy(out->unknown, s.b.unknown, sizeof(out->unknown));
        out->unknown_count = s.b.unknown_count;
        return STUN_UNKNOWN_ATTRIBUTE;
    }
    memcpy(s.b.txid, out->txid, sizeof(s.b.txid));
    s.b.remote_ufrag = (const char *)user + ulen + 1;
    s.b.remote_ufrag_len = s.username_len - ulen - 1;
    *out = s.b;
    return STUN_OK;
}

int stun_reply_code(int result, const struct stun_binding *b)
{
    switch (result) {
    case STUN_OK:
        return b && b->ice_controlled ? 487 : 200;
    case STUN_MALFORMED:
    case STUN_NO_CREDENTIALS:
        return 400;
    case STUN_UNAUTHORIZED:
        return 401;
    case STUN_UNKNOWN_ATTRIBUTE:
        return 420;
    default:
        return 0;
    }
}

size_t stun_append_integrity(uint8_t *buf, size_t len, size_t cap, const char *pwd)
{
    if (!buf || len < STUN_HEADER_LEN || (len - STUN_HEADER_LEN) % 4 != 0 || len > STUN_MAX_MESSAGE)
        return 0;
    size_t total = len + (pwd ? MI_ATTR_LEN : 0) + FP_ATTR_LEN;
    if (total > cap || total > STUN_MAX_MESSAGE)
        return 0;
    if (pwd) {
        uint8_t mac[HMAC_LEN];
        wr16(buf + 2, (uint16_t)(len + MI_ATTR_LEN - STUN_HEADER_LEN));
        if (!hmac_sha1(pwd, buf, len, mac))
            return 0;
        wr16(buf + len, ATTR_MESSAGE_INTEGRITY);
        wr16(buf + len + 2, HMAC_LEN);
        memcpy(buf + len + 4, mac, HMAC_LEN);
        len += MI_ATTR_LEN;
    }
    wr16(buf + 2, (uint16_t)(len + FP_ATTR_LEN - STUN_HEADER_LEN));
    uint32_t crc = crc32_hdlc(buf, len) ^ FINGERPRINT_XOR;
    wr16(buf + len, ATTR_FINGERPRINT);
    wr16(buf + len + 2, 4);
    wr32(buf + len + 4, crc);
    return len + FP_ATTR_LEN;
}

static void write_header(uint8_t *out, uint16_t type, const uint8_t txid[12])
{
    wr16(out, type);
    wr16(out + 2, 0);
    wr32(out + 4, MAGIC_COOKIE);
    memcpy(out + 8, txid, 12);
}

size_t stun_build_binding_success(uint8_t *out, size_t cap, const uint8_t txid[12],
                                  const struct sockaddr_in *from, const char *local_pwd)
{
    assert(txid && from && local_pwd && from->sin_family == AF_INET);
    const size_t len = STUN_HEADER_LEN + 12;
    if (!out || cap < len)
        return 0;
    write_header(out, TYPE_BINDING_SUCCESS, txid);
    uint8_t *a = out + STUN_HEADER_LEN;
    wr16(a, ATTR_XOR_MAPPED_ADDRESS);
    wr16(a + 2, 8);
    a[4] = 0;
    a[5] = 0x01; /* IPv4 */
    wr16(a + 6, (uint16_t)(ntohs(from->sin_port) ^ (MAGIC_COOKIE >> 16)));
    wr32(a + 8, ntohl(from->sin_addr.s_addr) ^ MAGIC_COOKIE);
    return stun_append_integrity(out, len, cap, local_pwd);
}

static const char *reason_phrase(int code)
{
    switch (code) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthenticated"; /* RFC 8489's name for it (RFC 5389: Unauthorized) */
    case 420:
        return "Unknown Attribute";
    case 487:
        return "Role Conflict";
    default:
        return "";
    }
}

size_t stun_build_binding_error(uint8_t *out, size_t cap, const uint8_t txid[12], int code,
                                const char *local_pwd, const uint16_t *unknown, size_t count)
{
    assert(txid);
    assert(!(local_pwd && (code == 400 || code == 401)));
    if (!out || code < 300 || code > 699)
        return 0;
    if (code != 420)
        count = 0;
    else if (count == 0 || !unknown)
        return 0;
    if (count > STUN_MAX_UNKNOWN)
        count = STUN_MAX_UNKNOWN;
    const char *reason = reason_phrase(code);
    size_t rlen = strlen(reason);
    size_t len = STUN_HEADER_LEN + 4 + pad4(4 + rlen) + (count ? 4 + pad4(2 * count) : 0);
    if (len > cap)
        return 0;
    memset(out, 0, len);
    write_header(out, TYPE_BINDING_ERROR, txid);
    uint8_t *a = out + STUN_HEADER_LEN;
    wr16(a, ATTR_ERROR_CODE);
    wr16(a + 2, (uint16_t)(4 + rlen));
    a[6] = (uint8_t)(code / 100); /* the class, under 21 reserved bits */
    a[7] = (uint8_t)(code % 100);
    memcpy(a + 8, reason, rlen);
    a += 4 + pad4(4 + rlen);
    if (count) {
        wr16(a, ATTR_UNKNOWN_ATTRIBUTES);
        wr16(a + 2, (uint16_t)(2 * count));
        for (size_t i = 0; i < count; i++)
            wr16(a + 4 + 2 * i, unknown[i]);
    }
    return stun_append_integrity(out, len, cap, local_pwd);
}

void stun_make_credentials(char ufrag[STUN_UFRAG_LEN + 1], char pwd[STUN_PWD_LEN + 1])
{
    static const char ice_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t r[STUN_UFRAG_LEN + STUN_PWD_LEN];
    randombytes_buf(r, sizeof(r));
    for (size_t i = 0; i < STUN_UFRAG_LEN; i++)
        ufrag[i] = ice_chars[r[i] & 63]; /* 64 characters: uniform */
    for (size_t i = 0; i < STUN_PWD_LEN; i++)
        pwd[i] = ice_chars[r[STUN_UFRAG_LEN + i] & 63];
    ufrag[STUN_UFRAG_LEN] = '\0';
    pwd[STUN_PWD_LEN] = '\0';
    sodium_memzero(r, sizeof(r));
}
