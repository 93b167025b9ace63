/* Loading sounds: a 16 kHz stereo WAV becomes 8 kHz mono of the same length with its tone intact,
 * from a path, a file:// URL and over HTTP from a loopback server (with a redirect); missing files,
 * 404s, redirect loops, non-sound files and unusable locations give messages that say so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fakes.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "media/audiofile.h"

#define TONE_HZ 1000.0
#define AMP 0.5

static char dir[64];
static char wav_path[128], text_path[128];
static uint8_t *wav_bytes;
static size_t wav_len;

/* ---- a tiny HTTP server on loopback ---- */

static int srv_fd, srv_port;
static pthread_t srv_thread;

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, const char *status, const char *extra, const void *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     extra, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void *serve(void *arg)
{
    for (;;) {
        int fd = accept(srv_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shut down */
        char req[2048];
        size_t got = 0;
        while (got < sizeof(req) - 1) {
            ssize_t r = recv(fd, req + got, sizeof(req) - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[got] = '\0';
        char path[256] = "";
        sscanf(req, "GET %255s", path);
        if (strcmp(path, "/x.wav") == 0)
            respond(fd, "200 OK", "Content-Type: audio/wav\r\n", wav_bytes, wav_len);
        else if (strcmp(path, "/redirect") == 0)
            respond(fd, "302 Found", "Location: /x.wav\r\n", "", 0);
        else if (strcmp(path, "/loop") == 0)
            respond(fd, "302 Found", "Location: /loop\r\n", "", 0);
        else if (strcmp(path, "/text") == 0)
            respond(fd, "200 OK", "", "just some words\n", 16);
        else
            respond(fd, "404 Not Found", "", "no", 2);
        close(fd);
    }
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_audiofile.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(wav_path, sizeof(wav_path), "%s/tone.wav", dir);
    snprintf(text_path, sizeof(text_path), "%s/notes.wav", dir);

    /* 1.5 s of a 1 kHz tone at 16 kHz, stereo (both channels), 16-bit PCM */
    SF_INFO info = {.samplerate = 16000, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(wav_path, SFM_WRITE, &info);
    assert_non_null(sf);
    size_t frames = 24000;
    float *buf = malloc(frames * 2 * sizeof(float));
    for (size_t i = 0; i < frames; i++)
        buf[2 * i] = buf[2 * i + 1] =
            (float)(AMP * sin(2.0 * M_PI * TONE_HZ * (double)i / 16000.0));
    assert_int_equal(sf_writef_float(sf, buf, (sf_count_t)frames), (sf_count_t)frames);
    sf_close(sf);
    free(buf);

    FILE *f = fopen(wav_path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    wav_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    wav_bytes = malloc(wav_len);
    assert_int_equal(fread(wav_bytes, 1, wav_len, f), wav_len);
    fclose(f);

    f = fopen(text_path, "w");
    assert_non_null(f);
    fputs("not a sound at all, only some text that pretends\n", f);
    fclose(f);

    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(srv_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(srv_fd, 16), 0);
    socklen_t len = sizeof(sa);
    getsockname(srv_fd, (struct sockaddr *)&sa, &len);
    srv_port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&srv_thread, NULL, serve, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    shutdown(srv_fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(srv_thread, NULL);
    close(srv_fd);
    free(wav_bytes);
    unlink(wav_path);
    unlink(text_path);
    rmdir(dir);
    return 0;
}

/* ---- loading ---- */

struct result {
    int calls;
    struct media_clip *clip;
    char error[512];
};

static void on_done(void *arg, struct media_clip *clip, const char *error)
{
    struct result *r = arg;
    r->calls++;
    r->clip = clip;
    if (error)
        snprintf(r->error, sizeof(r->error), "%s", error);
}

/* Loads location on a fresh loop; returns the result (clip or error). */
static struct result load(const char *location)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct result r = {0};
    char err[256];
    struct audio_job *j = audio_load(&loop, location, on_done, &r, err, sizeof(err));
    if (!j)
        fail_msg("audio_load(%s): %s", location, err);
    assert_int_equal(r.calls, 0); /* never from inside audio_load() */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.calls, 1);
    return r;
}

static void check_tone(struct result r)
{
    struct media_clip *c = r.clip;
    if (!c)
        fail_msg("no clip: %s", r.error);
    size_t n = media_clip_samples(c);
    assert_true(n >= 11880 && n <= 12120); /* 1.5 s at 8 kHz, within 1 % */
    const int16_t *x = media_clip_data(c);
    /* the middle second: the tone at its level, nothing at other frequencies */
    double at = fake_tone_level(x + 2000, 8000, TONE_HZ) / 32768.0;
    double off = fake_tone_level(x + 2000, 8000, 2500.0) / 32768.0;
    assert_true(fabs(at - AMP) < 0.05 * AMP);
    assert_true(off < 0.01);
    media_clip_unref(c);
}

static void test_local_file(void **state)
{
    struct result r = load(wav_path);
    check_tone(r);

    char url[192];
    snprintf(url, sizeof(url), "file://%s", wav_path);
    r = load(url);
    check_tone(r);
    snprintf(url, sizeof(url), "file://localhost%s", wav_path);
    r = load(url);
    check_tone(r);
    /* The first letter of the file's name percent-encoded. */
    const char *base = strrchr(wav_path, '/') + 1;
    snprintf(url, sizeof(url), "file://%.*s%%%02X%s", (int)(base - wav_path), wav_path,
             (unsigned char)base[0], base + 1);
    r = load(url);
    check_tone(r);
}

static void test_local_errors(void **state)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/missing.wav", dir);
    struct result r = load(path);
    assert_null(r.clip);
    assert_non_null(strstr(r.error, "file not found"));
    assert_non_null(strstr(r.error, "missing.wav"));

    r = load(text_path);
    assert_null(r.clip);
    assert_non_null(strstr(r.error, "not a sound file libsndfile can read"));

    r = load(dir);
    assert_null(r.clip);
    assert_non_null(strstr(r.error, "not a regular file"));

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256];
    const char *bad[] = {"relative/path.wav", "ftp://example.com/x.wav", "file://other/x.wav", "",
                         "x.wav", "file:///tmp/a%2.wav", "file:///tmp/a%00.wav"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(audio_load(&loop, bad[i], on_done, &r, err, sizeof(err)));
        assert_true(strlen(err) > 10);
    }

    /* Cancelled: no callback, nothing leaked. */
    struct result c = {0};
    struct audio_job *j = audio_load(&loop, wav_path, on_done, &c, err, sizeof(err));
    assert_non_null(j);
    audio_cancel(j);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_http(void **state)
{
    char url[128];
    /* By default a sound is never fetched from the server's own network (as webhooks). */
    audio_allow_private_hosts(false);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x.wav", srv_port);
    struct result r = load(url);
    assert_null(r.clip);
    assert_non_null(strstr(r.error, "private or local address"));
    audio_allow_private_hosts(true); /* the test server is on loopback */
    r = load(url);
    check_tone(r);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect", srv_port);
    r = load(url);
    check_tone(r);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/missing.wav", srv_port);
    r = load(url);
    assert_null(r.clip);
    char want[160];
    snprintf(want, sizeof(want), "HTTP 404 fetching %s", url);
    assert_string_equal(r.error, want);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/loop", srv_port);
    r = load(url);
    assert_null(r.clip);
    assert_non_null(strstr(r.error, "redirects"));

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/text", srv_port);
    r = load(url);
    assert_null(r.clip);
    assert_non_null(strstr(r.error, "not a sound file libsndfile can read"));

    /* credentials in a URL are not repeated in messages */
    snprintf(url, sizeof(url), "http://user:secret@127.0.0.1:%d/missing.wav", srv_port);
    r = load(url);
    assert_null(r.clip);
    assert_non_null(strstr(r.error, "HTTP 404"));
    assert_null(strstr(r.error, "secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_file),
        cmocka_unit_test(test_local_errors),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests_name("audiofile", tests, setup, teardown);
}
