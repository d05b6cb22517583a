// Memory shared by a process and the children it forks, and by nobody else: what the threads
// and processes holding one end of a connection (or one listener) coordinate through. The peer
// never maps it, so nothing the peer writes can hold up a lock or corrupt an allocator here.
//
// MAP_SHARED | MAP_ANONYMOUS: fork shares it, exec drops it, no file names it. Small cells for
// per-connection locks come from chunks with an atomic bitmap, so processes that share a chunk
// (fork) can take and give back cells concurrently.
//
// Thread rules: any thread, any process that shares the memory.
#ifndef LOOPFAST_SYS_FAMILY_MEMORY_H_
#define LOOPFAST_SYS_FAMILY_MEMORY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace loopfast::sys {

// A zeroed block of `bytes` (rounded up to pages), or null with errno set.
[[nodiscard]] void *MapFamilyShared(size_t bytes);
void UnmapFamilyShared(void *block, size_t bytes);

// One cell: a connection end's locks, holder count, and the areas its ring's producer made,
// shared with forked children (any of which may be the one that writes next).
struct alignas(64) LockCell {
  std::atomic<uint32_t> send_lock;
  std::atomic<uint32_t> recv_lock;
  std::atomic<uint32_t> holders;  // processes holding the end (fork adds one)
  uint32_t reserved0;
  std::atomic<uint64_t> area_offset[2];  // the producer's areas 1 and 2, where bytes != 0
  std::atomic<uint32_t> area_bytes[2];
  uint8_t reserved[64 - 40];
};
static_assert(sizeof(LockCell) == 64);

// A zeroed cell, or null when no memory is left.
[[nodiscard]] LockCell *AllocateLockCell();
// Gives a cell back (from any process that shares its chunk).
void FreeLockCell(LockCell *cell);

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_FAMILY_MEMORY_H_
