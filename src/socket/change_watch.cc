#include "socket/change_watch.h"

#include <mutex>
#include <unordered_map>

#include "session/change_hints.h"
#include "sys/owned_fds.h"

namespace loopfast::ops {

// This process's subscriptions, by session.
class HintHub {
 public:
  static HintHub *&Instance() {
    static HintHub *hub = new HintHub;  // never destroyed: sets may outlive static destruction
    return hub;
  }
  void Add(HintSubscription *subscription) {
    std::lock_guard<std::mutex> guard(mutex_);
    subscriptions_[subscription->session_.get()].push_back(subscription);
  }
  void Remove(HintSubscription *subscription) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = subscriptions_.find(subscription->session_.get());
    if (found == subscriptions_.end()) return;
    std::vector<HintSubscription *> &list = found->second;
    std::erase(list, subscription);
    if (list.empty()) subscriptions_.erase(found);
  }
  // Takes the session's shared hints for every subscription of this process, then hands
  // `subscription` its own.
  void Take(HintSubscription *subscription, std::vector<uint32_t> *out) {
    const session::Session &session = *subscription->session_;
    std::lock_guard<std::mutex> guard(mutex_);
    auto found = subscriptions_.find(&session);
    if (found == subscriptions_.end()) return;
    const std::vector<HintSubscription *> &list = found->second;
    session::TakeChanged(session.arena().hints(session.side()), [&](uint32_t word, uint64_t bits) {
      for (HintSubscription *each : list) each->Deliver(word, bits);
    });
    subscription->TakeOwn(out);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<const session::Session *, std::vector<HintSubscription *>> subscriptions_;
};

HintSubscription::HintSubscription(std::shared_ptr<session::Session> session)
    : session_(std::move(session)), bits_(session::kHintWords, 0) {
  if (usable()) HintHub::Instance()->Add(this);
}

HintSubscription::~HintSubscription() {
  if (usable()) HintHub::Instance()->Remove(this);
}

bool HintSubscription::usable() const { return session_->creator_pid() == sys::ThisProcess(); }

void HintSubscription::Deliver(uint32_t word, uint64_t bits) {
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
