/* The external recogniser: a whisper.cpp server (POST /inference) or an OpenAI-style endpoint
 * (POST /v1/audio/transcriptions); stt_url is the full endpoint URL. Such servers decode one
 * request at a time, so one goes at a time: the recogniser has one thread. That thread turns the
 * utterance into a 16 kHz WAV file (resampling costs 4 ms per second of audio: not for the loop)
 * and hands it to the control loop, which sends it with libcurl's multi interface (core/curl_uv, as
 * the webhooks do) and hands the answer back to the waiting thread. Thread and loop meet under
 * h->mu: the thread posts a job (READY) and sends the stt's wake-up; the loop takes it (RUNNING)
 * and, once curl is done, writes the answer into the thread's stt_answer and marks it DONE.
 *
 * The request: multipart/form-data with file (the WAV, audio/wav), language, response_format=json
 * and temperature=0. The language sent is the tag's primary subtag in lower case ("de" for
 * "de-DE"): whisper.cpp and OpenAI both want ISO 639-1 codes, and whisper.cpp refuses a
 * request whose language it does not know. The answer is JSON {"text": "..."}; a text that is
 * only one bracketed tag (whisper.cpp's "[BLANK_AUDIO]", "[MUSIC]") is nothing said. A failure
 * (no connection, no answer within the timeout, an answer other than 2xx, not that JSON) is an
 * STT_FAILED for that utterance with a message that names the URL (without a query or user
 * information, which could hold a secret). */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/curl_uv.h"
#include "core/log.h"
#include "core/mem.h"
#include "media/wav.h"
#include "speech/stt_internal.h"

#define BODY_MAX (64 * 1024) /* the answer: a transcript of seconds of speech is a few hundred */
#define SHOWN_MAX 128        /* the URL in messages (longer is cut) */

enum job_state { JOB_IDLE, JOB_READY, JOB_RUNNING, JOB_DONE };

struct stt_http {
    uv_loop_t *loop;
    uv_async_t *wake;
    char *url;
    char shown[SHOWN_MAX]; /* the URL for messages */
    int timeout_ms;
    struct curl_uv *cu;
    struct curl_slist *headers;
    bool destroying;

    /* thread ↔ loop */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum job_state state;
    bool cancelled;
    const uint8_t *wav;
    size_t wav_len;
    char lang[STT_LANGUAGE_LEN + 1];
    struct stt_answer *answer;
    int rc;

    /* loop-owned: the request in flight */
    CURL *easy;
    curl_mime *mime;
    char *body;
    size_t body_len;
    bool body_too_big;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- the URL ---- */

int stt_http_check_url(const char *url, char *err, size_t errlen)
{
    if (strlen(url) > STT_URL_MAX) {
        snprintf(err, errlen, "stt_url is longer than %d characters", STT_URL_MAX);
        return -1;
    }
    CURLU *u = curl_url();
    if (!u)
        die("out of memory parsing a URL");
    char *scheme = NULL, *host = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        snprintf(err, errlen,
                 "stt_url is not an absolute http:// or https:// URL with a host: the full "
                 "endpoint, e.g. http://127.0.0.1:8080/inference (whisper.cpp) or "
                 "http://127.0.0.1:8000/v1/audio/transcriptions");
        rc = -1;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* scheme://host[:port]/path: what a message may show of the URL. */
static void url_shown(const char *url, char *out, size_t cap)
{
    str_copy(out, cap, "?");
    CURLU *u = curl_url();
    if (!u)
        die("out of memory parsing a URL");
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0); /* none when the scheme's default */
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        snprintf(out, cap, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
                 path ? path : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}

/* ---- the answer (loop) ---- */

/* Only one bracketed tag, "[BLANK_AUDIO]": whisper.cpp's way of saying nothing was said. */
static bool only_a_tag(const char *t)
{
    size_t n = strlen(t);
    return n >= 2 && t[0] == '[' && t[n - 1] == ']' && !memchr(t + 1, ']', n - 2);
}

/* Printable ASCII of a body for a message. */
static void snippet(const char *body, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)body[i];
        /* no double quotes: messages go into log lines as error="..." */
        out[o++] = c == '"' ? '\'' : c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    out[o] = '\0';
}

static int parse_answer(struct stt_http *h, struct stt_answer *out)
{
    json_error_t je;
    json_t *root = json_loadb(h->body ? h->body : "", h->body_len, 0, &je);
    json_t *text = json_is_object(root) ? json_object_get(root, "text") : NULL;
    if (!json_is_string(text)) {
        char snip[80];
        snippet(h->body ? h->body : "", h->body_len, snip, sizeof(snip));
        snprintf(out->error, sizeof(out->error),
                 "the recogniser at %s answered something other than JSON with a \"text\" "
                 "string: %s",
                 h->shown, snip);
        json_decref(root);
        return -1;
    }
    str_copy(out->text, sizeof(out->text), json_string_value(text));
    stt_text_tidy(out->text, STT_TEXT_MAX);
    if (only_a_tag(out->text))
        out->text[0] = '\0';
    out->confidence = -1; /* response_format=json has none */
    json_decref(root);
    return 0;
}

static void finish(struct stt_http *h, CURLcode rc)
{
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    pthread_mutex_lock(&h->mu);
    struct stt_answer *out = h->answer;
    int result = -1;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(out->error, sizeof(out->error), "the recogniser at %s did not answer within %d ms",
                 h->shown, h->timeout_ms);
    } else if (rc == CURLE_WRITE_ERROR && h->body_too_big) {
        snprintf(out->error, sizeof(out->error), "the recogniser at %s answered more than %d bytes",
                 h->shown, BODY_MAX);
    } else if (rc != CURLE_OK) {
        snprintf(out->error, sizeof(out->error), "the recogniser at %s did not answer: %s",
                 h->shown, h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
    } else if (status < 200 || status > 299) {
        char snip[100];
        snippet(h->body ? h->body : "", h->body_len, snip, sizeof(snip));
        snprintf(out->error, sizeof(out->error), "the recogniser at %s answered HTTP %ld: %s",
                 h->shown, status, snip);
    } else {
        result = parse_answer(h, out);
    }
    h->rc = result;
    h->state = JOB_DONE;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* ---- the request (loop) ---- */

static void request_free(struct stt_http *h)
{
    if (h->easy) {
        curl_multi_remove_handle(curl_uv_multi(h->cu), h->easy);
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    curl_mime_free(h->mime);
    h->mime = NULL;
    free(h->body);
    h->body = NULL;
    h->body_len = 0;
    h->body_too_big = false;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct stt_http *h = userdata;
    size_t n = size * nmemb;
    if (h->body_len + n > BODY_MAX) {
        h->body_too_big = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    h->body = xrealloc(h->body, h->body_len + n + 1);
    memcpy(h->body + h->body_len, ptr, n);
    h->body_len += n;
    h->body[h->body_len] = '\0';
    return n;
}

static int add_field(curl_mime *mime, const char *name, const char *value)
{
    curl_mimepart *p = curl_mime_addpart(mime);
    if (!p || curl_mime_name(p, name) != CURLE_OK ||
        curl_mime_data(p, value, CURL_ZERO_TERMINATED) != CURLE_OK)
        return -1;
    return 0;
}

/* Builds and adds the request for the job taken; -1 with the answer's error set. */
static int request_start(struct stt_http *h, const uint8_t *wav, size_t wav_len, const char *lang,
                         struct stt_answer *out)
{
    h->errbuf[0] = '\0';
    h->easy = curl_easy_init();
    if (!h->easy)
        goto fail;
    h->mime = curl_mime_init(h->easy);
    if (!h->mime)
        goto fail;
    curl_mimepart *file = curl_mime_addpart(h->mime);
    if (!file || curl_mime_name(file, "file") != CURLE_OK ||
        curl_mime_data(file, (const char *)wav, wav_len) != CURLE_OK ||
        curl_mime_filename(file, "utterance.wav") != CURLE_OK ||
        curl_mime_type(file, "audio/wav") != CURLE_OK)
        goto fail;
    if (add_field(h->mime, "language", lang) < 0 ||
        add_field(h->mime, "response_format", "json") < 0 ||
        add_field(h->mime, "temperature", "0") < 0)
        goto fail;
    CURLcode rc = CURLE_OK;
    /* Every option is checked: a request half set up must not go out. */
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(h->easy, opt, val);                                              \
    } while (0)
    SET(CURLOPT_URL, h->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* The operator's recogniser is usually on this machine or next to it: an http_proxy in the
     * environment would only get in the way. */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    SET(CURLOPT_USERAGENT, "conferenced");
    SET(CURLOPT_HTTPHEADER, h->headers);
    SET(CURLOPT_MIMEPOST, h->mime);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, h);
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_PRIVATE, h);
#undef SET
    if (rc != CURLE_OK || curl_multi_add_handle(curl_uv_multi(h->cu), h->easy) != CURLM_OK)
        goto fail;
    return 0;
fail:
    request_free(h);
    snprintf(out->error, sizeof(out->error),
             "the request to the recogniser at %s could not be made", h->shown);
    return -1;
}

void stt_http_poll(struct stt_http *h)
{
    if (h->destroying || h->easy)
        return;
    pthread_mutex_lock(&h->mu);
    if (h->state != JOB_READY || h->cancelled) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    h->state = JOB_RUNNING;
    const uint8_t *wav = h->wav;
    size_t wav_len = h->wav_len;
    char lang[sizeof(h->lang)];
    str_copy(lang, sizeof(lang), h->lang);
    struct stt_answer *out = h->answer;
    pthread_mutex_unlock(&h->mu);
    /* The thread waits (and its buffer stays put) until DONE; curl copies the WAV anyway. */
    if (request_start(h, wav, wav_len, lang, out) < 0) {
        pthread_mutex_lock(&h->mu);
        h->rc = -1;
        h->state = JOB_DONE;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
}

/* A transfer finished: the only one is the request in flight. */
static void on_done(void *ctx, CURL *easy, CURLcode rc)
{
    struct stt_http *h = ctx;
    if (easy != h->easy)
        return;
    finish(h, rc);
    request_free(h);
}

struct stt_http *stt_http_create(uv_loop_t *loop, uv_async_t *wake, const char *url, int timeout_ms)
{
    struct stt_http *h = xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->wake = wake;
    h->url = xstrdup(url);
    url_shown(url, h->shown, sizeof(h->shown));
    h->timeout_ms = timeout_ms;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->cu = curl_uv_create(loop, on_done, NULL, h);
    const char *hdrs[] = {"Accept: application/json",
                          /* no 100-continue round trip (and 1 s stall) before the upload */
                          "Expect:"};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        struct curl_slist *n = curl_slist_append(h->headers, hdrs[i]);
        if (!n)
            die("out of memory building the recogniser's headers");
        h->headers = n;
    }
    return h;
}

void stt_http_cancel(struct stt_http *h)
{
    request_free(h);
    pthread_mutex_lock(&h->mu);
    h->cancelled = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void stt_http_destroy(struct stt_http *h)
{
    if (!h)
        return;
    h->destroying = true;
    curl_uv_stop(h->cu);
    request_free(h);
    curl_uv_destroy(h->cu);
    curl_slist_free_all(h->headers);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->url);
    free(h);
}

/* ---- the recogniser's thread ---- */

struct http_thread {
    struct stt_http *h;
    struct stt_resampler *rs;
    uint8_t *wav;
    size_t cap;
};

static void *http_open(void *shared, size_t max_samples, const atomic_bool *stop, char *err,
                       size_t errlen)
{
    (void)stop; /* stt_http_cancel() ends a wait */
    struct stt_resampler *rs = stt_resampler_create(max_samples, err, errlen);
    if (!rs)
        return NULL;
    struct http_thread *t = xcalloc(1, sizeof(*t));
    t->h = shared;
    t->rs = rs;
    /* max_samples is at the recogniser's rate (an 8 kHz utterance, resampled, is as long). */
    t->cap = WAV_HEADER_BYTES + ((size_t)max_samples + 256) * 2;
    t->wav = xmalloc(t->cap);
    return t;
}

/* The primary subtag in lower case: "de-DE" → "de". */
static void primary_subtag(const char *lang, char *out, size_t cap)
{
    size_t i = 0;
    for (; lang[i] && lang[i] != '-' && i + 1 < cap; i++)
        out[i] = (char)(lang[i] >= 'A' && lang[i] <= 'Z' ? lang[i] - 'A' + 'a' : lang[i]);
    out[i] = '\0';
}

static int http_recognise(void *state, const struct stt_audio *a, struct stt_answer *out)
{
    struct http_thread *t = state;
    struct stt_http *h = t->h;
    size_t n = a->n;
    const int16_t *pcm = a->pcm;
    if (a->rate != STT_RECOGNISER_RATE &&
        !(pcm = stt_resample(t->rs, a->pcm, a->n, &n, out->error, sizeof(out->error))))
        return -1;
    size_t bytes = n * 2;
    if (WAV_HEADER_BYTES + bytes > t->cap)
        bytes = t->cap - WAV_HEADER_BYTES;
    wav_header_rate(t->wav, STT_RECOGNISER_RATE, (uint32_t)bytes);
    uint8_t *p = t->wav + WAV_HEADER_BYTES;
    for (size_t i = 0; i < bytes / 2; i++) { /* little endian whatever the host */
        p[2 * i] = (uint8_t)((uint16_t)pcm[i] & 0xff);
        p[2 * i + 1] = (uint8_t)((uint16_t)pcm[i] >> 8);
    }

    pthread_mutex_lock(&h->mu);
    int rc = -1;
    if (!h->cancelled) {
        h->wav = t->wav;
        h->wav_len = WAV_HEADER_BYTES + bytes;
        primary_subtag(a->language, h->lang, sizeof(h->lang));
        h->answer = out;
        h->state = JOB_READY;
        uv_async_send(h->wake);
        while (h->state != JOB_DONE && !h->cancelled)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->state == JOB_DONE)
            rc = h->rc;
        h->state = JOB_IDLE;
        h->answer = NULL;
    }
    if (rc != 0 && h->cancelled)
        snprintf(out->error, sizeof(out->error), "the speech recogniser is stopping");
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void http_close(void *state)
{
    struct http_thread *t = state;
    stt_resampler_destroy(t->rs);
    free(t->wav);
    free(t);
}

const struct stt_backend stt_http_backend = {
    .name = "http",
    .open = http_open,
    .recognise = http_recognise,
    .close = http_close,
};
