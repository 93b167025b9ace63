/* The SQLite backend of the typed store: one connection used by the control thread, every
 * statement prepared once at open and reused, the schema brought up to date by numbered
 * migrations. */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "store/sqlite_internal.h"
#include "core/mem.h"
#include "core/timeutil.h"

/* Schema steps, applied in order, each in its own transaction; PRAGMA user_version holds how many
 * have run. Append new steps; never edit one that has shipped. */
static const char *const migrations[] = {
    /* 1: the initial schema. Times are INTEGER µs, enums their text names, JSON as TEXT. */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value TEXT NOT NULL);"

    "CREATE TABLE customers ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  webhook_method TEXT NOT NULL,"
    "  webhook_uri TEXT NOT NULL,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX customers_tm_create ON customers (tm_create);"

    "CREATE TABLE agents ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  username TEXT NOT NULL,"
    "  password_hash TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  ring_method TEXT NOT NULL,"
    "  permission INTEGER NOT NULL,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX agents_customer ON agents (customer_id, tm_create);"
    "CREATE UNIQUE INDEX agents_username ON agents (username) WHERE tm_delete = " NEVER ";"

    "CREATE TABLE accesskeys ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  token_hash TEXT NOT NULL,"
    "  token_prefix TEXT NOT NULL,"
    "  tm_expire INTEGER NOT NULL,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX accesskeys_customer ON accesskeys (customer_id, tm_create);"
    "CREATE INDEX accesskeys_token_hash ON accesskeys (token_hash);"

    "CREATE TABLE conferences ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  data TEXT NOT NULL DEFAULT '{}',"
    "  timeout INTEGER NOT NULL,"
    "  pre_flow_id TEXT NOT NULL,"
    "  post_flow_id TEXT NOT NULL,"
    "  recording_id TEXT NOT NULL,"
    "  recording_ids TEXT NOT NULL DEFAULT '[]',"
    "  transcribe_id TEXT NOT NULL,"
    "  transcribe_ids TEXT NOT NULL DEFAULT '[]',"
    "  direct_hash TEXT NOT NULL,"
    "  tm_end INTEGER," /* NULL = not yet */
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL,"
    "  tm_timeout INTEGER NOT NULL);"
    "CREATE INDEX conferences_customer ON conferences (customer_id, tm_create);"
    "CREATE UNIQUE INDEX conferences_direct_hash ON conferences (direct_hash)"
    "  WHERE tm_delete = " NEVER " AND direct_hash != '';"
    "CREATE INDEX conferences_unfinished ON conferences (tm_create)"
    "  WHERE status != 'terminated';"

    /* seq (the rowid) numbers participants in join order; rows are never deleted. */
    "CREATE TABLE conferencecalls ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  customer_id TEXT NOT NULL,"
    "  activeflow_id TEXT NOT NULL,"
    "  conference_id TEXT NOT NULL REFERENCES conferences (id),"
    "  reference_type TEXT NOT NULL,"
    "  reference_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX conferencecalls_customer ON conferencecalls (customer_id, tm_create);"
    /* Entries of an index end with the rowid, so this one is in join order per conference. */
    "CREATE INDEX conferencecalls_conference ON conferencecalls (conference_id);"
    "CREATE INDEX conferencecalls_conference_tm ON conferencecalls (conference_id, tm_create);"
    "CREATE INDEX conferencecalls_active ON conferencecalls (conference_id)"
    "  WHERE status IN ('joining', 'joined', 'leaving');",

    /* 2: calls (SIP legs). source, destination, action and metadata are JSON text. */
    "CREATE TABLE calls ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  owner_type TEXT NOT NULL,"
    "  owner_id TEXT NOT NULL,"
    "  flow_id TEXT NOT NULL,"
    "  activeflow_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  master_call_id TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  destination TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  direction TEXT NOT NULL,"
    "  hangup_by TEXT NOT NULL,"
    "  hangup_reason TEXT NOT NULL,"
    "  metadata TEXT NOT NULL,"
    "  tm_progressing INTEGER,"
    "  tm_ringing INTEGER,"
    "  tm_hangup INTEGER,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX calls_customer ON calls (customer_id, tm_create);"
    "CREATE INDEX calls_live ON calls (tm_create) WHERE status != 'hangup';",
    /* 3: flows, numbers (SIP user part -> call flow) and activeflows. actions, current_action and
     * executed_actions are JSON text. */
    "CREATE TABLE flows ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  actions TEXT NOT NULL,"
    "  on_complete_flow_id TEXT NOT NULL,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX flows_customer ON flows (customer_id, tm_create);"
    "CREATE TABLE numbers ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  number TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  call_flow_id TEXT NOT NULL,"
    "  message_flow_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  tm_purchase INTEGER,"
    "  tm_renew INTEGER,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX numbers_customer ON numbers (customer_id, tm_create);"
    "CREATE UNIQUE INDEX numbers_number ON numbers (number) WHERE tm_delete = " NEVER ";"
    "CREATE TABLE activeflows ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  flow_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  reference_type TEXT NOT NULL,"
    "  reference_id TEXT NOT NULL,"
    "  on_complete_flow_id TEXT NOT NULL,"
    "  current_action TEXT NOT NULL,"
    "  forward_action_id TEXT NOT NULL,"
    "  executed_actions TEXT NOT NULL,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX activeflows_customer ON activeflows (customer_id, tm_create);"
    "CREATE INDEX activeflows_running ON activeflows (tm_create) WHERE status = 'running';",
    /* 4: an agent's JWTs carry its token generation; a password change bumps it, which ends
     * every session issued before. */
    "ALTER TABLE agents ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;",
    /* 5: an answered call keeps its SIP dialog's state (JSON text, "" when none) so that a
     * restart after a crash can end it with a BYE. */
    "ALTER TABLE calls ADD COLUMN dialog TEXT NOT NULL DEFAULT '';",
    /* 6: recordings (a conference's mix or a call), and the calls' own recording ids. */
    "CREATE TABLE recordings ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  owner_type TEXT NOT NULL,"
    "  owner_id TEXT NOT NULL,"
    "  activeflow_id TEXT NOT NULL,"
    "  reference_type TEXT NOT NULL,"
    "  reference_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  format TEXT NOT NULL,"
    "  on_end_flow_id TEXT NOT NULL,"
    "  max_ms INTEGER NOT NULL,"
    "  duration_ms INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  frames_dropped INTEGER NOT NULL,"
    "  tm_start INTEGER,"
    "  tm_end INTEGER,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX recordings_customer ON recordings (customer_id, tm_create);"
    "CREATE INDEX recordings_unfinished ON recordings (tm_create) WHERE status != 'ended';"
    "ALTER TABLE calls ADD COLUMN recording_id TEXT NOT NULL DEFAULT '" ID_NIL "';"
    "ALTER TABLE calls ADD COLUMN recording_ids TEXT NOT NULL DEFAULT '[]';",
    /* 7: live transcriptions and their transcripts (one per utterance of one speaker). */
    "CREATE TABLE transcribes ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  activeflow_id TEXT NOT NULL,"
    "  on_end_flow_id TEXT NOT NULL,"
    "  reference_type TEXT NOT NULL,"
    "  reference_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  language TEXT NOT NULL,"
    "  direction TEXT NOT NULL,"
    "  provider TEXT NOT NULL,"
    "  skipped INTEGER NOT NULL,"
    "  failed INTEGER NOT NULL,"
    "  error TEXT NOT NULL,"
    "  tm_create INTEGER NOT NULL,"
    "  tm_update INTEGER NOT NULL,"
    "  tm_delete INTEGER NOT NULL);"
    "CREATE INDEX transcribes_customer ON transcribes (customer_id, tm_create);"
    "CREATE INDEX transcribes_progressing ON transcribes (tm_create) WHERE status = 'progressing';"
    "CREATE TABLE transcripts ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  customer_id TEXT NOT NULL,"
    "  transcribe_id TEXT NOT NULL,"
    "  direction TEXT NOT NULL,"
    "  message TEXT NOT NULL,"
    "  conferencecall_id TEXT NOT NULL,"
    "  call_id TEXT NOT NULL,"
    "  confidence REAL NOT NULL,"
    "  offset_ms INTEGER NOT NULL,"
    "  tm_transcript INTEGER NOT NULL,"
    "  tm_end INTEGER NOT NULL,"
    "  tm_create INTEGER NOT NULL);"
    "CREATE INDEX transcripts_transcribe ON transcripts (transcribe_id, tm_create);",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define CUSTOMER_COLS                                                                              \
    "id, name, detail, webhook_method, webhook_uri, tm_create, tm_update, tm_delete"
#define AGENT_COLS                                                                                 \
    "id, customer_id, username, password_hash, name, detail, ring_method, permission, "            \
    "tm_create, tm_update, tm_delete, token_generation"
#define ACCESSKEY_COLS                                                                             \
    "id, customer_id, name, detail, token_hash, token_prefix, tm_expire, tm_create, tm_update, "   \
    "tm_delete"
#define CALL_COLS                                                                                  \
    "id, customer_id, owner_type, owner_id, flow_id, activeflow_id, type, master_call_id, "        \
    "source, "                                                                                     \
    "destination, status, action, direction, hangup_by, hangup_reason, metadata, tm_progressing, " \
    "tm_ringing, tm_hangup, tm_create, tm_update, tm_delete, dialog, recording_id, recording_ids"
#define FLOW_COLS                                                                                  \
    "id, customer_id, type, name, detail, actions, on_complete_flow_id, tm_create, tm_update, "    \
    "tm_delete"
#define NUMBER_COLS                                                                                \
    "id, customer_id, number, type, call_flow_id, message_flow_id, name, detail, status, "         \
    "tm_purchase, tm_renew, tm_create, tm_update, tm_delete"
#define ACTIVEFLOW_COLS                                                                            \
    "id, customer_id, flow_id, status, reference_type, reference_id, on_complete_flow_id, "        \
    "current_action, forward_action_id, executed_actions, tm_create, tm_update, tm_delete"
#define CONFERENCE_COLS                                                                            \
    "id, customer_id, type, status, name, detail, data, timeout, pre_flow_id, post_flow_id, "      \
    "recording_id, recording_ids, transcribe_id, transcribe_ids, direct_hash, tm_end, tm_create, " \
    "tm_update, tm_delete, tm_timeout"
#define CC_COLS                                                                                    \
    "id, customer_id, activeflow_id, conference_id, reference_type, reference_id, status, "        \
    "tm_create, tm_update, tm_delete"

/* A conference row plus its joining/joined participants as "seq id,seq id,..." in one column, so a
 * list is one query. group_concat's order is not guaranteed, hence the seq in each entry. The
 * status test repeats the partial index's own condition so that SQLite uses it: otherwise every
 * read of a conference walks every participant it ever had. */
#define CONFERENCE_SELECT                                                                          \
    "SELECT c.id, c.customer_id, c.type, c.status, c.name, c.detail, c.data, c.timeout, "          \
    "c.pre_flow_id, c.post_flow_id, c.recording_id, c.recording_ids, c.transcribe_id, "            \
    "c.transcribe_ids, c.direct_hash, c.tm_end, c.tm_create, c.tm_update, c.tm_delete, "           \
    "c.tm_timeout, (SELECT group_concat(e, ',') FROM (SELECT cc.seq || ' ' || cc.id AS e "         \
    "FROM conferencecalls cc WHERE cc.conference_id = c.id "                                       \
    "AND cc.status IN ('joining', 'joined', 'leaving') AND cc.status != 'leaving' "                \
    "ORDER BY cc.seq)) FROM conferences c "

#define ACTIVE_STATUSES "('joining', 'joined', 'leaving')"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_META_GET,
    ST_META_SET,
    ST_NEWEST,
    ST_CUSTOMER_INSERT,
    ST_CUSTOMER_GET,
    ST_CUSTOMER_UPDATE,
    ST_CUSTOMER_LIST,
    ST_CUSTOMER_COUNT,
    ST_AGENT_INSERT,
    ST_AGENT_GET,
    ST_AGENT_GET_BY_USERNAME,
    ST_AGENT_UPDATE,
    ST_AGENT_LIST,
    ST_ACCESSKEY_INSERT,
    ST_ACCESSKEY_GET,
    ST_ACCESSKEY_GET_BY_HASH,
    ST_ACCESSKEY_UPDATE,
    ST_ACCESSKEY_LIST,
    ST_CONFERENCE_INSERT,
    ST_CONFERENCE_GET,
    ST_CONFERENCE_GET_BY_HASH,
    ST_CONFERENCE_UPDATE,
    ST_CONFERENCE_LIST,
    ST_CONFERENCE_UNFINISHED,
    ST_CC_INSERT,
    ST_CC_GET,
    ST_CC_UPDATE,
    ST_CC_LIST_ALL,
    ST_CC_LIST_CONF,
    ST_CC_ACTIVE_ALL,
    ST_CC_ACTIVE_CONF,
    ST_CALL_INSERT,
    ST_CALL_GET,
    ST_CALL_UPDATE,
    ST_CALL_LIST,
    ST_CALL_LIVE,
    ST_FLOW_INSERT,
    ST_FLOW_GET,
    ST_FLOW_UPDATE,
    ST_FLOW_LIST,
    ST_NUMBER_INSERT,
    ST_NUMBER_GET,
    ST_NUMBER_GET_BY_NUMBER,
    ST_NUMBER_UPDATE,
    ST_NUMBER_LIST,
    ST_AF_INSERT,
    ST_AF_GET,
    ST_AF_UPDATE,
    ST_AF_LIST,
    ST_AF_RUNNING,
    ST__COUNT
};

/* Parameter numbers follow the column lists above, so one bind function serves an INSERT and the
 * matching UPDATE (which leaves the unused numbers unreferenced). */
static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [ST_NEWEST] = "SELECT coalesce(max(m), 0) FROM ("
                  "SELECT max(tm_create) AS m FROM customers "
                  "UNION ALL SELECT max(tm_create) FROM agents "
                  "UNION ALL SELECT max(tm_create) FROM accesskeys "
                  "UNION ALL SELECT max(tm_create) FROM conferences "
                  "UNION ALL SELECT max(tm_create) FROM conferencecalls "
                  "UNION ALL SELECT max(tm_create) FROM calls "
                  "UNION ALL SELECT max(tm_create) FROM flows "
                  "UNION ALL SELECT max(tm_create) FROM numbers "
                  "UNION ALL SELECT max(tm_create) FROM activeflows)",

    [ST_CUSTOMER_INSERT] = "INSERT INTO customers (" CUSTOMER_COLS ") "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_CUSTOMER_GET] = "SELECT " CUSTOMER_COLS " FROM customers WHERE id = ?1",
    [ST_CUSTOMER_UPDATE] = "UPDATE customers SET name = ?2, detail = ?3, webhook_method = ?4, "
                           "webhook_uri = ?5, tm_update = ?7, tm_delete = ?8 WHERE id = ?1",
    [ST_CUSTOMER_LIST] = "SELECT " CUSTOMER_COLS " FROM customers WHERE tm_create < ?1 "
                         "AND tm_delete = " NEVER " ORDER BY tm_create DESC LIMIT ?2",
    [ST_CUSTOMER_COUNT] = "SELECT count(*) FROM customers",

    [ST_AGENT_INSERT] = "INSERT INTO agents (" AGENT_COLS ") "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_AGENT_GET] = "SELECT " AGENT_COLS " FROM agents "
                     "WHERE id = ?1 AND (?2 IS NULL OR customer_id = ?2)",
    [ST_AGENT_GET_BY_USERNAME] = "SELECT " AGENT_COLS " FROM agents "
                                 "WHERE username = ?1 AND tm_delete = " NEVER,
    [ST_AGENT_UPDATE] = "UPDATE agents SET username = ?3, password_hash = ?4, name = ?5, "
                        "detail = ?6, ring_method = ?7, permission = ?8, tm_update = ?10, "
                        "tm_delete = ?11, token_generation = ?12 WHERE id = ?1",
    [ST_AGENT_LIST] =
        "SELECT " AGENT_COLS " FROM agents WHERE customer_id = ?1 "
        "AND tm_create < ?2 AND tm_delete = " NEVER " ORDER BY tm_create DESC LIMIT ?3",

    [ST_ACCESSKEY_INSERT] = "INSERT INTO accesskeys (" ACCESSKEY_COLS ") "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_ACCESSKEY_GET] = "SELECT " ACCESSKEY_COLS " FROM accesskeys "
                         "WHERE id = ?1 AND (?2 IS NULL OR customer_id = ?2)",
    [ST_ACCESSKEY_GET_BY_HASH] = "SELECT " ACCESSKEY_COLS " FROM accesskeys "
                                 "WHERE token_hash = ?1 AND tm_delete = " NEVER,
    [ST_ACCESSKEY_UPDATE] = "UPDATE accesskeys SET name = ?3, detail = ?4, token_hash = ?5, "
                            "token_prefix = ?6, tm_expire = ?7, tm_update = ?9, tm_delete = ?10 "
                            "WHERE id = ?1",
    [ST_ACCESSKEY_LIST] =
        "SELECT " ACCESSKEY_COLS " FROM accesskeys WHERE customer_id = ?1 "
        "AND tm_create < ?2 AND tm_delete = " NEVER " ORDER BY tm_create DESC LIMIT ?3",

    [ST_CONFERENCE_INSERT] = "INSERT INTO conferences (" CONFERENCE_COLS ") VALUES (?1, ?2, ?3, "
                             "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
                             "?19, ?20)",
    [ST_CONFERENCE_GET] =
        CONFERENCE_SELECT "WHERE c.id = ?1 AND (?2 IS NULL OR c.customer_id = ?2)",
    [ST_CONFERENCE_GET_BY_HASH] = CONFERENCE_SELECT
    "WHERE c.direct_hash = ?1 AND c.tm_delete = " NEVER " AND c.direct_hash != ''",
    [ST_CONFERENCE_UPDATE] = "UPDATE conferences SET status = ?4, name = ?5, detail = ?6, "
                             "data = ?7, timeout = ?8, pre_flow_id = ?9, post_flow_id = ?10, "
                             "recording_id = ?11, recording_ids = ?12, transcribe_id = ?13, "
                             "transcribe_ids = ?14, direct_hash = ?15, tm_end = ?16, "
                             "tm_update = ?18, tm_delete = ?19, tm_timeout = ?20 WHERE id = ?1",
    [ST_CONFERENCE_LIST] =
        CONFERENCE_SELECT "WHERE c.customer_id = ?1 AND c.tm_create < ?2 "
                          "AND c.tm_delete = " NEVER " ORDER BY c.tm_create DESC LIMIT ?3",
    [ST_CONFERENCE_UNFINISHED] = CONFERENCE_SELECT "WHERE c.status != 'terminated' "
                                                   "ORDER BY c.tm_create",

    [ST_CC_INSERT] = "INSERT INTO conferencecalls (" CC_COLS ") "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_CC_GET] = "SELECT " CC_COLS " FROM conferencecalls "
                  "WHERE id = ?1 AND (?2 IS NULL OR customer_id = ?2)",
    [ST_CC_UPDATE] = "UPDATE conferencecalls SET status = ?7, tm_update = ?9, tm_delete = ?10 "
                     "WHERE id = ?1",
    [ST_CC_LIST_ALL] = "SELECT " CC_COLS " FROM conferencecalls WHERE customer_id = ?1 "
                       "AND tm_create < ?2 ORDER BY tm_create DESC LIMIT ?3",
    [ST_CC_LIST_CONF] = "SELECT " CC_COLS " FROM conferencecalls WHERE conference_id = ?4 "
                        "AND customer_id = ?1 AND tm_create < ?2 "
                        "ORDER BY tm_create DESC LIMIT ?3",
    /* Without INDEXED BY the planner prefers a rowid scan of every participant ever (to skip a
     * sort); the partial index holds only the active few. */
    [ST_CC_ACTIVE_ALL] =
        "SELECT " CC_COLS " FROM conferencecalls INDEXED BY conferencecalls_active "
        "WHERE status IN " ACTIVE_STATUSES " ORDER BY seq",
    [ST_CC_ACTIVE_CONF] = "SELECT " CC_COLS " FROM conferencecalls WHERE conference_id = ?1 "
                          "AND status IN " ACTIVE_STATUSES " ORDER BY seq",

    [ST_CALL_INSERT] = "INSERT INTO calls (" CALL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                       "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, "
                       "?24, ?25)",
    [ST_CALL_GET] = "SELECT " CALL_COLS " FROM calls WHERE id = ?1 AND (?2 IS NULL OR "
                    "customer_id = ?2)",
    [ST_CALL_UPDATE] = "UPDATE calls SET owner_type = ?3, owner_id = ?4, flow_id = ?5, "
                       "activeflow_id = ?6, type = ?7, master_call_id = ?8, source = ?9, "
                       "destination = ?10, status = ?11, action = ?12, hangup_by = ?14, "
                       "hangup_reason = ?15, metadata = ?16, tm_progressing = ?17, "
                       "tm_ringing = ?18, tm_hangup = ?19, tm_update = ?21, tm_delete = ?22, "
                       "dialog = ?23 WHERE id = ?1",
    [ST_CALL_LIST] = "SELECT " CALL_COLS " FROM calls WHERE customer_id = ?1 AND tm_create < ?2 "
                     "AND tm_delete = " NEVER " ORDER BY tm_create DESC LIMIT ?3",
    [ST_CALL_LIVE] = "SELECT " CALL_COLS " FROM calls WHERE status != 'hangup' ORDER BY tm_create",

    [ST_FLOW_INSERT] = "INSERT INTO flows (" FLOW_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                       "?9, ?10)",
    [ST_FLOW_GET] = "SELECT " FLOW_COLS " FROM flows WHERE id = ?1 AND (?2 IS NULL OR "
                    "customer_id = ?2)",
    [ST_FLOW_UPDATE] = "UPDATE flows SET type = ?3, name = ?4, detail = ?5, actions = ?6, "
                       "on_complete_flow_id = ?7, tm_update = ?9, tm_delete = ?10 WHERE id = ?1",
    [ST_FLOW_LIST] = "SELECT " FLOW_COLS " FROM flows WHERE customer_id = ?1 AND tm_create < ?2 "
                     "AND tm_delete = " NEVER " ORDER BY tm_create DESC LIMIT ?3",

    [ST_NUMBER_INSERT] = "INSERT INTO numbers (" NUMBER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                         "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [ST_NUMBER_GET] = "SELECT " NUMBER_COLS " FROM numbers WHERE id = ?1 AND (?2 IS NULL OR "
                      "customer_id = ?2)",
    [ST_NUMBER_GET_BY_NUMBER] = "SELECT " NUMBER_COLS " FROM numbers INDEXED BY numbers_number "
                                "WHERE number = ?1 AND tm_delete = " NEVER,
    [ST_NUMBER_UPDATE] = "UPDATE numbers SET call_flow_id = ?5, message_flow_id = ?6, name = ?7, "
                         "detail = ?8, status = ?9, tm_renew = ?11, tm_update = ?13, "
                         "tm_delete = ?14 WHERE id = ?1",
    [ST_NUMBER_LIST] = "SELECT " NUMBER_COLS " FROM numbers WHERE customer_id = ?1 AND "
                       "tm_create < ?2 AND tm_delete = " NEVER " ORDER BY tm_create DESC LIMIT ?3",

    [ST_AF_INSERT] = "INSERT INTO activeflows (" ACTIVEFLOW_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
                     "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_AF_GET] = "SELECT " ACTIVEFLOW_COLS " FROM activeflows WHERE id = ?1 AND (?2 IS NULL OR "
                  "customer_id = ?2)",
    [ST_AF_UPDATE] = "UPDATE activeflows SET status = ?4, current_action = ?8, "
                     "forward_action_id = ?9, executed_actions = ?10, tm_update = ?12, "
                     "tm_delete = ?13 WHERE id = ?1",
    [ST_AF_LIST] = "SELECT " ACTIVEFLOW_COLS " FROM activeflows WHERE customer_id = ?1 AND "
                   "tm_create < ?2 AND tm_delete = " NEVER " ORDER BY tm_create DESC LIMIT ?3",
    [ST_AF_RUNNING] = "SELECT " ACTIVEFLOW_COLS " FROM activeflows INDEXED BY activeflows_running "
                      "WHERE status = 'running' ORDER BY tm_create",
};

static struct sqlite_store *impl(struct store *s)
{
    return (struct sqlite_store *)s;
}

/* Takes a prepared statement for one call; sql_reset() makes it ready for the next. */
static sqlite3_stmt *stmt(struct sqlite_store *ss, enum stmt_id id)
{
    return ss->st[id];
}

/* --- transactions, meta ------------------------------------------------------------------- */

static int run_simple(struct store *s, enum stmt_id id, const char *op)
{
    struct sqlite_store *ss = impl(s);
    return sql_run_write(ss, stmt(ss, id), op, false);
}

static int sq_begin(struct store *s)
{
    return run_simple(s, ST_BEGIN, "begin");
}

static int sq_commit(struct store *s)
{
    return run_simple(s, ST_COMMIT, "commit");
}

static int sq_rollback(struct store *s)
{
    return run_simple(s, ST_ROLLBACK, "rollback");
}

static int sq_meta_get(struct store *s, const char *key, char **value)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_META_GET), SQLITE_OK};
    *value = NULL;
    sql_bind_text(&b, 1, key);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "meta_get");
    int ret = 0;
    int rc = sqlite3_step(b.st);
    if (rc == SQLITE_ROW)
        *value = sql_col_dup(b.st, 0);
    else if (rc == SQLITE_DONE)
        ret = STORE_NOT_FOUND;
    else
        ret = sql_fail(ss, "meta_get", rc);
    sql_reset(b.st);
    return ret;
}

static int sq_meta_set(struct store *s, const char *key, const char *value)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_META_SET), SQLITE_OK};
    sql_bind_text(&b, 1, key);
    sql_bind_text(&b, 2, value);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "meta_set");
    return sql_run_write(ss, b.st, "meta_set", false);
}

static int scalar_i64(struct sqlite_store *ss, enum stmt_id id, const char *op, int64_t *out)
{
    sqlite3_stmt *st = stmt(ss, id);
    int ret = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        ret = sql_fail(ss, op, rc);
    sql_reset(st);
    return ret;
}

static int sq_newest_time(struct store *s, int64_t *out)
{
    *out = 0;
    return scalar_i64(impl(s), ST_NEWEST, "newest_time", out);
}

/* --- customers ------------------------------------------------------------------------------ */

static void bind_customer(struct sql_binder *b, const struct customer *c)
{
    sql_bind_text(b, 1, c->id);
    sql_bind_text(b, 2, c->name);
    sql_bind_text(b, 3, c->detail);
    sql_bind_text(b, 4, c->webhook_method);
    sql_bind_text(b, 5, c->webhook_uri);
    sql_bind_i64(b, 6, c->tm_create);
    sql_bind_i64(b, 7, c->tm_update);
    sql_bind_i64(b, 8, c->tm_delete);
}

static int read_customer(sqlite3_stmt *st, void *item)
{
    struct customer *c = item;
    int bad = sql_col_buf(st, 0, c->id, sizeof(c->id));
    c->name = sql_col_dup(st, 1);
    c->detail = sql_col_dup(st, 2);
    bad |= sql_col_buf(st, 3, c->webhook_method, sizeof(c->webhook_method));
    c->webhook_uri = sql_col_dup(st, 4);
    c->tm_create = sqlite3_column_int64(st, 5);
    c->tm_update = sqlite3_column_int64(st, 6);
    c->tm_delete = sqlite3_column_int64(st, 7);
    return bad ? -1 : 0;
}

static void fini_customer(void *item)
{
    customer_fini(item);
}

static int sq_customer_insert(struct store *s, const struct customer *c)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CUSTOMER_INSERT), SQLITE_OK};
    bind_customer(&b, c);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "customer_insert");
    return sql_run_write(ss, b.st, "customer_insert", false);
}

static int sq_customer_get(struct store *s, const char *id, struct customer *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CUSTOMER_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "customer_get");
    return sql_run_get(ss, b.st, "customer_get", read_customer, fini_customer, out, sizeof(*out));
}

static int sq_customer_update(struct store *s, const struct customer *c)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CUSTOMER_UPDATE), SQLITE_OK};
    bind_customer(&b, c);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "customer_update");
    return sql_run_write(ss, b.st, "customer_update", true);
}

static int sq_customer_list(struct store *s, const struct store_page *p, struct customer **out,
                            size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CUSTOMER_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_page(&b, 1, 2, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "customer_list");
    return sql_run_list(ss, b.st, "customer_list", read_customer, fini_customer, sizeof(**out),
                        (void **)out, n);
}

static int sq_customer_count(struct store *s, int64_t *n)
{
    *n = 0;
    return scalar_i64(impl(s), ST_CUSTOMER_COUNT, "customer_count", n);
}

/* --- agents --------------------------------------------------------------------------------- */

static void bind_agent(struct sql_binder *b, const struct agent *a)
{
    sql_bind_text(b, 1, a->id);
    sql_bind_text(b, 2, a->customer_id);
    sql_bind_text(b, 3, a->username);
    sql_bind_text(b, 4, a->password_hash);
    sql_bind_text(b, 5, a->name);
    sql_bind_text(b, 6, a->detail);
    sql_bind_text(b, 7, a->ring_method);
    sql_bind_i64(b, 8, (int64_t)a->permission);
    sql_bind_i64(b, 9, a->tm_create);
    sql_bind_i64(b, 10, a->tm_update);
    sql_bind_i64(b, 11, a->tm_delete);
    sql_bind_i64(b, 12, a->token_generation);
}

static int read_agent(sqlite3_stmt *st, void *item)
{
    struct agent *a = item;
    int bad = sql_col_buf(st, 0, a->id, sizeof(a->id));
    bad |= sql_col_buf(st, 1, a->customer_id, sizeof(a->customer_id));
    a->username = sql_col_dup(st, 2);
    a->password_hash = sql_col_dup(st, 3);
    a->name = sql_col_dup(st, 4);
    a->detail = sql_col_dup(st, 5);
    bad |= sql_col_buf(st, 6, a->ring_method, sizeof(a->ring_method));
    a->permission = (uint64_t)sqlite3_column_int64(st, 7);
    a->tm_create = sqlite3_column_int64(st, 8);
    a->tm_update = sqlite3_column_int64(st, 9);
    a->tm_delete = sqlite3_column_int64(st, 10);
    a->token_generation = sqlite3_column_int64(st, 11);
    return bad ? -1 : 0;
}

static void fini_agent(void *item)
{
    agent_fini(item);
}

static int sq_agent_insert(struct store *s, const struct agent *a)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_AGENT_INSERT), SQLITE_OK};
    bind_agent(&b, a);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "agent_insert");
    return sql_run_write(ss, b.st, "agent_insert", false);
}

static int sq_agent_get(struct store *s, const char *customer_id, const char *id, struct agent *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_AGENT_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "agent_get");
    return sql_run_get(ss, b.st, "agent_get", read_agent, fini_agent, out, sizeof(*out));
}

static int sq_agent_get_by_username(struct store *s, const char *username, struct agent *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_AGENT_GET_BY_USERNAME), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, username);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "agent_get_by_username");
    return sql_run_get(ss, b.st, "agent_get_by_username", read_agent, fini_agent, out,
                       sizeof(*out));
}

static int sq_agent_update(struct store *s, const struct agent *a)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_AGENT_UPDATE), SQLITE_OK};
    bind_agent(&b, a);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "agent_update");
    return sql_run_write(ss, b.st, "agent_update", true);
}

static int sq_agent_list(struct store *s, const char *customer_id, const struct store_page *p,
                         struct agent **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_AGENT_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "agent_list");
    return sql_run_list(ss, b.st, "agent_list", read_agent, fini_agent, sizeof(**out), (void **)out,
                        n);
}

/* --- access keys ---------------------------------------------------------------------------- */

static void bind_accesskey(struct sql_binder *b, const struct accesskey *k)
{
    sql_bind_text(b, 1, k->id);
    sql_bind_text(b, 2, k->customer_id);
    sql_bind_text(b, 3, k->name);
    sql_bind_text(b, 4, k->detail);
    sql_bind_text(b, 5, k->token_hash);
    sql_bind_text(b, 6, k->token_prefix);
    sql_bind_i64(b, 7, k->tm_expire);
    sql_bind_i64(b, 8, k->tm_create);
    sql_bind_i64(b, 9, k->tm_update);
    sql_bind_i64(b, 10, k->tm_delete);
}

static int read_accesskey(sqlite3_stmt *st, void *item)
{
    struct accesskey *k = item;
    int bad = sql_col_buf(st, 0, k->id, sizeof(k->id));
    bad |= sql_col_buf(st, 1, k->customer_id, sizeof(k->customer_id));
    k->name = sql_col_dup(st, 2);
    k->detail = sql_col_dup(st, 3);
    bad |= sql_col_buf(st, 4, k->token_hash, sizeof(k->token_hash));
    bad |= sql_col_buf(st, 5, k->token_prefix, sizeof(k->token_prefix));
    k->tm_expire = sqlite3_column_int64(st, 6);
    k->tm_create = sqlite3_column_int64(st, 7);
    k->tm_update = sqlite3_column_int64(st, 8);
    k->tm_delete = sqlite3_column_int64(st, 9);
    return bad ? -1 : 0;
}

static void fini_accesskey(void *item)
{
    accesskey_fini(item);
}

static int sq_accesskey_insert(struct store *s, const struct accesskey *k)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_ACCESSKEY_INSERT), SQLITE_OK};
    bind_accesskey(&b, k);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "accesskey_insert");
    return sql_run_write(ss, b.st, "accesskey_insert", false);
}

static int sq_accesskey_get(struct store *s, const char *customer_id, const char *id,
                            struct accesskey *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_ACCESSKEY_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "accesskey_get");
    return sql_run_get(ss, b.st, "accesskey_get", read_accesskey, fini_accesskey, out,
                       sizeof(*out));
}

static int sq_accesskey_get_by_hash(struct store *s, const char *token_hash, struct accesskey *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_ACCESSKEY_GET_BY_HASH), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, token_hash);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "accesskey_get_by_hash");
    return sql_run_get(ss, b.st, "accesskey_get_by_hash", read_accesskey, fini_accesskey, out,
                       sizeof(*out));
}

static int sq_accesskey_update(struct store *s, const struct accesskey *k)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_ACCESSKEY_UPDATE), SQLITE_OK};
    bind_accesskey(&b, k);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "accesskey_update");
    return sql_run_write(ss, b.st, "accesskey_update", true);
}

static int sq_accesskey_list(struct store *s, const char *customer_id, const struct store_page *p,
                             struct accesskey **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_ACCESSKEY_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "accesskey_list");
    return sql_run_list(ss, b.st, "accesskey_list", read_accesskey, fini_accesskey, sizeof(**out),
                        (void **)out, n);
}

/* --- conferences ---------------------------------------------------------------------------- */

static void bind_conference(struct sql_binder *b, const struct conference *c)
{
    sql_bind_text(b, 1, c->id);
    sql_bind_text(b, 2, c->customer_id);
    sql_bind_text(b, 3, conference_type_name(c->type));
    sql_bind_text(b, 4, conference_status_name(c->status));
    sql_bind_text(b, 5, c->name);
    sql_bind_text(b, 6, c->detail);
    sql_bind_text_or(b, 7, c->data, "{}");
    sql_bind_i64(b, 8, c->timeout);
    sql_bind_text(b, 9, c->pre_flow_id);
    sql_bind_text(b, 10, c->post_flow_id);
    sql_bind_text(b, 11, c->recording_id);
    sql_bind_text_or(b, 12, c->recording_ids, "[]");
    sql_bind_text(b, 13, c->transcribe_id);
    sql_bind_text_or(b, 14, c->transcribe_ids, "[]");
    sql_bind_text(b, 15, c->direct_hash);
    sql_bind_null_if_0(b, 16, c->tm_end);
    sql_bind_i64(b, 17, c->tm_create);
    sql_bind_i64(b, 18, c->tm_update);
    sql_bind_i64(b, 19, c->tm_delete);
    sql_bind_i64(b, 20, c->tm_timeout);
}

/* Why: group_concat gives no order guarantee, so each entry carries its seq and the ids are put
 * in seq order here (an insertion that is O(1) per entry when SQLite kept the order anyway). */
static int parse_call_ids(const char *text, struct conference *c)
{
    if (!text[0])
        return 0;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    c->call_ids = xmalloc(cap * sizeof(*c->call_ids));
    int64_t *seqs = xmalloc(cap * sizeof(*seqs));
    const char *p = text;
    int ret = 0;
    size_t n = 0;
    while (*p) {
        char *end;
        errno = 0;
        long long seq = strtoll(p, &end, 10);
        if (errno || end == p || *end != ' ' || n == cap) {
            ret = -1;
            break;
        }
        const char *id = end + 1;
        const char *stop = strchr(id, ',');
        size_t len = stop ? (size_t)(stop - id) : strlen(id);
        if (len > ID_LEN) {
            ret = -1;
            break;
        }
        size_t i = n;
        while (i > 0 && seqs[i - 1] > seq) {
            seqs[i] = seqs[i - 1];
            memcpy(c->call_ids[i], c->call_ids[i - 1], sizeof(c->call_ids[i]));
            i--;
        }
        seqs[i] = seq;
        memcpy(c->call_ids[i], id, len);
        c->call_ids[i][len] = '\0';
        n++;
        p = stop ? stop + 1 : id + len;
    }
    free(seqs);
    c->n_call_ids = n;
    return ret;
}

static int read_conference(sqlite3_stmt *st, void *item)
{
    struct conference *c = item;
    int bad = sql_col_buf(st, 0, c->id, sizeof(c->id));
    bad |= sql_col_buf(st, 1, c->customer_id, sizeof(c->customer_id));
    bad |= conference_type_parse(sql_col_str(st, 2), &c->type);
    bad |= conference_status_parse(sql_col_str(st, 3), &c->status);
    c->name = sql_col_dup(st, 4);
    c->detail = sql_col_dup(st, 5);
    c->data = sql_col_dup(st, 6);
    c->timeout = sqlite3_column_int64(st, 7);
    bad |= sql_col_buf(st, 8, c->pre_flow_id, sizeof(c->pre_flow_id));
    bad |= sql_col_buf(st, 9, c->post_flow_id, sizeof(c->post_flow_id));
    bad |= sql_col_buf(st, 10, c->recording_id, sizeof(c->recording_id));
    c->recording_ids = sql_col_dup(st, 11);
    bad |= sql_col_buf(st, 12, c->transcribe_id, sizeof(c->transcribe_id));
    c->transcribe_ids = sql_col_dup(st, 13);
    bad |= sql_col_buf(st, 14, c->direct_hash, sizeof(c->direct_hash));
    c->tm_end = sqlite3_column_int64(st, 15); /* NULL reads as 0 */
    c->tm_create = sqlite3_column_int64(st, 16);
    c->tm_update = sqlite3_column_int64(st, 17);
    c->tm_delete = sqlite3_column_int64(st, 18);
    c->tm_timeout = sqlite3_column_int64(st, 19);
    bad |= parse_call_ids(sql_col_str(st, 20), c);
    return bad ? -1 : 0;
}

static void fini_conference(void *item)
{
    conference_fini(item);
}

static int sq_conference_insert(struct store *s, const struct conference *c)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CONFERENCE_INSERT), SQLITE_OK};
    bind_conference(&b, c);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conference_insert");
    return sql_run_write(ss, b.st, "conference_insert", false);
}

static int sq_conference_get(struct store *s, const char *customer_id, const char *id,
                             struct conference *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CONFERENCE_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conference_get");
    return sql_run_get(ss, b.st, "conference_get", read_conference, fini_conference, out,
                       sizeof(*out));
}

static int sq_conference_get_by_hash(struct store *s, const char *direct_hash,
                                     struct conference *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CONFERENCE_GET_BY_HASH), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, direct_hash);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conference_get_by_hash");
    return sql_run_get(ss, b.st, "conference_get_by_hash", read_conference, fini_conference, out,
                       sizeof(*out));
}

static int sq_conference_update(struct store *s, const struct conference *c)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CONFERENCE_UPDATE), SQLITE_OK};
    bind_conference(&b, c);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conference_update");
    return sql_run_write(ss, b.st, "conference_update", true);
}

static int sq_conference_list(struct store *s, const char *customer_id, const struct store_page *p,
                              struct conference **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CONFERENCE_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conference_list");
    return sql_run_list(ss, b.st, "conference_list", read_conference, fini_conference,
                        sizeof(**out), (void **)out, n);
}

static int sq_conference_list_unfinished(struct store *s, struct conference **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    return sql_run_list(ss, stmt(ss, ST_CONFERENCE_UNFINISHED), "conference_list_unfinished",
                        read_conference, fini_conference, sizeof(**out), (void **)out, n);
}

/* --- conference calls ----------------------------------------------------------------------- */

static void bind_cc(struct sql_binder *b, const struct conferencecall *cc)
{
    sql_bind_text(b, 1, cc->id);
    sql_bind_text(b, 2, cc->customer_id);
    sql_bind_text(b, 3, cc->activeflow_id);
    sql_bind_text(b, 4, cc->conference_id);
    sql_bind_text(b, 5, cc_reference_type_name(cc->reference_type));
    sql_bind_text(b, 6, cc->reference_id);
    sql_bind_text(b, 7, cc_status_name(cc->status));
    sql_bind_i64(b, 8, cc->tm_create);
    sql_bind_i64(b, 9, cc->tm_update);
    sql_bind_i64(b, 10, cc->tm_delete);
}

static int read_cc(sqlite3_stmt *st, void *item)
{
    struct conferencecall *cc = item;
    int bad = sql_col_buf(st, 0, cc->id, sizeof(cc->id));
    bad |= sql_col_buf(st, 1, cc->customer_id, sizeof(cc->customer_id));
    bad |= sql_col_buf(st, 2, cc->activeflow_id, sizeof(cc->activeflow_id));
    bad |= sql_col_buf(st, 3, cc->conference_id, sizeof(cc->conference_id));
    bad |= cc_reference_type_parse(sql_col_str(st, 4), &cc->reference_type);
    bad |= sql_col_buf(st, 5, cc->reference_id, sizeof(cc->reference_id));
    bad |= cc_status_parse(sql_col_str(st, 6), &cc->status);
    cc->tm_create = sqlite3_column_int64(st, 7);
    cc->tm_update = sqlite3_column_int64(st, 8);
    cc->tm_delete = sqlite3_column_int64(st, 9);
    return bad ? -1 : 0;
}

static void fini_cc(void *item)
{
    (void)item; /* no heap fields */
}

static int sq_cc_insert(struct store *s, const struct conferencecall *cc)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CC_INSERT), SQLITE_OK};
    bind_cc(&b, cc);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conferencecall_insert");
    return sql_run_write(ss, b.st, "conferencecall_insert", false);
}

static int sq_cc_get(struct store *s, const char *customer_id, const char *id,
                     struct conferencecall *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CC_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conferencecall_get");
    return sql_run_get(ss, b.st, "conferencecall_get", read_cc, fini_cc, out, sizeof(*out));
}

static int sq_cc_update(struct store *s, const struct conferencecall *cc)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CC_UPDATE), SQLITE_OK};
    bind_cc(&b, cc);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conferencecall_update");
    return sql_run_write(ss, b.st, "conferencecall_update", true);
}

static int sq_cc_list(struct store *s, const char *customer_id, const char *conference_id,
                      const struct store_page *p, struct conferencecall **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, conference_id ? ST_CC_LIST_CONF : ST_CC_LIST_ALL), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (conference_id)
        sql_bind_text(&b, 4, conference_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conferencecall_list");
    return sql_run_list(ss, b.st, "conferencecall_list", read_cc, fini_cc, sizeof(**out),
                        (void **)out, n);
}

static int sq_cc_list_active(struct store *s, const char *conference_id,
                             struct conferencecall **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, conference_id ? ST_CC_ACTIVE_CONF : ST_CC_ACTIVE_ALL),
                           SQLITE_OK};
    *out = NULL;
    *n = 0;
    if (conference_id)
        sql_bind_text(&b, 1, conference_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "conferencecall_list_active");
    return sql_run_list(ss, b.st, "conferencecall_list_active", read_cc, fini_cc, sizeof(**out),
                        (void **)out, n);
}

/* --- open / close --------------------------------------------------------------------------- */

static void sq_close(struct store *s)
{
    struct sqlite_store *ss = impl(s);
    for (int i = 0; ss->st && i < ST__COUNT; i++)
        sqlite3_finalize(ss->st[i]); /* NULL is a no-op */
    free(ss->st);
    sqlite_recordings_finalize(ss);
    sqlite_transcribes_finalize(ss);
    if (ss->db) {
        int rc = sqlite3_close(ss->db);
        if (rc != SQLITE_OK)
            log_error("msg=\"closing the store failed\" rc=%d error=\"%s\"", rc,
                      sqlite3_errmsg(ss->db));
    }
    free(ss);
}

/* --- calls --------------------------------------------------------------------------------- */

static void bind_call(struct sql_binder *b, const struct call *c)
{
    sql_bind_text(b, 1, c->id);
    sql_bind_text(b, 2, c->customer_id);
    sql_bind_text(b, 3, c->owner_type);
    sql_bind_text(b, 4, c->owner_id);
    sql_bind_text(b, 5, c->flow_id);
    sql_bind_text(b, 6, c->activeflow_id);
    sql_bind_text(b, 7, c->type);
    sql_bind_text(b, 8, c->master_call_id);
    sql_bind_text_or(b, 9, c->source, "{}");
    sql_bind_text_or(b, 10, c->destination, "{}");
    sql_bind_text(b, 11, call_status_name(c->status));
    sql_bind_text_or(b, 12, c->action, "{}");
    sql_bind_text(b, 13, call_direction_name(c->direction));
    sql_bind_text(b, 14, c->hangup_by);
    sql_bind_text(b, 15, c->hangup_reason);
    sql_bind_text_or(b, 16, c->metadata, "{}");
    sql_bind_null_if_0(b, 17, c->tm_progressing);
    sql_bind_null_if_0(b, 18, c->tm_ringing);
    sql_bind_null_if_0(b, 19, c->tm_hangup);
    sql_bind_i64(b, 20, c->tm_create);
    sql_bind_i64(b, 21, c->tm_update);
    sql_bind_i64(b, 22, c->tm_delete);
    sql_bind_text_or(b, 23, c->dialog, "");
}

static int read_call(sqlite3_stmt *st, void *item)
{
    struct call *c = item;
    int bad = sql_col_buf(st, 0, c->id, sizeof(c->id));
    bad |= sql_col_buf(st, 1, c->customer_id, sizeof(c->customer_id));
    bad |= sql_col_buf(st, 2, c->owner_type, sizeof(c->owner_type));
    bad |= sql_col_buf(st, 3, c->owner_id, sizeof(c->owner_id));
    bad |= sql_col_buf(st, 4, c->flow_id, sizeof(c->flow_id));
    bad |= sql_col_buf(st, 5, c->activeflow_id, sizeof(c->activeflow_id));
    bad |= sql_col_buf(st, 6, c->type, sizeof(c->type));
    bad |= sql_col_buf(st, 7, c->master_call_id, sizeof(c->master_call_id));
    c->source = sql_col_dup(st, 8);
    c->destination = sql_col_dup(st, 9);
    bad |= call_status_parse(sql_col_str(st, 10), &c->status) < 0;
    c->action = sql_col_dup(st, 11);
    bad |= call_direction_parse(sql_col_str(st, 12), &c->direction) < 0;
    bad |= sql_col_buf(st, 13, c->hangup_by, sizeof(c->hangup_by));
    bad |= sql_col_buf(st, 14, c->hangup_reason, sizeof(c->hangup_reason));
    c->metadata = sql_col_dup(st, 15);
    c->tm_progressing = sqlite3_column_int64(st, 16);
    c->tm_ringing = sqlite3_column_int64(st, 17);
    c->tm_hangup = sqlite3_column_int64(st, 18);
    c->tm_create = sqlite3_column_int64(st, 19);
    c->tm_update = sqlite3_column_int64(st, 20);
    c->tm_delete = sqlite3_column_int64(st, 21);
    c->dialog = sql_col_dup(st, 22);
    bad |= sql_col_buf(st, 23, c->recording_id, sizeof(c->recording_id));
    c->recording_ids = sql_col_dup(st, 24);
    return bad ? -1 : 0;
}

static void fini_call(void *item)
{
    call_fini(item);
}

static int sq_call_insert(struct store *s, const struct call *c)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CALL_INSERT), SQLITE_OK};
    bind_call(&b, c);
    /* An update leaves these to store_call_set_recording(). */
    sql_bind_text_or(&b, 24, c->recording_id, ID_NIL);
    sql_bind_text_or(&b, 25, c->recording_ids, "[]");
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "call_insert");
    return sql_run_write(ss, b.st, "call_insert", false);
}

static int sq_call_get(struct store *s, const char *customer_id, const char *id, struct call *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CALL_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "call_get");
    return sql_run_get(ss, b.st, "call_get", read_call, fini_call, out, sizeof(*out));
}

static int sq_call_update(struct store *s, const struct call *c)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CALL_UPDATE), SQLITE_OK};
    bind_call(&b, c);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "call_update");
    return sql_run_write(ss, b.st, "call_update", true);
}

static int sq_call_list(struct store *s, const char *customer_id, const struct store_page *p,
                        struct call **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_CALL_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "call_list");
    return sql_run_list(ss, b.st, "call_list", read_call, fini_call, sizeof(**out), (void **)out,
                        n);
}

static int sq_call_list_live(struct store *s, struct call **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    *out = NULL;
    *n = 0;
    return sql_run_list(ss, stmt(ss, ST_CALL_LIVE), "call_list_live", read_call, fini_call,
                        sizeof(**out), (void **)out, n);
}

/* --- flows, numbers, activeflows ------------------------------------------------------------ */

static void bind_flow(struct sql_binder *b, const struct flow *f)
{
    sql_bind_text(b, 1, f->id);
    sql_bind_text(b, 2, f->customer_id);
    sql_bind_text(b, 3, f->type);
    sql_bind_text(b, 4, f->name);
    sql_bind_text(b, 5, f->detail);
    sql_bind_text_or(b, 6, f->actions, "[]");
    sql_bind_text(b, 7, f->on_complete_flow_id);
    sql_bind_i64(b, 8, f->tm_create);
    sql_bind_i64(b, 9, f->tm_update);
    sql_bind_i64(b, 10, f->tm_delete);
}

static int read_flow(sqlite3_stmt *st, void *item)
{
    struct flow *f = item;
    int bad = sql_col_buf(st, 0, f->id, sizeof(f->id));
    bad |= sql_col_buf(st, 1, f->customer_id, sizeof(f->customer_id));
    bad |= sql_col_buf(st, 2, f->type, sizeof(f->type));
    f->name = sql_col_dup(st, 3);
    f->detail = sql_col_dup(st, 4);
    f->actions = sql_col_dup(st, 5);
    bad |= sql_col_buf(st, 6, f->on_complete_flow_id, sizeof(f->on_complete_flow_id));
    f->tm_create = sqlite3_column_int64(st, 7);
    f->tm_update = sqlite3_column_int64(st, 8);
    f->tm_delete = sqlite3_column_int64(st, 9);
    return bad ? -1 : 0;
}

static void fini_flow(void *item)
{
    flow_fini(item);
}

static int sq_flow_write(struct store *s, const struct flow *f, enum stmt_id id, const char *op)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, id), SQLITE_OK};
    bind_flow(&b, f);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, op);
    return sql_run_write(ss, b.st, op, id == ST_FLOW_UPDATE);
}

static int sq_flow_insert(struct store *s, const struct flow *f)
{
    return sq_flow_write(s, f, ST_FLOW_INSERT, "flow_insert");
}

static int sq_flow_update(struct store *s, const struct flow *f)
{
    return sq_flow_write(s, f, ST_FLOW_UPDATE, "flow_update");
}

static int sq_flow_get(struct store *s, const char *customer_id, const char *id, struct flow *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_FLOW_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "flow_get");
    return sql_run_get(ss, b.st, "flow_get", read_flow, fini_flow, out, sizeof(*out));
}

static int sq_flow_list(struct store *s, const char *customer_id, const struct store_page *p,
                        struct flow **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_FLOW_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "flow_list");
    return sql_run_list(ss, b.st, "flow_list", read_flow, fini_flow, sizeof(**out), (void **)out,
                        n);
}

static void bind_number(struct sql_binder *b, const struct number *n)
{
    sql_bind_text(b, 1, n->id);
    sql_bind_text(b, 2, n->customer_id);
    sql_bind_text(b, 3, n->number);
    sql_bind_text(b, 4, n->type);
    sql_bind_text(b, 5, n->call_flow_id);
    sql_bind_text(b, 6, n->message_flow_id);
    sql_bind_text(b, 7, n->name);
    sql_bind_text(b, 8, n->detail);
    sql_bind_text(b, 9, n->status);
    sql_bind_null_if_0(b, 10, n->tm_purchase);
    sql_bind_null_if_0(b, 11, n->tm_renew);
    sql_bind_i64(b, 12, n->tm_create);
    sql_bind_i64(b, 13, n->tm_update);
    sql_bind_i64(b, 14, n->tm_delete);
}

static int read_number(sqlite3_stmt *st, void *item)
{
    struct number *n = item;
    int bad = sql_col_buf(st, 0, n->id, sizeof(n->id));
    bad |= sql_col_buf(st, 1, n->customer_id, sizeof(n->customer_id));
    bad |= sql_col_buf(st, 2, n->number, sizeof(n->number));
    bad |= sql_col_buf(st, 3, n->type, sizeof(n->type));
    bad |= sql_col_buf(st, 4, n->call_flow_id, sizeof(n->call_flow_id));
    bad |= sql_col_buf(st, 5, n->message_flow_id, sizeof(n->message_flow_id));
    n->name = sql_col_dup(st, 6);
    n->detail = sql_col_dup(st, 7);
    bad |= sql_col_buf(st, 8, n->status, sizeof(n->status));
    n->tm_purchase = sqlite3_column_int64(st, 9);
    n->tm_renew = sqlite3_column_int64(st, 10);
    n->tm_create = sqlite3_column_int64(st, 11);
    n->tm_update = sqlite3_column_int64(st, 12);
    n->tm_delete = sqlite3_column_int64(st, 13);
    return bad ? -1 : 0;
}

static void fini_number(void *item)
{
    number_fini(item);
}

static int sq_number_write(struct store *s, const struct number *n, enum stmt_id id, const char *op)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, id), SQLITE_OK};
    bind_number(&b, n);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, op);
    return sql_run_write(ss, b.st, op, id == ST_NUMBER_UPDATE);
}

static int sq_number_insert(struct store *s, const struct number *n)
{
    return sq_number_write(s, n, ST_NUMBER_INSERT, "number_insert");
}

static int sq_number_update(struct store *s, const struct number *n)
{
    return sq_number_write(s, n, ST_NUMBER_UPDATE, "number_update");
}

static int sq_number_get(struct store *s, const char *customer_id, const char *id,
                         struct number *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_NUMBER_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "number_get");
    return sql_run_get(ss, b.st, "number_get", read_number, fini_number, out, sizeof(*out));
}

static int sq_number_get_by_number(struct store *s, const char *number, struct number *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_NUMBER_GET_BY_NUMBER), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, number);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "number_get_by_number");
    return sql_run_get(ss, b.st, "number_get_by_number", read_number, fini_number, out,
                       sizeof(*out));
}

static int sq_number_list(struct store *s, const char *customer_id, const struct store_page *p,
                          struct number **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_NUMBER_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "number_list");
    return sql_run_list(ss, b.st, "number_list", read_number, fini_number, sizeof(**out),
                        (void **)out, n);
}

static void bind_af(struct sql_binder *b, const struct activeflow *a)
{
    sql_bind_text(b, 1, a->id);
    sql_bind_text(b, 2, a->customer_id);
    sql_bind_text(b, 3, a->flow_id);
    sql_bind_text(b, 4, activeflow_status_name(a->status));
    sql_bind_text(b, 5, a->reference_type);
    sql_bind_text(b, 6, a->reference_id);
    sql_bind_text(b, 7, a->on_complete_flow_id);
    sql_bind_text_or(b, 8, a->current_action, "{}");
    sql_bind_text(b, 9, a->forward_action_id);
    sql_bind_text_or(b, 10, a->executed_actions, "[]");
    sql_bind_i64(b, 11, a->tm_create);
    sql_bind_i64(b, 12, a->tm_update);
    sql_bind_i64(b, 13, a->tm_delete);
}

static int read_af(sqlite3_stmt *st, void *item)
{
    struct activeflow *a = item;
    int bad = sql_col_buf(st, 0, a->id, sizeof(a->id));
    bad |= sql_col_buf(st, 1, a->customer_id, sizeof(a->customer_id));
    bad |= sql_col_buf(st, 2, a->flow_id, sizeof(a->flow_id));
    bad |= activeflow_status_parse(sql_col_str(st, 3), &a->status) < 0;
    bad |= sql_col_buf(st, 4, a->reference_type, sizeof(a->reference_type));
    bad |= sql_col_buf(st, 5, a->reference_id, sizeof(a->reference_id));
    bad |= sql_col_buf(st, 6, a->on_complete_flow_id, sizeof(a->on_complete_flow_id));
    a->current_action = sql_col_dup(st, 7);
    bad |= sql_col_buf(st, 8, a->forward_action_id, sizeof(a->forward_action_id));
    a->executed_actions = sql_col_dup(st, 9);
    a->tm_create = sqlite3_column_int64(st, 10);
    a->tm_update = sqlite3_column_int64(st, 11);
    a->tm_delete = sqlite3_column_int64(st, 12);
    return bad ? -1 : 0;
}

static void fini_af(void *item)
{
    activeflow_fini(item);
}

static int sq_af_write(struct store *s, const struct activeflow *a, enum stmt_id id, const char *op)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, id), SQLITE_OK};
    bind_af(&b, a);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, op);
    return sql_run_write(ss, b.st, op, id == ST_AF_UPDATE);
}

static int sq_af_insert(struct store *s, const struct activeflow *a)
{
    return sq_af_write(s, a, ST_AF_INSERT, "activeflow_insert");
}

static int sq_af_update(struct store *s, const struct activeflow *a)
{
    return sq_af_write(s, a, ST_AF_UPDATE, "activeflow_update");
}

static int sq_af_get(struct store *s, const char *customer_id, const char *id,
                     struct activeflow *out)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_AF_GET), SQLITE_OK};
    memset(out, 0, sizeof(*out));
    sql_bind_text(&b, 1, id);
    sql_bind_maybe_text(&b, 2, customer_id);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "activeflow_get");
    return sql_run_get(ss, b.st, "activeflow_get", read_af, fini_af, out, sizeof(*out));
}

static int sq_af_list(struct store *s, const char *customer_id, const struct store_page *p,
                      struct activeflow **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    struct sql_binder b = {stmt(ss, ST_AF_LIST), SQLITE_OK};
    *out = NULL;
    *n = 0;
    sql_bind_text(&b, 1, customer_id);
    sql_bind_page(&b, 2, 3, p);
    if (b.rc != SQLITE_OK)
        return sql_bind_fail(ss, &b, "activeflow_list");
    return sql_run_list(ss, b.st, "activeflow_list", read_af, fini_af, sizeof(**out), (void **)out,
                        n);
}

static int sq_af_list_running(struct store *s, struct activeflow **out, size_t *n)
{
    struct sqlite_store *ss = impl(s);
    *out = NULL;
    *n = 0;
    return sql_run_list(ss, stmt(ss, ST_AF_RUNNING), "activeflow_list_running", read_af, fini_af,
                        sizeof(**out), (void **)out, n);
}

static struct store_ops sqlite_ops = {
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .newest_time = sq_newest_time,
    .customer_insert = sq_customer_insert,
    .customer_get = sq_customer_get,
    .customer_update = sq_customer_update,
    .customer_list = sq_customer_list,
    .customer_count = sq_customer_count,
    .agent_insert = sq_agent_insert,
    .agent_get = sq_agent_get,
    .agent_get_by_username = sq_agent_get_by_username,
    .agent_update = sq_agent_update,
    .agent_list = sq_agent_list,
    .accesskey_insert = sq_accesskey_insert,
    .accesskey_get = sq_accesskey_get,
    .accesskey_get_by_hash = sq_accesskey_get_by_hash,
    .accesskey_update = sq_accesskey_update,
    .accesskey_list = sq_accesskey_list,
    .conference_insert = sq_conference_insert,
    .conference_get = sq_conference_get,
    .conference_get_by_hash = sq_conference_get_by_hash,
    .conference_update = sq_conference_update,
    .conference_list = sq_conference_list,
    .conference_list_unfinished = sq_conference_list_unfinished,
    .conferencecall_insert = sq_cc_insert,
    .conferencecall_get = sq_cc_get,
    .conferencecall_update = sq_cc_update,
    .conferencecall_list = sq_cc_list,
    .conferencecall_list_active = sq_cc_list_active,
    .call_insert = sq_call_insert,
    .call_get = sq_call_get,
    .call_update = sq_call_update,
    .call_list = sq_call_list,
    .call_list_live = sq_call_list_live,
    .flow_insert = sq_flow_insert,
    .flow_get = sq_flow_get,
    .flow_update = sq_flow_update,
    .flow_list = sq_flow_list,
    .number_insert = sq_number_insert,
    .number_get = sq_number_get,
    .number_get_by_number = sq_number_get_by_number,
    .number_update = sq_number_update,
    .number_list = sq_number_list,
    .activeflow_insert = sq_af_insert,
    .activeflow_get = sq_af_get,
    .activeflow_update = sq_af_update,
    .activeflow_list = sq_af_list,
    .activeflow_list_running = sq_af_list_running,
};

/* mkdir -p: creates dir and its missing parents (mode 0700: the store holds secrets). */
static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    if (!dir[0] || str_copy(path, sizeof(path), dir) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    if (stat(path, &sb) < 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int exec(sqlite3 *db, const char *sql, const char *op)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        log_error("msg=\"store setup failed\" op=%s rc=%d error=\"%s\"", op, rc,
                  err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

/* One-row, one-column PRAGMA read at open time (not a hot path, so prepared on the spot). */
static int pragma_row(sqlite3 *db, const char *sql, char *text, size_t cap, int64_t *num)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        log_error("msg=\"store setup failed\" sql=\"%s\" error=\"%s\"", sql, sqlite3_errmsg(db));
        return -1;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (text)
            str_copy(text, cap, sql_col_str(st, 0));
        if (num)
            *num = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        log_error("msg=\"store setup failed\" sql=\"%s\" error=\"%s\"", sql, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Why: WAL with synchronous=NORMAL fsyncs only at checkpoints, yet a committed transaction is in
 * the WAL file (the OS page cache) once COMMIT returns, so a process crash or kill -9 never loses
 * it; only a power loss or kernel crash can roll back the last few commits (never corrupting).
 * foreign_keys guards participants against missing conferences; busy_timeout covers a second
 * process briefly holding the lock at start-up. */
static int configure(sqlite3 *db, bool in_memory)
{
    char mode[16] = "";
    sqlite3_extended_result_codes(db, 1);
    /* One server owns a data directory: exclusive locking keeps the WAL index in memory (no
     * file lock per transaction, a measurable cost at API rates) and makes a second server on
     * the same directory fail at start instead of sharing it. */
    if (!in_memory && exec(db, "PRAGMA locking_mode = EXCLUSIVE", "locking_mode") < 0)
        return -1;
    if (exec(db, "PRAGMA busy_timeout = 2000", "busy_timeout") < 0)
        return -1;
    if (pragma_row(db, "PRAGMA journal_mode = WAL", mode, sizeof(mode), NULL) < 0)
        return -1;
    if (!in_memory && strcmp(mode, "wal") != 0)
        log_warn("msg=\"store is not in WAL mode\" journal_mode=%s", mode);
    if (exec(db, "PRAGMA synchronous = NORMAL", "synchronous") < 0 ||
        exec(db, "PRAGMA foreign_keys = ON", "foreign_keys") < 0)
        return -1;
    return 0;
}

/* Applies the migrations not yet applied, each in one transaction with its version bump. */
static int migrate(sqlite3 *db)
{
    int64_t version = 0;
    if (pragma_row(db, "PRAGMA user_version", NULL, 0, &version) < 0)
        return -1;
    if (version > N_MIGRATIONS) {
        log_error("msg=\"store schema is newer than this server\" schema_version=%lld "
                  "supported=%d",
                  (long long)version, N_MIGRATIONS);
        return -1;
    }
    for (int v = (int)version; v < N_MIGRATIONS; v++) {
        char bump[48];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        if (exec(db, "BEGIN IMMEDIATE", "migrate") < 0)
            return -1;
        if (exec(db, migrations[v], "migrate") < 0 || exec(db, bump, "migrate") < 0 ||
            exec(db, "COMMIT", "migrate") < 0) {
            exec(db, "ROLLBACK", "migrate");
            return -1;
        }
        log_info("msg=\"store schema migrated\" schema_version=%d", v + 1);
    }
    return 0;
}

/* The SQL above spells participant statuses as text; this catches a renamed enum value. */
static void check_names(void)
{
    if (strcmp(cc_status_name(CC_JOINING), "joining") ||
        strcmp(cc_status_name(CC_JOINED), "joined") ||
        strcmp(cc_status_name(CC_LEAVING), "leaving") ||
        strcmp(conference_status_name(CONFERENCE_TERMINATED), "terminated"))
        die("store SQL and model status names disagree");
}

int store_sqlite_open(const char *dir, struct store **out)
{
    char path[PATH_MAX];
    const char *file = ":memory:";
    bool in_memory = strcmp(dir, ":memory:") == 0;
    *out = NULL;
    check_names();
    if (!in_memory) {
        if (mkdir_p(dir) < 0) {
            log_error("msg=\"cannot create the data directory\" dir=\"%s\" error=\"%s\"", dir,
                      strerror(errno));
            return STORE_ERROR;
        }
        int len = snprintf(path, sizeof(path), "%s/conferenced.db", dir);
        if (len < 0 || (size_t)len >= sizeof(path)) {
            log_error("msg=\"data directory path is too long\" dir=\"%s\"", dir);
            return STORE_ERROR;
        }
        file = path;
    }

    struct sqlite_store *ss = xcalloc(1, sizeof(*ss));
    if (!sqlite_ops.recording_insert) { /* control thread only: no race */
        sqlite_recordings_ops(&sqlite_ops);
        sqlite_transcribes_ops(&sqlite_ops);
    }
    ss->base.ops = &sqlite_ops;
    ss->st = xcalloc(ST__COUNT, sizeof(*ss->st));
    /* NOMUTEX: the store is used by the control thread only. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(file, &ss->db, flags, NULL);
    if (rc != SQLITE_OK) {
        log_error("msg=\"cannot open the store\" file=\"%s\" rc=%d error=\"%s\"", file, rc,
                  ss->db ? sqlite3_errmsg(ss->db) : "out of memory");
        goto fail;
    }
    if (configure(ss->db, in_memory) < 0 || migrate(ss->db) < 0)
        goto fail;
    for (int i = 0; i < ST__COUNT; i++) {
        rc = sqlite3_prepare_v3(ss->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ss->st[i],
                                NULL);
        if (rc != SQLITE_OK) {
            log_error("msg=\"store statement does not prepare\" index=%d error=\"%s\"", i,
                      sqlite3_errmsg(ss->db));
            goto fail;
        }
    }
    if (sqlite_recordings_prepare(ss) < 0 || sqlite_transcribes_prepare(ss) < 0)
        goto fail;
    *out = &ss->base;
    return 0;

fail:;
    /* Another process (a running server) holds the exclusive lock: say so. */
    bool busy = ss->db && (sqlite3_errcode(ss->db) & 0xff) == SQLITE_BUSY;
    sq_close(&ss->base);
    return busy ? STORE_BUSY : STORE_ERROR;
}

/* The store_free_* helpers: any thread; they free what a list call returned. */
void store_free_customers(struct customer *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        customer_fini(&a[i]);
    free(a);
}

void store_free_agents(struct agent *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        agent_fini(&a[i]);
    free(a);
}

void store_free_accesskeys(struct accesskey *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        accesskey_fini(&a[i]);
    free(a);
}

void store_free_conferences(struct conference *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        conference_fini(&a[i]);
    free(a);
}

void store_free_calls(struct call *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        call_fini(&a[i]);
    free(a);
}

void store_free_flows(struct flow *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        flow_fini(&a[i]);
    free(a);
}

void store_free_numbers(struct number *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        number_fini(&a[i]);
    free(a);
}

void store_free_activeflows(struct activeflow *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        activeflow_fini(&a[i]);
    free(a);
}
