// A bounded single-producer/single-consumer byte ring over caller-provided memory.
//
// The control block and the data live in memory the caller provides (shared memory between
// two processes, or heap memory in tests). The control block holds positions, never pointers:
// `head` counts every byte ever written and `tail` every byte ever read, as 64-bit numbers, so
// each process may map the memory at another address. Head and tail sit on their own cache
// lines. No system calls, no allocation.
//
// The peer's side of the memory is untrusted input: every position read from it is checked,
// and a position that cannot be right makes the ring report corruption instead of copying.
//
// The ring wraps at its *window*, a power of two no larger than its capacity, so that a
// connection that never needs much buffer touches (and so costs) only a little memory. When a
// write finds the window too small, or large writes keep queueing behind unread bytes (a
// stream), the producer marks growth wanted and treats the ring as full until the consumer has
// drained it; only then (ring empty) does it enlarge the window, so every byte in the ring was
// placed with the window the consumer reads.
//
// Thread rules: one producer thread and one consumer thread at a time (callers that share an
// end serialise with their own lock); any thread may read the fill level.
#ifndef LOOPFAST_RING_RING_H_
#define LOOPFAST_RING_RING_H_

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/cacheline.h"

namespace loopfast {

// Shared layout of one ring's control block. Fixed: part of the shared-memory format.
struct RingControl {
  // Producer's line: written by the producer, read by the consumer.
  alignas(kCacheLine) std::atomic<uint64_t> head;
  std::atomic<uint32_t> producer_waiting;  // producer is (about to be) asleep for space
  std::atomic<uint32_t> window;            // bytes in use: offsets are positions mod window
  std::atomic<uint32_t> grow_wanted;       // producer waits for an empty ring to grow
  uint32_t reserved0;
  uint8_t pad0[kCacheLine - 24];
  // Consumer's line: written by the consumer, read by the producer.
  alignas(kCacheLine) std::atomic<uint64_t> tail;
  std::atomic<uint32_t> consumer_waiting;  // consumer is (about to be) asleep for data
  uint32_t reserved1;
  uint8_t pad1[kCacheLine - 16];
};
static_assert(sizeof(RingControl) == 2 * kCacheLine);
static_assert(offsetof(RingControl, head) == 0);
static_assert(offsetof(RingControl, producer_waiting) == 8);
static_assert(offsetof(RingControl, window) == 12);
static_assert(offsetof(RingControl, grow_wanted) == 16);
static_assert(offsetof(RingControl, tail) == kCacheLine);
static_assert(offsetof(RingControl, consumer_waiting) == kCacheLine + 8);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

class SpscRing {
 public:
  static constexpr uint32_t kMinCapacity = 4096;
  static constexpr uint32_t kMaxCapacity = 1u << 30;

  // True when `capacity` is a power of two within [kMinCapacity, kMaxCapacity].
  static bool ValidCapacity(uint64_t capacity);

  // Resets the control block of a new ring, which starts wrapping at `initial_window` (a valid
  // capacity no larger than the ring's). Call once, before either side uses it.
  static void Initialize(RingControl *control, uint32_t initial_window);

  SpscRing() = default;
  // `data` must hold `capacity` bytes; `capacity` must satisfy ValidCapacity.
  SpscRing(RingControl *control, uint8_t *data, uint32_t capacity);

  uint32_t capacity() const { return capacity_; }
  RingControl *control() const { return control_; }

  // Any thread. Bytes written but not yet read, clamped to [0, capacity].
  uint64_t FillLevel() const;
  // Any thread. The current window, or 0 if the shared value is corrupt.
  uint32_t Window() const;
  // Any thread. True when a write would place at least one byte now.
  bool HasRoom() const;

  // ---- Producer side (one thread at a time) ----
  // Bytes that can be written now; -1 if the shared positions are corrupt.
  int64_t WritableBytes();
  // Copies up to `max` bytes gathered from `iov`, after skipping its first `iov_skip` bytes,
  // into the ring and publishes them at once. Returns the bytes written (0 when full), or -1
  // if the shared positions are corrupt.
  int64_t Write(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max);
  int64_t Write(const void *data, size_t size);

  // ---- Consumer side (one thread at a time) ----
  // Bytes ready to read; -1 if the shared positions are corrupt.
  int64_t ReadableBytes();
  // Copies up to `max` readable bytes into `iov`, after skipping its first `iov_skip` bytes
  // (so a caller can fill one buffer over several calls); consumes them unless `peek`.
  // Returns the bytes copied, or -1 if corrupt.
  int64_t Read(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max, bool peek);
  int64_t Read(void *data, size_t size, bool peek = false);

 private:
  // Free bytes within `window`, reading the consumer's position only if the cached one shows
  // fewer than `wanted`.
  int64_t Room(uint32_t window, size_t wanted);
  // Consumer: readable bytes and the window they were placed with; -1 if corrupt.
  int64_t Readable(uint32_t *window);
  // Producer: free bytes (0 while a pending growth waits for the ring to drain; -1 if
  // corrupt) and the window to write with, grown first if the ring has drained.
  int64_t Available(size_t wanted, uint32_t *window);
  bool GrowthPending(uint32_t window) const;
  // Producer: whether a write of `wanted` bytes with `room` free asks for a larger window.
  bool WantsGrowth(uint32_t window, size_t room, size_t wanted);

  RingControl *control_ = nullptr;
  uint8_t *data_ = nullptr;
  uint32_t capacity_ = 0;
  // Producer's process-local copy of the consumer's position: the consumer's cache line is
  // read only when this copy says the ring is full.
  uint64_t cached_tail_ = 0;
  // Producer's count of large writes queued behind unread bytes (see WantsGrowth).
  uint64_t queued_bytes_ = 0;
};

}  // namespace loopfast

#endif  // LOOPFAST_RING_RING_H_
