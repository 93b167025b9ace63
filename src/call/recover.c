/* Start-up: the calls a previous run left up are recorded as hung up, and the dialogs of those
 * that were answered get a BYE once the SIP side runs. */
#include "call/internal.h"

#include <stdlib.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

int call_mgr_recover(struct call_mgr *m)
{
    struct call *list = NULL;
    size_t n = 0;
    if (store_call_list_live(m->d.store, &list, &n) != 0)
        return -1;
    int64_t now = tm_now_us();
    for (size_t i = 0; i < n; i++) {
        struct call *c = &list[i];
        if (c->dialog && c->dialog[0]) { /* answered: its peer still thinks it is up */
            m->saved = xrealloc(m->saved, (m->n_saved + 1) * sizeof(*m->saved));
            m->saved[m->n_saved++] = xstrdup(c->dialog);
            c->dialog[0] = '\0';
        }
        c->status = CALL_HANGUP;
        c->tm_hangup = c->tm_update = now;
        if (!c->hangup_reason[0])
            str_copy(c->hangup_reason, sizeof(c->hangup_reason), "failed");
        if (!c->hangup_by[0])
            str_copy(c->hangup_by, sizeof(c->hangup_by), "local");
        if (store_call_update(m->d.store, c) == 0)
            call_publish(m, "call_hangup", c);
    }
    if (n)
        log_info("msg=\"calls from the previous run ended\" count=%zu dialogs=%zu", n, m->n_saved);
    store_free_calls(list, n);
    return 0;
}

void call_mgr_end_saved_dialogs(struct call_mgr *m)
{
    for (size_t i = 0; i < m->n_saved; i++) {
        char err[160];
        if (!m->has_sip || m->sip.bye_saved(m->sip.ctx, m->saved[i], err, sizeof(err)) < 0)
            log_warn("msg=\"no BYE for a dialog of the previous run\" error=\"%s\"",
                     m->has_sip ? err : "no SIP stack");
        free(m->saved[i]);
    }
    free(m->saved);
    m->saved = NULL;
    m->n_saved = 0;
}
