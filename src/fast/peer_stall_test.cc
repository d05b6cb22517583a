// What a peer may do to make this end's calls wait past their own timeouts, one idea per test
// (issue 14, "Nothing the peer writes can stall this process"), each the smallest
// reproduction of a way that the scribbling-peer tests (scribble_test.cc,
// tests/scribble_test.cc) or a reading of the wait code found. Each victim call runs in a
// forked child with a bound, so that a stall fails the test instead of hanging it.
//
// Each test was first written as a reproduction of a defect (it failed); the comment says what
// happened then and what holds now.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "fast/test_pair.h"
#include "wait/sleep.h"

namespace loopfast {
namespace {

using namespace fasttest;  // NOLINT(google-build-using-namespace): the pair's test helpers

constexpr uint64_t kMs = 1000000;

// Runs `call` in a forked child and returns how long it took (ms), or -1 when it was still
// inside after `bound_ms` (the child is then killed).
template <typename Call>
long TimedInChild(Call call, int bound_ms) {
  int report[2];
  if (pipe(report) != 0) return -2;
  const pid_t child = fork();
  if (child == 0) {
    close(report[0]);
    const uint64_t start = NowNs();
    call();
    const long took = long((NowNs() - start) / kMs);
    (void)!write(report[1], &took, sizeof took);
    _exit(0);
  }
  close(report[1]);
  long took = -1;
  for (int waited = 0; waited < bound_ms; waited += 10) {
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == child) {
      if (read(report[0], &took, sizeof took) != sizeof took) took = -3;  // crashed
      close(report[0]);
      return took;
    }
    usleep(10000);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(report[0]);
  return -1;
}

// A peer that leaves with the ring full of this end's bytes and then reads nothing from the
// kernel connection (a program it exec'd into that is busy elsewhere, or a scribbler that
// sets kSideMoved in its side block): this end's next blocking send first hands the unread
// ring to the kernel connection. It used to wait for room there 1 s at a time with no end,
// whatever the program's SO_SNDTIMEO; now it waits until the call's deadline and says EAGAIN,
// as kernel TCP does (FastConnection::FlushUnreadToKernel). A receive hands over what fits and
// waits for input or room until its own deadline (SettleIfPeerLeft).
TEST(PeerStallTest, ABlockingSendToAPeerThatMovedAndReadsNothingKeepsItsTimeout) {
  Pair pair(session::kMaxRingBytes);
  ASSERT_TRUE(pair.ok());
  std::vector<uint8_t> bytes(session::kMaxRingBytes, 'x');
  iovec all = {bytes.data(), bytes.size()};
  // The ring takes it all unread (as the kernel takes a large write): 16 MiB, far more than the
  // kernel connection holds unread (about 4 MiB on loopback here).
  ASSERT_EQ(pair.server->Send(pair.kernel[0], &all, 1, SendWith(true, 0)).bytes, bytes.size());
  pair.client->MoveToKernel();  // kSideMoved: what a scribbler writes in one word
  const long took = TimedInChild(
      [&] {
        char byte = 'y';
        iovec one = {&byte, 1};
        (void)pair.server->Send(pair.kernel[0], &one, 1, SendWith(false, 200 * 1000));
      },
      5000);
  EXPECT_NE(took, -1) << "a send with a 200 ms timeout was still inside after 5 s";
  EXPECT_GE(took, 0);
  EXPECT_LE(took, 1200) << "a send with a 200 ms timeout took " << took << " ms";
}

// The peer's bell is an eventfd the peer created and still holds: the accepting side received
// a copy of the same open file (SCM_RIGHTS), so the peer may clear its O_NONBLOCK (a flag of
// the open file, shared) and fill its counter to the largest value. This end rings that bell
// (WakeWaiters → wait::RingBell → write) whenever the waiting word of a ring says a watcher
// waits, and the peer writes that word too. The write (of 1) used to block until somebody read
// the counter, which nobody did: a MSG_DONTWAIT send of one byte never returned. A ring now
// adds 0, which never blocks and still wakes the watchers (wait/bell.h).
TEST(PeerStallTest, APeerThatMakesItsBellBlockingAndFullCannotStallANonBlockingSend) {
  Pair pair(256 * 1024);
  ASSERT_TRUE(pair.ok());
  const int bell = pair.arena.server->peer_bell();  // the peer's own eventfd
  ASSERT_GE(bell, 0);
  ASSERT_EQ(fcntl(bell, F_SETFL, fcntl(bell, F_GETFL) & ~O_NONBLOCK), 0);
  const uint64_t most = 0xfffffffffffffffeull - 1;  // the counter starts at 1: now full
  ASSERT_EQ(write(bell, &most, sizeof most), ssize_t(sizeof most));
  // "A watcher waits for the bytes you write": the peer's word to write.
  pair.slot()->ring[1].consumer_waiting.store(wait::kWatcher);
  const long took = TimedInChild(
      [&] {
        char byte = 'y';
        iovec one = {&byte, 1};
        (void)pair.server->Send(pair.kernel[0], &one, 1, SendWith(true, 0));
      },
      5000);
  EXPECT_NE(took, -1) << "a MSG_DONTWAIT send was still inside after 5 s";
  EXPECT_GE(took, 0);
  EXPECT_LE(took, 500);
}

// A peer that writes one byte every 20 ms (legitimately, or by bumping the ring's head by
// one) while this end waits for 4,000 bytes with MSG_WAITALL and SO_RCVTIMEO 100 ms: each byte
// woke the wait and the next sleep started a full timeout again. On kernel TCP the timeout
// counts for the whole call (tcp_recvmsg's timeo), which returns its partial count after
// 100 ms; so does a fast call now (one deadline per call, wait::SleepSpec::deadline_ns).
TEST(PeerStallTest, ATricklingPeerCannotStretchAWaitAllReceivePastItsTimeout) {
  Pair pair(256 * 1024);
  ASSERT_TRUE(pair.ok());
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    const uint64_t end = NowNs() + 3000 * kMs;
    while (!stop.load() && NowNs() < end) {
      char byte = 't';
      iovec one = {&byte, 1};
      (void)pair.client->Send(pair.kernel[1], &one, 1, SendWith(true, 0));
      usleep(20000);
    }
  });
  const long took = TimedInChild(
      [&] {
        std::vector<uint8_t> buffer(4000);
        iovec in = {buffer.data(), buffer.size()};
        RecvCall call = RecvWith(false, 100 * 1000);
        call.wait_all = true;
        (void)pair.server->Recv(pair.kernel[0], &in, 1, call);
      },
      10000);
  stop.store(true);
  trickle.join();
  EXPECT_GE(took, 0);
  EXPECT_LE(took, 1100) << "a MSG_WAITALL receive with a 100 ms timeout took " << took << " ms";
}

// The same for a blocking send into a full ring whose peer reads one byte every 20 ms: each
// byte of room woke the send, and its next sleep started a full SO_SNDTIMEO again. On kernel
// TCP the timeout counts for the whole call (sk_stream_wait_memory's timeo); so it does here.
TEST(PeerStallTest, ASlowReaderCannotStretchABlockingSendPastItsTimeout) {
  Pair pair(16 * 1024);
  ASSERT_TRUE(pair.ok());
  std::vector<uint8_t> fill(16 * 1024, 'f');
  iovec all = {fill.data(), fill.size()};
  ASSERT_EQ(pair.server->Send(pair.kernel[0], &all, 1, SendWith(true, 0)).bytes, fill.size());
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    const uint64_t end = NowNs() + 3000 * kMs;
    while (!stop.load() && NowNs() < end) {
      char byte;
      iovec one = {&byte, 1};
      (void)pair.client->Recv(pair.kernel[1], &one, 1, RecvWith(true, 0));
      usleep(20000);
    }
  });
  const long took = TimedInChild(
      [&] {
        std::vector<uint8_t> more(4000, 'm');
        iovec out = {more.data(), more.size()};
        (void)pair.server->Send(pair.kernel[0], &out, 1, SendWith(false, 100 * 1000));
      },
      10000);
  stop.store(true);
  reader.join();
  EXPECT_GE(took, 0);
  EXPECT_LE(took, 1100) << "a blocking send with a 100 ms timeout took " << took << " ms";
}

// The waiting word a sleep announces itself in is the peer's to write: a peer that clears it
// as fast as it can must not keep a timed wait from seeing its deadline (wait::SleepUntil
// looks again at once when the word lost its sleeper bit, before it looks at the clock).
TEST(PeerStallTest, APeerClearingTheWaitingWordCannotKeepATimedReceiveFromEnding) {
  Pair pair(256 * 1024);
  ASSERT_TRUE(pair.ok());
  std::atomic<uint32_t> *word = &pair.slot()->ring[0].consumer_waiting;
  std::fflush(nullptr);
  const pid_t clearer = fork();
  if (clearer == 0) {
    const uint64_t end = NowNs() + 4000 * kMs;
    while (NowNs() < end) {
      for (int i = 0; i < 10000; ++i) word->store(0, std::memory_order_relaxed);
    }
    _exit(0);
  }
  long worst = 0;
  for (int round = 0; round < 10; ++round) {
    const long took = TimedInChild(
        [&] {
          char byte;
          iovec in = {&byte, 1};
          (void)pair.server->Recv(pair.kernel[0], &in, 1, RecvWith(false, 100 * 1000));
        },
        5000);
    ASSERT_GE(took, 0) << "a receive with a 100 ms timeout was still inside after 5 s";
    worst = std::max(worst, took);
  }
  kill(clearer, SIGKILL);
  waitpid(clearer, nullptr, 0);
  EXPECT_LE(worst, 1100) << "a receive with a 100 ms timeout took " << worst << " ms";
}

}  // namespace
}  // namespace loopfast
