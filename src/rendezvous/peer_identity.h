// Kernel-vouched facts that tie a rendezvous message to one TCP connection.
//
// The server knows the accepted connection's addresses. The kernel's socket table (sock_diag)
// tells which socket is the client end of exactly that connection (its inode). The Hello's
// sender, whose pid the kernel reports (SO_PEERCRED), claims to hold that socket as a given
// descriptor number; /proc/<pid>/fd/<n> says whether it really does. A process that does not
// hold the client end cannot pass this check, whatever it writes in its message.
#ifndef LOOPFAST_RENDEZVOUS_PEER_IDENTITY_H_
#define LOOPFAST_RENDEZVOUS_PEER_IDENTITY_H_

#include <sys/types.h>

#include <cstdint>

#include "base/result.h"

namespace loopfast::rendezvous {

struct SocketOwner {
  uint64_t inode = 0;
  uid_t uid = 0;
};

// The socket at the other end of connected TCP socket `fd` (same network namespace): its inode
// and its owner's uid, from the kernel's socket table; ENOENT when there is none.
Result<SocketOwner> PeerSocket(int fd);

// Inode of the socket that process `pid` holds as descriptor `fd`, or an errno (EACCES for
// another user's process when we are not privileged, ENOENT, ENOTSOCK).
Result<uint64_t> SocketInodeOf(pid_t pid, int fd);

// Parses "socket:[123]" (what readlink of a socket descriptor gives); 0 when malformed.
uint64_t ParseSocketLink(const char *link, size_t length);

}  // namespace loopfast::rendezvous

#endif  // LOOPFAST_RENDEZVOUS_PEER_IDENTITY_H_
