/* Transcribes and their transcripts in the SQLite store. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/sqlite_internal.h"

#define TRANSCRIBE_COLS                                                                            \
    "id, customer_id, activeflow_id, on_end_flow_id, reference_type, reference_id, status, "       \
    "language, direction, provider, skipped, failed, error, tm_create, tm_update, tm_delete"
#define TRANSCRIPT_COLS                                                                            \
    "id, customer_id, transcribe_id, direction, message, conferencecall_id, call_id, "             \
    "confidence, offset_ms, tm_transcript, tm_end, tm_create"

enum tr_stmt {
    TS_INSERT,
    TS_GET,
    TS_UPDATE,
    TS_LIST,
    TS_PROGRESSING,
    TS_SCRIPT_INSERT,
    TS_SCRIPT_LIST,
    TS__COUNT,
};

static const char *const tr_sql[TS__COUNT] = {
    [TS_INSERT] = "INSERT INTO transcribes (" TRANSCRIBE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                  "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [TS_GET] = "SELECT " TRANSCRIBE_COLS " FROM transcribes WHERE id = ?1 AND (?2 IS NULL OR "
               "customer_id = ?2)",
    [TS_UPDATE] = "UPDATE transcribes SET status = ?7, skipped = ?11, failed = ?12, error = ?13, "
                  "tm_update = ?15, tm_delete = ?16 WHERE id = ?1",
    [TS_LIST] = "SELECT " TRANSCRIBE_COLS " FROM transcribes WHERE customer_id = ?1 AND "
                "tm_create < ?2 AND tm_delete = " NEVER " AND (?4 IS NULL OR reference_id = ?4) "
                "ORDER BY tm_create DESC LIMIT ?3",
    [TS_PROGRESSING] = "SELECT " TRANSCRIBE_COLS " FROM transcribes INDEXED BY "
                       "transcribes_progressing WHERE status = 'progressing' ORDER BY tm_create",
    [TS_SCRIPT_INSERT] = "INSERT INTO transcripts (" TRANSCRIPT_COLS ") VALUES (?1, ?2, ?3, ?4, "
                         "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [TS_SCRIPT_LIST] = "SELECT " TRANSCRIPT_COLS " FROM transcripts WHERE customer_id = ?1 AND "
                       "transcribe_id = ?2 AND tm_create > ?3 ORDER BY tm_create LIMIT ?4",
};

static struct sqlite_store *impl(struct store *s)
{
    return (struct sqlite_store *)s;
}

int sqlite_transcribes_prepare(struct sqlite_store *ss)
{
    if (strcmp(transcribe_status_name(TRANSCRIBE_PROGRESSING), "progressing"))
        die("store SQL and model transcribe status names disagree");
    ss->tr_st = xcalloc(TS__COUNT, sizeof(*ss->tr_st));
    for (int i = 0; i < TS__COUNT; i++) {
        int rc = sqlite3_prepare_v3(ss->db, tr_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ss->tr_st[i],
                                    NULL);
        if (rc != SQLITE_OK) {
            log_error("msg=\"store statement does not prepare\" table=transcribes index=%d "
                      "error=\"%s\"",
                      i, sqlite3_errmsg(ss->db));
            return STORE_ERROR;
        }
    }
    return 0;
}

void sqlite_transcribes_finalize(struct sqlite_store *ss)
{
    for (int i = 0; ss->tr_st && i < TS__COUNT; i++)
        sqlite3_finalize(ss->tr_st[i]);
    free(ss->tr_st);
    ss->tr_st = NULL;
}

/* ---- transcribes ---- */

static void bind_transcribe(struct sql_binder *b, const struct transcribe *t)
{
    sql_bind_text(b, 1, t->id);
    sql_bind_text(b, 2, t->customer_id);
    sql_bind_text_or(b, 3, t->activeflow_id, ID_NIL);
    sql_bind_text_or(b, 4, t->on_end_flow_id, ID_NIL);
    sql_bind_text(b, 5, t->reference_type);
    sql_bind_text(b, 6, t->reference_id);
    sql_bind_text(b, 7, transcribe_status_name(t->status));
    sql_bind_text(b, 8, t->language);
    sql_bind_text(b, 9, t->direction);
    sql_bind_text(b, 10, t->provider);
    sql_bind_i64(b, 11, t->skipped);
    sql_bind_i64(b, 12, t->failed);
    sql_bind_text(b, 13, t->error);
    sql_bind_i64(b, 14, t->tm_create);
    sql_bind_i64(b, 15, t->tm_update);
    sql_bind_i64(b, 16, t->tm_delete);
}

static int read_transcribe(sqlite3_stmt *st, void *item)
{
    struct transcribe *t = item;
    int bad = sql_col_buf(st, 0, t->id, sizeof(t->id));
    bad |= sql_col_buf(st, 1, t->customer_id, sizeof(t->customer_id));
    bad |= sql_col_buf(st, 2, t->activeflow_id, sizeof(t->activeflow_id));
    bad |= sql_col_buf(st, 3, t->on_end_flow_id, sizeof(t->on_end_flow_id));
    bad |= sql_col_buf(st, 4, t->reference_type, sizeof(t->reference_type));
    bad |= sql_col_buf(st, 5, t->reference_id, sizeof(t->reference_id));
    bad |= transcribe_status_parse(sql_col_str(st, 6), &t->status) < 0;
    bad |= sql_col_buf(st, 7, t->language, sizeof(t->language));
    bad |= sql_col_buf(st, 8, t->direction, sizeof(t->direction));
    bad |= sql_col_buf(st, 9, t->provider, sizeof(t->provider));
    t->skipped = sqlite3_column_int64(st, 10);
    t->failed = sqlite3_column_int64(st, 11);
    bad |= sql_col_buf(st, 12, t->error, sizeof(t->error));
    t->tm_create = sqlite3_column_int64(st, 13);
    t->tm_update = sqlite3_column_int64(st, 14);
    t->tm_delete = sqlite3_column_int64(st, 15);
    return bad ? -1 : 0;
}

static void fini_transcribe(void *item)
{
    (void)item; /* no heap fields */
}

static int sq_transcribe_write(struct store *s, enum tr_stmt id, const struct transcribe *t,
                               const char *op, bool need_row)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->tr_st[id], SQLITE_OK};
    bind_transcribe(&b, t);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, op);
    return sql_run_write(ss, b.st, op, need_row);
}

static int sq_transcribe_insert(struct store *s, const struct transcribe *t)
{
    return sq_transcribe_write(s, TS_INSERT, t, "transcribe_insert", false);
}

static int sq_transcribe_update(struct store *s, const struct transcribe *t)
{
    return sq_transcribe_write(s, TS_UPDATE, t, "transcribe_update", true);
}

static int sq_transcribe_get(struct store *s, const char *customer_id, const char *id,
                             struct transcribe *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->tr_st[TS_GET], SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "transcribe_get");
    return sql_run_get(ss, b.st, "transcribe_get", read_transcribe, fini_transcribe, out,
                       sizeof(*out));
}

static int sq_transcribe_list(struct store *s, const char *customer_id, const char *reference_id,
                              const struct store_page *p, struct transcribe **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->tr_st[TS_LIST], SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    sql_bind_maybe_text(&b, 4, reference_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "transcribe_list");
    return sql_run_list(ss, b.st, "transcribe_list", read_transcribe, fini_transcribe,
                        sizeof(**out), (void **)out, n);
}

static int sq_transcribe_list_progressing(struct store *s, struct transcribe **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    return sql_run_list(ss, ss->tr_st[TS_PROGRESSING], "transcribe_list_progressing",
                        read_transcribe, fini_transcribe, sizeof(**out), (void **)out, n);
}

/* ---- transcripts ---- */

static int sq_transcript_insert(struct store *s, const struct transcript *t)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->tr_st[TS_SCRIPT_INSERT], SQLITE_OK};
    sql_bind_text(&b, 1, t->id);
    sql_bind_text(&b, 2, t->customer_id);
    sql_bind_text(&b, 3, t->transcribe_id);
    sql_bind_text(&b, 4, t->direction);
    sql_bind_text(&b, 5, t->message);
    sql_bind_text_or(&b, 6, t->conferencecall_id, ID_NIL);
    sql_bind_text_or(&b, 7, t->call_id, ID_NIL);
    sql_bind_double(&b, 8, t->confidence);
    sql_bind_i64(&b, 9, t->offset_ms);
    sql_bind_i64(&b, 10, t->tm_transcript);
    sql_bind_i64(&b, 11, t->tm_end);
    sql_bind_i64(&b, 12, t->tm_create);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "transcript_insert");
    return sql_run_write(ss, b.st, "transcript_insert", false);
}

static int read_transcript(sqlite3_stmt *st, void *item)
{
    struct transcript *t = item;
    int bad = sql_col_buf(st, 0, t->id, sizeof(t->id));
    bad |= sql_col_buf(st, 1, t->customer_id, sizeof(t->customer_id));
    bad |= sql_col_buf(st, 2, t->transcribe_id, sizeof(t->transcribe_id));
    bad |= sql_col_buf(st, 3, t->direction, sizeof(t->direction));
    t->message = sql_col_dup(st, 4);
    bad |= sql_col_buf(st, 5, t->conferencecall_id, sizeof(t->conferencecall_id));
    bad |= sql_col_buf(st, 6, t->call_id, sizeof(t->call_id));
    t->confidence = sqlite3_column_double(st, 7);
    t->offset_ms = sqlite3_column_int64(st, 8);
    t->tm_transcript = sqlite3_column_int64(st, 9);
    t->tm_end = sqlite3_column_int64(st, 10);
    t->tm_create = sqlite3_column_int64(st, 11);
    return bad ? -1 : 0;
}

static void fini_transcript(void *item)
{
    transcript_fini(item);
}

static int sq_transcript_list(struct store *s, const char *customer_id, const char *transcribe_id,
                              const struct store_page *p, struct transcript **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {ss->tr_st[TS_SCRIPT_LIST], SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_text(&b, 2, transcribe_id);
    sql_bind_page_after(&b, 3, 4, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "transcript_list");
    return sql_run_list(ss, b.st, "transcript_list", read_transcript, fini_transcript,
                        sizeof(**out), (void **)out, n);
}

void sqlite_transcribes_ops(struct store_ops *ops)
{
    ops->transcribe_insert = sq_transcribe_insert;
    ops->transcribe_get = sq_transcribe_get;
    ops->transcribe_update = sq_transcribe_update;
    ops->transcribe_list = sq_transcribe_list;
    ops->transcribe_list_progressing = sq_transcribe_list_progressing;
    ops->transcript_insert = sq_transcript_insert;
    ops->transcript_list = sq_transcript_list;
}

void store_free_transcribes(struct transcribe *a, size_t n)
{
    (void)n;
    free(a);
}

void store_free_transcripts(struct transcript *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        transcript_fini(&a[i]);
    free(a);
}
