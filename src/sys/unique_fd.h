// The owner of one kernel descriptor that loopfast opened for itself and has not yet handed
// on: it closes the descriptor (with the real close) when it goes out of scope, so a function
// that opens several things and fails halfway needs no hand-written cleanup chain. Release()
// hands the descriptor on (to sys::Own, a session, the caller).
//
// Closing keeps errno, so a failing function may set errno (or read it into its result) before
// its owners close what they hold.
//
// Thread rules: a value owned by one thread.
#ifndef LOOPFAST_SYS_UNIQUE_FD_H_
#define LOOPFAST_SYS_UNIQUE_FD_H_

#include <cerrno>
#include <utility>

#include "sys/real_calls.h"

namespace loopfast::sys {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Owns `fd`; a negative one means none.
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd &&other) noexcept : fd_(other.Release()) {}
  UniqueFd &operator=(UniqueFd &&other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd &) = delete;
  UniqueFd &operator=(const UniqueFd &) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Gives the descriptor up without closing it.
  [[nodiscard]] int Release() { return std::exchange(fd_, -1); }

  // Closes the descriptor held (if any), keeping errno, and owns `fd` instead.
  void Reset(int fd = -1) {
    if (fd_ >= 0) {
      const int saved_errno = errno;
      Real().close(fd_);
      errno = saved_errno;
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_UNIQUE_FD_H_
