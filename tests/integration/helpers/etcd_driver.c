/*
 * secretd-etcd-driver: drives the fleet modules (etcd_client + fleet) from
 * a libuv loop for the integration tests and the benchmark, the way the
 * broker will: every call asynchronous, every result on the loop thread.
 *
 *   secretd-etcd-driver [options] COMMAND [ARGS]
 *     init                      open (or create) the fleet data key
 *     put NAME                  value from stdin; prints version= revision= attempts=
 *     put-many NAME COUNT       COUNT puts one after another; a line each: ok/fail
 *     rm NAME
 *     get NAME [VERSION]        the value on stdout
 *     snapshot                  every record under the prefix, then revision=
 *     watch FROM COUNT          print changes from revision FROM until COUNT heads changed
 *     status                    cluster_id= revision= leader=
 *     bench raw|fleet WRITERS TOTAL   concurrent txns; prints ops_per_s=
 *   options: --endpoints LIST --prefix P --cluster-key FILE --keep N
 *            --cacert F --cert F --key F --user U --password-file F
 *            --timeout-ms N --expect-cluster ID --floor REV --wait-ms N
 *            --pause-ms N (between the puts of put-many)
 * Exit: 0 ok, 1 error, 2 timed out (--wait-ms), 3 compacted, 4 not found,
 * 5 cluster id or rollback refused, 6 etcd unavailable.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "etcd_client.h"
#include "fleet.h"
#include "keyfile.h"

#define VALUE_MAX (1u << 20)

static struct {
	const char *endpoints, *prefix, *keyfile, *cacert, *cert, *key, *user, *pwfile;
	unsigned keep, timeout_ms, wait_ms, pause_ms;
	uint64_t expect_cluster;
	int64_t floor;
	char **args;
	int nargs;
} opt = { .prefix = FLEET_DEFAULT_PREFIX, .keep = 10 };

static uv_loop_t *loop;
static struct etcd_client *client;
static struct fleet *fleet;
static struct fleet_watch *watch;
static uv_timer_t deadline, pause_timer;
static int exit_code = 1;
static uint8_t *input;
static size_t input_len;

/* put-many and bench state. */
static unsigned total_ops, sent, done_n, failed, writers;
static uint64_t t0;
static const char *many_name;

static int code_for(int status)
{
	switch (status) {
	case ETCD_OK: return 0;
	case ETCD_E_UNAVAILABLE: return 6;
	case ETCD_E_COMPACTED: return 3;
	case ETCD_E_NOTFOUND: return 4;
	case ETCD_E_CLUSTER:
	case ETCD_E_ROLLBACK: return 5;
	}
	return 1;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_client_closed(void *arg)
{
	(void)arg;
	fleet_free(fleet);
	fleet = NULL;
}

static void finish(int code)
{
	static bool finished;

	if (finished)
		return;
	finished = true;
	exit_code = code;
	if (watch != NULL)
		fleet_watch_stop(watch);
	watch = NULL;
	if (!uv_is_closing((uv_handle_t *)&deadline))
		uv_close((uv_handle_t *)&deadline, NULL);
	if (!uv_is_closing((uv_handle_t *)&pause_timer))
		uv_close((uv_handle_t *)&pause_timer, NULL);
	fflush(stdout);
	etcd_client_close(client, on_client_closed, NULL);
}

static void fail_with(const char *what, int status, const struct etcd_error *e)
{
	fprintf(stderr, "etcd-driver: %s: %s", what, etcd_strerror(status));
	if (e != NULL && e->message[0] != '\0')
		fprintf(stderr, " (etcd %d: %s)", e->code, e->message);
	fprintf(stderr, "\n");
	finish(code_for(status));
}

static void on_put(const struct fleet_result *r, void *arg)
{
	(void)arg;
	if (r->status != ETCD_OK) {
		fail_with("put", r->status, &r->error);
		return;
	}
	printf("version=%u revision=%lld attempts=%u cluster_id=%llu\n", r->version,
	       (long long)r->revision, r->attempts, (unsigned long long)r->cluster_id);
	finish(0);
}

static void on_rm(const struct fleet_result *r, void *arg)
{
	(void)arg;
	if (r->status != ETCD_OK) {
		fail_with("rm", r->status, &r->error);
		return;
	}
	printf("version=%u revision=%lld\n", r->version, (long long)r->revision);
	finish(0);
}

static void on_get(const struct fleet_result *r, const uint8_t *value, size_t len, void *arg)
{
	(void)arg;
	if (r->status != ETCD_OK) {
		fail_with("get", r->status, &r->error);
		return;
	}
	if (len > 0 && fwrite(value, 1, len, stdout) != len) {
		finish(1);
		return;
	}
	finish(0);
}

static void many_next(void);

static void on_pause(uv_timer_t *t)
{
	(void)t;
	many_next();
}

static void on_many(const struct fleet_result *r, void *arg)
{
	(void)arg;
	done_n++;
	if (r->status == ETCD_OK)
		printf("ok version=%u revision=%lld\n", r->version, (long long)r->revision);
	else {
		printf("fail %s\n", etcd_strerror(r->status));
		failed++;
	}
	fflush(stdout);
	if (opt.pause_ms > 0 && sent < total_ops)
		uv_timer_start(&pause_timer, on_pause, opt.pause_ms, 0);
	else
		many_next();
}

static void many_next(void)
{
	char value[64];
	int n, rc;

	if (sent == total_ops) {
		finish(failed == total_ops ? 6 : 0);
		return;
	}
	n = snprintf(value, sizeof(value), "value-%d-%u", (int)getpid(), sent);
	sent++;
	rc = fleet_put(fleet, many_name, strlen(many_name), (const uint8_t *)value, (size_t)n,
		       on_many, NULL);
	if (rc != ETCD_OK)
		fail_with("put", rc, NULL);
}

static int on_item(const struct fleet_item *it, void *arg)
{
	static const char *const kinds[] = { "other", "datakey", "head", "version" };

	(void)arg;
	printf("%s %.*s version=%u%s%s mod_revision=%lld len=%zu\n", kinds[it->kind],
	       (int)it->name_len, it->name != NULL ? it->name : "", it->version,
	       it->removed ? " removed" : "", it->status != ETCD_OK ? " BAD" : "",
	       (long long)it->mod_revision, it->sealed_len);
	return 0;
}

static void on_snapshot(int status, int64_t revision, uint64_t cluster_id, void *arg)
{
	(void)arg;
	if (status != ETCD_OK) {
		fail_with("snapshot", status, NULL);
		return;
	}
	printf("revision=%lld cluster_id=%llu\n", (long long)revision,
	       (unsigned long long)cluster_id);
	finish(0);
}

static unsigned watch_left;

static void on_watch(int status, int64_t revision, const struct fleet_change *ch, size_t n,
		     void *arg)
{
	(void)arg;
	if (status == ETCD_E_COMPACTED) {
		printf("compacted=%lld\n", (long long)revision);
		finish(3);
		return;
	}
	if (status != ETCD_OK) {
		printf("disconnected %s\n", etcd_strerror(status));
		fflush(stdout);
		if (status == ETCD_E_CLUSTER || status == ETCD_E_ROLLBACK)
			finish(5);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct fleet_item *it = &ch[i].item;
		uint8_t *plain = NULL;
		size_t plen = 0;

		if (it->kind != FLEET_K_HEAD && it->kind != FLEET_K_VERSION)
			continue;
		if (it->kind == FLEET_K_VERSION && ch[i].type == ETCD_EVENT_PUT &&
		    fleet_unseal(fleet, it, &plain, &plen) != ETCD_OK) {
			printf("BAD record %.*s\n", (int)it->name_len, it->name);
			finish(1);
			return;
		}
		if (plain != NULL)
			sodium_free(plain);
		printf("rev=%lld %s %s %.*s version=%u%s\n", (long long)it->mod_revision,
		       ch[i].type == ETCD_EVENT_PUT ? "put" : "delete",
		       it->kind == FLEET_K_HEAD ? "head" : "version", (int)it->name_len, it->name,
		       it->version, it->removed ? " removed" : "");
		if (it->kind == FLEET_K_HEAD && watch_left > 0 && --watch_left == 0) {
			fflush(stdout);
			finish(0);
			return;
		}
	}
	(void)revision;
	fflush(stdout);
}

static void on_status(const struct etcd_result *r, void *arg)
{
	(void)arg;
	if (r->status != ETCD_OK) {
		fail_with("status", r->status, &r->error);
		return;
	}
	printf("cluster_id=%llu revision=%lld leader=%llu member=%llu\n",
	       (unsigned long long)r->header.cluster_id, (long long)r->header.revision,
	       (unsigned long long)r->st.leader, (unsigned long long)r->header.member_id);
	finish(0);
}

/* Benchmark: WRITERS requests in flight, TOTAL in all, distinct names. */
static bool bench_raw;

static void bench_next(void);

static void bench_done(int status)
{
	done_n++;
	if (status != ETCD_OK && failed++ == 0)
		fprintf(stderr, "etcd-driver: bench: first failure: %s\n", etcd_strerror(status));
	if (done_n == total_ops) {
		double s = (double)(now_us() - t0) / 1e6;

		printf("mode=%s writers=%u total=%u failed=%u seconds=%.3f ops_per_s=%.0f\n",
		       bench_raw ? "raw" : "fleet", writers, total_ops, failed, s, total_ops / s);
		finish(failed > 0 ? 1 : 0);
		return;
	}
	bench_next();
}

static void on_bench_txn(const struct etcd_result *r, void *arg)
{
	(void)arg;
	bench_done(r->status);
}

static void on_bench_put(const struct fleet_result *r, void *arg)
{
	(void)arg;
	bench_done(r->status);
}

static void bench_next(void)
{
	char name[64];
	uint8_t value[64];
	int n, rc;

	if (sent == total_ops)
		return;
	n = snprintf(name, sizeof(name), "bench/n%u", sent % 1000);
	memset(value, 'x', sizeof(value));
	sent++;
	if (bench_raw) {
		char key[128];
		int kl = snprintf(key, sizeof(key), "%sbench/raw%u", opt.prefix, sent);
		struct etcd_cmp cmp = { .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
					.key = (uint8_t *)key, .klen = (size_t)kl, .number = 0 };
		struct etcd_op put = { .kind = ETCD_OP_PUT, .key = (uint8_t *)key,
				       .klen = (size_t)kl, .value = value, .vlen = sizeof(value) };
		struct etcd_txn t = { &cmp, 1, &put, 1, NULL, 0 };

		rc = etcd_txn(client, &t, on_bench_txn, NULL);
	} else {
		rc = fleet_put(fleet, name, (size_t)n, value, sizeof(value), on_bench_put, NULL);
	}
	if (rc != ETCD_OK)
		fail_with("bench", rc, NULL);
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max;
}

static void run_command(void)
{
	const char *cmd = opt.args[0];
	unsigned long long n = 0, m = 0;
	int rc = ETCD_E_INVALID;

	if (strcmp(cmd, "init") == 0 && opt.nargs == 1) {
		printf("cluster_id=%llu\n", (unsigned long long)etcd_client_cluster_id(client));
		finish(0);
		return;
	}
	if (strcmp(cmd, "put") == 0 && opt.nargs == 2)
		rc = fleet_put(fleet, opt.args[1], strlen(opt.args[1]), input, input_len, on_put,
			       NULL);
	else if (strcmp(cmd, "rm") == 0 && opt.nargs == 2)
		rc = fleet_rm(fleet, opt.args[1], strlen(opt.args[1]), on_rm, NULL);
	else if (strcmp(cmd, "get") == 0 && (opt.nargs == 2 || opt.nargs == 3)) {
		if (opt.nargs == 3 && !parse_uint(opt.args[2], UINT32_MAX, &n))
			goto usage;
		rc = fleet_get(fleet, opt.args[1], strlen(opt.args[1]), (uint32_t)n, on_get, NULL);
	} else if (strcmp(cmd, "put-many") == 0 && opt.nargs == 3) {
		if (!parse_uint(opt.args[2], 1000000, &n) || n == 0)
			goto usage;
		many_name = opt.args[1];
		total_ops = (unsigned)n;
		many_next();
		return;
	} else if (strcmp(cmd, "snapshot") == 0 && opt.nargs == 1) {
		rc = fleet_snapshot(fleet, on_item, on_snapshot, NULL);
	} else if (strcmp(cmd, "watch") == 0 && opt.nargs == 3) {
		if (!parse_uint(opt.args[1], INT64_MAX, &n) || !parse_uint(opt.args[2], 1000000, &m))
			goto usage;
		watch_left = (unsigned)m;
		rc = fleet_watch(fleet, (int64_t)n, on_watch, NULL, &watch);
		if (rc == ETCD_OK) {
			printf("watching\n");
			fflush(stdout);
		}
	} else if (strcmp(cmd, "status") == 0 && opt.nargs == 1) {
		rc = etcd_status(client, on_status, NULL);
	} else if (strcmp(cmd, "bench") == 0 && opt.nargs == 4) {
		if (!parse_uint(opt.args[2], 10000, &n) || !parse_uint(opt.args[3], 10000000, &m) ||
		    n == 0 || m == 0)
			goto usage;
		bench_raw = strcmp(opt.args[1], "raw") == 0;
		writers = (unsigned)n;
		total_ops = (unsigned)m;
		t0 = now_us();
		for (unsigned i = 0; i < writers && i < total_ops; i++)
			bench_next();
		return;
	} else {
		goto usage;
	}
	if (rc != ETCD_OK)
		fail_with(cmd, rc, NULL);
	return;
usage:
	fprintf(stderr, "etcd-driver: bad command or arguments (see the source's header)\n");
	finish(1);
}

static void on_ready(struct fleet *f, int status, void *arg)
{
	(void)f;
	(void)arg;
	if (status != ETCD_OK) {
		fail_with("fleet", status, NULL);
		return;
	}
	run_command();
}

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	fprintf(stderr, "etcd-driver: --wait-ms elapsed\n");
	finish(2);
}

static int read_all(int fd, uint8_t **out, size_t *len, size_t max)
{
	uint8_t *buf = sodium_malloc(max);
	size_t got = 0;
	ssize_t n;

	if (buf == NULL)
		return -1;
	while ((n = read(fd, buf + got, max - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (size_t)n == max - got) {
			sodium_free(buf);
			return -1;
		}
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "endpoints", required_argument, NULL, 'e' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "cluster-key", required_argument, NULL, 'k' },
		{ "keep", required_argument, NULL, 'K' },
		{ "cacert", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'Y' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'P' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "expect-cluster", required_argument, NULL, 'c' },
		{ "floor", required_argument, NULL, 'f' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "pause-ms", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct etcd_client_config cc = { 0 };
	struct fleet_config fc = { 0 };
	uint8_t *ckey = NULL, *pw = NULL;
	size_t pwlen = 0;
	unsigned long long v;
	char err[256];
	int c, rc;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'e': opt.endpoints = optarg; break;
		case 'p': opt.prefix = optarg; break;
		case 'k': opt.keyfile = optarg; break;
		case 'A': opt.cacert = optarg; break;
		case 'C': opt.cert = optarg; break;
		case 'Y': opt.key = optarg; break;
		case 'u': opt.user = optarg; break;
		case 'P': opt.pwfile = optarg; break;
		case 'K':
		case 't':
		case 'w':
		case 'W':
			if (!parse_uint(optarg, 100000000, &v))
				goto usage;
			*(c == 'K' ? &opt.keep : c == 't' ? &opt.timeout_ms
			  : c == 'w' ? &opt.wait_ms : &opt.pause_ms) = (unsigned)v;
			break;
		case 'c':
			if (!parse_uint(optarg, UINT64_MAX, &v))
				goto usage;
			opt.expect_cluster = v;
			break;
		case 'f':
			if (!parse_uint(optarg, INT64_MAX, &v))
				goto usage;
			opt.floor = (int64_t)v;
			break;
		default:
			goto usage;
		}
	}
	opt.args = argv + optind;
	opt.nargs = argc - optind;
	if (opt.nargs < 1 || opt.endpoints == NULL || opt.keyfile == NULL)
		goto usage;
	if (sodium_init() < 0)
		return 1;
	ckey = sodium_malloc(KEYFILE_LEN);
	if (ckey == NULL || keyfile_read(opt.keyfile, ckey, err, sizeof(err)) != 0) {
		fprintf(stderr, "etcd-driver: %s\n", ckey == NULL ? "out of memory" : err);
		return 1;
	}
	if (opt.pwfile != NULL) {
		int fd = open(opt.pwfile, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || read_all(fd, &pw, &pwlen, 4096) != 0) {
			fprintf(stderr, "etcd-driver: password file %s: unreadable\n", opt.pwfile);
			return 1;
		}
		close(fd);
		while (pwlen > 0 && (pw[pwlen - 1] == '\n' || pw[pwlen - 1] == '\r'))
			pwlen--;
	}
	if (strcmp(opt.args[0], "put") == 0 &&
	    read_all(STDIN_FILENO, &input, &input_len, VALUE_MAX) != 0) {
		fprintf(stderr, "etcd-driver: cannot read the value from stdin\n");
		return 1;
	}
	loop = uv_default_loop();
	cc.endpoints = opt.endpoints;
	cc.cacert = opt.cacert;
	cc.cert = opt.cert;
	cc.key = opt.key;
	cc.user = opt.user;
	cc.password = (const char *)pw;
	cc.password_len = pwlen;
	cc.timeout_ms = opt.timeout_ms;
	rc = etcd_client_new(loop, &cc, &client, err, sizeof(err));
	if (pw != NULL)
		sodium_free(pw);
	if (rc != ETCD_OK) {
		fprintf(stderr, "etcd-driver: %s\n", err);
		return 1;
	}
	etcd_client_expect(client, opt.expect_cluster, opt.floor);
	uv_timer_init(loop, &deadline);
	uv_timer_init(loop, &pause_timer);
	if (opt.wait_ms > 0)
		uv_timer_start(&deadline, on_deadline, opt.wait_ms, 0);
	fc.prefix = opt.prefix;
	fc.cluster_key = ckey;
	fc.keep_versions = opt.keep;
	rc = fleet_new(loop, client, &fc, on_ready, NULL, &fleet);
	sodium_free(ckey);
	if (rc != ETCD_OK) {
		fprintf(stderr, "etcd-driver: fleet: %s\n", etcd_strerror(rc));
		finish(1);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	if (input != NULL)
		sodium_free(input);
	if (uv_loop_close(loop) != 0) {
		fprintf(stderr, "etcd-driver: handles left open\n");
		return 1;
	}
	return exit_code;
usage:
	fprintf(stderr, "usage: secretd-etcd-driver --endpoints LIST --cluster-key FILE "
		"[options] COMMAND [ARGS]\n");
	return 1;
}
