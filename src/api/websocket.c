/* The WebSocket upgrades: GET /v1.0/ws (the event stream, with credentials) and SIP over
 * WebSocket (RFC 7118, no credentials: as open as SIP over UDP). Both check the RFC 6455
 * handshake here; the HTTP layer answers 101 and hands the socket to the hub or the SIP stack.
 *
 * Which upgrades are SIP: any GET upgrade whose Sec-WebSocket-Protocol offers "sip", whatever its
 * path (web softphones such as JsSIP and SIP.js only take a server URL, and always offer "sip"),
 * and /sip, the documented URL, where the "sip" subprotocol is then required. */
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "events/ws.h"

/* Comma-separated, case-insensitive (e.g. "keep-alive, Upgrade"). */
static int header_has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == tlen && strncasecmp(p, token, tlen) == 0)
            return 1;
        p = end;
    }
    return 0;
}

static const char *header(const struct api_request *r, const char *name)
{
    return r->header ? r->header(r->ctx, name) : NULL;
}

static bool is_upgrade(const struct api_request *r)
{
    const char *upgrade = header(r, "Upgrade"), *connection = header(r, "Connection");
    return upgrade && strcasecmp(upgrade, "websocket") == 0 && connection &&
           header_has_token(connection, "upgrade");
}

/* The RFC 6455 handshake: 0 with the accept key in the response, or -1 (answered 400). */
static int handshake(struct api_call *c)
{
    const struct api_request *r = c->req;
    const char *version = header(r, "Sec-WebSocket-Version");
    const char *key = header(r, "Sec-WebSocket-Key");
    if (!is_upgrade(r)) {
        api_fail(c, ERR_INVALID_ARGUMENT, "WEBSOCKET_REQUIRED",
                 "This endpoint is a WebSocket: send 'Upgrade: websocket' and "
                 "'Connection: Upgrade'.");
        return -1;
    }
    if (!version || strcmp(version, "13") != 0) {
        api_fail(c, ERR_INVALID_ARGUMENT, "WEBSOCKET_VERSION",
                 "Only WebSocket version 13 is supported (Sec-WebSocket-Version: 13).");
        return -1;
    }
    if (!key || ws_accept_key(key, c->resp->ws_accept) < 0) {
        api_fail(c, ERR_INVALID_ARGUMENT, "WEBSOCKET_KEY",
                 "Sec-WebSocket-Key must be 24 base64 characters.");
        return -1;
    }
    c->resp->ws_upgrade = true;
    c->resp->status = 101;
    return 0;
}

int api_ws(struct api_call *c)
{
    if (handshake(c) < 0)
        return 0;
    c->resp->ws_kind = API_WS_EVENTS;
    struct ws_credential *cred = &c->resp->ws_cred;
    memcpy(cred->customer_id, c->who.customer_id, sizeof(cred->customer_id));
    /* A JWT names its agent, an access key itself: revoking either ends the stream. */
    const char *cid = strcmp(c->who.agent_id, ID_NIL) != 0 ? c->who.agent_id : c->who.accesskey_id;
    memcpy(cred->credential_id, cid, sizeof(cred->credential_id));
    cred->expire_us = c->who.expire_us;
    return 0;
}

bool api_ws_offers_sip(const struct api_request *r)
{
    const char *protocols = header(r, "Sec-WebSocket-Protocol");
    return r->method && strcmp(r->method, "GET") == 0 && is_upgrade(r) && protocols &&
           header_has_token(protocols, "sip");
}

int api_sip_ws(struct api_call *c)
{
    if (handshake(c) < 0)
        return 0;
    if (!api_ws_offers_sip(c->req)) {
        c->resp->ws_upgrade = false;
        return api_fail(c, ERR_INVALID_ARGUMENT, "SIP_SUBPROTOCOL_REQUIRED",
                        "SIP over WebSocket (RFC 7118) needs the subprotocol: send "
                        "'Sec-WebSocket-Protocol: sip'.");
    }
    c->resp->ws_kind = API_WS_SIP;
    c->resp->ws_protocol = "sip";
    return 0;
}
