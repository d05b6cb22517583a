// connect(): the connecting side's verbs. An opted-in connect to a loopback listener claims a
// slot in this process's session with that listener's group before the SYN leaves (and marks
// the SYN), then reads the listener's marker: from that moment the connection is fast, and the
// program's first bytes go to the ring whether or not the server has accepted.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "capture/capture.h"
#include "config/config.h"
#include "config/policy.h"
#include "session/markers.h"
#include "socket/address.h"
#include "socket/socket_internal.h"
#include "socket/socket_ops.h"
#include "socket/socket_stat.h"

namespace loopfast::ops {
namespace {

const char *ReasonFor(session::NoSession why) {
  switch (why) {
    case session::NoSession::kNoChannel:
      return reason::kNoListenerChannel;
    case session::NoSession::kNotListeners:
      return reason::kChannelNotListeners;
    case session::NoSession::kNoListener:
      return reason::kNoListenerChannel;
    case session::NoSession::kNoSlot:
      return reason::kNoSlot;
    case session::NoSession::kOtherOwner:
      return reason::kOtherUser;
    case session::NoSession::kResources:
      break;
  }
  return reason::kResources;
}

// The connection is established: read the listener's marker. Caller holds the mutex.
void FinishConnect(Socket &socket, int fd) {
  std::unique_ptr<ConnectingStage> stage = std::move(socket.connecting);
  if (!stage) return;
  const bool marked = session::ListenerMarkerSeen(fd);
  if (!marked || stage->kernel_wanted != nullptr) {
    // Kernel TCP, unless a process of the group bound the slot already (it is fast then).
    if (stage->session->Decline(stage->slot)) {
      RestoreMarker(socket, fd);
      DecideKernel(
          socket, fd,
          stage->kernel_wanted != nullptr ? stage->kernel_wanted : reason::kListenerNotOptedIn);
      ApplyProgramRcvbuf(socket, fd);
      return;
    }
  } else {
    stage->session->Connected(stage->slot);
  }
  Result<std::unique_ptr<FastConnection>> fast =
      FastConnection::Open(stage->session, stage->slot, stage->rx_limit);
  if (!fast.ok()) {
    // No memory for this end's locks. The server may have bound the claim (then it keeps the
    // slot until it is done): fail loudly rather than lose bytes.
    stage->session->Decline(stage->slot);
    struct sockaddr unspecified = {};
    unspecified.sa_family = AF_UNSPEC;
    Real().connect(fd, &unspecified, sizeof unspecified);
    RestoreMarker(socket, fd);
    DecideKernel(socket, fd, reason::kResources);
    return;
  }
  if (capture::Sink *sink = capture::Sink::Get()) {
    fast.value()->StartCapture(sink, fd, /*client=*/true);
  }
  FastConnection *connection = fast.value().get();
  KnownEnds ends;
  ends.peer = reinterpret_cast<const struct sockaddr *>(&stage->destination);
  BecomeFast(socket, fd, std::move(fast.value()), ends);
  if (stage->kernel_wanted != nullptr) {
    // Bound before the program's request could decline it: the request moves it now.
    connection->SwitchToKernel();
    socket.fallback_reason = stage->kernel_wanted;
    PublishSocket(socket, fd);
  }
}

void FailConnect(Socket &socket, int fd) {
  if (socket.connecting) socket.connecting->session->Abandon(socket.connecting->slot);
  socket.connecting.reset();
  RestoreMarker(socket, fd);
  socket.stage.store(Stage::kUndecided, std::memory_order_release);
}

// Why this connect takes kernel TCP before trying anything, or null.
const char *PlainReason(const Socket &socket, const struct sockaddr *address, socklen_t length) {
  if (GetConfig().disabled) return reason::kDisabled;  // said even where transparent mode would
  if (!socket.opted_in.load(std::memory_order_relaxed)) return reason::kNotOptedIn;
  if (!IsLoopback(address, length)) return reason::kNotLoopback;
  if (IoUringSeen()) return reason::kIoUring;
  return PolicyDenies(GetPolicy(), address, length);
}

}  // namespace

void CheckConnectProgress(Socket &socket, int fd) {
  if (socket.stage.load(std::memory_order_relaxed) != Stage::kConnecting) return;
  struct tcp_info info {};
  socklen_t length = sizeof info;
  const int saved_errno = errno;
  const int ret = Real().getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length);
  errno = saved_errno;
  if (ret != 0) return;
  if (info.tcpi_state == TCP_ESTABLISHED || info.tcpi_state == TCP_CLOSE_WAIT) {
    FinishConnect(socket, fd);
  } else if (info.tcpi_state == TCP_CLOSE) {
    FailConnect(socket, fd);
  }
}

void WaitConnect(int fd, const struct timeval &timeout) {
  struct pollfd pfd = {fd, POLLOUT, 0};
  const int ms = TimevalMs(timeout);
  Real().poll(&pfd, 1, ms == 0 ? -1 : ms);
}

void SettleConnecting(Socket &socket, int fd, int wait_ms, const char *why) {
  const int saved_errno = errno;
  CheckConnectProgress(socket, fd);
  if (socket.stage.load(std::memory_order_relaxed) == Stage::kConnecting && wait_ms > 0) {
    struct pollfd pfd = {fd, POLLOUT, 0};
    Real().poll(&pfd, 1, wait_ms);
    CheckConnectProgress(socket, fd);
  }
  if (socket.stage.load(std::memory_order_relaxed) == Stage::kConnecting) {
    // Still under way: both processes will use kernel TCP (a server binding the claim now
    // finds it declined).
    if (socket.connecting->session->Decline(socket.connecting->slot)) {
      socket.connecting.reset();
      RestoreMarker(socket, fd);
      DecideKernel(socket, fd, why);
    } else {
      socket.connecting->kernel_wanted = why;  // bound already: fast, then moved at once
      FinishConnect(socket, fd);
    }
  }
  errno = saved_errno;
}

void MakeProgress(Socket &socket, int fd) {
  if (socket.stage.load(std::memory_order_acquire) != Stage::kConnecting) return;
  std::lock_guard<std::mutex> guard(socket.mutex);
  CheckConnectProgress(socket, fd);
}

int Connect(Socket &socket, int fd, const struct sockaddr *address, socklen_t length) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  const Stage current = socket.stage.load(std::memory_order_relaxed);
  if (current == Stage::kConnecting) {
    const int ret = Real().connect(fd, address, length);
    const int error = errno;
    if (ret == 0 || error == EISCONN) {
      FinishConnect(socket, fd);
    } else if (error != EALREADY && error != EINPROGRESS && error != EINTR) {
      FailConnect(socket, fd);
    }
    errno = error;
    return ret;
  }
  if (current != Stage::kUndecided) {
    // Connected (or listening) already: the kernel answers — 0 once after a non-blocking
    // connect completed (hiredis asks that way), then EISCONN — and the stage stays as it is.
    return Real().connect(fd, address, length);
  }
  socket.role = stat::Role::kConnecting;
  const char *plain_reason = PlainReason(socket, address, length);
  std::unique_ptr<ConnectingStage> stage;
  if (plain_reason == nullptr) {
    const int saved_errno = errno;
    // The socket's owner picks the session (the listener's side checks it is the session's
    // user); its cookie names it in the claim, and still does after its process closed it.
    struct stat info;
    uint64_t cookie = 0;
    socklen_t cookie_length = sizeof cookie;
    if (fstat(fd, &info) != 0 ||
        Real().getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &cookie_length) != 0) {
      plain_reason = reason::kResources;
    } else {
      session::ClientSession::Opened opened =
          session::ClientSession::For(address, static_cast<uid_t>(info.st_uid));
      if (!opened.session) {
        plain_reason = ReasonFor(opened.why);
      } else if (const char *denied = PolicyDeniesUsers(
                     GetPolicy(), static_cast<uid_t>(info.st_uid), opened.session->peer_uid())) {
        plain_reason = denied;  // the listener's user is another one
      } else {
        const uint32_t rx_limit = ReceiveLimit(socket);
        Result<uint32_t> claimed = opened.session->Claim(cookie, rx_limit);
        if (!claimed.ok()) {
          plain_reason = reason::kNoSlot;
        } else if (!session::SetClientMarker(fd, socket.family).ok()) {
          opened.session->Abandon(claimed.value());
          plain_reason = reason::kResources;
        } else {
          stage = std::make_unique<ConnectingStage>();
          std::memcpy(&stage->destination, address,
                      std::min<size_t>(length, sizeof stage->destination));
          socket.stat_inode = static_cast<uint64_t>(info.st_ino);
          stage->session = std::move(opened.session);
          stage->slot = claimed.value();
          stage->rx_limit = rx_limit;
          socket.options.marker_on = true;
        }
      }
    }
    errno = saved_errno;
  }
  if (plain_reason != nullptr) {
    const int ret = Real().connect(fd, address, length);
    if (ret == 0 || errno == EINPROGRESS || errno == EINTR) {
      const int error = errno;
      DecideKernel(socket, fd, plain_reason);
      errno = error;
    }
    return ret;
  }
  socket.connecting = std::move(stage);
  const int ret = Real().connect(fd, address, length);
  const int error = errno;
  if (ret == 0) {
    FinishConnect(socket, fd);
  } else if (error == EINPROGRESS || error == EINTR) {
    // Non-blocking, or a signal arrived: the handshake goes on in the kernel.
    socket.stage.store(Stage::kConnecting, std::memory_order_release);
  } else {
    FailConnect(socket, fd);
  }
  errno = error;
  return ret;
}

}  // namespace loopfast::ops
