/* DTLS-SRTP: the identity on disk (made, loaded, renewed, refused when broken), handshakes between
 * two conns with datagrams shuttled in memory (keys agreed crosswise, fingerprints enforced on
 * both sides, a lost flight recovered by retransmission), hostile input before and after the
 * handshake, and a plain OpenSSL client for what our own client never does (application data,
 * renegotiation, no use_srtp, no certificate) and to check the keys' orientation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "media/dtls.h"

#define WIRE_MAX 64

/* Every datagram one side sent, for replays. */
struct capture {
    uint8_t d[16][DTLS_MTU];
    size_t len[16];
    size_t n;
};

/* Datagrams one side sent, waiting to be delivered. */
struct wire {
    uint8_t buf[WIRE_MAX][DTLS_MTU];
    size_t len[WIRE_MAX];
    size_t n;
    size_t sent;          /* all datagrams ever sent */
    bool dropping;        /* what is sent now is lost */
    struct capture *copy; /* when set, gets a copy of each */
};

static void capture_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct capture *cap = ctx;
    if (cap->n < 16) {
        memcpy(cap->d[cap->n], buf, len);
        cap->len[cap->n++] = len;
    }
}

static void wire_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct wire *w = ctx;
    assert_true(len > 0 && len <= DTLS_MTU);
    w->sent++;
    if (w->copy)
        capture_send(w->copy, buf, len);
    if (w->dropping)
        return;
    assert_true(w->n < WIRE_MAX);
    memcpy(w->buf[w->n], buf, len);
    w->len[w->n++] = len;
}

struct peer {
    struct dtls_conn *c;
    struct wire out;
};

static struct {
    char top[64];
    char dir_a[96], dir_b[96], dir_c[96];
    struct dtls_cert *a, *b, *c;
} g;

static void check_no_openssl_errors(void)
{
    unsigned long e = ERR_peek_error();
    if (e != 0)
        fail_msg("OpenSSL's error queue was left with: %s", ERR_reason_error_string(e));
}

/* Delivers what from has queued to to; returns how many datagrams. */
static size_t deliver(struct peer *from, struct peer *to)
{
    size_t n = from->out.n;
    uint8_t(*bufs)[DTLS_MTU] = malloc(n * DTLS_MTU + 1);
    size_t lens[WIRE_MAX];
    memcpy(bufs, from->out.buf, n * DTLS_MTU);
    memcpy(lens, from->out.len, n * sizeof(size_t));
    from->out.n = 0; /* the answers queue up anew */
    for (size_t i = 0; i < n; i++) {
        dtls_conn_input(to->c, bufs[i], lens[i]);
        check_no_openssl_errors();
    }
    free(bufs);
    return n;
}

/* Delivers everything queued on both sides until nothing moves. */
static void pump(struct peer *x, struct peer *y)
{
    for (int round = 0; round < 100; round++)
        if (deliver(x, y) + deliver(y, x) == 0)
            return;
    fail_msg("the datagrams never stopped");
}

static struct dtls_conn *conn(struct dtls_cert *cert, enum dtls_role role, const char *fp,
                              struct wire *w)
{
    char err[256] = "";
    struct dtls_conn *c = dtls_conn_create(cert, role, fp, wire_send, w, err, sizeof(err));
    if (!c)
        fail_msg("dtls_conn_create: %s", err);
    check_no_openssl_errors();
    return c;
}

/* server has cert a and expects fp_client; the client has b and expects fp_server. */
static void pair(struct peer *server, struct peer *client, const char *fp_client,
                 const char *fp_server)
{
    memset(server, 0, sizeof(*server));
    memset(client, 0, sizeof(*client));
    server->c = conn(g.a, DTLS_ROLE_SERVER, fp_client, &server->out);
    assert_int_equal(client->out.n, 0);
    client->c = conn(g.b, DTLS_ROLE_CLIENT, fp_server, &client->out);
    assert_true(client->out.n > 0); /* the ClientHello, at once */
}

static void unpair(struct peer *server, struct peer *client)
{
    dtls_conn_free(server->c);
    dtls_conn_free(client->c);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct dtls_cert *load(const char *dir)
{
    char err[512] = "";
    struct dtls_cert *c = dtls_cert_load_or_create(dir, err, sizeof(err));
    if (!c)
        fail_msg("dtls_cert_load_or_create(%s): %s", dir, err);
    check_no_openssl_errors();
    return c;
}

static int setup(void **state)
{
    log_set_level(LOG_LEVEL_ERROR); /* the identity's info and warning lines */
    snprintf(g.top, sizeof(g.top), "/tmp/test_dtls.XXXXXX");
    assert_non_null(mkdtemp(g.top));
    snprintf(g.dir_a, sizeof(g.dir_a), "%s/a", g.top);
    snprintf(g.dir_b, sizeof(g.dir_b), "%s/b", g.top);
    snprintf(g.dir_c, sizeof(g.dir_c), "%s/c", g.top);
    assert_int_equal(mkdir(g.dir_a, 0700), 0);
    assert_int_equal(mkdir(g.dir_b, 0700), 0);
    assert_int_equal(mkdir(g.dir_c, 0700), 0);
    g.a = load(g.dir_a);
    g.b = load(g.dir_b);
    g.c = load(g.dir_c);
    return 0;
}

static int teardown(void **state)
{
    dtls_cert_free(g.a);
    dtls_cert_free(g.b);
    dtls_cert_free(g.c);
    rm_tree(g.top);
    return 0;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* "sha-256 " and 32 upper-case hex pairs separated by colons. */
static void check_fingerprint_form(const char *fp)
{
    assert_int_equal(strlen(fp), 8 + 32 * 3 - 1);
    assert_memory_equal(fp, "sha-256 ", 8);
    for (int i = 0; i < 32; i++) {
        const char *p = fp + 8 + i * 3;
        assert_true(isxdigit((unsigned char)p[0]) && !islower((unsigned char)p[0]));
        assert_true(isxdigit((unsigned char)p[1]) && !islower((unsigned char)p[1]));
        if (i < 31)
            assert_int_equal(p[2], ':');
    }
}

/* The fingerprint of dir's certificate with another hash, as an SDP would carry it. */
static void fingerprint_of(const char *dir, const char *sdp_name, const EVP_MD *md, bool lower,
                           char *out, size_t cap)
{
    char path[256];
    path_in(path, sizeof(path), dir, DTLS_CERT_FILE);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    assert_int_equal(X509_digest(x, md, d, &n), 1);
    X509_free(x);
    size_t used = (size_t)snprintf(out, cap, "%s ", sdp_name);
    for (unsigned i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, cap - used, lower ? "%s%02x" : "%s%02X", i ? ":" : "",
                                 d[i]);
}

/* ---- the identity on disk ---- */

static void test_cert_create_and_load(void **state)
{
    char dir[128], key[160], crt[160];
    snprintf(dir, sizeof(dir), "%s/persist", g.top);
    assert_int_equal(mkdir(dir, 0700), 0);
    path_in(key, sizeof(key), dir, DTLS_KEY_FILE);
    path_in(crt, sizeof(crt), dir, DTLS_CERT_FILE);

    struct dtls_cert *c = load(dir);
    char fp[DTLS_FINGERPRINT_MAX + 1];
    snprintf(fp, sizeof(fp), "%s", dtls_cert_fingerprint(c));
    check_fingerprint_form(fp);
    dtls_cert_free(c);

    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(crt, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", key);
    assert_int_not_equal(access(tmp, F_OK), 0);

    /* the certificate is what the header promises */
    FILE *f = fopen(crt, "r");
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    char cn[64] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "conferenced");
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
    assert_in_range(days, 3640, 3660);
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), NULL), 1);
    assert_in_range(days, 360, 370);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
    char group[32] = "";
    assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof(group), NULL), 1);
    assert_string_equal(group, "prime256v1");
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    assert_true(ASN1_STRING_length(serial) >= 15);
    X509_free(x);

    /* loaded again: the same identity, files untouched */
    char *before = read_all(key);
    c = load(dir);
    assert_string_equal(dtls_cert_fingerprint(c), fp);
    dtls_cert_free(c);
    char *after = read_all(key);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* a key file others can read is made private */
    chmod(key, 0644);
    c = load(dir);
    assert_string_equal(dtls_cert_fingerprint(c), fp);
    dtls_cert_free(c);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* two identities differ */
    assert_string_not_equal(dtls_cert_fingerprint(g.a), dtls_cert_fingerprint(g.b));
    dtls_cert_free(NULL);
}

static void expect_refused(const char *dir, const char *needle)
{
    char err[512] = "";
    struct dtls_cert *c = dtls_cert_load_or_create(dir, err, sizeof(err));
    if (c)
        fail_msg("%s was accepted", dir);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not name \"%s\"", err, needle);
    check_no_openssl_errors();
}

static void test_cert_refused(void **state)
{
    char dir[128], key[160], crt[160], err[256];
    snprintf(dir, sizeof(dir), "%s/broken", g.top);
    assert_int_equal(mkdir(dir, 0700), 0);
    path_in(key, sizeof(key), dir, DTLS_KEY_FILE);
    path_in(crt, sizeof(crt), dir, DTLS_CERT_FILE);

    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nowhere", g.top);
    expect_refused(missing, "nowhere");
    assert_null(dtls_cert_load_or_create(NULL, err, sizeof(err)));

    /* only one of the two */
    char a_key[160], a_crt[160], b_key[160];
    path_in(a_key, sizeof(a_key), g.dir_a, DTLS_KEY_FILE);
    path_in(a_crt, sizeof(a_crt), g.dir_a, DTLS_CERT_FILE);
    path_in(b_key, sizeof(b_key), g.dir_b, DTLS_KEY_FILE);
    char *ka = read_all(a_key), *ca = read_all(a_crt), *kb = read_all(b_key);
    write_text(key, ka, 0600);
    expect_refused(dir, DTLS_CERT_FILE);
    unlink(key);
    write_text(crt, ca, 0644);
    expect_refused(dir, DTLS_KEY_FILE);

    /* a corrupt certificate, a corrupt key: refused, and left as they were */
    write_text(key, ka, 0600);
    write_text(crt, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
               0644);
    expect_refused(dir, crt);
    char *now = read_all(crt);
    assert_non_null(strstr(now, "not base64"));
    free(now);
    write_text(crt, ca, 0644);
    write_text(key, "garbage\n", 0600);
    expect_refused(dir, key);
    write_text(key, "", 0600);
    expect_refused(dir, key);

    /* b's key with a's certificate */
    write_text(key, kb, 0600);
    expect_refused(dir, "is not the key of");

    /* an encrypted key is refused, not prompted for */
    FILE *f = fopen(a_key, "r");
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(pk);
    f = fopen(key, "w");
    assert_int_equal(PEM_write_PrivateKey(f, pk, EVP_aes_128_cbc(), NULL, 0, NULL, "secret"), 1);
    fclose(f);
    EVP_PKEY_free(pk);
    expect_refused(dir, key);

    /* and the same pair, whole, loads */
    write_text(key, ka, 0600);
    struct dtls_cert *c = load(dir);
    assert_string_equal(dtls_cert_fingerprint(c), dtls_cert_fingerprint(g.a));
    dtls_cert_free(c);
    free(ka);
    free(ca);
    free(kb);
}

static void test_cert_expired_renewed(void **state)
{
    char dir[128], key[160], crt[160];
    snprintf(dir, sizeof(dir), "%s/expired", g.top);
    assert_int_equal(mkdir(dir, 0700), 0);
    path_in(key, sizeof(key), dir, DTLS_KEY_FILE);
    path_in(crt, sizeof(crt), dir, DTLS_CERT_FILE);

    /* a pair whose certificate ended yesterday */
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -30L * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), -86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"old", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, pk);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    FILE *f = fopen(key, "w");
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(key, 0600);
    f = fopen(crt, "w");
    PEM_write_X509(f, x);
    fclose(f);
    unsigned char d[32];
    unsigned n;
    X509_digest(x, EVP_sha256(), d, &n);
    char old_fp[8 + 32 * 3];
    size_t used = (size_t)snprintf(old_fp, sizeof(old_fp), "sha-256 ");
    for (unsigned i = 0; i < n; i++)
        used +=
            (size_t)snprintf(old_fp + used, sizeof(old_fp) - used, "%s%02X", i ? ":" : "", d[i]);
    X509_free(x);
    EVP_PKEY_free(pk);

    struct dtls_cert *c = load(dir);
    char fp[DTLS_FINGERPRINT_MAX + 1];
    snprintf(fp, sizeof(fp), "%s", dtls_cert_fingerprint(c));
    dtls_cert_free(c);
    assert_string_not_equal(fp, old_fp);
    check_fingerprint_form(fp);
    /* the new pair is on disk */
    c = load(dir);
    assert_string_equal(dtls_cert_fingerprint(c), fp);
    dtls_cert_free(c);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* ---- handshakes ---- */

static void check_keys(struct peer *server, struct peer *client, int profile)
{
    struct dtls_srtp_keys ks, kc;
    assert_int_equal(dtls_conn_srtp_keys(server->c, &ks), 0);
    assert_int_equal(dtls_conn_srtp_keys(client->c, &kc), 0);
    assert_int_equal(ks.profile, profile);
    assert_int_equal(kc.profile, profile);
    assert_int_equal(ks.key_len, kc.key_len);
    assert_int_equal(ks.salt_len, kc.salt_len);
    size_t len = ks.key_len + ks.salt_len;
    assert_memory_equal(ks.local, kc.remote, len);
    assert_memory_equal(ks.remote, kc.local, len);
    assert_memory_not_equal(ks.local, ks.remote, len);
    check_no_openssl_errors();
}

static void test_handshake(void **state)
{
    struct peer s, c;
    pair(&s, &c, dtls_cert_fingerprint(g.b), dtls_cert_fingerprint(g.a));
    assert_int_equal(dtls_conn_state(s.c), DTLS_HANDSHAKING);
    assert_true(dtls_conn_next_timeout_ms(c.c) > 0); /* waiting for the server's flight */
    assert_int_equal(dtls_conn_next_timeout_ms(s.c), -1);
    pump(&s, &c);
    assert_int_equal(dtls_conn_state(s.c), DTLS_CONNECTED);
    assert_int_equal(dtls_conn_state(c.c), DTLS_CONNECTED);
    assert_string_equal(dtls_conn_error(s.c), "");
    assert_string_equal(dtls_conn_error(c.c), "");
    assert_int_equal(dtls_conn_next_timeout_ms(s.c), -1);
    assert_int_equal(dtls_conn_next_timeout_ms(c.c), -1);
    check_keys(&s, &c, 1);
    struct dtls_srtp_keys k;
    assert_int_equal(dtls_conn_srtp_keys(s.c, &k), 0);
    assert_int_equal(k.key_len, 16);
    assert_int_equal(k.salt_len, 14);
    /* a timeout call with nothing due changes nothing */
    assert_int_equal(dtls_conn_timeout(s.c), DTLS_CONNECTED);
    assert_int_equal(dtls_conn_timeout(c.c), DTLS_CONNECTED);
    assert_int_equal(s.out.n + c.out.n, 0);
    unpair(&s, &c);
}

static void test_fingerprint_forms(void **state)
{
    struct {
        const char *name;
        const EVP_MD *md;
        bool lower;
    } forms[] = {
        {"sha-1", EVP_sha1(), false},     {"SHA-256", EVP_sha256(), true},
        {"sha-384", EVP_sha384(), false}, {"sha-512", EVP_sha512(), true},
        {"sha-224", EVP_sha224(), false},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char fa[256], fb[256];
        fingerprint_of(g.dir_a, forms[i].name, forms[i].md, forms[i].lower, fa, sizeof(fa));
        fingerprint_of(g.dir_b, forms[i].name, forms[i].md, !forms[i].lower, fb, sizeof(fb));
        struct peer s, c;
        pair(&s, &c, fb, fa);
        pump(&s, &c);
        if (dtls_conn_state(s.c) != DTLS_CONNECTED || dtls_conn_state(c.c) != DTLS_CONNECTED)
            fail_msg("%s: server %s, client %s", forms[i].name, dtls_conn_error(s.c),
                     dtls_conn_error(c.c));
        unpair(&s, &c);
    }
}

static void test_fingerprint_malformed(void **state)
{
    char good[256], lng[300], nocolon[256];
    snprintf(good, sizeof(good), "%s", dtls_cert_fingerprint(g.a));
    snprintf(lng, sizeof(lng), "%s:AB", good);
    size_t j = 0;
    for (size_t i = 0; good[i]; i++)
        if (good[i] != ':')
            nocolon[j++] = good[i];
    nocolon[j] = '\0';
    char bad_hex[256];
    snprintf(bad_hex, sizeof(bad_hex), "%s", good);
    bad_hex[10] = 'G';
    char junk[300], colon[300];
    snprintf(junk, sizeof(junk), "%s x", good);
    snprintf(colon, sizeof(colon), "%s:", good);
    char md5[64];
    snprintf(md5, sizeof(md5), "md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF");
    const char *bad[] = {"",   "sha-256", "sha-256 ", "sha-256 AB:CD", lng, nocolon,      bad_hex,
                         junk, colon,     md5,        "sha256 AB",     ":", "sha-256 A:B"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        struct wire w = {0};
        struct dtls_conn *c =
            dtls_conn_create(g.b, DTLS_ROLE_CLIENT, bad[i], wire_send, &w, err, sizeof(err));
        if (c)
            fail_msg("\"%s\" was taken", bad[i]);
        assert_true(err[0] != '\0');
        assert_int_equal(w.sent, 0);
    }
    char err[256] = "";
    assert_null(dtls_conn_create(g.b, DTLS_ROLE_SERVER, NULL, wire_send, NULL, err, sizeof(err)));
    /* blanks around the value are fine (an SDP line's tail) */
    char spaced[300];
    snprintf(spaced, sizeof(spaced), "  sha-256   %s \r\n", good + 8);
    struct wire w = {0};
    struct dtls_conn *c =
        dtls_conn_create(g.b, DTLS_ROLE_SERVER, spaced, wire_send, &w, err, sizeof(err));
    assert_non_null(c);
    dtls_conn_free(c);
    dtls_conn_free(NULL);
}

static void expect_failed(struct dtls_conn *c, const char *needle)
{
    assert_int_equal(dtls_conn_state(c), DTLS_FAILED);
    const char *e = dtls_conn_error(c);
    if (e[0] == '\0' || (needle && !strstr(e, needle)))
        fail_msg("error \"%s\" (want \"%s\")", e, needle ? needle : "any");
}

static void test_wrong_fingerprint(void **state)
{
    /* the server expects c's certificate, gets b's */
    struct peer s, c;
    pair(&s, &c, dtls_cert_fingerprint(g.c), dtls_cert_fingerprint(g.a));
    pump(&s, &c);
    expect_failed(s.c, "fingerprint");
    expect_failed(c.c, NULL); /* told by the server's alert */
    struct dtls_srtp_keys k;
    assert_int_equal(dtls_conn_srtp_keys(s.c, &k), -1);
    assert_int_equal(dtls_conn_next_timeout_ms(s.c), -1);
    /* nothing more happens to a failed conn */
    size_t sent = s.out.sent;
    assert_int_equal(dtls_conn_input(s.c, (const uint8_t *)"\x16\xfe\xfd", 3), DTLS_FAILED);
    assert_int_equal(dtls_conn_timeout(s.c), DTLS_FAILED);
    dtls_conn_close(s.c);
    assert_int_equal(dtls_conn_state(s.c), DTLS_FAILED);
    assert_int_equal(s.out.sent, sent);
    unpair(&s, &c);

    /* the client expects c's certificate, gets a's */
    pair(&s, &c, dtls_cert_fingerprint(g.b), dtls_cert_fingerprint(g.c));
    pump(&s, &c);
    expect_failed(c.c, "fingerprint");
    expect_failed(s.c, NULL);
    unpair(&s, &c);

    /* the right fingerprint with another hash's name: a different value, refused */
    char fb[256];
    fingerprint_of(g.dir_b, "sha-256", EVP_sha256(), false, fb, sizeof(fb));
    char wrong_name[300];
    snprintf(wrong_name, sizeof(wrong_name), "sha-384 %s", fb + 8);
    char err[256];
    assert_null(dtls_conn_create(g.a, DTLS_ROLE_SERVER, wrong_name, wire_send, NULL, err,
                                 sizeof(err))); /* 32 pairs for a 48-byte hash */
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for and runs the timers of both until both are connected (at most 5 s); returns the
 * milliseconds it took. */
static int64_t run_timers(struct peer *s, struct peer *c)
{
    int64_t start = now_ms();
    while (dtls_conn_state(s->c) != DTLS_CONNECTED || dtls_conn_state(c->c) != DTLS_CONNECTED) {
        assert_true(now_ms() - start < 5000);
        int64_t ts = dtls_conn_next_timeout_ms(s->c), tc = dtls_conn_next_timeout_ms(c->c);
        assert_true(ts >= 0 || tc >= 0); /* someone is waiting */
        assert_true(ts <= 1000 && tc <= 1000);
        int64_t wait = ts < 0 ? tc : tc < 0 ? ts : ts < tc ? ts : tc;
        usleep((useconds_t)(wait * 1000));
        dtls_conn_timeout(s->c);
        dtls_conn_timeout(c->c);
        check_no_openssl_errors();
        pump(s, c);
    }
    return now_ms() - start;
}

static void test_lost_flight(void **state)
{
    struct peer s, c;
    pair(&s, &c, dtls_cert_fingerprint(g.b), dtls_cert_fingerprint(g.a));
    /* the server's first flight is lost on the way */
    s.out.dropping = true;
    pump(&s, &c);
    assert_true(s.out.sent > 0);
    s.out.dropping = false;
    size_t client_sent = c.out.sent;
    assert_true(run_timers(&s, &c) >= 900); /* it took a retransmission */
    assert_true(c.out.sent > client_sent);
    check_keys(&s, &c, 1);
    unpair(&s, &c);
}

static void test_lost_last_flight(void **state)
{
    struct peer s, c;
    pair(&s, &c, dtls_cert_fingerprint(g.b), dtls_cert_fingerprint(g.a));
    assert_int_equal(deliver(&c, &s), 1); /* ClientHello */
    assert_true(deliver(&s, &c) > 0);     /* ServerHello .. ServerHelloDone */
    assert_true(deliver(&c, &s) > 0);     /* Certificate .. Finished */
    assert_int_equal(dtls_conn_state(s.c), DTLS_CONNECTED);
    assert_true(s.out.n > 0);
    s.out.n = 0; /* the server's ChangeCipherSpec and Finished are lost */
    assert_int_equal(dtls_conn_state(c.c), DTLS_HANDSHAKING);
    assert_int_equal(dtls_conn_next_timeout_ms(s.c), -1);
    size_t server_sent = s.out.sent;
    /* the client sends its flight again; the connected server answers it again */
    assert_true(run_timers(&s, &c) >= 900);
    assert_true(s.out.sent > server_sent);
    check_keys(&s, &c, 1);
    unpair(&s, &c);
}

static void test_garbage(void **state)
{
    /* a real ClientHello to cut */
    struct capture cap = {0};
    char err[256];
    struct dtls_conn *cl = dtls_conn_create(g.b, DTLS_ROLE_CLIENT, dtls_cert_fingerprint(g.a),
                                            capture_send, &cap, err, sizeof(err));
    assert_non_null(cl);
    assert_int_equal(cap.n, 1);
    const uint8_t *hello = cap.d[0];
    size_t hello_len = cap.len[0];
    assert_int_equal(hello[0], 22); /* a handshake record */

    struct peer s = {0};
    s.c = conn(g.a, DTLS_ROLE_SERVER, dtls_cert_fingerprint(g.b), &s.out);
    static uint8_t junk[DTLS_MAX_DATAGRAM + 16];
    uint32_t seed = 12345;
    for (size_t i = 0; i < sizeof(junk); i++) {
        seed = seed * 1664525u + 1013904223u;
        junk[i] = (uint8_t)(seed >> 24);
    }
    size_t sizes[] = {
        0, 1, 2, 12, 13, 14, 25, 100, 1199, 1500, DTLS_MAX_DATAGRAM, DTLS_MAX_DATAGRAM + 1};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(dtls_conn_input(s.c, junk, sizes[i]), DTLS_HANDSHAKING);
        check_no_openssl_errors();
    }
    assert_int_equal(dtls_conn_input(s.c, NULL, 10), DTLS_HANDSHAKING);
    /* DTLS record headers with junk behind them, and lengths that lie */
    uint8_t rec[64];
    for (int type = 20; type <= 25; type++) {
        memcpy(rec, junk, sizeof(rec));
        rec[0] = (uint8_t)type;
        rec[1] = 0xfe;
        rec[2] = 0xfd;
        rec[3] = rec[4] = 0;
        for (int lenv = 0; lenv < 3; lenv++) {
            rec[11] = 0;
            rec[12] = (uint8_t)(lenv == 0 ? 0 : lenv == 1 ? 51 : 200);
            enum dtls_state st = dtls_conn_input(s.c, rec, sizeof(rec));
            assert_true(st == DTLS_HANDSHAKING || st == DTLS_FAILED);
            check_no_openssl_errors();
        }
    }
    /* every truncation of the ClientHello (each a datagram of its own) */
    for (size_t n = 1; n < hello_len; n++) {
        enum dtls_state st = dtls_conn_input(s.c, hello, n);
        assert_true(st == DTLS_HANDSHAKING || st == DTLS_FAILED);
        check_no_openssl_errors();
    }
    /* the ClientHello with each byte of its body flipped, to fresh servers */
    for (size_t i = 13; i < hello_len; i += 7) {
        struct peer t = {0};
        t.c = conn(g.a, DTLS_ROLE_SERVER, dtls_cert_fingerprint(g.b), &t.out);
        uint8_t bent[DTLS_MTU];
        memcpy(bent, hello, hello_len);
        bent[i] ^= 0x5a;
        enum dtls_state st = dtls_conn_input(t.c, bent, hello_len);
        assert_true(st == DTLS_HANDSHAKING || st == DTLS_FAILED);
        if (st == DTLS_FAILED)
            assert_true(dtls_conn_error(t.c)[0] != '\0');
        check_no_openssl_errors();
        dtls_conn_free(t.c);
    }
    dtls_conn_free(s.c);

    /* garbage first does not spoil a handshake after it */
    struct peer s2, c2;
    pair(&s2, &c2, dtls_cert_fingerprint(g.b), dtls_cert_fingerprint(g.a));
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(dtls_conn_input(s2.c, junk + i * 100, 100), DTLS_HANDSHAKING);
        assert_int_equal(dtls_conn_input(c2.c, junk + i * 200, 150), DTLS_HANDSHAKING);
    }
    pump(&s2, &c2);
    assert_int_equal(dtls_conn_state(s2.c), DTLS_CONNECTED);
    assert_int_equal(dtls_conn_state(c2.c), DTLS_CONNECTED);
    unpair(&s2, &c2);
    dtls_conn_free(cl);
}

static void test_replays_after_handshake(void **state)
{
    struct peer s, c;
    struct capture log = {0};
    memset(&s, 0, sizeof(s));
    memset(&c, 0, sizeof(c));
    s.c = conn(g.a, DTLS_ROLE_SERVER, dtls_cert_fingerprint(g.b), &s.out);
    c.out.copy = &log;
    c.c = conn(g.b, DTLS_ROLE_CLIENT, dtls_cert_fingerprint(g.a), &c.out);
    pump(&s, &c);
    assert_int_equal(dtls_conn_state(s.c), DTLS_CONNECTED);
    assert_true(log.n >= 2); /* the ClientHello, then the flight with the Finished */
    struct dtls_srtp_keys before, after;
    assert_int_equal(dtls_conn_srtp_keys(s.c, &before), 0);

    /* the client's datagrams again, byte for byte (a replay, not a retransmission: the
     * record numbers are old): dropped */
    for (size_t i = 0; i < log.n; i++)
        assert_int_equal(dtls_conn_input(s.c, log.d[i], log.len[i]), DTLS_CONNECTED);
    pump(&s, &c);
    assert_int_equal(dtls_conn_state(c.c), DTLS_CONNECTED);
    /* a ClientHello from another client */
    struct capture other = {0};
    char err[256];
    struct dtls_conn *c2 = dtls_conn_create(g.b, DTLS_ROLE_CLIENT, dtls_cert_fingerprint(g.a),
                                            capture_send, &other, err, sizeof(err));
    assert_non_null(c2);
    assert_int_equal(dtls_conn_input(s.c, other.d[0], other.len[0]), DTLS_CONNECTED);
    dtls_conn_free(c2);
    check_no_openssl_errors();

    /* made-up records in epoch 1: they fail authentication and are dropped */
    uint8_t rec[80];
    memset(rec, 0xab, sizeof(rec));
    rec[1] = 0xfe;
    rec[2] = 0xfd;
    rec[3] = 0;
    rec[4] = 1;
    rec[11] = 0;
    rec[12] = 67;
    for (int type = 20; type <= 25; type++) {
        rec[0] = (uint8_t)type;
        assert_int_equal(dtls_conn_input(s.c, rec, sizeof(rec)), DTLS_CONNECTED);
        assert_int_equal(dtls_conn_input(c.c, rec, sizeof(rec)), DTLS_CONNECTED);
    }
    check_no_openssl_errors();
    assert_int_equal(dtls_conn_srtp_keys(s.c, &after), 0);
    assert_memory_equal(&before, &after, sizeof(before));
    pump(&s, &c);
    check_keys(&s, &c, 1);
    unpair(&s, &c);
}

static void test_close(void **state)
{
    struct peer s, c;
    pair(&s, &c, dtls_cert_fingerprint(g.b), dtls_cert_fingerprint(g.a));
    pump(&s, &c);
    assert_int_equal(dtls_conn_state(s.c), DTLS_CONNECTED);
    size_t sent = c.out.sent;
    dtls_conn_close(c.c);
    assert_int_equal(dtls_conn_state(c.c), DTLS_CLOSED);
    assert_int_equal(c.out.sent, sent + 1); /* close_notify */
    pump(&s, &c);
    assert_int_equal(dtls_conn_state(s.c), DTLS_CLOSED);
    assert_string_equal(dtls_conn_error(s.c), "");
    struct dtls_srtp_keys k;
    assert_int_equal(dtls_conn_srtp_keys(s.c, &k), -1);
    assert_int_equal(dtls_conn_next_timeout_ms(s.c), -1);
    /* the server answered with its own, which the closed client ignores */
    assert_true(s.out.sent > 0);
    unpair(&s, &c);

    /* closing during the handshake sends nothing */
    pair(&s, &c, dtls_cert_fingerprint(g.b), dtls_cert_fingerprint(g.a));
    sent = c.out.sent;
    dtls_conn_close(c.c);
    assert_int_equal(dtls_conn_state(c.c), DTLS_CLOSED);
    assert_int_equal(c.out.sent, sent);
    unpair(&s, &c);
}

/* ---- a plain OpenSSL client ---- */

struct raw {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rb, *wb;
};

static int accept_any(int ok, X509_STORE_CTX *x)
{
    return 1;
}

static void raw_init(struct raw *r, const char *dir, const char *srtp)
{
    r->ctx = SSL_CTX_new(DTLS_client_method());
    assert_non_null(r->ctx);
    SSL_CTX_set_min_proto_version(r->ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(r->ctx, DTLS1_2_VERSION);
    if (dir) {
        char key[160], crt[160];
        path_in(key, sizeof(key), dir, DTLS_KEY_FILE);
        path_in(crt, sizeof(crt), dir, DTLS_CERT_FILE);
        assert_int_equal(SSL_CTX_use_certificate_file(r->ctx, crt, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(r->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    if (srtp)
        assert_int_equal(SSL_CTX_set_tlsext_use_srtp(r->ctx, srtp), 0);
    SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, accept_any);
    SSL_CTX_set_options(r->ctx, SSL_OP_NO_QUERY_MTU);
    r->ssl = SSL_new(r->ctx);
    r->rb = BIO_new(BIO_s_mem());
    r->wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(r->rb, -1);
    BIO_set_mem_eof_return(r->wb, -1);
    SSL_set_bio(r->ssl, r->rb, r->wb);
    DTLS_set_link_mtu(r->ssl, DTLS_MTU);
    SSL_set_connect_state(r->ssl);
}

static void raw_fini(struct raw *r)
{
    SSL_free(r->ssl);
    SSL_CTX_free(r->ctx);
    ERR_clear_error();
}

/* What the raw client wrote, as one datagram per record (its memory BIO runs them together). */
static size_t raw_flush(struct raw *r, struct dtls_conn *to)
{
    char *data;
    long len = BIO_get_mem_data(r->wb, &data);
    size_t n = 0;
    for (long off = 0; off + 13 <= len;) {
        long rec = 13 + (((unsigned char)data[off + 11]) << 8 | (unsigned char)data[off + 12]);
        assert_true(off + rec <= len);
        dtls_conn_input(to, (const uint8_t *)data + off, (size_t)rec);
        check_no_openssl_errors();
        off += rec;
        n++;
    }
    (void)BIO_reset(r->wb);
    return n;
}

/* The raw client's turn: the handshake, or reading (application data is returned in app). */
static int raw_step(struct raw *r, char *app, size_t cap)
{
    if (!SSL_is_init_finished(r->ssl)) {
        int rc = SSL_do_handshake(r->ssl);
        if (rc <= 0 && SSL_get_error(r->ssl, rc) != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return -1;
        }
        return 0;
    }
    int n = SSL_read(r->ssl, app, (int)cap);
    ERR_clear_error();
    return n > 0 ? n : 0;
}

static void raw_pump(struct raw *r, struct peer *s)
{
    char app[256];
    for (int round = 0; round < 50; round++) {
        size_t moved = raw_flush(r, s->c);
        size_t n = s->out.n;
        for (size_t i = 0; i < n; i++) {
            BIO_write(r->rb, s->out.buf[i], (int)s->out.len[i]);
            raw_step(r, app, sizeof(app));
        }
        s->out.n = 0;
        if (moved == 0 && n == 0)
            return;
    }
    fail_msg("the raw client and the server never stopped");
}

static void raw_connect(struct raw *r, struct peer *s)
{
    memset(s, 0, sizeof(*s));
    s->c = conn(g.a, DTLS_ROLE_SERVER, dtls_cert_fingerprint(g.b), &s->out);
    char app[16];
    raw_step(r, app, sizeof(app));
    raw_pump(r, s);
}

static void test_raw_client(void **state)
{
    struct raw r = {0};
    struct peer s;
    raw_init(&r, g.dir_b, "SRTP_AES128_CM_SHA1_32:SRTP_AEAD_AES_128_GCM");
    raw_connect(&r, &s);
    assert_true(SSL_is_init_finished(r.ssl));
    assert_int_equal(dtls_conn_state(s.c), DTLS_CONNECTED);

    /* the keys, oriented: the server sends with the server's write key and salt */
    struct dtls_srtp_keys k;
    assert_int_equal(dtls_conn_srtp_keys(s.c, &k), 0);
    assert_int_equal(k.profile, 7); /* our preference among the two offered */
    assert_int_equal(k.key_len, 16);
    assert_int_equal(k.salt_len, 12);
    unsigned char km[2 * (16 + 12)];
    assert_int_equal(
        SSL_export_keying_material(r.ssl, km, sizeof(km), "EXTRACTOR-dtls_srtp", 19, NULL, 0, 0),
        1);
    assert_memory_equal(k.remote, km, 16);           /* client key */
    assert_memory_equal(k.remote + 16, km + 32, 12); /* client salt */
    assert_memory_equal(k.local, km + 16, 16);       /* server key */
    assert_memory_equal(k.local + 16, km + 44, 12);  /* server salt */

    /* application data is read and dropped */
    for (int i = 0; i < 5; i++)
        assert_int_equal(SSL_write(r.ssl, "a data channel's bytes", 22), 22);
    static char big[4000];
    memset(big, 'x', sizeof(big));
    assert_int_equal(SSL_write(r.ssl, big, sizeof(big)), (int)sizeof(big));
    raw_pump(&r, &s);
    assert_int_equal(dtls_conn_state(s.c), DTLS_CONNECTED);

    /* a renegotiation is refused; the association goes on or the client gives up, no more */
    assert_int_equal(SSL_renegotiate(r.ssl), 1);
    char app[64];
    raw_step(&r, app, sizeof(app));
    SSL_do_handshake(r.ssl);
    ERR_clear_error();
    raw_pump(&r, &s);
    enum dtls_state st = dtls_conn_state(s.c);
    assert_true(st == DTLS_CONNECTED || st == DTLS_FAILED);
    if (st == DTLS_CONNECTED) {
        struct dtls_srtp_keys again;
        assert_int_equal(dtls_conn_srtp_keys(s.c, &again), 0);
        assert_memory_equal(&k, &again, sizeof(k));
    }
    dtls_conn_free(s.c);
    raw_fini(&r);

    /* AES-256-GCM: a 32-byte key */
    raw_init(&r, g.dir_b, "SRTP_AEAD_AES_256_GCM");
    raw_connect(&r, &s);
    assert_int_equal(dtls_conn_srtp_keys(s.c, &k), 0);
    assert_int_equal(k.profile, 8);
    assert_int_equal(k.key_len, 32);
    assert_int_equal(k.salt_len, 12);
    unsigned char km256[2 * (32 + 12)];
    assert_int_equal(SSL_export_keying_material(r.ssl, km256, sizeof(km256), "EXTRACTOR-dtls_srtp",
                                                19, NULL, 0, 0),
                     1);
    assert_memory_equal(k.remote, km256, 32);
    assert_memory_equal(k.remote + 32, km256 + 64, 12);
    assert_memory_equal(k.local, km256 + 32, 32);
    assert_memory_equal(k.local + 32, km256 + 76, 12);
    dtls_conn_free(s.c);
    raw_fini(&r);

    /* close_notify from the client: the server answers with its own and is CLOSED */
    raw_init(&r, g.dir_b, "SRTP_AES128_CM_SHA1_80");
    raw_connect(&r, &s);
    assert_int_equal(dtls_conn_state(s.c), DTLS_CONNECTED);
    assert_int_equal(SSL_shutdown(r.ssl), 0);
    raw_flush(&r, s.c);
    assert_int_equal(dtls_conn_state(s.c), DTLS_CLOSED);
    assert_int_equal(s.out.n, 1);
    BIO_write(r.rb, s.out.buf[0], (int)s.out.len[0]);
    assert_int_equal(SSL_shutdown(r.ssl), 1); /* the answer arrived */
    dtls_conn_free(s.c);
    raw_fini(&r);
}

static void test_raw_client_refused(void **state)
{
    /* no use_srtp */
    struct raw r = {0};
    struct peer s;
    raw_init(&r, g.dir_b, NULL);
    raw_connect(&r, &s);
    expect_failed(s.c, "SRTP");
    dtls_conn_free(s.c);
    raw_fini(&r);

    /* no client certificate */
    raw_init(&r, NULL, "SRTP_AES128_CM_SHA1_80");
    raw_connect(&r, &s);
    expect_failed(s.c, "certificate");
    dtls_conn_free(s.c);
    raw_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_create_and_load),
        cmocka_unit_test(test_cert_refused),
        cmocka_unit_test(test_cert_expired_renewed),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_fingerprint_forms),
        cmocka_unit_test(test_fingerprint_malformed),
        cmocka_unit_test(test_wrong_fingerprint),
        cmocka_unit_test(test_lost_flight),
        cmocka_unit_test(test_lost_last_flight),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_replays_after_handshake),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_raw_client),
        cmocka_unit_test(test_raw_client_refused),
    };
    return cmocka_run_group_tests_name("dtls", tests, setup, teardown);
}
