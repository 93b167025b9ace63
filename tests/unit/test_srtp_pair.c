/* SRTP for WebRTC legs: what one side protects the other side takes back unchanged (with the keys
 * the other way round), whatever the profile; a changed byte, a replay, another SSRC or the wrong
 * keys are refused; a peer whose SSRC was not signalled is taken from its first packet; profiles
 * and key lengths libsrtp does not take are refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fakes.h"

#include <string.h>

#include "media/rtp.h"
#include "media/srtp_pair.h"

static size_t packet(uint8_t *buf, uint16_t seq, uint32_t ssrc)
{
    uint8_t payload[160];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + seq);
    return rtp_build(buf, RTP_MAX_PACKET, 111, false, seq, seq * 960u, ssrc, payload,
                     sizeof(payload));
}

static void keys(uint8_t *a, uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        a[i] = (uint8_t)(i + 1);
        b[i] = (uint8_t)(0xa0 ^ i);
    }
}

static void round_trip(int profile, size_t key_len)
{
    uint8_t a[64], b[64];
    keys(a, b, key_len);
    char err[128];
    struct srtp_pair *us =
        srtp_pair_create(profile, a, b, key_len, 0x11111111, 0x22222222, err, sizeof(err));
    struct srtp_pair *peer =
        srtp_pair_create(profile, b, a, key_len, 0x22222222, 0x11111111, err, sizeof(err));
    assert_non_null(us);
    assert_non_null(peer);
    for (uint16_t seq = 100; seq < 110; seq++) {
        uint8_t buf[RTP_MAX_PACKET + SRTP_PAIR_TRAILER], plain[RTP_MAX_PACKET];
        size_t n = packet(plain, seq, 0x11111111);
        memcpy(buf, plain, n);
        int m = srtp_pair_protect(us, buf, n);
        assert_true(m > (int)n);
        assert_memory_not_equal(buf + 12, plain + 12, n - 12); /* encrypted */
        uint8_t copy[sizeof(buf)];
        memcpy(copy, buf, (size_t)m);
        assert_int_equal(srtp_pair_unprotect(peer, buf, (size_t)m), (int)n);
        assert_memory_equal(buf, plain, n);
        /* the same packet again is a replay */
        assert_int_equal(srtp_pair_unprotect(peer, copy, (size_t)m), -1);
    }
    srtp_pair_free(us);
    srtp_pair_free(peer);
}

static void test_profiles_round_trip(void **state)
{
    (void)state;
    round_trip(1, 30); /* AES128_CM_HMAC_SHA1_80 */
    round_trip(2, 30); /* AES128_CM_HMAC_SHA1_32 */
    round_trip(7, 28); /* AEAD_AES_128_GCM */
}

static void test_forgeries_refused(void **state)
{
    (void)state;
    uint8_t a[30], b[30];
    keys(a, b, sizeof(a));
    char err[128];
    struct srtp_pair *us = srtp_pair_create(1, a, b, 30, 0x11111111, 0, err, sizeof(err));
    struct srtp_pair *peer =
        srtp_pair_create(1, b, a, 30, 0x22222222, 0x11111111, err, sizeof(err));
    struct srtp_pair *stranger = srtp_pair_create(1, b, b, 30, 0x33333333, 0, err, sizeof(err));
    uint8_t buf[RTP_MAX_PACKET + SRTP_PAIR_TRAILER];
    /* one changed byte anywhere */
    for (size_t at = 0; at < 40; at += 3) {
        size_t n = packet(buf, (uint16_t)(200 + at), 0x11111111);
        int m = srtp_pair_protect(us, buf, n);
        assert_true(m > 0);
        buf[at == 0 ? 1 : at] ^= 0x40;
        assert_int_equal(srtp_pair_unprotect(peer, buf, (size_t)m), -1);
    }
    /* the wrong keys */
    size_t n = packet(buf, 500, 0x33333333);
    int m = srtp_pair_protect(stranger, buf, n);
    assert_true(m > 0);
    assert_int_equal(srtp_pair_unprotect(peer, buf, (size_t)m), -1);
    /* too short to be SRTP at all, plain RTP */
    assert_int_equal(srtp_pair_unprotect(peer, buf, 8), -1);
    n = packet(buf, 501, 0x11111111);
    assert_int_equal(srtp_pair_unprotect(peer, buf, n), -1);
    /* we only protect under our own SSRC */
    n = packet(buf, 502, 0x44444444);
    assert_int_equal(srtp_pair_protect(us, buf, n), -1);
    srtp_pair_free(us);
    srtp_pair_free(peer);
    srtp_pair_free(stranger);
}

static void test_unsignalled_peer_ssrc(void **state)
{
    (void)state;
    uint8_t a[30], b[30];
    keys(a, b, sizeof(a));
    char err[128];
    struct srtp_pair *us = srtp_pair_create(1, a, b, 30, 0x11111111, 0, err, sizeof(err));
    struct srtp_pair *peer = srtp_pair_create(1, b, a, 30, 0x9999, 0, err, sizeof(err));
    uint8_t buf[RTP_MAX_PACKET + SRTP_PAIR_TRAILER];
    size_t n = packet(buf, 7, 0x9999);
    int m = srtp_pair_protect(peer, buf, n);
    assert_int_equal(srtp_pair_unprotect(us, buf, (size_t)m), (int)n);
    srtp_pair_free(us);
    srtp_pair_free(peer);
}

static void test_bad_profiles_refused(void **state)
{
    (void)state;
    uint8_t a[64] = {0}, b[64] = {0};
    char err[128];
    assert_null(srtp_pair_create(0, a, b, 30, 1, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "profile 0"));
    assert_null(srtp_pair_create(1, a, b, 16, 1, 2, err, sizeof(err))); /* no salt */
    assert_non_null(strstr(err, "16 bytes"));
    assert_null(srtp_pair_create(99, a, b, 30, 1, 2, err, sizeof(err)));
    srtp_pair_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profiles_round_trip),
        cmocka_unit_test(test_forgeries_refused),
        cmocka_unit_test(test_unsignalled_peer_ssrc),
        cmocka_unit_test(test_bad_profiles_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
