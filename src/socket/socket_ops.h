// The socket layer's entry points: one per verb, in libc's own shape (value, or -1 with errno),
// so the interposer and the C API only look up and dispatch. Each takes the descriptor the
// program used; descriptors loopfast does not track go straight to the real call.
//
// The read family is normalised to Recv(msghdr), the write family to Send(msghdr).
#ifndef LOOPFAST_SOCKET_SOCKET_OPS_H_
#define LOOPFAST_SOCKET_SOCKET_OPS_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>

namespace loopfast::ops {

int CreateSocket(int domain, int type, int protocol);
int Connect(int fd, const struct sockaddr *address, socklen_t length);
int Listen(int fd, int backlog);
int Accept(int fd, struct sockaddr *address, socklen_t *length, int flags);
int Close(int fd);
int Shutdown(int fd, int how);
ssize_t Send(int fd, const struct msghdr *message, int flags);
ssize_t Recv(int fd, struct msghdr *message, int flags);
int SetSockOpt(int fd, int level, int name, const void *value, socklen_t length);
int GetSockOpt(int fd, int level, int name, void *value, socklen_t *length);
int Ioctl(int fd, unsigned long request, void *argument);
int Fcntl(int fd, int command, long argument);
int Dup(int fd);
int Dup3(int fd, int fd2, int flags, bool is_dup2);
int CloseRange(unsigned first, unsigned last, int flags);

// Explicit API: turn the switch on or off (after validating like loopfast_ioctl).
int SetFastPath(int fd, bool enable);
// LOOPFAST_PATH_* of a descriptor, and why it is not fast.
int PathOf(int fd);
const char *FallbackReason(int fd);

// fork: call in both processes after fork returns (both now hold every socket and channel).
void AfterFork(bool in_child);

// True if `fd` is tracked by loopfast (the interposer's fast test).
bool IsTracked(int fd);

}  // namespace loopfast::ops

#endif  // LOOPFAST_SOCKET_SOCKET_OPS_H_
