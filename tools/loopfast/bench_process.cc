// Process control for `loopfast bench` (bench_process.h).
#include "bench_process.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace loopfast::tool::bench {
namespace {

constexpr uint64_t kServerExitNs = 30000000000u;

double CpuSeconds(const struct rusage &usage) {
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

}  // namespace

[[noreturn]] void Die(const char *what) {
  std::fprintf(stderr, "loopfast bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void PinToCpu(int cpu) {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % cpus, &set);
  sched_setaffinity(0, sizeof set, &set);
}

double ClientCpu() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return CpuSeconds(usage);
}

bool FinishChild(BenchContext &context, pid_t pid, bool others_ok, double *cpu_seconds) {
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
  if (WIFEXITED(status) && WEXITSTATUS(status) == kExitPathMismatch) context.path_mismatch = true;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool PipeTransfer(BenchContext &context, int fd, void *buffer, size_t size, bool writing,
                  uint64_t deadline_ns, double progress_fraction) {
  auto *bytes = static_cast<char *>(buffer);
  size_t done = 0;
  while (done < size) {
    const uint64_t now = NowNs();
    if (now >= deadline_ns) return false;
    context.progress.Poll(now, progress_fraction);
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

}  // namespace loopfast::tool::bench
