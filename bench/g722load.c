/* g722load: the G.722 load generator and mix check of bench/mixer. The shared load tool
 * (rtpload) sends PCMU and Opus only; this is the project's own for G.722 (RFC 3551 payload type
 * 9, 16 kHz audio on an 8 kHz RTP clock), with the same map file, the same measurements and the
 * same RESULT keys, so that bench/mixer reads both alike. The codec is spandsp's, the one the
 * server uses.
 *
 * For each participant of the map it binds 127.0.0.1:<local_port> and sends a distinct pure tone
 * (integer Hz, 200 Hz up to -f, default 6800 Hz: tones above 4 kHz show the room is wideband) as
 * 20 ms G.722 frames (160 bytes, 64 kbit/s) to <remote_ip>:<remote_port>, every 20 ms on an
 * absolute clock (participant i in the i % 20-th millisecond of each frame, as rtpload spreads
 * its sends). The frames are encoded once at start: one second of the tone (the tone repeats
 * exactly every 16,000 samples) after a second of warm-up of the same encoder, so the loop has no
 * seam and sending costs what a PCMU sender costs.
 *
 * What comes back is decoded (one decoder per participant) and the last second is kept. At the
 * end, with rtpload's thresholds (a Hann window and Goertzel at each probed tone, amplitude
 * relative to what that tone's sender sent): a participant passes when it hears every roommate at
 * >= 0.5, its own tone at < 0.1, and nobody of another room at >= 0.1. The same check is run
 * on the codec alone (each participant's exact mix-minus through a G.722 encoder and decoder, no
 * bridge), to tell what the bridge does from what 64 kbit/s of G.722 can carry.
 *
 * Over the window after the warm-up it reports packets received per participant-second, loss,
 * RFC 3550 jitter, the longest gap between arrivals (kernel receive timestamps), and the CPU of
 * process -p (utime + stime from /proc/PID/stat at the window's edges), of itself and of the
 * machine. The last line is "RESULT key=value ...".
 *
 * usage: build/bench_g722load -m MAP [-d SECONDS] [-w WARMUP] [-p PID] [-a AMPL] [-f TOP_HZ] [-q]
 * map lines: <local_port> <remote_ip> <remote_port> <room> */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <spandsp/telephony.h>
#include <spandsp/g722.h>

#define RATE 16000       /* G.722 audio */
#define FRAME 320        /* samples per 20 ms */
#define PAYLOAD 160      /* bytes per 20 ms at 64 kbit/s */
#define TS_STEP 160      /* RTP timestamp per 20 ms: the 8 kHz clock of RFC 3551 */
#define RTP_CLOCK 8000.0 /* for the jitter */
#define CYCLE 50         /* frames in a second: an integer-Hz tone repeats */
#define PT 9
#define RTP_HDR 12
#define RECV_BATCH 16
#define MAX_PARTS 20000
#define SLOTS 20

struct part {
    int fd;
    uint16_t lport;
    struct sockaddr_in raddr;
    long room;
    int tone_hz;
    double amp;
    uint8_t pkts[CYCLE][PAYLOAD];
    uint32_t ssrc, ts, pos;
    uint16_t seq;
    uint64_t tx, tx_win, tx_err;
    uint64_t rx_win, rx_bad, lost_win, late_win;
    int have_seq, have_transit;
    uint16_t next_seq;
    double transit, jitter; /* RFC 3550, in 8 kHz timestamp units */
    int64_t last_arrival, max_gap_win;
    g722_decode_state_t *dec;
    int16_t ring[RATE]; /* the last second received */
    uint32_t ring_pos, ring_fill;
    int checked, hears_all, hears_self, crosstalk, wide_expected, wide_heard;
    double min_other, self_ratio, max_xtalk;
};

static struct part *parts;
static int nparts;
static int in_window;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double parse_num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end) {
        fprintf(stderr, "g722load: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_g722load -m MAP [-d SECONDS] [-w WARMUP] [-p PID] [-a AMPL] "
                    "[-f TOP_HZ] [-q]\n  map lines: <local_port> <remote_ip> <remote_port> "
                    "<room>\n");
    exit(2);
}

static void load_map(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die(path);
    char line[512];
    int cap = 0;
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        unsigned lport, rport;
        char rip[64];
        long room;
        int n = sscanf(line, "%u %63s %u %ld", &lport, rip, &rport, &room);
        if (n <= 0)
            continue;
        if (n != 4 || !lport || lport > 65535 || !rport || rport > 65535) {
            fprintf(stderr, "g722load: bad map line: %s\n", line);
            exit(2);
        }
        if (nparts == MAX_PARTS) {
            fprintf(stderr, "g722load: more than %d participants\n", MAX_PARTS);
            exit(2);
        }
        if (nparts == cap) {
            cap = cap ? cap * 2 : 64;
            parts = realloc(parts, (size_t)cap * sizeof(*parts));
            if (!parts)
                die("realloc");
        }
        struct part *p = &parts[nparts++];
        memset(p, 0, sizeof(*p));
        p->lport = (uint16_t)lport;
        p->room = room;
        p->raddr.sin_family = AF_INET;
        p->raddr.sin_port = htons((uint16_t)rport);
        if (inet_pton(AF_INET, rip, &p->raddr.sin_addr) != 1) {
            fprintf(stderr, "g722load: bad IPv4 address: %s\n", rip);
            exit(2);
        }
    }
    fclose(f);
    if (!nparts) {
        fprintf(stderr, "g722load: the map has no participants\n");
        exit(2);
    }
}

static int room_size(long room)
{
    int n = 0;
    for (int i = 0; i < nparts; i++)
        n += parts[i].room == room;
    return n;
}

/* Tones and their packets: two seconds through one encoder, the second kept (see the top). */
static void make_tones(double amp_override, int top_hz)
{
    static int16_t pcm[2 * RATE];
    uint8_t frame[PAYLOAD];
    for (int i = 0; i < nparts; i++) {
        struct part *p = &parts[i];
        p->tone_hz = 200 + (int)((int64_t)i * (top_hz - 200) / nparts);
        p->amp = amp_override > 0 ? amp_override : fmin(4000.0, 16000.0 / room_size(p->room));
        for (int n = 0; n < 2 * RATE; n++)
            pcm[n] = (int16_t)lrint(p->amp * sin(2.0 * M_PI * p->tone_hz * n / (double)RATE));
        g722_encode_state_t *enc = g722_encode_init(NULL, 64000, 0);
        if (!enc)
            die("g722_encode_init");
        for (int k = 0; k < 2 * CYCLE; k++) {
            if (g722_encode(enc, frame, pcm + k * FRAME, FRAME) != PAYLOAD) {
                fprintf(stderr, "g722load: the encoder gave a short frame\n");
                exit(2);
            }
            if (k >= CYCLE)
                memcpy(p->pkts[k - CYCLE], frame, PAYLOAD);
        }
        g722_encode_free(enc);
        p->dec = g722_decode_init(NULL, 64000, 0);
        if (!p->dec)
            die("g722_decode_init");
    }
}

static void open_sockets(int epfd)
{
    for (int i = 0; i < nparts; i++) {
        struct part *p = &parts[i];
        p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0)
            die("socket");
        int one = 1, rcvbuf = 256 * 1024;
        setsockopt(p->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
        setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons(p->lport)};
        la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(p->fd, (struct sockaddr *)&la, sizeof(la)) < 0) {
            fprintf(stderr, "g722load: bind 127.0.0.1:%u: %s\n", p->lport, strerror(errno));
            exit(2);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev) < 0)
            die("epoll_ctl");
        p->ssrc = 0x72200000u ^ (uint32_t)((unsigned)i * 2654435761u);
        p->seq = (uint16_t)(1 + (i * 37) % 1000);
        p->ts = (uint32_t)i * 7919u * TS_STEP;
    }
}

static void send_one(struct part *p)
{
    uint8_t pkt[RTP_HDR + PAYLOAD];
    pkt[0] = 0x80;
    pkt[1] = (uint8_t)((p->tx == 0 ? 0x80 : 0) | PT);
    pkt[2] = (uint8_t)(p->seq >> 8);
    pkt[3] = (uint8_t)p->seq;
    pkt[4] = (uint8_t)(p->ts >> 24);
    pkt[5] = (uint8_t)(p->ts >> 16);
    pkt[6] = (uint8_t)(p->ts >> 8);
    pkt[7] = (uint8_t)p->ts;
    pkt[8] = (uint8_t)(p->ssrc >> 24);
    pkt[9] = (uint8_t)(p->ssrc >> 16);
    pkt[10] = (uint8_t)(p->ssrc >> 8);
    pkt[11] = (uint8_t)p->ssrc;
    memcpy(pkt + RTP_HDR, p->pkts[p->pos], PAYLOAD);
    if (sendto(p->fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&p->raddr, sizeof(p->raddr)) !=
        (ssize_t)sizeof(pkt))
        p->tx_err++;
    p->tx++;
    if (in_window)
        p->tx_win++;
    p->seq++;
    p->ts += TS_STEP;
    p->pos = (p->pos + 1) % CYCLE;
}

static void handle_packet(struct part *p, const uint8_t *b, size_t len, int64_t arrival)
{
    if (len < RTP_HDR || (b[0] >> 6) != 2) {
        p->rx_bad++;
        return;
    }
    size_t hdr = RTP_HDR + 4u * (b[0] & 0x0F);
    if (b[0] & 0x10) {
        if (len < hdr + 4) {
            p->rx_bad++;
            return;
        }
        hdr += 4 + 4u * ((size_t)b[hdr + 2] << 8 | b[hdr + 3]);
    }
    if (hdr >= len) {
        p->rx_bad++;
        return;
    }
    size_t plen = len - hdr;
    if ((b[0] & 0x20) && b[len - 1] < plen)
        plen -= b[len - 1];
    if ((b[1] & 0x7F) != PT || plen == 0) {
        p->rx_bad++;
        return;
    }
    uint16_t seq = (uint16_t)(b[2] << 8 | b[3]);
    uint32_t ts = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
    if (!p->have_seq) {
        p->have_seq = 1;
        p->next_seq = (uint16_t)(seq + 1);
    } else {
        int16_t d = (int16_t)(seq - p->next_seq);
        if (d >= 0) {
            if (in_window)
                p->lost_win += (uint64_t)d;
            p->next_seq = (uint16_t)(seq + 1);
        } else if (in_window) {
            p->late_win++;
        }
    }
    double transit = (double)arrival * RTP_CLOCK / 1e9 - (double)ts;
    if (p->have_transit) {
        double d = fabs(transit - p->transit);
        if (d < RTP_CLOCK * 60)
            p->jitter += (d - p->jitter) / 16.0;
    }
    p->transit = transit;
    p->have_transit = 1;
    if (in_window) {
        p->rx_win++;
        if (p->last_arrival && arrival - p->last_arrival > p->max_gap_win)
            p->max_gap_win = arrival - p->last_arrival;
    }
    p->last_arrival = arrival;
    int16_t pcm[4 * FRAME];
    if (plen > 2 * PAYLOAD)
        plen = 2 * PAYLOAD;
    int n = g722_decode(p->dec, pcm, b + hdr, (int)plen);
    for (int i = 0; i < n; i++) {
        p->ring[p->ring_pos] = pcm[i];
        p->ring_pos = (p->ring_pos + 1) % RATE;
    }
    p->ring_fill = p->ring_fill + (uint32_t)n > RATE ? RATE : p->ring_fill + (uint32_t)n;
}

static void drain(struct part *p)
{
    static uint8_t bufs[RECV_BATCH][1600];
    static uint8_t ctl[RECV_BATCH][CMSG_SPACE(sizeof(struct timespec)) + 64];
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    for (;;) {
        for (int i = 0; i < RECV_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof(bufs[i]);
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
        }
        int n = recvmmsg(p->fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        /* SO_TIMESTAMPNS is CLOCK_REALTIME: to the monotonic clock */
        struct timespec rt, mt;
        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mt);
        int64_t off = ((int64_t)mt.tv_sec * 1000000000LL + mt.tv_nsec) -
                      ((int64_t)rt.tv_sec * 1000000000LL + rt.tv_nsec);
        for (int i = 0; i < n; i++) {
            int64_t arr = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c;
                 c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec t;
                    memcpy(&t, CMSG_DATA(c), sizeof(t));
                    arr = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec + off;
                }
            handle_packet(p, bufs[i], msgs[i].msg_len, arr ? arr : now_ns());
        }
        if (n < RECV_BATCH)
            return;
    }
}

/* Every slot that is due: the timer counts expirations, so a late wake-up catches up and the
 * pacing stays absolute. */
static void on_timer(int tfd, uint64_t *tick, uint64_t *late)
{
    uint64_t exp = 0;
    if (read(tfd, &exp, sizeof(exp)) != sizeof(exp))
        return;
    if (exp > 1)
        *late += exp - 1;
    for (uint64_t k = 0; k < exp; k++, (*tick)++)
        for (int i = (int)(*tick % SLOTS); i < nparts; i += SLOTS)
            send_one(&parts[i]);
}

/* utime + stime of a process, seconds; -1 when it cannot be read. */
static double proc_cpu(pid_t pid, double *user, double *sys)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    double hz = (double)sysconf(_SC_CLK_TCK);
    *user = (double)ut / hz;
    *sys = (double)st / hz;
    return *user + *sys;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void machine_cpu(double *busy, double *total)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    *busy = *total = 0;
    if (!f)
        return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            *total += (double)v[i];
        *busy = *total - (double)v[3] - (double)v[4];
    }
    fclose(f);
}

/* Amplitude of the integer-Hz tone hz in x (Hann-windowed, RATE samples). */
static double tone_amp(const float *x, int hz)
{
    double w = 2.0 * M_PI * hz / RATE, c = 2.0 * cos(w), s1 = 0, s2 = 0;
    for (int i = 0; i < RATE; i++) {
        double s0 = x[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double re = s1 - s2 * cos(w), im = s2 * sin(w);
    return 4.0 * sqrt(re * re + im * im) / RATE; /* the Hann window's coherent gain is 0.5 */
}

static void check_mix(void)
{
    static float x[RATE];
    int step = nparts > 256 ? nparts / 256 : 1; /* at most ~256 probes per participant */
    for (int i = 0; i < nparts; i++) {
        struct part *p = &parts[i];
        p->min_other = INFINITY;
        if (p->ring_fill < RATE)
            continue;
        for (int k = 0; k < RATE; k++) {
            double hann = 0.5 - 0.5 * cos(2.0 * M_PI * k / RATE);
            x[k] = (float)(p->ring[(p->ring_pos + (uint32_t)k) % RATE] * hann);
        }
        p->checked = p->hears_all = 1;
        for (int j = 0; j < nparts; j++) {
            struct part *q = &parts[j];
            if (j != i && j % step != 0 && q->room != p->room)
                continue;
            double r = tone_amp(x, q->tone_hz) / q->amp;
            if (j == i) {
                p->self_ratio = r;
                p->hears_self = r >= 0.1;
            } else if (q->room == p->room) {
                if (r < p->min_other)
                    p->min_other = r;
                if (r < 0.5)
                    p->hears_all = 0;
                if (q->tone_hz > 4000) {
                    p->wide_expected++;
                    p->wide_heard += r >= 0.5;
                }
            } else {
                if (r > p->max_xtalk)
                    p->max_xtalk = r;
                if (r >= 0.1)
                    p->crosstalk = 1;
            }
        }
    }
}

/* The codec's share, without the bridge: for each participant, the exact mix-minus of its room
 * (every roommate's tone at its amplitude, its own absent: what a perfect mixer sends) through a
 * fresh G.722 encoder and decoder, checked as above. When the run fails where this passes, the
 * bridge is at fault; when both fail alike, the codec cannot carry that many tones. */
struct model {
    int ok, checked, self, missing, wide_expected, wide_heard;
    double other_min, self_max;
};

static void model_codec(struct model *m)
{
    static int16_t pcm[2 * RATE], dec[2 * RATE];
    static float x[RATE];
    static double sum[RATE];
    uint8_t frame[PAYLOAD];
    memset(m, 0, sizeof(*m));
    m->other_min = INFINITY;
    float *tones = malloc(sizeof(float) * RATE * (size_t)nparts);
    if (!tones)
        die("malloc");
    for (int i = 0; i < nparts; i++)
        for (int n = 0; n < RATE; n++)
            tones[(size_t)i * RATE + (size_t)n] =
                (float)(parts[i].amp * sin(2.0 * M_PI * parts[i].tone_hz * n / RATE));
    long last_room = 0;
    int have_room = 0;
    for (int i = 0; i < nparts; i++) {
        struct part *p = &parts[i];
        if (room_size(p->room) < 2)
            continue;
        if (!have_room || p->room != last_room) { /* the room's whole sum, once per room */
            memset(sum, 0, sizeof(sum));
            for (int j = 0; j < nparts; j++)
                if (parts[j].room == p->room)
                    for (int n = 0; n < RATE; n++)
                        sum[n] += tones[(size_t)j * RATE + (size_t)n];
            last_room = p->room;
            have_room = 1;
        }
        for (int n = 0; n < 2 * RATE; n++) {
            double v = sum[n % RATE] - tones[(size_t)i * RATE + (size_t)(n % RATE)];
            pcm[n] = (int16_t)lrint(fmax(-32767, fmin(32767, v)));
        }
        g722_encode_state_t *enc = g722_encode_init(NULL, 64000, 0);
        g722_decode_state_t *d = g722_decode_init(NULL, 64000, 0);
        if (!enc || !d)
            die("g722 init");
        for (int k = 0; k < 2 * CYCLE; k++) {
            g722_encode(enc, frame, pcm + k * FRAME, FRAME);
            g722_decode(d, dec + k * FRAME, frame, PAYLOAD);
        }
        g722_encode_free(enc);
        g722_decode_free(d);
        for (int k = 0; k < RATE; k++)
            x[k] = (float)(dec[RATE + k] * (0.5 - 0.5 * cos(2.0 * M_PI * k / RATE)));
        int hears_all = 1, hears_self = 0;
        for (int j = 0; j < nparts; j++) {
            struct part *q = &parts[j];
            if (q->room != p->room)
                continue;
            double r = tone_amp(x, q->tone_hz) / q->amp;
            if (j == i) {
                hears_self = r >= 0.1;
                if (r > m->self_max)
                    m->self_max = r;
                continue;
            }
            if (r < m->other_min)
                m->other_min = r;
            hears_all &= r >= 0.5;
            if (q->tone_hz > 4000) {
                m->wide_expected++;
                m->wide_heard += r >= 0.5;
            }
        }
        m->checked++;
        m->self += hears_self;
        m->missing += !hears_all;
        m->ok += hears_all && !hears_self;
    }
    free(tones);
    if (isinf(m->other_min))
        m->other_min = -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    if (!n)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *map = NULL;
    double dur = 30, warm = 8, amp = 0;
    int quiet = 0, top_hz = 6800;
    pid_t pid = 0;
    int c;
    while ((c = getopt(argc, argv, "m:d:w:p:a:f:q")) != -1) {
        switch (c) {
        case 'm':
            map = optarg;
            break;
        case 'd':
            dur = parse_num(optarg, "duration");
            break;
        case 'w':
            warm = parse_num(optarg, "warm-up");
            break;
        case 'p':
            pid = (pid_t)parse_num(optarg, "pid");
            break;
        case 'a':
            amp = parse_num(optarg, "amplitude");
            break;
        case 'f':
            top_hz = (int)parse_num(optarg, "top frequency");
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (!map || dur <= 0 || warm < 0 || warm >= dur || top_hz < 400 || top_hz > 7800)
        usage();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    load_map(map);
    make_tones(amp, top_hz);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    open_sockets(epfd);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0)
        die("timerfd_create");
    int64_t t0 = now_ns() + 5000000LL;
    struct itimerspec its = {
        .it_value = {.tv_sec = t0 / 1000000000LL, .tv_nsec = t0 % 1000000000LL},
        .it_interval = {.tv_sec = 0, .tv_nsec = 20000000LL / SLOTS},
    };
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        die("timerfd_settime");
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) < 0)
        die("epoll_ctl");

    const int64_t t_win = t0 + (int64_t)(warm * 1e9), t_end = t0 + (int64_t)(dur * 1e9);
    int64_t win_start = 0;
    double pc0 = -1, pu0 = 0, ps0 = 0, self0 = 0, mb0 = 0, mt0 = 0;
    uint64_t tick = 0, late_ticks = 0, drained = 0;
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 256, 50);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u64 == UINT64_MAX) {
                on_timer(tfd, &tick, &late_ticks);
                continue;
            }
            drain(&parts[evs[e].data.u64]);
            /* decoding a burst of arrivals takes a while: keep the send slots on time */
            if (++drained % 8 == 0)
                on_timer(tfd, &tick, &late_ticks);
        }
        int64_t now = now_ns();
        if (!in_window && now >= t_win) {
            in_window = 1;
            win_start = now;
            if (pid)
                pc0 = proc_cpu(pid, &pu0, &ps0);
            self0 = self_cpu();
            machine_cpu(&mb0, &mt0);
        }
        if (now >= t_end)
            break;
    }
    if (!in_window) {
        fprintf(stderr, "g722load: interrupted before the statistics window\n");
        return 1;
    }
    int64_t win_end = now_ns();
    double pu1 = 0, ps1 = 0, mb1, mt1;
    double pc1 = pid ? proc_cpu(pid, &pu1, &ps1) : -1;
    double self1 = self_cpu();
    machine_cpu(&mb1, &mt1);
    double win = (double)(win_end - win_start) / 1e9;

    check_mix();
    struct model model;
    model_codec(&model);

    double *rxps = calloc((size_t)nparts, sizeof(double));
    double *jit = calloc((size_t)nparts, sizeof(double));
    if (!rxps || !jit)
        die("calloc");
    double rx_min = INFINITY, jit_max = 0, gap_max = 0, other_min = INFINITY, self_max = 0;
    uint64_t tx = 0, tx_err = 0, rx = 0, lost = 0, late = 0, bad = 0;
    int checked = 0, ok = 0, self = 0, xtalk = 0, missing = 0, wide_exp = 0, wide_heard = 0;
    for (int i = 0; i < nparts; i++) {
        struct part *p = &parts[i];
        rxps[i] = (double)p->rx_win / win;
        jit[i] = p->jitter / (RTP_CLOCK / 1000.0);
        if (rxps[i] < rx_min)
            rx_min = rxps[i];
        if (jit[i] > jit_max)
            jit_max = jit[i];
        if ((double)p->max_gap_win / 1e6 > gap_max)
            gap_max = (double)p->max_gap_win / 1e6;
        tx += p->tx_win;
        tx_err += p->tx_err;
        rx += p->rx_win;
        lost += p->lost_win;
        late += p->late_win;
        bad += p->rx_bad;
        if (!p->checked)
            continue;
        checked++;
        self += p->hears_self;
        xtalk += p->crosstalk;
        missing += !p->hears_all;
        ok += p->hears_all && !p->hears_self && !p->crosstalk;
        wide_exp += p->wide_expected;
        wide_heard += p->wide_heard;
        if (room_size(p->room) > 1 && p->min_other < other_min)
            other_min = p->min_other;
        if (p->self_ratio > self_max)
            self_max = p->self_ratio;
    }
    if (isinf(other_min))
        other_min = -1;
    double rx_mean = (double)rx / win / nparts;
    double jit_med = median(jit, nparts);
    int pid_ok = pid && pc0 >= 0 && pc1 >= 0;
    double cpu = pid_ok ? (pc1 - pc0) / win * 100 : -1;
    double cpu_user = pid_ok ? (pu1 - pu0) / win * 100 : -1;
    double cpu_sys = pid_ok ? (ps1 - ps0) / win * 100 : -1;
    double own = (self1 - self0) / win * 100;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double busy = mt1 > mt0 ? (mb1 - mb0) / (mt1 - mt0) * 100.0 * (double)ncpu : -1;
    double us_per_ps = pid_ok ? cpu / 100 * 1e6 / nparts : -1;
    if (!quiet) {
        printf("participants       %d, G.722 (PT %d, 64 kbit/s, 20 ms), tones 200-%d Hz\n", nparts,
               PT, top_hz);
        printf("window             %.2f s (after %.1f s warm-up)\n", win, warm);
        printf("sent               %.1f pkt/s per participant, %" PRIu64 " send errors, %" PRIu64
               " late timer ticks\n",
               (double)tx / win / nparts, tx_err, late_ticks);
        printf("received           %.2f pkt/s per participant (min %.2f)\n", rx_mean, rx_min);
        printf("loss / late / bad  %" PRIu64 " / %" PRIu64 " / %" PRIu64 " packets\n", lost, late,
               bad);
        printf("jitter (RFC 3550)  median %.3f ms, max %.3f ms; max inter-arrival gap %.1f ms\n",
               jit_med, jit_max, gap_max);
        printf("mix check          %d/%d ok (checked %d; missing others %d, hear self %d, "
               "cross-room %d); roommates >= %.3f, own <= %.3f; tones above 4 kHz heard %d of "
               "%d\n",
               ok, nparts, checked, missing, self, xtalk, other_min, self_max, wide_heard,
               wide_exp);
        printf("codec alone        the exact mix-minus through G.722: %d/%d ok (missing others "
               "%d, hear self %d); roommates >= %.3f, own <= %.3f; tones above 4 kHz heard %d of "
               "%d\n",
               model.ok, model.checked, model.missing, model.self, model.other_min, model.self_max,
               model.wide_heard, model.wide_expected);
        if (pid)
            printf("CPU of pid %d      %.2f %% of one core (user %.2f, sys %.2f): %.1f us per "
                   "participant-second\n",
                   (int)pid, cpu, cpu_user, cpu_sys, us_per_ps);
        printf("CPU of g722load    %.2f %% of one core; machine busy %.1f %% of one core\n", own,
               busy);
    }
    printf("RESULT participants=%d window_s=%.2f tx_pps=%.2f rx_pps_mean=%.2f rx_pps_min=%.2f "
           "lost=%" PRIu64 " late=%" PRIu64 " bad=%" PRIu64 " jitter_ms_median=%.3f "
           "jitter_ms_max=%.3f max_gap_ms=%.1f mix_ok=%d checked=%d hear_self=%d crosstalk=%d "
           "missing=%d target_cpu_pct=%.2f target_user_pct=%.2f target_sys_pct=%.2f "
           "target_us_per_participant_s=%.1f loadgen_cpu_pct=%.2f machine_busy_pct=%.1f "
           "late_ticks=%" PRIu64 " codec=g722 payload_type=%d other_ratio_min=%.3f "
           "self_ratio_max=%.3f wide_heard=%d wide_expected=%d model_mix_ok=%d model_checked=%d "
           "model_other_ratio_min=%.3f model_self_ratio_max=%.3f model_wide_heard=%d\n",
           nparts, win, (double)tx / win / nparts, rx_mean, rx_min, lost, late, bad, jit_med,
           jit_max, gap_max, ok, checked, self, xtalk, missing, cpu, cpu_user, cpu_sys, us_per_ps,
           own, busy, late_ticks, PT, other_min, self_max, wide_heard, wide_exp, model.ok,
           model.checked, model.other_min, model.self_max, model.wide_heard);
    return 0;
}
