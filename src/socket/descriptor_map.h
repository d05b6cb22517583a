// Descriptor number → shared object (a Socket, an epoll set), read on every intercepted call.
//
// A two-level array (as rdma-core's librdmacm index map, idm): a fixed array of chunk pointers,
// chunks of slots allocated on first use and freed only with the map (the process's maps never
// are). A lookup is acquire loads: the chunk pointer, the slot's `present` flag; a descriptor
// that is not in the map (files, pipes, sockets of other kinds: the common case) costs those
// two loads and nothing else. Mutation (Set, Remove, creating a chunk) is serialised by a lock
// that readers never take.
//
// Lifetime: a reader must keep the object alive while another thread closes or replaces the
// descriptor (a send blocked in one thread, close in another). Get returns a counted copy of
// the slot's shared_ptr, taken under a lock bit of that slot alone: readers of different
// descriptors share nothing (slots are a cache line apart), readers of one descriptor share
// its line as they share its reference count anyway. The bit is held for a pointer copy and
// one reference increment, never across a call; replacing an object swaps it under the bit and
// drops the old one after, so no destructor (and no system call) runs under it.
//
// Why not the alternatives:
// - std::atomic<std::shared_ptr<T>> is this same design (a lock bit in the control-block
//   word), but GCC 12's libstdc++ clears that bit with a relaxed fetch_sub after load() reads
//   the pointer: by the C++ memory model that read races with the next store() (ThreadSanitizer
//   reports it here; google/sanitizers#1558), and its bit cannot be reset after fork.
// - An intrusive count with deferred reclamation (per-thread epochs, hazard pointers) would save
//   the bit, not the reference increment a call needs to outlive a close, and needs per-thread
//   registration, its reset after fork, and care in signal handlers; the Socket and epoll set
//   are shared_ptr-owned all through the socket layer already.
// fork: a bit another thread held at fork() stays set in the child, which has no such thread;
// ResetInChild clears every bit there (the fork handler calls it first).
#ifndef LOOPFAST_SOCKET_DESCRIPTOR_MAP_H_
#define LOOPFAST_SOCKET_DESCRIPTOR_MAP_H_

#include <sched.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <new>

#include "base/cacheline.h"

namespace loopfast {

template <typename T>
class DescriptorMap {
 public:
  static constexpr int kChunkBits = 10;
  static constexpr int kChunkSize = 1 << kChunkBits;
  static constexpr int kMaxChunks = 1 << 14;  // 16M descriptors

  DescriptorMap() = default;
  DescriptorMap(const DescriptorMap &) = delete;
  DescriptorMap &operator=(const DescriptorMap &) = delete;
  ~DescriptorMap() {
    for (std::atomic<Chunk *> &entry : chunks_) delete entry.load(std::memory_order_relaxed);
  }

  // True if `fd` has an object: two acquire loads, no count taken.
  bool Has(int fd) const {
    const Slot *slot = Find(fd);
    return slot != nullptr && slot->present.load(std::memory_order_acquire);
  }

  // The object of `fd` (kept alive by the returned copy), or null.
  std::shared_ptr<T> Get(int fd) const {
    const Slot *slot = Find(fd);
    if (slot == nullptr || !slot->present.load(std::memory_order_acquire)) return nullptr;
    return Copy(*slot);
  }

  void Set(int fd, std::shared_ptr<T> object) {
    std::shared_ptr<T> previous;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      Slot *slot = Create(fd);
      if (slot == nullptr) return;
      const bool present = object != nullptr;
      previous = Exchange(*slot, std::move(object));
      slot->present.store(present, std::memory_order_release);
    }
    // `previous` is released outside the lock: its destructor may make system calls.
  }

  std::shared_ptr<T> Remove(int fd) {
    Slot *slot = const_cast<Slot *>(Find(fd));
    if (slot == nullptr || !slot->present.load(std::memory_order_acquire)) return nullptr;
    std::lock_guard<std::mutex> guard(mutex_);
    slot->present.store(false, std::memory_order_release);
    return Exchange(*slot, nullptr);
  }

  // In a child after fork(), before any other use: clears the slot bits (and the writers' lock)
  // that threads of the parent, absent here, may have held.
  void ResetInChild() {
    new (&mutex_) std::mutex();
    for (std::atomic<Chunk *> &entry : chunks_) {
      if (Chunk *chunk = entry.load(std::memory_order_relaxed)) {
        for (Slot &slot : chunk->slots) slot.busy.store(false, std::memory_order_relaxed);
      }
    }
  }

  // Calls `visit` for every descriptor with an object (fork handlers, close_range).
  void ForEach(const std::function<void(int, const std::shared_ptr<T> &)> &visit) const {
    for (int c = 0; c < kMaxChunks; ++c) {
      const Chunk *chunk = chunks_[c].load(std::memory_order_acquire);
      if (chunk == nullptr) continue;
      for (int i = 0; i < kChunkSize; ++i) {
        const Slot &slot = chunk->slots[i];
        if (!slot.present.load(std::memory_order_acquire)) continue;
        if (std::shared_ptr<T> object = Copy(slot)) {
          visit((c << kChunkBits) | i, object);
        }
      }
    }
  }

 private:
  // A cache line each, so threads on neighbouring descriptors do not contend for one line: 64 KiB
  // a chunk of 1,024 descriptors (about 50 bytes a descriptor more than packed slots).
  struct alignas(kCacheLine) Slot {
    std::atomic<bool> present{false};
    mutable std::atomic<bool> busy{false};  // held while `object` is copied or replaced
    std::shared_ptr<T> object;
  };

  static void Lock(const Slot &slot) {
    for (int spins = 0; slot.busy.exchange(true, std::memory_order_acquire);) {
      // Held for a few instructions, unless its holder was preempted: then let it run.
      while (slot.busy.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
          CpuRelax();
        } else {
          sched_yield();
        }
      }
    }
  }
  static void Unlock(const Slot &slot) { slot.busy.store(false, std::memory_order_release); }

  static std::shared_ptr<T> Copy(const Slot &slot) {
    Lock(slot);
    std::shared_ptr<T> object = slot.object;
    Unlock(slot);
    return object;
  }
  // The old object is returned to be dropped after the bit is cleared.
  static std::shared_ptr<T> Exchange(Slot &slot, std::shared_ptr<T> object) {
    Lock(slot);
    slot.object.swap(object);
    Unlock(slot);
    return object;
  }
  struct Chunk {
    Slot slots[kChunkSize];
  };

  const Slot *Find(int fd) const {
    if (fd < 0 || (fd >> kChunkBits) >= kMaxChunks) return nullptr;
    const Chunk *chunk = chunks_[fd >> kChunkBits].load(std::memory_order_acquire);
    return chunk == nullptr ? nullptr : &chunk->slots[fd & (kChunkSize - 1)];
  }

  // Caller holds mutex_.
  Slot *Create(int fd) {
    if (fd < 0 || (fd >> kChunkBits) >= kMaxChunks) return nullptr;
    std::atomic<Chunk *> &entry = chunks_[fd >> kChunkBits];
    Chunk *chunk = entry.load(std::memory_order_relaxed);
    if (chunk == nullptr) {
      chunk = new Chunk();
      entry.store(chunk, std::memory_order_release);
    }
    return &chunk->slots[fd & (kChunkSize - 1)];
  }

  std::atomic<Chunk *> chunks_[kMaxChunks] = {};
  std::mutex mutex_;  // writers only
};

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_DESCRIPTOR_MAP_H_
