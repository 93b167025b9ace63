/* Error descriptions shared by every module: a status class, a reason code and a message that
 * says what was wrong and how to fix it. The API maps the status class to the HTTP code. */
#ifndef CONFERENCED_ERROR_H
#define CONFERENCED_ERROR_H

enum err_status {
    ERR_OK = 0,
    ERR_INVALID_ARGUMENT,
    ERR_UNAUTHENTICATED,
    ERR_PERMISSION_DENIED,
    ERR_NOT_FOUND,
    ERR_FAILED_PRECONDITION,
    ERR_ALREADY_EXISTS,
    ERR_PAYLOAD_TOO_LARGE,
    ERR_RESOURCE_EXHAUSTED,
    ERR_UNAVAILABLE,
    ERR_INTERNAL,
    ERR_UNIMPLEMENTED,
    ERR_METHOD_NOT_ALLOWED,
    ERR_UNSUPPORTED_MEDIA_TYPE,
};

struct error {
    enum err_status status;
    char reason[48];
    char message[320];
};

/* Any thread. Fills e (may be NULL) and returns -(int)status, so callers can `return
 * error_set(...)`. */
int error_set(struct error *e, enum err_status status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Any thread. The store failed doing what ("store the recording"): 500 INTERNAL naming it and
 * the store's code. */
int error_store_failed(struct error *e, const char *what, int rc);
/* Any thread. "INVALID_ARGUMENT", ... */
const char *error_status_name(enum err_status status);
/* Any thread. The HTTP status code of a status class. */
int error_http_code(enum err_status status);

#endif
