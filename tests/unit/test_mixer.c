/* The mixer: mix-minus (everyone hears the others, never itself), one limit on a 32-bit sum,
 * talk detection, the shared frame for listeners who are silent, and what each listener was sent
 * (mix_heard). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fakes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "media/mixer.h"
#include "media/resample.h"

static void tone(int16_t *x, double hz, double amp, int frame_index)
{
    for (int i = 0; i < MIX_FRAME; i++) {
        int n = frame_index * MIX_FRAME + i;
        x[i] = (int16_t)lrint(amp * sin(2.0 * M_PI * hz * n / 8000.0));
    }
}

static void test_codecs(void **state)
{
    mix_init();
    for (int c = 0; c < 2; c++) {
        int16_t in[MIX_FRAME], out[MIX_FRAME];
        uint8_t enc[MIX_FRAME];
        for (int i = 0; i < MIX_FRAME; i++)
            in[i] = (int16_t)((i - 80) * 400);
        codec_g711_encode((enum codec_id)c, in, enc, MIX_FRAME);
        codec_g711_decode((enum codec_id)c, enc, out, MIX_FRAME);
        for (int i = 0; i < MIX_FRAME; i++) {
            int err = abs(out[i] - in[i]);
            int bound = abs(in[i]) / 16 + 40; /* G.711 is about 4 % + a small step */
            if (err > bound)
                fail_msg("codec %d sample %d: %d -> %d", c, i, in[i], out[i]);
        }
    }
}

static void test_limiter(void **state)
{
    for (int32_t s = -24576; s <= 24576; s += 7)
        assert_int_equal(mix_limit(s), s); /* transparent below the knee */
    int16_t prev = mix_limit(0);
    for (int32_t s = 0; s <= 400 * 32767; s += 997) {
        int16_t v = mix_limit(s);
        assert_true(v >= prev); /* monotonic */
        assert_true(mix_limit(-s) != INT16_MIN);
        assert_int_equal(mix_limit(-s), -v); /* symmetric */
        prev = v;
    }
    assert_true(mix_limit(400 * 32767) > 32000);
}

struct room_fx {
    struct mix_participant parts[8];
    struct mix_participant *ptrs[8];
    struct mix_room room;
};

static void room_init(struct room_fx *f, size_t n)
{
    mix_init();
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        mix_vad_init(&f->parts[i].vad);
        f->ptrs[i] = &f->parts[i];
    }
    f->room.p = f->ptrs;
    f->room.n = n;
}

static void test_mix_minus(void **state)
{
    struct room_fx f;
    const double hz[4] = {300, 500, 700, 0}; /* participant 3 is silent */
    room_init(&f, 4);
    f.parts[1].codec = CODEC_PCMA;
    int16_t heard[4][MIX_FRAME * 10];
    for (int t = 0; t < 20; t++) {
        for (int i = 0; i < 4; i++) {
            f.parts[i].has_in = true;
            if (hz[i] > 0)
                tone(f.parts[i].in, hz[i], 4000, t);
            else
                memset(f.parts[i].in, 0, sizeof(f.parts[i].in));
        }
        mix_room_tick(&f.room);
        if (t >= 10)
            for (int i = 0; i < 4; i++)
                codec_g711_decode(f.parts[i].codec, f.parts[i].out, heard[i] + (t - 10) * MIX_FRAME,
                                  MIX_FRAME);
    }
    assert_int_equal(f.room.talkers, 3);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 3; j++) {
            double level = fake_tone_level(heard[i], MIX_FRAME * 10, hz[j]);
            if (i == j && level > 100)
                fail_msg("participant %d hears itself (%.0f)", i, level);
            if (i != j && (level < 3500 || level > 4500))
                fail_msg("participant %d hears %d at %.0f, want ~4000", i, j, level);
        }
    }
    /* three talkers get own mixes; the silent listener gets the shared one */
    assert_int_equal(f.room.mixes, 4);
    assert_ptr_equal(f.parts[3].out, f.room.shared[CODEC_PCMU]);
}

/* mix_heard gives the PCM each listener was sent, before encoding: encoding it gives the very
 * bytes it got; the only talker hears silence; a deaf one nothing. */
static void test_heard(void **state)
{
    struct room_fx f;
    room_init(&f, 3);
    f.parts[1].codec = CODEC_PCMA;
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < 3; i++) {
            f.parts[i].has_in = true;
            tone(f.parts[i].in, 300.0 + 200.0 * i, i == 2 ? 0 : 20000, t); /* loud: limited */
        }
        mix_room_tick(&f.room);
    }
    int16_t pcm[MIX_FRAME];
    uint8_t enc[MIX_FRAME];
    for (int i = 0; i < 3; i++) {
        mix_heard(&f.room, &f.parts[i], pcm);
        codec_g711_encode(f.parts[i].codec, pcm, enc, MIX_FRAME);
        assert_memory_equal(enc, f.parts[i].out, MIX_FRAME);
    }
    mix_heard(&f.room, &f.parts[0], pcm); /* 0 talks: it hears 1 alone, unchanged */
    assert_memory_equal(pcm, f.parts[1].in, sizeof(pcm));
    mix_heard(&f.room, &f.parts[2], pcm); /* 2 is silent: 0 and 1, limited */
    for (int k = 0; k < MIX_FRAME; k++)
        assert_int_equal(pcm[k], mix_limit(f.parts[0].in[k] + f.parts[1].in[k]));

    f.parts[1].has_in = false; /* 0 is the only talker left */
    f.parts[2].deaf = true;
    mix_room_tick(&f.room);
    assert_int_equal(f.room.talkers, 1);
    for (int i = 0; i < 3; i += 2) {
        memset(pcm, 1, sizeof(pcm));
        mix_heard(&f.room, &f.parts[i], pcm);
        for (int k = 0; k < MIX_FRAME; k++)
            assert_int_equal(pcm[k], 0);
    }
}

static void test_no_wraparound(void **state)
{
    struct room_fx f;
    room_init(&f, 8);
    for (int t = 0; t < 5; t++) {
        for (int i = 0; i < 8; i++) {
            f.parts[i].has_in = true;
            tone(f.parts[i].in, 400, 30000, t); /* 7 in phase: 210,000 peak */
        }
        mix_room_tick(&f.room);
    }
    int16_t out[MIX_FRAME];
    codec_g711_decode(CODEC_PCMU, f.parts[0].out, out, MIX_FRAME);
    int16_t ref[MIX_FRAME];
    tone(ref, 400, 30000, 4);
    for (int i = 0; i < MIX_FRAME; i++) {
        /* same sign as the in-phase sum, never wrapped to the other side */
        if (ref[i] > 2000)
            assert_true(out[i] > 20000);
        if (ref[i] < -2000)
            assert_true(out[i] < -20000);
    }
}

static void test_silent_room_costs_nothing(void **state)
{
    struct room_fx f;
    room_init(&f, 5);
    for (int t = 0; t < 30; t++) {
        for (int i = 0; i < 5; i++) {
            f.parts[i].has_in = true;
            memset(f.parts[i].in, 0, sizeof(f.parts[i].in));
        }
        mix_room_tick(&f.room);
    }
    assert_int_equal(f.room.talkers, 0);
    assert_int_equal(f.room.mixes, 0);
    for (int i = 1; i < 5; i++)
        assert_ptr_equal(f.parts[i].out, f.parts[0].out);
    /* one talker: the listeners share one mix, the talker hears silence */
    for (int t = 0; t < 3; t++) {
        tone(f.parts[2].in, 600, 3000, t);
        mix_room_tick(&f.room);
    }
    assert_int_equal(f.room.talkers, 1);
    assert_int_equal(f.room.mixes, 1);
    int16_t out[MIX_FRAME];
    codec_g711_decode(CODEC_PCMU, f.parts[2].out, out, MIX_FRAME);
    for (int i = 0; i < MIX_FRAME; i++)
        assert_true(abs(out[i]) < 16);
}

static void test_vad_hangover(void **state)
{
    struct room_fx f;
    room_init(&f, 2);
    f.parts[0].has_in = f.parts[1].has_in = true;
    for (int t = 0; t < 10; t++) {
        tone(f.parts[0].in, 440, 2000, t);
        mix_room_tick(&f.room);
    }
    assert_true(f.parts[0].talking);
    assert_false(f.parts[1].talking);
    memset(f.parts[0].in, 0, sizeof(f.parts[0].in));
    int frames = 0;
    while (f.parts[0].talking && frames < 100) {
        mix_room_tick(&f.room);
        frames++;
    }
    assert_true(frames >= 10 && frames <= 20); /* held ~300 ms, then released */
    /* a participant with no audio at all (has_in false) is never a talker */
    f.parts[1].has_in = false;
    mix_room_tick(&f.room);
    assert_false(f.parts[1].talking);
    /* deaf participants get no output */
    f.parts[1].deaf = true;
    mix_room_tick(&f.room);
    assert_null(f.parts[1].out);
}

static void tone_at(int16_t *x, size_t n, const double *hz, size_t k, int t, double rate)
{
    for (size_t i = 0; i < n; i++) {
        double v = 0, time = (double)((size_t)t * n + i) / rate;
        for (size_t j = 0; j < k; j++)
            v += 4000 * sin(2.0 * M_PI * hz[j] * time);
        x[i] = (int16_t)lrint(v);
    }
}

/* Two bands in one room: a phone (PCMU, 8 kHz) says 500 Hz, a G.722 phone says 1 kHz and 6 kHz,
 * an Opus browser says 1,500 Hz and 5 kHz, a second Opus listener is silent. Each hears the
 * others and not itself; the wideband listeners get the 6 kHz and 5 kHz tones, the phone gets
 * what 8 kHz can carry (and no 6 kHz folded down to 2 kHz). Both silent Opus listeners share one
 * encoding; the bridges run once each per tick. */
static void test_bands(void **state)
{
    struct room_fx f;
    room_init(&f, 4);
    enum codec_id codecs[4] = {CODEC_PCMU, CODEC_G722, CODEC_OPUS, CODEC_OPUS};
    for (int i = 0; i < 4; i++) {
        f.parts[i].codec = codecs[i];
        f.parts[i].enc = codec_enc_create(codecs[i], NULL);
    }
    f.room.shared_enc[CODEC_OPUS] = codec_enc_create(CODEC_OPUS, NULL);
    f.room.shared_enc[CODEC_G722] = codec_enc_create(CODEC_G722, NULL);
    f.room.up = resampler_create(8000, 16000);
    f.room.down = resampler_create(16000, 8000);
    const double says[3][2] = {{500, 0}, {1000, 6000}, {1500, 5000}};
    const size_t ntones[4] = {1, 2, 2, 0};
    enum { T = 25, KEEP = 10 };
    static int16_t heard[4][MIX_FRAME_WB * KEEP];
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < 4; i++) {
            size_t n = codec_samples(codecs[i]);
            f.parts[i].has_in = true;
            tone_at(f.parts[i].in, n, says[i < 3 ? i : 0], ntones[i], t,
                    n == MIX_FRAME ? 8000 : 16000);
        }
        mix_room_tick(&f.room);
        if (t >= T - KEEP)
            for (int i = 0; i < 4; i++)
                mix_heard(&f.room, &f.parts[i],
                          heard[i] + (size_t)(t - (T - KEEP)) * codec_samples(codecs[i]));
    }
    assert_int_equal(f.room.talkers, 3);
    assert_int_equal(f.room.mixes, 4); /* three own mixes, one shared Opus frame */
    assert_ptr_equal(f.parts[3].out, f.room.shared[CODEC_OPUS]);
    assert_true(f.parts[2].out == f.parts[2].own && f.parts[2].out_len > 0);
    for (int i = 0; i < 4; i++) {
        size_t n = codec_samples(codecs[i]);
        double rate = n == MIX_FRAME ? 8000 : 16000;
        for (int j = 0; j < 3; j++)
            for (size_t k = 0; k < ntones[j]; k++) {
                double hz = says[j][k];
                double level = fake_tone_level_at(heard[i], n * KEEP, hz, rate);
                bool carried = hz < rate / 2 - 600;
                if (i == j && level > 100)
                    fail_msg("%d hears itself at %.0f Hz (%.0f)", i, hz, level);
                if (i != j && carried && (level < 3500 || level > 4500))
                    fail_msg("%d hears %d's %.0f Hz at %.0f, want ~4000", i, j, hz, level);
                if (!carried) { /* cut, not folded back into the narrow band */
                    double alias = fake_tone_level_at(heard[i], n * KEEP, rate - hz, rate);
                    if (alias > 100)
                        fail_msg("%d hears %.0f Hz folded to %.0f (%.0f)", i, hz, rate - hz, alias);
                }
            }
    }
    for (int i = 0; i < 4; i++)
        codec_enc_destroy(f.parts[i].enc);
    codec_enc_destroy(f.room.shared_enc[CODEC_OPUS]);
    codec_enc_destroy(f.room.shared_enc[CODEC_G722]);
    resampler_destroy(f.room.up);
    resampler_destroy(f.room.down);
}

/* The whole mix for taps: 16 kHz once the room has a wideband member, with a phone's voice
 * bridged in even when no wideband member listens (the only one is deaf); 8 kHz in a room of
 * phones alone. */
static void test_whole_mix(void **state)
{
    struct room_fx f;
    room_init(&f, 2);
    f.parts[0].codec = CODEC_PCMU;
    f.parts[1].codec = CODEC_G722;
    f.parts[1].enc = codec_enc_create(CODEC_G722, NULL);
    f.parts[1].deaf = true;
    f.room.up = resampler_create(8000, 16000);
    f.room.down = resampler_create(16000, 8000);
    f.room.want_whole = true;
    enum { T = 20 };
    static int16_t whole[MIX_FRAME_WB * T];
    const double a[1] = {700}, b[1] = {6000};
    for (int t = 0; t < T; t++) {
        f.parts[0].has_in = f.parts[1].has_in = true;
        tone_at(f.parts[0].in, MIX_FRAME, a, 1, t, 8000);
        tone_at(f.parts[1].in, MIX_FRAME_WB, b, 1, t, 16000);
        mix_room_tick(&f.room);
        assert_int_equal(mix_whole(&f.room, whole + (size_t)t * MIX_FRAME_WB), 16000);
    }
    size_t skip = 5 * MIX_FRAME_WB; /* the resampler's start */
    double l700 = fake_tone_level_at(whole + skip, (T - 5) * MIX_FRAME_WB, 700, 16000);
    double l6k = fake_tone_level_at(whole + skip, (T - 5) * MIX_FRAME_WB, 6000, 16000);
    if (l700 < 3500 || l6k < 3500)
        fail_msg("the whole mix holds 700 Hz at %.0f and 6 kHz at %.0f, want ~4000", l700, l6k);
    codec_enc_destroy(f.parts[1].enc);
    resampler_destroy(f.room.up);
    resampler_destroy(f.room.down);

    room_init(&f, 2);
    f.room.want_whole = true;
    f.parts[0].has_in = true;
    tone(f.parts[0].in, 500, 4000, 0);
    mix_room_tick(&f.room);
    assert_int_equal(mix_whole(&f.room, whole), 8000);
}

/* A room of phones alone never runs a bridge (and needs none). */
static void test_narrow_room_needs_no_bridge(void **state)
{
    struct room_fx f;
    room_init(&f, 2);
    for (int t = 0; t < 5; t++) {
        for (int i = 0; i < 2; i++) {
            f.parts[i].has_in = true;
            tone(f.parts[i].in, 400.0 + 300 * i, 4000, t);
        }
        mix_room_tick(&f.room); /* no bridges given: must not need them */
    }
    assert_ptr_equal(f.room.whole_nb, f.room.sum_nb);
    assert_int_equal(f.room.mixes, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codecs),
        cmocka_unit_test(test_limiter),
        cmocka_unit_test(test_mix_minus),
        cmocka_unit_test(test_bands),
        cmocka_unit_test(test_narrow_room_needs_no_bridge),
        cmocka_unit_test(test_whole_mix),
        cmocka_unit_test(test_heard),
        cmocka_unit_test(test_no_wraparound),
        cmocka_unit_test(test_silent_room_costs_nothing),
        cmocka_unit_test(test_vad_hangover),
    };
    return cmocka_run_group_tests_name("mixer", tests, NULL, NULL);
}
