/* Webhook delivery: each event of a customer with a webhook_uri is sent there with its
 * webhook_method, through libcurl's multi interface on the control loop. Up to 3 attempts on a
 * network error or a 5xx, 1 s apart; events of one resource are delivered in order (one request
 * in flight per resource); nothing here blocks the loop. Control thread only. */
#ifndef CONFERENCED_WEBHOOK_H
#define CONFERENCED_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/error.h"
#include "events/bus.h"
#include "store/store.h"

struct webhook_config {
    bool allow_private; /* false: refuse targets that resolve to loopback/private/link-local */
    int timeout_ms;     /* per attempt */
    int retry_delay_ms; /* between attempts (1000 in production) */
};

struct webhook;

/* Reads the customer's webhook_uri/webhook_method from store at publish time. */
struct webhook *webhook_create(uv_loop_t *loop, struct store *store,
                               const struct webhook_config *cfg);
/* Drops undelivered events and closes every handle (NULL is a no-op). Run the loop afterwards
 * so the handles' close callbacks complete. */
void webhook_destroy(struct webhook *w);
/* Bus subscriber: queue the event for its customer's webhook, if one is set. ctx = webhook. */
void webhook_on_event(const struct event *ev, void *ctx);
/* True when no delivery is queued or in flight (graceful shutdown waits for this). */
bool webhook_idle(const struct webhook *w);
/* Checks a webhook_uri given by a client: "" (none) or an absolute http(s) URL with a host, at
 * most URI_MAX_LEN characters. Returns 0 or a negative error filled into e. */
int webhook_validate_uri(const char *uri, struct error *e);
/* Any thread. The save-time half of the SSRF rule, for a webhook_uri that passed
 * webhook_validate_uri: unless allow_private, a host that is a loopback, private or link-local
 * address literal (webhook_addr_blocked) or the name localhost (or a *.localhost name) is refused.
 * Other names are not resolved here (it would block); delivery checks every resolved address.
 * Returns 0 or a negative INVALID_ARGUMENT error (WEBHOOK_URI_PRIVATE) naming the
 * webhook_allow_private setting. */
int webhook_check_uri_host(const char *uri, bool allow_private, struct error *e);
/* Any thread. The SSRF rule: true when sa (len bytes) must not be connected to unless
 * allow_private: loopback, private, link-local, CGNAT, 0/8, multicast, reserved (also in their
 * IPv4-mapped, -compatible, NAT64 and 6to4 forms), or a family other than IPv4/IPv6. */
bool webhook_addr_blocked(const struct sockaddr *sa, size_t len);

#endif
