/* Slabs of guarded memory for small buffers, a budget for large ones. */
#include "buffers.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define SLAB_BUFFERS 64
/*
 * The first slab is small: an idle broker (a few connections at a time)
 * then keeps 36 KiB locked instead of 260 KiB; busy ones add full slabs.
 */
#define SLAB_FIRST 8

struct slab {
	struct slab *next;
	uint8_t *mem; /* sodium_malloc'd, SLAB_FIRST or SLAB_BUFFERS * BUFFERS_SMALL bytes */
};

/* A free small buffer keeps the link to the next one in its first bytes. */
struct free_buf {
	struct free_buf *next;
};

struct buffers {
	struct slab *slabs;
	struct free_buf *free;
	size_t big_budget, reserve, big_bytes;
};

struct buffers *buffers_new(size_t budget, size_t reply_reserve)
{
	struct buffers *b = calloc(1, sizeof(*b));

	if (b != NULL) {
		b->big_budget = budget;
		b->reserve = reply_reserve < budget ? reply_reserve : budget;
	}
	return b;
}

void buffers_free(struct buffers *b)
{
	if (b == NULL)
		return;
	while (b->slabs != NULL) {
		struct slab *next = b->slabs->next;
		sodium_free(b->slabs->mem);
		free(b->slabs);
		b->slabs = next;
	}
	free(b);
}

static int add_slab(struct buffers *b)
{
	struct slab *slab = calloc(1, sizeof(*slab));
	size_t n = b->slabs == NULL ? SLAB_FIRST : SLAB_BUFFERS;

	if (slab == NULL)
		return -1;
	slab->mem = sodium_malloc(n * BUFFERS_SMALL);
	if (slab->mem == NULL) {
		free(slab);
		return -1;
	}
	sodium_memzero(slab->mem, n * BUFFERS_SMALL);
	for (size_t i = 0; i < n; i++) {
		struct free_buf *f = (struct free_buf *)(void *)(slab->mem + i * BUFFERS_SMALL);
		f->next = b->free;
		b->free = f;
	}
	slab->next = b->slabs;
	b->slabs = slab;
	return 0;
}

uint8_t *buffers_get(struct buffers *b, size_t *cap, enum buffers_kind kind)
{
	size_t limit = kind == BUFFERS_REPLY ? b->big_budget : b->big_budget - b->reserve;
	uint8_t *buf;

	if (*cap <= BUFFERS_SMALL) {
		struct free_buf *f;

		if (b->free == NULL && add_slab(b) != 0)
			return NULL;
		f = b->free;
		b->free = f->next;
		f->next = NULL;
		*cap = BUFFERS_SMALL;
		return (uint8_t *)f;
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
		struct free_buf *f = (struct free_buf *)(void *)buf;

		/* the link below overwrites the first bytes, which are zero then */
		sodium_memzero(buf, dirty < cap ? dirty : cap);
		f->next = b->free;
		b->free = f;
		return;
	}
	b->big_bytes -= cap;
	sodium_free(buf); /* wipes */
}
