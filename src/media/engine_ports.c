/* The RTP port pairs of the range (port_base + 2 i for RTP, + 1 for RTCP) and which ones legs
 * hold: a bitmap, drawn from at random. Control thread. */
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mem.h"
#include "media/engine_internal.h"

void engine_ports_init(struct media_engine *e)
{
    e->pairs_used = xcalloc(((size_t)e->n_pairs + 63) / 64, sizeof(uint64_t));
    e->pairs_tried = xcalloc(((size_t)e->n_pairs + 63) / 64, sizeof(uint64_t));
}

void engine_ports_fini(struct media_engine *e)
{
    free(e->pairs_used);
    free(e->pairs_tried);
}

static int bind_udp(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool bit_get(const uint64_t *map, int i)
{
    return (map[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *map, int i, bool on)
{
    if (on)
        map[i / 64] |= UINT64_C(1) << (i % 64);
    else
        map[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

/* The index of the k-th pair (from 0) that is neither in used nor in tried. */
static int nth_free_pair(const struct media_engine *e, const uint64_t *tried, uint32_t k)
{
    size_t words = ((size_t)e->n_pairs + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        uint64_t taken = e->pairs_used[w] | tried[w];
        if (w == words - 1 && e->n_pairs % 64)
            taken |= ~UINT64_C(0) << (e->n_pairs % 64); /* beyond the last pair */
        uint32_t free_here = 64 - (uint32_t)__builtin_popcountll(taken);
        if (k >= free_here) {
            k -= free_here;
            continue;
        }
        for (int b = 0; b < 64; b++)
            if (!((taken >> b) & 1) && k-- == 0)
                return (int)(w * 64) + b;
    }
    return -1; /* not reached while k < the number of free pairs */
}

void engine_ports_release(struct media_engine *e, int port)
{
    int i = (port - e->port_base) / 2;
    assert(bit_get(e->pairs_used, i));
    if (bit_get(e->pairs_used, i)) {
        bit_set(e->pairs_used, i, false);
        e->n_pairs_used--;
    }
}

/* A port pair chosen uniformly at random among those no leg holds (so the next caller's port
 * cannot be guessed from the last one's), then bound; a pair another program holds is left out
 * and another one drawn, until none is left. */
int engine_ports_take(struct media_engine *e, int *rtp_fd, int *rtcp_fd, char *err, size_t errlen)
{
    int rtp = -1, rtcp = -1, port = 0, foreign = 0;
    uint64_t *tried = e->pairs_tried;
    for (int left = e->n_pairs - e->n_pairs_used; left > 0 && rtp < 0; left--) {
        int i = nth_free_pair(e, tried, randombytes_uniform((uint32_t)left));
        assert(i >= 0);
        port = e->port_base + 2 * i;
        rtp = bind_udp(e->bind_ip, port);
        if (rtp >= 0 && (rtcp = bind_udp(e->bind_ip, port + 1)) < 0) {
            close(rtp);
            rtp = -1;
        }
        if (rtp < 0) {
            bit_set(tried, i, true);
            foreign++;
        } else {
            bit_set(e->pairs_used, i, true);
            e->n_pairs_used++;
        }
    }
    if (foreign)
        memset(tried, 0, ((size_t)e->n_pairs + 63) / 64 * sizeof(uint64_t));
    if (rtp < 0) {
        snprintf(err, errlen,
                 "no free RTP port pair in rtp_ports %d-%d (%d pairs: %d held by calls, %d in use "
                 "by other programs)",
                 e->cfg.port_min, e->cfg.port_max, e->n_pairs, e->n_pairs_used, foreign);
        return -1;
    }
    *rtp_fd = rtp;
    *rtcp_fd = rtcp;
    return port;
}
