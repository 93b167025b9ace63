/* The HTTP server: h2o (HTTP/1.1, and HTTP/2 over cleartext) on the control thread's libuv loop.
 * We accept connections ourselves so that limits apply before h2o sees a byte: a total, a per
 * client address share, and a deadline for each request (h2o's request timeout, which also
 * closes idle keep-alive connections). Requests go to the API layer; a WebSocket upgrade hands
 * the socket to the WebSocket hub (events) or to the SIP stack (SIP over WebSocket). Errors h2o
 * itself answers (a bad Content-Length, a body over the limit) get the API's JSON error envelope.
 * Control thread only. */
#ifndef CONFERENCED_HTTP_H
#define CONFERENCED_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api/api.h"
#include "events/ws.h"

struct http_server;

/* Where SIP-over-WebSocket upgrades go (the SIP stack, wired in main.c). admit: 0, or with why
 * in err -1 at the connection limit or -2 when SIP is not available (either answered 503 instead
 * of 101). accept: takes the upgraded socket as sip_ws_accept()
 * does (closed(arg) once it is over, or when it refuses). accept NULL: no SIP over WebSocket. */
struct http_sip_ws {
    void *ctx;
    int (*admit)(void *ctx, char *err, size_t errlen);
    int (*accept)(void *ctx, int fd, const char *extra, size_t extra_len, void (*closed)(void *),
                  void *arg);
};

struct http_config {
    const char *addr; /* IPv4 listen address */
    int port;         /* 0 picks a free one */
    int max_connections;
    int max_connections_per_address; /* at most half of max_connections */
    int request_timeout_ms;          /* a whole request must arrive within this */
    const char *cors_origin; /* browsers on this origin ("*": any) may call the API; "": none */
    struct http_sip_ws sip_ws;
};

/* Listens (port 0 picks a free one). Returns NULL with a message in err. */
struct http_server *http_start(uv_loop_t *loop, const struct http_config *cfg, struct api *api,
                               struct ws_hub *hub, char *err, size_t errlen);
/* The bound port. */
int http_port(const struct http_server *s);
/* Graceful shutdown: stops accepting, ends keep-alive (idle connections close), lets requests
 * in flight finish. */
void http_quiesce(struct http_server *s);
/* Requests being received (some bytes arrived) or not yet answered. */
unsigned http_inflight(const struct http_server *s);

struct http_stats {
    size_t connections;           /* open now (HTTP and WebSocket) */
    uint64_t accepted;            /* since start */
    uint64_t refused_total;       /* over max_connections */
    uint64_t refused_per_address; /* over max_connections_per_address */
};
void http_stats(const struct http_server *s, struct http_stats *out);

/* Stops listening, answers requests still waiting for the API with 503 and closes every
 * connection (NULL is a no-op). Run the loop afterwards so the connections finish closing. */
void http_stop(struct http_server *s);
/* Frees the server once the loop has ended (NULL is a no-op). */
void http_destroy(struct http_server *s);

#endif
