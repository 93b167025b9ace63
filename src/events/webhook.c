/* Webhook delivery over libcurl's multi interface, driven by the control loop's libuv handles:
 * one uv_poll_t per socket curl asks us to watch, one uv_timer_t for curl's own timeouts and one
 * for the retry delays. Deliveries are queued per resource (FIFO, one request in flight each) and
 * resources with work wait in a ready list for one of WEBHOOK_MAX_PARALLEL transfer slots. */
#include "events/webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/curl_uv.h"
#include "core/log.h"
#include "core/mem.h"
#include "model/model.h"

#define WEBHOOK_ATTEMPTS 3
#define WEBHOOK_MAX_QUEUED 10000
#define WEBHOOK_MAX_QUEUED_PER_RESOURCE 1000
#define WEBHOOK_MAX_QUEUED_BYTES ((size_t)64 * 1024 * 1024)
#define WEBHOOK_MAX_PARALLEL 64
#define WEBHOOK_DEFAULT_TIMEOUT_MS 10000
/* Log lines per kind per window: a dead endpoint or a burst must not flood the log. */
#define WEBHOOK_LOG_WINDOW_MS 10000
#define WEBHOOK_LOG_BURST 10
#define RQ_BUCKETS 1024

struct rqueue;

/* One event waiting for (or being sent to) a webhook. */
struct delivery {
    struct delivery *rnext;         /* next in its resource's queue */
    struct delivery *gprev, *gnext; /* global queue of everything not yet in flight, oldest first */
    struct rqueue *rq;
    char method[8];
    char *uri;
    char *payload;
    size_t payload_len;
};

/* The deliveries of one resource_id, in publish order. */
struct rqueue {
    struct rqueue *hnext; /* hash chain */
    struct rqueue *ready_next;
    bool in_ready;
    char *resource_id;
    struct delivery *head, *tail;
    size_t n;
    struct xfer *active; /* the resource's delivery in flight or waiting to retry */
};

/* The delivery of one event, across its attempts. */
struct xfer {
    struct webhook *w;
    struct xfer *prev, *next; /* every xfer (for destroy) */
    struct xfer *retry_next;
    struct rqueue *rq;
    struct delivery *d;
    CURL *easy;
    int attempts;
    bool in_multi;
    bool refused; /* the SSRF guard refused an address of this attempt */
    uint64_t retry_at;
};

struct webhook {
    uv_loop_t *loop;
    struct store *store;
    struct webhook_config cfg;
    struct curl_uv *cu;
    CURLM *multi; /* cu's */
    struct curl_slist *headers;
    uv_timer_t retry_timer; /* w is freed once it has closed */
    bool destroying;
    struct rqueue *buckets[RQ_BUCKETS];
    struct rqueue *ready_head, *ready_tail;
    struct delivery *ghead, *gtail;
    size_t n_queued, queued_bytes;
    struct xfer *xfers;
    size_t n_active;
    struct xfer *retry_head, *retry_tail;
    struct log_limit log_drop, log_fail, log_reject;
};

static void pump(struct webhook *w);

/* --- SSRF guard --------------------------------------------------------------------------- */

static bool v4_blocked(const uint8_t a[4])
{
    if (a[0] == 0 || a[0] == 10 || a[0] == 127)
        return true;
    if (a[0] == 100 && (a[1] & 0xc0) == 64) /* 100.64/10, carrier-grade NAT */
        return true;
    if (a[0] == 169 && a[1] == 254)
        return true;
    if (a[0] == 172 && (a[1] & 0xf0) == 16)
        return true;
    if (a[0] == 192 && a[1] == 168)
        return true;
    return a[0] >= 224; /* multicast 224/4, reserved 240/4, broadcast */
}

static bool v6_blocked(const uint8_t a[16])
{
    static const uint8_t compat[12] = {0};
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    /* Forms that carry an IPv4 address (::/96 also covers :: and ::1, which map into 0/8). */
    if (!memcmp(a, mapped, 12) || !memcmp(a, compat, 12) || !memcmp(a, nat64, 12))
        return v4_blocked(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4 2002:V4ADDR::/48 */
        return v4_blocked(a + 2);
    if ((a[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
        return true;
    if (a[0] == 0xfe && (a[1] & 0x80) == 0x80) /* fe80::/10 link-local, fec0::/10 site-local */
        return true;
    return a[0] == 0xff; /* multicast */
}

bool webhook_addr_blocked(const struct sockaddr *sa, size_t len)
{
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof(in));
        uint8_t a[4];
        memcpy(a, &in.sin_addr, 4);
        return v4_blocked(a);
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        return v6_blocked(in6.sin6_addr.s6_addr);
    }
    return true; /* anything else (unix sockets, ...) is never a webhook target */
}

/* Why here: curl calls this with the address it resolved and is about to connect to, so neither
 * DNS names pointing at private addresses nor DNS rebinding between checks can get around it. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *address)
{
    struct xfer *x = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!x->w->cfg.allow_private && webhook_addr_blocked(&address->addr, address->addrlen)) {
        x->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* --- logging helpers ---------------------------------------------------------------------- */

/* Writes the host of uri (never the path or query, which may carry a customer's secret). */
static void uri_host(const char *uri, char *out, size_t cap)
{
    str_copy(out, cap, "?");
    CURLU *u = curl_url();
    if (!u)
        return;
    char *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, uri, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        str_copy(out, cap, host);
    curl_free(host);
    curl_url_cleanup(u);
}

/* True when a line may be written now; *suppressed gets how many were skipped before it. */
static bool rl_allow(struct webhook *w, struct log_limit *l, unsigned burst, uint64_t *suppressed)
{
    return log_limit_allow(l, (int64_t)uv_now(w->loop) * 1000, WEBHOOK_LOG_WINDOW_MS * 1000, burst,
                           suppressed);
}

/* Overflow comes in bursts: one line per window, with the count, is enough. */
static void note_drop(struct webhook *w, const char *why)
{
    uint64_t before;
    if (rl_allow(w, &w->log_drop, 1, &before))
        log_warn("msg=webhook_queue_full reason=%s dropped=%llu", why,
                 (unsigned long long)before + 1);
}

/* --- queues ------------------------------------------------------------------------------- */

static size_t rq_bucket(const char *resource_id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)resource_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % RQ_BUCKETS;
}

static struct rqueue *rq_find(struct webhook *w, const char *resource_id)
{
    for (struct rqueue *rq = w->buckets[rq_bucket(resource_id)]; rq; rq = rq->hnext)
        if (!strcmp(rq->resource_id, resource_id))
            return rq;
    return NULL;
}

static struct rqueue *rq_get(struct webhook *w, const char *resource_id)
{
    struct rqueue *rq = rq_find(w, resource_id);
    if (rq)
        return rq;
    size_t b = rq_bucket(resource_id);
    rq = xcalloc(1, sizeof(*rq));
    rq->resource_id = xstrdup(resource_id);
    rq->hnext = w->buckets[b];
    w->buckets[b] = rq;
    return rq;
}

static void rq_free(struct webhook *w, struct rqueue *rq)
{
    struct rqueue **pp = &w->buckets[rq_bucket(rq->resource_id)];
    while (*pp != rq)
        pp = &(*pp)->hnext;
    *pp = rq->hnext;
    free(rq->resource_id);
    free(rq);
}

/* Frees rq once it has nothing queued, nothing in flight and is not linked in the ready list
 * (a ready rqueue emptied by overflow is freed when pump() pops it). */
static void rq_release_if_unused(struct webhook *w, struct rqueue *rq)
{
    if (rq->n == 0 && !rq->active && !rq->in_ready)
        rq_free(w, rq);
}

static void rq_make_ready(struct webhook *w, struct rqueue *rq)
{
    if (rq->in_ready || rq->active || rq->n == 0)
        return;
    rq->in_ready = true;
    rq->ready_next = NULL;
    if (w->ready_tail)
        w->ready_tail->ready_next = rq;
    else
        w->ready_head = rq;
    w->ready_tail = rq;
}

static void delivery_free(struct delivery *d)
{
    if (!d)
        return;
    free(d->uri);
    free(d->payload);
    free(d);
}

/* Takes the head of rq's queue out of both queues (the caller owns it afterwards). */
static struct delivery *rq_pop(struct webhook *w, struct rqueue *rq)
{
    struct delivery *d = rq->head;
    rq->head = d->rnext;
    if (!rq->head)
        rq->tail = NULL;
    rq->n--;
    if (d->gprev)
        d->gprev->gnext = d->gnext;
    else
        w->ghead = d->gnext;
    if (d->gnext)
        d->gnext->gprev = d->gprev;
    else
        w->gtail = d->gprev;
    w->n_queued--;
    w->queued_bytes -= d->payload_len;
    return d;
}

/* Drops the oldest queued delivery of all; it is always the head of its resource's queue. */
static void drop_oldest(struct webhook *w, const char *why)
{
    struct rqueue *rq = w->ghead->rq;
    delivery_free(rq_pop(w, rq));
    note_drop(w, why);
    rq_release_if_unused(w, rq);
}

static void enqueue(struct webhook *w, const char *resource_id, struct delivery *d)
{
    /* Make room globally first: that may free rqueues, including the one d goes to. */
    while (w->ghead && (w->n_queued >= WEBHOOK_MAX_QUEUED ||
                        w->queued_bytes + d->payload_len > WEBHOOK_MAX_QUEUED_BYTES))
        drop_oldest(w, "total");
    struct rqueue *rq = rq_get(w, resource_id);
    if (rq->n >= WEBHOOK_MAX_QUEUED_PER_RESOURCE) {
        delivery_free(rq_pop(w, rq));
        note_drop(w, "resource");
    }
    d->rq = rq;
    d->rnext = NULL;
    if (rq->tail)
        rq->tail->rnext = d;
    else
        rq->head = d;
    rq->tail = d;
    rq->n++;
    d->gnext = NULL;
    d->gprev = w->gtail;
    if (w->gtail)
        w->gtail->gnext = d;
    else
        w->ghead = d;
    w->gtail = d;
    w->n_queued++;
    w->queued_bytes += d->payload_len;
    rq_make_ready(w, rq);
}

/* --- transfers ---------------------------------------------------------------------------- */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static CURL *easy_new(struct webhook *w, struct xfer *x)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    struct delivery *d = x->d;
    CURLcode rc = CURLE_OK;
    /* Every option is checked: one that does not stick (e.g. a protocol limit) must not leave
     * a weaker request going out. */
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, d->uri);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* An environment proxy would make the SSRF guard check the proxy instead of the target. */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, (long)w->cfg.timeout_ms);
    SET(CURLOPT_USERAGENT, "conferenced");
    SET(CURLOPT_HTTPHEADER, w->headers);
    SET(CURLOPT_POSTFIELDS, d->payload);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->payload_len);
    if (strcmp(d->method, "POST") != 0)
        SET(CURLOPT_CUSTOMREQUEST, d->method);
    SET(CURLOPT_WRITEFUNCTION, discard_body);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    SET(CURLOPT_OPENSOCKETDATA, x);
    SET(CURLOPT_PRIVATE, x);
#undef SET
    if (rc != CURLE_OK) {
        log_error("msg=webhook_setopt_failed error=\"%s\"", curl_easy_strerror(rc));
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

/* Ends a delivery (delivered, rejected or given up) and frees its slot for the next one. */
static void xfer_finish(struct webhook *w, struct xfer *x)
{
    if (x->in_multi)
        curl_multi_remove_handle(w->multi, x->easy);
    curl_easy_cleanup(x->easy);
    delivery_free(x->d);
    if (x->prev)
        x->prev->next = x->next;
    else
        w->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    w->n_active--;
    struct rqueue *rq = x->rq;
    rq->active = NULL;
    free(x);
    rq_make_ready(w, rq);
    rq_release_if_unused(w, rq);
}

static void xfer_give_up(struct webhook *w, struct xfer *x, const char *why, CURLcode rc,
                         long status)
{
    uint64_t suppressed;
    if (rl_allow(w, &w->log_fail, WEBHOOK_LOG_BURST, &suppressed)) {
        char host[256];
        uri_host(x->d->uri, host, sizeof(host));
        log_warn("msg=webhook_failed reason=%s host=%s resource_id=%s attempts=%d status=%ld "
                 "error=\"%s\" suppressed=%llu",
                 why, host, x->rq->resource_id, x->attempts, status,
                 rc == CURLE_OK ? "none" : curl_easy_strerror(rc), (unsigned long long)suppressed);
    }
    xfer_finish(w, x);
}

static void xfer_attempt(struct webhook *w, struct xfer *x)
{
    x->attempts++;
    x->refused = false;
    CURLMcode mc = curl_multi_add_handle(w->multi, x->easy);
    if (mc != CURLM_OK) {
        log_error("msg=webhook_add_failed error=\"%s\"", curl_multi_strerror(mc));
        xfer_finish(w, x);
        return;
    }
    x->in_multi = true;
}

static void xfer_start(struct webhook *w, struct rqueue *rq, struct delivery *d)
{
    struct xfer *x = xcalloc(1, sizeof(*x));
    x->w = w;
    x->rq = rq;
    x->d = d;
    rq->active = x;
    x->next = w->xfers;
    if (w->xfers)
        w->xfers->prev = x;
    w->xfers = x;
    w->n_active++;
    x->easy = easy_new(w, x);
    if (!x->easy) {
        xfer_finish(w, x);
        return;
    }
    xfer_attempt(w, x);
}

/* Starts deliveries while transfer slots are free, oldest ready resource first. */
static void pump(struct webhook *w)
{
    while (!w->destroying && w->n_active < WEBHOOK_MAX_PARALLEL && w->ready_head) {
        struct rqueue *rq = w->ready_head;
        w->ready_head = rq->ready_next;
        if (!w->ready_head)
            w->ready_tail = NULL;
        rq->in_ready = false;
        if (rq->n == 0) { /* emptied by overflow while it waited */
            rq_release_if_unused(w, rq);
            continue;
        }
        xfer_start(w, rq, rq_pop(w, rq));
    }
}

static void retry_timer_cb(uv_timer_t *t)
{
    struct webhook *w = t->data;
    uint64_t now = uv_now(w->loop);
    /* The delay is the same for every retry, so the list is in due order. */
    while (w->retry_head && w->retry_head->retry_at <= now) {
        struct xfer *x = w->retry_head;
        w->retry_head = x->retry_next;
        if (!w->retry_head)
            w->retry_tail = NULL;
        xfer_attempt(w, x);
    }
    if (w->retry_head)
        uv_timer_start(&w->retry_timer, retry_timer_cb, w->retry_head->retry_at - now, 0);
    pump(w);
}

static void xfer_retry_later(struct webhook *w, struct xfer *x)
{
    uint64_t delay = w->cfg.retry_delay_ms > 0 ? (uint64_t)w->cfg.retry_delay_ms : 0;
    x->retry_at = uv_now(w->loop) + delay;
    x->retry_next = NULL;
    if (w->retry_tail) {
        w->retry_tail->retry_next = x;
    } else {
        w->retry_head = x;
        uv_timer_start(&w->retry_timer, retry_timer_cb, delay, 0);
    }
    w->retry_tail = x;
}

static void xfer_done(struct webhook *w, struct xfer *x, CURLcode rc)
{
    curl_multi_remove_handle(w->multi, x->easy);
    x->in_multi = false;
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status < 500) {
        uint64_t suppressed;
        if (status >= 400 && rl_allow(w, &w->log_reject, WEBHOOK_LOG_BURST, &suppressed)) {
            char host[256];
            uri_host(x->d->uri, host, sizeof(host));
            log_info("msg=webhook_rejected host=%s resource_id=%s status=%ld suppressed=%llu", host,
                     x->rq->resource_id, status, (unsigned long long)suppressed);
        }
        xfer_finish(w, x);
        return;
    }
    if (rc != CURLE_OK && x->refused) {
        xfer_give_up(w, x, "private_address", rc, status);
        return;
    }
    if (x->attempts < WEBHOOK_ATTEMPTS) {
        xfer_retry_later(w, x);
        return;
    }
    xfer_give_up(w, x, rc == CURLE_OK ? "server_error" : "network_error", rc, status);
}

static void on_done(void *ctx, CURL *easy, CURLcode rc)
{
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    xfer_done(ctx, (struct xfer *)priv, rc);
}

static void on_done_all(void *ctx)
{
    pump(ctx);
}

/* --- public ------------------------------------------------------------------------------- */

struct webhook *webhook_create(uv_loop_t *loop, struct store *store,
                               const struct webhook_config *cfg)
{
    struct webhook *w = xcalloc(1, sizeof(*w));
    w->loop = loop;
    w->store = store;
    w->cfg = *cfg;
    if (w->cfg.timeout_ms <= 0)
        w->cfg.timeout_ms = WEBHOOK_DEFAULT_TIMEOUT_MS;
    w->cu = curl_uv_create(loop, on_done, on_done_all, w);
    w->multi = curl_uv_multi(w->cu);
    const char *hdrs[] = {"Content-Type: application/json",
                          /* no 100-continue round trip (and 1 s stall) before larger bodies */
                          "Expect:"};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        struct curl_slist *n = curl_slist_append(w->headers, hdrs[i]);
        if (!n)
            die("out of memory building webhook headers");
        w->headers = n;
    }
    uv_timer_init(loop, &w->retry_timer);
    w->retry_timer.data = w;
    return w;
}

static void timer_close_cb(uv_handle_t *h)
{
    free(h->data);
}

void webhook_destroy(struct webhook *w)
{
    if (!w)
        return;
    w->destroying = true;
    if (w->n_queued + w->n_active > 0)
        log_warn("msg=webhook_undelivered_dropped queued=%zu in_flight=%zu", w->n_queued,
                 w->n_active);
    curl_uv_stop(w->cu); /* no more curl callbacks; the easy handles can still be removed */
    while (w->xfers)
        xfer_finish(w, w->xfers);
    w->retry_head = w->retry_tail = NULL;
    while (w->ghead)
        delivery_free(rq_pop(w, w->ghead->rq));
    for (size_t i = 0; i < RQ_BUCKETS; i++)
        while (w->buckets[i])
            rq_free(w, w->buckets[i]);
    w->ready_head = w->ready_tail = NULL;
    curl_uv_destroy(w->cu);
    curl_slist_free_all(w->headers);
    uv_close((uv_handle_t *)&w->retry_timer, timer_close_cb);
}

void webhook_on_event(const struct event *ev, void *ctx)
{
    struct webhook *w = ctx;
    if (!w || w->destroying || !w->store || !ev->customer_id)
        return;
    struct customer c;
    memset(&c, 0, sizeof(c));
    int rc = store_customer_get(w->store, ev->customer_id, &c);
    if (rc != 0) {
        if (rc != STORE_NOT_FOUND)
            log_warn("msg=webhook_customer_lookup_failed customer_id=%s rc=%d", ev->customer_id,
                     rc);
        return;
    }
    if (!c.webhook_uri || !c.webhook_uri[0]) {
        customer_fini(&c);
        return;
    }
    if (ev->payload_len > WEBHOOK_MAX_QUEUED_BYTES) {
        note_drop(w, "too_large");
        customer_fini(&c);
        return;
    }
    if (strlen(c.webhook_uri) > URI_MAX_LEN) {
        log_warn("msg=webhook_uri_too_long customer_id=%s", ev->customer_id);
        customer_fini(&c);
        return;
    }
    struct delivery *d = xcalloc(1, sizeof(*d));
    const char *m = c.webhook_method;
    if (!strcmp(m, "GET") || !strcmp(m, "PUT") || !strcmp(m, "DELETE"))
        str_copy(d->method, sizeof(d->method), m);
    else
        str_copy(d->method, sizeof(d->method), "POST");
    d->uri = c.webhook_uri;
    c.webhook_uri = NULL;
    customer_fini(&c);
    d->payload = xstrndup(ev->payload, ev->payload_len);
    d->payload_len = ev->payload_len;
    enqueue(w, ev->resource_id ? ev->resource_id : "", d);
    pump(w);
}

bool webhook_idle(const struct webhook *w)
{
    return !w || (w->n_queued == 0 && w->n_active == 0);
}

int webhook_validate_uri(const char *uri, struct error *e)
{
    static const char expected[] = "expected an absolute http:// or https:// URL with a host, "
                                   "e.g. https://example.com/hooks";
    if (!uri || !uri[0])
        return 0;
    size_t len = strnlen(uri, URI_MAX_LEN + 1);
    if (len > URI_MAX_LEN)
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_WEBHOOK_URI",
                         "webhook_uri is longer than %d characters", URI_MAX_LEN);
    CURLU *u = curl_url();
    if (!u)
        die("out of memory parsing a URL");
    char *scheme = NULL, *host = NULL;
    int ret = 0;
    if (curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK) {
        ret = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_WEBHOOK_URI",
                        "webhook_uri is not a valid URL: %s", expected);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        ret = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_WEBHOOK_URI",
                        "webhook_uri must use the http or https scheme: %s", expected);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        ret = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_WEBHOOK_URI",
                        "webhook_uri has no host: %s", expected);
        goto out;
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ret;
}

/* True for "localhost", "localhost." and names under it (RFC 6761: always loopback). */
static bool localhost_name(const char *host)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        n--;
    static const char lh[] = "localhost";
    size_t l = sizeof(lh) - 1;
    if (n < l || strncasecmp(host + n - l, lh, l) != 0)
        return false;
    return n == l || host[n - l - 1] == '.';
}

int webhook_check_uri_host(const char *uri, bool allow_private, struct error *e)
{
    if (allow_private || !uri || !uri[0])
        return 0;
    CURLU *u = curl_url();
    if (!u)
        die("out of memory parsing a URL");
    char *host = NULL;
    int ret = 0;
    /* curl normalises IPv4 spellings (127.1, 0x7f000001, 2130706433) to dotted quads. */
    if (curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        ret = error_set(e, ERR_INVALID_ARGUMENT, "INVALID_WEBHOOK_URI",
                        "webhook_uri is not a valid URL with a host");
        goto out;
    }
    bool blocked = localhost_name(host);
    char literal[64];
    size_t hl = strlen(host);
    if (!blocked && host[0] == '[' && hl >= 2 && hl - 2 < sizeof(literal)) {
        memcpy(literal, host + 1, hl - 2);
        literal[hl - 2] = '\0';
        struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6};
        if (inet_pton(AF_INET6, literal, &sa6.sin6_addr) == 1)
            blocked = webhook_addr_blocked((struct sockaddr *)&sa6, sizeof(sa6));
    } else if (!blocked) {
        struct sockaddr_in sa4 = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, host, &sa4.sin_addr) == 1)
            blocked = webhook_addr_blocked((struct sockaddr *)&sa4, sizeof(sa4));
    }
    if (blocked) {
        char shown[80];
        str_copy(shown, sizeof(shown), host);
        ret = error_set(e, ERR_INVALID_ARGUMENT, "WEBHOOK_URI_PRIVATE",
                        "webhook_uri points at %s, a loopback, private or link-local address: "
                        "webhooks are only sent to public addresses unless the server runs "
                        "with webhook_allow_private (--webhook-allow-private or "
                        "CONFERENCED_WEBHOOK_ALLOW_PRIVATE=1)",
                        shown);
    }
out:
    curl_free(host);
    curl_url_cleanup(u);
    return ret;
}
