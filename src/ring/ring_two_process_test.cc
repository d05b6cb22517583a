// The ring between two real processes: shared memory mapped by both, positions only.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "ring/ring.h"

namespace loopfast {
namespace {

uint8_t Byte(uint64_t i) { return uint8_t((i * 2654435761u) >> 13); }

TEST(RingTwoProcessTest, ChildProducesParentConsumesByteExact) {
  constexpr uint32_t kCapacity = 64 * 1024;
  constexpr uint64_t kTotal = 64ull << 20;
  const size_t bytes = sizeof(RingControl) + kCapacity;
  void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  auto *control = new (memory) RingControl;
  SpscRing::Initialize(control, 4096);  // small: the window grows while both run
  auto *data = static_cast<uint8_t *>(memory) + sizeof(RingControl);
  const pid_t child = fork();
  if (child == 0) {
    SpscRing producer(control, data, kCapacity);
    uint8_t chunk[7000];
    uint64_t sent = 0;
    while (sent < kTotal) {
      const size_t want = std::min<uint64_t>(sizeof chunk, kTotal - sent);
      for (size_t i = 0; i < want; ++i) chunk[i] = Byte(sent + i);
      size_t done = 0;
      while (done < want) {
        const int64_t n = producer.Write(chunk + done, want - done);
        if (n < 0) _exit(2);
        done += size_t(n);
      }
      sent += want;
    }
    _exit(0);
  }
  SpscRing consumer(control, data, kCapacity);
  uint8_t buffer[5000];
  uint64_t received = 0;
  uint64_t mismatches = 0;
  while (received < kTotal) {
    const int64_t n = consumer.Read(buffer, sizeof buffer);
    ASSERT_GE(n, 0);
    for (int64_t i = 0; i < n; ++i) mismatches += buffer[i] != Byte(received + uint64_t(i));
    received += uint64_t(n);
    if (n == 0) std::this_thread::yield();
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(mismatches, 0u);
  munmap(memory, bytes);
}

}  // namespace
}  // namespace loopfast
