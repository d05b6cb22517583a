// The SPSC byte ring (ring.h): its windows and areas, growth, and the gather and scatter copies
// between a caller's iovecs and the ring's memory.
#include "ring/ring.h"

#include <time.h>

#include <algorithm>
#include <cstring>

#include "base/iovec_cursor.h"

namespace loopfast {
namespace {

// Each growth multiplies the window by this: a stream reaches a large window after a few
// full rings, while request/response traffic never leaves the first one.
constexpr uint32_t kWindowGrowth = 4;
// A write of at least window / kLargeWriteFraction bytes counts as streaming.
constexpr uint32_t kLargeWriteFraction = 16;

}  // namespace

bool SpscRing::ValidCapacity(uint64_t capacity) {
  return capacity >= kMinCapacity && capacity <= kMaxCapacity && (capacity & (capacity - 1)) == 0;
}

uint64_t EncodeMapping(RingMapping mapping) {
  return uint64_t{mapping.shift} |
         (uint64_t(static_cast<unsigned>(__builtin_ctz(mapping.window))) << 32);
}

void SpscRing::Initialize(RingControl *control, uint32_t initial_window) {
  control->head.store(0, std::memory_order_relaxed);
  control->producer_waiting.store(0, std::memory_order_relaxed);
  control->data_wake_ns.store(0, std::memory_order_relaxed);
  control->mapping.store(EncodeMapping({initial_window, 0}), std::memory_order_relaxed);
  control->guard_until.store(0, std::memory_order_relaxed);
  control->guard_bytes.store(0, std::memory_order_relaxed);
  control->reserved2 = 0;
  control->area_offset[0].store(0, std::memory_order_relaxed);
  control->area_offset[1].store(0, std::memory_order_relaxed);
  control->ready_ns.store(0, std::memory_order_relaxed);
  control->tail.store(0, std::memory_order_relaxed);
  control->consumer_waiting.store(0, std::memory_order_relaxed);
  control->stamps_wanted.store(0, std::memory_order_relaxed);
  control->room_wake_ns.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

SpscRing::SpscRing(RingControl *control, uint8_t *data, uint32_t capacity)
    : control_(control), capacity_(capacity) {
  areas_[0] = {data, capacity};
  cached_tail_ = control_->tail.load(std::memory_order_acquire);
}

SpscRing::SpscRing(RingControl *control, const Area *areas, int area_count)
    : control_(control), area_count_(std::clamp(area_count, 1, kMaxAreas)) {
  for (int i = 0; i < area_count_; ++i) areas_[i] = areas[i];
  capacity_ = areas_[area_count_ - 1].bytes;
  cached_tail_ = control_->tail.load(std::memory_order_acquire);
}

SpscRing::SpscRing(RingControl *control, Area first, AreaSource *source, uint32_t capacity)
    : control_(control), area_count_(kMaxAreas), capacity_(capacity), source_(source) {
  areas_[0] = first;
  cached_tail_ = control_->tail.load(std::memory_order_acquire);
}

void SpscRing::SetCapacity(uint32_t capacity) {
  if (capacity == capacity_ || !ValidCapacity(capacity)) return;
  // A large area already made cannot hold a larger window.
  if (areas_[2].data != nullptr) capacity = std::min(capacity, areas_[2].bytes);
  // Nor does a window shrink: the bytes in it stay (as kernel TCP keeps what it queued).
  const RingMapping mapping = Mapping();
  if (mapping.window != 0) capacity = std::max(capacity, mapping.window);
  capacity_ = capacity;
}

uint8_t *SpscRing::SourcedData(uint32_t window) const {
  if (window <= areas_[0].bytes) return areas_[0].data;
  const int area = window <= source_->medium_bytes() ? 1 : 2;
  Area &known = areas_[area];
  if (known.data != nullptr && window <= known.bytes) return known.data;
  if (producer_) {
    // A producer uses only what its own side made, never an offset read back from the peer.
    uint32_t bytes = 0;
    uint8_t *data = source_->Existing(area, &bytes);
    if (data == nullptr || window > bytes) return nullptr;
    known = {data, bytes};
    return data;
  }
  // Consumer: the producer published where it put the area; check it once per window size.
  const uint64_t offset = control_->area_offset[area - 1].load(std::memory_order_acquire);
  uint8_t *data = source_->Resolve(offset, window);
  if (data != nullptr) known = {data, window};
  return data;
}

bool SpscRing::PrepareArea(uint32_t window) {
  producer_ = true;
  if (source_ == nullptr || window <= areas_[0].bytes) return true;
  const int area = window <= source_->medium_bytes() ? 1 : 2;
  if (areas_[area].data == nullptr) {
    uint32_t existing = 0;
    if (uint8_t *data = source_->Existing(area, &existing)) areas_[area] = {data, existing};
  }
  if (areas_[area].data != nullptr) return window <= areas_[area].bytes;
  const uint32_t bytes = area == 1 ? std::min(source_->medium_bytes(), capacity_)
                                   : std::max(capacity_, large_area_bytes_);
  uint64_t offset = 0;
  uint8_t *data = source_->Allocate(area, bytes, &offset);
  if (data == nullptr) return false;
  // Release: the consumer reads it after the mapping that first uses the area (seq_cst).
  control_->area_offset[area - 1].store(offset, std::memory_order_release);
  areas_[area] = {data, bytes};
  return true;
}

uint64_t SpscRing::FillLevel() const {
  const uint64_t tail = control_->tail.load(std::memory_order_acquire);
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  return std::min<uint64_t>(head - tail, capacity_);
}

RingMapping SpscRing::Mapping() const {
  // Acquire pairs with Grow's release: bytes it moved are in place before the new mapping.
  const uint64_t raw = control_->mapping.load(std::memory_order_acquire);
  const uint64_t log2_window = raw >> 32;
  if (log2_window > 30) return {};
  RingMapping mapping;
  mapping.window = uint32_t{1} << log2_window;
  mapping.shift = static_cast<uint32_t>(raw);
  if (mapping.window < kMinWindow || mapping.window > capacity_ ||
      mapping.shift >= mapping.window) {
    return {};
  }
  return mapping;
}

bool SpscRing::HasRoom() const {
  const RingMapping mapping = Mapping();
  if (mapping.window == 0) return true;  // corrupt: a write reports it at once
  // A smaller window than the capacity grows on the next write.
  if (mapping.window < capacity_) return true;
  const uint64_t tail = control_->tail.load(std::memory_order_acquire);
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  return FreeBytes(mapping, head, tail) != 0;
}

int64_t SpscRing::FreeBytes(const RingMapping &mapping, uint64_t head, uint64_t tail) const {
  const uint64_t used = head - tail;
  if (used > mapping.window) return -1;  // the peer wrote nonsense (positions wrap modulo 2^64)
  uint64_t room = mapping.window - used;
  if (GuardHolds(tail)) {
    // Stop at the end of the window: the moved bytes' old place comes right after it.
    const auto offset = static_cast<uint32_t>((head + mapping.shift) & (mapping.window - 1));
    room = offset == 0 ? 0 : std::min<uint64_t>(room, mapping.window - offset);
  }
  return static_cast<int64_t>(room);
}

bool SpscRing::GuardHolds(uint64_t tail) const {
  return control_->guard_bytes.load(std::memory_order_relaxed) != 0 &&
         static_cast<int64_t>(tail - control_->guard_until.load(std::memory_order_relaxed)) < 0;
}

int64_t SpscRing::Room(const RingMapping &mapping, size_t wanted) {
  const uint64_t head = control_->head.load(std::memory_order_relaxed);  // ours
  const uint64_t used = head - cached_tail_;
  const bool guarded = control_->guard_bytes.load(std::memory_order_relaxed) != 0;
  if (used > mapping.window || mapping.window - used < wanted || guarded) {
    // Acquire pairs with the consumer's release of tail: its reads of the freed bytes are done.
    cached_tail_ = control_->tail.load(std::memory_order_acquire);
  }
  if (guarded && !GuardHolds(cached_tail_)) {
    control_->guard_bytes.store(0, std::memory_order_relaxed);  // read past the old window
  }
  return FreeBytes(mapping, head, cached_tail_);
}

bool SpscRing::Grow(RingMapping *mapping) {
  const uint64_t head = control_->head.load(std::memory_order_relaxed);  // ours
  cached_tail_ = control_->tail.load(std::memory_order_acquire);
  const uint64_t unread = head - cached_tail_;
  const uint32_t old_window = mapping->window;
  if (unread > old_window) return false;
  const auto start = static_cast<uint32_t>((cached_tail_ + mapping->shift) & (old_window - 1));
  const uint32_t window = NextWindow(old_window);
  uint8_t *const from = DataFor(old_window);
  uint8_t *const to = DataFor(window);
  if (from == nullptr || to == nullptr) return false;
  if (from != to) {
    // Into another area: every unread byte is copied to the same offsets there, the wrapped
    // part to just past the old window (the new one is at least twice as large). Nothing is
    // written to the old area again, so it needs no guard.
    const auto first = static_cast<uint32_t>(std::min<uint64_t>(unread, old_window - start));
    std::memcpy(to + start, from + start, first);
    std::memcpy(to + old_window, from, static_cast<size_t>(unread - first));
    control_->guard_bytes.store(0, std::memory_order_relaxed);
  } else if (start + unread > old_window) {
    // The unread bytes wrapped: the part at the start goes to just past the old window, where
    // no reader with the old window looks. Its old place stays as it is for such a reader.
    const auto wrapped = static_cast<uint32_t>(start + unread - old_window);
    std::memcpy(to + old_window, to, wrapped);
    control_->guard_until.store(head, std::memory_order_relaxed);
    control_->guard_bytes.store(wrapped, std::memory_order_relaxed);
  }
  // The unread bytes keep their offsets: position tail now maps to `start` again.
  const RingMapping grown = {window, static_cast<uint32_t>((start - cached_tail_) & (window - 1))};
  // Release: the moved bytes are in place first. (Sequentially consistent: also visible
  // before any later byte written with it.)
  control_->mapping.store(EncodeMapping(grown), std::memory_order_seq_cst);
  *mapping = grown;
  queued_bytes_ = 0;
  return true;
}

uint32_t SpscRing::NextWindow(uint32_t window) const {
  return static_cast<uint32_t>(std::min<uint64_t>(uint64_t{window} * kWindowGrowth, capacity_));
}

bool SpscRing::WantsGrowth(uint32_t window, size_t room, size_t wanted) {
  // The window is too small for this write...
  if (room < wanted) return true;
  // ...or a stream keeps it busy: large writes that queue behind unread bytes. Such a ring
  // streams much faster once it outgrows the core's cache (docs/performance.md). Small
  // writes never look, so request/response traffic pays nothing here.
  if (wanted < window / kLargeWriteFraction) return false;
  const uint64_t head = control_->head.load(std::memory_order_relaxed);  // ours
  cached_tail_ = control_->tail.load(std::memory_order_acquire);
  if (head == cached_tail_) return false;
  queued_bytes_ += wanted;
  if (queued_bytes_ < window) return false;
  queued_bytes_ = 0;
  return true;
}

int64_t SpscRing::WritableBytes() {
  const RingMapping mapping = Mapping();
  if (mapping.window == 0) return -1;
  const int64_t room = Room(mapping, SIZE_MAX);
  // With a window below the capacity, a write grows it first: there is room.
  if (room == 0 && mapping.window < capacity_) return 1;
  return room;
}

int64_t SpscRing::Write(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max) {
  RingMapping mapping = Mapping();
  if (mapping.window == 0) return -1;
  int64_t room = Room(mapping, max);
  if (room < 0) return room;
  if (mapping.window < capacity_ && WantsGrowth(mapping.window, static_cast<size_t>(room), max)) {
    if (PrepareArea(NextWindow(mapping.window))) {
      if (!Grow(&mapping)) return -1;
      room = Room(mapping, max);
      if (room < 0) return room;
    } else {
      capacity_ = mapping.window;  // no memory for a larger one: this is the ring's size now
    }
  }
  if (room == 0) return 0;
  const uint64_t head = control_->head.load(std::memory_order_relaxed);
  const uint32_t window = mapping.window;
  const uint32_t mask = window - 1;
  producer_ = true;
  uint8_t *const data = DataFor(window);
  if (data == nullptr) return -1;
  size_t written = 0;
  IovecCursor source(iov, iov_count, iov_skip);
  source.Walk(
      std::min<size_t>(max, static_cast<size_t>(room)), [&](const uint8_t *src, size_t len) {
        while (len > 0) {
          const auto offset = static_cast<uint32_t>((head + written + mapping.shift) & mask);
          const size_t chunk = std::min<size_t>(len, window - offset);
          std::memcpy(data + offset, src, chunk);
          src += chunk;
          len -= chunk;
          written += chunk;
        }
      });
  if (written == 0) return 0;
  // The ring was empty (the consumer has read up to our head) and its consumer orders by time:
  // these bytes make it readable now. The consumer's line is read right after this write
  // anyway (its waiting word).
  if (control_->stamps_wanted.load(std::memory_order_relaxed) != 0 &&
      (head == cached_tail_ ||
       head == (cached_tail_ = control_->tail.load(std::memory_order_acquire)))) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    control_->ready_ns.store(uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec),
                             std::memory_order_relaxed);
  }
  // Release: the bytes above (and the stamp) become visible before the new head.
  control_->head.store(head + written, std::memory_order_release);
  return static_cast<int64_t>(written);
}

size_t SpscRing::UnreadSpan(uint64_t from, const uint8_t **bytes) const {
  const RingMapping mapping = Mapping();
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  const uint64_t tail = control_->tail.load(std::memory_order_acquire);
  if (mapping.window == 0 || head - tail > mapping.window || from - tail >= head - tail) return 0;
  const auto offset = static_cast<uint32_t>((from + mapping.shift) & (mapping.window - 1));
  const uint8_t *data = DataFor(mapping.window);
  if (data == nullptr) return 0;
  *bytes = data + offset;
  return static_cast<size_t>(std::min<uint64_t>(head - from, mapping.window - offset));
}

int64_t SpscRing::Write(const void *data, size_t size) {
  struct iovec iov = {const_cast<void *>(data), size};
  return Write(&iov, 1, 0, size);
}

int64_t SpscRing::ReadableBytes() {
  RingMapping mapping;
  return Readable(&mapping);
}

int64_t SpscRing::Readable(RingMapping *mapping) {
  const uint64_t tail = control_->tail.load(std::memory_order_relaxed);  // ours
  // Acquire pairs with the producer's release of head: the bytes, and a mapping at least as
  // new as the one they were placed with, are there to read.
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  *mapping = Mapping();
  // A corrupt mapping or position: the peer wrote nonsense (positions wrap modulo 2^64).
  if (mapping->window == 0 || head - tail > mapping->window) return -1;
  return static_cast<int64_t>(head - tail);
}

int64_t SpscRing::Read(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max,
                       bool peek) {
  RingMapping mapping;
  const int64_t readable = Readable(&mapping);
  if (readable <= 0) return readable;
  const uint32_t window = mapping.window;
  const uint32_t mask = window - 1;
  const uint8_t *const data = DataFor(window);
  if (data == nullptr) return -1;
  const uint64_t tail = control_->tail.load(std::memory_order_relaxed);
  size_t copied = 0;
  IovecCursor destination(iov, iov_count, iov_skip);
  destination.Walk(
      std::min<size_t>(max, static_cast<size_t>(readable)), [&](uint8_t *dst, size_t len) {
        while (len > 0) {
          const auto offset = static_cast<uint32_t>((tail + copied + mapping.shift) & mask);
          const size_t chunk = std::min<size_t>(len, window - offset);
          std::memcpy(dst, data + offset, chunk);
          dst += chunk;
          len -= chunk;
          copied += chunk;
        }
      });
  // Release: our reads of the bytes finish before the producer may overwrite them.
  if (!peek && copied > 0) control_->tail.store(tail + copied, std::memory_order_release);
  return static_cast<int64_t>(copied);
}

int64_t SpscRing::Read(void *data, size_t size, bool peek) {
  struct iovec iov = {data, size};
  return Read(&iov, 1, 0, size, peek);
}

}  // namespace loopfast
