/* Login throttle: a budget of failed logins per username and per client address, as a GCRA
 * (generic cell rate algorithm): at most N failures back to back, then one more every 60/N
 * seconds. An attempt reserves one failure of each budget while its password is being checked,
 * so a burst of simultaneous guesses is cut off before it is hashed; the reservation is
 * released when the check succeeds and kept when it fails. Keys are SipHash values of the
 * username and the address (the strings themselves are not kept). Control thread only. */
#ifndef CONFERENCED_THROTTLE_H
#define CONFERENCED_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct login_throttle;

/* What an admitted attempt holds until login_throttle_end(). */
struct login_ticket {
    uint64_t user_key, addr_key; /* addr_key 0: no address budget */
};

/* Which budget refused an attempt. */
enum login_throttle_limit { LOGIN_THROTTLE_USERNAME = 1, LOGIN_THROTTLE_ADDRESS = 2 };

/* failures_per_minute >= 1. */
struct login_throttle *login_throttle_create(int failures_per_minute);
void login_throttle_destroy(struct login_throttle *t);
/* Admits an attempt at now_us: 0 (ticket filled, one failure reserved in each budget) or the
 * login_throttle_limit that refused it, with *retry_after_s (>= 1) until it would be admitted.
 * address NULL or "" has no budget of its own. */
int login_throttle_begin(struct login_throttle *t, const char *username, const char *address,
                         int64_t now_us, struct login_ticket *ticket, int64_t *retry_after_s);
/* Ends an admitted attempt: failed keeps the reserved failure, otherwise it is given back. */
void login_throttle_end(struct login_throttle *t, const struct login_ticket *ticket, bool failed,
                        int64_t now_us);
/* Entries held (for tests and figures). */
size_t login_throttle_size(const struct login_throttle *t);

#endif
