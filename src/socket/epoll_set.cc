// The implementation of epoll_set.h (what it is for is said there).
#include "socket/epoll_set.h"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "socket/config.h"
#include "socket/deadline.h"
#include "socket/fd_table.h"
#include "socket/socket_ops.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::ops::epoll {
namespace {

// An interest's readiness now, for the events it wants; a non-blocking connect moves on first
// (readiness::Look only looks).
readiness::State LookNow(const Interest &interest) {
  MakeProgress(*interest.socket, interest.fd);
  return readiness::Look(*interest.socket, interest.fd,
                         static_cast<short>(interest.events & kPollEvents));
}

}  // namespace

uint64_t Cookie() {
  static const uint64_t cookie = [] {
    uint64_t value = 0;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) != sizeof value) {
      value = MonotonicNs() * 0x9e3779b97f4a7c15ULL ^ uint64_t(getpid());
    }
    return value | 1;
  }();
  return cookie;
}

int EpollSet::EnsureShadow() {
  if (shadow_ >= 0) return 0;
  const int shadow = sys::MoveHigh(sys::Real().epoll_create1(EPOLL_CLOEXEC));
  if (shadow < 0) return -1;
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = Cookie();
  if (sys::Real().epoll_ctl(epfd(), EPOLL_CTL_ADD, shadow, &event) != 0) {
    const int error = errno;  // EBADF or EINVAL: epfd is not an epoll descriptor
    sys::Real().close(shadow);
    errno = error;
    return -1;
  }
  shadow_ = shadow;
  sys::Own(shadow);
  return 0;
}

void EpollSet::HoldBell(int bell) {
  int &count = bells_[bell];
  if (count++ > 0) return;
  // Edge-triggered, never read: every ring reaches every set that registered the bell.
  struct epoll_event member = {};
  member.events = EPOLLIN | EPOLLET;
  member.data.u64 = ~uint64_t{0};
  if (sys::Real().epoll_ctl(shadow_, EPOLL_CTL_ADD, bell, &member) != 0 && errno != EEXIST) {
    bells_.erase(bell);
  }
}

void EpollSet::ReleaseBell(int bell) {
  auto found = bells_.find(bell);
  if (found == bells_.end() || --found->second > 0) return;
  bells_.erase(found);
  sys::Real().epoll_ctl(shadow_, EPOLL_CTL_DEL, bell, nullptr);
}

void EpollSet::Forget(Interest &interest) {
  const int saved_errno = errno;
  for (int i = 0; i < interest.registered_count; ++i) {
    if (interest.registered[i].bell) {
      ReleaseBell(interest.registered[i].fd);
    } else {
      sys::Real().epoll_ctl(shadow_, EPOLL_CTL_DEL, interest.registered[i].fd, nullptr);
    }
  }
  registrations_ -= static_cast<size_t>(interest.registered_count);
  interest.registered_count = 0;
  errno = saved_errno;
}

// EPOLLEXCLUSIVE as the kernel allows it (fs/eventpoll.c): only when adding, only beside these
// bits; an exclusive interest cannot be modified.
constexpr uint32_t kExclusiveOkBits =
    EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;

int EpollSet::Control(int op, int fd, const std::shared_ptr<Socket> &socket,
                      struct epoll_event *event) {
  if (op != EPOLL_CTL_DEL && (event->events & EPOLLEXCLUSIVE) != 0 &&
      (op == EPOLL_CTL_MOD || (event->events & ~kExclusiveOkBits) != 0)) {
    errno = EINVAL;
    return -1;
  }
  std::lock_guard<std::mutex> guard(mutex_);
  auto found = interests_.find(fd);
  switch (op) {
    case EPOLL_CTL_ADD: {
      if (found != interests_.end()) {
        errno = EEXIST;
        return -1;
      }
      if (EnsureShadow() != 0) return -1;
      Interest &interest = interests_[fd];
      interest.fd = fd;
      interest.socket = socket;
      interest.events = event->events;
      interest.data = event->data;
      // Already ready: queued as of now, as the kernel queues an item ready when added.
      interest.idle_seen_ns = MonotonicNs();
      interest.fresh = true;
      interest.stamped = readiness::WantInputStamps(*socket);
      unwatched_.insert(fd);
      return 0;
    }
    case EPOLL_CTL_MOD: {
      if (found == interests_.end()) {
        errno = ENOENT;
        return -1;
      }
      if ((found->second.events & EPOLLEXCLUSIVE) != 0) {
        errno = EINVAL;
        return -1;
      }
      found->second.events = event->events;
      found->second.data = event->data;
      found->second.disarmed = false;
      found->second.edge = {};  // as the kernel does, report a ready state again
      // Ready now and not queued: queued as of now (a queued one keeps its place).
      found->second.idle_seen_ns = MonotonicNs();
      found->second.fresh = true;
      // Watched for the directions its events want: watched again with the new ones.
      StopWatching(found->second);
      unwatched_.insert(fd);
      return 0;
    }
    case EPOLL_CTL_DEL: {
      if (found == interests_.end()) {
        errno = ENOENT;
        return -1;
      }
      Drop(found);
      return 0;
    }
    default:
      errno = EINVAL;
      return -1;
  }
}

EpollSet::Interests::iterator EpollSet::Drop(Interests::iterator it) {
  ready_.Remove(&it->second);
  Forget(it->second);
  StopWatching(it->second);
  unwatched_.erase(it->first);
  return interests_.erase(it);
}

bool EpollSet::LookAt(Interest &interest) {
  if (!interest.stamped) interest.stamped = readiness::WantInputStamps(*interest.socket);
  interest.state = LookNow(interest);
  interest.looked_in = harvests_;
  return (interest.events & EPOLLET) != 0 ? readiness::EdgeFired(interest.state, &interest.edge)
                                          : interest.state.events != 0;
}

int EpollSet::Harvest(struct epoll_event *events, int max, bool ask_kernel, uint64_t start) {
  ++harvests_;
  Discover(start);
  // The kernel's list takes a place in the queue when it had events last time, or now and then
  // (every kKernelLookInterval looks) while fast sockets alone fill maxevents: a busy fast
  // socket cannot starve ordinary descriptors, and costs no extra system call a look.
  if (ask_kernel && (kernel_productive_ || ready_.empty() ||
                     harvests_ - kernel_fetched_in_ >= kKernelLookInterval)) {
    ready_.AddLast(&kernel_turn_, start);
  }
  int count = Report(events, max, start);
  // Room left and the kernel not asked in this look: ask it now, after the fast sockets.
  if (ask_kernel && count >= 0 && count < max && kernel_fetched_in_ != harvests_) {
    const int kernel = FetchKernel(events + count, max - count);
    if (kernel < 0 && count == 0) return -1;
    if (kernel > 0) count += kernel;
  }
  return count;
}

int EpollSet::FetchKernel(struct epoll_event *events, int room) {
  bool shadow_ready = false;
  static constexpr struct timespec kNow = {0, 0};
  int got = KernelLook(events, room, &kNow, nullptr, &shadow_ready);
  if (got == 0 && shadow_ready) {
    // The shadow took the place of the kernel's own events (its members were registered, or
    // rang, since it was last drained): drain it, and ask again.
    DrainShadow();
    got = KernelLook(events, room, &kNow, nullptr, nullptr);
  }
  kernel_fetched_in_ = harvests_;
  kernel_productive_ = got > 0;
  return got;
}

bool EpollSet::Visit(Interests::iterator it, uint64_t start) {
  const int fd = it->first;
  Interest &interest = it->second;
  interest.visited_in = harvests_;
  interest.dirty = false;
  // Closed (the kernel drops a closed descriptor from its sets) or re-used for another file.
  if (FdTable::Instance().Get(fd) != interest.socket) {
    Drop(it);
    return false;
  }
  if (!readiness::Decides(*interest.socket)) {
    // Settled on kernel TCP: the kernel's set takes it over, events and data unchanged.
    struct epoll_event moved = {};
    moved.events = interest.events;
    moved.data = interest.data;
    const int saved_errno = errno;
    sys::Real().epoll_ctl(epfd(), EPOLL_CTL_ADD, fd, &moved);
    errno = saved_errno;
    Drop(it);
    return false;
  }
  if (interest.watched_session == nullptr) StartWatching(interest);
  // What a watched interest sleeps on changes with its state: brought up to date before the
  // next sleep (PrepareSleep), if it is still there then.
  if (interest.watched_session != nullptr && !interest.to_sync) {
    interest.to_sync = true;
    to_sync_.push_back(fd);
  }
  // A queued member keeps its place until the report looks at it (as in the kernel).
  if (!interest.disarmed && !interest.queued) {
    looked_.push_back(&interest);
    if (LookAt(interest)) {
      found_.push_back(&interest);
    } else {
      interest.idle_seen_ns = start;
      interest.fresh = false;
    }
  }
  return true;
}

void EpollSet::Discover(uint64_t start) {
  found_.clear();
  looked_.clear();
  TakeHints();
  // Watched interests are visited when their slot changed; the rest every time; all of them
  // now and then.
  if (swept_in_ == 0 ||
      (harvests_ - swept_in_ >= kSweepHarvests && start - swept_ns_ >= kSweepNs)) {
    swept_in_ = harvests_;
    swept_ns_ = start;
    for (auto it = interests_.begin(); it != interests_.end();) {
      auto next = std::next(it);
      if (it->second.visited_in != harvests_) Visit(it, start);
      it = next;
    }
  } else {
    visit_.assign(unwatched_.begin(), unwatched_.end());
    visit_.insert(visit_.end(), dirty_.begin(), dirty_.end());
    for (const int fd : visit_) {
      auto found = interests_.find(fd);
      if (found != interests_.end() && found->second.visited_in != harvests_) {
        Visit(found, start);
      }
    }
  }
  dirty_.clear();
  if (found_.empty()) return;
  uint64_t now = MonotonicNs();
  bool during_pass = false;
  for (ReadyQueue::Member *member : found_) {
    auto *interest = static_cast<Interest *>(member);
    member->ready_ns = ReadySince(*interest, now);
    during_pass |= interest->state.in_ready_ns != 0 && member->ready_ns > start;
  }
  if (during_pass) {
    // Something became ready while this pass went on: one looked at earlier in the pass may
    // have become ready before it (a peer that wrote there first). Look at those once more.
    const size_t first_pass = found_.size();
    for (Interest *interest : looked_) {
      if (interest->queued || interest->idle_seen_ns != start || interest->state.events != 0) {
        continue;
      }
      // Only one the peer wrote to since (one load), or that is not fast.
      const uint64_t sequence = readiness::InputSequence(*interest->socket);
      if (sequence != 0 && sequence == interest->state.in_sequence) continue;
      if (LookAt(*interest)) found_.push_back(interest);
    }
    now = MonotonicNs();
    for (size_t i = first_pass; i < found_.size(); ++i) {
      found_[i]->ready_ns = ReadySince(*static_cast<Interest *>(found_[i]), now);
    }
  }
  for (ReadyQueue::Member *member : found_) static_cast<Interest *>(member)->fresh = false;
  ready_.AddAll(&found_);
}

uint64_t EpollSet::ReadySince(const Interest &interest, uint64_t now) {
  // Input the peer stamped: when it wrote into the empty ring, after the last idle look.
  if (interest.state.in_ready_ns != 0) {
    return InputReadySince(interest.state.in_ready_ns, interest.idle_seen_ns, now);
  }
  // Ready when added (or modified): as of then, as the kernel queues it. Otherwise: now.
  return interest.fresh ? interest.idle_seen_ns : now;
}

int EpollSet::Report(struct epoll_event *events, int max, uint64_t start) {
  int count = 0;
  reported_ready_ns_ = 0;
  bool kernel_failed = false;
  found_.clear();  // here: what goes back to the tail
  for (ReadyQueue::Member *member = ready_.front(); member != nullptr && count < max;) {
    ReadyQueue::Member *const next = member->next;
    ready_.Remove(member);
    if (member == &kernel_turn_) {
      const int kernel = FetchKernel(events + count, max - count);
      if (kernel > 0) {
        count += kernel;
        found_.push_back(member);  // the kernel re-queues what stays ready: more may come
      }
      kernel_failed = kernel < 0;
      member = next;
      continue;
    }
    auto *interest = static_cast<Interest *>(member);
    if (interest->visited_in != harvests_ &&
        FdTable::Instance().Get(interest->fd) != interest->socket) {
      Drop(interests_.find(interest->fd));  // closed since it was queued: never reported
      member = next;
      continue;
    }
    if (interest->looked_in != harvests_) {
      // Queued by an earlier call: its state now. An edge-triggered one remembers what it saw.
      interest->state = LookNow(*interest);
      interest->looked_in = harvests_;
      if ((interest->events & EPOLLET) != 0) {
        (void)readiness::EdgeFired(interest->state, &interest->edge);
      }
    }
    const readiness::State &state = interest->state;
    if (state.events == 0) {
      interest->idle_seen_ns = start;  // no longer ready (since this look): out of the queue
    } else {
      events[count].events = static_cast<uint32_t>(static_cast<uint16_t>(state.events));
      events[count].data = interest->data;
      if (waited_ != Waited::kNo)
        readiness::CountWait(*interest->socket, waited_ == Waited::kSlept);
      if (interest->state.in_ready_ns != 0 &&
          (reported_ready_ns_ == 0 || member->ready_ns < reported_ready_ns_)) {
        reported_ready_ns_ = member->ready_ns;  // a peer's stamp, clamped (ReadySince)
      }
      ++count;
      if ((interest->events & EPOLLONESHOT) != 0) {
        interest->disarmed = true;
      } else if ((interest->events & EPOLLET) == 0) {
        found_.push_back(member);  // level-triggered: back to the tail
      }
    }
    member = next;
  }
  for (ReadyQueue::Member *member : found_) ready_.AddLast(member, start);
  return count == 0 && kernel_failed ? -1 : count;
}

// The kernel's own events (never the shadow's cookie). Returns -1 with errno on failure.
int EpollSet::KernelLook(struct epoll_event *events, int max, const struct timespec *timeout,
                         const sigset_t *sigmask, bool *shadow_ready) {
  // epoll_pwait2: the program's timeout to the nanosecond (a paced loop that waits 100 us must
  // not sleep a millisecond); epoll_pwait, rounded up, only on a kernel without it (< 5.11).
  int n = sys::Real().epoll_pwait2(epfd(), events, max, timeout, sigmask);
  if (n < 0 && errno == ENOSYS) {
    const int timeout_ms =
        timeout == nullptr
            ? -1
            : static_cast<int>(std::min<uint64_t>(
                  (uint64_t(timeout->tv_sec) * kNsPerSec + uint64_t(timeout->tv_nsec) + 999999) /
                      1000000,
                  1u << 30));
    n = sys::Real().epoll_pwait(epfd(), events, max, timeout_ms, sigmask);
  }
  if (n <= 0) return n;
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == Cookie()) {
      if (shadow_ready != nullptr) *shadow_ready = true;
      continue;
    }
    events[kept++] = events[i];
  }
  return kept;
}

int EpollSet::Wait(struct epoll_event *events, int max, const struct timespec *timeout,
                   const sigset_t *sigmask) {
  Deadline deadline(timeout, SpinBudgetNs(spin_));
  std::vector<std::shared_ptr<session::Session>> announced;  // by PrepareSleep, for EndWait
  bool slept = false;
  for (uint32_t round = 0;; ++round) {
    const bool ask_kernel = round % kKernelLookInterval == 0;
    const uint64_t now = MonotonicNs();  // one clock read a round, for the look and the deadline
    int count;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      // What ended the wait is counted on the sockets reported (loopfast stat).
      waited_ = slept ? Waited::kSlept : round > 0 ? Waited::kSpun : Waited::kNo;
      count = Harvest(events, max, ask_kernel, now);
    }
    // Events, or -1 (the kernel's error).
    if (count != 0) return Teach(spin_, deadline, round > 0, count, reported_ready_ns_);
    if (deadline.Expired(now)) {
      if (ask_kernel) return Teach(spin_, deadline, round > 0, 0);
      int last;
      {
        std::lock_guard<std::mutex> guard(mutex_);
        last = Harvest(events, max, true, MonotonicNs());  // ask the kernel once before giving up
      }
      return Teach(spin_, deadline, true, last);
    }
    if (deadline.Spinning(now)) {
      deadline.PauseSpinning(now);
      continue;
    }
    PrepareSleep(&announced);
    {
      std::lock_guard<std::mutex> guard(mutex_);
      waited_ = Waited::kSpun;  // found as it was about to sleep
      count = Harvest(events, max, false, MonotonicNs());
    }
    if (count != 0) {
      readiness::EndWait(&announced);
      return Teach(spin_, deadline, true, count);
    }
    struct timespec left = {};
    if (!deadline.forever()) {
      const uint64_t left_ns = deadline.LeftNs();
      left = {static_cast<time_t>(left_ns / kNsPerSec), static_cast<long>(left_ns % kNsPerSec)};
    }
    bool shadow_ready = false;
    const int kernel =
        KernelLook(events, max, deadline.forever() ? nullptr : &left, sigmask, &shadow_ready);
    readiness::EndWait(&announced);
    slept = true;
    // Events, or -1 (EINTR and the like, as epoll reports).
    if (kernel != 0) return Teach(spin_, deadline, true, kernel);
    if (shadow_ready) {
      // Woken by the shadow: take what rang now (the shadow stays readable until then).
      std::lock_guard<std::mutex> guard(mutex_);
      DrainShadow();
    }
    // Look again; at the kernel too, unless it just said it had nothing but the shadow (the
    // shadow alone, with room for more: one system call saved a wake-up).
    round = shadow_ready && max > 1 ? 0 : kKernelLookInterval - 1;
  }
}

}  // namespace loopfast::ops::epoll
