#include "sys/family_memory.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <vector>

namespace loopfast::sys {
namespace {

TEST(FamilyMemoryTest, CellsAreDistinctZeroedAndReused) {
  std::set<LockCell *> cells;
  std::vector<LockCell *> taken;
  for (int i = 0; i < 3000; ++i) {  // more than one chunk
    LockCell *cell = AllocateLockCell();
    ASSERT_NE(cell, nullptr);
    EXPECT_EQ(cell->send_lock.load(), 0u);
    EXPECT_EQ(cell->holders.load(), 0u);
    EXPECT_TRUE(cells.insert(cell).second);
    cell->send_lock.store(7);
    taken.push_back(cell);
  }
  LockCell *freed = taken.back();
  FreeLockCell(freed);
  LockCell *again = AllocateLockCell();
  EXPECT_EQ(again, freed);  // the last chunk's free cell is found first
  EXPECT_EQ(again->send_lock.load(), 0u);
  for (LockCell *cell : taken) FreeLockCell(cell);
}

TEST(FamilyMemoryTest, AForkedChildSharesCellsAndTheirAllocation) {
  LockCell *cell = AllocateLockCell();
  ASSERT_NE(cell, nullptr);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    cell->holders.store(42);
    // The child takes a cell: the parent must not get the same one.
    LockCell *child_cell = AllocateLockCell();
    child_cell->recv_lock.store(1);
    _exit(child_cell == cell ? 1 : 0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(cell->holders.load(), 42u);
  FreeLockCell(cell);
}

TEST(FamilyMemoryTest, BlocksAreSharedWithAForkedChild) {
  auto *block = static_cast<std::atomic<int> *>(MapFamilyShared(100));
  ASSERT_NE(block, nullptr);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    block->store(5);
    _exit(0);
  }
  waitpid(child, nullptr, 0);
  EXPECT_EQ(block->load(), 5);
  UnmapFamilyShared(block, 100);
}

}  // namespace
}  // namespace loopfast::sys
