// The implementation of bell.h (what it is for is said there).
#include "wait/bell.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::wait {

int CreateBell() {
  const int saved_errno = errno;
  // The counter starts at 1 and only ever grows by rings of 0 (see RingBell).
  const int bell = sys::TakeHigh(eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC));
  if (bell >= 0) sys::Own(bell);
  errno = saved_errno;
  return bell;
}

void RingBell(int bell) {
  if (bell < 0) return;
  const int saved_errno = errno;
  // Adding 0 never blocks, whatever the counter and whatever the flags of the open file the
  // peer shares (it could clear O_NONBLOCK and fill the counter), and still wakes every epoll
  // instance watching: the bell reads as ready while its counter is not 0.
  const uint64_t nothing = 0;
  (void)!sys::Real().write(bell, &nothing, sizeof nothing);
  errno = saved_errno;
}

WakeSet &WakeSet::ForThisThread() {
  static thread_local WakeSet set;
  return set;
}

int WakeSet::fd() {
  if (fd_ < 0) {
    const int saved_errno = errno;
    fd_ = sys::TakeHigh(sys::Real().epoll_create1(EPOLL_CLOEXEC));
    if (fd_ >= 0) sys::Own(fd_);
    errno = saved_errno;
  }
  return fd_;
}

bool WakeSet::Add(int bell) {
  if (bell < 0 || fd() < 0) return false;
  const int saved_errno = errno;
  struct epoll_event event = {};
  event.events = EPOLLIN | EPOLLET;
  event.data.fd = bell;
  const bool added =
      sys::Real().epoll_ctl(fd_, EPOLL_CTL_ADD, bell, &event) == 0 || errno == EEXIST;
  errno = saved_errno;
  return added;
}

void WakeSet::Consume() {
  if (fd_ < 0) return;
  const int saved_errno = errno;
  struct epoll_event events[32];
  while (sys::Real().epoll_wait(fd_, events, 32, 0) == 32) {
  }
  errno = saved_errno;
}

WakeSet::~WakeSet() { sys::CloseOwned(fd_); }

void WakeSet::Forget() {
  sys::CloseOwned(fd_);
  fd_ = -1;
}

// The parent keeps using its instance: only this process's descriptor goes.
void ForgetWakeSetInChild() { WakeSet::ForThisThread().Forget(); }

}  // namespace loopfast::wait
