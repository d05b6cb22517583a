// What `loopfast stat` shows of a socket: its slot in this process's statistics registry
// (stat/registry.h), kept in step with the socket's stage and fallback reason.
#ifndef LOOPFAST_SOCKET_SOCKET_STAT_H_
#define LOOPFAST_SOCKET_SOCKET_STAT_H_

#include "socket/socket.h"

namespace loopfast {

// Why the socket is on kernel TCP now (reason::kNone while it is fast or undecided), including
// a move its peer made. Caller holds socket.mutex.
const char *CurrentFallbackReason(const Socket &socket);
// What loopfast_fallback_reason() says. Caller holds socket.mutex.
const char *ReportedFallbackReason(const Socket &socket);

// A reason made at run time (with numbers in it), kept for the life of the process: the same
// text gives the same pointer. At most a few hundred distinct texts; beyond that the first
// words only ("...").
const char *InternReason(const char *text);

// Addresses the caller already knows (the connect's destination, an accepted SYN's two ends):
// each one known spares a system call.
struct KnownEnds {
  const struct sockaddr *local = nullptr;
  const struct sockaddr *peer = nullptr;
};

// Publishes (or updates) the socket's slot: opted-in sockets once listening, connected or
// decided. Caller holds socket.mutex. The first time: an fstat unless socket.stat_inode is
// known, and a getsockname and getpeername for the ends not known.
void PublishSocket(Socket &socket, int fd, const KnownEnds &known = {});

// Cheap check for the data path: the published slot still says fast while the connection now
// uses kernel TCP (the peer moved it): publish again. Takes the mutex only then.
void RepublishIfMoved(Socket &socket, int fd);

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_SOCKET_STAT_H_
