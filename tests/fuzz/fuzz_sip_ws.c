/* libFuzzer target: SIP over WebSocket end to end — wslay's frame parser in core/wsconn, the WS
 * transport (keep-alives, what is not SIP, sizes), then the whole SIP stack — on one end of a
 * loopback TCP connection given to sip_ws_accept(); the harness is the browser on the other end.
 * Input: byte 0 chooses how the application answers INVITEs (bits 0-1, as in fuzz_sip) and
 * whether the rest goes as it is (bit 2: raw bytes, frames and all, as a broken client would
 * send) or as frames; the rest is split at "\n----\n", and in framed mode each piece becomes one
 * masked frame (text, or binary when the piece starts with 0x02). "$TAG" becomes the To tag of
 * the last answer, as in fuzz_sip. A fresh stack and connection per input. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "sip/sip.h"

#define SEP "\n----\n"

static struct {
    uv_loop_t loop;
    int ready, listener;
    struct sockaddr_in addr;
    int server_fd, client_fd, closed;
    unsigned mode;
    char tag[65];
} g;

static void on_closed(void *arg)
{
    g.closed++;
    close(g.server_fd);
}

/* Reads what the server sent and keeps the last To tag (frames are not taken apart: a tag is
 * found in the text whatever the framing around it). */
static void collect(void)
{
    static char buf[65536];
    ssize_t n;
    while ((n = recv(g.client_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        const char *to = memmem(buf, (size_t)n, "\r\nTo: ", 6);
        const char *eol = to ? strstr(to + 2, "\r\n") : NULL;
        const char *t = to ? strstr(to, ";tag=") : NULL;
        if (t && eol && t < eol) {
            size_t len = strcspn(t + 5, ";>\r\n");
            if (len < sizeof(g.tag)) {
                memcpy(g.tag, t + 5, len);
                g.tag[len] = '\0';
            }
        }
    }
}

static void pump(void)
{
    for (int i = 0; i < 4; i++)
        uv_run(&g.loop, UV_RUN_NOWAIT);
    collect();
}

/* Writes while the server reads; gives up when it has gone (or stopped reading for good). */
static void write_all(const uint8_t *p, size_t n)
{
    for (size_t off = 0, tries = 0; off < n && tries < 1000;) {
        ssize_t w = send(g.client_fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (g.closed || (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return;
        pump();
        tries++;
    }
}

static void feed_frame(const char *p, size_t n)
{
    static uint8_t out[70000 + 14];
    static char text[70000];
    size_t tl = strlen(g.tag), m = 0;
    uint8_t opcode = 0x1;
    if (n > 0 && p[0] == 0x02) {
        opcode = 0x2;
        p++;
        n--;
    }
    for (size_t i = 0; i < n && m + tl < sizeof(text);) {
        if (i + 4 <= n && memcmp(p + i, "$TAG", 4) == 0) {
            memcpy(text + m, g.tag, tl);
            m += tl;
            i += 4;
        } else {
            text[m++] = p[i++];
        }
    }
    size_t k = 0;
    out[k++] = (uint8_t)(0x80 | opcode);
    if (m < 126) {
        out[k++] = (uint8_t)(0x80 | m);
    } else {
        out[k++] = 0x80 | 126;
        out[k++] = (uint8_t)(m >> 8);
        out[k++] = (uint8_t)m;
    }
    static const uint8_t mask[4] = {0x5a, 0xa5, 0x0f, 0xf0};
    memcpy(out + k, mask, 4);
    k += 4;
    for (size_t i = 0; i < m; i++)
        out[k + i] = (uint8_t)text[i] ^ mask[i % 4];
    write_all(out, k + m);
    pump();
}

static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct sdp_offer_result o;
    char sdp[2048];
    switch (g.mode % 4) {
    case 0:
    case 1:
        if (g.mode % 4 == 1)
            sip_dialog_ringing(d);
        if (inv->sdp && sdp_parse_offer(inv->sdp, &o) == 0 &&
            sdp_build_answer(&o, "127.0.0.1", 40000, 1, 1, sdp, sizeof(sdp)) > 0)
            sip_dialog_answer(d, sdp);
        else
            sip_dialog_reject(d, 488, NULL);
        break;
    case 2:
        sip_dialog_reject(d, 486, NULL);
        break;
    default: /* left ringing: the closing socket or sip_destroy() meets it */
        sip_dialog_ringing(d);
        break;
    }
}

static void on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    if (sip_dialog_bye(d) == 0) /* must fail: the dialog is over */
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready) {
        log_set_level(LOG_LEVEL_ERROR);
        uv_loop_init(&g.loop);
        g.listener = socket(AF_INET, SOCK_STREAM, 0);
        g.addr.sin_family = AF_INET;
        g.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t alen = sizeof(g.addr);
        if (g.listener < 0 || bind(g.listener, (struct sockaddr *)&g.addr, sizeof(g.addr)) != 0 ||
            listen(g.listener, 16) != 0 ||
            getsockname(g.listener, (struct sockaddr *)&g.addr, &alen) != 0)
            abort();
        g.ready = 1;
    }
    if (size < 1)
        return 0;
    g.mode = data[0];
    g.tag[0] = '\0';
    g.closed = 0;
    struct sip_config cfg = {.addr = "127.0.0.1",
                             .port = 0,
                             .max_dialogs = 4,
                             .max_setup_per_source = 2,
                             .t1_ms = 1,
                             .ws_max_connections = 2,
                             .ws_max_message = 4096};
    struct sip_callbacks cb = {.on_invite = on_invite, .on_ended = on_ended};
    char err[128];
    struct sip_stack *s = sip_create(&g.loop, &cfg, &cb, err, sizeof(err));
    if (!s)
        abort();
    g.client_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (g.client_fd < 0 || connect(g.client_fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) != 0)
        abort();
    g.server_fd = accept(g.listener, NULL, NULL);
    if (g.server_fd < 0)
        abort();
    fcntl(g.server_fd, F_SETFL, fcntl(g.server_fd, F_GETFL) | O_NONBLOCK);
    if (sip_ws_accept(s, g.server_fd, NULL, 0, on_closed, NULL) != 0)
        abort();
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    if (g.mode & 4) {
        write_all((const uint8_t *)p, (size_t)(end - p));
        pump();
    } else {
        while (p < end && !g.closed) {
            const char *q = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
            size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
            feed_frame(p, n);
            p = q ? q + strlen(SEP) : end;
        }
    }
    close(g.client_fd); /* the browser goes away: its dialogs end */
    pump();
    sip_destroy(s);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    return 0;
}
