/*
 * secretctl status: the broker's state (upstream, revision, lag, secrets,
 * audit, version), for root on the host or a caller with list on `**`.
 */
#include <secretd/wire.h>

#include "secretctl.h"

int cmd_status(int argc, char **argv)
{
	return ctl_pairs_command(argc, argv, WIRE_STATUS, "status");
}
