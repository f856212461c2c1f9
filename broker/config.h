/*
 * secretd's settings: compiled-in defaults, then the config file's
 * `key = value` lines, then the command line (which wins).  The keys are the
 * long option names without their dashes.
 */
#ifndef SECRETD_CONFIG_H
#define SECRETD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_PATH "/etc/secretd/secretd.conf"

struct config {
	char *socket;
	char *vault;
	char *key_file;      /* NULL: keyfile_default_path() */
	char *policy;
	char *audit_log;
	char *config;        /* the config file named, or the default */
	bool config_named;   /* a named config file must exist */
	char *user;          /* --user: drop to this user after start-up */
	mode_t socket_mode;
	unsigned max_secret_size;
	unsigned keep_versions;
	bool audit_sync_always;
	unsigned audit_sync_interval_ms;   /* batch: records on disk within this */
	unsigned audit_epoch_records;
	unsigned audit_epoch_seconds;
	unsigned max_connections;          /* in all */
	unsigned max_connections_per_peer; /* per identity (uid + cgroup) */
	unsigned request_timeout_ms;       /* a whole request within this */
	unsigned idle_timeout_ms;          /* an idle connection is closed after */
	unsigned rate_per_second;          /* per-identity token bucket refill */
	unsigned rate_burst;               /* and its size */
	unsigned connect_rate;             /* connection attempts per second per uid */
	unsigned connect_burst;            /* and its bucket size */
	int log_level;                     /* enum log_level */
	char *metrics_listen;              /* ADDR for /metrics and /healthz; NULL: off */
	/* The fleet: upstream = etcd (upstream.c); NULL strings are unset. */
	bool upstream_etcd;
	char *etcd_endpoints;              /* comma list of http(s)://HOST:PORT */
	char *etcd_prefix;                 /* NULL: "/secretd/" */
	char *etcd_cacert, *etcd_cert, *etcd_key;
	char *etcd_user;
	char *etcd_password_file;
	char *cluster_key_file;
};

/* Fill cfg with the compiled-in defaults. */
int config_defaults(struct config *cfg);

/* Set one key (long option name without dashes); -1 and err on a bad key/value. */
int config_set(struct config *cfg, const char *key, const char *value,
	       char *err, size_t errlen);

/* Parse config text (len bytes).  Errors name SOURCE:LINE. */
int config_parse(struct config *cfg, const char *text, size_t len,
		 const char *source, char *err, size_t errlen);

/* Read cfg->config: a missing default file is fine, a named one is not. */
int config_load_file(struct config *cfg, char *err, size_t errlen);

void config_free(struct config *cfg);

/* Strict unsigned parse: digits only, in [min, max].  0 or -1. */
int config_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

#endif
