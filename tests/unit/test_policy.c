/*
 * The policy: every parse error with its exact line:col, every selector and
 * variable against constructed callers, last match wins, default deny on
 * line 0, and the file checks of policy_load.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"

#define CID_A "3f2a9c51e0b7d4c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819"
#define CID_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define POD_A "0a1b2c3d-0000-1111-2222-333344445555"
#define POD_B "ffffffff-0000-1111-2222-333344445555"
#define POD_S "36b6d6be73b1065af369b3985edafa09" /* a static pod's UID */

/* ---- parse errors ---- */

struct ecase {
	const char *text;
	size_t len; /* 0: strlen(text) */
	const char *want; /* prefix of the error, line:col first */
};

static const struct ecase errors[] = {
	{ "allow read x any\n", 0, "1:1: unknown action \"allow\"" },
	{ "permit\n", 0, "1:7: missing permissions after \"permit\"" },
	{ "deny   \t\n", 0, "1:5: missing permissions after \"deny\"" },
	{ "permit read\n", 0, "1:12: missing pattern after the permissions" },
	{ "permit read app/x\n", 0, "1:18: missing selector (write \"any\" for every caller)" },
	{ "permit read x#any\n", 0, "1:14: missing selector" },
	{ "# ok\n\n  permit read x conatiner=abc\n", 0,
	  "3:17: unknown selector \"conatiner=abc\"" },
	{ "permit reed x any\n", 0, "1:8: unknown permission \"reed\"" },
	{ "permit read,wrte x any\n", 0, "1:13: unknown permission \"wrte\"" },
	{ "permit read,,write x any\n", 0, "1:13: empty item in permission list" },
	{ "permit read, x any\n", 0, "1:13: empty item in permission list" },
	{ "permit ,read x any\n", 0, "1:8: empty item in permission list" },
	{ "permit read a//b any\n", 0, "1:15: empty segment in pattern \"a//b\"" },
	{ "permit read /a any\n", 0, "1:13: empty segment in pattern" },
	{ "permit read a/ any\n", 0, "1:15: empty segment in pattern" },
	{ "permit read a/../b any\n", 0, "1:15: segment \"..\" not allowed in a pattern" },
	{ "permit read ./b any\n", 0, "1:13: segment \".\" not allowed in a pattern" },
	{ "permit read a/**b any\n", 0, "1:15: \"**\" must be a whole segment" },
	{ "permit read a/x*** any\n", 0, "1:16: \"**\" must be a whole segment" },
	{ "permit read a/${user} any\n", 0, "1:15: unknown variable \"${user}\"" },
	{ "permit read a/$x any\n", 0, "1:15: '$' in a pattern must start ${uid}" },
	{ "permit read a/${uid any\n", 0, "1:15: '$' in a pattern must start" },
	{ "permit read a/b@c any\n", 0, "1:16: character '@' not allowed in a pattern" },
	{ "permit read a/\xc3\xa9 any\n", 0, "1:15: byte 0xc3 not allowed in a pattern" },
	{ "permit read x uid=abc\n", 0, "1:19: uid=abc: expected a number from 0 to 4294967294" },
	{ "permit read x uid=-1\n", 0, "1:19: uid=-1: expected a number" },
	{ "permit read x uid=+1\n", 0, "1:19: uid=+1: expected a number" },
	{ "permit read x uid=4294967295\n", 0, "1:19: uid=4294967295: expected a number" },
	{ "permit read x uid=99999999999\n", 0, "1:19: uid=99999999999: expected" },
	{ "permit read x uid=\n", 0, "1:19: uid=: expected a number" },
	{ "permit read x gid=1x\n", 0, "1:19: gid=1x: expected a number" },
	{ "permit read x user=no-such-user-secretd\n", 0,
	  "1:20: unknown user \"no-such-user-secretd\"" },
	{ "permit read x group=no-such-group-secretd\n", 0,
	  "1:21: unknown group \"no-such-group-secretd\"" },
	{ "permit read x user=\n", 0, "1:20: user= needs a name" },
	{ "permit read x cgroup=system.slice\n", 0, "1:22: cgroup= needs an absolute path" },
	{ "permit read x cgroup=\n", 0, "1:22: cgroup= needs an absolute path" },
	{ "permit read x cgroup=/a//b\n", 0, "1:25: empty segment in cgroup pattern" },
	{ "permit read x cgroup=/a/\n", 0, "1:25: empty segment in cgroup pattern" },
	{ "permit read x cgroup=/a/**b\n", 0, "1:25: \"**\" must be a whole segment" },
	{ "permit read x container=3f2a9c51e0b\n", 0,
	  "1:25: container=3f2a9c51e0b: expected a container id" },
	{ "permit read x container=3f2a9c51e0bz\n", 0, "1:25: container=3f2a9c51e0bz: expected" },
	{ "permit read x container=" CID_A "0\n", 0, "1:25: container=" },
	{ "permit read x container=\n", 0, "1:25: container=: expected" },
	{ "permit read x pod=abc\n", 0, "1:19: pod=abc: expected a pod UID" },
	{ "permit read x pod=0a1b2c3d_0000_1111_2222_333344445555\n", 0, "1:19: pod=" },
	{ "permit read x pod=" POD_S "0\n", 0, "1:19: pod=" },
	{ "permit read x pod=36b6d6be73b1065af369b3985edafa0\n", 0, "1:19: pod=" },
	{ "permit read x pod=36b6d6be73b1065af369b3985edafa0g\n", 0, "1:19: pod=" },
	{ "permit read x unit=\n", 0, "1:20: unit= needs a unit name" },
	{ "permit read x unit=a/b.service\n", 0, "1:21: '/' not allowed in a unit pattern" },
	{ "permit read x unit=**\n", 0, "1:20: \"**\" in a unit pattern" },
	{ "permit read x unit=a**.service\n", 0, "1:21: \"**\" in a unit pattern" },
	{ "permit read x unit=a\xc3\xa9\n", 0, "1:21: byte 0xc3 not allowed in a unit pattern" },
	{ "permit read x unit\n", 0, "1:15: unknown selector \"unit\"" },
	{ "permit read a/${units} any\n", 0, "1:15: unknown variable \"${units}\" (expected ${uid}, "
	  "${container}, ${pod} or ${unit})" },
	{ "permit read x host=1\n", 0, "1:15: unknown selector \"host=1\"" },
	{ "permit read x any=\n", 0, "1:15: unknown selector \"any=\"" },
	{ "permit read x Uid=1\n", 0, "1:15: unknown selector \"Uid=1\"" },
	{ "permit read x any\x01\n", 0, "1:18: control character 0x01" },
	{ "permit read x any\r\n", 0, "1:18: control character 0x0d" },
	{ "# \x7f\n", 0, "1:3: control character 0x7f" },
	{ "permit read\0 x any\n", 19, "1:12: NUL byte" },
	{ "permit all ** any\n# \0\n", 22, "2:3: NUL byte" },
	/* the whole file is refused for one bad line anywhere */
	{ "permit all ** any\npermit all ** any\ndeny all x nobody\n", 0,
	  "3:12: unknown selector \"nobody\"" },
	{ "permit all ** any\npermit all ** any", 0, NULL }, /* no final newline: fine */
};

static void test_parse_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		const struct ecase *c = &errors[i];
		size_t len = c->len != 0 ? c->len : strlen(c->text);
		struct policy *p = NULL;
		char err[512] = "untouched";
		int rc = policy_parse(c->text, len, NULL, &p, err, sizeof(err));

		if (c->want == NULL) {
			if (rc != 0)
				fail_msg("case %zu: unexpected error %s", i, err);
			policy_free(p);
			continue;
		}
		if (rc != -1 || p != NULL)
			fail_msg("case %zu (%s): parsed, want error %s", i, c->text, c->want);
		if (strncmp(err, c->want, strlen(c->want)) != 0)
			fail_msg("case %zu: error\n  %s\nwant prefix\n  %s", i, err, c->want);
	}
}

static void test_error_names_source(void **state)
{
	struct policy *p = NULL;
	char err[512];
	const char *text = "permit all ** any\n\npermit read x container=abc\n";

	(void)state;
	assert_int_equal(policy_parse(text, strlen(text), "policy.conf", &p, err, sizeof(err)), -1);
	assert_null(p);
	assert_string_equal(err, "policy.conf:3:25: container=abc: expected a container id "
			    "(64 hex digits), a prefix of at least 12 of them, or *");
}

static void test_long_lines(void **state)
{
	char *text = malloc(8192);
	struct policy *p = NULL;
	char err[256];

	(void)state;
	assert_non_null(text);
	/* 4096 bytes is the limit, and fine... */
	memset(text, ' ', 4096);
	memcpy(text, "permit read x any", 17);
	text[4096] = '\n';
	assert_int_equal(policy_parse(text, 4097, NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 1);
	assert_string_equal(policy_rule_text(p, 1), "permit read x any");
	policy_free(p);
	p = NULL;
	/* ...one more is an error, even inside a comment, pointing past the limit. */
	memset(text, '#', 4097);
	text[4097] = '\n';
	assert_int_equal(policy_parse(text, 4098, NULL, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "1:4097: line longer than 4096 bytes");
	free(text);
}

/* A pattern whose substituted form could outgrow the evaluation buffer. */
static void test_expansion_limit(void **state)
{
	char text[2048];
	size_t n = 0;
	struct policy *p = NULL;
	char err[256];

	(void)state;
	n += (size_t)snprintf(text, sizeof(text), "deny read ");
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "${container}/");
	n += (size_t)snprintf(text + n, sizeof(text) - n, "x any\n");
	assert_int_equal(policy_parse(text, n, NULL, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "1:11: pattern longer than 4096 bytes once its variables "
			    "are substituted");
}

static void test_small_error_buffer(void **state)
{
	struct policy *p = NULL;
	char err[8];
	const char *text = "permit read x nobody\n";

	(void)state;
	memset(err, 'X', sizeof(err));
	assert_int_equal(policy_parse(text, strlen(text), "policy.conf", &p, err, sizeof(err)), -1);
	assert_int_equal(strnlen(err, sizeof(err)), sizeof(err) - 1);
	assert_int_equal(policy_parse(text, strlen(text), NULL, &p, NULL, 0), -1);
}

static void test_accepted_forms(void **state)
{
	const char *text =
		"# comment line\n"
		"\n"
		"   \t  \n"
		"permit\tread,read,list\tapp/*\tany   # trailing comment\n"
		"deny all ** uid=0 uid=0 gid=4294967294\n"
		"permit read x/${uid}-home/${container}/${pod} CONTAINER=x\n";
	struct policy *p = NULL;
	char err[512];

	(void)state;
	/* the last line is wrong only in its selector: keys are lowercase */
	assert_int_equal(policy_parse(text, strlen(text), NULL, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "6:47: unknown selector \"CONTAINER=x\" (expected any, uid=, "
			    "gid=, user=, group=, cgroup=, container=, pod=, unit= or host)");
	assert_int_equal(policy_parse(text, strlen(text) - 13, NULL, &p, err, sizeof(err)), -1);
	assert_int_equal(policy_parse(text, strstr(text, "permit read x/") - text, NULL, &p,
				      err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 2);
	assert_string_equal(policy_rule_text(p, 4), "permit\tread,read,list\tapp/*\tany");
	assert_string_equal(policy_rule_text(p, 5), "deny all ** uid=0 uid=0 gid=4294967294");
	assert_null(policy_rule_text(p, 1));
	assert_null(policy_rule_text(p, 0));
	policy_free(p);
	p = NULL;
	/* An empty policy parses, and denies everything. */
	assert_int_equal(policy_parse("", 0, NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 0);
	policy_free(p);
}

static void test_perm_names(void **state)
{
	(void)state;
	assert_int_equal(policy_perm_from_name("read"), PERM_READ);
	assert_int_equal(policy_perm_from_name("write"), PERM_WRITE);
	assert_int_equal(policy_perm_from_name("list"), PERM_LIST);
	assert_int_equal(policy_perm_from_name("delete"), PERM_DELETE);
	assert_int_equal(policy_perm_from_name("all"), 0);
	assert_int_equal(policy_perm_from_name("Read"), 0);
	assert_int_equal(policy_perm_from_name(""), 0);
}

/* ---- evaluation ---- */

static const char match_policy[] =
	"# every selector and variable, one rule each\n"          /* 1 */
	"permit read  app/uid/*         uid=1000\n"                /* 2 */
	"permit read  app/gid/*         gid=2000\n"                /* 3 */
	"permit read  app/user/*        user=root\n"               /* 4 */
	"permit read  app/group/*       group=root\n"              /* 5 */
	"permit read  app/cg/*          cgroup=/system.slice/docker-*.scope\n" /* 6 */
	"permit read  app/kube/*        cgroup=/kubepods/**\n"     /* 7 */
	"permit read  app/ctr/*         container=3F2A9C51E0B7\n"  /* 8 */
	"permit read  app/anyctr/*      container=*\n"             /* 9 */
	"permit read  app/pod/*         pod=0A1B2C3D-0000-1111-2222-333344445555\n" /* 10 */
	"permit read  app/anypod/*      pod=*\n"                   /* 11 */
	"permit read  app/host/*        host\n"                    /* 12 */
	"permit read  users/${uid}/**   any\n"                     /* 13 */
	"permit read  containers/${container}/**  container=*\n"   /* 14 */
	"permit read  pods/${pod}/*     any\n"                     /* 15 */
	"permit read,list both/*        uid=1000 gid=2000\n"       /* 16 */
	"deny   read  app/uid/secret    any\n"                     /* 17 */
	"permit all   admin/**          uid=0 host\n"              /* 18 */
	"permit write drop/**           any\n"                     /* 19 */
	"deny   write drop/locked/*     any\n"                     /* 20 */
	"permit write drop/locked/ok    uid=1000\n"                /* 21 */
	"permit read  app/unit/*        unit=backup.service\n"     /* 22 */
	"permit read  app/units/*       unit=app-*.service\n"      /* 23 */
	"permit read  systemd/${unit}/* unit=*\n"                  /* 24 */
	"permit read  app/static/*      pod=36B6D6BE73B1065AF369B3985EDAFA09\n"; /* 25 */

enum who { ROOT_HOST, U1000_HOST, U1500_SUPP, DOCKER_A, DOCKER_B, KUBE, UNESTABLISHED,
	   NOBODY, UNIT_BACKUP, UNIT_APP, UNIT_TEMPLATE, UNIT_DOTS, UNIT_UNESTABLISHED, STATIC_POD,
	   WHO_COUNT };

static gid_t supp_2000[] = { 3000, 2000 };

static void make_who(enum who w, struct identity *id)
{
	memset(id, 0, sizeof(*id));
	id->creds = true;
	id->established = true;
	id->pidfd_verified = true;
	switch (w) {
	case ROOT_HOST:
		id->host = true;
		id->cgroup = (char *)(uintptr_t)"/user.slice/user-0.slice/session-1.scope";
		break;
	case U1000_HOST:
		id->uid = id->gid = 1000;
		id->host = true;
		id->cgroup = (char *)(uintptr_t)"/user.slice/user-1000.slice/session-2.scope";
		break;
	case U1500_SUPP:
		id->uid = id->gid = 1500;
		id->groups = supp_2000;
		id->ngroups = 2;
		id->host = true;
		break;
	case DOCKER_A:
		id->uid = id->gid = 1000;
		id->cgroup = (char *)(uintptr_t)"/system.slice/docker-" CID_A ".scope";
		snprintf(id->container, sizeof(id->container), "%s", CID_A);
		break;
	case DOCKER_B:
		id->uid = 0; /* root inside a container is not the host's root */
		id->cgroup = (char *)(uintptr_t)"/system.slice/docker-" CID_B ".scope";
		snprintf(id->container, sizeof(id->container), "%s", CID_B);
		break;
	case KUBE:
		id->uid = id->gid = 65532;
		id->cgroup = (char *)(uintptr_t)"/kubepods/besteffort/pod" POD_A "/" CID_B;
		snprintf(id->container, sizeof(id->container), "%s", CID_B);
		snprintf(id->pod, sizeof(id->pod), "%s", POD_A);
		break;
	case UNESTABLISHED:
		/* creds known, but cgroup/container could not be pinned to the process */
		id->uid = id->gid = 1000;
		id->established = false;
		id->host = true;
		id->cgroup = (char *)(uintptr_t)"/system.slice/docker-" CID_A ".scope";
		snprintf(id->container, sizeof(id->container), "%s", CID_A);
		snprintf(id->pod, sizeof(id->pod), "%s", POD_A);
		break;
	case NOBODY:
		memset(id, 0, sizeof(*id)); /* nothing known at all */
		break;
	case UNIT_BACKUP:
	case UNIT_APP:
	case UNIT_TEMPLATE:
	case UNIT_DOTS:
	case UNIT_UNESTABLISHED:
		/* systemd (PID 1, uid 0) loading a credential for a unit */
		id->host = true;
		id->cgroup = (char *)(uintptr_t)"/init.scope";
		id->unit = (char *)(uintptr_t)(w == UNIT_BACKUP ? "backup.service"
					       : w == UNIT_APP ? "app-web.service"
					       : w == UNIT_TEMPLATE ? "getty@tty1.service"
					       : w == UNIT_DOTS ? ".."
								: "backup.service");
		id->established = w != UNIT_UNESTABLISHED;
		break;
	case STATIC_POD:
		id->uid = id->gid = 65532;
		id->cgroup = (char *)(uintptr_t)"/kubepods/besteffort/pod" POD_S "/" CID_A;
		snprintf(id->container, sizeof(id->container), "%s", CID_A);
		snprintf(id->pod, sizeof(id->pod), "%s", POD_S);
		break;
	case WHO_COUNT:
		break;
	}
}

struct mcase {
	enum who who;
	unsigned perm;
	const char *name;
	bool permit;
	unsigned line;
};

static const struct mcase matches[] = {
	/* uid= */
	{ U1000_HOST, PERM_READ, "app/uid/a", true, 2 },
	{ DOCKER_A, PERM_READ, "app/uid/a", true, 2 },
	{ U1500_SUPP, PERM_READ, "app/uid/a", false, 0 },
	{ U1000_HOST, PERM_WRITE, "app/uid/a", false, 0 },
	{ U1000_HOST, PERM_READ, "app/uid/a/b", false, 0 },
	{ UNESTABLISHED, PERM_READ, "app/uid/a", true, 2 }, /* creds suffice for uid= */
	{ NOBODY, PERM_READ, "app/uid/a", false, 0 },
	/* gid=: primary or supplementary */
	{ U1500_SUPP, PERM_READ, "app/gid/a", true, 3 },
	{ U1000_HOST, PERM_READ, "app/gid/a", false, 0 },
	/* user=root, group=root resolved at parse time */
	{ ROOT_HOST, PERM_READ, "app/user/a", true, 4 },
	{ DOCKER_B, PERM_READ, "app/user/a", true, 4 }, /* uid 0 is uid 0 */
	{ U1000_HOST, PERM_READ, "app/user/a", false, 0 },
	{ ROOT_HOST, PERM_READ, "app/group/a", true, 5 },
	{ NOBODY, PERM_READ, "app/group/a", false, 0 }, /* gid 0 but no creds */
	/* cgroup= */
	{ DOCKER_A, PERM_READ, "app/cg/a", true, 6 },
	{ DOCKER_B, PERM_READ, "app/cg/a", true, 6 },
	{ KUBE, PERM_READ, "app/cg/a", false, 0 },
	{ U1000_HOST, PERM_READ, "app/cg/a", false, 0 },
	{ UNESTABLISHED, PERM_READ, "app/cg/a", false, 0 },
	{ U1500_SUPP, PERM_READ, "app/cg/a", false, 0 }, /* no cgroup known */
	{ KUBE, PERM_READ, "app/kube/a", true, 7 },
	{ DOCKER_A, PERM_READ, "app/kube/a", false, 0 },
	/* container= prefix (written in upper case), and * */
	{ DOCKER_A, PERM_READ, "app/ctr/a", true, 8 },
	{ DOCKER_B, PERM_READ, "app/ctr/a", false, 0 },
	{ UNESTABLISHED, PERM_READ, "app/ctr/a", false, 0 },
	{ DOCKER_B, PERM_READ, "app/anyctr/a", true, 9 },
	{ KUBE, PERM_READ, "app/anyctr/a", true, 9 },
	{ ROOT_HOST, PERM_READ, "app/anyctr/a", false, 0 },
	/* pod= */
	{ KUBE, PERM_READ, "app/pod/a", true, 10 },
	{ DOCKER_A, PERM_READ, "app/pod/a", false, 0 },
	{ UNESTABLISHED, PERM_READ, "app/pod/a", false, 0 },
	{ KUBE, PERM_READ, "app/anypod/a", true, 11 },
	{ DOCKER_B, PERM_READ, "app/anypod/a", false, 0 },
	/* host: not in a container, even as uid 0 */
	{ ROOT_HOST, PERM_READ, "app/host/a", true, 12 },
	{ U1000_HOST, PERM_READ, "app/host/a", true, 12 },
	{ DOCKER_B, PERM_READ, "app/host/a", false, 0 },
	{ UNESTABLISHED, PERM_READ, "app/host/a", false, 0 },
	/* ${uid} */
	{ U1000_HOST, PERM_READ, "users/1000/key", true, 13 },
	{ U1000_HOST, PERM_READ, "users/1000/a/b", true, 13 },
	{ U1000_HOST, PERM_READ, "users/1001/key", false, 0 },
	{ U1000_HOST, PERM_READ, "users/1000", false, 0 },
	{ ROOT_HOST, PERM_READ, "users/0/key", true, 13 },
	{ NOBODY, PERM_READ, "users/0/key", false, 0 }, /* no creds, no ${uid} */
	/* ${container}: every container its own subtree */
	{ DOCKER_A, PERM_READ, "containers/" CID_A "/db", true, 14 },
	{ DOCKER_A, PERM_READ, "containers/" CID_B "/db", false, 0 },
	{ DOCKER_B, PERM_READ, "containers/" CID_B "/db", true, 14 },
	{ ROOT_HOST, PERM_READ, "containers/" CID_A "/db", false, 0 },
	{ UNESTABLISHED, PERM_READ, "containers/" CID_A "/db", false, 0 },
	/* ${pod}, with selector any: a caller without a pod gets nothing */
	{ KUBE, PERM_READ, "pods/" POD_A "/token", true, 15 },
	{ KUBE, PERM_READ, "pods/" POD_B "/token", false, 0 },
	{ DOCKER_A, PERM_READ, "pods/" POD_A "/token", false, 0 },
	{ UNESTABLISHED, PERM_READ, "pods/" POD_A "/token", false, 0 },
	/* all selectors must hold; each permission on its own */
	{ U1000_HOST, PERM_READ, "both/a", false, 0 },
	{ U1500_SUPP, PERM_READ, "both/a", false, 0 },
	/* last match wins, both ways */
	{ U1000_HOST, PERM_READ, "app/uid/secret", false, 17 },
	{ U1000_HOST, PERM_WRITE, "drop/x/y", true, 19 },
	{ U1000_HOST, PERM_WRITE, "drop/locked/a", false, 20 },
	{ U1500_SUPP, PERM_WRITE, "drop/locked/ok", false, 20 },
	{ U1000_HOST, PERM_WRITE, "drop/locked/ok", true, 21 },
	/* "all" */
	{ ROOT_HOST, PERM_READ, "admin/x", true, 18 },
	{ ROOT_HOST, PERM_WRITE, "admin/x", true, 18 },
	{ ROOT_HOST, PERM_LIST, "admin/x/y", true, 18 },
	{ ROOT_HOST, PERM_DELETE, "admin/x", true, 18 },
	{ DOCKER_B, PERM_DELETE, "admin/x", false, 0 },
	/* unit=, ${unit}: only a caller with a unit has them */
	{ UNIT_BACKUP, PERM_READ, "app/unit/a", true, 22 },
	{ UNIT_APP, PERM_READ, "app/unit/a", false, 0 },
	{ ROOT_HOST, PERM_READ, "app/unit/a", false, 0 },
	{ UNIT_UNESTABLISHED, PERM_READ, "app/unit/a", false, 0 },
	{ UNIT_APP, PERM_READ, "app/units/a", true, 23 },
	{ UNIT_BACKUP, PERM_READ, "app/units/a", false, 0 },
	{ UNIT_BACKUP, PERM_READ, "systemd/backup.service/db", true, 24 },
	{ UNIT_BACKUP, PERM_READ, "systemd/app-web.service/db", false, 0 },
	{ UNIT_APP, PERM_READ, "systemd/app-web.service/db", true, 24 },
	{ ROOT_HOST, PERM_READ, "systemd/backup.service/db", false, 0 },
	{ DOCKER_A, PERM_READ, "systemd/backup.service/db", false, 0 },
	{ UNIT_UNESTABLISHED, PERM_READ, "systemd/backup.service/db", false, 0 },
	/* a unit name that cannot be a name segment is never substituted */
	{ UNIT_TEMPLATE, PERM_READ, "systemd/getty/db", false, 0 },
	{ UNIT_TEMPLATE, PERM_READ, "systemd/getty@tty1.service/db", false, 0 },
	{ UNIT_DOTS, PERM_READ, "systemd/x/db", false, 0 },
	{ UNIT_DOTS, PERM_READ, "systemd/../db", false, 0 },
	/* a static pod's 32-hex UID, in pod= (any case) and ${pod} */
	{ STATIC_POD, PERM_READ, "app/static/a", true, 25 },
	{ KUBE, PERM_READ, "app/static/a", false, 0 },
	{ STATIC_POD, PERM_READ, "pods/" POD_S "/token", true, 15 },
	{ STATIC_POD, PERM_READ, "app/anypod/a", true, 11 },
	/* requests for no permission or several at once are refused */
	{ ROOT_HOST, 0, "admin/x", false, 0 },
	{ ROOT_HOST, PERM_READ | PERM_WRITE, "admin/x", true, 18 },
	{ ROOT_HOST, 1u << 7, "admin/x", false, 0 },
};

static void test_match_table(void **state)
{
	struct policy *p = NULL;
	char err[512];

	(void)state;
	if (policy_parse(match_policy, strlen(match_policy), "match", &p, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(policy_rule_count(p), 24);
	for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++) {
		const struct mcase *c = &matches[i];
		struct identity id;
		unsigned line = 12345;
		bool got;

		make_who(c->who, &id);
		got = policy_eval(p, &id, c->perm, c->name, strlen(c->name), &line);
		if (got != c->permit || line != c->line)
			fail_msg("case %zu (who %d, perm %u, %s): got %s line %u, want %s line %u",
				 i, c->who, c->perm, c->name, got ? "permit" : "deny", line,
				 c->permit ? "permit" : "deny", c->line);
	}
	policy_free(p);
}

static void test_default_deny(void **state)
{
	struct policy *p = NULL;
	struct identity id;
	unsigned line = 99;
	char err[256];

	(void)state;
	make_who(ROOT_HOST, &id);
	assert_int_equal(policy_parse("", 0, NULL, &p, err, sizeof(err)), 0);
	assert_false(policy_eval(p, &id, PERM_READ, "x", 1, &line));
	assert_int_equal(line, 0);
	policy_free(p);
	line = 99;
	assert_false(policy_eval(NULL, &id, PERM_READ, "x", 1, &line));
	assert_int_equal(line, 0);
}

/* A substituted value never acts as glob syntax. */
static void test_variables_are_literal(void **state)
{
	const char *text = "permit read containers/${container}/* container=*\n";
	struct policy *p = NULL;
	struct identity id;
	unsigned line;
	char err[256];

	(void)state;
	assert_int_equal(policy_parse(text, strlen(text), NULL, &p, err, sizeof(err)), 0);
	make_who(DOCKER_A, &id);
	snprintf(id.container, sizeof(id.container), "%s", "*"); /* not something peer.c produces; must not widen */
	assert_false(policy_eval(p, &id, PERM_READ, "containers/x/y", 14, &line));
	snprintf(id.container, sizeof(id.container), "%s", "a/b");
	assert_false(policy_eval(p, &id, PERM_READ, "containers/a/b/y", 16, &line));
	policy_free(p);
}

/* The CONTRACT's example policy, as written there. */
static void test_contract_example(void **state)
{
	const char *text =
		"permit all   **                 uid=0 host\n"
		"permit read  app/db/*           uid=1000 container=3f2a9c51e0b7\n"
		"permit read  containers/${container}/**   container=*\n"
		"deny   read  app/db/root        any\n";
	struct policy *p = NULL;
	struct identity id;
	unsigned line;
	char err[256];

	(void)state;
	assert_int_equal(policy_parse(text, strlen(text), NULL, &p, err, sizeof(err)), 0);
	make_who(ROOT_HOST, &id);
	assert_true(policy_eval(p, &id, PERM_DELETE, "any/thing", 9, &line));
	assert_int_equal(line, 1);
	assert_false(policy_eval(p, &id, PERM_READ, "app/db/root", 11, &line));
	assert_int_equal(line, 4);
	make_who(DOCKER_B, &id); /* uid 0 in a container */
	assert_false(policy_eval(p, &id, PERM_WRITE, "any/thing", 9, &line));
	assert_int_equal(line, 0);
	make_who(DOCKER_A, &id);
	assert_true(policy_eval(p, &id, PERM_READ, "app/db/pw", 9, &line));
	assert_int_equal(line, 2);
	assert_false(policy_eval(p, &id, PERM_LIST, "app/db/pw", 9, &line));
	assert_int_equal(line, 0);
	policy_free(p);
}

/* ---- policy_load ---- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/test_policy.XXXXXX");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static int remove_tmpdir(void **state)
{
	(void)state;
	return nftw(tmpdir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_load(void **state)
{
	char path[128], link[128], sub[128], err[512], want[256];
	struct policy *p = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/policy.conf", tmpdir);
	write_file(path, "permit all ** uid=0 host\n", 0644);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 1);
	policy_free(p);
	p = NULL;
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), 0);
	policy_free(p);
	p = NULL;

	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -1);
	assert_null(p);
	snprintf(want, sizeof(want), "policy %s: mode 0664 lets group or others write it", path);
	assert_string_equal(err, want);

	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "policy %s: mode 0602 lets group or others write it", path);
	assert_string_equal(err, want);
	assert_int_equal(chmod(path, 0644), 0);

	/* A link (as Kubernetes mounts a ConfigMap) is followed; the target is checked. */
	snprintf(link, sizeof(link), "%s/link.conf", tmpdir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(policy_load(link, &p, err, sizeof(err)), 0);
	policy_free(p);
	p = NULL;
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(policy_load(link, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "policy %s: mode 0666 lets group or others write it", link);
	assert_string_equal(err, want);
	assert_int_equal(chmod(path, 0644), 0);

	snprintf(sub, sizeof(sub), "%s/dir", tmpdir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(policy_load(sub, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "policy %s: not a regular file", sub);
	assert_string_equal(err, want);

	snprintf(sub, sizeof(sub), "%s/missing.conf", tmpdir);
	assert_int_equal(policy_load(sub, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "policy %s: No such file or directory", sub);
	assert_string_equal(err, want);
	assert_null(p);
}

static void test_load_owner_and_errors(void **state)
{
	char path[128], err[512], want[256];
	struct policy *p = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
	write_file(path, "permit all ** uid=0 host\npermit red x any\n", 0644);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2:8: unknown permission \"red\" "
		 "(expected read, write, list, delete or all)", path);
	assert_string_equal(err, want);
	assert_null(p);

	if (geteuid() != 0)
		skip();
	write_file(path, "permit all ** uid=0 host\n", 0644);
	assert_int_equal(chown(path, 4321, 4321), 0);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "policy %s: owned by uid 4321; must be owned by root or "
		 "by the user secretd runs as", path);
	assert_string_equal(err, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_error_names_source),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_expansion_limit),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_accepted_forms),
		cmocka_unit_test(test_perm_names),
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_default_deny),
		cmocka_unit_test(test_variables_are_literal),
		cmocka_unit_test(test_contract_example),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_load_owner_and_errors),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
