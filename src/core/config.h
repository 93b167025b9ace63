/* Server configuration: defaults, then a key = value file, then CONFERENCED_* environment
 * variables, then command-line flags; validated as a whole before anything starts. */
#ifndef CONFERENCED_CONFIG_H
#define CONFERENCED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"

struct config {
    char http_addr[64];
    int http_port;
    char data_dir[512];
    char sounds_dir[512]; /* play's local files must be inside it; "" = <data_dir>/sounds */
    char recordings_dir[512]; /* recordings' files; "" = <data_dir>/recordings */
    enum log_level log_level;
    char admin_username[128];
    char admin_password[128];
    bool webhook_allow_private; /* allow webhook targets on loopback/private networks */
    int webhook_timeout_ms;
    int shutdown_grace_ms; /* how long SIGTERM waits for in-flight requests and webhooks */
    char config_file[512];
    char sip_addr[64];
    int sip_port;
    int rtp_port_min, rtp_port_max;
    int media_threads;
    char cors_origin[256]; /* Access-Control-Allow-Origin of API answers ("": none) */
    char media_ip[64]; /* announced in SDP; defaults to the SIP address */
    char public_ip[64]; /* announced in SDP instead of media_ip when set (behind a NAT) */
    int rtp_timeout_ms;
    /* what Opus listeners are sent */
    int opus_bitrate;
    int opus_complexity;
    int ring_timeout_ms; /* an outgoing call not answered in this time: noanswer */
    int max_conferences; /* per customer, not terminated */
    int max_recordings;      /* running at once, server-wide */
    int recording_writers;   /* recorder threads */
    int recording_buffer_ms; /* each recording's tap */
    bool recording_sync_writes; /* fdatasync after every write (trying a slow disk) */
    int max_transcribes;         /* progressing at once, server-wide */
    int max_transcribe_speakers; /* speakers listened to, server-wide */
    int transcribe_buffer_ms;    /* each speaker's tap */
    int stt_workers;             /* built-in recogniser threads */
    int stt_queue;               /* utterances waiting per recogniser */
    char stt_model_dir[512];     /* "" = Debian's pocketsphinx-en-us */
    int stt_max_utterance_ms;
    char stt_url[512];           /* external recogniser; "" = none */
    char stt_languages[256];     /* the languages sent to it */
    int stt_timeout_ms;
    int http_max_connections;
    int http_max_connections_per_address;
    int http_request_timeout_ms; /* a whole request must arrive within this */
    int login_workers;             /* password-hashing threads */
    int login_queue;               /* password checks waiting for a worker */
    int login_failures_per_minute; /* per username and per client address */
    int sip_max_setup_per_source;  /* incoming calls in set-up from one address */
    int sip_ws_max_connections;    /* SIP over WebSocket connections open at once */
    int sip_ws_max_message;        /* the largest SIP message on a WebSocket, bytes */
};

/* Control thread. Fills cfg from every source. Returns 0, 1 when the caller should exit
 * successfully (--help, --version printed), or -1 with a message in err. */
int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);
/* Control thread. Applies one setting by its file key ("http", "data", ...). Returns 0 or -1
 * with a message naming the setting in err. */
int config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* Control thread. Checks cross-field rules. Returns 0 or -1 with a message in err. */
int config_validate(const struct config *cfg, char *err, size_t errlen);
/* Control thread. Sets the built-in defaults. */
void config_defaults(struct config *cfg);
/* The --help text, made from the table of settings (every flag and environment variable). */
const char *config_usage(void);

#endif
