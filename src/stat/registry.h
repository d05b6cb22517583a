// This process's statistics registry (registry_layout.h): created on first use, one slot per
// published socket. Slots are named by index, so that a forked child can move to a copy of
// its own without its sockets noticing.
//
// Thread rules: any thread. Acquire/Release serialise on a mutex; writing a slot is the
// caller's (under its socket's mutex); counters are atomics.
#ifndef LOOPFAST_STAT_REGISTRY_H_
#define LOOPFAST_STAT_REGISTRY_H_

#include <cstdint>

#include "stat/registry_layout.h"

namespace loopfast::stat {

inline constexpr int kNoSlot = -1;

// A free slot, or kNoSlot when the registry could not be made or is full (the socket then
// simply does not show in `loopfast stat`).
int AcquireSlot();
void ReleaseSlot(int slot);
// The slot's memory (`slot` one this process acquired and has not released); nullptr when the
// registry is gone (a forked child that could map nothing).
Slot *SlotAt(int slot);

// Rewrites a slot's descriptive fields under its seqlock (the counters are kept).
class SlotWriter {
 public:
  explicit SlotWriter(int slot);
  ~SlotWriter();
  SlotWriter(const SlotWriter &) = delete;
  SlotWriter &operator=(const SlotWriter &) = delete;
  // nullptr: nothing to write.
  Slot *slot() { return slot_; }

 private:
  Slot *slot_;
};

// Around fork (pthread_atfork order): no thread holds the registry's mutex across it. In the
// child the registry becomes a copy of the parent's (same slots, its own pid), so the parent's
// counters are no longer touched by the child.
void BeforeFork();
void AfterFork(bool in_child);

// For tests: the registry's descriptor in this process, or -1 before first use.
int RegistryFdForTesting();

}  // namespace loopfast::stat

#endif  // LOOPFAST_STAT_REGISTRY_H_
