/* Slabs of guarded slots (see guarded.h). */
#include "guarded.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct slab {
	struct slab *next;
	uint8_t *base;
	size_t size;
};

/* A free slot keeps the link to the next one in its first bytes. */
struct free_slot {
	struct free_slot *next;
};

struct guarded {
	pthread_mutex_t mu;
	bool locked;      /* not GUARDED_ONE_THREAD: every change under mu */
	size_t page, stride, first, per_slab;
	size_t data;      /* bytes of a slot's pages */
	bool guard_each;  /* a guard page after every slot, not only the last */
	struct slab *slabs;
	struct free_slot *free;
	size_t out;  /* slots taken and not given back */
	bool closed; /* guarded_close was called: the last slot back frees all */
};

struct guarded *guarded_new(size_t first, size_t per_slab, unsigned flags)
{
	struct guarded *g;
	long page = sysconf(_SC_PAGESIZE);
	bool guard_each = (flags & GUARDED_EACH) != 0;

	if (page <= 0 || first == 0 || per_slab == 0 ||
	    (flags & ~(unsigned)(GUARDED_EACH | GUARDED_ONE_THREAD)) != 0)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		free(g);
		return NULL;
	}
	g->locked = (flags & GUARDED_ONE_THREAD) == 0;
	g->page = (size_t)page;
	g->data = (GUARDED_SLOT + g->page - 1) / g->page * g->page;
	/* The slot's pages, then (guard_each) the guard page that follows them. */
	g->guard_each = guard_each;
	g->stride = g->data + (guard_each ? g->page : 0);
	g->first = first;
	g->per_slab = per_slab;
	return g;
}

static void lock(struct guarded *g)
{
	if (g->locked)
		pthread_mutex_lock(&g->mu);
}

static void unlock(struct guarded *g)
{
	if (g->locked)
		pthread_mutex_unlock(&g->mu);
}

/* The usable bytes of slot i end where its guard page begins. */
static uint8_t *slot_at(const struct guarded *g, uint8_t *base, size_t i)
{
	return base + g->page + i * g->stride + g->data - GUARDED_SLOT;
}

/* A new slab on the free list; under lock(g).  -1 when memory is out. */
static int add_slab(struct guarded *g)
{
	size_t n = g->slabs == NULL ? g->first : g->per_slab;
	struct slab *s = calloc(1, sizeof(*s));
	size_t i;

	if (s == NULL)
		return -1;
	s->size = g->page + n * g->stride + (g->guard_each ? 0 : g->page);
	s->base = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->base == MAP_FAILED) {
		free(s);
		return -1;
	}
#ifdef MADV_DONTDUMP
	(void)madvise(s->base, s->size, MADV_DONTDUMP);
#endif
	/*
	 * The guard page before the first slot, then one after each slot or
	 * after the last.  Locking is best effort, as sodium_mlock's:
	 * RLIMIT_MEMLOCK may say no.
	 */
	if (mprotect(s->base, g->page, PROT_NONE) != 0)
		goto fail;
	if (!g->guard_each) {
		if (mprotect(s->base + s->size - g->page, g->page, PROT_NONE) != 0)
			goto fail;
		(void)mlock(s->base + g->page, n * g->data);
	}
	for (i = 0; g->guard_each && i < n; i++) {
		uint8_t *pages = s->base + g->page + i * g->stride;

		if (mprotect(pages + g->data, g->page, PROT_NONE) != 0)
			goto fail;
		(void)mlock(pages, g->data);
	}
	for (i = n; i-- > 0;) {
		struct free_slot *f = (struct free_slot *)(void *)slot_at(g, s->base, i);

		f->next = g->free;
		g->free = f;
	}
	s->next = g->slabs;
	g->slabs = s;
	return 0;
fail:
	(void)munmap(s->base, s->size);
	free(s);
	return -1;
}

/* Unmap everything; the slots are all back, and so all zero. */
static void destroy(struct guarded *g)
{
	while (g->slabs != NULL) {
		struct slab *next = g->slabs->next;

		(void)munmap(g->slabs->base, g->slabs->size);
		free(g->slabs);
		g->slabs = next;
	}
	pthread_mutex_destroy(&g->mu);
	free(g);
}

uint8_t *guarded_take(struct guarded *g)
{
	struct free_slot *f = NULL;

	lock(g);
	if (!g->closed && (g->free != NULL || add_slab(g) == 0)) {
		f = g->free;
		g->free = f->next;
		f->next = NULL; /* the whole slot is zero again */
		g->out++;
	}
	unlock(g);
	return (uint8_t *)f;
}

void guarded_give(struct guarded *g, uint8_t *slot)
{
	struct free_slot *f = (struct free_slot *)(void *)slot;
	bool last;

	if (slot == NULL)
		return;
	lock(g);
	f->next = g->free;
	g->free = f;
	g->out--;
	last = g->closed && g->out == 0;
	unlock(g);
	if (last)
		destroy(g);
}

size_t guarded_out(struct guarded *g)
{
	size_t n;

	lock(g);
	n = g->out;
	unlock(g);
	return n;
}

void guarded_close(struct guarded *g)
{
	bool now;

	if (g == NULL)
		return;
	lock(g);
	g->closed = true;
	now = g->out == 0;
	unlock(g);
	if (now)
		destroy(g);
}
