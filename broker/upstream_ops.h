/*
 * The upstream as a loadable module: secretd-upstream-etcd.so defines
 * `secretd_upstream_etcd`, a table of the functions of upstream.h; the
 * broker (upstream_module.c) loads it with dlopen only when the config says
 * upstream = etcd, so a broker without one maps none of libcurl, its TLS
 * library and the rest.  The module resolves the broker's own functions
 * (the writer, the gate, the watch hub, the vault) from the executable,
 * which exports them.  version must be the broker's SECRETD_VERSION and
 * abi the sizes of what both lay out as the broker has them: a module of
 * another version, or built from sources whose shared structs differ in
 * size, is refused.  (A change that keeps every size is not seen: broker
 * and module are built and installed together.)
 */
#ifndef SECRETD_UPSTREAM_OPS_H
#define SECRETD_UPSTREAM_OPS_H

#include <stddef.h>

#include "audit_record.h"
#include "config.h"
#include "identity.h"
#include "services.h"
#include "upstream.h"
#include "vault.h"
#include "writer.h"

#define UPSTREAM_ETCD_MODULE "secretd-upstream-etcd.so"
#define UPSTREAM_ETCD_SYMBOL "secretd_upstream_etcd"

/* The sizes of the structs the broker and the module share; ops first (upstream_module.c). */
struct upstream_abi {
	size_t ops, config, services, status, identity, audit_event, writer_job;
	size_t vault_upstream, vault_change, vault_replica;
};

struct upstream_ops;
#define UPSTREAM_ABI                                                                         \
	{                                                                                    \
		sizeof(struct upstream_ops), sizeof(struct config), sizeof(struct services), \
		sizeof(struct upstream_status), sizeof(struct identity),                     \
		sizeof(struct audit_event), sizeof(struct writer_job),                       \
		sizeof(struct vault_upstream), sizeof(struct vault_change),                  \
		sizeof(struct vault_replica)                                                 \
	}

/* version first, then abi: the broker reads abi only once version matched. */
struct upstream_ops {
	const char *version;
	struct upstream_abi abi;
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
