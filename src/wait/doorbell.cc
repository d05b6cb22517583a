#include "wait/doorbell.h"

#include <sys/socket.h>
#include <time.h>

#include <cerrno>

#include "sys/real_calls.h"

namespace loopfast {

void Doorbell::Ring() const {
  const int saved_errno = errno;
  const char byte = 1;
  (void)sys::Real().send(fd_, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  errno = saved_errno;
}

void Doorbell::ShutLocal() const {
  const int saved_errno = errno;
  (void)sys::Real().shutdown(fd_, SHUT_RD);
  errno = saved_errno;
}

uint64_t Doorbell::NowNs() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

WakeReason Doorbell::Sleep(const struct timeval &timeout) {
  const int saved_errno = errno;
  if (timeout.tv_sec != applied_timeout_.tv_sec || timeout.tv_usec != applied_timeout_.tv_usec) {
    if (sys::Real().setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0) {
      applied_timeout_ = timeout;
    }
  }
  char drain[64];
  const ssize_t n = sys::Real().recv(fd_, drain, sizeof drain, 0);
  WakeReason reason;
  if (n > 0) {
    reason = WakeReason::kReady;
  } else if (n < 0 && errno == EINTR) {
    reason = WakeReason::kInterrupted;
  } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    reason = WakeReason::kTimedOut;
  } else {
    // End-of-file (the peer's end is closed, or ours was shut down by ShutLocal) or an error.
    reason = WakeReason::kPeerGone;
  }
  errno = saved_errno;
  return reason;
}

}  // namespace loopfast
