// The implementation of option_table.h (what it is for is said there).
#include "socket/option_table.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

// Numbers newer than this system's headers (Linux include/uapi), so the table covers what the
// running kernel knows.
#ifndef SO_BPF_EXTENSIONS
#define SO_BPF_EXTENSIONS 48
#endif
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SO_RCVPRIORITY
#define SO_RCVPRIORITY 82
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif
#ifndef TCP_IS_MPTCP
#define TCP_IS_MPTCP 43
#endif
#ifndef TCP_RTO_MAX_MS
#define TCP_RTO_MAX_MS 44
#endif
#ifndef TCP_RTO_MIN_US
#define TCP_RTO_MIN_US 45
#endif
#ifndef TCP_DELACK_MAX_US
#define TCP_DELACK_MAX_US 46
#endif
#ifndef IP_RECVERR_RFC4884
#define IP_RECVERR_RFC4884 26
#endif
#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif
#ifndef IP_PROTOCOL
#define IP_PROTOCOL 52
#endif
#ifndef IPV6_FLOWINFO
#define IPV6_FLOWINFO 11
#endif
#ifndef IPV6_RECVERR_RFC4884
#define IPV6_RECVERR_RFC4884 31
#endif
#ifndef IPV6_FLOWLABEL_MGR
#define IPV6_FLOWLABEL_MGR 32
#endif
#ifndef IPV6_FLOWINFO_SEND
#define IPV6_FLOWINFO_SEND 33
#endif

namespace loopfast {
namespace {

constexpr OptionClass kHonoured = OptionClass::kHonoured;
constexpr OptionClass kNoEffect = OptionClass::kNoEffect;
constexpr OptionClass kReadOnly = OptionClass::kReadOnly;
constexpr OptionClass kNeedsKernel = OptionClass::kNeedsKernel;

#define SOCKET_OPTION(name, cls, why) \
  { SOL_SOCKET, name, "SOL_SOCKET", #name, cls, why }
#define TCP_OPTION(name, cls, why) \
  { IPPROTO_TCP, name, "IPPROTO_TCP", #name, cls, why }
#define IP_OPTION(name, cls, why) \
  { IPPROTO_IP, name, "IPPROTO_IP", #name, cls, why }
#define IPV6_OPTION(name, cls, why) \
  { IPPROTO_IPV6, name, "IPPROTO_IPV6", #name, cls, why }

constexpr const char *kKernelSocket = "the kernel socket does it (bind, handshake, close)";
constexpr const char *kNoNetwork = "no packets, no network layer: nothing to change";
constexpr const char *kGetOnly = "a question, not a setting";

const OptionInfo kOptions[] = {
    // ---- SOL_SOCKET ----
    SOCKET_OPTION(SO_REUSEADDR, kHonoured, kKernelSocket),
    SOCKET_OPTION(SO_REUSEPORT, kHonoured, "the kernel spreads connections over listeners"),
    SOCKET_OPTION(SO_RCVBUF, kHonoured, "sizes the receive ring (set before connect/listen)"),
    SOCKET_OPTION(SO_RCVBUFFORCE, kHonoured, "sizes the receive ring (set before connect/listen)"),
    SOCKET_OPTION(SO_RCVTIMEO, kHonoured, "the fast path's waits time out the same"),
    SOCKET_OPTION(SO_SNDTIMEO, kHonoured, "the fast path's waits time out the same"),
    SOCKET_OPTION(SO_RCVTIMEO_NEW, kHonoured, "the fast path's waits time out the same"),
    SOCKET_OPTION(SO_SNDTIMEO_NEW, kHonoured, "the fast path's waits time out the same"),
    SOCKET_OPTION(SO_KEEPALIVE, kHonoured, "probes run on the kernel connection"),
    SOCKET_OPTION(SO_LINGER, kHonoured, "close and its reset happen on the kernel connection"),
    SOCKET_OPTION(SO_OOBINLINE, kHonoured, "urgent data moves the connection to kernel TCP"),
    SOCKET_OPTION(SO_BINDTODEVICE, kHonoured, kKernelSocket),
    SOCKET_OPTION(SO_BINDTOIFINDEX, kHonoured, kKernelSocket),
    SOCKET_OPTION(SO_DETACH_FILTER, kHonoured, kKernelSocket),
    SOCKET_OPTION(SO_ATTACH_REUSEPORT_CBPF, kHonoured, "the kernel picks the listener"),
    SOCKET_OPTION(SO_ATTACH_REUSEPORT_EBPF, kHonoured, "the kernel picks the listener"),
    SOCKET_OPTION(SO_DETACH_REUSEPORT_BPF, kHonoured, "the kernel picks the listener"),
    SOCKET_OPTION(SO_SNDBUF, kNoEffect, "the receiver's ring bounds what is in flight"),
    SOCKET_OPTION(SO_SNDBUFFORCE, kNoEffect, "the receiver's ring bounds what is in flight"),
    SOCKET_OPTION(SO_DEBUG, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_DONTROUTE, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_BROADCAST, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_NO_CHECK, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_PRIORITY, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_BSDCOMPAT, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_PASSCRED, kNoEffect, "TCP delivers no credentials"),
    SOCKET_OPTION(SO_PASSSEC, kNoEffect, "TCP delivers no security context"),
    SOCKET_OPTION(SO_MARK, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_RXQ_OVFL, kNoEffect, "datagram sockets only"),
    SOCKET_OPTION(SO_WIFI_STATUS, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_NOFCS, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_LOCK_FILTER, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_SELECT_ERR_QUEUE, kNoEffect, "nothing reaches the error queue"),
    SOCKET_OPTION(SO_BUSY_POLL, kNoEffect, "the fast path spins by itself (LOOPFAST_SPIN_US)"),
    SOCKET_OPTION(SO_PREFER_BUSY_POLL, kNoEffect, "the fast path spins by itself"),
    SOCKET_OPTION(SO_BUSY_POLL_BUDGET, kNoEffect, "the fast path spins by itself"),
    SOCKET_OPTION(SO_INCOMING_CPU, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_MAX_PACING_RATE, kNoEffect, "no pacing: only speed differs"),
    SOCKET_OPTION(SO_TXTIME, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_BUF_LOCK, kNoEffect, "ring sizes are fixed at connect"),
    SOCKET_OPTION(SO_RESERVE_MEM, kNoEffect, "ring memory is reserved at connect"),
    SOCKET_OPTION(SO_TXREHASH, kNoEffect, kNoNetwork),
    SOCKET_OPTION(SO_PASSPIDFD, kNoEffect, "TCP delivers no credentials"),
    SOCKET_OPTION(SO_PASSRIGHTS, kNoEffect, "TCP delivers no descriptors"),
    SOCKET_OPTION(SO_ATTACH_FILTER, kNeedsKernel, "a packet filter must see the data"),
    SOCKET_OPTION(SO_ATTACH_BPF, kNeedsKernel, "a packet filter must see the data"),
    SOCKET_OPTION(SO_RCVLOWAT, kNeedsKernel, "changes when a read and poll return"),
    SOCKET_OPTION(SO_PEEK_OFF, kNeedsKernel, "changes what MSG_PEEK returns"),
    SOCKET_OPTION(SO_TIMESTAMP, kNeedsKernel, "receive timestamps come with packets"),
    SOCKET_OPTION(SO_TIMESTAMPNS, kNeedsKernel, "receive timestamps come with packets"),
    SOCKET_OPTION(SO_TIMESTAMPING, kNeedsKernel, "timestamps come with packets"),
    SOCKET_OPTION(SO_TIMESTAMP_NEW, kNeedsKernel, "receive timestamps come with packets"),
    SOCKET_OPTION(SO_TIMESTAMPNS_NEW, kNeedsKernel, "receive timestamps come with packets"),
    SOCKET_OPTION(SO_TIMESTAMPING_NEW, kNeedsKernel, "timestamps come with packets"),
    SOCKET_OPTION(SO_RCVPRIORITY, kNeedsKernel, "priorities come with packets"),
    SOCKET_OPTION(SO_ZEROCOPY, kNeedsKernel, "completions come through the error queue"),
    SOCKET_OPTION(SO_RCVMARK, kNeedsKernel, "marks come with packets"),
    SOCKET_OPTION(SO_TYPE, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_PROTOCOL, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_DOMAIN, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_ERROR, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_ACCEPTCONN, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_PEERCRED, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_PEERSEC, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_PEERNAME, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_PEERGROUPS, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_COOKIE, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_MEMINFO, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_INCOMING_NAPI_ID, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_NETNS_COOKIE, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_BPF_EXTENSIONS, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_PEERPIDFD, kReadOnly, kGetOnly),
    SOCKET_OPTION(SO_SNDLOWAT, kReadOnly, "Linux refuses to set it (ENOPROTOOPT)"),
    // ---- IPPROTO_TCP ----
    TCP_OPTION(TCP_NODELAY, kNoEffect, "no segments: every send is visible at once"),
    TCP_OPTION(TCP_CORK, kNoEffect, "no segments to hold back"),
    TCP_OPTION(TCP_QUICKACK, kNoEffect, "no acknowledgements"),
    TCP_OPTION(TCP_MAXSEG, kNoEffect, "no segments (a fast listener keeps the value aside)"),
    TCP_OPTION(TCP_WINDOW_CLAMP, kNoEffect, "the receive ring is the window"),
    TCP_OPTION(TCP_CONGESTION, kNoEffect, "no congestion on shared memory"),
    TCP_OPTION(TCP_THIN_LINEAR_TIMEOUTS, kNoEffect, "no retransmissions"),
    TCP_OPTION(TCP_THIN_DUPACK, kNoEffect, "no retransmissions"),
    TCP_OPTION(TCP_USER_TIMEOUT, kNoEffect, "no unacknowledged data on the kernel connection"),
    TCP_OPTION(TCP_TX_DELAY, kNoEffect, kNoNetwork),
    TCP_OPTION(TCP_RTO_MAX_MS, kNoEffect, "no retransmissions"),
    TCP_OPTION(TCP_RTO_MIN_US, kNoEffect, "no retransmissions"),
    TCP_OPTION(TCP_DELACK_MAX_US, kNoEffect, "no acknowledgements"),
    TCP_OPTION(TCP_KEEPIDLE, kHonoured, "probes run on the kernel connection"),
    TCP_OPTION(TCP_KEEPINTVL, kHonoured, "probes run on the kernel connection"),
    TCP_OPTION(TCP_KEEPCNT, kHonoured, "probes run on the kernel connection"),
    TCP_OPTION(TCP_SYNCNT, kHonoured, "the handshake is the kernel's"),
    TCP_OPTION(TCP_LINGER2, kHonoured, "close is the kernel connection's"),
    TCP_OPTION(TCP_FASTOPEN, kHonoured, "a listener's handshake is the kernel's"),
    TCP_OPTION(TCP_FASTOPEN_KEY, kHonoured, "a listener's handshake is the kernel's"),
    TCP_OPTION(TCP_FASTOPEN_NO_COOKIE, kHonoured, "a listener's handshake is the kernel's"),
    TCP_OPTION(TCP_DEFER_ACCEPT, kNeedsKernel, "waits for data on the kernel connection"),
    TCP_OPTION(TCP_FASTOPEN_CONNECT, kNeedsKernel, "data rides in the SYN"),
    TCP_OPTION(TCP_NOTSENT_LOWAT, kNeedsKernel, "changes when poll says writable"),
    TCP_OPTION(TCP_ULP, kNeedsKernel, "kernel TLS must see the data"),
    TCP_OPTION(TCP_MD5SIG, kNeedsKernel, "signs segments"),
    TCP_OPTION(TCP_MD5SIG_EXT, kNeedsKernel, "signs segments"),
    TCP_OPTION(TCP_REPAIR, kNeedsKernel, "checkpoints the kernel's queues"),
    TCP_OPTION(TCP_REPAIR_QUEUE, kNeedsKernel, "checkpoints the kernel's queues"),
    TCP_OPTION(TCP_QUEUE_SEQ, kNeedsKernel, "checkpoints the kernel's queues"),
    TCP_OPTION(TCP_REPAIR_OPTIONS, kNeedsKernel, "checkpoints the kernel's queues"),
    TCP_OPTION(TCP_REPAIR_WINDOW, kNeedsKernel, "checkpoints the kernel's queues"),
    TCP_OPTION(TCP_TIMESTAMP, kNeedsKernel, "segment timestamps"),
    TCP_OPTION(TCP_INQ, kNeedsKernel, "a control message on every read"),
    TCP_OPTION(TCP_SAVE_SYN, kNeedsKernel, "loopfast's listener marker uses the saved SYN"),
    TCP_OPTION(TCP_INFO, kReadOnly, kGetOnly),
    TCP_OPTION(TCP_CC_INFO, kReadOnly, kGetOnly),
    TCP_OPTION(TCP_IS_MPTCP, kReadOnly, kGetOnly),
    TCP_OPTION(TCP_SAVED_SYN, kReadOnly, kGetOnly),
    TCP_OPTION(TCP_ZEROCOPY_RECEIVE, kReadOnly, "a getsockopt call (fails for fast data)"),
    // ---- IPPROTO_IP ----
    IP_OPTION(IP_TTL, kHonoured, "kept, applied after the handshake (S13)"),
    IP_OPTION(IP_UNICAST_IF, kHonoured, kKernelSocket),
    IP_OPTION(IP_FREEBIND, kHonoured, kKernelSocket),
    IP_OPTION(IP_TRANSPARENT, kHonoured, kKernelSocket),
    IP_OPTION(IP_BIND_ADDRESS_NO_PORT, kHonoured, kKernelSocket),
    IP_OPTION(IP_LOCAL_PORT_RANGE, kHonoured, kKernelSocket),
    IP_OPTION(IP_TOS, kNoEffect, kNoNetwork),
    IP_OPTION(IP_OPTIONS, kNoEffect, kNoNetwork),
    IP_OPTION(IP_RECVERR, kNoEffect, "nothing reaches the error queue"),
    IP_OPTION(IP_RECVERR_RFC4884, kNoEffect, "nothing reaches the error queue"),
    IP_OPTION(IP_MTU_DISCOVER, kNoEffect, kNoNetwork),
    IP_OPTION(IP_PKTINFO, kNoEffect, "TCP delivers no packet information"),
    IP_OPTION(IP_RECVTOS, kNoEffect, "TCP delivers no packet information"),
    IP_OPTION(IP_RECVTTL, kNoEffect, "TCP delivers no packet information"),
    IP_OPTION(IP_RECVOPTS, kNoEffect, "TCP delivers no packet information"),
    IP_OPTION(IP_MULTICAST_IF, kNoEffect, "datagram sockets only"),
    IP_OPTION(IP_MULTICAST_TTL, kNoEffect, "datagram sockets only"),
    IP_OPTION(IP_MULTICAST_LOOP, kNoEffect, "datagram sockets only"),
    IP_OPTION(IP_MINTTL, kNeedsKernel, "drops segments by TTL; loopfast's marker uses the TTL"),
    IP_OPTION(IP_IPSEC_POLICY, kNeedsKernel, "IPsec must see the data"),
    IP_OPTION(IP_XFRM_POLICY, kNeedsKernel, "IPsec must see the data"),
    IP_OPTION(IP_MTU, kReadOnly, kGetOnly),
    IP_OPTION(IP_PROTOCOL, kReadOnly, kGetOnly),
    // ---- IPPROTO_IPV6 ----
    IPV6_OPTION(IPV6_V6ONLY, kHonoured, kKernelSocket),
    IPV6_OPTION(IPV6_UNICAST_HOPS, kHonoured, "kept, applied after the handshake (S13)"),
    IPV6_OPTION(IPV6_UNICAST_IF, kHonoured, kKernelSocket),
    IPV6_OPTION(IPV6_FREEBIND, kHonoured, kKernelSocket),
    IPV6_OPTION(IPV6_TRANSPARENT, kHonoured, kKernelSocket),
    IPV6_OPTION(IPV6_ADDR_PREFERENCES, kHonoured, kKernelSocket),
    IPV6_OPTION(IPV6_TCLASS, kNoEffect, kNoNetwork),
    IPV6_OPTION(IPV6_RECVERR, kNoEffect, "nothing reaches the error queue"),
    IPV6_OPTION(IPV6_RECVERR_RFC4884, kNoEffect, "nothing reaches the error queue"),
    IPV6_OPTION(IPV6_FLOWINFO, kNoEffect, kNoNetwork),
    IPV6_OPTION(IPV6_FLOWINFO_SEND, kNoEffect, kNoNetwork),
    IPV6_OPTION(IPV6_FLOWLABEL_MGR, kNoEffect, kNoNetwork),
    IPV6_OPTION(IPV6_MTU_DISCOVER, kNoEffect, kNoNetwork),
    IPV6_OPTION(IPV6_AUTOFLOWLABEL, kNoEffect, kNoNetwork),
    IPV6_OPTION(IPV6_DONTFRAG, kNoEffect, kNoNetwork),
    IPV6_OPTION(IPV6_RECVPKTINFO, kNoEffect, "TCP delivers no packet information"),
    IPV6_OPTION(IPV6_RECVTCLASS, kNoEffect, "TCP delivers no packet information"),
    IPV6_OPTION(IPV6_RECVHOPLIMIT, kNoEffect, "TCP delivers no packet information"),
    IPV6_OPTION(IPV6_ADDRFORM, kNeedsKernel, "turns the socket into an IPv4 one"),
    IPV6_OPTION(IPV6_MINHOPCOUNT, kNeedsKernel, "drops segments by hop limit; marker uses it"),
    IPV6_OPTION(IPV6_IPSEC_POLICY, kNeedsKernel, "IPsec must see the data"),
    IPV6_OPTION(IPV6_XFRM_POLICY, kNeedsKernel, "IPsec must see the data"),
    IPV6_OPTION(IPV6_MTU, kReadOnly, kGetOnly),
};

#undef SOCKET_OPTION
#undef TCP_OPTION
#undef IP_OPTION
#undef IPV6_OPTION

}  // namespace

const OptionInfo *FindOption(int level, int name) {
  // A hundred-odd entries; called only from setsockopt, never on the data path.
  for (const OptionInfo &info : kOptions) {
    if (info.level == level && info.name == name) return &info;
  }
  return nullptr;
}

OptionClass ClassOf(int level, int name) {
  const OptionInfo *info = FindOption(level, name);
  return info != nullptr ? info->option_class : OptionClass::kNeedsKernel;
}

const OptionInfo *AllOptions(size_t *count) {
  *count = sizeof kOptions / sizeof kOptions[0];
  return kOptions;
}

const char *ClassName(OptionClass option_class) {
  switch (option_class) {
    case OptionClass::kHonoured:
      return "honoured";
    case OptionClass::kNoEffect:
      return "no effect";
    case OptionClass::kReadOnly:
      return "read only";
    case OptionClass::kNeedsKernel:
      return "moves to kernel TCP";
  }
  return "?";
}

}  // namespace loopfast
