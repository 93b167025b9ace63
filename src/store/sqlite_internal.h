/* What the SQLite store's files share (store_sqlite.c: the connection, migrations and most
 * objects; sqlite_rows.c: binding and row helpers; sqlite_recordings.c: recordings). Control
 * thread only, like the store. */
#ifndef CONFERENCED_SQLITE_INTERNAL_H
#define CONFERENCED_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/timeutil.h"
#include "store/store.h"

/* TM_NEVER as SQL text: the partial indexes and the queries that must use them need the value as
 * a literal (SQLite cannot match a bound parameter against an index's WHERE clause). */
#define SQL_NEVER_NUM 253370764800000000
_Static_assert(SQL_NEVER_NUM == TM_NEVER, "SQL_NEVER_NUM must equal TM_NEVER");
#define STR_(x) #x
#define STR(x) STR_(x)
#define NEVER STR(SQL_NEVER_NUM)

struct sqlite_store {
    struct store base; /* first, so a struct store * converts back */
    sqlite3 *db;
    sqlite3_stmt **st;     /* store_sqlite.c's statements, by enum stmt_id */
    sqlite3_stmt **rec_st; /* sqlite_recordings.c's */
    sqlite3_stmt **tr_st;  /* sqlite_transcribes.c's */
};

/* Binding collects the first error so callers check once. Strings are bound SQLITE_STATIC: they
 * belong to the caller's record, which outlives the call, and sql_reset() drops them. */
struct sql_binder {
    sqlite3_stmt *st;
    int rc;
};

typedef int (*sql_row_fn)(sqlite3_stmt *st, void *item);
typedef void (*sql_fini_fn)(void *item);

/* Makes a statement ready for its next use. */
void sql_reset(sqlite3_stmt *st);
/* Logs a failed query; returns STORE_ERROR. */
int sql_fail(struct sqlite_store *ss, const char *op, int rc);
void sql_bind_text_or(struct sql_binder *b, int i, const char *s, const char *dflt);
void sql_bind_text(struct sql_binder *b, int i, const char *s); /* NULL or "" -> "" */
void sql_bind_i64(struct sql_binder *b, int i, int64_t v);
void sql_bind_double(struct sql_binder *b, int i, double v);
void sql_bind_null_if_0(struct sql_binder *b, int i, int64_t v);
void sql_bind_maybe_text(struct sql_binder *b, int i, const char *s); /* NULL -> NULL */
/* A binding failed: logged, the statement reset; returns STORE_ERROR. */
int sql_bind_fail(struct sqlite_store *ss, struct sql_binder *b, const char *op);
/* Column readers. Text columns come back as heap copies (never NULL); fixed buffers report a
 * value that does not fit (-1: the row is unreadable). */
char *sql_col_dup(sqlite3_stmt *st, int i);
int sql_col_buf(sqlite3_stmt *st, int i, char *dst, size_t cap);
const char *sql_col_str(sqlite3_stmt *st, int i);
/* Runs a write. need_row: an UPDATE that matched nothing is STORE_NOT_FOUND. */
int sql_run_write(struct sqlite_store *ss, sqlite3_stmt *st, const char *op, bool need_row);
/* Reads at most one row into out (zeroed first; zero again on failure). */
int sql_run_get(struct sqlite_store *ss, sqlite3_stmt *st, const char *op, sql_row_fn rd,
                sql_fini_fn fini, void *out, size_t size);
/* Reads every row into a new array of size-byte items (*out NULL and *n 0 when none). */
int sql_run_list(struct sqlite_store *ss, sqlite3_stmt *st, const char *op, sql_row_fn rd,
                 sql_fini_fn fini, size_t size, void **out, size_t *n);
/* A missing page means everything; before_us <= 0 means "from the newest"; limit <= 0 none. */
void sql_bind_page(struct sql_binder *b, int i_before, int i_limit, const struct store_page *p);
/* Pages read oldest first: rows created after the page token (the whole list without one). */
void sql_bind_page_after(struct sql_binder *b, int i_after, int i_limit,
                         const struct store_page *p);

/* sqlite_recordings.c: its statements, prepared after the migrations (0 or STORE_ERROR) and
 * finalized at close; the store_ops it fills in. */
int sqlite_recordings_prepare(struct sqlite_store *ss);
void sqlite_recordings_finalize(struct sqlite_store *ss);
void sqlite_recordings_ops(struct store_ops *ops);
/* sqlite_transcribes.c: the same for transcribes and transcripts. */
int sqlite_transcribes_prepare(struct sqlite_store *ss);
void sqlite_transcribes_finalize(struct sqlite_store *ss);
void sqlite_transcribes_ops(struct store_ops *ops);

#endif
