/*
 * libFuzzer harness for the policy parser and glob matcher: parse the input
 * as a policy and, when it parses, decide a few fixed requests for a few
 * fixed callers; independently, match the input's two halves as pattern and
 * subject.  Never a crash, a leak or a sanitizer report.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "glob.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CID "3f2a9c51e0b7d4c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819"
#define POD "0a1b2c3d-0000-1111-2222-333344445555"
#define NWHO 5

static gid_t supp[] = { 2000, 0 };

static void callers(struct identity who[NWHO])
{
	memset(who, 0, NWHO * sizeof(*who));
	/* root on the host */
	who[0].creds = who[0].established = who[0].host = true;
	who[0].cgroup = (char *)(uintptr_t)"/user.slice/user-0.slice/session-1.scope";
	/* uid 1000 in a Kubernetes pod, with supplementary groups */
	who[1].creds = who[1].established = true;
	who[1].uid = who[1].gid = 1000;
	who[1].groups = supp;
	who[1].ngroups = 2;
	who[1].cgroup = (char *)(uintptr_t)"/kubepods/besteffort/pod" POD "/" CID;
	memcpy(who[1].container, CID, sizeof(CID));
	memcpy(who[1].pod, POD, sizeof(POD));
	/* a docker container whose identity could not be established */
	who[2].creds = true;
	who[2].uid = 1000;
	who[2].cgroup = (char *)(uintptr_t)"/system.slice/docker-" CID ".scope";
	memcpy(who[2].container, CID, sizeof(CID));
	/* who[3]: nothing known */
	/* systemd loading a credential for a unit; a static pod's 32-hex UID */
	who[4].creds = who[4].established = who[4].host = true;
	who[4].cgroup = (char *)(uintptr_t)"/init.scope";
	who[4].unit = (char *)(uintptr_t)"backup.service";
	memcpy(who[4].pod, "36b6d6be73b1065af369b3985edafa09", 33);
}

static const char *const names[] = {
	"a", "app/db/x", "containers/" CID "/db", "pods/" POD "/t", "users/1000/k",
	"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", "x.y/_-/Z9", "systemd/backup.service/db",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct identity who[NWHO];
	struct policy *p = NULL;
	char err[512];
	size_t half = size / 2;

	(void)glob_match(text, half, text + half, size - half);
	if (policy_parse(text, size, "fuzz", &p, err, sizeof(err)) != 0) {
		/* An error message is always terminated and names the source. */
		if (strnlen(err, sizeof(err)) == sizeof(err) || strncmp(err, "fuzz", 4) != 0)
			__builtin_trap();
		return 0;
	}
	callers(who);
	for (size_t w = 0; w < NWHO; w++) {
		for (unsigned perm = PERM_READ; perm <= PERM_DELETE; perm <<= 1) {
			for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
				unsigned line = 0;
				bool ok = policy_eval(p, &who[w], perm, names[n],
						      strlen(names[n]), &line);

				/* A permit always names a rule, and the rule exists. */
				if ((ok && line == 0) ||
				    (line != 0 && policy_rule_text(p, line) == NULL))
					__builtin_trap();
			}
		}
	}
	policy_free(p);
	return 0;
}
