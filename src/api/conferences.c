/* /v1.0/conferences and /v1.0/conferencecalls. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/jsonutil.h"
#include "core/mem.h"

#define CONFERENCE_PERMS (PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_MANAGER)

static int reply_conference(struct api_call *c, int rc, struct conference *conf,
                            const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    json_t *v = conference_to_json(conf);
    conference_fini(conf);
    return api_reply(c, v);
}

/* Reads the fields shared by create and update; strings borrow from body, data is serialised
 * into *data_text (caller frees). */
struct conference_fields {
    const char *type, *name, *detail;
    char *data_text;
    bool has_timeout;
    int64_t timeout;
    id_t_ pre, post;
    bool has_pre, has_post;
};

static int read_fields(json_t *body, struct conference_fields *f, struct error *e)
{
    memset(f, 0, sizeof(*f));
    int rc;
    json_t *data = NULL;
    if ((rc = jfield_string(body, "type", 32, &f->type, e)) < 0 ||
        (rc = jfield_string(body, "name", NAME_MAX_LEN, &f->name, e)) < 0 ||
        (rc = jfield_string(body, "detail", DETAIL_MAX_LEN, &f->detail, e)) < 0 ||
        (rc = jfield_object(body, "data", DATA_MAX_BYTES, &data, e)) < 0)
        return rc;
    if ((rc = jfield_int(body, "timeout", INT64_MIN, INT64_MAX, &f->timeout, e)) < 0)
        return rc;
    f->has_timeout = rc == 1;
    if ((rc = jfield_uuid(body, "pre_flow_id", f->pre, e)) < 0)
        return rc;
    f->has_pre = rc == 1;
    if ((rc = jfield_uuid(body, "post_flow_id", f->post, e)) < 0)
        return rc;
    f->has_post = rc == 1;
    if (data)
        f->data_text = json_dump_compact(data);
    return 0;
}

int api_conferences_create(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct conference_fields f;
    struct error e;
    int rc = read_fields(body, &f, &e);
    if (rc == 0) {
        struct conference_create_req req = {
            .type = f.type,
            .name = f.name,
            .detail = f.detail,
            .data = f.data_text,
            .has_timeout = f.has_timeout,
            .timeout = f.timeout,
            .pre_flow_id = f.has_pre ? f.pre : NULL,
            .post_flow_id = f.has_post ? f.post : NULL,
        };
        struct conference conf;
        rc = conference_create(c->api->d.conferences, c->who.customer_id, &req, &conf, &e);
        reply_conference(c, rc, &conf, &e);
    } else {
        api_reply_error(c, &e);
    }
    free(f.data_text);
    json_decref(body);
    return 0;
}

int api_conferences_list(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    struct conference *list = NULL;
    size_t n = 0;
    int rc = store_conference_list(c->api->d.store, c->who.customer_id, &page, &list, &n);
    if (rc != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The conferences could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, conference_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_conferences(list, n);
    return api_reply(c, v);
}

int api_conferences_get(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    struct conference conf;
    struct error e;
    int rc = conference_get(c->api->d.conferences, c->who.customer_id, c->id, &conf, &e);
    return reply_conference(c, rc, &conf, &e);
}

int api_conferences_put(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct conference_fields f;
    struct error e;
    int rc = read_fields(body, &f, &e);
    if (rc == 0 && f.type) {
        /* The type is fixed at creation: sending the same one back (a whole object PUT) is
         * fine, another one is refused rather than silently ignored. */
        struct conference cur;
        rc = conference_get(c->api->d.conferences, c->who.customer_id, c->id, &cur, &e);
        if (rc == 0) {
            if (strcmp(f.type, conference_type_name(cur.type)) != 0)
                rc = error_set(&e, ERR_INVALID_ARGUMENT, "IMMUTABLE_FIELD",
                               "Field 'type' cannot be changed after creation (this conference "
                               "is \"%s\"); create a new conference instead.",
                               conference_type_name(cur.type));
            conference_fini(&cur);
        }
    }
    if (rc == 0) {
        struct conference_update_req req = {
            .name = f.name,
            .detail = f.detail,
            .data = f.data_text,
            .has_timeout = f.has_timeout,
            .timeout = f.timeout,
            .pre_flow_id = f.has_pre ? f.pre : NULL,
            .post_flow_id = f.has_post ? f.post : NULL,
        };
        struct conference conf;
        rc = conference_update(c->api->d.conferences, c->who.customer_id, c->id, &req, &conf, &e);
        reply_conference(c, rc, &conf, &e);
    } else {
        api_reply_error(c, &e);
    }
    free(f.data_text);
    json_decref(body);
    return 0;
}

int api_conferences_delete(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    struct conference conf;
    struct error e;
    int rc = conference_delete(c->api->d.conferences, c->who.customer_id, c->id, &conf, &e);
    return reply_conference(c, rc, &conf, &e);
}

int api_conferences_regenerate(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    struct conference conf;
    struct error e;
    int rc =
        conference_regenerate_hash(c->api->d.conferences, c->who.customer_id, c->id, &conf, &e);
    return reply_conference(c, rc, &conf, &e);
}

int api_conferencecalls_list(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    const char *raw = c->req->query ? c->req->query(c->req->ctx, "conference_id") : NULL;
    id_t_ conf_id;
    if (raw && raw[0] && id_normalize(raw, conf_id) < 0)
        return api_fail(c, ERR_INVALID_ARGUMENT, "INVALID_ID",
                        "Query parameter 'conference_id' must be a UUID.");
    struct conferencecall *list = NULL;
    size_t n = 0;
    int rc = store_conferencecall_list(c->api->d.store, c->who.customer_id,
                                       raw && raw[0] ? conf_id : NULL, &page, &list, &n);
    if (rc != 0)
        return api_fail(c, ERR_INTERNAL, "INTERNAL", "The conferencecalls could not be read.");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, conferencecall_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    free(list);
    return api_reply(c, v);
}

int api_conferencecalls_get(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    struct conferencecall cc;
    struct error e;
    if (conferencecall_get(c->api->d.conferences, c->who.customer_id, c->id, &cc, &e) < 0)
        return api_reply_error(c, &e);
    return api_reply(c, conferencecall_to_json(&cc));
}

int api_conferencecalls_delete(struct api_call *c)
{
    if (api_require(c, CONFERENCE_PERMS) < 0)
        return 0;
    struct conferencecall cc;
    struct error e;
    if (conference_kick(c->api->d.conferences, c->who.customer_id, c->id, &cc, &e) < 0)
        return api_reply_error(c, &e);
    return api_reply(c, conferencecall_to_json(&cc));
}
