/*
 * The kernel's floor for "one message in, one ack out" over TCP, for Tools/bench-floor: what
 * any server that acknowledges each of 10,000 agents' 1-per-second frames at once pays here,
 * before decoding, judging or storing anything (issue #17's CPU target: 10 % of a core).
 *
 *   floor server PORT
 *       epoll (level-triggered) over every connection; a readable one is read (64 KiB at a
 *       time) and answered with one ACK_BYTES write per MSG_BYTES read, coalesced into one
 *       send per read, as GridMon's server coalesces acks per read. Nothing else.
 *   floor client PORT CONNECTIONS RATE SECONDS
 *       CONNECTIONS connections to 127.0.0.1:PORT, each sending one MSG_BYTES message RATE
 *       times a second (spread evenly over each 1 ms tick) for SECONDS, reading its acks;
 *       prints `floor_client sent=<n> acked_bytes=<n>`.
 *
 * No error recovery: it is a measuring stick, run by a script that checks what it printed.
 */
#define _GNU_SOURCE  /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A 1-sample SampleBatch frame with the eight gauges is about 100 bytes; its Ack about 17. */
enum { MSG_BYTES = 100, ACK_BYTES = 17, MAX_EVENTS = 256 };

static void die(const char *what) { perror(what); exit(2); }

static void raise_nofile(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) { r.rlim_cur = r.rlim_max; setrlimit(RLIMIT_NOFILE, &r); }
}

static _Noreturn void server(int port) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 4096)) die("bind/listen");
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = listener };
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    static char in[65536], acks[65536 / MSG_BYTES * ACK_BYTES + ACK_BYTES];
    static long pending[1 << 17]; /* bytes toward the next whole message, per descriptor */
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c;
                while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event e = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                    pending[c] = 0;
                }
                continue;
            }
            ssize_t got = read(fd, in, sizeof in);
            if (got <= 0) { if (got == 0 || errno != EAGAIN) close(fd); continue; }
            pending[fd] += got;
            long whole = pending[fd] / MSG_BYTES;
            pending[fd] -= whole * MSG_BYTES;
            if (whole > 0) (void)!send(fd, acks, (size_t)whole * ACK_BYTES, MSG_NOSIGNAL);
        }
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int client(int port, int conns, double rate, double seconds) {
    int *fds = calloc(conns, sizeof *fds);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1;
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a)) die("connect");
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        struct epoll_event e = { .events = EPOLLIN, .data.fd = fds[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    }
    static char msg[MSG_BYTES], buf[65536];
    long sent = 0, acked = 0;
    double start = now(), per_second = conns * rate;
    int next = 0;
    struct epoll_event events[MAX_EVENTS];
    while (now() - start < seconds) {
        /* Sends due by now, in connection order: connection i's k-th message at (k + i / conns) / rate. */
        long due = (long)((now() - start) * per_second);
        while (sent < due) {
            (void)!send(fds[next], msg, sizeof msg, MSG_NOSIGNAL);
            sent++;
            next = (next + 1) % conns;
        }
        int n = epoll_wait(ep, events, MAX_EVENTS, 1);
        for (int i = 0; i < n; i++) {
            ssize_t got = read(events[i].data.fd, buf, sizeof buf);
            if (got > 0) acked += got;
        }
    }
    printf("floor_client sent=%ld acked_bytes=%ld expected_ack_bytes=%ld\n", sent, acked, sent * ACK_BYTES);
    return 0;
}

int main(int argc, char **argv) {
    raise_nofile();
    if (argc == 3 && !strcmp(argv[1], "server")) server(atoi(argv[2]));
    if (argc == 6 && !strcmp(argv[1], "client")) return client(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: floor server PORT | floor client PORT CONNECTIONS RATE SECONDS\n");
    return 64;
}
