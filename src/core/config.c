#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#ifndef CONFERENCED_VERSION
#define CONFERENCED_VERSION "0.1.0"
#endif

/* One row per setting: its file key, environment variable and flag. */
static const struct option_row {
    const char *key;
    const char *env;
    const char *flag;
    int takes_value;
} options[] = {
    {"http", "CONFERENCED_HTTP", "--http", 1},
    {"data", "CONFERENCED_DATA", "--data", 1},
    {"log_level", "CONFERENCED_LOG_LEVEL", "--log-level", 1},
    {"admin_username", "CONFERENCED_ADMIN_USERNAME", "--admin-username", 1},
    {"admin_password", "CONFERENCED_ADMIN_PASSWORD", NULL, 1},
    {"webhook_allow_private", "CONFERENCED_WEBHOOK_ALLOW_PRIVATE", "--webhook-allow-private", 0},
    {"webhook_timeout_ms", "CONFERENCED_WEBHOOK_TIMEOUT_MS", "--webhook-timeout-ms", 1},
    {"shutdown_grace_ms", "CONFERENCED_SHUTDOWN_GRACE_MS", "--shutdown-grace-ms", 1},
    {"sip", "CONFERENCED_SIP", "--sip", 1},
    {"rtp_ports", "CONFERENCED_RTP_PORTS", "--rtp-ports", 1},
    {"media_threads", "CONFERENCED_MEDIA_THREADS", "--media-threads", 1},
    {"media_ip", "CONFERENCED_MEDIA_IP", "--media-ip", 1},
    {"rtp_timeout_ms", "CONFERENCED_RTP_TIMEOUT_MS", "--rtp-timeout-ms", 1},
    {"ring_timeout_ms", "CONFERENCED_RING_TIMEOUT_MS", "--ring-timeout-ms", 1},
    {"sounds_dir", "CONFERENCED_SOUNDS_DIR", "--sounds-dir", 1},
};

const char *config_usage(void)
{
    return "usage: conferenced [options]\n"
           "  --http ADDR:PORT            HTTP listen address (default 127.0.0.1:8080; port 0 picks one)\n"
           "  --data DIR                  data directory for the embedded store (default ./data)\n"
           "  --log-level LEVEL           debug, info, warn or error (default info)\n"
           "  --config FILE               key = value configuration file\n"
           "  --admin-username NAME       bootstrap admin username (default admin)\n"
           "  --webhook-allow-private     allow webhooks to loopback and private addresses\n"
           "  --webhook-timeout-ms MS     webhook request timeout (default 5000)\n"
           "  --shutdown-grace-ms MS      time SIGTERM waits for in-flight work (default 5000)\n"
           "  --sip ADDR:PORT             SIP/UDP listen address (default 127.0.0.1:5060; port 0 picks one)\n"
           "  --rtp-ports A-B             RTP port range, RTCP on each port + 1 (default 10000-20000)\n"
           "  --media-threads N           mixing threads (default 2)\n"
           "  --media-ip ADDR             address announced in SDP (default: the SIP address)\n"
           "  --rtp-timeout-ms MS         hang up a call after this long without RTP (default 30000)\n"
           "  --ring-timeout-ms MS        cancel an outgoing call not answered in this time (default 60000)\n"
           "  --sounds-dir DIR            local files the play action may use (default DATA/sounds)\n"
           "  --help, --version\n"
           "Environment: CONFERENCED_HTTP, CONFERENCED_DATA, CONFERENCED_LOG_LEVEL,\n"
           "  CONFERENCED_CONFIG, CONFERENCED_ADMIN_USERNAME, CONFERENCED_ADMIN_PASSWORD,\n"
           "  CONFERENCED_WEBHOOK_ALLOW_PRIVATE, CONFERENCED_WEBHOOK_TIMEOUT_MS,\n"
           "  CONFERENCED_SHUTDOWN_GRACE_MS, CONFERENCED_SIP, CONFERENCED_RTP_PORTS,\n"
           "  CONFERENCED_MEDIA_THREADS, CONFERENCED_MEDIA_IP, CONFERENCED_RTP_TIMEOUT_MS.\n";
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    str_copy(cfg->http_addr, sizeof(cfg->http_addr), "127.0.0.1");
    cfg->http_port = 8080;
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
    cfg->ring_timeout_ms = 60000;
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

static int parse_http(struct config *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return -1;
    size_t alen = (size_t)(colon - v);
    if (alen >= sizeof(cfg->http_addr))
        return -1;
    char addr[64];
    memcpy(addr, v, alen);
    addr[alen] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, addr, &in) != 1)
        return -1;
    int port;
    if (parse_int(colon + 1, 0, 65535, &port) < 0)
        return -1;
    memcpy(cfg->http_addr, addr, alen + 1);
    cfg->http_port = port;
    return 0;
}

int config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    int bad = 0;
    if (!strcmp(key, "http")) {
        bad = parse_http(cfg, value) < 0;
        if (bad) {
            snprintf(err, errlen, "http: '%s' is not an IPv4 ADDR:PORT such as 127.0.0.1:8080",
                     value);
            return -1;
        }
    } else if (!strcmp(key, "sounds_dir")) {
        bad = str_copy(cfg->sounds_dir, sizeof(cfg->sounds_dir), value) < 0;
    } else if (!strcmp(key, "data")) {
        bad = value[0] == '\0' || str_copy(cfg->data_dir, sizeof(cfg->data_dir), value) < 0;
    } else if (!strcmp(key, "log_level")) {
        bad = log_level_parse(value, &cfg->log_level) < 0;
        if (bad) {
            snprintf(err, errlen, "log_level: '%s' is not one of debug, info, warn, error", value);
            return -1;
        }
    } else if (!strcmp(key, "admin_username")) {
        bad = value[0] == '\0' ||
              str_copy(cfg->admin_username, sizeof(cfg->admin_username), value) < 0;
    } else if (!strcmp(key, "admin_password")) {
        bad = str_copy(cfg->admin_password, sizeof(cfg->admin_password), value) < 0;
    } else if (!strcmp(key, "webhook_allow_private")) {
        bad = parse_bool(value, &cfg->webhook_allow_private) < 0;
    } else if (!strcmp(key, "webhook_timeout_ms")) {
        bad = parse_int(value, 100, 60000, &cfg->webhook_timeout_ms) < 0;
    } else if (!strcmp(key, "shutdown_grace_ms")) {
        bad = parse_int(value, 0, 600000, &cfg->shutdown_grace_ms) < 0;
    } else if (!strcmp(key, "sip")) {
        if (parse_addr_port(value, cfg->sip_addr, sizeof(cfg->sip_addr), &cfg->sip_port) < 0) {
            snprintf(err, errlen, "sip: '%s' is not an IPv4 ADDR:PORT such as 127.0.0.1:5060",
                     value);
            return -1;
        }
    } else if (!strcmp(key, "rtp_ports")) {
        if (parse_range(value, &cfg->rtp_port_min, &cfg->rtp_port_max) < 0) {
            snprintf(err, errlen,
                     "rtp_ports: '%s' is not a range A-B of UDP ports (1024-65535, B > A)",
                     value);
            return -1;
        }
    } else if (!strcmp(key, "media_threads")) {
        bad = parse_int(value, 1, 64, &cfg->media_threads) < 0;
    } else if (!strcmp(key, "media_ip")) {
        struct in_addr in;
        bad = inet_pton(AF_INET, value, &in) != 1 ||
              str_copy(cfg->media_ip, sizeof(cfg->media_ip), value) < 0;
    } else if (!strcmp(key, "rtp_timeout_ms")) {
        bad = parse_int(value, 1000, 3600000, &cfg->rtp_timeout_ms) < 0;
    } else if (!strcmp(key, "ring_timeout_ms")) {
        bad = parse_int(value, 1000, 600000, &cfg->ring_timeout_ms) < 0;
    } else {
        snprintf(err, errlen, "unknown setting '%s'", key);
        return -1;
    }
    if (bad) {
        snprintf(err, errlen, "%s: invalid value '%s'", key, value);
        return -1;
    }
    return 0;
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

static const struct option_row *find_flag(const char *arg)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (options[i].flag && !strcmp(options[i].flag, arg))
            return &options[i];
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
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        const char *v = getenv(options[i].env);
        if (v && config_set(cfg, options[i].key, v, err, errlen) < 0) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s", err);
            snprintf(err, errlen, "%s: %s", options[i].env, msg);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        const struct option_row *o = find_flag(argv[i]);
        if (!o) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", argv[i]);
            return -1;
        }
        const char *value = "true";
        if (o->takes_value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s needs a value", o->flag);
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
    return 0;
}
