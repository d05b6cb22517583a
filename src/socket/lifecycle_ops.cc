// A socket's life apart from connecting, listening and moving bytes: creation, the decisions
// (fast, kernel), shutdown and the last close, moving to kernel TCP (exec, options, io_uring),
// and fork.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

#include "config/config.h"
#include "session/markers.h"
#include "session/peer_lookup.h"
#include "socket/change_watch.h"
#include "socket/socket_internal.h"
#include "socket/socket_ops.h"
#include "socket/socket_stat.h"
#include "stat/registry.h"
#include "sys/owned_fds.h"
#include "wait/bell.h"

namespace loopfast::ops {
namespace {

// Set once the process has set up an io_uring: its operations bypass libc, and so loopfast.
std::atomic<bool> io_uring_seen{false};

// How long fork() waits for a connect under way on a fast-capable socket to end (on loopback a
// handshake takes microseconds).
constexpr int kForkConnectWaitMs = 20;

}  // namespace

bool IoUringSeen() { return io_uring_seen.load(std::memory_order_relaxed); }

bool IsTcpSocket(int domain, int type, int protocol) {
  return (domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM &&
         (protocol == 0 || protocol == IPPROTO_TCP);
}

std::shared_ptr<Socket> NewSocket(int family, bool nonblocking) {
  auto socket = std::make_shared<Socket>(family);
  const Config &config = GetConfig();
  socket->opted_in.store(config.default_on && !config.disabled, std::memory_order_relaxed);
  socket->nonblocking.store(nonblocking, std::memory_order_relaxed);
  return socket;
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
    socket->stage.store(Stage::kListening, std::memory_order_relaxed);
  } else if (getpeername(fd, reinterpret_cast<struct sockaddr *>(&peer), &peer_length) == 0) {
    socket->stage.store(Stage::kKernel, std::memory_order_relaxed);
  }
  Table().Set(fd, socket);
  return socket;
}

void DecideKernel(Socket &socket, int fd, const char *why) {
  socket.stage.store(Stage::kKernel, std::memory_order_release);
  if (socket.opted_in.load(std::memory_order_relaxed) || why == reason::kDisabled) {
    socket.fallback_reason = why;
    Log(why == reason::kClientResetBeforeAccept ? LogLevel::kDebug : LogLevel::kInfo,
        "kernel TCP: %s", why);
  }
  PublishSocket(socket, fd);
}

void RestoreMarker(Socket &socket, int fd) {
  if (!socket.options.marker_on) return;
  socket.options.marker_on = false;
  session::RestoreClientMarker(fd, socket.family, socket.options.ttl, socket.options.hops);
}

void ApplyProgramRcvbuf(const Socket &socket, int fd) {
  if (!socket.options.rcvbuf_raised || socket.options.rcvbuf <= 0) return;
  const int saved_errno = errno;
  Real().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &socket.options.rcvbuf,
                    sizeof socket.options.rcvbuf);
  errno = saved_errno;
}

uint32_t ReceiveLimit(const Socket &socket) {
  return session::RingLimitFor(socket.options.rcvbuf > 0
                                   ? static_cast<uint64_t>(socket.options.rcvbuf)
                                   : session::kDefaultRingBytes);
}

void BecomeFast(Socket &socket, int fd, std::unique_ptr<FastConnection> fast,
                const KnownEnds &known) {
  socket.fast_owner = std::move(fast);
  socket.fast.store(socket.fast_owner.get(), std::memory_order_release);
  socket.stage.store(Stage::kFast, std::memory_order_release);
  PublishSocket(socket, fd, known);
  Log(LogLevel::kDebug, "fast path established (%s side)",
      socket.role == stat::Role::kAccepting ? "accepting" : "connecting");
}

wait::SleepSpec SleepFor(const struct timeval &timeout) {
  wait::SleepSpec spec;
  spec.spin_ns = GetConfig().spin_ns;
  spec.adaptive_spin = GetConfig().spin_adaptive;  // the connection's policy decides
  spec.timeout = timeout;
  wait::StartTimeout(&spec);  // the program's call starts now
  return spec;
}

int TimevalMs(const struct timeval &timeout) {
  if (timeout.tv_sec == 0 && timeout.tv_usec == 0) return 0;
  const long ms = timeout.tv_sec * 1000 + (timeout.tv_usec + 999) / 1000;
  return static_cast<int>(std::clamp<long>(ms, 1, 1 << 30));
}

std::shared_ptr<Socket> Lookup(int fd) { return Table().Get(fd); }

bool IsTracked(int fd) { return Table().Has(fd); }

int CreateSocket(int domain, int type, int protocol) {
  const int fd = Real().socket(domain, type, protocol);
  if (fd >= 0 && IsTcpSocket(domain, type, protocol)) {
    Table().Set(fd, NewSocket(domain, (type & SOCK_NONBLOCK) != 0));
  }
  return fd;
}

int Shutdown(Socket &socket, int fd, int how) {
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return Real().shutdown(fd, how);
  MakeProgress(socket, fd);
  // The fast end is marked first: a thread that the kernel's shutdown wakes (in epoll_wait or
  // poll) must find it marked, or it reports the kernel's EPOLLHUP without the EPOLLIN and
  // EPOLLRDHUP that kernel TCP reports with it.
  if (FastConnection *fast = socket.fast.load(std::memory_order_acquire)) {
    if (how == SHUT_WR || how == SHUT_RDWR) fast->ShutdownWrite();
    if (how == SHUT_RD || how == SHUT_RDWR) fast->ShutdownRead();
  }
  return Real().shutdown(fd, how);
}

// Drops one descriptor's hold; the last one ends this process's use of the socket. `fd` is
// still open (the caller closes it afterwards, or dup2 replaces it).
void ReleaseDescriptor(const std::shared_ptr<Socket> &socket, int fd) {
  if (socket->descriptors.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::lock_guard<std::mutex> guard(socket->mutex);
  socket->closed.store(true);
  switch (socket->stage.load(std::memory_order_relaxed)) {
    case Stage::kConnecting:
      // The handshake may still complete and the server accept: it then finds the claim
      // declined and takes kernel TCP (end of file, as for any connection closed early).
      if (socket->connecting && !socket->connecting->session->Decline(socket->connecting->slot)) {
        // Bound already: the end is fast; close it as such.
        SettleConnecting(*socket, fd, 0, reason::kNone);
        if (socket->fast_owner) EndFast(*socket, fd);
      }
      socket->connecting.reset();
      break;
    case Stage::kFast: {
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
  socket->listener.reset();
}

void MoveToKernel(Socket &socket, int fd) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  if (socket.stage.load(std::memory_order_relaxed) == Stage::kConnecting) {
    SettleConnecting(socket, fd, 0, reason::kHandedOver);
  }
  if (socket.stage.load(std::memory_order_relaxed) == Stage::kFast) {
    socket.fast.load(std::memory_order_relaxed)->MoveToKernel();
    RestoreMarker(socket, fd);
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
  switch (socket.stage.load(std::memory_order_acquire)) {
    case Stage::kFast:
      return !socket.fast.load(std::memory_order_acquire)->WritesGoToKernel();
    case Stage::kConnecting:
      return true;
    case Stage::kListening: {
      std::lock_guard<std::mutex> guard(socket.mutex);
      return socket.listener != nullptr;
    }
    case Stage::kUndecided:
      return socket.opted_in.load(std::memory_order_relaxed);
    default:
      return false;
  }
}

void GoKernel(Socket &socket, int fd, const char *why) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  switch (socket.stage.load(std::memory_order_relaxed)) {
    case Stage::kUndecided:
      socket.opted_in.store(false, std::memory_order_relaxed);
      socket.fallback_reason = why;
      break;
    case Stage::kListening:
      // Connections not yet accepted find no group and take kernel TCP at once.
      DisableListener(socket, fd);
      socket.opted_in.store(false, std::memory_order_relaxed);
      socket.fallback_reason = why;
      break;
    case Stage::kConnecting:
      socket.connecting->kernel_wanted = why;
      break;
    case Stage::kFast: {
      FastConnection *fast = socket.fast.load(std::memory_order_relaxed);
      if (fast->WritesGoToKernel() && socket.fallback_reason != reason::kNone) break;
      fast->SwitchToKernel();
      RestoreMarker(socket, fd);
      socket.fallback_reason = why;
      Log(LogLevel::kInfo, "%s", why);
      break;
    }
    default:
      break;
  }
  PublishSocket(socket, fd);
}

namespace {
// The connections BeforeFork counted the coming child in, to take back if fork fails.
// Weak: a parent that closes its copy right after fork must free it.
thread_local std::vector<std::weak_ptr<Socket>> held_for_child;
}  // namespace

void BeforeFork() {
  std::vector<std::pair<int, std::shared_ptr<Socket>>> connecting;
  Table().ForEach([&](int fd, const std::shared_ptr<Socket> &socket) {
    if (socket->stage.load(std::memory_order_acquire) == Stage::kConnecting) {
      connecting.emplace_back(fd, socket);
    }
  });
  // A connect under way would be finished by whichever process looks first, each with its own
  // end: the parent finishes it alone, before the child exists.
  for (auto &[fd, socket] : connecting) {
    std::lock_guard<std::mutex> guard(socket->mutex);
    SettleConnecting(*socket, fd, kForkConnectWaitMs, reason::kForkedWhileConnecting);
  }
  stat::BeforeFork();
  held_for_child.clear();
  Table().ForEach([](int, const std::shared_ptr<Socket> &socket) {
    // Before the child exists: the parent may close its copy the moment fork returns.
    if (FastConnection *fast = socket->fast.load(std::memory_order_acquire)) {
      fast->AddHolder();
      held_for_child.push_back(socket);
    }
    std::lock_guard<std::mutex> guard(socket->mutex);
    if (socket->listener) socket->listener->group->AddHolder();
  });
}

void ForkReturned(bool failed) {
  if (failed) {
    for (const std::weak_ptr<Socket> &held : held_for_child) {
      if (std::shared_ptr<Socket> socket = held.lock()) {
        socket->fast.load(std::memory_order_acquire)->DropHolder();
      }
    }
    Table().ForEach([](int, const std::shared_ptr<Socket> &socket) {
      std::lock_guard<std::mutex> guard(socket->mutex);
      if (socket->listener) socket->listener->group->DropHolder();
    });
  }
  held_for_child.clear();
}

void AfterFork(bool in_child) {
  if (in_child) {
    // First: the lookups below and in the program's next calls must not wait for a thread
    // that the child does not have.
    Table().ResetInChild();
    ResetEpollInChild();
  }
  stat::AfterFork(in_child);
  if (!in_child) return;
  sys::NoteForkChild();
  held_for_child.clear();
  wait::ForgetWakeSetInChild();
  session::ForgetLookupSocketInChild();
  ForgetHintSubscriptionsInChild();
}

}  // namespace loopfast::ops
