// What Swift's Glibc module does not export: the epoll, eventfd, timerfd and signalfd
// headers, accept4 and sync_file_range (declared only under _GNU_SOURCE, which Glibc's
// module lacks).
#ifndef GRIDMON_POSIX_H
#define GRIDMON_POSIX_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

/// accept4(2), compiled with _GNU_SOURCE.
int gridmon_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/// sync_file_range(2) with SYNC_FILE_RANGE_WRITE (start writeback, do not wait), also
/// declared only under _GNU_SOURCE.
int gridmon_start_writeback(int fd, long long offset, long long length);

#endif
