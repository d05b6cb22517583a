// An epoll set's view of the change hints (session/change_hints.h) of one session whose
// connections it watches. A session's hints are one per side, but a process may watch the same
// session from several epoll sets (one per thread, say): whichever set takes the hints hands
// each changed slot to every subscription of this process, and each set then takes its own.
//
// Thread rules: any thread; one subscription belongs to one epoll set (whose lock serialises
// its calls). Only the process that made the session subscribes (Session::creator_pid).
#ifndef LOOPFAST_SOCKET_CHANGE_WATCH_H_
#define LOOPFAST_SOCKET_CHANGE_WATCH_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "session/session.h"

namespace loopfast::ops {

class HintSubscription {
 public:
  explicit HintSubscription(std::shared_ptr<session::Session> session);
  ~HintSubscription();
  HintSubscription(const HintSubscription &) = delete;
  HintSubscription &operator=(const HintSubscription &) = delete;

  // False in a forked child (the session's hints are its parent's): watch by looking instead.
  bool usable() const;
  // The slots changed since the last call, in `out` (cleared first; any order, no repeats).
  void Take(std::vector<uint32_t> *out);
  // Before the set sleeps: a change from now on rings this side's bell. Take() comes after.
  void AnnounceSleep();

 private:
  friend class HintHub;
  // Both under the hub's lock.
  void Deliver(uint32_t word, uint64_t bits);
  void TakeOwn(std::vector<uint32_t> *out);

  std::shared_ptr<session::Session> session_;
  std::vector<uint64_t> bits_;   // delivered and not taken yet, by word
  std::vector<uint32_t> words_;  // the words of bits_ that are not zero
};

// The fork handler: a child starts with no subscriptions of its own (and a fresh lock).
void ForgetHintSubscriptionsInChild();

}  // namespace loopfast::ops

#endif  // LOOPFAST_SOCKET_CHANGE_WATCH_H_
