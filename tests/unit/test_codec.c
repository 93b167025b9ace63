/* The codec layer and the band bridge: G.722 and Opus carry 16 kHz audio (a tone above 4 kHz
 * survives), payloads are checked before they reach a decoder, Opus rebuilds a lost frame from
 * the next one's in-band FEC, and the resamplers keep the pass band and cut what 8 kHz cannot
 * carry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fakes.h"

#include <math.h>
#include <opus/opus.h>
#include <string.h>

#include "media/codec.h"
#include "media/resample.h"

/* Frame t of a sum of tones at rate. */
static void tones(int16_t *x, size_t n, const double *hz, size_t k, double amp, int t, double rate)
{
    for (size_t i = 0; i < n; i++) {
        double v = 0, time = (double)((size_t)t * n + i) / rate;
        for (size_t j = 0; j < k; j++)
            v += amp * sin(2.0 * M_PI * hz[j] * time);
        x[i] = (int16_t)lrint(v);
    }
}

static void test_info(void **state)
{
    codec_init();
    assert_string_equal(codec_info(CODEC_OPUS)->name, "opus");
    assert_int_equal(codec_info(CODEC_OPUS)->clock, 48000);
    assert_int_equal(codec_info(CODEC_OPUS)->ts_step, 960);
    assert_int_equal(codec_info(CODEC_G722)->static_pt, 9);
    assert_int_equal(codec_info(CODEC_G722)->ts_step, 160); /* RFC 3551: an 8 kHz clock */
    assert_int_equal(codec_samples(CODEC_G722), CODEC_FRAME_WB);
    assert_int_equal(codec_samples(CODEC_PCMA), CODEC_FRAME_NB);
    assert_true(codec_stateful(CODEC_OPUS) && codec_stateful(CODEC_G722));
    assert_false(codec_stateful(CODEC_PCMU));
    for (int c = 0; c < CODEC_COUNT; c++) {
        size_t len;
        const uint8_t *s = codec_silence((enum codec_id)c, &len);
        assert_true(len > 0 && len <= CODEC_OUT_MAX);
        assert_true(codec_payload_ok((enum codec_id)c, s, len));
        /* silence decodes to (near) silence */
        struct codec_dec *d = codec_dec_create((enum codec_id)c);
        int16_t pcm[CODEC_FRAME_WB];
        for (int i = 0; i < 3; i++)
            codec_decode(d, s, len, pcm);
        for (size_t i = 0; i < codec_samples((enum codec_id)c); i++)
            assert_true(abs(pcm[i]) < 64);
        codec_dec_destroy(d);
    }
}

/* A wideband codec round trip: 1 kHz and 6 kHz both come back (G.711 would lose the second). */
static void roundtrip(enum codec_id c, const struct codec_settings *s)
{
    struct codec_enc *e = codec_enc_create(c, s);
    struct codec_dec *d = codec_dec_create(c);
    const double hz[2] = {1000, 6000};
    int16_t in[CODEC_FRAME_WB], out[CODEC_FRAME_WB * 25];
    uint8_t pkt[CODEC_OUT_MAX];
    for (int t = 0; t < 50; t++) {
        tones(in, CODEC_FRAME_WB, hz, 2, 6000, t, 16000);
        size_t len = codec_encode(e, in, pkt);
        assert_true(len > 0);
        assert_true(codec_payload_ok(c, pkt, len));
        codec_decode(d, pkt, len, t >= 25 ? out + (t - 25) * CODEC_FRAME_WB : in);
    }
    for (int j = 0; j < 2; j++) {
        double level = fake_tone_level_at(out, sizeof(out) / sizeof(out[0]), hz[j], 16000);
        if (level < 6000 * 0.7 || level > 6000 * 1.3)
            fail_msg("%s: %.0f Hz came back at %.0f, sent 6000", codec_info(c)->name, hz[j], level);
    }
    codec_enc_destroy(e);
    codec_dec_destroy(d);
}

static void test_wideband_roundtrip(void **state)
{
    codec_init();
    roundtrip(CODEC_G722, NULL);
    roundtrip(CODEC_OPUS, NULL);
    struct codec_settings s = {64000, 5};
    roundtrip(CODEC_OPUS, &s);
}

static void test_payload_checks(void **state)
{
    codec_init();
    uint8_t buf[CODEC_MAX_PAYLOAD + 1];
    memset(buf, 0xff, sizeof(buf));
    assert_true(codec_payload_ok(CODEC_PCMU, buf, 160));
    assert_false(codec_payload_ok(CODEC_PCMU, buf, 80)); /* 10 ms: not our frame */
    assert_false(codec_payload_ok(CODEC_G722, buf, 161));
    assert_false(codec_payload_ok(CODEC_OPUS, buf, 0));
    assert_false(codec_payload_ok(CODEC_OPUS, NULL, 10));
    assert_false(codec_payload_ok(CODEC_OPUS, buf, CODEC_MAX_PAYLOAD + 1));
    /* Opus packets of other durations, and malformed ones */
    int err;
    OpusEncoder *peer = opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP, &err);
    int16_t pcm[2880] = {0};
    uint8_t pkt[1500];
    int n = opus_encode(peer, pcm, 960, pkt, sizeof(pkt));
    assert_true(n > 0);
    assert_true(codec_payload_ok(CODEC_OPUS, pkt, (size_t)n));
    n = opus_encode(peer, pcm, 480, pkt, sizeof(pkt)); /* 10 ms */
    assert_true(n > 0);
    assert_false(codec_payload_ok(CODEC_OPUS, pkt, (size_t)n));
    n = opus_encode(peer, pcm, 2880, pkt, sizeof(pkt)); /* 60 ms */
    assert_true(n > 0);
    assert_false(codec_payload_ok(CODEC_OPUS, pkt, (size_t)n));
    opus_encoder_destroy(peer);
    uint8_t bad[3] = {0x03, 0xff, 0xff}; /* code 3 with a frame count and sizes that overrun */
    assert_false(codec_payload_ok(CODEC_OPUS, bad, sizeof(bad)));
    /* a refused frame given to the decoder anyway is concealed, not a crash */
    struct codec_dec *d = codec_dec_create(CODEC_OPUS);
    int16_t out[CODEC_FRAME_WB];
    codec_decode(d, bad, sizeof(bad), out);
    codec_dec_destroy(d);
}

/* The peer (a browser) sends FEC; frame 10 is lost, and the signal changes in it (600 Hz to
 * 1,500 Hz): rebuilt from frame 11's FEC it has the new tone, concealed from the past it has the
 * old one. */
static void test_opus_fec(void **state)
{
    codec_init();
    int err;
    OpusEncoder *peer = opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP, &err);
    opus_encoder_ctl(peer, OPUS_SET_INBAND_FEC(1));
    opus_encoder_ctl(peer, OPUS_SET_PACKET_LOSS_PERC(20));
    opus_encoder_ctl(peer, OPUS_SET_BITRATE(32000));
    uint8_t pkts[20][1500];
    int lens[20];
    for (int t = 0; t < 20; t++) {
        double hz = t < 10 ? 600 : 1500;
        int16_t pcm[960];
        tones(pcm, 960, &hz, 1, 8000, t, 48000);
        lens[t] = opus_encode(peer, pcm, 960, pkts[t], sizeof(pkts[t]));
        assert_true(lens[t] > 0);
    }
    opus_encoder_destroy(peer);
    double with_fec = 0, without = 0;
    for (int pass = 0; pass < 2; pass++) {
        struct codec_dec *d = codec_dec_create(CODEC_OPUS);
        int16_t out[CODEC_FRAME_WB];
        for (int t = 0; t < 10; t++)
            codec_decode(d, pkts[t], (size_t)lens[t], out);
        if (pass == 0)
            codec_conceal(d, pkts[11], (size_t)lens[11], out);
        else
            codec_conceal(d, NULL, 0, out);
        /* the frame's second half (past the encoder's look-ahead) */
        double level = fake_tone_level_at(out + 160, 160, 1500, 16000);
        if (pass == 0)
            with_fec = level;
        else
            without = level;
        codec_dec_destroy(d);
    }
    if (with_fec < 3000 || with_fec < 4 * without)
        fail_msg("1,500 Hz in the lost frame: %.0f with FEC, %.0f without", with_fec, without);
}

/* A peer with DTX (discontinuous transmission) sends a tone, then silence: during the silence it
 * sends a TOC-only packet now and then and nothing in between. Every packet it sends is taken, the
 * gaps are concealed, and the tone plays again when it comes back. */
static void test_opus_dtx(void **state)
{
    codec_init();
    int err;
    OpusEncoder *peer = opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP, &err);
    opus_encoder_ctl(peer, OPUS_SET_DTX(1));
    opus_encoder_ctl(peer, OPUS_SET_BITRATE(24000));
    struct codec_dec *d = codec_dec_create(CODEC_OPUS);
    int small = 0, skipped = 0;
    double last_level = 0;
    for (int t = 0; t < 150; t++) {
        double hz = 800;
        int16_t pcm[960];
        if (t < 25 || t >= 125)
            tones(pcm, 960, &hz, 1, 8000, t, 48000);
        else
            memset(pcm, 0, sizeof(pcm));
        uint8_t pkt[1500];
        int len = opus_encode(peer, pcm, 960, pkt, sizeof(pkt));
        assert_true(len >= 0);
        int16_t out[CODEC_FRAME_WB];
        if (len <= 2) { /* DTX: nothing (0) or a TOC-only frame the peer may send */
            skipped += len == 0;
            small += len > 0;
            if (len == 0) {
                codec_conceal(d, NULL, 0, out);
                continue;
            }
        }
        assert_true(codec_payload_ok(CODEC_OPUS, pkt, (size_t)len));
        codec_decode(d, pkt, (size_t)len, out);
        if (t == 149)
            last_level = fake_tone_level_at(out, CODEC_FRAME_WB, 800, 16000);
    }
    opus_encoder_destroy(peer);
    codec_dec_destroy(d);
    if (small + skipped < 50)
        fail_msg("the encoder did not go quiet (%d small, %d skipped)", small, skipped);
    if (last_level < 3000)
        fail_msg("the tone did not come back after the silence (%.0f)", last_level);
}

static void test_resampler(void **state)
{
    struct resampler *up = resampler_create(8000, 16000);
    struct resampler *down = resampler_create(16000, 8000);
    int16_t nb[CODEC_FRAME_NB], wb[CODEC_FRAME_WB], out_wb[CODEC_FRAME_WB * 10],
        out_nb[CODEC_FRAME_NB * 10];
    const double f1 = 1000, f6 = 6000, both[2] = {1000, 6000};
    for (int t = 0; t < 20; t++) {
        tones(nb, CODEC_FRAME_NB, &f1, 1, 8000, t, 8000);
        resampler_run_i16(up, nb, CODEC_FRAME_NB,
                          t >= 10 ? out_wb + (t - 10) * CODEC_FRAME_WB : wb);
        tones(wb, CODEC_FRAME_WB, both, 2, 8000, t, 16000);
        resampler_run_i16(down, wb, CODEC_FRAME_WB,
                          t >= 10 ? out_nb + (t - 10) * CODEC_FRAME_NB : nb);
    }
    double up1 = fake_tone_level_at(out_wb, CODEC_FRAME_WB * 10, f1, 16000);
    double down1 = fake_tone_level_at(out_nb, CODEC_FRAME_NB * 10, f1, 8000);
    /* 6 kHz folds to 2 kHz at 8 kHz if it is not filtered out */
    double alias = fake_tone_level_at(out_nb, CODEC_FRAME_NB * 10, 8000 - f6, 8000);
    if (fabs(up1 - 8000) > 400 || fabs(down1 - 8000) > 400 || alias > 200)
        fail_msg("up %.0f, down %.0f (want 8000), alias %.0f", up1, down1, alias);
    /* 32-bit sums beyond 16 bits pass unclipped */
    int32_t big[CODEC_FRAME_NB], big_out[CODEC_FRAME_WB];
    for (int t = 0; t < 5; t++) {
        for (int i = 0; i < CODEC_FRAME_NB; i++)
            big[i] = (int32_t)lrint(100000 * sin(2 * M_PI * 500 * (t * 160 + i) / 8000.0));
        resampler_run_i32(up, big, CODEC_FRAME_NB, big_out);
    }
    int32_t peak = 0;
    for (int i = 0; i < CODEC_FRAME_WB; i++)
        peak = big_out[i] > peak ? big_out[i] : peak;
    assert_true(peak > 90000);
    resampler_destroy(up);
    resampler_destroy(down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),           cmocka_unit_test(test_wideband_roundtrip),
        cmocka_unit_test(test_payload_checks), cmocka_unit_test(test_opus_fec),
        cmocka_unit_test(test_resampler),      cmocka_unit_test(test_opus_dtx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
