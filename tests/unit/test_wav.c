/* The recorder's WAV files: the canonical header byte for byte, and the repair of what a crash
 * leaves (a header that says nothing, an odd trailing byte, a file shorter than a header, a
 * header that never reached the disk), each read back with libsndfile; another file is left
 * alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "media/wav.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_wav.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* A file of header (or nothing when NULL) followed by n samples k * 3 and extra stray bytes. */
static void write_file(const char *path, const uint8_t *header, size_t hlen, size_t n, size_t extra)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (header)
        assert_int_equal(fwrite(header, 1, hlen, f), hlen);
    for (size_t k = 0; k < n; k++) {
        int16_t s = (int16_t)(k * 3);
        uint8_t le[2] = {(uint8_t)((uint16_t)s & 0xff), (uint8_t)((uint16_t)s >> 8)};
        assert_int_equal(fwrite(le, 1, 2, f), 2);
    }
    for (size_t k = 0; k < extra; k++)
        assert_int_equal(fputc(0x5a, f), 0x5a);
    fclose(f);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Opens with libsndfile: 8 kHz mono 16-bit WAV of frames samples k * 3. */
static void check_readable_at(const char *path, sf_count_t frames, int rate)
{
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        fail_msg("sf_open %s: %s", path, sf_strerror(NULL));
    assert_int_equal(info.frames, frames);
    assert_int_equal(info.samplerate, rate);
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    if (frames > 0) {
        short *buf = malloc((size_t)frames * sizeof(short));
        assert_non_null(buf);
        assert_int_equal(sf_read_short(sf, buf, frames), frames);
        for (sf_count_t k = 0; k < frames; k++)
            assert_int_equal(buf[k], (short)(k * 3));
        free(buf);
    }
    sf_close(sf);
}

static void check_readable(const char *path, sf_count_t frames)
{
    check_readable_at(path, frames, 8000);
}

/* A 16 kHz recording a crash left behind stays 16 kHz. */
static void test_repair_wideband(void **state)
{
    char path[128];
    path_of(path, sizeof(path), "wide.wav");
    uint8_t h[WAV_HEADER_BYTES];
    wav_header_rate(h, WAV_RATE_WB, 0);
    write_file(path, h, sizeof(h), 3200, 0);
    uint64_t data = 0;
    uint32_t rate = 0;
    assert_int_equal(wav_repair(path, &data, &rate), 0);
    assert_int_equal(data, 6400);
    assert_int_equal(rate, 16000);
    check_readable_at(path, 3200, 16000);
    /* another rate is someone else's file */
    wav_header_rate(h, 44100, 0);
    write_file(path, h, sizeof(h), 10, 0);
    assert_int_equal(wav_repair(path, NULL, NULL), -EINVAL);
}

static void test_header_bytes(void **state)
{
    static const uint8_t want[WAV_HEADER_BYTES] = {
        'R',  'I',  'F', 'F', 0x64, 0x01, 0x00, 0x00, 'W', 'A', 'V', 'E', /* 36 + 320 */
        'f',  'm',  't', ' ', 16,   0,    0,    0,    1,   0,   1,   0,   /* PCM, mono */
        0x40, 0x1f, 0,   0,   0x80, 0x3e, 0,    0,    2,   0,   16,  0,   /* 8000, 16000 B/s */
        'd',  'a',  't', 'a', 0x40, 0x01, 0x00, 0x00};                    /* 320 */
    uint8_t h[WAV_HEADER_BYTES];
    wav_header(h, 320);
    assert_memory_equal(h, want, sizeof(want));
    wav_header(h, UINT32_MAX); /* beyond what a header can say: its limit */
    static const uint8_t riff_max[4] = {0xff, 0xff, 0xff, 0xff},
                         data_max[4] = {0xdb, 0xff, 0xff, 0xff};
    assert_memory_equal(h + 4, riff_max, 4);
    assert_memory_equal(h + 40, data_max, 4);

    char path[128];
    path_of(path, sizeof(path), "plain.wav");
    wav_header(h, 2 * 1000);
    write_file(path, h, sizeof(h), 1000, 0);
    check_readable(path, 1000);
}

/* A crash before the first header rewrite: the header says 0, the data is on disk. */
static void test_repair_sizes(void **state)
{
    char path[128];
    path_of(path, sizeof(path), "crashed.wav");
    uint8_t h[WAV_HEADER_BYTES];
    wav_header(h, 0);
    write_file(path, h, sizeof(h), 4000, 0);
    check_readable(path, 0);
    uint64_t data = 1;
    assert_int_equal(wav_repair(path, &data, NULL), 0);
    assert_int_equal(data, 8000);
    check_readable(path, 4000);
    assert_int_equal(wav_repair(path, NULL, NULL), 0); /* again: the same */
    check_readable(path, 4000);

    /* a header saying more than there is (a file cut short) is put right too */
    wav_header(h, 1000000);
    write_file(path, h, sizeof(h), 10, 0);
    assert_int_equal(wav_repair(path, &data, NULL), 0);
    assert_int_equal(data, 20);
    check_readable(path, 10);
}

static void test_repair_odd_byte(void **state)
{
    char path[128];
    path_of(path, sizeof(path), "odd.wav");
    uint8_t h[WAV_HEADER_BYTES];
    wav_header(h, 0);
    write_file(path, h, sizeof(h), 801, 1);
    uint64_t data = 0;
    assert_int_equal(wav_repair(path, &data, NULL), 0);
    assert_int_equal(data, 1602);
    assert_int_equal(file_size(path), WAV_HEADER_BYTES + 1602);
    check_readable(path, 801);
}

static void test_repair_short_and_unwritten(void **state)
{
    char path[128];
    path_of(path, sizeof(path), "short.wav");
    write_file(path, (const uint8_t *)"RIFF\x24\0", 6, 0, 0);
    uint64_t data = 1;
    assert_int_equal(wav_repair(path, &data, NULL), 0);
    assert_int_equal(data, 0);
    assert_int_equal(file_size(path), WAV_HEADER_BYTES);
    check_readable(path, 0);

    path_of(path, sizeof(path), "empty.wav");
    write_file(path, NULL, 0, 0, 0);
    assert_int_equal(wav_repair(path, &data, NULL), 0);
    check_readable(path, 0);

    /* the data reached the disk, the header did not (zeros where it should be) */
    path_of(path, sizeof(path), "zeros.wav");
    uint8_t zero[WAV_HEADER_BYTES] = {0};
    write_file(path, zero, sizeof(zero), 320, 0);
    assert_int_equal(wav_repair(path, &data, NULL), 0);
    assert_int_equal(data, 640);
    check_readable(path, 320);
}

static void test_repair_refuses(void **state)
{
    char path[128];
    path_of(path, sizeof(path), "missing.wav");
    assert_int_equal(wav_repair(path, NULL, NULL), -ENOENT);

    path_of(path, sizeof(path), "notes.txt");
    const char *text = "not a recording: some notes that are longer than a WAV header is\n";
    write_file(path, (const uint8_t *)text, strlen(text), 0, 0);
    assert_int_equal(wav_repair(path, NULL, NULL), -EINVAL);
    FILE *f = fopen(path, "rb");
    char back[128] = {0};
    assert_int_equal(fread(back, 1, sizeof(back), f), strlen(text));
    fclose(f);
    assert_string_equal(back, text); /* untouched */

    assert_int_equal(wav_repair(dir, NULL, NULL), -EISDIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_bytes),
        cmocka_unit_test(test_repair_sizes),
        cmocka_unit_test(test_repair_wideband),
        cmocka_unit_test(test_repair_odd_byte),
        cmocka_unit_test(test_repair_short_and_unwritten),
        cmocka_unit_test(test_repair_refuses),
    };
    return cmocka_run_group_tests_name("wav", tests, setup, teardown);
}
