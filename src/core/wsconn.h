/* One server-side WebSocket connection (RFC 6455) over a socket the HTTP layer has upgraded: wslay
 * does the framing and answers pings and close frames; a uv_poll_t drives it (readable while
 * wslay wants to read, writable only while it has something to send); a timer feeds it the bytes
 * read past the HTTP request, pings the peer and drops one that has gone silent. Its owner (the
 * event stream, SIP over WebSocket) gets each whole message and, once, the end of the connection;
 * the owner keeps the file descriptor and closes it then. Control thread only. */
#ifndef CONFERENCED_WSCONN_H
#define CONFERENCED_WSCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct wsconn;

/* Close codes (RFC 6455 7.4.1). */
#define WSCONN_NORMAL 1000
#define WSCONN_GOING_AWAY 1001
#define WSCONN_POLICY_VIOLATION 1008
#define WSCONN_MESSAGE_TOO_BIG 1009

/* Why a connection ended (for the owner's log line). */
enum wsconn_end {
    WSCONN_END_CLOSED, /* the close handshake completed (either side began it) */
    WSCONN_END_ERROR,  /* end of stream, reset, or a frame wslay could not take */
    WSCONN_END_SLOW,   /* the outgoing backlog hit its limit (closed with 1008) */
    WSCONN_END_SILENT, /* nothing from the peer, not even a pong, for 2 ping intervals */
    WSCONN_END_ABORT,  /* wsconn_abort() */
};

struct wsconn_config {
    /* A longer incoming message is closed with 1009 and too_big_reason (one longer than that by
     * 64 KiB or more: 1009 without it). */
    size_t max_message;
    const char *too_big_reason; /* at most 120 bytes */
    size_t max_queued_bytes;    /* the outgoing backlog: beyond either, close 1008 */
    size_t max_queued_msgs;
    unsigned ping_interval_ms; /* a ping this often (> 0) */
};

struct wsconn_callbacks {
    void *ctx;
    /* A whole message, text or binary (valid during the call). May call wsconn_send and
     * wsconn_close, not wsconn_flush or wsconn_abort. */
    void (*on_message)(void *ctx, struct wsconn *c, bool binary, const uint8_t *msg, size_t len);
    /* The connection is over: called once, and nothing after it. The owner closes the file
     * descriptor here and forgets c (its memory goes when the loop has closed its handles). */
    void (*on_closed)(void *ctx, struct wsconn *c, enum wsconn_end why);
};

/* Takes over the upgraded, non-blocking socket fd; extra holds bytes already read past the HTTP
 * request (copied; fed to wslay on the next loop iteration). NULL when it cannot (then no callback
 * comes and the caller still has fd). */
struct wsconn *wsconn_accept(uv_loop_t *loop, int fd, const char *extra, size_t extra_len,
                             const struct wsconn_config *cfg, const struct wsconn_callbacks *cb);
/* Queues a message and arranges for it to be written. -1 when the connection is ending, or when
 * the backlog is at its limit (the connection is then closed with 1008 on the next loop
 * iteration, or at wsconn_flush). Never ends the connection itself. */
int wsconn_send(struct wsconn *c, bool binary, const void *data, size_t len);
/* Settles the connection (the writing itself waits for the socket): ends it, on_closed from
 * inside, when the backlog overflowed or the close handshake is done. Not from inside
 * on_message. */
void wsconn_flush(struct wsconn *c);
/* Begins the close handshake: a close frame with code and reason (cut to 120 bytes), nothing more
 * is read; the connection ends once the frame is out (on_closed later, never from inside this
 * call). */
void wsconn_close(struct wsconn *c, uint16_t code, const char *reason);
/* A close frame, best effort, and the end now: on_closed is called before this returns. Not from
 * inside on_message. */
void wsconn_abort(struct wsconn *c, uint16_t code, const char *reason);

#endif
