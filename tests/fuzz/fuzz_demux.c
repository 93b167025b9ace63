/* libFuzzer target: what a WebRTC leg does with a datagram on its one socket (RFC 7983). The
 * input is classified by its first byte; a would-be SRTP packet goes through SRTP's check and
 * decryption (it must be refused without reading or writing outside it), and, when it parses as
 * RTP, is protected by one side and unprotected by the other, which must give it back as it was.
 * STUN and DTLS have their own targets (fuzz_stun, fuzz_dtls). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/rtp.h"
#include "media/srtp_pair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key_a[30] = "0123456789abcdefghijklmnopqrs";
static const uint8_t key_b[30] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > RTP_MAX_PACKET)
        return 0;
    enum rtp_demux kind = rtp_demux(data, size);
    if (kind != RTP_DEMUX_RTP)
        return 0;
    char err[128];
    /* Keys are created per input: libsrtp's replay window would otherwise remember inputs. */
    struct srtp_pair *rx = srtp_pair_create(1, key_a, key_b, sizeof(key_a), 1, 0, err, sizeof(err));
    if (!rx)
        abort();
    uint8_t buf[RTP_MAX_PACKET + SRTP_PAIR_TRAILER];
    memcpy(buf, data, size);
    int n = srtp_pair_unprotect(rx, buf, size);
    if (n > (int)size)
        abort();
    struct rtp_packet p;
    if (rtp_parse(data, size, &p) == 0) {
        struct srtp_pair *tx =
            srtp_pair_create(1, key_b, key_a, sizeof(key_a), p.ssrc, 0, err, sizeof(err));
        if (!tx)
            abort();
        memcpy(buf, data, size);
        int m = srtp_pair_protect(tx, buf, size);
        if (m > 0) {
            if ((size_t)m > size + SRTP_PAIR_TRAILER)
                abort();
            struct srtp_pair *rx2 =
                srtp_pair_create(1, key_a, key_b, sizeof(key_a), 1, 0, err, sizeof(err));
            int back = srtp_pair_unprotect(rx2, buf, (size_t)m);
            if (back != (int)size || memcmp(buf, data, size) != 0)
                abort();
            srtp_pair_free(rx2);
        }
        srtp_pair_free(tx);
    }
    srtp_pair_free(rx);
    return 0;
}
