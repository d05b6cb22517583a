// The implementation of sleep.h (what it is for is said there).
#include "wait/sleep.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace loopfast::wait {

uint64_t NowNs() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

WakeReason EndSleep(const SleepSpec &spec, uint64_t start_ns, WakeReason reason, bool lost_cpu) {
  Count(spec.slept_count);
  // Signals and a departed peer say nothing of how soon answers come.
  if (spec.spin_policy == nullptr || !spec.adaptive_spin ||
      (reason != WakeReason::kReady && reason != WakeReason::kTimedOut)) {
    return reason;
  }
  uint64_t waited_ns = NowNs() - start_ns;
  // Past the spin, this end's own wake-up (tens of microseconds) is no part of how soon the
  // peer answered: the waker's stamp says when that was.
  if (reason == WakeReason::kReady && spec.wake_stamp != nullptr) {
    waited_ns =
        AnsweredAfterNs(waited_ns, start_ns, spec.wake_stamp->load(std::memory_order_relaxed));
  }
  if (lost_cpu) {
    spec.spin_policy->RecordHit(false);
  } else if (reason == WakeReason::kTimedOut) {
    spec.spin_policy->RecordTimeout(waited_ns, spec.spin_ns);
  } else {
    spec.spin_policy->Record(waited_ns, spec.spin_ns);
  }
  return reason;
}

void FutexWakeAll(std::atomic<uint32_t> *word) {
  const int saved_errno = errno;
  // Not FUTEX_PRIVATE: the sleeper may be another process mapping the same memory.
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr,
          0);
  errno = saved_errno;
}

int FutexWait(std::atomic<uint32_t> *word, uint32_t expected, uint64_t ns) {
  const int saved_errno = errno;
  struct timespec timeout = {static_cast<time_t>(ns / 1000000000u),
                             static_cast<long>(ns % 1000000000u)};
  const long ret = syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT, expected,
                           ns == 0 ? nullptr : &timeout, nullptr, 0);
  const int result = ret == 0 ? 0 : errno;
  errno = saved_errno;
  return result;
}

bool SignalsRestart() {
  const int saved_errno = errno;
  bool restart = true;
  for (int sig = 1; sig < NSIG && restart; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction action;
    if (sigaction(sig, nullptr, &action) != 0) continue;  // glibc's reserved signals
    const bool handled = (action.sa_flags & SA_SIGINFO) != 0
                             ? action.sa_sigaction != nullptr
                             : action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN;
    if (handled && (action.sa_flags & SA_RESTART) == 0) restart = false;
  }
  errno = saved_errno;
  return restart;
}

}  // namespace loopfast::wait
