// The owner of one memory mapping (mmap) that loopfast made and has not yet handed on: it
// unmaps it when it goes out of scope, so a function that maps several things and fails
// halfway needs no hand-written cleanup chain. Release() hands the memory on (to a session).
//
// Unmapping keeps errno, so a failing function may set errno before its owners let go.
//
// Thread rules: a value owned by one thread.
#ifndef LOOPFAST_SYS_UNIQUE_MAPPING_H_
#define LOOPFAST_SYS_UNIQUE_MAPPING_H_

#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <utility>

namespace loopfast::sys {

class UniqueMapping {
 public:
  UniqueMapping() = default;
  // Owns `bytes` at `address`, as mmap returned it: MAP_FAILED (or null) means none.
  UniqueMapping(void *address, size_t bytes)
      : address_(address == MAP_FAILED ? nullptr : address), bytes_(bytes) {}
  ~UniqueMapping() { Reset(); }
  UniqueMapping(UniqueMapping &&other) noexcept
      : address_(std::exchange(other.address_, nullptr)), bytes_(other.bytes_) {}
  UniqueMapping &operator=(UniqueMapping &&other) noexcept {
    if (this != &other) {
      Reset();
      bytes_ = other.bytes_;
      address_ = std::exchange(other.address_, nullptr);
    }
    return *this;
  }
  UniqueMapping(const UniqueMapping &) = delete;
  UniqueMapping &operator=(const UniqueMapping &) = delete;

  void *get() const { return address_; }
  bool valid() const { return address_ != nullptr; }

  // Gives the mapping up without unmapping it.
  [[nodiscard]] void *Release() { return std::exchange(address_, nullptr); }

  // Unmaps the memory held (if any), keeping errno.
  void Reset() {
    if (address_ != nullptr) {
      const int saved_errno = errno;
      munmap(address_, bytes_);
      errno = saved_errno;
    }
    address_ = nullptr;
  }

 private:
  void *address_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_UNIQUE_MAPPING_H_
