/*
 * Refusals (over a limit) are recorded at most REFUSALS_PER_S a second in
 * all; the rest are counted and reported in one record a second, so that
 * no flood of refused requests or connections can fill the log's disk.
 */
#ifndef SECRETD_REFUSALS_H
#define SECRETD_REFUSALS_H

#include <stdbool.h>
#include <stdint.h>

#define REFUSALS_PER_S 20

struct refusals {
	uint64_t window_ms;
	unsigned records;               /* recorded in the current second */
	unsigned long long unrecorded;  /* counted, waiting for the next summary */
};

/* May a record of count refusals be written now?  If not, they are counted. */
bool refusals_may_record(struct refusals *r, uint64_t now_ms, unsigned count);

/* The count to report in the summary record (then reset), 0 when none. */
unsigned long long refusals_take(struct refusals *r);

#endif
