#include "core/timeutil.h"

#include <ctype.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static _Atomic int64_t last_unique;

int64_t tm_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tm_unique_us(void)
{
    int64_t now = tm_now_us();
    int64_t prev = atomic_load(&last_unique);
    for (;;) {
        int64_t next = now > prev ? now : prev + 1;
        if (atomic_compare_exchange_weak(&last_unique, &prev, next))
            return next;
    }
}

void tm_unique_floor(int64_t us)
{
    int64_t prev = atomic_load(&last_unique);
    while (us > prev && !atomic_compare_exchange_weak(&last_unique, &prev, us)) {
    }
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), valid for years 0..9999. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

void tm_format(int64_t us, char out[TM_TEXT_LEN])
{
    int64_t secs = us / 1000000;
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        memcpy(out, "0000-00-00 00:00:00.000000", TM_TEXT_LEN);
        return;
    }
    /* Hand-formatted: this runs for every timestamp of every response. */
    unsigned v[7] = {(unsigned)y, m, d, (unsigned)(rem / 3600), (unsigned)(rem % 3600 / 60),
                     (unsigned)(rem % 60), (unsigned)frac};
    char *p = out;
    p[0] = (char)('0' + v[0] / 1000);
    p[1] = (char)('0' + v[0] / 100 % 10);
    p[2] = (char)('0' + v[0] / 10 % 10);
    p[3] = (char)('0' + v[0] % 10);
    p[4] = '-';
    p += 5;
    for (int i = 1; i < 6; i++) {
        p[0] = (char)('0' + v[i] / 10);
        p[1] = (char)('0' + v[i] % 10);
        p[2] = i == 1 ? '-' : i == 2 ? ' ' : i < 5 ? ':' : '.';
        p += 3;
    }
    for (int i = 5; i >= 0; i--) {
        p[i] = (char)('0' + v[6] % 10);
        v[6] /= 10;
    }
    p[6] = '\0';
}

static int digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

int tm_parse(const char *text, int64_t *out)
{
    const char *s = text;
    int y, mo, d, h, mi, se;
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
        digits(&s, 2, &d))
        return -1;
    if (*s != ' ' && *s != 'T' && *s != 't')
        return -1;
    s++;
    if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
        digits(&s, 2, &se))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    int64_t frac = 0;
    if (*s == '.') {
        s++;
        int nd = 0;
        while (isdigit((unsigned char)*s)) {
            if (nd < 6) {
                frac = frac * 10 + (*s - '0');
                nd++;
            } else if (nd >= 9) {
                return -1;
            } else {
                nd++;
            }
            s++;
        }
        if (nd == 0)
            return -1;
        for (int i = nd < 6 ? nd : 6; i < 6; i++)
            frac *= 10;
    }
    int64_t offset = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s == '-' ? -1 : 1, oh, om;
        s++;
        if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset = sign * ((int64_t)oh * 3600 + om * 60);
    }
    if (*s != '\0')
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset;
    *out = secs * 1000000 + frac;
    return 0;
}
