// Helpers the socket layer's verb files share (connect_ops, listen_ops, data_ops, option_ops,
// lifecycle_ops). Not for use outside src/socket.
#ifndef LOOPFAST_SOCKET_SOCKET_INTERNAL_H_
#define LOOPFAST_SOCKET_SOCKET_INTERNAL_H_

#include <sys/socket.h>
#include <sys/time.h>

#include <memory>

#include "fast/fast_connection.h"
#include "socket/fd_table.h"
#include "socket/socket.h"
#include "socket/socket_stat.h"
#include "sys/real_calls.h"

namespace loopfast::ops {

inline FdTable &Table() { return FdTable::Instance(); }
inline const sys::RealCalls &Real() { return sys::Real(); }

bool IoUringSeen();
bool IsTcpSocket(int domain, int type, int protocol);
std::shared_ptr<Socket> NewSocket(int family, bool nonblocking);
// A socket loopfast did not see created (inherited, received): tracked from now on, opted out.
std::shared_ptr<Socket> Adopt(int fd);

// Kernel TCP for good, `why` shown when the socket had opted in. Caller holds socket.mutex.
void DecideKernel(Socket &socket, int fd, const char *why);
// The program's TTL / hop limit back on a socket that leaves the fast path (the client marker
// is kept on fast connections: their kernel connection carries no data). Caller holds it.
void RestoreMarker(Socket &socket, int fd);
// A fast listener's SO_RCVBUF was raised for its marker: connections on kernel TCP get the
// program's own value. Caller holds socket.mutex.
void ApplyProgramRcvbuf(const Socket &socket, int fd);
// What the kernel reports for SO_RCVBUF after a program set `value`.
int KernelStyleRcvbuf(int value);
// The receive limit this end publishes (from the program's SO_RCVBUF, or the default).
uint32_t ReceiveLimit(const Socket &socket);

// A fast end is ready: path kFast, published. Caller holds socket.mutex.
void BecomeFast(Socket &socket, int fd, std::unique_ptr<FastConnection> fast,
                const KnownEnds &known = {});

// A non-blocking (or interrupted) connect may have finished: look without consuming SO_ERROR.
// Caller holds socket.mutex.
void CheckConnectProgress(Socket &socket, int fd);
// Blocks until a connect under way ends (the program asked for a blocking call on it).
void WaitConnect(int fd, const struct timeval &timeout);
// Ends a connect under way in this process alone (fork, exec, passing): waits up to
// `wait_ms` for the handshake, then takes kernel TCP for good if it is still under way.
// Caller holds socket.mutex.
void SettleConnecting(Socket &socket, int fd, int wait_ms, const char *why);

// The spin and timeout of a blocking call.
wait::SleepSpec SleepFor(const struct timeval &timeout);
int TimevalMs(const struct timeval &timeout);

}  // namespace loopfast::ops

#endif  // LOOPFAST_SOCKET_SOCKET_INTERNAL_H_
