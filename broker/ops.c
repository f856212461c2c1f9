/* The operation table (tmux's cmd_entry, wireguard-tools' subcommands[]). */
#include "ops.h"

#include <stddef.h>

static const struct op_entry ops[] = {
	{ WIRE_PING, "ping", 0, 0, op_ping },
	{ WIRE_WHOAMI, "whoami", 0, 0, op_whoami },
	{ WIRE_GET, "get", PERM_READ, OP_NAME | OP_AUDITED | OP_SECRET | OP_CALLER, op_get },
	{ WIRE_PUT, "put", PERM_WRITE, OP_NAME | OP_AUDITED | OP_SECRET | OP_CALLER, op_put },
	{ WIRE_DELETE, "rm", PERM_DELETE, OP_NAME | OP_AUDITED | OP_SECRET | OP_CALLER, op_delete },
	/* The policy is asked name by name, for list. */
	{ WIRE_LIST, "list", PERM_LIST, OP_AUDITED | OP_CALLER, op_list },
	/* And name by name, for watch: at once and for every event. */
	{ WIRE_WATCH, "watch", PERM_READ, OP_AUDITED | OP_CALLER | OP_STREAM, op_watch },
	/* Root on the host, or list on every name (op_info.c decides); answered
	 * also while the audit log is degraded, which is what it may have to say. */
	{ WIRE_STATUS, "status", 0, OP_CALLER, op_status },
};

const struct op_entry *op_find(uint8_t type)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].type == type)
			return &ops[i];
	return NULL;
}
