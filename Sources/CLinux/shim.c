#define _GNU_SOURCE
#include "CLinux.h"
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <signal.h>

const uint32_t CLINUX_EPOLLIN = EPOLLIN;
const uint32_t CLINUX_EPOLLOUT = EPOLLOUT;
const uint32_t CLINUX_EPOLLERR = EPOLLERR;
const uint32_t CLINUX_EPOLLHUP = EPOLLHUP;
const uint32_t CLINUX_EPOLLRDHUP = EPOLLRDHUP;
const uint32_t CLINUX_EPOLLET = EPOLLET;
const uint32_t CLINUX_EPOLLEXCLUSIVE = EPOLLEXCLUSIVE;
const int CLINUX_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int CLINUX_EPOLL_CTL_DEL = EPOLL_CTL_DEL;
const int CLINUX_EPOLL_CTL_MOD = EPOLL_CTL_MOD;

int clinux_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int clinux_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}

int clinux_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n;
    do {
        n = epoll_wait(epfd, evs, max, timeout_ms);
    } while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) {
        tokens[i] = evs[i].data.u64;
        events[i] = evs[i].events;
    }
    return n;
}

int clinux_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int clinux_eventfd_signal(int fd) { return eventfd_write(fd, 1); }

int clinux_eventfd_drain(int fd) {
    eventfd_t value;
    return eventfd_read(fd, &value);
}

int clinux_timerfd(void) { return timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK); }

int clinux_timerfd_arm(int fd, uint64_t ns) {
    struct itimerspec spec = {0};
    if (ns > 0) {
        spec.it_value.tv_sec = (time_t)(ns / 1000000000ULL);
        spec.it_value.tv_nsec = (long)(ns % 1000000000ULL);
    }
    return timerfd_settime(fd, 0, &spec, NULL);
}

int clinux_timerfd_drain(int fd) {
    uint64_t expirations;
    return (int)read(fd, &expirations, sizeof expirations);
}

uint64_t clinux_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int clinux_accept(int fd, void *address, uint32_t *length) {
    return accept4(fd, (struct sockaddr *)address, (socklen_t *)length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void clinux_set_thread_name(const char *name) {
    char buffer[16];
    strncpy(buffer, name, 15);
    buffer[15] = 0;
    pthread_setname_np(pthread_self(), buffer);
}

long clinux_raise_descriptor_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -errno;
    if (limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX : (long)limit.rlim_cur;
}


int clinux_sigwait_sender(const sigset_t *set, int *pid, int *uid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int signal = sigwaitinfo(set, &info);
    if (signal < 0) return -1;
    // Only these carry a sender the kernel filled in: with sigqueue (SI_QUEUE) the sender writes si_pid and
    // si_uid itself, and timers, message queues and AIO (SI_TIMER, SI_MESGQ, SI_ASYNCIO) have no sender.
    int sent = info.si_code == SI_USER || info.si_code == SI_TKILL;
    *pid = sent ? (int)info.si_pid : -1;
    *uid = sent ? (int)info.si_uid : -1;
    return signal;
}
