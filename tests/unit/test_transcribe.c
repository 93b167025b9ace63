/* Transcribe rules and lifecycle with a fake listen side, fake targets and flows, an in-memory
 * store, a manual clock and a real bus (the module reads joins, leaves and ends from it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "fakes.h"
#include "flow/activeflow.h"
#include "transcribe/transcribe.h"

static const char *CUST = "11111111-1111-4111-8111-111111111111";
static const char *OTHER = "22222222-2222-4222-8222-222222222222";
static const char *CONF = "33333333-3333-4333-8333-333333333333";
static const char *CALL = "44444444-4444-4444-8444-444444444444";
static const char *FLOW = "55555555-5555-4555-8555-555555555555";
static const char *CC_A = "66666666-6666-4666-8666-666666666666";
static const char *CALL_A = "77777777-7777-4777-8777-777777777777";
static const char *CC_B = "88888888-8888-4888-8888-888888888888";
static const char *CALL_B = "99999999-9999-4999-8999-999999999999";

struct speaker {
    char transcribe_id[ID_LEN + 1];
    char call_id[ID_LEN + 1];
    char cc_id[ID_LEN + 1];
    char direction[8];
    bool removed;
};

struct fx {
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct event_log log;
    struct transcribe_mgr *m;
    struct transcribe_mgr *old; /* a manager replaced in a test: still subscribed to the bus */
    /* listen */
    struct speaker sp[16];
    size_t n_sp;
    bool fail_add;
    int remove_all;
    /* targets */
    bool conf_progressing, call_progressing;
    id_t_ conf_current;
    char history[8][ID_LEN + 1];
    size_t n_history;
    bool a_joined, b_joined;
    /* flows */
    int on_end_runs;
    int max_running;
};

static bool ls_supported(void *ctx, const char *lang)
{
    (void)ctx;
    return !strcmp(lang, "en-US") || !strcmp(lang, "de-DE");
}

static const char *ls_languages(void *ctx)
{
    (void)ctx;
    return "en-US, de-DE";
}

static int ls_add(void *ctx, const struct transcribe_speaker *sp, struct error *e)
{
    struct fx *f = ctx;
    if (f->fail_add)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID", "no audio");
    assert_true(f->n_sp < 16);
    struct speaker *s = &f->sp[f->n_sp++];
    snprintf(s->transcribe_id, sizeof(s->transcribe_id), "%s", sp->transcribe_id);
    snprintf(s->call_id, sizeof(s->call_id), "%s", sp->call_id);
    snprintf(s->cc_id, sizeof(s->cc_id), "%s", sp->conferencecall_id);
    snprintf(s->direction, sizeof(s->direction), "%s", sp->direction);
    assert_string_equal(sp->language, "en-US");
    return 0;
}

static void ls_remove(void *ctx, const char *tid, const char *call_id)
{
    struct fx *f = ctx;
    if (!call_id)
        f->remove_all++;
    for (size_t i = 0; i < f->n_sp; i++)
        if (!strcmp(f->sp[i].transcribe_id, tid) &&
            (!call_id || !strcmp(f->sp[i].call_id, call_id)))
            f->sp[i].removed = true;
}

static struct speaker *speaker_of(struct fx *f, const char *call_id, const char *dir)
{
    for (size_t i = 0; i < f->n_sp; i++)
        if (!strcmp(f->sp[i].call_id, call_id) && !strcmp(f->sp[i].direction, dir))
            return &f->sp[i];
    return NULL;
}

static int tg_get(void *ctx, enum transcribe_target t, const char *customer_id, const char *id,
                  struct transcribe_target_state *out, struct error *e)
{
    struct fx *f = ctx;
    const char *want = t == TRANSCRIBE_OF_CONFERENCE ? CONF : CALL;
    if (strcmp(id, want) || (customer_id && strcmp(customer_id, CUST)))
        return error_set(e, ERR_NOT_FOUND, "NOT_FOUND", "no such %s", id);
    memcpy(out->customer_id, CUST, ID_LEN + 1);
    out->progressing = t == TRANSCRIBE_OF_CONFERENCE ? f->conf_progressing : f->call_progressing;
    return 0;
}

static int tg_set(void *ctx, const char *conference_id, const char *tid)
{
    struct fx *f = ctx;
    assert_string_equal(conference_id, CONF);
    memcpy(f->conf_current, tid, ID_LEN + 1);
    if (!id_is_nil(tid) && f->n_history < 8)
        memcpy(f->history[f->n_history++], tid, ID_LEN + 1);
    return 0;
}

static void tg_joined(void *ctx, const char *conference_id,
                      void (*fn)(void *arg, const char *cc, const char *call), void *arg)
{
    struct fx *f = ctx;
    assert_string_equal(conference_id, CONF);
    if (f->a_joined)
        fn(arg, CC_A, CALL_A);
    if (f->b_joined)
        fn(arg, CC_B, CALL_B);
}

static bool fl_exists(void *ctx, const char *customer_id, const char *flow_id)
{
    (void)ctx;
    return !strcmp(customer_id, CUST) && !strcmp(flow_id, FLOW);
}

static void fl_on_end(void *ctx, const struct transcribe *t)
{
    struct fx *f = ctx;
    (void)t;
    f->on_end_runs++;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    f->bus = events_bus_create();
    events_subscribe(f->bus, event_log_record, &f->log);
    f->sched = sched_create_manual(tm_now_us());
    f->conf_progressing = f->call_progressing = true;
    memcpy(f->conf_current, ID_NIL, ID_LEN + 1);
    f->a_joined = true;
    struct transcribe_deps d = {
        .store = f->store,
        .bus = f->bus,
        .sched = f->sched,
        .listen = {f, ls_supported, ls_languages, ls_add, ls_remove},
        .targets = {f, tg_get, tg_set, tg_joined},
        .flows = {f, fl_exists, fl_on_end},
        .max_running = 2,
    };
    f->m = transcribe_mgr_create(&d);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    events_bus_destroy(f->bus); /* first: the managers are subscribed to it */
    transcribe_mgr_destroy(f->m);
    transcribe_mgr_destroy(f->old);
    sched_destroy(f->sched);
    store_close(f->store);
    free(f);
    return 0;
}

static void start_conf(struct fx *f, struct transcribe *out)
{
    struct transcribe_start_req req = {.language = "en-US"};
    struct error e;
    assert_int_equal(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, CUST, CONF, &req, out, &e),
                     0);
}

/* A participant event as the conference module publishes it. */
static void publish_cc(struct fx *f, const char *type, const char *cc, const char *call)
{
    events_publish(f->bus, type, CUST, cc,
                   json_pack("{s:s,s:s,s:s,s:s}", "id", cc, "conference_id", CONF, "reference_id",
                             call, "status", "joined"));
}

static void heard(struct fx *f, const char *tid, const char *call, const char *cc, const char *text,
                  int64_t begin)
{
    struct transcribe_heard h = {.kind = TRANSCRIBE_HEARD_TEXT,
                                 .transcribe_id = tid,
                                 .call_id = call,
                                 .conferencecall_id = cc,
                                 .direction = "in",
                                 .text = text,
                                 .confidence = 0.8,
                                 .tm_begin = begin,
                                 .tm_end = begin + 1500000};
    transcribe_on_heard(f->m, &h);
}

static void test_conference_speakers_and_transcripts(void **state)
{
    struct fx *f = *state;
    struct transcribe t;
    start_conf(f, &t);
    assert_int_equal(t.status, TRANSCRIBE_PROGRESSING);
    assert_string_equal(t.reference_type, "confbridge");
    assert_string_equal(t.direction, "in");
    assert_string_equal(t.provider, "");
    assert_string_equal(f->conf_current, t.id);
    assert_true(event_log_find(&f->log, 0, "transcribe_started", t.id) >= 0);
    /* the one in the room is listened to; one who joins later too; one who leaves no more */
    struct speaker *a = speaker_of(f, CALL_A, "in");
    assert_non_null(a);
    assert_string_equal(a->cc_id, CC_A);
    publish_cc(f, "conferencecall_joined", CC_B, CALL_B);
    struct speaker *b = speaker_of(f, CALL_B, "in");
    assert_non_null(b);
    assert_string_equal(b->cc_id, CC_B);
    publish_cc(f, "conferencecall_leaved", CC_A, CALL_A);
    assert_true(a->removed);
    assert_false(b->removed);

    /* what they said, each one with who said it, oldest first */
    int64_t t0 = t.tm_create;
    heard(f, t.id, CALL_A, CC_A, "hello from alice", t0 + 2000000);
    sched_advance(f->sched, 1000);
    heard(f, t.id, CALL_B, CC_B, "and bob talks over her", t0 + 2500000);
    struct transcript *list;
    size_t n;
    struct error e;
    struct store_page page = {0};
    assert_int_equal(transcribe_transcripts(f->m, CUST, t.id, &page, &list, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].message, "hello from alice");
    assert_string_equal(list[0].conferencecall_id, CC_A);
    assert_string_equal(list[0].call_id, CALL_A);
    assert_int_equal(list[0].offset_ms, 2000);
    assert_int_equal(list[0].tm_transcript, t0 + 2000000);
    assert_int_equal(list[0].tm_end, t0 + 3500000);
    assert_string_equal(list[1].conferencecall_id, CC_B);
    assert_int_equal(list[1].offset_ms, 2500);
    assert_true(event_log_count(&f->log, "transcript_created") == 2);
    /* paged: after the first one's token only the second */
    page.before_us = list[0].tm_create;
    page.limit = 10;
    struct transcript *rest;
    size_t nr;
    assert_int_equal(transcribe_transcripts(f->m, CUST, t.id, &page, &rest, &nr, &e), 0);
    assert_int_equal(nr, 1);
    assert_string_equal(rest[0].message, "and bob talks over her");
    store_free_transcripts(rest, nr);
    store_free_transcripts(list, n);
    /* another customer sees nothing */
    page = (struct store_page){0};
    assert_true(transcribe_transcripts(f->m, OTHER, t.id, &page, &list, &n, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);

    /* skipped and failed utterances are counted on the transcribe */
    struct transcribe_heard h = {.kind = TRANSCRIBE_HEARD_SKIPPED, .transcribe_id = t.id};
    transcribe_on_heard(f->m, &h);
    h.kind = TRANSCRIBE_HEARD_FAILED;
    h.error = "the recogniser did not answer";
    transcribe_on_heard(f->m, &h);
    struct transcribe got;
    assert_int_equal(transcribe_get(f->m, CUST, t.id, &got, &e), 0);
    assert_int_equal(got.skipped, 1);
    assert_int_equal(got.failed, 1);
    assert_string_equal(got.error, "the recogniser did not answer");

    /* stop: done, nobody listened to, the conference's current one cleared */
    assert_int_equal(transcribe_stop_conference(f->m, CUST, CONF, &e), 0);
    assert_int_equal(f->remove_all, 1);
    assert_string_equal(f->conf_current, ID_NIL);
    assert_int_equal(transcribe_get(f->m, CUST, t.id, &got, &e), 0);
    assert_int_equal(got.status, TRANSCRIBE_DONE);
    assert_true(event_log_find(&f->log, 0, "transcribe_done", t.id) >= 0);
    assert_true(transcribe_stop_conference(f->m, CUST, CONF, &e) < 0);
    assert_string_equal(e.reason, "STATE_INVALID");
    /* a second one is appended to the history */
    struct transcribe t2;
    start_conf(f, &t2);
    assert_int_equal(f->n_history, 2);
    assert_string_equal(f->history[1], t2.id);
}

static void test_rules(void **state)
{
    struct fx *f = *state;
    struct transcribe t;
    struct error e;
    struct transcribe_start_req req = {0};
    /* language required, and one a recogniser serves: the message lists them */
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, CUST, CONF, &req, &t, &e) < 0);
    assert_int_equal(e.status, ERR_INVALID_ARGUMENT);
    req.language = "fr-FR";
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, CUST, CONF, &req, &t, &e) < 0);
    assert_int_equal(e.status, ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.message, "en-US, de-DE"));
    req.language = "en-US";
    req.direction = "sideways";
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CALL, CUST, CALL, &req, &t, &e) < 0);
    assert_string_equal(e.reason, "INVALID_DIRECTION");
    req.direction = "both";
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, CUST, CONF, &req, &t, &e) < 0);
    assert_string_equal(e.reason, "INVALID_DIRECTION");
    req.direction = NULL;
    req.on_end_flow_id = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, CUST, CONF, &req, &t, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FLOW_ID");
    req.on_end_flow_id = NULL;
    /* another customer's conference */
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, OTHER, CONF, &req, &t, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    /* not progressing */
    f->conf_progressing = false;
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, CUST, CONF, &req, &t, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION);
    f->conf_progressing = true;
    /* one at a time */
    start_conf(f, &t);
    struct transcribe t2;
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CONFERENCE, CUST, CONF, &req, &t2, &e) < 0);
    assert_string_equal(e.reason, "STATE_INVALID");
    assert_non_null(strstr(e.message, t.id));
    /* a call with no audio: nothing is left progressing */
    f->fail_add = true;
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CALL, CUST, CALL, &req, &t2, &e) < 0);
    assert_int_equal(transcribe_mgr_running(f->m), 1);
    f->fail_add = false;
    /* max_transcribes */
    assert_int_equal(transcribe_start(f->m, TRANSCRIBE_OF_CALL, CUST, CALL, &req, &t2, &e), 0);
    f->call_progressing = true;
    assert_true(transcribe_start(f->m, TRANSCRIBE_OF_CALL, CUST, CALL, &req, &t2, &e) < 0);
    assert_int_equal(e.status, ERR_FAILED_PRECONDITION); /* already on the call */
}

static void test_call_directions_and_ends(void **state)
{
    struct fx *f = *state;
    struct transcribe t;
    struct error e;
    struct transcribe_start_req req = {.language = "en-US", .on_end_flow_id = FLOW};
    assert_int_equal(transcribe_start(f->m, TRANSCRIBE_OF_CALL, CUST, CALL, &req, &t, &e), 0);
    assert_string_equal(t.direction, "both"); /* the default for a call */
    assert_string_equal(t.reference_type, "call");
    assert_non_null(speaker_of(f, CALL, "in"));
    assert_non_null(speaker_of(f, CALL, "out"));
    /* the call hangs up: done, and its on_end_flow_id runs */
    events_publish(f->bus, "call_hangup", CUST, CALL,
                   json_pack("{s:s,s:s}", "id", CALL, "status", "hangup"));
    struct transcribe got;
    assert_int_equal(transcribe_get(f->m, CUST, t.id, &got, &e), 0);
    assert_int_equal(got.status, TRANSCRIBE_DONE);
    assert_int_equal(f->on_end_runs, 1);
    assert_int_equal(transcribe_mgr_running(f->m), 0);

    /* a conference's transcribe ends with the conference */
    struct transcribe tc;
    start_conf(f, &tc);
    events_publish(f->bus, "conference_updated", CUST, CONF,
                   json_pack("{s:s,s:s}", "id", CONF, "status", "terminating"));
    assert_int_equal(transcribe_get(f->m, CUST, tc.id, &got, &e), 0);
    assert_int_equal(got.status, TRANSCRIBE_DONE);

    /* POST /transcribes/{id}/stop of a done one returns it; delete hides its transcripts */
    assert_int_equal(transcribe_stop(f->m, CUST, tc.id, &got, &e), 0);
    assert_int_equal(got.status, TRANSCRIBE_DONE);
    assert_int_equal(transcribe_delete(f->m, CUST, tc.id, &got, &e), 0);
    assert_true(got.tm_delete != TM_NEVER);
    struct transcript *list;
    size_t n;
    struct store_page page = {0};
    assert_true(transcribe_transcripts(f->m, CUST, tc.id, &page, &list, &n, &e) < 0);
    assert_int_equal(e.status, ERR_NOT_FOUND);
    /* deleted ones are not listed */
    struct transcribe *all;
    assert_int_equal(transcribe_list(f->m, CUST, NULL, &page, &all, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(all[0].id, t.id);
    store_free_transcribes(all, n);
}

static void test_recover(void **state)
{
    struct fx *f = *state;
    struct transcribe t;
    start_conf(f, &t);
    /* a new manager over the same store, as after a crash (the bus has no unsubscribe: the old
     * one lives until teardown) */
    f->old = f->m;
    struct transcribe_deps d = {
        .store = f->store,
        .bus = f->bus,
        .sched = f->sched,
        .listen = {f, ls_supported, ls_languages, ls_add, ls_remove},
        .targets = {f, tg_get, tg_set, tg_joined},
        .flows = {f, fl_exists, fl_on_end},
    };
    f->m = transcribe_mgr_create(&d);
    size_t before = event_log_count(&f->log, "transcribe_done");
    assert_int_equal(transcribe_mgr_recover(f->m), 0);
    struct transcribe got;
    struct error e;
    assert_int_equal(transcribe_get(f->m, CUST, t.id, &got, &e), 0);
    assert_int_equal(got.status, TRANSCRIBE_DONE);
    assert_string_equal(f->conf_current, ID_NIL);
    assert_int_equal(event_log_count(&f->log, "transcribe_done"), before + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conference_speakers_and_transcripts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_directions_and_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
