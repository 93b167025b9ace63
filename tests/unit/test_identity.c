/* Identity: the login throttle on a manual clock, then logins, sessions, revocations, the
 * operator's bootstrap and "passwd" against an in-memory store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "identity/identity.h"
#include "identity/throttle.h"

#define MIN_US INT64_C(60000000)
#define SEC_US INT64_C(1000000)

/* ---- the throttle ---- */

static void test_throttle_burst_then_rate(void **state)
{
    (void)state;
    struct login_throttle *t = login_throttle_create(10);
    int64_t now = INT64_C(1000) * MIN_US, retry = 0;
    struct login_ticket tk;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(login_throttle_begin(t, "alice", "127.0.0.2", now, &tk, &retry), 0);
        login_throttle_end(t, &tk, true, now);
    }
    assert_int_equal(login_throttle_begin(t, "alice", "127.0.0.3", now, &tk, &retry),
                     LOGIN_THROTTLE_USERNAME);
    assert_int_equal(retry, 6);
    assert_int_equal(login_throttle_begin(t, "bob", "127.0.0.2", now, &tk, &retry),
                     LOGIN_THROTTLE_ADDRESS);
    assert_int_equal(retry, 6);
    /* Another username from another address is not affected. */
    assert_int_equal(login_throttle_begin(t, "bob", "127.0.0.3", now, &tk, &retry), 0);
    login_throttle_end(t, &tk, false, now);
    /* One more failure every 6 s. */
    now += 6 * SEC_US - 1;
    assert_int_equal(login_throttle_begin(t, "alice", NULL, now, &tk, &retry),
                     LOGIN_THROTTLE_USERNAME);
    assert_int_equal(retry, 1);
    now += 1;
    assert_int_equal(login_throttle_begin(t, "alice", NULL, now, &tk, &retry), 0);
    login_throttle_end(t, &tk, true, now);
    assert_int_equal(login_throttle_begin(t, "alice", NULL, now, &tk, &retry),
                     LOGIN_THROTTLE_USERNAME);
    /* A quiet minute gives the whole budget back. */
    now += MIN_US;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(login_throttle_begin(t, "alice", "127.0.0.2", now, &tk, &retry), 0);
        login_throttle_end(t, &tk, true, now);
    }
    login_throttle_destroy(t);
}

static void test_throttle_successes_cost_nothing(void **state)
{
    (void)state;
    struct login_throttle *t = login_throttle_create(3);
    int64_t now = 5 * MIN_US, retry;
    struct login_ticket tk;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(login_throttle_begin(t, "carol", "10.0.0.1", now, &tk, &retry), 0);
        login_throttle_end(t, &tk, false, now);
    }
    /* Two failures, then a success: the success neither counts nor resets the failures. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(login_throttle_begin(t, "carol", "10.0.0.1", now, &tk, &retry), 0);
        login_throttle_end(t, &tk, true, now);
    }
    assert_int_equal(login_throttle_begin(t, "carol", "10.0.0.1", now, &tk, &retry), 0);
    login_throttle_end(t, &tk, false, now);
    assert_int_equal(login_throttle_begin(t, "carol", "10.0.0.1", now, &tk, &retry), 0);
    login_throttle_end(t, &tk, true, now);
    assert_int_equal(login_throttle_begin(t, "carol", "10.0.0.9", now, &tk, &retry),
                     LOGIN_THROTTLE_USERNAME);
    login_throttle_destroy(t);
}

static void test_throttle_counts_attempts_in_flight(void **state)
{
    (void)state;
    struct login_throttle *t = login_throttle_create(10);
    int64_t now = 7 * MIN_US, retry;
    struct login_ticket tk[150];
    int admitted = 0;
    for (int i = 0; i < 150; i++)
        if (login_throttle_begin(t, "dave", "127.0.0.5", now, &tk[admitted], &retry) == 0)
            admitted++;
    assert_int_equal(admitted, 10);
    /* Ends that succeed give their reservations back. */
    for (int i = 0; i < admitted; i++)
        login_throttle_end(t, &tk[i], false, now);
    assert_int_equal(login_throttle_begin(t, "dave", "127.0.0.5", now, &tk[0], &retry), 0);
    login_throttle_end(t, &tk[0], false, now);
    login_throttle_destroy(t);
}

static void test_throttle_forgets(void **state)
{
    (void)state;
    struct login_throttle *t = login_throttle_create(10);
    int64_t now = 9 * MIN_US, retry;
    struct login_ticket tk;
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_int_equal(login_throttle_begin(t, name, NULL, now, &tk, &retry), 0);
        login_throttle_end(t, &tk, true, now);
    }
    assert_int_equal(login_throttle_size(t), 2000);
    /* A minute later those failures no longer matter: new keys push them out. */
    now += MIN_US;
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "other%d", i);
        assert_int_equal(login_throttle_begin(t, name, NULL, now, &tk, &retry), 0);
        login_throttle_end(t, &tk, false, now);
    }
    assert_true(login_throttle_size(t) <= 2000);
    login_throttle_destroy(t);
}

/* ---- identity ---- */

struct revocation {
    char ids[16][ID_LEN + 1];
    char why[16][64];
    int n;
};

struct fx {
    uv_loop_t loop;
    struct store *store;
    struct identity *id;
    struct revocation rev;
    char op_token[1024];
};

static void on_revoked(void *ctx, const char *credential_id, const char *why)
{
    struct revocation *r = ctx;
    assert_true(r->n < 16);
    snprintf(r->ids[r->n], sizeof(r->ids[r->n]), "%s", credential_id);
    snprintf(r->why[r->n], sizeof(r->why[r->n]), "%s", why);
    r->n++;
}

struct result {
    int done, rc;
    char token[1024];
    struct error e;
    struct agent a;
};

static void login_cb(void *arg, int rc, const char *username, const char *token,
                     const struct error *e)
{
    struct result *r = arg;
    r->done++;
    r->rc = rc;
    if (token)
        snprintf(r->token, sizeof(r->token), "%s", token);
    if (e)
        r->e = *e;
}

static void agent_cb(void *arg, int rc, const struct agent *a, const struct error *e)
{
    struct result *r = arg;
    r->done++;
    r->rc = rc;
    if (a) {
        memcpy(r->a.id, a->id, sizeof(r->a.id));
        memcpy(r->a.customer_id, a->customer_id, sizeof(r->a.customer_id));
    }
    if (e)
        r->e = *e;
}

static void wait_done(struct fx *f, const struct result *r, int n)
{
    for (int i = 0; i < 100000 && r->done < n; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r->done, n);
}

static int login(struct fx *f, const char *user, const char *pw, const char *ip, struct result *r)
{
    memset(r, 0, sizeof(*r));
    struct error e;
    int rc = identity_login(f->id, user, pw, ip, login_cb, r, &e, NULL);
    if (rc < 0) {
        r->rc = rc;
        r->e = e;
        return rc;
    }
    wait_done(f, r, 1);
    return r->rc;
}

static void make(struct fx *f, const struct identity_options *o)
{
    struct identity_options io = *o;
    io.fast_hash = true;
    io.listener.revoked = on_revoked;
    io.listener.ctx = &f->rev;
    f->id = identity_create(&f->loop, f->store, NULL, &io);
}

static int setup_opts(void **state, const struct identity_options *o, bool bootstrap)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    make(f, o);
    if (bootstrap) {
        char *gen = NULL;
        assert_int_equal(identity_bootstrap(f->id, "op@example.com", "operator-pass", &gen), 1);
        assert_null(gen);
        struct result r;
        assert_int_equal(login(f, "op@example.com", "operator-pass", "127.0.0.1", &r), 0);
        snprintf(f->op_token, sizeof(f->op_token), "%s", r.token);
    }
    *state = f;
    return 0;
}

static int setup(void **state)
{
    struct identity_options o = {0};
    return setup_opts(state, &o, true);
}

static int setup_empty(void **state)
{
    struct identity_options o = {0};
    return setup_opts(state, &o, false);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    identity_destroy(f->id);
    store_close(f->store);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void op_principal(struct fx *f, struct principal *p)
{
    struct error e;
    assert_int_equal(identity_authenticate(f->id, f->op_token, tm_now_us(), p, &e), 0);
}

/* Creates an agent of the operator's customer; returns its id in out. */
static void new_agent(struct fx *f, const char *user, const char *pw, char out[ID_LEN + 1])
{
    struct principal p;
    op_principal(f, &p);
    struct agent_req req = {.username = user, .password = pw};
    struct result r = {0};
    struct error e;
    assert_int_equal(identity_agent_create(f->id, p.customer_id, &req, agent_cb, &r, &e), 0);
    wait_done(f, &r, 1);
    assert_int_equal(r.rc, 0);
    memcpy(out, r.a.id, ID_LEN + 1);
}

static void test_login_failures_throttled(void **state)
{
    struct fx *f = *state;
    char aid[ID_LEN + 1];
    new_agent(f, "eve@example.com", "right-password", aid);
    struct result r;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(login(f, "eve@example.com", "wrong-password", "127.0.0.2", &r),
                         -ERR_UNAUTHENTICATED);
        assert_string_equal(r.e.reason, "INVALID_CREDENTIALS");
    }
    /* The 11th is refused before any hashing, even with the right password. */
    struct error e;
    int retry = 0;
    assert_int_equal(identity_login(f->id, "eve@example.com", "right-password", "127.0.0.3",
                                    login_cb, &r, &e, &retry),
                     -ERR_RESOURCE_EXHAUSTED);
    assert_string_equal(e.reason, "TOO_MANY_FAILED_LOGINS");
    assert_non_null(strstr(e.message, "login_failures_per_minute=10"));
    assert_non_null(strstr(e.message, "username"));
    assert_true(retry >= 1 && retry <= 6);
    /* The address that failed is throttled for other usernames too. */
    assert_int_equal(login(f, "op@example.com", "operator-pass", "127.0.0.2", &r),
                     -ERR_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r.e.message, "127.0.0.2"));
    /* Everyone else logs in. */
    assert_int_equal(login(f, "op@example.com", "operator-pass", "127.0.0.4", &r), 0);
    /* Unknown usernames are budgeted like known ones. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(login(f, "nobody@example.com", "whatever-1", NULL, &r),
                         -ERR_UNAUTHENTICATED);
    assert_int_equal(login(f, "nobody@example.com", "whatever-1", NULL, &r),
                     -ERR_RESOURCE_EXHAUSTED);
}

static void test_parallel_wrong_logins_mostly_not_hashed(void **state)
{
    struct fx *f = *state;
    static struct result r[150];
    int started = 0, refused = 0;
    for (int i = 0; i < 150; i++) {
        struct error e;
        memset(&r[i], 0, sizeof(r[i]));
        int rc = identity_login(f->id, "op@example.com", "wrong-password", "127.0.0.9", login_cb,
                                &r[i], &e, NULL);
        if (rc == 0)
            started++;
        else if (rc == -ERR_RESOURCE_EXHAUSTED)
            refused++;
    }
    assert_int_equal(started, 10);
    assert_int_equal(refused, 140);
    for (int i = 0; i < 10; i++) {
        wait_done(f, &r[i], 1);
        assert_int_equal(r[i].rc, -ERR_UNAUTHENTICATED);
    }
}

static void test_queue_full(void **state)
{
    (void)state;
    /* Real hashing (tens of ms) with one worker and a queue of one. */
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    struct identity_options io = {.login_workers = 1, .login_queue = 1};
    f->id = identity_create(&f->loop, f->store, NULL, &io);
    struct result r[3];
    struct error e;
    int retry = 0;
    memset(r, 0, sizeof(r));
    assert_int_equal(
        identity_login(f->id, "a@x", "password-1", "127.0.0.1", login_cb, &r[0], &e, &retry), 0);
    assert_int_equal(
        identity_login(f->id, "b@x", "password-1", "127.0.0.2", login_cb, &r[1], &e, &retry), 0);
    assert_int_equal(
        identity_login(f->id, "c@x", "password-1", "127.0.0.3", login_cb, &r[2], &e, &retry),
        -ERR_RESOURCE_EXHAUSTED);
    assert_string_equal(e.reason, "PASSWORD_QUEUE_FULL");
    assert_non_null(strstr(e.message, "login_queue=1"));
    assert_int_equal(retry, 1);
    wait_done(f, &r[0], 1);
    wait_done(f, &r[1], 1);
    /* The refused attempt did not count as a failure of c@x. */
    assert_int_equal(
        identity_login(f->id, "c@x", "password-1", "127.0.0.3", login_cb, &r[2], &e, NULL), 0);
    /* Shutting down answers what never ran (nothing here: it runs) and refuses new work. */
    identity_shutdown(f->id);
    assert_int_equal(r[2].done, 1);
    assert_int_equal(
        identity_login(f->id, "d@x", "password-1", "127.0.0.4", login_cb, &r[0], &e, NULL),
        -ERR_UNAVAILABLE);
    teardown((void **)&f);
}

static void test_shutdown_answers_pending(void **state)
{
    (void)state;
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(store_sqlite_open(":memory:", &f->store), 0);
    struct identity_options io = {.login_workers = 1, .login_queue = 8};
    f->id = identity_create(&f->loop, f->store, NULL, &io);
    struct result r[4];
    memset(r, 0, sizeof(r));
    char ip[16];
    for (int i = 0; i < 4; i++) {
        struct error e;
        snprintf(ip, sizeof(ip), "127.0.1.%d", i);
        assert_int_equal(identity_login(f->id, "x@x", "password-1", ip, login_cb, &r[i], &e, NULL),
                         0);
    }
    identity_shutdown(f->id);
    int unavailable = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].done, 1);
        if (r[i].rc == -ERR_UNAVAILABLE) {
            assert_string_equal(r[i].e.reason, "SHUTTING_DOWN");
            unavailable++;
        } else {
            assert_int_equal(r[i].rc, -ERR_UNAUTHENTICATED);
        }
    }
    assert_true(unavailable >= 2); /* one thread: at most two ran before the stop */
    teardown((void **)&f);
}

static void test_password_change_ends_sessions(void **state)
{
    struct fx *f = *state;
    char aid[ID_LEN + 1];
    new_agent(f, "frank@example.com", "first-password", aid);
    struct result r;
    assert_int_equal(login(f, "frank@example.com", "first-password", "127.0.0.1", &r), 0);
    char old[1024];
    snprintf(old, sizeof(old), "%s", r.token);
    struct principal p;
    struct error e;
    assert_int_equal(identity_authenticate(f->id, old, tm_now_us(), &p, &e), 0);
    assert_string_equal(p.agent_id, aid);
    int64_t exp = p.expire_us;
    assert_true(exp > tm_now_us() + 6 * 86400 * SEC_US);

    /* A change of name only keeps the sessions. */
    struct principal op;
    op_principal(f, &op);
    struct agent_req req = {.name = "Frank"};
    struct result u = {0};
    assert_int_equal(identity_agent_update(f->id, op.customer_id, aid, &req, agent_cb, &u, &e), 0);
    wait_done(f, &u, 1);
    assert_int_equal(identity_authenticate(f->id, old, tm_now_us(), &p, &e), 0);
    assert_int_equal(f->rev.n, 0);

    struct agent_req pw = {.password = "second-password"};
    memset(&u, 0, sizeof(u));
    assert_int_equal(identity_agent_update(f->id, op.customer_id, aid, &pw, agent_cb, &u, &e), 0);
    wait_done(f, &u, 1);
    assert_int_equal(u.rc, 0);
    assert_int_equal(identity_authenticate(f->id, old, tm_now_us(), &p, &e), -ERR_UNAUTHENTICATED);
    assert_int_equal(f->rev.n, 1);
    assert_string_equal(f->rev.ids[0], aid);
    assert_string_equal(f->rev.why[0], "agent password changed");
    /* A login right after (same second) gets a token that works. */
    assert_int_equal(login(f, "frank@example.com", "second-password", "127.0.0.1", &r), 0);
    assert_int_equal(identity_authenticate(f->id, r.token, tm_now_us(), &p, &e), 0);

    /* Deleting the agent ends its sessions and tells the listener. */
    struct agent gone;
    assert_int_equal(identity_agent_delete(f->id, &op, aid, &gone, &e), 0);
    agent_fini(&gone);
    assert_int_equal(identity_authenticate(f->id, r.token, tm_now_us(), &p, &e),
                     -ERR_UNAUTHENTICATED);
    assert_int_equal(f->rev.n, 2);
    assert_string_equal(f->rev.ids[1], aid);
    assert_string_equal(f->rev.why[1], "agent deleted");
}

static void test_accesskey_delete_revokes(void **state)
{
    struct fx *f = *state;
    struct principal op;
    op_principal(f, &op);
    struct accesskey k;
    char *token = NULL;
    struct error e;
    assert_int_equal(
        identity_accesskey_create(f->id, op.customer_id, "k", "", 3600, &k, &token, &e), 0);
    struct principal p;
    assert_int_equal(identity_authenticate(f->id, token, tm_now_us(), &p, &e), 0);
    assert_string_equal(p.accesskey_id, k.id);
    assert_int_equal(p.expire_us, k.tm_expire);
    struct accesskey d;
    assert_int_equal(identity_accesskey_delete(f->id, op.customer_id, k.id, &d, &e), 0);
    assert_int_equal(f->rev.n, 1);
    assert_string_equal(f->rev.ids[0], k.id);
    assert_string_equal(f->rev.why[0], "access key deleted");
    assert_int_equal(identity_authenticate(f->id, token, tm_now_us(), &p, &e),
                     -ERR_UNAUTHENTICATED);
    accesskey_fini(&k);
    accesskey_fini(&d);
    free(token);
}

static void test_password_set(void **state)
{
    struct fx *f = *state;
    struct error e;
    assert_int_equal(identity_password_set(f->id, "op@example.com", "short", &e),
                     -ERR_INVALID_ARGUMENT);
    assert_int_equal(identity_password_set(f->id, "OP@example.com", "long-enough-1", &e),
                     -ERR_NOT_FOUND);
    assert_non_null(strstr(e.message, "OP@example.com"));
    assert_int_equal(identity_password_set(f->id, "op@example.com", "long-enough-1", &e), 0);
    struct principal p;
    assert_int_equal(identity_authenticate(f->id, f->op_token, tm_now_us(), &p, &e),
                     -ERR_UNAUTHENTICATED);
    struct result r;
    assert_int_equal(login(f, "op@example.com", "operator-pass", "127.0.0.1", &r),
                     -ERR_UNAUTHENTICATED);
    assert_int_equal(login(f, "op@example.com", "long-enough-1", "127.0.0.1", &r), 0);
}

static void test_operator_only_message(void **state)
{
    (void)state;
    struct principal admin = {.permission = PERM_CUSTOMER_ADMIN};
    struct error e;
    assert_int_equal(identity_require(&admin, PERM_PROJECT_SUPER_ADMIN, &e),
                     -ERR_PERMISSION_DENIED);
    assert_non_null(strstr(e.message, "operator"));
    assert_null(strstr(e.message, "admin agent"));
    struct principal agent = {.permission = PERM_CUSTOMER_AGENT};
    assert_int_equal(identity_require(&agent, PERM_CUSTOMER_ADMIN, &e), -ERR_PERMISSION_DENIED);
    assert_non_null(strstr(e.message, "admin agent"));
}

static void test_webhook_uri_private(void **state)
{
    struct fx *f = *state;
    struct principal op;
    op_principal(f, &op);
    static const char *const refused[] = {
        "http://127.0.0.1:9000/hook",
        "http://localhost/x",
        "https://LocalHost./x",
        "http://api.localhost/x",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest",
        "http://[::1]:8080/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0.0.0.0/",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct customer_update_req req = {.webhook_uri = refused[i]};
        struct customer c;
        struct error e;
        if (identity_customer_update(f->id, op.customer_id, &req, &c, &e) != -ERR_INVALID_ARGUMENT)
            fail_msg("%s was accepted", refused[i]);
        assert_string_equal(e.reason, "WEBHOOK_URI_PRIVATE");
        assert_non_null(strstr(e.message, "webhook_allow_private"));
    }
    static const char *const accepted[] = {"https://example.com/hook", "http://8.8.8.8/x",
                                           "http://localhost.example.com/", ""};
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        struct customer_update_req req = {.webhook_uri = accepted[i]};
        struct customer c;
        struct error e;
        if (identity_customer_update(f->id, op.customer_id, &req, &c, &e) != 0)
            fail_msg("%s was refused: %s", accepted[i], e.message);
        assert_string_equal(c.webhook_uri, accepted[i]);
        customer_fini(&c);
    }
}

static void test_webhook_uri_private_allowed(void **state)
{
    (void)state;
    struct identity_options o = {.webhook_allow_private = true};
    void *st;
    setup_opts(&st, &o, true);
    struct fx *f = st;
    struct principal op;
    op_principal(f, &op);
    struct customer_update_req req = {.webhook_uri = "http://127.0.0.1:9000/hook"};
    struct customer c;
    struct error e;
    assert_int_equal(identity_customer_update(f->id, op.customer_id, &req, &c, &e), 0);
    customer_fini(&c);
    teardown(&st);
}

/* What an earlier version's first start stored before dying on a port in use. */
static void old_first_start(struct fx *f, const char *username)
{
    int64_t now = tm_unique_us();
    struct customer c = {0};
    id_new(c.id);
    c.name = "default";
    c.detail = "created at first start";
    c.webhook_uri = "";
    c.tm_create = c.tm_update = now;
    c.tm_delete = TM_NEVER;
    assert_int_equal(store_customer_insert(f->store, &c), 0);
    struct agent a = {0};
    id_new(a.id);
    memcpy(a.customer_id, c.id, sizeof(a.customer_id));
    a.username = (char *)username;
    a.password_hash = "$argon2id$v=19$m=8,t=1,p=1$never-shown";
    a.name = "operator";
    a.detail = "";
    snprintf(a.ring_method, sizeof(a.ring_method), "ringall");
    a.permission = PERM_PROJECT_SUPER_ADMIN | PERM_CUSTOMER_ADMIN;
    a.tm_create = a.tm_update = tm_unique_us();
    a.tm_delete = TM_NEVER;
    assert_int_equal(store_agent_insert(f->store, &a), 0);
}

static void test_bootstrap_once(void **state)
{
    struct fx *f = *state;
    char *gen = NULL;
    assert_int_equal(identity_bootstrap(f->id, "root@example.com", NULL, &gen), 1);
    assert_non_null(gen);
    struct result r;
    assert_int_equal(login(f, "root@example.com", gen, "127.0.0.1", &r), 0);
    free(gen);
    gen = NULL;
    /* Later starts change nothing, whatever they are given. */
    assert_int_equal(identity_bootstrap(f->id, "root@example.com", "another-pass", &gen), 0);
    assert_null(gen);
    assert_int_equal(login(f, "root@example.com", "another-pass", "127.0.0.1", &r),
                     -ERR_UNAUTHENTICATED);
}

static void test_bootstrap_repairs_failed_first_start(void **state)
{
    struct fx *f = *state;
    old_first_start(f, "admin");
    char *gen = NULL;
    assert_int_equal(identity_bootstrap(f->id, "op@example.com", "chosen-password", &gen), 1);
    assert_null(gen);
    struct result r;
    assert_int_equal(login(f, "op@example.com", "chosen-password", "127.0.0.1", &r), 0);
    struct principal p;
    struct error e;
    assert_int_equal(identity_authenticate(f->id, r.token, tm_now_us(), &p, &e), 0);
    assert_true(p.permission & PERM_PROJECT_SUPER_ADMIN);
    int64_t n = 0;
    assert_int_equal(store_customer_count(f->store, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(identity_bootstrap(f->id, "op@example.com", "third-password", &gen), 0);
}

static void test_bootstrap_keeps_used_old_store(void **state)
{
    struct fx *f = *state;
    old_first_start(f, "admin");
    /* The old server ran and was used: an access key exists. */
    struct customer *cs = NULL;
    size_t nc = 0;
    struct store_page page = {INT64_MAX, 10};
    assert_int_equal(store_customer_list(f->store, &page, &cs, &nc), 0);
    assert_int_equal(nc, 1);
    struct accesskey k;
    char *token = NULL;
    struct error e;
    assert_int_equal(identity_accesskey_create(f->id, cs[0].id, "k", "", 0, &k, &token, &e), 0);
    accesskey_fini(&k);
    free(token);
    store_free_customers(cs, nc);
    char *gen = NULL;
    assert_int_equal(identity_bootstrap(f->id, "admin", "chosen-password", &gen), 0);
    assert_null(gen);
    struct result r;
    assert_int_equal(login(f, "admin", "chosen-password", "127.0.0.1", &r), -ERR_UNAUTHENTICATED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_throttle_burst_then_rate),
        cmocka_unit_test(test_throttle_successes_cost_nothing),
        cmocka_unit_test(test_throttle_counts_attempts_in_flight),
        cmocka_unit_test(test_throttle_forgets),
        cmocka_unit_test_setup_teardown(test_login_failures_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_wrong_logins_mostly_not_hashed, setup,
                                        teardown),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_shutdown_answers_pending),
        cmocka_unit_test_setup_teardown(test_password_change_ends_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accesskey_delete_revokes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_set, setup, teardown),
        cmocka_unit_test(test_operator_only_message),
        cmocka_unit_test_setup_teardown(test_webhook_uri_private, setup, teardown),
        cmocka_unit_test(test_webhook_uri_private_allowed),
        cmocka_unit_test_setup_teardown(test_bootstrap_once, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_repairs_failed_first_start, setup_empty,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_keeps_used_old_store, setup_empty, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
