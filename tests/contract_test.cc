// The connection contract: a connection is fast exactly when both ends opted in, the
// destination is loopback, and nothing else forbids it. Every case runs a server process and a
// client process and checks the path from outside the library too: the kernel's own byte
// counters of a fast connection show no data.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <tuple>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

constexpr size_t kEchoBytes = 256 * 1024;

// Server: accept one connection, echo kEchoBytes, report the path it saw as exit status
// (0 fast, 1 kernel, 2 data error, 3 contradiction).
int EchoOnce(int listener) {
  const int fd = accept(listener, nullptr, nullptr);
  if (fd < 0) return 4;
  std::vector<uint8_t> buffer(kEchoBytes);
  if (!ReadAll(fd, buffer.data(), buffer.size()) || !WriteAll(fd, buffer.data(), buffer.size())) {
    return 2;
  }
  char end;
  if (recv(fd, &end, 1, 0) != 0) return 2;  // the client's close: EOF
  const std::string path = ObservedPath(fd);
  close(fd);
  return path == "fast" ? 0 : path == "kernel" ? 1 : 3;
}

struct MatrixCase {
  int family;
  const char *address;
  bool client_fast;
  bool listener_fast;
};

class ContractMatrixTest : public ::testing::TestWithParam<MatrixCase> {};

TEST_P(ContractMatrixTest, FastExactlyWhenBothOptIn) {
  const MatrixCase c = GetParam();
  uint16_t port = 0;
  const int listener = Listen(c.family, c.address, c.listener_fast, &port);
  const pid_t server = Spawn([&] { return EchoOnce(listener); });
  close(listener);
  const int fd = Connect({c.family, c.address, port}, c.client_fast);
  const std::vector<uint8_t> sent = Pattern(1, 0, kEchoBytes);
  ASSERT_TRUE(WriteAll(fd, sent.data(), sent.size()));
  std::vector<uint8_t> echoed(kEchoBytes);
  ASSERT_TRUE(ReadAll(fd, echoed.data(), echoed.size()));
  EXPECT_EQ(sent, echoed);
  const bool expect_fast = c.client_fast && c.listener_fast;
  EXPECT_EQ(ObservedPath(fd), expect_fast ? "fast" : "kernel")
      << "reason: " << loopfast_fallback_reason(fd);
  close(fd);
  EXPECT_EQ(Reap(server), expect_fast ? 0 : 1);
}

INSTANTIATE_TEST_SUITE_P(WhoOptedIn, ContractMatrixTest,
                         ::testing::Values(MatrixCase{AF_INET, "127.0.0.1", true, true},
                                           MatrixCase{AF_INET, "127.0.0.1", true, false},
                                           MatrixCase{AF_INET, "127.0.0.1", false, true},
                                           MatrixCase{AF_INET, "127.0.0.1", false, false},
                                           MatrixCase{AF_INET6, "::1", true, true},
                                           MatrixCase{AF_INET6, "::1", true, false},
                                           MatrixCase{AF_INET6, "::1", false, true},
                                           MatrixCase{AF_INET6, "::1", false, false},
                                           MatrixCase{AF_INET, "127.0.0.2", true, true},
                                           MatrixCase{AF_INET6, "::ffff:127.0.0.1", true, true}),
                         [](const ::testing::TestParamInfo<MatrixCase> &info) {
                           const MatrixCase &c = info.param;
                           std::string name = c.family == AF_INET ? "v4" : "v6";
                           if (std::strcmp(c.address, "127.0.0.2") == 0) name += "_127_0_0_2";
                           if (std::strncmp(c.address, "::ffff:", 7) == 0) name += "_mapped";
                           name += c.client_fast ? "_client_on" : "_client_off";
                           name += c.listener_fast ? "_listener_on" : "_listener_off";
                           return name;
                         });

}  // namespace
}  // namespace loopfast::test
