// The checks of `loopfast doctor` (doctor_checks.h), each trying the real thing on this host.
#include "doctor_checks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/policy.h"
#include "launch.h"
#include "loopfast/loopfast.h"
#include "stat_kernel_sockets.h"

extern char **environ;

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace loopfast::tool {
namespace {

CheckOutcome Ok(std::string detail) { return {CheckStatus::kOk, std::move(detail)}; }
CheckOutcome Info(std::string detail) { return {CheckStatus::kInfo, std::move(detail)}; }
CheckOutcome Warn(std::string detail) { return {CheckStatus::kWarn, std::move(detail)}; }
CheckOutcome Fail(std::string detail) { return {CheckStatus::kFail, std::move(detail)}; }
CheckOutcome FailErrno(const std::string &what) { return Fail(what + ": " + std::strerror(errno)); }

// Closes a descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// A connected loopback TCP pair; `listener_setup` runs on the listening socket before
// listen(), `client_setup` on the client before connect().
struct TcpPair {
  Fd listener, client, server;
};

bool MakeTcpPair(TcpPair *pair, void (*listener_setup)(int) = nullptr,
                 void (*client_setup)(int) = nullptr) {
  pair->listener.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  pair->client.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (pair->listener.get() < 0 || pair->client.get() < 0) return false;
  // Plain kernel TCP even when LOOPFAST_DEFAULT=1 is set here: the checks look at the kernel.
  loopfast_set_fast_path(pair->listener.get(), 0);
  loopfast_set_fast_path(pair->client.get(), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener_setup) listener_setup(pair->listener.get());
  if (bind(pair->listener.get(), reinterpret_cast<sockaddr *>(&address), sizeof address) != 0 ||
      listen(pair->listener.get(), 4) != 0 ||
      getsockname(pair->listener.get(), reinterpret_cast<sockaddr *>(&address), &length) != 0) {
    return false;
  }
  if (client_setup) client_setup(pair->client.get());
  if (connect(pair->client.get(), reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
    return false;
  }
  pair->server.reset(accept4(pair->listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return pair->server.get() >= 0;
}

uint64_t InodeOf(int fd) {
  struct stat info {};
  return fstat(fd, &info) == 0 ? uint64_t(info.st_ino) : 0;
}

std::string ReadFirstLine(const char *path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

// Runs `body` in a child process; true when it exits 0 within `timeout_ms`.
template <typename Body>
bool InChild(Body body, int timeout_ms = 5000) {
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child < 0) return false;
  if (child == 0) _exit(body());
  for (int waited = 0;; waited += 5) {
    int status = 0;
    const pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (done < 0) return false;
    if (waited >= timeout_ms) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return false;
    }
    const timespec nap = {0, 5L * 1000 * 1000};
    nanosleep(&nap, nullptr);
  }
}

// ---- the kernel ----

CheckOutcome CheckKernel() {
  utsname name{};
  if (uname(&name) != 0) return FailErrno("uname");
  return Info(std::string(name.sysname) + " " + name.release + " " + name.machine);
}

CheckOutcome CheckLoopback() {
  TcpPair pair;
  if (!MakeTcpPair(&pair)) return FailErrno("no TCP connection over 127.0.0.1");
  Fd v6(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  if (v6.get() < 0 || bind(v6.get(), reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
    return Warn("127.0.0.1 works; ::1 does not (" + std::string(std::strerror(errno)) +
                "): IPv6 loopback connections are impossible here, fast or not");
  }
  return Ok("TCP over 127.0.0.1 and ::1");
}

CheckOutcome CheckMemfd() {
  Fd fd(static_cast<int>(
      syscall(SYS_memfd_create, "loopfast-doctor", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (fd.get() < 0) return FailErrno("memfd_create(MFD_ALLOW_SEALING)");
  if (ftruncate(fd.get(), 4096) != 0) return FailErrno("ftruncate on a memfd");
  const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  if (fcntl(fd.get(), F_ADD_SEALS, seals) != 0) return FailErrno("F_ADD_SEALS");
  if ((fcntl(fd.get(), F_GET_SEALS) & seals) != seals) return Fail("seals not kept");
  void *memory = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (memory == MAP_FAILED) return FailErrno("mmap of a sealed memfd");
  munmap(memory, 4096);
  return Ok("memfd_create with sealing, mapped shared");
}

CheckOutcome CheckSharedFutex() {
  Fd fd(static_cast<int>(syscall(SYS_memfd_create, "loopfast-doctor", MFD_CLOEXEC)));
  if (fd.get() < 0 || ftruncate(fd.get(), 4096) != 0) return FailErrno("memfd for the futex");
  void *memory = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (memory == MAP_FAILED) return FailErrno("mmap");
  auto *word = static_cast<std::atomic<uint32_t> *>(memory);
  word->store(0);
  // The child sleeps on the word until the parent changes it and wakes it (not private: the
  // two processes share the page, as the two ends of a connection do).
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    const timespec limit = {5, 0};
    while (word->load() == 0) {
      syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT, 0, &limit, nullptr, 0);
    }
    _exit(word->load() == 1 ? 0 : 1);
  }
  const timespec nap = {0, 20L * 1000 * 1000};
  nanosleep(&nap, nullptr);
  word->store(1);
  const long woken =
      syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
  int status = 0;
  const bool ok = child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) &&
                  WEXITSTATUS(status) == 0;
  munmap(memory, 4096);
  if (!ok) return Fail("a process sleeping on shared memory was not woken by another");
  return Ok(woken == 1 ? "wait and wake across processes on shared memory"
                       : "wait and wake across processes on shared memory (woke before sleep)");
}

CheckOutcome CheckEventfd() {
  Fd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (fd.get() < 0) return FailErrno("eventfd");
  uint64_t value = 1;
  if (write(fd.get(), &value, sizeof value) != sizeof value ||
      read(fd.get(), &value, sizeof value) != sizeof value || value != 1) {
    return FailErrno("eventfd write/read");
  }
  return Ok("eventfd");
}

// An abstract SEQPACKET channel, a connection to it, a descriptor passed over it, and the
// sender's credentials: the rendezvous in miniature.
struct UnixChannel {
  Fd listener, client, server;
};

bool MakeUnixChannel(UnixChannel *channel, std::string *error) {
  channel->listener.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  channel->client.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (channel->listener.get() < 0 || channel->client.get() < 0) {
    *error = std::string("socket(AF_UNIX, SOCK_SEQPACKET): ") + std::strerror(errno);
    return false;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const int n = std::snprintf(address.sun_path + 1, sizeof address.sun_path - 1,
                              "loopfast-doctor.%d", static_cast<int>(getpid()));
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  if (bind(channel->listener.get(), reinterpret_cast<sockaddr *>(&address), length) != 0 ||
      listen(channel->listener.get(), 4) != 0 ||
      connect(channel->client.get(), reinterpret_cast<sockaddr *>(&address), length) != 0) {
    *error = std::string("abstract Unix socket: ") + std::strerror(errno);
    return false;
  }
  channel->server.reset(accept4(channel->listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (channel->server.get() < 0) {
    *error = std::string("accept on an abstract Unix socket: ") + std::strerror(errno);
    return false;
  }
  return true;
}

CheckOutcome CheckAbstractUnix() {
  UnixChannel channel;
  std::string error;
  if (!MakeUnixChannel(&channel, &error)) return Fail(error);
  // Pass a descriptor (SCM_RIGHTS) with one message.
  Fd passed(eventfd(0, EFD_CLOEXEC));
  char byte = 'x';
  iovec io = {&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  cmsghdr *header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  const int sent_fd = passed.get();
  std::memcpy(CMSG_DATA(header), &sent_fd, sizeof sent_fd);
  if (sendmsg(channel.client.get(), &message, MSG_NOSIGNAL) != 1) {
    return FailErrno("passing a descriptor over a Unix socket");
  }
  std::memset(control, 0, sizeof control);
  message.msg_controllen = sizeof control;
  if (recvmsg(channel.server.get(), &message, MSG_CMSG_CLOEXEC) != 1) {
    return FailErrno("receiving a descriptor over a Unix socket");
  }
  header = CMSG_FIRSTHDR(&message);
  if (header == nullptr || header->cmsg_type != SCM_RIGHTS) {
    return Fail("a descriptor sent over a Unix socket did not arrive");
  }
  int received = -1;
  std::memcpy(&received, CMSG_DATA(header), sizeof received);
  close(received);
  return Ok("abstract SOCK_SEQPACKET sockets, descriptors passed with SCM_RIGHTS");
}

CheckOutcome CheckSocketpair() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return FailErrno("socketpair(AF_UNIX, SOCK_STREAM)");
  }
  close(pair[0]);
  close(pair[1]);
  return Ok("Unix stream socket pairs");
}

CheckOutcome CheckPeerCredentials() {
  UnixChannel channel;
  std::string error;
  if (!MakeUnixChannel(&channel, &error)) return Fail(error);
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (getsockopt(channel.server.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    return FailErrno("SO_PEERCRED");
  }
  if (credentials.pid != getpid()) return Fail("SO_PEERCRED names another process");
  return Ok("SO_PEERCRED names the connecting process");
}

CheckOutcome CheckSockDiag() {
  TcpPair pair;
  if (!MakeTcpPair(&pair)) return FailErrno("loopback TCP");
  const auto sockets = ListKernelTcpSockets();
  if (sockets.empty()) return Fail("the kernel's socket table (NETLINK_SOCK_DIAG) is not readable");
  if (sockets.count(InodeOf(pair.client.get())) == 0 ||
      sockets.count(InodeOf(pair.server.get())) == 0) {
    return Fail("NETLINK_SOCK_DIAG does not list this process's TCP connection");
  }
  return Ok("NETLINK_SOCK_DIAG (inet_diag) lists TCP connections with their inodes");
}

CheckOutcome CheckSoCookie() {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  uint64_t cookie = 0;
  socklen_t length = sizeof cookie;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0 || cookie == 0) {
    return FailErrno("SO_COOKIE");
  }
  return Ok("SO_COOKIE");
}

constexpr int kProbeTtl = 99;
constexpr int kProbeMss = 30011;

CheckOutcome CheckSavedSyn() {
  TcpPair pair;
  const bool made = MakeTcpPair(
      &pair,
      [](int fd) {
        const int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_SAVE_SYN, &on, sizeof on);
      },
      [](int fd) { setsockopt(fd, IPPROTO_IP, IP_TTL, &kProbeTtl, sizeof kProbeTtl); });
  if (!made) return FailErrno("loopback TCP");
  unsigned char syn[512];
  socklen_t length = sizeof syn;
  if (getsockopt(pair.server.get(), IPPROTO_TCP, TCP_SAVED_SYN, syn, &length) != 0) {
    return FailErrno("TCP_SAVE_SYN/TCP_SAVED_SYN");
  }
  if (length < sizeof(iphdr)) return Fail("TCP_SAVED_SYN returned no IP header");
  iphdr header{};
  std::memcpy(&header, syn, sizeof header);
  if (header.ttl != kProbeTtl) {
    return Fail("the SYN's TTL does not reach the listener (" + std::to_string(header.ttl) +
                ", sent " + std::to_string(kProbeTtl) + "): something rewrites loopback packets");
  }
  return Ok("TCP_SAVE_SYN: the listener reads the client's SYN as sent");
}

CheckOutcome CheckMaxseg() {
  TcpPair pair;
  const bool made = MakeTcpPair(
      &pair, [](int fd) { setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &kProbeMss, sizeof kProbeMss); });
  if (!made) return FailErrno("loopback TCP");
  int mss = 0;
  socklen_t length = sizeof mss;
  if (getsockopt(pair.client.get(), IPPROTO_TCP, TCP_MAXSEG, &mss, &length) != 0) {
    return FailErrno("TCP_MAXSEG");
  }
  if (mss > kProbeMss || mss < kProbeMss - 64) {
    return Fail("the listener's MSS does not reach the client (" + std::to_string(mss) + ", set " +
                std::to_string(kProbeMss) + "): something rewrites loopback packets");
  }
  return Ok("TCP_MAXSEG: the listener's MSS reaches the client");
}

// ---- where and how this process runs ----

CheckOutcome CheckNetworkNamespace() {
  char own[64] = "", init[64] = "";
  const ssize_t n = readlink("/proc/self/ns/net", own, sizeof own - 1);
  if (n <= 0) return Info("network namespace unknown (/proc/self/ns/net not readable)");
  const ssize_t m = readlink("/proc/1/ns/net", init, sizeof init - 1);
  if (m > 0 && std::strcmp(own, init) == 0) {
    return Info(std::string("the host's network namespace (") + own + ")");
  }
  return Info(std::string(own) + (m > 0 ? ", not the host's" : "") +
              ": only programs in this namespace pair up with programs here");
}

CheckOutcome CheckPolicy() {
  Policy policy;
  std::string error;
  if (access(kHostPolicyPath, F_OK) != 0 && errno == ENOENT) {
    return Ok(std::string("no ") + kHostPolicyPath + ": no connection is inspected");
  }
  if (!LoadPolicyFile(kHostPolicyPath, &policy, &error)) {
    return Fail("refused, so nothing on this host takes the fast path: " + error);
  }
  if (policy.off_reason != nullptr) {
    return Fail(std::string(kHostPolicyPath) + " says `disable`: no fast path on this host");
  }
  const size_t rules = policy.inspected_ports.size() + policy.inspected_addresses.size() +
                       policy.inspected_users.size() + policy.inspected_programs.size();
  std::string detail = std::string(kHostPolicyPath) + ": " + std::to_string(rules) +
                       (rules == 1 ? " rule" : " rules");
  if (rules != 0) {
    detail += " (" + std::to_string(policy.inspected_ports.size()) + " port, " +
              std::to_string(policy.inspected_addresses.size()) + " address, " +
              std::to_string(policy.inspected_users.size()) + " user, " +
              std::to_string(policy.inspected_programs.size()) + " program)";
  }
  ApplyProcessRules(getuid(), "", &policy);
  if (policy.off_reason != nullptr) {
    return Warn(detail + "; it inspects your user: your programs always take kernel TCP");
  }
  return Ok(detail + ", accepted");
}

CheckOutcome CheckEnvironment() {
  static const char *const kKnown[] = {
      "LOOPFAST_DISABLE",       "LOOPFAST_DEFAULT",           "LOOPFAST_SPIN_US",
      "LOOPFAST_LOG",           "LOOPFAST_LOG_FILE",          "LOOPFAST_INCLUDE_PORTS",
      "LOOPFAST_EXCLUDE_PORTS", "LOOPFAST_INCLUDE_ADDRESSES", "LOOPFAST_EXCLUDE_ADDRESSES",
      "LOOPFAST_CAPTURE",       "LOOPFAST_CAPTURE_PORTS"};
  std::vector<std::string> seen, unknown, malformed;
  for (char **entry = environ; *entry != nullptr; ++entry) {
    const std::string assignment = *entry;
    if (assignment.rfind("LOOPFAST_", 0) != 0) continue;
    const std::string name = assignment.substr(0, assignment.find('='));
    seen.push_back(assignment);
    bool known = false;
    for (const char *k : kKnown) known = known || name == k;
    if (!known) unknown.push_back(name);
  }
  if (seen.empty()) return Ok("no LOOPFAST_* variables");
  std::string list;
  for (const std::string &assignment : seen) list += (list.empty() ? "" : " ") + assignment;
  for (const char *name : {"LOOPFAST_INCLUDE_PORTS", "LOOPFAST_EXCLUDE_PORTS"}) {
    std::vector<PortRange> ports;
    const char *value = std::getenv(name);
    if (value != nullptr && *value != '\0' && !ParsePortList(value, &ports)) {
      malformed.push_back(name);
    }
  }
  for (const char *name : {"LOOPFAST_INCLUDE_ADDRESSES", "LOOPFAST_EXCLUDE_ADDRESSES"}) {
    std::vector<AddressRange> addresses;
    const char *value = std::getenv(name);
    if (value != nullptr && *value != '\0' && !ParseAddressList(value, &addresses)) {
      malformed.push_back(name);
    }
  }
  if (ParseConfig([](const char *name) -> const char * { return std::getenv(name); }).disabled) {
    return Fail(list +
                ": LOOPFAST_DISABLE turns the fast path off for programs started from "
                "this environment");
  }
  if (!malformed.empty()) {
    return Fail(list + ": " + malformed[0] +
                " is malformed, which turns the fast path off for programs started from here");
  }
  if (!unknown.empty()) return Warn(list + ": " + unknown[0] + " means nothing to loopfast");
  return Info(list + " (they apply to programs started from here, and can only narrow)");
}

CheckOutcome CheckPreload() {
  const char *preload = std::getenv("LD_PRELOAD");
  const std::string library = LibraryPath();
  if (preload == nullptr || *preload == '\0') {
    return Ok("not set in this process; `loopfast run` preloads " + library);
  }
  std::string others;
  bool ours = false;
  std::string rest = preload;
  for (size_t start = 0; start <= rest.size();) {
    size_t end = rest.find_first_of(": ", start);
    if (end == std::string::npos) end = rest.size();
    const std::string item = rest.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    if (item.find("libloopfast") != std::string::npos) {
      char a[PATH_MAX], b[PATH_MAX];
      if (realpath(item.c_str(), a) == nullptr || realpath(library.c_str(), b) == nullptr ||
          std::strcmp(a, b) != 0) {
        return Warn("LD_PRELOAD=" + std::string(preload) + ": not the library this tool uses (" +
                    library + "); two versions in one process do not mix");
      }
      ours = true;
    } else {
      others += (others.empty() ? "" : ", ") + item;
    }
  }
  if (!others.empty()) {
    return Warn("LD_PRELOAD=" + std::string(preload) + ": " + others +
                " may intercept the same socket calls; if connections are not fast, try "
                "without");
  }
  return Info("LD_PRELOAD=" + std::string(preload) + (ours ? " (this tool's library)" : ""));
}

CheckOutcome CheckLibrary() { return Info(LibraryPath() + ", version " + loopfast_version()); }

std::string Limit(rlim_t value, bool bytes) {
  if (value == RLIM_INFINITY) return "unlimited";
  if (bytes) return std::to_string(value >> 20) + " MiB";
  return std::to_string(value);
}

CheckOutcome CheckDescriptors() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return FailErrno("getrlimit(RLIMIT_NOFILE)");
  const std::string detail =
      "RLIMIT_NOFILE " + Limit(limit.rlim_cur, false) + " (hard " + Limit(limit.rlim_max, false) +
      "); a fast connection end holds its socket alone, each session a few more";
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < 1024) {
    return Warn(detail + ": few connections can go fast (ulimit -n)");
  }
  return Ok(detail);
}

CheckOutcome CheckAddressSpace() {
  rlimit limit{};
  if (getrlimit(RLIMIT_AS, &limit) != 0) return FailErrno("getrlimit(RLIMIT_AS)");
  std::string maps = ReadFirstLine("/proc/sys/vm/max_map_count");
  std::string detail = "RLIMIT_AS " + Limit(limit.rlim_cur, true);
  if (!maps.empty()) detail += ", vm.max_map_count " + maps;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t(1) << 30)) {
    return Warn(detail +
                ": each session maps a 1 GiB arena (sparse: only what is used costs "
                "memory); once none fits, new connections take kernel TCP");
  }
  return Ok(detail);
}

}  // namespace

const char *CheckStatusName(CheckStatus status) {
  switch (status) {
    case CheckStatus::kOk:
      return "ok";
    case CheckStatus::kInfo:
      return "info";
    case CheckStatus::kWarn:
      return "warn";
    case CheckStatus::kFail:
      return "fail";
  }
  return "?";
}

// The table. `required`: the fast path as it is built today cannot work without it.
const std::vector<HostCheck> &HostChecks() {
  static const std::vector<HostCheck> checks = {
      {"kernel", "the running kernel", false, CheckKernel},
      {"loopback", "TCP over 127.0.0.1 (and ::1)", true, CheckLoopback},
      {"memfd", "each session's shared memory: a sealed, nameless memfd", true, CheckMemfd},
      {"futex", "a lock shared by the processes that hold one end", true, CheckSharedFutex},
      {"eventfd", "the bells: wake-ups between the two ends of a session", true, CheckEventfd},
      {"unix-channel", "the listener's rendezvous channel: abstract Unix sockets, SCM_RIGHTS", true,
       CheckAbstractUnix},
      {"unix-pairs", "the listener group's depot of sessions", true, CheckSocketpair},
      {"peer-credentials", "who holds a port's rendezvous channel", true, CheckPeerCredentials},
      {"sock-diag", "the user and cookie of the connecting socket", true, CheckSockDiag},
      {"so-cookie", "names a connection's claim in its session", true, CheckSoCookie},
      {"tcp-saved-syn", "the connecting side's opt-in, seen in its SYN", true, CheckSavedSyn},
      {"tcp-maxseg", "the listener's opt-in, seen in its SYN-ACK", true, CheckMaxseg},
      {"netns", "pairing happens within one network namespace", false, CheckNetworkNamespace},
      {"policy", "/etc/loopfast.conf, the host's rules", true, CheckPolicy},
      {"environment", "LOOPFAST_* variables of programs started from here", true, CheckEnvironment},
      {"preload", "LD_PRELOAD of this process", false, CheckPreload},
      {"library", "what `loopfast run` preloads", false, CheckLibrary},
      {"descriptors", "descriptors per process", false, CheckDescriptors},
      {"address-space", "room to map each session's arena", false, CheckAddressSpace},
  };
  return checks;
}

}  // namespace loopfast::tool
