/* The ring is core/spsc (one producer, one consumer, C11 atomics) sized to the next power of two,
 * with the tap's own capacity checked before each push, so a tap holds exactly what it was asked
 * to hold. The counters are atomics the producer alone writes. A speech tap's detector and the
 * state of its marks are the producer's too (they move with it, as the producer does). */
#include "media/tap.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/spsc.h"
#include "media/resample.h"
#include "media/vad.h"

_Static_assert(VAD_MARK_BEGIN == MEDIA_TAP_BEGIN && VAD_MARK_END == MEDIA_TAP_END,
               "the detector's marks are the tap's");

/* A ring larger than this (almost six hours of audio, 700 MB) is a mistake, not a setting. */
#define TAP_CAPACITY_MAX ((size_t)1 << 20)

struct media_tap {
    struct spsc ring; /* of struct media_tap_frame */
    size_t capacity;
    atomic_size_t refs;
    atomic_bool closed;
    _Atomic uint64_t dropped, offered; /* written by the producer only */
    int rate;
    size_t samples; /* per frame */
    /* producer-owned: frames from the other band, converted (8 -> 16 kHz on a 16 kHz tap, 16 -> 8
     * on an 8 kHz one), and the tick after the last frame it converted */
    struct resampler *conv;
    uint64_t conv_next;
    /* speech taps (producer-owned) */
    struct vad *vad;
    bool begin_owed; /* an utterance started, and none of its frames went in yet */
};

struct media_tap *media_tap_create(size_t capacity)
{
    return media_tap_create_rate(capacity, 8000);
}

struct media_tap *media_tap_create_rate(size_t capacity, int rate)
{
    if (capacity < 2 || capacity > TAP_CAPACITY_MAX)
        die("tap capacity %zu is out of range (2..%zu frames)", capacity, TAP_CAPACITY_MAX);
    if (rate != 8000 && rate != 16000)
        die("tap rate %d is neither 8000 nor 16000", rate);
    size_t pow2 = 2;
    while (pow2 < capacity)
        pow2 *= 2;
    struct media_tap *t = xcalloc(1, sizeof(*t));
    spsc_init(&t->ring, pow2, sizeof(struct media_tap_frame));
    t->capacity = capacity;
    atomic_init(&t->refs, 1);
    atomic_init(&t->closed, false);
    atomic_init(&t->dropped, 0);
    atomic_init(&t->offered, 0);
    t->rate = rate;
    t->samples = (size_t)rate / 50;
    t->conv = rate == 16000 ? resampler_create(8000, 16000) : resampler_create(16000, 8000);
    return t;
}

struct media_tap *media_tap_create_speech(size_t capacity, int rate, const struct vad_config *cfg)
{
    struct media_tap *t = media_tap_create_rate(capacity, rate);
    t->vad = vad_create(cfg, rate);
    return t;
}

struct media_tap *media_tap_ref(struct media_tap *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void media_tap_unref(struct media_tap *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    spsc_fini(&t->ring);
    vad_destroy(t->vad);
    resampler_destroy(t->conv);
    free(t);
}

/* The producer is the only writer of its counters: no read-modify-write is needed. */
static void count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* keep_free: slots that must stay free after this frame (a speech tap's END's). */
static bool ring_push(struct media_tap *t, uint64_t tick, const int16_t *pcm, uint8_t mark,
                      size_t keep_free)
{
    uint64_t dropped = atomic_load_explicit(&t->dropped, memory_order_relaxed);
    count(&t->offered);
    size_t head = atomic_load_explicit(&t->ring.head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&t->ring.tail, memory_order_acquire);
    if (head - tail + keep_free >= t->capacity) {
        count(&t->dropped);
        return false;
    }
    struct media_tap_frame f = {.tick = tick, .dropped_before = dropped, .mark = mark};
    memcpy(f.pcm, pcm, t->samples * sizeof(f.pcm[0]));
    bool ok = spsc_push(&t->ring, &f); /* cannot fail: the ring is at least capacity */
    assert(ok);
    (void)ok;
    return true;
}

/* One frame the detector hands on, with the marks the consumer is to see (tap.h): BEGIN goes on
 * the first of the utterance's frames that goes in, and a frame other than the END leaves a slot
 * for it. An END none of whose utterance went in would end nothing: it is dropped. */
static bool speech_push(struct media_tap *t, uint64_t tick, const int16_t *pcm, uint8_t vad_mark)
{
    if (vad_mark & VAD_MARK_BEGIN)
        t->begin_owed = true;
    bool end = vad_mark & VAD_MARK_END;
    if (end && t->begin_owed && !(vad_mark & VAD_MARK_BEGIN)) {
        t->begin_owed = false;
        count(&t->offered);
        count(&t->dropped);
        return false;
    }
    uint8_t mark = (uint8_t)((t->begin_owed ? MEDIA_TAP_BEGIN : 0) | (end ? MEDIA_TAP_END : 0));
    bool ok = ring_push(t, tick, pcm, mark, end ? 0 : 1);
    if (ok || end)
        t->begin_owed = false;
    return ok;
}

bool media_tap_push(struct media_tap *t, uint64_t tick, const int16_t *pcm)
{
    if (!t->vad)
        return media_tap_push_marked(t, tick, pcm, 0);
    if (atomic_load_explicit(&t->closed, memory_order_relaxed))
        return false;
    vad_feed(t->vad, pcm, tick);
    bool all = true;
    for (size_t i = 0, n = vad_out_count(t->vad); i < n; i++) {
        uint64_t at;
        uint8_t mark;
        const int16_t *frame = vad_out_frame(t->vad, i, &at, &mark);
        all &= speech_push(t, at, frame, mark);
    }
    return all;
}

bool media_tap_push_from(struct media_tap *t, uint64_t tick, const int16_t *pcm, int rate)
{
    static const int16_t silence[MIX_FRAME_WB];
    if (!pcm)
        return media_tap_push(t, tick, silence);
    if (rate == t->rate)
        return media_tap_push(t, tick, pcm);
    if (tick != t->conv_next)
        resampler_reset(t->conv);
    t->conv_next = tick + 1;
    int16_t conv[MIX_FRAME_WB];
    resampler_run_i16(t->conv, pcm, (size_t)rate / 50, conv);
    return media_tap_push(t, tick, conv);
}

bool media_tap_push_marked(struct media_tap *t, uint64_t tick, const int16_t *pcm, uint8_t mark)
{
    assert(!t->vad);
    if (atomic_load_explicit(&t->closed, memory_order_relaxed))
        return false;
    return ring_push(t, tick, pcm, mark, 0);
}

size_t media_tap_pop(struct media_tap *t, struct media_tap_frame *out, size_t max)
{
    size_t n = 0;
    while (n < max && spsc_pop(&t->ring, &out[n]))
        n++;
    return n;
}

void media_tap_close(struct media_tap *t)
{
    atomic_store_explicit(&t->closed, true, memory_order_release);
}

bool media_tap_closed(const struct media_tap *t)
{
    return atomic_load_explicit(&t->closed, memory_order_acquire);
}

uint64_t media_tap_dropped(const struct media_tap *t)
{
    return atomic_load_explicit(&t->dropped, memory_order_relaxed);
}

uint64_t media_tap_offered(const struct media_tap *t)
{
    return atomic_load_explicit(&t->offered, memory_order_relaxed);
}

bool media_tap_is_speech(const struct media_tap *t)
{
    return t->vad != NULL;
}

size_t media_tap_capacity(const struct media_tap *t)
{
    return t->capacity;
}

int media_tap_rate(const struct media_tap *t)
{
    return t->rate;
}

size_t media_tap_samples(const struct media_tap *t)
{
    return t->samples;
}
