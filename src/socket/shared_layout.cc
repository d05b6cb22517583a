#include "socket/shared_layout.h"

#include <algorithm>
#include <cstring>

namespace loopfast {

uint64_t LayoutBytes(uint32_t capacity_c2s, uint32_t capacity_s2c) {
  return uint64_t{kHeaderBytes} + capacity_c2s + capacity_s2c;
}

void InitializeLayout(void *memory, uint32_t capacity_c2s, uint32_t capacity_s2c) {
  std::memset(memory, 0, kHeaderBytes);
  auto *header = static_cast<SharedHeader *>(memory);
  header->magic = kLayoutMagic;
  header->version = kLayoutVersion;
  header->header_bytes = kHeaderBytes;
  header->total_bytes = LayoutBytes(capacity_c2s, capacity_s2c);
  header->ring_offset[0] = kHeaderBytes;
  header->ring_offset[1] = uint64_t{kHeaderBytes} + capacity_c2s;
  header->ring_capacity[0] = capacity_c2s;
  header->ring_capacity[1] = capacity_s2c;
  header->side[0].holders.store(1, std::memory_order_relaxed);
  header->side[1].holders.store(1, std::memory_order_relaxed);
  SpscRing::Initialize(&header->ring[0], std::min(capacity_c2s, kInitialWindowBytes));
  SpscRing::Initialize(&header->ring[1], std::min(capacity_s2c, kInitialWindowBytes));
}

bool ValidateLayout(const void *memory, uint64_t mapped_bytes) {
  if (memory == nullptr || mapped_bytes < kHeaderBytes) return false;
  // Copy the fixed fields once: the peer may change them while we look.
  SharedHeader copy;
  std::memcpy(static_cast<void *>(&copy), memory, offsetof(SharedHeader, side));
  if (copy.magic != kLayoutMagic || copy.version != kLayoutVersion) return false;
  if (copy.header_bytes != kHeaderBytes || copy.total_bytes != mapped_bytes) return false;
  for (int i = 0; i < 2; ++i) {
    if (!SpscRing::ValidCapacity(copy.ring_capacity[i])) return false;
  }
  if (copy.ring_offset[0] != kHeaderBytes) return false;
  if (copy.ring_offset[1] != uint64_t{kHeaderBytes} + copy.ring_capacity[0]) return false;
  if (copy.ring_offset[1] + copy.ring_capacity[1] != mapped_bytes) return false;
  return true;
}

uint32_t RingCapacityFor(uint64_t requested_bytes) {
  uint64_t capacity = kMinRingBytes;
  while (capacity < requested_bytes && capacity < kMaxRingBytes) capacity <<= 1;
  return static_cast<uint32_t>(capacity);
}

}  // namespace loopfast
