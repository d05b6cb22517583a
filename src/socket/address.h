// Facts about socket addresses that the contract depends on.
#ifndef LOOPFAST_SOCKET_ADDRESS_H_
#define LOOPFAST_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <cstdint>

namespace loopfast {

// 127.0.0.0/8, ::1, or an IPv4-mapped 127.0.0.0/8 address.
bool IsLoopback(const struct sockaddr *address, socklen_t length);
// The port in host order, or 0 for other families or short addresses.
uint16_t PortOf(const struct sockaddr *address, socklen_t length);

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_ADDRESS_H_
