/*
 * One broker a vault, one broker an audit log: the locks of lockfile.c as
 * vault_open and audit_open take them.  flock(2) locks of two open(2)s
 * conflict within one process too, so a second open here stands for a
 * second broker.
 */
#include <dirent.h>
#include <errno.h>
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
#include <sodium.h>

#include "audit.h"
#include "lockfile.h"
#include "vault.h"

static char dir[64];
static char vpath[256], lpath[256];
static uint8_t key[32];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_lockfile.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(vpath, sizeof(vpath), "%s/vault.db", dir);
	snprintf(lpath, sizeof(lpath), "%s/audit.log", dir);
	randombytes_buf(key, sizeof(key));
	return 0;
}

static int teardown(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	(void)state;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	return rmdir(dir);
}

static void test_take_and_release(void **state)
{
	char err[512] = "", want[1024], lock[300];
	struct stat st;
	int fd, again;

	(void)state;
	fd = lockfile_take(lpath, "thing", err, sizeof(err));
	assert_true(fd >= 0);
	snprintf(lock, sizeof(lock), "%s.lock", lpath);
	assert_int_equal(stat(lock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	again = lockfile_take(lpath, "thing", err, sizeof(err));
	assert_int_equal(again, -EWOULDBLOCK);
	snprintf(want, sizeof(want), "thing %s is in use by another secretd (pid %ld holds %s)",
		 lpath, (long)getpid(), lock);
	assert_string_equal(err, want);
	lockfile_release(fd);
	/* released: and a lock file left behind is no obstacle */
	fd = lockfile_take(lpath, "thing", err, sizeof(err));
	assert_true(fd >= 0);
	lockfile_release(fd);
}

static void test_symlink_refused(void **state)
{
	char err[512] = "", lock[300];
	int fd;

	(void)state;
	snprintf(lock, sizeof(lock), "%s.lock", lpath);
	assert_int_equal(symlink("/tmp/elsewhere", lock), 0);
	fd = lockfile_take(lpath, "thing", err, sizeof(err));
	assert_true(fd < 0);
	assert_non_null(strstr(err, "cannot open its lock file"));
}

static void test_vault_lock(void **state)
{
	struct vault *v = NULL, *second = (struct vault *)&second, *reader = NULL;
	struct vault_writer *w = NULL;
	uint8_t blob[16];
	size_t len;
	char err[512] = "";

	(void)state;
	assert_int_equal(vault_create(vpath, key, err, sizeof(err)), VAULT_OK);
	assert_int_equal(vault_open(vpath, key, &v, err, sizeof(err)), VAULT_OK);
	assert_int_equal(vault_writer_open(v, 0, &w, err, sizeof(err)), VAULT_OK);
	/* a second broker: refused, nothing opened */
	assert_int_equal(vault_open(vpath, key, &second, err, sizeof(err)), VAULT_E_BUSY);
	assert_null(second);
	assert_non_null(strstr(err, "is in use by another secretd (pid"));
	assert_non_null(strstr(err, vpath));
	assert_null(strchr(err, '\n'));
	/* a reader (audit-verify) opens it beside the broker, but cannot write */
	assert_int_equal(vault_open_reader(vpath, key, &reader, err, sizeof(err)), VAULT_OK);
	assert_int_equal(vault_checkpoint_get(reader, blob, sizeof(blob), &len), VAULT_E_NOTFOUND);
	{
		struct vault_writer *w2 = (struct vault_writer *)&w2;
		assert_int_equal(vault_writer_open(reader, 0, &w2, err, sizeof(err)), VAULT_E_BUSY);
		assert_null(w2);
	}
	vault_close(reader);
	vault_writer_close(w);
	vault_close(v);
	/* the broker gone, the next one opens it */
	assert_int_equal(vault_open(vpath, key, &v, err, sizeof(err)), VAULT_OK);
	vault_close(v);
}

static void test_audit_lock_outlives_rotation(void **state)
{
	struct audit *a = NULL, *second = NULL;
	char err[512] = "", old[300];

	(void)state;
	snprintf(old, sizeof(old), "%s.1", lpath);
	assert_int_equal(audit_open(lpath, key, NULL, NULL, 0, &a, err, sizeof(err)), 0);
	assert_int_equal(audit_open(lpath, key, NULL, NULL, 0, &second, err, sizeof(err)),
			 -EWOULDBLOCK);
	assert_null(second);
	assert_non_null(strstr(err, "audit log "));
	assert_non_null(strstr(err, "is in use by another secretd"));
	/* logrotate renames the log; the broker reopens; the lock stays with it */
	assert_int_equal(rename(lpath, old), 0);
	assert_int_equal(audit_reopen(a), 0);
	assert_int_equal(audit_open(lpath, key, NULL, NULL, 0, &second, err, sizeof(err)),
			 -EWOULDBLOCK);
	assert_int_equal(audit_close(a), 0);
	assert_int_equal(audit_open(lpath, key, NULL, NULL, 0, &a, err, sizeof(err)), 0);
	assert_int_equal(audit_close(a), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_take_and_release),
		T(test_symlink_refused),
		T(test_vault_lock),
		T(test_audit_lock_outlives_rotation),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
