// Reliability campaigns (issue 6, items 1 and 2), each a short form for the suite and a long
// form run with an environment variable (docs/reliability.md):
//
//   ReliabilityTest.RandomizedTransfers   random sizes, flags, blocking/non-blocking mixes,
//                                         poll/epoll LT/ET, half-closes, both directions, client
//                                         and server in separate processes; byte-exact; fast.
//   ReliabilityTest.KillNineAtRandomPoints kill -9 of a random side at a random point; the
//                                         survivor sees EOF or ECONNRESET within 1 s, leaks
//                                         no descriptor, and nothing is left in the file system.
//
// LOOPFAST_CAMPAIGN_RUNS / LOOPFAST_CAMPAIGN_KILLS set the counts (defaults 200 / 60);
// LOOPFAST_CAMPAIGN_BASE fixes the base seed; LOOPFAST_CAMPAIGN_SEED=N runs the single run N
// (the number every failure prints, with the command that reproduces it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

using Clock = std::chrono::steady_clock;

double MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

uint64_t EnvNumber(const char *name, uint64_t fallback) {
  const char *value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoull(value, nullptr, 10);
}

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string Errno() { return std::strerror(errno); }

void SleepUs(long us) {
  timespec nap = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {
  }
}

// ---- Child processes that report one line to the parent ------------------------------------

struct Child {
  pid_t pid = -1;
  int report = -1;  // read end of the child's report pipe
};

// Forks; the child runs `body` under alarm(alarm_s) and sends its text back. The child's text
// starts with "OK" on success.
Child StartChild(const std::function<std::string()> &body, unsigned alarm_s) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return {};
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    alarm(alarm_s);
    signal(SIGPIPE, SIG_IGN);
    std::string text;
    try {
      text = body();
    } catch (...) {
      text = "exception";
    }
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = write(pipe_fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += size_t(n);
    }
    _exit(text.rfind("OK", 0) == 0 ? 0 : 3);
  }
  close(pipe_fds[1]);
  if (pid < 0) {
    close(pipe_fds[0]);
    return {};
  }
  fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  return {pid, pipe_fds[0]};
}

// Waits up to `timeout_ms` (then kills); returns the child's text, or a description of how it
// ended when it did not exit 0.
std::string FinishChild(Child *child, int timeout_ms) {
  if (child->pid <= 0) return "fork failed";
  std::string how;
  const auto start = Clock::now();
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(child->pid, &status, WNOHANG);
    if (done == child->pid) {
      if (WIFSIGNALED(status)) {
        how = std::string("killed by signal ") + strsignal(WTERMSIG(status)) +
              (WTERMSIG(status) == SIGALRM ? " (its alarm: hung)" : "");
      } else if (WEXITSTATUS(status) != 0) {
        how = "exit status " + std::to_string(WEXITSTATUS(status));
      }
      break;
    }
    if (done < 0) {
      how = "waitpid: " + Errno();
      break;
    }
    if (MsBetween(start, Clock::now()) > timeout_ms) {
      kill(child->pid, SIGKILL);
      waitpid(child->pid, &status, 0);
      how = "hung: killed after " + std::to_string(timeout_ms) + " ms";
      break;
    }
    SleepUs(1000);
  }
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(child->report, buffer, sizeof buffer)) > 0) text.append(buffer, size_t(n));
  close(child->report);
  child->report = -1;
  child->pid = -1;
  if (!how.empty()) return how + (text.empty() ? "" : ": " + text);
  if (text.empty()) return "OK";
  return text;
}

// ---- Sockets, without gtest assertions (they run in children) -------------------------------

socklen_t MakeAddress(int family, uint16_t port, sockaddr_storage *out) {
  std::memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    auto *in = reinterpret_cast<sockaddr_in *>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *in;
  }
  auto *in6 = reinterpret_cast<sockaddr_in6 *>(out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  in6->sin6_addr = in6addr_loopback;
  return sizeof *in6;
}

// A fast listener on the loopback address of `family`; -1 on error.
int MakeListener(int family, int rcvbuf, uint16_t *port) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (loopfast_set_fast_path(fd, 1) != 0) return close(fd), -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_storage storage;
  socklen_t length = MakeAddress(family, 0, &storage);
  if (bind(fd, reinterpret_cast<sockaddr *>(&storage), length) != 0 || listen(fd, 128) != 0) {
    close(fd);
    return -1;
  }
  length = sizeof storage;
  getsockname(fd, reinterpret_cast<sockaddr *>(&storage), &length);
  *port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in *>(&storage)->sin_port
                                  : reinterpret_cast<sockaddr_in6 *>(&storage)->sin6_port);
  return fd;
}

// A fast client connected to the listener; -1 with errno on error.
int FastConnect(int family, uint16_t port, int rcvbuf) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (loopfast_set_fast_path(fd, 1) != 0) return close(fd), -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_storage storage;
  const socklen_t length = MakeAddress(family, port, &storage);
  int ret;
  do {
    ret = connect(fd, reinterpret_cast<sockaddr *>(&storage), length);
  } while (ret != 0 && errno == EINTR);
  if (ret != 0) {
    const int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// accept() bounded by `timeout_ms`; -1 with errno (ETIMEDOUT when nothing came).
int AcceptWithin(int listener, int timeout_ms) {
  pollfd p = {listener, POLLIN, 0};
  int ret;
  do {
    ret = poll(&p, 1, timeout_ms);
  } while (ret < 0 && errno == EINTR);
  if (ret == 0) {
    errno = ETIMEDOUT;
    return -1;
  }
  if (ret < 0) return -1;
  int fd;
  do {
    fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

void SetTimeouts(int fd, int ms) {
  timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// =============================================================================================
// Campaign 1: randomized transfers
// =============================================================================================

constexpr size_t kMaxMessage = size_t(1) << 20;
constexpr int kWaitMs = 10000;  // any single wait longer than this is a hang

enum Mode { kBlockingThreads, kDontWaitPoll, kNonBlockingPoll, kEpollLevel, kEpollEdge, kModes };
const char *ModeName(int mode) {
  static const char *names[] = {"blocking-threads", "dontwait+poll", "nonblocking+poll",
                                "nonblocking+epoll-LT", "nonblocking+epoll-ET"};
  return names[mode];
}

struct Direction {
  std::vector<size_t> sizes;  // message sizes, 1 B .. 1 MiB
  uint64_t stream = 0;        // pattern seed
  bool half_close = false;    // the sender ends it with shutdown(SHUT_WR)
  uint64_t total = 0;
};

struct SidePlan {
  int mode = kBlockingThreads;
  uint64_t rng = 0;
  int rcvbuf = 0;  // 0: default
};

struct TransferPlan {
  uint64_t seed = 0;
  int family = AF_INET;
  Direction up, down;  // up: client → server
  SidePlan client, server;

  std::string Describe() const {
    auto direction = [](const Direction &d) {
      return std::to_string(d.sizes.size()) + " msgs/" + std::to_string(d.total) + " B" +
             (d.half_close ? " +SHUT_WR" : "");
    };
    auto side = [](const SidePlan &s) {
      return std::string(ModeName(s.mode)) +
             (s.rcvbuf ? " rcvbuf=" + std::to_string(s.rcvbuf) : std::string());
    };
    return std::string(family == AF_INET ? "127.0.0.1" : "::1") + ", up " + direction(up) +
           ", down " + direction(down) + ", client " + side(client) + ", server " + side(server);
  }
};

TransferPlan MakeTransferPlan(uint64_t seed) {
  std::mt19937_64 rng(seed);
  TransferPlan plan;
  plan.seed = seed;
  plan.family = rng() % 4 == 0 ? AF_INET6 : AF_INET;
  std::uniform_real_distribution<double> log_size(0, std::log(double(kMaxMessage)));
  auto direction = [&](Direction *d) {
    const int count = int(rng() % 7);  // 0..6 messages
    for (int i = 0; i < count; ++i) {
      size_t size = std::clamp<size_t>(size_t(std::exp(log_size(rng))), 1, kMaxMessage);
      if (rng() % 16 == 0) size = kMaxMessage;
      if (rng() % 16 == 0) size = 1;
      d->sizes.push_back(size);
      d->total += size;
    }
    d->stream = rng();
    d->half_close = rng() % 2 == 0;
  };
  direction(&plan.up);
  direction(&plan.down);
  if (plan.up.total == 0 && plan.down.total == 0) {
    plan.up.sizes.push_back(1 + rng() % 4096);
    plan.up.total = plan.up.sizes.back();
  }
  auto side = [&](SidePlan *s) {
    s->mode = int(rng() % kModes);
    s->rng = rng();
    s->rcvbuf = rng() % 3 == 0 ? int(4096u << (rng() % 9)) : 0;  // 4 KiB .. 1 MiB
  };
  side(&plan.client);
  side(&plan.server);
  return plan;
}

// One direction's receiving end: every byte checked against the pattern, EOF where expected.
class Receiver {
 public:
  Receiver(const Direction &d, bool socket_blocking, bool force_dontwait, uint64_t seed)
      : d_(d), socket_blocking_(socket_blocking), force_dontwait_(force_dontwait), rng_(seed) {
    buffer_.resize(kMaxMessage + 16);
    peek_check_.resize(kMaxMessage + 16);
    done_ = d.total == 0 && !d.half_close;
  }
  bool done() const { return done_; }
  uint64_t offset() const { return offset_; }
  const std::string &error() const { return error_; }

  // One receive call. *again: it would block (non-blocking call). False on a failure.
  bool Step(int fd, bool *again) {
    *again = false;
    const uint64_t left = d_.total - offset_;
    static const size_t kPieces[] = {1, 16, 4096, 65536, 262144, kMaxMessage};
    const size_t max_piece = kPieces[rng_() % 6];
    size_t want =
        left == 0 ? 1 + rng_() % 16 : size_t(std::min<uint64_t>(left, 1 + rng_() % max_piece));
    const int pick = int(rng_() % 8);
    int flags = pick == 0 ? MSG_PEEK : pick == 1 ? MSG_WAITALL : pick <= 3 ? MSG_DONTWAIT : 0;
    if (force_dontwait_) flags |= MSG_DONTWAIT;
    const bool blocking_call = socket_blocking_ && !(flags & MSG_DONTWAIT);
    const int call = int(rng_() % 3);
    ssize_t n;
    do {
      if (call == 0 && flags == 0) {
        n = read(fd, buffer_.data(), want);
      } else if (call == 1 && want >= 2) {
        iovec iov[2] = {{buffer_.data(), want / 2}, {buffer_.data() + want / 2, want - want / 2}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        n = recvmsg(fd, &msg, flags);
      } else {
        n = recv(fd, buffer_.data(), want, flags);
      }
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && !blocking_call) {
        *again = true;
        return true;
      }
      return Fail("recv(" + std::to_string(want) + ", flags " + std::to_string(flags) +
                  ") at offset " + std::to_string(offset_) + " of " + std::to_string(d_.total) +
                  ": " + Errno() + (blocking_call ? " (blocking call: a hang)" : ""));
    }
    if (n == 0) {
      if (left > 0) {
        return Fail("early EOF at offset " + std::to_string(offset_) + " of " +
                    std::to_string(d_.total) + " (lost bytes)");
      }
      done_ = true;
      return true;
    }
    if (left == 0) {
      return Fail(std::to_string(n) + " extra bytes after the " + std::to_string(d_.total) +
                  " expected (before EOF)");
    }
    if (size_t(n) > want) return Fail("recv returned more than asked");
    if (!Check(buffer_.data(), size_t(n), "recv")) return false;
    if (flags & MSG_PEEK) {
      // What was peeked must be there for the next read, exactly.
      ssize_t m;
      do {
        m = recv(fd, peek_check_.data(), size_t(n), MSG_DONTWAIT);
      } while (m < 0 && errno == EINTR);
      if (m != n) {
        return Fail("after MSG_PEEK returned " + std::to_string(n) + " at offset " +
                    std::to_string(offset_) + ", recv returned " + std::to_string(m) +
                    (m < 0 ? " (" + Errno() + ")" : ""));
      }
      if (!Check(peek_check_.data(), size_t(n), "recv after MSG_PEEK")) return false;
    } else if ((flags & MSG_WAITALL) && blocking_call && size_t(n) != want) {
      return Fail("blocking MSG_WAITALL returned " + std::to_string(n) + " of " +
                  std::to_string(want) + " at offset " + std::to_string(offset_));
    }
    offset_ += uint64_t(n);
    if (offset_ == d_.total && !d_.half_close) done_ = true;
    return true;
  }

 private:
  bool Check(const uint8_t *data, size_t n, const char *what) {
    for (size_t i = 0; i < n; ++i) {
      if (data[i] != PatternByte(d_.stream, offset_ + i)) {
        return Fail(std::string("corrupt byte (") + what + ") at stream offset " +
                    std::to_string(offset_ + i) + " of " + std::to_string(d_.total) + ": got " +
                    std::to_string(data[i]) + ", want " +
                    std::to_string(PatternByte(d_.stream, offset_ + i)));
      }
    }
    return true;
  }
  bool Fail(const std::string &text) {
    error_ = "receiving: " + text;
    return false;
  }

  const Direction &d_;
  bool socket_blocking_, force_dontwait_;
  std::mt19937_64 rng_;
  std::vector<uint8_t> buffer_, peek_check_;
  uint64_t offset_ = 0;
  bool done_ = false;
  std::string error_;
};

// One direction's sending end: messages in order, each in one or more calls, then SHUT_WR.
class Sender {
 public:
  Sender(const Direction &d, bool socket_blocking, bool force_dontwait, uint64_t seed)
      : d_(d), socket_blocking_(socket_blocking), force_dontwait_(force_dontwait), rng_(seed) {
    done_ = d.sizes.empty() && !d.half_close;
  }
  bool done() const { return done_; }
  const std::string &error() const { return error_; }

  bool Step(int fd, bool *again) {
    *again = false;
    if (index_ == d_.sizes.size()) {
      if (d_.half_close && shutdown(fd, SHUT_WR) != 0) return Fail("shutdown(SHUT_WR): " + Errno());
      done_ = true;
      return true;
    }
    const size_t size = d_.sizes[index_];
    if (message_.empty()) message_ = Pattern(d_.stream, stream_offset_, size);
    size_t piece = size - in_message_;
    if (rng_() % 4 == 0) piece = 1 + rng_() % piece;
    int flags = MSG_NOSIGNAL | (rng_() % 4 == 0 || force_dontwait_ ? MSG_DONTWAIT : 0);
    const bool blocking_call = socket_blocking_ && !(flags & MSG_DONTWAIT);
    const int call = int(rng_() % 3);
    const uint8_t *at = message_.data() + in_message_;
    ssize_t n;
    do {
      if (call == 0 && !(flags & MSG_DONTWAIT)) {
        n = write(fd, at, piece);  // SIGPIPE is ignored in the children
      } else if (call == 1 && piece >= 2) {
        iovec iov[2] = {{const_cast<uint8_t *>(at), piece / 2},
                        {const_cast<uint8_t *>(at) + piece / 2, piece - piece / 2}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        n = sendmsg(fd, &msg, flags);
      } else {
        n = send(fd, at, piece, flags);
      }
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && !blocking_call) {
        *again = true;
        return true;
      }
      return Fail("send(" + std::to_string(piece) + ") of message " + std::to_string(index_) +
                  " at stream offset " + std::to_string(stream_offset_ + in_message_) + ": " +
                  Errno() + (blocking_call ? " (blocking call: a hang)" : ""));
    }
    if (n == 0 || size_t(n) > piece) return Fail("send returned " + std::to_string(n));
    if (blocking_call && size_t(n) != piece) {
      return Fail("blocking send of " + std::to_string(piece) + " returned " + std::to_string(n));
    }
    in_message_ += size_t(n);
    if (in_message_ == size) {
      stream_offset_ += size;
      in_message_ = 0;
      ++index_;
      message_.clear();
    }
    return true;
  }

 private:
  bool Fail(const std::string &text) {
    error_ = "sending: " + text;
    return false;
  }
  const Direction &d_;
  bool socket_blocking_, force_dontwait_;
  std::mt19937_64 rng_;
  std::vector<uint8_t> message_;
  size_t index_ = 0, in_message_ = 0;
  uint64_t stream_offset_ = 0;
  bool done_ = false;
  std::string error_;
};

// poll() for `events` on one descriptor, bounded; false (with *error) on a timeout.
bool PollFor(int fd, short events, std::string *error, const char *what) {
  pollfd p = {fd, events, 0};
  int ret;
  do {
    ret = poll(&p, 1, kWaitMs);
  } while (ret < 0 && errno == EINTR);
  if (ret == 0) {
    *error =
        std::string(what) + ": poll saw no readiness in " + std::to_string(kWaitMs) + " ms (hang)";
    return false;
  }
  if (ret < 0) {
    *error = std::string(what) + ": poll: " + Errno();
    return false;
  }
  return true;
}

// Runs one side of a transfer on `fd`: sends `out`, receives `in`, as `side.mode` says.
std::string RunSide(int fd, const SidePlan &side, const Direction &out, const Direction &in) {
  std::mt19937_64 rng(side.rng);
  const bool blocking_socket = side.mode == kBlockingThreads || side.mode == kDontWaitPoll;
  const bool force_dontwait = side.mode == kDontWaitPoll;
  Sender sender(out, blocking_socket, force_dontwait, rng());
  Receiver receiver(in, blocking_socket, force_dontwait, rng());
  SetTimeouts(fd, kWaitMs);
  const auto deadline = Clock::now() + std::chrono::seconds(25);

  if (side.mode == kBlockingThreads) {
    std::string send_error;
    std::thread send_thread([&, seed = rng()] {
      std::mt19937_64 r(seed);
      while (!sender.done()) {
        if (r() % 4 == 0 && !PollFor(fd, POLLOUT, &send_error, "sending")) return;
        bool again = false;
        if (!sender.Step(fd, &again)) {
          send_error = sender.error();
          return;
        }
        if (again && !PollFor(fd, POLLOUT, &send_error, "sending")) return;
      }
    });
    std::string receive_error;
    while (!receiver.done()) {
      if (rng() % 4 == 0 && !PollFor(fd, POLLIN, &receive_error, "receiving")) break;
      bool again = false;
      if (!receiver.Step(fd, &again)) {
        receive_error = receiver.error();
        break;
      }
      if (again && !PollFor(fd, POLLIN, &receive_error, "receiving")) break;
    }
    if (!receive_error.empty()) shutdown(fd, SHUT_RDWR);  // let the sender thread end
    send_thread.join();
    if (!receive_error.empty()) return receive_error;
    if (!send_error.empty()) return send_error;
  } else {
    if (!blocking_socket) {
      if (rng() % 2) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      } else {
        int on = 1;
        ioctl(fd, FIONBIO, &on);
      }
    }
    int ep = -1;
    const bool edge = side.mode == kEpollEdge;
    const bool use_epoll = side.mode == kEpollLevel || edge;
    uint32_t registered = 0;
    auto interest = [&] {
      uint32_t events = (receiver.done() ? 0u : uint32_t(EPOLLIN | EPOLLRDHUP)) |
                        (sender.done() ? 0u : uint32_t(EPOLLOUT));
      return events | (edge ? uint32_t(EPOLLET) : 0u);
    };
    if (use_epoll) {
      ep = epoll_create1(EPOLL_CLOEXEC);
      epoll_event ev{};
      ev.events = registered = interest();
      ev.data.fd = fd;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return "epoll_ctl ADD: " + Errno();
    }
    bool receive_again = false, send_again = false;
    std::string error;
    while (error.empty() && !(sender.done() && receiver.done())) {
      if (Clock::now() > deadline) {
        error = "event loop still running after 25 s (hang); received " +
                std::to_string(receiver.offset()) + " of " + std::to_string(in.total);
        break;
      }
      if (use_epoll && interest() != registered) {
        epoll_event ev{};
        ev.events = registered = interest();
        ev.data.fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0) {
          error = "epoll_ctl MOD: " + Errno();
          break;
        }
      }
      const bool need_wait = (sender.done() || send_again) && (receiver.done() || receive_again);
      const bool optional_wait = !edge && rng() % 4 == 0;
      if (need_wait || optional_wait) {
        bool readable = false, writable = false;
        int ret;
        if (use_epoll) {
          epoll_event events[4];
          do {
            ret = epoll_wait(ep, events, 4, kWaitMs);
          } while (ret < 0 && errno == EINTR);
          for (int i = 0; i < ret; ++i) {
            if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable = true;
            if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable = true;
          }
        } else {
          pollfd p = {fd, short((receiver.done() ? 0 : POLLIN) | (sender.done() ? 0 : POLLOUT)), 0};
          do {
            ret = poll(&p, 1, kWaitMs);
          } while (ret < 0 && errno == EINTR);
          if (ret > 0) {
            readable = p.revents & (POLLIN | POLLHUP | POLLERR);
            writable = p.revents & (POLLOUT | POLLHUP | POLLERR);
          }
        }
        if (ret == 0) {
          error = std::string(use_epoll ? "epoll_wait" : "poll") + " saw nothing in " +
                  std::to_string(kWaitMs) + " ms (hang); received " +
                  std::to_string(receiver.offset()) + " of " + std::to_string(in.total) +
                  (receiver.done() ? " (done)" : "") +
                  (sender.done() ? ", sending done" : ", sending");
          break;
        }
        if (ret < 0) {
          error = "wait: " + Errno();
          break;
        }
        if (readable) receive_again = false;
        if (writable) send_again = false;
      }
      const int budget = edge ? 1 << 30 : 1 + int(rng() % 4);
      for (int i = 0; i < budget && !receiver.done() && !receive_again; ++i) {
        if (!receiver.Step(fd, &receive_again)) error = receiver.error();
        if (!error.empty()) break;
      }
      for (int i = 0; error.empty() && i < budget && !sender.done() && !send_again; ++i) {
        if (!sender.Step(fd, &send_again)) error = sender.error();
      }
    }
    if (ep >= 0) close(ep);
    if (!error.empty()) return error;
  }
  const std::string path = ObservedPath(fd);
  if (path != "fast") {
    const char *reason = loopfast_fallback_reason(fd);
    return "path at the end: " + path + " (reason: " + (reason ? reason : "none") + ")";
  }
  return "OK";
}

std::string RunTransfer(const TransferPlan &plan) {
  uint16_t port = 0;
  const int listener = MakeListener(plan.family, plan.server.rcvbuf, &port);
  if (listener < 0) return "listener: " + Errno();
  Child server = StartChild(
      [&]() -> std::string {
        const int fd = AcceptWithin(listener, kWaitMs);
        close(listener);
        if (fd < 0) return "server: accept: " + Errno();
        std::string result = RunSide(fd, plan.server, plan.down, plan.up);
        close(fd);
        return result == "OK" ? result : "server: " + result;
      },
      30);
  Child client = StartChild(
      [&]() -> std::string {
        close(listener);
        const int fd = FastConnect(plan.family, port, plan.client.rcvbuf);
        if (fd < 0) return "client: connect: " + Errno();
        std::string result = RunSide(fd, plan.client, plan.up, plan.down);
        close(fd);
        return result == "OK" ? result : "client: " + result;
      },
      30);
  close(listener);
  const std::string client_result = FinishChild(&client, 35000);
  const std::string server_result = FinishChild(&server, 5000);
  std::string result;
  if (client_result != "OK") result += client_result;
  if (server_result != "OK") result += (result.empty() ? "" : "; ") + server_result;
  return result.empty() ? "OK" : result;
}

// True when a run's only complaint is the path it ended on (every byte checked and intact),
// and each end that took kernel TCP says the server program had not accepted the connection
// by the time the client was done with it (it closed, shut down, or finished its last
// non-blocking call before the accept): the designed fallback, both ends on kernel TCP. Any
// other reason is a failure (an unexplained miss).
bool OnlyPathMissed(const std::string &result) {
  static const char *const kAcceptCameLate[] = {
      "the connecting side gave up before this accept",
      "not decided yet: the listening program has not accepted the connection",
      "shut down before the listening program accepted the connection",
      "closed before the listening program accepted the connection",
      "a blocking send came before the listening program accepted the connection",
      "the listening program did not accept the connection within 2 s",
  };
  int complaints = 0;
  for (const char *side : {"client: ", "server: "}) {
    const size_t found = result.find(side);
    if (found == std::string::npos) continue;
    ++complaints;
    if (result.compare(found + std::strlen(side), 16, "path at the end:") != 0) return false;
    const size_t reason = result.find("(reason: ", found);
    const size_t end = reason == std::string::npos ? reason : result.find(')', reason);
    if (end == std::string::npos) return false;
    const std::string why = result.substr(reason + 9, end - reason - 9);
    if (std::find(std::begin(kAcceptCameLate), std::end(kAcceptCameLate), why) ==
        std::end(kAcceptCameLate)) {
      return false;
    }
  }
  return complaints > 0 && result.find("exit status 3") != std::string::npos &&
         result.find("path at the end: fast but") == std::string::npos;
}

TEST(ReliabilityTest, RandomizedTransfers) {
  const LeftoverFiles leftovers;
  const uint64_t single = EnvNumber("LOOPFAST_CAMPAIGN_SEED", 0);
  const uint64_t runs = single ? 1 : EnvNumber("LOOPFAST_CAMPAIGN_RUNS", 200);
  const uint64_t base = EnvNumber("LOOPFAST_CAMPAIGN_BASE", std::random_device{}());
  const int descriptors_before = OpenDescriptorCount();
  const auto start = Clock::now();
  uint64_t bytes = 0, failures = 0, done = 0, kernel_only = 0;
  std::map<std::string, int> modes;
  const uint64_t max_failures = EnvNumber("LOOPFAST_CAMPAIGN_MAX_FAILURES", 5);
  for (uint64_t i = 0; i < runs && failures < max_failures; ++i) {
    const uint64_t seed = single ? single : Mix(base + i) | 1;
    const TransferPlan plan = MakeTransferPlan(seed);
    const std::string result = RunTransfer(plan);
    ++done;
    bytes += plan.up.total + plan.down.total;
    ++modes[std::string(ModeName(plan.client.mode)) + "/" + ModeName(plan.server.mode)];
    // Every byte intact, both ends on kernel TCP because the server child accepted only after
    // the client was done (a loaded machine): correct (S3), only slower. Counted, shown, and a
    // failure when it stops being rare.
    if (result != "OK" && OnlyPathMissed(result)) {
      ++kernel_only;
      std::printf("[ campaign ] run %llu seed %llu (%s) took kernel TCP: %s\n",
                  (unsigned long long)i, (unsigned long long)seed, plan.Describe().c_str(),
                  result.c_str());
    } else if (result != "OK") {
      ++failures;
      ADD_FAILURE() << "run " << i << " seed " << seed << " (" << plan.Describe() << "): " << result
                    << "\n  reproduce: LOOPFAST_CAMPAIGN_SEED=" << seed
                    << " build-reliability/tests/e2e_tests"
                       " --gtest_filter=ReliabilityTest.RandomizedTransfers";
    }
    if (const std::vector<std::string> left = leftovers.New(); !left.empty()) {
      ADD_FAILURE() << "files left in /dev/shm or /tmp after seed " << seed << ": " << left[0];
      break;
    }
  }
  const double seconds = MsBetween(start, Clock::now()) / 1000;
  std::printf(
      "[ campaign ] transfers: %llu runs (base seed %llu), %llu bytes, %.1f s, %llu "
      "failed, %zu mode pairs\n",
      (unsigned long long)done, (unsigned long long)base, (unsigned long long)bytes, seconds,
      (unsigned long long)failures, modes.size());
  std::printf("[ campaign ] transfers: %llu runs took kernel TCP with every byte intact\n",
              (unsigned long long)kernel_only);
  EXPECT_LE(kernel_only * 20, done) << "more than 5% of the runs missed the fast path";
  EXPECT_EQ(OpenDescriptorCount(), descriptors_before);
  EXPECT_EQ(leftovers.New(), std::vector<std::string>{});
}

// Campaign defect 4 (docs/reliability.md): this seed hung once in 2,000 runs before the fixes
// of defects 1 and 3 (a client making only non-blocking calls with a 4 KiB SO_RCVBUF, both
// ends on kernel TCP, the client's poll seeing nothing for 10 s). Not reproduced since; the
// run is repeated here so that a return shows as a failure (each run has its own deadline).
TEST(ReliabilityTest, TheSeedThatOnceHungRunsToItsEnd) {
  constexpr uint64_t kSeed = 10182613812250197937ull;
  const TransferPlan plan = MakeTransferPlan(kSeed);
  for (int i = 0; i < 20; ++i) {
    const std::string result = RunTransfer(plan);
    EXPECT_TRUE(result == "OK" || OnlyPathMissed(result)) << "attempt " << i << ": " << result;
  }
}

// The defect campaign 1 found first, narrowed: a listener with a small SO_RCVBUF (<= 32 KiB).
// The client then decides "listener did not opt in" (kernel TCP) while the accepting side goes
// fast about half the time, and everything the server sends is lost: the client reads a clean
// EOF at byte 0. Must never happen (S3: both sides or nothing).
TEST(ReliabilityTest, SmallListenerReceiveBufferLosesNoBytes) {
  for (int i = 0; i < 20; ++i) {
    TransferPlan plan;
    plan.seed = 1000 + uint64_t(i);
    plan.down.sizes = {100000};
    plan.down.total = 100000;
    plan.down.stream = plan.seed;
    plan.server.rcvbuf = 8192 << (i % 3);  // 8, 16, 32 KiB
    plan.client.rng = plan.seed;
    plan.server.rng = plan.seed + 1;
    const std::string result = RunTransfer(plan);
    // Falling back to kernel TCP on both sides is allowed here; losing bytes is not.
    if (result.find("path at the end") != std::string::npos &&
        result.find("receiving") == std::string::npos &&
        result.find("sending") == std::string::npos) {
      continue;
    }
    EXPECT_EQ(result, "OK") << "attempt " << i << " (" << plan.Describe() << ")";
  }
}

// =============================================================================================
// Campaign 2: kill -9 at random points
// =============================================================================================

enum KillPoint {
  kMidSend,        // victim streams a large transfer; survivor reads, kills at a random byte
  kMidReceive,     // victim reads a large transfer; survivor's blocking send must end
  kRendezvous,     // killed right after connect/accept starts
  kAsleepInRecv,   // victim asleep in recv; survivor blocked in recv / poll / epoll
  kBlockedInSend,  // victim asleep in a big blocking send (holds its send lock), ring full
  kTwoThreads,     // victim has one thread in a blocked send and one in a blocked recv
  kSharedEndLock,  // victim shares the survivor's end (fork) and dies holding its send lock
  kKillPoints
};
const char *KillPointName(int point) {
  static const char *names[] = {"mid-send",       "mid-receive",     "mid-rendezvous",
                                "asleep-in-recv", "blocked-in-send", "two-threads",
                                "shared-end-lock"};
  return names[point];
}

struct KillPlan {
  uint64_t seed = 0;
  int point = kMidSend;
  bool victim_is_client = false;
  int family = AF_INET;
  long delay_us = 0;              // before the kill
  uint64_t read_before_kill = 0;  // kMidSend
  int survivor_wait = 0;          // 0 recv, 1 poll, 2 epoll LT, 3 epoll ET, 4 recv after the kill
  uint64_t stream = 0;

  std::string Describe() const {
    static const char *waits[] = {"recv", "poll", "epoll-LT", "epoll-ET", "recv-after"};
    return std::string(KillPointName(point)) + ", victim " +
           (victim_is_client ? "client" : "server") + ", " +
           (family == AF_INET ? "127.0.0.1" : "::1") + ", delay " + std::to_string(delay_us) +
           " us, survivor waits in " + waits[survivor_wait] +
           (point == kMidSend ? ", kill after " + std::to_string(read_before_kill) + " B" : "");
  }
};

KillPlan MakeKillPlan(uint64_t seed) {
  std::mt19937_64 rng(seed);
  KillPlan plan;
  plan.seed = seed;
  plan.point = int(rng() % kKillPoints);
  plan.victim_is_client = rng() % 2;
  plan.family = rng() % 4 == 0 ? AF_INET6 : AF_INET;
  plan.delay_us = plan.point == kRendezvous ? long(rng() % 3000) : long(rng() % 30000);
  plan.read_before_kill = rng() % (16u << 20);
  plan.survivor_wait = int(rng() % 5);
  plan.stream = rng();
  return plan;
}

// Streams the pattern until killed (or the connection ends).
void StreamForever(int fd, uint64_t stream, uint64_t seed) {
  std::mt19937_64 rng(seed);
  uint64_t offset = 0;
  for (;;) {
    const size_t piece = 1 + rng() % (1u << 20);
    std::vector<uint8_t> data = Pattern(stream, offset, piece);
    if (!WriteAll(fd, data.data(), piece)) return;
    offset += piece;
  }
}

// Reads and checks the pattern until EOF or an error; returns bytes read, or -1 on corruption.
int64_t ReadPattern(int fd, uint64_t stream, uint64_t *offset, uint64_t limit, ssize_t *last,
                    int *last_errno) {
  std::vector<uint8_t> buffer(1 << 20);
  for (;;) {
    if (*offset >= limit) return int64_t(*offset);
    const size_t want = size_t(std::min<uint64_t>(buffer.size(), limit - *offset));
    ssize_t n;
    do {
      n = recv(fd, buffer.data(), want, 0);
    } while (n < 0 && errno == EINTR);
    *last = n;
    *last_errno = n < 0 ? errno : 0;
    if (n <= 0) return int64_t(*offset);
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[size_t(i)] != PatternByte(stream, *offset + uint64_t(i))) return -1;
    }
    *offset += uint64_t(n);
  }
}

// One exchange of a byte each way; true when it went through (the rendezvous has settled).
bool SettleOneSide(int fd, bool first) {
  char byte = 's';
  if (first) return WriteAll(fd, &byte, 1) && ReadAll(fd, &byte, 1);
  return ReadAll(fd, &byte, 1) && WriteAll(fd, &byte, 1);
}

// The survivor's side of one kill (runs in its own process, which forks the victim).
std::string Survive(const KillPlan &plan) {
  const int descriptors_before = OpenDescriptorCount();
  std::mt19937_64 rng(plan.seed ^ 0x5u);
  uint16_t port = 0;
  const int listener = MakeListener(plan.family, 0, &port);
  if (listener < 0) return "listener: " + Errno();
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return "pipe: " + Errno();
  const bool shared = plan.point == kSharedEndLock;
  const bool settle = plan.point != kRendezvous;

  // The victim (or, for kSharedEndLock, the peer process that holds the other end).
  fflush(nullptr);
  const pid_t other = fork();
  if (other == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(20);
    if (!shared) close(ready[0]);
    int fd = plan.victim_is_client ? FastConnect(plan.family, port, 0)
                                   : accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    close(listener);
    if (fd < 0) _exit(10);
    if (settle && !SettleOneSide(fd, true)) _exit(11);
    if (shared) {
      // The peer: waits for the go (sent after the kill), then reads a pattern prefix until
      // EOF.
      close(ready[1]);
      char go;
      if (read(ready[0], &go, 1) != 1) _exit(12);
      uint64_t offset = 0;
      ssize_t last = 0;
      int last_errno = 0;
      if (ReadPattern(fd, plan.stream, &offset, UINT64_MAX, &last, &last_errno) < 0) _exit(13);
      if (last < 0 && last_errno != ECONNRESET) _exit(14);
      close(fd);
      _exit(0);
    }
    const char byte = 'r';
    switch (plan.point) {
      case kMidSend:
        if (write(ready[1], &byte, 1) != 1) _exit(15);
        StreamForever(fd, plan.stream, plan.seed);
        break;
      case kMidReceive: {
        if (write(ready[1], &byte, 1) != 1) _exit(15);
        uint64_t offset = 0;
        ssize_t last = 0;
        int last_errno = 0;
        ReadPattern(fd, plan.stream, &offset, UINT64_MAX, &last, &last_errno);
        break;
      }
      case kRendezvous:
      case kAsleepInRecv: {
        if (write(ready[1], &byte, 1) != 1) _exit(15);
        char b;
        if (recv(fd, &b, 1, 0) >= 0) _exit(16);
        break;
      }
      case kBlockedInSend: {
        std::vector<uint8_t> data = Pattern(plan.stream, 0, 16u << 20);
        if (write(ready[1], &byte, 1) != 1) _exit(15);
        send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        break;
      }
      case kTwoThreads: {
        std::thread receiver([fd] {
          char b;
          recv(fd, &b, 1, 0);
        });
        std::vector<uint8_t> data = Pattern(plan.stream, 0, 16u << 20);
        if (write(ready[1], &byte, 1) != 1) _exit(15);
        send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        receiver.join();
        break;
      }
    }
    pause();
    _exit(17);
  }
  if (!shared) close(ready[1]);
  if (other < 0) return "fork: " + Errno();

  std::string failure;
  int fd = -1;
  int ep = -1;
  pid_t victim = shared ? -1 : other;
  std::atomic<int64_t> kill_ns{0};
  auto kill_victim = [&] {
    kill_ns = Clock::now().time_since_epoch().count();  // before: the survivor may see it at once
    kill(victim, SIGKILL);
  };
  std::thread killer;
  auto join_killer = [&] {
    if (killer.joinable()) killer.join();
  };

  if (plan.point == kRendezvous) {
    // The kill races the rendezvous: a thread fires it while this side connects/accepts.
    killer = std::thread([&] {
      SleepUs(plan.delay_us);
      kill_victim();
    });
  }
  if (plan.victim_is_client) {
    fd = AcceptWithin(listener, plan.point == kRendezvous ? 1500 : kWaitMs);
  } else {
    close(listener);  // the victim's copy is then the only one: its death refuses/resets
    fd = FastConnect(plan.family, port, 0);
  }
  const int connect_errno = errno;
  if (plan.victim_is_client) close(listener);
  const auto connected_at = Clock::now();
  uint64_t offset = 0;
  std::string outcome;

  auto after_kill_ms = [&](Clock::time_point end) {
    const int64_t k = kill_ns.load();
    return (end.time_since_epoch().count() - k) / 1e6;
  };
  // The survivor's ending call: EOF or ECONNRESET, within 1 s of the kill.
  auto expect_end = [&](ssize_t n, int error, Clock::time_point end, const char *what) {
    if (!failure.empty()) return;
    if (n > 0) {
      failure = std::string(what) + " returned data from a peer that never sent it";
    } else if (n < 0 && error != ECONNRESET) {
      failure = std::string(what) + ": " + std::strerror(error) + " (want EOF or ECONNRESET)";
    } else if (kill_ns.load() == 0) {
      failure = std::string(what) + " ended (" + (n == 0 ? "EOF" : "ECONNRESET") +
                ") before the victim was killed";
    } else if (after_kill_ms(end) > 1000) {
      failure = std::string(what) + " took " + std::to_string(after_kill_ms(end)) +
                " ms after the kill (limit 1000)";
    } else {
      outcome = std::string(n == 0 ? "eof" : "reset") + " " +
                std::to_string(std::max(0.0, after_kill_ms(end)));
    }
  };

  if (fd < 0) {
    if (plan.point != kRendezvous) {
      failure = std::string(plan.victim_is_client ? "accept" : "connect") + ": " +
                std::strerror(connect_errno);
    } else {
      join_killer();
      if (connect_errno != ETIMEDOUT && after_kill_ms(connected_at) > 1000) {
        failure = "connect/accept failed " + std::to_string(after_kill_ms(connected_at)) +
                  " ms after the kill";
      } else {
        outcome = "no-connection(errno" + std::to_string(connect_errno) + ")";
      }
    }
  } else if (settle && !SettleOneSide(fd, false)) {
    failure = "settling before the kill: " + Errno();
  } else if (settle && ObservedPath(fd) != "fast") {
    failure = "not fast before the kill: " + ObservedPath(fd);
  } else {
    SetTimeouts(fd, 3000);  // a backstop: a hang shows as EAGAIN, not a stuck test
    char go;
    if (!shared && plan.point != kRendezvous && read(ready[0], &go, 1) != 1) {
      failure = "victim did not get ready";
    }
    ssize_t last = 0;
    int last_errno = 0;
    switch (failure.empty() ? plan.point : -1) {
      case kMidSend: {
        if (ReadPattern(fd, plan.stream, &offset, plan.read_before_kill, &last, &last_errno) < 0) {
          failure = "corrupt byte before the kill near offset " + std::to_string(offset);
          break;
        }
        if (last <= 0 && offset < plan.read_before_kill) {
          failure = "stream ended before the kill at " + std::to_string(offset) + ": " +
                    std::strerror(last_errno);
          break;
        }
        kill_victim();
        if (ReadPattern(fd, plan.stream, &offset, UINT64_MAX, &last, &last_errno) < 0) {
          failure = "corrupt byte after the kill near offset " + std::to_string(offset);
          break;
        }
        expect_end(last, last_errno, Clock::now(), "recv after the kill");
        break;
      }
      case kMidReceive: {
        killer = std::thread([&] {
          SleepUs(plan.delay_us);
          kill_victim();
        });
        uint64_t sent = 0;
        ssize_t n = 0;
        for (int i = 0; i < 100000; ++i) {
          const std::vector<uint8_t> piece = Pattern(plan.stream, sent, 1u << 20);
          n = send(fd, piece.data(), piece.size(), MSG_NOSIGNAL);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          sent += uint64_t(n);
        }
        const int error = errno;
        const auto end = Clock::now();
        join_killer();
        if (n >= 0 || (error != EPIPE && error != ECONNRESET)) {
          failure = "send after the kill: " + std::to_string(n) + " " + std::strerror(error) +
                    " (want EPIPE or ECONNRESET)";
        } else if (after_kill_ms(end) > 1000) {
          failure = "send ended " + std::to_string(after_kill_ms(end)) + " ms after the kill";
        } else {
          char b;
          const ssize_t r = recv(fd, &b, 1, 0);
          expect_end(r, errno, Clock::now(), "recv after the failed send");
          outcome = std::string(error == EPIPE ? "epipe" : "send-reset") + " " +
                    std::to_string(std::max(0.0, after_kill_ms(end)));
        }
        break;
      }
      case kRendezvous:
      case kAsleepInRecv:
      case kBlockedInSend:
      case kTwoThreads: {
        const bool drain = plan.point == kBlockedInSend || plan.point == kTwoThreads;
        if (plan.point != kRendezvous) {
          if (plan.survivor_wait == 4 || drain) {
            SleepUs(plan.delay_us + 2000);
            kill_victim();
          } else {
            killer = std::thread([&] {
              SleepUs(plan.delay_us);
              kill_victim();
            });
          }
        }
        if (!drain && (plan.survivor_wait == 1)) {
          pollfd p = {fd, POLLIN, 0};
          if (poll(&p, 1, 3000) != 1) failure = "poll saw nothing in 3 s (hang)";
        } else if (!drain && (plan.survivor_wait == 2 || plan.survivor_wait == 3)) {
          ep = epoll_create1(EPOLL_CLOEXEC);
          epoll_event ev{};
          ev.events =
              uint32_t(EPOLLIN | EPOLLRDHUP) | (plan.survivor_wait == 3 ? uint32_t(EPOLLET) : 0u);
          ev.data.fd = fd;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
          epoll_event got;
          if (epoll_wait(ep, &got, 1, 3000) != 1) failure = "epoll_wait saw nothing in 3 s (hang)";
        }
        if (!failure.empty()) break;
        if (drain) {
          if (ReadPattern(fd, plan.stream, &offset, UINT64_MAX, &last, &last_errno) < 0) {
            failure =
                "corrupt byte near offset " + std::to_string(offset) + " of what the victim sent";
            break;
          }
          expect_end(last, last_errno, Clock::now(), "recv draining the dead sender");
        } else {
          char b;
          const ssize_t n = recv(fd, &b, 1, 0);
          expect_end(n, errno, Clock::now(), "recv");
        }
        break;
      }
      case kSharedEndLock: {
        // This end is shared with a forked victim that blocks in a big send (the peer does not
        // read yet), holding the end's send lock; it is killed there. This side must then be
        // able to shut down (taking the lock over), and the peer must read a pattern prefix
        // and EOF, close, and this side see EOF.
        const std::vector<uint8_t> data = Pattern(plan.stream, 0, 16u << 20);
        fflush(nullptr);
        victim = fork();
        if (victim == 0) {
          prctl(PR_SET_PDEATHSIG, SIGKILL);
          alarm(20);
          send(fd, data.data(), data.size(), MSG_NOSIGNAL);
          pause();
          _exit(17);
        }
        SleepUs(plan.delay_us / 2 + 5000);
        kill_victim();
        waitpid(victim, nullptr, 0);
        const auto before_shutdown = Clock::now();
        if (shutdown(fd, SHUT_WR) != 0) {
          failure = "shutdown after the lock owner died: " + Errno();
          break;
        }
        if (MsBetween(before_shutdown, Clock::now()) > 1000) {
          failure = "shutdown took " + std::to_string(MsBetween(before_shutdown, Clock::now())) +
                    " ms after the lock owner died";
          break;
        }
        const char go_byte = 'g';
        if (write(ready[1], &go_byte, 1) != 1) {
          failure = "go pipe: " + Errno();
          break;
        }
        char b;
        const ssize_t n = recv(fd, &b, 1, 0);
        const int error = errno;
        const auto end = Clock::now();
        if (n > 0) {
          failure = "recv returned data the peer never sent";
        } else if (n < 0 && error != ECONNRESET) {
          failure = "recv after the shared end's shutdown: " + std::string(std::strerror(error));
        } else if (after_kill_ms(end) > 1000) {
          failure = "the peer's close reached this side " + std::to_string(after_kill_ms(end)) +
                    " ms after the kill";
        } else {
          outcome =
              std::string(n == 0 ? "eof" : "reset") + " " + std::to_string(after_kill_ms(end));
        }
        break;
      }
    }
  }
  join_killer();
  if (ep >= 0) close(ep);
  if (fd >= 0) close(fd);
  close(ready[0]);
  if (shared) close(ready[1]);
  if (victim > 0) {
    if (kill_ns.load() == 0) kill_victim();
    waitpid(victim, nullptr, 0);
  }
  if (shared) {
    // The peer process: exit 0 = it read a pattern prefix and then EOF/ECONNRESET.
    int status = 0;
    pid_t done = 0;
    for (int i = 0; i < 3000 && (done = waitpid(other, &status, WNOHANG)) == 0; ++i) SleepUs(1000);
    if (done == 0) {
      kill(other, SIGKILL);
      waitpid(other, &status, 0);
      if (failure.empty()) failure = "the peer of the shared end hung (no EOF after the shutdown)";
    } else if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      failure = "the peer of the shared end failed: " +
                (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) +
                                         (WEXITSTATUS(status) == 13 ? " (corrupt bytes)" : "")
                                   : std::string("killed"));
    }
  }
  if (!failure.empty()) return failure;
  const int descriptors_after = OpenDescriptorCount();
  if (descriptors_after != descriptors_before) {
    std::string open_files;
    for (int i = 0; i < 1024; ++i) {
      char link[64], target[256];
      std::snprintf(link, sizeof link, "/proc/self/fd/%d", i);
      const ssize_t n = readlink(link, target, sizeof target - 1);
      if (n > 0) open_files += " " + std::to_string(i) + "=" + std::string(target, size_t(n));
    }
    return "descriptor leak in the survivor: " + std::to_string(descriptors_before) + " before, " +
           std::to_string(descriptors_after) + " after (" + outcome + "); open:" + open_files;
  }
  return "OK " + outcome;
}

TEST(ReliabilityTest, KillNineAtRandomPoints) {
  const LeftoverFiles leftovers;
  const uint64_t single = EnvNumber("LOOPFAST_CAMPAIGN_SEED", 0);
  const uint64_t kills = single ? 1 : EnvNumber("LOOPFAST_CAMPAIGN_KILLS", 60);
  const uint64_t base = EnvNumber("LOOPFAST_CAMPAIGN_BASE", std::random_device{}());
  const int descriptors_before = OpenDescriptorCount();
  const auto start = Clock::now();
  uint64_t failures = 0;
  std::map<std::string, int> outcomes;
  double worst_ms = 0;
  uint64_t done = 0;
  const uint64_t max_failures = EnvNumber("LOOPFAST_CAMPAIGN_MAX_FAILURES", 5);
  for (uint64_t i = 0; i < kills && failures < max_failures; ++i) {
    const uint64_t seed = single ? single : Mix(base + i) | 1;
    const KillPlan plan = MakeKillPlan(seed);
    Child survivor = StartChild([&] { return Survive(plan); }, 15);
    const std::string result = FinishChild(&survivor, 20000);
    ++done;
    if (result.rfind("OK", 0) == 0) {
      std::string kind = result.size() > 3 ? result.substr(3) : "";
      const size_t space = kind.find(' ');
      if (space != std::string::npos) {
        worst_ms = std::max(worst_ms, std::atof(kind.c_str() + space + 1));
        kind.resize(space);
      }
      ++outcomes[std::string(KillPointName(plan.point)) + ":" + kind];
    } else {
      ++failures;
      ADD_FAILURE() << "kill " << i << " seed " << seed << " (" << plan.Describe()
                    << "): " << result << "\n  reproduce: LOOPFAST_CAMPAIGN_SEED=" << seed
                    << " build-reliability/tests/e2e_tests"
                       " --gtest_filter=ReliabilityTest.KillNineAtRandomPoints";
    }
    if (const std::vector<std::string> left = leftovers.New(); !left.empty()) {
      ADD_FAILURE() << "files left in /dev/shm or /tmp after seed " << seed << ": " << left[0];
      break;
    }
  }
  const double seconds = MsBetween(start, Clock::now()) / 1000;
  std::printf(
      "[ campaign ] kills: %llu (base seed %llu), %.1f s, %llu failed, worst %.1f ms "
      "from kill to EOF/ECONNRESET\n",
      (unsigned long long)done, (unsigned long long)base, seconds, (unsigned long long)failures,
      worst_ms);
  for (const auto &[kind, count] : outcomes)
    std::printf("[ campaign ]   %s %d\n", kind.c_str(), count);
  EXPECT_EQ(OpenDescriptorCount(), descriptors_before);
  EXPECT_EQ(leftovers.New(), std::vector<std::string>{});
}

}  // namespace
}  // namespace loopfast::test
