#include "core/jsonutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int json_body_parse(const char *body, size_t len, json_t **out, struct error *e)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i == len) {
        *out = json_object();
        return 0;
    }
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_JSON_BODY",
                         "The request body is not valid JSON: %s (line %d, column %d).",
                         jerr.text, jerr.line, jerr.column);
    if (!json_is_object(v)) {
        json_decref(v);
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_JSON_BODY",
                         "The request body must be a JSON object.");
    }
    *out = v;
    return 0;
}

static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

int jfield_string(json_t *obj, const char *key, size_t max_len, const char **out, struct error *e)
{
    json_t *v = field(obj, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_TYPE",
                         "Field '%s' must be a string.", key);
    if (json_string_length(v) > max_len)
        return error_set(e, ERR_INVALID_ARGUMENT, "FIELD_TOO_LONG",
                         "Field '%s' is longer than %zu characters.", key, max_len);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field '%s' must not contain NUL characters.", key);
    *out = json_string_value(v);
    return 1;
}

int jfield_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
               struct error *e)
{
    json_t *v = field(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_TYPE",
                         "Field '%s' must be an integer.", key);
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field '%s' must be between %lld and %lld.", key, (long long)min,
                         (long long)max);
    *out = n;
    return 1;
}

int jfield_object(json_t *obj, const char *key, size_t max_bytes, json_t **out, struct error *e)
{
    json_t *v = field(obj, key);
    if (!v)
        return 0;
    if (!json_is_object(v))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_TYPE",
                         "Field '%s' must be a JSON object.", key);
    size_t size = json_dumpb(v, NULL, 0, JSON_COMPACT);
    if (size > max_bytes)
        return error_set(e, ERR_INVALID_ARGUMENT, "FIELD_TOO_LONG",
                         "Field '%s' is larger than %zu bytes when serialised.", key, max_bytes);
    *out = v;
    return 1;
}

int jfield_uuid(json_t *obj, const char *key, char out[ID_LEN + 1], struct error *e)
{
    const char *s = NULL;
    int rc = jfield_string(obj, key, 64, &s, e);
    if (rc <= 0)
        return rc;
    if (s[0] == '\0') {
        memcpy(out, ID_NIL, ID_LEN + 1);
        return 1;
    }
    if (id_normalize(s, out) < 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field '%s' must be a UUID such as 00000000-0000-0000-0000-000000000000.",
                         key);
    return 1;
}

char *json_dump_compact(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        die("out of memory serialising JSON");
    return s;
}
