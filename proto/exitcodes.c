/*
 * Response status to client exit status (CONTRACT "Exit status").  Statuses
 * without an exit code of their own (a broker error, a malformed request,
 * rate limiting, a status this client does not know) are plain failures.
 */
#include "secretd/exitcodes.h"
#include "secretd/wire.h"

int exit_for_status(int wire_status)
{
	switch (wire_status) {
	case WIRE_OK:
		return EXIT_OK;
	case WIRE_NOT_FOUND:
		return EXIT_NOTFOUND;
	case WIRE_DENIED:
		return EXIT_DENIED;
	case WIRE_UNAVAILABLE:
		return EXIT_UNAVAILABLE;
	default:
		return EXIT_ERROR;
	}
}
