/* Reading and creating the master key file. */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define DEFAULT_KEY_FILE "/etc/secretd/master.key"

const char *keyfile_default_path(void)
{
	static char cred_path[4096];
	const char *dir = getenv("CREDENTIALS_DIRECTORY");

	if (dir != NULL && dir[0] == '/') {
		int n = snprintf(cred_path, sizeof(cred_path), "%s/master.key", dir);
		if (n > 0 && (size_t)n < sizeof(cred_path))
			return cred_path;
	}
	return DEFAULT_KEY_FILE;
}

static int read_exact(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

int keyfile_read(const char *path, uint8_t key[KEYFILE_LEN], char *err, size_t errlen)
{
	struct stat st;
	int rc = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key file %s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(err, errlen,
			 "key file %s: mode %04o lets group or others in; chmod 0400 it",
			 path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size != KEYFILE_LEN) {
		snprintf(err, errlen, "key file %s: must hold exactly %d bytes, has %lld",
			 path, KEYFILE_LEN, (long long)st.st_size);
		goto out;
	}
	if (read_exact(fd, key, KEYFILE_LEN) != 0) {
		snprintf(err, errlen, "key file %s: short read", path);
		sodium_memzero(key, KEYFILE_LEN);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

int keyfile_create(const char *path, char *err, size_t errlen)
{
	uint8_t *key = sodium_malloc(KEYFILE_LEN);
	int rc = -1;
	int fd = -1;

	if (key == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0) {
		snprintf(err, errlen, "key file %s: %s", path,
			 errno == EEXIST ? "already exists; refusing to overwrite"
					 : strerror(errno));
		goto out;
	}
	randombytes_buf(key, KEYFILE_LEN);
	if (write(fd, key, KEYFILE_LEN) != KEYFILE_LEN || fsync(fd) != 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0 && close(fd) != 0 && rc == 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		rc = -1;
	}
	sodium_free(key);
	return rc;
}
