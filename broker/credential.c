/*
 * Recognising systemd's LoadCredential= connections (see credential.h).
 *
 * The address is untrusted bytes of an explicit length: it may hold NULs
 * and need not be terminated.  The grammar is systemd's own (load_credential
 * in src/core/execute.c, 252; exec-credential.c later):
 *
 *   "\0" HEX "/unit/" UNIT "/" ID     HEX:  1-16 of [0-9a-f] ("%" PRIx64)
 *   UNIT: unit_name_is_valid(), plain or instance: PREFIX ["@" INSTANCE]
 *         "." TYPE, at most 255 bytes, PREFIX and INSTANCE of [A-Za-z0-9:_.\-]
 *         (systemd's VALID_CHARS; INSTANCE may hold more '@'), PREFIX not
 *         empty; a template ("a@.service") runs nothing and is refused
 *   ID:   credential_name_valid(): 1-255 printable ASCII bytes, no '/' and
 *         no ':', not "." or ".."
 */
#include "credential.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cgroup.h"
#include "secretd/names.h"

#define UNIT_PREFIX "/unit/"
#define PID1_CGROUP_FILE_MAX 16384

/* Unit types, systemd 252's unit_type_table. */
static const char *const unit_types[] = {
	"service", "mount", "swap", "socket", "target", "device",
	"automount", "timer", "path", "slice", "scope",
};

static bool bytes_eq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit); /* our own constant */

	return n == l && memcmp(s, lit, l) == 0;
}

static bool is_hex_digit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* systemd's VALID_CHARS: DIGITS LETTERS ":-_.\\" */
static bool unit_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == ':' || c == '-' || c == '_' || c == '.' || c == '\\';
}

static bool unit_type_known(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(unit_types) / sizeof(unit_types[0]); i++)
		if (bytes_eq(s, n, unit_types[i]))
			return true;
	return false;
}

/* unit_name_is_valid(UNIT_NAME_PLAIN|UNIT_NAME_INSTANCE) over s[0, n). */
static bool unit_name_ok(const char *s, size_t n)
{
	const char *dot = NULL;
	size_t at = n; /* index of the first '@', n if none */

	if (n == 0 || n > CREDENTIAL_UNIT_MAX)
		return false;
	for (size_t i = n; i > 0; i--) {
		if (s[i - 1] == '.') {
			dot = s + i - 1;
			break;
		}
	}
	if (dot == NULL || dot == s || !unit_type_known(dot + 1, (size_t)(s + n - dot - 1)))
		return false;
	for (size_t i = 0; s + i < dot; i++) {
		if (s[i] == '@') {
			if (at == n)
				at = i;
		} else if (!unit_char(s[i])) {
			return false;
		}
	}
	if (at == 0)
		return false;
	/* Plain, or an instance with a non-empty instance part. */
	return at == n || s + at + 1 < dot;
}

/* credential_name_valid(): filename_is_valid() && fdname_is_valid(). */
static bool credential_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > CREDENTIAL_ID_MAX)
		return false;
	if (bytes_eq(s, n, ".") || bytes_eq(s, n, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < ' ' || c > '~' || c == '/' || c == ':')
			return false;
	}
	return true;
}

int credential_parse_address(const char *path, size_t len, struct credential_req *out)
{
	size_t i = 1, hex, ustart, ulen, idlen;
	const char *slash, *why = NULL;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (path == NULL || len < 1 || path[0] != '\0')
		goto out;
	while (i < len && is_hex_digit(path[i]))
		i++;
	hex = i - 1;
	if (hex == 0 || hex > CREDENTIAL_HEX_MAX)
		goto out;
	if (len - i < strlen(UNIT_PREFIX) || memcmp(path + i, UNIT_PREFIX, strlen(UNIT_PREFIX)) != 0)
		goto out;
	ustart = i + strlen(UNIT_PREFIX);
	slash = memchr(path + ustart, '/', len - ustart);
	if (slash == NULL)
		goto out;
	ulen = (size_t)(slash - (path + ustart));
	idlen = len - ustart - ulen - 1;
	if (!unit_name_ok(path + ustart, ulen) || !credential_id_ok(slash + 1, idlen))
		goto out;
	memcpy(out->unit, path + ustart, ulen);
	memcpy(out->id, slash + 1, idlen);
	memcpy(out->name, "systemd/", 8);
	memcpy(out->name + 8, out->unit, ulen);
	out->name[8 + ulen] = '/';
	memcpy(out->name + 8 + ulen + 1, out->id, idlen);
	if (!name_valid(out->name, 8 + ulen + 1 + idlen, &why))
		out->refusal = "the secret name systemd/UNIT/ID is not a valid name";
	rc = 0;
out:
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

/*
 * Length of the root of PID 1's unit tree: pid1 without a last
 * "/init.scope" segment; "/" counts as the empty root.
 */
static size_t unit_root_len(const char *pid1)
{
	size_t n = strlen(pid1);
	size_t s = strlen("/init.scope");

	if (n >= s && memcmp(pid1 + n - s, "/init.scope", s) == 0)
		n -= s;
	if (n == 1 && pid1[0] == '/')
		n = 0;
	return n;
}

/* cg is root + ("/" X ".slice")* + "/" unit, exactly. */
static bool cgroup_is_units(const char *cg, const char *root, size_t root_len, const char *unit)
{
	size_t n = strlen(cg), ul = strlen(unit), i;

	if (n < root_len || memcmp(cg, root, root_len) != 0)
		return false;
	i = root_len;
	for (;;) {
		const char *seg, *next;
		size_t sl;

		if (i >= n || cg[i] != '/')
			return false;
		seg = cg + i + 1;
		next = memchr(seg, '/', n - i - 1);
		sl = next != NULL ? (size_t)(next - seg) : n - i - 1;
		if (next == NULL)
			return sl == ul && memcmp(seg, unit, ul) == 0;
		if (sl <= strlen(".slice") || memcmp(seg + sl - 6, ".slice", 6) != 0)
			return false;
		i += 1 + sl;
	}
}

bool credential_peer_vouches(const struct identity *id, const char *pid1_cgroup,
			     const char *unit, const char **why)
{
	const char *reason = NULL;

	if (!id->creds || !id->established)
		reason = "the caller's identity is not established";
	else if (id->uid != 0)
		reason = "the caller is not root";
	else if (!id->host)
		reason = "the caller is not in the broker's pid namespace";
	else if (id->pid == 1)
		reason = NULL;
	else if (pid1_cgroup == NULL)
		reason = "the cgroup of PID 1 is unknown";
	else if (id->cgroup == NULL ||
		 !cgroup_is_units(id->cgroup, pid1_cgroup, unit_root_len(pid1_cgroup), unit))
		reason = "the caller is neither PID 1 nor in the unit's cgroup";
	if (reason != NULL && why != NULL)
		*why = reason;
	return reason == NULL;
}

/* The chosen cgroup path of PID 1 (malloc'd), or NULL. */
static char *pid1_cgroup_path(void)
{
	struct cgroup_info *info = NULL;
	char *text = NULL, *path = NULL;
	size_t len = 0;
	int fd = open("/proc/1/cgroup", O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		goto out;
	text = malloc(PID1_CGROUP_FILE_MAX);
	info = malloc(sizeof(*info));
	if (text == NULL || info == NULL)
		goto out;
	for (;;) {
		ssize_t n;

		if (len == PID1_CGROUP_FILE_MAX)
			goto out;
		n = read(fd, text + len, PID1_CGROUP_FILE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (cgroup_parse(text, len, info) == 0 && info->path[0] == '/' && info->problem[0] == '\0')
		path = strdup(info->path);
out:
	free(info);
	free(text);
	if (fd >= 0)
		close(fd);
	return path;
}

int credential_detect(int fd, const struct identity *id, struct credential_req *out)
{
	struct sockaddr_un sa;
	socklen_t slen = sizeof(sa);

	memset(out, 0, sizeof(*out));
	memset(&sa, 0, sizeof(sa));
	if (getpeername(fd, (struct sockaddr *)&sa, &slen) != 0)
		return -errno;
	return credential_detect_addr(&sa, slen, id, out);
}

int credential_detect_addr(const struct sockaddr_un *sa, socklen_t slen,
			   const struct identity *id, struct credential_req *out)
{
	const char *why = NULL;
	char *pid1 = NULL;
	size_t plen;

	memset(out, 0, sizeof(*out));
	if (sa->sun_family != AF_UNIX || slen <= offsetof(struct sockaddr_un, sun_path) ||
	    slen > sizeof(*sa))
		return 0;
	plen = slen - offsetof(struct sockaddr_un, sun_path);
	if (sa->sun_path[0] != '\0' || credential_parse_address(sa->sun_path, plen, out) != 0)
		return 0;
	if (out->refusal != NULL)
		return 1;
	if (id->pid != 1)
		pid1 = pid1_cgroup_path();
	if (!credential_peer_vouches(id, pid1, out->unit, &why))
		out->refusal = why;
	free(pid1);
	return 1;
}
