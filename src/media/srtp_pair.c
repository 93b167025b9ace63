/* SRTP sessions over libsrtp2 (see srtp_pair.h). */
#include "media/srtp_pair.h"

#include <pthread.h>
#include <srtp2/srtp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

_Static_assert(SRTP_PAIR_TRAILER >= SRTP_MAX_TRAILER_LEN, "SRTP trailer room");

struct srtp_pair {
    srtp_t out, in;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static srtp_err_status_t init_status;

static void init_library(void)
{
    init_status = srtp_init();
}

/* One direction's session: the profile's RTP and RTCP policies, the key, the SSRC. */
static int session(srtp_t *s, srtp_profile_t profile, const uint8_t *key, srtp_ssrc_type_t type,
                   uint32_t ssrc)
{
    srtp_policy_t pol;
    memset(&pol, 0, sizeof(pol));
    if (srtp_crypto_policy_set_from_profile_for_rtp(&pol.rtp, profile) != srtp_err_status_ok ||
        srtp_crypto_policy_set_from_profile_for_rtcp(&pol.rtcp, profile) != srtp_err_status_ok)
        return -1;
    pol.ssrc.type = type;
    pol.ssrc.value = ssrc;
    pol.key = (unsigned char *)key;
    pol.window_size = 1024;
    pol.allow_repeat_tx = 0;
    return srtp_create(s, &pol) == srtp_err_status_ok ? 0 : -1;
}

struct srtp_pair *srtp_pair_create(int profile, const uint8_t *local, const uint8_t *remote,
                                   size_t key_len, uint32_t local_ssrc, uint32_t remote_ssrc,
                                   char *err, size_t errlen)
{
    pthread_once(&init_once, init_library);
    if (init_status != srtp_err_status_ok) {
        snprintf(err, errlen, "libsrtp did not start (error %d)", (int)init_status);
        return NULL;
    }
    srtp_profile_t prof = (srtp_profile_t)profile;
    unsigned want =
        srtp_profile_get_master_key_length(prof) + srtp_profile_get_master_salt_length(prof);
    if (profile < 1 || profile > 8 || want == 0 || want != key_len) {
        snprintf(err, errlen, "SRTP profile %d with %zu bytes of key and salt is not supported",
                 profile, key_len);
        return NULL;
    }
    struct srtp_pair *p = xcalloc(1, sizeof(*p));
    if (session(&p->out, prof, local, ssrc_specific, local_ssrc) < 0 ||
        session(&p->in, prof, remote, remote_ssrc ? ssrc_specific : ssrc_any_inbound, remote_ssrc) <
            0) {
        snprintf(err, errlen, "libsrtp refused the keys of profile %d", profile);
        srtp_pair_free(p);
        return NULL;
    }
    return p;
}

void srtp_pair_free(struct srtp_pair *p)
{
    if (!p)
        return;
    if (p->out)
        srtp_dealloc(p->out);
    if (p->in)
        srtp_dealloc(p->in);
    free(p);
}

int srtp_pair_protect(struct srtp_pair *p, uint8_t *buf, size_t len)
{
    int n = (int)len;
    if (len < 12 || srtp_protect(p->out, buf, &n) != srtp_err_status_ok)
        return -1;
    return n;
}

int srtp_pair_unprotect(struct srtp_pair *p, uint8_t *buf, size_t len)
{
    int n = (int)len;
    if (len < 12 || len > 65535 || srtp_unprotect(p->in, buf, &n) != srtp_err_status_ok)
        return -1;
    return n;
}
