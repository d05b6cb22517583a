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
    for (const auto &[slot, count] : subscription->watching_) {
      for (uint32_t n = count; n > 0; --n) Change(&watched, slot, -1);
    }
    if (watched.subscriptions.empty()) sessions_.erase(found);
  }
  void Watch(HintSubscription *subscription, uint32_t slot, int delta) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = sessions_.find(subscription->session_.get());
    if (found != sessions_.end()) Change(&found->second, slot, delta);
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
    std::unordered_map<uint32_t, uint32_t> watching;  // interests on each slot, all sets
    std::vector<uint64_t> mask = std::vector<uint64_t>(session::kHintWords, 0);
    std::vector<uint32_t> words;  // the words of mask that are not zero
    bool words_stale = false;
  };
  static void Change(Watched *watched, uint32_t slot, int delta) {
    slot %= session::kMaxSlots;
    uint32_t &count = watched->watching[slot];
    count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
    const bool watched_now = count > 0;
    if (!watched_now) watched->watching.erase(slot);
    const uint64_t bit = uint64_t{1} << (slot % 64);
    uint64_t &word = watched->mask[slot / 64];
    const uint64_t before = word;
    word = watched_now ? (word | bit) : (word & ~bit);
    if ((before == 0) != (word == 0)) watched->words_stale = true;
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
  if (watching_[slot]++ == 0) mask_[slot / 64] |= uint64_t{1} << (slot % 64);
  if (usable()) HintHub::Instance()->Watch(this, slot, +1);
}

void HintSubscription::Unwatch(uint32_t slot) {
  slot %= session::kMaxSlots;
  auto found = watching_.find(slot);
  if (found == watching_.end()) return;
  if (--found->second == 0) {
    watching_.erase(found);
    mask_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  }
  if (usable()) HintHub::Instance()->Watch(this, slot, -1);
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
