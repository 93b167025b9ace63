#include "identity/identity.h"

#include <jwt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "events/webhook.h"

#define SECRET_BYTES 32
#define ACCESSKEY_PREFIX "cf_"
#define ACCESSKEY_RANDOM_BYTES 24 /* 32 base64url characters */
#define ACCESSKEY_PREFIX_SHOWN 11
#define ACCESSKEY_MAX_EXPIRE_S (10LL * 366 * 86400)

struct identity {
    uv_loop_t *loop;
    struct store *store;
    struct event_bus *bus;
    struct identity_options opt;
    unsigned char secret[SECRET_BYTES];
    char dummy_hash[crypto_pwhash_STRBYTES]; /* verified against for unknown users */
};

int identity_store_error(int rc, const char *what, struct error *e)
{
    return error_set(e, ERR_INTERNAL, "INTERNAL", "The server could not %s; try again later (%d).",
                     what, rc);
}

/* ---- password hashing on the thread pool ---- */

struct hash_job {
    uv_work_t req;
    struct identity *id;
    int verify;          /* 0: hash password into hash; 1: check password against hash */
    char *password;
    char hash[crypto_pwhash_STRBYTES];
    int ok;
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

static void hash_work(uv_work_t *req)
{
    struct hash_job *job = req->data;
    if (job->verify)
        job->ok = crypto_pwhash_str_verify(job->hash, job->password, strlen(job->password)) == 0;
    else {
        hash_password(job->id, job->password, job->hash);
        job->ok = 1;
    }
}

static void hash_after(uv_work_t *req, int status)
{
    struct hash_job *job = req->data;
    if (status != 0)
        job->ok = 0;
    job->done(job);
    sodium_memzero(job->password, strlen(job->password));
    free(job->password);
    free(job);
}

static void hash_start(struct identity *id, int verify, const char *password, const char *hash,
                       void (*done)(struct hash_job *), void *ctx)
{
    struct hash_job *job = xcalloc(1, sizeof(*job));
    job->req.data = job;
    job->id = id;
    job->verify = verify;
    job->password = xstrdup(password);
    if (hash)
        str_copy(job->hash, sizeof(job->hash), hash);
    job->done = done;
    job->ctx = ctx;
    if (uv_queue_work(id->loop, &job->req, hash_work, hash_after) != 0)
        die("cannot queue password hashing work");
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
    load_secret(id);
    unsigned char junk[16];
    char junk_hex[33];
    randombytes_buf(junk, sizeof(junk));
    sodium_bin2hex(junk_hex, sizeof(junk_hex), junk, sizeof(junk));
    hash_password(id, junk_hex, id->dummy_hash);
    return id;
}

void identity_destroy(struct identity *id)
{
    if (!id)
        return;
    sodium_memzero(id->secret, sizeof(id->secret));
    free(id);
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

/* Inserts a customer and its first admin agent in one transaction. */
static int insert_customer_with_admin(struct identity *id, struct customer *c, struct agent *a,
                                      struct error *e)
{
    int rc = store_begin(id->store);
    if (rc != 0)
        return identity_store_error(rc, "start a transaction", e);
    rc = store_customer_insert(id->store, c);
    if (rc == 0)
        rc = store_agent_insert(id->store, a);
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

int identity_bootstrap(struct identity *id, const char *username, const char *password,
                       char **generated)
{
    int64_t n = 0;
    if (store_customer_count(id->store, &n) != 0)
        return -1;
    if (n > 0)
        return 0;
    char pw[33];
    if (!password || !password[0]) {
        unsigned char raw[12];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(pw, sizeof(pw), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        password = pw;
        *generated = xstrdup(pw);
    }
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
    sodium_memzero(pw, sizeof(pw));
    struct error e;
    int rc = insert_customer_with_admin(id, &c, &a, &e);
    customer_fini(&c);
    agent_fini(&a);
    if (rc < 0) {
        log_error("msg=\"bootstrap failed\" reason=%s", e.reason);
        return rc;
    }
    return 1;
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
    if (a.tm_delete != TM_NEVER) {
        rc = invalid_credentials(e);
    } else {
        memcpy(out->customer_id, a.customer_id, sizeof(out->customer_id));
        memcpy(out->agent_id, a.id, sizeof(out->agent_id));
        memcpy(out->accesskey_id, ID_NIL, sizeof(out->accesskey_id));
        out->permission = a.permission;
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

struct login_ctx {
    identity_login_cb cb;
    void *arg;
    struct agent agent;
    int found;
};

static void login_done(struct hash_job *job)
{
    struct login_ctx *ctx = job->ctx;
    struct identity *id = job->id;
    if (ctx->found && job->ok) {
        char *token = identity_jwt_issue(id, &ctx->agent, tm_now_us());
        log_info("msg=login agent_id=%s customer_id=%s", ctx->agent.id, ctx->agent.customer_id);
        ctx->cb(ctx->arg, 0, ctx->agent.username, token, NULL);
        free(token);
    } else {
        struct error e;
        error_set(&e, ERR_UNAUTHENTICATED, "INVALID_CREDENTIALS",
                  "The username or password is wrong.");
        ctx->cb(ctx->arg, -ERR_UNAUTHENTICATED, NULL, NULL, &e);
    }
    agent_fini(&ctx->agent);
    free(ctx);
}

void identity_login(struct identity *id, const char *username, const char *password,
                    identity_login_cb cb, void *arg)
{
    struct login_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->cb = cb;
    ctx->arg = arg;
    ctx->found = store_agent_get_by_username(id->store, username, &ctx->agent) == 0;
    /* Unknown users are verified against a dummy hash so both cases take the same time. */
    const char *hash = ctx->found && ctx->agent.password_hash ? ctx->agent.password_hash
                                                               : id->dummy_hash;
    hash_start(id, 1, password, hash, login_done, ctx);
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
    cj->a.password_hash = xstrdup(job->hash);
    cj->c.tm_create = cj->c.tm_update = tm_unique_us();
    cj->a.tm_create = cj->a.tm_update = tm_unique_us();
    rc = insert_customer_with_admin(job->id, &cj->c, &cj->a, &e);
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
    hash_start(id, 0, req->password, NULL, customer_hashed, cj);
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
    if (req->webhook_uri && (rc = webhook_validate_uri(req->webhook_uri, e)) < 0)
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
};

static void agent_finish(struct identity *id, struct agent_job *aj)
{
    struct error e;
    int rc;
    if (aj->create)
        rc = store_agent_insert(id->store, &aj->a);
    else
        rc = store_agent_update(id->store, &aj->a);
    if (rc == STORE_CONFLICT)
        rc = error_set(&e, ERR_ALREADY_EXISTS, "USERNAME_TAKEN",
                       "The username '%s' is already taken; choose another.", aj->a.username);
    else if (rc != 0)
        rc = identity_store_error(rc, "store the agent", &e);
    else
        events_publish(id->bus, aj->create ? "agent_created" : "agent_updated",
                       aj->a.customer_id, aj->a.id, agent_to_json(&aj->a));
    aj->cb(aj->arg, rc, rc == 0 ? &aj->a : NULL, rc == 0 ? NULL : &e);
    agent_fini(&aj->a);
    free(aj);
}

static void agent_hashed(struct hash_job *job)
{
    struct agent_job *aj = job->ctx;
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
    hash_start(id, 0, req->password, NULL, agent_hashed, aj);
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
        hash_start(id, 0, req->password, NULL, agent_hashed, aj);
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
    return 0;
}
