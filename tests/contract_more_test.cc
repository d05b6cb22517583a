// The connection contract beyond the opt-in matrix: non-loopback destinations and network
// namespaces, early sends, accepting processes other than the listening one, SO_REUSEPORT,
// another user, a port re-bound by a program without loopfast, hostile rendezvous input, and
// the shared memory's invisibility. Every case checks the path on both ends, from the library
// and from the kernel's counters, and every wait is bounded (SO_RCVTIMEO, Reap timeouts).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

constexpr size_t kBytes = 64 * 1024;

int Run(const std::string &command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

// ---- checked exchanges: both ends report the path they saw, the client compares ----

// Codes for a path, and for what went wrong (exit statuses of the child processes).
constexpr int kFast = 0, kKernel = 1;
constexpr int kDataError = 200, kContradiction = 201, kDisagree = 202, kNoConnection = 203,
              kTimedOut = 204, kWrongReason = 205;

// The path of a connection that has carried data both ways, from the library and from the
// kernel's counters, which must say the same: kFast (no kernel data), kKernel (kernel data),
// or kContradiction.
int PathCode(int fd) {
  const std::string seen = ObservedPath(fd);
  if (seen == "fast") return kFast;
  const uint64_t traffic = KernelDataTraffic(fd);
  if (seen == "kernel" && traffic > 0 && traffic != UINT64_MAX) return kKernel;
  return kContradiction;
}

// Server half of a checked exchange on an accepted socket: reads a seed and kBytes of its
// pattern, echoes them, sends {path seen here, server id}, waits for the client's close.
// Returns the path seen here, or kDataError / kContradiction.
int ServeChecked(int fd, uint8_t id) {
  Bound(fd);
  uint64_t seed = 0;
  std::vector<uint8_t> buffer(kBytes);
  bool ok = ReadAll(fd, &seed, sizeof seed) && ReadAll(fd, buffer.data(), kBytes) &&
            buffer == Pattern(seed, 0, kBytes) && WriteAll(fd, buffer.data(), kBytes);
  const int path = ok ? PathCode(fd) : kDataError;
  const uint8_t verdict[2] = {uint8_t(path), id};
  char end;
  ok = ok && WriteAll(fd, verdict, sizeof verdict) && recv(fd, &end, 1, 0) == 0;
  close(fd);
  return ok ? path : kDataError;
}

// Client half: returns path + 2 * server id when every byte came back and both ends saw the
// same path; otherwise one of the error codes above.
int ClientChecked(int fd, uint64_t seed) {
  Bound(fd);
  const std::vector<uint8_t> data = Pattern(seed, 0, kBytes);
  std::vector<uint8_t> echoed(kBytes);
  uint8_t verdict[2] = {0, 0};
  errno = 0;
  const bool ok = WriteAll(fd, &seed, sizeof seed) && WriteAll(fd, data.data(), kBytes) &&
                  ReadAll(fd, echoed.data(), kBytes) && ReadAll(fd, verdict, sizeof verdict);
  const int error = errno;
  const int mine = ok ? PathCode(fd) : kDataError;
  close(fd);
  if (!ok) return error == EAGAIN ? kTimedOut : kDataError;
  if (echoed != data) return kDataError;
  if (mine == kContradiction || verdict[0] == kContradiction) return kContradiction;
  if (verdict[0] != mine) return kDisagree;
  return mine + 2 * verdict[1];
}

// Decoding a ClientChecked status.
bool Agreed(int status) { return status >= 0 && status < kDataError; }
int PathIn(int status) { return status % 2; }
int ServerIn(int status) { return status / 2; }

// Two network namespaces the test makes, joined by a veth link: 10.213.0.1/30 in A,
// 10.213.0.2/30 in B. No address is added to the namespace the tests run in, so nothing but
// these two namespaces ever sees that traffic. Removed when the object goes (on failure too);
// namespaces left by a test process that died are removed the next time.
class NamespacePair {
 public:
  static constexpr const char *kAddressA = "10.213.0.1";
  static constexpr const char *kAddressB = "10.213.0.2";

  static bool Available() { return Run("ip netns list") == 0; }

  NamespacePair() {
    RemoveStale();
    static int counter = 0;
    const std::string tag = std::to_string(getpid()) + "-" + std::to_string(counter);
    a_ = "lfct-" + tag + "-a";
    b_ = "lfct-" + tag + "-b";
    const std::string if_a = "lfa" + std::to_string(getpid()) + "x" + std::to_string(counter);
    const std::string if_b = "lfb" + std::to_string(getpid()) + "x" + std::to_string(counter);
    ++counter;
    auto in = [](const std::string &ns, const std::string &command) {
      return Run("ip netns exec " + ns + " " + command) == 0;
    };
    ok_ = Run("ip netns add " + a_) == 0 && Run("ip netns add " + b_) == 0 &&
          Run("ip link add " + if_a + " netns " + a_ + " type veth peer name " + if_b + " netns " +
              b_) == 0 &&
          in(a_, "ip addr add " + std::string(kAddressA) + "/30 dev " + if_a) &&
          in(b_, "ip addr add " + std::string(kAddressB) + "/30 dev " + if_b) &&
          in(a_, "ip link set " + if_a + " up") && in(b_, "ip link set " + if_b + " up") &&
          in(a_, "ip link set lo up") && in(b_, "ip link set lo up");
  }
  ~NamespacePair() {
    Run("ip netns del " + a_);  // the veth pair goes with its namespaces
    Run("ip netns del " + b_);
  }
  bool ok() const { return ok_; }
  // Moves the calling process (a forked child) into A or B; later sockets live there.
  bool EnterA() const { return Enter(a_); }
  bool EnterB() const { return Enter(b_); }

 private:
  static bool Enter(const std::string &name) {
    const int fd = open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    const bool entered = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
    return entered;
  }
  static void RemoveStale() {
    DIR *dir = opendir("/var/run/netns");
    if (dir == nullptr) return;
    std::vector<std::string> stale;
    while (dirent *entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.rfind("lfct-", 0) != 0) continue;
      const pid_t owner = pid_t(std::atoi(name.c_str() + 5));
      if (owner > 0 && kill(owner, 0) != 0 && errno == ESRCH) stale.push_back(name);
    }
    closedir(dir);
    for (const std::string &name : stale) Run("ip netns del " + name);
  }

  std::string a_, b_;
  bool ok_ = false;
};

// S7: a non-loopback destination means kernel TCP even when both ends opted in. One opted-in
// wildcard listener in namespace A serves three clients: from namespace B across the veth link
// (a real non-loopback path), from A to A's own veth address (local, but not a loopback
// address, and the listener's channel is reachable), and from A to 127.0.0.1 — the control
// case, which must be fast, so the first two can only be kernel TCP because of the destination.
TEST(ContractMoreTest, NonLoopbackDestinationIsKernelTcpEvenWhenBothOptIn) {
  if (!NamespacePair::Available()) GTEST_SKIP() << "`ip netns` is not available here";
  NamespacePair ns;
  ASSERT_TRUE(ns.ok()) << "could not create the namespace pair and its veth link";
  int port_pipe[2];
  ASSERT_EQ(pipe(port_pipe), 0);
  const pid_t server = Spawn([&] {
    if (!ns.EnterA()) return 5;
    const int listener = TryListen("0.0.0.0", 0, true);
    if (listener < 0) return 6;
    const uint16_t port = PortOf(listener);
    if (write(port_pipe[1], &port, sizeof port) != sizeof port) return 7;
    Bound(listener, 10000);  // accept gives up after 10 s
    for (int i = 0; i < 3; ++i) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return 4;
      const int result = ServeChecked(fd, uint8_t(i));
      if (result >= kDataError) return 10 + (result - kDataError);
    }
    return 0;
  });
  close(port_pipe[1]);
  uint16_t port = 0;
  ASSERT_EQ(read(port_pipe[0], &port, sizeof port), ssize_t(sizeof port)) << "server not ready";
  struct Case {
    const char *what;
    bool in_b;
    const char *address;
    int expected_path;
    const char *expected_reason;
  };
  const Case cases[] = {
      {"B to A over veth", true, NamespacePair::kAddressA, kKernel,
       "destination is not a loopback address"},
      {"A to its own veth address", false, NamespacePair::kAddressA, kKernel,
       "destination is not a loopback address"},
      {"A to 127.0.0.1 (control)", false, "127.0.0.1", kFast, ""},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case &c = cases[i];
    SCOPED_TRACE(c.what);
    const pid_t client = Spawn([&] {
      if (!(c.in_b ? ns.EnterB() : ns.EnterA())) return 5;
      const int fd = TryConnect(c.address, port, true);
      if (fd < 0) return int(kNoConnection);
      // The control is no fallback: "" once fast, or still waiting for the accept.
      const char *reason = loopfast_fallback_reason(fd);
      const bool said_why =
          c.expected_path == kFast
              ? reason[0] == '\0' || std::strncmp(reason, "not decided yet", 15) == 0
              : std::strcmp(reason, c.expected_reason) == 0;
      const int status = ClientChecked(fd, 10 + i);
      return Agreed(status) && !said_why ? int(kWrongReason) : status;
    });
    const int status = Reap(client, 15000);
    ASSERT_TRUE(Agreed(status)) << "client status " << status;
    EXPECT_EQ(PathIn(status), c.expected_path);
    EXPECT_EQ(ServerIn(status), int(i));
  }
  EXPECT_EQ(Reap(server, 15000), 0);
  close(port_pipe[0]);
}

// Abstract Unix sockets, hence rendezvous channels, belong to one network namespace. A client
// in namespace B cannot reach the channel of an opted-in listener in our namespace (nor that
// listener: our 127.0.0.1 is not B's); B's own 127.0.0.1 server on the very same port number
// has its own channel and is fast; and our listener, whose channel has the same name, is not
// confused by B's and stays fast for our clients.
TEST(ContractMoreTest, OtherNamespacesHaveTheirOwnLoopbackAndFastPath) {
  if (!NamespacePair::Available()) GTEST_SKIP() << "`ip netns` is not available here";
  NamespacePair ns;
  ASSERT_TRUE(ns.ok()) << "could not create the namespace pair";
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t ours = Spawn([&] {
    Bound(listener, 10000);
    const int fd = accept(listener, nullptr, nullptr);
    return fd < 0 ? 4 : ServeChecked(fd, 1);
  });
  close(listener);
  int ready[2], finished[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(finished), 0);
  const pid_t in_b = Spawn([&] {
    close(finished[1]);
    if (!ns.EnterB()) return 5;
    sockaddr_un channel;
    const socklen_t length = ChannelOf(port, &channel);
    int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (connect(probe, reinterpret_cast<sockaddr *>(&channel), length) == 0) return 6;
    close(probe);
    // Our loopback is not B's: nothing listens on 127.0.0.1:port in B yet.
    const int early = TryConnect("127.0.0.1", port, true, 2000);
    if (early >= 0) return 7;
    const int theirs = TryListen("127.0.0.1", port, true);  // the same port number, in B
    if (theirs < 0) return 8;
    if (connect(probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0),
                reinterpret_cast<sockaddr *>(&channel), length) != 0) {
      return 9;  // B's listener has its own channel of that name
    }
    close(probe);
    const pid_t server_b = Spawn([&] {
      Bound(theirs, 10000);
      const int fd = accept(theirs, nullptr, nullptr);
      return fd < 0 ? 4 : ServeChecked(fd, 2);
    });
    (void)!write(ready[1], "x", 1);  // our client may now connect while B's listener exists
    const int fd = TryConnect("127.0.0.1", port, true);
    const int status = fd < 0 ? int(kNoConnection) : ClientChecked(fd, 21);
    const int server_status = Reap(server_b, 10000);
    char byte;
    (void)!read(finished[0], &byte, 1);  // keep B's listener until our client is done
    close(theirs);
    if (!Agreed(status)) return 20 + status % 20;
    if (PathIn(status) != kFast || ServerIn(status) != 2) return 30 + status;
    return server_status == kFast ? 0 : 40 + server_status % 20;
  });
  close(ready[1]);
  close(finished[0]);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1) << "the child in B did not get ready: " << Reap(in_b, 1);
  const int fd = TryConnect("127.0.0.1", port, true);
  ASSERT_GE(fd, 0);
  const int status = ClientChecked(fd, 22);
  ASSERT_TRUE(Agreed(status)) << status;
  EXPECT_EQ(PathIn(status), kFast);
  EXPECT_EQ(ServerIn(status), 1);
  ASSERT_EQ(write(finished[1], "x", 1), 1);
  EXPECT_EQ(Reap(in_b, 20000), 0);
  EXPECT_EQ(Reap(ours, 10000), kFast);
  close(ready[0]);
  close(finished[1]);
}

// The client sends (and even closes) before the server calls accept. A blocking send waits up
// to 250 ms for the Offer, then takes kernel TCP (bytes are never held back for the program's
// next call); the server accepts 100 ms late. Cases: a few bytes then wait for the answer
// (fast); more bytes than a minimal ring (fast); bytes then close (the client is gone
// before any Offer, so its bytes go to the kernel connection: every byte and the EOF must
// arrive, the server's own view must be coherent); and an accept that comes after the client
// stopped waiting for an Offer (2 s): both ends must still agree, every byte intact.
TEST(ContractMoreTest, ClientSendsAndClosesBeforeTheServerAccepts) {
  struct Case {
    const char *what;
    size_t bytes;
    int accept_delay_ms;
    bool close_early;
    int expected_path;  // -1: either, as long as both ends agree
  };
  const Case cases[] = {
      {"8 KiB, then waits for the answer", 8192, 100, false, kFast},
      {"256 KiB, more than a minimal ring", 256 * 1024, 100, false, kFast},
      {"8 KiB, then close", 8192, 200, true, -1},
      {"256 KiB, accepted after the client's Offer patience", 256 * 1024, 2300, false, -1},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    uint16_t port = 0;
    const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
    const std::vector<uint8_t> data = Pattern(77, 0, c.bytes);
    const pid_t server = Spawn([&] {
      usleep(c.accept_delay_ms * 1000);
      Bound(listener, 10000);
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return 4;
      Bound(fd);
      std::vector<uint8_t> buffer(c.bytes);
      if (!ReadAll(fd, buffer.data(), c.bytes) || buffer != data) return int(kDataError);
      char end;
      if (c.close_early) return recv(fd, &end, 1, 0) == 0 ? PathCode(fd) : int(kDataError);
      const uint8_t verdict = uint8_t(PathCode(fd));
      if (!WriteAll(fd, &verdict, 1) || recv(fd, &end, 1, 0) != 0) return int(kDataError);
      return int(verdict);
    });
    close(listener);
    const pid_t client = Spawn([&] {
      const int fd = TryConnect("127.0.0.1", port, true);
      if (fd < 0) return int(kNoConnection);
      if (!WriteAll(fd, data.data(), data.size())) return int(kDataError);
      if (c.close_early) return close(fd) == 0 ? 0 : int(kDataError);
      uint8_t verdict = 0;
      errno = 0;
      if (!ReadAll(fd, &verdict, 1)) return errno == EAGAIN ? int(kTimedOut) : int(kDataError);
      const int mine = PathCode(fd);
      close(fd);
      return mine == kContradiction ? int(kContradiction) : mine != verdict ? int(kDisagree) : mine;
    });
    const int client_status = Reap(client, 15000);
    const int server_status = Reap(server, 15000);
    if (c.close_early) {
      EXPECT_EQ(client_status, 0);
      EXPECT_TRUE(server_status == kFast || server_status == kKernel) << server_status;
    } else {
      EXPECT_TRUE(Agreed(client_status)) << client_status;
      EXPECT_EQ(client_status, server_status);
      if (c.expected_path >= 0) {
        EXPECT_EQ(client_status, c.expected_path);
      }
    }
    std::printf("[ info     ] %s: %s\n", c.what,
                server_status == kFast     ? "fast"
                : server_status == kKernel ? "kernel TCP"
                                           : "error");
  }
}

// The process that accepts is not the one that called listen. First a single child accepts
// after the fork, while the parent either closes its copy of the listener at once or keeps it
// (and later accepts on it itself): every connection fast and exact.
TEST(ContractMoreTest, ForkAfterListenTheChildAccepts) {
  for (bool parent_keeps_listener : {false, true}) {
    SCOPED_TRACE(parent_keeps_listener ? "parent keeps the listener" : "parent closes it");
    uint16_t port = 0;
    const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
    const pid_t child = Spawn([&] {
      Bound(listener, 10000);
      const int fd = accept(listener, nullptr, nullptr);
      return fd < 0 ? 4 : ServeChecked(fd, 1);
    });
    if (!parent_keeps_listener) close(listener);
    const pid_t client = Spawn([&] {
      if (parent_keeps_listener) close(listener);
      const int fd = TryConnect("127.0.0.1", port, true);
      return fd < 0 ? int(kNoConnection) : ClientChecked(fd, 31);
    });
    const int status = Reap(client, 15000);
    EXPECT_EQ(status, kFast + 2 * 1) << "fast, served by the child";
    EXPECT_EQ(Reap(child, 15000), kFast);
    if (!parent_keeps_listener) continue;
    // The listening process accepts too, after its child did.
    const pid_t second = Spawn([&] {
      close(listener);
      const int fd = TryConnect("127.0.0.1", port, true);
      return fd < 0 ? int(kNoConnection) : ClientChecked(fd, 32);
    });
    Bound(listener, 10000);
    const int fd = accept(listener, nullptr, nullptr);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(ServeChecked(fd, 2), kFast);
    EXPECT_EQ(Reap(second, 15000), kFast + 2 * 2);
    close(listener);
  }
}

// A prefork pool: the parent listens, three children accept in a loop (blocking accepts with a
// short timeout so they can see the stop signal), 30 clients connect at once. Every
// connection fast, exact, and seen fast on both ends.
TEST(ContractMoreTest, PreforkPoolAcceptsInChildren) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port, 64);
  Bound(listener, 100);  // accept returns EAGAIN every 100 ms to look at `done`
  constexpr int kWorkers = 3, kClients = 30;
  int done[2], go[2];
  ASSERT_EQ(pipe(done), 0);
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(Spawn([&, w] {
      close(done[1]);
      close(go[1]);
      int served = 0;
      const int64_t give_up = NowMs() + 20000;
      while (!Stopped(done[0]) && NowMs() < give_up) {
        const int fd = accept(listener, nullptr, nullptr);
        if (fd < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
          return 4;
        }
        const int result = ServeChecked(fd, uint8_t(w + 1));
        if (result != kFast) return 10 + result % 50;
        ++served;
      }
      return 100 + served;  // how many this worker served, all fast
    }));
  }
  close(listener);
  close(done[0]);
  std::vector<pid_t> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Spawn([&, i] {
      close(done[1]);
      close(go[1]);
      char byte;
      (void)!read(go[0], &byte, 1);  // all start together (EOF when the parent closes `go`)
      const int fd = TryConnect("127.0.0.1", port, true);
      return fd < 0 ? int(kNoConnection) : ClientChecked(fd, 100 + uint64_t(i));
    }));
  }
  close(go[0]);
  close(go[1]);
  int fast = 0;
  for (pid_t client : clients) {
    const int status = Reap(client, 20000);
    EXPECT_TRUE(Agreed(status) && PathIn(status) == kFast) << "client status " << status;
    fast += Agreed(status) && PathIn(status) == kFast;
  }
  EXPECT_EQ(fast, kClients);
  close(done[1]);
  int served = 0;
  for (pid_t worker : workers) {
    const int status = Reap(worker, 5000);
    EXPECT_GE(status, 100) << "worker failed with " << status;
    served += status >= 100 ? status - 100 : 0;
  }
  EXPECT_EQ(served, kClients);
}

// SO_REUSEPORT: the kernel spreads connections over several listeners of one port. Whatever
// listener gets a connection, both ends must see the same path, and every byte must arrive.
// Which connections are fast (asserted below, and printed):
//  - one process, two opted-in listeners: they share the port's channel, so all are fast;
//  - two independent processes, each with its own opted-in listener: the first to listen owns
//    the port's channel and its connections are fast; the second cannot bind the channel
//    ("port's rendezvous channel belongs to another group"), sets no marker, and its
//    connections are kernel TCP on both ends (the clients' Hellos, sent to the first
//    process's channel, are never answered and are dropped when the clients close);
//  - one process, one opted-in and one plain listener: fast and kernel TCP respectively.
TEST(ContractMoreTest, ReusePortGroupsNeverSplitAConnection) {
  struct Case {
    const char *what;
    bool same_process;
    bool second_fast;
    int second_expected;  // path of the connections the second listener gets
  };
  const Case cases[] = {
      {"one process, two opted-in listeners", true, true, kFast},
      {"two independent processes, each its own opted-in listener", false, true, kKernel},
      {"one process, one opted-in and one plain listener", true, false, kKernel},
  };
  constexpr int kClients = 24;
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    int done[2], ready[2];
    ASSERT_EQ(pipe(done), 0);
    ASSERT_EQ(pipe(ready), 0);
    // Serves connections on `listeners` (ids 1, 2, ...) until `done` closes.
    auto serve = [&](const std::vector<int> &listeners, int first_id) {
      std::vector<pollfd> wait;
      for (int fd : listeners) wait.push_back({fd, POLLIN, 0});
      wait.push_back({done[0], POLLIN, 0});
      const int64_t give_up = NowMs() + 20000;
      while (NowMs() < give_up) {
        if (poll(wait.data(), wait.size(), 100) < 0 && errno != EINTR) return 3;
        if (wait.back().revents != 0) return 0;
        for (size_t i = 0; i + 1 < wait.size(); ++i) {
          if ((wait[i].revents & POLLIN) == 0) continue;
          const int fd = accept(wait[i].fd, nullptr, nullptr);
          if (fd < 0) return 4;
          const int result = ServeChecked(fd, uint8_t(first_id + int(i)));
          if (result >= kDataError) return 10 + (result - kDataError);
        }
      }
      return 5;
    };
    std::vector<pid_t> servers;
    uint16_t port = 0;
    servers.push_back(Spawn([&] {
      close(done[1]);
      std::vector<int> listeners = {TryListen("127.0.0.1", 0, true, true)};
      if (listeners[0] < 0) return 6;
      const uint16_t mine = PortOf(listeners[0]);
      if (c.same_process) {
        listeners.push_back(TryListen("127.0.0.1", mine, c.second_fast, true));
        if (listeners[1] < 0) return 7;
      }
      if (write(ready[1], &mine, sizeof mine) != sizeof mine) return 8;
      return serve(listeners, 1);
    }));
    close(ready[1]);
    ASSERT_EQ(read(ready[0], &port, sizeof port), ssize_t(sizeof port)) << "server not ready";
    if (!c.same_process) {
      int second_ready[2];
      ASSERT_EQ(pipe(second_ready), 0);
      servers.push_back(Spawn([&] {
        close(done[1]);
        const int listener = TryListen("127.0.0.1", port, c.second_fast, true);
        if (listener < 0) return 6;
        if (write(second_ready[1], "x", 1) != 1) return 8;
        return serve({listener}, 2);
      }));
      close(second_ready[1]);
      char byte;
      ASSERT_EQ(read(second_ready[0], &byte, 1), 1) << "second server not ready";
      close(second_ready[0]);
    }
    close(ready[0]);
    close(done[0]);
    std::vector<pid_t> clients;
    for (int i = 0; i < kClients; ++i) {
      clients.push_back(Spawn([&, i] {
        close(done[1]);
        usleep(unsigned(i % 6) * 2000);
        const int fd = TryConnect("127.0.0.1", port, true);
        return fd < 0 ? int(kNoConnection) : ClientChecked(fd, 500 + uint64_t(i));
      }));
    }
    int count[3][2] = {};  // [server id][path]
    for (pid_t client : clients) {
      const int status = Reap(client, 20000);
      EXPECT_TRUE(Agreed(status)) << "client status " << status;
      if (!Agreed(status)) continue;
      const int id = ServerIn(status);
      ASSERT_TRUE(id == 1 || id == 2) << status;
      ++count[id][PathIn(status)];
    }
    close(done[1]);
    for (pid_t server : servers) EXPECT_EQ(Reap(server, 5000), 0);
    EXPECT_EQ(count[1][kKernel], 0) << "the channel owner's connections are fast";
    EXPECT_EQ(count[2][c.second_expected == kFast ? kKernel : kFast], 0);
    EXPECT_EQ(count[1][0] + count[1][1] + count[2][0] + count[2][1], kClients);
    std::printf("[ info     ] %s: first listener %d fast / %d kernel, second %d fast / %d kernel\n",
                c.what, count[1][kFast], count[1][kKernel], count[2][kFast], count[2][kKernel]);
  }
}

// The client runs as another user (nobody) while the accepting process runs as root: the
// connection works, every byte arrives, both ends agree on the path. Root may inspect the
// client's descriptors, so the client is verified and the connection is fast.
TEST(ContractMoreTest, ClientOfAnotherUserWorksAndBothEndsAgree) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t server = Spawn([&] {
    Bound(listener, 10000);
    const int fd = accept(listener, nullptr, nullptr);
    return fd < 0 ? 4 : ServeChecked(fd, 1);
  });
  close(listener);
  const pid_t client = Spawn([&] {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) return 5;
    const int fd = TryConnect("127.0.0.1", port, true);
    return fd < 0 ? int(kNoConnection) : ClientChecked(fd, 31);
  });
  const int client_status = Reap(client, 15000);
  const int server_status = Reap(server, 15000);
  ASSERT_TRUE(Agreed(client_status)) << client_status;
  EXPECT_EQ(PathIn(client_status), server_status);
  EXPECT_EQ(PathIn(client_status), kFast);
  RecordProperty("other_user_client_path", PathIn(client_status) == kFast ? "fast" : "kernel");
}

// The other way round: the accepting process runs as nobody, the client as root, so the
// server cannot read the client's /proc entries and cannot verify its Hello. The connection
// must still work byte for byte with both ends agreeing, and — as for any connection that
// ends on kernel TCP — without a delay a user could notice (SPEC §2 "Both sides or nothing"):
// accept() must not sit out the library's one-second Hello search.
TEST(ContractMoreTest, ServerOfAnotherUserAcceptsWithoutDelay) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  int timing[2];
  ASSERT_EQ(pipe(timing), 0);
  const pid_t server = Spawn([&] {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) return 5;
    Bound(listener, 10000);
    const int64_t start = NowMs();
    const int fd = accept(listener, nullptr, nullptr);
    const int64_t took = NowMs() - start;  // the client connects at once, see below
    if (write(timing[1], &took, sizeof took) != sizeof took) return 6;
    return fd < 0 ? 4 : ServeChecked(fd, 1);
  });
  close(listener);
  close(timing[1]);
  usleep(50 * 1000);  // the server is in accept() and has changed user
  const int64_t start = NowMs();
  const int fd = TryConnect("127.0.0.1", port, true);
  ASSERT_GE(fd, 0);
  const int status = ClientChecked(fd, 33);
  const int64_t exchange_ms = NowMs() - start;
  int64_t accept_ms = -1;
  EXPECT_EQ(read(timing[0], &accept_ms, sizeof accept_ms), ssize_t(sizeof accept_ms));
  close(timing[0]);
  const int server_status = Reap(server, 15000);
  ASSERT_TRUE(Agreed(status)) << status;
  EXPECT_EQ(PathIn(status), server_status);
  std::printf("[ info     ] server as nobody: %s, accept took %lld ms, exchange %lld ms\n",
              PathIn(status) == kFast ? "fast" : "kernel TCP", static_cast<long long>(accept_ms),
              static_cast<long long>(exchange_ms));
  EXPECT_LT(accept_ms, 300 + 50) << "accept() waited for a Hello it had already rejected";
  EXPECT_LT(exchange_ms, 300) << "the client waited for the server's accept";
}

// The listener is closed and its port re-bound, alternately by a socket without the switch and
// by an opted-in one, every 70 ms, while 50 clients connect concurrently with the swaps. A
// connection still in a closed listener's queue is reset (the client then retries, as a
// program would); every connection that gets accepted must come back byte for byte with both
// ends agreeing on the path, a plain listener's connections are never fast, and nothing hangs.
TEST(ContractMoreTest, PortReboundWithoutLoopfastWhileClientsConnect) {
  constexpr int kClients = 50, kSwaps = 8, kGenerationMs = 70;
  uint16_t port = 0;
  const int first = Listen(AF_INET, "127.0.0.1", true, &port);
  int done[2];
  ASSERT_EQ(pipe(done), 0);
  // Generation g listens opted in when g is even; the last one (kSwaps) has the switch off
  // and stays until every client is through.
  const pid_t server = Spawn([&] {
    close(done[1]);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    int current = first;
    for (int generation = 0; generation <= kSwaps; ++generation) {
      if (generation > 0) {
        close(current);
        usleep(unsigned(generation % 3) * 1000);  // the port is closed for 0-2 ms
        current = TryListen("127.0.0.1", port, generation % 2 == 0);
        if (current < 0) return 6;
      }
      const bool last = generation == kSwaps;
      const int64_t until = NowMs() + (last ? 30000 : kGenerationMs);
      for (int64_t left; (left = until - NowMs()) > 0;) {
        pollfd wait[2] = {{current, POLLIN, 0}, {done[0], POLLIN, 0}};
        poll(wait, 2, int(std::min<int64_t>(left, 50)));
        if (last && wait[1].revents != 0) break;
        if ((wait[0].revents & POLLIN) == 0) continue;
        const int fd = accept(current, nullptr, nullptr);
        if (fd < 0) continue;
        threads.emplace_back([fd, generation, &failures] {
          const bool greeted = WriteAll(fd, "G", 1);
          const int result = greeted ? ServeChecked(fd, uint8_t(generation)) : int(kDataError);
          if (result >= kDataError) failures.fetch_add(1);
          if (generation % 2 == 1 && result == kFast) failures.fetch_add(1000);
        });
      }
    }
    close(current);
    for (std::thread &t : threads) t.join();
    return failures.load() == 0 ? 0 : failures.load() >= 1000 ? 3 : 2;
  });
  close(first);
  close(done[0]);
  std::vector<pid_t> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Spawn([&, i] {
      close(done[1]);
      usleep(unsigned(i) * 13 * 1000);  // spread over the swaps
      for (int attempt = 0; attempt < 500; ++attempt) {
        const int fd = TryConnect("127.0.0.1", port, true, 5000);
        if (fd < 0) {
          usleep(1000);  // refused: the port is between two listeners
          continue;
        }
        char greeting = 0;
        errno = 0;
        if (recv(fd, &greeting, 1, 0) != 1 || greeting != 'G') {
          const int error = errno;
          close(fd);
          if (error == EAGAIN) return int(kTimedOut);
          continue;  // reset in a closed listener's queue: never accepted, try again
        }
        return ClientChecked(fd, 900 + uint64_t(i));
      }
      return int(kNoConnection);
    }));
  }
  int fast = 0, kernel = 0;
  for (int i = 0; i < kClients; ++i) {
    const int status = Reap(clients[size_t(i)], 30000);
    EXPECT_TRUE(Agreed(status)) << "client " << i << ": status " << status;
    if (!Agreed(status)) continue;
    EXPECT_FALSE(ServerIn(status) % 2 == 1 && PathIn(status) == kFast)
        << "client " << i << " fast through a plain listener";
    (PathIn(status) == kFast ? fast : kernel) += 1;
  }
  close(done[1]);
  EXPECT_EQ(Reap(server, 10000), 0);
  EXPECT_EQ(fast + kernel, kClients);
  std::printf("[ info     ] %d fast, %d kernel TCP\n", fast, kernel);
}

bool HasMemfdDescriptor(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent *entry = readdir(d)) {
    char target[256];
    const ssize_t n = readlink((dir + "/" + entry->d_name).c_str(), target, sizeof target - 1);
    if (n > 0 && std::string(target, size_t(n)).find("memfd:loopfast-session (deleted)") !=
                     std::string::npos) {
      found = true;
    }
  }
  closedir(d);
  return found;
}

bool MapsMemfd(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("memfd:loopfast-session (deleted)") != std::string::npos) return true;
  }
  return false;
}

// After a fast connection is established, no other process can find its memory: no file in
// /dev/shm or /tmp, and neither endpoint process holds a descriptor naming the memfd (which
// another process could open through /proc/<pid>/fd); the memory is only mapped.
TEST(ContractMoreTest, NoOtherProcessCanFindTheSharedMemory) {
  const LeftoverFiles leftovers;
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  const pid_t server = Spawn([&] {
    close(ready[0]);
    close(done[1]);
    Bound(listener, 10000);
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return 4;
    Bound(fd);
    char byte;
    if (!ReadAll(fd, &byte, 1) || !WriteAll(fd, &byte, 1)) return 2;
    (void)!write(ready[1], "x", 1);
    pollfd wait = {done[0], POLLIN, 0};
    poll(&wait, 1, 10000);  // until the parent has looked (or 10 s)
    return PathCode(fd);
  });
  close(listener);
  close(ready[1]);
  close(done[0]);
  const int fd = TryConnect("127.0.0.1", port, true);
  ASSERT_GE(fd, 0);
  char byte = 'x';
  ASSERT_TRUE(WriteAll(fd, &byte, 1));
  ASSERT_TRUE(ReadAll(fd, &byte, 1));
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  EXPECT_EQ(PathCode(fd), kFast);
  // Mapped in both endpoints, named by no descriptor and no file.
  EXPECT_TRUE(MapsMemfd(getpid()));
  EXPECT_TRUE(MapsMemfd(server));
  EXPECT_FALSE(HasMemfdDescriptor(getpid()));
  EXPECT_FALSE(HasMemfdDescriptor(server));
  EXPECT_EQ(leftovers.New(), std::vector<std::string>{});
  close(done[1]);
  close(ready[0]);
  close(fd);
  EXPECT_EQ(Reap(server, 15000), kFast);
}

}  // namespace
}  // namespace loopfast::test
