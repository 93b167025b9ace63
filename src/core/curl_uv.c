/* curl's multi_socket interface on libuv: curl says which sockets to watch for what
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back (CURLMOPT_TIMERFUNCTION); we watch them
 * with uv_poll_t and a uv_timer_t and tell curl what happened (curl_multi_socket_action). */
#include "core/curl_uv.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/mem.h"

/* A socket curl asked us to watch. */
struct sock {
    uv_poll_t poll;
    struct sock *prev, *next;
    struct curl_uv *c;
    curl_socket_t fd;
};

struct curl_uv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct sock *socks;
    bool stopped;
    curl_uv_done_cb done;
    curl_uv_after_cb after;
    void *ctx;
};

static void check_done(struct curl_uv *c)
{
    CURLMsg *msg;
    int left;
    while (!c->stopped && (msg = curl_multi_info_read(c->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            c->done(c->ctx, msg->easy_handle, msg->data.result);
    if (!c->stopped && c->after)
        c->after(c->ctx);
}

static void sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_close(struct curl_uv *c, struct sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    struct curl_uv *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    /* s may be closed inside this call: only c is used afterwards. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct curl_uv *c = userp;
    struct sock *s = socketp;
    if (c->stopped)
        return 0; /* every poll handle is closed already */
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(c, s);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->c = c;
        s->fd = fd;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *t)
{
    struct curl_uv *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct curl_uv *c = userp;
    if (c->stopped)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* 0 = as soon as possible, but never from inside this callback: the next iteration */
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

struct curl_uv *curl_uv_create(uv_loop_t *loop, curl_uv_done_cb done, curl_uv_after_cb after,
                               void *ctx)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
    struct curl_uv *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->done = done;
    c->after = after;
    c->ctx = ctx;
    c->multi = curl_multi_init();
    if (!c->multi)
        die("curl_multi_init failed");
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    return c;
}

CURLM *curl_uv_multi(const struct curl_uv *c)
{
    return c->multi;
}

void curl_uv_stop(struct curl_uv *c)
{
    if (c->stopped)
        return;
    /* Close our poll handles while curl's sockets are still open, then keep curl from calling
     * back into handles that are closing. */
    c->stopped = true;
    while (c->socks)
        sock_close(c, c->socks);
    uv_timer_stop(&c->timer);
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void curl_uv_destroy(struct curl_uv *c)
{
    if (!c)
        return;
    curl_uv_stop(c);
    curl_multi_cleanup(c->multi);
    curl_global_cleanup();
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}
