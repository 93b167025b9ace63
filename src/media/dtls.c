/* DTLS-SRTP with OpenSSL 3 (see dtls.h). OpenSSL does the protocol; what is ours is the identity's
 * life on disk, the fingerprint check that replaces certificate-chain trust, and a BIO that turns
 * OpenSSL's reads and writes into "the datagram being handled" and "the send callback". */
#include "media/dtls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define SRTP_PROFILES                                                                              \
    "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_32"
/* AEAD suites only, ECDSA first (our certificate; a browser's too). RSA suites serve a peer
 * server with an RSA certificate when we are the client. */
#define CIPHERS                                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"   \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
#define GROUPS "X25519:P-256"
#define CERT_DAYS_BACK 365
#define CERT_DAYS_AHEAD 3650
#define CERT_RENEW_MARGIN_S 86400 /* a certificate this close to its end is replaced */

struct dtls_cert {
    SSL_CTX *ctx; /* holds the key and the certificate */
    char fingerprint[DTLS_FINGERPRINT_MAX + 1];
};

struct dtls_conn {
    SSL *ssl;
    enum dtls_role role;
    enum dtls_state state;
    dtls_send_fn send;
    void *ctx;
    const EVP_MD *md; /* the remote fingerprint's hash */
    const char *md_name;
    unsigned char fp[EVP_MAX_MD_SIZE];
    unsigned fp_len;
    const uint8_t *in; /* the datagram being handled, until OpenSSL has read it */
    size_t in_len;
    char error[384];
};

/* ---- errors ---- */

/* OpenSSL's queued reasons into buf ("" when none; "; " between, repeats left out), and the
 * queue emptied. */
static void openssl_reasons(char *buf, size_t cap)
{
    unsigned long e, last = 0;
    size_t used = 0;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_REASON(e) == ERR_GET_REASON(last) && ERR_GET_LIB(e) == ERR_GET_LIB(last))
            continue;
        last = e;
        const char *reason = ERR_reason_error_string(e);
        char code[128];
        if (!reason) {
            ERR_error_string_n(e, code, sizeof(code));
            reason = code;
        }
        if (used + 1 < cap) {
            int n = snprintf(buf + used, cap - used, "%s%s", used ? "; " : "", reason);
            used = n > 0 && (size_t)n < cap - used ? used + (size_t)n : cap - 1;
        }
    }
}

/* err = what, OpenSSL's reasons in brackets when it gave any, then tail. */
static void set_err(char *err, size_t errlen, const char *what, const char *tail)
{
    char reasons[256];
    openssl_reasons(reasons, sizeof(reasons));
    if (err && errlen > 0)
        snprintf(err, errlen, "%s%s%s%s%s", what, reasons[0] ? " (" : "", reasons,
                 reasons[0] ? ")" : "", tail);
}

/* ---- the identity on disk ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
    return -1; /* an encrypted key is refused rather than prompted for */
}

/* Writes data to tmp (created with mode, synced to disk). */
static int write_tmp(const char *tmp, const char *data, size_t len, mode_t mode, char *err,
                     size_t errlen)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    int e = fchmod(fd, mode) == 0 ? 0 : errno; /* whatever the umask */
    for (size_t off = 0; e == 0 && off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            e = n < 0 ? errno : EIO;
        else
            off += (size_t)n;
    }
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && e == 0)
        e = errno;
    if (e == 0)
        return 0;
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(e));
    unlink(tmp);
    return -1;
}

static X509 *make_certificate(EVP_PKEY *key)
{
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    unsigned char sbytes[16];
    bool ok = x && serial && RAND_bytes(sbytes, sizeof(sbytes)) == 1;
    if (ok) {
        sbytes[0] = (unsigned char)((sbytes[0] & 0x7f) | 0x40); /* positive, 16 bytes long */
        ok = BN_bin2bn(sbytes, sizeof(sbytes), serial) &&
             BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) &&
             X509_set_version(x, X509_VERSION_3) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -(long)CERT_DAYS_BACK * 86400) &&
             X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS_AHEAD, 0, NULL);
    }
    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    ok = name &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"conferenced",
                                    -1, -1, 0) &&
         X509_set_issuer_name(x, name) && X509_set_pubkey(x, key) &&
         X509_sign(x, key, EVP_sha256()) > 0;
    BN_free(serial);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* A new key and certificate, written to the two files. */
static int generate(const char *key_path, const char *cert_path, EVP_PKEY **key_out,
                    X509 **cert_out, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? make_certificate(key) : NULL;
    BIO *kb = BIO_new(BIO_s_secmem()), *cb = BIO_new(BIO_s_mem());
    char *kdata = NULL, *cdata = NULL;
    long klen = 0, clen = 0;
    if (!x || !kb || !cb || !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(cb, x) || (klen = BIO_get_mem_data(kb, &kdata)) <= 0 ||
        (clen = BIO_get_mem_data(cb, &cdata)) <= 0) {
        set_err(err, errlen, "cannot make a DTLS key and certificate", "");
        goto fail;
    }
    /* Both written in full before either replaces anything: a crash leaves the old pair or the
     * new one (or, between the two renames, a new key beside the old certificate: refused at the
     * next start as a key that is not the certificate's). */
    char key_tmp[4200], cert_tmp[4200];
    snprintf(key_tmp, sizeof(key_tmp), "%s.tmp", key_path);
    snprintf(cert_tmp, sizeof(cert_tmp), "%s.tmp", cert_path);
    if (write_tmp(key_tmp, kdata, (size_t)klen, 0600, err, errlen) != 0)
        goto fail;
    if (write_tmp(cert_tmp, cdata, (size_t)clen, 0644, err, errlen) != 0) {
        unlink(key_tmp);
        goto fail;
    }
    if (rename(key_tmp, key_path) != 0 || rename(cert_tmp, cert_path) != 0) {
        snprintf(err, errlen, "cannot replace %s or %s: %s", key_path, cert_path, strerror(errno));
        unlink(key_tmp);
        unlink(cert_tmp);
        goto fail;
    }
    BIO_free(kb);
    BIO_free(cb);
    *key_out = key;
    *cert_out = x;
    return 0;
fail:
    BIO_free(kb);
    BIO_free(cb);
    X509_free(x);
    EVP_PKEY_free(key);
    return -1;
}

static const char *const REMOVE_BOTH =
    ": remove " DTLS_KEY_FILE " and " DTLS_CERT_FILE " to have a new DTLS identity made";

/* Loads the pair; checks that they belong together. */
static int load(const char *key_path, const char *cert_path, EVP_PKEY **key_out, X509 **cert_out,
                char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    BIO *b = BIO_new_file(key_path, "r");
    if (b)
        key = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
    BIO_free(b);
    if (!key) {
        char what[4200];
        snprintf(what, sizeof(what), "%s is not a readable unencrypted PEM private key", key_path);
        set_err(err, errlen, what, REMOVE_BOTH);
        return -1;
    }
    b = BIO_new_file(cert_path, "r");
    if (b)
        x = PEM_read_bio_X509(b, NULL, no_password, NULL);
    BIO_free(b);
    if (!x) {
        char what[4200];
        snprintf(what, sizeof(what), "%s is not a readable PEM certificate", cert_path);
        set_err(err, errlen, what, REMOVE_BOTH);
        EVP_PKEY_free(key);
        return -1;
    }
    if (X509_check_private_key(x, key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "%s is not the key of %s%s", key_path, cert_path, REMOVE_BOTH);
        X509_free(x);
        EVP_PKEY_free(key);
        return -1;
    }
    *key_out = key;
    *cert_out = x;
    return 0;
}

static bool expiring(X509 *x)
{
    time_t soon = time(NULL) + CERT_RENEW_MARGIN_S;
    return X509_cmp_time(X509_get0_notAfter(x), &soon) <= 0;
}

/* Like stat() but: 1 there, 0 absent, -1 cannot tell (err filled). */
static int exists(const char *path, struct stat *st, char *err, size_t errlen)
{
    if (stat(path, st) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return -1;
}

static int verify_peer(X509_STORE_CTX *store, void *arg);

static SSL_CTX *make_ctx(EVP_PKEY *key, X509 *x, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(DTLS_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) ||
        SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 || SSL_CTX_set_cipher_list(ctx, CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, GROUPS) != 1 ||
        SSL_CTX_set_tlsext_use_srtp(ctx, SRTP_PROFILES) != 0 /* 0 is success here */) {
        set_err(err, errlen, "cannot set up DTLS", "");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Ask for the client's certificate, and judge either side's by its fingerprint alone. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, verify_peer, NULL);
    return ctx;
}

static void format_fingerprint(X509 *x, char out[DTLS_FINGERPRINT_MAX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (X509_digest(x, EVP_sha256(), md, &n) != 1)
        die("cannot hash the DTLS certificate");
    static const char hex[] = "0123456789ABCDEF";
    char *p = out + snprintf(out, DTLS_FINGERPRINT_MAX + 1, "sha-256 ");
    for (unsigned i = 0; i < n; i++) {
        if (i)
            *p++ = ':';
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 15];
    }
    *p = '\0';
}

struct dtls_cert *dtls_cert_load_or_create(const char *dir, char *err, size_t errlen)
{
    char key_path[4096], cert_path[4096];
    struct stat kst, cst, dst;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    if (!dir || stat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        snprintf(err, errlen, "not a directory: %s", dir ? dir : "(none)");
        return NULL;
    }
    if (snprintf(key_path, sizeof(key_path), "%s/%s", dir, DTLS_KEY_FILE) >=
            (int)sizeof(key_path) ||
        snprintf(cert_path, sizeof(cert_path), "%s/%s", dir, DTLS_CERT_FILE) >=
            (int)sizeof(cert_path)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return NULL;
    }
    int have_key = exists(key_path, &kst, err, errlen);
    int have_cert = have_key < 0 ? -1 : exists(cert_path, &cst, err, errlen);
    if (have_key < 0 || have_cert < 0)
        return NULL;
    if (have_key != have_cert) {
        snprintf(err, errlen, "%s is there but %s is not%s", have_key ? key_path : cert_path,
                 have_key ? cert_path : key_path, REMOVE_BOTH);
        return NULL;
    }
    if (!have_key) {
        if (generate(key_path, cert_path, &key, &x, err, errlen) != 0)
            return NULL;
        log_info("dtls_identity=created dir=%s", dir);
    } else {
        if (load(key_path, cert_path, &key, &x, err, errlen) != 0)
            return NULL;
        if ((kst.st_mode & 077) != 0) {
            log_warn("dtls_identity=key_mode_fixed path=%s mode=%03o", key_path,
                     (unsigned)(kst.st_mode & 0777));
            if (chmod(key_path, 0600) != 0) {
                snprintf(err, errlen, "cannot make %s private (mode 0600): %s", key_path,
                         strerror(errno));
                goto fail;
            }
        }
        if (expiring(x)) {
            X509_free(x);
            EVP_PKEY_free(key);
            x = NULL;
            key = NULL;
            if (generate(key_path, cert_path, &key, &x, err, errlen) != 0)
                return NULL;
            log_info("dtls_identity=renewed reason=expired dir=%s", dir);
        }
    }
    SSL_CTX *ctx = make_ctx(key, x, err, errlen);
    if (!ctx)
        goto fail;
    struct dtls_cert *c = xcalloc(1, sizeof(*c));
    c->ctx = ctx;
    format_fingerprint(x, c->fingerprint);
    X509_free(x); /* the SSL_CTX holds its own references */
    EVP_PKEY_free(key);
    ERR_clear_error();
    return c;
fail:
    X509_free(x);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return NULL;
}

void dtls_cert_free(struct dtls_cert *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    free(c);
}

const char *dtls_cert_fingerprint(const struct dtls_cert *c)
{
    return c->fingerprint;
}

/* ---- the BIO: reads give the datagram being handled, writes go to the send callback ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    struct dtls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len > 0)
        c->send(c->ctx, (const uint8_t *)buf, (size_t)len);
    return len;
}

/* One read, one datagram, cut to what the reader takes (as a UDP socket does). */
static int bio_read(BIO *b, char *buf, int len)
{
    struct dtls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!c->in || len <= 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = c->in_len < (size_t)len ? c->in_len : (size_t)len;
    memcpy(buf, c->in, n);
    c->in = NULL;
    c->in_len = 0;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* every write was sent at once */
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        return 0; /* DTLS_MTU is the datagram's size itself */
    default:
        return 0; /* timer notices, MTU queries (off), pending counts (none) */
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_bio_method(void)
{
    int type = BIO_get_new_index();
    bio_method = type > 0 ? BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "conferenced-dtls") : NULL;
    if (!bio_method || !BIO_meth_set_write(bio_method, bio_write) ||
        !BIO_meth_set_read(bio_method, bio_read) || !BIO_meth_set_ctrl(bio_method, bio_ctrl) ||
        !BIO_meth_set_create(bio_method, bio_create))
        die("cannot make the DTLS BIO method");
}

/* ---- the remote fingerprint ---- */

static const struct {
    const char *name;
    const char *ossl;
} hashes[] = {
    {"sha-1", "SHA1"},     {"sha-224", "SHA224"}, {"sha-256", "SHA256"},
    {"sha-384", "SHA384"}, {"sha-512", "SHA512"},
};

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* "<hash> XX:XX:..." (RFC 8122 §5: hash-func SP fingerprint; surrounding blanks allowed). */
static int parse_fingerprint(struct dtls_conn *c, const char *s, char *err, size_t errlen)
{
    if (!s) {
        snprintf(err, errlen, "no remote fingerprint");
        return -1;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    size_t nlen = strcspn(s, " \t");
    const char *ossl = NULL;
    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++)
        if (strlen(hashes[i].name) == nlen && strncasecmp(s, hashes[i].name, nlen) == 0) {
            ossl = hashes[i].ossl;
            c->md_name = hashes[i].name;
        }
    if (!ossl) {
        snprintf(err, errlen,
                 "unsupported fingerprint hash \"%.*s\" (sha-1, sha-224, sha-256, sha-384 or "
                 "sha-512)",
                 (int)(nlen < 16 ? nlen : 16), s);
        return -1;
    }
    const char *name = s;
    c->md = EVP_get_digestbyname(ossl);
    if (!c->md)
        die("OpenSSL has no %s", ossl);
    s += nlen;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t want = (size_t)EVP_MD_get_size(c->md);
    size_t n = 0;
    for (;;) {
        int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
        if (lo < 0)
            break;
        c->fp[n++] = (unsigned char)(hi << 4 | lo);
        s += 2;
        if (*s != ':' || n == want) /* a colon after the last pair is left to be refused */
            break;
        s++;
    }
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    if (n != want || *s != '\0') {
        snprintf(err, errlen, "malformed %.*s fingerprint (want %zu hex pairs separated by colons)",
                 (int)nlen, name, want);
        return -1;
    }
    c->fp_len = (unsigned)n;
    return 0;
}

/* OpenSSL's certificate check, replaced: the peer's own certificate must have the fingerprint
 * its SDP gave, whatever signed it (WebRTC certificates are self-signed). */
static int verify_peer(X509_STORE_CTX *store, void *arg)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct dtls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *peer = X509_STORE_CTX_get0_cert(store);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!c || !peer)
        return 0;
    if (X509_digest(peer, c->md, md, &n) != 1 || n != c->fp_len ||
        CRYPTO_memcmp(md, c->fp, n) != 0) {
        snprintf(c->error, sizeof(c->error),
                 "the peer's certificate does not have the %s fingerprint of its SDP", c->md_name);
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

/* ---- the association ---- */

/* Key and salt lengths of the profiles we offer (RFC 5764 §4.1.2, RFC 7714 §12). */
static int srtp_lengths(unsigned long id, size_t *key, size_t *salt)
{
    switch (id) {
    case SRTP_AES128_CM_SHA1_80:
    case SRTP_AES128_CM_SHA1_32:
        *key = 16;
        *salt = 14;
        return 0;
    case SRTP_AEAD_AES_128_GCM:
        *key = 16;
        *salt = 12;
        return 0;
    case SRTP_AEAD_AES_256_GCM:
        *key = 32;
        *salt = 12;
        return 0;
    default:
        return -1;
    }
}

static void fail(struct dtls_conn *c, const char *what)
{
    c->state = DTLS_FAILED;
    char reasons[160];
    openssl_reasons(reasons, sizeof(reasons));
    if (c->error[0] == '\0') /* the fingerprint check may have said it better */
        snprintf(c->error, sizeof(c->error), "%s%s%s", what, reasons[0] ? ": " : "", reasons);
}

/* After an SSL call that returned r <= 0. */
static void after_error(struct dtls_conn *c, int r, const char *what)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        return;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        c->state = DTLS_CLOSED;
        ERR_clear_error();
        return;
    default:
        fail(c, what);
    }
}

static void established(struct dtls_conn *c)
{
    SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(c->ssl);
    size_t k, s;
    if (!p || srtp_lengths(p->id, &k, &s) != 0) {
        fail(c, "the handshake agreed no SRTP profile (the peer offered none of "
                "AES128_CM_SHA1_80, _32, AEAD_AES_128_GCM, AEAD_AES_256_GCM in use_srtp)");
        return;
    }
    if (!SSL_get0_peer_certificate(c->ssl) || SSL_get_verify_result(c->ssl) != X509_V_OK) {
        fail(c, "the peer's certificate was not checked");
        return;
    }
    c->state = DTLS_CONNECTED;
}

/* After the handshake: records are read and dropped (application data), or handled inside
 * OpenSSL (alerts, a refused renegotiation, a retransmitted Finished answered with ours). */
static void drain(struct dtls_conn *c)
{
    unsigned char buf[2048];
    for (;;) {
        int r = SSL_read(c->ssl, buf, sizeof(buf));
        if (r > 0)
            continue;
        after_error(c, r, "DTLS failed");
        if (c->state == DTLS_CLOSED) {
            SSL_shutdown(c->ssl); /* our close_notify in answer */
            ERR_clear_error();
        }
        return;
    }
}

static void advance(struct dtls_conn *c)
{
    if (c->state == DTLS_HANDSHAKING) {
        int r = SSL_do_handshake(c->ssl);
        if (r == 1)
            established(c);
        else
            after_error(c, r, "DTLS handshake failed");
    }
    if (c->state == DTLS_CONNECTED)
        drain(c);
    ERR_clear_error();
}

/* Why the buffers come and go: OpenSSL keeps a read and a write buffer of about 17 KB each per
 * association, and an established one idles (media is SRTP, not DTLS records), so they would be
 * most of its memory; SSL_MODE_RELEASE_BUFFERS does not cover DTLS's writes. Outside the
 * handshake they are given back after every call and set up again before the next (DTLS's write
 * path expects its buffer to be there). */
static void buffers_in(struct dtls_conn *c)
{
    if (SSL_alloc_buffers(c->ssl) != 1)
        die("out of memory for DTLS buffers");
}

static void buffers_out(struct dtls_conn *c)
{
    if (c->state != DTLS_HANDSHAKING)
        (void)SSL_free_buffers(c->ssl); /* refused (kept) while a record is half read */
}

struct dtls_conn *dtls_conn_create(struct dtls_cert *cert, enum dtls_role role,
                                   const char *remote_fingerprint, dtls_send_fn send, void *ctx,
                                   char *err, size_t errlen)
{
    assert(cert && send);
    pthread_once(&bio_once, make_bio_method);
    struct dtls_conn *c = xcalloc(1, sizeof(*c));
    c->role = role;
    c->state = DTLS_HANDSHAKING;
    c->send = send;
    c->ctx = ctx;
    if (parse_fingerprint(c, remote_fingerprint, err, errlen) != 0) {
        free(c);
        return NULL;
    }
    ERR_clear_error();
    c->ssl = SSL_new(cert->ctx);
    BIO *b = c->ssl ? BIO_new(bio_method) : NULL;
    if (!b) {
        set_err(err, errlen, "cannot make a DTLS association", "");
        SSL_free(c->ssl);
        free(c);
        return NULL;
    }
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b); /* one reference for both directions */
    SSL_set_app_data(c->ssl, c);
    if (DTLS_set_link_mtu(c->ssl, DTLS_MTU) != 1)
        die("DTLS refuses an MTU of %d", DTLS_MTU);
    if (role == DTLS_ROLE_CLIENT) {
        SSL_set_connect_state(c->ssl);
        advance(c);
        if (c->state == DTLS_FAILED) {
            snprintf(err, errlen, "%s", c->error);
            dtls_conn_free(c);
            return NULL;
        }
    } else {
        SSL_set_accept_state(c->ssl);
    }
    ERR_clear_error();
    return c;
}

enum dtls_state dtls_conn_input(struct dtls_conn *c, const uint8_t *buf, size_t len)
{
    if ((c->state != DTLS_HANDSHAKING && c->state != DTLS_CONNECTED) || !buf || len == 0 ||
        len > DTLS_MAX_DATAGRAM)
        return c->state;
    ERR_clear_error();
    buffers_in(c);
    c->in = buf;
    c->in_len = len;
    advance(c);
    c->in = NULL; /* whatever OpenSSL did not read of it is dropped */
    c->in_len = 0;
    buffers_out(c);
    return c->state;
}

int64_t dtls_conn_next_timeout_ms(struct dtls_conn *c)
{
    struct timeval tv;
    if (c->state != DTLS_HANDSHAKING && c->state != DTLS_CONNECTED)
        return -1;
    if (DTLSv1_get_timeout(c->ssl, &tv) != 1)
        return -1;
    return (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
}

enum dtls_state dtls_conn_timeout(struct dtls_conn *c)
{
    if (c->state != DTLS_HANDSHAKING && c->state != DTLS_CONNECTED)
        return c->state;
    ERR_clear_error();
    buffers_in(c);
    if (DTLSv1_handle_timeout(c->ssl) < 0)
        fail(c, "DTLS handshake failed");
    else
        advance(c); /* a timeout may end the handshake's wait, or its last try */
    ERR_clear_error();
    buffers_out(c);
    return c->state;
}

void dtls_conn_close(struct dtls_conn *c)
{
    if (c->state == DTLS_CONNECTED) {
        ERR_clear_error();
        buffers_in(c);
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    if (c->state != DTLS_FAILED)
        c->state = DTLS_CLOSED;
    buffers_out(c);
}

enum dtls_state dtls_conn_state(const struct dtls_conn *c)
{
    return c->state;
}

const char *dtls_conn_error(const struct dtls_conn *c)
{
    return c->state == DTLS_FAILED ? c->error : "";
}

int dtls_conn_srtp_keys(const struct dtls_conn *c, struct dtls_srtp_keys *out)
{
    memset(out, 0, sizeof(*out));
    if (c->state != DTLS_CONNECTED)
        return -1;
    SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(c->ssl);
    size_t k, s;
    if (!p || srtp_lengths(p->id, &k, &s) != 0)
        return -1;
    /* client key | server key | client salt | server salt (RFC 5764 §4.2) */
    unsigned char km[2 * (32 + 14)];
    static const char label[] = "EXTRACTOR-dtls_srtp";
    if (SSL_export_keying_material(c->ssl, km, 2 * (k + s), label, sizeof(label) - 1, NULL, 0, 0) !=
        1) {
        ERR_clear_error();
        return -1;
    }
    const unsigned char *ck = km, *sk = km + k, *cs = km + 2 * k, *ss = km + 2 * k + s;
    bool client = c->role == DTLS_ROLE_CLIENT;
    memcpy(out->local, client ? ck : sk, k);
    memcpy(out->local + k, client ? cs : ss, s);
    memcpy(out->remote, client ? sk : ck, k);
    memcpy(out->remote + k, client ? ss : cs, s);
    out->profile = (int)p->id;
    out->key_len = k;
    out->salt_len = s;
    OPENSSL_cleanse(km, sizeof(km));
    return 0;
}

void dtls_conn_free(struct dtls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl); /* and the BIO */
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}
