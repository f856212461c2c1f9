/*
 * cgroup_parse and cgroup_path_ids against /proc/<pid>/cgroup contents of
 * the container runtimes (files in cgroup/), malformed inputs, and
 * peer_identify on a real socketpair.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pthread.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup.h"
#include "identity.h"
#include "peer.h"

#define A "2878a8998ccfb8e6bd12089bf64c25a8e8c5f6035339b526eaa02e1307208bb1"
#define B "d079fd5ae86e50b721abbf8ac428f874e704c06298bac50d5b5e675522ff1ef3"
#define C "3ee420c6ff99b451b7dec3c29d51c03900b5aef2948aab05b41e965a97f28981"
#define D "205aeb1e204e6a853086aa5f88df915aefb13df79ebc721f12a8e9ec9e4188af"
#define P "8856f652-f065-491c-9717-957554f8633e"
#define P_ "8856f652_f065_491c_9717_957554f8633e"
#define Q "bf13ed37-07c1-4f09-9ef8-8911442c1a51"
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ARG2_LOW (offsetof(struct seccomp_data, args) + 2 * sizeof(__u64) + 4)
#else
#define ARG2_LOW (offsetof(struct seccomp_data, args) + 2 * sizeof(__u64))
#endif
#define Q_ "bf13ed37_07c1_4f09_9ef8_8911442c1a51"
/* A static pod's UID (32 hex) and a container of it, from a real report. */
#define S "36b6d6be73b1065af369b3985edafa09"
#define E "79fedb3bd23ca77c9d9ccb41909038316f713df22b54b7d942b71d3812e7c74e"

struct fixture {
	const char *file;      /* in tests/unit/cgroup/ */
	const char *path;      /* expected chosen path */
	const char *container; /* expected id, "" for none */
	const char *pod;       /* expected pod UID, "" for none */
	const char *problem;   /* substring of the problem, NULL for none */
};

static const struct fixture fixtures[] = {
	/* Docker */
	{ "docker_cgroupfs_v1", "/docker/" A, A, "", NULL },
	{ "docker_cgroupfs_v2", "/docker/" A, A, "", NULL },
	{ "docker_systemd_v2", "/system.slice/docker-" B ".scope", B, "", NULL },
	{ "docker_systemd_hybrid", "/system.slice/docker-" B ".scope", B, "", NULL },
	/* docker in docker: the outermost id, the one the host's Docker made */
	{ "dind_v2", "/docker/" A "/docker/" B, A, "", NULL },
	{ "dind_v1", "/docker/" A "/docker/" B, A, "", NULL },
	/* containerd CRI */
	{ "containerd_systemd_v2",
	  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" P_
	  ".slice/cri-containerd-" C ".scope",
	  C, P, NULL },
	{ "containerd_cgroupfs_v1", "/kubepods/burstable/pod" P "/" C, C, P, NULL },
	{ "containerd_cgroupfs_guaranteed_v2", "/kubepods/pod" P "/" C, C, P, NULL },
	/*
	 * kind: a kubelet inside a Docker container.  The node container's id
	 * (outermost) and no pod: the pod segment lies below a container, where
	 * the node's root, not the host, named it.
	 */
	{ "kind_v2",
	  "/system.slice/docker-" A ".scope/kubelet.slice/kubelet-kubepods.slice/"
	  "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" Q_
	  ".slice/cri-containerd-" D ".scope",
	  A, "", NULL },
	{ "kind_cgroupfs_v1", "/docker/" A "/kubelet/kubepods/besteffort/pod" Q "/" D, A, "", NULL },
	/* on hybrid hosts the unified line stops at the node: the same nesting */
	{ "kind_hybrid", "/docker/" A "/kubelet/kubepods/besteffort/pod" Q "/" D, A, "", NULL },
	{ "minikube_hybrid",
	  "/system.slice/docker-" A ".scope/kubepods.slice/kubepods-besteffort.slice/"
	  "kubepods-besteffort-pod" Q_ ".slice/crio-" B ".scope",
	  A, "", NULL },
	/* CRI-O, and its conmon which is not the container */
	{ "crio_systemd_v2",
	  "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" P_
	  ".slice/crio-" C ".scope",
	  C, P, NULL },
	{ "crio_crun_subgroup_v2",
	  "/kubepods.slice/kubepods-pod" P_ ".slice/crio-" C ".scope/container", C, P, NULL },
	{ "crio_conmon_v2",
	  "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" P_
	  ".slice/crio-conmon-" C ".scope",
	  "", P, NULL },
	{ "minikube_crio_in_docker_v1",
	  "/docker/" A "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" Q_
	  ".slice/crio-" B ".scope",
	  A, "", NULL },
	/* runc's cgroupfs driver writing the systemd driver's "slice:prefix:id" */
	{ "runc_cgroupfs_systemd_names_v1",
	  "/kubepods-besteffort-pod" P_ ".slice:cri-containerd:" C, C, P, NULL },
	{ "containerd_service_colon_static_v1",
	  "/system.slice/containerd.service/kubepods-burstable-pod" S ".slice:cri-containerd:" E,
	  E, S, NULL },
	{ "kuberuntime_colon_v2",
	  "/kuberuntime/containerd/kubepods-pod" P_ ".slice:cri-containerd:" C, C, P, NULL },
	{ "podruntime_colon_hybrid",
	  "/podruntime.slice/kubepods-besteffort-pod" Q_ ".slice:cri-containerd:" D, D, Q, NULL },
	{ "crio_colon_v2", "/kubepods-burstable-pod" P_ ".slice:cri-o:" B, B, P, NULL },
	{ "docker_colon_v2",
	  "/system.slice/docker.service/kubepods-besteffort-pod" P_ ".slice:docker:" A, A, P, NULL },
	{ "conmon_colon_v2", "/kubepods-besteffort-pod" P_ ".slice:crio-conmon:" B, "", "", NULL },
	/* static pods: a 32-hex pod UID */
	{ "static_pod_cgroupfs_v1", "/kubepods/burstable/pod" S "/" E, E, S, NULL },
	{ "static_pod_systemd_v2",
	  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" S
	  ".slice/cri-containerd-" E ".scope",
	  E, S, NULL },
	/* Podman */
	{ "podman_systemd_v2", "/machine.slice/libpod-" D ".scope/container", D, "", NULL },
	{ "podman_rootless_v2",
	  "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" D ".scope/container",
	  D, "", NULL },
	{ "podman_conmon_v2", "/machine.slice/libpod-conmon-" D ".scope", "", "", NULL },
	{ "podman_cgroupfs_v2", "/libpod_parent/libpod-" D, D, "", NULL },
	{ "podman_split_v2",
	  "/system.slice/system-ceph\\x2d0b2f5a0e\\x2d1c1d\\x2d11ee\\x2d9d5b\\x2d5254007a3bd3.slice/"
	  "ceph-0b2f5a0e-1c1d-11ee-9d5b-5254007a3bd3@mon.host1.service/libpod-payload-" D,
	  D, "", NULL },
	{ "podman_split_scope_v2", "/machine.slice/myapp.service/libpod-payload-" D ".scope", D, "",
	  NULL },
	/* nerdctl */
	{ "nerdctl_v2", "/system.slice/nerdctl-" C ".scope", C, "", NULL },
	{ "nerdctl_hybrid", "/system.slice/nerdctl-" C ".scope", C, "", NULL },
	/*
	 * A process that writes its own cgroup nests another container's or
	 * pod's name inside: the outermost id is still its own.
	 */
	{ "nested_libpod_v2", "/machine.slice/libpod-" D ".scope/libpod-" A ".scope", D, "", NULL },
	{ "nested_libpod_systemd_v2",
	  "/machine.slice/libpod-" D ".scope/system.slice/libpod-" A ".scope/container", D, "", NULL },
	{ "nested_pod_in_pod_v2",
	  "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" P_
	  ".slice/cri-containerd-" C ".scope/kubepods-besteffort-pod" Q_ ".slice/cri-containerd-" D
	  ".scope",
	  C, P, NULL },
	{ "pod_below_container_v2",
	  "/system.slice/docker-" A ".scope/kubepods.slice/kubepods-pod" Q_ ".slice", A, "", NULL },
	/* plain runc / crun */
	{ "runc_plain_v2", "/" B, B, "", NULL },
	{ "runc_default_ns_v1", "/default/" B, B, "", NULL },
	{ "runc_systemd_v2", "/system.slice/runc-" B ".scope", B, "", NULL },
	{ "crun_systemd_v2", "/system.slice/crun-" C ".scope/container", C, "", NULL },
	/* host processes */
	{ "host_v2", "/user.slice/user-1000.slice/session-3.scope", "", "", NULL },
	{ "host_root_v2", "/init.scope", "", "", NULL },
	{ "host_hybrid", "/user.slice/user-1000.slice/session-2.scope", "", "", NULL },
	{ "zombie_v2", "/", "", "", NULL },
	/* v1 and hybrid line choice and agreement */
	{ "hybrid_agree", "/docker/" A, A, "", NULL },
	{ "hybrid_systemd_only_id",
	  "/user.slice/user-1000.slice/user@1000.service/apps.slice/"
	  "vte-spawn-6773d329-9ee1-450e-ae44-d5e4810e64a2.scope/" C,
	  C, "", NULL },
	{ "hybrid_disagree", "/docker/" A, "", "", "disagree about the container" },
	{ "hybrid_pod_disagree", "/kubepods/burstable/pod" P "/" C, "", "",
	  "disagree about the pod" },
	{ "hybrid_nested_conflict", "/docker/" A "/kubelet/kubepods/besteffort/pod" Q "/" D, "", "",
	  "disagree about the container" },
	{ "v1_diverging_chains", "/docker/" A "/docker/" C, "", "", "disagree about the container" },
	{ "v2_stray_systemd", "/", B, "", NULL },
	{ "v1_no_systemd", "/", A, "", NULL },
	/* outside the broker's cgroup namespace: no cgroup identity at all */
	{ "outside_ns_v2", "", "", "", "outside" },
	{ "outside_ns_hybrid", "", "", "", "outside" },
	/* near misses that must not yield an id */
	{ "uppercase_id_v2", "/docker/2878A8998CCFB8E6BD12089BF64C25A8E8C5F6035339B526EAA02E1307208BB1",
	  "", "", NULL },
	{ "short_id_v2", "/docker/" "2878a8998ccfb8e6bd12089bf64c25a8e8c5f6035339b526eaa02e1307208bb", "",
	  "", NULL },
	{ "scope_suffix_only_v2", "/system.slice/" A ".scope", "", "", NULL },
	{ "unknown_prefix_v2", "/system.slice/lxc-" A ".scope", "", "", NULL },
	{ "mixed_uuid_sep_v2",
	  "/kubepods.slice/kubepods-pod8856f652-f065_491c_9717_957554f8633e.slice/cri-containerd-" C
	  ".scope",
	  C, "", NULL },
	/* shapes the parser must take as they are */
	{ "no_trailing_newline_v2", "/docker/" A, A, "", NULL },
	{ "path_with_colon_v2", "/weird:name/docker-" A ".scope", A, "", NULL },
	{ "path_with_spaces_v2", "/system.slice/my unit.service", "", "", NULL },
};

static char *read_fixture(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf = malloc(65536);

	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/cgroup/%s.txt", SOURCE_DIR, name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open fixture %s", path);
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static void test_fixtures(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		const struct fixture *fx = &fixtures[i];
		struct cgroup_info info;
		size_t len;
		char *text = read_fixture(fx->file, &len);
		int rc = cgroup_parse(text, len, &info);

		free(text);
		if (rc != 0)
			fail_msg("%s: rc %d (%s)", fx->file, rc, info.problem);
		if (strcmp(info.path, fx->path) != 0)
			fail_msg("%s: path \"%s\", want \"%s\"", fx->file, info.path, fx->path);
		if (strcmp(info.container, fx->container) != 0)
			fail_msg("%s: container \"%s\", want \"%s\"", fx->file, info.container,
				 fx->container);
		if (strcmp(info.pod, fx->pod) != 0)
			fail_msg("%s: pod \"%s\", want \"%s\"", fx->file, info.pod, fx->pod);
		if (fx->problem == NULL && info.problem[0] != '\0')
			fail_msg("%s: unexpected problem \"%s\"", fx->file, info.problem);
		if (fx->problem != NULL && strstr(info.problem, fx->problem) == NULL)
			fail_msg("%s: problem \"%s\", want \"%s\"", fx->file, info.problem,
				 fx->problem);
	}
}

struct bad {
	const char *what;
	const char *text;
	size_t len; /* 0: strlen(text) */
};

static const struct bad bads[] = {
	{ "empty file", "", 0 },
	{ "no colon", "garbage\n", 0 },
	{ "one colon", "0:/docker/" A "\n", 0 },
	{ "empty line between", "1:name=systemd:/\n\n0::/\n", 0 },
	{ "only a newline", "\n", 0 },
	{ "NUL byte in path", "0::/docker/\0" A "\n", 12 + 64 + 1 },
	{ "NUL byte after", "0::/\n\0", 6 },
	{ "hierarchy not a number", "x::/\n", 0 },
	{ "negative hierarchy", "-1::/\n", 0 },
	{ "empty hierarchy", "::/\n", 0 },
	{ "ten-digit hierarchy", "1234567890:cpu:/\n", 0 },
	{ "v2 line with controllers", "0:cpu:/\n", 0 },
	{ "v1 line without controllers", "3::/\n", 0 },
	{ "relative path", "0::docker/" A "\n", 0 },
	{ "empty path", "0::\n", 0 },
	{ "hierarchy twice", "0::/user.slice\n0::/docker/" A "\n", 0 },
	{ "systemd twice", "1:name=systemd:/\n1:name=systemd:/docker/" A "\n", 0 },
};

static void test_malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct cgroup_info info;
		size_t len = bads[i].len ? bads[i].len : strlen(bads[i].text);

		if (cgroup_parse(bads[i].text, len, &info) != -1)
			fail_msg("%s: accepted (path \"%s\")", bads[i].what, info.path);
		if (info.problem[0] == '\0')
			fail_msg("%s: no problem given", bads[i].what);
		if (info.path[0] != '\0' || info.container[0] != '\0' || info.pod[0] != '\0')
			fail_msg("%s: fields filled on error", bads[i].what);
	}
}

/* Over-long paths and too many lines. */
static void test_limits(void **state)
{
	struct cgroup_info info;
	size_t n = CGROUP_PATH_MAX + 16;
	char *text = malloc(n);

	(void)state;
	assert_non_null(text);
	/* a path of CGROUP_PATH_MAX - 1 bytes fits, one more does not */
	memcpy(text, "0::/", 4);
	memset(text + 4, 'a', n - 4);
	assert_int_equal(cgroup_parse(text, 3 + CGROUP_PATH_MAX - 1, &info), 0);
	assert_int_equal(strlen(info.path), CGROUP_PATH_MAX - 1);
	assert_int_equal(cgroup_parse(text, 3 + CGROUP_PATH_MAX, &info), -1);
	assert_string_equal(info.path, "");
	free(text);

	/* 64 hierarchies are accepted, 65 are not */
	text = malloc(65 * 16);
	assert_non_null(text);
	n = 0;
	for (int i = 1; i <= 65; i++)
		n += (size_t)snprintf(text + n, 16, "%d:c%d:/\n", i, i);
	assert_int_equal(cgroup_parse(text, n - strlen("65:c65:/\n"), &info), 0);
	assert_int_equal(cgroup_parse(text, n, &info), -1);
	free(text);
}

/* The text is never read past len: a terminator is not needed. */
static void test_explicit_length(void **state)
{
	struct cgroup_info info;
	const char text[] = "0::/docker/" A "XXXX";

	(void)state;
	assert_int_equal(cgroup_parse(text, strlen("0::/docker/") + 64, &info), 0);
	assert_string_equal(info.container, A);
	assert_string_equal(info.path, "/docker/" A);
}

struct idcase {
	const char *path;
	const char *container;
	const char *pod;
};

static const struct idcase idcases[] = {
	{ "/", "", "" },
	{ "", "", "" },
	{ "/docker/" A, A, "" },
	{ "/docker/" A "/", A, "" },
	{ "//docker//" A "//", A, "" },
	{ A, A, "" },
	{ "/docker-" A ".scope", A, "" },
	{ "/docker-" A, A, "" },
	{ "/docker-" A ".scope.bak", "", "" },
	{ "/docker-" A ".slice", "", "" },
	{ "/xdocker-" A ".scope", "", "" },
	{ "/docker_" A ".scope", "", "" },
	{ "/cri-containerd-" A ".scope", A, "" },
	{ "/crio-" A ".scope", A, "" },
	{ "/crio-conmon-" A ".scope", "", "" },
	{ "/libpod-conmon-" A ".scope", "", "" },
	{ "/runc-" A ".scope", A, "" },
	{ "/crun-" A ".scope", A, "" },
	{ "/docker/" A "x", "", "" },
	{ "/pod" P, "", P },
	{ "/pod" P_, "", P },
	{ "/pod" P ".slice", "", P },
	{ "/kubepods-pod" P_ ".slice", "", P },
	{ "/kubepods-pod" P_, "", "" },
	{ "/kubepodspod" P_ ".slice", "", "" },
	{ "/xpod" P, "", "" },
	{ "/pod" P "x", "", "" },
	{ "/pod8856F652-f065-491c-9717-957554f8633e", "", "" },
	{ "/pod8856f652-f065-491c-9717-957554f8633", "", "" },
	{ "/kubepods/pod" P "/" A "/kubepods/pod" Q "/" B, A, P },
	{ "/kubepods/pod" P "/" A "/docker/" B, A, P },
	{ "/docker/" A "/pod" P, A, "" },
	{ "/pod" P "/pod" Q, "", P },
	{ "/libpod-payload-" A, A, "" },
	{ "/libpod-payload-" A ".scope", A, "" },
	{ "/libpod-payload" A, "", "" },
	{ "/nerdctl-" A ".scope", A, "" },
	{ "/nerdctl-conmon-" A ".scope", "", "" },
	{ "/pod" S, "", S },
	{ "/kubepods-burstable-pod" S ".slice", "", S },
	{ "/pod" S "0", "", "" },
	{ "/pod36B6D6BE73B1065AF369B3985EDAFA09", "", "" },
	{ "/kubepods-pod" P_ ".slice:cri-containerd:" A, A, P },
	{ ":cri-containerd:" A, A, "" },
	{ "/kubepods-pod" P_ ".slice:cri-containerd:" A "/x", A, P },
	{ "/kubepods-pod" P_ ".slice:containerd:" A, "", "" },
	{ "/kubepods-pod" P_ ".service:cri-containerd:" A, "", "" },
	{ "/kubepods-pod" P_ ".slice:cri-containerd:" A ".scope", "", "" },
	{ "/kubepods-pod" P_ ".slice:cri-containerd:x:" A, "", "" },
	{ "/kubepods-pod" P_ ".slice:cri-containerd:" "2878A8998CCFB8E6BD12089BF64C25A8E8C5F6035339B526EAA02E1307208BB1",
	  "", "" },
	{ "/a:b.slice:docker:" A, "", "" },
};

static void test_path_ids(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(idcases) / sizeof(idcases[0]); i++) {
		char cid[CONTAINER_ID_LEN + 1], pod[POD_UID_LEN + 1];

		memset(cid, 'x', sizeof(cid));
		memset(pod, 'x', sizeof(pod));
		cgroup_path_ids(idcases[i].path, cid, pod);
		if (strcmp(cid, idcases[i].container) != 0)
			fail_msg("%s: container \"%s\", want \"%s\"", idcases[i].path, cid,
				 idcases[i].container);
		if (strcmp(pod, idcases[i].pod) != 0)
			fail_msg("%s: pod \"%s\", want \"%s\"", idcases[i].path, pod,
				 idcases[i].pod);
	}
}

/* ---- peer_identify on a real socket ------------------------------------ */

static void test_peer_self(void **state)
{
	int sv[2];
	struct identity id;
	gid_t groups[256];
	int ngroups = getgroups(256, groups);
	struct cgroup_info info;
	char text[16384];
	int fd;
	ssize_t n;

	(void)state;
	assert_true(ngroups >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(peer_identify(sv[0], &id), 0);
	assert_true(id.creds);
	assert_int_equal(id.uid, getuid());
	assert_int_equal(id.gid, getgid());
	assert_int_equal(id.pid, getpid());
	assert_int_equal(id.ngroups, (size_t)ngroups);
	for (int i = 0; i < ngroups; i++)
		assert_true(identity_in_group(&id, groups[i]));
	if (!id.established)
		fail_msg("not established: %s", id.problem);
	assert_string_equal(id.problem, "");
	assert_true(id.pidfd_verified); /* SO_PEERPIDFD: Linux 6.5 and later */
	assert_true(id.host);

	/* the same cgroup as our own file says */
	fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text));
	close(fd);
	assert_true(n > 0);
	assert_int_equal(cgroup_parse(text, (size_t)n, &info), 0);
	assert_non_null(id.cgroup);
	assert_string_equal(id.cgroup, info.path);
	assert_string_equal(id.container, info.container);
	assert_string_equal(id.pod, info.pod);

	identity_clear(&id);
	close(sv[0]);
	close(sv[1]);
}

/* A listening socket in the abstract namespace, and its address. */
static int listen_abstract(struct sockaddr_un *sa, socklen_t *salen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "secretd-test-cgroup-%d",
		 (int)getpid());
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			     strlen(sa->sun_path + 1));
	assert_int_equal(bind(fd, (struct sockaddr *)sa, *salen), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/*
 * Fork a child that (as root: after becoming uid 1234, gid 4321, groups 7
 * and 8) connects, then waits for one byte on the connection before it
 * exits.  Returns the accepted connection.
 */
static int connect_from_child(pid_t *child)
{
	struct sockaddr_un sa;
	socklen_t salen;
	int lfd = listen_abstract(&sa, &salen);
	int conn;

	*child = fork();
	assert_true(*child >= 0);
	if (*child == 0) {
		static const gid_t groups[] = { 7, 8 };
		int s;
		char c;

		close(lfd);
		if (getuid() == 0 && (setgroups(2, groups) != 0 || setgid(4321) != 0 ||
				      setuid(1234) != 0))
			_exit(2);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&sa, salen) != 0)
			_exit(3);
		_exit(read(s, &c, 1) == 1 ? 0 : 4);
	}
	conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(conn >= 0);
	close(lfd);
	return conn;
}

/* The credentials are those of the connecting process, not the reader. */
static void test_peer_child(void **state)
{
	pid_t child;
	int status;
	struct identity id;
	int conn = connect_from_child(&child);

	(void)state;
	assert_int_equal(peer_identify(conn, &id), 0);
	assert_int_equal(id.pid, child);
	if (getuid() == 0) {
		assert_int_equal(id.uid, 1234);
		assert_int_equal(id.gid, 4321);
		assert_int_equal(id.ngroups, 2);
		assert_int_equal(id.groups[0], 7);
		assert_int_equal(id.groups[1], 8);
		assert_true(identity_in_group(&id, 8));
		assert_false(identity_in_group(&id, 0));
	}
	if (!id.established)
		fail_msg("not established: %s", id.problem);
	assert_true(id.pidfd_verified);
	assert_true(id.host);
	identity_clear(&id);
	assert_int_equal(write(conn, "x", 1), 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(conn);
}

/* The state letter of a process, from its stat (comm has no ')' here). */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : '?';
}

static void expect_exited(int conn, pid_t child)
{
	struct identity id;

	assert_int_equal(peer_identify(conn, &id), 0);
	assert_true(id.creds);
	assert_int_equal(id.pid, child);
	assert_false(id.established);
	assert_false(id.pidfd_verified);
	assert_null(id.cgroup);
	assert_string_equal(id.container, "");
	if (strstr(id.problem, "exited") == NULL)
		fail_msg("problem \"%s\"", id.problem);
	identity_clear(&id);
}

/* A caller that exited, zombie or reaped, is never taken for the caller. */
static void test_peer_exited(void **state)
{
	pid_t child;
	int status;
	int conn = connect_from_child(&child);

	(void)state;
	/* Let it exit but do not reap it yet: a zombie. */
	shutdown(conn, SHUT_WR);
	for (int i = 0; i < 500 && proc_state(child) != 'Z'; i++)
		usleep(10000);
	assert_int_equal(proc_state(child), 'Z');
	expect_exited(conn, child);
	/* Reaped: the pid may now name nobody, or someone else. */
	assert_int_equal(waitpid(child, &status, 0), child);
	expect_exited(conn, child);
	close(conn);
}

/* ---- a caller whose main thread has exited ---------------------------- */

static struct sockaddr_un zl_addr;
static socklen_t zl_addrlen;

/* The second thread: once the leader is a zombie, connect and wait. */
static void *zl_thread(void *arg)
{
	int s;
	char c;

	(void)arg;
	for (int i = 0; i < 500 && proc_state(getpid()) != 'Z'; i++)
		usleep(10000);
	if (proc_state(getpid()) != 'Z')
		_exit(5);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&zl_addr, zl_addrlen) != 0)
		_exit(3);
	_exit(read(s, &c, 1) == 1 ? 0 : 4);
}

/*
 * Fork a child whose main thread calls pthread_exit and whose second
 * thread connects; the accepted connection is returned.
 */
static int connect_from_zombie_leader(pid_t *child)
{
	int lfd = listen_abstract(&zl_addr, &zl_addrlen);
	int conn;

	*child = fork();
	assert_true(*child >= 0);
	if (*child == 0) {
		pthread_t t;

		close(lfd);
		if (pthread_create(&t, NULL, zl_thread, NULL) != 0)
			_exit(2);
		pthread_exit(NULL);
	}
	conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(conn >= 0);
	close(lfd);
	return conn;
}

/* 0 when the identity was refused as it must be, else a code. */
static int expect_leader_refused(int conn, pid_t child)
{
	struct identity id;
	int rc = 0;

	if (proc_state(child) != 'Z')
		return 20;
	if (peer_identify(conn, &id) != 0)
		return 21;
	if (!id.creds || id.pid != child)
		rc = 22;
	else if (id.established || id.cgroup != NULL || id.container[0] != '\0')
		rc = 23;
	else if (strstr(id.problem, "main thread") == NULL)
		rc = 24;
	identity_clear(&id);
	return rc;
}

/*
 * On v1 and hybrid hosts /proc shows "/" on every v1 line once the leader
 * is exiting, and the pidfd stays alive: the identity must be refused.
 */
static void test_peer_zombie_leader(void **state)
{
	pid_t child;
	int status;
	int conn = connect_from_zombie_leader(&child);

	(void)state;
	assert_int_equal(expect_leader_refused(conn, child), 0);
	assert_int_equal(write(conn, "x", 1), 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(conn);
}

/*
 * Kernels before 6.5 have no SO_PEERPIDFD.  A seccomp filter makes this one
 * answer ENOPROTOOPT as they do, so the start-time fallback runs for real.
 */
static int deny_peerpidfd(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getsockopt, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG2_LOW),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 77 /* SO_PEERPIDFD */, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOPROTOOPT),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

/* In a child without SO_PEERPIDFD: 0 when every expectation held. */
static int fallback_child(void)
{
	int sv[2], status;
	struct identity id;
	pid_t pid;
	int conn, rc = 10;

	if (deny_peerpidfd() != 0)
		return 1;
	/* A comm with spaces and ')' must not confuse the stat parser. */
	if (prctl(PR_SET_NAME, "x) 1 2 (y) z", 0, 0, 0) != 0)
		return 2;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 3;
	if (peer_identify(sv[0], &id) != 0)
		return 4;
	if (!id.established || id.pidfd_verified || !id.host || id.pid != getpid() ||
	    id.cgroup == NULL)
		return 5;
	identity_clear(&id);
	close(sv[0]);
	close(sv[1]);

	/* A zombie is not the caller either. */
	conn = connect_from_child(&pid);
	shutdown(conn, SHUT_WR);
	for (int i = 0; i < 500 && proc_state(pid) != 'Z'; i++)
		usleep(10000);
	if (peer_identify(conn, &id) == 0 && id.creds && !id.established &&
	    strstr(id.problem, "exited") != NULL)
		rc = 0;
	identity_clear(&id);
	if (waitpid(pid, &status, 0) != pid)
		rc = 11;
	close(conn);
	if (rc != 0)
		return rc;

	/* Nor is a process whose main thread alone has exited. */
	conn = connect_from_zombie_leader(&pid);
	rc = expect_leader_refused(conn, pid);
	if (write(conn, "x", 1) != 1 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = rc != 0 ? rc : 12;
	close(conn);
	return rc;
}

static void test_peer_fallback(void **state)
{
	pid_t child;
	int status;

	(void)state;
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(fallback_child());
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_peer_not_socket(void **state)
{
	struct identity id;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(peer_identify(fd, &id), -ENOTSOCK);
	assert_false(id.creds);
	assert_false(id.established);
	assert_null(id.groups);
	assert_null(id.cgroup);
	close(fd);
}

static void test_own_depth(void **state)
{
	(void)state;
	assert_true(peer_own_pidns_depth() >= 1);
	assert_int_equal(peer_own_pidns_depth(), peer_own_pidns_depth());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_explicit_length),
		cmocka_unit_test(test_path_ids),
		cmocka_unit_test(test_peer_self),
		cmocka_unit_test(test_peer_child),
		cmocka_unit_test(test_peer_exited),
		cmocka_unit_test(test_peer_zombie_leader),
		cmocka_unit_test(test_peer_fallback),
		cmocka_unit_test(test_peer_not_socket),
		cmocka_unit_test(test_own_depth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
