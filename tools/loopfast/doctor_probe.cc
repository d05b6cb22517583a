// The implementation of doctor_probe.h (what it is for is said there).
#include "doctor_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "loopfast/loopfast.h"

extern char **environ;

namespace loopfast::tool {
namespace {

constexpr int kRoundTrips = 20000;
constexpr double kRoundTripSeconds = 0.3;  // at most, per path
constexpr int kWarmUpRoundTrips = 100;
constexpr size_t kStreamBytes = size_t{256} << 20;
constexpr size_t kWriteSize = size_t{64} * 1024;
constexpr unsigned kProbeSeconds = 30;  // the whole probe, then SIGALRM ends it

double Now() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return double(now.tv_sec) + double(now.tv_nsec) * 1e-9;
}

// Client and server on CPUs of their own, as `loopfast bench` measures, when there are two.
// Decided before the first pin (a pinned process would see one CPU allowed).
bool two_cpus = false;

void PinToCpu(int cpu) {
  if (!two_cpus) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

bool WriteAll(int fd, const void *data, size_t length) {
  const char *p = static_cast<const char *>(data);
  while (length > 0) {
    const ssize_t n = send(fd, p, length, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    length -= size_t(n);
  }
  return true;
}

bool ReadAll(int fd, void *data, size_t length) {
  char *p = static_cast<char *>(data);
  while (length > 0) {
    const ssize_t n = recv(fd, p, length, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    length -= size_t(n);
  }
  return true;
}

void Bound(int fd) {
  const timeval timeout = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

const char *PathName(int path) {
  switch (path) {
    case LOOPFAST_PATH_FAST:
      return "fast";
    case LOOPFAST_PATH_KERNEL:
      return "kernel";
    default:
      return "none";
  }
}

// The server end: echo 1-byte requests until 'x', then read the stream and answer 'd'.
// Reports its path (and reason) on `report` once the requests are over.
int Serve(int listener, int report) {
  PinToCpu(1);
  const int fd = accept(listener, nullptr, nullptr);
  close(listener);
  if (fd < 0) return 1;
  Bound(fd);
  uint64_t stream_bytes = 0;
  if (!ReadAll(fd, &stream_bytes, sizeof stream_bytes)) return 2;
  for (char byte = 0; byte != 'x';) {
    if (!ReadAll(fd, &byte, 1) || !WriteAll(fd, &byte, 1)) return 3;
  }
  std::string path = PathName(loopfast_path_of(fd));
  path += std::string(" ") + loopfast_fallback_reason(fd) + "\n";
  (void)!write(report, path.data(), path.size());
  close(report);
  std::vector<char> buffer(kWriteSize);
  for (uint64_t received = 0; received < stream_bytes;) {
    const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 4;
    received += uint64_t(n);
  }
  const char done = 'd';
  if (!WriteAll(fd, &done, 1)) return 5;
  char end;
  (void)!recv(fd, &end, 1, 0);  // until the client closes
  close(fd);
  return 0;
}

struct Measurement {
  std::string error;
  std::string client_path, server_path, reason;
  uint64_t kernel_bytes = 0;
  double rr_us = 0;
  double stream_gbps = 0;
};

Measurement Measure(bool fast) {
  Measurement m;
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener < 0 || client < 0) {
    m.error = std::string("socket: ") + std::strerror(errno);
    return m;
  }
  if (loopfast_set_fast_path(listener, fast ? 1 : 0) != 0 ||
      loopfast_set_fast_path(client, fast ? 1 : 0) != 0) {
    m.error = std::string("SIO_LOOPBACK_FAST_PATH: ") + std::strerror(errno);
  } else if (bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0 ||
             listen(listener, 4) != 0 ||
             getsockname(listener, reinterpret_cast<sockaddr *>(&address), &length) != 0) {
    m.error = std::string("listen on 127.0.0.1: ") + std::strerror(errno);
  }
  int report[2] = {-1, -1};
  if (m.error.empty() && pipe2(report, O_CLOEXEC) != 0) m.error = "pipe";
  if (!m.error.empty()) {
    close(listener);
    close(client);
    return m;
  }
  std::fflush(nullptr);
  const pid_t server = fork();
  if (server == 0) {
    close(client);
    close(report[0]);
    _exit(Serve(listener, report[1]));
  }
  close(listener);
  close(report[1]);
  Bound(client);
  bool ok =
      server > 0 && connect(client, reinterpret_cast<sockaddr *>(&address), sizeof address) == 0;
  const uint64_t stream_bytes = kStreamBytes;
  ok = ok && WriteAll(client, &stream_bytes, sizeof stream_bytes);
  // Request/response: the first ones settle the connection and warm up; not counted.
  std::vector<double> round_trips;
  round_trips.reserve(kRoundTrips);
  const double rr_start = Now();
  for (int i = 0; ok && i < kRoundTrips + kWarmUpRoundTrips; ++i) {
    char byte = 'r';
    const double start = Now();
    ok = WriteAll(client, &byte, 1) && ReadAll(client, &byte, 1);
    if (i >= kWarmUpRoundTrips) round_trips.push_back(Now() - start);
    if (Now() - rr_start > kRoundTripSeconds && round_trips.size() >= 100) break;
  }
  m.client_path = PathName(loopfast_path_of(client));
  if (!fast || m.client_path != "fast") m.reason = loopfast_fallback_reason(client);
  char byte = 'x';
  ok = ok && WriteAll(client, &byte, 1) && ReadAll(client, &byte, 1);
  // Stream: from the first write until the server says it has every byte.
  std::vector<char> buffer(kWriteSize, 's');
  const double stream_start = Now();
  for (uint64_t sent = 0; ok && sent < stream_bytes; sent += kWriteSize) {
    ok = WriteAll(client, buffer.data(), kWriteSize);
  }
  ok = ok && ReadAll(client, &byte, 1) && byte == 'd';
  const double stream_seconds = Now() - stream_start;
  tcp_info info{};
  socklen_t info_length = sizeof info;
  if (getsockopt(client, IPPROTO_TCP, TCP_INFO, &info, &info_length) == 0) {
    m.kernel_bytes = info.tcpi_bytes_sent + info.tcpi_bytes_received;
  }
  close(client);
  // The server's report: "fast " or "kernel <reason>".
  char text[512] = "";
  size_t have = 0;
  for (ssize_t n;
       have < sizeof text - 1 && (n = read(report[0], text + have, sizeof text - 1 - have)) > 0;) {
    have += size_t(n);
  }
  close(report[0]);
  std::string line(text, have);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  const size_t space = line.find(' ');
  m.server_path = line.substr(0, space);
  if (m.reason.empty() && space != std::string::npos) m.reason = line.substr(space + 1);
  int status = 0;
  if (server > 0) waitpid(server, &status, 0);
  if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    m.error = "the connection broke (" + std::string(ok ? "server" : "client") + " side)";
    return m;
  }
  std::sort(round_trips.begin(), round_trips.end());
  m.rr_us = round_trips.empty() ? 0 : round_trips[round_trips.size() / 2] * 1e6;
  m.stream_gbps = stream_seconds > 0 ? double(stream_bytes) / stream_seconds / 1e9 : 0;
  return m;
}

std::string OneLine(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

}  // namespace

int ConnectionProbeMain() {
  alarm(kProbeSeconds);
  signal(SIGPIPE, SIG_IGN);
  cpu_set_t allowed;
  two_cpus = sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) >= 2 &&
             CPU_ISSET(0, &allowed) && CPU_ISSET(1, &allowed);
  PinToCpu(0);
  const Measurement fast = Measure(true);
  std::printf("client_path=%s\nserver_path=%s\nreason=%s\nkernel_bytes=%llu\n",
              fast.client_path.c_str(), fast.server_path.c_str(), OneLine(fast.reason).c_str(),
              static_cast<unsigned long long>(fast.kernel_bytes));
  if (!fast.error.empty()) {
    std::printf("error=%s\n", OneLine(fast.error).c_str());
    return 1;
  }
  std::printf("rr_fast_us=%.3f\nstream_fast_gbps=%.3f\n", fast.rr_us, fast.stream_gbps);
  const Measurement kernel = Measure(false);
  if (kernel.error.empty()) {
    std::printf("rr_kernel_us=%.3f\nstream_kernel_gbps=%.3f\n", kernel.rr_us, kernel.stream_gbps);
  }
  return 0;
}

ProbeResult RunConnectionProbe() {
  ProbeResult result;
  // The probe's environment: this one without LOOPFAST_* and LD_PRELOAD, and no log.
  std::vector<char *> environment;
  for (char **entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, "LOOPFAST_", 9) == 0 || std::strncmp(*entry, "LD_PRELOAD=", 11) == 0) {
      continue;
    }
    environment.push_back(*entry);
  }
  char quiet[] = "LOOPFAST_LOG=off";  // the probe reports what the log would say
  environment.push_back(quiet);
  environment.push_back(nullptr);
  int output[2];
  if (pipe2(output, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    dup2(output[1], 1);
    char program[] = "loopfast", command[] = "doctor", flag[] = "--connection-probe";
    char *argv[] = {program, command, flag, nullptr};
    execve("/proc/self/exe", argv, environment.data());
    _exit(127);
  }
  close(output[1]);
  if (child < 0) {
    close(output[0]);
    result.error = std::string("fork: ") + std::strerror(errno);
    return result;
  }
  std::string text;
  char buffer[1024];
  for (ssize_t n; (n = read(output[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buffer, size_t(n));
  }
  close(output[0]);
  int status = 0;
  waitpid(child, &status, 0);
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const size_t equals = line.find('=');
    if (equals == std::string::npos) continue;
    const std::string key = line.substr(0, equals), value = line.substr(equals + 1);
    result.ran = true;
    if (key == "client_path") result.client_path = value;
    if (key == "server_path") result.server_path = value;
    if (key == "reason") result.reason = value;
    if (key == "error") result.error = value;
    if (key == "kernel_bytes") result.kernel_bytes = std::strtoull(value.c_str(), nullptr, 10);
    if (key == "rr_fast_us") result.rr_fast_us = std::atof(value.c_str());
    if (key == "rr_kernel_us") result.rr_kernel_us = std::atof(value.c_str());
    if (key == "stream_fast_gbps") result.stream_fast_gbps = std::atof(value.c_str());
    if (key == "stream_kernel_gbps") result.stream_kernel_gbps = std::atof(value.c_str());
  }
  if (result.error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    result.error =
        WIFSIGNALED(status)
            ? std::string("the probe process ended by signal ") + std::to_string(WTERMSIG(status)) +
                  (WTERMSIG(status) == SIGALRM ? " (it hung)" : "")
            : "the probe process failed (exit " + std::to_string(WEXITSTATUS(status)) + ")";
  }
  return result;
}

}  // namespace loopfast::tool
