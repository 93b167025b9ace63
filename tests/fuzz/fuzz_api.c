/* libFuzzer target: whole requests through the API router, authentication, JSON parsing and
 * validation (in-process, in-memory store). Input: byte 0 picks the method, then the path up to
 * '\n', then the query up to '\n', then the body. Any crash, leak or UB is a finding; every
 * response must be well-formed JSON with a status below 500. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "call/call.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "fakes.h"
#include "flow/activeflow.h"
#include "flow/flow.h"

static struct {
    uv_loop_t loop;
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct identity *identity;
    struct fake_bridge bridge;
    struct conference_mgr *m;
    struct flow_mgr *flows;
    struct af_mgr *afs;
    struct call_mgr *calls;
    struct api *api;
    char token[1024];
    int ready;
} g;

struct fq {
    const char *query;
};

static const char *q_lookup(void *ctx, const char *key)
{
    struct fq *q = ctx;
    if (strcmp(key, "token") == 0 && (!q->query || !strstr(q->query, "token=")))
        return g.token; /* authenticated unless the input brings its own credential */
    return fake_query_value(q->query, key);
}

static const char *h_lookup(void *ctx, const char *name)
{
    return NULL;
}

static void on_done(void *arg, struct api_response *r)
{
    *(struct api_response **)arg = r;
}

/* 501 (recording, transcription) and 503 CALLS_UNAVAILABLE (no SIP stack here: a valid POST
 * /calls gets that far) are expected; any other 5xx is a finding. */
static void check(const struct api_response *r)
{
    json_t *v = r->body ? json_loads(r->body, 0, NULL) : NULL;
    if (r->body && !v)
        abort();
    const char *reason = json_string_value(json_object_get(json_object_get(v, "error"), "reason"));
    bool expected =
        r->status == 501 || (r->status == 503 && reason && !strcmp(reason, "CALLS_UNAVAILABLE"));
    if (r->status >= 500 && !expected)
        abort();
    json_decref(v);
}

static bool flows_exist(void *ctx, const char *customer_id, const char *id)
{
    return flow_exists(ctx, customer_id, id);
}

/* What the calls ask of the flows (as main.c wires it). */
static bool flows_exist_any(void *ctx, const char *customer_id, const char *id)
{
    return flow_exists(g.flows, customer_id, id);
}

static int flow_run_create(void *ctx, const char *customer_id, const char *flow_id, json_t *actions,
                           const struct af_call_info *call, json_t *vars, char out_id[ID_LEN + 1],
                           struct error *e)
{
    return af_create(g.afs, customer_id, flow_id, actions, call, vars, out_id, e);
}

static void init(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    uv_loop_init(&g.loop);
    if (store_sqlite_open(":memory:", &g.store) != 0)
        abort();
    g.bus = events_bus_create();
    g.sched = sched_create_manual(tm_now_us());
    struct identity_options io = {.fast_hash = true};
    g.identity = identity_create(&g.loop, g.store, g.bus, &io);
    char *gen = NULL;
    identity_bootstrap(g.identity, "op@example.com", "operator-pass", &gen);
    g.bridge.auto_answer = true;
    g.flows = flow_mgr_create(g.store, g.bus);
    struct conference_deps d = {.store = g.store,
                                .bus = g.bus,
                                .sched = g.sched,
                                .bridge = fake_bridge_iface(&g.bridge),
                                .flows = {g.flows, flows_exist}};
    g.m = conference_mgr_create(&d);
    g.bridge.mgr = g.m;
    struct af_deps afd = {
        .store = g.store, .bus = g.bus, .sched = g.sched, .flows = g.flows, .conferences = g.m};
    g.afs = af_mgr_create(&afd);
    struct call_deps cd = {.store = g.store,
                           .bus = g.bus,
                           .sched = g.sched,
                           .flows = {NULL, flows_exist_any, flow_run_create}};
    g.calls = call_mgr_create(&cd); /* no SIP stack or media: validation only */
    struct api_deps ad = {.store = g.store,
                          .identity = g.identity,
                          .conferences = g.m,
                          .flows = g.flows,
                          .activeflows = g.afs,
                          .calls = g.calls};
    g.api = api_create(&ad);
    struct agent a;
    if (store_agent_get_by_username(g.store, "op@example.com", &a) != 0)
        abort();
    char *t = identity_jwt_issue(g.identity, &a, tm_now_us());
    snprintf(g.token, sizeof(g.token), "%s", t);
    free(t);
    agent_fini(&a);
    g.ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    if (!g.ready)
        init();
    if (size < 1)
        return 0;
    const char *method = methods[data[0] % 5];
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    char *path = buf;
    char *query = strchr(path, '\n');
    char *body = NULL;
    if (query) {
        *query++ = '\0';
        body = strchr(query, '\n');
        if (body)
            *body++ = '\0';
    }
    char fullpath[512] = "/v1.0/";
    strncat(fullpath, path, sizeof(fullpath) - strlen(fullpath) - 1);
    struct fq q = {query};
    struct api_request req = {.method = method,
                              .path = path[0] == '/' ? path : fullpath,
                              .body = body,
                              .body_len = body ? strlen(body) : 0,
                              .query = q_lookup,
                              .header = h_lookup,
                              .ctx = &q};
    struct api_response r, *late = NULL;
    int rc = api_handle(g.api, &req, &r, on_done, &late);
    if (rc == 0) {
        check(&r);
        api_response_fini(&r);
    } else {
        while (!late)
            uv_run(&g.loop, UV_RUN_ONCE);
        check(late);
        api_response_fini(late);
        free(late);
    }
    free(buf);
    return 0;
}
