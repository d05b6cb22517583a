// An epoll set's view of the change hints (session/change_hints.h) of one session whose
// connections it watches. The hints of a side are shared by every process on that side (the
// processes of a listener group), so a process takes only the bits of the slots it watches; a
// process may watch one session from several epoll sets (one per thread, say): whichever set
// takes the hints hands each changed slot to every set of this process that watches it.
//
// Thread rules: any thread; one subscription belongs to one epoll set (whose lock serialises
// its calls). Only the process that made the session subscribes (Session::creator_pid).
#ifndef LOOPFAST_SOCKET_CHANGE_WATCH_H_
#define LOOPFAST_SOCKET_CHANGE_WATCH_H_

#include <cstdint>
#include <memory>
#include <unordered_map>
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
  // The set watches `slot` (once per interest on it), or no longer.
  void Watch(uint32_t slot);
  void Unwatch(uint32_t slot);
  // The watched slots changed since the last call, in `out` (cleared first; any order).
  void Take(std::vector<uint32_t> *out);
  // Before the set sleeps: a change from now on rings this side's bell. Take() comes after;
  // readiness::EndWait with session() ends it.
  void AnnounceSleep();
  const std::shared_ptr<session::Session> &session() const { return session_; }

 private:
  friend class HintHub;
  void SetWatchedThroughHub(uint32_t slot, bool on);
  // Under the hub's lock (when usable()).
  void SetWatched(uint32_t slot, bool on);
  void Deliver(uint32_t word, uint64_t bits);
  void TakeOwn(std::vector<uint32_t> *out);

  std::shared_ptr<session::Session> session_;
  std::unordered_map<uint32_t, uint32_t> watching_;  // the set's interests on each slot
  std::vector<uint64_t> mask_;                       // by word: the slots watched
  std::vector<uint64_t> bits_;                       // delivered and not taken yet, by word
  std::vector<uint32_t> words_;                      // the words of bits_ that are not zero
};

// The fork handler: a child starts with no subscriptions of its own (and a fresh lock).
void ForgetHintSubscriptionsInChild();

}  // namespace loopfast::ops

#endif  // LOOPFAST_SOCKET_CHANGE_WATCH_H_
