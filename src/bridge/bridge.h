/* The conference media bridge: the rooms (conference id -> media_room) and which call's leg is in
 * which room for which participant. It implements struct conference_bridge for the conference
 * module and takes every event of the media engine.
 *
 * Who calls whom (one way each): conference -> bridge (struct conference_bridge); bridge ->
 * media engine (rooms, join, leave); bridge -> calls through struct bridge_legs (leg lookups, and
 * the leg events that are the call's: DTMF, RTP timeout, play done); bridge -> conference through
 * struct bridge_reports (conference_on_joined / conference_on_leaved); the media engine -> bridge
 * (bridge_on_media_event) and the calls' listener -> bridge (bridge_on_call_ended), both wired in
 * main.c. It calls no function of the call or conference modules itself. Control thread only. */
#ifndef CONFERENCED_BRIDGE_H
#define CONFERENCED_BRIDGE_H

#include <stdbool.h>

#include "conference/conference.h"
#include "media/engine.h"

/* What the bridge asks of the calls (the call module: call_bridge_legs(); tests: a fake). */
struct bridge_legs {
    void *ctx;
    /* The media leg of a live call, or NULL (no such call, or it has no leg). */
    struct media_leg *(*leg)(void *ctx, const char *call_id);
    /* True when the call may put its leg into a room now (live, with a leg, not hanging up). */
    bool (*joinable)(void *ctx, const char *call_id);
    /* The events that are the call's (MEDIA_LEG_DTMF, _TIMEOUT, _PLAY_DONE). May be NULL. */
    void (*on_event)(void *ctx, const struct media_event *ev);
};

/* Where the bridge reports a participant's audio in or out of its room (the conference module:
 * conference_on_joined / conference_on_leaved; tests: a recorder). Either may be called from
 * inside a struct conference_bridge operation (a kick with nothing in the room). */
struct bridge_reports {
    void *ctx;
    void (*joined)(void *ctx, const char *conferencecall_id);
    void (*leaved)(void *ctx, const char *conferencecall_id);
};

struct bridge_deps {
    struct media_engine *media;
    struct bridge_legs legs;
    struct bridge_reports reports;
};

struct bridge;

/* Control thread. The caller owns the result (bridge_destroy). */
struct bridge *bridge_create(const struct bridge_deps *deps);
/* Control thread. Forgets the rooms and memberships; the rooms themselves belong to the media
 * engine, which frees them (media_engine_destroy). NULL is a no-op. */
void bridge_destroy(struct bridge *b);

/* Control thread. The conference module's view of the bridge (ctx = b, borrowed). */
struct conference_bridge bridge_conference_iface(struct bridge *b);

/* Control thread: the media engine's single event handler. MEDIA_LEG_JOINED / _LEFT are the
 * bridge's (reported to the conference); the others go to legs.on_event. */
void bridge_on_media_event(struct bridge *b, const struct media_event *ev);
/* Control thread. The call is over and its leg destroyed (out of its room without an event): a
 * leave the bridge was working on (a kick, the flow's end) is reported now, and the call is
 * forgotten. Unknown calls are ignored. */
void bridge_on_call_ended(struct bridge *b, const char *call_id);

/* Control thread. The room of a conference (owned by the bridge, valid until the conference's
 * bridge is destroyed), or NULL when none. */
struct media_room *bridge_room(struct bridge *b, const char *conference_id);
/* Control thread. The media leg of a live call (owned by the call module, valid until the call
 * ends), or NULL when the call has no leg. */
struct media_leg *bridge_call_leg(struct bridge *b, const char *call_id);
/* Control thread. Number of rooms. */
size_t bridge_rooms(const struct bridge *b);

#endif
