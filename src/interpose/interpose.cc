// The interposer: libc's socket functions, exported from libloopfast.so. Whether the library
// is preloaded (`loopfast run`) or linked, these definitions come before libc's. Each wrapper
// looks the descriptor up once (lock-free, socket/descriptor_map.h) and hands what it found to
// the socket layer, or passes straight through to the real function; the logic (and its tests)
// lives in src/socket.
//
// errno: a call that succeeds leaves errno as it found it, as libc does; a call that fails sets
// the errno the socket layer (or the real call) chose.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "capi/user_memory.h"
#include "socket/socket_ops.h"
#include "socket/startup.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"
#include "sys/signal_handlers.h"

namespace {

namespace ops = loopfast::ops;
using loopfast::sys::Real;

// Restores errno when the call succeeded.
class ErrnoKeeper {
 public:
  ErrnoKeeper() : saved_(errno) {}
  template <typename T>
  T Done(T result) {
    if (result >= 0) errno = saved_;
    return result;
  }

 private:
  int saved_;
};

msghdr OneBuffer(void *buffer, size_t length, iovec *iov) {
  iov->iov_base = buffer;
  iov->iov_len = length;
  msghdr message{};
  message.msg_iov = iov;
  message.msg_iovlen = 1;
  return message;
}

msghdr Vector(const iovec *iov, int count) {
  msghdr message{};
  message.msg_iov = const_cast<iovec *>(iov);
  message.msg_iovlen = count < 0 ? 0 : static_cast<size_t>(count);
  return message;
}

ssize_t RecvFrom(int fd, void *buffer, size_t length, int flags, sockaddr *address,
                 socklen_t *address_length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) {
    return Real().recvfrom(fd, buffer, length, flags, address, address_length);
  }
  ErrnoKeeper keeper;
  iovec iov;
  msghdr message = OneBuffer(buffer, length, &iov);
  message.msg_name = address;
  message.msg_namelen = address_length != nullptr ? *address_length : 0;
  const ssize_t n = ops::Recv(*socket, fd, &message, flags);
  if (n >= 0 && address != nullptr && address_length != nullptr) {
    *address_length = message.msg_namelen;
  }
  return keeper.Done(n);
}

// A message that passes descriptors (SCM_RIGHTS) hands fast sockets among them to kernel TCP
// first. The control data is copied through the kernel: a bad pointer is the real call's EFAULT.
void HandOverPassedSockets(const msghdr *message) {
  if (message == nullptr || message->msg_controllen == 0 || message->msg_control == nullptr) {
    return;
  }
  alignas(cmsghdr) char control[4096];
  const size_t length = std::min<size_t>(message->msg_controllen, sizeof control);
  if (loopfast::CopyFromUser(control, message->msg_control, length))
    ops::BeforePassing(control, length);
}

void ForkPrepare() { ops::BeforeFork(); }
void ForkParent() { ops::AfterFork(/*in_child=*/false); }
void ForkChild() { ops::AfterFork(/*in_child=*/true); }

__attribute__((constructor)) void Initialize() {
  (void)Real();
  (void)loopfast::sys::InVforkChild();  // notes this process's pid
  pthread_atfork(ForkPrepare, ForkParent, ForkChild);
}

}  // namespace

#define LOOPFAST_EXPORT extern "C" __attribute__((visibility("default")))

// fork itself only to learn that it failed (the atfork handlers above do the rest).
LOOPFAST_EXPORT pid_t fork() {
  const pid_t pid = Real().fork();
  if (pid != 0) ops::ForkReturned(/*failed=*/pid < 0);
  return pid;
}

LOOPFAST_EXPORT int socket(int domain, int type, int protocol) {
  ErrnoKeeper keeper;
  return keeper.Done(ops::CreateSocket(domain, type, protocol));
}

LOOPFAST_EXPORT int connect(int fd, const sockaddr *address, socklen_t length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().connect(fd, address, length);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Connect(*socket, fd, address, length));
}

LOOPFAST_EXPORT int listen(int fd, int backlog) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().listen(fd, backlog);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Listen(*socket, fd, backlog));
}

LOOPFAST_EXPORT int accept(int fd, sockaddr *address, socklen_t *length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().accept(fd, address, length);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Accept(*socket, fd, address, length, 0));
}

LOOPFAST_EXPORT int accept4(int fd, sockaddr *address, socklen_t *length, int flags) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().accept4(fd, address, length, flags);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Accept(*socket, fd, address, length, flags));
}

LOOPFAST_EXPORT int close(int fd) {
  ErrnoKeeper keeper;
  return keeper.Done(ops::Close(fd));  // a few atomic loads for descriptors not loopfast's
}

LOOPFAST_EXPORT int shutdown(int fd, int how) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().shutdown(fd, how);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Shutdown(*socket, fd, how));
}

LOOPFAST_EXPORT ssize_t send(int fd, const void *buffer, size_t length, int flags) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().send(fd, buffer, length, flags);
  ErrnoKeeper keeper;
  iovec iov;
  const msghdr message = OneBuffer(const_cast<void *>(buffer), length, &iov);
  return keeper.Done(ops::Send(*socket, fd, &message, flags));
}

LOOPFAST_EXPORT ssize_t sendto(int fd, const void *buffer, size_t length, int flags,
                               const sockaddr *address, socklen_t address_length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) {
    return Real().sendto(fd, buffer, length, flags, address, address_length);
  }
  ErrnoKeeper keeper;
  iovec iov;
  const msghdr message = OneBuffer(const_cast<void *>(buffer), length, &iov);
  return keeper.Done(ops::Send(*socket, fd, &message, flags));  // TCP ignores the address
}

LOOPFAST_EXPORT ssize_t sendmsg(int fd, const msghdr *message, int flags) {
  const auto socket = ops::Lookup(fd);
  if (!socket) {
    HandOverPassedSockets(message);
    return Real().sendmsg(fd, message, flags);
  }
  ErrnoKeeper keeper;
  return keeper.Done(ops::Send(*socket, fd, message, flags));
}

LOOPFAST_EXPORT ssize_t write(int fd, const void *buffer, size_t length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().write(fd, buffer, length);
  ErrnoKeeper keeper;
  iovec iov;
  const msghdr message = OneBuffer(const_cast<void *>(buffer), length, &iov);
  return keeper.Done(ops::Send(*socket, fd, &message, 0));
}

LOOPFAST_EXPORT ssize_t writev(int fd, const iovec *iov, int count) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().writev(fd, iov, count);
  ErrnoKeeper keeper;
  const msghdr message = Vector(iov, count);
  return keeper.Done(ops::Send(*socket, fd, &message, 0));
}

LOOPFAST_EXPORT ssize_t recv(int fd, void *buffer, size_t length, int flags) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().recv(fd, buffer, length, flags);
  ErrnoKeeper keeper;
  iovec iov;
  msghdr message = OneBuffer(buffer, length, &iov);
  return keeper.Done(ops::Recv(*socket, fd, &message, flags));
}

LOOPFAST_EXPORT ssize_t recvfrom(int fd, void *buffer, size_t length, int flags, sockaddr *address,
                                 socklen_t *address_length) {
  return RecvFrom(fd, buffer, length, flags, address, address_length);
}

LOOPFAST_EXPORT ssize_t recvmsg(int fd, msghdr *message, int flags) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().recvmsg(fd, message, flags);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Recv(*socket, fd, message, flags));
}

LOOPFAST_EXPORT ssize_t read(int fd, void *buffer, size_t length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().read(fd, buffer, length);
  ErrnoKeeper keeper;
  iovec iov;
  msghdr message = OneBuffer(buffer, length, &iov);
  return keeper.Done(ops::Recv(*socket, fd, &message, 0));
}

LOOPFAST_EXPORT ssize_t readv(int fd, const iovec *iov, int count) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().readv(fd, iov, count);
  ErrnoKeeper keeper;
  msghdr message = Vector(iov, count);
  return keeper.Done(ops::Recv(*socket, fd, &message, 0));
}

// _FORTIFY_SOURCE builds (Debian's packages) call these instead of read/recv/recvfrom.
LOOPFAST_EXPORT ssize_t __read_chk(int fd, void *buffer, size_t length, size_t buffer_length) {
  if (length > buffer_length) __builtin_trap();  // what glibc's __chk_fail amounts to
  return read(fd, buffer, length);
}

LOOPFAST_EXPORT ssize_t __recv_chk(int fd, void *buffer, size_t length, size_t buffer_length,
                                   int flags) {
  if (length > buffer_length) __builtin_trap();
  return recv(fd, buffer, length, flags);
}

LOOPFAST_EXPORT ssize_t __recvfrom_chk(int fd, void *buffer, size_t length, size_t buffer_length,
                                       int flags, sockaddr *address, socklen_t *address_length) {
  if (length > buffer_length) __builtin_trap();
  return RecvFrom(fd, buffer, length, flags, address, address_length);
}

// One line at LOOPFAST_LOG=info, when the library is loaded (preloaded or linked). The
// `loopfast` tool defines loopfast_quiet_startup: its own copy only launches the program, whose
// copy speaks.
extern "C" __attribute__((weak)) const int loopfast_quiet_startup;
__attribute__((constructor)) void AnnounceStartup() {
  if (&loopfast_quiet_startup == nullptr) loopfast::LogStartup();
}

// syscall(2) itself: a program (or a library such as liburing) that sets up an io_uring this
// way will move bytes without libc; its sockets take kernel TCP. Six arguments are read, as
// glibc's own syscall() does; the rest pass through untouched.
LOOPFAST_EXPORT long syscall(long number, ...) {
  va_list args;
  va_start(args, number);
  long a[6];
  for (long &argument : a) argument = va_arg(args, long);
  va_end(args);
  const long ret = Real().syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (number == SYS_io_uring_setup && ret >= 0) {
    ErrnoKeeper keeper;
    ops::NoteIoUring();
    return keeper.Done(ret);
  }
  return ret;
}

// liburing's set-up calls, for programs that link liburing dynamically (it makes the system
// call itself, not through syscall()). Absent liburing, these are never called.
namespace {
template <typename... Args>
int LiburingSetUp(const char *name, Args... args) {
  using SetUp = int (*)(Args...);
  auto real = reinterpret_cast<SetUp>(dlsym(RTLD_NEXT, name));
  if (real == nullptr) return -ENOSYS;
  const int ret = real(args...);
  if (ret == 0) ops::NoteIoUring();
  return ret;
}
}  // namespace

LOOPFAST_EXPORT int io_uring_queue_init(unsigned entries, void *ring, unsigned flags) {
  return LiburingSetUp("io_uring_queue_init", entries, ring, flags);
}

LOOPFAST_EXPORT int io_uring_queue_init_params(unsigned entries, void *ring, void *params) {
  return LiburingSetUp("io_uring_queue_init_params", entries, ring, params);
}

LOOPFAST_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count) {
  const auto socket = ops::Lookup(out_fd);
  if (!socket) return Real().sendfile(out_fd, in_fd, offset, count);
  ErrnoKeeper keeper;
  return keeper.Done(ops::SendFile(*socket, out_fd, in_fd, offset, count));
}

// The same function under its large-file name (off64_t is off_t on 64-bit Linux).
LOOPFAST_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count) {
  return sendfile(out_fd, in_fd, offset, count);
}

LOOPFAST_EXPORT ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
                               size_t length, unsigned flags) {
  const auto in_socket = ops::Lookup(fd_in);
  const auto out_socket = ops::Lookup(fd_out);
  if (!in_socket && !out_socket) {
    return Real().splice(fd_in, off_in, fd_out, off_out, length, flags);
  }
  ErrnoKeeper keeper;
  return keeper.Done(ops::Splice(in_socket.get(), fd_in, off_in, out_socket.get(), fd_out, off_out,
                                 length, flags));
}

LOOPFAST_EXPORT int sendmmsg(int fd, mmsghdr *messages, unsigned count, int flags) {
  const auto socket = ops::Lookup(fd);
  if (!socket) {
    for (unsigned i = 0; messages != nullptr && i < count && i < UIO_MAXIOV; ++i) {
      mmsghdr entry;
      if (!loopfast::CopyFromUser(&entry, &messages[i], sizeof entry)) break;
      HandOverPassedSockets(&entry.msg_hdr);
    }
    return Real().sendmmsg(fd, messages, count, flags);
  }
  ErrnoKeeper keeper;
  return keeper.Done(ops::SendMany(*socket, fd, messages, count, flags));
}

LOOPFAST_EXPORT int recvmmsg(int fd, mmsghdr *messages, unsigned count, int flags,
                             timespec *timeout) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().recvmmsg(fd, messages, count, flags, timeout);
  ErrnoKeeper keeper;
  return keeper.Done(ops::RecvMany(*socket, fd, messages, count, flags));
}

LOOPFAST_EXPORT int setsockopt(int fd, int level, int name, const void *value, socklen_t length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().setsockopt(fd, level, name, value, length);
  ErrnoKeeper keeper;
  return keeper.Done(ops::SetSockOpt(*socket, fd, level, name, value, length));
}

LOOPFAST_EXPORT int getsockopt(int fd, int level, int name, void *value, socklen_t *length) {
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().getsockopt(fd, level, name, value, length);
  ErrnoKeeper keeper;
  return keeper.Done(ops::GetSockOpt(*socket, fd, level, name, value, length));
}

LOOPFAST_EXPORT int ioctl(int fd, unsigned long request, ...) {
  va_list args;
  va_start(args, request);
  void *argument = va_arg(args, void *);
  va_end(args);
  const auto socket = ops::Lookup(fd);
  if (!socket) return Real().ioctl(fd, request, argument);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Ioctl(*socket, fd, request, argument));
}

namespace {
int FcntlCommon(int fd, int command, va_list args) {
  // Every fcntl argument is an int, a long or a pointer: read it as the widest.
  const long argument = va_arg(args, long);
  const bool duplicates = command == F_DUPFD || command == F_DUPFD_CLOEXEC;  // maybe an epoll fd
  const auto socket = ops::Lookup(fd);
  if (!duplicates && !socket) return Real().fcntl(fd, command, argument);
  ErrnoKeeper keeper;
  return keeper.Done(ops::Fcntl(socket.get(), fd, command, argument));
}
}  // namespace

LOOPFAST_EXPORT int fcntl(int fd, int command, ...) {
  va_list args;
  va_start(args, command);
  const int ret = FcntlCommon(fd, command, args);
  va_end(args);
  return ret;
}

LOOPFAST_EXPORT int fcntl64(int fd, int command, ...) {
  va_list args;
  va_start(args, command);
  const int ret = FcntlCommon(fd, command, args);
  va_end(args);
  return ret;
}

// Descriptor copies: always the socket layer, which shares sockets and epoll sets and keeps
// loopfast's own descriptors (a few atomic loads otherwise).
LOOPFAST_EXPORT int dup(int fd) {
  ErrnoKeeper keeper;
  return keeper.Done(ops::Dup(fd));
}

LOOPFAST_EXPORT int dup2(int fd, int fd2) {
  ErrnoKeeper keeper;
  return keeper.Done(ops::Dup3(fd, fd2, 0, /*is_dup2=*/true));
}

LOOPFAST_EXPORT int dup3(int fd, int fd2, int flags) {
  ErrnoKeeper keeper;
  return keeper.Done(ops::Dup3(fd, fd2, flags, /*is_dup2=*/false));
}

LOOPFAST_EXPORT int close_range(unsigned first, unsigned last, int flags) {
  ErrnoKeeper keeper;
  return keeper.Done(ops::CloseRange(first, last, flags));
}

LOOPFAST_EXPORT void closefrom(int first) {
  ErrnoKeeper keeper;
  ops::CloseFrom(first);
  (void)keeper.Done(0);
}

// ---- signal handlers: counted, so that a fast call's sleep ends when one runs
// (sys/signal_handlers.h)

LOOPFAST_EXPORT int sigaction(int sig, const struct sigaction *action,
                              struct sigaction *old) noexcept {
  return loopfast::sys::InstallSignalAction(sig, action, old);
}

LOOPFAST_EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
  return loopfast::sys::InstallSignalHandler(sig, handler);
}

// ---- exec and spawn: sockets the new image keeps but cannot see the rings of move to kernel
// TCP first (ops::BeforeExec). glibc's exec variants call its internal execve, so each is here.

LOOPFAST_EXPORT int execve(const char *path, char *const *argv, char *const *envp) {
  ops::BeforeExec();
  return Real().execve(path, argv, envp);
}

LOOPFAST_EXPORT int execv(const char *path, char *const *argv) {
  ops::BeforeExec();
  return Real().execve(path, argv, environ);
}

LOOPFAST_EXPORT int execvp(const char *file, char *const *argv) {
  ops::BeforeExec();
  return Real().execvp(file, argv);
}

LOOPFAST_EXPORT int execvpe(const char *file, char *const *argv, char *const *envp) {
  ops::BeforeExec();
  return Real().execvpe(file, argv, envp);
}

LOOPFAST_EXPORT int fexecve(int fd, char *const *argv, char *const *envp) {
  ops::BeforeExec();
  return Real().fexecve(fd, argv, envp);
}

LOOPFAST_EXPORT int execveat(int dirfd, const char *path, char *const *argv, char *const *envp,
                             int flags) {
  ops::BeforeExec();
  return Real().execveat(dirfd, path, argv, envp, flags);
}

namespace {

// The execl family's argument list as an argv array (on the stack: exec must not allocate
// after vfork). Returns the number of arguments, or -1 (E2BIG) when there are too many.
constexpr int kMaxListArgs = 4096;
int CollectArgs(const char *first, va_list args, const char **argv) {
  int count = 0;
  argv[count++] = first;
  while (argv[count - 1] != nullptr) {
    if (count == kMaxListArgs) {
      errno = E2BIG;
      return -1;
    }
    argv[count++] = va_arg(args, const char *);
  }
  return count;
}

// Collects the list form's arguments and calls `exec` with them as an argv array.
template <typename Exec>
int ExecWithList(const char *arg, va_list args, Exec exec) {
  const char *argv[kMaxListArgs];
  if (CollectArgs(arg, args, argv) < 0) return -1;
  return exec(const_cast<char *const *>(argv));
}

}  // namespace

LOOPFAST_EXPORT int execl(const char *path, const char *arg, ...) {
  va_list args;
  va_start(args, arg);
  const int result = ExecWithList(arg, args, [&](char *const *argv) { return execv(path, argv); });
  va_end(args);
  return result;
}

LOOPFAST_EXPORT int execlp(const char *file, const char *arg, ...) {
  va_list args;
  va_start(args, arg);
  const int result = ExecWithList(arg, args, [&](char *const *argv) { return execvp(file, argv); });
  va_end(args);
  return result;
}

LOOPFAST_EXPORT int execle(const char *path, const char *arg, ...) {
  va_list args;
  va_start(args, arg);
  // The environment follows the list's terminating null (va_list is passed by reference on
  // the ABIs Linux runs on: CollectArgs has taken the list).
  const int result = ExecWithList(arg, args, [&](char *const *argv) {
    return execve(path, argv, va_arg(args, char *const *));
  });
  va_end(args);
  return result;
}

LOOPFAST_EXPORT int posix_spawn(pid_t *pid, const char *path,
                                const posix_spawn_file_actions_t *actions,
                                const posix_spawnattr_t *attr, char *const *argv,
                                char *const *envp) {
  ops::BeforeSpawn(actions);
  return Real().posix_spawn(pid, path, actions, attr, argv, envp);
}

LOOPFAST_EXPORT int posix_spawnp(pid_t *pid, const char *file,
                                 const posix_spawn_file_actions_t *actions,
                                 const posix_spawnattr_t *attr, char *const *argv,
                                 char *const *envp) {
  ops::BeforeSpawn(actions);
  return Real().posix_spawnp(pid, file, actions, attr, argv, envp);
}

LOOPFAST_EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *actions, int fd,
                                                     int new_fd) {
  const int ret = Real().posix_spawn_file_actions_adddup2(actions, fd, new_fd);
  if (ret == 0) ops::NoteSpawnDup2(actions, fd);
  return ret;
}

LOOPFAST_EXPORT int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *actions) {
  ops::ForgetSpawnActions(actions);
  return Real().posix_spawn_file_actions_destroy(actions);
}

// ---- Readiness: every call passes straight through unless a loopfast socket is involved ----

namespace {

// A millisecond timeout as the timespec the socket layer takes; null (no limit) when negative.
const timespec *FromMs(int timeout_ms, timespec *storage) {
  if (timeout_ms < 0) return nullptr;
  *storage = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  return storage;
}

}  // namespace

LOOPFAST_EXPORT int poll(pollfd *fds, nfds_t count, int timeout_ms) {
  ErrnoKeeper keeper;
  timespec timeout;
  return keeper.Done(ops::Poll(fds, count, FromMs(timeout_ms, &timeout), nullptr));
}

LOOPFAST_EXPORT int ppoll(pollfd *fds, nfds_t count, const timespec *timeout,
                          const sigset_t *sigmask) {
  ErrnoKeeper keeper;
  return keeper.Done(ops::Poll(fds, count, timeout, sigmask));
}

// _FORTIFY_SOURCE builds call these when the array's size is known.
LOOPFAST_EXPORT int __poll_chk(pollfd *fds, nfds_t count, int timeout_ms, size_t fds_length) {
  if (fds_length / sizeof(pollfd) < count) __builtin_trap();
  return poll(fds, count, timeout_ms);
}

LOOPFAST_EXPORT int __ppoll_chk(pollfd *fds, nfds_t count, const timespec *timeout,
                                const sigset_t *sigmask, size_t fds_length) {
  if (fds_length / sizeof(pollfd) < count) __builtin_trap();
  return ppoll(fds, count, timeout, sigmask);
}

LOOPFAST_EXPORT int select(int nfds, fd_set *read_set, fd_set *write_set, fd_set *except_set,
                           timeval *timeout) {
  ErrnoKeeper keeper;
  bool used = false;
  const int n = ops::SelectWithTimeval(nfds, read_set, write_set, except_set, timeout, &used);
  if (!used) return Real().select(nfds, read_set, write_set, except_set, timeout);
  return keeper.Done(n);
}

LOOPFAST_EXPORT int pselect(int nfds, fd_set *read_set, fd_set *write_set, fd_set *except_set,
                            const timespec *timeout, const sigset_t *sigmask) {
  ErrnoKeeper keeper;
  bool used = false;
  const int n = ops::Select(nfds, read_set, write_set, except_set, timeout, sigmask, &used);
  if (!used) return Real().pselect(nfds, read_set, write_set, except_set, timeout, sigmask);
  return keeper.Done(n);
}

LOOPFAST_EXPORT int epoll_ctl(int epfd, int op, int fd, epoll_event *event) {
  const auto socket = ops::Lookup(fd);
  auto set = ops::FindEpoll(epfd);
  if (!socket && !set) return Real().epoll_ctl(epfd, op, fd, event);
  ErrnoKeeper keeper;
  return keeper.Done(ops::EpollCtl(std::move(set), epfd, op, fd, socket, event));
}

LOOPFAST_EXPORT int epoll_wait(int epfd, epoll_event *events, int max, int timeout_ms) {
  const auto set = ops::FindEpoll(epfd);
  if (!set) return Real().epoll_wait(epfd, events, max, timeout_ms);
  ErrnoKeeper keeper;
  timespec timeout;
  return keeper.Done(
      ops::EpollWait(*set, epfd, events, max, FromMs(timeout_ms, &timeout), nullptr));
}

LOOPFAST_EXPORT int epoll_pwait(int epfd, epoll_event *events, int max, int timeout_ms,
                                const sigset_t *sigmask) {
  const auto set = ops::FindEpoll(epfd);
  if (!set) return Real().epoll_pwait(epfd, events, max, timeout_ms, sigmask);
  ErrnoKeeper keeper;
  timespec timeout;
  return keeper.Done(
      ops::EpollWait(*set, epfd, events, max, FromMs(timeout_ms, &timeout), sigmask));
}

LOOPFAST_EXPORT int epoll_pwait2(int epfd, epoll_event *events, int max, const timespec *timeout,
                                 const sigset_t *sigmask) {
  const auto set = ops::FindEpoll(epfd);
  if (!set) return Real().epoll_pwait2(epfd, events, max, timeout, sigmask);
  ErrnoKeeper keeper;
  return keeper.Done(ops::EpollWait(*set, epfd, events, max, timeout, sigmask));
}
