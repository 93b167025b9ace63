/* core/: timestamps, ids, configuration sources, the id map, timers and the JSON views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/idmap.h"
#include "core/ids.h"
#include "core/jsonutil.h"
#include "core/sched.h"
#include "core/timeutil.h"
#include "model/model.h"

static void test_time_format_parse(void **state)
{
    char buf[TM_TEXT_LEN];
    tm_format(INT64_C(1643868536672025), buf);
    assert_string_equal(buf, "2022-02-03 06:08:56.672025");
    tm_format(TM_NEVER, buf);
    assert_string_equal(buf, "9999-01-01 00:00:00.000000");
    tm_format(0, buf);
    assert_string_equal(buf, "1970-01-01 00:00:00.000000");
    int64_t v;
    assert_int_equal(tm_parse("2022-02-03 06:08:56.672025", &v), 0);
    assert_int_equal(v, INT64_C(1643868536672025));
    assert_int_equal(tm_parse("2022-02-03T06:08:56.672025Z", &v), 0);
    assert_int_equal(v, INT64_C(1643868536672025));
    assert_int_equal(tm_parse("2022-02-03T08:08:56.672025+02:00", &v), 0);
    assert_int_equal(v, INT64_C(1643868536672025));
    assert_int_equal(tm_parse("2022-02-03T06:08:56Z", &v), 0);
    assert_int_equal(v, INT64_C(1643868536000000));
    assert_int_equal(tm_parse("2022-02-03 06:08:56.6", &v), 0);
    assert_int_equal(v, INT64_C(1643868536600000));
    assert_int_equal(tm_parse("9999-01-01 00:00:00.000000", &v), 0);
    assert_int_equal(v, TM_NEVER);
    const char *bad[] = {"", "yesterday", "2022-02-30 00:00:00", "2021-02-29 00:00:00",
                         "2022-13-01 00:00:00", "2022-02-03", "2022-02-03 25:00:00",
                         "2022-02-03 06:08:56.", "2022-02-03 06:08:56Zjunk",
                         "2022-02-03 06:08:56.1234567890", "2022-02-03T06:08:56+2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (tm_parse(bad[i], &v) == 0)
            fail_msg("accepted '%s'", bad[i]);
    /* round trip over a range of values */
    for (int64_t t = 0; t < INT64_C(4000000000000000); t += INT64_C(123456789012345)) {
        tm_format(t, buf);
        assert_int_equal(tm_parse(buf, &v), 0);
        assert_int_equal(v, t);
    }
    int64_t a = tm_unique_us(), b = tm_unique_us();
    assert_true(b > a);
    tm_unique_floor(b + 1000000);
    assert_true(tm_unique_us() > b + 1000000);
}

static void test_ids(void **state)
{
    char id[ID_LEN + 1], n[ID_LEN + 1];
    id_new(id);
    assert_true(id_valid(id));
    assert_int_equal(id[14], '4');
    assert_int_equal(id_normalize("6F9619FF-8B86-4011-B42D-00C04FC964FF", n), 0);
    assert_string_equal(n, "6f9619ff-8b86-4011-b42d-00c04fc964ff");
    assert_true(id_normalize("6f9619ff8b864011b42d00c04fc964ff", n) < 0);
    assert_true(id_normalize("6f9619ff-8b86-4011-b42d-00c04fc964fg", n) < 0);
    assert_true(id_normalize("6f9619ff-8b86-4011-b42d-00c04fc964ff0", n) < 0);
    assert_true(id_is_nil(ID_NIL));
    char h[DIRECT_HASH_SIZE], h2[DIRECT_HASH_SIZE];
    id_direct_hash_new(h);
    id_direct_hash_new(h2);
    assert_int_equal(strlen(h), 19);
    assert_int_equal(strncmp(h, "direct.", 7), 0);
    for (int i = 7; i < 19; i++)
        assert_non_null(strchr("0123456789abcdef", h[i]));
    assert_string_not_equal(h, h2);
    char r1[ID_LEN + 1], r2[ID_LEN + 1];
    id_request(r1);
    id_request(r2);
    assert_true(id_valid(r1));
    assert_string_not_equal(r1, r2);
}

static void test_config_sources(void **state)
{
    char path[] = "/tmp/conferenced-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *file = "# comment\nhttp = 127.0.0.1:9001\nlog_level = warn\ndata = /tmp/from-file\n";
    assert_int_equal(write(fd, file, strlen(file)), (ssize_t)strlen(file));
    close(fd);
    struct config c;
    char err[256];
    char *argv[] = {"conferenced", "--config", path, "--data", "/tmp/from-flag", NULL};
    setenv("CONFERENCED_LOG_LEVEL", "error", 1);
    setenv("CONFERENCED_DATA", "/tmp/from-env", 1);
    assert_int_equal(config_load(&c, 5, argv, err, sizeof(err)), 0);
    assert_string_equal(c.http_addr, "127.0.0.1"); /* file */
    assert_int_equal(c.http_port, 9001);
    assert_int_equal(c.log_level, LOG_LEVEL_ERROR);      /* env beats file */
    assert_string_equal(c.data_dir, "/tmp/from-flag"); /* flag beats env */
    unsetenv("CONFERENCED_LOG_LEVEL");
    unsetenv("CONFERENCED_DATA");

    char *bad1[] = {"conferenced", "--http", "localhost", NULL};
    assert_int_equal(config_load(&c, 3, bad1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ADDR:PORT"));
    char *bad2[] = {"conferenced", "--nope", NULL};
    assert_int_equal(config_load(&c, 2, bad2, err, sizeof(err)), -1);
    char *bad3[] = {"conferenced", "--log-level", "loud", NULL};
    assert_int_equal(config_load(&c, 3, bad3, err, sizeof(err)), -1);
    char *bad4[] = {"conferenced", "--http", "127.0.0.1:70000", NULL};
    assert_int_equal(config_load(&c, 3, bad4, err, sizeof(err)), -1);
    /* one address may never hold every connection */
    char *bad5[] = {"conferenced", "--http-max-connections", "100",
                    "--http-max-connections-per-address", "51", NULL};
    assert_int_equal(config_load(&c, 5, bad5, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "http_max_connections_per_address"));
    char *bad6[] = {"conferenced", "--max-conferences", "0", NULL};
    assert_int_equal(config_load(&c, 3, bad6, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "max_conferences"));
    /* every setting is in --help, by flag or by environment variable */
    const char *help = config_usage();
    assert_non_null(strstr(help, "--sip-max-setup-per-source"));
    assert_non_null(strstr(help, "CONFERENCED_RING_TIMEOUT_MS"));
    assert_non_null(strstr(help, "CONFERENCED_SOUNDS_DIR"));
    assert_non_null(strstr(help, "CONFERENCED_ADMIN_PASSWORD"));
    setenv("CONFERENCED_ADMIN_PASSWORD", "short", 1);
    char *ok[] = {"conferenced", NULL};
    assert_int_equal(config_load(&c, 1, ok, err, sizeof(err)), -1);
    unsetenv("CONFERENCED_ADMIN_PASSWORD");
    FILE *f = fopen(path, "w");
    fputs("unknown_key = 1\n", f);
    fclose(f);
    assert_int_equal(config_load(&c, 3, argv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown_key"));
    unlink(path);
}

static void test_log_limit(void **state)
{
    struct log_limit l;
    memset(&l, 0, sizeof(l));
    uint64_t before = 99;
    int64_t t = 5000000;
    assert_true(log_limit_allow(&l, t, 1000000, 2, &before));
    assert_int_equal(before, 0);
    assert_true(log_limit_allow(&l, t + 1, 1000000, 2, &before));
    for (int i = 0; i < 5; i++)
        assert_false(log_limit_allow(&l, t + 2 + i, 1000000, 2, &before));
    assert_true(log_limit_allow(&l, t + 1000000, 1000000, 2, &before)); /* the next window */
    assert_int_equal(before, 5);
    assert_true(log_limit_allow(&l, t + 1000001, 1000000, 2, &before));
    assert_int_equal(before, 0);
}

static void test_idmap(void **state)
{
    struct idmap m;
    idmap_init(&m);
    char ids[500][ID_LEN + 1];
    for (int i = 0; i < 500; i++) {
        id_new(ids[i]);
        idmap_put(&m, ids[i], (void *)(intptr_t)(i + 1));
    }
    assert_int_equal(m.len, 500);
    for (int i = 0; i < 500; i += 2)
        assert_int_equal((intptr_t)idmap_del(&m, ids[i]), i + 1);
    for (int i = 0; i < 500; i++)
        assert_int_equal((intptr_t)idmap_get(&m, ids[i]), i % 2 ? i + 1 : 0);
    size_t it = 0, count = 0;
    while (idmap_next(&m, &it, NULL, NULL))
        count++;
    assert_int_equal(count, 250);
    /* churn: many inserts/deletes keep working after tombstones pile up */
    for (int r = 0; r < 20; r++)
        for (int i = 0; i < 500; i += 2) {
            idmap_put(&m, ids[i], (void *)1);
            idmap_del(&m, ids[i]);
        }
    assert_int_equal(m.len, 250);
    idmap_fini(&m);
}

static int fired[8];
static int order[8], n_order;
static void cb(void *arg)
{
    int i = (int)(intptr_t)arg;
    fired[i]++;
    order[n_order++] = i;
}

static void test_sched_manual(void **state)
{
    struct sched *s = sched_create_manual(1000);
    memset(fired, 0, sizeof(fired));
    n_order = 0;
    sched_at(s, 5000, cb, (void *)1);
    sched_at(s, 3000, cb, (void *)2);
    struct sched_timer *t3 = sched_at(s, 4000, cb, (void *)3);
    sched_at(s, 3000, cb, (void *)4); /* same deadline: creation order */
    sched_cancel(s, t3);
    sched_advance(s, 2500);
    assert_int_equal(n_order, 2);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 4);
    assert_int_equal(sched_now(s), 3500);
    sched_advance(s, 10000);
    assert_int_equal(fired[1], 1);
    assert_int_equal(fired[3], 0);
    assert_int_equal(sched_pending(s), 0);
    sched_at(s, 1, cb, (void *)5); /* in the past: fires on the next advance */
    sched_advance(s, 0);
    assert_int_equal(fired[5], 1);
    sched_at(s, 99999999, cb, (void *)6);
    sched_destroy(s); /* pending timers are freed, not called */
    assert_int_equal(fired[6], 0);
}

static void test_json_fields(void **state)
{
    json_t *o;
    struct error e;
    assert_int_equal(json_body_parse("", 0, &o, &e), 0);
    assert_true(json_is_object(o));
    json_decref(o);
    assert_true(json_body_parse("{\"a\":1,\"a\":2}", 13, &o, &e) < 0);
    assert_string_equal(e.reason, "INVALID_JSON_BODY");
    assert_int_equal(json_body_parse("{\"s\":\"x\",\"n\":5,\"z\":null,\"u\":\"\"}", 31, &o, &e), 0);
    const char *s = NULL;
    int64_t n = 0;
    assert_int_equal(jfield_string(o, "s", 10, &s, &e), 1);
    assert_int_equal(jfield_string(o, "z", 10, &s, &e), 0); /* null = absent */
    assert_int_equal(jfield_string(o, "missing", 10, &s, &e), 0);
    assert_true(jfield_string(o, "n", 10, &s, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FIELD_TYPE");
    assert_int_equal(jfield_int(o, "n", 0, 10, &n, &e), 1);
    assert_int_equal(n, 5);
    assert_true(jfield_int(o, "n", 6, 10, &n, &e) < 0);
    assert_string_equal(e.reason, "INVALID_FIELD_VALUE");
    char id[ID_LEN + 1];
    assert_int_equal(jfield_uuid(o, "u", id, &e), 1);
    assert_string_equal(id, ID_NIL);
    json_decref(o);
}

static void test_conference_view(void **state)
{
    struct conference c;
    memset(&c, 0, sizeof(c));
    id_new(c.id);
    id_new(c.customer_id);
    memcpy(c.pre_flow_id, ID_NIL, ID_LEN + 1);
    memcpy(c.post_flow_id, ID_NIL, ID_LEN + 1);
    memcpy(c.recording_id, ID_NIL, ID_LEN + 1);
    memcpy(c.transcribe_id, ID_NIL, ID_LEN + 1);
    c.status = CONFERENCE_PROGRESSING;
    c.tm_create = c.tm_update = INT64_C(1643868536672025);
    c.tm_delete = TM_NEVER;
    c.data = strdup("{\"a\":[1]}");
    json_t *v = conference_to_json(&c);
    static const char *keys[] = {
        "id", "customer_id", "type", "status", "name", "detail", "data", "timeout",
        "pre_flow_id", "post_flow_id", "conferencecall_ids", "recording_id", "recording_ids",
        "transcribe_id", "transcribe_ids", "direct_hash", "tm_end", "tm_create", "tm_update",
        "tm_delete"};
    assert_int_equal(json_object_size(v), sizeof(keys) / sizeof(keys[0]));
    const char *k;
    json_t *val;
    size_t i = 0;
    json_object_foreach(v, k, val) assert_string_equal(k, keys[i++]); /* API field order */
    assert_true(json_is_null(json_object_get(v, "tm_end")));
    assert_true(json_is_array(json_object_get(v, "conferencecall_ids")));
    assert_true(json_is_array(json_object_get(v, "recording_ids")));
    assert_true(json_is_object(json_object_get(v, "data")));
    assert_string_equal(json_string_value(json_object_get(v, "tm_delete")),
                        "9999-01-01 00:00:00.000000");
    assert_string_equal(json_string_value(json_object_get(v, "tm_create")),
                        "2022-02-03 06:08:56.672025");
    assert_string_equal(json_string_value(json_object_get(v, "name")), "");
    json_decref(v);
    conference_fini(&c);

    struct accesskey key;
    memset(&key, 0, sizeof(key));
    snprintf(key.token_hash, sizeof(key.token_hash), "secret-hash");
    v = accesskey_to_json(&key, NULL);
    assert_null(json_object_get(v, "token"));
    assert_null(json_object_get(v, "token_hash"));
    json_decref(v);
    struct agent a;
    memset(&a, 0, sizeof(a));
    a.password_hash = strdup("$argon2id$...");
    v = agent_to_json(&a);
    char *text = json_dumps(v, 0);
    assert_null(strstr(text, "argon2"));
    free(text);
    json_decref(v);
    agent_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format_parse), cmocka_unit_test(test_ids),
        cmocka_unit_test(test_config_sources),    cmocka_unit_test(test_idmap),
        cmocka_unit_test(test_sched_manual),      cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_conference_view),   cmocka_unit_test(test_log_limit),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
