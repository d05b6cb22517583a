#include "rendezvous/listener_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "rendezvous/peer_identity.h"
#include "rendezvous/unix_channel.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::rendezvous {
namespace {

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

// PeerPidfd: a pidfd for the process at the other end of a Unix socket; kPidfdUnsupported on a
// kernel without SO_PEERPIDFD (before 6.5: then only the /proc check stands), kPidfdRefused when
// the kernel has none to give (the sender is gone).
constexpr int kPidfdUnsupported = -1;
constexpr int kPidfdRefused = -2;

int PeerPidfd(int fd) {
  int pidfd = -1;
  socklen_t length = sizeof pidfd;
  const int saved_errno = errno;
  const int ret = sys::Real().getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &length);
  const int error = errno;
  errno = saved_errno;
  if (ret == 0 && pidfd >= 0) return pidfd;
  return error == ENOPROTOOPT || error == EOPNOTSUPP ? kPidfdUnsupported : kPidfdRefused;
}

// True while the process a pidfd names has not exited (signal 0 checks without sending).
bool ProcessAlive(int pidfd) {
  const int saved_errno = errno;
  const long ret = syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0);
  const bool alive = ret == 0 || errno == EPERM;  // EPERM: it exists, another user's
  errno = saved_errno;
  return alive;
}

constexpr size_t kPruneThreshold = 64;
// Hellos one process keeps for connections it has not accepted yet: enough for a burst of
// pending clients, bounded so that strangers cannot make it hoard descriptors. Past it the
// oldest are rejected (those clients fall back to kernel TCP, safely).
constexpr size_t kMaxHeld = 96;
constexpr int kHelloGraceMs = 100;

std::atomic<uint64_t> rejected_total{0};

void CountRejected() { rejected_total.fetch_add(1, std::memory_order_relaxed); }

int64_t NowMs() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

uint64_t InodeOf(int fd) {
  struct stat info;
  return fstat(fd, &info) == 0 ? static_cast<uint64_t>(info.st_ino) : 0;
}

}  // namespace

uint64_t ListenerChannel::RejectedTotal() { return rejected_total.load(std::memory_order_relaxed); }

Result<std::shared_ptr<ListenerChannel>> ListenerChannel::Open(uint16_t port) {
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Errno{errno};
  struct sockaddr_un address;
  const socklen_t length = ChannelAddress(port, &address);
  if (sys::Real().bind(fd, reinterpret_cast<struct sockaddr *>(&address), length) != 0 ||
      sys::Real().listen(fd, SOMAXCONN) != 0) {
    const int error = errno;
    sys::Real().close(fd);
    return Errno{error};
  }
  int group[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, group) != 0) {
    const int error = errno;
    sys::Real().close(fd);
    return Errno{error};
  }
  return std::shared_ptr<ListenerChannel>(
      new ListenerChannel(port, fd, group[0], group[1], InodeOf(fd)));
}

ListenerChannel::ListenerChannel(uint16_t port, int listen_fd, int group_rx, int group_tx,
                                 uint64_t inode)
    : port_(port),
      listen_fd_(sys::MoveHigh(listen_fd)),
      group_rx_(sys::MoveHigh(group_rx)),
      group_tx_(sys::MoveHigh(group_tx)),
      channel_inode_(inode) {
  sys::Own(listen_fd_);
  sys::Own(group_rx_);
  sys::Own(group_tx_);
}

ListenerChannel::~ListenerChannel() {
  for (Held &held : held_) CloseAll(&held.channel_fd, 1);
  const int fds[3] = {listen_fd_, group_rx_, group_tx_};
  CloseAll(fds, 3);
}

void ListenerChannel::Drop(Held &held, RejectReason reason) {
  const Reject reject = {MakeHeader(Kind::kReject), reason, 0};
  (void)SendMessage(held.channel_fd, &reject, sizeof reject, nullptr, 0);
  CloseAll(&held.channel_fd, 1);
  held.channel_fd = -1;
  CountRejected();
}

bool ListenerChannel::ReadHello(Held &held) {
  Hello hello;
  int fds[kMaxMessageFds];
  int fd_count = 0;
  Result<size_t> got =
      ReceiveMessage(held.channel_fd, &hello, sizeof hello, fds, &fd_count, /*blocking=*/false);
  if (!got.ok() && (got.error() == EAGAIN || got.error() == EWOULDBLOCK)) return true;  // later
  CloseAll(fds, fd_count);
  if (!got.ok() || got.value() == 0) {  // the client left
    CloseAll(&held.channel_fd, 1);
    held.channel_fd = -1;
    return false;
  }
  if (fd_count != 0 || !IsMessage(&hello, got.value(), Kind::kHello, sizeof(Hello))) {
    Drop(held, RejectReason::kUnverified);
    return false;
  }
  struct ucred sender;
  socklen_t length = sizeof sender;
  if (getsockopt(held.channel_fd, SOL_SOCKET, SO_PEERCRED, &sender, &length) != 0) {
    Drop(held, RejectReason::kUnverified);
    return false;
  }
  // The pid names the sender only while the sender lives: one that sent a Hello and exited
  // could have its pid taken by the real client, whose socket then sits at the claimed
  // number (a process of any user can arrange that by cycling pids, then receive the Offer
  // on the channel connection it kept). A pidfd pins the sender itself: taken before the
  // /proc lookup and found alive after it, the pid cannot have changed hands in between.
  const int sender_pidfd = PeerPidfd(held.channel_fd);
  if (sender_pidfd == kPidfdRefused) {
    Drop(held, RejectReason::kUnverified);
    return false;
  }
  Result<uint64_t> inode = SocketInodeOf(sender.pid, hello.client_fd);
  const bool sender_alive = sender_pidfd < 0 || ProcessAlive(sender_pidfd);
  if (sender_pidfd >= 0) sys::Real().close(sender_pidfd);
  if (!inode.ok() || !sender_alive) {
    // Not a socket the sender holds, a process we may not inspect, or a sender that is gone:
    // never trusted.
    Drop(held, RejectReason::kUnverified);
    return false;
  }
  held.hello_read = true;
  held.hello = hello;
  held.pid = sender.pid;
  held.uid = sender.uid;
  held.inode = inode.value();
  return true;
}

bool ListenerChannel::ReadHeldHello(Held &held) {
  if (!ReadHello(held)) return false;
  if (held.hello_read || NowMs() - held.accepted_ms <= kHelloGraceMs) return true;
  // A client sends its Hello microseconds after its connect; this one said nothing for the
  // whole grace period: not a client, never hold it.
  Drop(held, RejectReason::kUnverified);
  return false;
}

void ListenerChannel::ForwardToGroup(Held &held) {
  const int fds[2] = {held.channel_fd, listen_fd_};
  Status sent;
  if (held.hello_read) {
    Forward forward{};
    forward.header = MakeHeader(Kind::kForward);
    forward.hello = held.hello;
    forward.client_pid = held.pid;
    forward.client_uid = held.uid;
    forward.client_inode = held.inode;
    sent = SendMessage(group_tx_, &forward, sizeof forward, fds, 2);
  } else {
    const ForwardUnread forward = {MakeHeader(Kind::kForwardUnread), held.accepted_ms};
    sent = SendMessage(group_tx_, &forward, sizeof forward, fds, 2);
  }
  if (sent.ok()) {
    CloseAll(&held.channel_fd, 1);
    held.channel_fd = -1;
  }
}

bool ListenerChannel::ReceiveForwarded(Held *held) {
  union {
    Forward read;
    ForwardUnread unread;
  } forward;
  int fds[kMaxMessageFds];
  int fd_count = 0;
  for (;;) {
    Result<size_t> got =
        ReceiveMessage(group_rx_, &forward, sizeof forward, fds, &fd_count, /*blocking=*/false);
    if (!got.ok() && (got.error() == EPROTO || got.error() == EINTR)) continue;
    if (!got.ok() || got.value() == 0) return false;
    // Only a process holding this very channel can attach it: that is the membership proof.
    const bool member = fd_count == 2 && InodeOf(fds[1]) == channel_inode_;
    const bool read = IsMessage(&forward, got.value(), Kind::kForward, sizeof(Forward)) &&
                      IsMessage(&forward.read.hello, sizeof(Hello), Kind::kHello, sizeof(Hello));
    const bool unread =
        IsMessage(&forward, got.value(), Kind::kForwardUnread, sizeof(ForwardUnread));
    if (!member || !(read || unread)) {
      CloseAll(fds, fd_count);
      CountRejected();
      continue;
    }
    CloseAll(&fds[1], 1);
    *held = Held{};
    held->channel_fd = sys::MoveHigh(fds[0]);
    sys::Own(held->channel_fd);
    if (unread) {
      held->accepted_ms = forward.unread.accepted_ms;
      return true;
    }
    held->hello_read = true;
    held->hello = forward.read.hello;
    held->pid = forward.read.client_pid;
    held->uid = forward.read.client_uid;
    held->inode = forward.read.client_inode;
    return true;
  }
}

void ListenerChannel::HandOnToGroup() {
  if (!shared_) return;
  for (Held &held : held_) ForwardToGroup(held);
  std::erase_if(held_, [](const Held &held) { return held.channel_fd < 0; });
}

void ListenerChannel::DropBeyondCap() {
  // Silent connections go first: a stranger opening many cannot push out real clients' Hellos.
  for (size_t i = 0; held_.size() > kMaxHeld && i < held_.size();) {
    if (held_[i].hello_read) {
      ++i;
      continue;
    }
    Drop(held_[i], RejectReason::kResources);
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
  }
  while (held_.size() > kMaxHeld) {
    Drop(held_.front(), RejectReason::kResources);
    held_.erase(held_.begin());
  }
}

void ListenerChannel::PruneGone() {
  // Clients whose connect failed, or which went plain, have closed their channel.
  std::vector<Held> kept;
  for (Held &held : held_) {
    struct pollfd pfd = {held.channel_fd, POLLIN, 0};
    if (sys::Real().poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)) != 0) {
      CloseAll(&held.channel_fd, 1);
      continue;
    }
    kept.push_back(held);
  }
  held_.swap(kept);
}

Result<FoundHello> ListenerChannel::FindHello(int accepted_fd, int timeout_ms) {
  Result<SocketOwner> peer = PeerSocket(accepted_fd);
  if (!peer.ok()) return Errno{peer.error()};
  // /proc/<pid>/fd of another user's process is closed to us unless we are root, so its Hello
  // can never be verified. It is still read (and answered with a Reject, so the client does
  // not wait), but the search ends after one pass instead of waiting.
  const uid_t self = geteuid();
  const bool unverifiable = self != 0 && peer.value().uid != self;
  const uint64_t expected_inode = peer.value().inode;
  const int64_t deadline = NowMs() + timeout_ms;
  std::lock_guard<std::mutex> guard(mutex_);
  auto take = [this](size_t index) {
    FoundHello found;
    found.channel_fd = held_[index].channel_fd;
    found.hello = held_[index].hello;
    found.client_pid = held_[index].pid;
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(index));
    // In a group, what we picked up on the way belongs to others: never keep it while this
    // process goes back to other work.
    HandOnToGroup();
    DropBeyondCap();
    return found;
  };
  for (;;) {
    for (size_t i = 0; i < held_.size();) {
      if (!held_[i].hello_read && !ReadHeldHello(held_[i])) {
        held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      if (held_[i].hello_read && held_[i].inode == expected_inode) return take(i);
      ++i;
    }
    Held forwarded;
    while (ReceiveForwarded(&forwarded)) {
      if (!forwarded.hello_read && !ReadHeldHello(forwarded)) continue;
      held_.push_back(forwarded);
      if (forwarded.hello_read && forwarded.inode == expected_inode) {
        return take(held_.size() - 1);
      }
    }
    for (;;) {
      const int channel = sys::MoveHigh(
          sys::Real().accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (channel < 0) break;
      Held held;
      held.channel_fd = channel;
      held.accepted_ms = NowMs();
      sys::Own(channel);
      // Accepted between a client's connect and its send, it is still silent: held unread
      // (its Hello is microseconds away; later passes, or the group, read it).
      if (!ReadHello(held)) continue;
      held_.push_back(held);
      if (held.hello_read && held.inode == expected_inode) return take(held_.size() - 1);
    }
    if (shared_) {
      HandOnToGroup();
    } else if (held_.size() > kPruneThreshold) {
      PruneGone();
      DropBeyondCap();
    }
    if (unverifiable) return Errno{EACCES};
    // Alone (no group), one pass settles it: a client queues its Hello before it sends its
    // SYN, so the Hello of this connection was there to read. None matched: its sender no
    // longer holds the socket at the number it named (it dup'd and closed it, or handed it
    // on), and waiting longer would only stall this accept.
    if (!shared_) {
      struct pollfd ended = {accepted_fd, POLLRDHUP, 0};
      const bool gave_up = sys::Real().poll(&ended, 1, 0) == 1 &&
                           (ended.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
      return Errno{gave_up ? ECONNRESET : ENOENT};  // ECONNRESET: as below, it gave up
    }
    const int64_t left = deadline - NowMs();
    if (left <= 0) return Errno{ETIMEDOUT};
    // A client that ended its side of the TCP connection before getting an Offer has given
    // the fast path up (it closes or shuts down only after abandoning): stop waiting.
    // A group re-reads what it handed on, so in a group wait on new clients only, briefly.
    struct pollfd wait[3] = {
        {accepted_fd, POLLRDHUP, 0}, {listen_fd_, POLLIN, 0}, {group_rx_, POLLIN, 0}};
    sys::Real().poll(wait, shared_ ? 2 : 3,
                     static_cast<int>(std::min<int64_t>(left, shared_ ? 2 : 20)));
    if ((wait[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return Errno{ECONNRESET};
  }
}

}  // namespace loopfast::rendezvous
