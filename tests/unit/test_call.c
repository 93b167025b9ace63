/* The call manager on fakes: a fake SIP side (dialogs and their operations), a fake router, fake
 * flows and a recording listener, the real media engine on loopback ports, an in-memory store and
 * a manual clock. Incoming calls routed, answered by their flow and ended from either side;
 * refusals; the ring timer; the leg events that reach the listener; outgoing calls; shutdown and
 * recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call/call.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "fakes.h"

#define MS INT64_C(1000)
static const char *CUST = "11111111-1111-4111-8111-111111111111";
static const char *FLOW = "44444444-4444-4444-8444-444444444444";

#define OFFER                                                                                      \
    "v=0\r\n"                                                                                      \
    "o=alice 1 1 IN IP4 127.0.0.1\r\n"                                                             \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 127.0.0.1\r\n"                                                                       \
    "t=0 0\r\n"                                                                                    \
    "m=audio 40000 RTP/AVP 0 101\r\n"                                                              \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"

#define ANSWER                                                                                     \
    "v=0\r\n"                                                                                      \
    "o=bob 1 1 IN IP4 127.0.0.1\r\n"                                                               \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 127.0.0.1\r\n"                                                                       \
    "t=0 0\r\n"                                                                                    \
    "m=audio 40002 RTP/AVP 0 101\r\n"                                                              \
    "a=rtpmap:0 PCMU/8000\r\n"                                                                     \
    "a=rtpmap:101 telephone-event/8000\r\n"

struct fx {
    uv_loop_t loop;
    struct media_engine *media;
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct event_log log;
    struct fake_sip sip;
    struct fake_router router;
    struct fake_call_flows flows;
    struct fake_listener listener;
    struct call_mgr *m;
    struct sip_callbacks cb;
    struct flow_call_ops ops;
    struct bridge_legs legs;
};

static void on_media_event(void *ctx, const struct media_event *ev)
{
    (void)ctx, (void)ev; /* the tests hand the call its events themselves */
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    log_set_level(LOG_LEVEL_WARN);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct media_config mcfg = {.bind_ip = "127.0.0.1",
                                .port_min = 48200,
                                .port_max = 48299,
                                .threads = 1,
                                .rtp_timeout_ms = 30000};
    char err[160];
    f->media = media_engine_create(&f->loop, &mcfg, on_media_event, f, err, sizeof(err));
    assert_non_null(f->media);
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    f->bus = events_bus_create();
    events_subscribe(f->bus, event_log_record, &f->log);
    f->sched = sched_create_manual(tm_now_us());
    memcpy(f->router.customer_id, CUST, ID_LEN + 1);
    memcpy(f->router.flow_id, FLOW, ID_LEN + 1);
    struct call_deps d = {.store = f->store,
                          .bus = f->bus,
                          .media = f->media,
                          .sched = f->sched,
                          .media_ip = "127.0.0.1",
                          .ring_timeout_ms = 5000,
                          .router = fake_router_iface(&f->router),
                          .flows = fake_call_flows_iface(&f->flows),
                          .listener = fake_listener_iface(&f->listener)};
    f->m = call_mgr_create(&d);
    struct call_sip sip = fake_sip_iface(&f->sip);
    call_mgr_set_sip(f->m, &sip);
    f->cb = call_sip_callbacks(f->m);
    f->ops = call_flow_ops(f->m);
    f->legs = call_bridge_legs(f->m);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    call_mgr_shutdown(f->m); /* destroys the legs of the calls still live */
    call_mgr_destroy(f->m);
    sched_destroy(f->sched);
    events_bus_destroy(f->bus);
    store_close(f->store);
    media_engine_destroy(f->media);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static struct sip_dialog *invite_sdp(struct fx *f, const char *user, const char *sdp)
{
    struct sip_dialog *d = fake_sip_dialog(&f->sip, false);
    struct sip_invite inv = {.request_user = user,
                             .request_uri = "sip:+15551234567@127.0.0.1",
                             .from_uri = "sip:alice@127.0.0.1:5062",
                             .from_display = "Alice",
                             .to_uri = "sip:+15551234567@127.0.0.1",
                             .call_id = "call-1@test",
                             .source_ip = "127.0.0.1",
                             .source_port = 5062,
                             .sdp = sdp};
    f->cb.on_invite(f->cb.ctx, d, &inv);
    return d;
}

static struct sip_dialog *invite(struct fx *f)
{
    return invite_sdp(f, "+15551234567", OFFER);
}

static void get(struct fx *f, const char *id, struct call *c)
{
    struct error e;
    assert_int_equal(call_get(f->m, CUST, id, c, &e), 0);
}

static enum call_status status_of(struct fx *f, const char *id)
{
    struct call c;
    get(f, id, &c);
    enum call_status st = c.status;
    call_fini(&c);
    return st;
}

/* An incoming call routed, answered by its flow and acknowledged: its id in id. */
static struct sip_dialog *answered_call(struct fx *f, char id[ID_LEN + 1])
{
    struct sip_dialog *d = invite(f);
    assert_int_equal(fake_dialog_of(d)->rejected, 0);
    memcpy(id, f->listener.last_call, ID_LEN + 1);
    assert_int_equal(f->ops.answer(f->ops.ctx, id), 0);
    f->cb.on_established(f->cb.ctx, d);
    return d;
}

static void test_incoming_routed_and_answered(void **state)
{
    struct fx *f = *state;
    struct sip_dialog *d = invite(f);
    assert_int_equal(f->router.routes, 1);
    assert_string_equal(f->router.last_user, "+15551234567");
    assert_int_equal(fake_dialog_of(d)->rejected, 0);
    assert_int_equal(f->flows.creates, 1);
    assert_string_equal(f->flows.last_flow_id, FLOW);
    assert_string_equal(f->flows.last_direction, "incoming");
    /* recorded ringing, and its flow told to run (it answers) */
    assert_int_equal(f->listener.ready, 1);
    assert_string_equal(f->listener.last_af, f->flows.last_id);
    id_t_ id;
    memcpy(id, f->listener.last_call, sizeof(id));
    struct call c;
    get(f, id, &c);
    assert_int_equal(c.status, CALL_RINGING);
    assert_int_equal(c.direction, CALL_INCOMING);
    assert_string_equal(c.type, "flow");
    assert_string_equal(c.flow_id, FLOW);
    assert_string_equal(c.activeflow_id, f->flows.last_id);
    assert_non_null(strstr(c.source, "sip:alice@127.0.0.1:5062"));
    call_fini(&c);
    assert_true(event_log_find(&f->log, 0, "call_created", id) >= 0);
    assert_int_equal(call_mgr_live(f->m), 1);
    struct conference_calls cc = call_conference_iface(f->m);
    assert_false(cc.is_progressing(cc.ctx, CC_REFERENCE_CALL, id)); /* ringing */

    /* the flow answers: 200 with our SDP on the leg's port */
    assert_int_equal(f->ops.answer(f->ops.ctx, id), 0);
    assert_int_equal(f->sip.answers, 1);
    struct media_leg *leg = f->legs.leg(f->legs.ctx, id);
    assert_non_null(leg);
    char mline[64];
    snprintf(mline, sizeof(mline), "m=audio %d RTP/AVP 0 101", media_leg_port(leg));
    assert_non_null(strstr(fake_dialog_of(d)->sdp, mline));
    get(f, id, &c);
    assert_int_equal(c.status, CALL_PROGRESSING);
    assert_non_null(strstr(c.dialog, "fake_dialog")); /* what a restart needs for its BYE */
    assert_true(c.tm_progressing > 0);
    call_fini(&c);
    assert_true(event_log_find(&f->log, 0, "call_progressing", id) >= 0);
    assert_true(cc.is_progressing(cc.ctx, CC_REFERENCE_CALL, id));
    assert_false(cc.is_progressing(cc.ctx, CC_REFERENCE_CALL, FLOW));
    f->cb.on_established(f->cb.ctx, d);
    assert_int_equal(f->ops.answer(f->ops.ctx, id), 0); /* again: nothing more */
    assert_int_equal(f->sip.answers, 1);
    assert_true(f->legs.joinable(f->legs.ctx, id));
    assert_int_equal(f->listener.ended, 0);
}

static void test_direct_call_runs_the_routed_actions(void **state)
{
    struct fx *f = *state;
    f->router.direct = true;
    invite_sdp(f, "direct.0123456789ab", OFFER);
    assert_int_equal(f->flows.creates, 1);
    assert_true(f->flows.last_had_actions);
    assert_string_equal(f->flows.last_flow_id, ID_NIL);
    struct call c;
    get(f, f->listener.last_call, &c);
    assert_string_equal(c.type, "conference");
    call_fini(&c);
}

static void test_refusals_become_sip_rejections(void **state)
{
    struct fx *f = *state;
    int codes[] = {404, 403, 486};
    for (size_t i = 0; i < 3; i++) {
        f->router.refuse = codes[i];
        struct sip_dialog *d = invite(f);
        assert_int_equal(fake_dialog_of(d)->rejected, codes[i]);
    }
    f->router.refuse = 0;
    assert_int_equal(f->flows.creates, 0);
    /* an offer we cannot answer */
    struct sip_dialog *d = invite_sdp(f, "+15551234567", NULL);
    assert_int_equal(fake_dialog_of(d)->rejected, 488);
    d = invite_sdp(f, "+15551234567", "v=0\r\n");
    assert_int_equal(fake_dialog_of(d)->rejected, 488);
    /* the number's flow is gone: 404; the flows cannot run: 503 */
    f->flows.fail_status = ERR_INVALID_ARGUMENT;
    d = invite(f);
    assert_int_equal(fake_dialog_of(d)->rejected, 404);
    f->flows.fail_status = ERR_UNAVAILABLE;
    d = invite(f);
    assert_int_equal(fake_dialog_of(d)->rejected, 503);
    f->flows.fail_status = ERR_OK;
    assert_int_equal(f->listener.ready, 0);
    assert_int_equal(f->listener.ended, 0);
    assert_int_equal(call_mgr_live(f->m), 0);
    assert_int_equal(event_log_count(&f->log, "call_created"), 0);
    /* shutting down: 503 before routing */
    int routes = f->router.routes;
    assert_int_equal(call_mgr_drain(f->m), 0);
    d = invite(f);
    assert_int_equal(fake_dialog_of(d)->rejected, 503);
    assert_int_equal(f->router.routes, routes);
}

static void test_no_router_refuses(void **state)
{
    struct fx *f = *state;
    struct call_deps d = {.store = f->store, .bus = f->bus, .media = f->media, .sched = f->sched};
    struct call_mgr *m = call_mgr_create(&d);
    struct call_sip sip = fake_sip_iface(&f->sip);
    call_mgr_set_sip(m, &sip);
    struct sip_callbacks cb = call_sip_callbacks(m);
    struct sip_dialog *dlg = fake_sip_dialog(&f->sip, false);
    struct sip_invite inv = {.request_user = "+15551234567", .call_id = "x@test", .sdp = OFFER};
    cb.on_invite(cb.ctx, dlg, &inv);
    assert_int_equal(fake_dialog_of(dlg)->rejected, 404);
    call_mgr_destroy(m);
}

static void test_hangup_from_the_api(void **state)
{
    struct fx *f = *state;
    id_t_ id;
    struct sip_dialog *d = answered_call(f, id);
    struct call c;
    struct error e;
    assert_int_equal(call_hangup(f->m, CUST, id, &c, &e), 0);
    assert_int_equal(c.status, CALL_TERMINATING);
    call_fini(&c);
    assert_int_equal(f->sip.byes, 1);
    assert_true(fake_dialog_of(d)->byed);
    assert_int_equal(f->listener.ended, 0); /* until the BYE completes */
    assert_false(f->legs.joinable(f->legs.ctx, id));
    f->cb.on_ended(f->cb.ctx, d, false, false);
    assert_int_equal(f->listener.ended, 1);
    assert_string_equal(f->listener.last_call, id);
    assert_string_equal(f->listener.last_af, f->flows.last_id);
    get(f, id, &c);
    assert_int_equal(c.status, CALL_HANGUP);
    assert_string_equal(c.hangup_by, "local");
    assert_string_equal(c.hangup_reason, "normal");
    assert_string_equal(c.dialog, "");
    call_fini(&c);
    assert_true(event_log_find(&f->log, 0, "call_hangup", id) >= 0);
    assert_int_equal(call_mgr_live(f->m), 0);
    assert_null(f->legs.leg(f->legs.ctx, id));

    /* again: returned as it is; delete marks it */
    assert_int_equal(call_hangup(f->m, CUST, id, &c, &e), 0);
    assert_int_equal(c.status, CALL_HANGUP);
    call_fini(&c);
    assert_int_equal(f->sip.byes, 1);
    assert_int_equal(call_delete(f->m, CUST, id, &c, &e), 0);
    assert_true(c.tm_delete != TM_NEVER);
    call_fini(&c);
    assert_true(event_log_find(&f->log, 0, "call_deleted", id) >= 0);
    assert_true(call_get(f->m, "22222222-2222-4222-8222-222222222222", id, &c, &e) < 0);
    assert_string_equal(e.reason, "CALL_NOT_FOUND");
}

static void test_hangup_of_a_ringing_call_refuses_it(void **state)
{
    struct fx *f = *state;
    struct sip_dialog *d = invite(f);
    id_t_ id;
    memcpy(id, f->listener.last_call, sizeof(id));
    struct call c;
    struct error e;
    assert_int_equal(call_hangup(f->m, CUST, id, &c, &e), 0);
    assert_int_equal(c.status, CALL_HANGUP);
    assert_string_equal(c.hangup_reason, "normal");
    call_fini(&c);
    assert_int_equal(fake_dialog_of(d)->rejected, 603);
    assert_int_equal(f->listener.ended, 1);
    /* the flow hangs up with busy: 486 */
    d = invite(f);
    f->ops.hangup(f->ops.ctx, f->listener.last_call, "busy");
    assert_int_equal(fake_dialog_of(d)->rejected, 486);
}

static void test_remote_bye_ends_the_call(void **state)
{
    struct fx *f = *state;
    id_t_ id;
    struct sip_dialog *d = answered_call(f, id);
    f->cb.on_ended(f->cb.ctx, d, true, false);
    assert_int_equal(f->listener.ended, 1);
    assert_string_equal(f->listener.last_call, id);
    struct call c;
    get(f, id, &c);
    assert_int_equal(c.status, CALL_HANGUP);
    assert_string_equal(c.hangup_by, "remote");
    assert_string_equal(c.hangup_reason, "normal");
    call_fini(&c);
    assert_int_equal(call_mgr_live(f->m), 0);
    assert_int_equal(f->sip.byes, 0);

    /* our 2xx never acknowledged: failed; a CANCEL before the answer: cancel */
    d = invite(f);
    memcpy(id, f->listener.last_call, sizeof(id));
    assert_int_equal(f->ops.answer(f->ops.ctx, id), 0);
    fake_dialog_of(d)->unacked = true;
    f->cb.on_ended(f->cb.ctx, d, true, false);
    get(f, id, &c);
    assert_string_equal(c.hangup_reason, "failed");
    call_fini(&c);
    d = invite(f);
    memcpy(id, f->listener.last_call, sizeof(id));
    f->cb.on_ended(f->cb.ctx, d, true, true);
    get(f, id, &c);
    assert_string_equal(c.hangup_reason, "cancel");
    assert_string_equal(c.hangup_by, "remote");
    call_fini(&c);
    assert_int_equal(f->listener.ended, 3);
}

static void test_media_events_reach_the_listener(void **state)
{
    struct fx *f = *state;
    id_t_ id;
    answered_call(f, id);
    struct media_leg *leg = f->legs.leg(f->legs.ctx, id);
    assert_non_null(leg);
    struct media_event ev = {.type = MEDIA_LEG_DTMF, .leg = leg, .digit = '7'};
    f->legs.on_event(f->legs.ctx, &ev);
    assert_int_equal(f->listener.dtmf, 1);
    assert_int_equal(f->listener.digits[0], '7');
    assert_string_equal(f->listener.last_call, id);
    assert_string_equal(f->listener.last_af, f->flows.last_id);
    assert_true(event_log_find(&f->log, 0, "call_dtmf_received", id) >= 0);

    struct media_event done = {
        .type = MEDIA_LEG_PLAY_DONE, .leg = leg, .play_id = 42, .stopped = true};
    f->legs.on_event(f->legs.ctx, &done);
    assert_int_equal(f->listener.play_done, 1);
    assert_int_equal(f->listener.last_play_id, 42);
    assert_true(f->listener.last_stopped);

    /* joined/left are the bridge's: nothing here */
    struct media_event joined = {.type = MEDIA_LEG_JOINED, .leg = leg};
    f->legs.on_event(f->legs.ctx, &joined);
    assert_int_equal(f->listener.dtmf + f->listener.play_done + f->listener.ended, 2);

    /* no RTP for the inactivity time: hung up (timeout) */
    struct media_event timeout = {.type = MEDIA_LEG_TIMEOUT, .leg = leg};
    f->legs.on_event(f->legs.ctx, &timeout);
    assert_int_equal(f->sip.byes, 1);
    struct call c;
    get(f, id, &c);
    assert_int_equal(c.status, CALL_TERMINATING);
    assert_string_equal(c.hangup_reason, "timeout");
    call_fini(&c);
}

static void test_timeout_before_the_ack_is_left_to_sip(void **state)
{
    struct fx *f = *state;
    invite(f);
    id_t_ id;
    memcpy(id, f->listener.last_call, sizeof(id));
    assert_int_equal(f->ops.answer(f->ops.ctx, id), 0);
    struct media_event timeout = {.type = MEDIA_LEG_TIMEOUT, .leg = f->legs.leg(f->legs.ctx, id)};
    f->legs.on_event(f->legs.ctx, &timeout);
    assert_int_equal(f->sip.byes, 0);
    assert_int_equal(status_of(f, id), CALL_PROGRESSING);
}

static void test_ring_timeout(void **state)
{
    struct fx *f = *state;
    struct sip_dialog *d = invite(f);
    id_t_ id;
    memcpy(id, f->listener.last_call, sizeof(id));
    sched_advance(f->sched, 4999 * MS);
    assert_int_equal(fake_dialog_of(d)->rejected, 0);
    sched_advance(f->sched, 2 * MS);
    assert_int_equal(fake_dialog_of(d)->rejected, 480);
    struct call c;
    get(f, id, &c);
    assert_int_equal(c.status, CALL_HANGUP);
    assert_string_equal(c.hangup_reason, "noanswer");
    call_fini(&c);
    assert_int_equal(f->listener.ended, 1);
    /* an answered call has no ring timer */
    answered_call(f, id);
    sched_advance(f->sched, 10000 * MS);
    assert_int_equal(status_of(f, id), CALL_PROGRESSING);
}

static void test_flow_ops(void **state)
{
    struct fx *f = *state;
    struct sip_dialog *d = invite(f);
    id_t_ id;
    memcpy(id, f->listener.last_call, sizeof(id));
    int16_t pcm[160] = {0};
    struct media_clip *clip = media_clip_create(pcm, 160);
    assert_int_equal(f->ops.play(f->ops.ctx, id, clip, 1), -1); /* not answered */
    assert_int_equal(f->ops.answer(f->ops.ctx, id), 0);
    f->cb.on_established(f->cb.ctx, d);
    assert_int_equal(f->ops.play(f->ops.ctx, id, clip, 2), 0);
    f->ops.play_stop(f->ops.ctx, id);
    media_clip_unref(clip);
    assert_int_equal(f->ops.answer(f->ops.ctx, FLOW), -1); /* no such call */
    json_t *action =
        json_pack("{s:s,s:s,s:{s:s}}", "id", FLOW, "type", "talk", "option", "text", "hello");
    f->ops.action(f->ops.ctx, id, action);
    json_decref(action);
    struct call c;
    get(f, id, &c);
    assert_non_null(strstr(c.action, "\"talk\""));
    assert_non_null(strstr(c.action, "hello"));
    call_fini(&c);
    assert_true(event_log_find(&f->log, 0, "call_updated", id) >= 0);
}

static void test_conference_left_is_reported(void **state)
{
    struct fx *f = *state;
    id_t_ id;
    answered_call(f, id);
    struct conference_calls calls = call_conference_iface(f->m);
    struct conferencecall cc = {.reference_type = CC_REFERENCE_CALL};
    id_new(cc.id);
    memcpy(cc.reference_id, id, ID_LEN + 1);
    memcpy(cc.activeflow_id, f->flows.last_id, ID_LEN + 1);
    struct conference conf = {.status = CONFERENCE_TERMINATING};
    calls.left(calls.ctx, &cc, &conf);
    assert_int_equal(f->listener.left, 1);
    assert_string_equal(f->listener.last_cc, cc.id);
    assert_string_equal(f->listener.last_af, f->flows.last_id);
}

static json_t *destinations(const char *target)
{
    return json_pack("[{s:s,s:s}]", "type", "sip", "target", target);
}

static void test_outgoing_call(void **state)
{
    struct fx *f = *state;
    json_t *dst = destinations("sip:bob@127.0.0.1:5090");
    struct call_dial_req req = {.destinations = dst, .flow_id = FLOW};
    json_t *out = NULL;
    struct error e;
    assert_int_equal(call_dial(f->m, CUST, &req, &out, &e), 0);
    assert_int_equal(json_array_size(out), 1);
    id_t_ id;
    snprintf(id, sizeof(id), "%s",
             json_string_value(json_object_get(json_array_get(out, 0), "id")));
    json_decref(out);
    assert_int_equal(f->sip.invites, 1);
    struct fake_dialog *fd = &f->sip.dialogs[f->sip.n - 1];
    struct sip_dialog *d = (struct sip_dialog *)fd;
    assert_string_equal(fd->request_uri, "sip:bob@127.0.0.1:5090");
    assert_string_equal(fd->from_uri, "sip:conferenced@127.0.0.1");
    assert_non_null(strstr(fd->sdp, "m=audio "));
    assert_string_equal(f->flows.last_direction, "outgoing");
    assert_int_equal(status_of(f, id), CALL_DIALING);
    assert_true(event_log_find(&f->log, 0, "call_dialing", id) >= 0);
    assert_int_equal(f->listener.ready, 0); /* its flow runs once answered */

    f->cb.on_progress(f->cb.ctx, d, 180);
    assert_int_equal(status_of(f, id), CALL_RINGING);
    f->cb.on_answered(f->cb.ctx, d, ANSWER);
    assert_int_equal(status_of(f, id), CALL_PROGRESSING);
    assert_int_equal(f->listener.ready, 1);
    assert_string_equal(f->listener.last_call, id);
    assert_int_equal(f->ops.answer(f->ops.ctx, id), 0); /* outgoing: nothing to answer */
    assert_int_equal(f->sip.answers, 0);
    f->cb.on_ended(f->cb.ctx, d, true, false);
    assert_int_equal(f->listener.ended, 1);
    struct call c;
    get(f, id, &c);
    assert_string_equal(c.hangup_by, "remote");
    assert_string_equal(c.hangup_reason, "normal");
    call_fini(&c);
    json_decref(dst);
}

static void test_outgoing_failures_and_cancel(void **state)
{
    struct fx *f = *state;
    json_t *dst = destinations("bob@127.0.0.1");
    struct call_dial_req req = {.destinations = dst, .flow_id = FLOW};
    json_t *out = NULL;
    struct error e;
    /* busy */
    assert_int_equal(call_dial(f->m, CUST, &req, &out, &e), 0);
    id_t_ id;
    snprintf(id, sizeof(id), "%s",
             json_string_value(json_object_get(json_array_get(out, 0), "id")));
    json_decref(out);
    struct sip_dialog *d = (struct sip_dialog *)&f->sip.dialogs[f->sip.n - 1];
    f->cb.on_failed(f->cb.ctx, d, 486);
    struct call c;
    get(f, id, &c);
    assert_string_equal(c.hangup_reason, "busy");
    assert_string_equal(c.hangup_by, "remote");
    call_fini(&c);
    /* cancelled from the API before the answer */
    assert_int_equal(call_dial(f->m, CUST, &req, &out, &e), 0);
    snprintf(id, sizeof(id), "%s",
             json_string_value(json_object_get(json_array_get(out, 0), "id")));
    json_decref(out);
    d = (struct sip_dialog *)&f->sip.dialogs[f->sip.n - 1];
    assert_int_equal(call_hangup(f->m, CUST, id, &c, &e), 0);
    assert_int_equal(c.status, CALL_CANCELING);
    call_fini(&c);
    assert_int_equal(f->sip.cancels, 1);
    f->cb.on_failed(f->cb.ctx, d, 487);
    get(f, id, &c);
    assert_string_equal(c.hangup_reason, "cancel");
    assert_string_equal(c.hangup_by, "local");
    call_fini(&c);
    assert_int_equal(f->listener.ended, 2);
    /* the SIP side refuses the INVITE: the flow made for it ends */
    f->sip.fail_invite = true;
    assert_true(call_dial(f->m, CUST, &req, &out, &e) < 0);
    assert_string_equal(e.reason, "DIAL_FAILED");
    assert_int_equal(f->listener.ended, 3);
    f->sip.fail_invite = false;
    /* checked before dialling */
    f->flows.missing = true;
    assert_true(call_dial(f->m, CUST, &req, &out, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FLOW_ID");
    f->flows.missing = false;
    call_mgr_set_sip(f->m, NULL);
    assert_true(call_dial(f->m, CUST, &req, &out, &e) < 0);
    assert_string_equal(e.reason, "CALLS_UNAVAILABLE");
    json_decref(dst);
}

static void test_drain_and_shutdown(void **state)
{
    struct fx *f = *state;
    id_t_ a, b;
    struct sip_dialog *da = answered_call(f, a);
    answered_call(f, b);
    invite(f); /* ringing */
    struct sip_dialog *ringing = (struct sip_dialog *)&f->sip.dialogs[f->sip.n - 1];
    assert_int_equal(call_mgr_drain(f->m), 2); /* the ringing one is refused at once */
    assert_int_equal(fake_dialog_of(ringing)->rejected, 503);
    assert_int_equal(f->sip.byes, 2);
    f->cb.on_ended(f->cb.ctx, da, false, false);
    assert_int_equal(call_mgr_live(f->m), 1);
    call_mgr_shutdown(f->m); /* the BYE never completed: ended now */
    assert_int_equal(call_mgr_live(f->m), 0);
    assert_int_equal(f->listener.ended, 3);
    struct call c;
    get(f, b, &c);
    assert_int_equal(c.status, CALL_HANGUP);
    assert_string_equal(c.hangup_reason, "normal");
    call_fini(&c);
}

static void test_recover(void **state)
{
    struct fx *f = *state;
    struct call c;
    memset(&c, 0, sizeof(c));
    id_new(c.id);
    memcpy(c.customer_id, CUST, ID_LEN + 1);
    memcpy(c.owner_id, ID_NIL, ID_LEN + 1);
    memcpy(c.flow_id, FLOW, ID_LEN + 1);
    memcpy(c.activeflow_id, ID_NIL, ID_LEN + 1);
    memcpy(c.master_call_id, ID_NIL, ID_LEN + 1);
    snprintf(c.type, sizeof(c.type), "flow");
    c.source = strdup("{}");
    c.destination = strdup("{}");
    c.action = strdup("{}");
    c.metadata = strdup("{}");
    c.dialog = strdup("{\"saved\":1}");
    c.status = CALL_PROGRESSING;
    c.direction = CALL_INCOMING;
    c.tm_create = c.tm_update = tm_unique_us();
    c.tm_delete = TM_NEVER;
    assert_int_equal(store_call_insert(f->store, &c), 0);
    assert_int_equal(call_mgr_recover(f->m), 0);
    struct call got;
    get(f, c.id, &got);
    assert_int_equal(got.status, CALL_HANGUP);
    assert_string_equal(got.hangup_reason, "failed");
    assert_string_equal(got.hangup_by, "local");
    call_fini(&got);
    assert_true(event_log_find(&f->log, 0, "call_hangup", c.id) >= 0);
    assert_int_equal(f->sip.saved_byes, 0);
    call_mgr_end_saved_dialogs(f->m);
    assert_int_equal(f->sip.saved_byes, 1);
    assert_string_equal(f->sip.saved[0], "{\"saved\":1}");
    call_mgr_end_saved_dialogs(f->m); /* once */
    assert_int_equal(f->sip.saved_byes, 1);
    call_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_incoming_routed_and_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_call_runs_the_routed_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_become_sip_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_router_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_from_the_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_of_a_ringing_call_refuses_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_bye_ends_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_media_events_reach_the_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_before_the_ack_is_left_to_sip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ring_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conference_left_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outgoing_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outgoing_failures_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_and_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
