#include "api/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "core/uri.h"
#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define MAX_SEGMENTS 6
#define AUTH_NONE 0
#define AUTH_REQUIRED 1

/* A route: path segments ("*" = an id) and one handler per method. */
struct route {
    const char *segments[MAX_SEGMENTS];
    struct {
        const char *method;
        int (*fn)(struct api_call *c);
        int auth;
    } methods[3];
};

static const struct route routes[] = {
    {{"auth", "login"}, {{"POST", api_login, AUTH_NONE}}},
    {{"v1.0", "auth", "login"}, {{"POST", api_login, AUTH_NONE}}},
    {{"v1.0", "customer"},
     {{"GET", api_customer_get, AUTH_REQUIRED}, {"PUT", api_customer_put, AUTH_REQUIRED}}},
    {{"v1.0", "customers"},
     {{"GET", api_customers_list, AUTH_REQUIRED}, {"POST", api_customers_create, AUTH_REQUIRED}}},
    {{"v1.0", "customers", "*"}, {{"GET", api_customers_get, AUTH_REQUIRED}}},
    {{"v1.0", "agents"},
     {{"GET", api_agents_list, AUTH_REQUIRED}, {"POST", api_agents_create, AUTH_REQUIRED}}},
    {{"v1.0", "agents", "*"},
     {{"GET", api_agents_get, AUTH_REQUIRED},
      {"PUT", api_agents_put, AUTH_REQUIRED},
      {"DELETE", api_agents_delete, AUTH_REQUIRED}}},
    {{"v1.0", "accesskeys"},
     {{"GET", api_accesskeys_list, AUTH_REQUIRED}, {"POST", api_accesskeys_create, AUTH_REQUIRED}}},
    {{"v1.0", "accesskeys", "*"},
     {{"GET", api_accesskeys_get, AUTH_REQUIRED},
      {"PUT", api_accesskeys_put, AUTH_REQUIRED},
      {"DELETE", api_accesskeys_delete, AUTH_REQUIRED}}},
    {{"v1.0", "conferences"},
     {{"GET", api_conferences_list, AUTH_REQUIRED},
      {"POST", api_conferences_create, AUTH_REQUIRED}}},
    {{"v1.0", "conferences", "*"},
     {{"GET", api_conferences_get, AUTH_REQUIRED},
      {"PUT", api_conferences_put, AUTH_REQUIRED},
      {"DELETE", api_conferences_delete, AUTH_REQUIRED}}},
    {{"v1.0", "conferences", "*", "direct-hash-regenerate"},
     {{"POST", api_conferences_regenerate, AUTH_REQUIRED}}},
    {{"v1.0", "conferences", "*", "recording_start"},
     {{"POST", api_conferences_recording_start, AUTH_REQUIRED}}},
    {{"v1.0", "conferences", "*", "recording_stop"},
     {{"POST", api_conferences_recording_stop, AUTH_REQUIRED}}},
    {{"v1.0", "conferences", "*", "transcribe_start"},
     {{"POST", api_conferences_transcribe_start, AUTH_REQUIRED}}},
    {{"v1.0", "conferences", "*", "transcribe_stop"},
     {{"POST", api_conferences_transcribe_stop, AUTH_REQUIRED}}},
    {{"v1.0", "conferencecalls"}, {{"GET", api_conferencecalls_list, AUTH_REQUIRED}}},
    {{"v1.0", "conferencecalls", "*"},
     {{"GET", api_conferencecalls_get, AUTH_REQUIRED},
      {"DELETE", api_conferencecalls_delete, AUTH_REQUIRED}}},
    {{"v1.0", "ws"}, {{"GET", api_ws, AUTH_REQUIRED}}},
    {{"sip"}, {{"GET", api_sip_ws, AUTH_NONE}}},
    {{"v1.0", "calls"},
     {{"GET", api_calls_list, AUTH_REQUIRED}, {"POST", api_calls_create, AUTH_REQUIRED}}},
    {{"v1.0", "calls", "*"},
     {{"GET", api_calls_get, AUTH_REQUIRED}, {"DELETE", api_calls_delete, AUTH_REQUIRED}}},
    {{"v1.0", "calls", "*", "hangup"}, {{"POST", api_calls_hangup, AUTH_REQUIRED}}},
    {{"v1.0", "calls", "*", "recording_start"},
     {{"POST", api_calls_recording_start, AUTH_REQUIRED}}},
    {{"v1.0", "calls", "*", "recording_stop"}, {{"POST", api_calls_recording_stop, AUTH_REQUIRED}}},
    {{"v1.0", "recordings"}, {{"GET", api_recordings_list, AUTH_REQUIRED}}},
    {{"v1.0", "recordings", "*"},
     {{"GET", api_recordings_get, AUTH_REQUIRED},
      {"DELETE", api_recordings_delete, AUTH_REQUIRED}}},
    {{"v1.0", "recordingfiles", "*"}, {{"GET", api_recordingfiles_get, AUTH_REQUIRED}}},
    {{"v1.0", "transcribes"},
     {{"GET", api_transcribes_list, AUTH_REQUIRED},
      {"POST", api_transcribes_create, AUTH_REQUIRED}}},
    {{"v1.0", "transcribes", "*"},
     {{"GET", api_transcribes_get, AUTH_REQUIRED},
      {"DELETE", api_transcribes_delete, AUTH_REQUIRED}}},
    {{"v1.0", "transcribes", "*", "stop"}, {{"POST", api_transcribes_stop, AUTH_REQUIRED}}},
    {{"v1.0", "transcripts"}, {{"GET", api_transcripts_list, AUTH_REQUIRED}}},
    {{"v1.0", "flows"},
     {{"GET", api_flows_list, AUTH_REQUIRED}, {"POST", api_flows_create, AUTH_REQUIRED}}},
    {{"v1.0", "flows", "*"},
     {{"GET", api_flows_get, AUTH_REQUIRED},
      {"PUT", api_flows_put, AUTH_REQUIRED},
      {"DELETE", api_flows_delete, AUTH_REQUIRED}}},
    {{"v1.0", "numbers"},
     {{"GET", api_numbers_list, AUTH_REQUIRED}, {"POST", api_numbers_create, AUTH_REQUIRED}}},
    {{"v1.0", "numbers", "*"},
     {{"GET", api_numbers_get, AUTH_REQUIRED},
      {"PUT", api_numbers_put, AUTH_REQUIRED},
      {"DELETE", api_numbers_delete, AUTH_REQUIRED}}},
    {{"v1.0", "activeflows"}, {{"GET", api_activeflows_list, AUTH_REQUIRED}}},
    {{"v1.0", "activeflows", "*"},
     {{"GET", api_activeflows_get, AUTH_REQUIRED},
      {"DELETE", api_activeflows_delete, AUTH_REQUIRED}}},
    {{"v1.0", "activeflows", "*", "stop"}, {{"POST", api_activeflows_stop, AUTH_REQUIRED}}},
    {{"v1.0", "conferences", "*", "whip"}, {{"POST", api_whip_create, AUTH_REQUIRED}}},
    {{"v1.0", "whip", "*"}, {{"DELETE", api_whip_delete, AUTH_REQUIRED}}},
};

struct api *api_create(const struct api_deps *deps)
{
    struct api *api = xcalloc(1, sizeof(*api));
    api->d = *deps;
    return api;
}

void api_destroy(struct api *api)
{
    free(api);
}

void api_response_fini(struct api_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    free(resp->file_path);
    resp->file_path = NULL;
}

static void set_body(struct api_response *r, int status, json_t *v)
{
    free(r->body);
    r->status = status;
    r->body = json_dump_compact(v);
    r->body_len = strlen(r->body);
    json_decref(v);
}

int api_reply(struct api_call *c, json_t *v)
{
    set_body(c->resp, 200, v);
    return 0;
}

int api_reply_no_content(struct api_call *c)
{
    free(c->resp->body);
    c->resp->status = 204;
    c->resp->body = xstrdup("");
    c->resp->body_len = 0;
    return 0;
}

/* Messages may quote client input (a path, a method): keep them printable ASCII so the error
 * body is always valid JSON, whatever bytes the client sent. */
static void printable(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    out[i] = '\0';
}

static json_t *error_json(const struct error *e, const char *request_id)
{
    char message[sizeof(e->message)];
    printable(e->message, message, sizeof(message));
    json_t *inner = json_pack("{s:s,s:s,s:s,s:s}", "status", error_status_name(e->status), "reason",
                              e->reason, "message", message, "request_id", request_id);
    if (!inner)
        die("out of memory building an error");
    json_t *o = json_object();
    json_object_set_new(o, "error", inner);
    return o;
}

static void response_error(struct api_response *r, const struct error *e)
{
    set_body(r, error_http_code(e->status), error_json(e, r->request_id));
}

void api_response_header(struct api_response *resp, const char *name, const char *value)
{
    if (resp->n_headers >= API_MAX_HEADERS)
        die("too many response headers (%s)", name);
    str_copy(resp->headers[resp->n_headers].name, sizeof(resp->headers[0].name), name);
    str_copy(resp->headers[resp->n_headers].value, sizeof(resp->headers[0].value), value);
    resp->n_headers++;
}

void api_error_response(struct api_response *resp, const struct error *e)
{
    memset(resp, 0, sizeof(*resp));
    id_request(resp->request_id);
    response_error(resp, e);
}

int api_reply_error(struct api_call *c, const struct error *e)
{
    if (e->status == ERR_INTERNAL)
        log_error("msg=\"request failed\" request_id=%s reason=%s", c->resp->request_id, e->reason);
    response_error(c->resp, e);
    return 0;
}

int api_fail(struct api_call *c, enum err_status status, const char *reason, const char *fmt, ...)
{
    struct error e;
    e.status = status;
    str_copy(e.reason, sizeof(e.reason), reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return api_reply_error(c, &e);
}

int api_body(struct api_call *c, json_t **out)
{
    struct error e;
    if (json_body_parse(c->req->body ? c->req->body : "", c->req->body_len, out, &e) < 0) {
        api_reply_error(c, &e);
        return -1;
    }
    return 0;
}

int api_page(struct api_call *c, struct store_page *p)
{
    p->before_us = INT64_MAX;
    p->limit = 100;
    const char *size = c->req->query ? c->req->query(c->req->ctx, "page_size") : NULL;
    if (size && size[0]) {
        /* Above 100 is clamped to 100, as VoIPBIN does; below 1 or not a number is an error. */
        uint64_t n = 0;
        size_t len = strlen(size);
        const char *digits = size + strspn(size, "0");
        bool numeric = strspn(size, "0123456789") == len;
        bool big = numeric && strlen(digits) > 3;
        if (!big && (!numeric || str_to_u64(digits[0] ? digits : "0", 1000, &n) < 0 || n < 1)) {
            api_fail(c, ERR_INVALID_ARGUMENT, "INVALID_PAGE_SIZE",
                     "Query parameter 'page_size' must be a whole number from 1 to 100 (larger "
                     "values count as 100).");
            return -1;
        }
        p->limit = big || n > 100 ? 100 : (int)n;
    }
    const char *token = c->req->query ? c->req->query(c->req->ctx, "page_token") : NULL;
    if (token && token[0]) {
        if (strlen(token) > 64 || tm_parse(token, &p->before_us) < 0) {
            api_fail(c, ERR_INVALID_ARGUMENT, "INVALID_PAGE_TOKEN",
                     "Query parameter 'page_token' must be the next_page_token of a previous "
                     "page (\"2022-02-03 06:08:56.672025\") or an RFC 3339 time.");
            return -1;
        }
    }
    return 0;
}

json_t *api_list(json_t *items, int64_t last_tm_create)
{
    json_t *o = json_object();
    json_object_set_new(o, "result", items);
    if (json_array_size(items) == 0) {
        json_object_set_new(o, "next_page_token", json_string(""));
    } else {
        char buf[TM_TEXT_LEN];
        tm_format(last_tm_create, buf);
        json_object_set_new(o, "next_page_token", json_string(buf));
    }
    return o;
}

/* A UUID query parameter: 0 (absent), 1 (out written), or -1 (replied 400). */
int api_query_uuid(struct api_call *c, const char *key, id_t_ out)
{
    const char *raw = c->req->query ? c->req->query(c->req->ctx, key) : NULL;
    if (!raw || !raw[0])
        return 0;
    if (id_normalize(raw, out) < 0) {
        api_fail(c, ERR_INVALID_ARGUMENT, "INVALID_ID", "Query parameter '%s' must be a UUID.",
                 key);
        return -1;
    }
    return 1;
}

int api_require(struct api_call *c, uint64_t any_of)
{
    struct error e;
    if (identity_require(&c->who, any_of, &e) < 0) {
        api_reply_error(c, &e);
        return -1;
    }
    return 0;
}

struct api_pending *api_pending_new(struct api_call *c)
{
    struct api_pending *p = xcalloc(1, sizeof(*p));
    p->done = c->done;
    p->done_arg = c->done_arg;
    memcpy(p->request_id, c->resp->request_id, sizeof(p->request_id));
    return p;
}

void api_pending_reply(struct api_pending *p, json_t *v, const struct error *e)
{
    struct api_response *r = xcalloc(1, sizeof(*r));
    memcpy(r->request_id, p->request_id, sizeof(r->request_id));
    if (e)
        response_error(r, e);
    else
        set_body(r, p->status ? p->status : 200, v);
    p->done(p->done_arg, r);
    free(p);
}

/* The credential of a request: ?token=, ?accesskey= or Authorization: Bearer. Returns NULL when
 * none was sent; *malformed is set for an Authorization header that is not "Bearer <x>". */
static const char *credential(const struct api_request *req, int *malformed)
{
    *malformed = 0;
    const char *v = req->query ? req->query(req->ctx, "token") : NULL;
    if (v && v[0])
        return v;
    v = req->query ? req->query(req->ctx, "accesskey") : NULL;
    if (v && v[0])
        return v;
    v = req->header ? req->header(req->ctx, "Authorization") : NULL;
    if (v) {
        if (strncasecmp(v, "Bearer ", 7) == 0) {
            v += 7;
            while (*v == ' ')
                v++;
            if (*v)
                return v;
        }
        *malformed = 1;
    }
    return NULL;
}

/* Splits a path on '/' into at most MAX_SEGMENTS segments (one trailing slash tolerated), then
 * decodes each segment on its own, so "%2F" is a character of its segment, never a separator.
 * "/v1/..." is an alias of "/v1.0/..." (the seeds write it so). Returns 0, 1 when the path
 * cannot name an endpoint (too many or too long segments), or a negative enum uri_result. */
static int split(const char *path, char segs[MAX_SEGMENTS][64], int *n)
{
    *n = 0;
    const char *p = path;
    if (*p != '/')
        return 1;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (*n == MAX_SEGMENTS)
            return 1;
        ssize_t got = uri_decode(p, len, false, segs[*n], sizeof(segs[*n]));
        if (got == URI_TOO_LONG)
            return 1;
        if (got < 0)
            return (int)got;
        (*n)++;
        p += len;
    }
    if (*n > 0 && !strcmp(segs[0], "v1"))
        memcpy(segs[0], "v1.0", 5);
    return 0;
}

static int match(const struct route *r, char segs[MAX_SEGMENTS][64], int n, const char **id)
{
    int i = 0;
    const char *found = NULL;
    for (; i < MAX_SEGMENTS && r->segments[i]; i++) {
        if (i >= n)
            return 0;
        if (strcmp(r->segments[i], "*") == 0)
            found = segs[i];
        else if (strcmp(r->segments[i], segs[i]) != 0)
            return 0;
    }
    if (i != n)
        return 0;
    *id = found;
    return 1;
}

int api_handle(struct api *api, const struct api_request *req, struct api_response *resp,
               api_done_cb done, void *done_arg)
{
    memset(resp, 0, sizeof(*resp));
    id_request(resp->request_id);
    struct api_call c = {.api = api, .req = req, .resp = resp, .done = done, .done_arg = done_arg};
    if (req->uri_error)
        return api_fail(&c, ERR_INVALID_ARGUMENT, "INVALID_URI", "The URL cannot be read: %s.",
                        req->uri_error);
    /* SIP over WebSocket on whatever path the softphone was given (see api/websocket.c). */
    if (api_ws_offers_sip(req))
        return api_sip_ws(&c);
    char segs[MAX_SEGMENTS][64];
    int n = 0;
    const struct route *route = NULL;
    const char *raw_id = NULL;
    int split_rc = split(req->path, segs, &n);
    if (split_rc < 0)
        return api_fail(&c, ERR_INVALID_ARGUMENT, "INVALID_URI", "The URL cannot be read: %s.",
                        uri_result_text(split_rc));
    if (split_rc == 0) {
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !route; i++)
            if (match(&routes[i], segs, n, &raw_id))
                route = &routes[i];
    }
    if (!route)
        return api_fail(&c, ERR_NOT_FOUND, "ROUTE_NOT_FOUND",
                        "No API endpoint at %.100s; see the README for the endpoints.", req->path);
    int m = -1;
    for (int i = 0; i < 3 && route->methods[i].method; i++)
        if (strcmp(route->methods[i].method, req->method) == 0)
            m = i;
    if (m < 0) {
        char allowed[64] = "";
        for (int i = 0; i < 3 && route->methods[i].method; i++) {
            if (i)
                strncat(allowed, ", ", sizeof(allowed) - strlen(allowed) - 1);
            strncat(allowed, route->methods[i].method, sizeof(allowed) - strlen(allowed) - 1);
        }
        return api_fail(&c, ERR_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED",
                        "Method %.16s is not allowed here; use %s.", req->method, allowed);
    }
    if (req->body_too_large)
        return api_fail(&c, ERR_PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE",
                        "The request body is larger than %d bytes.", API_MAX_BODY);
    if (route->methods[m].auth == AUTH_REQUIRED) {
        int malformed;
        const char *cred = credential(req, &malformed);
        if (!cred && !malformed)
            return api_fail(&c, ERR_UNAUTHENTICATED, "AUTHENTICATION_REQUIRED",
                            "Credentials are required: pass ?token=<jwt or access key>, "
                            "?accesskey=<key> or an 'Authorization: Bearer' header.");
        struct error e;
        if (!cred)
            return api_fail(&c, ERR_UNAUTHENTICATED, "INVALID_CREDENTIALS",
                            "The Authorization header must be 'Bearer <jwt or access key>'.");
        if (identity_authenticate(api->d.identity, cred, tm_now_us(), &c.who, &e) < 0)
            return api_reply_error(&c, &e);
    }
    if (raw_id && id_normalize(raw_id, c.id) < 0)
        return api_fail(&c, ERR_INVALID_ARGUMENT, "INVALID_ID",
                        "The id in the path must be a UUID such as "
                        "2c3d3e1f-7a1b-4c55-9d7e-0f3e5a6b7c8d.");
    return route->methods[m].fn(&c);
}
