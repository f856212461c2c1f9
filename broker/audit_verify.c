/*
 * `secretd audit-verify --key-file PATH [--vault PATH] FILE...`: replay the
 * audit chain from the master key across FILEs in order (rotated files
 * first).  With --vault, the checkpoint the broker keeps there also shows
 * whether records were cut off the end.  Exit 0 intact, 1 broken or
 * unreadable, 2 usage.
 */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "keyfile.h"
#include "vault.h"

static int usage(void)
{
	fprintf(stderr, "usage: secretd audit-verify --key-file PATH [--vault PATH] FILE...\n");
	return 2;
}

struct verify_args {
	const char *key_file;
	const char *vault;
	const char **files;
	size_t nfiles;
};

/* Options may come before or between the files; "--" ends them. */
static int parse_args(int argc, char **argv, struct verify_args *va)
{
	bool options = true;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (options && strcmp(arg, "--") == 0) {
			options = false;
		} else if (options && (strcmp(arg, "--key-file") == 0 || strcmp(arg, "--vault") == 0)) {
			if (i + 1 >= argc)
				return -1;
			if (arg[2] == 'k')
				va->key_file = argv[++i];
			else
				va->vault = argv[++i];
		} else if (options && arg[0] == '-' && arg[1] != '\0') {
			return -1;
		} else {
			va->files[va->nfiles++] = arg;
		}
	}
	return va->key_file != NULL && va->nfiles > 0 ? 0 : -1;
}

/* The vault's checkpoint blob; *len = 0 when the broker has stored none yet. */
static int read_checkpoint(const char *path, const uint8_t *master, uint8_t *blob, size_t *len)
{
	struct vault *v = NULL;
	char err[512];
	int vrc;

	*len = 0;
	/* Without the vault's lock: a vault a broker is serving can be checked too. */
	if (vault_open_reader(path, master, &v, err, sizeof(err)) != 0) {
		fprintf(stderr, "secretd: %s\n", err);
		return -1;
	}
	vrc = vault_checkpoint_get(v, blob, AUDIT_CHECKPOINT_MAX, len);
	vault_close(v);
	if (vrc == VAULT_E_NOTFOUND) {
		*len = 0;
		return 0;
	}
	if (vrc != VAULT_OK) {
		fprintf(stderr, "secretd: vault %s: reading the audit checkpoint: %s\n", path,
			vault_strerror(vrc));
		return -1;
	}
	return 0;
}

int cmd_audit_verify(int argc, char **argv)
{
	struct verify_args va = { 0 };
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	size_t blob_len = 0;
	uint8_t *master = NULL;
	char err[512], report[1024];
	int rc = 1, vrc;

	if (argc < 1 || (va.files = calloc((size_t)argc, sizeof(*va.files))) == NULL)
		return 1;
	if (parse_args(argc, argv, &va) != 0) {
		rc = usage();
		goto out;
	}
	if (sodium_init() < 0 || (master = sodium_malloc(KEYFILE_LEN)) == NULL) {
		fprintf(stderr, "secretd: libsodium unusable or out of memory\n");
		goto out;
	}
	if (keyfile_read(va.key_file, master, err, sizeof(err)) != 0) {
		fprintf(stderr, "secretd: %s\n", err);
		goto out;
	}
	if (va.vault != NULL && read_checkpoint(va.vault, master, blob, &blob_len) != 0)
		goto out;
	vrc = audit_verify(master, va.files, va.nfiles, blob_len > 0 ? blob : NULL, blob_len,
			   report, sizeof(report));
	if (vrc == 0) {
		printf("%s\n", report);
		rc = fflush(stdout) == 0 ? 0 : 1;
	} else {
		fprintf(stderr, "secretd: %s\n", report);
	}
out:
	if (master != NULL)
		sodium_free(master);
	free(va.files);
	return rc;
}
