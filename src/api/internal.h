/* Shared between the API's router and its handler files; not for other modules. */
#ifndef CONFERENCED_API_INTERNAL_H
#define CONFERENCED_API_INTERNAL_H

#include <jansson.h>

#include "api/api.h"
#include "core/error.h"

struct api {
    struct api_deps d;
};

/* One request being handled. */
struct api_call {
    struct api *api;
    const struct api_request *req;
    struct api_response *resp;
    struct principal who;
    id_t_ id; /* the path's {id}, normalised */
    api_done_cb done;
    void *done_arg;
};

/* Fills the response: 200 with a JSON value (stolen). Returns 0. */
int api_reply(struct api_call *c, json_t *v);
/* Fills the response: 204 No Content. Returns 0. */
int api_reply_no_content(struct api_call *c);
/* Fills the response with the error envelope. Returns 0. */
int api_reply_error(struct api_call *c, const struct error *e);
/* Same, built from parts. Returns 0. */
int api_fail(struct api_call *c, enum err_status status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Parses the request body as a JSON object; on failure replies and returns -1. */
int api_body(struct api_call *c, json_t **out);
/* A UUID query parameter: 0 (absent), 1 (out written), or -1 (replied 400). */
int api_query_uuid(struct api_call *c, const char *key, id_t_ out);
/* Reads ?page_size and ?page_token; on failure replies and returns -1. */
int api_page(struct api_call *c, struct store_page *p);
/* Builds {"result":[...],"next_page_token":...} from items (stolen) and the last tm_create. */
json_t *api_list(json_t *items, int64_t last_tm_create);
/* Requires a permission; on failure replies and returns -1. */
int api_require(struct api_call *c, uint64_t any_of);

/* Handler tables live in their own files. */
int api_login(struct api_call *c);
int api_customer_get(struct api_call *c);
int api_customer_put(struct api_call *c);
int api_customers_list(struct api_call *c);
int api_customers_create(struct api_call *c);
int api_customers_get(struct api_call *c);
int api_agents_list(struct api_call *c);
int api_agents_create(struct api_call *c);
int api_agents_get(struct api_call *c);
int api_agents_put(struct api_call *c);
int api_agents_delete(struct api_call *c);
int api_accesskeys_list(struct api_call *c);
int api_accesskeys_create(struct api_call *c);
int api_accesskeys_get(struct api_call *c);
int api_accesskeys_put(struct api_call *c);
int api_accesskeys_delete(struct api_call *c);
int api_conferences_list(struct api_call *c);
int api_conferences_create(struct api_call *c);
int api_conferences_get(struct api_call *c);
int api_conferences_put(struct api_call *c);
int api_conferences_delete(struct api_call *c);
int api_conferences_regenerate(struct api_call *c);
int api_conferencecalls_list(struct api_call *c);
int api_conferencecalls_get(struct api_call *c);
int api_conferencecalls_delete(struct api_call *c);
int api_ws(struct api_call *c);
int api_sip_ws(struct api_call *c);
/* A GET WebSocket upgrade that offers the "sip" subprotocol (SIP over WebSocket, any path). */
bool api_ws_offers_sip(const struct api_request *r);
int api_calls_list(struct api_call *c);
int api_calls_get(struct api_call *c);
int api_calls_hangup(struct api_call *c);
int api_calls_delete(struct api_call *c);
int api_calls_create(struct api_call *c);
int api_flows_list(struct api_call *c);
int api_flows_create(struct api_call *c);
int api_flows_get(struct api_call *c);
int api_flows_put(struct api_call *c);
int api_flows_delete(struct api_call *c);
int api_numbers_list(struct api_call *c);
int api_numbers_create(struct api_call *c);
int api_numbers_get(struct api_call *c);
int api_numbers_put(struct api_call *c);
int api_numbers_delete(struct api_call *c);
int api_activeflows_list(struct api_call *c);
int api_activeflows_get(struct api_call *c);
int api_activeflows_stop(struct api_call *c);
int api_activeflows_delete(struct api_call *c);
int api_recordings_list(struct api_call *c);
int api_recordings_get(struct api_call *c);
int api_recordings_delete(struct api_call *c);
int api_recordingfiles_get(struct api_call *c);
/* A Range header over a file of size bytes (recordings.c): 1 with the part, 0 to send it all,
 * -1 unsatisfiable. */
int http_range_parse(const char *header, uint64_t size, uint64_t *off, uint64_t *len);
int api_conferences_recording_start(struct api_call *c);
int api_conferences_recording_stop(struct api_call *c);
int api_calls_recording_start(struct api_call *c);
int api_calls_recording_stop(struct api_call *c);
/* whip.c */
int api_whip_create(struct api_call *c);
int api_whip_delete(struct api_call *c);
/* transcribes.c */
int api_transcribes_list(struct api_call *c);
int api_transcribes_create(struct api_call *c);
int api_transcribes_get(struct api_call *c);
int api_transcribes_delete(struct api_call *c);
int api_transcribes_stop(struct api_call *c);
int api_transcripts_list(struct api_call *c);
int api_conferences_transcribe_start(struct api_call *c);
int api_conferences_transcribe_stop(struct api_call *c);

/* Pending completions copy what they need into one of these. */
struct api_pending {
    api_done_cb done;
    void *done_arg;
    char request_id[ID_LEN + 1];
    int status; /* HTTP status of a success (0: 200) */
};
struct api_pending *api_pending_new(struct api_call *c);
/* Sends a JSON value (stolen) or an error through the pending completion and frees it. */
void api_pending_reply(struct api_pending *p, json_t *v, const struct error *e);

#endif
