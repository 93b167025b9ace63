/* Routing of incoming calls: which customer and flow a SIP user part reaches. A conference's
 * direct URI ("direct.<hash>") runs the built-in flow "answer -> conference_join"; a number runs
 * its call flow.
 *
 * Who calls whom (one way each): the call module asks (through struct call_router in call.h,
 * wired to routing_route()); routing looks conferences and numbers up through struct
 * routing_lookups (the conference and flow modules, wired in main.c; tests: fakes). It calls no
 * function of the call, conference or flow modules itself. Control thread only. */
#ifndef CONFERENCED_ROUTING_H
#define CONFERENCED_ROUTING_H

#include <jansson.h>

#include "model/model.h"

/* Where an incoming call goes. */
struct route {
    int refuse;        /* the SIP code to refuse the call with (403, 404, 486), or 0: routed */
    id_t_ customer_id; /* whose call it is (routed only) */
    id_t_ flow_id;     /* the flow to run: a number's call flow, nil for a direct call */
    json_t *actions;   /* a direct call's built-in flow (validated; owned by the caller, who
                          decrefs it), or NULL */
    const char *type;  /* the call's type: "conference" (direct) or "flow" (static string) */
};

/* What routing looks up. A NULL function finds nothing (the call is refused 404). */
struct routing_lookups {
    void *ctx;
    /* The conference reachable through a direct hash (not deleted): 0 with *out filled (the
     * caller finis it), or negative when none. */
    int (*conference_by_hash)(void *ctx, const char *direct_hash, struct conference *out);
    /* The active number a SIP user part reaches: 0 with *out filled (the caller finis it), or
     * negative when none. */
    int (*number)(void *ctx, const char *user, struct number *out);
};

struct routing;

/* Control thread. The caller owns the result (routing_destroy). */
struct routing *routing_create(const struct routing_lookups *lookups);
/* Control thread. NULL is a no-op. */
void routing_destroy(struct routing *r);
/* Control thread. Routes a SIP user part (the Request-URI's): fills *out and returns out->refuse.
 * 404: no such conference or number, or a number without a call flow; 403: the conference is
 * not progressing; 486: a connect conference that has its two parties. */
int routing_route(struct routing *r, const char *user, struct route *out);

#endif
