/*
 * Guarded memory for connection buffers, which may hold secret values.
 *
 * Small buffers are guarded slots (guarded.h: locked, each between guard
 * pages, wiped when returned, carved out of slabs), because a sodium_malloc
 * of its own costs each buffer several system calls, four memory mappings
 * and two resident pages.  Large buffers get their own sodium_malloc, within a
 * budget, so that clients announcing large frames cannot grow the broker
 * without bound.  Single-threaded.
 */
#ifndef SECRETD_BUFFERS_H
#define SECRETD_BUFFERS_H

#include <stddef.h>
#include <stdint.h>

#define BUFFERS_SMALL 4096
/*
 * Large buffers in all; requests may not take the last BUFFERS_REPLY_RESERVE
 * of it, so that answers always find room; and each identity holds at most
 * BUFFERS_SHARE of each kind (less for requests when many identities hold
 * some: limits.c).
 */
#define BUFFERS_BUDGET (32u * 1024 * 1024)
#define BUFFERS_REPLY_RESERVE (8u * 1024 * 1024)
#define BUFFERS_SHARE (4u * 1024 * 1024)

enum buffers_kind { BUFFERS_REQUEST, BUFFERS_REPLY };

struct buffers;

struct buffers *buffers_new(size_t budget, size_t reply_reserve);
/* Frees every slab: only when no buffer is in use any more. */
void buffers_free(struct buffers *b);

/*
 * A buffer of at least *cap bytes; *cap gets its real size (BUFFERS_SMALL
 * for small requests).  NULL when memory or the large-buffer budget is out.
 */
uint8_t *buffers_get(struct buffers *b, size_t *cap, enum buffers_kind kind);

/* Wipe and give back a buffer of cap bytes (NULL is fine). */
void buffers_put(struct buffers *b, uint8_t *buf, size_t cap);
/*
 * The same for a buffer of which only the first dirty bytes can be other
 * than zero (the rest were never written, or were wiped already): only
 * those are wiped.
 */
void buffers_put_dirty(struct buffers *b, uint8_t *buf, size_t cap, size_t dirty);

#endif
