/* libFuzzer target: stun_parse_binding() with fixed credentials (RFC 5769's: its sample request
 * is a seed that passes) on the input as it is. Then the input is made into a request that
 * passes the hashes, so that the fuzzer reaches what lies behind them: byte 0 says whether a
 * USERNAME for us comes first (bit 0) and whether MESSAGE-INTEGRITY is appended (bit 1, else
 * only FINGERPRINT), bytes 1..12 are the transaction id, the rest are the attributes (padded to
 * 4). Whatever is answerable is answered, at full size and with a capacity from the input: the
 * answer must pass our own checks and carry the request's transaction id (and, for a success,
 * the source's address). Any crash, out-of-bounds read, UB or leak is a finding. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UFRAG "evtj"
#define PWD "VOkJxbRl1RmTxUk/WvJxBt"

/* 400 and 401 answer requests that failed authentication: no MESSAGE-INTEGRITY. */
static const char *answer_pwd(int code)
{
    return code == 400 || code == 401 ? NULL : PWD;
}

static size_t build(int code, const struct stun_binding *b, uint8_t *out, size_t cap)
{
    if (code == 200) {
        struct sockaddr_in from = {.sin_family = AF_INET,
                                   .sin_port = htons(40000),
                                   .sin_addr.s_addr = htonl(0xc6336417u)}; /* 198.51.100.23 */
        return stun_build_binding_success(out, cap, b->txid, &from, PWD);
    }
    return stun_build_binding_error(out, cap, b->txid, code, answer_pwd(code), b->unknown,
                                    b->unknown_count);
}

static void answer(int rc, const struct stun_binding *b, size_t small_cap)
{
    int code = stun_reply_code(rc, b);
    if (code == 0)
        return;
    if (code != 200 && code != 400 && code != 401 && code != 420 && code != 487)
        abort();
    uint8_t out[STUN_RESPONSE_MAX];
    size_t n = build(code, b, out, sizeof(out));
    if (n == 0 || stun_verify_message(out, n, answer_pwd(code)) != STUN_OK ||
        memcmp(out + 8, b->txid, 12) != 0)
        abort();
    if (!answer_pwd(code) && stun_verify_message(out, n, PWD) != STUN_NO_CREDENTIALS)
        abort();
    if (code == 200) {
        /* XOR-MAPPED-ADDRESS: 198.51.100.23:40000 */
        static const uint8_t xma[12] = {0x00,        0x20,        0x00,        0x08,
                                        0x00,        0x01,        0x9c ^ 0x21, 0x40 ^ 0x12,
                                        0xc6 ^ 0x21, 0x33 ^ 0x12, 0x64 ^ 0xa4, 0x17 ^ 0x42};
        if (n != 64 || memcmp(out + 20, xma, 12) != 0)
            abort();
    }
    /* with less room: all or nothing, and nothing written past it (an exact allocation) */
    uint8_t *small = malloc(small_cap ? small_cap : 1);
    if (!small)
        abort();
    size_t n_small = build(code, b, small, small_cap);
    if (n_small != (small_cap >= n ? n : 0) || (n_small && memcmp(small, out, n) != 0))
        abort();
    free(small);
}

/* Parses buf[0..n) (an exact allocation: ASan sees any read past it) and checks the result. */
static void parse(const uint8_t *bytes, size_t n, size_t small_cap)
{
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        abort();
    if (n)
        memcpy(buf, bytes, n);
    struct stun_binding b;
    int rc = stun_parse_binding(buf, n, UFRAG, PWD, &b);
    int verified = stun_verify_message(buf, n, PWD);
    (void)stun_verify_message(buf, n, NULL);
    if ((rc == STUN_NOT_STUN) != !stun_is_message(buf, n))
        abort();
    switch (rc) {
    case STUN_OK: {
        const uint8_t *u = (const uint8_t *)b.remote_ufrag;
        if (verified != STUN_OK || !u || b.remote_ufrag_len == 0 || u < buf + 29 ||
            u + b.remote_ufrag_len > buf + n || memcmp(u - 5, UFRAG ":", 5) != 0 ||
            b.unknown_count != 0 || (b.ice_controlling && b.ice_controlled) ||
            memcmp(b.txid, buf + 8, 12) != 0)
            abort();
        break;
    }
    case STUN_UNKNOWN_ATTRIBUTE:
        if (verified != STUN_OK || b.unknown_count == 0 || b.unknown_count > STUN_MAX_UNKNOWN)
            abort();
        for (size_t i = 0; i < b.unknown_count; i++)
            if (b.unknown[i] >= 0x8000)
                abort();
        /* fall through */
    case STUN_MALFORMED:
    case STUN_NOT_BINDING_REQUEST:
    case STUN_UNAUTHORIZED:
    case STUN_BAD_FINGERPRINT:
    case STUN_NO_CREDENTIALS:
        if (b.remote_ufrag || b.use_candidate || b.priority || b.tie_breaker)
            abort();
        break;
    case STUN_NOT_STUN:
        break;
    default:
        abort();
    }
    answer(rc, &b, small_cap);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t small_cap = size ? data[size - 1] % (STUN_RESPONSE_MAX + 1) : 0;
    parse(data, size, small_cap);

    uint8_t req[STUN_MAX_MESSAGE];
    uint8_t flags = size ? data[0] : 0;
    memset(req, 0, sizeof(req));
    req[1] = 0x01; /* Binding request */
    memcpy(req + 4, (const uint8_t[]){0x21, 0x12, 0xa4, 0x42}, 4);
    for (size_t i = 0; i < 12 && 1 + i < size; i++)
        req[8 + i] = data[1 + i];
    size_t n = STUN_HEADER_LEN;
    if (flags & 1) {
        static const uint8_t username[16] = {0x00, 0x06, 0x00, 0x09, 'e', 'v', 't', 'j',
                                             ':',  'f',  'u',  'z',  'z', 0,   0,   0};
        memcpy(req + n, username, sizeof(username));
        n += sizeof(username);
    }
    if (size > 13) {
        size_t attrs = size - 13;
        size_t room = STUN_MAX_MESSAGE - n - 32;
        if (attrs > room)
            attrs = room;
        memcpy(req + n, data + 13, attrs);
        n += (attrs + 3) & ~(size_t)3;
    }
    req[2] = (uint8_t)((n - STUN_HEADER_LEN) >> 8);
    req[3] = (uint8_t)(n - STUN_HEADER_LEN);
    n = stun_append_integrity(req, n, sizeof(req), flags & 2 ? PWD : NULL);
    if (n == 0)
        abort();
    parse(req, n, small_cap);
    return 0;
}
