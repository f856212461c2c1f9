/*
 * credential.c: systemd's LoadCredential= address "@<hex>/unit/<UNIT>/<ID>"
 * (table of addresses, systemd's unit and credential name rules), the rule
 * that decides whether a peer vouches for the unit it names, and
 * credential_detect on real sockets bound to abstract names.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "credential.h"

struct acase {
	const char *addr; /* without the leading NUL */
	size_t len;
	bool ok;
	const char *unit, *id;
	bool refused; /* a credential address whose secret name is invalid */
};

#define OK(lit, u, i) { lit, sizeof(lit) - 1, true, u, i, false }
#define REF(lit, u, i) { lit, sizeof(lit) - 1, true, u, i, true }
#define BAD(lit) { lit, sizeof(lit) - 1, false, NULL, NULL, false }

static const struct acase acases[] = {
	OK("5e6967cd5a763e79/unit/credtest.service/db", "credtest.service", "db"),
	OK("0/unit/a.service/x", "a.service", "x"),
	OK("ffffffffffffffff/unit/a.socket/x", "a.socket", "x"),
	OK("1/unit/srv-data.mount/key.pem", "srv-data.mount", "key.pem"),
	OK("1/unit/a.swap/A-Z_a.z-0.9", "a.swap", "A-Z_a.z-0.9"),
	OK("1/unit/a.b.c.service/x", "a.b.c.service", "x"),
	OK("1/unit/x.timer/...", "x.timer", "..."),
	/* valid for systemd, but '@', ':', '\\', ' ' are outside secretd's names */
	REF("1/unit/getty@tty1.service/x", "getty@tty1.service", "x"),
	REF("1/unit/a@b@c.service/x", "a@b@c.service", "x"),
	REF("1/unit/a:b.service/x", "a:b.service", "x"),
	REF("1/unit/a\\x2db.service/x", "a\\x2db.service", "x"),
	REF("1/unit/a.service/has space", "a.service", "has space"),
	REF("1/unit/a.service/tilde~", "a.service", "tilde~"),

	BAD(""),
	BAD("/unit/a.service/x"),                   /* no hex */
	BAD("12345678901234567/unit/a.service/x"),  /* 17 hex digits */
	BAD("ABCD/unit/a.service/x"),               /* upper-case hex */
	BAD("1g/unit/a.service/x"),
	BAD("1/units/a.service/x"),
	BAD("1/Unit/a.service/x"),
	BAD("1/unit/"),
	BAD("1/unit/a.service"),                    /* no id */
	BAD("1/unit/a.service/"),                   /* empty id */
	BAD("1/unit//x"),                           /* empty unit */
	BAD("1/unit/a.service/x/y"),                /* '/' in the id */
	BAD("1/unit/a.service/a:b"),                /* ':' in the id */
	BAD("1/unit/a.service/."),
	BAD("1/unit/a.service/.."),
	BAD("1/unit/a.service/x\n"),
	BAD("1/unit/a.service/x\x7f"),
	BAD("1/unit/a.service/x\0"),                /* a NUL inside */
	BAD("1/unit/a.ser\0vice/x"),
	BAD("1\0/unit/a.service/x"),
	BAD("1/unit/a/x"),                          /* no type suffix */
	BAD("1/unit/.service/x"),                   /* empty prefix */
	BAD("1/unit/a.services/x"),                 /* unknown type */
	BAD("1/unit/a.Service/x"),
	BAD("1/unit/a./x"),
	BAD("1/unit/@a.service/x"),                 /* '@' first */
	BAD("1/unit/a@.service/x"),                 /* a template */
	BAD("1/unit/a b.service/x"),
	BAD("1/unit/a*.service/x"),
	BAD("1/unit/\xc3\xa9.service/x"),
	BAD("x"),
	BAD("1"),
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(acases) / sizeof(acases[0]); i++) {
		const struct acase *c = &acases[i];
		char buf[512];
		struct credential_req req;
		int rc;

		buf[0] = '\0';
		memcpy(buf + 1, c->addr, c->len);
		rc = credential_parse_address(buf, c->len + 1, &req);
		if (rc != (c->ok ? 0 : -EINVAL))
			fail_msg("case %zu [%s]: rc %d", i, c->addr, rc);
		if (!c->ok) {
			assert_string_equal(req.unit, "");
			assert_null(req.refusal);
			continue;
		}
		assert_string_equal(req.unit, c->unit);
		assert_string_equal(req.id, c->id);
		if (c->refused != (req.refusal != NULL))
			fail_msg("case %zu [%s]: refusal %s", i, c->addr,
				 req.refusal ? req.refusal : "(none)");
	}
}

static void test_parse_name(void **state)
{
	static const char a[] = "\0abc/unit/web.service/db";
	struct credential_req req;

	(void)state;
	assert_int_equal(credential_parse_address(a, sizeof(a) - 1, &req), 0);
	assert_string_equal(req.name, "systemd/web.service/db");
	assert_null(req.refusal);
	/* Not abstract, or cut short: not a credential address. */
	assert_int_equal(credential_parse_address(a + 1, sizeof(a) - 2, &req), -EINVAL);
	assert_int_equal(credential_parse_address(a, sizeof(a) - 2, &req), 0);
	assert_string_equal(req.id, "d");
	assert_int_equal(credential_parse_address(a, 0, &req), -EINVAL);
	assert_int_equal(credential_parse_address(NULL, 4, &req), -EINVAL);
}

/* Lengths at the limits of systemd's and secretd's rules. */
static void test_parse_lengths(void **state)
{
	char buf[1024], unit[300];
	struct credential_req req;
	size_t n;

	(void)state;
	/* A 255-byte unit name is valid for systemd; its secret name is too long. */
	memset(unit, 'u', 247);
	memcpy(unit + 247, ".service", 9);
	n = (size_t)snprintf(buf, sizeof(buf), "%c1/unit/%s/x", '\0', unit);
	assert_int_equal(credential_parse_address(buf, n, &req), 0);
	assert_int_equal(strlen(req.unit), 255);
	assert_non_null(req.refusal);
	/* 256 bytes is not a unit name. */
	memset(unit, 'u', 248);
	memcpy(unit + 248, ".service", 9);
	n = (size_t)snprintf(buf, sizeof(buf), "%c1/unit/%s/x", '\0', unit);
	assert_int_equal(credential_parse_address(buf, n, &req), -EINVAL);
	/* A name of exactly 255 bytes: systemd/ (8) + a.service (9) + / + 237. */
	n = (size_t)snprintf(buf, sizeof(buf), "%c1/unit/a.service/", '\0');
	memset(buf + n, 'i', 237);
	assert_int_equal(credential_parse_address(buf, n + 237, &req), 0);
	assert_null(req.refusal);
	assert_int_equal(strlen(req.name), 255);
	assert_int_equal(credential_parse_address(buf, n + 238, &req), 0);
	assert_non_null(req.refusal);
	/* 255 is the longest id; 256 is not a credential name. */
	memset(buf + n, 'i', 256);
	assert_int_equal(credential_parse_address(buf, n + 255, &req), 0);
	assert_int_equal(credential_parse_address(buf, n + 256, &req), -EINVAL);
}

struct vcase {
	uid_t uid;
	pid_t pid;
	bool host, established;
	const char *cgroup;
	const char *pid1;
	const char *unit;
	bool vouches;
};

static const struct vcase vcases[] = {
	/* systemd in a container with its own cgroup namespace */
	{ 0, 64, true, true, "/system.slice/web.service", "/init.scope", "web.service", true },
	{ 0, 64, true, true, "/system.slice/system-app.slice/web.service", "/init.scope",
	  "web.service", true },
	{ 0, 64, true, true, "/web.service", "/init.scope", "web.service", true },
	{ 0, 64, true, true, "/system.slice/web.service", "/", "web.service", true },
	/* a host on v1 or without a cgroup namespace: below PID 1's root */
	{ 0, 64, true, true, "/ctr/1/system.slice/web.service", "/ctr/1/init.scope",
	  "web.service", true },
	{ 0, 64, true, true, "/ctr/1/system.slice/web.service", "/ctr/1", "web.service", true },
	/* PID 1 itself is believed for any unit */
	{ 0, 1, true, true, "/init.scope", "/init.scope", "web.service", true },
	{ 0, 1, true, true, NULL, NULL, "web.service", true },

	/* the wrong unit, or a cgroup a delegated unit made below itself */
	{ 0, 64, true, true, "/system.slice/web.service", "/init.scope", "db.service", false },
	{ 0, 64, true, true, "/system.slice/a.service/web.service", "/init.scope",
	  "web.service", false },
	{ 0, 64, true, true, "/system.slice/a.service/x.slice/web.service", "/init.scope",
	  "web.service", false },
	{ 0, 64, true, true, "/user.slice/user-1000.slice/user@1000.service/web.service",
	  "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/system.slice/web.service/sub", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/system.slice/web.service.x", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/system.slice/xweb.service", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/.slice/web.service", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/slice/web.service", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/system.slice//web.service", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/system.slice/", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "/", "/init.scope", "web.service", false },
	{ 0, 64, true, true, "", "/init.scope", "web.service", false },
	{ 0, 64, true, true, NULL, "/init.scope", "web.service", false },
	/* outside PID 1's tree, or beside it */
	{ 0, 64, true, true, "/system.slice/web.service", "/ctr/1/init.scope", "web.service",
	  false },
	{ 0, 64, true, true, "/ctr/10/system.slice/web.service", "/ctr/1/init.scope",
	  "web.service", false },
	{ 0, 64, true, true, "/system.slice/web.service", NULL, "web.service", false },
	/* not root, not in the broker's pid namespace, not established */
	{ 1000, 64, true, true, "/system.slice/web.service", "/init.scope", "web.service", false },
	{ 1000, 1, true, true, "/init.scope", "/init.scope", "web.service", false },
	{ 0, 64, false, true, "/system.slice/web.service", "/init.scope", "web.service", false },
	{ 0, 1, false, true, "/init.scope", "/init.scope", "web.service", false },
	{ 0, 64, true, false, "/system.slice/web.service", "/init.scope", "web.service", false },
	{ 0, 1, true, false, "/init.scope", "/init.scope", "web.service", false },
};

static void test_vouches_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		const struct vcase *c = &vcases[i];
		struct identity id;
		const char *why = NULL;
		bool got;

		memset(&id, 0, sizeof(id));
		id.uid = c->uid;
		id.pid = c->pid;
		id.host = c->host;
		id.creds = true;
		id.established = c->established;
		id.cgroup = (char *)(uintptr_t)c->cgroup;
		got = credential_peer_vouches(&id, c->pid1, c->unit, &why);
		if (got != c->vouches)
			fail_msg("case %zu (%s in %s, pid1 %s): got %d", i, c->unit,
				 c->cgroup ? c->cgroup : "(null)", c->pid1 ? c->pid1 : "(null)", got);
		if (!got && why == NULL)
			fail_msg("case %zu: no reason", i);
	}
}

/* A listening socket at a fresh path; its path in *where. */
static int listener(struct sockaddr_un *where)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(where, 0, sizeof(*where));
	where->sun_family = AF_UNIX;
	snprintf(where->sun_path, sizeof(where->sun_path), "/tmp/test_credential.%ld.sock",
		 (long)getpid());
	unlink(where->sun_path);
	assert_int_equal(bind(fd, (struct sockaddr *)where, sizeof(*where)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/*
 * Connect to where, first bound to abstract name[0, len) (len 0: unbound);
 * returns the accepted end.
 */
static int accepted_from(int lfd, const struct sockaddr_un *where, const char *name, size_t len,
			 int *client)
{
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), a;

	assert_true(c >= 0);
	if (len > 0) {
		struct sockaddr_un b;

		memset(&b, 0, sizeof(b));
		b.sun_family = AF_UNIX;
		b.sun_path[0] = '\0';
		memcpy(b.sun_path + 1, name, len);
		assert_int_equal(bind(c, (struct sockaddr *)&b,
				      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)),
				 0);
	}
	assert_int_equal(connect(c, (const struct sockaddr *)where, sizeof(*where)), 0);
	a = accept(lfd, NULL, NULL);
	assert_true(a >= 0);
	*client = c;
	return a;
}

static void root_identity(struct identity *id, pid_t pid, const char *cgroup)
{
	memset(id, 0, sizeof(*id));
	id->pid = pid;
	id->host = true;
	id->creds = true;
	id->established = true;
	id->cgroup = (char *)(uintptr_t)cgroup;
}

static void test_detect_sockets(void **state)
{
	struct sockaddr_un where;
	struct credential_req req;
	struct identity id;
	char name[128];
	int lfd = listener(&where), a, c, n, pair[2];

	(void)state;
	/* Unique per run: abstract names are global to the network namespace. */
	n = snprintf(name, sizeof(name), "%lx/unit/x.service/db", (unsigned long)getpid());

	/* PID 1 asking: believed. */
	root_identity(&id, 1, NULL);
	a = accepted_from(lfd, &where, name, (size_t)n, &c);
	assert_int_equal(credential_detect(a, &id, &req), 1);
	assert_string_equal(req.unit, "x.service");
	assert_string_equal(req.id, "db");
	assert_string_equal(req.name, "systemd/x.service/db");
	assert_null(req.refusal);
	/* Some other root process in no unit's cgroup: detected, refused. */
	root_identity(&id, getpid(), "/user.slice/session-1.scope");
	assert_int_equal(credential_detect(a, &id, &req), 1);
	assert_non_null(req.refusal);
	/* Not root. */
	root_identity(&id, 1, NULL);
	id.uid = 1000;
	assert_int_equal(credential_detect(a, &id, &req), 1);
	assert_non_null(req.refusal);
	close(a);
	close(c);

	/* Unbound, bound to another abstract name, or unnamed: not requests. */
	root_identity(&id, 1, NULL);
	a = accepted_from(lfd, &where, NULL, 0, &c);
	assert_int_equal(credential_detect(a, &id, &req), 0);
	close(a);
	close(c);
	n = snprintf(name, sizeof(name), "%lx/units/x.service/db", (unsigned long)getpid());
	a = accepted_from(lfd, &where, name, (size_t)n, &c);
	assert_int_equal(credential_detect(a, &id, &req), 0);
	close(a);
	close(c);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	assert_int_equal(credential_detect(pair[0], &id, &req), 0);
	close(pair[0]);
	close(pair[1]);

	/* A closed descriptor, a pipe: errors. */
	assert_int_equal(pipe(pair), 0);
	assert_int_equal(credential_detect(pair[0], &id, &req), -ENOTSOCK);
	close(pair[1]);
	close(pair[0]);
	assert_int_equal(credential_detect(pair[0], &id, &req), -EBADF);
	close(lfd);
	unlink(where.sun_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_name),
		cmocka_unit_test(test_parse_lengths),
		cmocka_unit_test(test_vouches_table),
		cmocka_unit_test(test_detect_sockets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
