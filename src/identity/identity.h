/* Identity: customers, agents (logins), access keys, JWT sessions and the bootstrap operator.
 * Control thread only; slow password hashing runs on the identity's own worker threads
 * (core/worker.h, login_workers of them behind a queue of login_queue) and answers through a
 * callback on the control thread. Failed logins are budgeted per username and per client
 * address (login_failures_per_minute); beyond, and when the queue is full, 429. */
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
    int64_t expire_us; /* when the credential stops working (TM_NEVER: never) */
};

/* Told, on the control thread, when credentials stop working before they expire, so whatever
 * holds a session opened with one (the WebSocket streams) can end it. credential_id is an agent
 * (all of its JWTs) or an access key; why is a short text for the peer ("agent deleted"). */
struct identity_listener {
    void (*revoked)(void *ctx, const char *credential_id, const char *why);
    void *ctx;
};

struct identity;

struct identity_options {
    int64_t jwt_ttl_us;                /* session lifetime (0: 7 days) */
    bool fast_hash;                    /* tests only: cheap password hashing */
    int login_workers;                 /* password-hashing threads (0: 2) */
    int login_queue;                   /* hashing jobs that may wait for a thread (0: 64) */
    int login_failures_per_minute;     /* per username and per client address (0: 10) */
    bool webhook_allow_private;        /* accept webhook_uri hosts on loopback/private networks */
    struct identity_listener listener; /* revoked NULL: nobody is told */
};

/* Control thread. Loads (or creates and persists) the JWT secret and starts the hashing
 * threads. bus may be NULL (no events). */
struct identity *identity_create(uv_loop_t *loop, struct store *store, struct event_bus *bus,
                                 const struct identity_options *opt);
/* Control thread. Stops the hashing threads (waits for the checks running now): callbacks of
 * work that had not started are called at once with an UNAVAILABLE error, so call it while
 * their receivers (the HTTP server) still exist. Later hashing requests answer UNAVAILABLE. */
void identity_shutdown(struct identity *id);
/* Control thread. Shuts down if not yet done, then frees (NULL: no-op). Run the loop
 * afterwards so the worker pool's handle closes. */
void identity_destroy(struct identity *id);

/* Control thread, once the server is listening (so a failed start leaves nothing behind).
 * Makes sure the operator exists: on an empty store, creates the first customer and its
 * operator agent (permission super admin + customer admin); on a store an earlier version left
 * after a first start that never served anything (its generated password possibly never
 * shown), resets that operator to username/password. password NULL or "" = generate one; it is
 * written to *generated (caller frees) so the caller can print it once. The store then records
 * that the operator is set up, and later starts change nothing (see identity_password_set).
 * Returns 1 when the operator was created or reset, 0 when it already existed, negative on
 * error. Hashes synchronously (start-up only). */
int identity_bootstrap(struct identity *id, const char *username, const char *password,
                       char **generated);
/* Control thread, while no server runs on the store (the command line's "passwd"): sets the
 * password of the agent with that username, synchronously, and ends every session of it
 * (its JWTs stop working). 0 or a negative error (INVALID_ARGUMENT, NOT_FOUND, INTERNAL). */
int identity_password_set(struct identity *id, const char *username, const char *password,
                          struct error *e);

/* Resolves a credential (JWT or access key, as given by the client). 0 or a negative
 * UNAUTHENTICATED error (reason INVALID_CREDENTIALS). now_us: the current time. */
int identity_authenticate(struct identity *id, const char *credential, int64_t now_us,
                          struct principal *out, struct error *e);

/* Asynchronous login: cb(arg, rc, username, token, error) on the control thread; rc 0 or
 * negative (UNAUTHENTICATED for a wrong username or password, UNAVAILABLE at shutdown). */
typedef void (*identity_login_cb)(void *arg, int rc, const char *username, const char *token,
                                  const struct error *e);
/* Control thread. client_ip (NULL or "" when unknown) has a failure budget of its own. Returns
 * 0 when the check is under way (cb will be called), or a negative error at once (cb is not
 * called): RESOURCE_EXHAUSTED when the username's or the address's budget of failed logins is
 * spent (*retry_after_s: seconds until an attempt would be admitted), or the hashing queue is
 * full (*retry_after_s 1). retry_after_s may be NULL. */
int identity_login(struct identity *id, const char *username, const char *password,
                   const char *client_ip, identity_login_cb cb, void *arg, struct error *e,
                   int *retry_after_s);

/* Issues a JWT for an agent (used by login; exposed for tests). It works until its exp, the
 * agent's deletion or its next password change. Caller frees. */
char *identity_jwt_issue(struct identity *id, const struct agent *a, int64_t now_us);

/* Permission checks: 0 or a negative PERMISSION_DENIED error. */
int identity_require(const struct principal *p, uint64_t any_of, struct error *e);

/* Customers (operator only, checked by the caller). */
struct customer_create_req {
    const char *name, *detail, *username, *password;
};
typedef void (*identity_customer_cb)(void *arg, int rc, const struct customer *c,
                                     const struct error *e);
/* Validates synchronously (rc < 0 returned at once, cb not called; RESOURCE_EXHAUSTED when the
 * hashing queue is full) then hashes the password in the background and creates customer +
 * admin agent; cb reports the result. Returns 0 when pending. */
int identity_customer_create(struct identity *id, const struct customer_create_req *req,
                             identity_customer_cb cb, void *arg, struct error *e);
int identity_customer_get(struct identity *id, const char *customer_id, struct customer *out,
                          struct error *e);
struct customer_update_req {
    const char *name, *detail, *webhook_method, *webhook_uri; /* NULL = unchanged */
};
/* A webhook_uri whose host is a loopback/private/link-local literal or localhost is refused
 * (WEBHOOK_URI_PRIVATE) unless the options allow private webhooks. */
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
/* May hash a new password in the background; same contract as identity_agent_create. A new
 * password ends the agent's sessions (JWTs, and the listener is told). */
int identity_agent_update(struct identity *id, const char *customer_id, const char *agent_id,
                          const struct agent_req *req, identity_agent_cb cb, void *arg,
                          struct error *e);
/* Ends the agent's sessions too (the listener is told). */
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
/* Streams opened with the key are ended too (the listener is told). */
int identity_accesskey_delete(struct identity *id, const char *customer_id, const char *key_id,
                              struct accesskey *out, struct error *e);

/* Maps a store failure to an INTERNAL error (logged by the store). */
int identity_store_error(int rc, const char *what, struct error *e);

#endif
