/* Tests of the SQLite store: round trips of every record, uniqueness, pagination, customer
 * isolation, participants in join order, migrations and persistence across reopening. Each
 * fixture test runs against ":memory:" and against a file in a fresh temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ids.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "model/model.h"
#include "store/store.h"

/* The number of migrations in store_sqlite.c: bump it when a step is appended. */
#define EXPECTED_SCHEMA_VERSION 7

#define BASE INT64_C(1700000000000000)

struct fx {
    struct store *s;
    char dir[64]; /* "" for the in-memory store */
};

static void remove_dir(const char *dir)
{
    static const char *const files[] = {"conferenced.db", "conferenced.db-wal",
                                        "conferenced.db-shm"};
    char path[256];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The prestate names the backend: "memory" or "file". */
static int setup(void **state)
{
    const char *kind = *state;
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    if (strcmp(kind, "file") == 0) {
        snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(store_sqlite_open(f->dir, &f->s), 0);
    } else {
        assert_int_equal(store_sqlite_open(":memory:", &f->s), 0);
    }
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    if (f->dir[0])
        remove_dir(f->dir);
    free(f);
    return 0;
}

static struct store *S(void **state)
{
    return ((struct fx *)*state)->s;
}

/* --- record builders (string fields point at literals; never finied) ------------------------ */

static void mk_customer(struct customer *c, int64_t tm)
{
    memset(c, 0, sizeof(*c));
    id_new(c->id);
    c->name = "Acme";
    c->detail = "a customer";
    snprintf(c->webhook_method, sizeof(c->webhook_method), "PUT");
    c->webhook_uri = "https://hooks.example.com/x?a=1&b='2'";
    c->tm_create = tm;
    c->tm_update = tm + 1;
    c->tm_delete = TM_NEVER;
}

static void mk_agent(struct agent *a, const char *cid, const char *username, int64_t tm)
{
    memset(a, 0, sizeof(*a));
    id_new(a->id);
    snprintf(a->customer_id, sizeof(a->customer_id), "%s", cid);
    a->username = (char *)username;
    a->password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
    a->name = "Alice";
    a->detail = "an agent";
    snprintf(a->ring_method, sizeof(a->ring_method), "ringall");
    a->permission = PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_AGENT | (UINT64_C(1) << 63);
    a->token_generation = 3;
    a->tm_create = tm;
    a->tm_update = tm + 2;
    a->tm_delete = TM_NEVER;
}

static void mk_accesskey(struct accesskey *k, const char *cid, const char *hash, int64_t tm)
{
    memset(k, 0, sizeof(*k));
    id_new(k->id);
    snprintf(k->customer_id, sizeof(k->customer_id), "%s", cid);
    k->name = "ci key";
    k->detail = "for the pipeline";
    snprintf(k->token_hash, sizeof(k->token_hash), "%s", hash);
    snprintf(k->token_prefix, sizeof(k->token_prefix), "ak_1234");
    k->tm_expire = tm + 3600000000;
    k->tm_create = tm;
    k->tm_update = tm + 3;
    k->tm_delete = TM_NEVER;
}

static void mk_conference(struct conference *c, const char *cid, const char *hash, int64_t tm)
{
    memset(c, 0, sizeof(*c));
    id_new(c->id);
    snprintf(c->customer_id, sizeof(c->customer_id), "%s", cid);
    c->type = CONFERENCE_TYPE_CONNECT;
    c->status = CONFERENCE_PROGRESSING;
    c->name = "weekly";
    c->detail = "the weekly call";
    c->data = "{\"k\":\"v\",\"n\":[1,2]}";
    c->timeout = 3600;
    id_new(c->pre_flow_id);
    id_new(c->post_flow_id);
    id_new(c->recording_id);
    c->recording_ids = "[\"r1\",\"r2\"]";
    id_new(c->transcribe_id);
    c->transcribe_ids = "[\"t1\"]";
    snprintf(c->direct_hash, sizeof(c->direct_hash), "%s", hash);
    c->tm_end = 0;
    c->tm_create = tm;
    c->tm_update = tm + 4;
    c->tm_delete = TM_NEVER;
    c->tm_timeout = tm + 3600000000;
}

static void mk_cc(struct conferencecall *cc, const struct conference *conf, enum cc_status st,
                  int64_t tm)
{
    memset(cc, 0, sizeof(*cc));
    id_new(cc->id);
    snprintf(cc->customer_id, sizeof(cc->customer_id), "%s", conf->customer_id);
    id_new(cc->activeflow_id);
    snprintf(cc->conference_id, sizeof(cc->conference_id), "%s", conf->id);
    cc->reference_type = CC_REFERENCE_LINE;
    id_new(cc->reference_id);
    cc->status = st;
    cc->tm_create = tm;
    cc->tm_update = tm + 5;
    cc->tm_delete = TM_NEVER;
}

/* --- comparisons ---------------------------------------------------------------------------- */

static void eq_customer(const struct customer *a, const struct customer *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->detail, b->detail);
    assert_string_equal(a->webhook_method, b->webhook_method);
    assert_string_equal(a->webhook_uri, b->webhook_uri);
    assert_int_equal(a->tm_create, b->tm_create);
    assert_int_equal(a->tm_update, b->tm_update);
    assert_int_equal(a->tm_delete, b->tm_delete);
}

static void eq_agent(const struct agent *a, const struct agent *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->customer_id, b->customer_id);
    assert_string_equal(a->username, b->username);
    assert_string_equal(a->password_hash, b->password_hash);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->detail, b->detail);
    assert_string_equal(a->ring_method, b->ring_method);
    assert_true(a->permission == b->permission);
    assert_int_equal(a->token_generation, b->token_generation);
    assert_int_equal(a->tm_create, b->tm_create);
    assert_int_equal(a->tm_update, b->tm_update);
    assert_int_equal(a->tm_delete, b->tm_delete);
}

static void eq_accesskey(const struct accesskey *a, const struct accesskey *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->customer_id, b->customer_id);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->detail, b->detail);
    assert_string_equal(a->token_hash, b->token_hash);
    assert_string_equal(a->token_prefix, b->token_prefix);
    assert_int_equal(a->tm_expire, b->tm_expire);
    assert_int_equal(a->tm_create, b->tm_create);
    assert_int_equal(a->tm_update, b->tm_update);
    assert_int_equal(a->tm_delete, b->tm_delete);
}

/* Compares the stored columns (not call_ids). */
static void eq_conference(const struct conference *a, const struct conference *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->customer_id, b->customer_id);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->detail, b->detail);
    assert_string_equal(a->data, b->data);
    assert_int_equal(a->timeout, b->timeout);
    assert_string_equal(a->pre_flow_id, b->pre_flow_id);
    assert_string_equal(a->post_flow_id, b->post_flow_id);
    assert_string_equal(a->recording_id, b->recording_id);
    assert_string_equal(a->recording_ids, b->recording_ids);
    assert_string_equal(a->transcribe_id, b->transcribe_id);
    assert_string_equal(a->transcribe_ids, b->transcribe_ids);
    assert_string_equal(a->direct_hash, b->direct_hash);
    assert_int_equal(a->tm_end, b->tm_end);
    assert_int_equal(a->tm_create, b->tm_create);
    assert_int_equal(a->tm_update, b->tm_update);
    assert_int_equal(a->tm_delete, b->tm_delete);
    assert_int_equal(a->tm_timeout, b->tm_timeout);
}

static void eq_cc(const struct conferencecall *a, const struct conferencecall *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->customer_id, b->customer_id);
    assert_string_equal(a->activeflow_id, b->activeflow_id);
    assert_string_equal(a->conference_id, b->conference_id);
    assert_int_equal(a->reference_type, b->reference_type);
    assert_string_equal(a->reference_id, b->reference_id);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->tm_create, b->tm_create);
    assert_int_equal(a->tm_update, b->tm_update);
    assert_int_equal(a->tm_delete, b->tm_delete);
}

/* call_ids must be exactly these participants, in this order. */
static void eq_call_ids(const struct conference *c, const struct conferencecall *const *want,
                        size_t n)
{
    assert_int_equal(c->n_call_ids, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c->call_ids[i], want[i]->id);
}

/* --- round trips ---------------------------------------------------------------------------- */

static void test_customer_roundtrip(void **state)
{
    struct store *s = S(state);
    struct customer c, got;
    mk_customer(&c, BASE);
    assert_int_equal(store_customer_insert(s, &c), 0);
    assert_int_equal(store_customer_get(s, c.id, &got), 0);
    eq_customer(&c, &got);
    customer_fini(&got);

    assert_int_equal(store_customer_insert(s, &c), STORE_CONFLICT); /* same id */

    c.name = "Acme Ltd";
    c.detail = "";
    snprintf(c.webhook_method, sizeof(c.webhook_method), "POST");
    c.webhook_uri = "https://other.example.com/";
    c.tm_update = BASE + 99;
    c.tm_delete = BASE + 100;
    assert_int_equal(store_customer_update(s, &c), 0);
    assert_int_equal(store_customer_get(s, c.id, &got), 0);
    eq_customer(&c, &got);
    customer_fini(&got);

    /* NULL strings are stored as "" and read back as "". */
    struct customer n;
    mk_customer(&n, BASE + 1);
    n.name = n.detail = n.webhook_uri = NULL;
    n.webhook_method[0] = '\0';
    assert_int_equal(store_customer_insert(s, &n), 0);
    assert_int_equal(store_customer_get(s, n.id, &got), 0);
    assert_string_equal(got.name, "");
    assert_string_equal(got.detail, "");
    assert_string_equal(got.webhook_uri, "");
    assert_string_equal(got.webhook_method, "");
    customer_fini(&got);

    struct customer missing;
    mk_customer(&missing, BASE + 2);
    assert_int_equal(store_customer_get(s, missing.id, &got), STORE_NOT_FOUND);
    assert_null(got.name);
    assert_int_equal(store_customer_update(s, &missing), STORE_NOT_FOUND);

    int64_t count = -1;
    assert_int_equal(store_customer_count(s, &count), 0);
    assert_int_equal(count, 2); /* deleted ones count too */
}

static void test_agent_roundtrip(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1], other[ID_LEN + 1];
    id_new(cid);
    id_new(other);
    struct agent a, got;
    mk_agent(&a, cid, "alice@example.com", BASE);
    assert_int_equal(store_agent_insert(s, &a), 0);

    assert_int_equal(store_agent_get(s, cid, a.id, &got), 0);
    eq_agent(&a, &got);
    agent_fini(&got);
    assert_int_equal(store_agent_get(s, NULL, a.id, &got), 0);
    eq_agent(&a, &got);
    agent_fini(&got);
    assert_int_equal(store_agent_get(s, other, a.id, &got), STORE_NOT_FOUND);
    assert_int_equal(store_agent_get_by_username(s, "alice@example.com", &got), 0);
    eq_agent(&a, &got);
    agent_fini(&got);
    assert_int_equal(store_agent_get_by_username(s, "bob", &got), STORE_NOT_FOUND);

    a.username = "alice2";
    a.password_hash = "$argon2id$new";
    a.name = "Alice B";
    a.detail = "moved";
    snprintf(a.ring_method, sizeof(a.ring_method), "linear");
    a.permission = PERM_PROJECT_SUPER_ADMIN;
    a.token_generation = 4;
    a.tm_update = BASE + 50;
    assert_int_equal(store_agent_update(s, &a), 0);
    assert_int_equal(store_agent_get(s, cid, a.id, &got), 0);
    eq_agent(&a, &got);
    agent_fini(&got);
    assert_int_equal(store_agent_get_by_username(s, "alice@example.com", &got), STORE_NOT_FOUND);

    /* A deleted agent is still returned by id, with its tm_delete. */
    a.tm_delete = BASE + 60;
    assert_int_equal(store_agent_update(s, &a), 0);
    assert_int_equal(store_agent_get(s, cid, a.id, &got), 0);
    assert_int_equal(got.tm_delete, BASE + 60);
    agent_fini(&got);
    assert_int_equal(store_agent_get_by_username(s, "alice2", &got), STORE_NOT_FOUND);

    struct agent missing;
    mk_agent(&missing, cid, "nobody", BASE);
    assert_int_equal(store_agent_update(s, &missing), STORE_NOT_FOUND);
}

static void test_accesskey_roundtrip(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1], other[ID_LEN + 1];
    id_new(cid);
    id_new(other);
    const char *hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    struct accesskey k, got;
    mk_accesskey(&k, cid, hash, BASE);
    assert_int_equal(store_accesskey_insert(s, &k), 0);
    assert_int_equal(store_accesskey_get(s, cid, k.id, &got), 0);
    eq_accesskey(&k, &got);
    accesskey_fini(&got);
    assert_int_equal(store_accesskey_get(s, NULL, k.id, &got), 0);
    accesskey_fini(&got);
    assert_int_equal(store_accesskey_get(s, other, k.id, &got), STORE_NOT_FOUND);
    assert_int_equal(store_accesskey_get_by_hash(s, hash, &got), 0);
    eq_accesskey(&k, &got);
    accesskey_fini(&got);

    k.name = "renamed";
    k.detail = "x";
    k.tm_expire = TM_NEVER;
    k.tm_update = BASE + 10;
    assert_int_equal(store_accesskey_update(s, &k), 0);
    assert_int_equal(store_accesskey_get(s, cid, k.id, &got), 0);
    eq_accesskey(&k, &got);
    accesskey_fini(&got);

    k.tm_delete = BASE + 20;
    assert_int_equal(store_accesskey_update(s, &k), 0);
    assert_int_equal(store_accesskey_get_by_hash(s, hash, &got), STORE_NOT_FOUND);
    assert_int_equal(store_accesskey_get(s, cid, k.id, &got), 0);
    assert_int_equal(got.tm_delete, BASE + 20);
    accesskey_fini(&got);

    struct accesskey missing;
    mk_accesskey(&missing, cid, "00", BASE);
    assert_int_equal(store_accesskey_get(s, NULL, missing.id, &got), STORE_NOT_FOUND);
    assert_int_equal(store_accesskey_update(s, &missing), STORE_NOT_FOUND);
}

static void test_conference_roundtrip(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1], other[ID_LEN + 1];
    id_new(cid);
    id_new(other);
    struct conference c, got;
    mk_conference(&c, cid, "direct.0123456789ab", BASE);
    assert_int_equal(store_conference_insert(s, &c), 0);
    assert_int_equal(store_conference_get(s, cid, c.id, &got), 0);
    eq_conference(&c, &got);
    assert_int_equal(got.n_call_ids, 0);
    assert_null(got.call_ids);
    conference_fini(&got);
    assert_int_equal(store_conference_get(s, NULL, c.id, &got), 0);
    conference_fini(&got);
    assert_int_equal(store_conference_get(s, other, c.id, &got), STORE_NOT_FOUND);
    assert_int_equal(store_conference_get_by_hash(s, "direct.0123456789ab", &got), 0);
    eq_conference(&c, &got);
    conference_fini(&got);
    assert_int_equal(store_conference_insert(s, &c), STORE_CONFLICT);

    /* The update writes everything but id, customer_id, type and tm_create. */
    struct conference u = c;
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", other);
    u.type = CONFERENCE_TYPE_CONFERENCE;
    u.tm_create = BASE + 777;
    u.status = CONFERENCE_TERMINATED;
    u.name = "renamed";
    u.detail = "d2";
    u.data = "{}";
    u.timeout = 0;
    snprintf(u.pre_flow_id, sizeof(u.pre_flow_id), "%s", ID_NIL);
    snprintf(u.post_flow_id, sizeof(u.post_flow_id), "%s", ID_NIL);
    snprintf(u.recording_id, sizeof(u.recording_id), "%s", ID_NIL);
    u.recording_ids = "[\"r1\",\"r2\",\"r3\"]";
    snprintf(u.transcribe_id, sizeof(u.transcribe_id), "%s", ID_NIL);
    u.transcribe_ids = "[]";
    snprintf(u.direct_hash, sizeof(u.direct_hash), "direct.ffffffffffff");
    u.tm_end = BASE + 900;
    u.tm_update = BASE + 901;
    u.tm_delete = BASE + 902;
    u.tm_timeout = 0;
    assert_int_equal(store_conference_update(s, &u), 0);
    assert_int_equal(store_conference_get(s, NULL, c.id, &got), 0);
    snprintf(u.customer_id, sizeof(u.customer_id), "%s", cid);
    u.type = c.type;
    u.tm_create = c.tm_create;
    eq_conference(&u, &got);
    conference_fini(&got);

    /* NULL JSON texts get their defaults; tm_end 0 reads back as 0. */
    struct conference d;
    mk_conference(&d, cid, "", BASE + 1);
    d.data = d.recording_ids = d.transcribe_ids = d.name = d.detail = NULL;
    assert_int_equal(store_conference_insert(s, &d), 0);
    assert_int_equal(store_conference_get(s, cid, d.id, &got), 0);
    assert_string_equal(got.data, "{}");
    assert_string_equal(got.recording_ids, "[]");
    assert_string_equal(got.transcribe_ids, "[]");
    assert_string_equal(got.name, "");
    assert_string_equal(got.detail, "");
    assert_int_equal(got.tm_end, 0);
    conference_fini(&got);

    struct conference missing;
    mk_conference(&missing, cid, "", BASE);
    assert_int_equal(store_conference_get(s, NULL, missing.id, &got), STORE_NOT_FOUND);
    assert_null(got.name);
    assert_int_equal(store_conference_update(s, &missing), STORE_NOT_FOUND);
}

static void test_conferencecall_roundtrip(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1], other[ID_LEN + 1];
    id_new(cid);
    id_new(other);
    struct conference c;
    mk_conference(&c, cid, "", BASE);
    assert_int_equal(store_conference_insert(s, &c), 0);
    struct conferencecall cc, got;
    mk_cc(&cc, &c, CC_JOINING, BASE + 1);
    cc.reference_type = CC_REFERENCE_CALL;
    assert_int_equal(store_conferencecall_insert(s, &cc), 0);
    assert_int_equal(store_conferencecall_get(s, cid, cc.id, &got), 0);
    eq_cc(&cc, &got);
    assert_int_equal(store_conferencecall_get(s, NULL, cc.id, &got), 0);
    eq_cc(&cc, &got);
    assert_int_equal(store_conferencecall_get(s, other, cc.id, &got), STORE_NOT_FOUND);
    assert_int_equal(store_conferencecall_insert(s, &cc), STORE_CONFLICT);

    /* The update writes status, tm_update and tm_delete only. */
    struct conferencecall u = cc;
    u.status = CC_LEAVED;
    u.tm_update = BASE + 10;
    u.tm_delete = BASE + 11;
    id_new(u.reference_id);
    u.reference_type = CC_REFERENCE_LINE;
    assert_int_equal(store_conferencecall_update(s, &u), 0);
    assert_int_equal(store_conferencecall_get(s, cid, cc.id, &got), 0);
    cc.status = CC_LEAVED;
    cc.tm_update = BASE + 10;
    cc.tm_delete = BASE + 11;
    eq_cc(&cc, &got);

    struct conferencecall missing;
    mk_cc(&missing, &c, CC_JOINED, BASE);
    assert_int_equal(store_conferencecall_get(s, NULL, missing.id, &got), STORE_NOT_FOUND);
    assert_int_equal(store_conferencecall_update(s, &missing), STORE_NOT_FOUND);

    /* A participant needs its conference. */
    struct conference ghost;
    mk_conference(&ghost, cid, "", BASE);
    mk_cc(&missing, &ghost, CC_JOINED, BASE);
    assert_int_equal(store_conferencecall_insert(s, &missing), STORE_ERROR);
}

/* --- uniqueness ----------------------------------------------------------------------------- */

static void test_username_unique(void **state)
{
    struct store *s = S(state);
    char c1[ID_LEN + 1], c2[ID_LEN + 1];
    id_new(c1);
    id_new(c2);
    struct agent a1, a2, got;
    mk_agent(&a1, c1, "alice", BASE);
    mk_agent(&a2, c2, "alice", BASE + 1);
    assert_int_equal(store_agent_insert(s, &a1), 0);
    assert_int_equal(store_agent_insert(s, &a2), STORE_CONFLICT); /* across customers too */
    assert_int_equal(store_agent_get(s, NULL, a2.id, &got), STORE_NOT_FOUND);

    /* Renaming onto a taken username conflicts as well. */
    a2.username = "bob";
    assert_int_equal(store_agent_insert(s, &a2), 0);
    a2.username = "alice";
    assert_int_equal(store_agent_update(s, &a2), STORE_CONFLICT);

    /* Once alice is deleted the name is free again, and the deleted one cannot come back. */
    a1.tm_delete = BASE + 5;
    assert_int_equal(store_agent_update(s, &a1), 0);
    assert_int_equal(store_agent_update(s, &a2), 0);
    assert_int_equal(store_agent_get_by_username(s, "alice", &got), 0);
    assert_string_equal(got.id, a2.id);
    agent_fini(&got);
    struct agent a3;
    mk_agent(&a3, c1, "alice", BASE + 2);
    assert_int_equal(store_agent_insert(s, &a3), STORE_CONFLICT);
    a1.tm_delete = TM_NEVER;
    assert_int_equal(store_agent_update(s, &a1), STORE_CONFLICT);
}

static void test_direct_hash_unique(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1];
    id_new(cid);
    struct conference a, b, e1, e2, got;
    mk_conference(&a, cid, "direct.aaaaaaaaaaaa", BASE);
    mk_conference(&b, cid, "direct.aaaaaaaaaaaa", BASE + 1);
    assert_int_equal(store_conference_insert(s, &a), 0);
    assert_int_equal(store_conference_insert(s, &b), STORE_CONFLICT);

    /* "" is not a hash: any number of conferences may have none. */
    mk_conference(&e1, cid, "", BASE + 2);
    mk_conference(&e2, cid, "", BASE + 3);
    assert_int_equal(store_conference_insert(s, &e1), 0);
    assert_int_equal(store_conference_insert(s, &e2), 0);
    assert_int_equal(store_conference_get_by_hash(s, "", &got), STORE_NOT_FOUND);

    /* Regenerating onto a taken hash conflicts. */
    snprintf(e1.direct_hash, sizeof(e1.direct_hash), "direct.aaaaaaaaaaaa");
    assert_int_equal(store_conference_update(s, &e1), STORE_CONFLICT);

    /* A deleted conference's hash stops working at once and can be reused. */
    a.tm_delete = BASE + 10;
    a.status = CONFERENCE_TERMINATING;
    assert_int_equal(store_conference_update(s, &a), 0);
    assert_int_equal(store_conference_get_by_hash(s, "direct.aaaaaaaaaaaa", &got), STORE_NOT_FOUND);
    assert_int_equal(store_conference_get(s, cid, a.id, &got), 0); /* still readable by id */
    assert_int_equal(got.tm_delete, BASE + 10);
    conference_fini(&got);
    assert_int_equal(store_conference_insert(s, &b), 0);
    assert_int_equal(store_conference_get_by_hash(s, "direct.aaaaaaaaaaaa", &got), 0);
    assert_string_equal(got.id, b.id);
    conference_fini(&got);
}

/* --- pagination ----------------------------------------------------------------------------- */

#define PAGE 10
#define N_ITEMS 25

/* One page of a list as tm_create values (at most PAGE). */
typedef size_t (*page_fn)(struct store *s, const char *cid, const struct store_page *p,
                          int64_t *tms);

static size_t page_customers(struct store *s, const char *cid, const struct store_page *p,
                             int64_t *tms)
{
    struct customer *a;
    size_t n;
    assert_int_equal(store_customer_list(s, p, &a, &n), 0);
    assert_true(n <= PAGE);
    for (size_t i = 0; i < n; i++)
        tms[i] = a[i].tm_create;
    store_free_customers(a, n);
    return n;
}

static size_t page_agents(struct store *s, const char *cid, const struct store_page *p,
                          int64_t *tms)
{
    struct agent *a;
    size_t n;
    assert_int_equal(store_agent_list(s, cid, p, &a, &n), 0);
    assert_true(n <= PAGE);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(a[i].customer_id, cid);
        tms[i] = a[i].tm_create;
    }
    store_free_agents(a, n);
    return n;
}

static size_t page_accesskeys(struct store *s, const char *cid, const struct store_page *p,
                              int64_t *tms)
{
    struct accesskey *a;
    size_t n;
    assert_int_equal(store_accesskey_list(s, cid, p, &a, &n), 0);
    assert_true(n <= PAGE);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(a[i].customer_id, cid);
        tms[i] = a[i].tm_create;
    }
    store_free_accesskeys(a, n);
    return n;
}

static size_t page_conferences(struct store *s, const char *cid, const struct store_page *p,
                               int64_t *tms)
{
    struct conference *a;
    size_t n;
    assert_int_equal(store_conference_list(s, cid, p, &a, &n), 0);
    assert_true(n <= PAGE);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(a[i].customer_id, cid);
        assert_int_equal(a[i].tm_delete, TM_NEVER);
        tms[i] = a[i].tm_create;
    }
    store_free_conferences(a, n);
    return n;
}

static size_t page_ccs(struct store *s, const char *cid, const struct store_page *p, int64_t *tms)
{
    struct conferencecall *a;
    size_t n;
    assert_int_equal(store_conferencecall_list(s, cid, NULL, p, &a, &n), 0);
    assert_true(n <= PAGE);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(a[i].customer_id, cid);
        tms[i] = a[i].tm_create;
    }
    free(a);
    return n;
}

/* Walks pages of PAGE items, each page starting below the last item of the one before, and
 * checks that the walk yields exactly want (newest first): no repeats, no skips. */
static void walk(struct store *s, const char *cid, page_fn fn, const int64_t *want, size_t n_want)
{
    struct store_page p = {.before_us = INT64_MAX, .limit = PAGE};
    size_t seen = 0;
    int pages = 0;
    for (;;) {
        int64_t tms[PAGE];
        size_t n = fn(s, cid, &p, tms);
        if (n == 0)
            break;
        pages++;
        for (size_t i = 0; i < n; i++) {
            assert_true(seen < n_want);
            assert_int_equal(tms[i], want[seen]);
            seen++;
        }
        p.before_us = tms[n - 1];
    }
    assert_int_equal(seen, n_want);
    assert_int_equal(pages, (int)((n_want + PAGE - 1) / PAGE));

    /* before_us 0 also means "from the newest". */
    struct store_page first = {.before_us = 0, .limit = PAGE};
    int64_t tms[PAGE];
    size_t n = fn(s, cid, &first, tms);
    assert_int_equal(n, n_want < PAGE ? n_want : PAGE);
    if (n)
        assert_int_equal(tms[0], want[0]);
}

/* 25 records of customer A (every 5th of them deleted when `deleted` is set) interleaved in time
 * with records of customer B; want gets A's listed ones, newest first. */
enum kind { K_CUSTOMER, K_AGENT, K_ACCESSKEY, K_CONFERENCE, K_CC };

static size_t fill(struct store *s, enum kind kind, const char *a, const char *b, bool deleted,
                   int64_t *want)
{
    size_t n_want = 0;
    struct conference ca, cb;
    if (kind == K_CC) {
        mk_conference(&ca, a, "", BASE - 10);
        mk_conference(&cb, b, "", BASE - 9);
        assert_int_equal(store_conference_insert(s, &ca), 0);
        assert_int_equal(store_conference_insert(s, &cb), 0);
    }
    for (int i = N_ITEMS - 1; i >= 0; i--) { /* inserted oldest last: order is by tm_create */
        for (int who = 0; who < 2; who++) {
            const char *cid = who ? b : a;
            int64_t tm = BASE + i * 10 + who;
            bool del = deleted && who == 0 && i % 5 == 0;
            char user[64], hash[65];
            snprintf(user, sizeof(user), "user%d.%d", i, who);
            snprintf(hash, sizeof(hash), "hash%d.%d", i, who);
            int rc = -99;
            switch (kind) {
            case K_CUSTOMER: {
                struct customer c;
                mk_customer(&c, tm);
                if (del)
                    c.tm_delete = tm + 1;
                rc = store_customer_insert(s, &c);
                break;
            }
            case K_AGENT: {
                struct agent x;
                mk_agent(&x, cid, user, tm);
                if (del)
                    x.tm_delete = tm + 1;
                rc = store_agent_insert(s, &x);
                break;
            }
            case K_ACCESSKEY: {
                struct accesskey x;
                mk_accesskey(&x, cid, hash, tm);
                if (del)
                    x.tm_delete = tm + 1;
                rc = store_accesskey_insert(s, &x);
                break;
            }
            case K_CONFERENCE: {
                struct conference x;
                mk_conference(&x, cid, "", tm);
                if (del)
                    x.tm_delete = tm + 1;
                rc = store_conference_insert(s, &x);
                break;
            }
            case K_CC: {
                struct conferencecall x;
                mk_cc(&x, who ? &cb : &ca, CC_LEAVED, tm);
                rc = store_conferencecall_insert(s, &x);
                break;
            }
            }
            assert_int_equal(rc, 0);
        }
    }
    for (int i = N_ITEMS - 1; i >= 0; i--) {
        if (kind == K_CUSTOMER) /* customers have no owner: B's are listed as well */
            want[n_want++] = BASE + i * 10 + 1;
        if (!(deleted && i % 5 == 0))
            want[n_want++] = BASE + i * 10;
    }
    return n_want;
}

static void check_pages(void **state, enum kind kind, page_fn fn, bool deleted)
{
    struct store *s = S(state);
    char a[ID_LEN + 1], b[ID_LEN + 1];
    id_new(a);
    id_new(b);
    int64_t want[2 * N_ITEMS];
    size_t n = fill(s, kind, a, b, deleted, want);
    walk(s, a, fn, want, n);
}

static void test_pages_customers(void **state)
{
    /* Deleted customers are hidden; customer 0's deleted records are i % 5 == 0. */
    struct store *s = S(state);
    int64_t want[2 * N_ITEMS];
    size_t n = fill(s, K_CUSTOMER, "", "", true, want);
    assert_int_equal(n, 45);
    walk(s, NULL, page_customers, want, n);
}

static void test_pages_agents(void **state)
{
    check_pages(state, K_AGENT, page_agents, true);
}

static void test_pages_accesskeys(void **state)
{
    check_pages(state, K_ACCESSKEY, page_accesskeys, true);
}

static void test_pages_conferences(void **state)
{
    check_pages(state, K_CONFERENCE, page_conferences, true);
}

static void test_pages_conferencecalls(void **state)
{
    check_pages(state, K_CC, page_ccs, false);
}

/* Every list hides deleted records. */
static void test_lists_and_deleted(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1];
    id_new(cid);
    struct agent a;
    mk_agent(&a, cid, "gone", BASE);
    a.tm_delete = BASE + 1;
    assert_int_equal(store_agent_insert(s, &a), 0);
    struct accesskey k;
    mk_accesskey(&k, cid, "h", BASE);
    k.tm_delete = BASE + 1;
    assert_int_equal(store_accesskey_insert(s, &k), 0);
    struct conference c;
    mk_conference(&c, cid, "direct.000000000000", BASE);
    c.tm_delete = BASE + 1;
    assert_int_equal(store_conference_insert(s, &c), 0);

    struct agent *as;
    struct accesskey *ks;
    struct conference *cs;
    size_t n;
    assert_int_equal(store_agent_list(s, cid, NULL, &as, &n), 0);
    assert_int_equal(n, 0);
    store_free_agents(as, n);
    assert_int_equal(store_accesskey_list(s, cid, NULL, &ks, &n), 0);
    assert_int_equal(n, 0);
    store_free_accesskeys(ks, n);
    assert_int_equal(store_conference_list(s, cid, NULL, &cs, &n), 0);
    assert_int_equal(n, 0);
    assert_null(cs);
    store_free_conferences(cs, n);
    store_free_customers(NULL, 0);
}

/* --- customer isolation --------------------------------------------------------------------- */

static void test_customer_isolation(void **state)
{
    struct store *s = S(state);
    char a[ID_LEN + 1], b[ID_LEN + 1];
    id_new(a);
    id_new(b);
    struct agent ag;
    mk_agent(&ag, b, "b-admin", BASE);
    struct accesskey k;
    mk_accesskey(&k, b, "bhash", BASE);
    struct conference c;
    mk_conference(&c, b, "direct.bbbbbbbbbbbb", BASE);
    struct conferencecall cc;
    mk_cc(&cc, &c, CC_JOINED, BASE + 1);
    assert_int_equal(store_agent_insert(s, &ag), 0);
    assert_int_equal(store_accesskey_insert(s, &k), 0);
    assert_int_equal(store_conference_insert(s, &c), 0);
    assert_int_equal(store_conferencecall_insert(s, &cc), 0);

    struct agent ag2;
    struct accesskey k2;
    struct conference c2;
    struct conferencecall cc2;
    assert_int_equal(store_agent_get(s, a, ag.id, &ag2), STORE_NOT_FOUND);
    assert_int_equal(store_accesskey_get(s, a, k.id, &k2), STORE_NOT_FOUND);
    assert_int_equal(store_conference_get(s, a, c.id, &c2), STORE_NOT_FOUND);
    assert_int_equal(store_conferencecall_get(s, a, cc.id, &cc2), STORE_NOT_FOUND);

    assert_int_equal(store_agent_get(s, b, ag.id, &ag2), 0);
    agent_fini(&ag2);
    assert_int_equal(store_accesskey_get(s, b, k.id, &k2), 0);
    accesskey_fini(&k2);
    assert_int_equal(store_conference_get(s, b, c.id, &c2), 0);
    conference_fini(&c2);
    assert_int_equal(store_conferencecall_get(s, b, cc.id, &cc2), 0);

    struct agent *as;
    struct accesskey *ks;
    struct conference *cs;
    struct conferencecall *ccs;
    size_t n = 99;
    assert_int_equal(store_agent_list(s, a, NULL, &as, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_accesskey_list(s, a, NULL, &ks, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_conference_list(s, a, NULL, &cs, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_conferencecall_list(s, a, NULL, NULL, &ccs, &n), 0);
    assert_int_equal(n, 0);
    /* Another customer's conference id as a filter shows nothing either. */
    assert_int_equal(store_conferencecall_list(s, a, c.id, NULL, &ccs, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_conferencecall_list(s, b, c.id, NULL, &ccs, &n), 0);
    assert_int_equal(n, 1);
    free(ccs);
}

/* --- participants --------------------------------------------------------------------------- */

static void check_all_reads(struct store *s, const struct conference *c,
                            const struct conferencecall *const *want, size_t n)
{
    struct conference got;
    assert_int_equal(store_conference_get(s, c->customer_id, c->id, &got), 0);
    eq_call_ids(&got, want, n);
    conference_fini(&got);
    assert_int_equal(store_conference_get_by_hash(s, c->direct_hash, &got), 0);
    eq_call_ids(&got, want, n);
    conference_fini(&got);

    struct conference *cs;
    size_t ncs, found = 0;
    assert_int_equal(store_conference_list(s, c->customer_id, NULL, &cs, &ncs), 0);
    for (size_t i = 0; i < ncs; i++) {
        if (!strcmp(cs[i].id, c->id)) {
            eq_call_ids(&cs[i], want, n);
            found++;
        }
    }
    store_free_conferences(cs, ncs);
    assert_int_equal(store_conference_list_unfinished(s, &cs, &ncs), 0);
    for (size_t i = 0; i < ncs; i++) {
        if (!strcmp(cs[i].id, c->id)) {
            eq_call_ids(&cs[i], want, n);
            found++;
        }
    }
    store_free_conferences(cs, ncs);
    assert_int_equal(found, 2);
}

static void check_active(struct store *s, const char *conference_id,
                         const struct conferencecall *const *want, size_t n)
{
    struct conferencecall *a;
    size_t na;
    assert_int_equal(store_conferencecall_list_active(s, conference_id, &a, &na), 0);
    assert_int_equal(na, n);
    for (size_t i = 0; i < n; i++)
        eq_cc(&a[i], want[i]);
    free(a);
}

static void test_call_ids(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1];
    id_new(cid);
    struct conference x, y;
    mk_conference(&x, cid, "direct.111111111111", BASE);
    mk_conference(&y, cid, "direct.222222222222", BASE + 1);
    assert_int_equal(store_conference_insert(s, &x), 0);
    assert_int_equal(store_conference_insert(s, &y), 0);

    /* Join order is insertion order, whatever tm_create says (here it decreases). */
    struct conferencecall p[5], q;
    static const enum cc_status st[5] = {CC_JOINED, CC_JOINING, CC_LEAVING, CC_LEAVED, CC_JOINED};
    for (int i = 0; i < 5; i++) {
        mk_cc(&p[i], &x, st[i], BASE + 100 - i);
        assert_int_equal(store_conferencecall_insert(s, &p[i]), 0);
        if (i == 1) {
            mk_cc(&q, &y, CC_JOINING, BASE + 50);
            assert_int_equal(store_conferencecall_insert(s, &q), 0);
        }
    }
    const struct conferencecall *w1[] = {&p[0], &p[1], &p[4]};
    check_all_reads(s, &x, w1, 3);
    const struct conferencecall *wy[] = {&q};
    check_all_reads(s, &y, wy, 1);

    const struct conferencecall *a1[] = {&p[0], &p[1], &p[2], &p[4]};
    check_active(s, x.id, a1, 4);
    const struct conferencecall *a_all[] = {&p[0], &p[1], &q, &p[2], &p[4]};
    check_active(s, NULL, a_all, 5);

    /* p1 leaves, p2 is gone: out of call_ids, and p2 out of the active ones. */
    p[1].status = CC_LEAVING;
    p[1].tm_update = BASE + 200;
    assert_int_equal(store_conferencecall_update(s, &p[1]), 0);
    p[2].status = CC_LEAVED;
    assert_int_equal(store_conferencecall_update(s, &p[2]), 0);
    const struct conferencecall *w2[] = {&p[0], &p[4]};
    check_all_reads(s, &x, w2, 2);
    const struct conferencecall *a2[] = {&p[0], &p[1], &p[4]};
    check_active(s, x.id, a2, 3);

    /* conferencecall_list by conference: newest first by tm_create. */
    struct conferencecall *l;
    size_t n;
    assert_int_equal(store_conferencecall_list(s, cid, x.id, NULL, &l, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l[i].id, p[i].id);
    free(l);
    assert_int_equal(store_conferencecall_list(s, cid, NULL, NULL, &l, &n), 0);
    assert_int_equal(n, 6);
    free(l);
    struct store_page pg = {.before_us = BASE + 99, .limit = 2};
    assert_int_equal(store_conferencecall_list(s, cid, x.id, &pg, &l, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].id, p[2].id);
    assert_string_equal(l[1].id, p[3].id);
    free(l);

    /* Not visible once everyone left. */
    for (int i = 0; i < 5; i++) {
        p[i].status = CC_LEAVED;
        assert_int_equal(store_conferencecall_update(s, &p[i]), 0);
    }
    check_all_reads(s, &x, NULL, 0);
    check_active(s, x.id, NULL, 0);
}

static void test_list_unfinished(void **state)
{
    struct store *s = S(state);
    char a[ID_LEN + 1], b[ID_LEN + 1];
    id_new(a);
    id_new(b);
    struct conference c[5];
    static const enum conference_status st[5] = {CONFERENCE_STARTING, CONFERENCE_PROGRESSING,
                                                 CONFERENCE_TERMINATING, CONFERENCE_TERMINATED,
                                                 CONFERENCE_PROGRESSING};
    for (int i = 0; i < 5; i++) {
        mk_conference(&c[i], i % 2 ? b : a, "", BASE + i);
        c[i].status = st[i];
        if (i == 2)
            c[i].tm_delete = BASE + 50; /* deleted but still terminating: unfinished */
        if (i == 3)
            c[i].tm_end = BASE + 60;
        assert_int_equal(store_conference_insert(s, &c[i]), 0);
    }
    struct conference *u;
    size_t n;
    assert_int_equal(store_conference_list_unfinished(s, &u, &n), 0);
    assert_int_equal(n, 4);
    int seen[5] = {0};
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(u[i].status, CONFERENCE_TERMINATED);
        for (int j = 0; j < 5; j++) {
            if (!strcmp(u[i].id, c[j].id)) {
                eq_conference(&c[j], &u[i]);
                seen[j]++;
            }
        }
    }
    assert_int_equal(seen[0] + seen[1] + seen[2] + seen[4], 4);
    assert_int_equal(seen[3], 0);
    store_free_conferences(u, n);
}

/* --- meta, newest_time, transactions -------------------------------------------------------- */

static void test_meta(void **state)
{
    struct store *s = S(state);
    char *v = (char *)"untouched";
    assert_int_equal(store_meta_get(s, "jwt_secret", &v), STORE_NOT_FOUND);
    assert_null(v);
    assert_int_equal(store_meta_set(s, "jwt_secret", "s3cr3t'; DROP TABLE meta; --"), 0);
    assert_int_equal(store_meta_get(s, "jwt_secret", &v), 0);
    assert_string_equal(v, "s3cr3t'; DROP TABLE meta; --");
    free(v);
    assert_int_equal(store_meta_set(s, "jwt_secret", "second"), 0);
    assert_int_equal(store_meta_set(s, "other", ""), 0);
    assert_int_equal(store_meta_get(s, "jwt_secret", &v), 0);
    assert_string_equal(v, "second");
    free(v);
    assert_int_equal(store_meta_get(s, "other", &v), 0);
    assert_string_equal(v, "");
    free(v);
}

static void test_newest_time(void **state)
{
    struct store *s = S(state);
    int64_t t = -1;
    assert_int_equal(store_newest_time(s, &t), 0);
    assert_int_equal(t, 0);

    char cid[ID_LEN + 1];
    id_new(cid);
    struct customer cu;
    mk_customer(&cu, BASE + 5);
    assert_int_equal(store_customer_insert(s, &cu), 0);
    assert_int_equal(store_newest_time(s, &t), 0);
    assert_int_equal(t, BASE + 5);

    struct conference c;
    mk_conference(&c, cid, "", BASE + 1);
    assert_int_equal(store_conference_insert(s, &c), 0);
    struct conferencecall cc;
    mk_cc(&cc, &c, CC_JOINED, BASE + 40);
    assert_int_equal(store_conferencecall_insert(s, &cc), 0);
    struct agent a;
    mk_agent(&a, cid, "x", BASE + 30);
    assert_int_equal(store_agent_insert(s, &a), 0);
    struct accesskey k;
    mk_accesskey(&k, cid, "h", BASE + 20);
    assert_int_equal(store_accesskey_insert(s, &k), 0);
    assert_int_equal(store_newest_time(s, &t), 0);
    assert_int_equal(t, BASE + 40);
}

static void test_transactions(void **state)
{
    struct store *s = S(state);
    struct customer c, got;
    mk_customer(&c, BASE);
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_customer_insert(s, &c), 0);
    assert_int_equal(store_rollback(s), 0);
    assert_int_equal(store_customer_get(s, c.id, &got), STORE_NOT_FOUND);

    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_customer_insert(s, &c), 0);
    assert_int_equal(store_meta_set(s, "k", "v"), 0);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_customer_get(s, c.id, &got), 0);
    customer_fini(&got);

    /* A failed statement inside a transaction leaves it usable. */
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_customer_insert(s, &c), STORE_CONFLICT);
    c.tm_update = BASE + 9;
    assert_int_equal(store_customer_update(s, &c), 0);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_customer_get(s, c.id, &got), 0);
    assert_int_equal(got.tm_update, BASE + 9);
    customer_fini(&got);
}

/* --- files, reopening, migrations ----------------------------------------------------------- */

static int64_t db_pragma(const char *file, const char *sql, char *text, size_t cap)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(file, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    int64_t v = 0;
    if (rc == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        if (text)
            snprintf(text, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    } else {
        assert_int_equal(rc, SQLITE_DONE);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_reopen(void **state)
{
    (void)state;
    char top[64], dir[128], file[160];
    snprintf(top, sizeof(top), "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(top));
    snprintf(dir, sizeof(dir), "%s/a/b", top); /* missing parents are created */
    snprintf(file, sizeof(file), "%s/conferenced.db", dir);

    struct store *s;
    assert_int_equal(store_sqlite_open(dir, &s), 0);
    char cid[ID_LEN + 1];
    id_new(cid);
    struct conference c;
    mk_conference(&c, cid, "direct.cccccccccccc", BASE);
    struct conferencecall cc;
    mk_cc(&cc, &c, CC_JOINED, BASE + 1);
    struct agent a;
    mk_agent(&a, cid, "persist", BASE + 2);
    assert_int_equal(store_conference_insert(s, &c), 0);
    assert_int_equal(store_conferencecall_insert(s, &cc), 0);
    assert_int_equal(store_agent_insert(s, &a), 0);
    assert_int_equal(store_meta_set(s, "jwt_secret", "abc"), 0);

    /* While open, the directory belongs to this store: a second one cannot open it. */
    struct store *second = NULL;
    assert_int_equal(store_sqlite_open(dir, &second), STORE_BUSY);
    assert_null(second);
    store_close(s);

    /* Closed: WAL mode on disk, and another connection sees the committed rows. */
    char mode[16];
    db_pragma(file, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");
    assert_int_equal(db_pragma(file, "SELECT count(*) FROM conferences", NULL, 0), 1);

    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(db_pragma(file, "PRAGMA user_version", NULL, 0), EXPECTED_SCHEMA_VERSION);

    /* Reopening migrates nothing and keeps everything. */
    assert_int_equal(store_sqlite_open(dir, &s), 0);
    struct conference got;
    assert_int_equal(store_conference_get(s, cid, c.id, &got), 0);
    eq_conference(&c, &got);
    const struct conferencecall *w[] = {&cc};
    eq_call_ids(&got, w, 1);
    conference_fini(&got);
    struct agent ga;
    assert_int_equal(store_agent_get_by_username(s, "persist", &ga), 0);
    eq_agent(&a, &ga);
    agent_fini(&ga);
    char *v;
    assert_int_equal(store_meta_get(s, "jwt_secret", &v), 0);
    assert_string_equal(v, "abc");
    free(v);
    int64_t t;
    assert_int_equal(store_newest_time(s, &t), 0);
    assert_int_equal(t, BASE + 2);
    store_close(s);
    assert_int_equal(db_pragma(file, "PRAGMA user_version", NULL, 0), EXPECTED_SCHEMA_VERSION);

    /* A schema newer than this server is refused rather than misread. */
    db_pragma(file, "PRAGMA user_version = 999", NULL, 0);
    s = (struct store *)&t;
    assert_int_equal(store_sqlite_open(dir, &s), STORE_ERROR);
    assert_null(s);

    remove_dir(dir);
    snprintf(dir, sizeof(dir), "%s/a", top);
    rmdir(dir);
    rmdir(top);
}

static void test_open_errors(void **state)
{
    (void)state;
    char top[64], path[128];
    snprintf(top, sizeof(top), "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(top));
    snprintf(path, sizeof(path), "%s/file", top);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    struct store *s;
    assert_int_equal(store_sqlite_open(path, &s), STORE_ERROR); /* a file, not a directory */
    assert_null(s);
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/x", path);
    assert_int_equal(store_sqlite_open(sub, &s), STORE_ERROR); /* parent is a file */
    assert_null(s);
    unlink(path);
    rmdir(top);
}

#define BOTH(f)                                                                                    \
    cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)"memory"),                \
        cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)"file")

/* --- calls ---------------------------------------------------------------------------------- */

static void mk_call(struct call *c, const char *cid, int64_t t)
{
    memset(c, 0, sizeof(*c));
    id_new(c->id);
    memcpy(c->customer_id, cid, ID_LEN + 1);
    snprintf(c->owner_type, sizeof(c->owner_type), "agent");
    id_new(c->owner_id);
    id_new(c->flow_id);
    id_new(c->activeflow_id);
    snprintf(c->type, sizeof(c->type), "conference");
    memcpy(c->master_call_id, ID_NIL, ID_LEN + 1);
    c->source = strdup("{\"type\":\"sip\",\"target\":\"alice@example.com\"}");
    c->destination = strdup("{\"type\":\"sip\",\"target\":\"direct.0123456789ab\"}");
    c->status = CALL_RINGING;
    c->action = strdup("{\"type\":\"answer\"}");
    c->direction = CALL_INCOMING;
    c->metadata = strdup("{}");
    c->tm_ringing = t;
    c->tm_create = c->tm_update = t;
    c->tm_delete = TM_NEVER;
}

static void test_calls(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1], other[ID_LEN + 1];
    id_new(cid);
    id_new(other);
    struct call a, b, got;
    mk_call(&a, cid, BASE + 1);
    mk_call(&b, cid, BASE + 2);
    assert_int_equal(store_call_insert(s, &a), 0);
    assert_int_equal(store_call_insert(s, &b), 0);
    assert_int_equal(store_call_get(s, cid, a.id, &got), 0);
    assert_string_equal(got.source, a.source);
    assert_string_equal(got.owner_type, "agent");
    assert_int_equal(got.status, CALL_RINGING);
    assert_int_equal(got.direction, CALL_INCOMING);
    assert_int_equal(got.tm_ringing, BASE + 1);
    assert_int_equal(got.tm_progressing, 0);
    assert_int_equal(got.tm_hangup, 0);
    assert_string_equal(got.dialog, ""); /* none saved */
    call_fini(&got);
    assert_int_equal(store_call_get(s, other, a.id, &got), STORE_NOT_FOUND);
    /* the saved SIP dialog of an answered call (schema 5) */
    b.dialog = strdup("{\"call_id\":\"x@y\"}");
    assert_int_equal(store_call_update(s, &b), 0);

    a.status = CALL_HANGUP;
    a.tm_hangup = BASE + 9;
    snprintf(a.hangup_by, sizeof(a.hangup_by), "remote");
    snprintf(a.hangup_reason, sizeof(a.hangup_reason), "normal");
    assert_int_equal(store_call_update(s, &a), 0);
    assert_int_equal(store_call_get(s, NULL, a.id, &got), 0);
    assert_int_equal(got.status, CALL_HANGUP);
    assert_string_equal(got.hangup_by, "remote");
    assert_int_equal(got.tm_hangup, BASE + 9);
    call_fini(&got);

    struct call *list;
    size_t n;
    assert_int_equal(store_call_list_live(s, &list, &n), 0);
    assert_int_equal(n, 1); /* b is still ringing */
    assert_string_equal(list[0].id, b.id);
    assert_string_equal(list[0].dialog, "{\"call_id\":\"x@y\"}");
    store_free_calls(list, n);

    b.tm_delete = BASE + 10;
    assert_int_equal(store_call_update(s, &b), 0);
    struct store_page p = {INT64_MAX, 10};
    assert_int_equal(store_call_list(s, cid, &p, &list, &n), 0);
    assert_int_equal(n, 1); /* deleted calls are not listed */
    assert_string_equal(list[0].id, a.id);
    store_free_calls(list, n);
    call_fini(&a);
    call_fini(&b);
}

/* Flows, numbers (unique among the not deleted) and activeflows round-trip. */
static void test_flows_numbers_activeflows(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1], other[ID_LEN + 1];
    id_new(cid);
    id_new(other);
    struct flow f = {0}, gf;
    id_new(f.id);
    memcpy(f.customer_id, cid, sizeof(f.customer_id));
    str_copy(f.type, sizeof(f.type), "flow");
    f.name = "n";
    f.detail = "d";
    f.actions = "[{\"type\":\"answer\"}]";
    memcpy(f.on_complete_flow_id, ID_NIL, sizeof(f.on_complete_flow_id));
    f.tm_create = f.tm_update = BASE;
    f.tm_delete = TM_NEVER;
    assert_int_equal(store_flow_insert(s, &f), 0);
    assert_int_equal(store_flow_get(s, cid, f.id, &gf), 0);
    assert_string_equal(gf.actions, f.actions);
    assert_string_equal(gf.name, "n");
    flow_fini(&gf);
    assert_int_equal(store_flow_get(s, other, f.id, &gf), STORE_NOT_FOUND);
    f.tm_delete = BASE + 5;
    assert_int_equal(store_flow_update(s, &f), 0);
    struct flow *fl;
    size_t n;
    assert_int_equal(store_flow_list(s, cid, NULL, &fl, &n), 0);
    assert_int_equal(n, 0); /* deleted */
    store_free_flows(fl, n);

    struct number a = {0}, b = {0}, gn;
    id_new(a.id);
    memcpy(a.customer_id, cid, sizeof(a.customer_id));
    str_copy(a.number, sizeof(a.number), "+15551234567");
    str_copy(a.type, sizeof(a.type), "normal");
    str_copy(a.status, sizeof(a.status), "active");
    memcpy(a.call_flow_id, f.id, sizeof(a.call_flow_id));
    memcpy(a.message_flow_id, ID_NIL, sizeof(a.message_flow_id));
    a.tm_create = a.tm_update = a.tm_purchase = BASE;
    a.tm_delete = TM_NEVER;
    b = a;
    id_new(b.id);
    memcpy(b.customer_id, other, sizeof(b.customer_id));
    assert_int_equal(store_number_insert(s, &a), 0);
    assert_int_equal(store_number_insert(s, &b), STORE_CONFLICT);
    assert_int_equal(store_number_get_by_number(s, "+15551234567", &gn), 0);
    assert_string_equal(gn.id, a.id);
    assert_string_equal(gn.call_flow_id, f.id);
    number_fini(&gn);
    a.tm_delete = BASE + 1;
    str_copy(a.status, sizeof(a.status), "deleted");
    assert_int_equal(store_number_update(s, &a), 0);
    assert_int_equal(store_number_get_by_number(s, "+15551234567", &gn), STORE_NOT_FOUND);
    assert_int_equal(store_number_insert(s, &b), 0); /* free again */

    struct activeflow af = {0}, ga;
    id_new(af.id);
    memcpy(af.customer_id, cid, sizeof(af.customer_id));
    memcpy(af.flow_id, f.id, sizeof(af.flow_id));
    af.status = ACTIVEFLOW_RUNNING;
    str_copy(af.reference_type, sizeof(af.reference_type), "call");
    id_new(af.reference_id);
    memcpy(af.on_complete_flow_id, ID_NIL, sizeof(af.on_complete_flow_id));
    memcpy(af.forward_action_id, ID_NIL, sizeof(af.forward_action_id));
    af.current_action = "{\"type\":\"answer\"}";
    af.executed_actions = "[]";
    af.tm_create = af.tm_update = BASE;
    af.tm_delete = TM_NEVER;
    assert_int_equal(store_activeflow_insert(s, &af), 0);
    struct activeflow *al;
    assert_int_equal(store_activeflow_list_running(s, &al, &n), 0);
    assert_int_equal(n, 1);
    store_free_activeflows(al, n);
    af.status = ACTIVEFLOW_ENDED;
    af.executed_actions = "[{\"type\":\"answer\"}]";
    assert_int_equal(store_activeflow_update(s, &af), 0);
    assert_int_equal(store_activeflow_get(s, cid, af.id, &ga), 0);
    assert_int_equal(ga.status, ACTIVEFLOW_ENDED);
    assert_string_equal(ga.executed_actions, af.executed_actions);
    activeflow_fini(&ga);
    assert_int_equal(store_activeflow_list_running(s, &al, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_activeflow_list(s, cid, NULL, &al, &n), 0);
    assert_int_equal(n, 1);
    store_free_activeflows(al, n);
}

static void mk_recording(struct recording *r, const char *cid, const char *ref, int64_t t)
{
    memset(r, 0, sizeof(*r));
    id_new(r->id);
    memcpy(r->customer_id, cid, ID_LEN + 1);
    snprintf(r->owner_type, sizeof(r->owner_type), "conference");
    memcpy(r->owner_id, ref, ID_LEN + 1);
    memcpy(r->activeflow_id, ID_NIL, ID_LEN + 1);
    snprintf(r->reference_type, sizeof(r->reference_type), "confbridge");
    memcpy(r->reference_id, ref, ID_LEN + 1);
    r->status = RECORDING_RECORDING;
    snprintf(r->format, sizeof(r->format), "wav");
    memcpy(r->on_end_flow_id, ID_NIL, ID_LEN + 1);
    r->max_ms = 86400000;
    r->tm_start = t;
    r->tm_create = r->tm_update = t;
    r->tm_delete = TM_NEVER;
}

static void test_recordings(void **state)
{
    struct store *s = S(state);
    char cid[ID_LEN + 1], other[ID_LEN + 1], conf1[ID_LEN + 1], conf2[ID_LEN + 1];
    id_new(cid);
    id_new(other);
    id_new(conf1);
    id_new(conf2);
    struct recording a, b, c, got;
    mk_recording(&a, cid, conf1, BASE + 1);
    mk_recording(&b, cid, conf2, BASE + 2);
    mk_recording(&c, cid, conf1, BASE + 3);
    assert_int_equal(store_recording_insert(s, &a), 0);
    assert_int_equal(store_recording_insert(s, &b), 0);
    assert_int_equal(store_recording_insert(s, &c), 0);
    assert_int_equal(store_recording_insert(s, &c), STORE_CONFLICT);
    assert_int_equal(store_recording_get(s, cid, a.id, &got), 0);
    assert_string_equal(got.reference_type, "confbridge");
    assert_int_equal(got.status, RECORDING_RECORDING);
    assert_int_equal(got.tm_end, 0);
    assert_int_equal(store_recording_get(s, other, a.id, &got), STORE_NOT_FOUND);

    /* unfinished: a, b, c; ended ones drop out */
    struct recording *list;
    size_t n;
    assert_int_equal(store_recording_list_unfinished(s, &list, &n), 0);
    assert_int_equal(n, 3);
    store_free_recordings(list, n);
    a.status = RECORDING_ENDED;
    a.duration_ms = 5020;
    a.size = 44 + 5020 * 16;
    a.frames_dropped = 2;
    a.tm_end = BASE + 9;
    assert_int_equal(store_recording_update(s, &a), 0);
    assert_int_equal(store_recording_get(s, NULL, a.id, &got), 0);
    assert_int_equal(got.status, RECORDING_ENDED);
    assert_int_equal(got.duration_ms, 5020);
    assert_int_equal(got.size, 44 + 5020 * 16);
    assert_int_equal(got.frames_dropped, 2);
    assert_int_equal(got.tm_end, BASE + 9);
    assert_int_equal(store_recording_list_unfinished(s, &list, &n), 0);
    assert_int_equal(n, 2);
    store_free_recordings(list, n);

    /* lists: newest first, filtered by owner or reference, paged, deleted ones left out */
    assert_int_equal(store_recording_list(s, cid, NULL, NULL, NULL, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, c.id);
    store_free_recordings(list, n);
    assert_int_equal(store_recording_list(s, cid, conf1, NULL, NULL, &list, &n), 0);
    assert_int_equal(n, 2);
    store_free_recordings(list, n);
    assert_int_equal(store_recording_list(s, cid, NULL, conf2, NULL, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, b.id);
    store_free_recordings(list, n);
    struct store_page page = {BASE + 3, 1};
    assert_int_equal(store_recording_list(s, cid, NULL, NULL, &page, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, b.id);
    store_free_recordings(list, n);
    b.tm_delete = BASE + 10;
    assert_int_equal(store_recording_update(s, &b), 0);
    assert_int_equal(store_recording_list(s, cid, NULL, NULL, NULL, &list, &n), 0);
    assert_int_equal(n, 2);
    store_free_recordings(list, n);
    assert_int_equal(store_recording_list(s, other, NULL, NULL, NULL, &list, &n), 0);
    assert_int_equal(n, 0);

    /* a call's recording ids: only store_call_set_recording writes them */
    struct call call;
    mk_call(&call, cid, BASE + 4);
    assert_int_equal(store_call_insert(s, &call), 0);
    struct call gc;
    assert_int_equal(store_call_get(s, NULL, call.id, &gc), 0);
    assert_string_equal(gc.recording_id, ID_NIL);
    assert_string_equal(gc.recording_ids, "[]");
    call_fini(&gc);
    assert_int_equal(store_call_set_recording(s, call.id, a.id, "[\"x\"]", BASE + 5), 0);
    assert_int_equal(store_call_update(s, &call), 0); /* a stale copy does not undo it */
    assert_int_equal(store_call_get(s, NULL, call.id, &gc), 0);
    assert_string_equal(gc.recording_id, a.id);
    assert_string_equal(gc.recording_ids, "[\"x\"]");
    call_fini(&gc);
    call_fini(&call);
    char nobody[ID_LEN + 1];
    id_new(nobody);
    assert_int_equal(store_call_set_recording(s, nobody, ID_NIL, "[]", BASE), STORE_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_customer_roundtrip),
        BOTH(test_agent_roundtrip),
        BOTH(test_accesskey_roundtrip),
        BOTH(test_conference_roundtrip),
        BOTH(test_conferencecall_roundtrip),
        BOTH(test_username_unique),
        BOTH(test_direct_hash_unique),
        BOTH(test_pages_customers),
        BOTH(test_pages_agents),
        BOTH(test_pages_accesskeys),
        BOTH(test_pages_conferences),
        BOTH(test_pages_conferencecalls),
        BOTH(test_lists_and_deleted),
        BOTH(test_customer_isolation),
        BOTH(test_call_ids),
        BOTH(test_list_unfinished),
        BOTH(test_meta),
        BOTH(test_newest_time),
        BOTH(test_transactions),
        BOTH(test_calls),
        BOTH(test_flows_numbers_activeflows),
        BOTH(test_recordings),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_open_errors),
    };
    log_set_level(LOG_LEVEL_WARN); /* expected failures still log at error level */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
