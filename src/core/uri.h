/* Percent-decoding (RFC 3986), for the HTTP layer and the router (request targets) and the audio
 * fetcher (file:// URLs): path segments are decoded one by one after the path is split on '/', so
 * an encoded "%2F" stays inside its segment; a query string is split on '&' and '=' and decoded
 * ('+' is a space). A bad escape or an encoded NUL is an error, never a silent cut. Any thread; no
 * state. */
#ifndef CONFERENCED_URI_H
#define CONFERENCED_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A query string holds at most this many parameters (more: URI_TOO_MANY). */
#define URI_MAX_PARAMS 64

enum uri_result {
    URI_OK = 0,
    URI_BAD_ESCAPE = -1, /* '%' not followed by two hex digits */
    URI_NUL = -2,        /* "%00" */
    URI_TOO_LONG = -3,   /* the output does not fit */
    URI_TOO_MANY = -4,   /* more than URI_MAX_PARAMS parameters */
};

/* Decodes src[0..len) into out (cap bytes, always terminated on success); with plus_is_space a
 * '+' becomes ' ' (query strings). Returns the decoded length or a negative enum uri_result. */
ssize_t uri_decode(const char *src, size_t len, bool plus_is_space, char *out, size_t cap);

struct uri_query {
    size_t n;
    const char *key[URI_MAX_PARAMS];
    const char *value[URI_MAX_PARAMS]; /* "" for a key without '=' */
    char *buf;                         /* owns the decoded strings */
};

/* Parses src[0..len) ("a=1&b=x%20y"); empty pieces ("a=1&&b=2") are skipped. Returns 0, or a
 * negative enum uri_result (q is then empty but still needs uri_query_fini). */
int uri_query_parse(struct uri_query *q, const char *src, size_t len);
/* The value of the first parameter called key, or NULL. */
const char *uri_query_get(const struct uri_query *q, const char *key);
/* Frees what parse allocated (a zeroed or finished query is fine). */
void uri_query_fini(struct uri_query *q);
/* A sentence for a negative enum uri_result ("... %-escape ..."), for error messages. */
const char *uri_result_text(int result);

#endif
