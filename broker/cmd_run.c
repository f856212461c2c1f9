/*
 * secretd run: set-up in a fixed order, every step checked and fatal on
 * failure, then the loop.  Key material is wiped before the loop runs.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "commands.h"
#include "config.h"
#include "keyfile.h"
#include "listen.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "policy.h"
#include "privileges.h"
#include "server.h"
#include "vault.h"

/* "--key value" or "--key=value"; returns the index of the next argument. */
static int option_at(char **argv, int argc, int i, const char **key, const char **value,
		     char *keybuf, size_t keylen)
{
	const char *arg = argv[i] + 2;
	const char *eq = strchr(arg, '=');

	if (eq != NULL) {
		size_t n = (size_t)(eq - arg);
		if (n >= keylen)
			return -1;
		memcpy(keybuf, arg, n);
		keybuf[n] = '\0';
		*key = keybuf;
		*value = eq + 1;
		return i + 1;
	}
	if (i + 1 >= argc)
		return -1;
	*key = arg;
	*value = argv[i + 1];
	return i + 2;
}

/* Two passes: find --config first, so that the command line wins over it. */
static int parse_run_options(int argc, char **argv, int first, struct config *cfg)
{
	char err[512], keybuf[64];
	const char *key, *value;
	int pass, i;

	for (pass = 0; pass < 2; pass++) {
		for (i = first; i < argc;) {
			if (strncmp(argv[i], "--", 2) != 0) {
				fprintf(stderr, "secretd: unexpected argument \"%s\"\n", argv[i]);
				return 2;
			}
			int next = option_at(argv, argc, i, &key, &value, keybuf, sizeof(keybuf));

			if (next < 0) {
				fprintf(stderr, "secretd: option %s needs a value (or is unknown)\n",
					argv[i]);
				return 2;
			}
			i = next;
			if (strcmp(key, "config") == 0) {
				if (pass == 0) {
					free(cfg->config);
					cfg->config = strdup(value);
					cfg->config_named = true;
					if (cfg->config == NULL)
						return 1;
				}
				continue;
			}
			if (pass == 1 && config_set(cfg, key, value, err, sizeof(err)) != 0) {
				fprintf(stderr, "secretd: --%s\n", err);
				return 2;
			}
		}
		if (pass == 0 && config_load_file(cfg, err, sizeof(err)) != 0) {
			fprintf(stderr, "secretd: %s\n", err);
			return 1;
		}
	}
	return 0;
}

struct broker {
	struct vault *vault;
	struct vault_writer *writer;
	struct audit *audit;
	struct policy *policy;
	struct upstream *upstream; /* upstream = etcd */
	int listen_fd;
	bool activated;        /* the socket came from systemd (secretd.socket) */
	struct notify notify;
};

/* Open everything that needs the master key, then wipe the key. */
static int open_sealed_parts(const struct config *cfg, struct broker *b)
{
	const char *key_path = cfg->key_file != NULL ? cfg->key_file : keyfile_default_path();
	struct audit_options aopt = {
		.sync = cfg->audit_sync_always ? AUDIT_SYNC_ALWAYS : AUDIT_SYNC_BATCH,
		.epoch_records = cfg->audit_epoch_records,
		.epoch_seconds = cfg->audit_epoch_seconds,
	};
	uint8_t ckpt[AUDIT_CHECKPOINT_MAX];
	size_t ckpt_len = 0;
	uint8_t *master = sodium_malloc(KEYFILE_LEN);
	char err[512];
	int rc = -1, vrc;

	if (master == NULL) {
		log_err("out of memory");
		return -1;
	}
	if (keyfile_read(key_path, master, err, sizeof(err)) != 0 ||
	    vault_open(cfg->vault, master, &b->vault, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	vrc = vault_checkpoint_get(b->vault, ckpt, sizeof(ckpt), &ckpt_len);
	if (vrc != VAULT_OK && vrc != VAULT_E_NOTFOUND) {
		log_err("vault %s: reading the audit checkpoint: %s", cfg->vault, vault_strerror(vrc));
		goto out;
	}
	if (audit_open(cfg->audit_log, master, &aopt, vrc == VAULT_OK ? ckpt : NULL,
		       vrc == VAULT_OK ? ckpt_len : 0, &b->audit, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	rc = 0;
out:
	/* From here on only the unwrapped data key and the audit key exist. */
	sodium_free(master);
	return rc;
}

static int start_broker(const struct config *cfg, struct broker *b)
{
	char err[512];
	long nofile;

	if (open_sealed_parts(cfg, b) != 0)
		return -1;
	if (policy_load(cfg->policy, &b->policy, err, sizeof(err)) != 0 ||
	    vault_writer_open(b->vault, cfg->keep_versions, &b->writer, err, sizeof(err)) != 0 ||
	    (cfg->upstream_etcd &&
	     upstream_new(cfg, b->vault, &b->upstream, err, sizeof(err)) != 0) ||
	    notify_open(&b->notify, err, sizeof(err)) != 0 ||
	    notify_listen_fd("secretd", &b->listen_fd, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	/* Socket activation hands over a listening socket; else make one. */
	b->activated = b->listen_fd >= 0;
	if (b->activated)
		log_info("listening on the socket systemd passed (socket activation)");
	else if (listen_create(cfg->socket, cfg->socket_mode, &b->listen_fd, err,
			       sizeof(err)) != 0) {
		log_err("%s", err);
		return -1;
	}
	/* Learn our own pid namespace depth while /proc/self is still ours. */
	if (peer_own_pidns_depth() <= 0) {
		log_err("cannot read NSpid from /proc/self/status");
		return -1;
	}
	/*
	 * A client that hangs up before its answer is written must cost the
	 * broker an EPIPE on that connection, not its life.
	 */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		log_err("cannot ignore SIGPIPE: %s", strerror(errno));
		return -1;
	}
	nofile = privileges_raise_nofile();
	if (nofile < 0)
		log_warn("cannot raise the open file limit: %s", strerror(errno));
	if (privileges_drop(cfg->user, err, sizeof(err)) != 0) {
		log_err("dropping privileges: %s", err);
		return -1;
	}
	log_info("secretd %s: vault %s, policy %s, audit log %s%s%s", SECRETD_VERSION, cfg->vault,
		 cfg->policy, cfg->audit_log, cfg->user != NULL ? ", running as " : "",
		 cfg->user != NULL ? cfg->user : "");
	return 0;
}

static void stop_broker(struct broker *b)
{
	if (b->audit != NULL && audit_close(b->audit) != 0)
		log_err("closing the audit log failed");
	upstream_free(b->upstream);
	vault_writer_close(b->writer);
	vault_close(b->vault);
	policy_free(b->policy);
	if (b->listen_fd >= 0)
		close(b->listen_fd);
	notify_close(&b->notify);
}

/* A clean exit leaves no socket behind (the next start would replace it anyway). */
static void remove_socket(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		log_warn("cannot remove the socket %s: %s", path, strerror(errno));
}

int cmd_run(int argc, char **argv, int first)
{
	struct config cfg;
	struct broker b = { .listen_fd = -1, .notify = { .fd = -1 } };
	int ret;

	if (config_defaults(&cfg) != 0) {
		fprintf(stderr, "secretd: out of memory\n");
		return 1;
	}
	ret = parse_run_options(argc, argv, first, &cfg);
	if (ret != 0)
		goto out;
	log_set_level((enum log_level)cfg.log_level);
	ret = 1;
	if (sodium_init() < 0) {
		log_err("libsodium failed to initialise");
		goto out;
	}
	if (start_broker(&cfg, &b) == 0) {
		struct server_parts parts = {
			.cfg = &cfg, .vault = b.vault, .writer = b.writer,
			.audit = b.audit, .policy = b.policy, .listen_fd = b.listen_fd,
			.notify = &b.notify, .upstream = b.upstream,
		};
		b.policy = NULL;   /* the server owns it now */
		b.upstream = NULL; /* and the upstream */
		b.listen_fd = -1;  /* and the socket */
		ret = server_run(&parts);
		/* An activated socket is systemd's to keep for the next start. */
		if (!b.activated)
			remove_socket(cfg.socket);
	}
	stop_broker(&b);
out:
	config_free(&cfg);
	return ret;
}

