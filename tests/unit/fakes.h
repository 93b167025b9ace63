/* Fakes shared by unit tests: a media bridge, call states, flows and an event recorder; for the
 * call module a SIP side, a router, the flows it asks and a listener; for the bridge the calls'
 * legs and a report recorder; for routing a directory of conferences and numbers. */
#ifndef CONFERENCED_TEST_FAKES_H
#define CONFERENCED_TEST_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge/bridge.h"
#include "call/call.h"
#include "conference/conference.h"
#include "events/bus.h"
#include "routing/routing.h"

#define FAKE_MAX 64

/* The bridge records requests; with auto_answer it confirms joins and kicks at once. */
struct fake_bridge {
    struct conference_mgr *mgr;
    bool auto_answer;
    bool fail_create, fail_join;
    int creates, destroys, joins, kicks;
    char joined[FAKE_MAX][ID_LEN + 1];
    size_t n_joined;
    char kicked[FAKE_MAX][ID_LEN + 1];
    size_t n_kicked;
};

/* Calls: a set of call ids that are progressing, and a record of "left" notifications. */
struct fake_calls {
    char up[FAKE_MAX][ID_LEN + 1];
    size_t n_up;
    char left[FAKE_MAX][ID_LEN + 1];
    int left_conf_status[FAKE_MAX];
    size_t n_left;
};

struct fake_flows {
    char ids[FAKE_MAX][ID_LEN + 1];
    char customers[FAKE_MAX][ID_LEN + 1];
    size_t n;
};

struct event_log {
    char types[512][40];
    char ids[512][ID_LEN + 1];
    char status[512][16];
    size_t n;
};

struct conference_bridge fake_bridge_iface(struct fake_bridge *b);
struct conference_calls fake_calls_iface(struct fake_calls *c);
struct conference_flows fake_flows_iface(struct fake_flows *f);
void fake_calls_set_up(struct fake_calls *c, const char *call_id, bool up);
void fake_flows_add(struct fake_flows *f, const char *customer_id, const char *flow_id);
/* Bus subscriber recording type, resource id and data.status. ctx = struct event_log. */
void event_log_record(const struct event *ev, void *ctx);
/* Index of the first event of type (and resource id, when not NULL) at or after from; -1. */
int event_log_find(const struct event_log *l, size_t from, const char *type, const char *id);
size_t event_log_count(const struct event_log *l, const char *type);
/* Amplitude of a tone at hz in x[0..n) sampled at 8 kHz (Goertzel, normalised to the sine's
 * amplitude). */
double fake_tone_level(const int16_t *x, size_t n, double hz);
/* The same at any sample rate. */
double fake_tone_level_at(const int16_t *x, size_t n, double hz, double rate);
/* The value of key in a raw "k=v&k=v" query (no decoding), or NULL. Returns a static buffer. */
const char *fake_query_value(const char *query, const char *key);

/* ---- the call module's sides ---- */

/* A SIP dialog of the fake SIP side (handed to the call module as a struct sip_dialog *). */
struct fake_dialog {
    void *data;
    bool outgoing;
    bool answered, byed, cancelled, unacked;
    int rejected;   /* the refusal's code, 0 when not refused */
    char sdp[2048]; /* incoming: our answer; outgoing: our offer */
    char request_uri[300], from_uri[300];
};

/* The SIP side: records what the calls ask; fail_* make an operation fail. */
struct fake_sip {
    struct fake_dialog dialogs[FAKE_MAX];
    size_t n;
    int answers, rejects, byes, cancels, invites, saved_byes;
    bool fail_invite, fail_bye, fail_cancel;
    char saved[FAKE_MAX][256]; /* the states sip_bye_saved was given */
};
struct call_sip fake_sip_iface(struct fake_sip *s);
/* A new dialog (incoming, or as an INVITE creates it). */
struct sip_dialog *fake_sip_dialog(struct fake_sip *s, bool outgoing);
struct fake_dialog *fake_dialog_of(struct sip_dialog *d);

/* The router: every user goes where the fields say (refuse: the SIP code; direct: a built-in
 * flow of one answer action, type "conference"). */
struct fake_router {
    int refuse;
    bool direct;
    char customer_id[ID_LEN + 1], flow_id[ID_LEN + 1];
    int routes;
    char last_user[128];
};
struct call_router fake_router_iface(struct fake_router *r);

/* The flows calls ask: every flow exists unless missing is set; create writes a new id, or fails
 * with fail_status. */
struct fake_call_flows {
    bool missing;
    enum err_status fail_status;
    int creates;
    char last_id[ID_LEN + 1], last_flow_id[ID_LEN + 1], last_direction[16];
    bool last_had_actions;
};
struct call_flows fake_call_flows_iface(struct fake_call_flows *f);

/* The call listener: counts and the last report's ids. */
struct fake_listener {
    int ready, ended, dtmf, play_done, left;
    char last_call[ID_LEN + 1], last_af[ID_LEN + 1], last_cc[ID_LEN + 1];
    char digits[FAKE_MAX + 1];
    uint32_t last_play_id;
    bool last_stopped;
};
struct call_listener fake_listener_iface(struct fake_listener *l);

/* ---- the bridge's sides ---- */

/* The calls' legs: call ids with a leg (ending: hanging up, not joinable); the events that are
 * the call's are kept. */
struct fake_legs {
    char ids[FAKE_MAX][ID_LEN + 1];
    struct media_leg *legs[FAKE_MAX];
    bool ending[FAKE_MAX];
    size_t n;
    enum media_event_type events[FAKE_MAX];
    size_t n_events;
};
struct bridge_legs fake_legs_iface(struct fake_legs *l);
void fake_legs_set(struct fake_legs *l, const char *call_id, struct media_leg *leg, bool ending);

/* What the bridge reports, in order. */
struct fake_reports {
    char joined[FAKE_MAX][ID_LEN + 1];
    size_t n_joined;
    char leaved[FAKE_MAX][ID_LEN + 1];
    size_t n_leaved;
};
struct bridge_reports fake_reports_iface(struct fake_reports *r);

/* ---- routing's lookups ---- */

/* Conferences (found by direct hash) and numbers (found by their number). */
struct fake_directory {
    struct conference confs[8];
    size_t n_confs;
    struct number nums[8];
    size_t n_nums;
    int lookups;
};
struct routing_lookups fake_directory_iface(struct fake_directory *d);
/* Adds a conference (copied, fields as given; the copy's strings are the directory's). */
void fake_directory_add_conference(struct fake_directory *d, const struct conference *c);
void fake_directory_add_number(struct fake_directory *d, const char *number,
                               const char *customer_id, const char *call_flow_id);
void fake_directory_fini(struct fake_directory *d);

#endif
