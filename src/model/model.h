/* Records of every resource and their JSON views (the shape the API and the events return). */
#ifndef CONFERENCED_MODEL_H
#define CONFERENCED_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ids.h"

typedef char id_t_[ID_LEN + 1];

/* Input limits shared by validation and storage. */
#define NAME_MAX_LEN 255
#define DETAIL_MAX_LEN 4096
#define DATA_MAX_BYTES 65536
#define USERNAME_MAX_LEN 128
#define PASSWORD_MIN_LEN 8
#define PASSWORD_MAX_LEN 128
#define URI_MAX_LEN 2048
#define TIMEOUT_MAX_SECONDS 31536000 /* one year */

enum conference_type { CONFERENCE_TYPE_CONFERENCE = 0, CONFERENCE_TYPE_CONNECT };
enum conference_status {
    CONFERENCE_STARTING = 0,
    CONFERENCE_PROGRESSING,
    CONFERENCE_TERMINATING,
    CONFERENCE_TERMINATED
};
enum cc_status { CC_JOINING = 0, CC_JOINED, CC_LEAVING, CC_LEAVED };
enum cc_reference_type { CC_REFERENCE_CALL = 0, CC_REFERENCE_LINE };

const char *conference_type_name(enum conference_type t);
int conference_type_parse(const char *s, enum conference_type *out);
const char *conference_status_name(enum conference_status s);
int conference_status_parse(const char *s, enum conference_status *out);
const char *cc_status_name(enum cc_status s);
int cc_status_parse(const char *s, enum cc_status *out);
const char *cc_reference_type_name(enum cc_reference_type t);
int cc_reference_type_parse(const char *s, enum cc_reference_type *out);

/* Owns its heap strings; conference_fini() frees them. */
struct conference {
    id_t_ id;
    id_t_ customer_id;
    enum conference_type type;
    enum conference_status status;
    char *name;
    char *detail;
    char *data;      /* JSON object text */
    int64_t timeout; /* seconds, 0 = none */
    id_t_ pre_flow_id;
    id_t_ post_flow_id;
    id_t_ recording_id;
    char *recording_ids; /* JSON array text */
    id_t_ transcribe_id;
    char *transcribe_ids; /* JSON array text */
    char direct_hash[DIRECT_HASH_SIZE];
    int64_t tm_end;                          /* 0 = not yet (null) */
    int64_t tm_create, tm_update, tm_delete; /* tm_delete = TM_NEVER until deleted */
    int64_t tm_timeout; /* internal: absolute deadline of the timeout, 0 = none */
    /* Derived: participants joining or joined, in join order. */
    id_t_ *call_ids;
    size_t n_call_ids;
};

struct conferencecall {
    id_t_ id;
    id_t_ customer_id;
    id_t_ activeflow_id;
    id_t_ conference_id;
    enum cc_reference_type reference_type;
    id_t_ reference_id;
    enum cc_status status;
    int64_t tm_create, tm_update, tm_delete;
};

struct customer {
    id_t_ id;
    char *name;
    char *detail;
    char webhook_method[8]; /* "" (= POST), POST, GET, PUT, DELETE */
    char *webhook_uri;
    int64_t tm_create, tm_update, tm_delete;
};

/* Agent permission bits (VoIPBIN's values). */
#define PERM_PROJECT_SUPER_ADMIN 0x01
#define PERM_CUSTOMER_AGENT 0x10
#define PERM_CUSTOMER_ADMIN 0x20
#define PERM_CUSTOMER_MANAGER 0x40

struct agent {
    id_t_ id;
    id_t_ customer_id;
    char *username;
    char *password_hash; /* never serialised */
    char *name;
    char *detail;
    char ring_method[16];
    uint64_t permission;
    int64_t token_generation; /* JWTs carry it; a password change bumps it (never serialised) */
    int64_t tm_create, tm_update, tm_delete;
};

struct accesskey {
    id_t_ id;
    id_t_ customer_id;
    char *name;
    char *detail;
    char token_hash[65]; /* SHA-256 hex of the secret, never serialised */
    char token_prefix[16];
    int64_t tm_expire; /* TM_NEVER = does not expire */
    int64_t tm_create, tm_update, tm_delete;
};

enum call_status {
    CALL_DIALING = 0,
    CALL_RINGING,
    CALL_PROGRESSING,
    CALL_TERMINATING,
    CALL_CANCELING,
    CALL_HANGUP
};
enum call_direction { CALL_INCOMING = 0, CALL_OUTGOING };
const char *call_status_name(enum call_status s);
int call_status_parse(const char *s, enum call_status *out);
const char *call_direction_name(enum call_direction d);
int call_direction_parse(const char *s, enum call_direction *out);

/* A call leg (the VoIPBIN Call object). Owns its heap strings; call_fini() frees them. */
struct call {
    id_t_ id;
    id_t_ customer_id;
    char owner_type[16];
    id_t_ owner_id;
    id_t_ flow_id;
    id_t_ activeflow_id;
    char type[16]; /* "flow", "conference", "sip-service" */
    id_t_ master_call_id;
    char *source;      /* JSON Address */
    char *destination; /* JSON Address */
    enum call_status status;
    char *action; /* JSON Action: what the call is doing */
    enum call_direction direction;
    char hangup_by[8];      /* "", "remote", "local" */
    char hangup_reason[16]; /* "", normal, failed, busy, cancel, timeout, noanswer, ... */
    char *metadata;         /* JSON object */
    int64_t tm_progressing, tm_ringing, tm_hangup; /* 0 = not yet (null) */
    int64_t tm_create, tm_update, tm_delete;
    /* Internal, never in the JSON view: the SIP dialog's saved state (sip_dialog_state) while
     * the call is answered and not hung up, so that a restart can end it with a BYE; NULL or "". */
    char *dialog;
    /* The recording running on the call (ID_NIL when none) and every one it had (JSON array
     * text). Written only through store_call_set_recording (the recording module's). */
    id_t_ recording_id;
    char *recording_ids;
};

/* A flow: a named list of actions (SPEC §4, the VoIPBIN Flow object). actions is the canonical
 * JSON array text (every action with its id). Owns its heap strings; flow_fini() frees them. */
struct flow {
    id_t_ id;
    id_t_ customer_id;
    char type[16]; /* "flow" */
    char *name;
    char *detail;
    char *actions; /* JSON array text */
    id_t_ on_complete_flow_id;
    int64_t tm_create, tm_update, tm_delete;
};

#define NUMBER_MAX_LEN 32

/* A number: a SIP user part routed to a call flow (the VoIPBIN Number object). */
struct number {
    id_t_ id;
    id_t_ customer_id;
    char number[NUMBER_MAX_LEN + 1];
    char type[16]; /* "normal" */
    id_t_ call_flow_id;
    id_t_ message_flow_id;
    char *name;
    char *detail;
    char status[16]; /* "active", "deleted" */
    int64_t tm_purchase, tm_renew;
    int64_t tm_create, tm_update, tm_delete;
};

enum activeflow_status { ACTIVEFLOW_RUNNING = 0, ACTIVEFLOW_ENDED };
const char *activeflow_status_name(enum activeflow_status s);
int activeflow_status_parse(const char *s, enum activeflow_status *out);

/* A flow running on a call (the VoIPBIN Activeflow object). */
struct activeflow {
    id_t_ id;
    id_t_ customer_id;
    id_t_ flow_id;
    enum activeflow_status status;
    char reference_type[16]; /* "call" */
    id_t_ reference_id;
    id_t_ on_complete_flow_id;
    char *current_action; /* JSON Action text */
    id_t_ forward_action_id;
    char *executed_actions; /* JSON array text (the latest ACTIVEFLOW_MAX_EXECUTED) */
    int64_t tm_create, tm_update, tm_delete;
};
#define ACTIVEFLOW_MAX_EXECUTED 100

enum recording_status {
    RECORDING_INITIATING = 0,
    RECORDING_RECORDING,
    RECORDING_STOPPING,
    RECORDING_ENDED
};
const char *recording_status_name(enum recording_status s);
int recording_status_parse(const char *s, enum recording_status *out);

/* The longest recording (and what duration 0 means): 24 h. */
#define RECORDING_MAX_SECONDS 86400

/* A recording of a conference's mix or of a call (the VoIPBIN Recording object, plus the file's
 * duration, size and frames lost). The file is <recordings_dir>/<id>.wav. */
struct recording {
    id_t_ id;
    id_t_ customer_id;
    char owner_type[16]; /* "conference" or "call": what is recorded */
    id_t_ owner_id;
    id_t_ activeflow_id;     /* the flow that started it (ID_NIL: the API) */
    char reference_type[16]; /* "confbridge" (a conference) or "call" */
    id_t_ reference_id;
    enum recording_status status;
    char format[8]; /* "wav" */
    id_t_ on_end_flow_id;
    int64_t max_ms;           /* internal: where it ends by itself (duration, at most 24 h) */
    int64_t duration_ms;      /* the file's audio, once ended (0 before) */
    int64_t size;             /* the file's bytes, once ended */
    int64_t frames_dropped;   /* 20 ms frames lost (replaced by silence) */
    int64_t tm_start, tm_end; /* 0 = not yet */
    int64_t tm_create, tm_update, tm_delete;
};
json_t *recording_to_json(const struct recording *r);

enum transcribe_status { TRANSCRIBE_PROGRESSING = 0, TRANSCRIBE_DONE };
const char *transcribe_status_name(enum transcribe_status s);
int transcribe_status_parse(const char *s, enum transcribe_status *out);

#define TRANSCRIBE_LANGUAGE_MAX 35 /* a BCP 47 tag as long as anyone writes one */
#define TRANSCRIBE_ERROR_MAX 255

/* A live transcription of a conference (each participant on their own) or of a call (what it
 * says, hears, or both): the VoIPBIN Transcribe object, plus the utterances not transcribed
 * (skipped: the recogniser fell behind; failed: it could not be reached or answered wrongly,
 * error saying the last reason). */
struct transcribe {
    id_t_ id;
    id_t_ customer_id;
    id_t_ activeflow_id;     /* the flow that started it (ID_NIL: the API) */
    id_t_ on_end_flow_id;    /* runs when it is done (ID_NIL: none) */
    char reference_type[16]; /* "confbridge" (a conference) or "call" */
    id_t_ reference_id;
    enum transcribe_status status;
    char language[TRANSCRIBE_LANGUAGE_MAX + 1];
    char direction[8]; /* "in", "out" or "both" */
    char provider[16]; /* "": the server's own recogniser or the one it is configured with */
    int64_t skipped;
    int64_t failed;
    char error[TRANSCRIBE_ERROR_MAX + 1];
    int64_t tm_create, tm_update, tm_delete;
};
json_t *transcribe_to_json(const struct transcribe *t);

/* One utterance of one speaker (the VoIPBIN Transcript object, plus who spoke and when it
 * ended). */
struct transcript {
    id_t_ id;
    id_t_ customer_id;
    id_t_ transcribe_id;
    char direction[8];       /* "in": what the speaker said; "out": what a call heard */
    char *message;           /* what was said */
    id_t_ conferencecall_id; /* the speaker in a conference (ID_NIL for a call's transcribe) */
    id_t_ call_id;           /* the speaker's call */
    double confidence;       /* 0..1 */
    int64_t offset_ms;       /* from the start of the transcribe */
    int64_t tm_transcript;   /* when the utterance began */
    int64_t tm_end;          /* when it ended */
    int64_t tm_create;
};
void transcript_fini(struct transcript *t);
json_t *transcript_to_json(const struct transcript *t);

void flow_fini(struct flow *f);
void number_fini(struct number *n);
void activeflow_fini(struct activeflow *a);
json_t *flow_to_json(const struct flow *f);
json_t *number_to_json(const struct number *n);
json_t *activeflow_to_json(const struct activeflow *a);

void call_fini(struct call *c);
json_t *call_to_json(const struct call *c);

void conference_fini(struct conference *c);
void customer_fini(struct customer *c);
void agent_fini(struct agent *a);
void accesskey_fini(struct accesskey *k);
/* Deep copy; dst must be uninitialised or finied. */
void conference_copy(struct conference *dst, const struct conference *src);

/* JSON views: new references owned by the caller, fields in the API's order. */
json_t *conference_to_json(const struct conference *c);
json_t *conferencecall_to_json(const struct conferencecall *cc);
json_t *customer_to_json(const struct customer *c);
json_t *agent_to_json(const struct agent *a);
/* token: the secret to show (only in the create response), or NULL. */
json_t *accesskey_to_json(const struct accesskey *k, const char *token);

/* A timestamp as the API writes it: a string; 0 (not happened yet) is the seeds' sentinel
 * "9999-01-01 00:00:00.000000". */
json_t *json_tm(int64_t us);
/* The same, but null for 0 or the sentinel: only the Conference's tm_end (the seed's example). */
json_t *json_tm_or_null(int64_t us);

#endif
