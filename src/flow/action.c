#include "flow/action.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ids.h"
#include "core/mem.h"

static const char *const type_names[ACTION__COUNT] = {
    [ACTION_ANSWER] = "answer",
    [ACTION_TALK] = "talk",
    [ACTION_PLAY] = "play",
    [ACTION_SLEEP] = "sleep",
    [ACTION_HANGUP] = "hangup",
    [ACTION_DIGITS_RECEIVE] = "digits_receive",
    [ACTION_BRANCH] = "branch",
    [ACTION_GOTO] = "goto",
    [ACTION_CONFERENCE_JOIN] = "conference_join",
    [ACTION_FETCH_FLOW] = "fetch_flow",
    [ACTION_RECORDING_START] = "recording_start",
    [ACTION_RECORDING_STOP] = "recording_stop",
    [ACTION_TRANSCRIBE_START] = "transcribe_start",
    [ACTION_TRANSCRIBE_STOP] = "transcribe_stop",
};

static const char *const hangup_reasons[] = {"",       "normal", "busy",   "noanswer",
                                             "failed", "cancel", "timeout"};

const char *action_type_name(enum action_type t)
{
    return type_names[t];
}

int action_type_parse(const char *s, enum action_type *out)
{
    for (int i = 0; i < ACTION__COUNT; i++) {
        if (!strcmp(type_names[i], s)) {
            *out = (enum action_type)i;
            return 0;
        }
    }
    return -1;
}

const char *action_type_list(void)
{
    return "answer, talk, play, sleep, hangup, digits_receive, branch, goto, conference_join, "
           "fetch_flow, recording_start, recording_stop, transcribe_start, transcribe_stop";
}

/* ---- validation ---- */

struct vctx {
    size_t index; /* 1-based position of the action being checked */
    const char *id;
    const char *type;
    struct error *e;
};

__attribute__((format(printf, 2, 3))) static int bad(struct vctx *v, const char *fmt, ...)
{
    char what[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return error_set(v->e, ERR_INVALID_ARGUMENT, "INVALID_ACTION", "Action %zu (%s%s%s): %s",
                     v->index, v->type ? v->type : "no type", v->id ? ", id " : "",
                     v->id ? v->id : "", what);
}

/* A value that is a variable reference is checked when the action runs, not here. */
static bool has_variable(const char *s)
{
    return strstr(s, "${") != NULL;
}

/* Optional string option: 0 absent, 1 present (out set), negative error. */
static int opt_string(struct vctx *v, json_t *opt, const char *key, size_t max_len, bool required,
                      const char **out)
{
    json_t *x = json_object_get(opt, key);
    if (!x || json_is_null(x)) {
        if (required)
            return bad(v, "option \"%s\" is required.", key);
        return 0;
    }
    if (!json_is_string(x))
        return bad(v, "option \"%s\" must be a string.", key);
    if (json_string_length(x) > max_len)
        return bad(v, "option \"%s\" is longer than %zu bytes.", key, max_len);
    if (required && json_string_length(x) == 0)
        return bad(v, "option \"%s\" must not be empty.", key);
    *out = json_string_value(x);
    return 1;
}

static int opt_int(struct vctx *v, json_t *opt, const char *key, long long min, long long max,
                   bool required, long long *out)
{
    json_t *x = json_object_get(opt, key);
    if (!x || json_is_null(x)) {
        if (required)
            return bad(v, "option \"%s\" is required.", key);
        return 0;
    }
    if (!json_is_integer(x))
        return bad(v, "option \"%s\" must be an integer.", key);
    long long n = json_integer_value(x);
    if (n < min || n > max)
        return bad(v, "option \"%s\" must be between %lld and %lld.", key, min, max);
    *out = n;
    return 1;
}

static int opt_bool(struct vctx *v, json_t *opt, const char *key)
{
    json_t *x = json_object_get(opt, key);
    if (x && !json_is_null(x) && !json_is_boolean(x))
        return bad(v, "option \"%s\" must be true or false.", key);
    return 0;
}

/* An optional flow id (on_end_flow_id), normalised in place. */
static int opt_flow_id(struct vctx *v, json_t *opt, const char *key)
{
    const char *s = NULL;
    int rc = opt_string(v, opt, key, 256, false, &s);
    if (rc <= 0 || !s[0] || has_variable(s))
        return rc < 0 ? rc : 0;
    char norm[ID_LEN + 1];
    if (id_normalize(s, norm) < 0)
        return bad(v, "option \"%s\" must be a flow id (a UUID).", key);
    json_object_set_new(opt, key, json_string(norm));
    return 0;
}

/* A reference to another action of the same flow. */
static int opt_target(struct vctx *v, json_t *opt, const char *key, bool required, json_t *ids)
{
    const char *s = NULL;
    int rc = opt_string(v, opt, key, 64, required, &s);
    if (rc <= 0)
        return rc;
    char norm[ID_LEN + 1];
    if (id_normalize(s, norm) < 0)
        return bad(v, "option \"%s\" must be the id (a UUID) of an action of this flow.", key);
    if (id_is_nil(norm)) {
        if (required)
            return bad(v, "option \"%s\" is required.", key);
        return 0;
    }
    if (!json_object_get(ids, norm))
        return bad(v, "option \"%s\" is %s, which is not the id of an action of this flow.", key,
                   norm);
    json_object_set_new(opt, key, json_string(norm));
    return 1;
}

static int opt_uuid_or_var(struct vctx *v, json_t *opt, const char *key)
{
    const char *s = NULL;
    int rc = opt_string(v, opt, key, 256, true, &s);
    if (rc < 0)
        return rc;
    if (has_variable(s))
        return 0;
    char norm[ID_LEN + 1];
    if (id_normalize(s, norm) < 0 || id_is_nil(norm))
        return bad(v, "option \"%s\" must be a UUID (or a ${variable}).", key);
    json_object_set_new(opt, key, json_string(norm));
    return 0;
}

static bool is_location(const char *s)
{
    return s[0] == '/' || !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8) ||
           !strncasecmp(s, "file:///", 8);
}

static int check_option(struct vctx *v, enum action_type t, json_t *opt, json_t *ids)
{
    const char *s = NULL;
    long long n = 0;
    int rc = 0;
    switch (t) {
    case ACTION_ANSWER:
        return 0;
    case ACTION_TALK: {
        if ((rc = opt_string(v, opt, "text", ACTION_TEXT_MAX, true, &s)) < 0)
            return rc;
        const char *lang = NULL;
        if ((rc = opt_string(v, opt, "language", 16, false, &lang)) < 0)
            return rc;
        if (lang && lang[0] && strcmp(lang, "en-US") != 0 && !has_variable(lang))
            return bad(v, "language \"%s\" is not supported; supported: en-US.", lang);
        const char *dh = NULL;
        if ((rc = opt_string(v, opt, "digits_handle", 16, false, &dh)) < 0)
            return rc;
        if (dh && dh[0] && strcmp(dh, "next") != 0)
            return bad(v, "option \"digits_handle\" must be \"\" or \"next\".");
        const char *ignored;
        if ((rc = opt_string(v, opt, "gender", 16, false, &ignored)) < 0 ||
            (rc = opt_string(v, opt, "provider", 32, false, &ignored)) < 0 ||
            (rc = opt_string(v, opt, "voice_id", 64, false, &ignored)) < 0)
            return rc;
        return opt_bool(v, opt, "async");
    }
    case ACTION_PLAY: {
        json_t *urls = json_object_get(opt, "stream_urls");
        if (!json_is_array(urls) || json_array_size(urls) == 0)
            return bad(v, "option \"stream_urls\" must be an array of 1 to %d locations.",
                       ACTION_MAX_STREAM_URLS);
        if (json_array_size(urls) > ACTION_MAX_STREAM_URLS)
            return bad(v, "option \"stream_urls\" has more than %d locations.",
                       ACTION_MAX_STREAM_URLS);
        size_t i;
        json_t *u;
        json_array_foreach(urls, i, u)
        {
            if (!json_is_string(u) || json_string_length(u) == 0 || json_string_length(u) > 2048)
                return bad(v, "stream_urls[%zu] must be a non-empty string of at most 2048 bytes.",
                           i);
            const char *loc = json_string_value(u);
            if (!has_variable(loc) && !is_location(loc))
                return bad(v,
                           "stream_urls[%zu] must be an http(s) URL, a file:// URL or an absolute "
                           "path.",
                           i);
        }
        return 0;
    }
    case ACTION_SLEEP:
        return opt_int(v, opt, "duration", 0, ACTION_SLEEP_MAX_MS, true, &n) < 0 ? -1 : 0;
    case ACTION_HANGUP: {
        if ((rc = opt_string(v, opt, "reason", 16, false, &s)) < 0)
            return rc;
        if (s) {
            bool ok = false;
            for (size_t i = 0; i < sizeof(hangup_reasons) / sizeof(*hangup_reasons); i++)
                ok |= !strcmp(hangup_reasons[i], s);
            if (!ok)
                return bad(v,
                           "reason \"%s\" is not one of normal, busy, noanswer, failed, cancel, "
                           "timeout.",
                           s);
        }
        return 0;
    }
    case ACTION_DIGITS_RECEIVE: {
        if ((rc = opt_int(v, opt, "duration", 1, ACTION_DIGITS_MAX_MS, false, &n)) < 0 ||
            (rc = opt_int(v, opt, "length", 0, ACTION_DIGITS_MAX_LEN, false, &n)) < 0)
            return rc;
        if ((rc = opt_string(v, opt, "key", 16, false, &s)) < 0)
            return rc;
        if (s && strspn(s, "0123456789*#ABCD") != strlen(s))
            return bad(v, "option \"key\" may hold only the keys 0-9, *, #, A-D.");
        return 0;
    }
    case ACTION_BRANCH: {
        if ((rc = opt_string(v, opt, "variable", 256, false, &s)) < 0)
            return rc;
        if ((rc = opt_target(v, opt, "default_target_id", false, ids)) < 0)
            return rc;
        json_t *targets = json_object_get(opt, "target_ids");
        if (targets && !json_is_null(targets)) {
            if (!json_is_object(targets))
                return bad(v, "option \"target_ids\" must be an object of value: action id.");
            const char *key;
            json_t *val;
            json_object_foreach(targets, key, val)
            {
                if (!json_is_string(val))
                    return bad(v, "target_ids[\"%s\"] must be an action id.", key);
                char norm[ID_LEN + 1];
                if (id_normalize(json_string_value(val), norm) < 0 || !json_object_get(ids, norm))
                    return bad(v, "target_ids[\"%s\"] is not the id of an action of this flow.",
                               key);
                json_object_set_new(targets, key, json_string(norm));
            }
        }
        return 0;
    }
    case ACTION_GOTO:
        if ((rc = opt_target(v, opt, "target_id", true, ids)) < 0)
            return rc;
        return opt_int(v, opt, "loop_count", 0, ACTION_GOTO_MAX_LOOPS, false, &n) < 0 ? -1 : 0;
    case ACTION_CONFERENCE_JOIN:
        return opt_uuid_or_var(v, opt, "conference_id");
    case ACTION_FETCH_FLOW:
        return opt_uuid_or_var(v, opt, "flow_id");
    case ACTION_RECORDING_START: {
        if ((rc = opt_string(v, opt, "format", 16, false, &s)) < 0)
            return rc;
        if (s && s[0] && strcmp(s, "wav") && !has_variable(s))
            return bad(v, "format \"%s\" is not supported: recordings are \"wav\".", s);
        if ((rc = opt_int(v, opt, "duration", 0, ACTION_RECORDING_MAX_S, false, &n)) < 0 ||
            (rc = opt_int(v, opt, "end_of_silence", 0, ACTION_RECORDING_MAX_S, false, &n)) < 0)
            return rc;
        s = NULL;
        if ((rc = opt_string(v, opt, "end_of_key", 8, false, &s)) < 0)
            return rc;
        if (s && s[0] && strcmp(s, "none") && strcmp(s, "any") && strcmp(s, "*") && strcmp(s, "#"))
            return bad(v, "option \"end_of_key\" must be \"\", none, any, * or #.");
        if ((rc = opt_bool(v, opt, "beep_start")) < 0)
            return rc;
        return opt_flow_id(v, opt, "on_end_flow_id");
    }
    case ACTION_RECORDING_STOP:
        return 0;
    case ACTION_TRANSCRIBE_START: {
        if ((rc = opt_string(v, opt, "language", 64, true, &s)) < 0)
            return rc;
        s = NULL;
        if ((rc = opt_string(v, opt, "direction", 8, false, &s)) < 0)
            return rc;
        if (s && s[0] && strcmp(s, "in") && strcmp(s, "out") && strcmp(s, "both") &&
            !has_variable(s))
            return bad(v, "option \"direction\" must be in, out or both.");
        s = NULL;
        if ((rc = opt_string(v, opt, "provider", 16, false, &s)) < 0)
            return rc;
        return opt_flow_id(v, opt, "on_end_flow_id");
    }
    case ACTION_TRANSCRIBE_STOP:
        return 0;
    case ACTION__COUNT:
        break;
    }
    return bad(v, "unknown type.");
}

int action_list_validate(json_t *actions, json_t **out, struct error *e)
{
    if (!json_is_array(actions))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_ACTION",
                         "\"actions\" must be an array of actions.");
    size_t n = json_array_size(actions);
    if (n > FLOW_MAX_ACTIONS)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_ACTION",
                         "A flow holds at most %d actions; this one has %zu.", FLOW_MAX_ACTIONS, n);
    json_t *res = json_array();
    json_t *ids = json_object(); /* id -> true, to check references and duplicates */
    int rc = 0;
    /* Pass 1: shape, type and ids. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *a = json_array_get(actions, i);
        struct vctx v = {.index = i + 1, .e = e};
        if (!json_is_object(a)) {
            rc = bad(&v, "an action must be an object.");
            break;
        }
        json_t *jt = json_object_get(a, "type");
        if (!json_is_string(jt) || json_string_length(jt) == 0) {
            rc = bad(&v, "\"type\" is required.");
            break;
        }
        enum action_type t;
        if (action_type_parse(json_string_value(jt), &t) < 0) {
            char type[64];
            snprintf(type, sizeof(type), "%s", json_string_value(jt));
            rc = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_ACTION_TYPE",
                           "Action %zu has type \"%s\", which this server does not run. "
                           "Supported types: %s.",
                           i + 1, type, action_type_list());
            break;
        }
        char id[ID_LEN + 1];
        json_t *jid = json_object_get(a, "id");
        if (jid && !json_is_null(jid) &&
            (!json_is_string(jid) || id_normalize(json_string_value(jid), id) < 0)) {
            v.type = type_names[t];
            rc = bad(&v, "\"id\" must be a UUID.");
            break;
        }
        if (!jid || json_is_null(jid) || id_is_nil(id))
            id_new(id);
        if (json_object_get(ids, id)) {
            v.type = type_names[t];
            rc = bad(&v, "the id %s is used by an earlier action.", id);
            break;
        }
        json_object_set_new(ids, id, json_true());
        json_t *opt = json_object_get(a, "option");
        if (opt && !json_is_null(opt) && !json_is_object(opt)) {
            v.type = type_names[t];
            v.id = id;
            rc = bad(&v, "\"option\" must be an object.");
            break;
        }
        json_t *c = json_object();
        json_object_set_new(c, "id", json_string(id));
        json_object_set_new(c, "next_id", json_string(ID_NIL));
        json_object_set_new(c, "type", json_string(type_names[t]));
        json_object_set_new(c, "option",
                            opt && json_is_object(opt) ? json_deep_copy(opt) : json_object());
        json_array_append_new(res, c);
    }
    /* Pass 2: next_id and options (references need every id). */
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *a = json_array_get(actions, i);
        json_t *c = json_array_get(res, i);
        enum action_type t = action_type_of(c);
        struct vctx v = {.index = i + 1,
                         .id = json_string_value(json_object_get(c, "id")),
                         .type = type_names[t],
                         .e = e};
        json_t *jn = json_object_get(a, "next_id");
        if (jn && !json_is_null(jn)) {
            char next[ID_LEN + 1];
            if (!json_is_string(jn) || id_normalize(json_string_value(jn), next) < 0) {
                rc = bad(&v, "\"next_id\" must be a UUID.");
                break;
            }
            if (!id_is_nil(next) && !json_object_get(ids, next)) {
                rc = bad(&v, "\"next_id\" %s is not the id of an action of this flow.", next);
                break;
            }
            json_object_set_new(c, "next_id", json_string(next));
        }
        rc = check_option(&v, t, json_object_get(c, "option"), ids);
    }
    json_decref(ids);
    if (rc < 0) {
        json_decref(res);
        return rc;
    }
    *out = res;
    return 0;
}

enum action_type action_type_of(json_t *action)
{
    enum action_type t = ACTION_ANSWER;
    const char *s = json_string_value(json_object_get(action, "type"));
    if (!s || action_type_parse(s, &t) < 0)
        return ACTION__COUNT;
    return t;
}

long action_find(json_t *actions, const char *id)
{
    size_t i;
    json_t *a;
    json_array_foreach(actions, i, a)
    {
        const char *aid = json_string_value(json_object_get(a, "id"));
        if (aid && !strcmp(aid, id))
            return (long)i;
    }
    return -1;
}

/* ---- variables ---- */

#define SUBST_MAX 65536

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n >= SUBST_MAX)
        n = SUBST_MAX - 1 - b->len;
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        if (b->cap > SUBST_MAX)
            b->cap = SUBST_MAX;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

char *action_substitute(const char *text, json_t *vars)
{
    struct sbuf b = {xmalloc(64), 0, 64};
    b.p[0] = '\0';
    const char *p = text;
    while (*p) {
        const char *start = strstr(p, "${");
        const char *end = start ? strchr(start + 2, '}') : NULL;
        if (!start || !end) {
            sb_add(&b, p, strlen(p));
            break;
        }
        sb_add(&b, p, (size_t)(start - p));
        char name[256];
        size_t nlen = (size_t)(end - start - 2);
        if (nlen < sizeof(name)) {
            memcpy(name, start + 2, nlen);
            name[nlen] = '\0';
            json_t *v = json_object_get(vars, name);
            if (json_is_string(v)) {
                sb_add(&b, json_string_value(v), json_string_length(v));
            } else if (v && !json_is_null(v)) {
                char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                if (txt) {
                    sb_add(&b, txt, strlen(txt));
                    free(txt);
                }
            }
        }
        p = end + 1;
    }
    return b.p;
}

json_t *action_option_resolve(json_t *option, json_t *vars)
{
    if (json_is_string(option)) {
        const char *s = json_string_value(option);
        if (!has_variable(s))
            return json_incref(option);
        char *r = action_substitute(s, vars);
        json_t *v = json_string(r);
        free(r);
        return v ? v : json_string("");
    }
    if (json_is_object(option)) {
        json_t *o = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(option, k, v) json_object_set_new(o, k, action_option_resolve(v, vars));
        return o;
    }
    if (json_is_array(option)) {
        json_t *a = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(option, i, v) json_array_append_new(a, action_option_resolve(v, vars));
        return a;
    }
    return json_incref(option);
}
