/* STUN for ICE-lite: the RFC 5769 test vectors (the sample request's MESSAGE-INTEGRITY and
 * FINGERPRINT, reproduced byte for byte and validated; the IPv4 response's XOR-MAPPED-ADDRESS),
 * every bit of the request flipped, truncations at every length, bad attribute lengths and
 * order, usernames for another ufrag, ICE attributes (USE-CANDIDATE, ICE-CONTROLLING, roles),
 * attributes after MESSAGE-INTEGRITY, unknown attributes, messages that are not Binding
 * requests, the answers (success and error responses) and credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/stun.h"

/* RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME
 * "evtj:h6vY", MESSAGE-INTEGRITY and FINGERPRINT (its padding is spaces). */
static const uint8_t rfc_request[108] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};
/* Where its attributes start (the last is FINGERPRINT, ending at 108). */
static const size_t rfc_attr_off[] = {20, 40, 48, 60, 76, 100};
#define RFC_MI_OFF 76

/* RFC 5769 §2.2: the success response, SOFTWARE "test vector", mapped address 192.0.2.1:32853. */
static const uint8_t rfc_response[80] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

static const uint8_t rfc_txid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                     0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
#define RFC_UFRAG "evtj"
#define RFC_PWD "VOkJxbRl1RmTxUk/WvJxBt"

/* ---- helpers ---- */

/* Parses a copy in a buffer of exactly n bytes, so ASan sees any read past the end; the remote
 * ufrag must point inside the copy, and is pointed back into m. */
static int parse_exact(const uint8_t *m, size_t n, const char *ufrag, const char *pwd,
                       struct stun_binding *b)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, m, n);
    int rc = stun_parse_binding(copy, n, ufrag, pwd, b);
    if (rc == STUN_OK) {
        const uint8_t *u = (const uint8_t *)b->remote_ufrag;
        assert_true(u > copy && u + b->remote_ufrag_len <= copy + n);
        b->remote_ufrag = (const char *)m + (u - copy);
    } else {
        assert_null(b->remote_ufrag);
        assert_false(b->use_candidate || b->ice_controlling || b->ice_controlled);
        assert_int_equal(b->priority, 0);
    }
    free(copy);
    return rc;
}

static int verify_exact(const uint8_t *m, size_t n, const char *pwd)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, m, n);
    int rc = stun_verify_message(copy, n, pwd);
    free(copy);
    return rc;
}

/* CRC-32 bit by bit: a second implementation, to re-fingerprint messages a test has changed. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Rewrites the FINGERPRINT that ends m. */
static void refingerprint(uint8_t *m, size_t n)
{
    assert_int_equal(get16(m + n - 8), 0x8028);
    uint32_t c = crc_ref(m, n - 8) ^ 0x5354554eu;
    m[n - 4] = (uint8_t)(c >> 24);
    m[n - 3] = (uint8_t)(c >> 16);
    m[n - 2] = (uint8_t)(c >> 8);
    m[n - 1] = (uint8_t)c;
}

/* The value of the first attribute of that type (a walk of our own), or NULL. */
static const uint8_t *find_attr(const uint8_t *m, size_t n, uint16_t type, size_t *len)
{
    for (size_t off = 20; off + 4 <= n;) {
        size_t l = get16(m + off + 2);
        if (get16(m + off) == type) {
            *len = l;
            return m + off + 4;
        }
        off += 4 + ((l + 3) & ~(size_t)3);
    }
    return NULL;
}

/* Messages put together attribute by attribute. */
struct msg {
    uint8_t b[2048];
    size_t n;
};

static void msg_start(struct msg *m, uint16_t type)
{
    memset(m, 0, sizeof(*m));
    put16(m->b, type);
    memcpy(m->b + 4, (const uint8_t[]){0x21, 0x12, 0xa4, 0x42}, 4);
    for (int i = 0; i < 12; i++)
        m->b[8 + i] = (uint8_t)(0xa0 + i);
    m->n = 20;
}

/* Appends an attribute (zero padding) and sets the header's length. */
static void msg_attr(struct msg *m, uint16_t type, const void *v, size_t len)
{
    assert_true(m->n + 4 + len + 3 <= sizeof(m->b));
    put16(m->b + m->n, type);
    put16(m->b + m->n + 2, (uint16_t)len);
    if (len)
        memcpy(m->b + m->n + 4, v, len);
    m->n += 4 + ((len + 3) & ~(size_t)3);
    put16(m->b + 2, (uint16_t)(m->n - 20));
}

static void msg_str(struct msg *m, uint16_t type, const char *s)
{
    msg_attr(m, type, s, strlen(s));
}

static void msg_u32(struct msg *m, uint16_t type, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    msg_attr(m, type, b, 4);
}

static void msg_u64(struct msg *m, uint16_t type, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    msg_attr(m, type, b, 8);
}

static void msg_sign(struct msg *m, const char *pwd)
{
    size_t n = stun_append_integrity(m->b, m->n, sizeof(m->b), pwd);
    assert_int_not_equal(n, 0);
    m->n = n;
}

/* What a browser sends to nominate: USERNAME, a comprehension-optional attribute of its own
 * (GOOG-NETWORK-INFO), ICE-CONTROLLING, USE-CANDIDATE, PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT. */
static void browser_request(struct msg *m, const char *username, const char *pwd)
{
    msg_start(m, 0x0001);
    msg_str(m, 0x0006, username);
    msg_u32(m, 0xc057, 0x0001000a);
    msg_u64(m, 0x802a, 0x0102030405060708ull);
    msg_attr(m, 0x0025, NULL, 0);
    msg_u32(m, 0x0024, 0x6e7f1effu);
    msg_sign(m, pwd);
}

/* ---- the header ---- */

static void test_is_message(void **state)
{
    uint8_t m[108];
    memcpy(m, rfc_request, sizeof(m));
    assert_true(stun_is_message(m, 108));
    assert_true(stun_is_message(rfc_response, sizeof(rfc_response)));
    for (size_t n = 0; n < 108; n++)
        assert_false(stun_is_message(m, n)); /* the length says 88 */
    assert_false(stun_is_message(NULL, 108));
    m[0] = 0x40; /* the first two bits: RTP, DTLS and the rest are not STUN */
    assert_false(stun_is_message(m, 108));
    m[0] = 0x80;
    assert_false(stun_is_message(m, 108));
    m[0] = 0x00;
    m[4] = 0x21 ^ 0x01; /* the magic cookie */
    assert_false(stun_is_message(m, 108));
    m[4] = 0x21;
    m[3] = 0x57; /* a length that is not a multiple of 4 */
    assert_false(stun_is_message(m, 107));
    m[3] = 0x00; /* a header alone */
    assert_true(stun_is_message(m, 20));
}

/* ---- RFC 5769 ---- */

static void test_rfc5769_request(void **state)
{
    struct stun_binding b;
    assert_int_equal(parse_exact(rfc_request, 108, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_memory_equal(b.txid, rfc_txid, 12);
    assert_int_equal(b.priority, 0x6e0001ffu);
    assert_true(b.ice_controlled);
    assert_false(b.ice_controlling);
    assert_true(b.tie_breaker == 0x932ff9b151263b36ull);
    assert_false(b.use_candidate);
    assert_int_equal(b.remote_ufrag_len, 4);
    assert_memory_equal(b.remote_ufrag, "h6vY", 4);
    assert_ptr_equal(b.remote_ufrag, (const char *)rfc_request + 69);
    assert_int_equal(b.unknown_count, 0);
    assert_int_equal(verify_exact(rfc_request, 108, RFC_PWD), STUN_OK);
    /* it says ICE-CONTROLLED, and a lite agent is the controlled one */
    assert_int_equal(stun_reply_code(STUN_OK, &b), 487);

    /* the wrong password, a longer or shorter one, or the username's other half as ufrag */
    assert_int_equal(parse_exact(rfc_request, 108, RFC_UFRAG, "VOkJxbRl1RmTxUk/WvJxBu", &b),
                     STUN_UNAUTHORIZED);
    assert_memory_equal(b.txid, rfc_txid, 12); /* still there to answer with */
    assert_int_equal(parse_exact(rfc_request, 108, RFC_UFRAG, RFC_PWD "x", &b), STUN_UNAUTHORIZED);
    assert_int_equal(parse_exact(rfc_request, 108, RFC_UFRAG, "VOkJxbRl1RmTxUk/WvJxB", &b),
                     STUN_UNAUTHORIZED);
    assert_int_equal(parse_exact(rfc_request, 108, "h6vY", RFC_PWD, &b), STUN_UNAUTHORIZED);
    assert_int_equal(stun_reply_code(STUN_UNAUTHORIZED, &b), 401);
    assert_int_equal(verify_exact(rfc_request, 108, "wrong"), STUN_UNAUTHORIZED);

    /* a wrong FINGERPRINT: dropped before anything else is looked at */
    uint8_t m[108];
    memcpy(m, rfc_request, 108);
    m[107] ^= 0x01;
    assert_int_equal(parse_exact(m, 108, RFC_UFRAG, RFC_PWD, &b), STUN_BAD_FINGERPRINT);
    assert_int_equal(parse_exact(m, 108, RFC_UFRAG, "wrong", &b), STUN_BAD_FINGERPRINT);
    assert_int_equal(stun_reply_code(STUN_BAD_FINGERPRINT, &b), 0);
    assert_int_equal(verify_exact(m, 108, NULL), STUN_BAD_FINGERPRINT);

    /* without its FINGERPRINT it is still a valid request */
    memcpy(m, rfc_request, 108);
    put16(m + 2, 100 - 20);
    assert_int_equal(parse_exact(m, 100, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
}

/* Any one bit changed before the FINGERPRINT, with the FINGERPRINT made right again: never
 * accepted; in a value or padding (the transaction id, any attribute's content, the HMAC
 * itself), it is always the MESSAGE-INTEGRITY that refuses it. Without the re-fingerprinting,
 * the FINGERPRINT does. */
static void test_rfc5769_bit_flips(void **state)
{
    uint8_t m[108];
    struct stun_binding b;
    for (size_t i = 0; i < 100; i++) {
        bool attr_header = i < 8; /* the type, length and cookie */
        for (size_t k = 0; k < sizeof(rfc_attr_off) / sizeof(*rfc_attr_off); k++)
            attr_header |= i >= rfc_attr_off[k] && i < rfc_attr_off[k] + 4;
        for (int bit = 0; bit < 8; bit++) {
            memcpy(m, rfc_request, 108);
            m[i] ^= (uint8_t)(1u << bit);
            int rc = parse_exact(m, 108, RFC_UFRAG, RFC_PWD, &b);
            assert_int_not_equal(rc, STUN_OK);
            if (!attr_header)
                assert_int_equal(rc, STUN_BAD_FINGERPRINT);
            refingerprint(m, 108);
            rc = parse_exact(m, 108, RFC_UFRAG, RFC_PWD, &b);
            assert_int_not_equal(rc, STUN_OK);
            if (!attr_header)
                assert_int_equal(rc, STUN_UNAUTHORIZED);
        }
    }
}

static void test_rfc5769_response(void **state)
{
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(32853)};
    assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &from.sin_addr), 1);
    uint8_t out[STUN_RESPONSE_MAX];
    size_t n = stun_build_binding_success(out, sizeof(out), rfc_txid, &from, RFC_PWD);
    assert_int_equal(n, 64);
    /* header: a Binding success response, 44 bytes of attributes, the request's txid */
    assert_memory_equal(out, ((const uint8_t[]){0x01, 0x01, 0x00, 0x2c}), 4);
    assert_memory_equal(out + 4, rfc_response + 4, 16);
    /* XOR-MAPPED-ADDRESS exactly as the vector has it */
    assert_memory_equal(out + 20, rfc_response + 36, 12);
    assert_memory_equal(
        out + 20,
        ((const uint8_t[]){0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43}),
        12);
    /* then MESSAGE-INTEGRITY and FINGERPRINT, which our own checks accept */
    assert_int_equal(get16(out + 32), 0x0008);
    assert_int_equal(get16(out + 34), 20);
    assert_int_equal(get16(out + 56), 0x8028);
    assert_int_equal(get16(out + 58), 4);
    assert_int_equal(verify_exact(out, n, RFC_PWD), STUN_OK);
    assert_int_equal(verify_exact(out, n, NULL), STUN_OK);
    assert_int_equal(verify_exact(out, n, "VOkJxbRl1RmTxUk/WvJxBT"), STUN_UNAUTHORIZED);
    /* the fingerprint agrees with an independent CRC */
    uint8_t again[64];
    memcpy(again, out, 64);
    refingerprint(again, 64);
    assert_memory_equal(again, out, 64);
    /* the vector itself passes the same checks; a response is not a request to answer */
    assert_int_equal(verify_exact(rfc_response, sizeof(rfc_response), RFC_PWD), STUN_OK);
    struct stun_binding b;
    assert_int_equal(parse_exact(rfc_response, sizeof(rfc_response), RFC_UFRAG, RFC_PWD, &b),
                     STUN_NOT_BINDING_REQUEST);
    /* one bit off anywhere in ours, but in FINGERPRINT's type (which would make it an unknown
     * attribute after MESSAGE-INTEGRITY: ignored, and then the message has no FINGERPRINT) */
    for (size_t i = 0; i < n; i++) {
        if (i == 56 || i == 57)
            continue;
        memcpy(again, out, 64);
        again[i] ^= 0x10;
        assert_int_not_equal(verify_exact(again, n, RFC_PWD), STUN_OK);
    }
}

/* Both vectors again, from their attributes before MESSAGE-INTEGRITY: what we append is their
 * MESSAGE-INTEGRITY and FINGERPRINT byte for byte. */
static void test_rfc5769_append(void **state)
{
    uint8_t m[128];
    memcpy(m, rfc_request, RFC_MI_OFF);
    assert_int_equal(stun_append_integrity(m, RFC_MI_OFF, sizeof(m), RFC_PWD), 108);
    assert_memory_equal(m, rfc_request, 108);
    memcpy(m, rfc_response, 48);
    assert_int_equal(stun_append_integrity(m, 48, sizeof(m), RFC_PWD), 80);
    assert_memory_equal(m, rfc_response, 80);
    /* no room, or not a header and whole attributes */
    memcpy(m, rfc_request, RFC_MI_OFF);
    assert_int_equal(stun_append_integrity(m, RFC_MI_OFF, 107, RFC_PWD), 0);
    assert_int_equal(stun_append_integrity(m, RFC_MI_OFF, RFC_MI_OFF + 8, NULL), RFC_MI_OFF + 8);
    assert_int_equal(stun_append_integrity(m, 19, sizeof(m), RFC_PWD), 0);
    assert_int_equal(stun_append_integrity(m, 22, sizeof(m), RFC_PWD), 0);
    assert_int_equal(stun_append_integrity(NULL, 20, sizeof(m), RFC_PWD), 0);
}

/* ---- structure ---- */

static void test_truncated(void **state)
{
    struct stun_binding b;
    uint8_t m[108];
    /* cut anywhere, the header's length no longer matches: not STUN */
    for (size_t n = 0; n < 108; n++)
        assert_int_equal(parse_exact(rfc_request, n, RFC_UFRAG, RFC_PWD, &b), STUN_NOT_STUN);
    /* cut with the length made to match: inside an attribute it is malformed; between two, the
     * credentials are missing until MESSAGE-INTEGRITY is whole */
    for (size_t n = 20; n < 108; n += 4) {
        memcpy(m, rfc_request, n);
        put16(m + 2, (uint16_t)(n - 20));
        bool boundary = false;
        for (size_t k = 0; k < sizeof(rfc_attr_off) / sizeof(*rfc_attr_off); k++)
            boundary |= n == rfc_attr_off[k];
        int expect = !boundary ? STUN_MALFORMED : n <= RFC_MI_OFF ? STUN_NO_CREDENTIALS : STUN_OK;
        assert_int_equal(parse_exact(m, n, RFC_UFRAG, RFC_PWD, &b), expect);
        assert_int_equal(stun_reply_code(expect, &b), expect == STUN_OK ? 487 : 400);
        assert_int_equal(verify_exact(m, n, NULL), boundary ? STUN_OK : STUN_MALFORMED);
    }
}

static void test_bad_attribute_lengths(void **state)
{
    struct msg m;
    struct stun_binding b;
    browser_request(&m, "evtj:peer", RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);

    /* an attribute longer than what is left, by one byte or by 64 KB */
    uint8_t bad[2048];
    memcpy(bad, m.b, m.n);
    put16(bad + 22, 0x00ff);
    assert_int_equal(parse_exact(bad, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);
    put16(bad + 22, 0xffff);
    assert_int_equal(parse_exact(bad, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);
    memcpy(bad, m.b, m.n);
    put16(bad + m.n - 6, 5); /* FINGERPRINT: 5 bytes need 8 with padding */
    assert_int_equal(parse_exact(bad, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);

    /* the fixed sizes: PRIORITY 4, USE-CANDIDATE 0, ICE-CONTROLLING 8, MI 20, FINGERPRINT 4 */
    static const struct {
        uint16_t type;
        size_t len;
    } sizes[] = {{0x0024, 3}, {0x0024, 8},  {0x0025, 4}, {0x802a, 4}, {0x802a, 12},
                 {0x8029, 7}, {0x0008, 16}, {0x8028, 8}, {0x8028, 0}};
    uint8_t zeros[32] = {0};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        msg_start(&m, 0x0001);
        msg_str(&m, 0x0006, "evtj:peer");
        msg_attr(&m, sizes[i].type, zeros, sizes[i].len);
        msg_sign(&m, RFC_PWD);
        assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);
        assert_int_equal(stun_reply_code(STUN_MALFORMED, &b), 400);
    }

    /* FINGERPRINT not last */
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:peer");
    msg_sign(&m, RFC_PWD);
    msg_u32(&m, 0x8022, 0x41424344);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:peer");
    msg_u32(&m, 0x8028, 0);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);

    /* USERNAME: 512 bytes is the most */
    char user[520];
    memcpy(user, "evtj:", 5);
    memset(user + 5, 'u', sizeof(user) - 5);
    user[512] = '\0';
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, user);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_int_equal(b.remote_ufrag_len, 507);
    user[512] = 'u';
    user[513] = '\0';
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, user);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);

    /* both roles at once */
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:peer");
    msg_u64(&m, 0x802a, 1);
    msg_u64(&m, 0x8029, 2);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);

    /* STUN_MAX_MESSAGE bytes is the most */
    static const uint8_t big[STUN_MAX_MESSAGE];
    for (size_t total = STUN_MAX_MESSAGE; total <= STUN_MAX_MESSAGE + 4; total += 4) {
        msg_start(&m, 0x0001);
        msg_str(&m, 0x0006, "evtj:peer");
        msg_attr(&m, 0x8123, big, total - m.n - 4 - 24 - 8);
        size_t n = stun_append_integrity(m.b, m.n, sizeof(m.b), RFC_PWD);
        if (total == STUN_MAX_MESSAGE) {
            assert_int_equal(n, total);
            assert_int_equal(parse_exact(m.b, n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
        } else {
            assert_int_equal(n, 0); /* we do not build one either */
            /* as a sender would: a MESSAGE-INTEGRITY and a FINGERPRINT (of zeros) */
            msg_attr(&m, 0x0008, big, 20);
            msg_attr(&m, 0x8028, big, 4);
            assert_int_equal(m.n, total);
            assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_MALFORMED);
            assert_int_equal(verify_exact(m.b, m.n, NULL), STUN_MALFORMED);
        }
    }
}

/* ---- authentication ---- */

static void test_username(void **state)
{
    struct msg m;
    struct stun_binding b;
    browser_request(&m, "evtj:Ab3+", RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_int_equal(b.remote_ufrag_len, 4);
    assert_memory_equal(b.remote_ufrag, "Ab3+", 4);

    /* signed with the right password, but not for our ufrag */
    static const char *others[] = {"abcd:Ab3+", "evtjx:Ab3+", "evt:Ab3+", "evtj", "evtj:",
                                   "Evtj:Ab3+", "evtjAb3+",   ":evtj",    "",     "Ab3+:evtj"};
    for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++) {
        browser_request(&m, others[i], RFC_PWD);
        assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_UNAUTHORIZED);
    }
    /* our ufrag, another password */
    browser_request(&m, "evtj:Ab3+", "VOkJxbRl1RmTxUk/WvJxBu");
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_UNAUTHORIZED);

    /* the first USERNAME counts */
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:first");
    msg_str(&m, 0x0006, "evtj:second");
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_int_equal(b.remote_ufrag_len, 5);
    assert_memory_equal(b.remote_ufrag, "first", 5);

    /* no USERNAME, no MESSAGE-INTEGRITY, or neither: 400 */
    msg_start(&m, 0x0001);
    msg_u32(&m, 0x0024, 1);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_NO_CREDENTIALS);
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_sign(&m, NULL);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_NO_CREDENTIALS);
    assert_int_equal(verify_exact(m.b, m.n, RFC_PWD), STUN_NO_CREDENTIALS);
    msg_start(&m, 0x0001);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_NO_CREDENTIALS);
    assert_int_equal(stun_reply_code(STUN_NO_CREDENTIALS, &b), 400);
    /* a USERNAME after MESSAGE-INTEGRITY does not count */
    msg_start(&m, 0x0001);
    msg_sign(&m, RFC_PWD);
    m.n -= 8;
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_sign(&m, NULL);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_NO_CREDENTIALS);
}

/* ---- ICE attributes ---- */

static void test_ice_attributes(void **state)
{
    struct msg m;
    struct stun_binding b;
    browser_request(&m, "evtj:Ab3+", RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_true(b.use_candidate);
    assert_true(b.ice_controlling);
    assert_false(b.ice_controlled);
    assert_true(b.tie_breaker == 0x0102030405060708ull);
    assert_int_equal(b.priority, 0x6e7f1effu);
    assert_memory_equal(b.txid, m.b + 8, 12);
    assert_int_equal(b.unknown_count, 0); /* GOOG-NETWORK-INFO is comprehension-optional */
    assert_int_equal(stun_reply_code(STUN_OK, &b), 200);

    /* a check that does not nominate, and one without PRIORITY or a role (an old agent) */
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_u64(&m, 0x802a, 7);
    msg_u32(&m, 0x0024, 0x7e0000ffu);
    msg_u32(&m, 0x0024, 5); /* a second PRIORITY: ignored */
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_false(b.use_candidate);
    assert_true(b.ice_controlling);
    assert_true(b.tie_breaker == 7);
    assert_int_equal(b.priority, 0x7e0000ffu);
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_false(b.use_candidate || b.ice_controlling || b.ice_controlled);
    assert_int_equal(b.priority, 0);
    assert_int_equal(stun_reply_code(STUN_OK, &b), 200);

    /* a peer that believes it is controlled too: 487 */
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_u64(&m, 0x8029, 9);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_true(b.ice_controlled);
    assert_int_equal(stun_reply_code(STUN_OK, &b), 487);

    /* known attributes that do not belong in a request are ignored */
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_u64(&m, 0x0020, 0x0001aaaa12345678ull);
    msg_u64(&m, 0x0001, 0x0001aaaa12345678ull);
    msg_u32(&m, 0x0009, 0x00000401);
    msg_u32(&m, 0x000a, 0x00030004);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
}

/* Attributes between MESSAGE-INTEGRITY and FINGERPRINT are not authenticated: ignored, however
 * they would read (a nomination, a role, an unknown comprehension-required attribute). */
static void test_after_integrity(void **state)
{
    struct msg m;
    struct stun_binding b;
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_u64(&m, 0x802a, 3);
    msg_sign(&m, RFC_PWD);
    m.n -= 8; /* FINGERPRINT off, more attributes on, FINGERPRINT again */
    msg_attr(&m, 0x0025, NULL, 0);
    msg_u64(&m, 0x8029, 4);
    msg_u32(&m, 0x0024, 99);
    msg_u32(&m, 0x0003, 0); /* CHANGE-REQUEST */
    msg_u32(&m, 0x0008, 0); /* a second, short MESSAGE-INTEGRITY */
    msg_sign(&m, NULL);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_OK);
    assert_false(b.use_candidate);
    assert_true(b.ice_controlling);
    assert_false(b.ice_controlled);
    assert_true(b.tie_breaker == 3);
    assert_int_equal(b.priority, 0);
    assert_int_equal(b.unknown_count, 0);
    /* but the FINGERPRINT covers them */
    m.b[m.n - 12] ^= 1;
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_BAD_FINGERPRINT);
}

/* ---- unknown attributes ---- */

static void test_unknown_attributes(void **state)
{
    struct msg m;
    struct stun_binding b;
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    msg_u32(&m, 0x0003, 0); /* CHANGE-REQUEST (RFC 5780) */
    msg_u32(&m, 0x8123, 0); /* comprehension-optional: ignored */
    msg_u32(&m, 0x7777, 0);
    msg_u32(&m, 0x0003, 0); /* listed once */
    msg_attr(&m, 0x0025, NULL, 0);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_UNKNOWN_ATTRIBUTE);
    assert_int_equal(b.unknown_count, 2);
    assert_int_equal(b.unknown[0], 0x0003);
    assert_int_equal(b.unknown[1], 0x7777);
    assert_memory_equal(b.txid, m.b + 8, 12);
    assert_int_equal(stun_reply_code(STUN_UNKNOWN_ATTRIBUTE, &b), 420);

    /* the answer lists them, and is authenticated */
    uint8_t out[STUN_RESPONSE_MAX];
    size_t n = stun_build_binding_error(out, sizeof(out), b.txid, 420, RFC_PWD, b.unknown,
                                        b.unknown_count);
    assert_int_equal(n, 20 + 28 + 8 + 24 + 8);
    assert_int_equal(get16(out), 0x0111);
    assert_memory_equal(out + 8, b.txid, 12);
    size_t len;
    const uint8_t *v = find_attr(out, n, 0x0009, &len);
    assert_non_null(v);
    assert_int_equal(len, 4 + 17);
    assert_memory_equal(v, ((const uint8_t[]){0, 0, 4, 20}), 4);
    assert_memory_equal(v + 4, "Unknown Attribute", 17);
    v = find_attr(out, n, 0x000a, &len);
    assert_non_null(v);
    assert_int_equal(len, 4);
    assert_memory_equal(v, ((const uint8_t[]){0x00, 0x03, 0x77, 0x77}), 4);
    assert_non_null(find_attr(out, n, 0x0008, &len));
    assert_int_equal(verify_exact(out, n, RFC_PWD), STUN_OK);
    assert_int_equal(verify_exact(out, n, "another"), STUN_UNAUTHORIZED);

    /* an unauthenticated sender learns nothing about them */
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, "another", &b), STUN_UNAUTHORIZED);
    assert_int_equal(b.unknown_count, 0);
    assert_int_equal(parse_exact(m.b, m.n, "abcd", RFC_PWD, &b), STUN_UNAUTHORIZED);

    /* more than STUN_MAX_UNKNOWN: the first ones are reported */
    msg_start(&m, 0x0001);
    msg_str(&m, 0x0006, "evtj:Ab3+");
    for (uint16_t t = 0x7000; t < 0x7000 + 12; t++)
        msg_attr(&m, t, NULL, 0);
    msg_sign(&m, RFC_PWD);
    assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_UNKNOWN_ATTRIBUTE);
    assert_int_equal(b.unknown_count, STUN_MAX_UNKNOWN);
    assert_int_equal(b.unknown[STUN_MAX_UNKNOWN - 1], 0x7000 + STUN_MAX_UNKNOWN - 1);
    uint16_t many[12];
    for (int i = 0; i < 12; i++)
        many[i] = (uint16_t)(0x7000 + i);
    n = stun_build_binding_error(out, sizeof(out), b.txid, 420, RFC_PWD, many, 12);
    v = find_attr(out, n, 0x000a, &len);
    assert_non_null(v);
    assert_int_equal(len, 2 * STUN_MAX_UNKNOWN);
    assert_int_equal(verify_exact(out, n, RFC_PWD), STUN_OK);
}

/* ---- what is not ours to answer ---- */

static void test_not_binding_request(void **state)
{
    struct msg m;
    struct stun_binding b;
    /* a success response, an error response, an indication, and an Allocate request (TURN) */
    static const uint16_t types[] = {0x0101, 0x0111, 0x0011, 0x0003, 0x0002, 0x0004};
    for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
        msg_start(&m, types[i]);
        msg_str(&m, 0x0006, "evtj:Ab3+");
        msg_attr(&m, 0x0025, NULL, 0);
        msg_sign(&m, RFC_PWD);
        assert_int_equal(parse_exact(m.b, m.n, RFC_UFRAG, RFC_PWD, &b), STUN_NOT_BINDING_REQUEST);
        assert_memory_equal(b.txid, m.b + 8, 12);
        assert_int_equal(stun_reply_code(STUN_NOT_BINDING_REQUEST, &b), 0);
        assert_int_equal(verify_exact(m.b, m.n, RFC_PWD), STUN_OK);
    }
    /* RTP and DTLS are not STUN */
    uint8_t rtp[32] = {0x80, 0x00, 0x12, 0x34};
    uint8_t dtls[32] = {0x16, 0xfe, 0xfd, 0x00};
    assert_int_equal(parse_exact(rtp, sizeof(rtp), RFC_UFRAG, RFC_PWD, &b), STUN_NOT_STUN);
    assert_int_equal(parse_exact(dtls, sizeof(dtls), RFC_UFRAG, RFC_PWD, &b), STUN_NOT_STUN);
    assert_int_equal(stun_reply_code(STUN_NOT_STUN, &b), 0);
    uint8_t zero[12] = {0};
    assert_memory_equal(b.txid, zero, 12);
}

/* ---- answers ---- */

static void test_error_responses(void **state)
{
    uint8_t out[STUN_RESPONSE_MAX];
    size_t len;
    /* 400 and 401: ERROR-CODE and FINGERPRINT, no MESSAGE-INTEGRITY */
    size_t n = stun_build_binding_error(out, sizeof(out), rfc_txid, 400, NULL, NULL, 0);
    assert_int_equal(n, 20 + 4 + 16 + 8);
    static const uint8_t bad_request[40] = {
        0x01, 0x11, 0x00, 0x1c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
        0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x00, 0x09, 0x00, 0x0f, 0x00, 0x00, 0x04, 0x00,
        'B',  'a',  'd',  ' ',  'R',  'e',  'q',  'u',  'e',  's',  't',  0x00};
    assert_memory_equal(out, bad_request, 40);
    assert_int_equal(get16(out + 40), 0x8028);
    assert_int_equal(verify_exact(out, n, NULL), STUN_OK);
    assert_null(find_attr(out, n, 0x0008, &len));
    assert_int_equal(verify_exact(out, n, RFC_PWD), STUN_NO_CREDENTIALS);

    n = stun_build_binding_error(out, sizeof(out), rfc_txid, 401, NULL, NULL, 0);
    assert_int_equal(n, 20 + 4 + 20 + 8);
    const uint8_t *v = find_attr(out, n, 0x0009, &len);
    assert_non_null(v);
    assert_int_equal(len, 4 + 15);
    assert_memory_equal(v, ((const uint8_t[]){0, 0, 4, 1}), 4);
    assert_memory_equal(v + 4, "Unauthenticated", 15);
    assert_int_equal(v[19], 0); /* padding */
    assert_int_equal(verify_exact(out, n, NULL), STUN_OK);
    assert_null(find_attr(out, n, 0x0008, &len));

    /* 487: authenticated */
    n = stun_build_binding_error(out, sizeof(out), rfc_txid, 487, RFC_PWD, NULL, 0);
    assert_int_equal(n, 20 + 4 + 20 + 24 + 8);
    v = find_attr(out, n, 0x0009, &len);
    assert_non_null(v);
    assert_int_equal(len, 4 + 13);
    assert_memory_equal(v, ((const uint8_t[]){0, 0, 4, 87}), 4);
    assert_memory_equal(v + 4, "Role Conflict", 13);
    assert_non_null(find_attr(out, n, 0x0008, &len));
    assert_null(find_attr(out, n, 0x000a, &len));
    assert_int_equal(verify_exact(out, n, RFC_PWD), STUN_OK);

    /* another code: no phrase; a list given to a code other than 420 is not sent */
    uint16_t unk[2] = {0x0003, 0x0004};
    n = stun_build_binding_error(out, sizeof(out), rfc_txid, 500, RFC_PWD, unk, 2);
    assert_int_equal(n, 20 + 8 + 24 + 8);
    v = find_attr(out, n, 0x0009, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(v, ((const uint8_t[]){0, 0, 5, 0}), 4);
    assert_null(find_attr(out, n, 0x000a, &len));
    /* 420 with an odd count: padded */
    n = stun_build_binding_error(out, sizeof(out), rfc_txid, 420, RFC_PWD, unk, 1);
    v = find_attr(out, n, 0x000a, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(v, ((const uint8_t[]){0x00, 0x03, 0x00, 0x00}), 4);
    assert_int_equal(verify_exact(out, n, RFC_PWD), STUN_OK);

    /* wrong arguments */
    assert_int_equal(stun_build_binding_error(out, sizeof(out), rfc_txid, 420, RFC_PWD, NULL, 0),
                     0);
    assert_int_equal(stun_build_binding_error(out, sizeof(out), rfc_txid, 420, RFC_PWD, unk, 0), 0);
    assert_int_equal(stun_build_binding_error(out, sizeof(out), rfc_txid, 200, NULL, NULL, 0), 0);
    assert_int_equal(stun_build_binding_error(out, sizeof(out), rfc_txid, 700, NULL, NULL, 0), 0);
    assert_int_equal(stun_build_binding_error(out, sizeof(out), rfc_txid, 299, NULL, NULL, 0), 0);
    assert_int_equal(stun_build_binding_error(NULL, sizeof(out), rfc_txid, 400, NULL, NULL, 0), 0);
}

/* Every capacity short of the whole response gives 0, and nothing is written past it. */
static void test_capacity(void **state)
{
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = 1};
    uint16_t unk[STUN_MAX_UNKNOWN] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t big[STUN_RESPONSE_MAX];
    const size_t full_success = 64;
    /* the largest response: 420 with a full list */
    const size_t full_420 =
        stun_build_binding_error(big, sizeof(big), rfc_txid, 420, RFC_PWD, unk, STUN_MAX_UNKNOWN);
    assert_int_equal(full_420, 20 + 28 + 4 + 2 * STUN_MAX_UNKNOWN + 24 + 8);
    assert_true(full_420 <= STUN_RESPONSE_MAX);
    for (size_t cap = 0; cap <= STUN_RESPONSE_MAX; cap++) {
        uint8_t *out = malloc(cap ? cap : 1);
        assert_non_null(out);
        size_t n = stun_build_binding_success(out, cap, rfc_txid, &from, RFC_PWD);
        assert_int_equal(n, cap >= full_success ? full_success : 0);
        n = stun_build_binding_error(out, cap, rfc_txid, 420, RFC_PWD, unk, STUN_MAX_UNKNOWN);
        assert_int_equal(n, cap >= full_420 ? full_420 : 0);
        n = stun_build_binding_error(out, cap, rfc_txid, 401, NULL, NULL, 0);
        assert_int_equal(n, cap >= 52 ? 52 : 0);
        free(out);
    }
    assert_int_equal(stun_build_binding_success(NULL, 64, rfc_txid, &from, RFC_PWD), 0);
}

static void test_reply_codes(void **state)
{
    struct stun_binding b = {0};
    assert_int_equal(stun_reply_code(STUN_OK, &b), 200);
    b.ice_controlled = true;
    assert_int_equal(stun_reply_code(STUN_OK, &b), 487);
    assert_int_equal(stun_reply_code(STUN_MALFORMED, &b), 400);
    assert_int_equal(stun_reply_code(STUN_NO_CREDENTIALS, &b), 400);
    assert_int_equal(stun_reply_code(STUN_UNAUTHORIZED, &b), 401);
    assert_int_equal(stun_reply_code(STUN_UNKNOWN_ATTRIBUTE, &b), 420);
    assert_int_equal(stun_reply_code(STUN_NOT_STUN, &b), 0);
    assert_int_equal(stun_reply_code(STUN_NOT_BINDING_REQUEST, &b), 0);
    assert_int_equal(stun_reply_code(STUN_BAD_FINGERPRINT, &b), 0);
    assert_int_equal(stun_reply_code(-100, &b), 0);
}

/* ---- credentials, and a session with them from check to answer ---- */

static bool ice_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

static void test_credentials(void **state)
{
    assert_true(STUN_UFRAG_LEN >= 4 && STUN_PWD_LEN >= 22);
    char ufrag[STUN_UFRAG_LEN + 1], pwd[STUN_PWD_LEN + 1];
    char ufrag2[STUN_UFRAG_LEN + 1], pwd2[STUN_PWD_LEN + 1];
    stun_make_credentials(ufrag, pwd);
    stun_make_credentials(ufrag2, pwd2);
    assert_int_equal(strlen(ufrag), STUN_UFRAG_LEN);
    assert_int_equal(strlen(pwd), STUN_PWD_LEN);
    assert_true(ice_chars(ufrag, STUN_UFRAG_LEN) && ice_chars(pwd, STUN_PWD_LEN));
    assert_true(ice_chars(ufrag2, STUN_UFRAG_LEN) && ice_chars(pwd2, STUN_PWD_LEN));
    assert_string_not_equal(pwd, pwd2);
    /* all 64 characters come up */
    bool seen[128] = {false};
    int kinds = 0;
    for (int i = 0; i < 200; i++) {
        stun_make_credentials(ufrag2, pwd2);
        for (size_t k = 0; k < STUN_PWD_LEN; k++)
            if (!seen[(unsigned char)pwd2[k]]) {
                seen[(unsigned char)pwd2[k]] = true;
                kinds++;
            }
    }
    assert_int_equal(kinds, 64);

    /* a browser's check with them, and our answer */
    char username[64];
    snprintf(username, sizeof(username), "%s:Ab3+", ufrag);
    struct msg m;
    browser_request(&m, username, pwd);
    struct stun_binding b;
    assert_int_equal(parse_exact(m.b, m.n, ufrag, pwd, &b), STUN_OK);
    assert_int_equal(stun_reply_code(STUN_OK, &b), 200);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(54321)};
    assert_int_equal(inet_pton(AF_INET, "203.0.113.7", &from.sin_addr), 1);
    uint8_t out[STUN_RESPONSE_MAX];
    size_t n = stun_build_binding_success(out, sizeof(out), b.txid, &from, pwd);
    assert_int_equal(n, 64);
    assert_memory_equal(out + 8, m.b + 8, 12);
    assert_int_equal(verify_exact(out, n, pwd), STUN_OK);
    size_t len;
    const uint8_t *v = find_attr(out, n, 0x0020, &len);
    assert_non_null(v);
    assert_int_equal(len, 8);
    assert_int_equal(v[1], 0x01);
    assert_int_equal(get16(v + 2) ^ 0x2112, 54321);
    uint8_t addr[4] = {(uint8_t)(v[4] ^ 0x21), (uint8_t)(v[5] ^ 0x12), (uint8_t)(v[6] ^ 0xa4),
                       (uint8_t)(v[7] ^ 0x42)};
    assert_memory_equal(addr, ((const uint8_t[]){203, 0, 113, 7}), 4);
    /* the other side's credentials do not open ours */
    assert_int_equal(parse_exact(m.b, m.n, ufrag, pwd2, &b), STUN_UNAUTHORIZED);
}

static int setup(void **state)
{
    return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_message),
        cmocka_unit_test(test_rfc5769_request),
        cmocka_unit_test(test_rfc5769_bit_flips),
        cmocka_unit_test(test_rfc5769_response),
        cmocka_unit_test(test_rfc5769_append),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_attribute_lengths),
        cmocka_unit_test(test_username),
        cmocka_unit_test(test_ice_attributes),
        cmocka_unit_test(test_after_integrity),
        cmocka_unit_test(test_unknown_attributes),
        cmocka_unit_test(test_not_binding_request),
        cmocka_unit_test(test_error_responses),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_reply_codes),
        cmocka_unit_test(test_credentials),
    };
    return cmocka_run_group_tests_name("stun", tests, setup, NULL);
}
