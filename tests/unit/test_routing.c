/* Routing of incoming calls on a fake directory of conferences and numbers: a direct URI (both
 * spellings) runs answer + conference_join of a progressing conference, other conferences refuse
 * with 403 (not progressing), 486 (a full connect conference) or 404; a number runs its call
 * flow, a number without one or an unknown user is 404. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakes.h"
#include "routing/routing.h"

static const char *CUST = "11111111-1111-4111-8111-111111111111";
static const char *FLOW = "44444444-4444-4444-8444-444444444444";
static const char *HASH = "direct.0123456789ab";

struct fx {
    struct fake_directory dir;
    struct routing *r;
    struct conference conf;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    id_new(f->conf.id);
    memcpy(f->conf.customer_id, CUST, ID_LEN + 1);
    f->conf.status = CONFERENCE_PROGRESSING;
    f->conf.type = CONFERENCE_TYPE_CONFERENCE;
    snprintf(f->conf.direct_hash, sizeof(f->conf.direct_hash), "%s", HASH);
    struct routing_lookups l = fake_directory_iface(&f->dir);
    f->r = routing_create(&l);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    routing_destroy(f->r);
    fake_directory_fini(&f->dir);
    free(f);
    return 0;
}

static void test_direct_routes_to_conference(void **state)
{
    struct fx *f = *state;
    fake_directory_add_conference(&f->dir, &f->conf);
    const char *users[] = {"direct.0123456789ab", "direct.direct.0123456789ab"};
    for (size_t i = 0; i < 2; i++) {
        struct route rt;
        assert_int_equal(routing_route(f->r, users[i], &rt), 0);
        assert_int_equal(rt.refuse, 0);
        assert_string_equal(rt.customer_id, CUST);
        assert_string_equal(rt.flow_id, ID_NIL);
        assert_string_equal(rt.type, "conference");
        /* the built-in flow: answer, then conference_join of this conference */
        assert_non_null(rt.actions);
        assert_int_equal(json_array_size(rt.actions), 2);
        json_t *a0 = json_array_get(rt.actions, 0), *a1 = json_array_get(rt.actions, 1);
        assert_string_equal(json_string_value(json_object_get(a0, "type")), "answer");
        assert_string_equal(json_string_value(json_object_get(a1, "type")), "conference_join");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(a1, "option"), "conference_id")),
            f->conf.id);
        assert_non_null(json_object_get(a0, "id")); /* validated: every action has its id */
        json_decref(rt.actions);
    }
}

static void test_direct_refusals(void **state)
{
    struct fx *f = *state;
    struct route rt;
    /* no such conference */
    assert_int_equal(routing_route(f->r, "direct.ffffffffffff", &rt), 404);
    assert_null(rt.actions);
    /* not progressing */
    f->conf.status = CONFERENCE_TERMINATING;
    fake_directory_add_conference(&f->dir, &f->conf);
    assert_int_equal(routing_route(f->r, HASH, &rt), 403);
    assert_int_equal(rt.refuse, 403);
    assert_null(rt.actions);
    fake_directory_fini(&f->dir);
    /* a connect conference with its two parties */
    id_t_ calls[2];
    id_new(calls[0]);
    id_new(calls[1]);
    f->conf.status = CONFERENCE_PROGRESSING;
    f->conf.type = CONFERENCE_TYPE_CONNECT;
    f->conf.call_ids = calls;
    f->conf.n_call_ids = 2;
    fake_directory_add_conference(&f->dir, &f->conf);
    assert_int_equal(routing_route(f->r, HASH, &rt), 486);
    assert_null(rt.actions);
    fake_directory_fini(&f->dir);
    /* one party: room for the second */
    f->conf.n_call_ids = 1;
    fake_directory_add_conference(&f->dir, &f->conf);
    assert_int_equal(routing_route(f->r, HASH, &rt), 0);
    json_decref(rt.actions);
    f->conf.call_ids = NULL;
    f->conf.n_call_ids = 0;
}

static void test_number_routes_to_its_flow(void **state)
{
    struct fx *f = *state;
    fake_directory_add_number(&f->dir, "+15551234567", CUST, FLOW);
    struct route rt;
    assert_int_equal(routing_route(f->r, "+15551234567", &rt), 0);
    assert_string_equal(rt.customer_id, CUST);
    assert_string_equal(rt.flow_id, FLOW);
    assert_string_equal(rt.type, "flow");
    assert_null(rt.actions);
}

static void test_number_refusals(void **state)
{
    struct fx *f = *state;
    struct route rt;
    assert_int_equal(routing_route(f->r, "+15550000000", &rt), 404); /* unknown */
    assert_null(rt.actions);
    fake_directory_add_number(&f->dir, "+15559999999", CUST, ID_NIL); /* no call flow */
    assert_int_equal(routing_route(f->r, "+15559999999", &rt), 404);
    assert_null(rt.actions);
    assert_int_equal(routing_route(f->r, "", &rt), 404);
}

static void test_no_lookups_refuse(void **state)
{
    (void)state;
    struct routing_lookups none = {0};
    struct routing *r = routing_create(&none);
    struct route rt;
    assert_int_equal(routing_route(r, HASH, &rt), 404);
    assert_int_equal(routing_route(r, "+15551234567", &rt), 404);
    routing_destroy(r);
    routing_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_direct_routes_to_conference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_routes_to_its_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number_refusals, setup, teardown),
        cmocka_unit_test(test_no_lookups_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
