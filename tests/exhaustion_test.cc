// Resource exhaustion (issue 6, item 5): a process out of descriptors or address space at each
// step of the rendezvous, and a burst of thousands of connections. The answer must always be a
// working connection — fast, or cleanly kernel TCP — or a clear error; never a half-open fast
// connection, a hang, a lost byte or a leaked descriptor.
//
// Long form: LOOPFAST_CAMPAIGN_BURST=10000 build/tests/e2e_tests --gtest_filter='ExhaustionTest.*'
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

using Clock = std::chrono::steady_clock;

// Exit codes of the child that plays the constrained side.
// kReset: the connection was reset (ECONNRESET) — what an accepting process that cannot take a
// connection its client already writes to does (docs/design.md, "When the accepting side cannot
// take a connection"): loud, never a hang or a silent loss.
enum ChildResult { kFastOk = 10, kKernelOk = 11, kClearError = 12, kReset = 13 };

// Takes every free descriptor but `leave` (up to a limit of `limit` open ones); returns them.
std::vector<int> ExhaustDescriptors(int leave, rlim_t limit) {
  const rlimit lower = {limit, limit};
  setrlimit(RLIMIT_NOFILE, &lower);
  std::vector<int> taken;
  for (;;) {
    const int fd = dup(0);
    if (fd < 0) break;
    taken.push_back(fd);
  }
  for (int i = 0; i < leave && !taken.empty(); ++i) {
    close(taken.back());
    taken.pop_back();
  }
  return taken;
}

// 64 KiB each way over `fd`, checked; then which path it took.
int ExchangeAndReport(int fd, bool first_sends) {
  const std::vector<uint8_t> out = Pattern(first_sends ? 1 : 2, 0, 64 << 10);
  std::vector<uint8_t> in(64 << 10);
  const timeval bound = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
  bool ok;
  errno = 0;
  if (first_sends) {
    ok = WriteAll(fd, out.data(), out.size()) && ReadAll(fd, in.data(), in.size());
  } else {
    ok = ReadAll(fd, in.data(), in.size()) && WriteAll(fd, out.data(), out.size());
  }
  if (!ok && (errno == ECONNRESET || errno == EPIPE)) return kReset;
  if (!ok || in != Pattern(first_sends ? 2 : 1, 0, 64 << 10)) return 1;
  const std::string path = ObservedPath(fd);
  return path == "fast" ? kFastOk : path == "kernel" ? kKernelOk : 2;
}

int OpenCount() { return OpenDescriptorCount(); }

// accept, or -1 when no connection came within `ms` (a side that failed early never connects).
int AcceptWithin(int listener, int ms) {
  pollfd ready = {listener, POLLIN, 0};
  if (poll(&ready, 1, ms) != 1) return -1;
  return accept(listener, nullptr, nullptr);
}

// The connecting side in a child with only `free_fds` descriptors left.
int ClientWithFewDescriptors(uint16_t port, int free_fds) {
  const int base = OpenCount();
  ExhaustDescriptors(free_fds, static_cast<rlim_t>(base + 64));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno == EMFILE ? kClearError : 3;
  loopfast_set_fast_path(fd, 1);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
    return errno == EMFILE || errno == ENFILE ? kClearError : 4;
  }
  return ExchangeAndReport(fd, true);
}

// A server in a child process: it listens (fast), constrains itself with `constrain` (returns
// false on failure), then runs `serve` on its listener. `*port` is where it listens.
pid_t SpawnServer(const std::function<bool()> &constrain, const std::function<int(int)> &serve,
                  uint16_t *port) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  const pid_t server = Spawn([&] {
    close(ready[0]);
    uint16_t listening = 0;
    const int listener = Listen(AF_INET, "127.0.0.1", true, &listening);
    if (!constrain()) return 7;
    if (write(ready[1], &listening, sizeof listening) != sizeof listening) return 5;
    close(ready[1]);
    return serve(listener);
  });
  close(ready[1]);
  if (read(ready[0], port, sizeof *port) != ssize_t(sizeof *port)) *port = 0;
  close(ready[0]);
  return server;
}

// For every number of free descriptors from 0 to 6, the client either works (fast or kernel
// TCP) or fails with a clear error; the server, with plenty, agrees on the path and the bytes.
TEST(ExhaustionTest, AClientOutOfDescriptorsAtEachRendezvousStepFallsBackCleanly) {
  for (int free_fds = 0; free_fds <= 6; ++free_fds) {
    SCOPED_TRACE("free descriptors: " + std::to_string(free_fds));
    uint16_t port = 0;
    const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
    ASSERT_GE(listener, 0);
    const auto start = Clock::now();
    const pid_t client = Spawn([&] { return ClientWithFewDescriptors(port, free_fds); });
    const int served = AcceptWithin(listener, 1500);
    int server_result = -1;
    if (served >= 0) {
      server_result = ExchangeAndReport(served, false);
      close(served);
    }
    const int client_result = Reap(client, 15000);
    close(listener);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (client_result == kClearError) {
      EXPECT_LT(served, 0);  // (a clear error before connect: no connection at all)
      continue;
    }
    ASSERT_TRUE(client_result == kFastOk || client_result == kKernelOk) << client_result;
    EXPECT_EQ(server_result, client_result) << "the two ends disagree on the path";
    EXPECT_LT(ms, 3000) << "a fallback a user would notice";
  }
}

// The accepting side in a child with only `free_fds` descriptors left once it listens.
TEST(ExhaustionTest, AServerOutOfDescriptorsAtEachRendezvousStepFallsBackCleanly) {
  for (int free_fds = 0; free_fds <= 8; ++free_fds) {
    SCOPED_TRACE("free descriptors: " + std::to_string(free_fds));
    uint16_t port = 0;
    const pid_t server = SpawnServer(
        [&] {
          ExhaustDescriptors(free_fds, static_cast<rlim_t>(OpenCount() + 64));
          return true;
        },
        [](int listener) {
          const int fd = AcceptWithin(listener, 1500);
          if (fd < 0) return errno == EMFILE ? int(kClearError) : 6;
          return ExchangeAndReport(fd, false);
        },
        &port);
    ASSERT_NE(port, 0);
    const auto start = Clock::now();
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    ASSERT_GE(fd, 0);
    int client_result = -1;
    std::thread exchange([&] { client_result = ExchangeAndReport(fd, true); });
    const int server_result = Reap(server, 15000);
    if (server_result == kClearError) shutdown(fd, SHUT_RDWR);  // accept failed: nobody answers
    exchange.join();
    close(fd);
    if (server_result == kClearError) continue;
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    // With too few descriptors to read a new session, the connection is reset on both ends
    // (its client may already be writing to its ring); with enough, both ends work alike.
    ASSERT_TRUE(server_result == kFastOk || server_result == kKernelOk || server_result == kReset)
        << server_result;
    EXPECT_EQ(client_result, server_result) << "the two ends disagree";
    EXPECT_LT(ms, 3000) << "a fallback a user would notice";
  }
}

// No address space for the session's memory: the server cannot read what the client may already
// have written, and resets the connection at once; the client sees ECONNRESET, not a hang.
TEST(ExhaustionTest, AServerThatCannotMapTheSessionResetsTheConnectionAtOnce) {
  uint16_t port = 0;
  const pid_t server = SpawnServer(
      [] {
        // Hardly any address space left to map rings in (the client asks for the largest).
        return LeaveLittleAddressSpace();
      },
      [](int listener) {
        const int fd = AcceptWithin(listener, 1500);
        if (fd < 0) return 6;
        return ExchangeAndReport(fd, false);
      },
      &port);
  ASSERT_NE(port, 0);
  const auto start = Clock::now();
  const int fd = TcpSocket(AF_INET, true);
  const int big = 64 << 20;  // asks for the largest ring
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
  const int client_result = ExchangeAndReport(fd, true);
  const int server_result = Reap(server, 15000);
  close(fd);
  EXPECT_EQ(server_result, client_result);
  EXPECT_EQ(client_result, kReset) << "the session could not be mapped: reset, at once";
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  EXPECT_LT(ms, 1500);
}

// Thousands of connections opened at once, each carrying a checked exchange, then closed: all
// work, every descriptor comes back, nothing is left in the file system.
TEST(ExhaustionTest, ABurstOfConnectionsAllWorkAndLeaveNothingBehind) {
  const LeftoverFiles leftovers;
  int count = 2000;
  if (const char *value = std::getenv("LOOPFAST_CAMPAIGN_BURST")) count = std::atoi(value);
  rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  const rlim_t wanted = rlim_t(count) * 4 + 256;  // room to spare: a fast end holds one descriptor
  limit.rlim_cur = std::max(limit.rlim_cur, wanted);
  limit.rlim_max = std::max(limit.rlim_max, wanted);  // root may raise it
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    GTEST_SKIP() << "cannot raise RLIMIT_NOFILE to " << wanted;
  }
  const int before = OpenCount();
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port, 4096);
  ASSERT_GE(listener, 0);
  const pid_t server = Spawn([&] {
    std::vector<int> accepted;
    for (int i = 0; i < count; ++i) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return 20;
      accepted.push_back(fd);
    }
    int fast = 0;
    for (int fd : accepted) {
      uint32_t value = 0;
      if (!ReadAll(fd, &value, sizeof value)) return 21;
      value = ~value;
      if (!WriteAll(fd, &value, sizeof value)) return 22;
      fast += ObservedPath(fd) == "fast";
    }
    for (int fd : accepted) close(fd);
    return fast == count ? 0 : 23;
  });
  close(listener);
  std::vector<int> clients;
  for (int i = 0; i < count; ++i) {
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    ASSERT_GE(fd, 0) << "connection " << i;
    clients.push_back(fd);
  }
  int fast = 0;
  for (int i = 0; i < count; ++i) {
    uint32_t value = uint32_t(i) * 2654435761u;
    ASSERT_TRUE(WriteAll(clients[i], &value, sizeof value));
    uint32_t answer = 0;
    ASSERT_TRUE(ReadAll(clients[i], &answer, sizeof answer));
    ASSERT_EQ(answer, ~value) << "connection " << i;
    fast += ObservedPath(clients[i]) == "fast";
  }
  for (int fd : clients) close(fd);
  EXPECT_EQ(Reap(server, 120000), 0);
  EXPECT_EQ(fast, count);
  EXPECT_EQ(OpenCount(), before);
  EXPECT_EQ(leftovers.New(), std::vector<std::string>{});
}

}  // namespace
}  // namespace loopfast::test
