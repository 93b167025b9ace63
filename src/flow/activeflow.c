#include "flow/activeflow.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/idmap.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "flow/action.h"
#include "media/audiofile.h"
#include "media/engine.h"
#include "speech/tts.h"

/* Why a cap: goto/branch loops that never wait (no talk, sleep, ...) would spin the control
 * thread; a flow that runs this many actions without waiting once is ended. */
#define MAX_STEPS_WITHOUT_WAIT 1000
#define MAX_FRAMES 16
#define DIGIT_BUFFER 64
/* Why: the far end plays audio out of its jitter buffer after we sent the last frame; hanging up
 * right after a prompt would cut its end off. */
#define PROMPT_TAIL_US INT64_C(400000)

enum wait { W_NONE = 0, W_RENDER, W_PLAY, W_SLEEP, W_DIGITS, W_CONFERENCE };
enum frame_kind { F_MAIN = 0, F_FETCH, F_PRE, F_POST };

/* One action list being executed: pos is the action running now (or next to run). */
struct frame {
    json_t *actions;
    size_t pos;
    enum frame_kind kind;
};

struct af {
    struct af_mgr *m;
    struct activeflow rec;
    id_t_ call_id;
    json_t *vars;
    json_t *executed;
    json_t *loops; /* goto action id -> jumps taken */
    struct frame frames[MAX_FRAMES];
    int depth;
    enum wait wait;
    /* the action running (resolved options) */
    enum action_type type;
    json_t *opt;
    uint32_t play_id;
    size_t play_index;
    bool digits_next;
    struct tts_job *tts_job;
    struct audio_job *audio_job;
    struct sched_timer *timer;
    /* key presses not consumed yet, and the ones digits_receive collects */
    char buffer[DIGIT_BUFFER + 1];
    char collect[ACTION_DIGITS_MAX_LEN + 1];
    /* the conference the call is in (or joining) */
    id_t_ cc_id;
    bool in_conference;
    int conf_frame;
    bool left_pending, conf_ended;
    id_t_ post_flow_id;
    int64_t played_at;     /* when the last prompt finished (sched clock), 0 = never */
    char final_reason[16]; /* hanging up once the prompt tail has been heard */
    char rec_end_key;      /* a recording it started ends on this key ('a': any; 0: none) */
    /* re-entrancy: reports that arrive while the flow runs are handled after the step */
    bool busy, again, ended;
};

struct af_mgr {
    struct af_deps d;
    struct idmap running; /* activeflow id -> struct af */
    uint32_t next_play_id;
};

static void pump(struct af *a);

static int af_not_found(const char *id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "ACTIVEFLOW_NOT_FOUND",
                     "No activeflow with id %s exists for this customer.", id);
}

/* ---- records and events ---- */

static void save(struct af *a)
{
    struct af_mgr *m = a->m;
    free(a->rec.executed_actions);
    a->rec.executed_actions = json_dump_compact(a->executed);
    a->rec.tm_update = tm_now_us();
    if (store_activeflow_update(m->d.store, &a->rec) == 0)
        events_publish(m->d.bus, "activeflow_updated", a->rec.customer_id, a->rec.id,
                       activeflow_to_json(&a->rec));
}

static void set_current(struct af *a, json_t *action)
{
    json_t *x = json_deep_copy(action);
    char tm[TM_TEXT_LEN];
    tm_format(tm_now_us(), tm);
    json_object_set_new(x, "tm_execute", json_string(tm));
    free(a->rec.current_action);
    a->rec.current_action = json_dump_compact(x);
    json_array_append_new(a->executed, x);
    while (json_array_size(a->executed) > ACTIVEFLOW_MAX_EXECUTED)
        json_array_remove(a->executed, 0);
    save(a);
    if (a->m->d.call.action)
        a->m->d.call.action(a->m->d.call.ctx, a->call_id, action);
}

static void cancel_waits(struct af *a)
{
    struct af_mgr *m = a->m;
    if (a->tts_job) {
        tts_cancel(a->tts_job);
        a->tts_job = NULL;
    }
    if (a->audio_job) {
        audio_cancel(a->audio_job);
        a->audio_job = NULL;
    }
    if (a->timer) {
        sched_cancel(m->d.sched, a->timer);
        a->timer = NULL;
    }
    if (a->wait == W_PLAY && m->d.call.play_stop)
        m->d.call.play_stop(m->d.call.ctx, a->call_id);
    a->play_id = 0; /* a late PLAY_DONE no longer matches */
    a->wait = W_NONE;
    json_decref(a->opt);
    a->opt = NULL;
}

static void af_free(struct af *a)
{
    for (int i = 0; i < a->depth; i++)
        json_decref(a->frames[i].actions);
    json_decref(a->vars);
    json_decref(a->executed);
    json_decref(a->loops);
    json_decref(a->opt);
    activeflow_fini(&a->rec);
    free(a);
}

/* Ends the activeflow (status ended). The struct is freed when the current step returns. */
static void end(struct af *a, const char *why)
{
    if (a->ended)
        return;
    struct af_mgr *m = a->m;
    cancel_waits(a);
    a->ended = true;
    a->rec.status = ACTIVEFLOW_ENDED;
    idmap_del(&m->running, a->rec.id);
    log_info("msg=\"activeflow ended\" activeflow_id=%s call_id=%s why=\"%s\"", a->rec.id,
             a->call_id, why);
    save(a);
    if (a->in_conference && m->d.conferences) {
        /* A flow that ends takes its call out of the conference (the report of the leave finds
         * no running activeflow). */
        a->in_conference = false;
        bool was_busy = a->busy;
        a->busy = true;
        conference_leave(m->d.conferences, a->cc_id);
        a->busy = was_busy;
    }
    if (!a->busy)
        af_free(a);
}

/* Nothing left (or a hangup action, or an error): end, then hang the call up. */
static void finish(struct af *a, const char *reason, const char *why)
{
    struct af_mgr *m = a->m;
    id_t_ call_id;
    memcpy(call_id, a->call_id, sizeof(call_id));
    bool was_busy = a->busy;
    a->busy = true; /* the hang-up may report back synchronously */
    end(a, why);
    if (m->d.call.hangup)
        m->d.call.hangup(m->d.call.ctx, call_id, reason);
    a->busy = was_busy;
    if (!was_busy)
        af_free(a);
}

/* ---- moving through the actions ---- */

static struct frame *top(struct af *a)
{
    return a->depth ? &a->frames[a->depth - 1] : NULL;
}

static json_t *current_action(struct frame *f)
{
    return json_array_get(f->actions, f->pos);
}

static void jump(struct frame *f, const char *id)
{
    long i = action_find(f->actions, id);
    f->pos = i < 0 ? json_array_size(f->actions) : (size_t)i;
}

/* The action at pos is done: next_id, or the one after it. */
static void advance(struct af *a)
{
    struct frame *f = top(a);
    a->wait = W_NONE;
    json_decref(a->opt);
    a->opt = NULL;
    if (!f)
        return;
    const char *next = json_string_value(json_object_get(current_action(f), "next_id"));
    if (next && !id_is_nil(next))
        jump(f, next);
    else
        f->pos++;
}

static int push(struct af *a, json_t *actions, enum frame_kind kind)
{
    if (a->depth == MAX_FRAMES) {
        json_decref(actions);
        return -1;
    }
    a->frames[a->depth].actions = actions;
    a->frames[a->depth].pos = 0;
    a->frames[a->depth].kind = kind;
    a->depth++;
    return 0;
}

static void conference_connect_now(struct af *a)
{
    struct error e;
    a->wait = W_CONFERENCE;
    if (conference_connect(a->m->d.conferences, a->cc_id, &e) < 0)
        log_info("msg=\"conference connect failed\" activeflow_id=%s reason=%s", a->rec.id,
                 e.reason);
}

/* The frame on top is finished: return to the action that pushed it. */
static void pop(struct af *a)
{
    struct frame *f = top(a);
    enum frame_kind kind = f->kind;
    json_decref(f->actions);
    a->depth--;
    switch (kind) {
    case F_MAIN:
        break;
    case F_FETCH:
    case F_POST:
        advance(a);
        break;
    case F_PRE:
        conference_connect_now(a);
        break;
    }
}

/* ---- talk and play ---- */

static void start_play(struct af *a, struct media_clip *clip)
{
    struct af_mgr *m = a->m;
    a->play_id = ++m->next_play_id ? m->next_play_id : ++m->next_play_id;
    if (!m->d.call.play || m->d.call.play(m->d.call.ctx, a->call_id, clip, a->play_id) < 0) {
        media_clip_unref(clip);
        a->play_id = 0;
        advance(a);
        return;
    }
    media_clip_unref(clip);
    a->wait = W_PLAY;
    if (a->type == ACTION_TALK && json_is_true(json_object_get(a->opt, "async"))) {
        a->play_id = 0; /* its end does not matter to the flow */
        advance(a);
    }
}

static void play_next(struct af *a);

static void on_rendered(void *arg, struct media_clip *clip, const char *error)
{
    struct af *a = arg;
    a->tts_job = NULL;
    a->audio_job = NULL;
    if (!clip) {
        log_warn("msg=\"media for the action failed\" activeflow_id=%s action=%s error=\"%s\"",
                 a->rec.id, action_type_name(a->type), error ? error : "");
        if (a->type == ACTION_PLAY) {
            a->play_index++;
            play_next(a);
        } else {
            advance(a);
        }
    } else {
        start_play(a, clip);
    }
    pump(a);
}

/* A local location (absolute path or file:// URL) is allowed only inside the sounds directory:
 * customers must not read the server's other files. Returns NULL when allowed, else why not. */
static const char *location_refusal(struct af_mgr *m, const char *loc, char *why, size_t cap)
{
    const char *path = NULL;
    if (loc[0] == '/')
        path = loc;
    else if (!strncasecmp(loc, "file://", 7))
        path = loc + 7;
    if (!path)
        return NULL; /* http(s): fetched, with the loader's own limits */
    if (!m->d.sounds_dir)
        return "local files are not allowed on this server";
    char real[PATH_MAX], dir[PATH_MAX];
    if (!realpath(m->d.sounds_dir, dir)) {
        snprintf(why, cap, "the sounds directory cannot be read: %s", strerror(errno));
        return why;
    }
    if (!realpath(path, real)) {
        snprintf(why, cap, "%s", errno == ENOENT ? "no such file" : strerror(errno));
        return why;
    }
    size_t n = strlen(dir);
    if (strncmp(real, dir, n) != 0 || real[n] != '/')
        return "local files must be inside the sounds directory";
    return NULL;
}

/* play: loads stream_urls[play_index] (or moves on when there are no more). */
static void play_next(struct af *a)
{
    json_t *urls = json_object_get(a->opt, "stream_urls");
    if (a->play_index >= json_array_size(urls) || !a->m->d.loop) {
        advance(a);
        return;
    }
    const char *loc = json_string_value(json_array_get(urls, a->play_index));
    char err[256];
    a->wait = W_RENDER;
    char why[160];
    const char *refusal = loc ? location_refusal(a->m, loc, why, sizeof(why)) : "not a string";
    if (refusal) {
        log_warn("msg=\"play location refused\" activeflow_id=%s location=\"%.200s\" "
                 "error=\"%s\"",
                 a->rec.id, loc ? loc : "", refusal);
        a->play_index++;
        a->wait = W_NONE;
        play_next(a);
        return;
    }
    a->audio_job = audio_load(a->m->d.loop, loc, on_rendered, a, err, sizeof(err));
    if (!a->audio_job) {
        log_warn("msg=\"play location refused\" activeflow_id=%s error=\"%s\"", a->rec.id, err);
        a->play_index++;
        a->wait = W_NONE;
        play_next(a);
    }
}

static void run_talk(struct af *a)
{
    struct af_mgr *m = a->m;
    const char *text = json_string_value(json_object_get(a->opt, "text"));
    const char *lang = json_string_value(json_object_get(a->opt, "language"));
    const char *dh = json_string_value(json_object_get(a->opt, "digits_handle"));
    a->digits_next = dh && !strcmp(dh, "next");
    if (!m->d.tts) {
        advance(a);
        return;
    }
    char err[256];
    a->wait = W_RENDER;
    a->tts_job = tts_render(m->d.tts, text ? text : "", lang && lang[0] ? lang : "en-US",
                            on_rendered, a, err, sizeof(err));
    if (!a->tts_job) {
        log_warn("msg=\"talk refused\" activeflow_id=%s error=\"%s\"", a->rec.id, err);
        advance(a);
    }
}

/* ---- digits ---- */

static void digits_done(struct af *a)
{
    if (a->timer) {
        sched_cancel(a->m->d.sched, a->timer);
        a->timer = NULL;
    }
    json_object_set_new(a->vars, VAR_DIGITS, json_string(a->collect));
    log_info("msg=\"digits received\" activeflow_id=%s digits=\"%s\"", a->rec.id, a->collect);
    advance(a);
}

/* Takes buffered key presses into the collection; true when the action is satisfied. */
static bool digits_take(struct af *a)
{
    const char *key = json_string_value(json_object_get(a->opt, "key"));
    json_int_t length = json_integer_value(json_object_get(a->opt, "length"));
    size_t used = 0, n = strlen(a->buffer);
    bool done = false;
    while (used < n && !done) {
        char d = a->buffer[used++];
        if (key && key[0] && strchr(key, d)) {
            done = true;
            break;
        }
        size_t c = strlen(a->collect);
        if (c < ACTION_DIGITS_MAX_LEN) {
            a->collect[c] = d;
            a->collect[c + 1] = '\0';
        }
        if (length > 0 && (json_int_t)strlen(a->collect) >= length)
            done = true;
    }
    memmove(a->buffer, a->buffer + used, n - used + 1);
    return done;
}

static void on_timer(void *arg)
{
    struct af *a = arg;
    a->timer = NULL;
    if (a->wait == W_SLEEP && a->final_reason[0]) {
        a->wait = W_NONE;
        finish(a, a->final_reason, "hangup after the last prompt");
        return;
    }
    if (a->wait == W_SLEEP)
        advance(a);
    else if (a->wait == W_DIGITS)
        digits_done(a);
    pump(a);
}

static void wait_for(struct af *a, enum wait w, int64_t ms)
{
    a->wait = w;
    a->timer = sched_at(a->m->d.sched, sched_now(a->m->d.sched) + ms * 1000, on_timer, a);
}

/* Hangs up now, or once the end of the last prompt has been heard. */
static void hangup_after_prompt(struct af *a, const char *reason, const char *why)
{
    int64_t since = sched_now(a->m->d.sched) - a->played_at;
    if (a->played_at && since < PROMPT_TAIL_US) {
        str_copy(a->final_reason, sizeof(a->final_reason), reason);
        wait_for(a, W_SLEEP, (PROMPT_TAIL_US - since) / 1000 + 1);
        return;
    }
    finish(a, reason, why);
}

/* ---- conference ---- */

static void run_conference_join(struct af *a)
{
    struct af_mgr *m = a->m;
    const char *cid = json_string_value(json_object_get(a->opt, "conference_id"));
    char id[ID_LEN + 1];
    struct conference conf;
    struct conferencecall cc;
    struct error e;
    if (a->in_conference || !m->d.conferences) {
        advance(a);
        return;
    }
    if (!cid || id_normalize(cid, id) < 0 ||
        conference_get(m->d.conferences, a->rec.customer_id, id, &conf, &e) < 0) {
        log_info("msg=\"join refused\" activeflow_id=%s conference_id=\"%s\" reason=not_found",
                 a->rec.id, cid ? cid : "");
        advance(a);
        return;
    }
    memcpy(a->post_flow_id, conf.post_flow_id, sizeof(a->post_flow_id));
    id_t_ pre;
    memcpy(pre, conf.pre_flow_id, sizeof(pre));
    bool deleted = conf.tm_delete != TM_NEVER;
    conference_fini(&conf);
    if (deleted || conference_join(m->d.conferences, id, CC_REFERENCE_CALL, a->call_id, a->rec.id,
                                   &cc, &e) < 0) {
        log_info("msg=\"join refused\" activeflow_id=%s conference_id=%s reason=%s", a->rec.id, id,
                 deleted ? "deleted" : e.reason);
        advance(a);
        return;
    }
    /* The participant needs the call's audio: an incoming call is answered now. */
    if (m->d.call.answer)
        m->d.call.answer(m->d.call.ctx, a->call_id);
    memcpy(a->cc_id, cc.id, sizeof(a->cc_id));
    a->in_conference = true;
    a->conf_frame = a->depth - 1;
    a->left_pending = false;
    json_t *pre_actions = id_is_nil(pre) ? NULL : flow_actions(m->d.flows, a->rec.customer_id, pre);
    if (pre_actions && json_array_size(pre_actions) > 0 && push(a, pre_actions, F_PRE) == 0)
        return; /* the pre-flow runs while the participant is joining */
    json_decref(pre_actions);
    conference_connect_now(a);
}

/* The participant is out of the conference: back to the action after conference_join. */
static void handle_left(struct af *a)
{
    struct af_mgr *m = a->m;
    a->left_pending = false;
    a->in_conference = false;
    cancel_waits(a);
    while (a->depth > a->conf_frame + 1) {
        a->depth--;
        json_decref(a->frames[a->depth].actions);
    }
    json_t *post = NULL;
    if (a->conf_ended && !id_is_nil(a->post_flow_id))
        post = flow_actions(m->d.flows, a->rec.customer_id, a->post_flow_id);
    if (post && json_array_size(post) > 0 && push(a, post, F_POST) == 0)
        return;
    json_decref(post);
    advance(a);
}

/* ---- recording ---- */

#define BEEP_MS 300
#define BEEP_HZ 1000

/* The beep of beep_start: a 1 kHz tone, made once per use (300 ms, 4.8 KB). */
static struct media_clip *beep_clip(void)
{
    int16_t pcm[8 * BEEP_MS];
    for (size_t i = 0; i < sizeof(pcm) / sizeof(*pcm); i++)
        pcm[i] = (int16_t)(8000.0 * sin(2.0 * M_PI * BEEP_HZ * (double)i / 8000.0));
    return media_clip_create(pcm, sizeof(pcm) / sizeof(*pcm));
}

/* ---- transcribe ---- */

/* The flow goes on whether or not it could start (as a failed prompt does). */
static void run_transcribe_start(struct af *a)
{
    struct af_mgr *m = a->m;
    struct error e;
    if (m->d.transcribes.start && m->d.transcribes.start(m->d.transcribes.ctx, a->rec.customer_id,
                                                         a->call_id, a->rec.id, a->opt, &e) < 0)
        log_warn("msg=\"transcribe_start failed\" activeflow_id=%s reason=%s error=\"%s\"",
                 a->rec.id, e.reason, e.message);
    advance(a);
}

static void run_recording_start(struct af *a)
{
    struct af_mgr *m = a->m;
    if (!m->d.recordings.start) {
        advance(a);
        return;
    }
    if (m->d.call.answer)
        m->d.call.answer(m->d.call.ctx, a->call_id);
    struct error e;
    if (m->d.recordings.start(m->d.recordings.ctx, a->rec.customer_id, a->call_id, a->rec.id,
                              a->opt, &e) < 0) {
        /* The flow goes on without it, as a failed prompt does. */
        log_warn("msg=\"recording_start failed\" activeflow_id=%s reason=%s error=\"%s\"",
                 a->rec.id, e.reason, e.message);
        advance(a);
        return;
    }
    const char *key = json_string_value(json_object_get(a->opt, "end_of_key"));
    a->rec_end_key = !key || !key[0] || !strcmp(key, "none") ? 0
                     : !strcmp(key, "any")                   ? 'a'
                                                             : key[0];
    if (json_is_true(json_object_get(a->opt, "beep_start")))
        start_play(a, beep_clip()); /* the flow goes on once it is heard */
    else
        advance(a);
}

/* ---- one action ---- */

static void execute(struct af *a, struct frame *f)
{
    struct af_mgr *m = a->m;
    json_t *action = current_action(f);
    a->type = action_type_of(action);
    json_decref(a->opt);
    a->opt = action_option_resolve(json_object_get(action, "option"), a->vars);
    set_current(a, action);
    switch (a->type) {
    case ACTION_ANSWER:
        if (m->d.call.answer && m->d.call.answer(m->d.call.ctx, a->call_id) < 0) {
            finish(a, "failed", "the call could not be answered");
            return;
        }
        advance(a);
        return;
    case ACTION_TALK:
        if (m->d.call.answer)
            m->d.call.answer(m->d.call.ctx, a->call_id);
        run_talk(a);
        return;
    case ACTION_PLAY:
        if (m->d.call.answer)
            m->d.call.answer(m->d.call.ctx, a->call_id);
        a->play_index = 0;
        play_next(a);
        return;
    case ACTION_SLEEP:
        wait_for(a, W_SLEEP, json_integer_value(json_object_get(a->opt, "duration")));
        return;
    case ACTION_HANGUP: {
        const char *reason = json_string_value(json_object_get(a->opt, "reason"));
        hangup_after_prompt(a, reason && reason[0] ? reason : "normal", "hangup action");
        return;
    }
    case ACTION_DIGITS_RECEIVE: {
        if (m->d.call.answer)
            m->d.call.answer(m->d.call.ctx, a->call_id);
        a->collect[0] = '\0';
        if (digits_take(a)) {
            digits_done(a);
            return;
        }
        json_t *d = json_object_get(a->opt, "duration");
        wait_for(a, W_DIGITS, d ? json_integer_value(d) : ACTION_DIGITS_DEFAULT_MS);
        return;
    }
    case ACTION_BRANCH: {
        const char *var = json_string_value(json_object_get(a->opt, "variable"));
        json_t *v = json_object_get(a->vars, var && var[0] ? var : VAR_DIGITS);
        const char *value = json_is_string(v) ? json_string_value(v) : "";
        json_t *target = json_object_get(json_object_get(a->opt, "target_ids"), value);
        if (!json_is_string(target))
            target = json_object_get(a->opt, "default_target_id");
        log_info("msg=branch activeflow_id=%s value=\"%s\" target=%s", a->rec.id, value,
                 json_is_string(target) ? json_string_value(target) : "next");
        if (json_is_string(target) && !id_is_nil(json_string_value(target))) {
            jump(f, json_string_value(target));
            json_decref(a->opt);
            a->opt = NULL;
        } else {
            advance(a);
        }
        return;
    }
    case ACTION_GOTO: {
        const char *id = json_string_value(json_object_get(action, "id"));
        json_int_t limit = json_integer_value(json_object_get(a->opt, "loop_count"));
        json_int_t taken = json_integer_value(json_object_get(a->loops, id));
        const char *target = json_string_value(json_object_get(a->opt, "target_id"));
        if (target && (limit == 0 || taken < limit)) {
            json_object_set_new(a->loops, id, json_integer(taken + 1));
            jump(f, target);
            json_decref(a->opt);
            a->opt = NULL;
        } else {
            json_object_del(a->loops, id);
            advance(a);
        }
        return;
    }
    case ACTION_CONFERENCE_JOIN:
        run_conference_join(a);
        return;
    case ACTION_FETCH_FLOW: {
        const char *fid = json_string_value(json_object_get(a->opt, "flow_id"));
        char id[ID_LEN + 1];
        json_t *actions = fid && id_normalize(fid, id) == 0
                              ? flow_actions(m->d.flows, a->rec.customer_id, id)
                              : NULL;
        if (!actions) {
            finish(a, "failed", "fetch_flow: no such flow for this customer");
            return;
        }
        if (push(a, actions, F_FETCH) < 0)
            finish(a, "failed", "fetch_flow: flows nested too deep");
        return;
    }
    case ACTION_RECORDING_START:
        run_recording_start(a);
        return;
    case ACTION_RECORDING_STOP:
        a->rec_end_key = 0;
        if (m->d.recordings.stop)
            m->d.recordings.stop(m->d.recordings.ctx, a->rec.customer_id, a->call_id);
        advance(a);
        return;
    case ACTION_TRANSCRIBE_START:
        run_transcribe_start(a);
        return;
    case ACTION_TRANSCRIBE_STOP:
        if (m->d.transcribes.stop)
            m->d.transcribes.stop(m->d.transcribes.ctx, a->rec.customer_id, a->call_id);
        advance(a);
        return;
    case ACTION__COUNT:
        break;
    }
    advance(a);
}

/* Runs actions until one waits or the flow ends; reports that arrive meanwhile are queued. */
static void pump(struct af *a)
{
    if (a->busy) {
        a->again = true;
        return;
    }
    a->busy = true;
    int steps = 0;
    do {
        a->again = false;
        while (!a->ended) {
            if (a->left_pending) {
                handle_left(a);
                continue;
            }
            if (a->wait != W_NONE)
                break;
            struct frame *f = top(a);
            if (!f) {
                hangup_after_prompt(a, "normal", "the flow has nothing left");
                continue;
            }
            if (f->pos >= json_array_size(f->actions)) {
                pop(a);
                continue;
            }
            if (++steps > MAX_STEPS_WITHOUT_WAIT) {
                finish(a, "failed", "too many actions without waiting (a loop?)");
                break;
            }
            execute(a, f);
        }
    } while (a->again && !a->ended);
    a->busy = false;
    if (a->ended)
        af_free(a);
}

/* ---- reports ---- */

static struct af *find(struct af_mgr *m, const char *id)
{
    return id ? idmap_get(&m->running, id) : NULL;
}

void af_on_play_done(struct af_mgr *m, const char *activeflow_id, uint32_t play_id, bool stopped)
{
    struct af *a = find(m, activeflow_id);
    if (!a || a->wait != W_PLAY || play_id != a->play_id || play_id == 0)
        return;
    a->played_at = sched_now(m->d.sched);
    if (a->type == ACTION_PLAY && !stopped) {
        a->play_index++;
        play_next(a);
    } else {
        advance(a);
    }
    pump(a);
}

void af_on_dtmf(struct af_mgr *m, const char *activeflow_id, char digit)
{
    struct af *a = find(m, activeflow_id);
    if (!a)
        return;
    if (a->rec_end_key && (a->rec_end_key == 'a' || a->rec_end_key == digit)) {
        /* The key ends the recording (and is used up by it). */
        a->rec_end_key = 0;
        if (m->d.recordings.stop)
            m->d.recordings.stop(m->d.recordings.ctx, a->rec.customer_id, a->call_id);
        return;
    }
    size_t n = strlen(a->buffer);
    if (n == DIGIT_BUFFER) {
        memmove(a->buffer, a->buffer + 1, n);
        n--;
    }
    a->buffer[n] = digit;
    a->buffer[n + 1] = '\0';
    if (a->wait == W_DIGITS) {
        if (digits_take(a))
            digits_done(a);
        pump(a);
    } else if (a->wait == W_PLAY && a->type == ACTION_TALK && a->digits_next) {
        a->digits_next = false;
        if (m->d.call.play_stop)
            m->d.call.play_stop(m->d.call.ctx, a->call_id); /* PLAY_DONE (stopped) follows */
    }
}

void af_on_call_ended(struct af_mgr *m, const char *activeflow_id)
{
    struct af *a = find(m, activeflow_id);
    if (a)
        end(a, "the call hung up");
}

void af_on_conference_left(struct af_mgr *m, const char *activeflow_id,
                           const struct conferencecall *cc, const struct conference *c)
{
    struct af *a = find(m, activeflow_id);
    if (!a || !a->in_conference || strcmp(a->cc_id, cc->id) != 0)
        return;
    a->left_pending = true;
    a->conf_ended = c->status == CONFERENCE_TERMINATING || c->status == CONFERENCE_TERMINATED;
    pump(a);
}

/* ---- lifecycle ---- */

struct af_mgr *af_mgr_create(const struct af_deps *deps)
{
    struct af_mgr *m = xcalloc(1, sizeof(*m));
    m->d = *deps;
    idmap_init(&m->running);
    return m;
}

void af_mgr_destroy(struct af_mgr *m)
{
    if (!m)
        return;
    size_t it = 0;
    void *v;
    while (idmap_next(&m->running, &it, NULL, &v)) {
        struct af *a = v;
        if (a->tts_job)
            tts_cancel(a->tts_job);
        if (a->audio_job)
            audio_cancel(a->audio_job);
        if (a->timer)
            sched_cancel(m->d.sched, a->timer);
        af_free(a);
    }
    idmap_fini(&m->running);
    free(m);
}

int af_mgr_recover(struct af_mgr *m)
{
    struct activeflow *list = NULL;
    size_t n = 0;
    if (store_activeflow_list_running(m->d.store, &list, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        list[i].status = ACTIVEFLOW_ENDED;
        list[i].tm_update = tm_now_us();
        if (store_activeflow_update(m->d.store, &list[i]) == 0)
            events_publish(m->d.bus, "activeflow_updated", list[i].customer_id, list[i].id,
                           activeflow_to_json(&list[i]));
    }
    if (n)
        log_info("msg=\"activeflows from the previous run ended\" count=%zu", n);
    store_free_activeflows(list, n);
    return 0;
}

static void set_var(json_t *vars, const char *k, const char *v)
{
    json_t *s = json_string(v ? v : "");
    json_object_set_new(vars, k, s ? s : json_string(""));
}

int af_create(struct af_mgr *m, const char *customer_id, const char *flow_id, json_t *actions,
              const struct af_call_info *call, json_t *vars, char out_id[ID_LEN + 1],
              struct error *e)
{
    json_t *list;
    bool by_flow = flow_id && !id_is_nil(flow_id);
    if (by_flow) {
        list = flow_actions(m->d.flows, customer_id, flow_id);
        if (!list)
            return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                             "No flow with id %s exists for this customer.", flow_id);
    } else {
        list = actions ? json_incref(actions) : json_array();
    }
    struct af *a = xcalloc(1, sizeof(*a));
    a->m = m;
    struct activeflow *r = &a->rec;
    id_new(r->id);
    memcpy(r->customer_id, customer_id, ID_LEN + 1);
    memcpy(r->flow_id, by_flow ? flow_id : ID_NIL, ID_LEN + 1);
    r->status = ACTIVEFLOW_RUNNING;
    str_copy(r->reference_type, sizeof(r->reference_type),
             call->reference_type ? call->reference_type : "call");
    memcpy(r->reference_id, call->reference_id ? call->reference_id : call->call_id, ID_LEN + 1);
    memcpy(r->on_complete_flow_id, ID_NIL, ID_LEN + 1);
    memcpy(r->forward_action_id, ID_NIL, ID_LEN + 1);
    r->current_action = xstrdup("{}");
    r->executed_actions = xstrdup("[]");
    r->tm_create = r->tm_update = tm_unique_us();
    r->tm_delete = TM_NEVER;
    memcpy(a->call_id, call->call_id, ID_LEN + 1);
    a->executed = json_array();
    a->loops = json_object();
    a->vars = json_object();
    if (vars) {
        const char *k;
        json_t *v;
        json_object_foreach(vars, k, v)
        {
            /* voipbin.* comes from the server: a caller's own would be ignored, except where
             * the server itself sets them (a recording's on_end_flow_id). */
            if ((strncmp(k, "voipbin.", 8) != 0 || call->reference_type) && json_is_string(v))
                json_object_set(a->vars, k, v);
        }
    }
    set_var(a->vars, "voipbin.activeflow.id", r->id);
    set_var(a->vars, "voipbin.flow.id", r->flow_id);
    set_var(a->vars, "voipbin.call.id", call->call_id);
    set_var(a->vars, "voipbin.call.source.target", call->source_target);
    set_var(a->vars, "voipbin.call.source.name", call->source_name);
    set_var(a->vars, "voipbin.call.destination.target", call->destination_target);
    set_var(a->vars, "voipbin.call.direction", call->direction);
    set_var(a->vars, VAR_DIGITS, "");
    push(a, list, F_MAIN);
    int rc = store_activeflow_insert(m->d.store, r);
    if (rc != 0) {
        af_free(a);
        return error_set(e, ERR_INTERNAL, "INTERNAL",
                         "The server could not create the activeflow; try again (%d).", rc);
    }
    idmap_put(&m->running, r->id, a);
    events_publish(m->d.bus, "activeflow_created", r->customer_id, r->id, activeflow_to_json(r));
    log_info("msg=\"activeflow created\" activeflow_id=%s call_id=%s flow_id=%s", r->id,
             call->call_id, r->flow_id);
    memcpy(out_id, r->id, ID_LEN + 1);
    return 0;
}

void af_run(struct af_mgr *m, const char *activeflow_id)
{
    struct af *a = find(m, activeflow_id);
    if (a)
        pump(a);
}

/* ---- API ---- */

int af_get(struct af_mgr *m, const char *customer_id, const char *id, struct activeflow *out,
           struct error *e)
{
    int rc = store_activeflow_get(m->d.store, customer_id, id, out);
    if (rc == STORE_NOT_FOUND)
        return af_not_found(id, e);
    if (rc != 0)
        return error_set(e, ERR_INTERNAL, "INTERNAL", "The activeflow could not be read (%d).", rc);
    return 0;
}

int af_stop(struct af_mgr *m, const char *customer_id, const char *id, struct activeflow *out,
            struct error *e)
{
    int rc = af_get(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    struct af *a = find(m, id);
    if (!a)
        return 0;
    activeflow_fini(out);
    finish(a, "normal", "stopped through the API");
    return af_get(m, customer_id, id, out, e);
}

int af_delete(struct af_mgr *m, const char *customer_id, const char *id, struct activeflow *out,
              struct error *e)
{
    int rc = af_stop(m, customer_id, id, out, e);
    if (rc < 0)
        return rc;
    if (out->tm_delete == TM_NEVER) {
        out->tm_delete = out->tm_update = tm_now_us();
        if (store_activeflow_update(m->d.store, out) == 0)
            events_publish(m->d.bus, "activeflow_deleted", out->customer_id, out->id,
                           activeflow_to_json(out));
    }
    return 0;
}

size_t af_mgr_running(const struct af_mgr *m)
{
    return m->running.len;
}
