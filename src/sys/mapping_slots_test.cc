// Mapping slots: shared mappings side by side in reserved address space, sharing page tables.
#include "sys/mapping_slots.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace loopfast::sys {
namespace {

int MemoryFile(size_t bytes, char fill) {
  const int fd = memfd_create("mapping-slots-test", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) return -1;
  std::vector<char> content(bytes, fill);
  if (pwrite(fd, content.data(), bytes, 0) != static_cast<ssize_t>(bytes)) return -1;
  return fd;
}

// This process's page tables, in KiB (VmPTE).
long PageTableKib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmPTE:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(MappingSlotsTest, AMappingInASlotSharesTheFilesBytesBothWays) {
  const int fd = MemoryFile(8192, 'a');
  ASSERT_GE(fd, 0);
  auto *bytes = static_cast<char *>(MapShared(fd, 8192));
  ASSERT_NE(bytes, MAP_FAILED);
  EXPECT_TRUE(InSlot(bytes));
  EXPECT_EQ(bytes[8191], 'a');
  bytes[0] = 'z';
  char first = 0;
  ASSERT_EQ(pread(fd, &first, 1, 0), 1);
  EXPECT_EQ(first, 'z');
  UnmapShared(bytes, 8192);
  close(fd);
}

TEST(MappingSlotsTest, NeighbouringMappingsShareThePageTables) {
  constexpr int kCount = 32;
  constexpr size_t kLargeBytes = 8u << 20;
  std::vector<int> fds(kCount);
  std::vector<char *> maps(kCount);
  std::vector<void *> large(kCount);
  for (int i = 0; i < kCount; ++i) {
    fds[i] = MemoryFile(kMappingSlotBytes, 'x');
    ASSERT_GE(fds[i], 0);
  }
  // Nothing but the mappings between the two readings (no allocation: a sanitizer's shadow
  // memory has page tables too).
  const long before = PageTableKib();
  ASSERT_GE(before, 0);
  for (int i = 0; i < kCount; ++i) {
    maps[i] = static_cast<char *>(MapShared(fds[i], kMappingSlotBytes));
    if (maps[i] == MAP_FAILED) break;
    // Touch the first and last page, as a connection touches its header and small areas.
    maps[i][0] = 'y';
    maps[i][kMappingSlotBytes - 1] = 'y';
    // And, as a connection does, map large areas that are not touched: placed one by one,
    // the small mappings would lie megabytes apart, each with a page table of its own.
    large[i] = mmap(nullptr, kLargeBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
  }
  const long grown = PageTableKib() - before;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_NE(maps[i], MAP_FAILED);
    EXPECT_TRUE(InSlot(maps[i]));
  }
  // One 4 KiB page table per 2 MiB, ~15 slots each: 32 mappings need 3 or 4 (plus whatever
  // else this process did meanwhile), where mappings placed one by one need one each.
  EXPECT_LE(grown, 6 * 4) << "page tables grew by " << grown << " KiB for " << kCount;
  for (int i = 0; i < kCount; ++i) {
    UnmapShared(maps[i], kMappingSlotBytes);
    if (large[i] != MAP_FAILED) munmap(large[i], kLargeBytes);
    close(fds[i]);
  }
}

TEST(MappingSlotsTest, AFreedSlotIsReusedAndTheOldBytesAreGone) {
  const int first_fd = MemoryFile(4096, '1');
  const int second_fd = MemoryFile(4096, '2');
  ASSERT_GE(first_fd, 0);
  ASSERT_GE(second_fd, 0);
  auto *first = static_cast<char *>(MapShared(first_fd, 4096));
  ASSERT_NE(first, MAP_FAILED);
  UnmapShared(first, 4096);
  // The address is reserved again: not readable (mincore reports no mapping of a file page).
  unsigned char residency = 0;
  EXPECT_EQ(mincore(first, 4096, &residency), 0);
  EXPECT_EQ(residency & 1, 0);
  auto *second = static_cast<char *>(MapShared(second_fd, 4096));
  ASSERT_NE(second, MAP_FAILED);
  EXPECT_EQ(second, first);  // lowest free slot first: slots stay packed
  EXPECT_EQ(second[0], '2');
  UnmapShared(second, 4096);
  close(first_fd);
  close(second_fd);
}

TEST(MappingSlotsTest, MappingsLargerThanASlotGoElsewhere) {
  const int fd = MemoryFile(kMappingSlotBytes + 4096, 'b');
  ASSERT_GE(fd, 0);
  auto *bytes = static_cast<char *>(MapShared(fd, kMappingSlotBytes + 4096));
  ASSERT_NE(bytes, MAP_FAILED);
  EXPECT_FALSE(InSlot(bytes));
  EXPECT_EQ(bytes[kMappingSlotBytes], 'b');
  UnmapShared(bytes, kMappingSlotBytes + 4096);
  close(fd);
}

TEST(MappingSlotsTest, AForkedChildMapsAndUnmapsInItsOwnAddressSpace) {
  const int fd = MemoryFile(4096, 'p');
  ASSERT_GE(fd, 0);
  auto *parent_map = static_cast<char *>(MapShared(fd, 4096));
  ASSERT_NE(parent_map, MAP_FAILED);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The inherited mapping works; freeing it here and mapping again stays in the child.
    bool ok = parent_map[0] == 'p';
    UnmapShared(parent_map, 4096);
    auto *again = static_cast<char *>(MapShared(fd, 4096));
    ok = ok && again != MAP_FAILED && again[0] == 'p';
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(parent_map[0], 'p');  // still mapped in the parent
  UnmapShared(parent_map, 4096);
  close(fd);
}

}  // namespace
}  // namespace loopfast::sys
