/* The HTTP server: libmicrohttpd driven from the control thread's libuv loop (its epoll fd is
 * watched by one uv_poll_t; no thread per connection). Control thread only. */
#ifndef CONFERENCED_HTTP_H
#define CONFERENCED_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "api/api.h"
#include "events/ws.h"

struct http_server;

/* Listens on addr:port (port 0 picks a free one). Returns NULL with a message in err. */
struct http_server *http_start(uv_loop_t *loop, const char *addr, int port, struct api *api,
                               struct ws_hub *hub, char *err, size_t errlen);
/* The bound port. */
int http_port(const struct http_server *s);
/* Stops accepting new connections (graceful shutdown). */
void http_quiesce(struct http_server *s);
/* Requests received and not yet answered or finished. */
unsigned http_inflight(const struct http_server *s);
/* Closes every connection and frees the server (NULL is a no-op). Run the loop afterwards so
 * the handles' close callbacks complete. */
void http_stop(struct http_server *s);

#endif
