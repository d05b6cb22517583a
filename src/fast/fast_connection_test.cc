// The wait protocol and the connection data path between two processes, without sockets: both
// ends of a slot of a test arena (session/test_arena.h); a forked child takes the client end.
// A loopback TCP connection stands in for the kernel connection (the peer's death shows there).
#include "fast/fast_connection.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "fast/test_pair.h"

namespace loopfast {
namespace {

// Both ends of one fast connection (fast/test_pair.h); the constructor's parts must all be there.
struct Pair : fasttest::Pair {
  explicit Pair(uint32_t limit) : fasttest::Pair(limit) { EXPECT_TRUE(ok()); }
};

SendCall Blocking(uint32_t spin_ns) {
  SendCall call;
  call.wait.spin_ns = spin_ns;
  return call;
}

bool Sent(const Transfer &t, size_t n) { return t.outcome == Outcome::kDone && t.bytes == n; }

RecvCall BlockingRecv(uint32_t spin_ns) {
  RecvCall call;
  call.wait.spin_ns = spin_ns;
  return call;
}

// Ping-pong with no spinning: every hand-off goes through a sleep and a futex wake. A lost
// wake-up would hang here (the child is killed by the bounded wait and the test fails).
void PingPong(uint32_t spin_ns, int rounds) {
  Pair pair(16384);
  const pid_t child = fork();
  if (child == 0) {
    uint32_t value = 0;
    for (int i = 0; i < rounds; ++i) {
      struct iovec in = {&value, sizeof value};
      RecvCall c = BlockingRecv(spin_ns);
      c.wait_all = true;
      const Transfer got = pair.client->Recv(pair.kernel[1], &in, 1, c);
      if (!Sent(got, sizeof value) || value != uint32_t(i)) _exit(4);
      ++value;
      struct iovec out = {&value, sizeof value};
      if (!Sent(pair.client->Send(pair.kernel[1], &out, 1, Blocking(spin_ns)), sizeof value)) {
        _exit(5);
      }
    }
    _exit(0);
  }
  pair.ParentKeepsServer();
  uint32_t value = 0;
  for (int i = 0; i < rounds; ++i) {
    value = uint32_t(i);
    struct iovec out = {&value, sizeof value};
    ASSERT_TRUE(Sent(pair.server->Send(pair.kernel[0], &out, 1, Blocking(spin_ns)), 4));
    struct iovec in = {&value, sizeof value};
    RecvCall call = BlockingRecv(spin_ns);
    call.wait_all = true;
    ASSERT_TRUE(Sent(pair.server->Recv(pair.kernel[0], &in, 1, call), 4));
    ASSERT_EQ(value, uint32_t(i + 1));
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(FastConnectionTest, PingPongThroughSleepsLosesNoWakeUp) { PingPong(0, 20000); }
TEST(FastConnectionTest, PingPongSpinningThenSleeping) { PingPong(2000, 20000); }

TEST(FastConnectionTest, StreamThroughSmallRingIsByteExact) {
  Pair pair(16384);
  constexpr size_t kTotal = 32 << 20;
  const pid_t child = fork();
  if (child == 0) {
    std::vector<uint8_t> chunk(10007);
    size_t sent = 0;
    while (sent < kTotal) {
      const size_t want = std::min(chunk.size(), kTotal - sent);
      for (size_t i = 0; i < want; ++i) chunk[i] = uint8_t((sent + i) % 251);
      struct iovec out = {chunk.data(), want};
      if (!Sent(pair.client->Send(pair.kernel[1], &out, 1, Blocking(0)), want)) _exit(6);
      sent += want;
    }
    pair.client->ShutdownWrite();
    _exit(0);
  }
  pair.ParentKeepsServer();
  std::vector<uint8_t> buffer(7919);
  size_t received = 0;
  size_t mismatches = 0;
  for (;;) {
    struct iovec in = {buffer.data(), buffer.size()};
    const Transfer got = pair.server->Recv(pair.kernel[0], &in, 1, BlockingRecv(0));
    if (got.outcome != Outcome::kDone) {
      EXPECT_EQ(got.outcome, Outcome::kUseKernel);  // end of stream: the kernel has the last word
      break;
    }
    for (size_t i = 0; i < got.bytes; ++i) {
      mismatches += buffer[i] != uint8_t((received + i) % 251);
    }
    received += got.bytes;
  }
  EXPECT_EQ(received, kTotal);
  EXPECT_EQ(mismatches, 0u);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(FastConnectionTest, PeerKilledWhileWeSleepWakesUs) {
  Pair pair(16384);
  const pid_t child = fork();
  if (child == 0) {
    pause();  // holds the connection (and its kernel socket), sends nothing
    _exit(0);
  }
  pair.ParentKeepsServer();
  std::thread killer([child] {
    usleep(100 * 1000);
    kill(child, SIGKILL);
  });
  char byte;
  struct iovec in = {&byte, 1};
  const Transfer got = pair.server->Recv(pair.kernel[0], &in, 1, BlockingRecv(0));
  killer.join();
  EXPECT_EQ(got.outcome, Outcome::kUseKernel);  // the socket layer then reports EOF/ECONNRESET
  waitpid(child, nullptr, 0);
}

TEST(FastConnectionTest, TimeoutAndNonBlockingMatchTcp) {
  Pair pair(16384);
  char byte;
  struct iovec in = {&byte, 1};
  RecvCall nonblocking;
  nonblocking.nonblocking = true;
  EXPECT_EQ(pair.server->Recv(pair.kernel[0], &in, 1, nonblocking).outcome, Outcome::kWouldWait);
  RecvCall timed = BlockingRecv(0);
  timed.wait.timeout = {0, 50000};
  EXPECT_EQ(pair.server->Recv(pair.kernel[0], &in, 1, timed).outcome, Outcome::kTimedOut);
  // Fill the ring: a non-blocking send then writes what fits and says EAGAIN.
  std::vector<uint8_t> big(100000, 1);
  struct iovec out = {big.data(), big.size()};
  SendCall send_nonblocking;
  send_nonblocking.nonblocking = true;
  EXPECT_TRUE(Sent(pair.client->Send(pair.kernel[1], &out, 1, send_nonblocking), 16384u));
  EXPECT_EQ(pair.client->Send(pair.kernel[1], &out, 1, send_nonblocking).outcome,
            Outcome::kWouldWait);
}

// ---- Moving to kernel TCP while both programs go on (SwitchToKernel) ----

uint8_t StreamByte(int direction, uint64_t i) { return uint8_t((i * 131 + direction * 7) % 251); }

// Sends `total` bytes of stream `direction`: through the rings while they take them, then
// through `kernel` (a socketpair standing in for the kernel connection). `switch_at`: this
// writer switches the connection after that many bytes (0: never).
bool WriteStream(FastConnection &end, int kernel, int direction, uint64_t total,
                 uint64_t switch_at) {
  std::vector<uint8_t> chunk(3001);
  uint64_t sent = 0;
  bool on_kernel = false;
  while (sent < total) {
    if (switch_at != 0 && sent >= switch_at) {
      end.SwitchToKernel();
      switch_at = 0;
    }
    const size_t want = size_t(std::min<uint64_t>(chunk.size(), total - sent));
    for (size_t i = 0; i < want; ++i) chunk[i] = StreamByte(direction, sent + i);
    if (!on_kernel) {
      struct iovec out = {chunk.data(), want};
      const Transfer n = end.Send(kernel, &out, 1, Blocking(0));
      if (n.outcome == Outcome::kDone) {
        sent += n.bytes;
        continue;
      }
      if (n.outcome != Outcome::kUseKernel) return false;
      on_kernel = true;
    }
    const ssize_t n = send(kernel, chunk.data(), want, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += uint64_t(n);
  }
  return true;
}

// Reads `total` bytes of stream `direction`, from the rings, then from `kernel`.
// `must_end_on_kernel`: the writer of this stream switches half-way, so its end is read from
// the kernel connection. (A writer that only follows the peer's switch moves on its next send;
// if its whole stream was already in the ring by then, the stream ends on the ring, whole.)
bool ReadStream(FastConnection &end, int kernel, int direction, uint64_t total,
                bool must_end_on_kernel) {
  std::vector<uint8_t> buffer(4099);
  uint64_t received = 0;
  bool on_kernel = false;
  while (received < total) {
    size_t got = 0;
    if (!on_kernel) {
      struct iovec in = {buffer.data(), buffer.size()};
      const Transfer n = end.Recv(kernel, &in, 1, BlockingRecv(0));
      if (n.outcome == Outcome::kUseKernel) {
        on_kernel = true;
        continue;
      }
      if (n.outcome != Outcome::kDone) return false;
      got = n.bytes;
    } else {
      const ssize_t n = recv(kernel, buffer.data(), buffer.size(), 0);
      if (n <= 0) return false;
      got = size_t(n);
    }
    for (size_t i = 0; i < got; ++i) {
      if (buffer[i] != StreamByte(direction, received + i)) return false;
    }
    received += got;
  }
  return on_kernel || !must_end_on_kernel;
}

// Both directions stream through small rings; one writer switches half-way. Every byte of both
// streams arrives once and in order; the switching writer's stream ends on the kernel
// connection, and so does the other unless it was wholly written before that writer followed.
void SwitchMidStream(bool server_switches) {
  constexpr uint64_t kTotal = 8 << 20;
  Pair pair(16384);
  const pid_t child = fork();
  if (child == 0) {
    close(pair.kernel[0]);
    bool read_ok = false;
    std::thread reader(
        [&] { read_ok = ReadStream(*pair.client, pair.kernel[1], 1, kTotal, server_switches); });
    const bool wrote =
        WriteStream(*pair.client, pair.kernel[1], 0, kTotal, server_switches ? 0 : kTotal / 2);
    reader.join();
    _exit(wrote && read_ok ? 0 : 7);
  }
  pair.ParentKeepsServer();
  bool read_ok = false;
  std::thread reader(
      [&] { read_ok = ReadStream(*pair.server, pair.kernel[0], 0, kTotal, !server_switches); });
  EXPECT_TRUE(
      WriteStream(*pair.server, pair.kernel[0], 1, kTotal, server_switches ? kTotal / 2 : 0));
  reader.join();
  EXPECT_TRUE(read_ok);
  EXPECT_TRUE(pair.server->WritesGoToKernel());
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(FastConnectionTest, SwitchToKernelMidStreamKeepsBothStreamsWhole) { SwitchMidStream(true); }
TEST(FastConnectionTest, PeerSwitchingMidStreamKeepsBothStreamsWhole) { SwitchMidStream(false); }

TEST(FastConnectionTest, SwitchWakesAReaderWaitingOnTheRing) {
  // The peer switches while this end sleeps for ring data: it wakes, and once the peer's
  // next bytes travel the kernel connection, reads them there.
  Pair pair(16384);
  std::thread switcher([&] {
    usleep(50 * 1000);
    pair.server->SwitchToKernel();
    usleep(20 * 1000);
    EXPECT_EQ(send(pair.kernel[0], "k", 1, 0), 1);
  });
  char byte = 0;
  struct iovec in = {&byte, 1};
  const Transfer got = pair.client->Recv(pair.kernel[1], &in, 1, BlockingRecv(0));
  switcher.join();
  EXPECT_EQ(got.outcome, Outcome::kUseKernel);
  EXPECT_EQ(recv(pair.kernel[1], &byte, 1, 0), 1);
  EXPECT_EQ(byte, 'k');
  EXPECT_TRUE(pair.client->WritesGoToKernel());  // its next send follows
}

// Growing windows leave the slot for areas of the producer's region; the consumer finds them
// through the offsets the producer publishes, and both give them back when done.
TEST(FastConnectionTest, LargeWindowsLiveInTheProducersRegionAndGoBack) {
  Pair pair(session::kDefaultRingBytes);
  std::vector<uint8_t> big(1 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7);
  struct iovec out = {big.data(), big.size()};
  SendCall nonblocking;
  nonblocking.nonblocking = true;
  // Unread, the ring grows to take it all (as kernel TCP takes a large write).
  EXPECT_TRUE(Sent(pair.client->Send(pair.kernel[1], &out, 1, nonblocking), big.size()));
  std::vector<uint8_t> back(big.size());
  struct iovec in = {back.data(), back.size()};
  RecvCall all = BlockingRecv(0);
  all.wait_all = true;
  EXPECT_TRUE(Sent(pair.server->Recv(pair.kernel[0], &in, 1, all), back.size()));
  EXPECT_EQ(back, big);
  EXPECT_EQ(pair.client->Close(pair.kernel[1]), false);
  EXPECT_EQ(pair.server->Close(pair.kernel[0]), false);
  EXPECT_EQ(pair.arena.client->done_slots + pair.arena.server->done_slots, 1u);
}

}  // namespace
}  // namespace loopfast

namespace loopfast {
namespace {
TEST(FastConnectionTest, ServerToClientLargeStreamIsExact) {
  Pair pair(session::kDefaultRingBytes);
  std::vector<uint8_t> big(1 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7 + i / 251);
  std::thread writer([&] {
    size_t sent = 0;
    while (sent < big.size()) {
      const size_t want = std::min<size_t>(big.size() - sent, 70000);
      struct iovec out = {big.data() + sent, want};
      const Transfer t = pair.server->Send(pair.kernel[0], &out, 1, Blocking(0));
      ASSERT_EQ(t.outcome, Outcome::kDone);
      sent += t.bytes;
    }
  });
  std::vector<uint8_t> back(big.size());
  size_t got = 0;
  while (got < back.size()) {
    struct iovec in = {back.data() + got, back.size() - got};
    const Transfer t = pair.client->Recv(pair.kernel[1], &in, 1, BlockingRecv(0));
    ASSERT_EQ(t.outcome, Outcome::kDone);
    got += t.bytes;
  }
  writer.join();
  size_t first = 0;
  while (first < big.size() && big[first] == back[first]) ++first;
  EXPECT_EQ(first, big.size());
}
}  // namespace
}  // namespace loopfast
