/* Shared fakes for unit tests (bridge, call states, flows, event recorder). */
#include "fakes.h"

#include <math.h>
#include <string.h>

static int bridge_create(void *ctx, const struct conference *c)
{
    struct fake_bridge *b = ctx;
    b->creates++;
    return b->fail_create ? -1 : 0;
}

static void bridge_destroy(void *ctx, const char *conference_id)
{
    struct fake_bridge *b = ctx;
    b->destroys++;
}

static int bridge_join(void *ctx, const struct conferencecall *cc)
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

static void bridge_kick(void *ctx, const struct conferencecall *cc)
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
    struct conference_bridge i = {b, bridge_create, bridge_destroy, bridge_join, bridge_kick};
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
    double k = 2.0 * cos(2.0 * M_PI * hz / 8000.0), s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        double s0 = x[i] + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double power = s1 * s1 + s2 * s2 - k * s1 * s2;
    return n ? 2.0 * sqrt(power > 0 ? power : 0) / (double)n : 0.0;
}
