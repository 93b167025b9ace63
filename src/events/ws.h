/* WebSocket event stream (GET /v1.0/ws). The HTTP layer does the upgrade handshake and hands the
 * socket over; this module speaks RFC 6455 over it with wslay, on the control loop. Clients send
 * {"type":"subscribe"|"unsubscribe","topics":[...]} text frames; a topic is
 * "customer_id:<id>:<kind>[:<resource_id>]", the kind one of events_resources (bus.h), and only
 * the client's own customer id is accepted. Each (un)subscribe is answered with
 * {"type":"subscribed"|"unsubscribed","data":{"topics":[...]}}, or an error frame
 * {"type":"error","data":{"message":...}} saying what was wrong (nothing of that message is
 * applied). Matching events are sent as {"type":...,"data":...} text frames. A stream is closed
 * with 1008 when its credential is revoked (ws_hub_revoke) or expires. Control thread only. */
#ifndef CONFERENCED_WS_H
#define CONFERENCED_WS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/ids.h"
#include "events/bus.h"

struct ws_hub;

/* Called once when a connection is finished with, so the HTTP layer can release the socket. */
typedef void (*ws_closed_cb)(void *arg);

/* What a stream was opened with. */
struct ws_credential {
    char customer_id[ID_LEN + 1];   /* whose events it may receive */
    char credential_id[ID_LEN + 1]; /* the agent (JWT) or access key it authenticated with */
    int64_t expire_us;              /* wall-clock time it stops working; TM_NEVER or <= 0: never */
};

struct ws_hub *ws_hub_create(uv_loop_t *loop);
/* Closes every connection (a best-effort 1001 close frame, then each closed callback) and frees
 * the hub (NULL: no-op). Run the loop afterwards so the handles' close callbacks complete. */
void ws_hub_destroy(struct ws_hub *hub);
/* Takes over an upgraded, non-blocking socket. extra holds bytes already read past the HTTP
 * request. cred is the authenticated client's (copied). Returns 0 or -1 (then closed_cb has been
 * called). */
int ws_hub_accept(struct ws_hub *hub, int fd, const char *extra, size_t extra_len,
                  const struct ws_credential *cred, ws_closed_cb closed_cb, void *closed_arg);
/* Ends every stream opened with credential_id (an agent or an access key): no event reaches them
 * any more, and on the next loop iteration each gets a close frame 1008 with why as its reason
 * (at most 100 bytes are sent) and is closed. */
void ws_hub_revoke(struct ws_hub *hub, const char *credential_id, const char *why);
/* Bus subscriber: send the event to every connection with a matching topic. ctx = hub. */
void ws_hub_on_event(const struct event *ev, void *ctx);
/* Number of open connections. */
size_t ws_hub_count(const struct ws_hub *hub);
/* Computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key; out gets 28 chars + NUL.
 * Returns 0, or -1 when the key is not 24 base64 characters. */
int ws_accept_key(const char *client_key, char out[29]);

#endif
