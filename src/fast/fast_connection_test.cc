// The wait protocol and the connection data path between two processes, without sockets'
// rendezvous: the accepting side creates, a forked child attaches to the same descriptors.
#include "socket/fast_connection.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

namespace loopfast {
namespace {

struct Pair {
  std::unique_ptr<FastConnection> server;
  PeerHandles peer;
};

Pair MakePair(uint32_t capacity) {
  Pair pair;
  Result<std::unique_ptr<FastConnection>> created =
      FastConnection::Create(capacity, capacity, &pair.peer);
  EXPECT_TRUE(created.ok()) << created.error();
  pair.server = std::move(created.value());
  return pair;
}

std::unique_ptr<FastConnection> AttachInChild(const PeerHandles &peer) {
  Result<std::unique_ptr<FastConnection>> attached =
      FastConnection::Attach(peer.memory_fd, peer.data_bell_fd, peer.space_bell_fd);
  if (!attached.ok()) _exit(3);
  return std::move(attached.value());
}

void ClosePeerHandles(const PeerHandles &peer) {
  close(peer.memory_fd);
  close(peer.data_bell_fd);
  close(peer.space_bell_fd);
}

SendCall Blocking(uint32_t spin_ns) {
  SendCall call;
  call.wait.spin_ns = spin_ns;
  return call;
}

RecvCall BlockingRecv(uint32_t spin_ns) {
  RecvCall call;
  call.wait.spin_ns = spin_ns;
  return call;
}

// Ping-pong with no spinning: every hand-off goes through a sleep and a doorbell. A lost
// wake-up would hang here (the child is killed by the bounded wait and the test fails).
void PingPong(uint32_t spin_ns, int rounds) {
  Pair pair = MakePair(16384);
  const pid_t child = fork();
  if (child == 0) {
    auto client = AttachInChild(pair.peer);
    uint32_t value = 0;
    for (int i = 0; i < rounds; ++i) {
      struct iovec in = {&value, sizeof value};
      Result<size_t> got = client->Recv(&in, 1, [&] {
        RecvCall c = BlockingRecv(spin_ns);
        c.wait_all = true;
        return c;
      }());
      if (!got.ok() || got.value() != sizeof value || value != uint32_t(i)) _exit(4);
      ++value;
      struct iovec out = {&value, sizeof value};
      if (!client->Send(-1, &out, 1, Blocking(spin_ns)).ok()) _exit(5);
    }
    _exit(0);
  }
  ClosePeerHandles(pair.peer);
  uint32_t value = 0;
  for (int i = 0; i < rounds; ++i) {
    value = uint32_t(i);
    struct iovec out = {&value, sizeof value};
    ASSERT_TRUE(pair.server->Send(-1, &out, 1, Blocking(spin_ns)).ok());
    struct iovec in = {&value, sizeof value};
    RecvCall call = BlockingRecv(spin_ns);
    call.wait_all = true;
    Result<size_t> got = pair.server->Recv(&in, 1, call);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(value, uint32_t(i + 1));
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(FastConnectionTest, PingPongThroughSleepsLosesNoWakeUp) { PingPong(0, 20000); }
TEST(FastConnectionTest, PingPongSpinningThenSleeping) { PingPong(2000, 20000); }

TEST(FastConnectionTest, StreamThroughSmallRingIsByteExact) {
  Pair pair = MakePair(16384);
  constexpr size_t kTotal = 32 << 20;
  const pid_t child = fork();
  if (child == 0) {
    auto client = AttachInChild(pair.peer);
    std::vector<uint8_t> chunk(10007);
    size_t sent = 0;
    while (sent < kTotal) {
      const size_t want = std::min(chunk.size(), kTotal - sent);
      for (size_t i = 0; i < want; ++i) chunk[i] = uint8_t((sent + i) % 251);
      struct iovec out = {chunk.data(), want};
      Result<size_t> n = client->Send(-1, &out, 1, Blocking(0));
      if (!n.ok() || n.value() != want) _exit(6);
      sent += want;
    }
    client->ShutdownWrite();
    _exit(0);
  }
  ClosePeerHandles(pair.peer);
  std::vector<uint8_t> buffer(7919);
  size_t received = 0;
  size_t mismatches = 0;
  for (;;) {
    struct iovec in = {buffer.data(), buffer.size()};
    Result<size_t> got = pair.server->Recv(&in, 1, BlockingRecv(0));
    if (!got.ok()) {
      EXPECT_EQ(got.error(), kUseKernel);  // end of stream: the kernel has the last word
      break;
    }
    for (size_t i = 0; i < got.value(); ++i)
      mismatches += buffer[i] != uint8_t((received + i) % 251);
    received += got.value();
  }
  EXPECT_EQ(received, kTotal);
  EXPECT_EQ(mismatches, 0u);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(FastConnectionTest, PeerKilledWhileWeSleepWakesUs) {
  Pair pair = MakePair(16384);
  const pid_t child = fork();
  if (child == 0) {
    auto client = AttachInChild(pair.peer);
    pause();  // holds the connection, sends nothing
    _exit(0);
  }
  ClosePeerHandles(pair.peer);
  std::thread killer([child] {
    usleep(100 * 1000);
    kill(child, SIGKILL);
  });
  char byte;
  struct iovec in = {&byte, 1};
  Result<size_t> got = pair.server->Recv(&in, 1, BlockingRecv(0));
  killer.join();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error(), kUseKernel);  // the socket layer then reports EOF/ECONNRESET
  waitpid(child, nullptr, 0);
}

TEST(FastConnectionTest, TimeoutAndNonBlockingMatchTcp) {
  Pair pair = MakePair(16384);
  auto client = FastConnection::Attach(dup(pair.peer.memory_fd), dup(pair.peer.data_bell_fd),
                                       dup(pair.peer.space_bell_fd));
  ClosePeerHandles(pair.peer);
  ASSERT_TRUE(client.ok());
  char byte;
  struct iovec in = {&byte, 1};
  RecvCall nonblocking;
  nonblocking.nonblocking = true;
  Result<size_t> got = pair.server->Recv(&in, 1, nonblocking);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error(), EAGAIN);
  RecvCall timed = BlockingRecv(0);
  timed.wait.timeout = {0, 50000};
  got = pair.server->Recv(&in, 1, timed);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error(), EAGAIN);
  // Fill the ring: a non-blocking send then writes what fits and says EAGAIN.
  std::vector<uint8_t> big(100000, 1);
  struct iovec out = {big.data(), big.size()};
  SendCall send_nonblocking;
  send_nonblocking.nonblocking = true;
  Result<size_t> sent = client.value()->Send(-1, &out, 1, send_nonblocking);
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(sent.value(), 16384u);
  sent = client.value()->Send(-1, &out, 1, send_nonblocking);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error(), EAGAIN);
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
      Result<size_t> n = end.Send(kernel, &out, 1, Blocking(0));
      if (n.ok()) {
        sent += n.value();
        continue;
      }
      if (n.error() != kUseKernel) return false;
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
      Result<size_t> n = end.Recv(&in, 1, BlockingRecv(0));
      if (!n.ok() && n.error() != kUseKernel) return false;
      if (!n.ok()) {
        on_kernel = true;
        continue;
      }
      got = n.value();
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
  int kernel[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, kernel), 0);
  Pair pair = MakePair(16384);
  const pid_t child = fork();
  if (child == 0) {
    close(kernel[0]);
    auto client = AttachInChild(pair.peer);
    bool read_ok = false;
    std::thread reader(
        [&] { read_ok = ReadStream(*client, kernel[1], 1, kTotal, server_switches); });
    const bool wrote = WriteStream(*client, kernel[1], 0, kTotal, server_switches ? 0 : kTotal / 2);
    reader.join();
    _exit(wrote && read_ok ? 0 : 7);
  }
  close(kernel[1]);
  ClosePeerHandles(pair.peer);
  bool read_ok = false;
  std::thread reader(
      [&] { read_ok = ReadStream(*pair.server, kernel[0], 0, kTotal, !server_switches); });
  EXPECT_TRUE(WriteStream(*pair.server, kernel[0], 1, kTotal, server_switches ? kTotal / 2 : 0));
  reader.join();
  EXPECT_TRUE(read_ok);
  EXPECT_TRUE(pair.server->WritesGoToKernel());
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  close(kernel[0]);
}

TEST(FastConnectionTest, SwitchToKernelMidStreamKeepsBothStreamsWhole) { SwitchMidStream(true); }
TEST(FastConnectionTest, PeerSwitchingMidStreamKeepsBothStreamsWhole) { SwitchMidStream(false); }

TEST(FastConnectionTest, SwitchWakesAReaderWaitingOnTheRing) {
  // The peer switches while this end sleeps for ring data: it wakes, and once the peer's
  // next bytes travel the kernel connection, reads them there.
  int kernel[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, kernel), 0);
  Pair pair = MakePair(16384);
  auto client = FastConnection::Attach(dup(pair.peer.memory_fd), dup(pair.peer.data_bell_fd),
                                       dup(pair.peer.space_bell_fd));
  ClosePeerHandles(pair.peer);
  ASSERT_TRUE(client.ok());
  std::thread switcher([&] {
    usleep(50 * 1000);
    pair.server->SwitchToKernel();
    usleep(20 * 1000);
    EXPECT_EQ(send(kernel[0], "k", 1, 0), 1);
  });
  char byte = 0;
  struct iovec in = {&byte, 1};
  Result<size_t> got = client.value()->Recv(&in, 1, BlockingRecv(0));
  switcher.join();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error(), kUseKernel);
  EXPECT_EQ(recv(kernel[1], &byte, 1, 0), 1);
  EXPECT_EQ(byte, 'k');
  EXPECT_TRUE(client.value()->WritesGoToKernel());  // its next send follows
  close(kernel[0]);
  close(kernel[1]);
}

}  // namespace
}  // namespace loopfast
