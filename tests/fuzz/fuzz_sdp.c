/* libFuzzer target: sdp_parse_offer() on any text, then sdp_build_answer() and
 * sdp_build_reanswer() on what it accepted. Our answer must read back as the same stream (same
 * codec and port): anything else, or a crash, leak or UB, is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sip/sip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    struct sdp_offer_result o, back;
    char answer[4096], again[4096];
    if (sdp_parse_offer(text, &o) == 0) {
        if (o.remote_port <= 0 || o.remote_port > 65535 || o.dtmf_pt > 127 ||
            memchr(o.remote_ip, '\0', sizeof(o.remote_ip)) == NULL)
            abort();
        int n = sdp_build_answer(&o, "192.0.2.1", 40000, 1, 1, answer, sizeof(answer));
        if (n > 0) {
            if ((size_t)n != strlen(answer) || sdp_parse_offer(answer, &back) != 0 ||
                back.codec != o.codec || back.remote_port != 40000 ||
                back.media_count != o.media_count)
                abort();
            if (sdp_build_reanswer(text, answer, again, sizeof(again)) < 0)
                abort(); /* the same offer again must be answerable */
        }
        sdp_build_answer(&o, "192.0.2.1", 40000, 1, 1, answer, (size_t)(data[0] % 64) + 1);
    }
    free(text);
    return 0;
}
