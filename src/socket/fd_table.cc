#include "socket/fd_table.h"

namespace loopfast {

FdTable &FdTable::Instance() {
  // Never destroyed: descriptors may be used from atexit handlers and other destructors.
  static FdTable *table = new FdTable();
  return *table;
}

FdTable::Chunk *FdTable::ChunkFor(int fd, bool create) {
  if (fd < 0 || (fd >> kChunkBits) >= kMaxChunks) return nullptr;
  std::atomic<Chunk *> &entry = chunks_[fd >> kChunkBits];
  Chunk *chunk = entry.load(std::memory_order_acquire);
  if (chunk != nullptr || !create) return chunk;
  auto *fresh = new Chunk();
  if (entry.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) return fresh;
  delete fresh;
  return chunk;
}

std::shared_ptr<Socket> FdTable::Get(int fd) const {
  if (fd < 0 || (fd >> kChunkBits) >= kMaxChunks) return nullptr;
  Chunk *chunk = chunks_[fd >> kChunkBits].load(std::memory_order_acquire);
  if (chunk == nullptr) return nullptr;
  const int index = fd & (kChunkSize - 1);
  if (!chunk->tracked[index].load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> guard(mutex_);
  return chunk->slots[index];
}

void FdTable::Set(int fd, std::shared_ptr<Socket> socket) {
  Chunk *chunk = ChunkFor(fd, true);
  if (chunk == nullptr) return;
  const int index = fd & (kChunkSize - 1);
  std::shared_ptr<Socket> previous;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    previous = std::move(chunk->slots[index]);
    chunk->slots[index] = std::move(socket);
    chunk->tracked[index].store(chunk->slots[index] != nullptr, std::memory_order_release);
  }
  // `previous` is released outside the lock: its destructor may make system calls.
}

std::shared_ptr<Socket> FdTable::Remove(int fd) {
  Chunk *chunk = ChunkFor(fd, false);
  if (chunk == nullptr) return nullptr;
  const int index = fd & (kChunkSize - 1);
  if (!chunk->tracked[index].load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> guard(mutex_);
  chunk->tracked[index].store(false, std::memory_order_release);
  return std::move(chunk->slots[index]);
}

void FdTable::ForEach(
    const std::function<void(int, const std::shared_ptr<Socket> &)> &visit) const {
  for (int c = 0; c < kMaxChunks; ++c) {
    Chunk *chunk = chunks_[c].load(std::memory_order_acquire);
    if (chunk == nullptr) continue;
    for (int i = 0; i < kChunkSize; ++i) {
      if (!chunk->tracked[i].load(std::memory_order_acquire)) continue;
      std::shared_ptr<Socket> socket;
      {
        std::lock_guard<std::mutex> guard(mutex_);
        socket = chunk->slots[i];
      }
      if (socket) visit((c << kChunkBits) | i, socket);
    }
  }
}

}  // namespace loopfast
