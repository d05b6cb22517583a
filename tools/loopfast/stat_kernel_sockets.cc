// The implementation of stat_kernel_sockets.h (what it is for is said there).
#include "stat_kernel_sockets.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace loopfast::tool {
namespace {

std::string Endpoint(int family, const uint32_t *address, uint16_t port_be) {
  char text[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family, address, text, sizeof text);
  const std::string port = std::to_string(ntohs(port_be));
  return family == AF_INET6 ? "[" + std::string(text) + "]:" + port
                            : std::string(text) + ":" + port;
}

void Dump(int family, std::map<uint64_t, KernelSocket> *out) {
  const int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return;
  struct {
    struct nlmsghdr header;
    struct inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<uint8_t>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = ~0u;
  message.request.idiag_ext = 1 << (INET_DIAG_INFO - 1);
  struct sockaddr_nl kernel {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl, &message, sizeof message, 0, reinterpret_cast<struct sockaddr *>(&kernel),
             sizeof kernel) < 0) {
    close(nl);
    return;
  }
  std::vector<char> buffer(64 * 1024);
  // Bounded: a dump ends with NLMSG_DONE; a million messages is far past any real table.
  for (int round = 0; round < 1000000; ++round) {
    const ssize_t got = recv(nl, buffer.data(), buffer.size(), 0);
    if (got <= 0) break;
    size_t n = static_cast<size_t>(got);
    for (auto *header = reinterpret_cast<struct nlmsghdr *>(buffer.data()); NLMSG_OK(header, n);
         header = NLMSG_NEXT(header, n)) {
      if (header->nlmsg_type == NLMSG_DONE || header->nlmsg_type == NLMSG_ERROR) {
        close(nl);
        return;
      }
      if (header->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) continue;
      const auto *diag = static_cast<const struct inet_diag_msg *>(NLMSG_DATA(header));
      KernelSocket entry;
      entry.local = Endpoint(family, diag->id.idiag_src, diag->id.idiag_sport);
      constexpr int kTcpListen = 10;  // TCP_LISTEN, netinet/tcp.h's enum
      if (diag->idiag_state != kTcpListen) {
        entry.peer = Endpoint(family, diag->id.idiag_dst, diag->id.idiag_dport);
      }
      entry.tcp_state = diag->idiag_state;
      int left = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof *diag));
      for (auto *attribute = reinterpret_cast<const struct rtattr *>(diag + 1);
           RTA_OK(attribute, left); attribute = RTA_NEXT(attribute, left)) {
        if (attribute->rta_type != INET_DIAG_INFO) continue;
        struct tcp_info info {};
        std::memcpy(&info, RTA_DATA(attribute),
                    std::min<size_t>(sizeof info, RTA_PAYLOAD(attribute)));
        entry.bytes_sent = info.tcpi_bytes_sent;
        entry.bytes_received = info.tcpi_bytes_received;
      }
      (*out)[diag->idiag_inode] = entry;
    }
  }
  close(nl);
}

}  // namespace

std::map<uint64_t, KernelSocket> ListKernelTcpSockets() {
  std::map<uint64_t, KernelSocket> sockets;
  Dump(AF_INET, &sockets);
  Dump(AF_INET6, &sockets);
  return sockets;
}

}  // namespace loopfast::tool
