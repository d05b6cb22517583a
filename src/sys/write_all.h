// "Write everything to the kernel": the one loop that hands a run of bytes to a kernel
// descriptor until all of it went, for the bytes a moved connection still owes its kernel
// socket (fast/fast_connection.cc, Flush) and splice's copy into a pipe (socket/transfer_ops.cc).
//
// One step is a send(2) (SendAll) or a write(2) (WriteAll) through the real calls. EINTR tries
// again; EAGAIN asks `wait_for_room()`, which may wait and answer true to try again, or false to
// end (kNoRoom); any other failure, or a step that takes nothing, ends (kFailed). `on_written(n)`
// hears each step's bytes as they go, so a caller that ends early knows what went. errno is
// kept: callers sit inside a program's call.
//
// Thread rules: any thread.
#ifndef LOOPFAST_SYS_WRITE_ALL_H_
#define LOOPFAST_SYS_WRITE_ALL_H_

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "sys/real_calls.h"

namespace loopfast::sys {

enum class WriteEnd {
  kAll,     // every byte went
  kNoRoom,  // the kernel had no room and wait_for_room() said not to wait (more)
  kFailed,  // the descriptor failed (or took nothing); what went was reported
};

// The loop itself: `step(bytes, length)` is one send or write.
template <typename Step, typename WaitForRoom, typename OnWritten>
WriteEnd WriteAllWith(Step step, const void *bytes, size_t size, WaitForRoom wait_for_room,
                      OnWritten on_written) {
  const int saved_errno = errno;
  const auto *data = static_cast<const uint8_t *>(bytes);
  size_t done = 0;
  WriteEnd end = WriteEnd::kAll;
  while (done < size) {
    const ssize_t n = step(data + done, size - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      on_written(static_cast<size_t>(n));
      continue;
    }
    const int error = errno;
    errno = saved_errno;
    if (n < 0 && error == EINTR) continue;
    if (n < 0 && (error == EAGAIN || error == EWOULDBLOCK)) {
      if (wait_for_room()) continue;
      end = WriteEnd::kNoRoom;
    } else {
      end = WriteEnd::kFailed;
    }
    break;
  }
  errno = saved_errno;
  return end;
}

// send(2) with `flags` on the socket `fd` until every byte went.
template <typename WaitForRoom, typename OnWritten>
WriteEnd SendAll(int fd, const void *bytes, size_t size, int flags, WaitForRoom wait_for_room,
                 OnWritten on_written) {
  return WriteAllWith([fd, flags](const uint8_t *data,
                                  size_t length) { return Real().send(fd, data, length, flags); },
                      bytes, size, wait_for_room, on_written);
}

// write(2) on `fd` (a pipe, a file) until every byte went.
template <typename WaitForRoom, typename OnWritten>
WriteEnd WriteAll(int fd, const void *bytes, size_t size, WaitForRoom wait_for_room,
                  OnWritten on_written) {
  return WriteAllWith(
      [fd](const uint8_t *data, size_t length) { return Real().write(fd, data, length); }, bytes,
      size, wait_for_room, on_written);
}

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_WRITE_ALL_H_
