/* In-process event bus: domain code publishes, webhook and WebSocket delivery subscribe.
 * Control thread only; delivery to subscribers is synchronous and must not block. */
#ifndef CONFERENCED_BUS_H
#define CONFERENCED_BUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* One published event. Valid only during the subscriber call; copy what you keep. */
struct event {
    const char *type;        /* "conference_created", ... */
    const char *customer_id; /* owner of the resource */
    const char *resource;    /* "conference", "conferencecall", ...: the WebSocket topic word */
    const char *resource_id;
    const json_t *data;  /* the resource as the API returns it */
    const char *payload; /* {"type":...,"data":...} serialised once, compact */
    size_t payload_len;
};

typedef void (*event_subscriber)(const struct event *ev, void *ctx);

/* Every resource the server publishes events of (an event type's word before its first '_'),
 * in one place: the WebSocket's topic kinds are checked against it, and events_publish asserts
 * that its events use one. NULL-terminated, sorted. */
extern const char *const events_resources[];
/* Any thread. True when resource is one of events_resources. */
bool events_resource_known(const char *resource);

struct event_bus;

struct event_bus *events_bus_create(void);
void events_bus_destroy(struct event_bus *bus);
/* Adds a subscriber; subscribers are called in the order they were added. */
void events_subscribe(struct event_bus *bus, event_subscriber fn, void *ctx);
/* Publishes an event; takes ownership of data. resource is derived from type (the part before the
 * first '_', e.g. "conference" for "conference_updated", "call" for "call_dtmf_received"). A bus of
 * NULL drops the event. */
void events_publish(struct event_bus *bus, const char *type, const char *customer_id,
                    const char *resource_id, json_t *data);

#endif
