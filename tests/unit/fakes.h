/* Fakes shared by unit tests: a media bridge, call states, flows and an event recorder. */
#ifndef CONFERENCED_TEST_FAKES_H
#define CONFERENCED_TEST_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conference/conference.h"
#include "events/bus.h"

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
/* The value of key in a raw "k=v&k=v" query (no decoding), or NULL. Returns a static buffer. */
const char *fake_query_value(const char *query, const char *key);

#endif
