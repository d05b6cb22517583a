// A scribbling peer (issue 14, "Nothing the peer writes can stall this process"; issue 15's
// hostile suite): both ends of a slot pair legitimately in a test arena (session/test_arena.h),
// bytes flow both ways until each ring has grown into areas of its producer's region; then a
// forked child that holds the client end overwrites every word of the arena it can write
// (header, claim index, every slot, both regions), with one pattern after another, while
// another forked child holding the server end (the victim) keeps making calls from three
// threads: blocking receives and sends with a program timeout, MSG_DONTWAIT ones, peeks,
// waitall, readiness looks and waits with a timeout, the claim look-up an accept makes.
//
// Checked: no call waits past its own timeout (plus 1 s of slack; calls that may not wait, at
// most 500 ms), no call reports more bytes than it was given room for, nothing crashes, and
// (under core_unit_tests_asan) no sanitizer report. Any outcome is allowed otherwise: the
// peer's own connection may end reset, moved or full of junk bytes.
//
// The patterns are session/test_scribble.h's. The victim reads the arena through a mapping of
// its own (as a server process would); the scribbler never touches what a real peer could not
// (family memory: the locks, the allocators). A loopback TCP connection stands in for the
// kernel connection.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "fast/test_pair.h"
#include "session/test_scribble.h"

namespace loopfast {
namespace {

using fasttest::NowNs;
using fasttest::Pair;
using fasttest::RecvWith;
using fasttest::SendWith;
constexpr uint32_t kSlot = fasttest::kPairSlot;
constexpr uint64_t kCookie = fasttest::kPairCookie;
// Each end's ring limit: a stream of this size grows each ring through its medium area (64 KiB)
// into its large one.
constexpr uint32_t kLimit = 256 * 1024;

// `bytes` of a stream one way and back, legitimately, every byte checked: each ring grows
// into its producer's region.
void Exchange(FastConnection &from, int from_fd, FastConnection &to, int to_fd, size_t bytes) {
  std::vector<uint8_t> out(bytes), in(bytes);
  for (size_t i = 0; i < bytes; ++i) out[i] = uint8_t(i * 13 + i / 509);
  size_t sent = 0, received = 0;
  for (int rounds = 0; received < bytes && rounds < 100000; ++rounds) {
    if (sent < bytes) {
      iovec v = {out.data() + sent, bytes - sent};
      const Transfer t = from.Send(from_fd, &v, 1, SendWith(true, 0));
      if (t.outcome == Outcome::kDone) sent += t.bytes;
    }
    iovec v = {in.data() + received, bytes - received};
    const Transfer t = to.Recv(to_fd, &v, 1, RecvWith(true, 0));
    if (t.outcome == Outcome::kDone) received += t.bytes;
  }
  ASSERT_EQ(received, bytes);
  ASSERT_TRUE(in == out);
}

// ---- what the victim reports (memory shared by the three processes, not the arena) ----

enum Kind {
  kRecvTimed,        // blocking, SO_RCVTIMEO 100 ms
  kRecvNonblocking,  // MSG_DONTWAIT
  kRecvWaitAll,      // MSG_WAITALL, SO_RCVTIMEO 50 ms, spinning 20 us first
  kRecvPeek,         // MSG_PEEK, SO_RCVTIMEO 50 ms
  kRecvPeekWaitAll,  // MSG_PEEK|MSG_WAITALL, SO_RCVTIMEO 50 ms
  kSendNonblocking,  // MSG_DONTWAIT, 1,000 bytes
  kSendTimed,        // blocking, SO_SNDTIMEO 100 ms, 300,000 bytes (more than a ring holds)
  kSendEmpty,        // blocking, 0 bytes
  kLook,             // what poll would ask (LookNow), and a settle that must not wait
  kReadinessWait,    // a readiness wait for input with a 50 ms timeout (epoll on the bell)
  kQueries,          // FIONREAD, SIOCOUTQ, the bell, the flags
  kFindClaim,        // the claim look-up an accepting process makes
  kEnd,              // shutdown both ways, switch to kernel TCP, close (after the scribbling)
  kKinds
};
constexpr const char *kKindNames[kKinds] = {
    "recv timed 100ms",       "recv MSG_DONTWAIT",   "recv waitall 50ms", "recv peek 50ms",
    "recv peek+waitall 50ms", "send MSG_DONTWAIT",   "send timed 100ms",  "send 0 bytes",
    "look + settle",          "readiness wait 50ms", "queries",           "find claim",
    "shutdown/switch/close"};
// Bound per kind, in ms: the call's own timeout plus 1 s, or 500 ms for calls that may not wait.
constexpr uint64_t kBoundMs[kKinds] = {1100, 500, 1050, 1050, 1050, 500, 1100,
                                       500,  500, 1050, 500,  500,  500};
constexpr int kOutcomes = 6;  // Outcome's values
constexpr const char *kOutcomeNames[kOutcomes] = {"done",      "would-wait", "interrupted",
                                                  "timed-out", "use-kernel", "reset"};

using session::scribble::kFirstSleepingPattern;
using session::scribble::kPatternNames;
using session::scribble::kPatterns;

constexpr int kThreads = 3;

struct Board {
  std::atomic<uint32_t> pattern;
  std::atomic<uint32_t> stop;         // the scribbler is done: the victim ends its calls
  std::atomic<uint32_t> victim_done;  // the victim closed its end
  std::atomic<uint32_t> victim_pid;
  std::atomic<uint64_t> calls[kKinds];
  std::atomic<uint64_t> outcomes[kKinds][kOutcomes];
  std::atomic<uint64_t> by_pattern[kPatterns][kKinds][kOutcomes];
  std::atomic<uint64_t> worst_ns[kKinds];
  std::atomic<uint64_t> passes[kPatterns];
  std::atomic<uint32_t> violations;
  std::atomic<uint32_t> described;
  char first_violation[512];
  // What each victim thread is inside now (kind -1: none), for a hang.
  struct InCall {
    std::atomic<int32_t> kind;
    std::atomic<uint32_t> pattern;
    std::atomic<uint64_t> since_ns;
  } in_call[kThreads + 1];
};

Board *MapBoard() {
  void *memory =
      mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  Board *board = new (memory) Board();
  for (auto &call : board->in_call) call.kind.store(-1);
  return board;
}

void Violation(Board &board, const std::string &what) {
  board.violations.fetch_add(1);
  if (board.described.exchange(1) == 0) {
    std::snprintf(board.first_violation, sizeof board.first_violation, "%s", what.c_str());
  }
}

// Makes one call, timed against its kind's bound; `call` returns an Outcome index and sets
// `*bad` when it reported something impossible.
template <typename Call>
void Timed(Board &board, int thread, Kind kind, Call call) {
  const uint32_t pattern = board.pattern.load();
  board.in_call[thread].pattern.store(pattern);
  board.in_call[thread].since_ns.store(NowNs());
  board.in_call[thread].kind.store(kind);
  const uint64_t start = NowNs();
  std::string bad;
  const int outcome = call(&bad);
  const uint64_t took = NowNs() - start;
  board.in_call[thread].kind.store(-1);
  board.calls[kind].fetch_add(1);
  board.outcomes[kind][outcome].fetch_add(1);
  board.by_pattern[pattern % kPatterns][kind][outcome].fetch_add(1);
  uint64_t worst = board.worst_ns[kind].load();
  while (took > worst && !board.worst_ns[kind].compare_exchange_weak(worst, took)) {
  }
  if (took > kBoundMs[kind] * 1000000) {
    Violation(board, std::string(kKindNames[kind]) + " took " + std::to_string(took / 1000000) +
                         " ms under pattern \"" + kPatternNames[pattern % kPatterns] + "\"");
  }
  if (!bad.empty()) {
    Violation(board, std::string(kKindNames[kind]) + ": " + bad + " under pattern \"" +
                         kPatternNames[pattern % kPatterns] + "\"");
  }
}

int Index(const Transfer &t) { return static_cast<int>(t.outcome); }

// A transfer never reports more than it was given room for, nor bytes with another outcome
// (but a MSG_WAITALL receive whose ring stream ended partway: its bytes, and "use the kernel").
void CheckBytes(const Transfer &t, size_t asked, std::string *bad, bool wait_all = false) {
  const bool bytes_then_kernel = wait_all && t.outcome == Outcome::kUseKernel;
  if (t.bytes > asked || (t.outcome != Outcome::kDone && t.bytes != 0 && !bytes_then_kernel)) {
    *bad = "reported " + std::to_string(t.bytes) + " bytes of " + std::to_string(asked);
  }
}

// ---- the victim: the server end, in a process of its own ----

void ReceiveCalls(FastConnection &fast, int fd, Board &board) {
  std::vector<uint8_t> small(4096), large(100000);
  for (uint64_t n = 0; board.stop.load() == 0; ++n) {
    const auto recv = [&](Kind kind, std::vector<uint8_t> &buffer, const RecvCall &call) {
      Timed(board, 0, kind, [&](std::string *bad) {
        iovec v = {buffer.data(), buffer.size()};
        const Transfer t = fast.Recv(fd, &v, 1, call);
        CheckBytes(t, buffer.size(), bad, call.wait_all && !call.peek);
        return Index(t);
      });
    };
    recv(kRecvTimed, small, RecvWith(false, 100000));
    recv(kRecvNonblocking, large, RecvWith(true, 0));
    RecvCall wait_all = RecvWith(false, 50000);
    wait_all.wait_all = true;
    wait_all.wait.spin_ns = 20000;
    recv(kRecvWaitAll, large, wait_all);
    RecvCall peek = RecvWith(false, 50000);
    peek.peek = true;
    recv(kRecvPeek, small, peek);
    peek.wait_all = true;
    recv(kRecvPeekWaitAll, large, peek);
  }
}

void SendCalls(FastConnection &fast, int fd, Board &board) {
  std::vector<uint8_t> data(300000, 0x5a);
  for (uint64_t n = 0; board.stop.load() == 0; ++n) {
    const auto send = [&](Kind kind, size_t bytes, const SendCall &call) {
      Timed(board, 1, kind, [&](std::string *bad) {
        iovec v = {data.data(), bytes};
        const Transfer t = fast.Send(fd, &v, 1, call);
        CheckBytes(t, bytes, bad);
        return Index(t);
      });
    };
    send(kSendNonblocking, 1000, SendWith(true, 0));
    send(kSendTimed, data.size(), SendWith(false, 100000));
    send(kSendEmpty, 0, SendWith(false, 100000));
  }
}

void WatchCalls(FastConnection &fast, int fd, const session::ArenaView &arena, Board &board) {
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  epoll_event kernel_event = {};
  kernel_event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &kernel_event);
  int registered_bell = -1;
  for (uint64_t n = 0; board.stop.load() == 0; ++n) {
    Timed(board, 2, kLook, [&](std::string *) {
      fast.SettleIfPeerLeft(fd, /*blocking=*/false);
      (void)fast.LookNow(fd);
      return 0;
    });
    // Readiness for input, as poll(fd, POLLIN, 50) would wait for it: look, announce, look
    // again, sleep on the bell and the kernel socket.
    Timed(board, 2, kReadinessWait, [&](std::string *) {
      const uint64_t deadline = NowNs() + 50 * 1000000ull;
      for (;;) {
        FastConnection::Look look = fast.LookNow(fd);
        if (look.readable || look.in_ended || look.corrupt) return 0;
        fast.PrepareToSleep(true, false);
        look = fast.LookNow(fd);
        if (look.readable || look.in_ended || look.corrupt) return 0;
        const int bell = fast.WakeBell();
        if (bell >= 0 && bell != registered_bell) {
          epoll_event bell_event = {};
          bell_event.events = EPOLLIN | EPOLLET;
          epoll_ctl(epoll, EPOLL_CTL_ADD, bell, &bell_event);
          registered_bell = bell;
        }
        const uint64_t now = NowNs();
        if (now >= deadline) return static_cast<int>(Outcome::kTimedOut);
        epoll_event events[4];
        if (epoll_wait(epoll, events, 4, int((deadline - now + 999999) / 1000000)) > 0) {
          fast.NoteKernelChanged();
        }
      }
    });
    Timed(board, 2, kQueries, [&](std::string *) {
      (void)fast.ReadableBytes();
      (void)fast.UnsentBytes();
      (void)fast.WakeBell();
      (void)fast.Broken();
      (void)fast.Moved();
      (void)fast.UsesKernel();
      (void)fast.WritesGoToKernel();
      return 0;
    });
    Timed(board, 2, kFindClaim, [&](std::string *bad) {
      uint32_t slot = session::kMaxSlots;
      const session::ClaimFound found = session::FindClaim(arena, kCookie, &slot);
      if (found != session::ClaimFound::kNone && slot >= session::kMaxSlots) {
        *bad = "a claim names slot " + std::to_string(slot);
      }
      return 0;
    });
  }
  close(epoll);
}

[[noreturn]] void Victim(Pair &pair, Board &board) {
  close(pair.kernel[1]);
  pair.kernel[1] = -1;
  board.victim_pid.store(static_cast<uint32_t>(getpid()));
  FastConnection &fast = *pair.server;
  const int fd = pair.kernel[0];
  std::thread receiver([&] { ReceiveCalls(fast, fd, board); });
  std::thread sender([&] { SendCalls(fast, fd, board); });
  std::thread watcher([&] { WatchCalls(fast, fd, pair.arena.server->arena(), board); });
  receiver.join();
  sender.join();
  watcher.join();
  Timed(board, kThreads, kEnd, [&](std::string *) {
    fast.ShutdownRead();
    fast.ShutdownWrite();
    fast.SwitchToKernel();
    (void)fast.Close(fd);
    return 0;
  });
  board.victim_done.store(1);
  _exit(0);
}

// ---- the scribbler: the client end, in a process of its own ----

[[noreturn]] void Scribbler(Pair &pair, Board &board, int pattern_ms, bool drain_kernel) {
  close(pair.kernel[0]);
  pair.kernel[0] = -1;
  // The kernel connection's other end: read (and dropped) so that the victim can always hand
  // the kernel what it never got through the ring (PeerStallTest's DISABLED_ test of a peer
  // that reads nothing there shows what happens otherwise).
  std::atomic<bool> draining{drain_kernel};
  std::thread drain([&] {
    char sink[65536];
    while (draining.load()) {
      if (recv(pair.kernel[1], sink, sizeof sink, MSG_DONTWAIT) <= 0) usleep(1000);
    }
  });
  session::scribble::Scribbler scribbler(pair.arena.client->arena(), kSlot, kCookie,
                                         board.victim_pid.load(), kLimit);
  for (int pattern = 0; pattern < kPatterns; ++pattern) {
    board.pattern.store(pattern);
    scribbler.FullPass(pattern);
    // The patterns where the victim sleeps run longer: its waits last up to 100 ms.
    const int ms = pattern >= kFirstSleepingPattern ? 3 * pattern_ms : pattern_ms;
    const uint64_t end = NowNs() + uint64_t(ms) * 1000000;
    for (uint32_t pass = 0; NowNs() < end; ++pass) {
      scribbler.HotPass(pattern, pass);
      board.passes[pattern].fetch_add(1);
      if (pass % 64 == 63) sched_yield();
    }
  }
  board.stop.store(1);
  // The victim ends its calls and closes; until then its kernel connection is drained.
  const uint64_t give_up = NowNs() + 30 * 1000000000ull;
  while (board.victim_done.load() == 0 && NowNs() < give_up) usleep(1000);
  draining.store(false);
  drain.join();
  _exit(0);
}

// Waits up to `ms` for a child; its exit status, 128 + signal, or -1 when it had to be killed.
int ReapWithin(pid_t pid, int ms) {
  for (int waited = 0;; waited += 10) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (done < 0) return -2;
    if (waited >= ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(10000);
  }
}

void RunScribble(bool drain_kernel) {
  Pair pair(kLimit);
  ASSERT_TRUE(pair.ok());
  // Legitimately first: a stream each way grows both rings into their regions, and a few
  // bytes stay unread each way.
  ASSERT_NO_FATAL_FAILURE(
      Exchange(*pair.client, pair.kernel[1], *pair.server, pair.kernel[0], 3 * kLimit));
  ASSERT_NO_FATAL_FAILURE(
      Exchange(*pair.server, pair.kernel[0], *pair.client, pair.kernel[1], 3 * kLimit));
  iovec some = {const_cast<char *>("unread"), 6};
  ASSERT_EQ(pair.client->Send(pair.kernel[1], &some, 1, SendWith(true, 0)).bytes, 6u);
  ASSERT_EQ(pair.server->Send(pair.kernel[0], &some, 1, SendWith(true, 0)).bytes, 6u);
  for (const RingControl &ring : pair.slot()->ring) {
    ASSERT_EQ(ring.mapping.load() >> 32, 18u) << "a ring did not grow into its large area";
  }
  Board *board = MapBoard();
  ASSERT_NE(board, nullptr);
  constexpr int kPatternMs = 400;
  std::fflush(nullptr);
  const pid_t victim = fork();
  if (victim == 0) Victim(pair, *board);
  while (board->victim_pid.load() == 0) usleep(1000);
  const pid_t scribbler = fork();
  if (scribbler == 0) Scribbler(pair, *board, kPatternMs, drain_kernel);
  close(pair.kernel[0]);
  close(pair.kernel[1]);
  pair.kernel[0] = pair.kernel[1] = -1;

  const int budget_ms = 3 * kPatterns * kPatternMs + 60000;  // full passes are slow under ASan
  const int victim_status = ReapWithin(victim, budget_ms);
  const int scribbler_status = ReapWithin(scribbler, 35000);
  std::string report;
  for (int kind = 0; kind < kKinds; ++kind) {
    report += "  " + std::string(kKindNames[kind]) + ": " +
              std::to_string(board->calls[kind].load()) + " calls, worst " +
              std::to_string(board->worst_ns[kind].load() / 1000) + " us;";
    for (int outcome = 0; outcome < kOutcomes; ++outcome) {
      if (board->outcomes[kind][outcome].load() != 0) {
        report += std::string(" ") + kOutcomeNames[outcome] + "=" +
                  std::to_string(board->outcomes[kind][outcome].load());
      }
    }
    report += "\n";
  }
  for (int pattern = 0; pattern < kPatterns; ++pattern) {
    report += "  pattern \"" + std::string(kPatternNames[pattern]) +
              "\": " + std::to_string(board->passes[pattern].load()) + " passes;";
    for (int kind : {kRecvTimed, kSendTimed, kReadinessWait}) {
      report += std::string(" ") + kKindNames[kind] + ":";
      for (int outcome = 0; outcome < kOutcomes; ++outcome) {
        if (board->by_pattern[pattern][kind][outcome].load() != 0) {
          report += std::string(" ") + kOutcomeNames[outcome] + "=" +
                    std::to_string(board->by_pattern[pattern][kind][outcome].load());
        }
      }
    }
    report += "\n";
  }
  std::printf("[ info     ] scribbled while the victim called:\n%s", report.c_str());
  if (victim_status == -1) {
    // Hung: which calls were under way, for how long, under which pattern.
    for (const Board::InCall &call : board->in_call) {
      const int kind = call.kind.load();
      if (kind < 0) continue;
      ADD_FAILURE() << "the victim hung in \"" << kKindNames[kind] << "\" for "
                    << (NowNs() - call.since_ns.load()) / 1000000 << " ms, pattern \""
                    << kPatternNames[call.pattern.load() % kPatterns] << "\"";
    }
  }
  EXPECT_EQ(victim_status, 0) << "the victim (-1: hung and killed; 128+n: signal n; 1: a "
                                 "sanitizer report, see above)";
  EXPECT_EQ(scribbler_status, 0);
  EXPECT_EQ(board->violations.load(), 0u) << "first: " << board->first_violation;
  for (int kind = 0; kind < kKinds; ++kind) {
    EXPECT_GT(board->calls[kind].load(), 0u) << kKindNames[kind] << " never ran";
  }
  munmap(board, sizeof(Board));
}

TEST(ScribblingPeerTest, EveryWordOfTheArenaOverwrittenNeverStallsOrCrashesTheOtherEnd) {
  RunScribble(/*drain_kernel=*/true);
}

}  // namespace
}  // namespace loopfast
