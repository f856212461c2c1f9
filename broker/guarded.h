/*
 * Guarded memory for everything that may hold a secret value in the clear:
 * connection buffers (buffers.c) and decrypted values (vault_read.c).
 *
 * Memory comes in slots of GUARDED_SLOT bytes.  A slab is one mapping of
 * many slots between two inaccessible guard pages, locked in memory (best
 * effort, like sodium_mlock) and left out of core dumps.  With guard_each,
 * every slot has a guard page of its own after it and ends exactly where
 * it begins, so that a write past a value placed at the end of its slot
 * faults instead of reaching a neighbour (the vault's values); that costs
 * two memory mappings a slot (the kernel's vm.max_map_count bounds them),
 * so connection buffers, which may number two a connection, share their
 * slab's guards.  One mapping a slab instead of a sodium_malloc a slot: a
 * slot costs no system call once its slab exists, and a resident page, not
 * two.
 *
 * A slot comes zeroed; whoever gives it back has wiped what it wrote.
 * Thread-safe unless made GUARDED_ONE_THREAD: the vault's values may be
 * dropped on any thread, while connection buffers live and die on the loop,
 * which then takes no lock for them (a lock and an unlock were two of every
 * get's few hundred instructions outside cryptography).  A pool closed with slots still out stays until the last one
 * comes back.  The pool knows nothing of who uses it.
 */
#ifndef SECRETD_GUARDED_H
#define SECRETD_GUARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUARDED_SLOT 4096

struct guarded;

enum guarded_flags {
	GUARDED_EACH = 1 << 0,       /* a guard page after every slot (see above) */
	GUARDED_ONE_THREAD = 1 << 1, /* only ever used on one thread: no lock */
};

/*
 * first: slots in the first slab (idle memory); then slabs of per_slab.
 * flags: guarded_flags or'ed; NULL for an unknown flag.
 */
struct guarded *guarded_new(size_t first, size_t per_slab, unsigned flags);

/* A zeroed slot of GUARDED_SLOT bytes, or NULL when memory is out. */
uint8_t *guarded_take(struct guarded *g);

/* Give a slot back, all zero again: the caller wiped what it wrote. */
void guarded_give(struct guarded *g, uint8_t *slot);

/* Slots not given back (for tests and accounting). */
size_t guarded_out(struct guarded *g);

/* Close the pool: its memory goes when the last slot out comes back. */
void guarded_close(struct guarded *g);

#endif
