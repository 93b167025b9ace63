/* The REST API: routing, authentication, validation and JSON views, independent of the HTTP
 * server library so tests and fuzzers can drive it in-process. Control thread only. */
#ifndef CONFERENCED_API_H
#define CONFERENCED_API_H

#include <stdbool.h>
#include <stddef.h>

#include "conference/conference.h"
#include "events/bus.h"
#include "events/ws.h"
#include "identity/identity.h"
#include "model/model.h"
#include "store/store.h"

#define API_MAX_BODY (1024 * 1024)
#define API_MAX_HEADERS 4

struct api_request {
    const char *method;
    const char *path; /* as sent (percent-encoded), without the query string */
    const char *body;
    size_t body_len;
    bool body_too_large;   /* the client sent more than API_MAX_BODY */
    const char *uri_error; /* the HTTP layer could not decode the target: why (else NULL) */
    const char *client_ip; /* the peer's address as text ("" when unknown) */
    /* Query (decoded) and header lookups (NULL when absent). */
    const char *(*query)(void *ctx, const char *key);
    const char *(*header)(void *ctx, const char *name);
    void *ctx;
};

struct api_response {
    int status;
    char *body; /* JSON, malloc'd, owned by the response */
    size_t body_len;
    const char *body_type; /* the body's Content-Type when it is not JSON (static), or NULL */
    char request_id[ID_LEN + 1];
    /* A WebSocket upgrade was accepted: send 101 with this accept key (and subprotocol, when
     * not NULL), then hand the socket to the WebSocket hub with this credential (API_WS_EVENTS)
     * or to the SIP stack (API_WS_SIP). */
    bool ws_upgrade;
    enum api_ws_kind { API_WS_EVENTS, API_WS_SIP } ws_kind;
    char ws_accept[29];
    const char *ws_protocol; /* static text */
    struct ws_credential ws_cred;
    /* A file to send instead of the body (malloc'd path, owned by the response): file_length
     * bytes from file_offset, with file_type (status 200, or 206 with its Content-Range header
     * for a Range request). */
    char *file_path;
    const char *file_type;
    uint64_t file_offset, file_length;
    /* Extra response headers (Retry-After, Location, ...). */
    int n_headers;
    struct {
        char name[32];
        char value[160];
    } headers[API_MAX_HEADERS];
};

struct call_mgr;
struct flow_mgr;
struct af_mgr;
struct recording_mgr;
struct transcribe_mgr;

struct api_deps {
    struct store *store;
    struct identity *identity;
    struct conference_mgr *conferences;
    struct call_mgr *calls;             /* NULL: the calls endpoints answer 503 */
    struct flow_mgr *flows;             /* NULL: flows and numbers answer 503 */
    struct af_mgr *activeflows;         /* NULL: activeflows answer 503 */
    struct recording_mgr *recordings;   /* NULL: recordings answer 503 */
    struct transcribe_mgr *transcribes; /* NULL: transcribes answer 503 */
};

struct api;

struct api *api_create(const struct api_deps *deps);
void api_destroy(struct api *api);

/* Completion of a pending request; resp is owned by the callee afterwards (api_response_fini). */
typedef void (*api_done_cb)(void *arg, struct api_response *resp);

/* Handles one request. Returns 0 when resp is filled, or 1 when the answer comes later through
 * done(done_arg, resp) on the control thread (password hashing). The request's strings need not
 * outlive this call. */
int api_handle(struct api *api, const struct api_request *req, struct api_response *resp,
               api_done_cb done, void *done_arg);
void api_response_fini(struct api_response *resp);
/* Adds a response header (name and value truncated to their fields; beyond API_MAX_HEADERS the
 * header is a programmer error). */
void api_response_header(struct api_response *resp, const char *name, const char *value);
/* Fills resp (zeroed first) with the error envelope for e and a new request id: for errors the
 * HTTP layer answers itself (limits, malformed requests). */
void api_error_response(struct api_response *resp, const struct error *e);

#endif
