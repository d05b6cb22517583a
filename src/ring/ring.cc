#include "ring/ring.h"

#include <algorithm>
#include <cstring>

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

void SpscRing::Initialize(RingControl *control, uint32_t initial_window) {
  control->head.store(0, std::memory_order_relaxed);
  control->producer_waiting.store(0, std::memory_order_relaxed);
  control->window.store(initial_window, std::memory_order_relaxed);
  control->grow_wanted.store(0, std::memory_order_relaxed);
  control->tail.store(0, std::memory_order_relaxed);
  control->consumer_waiting.store(0, std::memory_order_relaxed);
  control->reserved1 = 0;
  std::atomic_thread_fence(std::memory_order_release);
}

SpscRing::SpscRing(RingControl *control, uint8_t *data, uint32_t capacity)
    : control_(control), data_(data), capacity_(capacity) {
  cached_tail_ = control_->tail.load(std::memory_order_acquire);
}

uint64_t SpscRing::FillLevel() const {
  const uint64_t tail = control_->tail.load(std::memory_order_acquire);
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  return std::min<uint64_t>(head - tail, capacity_);
}

uint32_t SpscRing::Window() const {
  const uint32_t window = control_->window.load(std::memory_order_relaxed);
  return ValidCapacity(window) && window <= capacity_ ? window : 0;
}

bool SpscRing::GrowthPending(uint32_t window) const {
  return window < capacity_ && control_->grow_wanted.load(std::memory_order_relaxed) != 0;
}

bool SpscRing::HasRoom() const {
  const uint32_t window = Window();
  if (window == 0) return true;  // corrupt: a write reports it at once
  const uint64_t fill = FillLevel();
  return GrowthPending(window) ? fill == 0 : fill < window;
}

int64_t SpscRing::Room(uint32_t window, size_t wanted) {
  const uint64_t head = control_->head.load(std::memory_order_relaxed);  // ours
  uint64_t used = head - cached_tail_;
  if (used > window || window - used < wanted) {
    // Acquire pairs with the consumer's release of tail: its reads of the freed bytes are done.
    cached_tail_ = control_->tail.load(std::memory_order_acquire);
    used = head - cached_tail_;
  }
  if (used > window) return -1;  // the peer wrote nonsense (positions wrap modulo 2^64)
  return static_cast<int64_t>(window - used);
}

int64_t SpscRing::Available(size_t wanted, uint32_t *window_out) {
  uint32_t window = Window();
  *window_out = window;
  if (window == 0) return -1;
  if (!GrowthPending(window)) return Room(window, wanted);
  const int64_t room = Room(window, SIZE_MAX);                           // fresh consumer position
  if (room != static_cast<int64_t>(window)) return room < 0 ? room : 0;  // still draining
  // Empty: no byte depends on the old window, and the consumer sees the new one before any
  // byte placed with it (the head store in Write releases it).
  window = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{window} * kWindowGrowth, capacity_));
  control_->window.store(window, std::memory_order_relaxed);
  control_->grow_wanted.store(0, std::memory_order_relaxed);
  *window_out = window;
  return window;
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
  uint32_t window;
  return Available(SIZE_MAX, &window);
}

int64_t SpscRing::Write(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max) {
  uint32_t window;
  const int64_t room = Available(max, &window);
  if (room < 0) return room;
  if (window < capacity_ && WantsGrowth(window, static_cast<size_t>(room), max)) {
    // Once the consumer has drained the ring, the next write enlarges it (see Available).
    // Until then the ring counts as full.
    control_->grow_wanted.store(1, std::memory_order_relaxed);
  }
  if (room == 0) return 0;
  const uint64_t head = control_->head.load(std::memory_order_relaxed);
  const uint32_t mask = window - 1;
  size_t budget = std::min<size_t>(max, static_cast<size_t>(room));
  size_t written = 0;
  for (size_t i = 0; i < iov_count && budget > 0; ++i) {
    const auto *src = static_cast<const uint8_t *>(iov[i].iov_base);
    size_t len = iov[i].iov_len;
    if (iov_skip >= len) {
      iov_skip -= len;
      continue;
    }
    src += iov_skip;
    len = std::min(len - iov_skip, budget);
    iov_skip = 0;
    while (len > 0) {
      const uint32_t offset = static_cast<uint32_t>((head + written) & mask);
      const size_t chunk = std::min<size_t>(len, window - offset);
      std::memcpy(data_ + offset, src, chunk);
      src += chunk;
      len -= chunk;
      written += chunk;
      budget -= chunk;
    }
  }
  // Release: the bytes above become visible before the new head.
  if (written > 0) control_->head.store(head + written, std::memory_order_release);
  return static_cast<int64_t>(written);
}

int64_t SpscRing::Write(const void *data, size_t size) {
  struct iovec iov = {const_cast<void *>(data), size};
  return Write(&iov, 1, 0, size);
}

int64_t SpscRing::ReadableBytes() {
  uint32_t window;
  return Readable(&window);
}

int64_t SpscRing::Readable(uint32_t *window) {
  const uint64_t tail = control_->tail.load(std::memory_order_relaxed);  // ours
  // Acquire pairs with the producer's release of head: the bytes, and the window they were
  // placed with, are there to read. The window cannot change while bytes remain unread.
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  *window = Window();
  // A corrupt window or position: the peer wrote nonsense (positions wrap modulo 2^64).
  if (*window == 0 || head - tail > *window) return -1;
  return static_cast<int64_t>(head - tail);
}

int64_t SpscRing::Read(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max,
                       bool peek) {
  uint32_t window;
  const int64_t readable = Readable(&window);
  if (readable <= 0) return readable;
  const uint32_t mask = window - 1;
  const uint64_t tail = control_->tail.load(std::memory_order_relaxed);
  size_t budget = std::min<size_t>(max, static_cast<size_t>(readable));
  size_t copied = 0;
  for (size_t i = 0; i < iov_count && budget > 0; ++i) {
    auto *dst = static_cast<uint8_t *>(iov[i].iov_base);
    size_t len = iov[i].iov_len;
    if (iov_skip >= len) {
      iov_skip -= len;
      continue;
    }
    dst += iov_skip;
    len = std::min(len - iov_skip, budget);
    iov_skip = 0;
    while (len > 0) {
      const uint32_t offset = static_cast<uint32_t>((tail + copied) & mask);
      const size_t chunk = std::min<size_t>(len, window - offset);
      std::memcpy(dst, data_ + offset, chunk);
      dst += chunk;
      len -= chunk;
      copied += chunk;
      budget -= chunk;
    }
  }
  // Release: our reads of the bytes finish before the producer may overwrite them.
  if (!peek && copied > 0) control_->tail.store(tail + copied, std::memory_order_release);
  return static_cast<int64_t>(copied);
}

int64_t SpscRing::Read(void *data, size_t size, bool peek) {
  struct iovec iov = {data, size};
  return Read(&iov, 1, 0, size, peek);
}

}  // namespace loopfast
