// Error handling without exceptions: a value or an errno, never both.
#ifndef LOOPFAST_BASE_RESULT_H_
#define LOOPFAST_BASE_RESULT_H_

#include <cerrno>
#include <utility>

namespace loopfast {

// An errno value carried as a type, so that a result cannot be mistaken for a count.
struct Errno {
  int value;
};

// Holds a T or an errno. Cheap to copy for the small Ts used on the data path.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)), error_(0) {}  // NOLINT: implicit by design
  Result(Errno error) : value_(), error_(error.value) {}    // NOLINT: implicit by design

  bool ok() const { return error_ == 0; }
  int error() const { return error_; }
  const T &value() const { return value_; }
  T &value() { return value_; }
  T value_or(T fallback) const { return ok() ? value_ : fallback; }

 private:
  T value_;
  int error_;
};

// A result with no value: success or an errno.
class [[nodiscard]] Status {
 public:
  Status() : error_(0) {}
  Status(Errno error) : error_(error.value) {}  // NOLINT: implicit by design

  bool ok() const { return error_ == 0; }
  int error() const { return error_; }

 private:
  int error_;
};

// Converts a libc-style return (-1 + errno) into a Result.
template <typename T>
Result<T> FromSyscall(T ret) {
  if (ret < 0) return Errno{errno};
  return ret;
}

// Sets errno from `result` and returns the libc-style value: the value, or -1.
template <typename T>
T ToSyscall(const Result<T> &result) {
  if (result.ok()) return result.value();
  errno = result.error();
  return static_cast<T>(-1);
}

inline int ToSyscall(const Status &status) {
  if (status.ok()) return 0;
  errno = status.error();
  return -1;
}

}  // namespace loopfast

#endif  // LOOPFAST_BASE_RESULT_H_
