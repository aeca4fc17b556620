#ifndef CLINUX_H
#define CLINUX_H
#include <stdint.h>
#include <sys/types.h>
#include <signal.h>

/// Thin shims over Linux APIs that Swift's Glibc module does not export (epoll, eventfd, timerfd),
/// and over `struct epoll_event`, which is packed on x86_64 and imports badly. Every function returns
/// what the system call returns (-1 and errno on failure).

int clinux_epoll_create(void);
/// Adds, modifies (op = 1, 3) or removes (op = 2) `fd` with the given EPOLL* mask and a 64-bit token.
int clinux_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);
/// Waits for events; writes up to `max` tokens and masks into the two arrays.
int clinux_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);

int clinux_eventfd(void);
int clinux_eventfd_signal(int fd);
int clinux_eventfd_drain(int fd);

int clinux_timerfd(void);
/// Arms a one-shot monotonic timer `ns` nanoseconds from now; 0 disarms it.
int clinux_timerfd_arm(int fd, uint64_t ns);
int clinux_timerfd_drain(int fd);

extern const uint32_t CLINUX_EPOLLIN;
extern const uint32_t CLINUX_EPOLLOUT;
extern const uint32_t CLINUX_EPOLLERR;
extern const uint32_t CLINUX_EPOLLHUP;
extern const uint32_t CLINUX_EPOLLRDHUP;
extern const uint32_t CLINUX_EPOLLET;
extern const uint32_t CLINUX_EPOLLEXCLUSIVE;
extern const int CLINUX_EPOLL_CTL_ADD;
extern const int CLINUX_EPOLL_CTL_DEL;
extern const int CLINUX_EPOLL_CTL_MOD;

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (a GNU extension Glibc's module does not export).
int clinux_accept(int fd, void *address, uint32_t *length);
/// Names the calling thread (visible in top -H and gdb); at most 15 bytes are kept.
void clinux_set_thread_name(const char *name);
/// Raises the soft RLIMIT_NOFILE to the hard limit (as far as the system allows); returns the soft limit now in
/// force, or -errno.
long clinux_raise_descriptor_limit(void);

/// sigwaitinfo for the signals of `set`: returns the signal taken, or -1 with errno (EINTR). `*pid` and `*uid` are
/// its sender's when the kernel vouches for them (kill, tgkill: SI_USER, SI_TKILL), -1 otherwise (the kernel, a
/// terminal, or sigqueue, whose sender writes them itself).
int clinux_sigwait_sender(const sigset_t *set, int *pid, int *uid);

/// Monotonic clock in nanoseconds.
uint64_t clinux_monotonic_ns(void);
#endif
