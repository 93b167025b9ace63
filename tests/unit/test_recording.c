/* Recording rules and lifecycle with a fake capture, fake targets and flows, an in-memory store
 * and a manual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "fakes.h"
#include "flow/activeflow.h"
#include "recording/recording.h"

static const char *CUST = "11111111-1111-4111-8111-111111111111";
static const char *OTHER = "22222222-2222-4222-8222-222222222222";
static const char *CONF = "33333333-3333-4333-8333-333333333333";
static const char *CALL = "44444444-4444-4444-8444-444444444444";
static const char *FLOW = "55555555-5555-4555-8555-555555555555";

struct fake_target {
    const char *id;
    bool progressing;
    id_t_ recording_id;
    int sets;
    char history[8][ID_LEN + 1];
    size_t n_history;
};

struct fx {
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct event_log log;
    struct recording_mgr *m;
    char dir[64];
    /* capture */
    bool fail_start;
    int starts, stops;
    char started_path[256];
    int64_t started_max_ms, started_silence_ms;
    char stopped[ID_LEN + 1];
    int64_t repair_ms; /* -1: repair fails */
    /* targets */
    struct fake_target conf, call;
    /* flows */
    int on_end_runs;
    int max_running;
    char on_end_id[ID_LEN + 1];
};

static int cap_start(void *ctx, const struct recording *rec, const char *path, int64_t max_ms,
                     int64_t silence_ms, struct error *e)
{
    struct fx *f = ctx;
    if (f->fail_start)
        return error_set(e, ERR_UNAVAILABLE, "RECORDING_UNAVAILABLE", "no room to tap");
    f->starts++;
    snprintf(f->started_path, sizeof(f->started_path), "%s", path);
    f->started_max_ms = max_ms;
    f->started_silence_ms = silence_ms;
    (void)rec;
    return 0;
}

static void cap_stop(void *ctx, const char *id)
{
    struct fx *f = ctx;
    f->stops++;
    snprintf(f->stopped, sizeof(f->stopped), "%s", id);
}

static int cap_repair(void *ctx, const char *path, int64_t *ms, int64_t *size)
{
    struct fx *f = ctx;
    (void)path;
    if (f->repair_ms < 0)
        return -1;
    *ms = f->repair_ms;
    *size = 44 + f->repair_ms * 16;
    return 0;
}

static struct fake_target *target(struct fx *f, enum recording_target t)
{
    return t == RECORDING_OF_CONFERENCE ? &f->conf : &f->call;
}

static int tg_get(void *ctx, enum recording_target t, const char *customer_id, const char *id,
                  struct recording_target_state *out, struct error *e)
{
    struct fake_target *ft = target(ctx, t);
    if (strcmp(id, ft->id) || (customer_id && strcmp(customer_id, CUST)))
        return error_set(e, ERR_NOT_FOUND, "NOT_FOUND", "no such %s", id);
    memcpy(out->customer_id, CUST, ID_LEN + 1);
    out->progressing = ft->progressing;
    memcpy(out->recording_id, ft->recording_id, ID_LEN + 1);
    return 0;
}

static int tg_set(void *ctx, enum recording_target t, const char *id, const char *rec)
{
    struct fake_target *ft = target(ctx, t);
    assert_string_equal(id, ft->id);
    ft->sets++;
    memcpy(ft->recording_id, rec, ID_LEN + 1);
    if (!id_is_nil(rec) && ft->n_history < 8)
        memcpy(ft->history[ft->n_history++], rec, ID_LEN + 1);
    return 0;
}

static bool fl_exists(void *ctx, const char *customer_id, const char *flow_id)
{
    (void)ctx;
    return !strcmp(customer_id, CUST) && !strcmp(flow_id, FLOW);
}

static void fl_on_end(void *ctx, const struct recording *rec)
{
    struct fx *f = ctx;
    f->on_end_runs++;
    memcpy(f->on_end_id, rec->id, ID_LEN + 1);
}

static void make_mgr(struct fx *f)
{
    struct recording_deps d = {
        .store = f->store,
        .bus = f->bus,
        .sched = f->sched,
        .capture = {f, cap_start, cap_stop, cap_repair},
        .targets = {f, tg_get, tg_set},
        .flows = {f, fl_exists, fl_on_end},
        .dir = f->dir,
        .max_running = f->max_running,
    };
    f->m = recording_mgr_create(&d);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    f->bus = events_bus_create();
    events_subscribe(f->bus, event_log_record, &f->log);
    f->sched = sched_create_manual(tm_now_us());
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_recording.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->conf.id = CONF;
    f->conf.progressing = true;
    memcpy(f->conf.recording_id, ID_NIL, ID_LEN + 1);
    f->call.id = CALL;
    f->call.progressing = true;
    memcpy(f->call.recording_id, ID_NIL, ID_LEN + 1);
    make_mgr(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    recording_mgr_destroy(f->m);
    sched_destroy(f->sched);
    events_bus_destroy(f->bus);
    store_close(f->store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void start_ok(struct fx *f, enum recording_target t, int64_t duration, const char *on_end,
                     struct recording *out)
{
    struct recording_start_req req = {
        .format = "wav", .duration = duration, .on_end_flow_id = on_end};
    struct error e;
    const char *id = target(f, t)->id;
    assert_int_equal(recording_start(f->m, t, CUST, id, &req, out, &e), 0);
}

static void captured(struct fx *f, const char *id, int64_t ms, int error)
{
    struct recording_captured c = {.id = id,
                                   .duration_ms = ms,
                                   .size = 44 + ms * 16,
                                   .frames_dropped = 1,
                                   .error = error,
                                   .message = error ? "write: No space left on device" : NULL};
    recording_on_captured(f->m, &c);
}

static void test_start_stop_conference(void **state)
{
    struct fx *f = *state;
    struct recording r, got;
    struct error e;
    start_ok(f, RECORDING_OF_CONFERENCE, 0, NULL, &r);
    assert_int_equal(r.status, RECORDING_RECORDING);
    assert_string_equal(r.reference_type, "confbridge");
    assert_string_equal(r.reference_id, CONF);
    assert_string_equal(r.owner_type, "conference");
    assert_string_equal(r.owner_id, CONF);
    assert_string_equal(r.format, "wav");
    assert_true(r.tm_start > 0);
    assert_int_equal(f->started_max_ms, INT64_C(86400000)); /* 0 = up to 24 h */
    char want[256];
    snprintf(want, sizeof(want), "%s/%s.wav", f->dir, r.id);
    assert_string_equal(f->started_path, want); /* the name never comes from the request */
    assert_string_equal(f->conf.recording_id, r.id);
    assert_int_equal(f->conf.n_history, 1);
    assert_true(event_log_find(&f->log, 0, "recording_started", r.id) >= 0);
    assert_int_equal(recording_mgr_running(f->m), 1);

    /* already recording */
    struct recording_start_req req = {0};
    assert_true(recording_start(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &req, &got, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    assert_string_equal(e.reason, "STATE_INVALID");
    assert_non_null(strstr(e.message, r.id));

    /* stop: stopping until the file is complete, the conference records nothing at once */
    assert_int_equal(recording_stop(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &e), 0);
    assert_int_equal(f->stops, 1);
    assert_string_equal(f->stopped, r.id);
    assert_string_equal(f->conf.recording_id, ID_NIL);
    assert_int_equal(recording_get(f->m, CUST, r.id, &got, &e), 0);
    assert_int_equal(got.status, RECORDING_STOPPING);
    assert_true(recording_stop(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    char path[256];
    assert_true(recording_file(f->m, CUST, r.id, path, sizeof(path), &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION); /* 409 while not ended */

    /* completed */
    FILE *fp = fopen(want, "w");
    assert_non_null(fp);
    fclose(fp);
    sched_advance(f->sched, 5000000);
    captured(f, r.id, 5020, 0);
    assert_int_equal(recording_get(f->m, CUST, r.id, &got, &e), 0);
    assert_int_equal(got.status, RECORDING_ENDED);
    assert_int_equal(got.duration_ms, 5020);
    assert_int_equal(got.size, 44 + 5020 * 16);
    assert_int_equal(got.frames_dropped, 1);
    assert_true(got.tm_end >= got.tm_start + 5000000);
    assert_true(event_log_find(&f->log, 0, "recording_finished", r.id) >= 0);
    assert_int_equal(recording_mgr_running(f->m), 0);
    assert_int_equal(recording_file(f->m, CUST, r.id, path, sizeof(path), &e), 0);
    assert_string_equal(path, want);
    assert_true(recording_file(f->m, OTHER, r.id, path, sizeof(path), &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    assert_int_equal(f->on_end_runs, 0);

    /* a second one, then the history holds both */
    struct recording r2;
    start_ok(f, RECORDING_OF_CONFERENCE, 5, NULL, &r2);
    assert_int_equal(f->started_max_ms, 5000);
    assert_int_equal(f->started_silence_ms, 0);
    assert_int_equal(f->conf.n_history, 2);
    assert_string_equal(f->conf.history[1], r2.id);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    struct recording out;
    struct error e;
    struct recording_start_req req = {.format = "mp3"};
    assert_true(recording_start(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &req, &out, &e) < 0);
    assert_int_equal(e.status, ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.message, "wav"));
    req = (struct recording_start_req){.duration = -1};
    assert_true(recording_start(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &req, &out, &e) < 0);
    assert_int_equal(e.status, ERR_INVALID_ARGUMENT);
    req = (struct recording_start_req){.on_end_flow_id = "66666666-6666-4666-8666-666666666666"};
    assert_true(recording_start(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &req, &out, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FLOW_ID");
    req = (struct recording_start_req){0};
    assert_true(recording_start(f->m, RECORDING_OF_CONFERENCE, OTHER, CONF, &req, &out, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    f->conf.progressing = false;
    assert_true(recording_start(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &req, &out, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    assert_int_equal(f->starts, 0);
    assert_true(recording_stop(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);

    /* the capture cannot start: an error, and the record says it ended */
    f->conf.progressing = true;
    f->fail_start = true;
    assert_true(recording_start(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &req, &out, &e) < 0);
    assert_int_equal(e.status, ERR_UNAVAILABLE);
    assert_string_equal(f->conf.recording_id, ID_NIL);
    struct recording *list;
    size_t n;
    assert_int_equal(recording_list(f->m, CUST, NULL, NULL, NULL, &list, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].status, RECORDING_ENDED);
    store_free_recordings(list, n);
    assert_int_equal(recording_mgr_running(f->m), 0);
}

static void test_ends_by_itself_and_on_end_flow(void **state)
{
    struct fx *f = *state;
    struct recording r, got;
    struct error e;
    start_ok(f, RECORDING_OF_CALL, 2, FLOW, &r);
    assert_string_equal(r.reference_type, "call");
    assert_string_equal(f->call.recording_id, r.id);
    assert_int_equal(f->started_max_ms, 2000);
    /* the capture ends on its own (duration, the room gone, a full disk): the call no longer
     * records, and the flow runs */
    struct recording_captured c = {
        .id = r.id, .duration_ms = 2000, .size = 32044, .reached_max = true};
    recording_on_captured(f->m, &c);
    assert_string_equal(f->call.recording_id, ID_NIL);
    assert_int_equal(f->stops, 0);
    assert_int_equal(f->on_end_runs, 1);
    assert_string_equal(f->on_end_id, r.id);
    assert_int_equal(recording_get(f->m, CUST, r.id, &got, &e), 0);
    assert_int_equal(got.status, RECORDING_ENDED);
    assert_int_equal(got.duration_ms, 2000);
    recording_on_captured(f->m, &c); /* again: ignored */
    assert_int_equal(f->on_end_runs, 1);

    /* a write error ends it the same way */
    start_ok(f, RECORDING_OF_CALL, 0, NULL, &r);
    captured(f, r.id, 1000, 28);
    assert_int_equal(recording_get(f->m, CUST, r.id, &got, &e), 0);
    assert_int_equal(got.status, RECORDING_ENDED);
    assert_int_equal(got.duration_ms, 1000);
    assert_string_equal(f->call.recording_id, ID_NIL);
}

static void test_delete(void **state)
{
    struct fx *f = *state;
    struct recording r, got;
    struct error e;
    char path[256];
    start_ok(f, RECORDING_OF_CONFERENCE, 0, NULL, &r);
    FILE *fp = fopen(f->started_path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_true(recording_delete(f->m, OTHER, r.id, &got, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    /* running: stopped first, the file goes once complete */
    assert_int_equal(recording_delete(f->m, CUST, r.id, &got, &e), 0);
    assert_int_equal(got.status, RECORDING_STOPPING);
    assert_true(got.tm_delete != TM_NEVER);
    assert_int_equal(f->stops, 1);
    assert_string_equal(f->conf.recording_id, ID_NIL);
    assert_int_equal(access(f->started_path, F_OK), 0);
    captured(f, r.id, 300, 0);
    assert_int_equal(access(f->started_path, F_OK), -1);
    assert_int_equal(recording_get(f->m, CUST, r.id, &got, &e), 0); /* still readable */
    assert_int_equal(got.status, RECORDING_ENDED);
    assert_true(recording_file(f->m, CUST, r.id, path, sizeof(path), &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    struct recording *list;
    size_t n;
    assert_int_equal(recording_list(f->m, CUST, NULL, NULL, NULL, &list, &n, &e), 0);
    assert_int_equal(n, 0);
    store_free_recordings(list, n);
    assert_int_equal(recording_delete(f->m, CUST, r.id, &got, &e), 0); /* repeat: no-op */

    /* ended: the file goes at once */
    start_ok(f, RECORDING_OF_CONFERENCE, 0, NULL, &r);
    assert_int_equal(recording_stop(f->m, RECORDING_OF_CONFERENCE, CUST, CONF, &e), 0);
    fp = fopen(f->started_path, "w");
    fclose(fp);
    captured(f, r.id, 300, 0);
    assert_int_equal(recording_delete(f->m, CUST, r.id, &got, &e), 0);
    assert_int_equal(access(f->started_path, F_OK), -1);
    /* nothing written: no file to serve */
    start_ok(f, RECORDING_OF_CONFERENCE, 0, NULL, &r);
    struct recording_captured c = {.id = r.id, .error = 13, .message = "open: Permission denied"};
    recording_on_captured(f->m, &c);
    assert_true(recording_file(f->m, CUST, r.id, path, sizeof(path), &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
}

static void test_recover(void **state)
{
    struct fx *f = *state;
    struct recording r, got;
    struct error e;
    start_ok(f, RECORDING_OF_CONFERENCE, 0, NULL, &r);
    struct recording r2;
    start_ok(f, RECORDING_OF_CALL, 0, NULL, &r2);
    /* a crash: a new manager over the same store */
    recording_mgr_destroy(f->m);
    make_mgr(f);
    f->repair_ms = 12340;
    size_t before = f->log.n;
    assert_int_equal(recording_mgr_recover(f->m), 0);
    assert_int_equal(recording_get(f->m, CUST, r.id, &got, &e), 0);
    assert_int_equal(got.status, RECORDING_ENDED);
    assert_int_equal(got.duration_ms, 12340);
    assert_int_equal(got.size, 44 + 12340 * 16);
    assert_int_equal(got.tm_end, got.tm_start + INT64_C(12340000));
    assert_string_equal(f->conf.recording_id, ID_NIL);
    assert_string_equal(f->call.recording_id, ID_NIL);
    assert_true(event_log_find(&f->log, before, "recording_finished", r.id) >= 0);
    assert_true(event_log_find(&f->log, before, "recording_finished", r2.id) >= 0);
    /* nothing left to repair */
    before = f->log.n;
    assert_int_equal(recording_mgr_recover(f->m), 0);
    assert_int_equal(f->log.n, before);
}

static void test_flow_actions(void **state)
{
    struct fx *f = *state;
    struct flow_recordings fr = recording_flow_iface(f->m);
    struct error e;
    json_t *opt = json_pack("{s:s,s:i,s:i,s:s}", "format", "wav", "duration", 30, "end_of_silence",
                            4, "on_end_flow_id", FLOW);
    const char *af = "77777777-7777-4777-8777-777777777777";
    assert_int_equal(fr.start(fr.ctx, CUST, CALL, af, opt, &e), 0);
    json_decref(opt);
    assert_int_equal(f->started_max_ms, 30000);
    assert_int_equal(f->started_silence_ms, 4000);
    struct recording r;
    assert_int_equal(recording_get(f->m, CUST, f->call.recording_id, &r, &e), 0);
    assert_string_equal(r.activeflow_id, af);
    assert_string_equal(r.on_end_flow_id, FLOW);
    assert_string_equal(r.reference_type, "call");
    opt = json_object();
    assert_true(fr.start(fr.ctx, CUST, CALL, af, opt, &e) < 0); /* already recording */
    json_decref(opt);
    fr.stop(fr.ctx, CUST, CALL);
    assert_int_equal(f->stops, 1);
    fr.stop(fr.ctx, CUST, CALL); /* nothing running: no-op */
    assert_int_equal(f->stops, 1);
}

static void test_max_running(void **state)
{
    struct fx *f = *state;
    f->max_running = 1;
    recording_mgr_destroy(f->m);
    make_mgr(f);
    struct recording a, out;
    struct error e;
    struct recording_start_req req = {0};
    start_ok(f, RECORDING_OF_CONFERENCE, 0, NULL, &a);
    assert_true(recording_start(f->m, RECORDING_OF_CALL, CUST, CALL, &req, &out, &e) < 0);
    assert_int_equal(e.status, ERR_RESOURCE_EXHAUSTED);
    assert_string_equal(e.reason, "TOO_MANY_RECORDINGS");
    assert_string_equal(f->call.recording_id, ID_NIL);
    captured(f, a.id, 10, 0); /* one ended: room for the next */
    start_ok(f, RECORDING_OF_CALL, 0, NULL, &out);
}

static void test_shutdown_stops_all(void **state)
{
    struct fx *f = *state;
    struct recording a, b;
    start_ok(f, RECORDING_OF_CONFERENCE, 0, NULL, &a);
    start_ok(f, RECORDING_OF_CALL, 0, NULL, &b);
    recording_mgr_shutdown(f->m);
    assert_int_equal(f->stops, 2);
    recording_mgr_shutdown(f->m); /* already stopping */
    assert_int_equal(f->stops, 2);
    captured(f, a.id, 10, 0);
    captured(f, b.id, 10, 0);
    assert_int_equal(recording_mgr_running(f->m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_stop_conference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ends_by_itself_and_on_end_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_stops_all, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
