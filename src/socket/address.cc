// The implementation of address.h (what it is for is said there).
#include "socket/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace loopfast {

bool IsLoopback(const struct sockaddr *address, socklen_t length) {
  if (address == nullptr) return false;
  if (address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
    const auto *in = reinterpret_cast<const struct sockaddr_in *>(address);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
    const auto *in6 = reinterpret_cast<const struct sockaddr_in6 *>(address);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

uint16_t PortOf(const struct sockaddr *address, socklen_t length) {
  if (address == nullptr) return 0;
  if (address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
    return ntohs(reinterpret_cast<const struct sockaddr_in *>(address)->sin_port);
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
    return ntohs(reinterpret_cast<const struct sockaddr_in6 *>(address)->sin6_port);
  }
  return 0;
}

}  // namespace loopfast
