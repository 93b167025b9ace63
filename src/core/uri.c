#include "core/uri.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t uri_decode(const char *src, size_t len, bool plus_is_space, char *out, size_t cap)
{
    if (cap == 0)
        return URI_TOO_LONG;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (len - i < 3)
                return URI_BAD_ESCAPE;
            int hi = hex(src[i + 1]), lo = hex(src[i + 2]);
            if (hi < 0 || lo < 0)
                return URI_BAD_ESCAPE;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return URI_NUL;
        if (o + 1 >= cap)
            return URI_TOO_LONG;
        out[o++] = c;
    }
    out[o] = '\0';
    return (ssize_t)o;
}

int uri_query_parse(struct uri_query *q, const char *src, size_t len)
{
    memset(q, 0, sizeof(*q));
    if (len == 0)
        return URI_OK;
    /* Decoding never makes a piece longer, and each piece gets one terminator. */
    q->buf = xmalloc(len * 2 + 2);
    char *w = q->buf;
    size_t i = 0;
    while (i <= len) {
        size_t end = i;
        while (end < len && src[end] != '&')
            end++;
        if (end > i) {
            if (q->n == URI_MAX_PARAMS) {
                q->n = 0;
                return URI_TOO_MANY;
            }
            const char *eq = memchr(src + i, '=', end - i);
            size_t klen = eq ? (size_t)(eq - (src + i)) : end - i;
            ssize_t k = uri_decode(src + i, klen, true, w, klen + 1);
            if (k < 0) {
                q->n = 0;
                return (int)k;
            }
            q->key[q->n] = w;
            w += k + 1;
            if (eq) {
                size_t vlen = (size_t)(src + end - (eq + 1));
                ssize_t v = uri_decode(eq + 1, vlen, true, w, vlen + 1);
                if (v < 0) {
                    q->n = 0;
                    return (int)v;
                }
                q->value[q->n] = w;
                w += v + 1;
            } else {
                *w = '\0';
                q->value[q->n] = w++;
            }
            q->n++;
        }
        i = end + 1;
    }
    return URI_OK;
}

const char *uri_query_get(const struct uri_query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (!strcmp(q->key[i], key))
            return q->value[i];
    return NULL;
}

void uri_query_fini(struct uri_query *q)
{
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

const char *uri_result_text(int result)
{
    switch (result) {
    case URI_BAD_ESCAPE:
        return "it has a '%' that is not followed by two hexadecimal digits";
    case URI_NUL:
        return "it contains %00 (a NUL character)";
    case URI_TOO_LONG:
        return "a part of it is too long";
    case URI_TOO_MANY:
        return "its query has more than 64 parameters";
    default:
        return "it is malformed";
    }
}
