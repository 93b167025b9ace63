/* SRTP for a WebRTC leg (RFC 3711, keyed by DTLS-SRTP, RFC 5764), over libsrtp2: one session
 * protects what we send under our SSRC, another checks and decrypts what the peer sends.
 *
 * Created and freed on the control thread (libsrtp allocates); protect and unprotect run on the
 * media thread that has the leg and never allocate, except libsrtp's one copy of the inbound
 * stream on the first packet when the peer's SSRC was not known in advance (remote_ssrc 0). */
#ifndef CONFERENCED_SRTP_PAIR_H
#define CONFERENCED_SRTP_PAIR_H

#include <stddef.h>
#include <stdint.h>

/* What protecting adds to a packet at most (libsrtp's SRTP_MAX_TRAILER_LEN). */
#define SRTP_PAIR_TRAILER 144

struct srtp_pair;

/* Control thread. profile: the DTLS-SRTP protection profile (RFC 5764 4.1.2: 1
 * AES128_CM_HMAC_SHA1_80, 2 AES128_CM_HMAC_SHA1_32, 7 AEAD_AES_128_GCM, 8 AEAD_AES_256_GCM);
 * local and remote: master key then master salt, key_len bytes each side. NULL with err when the
 * profile or the key length is not one libsrtp takes. */
struct srtp_pair *srtp_pair_create(int profile, const uint8_t *local, const uint8_t *remote,
                                   size_t key_len, uint32_t local_ssrc, uint32_t remote_ssrc,
                                   char *err, size_t errlen);
/* Control thread (or whoever owns it); NULL is a no-op. */
void srtp_pair_free(struct srtp_pair *p);
/* Media thread. Protects the RTP packet buf[0..len) in place (buf has SRTP_PAIR_TRAILER bytes of
 * room after it): the SRTP packet's length, or -1. */
int srtp_pair_protect(struct srtp_pair *p, uint8_t *buf, size_t len);
/* Media thread. Authenticates and decrypts an SRTP packet in place: the RTP packet's length, or
 * -1 (forged, replayed, another SSRC, malformed: the caller drops it). */
int srtp_pair_unprotect(struct srtp_pair *p, uint8_t *buf, size_t len);

#endif
