#include "bridge/capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/mem.h"
#include "media/tap.h"
#include "media/wav.h"

struct cap {
    id_t_ id;
    bool of_call;
    id_t_ target_id;
    struct media_tap *tap;
};

struct capture {
    struct capture_deps d;
    struct recorder *rec;
    struct idmap caps; /* recording id -> struct cap */
};

static void untap(struct capture *c, struct cap *k)
{
    if (k->of_call) {
        struct media_leg *l = c->d.leg(c->d.ctx, k->target_id);
        if (l)
            media_leg_untap(c->d.media, l, k->tap);
    } else {
        struct media_room *r = c->d.room(c->d.ctx, k->target_id);
        if (r)
            media_room_untap(c->d.media, r, k->tap);
    }
}

static void on_result(void *ctx, const struct recorder_result *res)
{
    struct capture *c = ctx;
    struct cap *k = idmap_del(&c->caps, res->id);
    if (!k)
        return;
    untap(c, k);
    struct recording_captured out = {
        .id = res->id,
        .duration_ms = res->duration_ms,
        .size = (int64_t)res->bytes,
        .frames_dropped = (int64_t)res->dropped,
        .reached_max = res->reached_max || res->ended_by_silence,
        .error = res->error,
        .message = res->error ? res->message : NULL,
    };
    media_tap_unref(k->tap);
    free(k);
    if (c->d.done)
        c->d.done(c->d.done_ctx, &out);
}

static int cap_start(void *ctx, const struct recording *rec, const char *path, int64_t max_ms,
                     int64_t silence_ms, struct error *e)
{
    struct capture *c = ctx;
    bool of_call = !strcmp(rec->reference_type, "call");
    struct media_room *room = of_call ? NULL : c->d.room(c->d.ctx, rec->reference_id);
    struct media_leg *leg = of_call ? c->d.leg(c->d.ctx, rec->reference_id) : NULL;
    if (!room && !leg)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "The %s has no audio to record.", of_call ? "call" : "conference");
    if (idmap_get(&c->caps, rec->id))
        return error_set(e, ERR_INTERNAL, "INTERNAL", "Recording %s is already capturing.",
                         rec->id);
    size_t frames = (size_t)(c->d.buffer_ms > 40 ? c->d.buffer_ms : 40) / 20;
    /* A conference is recorded at the 16 kHz its room mixes at (phones' 8 kHz audio in it
     * unchanged but for the rate); a call in its own band, as it was when the recording began. */
    struct media_tap *tap = media_tap_create_rate(frames, room ? 16000 : media_leg_rate(leg));
    int rc = room ? media_room_tap(c->d.media, room, tap) : media_leg_tap(c->d.media, leg, tap);
    if (rc < 0) {
        media_tap_unref(tap);
        return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_TAPS",
                         "The %s already has %d recordings or streams on it.",
                         of_call ? "call" : "conference", MEDIA_TAPS_MAX);
    }
    uint64_t max_frames = max_ms > 0 ? (uint64_t)(max_ms / 20) : 0;
    uint64_t silence_frames = silence_ms > 0 ? (uint64_t)(silence_ms / 20) : 0;
    if (recorder_open_until_silence(c->rec, rec->id, path, tap, max_frames, silence_frames) < 0) {
        if (room)
            media_room_untap(c->d.media, room, tap);
        else
            media_leg_untap(c->d.media, leg, tap);
        media_tap_unref(tap);
        return error_set(e, ERR_INTERNAL, "INTERNAL", "Recording %s is already open.", rec->id);
    }
    struct cap *k = xcalloc(1, sizeof(*k));
    memcpy(k->id, rec->id, sizeof(k->id));
    k->of_call = of_call;
    memcpy(k->target_id, rec->reference_id, sizeof(k->target_id));
    k->tap = tap; /* the capture's reference */
    idmap_put(&c->caps, k->id, k);
    return 0;
}

static void cap_stop(void *ctx, const char *id)
{
    struct capture *c = ctx;
    if (idmap_get(&c->caps, id))
        recorder_close(c->rec, id);
}

static int cap_repair(void *ctx, const char *path, int64_t *duration_ms, int64_t *size)
{
    (void)ctx;
    uint64_t bytes = 0;
    uint32_t rate = WAV_RATE;
    int rc = wav_repair(path, &bytes, &rate);
    if (rc < 0) {
        if (rc != -ENOENT)
            log_warn("msg=\"recording file not repaired\" path=\"%s\" error=\"%s\"", path,
                     strerror(-rc));
        return -1;
    }
    *duration_ms = (int64_t)(bytes / (rate * 2 / 1000));
    *size = (int64_t)bytes + WAV_HEADER_BYTES;
    return 0;
}

struct capture *capture_create(const struct capture_deps *deps)
{
    struct capture *c = xcalloc(1, sizeof(*c));
    c->d = *deps;
    idmap_init(&c->caps);
    c->rec = recorder_create(deps->loop, &deps->recorder, on_result, c);
    return c;
}

void capture_destroy(struct capture *c)
{
    if (!c)
        return;
    recorder_destroy(c->rec); /* every result comes back through on_result first */
    size_t it = 0;
    void *v;
    while (idmap_next(&c->caps, &it, NULL, &v)) {
        struct cap *k = v;
        media_tap_unref(k->tap);
        free(k);
    }
    idmap_fini(&c->caps);
    free(c);
}

struct recording_capture capture_iface(struct capture *c)
{
    struct recording_capture i = {c, cap_start, cap_stop, cap_repair};
    return i;
}

size_t capture_running(const struct capture *c)
{
    return c->caps.len;
}
