#include "bridge/bridge.h"

#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/mem.h"

/* A call's leg asked into a room, in it, or on its way out. A call with no member entry has its
 * audio out of every room (no join asked, or its leave confirmed). */
enum member_state { MEMBER_JOINING = 1, MEMBER_JOINED, MEMBER_LEAVING };

struct member {
    id_t_ call_id;
    id_t_ cc_id; /* the participant whose audio it is */
    struct media_leg *leg;
    enum member_state state;
};

struct bridge {
    struct bridge_deps d;
    struct idmap rooms;   /* conference id -> struct media_room */
    struct idmap members; /* call id -> struct member */
};

struct bridge *bridge_create(const struct bridge_deps *deps)
{
    struct bridge *b = xcalloc(1, sizeof(*b));
    b->d = *deps;
    idmap_init(&b->rooms);
    idmap_init(&b->members);
    return b;
}

void bridge_destroy(struct bridge *b)
{
    if (!b)
        return;
    size_t it = 0;
    void *v;
    while (idmap_next(&b->members, &it, NULL, &v))
        free(v);
    idmap_fini(&b->members);
    idmap_fini(&b->rooms);
    free(b);
}

static struct media_leg *call_leg(struct bridge *b, const char *call_id)
{
    return b->d.legs.leg ? b->d.legs.leg(b->d.legs.ctx, call_id) : NULL;
}

static void report_joined(struct bridge *b, const char *cc_id)
{
    if (b->d.reports.joined)
        b->d.reports.joined(b->d.reports.ctx, cc_id);
}

static void report_leaved(struct bridge *b, const char *cc_id)
{
    if (b->d.reports.leaved)
        b->d.reports.leaved(b->d.reports.ctx, cc_id);
}

/* Rooms come into being with their conference (create) or, for a conference recovered while its
 * bridge was lost, with its first join. */
static struct media_room *room_for(struct bridge *b, const char *conference_id)
{
    struct media_room *r = idmap_get(&b->rooms, conference_id);
    if (!r) {
        r = media_room_create(b->d.media, conference_id);
        idmap_put(&b->rooms, conference_id, r);
    }
    return r;
}

/* ---- struct conference_bridge ---- */

static int op_create(void *ctx, const struct conference *c)
{
    room_for(ctx, c->id);
    return 0;
}

static void op_destroy(void *ctx, const char *conference_id)
{
    struct bridge *b = ctx;
    struct media_room *r = idmap_del(&b->rooms, conference_id);
    if (r)
        media_room_destroy(b->d.media, r); /* MEDIA_LEG_LEFT for the legs still in it */
}

static int op_join(void *ctx, const struct conferencecall *cc)
{
    struct bridge *b = ctx;
    if (idmap_get(&b->members, cc->reference_id) || !b->d.legs.joinable ||
        !b->d.legs.joinable(b->d.legs.ctx, cc->reference_id))
        return -1;
    struct media_leg *leg = call_leg(b, cc->reference_id);
    if (!leg)
        return -1;
    struct member *mb = xcalloc(1, sizeof(*mb));
    memcpy(mb->call_id, cc->reference_id, sizeof(mb->call_id));
    memcpy(mb->cc_id, cc->id, sizeof(mb->cc_id));
    mb->leg = leg;
    mb->state = MEMBER_JOINING;
    idmap_put(&b->members, mb->call_id, mb);
    media_leg_join(b->d.media, leg, room_for(b, cc->conference_id)); /* MEDIA_LEG_JOINED follows */
    return 0;
}

/* A kick of a participant whose audio is (or is going) in: out of the room, confirmed by
 * MEDIA_LEG_LEFT. Anything else (the call has no leg any more, another participant of the call)
 * has nothing in the bridge: confirmed at once. */
static void op_kick(void *ctx, const struct conferencecall *cc)
{
    struct bridge *b = ctx;
    struct member *mb = idmap_get(&b->members, cc->reference_id);
    struct media_leg *leg = call_leg(b, cc->reference_id);
    if (mb && leg && mb->leg == leg && !strcmp(mb->cc_id, cc->id)) {
        mb->state = MEMBER_LEAVING;
        media_leg_leave(b->d.media, leg); /* MEDIA_LEG_LEFT follows */
        return;
    }
    report_leaved(b, cc->id);
}

struct conference_bridge bridge_conference_iface(struct bridge *b)
{
    struct conference_bridge i = {b, op_create, op_destroy, op_join, op_kick};
    return i;
}

/* ---- media events and calls ---- */

void bridge_on_media_event(struct bridge *b, const struct media_event *ev)
{
    if (ev->type != MEDIA_LEG_JOINED && ev->type != MEDIA_LEG_LEFT) {
        if (b->d.legs.on_event)
            b->d.legs.on_event(b->d.legs.ctx, ev);
        return;
    }
    const char *call_id = media_leg_key(ev->leg);
    struct member *mb = idmap_get(&b->members, call_id);
    if (!mb || mb->leg != ev->leg || call_leg(b, call_id) != ev->leg)
        return;
    id_t_ cc_id;
    memcpy(cc_id, mb->cc_id, sizeof(cc_id));
    if (ev->type == MEDIA_LEG_JOINED) {
        mb->state = MEMBER_JOINED;
        report_joined(b, cc_id);
        return;
    }
    /* Out before the report: the call's flow may go on to join another conference from it. */
    idmap_del(&b->members, call_id);
    free(mb);
    report_leaved(b, cc_id);
}

void bridge_on_call_ended(struct bridge *b, const char *call_id)
{
    struct member *mb = idmap_del(&b->members, call_id);
    if (!mb)
        return;
    bool leaving = mb->state == MEMBER_LEAVING;
    id_t_ cc_id;
    memcpy(cc_id, mb->cc_id, sizeof(cc_id));
    free(mb);
    if (leaving) /* its MEDIA_LEG_LEFT died with the leg */
        report_leaved(b, cc_id);
}

struct media_room *bridge_room(struct bridge *b, const char *conference_id)
{
    return idmap_get(&b->rooms, conference_id);
}

struct media_leg *bridge_call_leg(struct bridge *b, const char *call_id)
{
    return call_leg(b, call_id);
}

size_t bridge_rooms(const struct bridge *b)
{
    return b->rooms.len;
}
