// The blocking data path, as a program sees it. Each test runs the server in a child process
// and checks that the connection really was fast (loopfast says so and the kernel connection
// carried no data); where the answer is an errno, kernel TCP is run too as the reference.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A connected pair: `client` here, the server body running in a child on the accepted socket.
struct Connection {
  int client = -1;
  pid_t server = -1;
};

Connection Open(bool fast, const std::function<int(int)> &serve, int rcvbuf = 0) {
  uint16_t port = 0;
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(loopfast_set_fast_path(listener, fast), 0);
  if (rcvbuf > 0) setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
  EXPECT_EQ(listen(listener, 16), 0);
  socklen_t length = sizeof address;
  getsockname(listener, reinterpret_cast<sockaddr *>(&address), &length);
  port = ntohs(address.sin_port);
  Connection c;
  c.server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return 90;
    return serve(fd);
  });
  close(listener);
  c.client = Connect({AF_INET, "127.0.0.1", port}, fast);
  return c;
}

// Server exit codes: 0 fine, 1 wrong path, 2+ test-specific failures.
int ExpectPath(int fd, bool fast) { return ObservedPath(fd) == (fast ? "fast" : "kernel") ? 0 : 1; }

int Echo(int fd) {
  char buffer[65536];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n < 0) return 3;
    if (!WriteAll(fd, buffer, size_t(n))) return 4;
  }
  const int path = ExpectPath(fd, true);
  close(fd);
  return path;
}

TEST(DataPathTest, EveryReadAndWriteCallCarriesTheBytes) {
  Connection c = Open(true, Echo);
  const int fd = c.client;
  char out[64];
  ASSERT_EQ(write(fd, "write", 5), 5);
  ASSERT_EQ(read(fd, out, 5), 5);
  EXPECT_EQ(std::string(out, 5), "write");
  ASSERT_EQ(send(fd, "send", 4, MSG_NOSIGNAL | MSG_MORE), 4);
  ASSERT_TRUE(ReadAll(fd, out, 4));
  EXPECT_EQ(std::string(out, 4), "send");
  char a[] = "wri", b[] = "tev";
  iovec in_iov[2] = {{a, 3}, {b, 3}};
  ASSERT_EQ(writev(fd, in_iov, 2), 6);
  char x[2], y[4];
  iovec out_iov[2] = {{x, 2}, {y, 4}};
  ASSERT_EQ(recv(fd, out, 0, 0), 0);  // zero-length read: 0, nothing consumed
  ASSERT_TRUE(ReadAll(fd, out, 0));
  size_t got = 0;
  while (got < 6) {
    const ssize_t n = readv(fd, out_iov, 2);
    ASSERT_GT(n, 0);
    got += size_t(n);
    if (got < 6) {  // short read: gather the rest with recv
      ASSERT_TRUE(ReadAll(fd, got < 2 ? x + got : y + (got - 2), 6 - got));
      got = 6;
    }
  }
  EXPECT_EQ(std::string(x, 2) + std::string(y, 4), "writev");
  msghdr message{};
  char payload[] = "sendmsg";
  iovec one = {payload, 7};
  message.msg_iov = &one;
  message.msg_iovlen = 1;
  ASSERT_EQ(sendmsg(fd, &message, 0), 7);
  char received[7];
  iovec into = {received, 7};
  msghdr reply{};
  reply.msg_iov = &into;
  reply.msg_iovlen = 1;
  ASSERT_EQ(recvmsg(fd, &reply, MSG_WAITALL), 7);
  EXPECT_EQ(std::string(received, 7), "sendmsg");
  EXPECT_EQ(reply.msg_flags, 0);
  sockaddr_in ignored{};
  ASSERT_EQ(sendto(fd, "sendto", 6, 0, reinterpret_cast<sockaddr *>(&ignored), sizeof ignored), 6);
  sockaddr_storage from{};
  socklen_t from_length = sizeof from;
  ASSERT_EQ(recvfrom(fd, out, 6, MSG_WAITALL, reinterpret_cast<sockaddr *>(&from), &from_length),
            6);
  EXPECT_EQ(std::string(out, 6), "sendto");
  EXPECT_EQ(from_length, 0u);  // TCP reports no address
  EXPECT_EQ(ObservedPath(fd), "fast");
  close(fd);
  EXPECT_EQ(Reap(c.server), 0);
}

TEST(DataPathTest, PeekWaitAllAndDontWait) {
  Connection c = Open(true, [](int fd) {
    // Two writes 50 ms apart: a WAITALL reader must get both.
    if (!WriteAll(fd, "abcdef", 6)) return 2;
    usleep(50 * 1000);
    if (!WriteAll(fd, "ghij", 4)) return 2;
    char byte;
    if (recv(fd, &byte, 1, 0) != 0) return 3;
    return ExpectPath(fd, true);
  });
  const int fd = c.client;
  char out[16] = {};
  ASSERT_EQ(recv(fd, out, 3, MSG_PEEK | MSG_WAITALL), 3);
  EXPECT_EQ(std::string(out, 3), "abc");
  ASSERT_EQ(recv(fd, out, 10, MSG_WAITALL), 10);  // spans the second write
  EXPECT_EQ(std::string(out, 10), "abcdefghij");
  errno = 0;
  EXPECT_EQ(recv(fd, out, 1, MSG_DONTWAIT), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  EXPECT_EQ(ObservedPath(fd), "fast");
  close(fd);
  EXPECT_EQ(Reap(c.server), 0);
}

TEST(DataPathTest, WaitAllReturnsPartialCountWhenTheTimeoutExpires) {
  Connection c = Open(true, [](int fd) {
    if (!WriteAll(fd, "12345", 5)) return 2;
    char byte;
    if (recv(fd, &byte, 1, 0) != 0) return 3;
    return ExpectPath(fd, true);
  });
  const timeval timeout = {0, 100 * 1000};
  ASSERT_EQ(setsockopt(c.client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
  char out[10];
  const auto start = Clock::now();
  EXPECT_EQ(recv(c.client, out, 10, MSG_WAITALL), 5);
  EXPECT_GE(MsSince(start), 90);
  EXPECT_LT(MsSince(start), 1000);
  close(c.client);
  EXPECT_EQ(Reap(c.server), 0);
}

TEST(DataPathTest, HalfCloseDeliversEverythingThenEndOfFileAndTheOtherWayStillWorks) {
  constexpr size_t kBytes = 3 << 20;
  Connection c = Open(true, [](int fd) {
    std::vector<uint8_t> buffer(kBytes);
    if (!ReadAll(fd, buffer.data(), kBytes)) return 2;
    if (buffer != Pattern(7, 0, kBytes)) return 3;
    char byte;
    if (recv(fd, &byte, 1, 0) != 0) return 4;  // the client's SHUT_WR
    if (recv(fd, &byte, 1, 0) != 0) return 5;  // and it stays at end-of-file
    if (!WriteAll(fd, "reply", 5)) return 6;   // the other direction is still open
    const int path = ExpectPath(fd, true);
    close(fd);
    return path;
  });
  const std::vector<uint8_t> data = Pattern(7, 0, kBytes);
  ASSERT_TRUE(WriteAll(c.client, data.data(), data.size()));
  ASSERT_EQ(shutdown(c.client, SHUT_WR), 0);
  errno = 0;
  EXPECT_EQ(send(c.client, "x", 1, MSG_NOSIGNAL), -1);
  EXPECT_EQ(errno, EPIPE);  // as TCP: writing after our own SHUT_WR
  char out[5];
  ASSERT_TRUE(ReadAll(c.client, out, 5));
  EXPECT_EQ(std::string(out, 5), "reply");
  char byte;
  EXPECT_EQ(recv(c.client, &byte, 1, 0), 0);
  EXPECT_EQ(ObservedPath(c.client), "fast");
  close(c.client);
  EXPECT_EQ(Reap(c.server), 0);
}

// Closing rings the peer's doorbell only when the peer announced a sleep: a peer asleep in
// recv() or in poll() (long past its spin) must wake with end-of-file all the same.
TEST(DataPathTest, AClosingPeerWakesAReaderAsleepInRecvAndOneAsleepInPoll) {
  for (const bool in_poll : {false, true}) {
    Connection c = Open(true, [](int fd) {
      const int path = ExpectPath(fd, true);
      usleep(200 * 1000);  // the client is asleep by now
      close(fd);
      return path;
    });
    const Clock::time_point start = Clock::now();
    if (in_poll) {
      struct pollfd pfd = {c.client, POLLIN, 0};
      ASSERT_EQ(poll(&pfd, 1, 10000), 1);
      EXPECT_NE(pfd.revents & POLLIN, 0);
    }
    char byte;
    EXPECT_EQ(recv(c.client, &byte, 1, 0), 0) << (in_poll ? "after poll" : "blocking recv");
    EXPECT_LT(MsSince(start), 5000.0);
    EXPECT_EQ(ObservedPath(c.client), "fast");
    close(c.client);
    EXPECT_EQ(Reap(c.server), 0);
  }
}

TEST(DataPathTest, ShutdownReadEndsReadsAtOnce) {
  Connection c = Open(true, [](int fd) {
    char byte;
    if (recv(fd, &byte, 1, 0) != 0) return 2;
    return 0;
  });
  ASSERT_EQ(shutdown(c.client, SHUT_RD), 0);
  char byte;
  const auto start = Clock::now();
  EXPECT_EQ(recv(c.client, &byte, 1, 0), 0);
  EXPECT_LT(MsSince(start), 500);
  EXPECT_EQ(shutdown(c.client, SHUT_RDWR), 0);
  close(c.client);
  EXPECT_EQ(Reap(c.server), 0);
}

TEST(DataPathTest, CloseWithDataInFlightDeliversIt) {
  constexpr size_t kBytes = 1 << 20;
  Connection c = Open(true, [](int fd) {
    usleep(200 * 1000);  // the client has closed by now; its bytes must still be here
    std::vector<uint8_t> buffer(kBytes);
    if (!ReadAll(fd, buffer.data(), kBytes)) return 2;
    if (buffer != Pattern(3, 0, kBytes)) return 3;
    char byte;
    if (recv(fd, &byte, 1, 0) != 0) return 4;
    return ExpectPath(fd, true);
  });
  const std::vector<uint8_t> data = Pattern(3, 0, kBytes);
  // The ring is smaller than the data: a thread writes, and closes as soon as it is written.
  ASSERT_TRUE(WriteAll(c.client, data.data(), data.size()));
  EXPECT_EQ(ObservedPath(c.client), "fast");
  close(c.client);
  EXPECT_EQ(Reap(c.server), 0);
}

TEST(DataPathTest, ClosingWithUnreadDataResetsThePeer) {
  for (bool fast : {false, true}) {
    SCOPED_TRACE(fast ? "fast path" : "kernel TCP");
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    Connection c = Open(fast, [&](int fd) {
      if (!WriteAll(fd, "unread", 6)) return 2;
      char byte;
      if (read(ready[0], &byte, 1) != 1) return 3;  // the client has closed
      usleep(50 * 1000);
      errno = 0;
      const ssize_t n = recv(fd, &byte, 1, 0);
      return n == -1 && errno == ECONNRESET ? 0 : 10 + int(n);
    });
    usleep(50 * 1000);  // the bytes arrive, unread
    int available = 0;
    ASSERT_EQ(ioctl(c.client, FIONREAD, &available), 0);
    EXPECT_EQ(available, 6);
    EXPECT_EQ(ObservedPath(c.client), fast ? "fast" : "kernel");
    close(c.client);
    ASSERT_EQ(write(ready[1], "x", 1), 1);
    EXPECT_EQ(Reap(c.server), 0);
    close(ready[0]);
    close(ready[1]);
  }
}

std::atomic<int> sigpipes{0};
void CountSigpipe(int) { ++sigpipes; }

TEST(DataPathTest, WritingAfterThePeerClosedGivesEpipeAndSigpipe) {
  struct sigaction action {
  }, previous{};
  action.sa_handler = CountSigpipe;
  sigaction(SIGPIPE, &action, &previous);
  for (bool fast : {false, true}) {
    SCOPED_TRACE(fast ? "fast path" : "kernel TCP");
    Connection c = Open(fast, [&](int fd) {
      const int path = ExpectPath(fd, fast);
      close(fd);
      return path;
    });
    EXPECT_EQ(Reap(c.server), 0);
    usleep(20 * 1000);
    int epipe_at = -1;
    for (int i = 0; i < 10 && epipe_at < 0; ++i) {
      errno = 0;
      if (send(c.client, "data", 4, MSG_NOSIGNAL) < 0) {
        EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET) << strerror(errno);
        epipe_at = i;
      }
      usleep(5 * 1000);
    }
    EXPECT_GE(epipe_at, 0);
    EXPECT_EQ(sigpipes.load(), 0);  // MSG_NOSIGNAL: none
    errno = 0;
    EXPECT_EQ(write(c.client, "data", 4), -1);
    EXPECT_EQ(errno, EPIPE);
    EXPECT_EQ(sigpipes.exchange(0), 1);
    close(c.client);
  }
  sigaction(SIGPIPE, &previous, nullptr);
}

TEST(DataPathTest, PeerKilledWhileWeWaitEndsTheWaitQuickly) {
  // Blocked in recv; then blocked in send on a full ring.
  for (bool in_send : {false, true}) {
    SCOPED_TRACE(in_send ? "blocked in send" : "blocked in recv");
    Connection c = Open(true, [](int fd) {
      pause();  // never reads, never writes
      return fd;
    });
    std::thread killer([&] {
      usleep(150 * 1000);
      kill(c.server, SIGKILL);
    });
    const auto start = Clock::now();
    std::vector<uint8_t> data(8 << 20, 1);
    ssize_t result;
    errno = 0;
    if (in_send) {
      result = send(c.client, data.data(), data.size(), MSG_NOSIGNAL);
    } else {
      result = recv(c.client, data.data(), 1, 0);
    }
    const double waited = MsSince(start);
    killer.join();
    if (in_send) {
      // Partial count (what fitted before the peer died) or EPIPE/ECONNRESET; never all.
      EXPECT_TRUE((result > 0 && size_t(result) < data.size()) ||
                  (result < 0 && (errno == EPIPE || errno == ECONNRESET)))
          << result << " " << strerror(errno);
    } else {
      EXPECT_TRUE(result == 0 || (result < 0 && errno == ECONNRESET)) << result;
    }
    EXPECT_LT(waited, 150 + 1000);
    Reap(c.server);
    close(c.client);
  }
}

TEST(DataPathTest, ReceiveBufferSizeBoundsTheRingAndNothingIsDropped) {
  constexpr int kRcvbuf = 64 * 1024;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  Connection c = Open(
      true,
      [&](int fd) {
        char byte;
        if (read(ready[0], &byte, 1) != 1) return 2;  // start reading only when told
        std::vector<uint8_t> buffer(1 << 20);
        size_t total = 0;
        for (;;) {
          const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
          if (n < 0) return 3;
          if (n == 0) break;
          for (ssize_t i = 0; i < n; ++i) {
            if (buffer[size_t(i)] != PatternByte(5, total + size_t(i))) return 4;
          }
          total += size_t(n);
        }
        if (!WriteAll(fd, &total, sizeof total)) return 5;
        return ExpectPath(fd, true);
      },
      kRcvbuf);
  // Let the rendezvous finish so the ring, not the early buffer, takes the bytes.
  ASSERT_EQ(send(c.client, nullptr, 0, 0), 0);
  usleep(50 * 1000);
  EXPECT_EQ(loopfast_path_of(c.client), LOOPFAST_PATH_FAST);
  ASSERT_EQ(fcntl(c.client, F_SETFL, O_NONBLOCK), 0);
  size_t accepted = 0;
  std::vector<uint8_t> chunk;
  for (int i = 0; i < 1000; ++i) {
    chunk = Pattern(5, accepted, 4096);
    const ssize_t n = send(c.client, chunk.data(), chunk.size(), 0);
    if (n < 0) {
      EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
      break;
    }
    accepted += size_t(n);
  }
  // S10: the receiver's buffer bounds what is accepted (the ring rounds up to a power of two).
  EXPECT_GE(accepted, size_t(kRcvbuf / 2));
  EXPECT_LE(accepted, size_t(2 * kRcvbuf));
  // Blocking again: the rest waits for the reader instead of being dropped.
  ASSERT_EQ(fcntl(c.client, F_SETFL, 0), 0);
  ASSERT_EQ(write(ready[1], "x", 1), 1);
  const size_t more = 3 << 20;
  const std::vector<uint8_t> rest = Pattern(5, accepted, more);
  ASSERT_TRUE(WriteAll(c.client, rest.data(), rest.size()));
  ASSERT_EQ(shutdown(c.client, SHUT_WR), 0);
  size_t total = 0;
  ASSERT_TRUE(ReadAll(c.client, &total, sizeof total));
  EXPECT_EQ(total, accepted + more);
  close(c.client);
  EXPECT_EQ(Reap(c.server), 0);
  close(ready[0]);
  close(ready[1]);
}

TEST(DataPathTest, FionreadSoErrorTimeoutsAndAddresses) {
  Connection c = Open(true, [](int fd) {
    if (!WriteAll(fd, "0123456789", 10)) return 2;
    char byte;
    if (recv(fd, &byte, 1, 0) != 0) return 3;
    return ExpectPath(fd, true);
  });
  const int fd = c.client;
  int available = 0;
  for (int i = 0; i < 100 && available < 10; ++i) {
    ASSERT_EQ(ioctl(fd, FIONREAD, &available), 0);
    usleep(1000);
  }
  EXPECT_EQ(available, 10);
  int error = -1;
  socklen_t length = sizeof error;
  ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length), 0);
  EXPECT_EQ(error, 0);
  char out[10];
  ASSERT_TRUE(ReadAll(fd, out, 10));
  const timeval timeout = {0, 100 * 1000};
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
  auto start = Clock::now();
  errno = 0;
  EXPECT_EQ(recv(fd, out, 1, 0), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  EXPECT_GE(MsSince(start), 90);
  EXPECT_LT(MsSince(start), 1000);
  // SO_SNDTIMEO on a full ring.
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout), 0);
  std::vector<uint8_t> big(16 << 20, 1);
  start = Clock::now();
  const ssize_t sent = send(fd, big.data(), big.size(), MSG_NOSIGNAL);
  EXPECT_GT(sent, 0);
  EXPECT_LT(size_t(sent), big.size());
  EXPECT_LT(MsSince(start), 1000);
  sockaddr_in local{}, peer{};
  socklen_t local_length = sizeof local, peer_length = sizeof peer;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&local), &local_length), 0);
  ASSERT_EQ(getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &peer_length), 0);
  EXPECT_EQ(local.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  EXPECT_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  EXPECT_NE(peer.sin_port, 0);
  EXPECT_EQ(ObservedPath(fd), "fast");
  close(fd);
  Reap(c.server);
}

// 1,000 transfers of random sizes (1 B to 4 MiB, log-uniform), both directions at once, random
// read and write sizes; every byte checked. Then: no descriptor leaked, nothing left behind.
TEST(DataPathTest, ThousandRandomTransfersAreByteExact) {
  const LeftoverFiles leftovers;
  const char *forced = std::getenv("LOOPFAST_TEST_SEED");
  const unsigned base =
      forced ? unsigned(std::strtoul(forced, nullptr, 10)) : unsigned(std::random_device{}());
  SCOPED_TRACE("seed " + std::to_string(base) +
               " (reproduce: LOOPFAST_TEST_SEED=" + std::to_string(base) + ")");
  const int descriptors_before = OpenDescriptorCount();
  constexpr int kConnections = 50;
  constexpr int kTransfersPerDirection = 10;  // 50 × 10 × 2 directions = 1,000 transfers
  auto sizes_for = [](unsigned s) {
    std::mt19937 rng(s);
    std::vector<size_t> sizes;
    std::uniform_real_distribution<double> log_size(0, std::log(double(4 << 20)));
    for (int i = 0; i < kTransfersPerDirection; ++i) {
      sizes.push_back(std::max<size_t>(1, size_t(std::exp(log_size(rng)))));
    }
    return sizes;
  };
  auto send_all = [](int fd, unsigned s, const std::vector<size_t> &sizes) {
    std::mt19937 rng(s ^ 0x5eed);
    uint64_t offset = 0;
    for (size_t size : sizes) {
      std::vector<uint8_t> data = Pattern(s, offset, size);
      size_t done = 0;
      while (done < size) {
        const size_t piece = std::min(size - done, size_t(1 + rng() % (256 << 10)));
        if (!WriteAll(fd, data.data() + done, piece)) return false;
        done += piece;
      }
      offset += size;
    }
    return true;
  };
  auto receive_all = [](int fd, unsigned s, const std::vector<size_t> &sizes) {
    std::mt19937 rng(s ^ 0xbeef);
    uint64_t total = 0;
    for (size_t size : sizes) total += size;
    std::vector<uint8_t> buffer(256 << 10);
    uint64_t offset = 0;
    while (offset < total) {
      const size_t want = std::min<uint64_t>(total - offset, 1 + rng() % buffer.size());
      const ssize_t n = recv(fd, buffer.data(), want, 0);
      if (n <= 0) return false;
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[size_t(i)] != PatternByte(s, offset + uint64_t(i))) return false;
      }
      offset += uint64_t(n);
    }
    return true;
  };
  for (int k = 0; k < kConnections; ++k) {
    const unsigned up = base * 7919u + unsigned(k) * 2u, down = up + 1;
    Connection c = Open(true, [&](int fd) {
      std::thread writer([&] { send_all(fd, down, sizes_for(down)); });
      const bool ok = receive_all(fd, up, sizes_for(up));
      writer.join();
      const int path = ExpectPath(fd, true);
      close(fd);
      return ok ? path : 2;
    });
    bool sent = true;
    std::thread writer([&] { sent = send_all(c.client, up, sizes_for(up)); });
    const bool received = receive_all(c.client, down, sizes_for(down));
    writer.join();
    ASSERT_TRUE(sent && received) << "connection " << k;
    ASSERT_EQ(ObservedPath(c.client), "fast");
    close(c.client);
    ASSERT_EQ(Reap(c.server), 0) << "connection " << k;
  }
  EXPECT_EQ(OpenDescriptorCount(), descriptors_before);
  EXPECT_EQ(leftovers.New(), std::vector<std::string>{});
}

// Non-blocking mode set each way a program sets it: EAGAIN exactly where kernel TCP gives it
// (nothing to read; no room), a partial write before it, and blocking again once cleared.
enum class NonBlockingWay { kSocketFlag, kAccept4Flag, kFcntl, kIoctl };

struct NonBlockingStory {
  int empty_recv_errno = 0;
  bool partial_write_seen = false;
  int full_send_errno = 0;
  bool blocks_again = false;
  std::string path;
};

NonBlockingStory RunNonBlocking(bool fast, NonBlockingWay way) {
  NonBlockingStory story;
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", fast, &port);
  int client = -1;
  if (way == NonBlockingWay::kSocketFlag) {
    client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fast) {
      EXPECT_EQ(loopfast_set_fast_path(client, 1), 0);
    }
    struct sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr *>(&address), sizeof address), -1);
    EXPECT_EQ(errno, EINPROGRESS);
  } else {
    client = Connect({AF_INET, "127.0.0.1", port}, fast);
  }
  const int server =
      accept4(listener, nullptr, nullptr, way == NonBlockingWay::kAccept4Flag ? SOCK_NONBLOCK : 0);
  close(listener);
  // The socket under test: the client for the socket flag, else the server.
  const int fd = way == NonBlockingWay::kSocketFlag ? client : server;
  const int peer = fd == client ? server : client;
  int on = 1;
  if (way == NonBlockingWay::kFcntl) {
    EXPECT_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
  }
  if (way == NonBlockingWay::kIoctl) {
    EXPECT_EQ(ioctl(fd, FIONBIO, &on), 0);
  }
  struct pollfd writable = {fd, POLLOUT, 0};
  EXPECT_EQ(poll(&writable, 1, 5000), 1);  // the non-blocking connect, if any, is done
  char byte = 'x';
  // Settle the rendezvous with one byte each way.
  EXPECT_TRUE(WriteAll(peer, &byte, 1));
  EXPECT_TRUE(ReadAll(fd, &byte, 1));
  EXPECT_TRUE(WriteAll(fd, &byte, 1));
  EXPECT_TRUE(ReadAll(peer, &byte, 1));
  story.path = ObservedPath(fd);
  EXPECT_EQ(recv(fd, &byte, 1, 0), -1);
  story.empty_recv_errno = errno;
  std::vector<char> chunk(100000, 'p');
  for (int i = 0; i < 10000; ++i) {
    const ssize_t n = send(fd, chunk.data(), chunk.size(), 0);
    if (n < 0) {
      story.full_send_errno = errno;
      break;
    }
    if (size_t(n) < chunk.size()) story.partial_write_seen = true;
  }
  // Blocking again: a receive waits (here until its 100 ms timeout).
  on = 0;
  EXPECT_EQ(ioctl(fd, FIONBIO, &on), 0);
  EXPECT_EQ(fcntl(fd, F_SETFL, 0), 0);
  const struct timeval timeout = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(recv(fd, &byte, 1, 0), -1);
  story.blocks_again = std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(90);
  close(client);
  close(server);
  return story;
}

class NonBlockingTest : public ::testing::TestWithParam<NonBlockingWay> {};

TEST_P(NonBlockingTest, EagainAndPartialWritesAsOnKernelTcp) {
  const NonBlockingStory kernel = RunNonBlocking(false, GetParam());
  const NonBlockingStory fast = RunNonBlocking(true, GetParam());
  EXPECT_EQ(kernel.path, "kernel");
  EXPECT_EQ(fast.path, "fast");
  EXPECT_EQ(kernel.empty_recv_errno, EAGAIN);
  EXPECT_EQ(fast.empty_recv_errno, kernel.empty_recv_errno);
  EXPECT_TRUE(kernel.partial_write_seen);
  EXPECT_EQ(fast.partial_write_seen, kernel.partial_write_seen);
  EXPECT_EQ(kernel.full_send_errno, EAGAIN);
  EXPECT_EQ(fast.full_send_errno, kernel.full_send_errno);
  EXPECT_TRUE(kernel.blocks_again);
  EXPECT_EQ(fast.blocks_again, kernel.blocks_again);
}

INSTANTIATE_TEST_SUITE_P(Ways, NonBlockingTest,
                         ::testing::Values(NonBlockingWay::kSocketFlag,
                                           NonBlockingWay::kAccept4Flag, NonBlockingWay::kFcntl,
                                           NonBlockingWay::kIoctl));

}  // namespace
}  // namespace loopfast::test
