/* libFuzzer target: one DTLS association (OpenSSL's record layer, handshake parsing and
 * reassembly behind our BIO, the fingerprint check and the state machine around them) fed the
 * input as datagrams. Byte 0 picks the role: bit 0 clear, a server waiting for a ClientHello;
 * set, a client that has sent its own and takes the input as the server's answers. Then each
 * datagram is a 2-byte big-endian header and its bytes: the header's low 15 bits are the length
 * (cut to what is left), its top bit asks for a dtls_conn_timeout() call after the datagram.
 * Our identity is made once, in a temporary directory. The peer's fingerprint is that of the
 * certificates in the seeds (corpus/dtls: datagrams recorded from a handshake between two conns,
 * then cut, repeated and fragmented), so that a mutated flight gets past the fingerprint check
 * into the key exchange and signature checks. Any crash, leak or UB is a finding;
 * the state must stay coherent (an error text exactly when FAILED, keys exactly when
 * CONNECTED), every datagram sent must fit DTLS_MTU, and OpenSSL's error queue must be empty
 * after every call. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/log.h"
#include "media/dtls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seeds' server (what our client expects) and client (what our server expects). */
#define SEED_SERVER_FP                                                                             \
    "sha-256 49:E4:A0:A0:16:C8:4D:57:63:F3:36:AA:22:26:E9:54:FC:32:0A:C0:09:AE:DE:C3:A5:09:25:56:" \
    "63:E4:43:32"
#define SEED_CLIENT_FP                                                                             \
    "sha-256 D2:0D:76:CF:F2:0F:AB:72:D2:6C:E7:7A:F2:09:4E:49:C6:C0:16:6C:7D:2E:D8:11:5D:0B:56:28:" \
    "80:81:56:A9"

static struct {
    char dir[64];
    struct dtls_cert *cert;
} g;

static void cleanup(void)
{
    char path[128];
    dtls_cert_free(g.cert);
    snprintf(path, sizeof(path), "%s/%s", g.dir, DTLS_KEY_FILE);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", g.dir, DTLS_CERT_FILE);
    unlink(path);
    rmdir(g.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_LEVEL_ERROR);
    char err[512];
    snprintf(g.dir, sizeof(g.dir), "/tmp/fuzz_dtls.XXXXXX");
    if (!mkdtemp(g.dir))
        abort();
    g.cert = dtls_cert_load_or_create(g.dir, err, sizeof(err));
    if (!g.cert) {
        fprintf(stderr, "fuzz_dtls: %s\n", err);
        abort();
    }
    atexit(cleanup);
    return 0;
}

static void on_send(void *ctx, const uint8_t *buf, size_t len)
{
    size_t *sent = ctx;
    if (len == 0 || len > DTLS_MTU)
        abort();
    (void)buf[len - 1];
    (*sent)++;
}

static void check(struct dtls_conn *c, enum dtls_state st)
{
    if (ERR_peek_error() != 0)
        abort();
    if (st != dtls_conn_state(c))
        abort();
    const char *e = dtls_conn_error(c);
    if ((st == DTLS_FAILED) != (e[0] != '\0'))
        abort();
    struct dtls_srtp_keys k;
    int rc = dtls_conn_srtp_keys(c, &k);
    if ((st == DTLS_CONNECTED) != (rc == 0))
        abort();
    if (rc == 0 && ((k.key_len != 16 && k.key_len != 32) || (k.salt_len != 12 && k.salt_len != 14)))
        abort();
    int64_t t = dtls_conn_next_timeout_ms(c);
    if (t < -1 || ((st == DTLS_FAILED || st == DTLS_CLOSED) && t != -1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum dtls_role role = (data[0] & 1) ? DTLS_ROLE_CLIENT : DTLS_ROLE_SERVER;
    size_t sent = 0;
    char err[256];
    const char *fp = role == DTLS_ROLE_CLIENT ? SEED_SERVER_FP : SEED_CLIENT_FP;
    struct dtls_conn *c = dtls_conn_create(g.cert, role, fp, on_send, &sent, err, sizeof(err));
    if (!c || (role == DTLS_ROLE_CLIENT && sent == 0))
        abort();
    check(c, dtls_conn_state(c));
    size_t pos = 1;
    while (pos + 2 <= size) {
        size_t hdr = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        size_t len = hdr & 0x7fff;
        if (len > size - pos)
            len = size - pos;
        /* a copy of exactly its length, so that ASan sees any read past it */
        uint8_t *d = malloc(len ? len : 1);
        memcpy(d, data + pos, len);
        check(c, dtls_conn_input(c, d, len));
        free(d);
        pos += len;
        if (hdr & 0x8000)
            check(c, dtls_conn_timeout(c));
    }
    dtls_conn_close(c);
    check(c, dtls_conn_state(c));
    dtls_conn_free(c);
    return 0;
}
