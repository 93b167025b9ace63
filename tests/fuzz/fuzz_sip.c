/* libFuzzer target: datagrams through the whole SIP stack (libosip2's parser, our checks, the
 * dialogs, the transactions, the application's answers), fed with sip_stack_input() as if from
 * the harness's own loopback socket, which collects the answers. Input: byte 0 chooses how the
 * application answers INVITEs (see on_invite), the rest is one or more datagrams separated by
 * "\n----\n", so that a seed can carry a whole call (INVITE, ACK, re-INVITE, BYE). "$TAG" in a
 * datagram becomes the To tag of the last answer received: our tags are random, and without them
 * no in-dialog request would reach a dialog. A fresh stack per input keeps runs independent; any
 * crash, leak or UB is a finding. */
#include <arpa/inet.h>
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
    int ready, fd, port;
    unsigned mode;
    char tag[65];
} g;

/* Reads every answer waiting on the harness socket and keeps the last To tag. */
static void collect(void)
{
    static char buf[65536];
    ssize_t n;
    while ((n = recv(g.fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        const char *to = strstr(buf, "\r\nTo: ");
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

/* One datagram with "$TAG" replaced, into sip_stack_input(). */
static void feed(struct sip_stack *s, const char *p, size_t n)
{
    static char out[70000];
    size_t o = 0, tl = strlen(g.tag);
    for (size_t i = 0; i < n && o + tl < sizeof(out);) {
        if (i + 4 <= n && memcmp(p + i, "$TAG", 4) == 0) {
            memcpy(out + o, g.tag, tl);
            o += tl;
            i += 4;
        } else {
            out[o++] = p[i++];
        }
    }
    sip_stack_input(s, out, o, "127.0.0.1", g.port);
    uv_run(&g.loop, UV_RUN_NOWAIT);
    collect();
}

static void on_invite(void *ctx, struct sip_dialog *d, const struct sip_invite *inv)
{
    struct sdp_offer_result o;
    char sdp[2048];
    switch (g.mode % 4) {
    case 0: /* answer at once (488 when the offer is unusable) */
    case 1: /* ring first */
        if (g.mode % 4 == 1)
            sip_dialog_ringing(d);
        if (inv->sdp && sdp_parse_offer(inv->sdp, &o) == 0 &&
            sdp_build_answer(&o, "127.0.0.1", 40000, 1, 1, sdp, sizeof(sdp)) > 0)
            sip_dialog_answer(d, sdp);
        else
            sip_dialog_reject(d, 488, NULL);
        break;
    case 2:
        sip_dialog_reject(d, 486, "Busy \r\n Here");
        break;
    default: /* leave it ringing: CANCEL, BYE and sip_destroy() meet it */
        sip_dialog_ringing(d);
        break;
    }
}

static void on_established(void *ctx, struct sip_dialog *d)
{
    if (g.mode & 4)
        sip_dialog_bye(d);
}

static void on_ended(void *ctx, struct sip_dialog *d, bool remote, bool cancelled)
{
    /* must fail: the dialog is over */
    if (sip_dialog_bye(d) == 0 || sip_dialog_answer(d, "v=0\r\n") == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready) {
        log_set_level(LOG_LEVEL_ERROR);
        uv_loop_init(&g.loop);
        g.fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        if (g.fd < 0 || bind(g.fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(g.fd, (struct sockaddr *)&a, &alen) != 0)
            abort();
        g.port = ntohs(a.sin_port);
        g.ready = 1;
    }
    if (size < 1)
        return 0;
    g.mode = data[0];
    g.tag[0] = '\0';
    struct sip_config cfg = {
        .addr = "127.0.0.1", .port = 0, .max_dialogs = 4, .max_setup_per_source = 2, .t1_ms = 1};
    struct sip_callbacks cb = {
        .on_invite = on_invite, .on_established = on_established, .on_ended = on_ended};
    char err[128];
    struct sip_stack *s = sip_create(&g.loop, &cfg, &cb, err, sizeof(err));
    if (!s)
        abort();
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
        feed(s, p, n);
        p = q ? q + strlen(SEP) : end;
    }
    sip_destroy(s);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    collect();
    return 0;
}
