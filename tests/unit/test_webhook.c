/* Webhook delivery against a real HTTP receiver on 127.0.0.1 (libmicrohttpd, a thread per
 * connection so a slow answer holds only its own request), with a fake store that knows only
 * customer_get. The test drives the webhook's uv loop itself. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "events/bus.h"
#include "events/webhook.h"
#include "store/store.h"

#define CUST "11111111-2222-4333-8444-555555555555"
#define RES_A "a0000000-0000-4000-8000-00000000000a"
#define RES_B "b0000000-0000-4000-8000-00000000000b"
#define MAX_REQS 64
#define BODY_MAX 4096
#define SLOW_MS 300
#define WAIT_MS 5000

/* --- fake store --------------------------------------------------------------------------- */

struct fake_store {
    struct store base;
    char method[8];
    char uri[512];
};

static int fake_customer_get(struct store *s, const char *id, struct customer *out)
{
    struct fake_store *fs = (struct fake_store *)s;
    if (strcmp(id, CUST) != 0)
        return STORE_NOT_FOUND;
    memset(out, 0, sizeof(*out));
    str_copy(out->id, sizeof(out->id), id);
    out->name = xstrdup("test");
    out->detail = xstrdup("");
    str_copy(out->webhook_method, sizeof(out->webhook_method), fs->method);
    out->webhook_uri = xstrdup(fs->uri);
    return 0;
}

static const struct store_ops fake_ops = {.customer_get = fake_customer_get};

/* --- HTTP receiver ------------------------------------------------------------------------ */

struct req {
    char method[16];
    char url[64];
    char ctype[64];
    char agent[64];
    char body[BODY_MAX];
    int64_t start_ms, done_ms;
};

struct receiver {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    struct req reqs[MAX_REQS];
    int n;
};

struct pending {
    struct req r;
    size_t len;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    str_copy(out, cap, v ? v : "");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    struct receiver *rv = cls;
    struct pending *p = *con_cls;
    if (!p) {
        p = calloc(1, sizeof(*p));
        p->r.start_ms = now_ms();
        str_copy(p->r.method, sizeof(p->r.method), method);
        str_copy(p->r.url, sizeof(p->r.url), url);
        copy_hdr(conn, "Content-Type", p->r.ctype, sizeof(p->r.ctype));
        copy_hdr(conn, "User-Agent", p->r.agent, sizeof(p->r.agent));
        *con_cls = p;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        if (n > BODY_MAX - 1 - p->len)
            n = BODY_MAX - 1 - p->len;
        memcpy(p->r.body + p->len, upload, n);
        p->len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    if (strstr(p->r.body, "\"slow\":true"))
        usleep(SLOW_MS * 1000);
    unsigned int status = 200;
    if (!strncmp(url, "/status/", 8))
        status = (unsigned int)strtoul(url + 8, NULL, 10);
    p->r.done_ms = now_ms();
    pthread_mutex_lock(&rv->mu);
    if (rv->n < MAX_REQS)
        rv->reqs[rv->n++] = p->r;
    pthread_mutex_unlock(&rv->mu);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(9, (void *)"received\n", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static int received(struct receiver *rv)
{
    pthread_mutex_lock(&rv->mu);
    int n = rv->n;
    pthread_mutex_unlock(&rv->mu);
    return n;
}

/* --- fixture ------------------------------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    struct fake_store store;
    struct event_bus *bus;
    struct webhook *w;
    struct receiver rv;
};

static void fx_webhook(struct fx *f, bool allow_private, int retry_delay_ms)
{
    struct webhook_config cfg = {
        .allow_private = allow_private, .timeout_ms = 3000, .retry_delay_ms = retry_delay_ms};
    f->w = webhook_create(&f->loop, &f->store.base, &cfg);
    events_subscribe(f->bus, webhook_on_event, f->w);
}

static void fx_target(struct fx *f, const char *method, const char *path)
{
    str_copy(f->store.method, sizeof(f->store.method), method);
    snprintf(f->store.uri, sizeof(f->store.uri), "http://127.0.0.1:%u%s", f->rv.port, path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->store.base.ops = &fake_ops;
    f->bus = events_bus_create();
    pthread_mutex_init(&f->rv.mu, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->rv.d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                               NULL, NULL, handler, &f->rv, MHD_OPTION_SOCK_ADDR, &sa,
                               MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    assert_non_null(f->rv.d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->rv.d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    f->rv.port = info->port;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    webhook_destroy(f->w);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* lets the close callbacks free everything */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    events_bus_destroy(f->bus);
    MHD_stop_daemon(f->rv.d);
    pthread_mutex_destroy(&f->rv.mu);
    free(f);
    return 0;
}

static void publish(struct fx *f, const char *resource_id, int seq, bool slow)
{
    events_publish(f->bus, "conference_updated", CUST, resource_id,
                   json_pack("{s:s, s:i, s:b}", "id", resource_id, "seq", seq, "slow", slow));
}

/* Runs the loop until the webhook is idle and n requests arrived, or fails after WAIT_MS. */
static void run_until_idle(struct fx *f, int n)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (!(webhook_idle(f->w) && received(&f->rv) >= n)) {
        if (now_ms() > deadline)
            fail_msg("not idle after %d ms (received %d of %d)", WAIT_MS, received(&f->rv), n);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
}

static void run_for(struct fx *f, int ms)
{
    int64_t deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
}

static int body_seq(const struct req *r)
{
    json_error_t jerr;
    json_t *root = json_loads(r->body, 0, &jerr);
    assert_non_null(root);
    int seq = (int)json_integer_value(json_object_get(json_object_get(root, "data"), "seq"));
    json_decref(root);
    return seq;
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_validate_uri(void **state)
{
    (void)state;
    struct error e;
    assert_int_equal(webhook_validate_uri("", &e), 0);
    assert_int_equal(webhook_validate_uri("http://example.com/hook", &e), 0);
    assert_int_equal(webhook_validate_uri("https://example.com:8443/a/b?c=d", &e), 0);
    assert_int_equal(webhook_validate_uri("HTTPS://Example.com", &e), 0);
    const char *bad[] = {"ftp://example.com/x",  "example.com/hook",    "http://",
                         "file:///etc/passwd",   "javascript:alert(1)", "http://exa mple.com/",
                         "gopher://example.com", "/relative/path"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&e, 0, sizeof(e));
        if (webhook_validate_uri(bad[i], &e) >= 0)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(e.status, ERR_INVALID_ARGUMENT);
        assert_string_equal(e.reason, "INVALID_WEBHOOK_URI");
        assert_non_null(strstr(e.message, "http"));
    }
    char *longuri = malloc(URI_MAX_LEN + 2);
    memcpy(longuri, "http://example.com/", 19);
    memset(longuri + 19, 'a', URI_MAX_LEN + 1 - 19);
    longuri[URI_MAX_LEN + 1] = '\0';
    assert_true(webhook_validate_uri(longuri, &e) < 0);
    assert_non_null(strstr(e.message, "longer"));
    longuri[URI_MAX_LEN] = '\0';
    assert_int_equal(webhook_validate_uri(longuri, &e), 0);
    free(longuri);
}

static bool blocked(const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return webhook_addr_blocked((struct sockaddr *)in, sizeof(*in));
    }
    assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
    in6->sin6_family = AF_INET6;
    return webhook_addr_blocked((struct sockaddr *)in6, sizeof(*in6));
}

static void test_addr_blocked(void **state)
{
    (void)state;
    const char *deny[] = {"127.0.0.1",
                          "127.255.0.9",
                          "10.1.2.3",
                          "172.16.0.1",
                          "172.31.255.255",
                          "192.168.1.1",
                          "169.254.169.254",
                          "0.0.0.0",
                          "0.1.2.3",
                          "100.64.0.1",
                          "100.127.255.255",
                          "224.0.0.1",
                          "239.1.1.1",
                          "255.255.255.255",
                          "::1",
                          "::",
                          "fc00::1",
                          "fd12:3456::1",
                          "fe80::1",
                          "ff02::1",
                          "::ffff:127.0.0.1",
                          "::ffff:10.0.0.1",
                          "::ffff:169.254.169.254",
                          "64:ff9b::a00:1",
                          "2002:c0a8:101::1"};
    const char *allow[] = {"8.8.8.8",        "1.1.1.1",     "172.15.255.255", "172.32.0.1",
                           "100.63.255.255", "100.128.0.1", "192.169.0.1",    "2606:4700::1111",
                           "::ffff:8.8.8.8", "2001:db8::1"};
    for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
        if (!blocked(deny[i]))
            fail_msg("%s not blocked", deny[i]);
    for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++)
        if (blocked(allow[i]))
            fail_msg("%s blocked", allow[i]);
}

static void test_post_body_and_headers(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 20);
    fx_target(f, "", "/hook?token=secret");
    assert_true(webhook_idle(f->w));
    publish(f, RES_A, 1, false);
    assert_false(webhook_idle(f->w));
    run_until_idle(f, 1);
    assert_int_equal(received(&f->rv), 1);
    struct req *r = &f->rv.reqs[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "/hook");
    assert_string_equal(r->ctype, "application/json");
    assert_string_equal(r->agent, "conferenced");
    assert_string_equal(r->body, "{\"type\":\"conference_updated\",\"data\":{\"id\":\"" RES_A
                                 "\",\"seq\":1,\"slow\":false}}");
}

static void test_methods_honoured(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 20);
    const char *methods[] = {"PUT", "GET", "DELETE", "POST"};
    for (int i = 0; i < 4; i++) {
        fx_target(f, methods[i], "/m");
        publish(f, RES_A, i, false);
        run_until_idle(f, i + 1);
        assert_string_equal(f->rv.reqs[i].method, methods[i]);
        assert_int_equal(body_seq(&f->rv.reqs[i]), i); /* the body goes with every method */
        assert_string_equal(f->rv.reqs[i].ctype, "application/json");
    }
}

static void test_retries_on_500(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 50);
    fx_target(f, "POST", "/status/500");
    int64_t t0 = now_ms();
    publish(f, RES_A, 1, false);
    run_until_idle(f, 3);
    assert_true(now_ms() - t0 >= 100); /* two waits between three attempts */
    run_for(f, 150);
    assert_int_equal(received(&f->rv), 3);
}

static void test_no_retry_on_404(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 20);
    fx_target(f, "POST", "/status/404");
    publish(f, RES_A, 1, false);
    run_until_idle(f, 1);
    run_for(f, 100);
    assert_int_equal(received(&f->rv), 1);
}

static void test_retries_on_network_error(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 50);
    /* A port nobody listens on: bind one, then close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s);
    snprintf(f->store.uri, sizeof(f->store.uri), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
    int64_t t0 = now_ms();
    publish(f, RES_A, 1, false);
    run_until_idle(f, 0);
    assert_true(now_ms() - t0 >= 100);
}

static void test_order_per_resource(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 20);
    fx_target(f, "POST", "/order");
    publish(f, RES_A, 1, true); /* the receiver holds this one SLOW_MS */
    publish(f, RES_A, 2, false);
    publish(f, RES_B, 10, false);
    publish(f, RES_A, 3, false);
    run_until_idle(f, 4);
    assert_int_equal(received(&f->rv), 4);
    int pos[11] = {0};
    for (int i = 0; i < 4; i++)
        pos[body_seq(&f->rv.reqs[i])] = i;
    /* The other resource was not held up behind the slow one... */
    assert_true(pos[10] < pos[1]);
    /* ...while this resource's events came in order, one at a time. */
    assert_true(pos[1] < pos[2] && pos[2] < pos[3]);
    const struct req *r = f->rv.reqs;
    assert_true(r[pos[2]].start_ms >= r[pos[1]].done_ms);
    assert_true(r[pos[3]].start_ms >= r[pos[2]].done_ms);
}

static void test_private_refused(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, false, 1000);
    const char *hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    for (int i = 0; i < 3; i++) {
        snprintf(f->store.uri, sizeof(f->store.uri), "http://%s:%u/x", hosts[i], f->rv.port);
        int64_t t0 = now_ms();
        publish(f, RES_A, i, false);
        run_until_idle(f, 0);
        /* Refused is final: idle well before the first retry would have been due. */
        assert_true(now_ms() - t0 < 500);
    }
    run_for(f, 50);
    assert_int_equal(received(&f->rv), 0);
}

static void test_no_uri_or_customer(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 20);
    fx_target(f, "POST", "/x");
    f->store.uri[0] = '\0';
    publish(f, RES_A, 1, false);
    assert_true(webhook_idle(f->w));
    events_publish(f->bus, "conference_updated", "99999999-2222-4333-8444-555555555555", RES_A,
                   json_object());
    assert_true(webhook_idle(f->w));
    run_for(f, 50);
    assert_int_equal(received(&f->rv), 0);
}

static void test_destroy_with_pending(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 20);
    fx_target(f, "POST", "/slow");
    char id[8];
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "r%d", i % 5);
        publish(f, id, i, true);
    }
    run_for(f, 50); /* some requests are in flight now, the rest queued */
    assert_false(webhook_idle(f->w));
    webhook_destroy(f->w);
    f->w = NULL;
    /* The teardown runs the loop and checks that every handle closed. */
}

static void test_destroy_while_retrying(void **state)
{
    struct fx *f = *state;
    fx_webhook(f, true, 5000);
    fx_target(f, "POST", "/status/503");
    publish(f, RES_A, 1, false);
    int64_t deadline = now_ms() + WAIT_MS;
    while (received(&f->rv) < 1 && now_ms() < deadline)
        run_for(f, 5);
    run_for(f, 20);
    assert_false(webhook_idle(f->w));
    webhook_destroy(f->w);
    f->w = NULL;
}

static void test_per_resource_overflow(void **state)
{
    struct fx *f = *state;
    /* Refused targets fail fast, so a burst larger than the per-resource cap drains quickly. */
    fx_webhook(f, false, 1000);
    fx_target(f, "POST", "/x");
    for (int i = 0; i < 1100; i++)
        publish(f, RES_A, i, false);
    assert_false(webhook_idle(f->w));
    run_until_idle(f, 0);
    assert_int_equal(received(&f->rv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_uri),
        cmocka_unit_test(test_addr_blocked),
        cmocka_unit_test_setup_teardown(test_post_body_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_on_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_retry_on_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_on_network_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_per_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_uri_or_customer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_while_retrying, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_resource_overflow, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
