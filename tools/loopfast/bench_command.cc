// `loopfast bench`: the fast path beside kernel TCP, measured in one run.
//
// Each trial forks a server process; server and client run on different CPUs. Trials of the
// two paths alternate (fast, kernel, fast, kernel, ...) so that both see the same machine.
// Every fast trial checks that its connection really was fast (loopfast says so, and the
// kernel connection carried no data bytes); every kernel trial that it was not.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "loopfast/loopfast.h"

namespace loopfast::tool {
namespace {

struct Options {
  std::string mode;
  size_t size = 1;                 // rr message size
  size_t count = 20000;            // rr round trips / conn connections per trial
  size_t write_size = 64 * 1024;   // stream write size
  size_t read_size = 0;            // stream read size; 0: the write size (as iperf3 does)
  size_t bytes = size_t{1} << 30;  // stream bytes per trial
  int rounds = 5;
};

enum class Kind { kFast, kKernel };
const char *Name(Kind kind) { return kind == Kind::kFast ? "fast path" : "kernel TCP"; }

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

int TcpSocket(Kind kind) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (loopfast_set_fast_path(fd, kind == Kind::kFast ? 1 : 0) != 0) Die("SIO_LOOPBACK_FAST_PATH");
  return fd;
}

int Listen(Kind kind, uint16_t *port) {
  const int fd = TcpSocket(kind);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) Die("bind");
  if (listen(fd, 1024) != 0) Die("listen");
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
  *port = ntohs(address.sin_port);
  return fd;
}

int Connect(Kind kind, uint16_t port) {
  const int fd = TcpSocket(kind);
  struct sockaddr_in address {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  while (connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
    if (errno != EINTR) Die("connect");
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

// Checks the path a connection took; returns false (and says why) when it is not `kind`.
bool CheckPath(int fd, Kind kind) {
  const int path = loopfast_path_of(fd);
  const uint64_t kernel_bytes = KernelDataTraffic(fd);
  if (kind == Kind::kFast && (path != LOOPFAST_PATH_FAST || kernel_bytes != 0)) {
    std::fprintf(stderr,
                 "loopfast bench: expected a fast connection: path %d (%s), kernel bytes %llu\n",
                 path, loopfast_fallback_reason(fd), static_cast<unsigned long long>(kernel_bytes));
    return false;
  }
  if (kind == Kind::kKernel && path == LOOPFAST_PATH_FAST) {
    std::fprintf(stderr, "loopfast bench: expected kernel TCP, got the fast path\n");
    return false;
  }
  return true;
}

struct ServerProcess {
  pid_t pid;
  uint16_t port;
};

// Forks a server on CPU 1 that runs `serve(listener)`; returns once it listens.
template <typename Serve>
ServerProcess StartServer(Kind kind, Serve serve) {
  int ready[2];
  if (pipe(ready) != 0) Die("pipe");
  const pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    close(ready[0]);
    PinToCpu(1);
    uint16_t port = 0;
    const int listener = Listen(kind, &port);
    if (write(ready[1], &port, sizeof port) != sizeof port) _exit(1);
    close(ready[1]);
    _exit(serve(listener) ? 0 : 1);
  }
  close(ready[1]);
  uint16_t port = 0;
  if (read(ready[0], &port, sizeof port) != sizeof port) Die("server start");
  close(ready[0]);
  return {pid, port};
}

// Waits for the server; adds its CPU time. False if it failed.
bool FinishServer(const ServerProcess &server, double *cpu_seconds) {
  int status = 0;
  struct rusage usage {};
  if (wait4(server.pid, &status, 0, &usage) < 0) return false;
  *cpu_seconds += CpuSeconds(usage);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Trial {
  std::vector<double> samples;  // per-operation latency (ns) or a single rate
  double seconds = 0;
  double cpu_seconds = 0;  // both processes
  bool ok = true;
};

double ClientCpu() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return CpuSeconds(usage);
}

Trial RunRr(Kind kind, const Options &options) {
  const size_t size = options.size;
  const size_t count = options.count;
  const size_t warmup = std::min<size_t>(count / 10 + 1, 1000);
  ServerProcess server = StartServer(kind, [&](int listener) {
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
  const int fd = Connect(kind, server.port);
  std::vector<char> buffer(size, 'x');
  trial.samples.reserve(count);
  for (size_t i = 0; i < warmup; ++i) {
    if (!WriteAll(fd, buffer.data(), size) || !ReadAll(fd, buffer.data(), size)) trial.ok = false;
  }
  const uint64_t start = NowNs();
  for (size_t i = 0; i < count && trial.ok; ++i) {
    const uint64_t t0 = NowNs();
    if (!WriteAll(fd, buffer.data(), size) || !ReadAll(fd, buffer.data(), size)) {
      trial.ok = false;
      break;
    }
    trial.samples.push_back(double(NowNs() - t0));
  }
  trial.seconds = double(NowNs() - start) / 1e9;
  trial.ok = CheckPath(fd, kind) && trial.ok;
  close(fd);
  trial.cpu_seconds = ClientCpu() - cpu_before;
  trial.ok = FinishServer(server, &trial.cpu_seconds) && trial.ok;
  return trial;
}

Trial RunStream(Kind kind, const Options &options) {
  const size_t total = options.bytes;
  ServerProcess server = StartServer(kind, [&](int listener) {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return false;
    std::vector<char> buffer(options.read_size != 0 ? options.read_size : options.write_size);
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
  const int fd = Connect(kind, server.port);
  std::vector<char> buffer(options.write_size, 'x');
  const uint64_t start = NowNs();
  size_t sent = 0;
  while (sent < total && trial.ok) {
    const size_t chunk = std::min(options.write_size, total - sent);
    trial.ok = WriteAll(fd, buffer.data(), chunk);
    sent += chunk;
  }
  char done = 0;
  trial.ok = trial.ok && ReadAll(fd, &done, 1);
  trial.seconds = double(NowNs() - start) / 1e9;
  trial.samples.push_back(double(total) / trial.seconds);  // bytes per second
  trial.ok = CheckPath(fd, kind) && trial.ok;
  close(fd);
  trial.cpu_seconds = ClientCpu() - cpu_before;
  trial.ok = FinishServer(server, &trial.cpu_seconds) && trial.ok;
  return trial;
}

Trial RunConn(Kind kind, const Options &options) {
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
  for (size_t i = 0; i < count && trial.ok; ++i) {
    const int fd = Connect(kind, server.port);
    char byte = 'x';
    trial.ok = WriteAll(fd, &byte, 1) && ReadAll(fd, &byte, 1);
    if (i == 0) trial.ok = CheckPath(fd, kind) && trial.ok;
    close(fd);
  }
  trial.seconds = double(NowNs() - start) / 1e9;
  trial.samples.push_back(double(count) / trial.seconds);  // connections per second
  trial.cpu_seconds = ClientCpu() - cpu_before;
  trial.ok = FinishServer(server, &trial.cpu_seconds) && trial.ok;
  return trial;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, size_t(p * double(values.size() - 1) + 0.5));
  return values[index];
}

struct Summary {
  std::vector<double> samples;
  double seconds = 0;
  double cpu_seconds = 0;
  double operations = 0;
};

void BenchUsage(FILE *out) {
  std::fprintf(out,
               "usage: loopfast bench rr|stream|conn [OPTIONS]\n"
               "\n"
               "Measures the fast path and kernel TCP in one run, server and client in separate\n"
               "processes on separate CPUs, trials alternating between the two paths.\n"
               "\n"
               "  rr      request/response latency: --size BYTES (1), --count N (20000)\n"
               "  stream  one-way throughput: --write-size BYTES (65536), --read-size BYTES\n"
               "          (the write size), --bytes N (1 GiB)\n"
               "  conn    connect+exchange+close rate: --count N (20000)\n"
               "  --rounds R   trials per path (5)\n"
               "\n"
               "The wait policy comes from the environment (LOOPFAST_SPIN_US), as for programs.\n");
}

bool ParseSize(const char *text, size_t *out) {
  char *end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text) return false;
  size_t multiplier = 1;
  if (*end == 'K' || *end == 'k')
    multiplier = 1024, ++end;
  else if (*end == 'M' || *end == 'm')
    multiplier = 1024 * 1024, ++end;
  else if (*end == 'G' || *end == 'g')
    multiplier = size_t{1} << 30, ++end;
  if (*end != '\0' || value == 0) return false;
  *out = size_t(value) * multiplier;
  return true;
}

}  // namespace

int BenchCommand(int argc, char **argv) {
  Options options;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    BenchUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  options.mode = argv[1];
  if (options.mode == "conn") options.count = 5000;
  for (int i = 2; i < argc; ++i) {
    const char *arg = argv[i];
    size_t value = 0;
    if (i + 1 >= argc || !ParseSize(argv[i + 1], &value)) {
      std::fprintf(stderr, "loopfast bench: %s needs a positive number\n", arg);
      return 2;
    }
    ++i;
    if (std::strcmp(arg, "--size") == 0)
      options.size = value;
    else if (std::strcmp(arg, "--count") == 0)
      options.count = value;
    else if (std::strcmp(arg, "--write-size") == 0)
      options.write_size = value;
    else if (std::strcmp(arg, "--read-size") == 0)
      options.read_size = value;
    else if (std::strcmp(arg, "--bytes") == 0)
      options.bytes = value;
    else if (std::strcmp(arg, "--rounds") == 0)
      options.rounds = int(value);
    else {
      std::fprintf(stderr, "loopfast bench: unknown option '%s'\n", arg);
      return 2;
    }
  }
  Trial (*run)(Kind, const Options &) = nullptr;
  if (options.mode == "rr")
    run = RunRr;
  else if (options.mode == "stream")
    run = RunStream;
  else if (options.mode == "conn")
    run = RunConn;
  else {
    BenchUsage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  PinToCpu(0);
  Summary summary[2];
  bool ok = true;
  for (int round = 0; round < options.rounds; ++round) {
    for (Kind kind : {Kind::kFast, Kind::kKernel}) {
      Trial trial = run(kind, options);
      if (!trial.ok) {
        std::fprintf(stderr, "loopfast bench: %s trial %d failed\n", Name(kind), round + 1);
        ok = false;
        continue;
      }
      Summary &s = summary[kind == Kind::kFast ? 0 : 1];
      s.samples.insert(s.samples.end(), trial.samples.begin(), trial.samples.end());
      s.seconds += trial.seconds;
      s.cpu_seconds += trial.cpu_seconds;
      s.operations +=
          options.mode == "stream" ? double(options.bytes) / 1e9 : double(options.count);
    }
  }
  if (!ok) return 1;
  std::printf("loopfast bench %s (%d rounds per path, server and client on separate CPUs)\n",
              options.mode.c_str(), options.rounds);
  const Summary &fast = summary[0];
  const Summary &kernel = summary[1];
  if (options.mode == "rr") {
    std::printf("message size %zu bytes, %zu round trips per trial\n", options.size, options.count);
    std::printf("%-11s %12s %12s %12s %16s\n", "path", "p50 (us)", "p99 (us)", "p99.9 (us)",
                "CPU us/trans");
    for (const Summary *s : {&fast, &kernel}) {
      std::printf("%-11s %12.2f %12.2f %12.2f %16.2f\n", s == &fast ? "fast path" : "kernel TCP",
                  Percentile(s->samples, 0.5) / 1e3, Percentile(s->samples, 0.99) / 1e3,
                  Percentile(s->samples, 0.999) / 1e3, s->cpu_seconds / s->operations * 1e6);
    }
    std::printf("ratio (kernel p50 / fast p50): %.1fx\n",
                Percentile(kernel.samples, 0.5) / Percentile(fast.samples, 0.5));
  } else if (options.mode == "stream") {
    std::printf("write size %zu bytes, read size %zu bytes, %zu bytes per trial\n",
                options.write_size, options.read_size != 0 ? options.read_size : options.write_size,
                options.bytes);
    std::printf("%-11s %14s %14s %16s\n", "path", "median GB/s", "min GB/s", "CPU s/GB");
    for (const Summary *s : {&fast, &kernel}) {
      std::printf("%-11s %14.2f %14.2f %16.3f\n", s == &fast ? "fast path" : "kernel TCP",
                  Percentile(s->samples, 0.5) / 1e9, Percentile(s->samples, 0.0) / 1e9,
                  s->cpu_seconds / s->operations);
    }
    std::printf("ratio (fast median / kernel median): %.1fx\n",
                Percentile(fast.samples, 0.5) / Percentile(kernel.samples, 0.5));
  } else {
    std::printf("%zu connections per trial (connect, 1-byte exchange, close)\n", options.count);
    std::printf("%-11s %16s %16s\n", "path", "median conn/s", "CPU us/conn");
    for (const Summary *s : {&fast, &kernel}) {
      std::printf("%-11s %16.0f %16.2f\n", s == &fast ? "fast path" : "kernel TCP",
                  Percentile(s->samples, 0.5), s->cpu_seconds / s->operations * 1e6);
    }
    std::printf("ratio (fast median / kernel median): %.2fx\n",
                Percentile(fast.samples, 0.5) / Percentile(kernel.samples, 0.5));
  }
  return 0;
}

}  // namespace loopfast::tool
