/* /auth/login, /v1.0/customer(s), /v1.0/agents and /v1.0/accesskeys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "core/jsonutil.h"
#include "core/mem.h"
#include "core/timeutil.h"

/* ---- login ---- */

static void login_done(void *arg, int rc, const char *username, const char *token,
                       const struct error *e)
{
    struct api_pending *p = arg;
    if (rc < 0) {
        api_pending_reply(p, NULL, e);
        return;
    }
    api_pending_reply(p, json_pack("{s:s,s:s}", "username", username, "token", token), NULL);
}

int api_login(struct api_call *c)
{
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    const char *username = NULL, *password = NULL;
    struct error e;
    int rc;
    if ((rc = jfield_string(body, "username", USERNAME_MAX_LEN, &username, &e)) < 0 ||
        (rc = jfield_string(body, "password", PASSWORD_MAX_LEN, &password, &e)) < 0) {
        json_decref(body);
        return api_reply_error(c, &e);
    }
    if (!username || !password) {
        json_decref(body);
        return api_fail(c, ERR_INVALID_ARGUMENT, "MISSING_FIELD",
                        "Fields 'username' and 'password' are required.");
    }
    struct api_pending *p = api_pending_new(c);
    int retry_after_s = 0;
    rc = identity_login(c->api->d.identity, username, password, c->req->client_ip, login_done, p,
                        &e, &retry_after_s);
    json_decref(body);
    if (rc < 0) {
        free(p);
        api_reply_error(c, &e);
        if (retry_after_s > 0) {
            char v[16];
            snprintf(v, sizeof(v), "%d", retry_after_s);
            api_response_header(c->resp, "Retry-After", v);
        }
        return 0;
    }
    return 1;
}

/* ---- customer (own) ---- */

int api_customer_get(struct api_call *c)
{
    struct customer cu;
    struct error e;
    if (identity_customer_get(c->api->d.identity, c->who.customer_id, &cu, &e) < 0)
        return api_reply_error(c, &e);
    json_t *v = customer_to_json(&cu);
    customer_fini(&cu);
    return api_reply(c, v);
}

int api_customer_put(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct customer_update_req req = {0};
    struct error e;
    int rc;
    if ((rc = jfield_string(body, "name", NAME_MAX_LEN, &req.name, &e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &req.detail, &e)) < 0 ||
        (rc = jfield_string(body, "webhook_method", 16, &req.webhook_method, &e)) < 0 ||
        (rc = jfield_string(body, "webhook_uri", URI_MAX_LEN, &req.webhook_uri, &e)) < 0) {
        json_decref(body);
        return api_reply_error(c, &e);
    }
    struct customer cu;
    rc = identity_customer_update(c->api->d.identity, c->who.customer_id, &req, &cu, &e);
    json_decref(body);
    if (rc < 0)
        return api_reply_error(c, &e);
    json_t *v = customer_to_json(&cu);
    customer_fini(&cu);
    return api_reply(c, v);
}

/* ---- customers (operator) ---- */

int api_customers_list(struct api_call *c)
{
    if (api_require(c, PERM_PROJECT_SUPER_ADMIN) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct customer *list = NULL;
    size_t n = 0;
    if (store_customer_list(c->api->d.store, &page, &list, &n) != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The customers could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, customer_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_customers(list, n);
    return api_reply(c, v);
}

static void customer_created(void *arg, int rc, const struct customer *cu, const struct error *e)
{
    api_pending_reply(arg, rc < 0 ? NULL : customer_to_json(cu), rc < 0 ? e : NULL);
}

int api_customers_create(struct api_call *c)
{
    if (api_require(c, PERM_PROJECT_SUPER_ADMIN) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct customer_create_req req = {0};
    struct error e;
    int rc;
    if ((rc = jfield_string(body, "name", NAME_MAX_LEN, &req.name, &e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &req.detail, &e)) < 0 ||
        (rc = jfield_string(body, "username", USERNAME_MAX_LEN, &req.username, &e)) < 0 ||
        (rc = jfield_string(body, "password", PASSWORD_MAX_LEN, &req.password, &e)) < 0) {
        json_decref(body);
        return api_reply_error(c, &e);
    }
    struct api_pending *p = api_pending_new(c);
    rc = identity_customer_create(c->api->d.identity, &req, customer_created, p, &e);
    json_decref(body);
    if (rc < 0) {
        free(p);
        return api_reply_error(c, &e);
    }
    return 1;
}

int api_customers_get(struct api_call *c)
{
    if (api_require(c, PERM_PROJECT_SUPER_ADMIN) < 0)
        return 0;
    struct customer cu;
    struct error e;
    if (identity_customer_get(c->api->d.identity, c->id, &cu, &e) < 0)
        return api_reply_error(c, &e);
    json_t *v = customer_to_json(&cu);
    customer_fini(&cu);
    return api_reply(c, v);
}

/* ---- agents ---- */

int api_agents_list(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct agent *list = NULL;
    size_t n = 0;
    if (store_agent_list(c->api->d.store, c->who.customer_id, &page, &list, &n) != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The agents could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, agent_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_agents(list, n);
    return api_reply(c, v);
}

static int read_agent(json_t *body, struct agent_req *req, struct error *e)
{
    int rc;
    memset(req, 0, sizeof(*req));
    if ((rc = jfield_string(body, "username", USERNAME_MAX_LEN, &req->username, e)) < 0 ||
        (rc = jfield_string(body, "password", PASSWORD_MAX_LEN, &req->password, e)) < 0 ||
        (rc = jfield_string(body, "name", NAME_MAX_LEN, &req->name, e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &req->detail, e)) < 0 ||
        (rc = jfield_string(body, "ring_method", 16, &req->ring_method, e)) < 0)
        return rc;
    if ((rc = jfield_int(body, "permission", 0, 0xffff, &req->permission, e)) < 0)
        return rc;
    req->has_permission = rc == 1;
    return 0;
}

static void agent_saved(void *arg, int rc, const struct agent *a, const struct error *e)
{
    api_pending_reply(arg, rc < 0 ? NULL : agent_to_json(a), rc < 0 ? e : NULL);
}

static int agent_write(struct api_call *c, int create)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct agent_req req;
    struct error e;
    int rc = read_agent(body, &req, &e);
    if (rc < 0) {
        json_decref(body);
        return api_reply_error(c, &e);
    }
    struct api_pending *p = api_pending_new(c);
    if (create) {
        p->status = 201; /* "Agent created", as VoIPBIN answers */
        rc =
            identity_agent_create(c->api->d.identity, c->who.customer_id, &req, agent_saved, p, &e);
    } else {
        rc = identity_agent_update(c->api->d.identity, c->who.customer_id, c->id, &req, agent_saved,
                                   p, &e);
    }
    json_decref(body);
    if (rc < 0) {
        free(p);
        return api_reply_error(c, &e);
    }
    return 1;
}

int api_agents_create(struct api_call *c)
{
    return agent_write(c, 1);
}

int api_agents_put(struct api_call *c)
{
    return agent_write(c, 0);
}

int api_agents_get(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    struct agent a;
    struct error e;
    if (identity_agent_get(c->api->d.identity, c->who.customer_id, c->id, &a, &e) < 0)
        return api_reply_error(c, &e);
    json_t *v = agent_to_json(&a);
    agent_fini(&a);
    return api_reply(c, v);
}

int api_agents_delete(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    struct agent a;
    struct error e;
    if (identity_agent_delete(c->api->d.identity, &c->who, c->id, &a, &e) < 0)
        return api_reply_error(c, &e);
    json_t *v = agent_to_json(&a);
    agent_fini(&a);
    return api_reply(c, v);
}

/* ---- access keys ---- */

int api_accesskeys_list(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct accesskey *list = NULL;
    size_t n = 0;
    if (store_accesskey_list(c->api->d.store, c->who.customer_id, &page, &list, &n) != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The access keys could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, accesskey_to_json(&list[i], NULL));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_accesskeys(list, n);
    return api_reply(c, v);
}

static int reply_key(struct api_call *c, int rc, struct accesskey *k, const char *token,
                     const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    json_t *v = accesskey_to_json(k, token);
    accesskey_fini(k);
    return api_reply(c, v);
}

int api_accesskeys_create(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    const char *name = NULL, *detail = NULL;
    int64_t expire = 0;
    struct error e;
    int rc;
    if ((rc = jfield_string(body, "name", NAME_MAX_LEN, &name, &e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &detail, &e)) < 0 ||
        (rc = jfield_int(body, "expire", INT64_MIN, INT64_MAX, &expire, &e)) < 0) {
        json_decref(body);
        return api_reply_error(c, &e);
    }
    struct accesskey k;
    char *token = NULL;
    rc = identity_accesskey_create(c->api->d.identity, c->who.customer_id, name, detail, expire, &k,
                                   &token, &e);
    json_decref(body);
    reply_key(c, rc, &k, token, &e);
    free(token);
    return 0;
}

int api_accesskeys_get(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    struct accesskey k;
    struct error e;
    int rc = identity_accesskey_get(c->api->d.identity, c->who.customer_id, c->id, &k, &e);
    return reply_key(c, rc, &k, NULL, &e);
}

int api_accesskeys_put(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    const char *name = NULL, *detail = NULL;
    struct error e;
    int rc;
    if ((rc = jfield_string(body, "name", NAME_MAX_LEN, &name, &e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &detail, &e)) < 0) {
        json_decref(body);
        return api_reply_error(c, &e);
    }
    struct accesskey k;
    rc = identity_accesskey_update(c->api->d.identity, c->who.customer_id, c->id, name, detail, &k,
                                   &e);
    json_decref(body);
    return reply_key(c, rc, &k, NULL, &e);
}

int api_accesskeys_delete(struct api_call *c)
{
    if (api_require(c, PERM_CUSTOMER_ADMIN) < 0)
        return 0;
    struct accesskey k;
    struct error e;
    int rc = identity_accesskey_delete(c->api->d.identity, c->who.customer_id, c->id, &k, &e);
    return reply_key(c, rc, &k, NULL, &e);
}
