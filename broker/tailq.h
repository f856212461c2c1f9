/* sys/queue.h's TAILQ, with the _SAFE walk glibc's copy lacks (as BSD's). */
#ifndef SECRETD_TAILQ_H
#define SECRETD_TAILQ_H

#include <sys/queue.h>

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                   \
	for ((var) = TAILQ_FIRST(head);                               \
	     (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);   \
	     (var) = (tvar))
#endif

#endif
