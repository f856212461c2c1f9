/* `secretd init`: a new vault and a new master key, never over old ones. */
#include "commands.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfile.h"
#include "vault.h"

static int init_usage(void)
{
	fprintf(stderr, "usage: secretd init --vault PATH --key-file PATH\n");
	return 2;
}

int cmd_vault_key_args(int argc, char **argv, const char **vault, const char **key)
{
	*vault = *key = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--vault") == 0 && i + 1 < argc)
			*vault = argv[++i];
		else if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
			*key = argv[++i];
		else
			return -1;
	}
	return *vault != NULL && *key != NULL ? 0 : -1;
}

int cmd_init(int argc, char **argv)
{
	const char *vault_path, *key_path;
	uint8_t *key = NULL;
	char err[512];
	int ret = 1;

	if (cmd_vault_key_args(argc, argv, &vault_path, &key_path) != 0)
		return init_usage();
	if (sodium_init() < 0) {
		fprintf(stderr, "secretd: libsodium failed to initialise\n");
		return 1;
	}
	if (access(vault_path, F_OK) == 0) {
		fprintf(stderr, "secretd: vault %s already exists; refusing to overwrite\n",
			vault_path);
		return 1;
	}
	if (keyfile_create(key_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "secretd: %s\n", err);
		return 1;
	}
	key = sodium_malloc(KEYFILE_LEN);
	if (key == NULL || keyfile_read(key_path, key, err, sizeof(err)) != 0 ||
	    vault_create(vault_path, key, err, sizeof(err)) != 0) {
		fprintf(stderr, "secretd: %s\n", key == NULL ? "out of memory" : err);
		/* Half an init is no init: the new key opens nothing. */
		unlink(key_path);
		goto out;
	}
	printf("created vault %s and key file %s (mode 0400)\n", vault_path, key_path);
	ret = 0;
out:
	sodium_free(key);
	return ret;
}
