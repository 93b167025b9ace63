/* Identity: customers, agents (logins), access keys, JWT sessions and the bootstrap operator.
 * Control thread only; slow password hashing runs on the libuv thread pool and answers through a
 * callback on the control thread. */
#ifndef CONFERENCED_IDENTITY_H
#define CONFERENCED_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "events/bus.h"
#include "model/model.h"
#include "store/store.h"

/* Who is calling: resolved from a JWT or an access key. */
struct principal {
    id_t_ customer_id;
    id_t_ agent_id; /* nil for an access key */
    id_t_ accesskey_id; /* nil for a JWT */
    uint64_t permission;
};

struct identity;

struct identity_options {
    int64_t jwt_ttl_us;    /* session lifetime (7 days) */
    bool fast_hash;        /* tests only: cheap password hashing */
};

/* Loads (or creates and persists) the JWT secret. */
struct identity *identity_create(uv_loop_t *loop, struct store *store, struct event_bus *bus,
                                 const struct identity_options *opt);
void identity_destroy(struct identity *id);

/* On an empty store: creates the first customer and its operator agent (permission super admin +
 * customer admin). password NULL or "" = generate one; it is written to *generated (caller frees)
 * so the caller can print it once. Returns 1 when created, 0 when the store already had users,
 * negative on error. Runs the hash synchronously (start-up only). */
int identity_bootstrap(struct identity *id, const char *username, const char *password,
                       char **generated);

/* Resolves a credential (JWT or access key, as given by the client). 0 or a negative
 * UNAUTHENTICATED error (reason INVALID_CREDENTIALS). now_us: the current time. */
int identity_authenticate(struct identity *id, const char *credential, int64_t now_us,
                          struct principal *out, struct error *e);

/* Asynchronous login: cb(arg, rc, username, token, error) on the control thread; rc 0 or negative. */
typedef void (*identity_login_cb)(void *arg, int rc, const char *username, const char *token,
                                  const struct error *e);
void identity_login(struct identity *id, const char *username, const char *password,
                    identity_login_cb cb, void *arg);

/* Issues a JWT for an agent (used by login; exposed for tests). Caller frees. */
char *identity_jwt_issue(struct identity *id, const struct agent *a, int64_t now_us);

/* Permission checks: 0 or a negative PERMISSION_DENIED error. */
int identity_require(const struct principal *p, uint64_t any_of, struct error *e);

/* Customers (operator only, checked by the caller). */
struct customer_create_req {
    const char *name, *detail, *username, *password;
};
typedef void (*identity_customer_cb)(void *arg, int rc, const struct customer *c,
                                     const struct error *e);
/* Validates synchronously (rc < 0 returned at once, cb not called) then hashes the password in the
 * background and creates customer + admin agent; cb reports the result. Returns 0 when pending. */
int identity_customer_create(struct identity *id, const struct customer_create_req *req,
                             identity_customer_cb cb, void *arg, struct error *e);
int identity_customer_get(struct identity *id, const char *customer_id, struct customer *out,
                          struct error *e);
struct customer_update_req {
    const char *name, *detail, *webhook_method, *webhook_uri; /* NULL = unchanged */
};
int identity_customer_update(struct identity *id, const char *customer_id,
                             const struct customer_update_req *req, struct customer *out,
                             struct error *e);

/* Agents of one customer. */
struct agent_req {
    const char *username, *password, *name, *detail, *ring_method; /* NULL = absent */
    bool has_permission;
    int64_t permission;
};
typedef void (*identity_agent_cb)(void *arg, int rc, const struct agent *a, const struct error *e);
int identity_agent_create(struct identity *id, const char *customer_id, const struct agent_req *req,
                          identity_agent_cb cb, void *arg, struct error *e);
int identity_agent_get(struct identity *id, const char *customer_id, const char *agent_id,
                       struct agent *out, struct error *e);
/* May hash a new password in the background; same contract as identity_agent_create. */
int identity_agent_update(struct identity *id, const char *customer_id, const char *agent_id,
                          const struct agent_req *req, identity_agent_cb cb, void *arg,
                          struct error *e);
int identity_agent_delete(struct identity *id, const struct principal *caller,
                          const char *agent_id, struct agent *out, struct error *e);

/* Access keys of one customer. token_out gets the secret once (caller frees). */
int identity_accesskey_create(struct identity *id, const char *customer_id, const char *name,
                              const char *detail, int64_t expire_s, struct accesskey *out,
                              char **token_out, struct error *e);
int identity_accesskey_get(struct identity *id, const char *customer_id, const char *key_id,
                           struct accesskey *out, struct error *e);
int identity_accesskey_update(struct identity *id, const char *customer_id, const char *key_id,
                              const char *name, const char *detail, struct accesskey *out,
                              struct error *e);
int identity_accesskey_delete(struct identity *id, const char *customer_id, const char *key_id,
                              struct accesskey *out, struct error *e);

/* Maps a store failure to an INTERNAL error (logged by the store). */
int identity_store_error(int rc, const char *what, struct error *e);

#endif
