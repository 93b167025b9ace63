/* /v1.0/flows, /v1.0/numbers and /v1.0/activeflows. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/jsonutil.h"
#include "flow/activeflow.h"
#include "flow/flow.h"

#define FLOW_PERMS (PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_MANAGER)

static int unavailable(struct api_call *c, const void *dep)
{
    if (dep)
        return 0;
    api_fail(c, ERR_UNAVAILABLE, "FLOWS_UNAVAILABLE", "Flows are not available on this server.");
    return -1;
}

static int begin(struct api_call *c, const void *dep)
{
    if (api_require(c, FLOW_PERMS) < 0 || unavailable(c, dep) < 0)
        return -1;
    return 0;
}

/* ---- flows ---- */

static int reply_flow(struct api_call *c, int rc, struct flow *f, const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    json_t *v = flow_to_json(f);
    flow_fini(f);
    return api_reply(c, v);
}

static int read_flow_req(json_t *body, struct flow_req *r, id_t_ on_complete, struct error *e)
{
    memset(r, 0, sizeof(*r));
    int rc;
    if ((rc = jfield_string(body, "name", NAME_MAX_LEN, &r->name, e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &r->detail, e)) < 0)
        return rc;
    if ((rc = jfield_uuid(body, "on_complete_flow_id", on_complete, e)) < 0)
        return rc;
    if (rc == 1)
        r->on_complete_flow_id = on_complete;
    json_t *actions = json_object_get(body, "actions");
    if (actions && !json_is_null(actions))
        r->actions = actions;
    return 0;
}

static int flow_write(struct api_call *c, bool create)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct flow_req req;
    id_t_ on_complete;
    struct error e;
    struct flow f;
    int rc = read_flow_req(body, &req, on_complete, &e);
    if (rc == 0 && create)
        rc = flow_create(c->api->d.flows, c->who.customer_id, &req, &f, &e);
    else if (rc == 0)
        rc = flow_update(c->api->d.flows, c->who.customer_id, c->id, &req, &f, &e);
    reply_flow(c, rc, &f, &e);
    json_decref(body);
    return 0;
}

int api_flows_create(struct api_call *c)
{
    return flow_write(c, true);
}

int api_flows_put(struct api_call *c)
{
    return flow_write(c, false);
}

int api_flows_list(struct api_call *c)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct flow *list = NULL;
    size_t n = 0;
    if (store_flow_list(c->api->d.store, c->who.customer_id, &page, &list, &n) != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The flows could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, flow_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_flows(list, n);
    return api_reply(c, v);
}

int api_flows_get(struct api_call *c)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    struct flow f;
    struct error e;
    int rc = flow_get(c->api->d.flows, c->who.customer_id, c->id, &f, &e);
    return reply_flow(c, rc, &f, &e);
}

int api_flows_delete(struct api_call *c)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    struct flow f;
    struct error e;
    int rc = flow_delete(c->api->d.flows, c->who.customer_id, c->id, &f, &e);
    return reply_flow(c, rc, &f, &e);
}

/* ---- numbers ---- */

static int reply_number(struct api_call *c, int rc, struct number *n, const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    json_t *v = number_to_json(n);
    number_fini(n);
    return api_reply(c, v);
}

static int read_number_req(json_t *body, struct number_req *r, id_t_ call_flow, id_t_ message_flow,
                           struct error *e)
{
    memset(r, 0, sizeof(*r));
    int rc;
    if ((rc = jfield_string(body, "number", NUMBER_MAX_LEN, &r->number, e)) < 0 ||
        (rc = jfield_string(body, "name", NAME_MAX_LEN, &r->name, e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &r->detail, e)) < 0)
        return rc;
    if ((rc = jfield_uuid(body, "call_flow_id", call_flow, e)) < 0)
        return rc;
    if (rc == 1)
        r->call_flow_id = call_flow;
    if ((rc = jfield_uuid(body, "message_flow_id", message_flow, e)) < 0)
        return rc;
    if (rc == 1)
        r->message_flow_id = message_flow;
    return 0;
}

static int number_write(struct api_call *c, bool create)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct number_req req;
    id_t_ call_flow, message_flow;
    struct error e;
    struct number n;
    int rc = read_number_req(body, &req, call_flow, message_flow, &e);
    if (rc == 0 && create)
        rc = number_create(c->api->d.flows, c->who.customer_id, &req, &n, &e);
    else if (rc == 0)
        rc = number_update(c->api->d.flows, c->who.customer_id, c->id, &req, &n, &e);
    reply_number(c, rc, &n, &e);
    json_decref(body);
    return 0;
}

int api_numbers_create(struct api_call *c)
{
    return number_write(c, true);
}

int api_numbers_put(struct api_call *c)
{
    return number_write(c, false);
}

int api_numbers_list(struct api_call *c)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct number *list = NULL;
    size_t n = 0;
    if (store_number_list(c->api->d.store, c->who.customer_id, &page, &list, &n) != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The numbers could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, number_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_numbers(list, n);
    return api_reply(c, v);
}

int api_numbers_get(struct api_call *c)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    struct number n;
    struct error e;
    int rc = number_get(c->api->d.flows, c->who.customer_id, c->id, &n, &e);
    return reply_number(c, rc, &n, &e);
}

int api_numbers_delete(struct api_call *c)
{
    if (begin(c, c->api->d.flows) < 0)
        return 0;
    struct number n;
    struct error e;
    int rc = number_delete(c->api->d.flows, c->who.customer_id, c->id, &n, &e);
    return reply_number(c, rc, &n, &e);
}

/* ---- activeflows ---- */

static int reply_af(struct api_call *c, int rc, struct activeflow *a, const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    json_t *v = activeflow_to_json(a);
    activeflow_fini(a);
    return api_reply(c, v);
}

int api_activeflows_list(struct api_call *c)
{
    if (begin(c, c->api->d.activeflows) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct activeflow *list = NULL;
    size_t n = 0;
    if (store_activeflow_list(c->api->d.store, c->who.customer_id, &page, &list, &n) != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The activeflows could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, activeflow_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_activeflows(list, n);
    return api_reply(c, v);
}

int api_activeflows_get(struct api_call *c)
{
    if (begin(c, c->api->d.activeflows) < 0)
        return 0;
    struct activeflow a;
    struct error e;
    int rc = af_get(c->api->d.activeflows, c->who.customer_id, c->id, &a, &e);
    return reply_af(c, rc, &a, &e);
}

int api_activeflows_stop(struct api_call *c)
{
    if (begin(c, c->api->d.activeflows) < 0)
        return 0;
    struct activeflow a;
    struct error e;
    int rc = af_stop(c->api->d.activeflows, c->who.customer_id, c->id, &a, &e);
    return reply_af(c, rc, &a, &e);
}

int api_activeflows_delete(struct api_call *c)
{
    if (begin(c, c->api->d.activeflows) < 0)
        return 0;
    struct activeflow a;
    struct error e;
    int rc = af_delete(c->api->d.activeflows, c->who.customer_id, c->id, &a, &e);
    if (rc < 0)
        return reply_af(c, rc, &a, &e);
    activeflow_fini(&a);
    return api_reply_no_content(c); /* 204, as VoIPBIN answers */
}
