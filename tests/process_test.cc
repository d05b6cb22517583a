// Fast sockets across descriptor copies, "close everything else", fork, exec, spawn and vfork,
// and epoll descriptors that are copied or inherited. Real processes and real programs
// (/bin/sh, cat, ls); every test first checks that the connection under test is fast.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

extern char **environ;

namespace loopfast::test {
namespace {

// Both ends in this process, settled on the fast path (one byte each way).
struct Pair {
  int client = -1;
  int server = -1;
};

Pair FastPair() {
  Pair pair;
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  EXPECT_GE(listener, 0);
  pair.client = Connect({AF_INET, "127.0.0.1", port}, true);
  pair.server = accept(listener, nullptr, nullptr);
  close(listener);
  Settle(pair.client, pair.server, true);
  return pair;
}

// The descriptors open in this process, from /proc/self/fd (without the directory's own).
std::vector<int> OpenDescriptors() {
  std::vector<int> fds;
  DIR *dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = dirfd(dir);
  while (struct dirent *entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) fds.push_back(fd);
  }
  closedir(dir);
  return fds;
}

// Runs `argv` with stdout to a pipe; returns what it printed.
std::string Output(const std::vector<const char *> &argv_in) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return "pipe failed";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<char *> argv;
  for (const char *arg : argv_in) argv.push_back(const_cast<char *>(arg));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(out[0], buffer, sizeof buffer)) > 0) text.append(buffer, size_t(n));
  close(out[0]);
  if (spawned != 0) return "spawn failed";
  int status = 0;
  waitpid(pid, &status, 0);
  return text;
}

// Programs size tables by their descriptor numbers (wrk's event loop takes descriptors below
// 10 + 3 x its connections; select() stops at FD_SETSIZE): loopfast's own descriptors live
// above the program's range, so 8 fast connections leave the program the numbers that 8 kernel
// TCP connections leave it (found by nginx's test: wrk reported a connect error).
std::vector<int> NumbersOfEightConnectionsThenASocket(bool fast) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", fast, &port);
  std::vector<int> numbers = {listener};
  for (int i = 0; i < 8; ++i) {
    const int client = Connect({AF_INET, "127.0.0.1", port}, fast);
    const int server = accept(listener, nullptr, nullptr);
    Settle(client, server, fast);
    numbers.insert(numbers.end(), {client, server});
  }
  numbers.push_back(socket(AF_INET, SOCK_STREAM, 0));
  for (const int fd : numbers) close(fd);
  return numbers;
}

TEST(DescriptorTest, FastConnectionsLeaveTheProgramTheDescriptorNumbersOfKernelTcp) {
  const std::vector<int> kernel = NumbersOfEightConnectionsThenASocket(false);
  const std::vector<int> fast = NumbersOfEightConnectionsThenASocket(true);
  EXPECT_EQ(fast, kernel);
  // Closed, the fast connections left no descriptor behind: kernel TCP gets the same numbers.
  EXPECT_EQ(NumbersOfEightConnectionsThenASocket(false), kernel);
}

TEST(DescriptorTest, CopiesShareTheConnectionAndOnlyTheLastCloseEndsIt) {
  Pair pair = FastPair();
  const int copy_dup = dup(pair.client);
  const int copy_dup2 = dup2(pair.client, 200);
  const int copy_dup3 = dup3(pair.client, 201, O_CLOEXEC);
  const int copy_fcntl = fcntl(pair.client, F_DUPFD, 300);
  const int copy_cloexec = fcntl(pair.client, F_DUPFD_CLOEXEC, 400);
  ASSERT_GE(copy_dup, 0);
  ASSERT_EQ(copy_dup2, 200);
  ASSERT_EQ(copy_dup3, 201);
  ASSERT_GE(copy_fcntl, 300);
  ASSERT_GE(copy_cloexec, 400);
  EXPECT_EQ(fcntl(copy_dup3, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  const int copies[] = {copy_dup, copy_dup2, copy_dup3, copy_fcntl, copy_cloexec};
  for (int copy : copies) {
    EXPECT_EQ(ObservedPath(copy), "fast") << copy;
    EXPECT_TRUE(CarriesExactly(copy, pair.server, uint64_t(copy), 300000)) << copy;
    EXPECT_TRUE(CarriesExactly(pair.server, copy, uint64_t(copy) + 1, 300000)) << copy;
  }
  // Close all but one copy: the connection goes on.
  close(pair.client);
  for (int copy : copies) {
    if (copy != copy_cloexec) close(copy);
  }
  EXPECT_TRUE(CarriesExactly(copy_cloexec, pair.server, 7, 1 << 20));
  EXPECT_EQ(ObservedPath(copy_cloexec), "fast");
  // dup2 onto the last copy closes it properly: the peer sees the end of the stream.
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  ASSERT_EQ(dup2(pipe_fds[0], copy_cloexec), copy_cloexec);
  char byte;
  EXPECT_EQ(recv(pair.server, &byte, 1, 0), 0);
  close(copy_cloexec);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  close(pair.server);
}

// A child that opens its own fast connection, then closes "every other descriptor" in one of
// three ways, and must still move data both ways on the fast path.
enum class CloseAllWay { kCloseRange, kCloseFrom, kProcLoop };

int CloseEverythingElseThenTalk(uint16_t port, CloseAllWay way) {
  const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
  if (fd < 0) return 2;
  char byte = 'h';
  if (!WriteAll(fd, &byte, 1) || !ReadAll(fd, &byte, 1)) return 3;
  if (ObservedPath(fd) != "fast") return 4;
  const int keep = 100;  // move the socket out of the way, as daemons do with their socket
  if (dup2(fd, keep) != keep) return 5;
  switch (way) {
    case CloseAllWay::kCloseRange:
      if (close_range(3, keep - 1, 0) != 0 || close_range(keep + 1, ~0u, 0) != 0) return 6;
      break;
    case CloseAllWay::kCloseFrom:
      if (close_range(3, keep - 1, 0) != 0) return 6;
      closefrom(keep + 1);
      break;
    case CloseAllWay::kProcLoop:
      for (int other : OpenDescriptors()) {
        if (other > 2 && other != keep) close(other);  // errors ignored, as such loops do
      }
      break;
  }
  // What is left besides 0-2 and the socket is loopfast's, and not the program's to replace.
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 7;
  for (int other : OpenDescriptors()) {
    if (other <= 2 || other == keep || other == pipe_fds[0] || other == pipe_fds[1]) continue;
    errno = 0;
    if (dup2(pipe_fds[0], other) != -1 || errno != EBUSY) return 8;
  }
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  // Echo 1 MiB back, then check the path.
  std::vector<uint8_t> buffer(1 << 20);
  if (!ReadAll(keep, buffer.data(), buffer.size())) return 9;
  if (!WriteAll(keep, buffer.data(), buffer.size())) return 10;
  if (ObservedPath(keep) != "fast") return 11;
  close(keep);
  return 0;
}

class CloseEverythingElseTest : public ::testing::TestWithParam<CloseAllWay> {};

TEST_P(CloseEverythingElseTest, TheConnectionKeepsWorkingOnTheFastPath) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const CloseAllWay way = GetParam();
  const pid_t child = Spawn([&] { return CloseEverythingElseThenTalk(port, way); });
  const int fd = accept(listener, nullptr, nullptr);
  ASSERT_GE(fd, 0);
  char byte;
  ASSERT_TRUE(ReadAll(fd, &byte, 1));
  ASSERT_TRUE(WriteAll(fd, &byte, 1));
  ASSERT_EQ(ObservedPath(fd), "fast");
  const std::vector<uint8_t> sent = Pattern(5, 0, 1 << 20);
  ASSERT_TRUE(WriteAll(fd, sent.data(), sent.size()));
  std::vector<uint8_t> back(sent.size());
  ASSERT_TRUE(ReadAll(fd, back.data(), back.size()));
  EXPECT_TRUE(back == sent);
  EXPECT_EQ(ObservedPath(fd), "fast");
  EXPECT_EQ(Reap(child), 0);
  close(fd);
  close(listener);
}

INSTANTIATE_TEST_SUITE_P(Ways, CloseEverythingElseTest,
                         ::testing::Values(CloseAllWay::kCloseRange, CloseAllWay::kCloseFrom,
                                           CloseAllWay::kProcLoop));

TEST(ProcessTest, AfterForkParentAndChildBothUseTheConnection) {
  Pair pair = FastPair();
  // The child reads what the parent writes, then writes what the parent reads.
  const pid_t child = Spawn([&] {
    std::vector<uint8_t> got(4 << 20);
    if (!ReadAll(pair.server, got.data(), got.size())) return 2;
    if (got != Pattern(1, 0, got.size())) return 3;
    const std::vector<uint8_t> reply = Pattern(2, 0, 1 << 20);
    if (!WriteAll(pair.server, reply.data(), reply.size())) return 4;
    return ObservedPath(pair.server) == "fast" ? 0 : 5;
  });
  const std::vector<uint8_t> sent = Pattern(1, 0, 4 << 20);
  ASSERT_TRUE(WriteAll(pair.client, sent.data(), sent.size()));
  std::vector<uint8_t> reply(1 << 20);
  ASSERT_TRUE(ReadAll(pair.client, reply.data(), reply.size()));
  EXPECT_TRUE(reply == Pattern(2, 0, reply.size()));
  EXPECT_EQ(Reap(child), 0);
  // The child's exit took nothing away: the parent still holds both ends, still fast.
  EXPECT_TRUE(CarriesExactly(pair.server, pair.client, 3, 1 << 20));
  EXPECT_EQ(ObservedPath(pair.server), "fast");
  close(pair.client);
  close(pair.server);
}

// fork() right after connect(), before the client has read the listener's answer: without care
// both processes shared the rendezvous channel, the child's close consumed the Offer, and the
// parent's next send reset the connection ("bytes bypassed the fast path"). The parent now
// settles the path before the child exists: here the Offer is there, so both share one fast
// connection.
TEST(ProcessTest, ForkRightAfterConnectSharesOneFastConnectionWithTheChild) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  const int server = accept(listener, nullptr, nullptr);  // sends the Offer
  close(listener);
  ASSERT_GE(client, 0);
  ASSERT_GE(server, 0);
  const pid_t child = Spawn([&] {
    close(client);  // the child serves; the parent keeps the client end
    std::vector<uint8_t> got(1 << 20);
    if (!ReadAll(server, got.data(), got.size())) return 2;
    if (got != Pattern(4, 0, got.size())) return 3;
    if (!WriteAll(server, got.data(), got.size())) return 4;
    return ObservedPath(server) == "fast" ? 0 : 5;
  });
  close(server);
  const std::vector<uint8_t> sent = Pattern(4, 0, 1 << 20);
  ASSERT_TRUE(WriteAll(client, sent.data(), sent.size()));
  std::vector<uint8_t> back(sent.size());
  ASSERT_TRUE(ReadAll(client, back.data(), back.size()));
  EXPECT_TRUE(back == sent);
  EXPECT_EQ(ObservedPath(client), "fast");
  EXPECT_EQ(Reap(child), 0);
  close(client);
}

// The same fork before the listening program has accepted (the child accepts): the claim is in
// the session's memory, so the child's accept binds it and both ends are fast, every byte
// intact, whichever process reads first.
TEST(ProcessTest, ForkBeforeTheListenerAcceptedStaysFastWithEveryByte) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  const pid_t child = Spawn([&] {
    close(client);
    const int server = accept(listener, nullptr, nullptr);
    if (server < 0) return 2;
    std::vector<uint8_t> got(1 << 20);
    if (!ReadAll(server, got.data(), got.size())) return 3;
    if (got != Pattern(5, 0, got.size())) return 4;
    if (!WriteAll(server, got.data(), got.size())) return 5;
    return ObservedPath(server) == "fast" ? 0 : 6;
  });
  close(listener);
  const std::vector<uint8_t> sent = Pattern(5, 0, 1 << 20);
  ASSERT_TRUE(WriteAll(client, sent.data(), sent.size()));
  std::vector<uint8_t> back(sent.size());
  ASSERT_TRUE(ReadAll(client, back.data(), back.size()));
  EXPECT_TRUE(back == sent);
  EXPECT_EQ(ObservedPath(client), "fast");
  EXPECT_EQ(Reap(child), 0);
  close(client);
}

// Campaign defect 2 (kill -9 campaign, docs/reliability.md): a fast end open across fork()
// kept two doorbell sockets open in the parent after both processes had closed it, until the
// next fork (the parent's list of ends counted for the child held strong references).
TEST(ProcessTest, AFastEndOpenAcrossForkLeavesNoDescriptorOnceBothProcessesCloseIt) {
  {
    // The session between client and listener (its bells, its channel) is made by the first
    // connection and lives on; only what a connection holds must go with it.
    ConnectedPair warm;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &warm));
  }
  const int before = OpenDescriptorCount();
  {
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
    const pid_t child = fork();
    if (child == 0) {
      close(pair.client);
      close(pair.server);
      _exit(0);
    }
    ASSERT_GT(child, 0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }  // the parent closes both ends here
  EXPECT_EQ(OpenDescriptorCount(), before) << "descriptors left after both processes closed";
}

TEST(ProcessTest, AcceptForkParentClosesAndTheChildServes) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  // The client, in its own process: a request, the echo, then the end of the stream.
  const pid_t client = Spawn([&] {
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    const std::vector<uint8_t> request = Pattern(9, 0, 2 << 20);
    if (!WriteAll(fd, request.data(), request.size())) return 2;
    std::vector<uint8_t> echo(request.size());
    if (!ReadAll(fd, echo.data(), echo.size()) || echo != request) return 3;
    if (ObservedPath(fd) != "fast") return 4;
    shutdown(fd, SHUT_WR);
    char byte;
    return recv(fd, &byte, 1, 0) == 0 ? 0 : 5;  // the server's close reaches us
  });
  const int accepted = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  // PostgreSQL and inetd style: the child serves, the parent closes its copy at once.
  const pid_t server = Spawn([&] {
    close(listener);
    std::vector<uint8_t> buffer(64 << 10);
    for (;;) {
      const ssize_t n = recv(accepted, buffer.data(), buffer.size(), 0);
      if (n == 0) break;
      if (n < 0 || !WriteAll(accepted, buffer.data(), size_t(n))) return 2;
    }
    const bool fast = ObservedPath(accepted) == "fast";
    close(accepted);
    return fast ? 0 : 3;
  });
  close(accepted);
  EXPECT_EQ(Reap(client), 0);
  EXPECT_EQ(Reap(server), 0);
  close(listener);
}

// The socket goes to a program that cannot see the rings: sh and cat, with bytes still in
// both rings at the moment of exec. Every byte must arrive, in order, on kernel TCP.
TEST(ProcessTest, ExecOfAProgramThatKeepsTheSocketMovesItToKernelTcpWithEveryByte) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  // kFirst fits the ring's first window, so the parent's write completes before the exec.
  constexpr size_t kFirst = 50000, kReadBeforeExec = 10000, kBack = 50000, kLater = 3 << 20;
  const std::vector<uint8_t> first = Pattern(1, 0, kFirst);
  const std::vector<uint8_t> back = Pattern(2, 0, kBack);
  const std::vector<uint8_t> later = Pattern(3, 0, kLater);
  const pid_t child = Spawn([&] {
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    std::vector<uint8_t> got(kReadBeforeExec);
    if (!ReadAll(fd, got.data(), got.size())) return 2;     // the rest stays in the ring
    if (!WriteAll(fd, back.data(), back.size())) return 3;  // unread by the parent so far
    if (ObservedPath(fd) != "fast") return 4;
    if (dup2(fd, 3) != 3) return 5;  // dup2 clears FD_CLOEXEC: the new program keeps it
    execl("/bin/sh", "sh", "-c", "exec cat <&3 >&3", static_cast<char *>(nullptr));
    return 6;
  });
  const int fd = accept(listener, nullptr, nullptr);
  ASSERT_GE(fd, 0);
  close(listener);
  ASSERT_TRUE(WriteAll(fd, first.data(), first.size()));
  ASSERT_EQ(ObservedPath(fd), "fast");
  // Expected back: the child's own bytes, then cat's echo of everything it did not read.
  std::vector<uint8_t> expected = back;
  expected.insert(expected.end(), first.begin() + kReadBeforeExec, first.end());
  expected.insert(expected.end(), later.begin(), later.end());
  std::vector<uint8_t> got(expected.size());
  bool read_ok = false;
  std::thread reader([&] { read_ok = ReadAll(fd, got.data(), got.size()); });
  EXPECT_TRUE(WriteAll(fd, later.data(), later.size()));
  reader.join();
  EXPECT_TRUE(read_ok);
  EXPECT_TRUE(got == expected);
  shutdown(fd, SHUT_WR);  // cat sees the end, exits
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0);
  EXPECT_EQ(Reap(child), 0);
  close(fd);
}

// posix_spawn with file actions that dup2 a close-on-exec fast socket onto cat's 0 and 1.
TEST(ProcessTest, SpawnedProgramGivenTheSocketGetsEveryByteOnKernelTcp) {
  Pair pair = FastPair();
  ASSERT_EQ(fcntl(pair.server, F_SETFD, FD_CLOEXEC), 0);
  const std::vector<uint8_t> early = Pattern(4, 0, 200000);
  ASSERT_TRUE(WriteAll(pair.client, early.data(), early.size()));  // waiting in the ring
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pair.server, 0);
  posix_spawn_file_actions_adddup2(&actions, pair.server, 1);
  const char *argv[] = {"cat", nullptr};
  pid_t pid = 0;
  ASSERT_EQ(posix_spawnp(&pid, "cat", &actions, nullptr, const_cast<char **>(argv), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(pair.server);  // the parent lets go, as a spawning server does
  const std::vector<uint8_t> later = Pattern(5, 0, 1 << 20);
  std::vector<uint8_t> expected = early;
  expected.insert(expected.end(), later.begin(), later.end());
  std::vector<uint8_t> got(expected.size());
  bool read_ok = false;
  std::thread reader([&] { read_ok = ReadAll(pair.client, got.data(), got.size()); });
  EXPECT_TRUE(WriteAll(pair.client, later.data(), later.size()));
  reader.join();
  EXPECT_TRUE(read_ok);
  EXPECT_TRUE(got == expected);
  shutdown(pair.client, SHUT_WR);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(pair.client);
}

TEST(ProcessTest, ChildrenSeeNoInternalDescriptorsAndCloseOnExecIsRespected) {
  // ls lists its own descriptors: 0-2, the directory it reads, and whatever this test process
  // inherited without close-on-exec. Once a fast connection exists, nothing more.
  const std::string before = Output({"/bin/ls", "/proc/self/fd"});
  ASSERT_NE(before.find("3\n"), std::string::npos) << before;
  Pair pair = FastPair();
  ASSERT_EQ(fcntl(pair.client, F_SETFD, FD_CLOEXEC), 0);
  ASSERT_EQ(fcntl(pair.server, F_SETFD, FD_CLOEXEC), 0);
  EXPECT_EQ(Output({"/bin/ls", "/proc/self/fd"}), before);
  // The same after fork + exec.
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    execl("/bin/ls", "ls", "/proc/self/fd", static_cast<char *>(nullptr));
    _exit(127);
  }
  close(out[1]);
  char listing[1024] = {};
  ssize_t n = 0, total = 0;
  while ((n = read(out[0], listing + total, sizeof listing - 1 - size_t(total))) > 0) total += n;
  close(out[0]);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(std::string(listing), before);
  // Close-on-exec sockets went nowhere: the connection is still fast here.
  EXPECT_TRUE(CarriesExactly(pair.client, pair.server, 6, 1 << 20));
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  // A socket without close-on-exec is inherited (it shows in the child), so it moves to
  // kernel TCP, and keeps working.
  ASSERT_EQ(fcntl(pair.client, F_SETFD, 0), 0);
  const std::string shown = Output({"/bin/ls", "/proc/self/fd"});
  EXPECT_NE(shown.find(std::to_string(pair.client) + "\n"), std::string::npos) << shown;
  EXPECT_EQ(loopfast_path_of(pair.client), LOOPFAST_PATH_KERNEL);
  EXPECT_TRUE(CarriesExactly(pair.client, pair.server, 7, 1 << 20));
  EXPECT_TRUE(CarriesExactly(pair.server, pair.client, 8, 1 << 20));
  close(pair.client);
  close(pair.server);
}

TEST(ProcessTest, VforkThenExitOrExecLeavesTheConnectionFast) {
  Pair pair = FastPair();
  ASSERT_EQ(fcntl(pair.client, F_SETFD, FD_CLOEXEC), 0);
  ASSERT_EQ(fcntl(pair.server, F_SETFD, FD_CLOEXEC), 0);
  pid_t pid = vfork();
  if (pid == 0) _exit(0);
  ASSERT_GT(pid, 0);
  waitpid(pid, nullptr, 0);
  pid = vfork();
  if (pid == 0) {
    execl("/bin/true", "true", static_cast<char *>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(CarriesExactly(pair.client, pair.server, 9, 1 << 20));
  EXPECT_TRUE(CarriesExactly(pair.server, pair.client, 10, 1 << 20));
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  EXPECT_EQ(ObservedPath(pair.server), "fast");
  close(pair.client);
  close(pair.server);
}

// A child that writes to an inherited fast socket with a raw system call puts bytes on the
// kernel connection, past the rings (SPEC guarantee 4). Their place in the stream is
// unknowable, so the reader must never receive them as data: when the ring stream ends and
// they are found, the connection is reset (ECONNRESET on both ends), loudly.
TEST(ProcessTest, BytesThatBypassTheRingsResetTheConnectionInsteadOfJoiningTheStream) {
  Pair pair = FastPair();
  const pid_t child = fork();
  if (child == 0) {
    const long n = syscall(SYS_write, pair.client, "bypass", 6);
    close(pair.client);
    close(pair.server);
    _exit(n == 6 ? 0 : 1);
  }
  ASSERT_GT(child, 0);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(WriteAll(pair.client, "ring", 4));
  ASSERT_EQ(close(pair.client), 0);
  std::string stream;
  char buffer[64];
  ssize_t n;
  errno = 0;
  while ((n = recv(pair.server, buffer, sizeof buffer, 0)) > 0) stream.append(buffer, size_t(n));
  EXPECT_EQ(n, -1) << "the stream ended normally: \"" << stream << "\"";
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(stream.find("bypass"), std::string::npos) << stream;
  close(pair.server);
}

// A new epoll set watching `fd` for input with `data`; -1 on failure.
int EpollWatching(int fd, uint64_t data) {
  const int epfd = epoll_create1(0);
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = data;
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) != 0) return -1;
  return epfd;
}

TEST(EpollDescriptorTest, InheritedAcrossForkKeepsWorkingInTheChild) {
  Pair pair = FastPair();
  const int epfd = EpollWatching(pair.server, 77);
  ASSERT_GE(epfd, 0);
  const pid_t child = Spawn([&] {
    size_t total = 0;
    std::vector<uint8_t> buffer(1 << 16);
    while (total < (4u << 20)) {
      struct epoll_event got = {};
      if (epoll_wait(epfd, &got, 1, 10000) != 1 || got.data.u64 != 77) return 2;
      const ssize_t n = recv(pair.server, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n < 0 && errno == EAGAIN) continue;
      if (n <= 0) return 3;
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[size_t(i)] != PatternByte(11, total + size_t(i))) return 4;
      }
      total += size_t(n);
    }
    return ObservedPath(pair.server) == "fast" ? 0 : 5;
  });
  const std::vector<uint8_t> sent = Pattern(11, 0, 4 << 20);
  ASSERT_TRUE(WriteAll(pair.client, sent.data(), sent.size()));
  EXPECT_EQ(Reap(child), 0);
  close(epfd);
  close(pair.client);
  close(pair.server);
}

TEST(EpollDescriptorTest, CopiesOfAnEpollDescriptorReportTheProgramsData) {
  Pair pair = FastPair();
  const int epfd = EpollWatching(pair.server, 1234);
  ASSERT_GE(epfd, 0);
  const int copy = dup(epfd);
  const int copy2 = fcntl(epfd, F_DUPFD_CLOEXEC, 500);
  ASSERT_GE(copy, 0);
  ASSERT_GE(copy2, 500);
  ASSERT_TRUE(WriteAll(pair.client, "a", 1));
  for (int fd : {epfd, copy, copy2}) {
    struct epoll_event got = {};
    ASSERT_EQ(epoll_wait(fd, &got, 1, 5000), 1) << fd;
    EXPECT_EQ(got.data.u64, 1234u) << fd;
    EXPECT_EQ(got.events, uint32_t(EPOLLIN)) << fd;
  }
  // The original closed: the copies go on, and still wake from a sleep.
  close(epfd);
  char byte;
  ASSERT_EQ(recv(pair.server, &byte, 1, 0), 1);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(WriteAll(pair.client, "b", 1));
  });
  struct epoll_event got = {};
  EXPECT_EQ(epoll_wait(copy, &got, 1, 5000), 1);
  EXPECT_EQ(got.data.u64, 1234u);
  writer.join();
  EXPECT_EQ(epoll_ctl(copy2, EPOLL_CTL_DEL, pair.server, nullptr), 0);
  EXPECT_EQ(epoll_wait(copy, &got, 1, 0), 0);  // one instance: deleted through either copy
  EXPECT_EQ(ObservedPath(pair.server), "fast");
  close(copy);
  close(copy2);
  close(pair.client);
  close(pair.server);
}

}  // namespace
}  // namespace loopfast::test
