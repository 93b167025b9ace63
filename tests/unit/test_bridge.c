/* The conference bridge on the real media engine (loopback ports) with fake call legs and a
 * report recorder: rooms with their conference, a join confirmed by the engine, a kick confirmed
 * by the engine or at once when nothing is in the room, a destroyed room taking its legs out, a
 * call that ends during its leave, and the leg events that are the call's handed on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/bridge.h"
#include "fakes.h"

struct fx {
    uv_loop_t loop;
    struct media_engine *e;
    struct bridge *b;
    struct conference_bridge ops;
    struct fake_legs legs;
    struct fake_reports reports;
    struct conference conf;
    struct media_leg *made[8];
    size_t n_made;
};

static void on_event(void *ctx, const struct media_event *ev)
{
    struct fx *f = ctx;
    bridge_on_media_event(f->b, ev);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct media_config cfg = {.bind_ip = "127.0.0.1",
                               .port_min = 48100,
                               .port_max = 48139,
                               .threads = 1,
                               .rtp_timeout_ms = 30000};
    char err[160];
    f->e = media_engine_create(&f->loop, &cfg, on_event, f, err, sizeof(err));
    assert_non_null(f->e);
    struct bridge_deps d = {.media = f->e,
                            .legs = fake_legs_iface(&f->legs),
                            .reports = fake_reports_iface(&f->reports)};
    f->b = bridge_create(&d);
    f->ops = bridge_conference_iface(f->b);
    id_new(f->conf.id);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < f->n_made; i++)
        if (f->made[i])
            media_leg_destroy(f->e, f->made[i]);
    bridge_destroy(f->b);
    media_engine_destroy(f->e);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* A live call with a media leg: its id in call_id. */
static struct media_leg *call_new(struct fx *f, char call_id[ID_LEN + 1])
{
    id_new(call_id);
    char err[160];
    struct media_leg *l = media_leg_create(f->e, call_id, err, sizeof(err));
    assert_non_null(l);
    f->made[f->n_made++] = l;
    fake_legs_set(&f->legs, call_id, l, false);
    return l;
}

/* The call is over: its leg destroyed, the bridge told. */
static void call_end(struct fx *f, const char *call_id)
{
    for (size_t i = 0; i < f->n_made; i++) {
        if (f->made[i] && !strcmp(media_leg_key(f->made[i]), call_id)) {
            media_leg_destroy(f->e, f->made[i]);
            f->made[i] = NULL;
        }
    }
    fake_legs_set(&f->legs, call_id, NULL, true);
    bridge_on_call_ended(f->b, call_id);
}

static void participant(struct fx *f, const char *call_id, struct conferencecall *cc)
{
    memset(cc, 0, sizeof(*cc));
    id_new(cc->id);
    memcpy(cc->conference_id, f->conf.id, ID_LEN + 1);
    cc->reference_type = CC_REFERENCE_CALL;
    memcpy(cc->reference_id, call_id, ID_LEN + 1);
}

/* Runs the loop until the recorder holds joined/leaved reports (or 2 s pass). */
static void wait_reports(struct fx *f, size_t joined, size_t leaved)
{
    int64_t end = now_ms() + 2000;
    while ((f->reports.n_joined < joined || f->reports.n_leaved < leaved) && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(f->reports.n_joined, joined);
    assert_int_equal(f->reports.n_leaved, leaved);
}

/* Runs the loop for ms (nothing more is expected). */
static void settle(struct fx *f, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static void test_join_and_kick(void **state)
{
    struct fx *f = *state;
    assert_null(bridge_room(f->b, f->conf.id));
    assert_int_equal(f->ops.create(f->ops.ctx, &f->conf), 0);
    struct media_room *room = bridge_room(f->b, f->conf.id);
    assert_non_null(room);
    assert_int_equal(bridge_rooms(f->b), 1);
    assert_int_equal(f->ops.create(f->ops.ctx, &f->conf), 0); /* recovered: the same room */
    assert_ptr_equal(bridge_room(f->b, f->conf.id), room);

    char call[ID_LEN + 1];
    struct media_leg *leg = call_new(f, call);
    assert_ptr_equal(bridge_call_leg(f->b, call), leg);
    struct conferencecall cc;
    participant(f, call, &cc);
    assert_int_equal(f->ops.join(f->ops.ctx, &cc), 0);
    assert_int_equal(f->reports.n_joined, 0); /* the engine confirms */
    wait_reports(f, 1, 0);
    assert_string_equal(f->reports.joined[0], cc.id);
    struct media_stats st;
    media_engine_stats(f->e, &st);
    assert_int_equal(st.rooms, 1);

    f->ops.kick(f->ops.ctx, &cc);
    assert_int_equal(f->reports.n_leaved, 0);
    wait_reports(f, 1, 1);
    assert_string_equal(f->reports.leaved[0], cc.id);

    /* out of the room: the call may join again, as another participant */
    struct conferencecall cc2;
    participant(f, call, &cc2);
    assert_int_equal(f->ops.join(f->ops.ctx, &cc2), 0);
    wait_reports(f, 2, 1);
    assert_string_equal(f->reports.joined[1], cc2.id);
}

static void test_join_refused(void **state)
{
    struct fx *f = *state;
    struct conferencecall cc;
    char unknown[ID_LEN + 1];
    id_new(unknown);
    participant(f, unknown, &cc);
    assert_int_equal(f->ops.join(f->ops.ctx, &cc), -1); /* no such call */
    assert_null(bridge_call_leg(f->b, unknown));

    char call[ID_LEN + 1];
    struct media_leg *leg = call_new(f, call);
    fake_legs_set(&f->legs, call, leg, true); /* hanging up */
    participant(f, call, &cc);
    assert_int_equal(f->ops.join(f->ops.ctx, &cc), -1);

    fake_legs_set(&f->legs, call, leg, false);
    assert_null(bridge_room(f->b, f->conf.id));
    assert_int_equal(f->ops.join(f->ops.ctx, &cc), 0); /* the room comes with the first join */
    assert_non_null(bridge_room(f->b, f->conf.id));
    struct conferencecall again;
    participant(f, call, &again);
    assert_int_equal(f->ops.join(f->ops.ctx, &again), -1); /* its audio is taken already */
    wait_reports(f, 1, 0);
    assert_int_equal(f->ops.join(f->ops.ctx, &again), -1);
    settle(f, 50);
    assert_int_equal(f->reports.n_joined, 1);
}

static void test_kick_with_nothing_in_the_room(void **state)
{
    struct fx *f = *state;
    char call[ID_LEN + 1];
    call_new(f, call);
    struct conferencecall cc;
    participant(f, call, &cc);
    f->ops.kick(f->ops.ctx, &cc); /* never joined: confirmed at once */
    assert_int_equal(f->reports.n_leaved, 1);
    assert_string_equal(f->reports.leaved[0], cc.id);

    assert_int_equal(f->ops.join(f->ops.ctx, &cc), 0);
    wait_reports(f, 1, 1);
    struct conferencecall other;
    participant(f, call, &other); /* another participant of the same call */
    f->ops.kick(f->ops.ctx, &other);
    assert_int_equal(f->reports.n_leaved, 2);
    assert_string_equal(f->reports.leaved[1], other.id);
    settle(f, 50);
    assert_int_equal(f->reports.n_leaved, 2); /* cc's audio stays in */
    f->ops.kick(f->ops.ctx, &cc);
    wait_reports(f, 1, 3);
    assert_string_equal(f->reports.leaved[2], cc.id);
}

static void test_destroy_takes_the_legs_out(void **state)
{
    struct fx *f = *state;
    assert_int_equal(f->ops.create(f->ops.ctx, &f->conf), 0);
    char a[ID_LEN + 1], b[ID_LEN + 1];
    call_new(f, a);
    call_new(f, b);
    struct conferencecall ca, cb;
    participant(f, a, &ca);
    participant(f, b, &cb);
    assert_int_equal(f->ops.join(f->ops.ctx, &ca), 0);
    assert_int_equal(f->ops.join(f->ops.ctx, &cb), 0);
    wait_reports(f, 2, 0);
    f->ops.destroy(f->ops.ctx, f->conf.id);
    assert_null(bridge_room(f->b, f->conf.id));
    assert_int_equal(bridge_rooms(f->b), 0);
    wait_reports(f, 2, 2);
    bool saw_a = !strcmp(f->reports.leaved[0], ca.id) || !strcmp(f->reports.leaved[1], ca.id);
    bool saw_b = !strcmp(f->reports.leaved[0], cb.id) || !strcmp(f->reports.leaved[1], cb.id);
    assert_true(saw_a && saw_b);
    f->ops.destroy(f->ops.ctx, f->conf.id); /* again: nothing */
}

static void test_call_ended_during_its_leave(void **state)
{
    struct fx *f = *state;
    char a[ID_LEN + 1], b[ID_LEN + 1];
    call_new(f, a);
    call_new(f, b);
    struct conferencecall ca, cb;
    participant(f, a, &ca);
    participant(f, b, &cb);
    assert_int_equal(f->ops.join(f->ops.ctx, &ca), 0);
    assert_int_equal(f->ops.join(f->ops.ctx, &cb), 0);
    wait_reports(f, 2, 0);

    f->ops.kick(f->ops.ctx, &ca);
    call_end(f, a); /* before the engine confirms: its report died with the leg */
    assert_int_equal(f->reports.n_leaved, 1);
    assert_string_equal(f->reports.leaved[0], ca.id);

    call_end(f, b); /* in the room, no leave asked: nothing to report */
    settle(f, 100);
    assert_int_equal(f->reports.n_leaved, 1);
    bridge_on_call_ended(f->b, a); /* unknown by now */
    assert_int_equal(f->reports.n_leaved, 1);
}

static void test_call_events_go_to_the_calls(void **state)
{
    struct fx *f = *state;
    char call[ID_LEN + 1];
    struct media_leg *leg = call_new(f, call);
    enum media_event_type types[] = {MEDIA_LEG_DTMF, MEDIA_LEG_TIMEOUT, MEDIA_LEG_PLAY_DONE};
    for (size_t i = 0; i < 3; i++) {
        struct media_event ev = {.type = types[i], .leg = leg, .digit = '5'};
        bridge_on_media_event(f->b, &ev);
    }
    assert_int_equal(f->legs.n_events, 3);
    assert_int_equal(f->legs.events[0], MEDIA_LEG_DTMF);
    assert_int_equal(f->legs.events[2], MEDIA_LEG_PLAY_DONE);
    /* joined/left of a leg the bridge did not join: not the calls', and not reported */
    struct media_event joined = {.type = MEDIA_LEG_JOINED, .leg = leg};
    struct media_event left = {.type = MEDIA_LEG_LEFT, .leg = leg};
    bridge_on_media_event(f->b, &joined);
    bridge_on_media_event(f->b, &left);
    assert_int_equal(f->legs.n_events, 3);
    assert_int_equal(f->reports.n_joined + f->reports.n_leaved, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_join_and_kick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_with_nothing_in_the_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_takes_the_legs_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_ended_during_its_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_events_go_to_the_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
