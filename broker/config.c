/* Defaults, the config file and option values, all through config_set(). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "number.h"
#include <secretd/wire.h>

#define CONFIG_MAX_FILE (64 * 1024)
#define CONFIG_MAX_LINE 4096

enum value_kind { V_PATH, V_STRING, V_LIST, V_UINT, V_MODE, V_SYNC, V_LEVEL, V_UPSTREAM };

struct setting {
	const char *key;
	enum value_kind kind;
	size_t offset;
	unsigned min, max; /* V_UINT */
};

#define STR(field) offsetof(struct config, field)
static const struct setting settings[] = {
	{ "socket", V_PATH, STR(socket), 0, 0 },
	{ "vault", V_PATH, STR(vault), 0, 0 },
	{ "key-file", V_PATH, STR(key_file), 0, 0 },
	{ "policy", V_PATH, STR(policy), 0, 0 },
	{ "audit-log", V_PATH, STR(audit_log), 0, 0 },
	{ "user", V_STRING, STR(user), 0, 0 },
	{ "socket-mode", V_MODE, STR(socket_mode), 0, 0 },
	{ "max-secret-size", V_UINT, STR(max_secret_size), 0, WIRE_MAX_VALUE },
	{ "keep-versions", V_UINT, STR(keep_versions), 1, 1000 },
	{ "audit-sync", V_SYNC, STR(audit_sync_always), 0, 0 },
	{ "audit-sync-interval", V_UINT, STR(audit_sync_interval_ms), 1, 1000 },
	{ "audit-epoch-records", V_UINT, STR(audit_epoch_records), 1, 1000000 },
	{ "audit-epoch-seconds", V_UINT, STR(audit_epoch_seconds), 1, 86400 },
	{ "max-connections", V_UINT, STR(max_connections), 1, 1000000 },
	{ "max-connections-per-peer", V_UINT, STR(max_connections_per_peer), 1, 1000000 },
	{ "request-timeout", V_UINT, STR(request_timeout_ms), 10, 3600000 },
	{ "idle-timeout", V_UINT, STR(idle_timeout_ms), 10, 86400000 },
	{ "rate", V_UINT, STR(rate_per_second), 1, 10000000 },
	{ "rate-burst", V_UINT, STR(rate_burst), 1, 10000000 },
	{ "connect-rate", V_UINT, STR(connect_rate), 1, 10000000 },
	{ "connect-burst", V_UINT, STR(connect_burst), 1, 10000000 },
	{ "log-level", V_LEVEL, STR(log_level), 0, 0 },
	{ "metrics-listen", V_STRING, STR(metrics_listen), 0, 0 },
	{ "upstream", V_UPSTREAM, STR(upstream_etcd), 0, 0 },
	{ "etcd-endpoints", V_LIST, STR(etcd_endpoints), 0, 0 },
	{ "etcd-prefix", V_STRING, STR(etcd_prefix), 0, 0 },
	{ "etcd-cacert", V_PATH, STR(etcd_cacert), 0, 0 },
	{ "etcd-cert", V_PATH, STR(etcd_cert), 0, 0 },
	{ "etcd-key", V_PATH, STR(etcd_key), 0, 0 },
	{ "etcd-user", V_STRING, STR(etcd_user), 0, 0 },
	{ "etcd-password-file", V_PATH, STR(etcd_password_file), 0, 0 },
	{ "cluster-key-file", V_PATH, STR(cluster_key_file), 0, 0 },
};
#undef STR

static int set_string(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

int config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_mode = 0666;
	cfg->max_secret_size = 65536;
	cfg->keep_versions = 10;
	cfg->audit_sync_interval_ms = 20;
	cfg->audit_epoch_records = 1000;
	cfg->audit_epoch_seconds = 60;
	cfg->max_connections = 16384;
	cfg->max_connections_per_peer = 256;
	cfg->request_timeout_ms = 5000;
	cfg->idle_timeout_ms = 60000;
	cfg->rate_per_second = 2000;
	cfg->rate_burst = 4000;
	cfg->connect_rate = 5000;
	cfg->connect_burst = 10000;
	cfg->log_level = LOGL_INFO;
	if (set_string(&cfg->socket, "/run/secretd/secretd.sock") != 0 ||
	    set_string(&cfg->vault, "/var/lib/secretd/vault.db") != 0 ||
	    set_string(&cfg->policy, "/etc/secretd/policy.conf") != 0 ||
	    set_string(&cfg->audit_log, "/var/log/secretd/audit.log") != 0 ||
	    set_string(&cfg->config, CONFIG_DEFAULT_PATH) != 0) {
		config_free(cfg);
		return -1;
	}
	return 0;
}

void config_free(struct config *cfg)
{
	free(cfg->socket);
	free(cfg->vault);
	free(cfg->key_file);
	free(cfg->policy);
	free(cfg->audit_log);
	free(cfg->config);
	free(cfg->user);
	free(cfg->metrics_listen);
	free(cfg->etcd_endpoints);
	free(cfg->etcd_prefix);
	free(cfg->etcd_cacert);
	free(cfg->etcd_cert);
	free(cfg->etcd_key);
	free(cfg->etcd_user);
	free(cfg->etcd_password_file);
	free(cfg->cluster_key_file);
	memset(cfg, 0, sizeof(*cfg));
}

int config_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;

	if (number_parse(s, strlen(s), 10, min, max, &v) != 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_mode(const char *s, mode_t *out)
{
	unsigned long v;

	if (number_parse(s, strlen(s), 8, 0, 0777, &v) != 0)
		return -1;
	*out = (mode_t)v;
	return 0;
}

static int parse_level(const char *s, int *out)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

static const struct setting *find_setting(const char *key)
{
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (strcmp(settings[i].key, key) == 0)
			return &settings[i];
	return NULL;
}

int config_set(struct config *cfg, const char *key, const char *value,
	       char *err, size_t errlen)
{
	const struct setting *s = find_setting(key);
	char *base = (char *)cfg;

	if (s == NULL) {
		snprintf(err, errlen, "unknown setting \"%s\"", key);
		return -1;
	}
	switch (s->kind) {
	case V_PATH:
		if (value[0] == '\0' || strlen(value) >= PATH_MAX)
			break;
		if (set_string((char **)(void *)(base + s->offset), value) != 0)
			goto nomem;
		return 0;
	case V_STRING:
		if (value[0] == '\0' || strlen(value) > 255)
			break;
		if (set_string((char **)(void *)(base + s->offset), value) != 0)
			goto nomem;
		return 0;
	case V_LIST:
		/* Up to ETCD_MAX_ENDPOINTS URLs of a few dozen bytes each. */
		if (value[0] == '\0' || strlen(value) > 2047)
			break;
		if (set_string((char **)(void *)(base + s->offset), value) != 0)
			goto nomem;
		return 0;
	case V_UINT:
		if (config_parse_uint(value, s->min, s->max,
				      (unsigned *)(void *)(base + s->offset)) != 0) {
			snprintf(err, errlen, "%s: expected a whole number from %u to %u",
				 key, s->min, s->max);
			return -1;
		}
		return 0;
	case V_MODE:
		if (parse_mode(value, (mode_t *)(void *)(base + s->offset)) != 0) {
			snprintf(err, errlen, "%s: expected an octal mode such as 0660", key);
			return -1;
		}
		return 0;
	case V_SYNC:
		if (strcmp(value, "batch") == 0 || strcmp(value, "always") == 0) {
			cfg->audit_sync_always = strcmp(value, "always") == 0;
			return 0;
		}
		snprintf(err, errlen, "%s: expected batch or always", key);
		return -1;
	case V_UPSTREAM:
		if (strcmp(value, "none") == 0 || strcmp(value, "etcd") == 0) {
			cfg->upstream_etcd = strcmp(value, "etcd") == 0;
			return 0;
		}
		snprintf(err, errlen, "%s: expected none or etcd", key);
		return -1;
	case V_LEVEL:
		if (parse_level(value, (int *)(void *)(base + s->offset)) == 0)
			return 0;
		snprintf(err, errlen, "%s: expected error, warning, info or debug", key);
		return -1;
	}
	snprintf(err, errlen, "%s: empty or too long value", key);
	return -1;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static const char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

/* One "key = value" line (terminated copy); comments and blanks are fine. */
static int parse_line(struct config *cfg, char *line, const char *source,
		      unsigned lineno, char *err, size_t errlen)
{
	char *eq, *end = line + strlen(line);
	char inner[512];
	const char *key, *value;

	if (line[strspn(line, " \t\r")] == '#' || line[strspn(line, " \t\r")] == '\0')
		return 0;
	eq = strchr(line, '=');
	if (eq == NULL) {
		snprintf(err, errlen, "%s:%u: expected \"key = value\"", source, lineno);
		return -1;
	}
	key = trim(line, eq);
	value = trim(eq + 1, end);
	if (config_set(cfg, key, value, inner, sizeof(inner)) != 0) {
		snprintf(err, errlen, "%s:%u: %s", source, lineno, inner);
		return -1;
	}
	return 0;
}

int config_parse(struct config *cfg, const char *text, size_t len,
		 const char *source, char *err, size_t errlen)
{
	char line[CONFIG_MAX_LINE + 1];
	unsigned lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;

		lineno++;
		if (n > CONFIG_MAX_LINE) {
			snprintf(err, errlen, "%s:%u: line too long", source, lineno);
			return -1;
		}
		if (memchr(text + pos, '\0', n) != NULL) {
			snprintf(err, errlen, "%s:%u: NUL byte", source, lineno);
			return -1;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (parse_line(cfg, line, source, lineno, err, errlen) != 0)
			return -1;
		pos += n + (nl != NULL);
	}
	return 0;
}

int config_load_file(struct config *cfg, char *err, size_t errlen)
{
	char *text = NULL;
	struct stat st;
	int rc = -1;
	ssize_t n;
	int fd = open(cfg->config, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		if (errno == ENOENT && !cfg->config_named)
			return 0;
		snprintf(err, errlen, "config %s: %s", cfg->config, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_FILE) {
		snprintf(err, errlen, "config %s: not a regular file of at most %d bytes",
			 cfg->config, CONFIG_MAX_FILE);
		goto out;
	}
	/* It names the policy, the log and the user: as guarded as the policy. */
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 || (st.st_uid != 0 && st.st_uid != geteuid())) {
		snprintf(err, errlen, "config %s: must be owned by root (or us) and not writable "
			 "by group or others (mode %04o, uid %u)", cfg->config,
			 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	n = read(fd, text, (size_t)st.st_size);
	if (n != st.st_size) {
		snprintf(err, errlen, "config %s: short read", cfg->config);
		goto out;
	}
	rc = config_parse(cfg, text, (size_t)n, cfg->config, err, errlen);
out:
	free(text);
	close(fd);
	return rc;
}
