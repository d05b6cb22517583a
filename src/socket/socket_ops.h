// The socket layer's entry points: one per verb, in libc's own shape (value, or -1 with errno),
// so the interposer and the C API only look up and dispatch. A caller looks the descriptor up
// once (Lookup) and makes the real call itself for one loopfast does not track; the verbs on a
// tracked descriptor take its Socket (the caller's copy keeps it alive for the call) beside the
// descriptor the program used.
//
// The read family is normalised to Recv(msghdr), the write family to Send(msghdr).
#ifndef LOOPFAST_SOCKET_SOCKET_OPS_H_
#define LOOPFAST_SOCKET_SOCKET_OPS_H_

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <memory>

#include "socket/socket.h"

namespace loopfast::ops {

// The Socket of a descriptor loopfast tracks, or null: lock-free (fd_table.h); for a
// descriptor it does not track, two loads.
std::shared_ptr<Socket> Lookup(int fd);
// True if `fd` is tracked by loopfast (no reference taken: for calls that only test).
bool IsTracked(int fd);

int CreateSocket(int domain, int type, int protocol);
int Connect(Socket &socket, int fd, const struct sockaddr *address, socklen_t length);
int Listen(Socket &socket, int fd, int backlog);
int Accept(Socket &listener, int fd, struct sockaddr *address, socklen_t *length, int flags);
int Close(int fd);  // loopfast's own descriptors are not the program's to close: 0, kept
int Shutdown(Socket &socket, int fd, int how);
ssize_t Send(Socket &socket, int fd, const struct msghdr *message, int flags);
ssize_t Recv(Socket &socket, int fd, struct msghdr *message, int flags);
int SetSockOpt(Socket &socket, int fd, int level, int name, const void *value, socklen_t length);
int GetSockOpt(Socket &socket, int fd, int level, int name, void *value, socklen_t *length);
int Ioctl(Socket &socket, int fd, unsigned long request, void *argument);
// `socket` is null for a descriptor loopfast does not track (F_DUPFD may copy an epoll set).
int Fcntl(Socket *socket, int fd, int command, long argument);
// descriptor_ops.cc: copies and closes share or drop the connection, never loopfast's own
// descriptors (dup2/dup3 onto one of them fails with EBUSY).
int Dup(int fd);
int Dup3(int fd, int fd2, int flags, bool is_dup2);
int CloseRange(unsigned first, unsigned last, int flags);
void CloseFrom(int first);
// `copy` is a new descriptor for the same open file as `fd` (dup, F_DUPFD).
void ShareDescriptor(int fd, int copy);

// transfer_ops.cc: sendfile (emulated through the rings), splice (emulated out of a fast socket;
// into one it moves the connection to kernel TCP first), sendmmsg and recvmmsg.
// Splice's sockets are null for descriptors loopfast does not track (one of them is).
ssize_t SendFile(Socket &socket, int out_fd, int in_fd, off_t *offset, size_t count);
ssize_t Splice(Socket *in_socket, int fd_in, loff_t *off_in, Socket *out_socket, int fd_out,
               loff_t *off_out, size_t length, unsigned flags);
int SendMany(Socket &socket, int fd, struct mmsghdr *messages, unsigned count, int flags);
int RecvMany(Socket &socket, int fd, struct mmsghdr *messages, unsigned count, int flags);

// exec and spawn (descriptor_ops.cc). A socket that a new program image will hold, but whose
// rings it cannot see, moves to kernel TCP with every byte first (FastConnection::MoveToKernel):
// the ones without FD_CLOEXEC, and for spawn the ones its file actions dup2.
void BeforeExec();
void BeforeSpawn(const void *file_actions);
void NoteSpawnDup2(const void *file_actions, int fd);
// Sockets passed to another process in an SCM_RIGHTS message: that process cannot see their
// rings (it may not even use loopfast), so each moves to kernel TCP first, as for exec.
// `control` is a copy of the message's control data, `length` bytes.
void BeforePassing(const void *control, size_t length);
void ForgetSpawnActions(const void *file_actions);

// Readiness over fast and ordinary descriptors (poll_ops.cc, epoll_ops.cc). A null timeout
// waits without limit. Select returns with *used_loopfast false (and does nothing) when no
// descriptor in the sets is loopfast's: the caller then makes the real call.
int Poll(struct pollfd *fds, nfds_t count, const struct timespec *timeout, const sigset_t *sigmask);
int Select(int nfds, fd_set *read_set, fd_set *write_set, fd_set *except_set,
           const struct timespec *timeout, const sigset_t *sigmask, bool *used_loopfast);
// select(2) itself: also writes back the time not slept, as Linux does.
int SelectWithTimeval(int nfds, fd_set *read_set, fd_set *write_set, fd_set *except_set,
                      struct timeval *timeout, bool *used_loopfast);
// The set loopfast keeps fast sockets in for an epoll descriptor, or null (then the real calls):
// lock-free, as Lookup.
namespace epoll {
class EpollSet;  // socket/epoll_set.h
}  // namespace epoll
using epoll::EpollSet;
std::shared_ptr<EpollSet> FindEpoll(int epfd);
// True if loopfast keeps such a set (no reference taken).
bool IsLoopfastEpoll(int epfd);
// `set` and `socket` are what FindEpoll(epfd) and Lookup(fd) found (either may be null).
int EpollCtl(std::shared_ptr<EpollSet> set, int epfd, int op, int fd,
             const std::shared_ptr<Socket> &socket, struct epoll_event *event);
int EpollWait(EpollSet &set, int epfd, struct epoll_event *events, int max,
              const struct timespec *timeout, const sigset_t *sigmask);
// The program closed a descriptor (or a range) that may be an epoll descriptor.
void ForgetEpoll(int fd);
void ForgetEpollRange(int first, int last);
// `copy` names the same epoll instance as `epfd`.
void AliasEpoll(int epfd, int copy);
// In a child after fork(): the lookup's slot locks that other threads of the parent held.
void ResetEpollInChild();

// Transparent mode's answer to what the fast path cannot do: from now on this socket is kernel
// TCP (a fast connection switches mid-stream, keeping every byte; a listener stops offering
// the fast path; a socket not yet connected will not take it). `why` is a reason:: string.
void GoKernel(Socket &socket, int fd, const char *why);
// The process set up an io_uring (its operations never pass through libc): every socket moves
// to kernel TCP, and new ones take it.
void NoteIoUring();
// True while the socket is fast, or may still become fast.
bool WouldBeFast(Socket &socket);

// Explicit API: turn the switch on or off (after validating like loopfast_ioctl).
int SetFastPath(int fd, bool enable);
// LOOPFAST_PATH_* of a descriptor, and why it is not fast.
int PathOf(int fd);
const char *FallbackReason(int fd);

// fork: BeforeFork in the parent before the child exists; AfterFork in both processes after
// fork returns (both now hold every socket and channel); ForkReturned in the parent once fork()
// returned (`failed`: no child came, the holders counted for it are given back).
void BeforeFork();
void AfterFork(bool in_child);
void ForkReturned(bool failed);

// For descriptor_ops.cc. ReleaseDescriptor drops one descriptor's hold on `socket` (`fd` is
// still open); MoveToKernel settles a connect under way or moves a fast end to kernel TCP.
void ReleaseDescriptor(const std::shared_ptr<Socket> &socket, int fd);
void MoveToKernel(Socket &socket, int fd);
// This process lets go of a fast end (the last holder's close). Caller holds socket.mutex.
void EndFast(Socket &socket, int kernel_fd);
// A listener stops (or, for the explicit API, starts) offering the fast path. Caller holds it.
void DisableListener(Socket &socket, int fd);
void EnableListenerForApi(Socket &socket, int fd);
// Connections reset because their claim could not be placed (loopfast_rendezvous_rejected()).
uint64_t RejectedTotal();

// Moves a non-blocking connect along without blocking: for the calls that look at a connecting
// socket (poll and epoll, before readiness::Look, which only looks; getsockopt, shutdown, the
// path questions).
void MakeProgress(Socket &socket, int fd);

}  // namespace loopfast::ops

#endif  // LOOPFAST_SOCKET_SOCKET_OPS_H_
