/* The echo reference of bench/mixer: the least a bridge that receives each participant's RTP on
 * its own port can spend. It binds as many UDP ports as the bridge would, and once per 20 ms tick
 * (absolute clock, as the media threads keep) reads each port's waiting packets with one
 * recvmmsg() and sends each one straight back to where it came from (one sendto() per packet).
 * Nothing else: no parsing, no jitter buffer, no mixing, no encoding. The load tool's CPU figure
 * for this process is then the floor of the bridge's, system calls and the kernel's UDP work,
 * under the same load and on the same machine.
 *
 * Written for the project: no packaged tool does exactly this (socat or ncat relay one socket,
 * not a thousand on a tick).
 *
 * usage: build/bench_echo -b FIRST_PORT -n PORTS [-i 127.0.0.1]
 * Binds FIRST_PORT .. FIRST_PORT+PORTS-1, prints "ready" on stdout, runs until SIGTERM/SIGINT,
 * then prints one "echo ..." key=value line of counts on stdout. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 20000000LL
#define BATCH 8
#define MAX_PORTS 20000

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_echo: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long first = 0, n = 0;
    const char *ip = "127.0.0.1";
    int c;
    while ((c = getopt(argc, argv, "b:n:i:")) != -1) {
        switch (c) {
        case 'b':
            first = parse_long(optarg, 1, 65535, "first port");
            break;
        case 'n':
            n = parse_long(optarg, 1, MAX_PORTS, "port count");
            break;
        case 'i':
            ip = optarg;
            break;
        default:
            fprintf(stderr, "usage: bench_echo -b FIRST_PORT -n PORTS [-i ADDR]\n");
            return 2;
        }
    }
    if (!first || !n || first + n - 1 > 65535) {
        fprintf(stderr, "usage: bench_echo -b FIRST_PORT -n PORTS [-i ADDR]\n");
        return 2;
    }
    int *fds = calloc((size_t)n, sizeof(*fds));
    if (!fds) {
        fprintf(stderr, "bench_echo: out of memory\n");
        return 1;
    }
    struct sockaddr_in la = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, ip, &la.sin_addr) != 1) {
        fprintf(stderr, "bench_echo: bad address %s\n", ip);
        return 2;
    }
    for (long i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        la.sin_port = htons((uint16_t)(first + i));
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&la, sizeof(la)) < 0) {
            fprintf(stderr, "bench_echo: bind %s:%ld: %s\n", ip, first + i, strerror(errno));
            return 1;
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("ready\n");
    fflush(stdout);

    static uint8_t bufs[BATCH][2048];
    struct sockaddr_in from[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    uint64_t ticks = 0, late = 0, in = 0, out = 0, send_err = 0;
    int64_t next = mono_ns();
    while (!stop) {
        if (mono_ns() - next >= TICK_NS)
            late++;
        for (long i = 0; i < n; i++) {
            for (;;) {
                for (int k = 0; k < BATCH; k++) {
                    iov[k].iov_base = bufs[k];
                    iov[k].iov_len = sizeof(bufs[k]);
                    memset(&msgs[k].msg_hdr, 0, sizeof(msgs[k].msg_hdr));
                    msgs[k].msg_hdr.msg_name = &from[k];
                    msgs[k].msg_hdr.msg_namelen = sizeof(from[k]);
                    msgs[k].msg_hdr.msg_iov = &iov[k];
                    msgs[k].msg_hdr.msg_iovlen = 1;
                }
                int got = recvmmsg(fds[i], msgs, BATCH, MSG_DONTWAIT, NULL);
                if (got <= 0)
                    break;
                in += (uint64_t)got;
                for (int k = 0; k < got; k++) {
                    if (sendto(fds[i], bufs[k], msgs[k].msg_len, MSG_DONTWAIT,
                               (struct sockaddr *)&from[k], msgs[k].msg_hdr.msg_namelen) < 0)
                        send_err++;
                    else
                        out++;
                }
                if (got < BATCH)
                    break;
            }
        }
        ticks++;
        next += TICK_NS;
        struct timespec ts = {.tv_sec = next / 1000000000LL, .tv_nsec = next % 1000000000LL};
        while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    printf("echo ports=%ld ticks=%llu late_ticks=%llu packets_in=%llu packets_out=%llu "
           "send_errors=%llu\n",
           n, (unsigned long long)ticks, (unsigned long long)late, (unsigned long long)in,
           (unsigned long long)out, (unsigned long long)send_err);
    for (long i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    return 0;
}
