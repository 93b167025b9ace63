/* DTLS-SRTP's cost on the server: full handshakes between a server conn and a client conn
 * (datagrams shuttled in memory), timing only the server side's calls (creating its conn, every
 * datagram it takes, exporting the SRTP keys, freeing it) in this thread's CPU time, so the
 * figure is handshakes per second on one core of the control thread with the clients' cost
 * left out. Then the heap one established server conn holds: mallinfo2() before and after
 * making N connected ones (their clients freed), divided by N; and the same for a server conn
 * that has answered a ClientHello and waits (what a handshake left half-way costs).
 *
 * usage: build/bench_dtls [handshakes] [connections held] */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "media/dtls.h"

#define QMAX 16

struct queue {
    uint8_t d[QMAX][DTLS_MTU];
    size_t len[QMAX];
    size_t n;
};

static void on_send(void *ctx, const uint8_t *buf, size_t len)
{
    struct queue *q = ctx;
    if (q->n == QMAX || len > DTLS_MTU) {
        fprintf(stderr, "bench_dtls: more datagrams than expected\n");
        exit(1);
    }
    memcpy(q->d[q->n], buf, len);
    q->len[q->n++] = len;
}

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct bench {
    struct dtls_cert *server_cert, *client_cert;
    struct queue to_client, to_server;
    double server_cpu;
};

/* One handshake; returns the server conn, connected (or exits). */
static struct dtls_conn *handshake(struct bench *b, bool keep)
{
    char err[256];
    b->to_client.n = b->to_server.n = 0;
    double t0 = thread_cpu();
    struct dtls_conn *s =
        dtls_conn_create(b->server_cert, DTLS_ROLE_SERVER, dtls_cert_fingerprint(b->client_cert),
                         on_send, &b->to_client, err, sizeof(err));
    b->server_cpu += thread_cpu() - t0;
    struct dtls_conn *c =
        dtls_conn_create(b->client_cert, DTLS_ROLE_CLIENT, dtls_cert_fingerprint(b->server_cert),
                         on_send, &b->to_server, err, sizeof(err));
    if (!s || !c) {
        fprintf(stderr, "bench_dtls: %s\n", err);
        exit(1);
    }
    struct queue in;
    for (int round = 0; round < 10 && (b->to_server.n || b->to_client.n); round++) {
        in = b->to_server;
        b->to_server.n = 0;
        t0 = thread_cpu();
        for (size_t i = 0; i < in.n; i++)
            dtls_conn_input(s, in.d[i], in.len[i]);
        b->server_cpu += thread_cpu() - t0;
        in = b->to_client;
        b->to_client.n = 0;
        for (size_t i = 0; i < in.n; i++)
            dtls_conn_input(c, in.d[i], in.len[i]);
    }
    struct dtls_srtp_keys k;
    t0 = thread_cpu();
    int rc = dtls_conn_srtp_keys(s, &k);
    b->server_cpu += thread_cpu() - t0;
    if (rc != 0 || dtls_conn_state(c) != DTLS_CONNECTED) {
        fprintf(stderr, "bench_dtls: not connected: %s / %s\n", dtls_conn_error(s),
                dtls_conn_error(c));
        exit(1);
    }
    dtls_conn_free(c);
    if (keep)
        return s;
    t0 = thread_cpu();
    dtls_conn_free(s);
    b->server_cpu += thread_cpu() - t0;
    return NULL;
}

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void remove_identity(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, DTLS_KEY_FILE);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", dir, DTLS_CERT_FILE);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2000;
    int held = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 1000;
    if (n < 1 || held < 1) {
        fprintf(stderr, "usage: bench_dtls [handshakes >= 1] [connections held >= 1]\n");
        return 2;
    }
    log_set_level(LOG_LEVEL_WARN);
    char top[64], sdir[80], cdir[80], err[512];
    snprintf(top, sizeof(top), "/tmp/bench_dtls.XXXXXX");
    if (!mkdtemp(top))
        return 1;
    snprintf(sdir, sizeof(sdir), "%s/server", top);
    snprintf(cdir, sizeof(cdir), "%s/client", top);
    mkdir(sdir, 0700);
    mkdir(cdir, 0700);
    struct bench b = {0};
    b.server_cert = dtls_cert_load_or_create(sdir, err, sizeof(err));
    b.client_cert = b.server_cert ? dtls_cert_load_or_create(cdir, err, sizeof(err)) : NULL;
    if (!b.client_cert) {
        fprintf(stderr, "bench_dtls: %s\n", err);
        return 1;
    }

    for (int i = 0; i < 50; i++) /* OpenSSL's lazy set-up (algorithm fetches, tables) */
        handshake(&b, false);
    b.server_cpu = 0;
    double all0 = thread_cpu();
    for (int i = 0; i < n; i++)
        handshake(&b, false);
    double all = thread_cpu() - all0;
    printf("dtls handshakes: %d (ECDHE X25519, ECDSA P-256 both sides, SRTP_AES128_CM_SHA1_80)\n",
           n);
    printf("server side: %.0f us CPU per handshake, %.0f handshakes/s on one core\n",
           b.server_cpu * 1e6 / n, n / b.server_cpu);
    printf("both sides and the shuttle: %.0f us CPU per handshake\n", all * 1e6 / n);

    struct dtls_conn **conns = calloc((size_t)held, sizeof(*conns));
    if (!conns)
        return 1;
    size_t before = heap_used();
    for (int i = 0; i < held; i++)
        conns[i] = handshake(&b, true);
    size_t after = heap_used();
    printf("memory: %.1f KiB of heap per established server conn (%d held)\n",
           (double)(after - before) / held / 1024.0, held);
    for (int i = 0; i < held; i++)
        dtls_conn_free(conns[i]);

    before = heap_used();
    for (int i = 0; i < held; i++) {
        b.to_client.n = b.to_server.n = 0;
        conns[i] =
            dtls_conn_create(b.server_cert, DTLS_ROLE_SERVER, dtls_cert_fingerprint(b.client_cert),
                             on_send, &b.to_client, err, sizeof(err));
        struct dtls_conn *c =
            dtls_conn_create(b.client_cert, DTLS_ROLE_CLIENT, dtls_cert_fingerprint(b.server_cert),
                             on_send, &b.to_server, err, sizeof(err));
        dtls_conn_free(c);
        if (!conns[i] || b.to_server.n != 1 ||
            dtls_conn_input(conns[i], b.to_server.d[0], b.to_server.len[0]) != DTLS_HANDSHAKING) {
            fprintf(stderr, "bench_dtls: the half-way handshake went wrong\n");
            return 1;
        }
    }
    after = heap_used();
    printf("memory: %.1f KiB of heap per server conn waiting half-way (%d held)\n",
           (double)(after - before) / held / 1024.0, held);
    for (int i = 0; i < held; i++)
        dtls_conn_free(conns[i]);
    free(conns);
    dtls_cert_free(b.server_cert);
    dtls_cert_free(b.client_cert);
    remove_identity(sdir);
    remove_identity(cdir);
    rmdir(top);
    return 0;
}
