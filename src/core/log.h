/* One-line key=value logging with a level set from the configuration. */
#ifndef CONFERENCED_LOG_H
#define CONFERENCED_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Any thread. Sets the lowest level that is written. */
void log_set_level(enum log_level level);
/* Any thread. Parses "debug|info|warn|error"; returns 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);
/* Any thread. Returns non-zero when a message of this level would be written. */
int log_enabled(enum log_level level);
/* Any thread. Writes "ts level msg" + newline to stderr; fmt should be key=value pairs. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

/* A rate limit for a kind of log line: at most `burst` lines per window. Caller-owned, zeroed to
 * start; used by one thread (any thread: no lock, no clock of its own). */
struct log_limit {
    int64_t window_start_us;
    unsigned used;
    uint64_t suppressed;
};
/* True when a line may be written at now_us (any monotonic or wall clock, in microseconds);
 * *suppressed then gets how many lines were left out since the last one written (log it). */
bool log_limit_allow(struct log_limit *l, int64_t now_us, int64_t window_us, unsigned burst,
                     uint64_t *suppressed);

/* Any thread. Prints the message and aborts: for allocation failure and broken invariants. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
