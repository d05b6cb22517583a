// One program epoll descriptor's set of fast (and maybe-fast) sockets: what epoll_ops.cc
// keeps per epoll descriptor (see there for the whole picture). epoll_set.cc looks and reports;
// epoll_set_sleep.cc keeps what a sleep waits on: change hints, the shadow's members.
//
// Thread rules: any thread; a set's state is under its mutex.
#ifndef LOOPFAST_SOCKET_EPOLL_SET_H_
#define LOOPFAST_SOCKET_EPOLL_SET_H_

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "socket/change_watch.h"
#include "socket/fd_table.h"
#include "socket/readiness.h"
#include "socket/ready_queue.h"
#include "socket/socket.h"
#include "sys/owned_fds.h"
#include "wait/spin_policy.h"

namespace loopfast::ops::epoll {

inline constexpr uint32_t kKernelLookInterval = 16;
// Every interest is visited at least this rarely while a set is in use (harvests and time).
inline constexpr uint64_t kSweepHarvests = 64;
inline constexpr uint64_t kSweepNs = 50 * 1000 * 1000;
inline constexpr uint32_t kPollEvents =
    EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLRDNORM | EPOLLWRNORM | EPOLLERR | EPOLLHUP;
static_assert(EPOLLIN == POLLIN && EPOLLOUT == POLLOUT && EPOLLRDHUP == POLLRDHUP &&
              EPOLLPRI == POLLPRI && EPOLLERR == POLLERR && EPOLLHUP == POLLHUP);

// Marks the shadow's event in the program's set. Random per process image, so that no value a
// program stores in epoll_data can be mistaken for it in practice.
uint64_t Cookie();

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
  // Watched through its session's change hints (change_watch.h): looked at only when its slot
  // changed. Otherwise (not fast yet, or a forked child's) looked at in every harvest.
  const session::Session *watched_session = nullptr;
  uint32_t watched_slot = 0;
  bool dirty = false;       // named by a hint (or a kernel event) since its last look
  bool to_sync = false;     // in EpollSet::to_sync_
  uint64_t visited_in = 0;  // the harvest that last visited it (one visit a harvest)
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
  // Discover()'s look at one interest: false when it was dropped (closed, or moved to the
  // kernel's set).
  bool Visit(Interests::iterator it, uint64_t start);
  // Change hints (caller holds mutex_): watch an interest through its session's hints from
  // now on when it can be; stop; mark one looked at in the next harvest; take the hints.
  void StartWatching(Interest &interest);
  void StopWatching(Interest &interest);
  void MarkDirty(int fd);
  void TakeHints();
  // Keeps the shadow's members for `interest` what PrepareWait names (caller holds mutex_).
  // `announce`: as a sleep's preparation (the sessions announced go to `announced`).
  void SyncRegistration(int fd, Interest &interest, bool announce,
                        std::vector<std::shared_ptr<session::Session>> *announced);
  // Announces the sleep; `announced` receives the sessions to EndWait() after it.
  void PrepareSleep(std::vector<std::shared_ptr<session::Session>> *announced);
  // Takes what rang in the shadow; a kernel socket that changed is looked at next (caller
  // holds mutex_).
  void DrainShadow();
  // `shadow_ready`, when given, is set when the shadow was among the events.
  // `timeout`: null waits for ever.
  int KernelLook(struct epoll_event *events, int max, const struct timespec *timeout,
                 const sigset_t *sigmask, bool *shadow_ready = nullptr);

  // Registers `bell` in the shadow for one more interest (caller holds mutex_).
  void HoldBell(int bell);
  void ReleaseBell(int bell);

  std::atomic<int> epfd_;
  wait::SpinPolicy spin_;  // whether Wait spins (wait/spin_policy.h)
  // The earliest stamped time a fast socket the last report returned became ready (0: none),
  // which teaches spin_ how soon a wait was answered.
  uint64_t reported_ready_ns_ = 0;
  // Whether the Wait now looking had to wait, and how (counted on what it reports).
  enum class Waited { kNo, kSpun, kSlept };
  Waited waited_ = Waited::kNo;
  std::mutex mutex_;
  int shadow_ = -1;
  Interests interests_;       // by descriptor
  std::map<int, int> bells_;  // bell descriptor -> interests registered on it
  size_t registrations_ = 0;  // the interests' registered members, summed
  ReadyQueue ready_;          // what is ready, in the order it became ready
  // The kernel's own ready list (the ordinary descriptors) as one member of ready_: when it
  // comes up, the kernel's events are fetched there, in the kernel's order.
  ReadyQueue::Member kernel_turn_;
  uint64_t harvests_ = 0;
  uint64_t kernel_fetched_in_ = 0;           // the look that last asked the kernel for its events
  bool kernel_productive_ = true;            // and whether it had any
  std::vector<ReadyQueue::Member *> found_;  // reused by Discover() and Report()
  // Change hints: the sessions watched (and how many interests each), the interests of each
  // (session, slot), those looked at in every harvest, and those named since the last look.
  struct WatchedSession {
    std::unique_ptr<HintSubscription> subscription;
    size_t interests = 0;
  };
  std::map<const session::Session *, WatchedSession> watched_;
  std::multimap<std::pair<const session::Session *, uint32_t>, int> by_slot_;
  std::set<int> unwatched_;
  std::vector<int> dirty_;
  std::vector<int> to_sync_;        // watched interests looked at since the last sleep
  std::vector<int> visit_;          // scratch: what this harvest visits
  std::vector<uint32_t> changed_;   // scratch: slots a subscription named
  std::vector<Interest *> looked_;  // scratch: what this harvest looked at
  // Every interest is visited now and then anyway (a safety net: closes are noticed there).
  uint64_t swept_in_ = 0;
  uint64_t swept_ns_ = 0;
};

}  // namespace loopfast::ops::epoll

#endif  // LOOPFAST_SOCKET_EPOLL_SET_H_
