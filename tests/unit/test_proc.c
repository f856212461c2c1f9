/*
 * proc_stat_parse and the status scanner against stat and status texts as
 * the kernel writes them, against a comm chosen to mislead a parser (stat
 * prints it unescaped), against broken files, and against this process's
 * own /proc files.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc_parse.h"

/* What the kernel printed for `cat /proc/self/stat`, some fields after 22 left out. */
#define STAT_TAIL " R 17876 17876 25550 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 8147323 " \
		  "3133440 376 18446744073709551615 94075525095424 0 17 1 0 0 0 0 0\n"

static int parse_stat(const char *text, struct proc_stat *st)
{
	return proc_stat_parse(text, strlen(text), st);
}

static void test_stat_plain(void **state)
{
	struct proc_stat st;

	(void)state;
	assert_int_equal(parse_stat("17878 (cat)" STAT_TAIL, &st), 0);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.flags, 4194304UL);
	assert_int_equal(st.start, 8147323ULL);
	/* Numbers up to the very top of the range, and not one past it. */
	assert_int_equal(parse_stat("1 (x) S 1 2 3 4 5 0 7 8 9 10 11 12 13 14 15 16 17 18 "
				    "18446744073709551615", &st), 0);
	assert_true(st.start == ~0ULL);
	assert_int_equal(parse_stat("1 (x) S 1 2 3 4 5 0 7 8 9 10 11 12 13 14 15 16 17 18 "
				    "18446744073709551616", &st), -EPROTO);
}

/* comm may hold ')', spaces, digits and newlines: only the last ')' counts. */
static void test_stat_hostile_comm(void **state)
{
	struct proc_stat st;

	(void)state;
	assert_int_equal(parse_stat("9 (a) Z 1 1 1 0 -1 4 0 0 0 0 0 0 0 0 0 0 1 0 1 x)" STAT_TAIL, &st),
			 0);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.start, 8147323ULL);
	assert_int_equal(parse_stat("9 (\n) X\n)" STAT_TAIL, &st), 0);
	assert_int_equal(st.state, 'R');
	assert_int_equal(parse_stat("9 ())))" STAT_TAIL, &st), 0);
	assert_int_equal(st.flags, 4194304UL);
}

static void test_stat_broken(void **state)
{
	struct proc_stat st;
	static const char *const bad[] = {
		"",
		"17878 cat R 1 2 3",                      /* no ')' at all */
		"17878 (cat)",                            /* nothing after comm */
		"17878 (cat) R 1 2 3 4 5 6",              /* no start time */
		"17878 (cat)  R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19", /* two spaces */
		"17878 (cat) RS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19", /* a state of two bytes */
		"17878 (cat) R 1 2 3 4 5 -1 7 8 9 10 11 12 13 14 15 16 17 18 19", /* flags negative */
		"17878 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999999999999999999",
		"17878 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1x",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_stat(bad[i], &st), -EPROTO);
	/* The length is honoured: the same text cut before the start time. */
	assert_int_equal(proc_stat_parse("17878 (cat)" STAT_TAIL, 60, &st), -EPROTO);
	/* ... and cut inside the start time, which then ends where the text does. */
	assert_int_equal(proc_stat_parse("17878 (cat)" STAT_TAIL,
					 (size_t)(strstr("17878 (cat)" STAT_TAIL, "8147323") -
						  ("17878 (cat)" STAT_TAIL)) + 3, &st), 0);
	assert_int_equal(st.start, 814ULL);
}

#define STATUS_HEAD "Name:\tgrep\nUmask:\t0022\nState:\tR (running)\nTgid:\t17879\n" \
		    "Groups:\t0 1 2 3 4 5 6 7 8 9 10\n"

/* Scan text cut into chunks of `step` bytes; the result. */
static struct proc_status_scan scan_in_steps(const char *text, size_t step)
{
	struct proc_status_scan s;
	size_t len = strlen(text);

	proc_status_init(&s);
	for (size_t off = 0; off < len; off += step)
		if (proc_status_feed(&s, text + off, len - off < step ? len - off : step))
			break;
	return s;
}

static void expect_status(const char *text, int nspid, char st)
{
	for (size_t step = 1; step <= strlen(text) + 1; step++) {
		struct proc_status_scan s = scan_in_steps(text, step);

		assert_int_equal(s.nspid, nspid);
		assert_int_equal(s.state, st);
	}
}

static void test_status(void **state)
{
	(void)state;
	expect_status(STATUS_HEAD "NSpid:\t17879\nVmPeak:\t1 kB\n", 1, 'R');
	expect_status(STATUS_HEAD "NSpid:\t4242\t17\t1\n", 3, 'R');
	expect_status("Name:\tx\nState:\tZ (zombie)\nNSpid:\t7 1\n", 2, 'Z');
	/* Lines after NSpid are not read: a later State does not count. */
	expect_status("State:\tS (sleeping)\nNSpid:\t7\nState:\tZ (zombie)\n", 1, 'S');
	/* No NSpid line (a kernel before 4.1), or one never ended by a newline. */
	expect_status(STATUS_HEAD, -ENOENT, 'R');
	expect_status(STATUS_HEAD "NSpid:\t7", -ENOENT, 'R');
	expect_status(STATUS_HEAD "NSpid:\t7 x\n", -EPROTO, 'R');
	expect_status(STATUS_HEAD "NSpid:\t\n", -EPROTO, 'R');
	/* Name is escaped by the kernel, so "State:" can only begin a line of its own. */
	expect_status("Name:\tState:\tZ\nState:\tR (running)\nNSpid:\t7\n", 1, 'R');
}

static void test_status_long_lines(void **state)
{
	static char text[8192];
	size_t n, start;

	(void)state;
	/* A Groups line far longer than a line buffer is passed over. */
	n = (size_t)snprintf(text, sizeof(text), "State:\tS (sleeping)\nGroups:");
	while (n < 4000)
		n += (size_t)snprintf(text + n, sizeof(text) - n, " %zu", n);
	snprintf(text + n, sizeof(text) - n, "\nNSpid:\t5\t1\n");
	expect_status(text, 2, 'S');
	/* An NSpid line longer than any the kernel writes is refused. */
	n = (size_t)snprintf(text, sizeof(text), "State:\tS (sleeping)\n");
	start = n;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "NSpid:");
	while (n - start <= PROC_STATUS_LINE_MAX)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "\t1");
	snprintf(text + n, sizeof(text) - n, "\n");
	expect_status(text, -EFBIG, 'S');
	/* One byte too long (513), and exactly as long as the buffer (512). */
	n = start + (size_t)snprintf(text + start, sizeof(text) - start, "NSpid:");
	while (n - start + 2 <= PROC_STATUS_LINE_MAX)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "\t1");
	snprintf(text + n, sizeof(text) - n, "1\n");
	assert_int_equal(strlen(text + start), PROC_STATUS_LINE_MAX + 2);
	expect_status(text, -EFBIG, 'S');
	n = start + (size_t)snprintf(text + start, sizeof(text) - start, "NSpid:");
	while (n - start + 2 <= PROC_STATUS_LINE_MAX)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "\t1");
	snprintf(text + n, sizeof(text) - n, "\n");
	expect_status(text, (int)(PROC_STATUS_LINE_MAX - 6) / 2, 'S');
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap);
	assert_true(n > 0 && (size_t)n < cap);
	close(fd);
	return (size_t)n;
}

/* This process's own files, with a comm made to look like more fields. */
static void test_own_files(void **state)
{
	char buf[16384];
	struct proc_stat st;
	struct proc_status_scan s;
	size_t n;

	(void)state;
	assert_int_equal(prctl(PR_SET_NAME, "t) Z 1 (x", 0, 0, 0), 0);
	n = read_file("/proc/self/stat", buf, sizeof(buf));
	assert_int_equal(proc_stat_parse(buf, n, &st), 0);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.flags & 0x4UL, 0); /* PF_EXITING */
	assert_true(st.start > 0);
	n = read_file("/proc/self/status", buf, sizeof(buf));
	proc_status_init(&s);
	assert_true(proc_status_feed(&s, buf, n));
	assert_int_equal(s.state, 'R');
	assert_true(s.nspid >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_plain),
		cmocka_unit_test(test_stat_hostile_comm),
		cmocka_unit_test(test_stat_broken),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_status_long_lines),
		cmocka_unit_test(test_own_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
