// The implementation of change_watch.h (what it is for is said there).
#include "socket/change_watch.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "session/change_hints.h"
#include "sys/owned_fds.h"

namespace loopfast::ops {

// This process's subscriptions, by session, and the slots they watch together.
class HintHub {
 public:
  static HintHub *&Instance() {
    static HintHub *hub = new HintHub;  // never destroyed: sets may outlive static destruction
    return hub;
  }
  void Add(HintSubscription *subscription) {
    std::lock_guard<std::mutex> guard(mutex_);
    sessions_[subscription->session_.get()].subscriptions.push_back(subscription);
  }
  void Remove(HintSubscription *subscription) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = sessions_.find(subscription->session_.get());
    if (found == sessions_.end()) return;
    Watched &watched = found->second;
    std::erase(watched.subscriptions, subscription);
    for (uint32_t word = 0; word < session::kHintWords; ++word) {
      if (subscription->mask_[word] != 0) Refresh(&watched, word);
    }
    if (watched.subscriptions.empty()) sessions_.erase(found);
  }
  // `subscription` starts or stops watching `slot`: its mask changes under this lock (other
  // sets deliver to it by that mask).
  void Watch(HintSubscription *subscription, uint32_t slot, bool on) {
    std::lock_guard<std::mutex> guard(mutex_);
    subscription->SetWatched(slot, on);
    auto found = sessions_.find(subscription->session_.get());
    if (found != sessions_.end()) Refresh(&found->second, slot / 64);
  }
  // Takes the session's hints of every slot this process watches for every subscription, then
  // hands `subscription` its own.
  void Take(HintSubscription *subscription, std::vector<uint32_t> *out) {
    const session::Session &session = *subscription->session_;
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = sessions_.find(&session);
    if (found == sessions_.end()) return;
    Watched &watched = found->second;
    if (watched.words_stale) {
      watched.words.clear();
      for (uint32_t word = 0; word < session::kHintWords; ++word) {
        if (watched.mask[word] != 0) watched.words.push_back(word);
      }
      watched.words_stale = false;
    }
    session::TakeChanged(session.arena().hints(session.side()), watched.mask.data(),
                         watched.words.data(), watched.words.size(),
                         [&](uint32_t word, uint64_t bits) {
                           for (HintSubscription *each : watched.subscriptions) {
                             each->Deliver(word, bits);
                           }
                         });
    subscription->TakeOwn(out);
  }

 private:
  struct Watched {
    std::vector<HintSubscription *> subscriptions;
    // By word: the slots any subscription watches (the union of their masks).
    std::vector<uint64_t> mask = std::vector<uint64_t>(session::kHintWords, 0);
    std::vector<uint32_t> words;  // the words of mask that are not zero
    bool words_stale = false;
  };
  static void Refresh(Watched *watched, uint32_t word) {
    uint64_t all = 0;
    for (const HintSubscription *each : watched->subscriptions) all |= each->mask_[word];
    uint64_t &mask = watched->mask[word];
    if ((mask == 0) != (all == 0)) watched->words_stale = true;
    mask = all;
  }

  std::mutex mutex_;
  std::unordered_map<const session::Session *, Watched> sessions_;
};

HintSubscription::HintSubscription(std::shared_ptr<session::Session> session)
    : session_(std::move(session)), mask_(session::kHintWords, 0), bits_(session::kHintWords, 0) {
  if (usable()) HintHub::Instance()->Add(this);
}

HintSubscription::~HintSubscription() {
  if (usable()) HintHub::Instance()->Remove(this);
}

bool HintSubscription::usable() const { return session_->creator_pid() == sys::ThisProcess(); }

void HintSubscription::Watch(uint32_t slot) {
  slot %= session::kMaxSlots;
  if (watching_[slot]++ == 0) SetWatchedThroughHub(slot, true);
}

void HintSubscription::Unwatch(uint32_t slot) {
  slot %= session::kMaxSlots;
  auto found = watching_.find(slot);
  if (found == watching_.end() || --found->second > 0) return;
  watching_.erase(found);
  SetWatchedThroughHub(slot, false);
}

void HintSubscription::SetWatchedThroughHub(uint32_t slot, bool on) {
  if (usable()) {
    HintHub::Instance()->Watch(this, slot, on);
  } else {
    SetWatched(slot, on);  // no hub: nobody else reads this mask
  }
}

void HintSubscription::SetWatched(uint32_t slot, bool on) {
  const uint64_t bit = uint64_t{1} << (slot % 64);
  mask_[slot / 64] = on ? (mask_[slot / 64] | bit) : (mask_[slot / 64] & ~bit);
}

void HintSubscription::Deliver(uint32_t word, uint64_t bits) {
  bits &= mask_[word];
  if (bits == 0) return;
  if (bits_[word] == 0) words_.push_back(word);
  bits_[word] |= bits;
}

void HintSubscription::Take(std::vector<uint32_t> *out) {
  out->clear();
  if (usable()) HintHub::Instance()->Take(this, out);
}

void HintSubscription::TakeOwn(std::vector<uint32_t> *out) {
  for (const uint32_t word : words_) {
    for (uint64_t bits = bits_[word]; bits != 0; bits &= bits - 1) {
      out->push_back(word * 64 + static_cast<uint32_t>(__builtin_ctzll(bits)));
    }
    bits_[word] = 0;
  }
  words_.clear();
}

void HintSubscription::AnnounceSleep() {
  session::AnnounceSleep(session_->arena().hints(session_->side()));
}

void ForgetHintSubscriptionsInChild() {
  // The parent's lock may have been held by another thread at the fork: a new hub. The old
  // one's subscriptions are the parent's sessions', which a child never takes (usable()).
  HintHub::Instance() = new HintHub;
}

}  // namespace loopfast::ops
