// How an endpoint waits for its peer (docs/design.md, "The wait protocol"): spin while that pays,
// then sleep on a word of the connection's shared memory with a futex, which a peer in any
// process wakes with one system call, and only when the word says someone sleeps.
//
// A futex does not end when the peer dies, so a sleep is cut into periods after which the
// caller's `peer_gone` check runs (it asks the kernel connection, whose FIN or reset shows a
// departed peer). A futex sleep with a period is a timed call, which the kernel never restarts
// after a signal handler; a sleep without a program timeout that has moved no bytes restarts
// itself when every installed handler has SA_RESTART, as the recv it stands for would.
#ifndef LOOPFAST_WAIT_SLEEP_H_
#define LOOPFAST_WAIT_SLEEP_H_

#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "base/cacheline.h"
#include "sys/signal_handlers.h"
#include "wait/spin_policy.h"

namespace loopfast::wait {

// Bits of a ring's waiting word (RingControl::producer_waiting / consumer_waiting), set by the
// side that waits; the side that changes the ring takes the word (exchange with 0) and wakes.
inline constexpr uint32_t kFutexSleeper = 1u << 0;  // a call sleeps on the word: FUTEX_WAKE
inline constexpr uint32_t kWatcher = 1u << 1;       // poll/select/epoll wait: ring the bell

enum class WakeReason {
  kReady,        // the awaited condition holds
  kPeerGone,     // the peer_gone check said so
  kInterrupted,  // a signal handler ran (EINTR)
  kTimedOut,     // the program's timeout expired
};

struct SleepSpec {
  uint32_t spin_ns = 0;  // the spin budget
  // With a policy and `adaptive_spin`, the policy decides whether this wait spins its budget or
  // sleeps at once, and learns from how soon it was answered; otherwise it spins `spin_ns`.
  SpinPolicy *spin_policy = nullptr;
  bool adaptive_spin = false;
  // Where the waker stamps when it wakes this sleeper (the low 32 bits of its NowNs()), so that
  // the policy learns when the answer came, not when this end ran again; may be null. The
  // peer's to write: taken only within the wait (AnsweredAfterNs).
  const std::atomic<uint32_t> *wake_stamp = nullptr;
  // Counted as the wait ends, answered while spinning / after it stopped spinning (`loopfast
  // stat`); may be null.
  std::atomic<uint64_t> *spun_count = nullptr;
  std::atomic<uint64_t> *slept_count = nullptr;
  // Zero means no timeout (as SO_RCVTIMEO/SO_SNDTIMEO 0 does).
  struct timeval timeout = {0, 0};
  // When the program's call ends at the latest (NowNs() clock), set once per call from
  // `timeout` (StartTimeout): every wait within one call shares it, as the kernel's timeout
  // covers the whole call. 0: each wait takes `timeout` from its own start.
  uint64_t deadline_ns = 0;
  // A signal ends the wait even under SA_RESTART: the call has already moved bytes, and the
  // kernel returns such a call's partial count instead of restarting it.
  bool end_on_signal = false;
  // Set to 1 while the waiter really sleeps (past its spin), for `loopfast stat`; may be null.
  std::atomic<uint8_t> *asleep_mark = nullptr;
};

uint64_t NowNs();

// A wait that began at `start_ns` ends after it stopped spinning: teaches its policy how soon
// it was answered, counts it.
// `lost_cpu`: its spin stopped because a yield lost the CPU (a miss, however soon the answer).
WakeReason EndSleep(const SleepSpec &spec, uint64_t start_ns, WakeReason reason,
                    bool lost_cpu = false);

// A count for `loopfast stat`: a load and a store, not a locked add (this sits between a
// waiter seeing its answer and replying); a send and a receive of one end that end their waits
// at the same instant may lose one.
inline void Count(std::atomic<uint64_t> *count) {
  if (count != nullptr) {
    count->store(count->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

// A wait answered while it spun: a hit when it spun less than the policy's hit limit (`soon`,
// from the spin loop's own clock reads: none more here).
inline WakeReason EndSpin(const SleepSpec &spec, bool soon) {
  Count(spec.spun_count);
  if (spec.spin_policy != nullptr && spec.adaptive_spin) spec.spin_policy->RecordHit(soon);
  return WakeReason::kReady;
}

// A yield in a spin that took this long gave the CPU to another task for a time slice: unless
// that task was the peer and the answer is there, the spin stops (a futex wake-up would preempt
// such a task at once; another yield would not).
inline constexpr uint64_t kLostCpuNs = 20000;

// Sets spec->deadline_ns from spec->timeout, counting from now (no timeout: stays 0).
inline void StartTimeout(SleepSpec *spec) {
  if (spec->timeout.tv_sec == 0 && spec->timeout.tv_usec == 0) return;
  spec->deadline_ns = NowNs() + uint64_t(spec->timeout.tv_sec) * 1000000000u +
                      uint64_t(spec->timeout.tv_usec) * 1000u;
}

// Wakes every sleeper on `word` (any process).
void FutexWakeAll(std::atomic<uint32_t> *word);
// Sleeps while *word == expected, at most `ns` nanoseconds (0: no limit). Returns 0, or
// EINTR, ETIMEDOUT, EAGAIN (the word changed first).
int FutexWait(std::atomic<uint32_t> *word, uint32_t expected, uint64_t ns);

// After a sleep ended with EINTR: whether the call it stands for would have been restarted
// by the kernel (every installed handler has SA_RESTART). Costs a sigaction per signal.
bool SignalsRestart();

// The first period after which a sleeping call asks whether its peer is gone, and the longest:
// a peer killed while this end sleeps in a blocking call is noticed within about the longest
// (kernel TCP: at once; readiness waits, which watch the kernel connection too: at once). A
// look is one getsockopt: 20 a second cost a sleeping thread about 0.005% of a CPU.
inline constexpr uint64_t kFirstPeriodNs = 10ull * 1000 * 1000;
inline constexpr uint64_t kLongestPeriodNs = 50ull * 1000 * 1000;

// Waits until `ready()` holds, announcing itself in `word`. `peer_gone()` runs after each
// period of sleep. Thread rules: one sleeper per word at a time (the caller holds its end's
// lock for that direction).
template <typename Ready, typename PeerGone>
WakeReason SleepUntil(std::atomic<uint32_t> *word, Ready ready, PeerGone peer_gone,
                      const SleepSpec &spec) {
  if (ready()) return WakeReason::kReady;
  // A handler of the program that runs while this waits, also outside the futex call (while
  // spinning, as a sleep period ends), ends the wait as it would end the system call.
  uint32_t handled = sys::HandledSignals();
  const uint64_t start = NowNs();
  const uint64_t spin_ns = spec.spin_policy != nullptr
                               ? spec.spin_policy->BudgetNs(spec.spin_ns, spec.adaptive_spin)
                               : spec.spin_ns;
  bool lost_cpu = false;
  if (spin_ns > 0) {
    // Spin on the shared line first (a peer on another CPU answers in well under a
    // microsecond); after that, also yield the CPU now and then: a peer that shares this CPU
    // (or waits for one) gets to run instead of watching us spin our whole budget.
    constexpr uint64_t kPureSpinNs = 2000;
    const uint64_t soon_ns = SpinPolicy::HitLimitNs(spin_ns);
    uint64_t spun = 0;
    uint64_t given_away = 0;  // time the CPU went to other tasks (a peer here, answering)
    for (uint32_t i = 1;; ++i) {
      if (ready()) return EndSpin(spec, spun - given_away < soon_ns);
      if ((i & 63) == 0) {
        spun = NowNs() - start;
        if (spun >= spin_ns || sys::HandledSignals() != handled) break;
        if (spun >= kPureSpinNs) {
          sched_yield();
          const uint64_t after = NowNs() - start;
          if (after - spun >= kLostCpuNs) {
            // A peer on this CPU may have run and answered (the yield did its job); if not,
            // another task had the CPU: sleep rather than wait out its time slices.
            given_away += after - spun;
            if (ready()) return EndSpin(spec, after - given_away < soon_ns);
            lost_cpu = true;
            break;
          }
          spun = after;
        }
      }
      CpuRelax();
    }
  }
  const bool has_timeout =
      spec.deadline_ns != 0 || spec.timeout.tv_sec != 0 || spec.timeout.tv_usec != 0;
  const uint64_t deadline = spec.deadline_ns != 0 ? spec.deadline_ns
                            : has_timeout ? NowNs() + uint64_t(spec.timeout.tv_sec) * 1000000000u +
                                                uint64_t(spec.timeout.tv_usec) * 1000u
                                          : 0;
  uint64_t period = kFirstPeriodNs;
  for (;;) {
    // The deadline first, at every turn: a peer that keeps waking this sleeper (or clearing
    // its announcement) cannot keep it past the program's timeout.
    uint64_t sleep_ns = period;
    if (has_timeout) {
      const uint64_t now = NowNs();
      if (now >= deadline) {
        word->fetch_and(~kFutexSleeper, std::memory_order_relaxed);
        return EndSleep(spec, start, WakeReason::kTimedOut);
      }
      if (deadline - now < sleep_ns) sleep_ns = deadline - now;
    }
    // Announce, then re-check (seq_cst on both sides: either the waker sees our bit or we see
    // its change, never neither).
    word->fetch_or(kFutexSleeper, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) break;
    const uint32_t announced = word->load(std::memory_order_relaxed);
    if ((announced & kFutexSleeper) == 0) continue;  // a waker took it: look again
    if (spec.asleep_mark != nullptr) spec.asleep_mark->store(1, std::memory_order_relaxed);
    int result = sys::HandledSignals() != handled ? EINTR : FutexWait(word, announced, sleep_ns);
    const uint32_t handled_now = sys::HandledSignals();
    if (handled_now != handled) result = EINTR;  // also one that ran outside the futex call
    handled = handled_now;
    if (spec.asleep_mark != nullptr) spec.asleep_mark->store(0, std::memory_order_relaxed);
    if (ready()) break;
    if (result == EINTR) {
      if (spec.end_on_signal || has_timeout || !SignalsRestart()) {
        word->fetch_and(~kFutexSleeper, std::memory_order_relaxed);
        return EndSleep(spec, start, WakeReason::kInterrupted);
      }
      continue;
    }
    if (result == ETIMEDOUT) {
      if (peer_gone()) {
        word->fetch_and(~kFutexSleeper, std::memory_order_relaxed);
        return EndSleep(spec, start, WakeReason::kPeerGone);
      }
      period = std::min(period * 2, kLongestPeriodNs);
    }
  }
  word->fetch_and(~kFutexSleeper, std::memory_order_relaxed);
  return EndSleep(spec, start, WakeReason::kReady, lost_cpu);
}

}  // namespace loopfast::wait

#endif  // LOOPFAST_WAIT_SLEEP_H_
