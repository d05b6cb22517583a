// Pieces of the reliability campaigns; see campaign.h.
#include "campaign.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

namespace loopfast::test {

double MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

uint64_t EnvNumber(const char *name, uint64_t fallback) {
  const char *value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoull(value, nullptr, 10);
}

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string Errno() { return std::strerror(errno); }

void SleepUs(long us) {
  timespec nap = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {
  }
}

CampaignSeeds::CampaignSeeds(const char *count_name, uint64_t default_count)
    : single(EnvNumber("LOOPFAST_CAMPAIGN_SEED", 0)),
      count(single ? 1 : EnvNumber(count_name, default_count)),
      base(EnvNumber("LOOPFAST_CAMPAIGN_BASE", std::random_device{}())),
      max_failures(EnvNumber("LOOPFAST_CAMPAIGN_MAX_FAILURES", 5)) {}

Child StartChild(const std::function<std::string()> &body, unsigned alarm_s) {
  Pipe report;
  if (report.read.get() < 0) return {};
  const pid_t pid = Spawn([&] {
    report.read.reset();
    alarm(alarm_s);
    signal(SIGPIPE, SIG_IGN);
    std::string text;
    try {
      text = body();
    } catch (...) {
      text = "exception";
    }
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = write(report.write.get(), text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += size_t(n);
    }
    return text.rfind("OK", 0) == 0 ? 0 : 3;
  });
  if (pid < 0) return {};
  fcntl(report.read.get(), F_SETFL, O_NONBLOCK);
  return {pid, std::move(report.read)};
}

std::string FinishChild(Child *child, int timeout_ms) {
  if (child->pid <= 0) return "fork failed";
  bool hung = false;
  const int status = WaitStatus(child->pid, timeout_ms, &hung);
  std::string how;
  if (hung) {
    how = "hung: killed after " + std::to_string(timeout_ms) + " ms";
  } else if (status < 0) {
    how = "waitpid: " + Errno();
  } else if (WIFSIGNALED(status)) {
    how = std::string("killed by signal ") + strsignal(WTERMSIG(status)) +
          (WTERMSIG(status) == SIGALRM ? " (its alarm: hung)" : "");
  } else if (WEXITSTATUS(status) != 0) {
    how = "exit status " + std::to_string(WEXITSTATUS(status));
  }
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(child->report.get(), buffer, sizeof buffer)) > 0) {
    text.append(buffer, size_t(n));
  }
  child->report.reset();
  child->pid = -1;
  if (!how.empty()) return how + (text.empty() ? "" : ": " + text);
  if (text.empty()) return "OK";
  return text;
}

}  // namespace loopfast::test
