/* POST /calls: the request checked as a whole, then one outgoing call per destination (a media
 * leg, its flow run, an INVITE), each ringing for at most ring_timeout_ms. */
#include "call/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/jsonutil.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "flow/action.h"

#define MAX_DESTINATIONS 10
#define ADDRESS_TARGET_MAX 256

struct dest {
    char uri[ADDRESS_TARGET_MAX + 8];
    json_t *address;
};

/* "sip:user@host[:port]" or "user@host[:port]" -> a SIP URI we can dial (sip_uri_check: the
 * host an IPv4 address or a DNS name, the port 1-65535, nothing else). -1 with what is wrong in
 * why. */
static int dest_uri(const char *target, char *out, size_t cap, char *why, size_t whylen)
{
    const char *t = strncasecmp(target, "sip:", 4) == 0 ? target + 4 : target;
    size_t scheme = strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (t == target && scheme > 0 && t[scheme] == ':') {
        snprintf(why, whylen, "only sip: addresses can be dialled (the scheme must be sip:)");
        return -1;
    }
    const char *at = strchr(t, '@');
    if (!at || at == t || !at[1]) {
        snprintf(why, whylen, "it needs a user and a host (user@host)");
        return -1;
    }
    if (snprintf(out, cap, "sip:%s", t) >= (int)cap) {
        snprintf(why, whylen, "it is too long");
        return -1;
    }
    return sip_uri_check(out, why, whylen);
}

static int check_address(json_t *a, const char *field, size_t i, struct error *e)
{
    if (!json_is_object(a))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_ADDRESS",
                         "\"%s\"[%zu] must be an address object {\"type\",\"target\"}.", field, i);
    const char *keys[] = {"type", "target", "target_name", "name", "detail"};
    for (size_t k = 0; k < 5; k++) {
        json_t *v = json_object_get(a, keys[k]);
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 256))
            return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_ADDRESS",
                             "\"%s\"[%zu].%s must be a string of at most 256 bytes.", field, i,
                             keys[k]);
    }
    return 0;
}

/* Input shown in an error message: printable ASCII, '?' for the rest, cut to fit. */
static const char *printable(const char *in, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++)
        buf[n++] = (*in >= ' ' && *in < 127 && *in != '"' && *in != '\\') ? *in : '?';
    buf[n] = '\0';
    return buf;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *address_copy(json_t *a)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", jstr(a, "type"), "target", jstr(a, "target"),
                     "target_name", jstr(a, "target_name"), "name", jstr(a, "name"), "detail",
                     jstr(a, "detail"));
}

/* Dials one destination; returns the call's JSON, or NULL (logged) when it could not start. */
static json_t *dial_one(struct call_mgr *m, const char *customer_id, const struct call_dial_req *r,
                        json_t *actions, json_t *source, const char *from_uri,
                        const struct dest *dst, struct error *e)
{
    struct call c;
    call_record_init(&c, customer_id, "flow");
    char err[160];
    struct media_leg *leg = media_leg_create(m->d.media, c.id, err, sizeof(err));
    if (!leg) {
        call_fini(&c);
        error_set(e, ERR_UNAVAILABLE, "NO_MEDIA_PORT", "No RTP port is free: %s", err);
        return NULL;
    }
    if (r->flow_id)
        memcpy(c.flow_id, r->flow_id, ID_LEN + 1);
    c.source = json_dump_compact(source);
    c.destination = json_dump_compact(dst->address);
    c.status = CALL_DIALING;
    c.direction = CALL_OUTGOING;
    struct af_call_info info = {.call_id = c.id,
                                .source_target = jstr(source, "target"),
                                .source_name = jstr(source, "target_name"),
                                .destination_target = jstr(dst->address, "target"),
                                .direction = "outgoing"};
    if (call_flow_create(m, customer_id, r->flow_id, actions, &info, r->variables, c.activeflow_id,
                         e) < 0) {
        media_leg_destroy(m->d.media, leg);
        call_fini(&c);
        return NULL;
    }
    char sdp[1024];
    uint64_t session = (uint64_t)tm_now_us();
    struct sip_outgoing o = {.request_uri = dst->uri, .from_uri = from_uri, .sdp = sdp};
    struct sip_dialog *d = NULL;
    if (sdp_build_offer(m->media_ip, media_leg_port(leg), session, session, sdp, sizeof(sdp)) >= 0)
        d = m->sip.invite(m->sip.ctx, &o, NULL, err, sizeof(err));
    if (!d) {
        media_leg_destroy(m->d.media, leg);
        call_report_ended(m, c.id, c.activeflow_id);
        call_fini(&c);
        error_set(e, ERR_UNAVAILABLE, "DIAL_FAILED", "The call to %s could not start: %s", dst->uri,
                  err);
        return NULL;
    }
    if (store_call_insert(m->d.store, &c) != 0) {
        m->sip.cancel(m->sip.ctx, d);
        m->sip.set_data(m->sip.ctx, d, NULL);
        media_leg_destroy(m->d.media, leg);
        call_report_ended(m, c.id, c.activeflow_id);
        call_fini(&c);
        error_set(e, ERR_INTERNAL, "INTERNAL", "The call could not be stored.");
        return NULL;
    }
    struct live_call *lc = call_live_new(m, &c, d, leg);
    call_arm_ring_timer(m, lc);
    log_info("msg=\"call dialled\" call_id=%s to=\"%s\" activeflow_id=%s port=%d", c.id, dst->uri,
             c.activeflow_id, media_leg_port(leg));
    call_publish(m, "call_created", &c);
    call_publish(m, "call_dialing", &c);
    json_t *v = call_to_json(&c);
    call_fini(&c);
    return v;
}

int call_dial(struct call_mgr *m, const char *customer_id, const struct call_dial_req *r,
              json_t **out, struct error *e)
{
    if (!m->d.flows.create || !m->d.flows.exists)
        return error_set(e, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE",
                         "Outgoing calls are not available on this server.");
    json_t *dsts = r->destinations;
    if (!json_is_array(dsts) || json_array_size(dsts) == 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                         "\"destinations\" must be an array of 1 to %d addresses, e.g. "
                         "[{\"type\":\"sip\",\"target\":\"sip:alice@192.0.2.10:5060\"}].",
                         MAX_DESTINATIONS);
    size_t n = json_array_size(dsts);
    if (n > MAX_DESTINATIONS)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                         "At most %d destinations per request; this one has %zu.", MAX_DESTINATIONS,
                         n);
    if (r->source && !json_is_null(r->source) && check_address(r->source, "source", 0, e) < 0)
        return -ERR_INVALID_ARGUMENT;
    bool has_flow = r->flow_id && !id_is_nil(r->flow_id);
    if (!has_flow && !r->actions)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW",
                         "Give \"flow_id\" (a flow of yours) or \"actions\" (the flow to run "
                         "when the call is answered).");
    if (has_flow && !m->d.flows.exists(m->d.flows.ctx, customer_id, r->flow_id))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FLOW_ID",
                         "No flow with id %s exists for this customer.", r->flow_id);
    if (r->variables && !json_is_null(r->variables)) {
        if (!json_is_object(r->variables) || json_object_size(r->variables) > 100)
            return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_VARIABLES",
                             "\"variables\" must be an object of at most 100 string values.");
        const char *k;
        json_t *v;
        json_object_foreach(r->variables, k, v)
        {
            if (!json_is_string(v) || strlen(k) > 128 || json_string_length(v) > 4096)
                return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_VARIABLES",
                                 "Variable \"%.64s\" must be a string (names up to 128 bytes, "
                                 "values up to 4096).",
                                 k);
        }
    }
    struct dest *list = xcalloc(n, sizeof(*list));
    json_t *actions = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *a = json_array_get(dsts, i);
        if ((rc = check_address(a, "destinations", i, e)) < 0)
            break;
        const char *type = jstr(a, "type");
        if (strcmp(type, "sip") != 0) {
            rc = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                           "destinations[%zu] has type \"%.32s\"; this server dials \"sip\" "
                           "addresses only.",
                           i, type);
            break;
        }
        char why[160], shown[68];
        if (dest_uri(jstr(a, "target"), list[i].uri, sizeof(list[i].uri), why, sizeof(why)) < 0) {
            rc = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_DESTINATION",
                           "destinations[%zu].target \"%s\" is not a SIP address this server "
                           "can dial: %s. Use e.g. \"sip:alice@192.0.2.10:5060\" (host an IPv4 "
                           "address or a DNS name, port 1-65535).",
                           i, printable(jstr(a, "target"), shown, sizeof(shown)), why);
            break;
        }
        list[i].address = address_copy(a);
    }
    if (rc == 0 && !has_flow && (rc = action_list_validate(r->actions, &actions, e)) < 0)
        actions = NULL;
    json_t *source = NULL;
    char from_uri[ADDRESS_TARGET_MAX + 80];
    if (rc == 0) {
        source = r->source && json_is_object(r->source)
                     ? address_copy(r->source)
                     : json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "sip", "target", "",
                                 "target_name", "", "name", "", "detail", "");
        const char *st = jstr(source, "target");
        char user[ADDRESS_TARGET_MAX + 1];
        char why[160];
        if (!strncmp(st, "sip:", 4) &&
            dest_uri(st, from_uri, sizeof(from_uri), why, sizeof(why)) == 0) {
            /* a full SIP address: used as it is */
        } else {
            size_t k = 0;
            for (const char *p = st; *p && k < sizeof(user) - 1; p++)
                if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= 'A' && *p <= 'Z') || strchr("+-_.", *p))
                    user[k++] = *p;
            user[k] = '\0';
            snprintf(from_uri, sizeof(from_uri), "sip:%s@%s", k ? user : "conferenced",
                     m->media_ip);
        }
    }
    if (rc == 0 && (!m->has_sip || !m->d.media))
        rc = error_set(e, ERR_UNAVAILABLE, "CALLS_UNAVAILABLE",
                       "Outgoing calls are not available on this server.");
    if (rc == 0 && m->draining)
        rc = error_set(e, ERR_UNAVAILABLE, "SHUTTING_DOWN",
                       "The server is shutting down and places no new calls; try again later.");
    json_t *calls = json_array();
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *v = dial_one(m, customer_id, r, actions, source, from_uri, &list[i], e);
        if (!v) {
            if (i == 0)
                rc = -(int)e->status;
            break; /* the calls already dialled stand */
        }
        json_array_append_new(calls, v);
    }
    for (size_t i = 0; i < n; i++)
        json_decref(list[i].address);
    free(list);
    json_decref(actions);
    json_decref(source);
    if (rc < 0) {
        json_decref(calls);
        return rc;
    }
    *out = calls;
    return 0;
}
