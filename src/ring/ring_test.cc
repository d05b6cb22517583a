#include "ring/ring.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace loopfast {
namespace {

struct HeapRing {
  explicit HeapRing(uint32_t capacity, uint32_t window = 0) : data(capacity) {
    SpscRing::Initialize(&control, window != 0 ? window : capacity);
    producer = SpscRing(&control, data.data(), capacity);
    consumer = SpscRing(&control, data.data(), capacity);
  }
  RingControl control;
  std::vector<uint8_t> data;
  SpscRing producer;
  SpscRing consumer;
};

TEST(RingTest, CapacityRules) {
  EXPECT_TRUE(SpscRing::ValidCapacity(4096));
  EXPECT_TRUE(SpscRing::ValidCapacity(1u << 20));
  EXPECT_FALSE(SpscRing::ValidCapacity(0));
  EXPECT_FALSE(SpscRing::ValidCapacity(2048));
  EXPECT_FALSE(SpscRing::ValidCapacity(5000));
  EXPECT_FALSE(SpscRing::ValidCapacity(uint64_t{1} << 31));
}

TEST(RingTest, WriteThenReadKeepsBytesAndOrder) {
  HeapRing ring(4096);
  const char message[] = "hello, loopback";
  ASSERT_EQ(ring.producer.Write(message, sizeof message), int64_t(sizeof message));
  EXPECT_EQ(ring.consumer.ReadableBytes(), int64_t(sizeof message));
  char out[sizeof message] = {};
  ASSERT_EQ(ring.consumer.Read(out, sizeof out), int64_t(sizeof message));
  EXPECT_STREQ(out, message);
  EXPECT_EQ(ring.consumer.ReadableBytes(), 0);
}

TEST(RingTest, FullRingAcceptsNothingAndEmptyRingGivesNothing) {
  HeapRing ring(4096);
  std::vector<uint8_t> big(5000, 1);
  EXPECT_EQ(ring.producer.Write(big.data(), big.size()), 4096);  // partial, like TCP
  EXPECT_EQ(ring.producer.WritableBytes(), 0);
  EXPECT_EQ(ring.producer.Write(big.data(), 1), 0);
  std::vector<uint8_t> out(5000);
  EXPECT_EQ(ring.consumer.Read(out.data(), out.size()), 4096);
  EXPECT_EQ(ring.consumer.Read(out.data(), out.size()), 0);
}

TEST(RingTest, PeekDoesNotConsume) {
  HeapRing ring(4096);
  ASSERT_EQ(ring.producer.Write("abcdef", 6), 6);
  char out[6];
  EXPECT_EQ(ring.consumer.Read(out, 3, /*peek=*/true), 3);
  EXPECT_EQ(std::memcmp(out, "abc", 3), 0);
  EXPECT_EQ(ring.consumer.Read(out, 6), 6);
  EXPECT_EQ(std::memcmp(out, "abcdef", 6), 0);
}

TEST(RingTest, WrapsAroundTheEnd) {
  HeapRing ring(4096);
  std::vector<uint8_t> chunk(3000);
  std::vector<uint8_t> out(3000);
  for (int round = 0; round < 10; ++round) {
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = uint8_t(round * 31 + i);
    ASSERT_EQ(ring.producer.Write(chunk.data(), chunk.size()), 3000);
    ASSERT_EQ(ring.consumer.Read(out.data(), out.size()), 3000);
    ASSERT_EQ(out, chunk) << "round " << round;
  }
}

TEST(RingTest, GatherAndScatterWithOffsets) {
  HeapRing ring(4096);
  char a[] = "0123", b[] = "456789";
  struct iovec in[2] = {{a, 4}, {b, 6}};
  ASSERT_EQ(ring.producer.Write(in, 2, 3, 100), 7);  // skips "012"
  char x[2], y[10] = {};
  struct iovec out[2] = {{x, 2}, {y, 10}};
  ASSERT_EQ(ring.consumer.Read(out, 2, 1, 100, false), 7);  // fills from x[1]
  EXPECT_EQ(x[1], '3');
  EXPECT_EQ(std::string(y, 6), "456789");
}

TEST(RingTest, CorruptPositionsAreReportedNotTrusted) {
  HeapRing ring(4096);
  ring.control.head.store(100000);  // a peer claiming more bytes than the ring holds
  char out[16];
  EXPECT_EQ(ring.consumer.ReadableBytes(), -1);
  EXPECT_EQ(ring.consumer.Read(out, sizeof out), -1);
  ring.control.head.store(0);
  ring.control.tail.store(50);  // tail beyond head
  EXPECT_EQ(ring.producer.WritableBytes(), -1);
  EXPECT_EQ(ring.producer.Write(out, 1), -1);
}

TEST(RingTest, PositionsSurviveSixtyFourBitGrowth) {
  HeapRing ring(4096);
  const uint64_t near_wrap = ~uint64_t{0} - 1000;
  ring.control.head.store(near_wrap);
  ring.control.tail.store(near_wrap);
  ring.producer = SpscRing(&ring.control, ring.data.data(), 4096);
  ring.consumer = SpscRing(&ring.control, ring.data.data(), 4096);
  std::vector<uint8_t> in(3000, 9), out(3000);
  ASSERT_EQ(ring.producer.Write(in.data(), in.size()), 3000);
  ASSERT_EQ(ring.consumer.Read(out.data(), out.size()), 3000);
  EXPECT_EQ(in, out);
}

TEST(RingTest, WindowGrowsOnlyAfterAFullRingHasEmptied) {
  HeapRing ring(65536, 4096);
  std::vector<uint8_t> in(10000), out(10000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 13 + 5);
  // Small writes that fit never grow the window.
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(ring.producer.Write(in.data(), 1000), 1000);
    ASSERT_EQ(ring.consumer.Read(out.data(), 1000), 1000);
  }
  EXPECT_EQ(ring.producer.Window(), 4096u);
  // A write that does not fit is cut at the window, as TCP cuts at its buffer.
  ASSERT_EQ(ring.producer.Write(in.data(), in.size()), 4096);
  EXPECT_FALSE(ring.producer.HasRoom());
  // Growth wanted but not yet empty: the ring counts as full, so the unread bytes keep the
  // window they were placed with.
  ASSERT_EQ(ring.consumer.Read(out.data(), 100), 100);
  EXPECT_FALSE(ring.producer.HasRoom());
  EXPECT_EQ(ring.producer.WritableBytes(), 0);
  EXPECT_EQ(ring.producer.Write(in.data() + 4096, 50), 0);
  EXPECT_EQ(ring.producer.Window(), 4096u);
  ASSERT_EQ(ring.consumer.Read(out.data() + 100, 4096), 3996);
  ASSERT_EQ(std::memcmp(out.data(), in.data(), 4096), 0);
  // Empty: the next write grows the window, four times each step.
  EXPECT_TRUE(ring.producer.HasRoom());
  ASSERT_EQ(ring.producer.Write(in.data(), in.size()), 10000);
  EXPECT_EQ(ring.producer.Window(), 16384u);
  ASSERT_EQ(ring.consumer.Read(out.data(), out.size()), 10000);
  EXPECT_EQ(in, out);
  for (int i = 0; i < 3; ++i) {
    while (ring.producer.Write(in.data(), in.size()) > 0) {
    }
    while (ring.consumer.Read(out.data(), out.size()) > 0) {
    }
    ASSERT_EQ(ring.producer.Write(in.data(), 1), 1);
    ASSERT_EQ(ring.consumer.Read(out.data(), 1), 1);
  }
  EXPECT_EQ(ring.producer.Window(), 65536u);  // never beyond the capacity
}

TEST(RingTest, CorruptWindowIsReportedNotTrusted) {
  HeapRing ring(8192, 4096);
  char out[16] = {};
  ASSERT_EQ(ring.producer.Write("abc", 3), 3);
  for (const uint32_t bad : {0u, 3000u, 16384u, 1u << 31}) {
    ring.control.window.store(bad);
    EXPECT_EQ(ring.consumer.Read(out, sizeof out), -1) << bad;
    EXPECT_EQ(ring.producer.Write(out, 1), -1) << bad;
    EXPECT_EQ(ring.producer.Window(), 0u) << bad;
  }
  ring.control.window.store(4096);
  EXPECT_EQ(ring.consumer.Read(out, sizeof out), 3);
}

// Two threads, random sizes: every byte arrives once, in order, while the window grows.
// Run under ThreadSanitizer too.
TEST(RingTest, ConcurrentProducerAndConsumerAreByteExact) {
  HeapRing ring(65536, 4096);
  constexpr size_t kTotal = 8 << 20;
  std::thread producer([&] {
    std::mt19937 rng(1);
    std::vector<uint8_t> chunk(9000);
    size_t sent = 0;
    while (sent < kTotal) {
      const size_t want = std::min<size_t>(kTotal - sent, 1 + rng() % chunk.size());
      for (size_t i = 0; i < want; ++i) chunk[i] = uint8_t((sent + i) * 7 + 3);
      size_t done = 0;
      while (done < want) {
        const int64_t n = ring.producer.Write(chunk.data() + done, want - done);
        ASSERT_GE(n, 0);
        done += size_t(n);
        if (n == 0) std::this_thread::yield();
      }
      sent += want;
    }
  });
  std::mt19937 rng(2);
  std::vector<uint8_t> buffer(9000);
  size_t received = 0;
  bool exact = true;
  while (received < kTotal) {
    const int64_t n = ring.consumer.Read(buffer.data(), 1 + rng() % buffer.size());
    ASSERT_GE(n, 0);
    for (int64_t i = 0; i < n; ++i) {
      exact = exact && buffer[size_t(i)] == uint8_t((received + size_t(i)) * 7 + 3);
    }
    received += size_t(n);
    if (n == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_TRUE(exact);
  EXPECT_EQ(received, kTotal);
}

}  // namespace
}  // namespace loopfast
