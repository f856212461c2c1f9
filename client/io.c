/* Writing whole buffers to descriptors. */
#include <errno.h>
#include <unistd.h>

#include "secretctl.h"

int ctl_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}
