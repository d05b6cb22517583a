// For tests: a scribbling peer. It overwrites a session arena (arena_layout.h) with one pattern
// after another, as a peer that paired legitimately and then turned hostile could: every word
// of the arena once per pattern (FullPass), then, as often as it can, the words the other end
// reads most (HotPass): the header, the claim entries an accept probes for the connection's
// socket, the connection's slot (header, both side blocks, both ring controls and first
// windows) and the areas of both regions its rings grew into.
//
// Used by src/fast/scribble_test.cc (both ends in test processes, also under ASan) and by
// tests/scribble_test.cc (a real client process scribbling over its own session with a real
// server). Writes only the arena: never what a real peer could not reach.
#ifndef LOOPFAST_SESSION_TEST_SCRIBBLE_H_
#define LOOPFAST_SESSION_TEST_SCRIBBLE_H_

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "session/arena_layout.h"
#include "wait/sleep.h"

namespace loopfast::session::scribble {

inline constexpr int kPatterns = 10;
inline constexpr const char *kPatternNames[kPatterns] = {
    "zeros",
    "ones",
    "random",
    "pid 1 in every word",
    "the victim's pid in every word",
    "plausible values",
    "oscillating between a valid state and plausible values",
    "random in every word but the positions (the victim sleeps)",
    "the waiting words zeroed as fast as possible (the victim sleeps)",
    "the waiting words with every bit, pid 1, the victim's pid (the victim sleeps)"};
// From this pattern on, both rings of the hot slot stay valid, the one the accepting side
// reads empty and the one it writes full, so that its calls sleep while the rest is scribbled.
inline constexpr int kFirstSleepingPattern = 7;

struct Range {
  uint8_t *begin;
  size_t bytes;
};

inline uint64_t XorShift(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

// Every 64-bit word of `range`: `value`, or random words when `random` is set. Raw stores, not
// instrumented (a gigabyte under ASan would take long and checks nothing of the victim's).
__attribute__((no_sanitize("address", "undefined"))) inline void Fill(Range range, uint64_t value,
                                                                      bool random, uint64_t *seed) {
  auto *word = reinterpret_cast<volatile uint64_t *>(range.begin);
  const size_t words = range.bytes / 8;
  for (size_t i = 0; i < words; ++i) word[i] = random ? XorShift(seed) : value;
}

inline void Store32(void *at, uint32_t value) {
  __atomic_store_n(static_cast<uint32_t *>(at), value, __ATOMIC_RELAXED);
}
inline void Store64(void *at, uint64_t value) {
  __atomic_store_n(static_cast<uint64_t *>(at), value, __ATOMIC_RELAXED);
}
inline uint64_t Load64(const void *at) {
  return __atomic_load_n(static_cast<const uint64_t *>(at), __ATOMIC_RELAXED);
}

inline uint64_t Mapping(uint32_t log2_window, uint32_t shift) {
  return uint64_t{shift} | (uint64_t{log2_window} << 32);
}

// Values that look almost right, in one slot: each `variant` (0..15) is one idea.
inline void Plausible(Slot *slot, uint32_t variant, uint32_t victim_pid, uint64_t cookie,
                      uint32_t limit) {
  constexpr uint32_t kAllFlags = 0x3ff;
  for (SideBlock &block : slot->side) {
    uint32_t flags = 0;
    if (variant == 0) flags = ~0u;
    if (variant == 1) flags = kAllFlags;
    if (variant >= 2 && variant < 12) flags = 1u << (variant - 2);  // each flag alone
    Store32(&block.flags, flags);
    Store32(&block.holders, variant % 3 == 0 ? ~0u : 1);
    Store32(&block.pid, variant % 2 == 0 ? 1 : victim_pid);
    const uint32_t limits[] = {0, 1, 4096, limit, 16u << 20, (16u << 20) + 1, ~0u};
    Store32(&block.rx_limit, limits[variant % 7]);
    Store64(&block.capture_file, variant % 4 == 0 ? ~uint64_t{0} : 0);
  }
  Store32(&slot->header.state, variant % 6 == 5 ? ~0u : variant % 5);
  Store64(&slot->header.socket_cookie, variant % 2 == 0 ? cookie : cookie + 1);
  Store32(&slot->header.bound_by, victim_pid);
  Store64(&slot->header.handshake_capture, ~uint64_t{0});
  for (RingControl &ring : slot->ring) {
    const uint64_t raw = Load64(&ring.mapping);
    const uint32_t log2 = uint32_t(raw >> 32) <= 30 ? uint32_t(raw >> 32) : 9;
    const uint64_t window = uint64_t{1} << log2;
    const uint64_t tail = Load64(&ring.tail);
    switch (variant % 8) {
      case 0:  // the producer just past the window
        Store64(&ring.head, tail + window + 1);
        break;
      case 1:  // the consumer ahead of the producer
        Store64(&ring.tail, Load64(&ring.head) + 1);
        break;
      case 2:  // a huge window, its area at the region's very end
        Store64(&ring.mapping, Mapping(30, 0));
        Store64(&ring.area_offset[1], kRegionBytes - 4096);
        Store64(&ring.head, tail + (1u << 20));
        break;
      case 3:  // the largest window the limit allows, shifted to its last byte
        Store64(&ring.mapping, Mapping(18, (1u << 18) - 1));
        Store64(&ring.area_offset[1], kRegionBytes - (1u << 18));
        Store64(&ring.head, tail + (1u << 18));
        break;
      case 4:  // windows the decoder must refuse
        Store64(&ring.mapping, variant % 3 == 0 ? Mapping(31, 0) : Mapping(8, 300));
        break;
      case 5:  // positions about to wrap around 2^64, a full first window
        Store64(&ring.mapping, Mapping(9, 0));
        Store64(&ring.tail, ~uint64_t{0} - 100);
        Store64(&ring.head, ~uint64_t{0} - 100 + kSlotWindowBytes);
        break;
      case 6:  // a guard that never ends, area offsets at and past the region's end
        Store32(&ring.guard_bytes, ~0u);
        Store64(&ring.guard_until, tail + (uint64_t{1} << 62));
        Store64(&ring.area_offset[0], kRegionBytes - 1);
        Store64(&ring.area_offset[1], ~uint64_t{0} - 4095);
        break;
      case 7:  // every waiter announced, a live pid in the reserved words, a stamp from the future
        Store32(&ring.producer_waiting, ~0u);
        Store32(&ring.consumer_waiting, ~0u);
        Store32(&ring.data_wake_ns, victim_pid);
        Store32(&ring.room_wake_ns, victim_pid);
        Store32(&ring.stamps_wanted, 1);
        Store64(&ring.ready_ns, ~uint64_t{0});
        break;
    }
  }
}

// A consistent, empty, bound slot: the state the oscillating pattern flips back to.
inline void Valid(Slot *slot, uint64_t cookie, uint32_t limit) {
  for (SideBlock &block : slot->side) {
    Store32(&block.flags, 0);
    Store32(&block.rx_limit, limit);
  }
  Store32(&slot->header.state, kSlotBound);
  Store64(&slot->header.socket_cookie, cookie);
  for (RingControl &ring : slot->ring) {
    Store64(&ring.mapping, Mapping(9, 0));
    Store64(&ring.head, 0);
    Store64(&ring.tail, 0);
    Store32(&ring.guard_bytes, 0);
    Store32(&ring.producer_waiting, 0);
    Store32(&ring.consumer_waiting, 0);
  }
}

// Valid rings the accepting side must wait on: nothing to read in ring 0 (client to server), no
// room in ring 1 (its 256 KiB window full).
inline void Waiting(Slot *slot) {
  for (SideBlock &block : slot->side) Store32(&block.flags, 0);
  RingControl &in = slot->ring[0], &out = slot->ring[1];
  Store64(&in.mapping, Mapping(9, 0));
  Store64(&in.head, Load64(&in.tail));
  Store32(&in.guard_bytes, 0);
  Store64(&out.mapping, Mapping(18, 0));
  Store64(&out.head, Load64(&out.tail) + (1u << 18));
  Store32(&out.guard_bytes, 0);
}

// Random values in every word of the slot but the flags (there only bits that end nothing),
// the mappings and the positions.
inline void RandomAroundPositions(Slot *slot, uint64_t *seed) {
  Store64(&slot->header.socket_cookie, XorShift(seed));
  Store32(&slot->header.state, uint32_t(XorShift(seed)));
  Store32(&slot->header.bound_by, uint32_t(XorShift(seed)));
  Store64(&slot->header.handshake_capture, XorShift(seed));
  for (SideBlock &block : slot->side) {
    Store32(&block.flags, uint32_t(XorShift(seed)) & (kSideAborted | kSideReleased | 0xfffffc00u));
    Store32(&block.holders, uint32_t(XorShift(seed)));
    Store32(&block.pid, uint32_t(XorShift(seed)));
    Store32(&block.rx_limit, uint32_t(XorShift(seed)));
    Store64(&block.capture_file, XorShift(seed));
  }
  for (RingControl &ring : slot->ring) {
    Store32(&ring.producer_waiting, uint32_t(XorShift(seed)));
    Store32(&ring.consumer_waiting, uint32_t(XorShift(seed)));
    Store32(&ring.data_wake_ns, uint32_t(XorShift(seed)));
    Store32(&ring.room_wake_ns, uint32_t(XorShift(seed)));
    Store32(&ring.stamps_wanted, uint32_t(XorShift(seed)));
    Store64(&ring.ready_ns, XorShift(seed));
    Store32(&ring.reserved2, uint32_t(XorShift(seed)));
    Store64(&ring.area_offset[0], XorShift(seed));
  }
  Fill({slot->window[0], sizeof slot->window}, 0, true, seed);
}

// What any peer may do at any time: wake whoever sleeps on the slot's waiting words.
inline void WakeAll(Slot *slot) {
  for (RingControl &ring : slot->ring) {
    for (std::atomic<uint32_t> *word : {&ring.producer_waiting, &ring.consumer_waiting}) {
      syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, INT32_MAX, nullptr,
              nullptr, 0);
    }
  }
}

class Scribbler {
 public:
  // `arena` as the peer maps it; `slot` the connection's, `cookie` its client socket's,
  // `victim_pid` the other end's process; `large_bytes` the size of the rings' large areas.
  // `slot_count`: the hot pass also treats that many slots from `slot` on as the connection's
  // (a peer that keeps opening connections).
  Scribbler(const ArenaView &arena, uint32_t slot, uint64_t cookie, uint32_t victim_pid,
            uint32_t large_bytes, uint32_t slot_count = 1)
      : arena_(arena),
        slot_(arena.slot(slot)),
        slot_count_(slot + slot_count <= kMaxSlots ? slot_count : kMaxSlots - slot),
        cookie_(cookie),
        victim_pid_(victim_pid),
        limit_(large_bytes) {
    hot_.push_back({arena.base(), kPageBytes});
    const uint32_t home = ClaimHome(cookie);
    if (home + kMaxClaimProbes <= kClaimEntries) {
      hot_.push_back({reinterpret_cast<uint8_t *>(&arena.claims()[home]),
                      kMaxClaimProbes * sizeof(ClaimEntry)});
    }
    // Where the rings' areas are (read before anything is scribbled): ring r's producer is
    // side r.
    for (int ring = 0; ring < 2; ++ring) {
      const uint32_t sizes[2] = {kMediumAreaBytes, large_bytes};
      for (int area = 0; area < 2; ++area) {
        const uint64_t offset = slot_->ring[ring].area_offset[area].load();
        // As ArenaView::Area checks it (computed here: the end-to-end test links the library,
        // which does not export it).
        if (offset < kRegionBytes && sizes[area] <= kRegionBytes - offset) {
          hot_.push_back({arena.base() + RegionOffsetOf(ring) + offset, sizes[area]});
        }
      }
    }
  }

  // Every word of the arena, once, with `pattern` (every slot with plausible values, or as the
  // sleeping patterns leave the hot one).
  void FullPass(int pattern) {
    if (pattern >= kFirstSleepingPattern) {
      for (uint32_t i = 0; i < kMaxSlots; ++i) Waiting(arena_.slot(i));
      return;
    }
    if (pattern == 5 || pattern == 6) {
      for (uint32_t i = 0; i < kMaxSlots; ++i) {
        Plausible(arena_.slot(i), i % 16, victim_pid_, cookie_, limit_);
      }
      for (uint32_t i = 0; i < kClaimEntries; ++i) {
        Store64(&arena_.claims()[i].socket_cookie, cookie_);
        Store32(&arena_.claims()[i].slot, i % 3 == 0 ? ~0u : i % kMaxSlots);
      }
      return;
    }
    Fill({arena_.base(), kArenaBytes}, Word(pattern), pattern == 2, &seed_);
  }

  // One pass of `pattern` over the words the other end reads most, then a wake-up of its
  // sleepers (except for the pattern that races them).
  void HotPass(int pattern, uint32_t pass) {
    for (const Range &range : hot_) {
      if (pattern < 5) Fill(range, Word(pattern), pattern == 2, &seed_);
      if (pattern == 7) Fill(range, 0, true, &seed_);
    }
    for (uint32_t i = 0; i < slot_count_; ++i) HotSlot(slot_ + i, pattern, pass);
  }

 private:
  void HotSlot(Slot *slot, int pattern, uint32_t pass) {
    if (pattern == 5 || (pattern == 6 && pass % 2 == 1)) {
      Plausible(slot, pass % 16, victim_pid_, cookie_, limit_);
    } else if (pattern == 6) {
      Valid(slot, cookie_, limit_);
    } else if (pattern == 7) {
      RandomAroundPositions(slot, &seed_);
      Waiting(slot);
    } else if (pattern == 8) {
      Waiting(slot);
      for (int i = 0; i < 100000; ++i) {
        Store32(&slot->ring[0].consumer_waiting, 0);
        Store32(&slot->ring[1].producer_waiting, 0);
      }
    } else if (pattern == 9) {
      Waiting(slot);
      const uint32_t values[] = {~0u, 1, victim_pid_, wait::kFutexSleeper, wait::kWatcher};
      for (RingControl &ring : slot->ring) {
        Store32(&ring.consumer_waiting, values[pass % 5]);
        Store32(&ring.producer_waiting, values[(pass + 1) % 5]);
      }
    } else {
      Fill({reinterpret_cast<uint8_t *>(slot), kSlotBytes}, Word(pattern), pattern == 2, &seed_);
    }
    if (pattern != 8) WakeAll(slot);
  }

  uint64_t Word(int pattern) const {
    if (pattern == 1) return ~uint64_t{0};
    if (pattern == 3) return 0x0000000100000001ull;
    if (pattern == 4) return uint64_t{victim_pid_} << 32 | victim_pid_;
    return 0;
  }

  ArenaView arena_;
  Slot *slot_;
  uint32_t slot_count_;
  uint64_t cookie_;
  uint32_t victim_pid_;
  uint32_t limit_;
  std::vector<Range> hot_;
  uint64_t seed_ = 0x9e3779b97f4a7c15ull;
};

}  // namespace loopfast::session::scribble

#endif  // LOOPFAST_SESSION_TEST_SCRIBBLE_H_
