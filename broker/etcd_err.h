/* Error codes shared by the etcd client and the fleet layer: 0 or negative. */
#ifndef SECRETD_ETCD_ERR_H
#define SECRETD_ETCD_ERR_H

enum etcd_err {
	ETCD_OK = 0,
	ETCD_E_UNAVAILABLE = -1, /* no endpoint answered in time (the broker's status 6) */
	ETCD_E_PROTOCOL = -2,    /* an answer that is not what etcd sends: bad JSON, types */
	ETCD_E_CLUSTER = -3,     /* an answer from another cluster id than expected */
	ETCD_E_ROLLBACK = -4,    /* an answer with a revision below the floor */
	ETCD_E_AUTH = -5,        /* authentication refused, or permission denied */
	ETCD_E_COMPACTED = -6,   /* the revision asked for was compacted */
	ETCD_E_SERVER = -7,      /* etcd answered another error (code and text logged) */
	ETCD_E_NOMEM = -8,
	ETCD_E_CANCELED = -9,    /* the client is closing */
	ETCD_E_CONFLICT = -10,   /* fleet: the compare kept failing, retries exhausted */
	ETCD_E_NOTFOUND = -11,   /* fleet: no such name */
	ETCD_E_INTEGRITY = -12,  /* fleet: a record failed authentication or its format */
	ETCD_E_KEY = -13,        /* fleet: the cluster key does not open the fleet data key */
	ETCD_E_INVALID = -14,    /* a bad argument from the caller */
};

/* A short static description of an etcd_err. */
const char *etcd_strerror(int err);

#endif
