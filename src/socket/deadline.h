// The clock of a readiness call: when it started, when it must give up (a null timeout never
// does), and whether it is still within its spin budget; and what the call teaches its spin
// policy (wait/spin_policy.h).
#ifndef LOOPFAST_SOCKET_DEADLINE_H_
#define LOOPFAST_SOCKET_DEADLINE_H_

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdint>

#include "base/cacheline.h"
#include "socket/config.h"
#include "wait/spin_policy.h"

namespace loopfast {

inline constexpr uint64_t kNsPerSec = 1000000000u;

inline uint64_t MonotonicNs() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * kNsPerSec + uint64_t(now.tv_nsec);
}

class Deadline {
 public:
  static constexpr uint64_t kPureSpinNs = 2000;
  static constexpr uint64_t kLostCpuNs = 20000;

  Deadline(const struct timespec *timeout, uint64_t spin_ns)
      : start_(MonotonicNs()),
        forever_(timeout == nullptr),
        end_(forever_
                 ? 0
                 : start_ + uint64_t(timeout->tv_sec) * kNsPerSec + uint64_t(timeout->tv_nsec)),
        spin_ns_(spin_ns) {}

  bool forever() const { return forever_; }
  uint64_t start() const { return start_; }
  uint64_t spin_ns() const { return spin_ns_; }
  bool Expired(uint64_t now) const { return !forever_ && now >= end_; }
  // Asked after a look that found nothing: a spin whose last yield came back late stops here
  // (the task that had the CPU was not the peer answering, or the look would have found it).
  bool Spinning(uint64_t now) {
    if (long_yield_) spin_ns_ = 0;
    return now - start_ < spin_ns_;
  }
  // One pause of the spin loop. Past the first two microseconds it also yields the CPU: a peer
  // that shares this CPU then runs instead of watching this waiter spin its whole budget.
  // A yield that comes back late gave the CPU to another task for a time slice: if the next
  // look finds nothing, the spin stops there (a wake-up from a sleep preempts such a task;
  // another yield would wait for it).
  void PauseSpinning(uint64_t now) {
    if (now - start_ >= kPureSpinNs) {
      sched_yield();
      const uint64_t yielded = MonotonicNs() - now;
      long_yield_ = yielded >= kLostCpuNs;
      if (long_yield_) given_away_ns_ += yielded;
    }
    CpuRelax();
  }
  // How long this wait's yields gave the CPU to other tasks (a peer on this CPU, answering).
  uint64_t given_away_ns() const { return given_away_ns_; }
  uint64_t LeftNs() const {
    const uint64_t now = MonotonicNs();
    return now >= end_ ? 0 : end_ - now;
  }

 private:
  uint64_t start_;
  bool forever_;
  uint64_t end_;
  uint64_t spin_ns_;
  bool long_yield_ = false;     // the last yield gave the CPU away for a time slice
  uint64_t given_away_ns_ = 0;  // the time of such yields: other tasks', not this wait's, CPU
};

// The spin budget of a readiness call that `policy` decides.
inline uint64_t SpinBudgetNs(const wait::SpinPolicy &policy) {
  const Config &config = GetConfig();
  return policy.BudgetNs(config.spin_ns, config.spin_adaptive);
}

// A readiness call ends with `result` (events, 0: its timeout, -1: an error or a signal); it
// teaches `policy` how soon it was answered if it `waited` (found nothing at its first look).
// `answered_ns`, when known (an epoll set: the earliest time a fast socket it reports became
// ready, stamped by the peer's write; 0: unknown), is when the answer came. Otherwise the time
// of a call that slept at once includes this thread's own wake-up (15-40 us on a VM, more on a
// busy machine): such a call counts against twice the budget. Without that, two ends that both
// sleep would each see the other's wake-up plus their own and never spin again.
inline int Teach(wait::SpinPolicy &policy, const Deadline &deadline, bool waited, int result,
                 uint64_t answered_ns = 0) {
  const Config &config = GetConfig();
  if (!waited || !config.spin_adaptive || result < 0) return result;
  const uint64_t now = MonotonicNs();
  uint64_t waited_ns = now - deadline.start();
  // An event loop's waits are judged against the whole budget (a hit: answered within B), not
  // half of it as a blocking call's: a server loop that sleeps between requests arriving tens
  // of microseconds apart pays a wake-up on each (nginx, one request per connection, lost a
  // quarter of its rate to sleeping at half the budget).
  uint64_t within_ns = 2 * uint64_t{config.spin_ns};
  if (deadline.spin_ns() == 0) within_ns *= 2;  // its own wake-up included
  if (answered_ns >= deadline.start() && answered_ns <= now) {
    waited_ns = answered_ns - deadline.start();
    within_ns = 2 * uint64_t{config.spin_ns};
  }
  // What counts is what the wait cost this thread: while its yields let other tasks run (on a
  // CPU shared with its peer, the peer answering), it spent nothing.
  waited_ns -= std::min(waited_ns, deadline.given_away_ns());
  if (result > 0) {
    policy.Record(waited_ns, within_ns);
  } else {
    policy.RecordTimeout(waited_ns, within_ns);
  }
  return result;
}

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_DEADLINE_H_
