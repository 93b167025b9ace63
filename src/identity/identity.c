#include "identity/identity.h"

#include <jwt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "core/worker.h"
#include "events/webhook.h"
#include "identity/throttle.h"

#define SECRET_BYTES 32
#define ACCESSKEY_PREFIX "cf_"
#define ACCESSKEY_RANDOM_BYTES 24 /* 32 base64url characters */
#define ACCESSKEY_PREFIX_SHOWN 11
#define ACCESSKEY_MAX_EXPIRE_S (10LL * 366 * 86400)
/* The store records here that the operator is set up (see identity_bootstrap). */
#define META_OPERATOR_READY "operator_ready"
/* Throttled logins are logged at most this many times per second (then counted). */
#define THROTTLE_LOG_BURST 5

struct identity {
    uv_loop_t *loop;
    struct store *store;
    struct event_bus *bus;
    struct identity_options opt;
    unsigned char secret[SECRET_BYTES];
    char dummy_hash[crypto_pwhash_STRBYTES]; /* verified against for unknown users */
    struct worker_pool *hashers;             /* NULL once shut down */
    struct login_throttle *throttle;
    struct log_limit throttled_log; /* "login throttled" lines */
};

int identity_store_error(int rc, const char *what, struct error *e)
{
    return error_set(e, ERR_INTERNAL, "INTERNAL", "The server could not %s; try again later (%d).",
                     what, rc);
}

/* ---- password hashing on the identity's workers ---- */

struct hash_job {
    struct worker_job w;
    struct identity *id;
    int verify; /* 0: hash password into hash; 1: check password against hash */
    char *password;
    char hash[crypto_pwhash_STRBYTES];
    int ok;        /* the hash was made, or the password matched */
    int cancelled; /* the identity shut down before the job ran */
    void (*done)(struct hash_job *job);
    void *ctx;
};

static void hash_password(const struct identity *id, const char *password,
                          char out[crypto_pwhash_STRBYTES])
{
    unsigned long long ops = id->opt.fast_hash ? crypto_pwhash_OPSLIMIT_MIN
                                               : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    size_t mem = id->opt.fast_hash ? crypto_pwhash_MEMLIMIT_MIN
                                   : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (crypto_pwhash_str(out, password, strlen(password), ops, mem) != 0)
        die("out of memory hashing a password");
}

/* Worker thread: reads only the job and the identity's options (fixed after create). */
static void hash_work(struct worker_job *w)
{
    struct hash_job *job = w->data;
    if (job->verify)
        job->ok = crypto_pwhash_str_verify(job->hash, job->password, strlen(job->password)) == 0;
    else {
        hash_password(job->id, job->password, job->hash);
        job->ok = 1;
    }
}

static void hash_after(struct worker_job *w, int status)
{
    struct hash_job *job = w->data;
    if (status != 0) {
        job->ok = 0;
        job->cancelled = 1;
    }
    job->done(job);
    sodium_memzero(job->password, strlen(job->password));
    free(job->password);
    sodium_memzero(job->hash, sizeof(job->hash));
    free(job);
}

static int shutting_down(struct error *e)
{
    return error_set(e, ERR_UNAVAILABLE, "SHUTTING_DOWN",
                     "The server is shutting down; try again once it is back.");
}

/* Queues a hash or a check in lane (logins: their client address, so that one address's
 * backlog delays others' checks by one check at most; 0: everything else). Returns 0
 * (done(job) will be called on the control thread, ctx passed along), or a negative error when
 * the queue is full (ctx is the caller's again). */
static int hash_start(struct identity *id, uint64_t lane, int verify, const char *password,
                      const char *hash, void (*done)(struct hash_job *), void *ctx, struct error *e)
{
    if (!id->hashers)
        return shutting_down(e);
    struct hash_job *job = xcalloc(1, sizeof(*job));
    job->w.data = job;
    job->w.work = hash_work;
    job->w.done = hash_after;
    job->w.lane = lane;
    job->id = id;
    job->verify = verify;
    job->password = xstrdup(password);
    if (hash)
        str_copy(job->hash, sizeof(job->hash), hash);
    job->done = done;
    job->ctx = ctx;
    int rc = worker_pool_submit(id->hashers, &job->w);
    if (rc == 0)
        return 0;
    sodium_memzero(job->password, strlen(job->password));
    free(job->password);
    free(job);
    if (rc == WORKER_STOPPING)
        return shutting_down(e);
    return error_set(e, ERR_RESOURCE_EXHAUSTED, "PASSWORD_QUEUE_FULL",
                     "The server is checking too many passwords right now (login_queue=%d are "
                     "waiting for one of login_workers=%d); try again in a second.",
                     id->opt.login_queue, id->opt.login_workers);
}

/* ---- lifecycle ---- */

static void load_secret(struct identity *id)
{
    char *hex = NULL;
    size_t len = 0;
    if (store_meta_get(id->store, "jwt_secret", &hex) == 0 && hex &&
        sodium_hex2bin(id->secret, SECRET_BYTES, hex, strlen(hex), NULL, &len, NULL) == 0 &&
        len == SECRET_BYTES) {
        free(hex);
        return;
    }
    free(hex);
    randombytes_buf(id->secret, SECRET_BYTES);
    char out[SECRET_BYTES * 2 + 1];
    sodium_bin2hex(out, sizeof(out), id->secret, SECRET_BYTES);
    if (store_meta_set(id->store, "jwt_secret", out) != 0)
        die("cannot persist the JWT secret");
    sodium_memzero(out, sizeof(out));
}

struct identity *identity_create(uv_loop_t *loop, struct store *store, struct event_bus *bus,
                                 const struct identity_options *opt)
{
    if (sodium_init() < 0)
        die("libsodium failed to initialise");
    struct identity *id = xcalloc(1, sizeof(*id));
    id->loop = loop;
    id->store = store;
    id->bus = bus;
    id->opt = *opt;
    if (id->opt.jwt_ttl_us <= 0)
        id->opt.jwt_ttl_us = INT64_C(7) * 86400 * 1000000;
    if (id->opt.login_workers <= 0)
        id->opt.login_workers = 2;
    if (id->opt.login_queue <= 0)
        id->opt.login_queue = 64;
    if (id->opt.login_failures_per_minute <= 0)
        id->opt.login_failures_per_minute = 10;
    id->hashers = worker_pool_create(loop, "pwhash", id->opt.login_workers, id->opt.login_queue);
    id->throttle = login_throttle_create(id->opt.login_failures_per_minute);
    load_secret(id);
    unsigned char junk[16];
    char junk_hex[33];
    randombytes_buf(junk, sizeof(junk));
    sodium_bin2hex(junk_hex, sizeof(junk_hex), junk, sizeof(junk));
    hash_password(id, junk_hex, id->dummy_hash);
    return id;
}

void identity_shutdown(struct identity *id)
{
    struct worker_pool *p = id->hashers;
    id->hashers = NULL; /* hashing asked for by the callbacks below answers UNAVAILABLE */
    worker_pool_destroy(p);
}

void identity_destroy(struct identity *id)
{
    if (!id)
        return;
    identity_shutdown(id);
    login_throttle_destroy(id->throttle);
    sodium_memzero(id->secret, sizeof(id->secret));
    sodium_memzero(id->dummy_hash, sizeof(id->dummy_hash));
    free(id);
}

static void revoked(struct identity *id, const char *credential_id, const char *why)
{
    if (id->opt.listener.revoked)
        id->opt.listener.revoked(id->opt.listener.ctx, credential_id, why);
}

/* ---- validation helpers ---- */

static int check_text(const char *field, const char *v, size_t max, struct error *e)
{
    if (v && strlen(v) > max)
        return error_set(e, ERR_INVALID_ARGUMENT, "FIELD_TOO_LONG",
                         "Field '%s' is longer than %zu characters.", field, max);
    return 0;
}

static int check_username(const char *u, struct error *e)
{
    if (!u)
        return error_set(e, ERR_INVALID_ARGUMENT, "MISSING_FIELD",
                         "Field 'username' is required (for example an e-mail address).");
    size_t len = strlen(u);
    if (len == 0 || len > USERNAME_MAX_LEN)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field 'username' must be 1 to %d characters.", USERNAME_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= ' ' || c == 0x7f)
            return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                             "Field 'username' must not contain spaces or control characters.");
    }
    return 0;
}

static int check_password(const char *p, bool required, struct error *e)
{
    if (!p) {
        if (required)
            return error_set(e, ERR_INVALID_ARGUMENT, "MISSING_FIELD",
                             "Field 'password' is required.");
        return 0;
    }
    size_t len = strlen(p);
    if (len < PASSWORD_MIN_LEN || len > PASSWORD_MAX_LEN)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field 'password' must be %d to %d characters.", PASSWORD_MIN_LEN,
                         PASSWORD_MAX_LEN);
    return 0;
}

static int check_ring_method(const char *r, struct error *e)
{
    if (r && strcmp(r, "ringall") != 0 && strcmp(r, "linear") != 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field 'ring_method' must be \"ringall\" or \"linear\".");
    return 0;
}

#define CUSTOMER_PERMS (PERM_CUSTOMER_AGENT | PERM_CUSTOMER_ADMIN | PERM_CUSTOMER_MANAGER)

static int check_permission(const struct agent_req *req, struct error *e)
{
    if (req->has_permission &&
        (req->permission <= 0 || (req->permission & ~(int64_t)CUSTOMER_PERMS) != 0))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field 'permission' must combine 16 (agent), 32 (admin) and 64 "
                         "(manager), for example 32.");
    return 0;
}

int identity_require(const struct principal *p, uint64_t any_of, struct error *e)
{
    if (p->permission & (any_of | PERM_PROJECT_SUPER_ADMIN))
        return 0;
    if ((any_of & ~(uint64_t)PERM_PROJECT_SUPER_ADMIN) == 0)
        return error_set(e, ERR_PERMISSION_DENIED, "PERMISSION_DENIED",
                         "Only the operator (the server's first admin, created at its first "
                         "start) may do that; log in as the operator.");
    return error_set(e, ERR_PERMISSION_DENIED, "PERMISSION_DENIED",
                     "This credential is not allowed to do that; use an admin agent or an "
                     "access key.");
}

/* ---- bootstrap ---- */

static void agent_defaults(struct agent *a, const char *customer_id, int64_t now)
{
    memset(a, 0, sizeof(*a));
    id_new(a->id);
    memcpy(a->customer_id, customer_id, ID_LEN + 1);
    str_copy(a->ring_method, sizeof(a->ring_method), "ringall");
    a->permission = PERM_CUSTOMER_AGENT;
    a->tm_create = a->tm_update = now;
    a->tm_delete = TM_NEVER;
}

static void customer_defaults(struct customer *c, const char *name, const char *detail,
                              int64_t now)
{
    memset(c, 0, sizeof(*c));
    id_new(c->id);
    c->name = xstrdup(name ? name : "");
    c->detail = xstrdup(detail ? detail : "");
    c->webhook_uri = xstrdup("");
    c->tm_create = c->tm_update = now;
    c->tm_delete = TM_NEVER;
}

/* Inserts a customer and its first admin agent in one transaction; mark_ready also records
 * that the operator is set up, in the same transaction. */
static int insert_customer_with_admin(struct identity *id, struct customer *c, struct agent *a,
                                      bool mark_ready, struct error *e)
{
    int rc = store_begin(id->store);
    if (rc != 0)
        return identity_store_error(rc, "start a transaction", e);
    rc = store_customer_insert(id->store, c);
    if (rc == 0)
        rc = store_agent_insert(id->store, a);
    if (rc == 0 && mark_ready)
        rc = store_meta_set(id->store, META_OPERATOR_READY, "1");
    if (rc != 0) {
        store_rollback(id->store);
        if (rc == STORE_CONFLICT)
            return error_set(e, ERR_ALREADY_EXISTS, "USERNAME_TAKEN",
                             "The username '%s' is already taken; choose another.", a->username);
        return identity_store_error(rc, "create the customer", e);
    }
    rc = store_commit(id->store);
    if (rc != 0)
        return identity_store_error(rc, "commit the customer", e);
    return 0;
}

/* The state a first start of an earlier version left when it died before listening (its
 * generated password never shown): one customer and its one agent, the operator, both never
 * changed, and nothing else ever created. Fills *op with that agent (caller finis) and returns
 * 1, or 0 for any other store. */
static int stale_first_start(struct identity *id, struct agent *op)
{
    struct store_page page = {.before_us = INT64_MAX, .limit = 2};
    struct customer *cs = NULL;
    struct agent *as = NULL;
    size_t nc = 0, na = 0;
    int64_t newest = 0;
    int stale = 0;
    if (store_customer_list(id->store, &page, &cs, &nc) != 0 || nc != 1)
        goto out;
    if (store_agent_list(id->store, cs[0].id, &page, &as, &na) != 0 || na != 1)
        goto out;
    const struct agent *a = &as[0];
    if (!(a->permission & PERM_PROJECT_SUPER_ADMIN) || a->tm_update != a->tm_create ||
        cs[0].tm_update != cs[0].tm_create || store_newest_time(id->store, &newest) != 0)
        goto out;
    int64_t made = a->tm_create > cs[0].tm_create ? a->tm_create : cs[0].tm_create;
    if (newest != made)
        goto out;
    stale = 1;
    *op = as[0];
    memset(&as[0], 0, sizeof(as[0])); /* moved to *op */
out:
    store_free_customers(cs, nc);
    store_free_agents(as, na);
    return stale;
}

/* Gives the operator of a stale first start the configured username and password. */
static int reset_stale_operator(struct identity *id, struct agent *op, const char *username,
                                const char *password)
{
    char hash[crypto_pwhash_STRBYTES];
    hash_password(id, password, hash);
    free(op->password_hash);
    op->password_hash = xstrdup(hash);
    sodium_memzero(hash, sizeof(hash));
    free(op->username);
    op->username = xstrdup(username);
    op->token_generation++; /* whoever logged in with the old password is signed out */
    op->tm_update = tm_unique_us();
    int rc = store_begin(id->store);
    if (rc == 0)
        rc = store_agent_update(id->store, op);
    if (rc == 0)
        rc = store_meta_set(id->store, META_OPERATOR_READY, "1");
    if (rc != 0) {
        store_rollback(id->store);
        return -1;
    }
    return store_commit(id->store) == 0 ? 0 : -1;
}

int identity_bootstrap(struct identity *id, const char *username, const char *password,
                       char **generated)
{
    char *ready = NULL;
    if (store_meta_get(id->store, META_OPERATOR_READY, &ready) == 0) {
        free(ready);
        return 0;
    }
    int64_t n = 0;
    if (store_customer_count(id->store, &n) != 0)
        return -1;
    struct agent stale;
    memset(&stale, 0, sizeof(stale));
    bool reset = n > 0 && stale_first_start(id, &stale);
    if (n > 0 && !reset) {
        /* A store an earlier version set up and used: its operator is whatever it is now. */
        return store_meta_set(id->store, META_OPERATOR_READY, "1") == 0 ? 0 : -1;
    }
    char pw[33];
    if (!password || !password[0]) {
        unsigned char raw[12];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(pw, sizeof(pw), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        password = pw;
        *generated = xstrdup(pw);
    }
    int rc;
    if (reset) {
        rc = reset_stale_operator(id, &stale, username, password);
        if (rc == 0)
            log_info("msg=\"operator of an unfinished first start reset\" agent_id=%s", stale.id);
        else
            log_error("msg=\"bootstrap failed\" reason=\"cannot reset the operator\"");
        agent_fini(&stale);
    } else {
        int64_t now = tm_unique_us();
        struct customer c;
        customer_defaults(&c, "default", "created at first start", 0);
        c.tm_create = c.tm_update = now;
        struct agent a;
        agent_defaults(&a, c.id, tm_unique_us());
        a.username = xstrdup(username);
        a.name = xstrdup("operator");
        a.detail = xstrdup("");
        a.permission = PERM_PROJECT_SUPER_ADMIN | PERM_CUSTOMER_ADMIN;
        char hash[crypto_pwhash_STRBYTES];
        hash_password(id, password, hash);
        a.password_hash = xstrdup(hash);
        sodium_memzero(hash, sizeof(hash));
        struct error e;
        rc = insert_customer_with_admin(id, &c, &a, true, &e);
        customer_fini(&c);
        agent_fini(&a);
        if (rc < 0)
            log_error("msg=\"bootstrap failed\" reason=%s", e.reason);
    }
    sodium_memzero(pw, sizeof(pw));
    if (rc < 0) {
        if (*generated) {
            sodium_memzero(*generated, strlen(*generated));
            free(*generated);
            *generated = NULL;
        }
        return -1;
    }
    return 1;
}

int identity_password_set(struct identity *id, const char *username, const char *password,
                          struct error *e)
{
    int rc = check_password(password, true, e);
    if (rc < 0)
        return rc;
    struct agent a;
    rc = store_agent_get_by_username(id->store, username, &a);
    if (rc == STORE_NOT_FOUND)
        return error_set(e, ERR_NOT_FOUND, "AGENT_NOT_FOUND",
                         "No agent has the username '%s' (usernames are case-sensitive).",
                         username);
    if (rc != 0)
        return identity_store_error(rc, "read the agent", e);
    char hash[crypto_pwhash_STRBYTES];
    hash_password(id, password, hash);
    free(a.password_hash);
    a.password_hash = xstrdup(hash);
    sodium_memzero(hash, sizeof(hash));
    a.token_generation++;
    a.tm_update = tm_unique_us();
    rc = store_agent_update(id->store, &a);
    if (rc == 0)
        log_info("msg=\"password set\" agent_id=%s customer_id=%s", a.id, a.customer_id);
    agent_fini(&a);
    if (rc != 0)
        return identity_store_error(rc, "store the new password", e);
    return 0;
}

/* ---- JWT ---- */

char *identity_jwt_issue(struct identity *id, const struct agent *a, int64_t now_us)
{
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0)
        die("out of memory creating a JWT");
    jwt_add_grant(jwt, "typ", "agent");
    jwt_add_grant(jwt, "sub", a->id);
    jwt_add_grant(jwt, "cid", a->customer_id);
    jwt_add_grant_int(jwt, "iat", (long)(now_us / 1000000));
    jwt_add_grant_int(jwt, "exp", (long)((now_us + id->opt.jwt_ttl_us) / 1000000));
    /* Why a generation and not "issued after the password change": iat has whole seconds, so a
     * login in the same second as a change could not be told from one just before it. */
    jwt_add_grant_int(jwt, "gen", (long)a->token_generation);
    if (jwt_set_alg(jwt, JWT_ALG_HS256, id->secret, SECRET_BYTES) != 0)
        die("cannot set the JWT algorithm");
    char *s = jwt_encode_str(jwt);
    jwt_free(jwt);
    if (!s)
        die("cannot encode a JWT");
    return s;
}

static int invalid_credentials(struct error *e)
{
    return error_set(e, ERR_UNAUTHENTICATED, "INVALID_CREDENTIALS",
                     "The credential is invalid, expired or revoked; log in again with POST "
                     "/auth/login or use a valid access key.");
}

static int authenticate_jwt(struct identity *id, const char *token, int64_t now_us,
                            struct principal *out, struct error *e)
{
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, id->secret, SECRET_BYTES) != 0 || !jwt)
        return invalid_credentials(e);
    int rc = 0;
    const char *typ = jwt_get_grant(jwt, "typ");
    const char *sub = jwt_get_grant(jwt, "sub");
    long exp = jwt_get_grant_int(jwt, "exp");
    long gen = jwt_get_grant_int(jwt, "gen"); /* 0 when absent: tokens from before generations */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256 || !typ || strcmp(typ, "agent") != 0 || !sub ||
        !id_valid(sub) || exp <= 0 || (int64_t)exp * 1000000 <= now_us) {
        rc = invalid_credentials(e);
        goto done;
    }
    struct agent a;
    if (store_agent_get(id->store, NULL, sub, &a) != 0) {
        rc = invalid_credentials(e);
        goto done;
    }
    if (a.tm_delete != TM_NEVER || (int64_t)gen != a.token_generation) {
        rc = invalid_credentials(e); /* deleted, or its password changed since */
    } else {
        memcpy(out->customer_id, a.customer_id, sizeof(out->customer_id));
        memcpy(out->agent_id, a.id, sizeof(out->agent_id));
        memcpy(out->accesskey_id, ID_NIL, sizeof(out->accesskey_id));
        out->permission = a.permission;
        out->expire_us = (int64_t)exp * 1000000;
    }
    agent_fini(&a);
done:
    jwt_free(jwt);
    return rc;
}

static void token_hash(const char *token, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

static int authenticate_key(struct identity *id, const char *token, int64_t now_us,
                            struct principal *out, struct error *e)
{
    char hash[65];
    token_hash(token, hash);
    struct accesskey k;
    if (store_accesskey_get_by_hash(id->store, hash, &k) != 0)
        return invalid_credentials(e);
    int rc = 0;
    if (k.tm_delete != TM_NEVER || k.tm_expire <= now_us) {
        rc = invalid_credentials(e);
    } else {
        memcpy(out->customer_id, k.customer_id, sizeof(out->customer_id));
        memcpy(out->agent_id, ID_NIL, sizeof(out->agent_id));
        memcpy(out->accesskey_id, k.id, sizeof(out->accesskey_id));
        out->permission = PERM_CUSTOMER_ADMIN;
        out->expire_us = k.tm_expire;
    }
    accesskey_fini(&k);
    return rc;
}

int identity_authenticate(struct identity *id, const char *credential, int64_t now_us,
                          struct principal *out, struct error *e)
{
    size_t len = strlen(credential);
    if (len == 0 || len > 4096)
        return invalid_credentials(e);
    if (strncmp(credential, ACCESSKEY_PREFIX, strlen(ACCESSKEY_PREFIX)) == 0)
        return authenticate_key(id, credential, now_us, out, e);
    return authenticate_jwt(id, credential, now_us, out, e);
}

/* ---- login ---- */

/* Copies s for a log line: printable ASCII, quotes and backslashes escaped, at most 64
 * characters, so a username cannot forge log fields or lines. */
static void log_text(const char *s, char out[160])
{
    size_t o = 0, i = 0;
    out[o++] = '"';
    for (; s && s[i] && i < 64; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            out[o++] = '\\';
        out[o++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    if (s && s[i]) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Throttled attempts are not hashed, so they can come fast: their log lines are rationed. */
static void log_throttled(struct identity *id, const char *username, const char *client_ip,
                          const char *limit, int64_t retry_s, int64_t now_us)
{
    uint64_t before;
    if (!log_limit_allow(&id->throttled_log, now_us, 1000000, THROTTLE_LOG_BURST, &before))
        return;
    char u[160];
    log_text(username, u);
    log_warn("msg=\"login throttled\" username=%s client_ip=%s limit=%s retry_after_s=%lld "
             "not_logged_before=%llu",
             u, client_ip && client_ip[0] ? client_ip : "-", limit, (long long)retry_s,
             (unsigned long long)before);
}

struct login_ctx {
    identity_login_cb cb;
    void *arg;
    struct agent agent;
    int found;
    struct login_ticket ticket;
    char username[160]; /* for the log, already quoted */
    char client_ip[48];
};

static void login_done(struct hash_job *job)
{
    struct login_ctx *ctx = job->ctx;
    struct identity *id = job->id;
    int64_t now = tm_now_us();
    bool good = ctx->found && job->ok;
    /* A check cut short by shutdown proves nothing: its reservation is given back. */
    login_throttle_end(id->throttle, &ctx->ticket, !good && !job->cancelled, now);
    struct error e;
    if (job->cancelled) {
        shutting_down(&e);
        ctx->cb(ctx->arg, -ERR_UNAVAILABLE, NULL, NULL, &e);
    } else if (good) {
        char *token = identity_jwt_issue(id, &ctx->agent, now);
        log_info("msg=login agent_id=%s customer_id=%s", ctx->agent.id, ctx->agent.customer_id);
        ctx->cb(ctx->arg, 0, ctx->agent.username, token, NULL);
        free(token);
    } else {
        log_warn("msg=\"login failed\" username=%s client_ip=%s reason=%s", ctx->username,
                 ctx->client_ip[0] ? ctx->client_ip : "-",
                 ctx->found ? "wrong_password" : "unknown_username");
        error_set(&e, ERR_UNAUTHENTICATED, "INVALID_CREDENTIALS",
                  "The username or password is wrong.");
        ctx->cb(ctx->arg, -ERR_UNAUTHENTICATED, NULL, NULL, &e);
    }
    agent_fini(&ctx->agent);
    free(ctx);
}

/* Why the budgets are checked before anything else: a refused attempt costs no hashing, so
 * a flood of guesses for one username or from one address cannot occupy the workers. */
int identity_login(struct identity *id, const char *username, const char *password,
                   const char *client_ip, identity_login_cb cb, void *arg, struct error *e,
                   int *retry_after_s)
{
    int retry_dummy;
    if (!retry_after_s)
        retry_after_s = &retry_dummy;
    *retry_after_s = 0;
    int64_t now = tm_now_us();
    struct login_ticket ticket;
    int64_t retry = 0;
    int limit = login_throttle_begin(id->throttle, username, client_ip, now, &ticket, &retry);
    if (limit) {
        bool by_user = limit == LOGIN_THROTTLE_USERNAME;
        log_throttled(id, username, client_ip, by_user ? "username" : "address", retry, now);
        *retry_after_s = retry > INT32_MAX ? INT32_MAX : (int)retry;
        if (by_user)
            return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_FAILED_LOGINS",
                             "Too many failed logins for this username (login_failures_per_"
                             "minute=%d); try again in %lld s.",
                             id->opt.login_failures_per_minute, (long long)retry);
        return error_set(e, ERR_RESOURCE_EXHAUSTED, "TOO_MANY_FAILED_LOGINS",
                         "Too many failed logins from your address %s (login_failures_per_"
                         "minute=%d); try again in %lld s.",
                         client_ip, id->opt.login_failures_per_minute, (long long)retry);
    }
    struct login_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->cb = cb;
    ctx->arg = arg;
    ctx->ticket = ticket;
    log_text(username, ctx->username);
    str_copy(ctx->client_ip, sizeof(ctx->client_ip), client_ip ? client_ip : "");
    ctx->found = store_agent_get_by_username(id->store, username, &ctx->agent) == 0;
    /* Unknown users are verified against a dummy hash so both cases take the same time. */
    const char *hash = ctx->found && ctx->agent.password_hash ? ctx->agent.password_hash
                                                               : id->dummy_hash;
    int rc = hash_start(id, ticket.addr_key, 1, password, hash, login_done, ctx, e);
    if (rc < 0) {
        login_throttle_end(id->throttle, &ticket, false, now);
        agent_fini(&ctx->agent);
        free(ctx);
        if (rc == -ERR_RESOURCE_EXHAUSTED)
            *retry_after_s = 1;
        return rc;
    }
    return 0;
}

/* ---- customers ---- */

struct customer_job {
    identity_customer_cb cb;
    void *arg;
    struct customer c;
    struct agent a;
};

static void customer_hashed(struct hash_job *job)
{
    struct customer_job *cj = job->ctx;
    struct error e;
    int rc;
    if (job->cancelled) {
        cj->cb(cj->arg, shutting_down(&e), NULL, &e);
        customer_fini(&cj->c);
        agent_fini(&cj->a);
        free(cj);
        return;
    }
    cj->a.password_hash = xstrdup(job->hash);
    cj->c.tm_create = cj->c.tm_update = tm_unique_us();
    cj->a.tm_create = cj->a.tm_update = tm_unique_us();
    rc = insert_customer_with_admin(job->id, &cj->c, &cj->a, false, &e);
    if (rc == 0) {
        log_info("msg=\"customer created\" customer_id=%s", cj->c.id);
        events_publish(job->id->bus, "customer_created", cj->c.id, cj->c.id,
                       customer_to_json(&cj->c));
    }
    cj->cb(cj->arg, rc, rc == 0 ? &cj->c : NULL, rc == 0 ? NULL : &e);
    customer_fini(&cj->c);
    agent_fini(&cj->a);
    free(cj);
}

int identity_customer_create(struct identity *id, const struct customer_create_req *req,
                             identity_customer_cb cb, void *arg, struct error *e)
{
    int rc;
    if ((rc = check_text("name", req->name, NAME_MAX_LEN, e)) < 0 ||
        (rc = check_text("detail", req->detail, DETAIL_MAX_LEN, e)) < 0 ||
        (rc = check_username(req->username, e)) < 0 ||
        (rc = check_password(req->password, true, e)) < 0)
        return rc;
    struct agent existing;
    if (store_agent_get_by_username(id->store, req->username, &existing) == 0) {
        agent_fini(&existing);
        return error_set(e, ERR_ALREADY_EXISTS, "USERNAME_TAKEN",
                         "The username '%s' is already taken; choose another.", req->username);
    }
    struct customer_job *cj = xcalloc(1, sizeof(*cj));
    cj->cb = cb;
    cj->arg = arg;
    customer_defaults(&cj->c, req->name, req->detail, 0);
    agent_defaults(&cj->a, cj->c.id, 0);
    cj->a.username = xstrdup(req->username);
    cj->a.name = xstrdup("admin");
    cj->a.detail = xstrdup("");
    cj->a.permission = PERM_CUSTOMER_ADMIN;
    if ((rc = hash_start(id, 0, 0, req->password, NULL, customer_hashed, cj, e)) < 0) {
        customer_fini(&cj->c);
        agent_fini(&cj->a);
        free(cj);
        return rc;
    }
    return 0;
}

int identity_customer_get(struct identity *id, const char *customer_id, struct customer *out,
                          struct error *e)
{
    int rc = store_customer_get(id->store, customer_id, out);
    if (rc == STORE_NOT_FOUND || (rc == 0 && out->tm_delete != TM_NEVER)) {
        if (rc == 0)
            customer_fini(out);
        return error_set(e, ERR_NOT_FOUND, "CUSTOMER_NOT_FOUND",
                         "No customer with id %s exists.", customer_id);
    }
    if (rc != 0)
        return identity_store_error(rc, "read the customer", e);
    return 0;
}

int identity_customer_update(struct identity *id, const char *customer_id,
                             const struct customer_update_req *req, struct customer *out,
                             struct error *e)
{
    int rc;
    if ((rc = check_text("name", req->name, NAME_MAX_LEN, e)) < 0 ||
        (rc = check_text("detail", req->detail, DETAIL_MAX_LEN, e)) < 0)
        return rc;
    if (req->webhook_method && strcmp(req->webhook_method, "") != 0 &&
        strcmp(req->webhook_method, "POST") != 0 && strcmp(req->webhook_method, "GET") != 0 &&
        strcmp(req->webhook_method, "PUT") != 0 && strcmp(req->webhook_method, "DELETE") != 0)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_WEBHOOK_METHOD",
                         "Field 'webhook_method' must be one of POST, GET, PUT, DELETE (or \"\" "
                         "for POST).");
    if (req->webhook_uri &&
        ((rc = webhook_validate_uri(req->webhook_uri, e)) < 0 ||
         (rc = webhook_check_uri_host(req->webhook_uri, id->opt.webhook_allow_private, e)) < 0))
        return rc;
    if ((rc = identity_customer_get(id, customer_id, out, e)) < 0)
        return rc;
    if (req->name) {
        free(out->name);
        out->name = xstrdup(req->name);
    }
    if (req->detail) {
        free(out->detail);
        out->detail = xstrdup(req->detail);
    }
    if (req->webhook_method)
        str_copy(out->webhook_method, sizeof(out->webhook_method), req->webhook_method);
    if (req->webhook_uri) {
        free(out->webhook_uri);
        out->webhook_uri = xstrdup(req->webhook_uri);
    }
    out->tm_update = tm_now_us();
    rc = store_customer_update(id->store, out);
    if (rc != 0) {
        customer_fini(out);
        return identity_store_error(rc, "update the customer", e);
    }
    events_publish(id->bus, "customer_updated", out->id, out->id, customer_to_json(out));
    return 0;
}

/* ---- agents ---- */

static int agent_not_found(const char *agent_id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "AGENT_NOT_FOUND",
                     "No agent with id %s exists for this customer.", agent_id);
}

int identity_agent_get(struct identity *id, const char *customer_id, const char *agent_id,
                       struct agent *out, struct error *e)
{
    int rc = store_agent_get(id->store, customer_id, agent_id, out);
    if (rc == STORE_NOT_FOUND)
        return agent_not_found(agent_id, e);
    if (rc != 0)
        return identity_store_error(rc, "read the agent", e);
    if (out->tm_delete != TM_NEVER) {
        agent_fini(out);
        return agent_not_found(agent_id, e);
    }
    return 0;
}

struct agent_job {
    identity_agent_cb cb;
    void *arg;
    struct agent a;
    int create;
    int new_password;
};

static void agent_finish(struct identity *id, struct agent_job *aj)
{
    struct error e;
    int rc;
    if (aj->create) {
        rc = store_agent_insert(id->store, &aj->a);
    } else {
        if (aj->new_password) {
            /* From the row as it is now: two changes at once must both end older sessions. */
            struct agent cur;
            if (store_agent_get(id->store, aj->a.customer_id, aj->a.id, &cur) == 0) {
                if (cur.token_generation > aj->a.token_generation)
                    aj->a.token_generation = cur.token_generation;
                agent_fini(&cur);
            }
            aj->a.token_generation++;
        }
        rc = store_agent_update(id->store, &aj->a);
    }
    if (rc == STORE_CONFLICT)
        rc = error_set(&e, ERR_ALREADY_EXISTS, "USERNAME_TAKEN",
                       "The username '%s' is already taken; choose another.", aj->a.username);
    else if (rc != 0)
        rc = identity_store_error(rc, "store the agent", &e);
    else
        events_publish(id->bus, aj->create ? "agent_created" : "agent_updated",
                       aj->a.customer_id, aj->a.id, agent_to_json(&aj->a));
    if (rc == 0 && aj->new_password) {
        log_info("msg=\"agent password changed\" agent_id=%s customer_id=%s", aj->a.id,
                 aj->a.customer_id);
        revoked(id, aj->a.id, "agent password changed");
    }
    aj->cb(aj->arg, rc, rc == 0 ? &aj->a : NULL, rc == 0 ? NULL : &e);
    agent_fini(&aj->a);
    free(aj);
}

static void agent_hashed(struct hash_job *job)
{
    struct agent_job *aj = job->ctx;
    if (job->cancelled) {
        struct error e;
        aj->cb(aj->arg, shutting_down(&e), NULL, &e);
        agent_fini(&aj->a);
        free(aj);
        return;
    }
    free(aj->a.password_hash);
    aj->a.password_hash = xstrdup(job->hash);
    if (aj->create)
        aj->a.tm_create = aj->a.tm_update = tm_unique_us();
    else
        aj->a.tm_update = tm_now_us();
    agent_finish(job->id, aj);
}

static int validate_agent_req(const struct agent_req *req, bool create, struct error *e)
{
    int rc;
    if ((create && (rc = check_username(req->username, e)) < 0) ||
        (rc = check_password(req->password, create, e)) < 0 ||
        (rc = check_text("name", req->name, NAME_MAX_LEN, e)) < 0 ||
        (rc = check_text("detail", req->detail, DETAIL_MAX_LEN, e)) < 0 ||
        (rc = check_ring_method(req->ring_method, e)) < 0 || (rc = check_permission(req, e)) < 0)
        return rc;
    return 0;
}

static void agent_apply(struct agent *a, const struct agent_req *req)
{
    if (req->name) {
        free(a->name);
        a->name = xstrdup(req->name);
    }
    if (req->detail) {
        free(a->detail);
        a->detail = xstrdup(req->detail);
    }
    if (req->ring_method)
        str_copy(a->ring_method, sizeof(a->ring_method), req->ring_method);
    if (req->has_permission)
        a->permission = (uint64_t)req->permission;
}

int identity_agent_create(struct identity *id, const char *customer_id, const struct agent_req *req,
                          identity_agent_cb cb, void *arg, struct error *e)
{
    int rc = validate_agent_req(req, true, e);
    if (rc < 0)
        return rc;
    struct agent existing;
    if (store_agent_get_by_username(id->store, req->username, &existing) == 0) {
        agent_fini(&existing);
        return error_set(e, ERR_ALREADY_EXISTS, "USERNAME_TAKEN",
                         "The username '%s' is already taken; choose another.", req->username);
    }
    struct agent_job *aj = xcalloc(1, sizeof(*aj));
    aj->cb = cb;
    aj->arg = arg;
    aj->create = 1;
    agent_defaults(&aj->a, customer_id, 0);
    aj->a.username = xstrdup(req->username);
    aj->a.name = xstrdup("");
    aj->a.detail = xstrdup("");
    agent_apply(&aj->a, req);
    if ((rc = hash_start(id, 0, 0, req->password, NULL, agent_hashed, aj, e)) < 0) {
        agent_fini(&aj->a);
        free(aj);
        return rc;
    }
    return 0;
}

int identity_agent_update(struct identity *id, const char *customer_id, const char *agent_id,
                          const struct agent_req *req, identity_agent_cb cb, void *arg,
                          struct error *e)
{
    int rc = validate_agent_req(req, false, e);
    if (rc < 0)
        return rc;
    struct agent_job *aj = xcalloc(1, sizeof(*aj));
    if ((rc = identity_agent_get(id, customer_id, agent_id, &aj->a, e)) < 0) {
        free(aj);
        return rc;
    }
    aj->cb = cb;
    aj->arg = arg;
    agent_apply(&aj->a, req);
    if (req->password) {
        aj->new_password = 1;
        if ((rc = hash_start(id, 0, 0, req->password, NULL, agent_hashed, aj, e)) < 0) {
            agent_fini(&aj->a);
            free(aj);
            return rc;
        }
        return 0;
    }
    aj->a.tm_update = tm_now_us();
    agent_finish(id, aj);
    return 0;
}

int identity_agent_delete(struct identity *id, const struct principal *caller,
                          const char *agent_id, struct agent *out, struct error *e)
{
    if (strcmp(caller->agent_id, agent_id) == 0)
        return error_set(e, ERR_FAILED_PRECONDITION, "STATE_INVALID",
                         "An agent cannot delete itself; log in as another admin.");
    int rc = identity_agent_get(id, caller->customer_id, agent_id, out, e);
    if (rc < 0)
        return rc;
    out->tm_delete = out->tm_update = tm_now_us();
    if ((rc = store_agent_update(id->store, out)) != 0) {
        agent_fini(out);
        return identity_store_error(rc, "delete the agent", e);
    }
    events_publish(id->bus, "agent_deleted", out->customer_id, out->id, agent_to_json(out));
    revoked(id, out->id, "agent deleted");
    return 0;
}

/* ---- access keys ---- */

static int key_not_found(const char *key_id, struct error *e)
{
    return error_set(e, ERR_NOT_FOUND, "ACCESSKEY_NOT_FOUND",
                     "No access key with id %s exists for this customer.", key_id);
}

int identity_accesskey_create(struct identity *id, const char *customer_id, const char *name,
                              const char *detail, int64_t expire_s, struct accesskey *out,
                              char **token_out, struct error *e)
{
    int rc;
    if ((rc = check_text("name", name, NAME_MAX_LEN, e)) < 0 ||
        (rc = check_text("detail", detail, DETAIL_MAX_LEN, e)) < 0)
        return rc;
    if (expire_s < 0 || expire_s > ACCESSKEY_MAX_EXPIRE_S)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "Field 'expire' must be seconds from 0 (never expires) to %lld.",
                         (long long)ACCESSKEY_MAX_EXPIRE_S);
    unsigned char raw[ACCESSKEY_RANDOM_BYTES];
    randombytes_buf(raw, sizeof(raw));
    char b64[sodium_base64_ENCODED_LEN(ACCESSKEY_RANDOM_BYTES,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t tlen = strlen(ACCESSKEY_PREFIX) + strlen(b64);
    char *token = xmalloc(tlen + 1);
    memcpy(token, ACCESSKEY_PREFIX, strlen(ACCESSKEY_PREFIX));
    memcpy(token + strlen(ACCESSKEY_PREFIX), b64, strlen(b64) + 1);

    memset(out, 0, sizeof(*out));
    id_new(out->id);
    memcpy(out->customer_id, customer_id, ID_LEN + 1);
    out->name = xstrdup(name ? name : "");
    out->detail = xstrdup(detail ? detail : "");
    token_hash(token, out->token_hash);
    memcpy(out->token_prefix, token, ACCESSKEY_PREFIX_SHOWN);
    out->token_prefix[ACCESSKEY_PREFIX_SHOWN] = '\0';
    out->tm_create = out->tm_update = tm_unique_us();
    out->tm_expire = expire_s > 0 ? out->tm_create + expire_s * 1000000 : TM_NEVER;
    out->tm_delete = TM_NEVER;
    if ((rc = store_accesskey_insert(id->store, out)) != 0) {
        accesskey_fini(out);
        sodium_memzero(token, tlen);
        free(token);
        return identity_store_error(rc, "create the access key", e);
    }
    *token_out = token;
    return 0;
}

int identity_accesskey_get(struct identity *id, const char *customer_id, const char *key_id,
                           struct accesskey *out, struct error *e)
{
    int rc = store_accesskey_get(id->store, customer_id, key_id, out);
    if (rc == STORE_NOT_FOUND)
        return key_not_found(key_id, e);
    if (rc != 0)
        return identity_store_error(rc, "read the access key", e);
    if (out->tm_delete != TM_NEVER) {
        accesskey_fini(out);
        return key_not_found(key_id, e);
    }
    return 0;
}

int identity_accesskey_update(struct identity *id, const char *customer_id, const char *key_id,
                              const char *name, const char *detail, struct accesskey *out,
                              struct error *e)
{
    int rc;
    if ((rc = check_text("name", name, NAME_MAX_LEN, e)) < 0 ||
        (rc = check_text("detail", detail, DETAIL_MAX_LEN, e)) < 0)
        return rc;
    if ((rc = identity_accesskey_get(id, customer_id, key_id, out, e)) < 0)
        return rc;
    if (name) {
        free(out->name);
        out->name = xstrdup(name);
    }
    if (detail) {
        free(out->detail);
        out->detail = xstrdup(detail);
    }
    out->tm_update = tm_now_us();
    if ((rc = store_accesskey_update(id->store, out)) != 0) {
        accesskey_fini(out);
        return identity_store_error(rc, "update the access key", e);
    }
    return 0;
}

int identity_accesskey_delete(struct identity *id, const char *customer_id, const char *key_id,
                              struct accesskey *out, struct error *e)
{
    int rc = identity_accesskey_get(id, customer_id, key_id, out, e);
    if (rc < 0)
        return rc;
    out->tm_delete = out->tm_update = tm_now_us();
    if ((rc = store_accesskey_update(id->store, out)) != 0) {
        accesskey_fini(out);
        return identity_store_error(rc, "delete the access key", e);
    }
    revoked(id, out->id, "access key deleted");
    return 0;
}
