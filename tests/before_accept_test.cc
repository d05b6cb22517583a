// What a client may do with a fast connection before the listening program has accepted it,
// and a MSG_WAITALL receive that outlives the ring stream, compared with kernel TCP. (The other
// cases of connections caught between states are in transition_*_test.cc.)
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

// A non-blocking client that writes its request right after connect, before the server program
// accepts (asyncio's start_tls tests do: a partial write there pauses the protocol, and
// Python 3.11.2 then trips over its own assertion when TLS starts, issue 16). Kernel TCP takes
// the whole request in one send (and megabytes in all) before the accept; so must the fast path,
// up to 256 KiB. The server then reads every byte in order, and the connection is fast.
void NonBlockingSendBeforeTheAccept(size_t request_bytes) {
  for (const bool fast : {false, true}) {
    const char *const path = fast ? "fast" : "kernel TCP";
    uint16_t port = 0;
    const int listener = Listen(AF_INET, "127.0.0.1", fast, &port);
    ASSERT_GE(listener, 0);
    Bound(listener, 3000);
    const int client = TcpSocket(AF_INET, fast);
    fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK);
    const sockaddr_in address = Loopback4(port);
    const int started =
        connect(client, reinterpret_cast<const sockaddr *>(&address), sizeof address);
    ASSERT_TRUE(started == 0 || errno == EINPROGRESS) << strerror(errno);
    struct pollfd writable = {client, POLLOUT, 0};
    ASSERT_EQ(poll(&writable, 1, 3000), 1);
    const std::vector<uint8_t> request = Pattern(81, 0, request_bytes);
    const ssize_t taken = send(client, request.data(), request.size(), MSG_NOSIGNAL);
    EXPECT_EQ(taken, ssize_t(request_bytes)) << path;
    const int server = accept(listener, nullptr, nullptr);
    ASSERT_GE(server, 0);
    Bound(server, 3000);
    std::vector<uint8_t> got(size_t(std::max<ssize_t>(taken, 0)));
    EXPECT_TRUE(ReadAll(server, got.data(), got.size())) << path;
    EXPECT_TRUE(std::equal(got.begin(), got.end(), request.begin())) << path;
    // And the answer, the other way.
    ASSERT_TRUE(WriteAll(server, "k", 1));
    fcntl(client, F_SETFL, fcntl(client, F_GETFL) & ~O_NONBLOCK);
    Bound(client, 3000);
    char byte;
    EXPECT_TRUE(ReadAll(client, &byte, 1)) << path;
    EXPECT_EQ(ObservedPath(client), fast ? "fast" : "kernel");
    EXPECT_EQ(ObservedPath(server), fast ? "fast" : "kernel");
    close(client);
    close(server);
    close(listener);
  }
}

// 100 KiB: what asyncio's start_tls tests write.
TEST(TransitionTest, ANonBlockingSendBeforeTheAcceptTakesWhatKernelTcpTakes) {
  NonBlockingSendBeforeTheAccept(size_t{100} << 10);
}

TEST(TransitionTest, ANonBlockingSendBeforeTheAcceptTakesAQuarterOfAMegabyte) {
  NonBlockingSendBeforeTheAccept(size_t{256} << 10);
}

// More than 256 KiB before the accept: a non-blocking send takes at least 256 KiB (and kernel
// TCP more), the rest goes once the server accepted; the ring grows past its size before the
// accept (a stream that began before the accept is not held to it), every byte in order.
TEST(TransitionTest, AStreamThatBeganBeforeTheAcceptGoesOnAtFullSpeedAfterIt) {
  constexpr size_t kBytes = size_t{8} << 20;
  for (const bool fast : {false, true}) {
    const char *const path = fast ? "fast" : "kernel TCP";
    uint16_t port = 0;
    const int listener = Listen(AF_INET, "127.0.0.1", fast, &port);
    ASSERT_GE(listener, 0);
    Bound(listener, 3000);
    const int client = Connect({AF_INET, "127.0.0.1", port}, fast);
    ASSERT_GE(client, 0);
    Bound(client, 10000);
    const std::vector<uint8_t> data = Pattern(85, 0, kBytes);
    const ssize_t first = send(client, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    EXPECT_GE(first, ssize_t{256} << 10) << path;
    std::thread writer([&] {
      const size_t done = size_t(std::max<ssize_t>(first, 0));
      EXPECT_TRUE(WriteAll(client, data.data() + done, kBytes - done));
    });
    const int server = accept(listener, nullptr, nullptr);
    ASSERT_GE(server, 0);
    Bound(server, 10000);
    std::vector<uint8_t> got(kBytes);
    EXPECT_TRUE(ReadAll(server, got.data(), got.size())) << path;
    writer.join();
    EXPECT_TRUE(got == data) << path;
    EXPECT_EQ(ObservedPath(server), fast ? "fast" : "kernel");
    // The ring grew to the accepting end's limit: the client's queue holds more than what it
    // could before the accept.
    if (fast) {
      const std::vector<uint8_t> more = Pattern(86, 0, size_t{2} << 20);
      const ssize_t queued = send(client, more.data(), more.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      EXPECT_GT(queued, ssize_t{256} << 10);
      got.assign(size_t(std::max<ssize_t>(queued, 0)), 0);
      EXPECT_TRUE(ReadAll(server, got.data(), got.size()));
      EXPECT_TRUE(std::equal(got.begin(), got.end(), more.begin()));
    }
    close(client);
    close(server);
    close(listener);
  }
}

// A blocking MSG_WAITALL receive asks for more than the ring stream holds: the client wrote
// part of it through the ring, then handed its socket to a program that cannot see the rings
// (posix_spawn of cat, which writes the rest: the connection moves to kernel TCP). Kernel TCP
// waits for all of it in one receive; so must the fast path, reading the rest from the kernel
// connection.
TEST(TransitionTest, AMsgWaitallReceiveWaitsForTheRestWhenTheRingStreamEndsMidway) {
  constexpr size_t kRing = 100000, kKernel = 150000;
  for (const bool fast : {false, true}) {
    const char *const path = fast ? "fast" : "kernel TCP";
    ConnectedPair pair;
    MakeConnectedPair(fast, &pair);
    Bound(pair.server, 10000);
    const std::vector<uint8_t> data = Pattern(87, 0, kRing + kKernel);
    std::vector<uint8_t> got(data.size());
    ssize_t received = -1;
    std::thread reader([&] { received = recv(pair.server, got.data(), got.size(), MSG_WAITALL); });
    ASSERT_TRUE(WriteAll(pair.client, data.data(), kRing));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the reader has the ring's part
    int feed[2];
    ASSERT_EQ(pipe2(feed, O_CLOEXEC), 0);
    const pid_t cat = SpawnCat(feed[0], pair.client);
    ASSERT_GT(cat, 0);
    close(feed[0]);
    close(pair.client);
    pair.client = -1;
    // A pipe: write(2), not send(2).
    size_t fed = 0;
    while (fed < kKernel) {
      const ssize_t n = write(feed[1], data.data() + kRing + fed, kKernel - fed);
      if (n <= 0 && errno != EINTR) break;
      if (n > 0) fed += size_t(n);
    }
    EXPECT_EQ(fed, kKernel);
    close(feed[1]);
    EXPECT_EQ(Reap(cat, 10000), 0);
    reader.join();
    EXPECT_EQ(received, ssize_t(data.size())) << path;
    EXPECT_TRUE(got == data) << path;
    close(pair.server);
    pair.server = -1;
  }
}

}  // namespace
}  // namespace loopfast::test
