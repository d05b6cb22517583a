// What an epoll set's sleep waits on (epoll_set.h): the change hints of the sessions it watches,
// and the shadow's members (bells, kernel sockets) for each interest.
#include <cerrno>
#include <vector>

#include "socket/epoll_set.h"
#include "sys/real_calls.h"

namespace loopfast::ops::epoll {

void EpollSet::StartWatching(Interest &interest) {
  readiness::Watched watched =
      readiness::WatchChanges(*interest.socket, static_cast<short>(interest.events & kPollEvents));
  if (!watched.session) return;
  const session::Session *key = watched.session.get();
  WatchedSession &entry = watched_[key];
  if (!entry.subscription) {
    entry.subscription = std::make_unique<HintSubscription>(std::move(watched.session));
  }
  ++entry.interests;
  entry.subscription->Watch(watched.slot);
  interest.watched_session = key;
  interest.watched_slot = watched.slot;
  by_slot_.emplace(std::make_pair(key, watched.slot), interest.fd);
  unwatched_.erase(interest.fd);
}

void EpollSet::StopWatching(Interest &interest) {
  const session::Session *key = interest.watched_session;
  if (key == nullptr) return;
  interest.watched_session = nullptr;
  auto range = by_slot_.equal_range(std::make_pair(key, interest.watched_slot));
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == interest.fd) {
      by_slot_.erase(it);
      break;
    }
  }
  auto found = watched_.find(key);
  if (found == watched_.end()) return;
  found->second.subscription->Unwatch(interest.watched_slot);
  if (--found->second.interests == 0) watched_.erase(found);
}

void EpollSet::MarkDirty(int fd) {
  auto found = interests_.find(fd);
  if (found == interests_.end() || found->second.dirty) return;
  found->second.dirty = true;
  dirty_.push_back(fd);
}

void EpollSet::TakeHints() {
  for (auto it = watched_.begin(); it != watched_.end();) {
    HintSubscription &subscription = *it->second.subscription;
    const session::Session *key = it->first;
    ++it;  // StopWatching below may erase the entry
    if (!subscription.usable()) {
      // A forked child's copy of the set: the parent takes these hints. Look every time.
      std::vector<int> fds;
      for (auto entry = by_slot_.lower_bound({key, 0});
           entry != by_slot_.end() && entry->first.first == key; ++entry) {
        fds.push_back(entry->second);
      }
      for (const int fd : fds) {
        auto found = interests_.find(fd);
        if (found == interests_.end()) continue;
        StopWatching(found->second);
        unwatched_.insert(fd);
      }
      continue;
    }
    subscription.Take(&changed_);
    for (const uint32_t slot : changed_) {
      auto range = by_slot_.equal_range(std::make_pair(key, slot));
      for (auto entry = range.first; entry != range.second; ++entry) MarkDirty(entry->second);
    }
  }
}

void EpollSet::SyncRegistration(int fd, Interest &interest, bool announce,
                                std::vector<std::shared_ptr<session::Session>> *announced) {
  readiness::WaitFd wanted[readiness::kMaxWaitFds];
  int count = 0;
  if (!interest.disarmed) {
    count = readiness::PrepareWait(
        *interest.socket, fd, static_cast<short>(interest.events & kPollEvents), wanted, announce);
  }
  auto same = [](const readiness::WaitFd &a, const readiness::WaitFd &b) {
    return a.fd == b.fd && a.events == b.events && a.edge == b.edge && a.bell == b.bell;
  };
  bool unchanged = count == interest.registered_count;
  for (int i = 0; unchanged && i < count; ++i) unchanged = same(wanted[i], interest.registered[i]);
  if (unchanged) return;
  const int saved_errno = errno;
  Forget(interest);
  for (int i = 0; i < count; ++i) {
    if (wanted[i].bell) {
      HoldBell(wanted[i].fd);
      interest.registered[interest.registered_count++] = wanted[i];
      ++registrations_;
      continue;
    }
    struct epoll_event member = {};
    member.events = static_cast<uint32_t>(static_cast<uint16_t>(wanted[i].events)) |
                    (wanted[i].edge ? uint32_t{EPOLLET} : 0u);
    member.data.u64 = (uint64_t(uint32_t(fd)) << 32) | uint32_t(wanted[i].fd);
    if (sys::Real().epoll_ctl(shadow_, EPOLL_CTL_ADD, wanted[i].fd, &member) == 0) {
      interest.registered[interest.registered_count++] = wanted[i];
      ++registrations_;
    }
  }
  errno = saved_errno;
}

void EpollSet::DrainShadow() {
  // Take the edges that rang (the shadow stays readable until they are taken). A kernel socket
  // at its end stays ready until the members are updated, and the kernel reports ready members
  // in turn: enough passes to see each once, never more.
  struct epoll_event rang[64];
  for (size_t pass = 0; pass <= (bells_.size() + registrations_) / 64; ++pass) {
    const int n = sys::Real().epoll_wait(shadow_, rang, 64, 0);
    for (int i = 0; i < n; ++i) {
      // A kernel socket (not a bell) changed: its peer may have died.
      const int owner = static_cast<int>(rang[i].data.u64 >> 32);
      const int woken_fd = static_cast<int>(rang[i].data.u64 & 0xffffffffu);
      if (rang[i].data.u64 == ~uint64_t{0} || woken_fd != owner) continue;
      auto found = interests_.find(owner);
      if (found == interests_.end()) continue;
      readiness::NoteKernelChanged(*found->second.socket);
      MarkDirty(owner);
    }
    if (n < 64) break;
  }
}

void EpollSet::PrepareSleep(std::vector<std::shared_ptr<session::Session>> *announced) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (shadow_ < 0) return;
  const int saved_errno = errno;
  // No drain of the shadow here: what rang since the last drain makes the sleep return at once,
  // and Wait drains after every wake-up the shadow caused (one system call less a sleep).
  // What a watched interest sleeps on (its session's bell, its kernel socket) is brought up to
  // date here, for those looked at since the last sleep only: a connection that came and went
  // in between never costs an epoll_ctl.
  for (const int fd : to_sync_) {
    auto found = interests_.find(fd);
    if (found == interests_.end()) continue;
    found->second.to_sync = false;
    // Closed since (the program closes without EPOLL_CTL_DEL): it leaves the set, unregistered.
    if (FdTable::Instance().Get(fd) != found->second.socket) {
      Drop(found);
      continue;
    }
    if (found->second.watched_session != nullptr) {
      SyncRegistration(fd, found->second, false, nullptr);
    }
  }
  to_sync_.clear();
  // Watched interests: a change from now on rings the session's bell. The others announce
  // themselves one by one and keep the shadow's members up to date.
  for (auto &[session, entry] : watched_) {
    entry.subscription->AnnounceSleep();
    announced->push_back(entry.subscription->session());
  }
  for (const int fd : unwatched_) {
    auto found = interests_.find(fd);
    if (found != interests_.end()) SyncRegistration(fd, found->second, true, announced);
  }
  errno = saved_errno;
}

}  // namespace loopfast::ops::epoll
