#include "session/arena_layout.h"

#include <cstring>

namespace loopfast::session {

uint8_t *ArenaView::Area(int side, uint64_t offset, uint64_t bytes) const {
  // Both bounds are checked without overflow: offset and bytes are the peer's numbers.
  if (base_ == nullptr || bytes == 0 || offset >= kRegionBytes || bytes > kRegionBytes - offset) {
    return nullptr;
  }
  return base_ + RegionOffsetOf(side) + offset;
}

void InitializeArena(void *memory, uint64_t nonce, uint32_t client_pid) {
  auto *header = static_cast<ArenaHeader *>(memory);
  header->magic = kArenaMagic;
  header->version = kArenaVersion;
  header->total_bytes = kArenaBytes;
  header->max_slots = kMaxSlots;
  header->slot_bytes = kSlotBytes;
  header->region_bytes = kRegionBytes;
  header->client_pid = client_pid;
  header->nonce = nonce;
}

bool ValidateArena(const void *memory, uint64_t mapped_bytes) {
  if (memory == nullptr || mapped_bytes != kArenaBytes) return false;
  // Copy once: the peer may change the header while we look.
  ArenaHeader copy;
  std::memcpy(&copy, memory, sizeof copy);
  return copy.magic == kArenaMagic && copy.version == kArenaVersion &&
         copy.total_bytes == kArenaBytes && copy.max_slots == kMaxSlots &&
         copy.slot_bytes == kSlotBytes && copy.region_bytes == kRegionBytes;
}

uint32_t RingLimitFor(uint64_t requested_bytes) {
  uint64_t limit = kMinRingBytes;
  while (limit < requested_bytes && limit < kMaxRingBytes) limit <<= 1;
  return static_cast<uint32_t>(limit);
}

}  // namespace loopfast::session
