#include "test_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"

extern char **environ;

namespace loopfast::test {
namespace {

socklen_t MakeAddress(int family, const std::string &address, uint16_t port,
                      sockaddr_storage *out) {
  std::memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    auto *in = reinterpret_cast<sockaddr_in *>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, address.c_str(), &in->sin_addr);
    return sizeof *in;
  }
  auto *in6 = reinterpret_cast<sockaddr_in6 *>(out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr);
  return sizeof *in6;
}

// The loopback address of `family`.
const char *LoopbackOf(int family) { return family == AF_INET ? "127.0.0.1" : "::1"; }

// Closes `fd` keeping errno; -1.
int CloseFailed(int fd) {
  const int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

// A socket of `family`, switch set, then SO_RCVBUF when `rcvbuf` > 0; -1 with errno.
int TrySocket(int family, bool fast, int rcvbuf) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (loopfast_set_fast_path(fd, fast ? 1 : 0) != 0) return CloseFailed(fd);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  return fd;
}

uint16_t LocalPort(int fd) {
  sockaddr_storage storage;
  socklen_t length = sizeof storage;
  getsockname(fd, reinterpret_cast<sockaddr *>(&storage), &length);
  return ntohs(storage.ss_family == AF_INET
                   ? reinterpret_cast<sockaddr_in *>(&storage)->sin_port
                   : reinterpret_cast<sockaddr_in6 *>(&storage)->sin6_port);
}

}  // namespace

void Fd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

Pipe::Pipe() {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return;
  read.reset(ends[0]);
  write.reset(ends[1]);
}

int TcpSocket(int family, bool fast) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(loopfast_set_fast_path(fd, fast ? 1 : 0), 0) << std::strerror(errno);
  return fd;
}

int Listen(int family, const std::string &address, bool fast, uint16_t *port, int backlog) {
  const int fd = TcpSocket(family, fast);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage storage;
  socklen_t length = MakeAddress(family, address, *port, &storage);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&storage), length), 0) << std::strerror(errno);
  EXPECT_EQ(listen(fd, backlog), 0) << std::strerror(errno);
  *port = LocalPort(fd);
  return fd;
}

int TryListenLoopback(int family, bool fast, uint16_t *port, int rcvbuf) {
  const int fd = TrySocket(family, fast, rcvbuf);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage storage;
  const socklen_t length = MakeAddress(family, LoopbackOf(family), 0, &storage);
  if (bind(fd, reinterpret_cast<sockaddr *>(&storage), length) != 0 || listen(fd, 128) != 0) {
    return CloseFailed(fd);
  }
  *port = LocalPort(fd);
  return fd;
}

int TryConnectLoopback(int family, uint16_t port, bool fast, int rcvbuf) {
  const int fd = TrySocket(family, fast, rcvbuf);
  if (fd < 0) return -1;
  sockaddr_storage storage;
  const socklen_t length = MakeAddress(family, LoopbackOf(family), port, &storage);
  int ret;
  do {
    ret = connect(fd, reinterpret_cast<sockaddr *>(&storage), length);
  } while (ret != 0 && errno == EINTR);
  return ret == 0 ? fd : CloseFailed(fd);
}

int AcceptWithin(int listener, int timeout_ms) {
  pollfd p = {listener, POLLIN, 0};
  int ret;
  do {
    ret = poll(&p, 1, timeout_ms);
  } while (ret < 0 && errno == EINTR);
  if (ret == 0) {
    errno = ETIMEDOUT;
    return -1;
  }
  if (ret < 0) return -1;
  int fd;
  do {
    fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int Connect(const Endpoint &endpoint, bool fast) {
  const int fd = TcpSocket(endpoint.family, fast);
  sockaddr_storage storage;
  const socklen_t length = MakeAddress(endpoint.family, endpoint.address, endpoint.port, &storage);
  int ret;
  do {
    ret = connect(fd, reinterpret_cast<sockaddr *>(&storage), length);
  } while (ret != 0 && errno == EINTR);
  EXPECT_EQ(ret, 0) << std::strerror(errno);
  return fd;
}

sockaddr_in Loopback4(uint16_t port, const char *address) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  inet_pton(AF_INET, address, &in.sin_addr);
  return in;
}

int TryConnect(const char *address, uint16_t port, bool fast, int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || loopfast_set_fast_path(fd, fast ? 1 : 0) != 0) return -1;
  Bound(fd, timeout_ms);
  const sockaddr_in to = Loopback4(port, address);
  if (connect(fd, reinterpret_cast<const sockaddr *>(&to), sizeof to) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int TryListen(const char *address, uint16_t port, bool fast, bool reuseport, int backlog) {
  const int one = 1;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || loopfast_set_fast_path(fd, fast ? 1 : 0) != 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    const sockaddr_in at = Loopback4(port, address);
    if (bind(fd, reinterpret_cast<const sockaddr *>(&at), sizeof at) == 0 &&
        listen(fd, backlog) == 0) {
      return fd;
    }
    close(fd);
    usleep(5000);
  }
  return -1;
}

uint16_t PortOf(int fd) {
  sockaddr_in at{};
  socklen_t length = sizeof at;
  getsockname(fd, reinterpret_cast<sockaddr *>(&at), &length);
  return ntohs(at.sin_port);
}

bool Stopped(int done_fd) {
  pollfd p = {done_fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

uint64_t KernelDataTraffic(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return UINT64_MAX;
  // Data segments only: the handshake's SYN and the closing FIN count in the byte counters.
  return uint64_t(info.tcpi_data_segs_in) + info.tcpi_data_segs_out + info.tcpi_bytes_sent;
}

std::string ObservedPath(int fd) {
  const int path = loopfast_path_of(fd);
  const uint64_t kernel_bytes = KernelDataTraffic(fd);
  if (path == LOOPFAST_PATH_FAST) {
    if (kernel_bytes == 0) return "fast";
    return "fast but the kernel carried data (" + std::to_string(kernel_bytes) + ")";
  }
  if (path == LOOPFAST_PATH_KERNEL || path == LOOPFAST_PATH_NONE) return "kernel";
  return "unknown path " + std::to_string(path);
}

namespace {

// Moves all `size` bytes (send or recv), retrying after EINTR; false on EOF or an error.
template <typename Call>
bool TransferAll(char *bytes, size_t size, Call call) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = call(bytes + done, size - done);
    if (n > 0) {
      done += size_t(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

bool WriteAll(int fd, const void *data, size_t size) {
  return TransferAll(static_cast<char *>(const_cast<void *>(data)), size,
                     [fd](char *at, size_t left) { return send(fd, at, left, MSG_NOSIGNAL); });
}

// Sends `size` pattern bytes of stream `seed` on `from`, reads and checks them on `to`.
bool CarriesExactly(int from, int to, uint64_t seed, size_t size) {
  const std::vector<uint8_t> sent = Pattern(seed, 0, size);
  bool wrote = false;
  std::thread writer([&] { wrote = WriteAll(from, sent.data(), sent.size()); });
  std::vector<uint8_t> got(size);
  const bool read = ReadAll(to, got.data(), got.size());
  writer.join();
  return wrote && read && got == sent;
}

bool ReadAll(int fd, void *data, size_t size) {
  return TransferAll(static_cast<char *>(data), size,
                     [fd](char *at, size_t left) { return recv(fd, at, left, 0); });
}

uint8_t PatternByte(uint64_t seed, uint64_t i) {
  uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  return uint8_t(x >> 56);
}

std::vector<uint8_t> Pattern(uint64_t seed, uint64_t offset, size_t size) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = PatternByte(seed, offset + i);
  return out;
}

bool BecomeUser(uid_t uid) {
  return setgroups(0, nullptr) == 0 && setgid(uid) == 0 && setuid(uid) == 0 &&
         prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0 && geteuid() == uid;
}

std::string Output(const std::string &command, int *status) {
  FILE *pipe = popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t n;
  while (pipe != nullptr && (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    out.append(buffer, n);
  }
  const int closed = pipe != nullptr ? pclose(pipe) : -1;
  if (status != nullptr) *status = closed;
  return out;
}

pid_t SpawnCat(int in, int out) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, 0);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  const char *argv[] = {"cat", nullptr};
  pid_t pid = -1;
  const int error =
      posix_spawnp(&pid, "cat", &actions, nullptr, const_cast<char **>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

pid_t Spawn(const std::function<int()> &body) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    int status = 1;
    try {
      status = body();
    } catch (...) {
      status = 99;
    }
    _exit(status);
  }
  EXPECT_GT(pid, 0);
  return pid;
}

int Reap(pid_t pid, int timeout_ms) {
  for (int waited = 0;; waited += 5) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return -1;
    }
    if (done < 0) return -1;
    if (waited >= timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "child " << pid << " hung for " << timeout_ms << " ms";
      return -1;
    }
    struct timespec nap = {0, 5 * 1000 * 1000};
    nanosleep(&nap, nullptr);
  }
}

int WaitStatus(pid_t pid, int timeout_ms, bool *hung) {
  *hung = false;
  const int64_t start = NowMs();
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) return -1;
    if (NowMs() - start > timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      *hung = true;
      return status;
    }
    struct timespec nap = {0, 1000 * 1000};
    nanosleep(&nap, nullptr);
  }
}

bool LeaveLittleAddressSpace(long spare_kib) {
  std::ifstream status("/proc/self/status");
  std::string line;
  long vm_kib = 0;
  while (std::getline(status, line)) {
    if (line.rfind("VmSize:", 0) == 0) vm_kib = std::atol(line.c_str() + 7);
  }
  const rlim_t bytes = rlim_t(vm_kib + spare_kib) * 1024;
  const rlimit tight = {bytes, bytes};
  return setrlimit(RLIMIT_AS, &tight) == 0;
}

int OpenDescriptorCount() {
  // The program's range: loopfast keeps its own descriptors (a process's netlink socket and
  // bells, a session's channel) above half the soft limit (at most from 4096), out of the
  // numbers a program gets. That they do not grow per connection has tests of its own.
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  const long high = std::min<long>(static_cast<long>(limit.rlim_cur) / 2, 4096);
  int count = 0;
  DIR *dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent *entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    if (high >= 64 && std::atol(entry->d_name) >= high) continue;
    // Not counted: the library's statistics registry, one per process for its lifetime, made
    // when its first socket is published (docs/stat.md).
    char target[64];
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0 && std::string(target, size_t(n)) == "/memfd:loopfast-stat (deleted)") continue;
    ++count;
  }
  closedir(dir);
  return count - 1;  // the directory's own descriptor
}

namespace {

// (path, inode) of every entry of /dev/shm and /tmp whose name starts with "loopfast", sorted.
// The inode tells a name removed and made again from one that stayed.
std::vector<std::pair<std::string, ino_t>> LibraryLikeEntries() {
  std::vector<std::pair<std::string, ino_t>> entries;
  for (const char *path : {"/dev/shm", "/tmp"}) {
    DIR *dir = opendir(path);
    if (dir == nullptr) continue;
    while (dirent *entry = readdir(dir)) {
      if (std::strncmp(entry->d_name, "loopfast", 8) == 0) {
        entries.emplace_back(std::string(path) + "/" + entry->d_name, entry->d_ino);
      }
    }
    closedir(dir);
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

}  // namespace

LeftoverFiles::LeftoverFiles() : before_(LibraryLikeEntries()) {}

std::vector<std::string> LeftoverFiles::New() const {
  std::vector<std::string> appeared;
  for (const auto &entry : LibraryLikeEntries()) {
    if (!std::binary_search(before_.begin(), before_.end(), entry)) {
      appeared.push_back(entry.first);
    }
  }
  return appeared;
}

std::vector<std::string> LeftoverFiles::AllNamedLikeTheLibrary() {
  std::vector<std::string> names;
  for (const auto &entry : LibraryLikeEntries()) names.push_back(entry.first);
  return names;
}

void Bound(int fd, int ms) {
  const timeval timeout = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

socklen_t ChannelOf(uint16_t port, sockaddr_un *channel) {
  *channel = sockaddr_un{};
  channel->sun_family = AF_UNIX;
  const std::string name = "loopfast.v2." + std::to_string(port);
  std::memcpy(channel->sun_path + 1, name.data(), name.size());
  return socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

int64_t NowMs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

ConnectedPair::~ConnectedPair() {
  if (client >= 0) close(client);
  if (server >= 0) close(server);
}

namespace {

// A client connected through `listener` and what accept() returned for it (not checked).
void ConnectThrough(int listener, uint16_t port, bool fast, ConnectedPair *pair) {
  pair->client = Connect({AF_INET, "127.0.0.1", port}, fast);
  ASSERT_GE(pair->client, 0);
  pair->server = accept(listener, nullptr, nullptr);
}

}  // namespace

void MakeConnectedPair(bool fast, ConnectedPair *pair) {
  uint16_t port = 0;
  Fd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
  ASSERT_GE(listener.get(), 0);
  ASSERT_NO_FATAL_FAILURE(ConnectThrough(listener.get(), port, fast, pair));
  listener.reset();
  ASSERT_GE(pair->server, 0);
  Settle(pair->client, pair->server, fast);
}

void AcceptPair(int listener, uint16_t port, bool fast, ConnectedPair *pair) {
  ASSERT_NO_FATAL_FAILURE(ConnectThrough(listener, port, fast, pair));
  ASSERT_GE(pair->server, 0) << std::strerror(errno);
  Settle(pair->client, pair->server, fast);
}

Fd PendingClient::Accept() const { return Fd(accept(listener.get(), nullptr, nullptr)); }

void MakePendingClient(PendingClient *pending, bool fast, int listener_bound_ms, int backlog) {
  pending->listener.reset(Listen(AF_INET, "127.0.0.1", fast, &pending->port, backlog));
  ASSERT_GE(pending->listener.get(), 0);
  if (listener_bound_ms > 0) Bound(pending->listener.get(), listener_bound_ms);
  pending->client.reset(Connect({AF_INET, "127.0.0.1", pending->port}, fast));
  ASSERT_GE(pending->client.get(), 0);
}

void StartClientProcess(ClientProcess *process, const std::function<int(int fd)> &body, bool fast) {
  process->listener.reset(Listen(AF_INET, "127.0.0.1", fast, &process->port));
  ASSERT_GE(process->listener.get(), 0);
  process->pid = Spawn([&] {
    const int fd = Connect({AF_INET, "127.0.0.1", process->port}, fast);
    return fd < 0 ? 2 : body(fd);
  });
}

void Settle(int client, int server, bool fast) {
  char byte = 'x';
  ASSERT_TRUE(WriteAll(client, &byte, 1));
  ASSERT_TRUE(ReadAll(server, &byte, 1));
  ASSERT_TRUE(WriteAll(server, &byte, 1));
  ASSERT_TRUE(ReadAll(client, &byte, 1));
  ASSERT_EQ(ObservedPath(client), fast ? "fast" : "kernel");
  ASSERT_EQ(ObservedPath(server), fast ? "fast" : "kernel");
}

}  // namespace loopfast::test
