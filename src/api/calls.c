/* /v1.0/calls: the call records of SIP legs. */
#include <stdlib.h>

#include "api/internal.h"
#include "call/call.h"

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
