// The blocking data path, as a program sees it: every call behaves as on kernel TCP.
#include <gtest/gtest.h>
#include <unistd.h>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

TEST(DataPathTest, PlaceholderEchoFast) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    char buffer[5];
    if (!ReadAll(fd, buffer, 5) || !WriteAll(fd, buffer, 5)) return 2;
    return ObservedPath(fd) == "fast" ? 0 : 1;
  });
  close(listener);
  const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
  ASSERT_TRUE(WriteAll(fd, "hello", 5));
  char out[6] = {};
  ASSERT_TRUE(ReadAll(fd, out, 5));
  EXPECT_STREQ(out, "hello");
  EXPECT_EQ(ObservedPath(fd), "fast");
  close(fd);
  EXPECT_EQ(Reap(server), 0);
}

}  // namespace
}  // namespace loopfast::test
