// listen() and accept(): the accepting side's verbs. An opted-in listener opens its port's
// listener group (session/listener_group.h) and advertises the marker before the kernel
// listen; an accept binds the connection to the slot its client claimed, found through what
// the kernel says of the client's socket, without waiting for anyone.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "capture/capture.h"
#include "config/config.h"
#include "config/policy.h"
#include "session/markers.h"
#include "session/peer_lookup.h"
#include "socket/address.h"
#include "socket/socket_internal.h"
#include "socket/socket_ops.h"
#include "socket/socket_stat.h"

namespace loopfast::ops {
namespace {

// The smallest SO_RCVBUF that keeps a listener's SYN-ACK window at its 65535 maximum, so a
// client reading the marker MSS (bounded by half the peer's window) sees it whole.
constexpr int kMarkerSafeRcvbuf = 128 * 1024;

// Connections this process reset because their claim could not be found, and setups it
// dropped as malformed (loopfast_rendezvous_rejected()).
std::atomic<uint64_t> rejected_total{0};

// ---- listener groups, one per port in this process ----
std::mutex groups_mutex;
std::map<uint16_t, std::weak_ptr<session::ListenerGroup>> *groups = nullptr;

Result<std::shared_ptr<session::ListenerGroup>> AcquireGroup(uint16_t port) {
  std::lock_guard<std::mutex> guard(groups_mutex);
  if (groups == nullptr) groups = new std::map<uint16_t, std::weak_ptr<session::ListenerGroup>>();
  if (auto existing = (*groups)[port].lock()) return existing;
  auto opened = session::ListenerGroup::Open(port);
  if (opened.ok()) (*groups)[port] = opened.value();
  return opened;
}

uint16_t BoundPort(int fd) {
  struct sockaddr_storage address {};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&address), &length) != 0) return 0;
  return PortOf(reinterpret_cast<struct sockaddr *>(&address), length);
}

// Makes a listening socket fast-capable: group first, then the marker; kernel listen is the
// caller's. Caller holds the mutex.
void EnableListener(Socket &socket, int fd) {
  if (IoUringSeen()) {
    socket.fallback_reason = reason::kIoUring;
    return;
  }
  {
    // The bound address and port (a wildcard address is checked per connection at accept).
    struct sockaddr_storage bound {};
    socklen_t bound_length = sizeof bound;
    if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&bound), &bound_length) == 0) {
      if (const char *denied = PolicyDenies(
              GetPolicy(), reinterpret_cast<struct sockaddr *>(&bound), bound_length)) {
        socket.fallback_reason = denied;
        Log(LogLevel::kInfo, "listener stays on kernel TCP: %s", denied);
        return;
      }
    }
  }
  uint16_t port = BoundPort(fd);
  if (port == 0) {
    // listen() would bind a wildcard ephemeral port; do it first so the marker and channel
    // exist before any SYN can arrive.
    struct sockaddr_storage any {};
    socklen_t length;
    if (socket.family == AF_INET6) {
      auto *in6 = reinterpret_cast<struct sockaddr_in6 *>(&any);
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = in6addr_any;
      length = sizeof *in6;
    } else {
      auto *in = reinterpret_cast<struct sockaddr_in *>(&any);
      in->sin_family = AF_INET;
      in->sin_addr.s_addr = htonl(INADDR_ANY);
      length = sizeof *in;
    }
    if (Real().bind(fd, reinterpret_cast<struct sockaddr *>(&any), length) != 0) return;
    port = BoundPort(fd);
  }
  auto group = AcquireGroup(port);
  if (!group.ok()) {
    // The name has no owner: whoever bound it first has it. Say who, for the administrator
    // (docs/configuration.md: the policy file can keep that port off the fast path).
    socket.fallback_reason = reason::kChannelBusy;
    if (Result<struct ucred> holder = session::ListenerGroup::ChannelHolder(port); holder.ok()) {
      char text[stat::kReasonBytes];
      std::snprintf(text, sizeof text, "port's rendezvous name held by pid %d, user %u",
                    static_cast<int>(holder.value().pid),
                    static_cast<unsigned>(holder.value().uid));
      socket.fallback_reason = InternReason(text);
    }
    Log(LogLevel::kInfo, "listener on port %u stays on kernel TCP: %s", port,
        socket.fallback_reason);
    return;
  }
  if (!session::SetListenerMarker(fd).ok()) return;
  if (socket.options.rcvbuf > 0 && socket.options.rcvbuf < kMarkerSafeRcvbuf) {
    Real().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kMarkerSafeRcvbuf, sizeof kMarkerSafeRcvbuf);
    socket.options.rcvbuf_raised = true;
  }
  socket.listener = std::make_unique<ListenerStage>();
  socket.listener->group = std::move(group.value());
  Log(LogLevel::kDebug, "listener on port %u opted in", port);
}

// The policy's answer for an accepted connection: its local end (the address the client
// dialled) and its remote end both count.
const char *AcceptedDenied(const struct sockaddr *local, const struct sockaddr *remote) {
  if (!GetPolicy().HasConnectionRules()) return nullptr;
  const socklen_t length = sizeof(struct sockaddr_storage);
  if (const char *denied = PolicyDenies(GetPolicy(), local, length)) return denied;
  return PolicyDenies(GetPolicy(), remote, length);
}

// A marked connection whose claim cannot be placed: the client may already be writing to a
// ring nobody here can read, so the connection is reset for both, loudly.
void ResetUnplaced(Socket &accepted, int fd, const char *why) {
  struct sockaddr unspecified = {};
  unspecified.sa_family = AF_UNSPEC;
  const int saved_errno = errno;
  Real().connect(fd, &unspecified, sizeof unspecified);
  errno = saved_errno;
  rejected_total.fetch_add(1, std::memory_order_relaxed);
  Log(LogLevel::kError, "accepted connection reset: %s", why);
  DecideKernel(accepted, fd, why);
}

// Whether the client reset the accepted connection already (its socket, and its claim with it,
// is gone: nothing is left to place, and the program's next call reports the reset).
bool ResetByClient(int fd) {
  struct tcp_info info {};
  socklen_t length = sizeof info;
  const int saved_errno = errno;
  const bool reset = Real().getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) == 0 &&
                     info.tcpi_state == TCP_CLOSE;
  errno = saved_errno;
  return reset;
}

// An IPv4 address as a dual-stack (IPv6) socket names it: v4-mapped.
void MapToV6(struct sockaddr_storage *address) {
  if (address->ss_family != AF_INET) return;
  const auto v4 = *reinterpret_cast<const struct sockaddr_in *>(address);
  auto *v6 = reinterpret_cast<struct sockaddr_in6 *>(address);
  *v6 = {};
  v6->sin6_family = AF_INET6;
  v6->sin6_port = v4.sin_port;
  v6->sin6_addr.s6_addr[10] = 0xff;
  v6->sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&v6->sin6_addr.s6_addr[12], &v4.sin_addr, 4);
}

// The server half for a freshly accepted socket. Its two ends come from the saved SYN (the
// kernel's getsockname/getpeername when the SYN is unreadable).
void BindAccepted(Socket &accepted, int fd, session::ListenerGroup &group) {
  session::SavedSyn syn = session::ReadSavedSyn(fd);
  if (!syn.marked) {
    DecideKernel(accepted, fd, reason::kPeerNotOptedIn);
    return;
  }
  struct sockaddr_storage &local = syn.local;
  struct sockaddr_storage &peer = syn.remote;
  if (local.ss_family == 0 || peer.ss_family == 0) {
    socklen_t length = sizeof local;
    getsockname(fd, reinterpret_cast<struct sockaddr *>(&local), &length);
    length = sizeof peer;
    getpeername(fd, reinterpret_cast<struct sockaddr *>(&peer), &length);
  } else if (accepted.family == AF_INET6) {
    // An IPv4 SYN to a dual-stack listener: the accepted socket speaks v4-mapped addresses.
    MapToV6(&local);
    MapToV6(&peer);
  }
  // The client's socket: its local end is our peer, its remote end the address it dialled.
  Result<session::SocketFacts> client =
      session::LookupTcpSocket(reinterpret_cast<const struct sockaddr *>(&peer),
                               reinterpret_cast<const struct sockaddr *>(&syn.local));
  if (!client.ok()) {
    if (ResetByClient(fd)) {
      DecideKernel(accepted, fd, reason::kClientResetBeforeAccept);
      return;
    }
    ResetUnplaced(accepted, fd, reason::kClaimNotFound);
    return;
  }
  const uint32_t rx_limit = ReceiveLimit(accepted);
  session::ListenerGroup::Placed placed =
      group.Bind(client.value().uid, client.value().uid_known, client.value().cookie, rx_limit);
  switch (placed.outcome) {
    case session::ServerSession::BindOutcome::kDeclined:
      DecideKernel(accepted, fd, reason::kClientDeclined);
      return;
    case session::ServerSession::BindOutcome::kNotFound:
      ResetUnplaced(accepted, fd, reason::kClaimNotFound);
      return;
    case session::ServerSession::BindOutcome::kAmbiguous:
      ResetUnplaced(accepted, fd, reason::kClaimAmbiguous);
      return;
    case session::ServerSession::BindOutcome::kResources:
      ResetUnplaced(accepted, fd, reason::kResources);
      return;
    case session::ServerSession::BindOutcome::kBound:
      break;
  }
  Result<std::unique_ptr<FastConnection>> fast =
      FastConnection::Open(placed.session, placed.slot, rx_limit);
  if (!fast.ok()) {
    ResetUnplaced(accepted, fd, reason::kResources);
    return;
  }
  if (capture::Sink *sink = capture::Sink::Get()) {
    fast.value()->StartCapture(sink, fd, /*client=*/false);
  }
  FastConnection *connection = fast.value().get();
  KnownEnds ends;
  ends.local = reinterpret_cast<const struct sockaddr *>(&syn.local);
  ends.peer = reinterpret_cast<const struct sockaddr *>(&peer);
  BecomeFast(accepted, fd, std::move(fast.value()), ends);
  const char *denied = AcceptedDenied(reinterpret_cast<const struct sockaddr *>(&syn.local),
                                      reinterpret_cast<const struct sockaddr *>(&peer));
  if (denied == nullptr && client.value().uid_known) {
    denied = PolicyDeniesUsers(GetPolicy(), geteuid(), client.value().uid);
  }
  if (denied != nullptr) {
    // Bytes the client already put in the ring are still read first.
    connection->SwitchToKernel();
    accepted.fallback_reason = denied;
    PublishSocket(accepted, fd);
  }
}

}  // namespace

uint64_t RejectedTotal() { return rejected_total.load(std::memory_order_relaxed); }

void DisableListener(Socket &socket, int fd) {
  if (!socket.listener) return;
  ApplyProgramRcvbuf(socket, fd);
  socket.options.rcvbuf_raised = false;
  const int zero = 0;
  Real().setsockopt(fd, IPPROTO_TCP, TCP_SAVE_SYN, &zero, sizeof zero);
  Real().setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &socket.options.maxseg,
                    sizeof socket.options.maxseg);
  socket.listener.reset();
}

void EnableListenerForApi(Socket &socket, int fd) { EnableListener(socket, fd); }

int Listen(Socket &socket, int fd, int backlog) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  const bool first = socket.stage.load(std::memory_order_relaxed) == Stage::kUndecided;
  if (first && socket.opted_in.load(std::memory_order_relaxed) && !GetConfig().disabled) {
    EnableListener(socket, fd);
  }
  const int ret = Real().listen(fd, backlog);
  if (ret == 0) {
    socket.stage.store(Stage::kListening, std::memory_order_release);
    PublishSocket(socket, fd);
  } else if (first) {
    const int error = errno;
    DisableListener(socket, fd);
    errno = error;
  }
  return ret;
}

int Accept(Socket &listener, int fd, struct sockaddr *address, socklen_t *length, int flags) {
  // The program's own buffers: the kernel checks and fills them (the addresses loopfast needs
  // come from the saved SYN).
  const int accepted_fd = Real().accept4(fd, address, length, flags);
  if (accepted_fd < 0) return accepted_fd;
  const int saved_errno = errno;
  std::shared_ptr<session::ListenerGroup> group;
  const char *listener_reason = reason::kListenerNotOptedIn;
  auto accepted = NewSocket(listener.family, (flags & SOCK_NONBLOCK) != 0);
  accepted->role = stat::Role::kAccepting;
  {
    std::lock_guard<std::mutex> guard(listener.mutex);
    if (listener.listener) {
      listener.listener->has_accepted = true;
      group = listener.listener->group;
    }
    // Why the listener offers no fast path (policy, an option) is why its connections do not.
    if (listener.fallback_reason != reason::kNone) listener_reason = listener.fallback_reason;
    // The kernel copies these to the accepted socket; so do we.
    accepted->options.recv_timeout = listener.options.recv_timeout;
    accepted->options.send_timeout = listener.options.send_timeout;
    accepted->options.rcvbuf = listener.options.rcvbuf;
    accepted->options.rcvbuf_raised = listener.options.rcvbuf_raised;
    accepted->opted_in.store(listener.opted_in.load(std::memory_order_relaxed),
                             std::memory_order_relaxed);
    accepted->opted_in_explicitly.store(
        listener.opted_in_explicitly.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  {
    std::lock_guard<std::mutex> guard(accepted->mutex);
    if (group) {
      BindAccepted(*accepted, accepted_fd, *group);
    } else {
      DecideKernel(*accepted, accepted_fd, listener_reason);
    }
    if (accepted->stage.load(std::memory_order_relaxed) == Stage::kKernel) {
      ApplyProgramRcvbuf(*accepted, accepted_fd);
    }
  }
  Table().Set(accepted_fd, accepted);
  errno = saved_errno;
  return accepted_fd;
}

}  // namespace loopfast::ops
