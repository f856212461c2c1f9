/* Signal names, signalfd and pidfd for the long-running commands. */
#include "sigs.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "secretctl.h"

static const struct {
	const char *name;
	int sig;
} signames[] = {
	{ "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
	{ "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "CONT", SIGCONT },
	{ "STOP", SIGSTOP }, { "WINCH", SIGWINCH }, { "ALRM", SIGALRM },
};

bool sigs_parse(const char *s, int *sig)
{
	uint32_t n;

	if (s == NULL)
		return false;
	if (ctl_parse_u32(s, 1, 64, &n)) {
		*sig = (int)n;
		return true;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(signames) / sizeof(signames[0]); i++) {
		if (strcasecmp(s, signames[i].name) == 0) {
			*sig = signames[i].sig;
			return true;
		}
	}
	return false;
}

int sigs_open(const sigset_t *set, sigset_t *saved)
{
	int fd;

	if (sigprocmask(SIG_BLOCK, set, saved) != 0)
		return -errno;
	fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int sigs_read(int fd)
{
	struct signalfd_siginfo si;
	ssize_t n;

	do {
		n = read(fd, &si, sizeof(si));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if ((size_t)n != sizeof(si))
		return -EIO;
	return (int)si.ssi_signo;
}

int sigs_pidfd(pid_t pid)
{
	long fd = syscall(SYS_pidfd_open, pid, 0);

	return fd >= 0 ? (int)fd : -errno;
}

int sigs_send(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0 ? 0 : -errno;
}

long long sigs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
