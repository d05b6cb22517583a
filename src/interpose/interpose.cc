// The interposer: libc's socket functions, exported from libloopfast.so. Whether the library
// is preloaded (`loopfast run`) or linked, these definitions come before libc's. Each wrapper
// looks the descriptor up once (lock-free, socket/descriptor_map.h) and hands what it found to
// the socket layer, or passes straight through to the real function; the logic (and its tests)
// lives in src/socket.
//
// What is generated, from the one list (sys/real_calls_list.h): the prototype of every wrapper
// of a listed function, and the whole wrapper of every entry of a uniform shape (SOCKET, EPOLL,
// ALWAYS, BEFORE: the list says what each does), which calls the verb the list names (below:
// the socket layer's own, or a small adapter to it). Written by hand: the wrappers with logic
// of their own (HAND and VARIADIC entries: fork, recvfrom, sendmsg, sendmmsg, splice, select,
// epoll_ctl, closefrom, fcntl, ioctl, syscall, signal handlers, ...) and the exported functions
// that have no real counterpart in the list (_FORTIFY_SOURCE's __*_chk, the 64-bit and list
// forms: sendfile64, fcntl64, execv, execl*; liburing's set-up).
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
using loopfast::Socket;
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

// A millisecond timeout as the timespec the socket layer takes; null (no limit) when negative.
const timespec *FromMs(int timeout_ms, timespec *storage) {
  if (timeout_ms < 0) return nullptr;
  *storage = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  return storage;
}

// ---- The verbs the generated wrappers call (the list's last column): the socket layer's own
// where its arguments are the call's, else an adapter here that makes them so.

using ops::Accept, ops::Close, ops::CloseRange, ops::Connect, ops::CreateSocket, ops::Dup,
    ops::EpollWait, ops::ForgetSpawnActions, ops::GetSockOpt, ops::Listen, ops::Poll, ops::Recv,
    ops::SendFile, ops::SetSockOpt, ops::Shutdown;

int AcceptNoFlags(Socket &listener, int fd, sockaddr *address, socklen_t *length) {
  return ops::Accept(listener, fd, address, length, 0);
}

ssize_t SendBuffer(Socket &socket, int fd, const void *buffer, size_t length, int flags) {
  iovec iov;
  const msghdr message = OneBuffer(const_cast<void *>(buffer), length, &iov);
  return ops::Send(socket, fd, &message, flags);
}

ssize_t SendBufferTo(Socket &socket, int fd, const void *buffer, size_t length, int flags,
                     const sockaddr * /*address*/, socklen_t /*address_length*/) {
  return SendBuffer(socket, fd, buffer, length, flags);  // TCP ignores the address
}

ssize_t WriteBuffer(Socket &socket, int fd, const void *buffer, size_t length) {
  return SendBuffer(socket, fd, buffer, length, 0);
}

ssize_t WriteVector(Socket &socket, int fd, const iovec *iov, int count) {
  const msghdr message = Vector(iov, count);
  return ops::Send(socket, fd, &message, 0);
}

ssize_t RecvBuffer(Socket &socket, int fd, void *buffer, size_t length, int flags) {
  iovec iov;
  msghdr message = OneBuffer(buffer, length, &iov);
  return ops::Recv(socket, fd, &message, flags);
}

ssize_t ReadBuffer(Socket &socket, int fd, void *buffer, size_t length) {
  return RecvBuffer(socket, fd, buffer, length, 0);
}

ssize_t ReadVector(Socket &socket, int fd, const iovec *iov, int count) {
  msghdr message = Vector(iov, count);
  return ops::Recv(socket, fd, &message, 0);
}

// recvmmsg on a tracked socket: the socket layer takes no timeout (a stream has no datagrams to
// wait for one by one), so the argument is not passed on.
int RecvManyUntimed(Socket &socket, int fd, mmsghdr *messages, unsigned count, int flags,
                    timespec * /*timeout*/) {
  return ops::RecvMany(socket, fd, messages, count, flags);
}

int Dup2(int fd, int fd2) { return ops::Dup3(fd, fd2, 0, /*is_dup2=*/true); }
int Dup3(int fd, int fd2, int flags) { return ops::Dup3(fd, fd2, flags, /*is_dup2=*/false); }

int PollMs(pollfd *fds, nfds_t count, int timeout_ms) {
  timespec timeout;
  return ops::Poll(fds, count, FromMs(timeout_ms, &timeout), nullptr);
}

int EpollWaitMs(ops::EpollSet &set, int epfd, epoll_event *events, int max, int timeout_ms,
                const sigset_t *sigmask = nullptr) {
  timespec timeout;
  return ops::EpollWait(set, epfd, events, max, FromMs(timeout_ms, &timeout), sigmask);
}

// exec and spawn: sockets the new image keeps but cannot see the rings of move to kernel TCP
// first. glibc's exec variants call its internal execve, so each is wrapped.
template <typename... Arguments>
void BeforeExec(Arguments... /*unused*/) {
  ops::BeforeExec();
}

template <typename... Rest>
void BeforeSpawn(pid_t * /*pid*/, const char * /*path*/, const posix_spawn_file_actions_t *actions,
                 Rest... /*unused*/) {
  ops::BeforeSpawn(actions);
}

// ---- Helpers of the hand-written wrappers

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

// ---- Generated from the list (sys/real_calls_list.h, where the shapes are described)

// Every listed function's prototype, but for the variadic ones and those not exported: a
// hand-written wrapper that does not match its list entry does not compile.
#define LOOPFAST_PROTOTYPE(ret, name, params) LOOPFAST_EXPORT ret name params;
#define LOOPFAST_PROTOTYPE_SOCKET LOOPFAST_PROTOTYPE
#define LOOPFAST_PROTOTYPE_EPOLL LOOPFAST_PROTOTYPE
#define LOOPFAST_PROTOTYPE_ALWAYS LOOPFAST_PROTOTYPE
#define LOOPFAST_PROTOTYPE_BEFORE LOOPFAST_PROTOTYPE
#define LOOPFAST_PROTOTYPE_HAND LOOPFAST_PROTOTYPE
#define LOOPFAST_PROTOTYPE_HAND_NOEXCEPT(ret, name, params) \
  LOOPFAST_EXPORT ret name params noexcept;
#define LOOPFAST_PROTOTYPE_VARIADIC(ret, name, params)
#define LOOPFAST_PROTOTYPE_REAL_ONLY(ret, name, params)
#define LOOPFAST_DECLARE_WRAPPER(ret, name, params, args, shape, verb) \
  LOOPFAST_PROTOTYPE_##shape(ret, name, params)
LOOPFAST_REAL_CALLS(LOOPFAST_DECLARE_WRAPPER)

// The wrappers of the uniform shapes. `args` is parenthesised: LOOPFAST_FIRST takes the
// descriptor out of it, LOOPFAST_UNWRAP the list itself.
#define LOOPFAST_FIRST(first, ...) first
#define LOOPFAST_UNWRAP(...) __VA_ARGS__
// SOCKET and EPOLL: what `find` finds for the first argument (a Socket, an epoll set), or the
// real function when it finds nothing.
#define LOOPFAST_WRAPPER_FOUND(find, ret, name, params, args, verb) \
  LOOPFAST_EXPORT ret name params {                                 \
    const auto found = find(LOOPFAST_FIRST args);                   \
    if (!found) return Real().name args;                            \
    ErrnoKeeper keeper;                                             \
    return keeper.Done(verb(*found, LOOPFAST_UNWRAP args));         \
  }
#define LOOPFAST_WRAPPER_SOCKET(...) LOOPFAST_WRAPPER_FOUND(ops::Lookup, __VA_ARGS__)
#define LOOPFAST_WRAPPER_EPOLL(...) LOOPFAST_WRAPPER_FOUND(ops::FindEpoll, __VA_ARGS__)
#define LOOPFAST_WRAPPER_ALWAYS(ret, name, params, args, verb) \
  LOOPFAST_EXPORT ret name params {                            \
    ErrnoKeeper keeper;                                        \
    return keeper.Done(verb args);                             \
  }
#define LOOPFAST_WRAPPER_BEFORE(ret, name, params, args, verb) \
  LOOPFAST_EXPORT ret name params {                            \
    verb args;                                                 \
    return Real().name args;                                   \
  }
#define LOOPFAST_WRAPPER_HAND(ret, name, params, args, verb)
#define LOOPFAST_WRAPPER_HAND_NOEXCEPT(ret, name, params, args, verb)
#define LOOPFAST_WRAPPER_VARIADIC(ret, name, params, args, verb)
#define LOOPFAST_WRAPPER_REAL_ONLY(ret, name, params, args, verb)
#define LOOPFAST_DEFINE_WRAPPER(ret, name, params, args, shape, verb) \
  LOOPFAST_WRAPPER_##shape(ret, name, params, args, verb)
LOOPFAST_REAL_CALLS(LOOPFAST_DEFINE_WRAPPER)

// ---- Written by hand

// fork itself only to learn that it failed (the atfork handlers above do the rest).
LOOPFAST_EXPORT pid_t fork() {
  const pid_t pid = Real().fork();
  if (pid != 0) ops::ForkReturned(/*failed=*/pid < 0);
  return pid;
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

LOOPFAST_EXPORT ssize_t recvfrom(int fd, void *buffer, size_t length, int flags, sockaddr *address,
                                 socklen_t *address_length) {
  return RecvFrom(fd, buffer, length, flags, address, address_length);
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

// ---- exec and spawn (the uniform ones are generated: BeforeExec, BeforeSpawn above)

LOOPFAST_EXPORT int execv(const char *path, char *const *argv) {
  ops::BeforeExec();
  return Real().execve(path, argv, environ);
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

LOOPFAST_EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *actions, int fd,
                                                     int new_fd) {
  const int ret = Real().posix_spawn_file_actions_adddup2(actions, fd, new_fd);
  if (ret == 0) ops::NoteSpawnDup2(actions, fd);
  return ret;
}

// ---- Readiness: every call passes straight through unless a loopfast socket is involved ----

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