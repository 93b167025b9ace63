/* /v1.0/transcribes, /v1.0/transcripts, and the transcribe_start/transcribe_stop of
 * conferences. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/jsonutil.h"
#include "core/mem.h"
#include "conference/conference.h"
#include "transcribe/transcribe.h"

#define TRANSCRIBE_PERMS (PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_MANAGER)

/* A server without a recogniser: 501, after the conference's own checks (another customer's
 * conference is still 404). */
static int unavailable(struct api_call *c)
{
    if (c->api->d.transcribes)
        return 0;
    api_fail(c, ERR_UNIMPLEMENTED, "NOT_IMPLEMENTED",
             "Transcription is not available on this server.");
    return -1;
}

static int conference_unavailable(struct api_call *c)
{
    if (c->api->d.transcribes)
        return 0;
    struct conference conf;
    struct error e;
    if (conference_get(c->api->d.conferences, c->who.customer_id, c->id, &conf, &e) < 0) {
        api_reply_error(c, &e);
        return -1;
    }
    conference_fini(&conf);
    return unavailable(c);
}

static int guard(struct api_call *c)
{
    return api_require(c, TRANSCRIBE_PERMS) < 0 || unavailable(c) < 0 ? -1 : 0;
}

static int reply_transcribe(struct api_call *c, int rc, const struct transcribe *t,
                            const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    return api_reply(c, transcribe_to_json(t));
}

/* {"language","direction","on_end_flow_id"} of a start; strings borrowed from body. */
static int read_start(json_t *body, struct transcribe_start_req *req, id_t_ flow, struct error *e)
{
    memset(req, 0, sizeof(*req));
    int rc;
    if ((rc = jfield_string(body, "language", 64, &req->language, e)) < 0 ||
        (rc = jfield_string(body, "direction", 16, &req->direction, e)) < 0 ||
        (rc = jfield_uuid(body, "on_end_flow_id", flow, e)) < 0)
        return rc;
    req->on_end_flow_id = rc == 1 ? flow : NULL;
    return 0;
}

/* POST /transcribes {"reference_type","reference_id","language","direction","on_end_flow_id"}:
 * "conference" and VoIPBIN's "confbridge" both name a conference. */
int api_transcribes_create(struct api_call *c)
{
    if (guard(c) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct transcribe_start_req req;
    id_t_ flow, ref;
    const char *type = NULL;
    struct error e;
    struct transcribe t;
    enum transcribe_target target = TRANSCRIBE_OF_CALL;
    int rc = read_start(body, &req, flow, &e);
    if (rc == 0 && (rc = jfield_string(body, "reference_type", 32, &type, &e)) >= 0) {
        if (!type ||
            (strcmp(type, "call") && strcmp(type, "conference") && strcmp(type, "confbridge")))
            rc = error_set(&e, ERR_INVALID_ARGUMENT, "INVALID_REFERENCE_TYPE",
                           "reference_type must be \"call\" or \"conference\" (\"confbridge\" "
                           "is taken too).");
        else
            target = strcmp(type, "call") ? TRANSCRIBE_OF_CONFERENCE : TRANSCRIBE_OF_CALL;
    }
    if (rc >= 0 && (rc = jfield_uuid(body, "reference_id", ref, &e)) >= 0 &&
        (rc == 0 || id_is_nil(ref)))
        rc = error_set(&e, ERR_INVALID_ARGUMENT, "INVALID_REFERENCE_ID",
                       "reference_id is required: the id of the call or conference.");
    if (rc >= 0)
        rc = transcribe_start(c->api->d.transcribes, target, c->who.customer_id, ref, &req, &t, &e);
    json_decref(body);
    return reply_transcribe(c, rc, &t, &e);
}

/* GET /transcribes[?reference_type=&reference_id=]: VoIPBIN wants the two together. */
int api_transcribes_list(struct api_call *c)
{
    if (guard(c) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    id_t_ ref;
    int has_ref = api_query_uuid(c, "reference_id", ref);
    if (has_ref < 0)
        return 0;
    const char *type = c->req->query ? c->req->query(c->req->ctx, "reference_type") : NULL;
    bool has_type = type && type[0];
    if (has_type != (has_ref == 1))
        return api_fail(c, ERR_INVALID_ARGUMENT, "INVALID_ARGUMENT",
                        "Query parameters 'reference_type' and 'reference_id' go together.");
    struct transcribe *list = NULL;
    size_t n = 0;
    struct error e;
    if (transcribe_list(c->api->d.transcribes, c->who.customer_id, has_ref ? ref : NULL, &page,
                        &list, &n, &e) < 0)
        return api_reply_error(c, &e);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        bool conf = !strcmp(list[i].reference_type, "confbridge");
        if (has_type && (conf ? strcmp(type, "conference") && strcmp(type, "confbridge")
                              : strcmp(type, list[i].reference_type)))
            continue;
        json_array_append_new(items, transcribe_to_json(&list[i]));
    }
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_transcribes(list, n);
    return api_reply(c, v);
}

int api_transcribes_get(struct api_call *c)
{
    if (guard(c) < 0)
        return 0;
    struct transcribe t;
    struct error e;
    int rc = transcribe_get(c->api->d.transcribes, c->who.customer_id, c->id, &t, &e);
    return reply_transcribe(c, rc, &t, &e);
}

int api_transcribes_delete(struct api_call *c)
{
    if (guard(c) < 0)
        return 0;
    struct transcribe t;
    struct error e;
    int rc = transcribe_delete(c->api->d.transcribes, c->who.customer_id, c->id, &t, &e);
    return reply_transcribe(c, rc, &t, &e);
}

int api_transcribes_stop(struct api_call *c)
{
    if (guard(c) < 0)
        return 0;
    struct transcribe t;
    struct error e;
    int rc = transcribe_stop(c->api->d.transcribes, c->who.customer_id, c->id, &t, &e);
    return reply_transcribe(c, rc, &t, &e);
}

/* GET /transcripts?transcribe_id= (required), oldest first. */
int api_transcripts_list(struct api_call *c)
{
    if (guard(c) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    id_t_ tid;
    int has = api_query_uuid(c, "transcribe_id", tid);
    if (has < 0)
        return 0;
    if (has == 0)
        return api_fail(c, ERR_INVALID_ARGUMENT, "INVALID_ARGUMENT",
                        "Query parameter 'transcribe_id' is required.");
    struct transcript *list = NULL;
    size_t n = 0;
    struct error e;
    if (transcribe_transcripts(c->api->d.transcribes, c->who.customer_id, tid, &page, &list, &n,
                               &e) < 0)
        return api_reply_error(c, &e);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, transcript_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_transcripts(list, n);
    return api_reply(c, v);
}

/* The answer of a conference's start or stop is the conference as it is now. */
int api_conferences_transcribe_start(struct api_call *c)
{
    if (api_require(c, TRANSCRIBE_PERMS) < 0 || conference_unavailable(c) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct transcribe_start_req req;
    id_t_ flow;
    struct error e;
    struct transcribe t;
    int rc = read_start(body, &req, flow, &e);
    if (rc == 0)
        rc = transcribe_start(c->api->d.transcribes, TRANSCRIBE_OF_CONFERENCE, c->who.customer_id,
                              c->id, &req, &t, &e);
    json_decref(body);
    if (rc < 0)
        return api_reply_error(c, &e);
    return api_conferences_get(c);
}

int api_conferences_transcribe_stop(struct api_call *c)
{
    if (api_require(c, TRANSCRIBE_PERMS) < 0 || conference_unavailable(c) < 0)
        return 0;
    struct error e;
    if (transcribe_stop_conference(c->api->d.transcribes, c->who.customer_id, c->id, &e) < 0)
        return api_reply_error(c, &e);
    return api_conferences_get(c);
}
