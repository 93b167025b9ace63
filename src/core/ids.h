/* Identifiers: UUID v4 strings and conference direct hashes. */
#ifndef CONFERENCED_IDS_H
#define CONFERENCED_IDS_H

#include <stdbool.h>

/* Length of a UUID string without the terminator. */
#define ID_LEN 36
/* The unset UUID. */
#define ID_NIL "00000000-0000-0000-0000-000000000000"
/* "direct." + 12 hex characters + terminator. */
#define DIRECT_HASH_SIZE 20

/* Any thread. Writes a fresh lower-case UUID v4. */
void id_new(char out[ID_LEN + 1]);
/* Any thread. True when s is a UUID in 8-4-4-4-12 hex form (any case). */
bool id_valid(const char *s);
/* Any thread. Copies a valid UUID in lower case; returns -1 (out untouched) when s is not one. */
int id_normalize(const char *s, char out[ID_LEN + 1]);
/* Any thread. True for the unset UUID. */
bool id_is_nil(const char *s);
/* Control thread. Writes a request id in UUID form: unique per process run, from a counter and a
 * random start, cheap (no system call) because every request gets one. Not a secret. */
void id_request(char out[ID_LEN + 1]);
/* Any thread. Writes "direct." + 12 lower-case hex characters from a secure random source. */
void id_direct_hash_new(char out[DIRECT_HASH_SIZE]);

#endif
