// Descriptors loopfast keeps: marked, moved above the program's range, closed.
#include "sys/owned_fds.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace loopfast::sys {
namespace {

TEST(OwnedFdsTest, MoveHighLeavesTheLowNumberToTheProgram) {
  ASSERT_GT(HighBase(), 0) << "RLIMIT_NOFILE below 128 here";
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const int low = pipe_fds[0];
  const int moved = MoveHigh(low);
  EXPECT_GE(moved, HighBase());
  EXPECT_TRUE((fcntl(moved, F_GETFD) & FD_CLOEXEC) != 0);
  // The same pipe, and its old number free again for the program.
  ASSERT_EQ(write(pipe_fds[1], "x", 1), 1);
  char byte = 0;
  EXPECT_EQ(read(moved, &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
  EXPECT_EQ(fcntl(low, F_GETFD), -1);
  EXPECT_EQ(dup(pipe_fds[1]), low);
  close(low);
  // Already high, or not a descriptor: left as it is.
  EXPECT_EQ(MoveHigh(moved), moved);
  EXPECT_EQ(MoveHigh(-1), -1);
  close(moved);
  close(pipe_fds[1]);
}

TEST(OwnedFdsTest, OwnedDescriptorsAreFoundAndForgottenWhenClosed) {
  const int fd = MoveHigh(dup(0));
  Own(fd);
  EXPECT_TRUE(IsOwned(fd));
  EXPECT_EQ(NextOwned(0, ~0u), fd);
  CloseOwned(fd);
  EXPECT_FALSE(IsOwned(fd));
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);
}

}  // namespace
}  // namespace loopfast::sys
