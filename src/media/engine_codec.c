/* Codec state for legs and rooms: made on the control thread (encoders, decoders, jitter buffers
 * and resamplers allocate), installed on the media thread by command, handed back to be freed. */
#include <stdlib.h>

#include "core/mem.h"
#include "media/engine_internal.h"

static struct codec_settings settings(const struct media_engine *e)
{
    struct codec_settings s = {CODEC_OPUS_BITRATE_DEFAULT, CODEC_OPUS_COMPLEXITY_DEFAULT};
    if (e->cfg.opus_bitrate > 0)
        s.opus_bitrate = e->cfg.opus_bitrate;
    if (e->cfg.opus_complexity >= 0)
        s.opus_complexity = e->cfg.opus_complexity;
    return s;
}

struct leg_codec *engine_codec_create(const struct media_engine *e, enum codec_id c)
{
    const struct codec_info *ci = codec_info(c);
    struct codec_settings s = settings(e);
    struct leg_codec *lc = xcalloc(1, sizeof(*lc));
    lc->id = c;
    lc->jb = jb_create(ci->min_payload, ci->max_payload);
    lc->dec = codec_dec_create(c);
    lc->enc = codec_enc_create(c, &s);
    if (ci->wide) {
        lc->clip_up = resampler_create(8000, 16000);
        lc->says_down = resampler_create(16000, 8000);
    }
    return lc;
}

void engine_codec_free(struct leg_codec *lc)
{
    if (!lc)
        return;
    jb_destroy(lc->jb);
    codec_dec_destroy(lc->dec);
    codec_enc_destroy(lc->enc);
    resampler_destroy(lc->clip_up);
    resampler_destroy(lc->says_down);
    free(lc);
}

void engine_room_need_codec(struct media_engine *e, struct media_room *r, enum codec_id c)
{
    if (r->destroyed)
        return;
    bool enc = codec_stateful(c) && !(r->ctl_codecs & (1u << c));
    bool bridge = codec_info(c)->wide && !r->ctl_bridged;
    if (!enc && !bridge)
        return;
    struct cmd cmd = {.type = CMD_ROOM_CODEC, .room = r, .codec = (int)c};
    if (enc) {
        struct codec_settings s = settings(e);
        cmd.enc = codec_enc_create(c, &s);
        r->ctl_codecs |= 1u << c;
    }
    if (bridge) {
        cmd.up = resampler_create(8000, 16000);
        cmd.down = resampler_create(16000, 8000);
        r->ctl_bridged = true;
    }
    engine_send_cmd(r->thread, &cmd);
}

void engine_room_codec_apply(struct media_room *r, const struct cmd *c)
{
    if (c->enc)
        r->mix.shared_enc[c->codec] = c->enc;
    if (c->up) {
        r->mix.up = c->up;
        r->mix.down = c->down;
    }
}

void engine_room_codecs_free(struct media_room *r)
{
    for (int i = 0; i < CODEC_COUNT; i++) {
        codec_enc_destroy(r->mix.shared_enc[i]);
        r->mix.shared_enc[i] = NULL;
    }
    resampler_destroy(r->mix.up);
    resampler_destroy(r->mix.down);
    r->mix.up = r->mix.down = NULL;
}

void engine_room_codec_cmd_free(const struct cmd *c)
{
    codec_enc_destroy(c->enc);
    resampler_destroy(c->up);
    resampler_destroy(c->down);
}
