#include "media/audiofile.h"

#include <curl/curl.h>
#include <errno.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "core/uri.h"
#include "events/webhook.h"

#define OUT_RATE 8000
#define CHUNK_FRAMES 4096
#define MAX_CHANNELS 64
#define MAX_LOCATION 4096
#define SHOWN_LOCATION 200 /* how much of a location an error message repeats */

struct audio_job {
    uv_work_t work;
    atomic_bool cancelled; /* read by the worker to abort a fetch */
    char *location;        /* as given, for messages (credentials masked) */
    char *url;             /* http(s), or NULL */
    char *path;            /* local file, or NULL */
    audio_done_cb cb;
    void *arg;
    bool refused;          /* the fetch would have reached a private address */
    /* results (worker) */
    int16_t *samples;
    size_t n;
    char error[512];
};

/* ---- locations ---- */

/* The location as error messages show it: userinfo in a URL is masked, and it is cut short. */
static char *shown_location(const char *loc)
{
    char buf[SHOWN_LOCATION + 8];
    const char *scheme_end = strstr(loc, "://");
    const char *at = NULL;
    if (scheme_end) {
        const char *host = scheme_end + 3;
        size_t auth_len = strcspn(host, "/?#");
        const char *a = memchr(host, '@', auth_len);
        if (a)
            at = a;
    }
    if (at) {
        int pre = (int)(scheme_end + 3 - loc);
        snprintf(buf, sizeof(buf), "%.*s***%.*s", pre, loc, SHOWN_LOCATION, at);
    } else {
        snprintf(buf, sizeof(buf), "%.*s", SHOWN_LOCATION, loc);
    }
    if (strlen(loc) > SHOWN_LOCATION)
        str_copy(buf + strlen(buf), sizeof(buf) - strlen(buf), "...");
    return xstrdup(buf);
}

/* file:///abs/path or file://localhost/abs/path, percent-decoded. NULL when it names another host,
 * has a bad %-escape or decodes to a NUL. */
static char *file_url_path(const char *url)
{
    const char *p = url + strlen("file://");
    if (strncasecmp(p, "localhost/", strlen("localhost/")) == 0)
        p += strlen("localhost");
    if (*p != '/')
        return NULL;
    size_t len = strlen(p);
    char *out = xmalloc(len + 1);
    if (uri_decode(p, len, false, out, len + 1) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- fetching (worker) ---- */

struct body {
    uint8_t *data;
    size_t len, cap;
    bool too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (n > AUDIO_MAX_BODY - b->len) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > AUDIO_MAX_BODY)
            cap = AUDIO_MAX_BODY;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct audio_job *j = clientp;
    return atomic_load(&j->cancelled) ? 1 : 0;
}

/* Set once at start-up, before any load (read by the workers afterwards). */
static bool allow_private_hosts;

void audio_allow_private_hosts(bool allow)
{
    allow_private_hosts = allow;
}

/* Why here: curl calls this with the address it resolved and is about to connect to, so neither a
 * name that resolves to a private address nor a redirect to one reaches the server's own network
 * (the same guard as webhooks). */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *address)
{
    struct audio_job *j = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!allow_private_hosts && webhook_addr_blocked(&address->addr, address->addrlen)) {
        j->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

static int fetch(struct audio_job *j, const char *shown, struct body *b)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(j->error, sizeof(j->error), "cannot start a transfer fetching %s", shown);
        return -1;
    }
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)AUDIO_HTTP_MAX_REDIRECTS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)AUDIO_HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AUDIO_MAX_BODY);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "conferenced/" CONFERENCED_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, j);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, j);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(j->error, sizeof(j->error), "the body is larger than %zu MiB fetching %s",
                 AUDIO_MAX_BODY >> 20, shown);
        return -1;
    }
    if (j->refused) {
        snprintf(j->error, sizeof(j->error),
                 "refused to fetch %s: it resolves to a private or local address", shown);
        return -1;
    }
    if (rc == CURLE_TOO_MANY_REDIRECTS) {
        snprintf(j->error, sizeof(j->error), "more than %d redirects fetching %s",
                 AUDIO_HTTP_MAX_REDIRECTS, shown);
        return -1;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(j->error, sizeof(j->error), "timed out after %d s fetching %s",
                 AUDIO_HTTP_TIMEOUT_S, shown);
        return -1;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(j->error, sizeof(j->error), "cancelled fetching %s", shown);
        return -1;
    }
    if (rc != CURLE_OK) {
        snprintf(j->error, sizeof(j->error), "%s fetching %s",
                 curl_err[0] ? curl_err : curl_easy_strerror(rc), shown);
        return -1;
    }
    if (status < 200 || status > 299) {
        snprintf(j->error, sizeof(j->error), "HTTP %ld fetching %s", status, shown);
        return -1;
    }
    return 0;
}

/* ---- decoding (worker) ---- */

struct vio {
    const uint8_t *data;
    sf_count_t len, pos;
};

static sf_count_t vio_len(void *user)
{
    return ((struct vio *)user)->len;
}

static sf_count_t vio_seek(sf_count_t offset, int whence, void *user)
{
    struct vio *v = user;
    sf_count_t base = whence == SEEK_CUR ? v->pos : whence == SEEK_END ? v->len : 0;
    sf_count_t to = base + offset;
    if (to < 0 || to > v->len)
        return -1;
    v->pos = to;
    return to;
}

static sf_count_t vio_read(void *ptr, sf_count_t count, void *user)
{
    struct vio *v = user;
    sf_count_t n = v->len - v->pos;
    if (count < n)
        n = count;
    if (n <= 0)
        return 0;
    memcpy(ptr, v->data + v->pos, (size_t)n);
    v->pos += n;
    return n;
}

static sf_count_t vio_write(const void *ptr, sf_count_t count, void *user)
{
    return 0;
}

static sf_count_t vio_tell(void *user)
{
    return ((struct vio *)user)->pos;
}

/* Output storage for the 8 kHz mono float samples, bounded by the length limit. */
struct outbuf {
    float *s;
    size_t n, cap;
};

static void out_reserve(struct outbuf *o, size_t more)
{
    if (o->n + more <= o->cap)
        return;
    size_t cap = o->cap ? o->cap : OUT_RATE * 4;
    while (cap < o->n + more)
        cap *= 2;
    o->s = xrealloc(o->s, cap * sizeof(float));
    o->cap = cap;
}

/* Reads the whole sound, mixing each frame down to mono (the channels' mean) and resampling to
 * 8 kHz as it goes, so memory holds the chunk and the output, never the decoded original. */
static int decode(struct audio_job *j, SNDFILE *sf, const SF_INFO *info, const char *shown)
{
    if (info->channels < 1 || info->channels > MAX_CHANNELS) {
        snprintf(j->error, sizeof(j->error), "%d channels (at most %d): %s", info->channels,
                 MAX_CHANNELS, shown);
        return -1;
    }
    double ratio = info->samplerate > 0 ? (double)OUT_RATE / info->samplerate : 0;
    if (!src_is_valid_ratio(ratio)) {
        snprintf(j->error, sizeof(j->error), "unsupported sample rate %d Hz: %s", info->samplerate,
                 shown);
        return -1;
    }
    sf_count_t max_frames = (sf_count_t)AUDIO_MAX_SECONDS * info->samplerate;
    if (info->frames > max_frames && info->frames != SF_COUNT_MAX) {
        snprintf(j->error, sizeof(j->error), "longer than %d minutes (%.0f s): %s",
                 AUDIO_MAX_SECONDS / 60, (double)info->frames / info->samplerate, shown);
        return -1;
    }
    int rc = -1, src_err = 0;
    SRC_STATE *src = NULL;
    if (info->samplerate != OUT_RATE) {
        src = src_new(SRC_SINC_MEDIUM_QUALITY, 1, &src_err);
        if (!src) {
            snprintf(j->error, sizeof(j->error), "cannot resample: %s", src_strerror(src_err));
            return -1;
        }
    }
    size_t ch = (size_t)info->channels;
    float *in = xmalloc(CHUNK_FRAMES * ch * sizeof(float));
    float mono[CHUNK_FRAMES];
    struct outbuf out = {0};
    sf_count_t total = 0;
    for (;;) {
        if (atomic_load(&j->cancelled))
            goto done;
        sf_count_t got = sf_readf_float(sf, in, CHUNK_FRAMES);
        if (got < 0)
            got = 0;
        total += got;
        if (total > max_frames) {
            snprintf(j->error, sizeof(j->error), "longer than %d minutes: %s",
                     AUDIO_MAX_SECONDS / 60, shown);
            goto done;
        }
        for (sf_count_t f = 0; f < got; f++) {
            float sum = 0;
            for (size_t c = 0; c < ch; c++)
                sum += in[(size_t)f * ch + c];
            mono[f] = sum / (float)ch;
        }
        if (!src) {
            out_reserve(&out, (size_t)got);
            memcpy(out.s + out.n, mono, (size_t)got * sizeof(float));
            out.n += (size_t)got;
        } else {
            SRC_DATA d = {.data_in = mono,
                          .input_frames = (long)got,
                          .src_ratio = ratio,
                          .end_of_input = got == 0};
            do { /* until the chunk is used (and, at the end, the filter is flushed) */
                out_reserve(&out, (size_t)(got * ratio) + 256);
                d.data_out = out.s + out.n;
                d.output_frames = (long)(out.cap - out.n);
                if ((src_err = src_process(src, &d)) != 0) {
                    snprintf(j->error, sizeof(j->error), "cannot resample: %s",
                             src_strerror(src_err));
                    goto done;
                }
                out.n += (size_t)d.output_frames_gen;
                d.data_in += d.input_frames_used;
                d.input_frames -= d.input_frames_used;
            } while (d.input_frames > 0 || (d.end_of_input && d.output_frames_gen > 0));
        }
        if (got == 0)
            break;
    }
    if (out.n == 0) {
        snprintf(j->error, sizeof(j->error), "the sound is empty: %s", shown);
        goto done;
    }
    j->n = out.n;
    j->samples = xmalloc(out.n * sizeof(int16_t));
    src_float_to_short_array(out.s, j->samples, (int)out.n);
    rc = 0;
done:
    free(out.s);
    free(in);
    if (src)
        src_delete(src);
    return rc;
}

static void load_file(struct audio_job *j, const char *shown)
{
    struct stat st;
    if (stat(j->path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            snprintf(j->error, sizeof(j->error), "file not found: %s", shown);
        else
            snprintf(j->error, sizeof(j->error), "cannot read file: %s (%s)", shown,
                     strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(j->error, sizeof(j->error), "not a regular file: %s", shown);
        return;
    }
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(j->path, SFM_READ, &info);
    if (!sf) {
        if (errno == EACCES)
            snprintf(j->error, sizeof(j->error), "cannot read file: %s (%s)", shown,
                     strerror(errno));
        else
            snprintf(j->error, sizeof(j->error), "not a sound file libsndfile can read: %s (%s)",
                     shown, sf_strerror(NULL));
        return;
    }
    decode(j, sf, &info, shown);
    sf_close(sf);
}

static void load_url(struct audio_job *j, const char *shown)
{
    struct body b = {0};
    if (fetch(j, shown, &b) == 0) {
        struct vio v = {.data = b.data, .len = (sf_count_t)b.len};
        SF_VIRTUAL_IO io = {.get_filelen = vio_len,
                            .seek = vio_seek,
                            .read = vio_read,
                            .write = vio_write,
                            .tell = vio_tell};
        SF_INFO info = {0};
        SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &v);
        if (!sf) {
            snprintf(j->error, sizeof(j->error), "not a sound file libsndfile can read: %s (%s)",
                     shown, sf_strerror(NULL));
        } else {
            decode(j, sf, &info, shown);
            sf_close(sf);
        }
    }
    free(b.data);
}

static void work_cb(uv_work_t *w)
{
    struct audio_job *j = w->data;
    char *shown = shown_location(j->location);
    if (j->url)
        load_url(j, shown);
    else
        load_file(j, shown);
    free(shown);
}

static void job_free(struct audio_job *j)
{
    free(j->samples);
    free(j->location);
    free(j->url);
    free(j->path);
    free(j);
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct audio_job *j = w->data;
    if (!atomic_load(&j->cancelled)) {
        struct media_clip *clip = NULL;
        if (status == 0 && j->samples)
            clip = media_clip_create(j->samples, j->n);
        else if (!j->error[0])
            snprintf(j->error, sizeof(j->error), "loading was cancelled");
        j->cb(j->arg, clip, clip ? NULL : j->error);
    }
    job_free(j);
}

struct audio_job *audio_load(uv_loop_t *loop, const char *location, audio_done_cb cb, void *arg,
                             char *err, size_t errlen)
{
    static bool curl_ready;
    if (!location || !*location) {
        snprintf(err, errlen, "no sound location given");
        return NULL;
    }
    if (strlen(location) > MAX_LOCATION) {
        snprintf(err, errlen, "the sound location is longer than %d bytes", MAX_LOCATION);
        return NULL;
    }
    char *url = NULL, *path = NULL;
    if (location[0] == '/') {
        path = xstrdup(location);
    } else if (strncasecmp(location, "file://", 7) == 0) {
        path = file_url_path(location);
        if (!path) {
            char *shown = shown_location(location);
            snprintf(err, errlen, "a file:// URL must name an absolute local path, %%-escapes as %%XX: %s", shown);
            free(shown);
            return NULL;
        }
    } else if (strncasecmp(location, "http://", 7) == 0 ||
               strncasecmp(location, "https://", 8) == 0) {
        url = xstrdup(location);
    } else {
        char *shown = shown_location(location);
        snprintf(err, errlen,
                 "unusable sound location \"%s\": give an absolute path, a file:// URL or an "
                 "http(s) URL",
                 shown);
        free(shown);
        return NULL;
    }
    if (url && !curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "libcurl cannot start");
            free(url);
            return NULL;
        }
        curl_ready = true;
    }
    struct audio_job *j = xcalloc(1, sizeof(*j));
    atomic_init(&j->cancelled, false);
    j->location = xstrdup(location);
    j->url = url;
    j->path = path;
    j->cb = cb;
    j->arg = arg;
    j->work.data = j;
    int rc = uv_queue_work(loop, &j->work, work_cb, after_work_cb);
    if (rc != 0) {
        snprintf(err, errlen, "cannot queue the load: %s", uv_strerror(rc));
        job_free(j);
        return NULL;
    }
    return j;
}

void audio_cancel(struct audio_job *j)
{
    if (!j)
        return;
    atomic_store(&j->cancelled, true);
    uv_cancel((uv_req_t *)&j->work); /* not started yet: after_work_cb comes with UV_ECANCELED */
}
