#include "call/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

enum media_state { MEDIA_NONE = 0, MEDIA_JOINING, MEDIA_JOINED, MEDIA_LEAVING };

/* A call that is not hung up yet: its dialog, its media leg and where its flow stands. */
struct live_call {
    id_t_ id;
    id_t_ customer_id;
    struct sip_dialog *dialog;
    struct media_leg *leg;
    id_t_ conference_id; /* the conference_join target of the built-in direct flow */
    id_t_ cc_id;         /* its participant, while in the conference */
    bool in_conference;
    enum media_state media;
    enum call_status status;
    bool hanging_up;
};

struct call_mgr {
    struct call_deps d;
    struct conference_mgr *conferences;
    struct sip_stack *sip;
    struct idmap live;  /* call id -> struct live_call */
    struct idmap rooms; /* conference id -> struct media_room */
    char media_ip[64];
};

static int call_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "CALL_NOT_FOUND",
                     "No call with id %s exists for this customer.", id);
}

static void publish(struct call_mgr *m, const char *type, const struct call *c)
{
    events_publish(m->d.bus, type, c->customer_id, c->id, call_to_json(c));
}

/* Writes a status change of a live call to its record and publishes call_<status>. */
static void set_status(struct call_mgr *m, struct live_call *lc, enum call_status st,
                       const char *hangup_by, const char *reason, const char *action)
{
    struct call c;
    if (store_call_get(m->d.store, NULL, lc->id, &c) != 0)
        return;
    int64_t now = tm_now_us();
    c.status = st;
    lc->status = st;
    if (st == CALL_RINGING && !c.tm_ringing)
        c.tm_ringing = now;
    if (st == CALL_PROGRESSING && !c.tm_progressing)
        c.tm_progressing = now;
    if (st == CALL_HANGUP)
        c.tm_hangup = now;
    if (hangup_by && !c.hangup_by[0])
        str_copy(c.hangup_by, sizeof(c.hangup_by), hangup_by);
    if (reason && !c.hangup_reason[0])
        str_copy(c.hangup_reason, sizeof(c.hangup_reason), reason);
    if (action) {
        free(c.action);
        c.action = xstrdup(action);
    }
    c.tm_update = now;
    if (store_call_update(m->d.store, &c) == 0) {
        char type[32];
        snprintf(type, sizeof(type), "call_%s", call_status_name(st));
        publish(m, type, &c);
    }
    call_fini(&c);
}

static char *address_json(const char *type, const char *target, const char *target_name)
{
    json_t *a = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", type, "target", target ? target : "",
                          "target_name", target_name ? target_name : "", "name", "", "detail", "");
    if (!a) /* only when target is not valid UTF-8: keep the record, drop the text */
        a = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", type, "target", "", "target_name", "",
                      "name", "", "detail", "");
    char *s = json_dump_compact(a);
    json_decref(a);
    return s;
}

static char *action_json(const char *type, const char *conference_id)
{
    json_t *a =
        json_pack("{s:s,s:s,s:s,s:{}}", "id", ID_NIL, "next_id", ID_NIL, "type", type, "option");
    if (conference_id)
        json_object_set_new(json_object_get(a, "option"), "conference_id",
                            json_string(conference_id));
    char *s = json_dump_compact(a);
    json_decref(a);
    return s;
}

static void live_free(struct call_mgr *m, struct live_call *lc)
{
    idmap_del(&m->live, lc->id);
    free(lc);
}

/* Ends a live call from our side: BYE, then on_ended finishes it. */
static void hangup_live(struct call_mgr *m, struct live_call *lc, const char *reason)
{
    if (lc->hanging_up)
        return;
    lc->hanging_up = true;
    log_info("msg=\"call hangup\" call_id=%s reason=%s", lc->id, reason);
    set_status(m, lc, CALL_TERMINATING, "local", reason, NULL);
    if (!lc->dialog || sip_dialog_bye(lc->dialog) < 0) {
        /* No dialog to end: finish here. */
        if (lc->leg) {
            media_leg_destroy(m->d.media, lc->leg);
            lc->leg = NULL;
        }
        set_status(m, lc, CALL_HANGUP, "local", reason, NULL);
        if (lc->dialog)
            sip_dialog_set_data(lc->dialog, NULL);
        live_free(m, lc);
    }
}

/* ---- SIP ---- */

static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct call_mgr *m = ctx;
    const char *user = inv->request_user ? inv->request_user : "";
    if (strncmp(user, "direct.", 7) != 0) {
        sip_dialog_reject(d, 404, "Not Found");
        return;
    }
    struct conference conf;
    struct error e;
    if (!m->conferences || conference_find_by_hash(m->conferences, user, &conf, &e) < 0) {
        log_info("msg=\"direct call refused\" reason=unknown_hash call_id=%s", inv->call_id);
        sip_dialog_reject(d, 404, "Not Found");
        return;
    }
    if (conf.status != CONFERENCE_PROGRESSING) {
        conference_fini(&conf);
        sip_dialog_reject(d, 403, "Forbidden");
        return;
    }
    if (conf.type == CONFERENCE_TYPE_CONNECT && conf.n_call_ids >= 2) {
        conference_fini(&conf);
        sip_dialog_reject(d, 486, "Busy Here");
        return;
    }
    struct sdp_offer_result offer;
    if (!inv->sdp || sdp_parse_offer(inv->sdp, &offer) < 0) {
        conference_fini(&conf);
        sip_dialog_reject(d, 488, "Not Acceptable Here");
        return;
    }
    char err[128];
    struct call c;
    memset(&c, 0, sizeof(c));
    id_new(c.id);
    struct media_leg *leg = media_leg_create(m->d.media, c.id, err, sizeof(err));
    if (!leg) {
        log_warn("msg=\"no media port\" call_id=%s error=\"%s\"", inv->call_id, err);
        conference_fini(&conf);
        sip_dialog_reject(d, 503, "Service Unavailable");
        return;
    }
    memcpy(c.customer_id, conf.customer_id, ID_LEN + 1);
    memcpy(c.owner_id, ID_NIL, ID_LEN + 1);
    memcpy(c.flow_id, ID_NIL, ID_LEN + 1);
    memcpy(c.activeflow_id, ID_NIL, ID_LEN + 1);
    memcpy(c.master_call_id, ID_NIL, ID_LEN + 1);
    str_copy(c.type, sizeof(c.type), "conference");
    c.source = address_json("sip", inv->from_uri, inv->from_display);
    c.destination = address_json("sip", inv->request_uri, NULL);
    c.status = CALL_RINGING;
    c.action = action_json("answer", NULL);
    c.direction = CALL_INCOMING;
    c.metadata = xstrdup("{}");
    c.tm_create = c.tm_update = c.tm_ringing = tm_unique_us();
    c.tm_delete = TM_NEVER;
    if (store_call_insert(m->d.store, &c) != 0) {
        media_leg_destroy(m->d.media, leg);
        call_fini(&c);
        conference_fini(&conf);
        sip_dialog_reject(d, 500, "Server Internal Error");
        return;
    }
    struct live_call *lc = xcalloc(1, sizeof(*lc));
    memcpy(lc->id, c.id, sizeof(lc->id));
    memcpy(lc->customer_id, c.customer_id, sizeof(lc->customer_id));
    memcpy(lc->conference_id, conf.id, sizeof(lc->conference_id));
    lc->dialog = d;
    lc->leg = leg;
    lc->status = CALL_RINGING;
    idmap_put(&m->live, lc->id, lc);
    sip_dialog_set_data(d, lc);
    log_info("msg=\"call created\" call_id=%s sip_call_id=%s conference_id=%s port=%d", c.id,
             inv->call_id, conf.id, media_leg_port(leg));
    publish(m, "call_created", &c);
    call_fini(&c);
    conference_fini(&conf);

    media_leg_set_remote(m->d.media, leg, offer.remote_ip, offer.remote_port,
                         offer.codec == SDP_PCMA ? MIX_PCMA : MIX_PCMU, offer.dtmf_pt);
    char sdp[2048];
    uint64_t session = (uint64_t)tm_now_us();
    if (sdp_build_answer(&offer, m->media_ip, media_leg_port(leg), session, session, sdp,
                         sizeof(sdp)) < 0 ||
        sip_dialog_answer(d, sdp) < 0) {
        hangup_live(m, lc, "failed");
        return;
    }
    char *action = action_json("conference_join", lc->conference_id);
    set_status(m, lc, CALL_PROGRESSING, NULL, NULL, action);
    free(action);
}

/* The built-in direct flow: answer (done) → conference_join → nothing left: hang up. */
static void run_conference_join(struct call_mgr *m, struct live_call *lc)
{
    struct conferencecall cc;
    struct error e;
    if (conference_join(m->conferences, lc->conference_id, CC_REFERENCE_CALL, lc->id, NULL, &cc,
                        &e) < 0) {
        log_info("msg=\"join refused\" call_id=%s reason=%s", lc->id, e.reason);
        hangup_live(m, lc, "normal");
        return;
    }
    memcpy(lc->cc_id, cc.id, sizeof(lc->cc_id));
    lc->in_conference = true;
    if (conference_connect(m->conferences, cc.id, &e) < 0)
        log_warn("msg=\"connect failed\" call_id=%s reason=%s", lc->id, e.reason);
}

static void on_established(void *ctx, struct sip_dialog *d)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = sip_dialog_data(d);
    if (!lc || lc->hanging_up)
        return;
    run_conference_join(m, lc);
}

static void on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = sip_dialog_data(d);
    if (!lc)
        return;
    lc->dialog = NULL;
    if (lc->leg) {
        media_leg_destroy(m->d.media, lc->leg); /* out of the room at once, no event */
        lc->leg = NULL;
    }
    lc->media = MEDIA_NONE;
    const char *reason = cancelled ? "cancel" : "normal";
    set_status(m, lc, CALL_HANGUP, remote ? "remote" : "local", reason, NULL);
    log_info("msg=\"call ended\" call_id=%s by=%s", lc->id, remote ? "remote" : "local");
    if (lc->in_conference)
        conference_leave(m->conferences, lc->cc_id); /* the kick finds no leg: leaves at once */
    live_free(m, lc);
}

struct sip_callbacks call_sip_callbacks(struct call_mgr *m)
{
    struct sip_callbacks cb = {m, on_invite, on_established, on_ended};
    return cb;
}

/* ---- media ---- */

static struct live_call *live_by_leg(struct call_mgr *m, struct media_leg *leg)
{
    struct live_call *lc = idmap_get(&m->live, media_leg_key(leg));
    return lc && lc->leg == leg ? lc : NULL;
}

void call_on_media_event(void *ctx, const struct media_event *ev)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = live_by_leg(m, ev->leg);
    if (!lc)
        return;
    switch (ev->type) {
    case MEDIA_LEG_JOINED:
        lc->media = MEDIA_JOINED;
        if (lc->in_conference)
            conference_on_joined(m->conferences, lc->cc_id);
        break;
    case MEDIA_LEG_LEFT:
        lc->media = MEDIA_NONE;
        if (lc->in_conference)
            conference_on_leaved(m->conferences, lc->cc_id);
        break;
    case MEDIA_LEG_DTMF: {
        log_info("msg=dtmf call_id=%s digit=%c", lc->id, ev->digit);
        char digit[2] = {ev->digit, 0};
        events_publish(m->d.bus, "call_dtmf_received", lc->customer_id, lc->id,
                       json_pack("{s:s,s:s}", "call_id", lc->id, "digit", digit));
        break;
    }
    case MEDIA_LEG_TIMEOUT:
        log_info("msg=\"rtp timeout\" call_id=%s", lc->id);
        hangup_live(m, lc, "timeout");
        break;
    }
}

/* ---- bridge (for conferences) ---- */

static struct media_room *room_for(struct call_mgr *m, const char *conference_id)
{
    struct media_room *r = idmap_get(&m->rooms, conference_id);
    if (!r) {
        r = media_room_create(m->d.media, conference_id);
        idmap_put(&m->rooms, conference_id, r);
    }
    return r;
}

static int bridge_create(void *ctx, const struct conference *c)
{
    room_for(ctx, c->id);
    return 0;
}

static void bridge_destroy(void *ctx, const char *conference_id)
{
    struct call_mgr *m = ctx;
    struct media_room *r = idmap_del(&m->rooms, conference_id);
    if (r)
        media_room_destroy(m->d.media, r);
}

static int bridge_join(void *ctx, const struct conferencecall *cc)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, cc->reference_id);
    if (!lc || !lc->leg || lc->hanging_up)
        return -1;
    lc->media = MEDIA_JOINING;
    media_leg_join(m->d.media, lc->leg, room_for(m, cc->conference_id));
    return 0;
}

static void bridge_kick(void *ctx, const struct conferencecall *cc)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, cc->reference_id);
    if (lc && lc->leg && lc->media != MEDIA_NONE) {
        lc->media = MEDIA_LEAVING;
        media_leg_leave(m->d.media, lc->leg); /* MEDIA_LEG_LEFT follows */
        return;
    }
    conference_on_leaved(m->conferences, cc->id); /* nothing in the bridge */
}

struct conference_bridge call_bridge_iface(struct call_mgr *m)
{
    struct conference_bridge b = {m, bridge_create, bridge_destroy, bridge_join, bridge_kick};
    return b;
}

static bool calls_is_progressing(void *ctx, enum cc_reference_type t, const char *id)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, id);
    return t == CC_REFERENCE_CALL && lc && lc->status == CALL_PROGRESSING && !lc->hanging_up;
}

static void calls_left(void *ctx, const struct conferencecall *cc, const struct conference *c)
{
    struct call_mgr *m = ctx;
    struct live_call *lc = idmap_get(&m->live, cc->reference_id);
    if (!lc || strcmp(lc->cc_id, cc->id) != 0)
        return;
    lc->in_conference = false;
    /* The built-in direct flow has nothing after conference_join. */
    if (lc->status == CALL_PROGRESSING)
        hangup_live(m, lc, "normal");
}

struct conference_calls call_conference_iface(struct call_mgr *m)
{
    struct conference_calls c = {m, calls_is_progressing, calls_left};
    return c;
}

/* ---- lifecycle and API ---- */

struct call_mgr *call_mgr_create(const struct call_deps *deps)
{
    struct call_mgr *m = xcalloc(1, sizeof(*m));
    m->d = *deps;
    str_copy(m->media_ip, sizeof(m->media_ip), deps->media_ip ? deps->media_ip : "127.0.0.1");
    idmap_init(&m->live);
    idmap_init(&m->rooms);
    return m;
}

void call_mgr_destroy(struct call_mgr *m)
{
    if (!m)
        return;
    size_t it = 0;
    void *v;
    while (idmap_next(&m->live, &it, NULL, &v))
        free(v);
    idmap_fini(&m->live);
    idmap_fini(&m->rooms);
    free(m);
}

void call_mgr_set_conferences(struct call_mgr *m, struct conference_mgr *conferences)
{
    m->conferences = conferences;
}

void call_mgr_set_sip(struct call_mgr *m, struct sip_stack *sip)
{
    m->sip = sip;
}

void call_mgr_set_media(struct call_mgr *m, struct media_engine *media)
{
    m->d.media = media;
}

void call_mgr_shutdown(struct call_mgr *m)
{
    size_t it = 0;
    void *v;
    while (idmap_next(&m->live, &it, NULL, &v)) {
        struct live_call *lc = v;
        set_status(m, lc, CALL_HANGUP, "local", "normal", NULL);
        if (lc->dialog)
            sip_dialog_set_data(lc->dialog, NULL);
        free(lc);
    }
    idmap_fini(&m->live);
    idmap_init(&m->live);
}

int call_mgr_recover(struct call_mgr *m)
{
    struct call *list = NULL;
    size_t n = 0;
    if (store_call_list_live(m->d.store, &list, &n) != 0)
        return -1;
    int64_t now = tm_now_us();
    for (size_t i = 0; i < n; i++) {
        struct call *c = &list[i];
        c->status = CALL_HANGUP;
        c->tm_hangup = c->tm_update = now;
        if (!c->hangup_reason[0])
            str_copy(c->hangup_reason, sizeof(c->hangup_reason), "failed");
        if (!c->hangup_by[0])
            str_copy(c->hangup_by, sizeof(c->hangup_by), "local");
        if (store_call_update(m->d.store, c) == 0)
            publish(m, "call_hangup", c);
    }
    if (n)
        log_info("msg=\"calls from the previous run ended\" count=%zu", n);
    store_free_calls(list, n);
    return 0;
}

int call_get(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
             struct error *e)
{
    int rc = store_call_get(m->d.store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return call_not_found(id, e);
    if (rc != 0)
        return error_set(e, ERR_INTERNAL, "INTERNAL", "The call could not be read.");
    return 0;
}

int call_hangup(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
                struct error *e)
{
    int rc = call_get(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    struct live_call *lc = idmap_get(&m->live, id);
    if (!lc)
        return 0;
    call_fini(out);
    hangup_live(m, lc, "normal");
    return call_get(m, customer_id, id, out, e);
}

int call_delete(struct call_mgr *m, const char *customer_id, const char *id, struct call *out,
                struct error *e)
{
    int rc = call_hangup(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    if (out->tm_delete == TM_NEVER) {
        out->tm_delete = out->tm_update = tm_now_us();
        if (store_call_update(m->d.store, out) == 0)
            publish(m, "call_deleted", out);
    }
    return 0;
}

size_t call_mgr_live(const struct call_mgr *m)
{
    return m->live.len;
}
