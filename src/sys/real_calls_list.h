// The one list of libc functions loopfast intercepts. It generates the table of real functions
// (sys/real_calls.h) and their dlsym(RTLD_NEXT) resolution (real_calls.cc). The exported
// wrappers in src/interpose/interpose.cc are written by hand: a function added here needs its
// wrapper there too.
//
// X(return type, name, (parameters), (arguments))
// Variadic functions (fcntl, ioctl) are listed with their fixed third argument spelled out.
#define LOOPFAST_REAL_CALLS(X)                                                                     \
  X(int, socket, (int domain, int type, int protocol), (domain, type, protocol))                   \
  X(int, bind, (int fd, const struct sockaddr *addr, socklen_t len), (fd, addr, len))              \
  X(int, connect, (int fd, const struct sockaddr *addr, socklen_t len), (fd, addr, len))           \
  X(int, listen, (int fd, int backlog), (fd, backlog))                                             \
  X(int, accept, (int fd, struct sockaddr *addr, socklen_t *len), (fd, addr, len))                 \
  X(int, accept4, (int fd, struct sockaddr *addr, socklen_t *len, int flags),                      \
    (fd, addr, len, flags))                                                                        \
  X(int, close, (int fd), (fd))                                                                    \
  X(int, shutdown, (int fd, int how), (fd, how))                                                   \
  X(ssize_t, send, (int fd, const void *buf, size_t len, int flags), (fd, buf, len, flags))        \
  X(ssize_t, recv, (int fd, void *buf, size_t len, int flags), (fd, buf, len, flags))              \
  X(ssize_t, sendto,                                                                               \
    (int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr, socklen_t alen), \
    (fd, buf, len, flags, addr, alen))                                                             \
  X(ssize_t, recvfrom,                                                                             \
    (int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen),            \
    (fd, buf, len, flags, addr, alen))                                                             \
  X(ssize_t, sendmsg, (int fd, const struct msghdr *msg, int flags), (fd, msg, flags))             \
  X(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags), (fd, msg, flags))                   \
  X(ssize_t, read, (int fd, void *buf, size_t len), (fd, buf, len))                                \
  X(ssize_t, write, (int fd, const void *buf, size_t len), (fd, buf, len))                         \
  X(ssize_t, readv, (int fd, const struct iovec *iov, int count), (fd, iov, count))                \
  X(ssize_t, writev, (int fd, const struct iovec *iov, int count), (fd, iov, count))               \
  X(ssize_t, sendfile, (int out_fd, int in_fd, off_t *offset, size_t count),                       \
    (out_fd, in_fd, offset, count))                                                                \
  X(ssize_t, splice,                                                                               \
    (int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned flags),          \
    (fd_in, off_in, fd_out, off_out, len, flags))                                                  \
  X(int, sendmmsg, (int fd, struct mmsghdr *msgs, unsigned count, int flags),                      \
    (fd, msgs, count, flags))                                                                      \
  X(int, recvmmsg,                                                                                 \
    (int fd, struct mmsghdr *msgs, unsigned count, int flags, struct timespec *timeout),           \
    (fd, msgs, count, flags, timeout))                                                             \
  X(int, setsockopt, (int fd, int level, int name, const void *val, socklen_t len),                \
    (fd, level, name, val, len))                                                                   \
  X(int, getsockopt, (int fd, int level, int name, void *val, socklen_t *len),                     \
    (fd, level, name, val, len))                                                                   \
  X(int, ioctl, (int fd, unsigned long request, void *arg), (fd, request, arg))                    \
  X(int, fcntl, (int fd, int cmd, long arg), (fd, cmd, arg))                                       \
  X(int, dup, (int fd), (fd))                                                                      \
  X(int, dup2, (int fd, int fd2), (fd, fd2))                                                       \
  X(int, dup3, (int fd, int fd2, int flags), (fd, fd2, flags))                                     \
  X(int, close_range, (unsigned first, unsigned last, int flags), (first, last, flags))            \
  X(int, poll, (struct pollfd * fds, nfds_t nfds, int timeout), (fds, nfds, timeout))              \
  X(int, ppoll,                                                                                    \
    (struct pollfd * fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask),   \
    (fds, nfds, timeout, sigmask))                                                                 \
  X(int, select, (int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout),             \
    (nfds, r, w, e, timeout))                                                                      \
  X(int, pselect,                                                                                  \
    (int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,                    \
     const sigset_t *sigmask),                                                                     \
    (nfds, r, w, e, timeout, sigmask))                                                             \
  X(int, epoll_create1, (int flags), (flags))                                                      \
  X(int, epoll_ctl, (int epfd, int op, int fd, struct epoll_event *event), (epfd, op, fd, event))  \
  X(int, epoll_wait, (int epfd, struct epoll_event *events, int max, int timeout),                 \
    (epfd, events, max, timeout))                                                                  \
  X(int, epoll_pwait,                                                                              \
    (int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *sigmask),         \
    (epfd, events, max, timeout, sigmask))                                                         \
  X(int, epoll_pwait2,                                                                             \
    (int epfd, struct epoll_event *events, int max, const struct timespec *timeout,                \
     const sigset_t *sigmask),                                                                     \
    (epfd, events, max, timeout, sigmask))                                                         \
  X(void, closefrom, (int first), (first))                                                         \
  X(long, syscall, (long number, long a1, long a2, long a3, long a4, long a5, long a6),            \
    (number, a1, a2, a3, a4, a5, a6))                                                              \
  X(pid_t, fork, (void), ())                                                                       \
  X(int, execve, (const char *path, char *const *argv, char *const *envp), (path, argv, envp))     \
  X(int, execvp, (const char *file, char *const *argv), (file, argv))                              \
  X(int, execvpe, (const char *file, char *const *argv, char *const *envp), (file, argv, envp))    \
  X(int, fexecve, (int fd, char *const *argv, char *const *envp), (fd, argv, envp))                \
  X(int, execveat, (int dirfd, const char *path, char *const *argv, char *const *envp, int flags), \
    (dirfd, path, argv, envp, flags))                                                              \
  X(int, posix_spawn,                                                                              \
    (pid_t * pid, const char *path, const posix_spawn_file_actions_t *actions,                     \
     const posix_spawnattr_t *attr, char *const *argv, char *const *envp),                         \
    (pid, path, actions, attr, argv, envp))                                                        \
  X(int, posix_spawnp,                                                                             \
    (pid_t * pid, const char *file, const posix_spawn_file_actions_t *actions,                     \
     const posix_spawnattr_t *attr, char *const *argv, char *const *envp),                         \
    (pid, file, actions, attr, argv, envp))                                                        \
  X(int, posix_spawn_file_actions_adddup2,                                                         \
    (posix_spawn_file_actions_t * actions, int fd, int new_fd), (actions, fd, new_fd))             \
  X(int, posix_spawn_file_actions_destroy, (posix_spawn_file_actions_t * actions), (actions))      \
  X(int, sigaction, (int sig, const struct sigaction *action, struct sigaction *old),              \
    (sig, action, old))                                                                            \
  X(sighandler_t, signal, (int sig, sighandler_t handler), (sig, handler))
