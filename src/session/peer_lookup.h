// The kernel's socket table (sock_diag), asked about one TCP socket: who owns it (its user) and
// which socket it is (inode, cookie). What it says is kernel-vouched, whatever any process wrote
// anywhere: an accepting process learns which socket is the client end of the connection it
// accepted, and a connecting process learns which user owns the listener it is about to trust.
//
// Thread rules: any thread; the process's netlink socket is used under a lock.
#ifndef LOOPFAST_SESSION_PEER_LOOKUP_H_
#define LOOPFAST_SESSION_PEER_LOOKUP_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>

#include "base/result.h"

namespace loopfast::session {

struct SocketFacts {
  uid_t uid = 0;
  uint64_t inode = 0;   // 0 once no process holds the socket any more (closed, lingering)
  uint64_t cookie = 0;  // SO_COOKIE of that socket (kept while the kernel keeps the socket)
  // False when the table no longer knows the user: a socket its process closed that lingers
  // in TIME_WAIT or FIN_WAIT2 is reported as user 0.
  bool uid_known = true;
};

// The socket whose local end is `local` and remote end `remote` (both AF_INET or AF_INET6,
// v4-mapped addresses tried as IPv4 too). ENOENT when there is none.
Result<SocketFacts> LookupTcpSocket(const struct sockaddr *local, const struct sockaddr *remote);

// The listening socket that a connection to `destination` would reach (its user).
Result<SocketFacts> LookupTcpListener(const struct sockaddr *destination);

// A forked child must not share the parent's netlink socket (replies would cross).
void ForgetLookupSocketInChild();

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_PEER_LOOKUP_H_
