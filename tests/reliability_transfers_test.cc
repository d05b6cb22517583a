// Reliability campaign 1 (issue 6, item 1; docs/reliability.md), a short form for the suite and
// a long form run with an environment variable:
//
//   ReliabilityTest.RandomizedTransfers   random sizes, flags, blocking/non-blocking mixes,
//                                         poll/epoll LT/ET, half-closes, both directions, client
//                                         and server in separate processes; byte-exact; fast.
//
// LOOPFAST_CAMPAIGN_RUNS sets the count (default 200); LOOPFAST_CAMPAIGN_BASE fixes the base
// seed; LOOPFAST_CAMPAIGN_SEED=N runs the single run N (the number every failure prints, with
// the command that reproduces it). Campaign 2 (kill -9): reliability_kill_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "campaign.h"
#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

// =============================================================================================
// Campaign 1: randomized transfers
// =============================================================================================

constexpr size_t kMaxMessage = size_t(1) << 20;

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
  Bound(fd, kWaitMs);
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
    Fd ep;
    const bool edge = side.mode == kEpollEdge;
    const bool use_epoll = side.mode == kEpollLevel || edge;
    uint32_t registered = 0;
    auto interest = [&] {
      uint32_t events = (receiver.done() ? 0u : uint32_t(EPOLLIN | EPOLLRDHUP)) |
                        (sender.done() ? 0u : uint32_t(EPOLLOUT));
      return events | (edge ? uint32_t(EPOLLET) : 0u);
    };
    if (use_epoll) {
      ep.reset(epoll_create1(EPOLL_CLOEXEC));
      epoll_event ev{};
      ev.events = registered = interest();
      ev.data.fd = fd;
      if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return "epoll_ctl ADD: " + Errno();
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
        if (epoll_ctl(ep.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
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
            ret = epoll_wait(ep.get(), events, 4, kWaitMs);
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
    ep.reset();
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
  Fd listener(TryListenLoopback(plan.family, true, &port, plan.server.rcvbuf));
  if (listener.get() < 0) return "listener: " + Errno();
  Child server = StartChild(
      [&]() -> std::string {
        const Fd fd(AcceptWithin(listener.get(), kWaitMs));
        listener.reset();
        if (fd.get() < 0) return "server: accept: " + Errno();
        std::string result = RunSide(fd.get(), plan.server, plan.down, plan.up);
        return result == "OK" ? result : "server: " + result;
      },
      30);
  Child client = StartChild(
      [&]() -> std::string {
        listener.reset();
        const Fd fd(TryConnectLoopback(plan.family, port, true, plan.client.rcvbuf));
        if (fd.get() < 0) return "client: connect: " + Errno();
        std::string result = RunSide(fd.get(), plan.client, plan.up, plan.down);
        return result == "OK" ? result : "client: " + result;
      },
      30);
  listener.reset();
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
  const CampaignSeeds seeds("LOOPFAST_CAMPAIGN_RUNS", 200);
  const int descriptors_before = OpenDescriptorCount();
  const auto start = Clock::now();
  uint64_t bytes = 0, failures = 0, done = 0, kernel_only = 0;
  std::map<std::string, int> modes;
  for (uint64_t i = 0; seeds.Continue(i, failures); ++i) {
    const uint64_t seed = seeds.Seed(i);
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
      (unsigned long long)done, (unsigned long long)seeds.base, (unsigned long long)bytes, seconds,
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

}  // namespace
}  // namespace loopfast::test
