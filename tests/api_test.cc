// The explicit API and its Winsock twin: SPEC S1 (the call and its Boolean), S2 (TCP only),
// S4/S5 (when it may be set), S12 (off by default), S14 (errors), S15 (overlapped use).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "loopfast/loopfast.h"
#include "loopfast/loopfast.hpp"
#include "loopfast/winsock.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

int Ioctl(int fd, unsigned long code, const void *in, size_t in_len, size_t out_len = 0,
          size_t *returned = nullptr) {
  char out[8];
  return loopfast_ioctl(fd, code, in, in_len, out_len ? out : nullptr, out_len, returned);
}

// Expects the call to fail with `expected_errno`.
#define EXPECT_FAILS_WITH(call, expected_errno)          \
  do {                                                   \
    errno = 0;                                           \
    EXPECT_EQ((call), -1);                               \
    EXPECT_EQ(errno, expected_errno) << strerror(errno); \
  } while (0)

TEST(ApiTest, VersionIsSemantic) { EXPECT_NE(std::strchr(loopfast_version(), '.'), nullptr); }

TEST(ApiTest, EnablesAndReportsZeroBytesReturned) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int32_t on = 1;
  size_t returned = 99;
  EXPECT_EQ(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &on, sizeof on, 0, &returned), 0);
  EXPECT_EQ(returned, 0u);
  const int32_t off = 0;
  EXPECT_EQ(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &off, sizeof off), 0);
  const int32_t any_nonzero = 2;  // a Windows BOOL: every nonzero value is TRUE
  EXPECT_EQ(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &any_nonzero, sizeof any_nonzero), 0);
  close(fd);
}

TEST(ApiTest, UnknownCodeIsInvalid) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int32_t on = 1;
  EXPECT_FAILS_WITH(Ioctl(fd, 0x98000011UL, &on, sizeof on), EINVAL);
  EXPECT_FAILS_WITH(Ioctl(fd, 0, &on, sizeof on), EINVAL);
  close(fd);
}

TEST(ApiTest, InputMustBeAFourByteBooleanAndOutputEmpty) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int64_t wide = 1;
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &wide, 1), EINVAL);
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &wide, 8), EINVAL);
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &wide, 0), EINVAL);
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &wide, 4, /*out_len=*/4), EINVAL);
  close(fd);
}

TEST(ApiTest, BadPointersAreFaultsNotCrashes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, nullptr, 4), EFAULT);
  void *page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  ASSERT_EQ(munmap(page, 4096), 0);
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, page, 4), EFAULT);
  const int32_t on = 1;
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &on, 4, 0, static_cast<size_t *>(page)),
                    EFAULT);
  close(fd);
}

TEST(ApiTest, OnlyTcpSockets) {
  const int32_t on = 1;
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  EXPECT_FAILS_WITH(Ioctl(udp, SIO_LOOPBACK_FAST_PATH, &on, 4), EINVAL);
  close(udp);
  const int unix_stream = socket(AF_UNIX, SOCK_STREAM, 0);
  EXPECT_FAILS_WITH(Ioctl(unix_stream, SIO_LOOPBACK_FAST_PATH, &on, 4), EINVAL);
  close(unix_stream);
  const int sctp_like = socket(AF_INET6, SOCK_SEQPACKET, 0);
  if (sctp_like >= 0) {
    EXPECT_FAILS_WITH(Ioctl(sctp_like, SIO_LOOPBACK_FAST_PATH, &on, 4), EINVAL);
    close(sctp_like);
  }
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_FAILS_WITH(Ioctl(pipe_fds[0], SIO_LOOPBACK_FAST_PATH, &on, 4), ENOTSOCK);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  EXPECT_FAILS_WITH(Ioctl(-1, SIO_LOOPBACK_FAST_PATH, &on, 4), EBADF);
  EXPECT_FAILS_WITH(Ioctl(1 << 20, SIO_LOOPBACK_FAST_PATH, &on, 4), EBADF);
}

TEST(ApiTest, ConnectedSocketIsAClearError) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", false, &port);
  const int fd = Connect({AF_INET, "127.0.0.1", port}, false);
  const int32_t on = 1;
  EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &on, 4), EISCONN);
  const int accepted = accept(listener, nullptr, nullptr);
  EXPECT_FAILS_WITH(Ioctl(accepted, SIO_LOOPBACK_FAST_PATH, &on, 4), EISCONN);
  close(accepted);
  close(fd);
  close(listener);
}

TEST(ApiTest, ListenerMayOptInUntilItAccepts) {
  uint16_t port = 0;
  // Opted in after listen() but before the first accept: S5 allows it, and it works.
  const int listener = Listen(AF_INET, "127.0.0.1", false, &port);
  const int32_t on = 1;
  ASSERT_EQ(Ioctl(listener, SIO_LOOPBACK_FAST_PATH, &on, 4), 0);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    char byte = 0;
    if (!ReadAll(fd, &byte, 1) || !WriteAll(fd, &byte, 1)) return 2;
    return ObservedPath(fd) == "fast" ? 0 : 1;
  });
  const int fd = Connect({AF_INET, "127.0.0.1", port}, true);
  char byte = 'x';
  ASSERT_TRUE(WriteAll(fd, &byte, 1));
  ASSERT_TRUE(ReadAll(fd, &byte, 1));
  EXPECT_EQ(ObservedPath(fd), "fast");
  close(fd);
  EXPECT_EQ(Reap(server), 0);
  // This process's copy of the listener has not accepted; the child's has. Accept here too:
  const int fd2 = Connect({AF_INET, "127.0.0.1", port}, true);
  const int accepted = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  EXPECT_FAILS_WITH(Ioctl(listener, SIO_LOOPBACK_FAST_PATH, &on, 4), EBUSY);
  close(accepted);
  close(fd2);
  close(listener);
}

TEST(ApiTest, DisablingBeforeConnectKeepsKernelTcp) {
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    char byte = 0;
    if (!ReadAll(fd, &byte, 1) || !WriteAll(fd, &byte, 1)) return 2;
    return ObservedPath(fd) == "kernel" ? 0 : 1;
  });
  close(listener);
  const int fd = TcpSocket(AF_INET, true);
  ASSERT_EQ(loopfast_set_fast_path(fd, 0), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
  char byte = 'x';
  ASSERT_TRUE(WriteAll(fd, &byte, 1));
  ASSERT_TRUE(ReadAll(fd, &byte, 1));
  EXPECT_EQ(ObservedPath(fd), "kernel");
  EXPECT_STREQ(loopfast_fallback_reason(fd), "");  // it never opted in
  close(fd);
  EXPECT_EQ(Reap(server), 0);
}

TEST(ApiTest, OffByDefault) {
  // S12: a socket nobody switched on stays on kernel TCP even against a fast listener.
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  const pid_t server = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    char byte = 0;
    if (!ReadAll(fd, &byte, 1)) return 2;
    const std::string path = ObservedPath(fd);
    const bool said_why = std::strcmp(loopfast_fallback_reason(fd), "peer did not opt in") == 0;
    return path == "kernel" && said_why ? 0 : 1;
  });
  close(listener);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
  ASSERT_TRUE(WriteAll(fd, "x", 1));
  EXPECT_EQ(loopfast_path_of(fd), LOOPFAST_PATH_KERNEL);
  close(fd);
  EXPECT_EQ(Reap(server), 0);
}

TEST(ApiTest, PathOfUntrackedAndBadDescriptors) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_EQ(loopfast_path_of(pipe_fds[0]), LOOPFAST_PATH_NONE);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  EXPECT_FAILS_WITH(loopfast_path_of(-1), EBADF);
  EXPECT_STREQ(loopfast_fallback_reason(-1), "");
}

TEST(ApiTest, CppWrapperReportsErrorCodes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_FALSE(loopfast::SetFastPath(fd, true));
  EXPECT_EQ(loopfast::PathOf(fd), loopfast::Path::kNone);
  close(fd);
  const std::error_code error = loopfast::SetFastPath(-1, true);
  EXPECT_EQ(error.value(), EBADF);
}

// ---- Winsock entry points (S1, S14, S15) ----

TEST(WinsockTest, WsaIoctlSucceedsLikeWindows) {
  const SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
  BOOL on = TRUE;
  DWORD returned = 77;
  WSASetLastError(12345);
  EXPECT_EQ(
      WSAIoctl(s, SIO_LOOPBACK_FAST_PATH, &on, sizeof on, nullptr, 0, &returned, nullptr, nullptr),
      0);
  EXPECT_EQ(returned, 0u);
  EXPECT_EQ(WSAGetLastError(), 0);
  close(s);
}

TEST(WinsockTest, ErrorsMapToWsaCodes) {
  const SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
  BOOL on = TRUE;
  DWORD returned = 0;
  EXPECT_EQ(WSAIoctl(s, 0x12345678, &on, sizeof on, nullptr, 0, &returned, nullptr, nullptr),
            SOCKET_ERROR);
  EXPECT_EQ(WSAGetLastError(), WSAEINVAL);
  EXPECT_EQ(
      WSAIoctl(s, SIO_LOOPBACK_FAST_PATH, nullptr, 4, nullptr, 0, &returned, nullptr, nullptr),
      SOCKET_ERROR);
  EXPECT_EQ(WSAGetLastError(), WSAEFAULT);
  EXPECT_EQ(WSAIoctl(s, SIO_LOOPBACK_FAST_PATH, &on, sizeof on, &returned, sizeof returned,
                     &returned, nullptr, nullptr),
            SOCKET_ERROR);
  EXPECT_EQ(WSAGetLastError(), WSAEINVAL);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_EQ(WSAIoctl(pipe_fds[0], SIO_LOOPBACK_FAST_PATH, &on, sizeof on, nullptr, 0, &returned,
                     nullptr, nullptr),
            SOCKET_ERROR);
  EXPECT_EQ(WSAGetLastError(), WSAENOTSOCK);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  close(s);
  EXPECT_EQ(loopfast_errno_to_wsa(EISCONN), WSAEISCONN);
  EXPECT_EQ(loopfast_errno_to_wsa(EOPNOTSUPP), WSAEOPNOTSUPP);
  EXPECT_EQ(loopfast_errno_to_wsa(EINTR), WSAEINTR);
  EXPECT_EQ(loopfast_errno_to_wsa(ENETDOWN), WSAENETDOWN);
  EXPECT_EQ(loopfast_errno_to_wsa(EACCES), WSAEACCES);
  EXPECT_EQ(loopfast_errno_to_wsa(EINPROGRESS), WSAEINPROGRESS);
}

int completion_calls = 0;
DWORD completion_error = 99;
LPWSAOVERLAPPED completion_overlapped = nullptr;
void OnComplete(DWORD error, DWORD transferred, LPWSAOVERLAPPED overlapped, DWORD flags) {
  ++completion_calls;
  completion_error = error + transferred + flags;
  completion_overlapped = overlapped;
}

TEST(WinsockTest, OverlappedCallsCompleteAtOnce) {
  const SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
  BOOL on = TRUE;
  WSAOVERLAPPED overlapped{};
  overlapped.Internal = 5;
  overlapped.InternalHigh = 5;
  DWORD returned = 7;
  EXPECT_EQ(WSAIoctl(s, SIO_LOOPBACK_FAST_PATH, &on, sizeof on, nullptr, 0, &returned, &overlapped,
                     OnComplete),
            0);
  EXPECT_EQ(overlapped.Internal, 0u);
  EXPECT_EQ(overlapped.InternalHigh, 0u);
  EXPECT_EQ(completion_calls, 1);
  EXPECT_EQ(completion_error, 0u);
  EXPECT_EQ(completion_overlapped, &overlapped);
  // A failing overlapped call reports at once and runs no completion routine.
  EXPECT_EQ(WSAIoctl(s, 1, &on, sizeof on, nullptr, 0, &returned, &overlapped, OnComplete),
            SOCKET_ERROR);
  EXPECT_EQ(completion_calls, 1);
  close(s);
}

// LOOPFAST_DISABLE is read once per process: check it in a fresh process (this binary again).
TEST(ApiTest, DisabledHostReportsNotSupported) {
  if (std::getenv("LOOPFAST_API_TEST_CHILD") != nullptr) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    const int32_t on = 1;
    EXPECT_FAILS_WITH(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &on, 4), EOPNOTSUPP);
    const int32_t off = 0;
    EXPECT_EQ(Ioctl(fd, SIO_LOOPBACK_FAST_PATH, &off, 4), 0);  // turning it off is fine
    close(fd);
    return;
  }
  const pid_t child = fork();
  if (child == 0) {
    setenv("LOOPFAST_DISABLE", "1", 1);
    setenv("LOOPFAST_API_TEST_CHILD", "1", 1);
    execl("/proc/self/exe", "e2e_tests", "--gtest_filter=ApiTest.DisabledHostReportsNotSupported",
          static_cast<char *>(nullptr));
    _exit(127);
  }
  EXPECT_EQ(Reap(child), 0);
}

}  // namespace
}  // namespace loopfast::test
