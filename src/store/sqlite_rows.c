/* Binding and row helpers of the SQLite store (see sqlite_internal.h). */
#include "store/sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

void sql_reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int sql_fail(struct sqlite_store *ss, const char *op, int rc)
{
    log_error("msg=\"store query failed\" op=%s rc=%d error=\"%s\"", op, rc,
              sqlite3_errmsg(ss->db));
    return STORE_ERROR;
}

/* Binding collects the first error so callers check once. Strings are bound SQLITE_STATIC: they
 * belong to the caller's record, which outlives the call, and sql_reset() drops them. */

void sql_bind_text_or(struct sql_binder *b, int i, const char *s, const char *dflt)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_text(b->st, i, s && s[0] ? s : dflt, -1, SQLITE_STATIC);
}

void sql_bind_text(struct sql_binder *b, int i, const char *s)
{
    sql_bind_text_or(b, i, s, "");
}

void sql_bind_i64(struct sql_binder *b, int i, int64_t v)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_int64(b->st, i, v);
}

void sql_bind_double(struct sql_binder *b, int i, double v)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_double(b->st, i, v);
}

void sql_bind_null_if_0(struct sql_binder *b, int i, int64_t v)
{
    if (b->rc == SQLITE_OK)
        b->rc = v ? sqlite3_bind_int64(b->st, i, v) : sqlite3_bind_null(b->st, i);
}

void sql_bind_maybe_text(struct sql_binder *b, int i, const char *s)
{
    if (b->rc == SQLITE_OK)
        b->rc = s ? sqlite3_bind_text(b->st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(b->st, i);
}

int sql_bind_fail(struct sqlite_store *ss, struct sql_binder *b, const char *op)
{
    int ret = sql_fail(ss, op, b->rc);
    sql_reset(b->st);
    return ret;
}

/* Column readers. Text columns come back as heap copies (never NULL); fixed buffers report a
 * value that does not fit as an unreadable row. */
char *sql_col_dup(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return xstrdup(t ? t : "");
}

int sql_col_buf(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return str_copy(dst, cap, t ? t : "");
}

const char *sql_col_str(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

/* Runs a write. need_row: an UPDATE that matched nothing is STORE_NOT_FOUND. */
int sql_run_write(struct sqlite_store *ss, sqlite3_stmt *st, const char *op, bool need_row)
{
    int ret = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        if (need_row && sqlite3_changes(ss->db) == 0)
            ret = STORE_NOT_FOUND;
    } else if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        ret = STORE_CONFLICT;
    } else {
        ret = sql_fail(ss, op, rc);
    }
    sql_reset(st);
    return ret;
}

/* Reads at most one row into out (zeroed first; zero again on failure). */
int sql_run_get(struct sqlite_store *ss, sqlite3_stmt *st, const char *op, sql_row_fn rd,
                sql_fini_fn fini, void *out, size_t size)
{
    int ret = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (rd(st, out) < 0) {
            log_error("msg=\"stored record is unreadable\" op=%s", op);
            fini(out);
            memset(out, 0, size);
            ret = STORE_ERROR;
        }
    } else if (rc == SQLITE_DONE) {
        ret = STORE_NOT_FOUND;
    } else {
        ret = sql_fail(ss, op, rc);
    }
    sql_reset(st);
    return ret;
}

/* Reads every row into a new array of size-byte items (*out NULL and *n 0 when none). */
int sql_run_list(struct sqlite_store *ss, sqlite3_stmt *st, const char *op, sql_row_fn rd,
                 sql_fini_fn fini, size_t size, void **out, size_t *n)
{
    char *arr = NULL;
    size_t len = 0, cap = 0;
    int ret = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            arr = xrealloc(arr, cap * size);
        }
        void *item = arr + len * size;
        memset(item, 0, size);
        if (rd(st, item) < 0) {
            log_error("msg=\"stored record is unreadable\" op=%s", op);
            fini(item);
            ret = STORE_ERROR;
            break;
        }
        len++;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sql_fail(ss, op, rc);
    sql_reset(st);
    if (ret < 0) {
        for (size_t i = 0; i < len; i++)
            fini(arr + i * size);
        free(arr);
        arr = NULL;
        len = 0;
    }
    *out = arr;
    *n = len;
    return ret;
}

/* A missing page means everything; before_us <= 0 means "from the newest"; limit <= 0 none. */
void sql_bind_page_after(struct sql_binder *b, int i_after, int i_limit, const struct store_page *p)
{
    int64_t after = p && p->before_us > 0 && p->before_us != INT64_MAX ? p->before_us : INT64_MIN;
    sql_bind_i64(b, i_after, after);
    sql_bind_i64(b, i_limit, p && p->limit > 0 ? p->limit : -1);
}

void sql_bind_page(struct sql_binder *b, int i_before, int i_limit, const struct store_page *p)
{
    int64_t before = p && p->before_us > 0 ? p->before_us : INT64_MAX;
    sql_bind_i64(b, i_before, before);
    sql_bind_i64(b, i_limit, p && p->limit > 0 ? p->limit : -1);
}
