/* SDP for WebRTC peers (RFC 8829's audio): a browser's offer (UDP/TLS/RTP/SAVPF, ICE, DTLS,
 * rtcp-mux, BUNDLE, mDNS candidates) is read, answered as an ICE-lite DTLS-SRTP endpoint, and
 * answered again the same way in a re-INVITE; what cannot run (no rtcp-mux, no credentials, SDES
 * only) is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fakes.h"

#include <stdio.h>
#include <string.h>

#include "sip/sip.h"

/* What Chromium offers for one microphone track (trimmed of extensions we ignore anyway). */
static const char *chrome_offer =
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS stream1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=candidate:3115820536 1 udp 2113937151 6c1f5d0e-4c0a-4c2e-9d5c-7e0d3c7d1f2a.local 54321 "
    "typ host generation 0 network-cost 999\r\n"
    "a=ice-ufrag:Kx3f\r\n"
    "a=ice-pwd:w2yL8bJ1mXqQz9sVb6TnPc4R\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 "
    "8C:71:B2:11:2A:0F:3E:55:09:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:"
    "45:67\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=sendrecv\r\n"
    "a=msid:stream1 track1\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=fmtp:63 111/111\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:13 CN/8000\r\n"
    "a=rtpmap:110 telephone-event/48000\r\n"
    "a=rtpmap:126 telephone-event/8000\r\n"
    "a=ssrc:3735928559 cname:abcdefghijklmnop\r\n"
    "a=ssrc:3735928559 msid:stream1 track1\r\n";

static const struct sdp_secure_local ours = {
    "abcd1234", "0123456789abcdefghijklmnop",
    "sha-256 01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:"
    "1D:1E:1F:20",
    0x01020304};

static void test_browser_offer_read(void **state)
{
    (void)state;
    struct sdp_offer_result r;
    assert_int_equal(sdp_parse_offer(chrome_offer, &r), 0);
    assert_true(r.secure);
    assert_int_equal(r.codec, CODEC_OPUS);
    assert_int_equal(r.audio_pt, 111);
    assert_int_equal(r.dtmf_pt, 110); /* the 48 kHz one, at Opus's clock */
    assert_string_equal(r.ice_ufrag, "Kx3f");
    assert_string_equal(r.ice_pwd, "w2yL8bJ1mXqQz9sVb6TnPc4R");
    assert_non_null(strstr(r.fingerprint, "sha-256 8C:71:B2"));
    assert_int_equal(r.setup, SDP_SETUP_ACTPASS);
    assert_string_equal(r.mid, "0");
    assert_int_equal(r.ssrc, 3735928559u);
    assert_string_equal(r.remote_ip, "0.0.0.0"); /* a placeholder: ICE finds the peer */
}

static void test_browser_offer_answered(void **state)
{
    (void)state;
    struct sdp_offer_result r;
    assert_int_equal(sdp_parse_offer(chrome_offer, &r), 0);
    char out[4096];
    /* A secure offer cannot be answered without our side's parameters. */
    assert_int_equal(sdp_build_answer(&r, "127.0.0.1", 40000, 1, 1, out, sizeof(out)), -1);
    int n = sdp_build_answer_secure(&r, "127.0.0.1", 40000, 7, 7, &ours, out, sizeof(out));
    assert_true(n > 0);
    const char *want[] = {"a=ice-lite\r\n",
                          "a=group:BUNDLE 0\r\n",
                          "m=audio 40000 UDP/TLS/RTP/SAVPF 111 110\r\n",
                          "a=mid:0\r\n",
                          "a=ice-ufrag:abcd1234\r\n",
                          "a=ice-pwd:0123456789abcdefghijklmnop\r\n",
                          "a=fingerprint:sha-256 01:02:03:04",
                          "a=setup:passive\r\n",
                          "a=rtcp-mux\r\n",
                          "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n",
                          "a=rtpmap:111 opus/48000/2\r\n",
                          "a=rtpmap:110 telephone-event/48000\r\n",
                          "a=ssrc:16909060 cname:conferenced\r\n",
                          "a=sendrecv\r\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_non_null(strstr(out, want[i]));
    /* Session-level ice-lite comes before the first m= line. */
    assert_true(strstr(out, "a=ice-lite") < strstr(out, "m=audio"));
    /* Our answer reads back as a WebRTC stream with our side's parameters. */
    struct sdp_offer_result back;
    assert_int_equal(sdp_parse_answer(out, &back), 0);
    assert_true(back.secure);
    assert_string_equal(back.ice_ufrag, "abcd1234");
    assert_int_equal(back.setup, SDP_SETUP_PASSIVE);
    assert_int_equal(back.ssrc, 0x01020304);
}

static void replace(char *buf, size_t cap, const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    snprintf(buf, cap, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

static void test_setup_roles(void **state)
{
    (void)state;
    char offer[4096], out[4096];
    struct sdp_offer_result r;
    /* The offerer waits for us: we are the DTLS client. */
    replace(offer, sizeof(offer), chrome_offer, "a=setup:actpass", "a=setup:passive");
    assert_int_equal(sdp_parse_offer(offer, &r), 0);
    assert_int_equal(r.setup, SDP_SETUP_PASSIVE);
    assert_true(sdp_build_answer_secure(&r, "127.0.0.1", 40000, 1, 1, &ours, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "a=setup:active\r\n"));
    replace(offer, sizeof(offer), chrome_offer, "a=setup:actpass", "a=setup:active");
    assert_int_equal(sdp_parse_offer(offer, &r), 0);
    assert_true(sdp_build_answer_secure(&r, "127.0.0.1", 40000, 1, 1, &ours, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "a=setup:passive\r\n"));
}

static void test_unrunnable_offers_refused(void **state)
{
    (void)state;
    char offer[4096];
    struct sdp_offer_result r;
    replace(offer, sizeof(offer), chrome_offer, "a=rtcp-mux\r\n", "");
    assert_int_equal(sdp_parse_offer(offer, &r), -1); /* one port: RTCP must be muxed */
    replace(offer, sizeof(offer), chrome_offer, "a=ice-pwd:w2yL8bJ1mXqQz9sVb6TnPc4R\r\n", "");
    assert_int_equal(sdp_parse_offer(offer, &r), -1);
    replace(offer, sizeof(offer), chrome_offer, "a=ice-ufrag:Kx3f\r\n", "a=ice-ufrag:Kx\r\n");
    assert_int_equal(sdp_parse_offer(offer, &r), -1); /* shorter than RFC 8839 allows */
    replace(offer, sizeof(offer), chrome_offer, "a=fingerprint:", "a=x-fingerprint:");
    assert_int_equal(sdp_parse_offer(offer, &r), -1);
    /* SDES-keyed SRTP (RTP/SAVP with a=crypto) is not something we run. */
    replace(offer, sizeof(offer), chrome_offer, "UDP/TLS/RTP/SAVPF", "RTP/SAVP");
    assert_int_equal(sdp_parse_offer(offer, &r), -1);
    /* An over-long ice-pwd is refused rather than cut. */
    char pwd[400];
    memset(pwd, 'a', 300);
    pwd[300] = '\0';
    char line[420];
    snprintf(line, sizeof(line), "a=ice-pwd:%s\r\n", pwd);
    replace(offer, sizeof(offer), chrome_offer, "a=ice-pwd:w2yL8bJ1mXqQz9sVb6TnPc4R\r\n", line);
    assert_int_equal(sdp_parse_offer(offer, &r), -1);
}

static void test_reinvite_keeps_webrtc(void **state)
{
    (void)state;
    struct sdp_offer_result r;
    char answer[4096], again[4096], offer[4096];
    assert_int_equal(sdp_parse_offer(chrome_offer, &r), 0);
    assert_true(
        sdp_build_answer_secure(&r, "127.0.0.1", 40000, 9, 9, &ours, answer, sizeof(answer)) > 0);
    /* Hold: the same offer, sendonly. */
    replace(offer, sizeof(offer), chrome_offer, "a=sendrecv", "a=sendonly");
    assert_true(sdp_build_reanswer(offer, answer, again, sizeof(again)) > 0);
    assert_non_null(strstr(again, "o=conferenced 9 10 IN IP4 127.0.0.1"));
    assert_non_null(strstr(again, "m=audio 40000 UDP/TLS/RTP/SAVPF 111"));
    assert_non_null(strstr(again, "a=ice-ufrag:abcd1234\r\n"));
    assert_non_null(strstr(again, "a=fingerprint:sha-256 01:02:03:04"));
    assert_non_null(strstr(again, "a=setup:passive\r\n")); /* the role does not change */
    assert_non_null(strstr(again, "a=ssrc:16909060 "));
    assert_non_null(strstr(again, "a=recvonly\r\n"));
    /* A plain offer in a WebRTC call (or the other way round) is refused. */
    const char *plain = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                        "m=audio 5000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
    assert_int_equal(sdp_build_reanswer(plain, answer, again, sizeof(again)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_browser_offer_read),
        cmocka_unit_test(test_browser_offer_answered),
        cmocka_unit_test(test_setup_roles),
        cmocka_unit_test(test_unrunnable_offers_refused),
        cmocka_unit_test(test_reinvite_keeps_webrtc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
