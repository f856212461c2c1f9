/*
 * `secretd upstream-reset`: a replica forgets the etcd it followed (the
 * revision and cluster id it remembers, and its secrets), so that its next
 * start resynchronises from whatever etcd it meets.  This is how an
 * operator accepts a deliberate restore of etcd from a backup, or moves a
 * node to another cluster.  The audit checkpoint stays: the node's audit
 * chain goes on.  It takes the vault's lock, so the broker must be stopped.
 */
#include "commands.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "keyfile.h"
#include "vault.h"

static int reset_usage(void)
{
	fprintf(stderr, "usage: secretd upstream-reset --vault PATH --key-file PATH\n");
	return 2;
}

int cmd_upstream_reset(int argc, char **argv)
{
	const char *vault_path, *key_path;
	struct vault *v = NULL;
	struct vault_writer *w = NULL;
	struct vault_upstream old;
	struct vault_replica forget = { .replace = true, .forget = true };
	struct vault_op op = { .kind = VAULT_OP_REPLICA, .replica = &forget };
	uint8_t *key = NULL;
	char err[512];
	int ret = 1, rc;

	if (cmd_vault_key_args(argc, argv, &vault_path, &key_path) != 0)
		return reset_usage();
	if (sodium_init() < 0) {
		fprintf(stderr, "secretd: libsodium failed to initialise\n");
		return 1;
	}
	key = sodium_malloc(KEYFILE_LEN);
	if (key == NULL || keyfile_read(key_path, key, err, sizeof(err)) != 0 ||
	    vault_open(vault_path, key, &v, err, sizeof(err)) != 0 ||
	    vault_writer_open(v, 0, &w, err, sizeof(err)) != 0) {
		fprintf(stderr, "secretd: %s\n", key == NULL ? "out of memory" : err);
		goto out;
	}
	rc = vault_upstream_get(v, &old);
	if (rc != VAULT_OK && rc != VAULT_E_NOTFOUND) {
		fprintf(stderr, "secretd: vault %s: %s\n", vault_path, vault_strerror(rc));
		goto out;
	}
	if (vault_write_batch(w, &op, 1) != VAULT_OK || op.result != VAULT_OK) {
		fprintf(stderr, "secretd: vault %s: %s\n", vault_path, vault_strerror(op.result));
		goto out;
	}
	if (rc == VAULT_OK)
		printf("vault %s forgot etcd revision %lld of cluster %016llx and its replicated"
		       " secrets; the next start resynchronises\n", vault_path,
		       (long long)old.revision, (unsigned long long)old.cluster_id);
	else
		printf("vault %s had followed no etcd; its secrets are removed\n", vault_path);
	ret = 0;
out:
	vault_writer_close(w);
	vault_close(v);
	sodium_free(key);
	return ret;
}
