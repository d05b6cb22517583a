// The implementation of markers.h (what it is for is said there).
#include "session/markers.h"

#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>

#include "session/messages.h"
#include "sys/real_calls.h"

namespace loopfast::session {

Status SetClientMarker(int fd, int family) {
  const int ttl = kClientMarkerTtl;
  // An IPv6 socket may connect to an IPv4-mapped address: its SYN is then IPv4, so set both.
  if (family == AF_INET6 &&
      sys::Real().setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl) != 0) {
    return Errno{errno};
  }
  if (sys::Real().setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) != 0) return Errno{errno};
  return {};
}

void RestoreClientMarker(int fd, int family, int program_ttl, int program_hops) {
  const int saved_errno = errno;
  if (family == AF_INET6) {
    sys::Real().setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &program_hops, sizeof program_hops);
  }
  sys::Real().setsockopt(fd, IPPROTO_IP, IP_TTL, &program_ttl, sizeof program_ttl);
  errno = saved_errno;
}

bool ListenerMarkerSeen(int fd) {
  int mss = 0;
  socklen_t length = sizeof mss;
  const int saved_errno = errno;
  const int ret = sys::Real().getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &length);
  errno = saved_errno;
  return ret == 0 &&
         (mss == kListenerMarkerMss || mss == kListenerMarkerMss - kTimestampOptionBytes);
}

Status SetListenerMarker(int fd) {
  const int mss = kListenerMarkerMss;
  const int on = 1;
  // The MSS first: any SYN whose copy is saved was answered with the marker.
  if (sys::Real().setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) != 0 ||
      sys::Real().setsockopt(fd, IPPROTO_TCP, TCP_SAVE_SYN, &on, sizeof on) != 0) {
    return Errno{errno};
  }
  return {};
}

SavedSyn ParseSavedSyn(const unsigned char *syn, unsigned length) {
  SavedSyn parsed;
  if (syn == nullptr || length < 20) return parsed;
  const unsigned version = syn[0] >> 4;
  if (version == 4) {
    const unsigned header_bytes = (syn[0] & 0x0f) * 4u;
    if (header_bytes < 20 || length < header_bytes + 4) return parsed;
    parsed.marked = syn[8] == kClientMarkerTtl;
    auto *local = reinterpret_cast<struct sockaddr_in *>(&parsed.local);
    local->sin_family = AF_INET;
    std::memcpy(&local->sin_addr, syn + 16, 4);                // destination address
    std::memcpy(&local->sin_port, syn + header_bytes + 2, 2);  // TCP destination port
    auto *remote = reinterpret_cast<struct sockaddr_in *>(&parsed.remote);
    remote->sin_family = AF_INET;
    std::memcpy(&remote->sin_addr, syn + 12, 4);            // source address
    std::memcpy(&remote->sin_port, syn + header_bytes, 2);  // TCP source port
    return parsed;
  }
  // IPv6: a fixed 40-byte header; a SYN carries no extension headers on loopback (if one did,
  // the next header is not TCP and the address is not trusted).
  if (version == 6 && length >= 44) {
    if (syn[6] != IPPROTO_TCP) return parsed;
    parsed.marked = syn[7] == kClientMarkerTtl;
    auto *local = reinterpret_cast<struct sockaddr_in6 *>(&parsed.local);
    local->sin6_family = AF_INET6;
    std::memcpy(&local->sin6_addr, syn + 24, 16);
    std::memcpy(&local->sin6_port, syn + 40 + 2, 2);
    auto *remote = reinterpret_cast<struct sockaddr_in6 *>(&parsed.remote);
    remote->sin6_family = AF_INET6;
    std::memcpy(&remote->sin6_addr, syn + 8, 16);
    std::memcpy(&remote->sin6_port, syn + 40, 2);
  }
  return parsed;
}

SavedSyn ReadSavedSyn(int fd) {
  unsigned char syn[512];
  socklen_t length = sizeof syn;
  const int saved_errno = errno;
  const int ret = sys::Real().getsockopt(fd, IPPROTO_TCP, TCP_SAVED_SYN, syn, &length);
  errno = saved_errno;
  if (ret != 0) return SavedSyn{};
  return ParseSavedSyn(syn, length);
}

}  // namespace loopfast::session
