#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

static const char *const conference_types[] = {"conference", "connect"};
static const char *const conference_statuses[] = {"starting", "progressing", "terminating",
                                                  "terminated"};
static const char *const cc_statuses[] = {"joining", "joined", "leaving", "leaved"};
static const char *const cc_reference_types[] = {"call", "line"};
static const char *const call_statuses[] = {"dialing",     "ringing",   "progressing",
                                            "terminating", "canceling", "hangup"};
static const char *const call_directions[] = {"incoming", "outgoing"};
static const char *const activeflow_statuses[] = {"running", "ended"};
static const char *const recording_statuses[] = {"initiating", "recording", "stopping", "ended"};
static const char *const transcribe_statuses[] = {"progressing", "done"};

static int parse_name(const char *const *names, int n, const char *s, int *out)
{
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], s)) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

const char *conference_type_name(enum conference_type t)
{
    return conference_types[t];
}

int conference_type_parse(const char *s, enum conference_type *out)
{
    int v;
    if (parse_name(conference_types, 2, s, &v) < 0)
        return -1;
    *out = (enum conference_type)v;
    return 0;
}

const char *conference_status_name(enum conference_status s)
{
    return conference_statuses[s];
}

int conference_status_parse(const char *s, enum conference_status *out)
{
    int v;
    if (parse_name(conference_statuses, 4, s, &v) < 0)
        return -1;
    *out = (enum conference_status)v;
    return 0;
}

const char *cc_status_name(enum cc_status s)
{
    return cc_statuses[s];
}

int cc_status_parse(const char *s, enum cc_status *out)
{
    int v;
    if (parse_name(cc_statuses, 4, s, &v) < 0)
        return -1;
    *out = (enum cc_status)v;
    return 0;
}

const char *cc_reference_type_name(enum cc_reference_type t)
{
    return cc_reference_types[t];
}

int cc_reference_type_parse(const char *s, enum cc_reference_type *out)
{
    int v;
    if (parse_name(cc_reference_types, 2, s, &v) < 0)
        return -1;
    *out = (enum cc_reference_type)v;
    return 0;
}

const char *call_status_name(enum call_status s)
{
    return call_statuses[s];
}

int call_status_parse(const char *s, enum call_status *out)
{
    int v;
    if (parse_name(call_statuses, 6, s, &v) < 0)
        return -1;
    *out = (enum call_status)v;
    return 0;
}

const char *call_direction_name(enum call_direction d)
{
    return call_directions[d];
}

int call_direction_parse(const char *s, enum call_direction *out)
{
    int v;
    if (parse_name(call_directions, 2, s, &v) < 0)
        return -1;
    *out = (enum call_direction)v;
    return 0;
}

void call_fini(struct call *c)
{
    if (!c)
        return;
    free(c->source);
    free(c->destination);
    free(c->action);
    free(c->metadata);
    free(c->dialog);
    free(c->recording_ids);
    c->source = c->destination = c->action = c->metadata = c->dialog = c->recording_ids = NULL;
}

void conference_fini(struct conference *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->detail);
    free(c->data);
    free(c->recording_ids);
    free(c->transcribe_ids);
    free(c->call_ids);
    c->name = c->detail = c->data = c->recording_ids = c->transcribe_ids = NULL;
    c->call_ids = NULL;
    c->n_call_ids = 0;
}

void conference_copy(struct conference *dst, const struct conference *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->detail = xstrdup(src->detail);
    dst->data = xstrdup(src->data);
    dst->recording_ids = xstrdup(src->recording_ids);
    dst->transcribe_ids = xstrdup(src->transcribe_ids);
    dst->call_ids = NULL;
    if (src->n_call_ids) {
        dst->call_ids = xmalloc(src->n_call_ids * sizeof(*dst->call_ids));
        memcpy(dst->call_ids, src->call_ids, src->n_call_ids * sizeof(*dst->call_ids));
    }
}

void customer_fini(struct customer *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->detail);
    free(c->webhook_uri);
    c->name = c->detail = c->webhook_uri = NULL;
}

void agent_fini(struct agent *a)
{
    if (!a)
        return;
    free(a->username);
    free(a->password_hash);
    free(a->name);
    free(a->detail);
    a->username = a->password_hash = a->name = a->detail = NULL;
}

void accesskey_fini(struct accesskey *k)
{
    if (!k)
        return;
    free(k->name);
    free(k->detail);
    k->name = k->detail = NULL;
}

json_t *json_tm(int64_t us)
{
    if (us == 0)
        us = TM_NEVER; /* has not happened: the seeds' sentinel */
    char buf[TM_TEXT_LEN];
    tm_format(us, buf);
    return json_stringn_nocheck(buf, TM_TEXT_LEN - 1);
}

json_t *json_tm_or_null(int64_t us)
{
    return us == 0 || us == TM_NEVER ? json_null() : json_tm(us);
}

static json_t *str_or_empty(const char *s)
{
    return json_string(s ? s : "");
}

/* Stored JSON text back to a value; a corrupt value is a broken invariant, shown as fallback. */
static json_t *stored_json(const char *text, json_t *fallback)
{
    /* Most stored values are empty: skip the parser for them (hot on every read). */
    if (text && (strcmp(text, "{}") == 0 || strcmp(text, "[]") == 0) &&
        json_typeof(fallback) == (text[0] == '{' ? JSON_OBJECT : JSON_ARRAY))
        return fallback;
    if (text && text[0]) {
        json_t *v = json_loads(text, 0, NULL);
        if (v) {
            json_decref(fallback);
            return v;
        }
        log_error("msg=\"stored JSON is unreadable\"");
    }
    return fallback;
}

static void set(json_t *o, const char *k, json_t *v)
{
    if (!v || json_object_set_new_nocheck(o, k, v) < 0)
        die("out of memory building JSON");
}

json_t *conference_to_json(const struct conference *c)
{
    json_t *o = json_object();
    set(o, "id", json_string(c->id));
    set(o, "customer_id", json_string(c->customer_id));
    set(o, "type", json_string(conference_type_name(c->type)));
    set(o, "status", json_string(conference_status_name(c->status)));
    set(o, "name", str_or_empty(c->name));
    set(o, "detail", str_or_empty(c->detail));
    set(o, "data", stored_json(c->data, json_object()));
    set(o, "timeout", json_integer(c->timeout));
    set(o, "pre_flow_id", json_string(c->pre_flow_id));
    set(o, "post_flow_id", json_string(c->post_flow_id));
    json_t *ids = json_array();
    for (size_t i = 0; i < c->n_call_ids; i++)
        json_array_append_new(ids, json_string(c->call_ids[i]));
    set(o, "conferencecall_ids", ids);
    set(o, "recording_id", json_string(c->recording_id));
    set(o, "recording_ids", stored_json(c->recording_ids, json_array()));
    set(o, "transcribe_id", json_string(c->transcribe_id));
    set(o, "transcribe_ids", stored_json(c->transcribe_ids, json_array()));
    set(o, "direct_hash", json_string(c->direct_hash));
    set(o, "tm_end", json_tm_or_null(c->tm_end)); /* null until it ends, as the seed shows */
    set(o, "tm_create", json_tm(c->tm_create));
    set(o, "tm_update", json_tm(c->tm_update));
    set(o, "tm_delete", json_tm(c->tm_delete));
    return o;
}

json_t *conferencecall_to_json(const struct conferencecall *cc)
{
    json_t *o = json_object();
    set(o, "id", json_string(cc->id));
    set(o, "customer_id", json_string(cc->customer_id));
    set(o, "activeflow_id", json_string(cc->activeflow_id));
    set(o, "conference_id", json_string(cc->conference_id));
    set(o, "reference_type", json_string(cc_reference_type_name(cc->reference_type)));
    set(o, "reference_id", json_string(cc->reference_id));
    set(o, "status", json_string(cc_status_name(cc->status)));
    set(o, "tm_create", json_tm(cc->tm_create));
    set(o, "tm_update", json_tm(cc->tm_update));
    set(o, "tm_delete", json_tm(cc->tm_delete));
    return o;
}

json_t *customer_to_json(const struct customer *c)
{
    json_t *o = json_object();
    set(o, "id", json_string(c->id));
    set(o, "name", str_or_empty(c->name));
    set(o, "detail", str_or_empty(c->detail));
    /* "" is stored for "the default", which is POST: show what is used. */
    set(o, "webhook_method", json_string(c->webhook_method[0] ? c->webhook_method : "POST"));
    set(o, "webhook_uri", str_or_empty(c->webhook_uri));
    set(o, "tm_create", json_tm(c->tm_create));
    set(o, "tm_update", json_tm(c->tm_update));
    set(o, "tm_delete", json_tm(c->tm_delete));
    return o;
}

json_t *agent_to_json(const struct agent *a)
{
    json_t *o = json_object();
    set(o, "id", json_string(a->id));
    set(o, "customer_id", json_string(a->customer_id));
    set(o, "username", str_or_empty(a->username));
    set(o, "name", str_or_empty(a->name));
    set(o, "detail", str_or_empty(a->detail));
    set(o, "ring_method", json_string(a->ring_method));
    set(o, "status", json_string("offline"));
    set(o, "permission", json_integer((json_int_t)a->permission));
    set(o, "tag_ids", json_array());
    set(o, "addresses", json_array());
    set(o, "tm_create", json_tm(a->tm_create));
    set(o, "tm_update", json_tm(a->tm_update));
    set(o, "tm_delete", json_tm(a->tm_delete));
    return o;
}

json_t *accesskey_to_json(const struct accesskey *k, const char *token)
{
    json_t *o = json_object();
    set(o, "id", json_string(k->id));
    set(o, "customer_id", json_string(k->customer_id));
    set(o, "name", str_or_empty(k->name));
    set(o, "detail", str_or_empty(k->detail));
    if (token)
        set(o, "token", json_string(token));
    set(o, "token_prefix", json_string(k->token_prefix));
    set(o, "tm_expire", json_tm(k->tm_expire));
    set(o, "tm_create", json_tm(k->tm_create));
    set(o, "tm_update", json_tm(k->tm_update));
    set(o, "tm_delete", json_tm(k->tm_delete));
    return o;
}

json_t *call_to_json(const struct call *c)
{
    json_t *o = json_object();
    set(o, "id", json_string(c->id));
    set(o, "customer_id", json_string(c->customer_id));
    set(o, "owner_type", json_string(c->owner_type));
    set(o, "owner_id", json_string(c->owner_id));
    set(o, "flow_id", json_string(c->flow_id));
    set(o, "activeflow_id", json_string(c->activeflow_id));
    set(o, "type", json_string(c->type));
    set(o, "master_call_id", json_string(c->master_call_id));
    set(o, "chained_call_ids", json_array());
    set(o, "recording_id", json_string(c->recording_id[0] ? c->recording_id : ID_NIL));
    set(o, "recording_ids", stored_json(c->recording_ids, json_array()));
    set(o, "groupcall_id", json_string(ID_NIL));
    set(o, "source", stored_json(c->source, json_object()));
    set(o, "destination", stored_json(c->destination, json_object()));
    set(o, "status", json_string(call_status_name(c->status)));
    set(o, "action", stored_json(c->action, json_object()));
    set(o, "direction", json_string(call_direction_name(c->direction)));
    set(o, "mute_direction", json_string(""));
    set(o, "hangup_by", json_string(c->hangup_by));
    set(o, "hangup_reason", json_string(c->hangup_reason));
    set(o, "metadata", stored_json(c->metadata, json_object()));
    set(o, "tm_progressing", json_tm(c->tm_progressing));
    set(o, "tm_ringing", json_tm(c->tm_ringing));
    set(o, "tm_hangup", json_tm(c->tm_hangup));
    set(o, "tm_create", json_tm(c->tm_create));
    set(o, "tm_update", json_tm(c->tm_update));
    set(o, "tm_delete", json_tm(c->tm_delete));
    return o;
}

const char *activeflow_status_name(enum activeflow_status s)
{
    return activeflow_statuses[s];
}

int activeflow_status_parse(const char *s, enum activeflow_status *out)
{
    int v;
    if (parse_name(activeflow_statuses, 2, s, &v) < 0)
        return -1;
    *out = (enum activeflow_status)v;
    return 0;
}

void flow_fini(struct flow *f)
{
    if (!f)
        return;
    free(f->name);
    free(f->detail);
    free(f->actions);
    f->name = f->detail = f->actions = NULL;
}

void number_fini(struct number *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->detail);
    n->name = n->detail = NULL;
}

void activeflow_fini(struct activeflow *a)
{
    if (!a)
        return;
    free(a->current_action);
    free(a->executed_actions);
    a->current_action = a->executed_actions = NULL;
}

json_t *flow_to_json(const struct flow *f)
{
    json_t *o = json_object();
    set(o, "id", json_string(f->id));
    set(o, "customer_id", json_string(f->customer_id));
    set(o, "type", json_string(f->type));
    set(o, "name", str_or_empty(f->name));
    set(o, "detail", str_or_empty(f->detail));
    set(o, "actions", stored_json(f->actions, json_array()));
    set(o, "on_complete_flow_id", json_string(f->on_complete_flow_id));
    set(o, "tm_create", json_tm(f->tm_create));
    set(o, "tm_update", json_tm(f->tm_update));
    set(o, "tm_delete", json_tm(f->tm_delete));
    return o;
}

json_t *number_to_json(const struct number *n)
{
    json_t *o = json_object();
    set(o, "id", json_string(n->id));
    set(o, "customer_id", json_string(n->customer_id));
    set(o, "number", json_string(n->number));
    set(o, "type", json_string(n->type));
    set(o, "call_flow_id", json_string(n->call_flow_id));
    set(o, "message_flow_id", json_string(n->message_flow_id));
    set(o, "name", str_or_empty(n->name));
    set(o, "detail", str_or_empty(n->detail));
    set(o, "status", json_string(n->status));
    set(o, "t38_enabled", json_false());
    set(o, "emergency_enabled", json_false());
    set(o, "tm_purchase", json_tm(n->tm_purchase));
    set(o, "tm_renew", json_tm(n->tm_renew));
    set(o, "tm_create", json_tm(n->tm_create));
    set(o, "tm_update", json_tm(n->tm_update));
    set(o, "tm_delete", json_tm(n->tm_delete));
    return o;
}

json_t *activeflow_to_json(const struct activeflow *a)
{
    json_t *o = json_object();
    set(o, "id", json_string(a->id));
    set(o, "customer_id", json_string(a->customer_id));
    set(o, "flow_id", json_string(a->flow_id));
    set(o, "status", json_string(activeflow_status_name(a->status)));
    set(o, "reference_type", json_string(a->reference_type));
    set(o, "reference_id", json_string(a->reference_id));
    set(o, "reference_activeflow_id", json_string(ID_NIL));
    set(o, "on_complete_flow_id", json_string(a->on_complete_flow_id));
    set(o, "current_action", stored_json(a->current_action, json_object()));
    set(o, "forward_action_id", json_string(a->forward_action_id));
    set(o, "executed_actions", stored_json(a->executed_actions, json_array()));
    set(o, "tm_create", json_tm(a->tm_create));
    set(o, "tm_update", json_tm(a->tm_update));
    set(o, "tm_delete", json_tm(a->tm_delete));
    return o;
}

const char *recording_status_name(enum recording_status s)
{
    return recording_statuses[s];
}

int recording_status_parse(const char *s, enum recording_status *out)
{
    int v;
    if (parse_name(recording_statuses, 4, s, &v) < 0)
        return -1;
    *out = (enum recording_status)v;
    return 0;
}

json_t *recording_to_json(const struct recording *r)
{
    json_t *o = json_object();
    set(o, "id", json_string(r->id));
    set(o, "customer_id", json_string(r->customer_id));
    set(o, "owner_type", json_string(r->owner_type));
    set(o, "owner_id", json_string(r->owner_id));
    set(o, "activeflow_id", json_string(r->activeflow_id));
    set(o, "reference_type", json_string(r->reference_type));
    set(o, "reference_id", json_string(r->reference_id));
    set(o, "status", json_string(recording_status_name(r->status)));
    set(o, "format", json_string(r->format));
    set(o, "on_end_flow_id", json_string(r->on_end_flow_id));
    set(o, "duration_ms", json_integer(r->duration_ms));
    set(o, "size", json_integer(r->size));
    set(o, "frames_dropped", json_integer(r->frames_dropped));
    set(o, "tm_start", json_tm(r->tm_start));
    set(o, "tm_end", json_tm(r->tm_end));
    set(o, "tm_create", json_tm(r->tm_create));
    set(o, "tm_update", json_tm(r->tm_update));
    set(o, "tm_delete", json_tm(r->tm_delete));
    return o;
}

const char *transcribe_status_name(enum transcribe_status s)
{
    return transcribe_statuses[s];
}

int transcribe_status_parse(const char *s, enum transcribe_status *out)
{
    int v;
    if (parse_name(transcribe_statuses, 2, s, &v) < 0)
        return -1;
    *out = (enum transcribe_status)v;
    return 0;
}

json_t *transcribe_to_json(const struct transcribe *t)
{
    json_t *o = json_object();
    set(o, "id", json_string(t->id));
    set(o, "customer_id", json_string(t->customer_id));
    set(o, "activeflow_id", json_string(t->activeflow_id));
    set(o, "on_end_flow_id", json_string(t->on_end_flow_id));
    set(o, "reference_type", json_string(t->reference_type));
    set(o, "reference_id", json_string(t->reference_id));
    set(o, "status", json_string(transcribe_status_name(t->status)));
    set(o, "language", json_string(t->language));
    set(o, "direction", json_string(t->direction));
    set(o, "provider", json_string(t->provider));
    set(o, "skipped", json_integer(t->skipped));
    set(o, "failed", json_integer(t->failed));
    set(o, "error", json_string(t->error));
    set(o, "tm_create", json_tm(t->tm_create));
    set(o, "tm_update", json_tm(t->tm_update));
    set(o, "tm_delete", json_tm(t->tm_delete));
    return o;
}

void transcript_fini(struct transcript *t)
{
    free(t->message);
    t->message = NULL;
}

json_t *transcript_to_json(const struct transcript *t)
{
    json_t *o = json_object();
    set(o, "id", json_string(t->id));
    set(o, "customer_id", json_string(t->customer_id));
    set(o, "transcribe_id", json_string(t->transcribe_id));
    set(o, "direction", json_string(t->direction));
    set(o, "message", json_string(t->message ? t->message : ""));
    set(o, "conferencecall_id", json_string(t->conferencecall_id));
    set(o, "call_id", json_string(t->call_id));
    set(o, "confidence", json_real(t->confidence));
    set(o, "offset_ms", json_integer(t->offset_ms));
    set(o, "tm_transcript", json_tm(t->tm_transcript));
    set(o, "tm_end", json_tm(t->tm_end));
    set(o, "tm_create", json_tm(t->tm_create));
    return o;
}
