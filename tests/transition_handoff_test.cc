// Connections caught between states (see transition_fork_test.cc), then handed on: copied with
// dup, dup2 or F_DUPFD, given to a new program (posix_spawn, exec, vfork), passed to another
// process over a Unix socket (SCM_RIGHTS). Kernel TCP makes every one of these transparent:
// every byte arrives once and in order, nothing hangs, accept() does not stall. The path may end
// up "kernel" where the rendezvous could not finish; that is fine when every byte is intact.
#include <fcntl.h>
#include <gtest/gtest.h>
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

// Both ends are on the path the first says, fast or kernel.
void ExpectOnePath(int client, int server) {
  const std::string path = ObservedPath(client);
  EXPECT_TRUE(path == "fast" || path == "kernel") << path;
  EXPECT_EQ(ObservedPath(server), path);
}

// 1 MiB of stream `seed` from `server` echoed by `cat` on a connection it took over (kernel
// TCP: the new program does not run loopfast's rendezvous), then cat's end.
void EchoThroughCat(int server, pid_t cat, uint64_t seed) {
  Bound(server, 3000);
  EXPECT_EQ(EchoedPrefix(server, Pattern(seed, 0, 1 << 20)), size_t(1) << 20);
  EXPECT_EQ(ObservedPath(server), "kernel");
  FinishCat(server, cat);
}

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
  PendingClient pending;  // no Offer yet
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
  Fd copy(CopyOf(pending.client.get(), way));
  ASSERT_GE(copy.get(), 0) << std::strerror(errno);
  ASSERT_EQ(close(pending.client.release()), 0);
  int64_t accept_ms = 0;
  const Fd server(TimedAccept(pending.listener.get(), &accept_ms));
  ASSERT_GE(server.get(), 0) << std::strerror(errno);
  Bound(copy.get(), 3000);
  Bound(server.get(), 3000);
  EXPECT_LT(accept_ms, kQuickMs) << "accept() stalled " << accept_ms << " ms ("
                                 << loopfast_fallback_reason(server.get()) << ")";
  EXPECT_TRUE(CarriesExactly(copy.get(), server.get(), 11, 1 << 20));
  EXPECT_TRUE(CarriesExactly(server.get(), copy.get(), 12, 1 << 20));
  ExpectOnePath(copy.get(), server.get());
  CloseAndExpectEnd(&copy, server.get());
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
      PendingClient pending;
      ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
      Fd copy(CopyOf(pending.client.get(), way));
      ASSERT_GE(copy.get(), 0);
      Fd server;
      int64_t accept_ms = 0;
      if (close_original) {
        server.reset(TimedAccept(pending.listener.get(), &accept_ms));  // the Offer waits
        ASSERT_EQ(close(pending.client.release()), 0);
      } else {
        ASSERT_EQ(close(copy.release()), 0);  // the Hello names `original`, which stays
        server.reset(TimedAccept(pending.listener.get(), &accept_ms));
      }
      ASSERT_GE(server.get(), 0);
      Fd &kept = close_original ? copy : pending.client;
      Bound(kept.get(), 3000);
      Bound(server.get(), 3000);
      EXPECT_LT(accept_ms, kQuickMs);
      EXPECT_TRUE(CarriesExactly(kept.get(), server.get(), 13, 256 << 10));
      EXPECT_TRUE(CarriesExactly(server.get(), kept.get(), 14, 256 << 10));
      EXPECT_EQ(ObservedPath(kept.get()), "fast");
      EXPECT_EQ(ObservedPath(server.get()), "fast");
      CloseAndExpectEnd(&kept, server.get());
    }
  }
}

// ===== exec and posix_spawn of a program that inherits a transitional socket =====

// posix_spawn of cat with the pending client as its stdin/stdout, the Offer already waiting;
// the parent lets its copy go.
TEST(TransitionTest, SpawnedCatGetsAPendingClientWhoseOfferIsWaiting) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending, true, /*listener_bound_ms=*/0));
  const Fd server = pending.Accept();
  ASSERT_GE(server.get(), 0);
  pending.listener.reset();
  const pid_t cat = SpawnCat(pending.client.get(), pending.client.get());
  ASSERT_GT(cat, 0);
  pending.client.reset();
  EchoThroughCat(server.get(), cat, 31);
}

// The same before the listening program accepted (no Offer yet).
TEST(TransitionTest, SpawnedCatGetsAPendingClientBeforeTheAccept) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
  const pid_t cat = SpawnCat(pending.client.get(), pending.client.get());
  ASSERT_GT(cat, 0);
  pending.client.reset();
  Fd server;
  ASSERT_NO_FATAL_FAILURE(AcceptTheLastOne(&pending, &server));
  EchoThroughCat(server.get(), cat, 32);
}

// fork, then the child execs sh, which execs cat on the inherited pending client (the Offer
// waiting at the fork): every byte through cat.
TEST(TransitionTest, ExecInAForkedChildOfAPendingClient) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending, true, /*listener_bound_ms=*/0));
  const Fd server = pending.Accept();
  ASSERT_GE(server.get(), 0);
  const int client = pending.client.get();
  const pid_t child = Spawn([&] {
    if (dup2(client, 3) != 3) return 2;  // dup2 clears FD_CLOEXEC: sh and cat keep it
    execl("/bin/sh", "sh", "-c", "exec cat <&3 >&3", static_cast<char *>(nullptr));
    return 3;
  });
  pending.client.reset();
  pending.listener.reset();
  EchoThroughCat(server.get(), child, 33);
}

// A non-blocking connect still under way (EINPROGRESS, nothing asked since), then posix_spawn
// of cat with the socket; the spawning program keeps its copy (a supervisor that closes it
// when the child ends). Kernel TCP: cat echoes every byte.
TEST(TransitionTest, SpawnedCatGetsASocketWhoseNonBlockingConnectIsUnderWay) {
  uint16_t port = 0;
  Fd listener(Listen(AF_INET, "127.0.0.1", true, &port));
  ASSERT_GE(listener.get(), 0);
  Bound(listener.get(), 3000);
  int error = 0;
  Fd client(StartConnect(port, &error));
  ASSERT_GE(client.get(), 0);
  ASSERT_EQ(error, EINPROGRESS) << std::strerror(error);
  // cat reads and writes blocking (O_NONBLOCK is shared with it); the connect goes on.
  ASSERT_EQ(fcntl(client.get(), F_SETFL, 0), 0);
  const pid_t cat = SpawnCat(client.get(), client.get());
  ASSERT_GT(cat, 0);
  const Fd server(accept(listener.get(), nullptr, nullptr));
  ASSERT_GE(server.get(), 0);
  listener.reset();
  Bound(server.get(), 1500);
  const std::vector<uint8_t> sent = Pattern(34, 0, 64 << 10);
  const size_t echoed = EchoedPrefix(server.get(), sent);
  EXPECT_EQ(echoed, sent.size()) << "cat echoed " << echoed << " of " << sent.size()
                                 << " bytes; server path " << ObservedPath(server.get());
  client.reset();
  if (echoed == sent.size()) {
    FinishCat(server.get(), cat);
  } else {
    kill(cat, SIGKILL);
    Reap(cat, 3000);
  }
}

// ===== an accepted socket handed on right after accept =====

// inetd style: right after accept (the client pending, its early request buffered), the server
// forks, the child makes the socket its stdin/stdout and execs cat, the parent closes it.
TEST(TransitionTest, AcceptedSocketHandedToCatRightAfterAccept) {
  const Pipe go;
  ASSERT_GE(go.read.get(), 0);
  const std::vector<uint8_t> early = Pattern(81, 0, 2000);
  ClientProcess client;
  ASSERT_NO_FATAL_FAILURE(StartClientProcess(&client, [&](int fd) {
    if (send(fd, early.data(), early.size(), MSG_DONTWAIT) != ssize_t(early.size())) return 3;
    char byte;
    if (read(go.read.get(), &byte, 1) != 1) return 4;
    Bound(fd, 3000);
    std::vector<uint8_t> got(early.size());
    if (!ReadAll(fd, got.data(), got.size()) || got != early) return 5;
    const std::vector<uint8_t> sent = Pattern(82, 0, 1 << 20);
    if (EchoedPrefix(fd, sent) != sent.size()) return 6;
    if (shutdown(fd, SHUT_WR) != 0) return 7;
    return recv(fd, &byte, 1, 0) == 0 ? 0 : 8;
  }));
  Fd accepted(accept(client.listener.get(), nullptr, nullptr));
  ASSERT_GE(accepted.get(), 0);
  const pid_t cat = Spawn([&] {
    if (dup2(accepted.get(), 0) != 0 || dup2(accepted.get(), 1) != 1) return 2;
    execlp("cat", "cat", static_cast<char *>(nullptr));
    return 3;
  });
  accepted.reset();
  ASSERT_EQ(write(go.write.get(), "g", 1), 1);
  EXPECT_EQ(Reap(client.pid, 5000), 0);
  EXPECT_EQ(Reap(cat, 3000), 0);
}

// ===== a pending client passed to another process (SCM_RIGHTS) =====

// A one-byte message with room for one descriptor (SCM_RIGHTS).
struct DescriptorMessage {
  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr message = {};
  explicit DescriptorMessage(char first) : byte(first) {
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
  }
  DescriptorMessage(const DescriptorMessage &) = delete;
  DescriptorMessage &operator=(const DescriptorMessage &) = delete;
};

bool SendDescriptor(int channel, int fd) {
  DescriptorMessage sent('f');
  msghdr &message = sent.message;
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
  return sendmsg(channel, &message, 0) == 1;
}

int ReceiveDescriptor(int channel) {
  DescriptorMessage received(0);
  msghdr &message = received.message;
  if (recvmsg(channel, &message, MSG_CMSG_CLOEXEC) != 1) return -1;
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  if (header == nullptr || header->cmsg_type != SCM_RIGHTS) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(header), sizeof fd);
  return fd;
}

// Both ends of a Unix stream socket pair (close-on-exec), owned.
struct UnixPair {
  Fd first, second;
  UnixPair() {
    int ends[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return;
    first.reset(ends[0]);
    second.reset(ends[1]);
  }
};

// A broker connects, then hands the new connection to a worker process over a Unix socket and
// closes its copy (the Offer is waiting: the listening program has accepted). The server reads
// once the worker's request was written. Kernel TCP: request and reply arrive exactly.
TEST(TransitionTest, PendingClientPassedToAnotherProcessWithScmRights) {
  uint16_t port = 0;
  const Fd listener(Listen(AF_INET, "127.0.0.1", true, &port));
  ASSERT_GE(listener.get(), 0);
  const UnixPair pair;
  ASSERT_GE(pair.first.get(), 0);
  const Pipe written;
  ASSERT_GE(written.read.get(), 0);
  const std::vector<uint8_t> request = Pattern(101, 0, 1000), reply = Pattern(102, 0, 1000);
  const pid_t worker = Spawn([&] {  // forked before the connection exists
    const int fd = ReceiveDescriptor(pair.second.get());
    if (fd < 0) return 2;
    Bound(fd, 2000);
    if (!WriteAll(fd, request.data(), request.size())) return 3;
    if (write(written.write.get(), "w", 1) != 1) return 4;
    std::vector<uint8_t> got(reply.size());
    if (!ReadAll(fd, got.data(), got.size())) return 5;
    return got == reply ? 0 : 6;
  });
  Fd client(Connect({AF_INET, "127.0.0.1", port}, true));
  ASSERT_GE(client.get(), 0);
  const Fd server(accept(listener.get(), nullptr, nullptr));
  ASSERT_GE(server.get(), 0);
  ASSERT_TRUE(SendDescriptor(pair.first.get(), client.get()));
  client.reset();
  struct pollfd wait = {written.read.get(), POLLIN, 0};
  ASSERT_EQ(poll(&wait, 1, 2000), 1);
  Bound(server.get(), 2000);
  std::vector<uint8_t> got(request.size());
  errno = 0;
  const bool read_ok = ReadAll(server.get(), got.data(), got.size());
  const int error = errno;
  EXPECT_TRUE(read_ok) << "server's recv: " << (error ? std::strerror(error) : "end of stream");
  EXPECT_TRUE(got == request);
  EXPECT_TRUE(WriteAll(server.get(), reply.data(), reply.size()));
  EXPECT_EQ(Reap(worker, 4000), 0);
}

// The acceptor hands a connection it just accepted (before any I/O; the client has not read
// its Offer) to a worker process over a Unix socket and closes its copy, as Node's cluster
// module and other acceptor/worker servers do. The client sends its request, and reads once
// the worker's reply was written.
TEST(TransitionTest, AcceptedSocketPassedToAWorkerWithScmRightsRightAfterAccept) {
  const UnixPair pair;
  ASSERT_GE(pair.first.get(), 0);
  const Pipe go, replied;
  ASSERT_GE(go.read.get(), 0);
  ASSERT_GE(replied.read.get(), 0);
  const std::vector<uint8_t> request = Pattern(103, 0, 1000), reply = Pattern(104, 0, 1000);
  const pid_t worker = Spawn([&] {
    const int fd = ReceiveDescriptor(pair.second.get());
    if (fd < 0) return 2;
    Bound(fd, 2000);
    std::vector<uint8_t> got(request.size());
    if (!ReadAll(fd, got.data(), got.size())) return 3;
    if (got != request) return 4;
    if (!WriteAll(fd, reply.data(), reply.size())) return 5;
    return write(replied.write.get(), "r", 1) == 1 ? 0 : 6;
  });
  ClientProcess client;
  ASSERT_NO_FATAL_FAILURE(StartClientProcess(&client, [&](int fd) {
    char byte;
    if (read(go.read.get(), &byte, 1) != 1) return 3;  // the acceptor has handed the socket on
    Bound(fd, 2000);
    if (!WriteAll(fd, request.data(), request.size())) return 4;
    struct pollfd wait = {replied.read.get(), POLLIN, 0};
    if (poll(&wait, 1, 2000) != 1) return 5;
    std::vector<uint8_t> got(reply.size());
    if (!ReadAll(fd, got.data(), got.size())) return errno == ECONNRESET ? 6 : 7;
    return got == reply ? 0 : 8;
  }));
  Fd accepted(accept(client.listener.get(), nullptr, nullptr));
  ASSERT_GE(accepted.get(), 0);
  ASSERT_TRUE(SendDescriptor(pair.first.get(), accepted.get()));
  accepted.reset();
  ASSERT_EQ(write(go.write.get(), "g", 1), 1);
  EXPECT_EQ(Reap(client.pid, 4000), 0) << "5: no reply written, 6: ECONNRESET, 7: other error/EOF";
  EXPECT_EQ(Reap(worker, 4000), 0) << "3: no request";
}

// ===== vfork: the child shares the parent's memory =====

// The vfork child dup2s the pending client onto a descriptor number and execs sh/cat on it,
// as Python's subprocess and many shells do. The parent's own descriptor of that number (a
// pipe) must stay the parent's pipe; every byte goes through cat; nothing leaks.
// Was known defect 7 (docs/compatibility.md): a vfork child's dup2 wrote the parent's descriptor
// table while a connection waited for its Offer.
TEST(TransitionTest, VforkChildDup2sAPendingClientThenExecsCat) {
  uint16_t port = 0;
  const Fd listener(Listen(AF_INET, "127.0.0.1", true, &port));
  ASSERT_GE(listener.get(), 0);
  const Pipe pipe_fds;
  ASSERT_GE(pipe_fds.read.get(), 0);
  constexpr int kNumber = 9;  // in the parent: the pipe's write end (sh takes fds 0-9 only)
  ASSERT_EQ(fcntl(kNumber, F_GETFD), -1) << "descriptor 9 is in use in this process";
  ASSERT_EQ(dup2(pipe_fds.write.get(), kNumber), kNumber);
  const Fd number(kNumber);
  {
    // The sessions between this client and listener (bells, channel) come with the first
    // connection and stay; what must not stay is anything of the connection below.
    ConnectedPair warm;
    warm.client = Connect({AF_INET, "127.0.0.1", port}, true);
    warm.server = accept(listener.get(), nullptr, nullptr);
    Settle(warm.client, warm.server, true);
  }
  const int before = OpenDescriptorCount();
  const std::string before_list = DescriptorList();
  Fd client(Connect({AF_INET, "127.0.0.1", port}, true));
  Fd server(accept(listener.get(), nullptr, nullptr));  // the Offer waits for the client
  ASSERT_GE(client.get(), 0);
  ASSERT_GE(server.get(), 0);
  const pid_t child = vfork();
  if (child == 0) {
    if (dup2(client.get(), kNumber) != kNumber) _exit(2);
    execl("/bin/sh", "sh", "-c", "exec cat <&9 >&9", static_cast<char *>(nullptr));
    _exit(3);
  }
  ASSERT_GT(child, 0);
  client.reset();
  Bound(server.get(), 3000);
  EXPECT_EQ(EchoedPrefix(server.get(), Pattern(91, 0, 1 << 20)), size_t(1) << 20);
  FinishCat(server.get(), child);
  // The parent's descriptor kNumber is still its pipe, to loopfast too.
  EXPECT_EQ(loopfast_path_of(kNumber), LOOPFAST_PATH_NONE);
  errno = 0;
  EXPECT_EQ(write(kNumber, "p", 1), 1) << std::strerror(errno);
  char byte = 0;
  fcntl(pipe_fds.read.get(), F_SETFL, O_NONBLOCK);
  EXPECT_EQ(read(pipe_fds.read.get(), &byte, 1), 1);
  EXPECT_EQ(byte, 'p');
  server.reset();
  EXPECT_EQ(OpenDescriptorCount(), before) << "descriptors left behind in the parent; before:\n"
                                           << before_list << "after:\n"
                                           << DescriptorList();
}

}  // namespace
}  // namespace loopfast::test
