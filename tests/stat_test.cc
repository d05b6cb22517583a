// `loopfast stat` against real connections: fast ones (bytes, rings, sleepers, how waits end,
// both ends' processes), opted-in listeners, and each fallback reason it names, from this process
// and from separate programs. Every run's JSON is checked against docs/stat.md's schema
// (tests/stat_schema_check.py).
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "peer_process.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

using Row = std::map<std::string, std::string>;

// `loopfast stat --json --pid ...` (run by `wrapper`, e.g. as another user), checked against
// the schema; one row per socket. `hidden` receives hidden_processes.
std::vector<Row> Stat(const std::vector<pid_t> &pids, const std::vector<std::string> &wrapper = {},
                      int *hidden = nullptr, const std::string &tool = LOOPFAST_TOOL) {
  std::string command = Join(wrapper) + tool + " stat --json";
  for (const pid_t pid : pids) command += " --pid " + std::to_string(pid);
  const std::string json = "/tmp/lfstat-" + std::to_string(getpid()) + ".json";
  command += " > " + json +
             " && python3 " LOOPFAST_SOURCE_DIR "/tests/stat_schema_check.py " LOOPFAST_SOURCE_DIR
             "/docs/stat.md < " +
             json;
  FILE *pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::vector<Row> rows;
  char line[4096];
  while (pipe != nullptr && std::fgets(line, sizeof line, pipe) != nullptr) {
    Row row;
    std::stringstream fields(std::string(line, std::strlen(line) - 1));
    std::string field;
    while (std::getline(fields, field, '\t')) {
      const size_t eq = field.find('=');
      row[field.substr(0, eq)] = field.substr(eq + 1);
    }
    rows.push_back(row);
  }
  EXPECT_EQ(pipe != nullptr ? pclose(pipe) : -1, 0) << "loopfast stat or its schema check failed";
  if (hidden != nullptr) {
    std::ifstream in(json);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = text.find("\"hidden_processes\":");
    *hidden = at == std::string::npos ? -1 : std::atoi(text.c_str() + at + 19);
  }
  unlink(json.c_str());
  return rows;
}

Row Find(const std::vector<Row> &rows, pid_t pid, int fd) {
  for (const Row &row : rows) {
    if (row.count("kind") == 0 && row.at("pid") == std::to_string(pid) &&
        row.at("fd") == std::to_string(fd)) {
      return row;
    }
  }
  return {};
}

// The session rows of `pid` (with `peer`, when not 0).
std::vector<Row> SessionsOf(const std::vector<Row> &rows, pid_t pid, pid_t peer = 0) {
  std::vector<Row> sessions;
  for (const Row &row : rows) {
    if (row.count("kind") != 0 && row.at("pid") == std::to_string(pid) &&
        (peer == 0 || row.at("peer_pid") == std::to_string(peer))) {
      sessions.push_back(row);
    }
  }
  return sessions;
}

std::string LocalAddress(int fd, bool peer) {
  sockaddr_in address = {};
  socklen_t length = sizeof address;
  if (peer) {
    getpeername(fd, reinterpret_cast<sockaddr *>(&address), &length);
  } else {
    getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
  }
  char text[32];
  inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(address.sin_port));
}

TEST(StatTest, ShowsFastConnectionsTheirBytesRingsSleepersAndListeners) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  Bound(client);
  // Not accepted yet: the client is fast already (its bytes wait in the session's memory).
  std::vector<Row> rows = Stat({getpid()});
  EXPECT_EQ(Find(rows, getpid(), client)["state"], "fast");
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  Bound(server);
  const std::vector<uint8_t> up = Pattern(1, 0, 3000), down = Pattern(2, 0, 5000);
  std::vector<uint8_t> got(5000);
  ASSERT_TRUE(WriteAll(client, up.data(), up.size()));
  ASSERT_TRUE(ReadAll(server, got.data(), 1000));  // 2,000 bytes stay in the ring
  ASSERT_TRUE(WriteAll(server, down.data(), down.size()));
  ASSERT_TRUE(ReadAll(client, got.data(), 5000));
  ASSERT_EQ(ObservedPath(client), "fast");
  // A thread asleep in recv on the client (nothing more comes until we send).
  std::thread sleeper([&] {
    char byte;
    EXPECT_EQ(recv(client, &byte, 1, 0), 1);
  });
  usleep(300 * 1000);
  rows = Stat({getpid()});
  const std::string self = std::to_string(getpid());
  const Row c = Find(rows, getpid(), client), s = Find(rows, getpid(), server);
  const Row l = Find(rows, getpid(), listener);
  ASSERT_FALSE(c.empty() || s.empty() || l.empty()) << "a socket is missing from stat";
  EXPECT_EQ(c.at("state"), "fast");
  EXPECT_EQ(c.at("role"), "connecting");
  EXPECT_EQ(c.at("local"), LocalAddress(client, false));
  EXPECT_EQ(c.at("peer"), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(c.at("bytes_sent"), "3000");
  EXPECT_EQ(c.at("bytes_received"), "5000");
  EXPECT_EQ(c.at("kernel_bytes_sent"), "0");
  EXPECT_EQ(c.at("in_ring_to_peer"), "2000");
  EXPECT_EQ(c.at("in_ring_from_peer"), "0");
  EXPECT_EQ(c.at("asleep_receive"), "true");
  EXPECT_EQ(c.at("peer_pid"), self);
  EXPECT_EQ(c.at("peer_fd"), std::to_string(server));
  EXPECT_EQ(s.at("state"), "fast");
  EXPECT_EQ(s.at("role"), "accepting");
  EXPECT_EQ(s.at("bytes_sent"), "5000");
  EXPECT_EQ(s.at("bytes_received"), "1000");
  EXPECT_EQ(s.at("in_ring_from_peer"), "2000");
  EXPECT_EQ(s.at("asleep_receive"), "false");
  EXPECT_EQ(s.at("peer_fd"), std::to_string(client));
  EXPECT_EQ(l.at("state"), "listening");
  EXPECT_EQ(l.at("reason"), "null");
  EXPECT_EQ(l.at("local"), "127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(WriteAll(server, "x", 1));
  sleeper.join();
  // Closed sockets leave the registry.
  close(client);
  close(server);
  rows = Stat({getpid()});
  EXPECT_TRUE(Find(rows, getpid(), client).empty());
  EXPECT_FALSE(Find(rows, getpid(), listener).empty());
  close(listener);
}

// How waits end (waits_spun / waits_slept), and what the adaptive spin learns from them
// (wait/spin_policy.h): a receiver whose messages come 3 ms apart sleeps at once after a few
// waits; both ends of an unpaced ping-pong keep spinning.
// (spun, slept) of `fd` in this process, as `loopfast stat` shows them.
std::pair<unsigned long long, unsigned long long> WaitsOf(int fd) {
  const Row row = Find(Stat({getpid()}), getpid(), fd);
  EXPECT_FALSE(row.empty());
  return row.empty() ? std::make_pair(0ull, 0ull)
                     : std::make_pair(std::stoull(row.at("waits_spun")),
                                      std::stoull(row.at("waits_slept")));
}

// Writes `count` one-byte messages to `fd`, 3 ms apart: waits far longer than any spin.
void SendPaced(int fd, int count) {
  for (int i = 0; i < count; ++i) {
    usleep(3000);
    ASSERT_TRUE(WriteAll(fd, "p", 1));
  }
}

TEST(StatTest, ShowsThatPacedWaitsSleepAndAPingPongSpins) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
  const int client = pair.client, server = pair.server;
  Bound(client);
  Bound(server);
  const auto waits = WaitsOf;
  const auto [setup_spun, setup_slept] = waits(server);  // the exchange that settled the pair
  constexpr int kPaced = 100;
  std::thread receiver([&] {
    for (int i = 0; i < kPaced; ++i) {
      char byte;
      ASSERT_EQ(recv(server, &byte, 1, 0), 1);
    }
  });
  ASSERT_NO_FATAL_FAILURE(SendPaced(client, kPaced));
  receiver.join();
  auto [paced_spun, paced_slept] = waits(server);
  paced_spun -= setup_spun;
  paced_slept -= setup_slept;
  EXPECT_LE(paced_spun + paced_slept, uint64_t{kPaced});  // a recv that found its byte: none
  EXPECT_GE(paced_slept, uint64_t{kPaced} * 9 / 10) << "spun " << paced_spun;
  // The ping-pong: the server's receives learn back from the paced ones, the client's are new.
  constexpr int kExchanges = 3000;
  const auto [client_spun_before, client_slept_before] = waits(client);
  std::thread echo([&] {
    char byte;
    for (int i = 0; i < kExchanges; ++i) {
      ASSERT_EQ(recv(server, &byte, 1, 0), 1);
      ASSERT_TRUE(WriteAll(server, &byte, 1));
    }
  });
  for (int i = 0; i < kExchanges; ++i) {
    char byte = 'x';
    ASSERT_TRUE(WriteAll(client, &byte, 1));
    ASSERT_TRUE(ReadAll(client, &byte, 1));
  }
  echo.join();
  const auto [server_spun, server_slept] = waits(server);
  const auto [client_spun, client_slept] = waits(client);
  // Mostly: a busy machine (other builds) may keep a peer off its CPU past the budget.
  EXPECT_GT(server_spun - paced_spun - setup_spun, server_slept - paced_slept - setup_slept);
  EXPECT_GT(client_spun - client_spun_before, client_slept - client_slept_before);
  // The table shows the same.
  const std::string table = Output(LOOPFAST_TOOL " stat --pid " + std::to_string(getpid()));
  EXPECT_NE(table.find("Spun/Slept"), std::string::npos) << table;
}

// An epoll loop's waits count on the connections they report: paced requests 3 ms apart to a
// server waiting in epoll_wait show as slept on the server's connection.
TEST(StatTest, CountsAnEpollLoopsWaitsOnTheConnectionsItReports) {
  ConnectedPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(true, &pair));
  const int client = pair.client, server = pair.server;
  Bound(client);
  Bound(server);
  const unsigned long long before = WaitsOf(server).second;
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(epfd, 0);
  struct epoll_event interest = {};
  interest.events = EPOLLIN;
  ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, server, &interest), 0);
  constexpr int kPaced = 50;
  std::thread loop([&] {
    for (int i = 0; i < kPaced; ++i) {
      struct epoll_event event;
      ASSERT_EQ(epoll_wait(epfd, &event, 1, 5000), 1);
      char byte;
      ASSERT_EQ(recv(server, &byte, 1, 0), 1);
    }
  });
  ASSERT_NO_FATAL_FAILURE(SendPaced(client, kPaced));
  loop.join();
  close(epfd);
  EXPECT_GE(WaitsOf(server).second - before, uint64_t{kPaced} * 9 / 10);
}

// A client process with three connections to a server process: one session on each side,
// naming the other process, the listener's port, the connections and the arena in use; it goes
// when the connections and the client are gone.
TEST(StatTest, ShowsEachSessionItsPeerProcessConnectionsAndArena) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  int go[2], done[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(done), 0);
  const pid_t client = Spawn([&] {
    close(go[0]);
    close(done[1]);
    int fds[3];
    for (int &fd : fds) {
      fd = Connect({AF_INET, "127.0.0.1", port}, true);
      if (fd < 0 || !WriteAll(fd, "x", 1)) return 2;
    }
    char byte = 0;
    if (write(go[1], &byte, 1) != 1) return 3;
    (void)!read(done[0], &byte, 1);
    return 0;
  });
  close(go[1]);
  close(done[0]);
  char byte;
  ASSERT_EQ(read(go[0], &byte, 1), 1);
  int accepted[3];
  for (int &fd : accepted) {
    fd = accept(listener, nullptr, nullptr);
    ASSERT_GE(fd, 0);
    Bound(fd);
    ASSERT_EQ(recv(fd, &byte, 1, 0), 1);
  }
  const std::vector<Row> rows = Stat({getpid(), client});
  const std::vector<Row> ours = SessionsOf(rows, getpid(), client),
                         theirs = SessionsOf(rows, client);
  ASSERT_EQ(ours.size(), 1u);
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_EQ(ours[0].at("side"), "accepting");
  EXPECT_EQ(ours[0].at("peer_pid"), std::to_string(client));
  EXPECT_EQ(ours[0].at("peer_uid"), std::to_string(getuid()));
  EXPECT_EQ(ours[0].at("port"), std::to_string(port));
  EXPECT_EQ(ours[0].at("connections"), "3");
  EXPECT_EQ(theirs[0].at("side"), "connecting");
  EXPECT_EQ(theirs[0].at("peer_pid"), std::to_string(getpid()));
  EXPECT_EQ(theirs[0].at("connections"), "3");
  EXPECT_GT(std::stoull(theirs[0].at("arena_bytes_in_use")), 0u);
  EXPECT_GT(std::stoull(ours[0].at("arena_bytes_in_use")), 0u);
  for (int fd : accepted) close(fd);
  close(done[1]);
  EXPECT_EQ(Reap(client, 10000), 0);
  close(go[0]);
  close(listener);
  // The client is gone and no connection uses the session: the next look lets it go.
  usleep(50 * 1000);
  const std::vector<Row> after = SessionsOf(Stat({getpid()}), getpid(), client);
  EXPECT_TRUE(after.empty() || after[0].at("connections") == "0");
}

TEST(StatTest, NamesWhyOptedInConnectionsOfThisProcessUseKernelTcp) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  // A client that did not opt in: the accepting end says the peer did not.
  const int plain = Connect({AF_INET, "127.0.0.1", port}, false);
  const int accepted_plain = accept(listener, nullptr, nullptr);
  // An opted-in client dialling 0.0.0.0 (the kernel takes it to this host over loopback).
  const int wildcard = Connect({AF_INET, "0.0.0.0", port}, true);
  const int accepted_wildcard = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted_plain, 0);
  ASSERT_GE(accepted_wildcard, 0);
  const std::vector<Row> rows = Stat({getpid()});
  EXPECT_TRUE(Find(rows, getpid(), plain).empty()) << "a socket that did not opt in is listed";
  const Row a = Find(rows, getpid(), accepted_plain), w = Find(rows, getpid(), wildcard);
  ASSERT_FALSE(a.empty() || w.empty());
  EXPECT_EQ(a.at("state"), "kernel");
  EXPECT_EQ(a.at("role"), "accepting");
  EXPECT_EQ(a.at("reason"), "peer did not opt in");
  EXPECT_EQ(w.at("state"), "kernel");
  EXPECT_EQ(w.at("role"), "connecting");
  EXPECT_EQ(w.at("reason"), "destination is not a loopback address");
  EXPECT_EQ(Find(rows, getpid(), accepted_wildcard)["reason"], "peer did not opt in");
  // The table says the same in words.
  const std::string table = Output(LOOPFAST_TOOL " stat --pid " + std::to_string(getpid()));
  EXPECT_NE(table.find("(destination is not a loopback address)"), std::string::npos) << table;
  EXPECT_NE(table.find("(peer did not opt in)"), std::string::npos) << table;
  EXPECT_NE(table.find("fast-capable"), std::string::npos) << table;
  for (const int fd : {plain, accepted_plain, wildcard, accepted_wildcard, listener}) close(fd);
}

// Separate programs (stream_peer under LD_PRELOAD, transparent mode): a connection the
// environment's policy keeps on kernel TCP, one moved there mid-stream (urgent data), and a
// server out of address space for rings.
TEST(StatTest, NamesWhyRealProgramsUseKernelTcp) {
  const std::vector<std::string> hold = {"--bytes", "65536", "--hold-ms", "30000"};
  {
    Peer server({"listen", "--bytes", "65536", "--hold-ms", "30000"}, kTransparent);
    const uint16_t port = PortLine(server);
    std::vector<std::string> env = kTransparent;
    env.push_back("LOOPFAST_EXCLUDE_PORTS=" + std::to_string(port));
    Peer client({"connect", std::to_string(port), "--bytes", "65536", "--hold-ms", "30000"}, env);
    const Held s = WaitHolding(server), c = WaitHolding(client);
    const std::vector<Row> rows = Stat({s.pid, c.pid});
    EXPECT_EQ(Find(rows, c.pid, c.fd)["reason"],
              "excluded by LOOPFAST_INCLUDE_*/LOOPFAST_EXCLUDE_*");
    EXPECT_EQ(Find(rows, s.pid, s.fd)["reason"], "peer did not opt in");
  }
  {
    Peer server({"listen", "--bytes", "1048576", "--hold-ms", "30000"}, kTransparent);
    const uint16_t port = PortLine(server);
    Peer client({"connect", std::to_string(port), "--bytes", "1048576", "--move-at", "65536",
                 "--move-how", "oob", "--hold-ms", "30000"},
                kTransparent);
    const Held s = WaitHolding(server), c = WaitHolding(client);
    const std::vector<Row> rows = Stat({s.pid, c.pid});
    Row moved = Find(rows, c.pid, c.fd), other = Find(rows, s.pid, s.fd);
    EXPECT_EQ(moved["state"], "kernel");
    EXPECT_EQ(moved["reason"], "moved to kernel TCP: urgent data (MSG_OOB)");
    EXPECT_EQ(other["state"], "kernel");
    EXPECT_EQ(other["reason"], "moved to kernel TCP by the peer");
    EXPECT_EQ(moved["peer_pid"], std::to_string(s.pid));
    // Bytes before the move went through the rings, the rest (of 1 MiB) through the kernel.
    ASSERT_FALSE(moved["bytes_sent"].empty());
    EXPECT_GE(std::stoull(moved["bytes_sent"]), 65536u);
    EXPECT_LT(std::stoull(moved["bytes_sent"]), 1048576u);
  }
  {
    // The server has hardly any address space left once it listens: the client's session
    // cannot be mapped, and the connection (whose client may already write to it) is reset.
    int ready[2], done[2];
    ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
    ASSERT_EQ(pipe2(done, O_CLOEXEC), 0);
    const pid_t server = Spawn([&] {
      close(done[1]);
      close(ready[0]);
      uint16_t port = 0;
      const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
      if (!LeaveLittleAddressSpace()) return 2;
      if (write(ready[1], &port, sizeof port) != sizeof port) return 3;
      const int fd = accept(listener, nullptr, nullptr);
      char byte;
      if (fd < 0 || recv(fd, &byte, 1, 0) >= 0) return 4;
      if (write(ready[1], &fd, sizeof fd) != sizeof fd) return 5;
      return read(done[0], &byte, 1) >= 0 ? 0 : 6;  // holds the connection until told
    });
    close(ready[1]);
    close(done[0]);
    uint16_t port = 0;
    ASSERT_EQ(read(ready[0], &port, sizeof port), ssize_t(sizeof port));
    const int fd = TcpSocket(AF_INET, true);
    const int big = 64 << 20;  // asks for the largest ring
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
    ASSERT_TRUE(WriteAll(fd, "x", 1));
    int server_fd = -1;
    ASSERT_EQ(read(ready[0], &server_fd, sizeof server_fd), ssize_t(sizeof server_fd));
    const std::vector<Row> rows = Stat({server, getpid()});
    EXPECT_EQ(Find(rows, server, server_fd)["reason"], "out of resources for the fast path");
    char byte;
    EXPECT_EQ(recv(fd, &byte, 1, 0), -1);
    EXPECT_EQ(errno, ECONNRESET);
    close(done[1]);
    EXPECT_EQ(Reap(server, 10000), 0);
    close(ready[0]);
    close(fd);
  }
}

// A user sees their own processes' connections without root, and not root's.
TEST(StatTest, AUserSeesTheirOwnConnectionsWithoutRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to start processes as another user";
  const ForNobody nobody;
  std::vector<std::string> environment = kTransparent;
  environment.push_back("LD_PRELOAD=" + nobody.library);
  Peer server({"listen", "--bytes", "65536", "--hold-ms", "30000"}, environment, "", {}, false,
              kAsNobody, nobody.peer);
  const uint16_t port = PortLine(server);
  Peer client({"connect", std::to_string(port), "--bytes", "65536", "--hold-ms", "30000"},
              environment, "", {}, false, kAsNobody, nobody.peer);
  const Held s = WaitHolding(server), c = WaitHolding(client);
  // This (root) process holds an opted-in listener too.
  uint16_t mine = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &mine);
  int hidden = -1;
  const std::vector<Row> rows =
      Stat({s.pid, c.pid, getpid()}, nobody.tool_wrapper, &hidden, nobody.tool);
  Row server_row = Find(rows, s.pid, s.fd), client_row = Find(rows, c.pid, c.fd);
  EXPECT_EQ(server_row["state"], "fast");
  EXPECT_EQ(client_row["state"], "fast");
  EXPECT_EQ(client_row["peer_pid"], std::to_string(s.pid));
  EXPECT_EQ(client_row["bytes_sent"], "65536");
  EXPECT_TRUE(Find(rows, getpid(), listener).empty()) << "another user's socket was shown";
  EXPECT_EQ(hidden, 1) << "root's process is counted as not shown";
  close(listener);
}

// Squatting (issue 15, point 6): a process of another user binds a port's rendezvous name
// before the server listens. The server stays on kernel TCP and says who holds the name; a
// client does not trust the squatter (not the listener's user) and takes kernel TCP too;
// every byte arrives.
TEST(StatTest, NamesWhoHoldsAListenersRendezvousName) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to start a process as another user";
  constexpr uid_t kSquatter = 65533;
  uint16_t port = 0;
  {
    // A port that is free now; the squatter takes its name first.
    const int probe = Listen(AF_INET, "127.0.0.1", false, &port);
    close(probe);
  }
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  const pid_t squatter = Spawn([&] {
    close(ready[0]);
    close(done[1]);
    if (setgroups(0, nullptr) != 0 || setgid(kSquatter) != 0 || setuid(kSquatter) != 0) return 2;
    const int name = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un address = {};
    address.sun_family = AF_UNIX;
    const int n = std::snprintf(address.sun_path + 1, sizeof address.sun_path - 1, "loopfast.v2.%u",
                                unsigned(port));
    const socklen_t length = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + n);
    if (bind(name, reinterpret_cast<sockaddr *>(&address), length) != 0 || listen(name, 8) != 0) {
      return 3;
    }
    char byte = 0;
    if (write(ready[1], &byte, 1) != 1) return 4;
    (void)!read(done[0], &byte, 1);
    return 0;
  });
  close(ready[1]);
  close(done[0]);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const int client = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_GE(client, 0);
  const int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  Bound(client);
  Bound(server);
  const std::vector<uint8_t> data = Pattern(9, 0, 100000);
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(WriteAll(client, data.data(), data.size()));
  ASSERT_TRUE(ReadAll(server, got.data(), got.size()));
  EXPECT_EQ(got, data);
  const std::vector<Row> rows = Stat({getpid()});
  EXPECT_EQ(Find(rows, getpid(), listener)["reason"], "port's rendezvous name held by pid " +
                                                          std::to_string(squatter) + ", user " +
                                                          std::to_string(kSquatter));
  EXPECT_EQ(Find(rows, getpid(), client)["state"], "kernel");
  EXPECT_EQ(Find(rows, getpid(), client)["reason"],
            "the port's rendezvous name is held by another user than its listener");
  EXPECT_EQ(Find(rows, getpid(), server)["state"], "kernel");
  close(client);
  close(server);
  close(listener);
  close(done[1]);
  EXPECT_EQ(Reap(squatter, 10000), 0);
  close(ready[0]);
}

}  // namespace
}  // namespace loopfast::test
