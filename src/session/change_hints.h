// Change hints (arena_layout.h, ChangeHints): how a side's epoll sets learn which of the
// session's connections changed, so that a look costs what changed, not what is watched (the
// kernel's epoll keeps a ready list for the same reason).
//
// The protocol, between a changer (either side) and a watcher (the side the hints are for):
//   changer: make the change visible; seq_cst fence; MarkChanged (set the slot's bit unless it
//            is set; seq_cst fence; if a watcher sleeps and the bell has not rung since the
//            last one announced itself, ring it).
//   watcher: before a sleep, AnnounceSleep (count itself in `sleepers`, clear `rung`; seq_cst
//            fence), then TakeChanged and look at what it names; sleep only when nothing
//            changed; after the sleep (or instead of it) EndSleep.
// Either the changer sees the sleeper or the watcher sees the bit: no wake-up is lost. A bit
// that was already set is left alone (no write): the take that clears it comes after the
// change. A watcher that did not sleep after all leaves no announcement behind (EndSleep), so
// changes cost no bell while every watcher is awake.
// A watcher takes only the bits of the slots it watches (`mask`): processes of one listener
// group may share a side of a session, each with its own connections.
//
// Everything here is also the peer's to write; a forged or cleared bit can only make this side
// look at, or overlook, that peer's own connections (a slot index is masked to the board).
// Thread rules: any thread.
#ifndef LOOPFAST_SESSION_CHANGE_HINTS_H_
#define LOOPFAST_SESSION_CHANGE_HINTS_H_

#include <atomic>
#include <cstdint>

#include "session/arena_layout.h"
#include "wait/bell.h"

namespace loopfast::session {

inline constexpr uint32_t kHintWords = kMaxSlots / 64;

// The changer's part; the caller has fenced after its change. `bell`: the watcher's.
inline void MarkChanged(ChangeHints *hints, uint32_t slot, int bell) {
  std::atomic<uint64_t> &word = hints->bits[(slot / 64) % kHintWords];
  const uint64_t bit = uint64_t{1} << (slot % 64);
  if ((word.load(std::memory_order_relaxed) & bit) == 0) {
    word.fetch_or(bit, std::memory_order_seq_cst);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (hints->sleepers.load(std::memory_order_relaxed) != 0 &&
      hints->rung.load(std::memory_order_relaxed) == 0 &&
      hints->rung.exchange(1, std::memory_order_relaxed) == 0) {
    wait::RingBell(bell);
  }
}

// The watcher's part before it sleeps; it takes the hints afterwards.
inline void AnnounceSleep(ChangeHints *hints) {
  hints->sleepers.fetch_add(1, std::memory_order_relaxed);
  hints->rung.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

// The watcher woke (or did not sleep after all): it no longer counts as a sleeper.
inline void EndSleep(ChangeHints *hints) {
  hints->sleepers.fetch_sub(1, std::memory_order_relaxed);
}

// Takes the hints of the watched slots: for each word index in [words, words + count), the
// bits set in both the word and mask[word] are cleared and passed to each_word(word, bits).
template <typename EachWord>
void TakeChanged(ChangeHints *hints, const uint64_t *mask, const uint32_t *words, size_t count,
                 EachWord each_word) {
  for (size_t i = 0; i < count; ++i) {
    const uint32_t word = words[i] % kHintWords;
    const uint64_t mine = hints->bits[word].load(std::memory_order_relaxed) & mask[word];
    if (mine == 0) continue;
    const uint64_t taken = hints->bits[word].fetch_and(~mine, std::memory_order_seq_cst) & mine;
    if (taken != 0) each_word(word, taken);
  }
  // The looks that follow see every change made before the bits they took.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_CHANGE_HINTS_H_
