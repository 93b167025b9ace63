#include "core/ids.h"

#include <ctype.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <uuid/uuid.h>

void id_new(char out[ID_LEN + 1])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

bool id_valid(const char *s)
{
    for (int i = 0; i < ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return s[ID_LEN] == '\0';
}

int id_normalize(const char *s, char out[ID_LEN + 1])
{
    if (!s || !id_valid(s))
        return -1;
    for (int i = 0; i <= ID_LEN; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    return 0;
}

bool id_is_nil(const char *s)
{
    return strcmp(s, ID_NIL) == 0;
}

void id_direct_hash_new(char out[DIRECT_HASH_SIZE])
{
    unsigned char raw[6];
    randombytes_buf(raw, sizeof(raw));
    memcpy(out, "direct.", 7);
    sodium_bin2hex(out + 7, 13, raw, sizeof(raw));
}

void id_request(char out[ID_LEN + 1])
{
    static uint64_t hi, counter;
    if (hi == 0) {
        randombytes_buf(&hi, sizeof(hi));
        randombytes_buf(&counter, sizeof(counter));
        hi |= 1;
    }
    uint64_t lo = ++counter;
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 layout */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}
