// Carves one side's region of a session arena (arena_layout.h) into the areas its rings grow
// into. The bitmap lives in memory only that side's processes share (family memory for the
// connecting side; for the accepting side, a small memfd per session that the group's processes
// map from the depot): the peer reads the areas, never the allocator. Areas are powers of two of at
// least kRegionChunkBytes, aligned to their size.
//
// Thread rules: any thread of any process sharing the state.
#ifndef LOOPFAST_SESSION_REGION_ALLOCATOR_H_
#define LOOPFAST_SESSION_REGION_ALLOCATOR_H_

#include <atomic>
#include <cstdint>

#include "session/arena_layout.h"

namespace loopfast::session {

inline constexpr uint32_t kRegionChunks = static_cast<uint32_t>(kRegionBytes / kRegionChunkBytes);

struct RegionAllocatorState {
  std::atomic<uint64_t> used[kRegionChunks / 64];  // bit set: chunk taken
};
static_assert(sizeof(RegionAllocatorState) == kRegionChunks / 8);

class RegionAllocator {
 public:
  RegionAllocator() = default;
  // `region` is this process's mapping of the region the state describes.
  RegionAllocator(RegionAllocatorState *state, uint8_t *region) : state_(state), region_(region) {}

  // The offset of a free area of `bytes` (rounded up to a power of two of at least a chunk),
  // or -1 when none is left.
  int64_t Allocate(uint32_t bytes);
  // Gives an area back and returns its memory to the system (both sides are done with it).
  void Free(uint64_t offset, uint32_t bytes);

  static uint32_t AreaBytesFor(uint32_t bytes);
  // Bytes of the region taken now (a look at the whole map: for statistics).
  uint64_t BytesInUse() const;

 private:
  RegionAllocatorState *state_ = nullptr;
  uint8_t *region_ = nullptr;
};

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_REGION_ALLOCATOR_H_
