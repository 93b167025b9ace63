#include "media/wav.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void wav_header(uint8_t out[WAV_HEADER_BYTES], uint32_t data_bytes)
{
    wav_header_rate(out, WAV_RATE, data_bytes);
}

void wav_header_rate(uint8_t out[WAV_HEADER_BYTES], uint32_t rate, uint32_t data_bytes)
{
    if (data_bytes > WAV_DATA_MAX)
        data_bytes = WAV_DATA_MAX;
    memcpy(out, "RIFF", 4);
    put_u32(out + 4, 36 + data_bytes);
    memcpy(out + 8, "WAVE", 4);
    memcpy(out + 12, "fmt ", 4);
    put_u32(out + 16, 16);       /* fmt chunk size */
    put_u16(out + 20, 1);        /* PCM */
    put_u16(out + 22, 1);        /* mono */
    put_u32(out + 24, rate);     /* samples per second */
    put_u32(out + 28, rate * 2); /* bytes per second */
    put_u16(out + 32, 2);        /* bytes per sample frame */
    put_u16(out + 34, 16);       /* bits per sample */
    memcpy(out + 36, "data", 4);
    put_u32(out + 40, data_bytes);
}

/* Ours: the format part of our header at one of our rates (the sizes aside), or all zeros (a
 * crash before the header reached the disk: taken as WAV_RATE). Anything else is some other file,
 * left alone. Returns the rate, or 0. */
static uint32_t header_is_ours(const uint8_t *h)
{
    static const uint32_t rates[] = {WAV_RATE, WAV_RATE_WB};
    uint8_t want[WAV_HEADER_BYTES], zero[WAV_HEADER_BYTES] = {0};
    if (memcmp(h, zero, sizeof(zero)) == 0)
        return WAV_RATE;
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        wav_header_rate(want, rates[i], 0);
        if (memcmp(h, want, 4) == 0 && memcmp(h + 8, want + 8, 32) == 0)
            return rates[i];
    }
    return 0;
}

static int write_all_at(int fd, const uint8_t *p, size_t n, off_t at)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, at);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
        at += w;
    }
    return 0;
}

int wav_repair(const char *path, uint64_t *data_bytes, uint32_t *rate)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size, data = 0;
    uint32_t hz = WAV_RATE;
    if (size >= WAV_HEADER_BYTES) {
        uint8_t h[WAV_HEADER_BYTES];
        ssize_t got = pread(fd, h, sizeof(h), 0);
        if (got < 0) {
            rc = -errno;
            goto done;
        }
        if (got != WAV_HEADER_BYTES || !(hz = header_is_ours(h))) {
            rc = -EINVAL;
            goto done;
        }
        data = size - WAV_HEADER_BYTES;
        if (data & 1) { /* half a sample: cut */
            if (ftruncate(fd, (off_t)(size - 1)) < 0) {
                rc = -errno;
                goto done;
            }
            data--;
        }
        if (data > WAV_DATA_MAX) /* beyond what a header can say: described up to its limit */
            data = WAV_DATA_MAX & ~UINT64_C(1);
    } else if (ftruncate(fd, WAV_HEADER_BYTES) < 0) { /* too short: an empty recording */
        rc = -errno;
        goto done;
    }
    uint8_t h[WAV_HEADER_BYTES];
    wav_header_rate(h, hz, (uint32_t)data);
    if ((rc = write_all_at(fd, h, sizeof(h), 0)) < 0)
        goto done;
    if (fdatasync(fd) < 0) {
        rc = -errno;
        goto done;
    }
    if (data_bytes)
        *data_bytes = data;
    if (rate)
        *rate = hz;
done:
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}
