/*
 * LD_PRELOAD fault injection for t_audit_sync_fault: fdatasync on a file
 * whose path holds "audit.log" is held for a second on a worker thread while
 * $FAULT_DIR/slow exists (announcing it by creating $FAULT_DIR/holding), and
 * fails once with EIO on the loop thread when $FAULT_DIR/failnext exists.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int control(const char *name, char *path, size_t cap)
{
	const char *dir = getenv("FAULT_DIR");

	if (dir == NULL)
		return -1;
	return snprintf(path, cap, "%s/%s", dir, name) < (int)cap ? 0 : -1;
}

int fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	char link[64], target[512], ctl[512];
	bool on_loop = syscall(SYS_gettid) == getpid();
	ssize_t n;

	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	if (strstr(target, "audit.log") == NULL)
		return real(fd);
	if (on_loop && control("failnext", ctl, sizeof(ctl)) == 0 && unlink(ctl) == 0) {
		errno = EIO;
		return -1;
	}
	if (!on_loop && control("slow", ctl, sizeof(ctl)) == 0 && access(ctl, F_OK) == 0 &&
	    control("holding", ctl, sizeof(ctl)) == 0) {
		int mark = open(ctl, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

		if (mark >= 0)
			close(mark);
		sleep(1);
	}
	return real(fd);
}
