// The descriptor map every intercepted call reads: what a lookup finds, and that an object a
// reader holds outlives another thread's close or replacement of its descriptor (run under
// AddressSanitizer and ThreadSanitizer too, where a freed object read would be reported).
#include "socket/descriptor_map.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace loopfast {
namespace {

// Stands for a Socket: a reader checks it is whole, and that it is the descriptor's.
struct Entry {
  explicit Entry(int fd_in) : fd(fd_in) {}
  ~Entry() { magic = 0; }
  const int fd;
  uint64_t magic = kMagic;
  std::atomic<int> uses{0};
  static constexpr uint64_t kMagic = 0x6c6f6f7066617374;
};

using Map = DescriptorMap<Entry>;

TEST(DescriptorMapTest, FindsWhatWasSetAndNothingElse) {
  auto map = std::make_unique<Map>();
  EXPECT_FALSE(map->Has(3));
  EXPECT_EQ(map->Get(3), nullptr);
  EXPECT_EQ(map->Get(-1), nullptr);
  EXPECT_EQ(map->Get(Map::kMaxChunks * Map::kChunkSize), nullptr);  // past the table
  auto entry = std::make_shared<Entry>(3);
  map->Set(3, entry);
  map->Set(5000, std::make_shared<Entry>(5000));  // another chunk
  EXPECT_TRUE(map->Has(3));
  EXPECT_EQ(map->Get(3), entry);
  EXPECT_FALSE(map->Has(4));
  std::vector<int> seen;
  map->ForEach([&](int fd, const std::shared_ptr<Entry> &found) {
    EXPECT_EQ(found->fd, fd);
    seen.push_back(fd);
  });
  EXPECT_EQ(seen, (std::vector<int>{3, 5000}));
  EXPECT_EQ(map->Remove(3), entry);
  EXPECT_FALSE(map->Has(3));
  EXPECT_EQ(map->Remove(3), nullptr);
  map->Set(5000, nullptr);  // setting null is removing
  EXPECT_FALSE(map->Has(5000));
}

TEST(DescriptorMapTest, AReaderKeepsItsObjectWhileAnotherThreadClosesOrReplacesIt) {
  auto map = std::make_unique<Map>();
  constexpr int kDescriptors = 8;
  for (int fd = 0; fd < kDescriptors; ++fd) map->Set(fd, std::make_shared<Entry>(fd));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> found{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      for (int i = r; !stop.load(std::memory_order_relaxed); ++i) {
        const int fd = i % kDescriptors;
        std::shared_ptr<Entry> entry = map->Get(fd);
        if (!entry) continue;  // between a close and its reuse
        // Used after the lookup, as a call does while another thread closes the descriptor.
        entry->uses.fetch_add(1, std::memory_order_relaxed);
        ASSERT_EQ(entry->magic, Entry::kMagic);
        ASSERT_EQ(entry->fd, fd);
        found.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // close(), dup2() onto it, socket() reusing the number: Remove, Set over, Set again; for as
  // long as the readers need to look often meanwhile (on a loaded machine they start late).
  for (int round = 0; round < 100000 || found.load(std::memory_order_relaxed) < 100000; ++round) {
    const int fd = round % kDescriptors;
    if (round % 3 == 0) {
      map->Remove(fd);
      map->Set(fd, std::make_shared<Entry>(fd));
    } else {
      map->Set(fd, std::make_shared<Entry>(fd));
    }
  }
  stop.store(true);
  for (std::thread &reader : readers) reader.join();
  EXPECT_GT(found.load(), 0u);
  for (int fd = 0; fd < kDescriptors; ++fd) EXPECT_EQ(map->Get(fd)->fd, fd);
}

}  // namespace
}  // namespace loopfast
