/*
 * libFuzzer harness for the config file parser (config_parse): the file is
 * read as root at start-up and may be edited by anyone who can write it.
 * Never a crash, a leak or a sanitizer report; an error is one terminated
 * line naming the source; settings that parse stay within their bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[512];

	if (config_defaults(&cfg) != 0)
		return 0;
	err[0] = '\0';
	if (config_parse(&cfg, (const char *)data, size, "fuzz", err, sizeof(err)) != 0) {
		if (strnlen(err, sizeof(err)) == sizeof(err) || strncmp(err, "fuzz", 4) != 0 ||
		    strchr(err, '\n') != NULL)
			__builtin_trap();
	} else {
		if (cfg.socket == NULL || cfg.socket[0] == '\0' || cfg.vault == NULL ||
		    cfg.policy == NULL || cfg.audit_log == NULL || cfg.socket_mode > 0777 ||
		    cfg.keep_versions == 0 || cfg.audit_epoch_records == 0 ||
		    cfg.log_level < 0 || cfg.log_level > 3)
			__builtin_trap();
	}
	config_free(&cfg);
	return 0;
}
