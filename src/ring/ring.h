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
// connection that never needs much buffer touches (and so costs) only a little memory. Byte
// position p lives at offset (p + shift) mod window. When a write finds the window too small,
// or large writes keep queueing behind unread bytes (a stream), the producer enlarges the
// window at once, even with unread bytes in it (a reader that never reads must not cap the
// buffer below what kernel TCP would take): it picks the new shift so that the unread bytes
// keep their offsets, after copying the part that had wrapped to just past the old window.
// Until the consumer has read past every byte of the old window, the producer leaves that
// wrapped part's old place alone, so a consumer still reading with the old window reads
// intact bytes.
//
// A ring may also keep its smaller windows in *areas* of their own, apart from the area of its
// full capacity: each window lives in the first area large enough for it. A growth into another
// area copies every unread byte there; the old area is never written again, so a consumer still
// reading with the old window reads intact bytes. The areas are either given at construction
// (tests) or, past the first one, made by the producer when a window first needs them and found
// by the consumer through offsets the producer publishes in the control block (an AreaSource:
// sessions keep the first window in the connection's slot and larger ones in the producer's
// region of the session's memory, session/arena_layout.h).
//
// A write into an empty ring also stamps the time (the vDSO clock, no system call) once the
// consumer asks for it, so that a reader watching many rings can tell which became readable
// first.
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
  // The low 32 bits of CLOCK_MONOTONIC ns when the producer last woke a consumer asleep for
  // data: how soon the consumer's wait was answered, apart from its own wake-up, for its spin
  // policy (wait/spin_policy.h). Advisory: taken only within the wait it may end.
  std::atomic<uint32_t> data_wake_ns;
  // The window and the shift as one word (EncodeMapping), so both change at once.
  std::atomic<uint64_t> mapping;
  // After a growth that moved wrapped bytes: their old place, [0, guard_bytes), is not
  // written again until the consumer's position reaches guard_until (see above).
  std::atomic<uint64_t> guard_until;
  std::atomic<uint32_t> guard_bytes;
  uint32_t reserved2;
  // Where the producer placed its areas 1 and 2 (AreaSource), published before the first
  // mapping that uses them; meaningless without an AreaSource.
  std::atomic<uint64_t> area_offset[2];
  // CLOCK_MONOTONIC time of the last write that found the ring empty while the consumer wanted
  // stamps (below): when its input became ready, for the order in which epoll_wait reports
  // sockets (socket/ready_queue.h). Advisory: only used to order, never trusted further.
  std::atomic<uint64_t> ready_ns;
  // Consumer's line: written by the consumer, read by the producer.
  alignas(kCacheLine) std::atomic<uint64_t> tail;
  std::atomic<uint32_t> consumer_waiting;  // consumer is (about to be) asleep for data
  // Nonzero once the consumer orders its readiness reports by time (an epoll set watches it):
  // the producer stamps ready_ns from then on. Readers that never use epoll cost no clock.
  std::atomic<uint32_t> stamps_wanted;
  // As data_wake_ns, when the consumer last woke a producer asleep for room.
  std::atomic<uint32_t> room_wake_ns;
  uint8_t pad1[kCacheLine - 20];
};
static_assert(sizeof(RingControl) == 2 * kCacheLine);
static_assert(offsetof(RingControl, head) == 0);
static_assert(offsetof(RingControl, producer_waiting) == 8);
static_assert(offsetof(RingControl, data_wake_ns) == 12);
static_assert(offsetof(RingControl, mapping) == 16);
static_assert(offsetof(RingControl, guard_until) == 24);
static_assert(offsetof(RingControl, guard_bytes) == 32);
static_assert(offsetof(RingControl, area_offset) == 40);
static_assert(offsetof(RingControl, ready_ns) == 56);
static_assert(offsetof(RingControl, tail) == kCacheLine);
static_assert(offsetof(RingControl, consumer_waiting) == kCacheLine + 8);
static_assert(offsetof(RingControl, stamps_wanted) == kCacheLine + 12);
static_assert(offsetof(RingControl, room_wake_ns) == kCacheLine + 16);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Where positions live: offset = (position + shift) mod window.
struct RingMapping {
  uint32_t window = 0;  // 0: the shared value is corrupt
  uint32_t shift = 0;
  bool operator==(const RingMapping &) const = default;
};
// Low 32 bits: shift; the next 8: log2(window).
uint64_t EncodeMapping(RingMapping mapping);

// Makes and finds a ring's areas 1 and 2 (area 0, the first window, is given). Windows up to
// `medium_bytes` live in area 1, larger ones in area 2, whose size is the ring's capacity.
class AreaSource {
 public:
  virtual ~AreaSource() = default;
  // Producer: memory for area `area` (1 or 2) of `bytes`; its offset goes to *offset, which
  // the ring publishes. Null when none is left: the window then stays as it is.
  virtual uint8_t *Allocate(int area, uint32_t bytes, uint64_t *offset) = 0;
  // Producer: the area `area` that this side already made (another process sharing this end,
  // a fork, may have made it), or null; *bytes its size.
  virtual uint8_t *Existing(int area, uint32_t *bytes) = 0;
  // Consumer: the area at `offset` (read from the producer: untrusted) holding a window of
  // `window` bytes; null when that range is not the producer's to use.
  virtual uint8_t *Resolve(uint64_t offset, uint32_t window) = 0;
  virtual uint32_t medium_bytes() const = 0;
};

class SpscRing {
 public:
  static constexpr uint32_t kMinCapacity = 4096;
  static constexpr uint32_t kMaxCapacity = 1u << 30;
  // The smallest window (a first window in a connection's slot; a capacity is never below
  // 4 KiB).
  static constexpr uint32_t kMinWindow = 256;
  static constexpr int kMaxAreas = 3;

  // True when `capacity` is a power of two within [kMinCapacity, kMaxCapacity].
  static bool ValidCapacity(uint64_t capacity);

  // Resets the control block of a new ring, which starts wrapping at `initial_window` (a power
  // of two, at least kMinWindow, no larger than the ring's capacity). Call once, before either
  // side uses it.
  static void Initialize(RingControl *control, uint32_t initial_window);

  SpscRing() = default;
  // `data` must hold `capacity` bytes; `capacity` must satisfy ValidCapacity.
  SpscRing(RingControl *control, uint8_t *data, uint32_t capacity);
  // Where windows of up to `bytes` live. Areas are given smallest first; each size is a power
  // of two of at least kMinWindow, the last one the capacity. An area may be the same memory as
  // the next one (the start of it).
  struct Area {
    uint8_t *data;
    uint32_t bytes;
  };
  SpscRing(RingControl *control, const Area *areas, int area_count);
  // Area 0 is `first`; areas 1 and 2 come from `source` (not owned). `capacity` is the largest
  // window the producer may grow to (SetCapacity may raise it); the consumer accepts windows up
  // to `capacity` too.
  SpscRing(RingControl *control, Area first, AreaSource *source, uint32_t capacity);
  // Producer: the largest window from now on (a power of two). A window never shrinks: a
  // capacity below the current window leaves the capacity at that window; one above the large
  // area already made (area 2) stops at that area.
  void SetCapacity(uint32_t capacity);
  // Producer: make area 2, when it is first needed, of `bytes` (a power of two at least the
  // capacity) rather than of the capacity, so that a later SetCapacity can grow into it (a
  // ring whose consumer's limit is not known yet).
  void ReserveLargeArea(uint32_t bytes) { large_area_bytes_ = bytes; }

  uint32_t capacity() const { return capacity_; }
  RingControl *control() const { return control_; }

  // Any thread. Bytes written but not yet read, clamped to [0, capacity].
  uint64_t FillLevel() const;
  // Any thread. The current window, or 0 if the shared value is corrupt.
  uint32_t Window() const { return Mapping().window; }
  RingMapping Mapping() const;
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
  // For a producer whose consumer is gone for good: the unread bytes from position `from`
  // (between the consumer's position and ours) that lie contiguous in memory; 0 if none or
  // corrupt. Lets the producer hand them to another transport.
  size_t UnreadSpan(uint64_t from, const uint8_t **bytes) const;

  // ---- Consumer side (one thread at a time) ----
  // Bytes ready to read; -1 if the shared positions are corrupt.
  int64_t ReadableBytes();
  // From now on the producer stamps each write into the empty ring (stamps_wanted above).
  void WantReadyStamps() {
    if (control_->stamps_wanted.load(std::memory_order_relaxed) == 0) {
      control_->stamps_wanted.store(1, std::memory_order_relaxed);
    }
  }
  // Any thread. When the producer last wrote into the empty ring (ready_ns above; 0: never).
  uint64_t ReadySinceNs() const { return control_->ready_ns.load(std::memory_order_relaxed); }
  // Copies up to `max` readable bytes into `iov`, after skipping its first `iov_skip` bytes
  // (so a caller can fill one buffer over several calls); consumes them unless `peek`.
  // Returns the bytes copied, or -1 if corrupt.
  int64_t Read(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max, bool peek);
  int64_t Read(void *data, size_t size, bool peek = false);

 private:
  // Free bytes within the mapping's window, reading the consumer's position only if the
  // cached one shows fewer than `wanted`; -1 if corrupt.
  int64_t Room(const RingMapping &mapping, size_t wanted);
  // Free bytes for positions `head` (producer) and `tail` (consumer), guard included.
  int64_t FreeBytes(const RingMapping &mapping, uint64_t head, uint64_t tail) const;
  // True while the guard of the last growth still holds for a consumer at `tail`.
  bool GuardHolds(uint64_t tail) const;
  // Consumer: readable bytes and the mapping they were placed with; -1 if corrupt.
  int64_t Readable(RingMapping *mapping);
  // The window after `window` grows (at most the capacity).
  uint32_t NextWindow(uint32_t window) const;
  // Producer: whether a write of `wanted` bytes with `room` free asks for a larger window.
  bool WantsGrowth(uint32_t window, size_t room, size_t wanted);
  // Producer: enlarges the window keeping every unread byte readable. False if corrupt.
  bool Grow(RingMapping *mapping);
  // Where the bytes of a window of this size live; null when its area cannot be had (corrupt
  // offset, or none left for a producer).
  uint8_t *DataFor(uint32_t window) const {
    if (source_ != nullptr) return SourcedData(window);
    for (int i = 0; i + 1 < area_count_; ++i) {
      if (window <= areas_[i].bytes) return areas_[i].data;
    }
    return areas_[area_count_ - 1].data;
  }
  uint8_t *SourcedData(uint32_t window) const;
  // Producer: makes sure the area for `window` exists and is published. False: none left.
  bool PrepareArea(uint32_t window);

  RingControl *control_ = nullptr;
  mutable Area areas_[kMaxAreas] = {};  // sourced areas 1 and 2 are filled in as found
  int area_count_ = 1;
  uint32_t capacity_ = 0;
  uint32_t large_area_bytes_ = 0;  // 0: the capacity (ReserveLargeArea)
  AreaSource *source_ = nullptr;
  // Set by the first producer call: a producer never reads area offsets back from the peer.
  bool producer_ = false;
  // Producer's process-local copy of the consumer's position: the consumer's cache line is
  // read only when this copy says the ring is full.
  uint64_t cached_tail_ = 0;
  // Producer's count of large writes queued behind unread bytes (see WantsGrowth).
  uint64_t queued_bytes_ = 0;
};

}  // namespace loopfast

#endif  // LOOPFAST_RING_RING_H_
