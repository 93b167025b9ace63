/* Percent-decoding of request targets: escapes, '+', errors that are never silent cuts, and
 * query strings split before they are decoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fakes.h"

#include <string.h>

#include "core/uri.h"

static void test_decode(void **state)
{
    char out[32];
    assert_int_equal(uri_decode("a%2Fb", 5, false, out, sizeof(out)), 3);
    assert_string_equal(out, "a/b");
    assert_int_equal(uri_decode("a+b%2b", 6, false, out, sizeof(out)), 4);
    assert_string_equal(out, "a+b+");
    assert_int_equal(uri_decode("a+b", 3, true, out, sizeof(out)), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(uri_decode("", 0, false, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    /* errors */
    assert_int_equal(uri_decode("a%0", 3, false, out, sizeof(out)), URI_BAD_ESCAPE);
    assert_int_equal(uri_decode("a%", 2, false, out, sizeof(out)), URI_BAD_ESCAPE);
    assert_int_equal(uri_decode("%zz", 3, false, out, sizeof(out)), URI_BAD_ESCAPE);
    assert_int_equal(uri_decode("a%00b", 5, false, out, sizeof(out)), URI_NUL);
    assert_int_equal(uri_decode("abcd", 4, false, out, 4), URI_TOO_LONG);
    assert_int_equal(uri_decode("abc", 3, false, out, 4), 3);
    /* the length is what counts, not a terminator inside */
    assert_int_equal(uri_decode("ab\0c", 4, false, out, sizeof(out)), URI_NUL);
}

static void test_query(void **state)
{
    struct uri_query q;
    const char *s = "token=a%2Bb&page_size=10&&flag&x=1&x=2&sp=a+b";
    assert_int_equal(uri_query_parse(&q, s, strlen(s)), 0);
    assert_int_equal(q.n, 6);
    assert_string_equal(uri_query_get(&q, "token"), "a+b");
    assert_string_equal(uri_query_get(&q, "page_size"), "10");
    assert_string_equal(uri_query_get(&q, "flag"), "");
    assert_string_equal(uri_query_get(&q, "x"), "1"); /* the first one */
    assert_string_equal(uri_query_get(&q, "sp"), "a b");
    assert_null(uri_query_get(&q, "missing"));
    uri_query_fini(&q);

    assert_int_equal(uri_query_parse(&q, "a=%00", 5), URI_NUL);
    assert_int_equal(q.n, 0);
    uri_query_fini(&q);
    assert_int_equal(uri_query_parse(&q, "a=%G0", 5), URI_BAD_ESCAPE);
    uri_query_fini(&q);

    char many[URI_MAX_PARAMS * 4 + 8] = "";
    for (int i = 0; i <= URI_MAX_PARAMS; i++)
        strcat(many, i ? "&k" : "k");
    assert_int_equal(uri_query_parse(&q, many, strlen(many)), URI_TOO_MANY);
    uri_query_fini(&q);
    many[strlen(many) - 2] = '\0'; /* exactly the maximum */
    assert_int_equal(uri_query_parse(&q, many, strlen(many)), 0);
    assert_int_equal(q.n, URI_MAX_PARAMS);
    uri_query_fini(&q);

    assert_int_equal(uri_query_parse(&q, "", 0), 0);
    assert_int_equal(q.n, 0);
    uri_query_fini(&q);
    assert_non_null(strstr(uri_result_text(URI_NUL), "%00"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
