#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/socket.h>
#include "gridmon_posix.h"

int gridmon_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return accept4(fd, addr, len, flags);
}

int gridmon_start_writeback(int fd, long long offset, long long length) {
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
}
