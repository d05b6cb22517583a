// The calls that move bytes without send/recv's shape: sendfile, splice, sendmmsg, recvmmsg.
// On a socket that is or may become fast they are built from Send and Recv, so no byte slips
// past the rings onto the kernel connection (which the peer would read out of order). Where that
// cannot be done exactly, the connection first moves to kernel TCP.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "socket/readiness.h"
#include "socket/socket_ops.h"
#include "sys/real_calls.h"
#include "sys/write_all.h"

namespace loopfast::ops {
namespace {

constexpr size_t kChunkBytes = size_t{256} * 1024;

// A per-thread copy buffer: sendfile and splice run on the program's threads, often in loops.
std::vector<uint8_t> &CopyBuffer() {
  thread_local std::vector<uint8_t> buffer(kChunkBytes);
  return buffer;
}

ssize_t SendBytes(Socket &socket, int fd, const uint8_t *bytes, size_t size, int flags) {
  struct iovec iov = {const_cast<uint8_t *>(bytes), size};
  struct msghdr message {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  return Send(socket, fd, &message, flags);
}

ssize_t RecvBytes(Socket &socket, int fd, uint8_t *bytes, size_t size, int flags) {
  struct iovec iov = {bytes, size};
  struct msghdr message {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  return Recv(socket, fd, &message, flags);
}

// Free bytes in a pipe, or -1 when `fd` is not one.
long PipeRoom(int fd) {
  const int capacity = sys::Real().fcntl(fd, F_GETPIPE_SZ, 0);
  if (capacity < 0) return -1;
  int queued = 0;
  if (sys::Real().ioctl(fd, FIONREAD, &queued) != 0) return -1;
  return std::max(0L, static_cast<long>(capacity) - queued);
}

}  // namespace

ssize_t SendFile(Socket &socket, int out_fd, int in_fd, off_t *offset, size_t count) {
  if (!readiness::Decides(socket)) {
    return sys::Real().sendfile(out_fd, in_fd, offset, count);
  }
  off_t position = offset != nullptr ? *offset : lseek(in_fd, 0, SEEK_CUR);
  if (position < 0) {
    // Not a file that can be read at a position (a pipe): let the kernel do it, on kernel TCP.
    GoKernel(socket, out_fd, reason::kSplice);
    return sys::Real().sendfile(out_fd, in_fd, offset, count);
  }
  std::vector<uint8_t> &buffer = CopyBuffer();
  size_t total = 0;
  int error = 0;
  while (total < count) {
    const size_t want = std::min(buffer.size(), count - total);
    const ssize_t got = pread(in_fd, buffer.data(), want, position);
    if (got <= 0) {
      error = got < 0 ? errno : 0;
      break;
    }
    const ssize_t sent = SendBytes(socket, out_fd, buffer.data(), static_cast<size_t>(got), 0);
    if (sent < 0) {
      error = errno;
      break;
    }
    total += static_cast<size_t>(sent);
    position += sent;
    if (sent < got) break;  // non-blocking, interrupted, or a timeout: as sendfile returns
  }
  if (offset != nullptr) {
    *offset = position;
  } else {
    lseek(in_fd, position, SEEK_SET);
  }
  if (total == 0 && error != 0) {
    errno = error;
    return -1;
  }
  return static_cast<ssize_t>(total);
}

ssize_t Splice(Socket *in_socket, int fd_in, loff_t *off_in, Socket *out_socket, int fd_out,
               loff_t *off_out, size_t length, unsigned flags) {
  if (out_socket != nullptr && WouldBeFast(*out_socket)) {
    // Into the socket: the kernel would write the kernel connection; move it there first (the
    // peer reads the ring's remainder before these bytes).
    GoKernel(*out_socket, fd_out, reason::kSplice);
  }
  if (in_socket == nullptr || !readiness::Decides(*in_socket) || off_in != nullptr) {
    return sys::Real().splice(fd_in, off_in, fd_out, off_out, length, flags);
  }
  // Out of a socket that reads the rings: receive, then write what surely fits the pipe.
  long room = PipeRoom(fd_out);
  if (room < 0) return sys::Real().splice(fd_in, off_in, fd_out, off_out, length, flags);
  const bool nonblocking = (flags & SPLICE_F_NONBLOCK) != 0;
  while (room == 0) {
    if (nonblocking) {
      errno = EAGAIN;
      return -1;
    }
    struct pollfd writable = {fd_out, POLLOUT, 0};
    if (sys::Real().poll(&writable, 1, -1) < 0) return -1;  // EINTR
    room = PipeRoom(fd_out);
  }
  std::vector<uint8_t> &buffer = CopyBuffer();
  const size_t want = std::min({length, buffer.size(), static_cast<size_t>(room)});
  const ssize_t got =
      RecvBytes(*in_socket, fd_in, buffer.data(), want, nonblocking ? MSG_DONTWAIT : 0);
  if (got <= 0) return got;
  // Another writer may fill the pipe first (not expected of splice users): then what went.
  size_t written = 0;
  sys::WriteAll(
      fd_out, buffer.data(), static_cast<size_t>(got), [] { return false; },
      [&written](size_t n) { written += n; });
  return static_cast<ssize_t>(written);
}

int SendMany(Socket &socket, int fd, struct mmsghdr *messages, unsigned count, int flags) {
  unsigned done = 0;
  for (; done < count; ++done) {
    const ssize_t n = Send(socket, fd, &messages[done].msg_hdr, flags);
    if (n < 0) return done > 0 ? static_cast<int>(done) : -1;
    messages[done].msg_len = static_cast<unsigned>(n);
  }
  return static_cast<int>(done);
}

int RecvMany(Socket &socket, int fd, struct mmsghdr *messages, unsigned count, int flags) {
  // As on TCP: MSG_WAITFORONE makes every receive after the first non-blocking.
  unsigned done = 0;
  for (; done < count; ++done) {
    const int these = done > 0 && (flags & MSG_WAITFORONE) != 0 ? flags | MSG_DONTWAIT : flags;
    const ssize_t n = Recv(socket, fd, &messages[done].msg_hdr, these & ~MSG_WAITFORONE);
    if (n < 0) return done > 0 ? static_cast<int>(done) : -1;
    messages[done].msg_len = static_cast<unsigned>(n);
    if (n == 0) return static_cast<int>(done + 1);  // end of stream
  }
  return static_cast<int>(done);
}

}  // namespace loopfast::ops
