#include "ring/ring.h"

#include <algorithm>
#include <cstring>

namespace loopfast {

bool SpscRing::ValidCapacity(uint64_t capacity) {
  return capacity >= kMinCapacity && capacity <= kMaxCapacity && (capacity & (capacity - 1)) == 0;
}

void SpscRing::Initialize(RingControl *control) {
  control->head.store(0, std::memory_order_relaxed);
  control->producer_waiting.store(0, std::memory_order_relaxed);
  control->tail.store(0, std::memory_order_relaxed);
  control->consumer_waiting.store(0, std::memory_order_relaxed);
  control->reserved0 = 0;
  control->reserved1 = 0;
  std::atomic_thread_fence(std::memory_order_release);
}

SpscRing::SpscRing(RingControl *control, uint8_t *data, uint32_t capacity)
    : control_(control), data_(data), capacity_(capacity), mask_(capacity - 1) {
  cached_tail_ = control_->tail.load(std::memory_order_acquire);
}

uint64_t SpscRing::FillLevel() const {
  const uint64_t tail = control_->tail.load(std::memory_order_acquire);
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  return std::min<uint64_t>(head - tail, capacity_);
}

int64_t SpscRing::Room(size_t wanted) {
  const uint64_t head = control_->head.load(std::memory_order_relaxed);  // ours
  uint64_t used = head - cached_tail_;
  if (used > capacity_ || capacity_ - used < wanted) {
    // Acquire pairs with the consumer's release of tail: its reads of the freed bytes are done.
    cached_tail_ = control_->tail.load(std::memory_order_acquire);
    used = head - cached_tail_;
  }
  if (used > capacity_) return -1;  // the peer wrote nonsense (positions wrap modulo 2^64)
  return static_cast<int64_t>(capacity_ - used);
}

int64_t SpscRing::WritableBytes() { return Room(SIZE_MAX); }

int64_t SpscRing::Write(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max) {
  const int64_t room = Room(max);
  if (room <= 0) return room;
  const uint64_t head = control_->head.load(std::memory_order_relaxed);
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
      const uint32_t offset = static_cast<uint32_t>((head + written) & mask_);
      const size_t chunk = std::min<size_t>(len, capacity_ - offset);
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
  const uint64_t tail = control_->tail.load(std::memory_order_relaxed);  // ours
  // Acquire pairs with the producer's release of head: the bytes are there to read.
  const uint64_t head = control_->head.load(std::memory_order_acquire);
  if (head - tail > capacity_) return -1;  // the peer wrote nonsense (modulo 2^64)
  return static_cast<int64_t>(head - tail);
}

int64_t SpscRing::Read(const struct iovec *iov, size_t iov_count, size_t iov_skip, size_t max,
                       bool peek) {
  const int64_t readable = ReadableBytes();
  if (readable <= 0) return readable;
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
      const uint32_t offset = static_cast<uint32_t>((tail + copied) & mask_);
      const size_t chunk = std::min<size_t>(len, capacity_ - offset);
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
