/* The transaction layer: libosip2's state machines (INVITE/non-INVITE server; INVITE client for
 * our outgoing calls, non-INVITE client for our BYE and CANCEL), with their timers set from our
 * T1 and the transport's reliability, and answering a new request through a fresh server
 * transaction.
 *
 * The transactions are libosip2's, but not in its lists: under load some 6,000 linger (a
 * non-INVITE server transaction lives 64*T1 = 32 s after its answer on UDP), and libosip2 walks
 * all of them per lookup (osip_find_transaction_and_add_event), per timer scan, per state machine
 * pass and per new transaction. We keep them in a hash table (tx_key: RFC 3261 17.1.3 / 17.2.3
 * matching), a list of those with events (run_work) and a heap of their timers (run_timers), so
 * the cost of a message does not grow with them. */
#include "sip/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/mem.h"

static void tv_in(struct timeval *tv, unsigned ms)
{
    osip_gettimeofday(tv, NULL);
    tv->tv_sec += ms / 1000;
    tv->tv_usec += (long)(ms % 1000) * 1000;
    if (tv->tv_usec >= 1000000) {
        tv->tv_sec++;
        tv->tv_usec -= 1000000;
    }
}

/* libosip2 fixes T1 at compile time; its timer lengths live in the transaction contexts, so a
 * configured T1 is applied right after creation (before any event ran). libosip2 also takes a
 * transport for reliable only when the Via says TCP, TLS or SCTP: a reliable transport of ours
 * (WebSocket) gets RFC 3261 17's reliable timers here — no retransmission timer (A, E, G), no
 * wait for retransmissions (D, I, J, K zero) — while the time-outs (B, F, H) stay. */
static void tx_set_timers(struct sip_stack *s, osip_transaction_t *tr, bool reliable)
{
    int t1 = (int)s->t1, t4 = (int)s->t4;
    if (tr->ctx_type == IST && tr->ist_context) {
        osip_ist_t *c = tr->ist_context;
        if (reliable) {
            c->timer_g_length = -1;
            c->timer_g_start.tv_sec = -1;
            c->timer_i_length = 0;
        } else if (c->timer_g_length > 0) {
            c->timer_g_length = t1;
            c->timer_i_length = t4;
        }
        c->timer_h_length = 64 * t1;
    } else if (tr->ctx_type == NIST && tr->nist_context) {
        if (reliable)
            tr->nist_context->timer_j_length = 0;
        else if (tr->nist_context->timer_j_length > 0)
            tr->nist_context->timer_j_length = 64 * t1;
    } else if (tr->ctx_type == ICT && tr->ict_context) {
        osip_ict_t *c = tr->ict_context;
        /* Timer A starts at T1 and doubles without the T2 cap (RFC 3261 17.1.1.2); B = 64*T1;
         * D (absorbing retransmitted final answers) 32 s at the default T1. */
        if (reliable) {
            c->timer_a_length = -1;
            c->timer_a_start.tv_sec = -1;
            c->timer_d_length = 0;
        } else {
            if (c->timer_a_length > 0) {
                c->timer_a_length = t1;
                tv_in(&c->timer_a_start, s->t1);
            }
            if (c->timer_d_length > 0)
                c->timer_d_length = 64 * t1;
        }
        c->timer_b_length = 64 * t1;
        tv_in(&c->timer_b_start, 64 * s->t1);
    } else if (tr->ctx_type == NICT && tr->nict_context) {
        osip_nict_t *c = tr->nict_context;
        if (reliable) {
            c->timer_e_length = -1;
            c->timer_e_start.tv_sec = -1;
            c->timer_k_length = 0;
        } else {
            if (c->timer_e_length > 0)
                c->timer_e_length = t1;
            if (c->timer_k_length > 0)
                c->timer_k_length = t4;
        }
        c->timer_f_length = 64 * t1;
        tv_in(&c->timer_f_start, 64 * s->t1);
    }
}

/* ---- the index ---- */

/* The key of a transaction in our index (RFC 3261 17.1.3, 17.2.3): a server transaction by the
 * branch and sent-by of the top Via and the method (an ACK belongs to the INVITE's; a CANCEL has
 * its own), a client transaction by its branch and CSeq method. The same fields, compared the same
 * way, as libosip2's matching (a missing port is 5060). Returns the length, or -1 when the branch
 * is not RFC 3261's (then libosip2's own matching decides, over s->legacy: see sip_tx_find). */
static int tx_key(bool server, osip_via_t *via, const char *method, char *out, size_t cap)
{
    osip_generic_param_t *b = NULL;
    if (!via || !method || osip_via_param_get_byname(via, "branch", &b) != 0 || !b || !b->gvalue ||
        strncmp(b->gvalue, "z9hG4bK", 7) != 0)
        return -1;
    int n;
    if (server) {
        if (!via->host)
            return -1;
        if (strcmp(method, "ACK") == 0)
            method = "INVITE";
        n = snprintf(out, cap, "S\n%s\n%s\n%s\n%s", b->gvalue, via->host,
                     via->port ? via->port : "5060", method);
    } else {
        n = snprintf(out, cap, "C\n%s\n%s", b->gvalue, method);
    }
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static void index_add(struct sip_stack *s, struct txinfo *info, const char *key)
{
    info->key = xstrdup(key);
    info->hash = sip_hash_str(key);
    struct txinfo **b = &s->tx_index[info->hash & s->tx_mask];
    info->hnext = *b;
    *b = info;
}

/* The list of transactions without key that libosip2 would search for m (as
 * __osip_find_transaction picks one): INVITE and ACK go to INVITE server transactions. */
static osip_list_t *legacy_list(struct sip_stack *s, const osip_message_t *m)
{
    bool invite = strcmp(m->cseq->method, "INVITE") == 0;
    if (MSG_IS_REQUEST(m))
        return &s->legacy[invite || strcmp(m->cseq->method, "ACK") == 0 ? IST : NIST];
    return &s->legacy[invite ? ICT : NICT];
}

/* Takes a transaction out of the index or the legacy list (no-op when in neither). */
static void index_remove(struct sip_stack *s, struct txinfo *info)
{
    if (!info)
        return;
    if (info->legacy) {
        osip_list_t *l = &s->legacy[info->tr->ctx_type];
        osip_list_iterator_t it;
        int pos = 0;
        for (void *p = osip_list_get_first(l, &it); osip_list_iterator_has_elem(it);
             p = osip_list_get_next(&it), pos++)
            if (p == info->tr) {
                osip_list_remove(l, pos);
                break;
            }
        info->legacy = false;
    }
    if (!info->key)
        return;
    struct txinfo **pp = &s->tx_index[info->hash & s->tx_mask];
    while (*pp && *pp != info)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = info->hnext;
    free(info->key);
    info->key = NULL;
    info->hnext = NULL;
}

/* From the index, or for a message without key from libosip2's own (linear) matching over the
 * transactions without key — only those can match it (libosip2 never matches an RFC 3261 branch
 * with an older one). */
osip_transaction_t *sip_tx_find(struct sip_stack *s, osip_event_t *evt)
{
    osip_message_t *m = evt->sip;
    char key[512];
    if (tx_key(MSG_IS_REQUEST(m), osip_list_get(&m->vias, 0), m->cseq->method, key, sizeof(key)) <
        0) {
        osip_list_t *l = legacy_list(s, m);
        return osip_list_size(l) > 0 ? osip_transaction_find(l, evt) : NULL;
    }
    uint32_t h = sip_hash_str(key);
    for (struct txinfo *i = s->tx_index[h & s->tx_mask]; i; i = i->hnext)
        if (i->hash == h && strcmp(i->key, key) == 0)
            return i->tr;
    return NULL;
}

/* ---- the work list ---- */

static void work_unlink(struct sip_stack *s, struct txinfo *info)
{
    if (!info->queued)
        return;
    if (info->wprev)
        info->wprev->wnext = info->wnext;
    else
        s->work_head = info->wnext;
    if (info->wnext)
        info->wnext->wprev = info->wprev;
    else
        s->work_tail = info->wprev;
    info->wprev = info->wnext = NULL;
    info->queued = false;
}

/* Puts tr on the work list: the events in its fifo run in the next pump round (run_work). */
static void tx_queue(struct sip_stack *s, struct txinfo *info)
{
    s->again = true;
    if (info->queued)
        return;
    info->queued = true;
    info->wprev = s->work_tail;
    info->wnext = NULL;
    if (s->work_tail)
        s->work_tail->wnext = info;
    else
        s->work_head = info;
    s->work_tail = info;
}

void sip_tx_add_event(struct sip_stack *s, osip_transaction_t *tr, osip_event_t *evt)
{
    osip_transaction_add_event(tr, evt);
    tx_queue(s, osip_transaction_get_your_instance(tr));
}

/* ---- libosip2's timers, driven from a heap ----
 *
 * libosip2 keeps each timer as an absolute time in the transaction's context and finds the
 * expired ones by scanning all its transactions (osip_timers_*_execute). Ours are not in its
 * lists, so we keep them in a min-heap on the earliest timer each has running — the same
 * timers in the same states as libosip2's __osip_*_need_timer_*_event — and hand libosip2 only
 * the expired ones to scan (run_timers). */

/* A libosip2 timer (its clock, osip_gettimeofday) in ms, rounded so that the timer has expired
 * (libosip2 wants now > timer) once that ms is reached; UINT64_MAX when not running. */
static uint64_t timer_ms(const struct timeval *tv)
{
    if (tv->tv_sec < 0)
        return UINT64_MAX;
    return (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000 + 1;
}

static uint64_t osip_now_ms(void)
{
    struct timeval tv;
    osip_gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* The earliest timer tr has running in its state (RFC 3261 17: A, B in Calling, D in Completed;
 * G, H in Completed, I in Confirmed; E, F in Trying and Proceeding, K in Completed; J in
 * Completed), or UINT64_MAX. */
static uint64_t tx_due(const osip_transaction_t *tr)
{
    switch (tr->ctx_type) {
    case ICT:
        if (!tr->ict_context)
            break;
        if (tr->state == ICT_CALLING)
            return min_u64(timer_ms(&tr->ict_context->timer_a_start),
                           timer_ms(&tr->ict_context->timer_b_start));
        if (tr->state == ICT_COMPLETED)
            return timer_ms(&tr->ict_context->timer_d_start);
        break;
    case IST:
        if (!tr->ist_context)
            break;
        if (tr->state == IST_COMPLETED)
            return min_u64(timer_ms(&tr->ist_context->timer_g_start),
                           timer_ms(&tr->ist_context->timer_h_start));
        if (tr->state == IST_CONFIRMED)
            return timer_ms(&tr->ist_context->timer_i_start);
        break;
    case NICT:
        if (!tr->nict_context)
            break;
        if (tr->state == NICT_TRYING || tr->state == NICT_PROCEEDING)
            return min_u64(timer_ms(&tr->nict_context->timer_e_start),
                           timer_ms(&tr->nict_context->timer_f_start));
        if (tr->state == NICT_COMPLETED)
            return timer_ms(&tr->nict_context->timer_k_start);
        break;
    case NIST:
        if (tr->nist_context && tr->state == NIST_COMPLETED)
            return timer_ms(&tr->nist_context->timer_j_start);
        break;
    }
    return UINT64_MAX;
}

static void heap_swap(struct sip_stack *s, size_t a, size_t b)
{
    struct txinfo *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_pos = a + 1;
    s->heap[b]->heap_pos = b + 1;
}

/* Restores the heap order around position i. */
static void heap_fix(struct sip_stack *s, size_t i)
{
    while (i > 0 && s->heap[(i - 1) / 2]->due > s->heap[i]->due) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n_heap && s->heap[l]->due < s->heap[m]->due)
            m = l;
        if (r < s->n_heap && s->heap[r]->due < s->heap[m]->due)
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_remove(struct sip_stack *s, struct txinfo *info)
{
    if (!info->heap_pos)
        return;
    size_t i = info->heap_pos - 1;
    info->heap_pos = 0;
    if (i != --s->n_heap) {
        s->heap[i] = s->heap[s->n_heap];
        s->heap[i]->heap_pos = i + 1;
        heap_fix(s, i);
    }
}

/* Files tr in the heap under the earliest timer it has running now (after its events ran). */
static void tx_schedule(struct sip_stack *s, struct txinfo *info)
{
    uint64_t due = info->dead ? UINT64_MAX : tx_due(info->tr);
    if (due == UINT64_MAX) {
        heap_remove(s, info);
        return;
    }
    info->due = due;
    if (!info->heap_pos) {
        if (s->n_heap == s->cap_heap) {
            s->cap_heap = s->cap_heap ? 2 * s->cap_heap : 64;
            s->heap = xrealloc(s->heap, s->cap_heap * sizeof(*s->heap));
        }
        s->heap[s->n_heap] = info;
        info->heap_pos = ++s->n_heap;
    }
    heap_fix(s, info->heap_pos - 1);
}

/* Lets libosip2 queue the events of the timers that expired (its own checks, on a list of just
 * those transactions), which sip_tx_run_work() then runs and reschedules. */
void sip_tx_run_timers(struct sip_stack *s)
{
    uint64_t now = osip_now_ms();
    if (!s->n_heap || s->heap[0]->due > now)
        return;
    osip_list_t *lists[4] = {&s->osip->osip_ict_transactions, &s->osip->osip_ist_transactions,
                             &s->osip->osip_nict_transactions, &s->osip->osip_nist_transactions};
    while (s->n_heap && s->heap[0]->due <= now) {
        struct txinfo *info = s->heap[0];
        heap_remove(s, info);
        osip_list_add(lists[info->tr->ctx_type], info->tr, 0);
        tx_queue(s, info);
    }
    osip_timers_ict_execute(s->osip);
    osip_timers_ist_execute(s->osip);
    osip_timers_nict_execute(s->osip);
    osip_timers_nist_execute(s->osip);
    for (int i = 0; i < 4; i++)
        while (osip_list_size(lists[i]) > 0)
            osip_list_remove(lists[i], 0);
}

/* Runs the events of the transactions that have some (the work list), and only those. A
 * transaction killed meanwhile stays valid until sip_tx_free_dead(). */
void sip_tx_run_work(struct sip_stack *s)
{
    struct txinfo *info;
    while ((info = s->work_head)) {
        work_unlink(s, info);
        osip_transaction_t *tr = info->tr;
        osip_event_t *evt;
        while ((evt = osip_fifo_tryget(tr->transactionff)))
            osip_transaction_execute(tr, evt);
        tx_schedule(s, info);
    }
}

uint64_t sip_tx_next_ms(const struct sip_stack *s)
{
    if (!s->n_heap)
        return UINT64_MAX;
    uint64_t now = osip_now_ms();
    return s->heap[0]->due > now ? s->heap[0]->due - now : 0;
}

/* ---- life and death ---- */

/* Out of every list, then freed (libosip2's part by the caller). */
static void txinfo_free(struct sip_stack *s, struct txinfo *info)
{
    if (!info)
        return;
    index_remove(s, info);
    work_unlink(s, info);
    heap_remove(s, info);
    if (info->aprev)
        info->aprev->anext = info->anext;
    else
        s->all = info->anext;
    if (info->anext)
        info->anext->aprev = info->aprev;
    sip_peer_clear(&info->peer);
    free(info);
}

/* A killed or abandoned transaction: found by nothing any more, freed by sip_tx_free_dead(). */
static void tx_retire(struct sip_stack *s, struct txinfo *info)
{
    if (!info)
        return;
    info->dead = true;
    index_remove(s, info);
    heap_remove(s, info);
    work_unlink(s, info);
}

static void push_dead(struct sip_stack *s, osip_transaction_t *tr)
{
    if (s->n_dead == s->cap_dead) {
        s->cap_dead = s->cap_dead ? 2 * s->cap_dead : 16;
        s->dead = xrealloc(s->dead, s->cap_dead * sizeof(*s->dead));
    }
    s->dead[s->n_dead++] = tr;
}

/* A new transaction. libosip2 files it in its list of that kind, where every lookup, timer scan
 * and state machine pass would walk it (and appending walks the whole list): we take it out at
 * once (the list is empty otherwise, so both are O(1)) and keep it in our own structures. */
osip_transaction_t *sip_tx_new(struct sip_stack *s, osip_fsm_type_t type, osip_message_t *req,
                               const struct sip_peer *peer, struct sip_dialog *d)
{
    osip_transaction_t *tr = NULL;
    if (osip_transaction_init(&tr, type, s->osip, req) != 0 || !tr)
        return NULL;
    osip_remove_transaction(s->osip, tr);
    struct txinfo *info = xcalloc(1, sizeof(*info));
    info->s = s;
    info->d = d;
    sip_peer_set(&info->peer, peer);
    info->tr = tr;
    info->anext = s->all;
    if (s->all)
        s->all->aprev = info;
    s->all = info;
    osip_transaction_set_your_instance(tr, info);
    char key[512];
    if (tr->cseq &&
        tx_key(type == IST || type == NIST, tr->topvia, tr->cseq->method, key, sizeof(key)) >= 0) {
        index_add(s, info, key);
    } else {
        osip_list_add(&s->legacy[type], tr, -1);
        info->legacy = true;
    }
    tx_set_timers(s, tr, peer->tp && peer->tp->reliable);
    s->n_tx++;
    s->again = true;
    return tr;
}

void sip_tx_send(struct sip_stack *s, osip_transaction_t *tr, osip_message_t *m)
{
    osip_event_t *evt = osip_new_outgoing_sipmessage(m);
    if (!evt) {
        osip_message_free(m);
        return;
    }
    sip_tx_add_event(s, tr, evt);
}

void sip_tx_detach(osip_transaction_t *tr)
{
    struct txinfo *info = tr ? osip_transaction_get_your_instance(tr) : NULL;
    if (info)
        info->d = NULL;
}

void sip_tx_abandon(struct sip_stack *s, osip_transaction_t *tr)
{
    sip_tx_detach(tr);
    tx_retire(s, osip_transaction_get_your_instance(tr));
    push_dead(s, tr);
}

/* A transaction reached TERMINATED. It is out of our lookups now but freed only after the state
 * machines ran (sip_tx_free_dead): sip_tx_run_work() may still be running its events. */
static void on_kill(int type, osip_transaction_t *tr)
{
    struct sip_stack *s = osip_get_application_context(tr->config);
    struct txinfo *info = osip_transaction_get_your_instance(tr);
    if (!info || info->dead)
        return;
    tx_retire(s, info);
    if (info->d) {
        struct sip_dialog *d = info->d;
        info->d = NULL;
        if (d->ist == tr)
            d->ist = NULL;
        if (d->bye_tr == tr) {
            d->bye_tr = NULL;
            sip_dlg_bye_done(d);
        }
        if (d->ict == tr) { /* ended without deciding the call (it could not build its ACK) */
            d->ict = NULL;
            if (d->state == DLG_CALLING)
                sip_dlg_fail(d, 503, "transaction_ended");
        }
    }
    push_dead(s, tr);
}

static void on_nict_final(int type, osip_transaction_t *tr, osip_message_t *m)
{
    struct txinfo *info = osip_transaction_get_your_instance(tr);
    if (info && info->d && info->d->bye_tr == tr)
        sip_dlg_bye_done(info->d);
}

void sip_tx_free_dead(struct sip_stack *s)
{
    for (size_t i = 0; i < s->n_dead; i++) {
        txinfo_free(s, osip_transaction_get_your_instance(s->dead[i]));
        osip_transaction_free2(s->dead[i]);
        s->n_tx--;
    }
    s->n_dead = 0;
}

void sip_tx_init(struct sip_stack *s)
{
    size_t buckets = 1024;
    while (buckets < s->max_tx && buckets < SIP_MAX_INDEX)
        buckets *= 2;
    s->tx_index = xcalloc(buckets, sizeof(*s->tx_index));
    s->tx_mask = buckets - 1;
    for (int i = 0; i < 4; i++)
        osip_list_init(&s->legacy[i]);
    if (osip_init(&s->osip) != 0)
        die("out of memory in osip_init");
    osip_set_application_context(s->osip, s);
    osip_set_cb_send_message(s->osip, sip_tp_osip_send);
    osip_set_kill_transaction_callback(s->osip, OSIP_ICT_KILL_TRANSACTION, on_kill);
    osip_set_kill_transaction_callback(s->osip, OSIP_IST_KILL_TRANSACTION, on_kill);
    osip_set_kill_transaction_callback(s->osip, OSIP_NICT_KILL_TRANSACTION, on_kill);
    osip_set_kill_transaction_callback(s->osip, OSIP_NIST_KILL_TRANSACTION, on_kill);
    static const int ict_events[] = {OSIP_ICT_STATUS_1XX_RECEIVED, OSIP_ICT_STATUS_2XX_RECEIVED,
                                     OSIP_ICT_STATUS_3XX_RECEIVED, OSIP_ICT_STATUS_4XX_RECEIVED,
                                     OSIP_ICT_STATUS_5XX_RECEIVED, OSIP_ICT_STATUS_6XX_RECEIVED,
                                     OSIP_ICT_STATUS_TIMEOUT};
    for (size_t i = 0; i < sizeof(ict_events) / sizeof(ict_events[0]); i++)
        osip_set_message_callback(s->osip, ict_events[i], sip_uac_on_ict);
    static const int finals[] = {OSIP_NICT_STATUS_2XX_RECEIVED, OSIP_NICT_STATUS_3XX_RECEIVED,
                                 OSIP_NICT_STATUS_4XX_RECEIVED, OSIP_NICT_STATUS_5XX_RECEIVED,
                                 OSIP_NICT_STATUS_6XX_RECEIVED, OSIP_NICT_STATUS_TIMEOUT};
    for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
        osip_set_message_callback(s->osip, finals[i], on_nict_final);
}

void sip_tx_fini(struct sip_stack *s)
{
    sip_tx_free_dead(s);
    while (s->all) {
        osip_transaction_t *tr = s->all->tr;
        txinfo_free(s, s->all);
        osip_transaction_free2(tr);
    }
    if (s->osip)
        osip_release(s->osip);
    s->osip = NULL;
    free(s->tx_index);
    free(s->heap);
    free(s->dead);
    s->tx_index = NULL;
    s->heap = NULL;
    s->dead = NULL;
}

/* ---- answering new requests ---- */

void sip_tx_reply_stateless(struct sip_stack *s, const osip_message_t *req,
                            const struct sip_peer *to, int code)
{
    osip_message_t *r = sip_msg_response(s, req, code, NULL, NULL);
    sip_tp_send_msg(s, r, to);
    osip_message_free(r);
}

void sip_tx_reply_new(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from,
                      osip_message_t *resp)
{
    osip_fsm_type_t type = MSG_IS_INVITE(evt->sip) ? IST : NIST;
    osip_transaction_t *tr = sip_tx_new(s, type, evt->sip, from, NULL);
    if (!tr) {
        sip_tp_send_msg(s, resp, from);
        osip_message_free(resp);
        osip_event_free(evt);
        return;
    }
    sip_tx_add_event(s, tr, evt);
    sip_tx_send(s, tr, resp);
}

void sip_tx_reply(struct sip_stack *s, osip_event_t *evt, const struct sip_peer *from, int code,
                  const char *to_tag)
{
    osip_message_t *r = sip_msg_response(s, evt->sip, code, NULL, to_tag);
    if (code == 405 || code == 501 || (code == 200 && MSG_IS_OPTIONS(evt->sip)))
        osip_message_set_header(r, "Allow", SIP_ALLOW);
    if (code == 415 || (code == 200 && MSG_IS_OPTIONS(evt->sip)))
        osip_message_set_header(r, "Accept", "application/sdp");
    sip_tx_reply_new(s, evt, from, r);
}
