#include "core/ids.h"

#include <ctype.h>
#include <sodium.h>
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
