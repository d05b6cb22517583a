// The implementation of arena_layout.h (what it is for is said there).
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

ClaimFound FindClaim(const ArenaView &arena, uint64_t socket_cookie, uint32_t *slot_out) {
  if (socket_cookie == 0) return ClaimFound::kNone;
  const uint32_t home = ClaimHome(socket_cookie);
  for (uint32_t probe = 0; probe < kMaxClaimProbes; ++probe) {
    const ClaimEntry &entry = arena.claims()[(home + probe) & (kClaimEntries - 1)];
    if (entry.socket_cookie.load(std::memory_order_acquire) != socket_cookie) continue;
    const uint32_t index = entry.slot.load(std::memory_order_relaxed);
    if (index >= kMaxSlots) continue;  // the client wrote nonsense
    const Slot *slot = arena.slot(index);
    if (slot->header.socket_cookie.load(std::memory_order_acquire) != socket_cookie) continue;
    const uint32_t state = slot->header.state.load(std::memory_order_acquire);
    if (state == kSlotClaimed || state == kSlotConnected || state == kSlotDeclined) {
      *slot_out = index;
      return state == kSlotDeclined ? ClaimFound::kDeclined : ClaimFound::kClaimed;
    }
  }
  return ClaimFound::kNone;
}

uint32_t RingLimitFor(uint64_t requested_bytes) {
  uint64_t limit = kMinRingBytes;
  while (limit < requested_bytes && limit < kMaxRingBytes) limit <<= 1;
  return static_cast<uint32_t>(limit);
}

}  // namespace loopfast::session
