// What Swift's Glibc module does not export: the epoll, eventfd, timerfd and signalfd
// headers, and accept4 (declared only under _GNU_SOURCE, which Glibc's module lacks).
#ifndef GRIDMON_POSIX_H
#define GRIDMON_POSIX_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

/// accept4(2), compiled with _GNU_SOURCE.
int gridmon_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

#endif
