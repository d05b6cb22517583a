#include "sys/mapping_slots.h"

#include <sys/mman.h>

#include <atomic>
#include <cerrno>

namespace loopfast::sys {
namespace {

constexpr unsigned kSlotsPerChunk = 512;  // 66 MiB of address space per chunk
constexpr unsigned kWordsPerChunk = kSlotsPerChunk / 64;
constexpr unsigned kMaxChunks = 256;  // 131,072 slots
constexpr size_t kChunkBytes = size_t{kSlotsPerChunk} * kMappingSlotBytes;

struct Chunk {
  uint8_t *base = nullptr;
  std::atomic<uint64_t> used[kWordsPerChunk] = {};
};

Chunk chunks[kMaxChunks];
// Chunks [0, chunk_count) have their base set; a chunk is added by whoever CASes `reserving`.
std::atomic<unsigned> chunk_count{0};
std::atomic<bool> reserving{false};
std::atomic<bool> reservation_failed{false};

constexpr int kReserveFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

// Takes a free slot of `chunk`, or returns -1.
int TakeSlot(Chunk &chunk) {
  for (unsigned w = 0; w < kWordsPerChunk; ++w) {
    uint64_t word = chunk.used[w].load(std::memory_order_relaxed);
    while (word != ~uint64_t{0}) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctzll(~word));
      if (chunk.used[w].compare_exchange_weak(word, word | (uint64_t{1} << bit),
                                              std::memory_order_acquire)) {
        return static_cast<int>(w * 64 + bit);
      }
    }
  }
  return -1;
}

// Adds one chunk; false when none can be reserved (or all are).
bool AddChunk(unsigned seen_count) {
  if (reservation_failed.load(std::memory_order_relaxed)) return false;
  bool expected = false;
  if (!reserving.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
    // Another thread is adding one (or was, when this process forked from it): this mapping
    // goes elsewhere rather than wait.
    return false;
  }
  bool added = false;
  const unsigned count = chunk_count.load(std::memory_order_acquire);
  if (count != seen_count) {
    added = true;  // one was added meanwhile
  } else if (count < kMaxChunks) {
    void *base = mmap(nullptr, kChunkBytes, PROT_NONE, kReserveFlags, -1, 0);
    if (base != MAP_FAILED) {
      chunks[count].base = static_cast<uint8_t *>(base);
      chunk_count.store(count + 1, std::memory_order_release);
      added = true;
    } else {
      reservation_failed.store(true, std::memory_order_relaxed);
    }
  }
  reserving.store(false, std::memory_order_release);
  return added;
}

// The chunk and slot index of `address`, or false.
bool Locate(const void *address, unsigned *chunk_index, unsigned *slot) {
  const auto *byte = static_cast<const uint8_t *>(address);
  const unsigned count = chunk_count.load(std::memory_order_acquire);
  for (unsigned c = 0; c < count; ++c) {
    const uint8_t *base = chunks[c].base;
    if (byte >= base && byte < base + kChunkBytes) {
      const size_t offset = static_cast<size_t>(byte - base);
      if (offset % kMappingSlotBytes != 0) return false;
      *chunk_index = c;
      *slot = static_cast<unsigned>(offset / kMappingSlotBytes);
      return true;
    }
  }
  return false;
}

void Release(unsigned chunk_index, unsigned slot) {
  chunks[chunk_index].used[slot / 64].fetch_and(~(uint64_t{1} << (slot % 64)),
                                                std::memory_order_release);
}

}  // namespace

void *MapShared(int fd, size_t bytes) {
  if (bytes > kMappingSlotBytes) {
    return mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  for (;;) {
    // Lowest chunk and slot first: in-use slots stay packed, so they share page tables.
    const unsigned count = chunk_count.load(std::memory_order_acquire);
    for (unsigned c = 0; c < count; ++c) {
      const int slot = TakeSlot(chunks[c]);
      if (slot < 0) continue;
      uint8_t *address = chunks[c].base + static_cast<size_t>(slot) * kMappingSlotBytes;
      void *mapped = mmap(address, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
      if (mapped == MAP_FAILED) {
        const int error = errno;
        Release(c, static_cast<unsigned>(slot));
        errno = error;
      }
      return mapped;
    }
    if (!AddChunk(count)) break;
  }
  return mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

void UnmapShared(void *address, size_t bytes) {
  const int saved_errno = errno;
  unsigned chunk_index = 0, slot = 0;
  if (bytes <= kMappingSlotBytes && Locate(address, &chunk_index, &slot)) {
    // Back to reserved address space; only then may another mapping take the slot.
    if (mmap(address, bytes, PROT_NONE, kReserveFlags | MAP_FIXED, -1, 0) != MAP_FAILED) {
      Release(chunk_index, slot);
    } else {
      munmap(address, bytes);  // the slot stays taken: nothing else may land on it unseen
    }
  } else {
    munmap(address, bytes);
  }
  errno = saved_errno;
}

bool InSlot(const void *address) {
  unsigned chunk_index = 0, slot = 0;
  return Locate(address, &chunk_index, &slot);
}

}  // namespace loopfast::sys
