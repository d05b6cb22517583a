// A plain program (it does not link loopfast) for transparent-mode tests: run it under
// LD_PRELOAD=libloopfast.so LOOPFAST_DEFAULT=1, as `loopfast run` does.
//
//   stream_peer listen [OPTIONS]       prints "port N", accepts one connection (--port N: on N)
//   stream_peer connect PORT [OPTIONS]
// Options:
//   --bytes N        bytes each way (default 1 MiB); both directions stream at once
//   --loop poll|epoll-et|blocking   how it waits (default poll)
//   --move-at N      after N bytes sent, do --move-how (default: never)
//   --move-how filter|rcvlowat|splice|io_uring|oob|fioasync   (fioasync: SIGIO counted, "sigio=N")
//   --move-early yes  move as soon as N bytes are sent, even before any byte came from the peer
//                    (by default a non-blocking sender first waits for one: the move is then
//                    mid-stream on the path the connection took, not before the listening
//                    program accepted, where loopfast may still hold the bytes sent)
//   --io-uring-first yes   set up an io_uring before the connection exists
//   --hold-ms N      when done, print "holding ..." and keep the connection open N ms
//   --accept-delay-ms N  (listen) wait N ms after "port N" before accepting
// Exits 77 when this kernel refuses io_uring.
// Prints one line: "ok sent=N received=N before=PATH after=PATH received_at_move=N sigio=N
// reason=..." and exits 0, or
// "FAIL ..." and exits 1. Every received byte is checked against the peer's pattern.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

volatile sig_atomic_t sigio_count = 0;
void CountSigio(int) { sigio_count = sigio_count + 1; }

uint8_t PatternByte(int seed, uint64_t i) {
  return static_cast<uint8_t>((i * 131 + uint64_t(seed) * 7 + (i >> 13)) % 251);
}

[[noreturn]] void Fail(const std::string &what) {
  std::printf("FAIL %s (errno %d %s)\n", what.c_str(), errno, std::strerror(errno));
  std::fflush(stdout);
  std::exit(1);
}

// Sets up an io_uring through syscall(2), as liburing-less programs do; it is left open.
void SetUpIoUring() {
  io_uring_params params = {};
  if (syscall(SYS_io_uring_setup, 4, &params) < 0) {
    std::printf("io_uring unavailable (errno %d %s)\n", errno, std::strerror(errno));
    std::fflush(stdout);
    std::exit(77);
  }
}

// loopfast's own answer, when the library is loaded; "none" otherwise.
std::string PathOf(int fd) {
  using PathFn = int (*)(int);
  auto path_of = reinterpret_cast<PathFn>(dlsym(RTLD_DEFAULT, "loopfast_path_of"));
  if (path_of == nullptr) return "none";
  switch (path_of(fd)) {
    case 2:
      return "fast";
    case 1:
      return "kernel";
    default:
      return "none";
  }
}

std::string ReasonOf(int fd) {
  using ReasonFn = const char *(*)(int);
  auto reason_of = reinterpret_cast<ReasonFn>(dlsym(RTLD_DEFAULT, "loopfast_fallback_reason"));
  const char *reason = reason_of != nullptr ? reason_of(fd) : "";
  return reason != nullptr ? reason : "";
}

struct Options {
  uint64_t bytes = 1 << 20;
  std::string loop = "poll";
  uint64_t move_at = 0;
  std::string move_how = "filter";
  bool move_early = false;
  bool io_uring_first = false;
  uint16_t port = 0;
  uint64_t hold_ms = 0;
  uint64_t accept_delay_ms = 0;
};

struct Stream {
  int fd;
  int my_seed;
  int peer_seed;
  Options options;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t received_at_move = 0;  // what had come when it moved
  bool moved = false;
  std::string before = "none";
  std::vector<uint8_t> out = std::vector<uint8_t>(1 << 16);
  std::vector<uint8_t> in = std::vector<uint8_t>(1 << 16);

  void Move() {
    before = PathOf(fd);
    moved = true;
    received_at_move = received;
    if (options.move_how == "filter") {
      sock_filter accept_all[] = {{BPF_RET | BPF_K, 0, 0, 0xffffffff}};
      sock_fprog program = {1, accept_all};
      if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) != 0) {
        Fail("SO_ATTACH_FILTER");
      }
    } else if (options.move_how == "rcvlowat") {
      const int one = 1;
      if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one) != 0) Fail("SO_RCVLOWAT");
    } else if (options.move_how == "oob") {
      // One urgent byte: out of band, so the pattern stream is unchanged for the reader.
      if (send(fd, "!", 1, MSG_OOB | MSG_NOSIGNAL) != 1) Fail("send MSG_OOB");
    } else if (options.move_how == "fioasync") {
      struct sigaction action = {};
      action.sa_handler = CountSigio;
      action.sa_flags = SA_RESTART;
      sigaction(SIGIO, &action, nullptr);
      if (fcntl(fd, F_SETOWN, getpid()) != 0) Fail("F_SETOWN");
      int on = 1;
      if (ioctl(fd, FIOASYNC, &on) != 0) Fail("FIOASYNC");
    } else if (options.move_how == "io_uring") {
      SetUpIoUring();
    } else if (options.move_how == "splice") {
      // The next 4 KiB of the stream go through a pipe and splice.
      int pipe_fds[2];
      if (pipe(pipe_fds) != 0) Fail("pipe");
      const size_t n = static_cast<size_t>(std::min<uint64_t>(4096, options.bytes - sent));
      for (size_t i = 0; i < n; ++i) out[i] = PatternByte(my_seed, sent + i);
      if (write(pipe_fds[1], out.data(), n) != static_cast<ssize_t>(n)) Fail("pipe write");
      size_t moved_bytes = 0;
      while (moved_bytes < n) {
        const ssize_t m = splice(pipe_fds[0], nullptr, fd, nullptr, n - moved_bytes, 0);
        if (m < 0 && (errno == EAGAIN || errno == EINTR)) {
          pollfd writable = {fd, POLLOUT, 0};
          poll(&writable, 1, 1000);
          continue;
        }
        if (m <= 0) Fail("splice");
        moved_bytes += static_cast<size_t>(m);
      }
      sent += n;
      close(pipe_fds[0]);
      close(pipe_fds[1]);
    } else {
      Fail("unknown --move-how " + options.move_how);
    }
  }

  // Sends what it can now; false when nothing could be sent.
  bool SendSome(bool blocking) {
    if (options.move_at != 0 && !moved && sent >= options.move_at &&
        (blocking || received > 0 || options.move_early)) {
      Move();
    }
    if (sent >= options.bytes) return false;
    uint64_t limit = options.bytes;
    if (options.move_at != 0 && !moved) limit = std::min(limit, options.move_at);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), limit - sent));
    for (size_t i = 0; i < n; ++i) out[i] = PatternByte(my_seed, sent + i);
    const ssize_t m = send(fd, out.data(), n, MSG_NOSIGNAL | (blocking ? 0 : MSG_DONTWAIT));
    if (m < 0) {
      if (errno == EAGAIN || errno == EINTR) return false;
      Fail("send");
    }
    sent += static_cast<uint64_t>(m);
    if (sent == options.bytes && shutdown(fd, SHUT_WR) != 0) Fail("shutdown");
    return m > 0;
  }

  // Receives what it can now; false when nothing came. Sets `ended` at end of stream.
  bool RecvSome(bool blocking, bool *ended) {
    const ssize_t m = recv(fd, in.data(), in.size(), blocking ? 0 : MSG_DONTWAIT);
    if (m < 0) {
      if (errno == EAGAIN || errno == EINTR) return false;
      Fail("recv");
    }
    if (m == 0) {
      *ended = true;
      return false;
    }
    for (ssize_t i = 0; i < m; ++i) {
      if (in[size_t(i)] != PatternByte(peer_seed, received + uint64_t(i))) {
        Fail("byte " + std::to_string(received + uint64_t(i)) + " differs");
      }
    }
    received += static_cast<uint64_t>(m);
    return true;
  }
};

void RunPoll(Stream &s) {
  bool ended = false;
  while (!ended || s.sent < s.options.bytes) {
    pollfd entry = {
        s.fd, static_cast<short>((ended ? 0 : POLLIN) | (s.sent < s.options.bytes ? POLLOUT : 0)),
        0};
    if (poll(&entry, 1, 10000) == 0) Fail("poll: 10 s without an event");
    if (entry.revents & (POLLIN | POLLHUP | POLLERR)) {
      while (s.RecvSome(false, &ended)) {
      }
    }
    if (entry.revents & POLLOUT) {
      while (s.SendSome(false)) {
      }
    }
  }
}

void RunEpollEdge(Stream &s) {
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event interest = {};
  interest.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, s.fd, &interest) != 0) Fail("epoll_ctl");
  bool ended = false;
  while (!ended || s.sent < s.options.bytes) {
    epoll_event event;
    const int n = epoll_wait(epfd, &event, 1, 10000);
    if (n == 0) Fail("epoll_wait: 10 s without an edge");
    if (n < 0) continue;
    // Edge-triggered: drain both directions until EAGAIN.
    while (!ended && s.RecvSome(false, &ended)) {
    }
    while (s.SendSome(false)) {
    }
  }
  close(epfd);
}

void RunBlocking(Stream &s) {
  std::thread writer([&s] {
    while (s.sent < s.options.bytes) s.SendSome(true);
  });
  bool ended = false;
  while (!ended) s.RecvSome(true, &ended);
  writer.join();
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) Fail("usage: stream_peer listen|connect [PORT] [OPTIONS]");
  alarm(60);  // a hang becomes a failure
  const bool listening = std::strcmp(argv[1], "listen") == 0;
  int next = 2;
  uint16_t port = 0;
  if (!listening) {
    if (argc < 3) Fail("connect needs a port");
    port = static_cast<uint16_t>(std::atoi(argv[2]));
    next = 3;
  }
  Options options;
  for (int i = next; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    if (name == "--bytes") {
      options.bytes = std::strtoull(value.c_str(), nullptr, 10);
    } else if (name == "--loop") {
      options.loop = value;
    } else if (name == "--move-at") {
      options.move_at = std::strtoull(value.c_str(), nullptr, 10);
    } else if (name == "--move-how") {
      options.move_how = value;
    } else if (name == "--move-early") {
      options.move_early = value == "yes";
    } else if (name == "--port") {
      options.port = static_cast<uint16_t>(std::atoi(value.c_str()));
    } else if (name == "--hold-ms") {
      options.hold_ms = std::strtoull(value.c_str(), nullptr, 10);
    } else if (name == "--accept-delay-ms") {
      options.accept_delay_ms = std::strtoull(value.c_str(), nullptr, 10);
    } else if (name == "--io-uring-first") {
      options.io_uring_first = value == "yes";
    } else {
      Fail("unknown option " + name);
    }
  }
  if (options.io_uring_first) SetUpIoUring();
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd;
  if (listening) {
    address.sin_port = htons(options.port);
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof address) ||
        listen(listener, 8) != 0) {
      Fail("listen");
    }
    socklen_t length = sizeof address;
    getsockname(listener, reinterpret_cast<sockaddr *>(&address), &length);
    std::printf("port %u\n", ntohs(address.sin_port));
    std::fflush(stdout);
    if (options.accept_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options.accept_delay_ms));
    }
    fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) Fail("accept");
    close(listener);
  } else {
    address.sin_port = htons(port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
      Fail("connect");
    }
  }
  Stream stream{fd, listening ? 1 : 0, listening ? 0 : 1, options};
  if (options.loop == "blocking") {
    RunBlocking(stream);
  } else {
    fcntl(fd, F_SETFL, O_NONBLOCK);
    if (options.loop == "epoll-et") {
      RunEpollEdge(stream);
    } else {
      RunPoll(stream);
    }
  }
  if (options.hold_ms > 0) {
    // For observers (loopfast stat): the connection stays as the transfer left it.
    std::printf("holding pid=%d fd=%d after=%s\n", static_cast<int>(getpid()), fd,
                PathOf(fd).c_str());
    std::fflush(stdout);
    usleep(static_cast<useconds_t>(options.hold_ms * 1000));
  }
  const std::string after = PathOf(fd);
  if (!stream.moved) stream.before = after;
  std::printf(
      "ok sent=%llu received=%llu before=%s after=%s received_at_move=%llu sigio=%d reason=%s\n",
      static_cast<unsigned long long>(stream.sent),
      static_cast<unsigned long long>(stream.received), stream.before.c_str(), after.c_str(),
      static_cast<unsigned long long>(stream.received_at_move), static_cast<int>(sigio_count),
      ReasonOf(fd).c_str());
  std::fflush(stdout);
  close(fd);
  return 0;
}
