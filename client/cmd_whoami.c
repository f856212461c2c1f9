/* secretctl whoami: the caller's identity as the broker sees it (pairs.c). */
#include <secretd/wire.h>

#include "secretctl.h"

int cmd_whoami(int argc, char **argv)
{
	return ctl_pairs_command(argc, argv, WIRE_WHOAMI, "whoami");
}
