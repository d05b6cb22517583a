// Doorbells: how a sleeping endpoint is woken, and how it learns that its peer is gone.
//
// A doorbell is one end of a Unix stream socket pair; the peer holds the other end. A waker
// writes a byte; a sleeper blocks in recv(). Because the sleep is a real socket recv(), the
// kernel gives it exactly the semantics a TCP recv() has: SA_RESTART restarts it, a handler
// without SA_RESTART or an expired SO_RCVTIMEO ends it with EINTR, and a peer that dies (even
// with kill -9) closes its end, which wakes the sleeper with end-of-file.
#ifndef LOOPFAST_WAIT_DOORBELL_H_
#define LOOPFAST_WAIT_DOORBELL_H_

#include <sched.h>
#include <sys/time.h>

#include <atomic>
#include <cstdint>

#include "base/cacheline.h"

namespace loopfast {

enum class WakeReason {
  kReady,        // the awaited condition holds
  kPeerGone,     // end-of-file: the peer exited or closed, or ShutLocal() ran on this end
  kInterrupted,  // a signal handler ran (EINTR)
  kTimedOut,     // the timeout expired
};

// Spin budget and timeout of one wait.
struct WaitSpec {
  uint32_t spin_ns = 0;
  // Zero means no timeout (as SO_RCVTIMEO/SO_SNDTIMEO 0 does).
  struct timeval timeout = {0, 0};
  // A signal ends the wait even under SA_RESTART: the call has already moved bytes, and the
  // kernel returns such a call's partial count instead of restarting it.
  bool end_on_signal = false;
  // Set to 1 while the waiter really sleeps (past its spin), for `loopfast stat`; may be null.
  std::atomic<uint8_t> *asleep_mark = nullptr;
};

class Doorbell {
 public:
  Doorbell() = default;
  explicit Doorbell(int fd) : fd_(fd) {}

  int fd() const { return fd_; }

  // Wakes the peer's sleeper. Never blocks; any error only means the peer is gone or already
  // has a wake-up pending.
  void Ring() const;

  // Waits until `ready()` returns nonzero, for a sleeper that announces itself in
  // `waiting_flag` (a word the peer's waker checks after each change). `ready()` returning a
  // negative number also ends the wait (as kReady: the caller re-checks and reports it).
  // Thread rules: one sleeper per doorbell at a time (the caller holds its end's lock).
  template <typename Ready>
  WakeReason Wait(Ready ready, std::atomic<uint32_t> *waiting_flag, const WaitSpec &spec);

  // Ends every current and future Wait() on this end with kPeerGone (for shutdown from
  // another thread; the caller tells the two apart by its own flags).
  void ShutLocal() const;

 private:
  // One blocking sleep: kReady on a wake-up byte, else why it ended.
  WakeReason Sleep(const struct timeval &timeout);
  static uint64_t NowNs();

  int fd_ = -1;
  struct timeval applied_timeout_ = {0, 0};  // SO_RCVTIMEO currently set on fd_
};

template <typename Ready>
WakeReason Doorbell::Wait(Ready ready, std::atomic<uint32_t> *waiting_flag, const WaitSpec &spec) {
  if (ready() != 0) return WakeReason::kReady;
  if (spec.spin_ns > 0) {
    // Spin on the shared line first (a peer on another CPU answers in well under a
    // microsecond); after that, also yield the CPU now and then: a peer that shares this CPU
    // (or waits for one) gets to run instead of watching us spin our whole budget.
    constexpr uint64_t kPureSpinNs = 2000;
    const uint64_t start = NowNs();
    for (uint32_t i = 1;; ++i) {
      if (ready() != 0) return WakeReason::kReady;
      if ((i & 63) == 0) {
        const uint64_t spun = NowNs() - start;
        if (spun >= spec.spin_ns) break;
        if (spun >= kPureSpinNs) sched_yield();
      }
      CpuRelax();
    }
  }
  const bool has_timeout = spec.timeout.tv_sec != 0 || spec.timeout.tv_usec != 0;
  // The kernel never restarts a socket call that has a timeout (signal(7)), so sleeping with a
  // long one makes a signal end the sleep with EINTR; it expiring only means "sleep again".
  constexpr struct timeval kSignalWatch = {24L * 3600, 0};
  const bool watch_signals = spec.end_on_signal && !has_timeout;
  const uint64_t timeout_ns =
      uint64_t(spec.timeout.tv_sec) * 1000000000u + uint64_t(spec.timeout.tv_usec) * 1000u;
  const uint64_t deadline = has_timeout ? NowNs() + timeout_ns : 0;
  for (;;) {
    // Announce, then re-check (seq_cst on both sides: either the waker sees our flag or we
    // see its change, never neither).
    waiting_flag->store(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready() != 0) {
      waiting_flag->store(0, std::memory_order_relaxed);
      return WakeReason::kReady;
    }
    struct timeval remaining = watch_signals ? kSignalWatch : timeval{0, 0};
    if (has_timeout) {
      const uint64_t now = NowNs();
      if (now >= deadline) {
        waiting_flag->store(0, std::memory_order_relaxed);
        return WakeReason::kTimedOut;
      }
      const uint64_t left_us = (deadline - now + 999) / 1000;
      remaining.tv_sec = static_cast<time_t>(left_us / 1000000);
      remaining.tv_usec = static_cast<suseconds_t>(left_us % 1000000);
    }
    if (spec.asleep_mark != nullptr) spec.asleep_mark->store(1, std::memory_order_relaxed);
    const WakeReason reason = Sleep(remaining);
    if (spec.asleep_mark != nullptr) spec.asleep_mark->store(0, std::memory_order_relaxed);
    waiting_flag->store(0, std::memory_order_relaxed);
    if (ready() != 0) return WakeReason::kReady;
    if (reason == WakeReason::kTimedOut && watch_signals) continue;
    if (reason != WakeReason::kReady) return reason;
  }
}

}  // namespace loopfast

#endif  // LOOPFAST_WAIT_DOORBELL_H_
