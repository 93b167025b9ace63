/* WHIP (RFC 9725): a browser or encoder joins a conference with one HTTP request. POST
 * /v1.0/conferences/{id}/whip with an SDP offer (Content-Type: application/sdp, the usual
 * credentials) is an incoming call to the conference (call_whip_offer); its flow's answer comes
 * back as 201 with our SDP and the session's Location, /v1.0/whip/{call id}; DELETE there ends
 * it. The server is ICE-lite, so trickled candidates (PATCH) are not needed: the router answers
 * 405 to them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "call/call.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define WHIP_PERMS (PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_MANAGER)

static int unavailable(struct api_call *c)
{
    if (c->api->d.calls)
        return 0;
    api_fail(c, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE", "Calls are not available on this server.");
    return -1;
}

/* "application/sdp", parameters allowed. */
static bool is_sdp(const char *type)
{
    if (!type)
        return false;
    while (*type == ' ')
        type++;
    size_t n = strlen("application/sdp");
    return strncasecmp(type, "application/sdp", n) == 0 &&
           (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
}

static void whip_done(void *arg, int status, const char *call_id, const char *sdp,
                      const char *message)
{
    struct api_pending *p = arg;
    if (status != 201) {
        struct error e;
        enum err_status st = status == 400   ? ERR_INVALID_ARGUMENT
                             : status == 403 ? ERR_PERMISSION_DENIED
                             : status == 404 ? ERR_NOT_FOUND
                             : status == 503 ? ERR_UNAVAILABLE
                                             : ERR_INTERNAL;
        const char *reason = status == 400   ? "UNUSABLE_OFFER"
                             : status == 403 ? "CALL_REFUSED"
                             : status == 404 ? "CONFERENCE_NOT_FOUND"
                             : status == 503 ? "UNAVAILABLE"
                                             : "INTERNAL";
        error_set(&e, st, reason, "%s", message ? message : "The session could not start.");
        api_pending_reply(p, NULL, &e);
        return;
    }
    struct api_response *r = xcalloc(1, sizeof(*r));
    memcpy(r->request_id, p->request_id, sizeof(r->request_id));
    r->status = 201;
    r->body = xstrdup(sdp);
    r->body_len = strlen(sdp);
    r->body_type = "application/sdp";
    char location[80];
    snprintf(location, sizeof(location), "/v1.0/whip/%s", call_id);
    api_response_header(r, "Location", location);
    p->done(p->done_arg, r);
    free(p);
}

int api_whip_create(struct api_call *c)
{
    if (api_require(c, WHIP_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    const char *type = c->req->header ? c->req->header(c->req->ctx, "Content-Type") : NULL;
    if (!is_sdp(type))
        return api_fail(c, ERR_UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE",
                        "A WHIP offer is an SDP body with Content-Type: application/sdp.");
    if (c->req->body_len == 0 || memchr(c->req->body, '\0', c->req->body_len))
        return api_fail(c, ERR_INVALID_ARGUMENT, "UNUSABLE_OFFER",
                        "The body must be an SDP offer (text).");
    struct conference conf;
    struct error e;
    if (conference_get(c->api->d.conferences, c->who.customer_id, c->id, &conf, &e) < 0)
        return api_reply_error(c, &e);
    bool deleted = conf.tm_delete != TM_NEVER;
    char hash[sizeof(conf.direct_hash)];
    str_copy(hash, sizeof(hash), conf.direct_hash);
    conference_fini(&conf);
    if (deleted)
        return api_fail(c, ERR_NOT_FOUND, "CONFERENCE_NOT_FOUND", "No such conference.");
    char *sdp = xmalloc(c->req->body_len + 1);
    memcpy(sdp, c->req->body, c->req->body_len);
    sdp[c->req->body_len] = '\0';
    struct api_pending *p = api_pending_new(c);
    call_whip_offer(c->api->d.calls, c->who.customer_id, c->id, hash, sdp, c->req->client_ip,
                    whip_done, p);
    free(sdp);
    return 1;
}

int api_whip_delete(struct api_call *c)
{
    if (api_require(c, WHIP_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    if (call_whip_end(c->api->d.calls, c->who.customer_id, c->id) < 0)
        return api_fail(c, ERR_NOT_FOUND, "SESSION_NOT_FOUND", "No such WHIP session.");
    /* RFC 9725 4.2: 200; the body is the session's call, now hung up. */
    struct call call;
    struct error e;
    if (call_get(c->api->d.calls, c->who.customer_id, c->id, &call, &e) < 0)
        return api_reply(c, json_object());
    json_t *v = call_to_json(&call);
    call_fini(&call);
    return api_reply(c, v);
}
