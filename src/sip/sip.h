/* SIP over UDP (RFC 3261) for the server side of calls: libosip2 parses messages and runs the
 * transaction state machines (retransmissions, timers); this module owns the UDP socket on the
 * libuv loop, the dialogs, and the answers. It knows SIP, not conferences. Control thread only. */
#ifndef CONFERENCED_SIP_H
#define CONFERENCED_SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct sip_stack;
struct sip_dialog; /* one INVITE dialog (a call leg); owned by the stack */

/* An incoming INVITE, valid during the on_invite callback. */
struct sip_invite {
    const char *request_user; /* user part of the Request-URI, e.g. "direct.0a1b2c3d4e5f" */
    const char *request_uri;
    const char *from_uri, *from_display, *to_uri;
    const char *call_id;
    const char *source_ip; /* where the request came from */
    int source_port;
    const char *sdp; /* the offer (NULL when the INVITE had none) */
};

struct sip_callbacks {
    void *ctx;
    /* A new INVITE. The application answers later (or at once) with sip_dialog_ringing(),
     * sip_dialog_answer() or sip_dialog_reject(). */
    void (*on_invite)(void *ctx, struct sip_dialog *d, const struct sip_invite *inv);
    /* The ACK for our 2xx arrived: the call is up. */
    void (*on_established)(void *ctx, struct sip_dialog *d);
    /* The dialog ended: BYE from the peer (remote=true), CANCEL (or BYE) before the answer
     * (remote=true, cancelled=true), no ACK for our 2xx within 64*T1 (we sent a BYE; remote=true
     * unless the application had asked to hang up), or our own BYE completed (remote=false).
     * The dialog is freed right after this returns. */
    void (*on_ended)(void *ctx, struct sip_dialog *d, bool remote, bool cancelled);
};

struct sip_config {
    const char *addr; /* IPv4 listen address */
    int port;         /* 0 picks a free port */
    const char *user_agent;
    int max_dialogs; /* above this, new INVITEs get 503 (0: 1000) */
    int t1_ms;       /* RFC 3261 T1 (RTT estimate); 0 means 500. Tests shorten it: every timer
                        (retransmissions, 64*T1 time-outs, T2 = 8*T1, T4 = 10*T1) scales with it */
};

/* Binds the UDP socket and starts. Returns NULL with a message in err. */
struct sip_stack *sip_create(uv_loop_t *loop, const struct sip_config *cfg,
                             const struct sip_callbacks *cb, char *err, size_t errlen);
/* Sends BYE on every established dialog (503 on ringing ones), then frees everything (callbacks
 * are not called). NULL is a no-op. Not from inside a callback. Run the loop afterwards so
 * handles close. */
void sip_destroy(struct sip_stack *s);
int sip_port(const struct sip_stack *s);
/* Handles one datagram as if it had arrived on the socket from ip:port (fuzzing and tests). */
void sip_stack_input(struct sip_stack *s, const char *buf, size_t len, const char *ip, int port);

/* Answers of the application to an INVITE. */
int sip_dialog_ringing(struct sip_dialog *d);                 /* 180 */
int sip_dialog_answer(struct sip_dialog *d, const char *sdp); /* 200 with our SDP */
/* 3xx-6xx (reason NULL: the standard phrase). The dialog is freed: forget it; on_ended does not
 * follow. */
int sip_dialog_reject(struct sip_dialog *d, int code, const char *reason);
/* Hangs up an established (or answered, unacknowledged) dialog with BYE; on_ended follows.
 * Answered but not yet acknowledged: the BYE leaves when the ACK arrives or 64*T1 pass (RFC 3261
 * 15). Returns -1 before the answer (use sip_dialog_reject) or when already hanging up. */
int sip_dialog_bye(struct sip_dialog *d);
/* The application's pointer for this dialog. */
void sip_dialog_set_data(struct sip_dialog *d, void *data);
void *sip_dialog_data(const struct sip_dialog *d);
const char *sip_dialog_call_id(const struct sip_dialog *d);

/* SDP offer/answer (RFC 3264) for one audio stream. */
enum sdp_codec { SDP_PCMU = 0, SDP_PCMA = 8 };
/* Offers with more m= lines than this are refused. */
#define SDP_MAX_MEDIA 8
struct sdp_offer_result {
    enum sdp_codec codec; /* the first of the offer's codecs we support */
    int dtmf_pt;          /* the offer's telephone-event payload type, or -1 */
    char remote_ip[64];   /* c= of the audio stream */
    int remote_port;      /* m= port */
    bool remote_sendonly, remote_recvonly, remote_inactive;
    /* Every m= line of the offer, so that the answer has the same lines in the same order (RFC
     * 3264 6): the audio stream at audio_index, the others rejected as "video 0 RTP/AVP 96". A
     * zeroed media_count makes the answer a single audio line. */
    int media_count, audio_index;
    char media_lines[SDP_MAX_MEDIA][64];
};
/* Reads an offer. Returns 0, or -1 when it is unusable (no audio, no supported codec, bad
 * syntax): the caller answers 488. */
int sdp_parse_offer(const char *sdp, struct sdp_offer_result *out);
/* Writes our answer for local_ip:local_port with the chosen codec (and telephone-event when the
 * offer had it) into out; returns its length, or -1 when cap is too small. session_id/version
 * come from the caller (o= line). */
int sdp_build_answer(const struct sdp_offer_result *offer, const char *local_ip, int local_port,
                     uint64_t session_id, uint64_t version, char *out, size_t cap);
/* Answers a new offer (re-INVITE) in an established call: the codec, address, port and session id
 * of our previous answer, its version + 1, the direction and telephone-event of the new offer.
 * Returns the length, or -1 when the new offer is unusable or lacks our codec (answer 488). */
int sdp_build_reanswer(const char *offer, const char *prev_answer, char *out, size_t cap);

#endif
