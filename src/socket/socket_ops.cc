#include "socket/socket_ops.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "capture/capture.h"
#include "loopfast/loopfast.h"
#include "rendezvous/markers.h"
#include "rendezvous/protocol.h"
#include "rendezvous/unix_channel.h"
#include "socket/address.h"
#include "socket/config.h"
#include "socket/fd_table.h"
#include "socket/option_table.h"
#include "socket/policy.h"
#include "socket/socket_stat.h"
#include "stat/registry.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::ops {
namespace {

using rendezvous::Kind;

// How long an accept waits for a Hello that another process of its group holds.
constexpr int kFindHelloTimeoutMs = 1000;
// How long a blocked call waits for the listener's Offer before the connection is moved to
// kernel TCP (always safe: see AbandonPending).
constexpr int kOfferPatienceMs = 2000;
// How long a shutdown or a blocking send waits for an Offer (the server program has not
// accepted yet) before taking kernel TCP: a bounded stall instead of bytes held back.
constexpr int kOfferWaitMs = 250;

FdTable &Table() { return FdTable::Instance(); }
const sys::RealCalls &Real() { return sys::Real(); }

// Set once the process has set up an io_uring: its operations bypass libc, and so loopfast.
std::atomic<bool> io_uring_seen{false};
bool IoUringSeen() { return io_uring_seen.load(std::memory_order_relaxed); }

bool IsTcpSocket(int domain, int type, int protocol) {
  return (domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM &&
         (protocol == 0 || protocol == IPPROTO_TCP);
}

// The smallest SO_RCVBUF that keeps a listener's SYN-ACK window at its 65535 maximum, so a
// client reading the marker MSS (bounded by half the peer's window) sees it whole.
constexpr int kMarkerSafeRcvbuf = 128 * 1024;

// What the kernel reports for SO_RCVBUF after a program set `value` (it doubles it, within
// net.core.rmem_max unless forced, and never below its minimum).
int KernelStyleRcvbuf(int value) {
  static const int rmem_max = [] {
    int max = 212992;
    if (FILE *file = std::fopen("/proc/sys/net/core/rmem_max", "r")) {
      if (std::fscanf(file, "%d", &max) != 1) max = 212992;
      std::fclose(file);
    }
    return max;
  }();
  const long doubled = 2L * std::min(value, rmem_max);
  return static_cast<int>(std::max<long>(doubled, 2304));
}

// A connection that ends on kernel TCP gets the receive buffer its program asked for.
void ApplyProgramRcvbuf(const Socket &socket, int fd) {
  if (!socket.rcvbuf_raised || socket.program_rcvbuf <= 0) return;
  const int saved_errno = errno;
  Real().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &socket.program_rcvbuf,
                    sizeof socket.program_rcvbuf);
  errno = saved_errno;
}

std::shared_ptr<Socket> NewSocket(int family, bool nonblocking) {
  auto socket = std::make_shared<Socket>(family);
  const Config &config = GetConfig();
  socket->opted_in.store(config.default_on && !config.disabled, std::memory_order_relaxed);
  socket->nonblocking.store(nonblocking, std::memory_order_relaxed);
  return socket;
}

// Caller holds socket.mutex.
void DecideKernel(Socket &socket, int fd, const char *why) {
  socket.path.store(Path::kKernel, std::memory_order_release);
  if (socket.opted_in.load(std::memory_order_relaxed) || why == reason::kDisabled) {
    socket.fallback_reason = why;
    Log(LogLevel::kInfo, "kernel TCP: %s", why);
  }
  PublishSocket(socket, fd);
}

void CloseRendezvous(Socket &socket) {
  if (socket.rendezvous_fd >= 0) {
    rendezvous::CloseAll(&socket.rendezvous_fd, 1);
    socket.rendezvous_fd = -1;
  }
}

// Blocking write of `bytes` to the kernel connection, whatever the socket's O_NONBLOCK.
void WriteAllToKernel(int fd, const uint8_t *bytes, size_t size) {
  const int saved_errno = errno;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = Real().send(fd, bytes + done, size - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      Real().poll(&pfd, 1, 1000);
    } else {
      break;  // the connection failed; the program sees that on its next call
    }
  }
  errno = saved_errno;
}

// Leaves the pending state for kernel TCP. Always safe: the listener, if it already went fast,
// sees our end of its doorbells close with the unread Offer and moves its side to kernel TCP
// too, writing what it had queued to the kernel connection first. Caller holds the mutex.
void AbandonPending(Socket &socket, int fd, const char *why) {
  CloseRendezvous(socket);
  if (!socket.early_bytes.empty()) {
    WriteAllToKernel(fd, socket.early_bytes.data(), socket.early_bytes.size());
    socket.early_bytes.clear();
    socket.early_bytes.shrink_to_fit();
  }
  DecideKernel(socket, fd, why);
}

// Caller holds the mutex; path is kPending. Takes ownership of the three descriptors.
void AdoptOffer(Socket &socket, int fd, const int *fds) {
  Result<std::unique_ptr<FastConnection>> attached = FastConnection::Attach(fds[0], fds[1], fds[2]);
  if (!attached.ok()) {
    // The listener believes the connection is fast; it is not usable. Fail loudly, never
    // silently: both ends see the kernel connection end.
    CloseRendezvous(socket);
    Real().shutdown(fd, SHUT_RDWR);
    DecideKernel(socket, fd, reason::kBadOffer);
    Log(LogLevel::kError, "rejected an invalid offer (errno %d); connection shut down",
        attached.error());
    return;
  }
  socket.fast_owner = std::move(attached.value());
  FastConnection *fast = socket.fast_owner.get();
  if (capture::Sink *sink = capture::Sink::Get()) fast->StartCapture(sink, fd, /*client=*/true);
  if (!socket.early_bytes.empty()) {
    // The ring is empty and at least kMinRingBytes large: the early bytes fit at once.
    struct iovec iov = {socket.early_bytes.data(), socket.early_bytes.size()};
    SendCall call;
    call.nonblocking = true;
    (void)fast->Send(fd, &iov, 1, call);
    socket.early_bytes.clear();
    socket.early_bytes.shrink_to_fit();
  }
  CloseRendezvous(socket);
  socket.fast.store(fast, std::memory_order_release);
  socket.path.store(Path::kFast, std::memory_order_release);
  PublishSocket(socket, fd);
  Log(LogLevel::kDebug, "fast path established (connecting side)");
}

// Bytes a pending connection may still buffer before its Offer arrives. Caller holds the mutex.
size_t EarlyRoom(const Socket &socket) {
  return kMinRingBytes - std::min<size_t>(kMinRingBytes, socket.early_bytes.size());
}

enum class Resolve { kResolved, kStillPending, kInterrupted, kTimedOut };

// Reads the listener's answer. `wait_ms` < 0: do not block; otherwise block up to wait_ms
// (0: up to the Offer patience). Caller holds the mutex.
Resolve ResolvePending(Socket &socket, int fd, int wait_ms) {
  if (socket.path.load(std::memory_order_relaxed) != Path::kPending) return Resolve::kResolved;
  const bool blocking = wait_ms >= 0;
  if (blocking) {
    const int patience = wait_ms == 0 ? kOfferPatienceMs : std::min(wait_ms, kOfferPatienceMs);
    struct timeval timeout = {patience / 1000, (patience % 1000) * 1000L};
    Real().setsockopt(socket.rendezvous_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    Real().fcntl(socket.rendezvous_fd, F_SETFL, 0);
  }
  union {
    rendezvous::Offer offer;
    rendezvous::Reject reject;
    char bytes[64];
  } message;
  int fds[rendezvous::kMaxMessageFds];
  int fd_count = 0;
  Result<size_t> got = rendezvous::ReceiveMessage(socket.rendezvous_fd, &message, sizeof message,
                                                  fds, &fd_count, blocking);
  if (!got.ok()) {
    if (got.error() == EINTR) return Resolve::kInterrupted;
    if (got.error() == EAGAIN || got.error() == EWOULDBLOCK) {
      if (!blocking) return Resolve::kStillPending;
      if (wait_ms != 0 && wait_ms < kOfferPatienceMs) return Resolve::kTimedOut;
      AbandonPending(socket, fd, reason::kNotAcceptedInTime);
      return Resolve::kResolved;
    }
    AbandonPending(socket, fd, reason::kRendezvousLost);
    return Resolve::kResolved;
  }
  if (got.value() == sizeof(rendezvous::Offer) && fd_count == 3 &&
      rendezvous::IsMessage(&message, got.value(), Kind::kOffer, sizeof(rendezvous::Offer))) {
    AdoptOffer(socket, fd, fds);
    return Resolve::kResolved;
  }
  rendezvous::CloseAll(fds, fd_count);
  const bool refused =
      rendezvous::IsMessage(&message, got.value(), Kind::kReject, sizeof(rendezvous::Reject));
  AbandonPending(socket, fd, refused ? reason::kRefused : reason::kRendezvousLost);
  return Resolve::kResolved;
}

int TimevalMs(const struct timeval &timeout) {
  if (timeout.tv_sec == 0 && timeout.tv_usec == 0) return 0;
  const long ms = timeout.tv_sec * 1000 + (timeout.tv_usec + 999) / 1000;
  return static_cast<int>(std::clamp<long>(ms, 1, 1 << 30));
}

// The connection is established: read the listener's marker. Caller holds the mutex.
void FinishConnect(Socket &socket, int fd) {
  rendezvous::RestoreClientMarker(fd, socket.family, socket.program_ttl, socket.program_hops);
  if (socket.kernel_wanted != nullptr) {
    // The program asked for something only kernel TCP does while the handshake ran.
    AbandonPending(socket, fd, socket.kernel_wanted);
    return;
  }
  if (!rendezvous::ListenerMarkerSeen(fd)) {
    CloseRendezvous(socket);
    DecideKernel(socket, fd, reason::kListenerNotOptedIn);
    return;
  }
  socket.path.store(Path::kPending, std::memory_order_release);
  if (ResolvePending(socket, fd, -1) == Resolve::kStillPending) PublishSocket(socket, fd);
}

void FailConnect(Socket &socket, int fd) {
  rendezvous::RestoreClientMarker(fd, socket.family, socket.program_ttl, socket.program_hops);
  CloseRendezvous(socket);
  socket.path.store(Path::kUndecided, std::memory_order_release);
}

// A non-blocking (or interrupted) connect may have finished: look without consuming SO_ERROR.
// Caller holds the mutex.
void CheckConnectProgress(Socket &socket, int fd) {
  if (socket.path.load(std::memory_order_relaxed) != Path::kConnecting) return;
  struct tcp_info info {};
  socklen_t length = sizeof info;
  if (Real().getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return;
  if (info.tcpi_state == TCP_ESTABLISHED || info.tcpi_state == TCP_CLOSE_WAIT) {
    FinishConnect(socket, fd);
  } else if (info.tcpi_state == TCP_CLOSE) {
    FailConnect(socket, fd);
  }
}

// Blocks until a connect under way ends (the program asked for a blocking call on it).
void WaitConnect(int fd, const struct timeval &timeout) {
  struct pollfd pfd = {fd, POLLOUT, 0};
  const int ms = TimevalMs(timeout);
  Real().poll(&pfd, 1, ms == 0 ? -1 : ms);
}

// ---- listener channels, one per port in this process ----
std::mutex channels_mutex;
std::map<uint16_t, std::weak_ptr<rendezvous::ListenerChannel>> *channels = nullptr;

Result<std::shared_ptr<rendezvous::ListenerChannel>> AcquireChannel(uint16_t port) {
  std::lock_guard<std::mutex> guard(channels_mutex);
  if (channels == nullptr)
    channels = new std::map<uint16_t, std::weak_ptr<rendezvous::ListenerChannel>>();
  if (auto existing = (*channels)[port].lock()) return existing;
  auto opened = rendezvous::ListenerChannel::Open(port);
  if (opened.ok()) (*channels)[port] = opened.value();
  return opened;
}

uint16_t BoundPort(int fd) {
  struct sockaddr_storage address {};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&address), &length) != 0) return 0;
  return PortOf(reinterpret_cast<struct sockaddr *>(&address), length);
}

// Makes a listening socket fast-capable: marker first, then the channel; kernel listen is the
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
  auto channel = AcquireChannel(port);
  if (!channel.ok()) {
    socket.fallback_reason = reason::kChannelBusy;
    Log(LogLevel::kInfo, "listener on port %u stays on kernel TCP: %s (errno %d)", port,
        reason::kChannelBusy, channel.error());
    return;
  }
  if (!rendezvous::SetListenerMarker(fd).ok()) return;
  if (socket.program_rcvbuf > 0 && socket.program_rcvbuf < kMarkerSafeRcvbuf) {
    Real().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kMarkerSafeRcvbuf, sizeof kMarkerSafeRcvbuf);
    socket.rcvbuf_raised = true;
  }
  socket.channel = channel.value();
  Log(LogLevel::kDebug, "listener on port %u opted in", port);
}

void DisableListener(Socket &socket, int fd) {
  if (!socket.channel) return;
  ApplyProgramRcvbuf(socket, fd);
  socket.rcvbuf_raised = false;
  const int zero = 0;
  Real().setsockopt(fd, IPPROTO_TCP, TCP_SAVE_SYN, &zero, sizeof zero);
  Real().setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &socket.program_maxseg,
                    sizeof socket.program_maxseg);
  socket.channel.reset();
}

// The policy's answer for an accepted connection: its local end (the address the client
// dialled) and its remote end both count.
const char *AcceptedDenied(int fd) {
  if (!GetPolicy().HasConnectionRules()) return nullptr;  // two system calls saved per accept
  struct sockaddr_storage address {};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&address), &length) == 0) {
    if (const char *denied =
            PolicyDenies(GetPolicy(), reinterpret_cast<struct sockaddr *>(&address), length)) {
      return denied;
    }
  }
  length = sizeof address;
  if (getpeername(fd, reinterpret_cast<struct sockaddr *>(&address), &length) == 0) {
    return PolicyDenies(GetPolicy(), reinterpret_cast<struct sockaddr *>(&address), length);
  }
  return nullptr;
}

// The server half of the rendezvous for a freshly accepted socket.
void RendezvousAccepted(Socket &accepted, int fd, rendezvous::ListenerChannel &channel) {
  if (!rendezvous::ClientMarkerSeen(fd)) {
    DecideKernel(accepted, fd, reason::kPeerNotOptedIn);
    return;
  }
  Result<rendezvous::FoundHello> found = channel.FindHello(fd, kFindHelloTimeoutMs);
  if (!found.ok()) {
    const int error = found.error();
    DecideKernel(accepted, fd,
                 error == EACCES                         ? reason::kOtherUser
                 : error == ECONNRESET                   ? reason::kPeerGaveUp
                 : error == ETIMEDOUT || error == ENOENT ? reason::kHelloNotFound
                                                         : reason::kRendezvousLost);
    return;
  }
  if (const char *denied = AcceptedDenied(fd)) {
    const rendezvous::Reject reject = {rendezvous::MakeHeader(Kind::kReject),
                                       rendezvous::RejectReason::kPolicy, 0};
    (void)rendezvous::SendMessage(found.value().channel_fd, &reject, sizeof reject, nullptr, 0);
    rendezvous::CloseAll(&found.value().channel_fd, 1);
    DecideKernel(accepted, fd, denied);
    return;
  }
  const uint32_t wanted_rx = found.value().hello.rx_capacity;
  const uint32_t capacity_c2s =
      RingCapacityFor(accepted.program_rcvbuf > 0 ? static_cast<uint64_t>(accepted.program_rcvbuf)
                                                  : kDefaultRingBytes);
  const uint32_t capacity_s2c = RingCapacityFor(wanted_rx);
  PeerHandles peer;
  Result<std::unique_ptr<FastConnection>> created =
      FastConnection::Create(capacity_c2s, capacity_s2c, &peer);
  if (!created.ok()) {
    const rendezvous::Reject reject = {rendezvous::MakeHeader(Kind::kReject),
                                       rendezvous::RejectReason::kResources, 0};
    (void)rendezvous::SendMessage(found.value().channel_fd, &reject, sizeof reject, nullptr, 0);
    rendezvous::CloseAll(&found.value().channel_fd, 1);
    DecideKernel(accepted, fd, reason::kResources);
    return;
  }
  if (capture::Sink *sink = capture::Sink::Get()) {
    created.value()->StartCapture(sink, fd, /*client=*/false);
  }
  const rendezvous::Offer offer = {rendezvous::MakeHeader(Kind::kOffer), capacity_c2s,
                                   capacity_s2c};
  const int fds[3] = {peer.memory_fd, peer.data_bell_fd, peer.space_bell_fd};
  const Status sent =
      rendezvous::SendMessage(found.value().channel_fd, &offer, sizeof offer, fds, 3);
  rendezvous::CloseAll(fds, 3);
  rendezvous::CloseAll(&found.value().channel_fd, 1);
  if (!sent.ok()) {
    // The client closed its channel after its Hello was found: it gave up (closed before this
    // accept), as in FindHello's ECONNRESET.
    const int error = sent.error();
    DecideKernel(accepted, fd,
                 error == EPIPE || error == ECONNRESET || error == ECONNREFUSED
                     ? reason::kPeerGaveUp
                     : reason::kRendezvousLost);
    return;  // `created` unmaps on destruction
  }
  accepted.fast_owner = std::move(created.value());
  accepted.fast.store(accepted.fast_owner.get(), std::memory_order_release);
  accepted.path.store(Path::kFast, std::memory_order_release);
  PublishSocket(accepted, fd);
  Log(LogLevel::kDebug, "fast path established (accepting side)");
}

std::shared_ptr<Socket> Adopt(int fd) {
  int domain = 0, type = 0, protocol = 0, listening = 0;
  socklen_t length = sizeof domain;
  if (Real().getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0) return nullptr;
  length = sizeof type;
  Real().getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length);
  length = sizeof protocol;
  Real().getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &length);
  if (!IsTcpSocket(domain, type, protocol)) return nullptr;
  const int flags = Real().fcntl(fd, F_GETFL, 0);
  auto socket = NewSocket(domain, flags >= 0 && (flags & O_NONBLOCK) != 0);
  socket->opted_in.store(false, std::memory_order_relaxed);
  length = sizeof listening;
  Real().getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length);
  struct sockaddr_storage peer {};
  socklen_t peer_length = sizeof peer;
  if (listening) {
    socket->path.store(Path::kListening, std::memory_order_relaxed);
  } else if (getpeername(fd, reinterpret_cast<struct sockaddr *>(&peer), &peer_length) == 0) {
    socket->path.store(Path::kKernel, std::memory_order_relaxed);
  }
  Table().Set(fd, socket);
  return socket;
}

WaitSpec WaitFor(const struct timeval &timeout) {
  WaitSpec spec;
  spec.spin_ns = GetConfig().spin_ns;
  spec.timeout = timeout;
  return spec;
}

size_t IovLength(const struct msghdr *message) {
  size_t total = 0;
  for (size_t i = 0; i < message->msg_iovlen; ++i) total += message->msg_iov[i].iov_len;
  return total;
}

// Copies up to `room` bytes of the message, starting `skip` bytes in, to `out`.
size_t AppendFromIov(const struct msghdr *message, size_t skip, size_t room,
                     std::vector<uint8_t> &out) {
  size_t copied = 0;
  for (size_t i = 0; i < message->msg_iovlen && copied < room; ++i) {
    const auto *base = static_cast<const uint8_t *>(message->msg_iov[i].iov_base);
    size_t len = message->msg_iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const size_t take = std::min(len - skip, room - copied);
    out.insert(out.end(), base + skip, base + skip + take);
    copied += take;
    skip = 0;
  }
  return copied;
}

// `done` bytes of the message went out already; the rest goes on the kernel connection.
ssize_t SendRestToKernel(int kernel_fd, const struct msghdr *message, size_t done, int flags) {
  std::vector<uint8_t> rest;
  AppendFromIov(message, done, IovLength(message) - done, rest);
  const ssize_t n = Real().send(kernel_fd, rest.data(), rest.size(), flags);
  return static_cast<ssize_t>(done + (n > 0 ? static_cast<size_t>(n) : 0));
}

// This process lets go of a fast connection. Caller holds the mutex.
void EndFast(Socket &socket, int kernel_fd) {
  if (socket.fast_owner->Close(kernel_fd)) {
    // Unread bytes: TCP resets the connection; so do we, through the kernel connection.
    const struct linger abort_linger = {1, 0};
    Real().setsockopt(kernel_fd, SOL_SOCKET, SO_LINGER, &abort_linger, sizeof abort_linger);
  }
}

// The last call that outlived its socket's close has returned: end the connection now.
void FinishDeferredClose(Socket &socket) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  if (!socket.close_deferred || socket.calls_in_flight.load() != 0) return;
  socket.close_deferred = false;
  const int kept = socket.kept_fd.exchange(-1);
  EndFast(socket, kept);
  sys::CloseOwned(kept);
}

// Counts one send/recv under way for as long as it lives (see Socket::calls_in_flight).
class CallInFlight {
 public:
  CallInFlight(Socket &socket, int fd) : socket_(socket), fd_(fd) {
    // seq_cst against ReleaseDescriptor's store to `closed`: either it sees this call, or this
    // call sees the close.
    socket_.calls_in_flight.fetch_add(1);
  }
  ~CallInFlight() {
    if (socket_.calls_in_flight.fetch_sub(1) == 1 && socket_.closed.load()) {
      FinishDeferredClose(socket_);
    }
  }
  CallInFlight(const CallInFlight &) = delete;
  CallInFlight &operator=(const CallInFlight &) = delete;

  // False when the socket was closed before this call could count itself: EBADF, as the
  // kernel answers a call that comes after close().
  bool open() const {
    return !socket_.closed.load() || socket_.kept_fd.load(std::memory_order_acquire) >= 0;
  }
  // The kernel socket to use: the program's descriptor, or loopfast's copy once another
  // thread closed it (the number may already name another file).
  int kernel_fd() const {
    const int kept = socket_.kept_fd.load(std::memory_order_acquire);
    return kept >= 0 ? kept : fd_;
  }

 private:
  Socket &socket_;
  const int fd_;
};

}  // namespace

bool IsTracked(int fd) { return Table().Get(fd) != nullptr; }

// Drops one descriptor's hold; the last one ends this process's use of the socket. `fd` is
// still open (the caller closes it afterwards, or dup2 replaces it).
void ReleaseDescriptor(const std::shared_ptr<Socket> &socket, int fd) {
  if (socket->descriptors.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::lock_guard<std::mutex> guard(socket->mutex);
  socket->closed.store(true);
  // An Offer already waiting makes this a fast close (with its reset if bytes are unread).
  if (socket->path.load(std::memory_order_relaxed) == Path::kPending) {
    (void)ResolvePending(*socket, fd, -1);
  }
  switch (socket->path.load(std::memory_order_relaxed)) {
    case Path::kPending:
      AbandonPending(*socket, fd, reason::kClosedBeforeAccept);
      break;
    case Path::kConnecting:
      FailConnect(*socket, fd);
      break;
    case Path::kFast: {
      if (socket->calls_in_flight.load() > 0) {
        // Another thread is inside a call on it: keep the connection for that call.
        const int kept = Real().fcntl(fd, F_DUPFD_CLOEXEC, sys::HighBase());
        if (kept >= 0) {
          sys::Own(kept);
          socket->kept_fd.store(kept, std::memory_order_release);
          socket->close_deferred = true;
          return;
        }
      }
      EndFast(*socket, fd);
      break;
    }
    default:
      break;
  }
  socket->channel.reset();
}

namespace {

// Ends a connection's deciding (a connect under way, or an Offer not yet read) in this process
// alone, for a moment when another process is about to share the socket: takes an Offer that is
// there or comes within `offer_wait_ms` (< 0: no wait); otherwise kernel TCP for good, `why`.
// What a pending socket buffered lives only in this process: it goes to the kernel now. Caller
// holds the mutex.
void SettleDeciding(Socket &socket, int fd, int offer_wait_ms, const char *why) {
  const int saved_errno = errno;
  CheckConnectProgress(socket, fd);
  if (socket.path.load(std::memory_order_relaxed) == Path::kConnecting) {
    rendezvous::RestoreClientMarker(fd, socket.family, socket.program_ttl, socket.program_hops);
    AbandonPending(socket, fd, why);
  } else if (socket.path.load(std::memory_order_relaxed) == Path::kPending &&
             ResolvePending(socket, fd, offer_wait_ms) != Resolve::kResolved) {
    AbandonPending(socket, fd, why);
  }
  errno = saved_errno;
}

}  // namespace

void MoveToKernel(Socket &socket, int fd) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  SettleDeciding(socket, fd, -1, reason::kHandedOver);
  if (socket.path.load(std::memory_order_relaxed) == Path::kFast) {
    socket.fast.load(std::memory_order_relaxed)->MoveToKernel();
    DecideKernel(socket, fd, reason::kHandedOver);
  }
}

void NoteIoUring() {
  if (io_uring_seen.exchange(true)) return;
  Log(LogLevel::kInfo, "io_uring set up: every socket of this process takes kernel TCP");
  std::vector<std::pair<int, std::shared_ptr<Socket>>> sockets;
  Table().ForEach(
      [&](int fd, const std::shared_ptr<Socket> &socket) { sockets.emplace_back(fd, socket); });
  for (auto &[fd, socket] : sockets) {
    if (WouldBeFast(*socket)) GoKernel(*socket, fd, reason::kIoUring);
  }
}

bool WouldBeFast(Socket &socket) {
  switch (socket.path.load(std::memory_order_acquire)) {
    case Path::kFast:
      return !socket.fast.load(std::memory_order_acquire)->WritesGoToKernel();
    case Path::kPending:
    case Path::kConnecting:
      return true;
    case Path::kListening: {
      std::lock_guard<std::mutex> guard(socket.mutex);
      return socket.channel != nullptr;
    }
    case Path::kUndecided:
      return socket.opted_in.load(std::memory_order_relaxed);
    default:
      return false;
  }
}

void GoKernel(Socket &socket, int fd, const char *why) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  switch (socket.path.load(std::memory_order_relaxed)) {
    case Path::kUndecided:
      socket.opted_in.store(false, std::memory_order_relaxed);
      socket.fallback_reason = why;
      break;
    case Path::kListening:
      // Connections not yet accepted find no channel and take kernel TCP at once.
      DisableListener(socket, fd);
      socket.opted_in.store(false, std::memory_order_relaxed);
      socket.fallback_reason = why;
      break;
    case Path::kConnecting:
      socket.kernel_wanted = why;
      break;
    case Path::kPending:
      if (ResolvePending(socket, fd, -1) == Resolve::kStillPending) {
        AbandonPending(socket, fd, why);
        break;
      }
      if (socket.path.load(std::memory_order_relaxed) != Path::kFast) break;
      [[fallthrough]];
    case Path::kFast: {
      FastConnection *fast = socket.fast.load(std::memory_order_relaxed);
      if (fast->WritesGoToKernel() && socket.fallback_reason != reason::kNone) break;
      fast->SwitchToKernel();
      socket.fallback_reason = why;
      Log(LogLevel::kInfo, "%s", why);
      break;
    }
    default:
      break;
  }
  PublishSocket(socket, fd);
}

void MakeProgress(Socket &socket, int fd) {
  const Path path = socket.path.load(std::memory_order_acquire);
  if (path != Path::kConnecting && path != Path::kPending) return;
  std::lock_guard<std::mutex> guard(socket.mutex);
  CheckConnectProgress(socket, fd);
  (void)ResolvePending(socket, fd, -1);
}

PendingView ViewPending(Socket &socket) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  PendingView view;
  view.channel_fd = socket.rendezvous_fd;
  view.early_room = EarlyRoom(socket);
  return view;
}

int CreateSocket(int domain, int type, int protocol) {
  const int fd = Real().socket(domain, type, protocol);
  if (fd >= 0 && IsTcpSocket(domain, type, protocol)) {
    Table().Set(fd, NewSocket(domain, (type & SOCK_NONBLOCK) != 0));
  }
  return fd;
}

int Connect(int fd, const struct sockaddr *address, socklen_t length) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return Real().connect(fd, address, length);
  std::lock_guard<std::mutex> guard(socket->mutex);
  const Path path = socket->path.load(std::memory_order_relaxed);
  if (path == Path::kConnecting) {
    const int ret = Real().connect(fd, address, length);
    const int error = errno;
    if (ret == 0 || error == EISCONN) {
      FinishConnect(*socket, fd);
    } else if (error != EALREADY && error != EINPROGRESS && error != EINTR) {
      FailConnect(*socket, fd);
    }
    errno = error;
    return ret;
  }
  if (path != Path::kUndecided) {
    // Connected (or listening) already: the kernel answers — 0 once after a non-blocking
    // connect completed (hiredis asks that way), then EISCONN — and the path stays as it is.
    return Real().connect(fd, address, length);
  }
  socket->role = stat::Role::kConnecting;
  const bool opted_in = socket->opted_in.load(std::memory_order_relaxed);
  const char *plain_reason = nullptr;
  if (GetConfig().disabled) {
    plain_reason = reason::kDisabled;  // said even where transparent mode would have opted in
  } else if (!opted_in) {
    plain_reason = reason::kNotOptedIn;
  } else if (!IsLoopback(address, length)) {
    plain_reason = reason::kNotLoopback;
  } else if (IoUringSeen()) {
    plain_reason = reason::kIoUring;
  } else if (const char *denied = PolicyDenies(GetPolicy(), address, length)) {
    plain_reason = denied;
  }
  int channel = -1;
  if (plain_reason == nullptr) {
    channel =
        sys::MoveHigh(Real().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    struct sockaddr_un channel_address;
    const socklen_t channel_length =
        rendezvous::ChannelAddress(PortOf(address, length), &channel_address);
    const int saved_errno = errno;
    if (channel < 0 ||
        Real().connect(channel, reinterpret_cast<struct sockaddr *>(&channel_address),
                       channel_length) != 0) {
      plain_reason = reason::kNoListenerChannel;
    } else {
      const uint64_t wanted = socket->program_rcvbuf > 0
                                  ? static_cast<uint64_t>(socket->program_rcvbuf)
                                  : kDefaultRingBytes;
      const rendezvous::Hello hello = {rendezvous::MakeHeader(Kind::kHello), fd,
                                       RingCapacityFor(wanted)};
      if (!rendezvous::SendMessage(channel, &hello, sizeof hello, nullptr, 0).ok() ||
          !rendezvous::SetClientMarker(fd, socket->family).ok()) {
        plain_reason = reason::kNoListenerChannel;
      }
    }
    errno = saved_errno;
    if (plain_reason != nullptr && channel >= 0) {
      rendezvous::CloseAll(&channel, 1);
      channel = -1;
    }
  }
  if (plain_reason != nullptr) {
    const int ret = Real().connect(fd, address, length);
    if (ret == 0 || errno == EINPROGRESS || errno == EINTR) {
      const int error = errno;
      DecideKernel(*socket, fd, plain_reason);
      errno = error;
    }
    return ret;
  }
  socket->rendezvous_fd = channel;
  sys::Own(channel);
  const int ret = Real().connect(fd, address, length);
  const int error = errno;
  if (ret == 0) {
    FinishConnect(*socket, fd);
  } else if (error == EINPROGRESS || error == EINTR) {
    // Non-blocking, or a signal arrived: the handshake goes on in the kernel.
    socket->path.store(Path::kConnecting, std::memory_order_release);
  } else {
    FailConnect(*socket, fd);
  }
  errno = error;
  return ret;
}

int Listen(int fd, int backlog) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return Real().listen(fd, backlog);
  std::lock_guard<std::mutex> guard(socket->mutex);
  const bool first = socket->path.load(std::memory_order_relaxed) == Path::kUndecided;
  if (first && socket->opted_in.load(std::memory_order_relaxed) && !GetConfig().disabled) {
    EnableListener(*socket, fd);
  }
  const int ret = Real().listen(fd, backlog);
  if (ret == 0) {
    socket->path.store(Path::kListening, std::memory_order_release);
    PublishSocket(*socket, fd);
  } else if (first) {
    const int error = errno;
    DisableListener(*socket, fd);
    errno = error;
  }
  return ret;
}

int Accept(int fd, struct sockaddr *address, socklen_t *length, int flags) {
  std::shared_ptr<Socket> listener = Table().Get(fd);
  const int accepted_fd = Real().accept4(fd, address, length, flags);
  if (accepted_fd < 0 || !listener) return accepted_fd;
  const int saved_errno = errno;
  std::shared_ptr<rendezvous::ListenerChannel> channel;
  const char *listener_reason = reason::kListenerNotOptedIn;
  auto accepted = NewSocket(listener->family, (flags & SOCK_NONBLOCK) != 0);
  accepted->role = stat::Role::kAccepting;
  {
    std::lock_guard<std::mutex> guard(listener->mutex);
    listener->has_accepted = true;
    channel = listener->channel;
    // Why the listener offers no fast path (policy, an option) is why its connections do not.
    if (listener->fallback_reason != reason::kNone) listener_reason = listener->fallback_reason;
    // The kernel copies these to the accepted socket; so do we.
    accepted->recv_timeout = listener->recv_timeout;
    accepted->send_timeout = listener->send_timeout;
    accepted->program_rcvbuf = listener->program_rcvbuf;
    accepted->rcvbuf_raised = listener->rcvbuf_raised;
    accepted->opted_in.store(listener->opted_in.load(std::memory_order_relaxed),
                             std::memory_order_relaxed);
    accepted->opted_in_explicitly.store(
        listener->opted_in_explicitly.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  {
    std::lock_guard<std::mutex> guard(accepted->mutex);
    if (channel) {
      RendezvousAccepted(*accepted, accepted_fd, *channel);
    } else {
      DecideKernel(*accepted, accepted_fd, listener_reason);
    }
    if (accepted->path.load(std::memory_order_relaxed) == Path::kKernel) {
      ApplyProgramRcvbuf(*accepted, accepted_fd);
    }
  }
  Table().Set(accepted_fd, accepted);
  errno = saved_errno;
  return accepted_fd;
}

int Shutdown(int fd, int how) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return Real().shutdown(fd, how);
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return Real().shutdown(fd, how);
  {
    std::lock_guard<std::mutex> guard(socket->mutex);
    CheckConnectProgress(*socket, fd);
    // A half-close before the Offer arrived: the fast end would not know of it. An Offer is
    // usually microseconds away (the server's accept runs): wait for it briefly; otherwise
    // this connection stays on kernel TCP (always safe, see AbandonPending).
    if (socket->path.load(std::memory_order_relaxed) == Path::kPending &&
        ResolvePending(*socket, fd, -1) == Resolve::kStillPending &&
        ResolvePending(*socket, fd, kOfferWaitMs) != Resolve::kResolved) {
      AbandonPending(*socket, fd, reason::kShutBeforeAccept);
    }
  }
  // The fast end is marked first: a thread that the kernel's shutdown wakes (in epoll_wait or
  // poll) must find it marked, or it reports the kernel's EPOLLHUP without the EPOLLIN and
  // EPOLLRDHUP that kernel TCP reports with it.
  if (FastConnection *fast = socket->fast.load(std::memory_order_acquire)) {
    if (how == SHUT_WR || how == SHUT_RDWR) fast->ShutdownWrite();
    if (how == SHUT_RD || how == SHUT_RDWR) fast->ShutdownRead();
  }
  return Real().shutdown(fd, how);
}

ssize_t Send(int fd, const struct msghdr *message, int flags) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return Real().sendmsg(fd, message, flags);
  const CallInFlight in_flight(*socket, fd);
  if (!in_flight.open()) {
    errno = EBADF;
    return -1;
  }
  size_t sent_early = 0;
  for (;;) {
    switch (socket->path.load(std::memory_order_acquire)) {
      case Path::kFast: {
        FastConnection *fast = socket->fast.load(std::memory_order_acquire);
        if ((flags & MSG_OOB) != 0 && sent_early == 0) {
          // Urgent data exists only on kernel TCP. Transparent mode moves the connection there
          // first (the urgent byte then follows every byte sent before it).
          if (socket->opted_in_explicitly.load(std::memory_order_relaxed) &&
              !fast->WritesGoToKernel()) {
            errno = EOPNOTSUPP;
            return -1;
          }
          GoKernel(*socket, fd, reason::kUrgentData);
          return Real().sendmsg(in_flight.kernel_fd(), message, flags);
        }
        SendCall call;
        call.nonblocking =
            socket->nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        call.wait = WaitFor(socket->send_timeout);
        if (sent_early == 0) {
          Result<size_t> sent =
              fast->Send(in_flight.kernel_fd(), message->msg_iov, message->msg_iovlen, call);
          if (sent.ok() && !call.nonblocking && sent.value() < IovLength(message) &&
              fast->WritesGoToKernel()) {
            // The connection moved to kernel TCP during this blocking call: the rest goes
            // there, as one blocking TCP send would have taken it all.
            return SendRestToKernel(in_flight.kernel_fd(), message, sent.value(), flags);
          }
          if (sent.ok()) return static_cast<ssize_t>(sent.value());
          if (sent.error() == kUseKernel) {
            RepublishIfMoved(*socket, fd);
            const ssize_t n = Real().sendmsg(in_flight.kernel_fd(), message, flags);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fast->NoteKernelFull();
            return n;
          }
          errno = sent.error();
          return -1;
        }
        // Part of this call went out while pending: send the rest the same way a blocking
        // TCP send would, and count it all.
        std::vector<uint8_t> rest;
        AppendFromIov(message, sent_early, IovLength(message) - sent_early, rest);
        struct iovec iov = {rest.data(), rest.size()};
        Result<size_t> sent = fast->Send(in_flight.kernel_fd(), &iov, 1, call);
        return static_cast<ssize_t>(sent_early + (sent.ok() ? sent.value() : 0));
      }
      case Path::kConnecting:
      case Path::kPending: {
        const bool nonblocking =
            socket->nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        std::unique_lock<std::mutex> guard(socket->mutex);
        CheckConnectProgress(*socket, fd);
        const Path now = socket->path.load(std::memory_order_relaxed);
        if (now == Path::kConnecting) {
          if (nonblocking) {
            errno = EAGAIN;
            return -1;
          }
          guard.unlock();
          WaitConnect(fd, socket->send_timeout);
          guard.lock();
          CheckConnectProgress(*socket, fd);
          if (socket->path.load(std::memory_order_relaxed) == Path::kConnecting) {
            errno = EAGAIN;
            return -1;
          }
          continue;
        }
        if (now != Path::kPending) continue;
        if (ResolvePending(*socket, fd, -1) == Resolve::kResolved) continue;
        if (!nonblocking) {
          // Bytes buffered here would wait for this program's next call, which may be a long
          // sleep: a blocking send waits briefly for the Offer (usually microseconds away),
          // and otherwise hands everything to kernel TCP, which delivers at once.
          const int timeout_ms = TimevalMs(socket->send_timeout);
          const Resolve waited = ResolvePending(
              *socket, fd, timeout_ms == 0 ? kOfferWaitMs : std::min(timeout_ms, kOfferWaitMs));
          if (waited == Resolve::kInterrupted && sent_early == 0) {
            errno = EINTR;
            return -1;
          }
          if (waited != Resolve::kResolved) AbandonPending(*socket, fd, reason::kSentBeforeAccept);
          continue;
        }
        const size_t total = IovLength(message);
        sent_early += AppendFromIov(message, sent_early, EarlyRoom(*socket), socket->early_bytes);
        if (sent_early == total) return static_cast<ssize_t>(total);
        if (nonblocking) {
          if (sent_early > 0) return static_cast<ssize_t>(sent_early);
          errno = EAGAIN;
          return -1;
        }
        const Resolve waited = ResolvePending(*socket, fd, TimevalMs(socket->send_timeout));
        if (waited == Resolve::kInterrupted || waited == Resolve::kTimedOut) {
          if (sent_early > 0) return static_cast<ssize_t>(sent_early);
          errno = waited == Resolve::kInterrupted ? EINTR : EAGAIN;
          return -1;
        }
        continue;
      }
      default: {
        if (sent_early == 0) return Real().sendmsg(fd, message, flags);
        std::vector<uint8_t> rest;
        AppendFromIov(message, sent_early, IovLength(message) - sent_early, rest);
        const ssize_t n = Real().send(fd, rest.data(), rest.size(), flags);
        return static_cast<ssize_t>(sent_early + (n > 0 ? static_cast<size_t>(n) : 0));
      }
    }
  }
}

ssize_t Recv(int fd, struct msghdr *message, int flags) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return Real().recvmsg(fd, message, flags);
  const CallInFlight in_flight(*socket, fd);
  if (!in_flight.open()) {
    errno = EBADF;
    return -1;
  }
  for (;;) {
    switch (socket->path.load(std::memory_order_acquire)) {
      case Path::kFast: {
        if ((flags & MSG_ERRQUEUE) != 0)
          return Real().recvmsg(in_flight.kernel_fd(), message, flags);
        FastConnection *fast = socket->fast.load(std::memory_order_acquire);
        if ((flags & MSG_OOB) != 0) {
          // Urgent data comes only on kernel TCP, and only once the connection moved there.
          if (fast->WritesGoToKernel())
            return Real().recvmsg(in_flight.kernel_fd(), message, flags);
          errno = EINVAL;  // as TCP says when no urgent byte is waiting
          return -1;
        }
        RecvCall call;
        call.nonblocking =
            socket->nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        call.peek = (flags & MSG_PEEK) != 0;
        call.wait_all = (flags & MSG_WAITALL) != 0;
        call.wait = WaitFor(socket->recv_timeout);
        Result<size_t> got = fast->Recv(message->msg_iov, message->msg_iovlen, call);
        if (!got.ok() && got.error() == kUseKernel) {
          RepublishIfMoved(*socket, fd);
          // The ring stream ended; the kernel connection holds the rest. Bytes already there
          // that the peer did not move there bypassed the rings: reset, never reorder.
          if (fast->BypassFound(in_flight.kernel_fd())) {
            Log(LogLevel::kError, "bytes bypassed the fast path; connection reset");
            errno = ECONNRESET;
            return -1;
          }
          // A peer that left cannot read what is still in our ring: hand it to the kernel
          // connection before waiting there for the reply.
          fast->SettleIfPeerLeft(in_flight.kernel_fd());
          return Real().recvmsg(in_flight.kernel_fd(), message, flags);
        }
        if (!got.ok()) {
          errno = got.error();
          return -1;
        }
        // What the kernel reports for TCP: no address, no control data, no flags.
        message->msg_namelen = 0;
        message->msg_controllen = 0;
        message->msg_flags = 0;
        return static_cast<ssize_t>(got.value());
      }
      case Path::kConnecting:
      case Path::kPending: {
        const bool nonblocking =
            socket->nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        std::unique_lock<std::mutex> guard(socket->mutex);
        CheckConnectProgress(*socket, fd);
        const Path now = socket->path.load(std::memory_order_relaxed);
        if (now == Path::kConnecting) {
          if (nonblocking) {
            errno = EAGAIN;
            return -1;
          }
          guard.unlock();
          WaitConnect(fd, socket->recv_timeout);
          guard.lock();
          CheckConnectProgress(*socket, fd);
          if (socket->path.load(std::memory_order_relaxed) == Path::kConnecting) {
            errno = EAGAIN;
            return -1;
          }
          continue;
        }
        if (now != Path::kPending) continue;
        if (ResolvePending(*socket, fd, -1) == Resolve::kResolved) continue;
        if (nonblocking) {
          errno = EAGAIN;
          return -1;
        }
        const Resolve waited = ResolvePending(*socket, fd, TimevalMs(socket->recv_timeout));
        if (waited == Resolve::kInterrupted) {
          errno = EINTR;
          return -1;
        }
        if (waited == Resolve::kTimedOut) {
          errno = EAGAIN;
          return -1;
        }
        continue;
      }
      default:
        return Real().recvmsg(fd, message, flags);
    }
  }
}

int SetSockOpt(int fd, int level, int name, const void *value, socklen_t length) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket || value == nullptr) return Real().setsockopt(fd, level, name, value, length);
  if (ClassOf(level, name) == OptionClass::kNeedsKernel && WouldBeFast(*socket)) {
    const OptionInfo *info = FindOption(level, name);
    if (socket->opted_in_explicitly.load(std::memory_order_relaxed)) {
      Log(LogLevel::kInfo, "setsockopt(%s): not supported on the fast path",
          info != nullptr ? info->option_name : "unknown option");
      errno = EOPNOTSUPP;
      return -1;
    }
    // Before the option takes effect: the kernel applies it to kernel TCP alone.
    Log(LogLevel::kInfo, "setsockopt(%s, %s): %s", info != nullptr ? info->level_name : "?",
        info != nullptr ? info->option_name : "unknown option", reason::kOptionNeedsKernel);
    GoKernel(*socket, fd, reason::kOptionNeedsKernel);
  }
  std::lock_guard<std::mutex> guard(socket->mutex);
  const Path path = socket->path.load(std::memory_order_relaxed);
  int int_value = 0;
  if (length >= sizeof(int)) std::memcpy(&int_value, value, sizeof int_value);
  // While the client marker is on, TTL settings wait until the handshake is over.
  if (path == Path::kConnecting && length >= sizeof(int) &&
      ((level == IPPROTO_IP && name == IP_TTL) ||
       (level == IPPROTO_IPV6 && name == IPV6_UNICAST_HOPS))) {
    if (int_value != -1 && (int_value < (name == IP_TTL ? 1 : 0) || int_value > 255)) {
      errno = EINVAL;
      return -1;
    }
    (name == IP_TTL ? socket->program_ttl : socket->program_hops) = int_value;
    return 0;
  }
  // A fast listener's MSS is its marker; the program's value is kept for when it stops.
  if (socket->channel && level == IPPROTO_TCP && name == TCP_MAXSEG && length >= sizeof(int)) {
    socket->program_maxseg = int_value;
    return 0;
  }
  const int ret = Real().setsockopt(fd, level, name, value, length);
  if (ret != 0 || level != SOL_SOCKET) {
    if (ret == 0 && level == IPPROTO_IP && name == IP_TTL) socket->program_ttl = int_value;
    if (ret == 0 && level == IPPROTO_IPV6 && name == IPV6_UNICAST_HOPS) {
      socket->program_hops = int_value;
    }
    return ret;
  }
  // SO_*TIMEO_NEW take a struct __kernel_sock_timeval: two 64-bit fields, as timeval here.
  static_assert(sizeof(struct timeval) == 16 && sizeof(time_t) == 8);
  const bool receive_timeout = name == SO_RCVTIMEO || name == SO_RCVTIMEO_NEW;
  const bool send_timeout = name == SO_SNDTIMEO || name == SO_SNDTIMEO_NEW;
  if ((receive_timeout || send_timeout) && length >= sizeof(struct timeval)) {
    std::memcpy(receive_timeout ? &socket->recv_timeout : &socket->send_timeout, value,
                sizeof(struct timeval));
  } else if (name == SO_RCVBUF || name == SO_RCVBUFFORCE) {
    socket->program_rcvbuf = int_value;
    if (socket->channel && int_value < kMarkerSafeRcvbuf) {
      // A fast listener keeps its window large enough for its marker (see rcvbuf_raised).
      Real().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kMarkerSafeRcvbuf, sizeof kMarkerSafeRcvbuf);
      socket->rcvbuf_raised = true;
    } else {
      socket->rcvbuf_raised = false;
    }
  }
  return ret;
}

int GetSockOpt(int fd, int level, int name, void *value, socklen_t *length) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  // A program polling SO_ERROR after a non-blocking connect moves the rendezvous along.
  if (socket && level == SOL_SOCKET && name == SO_ERROR) MakeProgress(*socket, fd);
  const int ret = Real().getsockopt(fd, level, name, value, length);
  if (ret == 0 && socket && level == SOL_SOCKET && name == SO_RCVBUF && value != nullptr &&
      *length >= sizeof(int)) {
    std::lock_guard<std::mutex> guard(socket->mutex);
    if (socket->rcvbuf_raised && socket->path.load(std::memory_order_relaxed) != Path::kKernel) {
      const int reported = KernelStyleRcvbuf(socket->program_rcvbuf);
      std::memcpy(value, &reported, sizeof reported);
    }
  }
  return ret;
}

namespace {

// O_ASYNC / FIOASYNC: SIGIO comes from the kernel socket's own traffic, which a fast connection
// does not have. Transparent mode moves the socket to kernel TCP first; the explicit API says
// EOPNOTSUPP. Returns false (errno set) when the call must fail.
bool AllowSignalDrivenIo(Socket &socket, int fd) {
  if (!WouldBeFast(socket)) return true;
  if (socket.opted_in_explicitly.load(std::memory_order_relaxed)) {
    errno = EOPNOTSUPP;
    return false;
  }
  GoKernel(socket, fd, reason::kSignalDrivenIo);
  return true;
}

}  // namespace

int Ioctl(int fd, unsigned long request, void *argument) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return Real().ioctl(fd, request, argument);
  MakeProgress(*socket, fd);
  FastConnection *fast = socket->fast.load(std::memory_order_acquire);
  if (fast != nullptr && (request == FIONREAD || request == SIOCOUTQ || request == SIOCOUTQNSD)) {
    if (argument == nullptr) {
      errno = EFAULT;
      return -1;
    }
    const size_t bytes = request == FIONREAD ? fast->ReadableBytes() : fast->UnsentBytes();
    if (bytes == 0 && request == FIONREAD) return Real().ioctl(fd, request, argument);
    const int value = static_cast<int>(std::min<size_t>(bytes, INT32_MAX));
    std::memcpy(argument, &value, sizeof value);
    return 0;
  }
  if (request == FIOASYNC && argument != nullptr) {
    int on = 0;
    std::memcpy(&on, argument, sizeof on);
    if (on != 0 && !AllowSignalDrivenIo(*socket, fd)) return -1;
  }
  const int ret = Real().ioctl(fd, request, argument);
  if (ret == 0 && request == FIONBIO && argument != nullptr) {
    int on;
    std::memcpy(&on, argument, sizeof on);
    socket->nonblocking.store(on != 0, std::memory_order_relaxed);
  }
  return ret;
}

int Fcntl(int fd, int command, long argument) {
  if (command == F_SETFL && (argument & O_ASYNC) != 0) {
    if (std::shared_ptr<Socket> socket = Table().Get(fd)) {
      if (!AllowSignalDrivenIo(*socket, fd)) return -1;
    }
  }
  const int ret = Real().fcntl(fd, command, argument);
  if (ret < 0) return ret;
  if (command == F_DUPFD || command == F_DUPFD_CLOEXEC) {
    ShareDescriptor(fd, ret);
    return ret;
  }
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (socket && command == F_SETFL) {
    socket->nonblocking.store((argument & O_NONBLOCK) != 0, std::memory_order_relaxed);
  }
  return ret;
}

int SetFastPath(int fd, bool enable) {
  if (Real().fcntl(fd, F_GETFD, 0) < 0) return -1;  // EBADF
  struct stat info;
  if (fstat(fd, &info) != 0) return -1;
  if (!S_ISSOCK(info.st_mode)) {
    errno = ENOTSOCK;
    return -1;
  }
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) socket = Adopt(fd);
  if (!socket) {
    errno = EINVAL;  // a socket, but not a TCP one
    return -1;
  }
  if (GetConfig().disabled && enable) {
    errno = EOPNOTSUPP;
    return -1;
  }
  std::lock_guard<std::mutex> guard(socket->mutex);
  switch (socket->path.load(std::memory_order_relaxed)) {
    case Path::kUndecided: {
      struct sockaddr_storage peer {};
      socklen_t length = sizeof peer;
      if (getpeername(fd, reinterpret_cast<struct sockaddr *>(&peer), &length) == 0) {
        errno = EISCONN;
        return -1;
      }
      socket->opted_in.store(enable, std::memory_order_relaxed);
      socket->opted_in_explicitly.store(enable, std::memory_order_relaxed);
      return 0;
    }
    case Path::kListening:
      if (socket->has_accepted) {
        errno = EBUSY;
        return -1;
      }
      socket->opted_in.store(enable, std::memory_order_relaxed);
      socket->opted_in_explicitly.store(enable, std::memory_order_relaxed);
      if (enable && !socket->channel) EnableListener(*socket, fd);
      if (!enable) DisableListener(*socket, fd);
      return 0;
    case Path::kConnecting:
      errno = EALREADY;
      return -1;
    default:
      errno = EISCONN;
      return -1;
  }
}

int PathOf(int fd) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) {
    if (Real().fcntl(fd, F_GETFD, 0) < 0) return -1;
    return LOOPFAST_PATH_NONE;
  }
  MakeProgress(*socket, fd);
  switch (socket->path.load(std::memory_order_acquire)) {
    case Path::kFast:
      return socket->fast.load(std::memory_order_acquire)->UsesKernel() ? LOOPFAST_PATH_KERNEL
                                                                        : LOOPFAST_PATH_FAST;
    case Path::kKernel:
    case Path::kPending:
      return LOOPFAST_PATH_KERNEL;
    default:
      return LOOPFAST_PATH_NONE;
  }
}

const char *FallbackReason(int fd) {
  std::shared_ptr<Socket> socket = Table().Get(fd);
  if (!socket) return "";
  std::lock_guard<std::mutex> guard(socket->mutex);
  return ReportedFallbackReason(*socket);
}

namespace {
// The connections BeforeFork counted the coming child in, to take back if fork fails.
// Weak: a parent that closes its copy right after fork must free it (a strong reference kept
// the doorbells open until the next fork — found by the kill -9 campaign).
thread_local std::vector<std::weak_ptr<Socket>> held_for_child;
}  // namespace

// How long fork() waits for an Offer that is on its way (a listener in another process that
// has accepted answers within microseconds).
constexpr int kForkOfferWaitMs = 20;

// A connection still deciding its path would be shared with the child: both processes could
// read (or hang up) the one rendezvous channel and take different paths. The parent settles it
// alone, before the child exists: it takes an Offer that is there (or comes within
// kForkOfferWaitMs); otherwise the connection takes kernel TCP, for both processes.
void SettleBeforeFork(Socket &socket, int fd) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  SettleDeciding(socket, fd, kForkOfferWaitMs, reason::kForkedWhilePending);
}

void BeforeFork() {
  std::vector<std::pair<int, std::shared_ptr<Socket>>> deciding;
  FdTable::Instance().ForEach([&](int fd, const std::shared_ptr<Socket> &socket) {
    const Path path = socket->path.load(std::memory_order_acquire);
    if (path == Path::kPending || path == Path::kConnecting) deciding.emplace_back(fd, socket);
  });
  for (auto &[fd, socket] : deciding) SettleBeforeFork(*socket, fd);
  stat::BeforeFork();
  held_for_child.clear();
  FdTable::Instance().ForEach([](int, const std::shared_ptr<Socket> &socket) {
    // Before the child exists: the parent may close its copy the moment fork returns.
    if (FastConnection *fast = socket->fast.load(std::memory_order_acquire)) {
      fast->AddHolder();
      held_for_child.push_back(socket);
    }
  });
}

void ForkReturned(bool failed) {
  if (failed) {
    for (const std::weak_ptr<Socket> &held : held_for_child) {
      if (std::shared_ptr<Socket> socket = held.lock()) {
        socket->fast.load(std::memory_order_acquire)->DropHolder();
      }
    }
  }
  held_for_child.clear();
}

void AfterFork(bool in_child) {
  stat::AfterFork(in_child);
  if (in_child) held_for_child.clear();
  FdTable::Instance().ForEach([](int, const std::shared_ptr<Socket> &socket) {
    // Channels are set before a listener is published and never replaced while it listens.
    if (socket->channel) socket->channel->MarkShared();
  });
}

}  // namespace loopfast::ops
