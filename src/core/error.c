#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/mem.h"

static const struct {
    const char *name;
    int http;
} table[] = {
    [ERR_OK] = {"OK", 200},
    [ERR_INVALID_ARGUMENT] = {"INVALID_ARGUMENT", 400},
    [ERR_UNAUTHENTICATED] = {"UNAUTHENTICATED", 401},
    [ERR_PERMISSION_DENIED] = {"PERMISSION_DENIED", 403},
    [ERR_NOT_FOUND] = {"NOT_FOUND", 404},
    [ERR_FAILED_PRECONDITION] = {"FAILED_PRECONDITION", 409},
    [ERR_ALREADY_EXISTS] = {"ALREADY_EXISTS", 409},
    [ERR_PAYLOAD_TOO_LARGE] = {"PAYLOAD_TOO_LARGE", 413},
    [ERR_RESOURCE_EXHAUSTED] = {"RESOURCE_EXHAUSTED", 429},
    [ERR_UNAVAILABLE] = {"UNAVAILABLE", 503},
    [ERR_INTERNAL] = {"INTERNAL", 500},
    [ERR_UNIMPLEMENTED] = {"UNIMPLEMENTED", 501},
    [ERR_METHOD_NOT_ALLOWED] = {"METHOD_NOT_ALLOWED", 405},
    [ERR_UNSUPPORTED_MEDIA_TYPE] = {"UNSUPPORTED_MEDIA_TYPE", 415},
};

int error_set(struct error *e, enum err_status status, const char *reason, const char *fmt, ...)
{
    if (e) {
        e->status = status;
        str_copy(e->reason, sizeof(e->reason), reason);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
    }
    return -(int)status;
}

const char *error_status_name(enum err_status status)
{
    return table[status].name;
}

int error_http_code(enum err_status status)
{
    return table[status].http;
}

int error_store_failed(struct error *e, const char *what, int rc)
{
    return error_set(e, ERR_INTERNAL, "INTERNAL", "The server could not %s; try again (%d).", what,
                     rc);
}
