// `loopfast bench`: the fast path beside kernel TCP and a Unix-domain socket, in one run.
//
// Each trial forks a server process; server and client run on different CPUs. Trials of the
// three paths are interleaved (fast, kernel, unix, fast, ...) so that all see the same machine.
// Every fast trial checks that its connections really were fast (loopfast says so, and the
// kernel connection carried no data bytes); every kernel and unix trial that they were not.
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "bench_output.h"
#include "commands.h"
#include "loopfast/loopfast.h"

namespace loopfast::tool {
namespace {

constexpr const char *kSchema = "loopfast-bench/1";

struct Options {
  std::string mode;
  std::vector<size_t> sizes = {1};                // rr message sizes
  size_t count = 20000;                           // rr round trips, conn connections, many
                                                  // transactions, per trial
  std::vector<size_t> write_sizes = {64 * 1024};  // stream write sizes
  size_t read_size = 0;            // stream read size; 0: the write size (as iperf3 does)
  size_t bytes = size_t{1} << 30;  // stream bytes per trial
  size_t connections = 0;          // concurrent connections; 0: the mode's default (rr 1, many 100)
  size_t processes = 1;            // many: client processes (and as many server processes)
  // rr, many: transactions per second, each list entry a parameter of its own; empty: unpaced.
  std::vector<size_t> rates;
  bool count_given = false;  // --count was given (paced runs otherwise size trials by time)
  int rounds = 5;
  std::string json_path;  // "" none, "-" stdout
  std::string svg_path;
  bool progress = true;

  bool Paced() const { return !rates.empty(); }
  // rr and many take their rate as the trial's parameter when paced, rr its message size
  // otherwise.
  size_t SizeOf(size_t parameter) const { return Paced() ? sizes.front() : parameter; }
  double RateOf(size_t parameter) const { return Paced() ? double(parameter) : 0; }
  // Paced trials last about two seconds unless --count says otherwise.
  size_t CountFor(size_t parameter) const {
    return Paced() && !count_given ? std::max<size_t>(200, 2 * parameter) : count;
  }
};

enum class Kind { kFast, kKernel, kUnix };
constexpr Kind kKinds[] = {Kind::kFast, Kind::kKernel, Kind::kUnix};
constexpr int kKindCount = 3;
int IndexOf(Kind kind) { return static_cast<int>(kind); }
const char *Name(Kind kind) {
  return kind == Kind::kFast ? "fast path" : kind == Kind::kKernel ? "kernel TCP" : "unix socket";
}
const char *Tag(Kind kind) {
  return kind == Kind::kFast ? "fast" : kind == Kind::kKernel ? "kernel" : "unix";
}
const char *Color(Kind kind) {
  return kind == Kind::kFast ? "#1f77b4" : kind == Kind::kKernel ? "#d62728" : "#2ca02c";
}

uint64_t NowNs() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

double CpuSeconds(const struct rusage &usage) {
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

void PinToCpu(int cpu) {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % cpus, &set);
  sched_setaffinity(0, sizeof set, &set);
}

[[noreturn]] void Die(const char *what) {
  std::fprintf(stderr, "loopfast bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

// Reports on stderr every ~2 s while a run lasts: how far it is and what it is doing. Polled
// from the measuring loops (no thread: the bench forks, and a thread could hold a lock then).
class Progress {
 public:
  void Start(bool enabled, size_t total_trials) {
    enabled_ = enabled;
    total_trials_ = std::max<size_t>(total_trials, 1);
    start_ns_ = NowNs();
    next_report_ns_ = start_ns_ + kIntervalNs;
  }
  void BeginTrial(std::string label) { label_ = std::move(label); }
  void EndTrial() { ++done_trials_; }
  // `fraction`: how much of the current trial is done.
  void Poll(uint64_t now_ns, double fraction) {
    if (!enabled_ || now_ns < next_report_ns_) return;
    next_report_ns_ = now_ns + kIntervalNs;
    const double done =
        (double(done_trials_) + std::clamp(fraction, 0.0, 1.0)) / double(total_trials_);
    const double elapsed = double(now_ns - start_ns_) / 1e9;
    std::fprintf(stderr, "loopfast bench: %3.0f%%, trial %zu/%zu (%s), %.0f s elapsed", done * 100,
                 done_trials_ + 1, total_trials_, label_.c_str(), elapsed);
    if (done > 0.02) std::fprintf(stderr, ", ~%.0f s left", elapsed / done - elapsed);
    std::fputc('\n', stderr);
  }

 private:
  static constexpr uint64_t kIntervalNs = 2000000000u;
  bool enabled_ = false;
  size_t total_trials_ = 1;
  size_t done_trials_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t next_report_ns_ = 0;
  std::string label_;
};
Progress progress;

bool ReadAll(int fd, void *buffer, size_t size) {
  auto *bytes = static_cast<char *>(buffer);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = recv(fd, bytes + done, size - done, 0);
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

bool WriteAll(int fd, const void *buffer, size_t size) {
  const auto *bytes = static_cast<const char *>(buffer);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = send(fd, bytes + done, size - done, MSG_NOSIGNAL);
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

// Where a trial's server listens: a loopback TCP port, or for unix an abstract address named
// after the server's pid (no file to clean up).
struct ServerProcess {
  pid_t pid = 0;
  uint16_t port = 0;
};

socklen_t UnixAddress(pid_t server_pid, struct sockaddr_un *address) {
  *address = {};
  address->sun_family = AF_UNIX;
  const int length = std::snprintf(address->sun_path + 1, sizeof address->sun_path - 1,
                                   "lfbench-%d", int(server_pid));
  return socklen_t(offsetof(struct sockaddr_un, sun_path) + 1 + size_t(length));
}

int NewSocket(Kind kind) {
  if (kind == Kind::kUnix) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) Die("socket");
    return fd;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (loopfast_set_fast_path(fd, kind == Kind::kFast ? 1 : 0) != 0) Die("SIO_LOOPBACK_FAST_PATH");
  return fd;
}

// Runs in the server process: a listener for `kind`; sets *port for TCP.
int Listen(Kind kind, uint16_t *port) {
  const int fd = NewSocket(kind);
  const int backlog = 4096;
  if (kind == Kind::kUnix) {
    struct sockaddr_un address;
    const socklen_t length = UnixAddress(getpid(), &address);
    if (bind(fd, reinterpret_cast<sockaddr *>(&address), length) != 0) Die("bind");
    if (listen(fd, backlog) != 0) Die("listen");
    *port = 0;
    return fd;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) Die("bind");
  if (listen(fd, backlog) != 0) Die("listen");
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
  *port = ntohs(address.sin_port);
  return fd;
}

int Connect(Kind kind, const ServerProcess &server) {
  const int fd = NewSocket(kind);
  struct sockaddr_storage storage {};
  socklen_t length = 0;
  if (kind == Kind::kUnix) {
    length = UnixAddress(server.pid, reinterpret_cast<sockaddr_un *>(&storage));
  } else {
    auto *address = reinterpret_cast<sockaddr_in *>(&storage);
    address->sin_family = AF_INET;
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address->sin_port = htons(server.port);
    length = sizeof *address;
  }
  for (int attempt = 0; connect(fd, reinterpret_cast<sockaddr *>(&storage), length) != 0;
       ++attempt) {
    if (errno != EINTR || attempt > 1000) Die("connect");
  }
  return fd;
}

// The kernel's own count of data on this connection: data segments both ways + payload bytes.
uint64_t KernelDataTraffic(int fd) {
  struct tcp_info info {};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return UINT64_MAX;
  // Data segments only: the handshake's SYN and the closing FIN count in the byte counters.
  return uint64_t(info.tcpi_data_segs_in) + info.tcpi_data_segs_out + info.tcpi_bytes_sent;
}

// Set when CheckPath finds a connection on the wrong path (in whichever process it runs).
bool path_mismatch = false;
// A server's exit status when one of its connections took the wrong path.
constexpr int kExitPathMismatch = 3;

bool CheckPathOnce(int fd, Kind kind);

// Checks the path a connection took; returns false (and says why) when it is not `kind`.
bool CheckPath(int fd, Kind kind) {
  const bool ok = CheckPathOnce(fd, kind);
  if (!ok) path_mismatch = true;
  return ok;
}

bool CheckPathOnce(int fd, Kind kind) {
  const int path = loopfast_path_of(fd);
  if (kind == Kind::kUnix) {
    if (path == LOOPFAST_PATH_FAST) {
      std::fprintf(stderr, "loopfast bench: a unix socket reports the fast path\n");
      return false;
    }
    return true;
  }
  const uint64_t kernel_bytes = KernelDataTraffic(fd);
  if (kind == Kind::kFast && (path != LOOPFAST_PATH_FAST || kernel_bytes != 0)) {
    std::fprintf(stderr,
                 "loopfast bench: expected a fast connection: path %d (%s), kernel bytes %llu\n",
                 path, loopfast_fallback_reason(fd), static_cast<unsigned long long>(kernel_bytes));
    return false;
  }
  if (kind == Kind::kKernel && (path == LOOPFAST_PATH_FAST || kernel_bytes == 0)) {
    std::fprintf(stderr, "loopfast bench: expected kernel TCP, got path %d, kernel bytes %llu\n",
                 path, static_cast<unsigned long long>(kernel_bytes));
    return false;
  }
  return true;
}

constexpr uint64_t kServerExitNs = 30000000000u;

// Forks a server on CPU 1 that runs `serve(listener)`; returns once it listens.
template <typename Serve>
ServerProcess StartServer(Kind kind, Serve serve) {
  int ready[2];
  if (pipe(ready) != 0) Die("pipe");
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    close(ready[0]);
    PinToCpu(1);
    uint16_t port = 0;
    const int listener = Listen(kind, &port);
    if (write(ready[1], &port, sizeof port) != sizeof port) _exit(1);
    close(ready[1]);
    const bool served = serve(listener);
    _exit(path_mismatch ? kExitPathMismatch : served ? 0 : 1);
  }
  close(ready[1]);
  uint16_t port = 0;
  if (read(ready[0], &port, sizeof port) != sizeof port) Die("server start");
  close(ready[0]);
  return {pid, port};
}

// Waits for a child (a server, or a `many` client); adds its CPU time. False if it failed
// (path_mismatch set if it saw a connection on the wrong path).
// A child still running this long after the trial's client side finished is stuck: killed.
// When the rest of the trial failed (`others_ok` false) the child may be left waiting: it is
// killed at once.
bool FinishChild(pid_t pid, bool others_ok, double *cpu_seconds) {
  int status = 0;
  struct rusage usage {};
  if (!others_ok) kill(pid, SIGKILL);
  const uint64_t deadline = NowNs() + kServerExitNs;
  for (;;) {
    const pid_t done = wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return false;
    if (NowNs() > deadline) {
      std::fprintf(stderr, "loopfast bench: process %d did not finish within %.0f s; killed\n",
                   int(pid), double(kServerExitNs) / 1e9);
      kill(pid, SIGKILL);
      while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
      }
      return false;
    }
    usleep(1000);
  }
  *cpu_seconds += CpuSeconds(usage);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kExitPathMismatch) path_mismatch = true;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct LatencyPercentiles {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;  // microseconds
};

// many: what the open connections cost, KiB per connection (both ends), from the difference
// between a snapshot before any connection was made and one with all open and warmed up.
struct MemoryCost {
  bool measured = false;
  double available = 0;           // drop of MemAvailable, system-wide: the honest total
  double pss = 0, pss_shmem = 0;  // the bench processes' summed PSS, and its shared-memory part
  double slab = 0, unreclaimable_slab = 0, shmem = 0, page_tables = 0;  // /proc/meminfo deltas
  // The parts MemAvailable cannot reclaim, summed: PSS (shared memory included) + unreclaimable
  // slab + page tables. Far less noisy than the MemAvailable drop at a few thousand
  // connections, and close to it at 10,000.
  double Accounted() const { return pss + unreclaimable_slab + page_tables; }
};

struct Trial {
  Kind kind = Kind::kFast;
  size_t parameter = 0;              // rr: message size; stream: write size; conn, many: 0
  int round = 0;                     // 1-based
  std::vector<double> latencies_ns;  // rr, many: one per timed transaction
  double rate = 0;                   // operations (rr, conn, many) or bytes (stream) per second
  double operations = 0;             // timed transactions / connections; stream: bytes
  double cpu_operations = 0;         // what CPU time is divided by (includes warm-up transactions)
  double seconds = 0;                // timed part
  double cpu_seconds = 0;            // both processes, whole trial
  LatencyPercentiles latency;        // rr, many: of latencies_ns
  bool ok = true;
  bool path_verified = true;  // every connection checked took the path of `kind`
  MemoryCost memory;          // many only
};

double ClientCpu() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return CpuSeconds(usage);
}

// Sleeps until `when_ns` (NowNs() clock); returns at once when that has passed.
void SleepUntilNs(uint64_t when_ns) {
  const struct timespec at = {time_t(when_ns / 1000000000u), long(when_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
  }
}

// When paced transactions start: every 1/rate seconds from the first, as a load generator
// sends (open loop), so that a slow answer does not slow the requests down. A schedule more
// than `kMaxBehind` intervals late restarts from now rather than bursting to catch up.
class Pacer {
 public:
  static constexpr uint64_t kMaxBehind = 10;
  // rate 0: unpaced, Next() returns at once.
  explicit Pacer(double rate) : interval_ns_(rate > 0 ? uint64_t(1e9 / rate) : 0) {
    if (interval_ns_ != 0) prctl(PR_SET_TIMERSLACK, 1UL);  // sleep to the microsecond
  }
  bool paced() const { return interval_ns_ != 0; }
  uint64_t interval_ns() const { return interval_ns_; }
  // The time the next transaction is due (NowNs() clock); 0 when unpaced.
  uint64_t Due(uint64_t now) {
    if (interval_ns_ == 0) return 0;
    if (next_ns_ == 0 || now > next_ns_ + kMaxBehind * interval_ns_) next_ns_ = now;
    return next_ns_;
  }
  void Issued() { next_ns_ += interval_ns_; }
  // Waits until the next transaction is due.
  void AwaitNext() {
    if (interval_ns_ == 0) return;
    SleepUntilNs(Due(NowNs()));
    Issued();
  }

 private:
  uint64_t interval_ns_;
  uint64_t next_ns_ = 0;
};

// The `many` server: one epoll loop over the listener and every connection, echoing bytes.
bool ServeMany(int listener, Kind kind, size_t connections);
// The last byte a client of ServeMany (`many`, rr with several connections) sends on each
// connection: the server closes first. (Not the client first: in loopfast 0.1.0 an epoll_wait on a
// set holding 64 or more fast connections whose peer has closed spins forever, and the server's set
// would be that set.)
constexpr char kManyQuit = 'q';

// rr: 1-byte (or --size) request/response, one transaction at a time, over --connections
// connections in turn; paced at the parameter's rate with --rate. One connection: the server
// is a blocking loop; several: one epoll loop (ServeMany).
Trial RunRr(Kind kind, const Options &options, size_t parameter) {
  const size_t size = options.SizeOf(parameter);
  const size_t count = options.CountFor(parameter);
  const size_t connections = options.connections;
  const size_t warmup = std::min<size_t>(count / 10 + 1, 1000) + connections;
  ServerProcess server = StartServer(kind, [&](int listener) {
    if (connections > 1) return ServeMany(listener, kind, connections);
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return false;
    std::vector<char> buffer(size);
    for (size_t i = 0; i < count + warmup; ++i) {
      if (!ReadAll(fd, buffer.data(), size) || !WriteAll(fd, buffer.data(), size)) return false;
    }
    const bool ok = CheckPath(fd, kind);
    close(fd);
    return ok;
  });
  Trial trial;
  const double cpu_before = ClientCpu();
  std::vector<int> fds;
  for (size_t i = 0; i < connections; ++i) fds.push_back(Connect(kind, server));
  std::vector<char> buffer(size, 'x');
  trial.latencies_ns.reserve(count);
  Pacer pacer(options.RateOf(parameter));
  uint64_t start = 0;
  // The warm-up (one exchange on each connection first) runs at the measured pace, so that a
  // wait policy that learns has learnt it when the clock starts.
  for (size_t i = 0; i < warmup + count && trial.ok; ++i) {
    pacer.AwaitNext();
    const int fd = fds[i % connections];
    const uint64_t t0 = NowNs();
    if (!WriteAll(fd, buffer.data(), size) || !ReadAll(fd, buffer.data(), size)) {
      trial.ok = false;
      break;
    }
    const uint64_t t1 = NowNs();
    if (i == warmup) start = t0;
    if (i < warmup) continue;
    trial.latencies_ns.push_back(double(t1 - t0));
    progress.Poll(t1, double(i - warmup) / double(count));
  }
  trial.seconds = double(NowNs() - start) / 1e9;
  trial.operations = double(count);
  trial.cpu_operations = double(count + warmup);
  trial.rate = trial.operations / trial.seconds;
  for (const int fd : fds) {
    trial.ok = CheckPath(fd, kind) && trial.ok;
    if (connections > 1 && trial.ok) {
      char quit = kManyQuit;  // ServeMany closes first: see kManyQuit
      trial.ok = WriteAll(fd, &quit, 1) && recv(fd, &quit, 1, 0) == 0;
    }
    close(fd);
  }
  trial.cpu_seconds = ClientCpu() - cpu_before;
  trial.ok = FinishChild(server.pid, trial.ok, &trial.cpu_seconds) && trial.ok;
  return trial;
}

Trial RunStream(Kind kind, const Options &options, size_t write_size) {
  const size_t total = options.bytes;
  ServerProcess server = StartServer(kind, [&](int listener) {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return false;
    std::vector<char> buffer(options.read_size != 0 ? options.read_size : write_size);
    size_t received = 0;
    while (received < total) {
      const ssize_t n = recv(fd, buffer.data(), std::min(buffer.size(), total - received), 0);
      if (n <= 0) return false;
      received += size_t(n);
    }
    const char done = 1;
    const bool ok = WriteAll(fd, &done, 1) && CheckPath(fd, kind);
    close(fd);
    return ok;
  });
  Trial trial;
  const double cpu_before = ClientCpu();
  const int fd = Connect(kind, server);
  std::vector<char> buffer(write_size, 'x');
  const uint64_t start = NowNs();
  size_t sent = 0;
  size_t writes = 0;
  while (sent < total && trial.ok) {
    const size_t chunk = std::min(write_size, total - sent);
    trial.ok = WriteAll(fd, buffer.data(), chunk);
    sent += chunk;
    if (++writes % 64 == 0) progress.Poll(NowNs(), double(sent) / double(total));
  }
  char done = 0;
  trial.ok = trial.ok && ReadAll(fd, &done, 1);
  trial.seconds = double(NowNs() - start) / 1e9;
  trial.operations = double(total);
  trial.cpu_operations = double(total);
  trial.rate = double(total) / trial.seconds;  // bytes per second
  trial.ok = CheckPath(fd, kind) && trial.ok;
  close(fd);
  trial.cpu_seconds = ClientCpu() - cpu_before;
  trial.ok = FinishChild(server.pid, trial.ok, &trial.cpu_seconds) && trial.ok;
  return trial;
}

Trial RunConn(Kind kind, const Options &options, size_t) {
  const size_t count = options.count;
  ServerProcess server = StartServer(kind, [&](int listener) {
    bool ok = true;
    for (size_t i = 0; i < count; ++i) {
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return false;
      char byte;
      ok = ReadAll(fd, &byte, 1) && WriteAll(fd, &byte, 1) && ok;
      if (i == 0) ok = CheckPath(fd, kind) && ok;
      close(fd);
    }
    return ok;
  });
  Trial trial;
  const double cpu_before = ClientCpu();
  const uint64_t start = NowNs();
  bool path_ok = true;  // a wrong path fails the trial, but the server still gets its count
  for (size_t i = 0; i < count && trial.ok; ++i) {
    const int fd = Connect(kind, server);
    char byte = 'x';
    trial.ok = WriteAll(fd, &byte, 1) && ReadAll(fd, &byte, 1);
    if (i == 0) path_ok = CheckPath(fd, kind);
    close(fd);
    if (i % 16 == 0) progress.Poll(NowNs(), double(i) / double(count));
  }
  trial.seconds = double(NowNs() - start) / 1e9;
  trial.operations = double(count);
  trial.cpu_operations = double(count);
  trial.rate = double(count) / trial.seconds;  // connections per second
  trial.cpu_seconds = ClientCpu() - cpu_before;
  trial.ok = FinishChild(server.pid, trial.ok, &trial.cpu_seconds) && trial.ok && path_ok;
  return trial;
}

// No progress for this long in a `many` trial: something is stuck; fail rather than hang.
constexpr uint64_t kStallNs = 20000000000u;

// The `many` server: one epoll loop over the listener and every connection, echoing bytes.
bool ServeMany(int listener, Kind kind, size_t connections) {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return false;
  struct epoll_event event {};
  event.events = EPOLLIN;
  event.data.fd = listener;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &event) != 0) return false;
  size_t accepted = 0, closed = 0;
  bool ok = true;
  bool path_complaint = false;  // one message, not a thousand
  uint64_t last_activity = NowNs();
  std::vector<struct epoll_event> events(256);
  char buffer[512];
  while (closed < connections) {
    const int ready = epoll_wait(epoll_fd, events.data(), int(events.size()), 1000);
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) {
      if (NowNs() - last_activity > kStallNs) return false;
      continue;
    }
    last_activity = NowNs();
    for (int i = 0; i < ready; ++i) {
      const int fd = events[size_t(i)].data.fd;
      if (fd == listener) {
        const int connection = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection < 0) return false;
        event.data.fd = connection;
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, connection, &event) != 0) return false;
        if (++accepted == connections) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listener, nullptr);
        continue;
      }
      const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0 && buffer[n - 1] != kManyQuit) {
        ok = WriteAll(fd, buffer, size_t(n)) && ok;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) ok = false;  // the client says kManyQuit before it closes
      if (!path_complaint && !CheckPath(fd, kind)) path_complaint = true;
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
      close(fd);
      ++closed;
    }
  }
  close(epoll_fd);
  return ok && !path_complaint;
}

// ---- memory accounting for `many` ----

// System-wide counters from /proc/meminfo and the bench processes' summed PSS, in KiB.
struct MemorySnapshot {
  int64_t available = 0, slab = 0, unreclaimable_slab = 0, shmem = 0, page_tables = 0;
  int64_t pss = 0, pss_shmem = 0;
  bool ok = false;
};

struct KibField {
  const char *key;
  int64_t *total;
};

// Adds the "Key:   123 kB" lines of a /proc file to the fields named; false if one is missing.
bool AddKibFields(const char *path, std::initializer_list<KibField> fields) {
  FILE *file = std::fopen(path, "re");
  if (file == nullptr) return false;
  char line[256];
  size_t found = 0;
  while (std::fgets(line, sizeof line, file) != nullptr) {
    for (const KibField &field : fields) {
      const size_t length = std::strlen(field.key);
      if (std::strncmp(line, field.key, length) == 0 && line[length] == ':') {
        *field.total += std::strtoll(line + length + 1, nullptr, 10);
        ++found;
      }
    }
  }
  std::fclose(file);
  return found == fields.size();
}

MemorySnapshot TakeMemorySnapshot(const std::vector<pid_t> &pids) {
  MemorySnapshot s;
  s.ok = AddKibFields("/proc/meminfo", {{"MemAvailable", &s.available},
                                        {"Slab", &s.slab},
                                        {"SUnreclaim", &s.unreclaimable_slab},
                                        {"Shmem", &s.shmem},
                                        {"PageTables", &s.page_tables}});
  for (const pid_t pid : pids) {
    const std::string path = "/proc/" + std::to_string(pid) + "/smaps_rollup";
    s.ok = AddKibFields(path.c_str(), {{"Pss", &s.pss}, {"Pss_Shmem", &s.pss_shmem}}) && s.ok;
  }
  return s;
}

MemoryCost CostPerConnection(const MemorySnapshot &before, const MemorySnapshot &after,
                             size_t connections) {
  MemoryCost cost;
  if (!before.ok || !after.ok || connections == 0) return cost;
  const double n = double(connections);
  cost.measured = true;
  cost.available = double(before.available - after.available) / n;  // a drop is a cost
  cost.pss = double(after.pss - before.pss) / n;
  cost.pss_shmem = double(after.pss_shmem - before.pss_shmem) / n;
  cost.slab = double(after.slab - before.slab) / n;
  cost.unreclaimable_slab = double(after.unreclaimable_slab - before.unreclaimable_slab) / n;
  cost.shmem = double(after.shmem - before.shmem) / n;
  cost.page_tables = double(after.page_tables - before.page_tables) / n;
  return cost;
}

// Lets freshly freed kernel objects (RCU, per-CPU caches, the previous trial's teardown) settle
// before a snapshot: at least 250 ms, then until Slab moves by less than 256 KiB in 100 ms
// (at most 3 s more).
void AwaitQuietMemory() {
  usleep(250000);
  int64_t previous = 0;
  for (int sample = 0; sample < 30; ++sample) {
    int64_t slab = 0;
    if (!AddKibFields("/proc/meminfo", {{"Slab", &slab}})) return;
    if (sample > 0 && std::llabs(slab - previous) < 256) return;
    previous = slab;
    usleep(100000);
  }
}

// ---- `many`: P client processes, each with its own server process ----
//
// Each client/server pair has its own listener rather than P workers sharing one: accept on a
// shared listener would spread connections unevenly, so no worker would know how many to expect
// (it closes when all its connections are done) and a busy one could exceed its descriptor
// limit; with a listener each, every pair carries exactly its share.

// One pair's part of a `many` trial.
struct ManyShare {
  size_t connections = 0;
  size_t count = 0;  // timed transactions
  double rate = 0;   // transactions per second; 0: unpaced
};

// The parent's side of a `many` client process.
struct ManyClient {
  pid_t pid = 0;
  int command_fd = -1;  // parent → client: kStepConnect, kStepGo
  int report_fd = -1;   // client → parent: kStepReady, kStepConnected, then a ManyReport
};

// Steps of the conversation between the parent and a `many` client, one byte each. The
// parent takes its memory snapshots between them: before any connection, and with all open.
constexpr char kStepReady = 'r';      // client: set up, nothing connected yet
constexpr char kStepConnect = 'c';    // parent: connect and warm up every connection
constexpr char kStepConnected = 'k';  // client: all connected and warmed up
constexpr char kStepFailed = 'f';     // client: could not
constexpr char kStepGo = 'g';         // parent: run the timed part

// What a client sends at the end, followed by `latencies` doubles (ns).
struct ManyReport {
  uint64_t ok = 0;
  uint64_t start_ns = 0, end_ns = 0;  // CLOCK_MONOTONIC: comparable across processes
  uint64_t completed = 0;
  uint64_t latencies = 0;
};

constexpr uint64_t kManySetupNs = 60000000000u;     // forking and setting up the clients
constexpr uint64_t kManyConnectNs = 300000000000u;  // connecting and warming up
constexpr uint64_t kManyTimedNs = 1800000000000u;   // the timed part (clients detect stalls)

// Moves exactly `size` bytes over a pipe, giving up at `deadline_ns`; reports progress at
// `progress_fraction` of the trial while it waits (children have progress disabled).
bool PipeTransfer(int fd, void *buffer, size_t size, bool writing, uint64_t deadline_ns,
                  double progress_fraction) {
  auto *bytes = static_cast<char *>(buffer);
  size_t done = 0;
  while (done < size) {
    const uint64_t now = NowNs();
    if (now >= deadline_ns) return false;
    progress.Poll(now, progress_fraction);
    struct pollfd entry = {fd, short(writing ? POLLOUT : POLLIN), 0};
    const int wait_ms = int(std::min<uint64_t>((deadline_ns - now) / 1000000 + 1, 500));
    const int ready = poll(&entry, 1, wait_ms);
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) continue;
    const ssize_t n =
        writing ? write(fd, bytes + done, size - done) : read(fd, bytes + done, size - done);
    if (n > 0)
      done += size_t(n);
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
      return false;
  }
  return true;
}

bool SendStep(int fd, char step) {
  return PipeTransfer(fd, &step, 1, true, NowNs() + kManySetupNs, 0);
}

bool AwaitStep(int fd, char expected, uint64_t deadline_ns, double progress_fraction) {
  char step = 0;
  return PipeTransfer(fd, &step, 1, false, deadline_ns, progress_fraction) && step == expected;
}

bool RaiseDescriptorLimit(size_t connections_per_process);

// A `many` client process: its connections, each with one 1-byte request outstanding at a
// time, driven by one epoll loop; latency is send to reply, queueing in both loops included.
[[noreturn]] void ManyClientMain(Kind kind, const ServerProcess &server, const ManyShare &share,
                                 int command_fd, int report_fd) {
  progress = Progress{};  // the parent reports progress
  PinToCpu(0);
  const size_t connections = share.connections;
  if (!RaiseDescriptorLimit(connections)) _exit(1);
  // Allocated before the parent's first snapshot, so that only the connections are measured.
  std::vector<int> fds;
  fds.reserve(connections);
  std::vector<uint64_t> sent_at(connections, 0);
  std::vector<double> latencies_ns;
  latencies_ns.reserve(share.count);
  std::vector<struct epoll_event> events(256);
  if (!SendStep(report_fd, kStepReady) ||
      !AwaitStep(command_fd, kStepConnect, NowNs() + kManySetupNs, 0))
    _exit(1);

  bool ok = true;
  for (size_t i = 0; i < connections; ++i) fds.push_back(Connect(kind, server));
  // Warm-up: one exchange per connection settles every rendezvous before memory is measured
  // and before the clock starts.
  char byte = 'x';
  for (const int fd : fds) ok = WriteAll(fd, &byte, 1) && ReadAll(fd, &byte, 1) && ok;
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) Die("epoll_create1");
  for (size_t i = 0; i < connections && ok; ++i) {
    struct epoll_event event {};
    event.events = EPOLLIN;
    event.data.u64 = i;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fds[i], &event) != 0) Die("epoll_ctl");
  }
  if (!SendStep(report_fd, ok ? kStepConnected : kStepFailed) ||
      !AwaitStep(command_fd, kStepGo, NowNs() + kManyConnectNs, 0))
    _exit(1);

  const size_t count = share.count;
  const uint64_t start = NowNs();
  size_t issued = 0, completed = 0;
  uint64_t last_activity = start;
  Pacer pacer(share.rate);
  std::vector<size_t> idle;  // paced: connections with no request outstanding, in turn
  if (pacer.paced()) {
    for (size_t i = connections; i > 0; --i) idle.push_back(i - 1);
  } else {
    for (size_t i = 0; i < connections && issued < count && ok; ++i, ++issued) {
      sent_at[i] = NowNs();
      ok = WriteAll(fds[i], &byte, 1);
    }
  }
  size_t next_idle = 0;
  while ((completed < issued || (pacer.paced() && issued < count)) && ok) {
    // Paced: every request now due goes out on the next idle connection (none idle: later).
    uint64_t now = NowNs();
    while (pacer.paced() && issued < count && !idle.empty() && now >= pacer.Due(now)) {
      next_idle = next_idle % idle.size();
      const size_t i = idle[next_idle];
      idle[next_idle] = idle.back();
      idle.pop_back();
      sent_at[i] = now;
      ok = WriteAll(fds[i], &byte, 1) && ok;
      ++issued;
      ++next_idle;
      pacer.Issued();
      now = NowNs();
    }
    struct timespec wait = {1, 0};
    if (pacer.paced() && issued < count && !idle.empty()) {
      const uint64_t due = pacer.Due(now);
      const uint64_t left = due > now ? due - now : 0;
      wait = {time_t(left / 1000000000u), long(left % 1000000000u)};
    }
    const int ready = epoll_pwait2(epoll_fd, events.data(), int(events.size()), &wait, nullptr);
    now = NowNs();
    if (ready < 0 && errno != EINTR) Die("epoll_wait");
    if (ready <= 0) {
      if (completed < issued && now - last_activity > kStallNs) {
        std::fprintf(stderr, "loopfast bench: many: no reply for %.0f s\n", kStallNs / 1e9);
        ok = false;
      }
      continue;
    }
    last_activity = now;
    for (int k = 0; k < ready && ok; ++k) {
      const size_t i = size_t(events[size_t(k)].data.u64);
      const ssize_t n = recv(fds[i], &byte, 1, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n != 1) {
        ok = false;
        break;
      }
      const uint64_t received = NowNs();
      latencies_ns.push_back(double(received - sent_at[i]));
      ++completed;
      if (pacer.paced()) {
        idle.push_back(i);
      } else if (issued < count) {
        sent_at[i] = received;  // unpaced: the next request at once, on the same connection
        ok = WriteAll(fds[i], &byte, 1);
        ++issued;
      }
    }
  }
  ManyReport report;
  report.start_ns = start;
  report.end_ns = NowNs();
  report.completed = completed;
  report.latencies = latencies_ns.size();
  close(epoll_fd);
  bool path_ok = true;
  for (const int fd : fds) {
    if (path_ok) path_ok = CheckPath(fd, kind);
    if (ok) {
      // Ask the server to close, and see it do so (EOF, bounded), before closing this end.
      const struct timeval limit = {int(kStallNs / 1000000000u), 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      char end = kManyQuit;
      if (!WriteAll(fd, &end, 1) || recv(fd, &end, 1, 0) != 0) ok = false;
    }
    close(fd);
  }
  report.ok = ok && path_ok;
  const uint64_t deadline = NowNs() + kManySetupNs;
  const bool sent = PipeTransfer(report_fd, &report, sizeof report, true, deadline, 0) &&
                    PipeTransfer(report_fd, latencies_ns.data(),
                                 latencies_ns.size() * sizeof(double), true, deadline, 0);
  _exit(path_mismatch ? kExitPathMismatch : sent && report.ok ? 0 : 1);
}

// `many`: N connections over P client processes (CPU 0) and P server processes (CPU 1), each
// pair carrying N/P connections and count/P timed transactions. Memory is measured by the
// parent, which holds no connection: before any is made, and with all open and warmed up.
Trial RunMany(Kind kind, const Options &options, size_t parameter) {
  const size_t processes = options.processes;
  std::vector<ManyShare> shares(processes);
  for (size_t i = 0; i < processes; ++i) {
    shares[i].connections =
        options.connections / processes + (i < options.connections % processes ? 1 : 0);
    const size_t count = options.CountFor(parameter);
    shares[i].count = count / processes + (i < count % processes ? 1 : 0);
    shares[i].rate = options.RateOf(parameter) / double(processes);
  }
  std::vector<ServerProcess> servers;
  for (const ManyShare &share : shares) {
    servers.push_back(StartServer(kind, [&](int listener) {
      progress = Progress{};
      return RaiseDescriptorLimit(share.connections) &&
             ServeMany(listener, kind, share.connections);
    }));
  }
  std::vector<ManyClient> clients;
  for (size_t i = 0; i < processes; ++i) {
    int command[2], report[2];
    if (pipe2(command, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0) Die("pipe");
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) Die("fork");
    if (pid == 0) {
      for (const ManyClient &other : clients) {  // so that each client sees its own EOF
        close(other.command_fd);
        close(other.report_fd);
      }
      close(command[1]);
      close(report[0]);
      ManyClientMain(kind, servers[i], shares[i], command[0], report[1]);
    }
    close(command[0]);
    close(report[1]);
    clients.push_back({pid, command[1], report[0]});
  }
  std::vector<pid_t> pids;
  for (const ServerProcess &server : servers) pids.push_back(server.pid);
  for (const ManyClient &client : clients) pids.push_back(client.pid);

  Trial trial;
  bool ok = true;
  const uint64_t setup_deadline = NowNs() + kManySetupNs;
  for (const ManyClient &client : clients)
    ok = ok && AwaitStep(client.report_fd, kStepReady, setup_deadline, 0);
  MemorySnapshot before;
  if (ok) {
    AwaitQuietMemory();
    before = TakeMemorySnapshot(pids);
  }
  for (const ManyClient &client : clients) ok = ok && SendStep(client.command_fd, kStepConnect);
  const uint64_t connect_deadline = NowNs() + kManyConnectNs;
  for (const ManyClient &client : clients)
    ok = ok && AwaitStep(client.report_fd, kStepConnected, connect_deadline, 0.1);
  if (ok) {
    AwaitQuietMemory();
    trial.memory = CostPerConnection(before, TakeMemorySnapshot(pids), options.connections);
  }
  for (const ManyClient &client : clients) ok = ok && SendStep(client.command_fd, kStepGo);

  uint64_t start = UINT64_MAX, end = 0, completed = 0;
  const uint64_t timed_deadline = NowNs() + kManyTimedNs;
  const size_t count = options.CountFor(parameter);
  trial.latencies_ns.reserve(count);
  for (const ManyClient &client : clients) {
    ManyReport report;
    if (!ok ||
        !PipeTransfer(client.report_fd, &report, sizeof report, false, timed_deadline, 0.5) ||
        report.latencies > count) {
      ok = false;
      break;
    }
    const size_t already = trial.latencies_ns.size();
    trial.latencies_ns.resize(already + report.latencies);
    if (!PipeTransfer(client.report_fd, trial.latencies_ns.data() + already,
                      report.latencies * sizeof(double), false, timed_deadline, 0.5)) {
      ok = false;
      break;
    }
    ok = report.ok != 0 && ok;
    start = std::min(start, report.start_ns);
    end = std::max(end, report.end_ns);
    completed += report.completed;
  }
  for (const ManyClient &client : clients) {
    close(client.command_fd);  // a client still waiting for a step sees EOF and exits
    close(client.report_fd);
  }
  trial.seconds = end > start ? double(end - start) / 1e9 : 0;
  trial.operations = double(completed);
  trial.cpu_operations = double(completed + options.connections);
  trial.rate = trial.seconds > 0 ? trial.operations / trial.seconds : 0;
  // Clients first: a server ends when its client has closed every connection.
  for (const ManyClient &client : clients)
    ok = FinishChild(client.pid, ok, &trial.cpu_seconds) && ok;
  for (const ServerProcess &server : servers)
    ok = FinishChild(server.pid, ok, &trial.cpu_seconds) && ok;
  trial.ok = ok;
  return trial;
}

// Percentiles of a sorted sample (nearest rank).
double PercentileOfSorted(const std::vector<double> &sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, size_t(p * double(sorted.size() - 1) + 0.5))];
}

LatencyPercentiles PercentilesOf(std::vector<double> latencies_ns) {
  std::sort(latencies_ns.begin(), latencies_ns.end());
  LatencyPercentiles p;
  p.p50 = PercentileOfSorted(latencies_ns, 0.5) / 1e3;
  p.p90 = PercentileOfSorted(latencies_ns, 0.9) / 1e3;
  p.p99 = PercentileOfSorted(latencies_ns, 0.99) / 1e3;
  p.p999 = PercentileOfSorted(latencies_ns, 0.999) / 1e3;
  p.max = latencies_ns.empty() ? 0 : latencies_ns.back() / 1e3;
  return p;
}

// All trials of one path at one parameter (size), pooled.
struct PathSummary {
  std::vector<double> sorted_latencies_ns;
  std::vector<double> rates;  // per trial
  double cpu_seconds = 0;
  double cpu_operations = 0;
  size_t trials = 0;
  LatencyPercentiles latency;
  double median_rate = 0, min_rate = 0, max_rate = 0;
  std::vector<MemoryCost> memory_trials;  // many: of each trial that measured it
  MemoryCost memory;  // many: per field, the median over memory_trials (MemAvailable is noisy)
  // CPU seconds per operation (rr, conn, many) or per byte (stream).
  double CpuPerOperation() const { return cpu_operations > 0 ? cpu_seconds / cpu_operations : 0; }
};

struct ParameterSummary {
  size_t parameter = 0;
  PathSummary paths[kKindCount];
  // Times faster than kernel TCP: rr, p50 latency; stream, conn, many, median rate.
  double RatioVsKernel(const std::string &mode, Kind kind) const {
    const PathSummary &path = paths[IndexOf(kind)];
    const PathSummary &kernel = paths[IndexOf(Kind::kKernel)];
    if (mode == "rr") return path.latency.p50 > 0 ? kernel.latency.p50 / path.latency.p50 : 0;
    return kernel.median_rate > 0 ? path.median_rate / kernel.median_rate : 0;
  }
  // CPU per operation over kernel TCP's (lower is cheaper); 0 when kernel TCP's is unknown.
  double CpuRatioVsKernel(Kind kind) const {
    const double kernel = paths[IndexOf(Kind::kKernel)].CpuPerOperation();
    return kernel > 0 ? paths[IndexOf(kind)].CpuPerOperation() / kernel : 0;
  }
  // many: the path's memory per connection over kernel TCP's (median MemAvailable drops); 0
  // when either was not measured or kernel TCP's is not positive.
  double MemoryRatioVsKernel(Kind kind) const {
    const MemoryCost &path = paths[IndexOf(kind)].memory;
    const MemoryCost &kernel = paths[IndexOf(Kind::kKernel)].memory;
    if (!path.measured || !kernel.measured || kernel.available <= 0) return 0;
    return path.available / kernel.available;
  }
  // The same for MemoryCost::Accounted().
  double AccountedMemoryRatioVsKernel(Kind kind) const {
    const MemoryCost &path = paths[IndexOf(kind)].memory;
    const MemoryCost &kernel = paths[IndexOf(Kind::kKernel)].memory;
    if (!path.measured || !kernel.measured || kernel.Accounted() <= 0) return 0;
    return path.Accounted() / kernel.Accounted();
  }
};

// The median of one MemoryCost field over trials.
double MedianOf(const std::vector<MemoryCost> &costs, double MemoryCost::*field) {
  std::vector<double> values;
  for (const MemoryCost &cost : costs) values.push_back(cost.*field);
  std::sort(values.begin(), values.end());
  return PercentileOfSorted(values, 0.5);
}

void Finalize(PathSummary *summary) {
  std::sort(summary->sorted_latencies_ns.begin(), summary->sorted_latencies_ns.end());
  summary->latency = PercentilesOf(summary->sorted_latencies_ns);  // sorting again is cheap
  std::vector<double> rates = summary->rates;
  std::sort(rates.begin(), rates.end());
  summary->median_rate = PercentileOfSorted(rates, 0.5);
  summary->min_rate = rates.empty() ? 0 : rates.front();
  summary->max_rate = rates.empty() ? 0 : rates.back();
  MemoryCost &memory = summary->memory;
  memory.measured = !summary->memory_trials.empty();
  for (double MemoryCost::*field :
       {&MemoryCost::available, &MemoryCost::pss, &MemoryCost::pss_shmem, &MemoryCost::slab,
        &MemoryCost::unreclaimable_slab, &MemoryCost::shmem, &MemoryCost::page_tables})
    memory.*field = MedianOf(summary->memory_trials, field);
}

void BenchUsage(FILE *out) {
  std::fprintf(
      out,
      "usage: loopfast bench rr|stream|conn|many [OPTIONS]\n"
      "\n"
      "Measures the fast path, kernel TCP and a Unix-domain socket in one run: server and\n"
      "client in separate processes on separate CPUs, trials interleaved (fast, kernel, unix,\n"
      "fast, ...). Every fast trial checks that its connections were really fast, every other\n"
      "trial that they were not. Ratios are against kernel TCP measured in the same run.\n"
      "\n"
      "Modes:\n"
      "  rr      request/response latency: p50/p90/p99/p99.9 per message size, CPU us per\n"
      "          transaction.  --size LIST (1), --count N round trips (20000),\n"
      "          --connections N (1): one transaction at a time, on each connection in turn\n"
      "  stream  one-way throughput: GB/s and CPU s/GB per write size.\n"
      "          --write-size LIST (64K), --read-size BYTES (the write size), --bytes N (1G)\n"
      "  conn    connect + 1-byte exchange + close rate.  --count N connections (5000)\n"
      "  many    --connections N (100) concurrent connections doing 1-byte request/response,\n"
      "          client and server each one epoll loop: transactions/s, latency percentiles,\n"
      "          CPU us per transaction, and memory per connection (MemAvailable drop, PSS,\n"
      "          slab, shmem, page tables) with all open.  --count N transactions (200000),\n"
      "          --processes P (1): the connections spread over P client and P server processes\n"
      "          (a fast end holds one descriptor, as kernel TCP: 10,000 connections in one\n"
      "          client and one server process need a limit of about 10,100)\n"
      "\n"
      "Options:\n"
      "  --rate LIST      rr, many: paced, LIST transactions per second (all connections\n"
      "                   together), each rate a row; a trial lasts about 2 s unless --count\n"
      "                   is given. Requests go out on schedule (open loop) whatever the\n"
      "                   answers do; how a server at ordinary load behaves, and what its\n"
      "                   waiting costs\n"
      "  --rounds R       trials per path and parameter (5)\n"
      "  --json FILE      every trial and the summary as JSON (schema loopfast-bench/1, see\n"
      "                   docs/performance.md); '-' writes it to stdout and the table to stderr\n"
      "  --svg FILE       latency distribution (CDF per path, log-scale us) as SVG (rr, many)\n"
      "  --no-progress    no progress lines on stderr (otherwise one every ~2 s)\n"
      "  -h, --help       this text\n"
      "\n"
      "LIST is comma-separated, e.g. --size 1,64,1K,16K. Sizes take K, M and G suffixes\n"
      "(powers of 1024). The wait policy comes from the environment (LOOPFAST_SPIN_US), as for\n"
      "programs.\n");
}

bool ParseSize(const char *text, size_t *out) {
  char *end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *text == '-') return false;
  size_t multiplier = 1;
  if (*end == 'K' || *end == 'k')
    multiplier = 1024, ++end;
  else if (*end == 'M' || *end == 'm')
    multiplier = 1024 * 1024, ++end;
  else if (*end == 'G' || *end == 'g')
    multiplier = size_t{1} << 30, ++end;
  if (*end != '\0' || value == 0 || value > (size_t{1} << 40) / multiplier) return false;
  *out = size_t(value) * multiplier;
  return true;
}

bool ParseSizeList(const char *text, std::vector<size_t> *out) {
  out->clear();
  std::string list = text;
  size_t begin = 0;
  while (begin <= list.size() && out->size() < 64) {
    const size_t comma = std::min(list.find(',', begin), list.size());
    size_t value = 0;
    if (!ParseSize(list.substr(begin, comma - begin).c_str(), &value)) return false;
    out->push_back(value);
    begin = comma + 1;
  }
  return !out->empty() && begin > list.size();
}

// A `many` process holds one end of each of its connections: one descriptor for a fast end, as
// for kernel TCP (its session's few are shared), plus a few for sessions, pipes and epoll.
// Raises the soft limit to the hard one and checks it is enough.
bool RaiseDescriptorLimit(size_t connections_per_process) {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t needed = rlim_t(connections_per_process) + 64;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    std::fprintf(stderr,
                 "loopfast bench: %zu connections in one process need about %llu descriptors, "
                 "the limit is %llu (ulimit -n): use more --processes\n",
                 connections_per_process, static_cast<unsigned long long>(needed),
                 static_cast<unsigned long long>(limit.rlim_cur));
    return false;
  }
  return true;
}

std::string DescribeParameter(const Options &options, size_t parameter) {
  const std::string &mode = options.mode;
  if (options.Paced()) return std::to_string(parameter) + " transactions/s";
  if (mode == "rr") return std::to_string(parameter) + " B messages";
  if (mode == "stream") return std::to_string(parameter) + " B writes";
  return "";
}

// A ratio, or "n/a" when it could not be computed (kernel TCP's figure not positive: noise).
std::string RatioText(double ratio) {
  if (ratio <= 0) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, "%.2fx", ratio);
  return text;
}

void PrintMemoryTable(FILE *out, const Options &options, const ParameterSummary &result) {
  std::fprintf(out,
               "\nmemory per connection, KiB, both ends, all %zu open after a warm-up exchange; "
               "median over rounds\n(MemAvailable is system-wide and noisy). MemAvail: its drop, "
               "the total. Accounted: PSS +\nSUnreclaim + PageTables. PSS (shm): the bench "
               "processes' (its shared-memory part). Slab,\nSUnreclaim, Shmem, PageTables: "
               "/proc/meminfo deltas. Ratios to kernel TCP:\nMemAvail:k of the drops, Acc.:k of "
               "the accounted totals\n",
               options.connections);
  std::fprintf(out, "%-11s %8s %9s %8s %7s %7s %10s %7s %10s %9s %11s\n", "path", "MemAvail",
               "Accounted", "PSS", "(shm)", "Slab", "SUnreclaim", "Shmem", "PageTables",
               "MemAvail:k", "Acc.:k");
  for (const Kind kind : kKinds) {
    const MemoryCost &m = result.paths[IndexOf(kind)].memory;
    if (!m.measured) {
      std::fprintf(out, "%-11s not measured\n", Name(kind));
      continue;
    }
    std::fprintf(out, "%-11s %8.2f %9.2f %8.2f %7.2f %7.2f %10.2f %7.2f %10.2f %9s %11s\n",
                 Name(kind), m.available, m.Accounted(), m.pss, m.pss_shmem, m.slab,
                 m.unreclaimable_slab, m.shmem, m.page_tables,
                 RatioText(result.MemoryRatioVsKernel(kind)).c_str(),
                 RatioText(result.AccountedMemoryRatioVsKernel(kind)).c_str());
  }
}

void PrintTable(FILE *out, const Options &options, const std::vector<ParameterSummary> &results) {
  const std::string &mode = options.mode;
  std::fprintf(out,
               "loopfast bench %s (%d rounds per path, paths interleaved, server and client on "
               "separate CPUs)\n",
               mode.c_str(), options.rounds);
  if (mode == "rr") {
    if (options.Paced()) {
      std::fprintf(out,
                   "%zu B messages over %zu connection(s), paced: --rate per second (%s per "
                   "trial);\nvs kernel: kernel p50 / path p50; CPU:k: CPU per transaction / "
                   "kernel TCP's (both processes)\n",
                   options.sizes.front(), options.connections,
                   options.count_given ? (std::to_string(options.count) + " transactions").c_str()
                                       : "about 2 s");
    } else {
      std::fprintf(out,
                   "%zu round trips per trial over %zu connection(s); vs kernel: kernel p50 / "
                   "path p50;\nCPU:k: CPU per transaction / kernel TCP's (both processes)\n",
                   options.count, options.connections);
    }
    std::fprintf(out, "%9s %-11s %10s %10s %10s %11s %13s %7s %10s\n",
                 options.Paced() ? "rate (/s)" : "size (B)", "path", "p50 (us)", "p90 (us)",
                 "p99 (us)", "p99.9 (us)", "CPU us/trans", "CPU:k", "vs kernel");
  } else if (mode == "stream") {
    std::fprintf(
        out, "%zu bytes per trial, read size %s; vs kernel: median GB/s ratio\n", options.bytes,
        options.read_size != 0 ? std::to_string(options.read_size).c_str() : "= write size");
    std::fprintf(out, "%10s %-11s %12s %10s %10s %10s\n", "write (B)", "path", "median GB/s",
                 "min GB/s", "CPU s/GB", "vs kernel");
  } else if (mode == "conn") {
    std::fprintf(out, "%zu connections per trial (connect, 1-byte exchange, close)\n",
                 options.count);
    std::fprintf(out, "%-11s %14s %12s %10s\n", "path", "median conn/s", "CPU us/conn",
                 "vs kernel");
  } else {
    std::fprintf(out,
                 "%zu concurrent connections over %zu client and %zu server processes, 1-byte "
                 "transactions (%s per trial%s);\nvs kernel: median trans/s ratio; CPU:k: CPU "
                 "per transaction / kernel TCP's\n",
                 options.connections, options.processes, options.processes,
                 options.Paced() && !options.count_given
                     ? "about 2 s"
                     : (std::to_string(options.count) + " transactions").c_str(),
                 options.Paced() ? ", paced: --rate per second, all connections together" : "");
    std::fprintf(out, "%9s %-11s %12s %10s %10s %10s %11s %13s %7s %10s\n",
                 options.Paced() ? "rate (/s)" : "", "path", "trans/s", "p50 (us)", "p90 (us)",
                 "p99 (us)", "p99.9 (us)", "CPU us/trans", "CPU:k", "vs kernel");
  }
  for (const ParameterSummary &result : results) {
    for (const Kind kind : kKinds) {
      const PathSummary &s = result.paths[IndexOf(kind)];
      const double ratio = result.RatioVsKernel(mode, kind);
      const LatencyPercentiles &l = s.latency;
      if (s.trials == 0) {
        if (mode == "rr" || mode == "stream") std::fprintf(out, "%10zu ", result.parameter);
        std::fprintf(out, "%-11s every trial failed\n", Name(kind));
        continue;
      }
      if (mode == "rr") {
        std::fprintf(out, "%9zu %-11s %10.2f %10.2f %10.2f %11.2f %13.2f %7s %9.2fx\n",
                     result.parameter, Name(kind), l.p50, l.p90, l.p99, l.p999,
                     s.CpuPerOperation() * 1e6, RatioText(result.CpuRatioVsKernel(kind)).c_str(),
                     ratio);
      } else if (mode == "stream") {
        std::fprintf(out, "%10zu %-11s %12.2f %10.2f %10.3f %9.2fx\n", result.parameter, Name(kind),
                     s.median_rate / 1e9, s.min_rate / 1e9, s.CpuPerOperation() * 1e9, ratio);
      } else if (mode == "conn") {
        std::fprintf(out, "%-11s %14.0f %12.2f %9.2fx\n", Name(kind), s.median_rate,
                     s.CpuPerOperation() * 1e6, ratio);
      } else {
        const std::string rate = options.Paced() ? std::to_string(result.parameter) : "";
        std::fprintf(out, "%9s %-11s %12.0f %10.2f %10.2f %10.2f %11.2f %13.2f %7s %9.2fx\n",
                     rate.c_str(), Name(kind), s.median_rate, l.p50, l.p90, l.p99, l.p999,
                     s.CpuPerOperation() * 1e6, RatioText(result.CpuRatioVsKernel(kind)).c_str(),
                     ratio);
      }
    }
    if (mode == "many") PrintMemoryTable(out, options, result);
  }
}

void WriteLatencyJson(JsonWriter *json, const LatencyPercentiles &l) {
  json->BeginObject();
  json->Key("p50");
  json->Number(l.p50);
  json->Key("p90");
  json->Number(l.p90);
  json->Key("p99");
  json->Number(l.p99);
  json->Key("p99_9");
  json->Number(l.p999);
  json->Key("max");
  json->Number(l.max);
  json->EndObject();
}

// many: KiB per connection; null when not measured (other modes, a failed trial).
void WriteMemoryJson(JsonWriter *json, const MemoryCost &m) {
  if (!m.measured) {
    json->Null();
    return;
  }
  json->BeginObject();
  json->Key("mem_available");
  json->Number(m.available);
  json->Key("pss");
  json->Number(m.pss);
  json->Key("pss_shmem");
  json->Number(m.pss_shmem);
  json->Key("slab");
  json->Number(m.slab);
  json->Key("slab_unreclaimable");
  json->Number(m.unreclaimable_slab);
  json->Key("shmem");
  json->Number(m.shmem);
  json->Key("page_tables");
  json->Number(m.page_tables);
  json->Key("accounted");
  json->Number(m.Accounted());
  json->EndObject();
}

// CPU per operation in the unit the mode reports: µs per transaction/connection, s per GB.
double CpuInReportedUnit(const std::string &mode, double cpu_seconds, double operations) {
  if (operations <= 0) return 0;
  return mode == "stream" ? cpu_seconds / operations * 1e9 : cpu_seconds / operations * 1e6;
}

std::string BenchJson(const Options &options, const std::vector<Trial> &trials,
                      const std::vector<ParameterSummary> &results, bool ok) {
  const std::string &mode = options.mode;
  const bool has_latency = mode == "rr" || mode == "many";
  JsonWriter json;
  json.BeginObject();
  json.Key("schema");
  json.String(kSchema);
  json.Key("mode");
  json.String(mode);
  json.Key("ok");
  json.Bool(ok);
  json.Key("loopfast_version");
  json.String(loopfast_version());
  json.Key("host");
  json.BeginObject();
  struct utsname name {};
  uname(&name);
  json.Key("kernel");
  json.String(name.release);
  json.Key("cpus");
  json.Integer(uint64_t(sysconf(_SC_NPROCESSORS_ONLN)));
  json.Key("spin_us_env");
  if (const char *spin = std::getenv("LOOPFAST_SPIN_US"))
    json.String(spin);
  else
    json.Null();
  json.EndObject();
  json.Key("options");
  json.BeginObject();
  json.Key("rounds");
  json.Integer(uint64_t(options.rounds));
  json.Key("count");
  json.Integer(options.count);
  json.Key("parameters");
  json.BeginArray();
  for (const ParameterSummary &result : results) json.Integer(result.parameter);
  json.EndArray();
  json.Key("bytes");
  json.Integer(options.bytes);
  json.Key("read_size");
  json.Integer(options.read_size);
  json.Key("connections");
  json.Integer(options.connections);
  json.Key("rates");  // transactions per second, the parameters of a paced run; empty: unpaced
  json.BeginArray();
  for (const size_t rate : options.rates) json.Integer(rate);
  json.EndArray();
  json.Key("processes");
  json.Integer(mode == "many" ? options.processes : 1);
  json.EndObject();
  json.Key("units");
  json.BeginObject();
  json.Key("rate");
  json.String(mode == "stream" ? "bytes/s" : mode == "conn" ? "connections/s" : "transactions/s");
  json.Key("cpu_per_operation");
  json.String(mode == "stream" ? "s/GB" : mode == "conn" ? "us/connection" : "us/transaction");
  json.Key("latency");
  json.String("us");
  json.Key("memory");
  json.String("KiB/connection");
  json.EndObject();

  json.Key("trials");
  json.BeginArray();
  for (size_t i = 0; i < trials.size(); ++i) {
    const Trial &trial = trials[i];
    json.BeginObject();
    json.Key("index");
    json.Integer(i);
    json.Key("path");
    json.String(Tag(trial.kind));
    json.Key("parameter");
    json.Integer(trial.parameter);
    json.Key("round");
    json.Integer(uint64_t(trial.round));
    json.Key("ok");
    json.Bool(trial.ok);
    json.Key("path_verified");
    json.Bool(trial.path_verified);
    json.Key("operations");
    json.Number(trial.operations);
    json.Key("seconds");
    json.Number(trial.seconds);
    json.Key("rate");
    json.Number(trial.rate);
    json.Key("cpu_seconds");
    json.Number(trial.cpu_seconds);
    json.Key("cpu_per_operation");
    json.Number(CpuInReportedUnit(mode, trial.cpu_seconds, trial.cpu_operations));
    json.Key("latency_us");
    if (has_latency && trial.ok)
      WriteLatencyJson(&json, trial.latency);
    else
      json.Null();
    json.Key("memory_kib_per_connection");
    WriteMemoryJson(&json, trial.memory);
    json.EndObject();
  }
  json.EndArray();

  json.Key("results");
  json.BeginArray();
  for (const ParameterSummary &result : results) {
    json.BeginObject();
    json.Key("parameter");
    json.Integer(result.parameter);
    json.Key("paths");
    json.BeginObject();
    for (const Kind kind : kKinds) {
      const PathSummary &s = result.paths[IndexOf(kind)];
      json.Key(Tag(kind));
      json.BeginObject();
      json.Key("trials");
      json.Integer(s.trials);
      json.Key("median_rate");
      json.Number(s.median_rate);
      json.Key("min_rate");
      json.Number(s.min_rate);
      json.Key("max_rate");
      json.Number(s.max_rate);
      json.Key("cpu_per_operation");
      json.Number(CpuInReportedUnit(mode, s.cpu_seconds, s.cpu_operations));
      json.Key("latency_us");
      if (has_latency)
        WriteLatencyJson(&json, s.latency);
      else
        json.Null();
      json.Key("memory_kib_per_connection");
      WriteMemoryJson(&json, s.memory);
      json.EndObject();
    }
    json.EndObject();
    // {"fast": ratio, "unix": ratio}, or null where the mode has none.
    auto ratios = [&](const char *key, bool present, auto ratio_of) {
      json.Key(key);
      if (!present) {
        json.Null();
        return;
      }
      json.BeginObject();
      for (const Kind kind : {Kind::kFast, Kind::kUnix}) {
        json.Key(Tag(kind));
        json.Number(ratio_of(kind));
      }
      json.EndObject();
    };
    ratios("ratio_vs_kernel", true, [&](Kind kind) { return result.RatioVsKernel(mode, kind); });
    ratios("cpu_ratio_vs_kernel", mode != "stream",
           [&](Kind kind) { return result.CpuRatioVsKernel(kind); });
    ratios("memory_ratio_vs_kernel", mode == "many",
           [&](Kind kind) { return result.MemoryRatioVsKernel(kind); });
    ratios("memory_accounted_ratio_vs_kernel", mode == "many",
           [&](Kind kind) { return result.AccountedMemoryRatioVsKernel(kind); });
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  return json.text();
}

std::string BenchSvg(const Options &options, const std::vector<ParameterSummary> &results) {
  std::vector<LatencyChart> charts;
  for (const ParameterSummary &result : results) {
    LatencyChart chart;
    if (options.mode == "rr") {
      chart.title = "request/response, " + std::to_string(result.parameter) + "-byte messages";
    } else {
      chart.title =
          std::to_string(options.connections) + " concurrent connections, 1-byte request/response";
    }
    for (const Kind kind : kKinds) {
      chart.series.push_back(
          {Name(kind), Color(kind), result.paths[IndexOf(kind)].sorted_latencies_ns});
    }
    charts.push_back(std::move(chart));
  }
  char heading[160];
  std::snprintf(heading, sizeof heading,
                "loopfast bench %s: latency distribution (%d rounds per path, loopfast %s)",
                options.mode.c_str(), options.rounds, loopfast_version());
  return LatencySvg(heading, charts);
}

// Parses argv into `options`; prints the problem and returns false on a bad command line.
bool ParseOptions(int argc, char **argv, Options *options) {
  options->mode = argv[1];
  if (options->mode == "conn") options->count = 5000;
  if (options->mode == "many") options->count = 200000;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--no-progress") {
      options->progress = false;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "loopfast bench: %s needs a value\n", arg.c_str());
      return false;
    }
    const char *value_text = argv[++i];
    if (arg == "--json") {
      options->json_path = value_text;
      continue;
    }
    if (arg == "--svg") {
      options->svg_path = value_text;
      continue;
    }
    if (arg == "--rate") {
      if (!ParseSizeList(value_text, &options->rates)) {
        std::fprintf(stderr, "loopfast bench: --rate needs positive rates, comma-separated\n");
        return false;
      }
      continue;
    }
    if (arg == "--size" || arg == "--write-size") {
      if (!ParseSizeList(value_text, arg == "--size" ? &options->sizes : &options->write_sizes)) {
        std::fprintf(stderr, "loopfast bench: %s needs positive sizes, comma-separated\n",
                     arg.c_str());
        return false;
      }
      continue;
    }
    size_t value = 0;
    if (!ParseSize(value_text, &value)) {
      std::fprintf(stderr, "loopfast bench: %s needs a positive number\n", arg.c_str());
      return false;
    }
    if (arg == "--count")
      options->count = value, options->count_given = true;
    else if (arg == "--read-size")
      options->read_size = value;
    else if (arg == "--bytes")
      options->bytes = value;
    else if (arg == "--rounds")
      options->rounds = int(std::min<size_t>(value, 1000));
    else if (arg == "--connections")
      options->connections = std::min<size_t>(value, 100000);
    else if (arg == "--processes")
      options->processes = value;
    else {
      std::fprintf(stderr, "loopfast bench: unknown option '%s'\n", arg.c_str());
      return false;
    }
  }
  if (options->connections == 0) options->connections = options->mode == "many" ? 100 : 1;
  if (options->connections != 1 && options->mode != "many" && options->mode != "rr") {
    std::fprintf(stderr, "loopfast bench: --connections is for rr and many only\n");
    return false;
  }
  if (options->Paced() && options->mode != "rr" && options->mode != "many") {
    std::fprintf(stderr, "loopfast bench: --rate is for rr and many only\n");
    return false;
  }
  if (options->Paced() && options->sizes.size() != 1) {
    std::fprintf(stderr, "loopfast bench: with --rate, one --size\n");
    return false;
  }
  if (options->processes > 64 || options->processes > options->connections) {
    std::fprintf(stderr, "loopfast bench: --processes must be at most 64 and --connections\n");
    return false;
  }
  if (options->processes != 1 && options->mode != "many") {
    std::fprintf(stderr, "loopfast bench: --processes is for many only\n");
    return false;
  }
  if (!options->svg_path.empty() && options->mode != "rr" && options->mode != "many") {
    std::fprintf(stderr, "loopfast bench: --svg draws latency, for rr and many only\n");
    return false;
  }
  return true;
}

}  // namespace

int BenchCommand(int argc, char **argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    BenchUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  Options options;
  if (!ParseOptions(argc, argv, &options)) return 2;
  Trial (*run)(Kind, const Options &, size_t) = nullptr;
  std::vector<size_t> parameters = {0};
  if (options.mode == "rr") {
    run = RunRr;
    parameters = options.Paced() ? options.rates : options.sizes;
  } else if (options.mode == "stream") {
    run = RunStream;
    parameters = options.write_sizes;
  } else if (options.mode == "conn") {
    run = RunConn;
  } else if (options.mode == "many") {
    run = RunMany;
    if (options.Paced()) parameters = options.rates;
    // The children check again, each for its own share.
    const size_t largest_share = (options.connections + options.processes - 1) / options.processes;
    if (!RaiseDescriptorLimit(largest_share)) return 1;
  } else {
    BenchUsage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  PinToCpu(0);
  progress.Start(options.progress, parameters.size() * size_t(options.rounds) * size_t(kKindCount));

  std::vector<Trial> trials;
  std::vector<ParameterSummary> results;
  bool ok = true;
  for (const size_t parameter : parameters) {
    ParameterSummary result;
    result.parameter = parameter;
    for (int round = 1; round <= options.rounds; ++round) {
      for (const Kind kind : kKinds) {
        std::string label = options.mode;
        if (parameter != 0) label += ", " + DescribeParameter(options, parameter);
        label += std::string(", ") + Name(kind) + ", round " + std::to_string(round);
        progress.BeginTrial(std::move(label));
        path_mismatch = false;
        Trial trial = run(kind, options, parameter);
        trial.path_verified = !path_mismatch;
        progress.EndTrial();
        trial.kind = kind;
        trial.parameter = parameter;
        trial.round = round;
        if (!trial.ok) {
          std::fprintf(stderr, "loopfast bench: %s trial %d failed\n", Name(kind), round);
          ok = false;
        } else {
          PathSummary &s = result.paths[IndexOf(kind)];
          s.sorted_latencies_ns.insert(s.sorted_latencies_ns.end(), trial.latencies_ns.begin(),
                                       trial.latencies_ns.end());
          s.rates.push_back(trial.rate);
          s.cpu_seconds += trial.cpu_seconds;
          s.cpu_operations += trial.cpu_operations;
          if (trial.memory.measured) s.memory_trials.push_back(trial.memory);
          ++s.trials;
        }
        trial.latency = PercentilesOf(trial.latencies_ns);
        trial.latencies_ns = {};  // pooled above; the trial keeps its percentiles
        trials.push_back(std::move(trial));
      }
    }
    for (PathSummary &path : result.paths) Finalize(&path);
    results.push_back(std::move(result));
  }

  PrintTable(options.json_path == "-" ? stderr : stdout, options, results);
  if (!options.json_path.empty() &&
      !WriteTextFile(options.json_path, BenchJson(options, trials, results, ok))) {
    std::fprintf(stderr, "loopfast bench: writing %s: %s\n", options.json_path.c_str(),
                 std::strerror(errno));
    ok = false;
  }
  if (!options.svg_path.empty()) {
    if (!WriteTextFile(options.svg_path, BenchSvg(options, results))) {
      std::fprintf(stderr, "loopfast bench: writing %s: %s\n", options.svg_path.c_str(),
                   std::strerror(errno));
      ok = false;
    } else if (options.json_path != "-") {
      std::printf("latency distribution: %s\n", options.svg_path.c_str());
    }
  }
  return ok ? 0 : 1;
}

}  // namespace loopfast::tool
