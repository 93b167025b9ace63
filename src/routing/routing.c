#include "routing/routing.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "flow/action.h"

struct routing {
    struct routing_lookups l;
};

struct routing *routing_create(const struct routing_lookups *lookups)
{
    struct routing *r = xcalloc(1, sizeof(*r));
    r->l = *lookups;
    return r;
}

void routing_destroy(struct routing *r)
{
    free(r);
}

/* The built-in flow of a direct-hash call: answer, then join the conference. */
static json_t *direct_flow(const char *conference_id)
{
    json_t *in = json_pack("[{s:s},{s:s,s:{s:s}}]", "type", "answer", "type", "conference_join",
                           "option", "conference_id", conference_id);
    json_t *out = NULL;
    struct error e;
    if (action_list_validate(in, &out, &e) < 0)
        out = json_array();
    json_decref(in);
    return out;
}

static int route_direct(struct routing *r, const char *user, struct route *out)
{
    /* The seeds write the URI "sip:direct.<hash>@host"; applied to our direct_hash (which is
     * "direct.<12hex>" already) that gives direct.direct.<12hex>: both forms reach it. */
    const char *hash = !strncmp(user, "direct.direct.", 14) ? user + 7 : user;
    struct conference conf;
    if (!r->l.conference_by_hash || r->l.conference_by_hash(r->l.ctx, hash, &conf) < 0)
        return out->refuse = 404;
    if (conf.status != CONFERENCE_PROGRESSING)
        out->refuse = 403;
    else if (conf.type == CONFERENCE_TYPE_CONNECT && conf.n_call_ids >= 2)
        out->refuse = 486;
    if (!out->refuse) {
        memcpy(out->customer_id, conf.customer_id, ID_LEN + 1);
        memcpy(out->flow_id, ID_NIL, ID_LEN + 1);
        out->actions = direct_flow(conf.id);
        out->type = "conference";
    }
    conference_fini(&conf);
    return out->refuse;
}

int routing_route(struct routing *r, const char *user, struct route *out)
{
    memset(out, 0, sizeof(*out));
    out->type = "flow";
    if (!strncmp(user, "direct.", 7))
        return route_direct(r, user, out);
    struct number num;
    if (!r->l.number || r->l.number(r->l.ctx, user, &num) < 0)
        return out->refuse = 404;
    /* A flow that does not exist (deleted) is found out when the call's flow is created: also a
     * 404 then. */
    out->refuse = id_is_nil(num.call_flow_id) ? 404 : 0;
    memcpy(out->customer_id, num.customer_id, ID_LEN + 1);
    memcpy(out->flow_id, num.call_flow_id, ID_LEN + 1);
    number_fini(&num);
    return out->refuse;
}
