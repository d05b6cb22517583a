// send and recv (the whole read and write families arrive here as one Send(msghdr) and one
// Recv(msghdr)): fast ends through their FastConnection, everything else on the kernel socket.
#include <sys/socket.h>

#include <cerrno>
#include <vector>

#include "base/iovec_cursor.h"
#include "config/config.h"
#include "socket/socket_internal.h"
#include "socket/socket_ops.h"
#include "socket/socket_stat.h"
#include "sys/owned_fds.h"

namespace loopfast::ops {
namespace {

size_t IovLength(const struct msghdr *message) {
  return IovecTotal(message->msg_iov, message->msg_iovlen);
}

// The parts of the message's buffers past its first `skip` bytes.
std::vector<struct iovec> IovecsAfter(const struct msghdr *message, size_t skip) {
  return IovecCursor(message->msg_iov, message->msg_iovlen, skip).Rest();
}

// `done` bytes of the message went out already; the rest goes on the kernel connection.
ssize_t SendRestToKernel(int kernel_fd, const struct msghdr *message, size_t done, int flags) {
  std::vector<struct iovec> rest = IovecsAfter(message, done);
  struct msghdr tail {};
  tail.msg_iov = rest.data();
  tail.msg_iovlen = rest.size();
  const ssize_t n = rest.empty() ? 0 : Real().sendmsg(kernel_fd, &tail, flags);
  return static_cast<ssize_t>(done + (n > 0 ? static_cast<size_t>(n) : 0));
}

// The libc-shaped answer of a fast call that did not go to the kernel.
ssize_t Answer(const Transfer &done) {
  switch (done.outcome) {
    case Outcome::kDone:
      return static_cast<ssize_t>(done.bytes);
    case Outcome::kWouldWait:
    case Outcome::kTimedOut:
      errno = EAGAIN;
      break;
    case Outcome::kInterrupted:
      errno = EINTR;
      break;
    case Outcome::kReset:
    case Outcome::kUseKernel:
      errno = ECONNRESET;
      break;
  }
  return -1;
}

// A MSG_WAITALL receive that got `done.bytes` from the ring before its stream ended waits on
// the kernel connection for the rest, as one kernel TCP receive would; what it got counts
// whatever ends that wait (kernel TCP, too, returns a partial count then).
ssize_t RecvRestFromKernel(int kernel_fd, struct msghdr *message, int flags, const Transfer &done) {
  std::vector<struct iovec> rest = IovecsAfter(message, done.bytes);
  struct msghdr tail {};
  tail.msg_iov = rest.data();
  tail.msg_iovlen = rest.size();
  const int saved_errno = errno;
  const ssize_t more = rest.empty() ? 0 : Real().recvmsg(kernel_fd, &tail, flags);
  errno = saved_errno;
  message->msg_namelen = 0;
  message->msg_controllen = 0;
  message->msg_flags = 0;
  return static_cast<ssize_t>(done.bytes) + (more > 0 ? more : 0);
}

// The last call that outlived its socket's close has returned: end the connection now.
void FinishDeferredClose(Socket &socket) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  if (!socket.close_deferred || socket.calls_in_flight.load() != 0) return;
  socket.close_deferred = false;
  const int kept = socket.kept_fd.exchange(-1);
  EndFast(socket, kept);
  sys::CloseOwned(kept);
}

// Counts one send/recv under way for as long as it lives (see Socket::calls_in_flight).
class CallInFlight {
 public:
  CallInFlight(Socket &socket, int fd) : socket_(socket), fd_(fd) {
    // seq_cst against ReleaseDescriptor's store to `closed`: either it sees this call, or this
    // call sees the close.
    socket_.calls_in_flight.fetch_add(1);
  }
  ~CallInFlight() {
    if (socket_.calls_in_flight.fetch_sub(1) == 1 && socket_.closed.load()) {
      FinishDeferredClose(socket_);
    }
  }
  CallInFlight(const CallInFlight &) = delete;
  CallInFlight &operator=(const CallInFlight &) = delete;

  // False when the socket was closed before this call could count itself: EBADF, as the
  // kernel answers a call that comes after close().
  bool open() const {
    return !socket_.closed.load() || socket_.kept_fd.load(std::memory_order_acquire) >= 0;
  }
  // The kernel socket to use: the program's descriptor, or loopfast's copy once another
  // thread closed it (the number may already name another file).
  int kernel_fd() const {
    const int kept = socket_.kept_fd.load(std::memory_order_acquire);
    return kept >= 0 ? kept : fd_;
  }

 private:
  Socket &socket_;
  const int fd_;
};

// A connect under way and a call that wants to move bytes: wait for the handshake if the call
// may block. True when the caller should look at the path again.
bool AwaitConnect(Socket &socket, int fd, bool nonblocking, const struct timeval &timeout) {
  std::unique_lock<std::mutex> guard(socket.mutex);
  CheckConnectProgress(socket, fd);
  if (socket.stage.load(std::memory_order_relaxed) != Stage::kConnecting) return true;
  if (nonblocking) {
    errno = EAGAIN;
    return false;
  }
  guard.unlock();
  WaitConnect(fd, timeout);
  guard.lock();
  CheckConnectProgress(socket, fd);
  if (socket.stage.load(std::memory_order_relaxed) == Stage::kConnecting) {
    errno = EAGAIN;
    return false;
  }
  return true;
}

// A call that found its descriptor closed by another thread as it began: EBADF, as the kernel.
ssize_t ClosedMeanwhile() {
  errno = EBADF;
  return -1;
}

}  // namespace

void EndFast(Socket &socket, int kernel_fd) {
  if (socket.fast_owner->Close(kernel_fd)) {
    // Unread bytes: TCP resets the connection; so do we, through the kernel connection.
    const struct linger abort_linger = {1, 0};
    Real().setsockopt(kernel_fd, SOL_SOCKET, SO_LINGER, &abort_linger, sizeof abort_linger);
  }
}

ssize_t Send(Socket &socket, int fd, const struct msghdr *message, int flags) {
  const CallInFlight in_flight(socket, fd);
  if (!in_flight.open()) return ClosedMeanwhile();
  for (;;) {
    switch (socket.stage.load(std::memory_order_acquire)) {
      case Stage::kFast: {
        FastConnection *fast = socket.fast.load(std::memory_order_acquire);
        if ((flags & MSG_OOB) != 0) {
          // Urgent data exists only on kernel TCP. Transparent mode moves the connection there
          // first (the urgent byte then follows every byte sent before it).
          if (socket.opted_in_explicitly.load(std::memory_order_relaxed) &&
              !fast->WritesGoToKernel()) {
            errno = EOPNOTSUPP;
            return -1;
          }
          GoKernel(socket, fd, reason::kUrgentData);
          return Real().sendmsg(in_flight.kernel_fd(), message, flags);
        }
        SendCall call;
        call.nonblocking =
            socket.nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        call.wait = SleepFor(socket.options.send_timeout);
        const Transfer sent =
            fast->Send(in_flight.kernel_fd(), message->msg_iov, message->msg_iovlen, call);
        if (sent.outcome == Outcome::kDone && !call.nonblocking &&
            sent.bytes < IovLength(message) && fast->WritesGoToKernel()) {
          // The connection moved to kernel TCP during this blocking call: the rest goes
          // there, as one blocking TCP send would have taken it all (after what the ring
          // still holds for a peer that left).
          if (!fast->FlushBeforeKernelWrite(in_flight.kernel_fd(), call)) {
            return static_cast<ssize_t>(sent.bytes);
          }
          return SendRestToKernel(in_flight.kernel_fd(), message, sent.bytes, flags);
        }
        if (sent.outcome == Outcome::kUseKernel) {
          RepublishIfMoved(socket, fd);
          // Shut by this end: shutdown() marks the fast end before it shuts the kernel socket,
          // and a send it woke must not slip bytes in between (the kernel says EPIPE, and
          // raises SIGPIPE unless MSG_NOSIGNAL; shutting twice changes nothing).
          if (fast->OwnOutputShut()) Real().shutdown(in_flight.kernel_fd(), SHUT_WR);
          if (!fast->FlushBeforeKernelWrite(in_flight.kernel_fd(), call)) {
            errno = EAGAIN;  // the ring's bytes are not all on the kernel connection yet
            return -1;
          }
          const ssize_t n = Real().sendmsg(in_flight.kernel_fd(), message, flags);
          if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fast->NoteKernelFull();
          return n;
        }
        return Answer(sent);
      }
      case Stage::kConnecting: {
        const bool nonblocking =
            socket.nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        if (!AwaitConnect(socket, fd, nonblocking, socket.options.send_timeout)) return -1;
        continue;
      }
      default:
        return Real().sendmsg(fd, message, flags);
    }
  }
}

ssize_t Recv(Socket &socket, int fd, struct msghdr *message, int flags) {
  const CallInFlight in_flight(socket, fd);
  if (!in_flight.open()) return ClosedMeanwhile();
  for (;;) {
    switch (socket.stage.load(std::memory_order_acquire)) {
      case Stage::kFast: {
        if ((flags & MSG_ERRQUEUE) != 0) {
          return Real().recvmsg(in_flight.kernel_fd(), message, flags);
        }
        FastConnection *fast = socket.fast.load(std::memory_order_acquire);
        if ((flags & MSG_OOB) != 0) {
          // Urgent data comes only on kernel TCP, and only once the connection moved there.
          if (fast->WritesGoToKernel()) {
            return Real().recvmsg(in_flight.kernel_fd(), message, flags);
          }
          errno = EINVAL;  // as TCP says when no urgent byte is waiting
          return -1;
        }
        RecvCall call;
        call.nonblocking =
            socket.nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        call.peek = (flags & MSG_PEEK) != 0;
        call.wait_all = (flags & MSG_WAITALL) != 0;
        call.wait = SleepFor(socket.options.recv_timeout);
        const Transfer got =
            fast->Recv(in_flight.kernel_fd(), message->msg_iov, message->msg_iovlen, call);
        if (got.outcome == Outcome::kUseKernel) {
          RepublishIfMoved(socket, fd);
          // The ring stream ended; the kernel connection holds the rest. Bytes already there
          // that the peer did not move there bypassed the rings: reset, never reorder.
          if (fast->BypassFound(in_flight.kernel_fd())) {
            Log(LogLevel::kError, "bytes bypassed the fast path; connection reset");
            errno = ECONNRESET;
            return -1;
          }
          // A peer that left cannot read what is still in our ring: hand it to the kernel
          // connection before waiting there for the reply.
          if (!fast->SettleIfPeerLeft(in_flight.kernel_fd(), !call.nonblocking,
                                      call.wait.deadline_ns)) {
            if (got.bytes > 0) return static_cast<ssize_t>(got.bytes);
            errno = EAGAIN;  // the program's timeout passed while our bytes were handed over
            return -1;
          }
          if (got.bytes > 0) return RecvRestFromKernel(in_flight.kernel_fd(), message, flags, got);
          return Real().recvmsg(in_flight.kernel_fd(), message, flags);
        }
        const ssize_t n = Answer(got);
        if (n >= 0) {
          // What the kernel reports for TCP: no address, no control data, no flags.
          message->msg_namelen = 0;
          message->msg_controllen = 0;
          message->msg_flags = 0;
        }
        return n;
      }
      case Stage::kConnecting: {
        const bool nonblocking =
            socket.nonblocking.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) != 0;
        if (!AwaitConnect(socket, fd, nonblocking, socket.options.recv_timeout)) return -1;
        continue;
      }
      default:
        return Real().recvmsg(fd, message, flags);
    }
  }
}

}  // namespace loopfast::ops
