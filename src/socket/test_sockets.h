// For unit tests of the socket layer (socket_stage_test.cc, epoll_set_test.cc,
// epoll_hints_test.cc), in one process, without fork or preload: descriptors closed through the
// library, loopback listeners and connections made through the ops API, fast sockets over a
// test arena registered in the descriptor table as the interposer leaves them, and an epoll
// descriptor driven through ops::EpollCtl and ops::EpollWait.
#ifndef LOOPFAST_SOCKET_TEST_SOCKETS_H_
#define LOOPFAST_SOCKET_TEST_SOCKETS_H_

#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "fast/test_pair.h"
#include "socket/fd_table.h"
#include "socket/socket_internal.h"
#include "socket/socket_ops.h"

namespace loopfast::sockettest {

// A descriptor closed through ops::Close (the library's close: it lets go of the Socket). A
// move-assigned one hands its old descriptor to the source, which closes it in turn.
class OpsFd {
 public:
  explicit OpsFd(int fd = -1) : fd_(fd) {}
  OpsFd(OpsFd &&other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OpsFd &operator=(OpsFd &&other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~OpsFd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ops::Close(std::exchange(fd_, -1));
  }

 private:
  int fd_;
};

// The Socket the library keeps for `fd` (null when it tracks none).
inline std::shared_ptr<Socket> SocketOf(const OpsFd &fd) { return ops::Lookup(fd.get()); }

// An IPv4 TCP socket made through the library, opted in through the explicit API or out.
inline OpsFd TcpSocket(bool opted_in, bool nonblocking = false) {
  OpsFd fd(ops::CreateSocket(AF_INET,
                             SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
  if (fd.valid() && ops::SetFastPath(fd.get(), opted_in) != 0) fd.Reset();
  return fd;
}

inline struct sockaddr_in Loopback(uint16_t port) {
  struct sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

inline uint16_t LocalPort(const OpsFd &fd) {
  struct sockaddr_in address = {};
  socklen_t length = sizeof address;
  if (getsockname(fd.get(), reinterpret_cast<struct sockaddr *>(&address), &length) != 0) return 0;
  return ntohs(address.sin_port);
}

// Binds `fd` to 127.0.0.1:`port` (0: any), with SO_REUSEPORT when asked.
inline bool BindLoopback(const OpsFd &fd, uint16_t port, bool reuse_port = false) {
  const int one = 1;
  const struct sockaddr_in address = Loopback(port);
  return fd.valid() &&
         (!reuse_port || setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0) &&
         bind(fd.get(), reinterpret_cast<const struct sockaddr *>(&address), sizeof address) == 0;
}

// A listener on 127.0.0.1 made through ops::Listen (invalid on failure).
inline OpsFd ListenOn(bool opted_in, uint16_t port = 0, bool reuse_port = false) {
  OpsFd fd = TcpSocket(opted_in);
  if (!BindLoopback(fd, port, reuse_port) || ops::Listen(*SocketOf(fd), fd.get(), 16) != 0) {
    return OpsFd();
  }
  return fd;
}

// connect() through the library: its return value (errno set as the call left it).
inline int ConnectTo(const OpsFd &client, uint16_t port) {
  const struct sockaddr_in address = Loopback(port);
  return ops::Connect(*SocketOf(client), client.get(),
                      reinterpret_cast<const struct sockaddr *>(&address), sizeof address);
}

// The next connection on `listener`, accepted through the library within `ms` (or invalid).
inline OpsFd AcceptWithin(const OpsFd &listener, int ms = 2000) {
  struct pollfd pfd = {listener.get(), POLLIN, 0};
  if (poll(&pfd, 1, ms) != 1) return OpsFd();
  return OpsFd(ops::Accept(*SocketOf(listener), listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

// A connection made through the library in this process: its listener and both ends.
struct OpsConnection {
  OpsFd listener;
  OpsFd client;
  OpsFd server;
  OpsConnection(bool listener_opted_in, bool client_opted_in)
      : listener(ListenOn(listener_opted_in)), client(TcpSocket(client_opted_in)) {
    if (listener.valid() && client.valid() && ConnectTo(client, LocalPort(listener)) == 0) {
      server = AcceptWithin(listener);
    }
  }
  bool ok() const { return server.valid(); }
};

// send() through the library (MSG_NOSIGNAL): bytes sent or -1.
inline ssize_t SendBytes(const OpsFd &fd, const void *data, size_t size) {
  struct iovec iov = {const_cast<void *>(data), size};
  struct msghdr message = {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  return ops::Send(*SocketOf(fd), fd.get(), &message, MSG_NOSIGNAL);
}

// Reads `size` bytes through the library, waiting at most `ms` in all (ops::Poll, which sees
// both the rings and the kernel socket). Returns how many arrived.
inline size_t RecvWithin(const OpsFd &fd, void *data, size_t size, int ms = 2000) {
  const uint64_t deadline = fasttest::NowNs() + uint64_t(ms) * 1000000;
  size_t got = 0;
  while (got < size && fasttest::NowNs() < deadline) {
    struct pollfd pfd = {fd.get(), POLLIN, 0};
    const struct timespec slice = {0, 100 * 1000 * 1000};
    if (ops::Poll(&pfd, 1, &slice, nullptr) < 0) break;
    struct iovec iov = {static_cast<char *>(data) + got, size - got};
    struct msghdr message = {};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    const ssize_t n = ops::Recv(*SocketOf(fd), fd.get(), &message, MSG_DONTWAIT);
    if (n == 0) break;
    if (n > 0) got += static_cast<size_t>(n);
  }
  return got;
}

// Fast connections over one test arena (session/test_arena.h): `count` bound slots of one
// session, each end a fast Socket in the descriptor table at its end of a loopback kernel
// connection, as the interposer leaves a fast socket.
class FastSockets {
 public:
  struct End {
    int fd = -1;
    std::shared_ptr<Socket> socket;
    FastConnection *fast = nullptr;
  };
  static constexpr uint32_t kFirstSlot = 3;

  explicit FastSockets(size_t count, uint32_t limit = 16384) : count_(count) {
    for (size_t i = 0; i < count; ++i) {
      const uint32_t slot = arena_.BoundSlot(static_cast<uint32_t>(kFirstSlot + i), limit);
      int kernel[2];
      fasttest::KernelConnection(kernel);
      server_.push_back(MakeEnd(kernel[0], FastConnection::Open(arena_.server, slot, limit)));
      client_.push_back(MakeEnd(kernel[1], FastConnection::Open(arena_.client, slot, limit)));
    }
  }
  ~FastSockets() {
    for (const std::vector<End> *ends : {&server_, &client_}) {
      for (const End &end : *ends) {
        if (end.fd < 0) continue;
        FdTable::Instance().Remove(end.fd);
        close(end.fd);
      }
    }
  }
  FastSockets(const FastSockets &) = delete;
  FastSockets &operator=(const FastSockets &) = delete;

  bool ok() const {
    for (size_t i = 0; i < count_; ++i) {
      if (server_[i].fast == nullptr || client_[i].fast == nullptr) return false;
    }
    return true;
  }
  const End &server(size_t i) const { return server_[i]; }
  const End &client(size_t i) const { return client_[i]; }
  session::TestArena &arena() { return arena_; }
  static uint32_t slot(size_t i) { return static_cast<uint32_t>(kFirstSlot + i); }

  // One byte from the client end of connection `i` to its server end (never waits).
  bool Write(size_t i, char byte = 'x') {
    struct iovec iov = {&byte, 1};
    const Transfer sent =
        client_[i].fast->Send(client_[i].fd, &iov, 1, fasttest::SendWith(true, 0));
    return sent.outcome == Outcome::kDone && sent.bytes == 1;
  }
  // Reads what is waiting at the server end of connection `i` (never waits): how many bytes.
  size_t Drain(size_t i) {
    char buffer[256];
    size_t total = 0;
    for (;;) {
      struct iovec iov = {buffer, sizeof buffer};
      const Transfer got =
          server_[i].fast->Recv(server_[i].fd, &iov, 1, fasttest::RecvWith(true, 0));
      if (got.outcome != Outcome::kDone || got.bytes == 0) return total;
      total += got.bytes;
    }
  }

 private:
  static End MakeEnd(int fd, Result<std::unique_ptr<FastConnection>> fast) {
    End end;
    end.fd = fd;
    if (fd < 0 || !fast.ok()) return end;
    end.socket = std::make_shared<Socket>(AF_INET);
    end.socket->opted_in.store(true);
    end.fast = fast.value().get();
    {
      std::lock_guard<std::mutex> guard(end.socket->mutex);
      ops::BecomeFast(*end.socket, fd, std::move(fast.value()));
    }
    FdTable::Instance().Set(fd, end.socket);
    return end;
  }

  const size_t count_;
  session::TestArena arena_;
  std::vector<End> server_;
  std::vector<End> client_;
};

// A program's epoll descriptor, driven as the interposer drives it: ops::EpollCtl with what
// FindEpoll and Lookup find, ops::EpollWait once the library keeps a set for it (the kernel's
// epoll_wait before). Over descriptors the library does not track this is the kernel's epoll.
class Epoll {
 public:
  Epoll() : fd_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~Epoll() {
    if (fd_ >= 0) ops::Close(fd_);  // forgets the set, as the interposer's close does
  }
  Epoll(const Epoll &) = delete;
  Epoll &operator=(const Epoll &) = delete;
  int fd() const { return fd_; }
  bool kept() const { return ops::FindEpoll(fd_) != nullptr; }

  // epoll_ctl: 0, or the errno it failed with. `no_event`: a null event pointer.
  int Ctl(int op, int fd, uint32_t events = EPOLLIN, uint64_t data = 0, bool no_event = false) {
    struct epoll_event event = {};
    event.events = events;
    event.data.u64 = data;
    const int ret = ops::EpollCtl(ops::FindEpoll(fd_), fd_, op, fd, ops::Lookup(fd),
                                  no_event ? nullptr : &event);
    return ret == 0 ? 0 : errno;
  }
  // epoll_wait for at most `ms` milliseconds (0: a look): the events, in the order reported.
  std::vector<struct epoll_event> Wait(int ms, int max = 16) {
    std::vector<struct epoll_event> events(static_cast<size_t>(max));
    const struct timespec timeout = {ms / 1000, (ms % 1000) * 1000000L};
    int n;
    if (std::shared_ptr<ops::EpollSet> set = ops::FindEpoll(fd_)) {
      n = ops::EpollWait(*set, fd_, events.data(), max, &timeout, nullptr);
    } else {
      n = epoll_wait(fd_, events.data(), max, ms);
    }
    events.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return events;
  }
  // The data of each event, in order.
  std::vector<uint64_t> WaitData(int ms, int max = 16) {
    std::vector<uint64_t> data;
    for (const struct epoll_event &event : Wait(ms, max)) data.push_back(event.data.u64);
    return data;
  }

 private:
  int fd_;
};

}  // namespace loopfast::sockettest

#endif  // LOOPFAST_SOCKET_TEST_SOCKETS_H_
