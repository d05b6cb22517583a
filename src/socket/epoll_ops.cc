// epoll over a mix of fast and ordinary descriptors.
//
// The kernel's epoll set keeps every ordinary descriptor, as the program registered it. Fast
// (and maybe-fast) sockets are kept here instead, per epoll descriptor, with the program's
// events and data. Each such set also owns a private "shadow" epoll descriptor holding what
// the fast sockets sleep on (their sessions' bells, edge-triggered and shared by every socket
// of a session; their kernel sockets); the shadow sits in the program's set under a cookie, so
// the program's set wakes up (even when nested or polled elsewhere) when a fast socket may have
// changed. epoll_wait looks at the fast sockets in user space, asks the kernel for the rest,
// and filters the cookie out of what it returns.
//
// A fast socket that settles on kernel TCP moves into the kernel's set with its events and
// data; its current readiness is reported there from then on (the move loses no event).
//
// Order: fast sockets are reported in the order they became ready, as the kernel's ready list
// gives them (ready_queue.h): each look queues what it finds newly ready by when that happened,
// the report walks the queue from its head, and a level-triggered socket still ready goes back
// to the tail. The kernel's own ready list takes its turn in the same queue as one member,
// queued when loopfast asks the kernel (the time it asks: when the kernel's items became ready
// is not known more closely), so neither side starves the other.
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/cacheline.h"
#include "socket/config.h"
#include "socket/deadline.h"
#include "socket/fd_table.h"
#include "socket/readiness.h"
#include "socket/ready_queue.h"
#include "socket/socket_ops.h"
#include "sys/owned_fds.h"
#include "sys/real_calls.h"

namespace loopfast::ops {
namespace {

constexpr uint32_t kKernelLookInterval = 16;
constexpr uint32_t kPollEvents =
    EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLRDNORM | EPOLLWRNORM | EPOLLERR | EPOLLHUP;
static_assert(EPOLLIN == POLLIN && EPOLLOUT == POLLOUT && EPOLLRDHUP == POLLRDHUP &&
              EPOLLPRI == POLLPRI && EPOLLERR == POLLERR && EPOLLHUP == POLLHUP);

// Marks the shadow's event in the program's set. Random per process image, so that no value a
// program stores in epoll_data can be mistaken for it in practice.
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

// A member of the set's ready queue while it is ready (ReadyQueue::Member).
struct Interest : ReadyQueue::Member {
  int fd = -1;
  std::shared_ptr<Socket> socket;
  uint32_t events = 0;
  epoll_data_t data{};
  bool disarmed = false;  // EPOLLONESHOT fired; waits for EPOLL_CTL_MOD
  readiness::EdgeMemory edge;
  // Order: when a look last found it not ready (its input became ready after that), and what
  // the look of harvest number `looked_in` found.
  uint64_t idle_seen_ns = 0;
  uint64_t looked_in = 0;
  readiness::State state;
  bool stamped = false;  // the peer stamps when its writes make this socket readable
  bool fresh = false;    // not looked at since EPOLL_CTL_ADD or _MOD (at idle_seen_ns)
  readiness::WaitFd registered[readiness::kMaxWaitFds];
  int registered_count = 0;
};

class EpollSet {
 public:
  explicit EpollSet(int epfd) : epfd_(epfd) {}
  // The descriptor loopfast uses for the kernel's set (the program may dup and close copies).
  void Renumber(int epfd) { epfd_.store(epfd, std::memory_order_release); }
  int epfd() const { return epfd_.load(std::memory_order_acquire); }
  ~EpollSet() { sys::CloseOwned(shadow_); }

  int Control(int op, int fd, const std::shared_ptr<Socket> &socket, struct epoll_event *event);
  bool Holds(int fd) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = interests_.find(fd);
    if (found == interests_.end()) return false;
    // Closed without EPOLL_CTL_DEL, the number perhaps re-used: the kernel dropped it from its
    // set at the close; so do we, before the number is added again.
    if (FdTable::Instance().Get(fd) != found->second.socket) {
      Drop(found);
      return false;
    }
    return true;
  }
  int Wait(struct epoll_event *events, int max, const struct timespec *timeout,
           const sigset_t *sigmask);

 private:
  using Interests = std::map<int, Interest>;

  int EnsureShadow();
  // One look at the set, and the report (caller holds mutex_): Discover() queues what became
  // ready, then Report() walks the queue. `ask_kernel`: the kernel's own ready list takes a
  // turn too. `start`: the clock just before. Returns the events written, or -1 when only the
  // kernel's answer was an error.
  int Harvest(struct epoll_event *events, int max, bool ask_kernel, uint64_t start);
  void Discover(uint64_t start);
  int Report(struct epoll_event *events, int max, uint64_t start);
  // The kernel's own events, up to `room` (the kernel's turn); -1 with errno on failure.
  int FetchKernel(struct epoll_event *events, int room);
  // Looks at an interest for this harvest; true when it is to be queued.
  bool LookAt(Interest &interest);
  // When a found interest became ready, as well as it can be known (ready_queue.h).
  static uint64_t ReadySince(const Interest &interest, uint64_t now);
  Interests::iterator Drop(Interests::iterator it);  // caller holds mutex_
  void Forget(Interest &interest);                   // caller holds mutex_
  void PrepareSleep();
  int KernelLook(struct epoll_event *events, int max, int timeout_ms, const sigset_t *sigmask);

  // Registers `bell` in the shadow for one more interest (caller holds mutex_).
  void HoldBell(int bell);
  void ReleaseBell(int bell);

  std::atomic<int> epfd_;
  wait::SpinPolicy spin_;  // whether Wait spins (wait/spin_policy.h)
  std::mutex mutex_;
  int shadow_ = -1;
  Interests interests_;       // by descriptor
  std::map<int, int> bells_;  // bell descriptor -> interests registered on it
  ReadyQueue ready_;          // what is ready, in the order it became ready
  // The kernel's own ready list (the ordinary descriptors) as one member of ready_: when it
  // comes up, the kernel's events are fetched there, in the kernel's order.
  ReadyQueue::Member kernel_turn_;
  uint64_t harvests_ = 0;
  uint64_t kernel_fetched_in_ = 0;           // the look that last asked the kernel for its events
  bool kernel_productive_ = true;            // and whether it had any
  std::vector<ReadyQueue::Member *> found_;  // reused by Discover() and Report()
};

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
  return interests_.erase(it);
}

bool EpollSet::LookAt(Interest &interest) {
  if (!interest.stamped) interest.stamped = readiness::WantInputStamps(*interest.socket);
  const short wanted = static_cast<short>(interest.events & kPollEvents);
  interest.state = readiness::Look(*interest.socket, interest.fd, wanted);
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
  const int got = KernelLook(events, room, 0, nullptr);
  kernel_fetched_in_ = harvests_;
  kernel_productive_ = got > 0;
  return got;
}

void EpollSet::Discover(uint64_t start) {
  found_.clear();
  for (auto it = interests_.begin(); it != interests_.end();) {
    const int fd = it->first;
    Interest &interest = it->second;
    // Closed (the kernel drops a closed descriptor from its sets) or re-used for another file.
    if (FdTable::Instance().Get(fd) != interest.socket) {
      it = Drop(it);
      continue;
    }
    if (!readiness::Decides(*interest.socket)) {
      // Settled on kernel TCP: the kernel's set takes it over, events and data unchanged.
      struct epoll_event moved = {};
      moved.events = interest.events;
      moved.data = interest.data;
      const int saved_errno = errno;
      sys::Real().epoll_ctl(epfd(), EPOLL_CTL_ADD, fd, &moved);
      errno = saved_errno;
      it = Drop(it);
      continue;
    }
    // A queued member keeps its place until the report looks at it (as in the kernel).
    if (!interest.disarmed && !interest.queued) {
      if (LookAt(interest)) {
        found_.push_back(&interest);
      } else {
        interest.idle_seen_ns = start;
        interest.fresh = false;
      }
    }
    ++it;
  }
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
    for (auto &[fd, interest] : interests_) {
      if (interest.disarmed || interest.queued || interest.looked_in != harvests_) continue;
      if (interest.idle_seen_ns != start || interest.state.events != 0) continue;
      // Only one the peer wrote to since (one load), or that is not fast.
      const uint64_t sequence = readiness::InputSequence(*interest.socket);
      if (sequence != 0 && sequence == interest.state.in_sequence) continue;
      if (LookAt(interest)) found_.push_back(&interest);
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
    if (interest->looked_in != harvests_) {
      // Queued by an earlier call: its state now. An edge-triggered one remembers what it saw.
      const short wanted = static_cast<short>(interest->events & kPollEvents);
      interest->state = readiness::Look(*interest->socket, interest->fd, wanted);
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

void EpollSet::PrepareSleep() {
  std::lock_guard<std::mutex> guard(mutex_);
  if (shadow_ < 0) return;
  const int saved_errno = errno;
  // Take the edges that rang since the last sleep (the shadow stays readable until they are
  // taken). A kernel socket at its end stays ready until the members are updated below, and
  // the kernel reports ready members in turn: enough passes to see each once, never more.
  struct epoll_event rang[64];
  size_t members = bells_.size();
  for (const auto &entry : interests_)
    members += static_cast<size_t>(entry.second.registered_count);
  for (size_t pass = 0; pass <= members / 64; ++pass) {
    const int n = sys::Real().epoll_wait(shadow_, rang, 64, 0);
    for (int i = 0; i < n; ++i) {
      // A kernel socket (not a bell) changed: its peer may have died.
      const int owner = static_cast<int>(rang[i].data.u64 >> 32);
      const int woken_fd = static_cast<int>(rang[i].data.u64 & 0xffffffffu);
      if (rang[i].data.u64 == ~uint64_t{0} || woken_fd != owner) continue;
      auto found = interests_.find(owner);
      if (found != interests_.end()) readiness::NoteKernelChanged(*found->second.socket);
    }
    if (n < 64) break;
  }
  // Announce every armed interest and keep the shadow's members up to date.
  for (auto &[fd, interest] : interests_) {
    readiness::WaitFd wanted[readiness::kMaxWaitFds];
    int count = 0;
    if (!interest.disarmed) {
      count = readiness::PrepareWait(*interest.socket, fd,
                                     static_cast<short>(interest.events & kPollEvents), wanted);
    }
    auto same = [](const readiness::WaitFd &a, const readiness::WaitFd &b) {
      return a.fd == b.fd && a.events == b.events && a.edge == b.edge && a.bell == b.bell;
    };
    bool unchanged = count == interest.registered_count;
    for (int i = 0; unchanged && i < count; ++i) {
      unchanged = same(wanted[i], interest.registered[i]);
    }
    if (unchanged) continue;
    Forget(interest);
    for (int i = 0; i < count; ++i) {
      if (wanted[i].bell) {
        HoldBell(wanted[i].fd);
        interest.registered[interest.registered_count++] = wanted[i];
        continue;
      }
      struct epoll_event member = {};
      member.events = static_cast<uint32_t>(static_cast<uint16_t>(wanted[i].events)) |
                      (wanted[i].edge ? uint32_t{EPOLLET} : 0u);
      member.data.u64 = (uint64_t(uint32_t(fd)) << 32) | uint32_t(wanted[i].fd);
      if (sys::Real().epoll_ctl(shadow_, EPOLL_CTL_ADD, wanted[i].fd, &member) == 0) {
        interest.registered[interest.registered_count++] = wanted[i];
      }
    }
  }
  errno = saved_errno;
}

// The kernel's own events (never the shadow's cookie). Returns -1 with errno on failure.
int EpollSet::KernelLook(struct epoll_event *events, int max, int timeout_ms,
                         const sigset_t *sigmask) {
  const int n = sys::Real().epoll_pwait(epfd(), events, max, timeout_ms, sigmask);
  if (n <= 0) return n;
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.u64 == Cookie()) continue;
    events[kept++] = events[i];
  }
  return kept;
}

int EpollSet::Wait(struct epoll_event *events, int max, const struct timespec *timeout,
                   const sigset_t *sigmask) {
  const Deadline deadline(timeout, SpinBudgetNs(spin_));
  for (uint32_t round = 0;; ++round) {
    const bool ask_kernel = round % kKernelLookInterval == 0;
    const uint64_t now = MonotonicNs();  // one clock read a round, for the look and the deadline
    int count;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      count = Harvest(events, max, ask_kernel, now);
    }
    // Events, or -1 (the kernel's error).
    if (count != 0) return Teach(spin_, deadline, round > 0, count);
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
    PrepareSleep();
    {
      std::lock_guard<std::mutex> guard(mutex_);
      count = Harvest(events, max, false, MonotonicNs());
    }
    if (count != 0) return Teach(spin_, deadline, true, count);
    int timeout_ms = -1;
    if (!deadline.forever()) {
      timeout_ms =
          static_cast<int>(std::min<uint64_t>((deadline.LeftNs() + 999999) / 1000000, 1u << 30));
    }
    const int kernel = KernelLook(events, max, timeout_ms, sigmask);
    // Events, or -1 (EINTR and the like, as epoll reports).
    if (kernel != 0) return Teach(spin_, deadline, true, kernel);
    round = kKernelLookInterval - 1;  // woken by the shadow (or timed out): look again
  }
}

class Registry {
 public:
  static Registry &Instance() {
    static Registry *registry = new Registry;  // never destroyed: used until the last exit
    return *registry;
  }
  std::shared_ptr<EpollSet> Find(int epfd) {
    if (live_.load(std::memory_order_acquire) == 0) return nullptr;
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = sets_.find(epfd);
    return found == sets_.end() ? nullptr : found->second;
  }
  std::shared_ptr<EpollSet> FindOrCreate(int epfd) {
    std::lock_guard<std::mutex> guard(mutex_);
    std::shared_ptr<EpollSet> &set = sets_[epfd];
    if (!set) {
      set = std::make_shared<EpollSet>(epfd);
      live_.fetch_add(1, std::memory_order_release);
    }
    return set;
  }
  // `copy` now names the same epoll instance as `epfd` (dup, dup2, dup3, F_DUPFD).
  void Alias(int epfd, int copy) {
    if (live_.load(std::memory_order_acquire) == 0) return;
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = sets_.find(epfd);
    if (found == sets_.end()) return;
    std::shared_ptr<EpollSet> set = found->second;
    if (sets_.insert_or_assign(copy, std::move(set)).second) {
      live_.fetch_add(1, std::memory_order_release);
    }
  }
  // The descriptors in [first, last] were closed.
  void Forget(int first, int last) {
    if (live_.load(std::memory_order_acquire) == 0) return;
    std::lock_guard<std::mutex> guard(mutex_);
    for (auto it = sets_.begin(); it != sets_.end();) {
      if (it->first < first || it->first > last) {
        ++it;
        continue;
      }
      std::shared_ptr<EpollSet> set = std::move(it->second);
      const int closed = it->first;
      it = sets_.erase(it);
      live_.fetch_sub(1, std::memory_order_release);
      if (set->epfd() != closed) continue;
      // Another copy still names the instance: use that one for the kernel's set from now on.
      for (auto &[fd, other] : sets_) {
        if (other == set && (fd < first || fd > last)) {
          set->Renumber(fd);
          break;
        }
      }
    }
  }

 private:
  std::mutex mutex_;
  std::unordered_map<int, std::shared_ptr<EpollSet>> sets_;
  std::atomic<int> live_{0};
};

}  // namespace

int EpollCtl(int epfd, int op, int fd, struct epoll_event *event) {
  std::shared_ptr<Socket> socket = FdTable::Instance().Get(fd);
  std::shared_ptr<EpollSet> set = Registry::Instance().Find(epfd);
  const bool held = set && set->Holds(fd);
  if (!held && !(socket && op == EPOLL_CTL_ADD && readiness::Decides(*socket))) {
    return sys::Real().epoll_ctl(epfd, op, fd, event);
  }
  if (op != EPOLL_CTL_DEL && event == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (epfd == fd) {
    errno = EINVAL;
    return -1;
  }
  if (!set) set = Registry::Instance().FindOrCreate(epfd);
  return set->Control(op, fd, socket, event);
}

int EpollWait(int epfd, struct epoll_event *events, int max, const struct timespec *timeout,
              const sigset_t *sigmask) {
  std::shared_ptr<EpollSet> set = Registry::Instance().Find(epfd);
  if (!set || max <= 0 ||
      (timeout != nullptr &&
       (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= long(kNsPerSec)))) {
    return sys::Real().epoll_pwait2(epfd, events, max, timeout, sigmask);  // its errors
  }
  return set->Wait(events, max, timeout, sigmask);
}

bool IsLoopfastEpoll(int epfd) { return Registry::Instance().Find(epfd) != nullptr; }

void ForgetEpoll(int fd) { Registry::Instance().Forget(fd, fd); }

void ForgetEpollRange(int first, int last) { Registry::Instance().Forget(first, last); }

void AliasEpoll(int epfd, int copy) { Registry::Instance().Alias(epfd, copy); }

}  // namespace loopfast::ops
