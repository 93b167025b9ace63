/* libFuzzer target: uri_decode() on any bytes (both '+' modes) and uri_query_parse() on any query
 * string. A decoded result never grows, never holds a NUL, and decoding its own percent-encoding
 * gives it back; a parsed query has at most URI_MAX_PARAMS parameters, each a terminated string
 * that the lookup finds. Anything else, or a crash, leak or UB, is a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    char *out = malloc(size + 1), *enc = malloc(size * 3 + 1), *back = malloc(size + 1);
    if (!out || !enc || !back)
        abort();
    for (int plus = 0; plus < 2; plus++) {
        ssize_t n = uri_decode(src, size, plus, out, size + 1);
        if (n >= 0) {
            if ((size_t)n > size || strlen(out) != (size_t)n)
                abort();
            size_t e = 0;
            for (ssize_t i = 0; i < n; i++)
                e += (size_t)snprintf(enc + e, 4, "%%%02X", (unsigned char)out[i]);
            if (uri_decode(enc, e, plus, back, size + 1) != n || memcmp(back, out, (size_t)n))
                abort();
        } else if (n != URI_BAD_ESCAPE && n != URI_NUL) {
            abort(); /* the output had room for anything */
        }
    }
    struct uri_query q;
    int rc = uri_query_parse(&q, src, size);
    if (rc == 0) {
        if (q.n > URI_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < q.n; i++)
            if (!q.key[i] || !q.value[i] || !uri_query_get(&q, q.key[i]))
                abort();
    } else if (q.n != 0) {
        abort();
    }
    uri_query_fini(&q);
    free(out);
    free(enc);
    free(back);
    return 0;
}
