/* libFuzzer target: the two hand-written readers of sip/ for dialling — sip_uri_check() (a URI
 * POST /calls would dial) and sip_bye_saved() (the dialog state a previous run stored, rebuilt
 * into a BYE that goes out to the harness's own loopback socket). Input: byte 0 even = a URI,
 * odd = a saved state; the rest is the text. Any crash, leak or UB is a finding; a URI that is
 * accepted must also be one libosip2 parses, with the same host (nothing is dialled: no name
 * lookups). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <osipparser2/osip_parser.h>

#include "core/log.h"
#include "sip/sip.h"

static struct {
    uv_loop_t loop;
    int ready, fd;
    struct sip_stack *s;
} g;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready) {
        log_set_level(LOG_LEVEL_ERROR);
        uv_loop_init(&g.loop);
        struct sip_config cfg = {.addr = "127.0.0.1", .max_dialogs = 64, .t1_ms = 1};
        struct sip_callbacks cb = {0};
        char err[128];
        g.s = sip_create(&g.loop, &cfg, &cb, err, sizeof(err));
        g.fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (!g.s || g.fd < 0)
            abort();
        g.ready = 1;
    }
    if (size < 1 || size > 16384)
        return 0;
    char *text = malloc(size);
    if (!text)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char err[160];
    if (data[0] % 2 == 0) {
        if (sip_uri_check(text, err, sizeof(err)) == 0) {
            osip_uri_t *u = NULL;
            if (osip_uri_init(&u) != 0 || osip_uri_parse(u, text) != 0 || !u->host ||
                !strstr(text, u->host))
                abort(); /* checked as dialable, but the SIP parser reads it otherwise */
            osip_uri_free(u);
        }
    } else {
        sip_bye_saved(g.s, text, err, sizeof(err));
    }
    free(text);
    uv_run(&g.loop, UV_RUN_NOWAIT);
    return 0;
}
