/* The daemon's own log: one line per event to stderr.  Never a secret value. */
#ifndef SECRETD_LOG_H
#define SECRETD_LOG_H

enum log_level { LOGL_ERR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
