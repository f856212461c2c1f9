/* secretctl's exit statuses (CONTRACT.md) and their mapping from wire status. */
#ifndef SECRETD_EXITCODES_H
#define SECRETD_EXITCODES_H

enum exit_code {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_NOTFOUND = 3,
	EXIT_DENIED = 4,
	EXIT_UNREACHABLE = 5,
	EXIT_UNAVAILABLE = 6,
};

/* The exit status a client reports for a response status. */
int exit_for_status(int wire_status);

#endif
