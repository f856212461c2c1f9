/*
 * guarded.c: slots come zeroed and distinct, across slabs; a write just
 * past a slot's end or just before its start faults (a real guard page,
 * seen from a child process); slots out when the pool closes stay usable
 * until given back, on any thread.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "guarded.h"

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void test_zeroed_and_reused(void **state)
{
	struct guarded *g = guarded_new(2, 4, GUARDED_EACH);
	uint8_t *a, *b;

	(void)state;
	assert_non_null(g);
	a = guarded_take(g);
	assert_non_null(a);
	assert_true(all_zero(a, GUARDED_SLOT));
	memset(a, 0x5a, GUARDED_SLOT);
	memset(a, 0, GUARDED_SLOT); /* the caller wipes what it wrote */
	guarded_give(g, a);
	b = guarded_take(g);
	assert_ptr_equal(b, a); /* the last one given back comes first */
	assert_true(all_zero(b, GUARDED_SLOT)); /* the free list's link is gone too */
	assert_int_equal(guarded_out(g), 1);
	guarded_give(g, b);
	assert_int_equal(guarded_out(g), 0);
	guarded_close(g);
}

/* More than several slabs' worth: distinct, whole, writable, all given back. */
static void many(unsigned flags)
{
	struct guarded *g = guarded_new(3, 16, flags);
	static uint8_t *s[200];

	assert_non_null(g);
	for (size_t i = 0; i < 200; i++) {
		s[i] = guarded_take(g);
		assert_non_null(s[i]);
		assert_true(all_zero(s[i], GUARDED_SLOT));
		memset(s[i], (int)(i & 0xff) | 1, GUARDED_SLOT);
	}
	for (size_t i = 0; i < 200; i++) {
		for (size_t j = 0; j < GUARDED_SLOT; j += 511)
			assert_int_equal(s[i][j], (uint8_t)((i & 0xff) | 1));
		memset(s[i], 0, GUARDED_SLOT);
	}
	assert_int_equal(guarded_out(g), 200);
	for (size_t i = 0; i < 200; i++)
		guarded_give(g, s[i]);
	assert_int_equal(guarded_out(g), 0);
	guarded_close(g);
}

static void test_many(void **state)
{
	(void)state;
	many(GUARDED_EACH);
	many(0);
	many(GUARDED_ONE_THREAD); /* the connection buffers' pool: the same, unlocked */
	many(GUARDED_EACH | GUARDED_ONE_THREAD);
	/* A flag it does not know is refused, not ignored. */
	assert_null(guarded_new(3, 16, 1u << 5));
}

/* A child writes at p: true when it died of SIGSEGV. */
static bool write_faults(volatile uint8_t *p)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka catches SIGSEGV: the child must die of it */
		signal(SIGSEGV, SIG_DFL);
		*p = 1;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

static void test_guard_pages(void **state)
{
	struct guarded *g = guarded_new(4, 4, GUARDED_EACH);
	uint8_t *s[6];

	(void)state;
	assert_non_null(g);
	for (size_t i = 0; i < 6; i++) /* across two slabs */
		s[i] = guarded_take(g);
	for (size_t i = 0; i < 6; i++) {
		assert_non_null(s[i]);
		assert_false(write_faults(s[i]));
		assert_false(write_faults(s[i] + GUARDED_SLOT - 1));
		assert_true(write_faults(s[i] + GUARDED_SLOT)); /* a value's overrun */
	}
	/* The first slot of a slab has a guard page before it too. */
	assert_true(write_faults(s[0] - 1));
	for (size_t i = 0; i < 6; i++)
		guarded_give(g, s[i]);
	guarded_close(g);
}

/* Shared guards: the slab's slots are contiguous, guarded at both ends. */
static void test_slab_guards(void **state)
{
	struct guarded *g = guarded_new(4, 4, 0);
	uint8_t *s[4];

	(void)state;
	assert_non_null(g);
	for (size_t i = 0; i < 4; i++) {
		s[i] = guarded_take(g);
		assert_non_null(s[i]);
	}
	for (size_t i = 0; i + 1 < 4; i++)
		assert_ptr_equal(s[i] + GUARDED_SLOT, s[i + 1]);
	assert_false(write_faults(s[3] + GUARDED_SLOT - 1));
	assert_true(write_faults(s[3] + GUARDED_SLOT));
	assert_true(write_faults(s[0] - 1));
	for (size_t i = 0; i < 4; i++)
		guarded_give(g, s[i]);
	guarded_close(g);
}

static void *give_back(void *arg)
{
	void **a = arg;

	guarded_give(a[0], a[1]);
	return NULL;
}

/* Closed with a slot out: the slot stays usable and comes back on a thread. */
static void test_close_with_slot_out(void **state)
{
	struct guarded *g = guarded_new(1, 1, 0);
	uint8_t *slot;
	pthread_t t;
	void *arg[2];

	(void)state;
	assert_non_null(g);
	slot = guarded_take(g);
	assert_non_null(slot);
	guarded_close(g);
	memset(slot, 0x77, GUARDED_SLOT); /* still mapped */
	memset(slot, 0, GUARDED_SLOT);
	arg[0] = g;
	arg[1] = slot;
	assert_int_equal(pthread_create(&t, NULL, give_back, arg), 0);
	assert_int_equal(pthread_join(t, NULL), 0); /* the pool is gone now (ASan: no leak) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zeroed_and_reused),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_guard_pages),
		cmocka_unit_test(test_slab_guards),
		cmocka_unit_test(test_close_with_slot_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
