#include "socket/shared_layout.h"

#include <algorithm>
#include <cstring>

namespace loopfast {

Placement PlaceRings(uint32_t capacity_c2s, uint32_t capacity_s2c) {
  Placement placement{};
  placement.capacity[0] = capacity_c2s;
  placement.capacity[1] = capacity_s2c;
  uint64_t next = kHeaderBytes;
  for (int i = 0; i < 2; ++i) {
    placement.header_window_offset[i] = kHeaderWindowOffset + kHeaderWindowBytes * i;
    placement.small_offset[i] = static_cast<uint32_t>(next);
    placement.small_bytes[i] = std::min(placement.capacity[i], kInitialWindowBytes);
    next += placement.small_bytes[i];
  }
  placement.large_start = next;
  for (int i = 0; i < 2; ++i) {
    placement.large_offset[i] = placement.small_offset[i];
    if (placement.capacity[i] > placement.small_bytes[i]) {
      placement.large_offset[i] = next;
      next += placement.capacity[i];
    }
  }
  placement.total_bytes = next;
  return placement;
}

uint64_t LayoutBytes(uint32_t capacity_c2s, uint32_t capacity_s2c) {
  return PlaceRings(capacity_c2s, capacity_s2c).total_bytes;
}

void InitializeLayout(void *memory, uint32_t capacity_c2s, uint32_t capacity_s2c) {
  std::memset(memory, 0, kHeaderBytes);
  auto *header = static_cast<SharedHeader *>(memory);
  header->magic = kLayoutMagic;
  header->version = kLayoutVersion;
  header->header_bytes = kHeaderBytes;
  const Placement placement = PlaceRings(capacity_c2s, capacity_s2c);
  header->total_bytes = placement.total_bytes;
  header->ring_capacity[0] = capacity_c2s;
  header->ring_capacity[1] = capacity_s2c;
  for (int i = 0; i < 2; ++i) {
    header->large_offset[i] = placement.large_offset[i];
    header->small_offset[i] = placement.small_offset[i];
    header->small_bytes[i] = placement.small_bytes[i];
  }
  header->side[0].holders.store(1, std::memory_order_relaxed);
  header->side[1].holders.store(1, std::memory_order_relaxed);
  SpscRing::Initialize(&header->ring[0], kHeaderWindowBytes);
  SpscRing::Initialize(&header->ring[1], kHeaderWindowBytes);
}

bool ValidateLayout(const void *memory, uint64_t mapped_bytes, Placement *placement_out) {
  if (memory == nullptr || mapped_bytes < kHeaderBytes) return false;
  // Copy the fixed fields once: the peer may change them while we look.
  SharedHeader copy;
  std::memcpy(static_cast<void *>(&copy), memory, offsetof(SharedHeader, side));
  if (copy.magic != kLayoutMagic || copy.version != kLayoutVersion) return false;
  if (copy.header_bytes != kHeaderBytes || copy.total_bytes != mapped_bytes) return false;
  for (int i = 0; i < 2; ++i) {
    if (!SpscRing::ValidCapacity(copy.ring_capacity[i])) return false;
  }
  // Every offset and size must be exactly what this side would have placed.
  const Placement placement = PlaceRings(copy.ring_capacity[0], copy.ring_capacity[1]);
  if (placement.total_bytes != mapped_bytes) return false;
  for (int i = 0; i < 2; ++i) {
    if (copy.large_offset[i] != placement.large_offset[i] ||
        copy.small_offset[i] != placement.small_offset[i] ||
        copy.small_bytes[i] != placement.small_bytes[i]) {
      return false;
    }
  }
  if (placement_out != nullptr) *placement_out = placement;
  return true;
}

uint32_t RingCapacityFor(uint64_t requested_bytes) {
  uint64_t capacity = kMinRingBytes;
  while (capacity < requested_bytes && capacity < kMaxRingBytes) capacity <<= 1;
  return static_cast<uint32_t>(capacity);
}

}  // namespace loopfast
