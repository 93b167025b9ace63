/* STUN (RFC 8489) as an ICE-lite agent (RFC 8445 §2.5) needs it: the server never sends checks;
 * it answers the Binding requests a full agent (a browser, controlling) sends to its host
 * candidate, authenticated with short-term credentials (the ufrag and pwd of the SDP), and
 * learns from a valid one where to send media. Parsing checks every length against what is left
 * (they all come from the network) and never reads outside buf[0..n). RFC 7983 demultiplexing
 * (which first byte is STUN, DTLS or RTP) is the caller's.
 *
 * Pure functions over caller-owned buffers: no allocation of ours (OpenSSL's one-shot HMAC
 * allocates inside), no locks, no state; any thread (the control thread calls them).
 * MESSAGE-INTEGRITY-SHA256 is not supported (browsers send MESSAGE-INTEGRITY); IPv4 only. */
#ifndef CONFERENCED_STUN_H
#define CONFERENCED_STUN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STUN_HEADER_LEN 20
#define STUN_MAX_MESSAGE 1500 /* longer messages are refused (they are never checks) */
#define STUN_RESPONSE_MAX 128 /* room for any response built here */
#define STUN_MAX_UNKNOWN 8    /* unknown attributes reported (and listed in a 420) */
#define STUN_UFRAG_LEN 8      /* ours; RFC 8839: 4 to 256 ice-chars */
#define STUN_PWD_LEN 24       /* ours; RFC 8839: 22 to 256 ice-chars (144 random bits here) */

/* What a valid Binding request says. Only the first of a repeated attribute counts; attributes
 * after MESSAGE-INTEGRITY (other than FINGERPRINT) are ignored (RFC 8489 §14.5). */
struct stun_binding {
    uint8_t txid[12];
    bool use_candidate; /* USE-CANDIDATE: the controlling agent nominates this pair */
    bool ice_controlling, ice_controlled;
    uint64_t tie_breaker;     /* of whichever of the two is present */
    uint32_t priority;        /* PRIORITY, 0 if absent */
    const char *remote_ufrag; /* USERNAME after "<local_ufrag>:", in buf, not terminated */
    size_t remote_ufrag_len;
    uint16_t unknown[STUN_MAX_UNKNOWN]; /* comprehension-required attributes we do not know */
    size_t unknown_count;
};

enum stun_result {
    STUN_OK = 0,
    STUN_NOT_STUN = -1,            /* no STUN header (stun_is_message is false) */
    STUN_MALFORMED = -2,           /* bad attribute lengths or order, too long, both roles */
    STUN_NOT_BINDING_REQUEST = -3, /* responses, indications, other methods: ignored */
    STUN_UNAUTHORIZED = -4,        /* wrong MESSAGE-INTEGRITY, USERNAME not "<local_ufrag>:..." */
    STUN_BAD_FINGERPRINT = -5,     /* FINGERPRINT present and wrong: not STUN after all */
    STUN_UNKNOWN_ATTRIBUTE = -6,   /* a comprehension-required attribute we do not know */
    STUN_NO_CREDENTIALS = -7,      /* no USERNAME or no MESSAGE-INTEGRITY (RFC 8489: 400) */
};

/* Any thread (pure). A STUN header: the first two bits 0, the magic cookie 0x2112A442, and a
 * length that is a multiple of 4 and is exactly what follows the 20-byte header. */
bool stun_is_message(const uint8_t *buf, size_t n);

/* Any thread (pure). Checks a Binding request to us: the structure (FINGERPRINT last, if any),
 * the FINGERPRINT, a USERNAME "<local_ufrag>:<remote ufrag>", its MESSAGE-INTEGRITY keyed with
 * local_pwd (compared in constant time), then unknown comprehension-required attributes (only
 * after authentication, as RFC 8489 §6.3 orders). out is always written: its txid whenever the
 * result is not STUN_NOT_STUN, its unknown list with STUN_UNKNOWN_ATTRIBUTE, the rest only
 * with STUN_OK (zero otherwise, so nothing from an unauthenticated request can be used). */
int stun_parse_binding(const uint8_t *buf, size_t n, const char *local_ufrag, const char *local_pwd,
                       struct stun_binding *out);

/* Any thread (pure). How an ICE-lite agent answers a stun_parse_binding() result: 200 for a
 * success response, 400, 401, 420 or 487 for an error response, 0 for no answer at all (not STUN,
 * not a Binding request, a bad FINGERPRINT). 487: the request says ICE-CONTROLLED, but a lite
 * agent is the controlled one and cannot switch (RFC 8445 §6.1.1), so the peer must (§7.3.1.1);
 * a lite agent has no tie-breaker of its own to compare. */
int stun_reply_code(int result, const struct stun_binding *b);

/* Any thread (pure). The success response to the request txid: XOR-MAPPED-ADDRESS of from (the
 * request's source), MESSAGE-INTEGRITY keyed with local_pwd, FINGERPRINT (64 bytes). Returns
 * its length, or 0 when cap is too small. */
size_t stun_build_binding_success(uint8_t *out, size_t cap, const uint8_t txid[12],
                                  const struct sockaddr_in *from, const char *local_pwd);

/* Any thread (pure). An error response (code 300..699; reason phrases for 400, 401, 420, 487)
 * with ERROR-CODE, UNKNOWN-ATTRIBUTES for 420 (unknown[0..count), count >= 1, at most
 * STUN_MAX_UNKNOWN used; ignored for other codes), MESSAGE-INTEGRITY when local_pwd is not NULL,
 * and FINGERPRINT. RFC 8489 §9.1.3: 400 and 401 answer requests that failed authentication and
 * carry no MESSAGE-INTEGRITY (local_pwd NULL); 420 and 487 answer authenticated ones and do.
 * Returns its length, or 0 when cap is too small or the arguments are wrong. */
size_t stun_build_binding_error(uint8_t *out, size_t cap, const uint8_t txid[12], int code,
                                const char *local_pwd, const uint16_t *unknown, size_t count);

/* Any thread (pure). Checks any STUN message (request, response, indication): its structure, its
 * FINGERPRINT when present, and with pwd its MESSAGE-INTEGRITY, which must then be present.
 * STUN_OK, STUN_NOT_STUN, STUN_MALFORMED, STUN_BAD_FINGERPRINT, STUN_NO_CREDENTIALS or
 * STUN_UNAUTHORIZED. */
int stun_verify_message(const uint8_t *buf, size_t n, const char *pwd);

/* Any thread (pure). buf[0..len) is a STUN header and attributes; appends MESSAGE-INTEGRITY
 * (when pwd is not NULL) and FINGERPRINT, setting the header's length as each requires. Returns
 * the new length, or 0 when cap is too small, the message would pass STUN_MAX_MESSAGE, or len is
 * not 20 plus a multiple of 4. */
size_t stun_append_integrity(uint8_t *buf, size_t len, size_t cap, const char *pwd);

/* Any thread. Random credentials for our side of a session: STUN_UFRAG_LEN and STUN_PWD_LEN
 * ice-chars (ALPHA / DIGIT / "+" / "/"), terminated. */
void stun_make_credentials(char ufrag[STUN_UFRAG_LEN + 1], char pwd[STUN_PWD_LEN + 1]);

#endif
