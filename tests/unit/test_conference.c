/* Conference and participant rules with a fake bridge, fake calls and a manual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conference/conference.h"
#include "core/timeutil.h"
#include "fakes.h"

#define SEC INT64_C(1000000)
static const char *CUST = "11111111-1111-4111-8111-111111111111";
static const char *OTHER = "22222222-2222-4222-8222-222222222222";

struct fx {
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct fake_bridge bridge;
    struct fake_calls calls;
    struct fake_flows flows;
    struct event_log log;
    int max_conferences;
    struct conference_mgr *m;
};

static void make_mgr(struct fx *f)
{
    struct conference_deps d = {
        .store = f->store,
        .bus = f->bus,
        .sched = f->sched,
        .bridge = fake_bridge_iface(&f->bridge),
        .calls = fake_calls_iface(&f->calls),
        .flows = fake_flows_iface(&f->flows),
        .max_conferences = f->max_conferences,
    };
    f->m = conference_mgr_create(&d);
    f->bridge.mgr = f->m;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    f->bus = events_bus_create();
    events_subscribe(f->bus, event_log_record, &f->log);
    f->sched = sched_create_manual(tm_now_us());
    f->bridge.auto_answer = true;
    make_mgr(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    conference_mgr_destroy(f->m);
    sched_destroy(f->sched);
    events_bus_destroy(f->bus);
    store_close(f->store);
    free(f);
    return 0;
}

static void create(struct fx *f, const char *type, int64_t timeout, struct conference *out)
{
    struct conference_create_req req = {.type = type,
                                        .name = "room",
                                        .detail = "d",
                                        .has_timeout = timeout > 0,
                                        .timeout = timeout};
    struct error e;
    assert_int_equal(conference_create(f->m, CUST, &req, out, &e), 0);
}

static void reload(struct fx *f, const char *id, struct conference *c)
{
    struct error e;
    char copy[ID_LEN + 1];
    memcpy(copy, id, sizeof(copy)); /* id may point into *c */
    conference_fini(c);
    assert_int_equal(conference_get(f->m, CUST, copy, c, &e), 0);
}

static enum cc_status cc_status_of(struct fx *f, const char *id)
{
    struct conferencecall cc;
    struct error e;
    assert_int_equal(conferencecall_get(f->m, CUST, id, &cc, &e), 0);
    return cc.status;
}

/* Joins a participant whose call is up and connects it (pre-flow done). */
static void join(struct fx *f, const char *conf_id, struct conferencecall *cc)
{
    char call[ID_LEN + 1];
    id_new(call);
    fake_calls_set_up(&f->calls, call, true);
    struct error e;
    assert_int_equal(conference_join(f->m, conf_id, CC_REFERENCE_CALL, call, NULL, cc, &e), 0);
    assert_int_equal(cc->status, CC_JOINING);
    assert_int_equal(conference_connect(f->m, cc->id, &e), 0);
}

static void test_create_fields(void **state)
{
    struct fx *f = *state;
    struct conference c;
    create(f, "conference", 0, &c);
    assert_int_equal(c.status, CONFERENCE_PROGRESSING);
    assert_int_equal(c.type, CONFERENCE_TYPE_CONFERENCE);
    assert_int_equal(strncmp(c.direct_hash, "direct.", 7), 0);
    assert_int_equal(strlen(c.direct_hash), 19);
    assert_int_equal(c.tm_update, c.tm_create);
    assert_int_equal(c.tm_delete, TM_NEVER);
    assert_int_equal(c.tm_end, 0);
    assert_string_equal(c.pre_flow_id, ID_NIL);
    assert_int_equal(f->bridge.creates, 1);
    assert_true(event_log_find(&f->log, 0, "conference_created", c.id) >= 0);
    assert_string_equal(f->log.status[0], "progressing");
    conference_fini(&c);
}

static void test_create_validation(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct error e;
    struct conference_create_req req = {0};
    assert_true(conference_create(f->m, CUST, &req, &c, &e) < 0);
    assert_string_equal(e.reason, "MISSING_FIELD");
    req.type = "party";
    assert_true(conference_create(f->m, CUST, &req, &c, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FIELD_VALUE");
    req.type = "connect";
    req.has_timeout = true;
    req.timeout = -1;
    assert_true(conference_create(f->m, CUST, &req, &c, &e) < 0);
    assert_int_equal(e.status, ERR_INVALID_ARGUMENT);
    req.timeout = 0;
    char flow[ID_LEN + 1];
    id_new(flow);
    req.pre_flow_id = flow;
    assert_true(conference_create(f->m, CUST, &req, &c, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FLOW_ID");
    fake_flows_add(&f->flows, OTHER, flow); /* another customer's flow is no better */
    assert_true(conference_create(f->m, CUST, &req, &c, &e) < 0);
    fake_flows_add(&f->flows, CUST, flow);
    assert_int_equal(conference_create(f->m, CUST, &req, &c, &e), 0);
    assert_string_equal(c.pre_flow_id, flow);
    conference_fini(&c);
    f->bridge.fail_create = true;
    req.pre_flow_id = NULL;
    assert_true(conference_create(f->m, CUST, &req, &c, &e) < 0);
    assert_int_equal(e.status, ERR_UNAVAILABLE);
}

static void test_isolation(void **state)
{
    struct fx *f = *state;
    struct conference c, x;
    struct error e;
    create(f, "conference", 0, &c);
    assert_true(conference_get(f->m, OTHER, c.id, &x, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    assert_string_equal(e.reason, "CONFERENCE_NOT_FOUND");
    assert_true(conference_delete(f->m, OTHER, c.id, &x, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    conference_fini(&c);
}

static void test_join_order_and_events(void **state)
{
    struct fx *f = *state;
    struct conference c;
    create(f, "conference", 0, &c);
    struct conferencecall a, b, d;
    join(f, c.id, &a);
    join(f, c.id, &b);
    join(f, c.id, &d);
    reload(f, c.id, &c);
    assert_int_equal(c.n_call_ids, 3);
    assert_string_equal(c.call_ids[0], a.id);
    assert_string_equal(c.call_ids[1], b.id);
    assert_string_equal(c.call_ids[2], d.id);
    assert_int_equal(cc_status_of(f, a.id), CC_JOINED);
    int i = event_log_find(&f->log, 0, "conferencecall_joining", a.id);
    int j = event_log_find(&f->log, 0, "conferencecall_joined", a.id);
    assert_true(i >= 0 && j > i);
    assert_int_equal(event_log_count(&f->log, "conferencecall_joined"), 3);
    conference_fini(&c);
}

static void test_joining_listed_before_connect(void **state)
{
    struct fx *f = *state;
    struct conference c;
    create(f, "conference", 0, &c);
    char call[ID_LEN + 1];
    id_new(call);
    struct conferencecall cc;
    struct error e;
    assert_int_equal(conference_join(f->m, c.id, CC_REFERENCE_CALL, call, NULL, &cc, &e), 0);
    reload(f, c.id, &c);
    assert_int_equal(c.n_call_ids, 1); /* joining counts */
    assert_int_equal(f->bridge.joins, 0);
    conference_fini(&c);
}

static void test_join_refused(void **state)
{
    struct fx *f = *state;
    struct conference c, x;
    struct conferencecall a, b, cc;
    struct error e;
    create(f, "connect", 0, &c);
    join(f, c.id, &a);
    join(f, c.id, &b);
    assert_true(conference_join(f->m, c.id, CC_REFERENCE_CALL, a.reference_id, NULL, &cc, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    assert_string_equal(e.reason, "CONFERENCE_FULL");
    create(f, "conference", 0, &x);
    struct conference y;
    assert_int_equal(conference_delete(f->m, CUST, x.id, &y, &e), 0);
    assert_true(conference_join(f->m, x.id, CC_REFERENCE_CALL, a.reference_id, NULL, &cc, &e) < 0);
    assert_string_equal(e.reason, "CONFERENCE_NOT_PROGRESSING");
    char unknown[ID_LEN + 1];
    id_new(unknown);
    assert_true(conference_join(f->m, unknown, CC_REFERENCE_CALL, a.reference_id, NULL, &cc, &e) <
                0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    conference_fini(&c);
    conference_fini(&x);
    conference_fini(&y);
}

static void test_kick_rules(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall a, out;
    struct error e;
    create(f, "conference", 0, &c);
    f->bridge.auto_answer = false;
    join(f, c.id, &a);
    conference_on_joined(f->m, a.id);
    assert_int_equal(conference_kick(f->m, CUST, a.id, &out, &e), 0);
    assert_int_equal(out.status, CC_LEAVING);
    assert_int_equal(f->bridge.kicks, 1);
    reload(f, c.id, &c);
    assert_int_equal(c.n_call_ids, 0); /* leaving is no longer listed */
    /* a second kick while leaving: 409 */
    assert_true(conference_kick(f->m, CUST, a.id, &out, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    assert_string_equal(e.reason, "STATE_INVALID");
    conference_on_leaved(f->m, a.id);
    assert_int_equal(cc_status_of(f, a.id), CC_LEAVED);
    assert_true(conference_kick(f->m, CUST, a.id, &out, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    /* another customer cannot see or kick it */
    assert_true(conference_kick(f->m, OTHER, a.id, &out, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    /* the call's flow was told, and the conference stays progressing */
    assert_int_equal(f->calls.n_left, 1);
    assert_string_equal(f->calls.left[0], a.reference_id);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_PROGRESSING);
    int i = event_log_find(&f->log, 0, "conferencecall_leaving", a.id);
    int j = event_log_find(&f->log, 0, "conferencecall_leaved", a.id);
    assert_true(i >= 0 && j > i);
    conference_fini(&c);
}

static void test_kick_joining_not_in_bridge(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall cc, out;
    struct error e;
    create(f, "conference", 0, &c);
    char call[ID_LEN + 1];
    id_new(call);
    assert_int_equal(conference_join(f->m, c.id, CC_REFERENCE_CALL, call, NULL, &cc, &e), 0);
    assert_int_equal(conference_kick(f->m, CUST, cc.id, &out, &e), 0);
    assert_int_equal(out.status, CC_LEAVED); /* nothing to take out of the bridge */
    assert_int_equal(f->bridge.kicks, 0);
    /* a late connect is refused */
    assert_true(conference_connect(f->m, cc.id, &e) < 0);
    conference_fini(&c);
}

static void test_hangup_leave_idempotent(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall a;
    create(f, "conference", 0, &c);
    join(f, c.id, &a);
    conference_leave(f->m, a.id);
    conference_leave(f->m, a.id);
    assert_int_equal(cc_status_of(f, a.id), CC_LEAVED);
    assert_int_equal(event_log_count(&f->log, "conferencecall_leaved"), 1);
    conference_fini(&c);
}

static void test_connect_eject(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall a, b;
    create(f, "connect", 0, &c);
    join(f, c.id, &a);
    join(f, c.id, &b);
    size_t before = f->log.n;
    conference_leave(f->m, a.id); /* a hangs up */
    assert_int_equal(cc_status_of(f, a.id), CC_LEAVED);
    assert_int_equal(cc_status_of(f, b.id), CC_LEAVED); /* b ejected */
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_TERMINATED);
    assert_true(c.tm_end > 0);
    assert_int_equal(c.tm_delete, TM_NEVER); /* ended, not deleted */
    assert_int_equal(f->bridge.destroys, 1);
    int i = event_log_find(&f->log, before, "conference_deleted", c.id);
    assert_true(i >= 0);
    assert_string_equal(f->log.status[i], "terminated");
    /* both calls' flows go on, and the second one sees the conference ended */
    assert_int_equal(f->calls.n_left, 2);
    conference_fini(&c);
}

static void test_delete_with_participants(void **state)
{
    struct fx *f = *state;
    struct conference c, d;
    struct conferencecall a, b;
    struct error e;
    create(f, "conference", 0, &c);
    f->bridge.auto_answer = false;
    join(f, c.id, &a);
    conference_on_joined(f->m, a.id);
    join(f, c.id, &b);
    conference_on_joined(f->m, b.id);
    size_t before = f->log.n;
    assert_int_equal(conference_delete(f->m, CUST, c.id, &d, &e), 0);
    assert_int_equal(d.status, CONFERENCE_TERMINATING);
    assert_true(d.tm_delete != TM_NEVER);
    assert_int_equal(d.tm_end, 0);
    assert_int_equal(f->bridge.kicks, 2);
    int i = event_log_find(&f->log, before, "conference_deleted", c.id);
    assert_true(i >= 0);
    assert_string_equal(f->log.status[i], "terminating");
    /* the direct hash stops working at once */
    struct conference x;
    assert_true(conference_find_by_hash(f->m, c.direct_hash, &x, &e) < 0);
    conference_on_leaved(f->m, a.id);
    reload(f, c.id, &d);
    assert_int_equal(d.status, CONFERENCE_TERMINATING);
    conference_on_leaved(f->m, b.id);
    reload(f, c.id, &d);
    assert_int_equal(d.status, CONFERENCE_TERMINATED);
    assert_true(d.tm_end > 0);
    assert_int_equal(event_log_count(&f->log, "conference_deleted"), 2);
    /* the post-flow decision sees the ended conference */
    assert_int_equal(f->calls.left_conf_status[1], CONFERENCE_TERMINATED);
    conference_fini(&c);
    conference_fini(&d);
}

static void test_delete_empty_and_twice(void **state)
{
    struct fx *f = *state;
    struct conference c, d;
    struct error e;
    create(f, "conference", 0, &c);
    assert_int_equal(conference_delete(f->m, CUST, c.id, &d, &e), 0);
    assert_int_equal(d.status, CONFERENCE_TERMINATED);
    assert_true(d.tm_end > 0);
    int64_t tm_delete = d.tm_delete;
    size_t events = f->log.n;
    conference_fini(&d);
    sched_advance(f->sched, SEC);
    assert_int_equal(conference_delete(f->m, CUST, c.id, &d, &e), 0);
    assert_int_equal(d.tm_delete, tm_delete);
    assert_int_equal(f->log.n, events); /* nothing happened */
    struct conference_update_req up = {.name = "x"};
    conference_fini(&d);
    assert_true(conference_update(f->m, CUST, c.id, &up, &d, &e) < 0);
    assert_string_equal(e.reason, "STATE_INVALID");
    assert_true(conference_regenerate_hash(f->m, CUST, c.id, &d, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    conference_fini(&c);
}

static void test_timeout(void **state)
{
    struct fx *f = *state;
    struct conference c;
    create(f, "conference", 10, &c);
    sched_advance(f->sched, 9 * SEC);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_PROGRESSING);
    sched_advance(f->sched, 2 * SEC);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_TERMINATED);
    assert_true(c.tm_delete != TM_NEVER);
    conference_fini(&c);
}

static void test_timeout_replaced_and_cancelled(void **state)
{
    struct fx *f = *state;
    struct conference c, d;
    struct error e;
    create(f, "conference", 10, &c);
    sched_advance(f->sched, 8 * SEC);
    struct conference_update_req up = {.has_timeout = true, .timeout = 10};
    assert_int_equal(conference_update(f->m, CUST, c.id, &up, &d, &e), 0);
    conference_fini(&d);
    sched_advance(f->sched, 5 * SEC); /* 13 s after create: the old timer would have fired */
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_PROGRESSING);
    up.timeout = 0;
    assert_int_equal(conference_update(f->m, CUST, c.id, &up, &d, &e), 0);
    conference_fini(&d);
    sched_advance(f->sched, 3600 * SEC);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_PROGRESSING);
    assert_int_equal(c.timeout, 0);
    conference_fini(&c);
}

static void test_timeout_survives_restart(void **state)
{
    struct fx *f = *state;
    struct conference c;
    create(f, "conference", 30, &c);
    conference_mgr_destroy(f->m);
    sched_advance(f->sched, 20 * SEC); /* the server was down for 20 s */
    make_mgr(f);
    assert_int_equal(conference_mgr_recover(f->m), 0);
    sched_advance(f->sched, 9 * SEC);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_PROGRESSING);
    sched_advance(f->sched, 2 * SEC);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_TERMINATED);
    conference_fini(&c);
}

static void test_expired_while_down(void **state)
{
    struct fx *f = *state;
    struct conference c;
    create(f, "conference", 5, &c);
    conference_mgr_destroy(f->m);
    sched_advance(f->sched, 60 * SEC);
    make_mgr(f);
    assert_int_equal(conference_mgr_recover(f->m), 0);
    sched_advance(f->sched, 0);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_TERMINATED);
    conference_fini(&c);
}

static void test_health_call_down(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall a;
    create(f, "conference", 0, &c);
    join(f, c.id, &a);
    sched_advance(f->sched, 30 * SEC);
    assert_int_equal(cc_status_of(f, a.id), CC_JOINED);
    fake_calls_set_up(&f->calls, a.reference_id, false);
    sched_advance(f->sched, 10 * SEC); /* two failed checks */
    assert_int_equal(cc_status_of(f, a.id), CC_JOINED);
    sched_advance(f->sched, 5 * SEC); /* third */
    assert_int_equal(cc_status_of(f, a.id), CC_LEAVED);
    assert_int_equal(conference_mgr_active_participants(f->m), 0);
    conference_fini(&c);
}

static void test_health_recovers(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall a;
    create(f, "conference", 0, &c);
    join(f, c.id, &a);
    fake_calls_set_up(&f->calls, a.reference_id, false);
    sched_advance(f->sched, 10 * SEC); /* two failures */
    fake_calls_set_up(&f->calls, a.reference_id, true);
    sched_advance(f->sched, 5 * SEC); /* success resets the count */
    fake_calls_set_up(&f->calls, a.reference_id, false);
    sched_advance(f->sched, 10 * SEC);
    assert_int_equal(cc_status_of(f, a.id), CC_JOINED);
    conference_fini(&c);
}

static void test_health_max_age(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall a;
    create(f, "conference", 0, &c);
    join(f, c.id, &a);
    sched_advance(f->sched, 24 * 3600 * SEC - 60 * SEC);
    assert_int_equal(cc_status_of(f, a.id), CC_JOINED);
    sched_advance(f->sched, 90 * SEC);
    assert_int_equal(cc_status_of(f, a.id), CC_LEAVED);
    conference_fini(&c);
}

/* The health checks of one room's participants share their read of the conference: a room of 20
 * checked twice each (40 checks) reads it a few times, not 40; and a conference that stops
 * progressing is still seen within a second of the checks. */
static const struct store_ops *real_ops;
static int conference_reads;

static int counting_conference_get(struct store *s, const char *customer_id, const char *id,
                                   struct conference *out)
{
    conference_reads++;
    return real_ops->conference_get(s, customer_id, id, out);
}

static void test_health_reads_shared(void **state)
{
    struct fx *f = *state;
    struct store_ops counting = *f->store->ops;
    counting.conference_get = counting_conference_get;
    real_ops = f->store->ops;
    struct conference c;
    create(f, "conference", 0, &c);
    struct conferencecall cc[20];
    for (int i = 0; i < 20; i++) {
        join(f, c.id, &cc[i]);
        sched_advance(f->sched, 100000); /* spread over 2 s, as calls arrive */
    }
    f->store->ops = &counting;
    conference_reads = 0;
    sched_advance(f->sched, 10 * SEC);
    f->store->ops = real_ops;
    if (conference_reads > 8)
        fail_msg("%d reads of the conference for 40 health checks", conference_reads);
    for (int i = 0; i < 20; i++)
        assert_int_equal(cc_status_of(f, cc[i].id), CC_JOINED);
    conference_fini(&c);
}

static void test_health_stuck_leaving(void **state)
{
    struct fx *f = *state;
    struct conference c;
    struct conferencecall a, out;
    struct error e;
    create(f, "conference", 0, &c);
    f->bridge.auto_answer = false;
    join(f, c.id, &a);
    conference_on_joined(f->m, a.id);
    assert_int_equal(conference_kick(f->m, CUST, a.id, &out, &e), 0);
    sched_advance(f->sched, 16 * SEC); /* the bridge never answered */
    assert_int_equal(cc_status_of(f, a.id), CC_LEAVED);
    conference_fini(&c);
}

static void test_restart_terminating(void **state)
{
    struct fx *f = *state;
    struct conference c, d;
    struct conferencecall a;
    struct error e;
    create(f, "conference", 0, &c);
    f->bridge.auto_answer = false;
    join(f, c.id, &a);
    conference_on_joined(f->m, a.id);
    assert_int_equal(conference_delete(f->m, CUST, c.id, &d, &e), 0);
    conference_fini(&d);
    conference_mgr_destroy(f->m); /* crash before the bridge answered */
    make_mgr(f);
    assert_int_equal(conference_mgr_recover(f->m), 0);
    sched_advance(f->sched, 16 * SEC);
    reload(f, c.id, &c);
    assert_int_equal(c.status, CONFERENCE_TERMINATED);
    assert_int_equal(cc_status_of(f, a.id), CC_LEAVED);
    conference_fini(&c);
}

static void test_regenerate_hash(void **state)
{
    struct fx *f = *state;
    struct conference c, d, x;
    struct error e;
    create(f, "conference", 0, &c);
    assert_int_equal(conference_find_by_hash(f->m, c.direct_hash, &x, &e), 0);
    conference_fini(&x);
    assert_int_equal(conference_regenerate_hash(f->m, CUST, c.id, &d, &e), 0);
    assert_string_not_equal(d.direct_hash, c.direct_hash);
    assert_true(conference_find_by_hash(f->m, c.direct_hash, &x, &e) < 0);
    assert_int_equal(conference_find_by_hash(f->m, d.direct_hash, &x, &e), 0);
    assert_string_equal(x.id, c.id);
    conference_fini(&x);
    conference_fini(&c);
    conference_fini(&d);
}

static void test_update_fields(void **state)
{
    struct fx *f = *state;
    struct conference c, d;
    struct error e;
    create(f, "conference", 0, &c);
    sched_advance(f->sched, SEC);
    struct conference_update_req up = {.detail = "new", .data = "{\"k\":1}"};
    assert_int_equal(conference_update(f->m, CUST, c.id, &up, &d, &e), 0);
    assert_string_equal(d.name, "room"); /* unchanged */
    assert_string_equal(d.detail, "new");
    assert_string_equal(d.data, "{\"k\":1}");
    assert_true(d.tm_update > d.tm_create);
    assert_true(event_log_find(&f->log, 0, "conference_updated", c.id) >= 0);
    conference_fini(&c);
    conference_fini(&d);
}

static void create_for(struct fx *f, const char *customer, struct conference *out)
{
    struct conference_create_req req = {.type = "conference"};
    struct error e;
    assert_int_equal(conference_create(f->m, customer, &req, out, &e), 0);
}

static void expect_too_many(struct fx *f, const char *customer, int limit)
{
    struct conference_create_req req = {.type = "conference"};
    struct conference c;
    struct error e;
    assert_int_equal(conference_create(f->m, customer, &req, &c, &e), -ERR_RESOURCE_EXHAUSTED);
    assert_int_equal(e.status, ERR_RESOURCE_EXHAUSTED);
    assert_string_equal(e.reason, "TOO_MANY_CONFERENCES");
    char want[32];
    snprintf(want, sizeof(want), "is %d", limit);
    assert_non_null(strstr(e.message, "max_conferences"));
    assert_non_null(strstr(e.message, want));
}

/* max_conferences counts a customer's conferences until they are terminated: a terminating one
 * (participants still leaving) still counts; other customers are not affected. */
static void test_max_conferences(void **state)
{
    struct fx *f = *state;
    conference_mgr_destroy(f->m);
    f->max_conferences = 3;
    make_mgr(f);
    struct conference c[3], d, x;
    struct conferencecall a;
    struct error e;
    for (int i = 0; i < 3; i++)
        create_for(f, CUST, &c[i]);
    int creates = f->bridge.creates;
    expect_too_many(f, CUST, 3);
    assert_int_equal(f->bridge.creates, creates); /* refused before anything was set up */
    create_for(f, OTHER, &x);                     /* per customer */
    conference_fini(&x);

    f->bridge.auto_answer = false;
    join(f, c[0].id, &a);
    conference_on_joined(f->m, a.id);
    assert_int_equal(conference_delete(f->m, CUST, c[0].id, &d, &e), 0);
    assert_int_equal(d.status, CONFERENCE_TERMINATING);
    conference_fini(&d);
    expect_too_many(f, CUST, 3); /* terminating still counts */
    conference_on_leaved(f->m, a.id);
    reload(f, c[0].id, &c[0]);
    assert_int_equal(c[0].status, CONFERENCE_TERMINATED);
    create_for(f, CUST, &x); /* the slot is free again */
    conference_fini(&x);
    expect_too_many(f, CUST, 3);

    /* a timeout ends one as well (OTHER has one already) */
    struct conference t;
    struct conference_create_req req = {.type = "conference", .has_timeout = true, .timeout = 5};
    assert_int_equal(conference_create(f->m, OTHER, &req, &t, &e), 0);
    conference_fini(&t);
    create_for(f, OTHER, &x);
    conference_fini(&x);
    expect_too_many(f, OTHER, 3);
    sched_advance(f->sched, 6 * SEC);
    create_for(f, OTHER, &x);
    conference_fini(&x);
    expect_too_many(f, OTHER, 3);
    for (int i = 0; i < 3; i++)
        conference_fini(&c[i]);
}

/* The store holds more live conferences than the new max_conferences allows: recovery brings every
 * one back (bridges set up, timeouts armed), new ones are refused until enough have ended. */
static void test_recover_beyond_limit(void **state)
{
    struct fx *f = *state;
    struct conference c[6], d;
    struct error e;
    for (int i = 0; i < 6; i++) {
        struct conference_create_req req = {
            .type = "conference", .has_timeout = i == 5, .timeout = 30};
        assert_int_equal(conference_create(f->m, CUST, &req, &c[i], &e), 0);
    }
    conference_mgr_destroy(f->m);
    f->max_conferences = 2;
    make_mgr(f);
    int creates = f->bridge.creates;
    assert_int_equal(conference_mgr_recover(f->m), 0);
    assert_int_equal(f->bridge.creates, creates + 6);
    for (int i = 0; i < 6; i++) {
        reload(f, c[i].id, &c[i]);
        assert_int_equal(c[i].status, CONFERENCE_PROGRESSING);
    }
    expect_too_many(f, CUST, 2);
    struct conference x;
    create_for(f, OTHER, &x);
    conference_fini(&x);
    sched_advance(f->sched, 31 * SEC); /* the recovered timeout still fires */
    reload(f, c[5].id, &c[5]);
    assert_int_equal(c[5].status, CONFERENCE_TERMINATED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(conference_delete(f->m, CUST, c[i].id, &d, &e), 0);
        conference_fini(&d);
        expect_too_many(f, CUST, 2); /* 4, 3, then 2 left: still at the limit */
    }
    assert_int_equal(conference_delete(f->m, CUST, c[3].id, &d, &e), 0);
    conference_fini(&d);
    create_for(f, CUST, &x); /* 1 left: one more fits */
    conference_fini(&x);
    expect_too_many(f, CUST, 2);

    /* recovering again (a second restart) counts the same */
    conference_mgr_destroy(f->m);
    make_mgr(f);
    assert_int_equal(conference_mgr_recover(f->m), 0);
    expect_too_many(f, CUST, 2);
    for (int i = 0; i < 6; i++)
        conference_fini(&c[i]);
}

static void test_set_recording(void **state)
{
    struct fx *f = *state;
    struct conference c, got;
    struct error e;
    create(f, "conference", 0, &c);
    size_t before = f->log.n;
    const char *r1 = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
               *r2 = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
    assert_int_equal(conference_set_recording(f->m, c.id, r1), 0);
    assert_true(event_log_find(&f->log, before, "conference_updated", c.id) >= 0);
    assert_int_equal(conference_set_recording(f->m, c.id, ID_NIL), 0);
    assert_int_equal(conference_set_recording(f->m, c.id, r2), 0);
    assert_int_equal(conference_get(f->m, CUST, c.id, &got, &e), 0);
    assert_string_equal(got.recording_id, r2);
    char want[128];
    snprintf(want, sizeof(want), "[\"%s\",\"%s\"]", r1, r2);
    assert_string_equal(got.recording_ids, want);
    conference_fini(&got);
    assert_true(conference_set_recording(f->m, "cccccccc-cccc-4ccc-8ccc-cccccccccccc", r1) < 0);
    conference_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_recording, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_order_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_joining_listed_before_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_joining_not_in_bridge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_leave_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_eject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_with_participants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_empty_and_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_replaced_and_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_while_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_call_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_max_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_stuck_leaving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_reads_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_terminating, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regenerate_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conferences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_beyond_limit, setup, teardown),
    };
    return cmocka_run_group_tests_name("conference", tests, NULL, NULL);
}
