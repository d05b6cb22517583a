// Connections caught between states, then copied, shared between threads, inherited across
// fork, handed to a new program, or left behind by a killed process: a client whose
// non-blocking connect is still under way (kConnecting), a client connected but that has not
// read the listener's Offer yet (kPending, "right after connect, before any I/O"), a socket
// just accepted. Kernel TCP makes every one of these transparent: every byte arrives once and
// in order, nothing hangs, nothing is reset, accept() does not stall. The path may end up
// "kernel" where the rendezvous could not finish; that is fine when every byte is intact.
//
// Real processes, real sockets, real programs (cat, sh). Every wait is bounded (Bound, poll
// timeouts, Reap timeouts). Careful: fork() settles a connection still deciding its path
// (SettleBeforeFork), so helper processes are forked before the connection under test exists,
// or threads are used.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

// What "at once" means for a call that kernel TCP answers in microseconds. Generous: the
// machine is small and shared; the stalls this file looks for last 250 ms to 2 s.
constexpr int64_t kQuickMs = 200;

sockaddr_in LoopbackAddress(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// An opted-in, non-blocking socket whose connect to 127.0.0.1:`port` has started.
// *error: 0 when connect returned 0, else its errno (EINPROGRESS expected).
int StartConnect(uint16_t port, int *error) {
  const int fd = TcpSocket(AF_INET, true);
  if (fd < 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const sockaddr_in address = LoopbackAddress(port);
  const int ret = connect(fd, reinterpret_cast<const sockaddr *>(&address), sizeof address);
  *error = ret == 0 ? 0 : errno;
  return fd;
}

// Writes `sent` on `fd` while reading as many bytes back (an echo at the other end).
// Returns how many leading bytes came back right (sent.size() when all did).
size_t EchoedPrefix(int fd, const std::vector<uint8_t> &sent) {
  bool wrote = false;
  std::thread writer([&] { wrote = WriteAll(fd, sent.data(), sent.size()); });
  std::vector<uint8_t> back;
  back.reserve(sent.size());
  uint8_t buffer[65536];
  while (back.size() < sent.size()) {
    const ssize_t n = recv(fd, buffer, std::min(sizeof buffer, sent.size() - back.size()), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    back.insert(back.end(), buffer, buffer + n);
  }
  writer.join();
  size_t same = 0;
  while (same < back.size() && back[same] == sent[same]) ++same;
  return wrote ? same : std::min(same, sent.size() - 1);
}

// Reads until the end of the stream or an error; *error is 0 at the end of the stream.
std::vector<uint8_t> ReadToEnd(int fd, int *error) {
  std::vector<uint8_t> got;
  uint8_t buffer[65536];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      got.insert(got.end(), buffer, buffer + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    *error = n == 0 ? 0 : errno;
    return got;
  }
}

// Echoes what `fd` reads until the end of the stream; false on an error.
bool EchoUntilEnd(int fd) {
  std::vector<uint8_t> buffer(65536);
  for (;;) {
    const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
    if (n == 0) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || !WriteAll(fd, buffer.data(), size_t(n))) return false;
  }
}

// The end of an echo through cat: our end of stream reaches cat, cat exits, and its close
// comes back as the end of our input.
void FinishCat(int fd, pid_t cat) {
  EXPECT_EQ(shutdown(fd, SHUT_WR), 0);
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << std::strerror(errno);
  EXPECT_EQ(Reap(cat, 3000), 0);
}

// accept() and how long it took.
int TimedAccept(int listener, int64_t *ms) {
  const int64_t start = NowMs();
  const int fd = accept(listener, nullptr, nullptr);
  *ms = NowMs() - start;
  return fd;
}

// "fd -> target" for every open descriptor (a leak's report).
std::string DescriptorList() {
  std::string list;
  for (int fd = 0; fd < 65536; ++fd) {
    if (fcntl(fd, F_GETFD) < 0) continue;
    char target[256];
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    list += std::to_string(fd) + " -> " + std::string(target, n > 0 ? size_t(n) : 0) + "\n";
  }
  return list;
}

void Nap(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ===== dup, dup2, F_DUPFD of a pending client, then one of the copies is closed =====

enum class CopyWay { kDup, kDup2, kFcntlDupfd };

int CopyOf(int fd, CopyWay way) {
  switch (way) {
    case CopyWay::kDup:
      return dup(fd);
    case CopyWay::kDup2:
      return dup2(fd, 150);
    case CopyWay::kFcntlDupfd:
      return fcntl(fd, F_DUPFD, 100);
  }
  return -1;
}

// The client copies its pending socket, closes the original (the descriptor it connected
// with) and goes on with the copy; the listening program accepts only then. Kernel TCP:
// accept() returns at once, every byte arrives.
void CopyThenCloseTheOriginalBeforeTheAccept(CopyWay way) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int original = Connect({AF_INET, "127.0.0.1", port}, true);  // pending, no Offer yet
  ASSERT_GE(original, 0);
  const int copy = CopyOf(original, way);
  ASSERT_GE(copy, 0) << std::strerror(errno);
  ASSERT_EQ(close(original), 0);
  int64_t accept_ms = 0;
  const int server = TimedAccept(listener, &accept_ms);
  ASSERT_GE(server, 0) << std::strerror(errno);
  Bound(copy, 3000);
  Bound(server, 3000);
  EXPECT_LT(accept_ms, kQuickMs) << "accept() stalled " << accept_ms << " ms ("
                                 << loopfast_fallback_reason(server) << ")";
  EXPECT_TRUE(CarriesExactly(copy, server, 11, 1 << 20));
  EXPECT_TRUE(CarriesExactly(server, copy, 12, 1 << 20));
  const std::string path = ObservedPath(copy);
  EXPECT_TRUE(path == "fast" || path == "kernel") << path;
  EXPECT_EQ(ObservedPath(server), path);
  close(copy);
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);
  close(server);
  close(listener);
}

TEST(TransitionTest, DupOfAPendingClientThenCloseTheOriginalBeforeTheAccept) {
  CopyThenCloseTheOriginalBeforeTheAccept(CopyWay::kDup);
}

TEST(TransitionTest, Dup2OfAPendingClientThenCloseTheOriginalBeforeTheAccept) {
  CopyThenCloseTheOriginalBeforeTheAccept(CopyWay::kDup2);
}

TEST(TransitionTest, FcntlDupfdOfAPendingClientThenCloseTheOriginalBeforeTheAccept) {
  CopyThenCloseTheOriginalBeforeTheAccept(CopyWay::kFcntlDupfd);
}

// The reverse (the copy is closed, the original goes on), and the same with the Offer already
// waiting when the original is closed: both stay on the fast path, every byte intact.
TEST(TransitionTest, CopiesOfAPendingClientEitherOneClosedKeepTheFastPath) {
  for (const CopyWay way : {CopyWay::kDup, CopyWay::kDup2, CopyWay::kFcntlDupfd}) {
    for (const bool close_original : {false, true}) {
      SCOPED_TRACE(testing::Message()
                   << "way " << int(way) << ", close original " << close_original);
      uint16_t port = 0;
      const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
      ASSERT_GE(listener, 0);
      Bound(listener, 3000);
      const int original = Connect({AF_INET, "127.0.0.1", port}, true);
      ASSERT_GE(original, 0);
      const int copy = CopyOf(original, way);
      ASSERT_GE(copy, 0);
      int server = -1;
      int64_t accept_ms = 0;
      if (close_original) {
        server = TimedAccept(listener, &accept_ms);  // the Offer waits for the client
        ASSERT_EQ(close(original), 0);
      } else {
        ASSERT_EQ(close(copy), 0);  // the Hello names `original`, which stays
        server = TimedAccept(listener, &accept_ms);
      }
      ASSERT_GE(server, 0);
      const int kept = close_original ? copy : original;
      Bound(kept, 3000);
      Bound(server, 3000);
      EXPECT_LT(accept_ms, kQuickMs);
      EXPECT_TRUE(CarriesExactly(kept, server, 13, 256 << 10));
      EXPECT_TRUE(CarriesExactly(server, kept, 14, 256 << 10));
      EXPECT_EQ(ObservedPath(kept), "fast");
      EXPECT_EQ(ObservedPath(server), "fast");
      close(kept);
      char byte;
      EXPECT_EQ(recv(server, &byte, 1, 0), 0);
      close(server);
      close(listener);
    }
  }
}

// ===== close_range / closefrom in a child after fork of a pending socket =====

// What a child that keeps only `keep` does (besides 0-2): close_range below it, closefrom above.
int KeepOnly(int keep) {
  if (keep > 3 && close_range(3, unsigned(keep - 1), 0) != 0) return 20;
  closefrom(keep + 1);
  return 0;
}

// The child echoes 1 MiB on the one socket it kept; 0 when all went right.
int EchoMiBOn(int fd, uint64_t seed) {
  Bound(fd, 3000);
  std::vector<uint8_t> got(1 << 20);
  if (!ReadAll(fd, got.data(), got.size())) return 2;
  if (got != Pattern(seed, 0, got.size())) return 3;
  if (!WriteAll(fd, got.data(), got.size())) return 4;
  return 0;
}

// fork right after connect, the Offer waiting: the child closes everything but the client end
// (the parent's server end and listener included), the parent closes its client copy.
TEST(TransitionTest, ForkOfAPendingClientThenTheChildClosesEverythingElseAndTalks) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  const int server = accept(listener, nullptr, nullptr);  // the Offer waits for the client
  ASSERT_GE(client, 0);
  ASSERT_GE(server, 0);
  const pid_t child = Spawn([&] {
    if (const int failed = KeepOnly(client)) return failed;
    if (const int failed = EchoMiBOn(client, 21)) return failed;
    return ObservedPath(client) == "fast" ? 0 : 5;
  });
  close(client);
  close(listener);
  Bound(server, 3000);
  EXPECT_EQ(EchoedPrefix(server, Pattern(21, 0, 1 << 20)), size_t(1) << 20);
  EXPECT_EQ(ObservedPath(server), "fast");
  EXPECT_EQ(Reap(child, 5000), 0);
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);  // the child's exit was the last client copy
  close(server);
}

// The same fork before the listening program accepted: kernel TCP for both (the fork settles
// it), the parent closes its copy and accepts afterwards.
// Was known defect 1 (docs/compatibility.md): a listener shared by fork waited 1 s for a Hello
// that would not come. Sessions have no Hello to wait for.
TEST(TransitionTest, ForkOfAPendingClientBeforeTheAcceptThenTheChildClosesEverythingElse) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  const pid_t child = Spawn([&] {
    if (const int failed = KeepOnly(client)) return failed;
    if (const int failed = EchoMiBOn(client, 22)) return failed;
    return ObservedPath(client) == "fast" ? 0 : 5;
  });
  close(client);
  int64_t accept_ms = 0;
  const int server = TimedAccept(listener, &accept_ms);
  ASSERT_GE(server, 0);
  close(listener);
  Bound(server, 3000);
  EXPECT_LT(accept_ms, kQuickMs) << "accept() stalled " << accept_ms << " ms ("
                                 << loopfast_fallback_reason(server) << ")";
  EXPECT_EQ(EchoedPrefix(server, Pattern(22, 0, 1 << 20)), size_t(1) << 20);
  EXPECT_EQ(ObservedPath(server), "fast");
  EXPECT_EQ(Reap(child, 5000), 0);
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);
  close(server);
}

// ===== exec and posix_spawn of a program that inherits a transitional socket =====

// posix_spawn of cat with the pending client as its stdin/stdout, the Offer already waiting;
// the parent lets its copy go.
TEST(TransitionTest, SpawnedCatGetsAPendingClientWhoseOfferIsWaiting) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(client, 0);
  ASSERT_GE(server, 0);
  close(listener);
  const pid_t cat = SpawnCat(client, client);
  ASSERT_GT(cat, 0);
  close(client);
  Bound(server, 3000);
  EXPECT_EQ(EchoedPrefix(server, Pattern(31, 0, 1 << 20)), size_t(1) << 20);
  EXPECT_EQ(ObservedPath(server), "kernel");
  FinishCat(server, cat);
  close(server);
}

// The same before the listening program accepted (no Offer yet).
TEST(TransitionTest, SpawnedCatGetsAPendingClientBeforeTheAccept) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  const pid_t cat = SpawnCat(client, client);
  ASSERT_GT(cat, 0);
  close(client);
  int64_t accept_ms = 0;
  const int server = TimedAccept(listener, &accept_ms);
  ASSERT_GE(server, 0);
  close(listener);
  Bound(server, 3000);
  EXPECT_LT(accept_ms, kQuickMs) << "accept() stalled " << accept_ms << " ms ("
                                 << loopfast_fallback_reason(server) << ")";
  EXPECT_EQ(EchoedPrefix(server, Pattern(32, 0, 1 << 20)), size_t(1) << 20);
  EXPECT_EQ(ObservedPath(server), "kernel");
  FinishCat(server, cat);
  close(server);
}

// fork, then the child execs sh, which execs cat on the inherited pending client (the Offer
// waiting at the fork): every byte through cat.
TEST(TransitionTest, ExecInAForkedChildOfAPendingClient) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(client, 0);
  ASSERT_GE(server, 0);
  const pid_t child = Spawn([&] {
    if (dup2(client, 3) != 3) return 2;  // dup2 clears FD_CLOEXEC: sh and cat keep it
    execl("/bin/sh", "sh", "-c", "exec cat <&3 >&3", static_cast<char *>(nullptr));
    return 3;
  });
  close(client);
  close(listener);
  Bound(server, 3000);
  EXPECT_EQ(EchoedPrefix(server, Pattern(33, 0, 1 << 20)), size_t(1) << 20);
  EXPECT_EQ(ObservedPath(server), "kernel");
  FinishCat(server, child);
  close(server);
}

// A non-blocking connect still under way (EINPROGRESS, nothing asked since), then posix_spawn
// of cat with the socket; the spawning program keeps its copy (a supervisor that closes it
// when the child ends). Kernel TCP: cat echoes every byte.
TEST(TransitionTest, SpawnedCatGetsASocketWhoseNonBlockingConnectIsUnderWay) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  int error = 0;
  const int client = StartConnect(port, &error);
  ASSERT_GE(client, 0);
  ASSERT_EQ(error, EINPROGRESS) << std::strerror(error);
  // cat reads and writes blocking (O_NONBLOCK is shared with it); the connect goes on.
  ASSERT_EQ(fcntl(client, F_SETFL, 0), 0);
  const pid_t cat = SpawnCat(client, client);
  ASSERT_GT(cat, 0);
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  close(listener);
  Bound(server, 1500);
  const std::vector<uint8_t> sent = Pattern(34, 0, 64 << 10);
  const size_t echoed = EchoedPrefix(server, sent);
  EXPECT_EQ(echoed, sent.size()) << "cat echoed " << echoed << " of " << sent.size()
                                 << " bytes; server path " << ObservedPath(server);
  close(client);
  if (echoed == sent.size()) {
    FinishCat(server, cat);
  } else {
    kill(cat, SIGKILL);
    Reap(cat, 3000);
  }
  close(server);
}

// ===== a second thread on a pending socket while the first waits on it =====

// Thread A sleeps in poll(POLLIN) on the pending client; the main thread sends the request
// (blocking send), the listening program accepts 100 ms later and answers. A must wake for the
// answer, which must be exact.
TEST(TransitionTest, SendFromASecondThreadWhileTheFirstPollsAPendingClient) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  Bound(client, 3000);
  const std::vector<uint8_t> request = Pattern(41, 0, 1000), reply = Pattern(42, 0, 1000);
  std::atomic<int> server{-1};
  bool served = false;
  std::thread server_thread([&] {
    Nap(100);
    const int fd = accept(listener, nullptr, nullptr);
    server = fd;
    if (fd < 0) return;
    Bound(fd, 3000);
    std::vector<uint8_t> got(request.size());
    served = ReadAll(fd, got.data(), got.size()) && got == request &&
             WriteAll(fd, reply.data(), reply.size());
  });
  int polled = -1;
  short revents = 0;
  int64_t woke_ms = 0;
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] {
    const int64_t start = NowMs();
    struct pollfd pfd = {client, POLLIN, 0};
    polled = poll(&pfd, 1, 2500);
    woke_ms = NowMs() - start;
    revents = pfd.revents;
    if (polled == 1) read_ok = ReadAll(client, got.data(), got.size());
  });
  Nap(20);
  EXPECT_TRUE(WriteAll(client, request.data(), request.size()));
  reader.join();
  server_thread.join();
  EXPECT_TRUE(served);
  EXPECT_EQ(polled, 1) << "poll woke after " << woke_ms << " ms";
  EXPECT_TRUE((revents & POLLIN) != 0) << revents;
  EXPECT_TRUE(read_ok && got == reply);
  ASSERT_GE(server.load(), 0);
  const std::string path = ObservedPath(client);
  EXPECT_TRUE(path == "fast" || path == "kernel") << path;
  EXPECT_EQ(ObservedPath(server), path);
  close(client);
  close(server);
  close(listener);
}

// The same with epoll_wait, and a non-blocking send (buffered until the Offer comes).
TEST(TransitionTest, NonBlockingSendFromASecondThreadWhileTheFirstIsInEpollWait) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  Bound(client, 3000);
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(epfd, 0);
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = 4242;
  ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, client, &event), 0);
  const std::vector<uint8_t> request = Pattern(43, 0, 1000), reply = Pattern(44, 0, 1000);
  std::atomic<int> server{-1};
  bool served = false;
  std::thread server_thread([&] {
    Nap(100);
    const int fd = accept(listener, nullptr, nullptr);
    server = fd;
    if (fd < 0) return;
    Bound(fd, 3000);
    std::vector<uint8_t> got(request.size());
    served = ReadAll(fd, got.data(), got.size()) && got == request &&
             WriteAll(fd, reply.data(), reply.size());
  });
  int waited = -1;
  struct epoll_event woke = {};
  int64_t woke_ms = 0;
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] {
    const int64_t start = NowMs();
    waited = epoll_wait(epfd, &woke, 1, 2500);
    woke_ms = NowMs() - start;
    if (waited == 1) read_ok = ReadAll(client, got.data(), got.size());
  });
  Nap(20);
  EXPECT_EQ(send(client, request.data(), request.size(), MSG_DONTWAIT), ssize_t(request.size()));
  reader.join();
  server_thread.join();
  EXPECT_TRUE(served);
  EXPECT_EQ(waited, 1) << "epoll_wait woke after " << woke_ms << " ms";
  EXPECT_EQ(woke.data.u64, 4242u);
  EXPECT_TRUE(read_ok && got == reply);
  ASSERT_GE(server.load(), 0);
  const std::string path = ObservedPath(client);
  EXPECT_TRUE(path == "fast" || path == "kernel") << path;
  EXPECT_EQ(ObservedPath(server), path);
  close(epfd);
  close(client);
  close(server);
  close(listener);
}

// Thread A waits in a blocking recv on the pending client (the listening program accepts only
// 600 ms later); the main thread's non-blocking send must not wait for it. Kernel TCP: it
// returns at once.
// Was known defect 3 (docs/compatibility.md): a call waiting for the Offer held the socket's mutex.
// Sessions have no Offer: the client is fast when connect returns.
TEST(TransitionTest, NonBlockingSendIsNotHeldUpByARecvWaitingOnAPendingClient) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  Bound(client, 3000);
  const std::vector<uint8_t> request = Pattern(45, 0, 1000), reply = Pattern(46, 0, 1000);
  std::atomic<int> server{-1};
  bool served = false;
  std::thread server_thread([&] {
    Nap(600);
    const int fd = accept(listener, nullptr, nullptr);
    server = fd;
    if (fd < 0) return;
    Bound(fd, 3000);
    std::vector<uint8_t> got(request.size());
    served = ReadAll(fd, got.data(), got.size()) && got == request &&
             WriteAll(fd, reply.data(), reply.size());
  });
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] { read_ok = ReadAll(client, got.data(), got.size()); });
  Nap(50);
  const int64_t start = NowMs();
  const ssize_t sent = send(client, request.data(), request.size(), MSG_DONTWAIT);
  const int error = errno;
  const int64_t send_ms = NowMs() - start;
  EXPECT_EQ(sent, ssize_t(request.size())) << std::strerror(error);
  EXPECT_LT(send_ms, kQuickMs) << "a non-blocking send() took " << send_ms << " ms";
  if (sent < ssize_t(request.size())) {
    // Bytes the failed call did not take: the server must still get the whole request.
    const size_t done = sent > 0 ? size_t(sent) : 0;
    EXPECT_TRUE(WriteAll(client, request.data() + done, request.size() - done));
  }
  reader.join();
  server_thread.join();
  EXPECT_TRUE(served);
  EXPECT_TRUE(read_ok && got == reply);
  close(client);
  close(server);
  close(listener);
}

// A client whose recv waits for data while the listening program has not accepted yet (it
// accepts 600 ms later); `act` runs on another thread 50 ms in and must return at once, as on
// kernel TCP. The recv then gets the server's answer. Returns how long `act` took.
template <typename Act>
int64_t TimeBesideARecvOnAPendingClient(Act act, bool act_closes) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  EXPECT_GE(listener, 0);
  Bound(listener, 3000);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  EXPECT_GE(client, 0);
  Bound(client, 3000);
  const std::vector<uint8_t> reply = Pattern(49, 0, 1000);
  std::atomic<int> server{-1};
  bool served = false;
  std::thread server_thread([&] {
    Nap(600);
    const int fd = accept(listener, nullptr, nullptr);
    server = fd;
    if (fd >= 0) served = WriteAll(fd, reply.data(), reply.size());
  });
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] { read_ok = ReadAll(client, got.data(), got.size()); });
  Nap(50);
  const int64_t start = NowMs();
  act(client);
  const int64_t took = NowMs() - start;
  reader.join();
  server_thread.join();
  EXPECT_TRUE(served);
  EXPECT_TRUE(read_ok && got == reply) << "the recv under way got the answer";
  if (!act_closes) close(client);
  close(server);
  close(listener);
  return took;
}

// close() from another thread while a recv waits on the pending client: kernel TCP closes the
// descriptor at once (the recv goes on with the file).
// Was known defect 3 (docs/compatibility.md): a call waiting for the Offer held the socket's mutex.
// Sessions have no Offer: the client is fast when connect returns.
TEST(TransitionTest, CloseFromASecondThreadIsNotHeldUpByARecvWaitingOnAPendingClient) {
  int closed = -1;
  const int64_t took = TimeBesideARecvOnAPendingClient([&](int fd) { closed = close(fd); }, true);
  EXPECT_EQ(closed, 0);
  EXPECT_LT(took, kQuickMs) << "close() took " << took << " ms";
}

// fork() while another thread's recv waits on the pending client: kernel TCP forks at once.
// Was known defect 3 (docs/compatibility.md): a call waiting for the Offer held the socket's mutex.
// Sessions have no Offer: the client is fast when connect returns.
TEST(TransitionTest, ForkIsNotHeldUpByARecvWaitingOnAPendingClient) {
  pid_t child = -1;
  const int64_t took =
      TimeBesideARecvOnAPendingClient([&](int) { child = Spawn([] { return 0; }); }, false);
  EXPECT_LT(took, kQuickMs) << "fork() took " << took << " ms";
  EXPECT_EQ(Reap(child, 3000), 0);
}

// A non-blocking connect whose SYN the listener dropped (its accept queue was full), so the
// handshake completes only with the retransmission about 1 s later; meanwhile the program
// waits for the server's greeting with poll(POLLIN). Kernel TCP: poll returns as soon as the
// greeting arrives.
TEST(TransitionTest, PollForInputWhileANonBlockingConnectIsStillUnderWay) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port, /*backlog=*/0);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int filler = Connect({AF_INET, "127.0.0.1", port}, false);  // fills the accept queue
  ASSERT_GE(filler, 0);
  int error = 0;
  const int client = StartConnect(port, &error);
  ASSERT_GE(client, 0);
  ASSERT_EQ(error, EINPROGRESS);
  const std::vector<uint8_t> greeting = Pattern(47, 0, 100);
  std::atomic<int> server{-1};
  std::atomic<int64_t> greeted_at{0};
  std::thread server_thread([&] {
    Nap(50);
    const int first = accept(listener, nullptr, nullptr);  // makes room for the retransmission
    if (first >= 0) close(first);
    const int fd = accept(listener, nullptr, nullptr);
    server = fd;
    if (fd < 0) return;
    Bound(fd, 3000);
    if (WriteAll(fd, greeting.data(), greeting.size())) greeted_at = NowMs();
  });
  const int64_t start = NowMs();
  struct pollfd pfd = {client, POLLIN, 0};
  const int polled = poll(&pfd, 1, 1800);
  const int64_t woke = NowMs();
  server_thread.join();
  ASSERT_GE(server.load(), 0);
  ASSERT_NE(greeted_at.load(), 0);
  EXPECT_EQ(polled, 1);
  EXPECT_EQ(pfd.revents & POLLIN, POLLIN);
  EXPECT_LT(woke - greeted_at, kQuickMs)
      << "poll returned " << polled << " after " << woke - start << " ms; the greeting was sent "
      << greeted_at - start << " ms in";
  Bound(client, 2000);
  std::vector<uint8_t> got(greeting.size());
  EXPECT_TRUE(ReadAll(client, got.data(), got.size()) && got == greeting);
  close(client);
  close(server);
  close(filler);
  close(listener);
}

// The same with epoll_wait(EPOLLIN), the socket registered right after connect().
TEST(TransitionTest, EpollWaitForInputWhileANonBlockingConnectIsStillUnderWay) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port, /*backlog=*/0);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int filler = Connect({AF_INET, "127.0.0.1", port}, false);
  ASSERT_GE(filler, 0);
  int error = 0;
  const int client = StartConnect(port, &error);
  ASSERT_GE(client, 0);
  ASSERT_EQ(error, EINPROGRESS);
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(epfd, 0);
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = 77;
  ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, client, &event), 0);
  const std::vector<uint8_t> greeting = Pattern(48, 0, 100);
  std::atomic<int> server{-1};
  std::atomic<int64_t> greeted_at{0};
  std::thread server_thread([&] {
    Nap(50);
    const int first = accept(listener, nullptr, nullptr);
    if (first >= 0) close(first);
    const int fd = accept(listener, nullptr, nullptr);
    server = fd;
    if (fd < 0) return;
    Bound(fd, 3000);
    if (WriteAll(fd, greeting.data(), greeting.size())) greeted_at = NowMs();
  });
  const int64_t start = NowMs();
  struct epoll_event woke = {};
  const int waited = epoll_wait(epfd, &woke, 1, 1800);
  const int64_t end = NowMs();
  server_thread.join();
  ASSERT_GE(server.load(), 0);
  ASSERT_NE(greeted_at.load(), 0);
  EXPECT_EQ(waited, 1);
  EXPECT_LT(end - greeted_at, kQuickMs)
      << "epoll_wait returned " << waited << " after " << end - start
      << " ms; the greeting was sent " << greeted_at - start << " ms in";
  EXPECT_EQ(woke.data.u64, waited == 1 ? 77u : 0u);
  Bound(client, 2000);
  std::vector<uint8_t> got(greeting.size());
  EXPECT_TRUE(ReadAll(client, got.data(), got.size()) && got == greeting);
  close(epfd);
  close(client);
  close(server);
  close(filler);
  close(listener);
}

// ===== SIGKILL and exit =====

// A client process: connects, optionally sends `early` non-blocking (the listening program has
// not accepted: the bytes are "sent"), says so on `ready`, then waits to be killed (or exits
// at once when `exit_at_once`).
pid_t PendingClientProcess(uint16_t port, const std::vector<uint8_t> &early, int ready,
                           bool exit_at_once) {
  return Spawn([&] {
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    if (fd < 0) return 2;
    if (!early.empty() &&
        send(fd, early.data(), early.size(), MSG_DONTWAIT) != ssize_t(early.size())) {
      return 3;
    }
    if (write(ready, "r", 1) != 1) return 4;
    if (exit_at_once) return 0;  // _exit without close, as a crashing or careless program
    for (;;) pause();
  });
}

// What the listening program then sees: accept at once, then `expected` and the end of the
// stream (or a reset), within bounds.
void AcceptAndExpect(int listener, const std::vector<uint8_t> &expected) {
  int64_t accept_ms = 0;
  const int server = TimedAccept(listener, &accept_ms);
  ASSERT_GE(server, 0) << std::strerror(errno);
  EXPECT_LT(accept_ms, kQuickMs) << "accept() stalled " << accept_ms << " ms ("
                                 << loopfast_fallback_reason(server) << ")";
  Bound(server, 2000);
  int error = -1;
  const int64_t start = NowMs();
  const std::vector<uint8_t> got = ReadToEnd(server, &error);
  EXPECT_LT(NowMs() - start, 1000) << "the end of the stream came late";
  EXPECT_EQ(error, 0) << std::strerror(error);
  EXPECT_EQ(got.size(), expected.size()) << "bytes the client sent before it died";
  EXPECT_TRUE(got == expected);
  close(server);
}

TEST(TransitionTest, ClientKilledWhilePendingBeforeTheAccept) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  const pid_t client = PendingClientProcess(port, {}, ready[1], false);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(kill(client, SIGKILL), 0);
  EXPECT_EQ(Reap(client, 3000), -1);  // killed
  AcceptAndExpect(listener, {});
  close(ready[0]);
  close(ready[1]);
  close(listener);
}

// Kernel TCP delivers what send() accepted even if the sender dies right after.
// Was known defect 5 (docs/compatibility.md): bytes a non-blocking send accepted before the
// accept lived only in the process. They are in the session's shared memory now.
TEST(TransitionTest, ClientKilledRightAfterANonBlockingSendWhilePending) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  const std::vector<uint8_t> early = Pattern(51, 0, 1000);
  const pid_t client = PendingClientProcess(port, early, ready[1], false);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(kill(client, SIGKILL), 0);
  EXPECT_EQ(Reap(client, 3000), -1);
  AcceptAndExpect(listener, early);
  close(ready[0]);
  close(ready[1]);
  close(listener);
}

// The same with a client that exits (without closing) right after its send.
// Was known defect 5 (docs/compatibility.md): bytes a non-blocking send accepted before the
// accept lived only in the process. They are in the session's shared memory now.
TEST(TransitionTest, ClientExitingRightAfterANonBlockingSendWhilePending) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  const std::vector<uint8_t> early = Pattern(52, 0, 1000);
  const pid_t client = PendingClientProcess(port, early, ready[1], true);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  EXPECT_EQ(Reap(client, 3000), 0);
  AcceptAndExpect(listener, early);
  close(ready[0]);
  close(ready[1]);
  close(listener);
}

// Killed after the accept, its Offer unread: the server (fast already) sees the end of the
// stream or a reset, and its sends fail (EPIPE or ECONNRESET), never hang.
TEST(TransitionTest, ClientKilledWhilePendingAfterTheAccept) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  const pid_t client = PendingClientProcess(port, {}, ready[1], false);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  int64_t accept_ms = 0;
  const int server = TimedAccept(listener, &accept_ms);
  ASSERT_GE(server, 0);
  EXPECT_LT(accept_ms, kQuickMs);
  Bound(server, 2000);
  const std::vector<uint8_t> data = Pattern(53, 0, 1000);
  EXPECT_TRUE(WriteAll(server, data.data(), data.size()));  // never read by the client
  ASSERT_EQ(kill(client, SIGKILL), 0);
  EXPECT_EQ(Reap(client, 3000), -1);
  int64_t start = NowMs();
  int error = -1;
  const std::vector<uint8_t> got = ReadToEnd(server, &error);
  EXPECT_LT(NowMs() - start, 1000);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(error == 0 || error == ECONNRESET) << std::strerror(error);
  start = NowMs();
  ssize_t n = 0;
  for (int i = 0; i < 100 && n >= 0; ++i) n = send(server, data.data(), data.size(), MSG_NOSIGNAL);
  EXPECT_EQ(n, -1) << "sends to a dead peer kept succeeding";
  EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET) << std::strerror(errno);
  EXPECT_LT(NowMs() - start, 1000);
  close(server);
  close(ready[0]);
  close(ready[1]);
  close(listener);
}

// The server process accepts, writes its greeting and is killed before the client read
// anything (the client is still pending: the Offer waits in its channel). Kernel TCP: the
// client reads the greeting, then the end of the stream; its sends then fail.
TEST(TransitionTest, ServerKilledRightAfterAcceptAndItsGreeting) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  const std::vector<uint8_t> greeting = Pattern(54, 0, 1000);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return 2;
    if (!WriteAll(fd, greeting.data(), greeting.size())) return 3;
    if (write(ready[1], "r", 1) != 1) return 4;
    for (;;) pause();
  });
  close(listener);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(kill(server, SIGKILL), 0);
  EXPECT_EQ(Reap(server, 3000), -1);
  Bound(client, 2000);
  int64_t start = NowMs();
  int error = -1;
  const std::vector<uint8_t> got = ReadToEnd(client, &error);
  EXPECT_LT(NowMs() - start, 1000);
  EXPECT_EQ(error, 0) << std::strerror(error);
  EXPECT_TRUE(got == greeting) << got.size() << " bytes";
  start = NowMs();
  ssize_t n = 0;
  for (int i = 0; i < 100 && n >= 0; ++i) n = send(client, greeting.data(), 100, MSG_NOSIGNAL);
  EXPECT_EQ(n, -1);
  EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET) << std::strerror(errno);
  EXPECT_LT(NowMs() - start, 1000);
  close(client);
  close(ready[0]);
  close(ready[1]);
}

// ===== fork right after accept, fork right after a non-blocking connect =====

// The server forks right after accept, before any I/O (the client has not read its Offer);
// the child serves, the parent closes its copy at once.
TEST(TransitionTest, ServerForksRightAfterAcceptBeforeTheClientReadItsOffer) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  int go[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  const pid_t client = Spawn([&] {
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    if (fd < 0) return 2;
    char byte;
    if (read(go[0], &byte, 1) != 1) return 3;  // the server has forked and closed its copy
    Bound(fd, 3000);
    const std::vector<uint8_t> sent = Pattern(61, 0, 1 << 20);
    if (EchoedPrefix(fd, sent) != sent.size()) return 4;
    if (ObservedPath(fd) != "fast") return 5;
    if (shutdown(fd, SHUT_WR) != 0) return 6;
    return recv(fd, &byte, 1, 0) == 0 ? 0 : 7;
  });
  const int accepted = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  const pid_t server = Spawn([&] {
    close(listener);
    Bound(accepted, 3000);
    if (!EchoUntilEnd(accepted)) return 2;
    const bool fast = ObservedPath(accepted) == "fast";
    close(accepted);
    return fast ? 0 : 3;
  });
  close(accepted);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  EXPECT_EQ(Reap(client, 5000), 0);
  EXPECT_EQ(Reap(server, 5000), 0);
  close(go[0]);
  close(go[1]);
  close(listener);
}

// fork while a non-blocking connect returned EINPROGRESS and nothing was asked since; the
// child writes first, then the parent; the listening program accepts after the fork.
TEST(TransitionTest, ForkRightAfterANonBlockingConnectReturnedEinprogress) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  int error = 0;
  const int client = StartConnect(port, &error);
  ASSERT_GE(client, 0);
  ASSERT_EQ(error, EINPROGRESS);
  const pid_t child = Spawn([&] {
    struct pollfd pfd = {client, POLLOUT, 0};
    if (poll(&pfd, 1, 2000) != 1) return 2;
    int so_error = -1;
    socklen_t length = sizeof so_error;
    if (getsockopt(client, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0 || so_error != 0) {
      return 3;
    }
    fcntl(client, F_SETFL, 0);
    Bound(client, 3000);
    const std::vector<uint8_t> sent = Pattern(62, 0, 256 << 10);
    if (!WriteAll(client, sent.data(), sent.size())) return 4;
    std::vector<uint8_t> back(sent.size());
    if (!ReadAll(client, back.data(), back.size()) || back != sent) return 5;
    return 0;
  });
  int64_t accept_ms = 0;
  const int server = TimedAccept(listener, &accept_ms);
  ASSERT_GE(server, 0);
  EXPECT_LT(accept_ms, kQuickMs);
  Bound(server, 3000);
  // The server echoes the child's bytes, then the parent's.
  std::vector<uint8_t> buffer(256 << 10);
  EXPECT_TRUE(ReadAll(server, buffer.data(), buffer.size()));
  EXPECT_TRUE(buffer == Pattern(62, 0, buffer.size()));
  EXPECT_TRUE(WriteAll(server, buffer.data(), buffer.size()));
  EXPECT_EQ(Reap(child, 5000), 0);
  fcntl(client, F_SETFL, 0);
  Bound(client, 3000);
  EXPECT_TRUE(CarriesExactly(client, server, 63, 1 << 20));
  EXPECT_TRUE(CarriesExactly(server, client, 64, 1 << 20));
  const std::string path = ObservedPath(client);
  EXPECT_TRUE(path == "fast" || path == "kernel") << path;
  EXPECT_EQ(ObservedPath(server), path);
  close(client);
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);
  close(server);
  close(listener);
}

// The IP_TTL a fresh TCP socket reports (what the program expects to see).
int DefaultTtl() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int ttl = -1;
  socklen_t length = sizeof ttl;
  getsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, &length);
  close(fd);
  return ttl;
}

int TtlOf(int fd) {
  int ttl = -1;
  socklen_t length = sizeof ttl;
  return getsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, &length) == 0 ? ttl : -1;
}

// fork while the handshake itself is still under way (the listener dropped the SYN: its accept
// queue was full; the retransmission comes about 1 s later). Both processes then use it.
TEST(TransitionTest, ForkWhileANonBlockingConnectIsStillUnderWay) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port, /*backlog=*/0);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int filler = Connect({AF_INET, "127.0.0.1", port}, false);
  ASSERT_GE(filler, 0);
  int error = 0;
  const int client = StartConnect(port, &error);
  ASSERT_GE(client, 0);
  ASSERT_EQ(error, EINPROGRESS);
  const int default_ttl = DefaultTtl();
  const pid_t child = Spawn([&] {
    if (TtlOf(client) != default_ttl) return 2;  // the program's TTL, not the marker
    struct pollfd pfd = {client, POLLOUT, 0};
    if (poll(&pfd, 1, 2500) != 1) return 3;
    int so_error = -1;
    socklen_t length = sizeof so_error;
    if (getsockopt(client, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0 || so_error != 0) {
      return 4;
    }
    fcntl(client, F_SETFL, 0);
    Bound(client, 3000);
    const std::vector<uint8_t> sent = Pattern(65, 0, 64 << 10);
    if (!WriteAll(client, sent.data(), sent.size())) return 5;
    std::vector<uint8_t> back(sent.size());
    if (!ReadAll(client, back.data(), back.size()) || back != sent) return 6;
    return 0;
  });
  EXPECT_EQ(TtlOf(client), default_ttl);
  const int first = accept(listener, nullptr, nullptr);  // room for the retransmitted SYN
  ASSERT_GE(first, 0);
  close(first);
  close(filler);
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  Bound(server, 3000);
  std::vector<uint8_t> buffer(64 << 10);
  EXPECT_TRUE(ReadAll(server, buffer.data(), buffer.size()));
  EXPECT_TRUE(buffer == Pattern(65, 0, buffer.size()));
  EXPECT_TRUE(WriteAll(server, buffer.data(), buffer.size()));
  EXPECT_EQ(Reap(child, 5000), 0);
  fcntl(client, F_SETFL, 0);
  Bound(client, 3000);
  EXPECT_TRUE(CarriesExactly(client, server, 66, 1 << 20));
  EXPECT_TRUE(CarriesExactly(server, client, 67, 1 << 20));
  EXPECT_EQ(ObservedPath(client), "kernel");
  EXPECT_EQ(ObservedPath(server), "kernel");
  EXPECT_STREQ(loopfast_fallback_reason(client),
               "the program forked while the connection was being made");
  EXPECT_EQ(TtlOf(client), default_ttl);
  close(client);
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);
  close(server);
  close(listener);
}

// ===== early bytes (sent while pending), then fork, then both processes read and write =====

// Early bytes, then fork, `accept_first`: the listening program accepted before the fork (the
// Offer waits), or only after it. The server then gets: early, the child's, the parent's
// bytes, in that order; each process reads its own answer.
void EarlyBytesThenFork(bool accept_first) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  Bound(listener, 3000);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  const std::vector<uint8_t> early = Pattern(71, 0, 3000);
  const std::vector<uint8_t> from_child = Pattern(72, 0, 100000);
  const std::vector<uint8_t> from_parent = Pattern(73, 0, 100000);
  const std::vector<uint8_t> to_child = Pattern(74, 0, 50000);
  const std::vector<uint8_t> to_parent = Pattern(75, 0, 50000);
  ASSERT_EQ(send(client, early.data(), early.size(), MSG_DONTWAIT), ssize_t(early.size()));
  int server = -1;
  if (accept_first) server = accept(listener, nullptr, nullptr);
  const pid_t child = Spawn([&] {
    Bound(client, 3000);
    if (!WriteAll(client, from_child.data(), from_child.size())) return 2;
    std::vector<uint8_t> got(to_child.size());
    if (!ReadAll(client, got.data(), got.size()) || got != to_child) return 3;
    return 0;
  });
  if (!accept_first) server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  Bound(server, 3000);
  std::vector<uint8_t> got(early.size() + from_child.size());
  ASSERT_TRUE(ReadAll(server, got.data(), got.size()));
  std::vector<uint8_t> expected = early;
  expected.insert(expected.end(), from_child.begin(), from_child.end());
  EXPECT_TRUE(got == expected) << "early bytes and the child's, in order";
  EXPECT_TRUE(WriteAll(server, to_child.data(), to_child.size()));
  EXPECT_EQ(Reap(child, 5000), 0);
  Bound(client, 3000);
  EXPECT_TRUE(WriteAll(client, from_parent.data(), from_parent.size()));
  got.assign(from_parent.size(), 0);
  EXPECT_TRUE(ReadAll(server, got.data(), got.size()) && got == from_parent);
  EXPECT_TRUE(WriteAll(server, to_parent.data(), to_parent.size()));
  got.assign(to_parent.size(), 0);
  EXPECT_TRUE(ReadAll(client, got.data(), got.size()) && got == to_parent);
  // Fast either way: the claim is in the session's memory, whoever accepts and whenever.
  EXPECT_EQ(ObservedPath(client), "fast");
  EXPECT_EQ(ObservedPath(server), "fast");
  close(client);
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);
  close(server);
  close(listener);
}

TEST(TransitionTest, EarlyBytesThenForkWithTheOfferWaiting) { EarlyBytesThenFork(true); }

TEST(TransitionTest, EarlyBytesThenForkBeforeTheAccept) { EarlyBytesThenFork(false); }

// ===== an accepted socket handed on right after accept =====

// inetd style: right after accept (the client pending, its early request buffered), the server
// forks, the child makes the socket its stdin/stdout and execs cat, the parent closes it.
TEST(TransitionTest, AcceptedSocketHandedToCatRightAfterAccept) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  int go[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  const std::vector<uint8_t> early = Pattern(81, 0, 2000);
  const pid_t client = Spawn([&] {
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    if (fd < 0) return 2;
    if (send(fd, early.data(), early.size(), MSG_DONTWAIT) != ssize_t(early.size())) return 3;
    char byte;
    if (read(go[0], &byte, 1) != 1) return 4;
    Bound(fd, 3000);
    std::vector<uint8_t> got(early.size());
    if (!ReadAll(fd, got.data(), got.size()) || got != early) return 5;
    const std::vector<uint8_t> sent = Pattern(82, 0, 1 << 20);
    if (EchoedPrefix(fd, sent) != sent.size()) return 6;
    if (shutdown(fd, SHUT_WR) != 0) return 7;
    return recv(fd, &byte, 1, 0) == 0 ? 0 : 8;
  });
  const int accepted = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  const pid_t cat = Spawn([&] {
    if (dup2(accepted, 0) != 0 || dup2(accepted, 1) != 1) return 2;
    execlp("cat", "cat", static_cast<char *>(nullptr));
    return 3;
  });
  close(accepted);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  EXPECT_EQ(Reap(client, 5000), 0);
  EXPECT_EQ(Reap(cat, 3000), 0);
  close(go[0]);
  close(go[1]);
  close(listener);
}

// ===== a pending client passed to another process (SCM_RIGHTS) =====

bool SendDescriptor(int channel, int fd) {
  char byte = 'f';
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr message = {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
  return sendmsg(channel, &message, 0) == 1;
}

int ReceiveDescriptor(int channel) {
  char byte = 0;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr message = {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  if (recvmsg(channel, &message, MSG_CMSG_CLOEXEC) != 1) return -1;
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  if (header == nullptr || header->cmsg_type != SCM_RIGHTS) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(header), sizeof fd);
  return fd;
}

// A broker connects, then hands the new connection to a worker process over a Unix socket and
// closes its copy (the Offer is waiting: the listening program has accepted). The server reads
// once the worker's request was written. Kernel TCP: request and reply arrive exactly.
TEST(TransitionTest, PendingClientPassedToAnotherProcessWithScmRights) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  int pair[2], written[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ASSERT_EQ(pipe2(written, O_CLOEXEC), 0);
  const std::vector<uint8_t> request = Pattern(101, 0, 1000), reply = Pattern(102, 0, 1000);
  const pid_t worker = Spawn([&] {  // forked before the connection exists
    const int fd = ReceiveDescriptor(pair[1]);
    if (fd < 0) return 2;
    Bound(fd, 2000);
    if (!WriteAll(fd, request.data(), request.size())) return 3;
    if (write(written[1], "w", 1) != 1) return 4;
    std::vector<uint8_t> got(reply.size());
    if (!ReadAll(fd, got.data(), got.size())) return 5;
    return got == reply ? 0 : 6;
  });
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  ASSERT_TRUE(SendDescriptor(pair[0], client));
  close(client);
  struct pollfd wait = {written[0], POLLIN, 0};
  ASSERT_EQ(poll(&wait, 1, 2000), 1);
  Bound(server, 2000);
  std::vector<uint8_t> got(request.size());
  errno = 0;
  const bool read_ok = ReadAll(server, got.data(), got.size());
  const int error = errno;
  EXPECT_TRUE(read_ok) << "server's recv: " << (error ? std::strerror(error) : "end of stream");
  EXPECT_TRUE(got == request);
  EXPECT_TRUE(WriteAll(server, reply.data(), reply.size()));
  EXPECT_EQ(Reap(worker, 4000), 0);
  close(server);
  close(listener);
  for (const int fd : {pair[0], pair[1], written[0], written[1]}) close(fd);
}

// The acceptor hands a connection it just accepted (before any I/O; the client has not read
// its Offer) to a worker process over a Unix socket and closes its copy, as Node's cluster
// module and other acceptor/worker servers do. The client sends its request, and reads once
// the worker's reply was written.
TEST(TransitionTest, AcceptedSocketPassedToAWorkerWithScmRightsRightAfterAccept) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  int pair[2], go[2], replied[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(replied, O_CLOEXEC), 0);
  const std::vector<uint8_t> request = Pattern(103, 0, 1000), reply = Pattern(104, 0, 1000);
  const pid_t worker = Spawn([&] {
    const int fd = ReceiveDescriptor(pair[1]);
    if (fd < 0) return 2;
    Bound(fd, 2000);
    std::vector<uint8_t> got(request.size());
    if (!ReadAll(fd, got.data(), got.size())) return 3;
    if (got != request) return 4;
    if (!WriteAll(fd, reply.data(), reply.size())) return 5;
    return write(replied[1], "r", 1) == 1 ? 0 : 6;
  });
  const pid_t client = Spawn([&] {
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    if (fd < 0) return 2;
    char byte;
    if (read(go[0], &byte, 1) != 1) return 3;  // the acceptor has handed the socket on
    Bound(fd, 2000);
    if (!WriteAll(fd, request.data(), request.size())) return 4;
    struct pollfd wait = {replied[0], POLLIN, 0};
    if (poll(&wait, 1, 2000) != 1) return 5;
    std::vector<uint8_t> got(reply.size());
    if (!ReadAll(fd, got.data(), got.size())) return errno == ECONNRESET ? 6 : 7;
    return got == reply ? 0 : 8;
  });
  const int accepted = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  ASSERT_TRUE(SendDescriptor(pair[0], accepted));
  close(accepted);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  EXPECT_EQ(Reap(client, 4000), 0) << "5: no reply written, 6: ECONNRESET, 7: other error/EOF";
  EXPECT_EQ(Reap(worker, 4000), 0) << "3: no request";
  close(listener);
  for (const int fd : {pair[0], pair[1], go[0], go[1], replied[0], replied[1]}) close(fd);
}

// ===== vfork: the child shares the parent's memory =====

// The vfork child dup2s the pending client onto a descriptor number and execs sh/cat on it,
// as Python's subprocess and many shells do. The parent's own descriptor of that number (a
// pipe) must stay the parent's pipe; every byte goes through cat; nothing leaks.
// Was known defect 7 (docs/compatibility.md): a vfork child's dup2 wrote the parent's descriptor
// table while a connection waited for its Offer.
TEST(TransitionTest, VforkChildDup2sAPendingClientThenExecsCat) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  constexpr int kNumber = 9;  // in the parent: the pipe's write end (sh takes fds 0-9 only)
  ASSERT_EQ(fcntl(kNumber, F_GETFD), -1) << "descriptor 9 is in use in this process";
  ASSERT_EQ(dup2(pipe_fds[1], kNumber), kNumber);
  {
    // The sessions between this client and listener (bells, channel) come with the first
    // connection and stay; what must not stay is anything of the connection below.
    ConnectedPair warm;
    warm.client = Connect({AF_INET, "127.0.0.1", port}, true);
    warm.server = accept(listener, nullptr, nullptr);
    Settle(warm.client, warm.server, true);
  }
  const int before = OpenDescriptorCount();
  const std::string before_list = DescriptorList();
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  const int server = accept(listener, nullptr, nullptr);  // the Offer waits for the client
  ASSERT_GE(client, 0);
  ASSERT_GE(server, 0);
  const pid_t child = vfork();
  if (child == 0) {
    if (dup2(client, kNumber) != kNumber) _exit(2);
    execl("/bin/sh", "sh", "-c", "exec cat <&9 >&9", static_cast<char *>(nullptr));
    _exit(3);
  }
  ASSERT_GT(child, 0);
  close(client);
  Bound(server, 3000);
  EXPECT_EQ(EchoedPrefix(server, Pattern(91, 0, 1 << 20)), size_t(1) << 20);
  FinishCat(server, child);
  // The parent's descriptor kNumber is still its pipe, to loopfast too.
  EXPECT_EQ(loopfast_path_of(kNumber), LOOPFAST_PATH_NONE);
  errno = 0;
  EXPECT_EQ(write(kNumber, "p", 1), 1) << std::strerror(errno);
  char byte = 0;
  fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  EXPECT_EQ(read(pipe_fds[0], &byte, 1), 1);
  EXPECT_EQ(byte, 'p');
  close(server);
  EXPECT_EQ(OpenDescriptorCount(), before) << "descriptors left behind in the parent; before:\n"
                                           << before_list << "after:\n"
                                           << DescriptorList();
  close(listener);
  close(kNumber);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

}  // namespace
}  // namespace loopfast::test
