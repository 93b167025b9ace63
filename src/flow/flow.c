#include "flow/flow.h"

#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "flow/action.h"

struct flow_mgr {
    struct store *store;
    struct event_bus *bus;
};

struct flow_mgr *flow_mgr_create(struct store *store, struct event_bus *bus)
{
    struct flow_mgr *m = xcalloc(1, sizeof(*m));
    m->store = store;
    m->bus = bus;
    return m;
}

void flow_mgr_destroy(struct flow_mgr *m)
{
    free(m);
}

static int flow_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "FLOW_NOT_FOUND",
                     "No flow with id %s exists for this customer.", id);
}

static int number_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "NUMBER_NOT_FOUND",
                     "No number with id %s exists for this customer.", id);
}

/* ---- flows ---- */

static void publish_flow(struct flow_mgr *m, const char *type, const struct flow *f)
{
    events_publish(m->bus, type, f->customer_id, f->id, flow_to_json(f));
}

static int load_flow(struct flow_mgr *m, const char *customer_id, const char *id, struct flow *out,
                     struct error *e)
{
    int rc = store_flow_get(m->store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return flow_not_found(id, e);
    if (rc != 0)
        return error_store_failed(e, "read the flow", rc);
    if (out->tm_delete != TM_NEVER) {
        flow_fini(out);
        return flow_not_found(id, e);
    }
    return 0;
}

bool flow_exists(struct flow_mgr *m, const char *customer_id, const char *id)
{
    struct flow f;
    if (load_flow(m, customer_id, id, &f, NULL) < 0)
        return false;
    flow_fini(&f);
    return true;
}

json_t *flow_actions(struct flow_mgr *m, const char *customer_id, const char *id)
{
    struct flow f;
    if (load_flow(m, customer_id, id, &f, NULL) < 0)
        return NULL;
    json_t *a = json_loads(f.actions, 0, NULL);
    flow_fini(&f);
    if (a && !json_is_array(a)) {
        json_decref(a);
        a = NULL;
    }
    return a;
}

/* Checks a reference to another flow of the customer (nil = none). */
static int check_flow_ref(struct flow_mgr *m, const char *customer_id, const char *field,
                          const char *id, struct error *e)
{
    if (!id || id_is_nil(id) || flow_exists(m, customer_id, id))
        return 0;
    return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                     "\"%s\": no flow with id %s exists for this customer.", field, id);
}

static int apply_flow_req(struct flow_mgr *m, struct flow *f, const struct flow_req *req,
                          struct error *e)
{
    int rc;
    if ((rc = check_flow_ref(m, f->customer_id, "on_complete_flow_id", req->on_complete_flow_id,
                             e)) < 0)
        return rc;
    if (req->actions) {
        json_t *canon;
        if ((rc = action_list_validate(req->actions, &canon, e)) < 0)
            return rc;
        free(f->actions);
        f->actions = json_dump_compact(canon);
        json_decref(canon);
    }
    if (req->name) {
        free(f->name);
        f->name = xstrdup(req->name);
    }
    if (req->detail) {
        free(f->detail);
        f->detail = xstrdup(req->detail);
    }
    if (req->on_complete_flow_id)
        memcpy(f->on_complete_flow_id, req->on_complete_flow_id, ID_LEN + 1);
    return 0;
}

int flow_create(struct flow_mgr *m, const char *customer_id, const struct flow_req *req,
                struct flow *out, struct error *e)
{
    struct flow f;
    memset(&f, 0, sizeof(f));
    id_new(f.id);
    memcpy(f.customer_id, customer_id, ID_LEN + 1);
    str_copy(f.type, sizeof(f.type), "flow");
    memcpy(f.on_complete_flow_id, ID_NIL, ID_LEN + 1);
    f.actions = xstrdup("[]");
    int rc = apply_flow_req(m, &f, req, e);
    if (rc < 0) {
        flow_fini(&f);
        return rc;
    }
    f.tm_create = f.tm_update = tm_unique_us();
    f.tm_delete = TM_NEVER;
    if ((rc = store_flow_insert(m->store, &f)) != 0) {
        flow_fini(&f);
        return error_store_failed(e, "create the flow", rc);
    }
    log_info("msg=\"flow created\" flow_id=%s customer_id=%s", f.id, customer_id);
    publish_flow(m, "flow_created", &f);
    *out = f;
    return 0;
}

int flow_get(struct flow_mgr *m, const char *customer_id, const char *id, struct flow *out,
             struct error *e)
{
    return load_flow(m, customer_id, id, out, e);
}

int flow_update(struct flow_mgr *m, const char *customer_id, const char *id,
                const struct flow_req *req, struct flow *out, struct error *e)
{
    int rc = load_flow(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    if ((rc = apply_flow_req(m, out, req, e)) < 0)
        goto fail;
    out->tm_update = tm_now_us();
    if ((rc = store_flow_update(m->store, out)) != 0) {
        rc = error_store_failed(e, "update the flow", rc);
        goto fail;
    }
    publish_flow(m, "flow_updated", out);
    return 0;
fail:
    flow_fini(out);
    return rc;
}

int flow_delete(struct flow_mgr *m, const char *customer_id, const char *id, struct flow *out,
                struct error *e)
{
    int rc = load_flow(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    out->tm_delete = out->tm_update = tm_now_us();
    if ((rc = store_flow_update(m->store, out)) != 0) {
        flow_fini(out);
        return error_store_failed(e, "delete the flow", rc);
    }
    log_info("msg=\"flow deleted\" flow_id=%s", id);
    publish_flow(m, "flow_deleted", out);
    return 0;
}

/* ---- numbers ---- */

static void publish_number(struct flow_mgr *m, const char *type, const struct number *n)
{
    events_publish(m->bus, type, n->customer_id, n->id, number_to_json(n));
}

static int load_number(struct flow_mgr *m, const char *customer_id, const char *id,
                       struct number *out, struct error *e)
{
    int rc = store_number_get(m->store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return number_not_found(id, e);
    if (rc != 0)
        return error_store_failed(e, "read the number", rc);
    if (out->tm_delete != TM_NEVER) {
        number_fini(out);
        return number_not_found(id, e);
    }
    return 0;
}

/* "+" and 1-20 digits (E.164 is at most 15; virtual and internal numbers may be longer). */
static bool number_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 21 || s[0] != '+')
        return false;
    return strspn(s + 1, "0123456789") == n - 1;
}

static int apply_number_req(struct flow_mgr *m, struct number *n, const struct number_req *req,
                            struct error *e)
{
    int rc;
    if ((rc = check_flow_ref(m, n->customer_id, "call_flow_id", req->call_flow_id, e)) < 0 ||
        (rc = check_flow_ref(m, n->customer_id, "message_flow_id", req->message_flow_id, e)) < 0)
        return rc;
    if (req->call_flow_id)
        memcpy(n->call_flow_id, req->call_flow_id, ID_LEN + 1);
    if (req->message_flow_id)
        memcpy(n->message_flow_id, req->message_flow_id, ID_LEN + 1);
    if (req->name) {
        free(n->name);
        n->name = xstrdup(req->name);
    }
    if (req->detail) {
        free(n->detail);
        n->detail = xstrdup(req->detail);
    }
    return 0;
}

int number_create(struct flow_mgr *m, const char *customer_id, const struct number_req *req,
                  struct number *out, struct error *e)
{
    if (!req->number)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_NUMBER",
                         "\"number\" is required, e.g. \"+15551234567\".");
    if (!number_valid(req->number))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_NUMBER",
                         "\"number\" must be \"+\" followed by 1 to 20 digits, e.g. "
                         "\"+15551234567\".");
    struct number n;
    memset(&n, 0, sizeof(n));
    id_new(n.id);
    memcpy(n.customer_id, customer_id, ID_LEN + 1);
    str_copy(n.number, sizeof(n.number), req->number);
    str_copy(n.type, sizeof(n.type), "normal");
    str_copy(n.status, sizeof(n.status), "active");
    memcpy(n.call_flow_id, ID_NIL, ID_LEN + 1);
    memcpy(n.message_flow_id, ID_NIL, ID_LEN + 1);
    int rc = apply_number_req(m, &n, req, e);
    if (rc < 0) {
        number_fini(&n);
        return rc;
    }
    n.tm_create = n.tm_update = n.tm_purchase = tm_unique_us();
    n.tm_delete = TM_NEVER;
    rc = store_number_insert(m->store, &n);
    if (rc == STORE_CONFLICT) {
        number_fini(&n);
        return error_set(e, ERR_ALREADY_EXISTS, "NUMBER_EXISTS", "The number %s is already in use.",
                         req->number);
    }
    if (rc != 0) {
        number_fini(&n);
        return error_store_failed(e, "create the number", rc);
    }
    log_info("msg=\"number created\" number_id=%s number=%s", n.id, n.number);
    publish_number(m, "number_created", &n);
    *out = n;
    return 0;
}

int number_get(struct flow_mgr *m, const char *customer_id, const char *id, struct number *out,
               struct error *e)
{
    return load_number(m, customer_id, id, out, e);
}

int number_update(struct flow_mgr *m, const char *customer_id, const char *id,
                  const struct number_req *req, struct number *out, struct error *e)
{
    int rc = load_number(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    if (req->number && strcmp(req->number, out->number) != 0) {
        number_fini(out);
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_NUMBER",
                         "\"number\" cannot change; create a new number instead.");
    }
    if ((rc = apply_number_req(m, out, req, e)) < 0) {
        number_fini(out);
        return rc;
    }
    out->tm_update = tm_now_us();
    if ((rc = store_number_update(m->store, out)) != 0) {
        number_fini(out);
        return error_store_failed(e, "update the number", rc);
    }
    publish_number(m, "number_updated", out);
    return 0;
}

int number_delete(struct flow_mgr *m, const char *customer_id, const char *id, struct number *out,
                  struct error *e)
{
    int rc = load_number(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    out->tm_delete = out->tm_update = tm_now_us();
    str_copy(out->status, sizeof(out->status), "deleted");
    if ((rc = store_number_update(m->store, out)) != 0) {
        number_fini(out);
        return error_store_failed(e, "delete the number", rc);
    }
    log_info("msg=\"number deleted\" number_id=%s number=%s", id, out->number);
    publish_number(m, "number_deleted", out);
    return 0;
}

int number_route(struct flow_mgr *m, const char *user, struct number *out, struct error *e)
{
    char with_plus[NUMBER_MAX_LEN + 2];
    if (strlen(user) > NUMBER_MAX_LEN)
        return error_set(e, ERR_NOT_FOUND, "NUMBER_NOT_FOUND", "No such number.");
    int rc = store_number_get_by_number(m->store, user, out);
    if (rc == STORE_NOT_FOUND && user[0] != '+') {
        with_plus[0] = '+';
        str_copy(with_plus + 1, sizeof(with_plus) - 1, user);
        rc = store_number_get_by_number(m->store, with_plus, out);
    }
    if (rc == STORE_NOT_FOUND)
        return error_set(e, ERR_NOT_FOUND, "NUMBER_NOT_FOUND", "No such number.");
    if (rc != 0)
        return error_store_failed(e, "read the number", rc);
    return 0;
}
