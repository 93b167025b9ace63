/* struct call_sip over a real SIP stack: each operation is the sip/sip.h function of the same
 * name (the stack is the ctx; dialog functions do not need it). */
#include "call/internal.h"

static int op_answer(void *ctx, struct sip_dialog *d, const char *sdp)
{
    return sip_dialog_answer(d, sdp);
}

static int op_reject(void *ctx, struct sip_dialog *d, int code, const char *reason)
{
    return sip_dialog_reject(d, code, reason);
}

static int op_bye(void *ctx, struct sip_dialog *d)
{
    return sip_dialog_bye(d);
}

static int op_cancel(void *ctx, struct sip_dialog *d)
{
    return sip_dialog_cancel(d);
}

static struct sip_dialog *op_invite(void *ctx, const struct sip_outgoing *o, void *data, char *err,
                                    size_t errlen)
{
    return sip_dialog_invite(ctx, o, data, err, errlen);
}

static int op_state(void *ctx, const struct sip_dialog *d, char *out, size_t cap)
{
    return sip_dialog_state(d, out, cap);
}

static int op_bye_saved(void *ctx, const char *state, char *err, size_t errlen)
{
    return sip_bye_saved(ctx, state, err, errlen);
}

static bool op_unacked(void *ctx, const struct sip_dialog *d)
{
    return sip_dialog_unacked(d);
}

static const char *op_peer_ip(void *ctx, const struct sip_dialog *d)
{
    return sip_dialog_peer_ip(d);
}

static void op_set_data(void *ctx, struct sip_dialog *d, void *data)
{
    sip_dialog_set_data(d, data);
}

static void *op_data(void *ctx, const struct sip_dialog *d)
{
    return sip_dialog_data(d);
}

struct call_sip call_sip_stack(struct sip_stack *s)
{
    struct call_sip ops = {
        .ctx = s,
        .answer = op_answer,
        .reject = op_reject,
        .bye = op_bye,
        .cancel = op_cancel,
        .invite = op_invite,
        .state = op_state,
        .bye_saved = op_bye_saved,
        .unacked = op_unacked,
        .peer_ip = op_peer_ip,
        .set_data = op_set_data,
        .data = op_data,
    };
    return ops;
}
