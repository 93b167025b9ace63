/* Timestamps: int64 microseconds since the Unix epoch (UTC), and their API text forms. */
#ifndef CONFERENCED_TIMEUTIL_H
#define CONFERENCED_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* "9999-01-01 00:00:00.000000": an event that has not happened yet (tm_delete). */
#define TM_NEVER INT64_C(253370764800000000)
/* Size of a formatted timestamp including the terminator. */
#define TM_TEXT_LEN 27

/* Any thread. Wall-clock now in µs. */
int64_t tm_now_us(void);
/* Any thread. Like tm_now_us() but strictly greater than every value it returned before in this
 * process, so records created in the same microsecond still order (and paginate) strictly. */
int64_t tm_unique_us(void);
/* Any thread. Raises the floor of tm_unique_us() (used at start-up with the newest stored time). */
void tm_unique_floor(int64_t us);
/* Any thread. Formats as "YYYY-MM-DD HH:MM:SS.ffffff" into out[TM_TEXT_LEN]. */
void tm_format(int64_t us, char out[TM_TEXT_LEN]);
/* Any thread. Parses "YYYY-MM-DD HH:MM:SS[.f{1,6}]" or RFC 3339 ("T" separator, "Z" or ±hh:mm
 * offset). Returns 0 or -1 when the text is not a valid timestamp. */
int tm_parse(const char *text, int64_t *out);

#endif
