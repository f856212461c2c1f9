/*
 * Signals for the long-running commands (watch, inject --watch, exec): names
 * parsed from the command line, a signalfd so that handlers never run (the
 * poll loop reads signals like any other input), and pidfds so that a pid
 * that was recycled is never signalled.
 */
#ifndef SECRETCTL_SIGS_H
#define SECRETCTL_SIGS_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

/* "TERM", "SIGTERM" or a number from 1 to 64 into *sig; false otherwise. */
bool sigs_parse(const char *s, int *sig);

/*
 * Block the signals in `set` and return a signalfd (non-blocking,
 * close-on-exec) that reads them, or -errno.  *saved gets the old mask,
 * for children to restore before they exec.
 */
int sigs_open(const sigset_t *set, sigset_t *saved);

/* The next pending signal from fd, 0 if none, or -errno. */
int sigs_read(int fd);

/* A pidfd for pid, or -errno (pidfd_open(2)). */
int sigs_pidfd(pid_t pid);

/* Send sig through a pidfd: 0 or -errno (pidfd_send_signal(2)). */
int sigs_send(int pidfd, int sig);

/* Milliseconds of CLOCK_MONOTONIC, for deadlines. */
long long sigs_now_ms(void);

#endif
