// White-box tests of an epoll set's change hints and sleep (epoll_set_sleep.cc), in one
// process: fast sockets whose both ends live here (several slots of one test-arena session,
// socket/test_sockets.h). A look visits only the sockets whose slots a hint names; a set that
// sleeps is woken by every change (every wait is bounded: a lost wake-up shows as a timeout).
#include <gtest/gtest.h>
#include <sys/epoll.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "session/change_hints.h"
#include "socket/readiness.h"
#include "socket/test_sockets.h"

namespace loopfast {
namespace {

using sockettest::Epoll;
using sockettest::FastSockets;
using Data = std::vector<uint64_t>;

constexpr int kBoundMs = 2000;  // no wait in these tests lasts longer

// The hints the server side's epoll sets take.
session::ChangeHints *ServerHints(FastSockets &fast) {
  return fast.arena().server->arena().hints(session::kServerSide);
}

// Waits (yielding, bounded) until `done` holds; false when the bound passed first.
template <typename Condition>
bool Within(int ms, Condition done) {
  const uint64_t deadline = fasttest::NowNs() + uint64_t(ms) * 1000000;
  while (!done()) {
    if (fasttest::NowNs() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A set over the server ends of `fast`, each added level-triggered for `events` with its index
// as data, and looked at once (from then on each is watched through its slot's hints).
void WatchAll(Epoll &epoll, FastSockets &fast, size_t count, uint32_t events = EPOLLIN) {
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, fast.server(i).fd, events, i), 0);
  }
  ASSERT_EQ(epoll.WaitData(0), Data{});
}

// Two sockets of one session become readable, but only one slot's hint is left: only that
// socket is looked at (the other, readable as it is, is not reported) until its hint comes.
TEST(EpollHintsTest, OnlyTheSocketsWhoseSlotsWereHintedAreLookedAt) {
  FastSockets fast(4);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  WatchAll(epoll, fast, 4);
  ASSERT_TRUE(fast.Write(1));
  ASSERT_TRUE(fast.Write(3));
  const uint32_t slot = FastSockets::slot(3);
  ServerHints(fast)->bits[slot / 64].fetch_and(~(uint64_t{1} << (slot % 64)));
  const readiness::State three = readiness::Look(*fast.server(3).socket, fast.server(3).fd, POLLIN);
  ASSERT_NE(three.events & POLLIN, 0) << "socket 3 is readable";
  EXPECT_EQ(epoll.WaitData(0), Data{1}) << "socket 3 was not looked at: no hint named it";
  EXPECT_EQ(epoll.WaitData(0), Data{1});
  session::MarkChanged(ServerHints(fast), slot, fast.arena().server_bell);
  Data both = epoll.WaitData(0);
  std::sort(both.begin(), both.end());  // 3 goes first: it became ready before 1 was re-queued
  EXPECT_EQ(both, (Data{1, 3}));
}

// A write on one socket makes the next look report that socket alone, its events exact.
TEST(EpollHintsTest, AWriteOnOneSocketReportsThatSocketAlone) {
  FastSockets fast(8);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  WatchAll(epoll, fast, 8, EPOLLIN | EPOLLET);
  for (const size_t i : {5, 0, 7}) {
    ASSERT_TRUE(fast.Write(i));
    const std::vector<struct epoll_event> events = epoll.Wait(0);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].data.u64, i);
    EXPECT_EQ(events[0].events, uint32_t{EPOLLIN});
    EXPECT_EQ(fast.Drain(i), 1u);
  }
  EXPECT_EQ(epoll.WaitData(0), Data{});
}

// A writer that waits until the set has announced its sleep, then writes to one socket of the
// session: the set wakes (by the bell the hint rings) and reports that socket, every round.
TEST(EpollHintsTest, ASleepingSetIsWokenByEveryWrite) {
  constexpr size_t kSockets = 4;
  constexpr uint32_t kRounds = 300;
  FastSockets fast(kSockets);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  WatchAll(epoll, fast, kSockets);
  std::atomic<uint32_t> consumed{0};
  std::atomic<uint32_t> written_asleep{0};
  std::thread writer([&] {
    for (uint32_t round = 0; round < kRounds; ++round) {
      if (!Within(kBoundMs, [&] { return consumed.load() == round; })) return;
      // The set announces its sleep before its last look and the sleep itself. Not announced:
      // no write, and the set's bounded wait ends the test.
      if (!Within(kBoundMs, [&] { return ServerHints(fast)->sleepers.load() != 0; })) return;
      written_asleep.fetch_add(1);
      if (!fast.Write(round % kSockets)) return;
    }
  });
  uint32_t reported = 0;
  for (uint32_t round = 0; round < kRounds; ++round) {
    const std::vector<struct epoll_event> events = epoll.Wait(kBoundMs);
    if (events.size() != 1 || events[0].data.u64 != round % kSockets) break;
    if (fast.Drain(round % kSockets) != 1) break;
    ++reported;
    consumed.store(round + 1);
  }
  consumed.store(kRounds + 1);  // a writer still waiting stops
  writer.join();
  EXPECT_EQ(reported, kRounds) << "a write was missed, or took the whole bounded wait";
  EXPECT_EQ(written_asleep.load(), kRounds) << "the set did not announce its sleep";
}

// The peer shuts its side down while the set sleeps: the end of the stream (the ring's flag,
// then the kernel connection's FIN, which the shadow watches) wakes it.
TEST(EpollHintsTest, APeerShutdownWakesASleepingSet) {
  FastSockets fast(2);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  WatchAll(epoll, fast, 2, EPOLLIN | EPOLLRDHUP);
  std::thread closer([&] {
    Within(kBoundMs, [&] { return ServerHints(fast)->sleepers.load() != 0; });
    ops::Shutdown(*fast.client(1).socket, fast.client(1).fd, SHUT_WR);
  });
  std::vector<struct epoll_event> events;
  const uint64_t deadline = fasttest::NowNs() + uint64_t(kBoundMs) * 1000000;
  // The ring's flag may wake the set before the FIN is in: wait until the hang-up shows.
  while (fasttest::NowNs() < deadline) {
    events = epoll.Wait(kBoundMs);
    if (!events.empty() && (events[0].events & EPOLLRDHUP) != 0) break;
  }
  closer.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data.u64, 1u);
  EXPECT_EQ(events[0].events, uint32_t{EPOLLIN | EPOLLRDHUP});
}

}  // namespace
}  // namespace loopfast
