/*
 * The config file and option values: defaults, every kind of value, errors
 * that name the file and line, and a named file that must exist.
 */
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

#include "config.h"
#include "log.h"

static int parse(struct config *cfg, const char *text, char *err, size_t errlen)
{
	return config_parse(cfg, text, strlen(text), "test.conf", err, errlen);
}

static void test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_string_equal(cfg.socket, "/run/secretd/secretd.sock");
	assert_string_equal(cfg.vault, "/var/lib/secretd/vault.db");
	assert_string_equal(cfg.policy, "/etc/secretd/policy.conf");
	assert_string_equal(cfg.audit_log, "/var/log/secretd/audit.log");
	assert_null(cfg.key_file);
	assert_int_equal(cfg.socket_mode, 0666);
	assert_int_equal(cfg.max_secret_size, 65536);
	assert_int_equal(cfg.keep_versions, 10);
	assert_false(cfg.audit_sync_always);
	assert_int_equal(cfg.request_timeout_ms, 5000);
	assert_int_equal(cfg.idle_timeout_ms, 60000);
	config_free(&cfg);
}

static void test_file_values(void **state)
{
	struct config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(parse(&cfg,
			       "# a comment\n"
			       "\n"
			       "socket = /tmp/s.sock\n"
			       "  vault=/tmp/v.db  \n"
			       "socket-mode = 0660\n"
			       "max-secret-size = 1048576\n"
			       "audit-sync = always\n"
			       "audit-sync-interval = 50\n"
			       "log-level = debug\n"
			       "user = secretd",
			       err, sizeof(err)),
			 0);
	assert_string_equal(cfg.socket, "/tmp/s.sock");
	assert_string_equal(cfg.vault, "/tmp/v.db");
	assert_int_equal(cfg.socket_mode, 0660);
	assert_int_equal(cfg.max_secret_size, 1048576);
	assert_true(cfg.audit_sync_always);
	assert_int_equal(cfg.audit_sync_interval_ms, 50);
	assert_int_equal(cfg.log_level, LOGL_DEBUG);
	assert_string_equal(cfg.user, "secretd");
	config_free(&cfg);
}

static void test_errors_name_the_line(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "socket = /a\nbogus = 1\n", "test.conf:2: unknown setting \"bogus\"" },
		{ "no equals sign\n", "test.conf:1: expected \"key = value\"" },
		{ "max-secret-size = 1048577\n", "test.conf:1: max-secret-size: expected a whole number from 0 to 1048576" },
		{ "keep-versions = -1\n", "test.conf:1: keep-versions: expected a whole number from 1 to 1000" },
		{ "keep-versions = 10x\n", "test.conf:1: keep-versions: expected a whole number from 1 to 1000" },
		{ "socket-mode = 0999\n", "test.conf:1: socket-mode: expected an octal mode such as 0660" },
		{ "audit-sync = sometimes\n", "test.conf:1: audit-sync: expected batch or always" },
		{ "audit-sync-interval = 0\n", "test.conf:1: audit-sync-interval: expected a whole number from 1 to 1000" },
		{ "vault =\n", "test.conf:1: vault: empty or too long value" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		char err[256] = "";

		assert_int_equal(config_defaults(&cfg), 0);
		assert_int_equal(parse(&cfg, cases[i].text, err, sizeof(err)), -1);
		assert_string_equal(err, cases[i].want);
		config_free(&cfg);
	}
}

static void test_nul_byte_refused(void **state)
{
	struct config cfg;
	char err[256] = "";
	const char text[] = "socket = /a\0b\n";

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(config_parse(&cfg, text, sizeof(text) - 1, "x", err, sizeof(err)), -1);
	assert_string_equal(err, "x:1: NUL byte");
	config_free(&cfg);
}

static void test_named_file_must_exist(void **state)
{
	char dir[] = "/tmp/test_config.XXXXXX", path[64], err[512] = "";
	struct config cfg;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secretd.conf", dir);
	assert_int_equal(config_defaults(&cfg), 0);
	free(cfg.config);
	cfg.config = strdup(path);
	assert_non_null(cfg.config);
	/* the default file may be missing; a named one may not */
	assert_int_equal(config_load_file(&cfg, err, sizeof(err)), 0);
	cfg.config_named = true;
	assert_int_equal(config_load_file(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("keep-versions = 3\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(config_load_file(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.keep_versions, 3);

	/* it names the policy and the user: not writable by group or others */
	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(config_load_file(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not writable by group or others"));
	config_free(&cfg);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_file_values),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_nul_byte_refused),
		cmocka_unit_test(test_named_file_must_exist),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
