#include "rendezvous/peer_identity.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sys/real_calls.h"

namespace loopfast::rendezvous {
namespace {

struct DiagRequest {
  struct nlmsghdr header;
  struct inet_diag_req_v2 request;
};

// One exact lookup: the socket whose local end is (src, sport) and remote end (dst, dport).
Result<SocketOwner> LookupSocket(int family, const void *src, uint16_t sport_be, const void *dst,
                                 uint16_t dport_be) {
  const int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return Errno{errno};
  DiagRequest message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = ~0u;
  message.request.id.idiag_sport = sport_be;
  message.request.id.idiag_dport = dport_be;
  const size_t address_bytes = family == AF_INET ? 4 : 16;
  std::memcpy(message.request.id.idiag_src, src, address_bytes);
  std::memcpy(message.request.id.idiag_dst, dst, address_bytes);
  message.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  message.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  struct sockaddr_nl kernel {};
  kernel.nl_family = AF_NETLINK;
  if (sys::Real().sendto(nl, &message, sizeof message, 0,
                         reinterpret_cast<struct sockaddr *>(&kernel), sizeof kernel) < 0) {
    const int error = errno;
    sys::Real().close(nl);
    return Errno{error};
  }
  alignas(struct nlmsghdr) char reply[1024];
  const ssize_t n = sys::Real().recv(nl, reply, sizeof reply, 0);
  const int error = errno;
  sys::Real().close(nl);
  if (n < 0) return Errno{error};
  const auto *header = reinterpret_cast<const struct nlmsghdr *>(reply);
  if (!NLMSG_OK(header, static_cast<size_t>(n))) return Errno{EPROTO};
  if (header->nlmsg_type == NLMSG_ERROR) return Errno{ENOENT};
  if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
      header->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
    return Errno{EPROTO};
  }
  const auto *diag = static_cast<const struct inet_diag_msg *>(NLMSG_DATA(header));
  // The exact lookup may fall back to a listener; only the exact connection counts.
  if (diag->id.idiag_sport != sport_be || diag->id.idiag_dport != dport_be) return Errno{ENOENT};
  SocketOwner owner;
  owner.inode = diag->idiag_inode;
  owner.uid = diag->idiag_uid;
  return owner;
}

}  // namespace

Result<SocketOwner> PeerSocket(int fd) {
  struct sockaddr_storage local {};
  struct sockaddr_storage remote {};
  socklen_t local_len = sizeof local;
  socklen_t remote_len = sizeof remote;
  if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&local), &local_len) != 0 ||
      getpeername(fd, reinterpret_cast<struct sockaddr *>(&remote), &remote_len) != 0) {
    return Errno{errno};
  }
  if (remote.ss_family == AF_INET) {
    const auto &l = reinterpret_cast<const struct sockaddr_in &>(local);
    const auto &r = reinterpret_cast<const struct sockaddr_in &>(remote);
    return LookupSocket(AF_INET, &r.sin_addr, r.sin_port, &l.sin_addr, l.sin_port);
  }
  if (remote.ss_family != AF_INET6) return Errno{EAFNOSUPPORT};
  const auto &l = reinterpret_cast<const struct sockaddr_in6 &>(local);
  const auto &r = reinterpret_cast<const struct sockaddr_in6 &>(remote);
  if (IN6_IS_ADDR_V4MAPPED(&r.sin6_addr)) {
    // The client end may be an IPv4 socket (usual) or an IPv6 one using mapped addresses.
    Result<SocketOwner> v4 = LookupSocket(AF_INET, &r.sin6_addr.s6_addr[12], r.sin6_port,
                                          &l.sin6_addr.s6_addr[12], l.sin6_port);
    if (v4.ok()) return v4;
  }
  return LookupSocket(AF_INET6, &r.sin6_addr, r.sin6_port, &l.sin6_addr, l.sin6_port);
}

uint64_t ParseSocketLink(const char *link, size_t length) {
  static constexpr char kPrefix[] = "socket:[";
  constexpr size_t kPrefixLength = sizeof kPrefix - 1;
  if (length < kPrefixLength + 2 || std::memcmp(link, kPrefix, kPrefixLength) != 0 ||
      link[length - 1] != ']') {
    return 0;
  }
  uint64_t inode = 0;
  for (size_t i = kPrefixLength; i + 1 < length; ++i) {
    if (link[i] < '0' || link[i] > '9') return 0;
    if (inode > (UINT64_MAX - 9) / 10) return 0;
    inode = inode * 10 + static_cast<uint64_t>(link[i] - '0');
  }
  return inode;
}

Result<uint64_t> SocketInodeOf(pid_t pid, int fd) {
  if (pid <= 0 || fd < 0) return Errno{EINVAL};
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", static_cast<int>(pid), fd);
  char link[64];
  const ssize_t n = readlink(path, link, sizeof link);
  if (n < 0) return Errno{errno};
  const uint64_t inode = ParseSocketLink(link, static_cast<size_t>(n));
  if (inode == 0) return Errno{ENOTSOCK};
  return inode;
}

}  // namespace loopfast::rendezvous
