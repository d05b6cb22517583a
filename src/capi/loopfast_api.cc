// The public C API (<loopfast/loopfast.h>): argument checks, then the socket layer.
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "capi/user_memory.h"
#include "loopfast/loopfast.h"
#include "socket/socket_ops.h"

extern "C" {

__attribute__((visibility("default"))) int loopfast_ioctl(int fd, unsigned long code,
                                                          const void *in, size_t in_len, void *out,
                                                          size_t out_len, size_t *bytes_returned) {
  (void)out;
  if (code != SIO_LOOPBACK_FAST_PATH) {
    errno = EINVAL;
    return -1;
  }
  if (in == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (in_len != sizeof(int32_t) || out_len != 0) {
    errno = EINVAL;
    return -1;
  }
  int32_t value;
  if (!loopfast::CopyFromUser(&value, in, sizeof value) ||
      (bytes_returned != nullptr &&
       !loopfast::UserWritable(bytes_returned, sizeof *bytes_returned))) {
    errno = EFAULT;
    return -1;
  }
  const int saved_errno = errno;
  if (loopfast::ops::SetFastPath(fd, value != 0) != 0) return -1;
  if (bytes_returned != nullptr) *bytes_returned = 0;
  errno = saved_errno;
  return 0;
}

__attribute__((visibility("default"))) int loopfast_set_fast_path(int fd, int enable) {
  const int32_t value = enable ? 1 : 0;
  return loopfast_ioctl(fd, SIO_LOOPBACK_FAST_PATH, &value, sizeof value, nullptr, 0, nullptr);
}

__attribute__((visibility("default"))) int loopfast_path_of(int fd) {
  const int saved_errno = errno;
  const int path = loopfast::ops::PathOf(fd);
  if (path >= 0) errno = saved_errno;
  return path;
}

__attribute__((visibility("default"))) const char *loopfast_fallback_reason(int fd) {
  return loopfast::ops::FallbackReason(fd);
}

__attribute__((visibility("default"))) unsigned long long loopfast_rendezvous_rejected(void) {
  return loopfast::ops::RejectedTotal();
}

__attribute__((visibility("default"))) const char *loopfast_version(void) {
  return LOOPFAST_VERSION_STRING;
}

}  // extern "C"
