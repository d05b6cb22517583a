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
//
// Cost: a look takes the change hints of the sessions the set watches and looks only at the
// sockets whose slots changed (docs/design.md, "Change hints"), as the kernel's ready list
// spares its epoll from looking at every item. The set itself lives in epoll_set.h.
#include <sys/epoll.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "socket/deadline.h"
#include "socket/descriptor_map.h"
#include "socket/epoll_set.h"
#include "socket/fd_table.h"
#include "socket/readiness.h"
#include "socket/socket_ops.h"
#include "sys/real_calls.h"

namespace loopfast::ops {
namespace {

// The epoll descriptors loopfast keeps sets for. Looking one up is lock-free (every epoll_wait
// does); the map beside it, under the mutex, is what mutations and Forget walk.
class Registry {
 public:
  static Registry &Instance() {
    static Registry *registry = new Registry;  // never destroyed: used until the last exit
    return *registry;
  }
  bool Has(int epfd) const {
    return live_.load(std::memory_order_acquire) != 0 && Index()->Has(epfd);
  }
  std::shared_ptr<EpollSet> Find(int epfd) const {
    if (live_.load(std::memory_order_acquire) == 0) return nullptr;
    return Index()->Get(epfd);
  }
  std::shared_ptr<EpollSet> FindOrCreate(int epfd) {
    std::lock_guard<std::mutex> guard(mutex_);
    std::shared_ptr<EpollSet> &set = sets_[epfd];
    if (!set) {
      set = std::make_shared<EpollSet>(epfd);
      if (Index() == nullptr) index_.store(new DescriptorMap<EpollSet>, std::memory_order_release);
      Index()->Set(epfd, set);
      live_.fetch_add(1, std::memory_order_release);
    }
    return set;
  }
  void ResetInChild() {
    if (DescriptorMap<EpollSet> *index = Index()) index->ResetInChild();
  }
  // `copy` now names the same epoll instance as `epfd` (dup, dup2, dup3, F_DUPFD).
  void Alias(int epfd, int copy) {
    if (live_.load(std::memory_order_acquire) == 0) return;
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = sets_.find(epfd);
    if (found == sets_.end()) return;
    std::shared_ptr<EpollSet> set = found->second;
    Index()->Set(copy, set);
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
      Index()->Remove(closed);
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
  // The same sets, for lookups without the mutex. Made with the first set (before live_
  // counts it, so whoever sees live_ above 0 finds it): its pages cost nothing until then.
  std::atomic<DescriptorMap<EpollSet> *> index_{nullptr};
  DescriptorMap<EpollSet> *Index() const { return index_.load(std::memory_order_acquire); }
  std::atomic<int> live_{0};
};

}  // namespace

std::shared_ptr<EpollSet> FindEpoll(int epfd) { return Registry::Instance().Find(epfd); }

int EpollCtl(std::shared_ptr<EpollSet> set, int epfd, int op, int fd,
             const std::shared_ptr<Socket> &socket, struct epoll_event *event) {
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

int EpollWait(EpollSet &set, int epfd, struct epoll_event *events, int max,
              const struct timespec *timeout, const sigset_t *sigmask) {
  if (max <= 0 || (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
                                          timeout->tv_nsec >= long(kNsPerSec)))) {
    return sys::Real().epoll_pwait2(epfd, events, max, timeout, sigmask);  // its errors
  }
  return set.Wait(events, max, timeout, sigmask);
}

bool IsLoopfastEpoll(int epfd) { return Registry::Instance().Has(epfd); }

void ResetEpollInChild() { Registry::Instance().ResetInChild(); }

void ForgetEpoll(int fd) { Registry::Instance().Forget(fd, fd); }

void ForgetEpollRange(int first, int last) { Registry::Instance().Forget(first, last); }

void AliasEpoll(int epfd, int copy) { Registry::Instance().Alias(epfd, copy); }

}  // namespace loopfast::ops
