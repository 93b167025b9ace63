/* Recordings in the SQLite store, and the calls' recording columns (written only here, so that
 * the call module's read-modify-write of a call never undoes a recording's change). */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/sqlite_internal.h"

#define RECORDING_COLS                                                                             \
    "id, customer_id, owner_type, owner_id, activeflow_id, reference_type, reference_id, status, " \
    "format, on_end_flow_id, max_ms, duration_ms, size, frames_dropped, tm_start, tm_end, "        \
    "tm_create, tm_update, tm_delete"

enum rec_stmt {
    RS_INSERT,
    RS_GET,
    RS_UPDATE,
    RS_LIST,
    RS_UNFINISHED,
    RS_CALL_SET,
    RS__COUNT,
};

static const char *const rec_sql[RS__COUNT] = {
    [RS_INSERT] = "INSERT INTO recordings (" RECORDING_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                  "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    [RS_GET] = "SELECT " RECORDING_COLS " FROM recordings WHERE id = ?1 AND (?2 IS NULL OR "
               "customer_id = ?2)",
    [RS_UPDATE] = "UPDATE recordings SET activeflow_id = ?5, status = ?8, on_end_flow_id = ?10, "
                  "max_ms = ?11, duration_ms = ?12, size = ?13, frames_dropped = ?14, "
                  "tm_start = ?15, tm_end = ?16, tm_update = ?18, tm_delete = ?19 WHERE id = ?1",
    [RS_LIST] = "SELECT " RECORDING_COLS " FROM recordings WHERE customer_id = ?1 AND "
                "tm_create < ?2 AND tm_delete = " NEVER " AND (?4 IS NULL OR owner_id = ?4) AND "
                "(?5 IS NULL OR reference_id = ?5) ORDER BY tm_create DESC LIMIT ?3",
    [RS_UNFINISHED] = "SELECT " RECORDING_COLS " FROM recordings INDEXED BY recordings_unfinished "
                      "WHERE status != 'ended' ORDER BY tm_create",
    [RS_CALL_SET] = "UPDATE calls SET recording_id = ?2, recording_ids = ?3, tm_update = ?4 WHERE id = ?1",
};

static struct sqlite_store *impl(struct store *s)
{
    return (struct sqlite_store *)s;
}

int sqlite_recordings_prepare(struct sqlite_store *ss)
{
    if (strcmp(recording_status_name(RECORDING_ENDED), "ended"))
        die("store SQL and model recording status names disagree");
    ss->rec_st = xcalloc(RS__COUNT, sizeof(*ss->rec_st));
    for (int i = 0; i < RS__COUNT; i++) {
        int rc = sqlite3_prepare_v3(ss->db, rec_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &ss->rec_st[i], NULL);
        if (rc != SQLITE_OK) {
            log_error("msg=\"store statement does not prepare\" table=recordings index=%d "
                      "error=\"%s\"",
                      i, sqlite3_errmsg(ss->db));
            return STORE_ERROR;
        }
    }
    return 0;
}

void sqlite_recordings_finalize(struct sqlite_store *ss)
{
    for (int i = 0; ss->rec_st && i < RS__COUNT; i++)
        sqlite3_finalize(ss->rec_st[i]);
    free(ss->rec_st);
    ss->rec_st = NULL;
}

static void bind_recording(struct sql_binder *b, const struct recording *r)
{
    sql_bind_text(b, 1, r->id);
    sql_bind_text(b, 2, r->customer_id);
    sql_bind_text(b, 3, r->owner_type);
    sql_bind_text(b, 4, r->owner_id);
    sql_bind_text_or(b, 5, r->activeflow_id, ID_NIL);
    sql_bind_text(b, 6, r->reference_type);
    sql_bind_text(b, 7, r->reference_id);
    sql_bind_text(b, 8, recording_status_name(r->status));
    sql_bind_text(b, 9, r->format);
    sql_bind_text_or(b, 10, r->on_end_flow_id, ID_NIL);
    sql_bind_i64(b, 11, r->max_ms);
    sql_bind_i64(b, 12, r->duration_ms);
    sql_bind_i64(b, 13, r->size);
    sql_bind_i64(b, 14, r->frames_dropped);
    sql_bind_null_if_0(b, 15, r->tm_start);
    sql_bind_null_if_0(b, 16, r->tm_end);
    sql_bind_i64(b, 17, r->tm_create);
    sql_bind_i64(b, 18, r->tm_update);
    sql_bind_i64(b, 19, r->tm_delete);
}

static int read_recording(sqlite3_stmt *st, void *item)
{
    struct recording *r = item;
    int bad = sql_col_buf(st, 0, r->id, sizeof(r->id));
    bad |= sql_col_buf(st, 1, r->customer_id, sizeof(r->customer_id));
    bad |= sql_col_buf(st, 2, r->owner_type, sizeof(r->owner_type));
    bad |= sql_col_buf(st, 3, r->owner_id, sizeof(r->owner_id));
    bad |= sql_col_buf(st, 4, r->activeflow_id, sizeof(r->activeflow_id));
    bad |= sql_col_buf(st, 5, r->reference_type, sizeof(r->reference_type));
    bad |= sql_col_buf(st, 6, r->reference_id, sizeof(r->reference_id));
    bad |= recording_status_parse(sql_col_str(st, 7), &r->status) < 0;
    bad |= sql_col_buf(st, 8, r->format, sizeof(r->format));
    bad |= sql_col_buf(st, 9, r->on_end_flow_id, sizeof(r->on_end_flow_id));
    r->max_ms = sqlite3_column_int64(st, 10);
    r->duration_ms = sqlite3_column_int64(st, 11);
    r->size = sqlite3_column_int64(st, 12);
    r->frames_dropped = sqlite3_column_int64(st, 13);
    r->tm_start = sqlite3_column_int64(st, 14);
    r->tm_end = sqlite3_column_int64(st, 15);
    r->tm_create = sqlite3_column_int64(st, 16);
    r->tm_update = sqlite3_column_int64(st, 17);
    r->tm_delete = sqlite3_column_int64(st, 18);
    return bad ? -1 : 0;
}

static void fini_recording(void *item)
{
    (void)item; /* no heap fields */
}

static int sq_recording_write(struct store *s, enum rec_stmt id, const struct recording *r,
                              const char *op, bool need_row)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->rec_st[id], SQLITE_OK};
    bind_recording(&b, r);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, op);
    return sql_run_write(ss, b.st, op, need_row);
}

static int sq_recording_insert(struct store *s, const struct recording *r)
{
    return sq_recording_write(s, RS_INSERT, r, "recording_insert", false);
}

static int sq_recording_update(struct store *s, const struct recording *r)
{
    return sq_recording_write(s, RS_UPDATE, r, "recording_update", true);
}

static int sq_recording_get(struct store *s, const char *customer_id, const char *id,
                            struct recording *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->rec_st[RS_GET], SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "recording_get");
    return sql_run_get(ss, b.st, "recording_get", read_recording, fini_recording, out,
                       sizeof(*out));
}

static int sq_recording_list(struct store *s, const char *customer_id, const char *owner_id,
                             const char *reference_id, const struct store_page *p,
                             struct recording **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->rec_st[RS_LIST], SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    sql_bind_maybe_text(&b, 4, owner_id);
    sql_bind_maybe_text(&b, 5, reference_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "recording_list");
    return sql_run_list(ss, b.st, "recording_list", read_recording, fini_recording, sizeof(**out),
                        (void **)out, n);
}

static int sq_recording_list_unfinished(struct store *s, struct recording **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    return sql_run_list(ss, ss->rec_st[RS_UNFINISHED], "recording_list_unfinished", read_recording,
                        fini_recording, sizeof(**out), (void **)out, n);
}

static int sq_call_set_recording(struct store *s, const char *call_id, const char *recording_id,
                                 const char *recording_ids, int64_t tm_update)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->rec_st[RS_CALL_SET], SQLITE_OK};
    sql_bind_text(&b, 1, call_id);
    sql_bind_text_or(&b, 2, recording_id, ID_NIL);
    sql_bind_text_or(&b, 3, recording_ids, "[]");
    sql_bind_i64(&b, 4, tm_update);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "call_set_recording");
    return sql_run_write(ss, b.st, "call_set_recording", true);
}

void sqlite_recordings_ops(struct store_ops *ops)
{
    ops->recording_insert = sq_recording_insert;
    ops->recording_get = sq_recording_get;
    ops->recording_update = sq_recording_update;
    ops->recording_list = sq_recording_list;
    ops->recording_list_unfinished = sq_recording_list_unfinished;
    ops->call_set_recording = sq_call_set_recording;
}

void store_free_recordings(struct recording *a, size_t n)
{
    (void)n;
    free(a);
}
