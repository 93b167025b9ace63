/* The stack: creating it (the UDP transport, libosip2, one timer on the libuv loop), the pump
 * that runs the layers in a fixed order after every input, timer tick or application call, and
 * destroying it. */
#include "sip/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

void sip_stack_handle_closed(struct sip_stack *s)
{
    if (--s->open_handles == 0)
        free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    sip_stack_handle_closed(h->data);
}

static void on_timer(uv_timer_t *t)
{
    sip_stack_pump(t->data);
}

/* Sleeps until the earliest libosip2 timer, 2xx retransmission or deadline. */
static void rearm(struct sip_stack *s)
{
    uint64_t ms = sip_tx_next_ms(s);
    if (s->n_rtx || s->n_deadline) {
        uint64_t now = sip_now_ms();
        for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
            uint64_t next = UINT64_MAX;
            if (d->rtx)
                next = d->rtx_next < d->rtx_end ? d->rtx_next : d->rtx_end;
            if (d->deadline && d->deadline < next)
                next = d->deadline;
            if (next == UINT64_MAX)
                continue;
            uint64_t wait = next > now ? next - now : 0;
            if (wait < ms)
                ms = wait;
        }
    }
    if (s->again)
        ms = 0;
    if (ms > SIP_MAX_TIMER_MS)
        ms = SIP_MAX_TIMER_MS;
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

void sip_stack_pump(struct sip_stack *s)
{
    if (s->pumping) {
        s->again = true;
        return;
    }
    s->pumping = true;
    /* Bounded: whatever is left after these rounds runs on the next (immediate) timer tick. */
    for (int round = 0; round < 16; round++) {
        s->again = false;
        sip_dlg_run_closed(s);
        sip_tx_run_timers(s);
        sip_tx_run_work(s);
        sip_uas_run_rtx(s);
        sip_uac_run_deadlines(s);
        sip_tx_free_dead(s);
        sip_dlg_run_notes(s);
        if (!s->again)
            break;
    }
    s->pumping = false;
    if (!s->closing)
        rearm(s);
}

void sip_stack_kick(struct sip_stack *s)
{
    s->again = true;
    if (!s->pumping && !s->closing)
        uv_timer_start(&s->timer, on_timer, 0, 0);
}

/* ---- the API ---- */

static void osip_trace_sink(const char *file, int line, osip_trace_level_t level, const char *fmt,
                            va_list ap)
{
}

static void quiet_osip(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    /* libosip2 traces every parse error to stderr: input-driven noise, and no rate limit. Our own
     * log lines say what happened to each message that matters. */
    osip_trace_initialize_func(END_TRACE_LEVEL, osip_trace_sink);
    for (int l = TRACE_LEVEL0; l < END_TRACE_LEVEL; l++)
        osip_trace_disable_level((osip_trace_level_t)l);
}

struct sip_stack *sip_create(uv_loop_t *loop, const struct sip_config *cfg,
                             const struct sip_callbacks *cb, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    if (!cfg || !cfg->addr || !sip_is_ipv4(cfg->addr) || cfg->port < 0 || cfg->port > 65535 ||
        uv_ip4_addr(cfg->addr, cfg->port, &sa) != 0) {
        snprintf(err, errlen, "sip: listen address must be an IPv4 address and a port 0-65535");
        return NULL;
    }
    if (cfg->t1_ms < 0 || cfg->t1_ms > 10000) {
        snprintf(err, errlen, "sip: t1_ms must be 0 (500) to 10000");
        return NULL;
    }
    if (cfg->ws_max_connections < 0 || cfg->ws_max_message < 0 ||
        (cfg->ws_max_message > 0 && cfg->ws_max_message < 1024) ||
        cfg->ws_max_message > SIP_MAX_DATAGRAM) {
        snprintf(err, errlen,
                 "sip: ws_max_connections must be 0 (1000) or more, ws_max_message 0 (%d) or 1024 "
                 "to %d",
                 SIP_MAX_DATAGRAM, SIP_MAX_DATAGRAM);
        return NULL;
    }
    quiet_osip();
    struct sip_stack *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    if (cb)
        s->cb = *cb;
    str_copy(s->addr, sizeof(s->addr), cfg->addr);
    s->user_agent = xstrdup(cfg->user_agent && *cfg->user_agent ? cfg->user_agent : "conferenced");
    s->max_dialogs = cfg->max_dialogs > 0 ? (size_t)cfg->max_dialogs : SIP_DEFAULT_MAX_DIALOGS;
    s->max_tx = 8 * s->max_dialogs + 1024;
    s->max_setup = cfg->max_setup_per_source > 0 ? (size_t)cfg->max_setup_per_source : 0;
    s->t1 = cfg->t1_ms > 0 ? (unsigned)cfg->t1_ms : 500;
    s->t2 = 8 * s->t1;
    s->t4 = 10 * s->t1;
    s->ws_max_conns = cfg->ws_max_connections > 0 ? (size_t)cfg->ws_max_connections : 1000;
    s->ws_max_message = cfg->ws_max_message > 0 ? (size_t)cfg->ws_max_message : SIP_MAX_DATAGRAM;
    snprintf(s->ws_too_big, sizeof(s->ws_too_big),
             "SIP message too big: at most %zu bytes (setting sip_ws_max_message)",
             s->ws_max_message);
    if (sip_tp_udp_open(s, cfg->addr, cfg->port, err, errlen) < 0) {
        free(s->user_agent);
        s->closing = true;
        sip_tp_udp_close(s); /* frees s when closed */
        return NULL;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles++;
    sip_tx_init(s);
    log_info("msg=sip_listening addr=%s port=%d t1_ms=%u", s->addr, s->port, s->t1);
    return s;
}

void sip_destroy(struct sip_stack *s)
{
    if (!s)
        return;
    s->closing = true;
    /* Best effort, nothing waits: a BYE for every answered call, a 503 for every ringing one, a
     * CANCEL for every outgoing one that may have one (RFC 3261 9.1: not before a provisional
     * answer; the others are just dropped). */
    for (struct sip_dialog *d = s->dialogs; d; d = d->next) {
        osip_message_t *m = NULL;
        if (d->state == DLG_ANSWERED || d->state == DLG_CONFIRMED)
            m = sip_dlg_make_bye(d);
        else if (d->state == DLG_EARLY && d->ist)
            m = sip_msg_dialog_response(d, d->invite, 503, NULL);
        else if (d->state == DLG_CALLING && d->provisional && !d->cancel_sent)
            m = sip_uac_cancel_msg(d);
        if (m) {
            sip_tp_send_msg(s, m, &d->peer);
            osip_message_free(m);
        }
    }
    sip_ws_close_all(s);
    while (s->dialogs)
        sip_dlg_free(s->dialogs);
    sip_dlg_drop_notes(s);
    while (s->closed_conns) {
        struct sip_conn *c = s->closed_conns;
        s->closed_conns = c->closed_next;
        sip_conn_release(c);
    }
    sip_tx_fini(s);
    free(s->user_agent);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    sip_tp_udp_close(s);
}

int sip_port(const struct sip_stack *s)
{
    return s->port;
}
