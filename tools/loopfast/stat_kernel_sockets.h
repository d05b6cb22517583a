// The kernel's TCP sockets by inode (NETLINK_SOCK_DIAG dump, what `ss` reads): addresses and
// the bytes each connection carried on kernel TCP. Any user may list them.
#ifndef LOOPFAST_TOOLS_STAT_KERNEL_SOCKETS_H_
#define LOOPFAST_TOOLS_STAT_KERNEL_SOCKETS_H_

#include <cstdint>
#include <map>
#include <string>

namespace loopfast::tool {

struct KernelSocket {
  std::string local;            // "127.0.0.1:5000", "[::1]:5000"
  std::string peer;             // "" for a listener
  int tcp_state = 0;            // TCP_ESTABLISHED, TCP_LISTEN, ...
  uint64_t bytes_sent = 0;      // tcpi_bytes_sent: data bytes the kernel carried out
  uint64_t bytes_received = 0;  // tcpi_bytes_received
};

// inode -> socket, both families; empty on failure (stat then shows no addresses).
std::map<uint64_t, KernelSocket> ListKernelTcpSockets();

}  // namespace loopfast::tool

#endif  // LOOPFAST_TOOLS_STAT_KERNEL_SOCKETS_H_
