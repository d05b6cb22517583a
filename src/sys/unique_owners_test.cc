// Unit tests of the RAII owners of a descriptor (unique_fd.h) and a mapping (unique_mapping.h):
// they let go when they go out of scope, not after Release(), and keep errno.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "sys/unique_fd.h"
#include "sys/unique_mapping.h"

namespace loopfast::sys {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(UniqueFdTest, ClosesAtScopeEndKeepingErrno) {
  int fd = -1;
  {
    UniqueFd owner(open("/dev/null", O_RDONLY | O_CLOEXEC));
    fd = owner.get();
    ASSERT_TRUE(owner.valid());
    errno = EPROTO;
  }
  EXPECT_EQ(errno, EPROTO);
  EXPECT_FALSE(IsOpen(fd));
}

TEST(UniqueFdTest, ReleaseHandsTheDescriptorOn) {
  UniqueFd owner(open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int fd = owner.Release();
  EXPECT_FALSE(owner.valid());
  owner.Reset();
  EXPECT_TRUE(IsOpen(fd));
  close(fd);
}

TEST(UniqueFdTest, MoveAndResetCloseTheOldOne) {
  UniqueFd first(open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int old_fd = first.get();
  UniqueFd second(std::move(first));
  EXPECT_FALSE(first.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(second.get(), old_fd);
  second.Reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(second.valid());
  EXPECT_TRUE(old_fd == second.get() || !IsOpen(old_fd));
}

TEST(UniqueMappingTest, UnmapsAtScopeEndUnlessReleased) {
  const size_t bytes = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void *kept = nullptr;
  {
    UniqueMapping failed(MAP_FAILED, bytes);
    EXPECT_FALSE(failed.valid());
    UniqueMapping owner(
        mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), bytes);
    ASSERT_TRUE(owner.valid());
    kept = owner.Release();
  }
  unsigned char page = 0;
  EXPECT_EQ(mincore(kept, bytes, &page), 0);  // still mapped
  {
    UniqueMapping owner(kept, bytes);
    errno = EPROTO;
  }
  EXPECT_EQ(errno, EPROTO);
  EXPECT_EQ(mincore(kept, bytes, &page), -1);  // gone
  EXPECT_EQ(errno, ENOMEM);
}

}  // namespace
}  // namespace loopfast::sys
