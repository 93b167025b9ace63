/* Allocation helpers that abort on failure (the project's rule: allocation failure is fatal). */
#ifndef CONFERENCED_MEM_H
#define CONFERENCED_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Any thread. Never returns NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* Any thread. Copies s (NULL gives NULL). */
char *xstrdup(const char *s);
/* Any thread. Copies at most n bytes of s and terminates the copy. */
char *xstrndup(const char *s, size_t n);
/* Any thread. Copies src into dst of size cap, always terminated; returns -1 if truncated. */
int str_copy(char *dst, size_t cap, const char *src);
/* Any thread. Reads a decimal number of at most max: digits only (no sign, no spaces, nothing
 * after). Returns 0, or -1 (out untouched). */
int str_to_u64(const char *s, uint64_t max, uint64_t *out);

#endif
