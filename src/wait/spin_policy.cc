// The spin policy's learning step (spin_policy.h).
#include "wait/spin_policy.h"

namespace loopfast::wait {

uint32_t SpinPolicy::Next(uint32_t state, bool hit) {
  const auto score = static_cast<int32_t>(Score(state));
  const int32_t target = hit ? static_cast<int32_t>(kOne) : 0;
  // Arithmetic shift (C++20): a run of misses reaches 0, a run of hits reaches kOne - 7.
  const auto next = static_cast<uint32_t>(score + ((target - score) >> kWeightShift));
  bool spinning = Spinning(state);
  if (spinning && next < kSleepBelow) spinning = false;
  if (!spinning && next >= kSpinFrom) spinning = true;
  return next | (spinning ? kSpinningBit : 0);
}

}  // namespace loopfast::wait
