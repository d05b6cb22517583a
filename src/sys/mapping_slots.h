// Places the small, always-touched part of each fast connection's shared memory (its header
// and the rings' first windows) side by side in reserved address space, so that neighbouring
// connections share page-table pages: one 4 KiB page table maps ~15 connections' slots,
// instead of one per connection wherever mmap would put each mapping. Setting up and freeing
// that page table was a tenth of a fast connection's cost on machines where page-table
// updates trap to a hypervisor (docs/performance.md).
//
// The reservation is PROT_NONE, MAP_NORESERVE anonymous memory, made in chunks on first use:
// it costs address space, no memory. A mapping is placed over a free slot with MAP_FIXED; an
// unmapping puts the reservation back over it. When no slot is free or no chunk can be
// reserved (a low `ulimit -v`), MapShared falls back to a plain mmap.
//
// Thread rules: any thread; lock-free. A forked child inherits the reservation, the slots and
// their state together with the mappings.
#ifndef LOOPFAST_SYS_MAPPING_SLOTS_H_
#define LOOPFAST_SYS_MAPPING_SLOTS_H_

#include <cstddef>
#include <cstdint>

namespace loopfast::sys {

// The largest mapping a slot takes.
inline constexpr size_t kMappingSlotBytes = size_t{132} * 1024;

// Maps `bytes` of `fd` from offset 0, shared, read-write: in a slot when `bytes` fits one.
// Returns MAP_FAILED with errno set when it cannot be mapped at all.
[[nodiscard]] void *MapShared(int fd, size_t bytes);
// Undoes MapShared (the same `bytes`). Keeps errno.
void UnmapShared(void *address, size_t bytes);
// For tests: whether `address` lies in a slot.
bool InSlot(const void *address);

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_MAPPING_SLOTS_H_
