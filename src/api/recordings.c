/* /v1.0/recordings, /v1.0/recordingfiles, and the recording_start/recording_stop of conferences
 * and calls. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "api/internal.h"
#include "core/jsonutil.h"
#include "core/mem.h"
#include "recording/recording.h"

#define RECORDING_PERMS (PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_MANAGER)

static int unavailable(struct api_call *c)
{
    if (c->api->d.recordings)
        return 0;
    api_fail(c, ERR_UNAVAILABLE, "RECORDINGS_UNAVAILABLE",
             "Recordings are not available on this server.");
    return -1;
}

static int reply_recording(struct api_call *c, int rc, const struct recording *r,
                           const struct error *e)
{
    if (rc < 0)
        return api_reply_error(c, e);
    return api_reply(c, recording_to_json(r));
}

int api_recordings_list(struct api_call *c)
{
    if (api_require(c, RECORDING_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    struct store_page page;
    if (api_page(c, &page) < 0)
        return 0;
    id_t_ owner, ref;
    int has_owner, has_ref;
    if ((has_owner = api_query_uuid(c, "owner_id", owner)) < 0 ||
        (has_ref = api_query_uuid(c, "reference_id", ref)) < 0)
        return 0;
    struct recording *list = NULL;
    size_t n = 0;
    struct error e;
    if (recording_list(c->api->d.recordings, c->who.customer_id, has_owner ? owner : NULL,
                       has_ref ? ref : NULL, &page, &list, &n, &e) < 0)
        return api_reply_error(c, &e);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, recording_to_json(&list[i]));
    json_t *v = api_list(items, n ? list[n - 1].tm_create : 0);
    store_free_recordings(list, n);
    return api_reply(c, v);
}

int api_recordings_get(struct api_call *c)
{
    if (api_require(c, RECORDING_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    struct recording r;
    struct error e;
    int rc = recording_get(c->api->d.recordings, c->who.customer_id, c->id, &r, &e);
    return reply_recording(c, rc, &r, &e);
}

int api_recordings_delete(struct api_call *c)
{
    if (api_require(c, RECORDING_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    struct recording r;
    struct error e;
    int rc = recording_delete(c->api->d.recordings, c->who.customer_id, c->id, &r, &e);
    return reply_recording(c, rc, &r, &e);
}

int api_recordingfiles_get(struct api_call *c)
{
    if (api_require(c, RECORDING_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    char path[4096];
    struct error e;
    if (recording_file(c->api->d.recordings, c->who.customer_id, c->id, path, sizeof(path), &e) < 0)
        return api_reply_error(c, &e);
    struct stat st;
    if (stat(path, &st) != 0)
        return api_fail(c, ERR_NOT_FOUND, "RECORDING_FILE_NOT_FOUND", "Recording %s has no file.",
                        c->id);
    uint64_t size = (uint64_t)st.st_size, off = 0, len = size;
    const char *range = c->req->header ? c->req->header(c->req->ctx, "Range") : NULL;
    int rc = range ? http_range_parse(range, size, &off, &len) : 0;
    if (rc < 0) {
        char cr[64];
        snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
        api_fail(c, ERR_INVALID_ARGUMENT, "RANGE_NOT_SATISFIABLE",
                 "The range \"%.64s\" is outside the file (%llu bytes).", range,
                 (unsigned long long)size);
        c->resp->status = 416;
        api_response_header(c->resp, "Content-Range", cr);
        return 0;
    }
    c->resp->status = 200;
    if (rc == 1) {
        char cr[96];
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1), (unsigned long long)size);
        c->resp->status = 206;
        api_response_header(c->resp, "Content-Range", cr);
    }
    c->resp->file_path = xstrdup(path);
    c->resp->file_type = "audio/wav";
    c->resp->file_offset = off;
    c->resp->file_length = len;
    return 0;
}

/* One "bytes=" range of RFC 9110 §14.1.2 (first-last, first-, -suffix) over size bytes: 1 with
 * *off and *len, 0 when the header is to be ignored (another unit, several ranges, malformed:
 * the whole file is sent), -1 when unsatisfiable (416). */
int http_range_parse(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    if (strncmp(h, "bytes=", 6) != 0)
        return 0;
    const char *p = h + 6;
    while (*p == ' ')
        p++;
    if (strchr(p, ','))
        return 0;
    const char *dash = strchr(p, '-');
    if (!dash)
        return 0;
    char a[24] = "", b[24] = "";
    size_t la = (size_t)(dash - p), lb = strlen(dash + 1);
    while (lb && dash[lb] == ' ')
        lb--;
    if (la >= sizeof(a) || lb >= sizeof(b))
        return 0;
    memcpy(a, p, la);
    memcpy(b, dash + 1, lb);
    uint64_t first = 0, last = 0;
    bool has_a = la > 0, has_b = lb > 0;
    if ((has_a && (strspn(a, "0123456789") != la || str_to_u64(a, UINT64_MAX, &first) < 0)) ||
        (has_b && (strspn(b, "0123456789") != lb || str_to_u64(b, UINT64_MAX, &last) < 0)) ||
        (!has_a && !has_b))
        return 0;
    if (!has_a) { /* the last `last` bytes */
        if (last == 0 || size == 0)
            return -1;
        *len = last < size ? last : size;
        *off = size - *len;
        return 1;
    }
    if (has_b && last < first)
        return 0;
    if (first >= size)
        return -1;
    if (!has_b || last >= size)
        last = size - 1;
    *off = first;
    *len = last - first + 1;
    return 1;
}

/* {"format","duration","on_end_flow_id"} of a recording_start; strings borrowed from body. */
static int read_start(json_t *body, struct recording_start_req *req, id_t_ flow, struct error *e)
{
    memset(req, 0, sizeof(*req));
    int rc;
    if ((rc = jfield_string(body, "format", 16, &req->format, e)) < 0 ||
        (rc = jfield_int(body, "duration", INT64_MIN, INT64_MAX, &req->duration, e)) < 0 ||
        (rc = jfield_uuid(body, "on_end_flow_id", flow, e)) < 0)
        return rc;
    req->on_end_flow_id = rc == 1 ? flow : NULL;
    return 0;
}

static int start(struct api_call *c, enum recording_target t)
{
    if (api_require(c, RECORDING_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    json_t *body;
    if (api_body(c, &body) < 0)
        return 0;
    struct recording_start_req req;
    id_t_ flow;
    struct error e;
    struct recording r;
    int rc = read_start(body, &req, flow, &e);
    if (rc == 0)
        rc = recording_start(c->api->d.recordings, t, c->who.customer_id, c->id, &req, &r, &e);
    json_decref(body);
    return rc < 0 ? api_reply_error(c, &e) : 1;
}

static int stop(struct api_call *c, enum recording_target t)
{
    if (api_require(c, RECORDING_PERMS) < 0 || unavailable(c) < 0)
        return 0;
    struct error e;
    if (recording_stop(c->api->d.recordings, t, c->who.customer_id, c->id, &e) < 0)
        return api_reply_error(c, &e);
    return 1;
}

/* The answer of a start or stop is the conference or the call as it is now. */
int api_conferences_recording_start(struct api_call *c)
{
    if (start(c, RECORDING_OF_CONFERENCE) != 1)
        return 0;
    return api_conferences_get(c);
}

int api_conferences_recording_stop(struct api_call *c)
{
    if (stop(c, RECORDING_OF_CONFERENCE) != 1)
        return 0;
    return api_conferences_get(c);
}

int api_calls_recording_start(struct api_call *c)
{
    if (start(c, RECORDING_OF_CALL) != 1)
        return 0;
    return api_calls_get(c);
}

int api_calls_recording_stop(struct api_call *c)
{
    if (stop(c, RECORDING_OF_CALL) != 1)
        return 0;
    return api_calls_get(c);
}
