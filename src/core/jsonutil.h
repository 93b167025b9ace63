/* Typed reads of request-body fields with errors that name the field. */
#ifndef CONFERENCED_JSONUTIL_H
#define CONFERENCED_JSONUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/ids.h"

/* Any thread. Parses a request body that must be a JSON object (an empty body counts as {}).
 * Returns 0 with *out owned by the caller, or a negative error filled into e. */
int json_body_parse(const char *body, size_t len, json_t **out, struct error *e);

/* The jfield_* readers return 0 when the field is absent or null (out untouched), 1 when it is
 * present and valid (out written), or a negative error filled into e. Strings are borrowed from
 * obj and live as long as it does. */
int jfield_string(json_t *obj, const char *key, size_t max_len, const char **out, struct error *e);
int jfield_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
               struct error *e);
int jfield_object(json_t *obj, const char *key, size_t max_bytes, json_t **out, struct error *e);
/* A UUID field; "" and the nil UUID both give the nil UUID. */
int jfield_uuid(json_t *obj, const char *key, char out[ID_LEN + 1], struct error *e);

/* Any thread. Compact serialisation (caller frees); aborts on allocation failure. */
char *json_dump_compact(const json_t *v);

#endif
