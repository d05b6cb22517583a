// Connections caught between states, then inherited across fork or left behind by a killed
// process: a client whose non-blocking connect is still under way (kConnecting), a client
// connected but that has not read the listener's Offer yet (kPending, "right after connect,
// before any I/O"), a socket just accepted. Kernel TCP makes every one of these transparent:
// every byte arrives once and in order, nothing hangs, nothing is reset, accept() does not
// stall. The path may end up "kernel" where the rendezvous could not finish; that is fine when
// every byte is intact. The same states handed on (dup, exec, SCM_RIGHTS, vfork):
// transition_handoff_test.cc; beside a second thread: transition_threads_test.cc.
//
// Real processes, real sockets. Every wait is bounded (Bound, poll timeouts, Reap timeouts).
// Careful: fork() settles a connection still deciding its path (SettleBeforeFork), so helper
// processes are forked before the connection under test exists, or threads are used.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"
#include "transition_support.h"

namespace loopfast::test {
namespace {

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

// A child that keeps only `client` and echoes 1 MiB of stream `seed` on it, fast.
pid_t KeepOnlyAndEcho(int client, uint64_t seed) {
  return Spawn([&] {
    if (const int failed = KeepOnly(client)) return failed;
    if (const int failed = EchoMiBOn(client, seed)) return failed;
    return ObservedPath(client) == "fast" ? 0 : 5;
  });
}

// The server's side of that echo, then the child's exit (the last client copy) ends the stream.
void EchoThroughTheChild(int server, pid_t child, uint64_t seed) {
  Bound(server, 3000);
  EXPECT_EQ(EchoedPrefix(server, Pattern(seed, 0, 1 << 20)), size_t(1) << 20);
  EXPECT_EQ(ObservedPath(server), "fast");
  EXPECT_EQ(Reap(child, 5000), 0);
  char byte;
  EXPECT_EQ(recv(server, &byte, 1, 0), 0);
}

// fork right after connect, the Offer waiting: the child closes everything but the client end
// (the parent's server end and listener included), the parent closes its client copy.
TEST(TransitionTest, ForkOfAPendingClientThenTheChildClosesEverythingElseAndTalks) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending, true, /*listener_bound_ms=*/0));
  const Fd server = pending.Accept();  // the Offer waits for the client
  ASSERT_GE(server.get(), 0);
  const pid_t child = KeepOnlyAndEcho(pending.client.get(), 21);
  pending.client.reset();
  pending.listener.reset();
  EchoThroughTheChild(server.get(), child, 21);
}

// The same fork before the listening program accepted: kernel TCP for both (the fork settles
// it), the parent closes its copy and accepts afterwards.
// Was known defect 1 (docs/compatibility.md): a listener shared by fork waited 1 s for a Hello
// that would not come. Sessions have no Hello to wait for.
TEST(TransitionTest, ForkOfAPendingClientBeforeTheAcceptThenTheChildClosesEverythingElse) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
  const pid_t child = KeepOnlyAndEcho(pending.client.get(), 22);
  pending.client.reset();
  Fd server;
  ASSERT_NO_FATAL_FAILURE(AcceptTheLastOne(&pending, &server));
  EchoThroughTheChild(server.get(), child, 22);
}

// ===== SIGKILL and exit =====

// A client process: connects, optionally sends `early` non-blocking (the listening program has
// not accepted: the bytes are "sent"), says so on `ready`, then waits to be killed (or exits
// at once when `exit_at_once`). The listener's accept() is bounded.
void StartPendingClientProcess(ClientProcess *process, const std::vector<uint8_t> &early, int ready,
                               bool exit_at_once) {
  StartClientProcess(process, [&](int fd) {
    if (!early.empty() &&
        send(fd, early.data(), early.size(), MSG_DONTWAIT) != ssize_t(early.size())) {
      return 3;
    }
    if (write(ready, "r", 1) != 1) return 4;
    if (exit_at_once) return 0;  // _exit without close, as a crashing or careless program
    for (;;) pause();
  });
  Bound(process->listener.get(), 3000);
}

// What the listening program then sees: accept at once, then `expected` and the end of the
// stream (or a reset), within bounds.
void AcceptAndExpect(int listener, const std::vector<uint8_t> &expected) {
  int64_t accept_ms = 0;
  const Fd server(TimedAccept(listener, &accept_ms));
  ASSERT_GE(server.get(), 0) << std::strerror(errno);
  EXPECT_LT(accept_ms, kQuickMs) << "accept() stalled " << accept_ms << " ms ("
                                 << loopfast_fallback_reason(server.get()) << ")";
  Bound(server.get(), 2000);
  int error = -1;
  const int64_t start = NowMs();
  const std::vector<uint8_t> got = ReadToEnd(server.get(), &error);
  EXPECT_LT(NowMs() - start, 1000) << "the end of the stream came late";
  EXPECT_EQ(error, 0) << std::strerror(error);
  EXPECT_EQ(got.size(), expected.size()) << "bytes the client sent before it died";
  EXPECT_TRUE(got == expected);
}

// A pending client process that sent `early`, is ready, then is killed (or exits by itself when
// `exit_at_once`); the listening program accepts only then.
void PendingClientDiesBeforeTheAccept(const std::vector<uint8_t> &early, bool exit_at_once) {
  const Pipe ready;
  ASSERT_GE(ready.read.get(), 0);
  ClientProcess client;
  ASSERT_NO_FATAL_FAILURE(
      StartPendingClientProcess(&client, early, ready.write.get(), exit_at_once));
  char byte;
  ASSERT_EQ(read(ready.read.get(), &byte, 1), 1);
  if (exit_at_once) {
    EXPECT_EQ(Reap(client.pid, 3000), 0);
  } else {
    ASSERT_EQ(kill(client.pid, SIGKILL), 0);
    EXPECT_EQ(Reap(client.pid, 3000), -1);  // killed
  }
  AcceptAndExpect(client.listener.get(), early);
}

TEST(TransitionTest, ClientKilledWhilePendingBeforeTheAccept) {
  PendingClientDiesBeforeTheAccept({}, false);
}

// Kernel TCP delivers what send() accepted even if the sender dies right after.
// Was known defect 5 (docs/compatibility.md): bytes a non-blocking send accepted before the
// accept lived only in the process. They are in the session's shared memory now.
TEST(TransitionTest, ClientKilledRightAfterANonBlockingSendWhilePending) {
  PendingClientDiesBeforeTheAccept(Pattern(51, 0, 1000), false);
}

// The same with a client that exits (without closing) right after its send.
// Was known defect 5 (docs/compatibility.md): bytes a non-blocking send accepted before the
// accept lived only in the process. They are in the session's shared memory now.
TEST(TransitionTest, ClientExitingRightAfterANonBlockingSendWhilePending) {
  PendingClientDiesBeforeTheAccept(Pattern(52, 0, 1000), true);
}

// After its peer died: `fd` reads the end of the stream (or a reset) and no data, at once, and
// its sends of `size` bytes of `data` then fail (EPIPE or ECONNRESET), never hang.
void ExpectDeadPeer(int fd, const std::vector<uint8_t> &data, size_t size, bool no_data) {
  int64_t start = NowMs();
  int error = -1;
  const std::vector<uint8_t> got = ReadToEnd(fd, &error);
  EXPECT_LT(NowMs() - start, 1000);
  if (no_data) {
    EXPECT_TRUE(got.empty());
    EXPECT_TRUE(error == 0 || error == ECONNRESET) << std::strerror(error);
  } else {
    EXPECT_EQ(error, 0) << std::strerror(error);
    EXPECT_TRUE(got == data) << got.size() << " bytes";
  }
  start = NowMs();
  ssize_t n = 0;
  for (int i = 0; i < 100 && n >= 0; ++i) n = send(fd, data.data(), size, MSG_NOSIGNAL);
  EXPECT_EQ(n, -1) << "sends to a dead peer kept succeeding";
  EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET) << std::strerror(errno);
  EXPECT_LT(NowMs() - start, 1000);
}

// Killed after the accept, its Offer unread: the server (fast already) sees the end of the
// stream or a reset, and its sends fail (EPIPE or ECONNRESET), never hang.
TEST(TransitionTest, ClientKilledWhilePendingAfterTheAccept) {
  const Pipe ready;
  ASSERT_GE(ready.read.get(), 0);
  ClientProcess client;
  ASSERT_NO_FATAL_FAILURE(StartPendingClientProcess(&client, {}, ready.write.get(), false));
  char byte;
  ASSERT_EQ(read(ready.read.get(), &byte, 1), 1);
  int64_t accept_ms = 0;
  const Fd server(TimedAccept(client.listener.get(), &accept_ms));
  ASSERT_GE(server.get(), 0);
  EXPECT_LT(accept_ms, kQuickMs);
  Bound(server.get(), 2000);
  const std::vector<uint8_t> data = Pattern(53, 0, 1000);
  EXPECT_TRUE(WriteAll(server.get(), data.data(), data.size()));  // never read by the client
  ASSERT_EQ(kill(client.pid, SIGKILL), 0);
  EXPECT_EQ(Reap(client.pid, 3000), -1);
  ExpectDeadPeer(server.get(), data, data.size(), /*no_data=*/true);
}

// The server process accepts, writes its greeting and is killed before the client read
// anything (the client is still pending: the Offer waits in its channel). Kernel TCP: the
// client reads the greeting, then the end of the stream; its sends then fail.
TEST(TransitionTest, ServerKilledRightAfterAcceptAndItsGreeting) {
  uint16_t port = 0;
  Fd listener(Listen(AF_INET, "127.0.0.1", true, &port));
  ASSERT_GE(listener.get(), 0);
  const Pipe ready;
  ASSERT_GE(ready.read.get(), 0);
  const std::vector<uint8_t> greeting = Pattern(54, 0, 1000);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener.get(), nullptr, nullptr);
    if (fd < 0) return 2;
    if (!WriteAll(fd, greeting.data(), greeting.size())) return 3;
    if (write(ready.write.get(), "r", 1) != 1) return 4;
    for (;;) pause();
  });
  listener.reset();
  const Fd client(Connect({AF_INET, "127.0.0.1", port}, true));
  ASSERT_GE(client.get(), 0);
  char byte;
  ASSERT_EQ(read(ready.read.get(), &byte, 1), 1);
  ASSERT_EQ(kill(server, SIGKILL), 0);
  EXPECT_EQ(Reap(server, 3000), -1);
  Bound(client.get(), 2000);
  ExpectDeadPeer(client.get(), greeting, 100, /*no_data=*/false);
}

// ===== fork right after accept, fork right after a non-blocking connect =====

// The server forks right after accept, before any I/O (the client has not read its Offer);
// the child serves, the parent closes its copy at once.
TEST(TransitionTest, ServerForksRightAfterAcceptBeforeTheClientReadItsOffer) {
  const Pipe go;
  ASSERT_GE(go.read.get(), 0);
  ClientProcess client;
  ASSERT_NO_FATAL_FAILURE(StartClientProcess(&client, [&](int fd) {
    char byte;
    if (read(go.read.get(), &byte, 1) != 1) return 3;  // the server has forked and closed its copy
    Bound(fd, 3000);
    const std::vector<uint8_t> sent = Pattern(61, 0, 1 << 20);
    if (EchoedPrefix(fd, sent) != sent.size()) return 4;
    if (ObservedPath(fd) != "fast") return 5;
    if (shutdown(fd, SHUT_WR) != 0) return 6;
    return recv(fd, &byte, 1, 0) == 0 ? 0 : 7;
  }));
  Fd accepted(accept(client.listener.get(), nullptr, nullptr));
  ASSERT_GE(accepted.get(), 0);
  const pid_t server = Spawn([&] {
    client.listener.reset();
    Bound(accepted.get(), 3000);
    if (!EchoUntilEnd(accepted.get())) return 2;
    const bool fast = ObservedPath(accepted.get()) == "fast";
    accepted.reset();
    return fast ? 0 : 3;
  });
  accepted.reset();
  ASSERT_EQ(write(go.write.get(), "g", 1), 1);
  EXPECT_EQ(Reap(client.pid, 5000), 0);
  EXPECT_EQ(Reap(server, 5000), 0);
}

// The child's side of a connection both processes use after a fork during its connect: once
// connect is done (poll POLLOUT within `poll_ms`, no SO_ERROR), `size` bytes of stream `seed`
// out and the same echoed back, blocking. `first_failure`: the status of the first check.
int TalkOnceConnected(int client, int poll_ms, uint64_t seed, size_t size, int first_failure) {
  struct pollfd pfd = {client, POLLOUT, 0};
  if (poll(&pfd, 1, poll_ms) != 1) return first_failure;
  int so_error = -1;
  socklen_t length = sizeof so_error;
  if (getsockopt(client, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0 || so_error != 0) {
    return first_failure + 1;
  }
  fcntl(client, F_SETFL, 0);
  Bound(client, 3000);
  const std::vector<uint8_t> sent = Pattern(seed, 0, size);
  if (!WriteAll(client, sent.data(), sent.size())) return first_failure + 2;
  std::vector<uint8_t> back(sent.size());
  if (!ReadAll(client, back.data(), back.size()) || back != sent) return first_failure + 3;
  return 0;
}

// The server's side of that: echoes the child's `size` bytes of stream `seed`, waits for the
// child, then the parent's client carries 1 MiB each way (streams `seed` + 1 and + 2).
void EchoTheChildThenTalkWithTheParent(int server, pid_t child, int client, uint64_t seed,
                                       size_t size) {
  Bound(server, 3000);
  std::vector<uint8_t> buffer(size);
  EXPECT_TRUE(ReadAll(server, buffer.data(), buffer.size()));
  EXPECT_TRUE(buffer == Pattern(seed, 0, buffer.size()));
  EXPECT_TRUE(WriteAll(server, buffer.data(), buffer.size()));
  EXPECT_EQ(Reap(child, 5000), 0);
  fcntl(client, F_SETFL, 0);
  Bound(client, 3000);
  EXPECT_TRUE(CarriesExactly(client, server, seed + 1, 1 << 20));
  EXPECT_TRUE(CarriesExactly(server, client, seed + 2, 1 << 20));
}

// fork while a non-blocking connect returned EINPROGRESS and nothing was asked since; the
// child writes first, then the parent; the listening program accepts after the fork.
TEST(TransitionTest, ForkRightAfterANonBlockingConnectReturnedEinprogress) {
  uint16_t port = 0;
  const Fd listener(Listen(AF_INET, "127.0.0.1", true, &port));
  ASSERT_GE(listener.get(), 0);
  Bound(listener.get(), 3000);
  int error = 0;
  Fd client(StartConnect(port, &error));
  ASSERT_GE(client.get(), 0);
  ASSERT_EQ(error, EINPROGRESS);
  const pid_t child =
      Spawn([&] { return TalkOnceConnected(client.get(), 2000, 62, 256 << 10, 2); });
  int64_t accept_ms = 0;
  const Fd server(TimedAccept(listener.get(), &accept_ms));
  ASSERT_GE(server.get(), 0);
  EXPECT_LT(accept_ms, kQuickMs);
  // The server echoes the child's bytes, then the parent's.
  EchoTheChildThenTalkWithTheParent(server.get(), child, client.get(), 62, 256 << 10);
  const std::string path = ObservedPath(client.get());
  EXPECT_TRUE(path == "fast" || path == "kernel") << path;
  EXPECT_EQ(ObservedPath(server.get()), path);
  CloseAndExpectEnd(&client, server.get());
}

// The IP_TTL a fresh TCP socket reports (what the program expects to see).
int DefaultTtl() {
  const Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int ttl = -1;
  socklen_t length = sizeof ttl;
  getsockopt(fd.get(), IPPROTO_IP, IP_TTL, &ttl, &length);
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
  ConnectUnderWay under_way;
  ASSERT_NO_FATAL_FAILURE(MakeConnectUnderWay(&under_way));
  const int client = under_way.client.get();
  const int default_ttl = DefaultTtl();
  const pid_t child = Spawn([&] {
    if (TtlOf(client) != default_ttl) return 2;  // the program's TTL, not the marker
    return TalkOnceConnected(client, 2500, 65, 64 << 10, 3);
  });
  EXPECT_EQ(TtlOf(client), default_ttl);
  Fd first(accept(under_way.listener.get(), nullptr, nullptr));  // room for the SYN
  ASSERT_GE(first.get(), 0);
  first.reset();
  under_way.filler.reset();
  const Fd server(accept(under_way.listener.get(), nullptr, nullptr));
  ASSERT_GE(server.get(), 0);
  EchoTheChildThenTalkWithTheParent(server.get(), child, client, 65, 64 << 10);
  EXPECT_EQ(ObservedPath(client), "kernel");
  EXPECT_EQ(ObservedPath(server.get()), "kernel");
  EXPECT_STREQ(loopfast_fallback_reason(client),
               "the program forked while the connection was being made");
  EXPECT_EQ(TtlOf(client), default_ttl);
  CloseAndExpectEnd(&under_way.client, server.get());
}

// ===== early bytes (sent while pending), then fork, then both processes read and write =====

// Early bytes, then fork, `accept_first`: the listening program accepted before the fork (the
// Offer waits), or only after it. The server then gets: early, the child's, the parent's
// bytes, in that order; each process reads its own answer.
void EarlyBytesThenFork(bool accept_first) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
  const int client = pending.client.get();
  const std::vector<uint8_t> early = Pattern(71, 0, 3000);
  const std::vector<uint8_t> from_child = Pattern(72, 0, 100000);
  const std::vector<uint8_t> from_parent = Pattern(73, 0, 100000);
  const std::vector<uint8_t> to_child = Pattern(74, 0, 50000);
  const std::vector<uint8_t> to_parent = Pattern(75, 0, 50000);
  ASSERT_EQ(send(client, early.data(), early.size(), MSG_DONTWAIT), ssize_t(early.size()));
  Fd server;
  if (accept_first) server = pending.Accept();
  const pid_t child = Spawn([&] {
    Bound(client, 3000);
    if (!WriteAll(client, from_child.data(), from_child.size())) return 2;
    std::vector<uint8_t> got(to_child.size());
    if (!ReadAll(client, got.data(), got.size()) || got != to_child) return 3;
    return 0;
  });
  if (!accept_first) server = pending.Accept();
  ASSERT_GE(server.get(), 0);
  Bound(server.get(), 3000);
  std::vector<uint8_t> got(early.size() + from_child.size());
  ASSERT_TRUE(ReadAll(server.get(), got.data(), got.size()));
  std::vector<uint8_t> expected = early;
  expected.insert(expected.end(), from_child.begin(), from_child.end());
  EXPECT_TRUE(got == expected) << "early bytes and the child's, in order";
  EXPECT_TRUE(WriteAll(server.get(), to_child.data(), to_child.size()));
  EXPECT_EQ(Reap(child, 5000), 0);
  Bound(client, 3000);
  EXPECT_TRUE(WriteAll(client, from_parent.data(), from_parent.size()));
  got.assign(from_parent.size(), 0);
  EXPECT_TRUE(ReadAll(server.get(), got.data(), got.size()) && got == from_parent);
  EXPECT_TRUE(WriteAll(server.get(), to_parent.data(), to_parent.size()));
  got.assign(to_parent.size(), 0);
  EXPECT_TRUE(ReadAll(client, got.data(), got.size()) && got == to_parent);
  // Fast either way: the claim is in the session's memory, whoever accepts and whenever.
  EXPECT_EQ(ObservedPath(client), "fast");
  EXPECT_EQ(ObservedPath(server.get()), "fast");
  CloseAndExpectEnd(&pending.client, server.get());
}

TEST(TransitionTest, EarlyBytesThenForkWithTheOfferWaiting) { EarlyBytesThenFork(true); }

TEST(TransitionTest, EarlyBytesThenForkBeforeTheAccept) { EarlyBytesThenFork(false); }

}  // namespace
}  // namespace loopfast::test
