// Change hints (arena_layout.h, ChangeHints): how a side's epoll sets learn which of the
// session's connections changed, so that a look costs what changed, not what is watched (the
// kernel's epoll keeps a ready list for the same reason).
//
// The protocol, between a changer (either side) and a watcher (the side the hints are for):
//   changer: make the change visible; seq_cst fence; MarkChanged (set the slot's bit and the
//            summary bit; seq_cst fence; if `asleep`, take it and ring the watcher's bell).
//   watcher: before a sleep, AnnounceSleep (set `asleep`; seq_cst fence), then TakeChanged and
//            look at what it names; sleep only when nothing changed.
// Either the changer sees `asleep` or the watcher sees the bit: no wake-up is lost. A bit that
// was already set is left alone (no write): the take that clears it comes after the change.
//
// Everything here is also the peer's to write; a forged or cleared bit can only make this side
// look at, or overlook, that peer's own connections (a slot index is masked to the board).
// Thread rules: any thread; the hints of one side are taken by one process (the session's).
#ifndef LOOPFAST_SESSION_CHANGE_HINTS_H_
#define LOOPFAST_SESSION_CHANGE_HINTS_H_

#include <atomic>
#include <cstdint>

#include "session/arena_layout.h"
#include "wait/bell.h"

namespace loopfast::session {

inline constexpr uint32_t kHintWords = kMaxSlots / 64;
inline constexpr uint32_t kHintSummaryWords = kHintWords / 64;

// The changer's part; the caller has fenced after its change. `bell`: the watcher's.
inline void MarkChanged(ChangeHints *hints, uint32_t slot, int bell) {
  const uint32_t word = (slot / 64) % kHintWords;
  const uint64_t bit = uint64_t{1} << (slot % 64);
  if ((hints->bits[word].load(std::memory_order_relaxed) & bit) == 0) {
    hints->bits[word].fetch_or(bit, std::memory_order_seq_cst);
  }
  std::atomic<uint64_t> &summary = hints->summary[word / 64];
  const uint64_t summary_bit = uint64_t{1} << (word % 64);
  if ((summary.load(std::memory_order_relaxed) & summary_bit) == 0) {
    summary.fetch_or(summary_bit, std::memory_order_seq_cst);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (hints->asleep.load(std::memory_order_relaxed) != 0 &&
      hints->asleep.exchange(0, std::memory_order_relaxed) != 0) {
    wait::RingBell(bell);
  }
}

// The watcher's part before it sleeps; it takes the hints afterwards.
inline void AnnounceSleep(ChangeHints *hints) {
  if (hints->asleep.load(std::memory_order_relaxed) == 0) {
    hints->asleep.store(1, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

// Takes every hint: calls each_word(word_index, bits) for each nonzero word, clearing it.
template <typename EachWord>
void TakeChanged(ChangeHints *hints, EachWord each_word) {
  for (uint32_t s = 0; s < kHintSummaryWords; ++s) {
    if (hints->summary[s].load(std::memory_order_relaxed) == 0) continue;
    uint64_t summary = hints->summary[s].exchange(0, std::memory_order_seq_cst);
    while (summary != 0) {
      const uint32_t word = s * 64 + static_cast<uint32_t>(__builtin_ctzll(summary));
      summary &= summary - 1;
      if (hints->bits[word].load(std::memory_order_relaxed) == 0) continue;
      const uint64_t bits = hints->bits[word].exchange(0, std::memory_order_seq_cst);
      if (bits != 0) each_word(word, bits);
    }
  }
  // The looks that follow see every change made before the bits they took.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_CHANGE_HINTS_H_
