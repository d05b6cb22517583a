// The implementation of region_allocator.h (what it is for is said there).
#include "session/region_allocator.h"

#include <sys/mman.h>

#include <cerrno>

namespace loopfast::session {
namespace {

constexpr uint32_t kWords = kRegionChunks / 64;

uint64_t RunMask(uint32_t chunks, uint32_t first_bit) {
  const uint64_t run = chunks >= 64 ? ~uint64_t{0} : ((uint64_t{1} << chunks) - 1);
  return run << first_bit;
}

}  // namespace

uint32_t RegionAllocator::AreaBytesFor(uint32_t bytes) {
  uint32_t area = kRegionChunkBytes;
  while (area < bytes && area < (1u << 30)) area <<= 1;
  return area;
}

int64_t RegionAllocator::Allocate(uint32_t bytes) {
  if (state_ == nullptr) return -1;
  const uint32_t chunks = AreaBytesFor(bytes) / kRegionChunkBytes;
  if (chunks > kRegionChunks) return -1;
  if (chunks <= 64) {
    for (uint32_t w = 0; w < kWords; ++w) {
      uint64_t bits = state_->used[w].load(std::memory_order_relaxed);
      for (uint32_t first = 0; first < 64; first += chunks) {
        const uint64_t mask = RunMask(chunks, first);
        while ((bits & mask) == 0) {
          if (state_->used[w].compare_exchange_weak(bits, bits | mask, std::memory_order_acquire)) {
            return int64_t{w * 64 + first} * kRegionChunkBytes;
          }
        }
      }
    }
    return -1;
  }
  // Whole words: take each of an aligned group, giving back what was taken on a clash.
  const uint32_t words = chunks / 64;
  for (uint32_t w = 0; w + words <= kWords; w += words) {
    uint32_t taken = 0;
    for (; taken < words; ++taken) {
      uint64_t expected = 0;
      if (!state_->used[w + taken].compare_exchange_strong(expected, ~uint64_t{0},
                                                           std::memory_order_acquire)) {
        break;
      }
    }
    if (taken == words) return int64_t{w} * 64 * kRegionChunkBytes;
    while (taken-- > 0) state_->used[w + taken].store(0, std::memory_order_release);
  }
  return -1;
}

void RegionAllocator::Free(uint64_t offset, uint32_t bytes) {
  if (state_ == nullptr || offset % kRegionChunkBytes != 0 || offset >= kRegionBytes) return;
  const uint32_t area = AreaBytesFor(bytes);
  if (area > kRegionBytes - offset) return;
  if (region_ != nullptr) {
    // The pages go back to the system: an idle session costs only what its slots touched.
    const int saved_errno = errno;
    madvise(region_ + offset, area, MADV_REMOVE);
    errno = saved_errno;
  }
  const uint32_t chunks = area / kRegionChunkBytes;
  const auto first = static_cast<uint32_t>(offset / kRegionChunkBytes);
  if (chunks <= 64) {
    state_->used[first / 64].fetch_and(~RunMask(chunks, first % 64), std::memory_order_release);
    return;
  }
  for (uint32_t w = first / 64; w < (first + chunks) / 64; ++w) {
    state_->used[w].store(0, std::memory_order_release);
  }
}

uint64_t RegionAllocator::BytesInUse() const {
  if (state_ == nullptr) return 0;
  uint64_t chunks = 0;
  for (const auto &word : state_->used) {
    chunks += static_cast<uint64_t>(__builtin_popcountll(word.load(std::memory_order_relaxed)));
  }
  return chunks * kRegionChunkBytes;
}

}  // namespace loopfast::session
