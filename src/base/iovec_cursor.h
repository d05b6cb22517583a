// A position in an iovec array: the one way loopfast walks a program's scattered buffers (the
// ring's gather and scatter copies, the capture's payload, the rest of a message after the bytes
// that already went).
//
// The cursor never owns the array or the buffers; it only remembers which part it is in and how
// far into it. Parts of length zero are passed over.
//
// Thread rules: none (a value on the caller's stack). No system calls, no allocation (except
// Rest(), which makes a vector).
#ifndef LOOPFAST_BASE_IOVEC_CURSOR_H_
#define LOOPFAST_BASE_IOVEC_CURSOR_H_

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace loopfast {

// The bytes of `count` parts in all.
inline size_t IovecTotal(const struct iovec *iov, size_t count) {
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) total += iov[i].iov_len;
  return total;
}

class IovecCursor {
 public:
  // At the start of `iov` (`count` parts), past its first `skip` bytes.
  IovecCursor(const struct iovec *iov, size_t count, size_t skip = 0) : iov_(iov), count_(count) {
    Skip(skip);
  }

  bool AtEnd() const { return index_ == count_; }

  // Moves past `bytes` bytes (or to the end, if there are fewer).
  void Skip(size_t bytes) {
    Walk(bytes, [](uint8_t *, size_t) {});
  }

  // Calls `visit(uint8_t *bytes, size_t length)` for each run of the next bytes, in order, at
  // most `max` bytes in all, and moves past them. Returns how many bytes it visited.
  template <typename Visit>
  size_t Walk(size_t max, Visit visit) {
    size_t walked = 0;
    while (walked < max && index_ < count_) {
      const struct iovec &part = iov_[index_];
      const size_t take = std::min(part.iov_len - offset_, max - walked);
      if (take > 0) visit(static_cast<uint8_t *>(part.iov_base) + offset_, take);
      walked += take;
      offset_ += take;
      if (offset_ == part.iov_len) {
        ++index_;
        offset_ = 0;
      }
    }
    return walked;
  }

  // Copies up to `max` of the next bytes to `out` (a gather); returns how many there were.
  size_t CopyOut(uint8_t *out, size_t max) {
    size_t copied = 0;
    return Walk(max, [&](const uint8_t *bytes, size_t length) {
      std::memcpy(out + copied, bytes, length);
      copied += length;
    });
  }

  // The parts from here to the end, the first one cut at the cursor.
  std::vector<struct iovec> Rest() const {
    std::vector<struct iovec> rest;
    for (size_t i = index_; i < count_; ++i) {
      const size_t from = i == index_ ? offset_ : 0;
      if (iov_[i].iov_len == from) continue;
      rest.push_back({static_cast<uint8_t *>(iov_[i].iov_base) + from, iov_[i].iov_len - from});
    }
    return rest;
  }

 private:
  const struct iovec *iov_;
  size_t count_;
  size_t index_ = 0;   // the part the cursor is in
  size_t offset_ = 0;  // bytes of that part already passed
};

}  // namespace loopfast

#endif  // LOOPFAST_BASE_IOVEC_CURSOR_H_
