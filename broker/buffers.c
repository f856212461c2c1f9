/* Guarded slots (guarded.c) for small buffers, a budget for large ones. */
#include "buffers.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "guarded.h"

#define SLAB_BUFFERS 64
/*
 * The first slab is small: an idle broker (a few connections at a time)
 * then keeps 8 pages locked instead of 64; busy ones add full slabs.
 */
#define SLAB_FIRST 8

_Static_assert(BUFFERS_SMALL == GUARDED_SLOT, "a small buffer is one guarded slot");

struct buffers {
	struct guarded *small;
	size_t big_budget, reserve, big_bytes;
};

struct buffers *buffers_new(size_t budget, size_t reply_reserve)
{
	struct buffers *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->small = guarded_new(SLAB_FIRST, SLAB_BUFFERS, GUARDED_ONE_THREAD);
	if (b->small == NULL) {
		free(b);
		return NULL;
	}
	b->big_budget = budget;
	b->reserve = reply_reserve < budget ? reply_reserve : budget;
	return b;
}

void buffers_free(struct buffers *b)
{
	if (b == NULL)
		return;
	guarded_close(b->small);
	free(b);
}

uint8_t *buffers_get(struct buffers *b, size_t *cap, enum buffers_kind kind)
{
	size_t limit = kind == BUFFERS_REPLY ? b->big_budget : b->big_budget - b->reserve;
	uint8_t *buf;

	if (*cap <= BUFFERS_SMALL) {
		buf = guarded_take(b->small);
		if (buf != NULL)
			*cap = BUFFERS_SMALL;
		return buf;
	}
	if (b->big_bytes > limit || *cap > limit - b->big_bytes)
		return NULL;
	buf = sodium_malloc(*cap);
	if (buf != NULL)
		b->big_bytes += *cap;
	return buf;
}

void buffers_put(struct buffers *b, uint8_t *buf, size_t cap)
{
	buffers_put_dirty(b, buf, cap, cap);
}

void buffers_put_dirty(struct buffers *b, uint8_t *buf, size_t cap, size_t dirty)
{
	if (buf == NULL)
		return;
	if (cap == BUFFERS_SMALL) {
		sodium_memzero(buf, dirty < cap ? dirty : cap);
		guarded_give(b->small, buf);
		return;
	}
	b->big_bytes -= cap;
	sodium_free(buf); /* wipes */
}
