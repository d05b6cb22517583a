#include "socket/shared_layout.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace loopfast {
namespace {

TEST(SharedLayoutTest, FreshLayoutValidates) {
  const uint64_t bytes = LayoutBytes(16384, 32768);
  std::vector<uint8_t> memory(bytes);
  InitializeLayout(memory.data(), 16384, 32768);
  EXPECT_TRUE(ValidateLayout(memory.data(), bytes));
  const auto *header = reinterpret_cast<const SharedHeader *>(memory.data());
  EXPECT_EQ(header->side[0].holders.load(), 1u);
  // Both small areas right after the header; rings no larger than them need nothing more.
  EXPECT_EQ(header->small_offset[0], kHeaderBytes);
  EXPECT_EQ(header->small_offset[1], kHeaderBytes + 16384u);
  EXPECT_EQ(header->large_offset[1], header->small_offset[1]);
  EXPECT_EQ(bytes, kHeaderBytes + 16384u + 32768u);
}

TEST(SharedLayoutTest, LargeRingsStartSmallNextToTheHeader) {
  const uint64_t bytes = LayoutBytes(kDefaultRingBytes, kDefaultRingBytes);
  std::vector<uint8_t> memory(bytes);
  InitializeLayout(memory.data(), kDefaultRingBytes, kDefaultRingBytes);
  ASSERT_TRUE(ValidateLayout(memory.data(), bytes));
  const auto *header = reinterpret_cast<const SharedHeader *>(memory.data());
  EXPECT_EQ(header->small_offset[0], kHeaderBytes);
  EXPECT_EQ(header->small_offset[1], kHeaderBytes + kInitialWindowBytes);
  EXPECT_EQ(header->small_bytes[1], kInitialWindowBytes);
  EXPECT_EQ(header->large_offset[0], kHeaderBytes + 2 * kInitialWindowBytes);
  EXPECT_EQ(header->large_offset[1], header->large_offset[0] + kDefaultRingBytes);
  EXPECT_EQ(bytes, header->large_offset[1] + kDefaultRingBytes);
  // The reader's placement is its own computation, equal to what the header says.
  Placement placement;
  ASSERT_TRUE(ValidateLayout(memory.data(), bytes, &placement));
  EXPECT_EQ(placement.large_start, header->large_offset[0]);
  EXPECT_EQ(placement.large_offset[1], header->large_offset[1]);
  EXPECT_EQ(placement.total_bytes, bytes);
  // So the small areas end within the near part: one small mapping holds them all.
  EXPECT_LE(placement.large_start, kMaxNearBytes);
  // And each ring's first window is in the header's own page, after the header.
  EXPECT_EQ(placement.header_window_offset[0], kHeaderWindowOffset);
  EXPECT_EQ(placement.header_window_offset[1], kHeaderWindowOffset + kHeaderWindowBytes);
  EXPECT_LE(placement.header_window_offset[1] + kHeaderWindowBytes, kHeaderBytes);
  EXPECT_EQ(
      SpscRing(const_cast<RingControl *>(&header->ring[1]), memory.data(), kHeaderBytes).Window(),
      kHeaderWindowBytes);
}

TEST(SharedLayoutTest, EveryForgedFieldIsRejected) {
  const uint64_t bytes = LayoutBytes(16384, 16384);
  std::vector<uint8_t> good(bytes);
  InitializeLayout(good.data(), 16384, 16384);
  auto forged = [&](auto mutate) {
    std::vector<uint8_t> copy = good;
    mutate(*reinterpret_cast<SharedHeader *>(copy.data()));
    return ValidateLayout(copy.data(), bytes);
  };
  EXPECT_FALSE(forged([](SharedHeader &h) { h.magic = 0; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.version = 99; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.header_bytes = 64; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.total_bytes += 4096; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.ring_capacity[0] = 12345; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.ring_capacity[1] = 1u << 30; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.large_offset[0] = 0; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.large_offset[1] = 8; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.small_offset[0] = 0; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.small_offset[1] += 4096; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.small_bytes[0] = 4096; }));
  EXPECT_FALSE(forged([](SharedHeader &h) { h.small_bytes[1] = 1u << 20; }));
  EXPECT_FALSE(ValidateLayout(good.data(), bytes - 1));
  EXPECT_FALSE(ValidateLayout(good.data(), 100));
  EXPECT_FALSE(ValidateLayout(nullptr, bytes));
}

TEST(SharedLayoutTest, RingCapacityRoundsUpWithinBounds) {
  EXPECT_EQ(RingCapacityFor(1), kMinRingBytes);
  EXPECT_EQ(RingCapacityFor(kMinRingBytes + 1), 2 * kMinRingBytes);
  EXPECT_EQ(RingCapacityFor(100000), 131072u);
  EXPECT_EQ(RingCapacityFor(uint64_t{1} << 40), kMaxRingBytes);
}

}  // namespace
}  // namespace loopfast
