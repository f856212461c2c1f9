/*
 * The upstream as a loadable module: secretd-upstream-etcd.so defines
 * `secretd_upstream_etcd`, a table of the functions of upstream.h; the
 * broker (upstream_module.c) loads it with dlopen only when the config says
 * upstream = etcd, so a broker without one maps none of libcurl, its TLS
 * library and the rest.  The module resolves the broker's own functions
 * (the writer, the gate, the watch hub, the vault) from the executable,
 * which exports them.  version must be the broker's SECRETD_VERSION: a
 * module of another build is refused.
 */
#ifndef SECRETD_UPSTREAM_OPS_H
#define SECRETD_UPSTREAM_OPS_H

#include "upstream.h"

#define UPSTREAM_ETCD_MODULE "secretd-upstream-etcd.so"
#define UPSTREAM_ETCD_SYMBOL "secretd_upstream_etcd"

struct upstream_ops {
	const char *version;
	int (*create)(const struct config *cfg, struct vault *vault, struct upstream **out,
		      char *err, size_t errlen);
	void (*destroy)(struct upstream *u);
	int (*start)(struct upstream *u, struct services *svc, char *err, size_t errlen);
	void (*stop)(struct upstream *u, void (*done)(void *arg), void *arg);
	int (*put)(struct upstream *u, const char *name, size_t nlen, const uint8_t *value,
		   size_t vlen, upstream_done_fn done, void *arg);
	int (*rm)(struct upstream *u, const char *name, size_t nlen, upstream_done_fn done,
		  void *arg);
	void (*status)(struct upstream *u, struct upstream_status *out);
	const char *(*problem)(struct upstream *u);
};

#endif
