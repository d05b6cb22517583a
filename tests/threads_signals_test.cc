// Fast sockets shared by threads, and blocking calls meeting signals and timeouts. Where the
// answer is kernel TCP's, the same scenario runs on kernel TCP in the same test and the two
// must agree.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "test_support.h"

namespace loopfast::test {
namespace {

using Clock = std::chrono::steady_clock;

struct Pair {
  int client = -1;
  int server = -1;
  int listener = -1;
  void Close() {
    for (int fd : {client, server, listener}) {
      if (fd >= 0) close(fd);
    }
  }
};

// Both ends in this process, settled on the path asked for (one byte each way).
Pair MakePair(bool fast, bool keep_listener = false) {
  Pair pair;
  uint16_t port = 0;
  pair.listener = Listen(AF_INET, "127.0.0.1", fast, &port);
  pair.client = Connect({AF_INET, "127.0.0.1", port}, fast);
  pair.server = accept(pair.listener, nullptr, nullptr);
  if (!keep_listener) {
    close(pair.listener);
    pair.listener = -1;
  }
  Settle(pair.client, pair.server, fast);
  return pair;
}

void FillUntilFull(int fd) {
  std::vector<char> chunk(1 << 16, 'f');
  while (send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
}

long MsSince(Clock::time_point start) {
  return long(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

// ---- Threads ----

TEST(ThreadTest, TwoThreadsSendingOnOneSocketKeepEachSendWhole) {
  Pair pair = MakePair(true);
  constexpr int kMessages = 2000;
  constexpr size_t kSize = 1000;
  auto sender = [&](uint8_t thread_id) {
    std::vector<uint8_t> message(kSize);
    for (uint32_t i = 0; i < kMessages; ++i) {
      message[0] = thread_id;
      std::memcpy(&message[1], &i, sizeof i);
      for (size_t b = 5; b < kSize; ++b) message[b] = uint8_t(thread_id * 31 + i + b);
      ASSERT_EQ(send(pair.client, message.data(), kSize, 0), ssize_t(kSize));
    }
  };
  std::thread first(sender, uint8_t{1});
  std::thread second(sender, uint8_t{2});
  uint32_t next[3] = {0, 0, 0};
  int whole = 0;
  std::vector<uint8_t> message(kSize);
  for (int m = 0; m < 2 * kMessages; ++m) {
    ASSERT_TRUE(ReadAll(pair.server, message.data(), kSize));
    const uint8_t id = message[0];
    uint32_t index = 0;
    std::memcpy(&index, &message[1], sizeof index);
    bool intact = (id == 1 || id == 2) && index == next[id];
    for (size_t b = 5; intact && b < kSize; ++b) {
      intact = message[b] == uint8_t(id * 31 + index + b);
    }
    if (intact) {
      ++whole;
      ++next[id];
    }
  }
  first.join();
  second.join();
  EXPECT_EQ(whole, 2 * kMessages);
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  pair.Close();
}

TEST(ThreadTest, SendInOneThreadReceiveInAnotherAgainstAnEchoProcess) {
  Pair pair = MakePair(true);
  const pid_t echo = Spawn([&] {
    std::vector<uint8_t> buffer(1 << 16);
    for (;;) {
      const ssize_t n = recv(pair.server, buffer.data(), buffer.size(), 0);
      if (n == 0) return 0;
      if (n < 0 || !WriteAll(pair.server, buffer.data(), size_t(n))) return 2;
    }
  });
  close(pair.server);
  constexpr size_t kTotal = 32 << 20;
  const std::vector<uint8_t> sent = Pattern(21, 0, kTotal);
  std::vector<uint8_t> got(kTotal);
  bool wrote = false, read = false;
  std::thread writer([&] { wrote = WriteAll(pair.client, sent.data(), sent.size()); });
  std::thread reader([&] { read = ReadAll(pair.client, got.data(), got.size()); });
  writer.join();
  reader.join();
  EXPECT_TRUE(wrote && read);
  EXPECT_TRUE(got == sent);
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  shutdown(pair.client, SHUT_WR);
  EXPECT_EQ(Reap(echo), 0);
  close(pair.client);
}

// What a blocked call returns when another thread shuts the socket down, and how soon.
struct Unblocked {
  ssize_t recv_result = -2;
  int accept_result = -2;
  int accept_errno = 0;
  uint32_t epoll_events = 0;
  bool all_prompt = true;
};

Unblocked ShutdownWhileBlocked(bool fast) {
  Unblocked result;
  Pair pair = MakePair(fast, /*keep_listener=*/true);
  auto in_thread = [&](auto call) {
    std::thread blocked(call);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return blocked;
  };
  // recv, then shutdown(SHUT_RDWR) of the same socket.
  auto start = Clock::now();
  std::thread receiver = in_thread([&] {
    char byte;
    result.recv_result = recv(pair.server, &byte, 1, 0);
  });
  shutdown(pair.server, SHUT_RDWR);
  receiver.join();
  result.all_prompt = result.all_prompt && MsSince(start) < 2000;
  // accept, then shutdown of the listener.
  start = Clock::now();
  std::thread acceptor = in_thread([&] {
    result.accept_result = accept(pair.listener, nullptr, nullptr);
    result.accept_errno = errno;
  });
  shutdown(pair.listener, SHUT_RDWR);
  acceptor.join();
  result.all_prompt = result.all_prompt && MsSince(start) < 2000;
  // epoll_wait on the client, then shutdown(SHUT_RDWR) of the client.
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event event = {};
  event.events = EPOLLIN | EPOLLRDHUP;
  epoll_ctl(epfd, EPOLL_CTL_ADD, pair.client, &event);
  start = Clock::now();
  std::thread waiter = in_thread([&] {
    struct epoll_event got = {};
    if (epoll_wait(epfd, &got, 1, 5000) == 1) result.epoll_events = got.events;
  });
  shutdown(pair.client, SHUT_RDWR);
  waiter.join();
  result.all_prompt = result.all_prompt && MsSince(start) < 2000;
  close(epfd);
  pair.Close();
  return result;
}

TEST(ThreadTest, ShutdownFromAnotherThreadEndsBlockedCallsAsOnKernelTcp) {
  const Unblocked kernel = ShutdownWhileBlocked(false);
  const Unblocked fast = ShutdownWhileBlocked(true);
  EXPECT_TRUE(kernel.all_prompt);
  EXPECT_TRUE(fast.all_prompt);
  EXPECT_EQ(fast.recv_result, kernel.recv_result);
  EXPECT_EQ(fast.accept_result, kernel.accept_result);
  EXPECT_EQ(fast.accept_errno, kernel.accept_errno);
  EXPECT_EQ(fast.epoll_events, kernel.epoll_events);
  EXPECT_EQ(kernel.recv_result, 0);  // the reference itself, as tcp(7) users expect
}

// ---- Signals ----

std::atomic<int> handled{0};
void CountSignal(int) { handled.fetch_add(1); }

void Install(int signal_number, bool restart, void (*handler)(int)) {
  struct sigaction action = {};
  action.sa_handler = handler;
  action.sa_flags = restart ? SA_RESTART : 0;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(signal_number, &action, nullptr), 0);
}

// A blocking call in a thread, a signal to that thread after 50 ms, then (if `later`) the
// event that completes the call. Returns the call's result and errno.
struct Outcome {
  ssize_t result = -2;
  int error = 0;
};

template <typename Call, typename Later>
Outcome InterruptedCall(bool restart, Call call, Later later) {
  Install(SIGUSR1, restart, CountSignal);
  handled = 0;
  Outcome outcome;
  std::atomic<bool> done{false};
  std::thread blocked([&] {
    outcome.result = call();
    outcome.error = errno;
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  pthread_kill(blocked.native_handle(), SIGUSR1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!done) later();  // restarted (or still waiting): give it what it waits for
  blocked.join();
  EXPECT_EQ(handled.load(), 1);
  signal(SIGUSR1, SIG_DFL);
  return outcome;
}

TEST(SignalTest, BlockedCallsFailWithEintrWithoutSaRestartAndResumeWithIt) {
  for (const bool restart : {false, true}) {
    SCOPED_TRACE(restart ? "SA_RESTART" : "no SA_RESTART");
    Pair pair = MakePair(true, /*keep_listener=*/true);
    // recv
    char byte = 0;
    Outcome got = InterruptedCall(
        restart, [&] { return recv(pair.server, &byte, 1, 0); },
        [&] { EXPECT_TRUE(WriteAll(pair.client, "r", 1)); });
    if (restart) {
      EXPECT_EQ(got.result, 1);
      EXPECT_EQ(byte, 'r');
    } else {
      EXPECT_EQ(got.result, -1);
      EXPECT_EQ(got.error, EINTR);
    }
    // send into a full ring
    FillUntilFull(pair.client);
    std::vector<char> big(1 << 20, 's');
    std::atomic<bool> stop_draining{false};
    std::thread drainer;
    got = InterruptedCall(
        restart, [&] { return send(pair.client, big.data(), big.size(), 0); },
        [&] {
          drainer = std::thread([&, fd = pair.server] {
            std::vector<char> sink(1 << 16);
            while (!stop_draining) {
              if (recv(fd, sink.data(), sink.size(), MSG_DONTWAIT) <= 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
              }
            }
          });
        });
    stop_draining = true;
    if (drainer.joinable()) drainer.join();
    if (restart) {
      EXPECT_EQ(got.result, ssize_t(big.size()));
    } else {
      EXPECT_EQ(got.result, -1);
      EXPECT_EQ(got.error, EINTR);
    }
    // accept on the fast listener
    int client = -1;
    got = InterruptedCall(
        restart, [&] { return ssize_t(accept(pair.listener, nullptr, nullptr)); },
        [&] {
          uint16_t port = 0;
          struct sockaddr_in address = {};
          socklen_t length = sizeof address;
          getsockname(pair.listener, reinterpret_cast<sockaddr *>(&address), &length);
          port = ntohs(address.sin_port);
          client = Connect({AF_INET, "127.0.0.1", port}, true);
        });
    if (restart) {
      EXPECT_GE(got.result, 0);
      if (got.result >= 0) close(int(got.result));
    } else {
      EXPECT_EQ(got.result, -1);
      EXPECT_EQ(got.error, EINTR);
    }
    if (client >= 0) close(client);
    EXPECT_EQ(ObservedPath(pair.server), "fast");
    pair.Close();
  }
}

TEST(SignalTest, ReceiveAndSendTimeoutsExpireOnTime) {
  Pair pair = MakePair(true);
  const struct timeval timeout = {0, 200000};
  ASSERT_EQ(setsockopt(pair.server, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), 0);
  ASSERT_EQ(setsockopt(pair.client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout), 0);
  char byte;
  auto start = Clock::now();
  EXPECT_EQ(recv(pair.server, &byte, 1, 0), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  long elapsed = MsSince(start);
  EXPECT_GE(elapsed, 180);
  EXPECT_LT(elapsed, 1500);
  FillUntilFull(pair.client);
  std::vector<char> big(1 << 20, 't');
  start = Clock::now();
  EXPECT_EQ(send(pair.client, big.data(), big.size(), 0), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  elapsed = MsSince(start);
  EXPECT_GE(elapsed, 180);
  EXPECT_LT(elapsed, 1500);
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  pair.Close();
}

// The handler sends on the socket whose other direction the interrupted thread is reading,
// and receives (without waiting) on another fast socket.
int handler_send_fd = -1;
int handler_recv_fd = -1;
std::atomic<ssize_t> handler_sent{0};
std::atomic<ssize_t> handler_received{0};
void SendFromHandler(int) {
  const int saved = errno;
  handler_sent = send(handler_send_fd, "ping", 4, MSG_DONTWAIT);
  char buffer[8];
  handler_received = recv(handler_recv_fd, buffer, sizeof buffer, MSG_DONTWAIT);
  errno = saved;
}

TEST(SignalTest, HandlerThatSendsAndReceivesDoesNotDeadlock) {
  Pair pair = MakePair(true);
  Pair other = MakePair(true);
  ASSERT_TRUE(WriteAll(other.client, "pong", 4));
  handler_send_fd = pair.server;
  handler_recv_fd = other.server;
  Install(SIGUSR2, true, SendFromHandler);
  // The main side: blocked in recv on pair.server until the peer answers the handler's ping.
  std::thread peer([&] {
    char ping[4];
    if (ReadAll(pair.client, ping, 4) && std::memcmp(ping, "ping", 4) == 0) {
      WriteAll(pair.client, "ok", 2);
    }
  });
  std::thread blocked([&] {
    char answer[2] = {};
    EXPECT_TRUE(ReadAll(pair.server, answer, 2));
    EXPECT_EQ(std::memcmp(answer, "ok", 2), 0);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  pthread_kill(blocked.native_handle(), SIGUSR2);
  blocked.join();
  peer.join();
  signal(SIGUSR2, SIG_DFL);
  EXPECT_EQ(handler_sent.load(), 4);
  EXPECT_EQ(handler_received.load(), 4);
  EXPECT_EQ(ObservedPath(pair.server), "fast");
  EXPECT_EQ(ObservedPath(other.server), "fast");
  pair.Close();
  other.Close();
}

}  // namespace
}  // namespace loopfast::test
