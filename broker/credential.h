/*
 * systemd credential requests (CONTRACT "systemd services").
 *
 * A unit with LoadCredential=ID:/run/secretd/secretd.sock makes systemd bind
 * its socket to the abstract address "@<hex>/unit/<UNIT>/<ID>" and connect;
 * it sends nothing and reads the value until EOF.  This module recognises
 * such a connection and decides whether the unit name in the address can be
 * believed.  It never reads or writes the connection.
 *
 * Who connects: not PID 1 itself.  systemd 252 acquires credentials in
 * "(sd-mkdcreds)", a child of the unit's not yet executed process (newer
 * releases do it below systemd-executor), running as root in the unit's own
 * cgroup, which PID 1 created and placed it in.  Any process can bind any
 * abstract name, so the name is believed only when the peer
 *  - has uid 0 (SO_PEERCRED),
 *  - lives in the broker's own pid namespace (identity `host`),
 *  - and is PID 1 of that namespace, or sits in the cgroup that PID 1 made
 *    for UNIT: PID 1's cgroup (without a last "/init.scope") followed by
 *    zero or more "*.slice" segments and then UNIT as the last segment.
 *    Only a slice can hold a unit's cgroup, so a cgroup a delegated unit
 *    made below itself ("/system.slice/a.service/b.service") never names b.
 * The identity must be established (peer.c confirmed the process it read).
 */
#ifndef SECRETD_CREDENTIAL_H
#define SECRETD_CREDENTIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "identity.h"

#define CREDENTIAL_UNIT_MAX 255 /* systemd: UNIT_NAME_MAX - 1 */
#define CREDENTIAL_ID_MAX 255   /* systemd: NAME_MAX, FDNAME_MAX */
#define CREDENTIAL_HEX_MAX 16   /* "%" PRIx64 of a random 64-bit number */
/* "systemd/" UNIT "/" ID, before the secretd name rule (255) is applied. */
#define CREDENTIAL_NAME_CAP (8 + CREDENTIAL_UNIT_MAX + 1 + CREDENTIAL_ID_MAX)

struct credential_req {
	char unit[CREDENTIAL_UNIT_MAX + 1]; /* as named in the address */
	char id[CREDENTIAL_ID_MAX + 1];
	char name[CREDENTIAL_NAME_CAP + 1]; /* "systemd/UNIT/ID" */
	/*
	 * NULL when the request may go to the policy (unit believed, name
	 * valid); else a static reason to refuse it outright (audit and log it,
	 * write nothing, close).  Never quotes the request.
	 */
	const char *refusal;
};

/*
 * Parse the bytes of an abstract socket address (sun_path[0] == '\0'
 * included; len from the socklen getpeername returned, minus the family)
 * of the exact form "\0<1-16 lowercase hex>/unit/<UNIT>/<ID>".  UNIT must
 * be a valid systemd unit name (plain or instance, a known type suffix)
 * and ID a valid credential name (systemd's credential_name_valid).  Fills
 * unit, id and name; sets refusal when the name is not a valid secretd
 * name (e.g. an instance "a@b.service": '@' is outside the name alphabet).
 * Returns 0 on a credential address, -EINVAL on anything else (out is then
 * zeroed).  Pure: the fuzz target.
 */
int credential_parse_address(const char *path, size_t len, struct credential_req *out);

/*
 * Whether the peer vouches for unit (see the top of this file).  pid1_cgroup
 * is the cgroup path of PID 1 of the broker's pid namespace, as the broker
 * sees it (NULL when unknown: only PID 1 itself is then believed).  On false
 * *why gets a static reason.  Pure.
 */
bool credential_peer_vouches(const struct identity *id, const char *pid1_cgroup,
			     const char *unit, const char **why);

/*
 * For a connection accepted on the broker's socket and its identity (from
 * peer_identify): 1 when the peer's address is a credential address (out
 * filled; out->refusal says whether to refuse), 0 when it is not one (an
 * ordinary client: speak the protocol), -errno when getpeername fails.
 * Reads /proc/1/cgroup; blocking but quick.
 */
int credential_detect(int fd, const struct identity *id, struct credential_req *out);

struct sockaddr_un;
/*
 * The same, for the peer address accept(2) gave (len bytes at sa), so that
 * no getpeername is needed.
 */
int credential_detect_addr(const struct sockaddr_un *sa, socklen_t len,
			   const struct identity *id, struct credential_req *out);

#endif
