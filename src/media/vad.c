/* Written here rather than taken from a library: Debian packages no small voice activity
 * detector for C, and what the transcription needs (pre-roll, utterance limits, no allocation on
 * the media thread) is most of the work anyway. Levels are kept as a frame's sum of squares (a
 * 64-bit integer), so a frame needs no logarithm: the thresholds in dB become sums once, at
 * creation. */
#include "media/vad.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

#define FRAME_MS 20
/* The floor's window is kept as this many blocks, each with its quietest frame, and the block
 * being filled: the window slides a block at a time (it is floor_window_ms to an eighth more), for
 * one comparison a frame. */
#define FLOOR_BLOCKS 8
/* A frame's sum of squares at 0 dBov, per sample. */
#define FULL_SCALE_PER_SAMPLE (32768.0 * 32768.0)

struct vad {
    /* settings, in frames and sums of squares */
    uint64_t min_energy;
    double margin; /* a power ratio */
    int block_frames, onset, hangover, soft_max, split_pause, max;
    /* the noise floor: the quietest frame of the last FLOOR_BLOCKS blocks and of this one */
    uint64_t block_min[FLOOR_BLOCKS];
    uint64_t blocks_min; /* of block_min[] */
    uint64_t cur_min;
    int cur_n, block_at;
    /* segmentation */
    bool inside;
    int run;   /* outside: speech frames in a row */
    int len;   /* inside: frames of the utterance so far */
    int quiet; /* inside: non-speech frames in a row */
    /* the ring: every fed frame, of which the last fill (since the last utterance) are pre-roll */
    size_t size, head, fill;
    size_t out_first, out_n;
    bool out_begin, out_end;
    uint64_t *ticks;
    size_t samples;    /* per frame: 160 (8 kHz) or 320 (16 kHz) */
    double full_scale; /* a frame's sum of squares at 0 dBov */
    int16_t *pcm;      /* size frames of samples */
};

struct vad_config vad_config_default(void)
{
    return (struct vad_config){.min_level_db = -50,
                               .margin_db = 10,
                               .floor_window_ms = 3000,
                               .onset_ms = 60,
                               .preroll_ms = 300,
                               .hangover_ms = 600,
                               .soft_max_ms = 10000,
                               .split_pause_ms = 160,
                               .max_ms = 15000};
}

static int frames_of(int ms)
{
    return (ms + FRAME_MS - 1) / FRAME_MS;
}

static int out_of_range(struct error *e, const char *field, int v, int lo, int hi)
{
    return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                     "vad: %s %d is out of range (%d..%d)", field, v, lo, hi);
}

/* Why these bounds: below them a setting stops meaning what it says (a window shorter than its
 * blocks, a pause longer than the hangover that would end the utterance first); above them it is
 * a mistake, not a choice. The utterance must be able to hold its pre-roll and onset. */
int vad_config_validate(const struct vad_config *c, struct error *e)
{
    const struct {
        const char *name;
        int v, lo, hi;
    } f[] = {
        {"min_level_db", c->min_level_db, -90, 0},
        {"margin_db", c->margin_db, 0, 40},
        {"floor_window_ms", c->floor_window_ms, FLOOR_BLOCKS * FRAME_MS, 60000},
        {"onset_ms", c->onset_ms, 1, 1000},
        {"preroll_ms", c->preroll_ms, 0, 2000},
        {"hangover_ms", c->hangover_ms, 1, 10000},
        {"split_pause_ms", c->split_pause_ms, 1, c->hangover_ms},
        {"max_ms", c->max_ms, c->preroll_ms + c->onset_ms + FRAME_MS, 600000},
        {"soft_max_ms", c->soft_max_ms, 1, c->max_ms},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return out_of_range(e, f[i].name, f[i].v, f[i].lo, f[i].hi);
    if (frames_of(c->max_ms) <= frames_of(c->preroll_ms) + frames_of(c->onset_ms))
        return error_set(e, ERR_INVALID_ARGUMENT, "INVALID_FIELD_VALUE",
                         "vad: max_ms %d does not hold preroll_ms and onset_ms in whole frames",
                         c->max_ms);
    return 0;
}

struct vad *vad_create(const struct vad_config *cfg, int rate)
{
    struct vad_config c = cfg ? *cfg : vad_config_default();
    struct error err;
    if (vad_config_validate(&c, &err) < 0)
        die("%s", err.message);
    if (rate != 8000 && rate != 16000)
        die("vad: rate %d is neither 8000 nor 16000", rate);
    struct vad *v = xcalloc(1, sizeof(*v));
    v->samples = (size_t)rate / 50;
    v->full_scale = (double)v->samples * FULL_SCALE_PER_SAMPLE;
    v->min_energy = (uint64_t)(v->full_scale * pow(10.0, c.min_level_db / 10.0));
    v->margin = pow(10.0, c.margin_db / 10.0);
    v->block_frames = (frames_of(c.floor_window_ms) + FLOOR_BLOCKS - 1) / FLOOR_BLOCKS;
    v->onset = frames_of(c.onset_ms);
    v->hangover = frames_of(c.hangover_ms);
    v->soft_max = frames_of(c.soft_max_ms);
    v->split_pause = frames_of(c.split_pause_ms);
    v->max = frames_of(c.max_ms);
    for (int i = 0; i < FLOOR_BLOCKS; i++)
        v->block_min[i] = UINT64_MAX;
    v->blocks_min = v->cur_min = UINT64_MAX;
    v->size = (size_t)(frames_of(c.preroll_ms) + v->onset);
    v->ticks = xcalloc(v->size, sizeof(*v->ticks));
    v->pcm = xcalloc(v->size * v->samples, sizeof(*v->pcm));
    return v;
}

void vad_destroy(struct vad *v)
{
    if (!v)
        return;
    free(v->ticks);
    free(v->pcm);
    free(v);
}

static uint64_t frame_energy(const int16_t *x, size_t n)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += (uint64_t)((int32_t)x[i] * x[i]);
    return acc;
}

/* The frame joins the floor's window first, so a frame is never above a floor it is part of: a
 * sound that has been steady for the whole window is not speech, from its first frame on. */
static bool is_speech(struct vad *v, uint64_t e)
{
    if (e < v->cur_min)
        v->cur_min = e;
    uint64_t floor = v->cur_min < v->blocks_min ? v->cur_min : v->blocks_min;
    if (++v->cur_n == v->block_frames) {
        v->block_min[v->block_at] = v->cur_min;
        v->block_at = (v->block_at + 1) % FLOOR_BLOCKS;
        v->blocks_min = UINT64_MAX;
        for (int i = 0; i < FLOOR_BLOCKS; i++)
            if (v->block_min[i] < v->blocks_min)
                v->blocks_min = v->block_min[i];
        v->cur_min = UINT64_MAX;
        v->cur_n = 0;
    }
    return e > v->min_energy && (double)e > (double)floor * v->margin;
}

static void ring_put(struct vad *v, const int16_t *pcm, uint64_t tick)
{
    memcpy(v->pcm + v->head * v->samples, pcm, v->samples * sizeof(*v->pcm));
    v->ticks[v->head] = tick;
    v->head = (v->head + 1) % v->size;
    if (v->fill < v->size)
        v->fill++;
}

/* The last n frames of the ring are handed on. */
static void hand_on(struct vad *v, size_t n, bool begin, bool end)
{
    v->out_first = (v->head + v->size - n) % v->size;
    v->out_n = n;
    v->out_begin = begin;
    v->out_end = end;
}

/* Why the ring forgets at an utterance's end: the next utterance's pre-roll is only what came
 * after it, so no frame is handed on twice, and after a cut at max_ms the frames since the cut
 * become the next utterance's start. */
enum vad_out vad_feed(struct vad *v, const int16_t *pcm, uint64_t tick)
{
    bool speech = is_speech(v, frame_energy(pcm, v->samples));
    ring_put(v, pcm, tick);
    if (!v->inside) {
        v->run = speech ? v->run + 1 : 0;
        if (v->run < v->onset) {
            v->out_n = 0;
            return VAD_OUT_NONE;
        }
        v->inside = true;
        v->len = (int)v->fill; /* validated: fewer than max */
        v->quiet = 0;
        hand_on(v, v->fill, true, false);
        return VAD_OUT_BEGIN;
    }
    v->len++;
    v->quiet = speech ? 0 : v->quiet + 1;
    bool end = v->quiet >= v->hangover || v->len >= v->max ||
               (v->len >= v->soft_max && v->quiet >= v->split_pause);
    hand_on(v, 1, false, end);
    if (!end)
        return VAD_OUT_INSIDE;
    v->inside = false;
    v->run = 0;
    v->fill = 0;
    return VAD_OUT_END;
}

size_t vad_out_count(const struct vad *v)
{
    return v->out_n;
}

const int16_t *vad_out_frame(const struct vad *v, size_t i, uint64_t *tick, uint8_t *mark)
{
    assert(i < v->out_n);
    size_t at = (v->out_first + i) % v->size;
    *tick = v->ticks[at];
    *mark = (uint8_t)((i == 0 && v->out_begin ? VAD_MARK_BEGIN : 0) |
                      (i + 1 == v->out_n && v->out_end ? VAD_MARK_END : 0));
    return v->pcm + at * v->samples;
}

bool vad_in_utterance(const struct vad *v)
{
    return v->inside;
}

double vad_floor_db(const struct vad *v)
{
    uint64_t floor = v->cur_min < v->blocks_min ? v->cur_min : v->blocks_min;
    if (floor == UINT64_MAX || floor == 0)
        return -100.0;
    return 10.0 * log10((double)floor / v->full_scale);
}
