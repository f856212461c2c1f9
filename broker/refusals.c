#include "refusals.h"

bool refusals_may_record(struct refusals *r, uint64_t now_ms, unsigned count)
{
	if (now_ms - r->window_ms >= 1000) {
		r->window_ms = now_ms;
		r->records = 0;
	}
	if (r->records < REFUSALS_PER_S) {
		r->records++;
		return true;
	}
	r->unrecorded += count;
	return false;
}

unsigned long long refusals_take(struct refusals *r)
{
	unsigned long long n = r->unrecorded;

	r->unrecorded = 0;
	return n;
}
