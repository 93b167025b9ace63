/* conferenced: wires the modules together and runs the control loop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "api/http.h"
#include "bridge/capture.h"
#include "bridge/speakers.h"
#include "bridge/bridge.h"
#include "call/call.h"
#include "conference/conference.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/sched.h"
#include "core/timeutil.h"
#include "events/bus.h"
#include "events/webhook.h"
#include "events/ws.h"
#include "flow/activeflow.h"
#include "flow/flow.h"
#include "identity/identity.h"
#include "identity/passwd.h"
#include "media/audiofile.h"
#include "media/engine.h"
#include "recording/recording.h"
#include "routing/routing.h"
#include "sip/sip.h"
#include "speech/stt.h"
#include "speech/tts.h"
#include "media/dtls.h"
#include "store/store.h"
#include "transcribe/transcribe.h"

struct server {
    struct config cfg;
    uv_loop_t *loop;
    struct store *store;
    struct event_bus *bus;
    struct sched *sched;
    struct identity *identity;
    struct webhook *webhook;
    struct ws_hub *ws;
    struct conference_mgr *conferences;
    struct call_mgr *calls;
    struct bridge *bridge;
    struct routing *routing;
    struct flow_mgr *flows;
    struct af_mgr *afs;
    struct recording_mgr *recordings;
    struct capture *capture;
    char recordings_dir[600];
    struct stt *stt;
    struct speakers *speakers;
    struct transcribe_mgr *transcribes;
    struct tts *tts;
    struct media_engine *media;
    struct dtls_cert *dtls_cert;
    struct sip_stack *sip;
    struct api *api;
    struct http_server *http;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain;
    int64_t drain_deadline;
    int64_t calls_deadline; /* shutdown: the calls' hang-ups complete by then, or are forced */
    bool stopping, calls_done;
};

static int mkdir_p(const char *path)
{
    char buf[512];
    if (str_copy(buf, sizeof(buf), path) < 0)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Opens the store in the data directory, telling the operator exactly what is wrong when it
 * cannot: not a directory, not writable, locked by a running server, or unreadable. */
static int open_store(const char *dir, struct store **out)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "conferenced: the data directory %s is not a directory\n", dir);
        return -1;
    }
    if (access(dir, R_OK | W_OK | X_OK) != 0) {
        fprintf(stderr,
                "conferenced: the data directory %s is not writable by this user (%s); fix its "
                "permissions or choose another with --data\n",
                dir, strerror(errno));
        return -1;
    }
    int rc = store_sqlite_open(dir, out);
    if (rc == STORE_BUSY)
        fprintf(stderr,
                "conferenced: the store in %s is in use by another conferenced (one server per "
                "data directory)\n",
                dir);
    else if (rc != 0)
        fprintf(stderr, "conferenced: cannot open the store in %s (the log above says why)\n", dir);
    return rc == 0 ? 0 : -1;
}

/* Every connection, RTP port and store file is a descriptor: take the whole hard limit, and
 * say which settings to lower when even that cannot hold what they allow. */
static void raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need = (rlim_t)cfg->http_max_connections +
                  (rlim_t)(cfg->rtp_port_max - cfg->rtp_port_min + 1) + 256;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("msg=\"open file limit below what the settings allow\" limit=%llu need=%llu "
                 "hint=\"raise ulimit -n, or lower http_max_connections or the rtp_ports range\"",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

/* ---- adapters between the modules ----
 *
 * Each module sees the others through the narrow interfaces its header defines; these adapters
 * map them onto the other modules' functions. Most take the server, so that a module can be given
 * the interface of one created after it (the media engine reports to the bridge, the calls to the
 * activeflows, the bridge to the conferences): creation order needs no setters. Every module may
 * be gone at shutdown (NULL), when its reports are dropped. */

static bool conference_flow_exists(void *ctx, const char *customer_id, const char *flow_id)
{
    return flow_exists(ctx, customer_id, flow_id);
}

/* ---- recordings: what they record (conferences, calls), their flows, their capture ---- */

static int rec_target_get(void *ctx, enum recording_target t, const char *customer_id,
                          const char *id, struct recording_target_state *out, struct error *e)
{
    struct server *s = ctx;
    int rc;
    if (t == RECORDING_OF_CONFERENCE) {
        struct conference c;
        if ((rc = conference_get(s->conferences, customer_id, id, &c, e)) < 0)
            return rc;
        memcpy(out->customer_id, c.customer_id, ID_LEN + 1);
        out->progressing = c.status == CONFERENCE_PROGRESSING && c.tm_delete == TM_NEVER;
        memcpy(out->recording_id, c.recording_id[0] ? c.recording_id : ID_NIL, ID_LEN + 1);
        conference_fini(&c);
        return 0;
    }
    struct call c;
    if ((rc = call_get(s->calls, customer_id, id, &c, e)) < 0)
        return rc;
    memcpy(out->customer_id, c.customer_id, ID_LEN + 1);
    out->progressing = c.status == CALL_PROGRESSING && call_is_progressing(s->calls, id);
    memcpy(out->recording_id, c.recording_id[0] ? c.recording_id : ID_NIL, ID_LEN + 1);
    call_fini(&c);
    return 0;
}

static int rec_target_set(void *ctx, enum recording_target t, const char *id,
                          const char *recording_id)
{
    struct server *s = ctx;
    return t == RECORDING_OF_CONFERENCE ? conference_set_recording(s->conferences, id, recording_id)
                                        : call_set_recording(s->calls, id, recording_id);
}

static bool rec_flow_exists(void *ctx, const char *customer_id, const char *flow_id)
{
    struct server *s = ctx;
    return flow_exists(s->flows, customer_id, flow_id);
}

/* on_end_flow_id: an activeflow of its own (reference "recording") with the recording's
 * variables, as VoIPBIN runs it. */
static void rec_on_end(void *ctx, const struct recording *r)
{
    struct server *s = ctx;
    if (!s->afs)
        return;
    char file[700];
    snprintf(file, sizeof(file), "%s.wav", r->id);
    json_t *vars = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s}", "voipbin.recording.id", r->id,
        "voipbin.recording.reference_type", r->reference_type, "voipbin.recording.reference_id",
        r->reference_id, "voipbin.recording.format", r->format, "voipbin.recording.recording_name",
        r->id, "voipbin.recording.filenames", file);
    struct af_call_info info = {
        .call_id = ID_NIL, .reference_type = "recording", .reference_id = r->id};
    char af[ID_LEN + 1];
    struct error e;
    if (af_create(s->afs, r->customer_id, r->on_end_flow_id, NULL, &info, vars, af, &e) == 0)
        af_run(s->afs, af);
    else
        log_warn("msg=\"recording's on_end_flow_id not run\" recording_id=%s error=\"%s\"", r->id,
                 e.message);
    json_decref(vars);
}

static struct media_room *rec_room(void *ctx, const char *conference_id)
{
    struct server *s = ctx;
    return s->bridge ? bridge_room(s->bridge, conference_id) : NULL;
}

static struct media_leg *rec_leg(void *ctx, const char *call_id)
{
    struct server *s = ctx;
    return s->bridge ? bridge_call_leg(s->bridge, call_id) : NULL;
}

static void rec_captured(void *ctx, const struct recording_captured *r)
{
    struct server *s = ctx;
    if (s->recordings)
        recording_on_captured(s->recordings, r);
}

static void start_recordings(struct server *s)
{
    if (s->cfg.recordings_dir[0])
        snprintf(s->recordings_dir, sizeof(s->recordings_dir), "%s", s->cfg.recordings_dir);
    else
        snprintf(s->recordings_dir, sizeof(s->recordings_dir), "%s/recordings", s->cfg.data_dir);
    if (mkdir_p(s->recordings_dir) < 0)
        log_warn("msg=\"cannot create the recordings directory\" dir=\"%s\" error=\"%s\"",
                 s->recordings_dir, strerror(errno));
    struct capture_deps cd = {.loop = s->loop,
                              .media = s->media,
                              .recorder = {.threads = s->cfg.recording_writers,
                                           .header_interval_ms = 10000,
                                           .drain_interval_ms = 100,
                                           .sync_every_write = s->cfg.recording_sync_writes},
                              .buffer_ms = s->cfg.recording_buffer_ms,
                              .ctx = s,
                              .room = rec_room,
                              .leg = rec_leg,
                              .done = rec_captured,
                              .done_ctx = s};
    s->capture = capture_create(&cd);
    struct recording_deps rd = {.store = s->store,
                                .bus = s->bus,
                                .sched = s->sched,
                                .capture = capture_iface(s->capture),
                                .targets = {s, rec_target_get, rec_target_set},
                                .flows = {s, rec_flow_exists, rec_on_end},
                                .dir = s->recordings_dir,
                                .max_running = s->cfg.max_recordings};
    s->recordings = recording_mgr_create(&rd);
}

/* ---- transcribes: what they listen to, their flows, the recognisers ---- */

static int tr_target_get(void *ctx, enum transcribe_target t, const char *customer_id,
                         const char *id, struct transcribe_target_state *out, struct error *e)
{
    struct recording_target_state st;
    int rc = rec_target_get(
        ctx, t == TRANSCRIBE_OF_CONFERENCE ? RECORDING_OF_CONFERENCE : RECORDING_OF_CALL,
        customer_id, id, &st, e);
    if (rc < 0)
        return rc;
    memcpy(out->customer_id, st.customer_id, ID_LEN + 1);
    out->progressing = st.progressing;
    return 0;
}

static int tr_set_active(void *ctx, const char *conference_id, const char *transcribe_id)
{
    struct server *s = ctx;
    return conference_set_transcribe(s->conferences, conference_id, transcribe_id);
}

static void tr_joined(void *ctx, const char *conference_id,
                      void (*fn)(void *arg, const char *cc_id, const char *call_id), void *arg)
{
    struct server *s = ctx;
    struct conference c;
    struct error e;
    if (conference_get(s->conferences, NULL, conference_id, &c, &e) < 0)
        return;
    for (size_t i = 0; i < c.n_call_ids; i++) {
        struct conferencecall cc;
        if (conferencecall_get(s->conferences, NULL, c.call_ids[i], &cc, &e) == 0 &&
            cc.status == CC_JOINED && cc.reference_type == CC_REFERENCE_CALL)
            fn(arg, cc.id, cc.reference_id);
    }
    conference_fini(&c);
}

/* on_end_flow_id: an activeflow of its own (reference "transcribe"). */
static void tr_on_end(void *ctx, const struct transcribe *t)
{
    struct server *s = ctx;
    if (!s->afs)
        return;
    json_t *vars = json_pack("{s:s,s:s,s:s,s:s}", "voipbin.transcribe.id", t->id,
                             "voipbin.transcribe.reference_type", t->reference_type,
                             "voipbin.transcribe.reference_id", t->reference_id,
                             "voipbin.transcribe.language", t->language);
    struct af_call_info info = {
        .call_id = ID_NIL, .reference_type = "transcribe", .reference_id = t->id};
    char af[ID_LEN + 1];
    struct error e;
    if (af_create(s->afs, t->customer_id, t->on_end_flow_id, NULL, &info, vars, af, &e) == 0)
        af_run(s->afs, af);
    else
        log_warn("msg=\"transcribe's on_end_flow_id not run\" transcribe_id=%s error=\"%s\"", t->id,
                 e.message);
    json_decref(vars);
}

static void tr_heard(void *ctx, const struct transcribe_heard *h)
{
    struct server *s = ctx;
    if (s->transcribes)
        transcribe_on_heard(s->transcribes, h);
}

static void on_stt(void *ctx, const struct stt_result *r)
{
    struct server *s = ctx;
    if (s->speakers)
        speakers_on_stt(s->speakers, r);
}

/* Without a recogniser (the model is missing, a bad setting) the server runs on, and starting a
 * transcription says why it cannot (400, "supported: none (why)"). */
static void start_transcribes(struct server *s)
{
    struct stt_config sc = {.threads = s->cfg.stt_workers,
                            .queue_max = s->cfg.stt_queue,
                            .model_dir = s->cfg.stt_model_dir,
                            .http_url = s->cfg.stt_url,
                            .http_languages = s->cfg.stt_languages,
                            .http_timeout_ms = s->cfg.stt_timeout_ms,
                            .max_utterance_ms = s->cfg.stt_max_utterance_ms};
    char err[256] = "";
    s->stt = stt_create(s->loop, &sc, on_stt, s, err, sizeof(err));
    if (!s->stt)
        log_warn("msg=\"transcription is not available\" error=\"%s\"", err);
    struct speakers_deps sd = {.media = s->media,
                               .stt = s->stt,
                               .unavailable = err,
                               .buffer_ms = s->cfg.transcribe_buffer_ms,
                               .max_speakers = s->cfg.max_transcribe_speakers,
                               .ctx = s,
                               .leg = rec_leg,
                               .heard = tr_heard,
                               .heard_ctx = s};
    s->speakers = speakers_create(&sd);
    struct transcribe_deps td = {.store = s->store,
                                 .bus = s->bus,
                                 .sched = s->sched,
                                 .listen = speakers_iface(s->speakers),
                                 .targets = {s, tr_target_get, tr_set_active, tr_joined},
                                 .flows = {s, rec_flow_exists, tr_on_end},
                                 .max_running = s->cfg.max_transcribes};
    s->transcribes = transcribe_mgr_create(&td);
}

/* media engine -> bridge (which hands the call's events on to the calls) */
static void on_media_event(void *ctx, const struct media_event *ev)
{
    struct server *s = ctx;
    if (s->bridge)
        bridge_on_media_event(s->bridge, ev);
}

/* routing -> conferences, numbers */
static int route_conference_by_hash(void *ctx, const char *hash, struct conference *out)
{
    struct server *s = ctx;
    struct error e;
    return s->conferences ? conference_find_by_hash(s->conferences, hash, out, &e) : -1;
}

static int route_number(void *ctx, const char *user, struct number *out)
{
    struct server *s = ctx;
    struct error e;
    return s->flows ? number_route(s->flows, user, out, &e) : -1;
}

/* calls -> routing */
static int route_call(void *ctx, const char *user, struct route *out)
{
    return routing_route(ctx, user, out);
}

/* calls -> flows */
static bool call_flow_exists(void *ctx, const char *customer_id, const char *flow_id)
{
    struct server *s = ctx;
    return s->flows && flow_exists(s->flows, customer_id, flow_id);
}

static int call_flow_create(void *ctx, const char *customer_id, const char *flow_id,
                            json_t *actions, const struct af_call_info *call, json_t *vars,
                            char out_id[ID_LEN + 1], struct error *e)
{
    struct server *s = ctx;
    if (!s->afs)
        return error_set(e, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE",
                         "Calls cannot run flows on this server.");
    return af_create(s->afs, customer_id, flow_id, actions, call, vars, out_id, e);
}

/* calls -> activeflows and bridge (the call listener) */
static void on_call_ready(void *ctx, const char *call_id, const char *activeflow_id)
{
    struct server *s = ctx;
    if (s->afs)
        af_run(s->afs, activeflow_id);
}

static void on_call_ended(void *ctx, const char *call_id, const char *activeflow_id)
{
    struct server *s = ctx;
    if (s->afs)
        af_on_call_ended(s->afs, activeflow_id); /* takes the call out of its conference */
    if (s->bridge)
        bridge_on_call_ended(s->bridge, call_id); /* a leave the bridge was working on */
}

static void on_call_dtmf(void *ctx, const char *call_id, const char *activeflow_id, char digit)
{
    struct server *s = ctx;
    if (s->afs)
        af_on_dtmf(s->afs, activeflow_id, digit);
}

static void on_call_play_done(void *ctx, const char *call_id, const char *activeflow_id,
                              uint32_t play_id, bool stopped)
{
    struct server *s = ctx;
    if (s->afs)
        af_on_play_done(s->afs, activeflow_id, play_id, stopped);
}

static void on_call_left(void *ctx, const struct conferencecall *cc, const struct conference *c)
{
    struct server *s = ctx;
    if (s->afs)
        af_on_conference_left(s->afs, cc->activeflow_id, cc, c); /* the flow goes on */
}

/* bridge -> conferences */
static void on_bridge_joined(void *ctx, const char *conferencecall_id)
{
    struct server *s = ctx;
    if (s->conferences)
        conference_on_joined(s->conferences, conferencecall_id);
}

static void on_bridge_leaved(void *ctx, const char *conferencecall_id)
{
    struct server *s = ctx;
    if (s->conferences)
        conference_on_leaved(s->conferences, conferencecall_id);
}

/* Start-up: what a previous run left behind, calls first (their participants leave at once),
 * then the conferences and the activeflows. */
static int recover(struct server *s)
{
    if (call_mgr_recover(s->calls) < 0)
        return -1;
    conference_mgr_recover_participants(s->conferences);
    if (conference_mgr_recover(s->conferences) < 0 || af_mgr_recover(s->afs) < 0)
        return -1;
    return 0;
}

/* Stops everything that runs on the loop, in dependency order, so uv_run() returns: first the
 * domain timers (they publish events), then the event consumers and the HTTP server. */
static void finish(struct server *s)
{
    /* Recordings first, while what they record is there: every file finished and its record
     * ended. */
    recording_mgr_shutdown(s->recordings);
    capture_destroy(s->capture);
    s->capture = NULL;
    transcribe_mgr_shutdown(s->transcribes);
    speakers_destroy(s->speakers);
    s->speakers = NULL;
    stt_destroy(s->stt);
    s->stt = NULL;
    af_mgr_recover(s->afs); /* records every running activeflow as ended */
    af_mgr_destroy(s->afs);
    s->afs = NULL; /* the calls' reports to it are dropped from now on */
    tts_destroy(s->tts);
    s->tts = NULL;
    call_mgr_shutdown(s->calls);
    sip_destroy(s->sip); /* BYE to every established call */
    s->sip = NULL;
    conference_mgr_destroy(s->conferences);
    s->conferences = NULL;
    sched_destroy(s->sched);
    s->sched = NULL;
    uv_timer_stop(&s->drain);
    media_engine_destroy(s->media);
    dtls_cert_free(s->dtls_cert);
    s->media = NULL;
    uv_close((uv_handle_t *)&s->drain, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    /* Pending logins are answered while HTTP and the hub (told of revocations) still exist. */
    identity_shutdown(s->identity);
    ws_hub_destroy(s->ws);
    s->ws = NULL;
    http_stop(s->http); /* freed after the loop (http_destroy) */
    webhook_destroy(s->webhook);
    s->webhook = NULL;
    log_info("msg=\"server stopped\"");
}

/* Graceful shutdown: stop accepting, hang up every call, let in-flight requests and queued
 * webhooks finish (up to the grace period), then close everything. The calls come first: their
 * BYEs get half of the grace period to be answered, then the calls still up are ended at once, so
 * that the events they cause (call_hangup, conferencecall_leaved, conference_updated) have the
 * rest of it to reach the webhooks. */
static void on_drain(uv_timer_t *t)
{
    struct server *s = t->data;
    if (!s->calls_done) {
        if (call_mgr_live(s->calls) > 0 && tm_now_us() < s->calls_deadline)
            return;
        call_mgr_shutdown(s->calls);
        s->calls_done = true;
    }
    bool idle = http_inflight(s->http) == 0 && webhook_idle(s->webhook);
    if (idle || tm_now_us() >= s->drain_deadline) {
        if (!idle)
            log_warn("msg=\"shutdown grace period over\" inflight=%u", http_inflight(s->http));
        finish(s);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *s = h->data;
    if (s->stopping)
        return;
    s->stopping = true;
    log_info("msg=\"shutting down\" signal=%d", signum);
    http_quiesce(s->http);
    int64_t now = tm_now_us();
    s->drain_deadline = now + (int64_t)s->cfg.shutdown_grace_ms * 1000;
    s->calls_deadline = now + (int64_t)s->cfg.shutdown_grace_ms * 500;
    call_mgr_drain(s->calls); /* BYE, CANCEL or a refusal to every call */
    uv_timer_start(&s->drain, on_drain, 0, 20);
}

/* HTTP -> SIP over WebSocket, wired here so that neither module includes the other; once the
 * stack is gone (shutdown) nothing more is taken. */
static int sip_ws_admit_cb(void *ctx, char *err, size_t errlen)
{
    struct server *s = ctx;
    if (!s->sip) {
        snprintf(err, errlen, "The SIP service is shutting down.");
        return -2;
    }
    return sip_ws_admit(s->sip, err, errlen);
}

static int sip_ws_accept_cb(void *ctx, int fd, const char *extra, size_t extra_len,
                            void (*closed)(void *), void *arg)
{
    struct server *s = ctx;
    if (!s->sip) {
        closed(arg);
        return -1;
    }
    return sip_ws_accept(s->sip, fd, extra, extra_len, closed, arg);
}

/* identity -> WebSocket hub, wired here so that neither module includes the other. */
static void on_credential_revoked(void *ctx, const char *credential_id, const char *why)
{
    ws_hub_revoke(ctx, credential_id, why);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "passwd"))
        return passwd_command(argc, argv);
    /* Static: what an early failure exit leaves is still reachable, not a leak. */
    static struct server s;
    memset(&s, 0, sizeof(s));
    char err[512];
    int rc = config_load(&s.cfg, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "conferenced: %s\n", err);
        return 2;
    }
    log_set_level(s.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit fails the recording's write instead */
    raise_fd_limit(&s.cfg);

    if (mkdir_p(s.cfg.data_dir) < 0) {
        fprintf(stderr, "conferenced: cannot create data directory %s: %s\n", s.cfg.data_dir,
                strerror(errno));
        return 1;
    }
    if (open_store(s.cfg.data_dir, &s.store) < 0)
        return 1;
    int64_t newest = 0;
    if (store_newest_time(s.store, &newest) == 0)
        tm_unique_floor(newest);

    s.loop = uv_default_loop();
    s.bus = events_bus_create();
    s.sched = sched_create_uv(s.loop);
    s.ws = ws_hub_create(s.loop);

    struct webhook_config wcfg = {.allow_private = s.cfg.webhook_allow_private,
                                  .timeout_ms = s.cfg.webhook_timeout_ms,
                                  .retry_delay_ms = 1000};
    s.webhook = webhook_create(s.loop, s.store, &wcfg);
    events_subscribe(s.bus, webhook_on_event, s.webhook);
    events_subscribe(s.bus, ws_hub_on_event, s.ws);

    /* WebRTC legs show one DTLS certificate, made at the first start and kept with the data. */
    s.dtls_cert = dtls_cert_load_or_create(s.cfg.data_dir, err, sizeof(err));
    if (!s.dtls_cert) {
        fprintf(stderr, "conferenced: %s\n", err);
        return 1;
    }
    /* The media plane: the calls own the SIP dialogs and media legs, the bridge the rooms; the
     * engine's events go to the bridge, which hands the calls theirs. */
    const char *media_ip = s.cfg.media_ip[0] ? s.cfg.media_ip : s.cfg.sip_addr;
    struct media_config mcfg = {.bind_ip = media_ip,
                                .port_min = s.cfg.rtp_port_min,
                                .port_max = s.cfg.rtp_port_max,
                                .threads = s.cfg.media_threads,
                                .rtp_timeout_ms = s.cfg.rtp_timeout_ms,
                                .opus_bitrate = s.cfg.opus_bitrate,
                                .opus_complexity = s.cfg.opus_complexity,
                                .dtls_cert = s.dtls_cert};
    s.media = media_engine_create(s.loop, &mcfg, on_media_event, &s, err, sizeof(err));
    if (!s.media) {
        fprintf(stderr, "conferenced: %s\n", err);
        return 1;
    }
    s.flows = flow_mgr_create(s.store, s.bus);
    struct routing_lookups rlookups = {&s, route_conference_by_hash, route_number};
    s.routing = routing_create(&rlookups);
    struct call_deps calldeps = {
        .store = s.store,
        .bus = s.bus,
        .media = s.media,
        .sched = s.sched,
        .media_ip = s.cfg.public_ip[0] ? s.cfg.public_ip : media_ip,
        .ring_timeout_ms = s.cfg.ring_timeout_ms,
        .router = {s.routing, route_call},
        .flows = {&s, call_flow_exists, call_flow_create},
        .listener = {&s, on_call_ready, on_call_ended, on_call_dtmf, on_call_play_done,
                     on_call_left},
    };
    s.calls = call_mgr_create(&calldeps);
    struct bridge_deps bdeps = {.media = s.media,
                                .legs = call_bridge_legs(s.calls),
                                .reports = {&s, on_bridge_joined, on_bridge_leaved}};
    s.bridge = bridge_create(&bdeps);
    struct conference_deps cdeps = {.store = s.store,
                                    .bus = s.bus,
                                    .sched = s.sched,
                                    .bridge = bridge_conference_iface(s.bridge),
                                    .calls = call_conference_iface(s.calls),
                                    .flows = {s.flows, conference_flow_exists},
                                    .max_conferences = s.cfg.max_conferences};
    s.conferences = conference_mgr_create(&cdeps);
    s.tts = tts_create(s.loop);
    audio_allow_private_hosts(s.cfg.webhook_allow_private);
    char sounds_dir[600];
    if (s.cfg.sounds_dir[0])
        snprintf(sounds_dir, sizeof(sounds_dir), "%s", s.cfg.sounds_dir);
    else
        snprintf(sounds_dir, sizeof(sounds_dir), "%s/sounds", s.cfg.data_dir);
    mkdir_p(sounds_dir);
    start_recordings(&s);
    start_transcribes(&s); /* after the bus's webhook and WebSocket: it publishes from theirs */
    /* Flows run on calls: the activeflows act through the calls module's operations. */
    struct af_deps afdeps = {.loop = s.loop,
                             .store = s.store,
                             .bus = s.bus,
                             .sched = s.sched,
                             .flows = s.flows,
                             .conferences = s.conferences,
                             .tts = s.tts,
                             .sounds_dir = sounds_dir,
                             .call = call_flow_ops(s.calls),
                             .recordings = recording_flow_iface(s.recordings)};
    if (s.transcribes)
        afdeps.transcribes = transcribe_flow_iface(s.transcribes);
    s.afs = af_mgr_create(&afdeps);
    if (recover(&s) < 0 || recording_mgr_recover(s.recordings) < 0 ||
        (s.transcribes && transcribe_mgr_recover(s.transcribes) < 0)) {
        fprintf(stderr, "conferenced: cannot recover calls and conferences from the store\n");
        return 1;
    }
    struct sip_config scfg = {.addr = s.cfg.sip_addr,
                              .port = s.cfg.sip_port,
                              .user_agent = "conferenced",
                              .max_dialogs = 10000,
                              .max_setup_per_source = s.cfg.sip_max_setup_per_source,
                              .ws_max_connections = s.cfg.sip_ws_max_connections,
                              .ws_max_message = s.cfg.sip_ws_max_message};
    struct sip_callbacks scb = call_sip_callbacks(s.calls);
    s.sip = sip_create(s.loop, &scfg, &scb, err, sizeof(err));
    if (!s.sip) {
        fprintf(stderr, "conferenced: %s\n", err);
        return 1;
    }
    struct call_sip csip = call_sip_stack(s.sip);
    call_mgr_set_sip(s.calls, &csip);    /* see call.h: the stack needed the calls' callbacks */
    call_mgr_end_saved_dialogs(s.calls); /* BYE to the calls a crash left up */
    struct identity_options iopt = {.login_workers = s.cfg.login_workers,
                                    .login_queue = s.cfg.login_queue,
                                    .login_failures_per_minute = s.cfg.login_failures_per_minute,
                                    .webhook_allow_private = s.cfg.webhook_allow_private,
                                    .listener = {on_credential_revoked, s.ws}};
    s.identity = identity_create(s.loop, s.store, s.bus, &iopt);
    struct api_deps adeps = {.store = s.store,
                             .identity = s.identity,
                             .conferences = s.conferences,
                             .calls = s.calls,
                             .flows = s.flows,
                             .activeflows = s.afs,
                             .recordings = s.recordings,
                             .transcribes = s.transcribes};
    s.api = api_create(&adeps);
    struct http_config hcfg = {.addr = s.cfg.http_addr,
                               .port = s.cfg.http_port,
                               .max_connections = s.cfg.http_max_connections,
                               .max_connections_per_address =
                                   s.cfg.http_max_connections_per_address,
                               .request_timeout_ms = s.cfg.http_request_timeout_ms,
                               .cors_origin = s.cfg.cors_origin,
                               .sip_ws = {&s, sip_ws_admit_cb, sip_ws_accept_cb}};
    s.http = http_start(s.loop, &hcfg, s.api, s.ws, err, sizeof(err));
    if (!s.http) {
        fprintf(stderr, "conferenced: %s\n", err);
        api_destroy(s.api);
        identity_destroy(s.identity); /* its threads would outlive main */
        return 1;
    }
    /* Only now that both sockets are bound: a start that fails must leave no operator behind
     * whose generated password nobody saw. The loop has not run, so no request came in yet. */
    char *generated = NULL;
    rc = identity_bootstrap(s.identity, s.cfg.admin_username, s.cfg.admin_password, &generated);
    if (rc < 0) {
        fprintf(stderr, "conferenced: cannot create the first admin\n");
        identity_destroy(s.identity);
        return 1;
    }
    if (rc == 0 && s.cfg.admin_password[0])
        log_info("msg=\"admin_password is only used on the first start; to change a password, "
                 "stop the server and run: conferenced passwd USERNAME\"");

    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_timer_init(s.loop, &s.drain);
    s.drain.data = &s;

    log_info("msg=\"server started\" http=%s:%d data=%s", s.cfg.http_addr, http_port(s.http),
             s.cfg.data_dir);
    printf("conferenced listening on http://%s:%d\n", s.cfg.http_addr, http_port(s.http));
    printf("conferenced SIP on udp %s:%d (RTP %s:%d-%d)\n", s.cfg.sip_addr, sip_port(s.sip),
           media_ip, s.cfg.rtp_port_min, s.cfg.rtp_port_max);
    printf("conferenced SIP over WebSocket on ws://%s:%d/sip (subprotocol sip)\n", s.cfg.http_addr,
           http_port(s.http));
    if (generated) {
        printf("first start: created admin '%s' with password '%s' (shown once; set "
               "CONFERENCED_ADMIN_PASSWORD to choose it)\n",
               s.cfg.admin_username, generated);
        free(generated);
    }
    printf("log in: curl -s -X POST http://%s:%d/auth/login -d "
           "'{\"username\":\"%s\",\"password\":\"<password>\"}'\n",
           s.cfg.http_addr, http_port(s.http), s.cfg.admin_username);
    fflush(stdout);

    uv_run(s.loop, UV_RUN_DEFAULT); /* returns once finish() has closed every handle */

    http_destroy(s.http);
    call_mgr_destroy(s.calls);
    bridge_destroy(s.bridge);
    routing_destroy(s.routing);
    flow_mgr_destroy(s.flows);
    api_destroy(s.api);
    recording_mgr_destroy(s.recordings);
    transcribe_mgr_destroy(s.transcribes);
    identity_destroy(s.identity);
    events_bus_destroy(s.bus);
    store_close(s.store);
    uv_loop_close(s.loop);
    return 0;
}
