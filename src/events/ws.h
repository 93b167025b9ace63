/* WebSocket event stream (GET /v1.0/ws). The HTTP layer does the upgrade handshake and hands the
 * socket over; this module speaks RFC 6455 over it with wslay, on the control loop. Clients send
 * {"type":"subscribe"|"unsubscribe","topics":[...]} text frames; a topic is
 * "customer_id:<id>:<resource>[:<resource_id>]" and only the client's own customer id is
 * accepted. Matching events are sent as {"type":...,"data":...} text frames. Control thread only. */
#ifndef CONFERENCED_WS_H
#define CONFERENCED_WS_H

#include <stddef.h>
#include <uv.h>

#include "core/ids.h"
#include "events/bus.h"

struct ws_hub;

/* Called once when a connection is finished with, so the HTTP layer can release the socket. */
typedef void (*ws_closed_cb)(void *arg);

struct ws_hub *ws_hub_create(uv_loop_t *loop);
/* Closes every connection (a best-effort 1001 close frame, then each closed callback) and frees
 * the hub (NULL: no-op). Run the loop afterwards so the handles' close callbacks complete. */
void ws_hub_destroy(struct ws_hub *hub);
/* Takes over an upgraded, non-blocking socket. extra holds bytes already read past the HTTP
 * request. customer_id is the authenticated client's customer. Returns 0 or -1 (then closed_cb
 * has been called). */
int ws_hub_accept(struct ws_hub *hub, int fd, const char *extra, size_t extra_len,
                  const char *customer_id, ws_closed_cb closed_cb, void *closed_arg);
/* Bus subscriber: send the event to every connection with a matching topic. ctx = hub. */
void ws_hub_on_event(const struct event *ev, void *ctx);
/* Number of open connections. */
size_t ws_hub_count(const struct ws_hub *hub);
/* Computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key; out gets 28 chars + NUL.
 * Returns 0, or -1 when the key is not 24 base64 characters. */
int ws_accept_key(const char *client_key, char out[29]);

#endif
