// A scribbling client, end to end (issue 14, "Nothing the peer writes can stall this process";
// issue 15's hostile suite). A real server process (root, an opted-in listener, an echo for
// every client, a thread per connection, every call timed) serves three clients at once:
//   - a malicious client of another user (65533) that makes one legitimate fast connection,
//     then finds its own session's arena in its address space (/proc/self/maps,
//     "/memfd:loopfast-session") and overwrites every word of it with one pattern after another
//     (session/test_scribble.h), repeatedly, for a bounded time;
//   - a plain client (kernel TCP, no opt-in) and a legitimate fast client (root), each in a
//     process of its own, each with one long-lived connection and a new connection per round,
//     every echoed byte checked, every round timed.
// Checked: the server never crashes and none of its calls (accept, poll, recv, send, epoll_wait,
// close) waits past its own timeout (plus 1 s; MSG_DONTWAIT calls at most 500 ms); the plain
// and the legitimate fast client are served byte-exact throughout, each round within 3 s, the
// fast client's connections fast (kernel counters included).
//
// The malicious client reads (and drops) its kernel connection as the scribbling goes on (a
// peer that read nothing there used to stall the server's blocking calls: see
// src/fast/peer_stall_test.cc). Needs root (users); skipped otherwise.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "session/arena_layout.h"
#include "session/test_scribble.h"
#include "test_support.h"
#include "wait/sleep.h"

namespace loopfast::test {
namespace {

namespace scribble = session::scribble;

constexpr uid_t kAttackerUid = 65533;
constexpr int kSlackMs = 1000;          // beyond a call's own timeout
constexpr int kNonBlockingMs = 500;     // a call that may not wait
constexpr int kSocketTimeoutMs = 1000;  // the server's SO_RCVTIMEO / SO_SNDTIMEO
constexpr int kRoundBoundMs = 3000;     // one client round: connect (or not), 16 KiB echoed
constexpr size_t kRoundBytes = 16 * 1024;
constexpr size_t kMoreConnections = 40;  // the malicious client opens while it scribbles

// Drops root for good (as hostile_test.cc's BecomeUser).
bool BecomeUser(uid_t uid) {
  return setgroups(0, nullptr) == 0 && setgid(uid) == 0 && setuid(uid) == 0 &&
         prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0 && geteuid() == uid;
}

bool Readable(int fd, int ms) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

// A connected TCP socket to 127.0.0.1:`port`, fast path asked or not, every call bounded; -1 on
// failure.
int ConnectTo(uint16_t port, bool fast) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  Bound(fd, 5000);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if ((fast && loopfast_set_fast_path(fd, 1) != 0) ||
      connect(fd, reinterpret_cast<const sockaddr *>(&to), sizeof to) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// ---- the server ----

enum CallKind { kAccept, kPoll, kRecvDontWait, kRecvTimed, kSendTimed, kEpollWait, kClose, kKinds };
constexpr const char *kCallNames[kKinds] = {"accept (SO_RCVTIMEO 200 ms)",
                                            "poll 200 ms",
                                            "recv MSG_DONTWAIT",
                                            "recv (SO_RCVTIMEO 1 s)",
                                            "send (SO_SNDTIMEO 1 s)",
                                            "epoll_wait 100 ms",
                                            "close"};
constexpr int kBoundMs[kKinds] = {200 + kSlackMs,
                                  200 + kSlackMs,
                                  kNonBlockingMs,
                                  kSocketTimeoutMs + kSlackMs,
                                  kSocketTimeoutMs + kSlackMs,
                                  100 + kSlackMs,
                                  kNonBlockingMs};

struct ServerReport {
  uint64_t calls[kKinds];
  uint64_t worst_us[kKinds];
  uint32_t violations;
  uint32_t accepted, accepted_fast, served_to_end;
  char first_violation[256];
};

class Clock {
 public:
  template <typename Call>
  auto Time(CallKind kind, Call call) {
    in_flight_[kind].fetch_add(1);
    const int64_t start = NowUs();
    auto result = call();
    const int saved_errno = errno;
    in_flight_[kind].fetch_sub(1);
    const uint64_t took = uint64_t(NowUs() - start);
    std::lock_guard<std::mutex> guard(mutex_);
    ++report_.calls[kind];
    report_.worst_us[kind] = std::max(report_.worst_us[kind], took);
    if (took > uint64_t(kBoundMs[kind]) * 1000 && report_.violations++ == 0) {
      std::snprintf(report_.first_violation, sizeof report_.first_violation, "%s took %llu ms",
                    kCallNames[kind], static_cast<unsigned long long>(took / 1000));
    }
    errno = saved_errno;
    return result;
  }
  ServerReport &report() { return report_; }
  // The kinds of the calls under way now.
  std::string InFlight() const {
    std::string kinds;
    for (int kind = 0; kind < kKinds; ++kind) {
      if (in_flight_[kind].load() > 0)
        kinds += std::string(kinds.empty() ? "" : ", ") + kCallNames[kind];
    }
    return kinds;
  }
  std::mutex &mutex() { return mutex_; }

 private:
  static int64_t NowUs() {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return int64_t(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
  }
  std::mutex mutex_;
  ServerReport report_{};
  std::atomic<int> in_flight_[kKinds] = {};
};

// Echoes until the client ends, the connection fails, or the server stops; half of the
// reads wait in poll then take what is there without waiting, half wait in recv.
void Serve(int fd, Clock &clock, const std::atomic<bool> &stopping) {
  Bound(fd, kSocketTimeoutMs);
  std::vector<char> buffer(64 * 1024);
  bool ended = false;
  for (uint64_t round = 0; !stopping.load() && !ended; ++round) {
    ssize_t n;
    if (round % 2 == 0) {
      pollfd p = {fd, POLLIN, 0};
      clock.Time(kPoll, [&] { return poll(&p, 1, 200); });
      n = clock.Time(kRecvDontWait,
                     [&] { return recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT); });
    } else {
      n = clock.Time(kRecvTimed, [&] { return recv(fd, buffer.data(), buffer.size(), 0); });
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      ended = true;
      break;
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t m = clock.Time(kSendTimed, [&] {
        return send(fd, buffer.data() + done, size_t(n - done), MSG_NOSIGNAL);
      });
      if (m <= 0) {
        ended = errno != EINTR;
        if (ended) break;
        continue;
      }
      done += m;
    }
  }
  clock.Time(kClose, [&] { return close(fd); });
  if (ended) {
    std::lock_guard<std::mutex> guard(clock.mutex());
    ++clock.report().served_to_end;
  }
}

// The server process: accepts until `stop` is readable, a thread per connection, and one
// thread that waits in epoll_wait on every accepted socket. Writes its report to `out`.
int ServerMain(int listener, int stop, int out) {
  Clock clock;
  std::atomic<bool> stopping{false};
  std::atomic<int> serving{0};
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  std::thread watcher([&] {
    epoll_event events[16];
    while (!stopping.load())
      clock.Time(kEpollWait, [&] { return epoll_wait(epoll, events, 16, 100); });
  });
  Bound(listener, 200);
  while (!Readable(stop, 0)) {
    const int fd = clock.Time(kAccept, [&] { return accept(listener, nullptr, nullptr); });
    if (fd < 0) continue;  // EAGAIN every 200 ms: look at the stop pipe
    {
      std::lock_guard<std::mutex> guard(clock.mutex());
      ++clock.report().accepted;
      clock.report().accepted_fast += loopfast_path_of(fd) == LOOPFAST_PATH_FAST;
    }
    epoll_event event = {};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    event.data.fd = fd;
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    serving.fetch_add(1);
    std::thread([&clock, &stopping, &serving, fd] {
      Serve(fd, clock, stopping);
      serving.fetch_sub(1);
    }).detach();
  }
  stopping.store(true);
  watcher.join();
  // Every serving thread's calls are bounded: they end within a few seconds.
  for (int waited = 0; serving.load() > 0 && waited < 20000; waited += 10) usleep(10000);
  if (serving.load() > 0) {
    std::lock_guard<std::mutex> guard(clock.mutex());
    if (clock.report().violations++ == 0) {
      std::snprintf(clock.report().first_violation, sizeof clock.report().first_violation,
                    "%d serving threads still inside a call 20 s after the stop (%s)",
                    serving.load(), clock.InFlight().c_str());
    }
  }
  std::lock_guard<std::mutex> guard(clock.mutex());
  return write(out, &clock.report(), sizeof(ServerReport)) == sizeof(ServerReport) ? 0 : 2;
}

// ---- the good clients ----

struct ClientReport {
  uint64_t rounds = 0, failures = 0, not_fast = 0, worst_ms = 0;
  char first_failure[160] = {};
};

// Rounds until `stop` is readable: 16 KiB of a fresh pattern echoed and checked, on one
// long-lived connection (`persistent`) or a new connection each round.
void ClientRounds(uint16_t port, bool fast, bool persistent, int stop, ClientReport *report) {
  int fd = -1;
  for (uint64_t round = 0; !Readable(stop, 0); ++round) {
    const int64_t start = NowMs();
    const char *failed = nullptr;
    if (fd < 0) fd = ConnectTo(port, fast);
    if (fd < 0) {
      failed = "connect failed";
    } else {
      const uint64_t seed = (uint64_t(getpid()) << 32) + round * 2 + persistent;
      const std::vector<uint8_t> sent = Pattern(seed, 0, kRoundBytes);
      std::vector<uint8_t> echoed(kRoundBytes);
      if (!WriteAll(fd, sent.data(), sent.size()) || !ReadAll(fd, echoed.data(), echoed.size())) {
        failed = errno == EAGAIN ? "the echo timed out (5 s)" : "the connection failed";
      } else if (echoed != sent) {
        failed = "the echo differs";
      } else if (fast && ObservedPath(fd) != "fast") {
        ++report->not_fast;
        failed = "a connection of the legitimate fast client is not fast";
      }
    }
    const uint64_t took = uint64_t(NowMs() - start);
    report->worst_ms = std::max(report->worst_ms, took);
    ++report->rounds;
    if (failed == nullptr && took > uint64_t(kRoundBoundMs)) failed = "a round took over 3 s";
    if (failed != nullptr && report->failures++ == 0) {
      std::snprintf(report->first_failure, sizeof report->first_failure, "round %llu: %s",
                    static_cast<unsigned long long>(round), failed);
    }
    if (fd >= 0 && (!persistent || failed != nullptr)) {
      close(fd);
      fd = -1;
    }
    usleep(10000);
  }
  if (fd >= 0) close(fd);
}

int ClientMain(uint16_t port, bool fast, int stop, int out) {
  ClientReport reports[2];
  std::thread persistent([&] { ClientRounds(port, fast, true, stop, &reports[0]); });
  ClientRounds(port, fast, false, stop, &reports[1]);
  persistent.join();
  return write(out, reports, sizeof reports) == sizeof reports ? 0 : 2;
}

// ---- the malicious client ----

struct AttackReport {
  int was_fast = 0;
  uint64_t arena_bytes = 0;
  uint32_t slot = 0;
  int slot_found = 0;
  int rounds = 0;
  uint32_t more_connections = 0;
  uint64_t full_passes = 0, hot_passes[scribble::kPatterns] = {};
};

// This process's own session arena: where /proc/self/maps shows "/memfd:loopfast-session".
uint8_t *OwnArena(uint64_t *bytes) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:loopfast-session") == std::string::npos) continue;
    const uint64_t start = std::stoull(line, nullptr, 16);
    const uint64_t end = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    *bytes = end - start;
    return reinterpret_cast<uint8_t *>(start);
  }
  return nullptr;
}

// Makes every eventfd this process holds blocking (a flag of the open file, which the server's
// copies share) and fills its counter: the server's next write to it would block.
void JamBells() {
  for (int fd = 0; fd < 65536; ++fd) {
    char link[64], path[64];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0 || std::string(link, size_t(n)) != "anon_inode:[eventfd]") continue;
    // Full first (taking what the counter held, without waiting), blocking then.
    const uint64_t most = 0xfffffffffffffffeull;
    for (int tries = 0; tries < 100; ++tries) {
      uint64_t held;
      (void)!read(fd, &held, sizeof held);
      if (write(fd, &most, sizeof most) == sizeof most) break;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  }
}

// One byte for the server in ring 0, through the slot's first window, with "a watcher waits
// for room" announced: the server's read of it rings this process's (jammed) bell.
void ByteWithWatcher(session::Slot *slot) {
  RingControl &ring = slot->ring[0];
  const uint64_t tail = scribble::Load64(&ring.tail);
  slot->window[0][tail % session::kSlotWindowBytes] = 'b';
  scribble::Store64(&ring.mapping, scribble::Mapping(9, 0));
  scribble::Store32(&ring.producer_waiting, wait::kWatcher);
  __atomic_store_n(reinterpret_cast<uint64_t *>(&ring.head), tail + 1, __ATOMIC_RELEASE);
  scribble::WakeAll(slot);
}

int AttackerMain(uint16_t port, pid_t server, int seconds, bool jam_bells, int ready, int out) {
  if (!BecomeUser(kAttackerUid)) return 10;
  AttackReport report;
  const int fd = ConnectTo(port, /*fast=*/true);
  if (fd < 0) return 11;
  // Legitimately first: 1 MiB each way grows both rings into their regions.
  const std::vector<uint8_t> sent = Pattern(99, 0, 1 << 20);
  std::vector<uint8_t> echoed(sent.size());
  if (!WriteAll(fd, sent.data(), sent.size()) || !ReadAll(fd, echoed.data(), echoed.size()) ||
      echoed != sent) {
    return 12;
  }
  report.was_fast = ObservedPath(fd) == "fast";
  uint8_t *base = OwnArena(&report.arena_bytes);
  if (!report.was_fast || base == nullptr || report.arena_bytes != session::kArenaBytes) {
    (void)!write(out, &report, sizeof report);
    return 13;
  }
  const session::ArenaView arena(base);
  uint64_t cookie = 0;
  socklen_t length = sizeof cookie;
  getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length);
  for (uint32_t i = 0; i < session::kMaxSlots && !report.slot_found; ++i) {
    if (arena.slot(i)->header.socket_cookie.load() == cookie) {
      report.slot = i;
      report.slot_found = 1;
    }
  }
  // The kernel connection is read and dropped past the library (see the file's comment).
  std::atomic<bool> draining{true};
  std::thread drain([&] {
    char sink[65536];
    while (draining.load()) {
      if (syscall(SYS_recvfrom, fd, sink, sizeof sink, MSG_DONTWAIT, nullptr, nullptr) <= 0) {
        usleep(1000);
      }
    }
  });
  if (write(ready, "r", 1) != 1) return 14;
  if (jam_bells) {
    // Nothing scribbled: bytes for the server, one at a time, once its bells are jammed.
    JamBells();
    for (const int64_t end = NowMs() + seconds * 1000; NowMs() < end; usleep(100 * 1000)) {
      ByteWithWatcher(arena.slot(report.slot));
      ++report.rounds;
    }
    draining.store(false);
    drain.join();
    return write(out, &report, sizeof report) == sizeof report ? 0 : 15;
  }
  // Its slot and the next ones (where the connections it goes on opening land) are hot.
  scribble::Scribbler scribbler(arena, report.slot, cookie, uint32_t(server),
                                session::kDefaultRingBytes, kMoreConnections + 1);
  const int64_t end = NowMs() + seconds * 1000;
  // More fast connections while it scribbles, each with a byte in its ring: the server binds
  // them in a scribbled session and calls on them, again and again.
  std::vector<int> more;
  std::thread opener([&] {
    while (NowMs() < end && more.size() < kMoreConnections) {
      const int extra = ConnectTo(port, /*fast=*/true);
      if (extra >= 0) {
        (void)!send(extra, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        more.push_back(extra);
      }
      usleep(200 * 1000);
    }
  });
  for (; report.rounds == 0 || NowMs() < end; ++report.rounds) {
    for (int pattern = 0; pattern < scribble::kPatterns; ++pattern) {
      // Every word of the gigabyte once per pattern in the first round, then the hot words.
      if (report.rounds == 0) {
        scribbler.FullPass(pattern);
        ++report.full_passes;
      }
      const int64_t pattern_end =
          NowMs() + (pattern >= scribble::kFirstSleepingPattern ? 900 : 300);
      for (uint32_t pass = 0; NowMs() < pattern_end; ++pass) {
        scribbler.HotPass(pattern, pass);
        ++report.hot_passes[pattern];
        if (pass % 64 == 63) sched_yield();
      }
    }
  }
  opener.join();
  report.more_connections = uint32_t(more.size());
  draining.store(false);
  drain.join();
  // Leaves without closing anything: the kernel closes the socket as at a crash.
  return write(out, &report, sizeof report) == sizeof report ? 0 : 15;
}

// ---- the test ----

template <typename T>
bool ReadReport(int fd, T *report) {
  return Readable(fd, 0) && read(fd, report, sizeof *report) == ssize_t(sizeof *report);
}

void RunScribblingClient(bool jam_bells) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run the malicious client as another user";
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", /*fast=*/true, &port);
  ASSERT_GE(listener, 0);
  int server_stop[2], server_out[2], clients_stop[2], plain_out[2], fast_out[2], attack_ready[2],
      attack_out[2];
  for (int *p :
       {server_stop, server_out, clients_stop, plain_out, fast_out, attack_ready, attack_out}) {
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  }
  // A child keeps no write end of a stop pipe: the stop is the parent's closing its own.
  const auto child = [&] {
    close(server_stop[1]);
    close(clients_stop[1]);
  };
  const pid_t server = Spawn([&] {
    child();
    return ServerMain(listener, server_stop[0], server_out[1]);
  });
  close(listener);
  const int64_t start = NowMs();
  const pid_t attacker = Spawn([&] {
    child();
    return AttackerMain(port, server, /*seconds=*/8, jam_bells, attack_ready[1], attack_out[1]);
  });
  const bool attacking = Readable(attack_ready[0], 30000);
  const pid_t plain = Spawn([&] {
    child();
    return ClientMain(port, false, clients_stop[0], plain_out[1]);
  });
  const pid_t fast = Spawn([&] {
    child();
    return ClientMain(port, true, clients_stop[0], fast_out[1]);
  });
  const int attacker_status = Reap(attacker, 90000);
  const int64_t attack_ms = NowMs() - start;
  usleep(1000 * 1000);  // the good clients go on a little after the attacker left
  close(clients_stop[1]);
  const int plain_status = Reap(plain, 30000);
  const int fast_status = Reap(fast, 30000);
  close(server_stop[1]);
  const int server_status = Reap(server, 40000);

  AttackReport attack;
  ServerReport served{};
  ClientReport plain_reports[2], fast_reports[2];
  const bool attack_read = ReadReport(attack_out[0], &attack);
  const bool served_read = ReadReport(server_out[0], &served);
  const bool plain_read = ReadReport(plain_out[0], &plain_reports);
  const bool fast_read = ReadReport(fast_out[0], &fast_reports);
  for (int *p :
       {server_stop, server_out, clients_stop, plain_out, fast_out, attack_ready, attack_out}) {
    close(p[0]);
    if (p != server_stop && p != clients_stop) close(p[1]);
  }

  std::string summary = "attack " + std::to_string(attack_ms) + " ms, " +
                        std::to_string(attack.more_connections) + " more connections, " +
                        std::to_string(attack.rounds) + " rounds, " +
                        std::to_string(attack.full_passes) + " full passes; hot passes:";
  for (uint64_t passes : attack.hot_passes) summary += " " + std::to_string(passes);
  summary += "\n  server: accepted " + std::to_string(served.accepted) + " (" +
             std::to_string(served.accepted_fast) + " fast), served to the end " +
             std::to_string(served.served_to_end) + "; worst:";
  for (int kind = 0; kind < kKinds; ++kind) {
    summary += std::string(" ") + kCallNames[kind] + " " +
               std::to_string(served.worst_us[kind] / 1000) + " ms (" +
               std::to_string(served.calls[kind]) + " calls);";
  }
  const char *names[2] = {"long-lived", "new each round"};
  for (int i = 0; i < 2; ++i) {
    summary += "\n  plain client, " + std::string(names[i]) + ": " +
               std::to_string(plain_reports[i].rounds) + " rounds, worst " +
               std::to_string(plain_reports[i].worst_ms) + " ms";
    summary += "\n  fast client, " + std::string(names[i]) + ": " +
               std::to_string(fast_reports[i].rounds) + " rounds, worst " +
               std::to_string(fast_reports[i].worst_ms) + " ms";
  }
  std::printf("[ info     ] %s\n", summary.c_str());

  ASSERT_TRUE(attacking) << "the malicious client never started scribbling (status "
                         << attacker_status << ")";
  EXPECT_EQ(attacker_status, 0) << "the malicious client (12: first exchange, 13: not fast or "
                                   "no arena)";
  ASSERT_TRUE(attack_read);
  EXPECT_EQ(attack.was_fast, 1);
  EXPECT_EQ(attack.arena_bytes, session::kArenaBytes);
  EXPECT_EQ(attack.slot_found, 1) << "its slot was not found by its socket's cookie";
  if (!jam_bells) {
    EXPECT_EQ(attack.full_passes, uint64_t(scribble::kPatterns));
    for (uint64_t passes : attack.hot_passes) EXPECT_GT(passes, 0u);
    EXPECT_GE(attack.more_connections, 20u);
  }

  EXPECT_EQ(server_status, 0) << "the server (-1: hung or killed by a signal)";
  ASSERT_TRUE(served_read) << "no report from the server";
  EXPECT_EQ(served.violations, 0u) << "first: " << served.first_violation;
  EXPECT_GT(served.accepted_fast, 0u);

  EXPECT_EQ(plain_status, 0);
  EXPECT_EQ(fast_status, 0);
  ASSERT_TRUE(plain_read && fast_read) << "no report from a client";
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(names[i]);
    EXPECT_EQ(plain_reports[i].failures, 0u) << plain_reports[i].first_failure;
    EXPECT_EQ(fast_reports[i].failures, 0u) << fast_reports[i].first_failure;
    EXPECT_EQ(fast_reports[i].not_fast, 0u);
    // Served throughout, not only before or after.
    EXPECT_GE(plain_reports[i].rounds, 20u);
    EXPECT_GE(fast_reports[i].rounds, 20u);
  }
}

TEST(ScribblingClientTest, AClientScribblingOverItsSessionLeavesTheServerAndItsOtherClientsServed) {
  RunScribblingClient(/*jam_bells=*/false);
}

// The malicious client scribbles nothing but makes the eventfds it shares with the server (its
// bells: open files the server holds copies of) blocking and fills their counters, then puts a
// byte in its ring with "a watcher waits for room" in the waiting word: the server's recv of it
// rings that bell. That used to block forever (the serving thread was found stuck 20 s after
// the stop); a ring now adds 0, which never blocks (wait/bell.h).
TEST(ScribblingClientTest, AClientJammingItsBellsCannotStallTheServer) {
  RunScribblingClient(/*jam_bells=*/true);
}

}  // namespace
}  // namespace loopfast::test
