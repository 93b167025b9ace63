/* Shared fakes for unit tests (bridge, call states, flows, event recorder; the call module's SIP
 * side, router, flows and listener; the bridge's legs and reports; routing's directory). */
#include "fakes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/action.h"

static int fake_bridge_op_create(void *ctx, const struct conference *c)
{
    struct fake_bridge *b = ctx;
    b->creates++;
    return b->fail_create ? -1 : 0;
}

static void fake_bridge_op_destroy(void *ctx, const char *conference_id)
{
    struct fake_bridge *b = ctx;
    b->destroys++;
}

static int fake_bridge_op_join(void *ctx, const struct conferencecall *cc)
{
    struct fake_bridge *b = ctx;
    b->joins++;
    if (b->fail_join)
        return -1;
    if (b->n_joined < FAKE_MAX)
        memcpy(b->joined[b->n_joined++], cc->id, ID_LEN + 1);
    if (b->auto_answer)
        conference_on_joined(b->mgr, cc->id);
    return 0;
}

static void fake_bridge_op_kick(void *ctx, const struct conferencecall *cc)
{
    struct fake_bridge *b = ctx;
    b->kicks++;
    if (b->n_kicked < FAKE_MAX)
        memcpy(b->kicked[b->n_kicked++], cc->id, ID_LEN + 1);
    if (b->auto_answer)
        conference_on_leaved(b->mgr, cc->id);
}

struct conference_bridge fake_bridge_iface(struct fake_bridge *b)
{
    struct conference_bridge i = {b, fake_bridge_op_create, fake_bridge_op_destroy,
                                  fake_bridge_op_join, fake_bridge_op_kick};
    return i;
}

static bool calls_up(void *ctx, enum cc_reference_type t, const char *id)
{
    struct fake_calls *c = ctx;
    for (size_t i = 0; i < c->n_up; i++)
        if (strcmp(c->up[i], id) == 0)
            return true;
    return false;
}

static void calls_left(void *ctx, const struct conferencecall *cc, const struct conference *conf)
{
    struct fake_calls *c = ctx;
    if (c->n_left < FAKE_MAX) {
        memcpy(c->left[c->n_left], cc->reference_id, ID_LEN + 1);
        c->left_conf_status[c->n_left] = (int)conf->status;
        c->n_left++;
    }
}

struct conference_calls fake_calls_iface(struct fake_calls *c)
{
    struct conference_calls i = {c, calls_up, calls_left};
    return i;
}

void fake_calls_set_up(struct fake_calls *c, const char *call_id, bool up)
{
    for (size_t i = 0; i < c->n_up; i++) {
        if (strcmp(c->up[i], call_id) == 0) {
            if (!up)
                memcpy(c->up[i], c->up[--c->n_up], ID_LEN + 1);
            return;
        }
    }
    if (up && c->n_up < FAKE_MAX)
        memcpy(c->up[c->n_up++], call_id, ID_LEN + 1);
}

static bool flows_exists(void *ctx, const char *customer_id, const char *flow_id)
{
    struct fake_flows *f = ctx;
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->ids[i], flow_id) && !strcmp(f->customers[i], customer_id))
            return true;
    return false;
}

struct conference_flows fake_flows_iface(struct fake_flows *f)
{
    struct conference_flows i = {f, flows_exists};
    return i;
}

void fake_flows_add(struct fake_flows *f, const char *customer_id, const char *flow_id)
{
    if (f->n < FAKE_MAX) {
        memcpy(f->ids[f->n], flow_id, ID_LEN + 1);
        memcpy(f->customers[f->n], customer_id, ID_LEN + 1);
        f->n++;
    }
}

void event_log_record(const struct event *ev, void *ctx)
{
    struct event_log *l = ctx;
    if (l->n >= 512)
        return;
    strncpy(l->types[l->n], ev->type, sizeof(l->types[0]) - 1);
    strncpy(l->ids[l->n], ev->resource_id, ID_LEN);
    json_t *st = json_object_get(ev->data, "status");
    strncpy(l->status[l->n], st && json_is_string(st) ? json_string_value(st) : "",
            sizeof(l->status[0]) - 1);
    l->n++;
}

int event_log_find(const struct event_log *l, size_t from, const char *type, const char *id)
{
    for (size_t i = from; i < l->n; i++)
        if (!strcmp(l->types[i], type) && (!id || !strcmp(l->ids[i], id)))
            return (int)i;
    return -1;
}

size_t event_log_count(const struct event_log *l, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += !strcmp(l->types[i], type);
    return n;
}

const char *fake_query_value(const char *query, const char *key)
{
    static char value[4096];
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= sizeof(value))
                vlen = sizeof(value) - 1;
            memcpy(value, p + klen + 1, vlen);
            value[vlen] = '\0';
            return value;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

double fake_tone_level(const int16_t *x, size_t n, double hz)
{
    return fake_tone_level_at(x, n, hz, 8000.0);
}

double fake_tone_level_at(const int16_t *x, size_t n, double hz, double rate)
{
    double k = 2.0 * cos(2.0 * M_PI * hz / rate), s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        double s0 = x[i] + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double power = s1 * s1 + s2 * s2 - k * s1 * s2;
    return n ? 2.0 * sqrt(power > 0 ? power : 0) / (double)n : 0.0;
}

/* ---- the call module's SIP side ---- */

struct fake_dialog *fake_dialog_of(struct sip_dialog *d)
{
    return (struct fake_dialog *)d;
}

static const struct fake_dialog *cdialog(const struct sip_dialog *d)
{
    return (const struct fake_dialog *)d;
}

struct sip_dialog *fake_sip_dialog(struct fake_sip *s, bool outgoing)
{
    if (s->n >= FAKE_MAX)
        return NULL;
    struct fake_dialog *d = &s->dialogs[s->n++];
    memset(d, 0, sizeof(*d));
    d->outgoing = outgoing;
    return (struct sip_dialog *)d;
}

static int fsip_answer(void *ctx, struct sip_dialog *d, const char *sdp)
{
    struct fake_sip *s = ctx;
    s->answers++;
    fake_dialog_of(d)->answered = true;
    snprintf(fake_dialog_of(d)->sdp, sizeof(fake_dialog_of(d)->sdp), "%s", sdp);
    return 0;
}

static int fsip_reject(void *ctx, struct sip_dialog *d, int code, const char *reason)
{
    struct fake_sip *s = ctx;
    s->rejects++;
    fake_dialog_of(d)->rejected = code;
    return 0;
}

static int fsip_bye(void *ctx, struct sip_dialog *d)
{
    struct fake_sip *s = ctx;
    if (s->fail_bye || fake_dialog_of(d)->byed)
        return -1;
    s->byes++;
    fake_dialog_of(d)->byed = true;
    return 0;
}

static int fsip_cancel(void *ctx, struct sip_dialog *d)
{
    struct fake_sip *s = ctx;
    if (s->fail_cancel || fake_dialog_of(d)->cancelled)
        return -1;
    s->cancels++;
    fake_dialog_of(d)->cancelled = true;
    return 0;
}

static struct sip_dialog *fsip_invite(void *ctx, const struct sip_outgoing *o, void *data,
                                      char *err, size_t errlen)
{
    struct fake_sip *s = ctx;
    s->invites++;
    struct sip_dialog *d = s->fail_invite ? NULL : fake_sip_dialog(s, true);
    if (!d) {
        snprintf(err, errlen, "refused by the fake");
        return NULL;
    }
    struct fake_dialog *fd = fake_dialog_of(d);
    fd->data = data;
    snprintf(fd->sdp, sizeof(fd->sdp), "%s", o->sdp);
    snprintf(fd->request_uri, sizeof(fd->request_uri), "%s", o->request_uri);
    snprintf(fd->from_uri, sizeof(fd->from_uri), "%s", o->from_uri);
    return d;
}

static int fsip_state(void *ctx, const struct sip_dialog *d, char *out, size_t cap)
{
    struct fake_sip *s = ctx;
    return snprintf(out, cap, "{\"fake_dialog\":%d}", (int)(cdialog(d) - s->dialogs));
}

static int fsip_bye_saved(void *ctx, const char *state, char *err, size_t errlen)
{
    struct fake_sip *s = ctx;
    if (s->saved_byes < FAKE_MAX)
        snprintf(s->saved[s->saved_byes], sizeof(s->saved[0]), "%s", state);
    s->saved_byes++;
    return 0;
}

static bool fsip_unacked(void *ctx, const struct sip_dialog *d)
{
    return cdialog(d)->unacked;
}

static const char *fsip_peer_ip(void *ctx, const struct sip_dialog *d)
{
    return "127.0.0.1";
}

static void fsip_set_data(void *ctx, struct sip_dialog *d, void *data)
{
    fake_dialog_of(d)->data = data;
}

static void *fsip_data(void *ctx, const struct sip_dialog *d)
{
    return cdialog(d)->data;
}

struct call_sip fake_sip_iface(struct fake_sip *s)
{
    struct call_sip i = {
        s,          fsip_answer,    fsip_reject,  fsip_bye,     fsip_cancel,   fsip_invite,
        fsip_state, fsip_bye_saved, fsip_unacked, fsip_peer_ip, fsip_set_data, fsip_data};
    return i;
}

/* ---- router, flows, listener ---- */

static int router_route(void *ctx, const char *user, struct route *out)
{
    struct fake_router *r = ctx;
    r->routes++;
    snprintf(r->last_user, sizeof(r->last_user), "%s", user);
    memset(out, 0, sizeof(*out));
    out->refuse = r->refuse;
    out->type = r->direct ? "conference" : "flow";
    if (r->refuse)
        return r->refuse;
    memcpy(out->customer_id, r->customer_id, ID_LEN + 1);
    memcpy(out->flow_id, r->direct ? ID_NIL : r->flow_id, ID_LEN + 1);
    if (r->direct) {
        json_t *in = json_pack("[{s:s}]", "type", "answer");
        struct error e;
        if (action_list_validate(in, &out->actions, &e) < 0)
            out->actions = NULL;
        json_decref(in);
    }
    return 0;
}

struct call_router fake_router_iface(struct fake_router *r)
{
    struct call_router i = {r, router_route};
    return i;
}

static bool call_flows_exists(void *ctx, const char *customer_id, const char *flow_id)
{
    struct fake_call_flows *f = ctx;
    return !f->missing;
}

static int call_flows_create(void *ctx, const char *customer_id, const char *flow_id,
                             json_t *actions, const struct af_call_info *call, json_t *vars,
                             char out_id[ID_LEN + 1], struct error *e)
{
    struct fake_call_flows *f = ctx;
    f->creates++;
    if (f->fail_status)
        return error_set(e, f->fail_status, "FAKE", "The fake flows refuse.");
    id_new(out_id);
    memcpy(f->last_id, out_id, ID_LEN + 1);
    snprintf(f->last_flow_id, sizeof(f->last_flow_id), "%s", flow_id ? flow_id : ID_NIL);
    snprintf(f->last_direction, sizeof(f->last_direction), "%s", call->direction);
    f->last_had_actions = actions != NULL;
    return 0;
}

struct call_flows fake_call_flows_iface(struct fake_call_flows *f)
{
    struct call_flows i = {f, call_flows_exists, call_flows_create};
    return i;
}

static void note(struct fake_listener *l, const char *call_id, const char *af_id)
{
    memcpy(l->last_call, call_id, ID_LEN + 1);
    memcpy(l->last_af, af_id, ID_LEN + 1);
}

static void listener_ready(void *ctx, const char *call_id, const char *af_id)
{
    struct fake_listener *l = ctx;
    l->ready++;
    note(l, call_id, af_id);
}

static void listener_ended(void *ctx, const char *call_id, const char *af_id)
{
    struct fake_listener *l = ctx;
    l->ended++;
    note(l, call_id, af_id);
}

static void listener_dtmf(void *ctx, const char *call_id, const char *af_id, char digit)
{
    struct fake_listener *l = ctx;
    if (l->dtmf < FAKE_MAX)
        l->digits[l->dtmf] = digit;
    l->dtmf++;
    note(l, call_id, af_id);
}

static void listener_play_done(void *ctx, const char *call_id, const char *af_id, uint32_t play_id,
                               bool stopped)
{
    struct fake_listener *l = ctx;
    l->play_done++;
    l->last_play_id = play_id;
    l->last_stopped = stopped;
    note(l, call_id, af_id);
}

static void listener_left(void *ctx, const struct conferencecall *cc, const struct conference *c)
{
    struct fake_listener *l = ctx;
    l->left++;
    memcpy(l->last_cc, cc->id, ID_LEN + 1);
    note(l, cc->reference_id, cc->activeflow_id);
}

struct call_listener fake_listener_iface(struct fake_listener *l)
{
    struct call_listener i = {
        l, listener_ready, listener_ended, listener_dtmf, listener_play_done, listener_left};
    return i;
}

/* ---- the bridge's legs and reports ---- */

static int legs_find(const struct fake_legs *l, const char *call_id)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->ids[i], call_id))
            return (int)i;
    return -1;
}

void fake_legs_set(struct fake_legs *l, const char *call_id, struct media_leg *leg, bool ending)
{
    int i = legs_find(l, call_id);
    if (i < 0) {
        if (l->n >= FAKE_MAX)
            return;
        i = (int)l->n++;
        memcpy(l->ids[i], call_id, ID_LEN + 1);
    }
    l->legs[i] = leg;
    l->ending[i] = ending;
}

static struct media_leg *legs_leg(void *ctx, const char *call_id)
{
    struct fake_legs *l = ctx;
    int i = legs_find(l, call_id);
    return i < 0 ? NULL : l->legs[i];
}

static bool legs_joinable(void *ctx, const char *call_id)
{
    struct fake_legs *l = ctx;
    int i = legs_find(l, call_id);
    return i >= 0 && l->legs[i] && !l->ending[i];
}

static void legs_on_event(void *ctx, const struct media_event *ev)
{
    struct fake_legs *l = ctx;
    if (l->n_events < FAKE_MAX)
        l->events[l->n_events++] = ev->type;
}

struct bridge_legs fake_legs_iface(struct fake_legs *l)
{
    struct bridge_legs i = {l, legs_leg, legs_joinable, legs_on_event};
    return i;
}

static void reports_joined(void *ctx, const char *cc_id)
{
    struct fake_reports *r = ctx;
    if (r->n_joined < FAKE_MAX)
        memcpy(r->joined[r->n_joined++], cc_id, ID_LEN + 1);
}

static void reports_leaved(void *ctx, const char *cc_id)
{
    struct fake_reports *r = ctx;
    if (r->n_leaved < FAKE_MAX)
        memcpy(r->leaved[r->n_leaved++], cc_id, ID_LEN + 1);
}

struct bridge_reports fake_reports_iface(struct fake_reports *r)
{
    struct bridge_reports i = {r, reports_joined, reports_leaved};
    return i;
}

/* ---- routing's directory ---- */

static int directory_conference(void *ctx, const char *hash, struct conference *out)
{
    struct fake_directory *d = ctx;
    d->lookups++;
    for (size_t i = 0; i < d->n_confs; i++) {
        if (!strcmp(d->confs[i].direct_hash, hash)) {
            conference_copy(out, &d->confs[i]);
            return 0;
        }
    }
    return -1;
}

static int directory_number(void *ctx, const char *user, struct number *out)
{
    struct fake_directory *d = ctx;
    d->lookups++;
    for (size_t i = 0; i < d->n_nums; i++) {
        if (!strcmp(d->nums[i].number, user)) {
            *out = d->nums[i]; /* no heap strings */
            return 0;
        }
    }
    return -1;
}

struct routing_lookups fake_directory_iface(struct fake_directory *d)
{
    struct routing_lookups i = {d, directory_conference, directory_number};
    return i;
}

void fake_directory_add_conference(struct fake_directory *d, const struct conference *c)
{
    if (d->n_confs < 8)
        conference_copy(&d->confs[d->n_confs++], c);
}

void fake_directory_add_number(struct fake_directory *d, const char *number,
                               const char *customer_id, const char *call_flow_id)
{
    if (d->n_nums >= 8)
        return;
    struct number *n = &d->nums[d->n_nums++];
    memset(n, 0, sizeof(*n));
    id_new(n->id);
    snprintf(n->number, sizeof(n->number), "%s", number);
    memcpy(n->customer_id, customer_id, ID_LEN + 1);
    memcpy(n->call_flow_id, call_flow_id, ID_LEN + 1);
    memcpy(n->message_flow_id, ID_NIL, ID_LEN + 1);
}

void fake_directory_fini(struct fake_directory *d)
{
    for (size_t i = 0; i < d->n_confs; i++)
        conference_fini(&d->confs[i]);
    d->n_confs = 0;
}
