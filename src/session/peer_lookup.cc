// The implementation of peer_lookup.h (what it is for is said there).
#include "session/peer_lookup.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::session {
namespace {

struct DiagRequest {
  struct nlmsghdr header;
  struct inet_diag_req_v2 request;
};

std::mutex netlink_mutex;
int netlink_fd = -1;  // guarded by netlink_mutex
uint32_t sequence = 0;

int NetlinkSocket() {
  if (netlink_fd < 0) {
    netlink_fd =
        sys::TakeHigh(sys::Real().socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    sys::Own(netlink_fd);
  }
  return netlink_fd;
}

// One exact lookup: the socket whose local end is (src, sport) and remote end (dst, dport).
// `listener`: find the listening socket of (src, sport) instead.
Result<SocketFacts> Lookup(int family, const void *src, uint16_t sport_be, const void *dst,
                           uint16_t dport_be, bool listener) {
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
  if (dst != nullptr) std::memcpy(message.request.id.idiag_dst, dst, address_bytes);
  message.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  message.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  struct sockaddr_nl kernel {};
  kernel.nl_family = AF_NETLINK;
  alignas(struct nlmsghdr) char reply[1024];
  ssize_t n;
  {
    std::lock_guard<std::mutex> guard(netlink_mutex);
    const int nl = NetlinkSocket();
    if (nl < 0) return Errno{errno};
    message.header.nlmsg_seq = ++sequence;
    if (sys::Real().sendto(nl, &message, sizeof message, 0,
                           reinterpret_cast<struct sockaddr *>(&kernel), sizeof kernel) < 0) {
      return Errno{errno};
    }
    // The answer to this request (a reply to an earlier, abandoned one is skipped).
    for (;;) {
      n = sys::Real().recv(nl, reply, sizeof reply, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno{errno};
      const auto *header = reinterpret_cast<const struct nlmsghdr *>(reply);
      if (!NLMSG_OK(header, static_cast<size_t>(n))) return Errno{EPROTO};
      if (header->nlmsg_seq == message.header.nlmsg_seq) break;
    }
  }
  const auto *header = reinterpret_cast<const struct nlmsghdr *>(reply);
  if (header->nlmsg_type == NLMSG_ERROR) return Errno{ENOENT};
  if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
      header->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
    return Errno{EPROTO};
  }
  const auto *diag = static_cast<const struct inet_diag_msg *>(NLMSG_DATA(header));
  // The exact lookup may fall back to a listener; only what was asked for counts.
  if (diag->id.idiag_sport != sport_be) return Errno{ENOENT};
  if (listener ? diag->idiag_state != 10 /* TCP_LISTEN */ : diag->id.idiag_dport != dport_be) {
    return Errno{ENOENT};
  }
  SocketFacts facts;
  facts.inode = diag->idiag_inode;
  facts.uid = diag->idiag_uid;
  facts.cookie = uint64_t{diag->id.idiag_cookie[0]} | (uint64_t{diag->id.idiag_cookie[1]} << 32);
  // A lingering socket (the kernel's time-wait form) has neither inode nor user.
  facts.uid_known = diag->idiag_inode != 0;
  return facts;
}

}  // namespace

Result<SocketFacts> LookupTcpSocket(const struct sockaddr *local, const struct sockaddr *remote) {
  if (local->sa_family != remote->sa_family) return Errno{EAFNOSUPPORT};
  if (remote->sa_family == AF_INET) {
    const auto *l = reinterpret_cast<const struct sockaddr_in *>(local);
    const auto *r = reinterpret_cast<const struct sockaddr_in *>(remote);
    return Lookup(AF_INET, &l->sin_addr, l->sin_port, &r->sin_addr, r->sin_port, false);
  }
  if (remote->sa_family != AF_INET6) return Errno{EAFNOSUPPORT};
  const auto *l = reinterpret_cast<const struct sockaddr_in6 *>(local);
  const auto *r = reinterpret_cast<const struct sockaddr_in6 *>(remote);
  if (IN6_IS_ADDR_V4MAPPED(&l->sin6_addr) && IN6_IS_ADDR_V4MAPPED(&r->sin6_addr)) {
    // The socket may be an IPv4 one (usual) or an IPv6 one using mapped addresses.
    Result<SocketFacts> v4 = Lookup(AF_INET, &l->sin6_addr.s6_addr[12], l->sin6_port,
                                    &r->sin6_addr.s6_addr[12], r->sin6_port, false);
    if (v4.ok()) return v4;
  }
  return Lookup(AF_INET6, &l->sin6_addr, l->sin6_port, &r->sin6_addr, r->sin6_port, false);
}

Result<SocketFacts> LookupTcpListener(const struct sockaddr *destination) {
  if (destination->sa_family == AF_INET) {
    const auto *d = reinterpret_cast<const struct sockaddr_in *>(destination);
    return Lookup(AF_INET, &d->sin_addr, d->sin_port, nullptr, 0, true);
  }
  if (destination->sa_family != AF_INET6) return Errno{EAFNOSUPPORT};
  const auto *d = reinterpret_cast<const struct sockaddr_in6 *>(destination);
  if (IN6_IS_ADDR_V4MAPPED(&d->sin6_addr)) {
    Result<SocketFacts> v4 =
        Lookup(AF_INET, &d->sin6_addr.s6_addr[12], d->sin6_port, nullptr, 0, true);
    if (v4.ok()) return v4;
  }
  return Lookup(AF_INET6, &d->sin6_addr, d->sin6_port, nullptr, 0, true);
}

void ForgetLookupSocketInChild() {
  // Only this process's descriptor: the parent keeps using the socket.
  if (netlink_fd >= 0) sys::CloseOwned(netlink_fd);
  netlink_fd = -1;
  new (&netlink_mutex) std::mutex();  // a thread of the parent may have held it at fork
}

}  // namespace loopfast::session
