/*
 * notify: READY=1 and STOPPING=1 reach a datagram socket named by
 * NOTIFY_SOCKET (a path, and an abstract "@" name), the variable is removed,
 * bad values are refused and no variable means no-op; socket activation
 * takes a listening AF_UNIX stream socket from fd 3 (or the one named among
 * several), refuses datagram, unlistening and TCP sockets, ignores
 * variables meant for another pid, and always unsets LISTEN_*.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"

static char dir[64];

static void expect_datagram(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_notify_path(void **state)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct notify n;
	char err[256];
	int srv = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	(void)state;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/notify", dir);
	assert_int_equal(bind(srv, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", un.sun_path, 1), 0);
	assert_int_equal(notify_open(&n, err, sizeof(err)), 0);
	assert_true(n.fd >= 0);
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_int_equal(notify_send(&n, "READY=1"), 0);
	assert_int_equal(notify_send(&n, "STOPPING=1"), 0);
	expect_datagram(srv, "READY=1");
	expect_datagram(srv, "STOPPING=1");
	/* The manager went away: an error, never a crash or a block. */
	close(srv);
	unlink(un.sun_path);
	assert_int_not_equal(notify_send(&n, "STATUS=x"), 0);
	notify_close(&n);
	assert_int_equal(n.fd, -1);
}

static void test_notify_abstract(void **state)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char name[64], err[256];
	struct notify n;
	socklen_t len;
	int srv = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	(void)state;
	snprintf(name, sizeof(name), "@secretd-test-notify-%d", (int)getpid());
	memcpy(un.sun_path, name, strlen(name));
	un.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	assert_int_equal(bind(srv, (struct sockaddr *)&un, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	assert_int_equal(notify_open(&n, err, sizeof(err)), 0);
	assert_int_equal(notify_send(&n, "READY=1"), 0);
	expect_datagram(srv, "READY=1");
	notify_close(&n);
	close(srv);
}

static void test_notify_absent_and_bad(void **state)
{
	struct notify n;
	char err[256] = "";

	(void)state;
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	assert_int_equal(notify_open(&n, err, sizeof(err)), 0);
	assert_int_equal(n.fd, -1);
	assert_int_equal(notify_send(&n, "READY=1"), 0); /* no-op */
	for (const char *bad = "relative/path"; bad != NULL; bad = bad[0] == 'r' ? "@" : NULL) {
		assert_int_equal(setenv("NOTIFY_SOCKET", bad, 1), 0);
		assert_int_equal(notify_open(&n, err, sizeof(err)), -EINVAL);
		assert_int_equal(n.fd, -1);
		assert_non_null(strstr(err, "NOTIFY_SOCKET"));
		assert_null(getenv("NOTIFY_SOCKET"));
	}
	assert_int_equal(setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1), 0);
	assert_int_equal(notify_open(&n, err, sizeof(err)), -ENOENT);
	assert_int_equal(n.fd, -1);
}

/* ---- socket activation ------------------------------------------- */

static int unix_listener(const char *leaf, int type, int listening)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type, 0);

	assert_true(fd >= 0);
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/%s", dir, leaf);
	unlink(un.sun_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	if (listening)
		assert_int_equal(listen(fd, 8), 0);
	return fd;
}

/* Put FD at TARGET (3, 4, ...) as systemd would, without close-on-exec. */
static void place(int fd, int target)
{
	if (fd == target) {
		assert_int_equal(fcntl(fd, F_SETFD, 0), 0);
		return;
	}
	assert_int_equal(dup2(fd, target), target);
	close(fd);
}

static void set_listen(const char *pid, const char *fds, const char *names)
{
	char mine[32];

	snprintf(mine, sizeof(mine), "%d", (int)getpid());
	assert_int_equal(setenv("LISTEN_PID", pid != NULL ? pid : mine, 1), 0);
	assert_int_equal(setenv("LISTEN_FDS", fds, 1), 0);
	if (names != NULL)
		assert_int_equal(setenv("LISTEN_FDNAMES", names, 1), 0);
	else
		unsetenv("LISTEN_FDNAMES");
}

static void assert_unset(void)
{
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_FDNAMES"));
}

static void test_listen_one(void **state)
{
	char err[256];
	int fd = -2;

	(void)state;
	place(unix_listener("a.sock", SOCK_STREAM, 1), 3);
	set_listen(NULL, "1", "secretd");
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, 3);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_unset();
	close(fd);
	/* One socket: taken whatever its name. */
	place(unix_listener("a.sock", SOCK_STREAM, 1), 3);
	set_listen(NULL, "1", "other");
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, 3);
	close(fd);
}

static void test_listen_named(void **state)
{
	char err[256];
	int fd = -2;

	(void)state;
	place(unix_listener("x.sock", SOCK_STREAM, 1), 3);
	place(unix_listener("b.sock", SOCK_STREAM, 1), 4);
	set_listen(NULL, "2", "metrics:secretd");
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, 4);
	assert_int_equal(fcntl(3, F_GETFD), -1); /* the other one is closed */
	close(fd);
	/* Several and none (or two) named so: refused, all closed. */
	place(unix_listener("x.sock", SOCK_STREAM, 1), 3);
	place(unix_listener("b.sock", SOCK_STREAM, 1), 4);
	set_listen(NULL, "2", "secretd:secretd");
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), -EINVAL);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "2 sockets passed"));
	assert_int_equal(fcntl(3, F_GETFD), -1);
	assert_int_equal(fcntl(4, F_GETFD), -1);
	assert_unset();
}

static void test_listen_wrong_kind(void **state)
{
	char err[256];
	int fd = -2, tcp;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	(void)state;
	place(unix_listener("d.sock", SOCK_DGRAM, 0), 3);
	set_listen(NULL, "1", NULL);
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), -EPROTOTYPE);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "not a listening AF_UNIX stream socket"));

	place(unix_listener("n.sock", SOCK_STREAM, 0), 3);
	set_listen(NULL, "1", NULL);
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), -EPROTOTYPE);

	tcp = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(tcp, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(tcp, 1), 0);
	place(tcp, 3);
	set_listen(NULL, "1", NULL);
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), -EPROTOTYPE);

	place(open("/dev/null", O_RDONLY), 3);
	set_listen(NULL, "1", NULL);
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), -ENOTSOCK);
	assert_int_equal(fcntl(3, F_GETFD), -1);
}

static void test_listen_not_ours(void **state)
{
	char err[256];
	int fd = -2;

	(void)state;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, -1);
	/* Another pid's (inherited by mistake): ignored, and fd 3 left alone. */
	place(unix_listener("a.sock", SOCK_STREAM, 1), 3);
	set_listen("1", "1", NULL);
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, -1);
	assert_unset();
	assert_int_not_equal(fcntl(3, F_GETFD), -1);
	close(3);
	/* Garbage numbers. */
	for (const char *bad = "1x"; bad != NULL; bad = bad[0] == '1' ? "-1" : bad[0] == '-' ? "" : NULL) {
		set_listen(NULL, bad, NULL);
		assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), -EINVAL);
		assert_int_equal(fd, -1);
		assert_unset();
	}
	set_listen("12abc", "1", NULL);
	assert_int_equal(notify_listen_fd("secretd", &fd, err, sizeof(err)), -EINVAL);
}

static int setup(void **state)
{
	(void)state;
	/* fds 3 and 4 are the test's to use, as they are systemd's to pass;
	 * whatever the runner leaked into them (ctest does) is not ours. */
	for (int fd = 3; fd <= 4; fd++)
		(void)close(fd);
	snprintf(dir, sizeof(dir), "/tmp/test_notify.XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_path),
		cmocka_unit_test(test_notify_abstract),
		cmocka_unit_test(test_notify_absent_and_bad),
		cmocka_unit_test(test_listen_one),
		cmocka_unit_test(test_listen_named),
		cmocka_unit_test(test_listen_wrong_kind),
		cmocka_unit_test(test_listen_not_ours),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
