/* A libcurl multi handle driven by a libuv loop: the sockets curl asks to watch become uv_poll_t
 * handles and its timer a uv_timer_t, and each finished transfer is handed to a callback. The
 * glue every module that speaks HTTP from the control loop shares (webhooks, the external speech
 * recogniser); each module still builds and owns its easy handles. Control thread only. */
#ifndef CONFERENCED_CURL_UV_H
#define CONFERENCED_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

struct curl_uv;

/* A transfer finished with rc; it is still in the multi (the callback removes it, or not). */
typedef void (*curl_uv_done_cb)(void *ctx, CURL *easy, CURLcode rc);
/* After the transfers that finished together have been handed on (may be NULL). */
typedef void (*curl_uv_after_cb)(void *ctx);

/* Dies when curl cannot be set up (out of memory at start). */
struct curl_uv *curl_uv_create(uv_loop_t *loop, curl_uv_done_cb done, curl_uv_after_cb after,
                               void *ctx);
CURLM *curl_uv_multi(const struct curl_uv *c);
/* Stops watching: the poll handles close and the timer stops, and no callback comes after
 * this. The multi stays valid, so that the caller can remove its easy handles. */
void curl_uv_stop(struct curl_uv *c);
/* curl_uv_stop(), then the multi is cleaned up (remove your easy handles first) and c is freed
 * once its handles have closed (run the loop). NULL is a no-op. */
void curl_uv_destroy(struct curl_uv *c);

#endif
