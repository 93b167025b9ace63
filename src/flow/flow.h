/* Flows (named action lists) and numbers (a SIP user part routed to a call flow): their rules on
 * top of the store. Control thread only. */
#ifndef CONFERENCED_FLOW_H
#define CONFERENCED_FLOW_H

#include <jansson.h>
#include <stdbool.h>

#include "core/error.h"
#include "events/bus.h"
#include "model/model.h"
#include "store/store.h"

struct flow_mgr;

struct flow_mgr *flow_mgr_create(struct store *store, struct event_bus *bus);
void flow_mgr_destroy(struct flow_mgr *m); /* NULL is a no-op */

/* Create / update requests; NULL means "not sent". actions is validated here. */
struct flow_req {
    const char *name, *detail;
    json_t *actions;
    const char *on_complete_flow_id; /* normalised UUID */
};

/* Every call returns 0 with *out filled (caller finis it), or a negative error in e. Deleted
 * flows and numbers are not found. */
int flow_create(struct flow_mgr *m, const char *customer_id, const struct flow_req *req,
                struct flow *out, struct error *e);
int flow_get(struct flow_mgr *m, const char *customer_id, const char *id, struct flow *out,
             struct error *e);
int flow_update(struct flow_mgr *m, const char *customer_id, const char *id,
                const struct flow_req *req, struct flow *out, struct error *e);
int flow_delete(struct flow_mgr *m, const char *customer_id, const char *id, struct flow *out,
                struct error *e);
/* True when id is a flow of the customer that is not deleted. */
bool flow_exists(struct flow_mgr *m, const char *customer_id, const char *id);
/* The flow's actions as a JSON array (caller decrefs), or NULL when it does not exist for the
 * customer. */
json_t *flow_actions(struct flow_mgr *m, const char *customer_id, const char *id);

struct number_req {
    const char *number;                         /* create only */
    const char *call_flow_id, *message_flow_id; /* normalised UUIDs */
    const char *name, *detail;
};

int number_create(struct flow_mgr *m, const char *customer_id, const struct number_req *req,
                  struct number *out, struct error *e);
int number_get(struct flow_mgr *m, const char *customer_id, const char *id, struct number *out,
               struct error *e);
int number_update(struct flow_mgr *m, const char *customer_id, const char *id,
                  const struct number_req *req, struct number *out, struct error *e);
int number_delete(struct flow_mgr *m, const char *customer_id, const char *id, struct number *out,
                  struct error *e);
/* The active number a SIP user part reaches ("+15551234567"; "15551234567" finds "+1555..."
 * too), or NOT_FOUND. */
int number_route(struct flow_mgr *m, const char *user, struct number *out, struct error *e);

#endif
