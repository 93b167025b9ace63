#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#ifndef CONFERENCED_VERSION
#define CONFERENCED_VERSION "0.1.0"
#endif

enum kind {
    K_STRING,    /* char[cap] */
    K_PATH,      /* char[cap], may be empty only where the default is empty */
    K_INT,       /* int in [min, max] */
    K_BOOL,      /* bool */
    K_ADDR_PORT, /* IPv4 ADDR:PORT -> char addr[cap] at off, int port at off2 */
    K_RANGE,     /* A-B -> int at off, int at off2 */
    K_LOG_LEVEL, /* enum log_level */
    K_IPV4,      /* char[cap] holding an IPv4 address ("" allowed as the default only) */
};

/* Every setting, once: its file key, environment variable, flag, type, bounds and help. The
 * loader, the validator and --help all read this table, so they cannot drift apart. */
struct setting {
    const char *key, *env, *flag; /* flag NULL: file and environment only */
    enum kind kind;
    size_t off, off2, cap;
    long min, max;
    const char *arg;  /* the value's name in --help */
    const char *help; /* one line; the default is appended */
};

#define F(field) offsetof(struct config, field)
#define CAP(field) sizeof(((struct config *)0)->field)
#define STR(key, env, flag, field, arg, help)                                                      \
    {                                                                                              \
        key, env, flag, K_STRING, F(field), 0, CAP(field), 0, 0, arg, help                         \
    }
#define INT(key, env, flag, field, lo, hi, arg, help)                                              \
    {                                                                                              \
        key, env, flag, K_INT, F(field), 0, 0, lo, hi, arg, help                                   \
    }

static const struct setting settings[] = {
    {"http", "CONFERENCED_HTTP", "--http", K_ADDR_PORT, F(http_addr), F(http_port), CAP(http_addr),
     0, 65535, "ADDR:PORT", "HTTP listen address (port 0 picks a free one)"},
    {"data", "CONFERENCED_DATA", "--data", K_PATH, F(data_dir), 0, CAP(data_dir), 1, 0, "DIR",
     "data directory of the embedded store"},
    {"log_level", "CONFERENCED_LOG_LEVEL", "--log-level", K_LOG_LEVEL, F(log_level), 0, 0, 0, 0,
     "LEVEL", "debug, info, warn or error"},
    STR("cors_origin", "CONFERENCED_CORS_ORIGIN", "--cors-origin", cors_origin, "ORIGIN",
        "web pages that may call the API from a browser: * (any), one origin, or empty (none)"),
    STR("admin_username", "CONFERENCED_ADMIN_USERNAME", "--admin-username", admin_username, "NAME",
        "operator login created on the first start"),
    STR("admin_password", "CONFERENCED_ADMIN_PASSWORD", NULL, admin_password, "PASSWORD",
        "operator password on the first start (8+ characters; generated and printed if unset)"),
    {"webhook_allow_private", "CONFERENCED_WEBHOOK_ALLOW_PRIVATE", "--webhook-allow-private",
     K_BOOL, F(webhook_allow_private), 0, 0, 0, 0, NULL,
     "allow webhooks and play sounds on loopback, private and link-local addresses"},
    INT("webhook_timeout_ms", "CONFERENCED_WEBHOOK_TIMEOUT_MS", "--webhook-timeout-ms",
        webhook_timeout_ms, 100, 60000, "MS", "timeout of one webhook attempt"),
    INT("shutdown_grace_ms", "CONFERENCED_SHUTDOWN_GRACE_MS", "--shutdown-grace-ms",
        shutdown_grace_ms, 0, 600000, "MS", "how long SIGTERM waits for in-flight work"),
    {"sip", "CONFERENCED_SIP", "--sip", K_ADDR_PORT, F(sip_addr), F(sip_port), CAP(sip_addr), 0,
     65535, "ADDR:PORT", "SIP over UDP listen address (port 0 picks a free one)"},
    {"rtp_ports", "CONFERENCED_RTP_PORTS", "--rtp-ports", K_RANGE, F(rtp_port_min), F(rtp_port_max),
     0, 1024, 65535, "A-B", "RTP port range (RTCP on each port + 1)"},
    INT("media_threads", "CONFERENCED_MEDIA_THREADS", "--media-threads", media_threads, 1, 64, "N",
        "mixing threads, each on its own 20 ms clock"),
    {"media_ip", "CONFERENCED_MEDIA_IP", "--media-ip", K_IPV4, F(media_ip), 0, CAP(media_ip), 0, 0,
     "ADDR", "address the RTP sockets bind to and the SDP announces (default: the SIP address)"},
    {"public_ip", "CONFERENCED_PUBLIC_IP", "--public-ip", K_IPV4, F(public_ip), 0, CAP(public_ip),
     0, 0, "ADDR",
     "address the SDP announces instead of media_ip (a NAT in front: its public address)"},
    INT("rtp_timeout_ms", "CONFERENCED_RTP_TIMEOUT_MS", "--rtp-timeout-ms", rtp_timeout_ms, 1000,
        3600000, "MS", "hang up an answered call after this long without RTP"),
    INT("opus_bitrate", "CONFERENCED_OPUS_BITRATE", "--opus-bitrate", opus_bitrate, 6000, 128000,
        "BPS", "bit rate of the Opus audio sent to each participant"),
    INT("opus_complexity", "CONFERENCED_OPUS_COMPLEXITY", "--opus-complexity", opus_complexity, 0,
        10, "N", "Opus encoder complexity (CPU per listener against quality)"),
    INT("ring_timeout_ms", "CONFERENCED_RING_TIMEOUT_MS", "--ring-timeout-ms", ring_timeout_ms,
        1000, 600000, "MS", "longest ring: an outgoing call is cancelled, an incoming one refused (noanswer)"),
    {"sounds_dir", "CONFERENCED_SOUNDS_DIR", "--sounds-dir", K_PATH, F(sounds_dir), 0,
     CAP(sounds_dir), 0, 0, "DIR", "local files the play action may read (default: DATA/sounds)"},
    {"recordings_dir", "CONFERENCED_RECORDINGS_DIR", "--recordings-dir", K_PATH, F(recordings_dir),
     0, CAP(recordings_dir), 0, 0, "DIR", "where recordings are written (default: DATA/recordings)"},
    INT("max_recordings", "CONFERENCED_MAX_RECORDINGS", "--max-recordings", max_recordings, 1,
        100000, "N", "recordings running at once on this server (more: 429 TOO_MANY_RECORDINGS)"),
    INT("recording_writers", "CONFERENCED_RECORDING_WRITERS", "--recording-writers",
        recording_writers, 1, 16, "N", "threads writing recordings to disk"),
    {"recording_sync_writes", "CONFERENCED_RECORDING_SYNC_WRITES", "--recording-sync-writes",
     K_BOOL, F(recording_sync_writes), 0, 0, 0, 0, NULL,
     "fdatasync after every write of a recording (a slow disk, to try how recording copes)"},
    INT("recording_buffer_ms", "CONFERENCED_RECORDING_BUFFER_MS", "--recording-buffer-ms",
        recording_buffer_ms, 200, 60000, "MS",
        "audio held for a disk that falls behind; beyond it frames are dropped and counted"),
    INT("max_transcribes", "CONFERENCED_MAX_TRANSCRIBES", "--max-transcribes", max_transcribes, 1,
        100000, "N", "transcribes progressing at once on this server (more: 429)"),
    INT("max_transcribe_speakers", "CONFERENCED_MAX_TRANSCRIBE_SPEAKERS",
        "--max-transcribe-speakers", max_transcribe_speakers, 1, 100000, "N",
        "speakers listened to at once by all transcribes (each holds up to 15 s of audio)"),
    INT("transcribe_buffer_ms", "CONFERENCED_TRANSCRIBE_BUFFER_MS", "--transcribe-buffer-ms",
        transcribe_buffer_ms, 200, 60000, "MS",
        "a speaker's audio held for the recognisers' collector; beyond it frames are dropped"),
    INT("stt_workers", "CONFERENCED_STT_WORKERS", "--stt-workers", stt_workers, 0, 16, "N",
        "threads of the built-in recogniser (pocketsphinx, en-US), one decoder of about 90 MB "
        "each, loaded when the first transcription starts; 0: none (only stt_url)"),
    STR("stt_model_dir", "CONFERENCED_STT_MODEL_DIR", "--stt-model-dir", stt_model_dir, "DIR",
        "the built-in recogniser's model (empty: Debian's pocketsphinx-en-us, "
        "/usr/share/pocketsphinx/model/en-us)"),
    INT("stt_max_utterance_ms", "CONFERENCED_STT_MAX_UTTERANCE_MS", "--stt-max-utterance-ms",
        stt_max_utterance_ms, 1000, 60000, "MS",
        "longest utterance handed to a recogniser; a longer one is cut and goes on in the next"),
    INT("stt_queue", "CONFERENCED_STT_QUEUE", "--stt-queue", stt_queue, 1, 1024, "N",
        "utterances waiting per recogniser; beyond it the oldest is skipped and counted"),
    STR("stt_url", "CONFERENCED_STT_URL", "--stt-url", stt_url, "URL",
        "an external recogniser (whisper.cpp server /inference or an OpenAI-style "
        "/v1/audio/transcriptions endpoint); empty: none, nothing leaves the machine"),
    STR("stt_languages", "CONFERENCED_STT_LANGUAGES", "--stt-languages", stt_languages, "LIST",
        "languages sent to stt_url, comma-separated (e.g. de-DE,fr-FR; en-US too to use it "
        "instead of the built-in one)"),
    INT("stt_timeout_ms", "CONFERENCED_STT_TIMEOUT_MS", "--stt-timeout-ms", stt_timeout_ms, 100,
        600000, "MS", "longest wait for stt_url to answer one utterance"),
    INT("max_conferences", "CONFERENCED_MAX_CONFERENCES", "--max-conferences", max_conferences, 1,
        10000000, "N", "conferences a customer may have that are not terminated"),
    INT("http_max_connections", "CONFERENCED_HTTP_MAX_CONNECTIONS", "--http-max-connections",
        http_max_connections, 16, 1000000, "N", "open HTTP and WebSocket connections in all"),
    INT("http_max_connections_per_address", "CONFERENCED_HTTP_MAX_CONNECTIONS_PER_ADDRESS",
        "--http-max-connections-per-address", http_max_connections_per_address, 1, 1000000, "N",
        "open connections from one client address (at most half of http_max_connections)"),
    INT("http_request_timeout_ms", "CONFERENCED_HTTP_REQUEST_TIMEOUT_MS",
        "--http-request-timeout-ms", http_request_timeout_ms, 100, 600000, "MS",
        "time a connection has to send a whole request, from its start or the previous answer"),
    INT("login_workers", "CONFERENCED_LOGIN_WORKERS", "--login-workers", login_workers, 1, 64, "N",
        "threads that check passwords (each check takes ~64 MiB for a moment)"),
    INT("login_queue", "CONFERENCED_LOGIN_QUEUE", "--login-queue", login_queue, 1, 100000, "N",
        "password checks that may wait for a worker; more get 429"),
    INT("login_failures_per_minute", "CONFERENCED_LOGIN_FAILURES_PER_MINUTE",
        "--login-failures-per-minute", login_failures_per_minute, 1, 100000, "N",
        "failed logins per username and per client address before 429"),
    INT("sip_max_setup_per_source", "CONFERENCED_SIP_MAX_SETUP_PER_SOURCE",
        "--sip-max-setup-per-source", sip_max_setup_per_source, 1, 100000, "N",
        "incoming calls from one address still being set up (our answer not yet acknowledged); "
        "more get 503 with Retry-After"),
    INT("sip_ws_max_connections", "CONFERENCED_SIP_WS_MAX_CONNECTIONS", "--sip-ws-max-connections",
        sip_ws_max_connections, 1, 1000000, "N",
        "SIP over WebSocket connections (ws://HTTP/sip) open at once; more are refused with 503 "
        "before the upgrade"),
    INT("sip_ws_max_message", "CONFERENCED_SIP_WS_MAX_MESSAGE", "--sip-ws-max-message",
        sip_ws_max_message, 1024, 65535, "BYTES",
        "the largest SIP message a WebSocket may carry; a larger one closes the connection "
        "(1009)"),
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    str_copy(cfg->http_addr, sizeof(cfg->http_addr), "127.0.0.1");
    cfg->http_port = 8080;
    str_copy(cfg->cors_origin, sizeof(cfg->cors_origin), "*");
    str_copy(cfg->data_dir, sizeof(cfg->data_dir), "./data");
    cfg->log_level = LOG_LEVEL_INFO;
    str_copy(cfg->admin_username, sizeof(cfg->admin_username), "admin");
    cfg->webhook_allow_private = false;
    cfg->webhook_timeout_ms = 5000;
    cfg->shutdown_grace_ms = 5000;
    str_copy(cfg->sip_addr, sizeof(cfg->sip_addr), "127.0.0.1");
    cfg->sip_port = 5060;
    cfg->rtp_port_min = 10000;
    cfg->rtp_port_max = 20000;
    cfg->media_threads = 2;
    cfg->rtp_timeout_ms = 30000;
    cfg->opus_bitrate = 32000;
    cfg->opus_complexity = 0;
    cfg->ring_timeout_ms = 60000;
    cfg->max_conferences = 10000;
    cfg->max_recordings = 1000;
    cfg->recording_writers = 2;
    cfg->recording_buffer_ms = 5000;
    cfg->max_transcribes = 100;
    cfg->max_transcribe_speakers = 200;
    cfg->transcribe_buffer_ms = 5000;
    cfg->stt_workers = 2;
    cfg->stt_queue = 16;
    cfg->stt_max_utterance_ms = 15000;
    cfg->stt_timeout_ms = 30000;
    cfg->http_max_connections = 4096;
    cfg->http_max_connections_per_address = 256;
    cfg->http_request_timeout_ms = 10000;
    cfg->login_workers = 2;
    cfg->login_queue = 64;
    cfg->login_failures_per_minute = 10;
    cfg->sip_max_setup_per_source = 32;
    cfg->sip_ws_max_connections = 1000;
    cfg->sip_ws_max_message = 65535;
}

/* The default of a setting as --help shows it ("" when it has none worth printing). */
static void default_text(const struct setting *s, const struct config *d, char *out, size_t cap)
{
    const char *base = (const char *)d;
    out[0] = '\0';
    switch (s->kind) {
    case K_STRING:
    case K_PATH:
    case K_IPV4:
        if (base[s->off])
            snprintf(out, cap, "%s", base + s->off);
        break;
    case K_INT:
        snprintf(out, cap, "%d", *(const int *)(base + s->off));
        break;
    case K_BOOL:
        snprintf(out, cap, "%s", *(const bool *)(base + s->off) ? "on" : "off");
        break;
    case K_ADDR_PORT:
        snprintf(out, cap, "%s:%d", base + s->off, *(const int *)(base + s->off2));
        break;
    case K_RANGE:
        snprintf(out, cap, "%d-%d", *(const int *)(base + s->off), *(const int *)(base + s->off2));
        break;
    case K_LOG_LEVEL:
        snprintf(out, cap, "info");
        break;
    }
}

const char *config_usage(void)
{
    static char text[8192];
    if (text[0])
        return text;
    struct config d;
    config_defaults(&d);
    size_t n = 0;
    n += (size_t)snprintf(text + n, sizeof(text) - n,
                          "usage: conferenced [options]\n"
                          "       conferenced passwd USERNAME   set a password (read from "
                          "standard input or CONFERENCED_NEW_PASSWORD)\n"
                          "options:\n");
    for (size_t i = 0; i < N_SETTINGS && n < sizeof(text); i++) {
        const struct setting *s = &settings[i];
        char flag[72], def[96];
        if (s->flag)
            snprintf(flag, sizeof(flag), "%s%s%s", s->flag, s->arg ? " " : "",
                     s->arg ? s->arg : "");
        else
            snprintf(flag, sizeof(flag), "(%s)", s->env);
        default_text(s, &d, def, sizeof(def));
        n += (size_t)snprintf(text + n, sizeof(text) - n, "  %s%s%s%s\n      %s\n", flag,
                              def[0] ? "  (default " : "", def, def[0] ? ")" : "", s->help);
    }
    if (n < sizeof(text))
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "  --config FILE\n"
                              "      a key = value file; its keys are the settings' names (--http "
                              "is http, --rtp-ports is rtp_ports)\n"
                              "  --help, --version\n"
                              "environment (each overrides the file; flags override both):\n ");
    size_t col = 1;
    for (size_t i = 0; i < N_SETTINGS && n < sizeof(text); i++) {
        size_t len = strlen(settings[i].env) + 1;
        if (col + len > 100) {
            n += (size_t)snprintf(text + n, sizeof(text) - n, "\n ");
            col = 1;
        }
        n += (size_t)snprintf(text + n, sizeof(text) - n, " %s", settings[i].env);
        col += len;
    }
    if (n < sizeof(text))
        snprintf(text + n, sizeof(text) - n, " CONFERENCED_CONFIG\n");
    return text;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int parse_int(const char *v, long min, long max, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < min || n > max)
        return -1;
    *out = (int)n;
    return 0;
}

/* "ADDR:PORT" with an IPv4 address; port 0..65535. */
static int parse_addr_port(const char *v, char *addr_out, size_t cap, int *port_out)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= cap)
        return -1;
    char addr[64];
    size_t alen = (size_t)(colon - v);
    if (alen >= sizeof(addr))
        return -1;
    memcpy(addr, v, alen);
    addr[alen] = '\0';
    struct in_addr in;
    int port;
    if (inet_pton(AF_INET, addr, &in) != 1 || parse_int(colon + 1, 0, 65535, &port) < 0)
        return -1;
    memcpy(addr_out, addr, alen + 1);
    *port_out = port;
    return 0;
}

static int parse_range(const char *v, int *lo, int *hi)
{
    const char *dash = strchr(v, '-');
    char a[16];
    if (!dash || (size_t)(dash - v) >= sizeof(a))
        return -1;
    memcpy(a, v, (size_t)(dash - v));
    a[dash - v] = '\0';
    if (parse_int(a, 1024, 65534, lo) < 0 || parse_int(dash + 1, 1025, 65535, hi) < 0 ||
        *hi < *lo + 1)
        return -1;
    return 0;
}

static const struct setting *find_key(const char *key)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!strcmp(settings[i].key, key))
            return &settings[i];
    return NULL;
}

int config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    const struct setting *s = find_key(key);
    if (!s) {
        snprintf(err, errlen, "unknown setting '%s' (see --help)", key);
        return -1;
    }
    char *base = (char *)cfg;
    switch (s->kind) {
    case K_STRING:
    case K_PATH:
        if ((s->min && value[0] == '\0') || str_copy(base + s->off, s->cap, value) < 0) {
            snprintf(err, errlen, "%s: '%.64s' is %s", key, value,
                     value[0] ? "too long" : "empty; a value is required");
            return -1;
        }
        return 0;
    case K_INT:
        if (parse_int(value, s->min, s->max, (int *)(base + s->off)) < 0) {
            snprintf(err, errlen, "%s: '%.64s' is not a whole number from %ld to %ld", key, value,
                     s->min, s->max);
            return -1;
        }
        return 0;
    case K_BOOL:
        if (parse_bool(value, (bool *)(base + s->off)) < 0) {
            snprintf(err, errlen, "%s: '%.64s' is not one of true/false, on/off, yes/no, 1/0", key,
                     value);
            return -1;
        }
        return 0;
    case K_ADDR_PORT:
        if (parse_addr_port(value, base + s->off, s->cap, (int *)(base + s->off2)) < 0) {
            snprintf(err, errlen, "%s: '%.64s' is not an IPv4 ADDR:PORT such as 127.0.0.1:%s", key,
                     value, !strcmp(key, "sip") ? "5060" : "8080");
            return -1;
        }
        return 0;
    case K_RANGE:
        if (parse_range(value, (int *)(base + s->off), (int *)(base + s->off2)) < 0) {
            snprintf(err, errlen, "%s: '%.64s' is not a range A-B of UDP ports (1024-65535, B > A)",
                     key, value);
            return -1;
        }
        return 0;
    case K_LOG_LEVEL:
        if (log_level_parse(value, (enum log_level *)(base + s->off)) < 0) {
            snprintf(err, errlen, "%s: '%.64s' is not one of debug, info, warn, error", key, value);
            return -1;
        }
        return 0;
    case K_IPV4: {
        struct in_addr in;
        if (inet_pton(AF_INET, value, &in) != 1 || str_copy(base + s->off, s->cap, value) < 0) {
            snprintf(err, errlen, "%s: '%.64s' is not an IPv4 address", key, value);
            return -1;
        }
        return 0;
    }
    }
    return -1;
}

struct ini_ctx {
    struct config *cfg;
    char *err;
    size_t errlen;
    int failed;
};

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    (void)section;
    if (c->failed)
        return 0;
    char msg[256];
    if (config_set(c->cfg, name, value, msg, sizeof(msg)) < 0) {
        snprintf(c->err, c->errlen, "%s: %s", c->cfg->config_file, msg);
        c->failed = 1;
        return 0;
    }
    return 1;
}

static const struct setting *find_flag(const char *arg)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (settings[i].flag && !strcmp(settings[i].flag, arg))
            return &settings[i];
    return NULL;
}

int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    config_defaults(cfg);
    /* The file is named by the environment or a flag; find it first. */
    const char *file = getenv("CONFERENCED_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(config_usage(), stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("conferenced %s\n", CONFERENCED_VERSION);
            return 1;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a FILE");
                return -1;
            }
            file = argv[++i];
        }
    }
    if (file && file[0]) {
        if (str_copy(cfg->config_file, sizeof(cfg->config_file), file) < 0) {
            snprintf(err, errlen, "config file path too long");
            return -1;
        }
        struct ini_ctx c = {cfg, err, errlen, 0};
        int rc = ini_parse(file, on_ini, &c);
        if (c.failed)
            return -1;
        if (rc < 0) {
            snprintf(err, errlen, "cannot read config file %s", file);
            return -1;
        }
        if (rc > 0) {
            snprintf(err, errlen, "%s: syntax error on line %d", file, rc);
            return -1;
        }
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && config_set(cfg, settings[i].key, v, err, errlen) < 0) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s", err);
            snprintf(err, errlen, "%s: %s", settings[i].env, msg);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        const struct setting *o = find_flag(argv[i]);
        if (!o) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", argv[i]);
            return -1;
        }
        const char *value = "true";
        if (o->kind != K_BOOL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s needs a value (%s)", o->flag, o->arg);
                return -1;
            }
            value = argv[++i];
        }
        if (config_set(cfg, o->key, value, err, errlen) < 0)
            return -1;
    }
    return config_validate(cfg, err, errlen);
}

int config_validate(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->data_dir[0] == '\0') {
        snprintf(err, errlen, "data: a directory is required");
        return -1;
    }
    if (cfg->admin_password[0] && strlen(cfg->admin_password) < 8) {
        snprintf(err, errlen, "admin_password: must be at least 8 characters");
        return -1;
    }
    /* A browser compares the whole value with the page's origin: scheme://host[:port]. */
    const char *o = cfg->cors_origin;
    if (o[0] && strcmp(o, "*") != 0 &&
        ((strncmp(o, "http://", 7) != 0 && strncmp(o, "https://", 8) != 0) ||
         strpbrk(o, " ,\t") || o[strlen(o) - 1] == '/')) {
        snprintf(err, errlen,
                 "cors_origin: \"%s\" is not *, empty or one origin such as https://app.example.com",
                 o);
        return -1;
    }
    /* Headroom: one client address can never hold every connection. */
    if (cfg->http_max_connections_per_address > cfg->http_max_connections / 2) {
        snprintf(err, errlen,
                 "http_max_connections_per_address (%d) must be at most half of "
                 "http_max_connections (%d), so that one client cannot take every connection",
                 cfg->http_max_connections_per_address, cfg->http_max_connections);
        return -1;
    }
    return 0;
}
