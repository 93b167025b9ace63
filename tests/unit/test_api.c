/* The REST API driven in-process (no sockets): auth, validation, pagination, errors, and the
 * participant endpoints with a fake bridge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/internal.h"
#include "core/timeutil.h"
#include "fakes.h"

struct fx {
    uv_loop_t loop;
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct identity *identity;
    struct fake_bridge bridge;
    struct fake_calls calls;
    struct conference_mgr *m;
    struct api *api;
    char token[1024];
    char customer_id[ID_LEN + 1];
};

/* A request: query is "k=v&k=v" (no decoding needed by these tests). */
struct treq {
    const char *query;
    const char *auth;
};

static const char *tq_lookup(void *ctx, const char *key)
{
    struct treq *t = ctx;
    return fake_query_value(t->query, key);
}

static const char *th_lookup(void *ctx, const char *name)
{
    struct treq *t = ctx;
    return strcmp(name, "Authorization") == 0 ? t->auth : NULL;
}

struct pending_result {
    int done;
    struct api_response *resp;
};

static void on_done(void *arg, struct api_response *resp)
{
    struct pending_result *p = arg;
    p->done = 1;
    p->resp = resp;
}

/* Performs a request; returns the status and the parsed body (caller decrefs). */
static int call(struct fx *f, const char *method, const char *path, const char *query,
                const char *auth, const char *body, json_t **out)
{
    struct treq t = {query, auth};
    struct api_request req = {.method = method,
                              .path = path,
                              .body = body,
                              .body_len = body ? strlen(body) : 0,
                              .query = tq_lookup,
                              .header = th_lookup,
                              .ctx = &t};
    struct api_response r;
    struct pending_result p = {0};
    int rc = api_handle(f->api, &req, &r, on_done, &p);
    struct api_response *resp = &r;
    if (rc == 1) {
        while (!p.done)
            uv_run(&f->loop, UV_RUN_ONCE);
        resp = p.resp;
    }
    int status = resp->status;
    json_t *v = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    if (resp->body)
        assert_non_null(v); /* every body is JSON */
    api_response_fini(resp);
    if (rc == 1)
        free(resp);
    if (out)
        *out = v;
    else
        json_decref(v);
    return status;
}

static char *tok_query(struct fx *f, const char *extra)
{
    static char q[2048];
    snprintf(q, sizeof(q), "token=%s%s%s", f->token, extra ? "&" : "", extra ? extra : "");
    return q;
}

static const char *reason(json_t *v)
{
    return json_string_value(json_object_get(json_object_get(v, "error"), "reason"));
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    f->bus = events_bus_create();
    f->sched = sched_create_manual(tm_now_us());
    struct identity_options io = {.fast_hash = true};
    f->identity = identity_create(&f->loop, f->store, f->bus, &io);
    char *gen = NULL;
    assert_int_equal(identity_bootstrap(f->identity, "op@example.com", "operator-pass", &gen), 1);
    assert_null(gen);
    f->bridge.auto_answer = true;
    struct conference_deps d = {.store = f->store,
                                .bus = f->bus,
                                .sched = f->sched,
                                .bridge = fake_bridge_iface(&f->bridge),
                                .calls = fake_calls_iface(&f->calls)};
    f->m = conference_mgr_create(&d);
    f->bridge.mgr = f->m;
    struct api_deps ad = {.store = f->store, .identity = f->identity, .conferences = f->m};
    f->api = api_create(&ad);
    json_t *v;
    assert_int_equal(call(f, "POST", "/auth/login", NULL, NULL,
                          "{\"username\":\"op@example.com\",\"password\":\"operator-pass\"}", &v),
                     200);
    snprintf(f->token, sizeof(f->token), "%s", json_string_value(json_object_get(v, "token")));
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/customer", tok_query(f, NULL), NULL, NULL, &v), 200);
    snprintf(f->customer_id, sizeof(f->customer_id), "%s",
             json_string_value(json_object_get(v, "id")));
    json_decref(v);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    api_destroy(f->api);
    conference_mgr_destroy(f->m);
    identity_destroy(f->identity);
    sched_destroy(f->sched);
    events_bus_destroy(f->bus);
    store_close(f->store);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    free(f);
    return 0;
}

static void create_conf(struct fx *f, const char *type, char id[ID_LEN + 1])
{
    char body[128];
    snprintf(body, sizeof(body), "{\"type\":\"%s\"}", type);
    json_t *v;
    assert_int_equal(call(f, "POST", "/v1.0/conferences", tok_query(f, NULL), NULL, body, &v), 200);
    snprintf(id, ID_LEN + 1, "%s", json_string_value(json_object_get(v, "id")));
    json_decref(v);
}

static void test_auth_errors(void **state)
{
    struct fx *f = *state;
    json_t *v;
    assert_int_equal(call(f, "GET", "/v1.0/conferences", NULL, NULL, NULL, &v), 401);
    assert_string_equal(reason(v), "AUTHENTICATION_REQUIRED");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", "token=abc", NULL, NULL, &v), 401);
    assert_string_equal(reason(v), "INVALID_CREDENTIALS");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", NULL, "Basic xyz", NULL, &v), 401);
    assert_string_equal(reason(v), "INVALID_CREDENTIALS");
    json_decref(v);
    char bearer[1100];
    snprintf(bearer, sizeof(bearer), "Bearer %s", f->token);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", NULL, bearer, NULL, NULL), 200);
    /* a tampered signature */
    char bad[1100];
    snprintf(bad, sizeof(bad), "token=%s", f->token);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(call(f, "GET", "/v1.0/conferences", bad, NULL, NULL, NULL), 401);
    assert_int_equal(call(f, "POST", "/auth/login", NULL, NULL,
                          "{\"username\":\"op@example.com\",\"password\":\"wrong-password\"}", &v),
                     401);
    json_decref(v);
    assert_int_equal(call(f, "POST", "/v1.0/auth/login", NULL, NULL, "{\"username\":\"x\"}", &v),
                     400);
    assert_string_equal(reason(v), "MISSING_FIELD");
    json_decref(v);
}

static void test_expired_jwt(void **state)
{
    struct fx *f = *state;
    struct agent a;
    memset(&a, 0, sizeof(a));
    struct principal p;
    struct error e;
    assert_int_equal(identity_authenticate(f->identity, f->token, tm_now_us(), &p, &e), 0);
    memcpy(a.id, p.agent_id, sizeof(a.id));
    memcpy(a.customer_id, p.customer_id, sizeof(a.customer_id));
    int64_t long_ago = tm_now_us() - INT64_C(8) * 86400 * 1000000;
    char *old = identity_jwt_issue(f->identity, &a, long_ago);
    assert_true(identity_authenticate(f->identity, old, tm_now_us(), &p, &e) < 0);
    assert_string_equal(e.reason, "INVALID_CREDENTIALS");
    free(old);
}

static void test_routes_and_ids(void **state)
{
    struct fx *f = *state;
    json_t *v;
    assert_int_equal(call(f, "GET", "/v1.0/nothing", tok_query(f, NULL), NULL, NULL, &v), 404);
    assert_string_equal(reason(v), "ROUTE_NOT_FOUND");
    json_decref(v);
    assert_int_equal(call(f, "DELETE", "/v1.0/conferences", tok_query(f, NULL), NULL, NULL, &v),
                     405);
    json_decref(v);
    assert_int_equal(
        call(f, "GET", "/v1.0/conferences/not-a-uuid", tok_query(f, NULL), NULL, NULL, &v), 400);
    assert_string_equal(reason(v), "INVALID_ID");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences/6F9619FF-8B86-4011-B42D-00C04FC964FF",
                          tok_query(f, NULL), NULL, NULL, &v),
                     404);
    assert_string_equal(reason(v), "CONFERENCE_NOT_FOUND");
    json_decref(v);
}

/* The router decodes each path segment after splitting: %2F is a character, never a separator;
 * bad escapes and %00 are 400; /v1/ is an alias of /v1.0/. */
static void test_path_decoding(void **state)
{
    struct fx *f = *state;
    json_t *v;
    assert_int_equal(call(f, "GET", "/v1/conferences", tok_query(f, NULL), NULL, NULL, &v), 200);
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1/conferences/6f9619ff-8b86-4011-b42d-00c04fc964ff",
                          tok_query(f, NULL), NULL, NULL, &v),
                     404);
    assert_string_equal(reason(v), "CONFERENCE_NOT_FOUND");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0%2Fconferences", tok_query(f, NULL), NULL, NULL, &v),
                     404);
    assert_string_equal(reason(v), "ROUTE_NOT_FOUND");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences/6f9619ff%2F8b86-4011-b42d-00c04fc964ff",
                          tok_query(f, NULL), NULL, NULL, &v),
                     400);
    assert_string_equal(reason(v), "INVALID_ID");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/%63onferences", tok_query(f, NULL), NULL, NULL, &v),
                     200); /* an escaped letter is the letter */
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences/ab%zz", tok_query(f, NULL), NULL, NULL, &v),
                     400);
    assert_string_equal(reason(v), "INVALID_URI");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences/ab%00", tok_query(f, NULL), NULL, NULL, &v),
                     400);
    assert_string_equal(reason(v), "INVALID_URI");
    json_decref(v);
}

static void test_body_validation(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *body;
        const char *reason;
    } cases[] = {
        {"{", "INVALID_JSON_BODY"},
        {"[1,2]", "INVALID_JSON_BODY"},
        {"\"conference\"", "INVALID_JSON_BODY"},
        {"{}", "MISSING_FIELD"},
        {"{\"type\":1}", "INVALID_FIELD_TYPE"},
        {"{\"type\":\"meeting\"}", "INVALID_FIELD_VALUE"},
        {"{\"type\":\"conference\",\"timeout\":\"10\"}", "INVALID_FIELD_TYPE"},
        {"{\"type\":\"conference\",\"timeout\":-5}", "INVALID_FIELD_VALUE"},
        {"{\"type\":\"conference\",\"timeout\":1.5}", "INVALID_FIELD_TYPE"},
        {"{\"type\":\"conference\",\"data\":[]}", "INVALID_FIELD_TYPE"},
        {"{\"type\":\"conference\",\"pre_flow_id\":\"xyz\"}", "INVALID_FIELD_VALUE"},
        {"{\"type\":\"conference\",\"pre_flow_id\":\"6f9619ff-8b86-4011-b42d-00c04fc964ff\"}",
         "INVALID_FLOW_ID"},
        {"{\"type\":\"conference\",\"name\":false}", "INVALID_FIELD_TYPE"},
        {"{\"type\":\"conference\",\"type\":\"connect\"}", "INVALID_JSON_BODY"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v;
        int st = call(f, "POST", "/v1.0/conferences", tok_query(f, NULL), NULL, cases[i].body, &v);
        if (st != 400 || strcmp(reason(v), cases[i].reason) != 0)
            fail_msg("body %s: status %d reason %s, want 400 %s", cases[i].body, st,
                     v ? reason(v) : "-", cases[i].reason);
        json_decref(v);
    }
    char *big = malloc(300);
    memset(big, 'a', 299);
    big[299] = '\0';
    char body[400];
    snprintf(body, sizeof(body), "{\"type\":\"conference\",\"name\":\"%s\"}", big);
    free(big);
    json_t *v;
    assert_int_equal(call(f, "POST", "/v1.0/conferences", tok_query(f, NULL), NULL, body, &v), 400);
    assert_string_equal(reason(v), "FIELD_TOO_LONG");
    json_decref(v);
    /* unknown fields ignored, null = absent */
    assert_int_equal(call(f, "POST", "/v1.0/conferences", tok_query(f, NULL), NULL,
                          "{\"type\":\"conference\",\"x\":[1],\"name\":null}", &v),
                     200);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "");
    json_decref(v);
}

static void test_too_large(void **state)
{
    struct fx *f = *state;
    struct treq t = {tok_query(f, NULL), NULL};
    struct api_request req = {.method = "POST",
                              .path = "/v1.0/conferences",
                              .body_too_large = true,
                              .query = tq_lookup,
                              .header = th_lookup,
                              .ctx = &t};
    struct api_response r;
    assert_int_equal(api_handle(f->api, &req, &r, on_done, NULL), 0);
    assert_int_equal(r.status, 413);
    api_response_fini(&r);
}

static void test_pagination(void **state)
{
    struct fx *f = *state;
    char ids[7][ID_LEN + 1];
    for (int i = 0; i < 7; i++)
        create_conf(f, "conference", ids[i]);
    char seen[7][ID_LEN + 1];
    int n = 0;
    char token[64] = "";
    for (int page = 0; page < 5; page++) {
        char q[128];
        snprintf(q, sizeof(q), "page_size=3%s%s", token[0] ? "&page_token=" : "", token);
        json_t *v;
        assert_int_equal(call(f, "GET", "/v1.0/conferences", tok_query(f, q), NULL, NULL, &v), 200);
        json_t *res = json_object_get(v, "result");
        size_t k;
        json_t *it;
        json_array_foreach(res, k, it)
        {
            assert_true(n < 7);
            snprintf(seen[n++], ID_LEN + 1, "%s", json_string_value(json_object_get(it, "id")));
        }
        const char *next = json_string_value(json_object_get(v, "next_page_token"));
        if (json_array_size(res) == 0) {
            assert_string_equal(next, "");
            json_decref(v);
            break;
        }
        snprintf(token, sizeof(token), "%s", next);
        /* the query token carries a space; the test lookup does no decoding */
        json_decref(v);
    }
    assert_int_equal(n, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(seen[i], ids[6 - i]); /* newest first */
    json_t *v;
    assert_int_equal(
        call(f, "GET", "/v1.0/conferences", tok_query(f, "page_size=0"), NULL, NULL, &v), 400);
    assert_string_equal(reason(v), "INVALID_PAGE_SIZE");
    json_decref(v);
    assert_int_equal(
        call(f, "GET", "/v1.0/conferences", tok_query(f, "page_size=101"), NULL, NULL, &v), 200);
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences",
                          tok_query(f, "page_size=99999999999999999999"), NULL, NULL, &v),
                     200);
    json_decref(v);
    static const char *bad_sizes[] = {"page_size=0000", "page_size=-1", "page_size=1x",
                                      "page_size=%20"};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        assert_int_equal(
            call(f, "GET", "/v1.0/conferences", tok_query(f, bad_sizes[i]), NULL, NULL, &v), 400);
        json_decref(v);
    }
    assert_int_equal(
        call(f, "GET", "/v1.0/conferences", tok_query(f, "page_token=yesterday"), NULL, NULL, &v),
        400);
    assert_string_equal(reason(v), "INVALID_PAGE_TOKEN");
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences",
                          tok_query(f, "page_token=2000-01-01T00:00:00Z"), NULL, NULL, &v),
                     200);
    assert_int_equal(json_array_size(json_object_get(v, "result")), 0);
    json_decref(v);
}

static void test_kick_endpoint(void **state)
{
    struct fx *f = *state;
    char conf[ID_LEN + 1], call_id[ID_LEN + 1];
    create_conf(f, "conference", conf);
    id_new(call_id);
    fake_calls_set_up(&f->calls, call_id, true);
    struct conferencecall cc;
    struct error e;
    assert_int_equal(conference_join(f->m, conf, CC_REFERENCE_CALL, call_id, NULL, &cc, &e), 0);
    assert_int_equal(conference_connect(f->m, cc.id, &e), 0);
    char path[128];
    snprintf(path, sizeof(path), "/v1.0/conferencecalls/%s", cc.id);
    json_t *v;
    assert_int_equal(call(f, "GET", path, tok_query(f, NULL), NULL, NULL, &v), 200);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "joined");
    assert_string_equal(json_string_value(json_object_get(v, "reference_type")), "call");
    json_decref(v);
    char q[200];
    snprintf(q, sizeof(q), "conference_id=%s", conf);
    assert_int_equal(call(f, "GET", "/v1.0/conferencecalls", tok_query(f, q), NULL, NULL, &v), 200);
    assert_int_equal(json_array_size(json_object_get(v, "result")), 1);
    json_decref(v);
    f->bridge.auto_answer = false;
    assert_int_equal(call(f, "DELETE", path, tok_query(f, NULL), NULL, NULL, &v), 200);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "leaving");
    json_decref(v);
    assert_int_equal(call(f, "DELETE", path, tok_query(f, NULL), NULL, NULL, &v), 409);
    assert_string_equal(reason(v), "STATE_INVALID");
    json_decref(v);
    conference_on_leaved(f->m, cc.id);
    assert_int_equal(call(f, "DELETE", path, tok_query(f, NULL), NULL, NULL, &v), 409);
    json_decref(v);
    snprintf(path, sizeof(path), "/v1.0/conferences/%s", conf);
    assert_int_equal(call(f, "GET", path, tok_query(f, NULL), NULL, NULL, &v), 200);
    assert_int_equal(json_array_size(json_object_get(v, "conferencecall_ids")), 0);
    json_decref(v);
}

static void test_other_customer_is_404(void **state)
{
    struct fx *f = *state;
    char conf[ID_LEN + 1];
    create_conf(f, "conference", conf);
    json_t *v;
    assert_int_equal(
        call(f, "POST", "/v1.0/customers", tok_query(f, NULL), NULL,
             "{\"name\":\"b\",\"username\":\"b@example.com\",\"password\":\"b-password\"}", &v),
        200);
    json_decref(v);
    assert_int_equal(call(f, "POST", "/auth/login", NULL, NULL,
                          "{\"username\":\"b@example.com\",\"password\":\"b-password\"}", &v),
                     200);
    char q[1100];
    snprintf(q, sizeof(q), "token=%s", json_string_value(json_object_get(v, "token")));
    json_decref(v);
    char path[128];
    snprintf(path, sizeof(path), "/v1.0/conferences/%s", conf);
    assert_int_equal(call(f, "GET", path, q, NULL, NULL, &v), 404);
    json_decref(v);
    assert_int_equal(call(f, "DELETE", path, q, NULL, NULL, &v), 404);
    json_decref(v);
    snprintf(path, sizeof(path), "/v1.0/conferences/%s/direct-hash-regenerate", conf);
    assert_int_equal(call(f, "POST", path, q, NULL, NULL, &v), 404);
    json_decref(v);
    /* a server without a recogniser: another customer's conference is still 404, one's own 501 */
    snprintf(path, sizeof(path), "/v1.0/conferences/%s/transcribe_start", conf);
    assert_int_equal(call(f, "POST", path, q, NULL, NULL, &v), 404);
    json_decref(v);
    assert_int_equal(
        call(f, "POST", path, tok_query(f, NULL), NULL, "{\"language\":\"en-US\"}", &v), 501);
    assert_string_equal(reason(v), "NOT_IMPLEMENTED");
    json_decref(v);
    /* customer b's admin is not the operator */
    assert_int_equal(call(f, "GET", "/v1.0/customers", q, NULL, NULL, &v), 403);
    json_decref(v);
}

static void test_accesskey_lifecycle(void **state)
{
    struct fx *f = *state;
    json_t *v;
    assert_int_equal(call(f, "POST", "/v1.0/accesskeys", tok_query(f, NULL), NULL,
                          "{\"name\":\"ci\",\"expire\":0}", &v),
                     200);
    const char *token = json_string_value(json_object_get(v, "token"));
    assert_non_null(token);
    assert_int_equal(strncmp(token, "cf_", 3), 0);
    char q[256], path[128];
    snprintf(q, sizeof(q), "accesskey=%s", token);
    snprintf(path, sizeof(path), "/v1.0/accesskeys/%s",
             json_string_value(json_object_get(v, "id")));
    assert_int_equal(strncmp(token, json_string_value(json_object_get(v, "token_prefix")), 11), 0);
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", q, NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "GET", path, tok_query(f, NULL), NULL, NULL, &v), 200);
    assert_null(json_object_get(v, "token"));
    json_decref(v);
    assert_int_equal(call(f, "DELETE", path, tok_query(f, NULL), NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", q, NULL, NULL, &v), 401);
    json_decref(v);
    assert_int_equal(call(f, "GET", path, tok_query(f, NULL), NULL, NULL, &v), 404);
    assert_string_equal(reason(v), "ACCESSKEY_NOT_FOUND");
    json_decref(v);
}

static void test_agent_permissions(void **state)
{
    struct fx *f = *state;
    json_t *v;
    assert_int_equal(call(f, "POST", "/v1.0/agents", tok_query(f, NULL), NULL,
                          "{\"username\":\"ag@example.com\",\"password\":\"agent-pass\"}", &v),
                     201);
    assert_int_equal(json_integer_value(json_object_get(v, "permission")), 16);
    assert_null(json_object_get(v, "password"));
    char path[128];
    snprintf(path, sizeof(path), "/v1.0/agents/%s", json_string_value(json_object_get(v, "id")));
    json_decref(v);
    assert_int_equal(call(f, "POST", "/v1.0/agents", tok_query(f, NULL), NULL,
                          "{\"username\":\"ag@example.com\",\"password\":\"agent-pass\"}", &v),
                     409);
    assert_string_equal(reason(v), "USERNAME_TAKEN");
    json_decref(v);
    assert_int_equal(call(f, "POST", "/auth/login", NULL, NULL,
                          "{\"username\":\"ag@example.com\",\"password\":\"agent-pass\"}", &v),
                     200);
    char q[1100];
    snprintf(q, sizeof(q), "token=%s", json_string_value(json_object_get(v, "token")));
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", q, NULL, NULL, &v), 403);
    assert_string_equal(reason(v), "PERMISSION_DENIED");
    json_decref(v);
    assert_int_equal(call(f, "PUT", path, tok_query(f, NULL), NULL, "{\"permission\":64}", &v),
                     200);
    json_decref(v);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", q, NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "PUT", path, tok_query(f, NULL), NULL, "{\"permission\":1}", &v), 400);
    json_decref(v);
    assert_int_equal(call(f, "DELETE", path, tok_query(f, NULL), NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "GET", "/v1.0/conferences", q, NULL, NULL, &v), 401);
    json_decref(v);
}

static void test_range_parse(void **state)
{
    (void)state;
    uint64_t off = 0, len = 0;
    assert_int_equal(http_range_parse("bytes=100-1099", 5000, &off, &len), 1);
    assert_int_equal(off, 100);
    assert_int_equal(len, 1000);
    assert_int_equal(http_range_parse("bytes=4000-", 5000, &off, &len), 1);
    assert_int_equal(off, 4000);
    assert_int_equal(len, 1000);
    assert_int_equal(http_range_parse("bytes=-44", 5000, &off, &len), 1);
    assert_int_equal(off, 4956);
    assert_int_equal(len, 44);
    assert_int_equal(http_range_parse("bytes=-9999", 5000, &off, &len), 1); /* all of it */
    assert_int_equal(off, 0);
    assert_int_equal(len, 5000);
    assert_int_equal(http_range_parse("bytes=10-99999", 5000, &off, &len), 1); /* cut to the end */
    assert_int_equal(len, 4990);
    assert_int_equal(http_range_parse("bytes=5000-", 5000, &off, &len), -1);
    assert_int_equal(http_range_parse("bytes=-0", 5000, &off, &len), -1);
    /* ignored: the whole file */
    assert_int_equal(http_range_parse("items=1-2", 5000, &off, &len), 0);
    assert_int_equal(http_range_parse("bytes=1-2,5-6", 5000, &off, &len), 0);
    assert_int_equal(http_range_parse("bytes=9-3", 5000, &off, &len), 0);
    assert_int_equal(http_range_parse("bytes=x-3", 5000, &off, &len), 0);
    assert_int_equal(http_range_parse("bytes=-", 5000, &off, &len), 0);
    assert_int_equal(http_range_parse("bytes=99999999999999999999999-", 5000, &off, &len), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test_setup_teardown(test_auth_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_jwt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_decoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_customer_is_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accesskey_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_permissions, setup, teardown),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
