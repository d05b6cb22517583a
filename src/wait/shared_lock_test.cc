#include "wait/shared_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>
#include <vector>

namespace loopfast {
namespace {

TEST(SharedLockTest, SerialisesThreads) {
  std::atomic<uint32_t> word{0};
  uint64_t counter = 0;  // plain: the lock must make this race-free (TSan checks)
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        SharedLockGuard guard(&word);
        ++counter;
      }
    });
  }
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(counter, 80000u);
  EXPECT_EQ(word.load(), 0u);
}

TEST(SharedLockTest, OwnerKilledWhileHoldingIsRecovered) {
  void *memory = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  auto *word = new (memory) std::atomic<uint32_t>(0);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  if (child == 0) {
    SharedLock(word).Lock();
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  SharedLock lock(word);
  EXPECT_TRUE(lock.Lock());  // took over from the dead owner instead of freezing
  lock.Unlock();
  EXPECT_FALSE(lock.Lock());
  lock.Unlock();
  munmap(memory, 4096);
}

}  // namespace
}  // namespace loopfast
