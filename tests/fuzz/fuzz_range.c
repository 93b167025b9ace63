/* libFuzzer target: http_range_parse() on any header text over file sizes 0, 1, 44 and a large
 * one. A part it answers lies inside the file and is not empty; an unsatisfiable answer only
 * comes for a range that starts at or beyond the end (or asks for the last 0 bytes). Anything
 * else, or a crash or UB, is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *h = malloc(size + 1);
    if (!h)
        abort();
    memcpy(h, data, size);
    h[size] = '\0';
    static const uint64_t sizes[] = {0, 1, 44, UINT64_C(1) << 40};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        uint64_t off = 0, len = 0;
        int rc = http_range_parse(h, sizes[i], &off, &len);
        if (rc == 1 && (len == 0 || off >= sizes[i] || len > sizes[i] - off))
            abort();
        if (rc < -1 || rc > 1)
            abort();
    }
    free(h);
    return 0;
}
