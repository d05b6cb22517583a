// Whether a waiter spins before it sleeps (docs/design.md, "Whether to spin").
//
// Spinning pays only when what a waiter waits for comes soon: then it saves the sleep and this
// end's wake-up (tens of microseconds); otherwise it is CPU spent for nothing, on both ends of
// every exchange. "Soon" is half the spin budget B (HitLimitNs: what a sleep and a wake-up
// cost in CPU), and a spin that lost its CPU to another task (a yield that came back late)
// counts as a miss: on a busy machine a yielding spinner waits for others' time slices. A mean of
// wait durations cannot tell these apart (a few long idle gaps outweigh many short answers), so a
// policy learns the *fraction* of recent waits that ended within B: an exponentially weighted
// average of hits (weight 1/8, so about the last eight waits), with hysteresis: a policy that spins
// stops below 0.3, one that sleeps at once starts spinning again at 0.5. Every wait is a sample,
// also one that slept (its duration then counts until the waker stamped its wake-up, not until this
// end ran again), so a policy that sleeps sees waits become short again without probing. It starts
// spinning.
//
// One policy per waiting context: each direction of a fast connection (blocking calls), each
// epoll set, each thread's poll/select. Process-local memory, never shared with a peer.
// Thread rules: any thread; concurrent waiters of one context may lose a sample (relaxed
// atomics), which only delays what it learns.
#ifndef LOOPFAST_WAIT_SPIN_POLICY_H_
#define LOOPFAST_WAIT_SPIN_POLICY_H_

#include <atomic>
#include <cstdint>

namespace loopfast::wait {

class SpinPolicy {
 public:
  // The hit score in fixed point: kOne is 1.0.
  static constexpr uint32_t kOne = 1u << 16;
  static constexpr uint32_t kWeightShift = 3;             // each sample weighs 1/8
  static constexpr uint32_t kStartScore = kOne / 2;       // a spinning policy, at its threshold
  static constexpr uint32_t kSpinFrom = kOne / 2;         // a sleeping policy spins from here
  static constexpr uint32_t kSleepBelow = kOne * 3 / 10;  // a spinning policy sleeps below

  // The spin budget of the next wait: `budget_ns`, or 0 (sleep at once) while the waits this
  // policy saw mostly missed it. `adaptive` false (a fixed LOOPFAST_SPIN_US): `budget_ns`.
  uint64_t BudgetNs(uint64_t budget_ns, bool adaptive) const {
    if (!adaptive) return budget_ns;
    return Spinning(state_.load(std::memory_order_relaxed)) ? budget_ns : 0;
  }
  // A wait ended after `waited_ns` (until its answer came): a hit when within HitLimitNs.
  void Record(uint64_t waited_ns, uint64_t budget_ns) {
    RecordHit(waited_ns <= HitLimitNs(budget_ns));
  }
  // Spinning pays in CPU only for answers that come sooner than a sleep and a wake-up would
  // cost both ends (futex calls, context switches, the wake-up's IPI: 20-30 us of CPU on the
  // 2-CPU VM); a wait that spins longer than that costs more than it saves, however soon after
  // it the answer comes. So a hit is an answer within half the budget, and a wait spins up to
  // the whole budget (answers near the limit are still caught: a miss is learnt, not enforced).
  static constexpr uint64_t HitLimitNs(uint64_t budget_ns) { return budget_ns / 2; }
  // A wait timed out after `waited_ns` with nothing: a miss past the budget; before it, it
  // says nothing of what the budget would have caught.
  void RecordTimeout(uint64_t waited_ns, uint64_t budget_ns) {
    if (waited_ns > budget_ns) RecordHit(false);
  }
  void RecordHit(bool hit) {
    // Inline and without a store when nothing changes: a spinning ping-pong records a hit on
    // every wait, between seeing its answer and replying.
    const uint32_t state = state_.load(std::memory_order_relaxed);
    if (hit && Spinning(state) && ((kOne - Score(state)) >> kWeightShift) == 0) return;  // full
    const uint32_t next = Next(state, hit);
    if (next != state) state_.store(next, std::memory_order_relaxed);
  }

  // What it learned (tests, docs): the score (0..kOne) and whether it spins.
  uint32_t score() const { return Score(state_.load(std::memory_order_relaxed)); }
  bool spinning() const { return Spinning(state_.load(std::memory_order_relaxed)); }

 private:
  // One word: the score in the low 17 bits (0..kOne), bit 31 set while spinning.
  static constexpr uint32_t kSpinningBit = 1u << 31;
  static uint32_t Score(uint32_t state) { return state & ~kSpinningBit; }
  static bool Spinning(uint32_t state) { return (state & kSpinningBit) != 0; }
  // The state after one more sample.
  static uint32_t Next(uint32_t state, bool hit);

  std::atomic<uint32_t> state_{kStartScore | kSpinningBit};
};

// How long a wait that slept waited for its answer: `measured_ns` (from its start until it ran
// again), or less when the waker stamped its wake-up (`stamp`: the low 32 bits of the waker's
// CLOCK_MONOTONIC ns; `start_ns`: the wait's start on the same clock). The stamp is the peer's
// to write: only a value within [start, start + measured] is taken.
inline uint64_t AnsweredAfterNs(uint64_t measured_ns, uint64_t start_ns, uint32_t stamp) {
  const uint32_t since_start = stamp - static_cast<uint32_t>(start_ns);
  return since_start <= measured_ns ? since_start : measured_ns;
}

}  // namespace loopfast::wait

#endif  // LOOPFAST_WAIT_SPIN_POLICY_H_
