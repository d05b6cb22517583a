// Signals meeting blocking calls on fast sockets, every wait bounded: with and without
// SA_RESTART, before and after bytes moved, with socket timeouts, handlers that use sockets
// themselves. Every connection under test is first checked to be fast; kernel TCP runs the same
// scenario in the same test, and its answer is the expected one. Threads: threads_test.cc.
//
// A bug must fail, never hang: blocked calls run on a BoundedThread (blocked_call.h), stream
// readers have SO_RCVTIMEO, and scenarios that could deadlock inside a signal handler run in a
// child process reaped with a timeout (InChild).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "blocked_call.h"
#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

// Polls `done` every millisecond for up to `within_ms`.
bool WaitFor(const std::function<bool()> &done, int within_ms) {
  const auto start = Clock::now();
  while (!done()) {
    if (MsSince(start) > within_ms) return false;
    SleepMs(1);
  }
  return true;
}

// A handler counting its signals; set for one scope, the previous one restored after.
std::atomic<int> handled{0};
void CountSignal(int) { handled.fetch_add(1); }

class ScopedHandler {
 public:
  ScopedHandler(int signal_number, void (*handler)(int), bool restart)
      : signal_number_(signal_number) {
    struct sigaction action = {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = restart ? SA_RESTART : 0;
    handled = 0;
    EXPECT_EQ(sigaction(signal_number, &action, &previous_), 0);
  }
  ~ScopedHandler() { sigaction(signal_number_, &previous_, nullptr); }
  ScopedHandler(const ScopedHandler &) = delete;
  ScopedHandler &operator=(const ScopedHandler &) = delete;

 private:
  int signal_number_;
  struct sigaction previous_ = {};
};

// `body` on kernel TCP and on the fast path, each with and without SA_RESTART (traced); stops
// at a fatal failure.
void ForEachPathAndRestart(const std::function<void(bool fast, bool restart)> &body) {
  for (const bool restart : {false, true}) {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(std::string(PathName(fast)) + (restart ? ", SA_RESTART" : ", no SA_RESTART"));
      body(fast, restart);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

// A connection (fast or kernel) whose client end a thread is blocked reading (recv of up to 64
// bytes into `buffer`; checked blocked), SIGUSR1's handler (CountSignal) installed first, with
// SA_RESTART or not; then SIGUSR1 is sent to it. The watchdog's remedy: the server's end of
// stream.
struct BlockedRecv {
  ConnectedPair pair;
  std::optional<ScopedHandler> handler;
  char buffer[64];
  CallResult got;
  std::optional<BoundedThread> reader;
  Clock::time_point signalled_at;
};

void BlockRecvThenSignal(bool fast, bool restart, BlockedRecv *r) {
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &r->pair));
  r->handler.emplace(SIGUSR1, CountSignal, restart);
  r->reader.emplace(
      [r] {
        errno = 0;
        r->got.value = recv(r->pair.client, r->buffer, sizeof r->buffer, 0);
        r->got.error = errno;
      },
      [r] { shutdown(r->pair.server, SHUT_WR); });
  ASSERT_TRUE(r->reader->Blocked());
  r->signalled_at = Clock::now();
  r->reader->Signal(SIGUSR1);
}

TEST(SignalTest, RecvInterruptedWithoutSaRestartFailsWithEintr) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    BlockedRecv blocked;
    ASSERT_NO_FATAL_FAILURE(BlockRecvThenSignal(fast, /*restart=*/false, &blocked));
    const ConnectedPair &pair = blocked.pair;
    const CallResult &got = blocked.got;
    ASSERT_TRUE(blocked.reader->Finished(1000)) << "recv still blocked 1 s after the signal";
    EXPECT_LT(MsSince(blocked.signalled_at), 500);
    EXPECT_EQ(handled.load(), 1);
    EXPECT_EQ(got.value, -1) << Describe(got);
    EXPECT_EQ(got.error, EINTR) << Describe(got);
    // Nothing lost or stuck: the connection carries the next bytes.
    ASSERT_TRUE(WriteAll(pair.server, "after", 5));
    char out[5];
    ASSERT_TRUE(ReadAll(pair.client, out, 5));
    EXPECT_EQ(std::string(out, 5), "after");
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  }
}

TEST(SignalTest, RecvInterruptedWithSaRestartResumesAndGetsTheLaterBytes) {
  const std::string later = "sent after the signal";
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    BlockedRecv blocked;
    ASSERT_NO_FATAL_FAILURE(BlockRecvThenSignal(fast, /*restart=*/true, &blocked));
    BoundedThread &reader = *blocked.reader;
    const CallResult &got = blocked.got;
    ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
    EXPECT_FALSE(reader.Finished(150)) << "recv returned " << Describe(got) << " on a signal";
    ASSERT_TRUE(WriteAll(blocked.pair.server, later.data(), later.size()));
    ASSERT_TRUE(reader.Finished(1000)) << "recv still blocked after the bytes came";
    ASSERT_GT(got.value, 0) << Describe(got);
    std::string received(blocked.buffer, size_t(got.value));
    if (received.size() < later.size()) {  // a short read is TCP too; gather the rest
      std::string rest(later.size() - received.size(), '\0');
      ASSERT_TRUE(ReadAll(blocked.pair.client, rest.data(), rest.size()));
      received += rest;
    }
    EXPECT_EQ(received, later);
    EXPECT_EQ(ObservedPath(blocked.pair.client), PathName(fast));
  }
}

// A MSG_WAITALL recv that already holds some bytes returns them when a signal comes, with or
// without SA_RESTART (tcp_recvmsg stops on a pending signal once it has copied anything).
TEST(SignalTest, WaitAllRecvHoldingBytesReturnsThemWhenInterruptedEvenWithSaRestart) {
  ForEachPathAndRestart([&](bool fast, bool restart) {
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    ScopedHandler handler(SIGUSR1, CountSignal, restart);
    ASSERT_TRUE(WriteAll(pair.server, "0123456789", 10));
    SleepMs(5);
    char buffer[100];
    CallResult got;
    BoundedThread reader(
        [&] {
          errno = 0;
          got.value = recv(pair.client, buffer, sizeof buffer, MSG_WAITALL);
          got.error = errno;
        },
        [&] { shutdown(pair.server, SHUT_WR); });
    ASSERT_TRUE(reader.Blocked());
    reader.Signal(SIGUSR1);
    ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
    EXPECT_TRUE(reader.Finished(500)) << "MSG_WAITALL recv holding 10 bytes went on waiting";
    ASSERT_TRUE(WriteAll(pair.server, std::string(90, 'z').data(), 90));  // frees it if not
    ASSERT_TRUE(reader.Finished(1000));
    EXPECT_EQ(got.value, 10) << Describe(got);
    EXPECT_EQ(std::string(buffer, 10), "0123456789");
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  });
}

// A thread blocked sending `size` bytes from `data` on the client end of `pair` (checked
// blocked; the watchdog's remedy: closing the server end), then SIGUSR1 sent to it and handled.
void BlockSendThenSignal(ConnectedPair *pair, const uint8_t *data, size_t size, CallResult *got,
                         std::optional<BoundedThread> *writer) {
  writer->emplace(
      [=] {
        errno = 0;
        got->value = send(pair->client, data, size, MSG_NOSIGNAL);
        got->error = errno;
      },
      [=] {
        close(pair->server);
        pair->server = -1;
      });
  ASSERT_TRUE((*writer)->Blocked());
  (*writer)->Signal(SIGUSR1);
  ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
}

// A blocking send that could not place a byte (full ring): without SA_RESTART it fails with
// EINTR; with SA_RESTART it goes on and completes once the peer reads. The stream is exactly the
// fill plus what the call reported sent.
void SendIntoAFullConnection(bool fast, bool restart) {
  constexpr uint64_t kSeed = 41;
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
  uint64_t filled = 0;
  ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, kSeed, &filled));
  const std::vector<uint8_t> more = Pattern(kSeed, filled, 1 << 20);
  ScopedHandler handler(SIGUSR1, CountSignal, restart);
  CallResult got;
  std::optional<BoundedThread> blocked;
  ASSERT_NO_FATAL_FAILURE(BlockSendThenSignal(&pair, more.data(), more.size(), &got, &blocked));
  BoundedThread &writer = *blocked;
  if (restart) {
    EXPECT_FALSE(writer.Finished(150)) << "send returned " << Describe(got) << " on a signal";
  } else {
    ASSERT_TRUE(writer.Finished(500)) << "send still blocked after the signal";
    EXPECT_EQ(got.value, -1) << Describe(got);  // not a byte fitted before the signal
    EXPECT_EQ(got.error, EINTR) << Describe(got);
  }
  Drained drained;
  BoundedThread drainer([&] { DrainAndCheck(pair.server, kSeed, &drained); });
  ASSERT_TRUE(writer.Finished(2000)) << "send did not complete while the peer read";
  if (restart) {
    EXPECT_EQ(got.value, ssize_t(more.size())) << Describe(got);
  }
  ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
  ASSERT_TRUE(drainer.Finished(3000));
  EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
  EXPECT_EQ(drained.bytes, filled + uint64_t(std::max<ssize_t>(got.value, 0))) << Describe(drained);
  EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
}

TEST(SignalTest, SendBlockedOnAFullRingWithoutSaRestartFailsWithEintr) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ASSERT_NO_FATAL_FAILURE(SendIntoAFullConnection(fast, /*restart=*/false));
  }
}

TEST(SignalTest, SendBlockedOnAFullRingWithSaRestartCompletesAfterThePeerDrains) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ASSERT_NO_FATAL_FAILURE(SendIntoAFullConnection(fast, /*restart=*/true));
  }
}

// A blocking send that has already placed bytes returns their count when a signal comes, with or
// without SA_RESTART (tcp_sendmsg: a pending signal ends the wait; copied bytes are reported, and
// a positive count is never restarted).
TEST(SignalTest, SendThatPlacedBytesReturnsTheirCountWhenInterruptedEvenWithSaRestart) {
  constexpr uint64_t kSeed = 43;
  const std::vector<uint8_t> big = Pattern(kSeed, 0, 16 << 20);
  ForEachPathAndRestart([&](bool fast, bool restart) {
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    ScopedHandler handler(SIGUSR1, CountSignal, restart);
    CallResult got;
    std::optional<BoundedThread> blocked;
    ASSERT_NO_FATAL_FAILURE(BlockSendThenSignal(&pair, big.data(), big.size(), &got, &blocked));
    BoundedThread &writer = *blocked;
    const bool prompt = writer.Finished(500);
    EXPECT_TRUE(prompt) << "a send that had placed bytes went on waiting after the signal";
    Drained drained;
    BoundedThread drainer([&] { DrainAndCheck(pair.server, kSeed, &drained); });
    ASSERT_TRUE(writer.Finished(3000));
    if (prompt) {
      EXPECT_GT(got.value, 0) << Describe(got);
      EXPECT_LT(got.value, ssize_t(big.size())) << Describe(got);
    }
    ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
    ASSERT_TRUE(drainer.Finished(3000));
    EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
    EXPECT_EQ(drained.bytes, uint64_t(std::max<ssize_t>(got.value, 0))) << Describe(drained);
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  });
}

// connect blocks while the listener's accept queue is full (the kernel drops the SYN and sends
// it again after about a second). signal(7) lists connect among the calls SA_RESTART resumes;
// without it connect fails with EINTR, the handshake goes on, and a second connect waits for it
// and returns 0. Either way the connection then takes the path both ends chose.
void ConnectBehindAFullBacklog(bool fast, bool restart, CallResult *first, CallResult *second) {
  uint16_t port = 0;
  const Fd listener(Listen(AF_INET, "127.0.0.1", fast, &port, /*backlog=*/0));
  ASSERT_GE(listener.get(), 0);
  Fd filler(Connect({AF_INET, "127.0.0.1", port}, fast));  // fills the accept queue
  ASSERT_GE(filler.get(), 0);
  SleepMs(5);
  const Fd client(TcpSocket(AF_INET, fast));
  const sockaddr_in address = Loopback4(port);
  const auto *to = reinterpret_cast<const sockaddr *>(&address);
  ScopedHandler handler(SIGUSR1, CountSignal, restart);
  {
    BoundedThread connector([&] {
      errno = 0;
      first->value = connect(client.get(), to, sizeof address);
      first->error = errno;
    });
    ASSERT_TRUE(connector.Blocked());
    connector.Signal(SIGUSR1);
    ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
    if (restart) {
      EXPECT_FALSE(connector.Finished(100)) << "connect ended on the signal: " << Describe(*first);
    } else {
      EXPECT_TRUE(connector.Finished(500)) << "connect went on after the signal";
    }
    const Fd served_filler(accept(listener.get(), nullptr, nullptr));  // makes room
    ASSERT_GE(served_filler.get(), 0);
    ASSERT_TRUE(connector.Finished(4000)) << "connect never completed";
  }
  if (first->value != 0) {
    errno = 0;
    second->value = connect(client.get(), to, sizeof address);
    second->error = errno;
  }
  const Fd served(accept(listener.get(), nullptr, nullptr));
  ASSERT_GE(served.get(), 0);
  Settle(client.get(), served.get(), fast);
}

void ConnectInterruptedBesideKernelTcp(bool restart) {
  InChild([restart] {
    CallResult kernel_first, kernel_second, fast_first, fast_second;
    ASSERT_NO_FATAL_FAILURE(
        ConnectBehindAFullBacklog(false, restart, &kernel_first, &kernel_second));
    ASSERT_NO_FATAL_FAILURE(ConnectBehindAFullBacklog(true, restart, &fast_first, &fast_second));
    if (restart) {
      EXPECT_EQ(kernel_first.value, 0) << "kernel: " << Describe(kernel_first);
    } else {
      EXPECT_EQ(kernel_first.error, EINTR) << "kernel: " << Describe(kernel_first);
      EXPECT_EQ(kernel_second.value, 0) << "kernel: " << Describe(kernel_second);
    }
    EXPECT_EQ(fast_first.value, kernel_first.value) << "fast: " << Describe(fast_first);
    EXPECT_EQ(fast_first.error, kernel_first.error) << "fast: " << Describe(fast_first);
    EXPECT_EQ(fast_second.value, kernel_second.value) << "fast: " << Describe(fast_second);
    EXPECT_EQ(fast_second.error, kernel_second.error) << "fast: " << Describe(fast_second);
  });
}

TEST(SignalTest, ConnectInterruptedWithoutSaRestartFailsWithEintrAndTheHandshakeGoesOn) {
  ConnectInterruptedBesideKernelTcp(false);
}

TEST(SignalTest, ConnectInterruptedWithSaRestartResumes) {
  ConnectInterruptedBesideKernelTcp(true);
}

// accept on a fast listener: EINTR without SA_RESTART (and the listener goes on working); with
// SA_RESTART it goes on waiting and returns the connection that comes later, fast.
TEST(SignalTest, AcceptInterruptedFailsWithEintrOrWithSaRestartReturnsTheLaterConnection) {
  ForEachPathAndRestart([&](bool fast, bool restart) {
    uint16_t port = 0;
    const Fd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
    ASSERT_GE(listener.get(), 0);
    {
      ConnectedPair first;
      ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.get(), port, fast, &first));
    }
    ScopedHandler handler(SIGUSR1, CountSignal, restart);
    CallResult got;
    BoundedThread acceptor(
        [&] {
          errno = 0;
          got.value = accept(listener.get(), nullptr, nullptr);
          got.error = errno;
        },
        [&] { shutdown(listener.get(), SHUT_RDWR); });
    ASSERT_TRUE(acceptor.Blocked());
    acceptor.Signal(SIGUSR1);
    ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
    ConnectedPair next;
    if (!restart) {
      ASSERT_TRUE(acceptor.Finished(500)) << "accept still blocked after the signal";
      EXPECT_EQ(got.value, -1) << Describe(got);
      EXPECT_EQ(got.error, EINTR) << Describe(got);
      if (got.value >= 0) close(int(got.value));
      ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.get(), port, fast, &next));
    } else {
      EXPECT_FALSE(acceptor.Finished(150)) << "accept returned " << Describe(got);
      next.client = Connect({AF_INET, "127.0.0.1", port}, fast);
      ASSERT_TRUE(acceptor.Finished(1000)) << "accept did not return the new connection";
      ASSERT_GE(got.value, 0) << Describe(got);
      next.server = int(got.value);
      ASSERT_NO_FATAL_FAILURE(Settle(next.client, next.server, fast));
    }
  });
}

TEST(SignalTest, ReceiveAndSendTimeoutsExpireOnTimeAndTheConnectionGoesOn) {
  constexpr uint64_t kSeed = 47;
  const std::vector<uint8_t> big = Pattern(kSeed, 0, 16 << 20);
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_RCVTIMEO, 200));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_SNDTIMEO, 200));
    char buffer[8];
    // recv with nothing to read: EAGAIN after the timeout.
    auto start = Clock::now();
    errno = 0;
    EXPECT_EQ(recv(pair.client, buffer, 1, 0), -1);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
    double waited = MsSince(start);
    EXPECT_GE(waited, 180);
    EXPECT_LT(waited, 1000);
    // The timeout is per call: bytes that come within it are returned.
    std::thread late([&] {
      SleepMs(50);
      WriteAll(pair.server, "late", 4);
    });
    start = Clock::now();
    const ssize_t n = recv(pair.client, buffer, 4, MSG_WAITALL);
    waited = MsSince(start);
    late.join();
    EXPECT_EQ(n, 4);
    EXPECT_EQ(std::string(buffer, 4), "late");
    EXPECT_LT(waited, 180);
    // A send larger than the room, nobody reading: what fits, counted, after the timeout.
    start = Clock::now();
    errno = 0;
    CallResult sent{send(pair.client, big.data(), big.size(), MSG_NOSIGNAL), errno};
    waited = MsSince(start);
    EXPECT_GT(sent.value, 0) << Describe(sent);
    EXPECT_LT(sent.value, ssize_t(big.size())) << Describe(sent);
    EXPECT_GE(waited, 180) << Describe(sent);
    EXPECT_LT(waited, 1000) << Describe(sent);
    uint64_t total = uint64_t(std::max<ssize_t>(sent.value, 0));
    // Again, now full: EAGAIN after the timeout (or a count, if kernel TCP found room meanwhile).
    const std::vector<uint8_t> more = Pattern(kSeed, total, 1 << 20);
    start = Clock::now();
    errno = 0;
    sent = {send(pair.client, more.data(), more.size(), MSG_NOSIGNAL), errno};
    waited = MsSince(start);
    EXPECT_TRUE((sent.value == -1 && (sent.error == EAGAIN || sent.error == EWOULDBLOCK)) ||
                (sent.value > 0 && sent.value < ssize_t(more.size())))
        << Describe(sent);
    if (fast) {
      EXPECT_EQ(sent.value, -1) << Describe(sent);  // a full ring does not change by itself
    }
    EXPECT_GE(waited, 180) << Describe(sent);
    EXPECT_LT(waited, 1000) << Describe(sent);
    total += uint64_t(std::max<ssize_t>(sent.value, 0));
    // Nothing lost, nothing doubled.
    ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
    Drained drained;
    BoundedThread drainer([&] { DrainAndCheck(pair.server, kSeed, &drained); });
    ASSERT_TRUE(drainer.Finished(3000));
    EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
    EXPECT_EQ(drained.bytes, total) << Describe(drained);
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  }
}

// signal(7): socket calls with a timeout set (SO_RCVTIMEO for recv and accept, SO_SNDTIMEO for
// send) are not restarted after a handler even with SA_RESTART: they fail with EINTR at once.
TEST(SignalTest, SaRestartDoesNotRestartSocketCallsThatHaveATimeout) {
  constexpr uint64_t kSeed = 53;
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    uint16_t port = 0;
    const Fd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
    ASSERT_GE(listener.get(), 0);
    {
      ConnectedPair first;
      ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.get(), port, fast, &first));
    }
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_RCVTIMEO, 1500));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_SNDTIMEO, 1500));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(listener.get(), SO_RCVTIMEO, 1500));
    uint64_t filled = 0;
    ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, kSeed, &filled));
    const std::vector<uint8_t> more = Pattern(kSeed, filled, 1 << 20);
    char byte;
    const std::pair<const char *, std::function<ssize_t()>> calls[] = {
        {"recv", [&] { return recv(pair.client, &byte, 1, 0); }},
        {"send", [&] { return send(pair.client, more.data(), more.size(), MSG_NOSIGNAL); }},
        {"accept", [&] { return ssize_t(accept(listener.get(), nullptr, nullptr)); }},
    };
    for (const auto &[name, call] : calls) {
      SCOPED_TRACE(name);
      ScopedHandler handler(SIGUSR1, CountSignal, /*restart=*/true);
      CallResult got;
      BoundedThread blocked([&, call = call] {
        errno = 0;
        got.value = call();
        got.error = errno;
      });
      ASSERT_TRUE(blocked.Blocked());
      const auto start = Clock::now();
      blocked.Signal(SIGUSR1);
      ASSERT_TRUE(blocked.Finished(2500));
      const double waited = MsSince(start);
      EXPECT_EQ(handled.load(), 1);
      EXPECT_EQ(got.value, -1) << Describe(got);
      EXPECT_EQ(got.error, EINTR) << Describe(got) << " after " << waited << " ms";
      EXPECT_LT(waited, 500) << Describe(got);
      if (got.value >= 0 && std::string(name) == "accept") close(int(got.value));
    }
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  }
}

// ---- Handlers that use sockets themselves ----

// What the SIGUSR1 handler does: one call on a socket, its result kept. All lock-free atomics.
struct HandlerCall {
  std::atomic<int> fd{-1};
  std::atomic<bool> receive{false};  // recv(MSG_DONTWAIT) instead of send
  std::atomic<int> flags{MSG_NOSIGNAL};
  std::atomic<ssize_t> result{-2};
  std::atomic<int> error{0};
  std::atomic<int> runs{0};
};
HandlerCall handler_call;

void HandlerThatUsesASocket(int) {
  const int saved = errno;
  char bytes[8] = {'p', 'i', 'n', 'g'};
  const ssize_t n = handler_call.receive.load()
                        ? recv(handler_call.fd.load(), bytes, sizeof bytes, MSG_DONTWAIT)
                        : send(handler_call.fd.load(), bytes, 4, handler_call.flags.load());
  handler_call.result.store(n);
  handler_call.error.store(n < 0 ? errno : 0);
  handler_call.runs.fetch_add(1);
  errno = saved;
}

struct HandlerScenario {
  bool blocked_in_send;   // else blocked in recv
  bool handler_receives;  // else the handler sends "ping"
  bool other_socket;      // the handler uses a second connection, else the blocked one
  int handler_flags;
  ssize_t expected;  // what the handler's call returns (kernel TCP's answer)
  int expected_error;
};

// A thread blocked in recv (empty ring) or send (full ring) on connection A gets SIGUSR1
// (SA_RESTART); the handler makes its call; then the blocked call must complete normally.
void RunHandlerScenario(bool fast, const HandlerScenario &s) {
  constexpr uint64_t kSeed = 59;
  ConnectedPair a, b;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &a));
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &b));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(a.server, SO_RCVTIMEO, 1000));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(b.server, SO_RCVTIMEO, 1000));
  uint64_t filled = 0;
  std::vector<uint8_t> more;
  if (s.blocked_in_send) {
    ASSERT_NO_FATAL_FAILURE(FillUntilFull(a.client, kSeed, &filled));
    more = Pattern(kSeed, filled, 1 << 20);
  }
  handler_call.fd = s.other_socket ? b.client : a.client;
  handler_call.receive = s.handler_receives;
  handler_call.flags = s.handler_flags;
  handler_call.result = -2;
  handler_call.runs = 0;
  ScopedHandler handler(SIGUSR1, HandlerThatUsesASocket, /*restart=*/true);
  char buffer[16] = {};
  CallResult got;
  BoundedThread blocked(
      [&] {
        errno = 0;
        got.value = s.blocked_in_send ? send(a.client, more.data(), more.size(), MSG_NOSIGNAL)
                                      : recv(a.client, buffer, sizeof buffer, 0);
        got.error = errno;
      },
      [&] {
        close(a.server);
        a.server = -1;
      });
  ASSERT_TRUE(blocked.Blocked());
  blocked.Signal(SIGUSR1);
  ASSERT_TRUE(WaitFor([] { return handler_call.runs.load() == 1; }, 1000))
      << "the handler did not finish its socket call (deadlocked?)";
  const CallResult in_handler{handler_call.result.load(), handler_call.error.load()};
  EXPECT_EQ(in_handler.value, s.expected) << "handler's call: " << Describe(in_handler);
  if (s.expected < 0) {
    EXPECT_EQ(in_handler.error, s.expected_error) << "handler's call: " << Describe(in_handler);
  }
  if (!s.handler_receives && in_handler.value == 4) {  // the handler's bytes reach the peer
    char ping[4];
    ASSERT_TRUE(ReadAll(s.other_socket ? b.server : a.server, ping, 4));
    EXPECT_EQ(std::string(ping, 4), "ping");
  }
  EXPECT_FALSE(blocked.Finished(50))
      << "SA_RESTART: the blocked call goes on; got " << Describe(got);
  if (!s.blocked_in_send) {
    ASSERT_TRUE(WriteAll(a.server, "pong", 4));
    ASSERT_TRUE(blocked.Finished(1000)) << "recv did not return the bytes sent after the handler";
    EXPECT_EQ(got.value, 4) << Describe(got);
    EXPECT_EQ(std::string(buffer, 4), "pong");
  } else {
    Drained drained;
    BoundedThread drainer([&] { DrainAndCheck(a.server, kSeed, &drained); });
    ASSERT_TRUE(blocked.Finished(2000)) << "send did not complete while the peer read";
    EXPECT_EQ(got.value, ssize_t(more.size())) << Describe(got);
    ASSERT_EQ(shutdown(a.client, SHUT_WR), 0);
    ASSERT_TRUE(drainer.Finished(3000));
    EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
    EXPECT_EQ(drained.bytes, filled + more.size()) << Describe(drained);
  }
  EXPECT_EQ(ObservedPath(a.client), PathName(fast));
  EXPECT_EQ(ObservedPath(b.client), PathName(fast));
}

void HandlerScenarioOnBothPaths(const HandlerScenario &s) {
  InChild([&] {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(PathName(fast));
      ASSERT_NO_FATAL_FAILURE(RunHandlerScenario(fast, s));
    }
  });
}

TEST(SignalTest, HandlerSendingOnTheSocketBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, false, false, MSG_NOSIGNAL, 4, 0});
}

TEST(SignalTest, HandlerReceivingOnTheSocketBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, true, false, 0, -1, EAGAIN});
}

TEST(SignalTest, HandlerSendingOnAnotherSocketWhileBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, false, true, MSG_NOSIGNAL, 4, 0});
}

TEST(SignalTest, HandlerReceivingOnAnotherSocketWhileBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, true, true, 0, -1, EAGAIN});
}

TEST(SignalTest, HandlerSendingOnAnotherSocketWhileBlockedInSendDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({true, false, true, MSG_NOSIGNAL, 4, 0});
}

TEST(SignalTest, HandlerSendingOnTheFullSocketBlockedInSendGetsEagainAndDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({true, false, false, MSG_NOSIGNAL | MSG_DONTWAIT, -1, EAGAIN});
}

}  // namespace
}  // namespace loopfast::test
