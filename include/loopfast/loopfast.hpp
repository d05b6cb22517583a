// Thin header-only C++ wrapper over <loopfast/loopfast.h>: results instead of errno.
#ifndef LOOPFAST_LOOPFAST_HPP_
#define LOOPFAST_LOOPFAST_HPP_

#include <loopfast/loopfast.h>

#include <cerrno>
#include <system_error>

namespace loopfast {

// Turns the fast path on or off for `fd`; an empty error_code on success.
[[nodiscard]] inline std::error_code SetFastPath(int fd, bool enable) noexcept {
  if (loopfast_set_fast_path(fd, enable ? 1 : 0) == 0) return {};
  return {errno, std::generic_category()};
}

enum class Path {
  kNone = LOOPFAST_PATH_NONE,
  kKernel = LOOPFAST_PATH_KERNEL,
  kFast = LOOPFAST_PATH_FAST
};

// Which path `fd` takes; kNone for descriptors loopfast does not track.
[[nodiscard]] inline Path PathOf(int fd) noexcept {
  const int path = loopfast_path_of(fd);
  return path < 0 ? Path::kNone : static_cast<Path>(path);
}

[[nodiscard]] inline const char *FallbackReason(int fd) noexcept {
  return loopfast_fallback_reason(fd);
}

}  // namespace loopfast

#endif  // LOOPFAST_LOOPFAST_HPP_
