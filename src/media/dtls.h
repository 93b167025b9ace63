/* DTLS for WebRTC media (DTLS-SRTP, RFC 5763/5764) with OpenSSL: the server's DTLS identity (a
 * key and a self-signed certificate kept in the data directory) and one DTLS 1.2 association per
 * ICE transport, whose only product is the SRTP keys.
 *
 * No sockets here: datagrams the media engine received are handed to dtls_conn_input(), and what
 * OpenSSL writes goes out through the conn's send callback, one datagram (at most
 * DTLS_MTU bytes) per call. Trust comes from the SDP, not from a CA: the handshake fails unless
 * the peer's certificate has the fingerprint its SDP announced (a=fingerprint, RFC 8122).
 *
 * What is negotiated: DTLS 1.2 only, ECDHE over X25519 or P-256 with AES-GCM or ChaCha20-Poly1305,
 * the use_srtp extension (required: a handshake that agrees no SRTP profile fails), a certificate
 * from both sides, no session resumption, no renegotiation (a peer's attempt is answered with a
 * no_renegotiation warning; the association goes on unless the peer then gives up, as OpenSSL's
 * own clients do with a fatal alert), no cookie exchange (ICE connectivity checks have proven the
 * address). Application data after the handshake (a data channel's SCTP) is read and dropped.
 *
 * Memory: an established conn holds about 40 KiB (OpenSSL keeps its handshake message buffer for
 * late retransmissions; the record buffers are given back between calls), one that has answered
 * a ClientHello and waits about 77 KiB (bench/dtls.c measures both).
 *
 * Retransmission follows OpenSSL's schedule (RFC 6347 §4.2.4.1: 1 s, doubling up to 60 s; the
 * handshake fails at the 13th timeout, some 8 minutes on): the caller bounds the setup time as a
 * whole (ICE's own timeouts do).
 *
 * Threads: a cert is made on the control thread at start-up (it touches the disk) and may then be
 * shared by conns on any thread. A conn is used by one thread at a time (the control thread);
 * OpenSSL's error queue, which this module empties after every call, is per thread. */
#ifndef CONFERENCED_DTLS_H
#define CONFERENCED_DTLS_H

#include <stddef.h>
#include <stdint.h>

/* Datagrams sent are at most this long (a size that fits under any path's MTU with the IP, UDP
 * and TURN headers); larger records are fragmented by DTLS. */
#define DTLS_MTU 1200
/* Datagrams received that are longer than this are dropped unread. */
#define DTLS_MAX_DATAGRAM 16384
/* dtls_cert_fingerprint()'s longest value: "sha-512 " and 64 hex pairs with their colons. */
#define DTLS_FINGERPRINT_MAX (8 + 64 * 3)
/* File names inside the data directory. */
#define DTLS_KEY_FILE "dtls-key.pem"
#define DTLS_CERT_FILE "dtls-cert.pem"

struct dtls_cert;
struct dtls_conn;

/* Control thread, at start-up. The server's DTLS identity in dir (which must exist), with the
 * SSL_CTX every conn is made from:
 * - neither file there: an ECDSA P-256 key and a self-signed X.509 certificate (CN
 *   "conferenced", a random 128-bit serial, valid from 1 year back to 10 years ahead) are made
 *   and written (dtls-key.pem mode 0600, dtls-cert.pem 0644; each through a temporary file and a
 *   rename, so a crash leaves no half-written file);
 * - both there: they are loaded (a key file readable by others is made 0600, with a warning); an
 *   expired certificate (or one expiring within a day) is replaced by a new pair;
 * - anything else (only one of the two, a file that cannot be read or parsed, an encrypted key,
 *   a key that is not the certificate's) is an error naming the file: nothing is overwritten
 *   (the files may be someone's on purpose); removing both gives a new identity.
 * Returns NULL with a message in err on failure. */
struct dtls_cert *dtls_cert_load_or_create(const char *dir, char *err, size_t errlen);
/* Any thread, once no other thread uses the cert. Conns made from it keep working (they hold
 * their own reference to its SSL_CTX). NULL is a no-op. */
void dtls_cert_free(struct dtls_cert *c);
/* Any thread. "sha-256 AB:CD:...": the value of the SDP's a=fingerprint attribute (RFC 8122),
 * valid as long as the cert. */
const char *dtls_cert_fingerprint(const struct dtls_cert *c);

/* Who sends the ClientHello: the SDP's a=setup (RFC 5763 §5). */
enum dtls_role {
    DTLS_ROLE_SERVER, /* a=setup:passive: we wait for the ClientHello */
    DTLS_ROLE_CLIENT, /* a=setup:active: we send it */
};

enum dtls_state {
    DTLS_HANDSHAKING,
    DTLS_CONNECTED, /* the SRTP keys are there (dtls_conn_srtp_keys) */
    DTLS_FAILED,    /* for good: dtls_conn_error() says why */
    DTLS_CLOSED,    /* the peer sent close_notify (answered), or dtls_conn_close() */
};

/* One datagram for the peer. Called from inside dtls_conn_create(), _input(), _timeout() and
 * _close(), on their thread; it must not call back into the conn (nor free it). */
typedef void (*dtls_send_fn)(void *ctx, const uint8_t *buf, size_t len);

/* Same thread as the conn's later calls. One association with cert's identity. remote_fingerprint:
 * the peer's a=fingerprint value, "<hash> <hex pairs separated by colons>", the hash one of
 * sha-1, sha-224, sha-256, sha-384, sha-512 (RFC 8122's list less md2 and md5, which are refused),
 * names and hex in any case. A client sends its first flight at once, through send. Returns NULL
 * with a message in err for a malformed fingerprint. The conn holds no reference to cert. */
struct dtls_conn *dtls_conn_create(struct dtls_cert *cert, enum dtls_role role,
                                   const char *remote_fingerprint, dtls_send_fn send, void *ctx,
                                   char *err, size_t errlen);
/* The conn's thread. One datagram from the peer (any bytes, any length: what is not DTLS, or
 * longer than DTLS_MAX_DATAGRAM, is dropped). May send (a flight, a retransmission, an alert).
 * Returns the state after it; once FAILED or CLOSED, input is ignored. */
enum dtls_state dtls_conn_input(struct dtls_conn *c, const uint8_t *buf, size_t len);
/* The conn's thread. Milliseconds until dtls_conn_timeout() should be called (0: now), or -1
 * when no timer is needed (nothing is waiting for an answer, or the conn is over). Ask again after
 * every call into the conn. */
int64_t dtls_conn_next_timeout_ms(struct dtls_conn *c);
/* The conn's thread. Retransmits the last flight if its timer has run out (calling early does
 * nothing); fails the handshake after too many. Returns the state after it. */
enum dtls_state dtls_conn_timeout(struct dtls_conn *c);
/* The conn's thread. Sends close_notify if connected (nothing during the handshake) and makes the
 * conn CLOSED; a conn already FAILED or CLOSED is left as it is. */
void dtls_conn_close(struct dtls_conn *c);
/* The conn's thread. */
enum dtls_state dtls_conn_state(const struct dtls_conn *c);
/* The conn's thread. Why the conn failed, for a log line ("" unless FAILED); valid until the
 * conn is freed. */
const char *dtls_conn_error(const struct dtls_conn *c);

/* The keys of one SRTP association in both directions (RFC 5764 §4.2). */
struct dtls_srtp_keys {
    int profile;        /* SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2): 1 =
                         * SRTP_AES128_CM_HMAC_SHA1_80, 2 = _SHA1_32, 7 = SRTP_AEAD_AES_128_GCM, 8 =
                         * SRTP_AEAD_AES_256_GCM; offered in the order 1, 7, 8, 2 (a server takes its
                         * own first choice among the client's) */
    uint8_t local[64];  /* master key || master salt we protect what we send with */
    uint8_t remote[64]; /* master key || master salt the peer protects what it sends with */
    size_t key_len;     /* master key length (16 or 32) */
    size_t salt_len;    /* master salt length (14 for 1 and 2, 12 for 7 and 8) */
};
/* The conn's thread, once CONNECTED. Exports the keying material ("EXTRACTOR-dtls_srtp") and
 * splits it by role: local gets the client's write key and salt when we are the client. Returns 0,
 * or -1 when not connected. Wipe out after use (OPENSSL_cleanse or explicit_bzero). */
int dtls_conn_srtp_keys(const struct dtls_conn *c, struct dtls_srtp_keys *out);
/* The conn's thread (not from inside its send callback). Sends nothing. NULL is a no-op. */
void dtls_conn_free(struct dtls_conn *c);

#endif
