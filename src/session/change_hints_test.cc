// White-box tests of change hints (change_hints.h): what a mark leaves, what a take returns,
// when the bell rings, and what forged words can and cannot do.
#include "session/change_hints.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace loopfast::session {
namespace {

struct Board {
  std::unique_ptr<ChangeHints> hints = std::make_unique<ChangeHints>();
  int bell = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
  int watcher = epoll_create1(EPOLL_CLOEXEC);  // watches the bell as a set's shadow does
  Board() {
    struct epoll_event event = {};
    event.events = EPOLLIN | EPOLLET;
    epoll_ctl(watcher, EPOLL_CTL_ADD, bell, &event);
    Rang();  // the bell reads as ready from the start: take that edge
  }
  ~Board() {
    close(watcher);
    close(bell);
  }
  // Whether the bell rang since the last call.
  bool Rang() const {
    struct epoll_event event;
    return epoll_wait(watcher, &event, 1, 0) == 1;
  }
  // Takes the hints of the slots in `mask` (every slot by default).
  std::vector<uint32_t> Take(const std::vector<uint64_t> &mask = All()) {
    std::vector<uint32_t> words, slots;
    for (uint32_t word = 0; word < kHintWords; ++word) {
      if (mask[word] != 0) words.push_back(word);
    }
    TakeChanged(hints.get(), mask.data(), words.data(), words.size(),
                [&](uint32_t word, uint64_t bits) {
                  for (; bits != 0; bits &= bits - 1) {
                    slots.push_back(word * 64 + static_cast<uint32_t>(__builtin_ctzll(bits)));
                  }
                });
    return slots;
  }
  static std::vector<uint64_t> All() { return std::vector<uint64_t>(kHintWords, ~uint64_t{0}); }
};

TEST(ChangeHintsTest, ATakeReturnsEachMarkedSlotOnceAndClearsIt) {
  Board board;
  for (const uint32_t slot : {0u, 63u, 64u, 4095u, 4096u, kMaxSlots - 1, 63u}) {
    MarkChanged(board.hints.get(), slot, board.bell);
  }
  EXPECT_EQ(board.Take(), (std::vector<uint32_t>{0, 63, 64, 4095, 4096, kMaxSlots - 1}));
  EXPECT_TRUE(board.Take().empty());
  for (const auto &word : board.hints->bits) EXPECT_EQ(word.load(), 0u);
}

// Two processes of a listener group share a side: each takes only its own slots' bits.
TEST(ChangeHintsTest, AWatcherTakesOnlyTheSlotsItWatches) {
  Board board;
  for (const uint32_t slot : {1u, 2u, 70u, 71u}) MarkChanged(board.hints.get(), slot, board.bell);
  std::vector<uint64_t> first(kHintWords, 0), second(kHintWords, 0);
  first[0] = uint64_t{1} << 1;
  first[1] = uint64_t{1} << (70 - 64);
  second[0] = uint64_t{1} << 2;
  second[1] = uint64_t{1} << (71 - 64);
  EXPECT_EQ(board.Take(first), (std::vector<uint32_t>{1, 70}));
  EXPECT_EQ(board.Take(second), (std::vector<uint32_t>{2, 71}));
  EXPECT_TRUE(board.Take().empty());
}

TEST(ChangeHintsTest, TheBellRingsOnlyForAWatcherThatAnnouncedItsSleepAndOnlyOnce) {
  Board board;
  MarkChanged(board.hints.get(), 5, board.bell);
  EXPECT_FALSE(board.Rang()) << "nobody sleeps: a mark costs no system call";
  AnnounceSleep(board.hints.get());
  MarkChanged(board.hints.get(), 6, board.bell);
  EXPECT_TRUE(board.Rang());
  MarkChanged(board.hints.get(), 7, board.bell);
  EXPECT_FALSE(board.Rang()) << "one ring until a watcher announces itself again";
  EndSleep(board.hints.get());
  MarkChanged(board.hints.get(), 8, board.bell);
  EXPECT_FALSE(board.Rang()) << "nobody sleeps: no ring";
  EXPECT_EQ(board.Take(), (std::vector<uint32_t>{5, 6, 7, 8}));
}

// A slot number past the board (never produced by the library, but the arithmetic must not
// leave the board) lands on a slot of the board.
TEST(ChangeHintsTest, ASlotPastTheBoardStaysOnIt) {
  Board board;
  MarkChanged(board.hints.get(), kMaxSlots + 3, board.bell);
  EXPECT_EQ(board.Take(), (std::vector<uint32_t>{3}));
}

// A peer that forges the words: every bit set, or a sleeper count it sets itself. The take returns
// at most every slot once, and the board stays usable.
TEST(ChangeHintsTest, ForgedWordsCostLooksButNeverBreakTheBoard) {
  Board board;
  for (auto &word : board.hints->bits) word.store(~uint64_t{0});
  EXPECT_EQ(board.Take().size(), size_t{kMaxSlots});
  board.hints->sleepers.store(0xdeadbeef);
  MarkChanged(board.hints.get(), 1, board.bell);
  EXPECT_TRUE(board.Rang());
  EXPECT_EQ(board.Take(), (std::vector<uint32_t>{1}));
}

// The protocol under concurrency: a marker marks slots one by one, each after its change (a
// counter); a watcher takes, checks, announces and sleeps on the bell. Every change is seen,
// and no sleep lasts past a change (bounded: the sleep's timeout would show as a stall).
TEST(ChangeHintsTest, AWatcherThatSleepsMissesNoChange) {
  Board board;
  constexpr uint32_t kChanges = 20000;
  std::atomic<uint32_t> changed{0};
  std::thread marker([&] {
    for (uint32_t i = 1; i <= kChanges; ++i) {
      changed.store(i, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      MarkChanged(board.hints.get(), i % 100, board.bell);
      if (i % 64 == 0) usleep(20);  // now and then the watcher catches up and sleeps
    }
  });
  uint32_t seen = 0;
  int stalls = 0, sleeps = 0;
  while (seen < kChanges) {
    (void)board.Take();
    seen = changed.load(std::memory_order_relaxed);
    if (seen == kChanges) break;
    AnnounceSleep(board.hints.get());
    if (!board.Take().empty() || changed.load(std::memory_order_relaxed) != seen) {
      EndSleep(board.hints.get());
      continue;
    }
    struct epoll_event event;
    ++sleeps;
    if (epoll_wait(board.watcher, &event, 1, 2000) == 0) ++stalls;
    EndSleep(board.hints.get());
  }
  marker.join();
  EXPECT_EQ(stalls, 0);
  EXPECT_GT(sleeps, 0) << "the watcher never slept: the test did not test the sleep";
}

}  // namespace
}  // namespace loopfast::session
