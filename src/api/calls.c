/* /v1.0/calls: the call records of SIP legs. */
#include <stdlib.h>

#include "api/internal.h"
#include "call/call.h"
#include "core/jsonutil.h"

#define CALL_PERMS (PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_MANAGER)

static int reply_call(struct api_call *c, int rc, struct call *call, const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    json_t *v = call_to_json(call);
    call_fini(call);
    return api_reply(c, v);
}

/* Calls need the media plane; a server (or test) built without it answers 503. */
static int unavailable(struct api_call *c)
{
    if (c->api->d.calls)
        return 0;
    api_fail(c, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE", "Calls are not available on this server.");
    return -1;
}

int api_calls_list(struct api_call *c)
{
    if (api_require(c, CALL_PERMS) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct call *list = NULL;
    size_t n = 0;
    if (store_call_list(c->api->d.store, c->who.customer_id, &page, &list, &n) != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The calls could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, call_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_calls(list, n);
    return api_reply(c, v);
}

int api_calls_get(struct api_call *c)
{
    if (api_require(c, CALL_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    struct call call;
    struct error e;
    int rc = call_get(c->api->d.calls, c->who.customer_id, c->id, &call, &e);
    return reply_call(c, rc, &call, &e);
}

int api_calls_hangup(struct api_call *c)
{
    if (api_require(c, CALL_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    struct call call;
    struct error e;
    int rc = call_hangup(c->api->d.calls, c->who.customer_id, c->id, &call, &e);
    return reply_call(c, rc, &call, &e);
}

int api_calls_delete(struct api_call *c)
{
    if (api_require(c, CALL_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    struct call call;
    struct error e;
    int rc = call_delete(c->api->d.calls, c->who.customer_id, c->id, &call, &e);
    return reply_call(c, rc, &call, &e);
}

int api_calls_create(struct api_call *c)
{
    if (api_require(c, CALL_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct error e;
    id_t_ flow_id;
    int rc = jfield_uuid(body, "flow_id", flow_id, &e);
    if (rc >= 0) {
        struct call_dial_req req = {
            .source = json_object_get(body, "source"),
            .destinations = json_object_get(body, "destinations"),
            .flow_id = rc == 1 && !id_is_nil(flow_id) ? flow_id : NULL,
            .actions = json_object_get(body, "actions"),
            .variables = json_object_get(body, "variables"),
        };
        if (json_is_null(req.actions))
            req.actions = NULL;
        json_t *calls = NULL;
        rc = call_dial(c->api->d.calls, c->who.customer_id, &req, &calls, &e);
        if (rc == 0)
            api_reply(c, json_pack("{s:o,s:[]}", "calls", calls, "groupcalls"));
    }
    if (rc < 0)
        api_reply_error(c, &e);
    json_decref(body);
    return 0;
}
