/* The master key file: exactly 32 raw bytes, readable by its owner only. */
#ifndef SECRETD_KEYFILE_H
#define SECRETD_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#define KEYFILE_LEN 32

/*
 * Read the key into key (caller's sodium_malloc memory).  Refuses a file
 * that is not regular, is readable or writable by group or others, or is not
 * exactly 32 bytes.  Returns 0, or -1 with a one-line reason in err.
 */
int keyfile_read(const char *path, uint8_t key[KEYFILE_LEN], char *err, size_t errlen);

/* Create a new key file (mode 0400, O_EXCL) with 32 random bytes. */
int keyfile_create(const char *path, char *err, size_t errlen);

/*
 * The key file to use when none is named: $CREDENTIALS_DIRECTORY/master.key
 * when systemd passed credentials, else the compiled-in default.
 */
const char *keyfile_default_path(void);

#endif
