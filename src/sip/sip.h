/* SIP (RFC 3261) for calls in both directions, over UDP: libosip2 parses messages and runs the
 * transaction state machines (retransmissions, timers); this module owns the transports on the
 * libuv loop, the dialogs, the answers to incoming INVITEs and the outgoing INVITEs. It knows SIP,
 * not conferences. Its files and their layers (transport, transactions, dialogs, client side,
 * server side) are listed in sip/internal.h. Control thread only. */
#ifndef CONFERENCED_SIP_H
#define CONFERENCED_SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "media/codec.h"

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
    /* The transport it came on: "UDP", or "WS" (a browser's SIP over WebSocket, whose offer may be
     * WebRTC's: UDP/TLS/RTP/SAVPF with ICE and DTLS-SRTP). */
    const char *transport;
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
    /* Outgoing calls (sip_dialog_invite); any of these may be NULL. */
    /* An outgoing call got a provisional answer (180 Ringing, 183 Session Progress): code. */
    void (*on_progress)(void *ctx, struct sip_dialog *d, int code);
    /* An outgoing call was answered (2xx; we have sent the ACK). sdp: the answer, NULL if none. */
    void (*on_answered)(void *ctx, struct sip_dialog *d, const char *sdp);
    /* An outgoing call failed before being answered: the final status (3xx-6xx), 408 when nothing
     * answered (Timer B, or ringing for longer than 360*T1 = 3 min), 503 when the host could not
     * be resolved or the request could not be sent, 487 after sip_dialog_cancel(). The dialog is
     * freed right after this returns. */
    void (*on_failed)(void *ctx, struct sip_dialog *d, int code);
};

struct sip_config {
    const char *addr; /* IPv4 listen address */
    int port;         /* 0 picks a free port */
    const char *user_agent;
    int max_dialogs; /* above this, new INVITEs get 503 (0: 1000) */
    /* Incoming calls from one IPv4 address still being set up: INVITE received, our 2xx not yet
       acknowledged (or no final answer yet). Beyond it, new INVITEs from that address get 503
       with Retry-After (0: no limit). */
    int max_setup_per_source;
    int t1_ms;       /* RFC 3261 T1 (RTT estimate); 0 means 500. Tests shorten it: every timer
                        (retransmissions, 64*T1 time-outs, T2 = 8*T1, T4 = 10*T1) scales with it */
    int ws_max_connections; /* SIP over WebSocket connections open at once (0: 1000) */
    int ws_max_message;     /* the largest SIP message on a WebSocket, 1024-65535 bytes (0: 65535);
                               a larger one closes its connection with 1009 */
};

/* Binds the UDP socket and starts. Returns NULL with a message in err. */
struct sip_stack *sip_create(uv_loop_t *loop, const struct sip_config *cfg,
                             const struct sip_callbacks *cb, char *err, size_t errlen);
/* Sends BYE on every established dialog (503 on ringing incoming ones, CANCEL on outgoing ones
 * that got a provisional answer; the others are dropped), then frees everything (callbacks
 * are not called). NULL is a no-op. Not from inside a callback. Run the loop afterwards so
 * handles close. */
void sip_destroy(struct sip_stack *s);
int sip_port(const struct sip_stack *s);
/* Handles one datagram as if it had arrived on the socket from ip:port (fuzzing and tests). */
void sip_stack_input(struct sip_stack *s, const char *buf, size_t len, const char *ip, int port);

/* SIP over WebSocket (RFC 7118): a connection the HTTP layer upgraded (subprotocol "sip") becomes
 * a transport of the stack. Each text or binary message is one SIP message; its requests go
 * through the same stack as UDP ones, and every response and in-dialog request to that peer goes
 * back over the connection. Nothing is retransmitted on it (a reliable transport); the
 * transaction time-outs stay. A message that is not SIP closes the connection with 1008, one
 * larger than ws_max_message with 1009. When a connection closes, its dialogs end as a BYE from
 * the peer would end them (on_ended, remote). */
/* 0 when another connection may be taken now; else why not in err and -1 (ws_max_connections
 * are open) or -2 (the stack is shutting down): the HTTP layer refuses the upgrade with that. */
int sip_ws_admit(const struct sip_stack *s, char *err, size_t errlen);
/* Takes over an upgraded, non-blocking socket; extra holds bytes already read past the HTTP
 * request. closed_cb(arg) comes once the connection is over (the caller then closes fd), and
 * also before this returns -1 (refused: at the limit, or not an IPv4 TCP socket). */
int sip_ws_accept(struct sip_stack *s, int fd, const char *extra, size_t extra_len,
                  void (*closed_cb)(void *arg), void *arg);
/* SIP WebSocket connections open now. */
size_t sip_ws_count(const struct sip_stack *s);

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

/* An outgoing INVITE. */
struct sip_outgoing {
    const char *request_uri;  /* "sip:user@host[:port]"; host an IPv4 literal or a name (resolved
                                 without blocking the loop, uv_getaddrinfo) */
    const char *from_uri;     /* our identity, e.g. "sip:+15550001111@127.0.0.1" */
    const char *from_display; /* may be NULL */
    const char *sdp;          /* our offer (required) */
};
/* Starts an outgoing call (UAC INVITE). Returns the dialog (owned by the stack; data set as with
 * sip_dialog_set_data) or NULL with a message in err (bad URI, too many dialogs). Then
 * on_progress / on_answered / on_failed follow, never before this returns; once answered it is
 * an established dialog like an incoming one: sip_dialog_bye() hangs up, a BYE from the peer
 * gives on_ended(remote=true). Control thread; may be called from a callback. */
struct sip_dialog *sip_dialog_invite(struct sip_stack *s, const struct sip_outgoing *o, void *data,
                                     char *err, size_t errlen);
/* Gives up an outgoing call before its final answer (CANCEL, RFC 3261 9.1; if no provisional
 * response has arrived yet, the CANCEL waits until one does, or the INVITE transaction times
 * out). on_failed(487) follows (not before this returns) — or on_answered when a 2xx crossed the
 * CANCEL, in which case the application hangs up with sip_dialog_bye(). Returns -1 when not an
 * outgoing call still waiting for its answer, or when already cancelled. */
int sip_dialog_cancel(struct sip_dialog *d);

/* True when the dialog ended because the peer never acknowledged our 2xx (64*T1, RFC 3261
 * 13.3.1.4). For on_ended. */
bool sip_dialog_unacked(const struct sip_dialog *d);

/* What a later run needs to end an answered dialog with a BYE (RFC 3261 12.2.1.1): Call-ID, both
 * tags, our URI and the peer's, the remote target, the route set, our next CSeq and the peer's
 * transport address, as one line of JSON for the application to store. Returns its length, or -1
 * when the dialog is not answered (or is ending) or cap is too small. */
int sip_dialog_state(const struct sip_dialog *d, char *out, size_t cap);
/* Start-up: sends a BYE for a dialog a previous run left up, from its saved state (above),
 * through its own client transaction (retransmitted until answered or 64*T1; the outcome is
 * logged, not reported). 0, or -1 with a message in err when the state does not parse. */
int sip_bye_saved(struct sip_stack *s, const char *state, char *err, size_t errlen);

/* Checks a SIP URI to dial: "sip:" [user "@"] host [":" port], the host an IPv4 address or a DNS
 * name, the port 1-65535; no password, parameters, headers or other characters. 0, or -1 with
 * what is wrong in err. Any thread. */
int sip_uri_check(const char *uri, char *err, size_t errlen);

/* The peer's address as text: where an incoming INVITE came from, or where an outgoing one was
 * sent ("" before it is resolved). */
const char *sip_dialog_peer_ip(const struct sip_dialog *d);
/* The application's pointer for this dialog. */
void sip_dialog_set_data(struct sip_dialog *d, void *data);
void *sip_dialog_data(const struct sip_dialog *d);
const char *sip_dialog_call_id(const struct sip_dialog *d);

/* SDP offer/answer (RFC 3264) for one audio stream. The codecs are the media layer's
 * (media/codec.h): Opus (opus/48000/2, dynamic), G.722 (9), PCMU (0), PCMA (8), and RFC 4733
 * telephone-event at 8 and 48 kHz. */
/* Offers with more m= lines than this are refused. */
#define SDP_MAX_MEDIA 8
/* The longest ice-ufrag and ice-pwd (RFC 8839 5.4), fingerprint and mid we read. */
#define SDP_ICE_MAX 256
#define SDP_FINGERPRINT_MAX 200
#define SDP_MID_MAX 32
enum sdp_setup { SDP_SETUP_NONE = 0, SDP_SETUP_ACTPASS, SDP_SETUP_ACTIVE, SDP_SETUP_PASSIVE };
struct sdp_offer_result {
    /* The best codec of the stream that we support: Opus, else G.722, else the first of PCMU and
     * PCMA in the stream's order. */
    enum codec_id codec;
    int audio_pt;         /* its payload type in the stream */
    int pts[CODEC_COUNT]; /* the stream's payload type for each codec we support, or -1 */
    /* The stream's telephone-event payload type at the chosen codec's clock (or at the other
     * rate when it has only that one), or -1. */
    int dtmf_pt;
    int dtmf_pt_8k, dtmf_pt_48k; /* each rate's, or -1 */
    char remote_ip[64];   /* c= of the audio stream */
    int remote_port;      /* m= port */
    bool remote_sendonly, remote_recvonly, remote_inactive;
    /* Every m= line of the offer, so that the answer has the same lines in the same order (RFC
     * 3264 6): the audio stream at audio_index, the others rejected as "video 0 RTP/AVP 96". A
     * zeroed media_count makes the answer a single audio line. */
    int media_count, audio_index;
    char media_lines[SDP_MAX_MEDIA][64];
    /* WebRTC (UDP/TLS/RTP/SAVPF, RFC 8829): ICE, DTLS-SRTP, rtcp-mux on one port. The address
     * and port above are then placeholders: ICE finds the peer. */
    bool secure;
    char ice_ufrag[SDP_ICE_MAX + 1], ice_pwd[SDP_ICE_MAX + 1];
    char fingerprint[SDP_FINGERPRINT_MAX + 1]; /* "sha-256 AB:CD:..." */
    enum sdp_setup setup;                      /* the a=setup it said (RFC 4145) */
    char mid[SDP_MID_MAX + 1];                 /* the audio stream's a=mid, "" when none */
    uint32_t ssrc;                             /* its first a=ssrc, 0 when none */
};
/* Reads an offer. Returns 0, or -1 when it is unusable (no audio, no supported codec, bad
 * syntax): the caller answers 488. */
int sdp_parse_offer(const char *sdp, struct sdp_offer_result *out);
/* Writes our answer for local_ip:local_port with the chosen codec (and telephone-event when the
 * offer had it) into out; returns its length, or -1 when cap is too small. session_id/version
 * come from the caller (o= line). */
int sdp_build_answer(const struct sdp_offer_result *offer, const char *local_ip, int local_port,
                     uint64_t session_id, uint64_t version, char *out, size_t cap);
/* Our side of a WebRTC stream (RFC 8829): ICE-lite credentials, the DTLS certificate's
 * fingerprint, our SSRC. */
struct sdp_secure_local {
    const char *ice_ufrag, *ice_pwd, *fingerprint;
    uint32_t ssrc;
};
/* sdp_build_answer for an offer with secure set: the answer of an ICE-lite, DTLS-SRTP endpoint
 * (UDP/TLS/RTP/SAVPF, a=ice-lite, one host candidate local_ip:local_port, a=setup:passive unless
 * the offer said passive, a=rtcp-mux, the offer's mid in a BUNDLE group). sec may be NULL for a
 * plain offer. -1 when cap is too small or the offer is secure and sec NULL. */
int sdp_build_answer_secure(const struct sdp_offer_result *offer, const char *local_ip,
                            int local_port, uint64_t session_id, uint64_t version,
                            const struct sdp_secure_local *sec, char *out, size_t cap);
/* Our offer for an outgoing call: Opus (111), G.722 (9), PCMU (0), PCMA (8), telephone-event at
 * 8 kHz (101) and 48 kHz (102), sendrecv, ptime 20, on local_ip:local_port. Returns the length or -1 when cap is too small (or local_ip
 * is not an IPv4 address, the port not 1-65535). Any thread. */
int sdp_build_offer(const char *local_ip, int local_port, uint64_t session_id, uint64_t version,
                    char *out, size_t cap);
/* Reads the answer to our offer: the codec the peer chose (the best of ours in its audio m=
 * line, as for an offer), its telephone-event payload type, address, port and direction. 0, or -1 when unusable
 * (audio rejected with port 0, no codec of ours, bad syntax). Fills the same struct as
 * sdp_parse_offer. Any thread. */
int sdp_parse_answer(const char *sdp, struct sdp_offer_result *out);
/* Answers a new offer (re-INVITE) in an established call: the codec, address, port and session id
 * of our previous answer, its version + 1, the direction and telephone-event of the new offer.
 * Returns the length, or -1 when the new offer is unusable or lacks our codec (answer 488). */
int sdp_build_reanswer(const char *offer, const char *prev_answer, char *out, size_t cap);

#endif
