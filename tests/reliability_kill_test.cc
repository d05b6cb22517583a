// Reliability campaign 2 (issue 6, item 2; docs/reliability.md), a short form for the suite and
// a long form run with an environment variable:
//
//   ReliabilityTest.KillNineAtRandomPoints kill -9 of a random side at a random point; the
//                                         survivor sees EOF or ECONNRESET within 1 s, leaks
//                                         no descriptor, and nothing is left in the file system.
//
// LOOPFAST_CAMPAIGN_KILLS sets the count (default 60); LOOPFAST_CAMPAIGN_BASE fixes the base
// seed; LOOPFAST_CAMPAIGN_SEED=N runs the single run N (the number every failure prints, with
// the command that reproduces it). Campaign 1 (transfers): reliability_transfers_test.cc.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
  Fd listener(TryListenLoopback(plan.family, true, &port, 0));
  if (listener.get() < 0) return "listener: " + Errno();
  Pipe ready;
  if (ready.read.get() < 0) return "pipe: " + Errno();
  const bool shared = plan.point == kSharedEndLock;
  const bool settle = plan.point != kRendezvous;

  // The victim (or, for kSharedEndLock, the peer process that holds the other end).
  fflush(nullptr);
  const pid_t other = fork();
  if (other == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(20);
    if (!shared) ready.read.reset();
    int fd = plan.victim_is_client ? TryConnectLoopback(plan.family, port, true, 0)
                                   : accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    listener.reset();
    if (fd < 0) _exit(10);
    if (settle && !SettleOneSide(fd, true)) _exit(11);
    if (shared) {
      // The peer: waits for the go (sent after the kill), then reads a pattern prefix until
      // EOF.
      ready.write.reset();
      char go;
      if (read(ready.read.get(), &go, 1) != 1) _exit(12);
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
        if (write(ready.write.get(), &byte, 1) != 1) _exit(15);
        StreamForever(fd, plan.stream, plan.seed);
        break;
      case kMidReceive: {
        if (write(ready.write.get(), &byte, 1) != 1) _exit(15);
        uint64_t offset = 0;
        ssize_t last = 0;
        int last_errno = 0;
        ReadPattern(fd, plan.stream, &offset, UINT64_MAX, &last, &last_errno);
        break;
      }
      case kRendezvous:
      case kAsleepInRecv: {
        if (write(ready.write.get(), &byte, 1) != 1) _exit(15);
        char b;
        if (recv(fd, &b, 1, 0) >= 0) _exit(16);
        break;
      }
      case kBlockedInSend: {
        std::vector<uint8_t> data = Pattern(plan.stream, 0, 16u << 20);
        if (write(ready.write.get(), &byte, 1) != 1) _exit(15);
        send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        break;
      }
      case kTwoThreads: {
        std::thread receiver([fd] {
          char b;
          recv(fd, &b, 1, 0);
        });
        std::vector<uint8_t> data = Pattern(plan.stream, 0, 16u << 20);
        if (write(ready.write.get(), &byte, 1) != 1) _exit(15);
        send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        receiver.join();
        break;
      }
    }
    pause();
    _exit(17);
  }
  if (!shared) ready.write.reset();
  if (other < 0) return "fork: " + Errno();

  std::string failure;
  Fd ep;
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
  Fd connection;
  if (plan.victim_is_client) {
    connection.reset(AcceptWithin(listener.get(), plan.point == kRendezvous ? 1500 : kWaitMs));
  } else {
    listener.reset();  // the victim's copy is then the only one: its death refuses/resets
    connection.reset(TryConnectLoopback(plan.family, port, true, 0));
  }
  const int connect_errno = errno;
  const int fd = connection.get();
  listener.reset();
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
    Bound(fd, 3000);  // a backstop: a hang shows as EAGAIN, not a stuck test
    char go;
    if (!shared && plan.point != kRendezvous && read(ready.read.get(), &go, 1) != 1) {
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
          ep.reset(epoll_create1(EPOLL_CLOEXEC));
          epoll_event ev{};
          ev.events =
              uint32_t(EPOLLIN | EPOLLRDHUP) | (plan.survivor_wait == 3 ? uint32_t(EPOLLET) : 0u);
          ev.data.fd = fd;
          epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
          epoll_event got;
          if (epoll_wait(ep.get(), &got, 1, 3000) != 1)
            failure = "epoll_wait saw nothing in 3 s (hang)";
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
        if (write(ready.write.get(), &go_byte, 1) != 1) {
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
  ep.reset();
  connection.reset();
  ready.read.reset();
  ready.write.reset();
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
  const CampaignSeeds seeds("LOOPFAST_CAMPAIGN_KILLS", 60);
  const int descriptors_before = OpenDescriptorCount();
  const auto start = Clock::now();
  uint64_t failures = 0;
  std::map<std::string, int> outcomes;
  double worst_ms = 0;
  uint64_t done = 0;
  for (uint64_t i = 0; seeds.Continue(i, failures); ++i) {
    const uint64_t seed = seeds.Seed(i);
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
      (unsigned long long)done, (unsigned long long)seeds.base, seconds,
      (unsigned long long)failures, worst_ms);
  for (const auto &[kind, count] : outcomes)
    std::printf("[ campaign ]   %s %d\n", kind.c_str(), count);
  EXPECT_EQ(OpenDescriptorCount(), descriptors_before);
  EXPECT_EQ(leftovers.New(), std::vector<std::string>{});
}

}  // namespace
}  // namespace loopfast::test
