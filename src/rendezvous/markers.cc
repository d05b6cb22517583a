#include "rendezvous/markers.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "rendezvous/protocol.h"
#include "sys/real_calls.h"

namespace loopfast::rendezvous {

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
  if (sys::Real().getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &length) != 0) return false;
  return mss == kListenerMarkerMss || mss == kListenerMarkerMss - kTimestampOptionBytes;
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

bool SavedSynHasMarker(const unsigned char *syn, unsigned length) {
  if (syn == nullptr || length < 20) return false;
  const unsigned version = syn[0] >> 4;
  if (version == 4) return syn[8] == kClientMarkerTtl;
  if (version == 6 && length >= 40) return syn[7] == kClientMarkerTtl;
  return false;
}

bool ClientMarkerSeen(int fd) {
  unsigned char syn[512];
  socklen_t length = sizeof syn;
  const int saved_errno = errno;
  const int ret = sys::Real().getsockopt(fd, IPPROTO_TCP, TCP_SAVED_SYN, syn, &length);
  errno = saved_errno;
  return ret == 0 && SavedSynHasMarker(syn, length);
}

}  // namespace loopfast::rendezvous
