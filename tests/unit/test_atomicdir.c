/*
 * The sidecar's writer (client/atomicdir.c) under churn: hundreds of set
 * switches while readers loop over the files.  A reader that resolves
 * DIR/..data once and reads every file relative to it must always see one
 * whole set (same generation in every file, each file complete); a reader
 * of DIR/FILE paths must always see a complete, non-empty file.  Afterwards
 * the directory holds exactly the layout: ..data, one set directory, the
 * FILE links, nothing else (old sets do not pile up).  A failed update
 * leaves the old set in place.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "atomicdir.h"

#define NFILES 3
#define ROTATIONS 400
#define MAXLEN 9000

static const char *const names[NFILES] = { "a", "b", "c" };
static char dir[256];
static int dirfd_;

/* Generation g of file k: a header, a filler whose length varies, a trailer. */
static size_t content(uint32_t g, int k, char *buf)
{
	size_t len = 64 + ((size_t)g * 37 + (size_t)k * 1013) % (MAXLEN - 128);
	int h = snprintf(buf, len, "gen=%08u file=%d len=%05zu\n", (unsigned)g, k, len);

	memset(buf + h, 'x', len - (size_t)h - 4);
	memcpy(buf + len - 4, "end\n", 4);
	return len;
}

/* The generation of a complete file, or -1 if it is not one. */
static long check(const char *buf, size_t n, int k)
{
	unsigned g;
	int fk;
	size_t len;

	if (n < 64 || sscanf(buf, "gen=%8u file=%d len=%5zu\n", &g, &fk, &len) != 3)
		return -1;
	if (fk != k || len != n || memcmp(buf + n - 4, "end\n", 4) != 0)
		return -1;
	return (long)g;
}

static ssize_t read_file(int at, const char *name, char *buf)
{
	int fd = openat(at, name, O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + got, MAXLEN + 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	return n < 0 ? -errno : got;
}

static void update(uint32_t g)
{
	static char bufs[NFILES][MAXLEN];
	struct adir_file files[NFILES];
	struct afile_attrs attrs = { .mode = 0440 };
	struct adir_error err;

	for (int k = 0; k < NFILES; k++) {
		files[k].file = names[k];
		files[k].value = (const uint8_t *)bufs[k];
		files[k].len = content(g, k, bufs[k]);
	}
	assert_int_equal(adir_update(dirfd_, files, NFILES, &attrs, &err), 0);
}

/* Reader of whole sets through ..data; exits 0 if every set was whole. */
static void set_reader(void)
{
	char buf[MAXLEN + 1];
	long last = 0, sets = 0, retries = 0;

	for (;;) {
		int dfd = openat(dirfd_, "..data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		long gen = -1;
		bool gone = false;

		/* ..data named a set removed just after the switch: start over. */
		if (dfd < 0 && errno == ENOENT) {
			retries++;
			continue;
		}
		if (dfd < 0) {
			fprintf(stderr, "reader: ..data: %s\n", strerror(errno));
			_exit(2);
		}
		for (int k = 0; k < NFILES && !gone; k++) {
			ssize_t n = read_file(dfd, names[k], buf);
			long g;

			/* The set was replaced and its directory removed: start over. */
			if (n == -ENOENT) {
				gone = true;
				break;
			}
			g = n > 0 ? check(buf, (size_t)n, k) : -1;
			if (g < 0 || (gen >= 0 && g != gen) || g < last) {
				fprintf(stderr, "reader: bad set: file %d gen %ld (set %ld, last %ld, %zd bytes)\n",
					k, g, gen, last, n);
				_exit(3);
			}
			gen = g;
		}
		close(dfd);
		if (gone) {
			retries++;
			continue;
		}
		last = gen;
		sets++;
		if (gen == ROTATIONS) {
			fprintf(stderr, "# set reader: %ld whole sets, %ld restarts\n", sets, retries);
			_exit(sets > 10 ? 0 : 4);
		}
	}
}

/* Reader of DIR/FILE paths: every file complete and never empty. */
static void path_reader(void)
{
	char buf[MAXLEN + 1];
	long reads = 0;

	for (;;) {
		for (int k = 0; k < NFILES; k++) {
			ssize_t n = read_file(dirfd_, names[k], buf);
			long g;

			if (n == -ENOENT)
				continue; /* resolved through a set just removed: read again */
			g = n > 0 ? check(buf, (size_t)n, k) : -1;
			if (g < 0) {
				fprintf(stderr, "path reader: file %d: partial or empty (%zd)\n", k, n);
				_exit(3);
			}
			reads++;
			if (g == ROTATIONS) {
				fprintf(stderr, "# path reader: %ld whole files\n", reads);
				_exit(reads > 10 ? 0 : 4);
			}
		}
	}
}

static pid_t start(void (*fn)(void))
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(100);
		fn();
	}
	return pid;
}

static int setup(void **state)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	(void)state;
	if (sodium_init() < 0)
		return -1;
	snprintf(dir, sizeof(dir), "%s/test_atomicdir.XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		return -1;
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dirfd_ >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	close(dirfd_);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The names in dir, sorted into one line. */
static void listing(char *out, size_t cap)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);

	assert_true(n >= 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(list[i]->d_name, ".") != 0 && strcmp(list[i]->d_name, "..") != 0) {
			const char *shown = adir_is_setdir(list[i]->d_name) ? "SET" : list[i]->d_name;
			strncat(out, shown, cap - strlen(out) - 2);
			strncat(out, " ", cap - strlen(out) - 1);
		}
		free(list[i]);
	}
	free(list);
}

static void test_layout(void **state)
{
	char link[300], want[64], list[512];
	struct stat st;
	ssize_t n;
	unsigned y, mo, d, h, mi, s, r;

	(void)state;
	update(0);
	listing(list, sizeof(list));
	assert_string_equal(list, "SET ..data a b c ");
	for (int k = 0; k < NFILES; k++) {
		n = readlinkat(dirfd_, names[k], link, sizeof(link) - 1);
		assert_true(n > 0);
		link[n] = '\0';
		snprintf(want, sizeof(want), "..data/%s", names[k]);
		assert_string_equal(link, want);
		assert_int_equal(fstatat(dirfd_, names[k], &st, 0), 0);
		assert_int_equal(st.st_mode & 07777, 0440);
	}
	n = readlinkat(dirfd_, "..data", link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	/* ..YYYY_MM_DD_HH_MM_SS.N, as kubelet names them */
	assert_int_equal(sscanf(link, "..%4u_%2u_%2u_%2u_%2u_%2u.%u", &y, &mo, &d, &h, &mi, &s, &r), 7);
	assert_true(y >= 2024 && mo >= 1 && mo <= 12);
	assert_int_equal(fstatat(dirfd_, link, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
}

static void test_churn(void **state)
{
	pid_t readers[2];
	char list[512];
	int status;

	(void)state;
	update(0);
	readers[0] = start(set_reader);
	readers[1] = start(path_reader);
	for (uint32_t g = 1; g <= ROTATIONS; g++)
		update(g);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(waitpid(readers[i], &status, 0), readers[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* older sets removed; the one just replaced stays for readers on their way */
	listing(list, sizeof(list));
	assert_string_equal(list, "SET SET ..data a b c ");
	adir_sweep(dirfd_);
	listing(list, sizeof(list));
	assert_string_equal(list, "SET ..data a b c ");
}

/* A set that cannot be written leaves the one in place as it was. */
static void test_failed_update(void **state)
{
	char too_long[300], before[300], after[300], list[512], buf[MAXLEN + 1];
	struct adir_file files[2] = { { "a", (const uint8_t *)"new", 3 },
				      { too_long, (const uint8_t *)"x", 1 } };
	struct afile_attrs attrs = { .mode = 0400 };
	struct adir_error err;
	ssize_t n;

	(void)state;
	update(7);
	memset(too_long, 'z', 256);
	too_long[256] = '\0';
	n = readlinkat(dirfd_, "..data", before, sizeof(before) - 1);
	assert_true(n > 0);
	before[n] = '\0';
	assert_true(adir_update(dirfd_, files, 2, &attrs, &err) < 0);
	assert_non_null(err.failed);
	n = readlinkat(dirfd_, "..data", after, sizeof(after) - 1);
	assert_true(n > 0);
	after[n] = '\0';
	assert_string_equal(before, after);
	n = read_file(dirfd_, "a", buf);
	assert_true(n > 0);
	assert_int_equal(check(buf, (size_t)n, 0), 7);
	listing(list, sizeof(list));
	assert_string_equal(list, "SET ..data a b c ");
}

/* A set directory a killed run left behind is removed by the next switch. */
static void test_stale_sets_removed(void **state)
{
	char list[512];

	(void)state;
	update(1);
	assert_int_equal(mkdirat(dirfd_, "..2020_01_01_00_00_00.1", 0755), 0);
	assert_int_equal(symlinkat("nowhere", dirfd_, "..data_tmp"), 0);
	update(2);
	/* the stale one is gone at the switch; the set of update(1) waits for the sweep */
	listing(list, sizeof(list));
	assert_string_equal(list, "SET SET ..data a b c ");
	adir_sweep(dirfd_);
	listing(list, sizeof(list));
	assert_string_equal(list, "SET ..data a b c ");
}

/*
 * A reader that resolved ..data to the old set just before the switch
 * still finds every file in it, until the sweep.
 */
static void test_replaced_set_readable(void **state)
{
	char old[300], path[400], buf[MAXLEN + 1];
	ssize_t n;
	int fd;

	(void)state;
	update(1);
	n = readlinkat(dirfd_, "..data", old, sizeof(old) - 1);
	assert_true(n > 0);
	old[n] = '\0';
	update(2);
	snprintf(path, sizeof(path), "%s/a", old);
	fd = openat(dirfd_, path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_int_equal(check(buf, (size_t)n, 0), 1);
	adir_sweep(dirfd_);
	assert_true(openat(dirfd_, path, O_RDONLY | O_CLOEXEC) < 0);
	assert_int_equal(errno, ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_set_readable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_churn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_sets_removed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
