// The implementation of user_memory.h (what it is for is said there).
#include "capi/user_memory.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace loopfast {

bool CopyFromUser(void *destination, const void *source, size_t size) {
  // process_vm_readv on ourselves reads through the kernel: an unmapped source is EFAULT.
  const int saved_errno = errno;
  struct iovec local = {destination, size};
  struct iovec remote = {const_cast<void *>(source), size};
  const ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  errno = saved_errno;
  return n == static_cast<ssize_t>(size);
}

bool UserWritable(void *address, size_t size) {
  // Write the bytes back to themselves through the kernel; unmapped or read-only → EFAULT.
  const int saved_errno = errno;
  char copy[64];
  if (size > sizeof copy) return false;
  struct iovec remote = {address, size};
  struct iovec local = {copy, size};
  bool ok = process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size) &&
            process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
  errno = saved_errno;
  return ok;
}

}  // namespace loopfast
