// The connection contract beyond the opt-in matrix: non-loopback destinations and network
// namespaces, early sends, accepting processes other than the listening one, SO_REUSEPORT,
// another user, a port re-bound by a program without loopfast, and hostile rendezvous input.
// Every case checks the path on both ends, from the library and from the kernel's counters.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "loopfast/loopfast.h"
#include "rendezvous/protocol.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

constexpr size_t kBytes = 64 * 1024;

// Server side of a checked exchange: read kBytes of pattern `seed`, echo them, report the path
// (0 fast, 1 kernel, 2 data error, 3 contradiction).
int ServeOne(int fd, uint64_t seed) {
  std::vector<uint8_t> buffer(kBytes);
  if (!ReadAll(fd, buffer.data(), kBytes) || buffer != Pattern(seed, 0, kBytes)) return 2;
  if (!WriteAll(fd, buffer.data(), kBytes)) return 2;
  char end;
  if (recv(fd, &end, 1, 0) != 0) return 2;
  const std::string path = ObservedPath(fd);
  close(fd);
  return path == "fast" ? 0 : path == "kernel" ? 1 : 3;
}

// Client side: the same exchange; returns the path seen here in the same code.
int ClientExchange(int fd, uint64_t seed) {
  const std::vector<uint8_t> data = Pattern(seed, 0, kBytes);
  std::vector<uint8_t> echoed(kBytes);
  if (!WriteAll(fd, data.data(), kBytes) || !ReadAll(fd, echoed.data(), kBytes)) return 2;
  if (echoed != data) return 2;
  const std::string path = ObservedPath(fd);
  close(fd);
  return path == "fast" ? 0 : path == "kernel" ? 1 : 3;
}

// A connect that may fail (the listener may be gone): for stop messages.
void SendStop(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0) {
    const uint64_t stop = ~uint64_t{0};
    WriteAll(fd, &stop, sizeof stop);
  }
  close(fd);
}

int Run(const std::string &command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

// A network namespace with a veth link to ours: 10.213.<n>.1 here, 10.213.<n>.2 there.
class VethNamespace {
 public:
  VethNamespace() {
    const int n = getpid() % 200;
    name_ = "lf" + std::to_string(getpid());
    host_if_ = "lfh" + std::to_string(getpid());
    peer_if_ = "lfp" + std::to_string(getpid());
    host_address_ = "10.213." + std::to_string(n) + ".1";
    peer_address_ = "10.213." + std::to_string(n) + ".2";
    ok_ = Run("ip netns add " + name_) == 0 &&
          Run("ip link add " + host_if_ + " type veth peer name " + peer_if_) == 0 &&
          Run("ip link set " + peer_if_ + " netns " + name_) == 0 &&
          Run("ip addr add " + host_address_ + "/30 dev " + host_if_) == 0 &&
          Run("ip link set " + host_if_ + " up") == 0 &&
          Run("ip netns exec " + name_ + " ip addr add " + peer_address_ + "/30 dev " + peer_if_) ==
              0 &&
          Run("ip netns exec " + name_ + " ip link set " + peer_if_ + " up") == 0 &&
          Run("ip netns exec " + name_ + " ip link set lo up") == 0;
  }
  ~VethNamespace() {
    Run("ip link del " + host_if_);
    Run("ip netns del " + name_);
  }
  bool ok() const { return ok_; }
  const std::string &host_address() const { return host_address_; }
  // Moves the calling process (a forked child) into the namespace.
  bool Enter() const {
    const int fd = open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    return fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
  }

 private:
  std::string name_, host_if_, peer_if_, host_address_, peer_address_;
  bool ok_ = false;
};

TEST(ContractMoreTest, NonLoopbackDestinationIsKernelTcpEvenWhenBothOptIn) {
  VethNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace here (needs root and iproute2)";
  uint16_t port = 0;
  const int listener = Listen(AF_INET, ns.host_address(), true, &port);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    return fd < 0 ? 4 : ServeOne(fd, 11);
  });
  const pid_t client = Spawn([&] {
    if (!ns.Enter()) return 5;
    const int fd = Connect({AF_INET, ns.host_address(), port}, true);
    const bool said_why =
        std::strcmp(loopfast_fallback_reason(fd), "destination is not a loopback address") == 0;
    const int path = ClientExchange(fd, 11);
    return said_why ? path : 6;
  });
  close(listener);
  EXPECT_EQ(Reap(client), 1);  // kernel TCP, byte-exact, with the reason
  EXPECT_EQ(Reap(server), 1);
}

TEST(ContractMoreTest, OtherNamespacesHaveTheirOwnLoopbackAndFastPath) {
  VethNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace here (needs root and iproute2)";
  // A listener in our namespace; a client in the other one cannot reach our 127.0.0.1 at all,
  // and cannot reach our rendezvous channel either (abstract sockets are per namespace).
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t client = Spawn([&] {
    if (!ns.Enter()) return 5;
    sockaddr_un channel{};
    channel.sun_family = AF_UNIX;
    const std::string name = "loopfast.v1." + std::to_string(port);
    std::memcpy(channel.sun_path + 1, name.data(), name.size());
    const int probe = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    const socklen_t length = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (connect(probe, reinterpret_cast<sockaddr *>(&channel), length) == 0) return 6;
    // Inside the namespace, both ends there: fast.
    uint16_t inner_port = 0;
    const int inner = Listen(AF_INET, "127.0.0.1", true, &inner_port);
    const pid_t inner_server = Spawn([&] {
      const int fd = accept(inner, nullptr, nullptr);
      return fd < 0 ? 4 : ServeOne(fd, 12);
    });
    const int fd = Connect({AF_INET, "127.0.0.1", inner_port}, true);
    const int path = ClientExchange(fd, 12);
    return path == 0 && Reap(inner_server) == 0 ? 0 : 7;
  });
  EXPECT_EQ(Reap(client), 0);
  close(listener);
}

TEST(ContractMoreTest, ClientSendsAndClosesBeforeTheServerAccepts) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t server = Spawn([&] {
    usleep(200 * 1000);  // accept long after the client sent
    const int accepted = accept(listener, nullptr, nullptr);
    std::vector<uint8_t> buffer(8192);
    if (!ReadAll(accepted, buffer.data(), buffer.size()) || buffer != Pattern(21, 0, 8192)) {
      return 2;
    }
    if (!WriteAll(accepted, "ok", 2)) return 2;
    char end;
    if (recv(accepted, &end, 1, 0) != 0) return 2;
    return ObservedPath(accepted) == "fast" ? 0 : 1;
  });
  const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
  const std::vector<uint8_t> data = Pattern(21, 0, 8192);
  ASSERT_TRUE(WriteAll(fd, data.data(), data.size()));
  char reply[2];
  ASSERT_TRUE(ReadAll(fd, reply, 2));
  EXPECT_EQ(ObservedPath(fd), "fast");
  close(fd);
  EXPECT_EQ(Reap(server), 0);
  // And a client that sends, then closes, all before the accept: every byte still arrives.
  const int early = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_TRUE(WriteAll(early, data.data(), data.size()));
  close(early);
  usleep(100 * 1000);
  const int accepted = accept(listener, nullptr, nullptr);
  std::vector<uint8_t> buffer(8192);
  ASSERT_TRUE(ReadAll(accepted, buffer.data(), buffer.size()));
  EXPECT_EQ(buffer, data);
  char end;
  EXPECT_EQ(recv(accepted, &end, 1, 0), 0);
  close(accepted);
  close(listener);
}

TEST(ContractMoreTest, PreforkPoolAcceptsInChildren) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port, 64);
  constexpr int kWorkers = 3, kClients = 30;
  std::vector<pid_t> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(Spawn([&] {
      int fast = 0;
      for (;;) {
        const int fd = accept(listener, nullptr, nullptr);
        if (fd < 0) return 4;
        uint64_t seed = 0;
        if (!ReadAll(fd, &seed, sizeof seed)) return 2;
        if (seed == ~uint64_t{0}) return fast > 0 ? 0 : 8;  // stop
        const int result = ServeOne(fd, seed);
        if (result != 0) return 10 + result;
        ++fast;
      }
    }));
  }
  close(listener);
  std::vector<pid_t> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Spawn([&, i] {
      const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
      const uint64_t seed = 100 + uint64_t(i);
      if (!WriteAll(fd, &seed, sizeof seed)) return 2;
      return ClientExchange(fd, seed);
    }));
  }
  for (pid_t client : clients) EXPECT_EQ(Reap(client), 0);
  for (int w = 0; w < kWorkers; ++w) SendStop(port);
  // Each worker served at least one fast connection, or (if the kernel handed it none) says 8.
  for (pid_t worker : workers) {
    const int status = Reap(worker);
    EXPECT_TRUE(status == 0 || status == 8) << status;
  }
}

// Both ends must agree on the path, whatever it is.
TEST(ContractMoreTest, ReusePortGroupsNeverSplitAConnection) {
  for (bool same_process : {true, false}) {
    SCOPED_TRACE(same_process ? "one process, two listeners" : "two independent processes");
    uint16_t port = 0;
    const int one = 1;
    auto make = [&](uint16_t wanted) {
      const int fd = TcpSocket(AF_INET, true);
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(wanted);
      EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
      EXPECT_EQ(listen(fd, 64), 0);
      socklen_t length = sizeof address;
      getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
      port = ntohs(address.sin_port);
      return fd;
    };
    constexpr int kClients = 20;
    auto serve = [&](int listener) {
      // Returns 100 + fast count, or an error below 100.
      int fast = 0;
      for (;;) {
        const int fd = accept(listener, nullptr, nullptr);
        if (fd < 0) return 4;
        uint64_t seed = 0;
        if (!ReadAll(fd, &seed, sizeof seed)) return 2;
        if (seed == ~uint64_t{0}) return 100 + fast;
        const int result = ServeOne(fd, seed);
        if (result > 1) return 10 + result;
        // Tell the client what this end saw, so it can compare.
        fast += result == 0;
      }
    };
    const int first = make(0);
    std::vector<pid_t> servers;
    if (same_process) {
      const int second = make(port);
      servers.push_back(Spawn([&] {
        // Alternate between the two listeners with poll-free blocking accepts in two threads.
        std::atomic<int> results[2] = {0, 0};
        std::thread t([&] { results[1] = serve(second); });
        results[0] = serve(first);
        t.join();
        return results[0] >= 100 && results[1] >= 100 ? 0 : 9;
      }));
      close(second);
    } else {
      servers.push_back(Spawn([&] { return serve(first) >= 100 ? 0 : 9; }));
      const pid_t other = Spawn([&] {
        const int mine = make(port);  // an independent group: its own socket, own process
        return serve(mine) >= 100 ? 0 : 9;
      });
      servers.push_back(other);
      usleep(50 * 1000);
    }
    close(first);
    int fast = 0, kernel = 0;
    for (int i = 0; i < kClients; ++i) {
      const pid_t client = Spawn([&, i] {
        const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
        const uint64_t seed = 500 + uint64_t(i);
        if (!WriteAll(fd, &seed, sizeof seed)) return 2;
        return ClientExchange(fd, seed);
      });
      const int status = Reap(client);
      ASSERT_TRUE(status == 0 || status == 1) << status;
      (status == 0 ? fast : kernel) += 1;
    }
    // Stop every listener: keep connecting until each server has exited.
    for (int round = 0; round < 200; ++round) {
      bool all_done = true;
      for (pid_t s : servers) all_done = all_done && kill(s, 0) != 0;
      if (all_done) break;
      SendStop(port);
      usleep(5 * 1000);
      for (pid_t s : servers) waitpid(s, nullptr, WNOHANG);
    }
    for (pid_t s : servers) Reap(s, 2000);
    // The server compared its own view with the data; the client's exit said what it saw;
    // ServeOne fails (>1) on any contradiction. Record which case is fast:
    // one process → every connection fast; independent groups → the group that owns the
    // port's channel is fast, the other is kernel TCP.
    EXPECT_EQ(fast + kernel, kClients);
    if (same_process) {
      EXPECT_EQ(kernel, 0);
    }
    RecordProperty(same_process ? "reuseport_same_process_fast" : "reuseport_two_groups_fast",
                   fast);
  }
}

TEST(ContractMoreTest, ClientOfAnotherUserWorksAndBothEndsAgree) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    return fd < 0 ? 4 : ServeOne(fd, 31);
  });
  close(listener);
  const pid_t client = Spawn([&] {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 5;
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    return ClientExchange(fd, 31);
  });
  const int client_path = Reap(client);
  const int server_path = Reap(server);
  ASSERT_TRUE(client_path == 0 || client_path == 1) << client_path;
  EXPECT_EQ(client_path, server_path);
  // The accepting process runs as root here, so it may inspect the client: fast.
  if (geteuid() == 0) {
    EXPECT_EQ(client_path, 0);
  }
}

TEST(ContractMoreTest, PortReboundWithoutLoopfastWhileClientsConnect) {
  uint16_t port = 0;
  int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  // The server side lives in a child: serve on a fast listener, then close it, re-bind the
  // same port with the switch off, keep serving.
  const pid_t server = Spawn([&] {
    int current = listener;
    for (int generation = 0; generation < 4; ++generation) {
      for (int i = 0; i < 10; ++i) {
        const int fd = accept(current, nullptr, nullptr);
        if (fd < 0) return 4;
        uint64_t seed = 0;
        if (!ReadAll(fd, &seed, sizeof seed)) {
          close(fd);
          continue;
        }
        const int result = ServeOne(fd, seed);
        if (result > 1) return 10 + result;
      }
      close(current);
      uint16_t same = port;
      current = Listen(AF_INET, "127.0.0.1", generation % 2 == 1, &same);
      if (same != port) return 6;
    }
    close(current);
    return 0;
  });
  close(listener);
  int done = 0;
  for (int i = 0; i < 40; ++i) {
    const pid_t client = Spawn([&, i] {
      int fd = -1;
      for (int attempt = 0; attempt < 200; ++attempt) {  // the port is briefly closed
        fd = TcpSocket(AF_INET, true);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(port);
        if (connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0) break;
        close(fd);
        fd = -1;
        usleep(2000);
      }
      if (fd < 0) return 7;
      const uint64_t seed = 900 + uint64_t(i);
      if (!WriteAll(fd, &seed, sizeof seed)) return 2;
      return ClientExchange(fd, seed);
    });
    const int status = Reap(client, 20000);
    EXPECT_TRUE(status == 0 || status == 1) << "client " << i << ": " << status;
    done += status == 0 || status == 1;
  }
  EXPECT_EQ(done, 40);
  EXPECT_EQ(Reap(server, 20000), 0);
  (void)stop;
  (void)swaps;
}

// A hostile local process talks to the listener's channel; the real clients stay fast and
// exact, and the stranger never receives shared memory.
TEST(ContractMoreTest, ForgedAndMalformedRendezvousMessagesAreRejected) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t server = Spawn([&] {
    const unsigned long long before = loopfast_rendezvous_rejected();
    for (int i = 0; i < 5; ++i) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return 4;
      const int result = ServeOne(fd, 40 + uint64_t(i));
      if (result != 0) return 10 + result;
    }
    // The forged Hellos were read while looking for the real ones, and counted.
    return loopfast_rendezvous_rejected() > before ? 0 : 8;
  });
  close(listener);
  sockaddr_un channel{};
  channel.sun_family = AF_UNIX;
  const std::string name = "loopfast.v1." + std::to_string(port);
  std::memcpy(channel.sun_path + 1, name.data(), name.size());
  const socklen_t length = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  auto stranger = [&](const void *bytes, size_t size, int attach_fd) {
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr *>(&channel), length) != 0) return -1;
    iovec iov = {const_cast<void *>(bytes), size};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (attach_fd >= 0) {
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cmsg), &attach_fd, sizeof(int));
    }
    sendmsg(fd, &message, 0);
    return fd;
  };
  // The hostile process (same user) is forked before any real client exists, so it holds no
  // client socket. It sends (a) garbage, (b) Hellos naming descriptor numbers 0..15 of its own
  // (none is the client end of a real connection), (c) a Hello with a descriptor attached,
  // (d) connections that just close — while real clients connect. Exit status: 0 when it never
  // received descriptors and every answer was a Reject or end-of-file.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  const pid_t hostile = Spawn([&] {
    char byte;
    if (read(go[0], &byte, 1) != 1) return 9;
    std::vector<int> channels;
    const char garbage[] = "definitely not a hello message";
    rendezvous::Hello hello = {rendezvous::MakeHeader(rendezvous::Kind::kHello), 0, 1 << 20};
    for (int round = 0; round < 20; ++round) {
      channels.push_back(stranger(garbage, sizeof garbage, -1));
      for (int fd_number = 0; fd_number < 16; ++fd_number) {
        hello.client_fd = fd_number;
        channels.push_back(stranger(&hello, sizeof hello, -1));
      }
      channels.push_back(stranger(&hello, sizeof hello, 0));
      close(stranger(garbage, 4, -1));
      usleep(5000);
    }
    usleep(200 * 1000);
    for (int fd : channels) {
      if (fd < 0) continue;
      char reply[64];
      iovec iov = {reply, sizeof reply};
      msghdr message{};
      message.msg_iov = &iov;
      message.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      const ssize_t n = recvmsg(fd, &message, MSG_DONTWAIT);
      if (message.msg_controllen != 0 && n >= 0) return 3;  // got descriptors: a breach
      if (n > 0) {
        rendezvous::MessageHeader header;
        std::memcpy(&header, reply, sizeof header);
        if (header.magic != rendezvous::kMessageMagic || header.kind != rendezvous::Kind::kReject) {
          return 4;
        }
      }
      close(fd);
    }
    return 0;
  });
  close(go[0]);
  ASSERT_EQ(write(go[1], "x", 1), 1);
  for (int i = 0; i < 5; ++i) {
    usleep(20 * 1000);
    const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
    EXPECT_EQ(ClientExchange(fd, 40 + uint64_t(i)), 0) << "real client " << i;
  }
  EXPECT_EQ(Reap(server), 0);
  EXPECT_EQ(Reap(hostile), 0);
  close(go[1]);
}

bool HasMemfdDescriptor(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent *entry = readdir(d)) {
    char target[256];
    const ssize_t n = readlink((dir + "/" + entry->d_name).c_str(), target, sizeof target - 1);
    if (n > 0 && std::string(target, size_t(n)).find("memfd:loopfast") != std::string::npos) {
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
    if (line.find("memfd:loopfast") != std::string::npos) return true;
  }
  return false;
}

TEST(ContractMoreTest, NoOtherProcessCanFindTheSharedMemory) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    char byte;
    if (!ReadAll(fd, &byte, 1) || !WriteAll(fd, &byte, 1)) return 2;
    (void)!write(ready[1], "x", 1);
    (void)!read(done[0], &byte, 1);
    return ObservedPath(fd) == "fast" ? 0 : 1;
  });
  close(listener);
  const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
  char byte = 'x';
  ASSERT_TRUE(WriteAll(fd, &byte, 1));
  ASSERT_TRUE(ReadAll(fd, &byte, 1));
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  EXPECT_EQ(ObservedPath(fd), "fast");
  // Mapped in both endpoints, named by no descriptor and no file.
  EXPECT_TRUE(MapsMemfd(getpid()));
  EXPECT_TRUE(MapsMemfd(server));
  EXPECT_FALSE(HasMemfdDescriptor(getpid()));
  EXPECT_FALSE(HasMemfdDescriptor(server));
  EXPECT_EQ(LeftoverFiles(), 0);
  ASSERT_EQ(write(done[1], "x", 1), 1);
  close(fd);
  EXPECT_EQ(Reap(server), 0);
  for (int p : {ready[0], ready[1], done[0], done[1]}) close(p);
}

}  // namespace
}  // namespace loopfast::test
