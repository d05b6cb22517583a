// The clock of a readiness call: when it started, when it must give up (a null timeout never
// does), and whether it is still within its spin budget.
#ifndef LOOPFAST_SOCKET_DEADLINE_H_
#define LOOPFAST_SOCKET_DEADLINE_H_

#include <sched.h>
#include <time.h>

#include <cstdint>

#include "base/cacheline.h"

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

  Deadline(const struct timespec *timeout, uint64_t spin_ns)
      : start_(MonotonicNs()),
        forever_(timeout == nullptr),
        end_(forever_
                 ? 0
                 : start_ + uint64_t(timeout->tv_sec) * kNsPerSec + uint64_t(timeout->tv_nsec)),
        spin_ns_(spin_ns) {}

  bool forever() const { return forever_; }
  bool Expired(uint64_t now) const { return !forever_ && now >= end_; }
  bool Spinning(uint64_t now) const { return now - start_ < spin_ns_; }
  // One pause of the spin loop. Past the first two microseconds it also yields the CPU: a peer
  // that shares this CPU then runs instead of watching this waiter spin its whole budget.
  void PauseSpinning(uint64_t now) const {
    if (now - start_ >= kPureSpinNs) sched_yield();
    CpuRelax();
  }
  uint64_t LeftNs() const {
    const uint64_t now = MonotonicNs();
    return now >= end_ ? 0 : end_ - now;
  }

 private:
  uint64_t start_;
  bool forever_;
  uint64_t end_;
  uint64_t spin_ns_;
};

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_DEADLINE_H_
