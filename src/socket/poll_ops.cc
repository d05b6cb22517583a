// poll, ppoll, select and pselect over a mix of fast and ordinary descriptors.
//
// Ordinary descriptors are asked of the kernel (the fast ones masked out, as poll(2) ignores a
// negative descriptor); fast ones are looked at in user space. When nothing is ready the call
// spins for the configured budget, then sleeps in one real ppoll() on the ordinary descriptors
// plus what each fast socket names (its kernel socket, and its session's bell through the
// thread's WakeSet, where bells are edge-triggered), after announcing itself.
#include <sys/select.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/cacheline.h"
#include "socket/config.h"
#include "socket/deadline.h"
#include "socket/fd_table.h"
#include "socket/readiness.h"
#include "socket/socket_ops.h"
#include "sys/real_calls.h"
#include "wait/bell.h"

namespace loopfast::ops {
namespace {

// While spinning, the kernel's descriptors are asked once every this many looks.
constexpr uint32_t kKernelLookInterval = 16;

// Indices of fds[] that loopfast answers for, with their sockets.
struct Decided {
  size_t index;
  std::shared_ptr<Socket> socket;
};

std::vector<Decided> FindDecided(const struct pollfd *fds, nfds_t count) {
  std::vector<Decided> decided;
  for (nfds_t i = 0; i < count; ++i) {
    if (fds[i].fd < 0) continue;
    std::shared_ptr<Socket> socket = FdTable::Instance().Get(fds[i].fd);
    if (socket && readiness::Decides(*socket)) decided.push_back({i, std::move(socket)});
  }
  return decided;
}

// Fills revents of the decided entries; returns how many are ready.
int LookDecided(struct pollfd *fds, const std::vector<Decided> &decided) {
  int ready = 0;
  for (const Decided &d : decided) {
    struct pollfd &entry = fds[d.index];
    MakeProgress(*d.socket, entry.fd);  // a non-blocking connect moves on when looked at
    entry.revents = readiness::Look(*d.socket, entry.fd, entry.events).events;
    if (entry.revents != 0) ++ready;
  }
  return ready;
}

// Asks the kernel about the other entries, without waiting; the decided entries keep their
// revents. Returns how many are ready, or -1.
int LookKernel(struct pollfd *fds, nfds_t count, const std::vector<Decided> &decided) {
  std::vector<struct pollfd> saved(decided.size());
  for (size_t i = 0; i < decided.size(); ++i) {
    saved[i] = fds[decided[i].index];
    fds[decided[i].index].fd = -1;  // poll(2) skips negative descriptors
  }
  const int n = sys::Real().poll(fds, count, 0);
  const int error = errno;
  for (size_t i = 0; i < decided.size(); ++i) fds[decided[i].index] = saved[i];
  errno = error;
  return n;
}

}  // namespace

int Poll(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
         const sigset_t *sigmask) {
  const std::vector<Decided> decided = FindDecided(fds, count);
  if (decided.empty()) return sys::Real().ppoll(fds, count, timeout, sigmask);
  if (timeout != nullptr &&
      (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= long(kNsPerSec))) {
    errno = EINVAL;
    return -1;
  }
  // One policy per thread: a thread's poll and select calls tend to watch the same sockets.
  static thread_local wait::SpinPolicy spin;
  Deadline deadline(timeout, SpinBudgetNs(spin));
  for (uint32_t round = 0;; ++round) {
    int ready = LookDecided(fds, decided);
    // The kernel's descriptors: once every kKernelLookInterval looks while spinning, and always
    // before returning, so that no entry's revents is stale.
    if (ready > 0 || round % kKernelLookInterval == 0) {
      const int kernel = LookKernel(fds, count, decided);
      if (kernel < 0) return -1;
      ready += kernel;
    }
    if (ready > 0) return Teach(spin, deadline, round > 0, ready);
    const uint64_t now = MonotonicNs();
    if (deadline.Expired(now)) {
      // Give up only after the kernel's descriptors were asked in this very look.
      return Teach(spin, deadline, round > 0,
                   round % kKernelLookInterval == 0 ? 0 : LookKernel(fds, count, decided));
    }
    if (deadline.Spinning(now)) {
      deadline.PauseSpinning(now);
      continue;
    }
    // Sleep: the ordinary descriptors as they are, plus what each fast socket names. The
    // edges that woke the last sleep are taken first, then every fast socket announces.
    wait::WakeSet &wake_set = wait::WakeSet::ForThisThread();
    wake_set.Consume();
    std::vector<struct pollfd> sleep_set(fds, fds + count);
    for (const Decided &d : decided) sleep_set[d.index].fd = -1;
    // Which decided socket a kernel descriptor added to the sleep set belongs to.
    std::vector<std::pair<size_t, const Decided *>> kernel_entries;
    bool bells = false;
    bool unwatched_bell = false;  // no WakeSet (out of descriptors): look again every 10 ms
    std::vector<std::shared_ptr<session::Session>> announced;
    for (const Decided &d : decided) {
      readiness::WaitFd wait[readiness::kMaxWaitFds];
      const int n = readiness::PrepareWait(*d.socket, fds[d.index].fd, fds[d.index].events, wait,
                                           true, &announced);
      for (int i = 0; i < n; ++i) {
        if (!wait[i].bell) {
          if (wait[i].fd == fds[d.index].fd) kernel_entries.emplace_back(sleep_set.size(), &d);
          sleep_set.push_back({wait[i].fd, wait[i].events, 0});
        } else if (wake_set.Add(wait[i].fd)) {
          bells = true;
        } else {
          unwatched_bell = true;
        }
      }
    }
    if (bells) sleep_set.push_back({wake_set.fd(), POLLIN, 0});
    if (LookDecided(fds, decided) > 0) {  // changed while announcing: report it
      readiness::EndWait(&announced);
      continue;
    }
    constexpr uint64_t kUnwatchedLookNs = 10ull * 1000 * 1000;
    uint64_t remaining = deadline.forever() ? kUnwatchedLookNs : deadline.LeftNs();
    if (unwatched_bell) remaining = std::min(remaining, kUnwatchedLookNs);
    const struct timespec left = {time_t(remaining / kNsPerSec), long(remaining % kNsPerSec)};
    const int slept =
        sys::Real().ppoll(sleep_set.data(), sleep_set.size(),
                          deadline.forever() && !unwatched_bell ? nullptr : &left, sigmask);
    readiness::EndWait(&announced);
    if (slept < 0) return -1;  // EINTR and the like, exactly as ppoll reports them
    for (const auto &[entry, d] : kernel_entries) {
      if (sleep_set[entry].revents != 0) readiness::NoteKernelChanged(*d->socket);
    }
    round = kKernelLookInterval - 1;  // look at everything again
  }
}

int Select(int nfds, fd_set *read_set, fd_set *write_set, fd_set *except_set,
           const struct timespec *timeout, const sigset_t *sigmask, bool *used_loopfast) {
  *used_loopfast = false;
  if (nfds < 0) {
    errno = EINVAL;
    return -1;
  }
  // The sets are bit arrays of nfds bits, however large (as the kernel reads them).
  constexpr int kBits = 8 * sizeof(unsigned long);
  auto bit = [](fd_set *set, int fd) {
    if (set == nullptr) return false;
    const auto *words = reinterpret_cast<const unsigned long *>(set);
    return ((words[fd / kBits] >> (fd % kBits)) & 1UL) != 0;
  };
  auto set_bit = [](fd_set *set, int fd, bool on) {
    if (set == nullptr) return;
    auto *words = reinterpret_cast<unsigned long *>(set);
    if (on) {
      words[fd / kBits] |= 1UL << (fd % kBits);
    } else {
      words[fd / kBits] &= ~(1UL << (fd % kBits));
    }
  };
  bool any_decided = false;
  std::vector<struct pollfd> fds;
  for (int fd = 0; fd < nfds; ++fd) {
    short events = 0;
    if (bit(read_set, fd)) events |= POLLIN;
    if (bit(write_set, fd)) events |= POLLOUT;
    if (bit(except_set, fd)) events |= POLLPRI;
    if (events == 0) continue;
    fds.push_back({fd, events, 0});
    std::shared_ptr<Socket> socket = FdTable::Instance().Get(fd);
    any_decided = any_decided || (socket && readiness::Decides(*socket));
  }
  if (!any_decided) return 0;  // the caller makes the real call
  *used_loopfast = true;
  const int n = Poll(fds.data(), fds.size(), timeout, sigmask);
  if (n < 0) return -1;
  int bits = 0;
  for (const struct pollfd &entry : fds) {
    if ((entry.revents & POLLNVAL) != 0) {
      errno = EBADF;
      return -1;
    }
    // What select(2) counts as readable, writable, exceptional (the kernel's POLL*_SET).
    const bool readable = (entry.revents & (POLLIN | POLLRDNORM | POLLHUP | POLLERR)) != 0;
    const bool writable = (entry.revents & (POLLOUT | POLLWRNORM | POLLERR)) != 0;
    const bool exceptional = (entry.revents & POLLPRI) != 0;
    const bool want_read = (entry.events & POLLIN) != 0;
    const bool want_write = (entry.events & POLLOUT) != 0;
    const bool want_except = (entry.events & POLLPRI) != 0;
    set_bit(read_set, entry.fd, want_read && readable);
    set_bit(write_set, entry.fd, want_write && writable);
    set_bit(except_set, entry.fd, want_except && exceptional);
    bits +=
        int(want_read && readable) + int(want_write && writable) + int(want_except && exceptional);
  }
  // Descriptors not asked about stay cleared, as select leaves them.
  return bits;
}

}  // namespace loopfast::ops

namespace loopfast::ops {

int SelectWithTimeval(int nfds, fd_set *read_set, fd_set *write_set, fd_set *except_set,
                      struct timeval *timeout, bool *used_loopfast) {
  if (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_usec < 0)) {
    *used_loopfast = false;
    return 0;  // the real call reports EINVAL
  }
  struct timespec limit;
  if (timeout != nullptr) {
    // select(2) normalises microseconds beyond a second, as the kernel does.
    limit.tv_sec = timeout->tv_sec + timeout->tv_usec / 1000000;
    limit.tv_nsec = (timeout->tv_usec % 1000000) * 1000;
  }
  const uint64_t start = MonotonicNs();
  const int n = Select(nfds, read_set, write_set, except_set, timeout != nullptr ? &limit : nullptr,
                       nullptr, used_loopfast);
  if (*used_loopfast && timeout != nullptr) {
    // Linux writes back the time not slept.
    const int saved_errno = errno;
    const uint64_t total = uint64_t(limit.tv_sec) * kNsPerSec + uint64_t(limit.tv_nsec);
    const uint64_t spent = MonotonicNs() - start;
    const uint64_t left = spent >= total ? 0 : total - spent;
    timeout->tv_sec = time_t(left / kNsPerSec);
    timeout->tv_usec = suseconds_t((left % kNsPerSec) / 1000);
    errno = saved_errno;
  }
  return n;
}

}  // namespace loopfast::ops
