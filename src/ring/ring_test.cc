#include "ring/ring.h"

#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
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

// A ring whose windows up to `small_bytes` live in a small area apart from the large one.
struct TwoAreaRing {
  TwoAreaRing(uint32_t small_bytes, uint32_t capacity, uint32_t window)
      : small(small_bytes), large(capacity) {
    SpscRing::Initialize(&control, window);
    const SpscRing::Area areas[2] = {{small.data(), small_bytes}, {large.data(), capacity}};
    producer = SpscRing(&control, areas, 2);
    consumer = SpscRing(&control, areas, 2);
  }
  RingControl control;
  std::vector<uint8_t> small;
  std::vector<uint8_t> large;
  SpscRing producer;
  SpscRing consumer;
};

// Three fixed areas: a first window of 1 KiB, a small area, a large one.
constexpr uint32_t kFirstWindow = 1024;
struct ThreeAreaRing {
  ThreeAreaRing(uint32_t small_bytes, uint32_t capacity)
      : first(kFirstWindow), small(small_bytes), large(capacity) {
    SpscRing::Initialize(&control, kFirstWindow);
    const SpscRing::Area areas[3] = {
        {first.data(), kFirstWindow}, {small.data(), small_bytes}, {large.data(), capacity}};
    producer = SpscRing(&control, areas, 3);
    consumer = SpscRing(&control, areas, 3);
  }
  RingControl control;
  std::vector<uint8_t> first;
  std::vector<uint8_t> small;
  std::vector<uint8_t> large;
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

TEST(RingTest, AWriteIntoTheEmptyRingStampsWhenItBecameReadable) {
  HeapRing ring(4096);
  // Only once the consumer asks: writers to readers that never order by time pay no clock.
  char bytes[4];
  ASSERT_EQ(ring.producer.Write("z", 1), 1);
  EXPECT_EQ(ring.consumer.ReadySinceNs(), 0u);
  ASSERT_EQ(ring.consumer.Read(bytes, 1), 1);
  ring.consumer.WantReadyStamps();
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t before = uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
  ASSERT_EQ(ring.producer.Write("ab", 2), 2);
  const uint64_t first = ring.consumer.ReadySinceNs();
  EXPECT_GE(first, before);
  // More bytes behind unread ones: the ring was readable already, the stamp stays.
  ASSERT_EQ(ring.producer.Write("cd", 2), 2);
  EXPECT_EQ(ring.consumer.ReadySinceNs(), first);
  ASSERT_EQ(ring.consumer.Read(bytes, 3), 3);
  ASSERT_EQ(ring.producer.Write("e", 1), 1);
  EXPECT_EQ(ring.consumer.ReadySinceNs(), first);
  // Everything read: the next write makes it readable again, later.
  ASSERT_EQ(ring.consumer.Read(bytes, 2), 2);
  while (true) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec) > first) break;
  }
  ASSERT_EQ(ring.producer.Write("f", 1), 1);
  EXPECT_GT(ring.consumer.ReadySinceNs(), first);
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

TEST(RingTest, WindowGrowsWhenAWriteDoesNotFitEvenWithUnreadBytes) {
  HeapRing ring(65536, 4096);
  std::vector<uint8_t> in(70000), out(70000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 13 + 5);
  // Small writes that fit never grow the window.
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(ring.producer.Write(in.data(), 1000), 1000);
    ASSERT_EQ(ring.consumer.Read(out.data(), 1000), 1000);
  }
  EXPECT_EQ(ring.producer.Window(), 4096u);
  // A consumer that does not read: the window still grows, four times each step, up to the
  // capacity (kernel TCP, too, takes megabytes before a silent reader stops a writer).
  size_t written = 0;
  for (int64_t n; (n = ring.producer.Write(in.data() + written, in.size() - written)) > 0;) {
    written += size_t(n);
  }
  // (Less the part that wrapped at the last growth, whose old place waits for the reader.)
  EXPECT_GE(written, 65536u * 3 / 4);
  EXPECT_EQ(ring.producer.Window(), 65536u);
  EXPECT_FALSE(ring.producer.HasRoom());
  ASSERT_EQ(ring.consumer.Read(out.data(), out.size()), int64_t(written));
  EXPECT_EQ(std::memcmp(out.data(), in.data(), written), 0);
  EXPECT_TRUE(ring.producer.HasRoom());
}

TEST(RingTest, GrowingWithWrappedUnreadBytesKeepsThemAndTheirOldPlace) {
  HeapRing ring(16384, 4096);  // one growth, to the capacity
  std::vector<uint8_t> in(40000), out(40000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 31 + 7);
  // 4000 unread bytes that wrap: offsets 2000..4095, then 0..1903.
  ASSERT_EQ(ring.producer.Write(in.data(), 3000), 3000);
  ASSERT_EQ(ring.consumer.Read(out.data(), 2000), 2000);
  ASSERT_EQ(ring.producer.Write(in.data() + 3000, 3000), 3000);
  // A consumer that looked before the growth reads with the old window: snapshot its view.
  const std::vector<uint8_t> old_start(ring.data.begin(), ring.data.begin() + 1904);
  // This write does not fit: the window grows to 16 KiB (the capacity) at once. Until the consumer
  // has read past the old window's bytes, writes stop at the new window's end, so the old place of
  // the wrapped part is not overwritten.
  const int64_t n = ring.producer.Write(in.data() + 6000, 30000);
  EXPECT_EQ(ring.producer.Window(), 16384u);
  EXPECT_EQ(n, 16384 - (4096 + 1904));
  EXPECT_EQ(ring.producer.Write(in.data() + 6000 + size_t(n), 100), 0);
  EXPECT_TRUE(std::equal(old_start.begin(), old_start.end(), ring.data.begin()));
  // Everything reads back in order; then the old place is free and writing goes on.
  ASSERT_EQ(ring.consumer.Read(out.data() + 2000, 4000 + size_t(n)), 4000 + n);
  EXPECT_EQ(std::memcmp(out.data(), in.data(), 6000 + size_t(n)), 0);
  ASSERT_EQ(ring.producer.Write(in.data() + 6000 + size_t(n), 100), 100);
  ASSERT_EQ(ring.consumer.Read(out.data(), 100), 100);
  EXPECT_EQ(std::memcmp(out.data(), in.data() + 6000 + size_t(n), 100), 0);
}

TEST(RingTest, CorruptMappingIsReportedNotTrusted) {
  HeapRing ring(8192, 4096);
  char out[16] = {};
  ASSERT_EQ(ring.producer.Write("abc", 3), 3);
  const uint64_t good = ring.control.mapping.load();
  // Windows that are not a power of two within the capacity, and a shift beyond the window.
  for (const uint64_t bad : {uint64_t{0} | (uint64_t{40} << 32), uint64_t{14} << 32,
                             uint64_t{5} << 32, (uint64_t{12} << 32) | 5000u, uint64_t{1} << 45}) {
    ring.control.mapping.store(bad);
    EXPECT_EQ(ring.consumer.Read(out, sizeof out), -1) << bad;
    EXPECT_EQ(ring.producer.Write(out, 1), -1) << bad;
    EXPECT_EQ(ring.producer.Window(), 0u) << bad;
  }
  ring.control.mapping.store(good);
  EXPECT_EQ(ring.consumer.Read(out, sizeof out), 3);
}

// Writes the rest of `in` (at most `write_max` per write) while reading it into `out` (at most
// `read_max` per read), single-threaded, from positions `sent` and `received`.
template <typename Ring>
void StreamTheRest(Ring &ring, const std::vector<uint8_t> &in, std::vector<uint8_t> &out,
                   size_t sent, size_t received, size_t write_max, size_t read_max) {
  while (received < in.size()) {
    const int64_t w = ring.producer.Write(in.data() + sent, std::min(in.size() - sent, write_max));
    ASSERT_GE(w, 0);
    sent += size_t(w);
    const int64_t r = ring.consumer.Read(out.data() + received, read_max);
    ASSERT_GE(r, 0);
    received += size_t(r);
  }
}

TEST(RingTest, SmallWindowsStayInTheSmallAreaAndTheLargeAreaIsUntouched) {
  TwoAreaRing ring(16384, 262144, 4096);
  std::vector<uint8_t> in(16384, 0x5a), out(16384);
  // Request/response traffic and growth up to the small area's size: all of it stays there.
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(ring.producer.Write(in.data(), 3000), 3000);
    ASSERT_EQ(ring.consumer.Read(out.data(), 3000), 3000);
  }
  ASSERT_EQ(ring.producer.Write(in.data(), 6000), 6000);  // does not fit 4 KiB: grows to 16
  EXPECT_EQ(ring.producer.Window(), 16384u);
  ASSERT_EQ(ring.consumer.Read(out.data(), 6000), 6000);
  EXPECT_TRUE(std::all_of(ring.large.begin(), ring.large.end(), [](uint8_t b) { return b == 0; }));
}

TEST(RingTest, LeavingTheSmallAreaMovesWrappedUnreadBytesAndLeavesTheOldCopyIntact) {
  TwoAreaRing ring(16384, 262144, 16384);
  std::vector<uint8_t> in(300000), out(300000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 29 + 11);
  // 12,000 unread bytes that wrap in the 16 KiB small window: offsets 10000..16383, 0..5615.
  ASSERT_EQ(ring.producer.Write(in.data(), 14000), 14000);
  ASSERT_EQ(ring.consumer.Read(out.data(), 10000), 10000);
  ASSERT_EQ(ring.producer.Write(in.data() + 14000, 8000), 8000);
  // A consumer that looked before the growth still reads with the small window: snapshot it.
  const std::vector<uint8_t> small_before = ring.small;
  // Does not fit: the window grows to 64 KiB, in the large area, with no guard to wait for.
  const int64_t n = ring.producer.Write(in.data() + 22000, 100000);
  EXPECT_EQ(ring.producer.Window(), 65536u);
  EXPECT_EQ(n, 65536 - 12000);
  EXPECT_EQ(ring.small, small_before);
  // Everything reads back in order from the large area.
  ASSERT_EQ(ring.consumer.Read(out.data() + 10000, 12000 + size_t(n)), 12000 + n);
  EXPECT_EQ(std::memcmp(out.data(), in.data(), 22000 + size_t(n)), 0);
  // And the stream goes on there, growing to the capacity; the small area is never written.
  size_t sent = 22000 + size_t(n), received = sent;
  ASSERT_NO_FATAL_FAILURE(StreamTheRest(ring, in, out, sent, received, in.size(), 7000));
  EXPECT_EQ(ring.producer.Window(), 262144u);
  EXPECT_EQ(out, in);
  EXPECT_EQ(ring.small, small_before);
}

TEST(RingTest, AReaderWithTheSmallWindowReadsIntactBytesAfterTheMove) {
  TwoAreaRing ring(4096, 65536, 4096);
  std::vector<uint8_t> in(8192), out(8192);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 3 + 1);
  ASSERT_EQ(ring.producer.Write(in.data(), 3000), 3000);
  ASSERT_EQ(ring.consumer.Read(out.data(), 2000), 2000);
  ASSERT_EQ(ring.producer.Write(in.data() + 3000, 3000), 3000);  // 4000 unread, wrapped
  // The consumer took its view (the small window) before the producer grew the ring.
  const RingMapping seen = ring.consumer.Mapping();
  ASSERT_EQ(ring.producer.Write(in.data() + 6000, 2000), 2000);  // moves to the large area
  ASSERT_EQ(ring.producer.Window(), 16384u);
  // Reading the 4000 bytes it knew of with that view finds them where they were.
  for (uint64_t pos = 2000; pos < 6000; ++pos) {
    ASSERT_EQ(ring.small[(pos + seen.shift) & (seen.window - 1)], in[pos]) << pos;
  }
  ASSERT_EQ(ring.consumer.Read(out.data() + 2000, 6000), 6000);
  EXPECT_EQ(std::memcmp(out.data(), in.data(), 8000), 0);
}

// Areas 1 and 2 made on the heap when the producer first needs them (as a session's region
// makes them), found by the consumer through the offsets the producer published.
class HeapAreaSource : public AreaSource {
 public:
  explicit HeapAreaSource(uint32_t medium) : medium_(medium) {}
  uint8_t *Allocate(int area, uint32_t bytes, uint64_t *offset) override {
    made_[area].assign(bytes, 0);
    *offset = uint64_t(area);
    return made_[area].data();
  }
  uint8_t *Existing(int area, uint32_t *bytes) override {
    *bytes = uint32_t(made_[area].size());
    return made_[area].empty() ? nullptr : made_[area].data();
  }
  uint8_t *Resolve(uint64_t offset, uint32_t window) override {
    if (offset < 1 || offset > 2 || window > made_[offset].size()) return nullptr;
    return made_[offset].data();
  }
  uint32_t medium_bytes() const override { return medium_; }
  size_t Made(int area) const { return made_[area].size(); }

 private:
  uint32_t medium_;
  std::vector<uint8_t> made_[3];
};

struct SourcedRing {
  SourcedRing(uint32_t capacity, uint32_t reserve) : first(512), source(65536) {
    SpscRing::Initialize(&control, 512);
    producer = SpscRing(&control, {first.data(), 512}, &source, capacity);
    consumer = SpscRing(&control, {first.data(), 512}, &source, SpscRing::kMaxCapacity);
    if (reserve != 0) producer.ReserveLargeArea(reserve);
  }
  // Writes without reading until the ring is full; the bytes written.
  size_t Fill(const std::vector<uint8_t> &in, size_t from) {
    size_t written = 0;
    for (int64_t n;
         (n = producer.Write(in.data() + from + written, in.size() - from - written)) > 0;) {
      written += size_t(n);
    }
    return written;
  }
  RingControl control;
  std::vector<uint8_t> first;
  HeapAreaSource source;
  SpscRing producer;
  SpscRing consumer;
};

// A ring held to 256 KiB (a connection not accepted yet) whose large area has room for 4 MiB:
// once its capacity is raised (the server's limit), it grows into that area and every byte
// arrives; a capacity below the window keeps the window (bytes already queued stay).
TEST(RingTest, AReservedLargeAreaLetsALaterCapacityGrowTheRing) {
  constexpr uint32_t kUnbound = 256 << 10, kReserve = 4 << 20;
  std::vector<uint8_t> in(size_t{8} << 20), out(in.size());
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 7 + 1);
  SourcedRing ring(kUnbound, kReserve);
  size_t sent = ring.Fill(in, 0);
  EXPECT_GE(sent, size_t{kUnbound} * 3 / 4);
  EXPECT_EQ(ring.producer.Window(), kUnbound);
  EXPECT_EQ(ring.source.Made(2), size_t{kReserve});
  ring.producer.SetCapacity(1 << 20);
  sent += ring.Fill(in, sent);
  EXPECT_EQ(ring.producer.Window(), 1u << 20);
  EXPECT_GT(sent, size_t{kUnbound});
  // Lower than the window: the window stays, and so does every byte queued in it.
  ring.producer.SetCapacity(64 << 10);
  EXPECT_EQ(ring.producer.capacity(), 1u << 20);
  // Past the reserved area: held to it.
  ring.producer.SetCapacity(16 << 20);
  EXPECT_EQ(ring.producer.capacity(), uint32_t{kReserve});
  ASSERT_EQ(ring.consumer.Read(out.data(), sent), int64_t(sent));
  EXPECT_EQ(std::memcmp(out.data(), in.data(), sent), 0);
}

// Without a reservation, the large area is made for the capacity of the time and a later,
// larger capacity cannot grow past it; a capacity lowered before any growth holds.
TEST(RingTest, WithoutAReservationTheLargeAreaBoundsTheRing) {
  std::vector<uint8_t> in(size_t{2} << 20);
  SourcedRing grown(256 << 10, 0);
  grown.Fill(in, 0);
  grown.producer.SetCapacity(1 << 20);
  EXPECT_EQ(grown.producer.capacity(), 256u << 10);
  SourcedRing narrowed(256 << 10, 0);
  narrowed.producer.SetCapacity(64 << 10);
  const size_t written = narrowed.Fill(in, 0);
  EXPECT_LE(written, size_t{64} << 10);
  EXPECT_EQ(narrowed.producer.Window(), 64u << 10);
}

TEST(RingTest, AFirstWindowOfOneKibMovesTwiceAndKeepsEveryByte) {
  ThreeAreaRing ring(16384, 262144);
  std::vector<uint8_t> in(200000), out(200000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 11 + 3);
  // Small request/response traffic stays in the first window: nothing else is touched.
  size_t sent = 0, received = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(ring.producer.Write(in.data() + sent, 700), 700);
    sent += 700;
    ASSERT_EQ(ring.consumer.Read(out.data() + received, 700), 700);
    received += 700;
  }
  EXPECT_EQ(ring.producer.Window(), kFirstWindow);
  auto all_zero = [](const std::vector<uint8_t> &area) {
    return std::all_of(area.begin(), area.end(), [](uint8_t b) { return b == 0; });
  };
  EXPECT_TRUE(all_zero(ring.small));
  EXPECT_TRUE(all_zero(ring.large));
  // 900 unread bytes that wrap in the first window (offsets 368..1023, 0..243), then a write
  // that does not fit: the window moves to the small area (4 KiB), the first window is left as
  // it was.
  ASSERT_EQ(ring.producer.Write(in.data() + sent, 900), 900);
  sent += 900;
  const std::vector<uint8_t> first_before = ring.first;
  ASSERT_EQ(ring.producer.Write(in.data() + sent, 3000), 3000);
  sent += 3000;
  EXPECT_EQ(ring.producer.Window(), 4096u);
  EXPECT_EQ(ring.first, first_before);
  // A stream: in place to 16 KiB, then into the large area; every byte arrives in order.
  ASSERT_NO_FATAL_FAILURE(StreamTheRest(ring, in, out, sent, received, 9000, 5000));
  EXPECT_GE(ring.producer.Window(), 65536u);
  EXPECT_EQ(out, in);
  EXPECT_EQ(ring.first, first_before);
}

// Two threads, random sizes: every byte arrives once, in order, while the window grows.
// Run under ThreadSanitizer too.
template <typename Ring>
void ConcurrentTransfer(Ring &ring, uint32_t seed, size_t total) {
  const size_t kTotal = total;
  std::thread producer([&] {
    std::mt19937 rng(seed * 2 + 1);
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
  std::mt19937 rng(seed * 2 + 2);
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

TEST(RingTest, ConcurrentProducerAndConsumerAreByteExact) {
  // Many young rings: each grows twice (4 KiB, 16 KiB, 64 KiB) while bytes are in flight.
  for (uint32_t round = 0; round < 40; ++round) {
    HeapRing ring(65536, 4096);
    ConcurrentTransfer(ring, round, 256 << 10);
  }
  HeapRing ring(65536, 4096);
  ConcurrentTransfer(ring, 99, 8 << 20);
}

TEST(RingTest, ConcurrentTransferThroughThreeAreasIsByteExact) {
  for (uint32_t round = 0; round < 40; ++round) {
    ThreeAreaRing ring(16384, 262144);
    ConcurrentTransfer(ring, 2000 + round, 512 << 10);
  }
}

TEST(RingTest, ConcurrentTransferOutOfTheSmallAreaIsByteExact) {
  // Each ring grows in its small area (4 to 16 KiB), then out of it (64, 256 KiB).
  for (uint32_t round = 0; round < 40; ++round) {
    TwoAreaRing ring(16384, 262144, 4096);
    ConcurrentTransfer(ring, 1000 + round, 512 << 10);
  }
  TwoAreaRing ring(16384, 262144, 4096);
  ConcurrentTransfer(ring, 1099, 8 << 20);
}

}  // namespace
}  // namespace loopfast
