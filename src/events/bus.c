#include "events/bus.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"

#define MAX_SUBSCRIBERS 8

/* Add a resource here when a module starts publishing its events (recording, transcribe, ...). */
const char *const events_resources[] = {
    "activeflow", "agent",  "call",      "conference", "conferencecall", "customer",
    "flow",       "number", "recording", "transcribe", "transcript",     NULL,
};

bool events_resource_known(const char *resource)
{
    for (size_t i = 0; events_resources[i]; i++)
        if (!strcmp(events_resources[i], resource))
            return true;
    return false;
}

struct event_bus {
    struct {
        event_subscriber fn;
        void *ctx;
    } subs[MAX_SUBSCRIBERS];
    size_t n;
};

struct event_bus *events_bus_create(void)
{
    return xcalloc(1, sizeof(struct event_bus));
}

void events_bus_destroy(struct event_bus *bus)
{
    free(bus);
}

void events_subscribe(struct event_bus *bus, event_subscriber fn, void *ctx)
{
    if (bus->n == MAX_SUBSCRIBERS)
        die("too many event subscribers");
    bus->subs[bus->n].fn = fn;
    bus->subs[bus->n].ctx = ctx;
    bus->n++;
}

void events_publish(struct event_bus *bus, const char *type, const char *customer_id,
                    const char *resource_id, json_t *data)
{
    if (!bus || bus->n == 0) {
        json_decref(data);
        return;
    }
    char resource[64];
    const char *us = strchr(type, '_');
    size_t rlen = us ? (size_t)(us - type) : strlen(type);
    if (rlen >= sizeof(resource))
        rlen = sizeof(resource) - 1;
    memcpy(resource, type, rlen);
    resource[rlen] = '\0';
    assert(events_resource_known(resource) && "add the event's resource to events_resources");

    json_t *env = json_object();
    json_object_set_new(env, "type", json_string(type));
    json_object_set(env, "data", data);
    char *payload = json_dump_compact(env);
    json_decref(env);

    struct event ev = {
        .type = type,
        .customer_id = customer_id,
        .resource = resource,
        .resource_id = resource_id,
        .data = data,
        .payload = payload,
        .payload_len = strlen(payload),
    };
    log_debug("msg=event type=%s customer_id=%s resource_id=%s", type, customer_id, resource_id);
    for (size_t i = 0; i < bus->n; i++)
        bus->subs[i].fn(&ev, bus->subs[i].ctx);
    free(payload);
    json_decref(data);
}
