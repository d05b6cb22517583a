// The implementation of family_memory.h (what it is for is said there).
#include "sys/family_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace loopfast::sys {
namespace {

constexpr size_t kChunkBytes = 64 * 1024;
constexpr size_t kCellsPerChunk = kChunkBytes / sizeof(LockCell);
constexpr size_t kBitmapWords = kCellsPerChunk / 64;
// The first cells of a chunk hold its bitmap.
constexpr size_t kBitmapCells = (kBitmapWords * 8 + sizeof(LockCell) - 1) / sizeof(LockCell);

struct Chunk {
  std::atomic<uint64_t> used[kBitmapWords];  // bit set: cell taken
};
static_assert(sizeof(Chunk) <= kBitmapCells * sizeof(LockCell));

// Chunks this process knows (a forked child inherits the list with the chunks). Never freed:
// cells may be in use by another process of the family.
struct ChunkList {
  std::mutex mutex;
  Chunk *chunks[4096] = {};
  size_t count = 0;
};
ChunkList &Chunks() {
  static auto *list = new ChunkList;  // never destroyed
  return *list;
}

LockCell *TakeCell(Chunk *chunk) {
  for (size_t w = 0; w < kBitmapWords; ++w) {
    uint64_t bits = chunk->used[w].load(std::memory_order_relaxed);
    while (bits != ~uint64_t{0}) {
      const int bit = __builtin_ctzll(~bits);
      if (chunk->used[w].compare_exchange_weak(bits, bits | (uint64_t{1} << bit),
                                               std::memory_order_acquire)) {
        auto *cell = reinterpret_cast<LockCell *>(chunk) + (w * 64 + static_cast<size_t>(bit));
        std::memset(static_cast<void *>(cell), 0, sizeof *cell);
        return cell;
      }
    }
  }
  return nullptr;
}

}  // namespace

void *MapFamilyShared(size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  bytes = (bytes + page - 1) / page * page;
  void *block = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return block == MAP_FAILED ? nullptr : block;
}

void UnmapFamilyShared(void *block, size_t bytes) {
  if (block == nullptr) return;
  const int saved_errno = errno;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  munmap(block, (bytes + page - 1) / page * page);
  errno = saved_errno;
}

LockCell *AllocateLockCell() {
  ChunkList &list = Chunks();
  std::lock_guard<std::mutex> guard(list.mutex);
  for (size_t i = list.count; i-- > 0;) {
    if (LockCell *cell = TakeCell(list.chunks[i])) return cell;
  }
  if (list.count == sizeof list.chunks / sizeof list.chunks[0]) return nullptr;
  // Aligned to its size, so that FreeLockCell finds a cell's chunk from its address.
  auto *wide = static_cast<uint8_t *>(MapFamilyShared(2 * kChunkBytes));
  if (wide == nullptr) return nullptr;
  const uintptr_t start =
      (reinterpret_cast<uintptr_t>(wide) + kChunkBytes - 1) & ~(uintptr_t{kChunkBytes} - 1);
  auto *aligned = reinterpret_cast<uint8_t *>(start);
  if (aligned > wide) munmap(wide, static_cast<size_t>(aligned - wide));
  munmap(aligned + kChunkBytes,
         static_cast<size_t>(wide + 2 * kChunkBytes - aligned) - kChunkBytes);
  auto *chunk = reinterpret_cast<Chunk *>(aligned);
  // The bitmap's own cells are never handed out.
  for (size_t c = 0; c < kBitmapCells; ++c) {
    chunk->used[c / 64].fetch_or(uint64_t{1} << (c % 64), std::memory_order_relaxed);
  }
  list.chunks[list.count++] = chunk;
  return TakeCell(chunk);
}

void FreeLockCell(LockCell *cell) {
  if (cell == nullptr) return;
  const auto address = reinterpret_cast<uintptr_t>(cell);
  auto *chunk = reinterpret_cast<Chunk *>(address & ~(uintptr_t{kChunkBytes} - 1));
  const size_t index = (address - reinterpret_cast<uintptr_t>(chunk)) / sizeof(LockCell);
  chunk->used[index / 64].fetch_and(~(uint64_t{1} << (index % 64)), std::memory_order_release);
}

}  // namespace loopfast::sys
