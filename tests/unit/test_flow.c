/* Flows, numbers and the activeflow executor with fake call operations, a real conference
 * manager over a fake bridge, and a manual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conference/conference.h"
#include "core/jsonutil.h"
#include "core/timeutil.h"
#include "fakes.h"
#include "flow/action.h"
#include "flow/activeflow.h"
#include "flow/flow.h"

#define MS INT64_C(1000)
static const char *CUST = "11111111-1111-4111-8111-111111111111";
static const char *OTHER = "22222222-2222-4222-8222-222222222222";
static const char *CALL = "33333333-3333-4333-8333-333333333333";

struct fx {
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct fake_bridge bridge;
    struct event_log log;
    struct conference_mgr *cm;
    struct flow_mgr *flows;
    struct af_mgr *afs;
    /* what the flow asked of the call */
    int answers;
    int hangups;
    char hangup_reason[32];
    int plays;
    bool up; /* the call is progressing */
    /* what the flow asked of recordings */
    int rec_starts, rec_stops;
    bool rec_fail;
    char rec_option[512];
};

static int rec_start(void *ctx, const char *customer_id, const char *call_id,
                     const char *activeflow_id, const json_t *option, struct error *e)
{
    struct fx *f = ctx;
    assert_string_equal(customer_id, CUST);
    assert_string_equal(call_id, CALL);
    assert_int_equal(strlen(activeflow_id), ID_LEN);
    if (f->rec_fail)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID", "already recording");
    f->rec_starts++;
    char *text = json_dumps(option, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(f->rec_option, sizeof(f->rec_option), "%s", text);
    free(text);
    return 0;
}

static void rec_stop(void *ctx, const char *customer_id, const char *call_id)
{
    struct fx *f = ctx;
    (void)customer_id, (void)call_id;
    f->rec_stops++;
}

static int op_answer(void *ctx, const char *call_id)
{
    struct fx *f = ctx;
    (void)call_id;
    f->answers++;
    f->up = true;
    return 0;
}

static int op_play(void *ctx, const char *call_id, struct media_clip *clip, uint32_t play_id)
{
    struct fx *f = ctx;
    (void)call_id, (void)clip, (void)play_id;
    f->plays++;
    return 0;
}

static void op_play_stop(void *ctx, const char *call_id)
{
    (void)ctx, (void)call_id;
}

static void op_hangup(void *ctx, const char *call_id, const char *reason)
{
    struct fx *f = ctx;
    (void)call_id;
    f->hangups++;
    f->up = false;
    snprintf(f->hangup_reason, sizeof(f->hangup_reason), "%s", reason);
}

static bool calls_up(void *ctx, enum cc_reference_type t, const char *id)
{
    struct fx *f = ctx;
    (void)t, (void)id;
    return f->up;
}

static void calls_left(void *ctx, const struct conferencecall *cc, const struct conference *c)
{
    struct fx *f = ctx;
    af_on_conference_left(f->afs, cc->activeflow_id, cc, c);
}

static bool flows_exist(void *ctx, const char *customer_id, const char *id)
{
    return flow_exists(ctx, customer_id, id);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    f->bus = events_bus_create();
    events_subscribe(f->bus, event_log_record, &f->log);
    f->sched = sched_create_manual(tm_now_us());
    f->flows = flow_mgr_create(f->store, f->bus);
    f->bridge.auto_answer = true;
    struct conference_deps cd = {.store = f->store,
                                 .bus = f->bus,
                                 .sched = f->sched,
                                 .bridge = fake_bridge_iface(&f->bridge),
                                 .calls = {f, calls_up, calls_left},
                                 .flows = {f->flows, flows_exist}};
    f->cm = conference_mgr_create(&cd);
    f->bridge.mgr = f->cm;
    struct af_deps ad = {.store = f->store,
                         .bus = f->bus,
                         .sched = f->sched,
                         .flows = f->flows,
                         .conferences = f->cm,
                         .call = {f, op_answer, op_play, op_play_stop, op_hangup, NULL},
                         .recordings = {f, rec_start, rec_stop}};
    f->afs = af_mgr_create(&ad);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    af_mgr_destroy(f->afs);
    conference_mgr_destroy(f->cm);
    flow_mgr_destroy(f->flows);
    sched_destroy(f->sched);
    events_bus_destroy(f->bus);
    store_close(f->store);
    free(f);
    return 0;
}

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

static int validate(const char *text, json_t **out, struct error *e)
{
    json_t *in = parse(text);
    int rc = action_list_validate(in, out, e);
    json_decref(in);
    return rc;
}

/* ---- validation ---- */

static void test_validate_generates_ids(void **state)
{
    (void)state;
    json_t *out;
    struct error e;
    assert_int_equal(validate("[{\"type\":\"answer\"},{\"type\":\"talk\",\"option\":{\"text\":"
                              "\"hi\"}}]",
                              &out, &e),
                     0);
    assert_int_equal(json_array_size(out), 2);
    const char *id0 = json_string_value(json_object_get(json_array_get(out, 0), "id"));
    assert_true(id_valid(id0) && !id_is_nil(id0));
    assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "next_id")),
                        ID_NIL);
    assert_true(json_is_object(json_object_get(json_array_get(out, 0), "option")));
    json_decref(out);
}

static void test_validate_errors_name_the_action(void **state)
{
    (void)state;
    json_t *out = NULL;
    struct error e;
    assert_true(validate("[{\"type\":\"answer\"},{\"type\":\"dance\"}]", &out, &e) < 0);
    assert_string_equal(e.reason, "INVALID_ACTION_TYPE");
    assert_non_null(strstr(e.message, "Action 2"));
    assert_non_null(strstr(e.message, "dance"));

    assert_true(validate("[{\"type\":\"talk\",\"option\":{}}]", &out, &e) < 0);
    assert_string_equal(e.reason, "INVALID_ACTION");
    assert_non_null(strstr(e.message, "Action 1 (talk"));
    assert_non_null(strstr(e.message, "text"));

    assert_true(validate("[{\"type\":\"talk\",\"option\":{\"text\":\"x\",\"language\":"
                         "\"fr-FR\"}}]",
                         &out, &e) < 0);
    assert_non_null(strstr(e.message, "en-US"));
    assert_true(validate("[{\"type\":\"sleep\",\"option\":{\"duration\":-1}}]", &out, &e) < 0);
    assert_true(validate("[{\"type\":\"sleep\",\"option\":{\"duration\":\"5\"}}]", &out, &e) < 0);
    assert_true(validate("[{\"type\":\"play\",\"option\":{\"stream_urls\":[]}}]", &out, &e) < 0);
    assert_true(validate("[{\"type\":\"play\",\"option\":{\"stream_urls\":[\"relative.wav\"]}}]",
                         &out, &e) < 0);
    assert_true(validate("[{\"type\":\"digits_receive\",\"option\":{\"key\":\"x\"}}]", &out, &e) <
                0);
    assert_true(validate("[{\"type\":\"hangup\",\"option\":{\"reason\":\"bored\"}}]", &out, &e) <
                0);
    assert_true(validate("[{\"type\":\"conference_join\",\"option\":{}}]", &out, &e) < 0);
    assert_true(validate("[{\"type\":\"conference_join\",\"option\":{\"conference_id\":\"x\"}}]",
                         &out, &e) < 0);
    /* a reference to an action that is not in the flow */
    assert_true(validate("[{\"type\":\"goto\",\"option\":{\"target_id\":"
                         "\"44444444-4444-4444-8444-444444444444\"}}]",
                         &out, &e) < 0);
    assert_non_null(strstr(e.message, "not the id of an action"));
    assert_true(validate("[{\"type\":\"answer\",\"next_id\":"
                         "\"44444444-4444-4444-8444-444444444444\"}]",
                         &out, &e) < 0);
    /* duplicate ids */
    assert_true(validate("[{\"id\":\"44444444-4444-4444-8444-444444444444\",\"type\":\"answer\"},"
                         "{\"id\":\"44444444-4444-4444-8444-444444444444\",\"type\":\"answer\"}]",
                         &out, &e) < 0);
    assert_true(validate("{\"type\":\"answer\"}", &out, &e) < 0);
    assert_true(validate("[1]", &out, &e) < 0);
    assert_true(validate("[{\"type\":\"answer\",\"option\":[]}]", &out, &e) < 0);
}

static void test_substitute(void **state)
{
    (void)state;
    json_t *vars = parse("{\"a\":\"x\",\"n\":5,\"voipbin.call.digits\":\"1234\"}");
    char *s = action_substitute("pin ${voipbin.call.digits} a=${a} n=${n} missing=${zz} ${", vars);
    assert_string_equal(s, "pin 1234 a=x n=5 missing= ${");
    free(s);
    json_t *opt = parse("{\"text\":\"hi ${a}\",\"list\":[\"${a}${a}\"],\"k\":3}");
    json_t *r = action_option_resolve(opt, vars);
    assert_string_equal(json_string_value(json_object_get(r, "text")), "hi x");
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "list"), 0)), "xx");
    assert_int_equal(json_integer_value(json_object_get(r, "k")), 3);
    json_decref(r);
    json_decref(opt);
    json_decref(vars);
}

/* ---- flows and numbers ---- */

static void make_flow(struct fx *f, const char *customer, const char *actions, char id[ID_LEN + 1])
{
    json_t *a = parse(actions);
    struct flow_req req = {.name = "f", .actions = a};
    struct flow out;
    struct error e;
    int rc = flow_create(f->flows, customer, &req, &out, &e);
    if (rc < 0)
        fail_msg("flow_create: %s", e.message);
    memcpy(id, out.id, ID_LEN + 1);
    flow_fini(&out);
    json_decref(a);
}

static void test_flow_crud(void **state)
{
    struct fx *f = *state;
    char id[ID_LEN + 1];
    make_flow(f, CUST, "[{\"type\":\"answer\"}]", id);
    struct flow out;
    struct error e;
    assert_int_equal(flow_get(f->flows, CUST, id, &out, &e), 0);
    flow_fini(&out);
    assert_true(flow_get(f->flows, OTHER, id, &out, &e) < 0);
    assert_string_equal(e.reason, "FLOW_NOT_FOUND");
    /* only the fields sent change */
    struct flow_req upd = {.name = "renamed"};
    assert_int_equal(flow_update(f->flows, CUST, id, &upd, &out, &e), 0);
    assert_string_equal(out.name, "renamed");
    assert_non_null(strstr(out.actions, "answer"));
    flow_fini(&out);
    json_t *bad = parse("[{\"type\":\"nope\"}]");
    struct flow_req upd2 = {.actions = bad};
    assert_true(flow_update(f->flows, CUST, id, &upd2, &out, &e) < 0);
    json_decref(bad);
    assert_int_equal(flow_get(f->flows, CUST, id, &out, &e), 0); /* unchanged */
    assert_non_null(strstr(out.actions, "answer"));
    flow_fini(&out);
    assert_int_equal(flow_delete(f->flows, CUST, id, &out, &e), 0);
    flow_fini(&out);
    assert_false(flow_exists(f->flows, CUST, id));
    assert_true(flow_get(f->flows, CUST, id, &out, &e) < 0);
}

static void test_numbers(void **state)
{
    struct fx *f = *state;
    char flow[ID_LEN + 1], other_flow[ID_LEN + 1];
    make_flow(f, CUST, "[{\"type\":\"answer\"}]", flow);
    make_flow(f, OTHER, "[{\"type\":\"answer\"}]", other_flow);
    struct number_req req = {.number = "+15551234567", .call_flow_id = flow, .name = "main"};
    struct number n;
    struct error e;
    assert_int_equal(number_create(f->flows, CUST, &req, &n, &e), 0);
    char id[ID_LEN + 1];
    memcpy(id, n.id, sizeof(id));
    number_fini(&n);
    /* taken, bad syntax, another customer's flow */
    struct number_req same = {.number = "+15551234567"};
    assert_true(number_create(f->flows, OTHER, &same, &n, &e) < 0);
    assert_string_equal(e.reason, "NUMBER_EXISTS");
    struct number_req bad = {.number = "5551234"};
    assert_true(number_create(f->flows, CUST, &bad, &n, &e) < 0);
    assert_string_equal(e.reason, "INVALID_NUMBER");
    struct number_req foreign = {.number = "+15550000000", .call_flow_id = other_flow};
    assert_true(number_create(f->flows, CUST, &foreign, &n, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FLOW_ID");
    /* routing, with and without the + */
    assert_int_equal(number_route(f->flows, "+15551234567", &n, &e), 0);
    assert_string_equal(n.call_flow_id, flow);
    number_fini(&n);
    assert_int_equal(number_route(f->flows, "15551234567", &n, &e), 0);
    number_fini(&n);
    assert_true(number_route(f->flows, "+19999", &n, &e) < 0);
    /* delete frees the number */
    assert_int_equal(number_delete(f->flows, CUST, id, &n, &e), 0);
    assert_string_equal(n.status, "deleted");
    number_fini(&n);
    assert_true(number_route(f->flows, "+15551234567", &n, &e) < 0);
    assert_int_equal(
        number_create(f->flows, OTHER, &(struct number_req){.number = "+15551234567"}, &n, &e), 0);
    number_fini(&n);
}

/* ---- the executor ---- */

static void start(struct fx *f, const char *flow_id, const char *actions, char af[ID_LEN + 1])
{
    json_t *list = NULL;
    struct error e;
    if (actions) {
        json_t *in = parse(actions);
        if (action_list_validate(in, &list, &e) != 0)
            fail_msg("invalid: %s", e.message);
        json_decref(in);
    }
    struct af_call_info info = {.call_id = CALL,
                                .source_target = "sip:alice@127.0.0.1",
                                .destination_target = "+15551234567",
                                .direction = "incoming"};
    int rc = af_create(f->afs, CUST, flow_id, list, &info, NULL, af, &e);
    if (rc < 0)
        fail_msg("af_create: %s", e.message);
    json_decref(list);
    af_run(f->afs, af);
}

static enum activeflow_status af_status(struct fx *f, const char *id)
{
    struct activeflow a;
    struct error e;
    assert_int_equal(af_get(f->afs, CUST, id, &a, &e), 0);
    enum activeflow_status st = a.status;
    activeflow_fini(&a);
    return st;
}

static void test_sleep_then_nothing_left(void **state)
{
    struct fx *f = *state;
    char af[ID_LEN + 1];
    start(f, NULL, "[{\"type\":\"answer\"},{\"type\":\"sleep\",\"option\":{\"duration\":1000}}]",
          af);
    assert_int_equal(f->answers, 1);
    assert_int_equal(f->hangups, 0);
    sched_advance(f->sched, 999 * MS);
    assert_int_equal(f->hangups, 0);
    sched_advance(f->sched, 2 * MS);
    assert_int_equal(f->hangups, 1);
    assert_string_equal(f->hangup_reason, "normal");
    assert_int_equal(af_status(f, af), ACTIVEFLOW_ENDED);
    assert_true(event_log_find(&f->log, 0, "activeflow_created", af) >= 0);
    assert_true(event_log_find(&f->log, 0, "activeflow_updated", af) >= 0);
    assert_int_equal(af_mgr_running(f->afs), 0);
}

/* PIN room: digits_receive + branch; the right PIN joins, a wrong one hangs up busy. */
#define PIN_FLOW                                                                                   \
    "[{\"type\":\"answer\"},"                                                                      \
    "{\"type\":\"digits_receive\",\"option\":{\"length\":4,\"key\":\"#\",\"duration\":5000}},"     \
    "{\"type\":\"branch\",\"option\":{\"target_ids\":{\"1234\":"                                   \
    "\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"},"                                                   \
    "\"default_target_id\":\"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb\"}},"                            \
    "{\"id\":\"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\",\"type\":\"conference_join\","               \
    "\"option\":{\"conference_id\":\"%s\"}},"                                                      \
    "{\"type\":\"hangup\",\"option\":{\"reason\":\"normal\"}},"                                    \
    "{\"id\":\"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb\",\"type\":\"hangup\","                        \
    "\"option\":{\"reason\":\"busy\"}}]"

static void make_conference(struct fx *f, const char *type, const char *pre, const char *post,
                            char id[ID_LEN + 1])
{
    struct conference_create_req req = {.type = type, .pre_flow_id = pre, .post_flow_id = post};
    struct conference c;
    struct error e;
    int rc = conference_create(f->cm, CUST, &req, &c, &e);
    if (rc < 0)
        fail_msg("conference_create: %s", e.message);
    memcpy(id, c.id, ID_LEN + 1);
    conference_fini(&c);
}

static size_t participants(struct fx *f, const char *conf)
{
    struct conference c;
    struct error e;
    assert_int_equal(conference_get(f->cm, CUST, conf, &c, &e), 0);
    size_t n = c.n_call_ids;
    conference_fini(&c);
    return n;
}

static void test_pin_room(void **state)
{
    struct fx *f = *state;
    char conf[ID_LEN + 1], af[ID_LEN + 1], text[2048];
    make_conference(f, "conference", NULL, NULL, conf);
    snprintf(text, sizeof(text), PIN_FLOW, conf);

    /* right PIN, typed partly ahead of the prompt */
    start(f, NULL, text, af);
    af_on_dtmf(f->afs, af, '1');
    af_on_dtmf(f->afs, af, '2');
    af_on_dtmf(f->afs, af, '3');
    assert_int_equal(participants(f, conf), 0);
    af_on_dtmf(f->afs, af, '4');
    assert_int_equal(participants(f, conf), 1);
    assert_int_equal(f->hangups, 0);

    /* a wrong PIN ended by # */
    char af2[ID_LEN + 1];
    start(f, NULL, text, af2);
    af_on_dtmf(f->afs, af2, '9');
    af_on_dtmf(f->afs, af2, '#');
    assert_int_equal(f->hangups, 1);
    assert_string_equal(f->hangup_reason, "busy");
    assert_int_equal(participants(f, conf), 1);

    /* nothing typed: the timeout gives "" which takes the default */
    char af3[ID_LEN + 1];
    start(f, NULL, text, af3);
    sched_advance(f->sched, 5001 * MS);
    assert_int_equal(f->hangups, 2);
    assert_string_equal(f->hangup_reason, "busy");

    /* the participant of the first call is kicked: its flow goes on (hangup normal) */
    struct conference c;
    struct error e;
    assert_int_equal(conference_get(f->cm, CUST, conf, &c, &e), 0);
    struct conferencecall cc;
    assert_int_equal(conference_kick(f->cm, CUST, c.call_ids[0], &cc, &e), 0);
    conference_fini(&c);
    assert_int_equal(f->hangups, 3);
    assert_string_equal(f->hangup_reason, "normal");
    assert_int_equal(af_status(f, af), ACTIVEFLOW_ENDED);
}

/* conference_join: the pre-flow runs while joining; the post-flow runs when the conference has
 * ended; then the flow goes on. */
static void test_pre_and_post_flow(void **state)
{
    struct fx *f = *state;
    char pre[ID_LEN + 1], post[ID_LEN + 1], conf[ID_LEN + 1], af[ID_LEN + 1], text[512];
    make_flow(f, CUST, "[{\"type\":\"sleep\",\"option\":{\"duration\":500}}]", pre);
    make_flow(f, CUST, "[{\"type\":\"sleep\",\"option\":{\"duration\":300}}]", post);
    make_conference(f, "conference", pre, post, conf);
    snprintf(text, sizeof(text),
             "[{\"type\":\"answer\"},{\"type\":\"conference_join\",\"option\":{\"conference_id\":"
             "\"%s\"}},{\"type\":\"hangup\",\"option\":{\"reason\":\"timeout\"}}]",
             conf);
    start(f, NULL, text, af);
    /* joining during the pre-flow: a participant, not in the bridge yet */
    struct conferencecall *list = NULL;
    size_t n = 0;
    assert_int_equal(store_conferencecall_list_active(f->store, conf, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].status, CC_JOINING);
    free(list);
    assert_int_equal(f->bridge.joins, 0);
    sched_advance(f->sched, 501 * MS);
    assert_int_equal(f->bridge.joins, 1);
    assert_int_equal(participants(f, conf), 1);
    /* the conference ends: post-flow (300 ms), then the hangup action */
    struct conference c;
    struct error e;
    assert_int_equal(conference_delete(f->cm, CUST, conf, &c, &e), 0);
    conference_fini(&c);
    assert_int_equal(f->hangups, 0);
    sched_advance(f->sched, 299 * MS);
    assert_int_equal(f->hangups, 0);
    sched_advance(f->sched, 2 * MS);
    assert_int_equal(f->hangups, 1);
    assert_string_equal(f->hangup_reason, "timeout");
}

static void test_refused_join_goes_on(void **state)
{
    struct fx *f = *state;
    char conf[ID_LEN + 1], af[ID_LEN + 1], text[512];
    make_conference(f, "conference", NULL, NULL, conf);
    struct conference c;
    struct error e;
    assert_int_equal(conference_delete(f->cm, CUST, conf, &c, &e), 0);
    conference_fini(&c);
    snprintf(text, sizeof(text),
             "[{\"type\":\"conference_join\",\"option\":{\"conference_id\":\"%s\"}},"
             "{\"type\":\"hangup\",\"option\":{\"reason\":\"busy\"}}]",
             conf);
    start(f, NULL, text, af);
    assert_int_equal(f->hangups, 1);
    assert_string_equal(f->hangup_reason, "busy");
    /* another customer's conference counts as not found */
    char conf2[ID_LEN + 1], af2[ID_LEN + 1];
    struct conference_create_req req = {.type = "conference"};
    assert_int_equal(conference_create(f->cm, OTHER, &req, &c, &e), 0);
    memcpy(conf2, c.id, sizeof(conf2));
    conference_fini(&c);
    snprintf(text, sizeof(text),
             "[{\"type\":\"conference_join\",\"option\":{\"conference_id\":\"%s\"}}]", conf2);
    start(f, NULL, text, af2);
    assert_int_equal(f->hangups, 2);
    assert_string_equal(f->hangup_reason, "normal");
}

static void test_goto_loops_and_fetch_flow(void **state)
{
    struct fx *f = *state;
    char sub[ID_LEN + 1], af[ID_LEN + 1], text[1024];
    make_flow(f, CUST, "[{\"type\":\"hangup\",\"option\":{\"reason\":\"failed\"}}]", sub);
    /* three timeouts of digits_receive (goto loops twice), then the fetched flow hangs up */
    snprintf(text, sizeof(text),
             "[{\"id\":\"cccccccc-cccc-4ccc-8ccc-cccccccccccc\",\"type\":\"digits_receive\","
             "\"option\":{\"length\":1,\"duration\":1000}},"
             "{\"type\":\"goto\",\"option\":{\"target_id\":"
             "\"cccccccc-cccc-4ccc-8ccc-cccccccccccc\",\"loop_count\":2}},"
             "{\"type\":\"fetch_flow\",\"option\":{\"flow_id\":\"%s\"}}]",
             sub);
    start(f, NULL, text, af);
    sched_advance(f->sched, 1001 * MS);
    sched_advance(f->sched, 1001 * MS);
    assert_int_equal(f->hangups, 0);
    sched_advance(f->sched, 1001 * MS);
    assert_int_equal(f->hangups, 1);
    assert_string_equal(f->hangup_reason, "failed");
}

static void test_runaway_loop_is_stopped(void **state)
{
    struct fx *f = *state;
    char af[ID_LEN + 1];
    start(f, NULL,
          "[{\"id\":\"dddddddd-dddd-4ddd-8ddd-dddddddddddd\",\"type\":\"goto\",\"option\":"
          "{\"target_id\":\"dddddddd-dddd-4ddd-8ddd-dddddddddddd\"}}]",
          af);
    assert_int_equal(f->hangups, 1);
    assert_string_equal(f->hangup_reason, "failed");
    assert_int_equal(af_status(f, af), ACTIVEFLOW_ENDED);
}

static void test_stop_and_call_end(void **state)
{
    struct fx *f = *state;
    char af[ID_LEN + 1], af2[ID_LEN + 1];
    start(f, NULL, "[{\"type\":\"sleep\",\"option\":{\"duration\":60000}}]", af);
    struct activeflow a;
    struct error e;
    assert_int_equal(af_stop(f->afs, CUST, af, &a, &e), 0);
    assert_int_equal(a.status, ACTIVEFLOW_ENDED);
    activeflow_fini(&a);
    assert_int_equal(f->hangups, 1);
    assert_true(af_stop(f->afs, OTHER, af, &a, &e) < 0);
    assert_string_equal(e.reason, "ACTIVEFLOW_NOT_FOUND");
    /* the call hangs up: the flow ends, its timer with it, without another hangup */
    start(f, NULL, "[{\"type\":\"sleep\",\"option\":{\"duration\":60000}}]", af2);
    af_on_call_ended(f->afs, af2);
    assert_int_equal(af_status(f, af2), ACTIVEFLOW_ENDED);
    assert_int_equal(sched_pending(f->sched) <= 1, true); /* conference health timers aside */
    sched_advance(f->sched, 61000 * MS);
    assert_int_equal(f->hangups, 1);
    assert_int_equal(af_delete(f->afs, CUST, af2, &a, &e), 0);
    assert_true(a.tm_delete != TM_NEVER);
    activeflow_fini(&a);
}

static void test_flow_by_id_and_variables(void **state)
{
    struct fx *f = *state;
    char flow[ID_LEN + 1], af[ID_LEN + 1];
    /* a branch on a substituted variable */
    make_flow(f, CUST,
              "[{\"type\":\"branch\",\"option\":{\"variable\":\"voipbin.call.destination.target\","
              "\"target_ids\":{\"+15551234567\":\"eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee\"}}},"
              "{\"type\":\"hangup\",\"option\":{\"reason\":\"failed\"}},"
              "{\"id\":\"eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee\",\"type\":\"hangup\","
              "\"option\":{\"reason\":\"noanswer\"}}]",
              flow);
    start(f, flow, NULL, af);
    assert_int_equal(f->hangups, 1);
    assert_string_equal(f->hangup_reason, "noanswer");
    struct activeflow a;
    struct error e;
    assert_int_equal(af_get(f->afs, CUST, af, &a, &e), 0);
    assert_string_equal(a.flow_id, flow);
    assert_non_null(strstr(a.executed_actions, "branch"));
    assert_non_null(strstr(a.current_action, "noanswer"));
    activeflow_fini(&a);
    /* an unknown flow */
    struct af_call_info info = {.call_id = CALL};
    assert_true(af_create(f->afs, CUST, "44444444-4444-4444-8444-444444444444", NULL, &info, NULL,
                          af, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FLOW_ID");
}

/* recording_start / recording_stop: the options reach the recordings (variables resolved),
 * end_of_key ends it on the key, beep_start plays before the flow goes on, a refusal does not end
 * the flow. */
static void test_recording_actions(void **state)
{
    struct fx *f = *state;
    char af[ID_LEN + 1];
    json_t *in = parse("[{\"type\":\"recording_start\",\"option\":{\"format\":\"mp3\"}}]");
    json_t *out = NULL;
    struct error e;
    assert_true(action_list_validate(in, &out, &e) < 0);
    assert_non_null(strstr(e.message, "wav"));
    json_decref(in);
    in = parse("[{\"type\":\"recording_start\",\"option\":{\"end_of_key\":\"5\"}}]");
    assert_true(action_list_validate(in, &out, &e) < 0);
    json_decref(in);

    start(f, NULL,
          "[{\"type\":\"recording_start\",\"option\":{\"duration\":30,\"end_of_key\":\"#\","
          "\"end_of_silence\":3}},"
          "{\"type\":\"sleep\",\"option\":{\"duration\":5000}},"
          "{\"type\":\"recording_stop\"},"
          "{\"type\":\"sleep\",\"option\":{\"duration\":5000}}]",
          af);
    assert_int_equal(f->answers, 1); /* recording answers first */
    assert_int_equal(f->rec_starts, 1);
    assert_non_null(strstr(f->rec_option, "\"duration\":30"));
    assert_non_null(strstr(f->rec_option, "\"end_of_silence\":3"));
    af_on_dtmf(f->afs, af, '1'); /* not its key */
    assert_int_equal(f->rec_stops, 0);
    af_on_dtmf(f->afs, af, '#');
    assert_int_equal(f->rec_stops, 1);
    af_on_dtmf(f->afs, af, '#'); /* used up */
    assert_int_equal(f->rec_stops, 1);
    sched_advance(f->sched, 5001 * MS);
    assert_int_equal(f->rec_stops, 2); /* recording_stop */
    assert_int_equal(af_status(f, af), ACTIVEFLOW_RUNNING);

    /* beep_start: the beep is played, the flow waits for it */
    char af2[ID_LEN + 1];
    int plays = f->plays;
    start(f, NULL,
          "[{\"type\":\"recording_start\",\"option\":{\"beep_start\":true}},"
          "{\"type\":\"hangup\"}]",
          af2);
    assert_int_equal(f->plays, plays + 1);
    int hangups = f->hangups;
    assert_int_equal(f->hangups, hangups);
    /* refused: the flow goes on */
    f->rec_fail = true;
    char af3[ID_LEN + 1];
    start(f, NULL,
          "[{\"type\":\"recording_start\"},{\"type\":\"sleep\",\"option\":{\"duration\":10}}]",
          af3);
    assert_int_equal(af_status(f, af3), ACTIVEFLOW_RUNNING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_generates_ids),
        cmocka_unit_test(test_validate_errors_name_the_action),
        cmocka_unit_test(test_substitute),
        cmocka_unit_test_setup_teardown(test_flow_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sleep_then_nothing_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recording_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pre_and_post_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_join_goes_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goto_loops_and_fetch_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runaway_loop_is_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_and_call_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_by_id_and_variables, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
