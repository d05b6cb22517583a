// Memory accounting for `loopfast bench many`: snapshots of /proc/meminfo and of the bench
// processes' PSS, the cost per connection between two of them, and waiting for the kernel's
// freed objects to settle before a snapshot.
#ifndef LOOPFAST_TOOLS_BENCH_MEMORY_H_
#define LOOPFAST_TOOLS_BENCH_MEMORY_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bench_types.h"

namespace loopfast::tool::bench {

// System-wide counters from /proc/meminfo and the bench processes' summed PSS, in KiB.
struct MemorySnapshot {
  int64_t available = 0, slab = 0, unreclaimable_slab = 0, shmem = 0, page_tables = 0;
  int64_t pss = 0, pss_shmem = 0;
  bool ok = false;
};

MemorySnapshot TakeMemorySnapshot(const std::vector<pid_t> &pids);

// KiB per connection from `before` to `after`; not measured when either snapshot failed.
MemoryCost CostPerConnection(const MemorySnapshot &before, const MemorySnapshot &after,
                             size_t connections);

// Lets freshly freed kernel objects (RCU, per-CPU caches, the previous trial's teardown) settle
// before a snapshot: at least 250 ms, then until Slab moves by less than 256 KiB in 100 ms
// (at most 3 s more).
void AwaitQuietMemory();

}  // namespace loopfast::tool::bench

#endif  // LOOPFAST_TOOLS_BENCH_MEMORY_H_
