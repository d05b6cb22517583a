// The one list of libc functions loopfast intercepts. From it come the table of real functions
// (sys/real_calls.h) and their dlsym(RTLD_NEXT) resolution (real_calls.cc), and, in
// src/interpose/interpose.cc, the exported wrappers: the prototype of every wrapper and the whole
// wrapper of every entry whose shape is uniform. Adding a call is one line here (and, when the
// verb it names is new, that verb in interpose.cc: a `using` of ops' own or a small adapter).
//
// X(return type, name, (parameters), (arguments), shape, verb)
//
// shape, the wrapper interpose.cc makes (`verb` is a function there: a socket-layer verb or a
// small adapter to one):
//   SOCKET     looks the first argument up; an untracked descriptor goes to the real function,
//              a tracked one to verb(socket, arguments...), errno kept on success.
//   EPOLL      the same with the first argument's epoll set: verb(set, arguments...).
//   ALWAYS     always verb(arguments...) (the socket layer sorts descriptors out), errno kept on
//              success.
//   BEFORE     verb(arguments...), then the real function (exec and spawn).
//   HAND       written by hand in interpose.cc (special logic), declared from this list;
//              HAND_NOEXCEPT the same, declared noexcept (the signal handler calls).
//   VARIADIC   written and declared by hand: libc's function is variadic; the list spells out
//              the fixed arguments the real function is called with (fcntl, ioctl, syscall).
//   REAL_ONLY  not exported: only loopfast's own calls use it.
#define LOOPFAST_REAL_CALLS(X)                                                                     \
  X(int, socket, (int domain, int type, int protocol), (domain, type, protocol), ALWAYS,           \
    CreateSocket)                                                                                  \
  X(int, bind, (int fd, const struct sockaddr *addr, socklen_t len), (fd, addr, len), REAL_ONLY, ) \
  X(int, connect, (int fd, const struct sockaddr *addr, socklen_t len), (fd, addr, len), SOCKET,   \
    Connect)                                                                                       \
  X(int, listen, (int fd, int backlog), (fd, backlog), SOCKET, Listen)                             \
  X(int, accept, (int fd, struct sockaddr *addr, socklen_t *len), (fd, addr, len), SOCKET,         \
    AcceptNoFlags)                                                                                 \
  X(int, accept4, (int fd, struct sockaddr *addr, socklen_t *len, int flags),                      \
    (fd, addr, len, flags), SOCKET, Accept)                                                        \
  X(int, close, (int fd), (fd), ALWAYS, Close)                                                     \
  X(int, shutdown, (int fd, int how), (fd, how), SOCKET, Shutdown)                                 \
  X(ssize_t, send, (int fd, const void *buf, size_t len, int flags), (fd, buf, len, flags),        \
    SOCKET, SendBuffer)                                                                            \
  X(ssize_t, recv, (int fd, void *buf, size_t len, int flags), (fd, buf, len, flags), SOCKET,      \
    RecvBuffer)                                                                                    \
  X(ssize_t, sendto,                                                                               \
    (int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr, socklen_t alen), \
    (fd, buf, len, flags, addr, alen), SOCKET, SendBufferTo)                                       \
  X(ssize_t, recvfrom,                                                                             \
    (int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen),            \
    (fd, buf, len, flags, addr, alen), HAND, )                                                     \
  X(ssize_t, sendmsg, (int fd, const struct msghdr *msg, int flags), (fd, msg, flags), HAND, )     \
  X(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags), (fd, msg, flags), SOCKET, Recv)     \
  X(ssize_t, read, (int fd, void *buf, size_t len), (fd, buf, len), SOCKET, ReadBuffer)            \
  X(ssize_t, write, (int fd, const void *buf, size_t len), (fd, buf, len), SOCKET, WriteBuffer)    \
  X(ssize_t, readv, (int fd, const struct iovec *iov, int count), (fd, iov, count), SOCKET,        \
    ReadVector)                                                                                    \
  X(ssize_t, writev, (int fd, const struct iovec *iov, int count), (fd, iov, count), SOCKET,       \
    WriteVector)                                                                                   \
  X(ssize_t, sendfile, (int out_fd, int in_fd, off_t *offset, size_t count),                       \
    (out_fd, in_fd, offset, count), SOCKET, SendFile)                                              \
  X(ssize_t, splice,                                                                               \
    (int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned flags),          \
    (fd_in, off_in, fd_out, off_out, len, flags), HAND, )                                          \
  X(int, sendmmsg, (int fd, struct mmsghdr *msgs, unsigned count, int flags),                      \
    (fd, msgs, count, flags), HAND, )                                                              \
  X(int, recvmmsg,                                                                                 \
    (int fd, struct mmsghdr *msgs, unsigned count, int flags, struct timespec *timeout),           \
    (fd, msgs, count, flags, timeout), SOCKET, RecvManyUntimed)                                    \
  X(int, setsockopt, (int fd, int level, int name, const void *val, socklen_t len),                \
    (fd, level, name, val, len), SOCKET, SetSockOpt)                                               \
  X(int, getsockopt, (int fd, int level, int name, void *val, socklen_t *len),                     \
    (fd, level, name, val, len), SOCKET, GetSockOpt)                                               \
  X(int, ioctl, (int fd, unsigned long request, void *arg), (fd, request, arg), VARIADIC, )        \
  X(int, fcntl, (int fd, int cmd, long arg), (fd, cmd, arg), VARIADIC, )                           \
  X(int, dup, (int fd), (fd), ALWAYS, Dup)                                                         \
  X(int, dup2, (int fd, int fd2), (fd, fd2), ALWAYS, Dup2)                                         \
  X(int, dup3, (int fd, int fd2, int flags), (fd, fd2, flags), ALWAYS, Dup3)                       \
  X(int, close_range, (unsigned first, unsigned last, int flags), (first, last, flags), ALWAYS,    \
    CloseRange)                                                                                    \
  X(int, poll, (struct pollfd * fds, nfds_t nfds, int timeout), (fds, nfds, timeout), ALWAYS,      \
    PollMs)                                                                                        \
  X(int, ppoll,                                                                                    \
    (struct pollfd * fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask),   \
    (fds, nfds, timeout, sigmask), ALWAYS, Poll)                                                   \
  X(int, select, (int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout),             \
    (nfds, r, w, e, timeout), HAND, )                                                              \
  X(int, pselect,                                                                                  \
    (int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,                    \
     const sigset_t *sigmask),                                                                     \
    (nfds, r, w, e, timeout, sigmask), HAND, )                                                     \
  X(int, epoll_create1, (int flags), (flags), REAL_ONLY, )                                         \
  X(int, epoll_ctl, (int epfd, int op, int fd, struct epoll_event *event), (epfd, op, fd, event),  \
    HAND, )                                                                                        \
  X(int, epoll_wait, (int epfd, struct epoll_event *events, int max, int timeout),                 \
    (epfd, events, max, timeout), EPOLL, EpollWaitMs)                                              \
  X(int, epoll_pwait,                                                                              \
    (int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *sigmask),         \
    (epfd, events, max, timeout, sigmask), EPOLL, EpollWaitMs)                                     \
  X(int, epoll_pwait2,                                                                             \
    (int epfd, struct epoll_event *events, int max, const struct timespec *timeout,                \
     const sigset_t *sigmask),                                                                     \
    (epfd, events, max, timeout, sigmask), EPOLL, EpollWait)                                       \
  X(void, closefrom, (int first), (first), HAND, )                                                 \
  X(long, syscall, (long number, long a1, long a2, long a3, long a4, long a5, long a6),            \
    (number, a1, a2, a3, a4, a5, a6), VARIADIC, )                                                  \
  X(pid_t, fork, (void), (), HAND, )                                                               \
  X(int, execve, (const char *path, char *const *argv, char *const *envp), (path, argv, envp),     \
    BEFORE, BeforeExec)                                                                            \
  X(int, execvp, (const char *file, char *const *argv), (file, argv), BEFORE, BeforeExec)          \
  X(int, execvpe, (const char *file, char *const *argv, char *const *envp), (file, argv, envp),    \
    BEFORE, BeforeExec)                                                                            \
  X(int, fexecve, (int fd, char *const *argv, char *const *envp), (fd, argv, envp), BEFORE,        \
    BeforeExec)                                                                                    \
  X(int, execveat, (int dirfd, const char *path, char *const *argv, char *const *envp, int flags), \
    (dirfd, path, argv, envp, flags), BEFORE, BeforeExec)                                          \
  X(int, posix_spawn,                                                                              \
    (pid_t * pid, const char *path, const posix_spawn_file_actions_t *actions,                     \
     const posix_spawnattr_t *attr, char *const *argv, char *const *envp),                         \
    (pid, path, actions, attr, argv, envp), BEFORE, BeforeSpawn)                                   \
  X(int, posix_spawnp,                                                                             \
    (pid_t * pid, const char *file, const posix_spawn_file_actions_t *actions,                     \
     const posix_spawnattr_t *attr, char *const *argv, char *const *envp),                         \
    (pid, file, actions, attr, argv, envp), BEFORE, BeforeSpawn)                                   \
  X(int, posix_spawn_file_actions_adddup2,                                                         \
    (posix_spawn_file_actions_t * actions, int fd, int new_fd), (actions, fd, new_fd), HAND, )     \
  X(int, posix_spawn_file_actions_destroy, (posix_spawn_file_actions_t * actions), (actions),      \
    BEFORE, ForgetSpawnActions)                                                                    \
  X(int, sigaction, (int sig, const struct sigaction *action, struct sigaction *old),              \
    (sig, action, old), HAND_NOEXCEPT, )                                                           \
  X(sighandler_t, signal, (int sig, sighandler_t handler), (sig, handler), HAND_NOEXCEPT, )
