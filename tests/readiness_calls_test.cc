// The readiness calls beyond poll/select/epoll_wait, each beside kernel TCP in the same test:
// pselect/ppoll/epoll_pwait/epoll_pwait2 (their signal masks and timeouts), EPOLLEXCLUSIVE,
// EPOLLERR/EPOLLHUP after a reset, and select over descriptors past FD_SETSIZE.
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace loopfast::test {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

const char *PathName(bool fast) { return fast ? "fast" : "kernel"; }

// A new epoll set watching `fd` for EPOLLIN; -1 on failure.
int EpollForInput(int fd) {
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event interest = {};
  interest.events = EPOLLIN;
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &interest) != 0) return -1;
  return epfd;
}

// ---- Signal masks: the call's mask lets SIGUSR1 in (the thread blocks it otherwise) ----

std::atomic<int> signals_seen{0};
void CountSignal(int) { signals_seen.fetch_add(1); }

struct WaitResult {
  int value = -2;
  int error = 0;
  double ms = 0;
};

// Runs `wait(mask)` on a thread that blocks SIGUSR1, where `mask` (empty) unblocks it for the
// call only; after `before_ms` the main thread either signals it or (signal false) sends a byte
// from `writer_fd`.
WaitResult WaitWithMask(const std::function<int(const sigset_t *)> &wait, bool signal,
                        int writer_fd, int before_ms = 50) {
  struct sigaction action = {};
  action.sa_handler = CountSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR1, &action, nullptr);  // no SA_RESTART: these calls never restart anyway
  WaitResult result;
  std::atomic<bool> waiting{false};
  std::thread waiter([&] {
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
    sigset_t during;
    sigemptyset(&during);
    waiting = true;
    const auto start = Clock::now();
    errno = 0;
    result.value = wait(&during);
    result.error = errno;
    result.ms = MsSince(start);
  });
  while (!waiting) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(before_ms));
  if (signal) {
    pthread_kill(waiter.native_handle(), SIGUSR1);
  } else {
    EXPECT_EQ(send(writer_fd, "x", 1, MSG_NOSIGNAL), 1);
  }
  waiter.join();
  ::signal(SIGUSR1, SIG_DFL);
  return result;
}

TEST(ReadinessCallsTest, PselectPpollAndEpollPwaitEndWithEintrWhenTheirMaskLetsASignalIn) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    const int epfd = EpollForInput(pair.server);
    ASSERT_GE(epfd, 0);
    const timespec three_s = {3, 0};
    const std::vector<std::pair<std::string, std::function<int(const sigset_t *)>>> calls = {
        {"pselect",
         [&](const sigset_t *mask) {
           fd_set read_set;
           FD_ZERO(&read_set);
           FD_SET(pair.server, &read_set);
           return pselect(pair.server + 1, &read_set, nullptr, nullptr, &three_s, mask);
         }},
        {"ppoll",
         [&](const sigset_t *mask) {
           pollfd entry = {pair.server, POLLIN, 0};
           return ppoll(&entry, 1, &three_s, mask);
         }},
        {"epoll_pwait",
         [&](const sigset_t *mask) {
           epoll_event event;
           return epoll_pwait(epfd, &event, 1, 3000, mask);
         }},
        {"epoll_pwait2",
         [&](const sigset_t *mask) {
           epoll_event event;
           return epoll_pwait2(epfd, &event, 1, &three_s, mask);
         }},
    };
    for (const auto &[name, call] : calls) {
      SCOPED_TRACE(name);
      const int seen = signals_seen.load();
      const WaitResult interrupted = WaitWithMask(call, /*signal=*/true, -1);
      EXPECT_EQ(interrupted.value, -1);
      EXPECT_EQ(interrupted.error, EINTR) << std::strerror(interrupted.error);
      EXPECT_LT(interrupted.ms, 1000);
      EXPECT_EQ(signals_seen.load(), seen + 1);
      // The same call, woken by the peer's byte instead.
      const WaitResult woken = WaitWithMask(call, /*signal=*/false, pair.client);
      EXPECT_EQ(woken.value, 1) << std::strerror(woken.error);
      EXPECT_LT(woken.ms, 1000);
      char byte;
      ASSERT_EQ(recv(pair.server, &byte, 1, 0), 1);
    }
    close(epfd);
    EXPECT_EQ(ObservedPath(pair.server), PathName(fast));
  }
}

TEST(ReadinessCallsTest, EpollPwait2TimesOutOnTimeWithNanosecondTimeouts) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    const int epfd = EpollForInput(pair.server);
    ASSERT_GE(epfd, 0);
    epoll_event event;
    const timespec zero = {0, 0};
    EXPECT_EQ(epoll_pwait2(epfd, &event, 1, &zero, nullptr), 0);
    const timespec sixty_ms = {0, 60 * 1000 * 1000};
    const auto start = Clock::now();
    EXPECT_EQ(epoll_pwait2(epfd, &event, 1, &sixty_ms, nullptr), 0);
    const double waited = MsSince(start);
    EXPECT_GE(waited, 59);
    EXPECT_LT(waited, 500);
    ASSERT_TRUE(WriteAll(pair.client, "y", 1));
    EXPECT_EQ(epoll_pwait2(epfd, &event, 1, nullptr, nullptr), 1);  // null: no limit
    EXPECT_EQ(event.events, uint32_t(EPOLLIN));
    close(epfd);
    EXPECT_EQ(ObservedPath(pair.server), PathName(fast));
  }
}

// ---- EPOLLEXCLUSIVE ----

struct ExclusiveStory {
  int mod_result = 0, mod_error = 0;          // EPOLL_CTL_MOD of an exclusive interest
  int oneshot_result = 0, oneshot_error = 0;  // EPOLLEXCLUSIVE | EPOLLONESHOT
  int woken = 0;                              // waiters woken by one byte (1 or more)
  bool all_ended = false;                     // each waiter ended (woken or by the next bytes)
};

ExclusiveStory Exclusive(bool fast) {
  ExclusiveStory story;
  ConnectedPair pair;
  MakeConnectedPair(fast, &pair);
  int epfds[2];
  for (int &epfd : epfds) {
    epfd = epoll_create1(EPOLL_CLOEXEC);
    epoll_event interest = {};
    interest.events = EPOLLIN | EPOLLEXCLUSIVE;
    EXPECT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, pair.server, &interest), 0);
  }
  epoll_event changed = {};
  changed.events = EPOLLIN;
  story.mod_result = epoll_ctl(epfds[0], EPOLL_CTL_MOD, pair.server, &changed);
  story.mod_error = errno;
  const int other = epoll_create1(EPOLL_CLOEXEC);
  epoll_event oneshot = {};
  oneshot.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
  story.oneshot_result = epoll_ctl(other, EPOLL_CTL_ADD, pair.server, &oneshot);
  story.oneshot_error = errno;
  close(other);
  std::atomic<int> returned{0};
  std::vector<std::thread> waiters;
  for (const int epfd : epfds) {
    waiters.emplace_back([&returned, epfd] {
      epoll_event event;
      if (epoll_wait(epfd, &event, 1, 2000) == 1) returned.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(WriteAll(pair.client, "1", 1));
  const auto start = Clock::now();
  while (returned.load() == 0 && MsSince(start) < 1000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  story.woken = returned.load();
  // The byte is still unread; the rest of the waiters see it once more bytes come.
  for (int i = 0; i < 20 && returned.load() < 2; ++i) {
    EXPECT_TRUE(WriteAll(pair.client, "2", 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto &waiter : waiters) waiter.join();
  story.all_ended = returned.load() == 2;
  for (const int epfd : epfds) close(epfd);
  EXPECT_EQ(ObservedPath(pair.server), PathName(fast));
  return story;
}

TEST(ReadinessCallsTest, EpollExclusiveWakesAWaiterAndRefusesWhatTheKernelRefuses) {
  const ExclusiveStory kernel = Exclusive(false);
  ASSERT_EQ(kernel.mod_result, -1);
  ASSERT_EQ(kernel.mod_error, EINVAL);
  ASSERT_EQ(kernel.oneshot_result, -1);
  ASSERT_EQ(kernel.oneshot_error, EINVAL);
  ASSERT_GE(kernel.woken, 1);
  const ExclusiveStory fast = Exclusive(true);
  EXPECT_EQ(fast.mod_result, kernel.mod_result);
  EXPECT_EQ(fast.mod_error, kernel.mod_error);
  EXPECT_EQ(fast.oneshot_result, kernel.oneshot_result);
  EXPECT_EQ(fast.oneshot_error, kernel.oneshot_error);
  EXPECT_GE(fast.woken, 1);
  EXPECT_TRUE(fast.all_ended);
}

// ---- EPOLLERR and EPOLLHUP ----

TEST(ReadinessCallsTest, EpollReportsAResetAsOnKernelTcp) {
  uint32_t masks[2] = {};
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    const int epfd = epoll_create1(EPOLL_CLOEXEC);
    epoll_event interest = {};
    interest.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;  // ERR and HUP always reported
    ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, pair.server, &interest), 0);
    epoll_event event = {};
    ASSERT_EQ(epoll_wait(epfd, &event, 1, 1000), 1);  // writable, once
    ASSERT_TRUE(WriteAll(pair.server, "unread", 6));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    close(pair.client);  // with unread bytes: a reset
    pair.client = -1;
    ASSERT_EQ(epoll_wait(epfd, &event, 1, 1000), 1);
    masks[fast] = event.events;
    EXPECT_EQ(event.events & (EPOLLERR | EPOLLHUP), uint32_t(EPOLLERR | EPOLLHUP));
    int error = 0;
    socklen_t length = sizeof error;
    ASSERT_EQ(getsockopt(pair.server, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    EXPECT_EQ(error, ECONNRESET);
    close(epfd);
  }
  EXPECT_EQ(masks[1], masks[0]) << std::hex << "fast 0x" << masks[1] << ", kernel 0x" << masks[0];
}

// Defect found by `loopfast bench many`: with 64 or more fast connections in an epoll set whose
// peers had closed, epoll_wait spun forever (draining the doorbells of gone peers, 64 at a
// time, never fewer), even with a timeout. Each path must report every end at once.
TEST(ReadinessCallsTest, EpollWaitReturnsWithSixtyFourOrMoreClosedPeers) {
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  constexpr int kConnections = 80;
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    uint16_t port = 0;
    const int listener = Listen(AF_INET, "127.0.0.1", fast, &port, 256);
    // The peers live in another process, answer once each, and exit (closing everything).
    const pid_t peers = Spawn([&] {
      close(listener);
      std::vector<int> fds;
      for (int i = 0; i < kConnections; ++i) fds.push_back(Connect({AF_INET, "127.0.0.1", port}, fast));
      for (const int fd : fds) {
        char byte = 'x';
        if (fd < 0 || send(fd, &byte, 1, 0) != 1 || recv(fd, &byte, 1, 0) != 1) return 1;
      }
      return 0;
    });
    const int epfd = epoll_create1(EPOLL_CLOEXEC);
    std::vector<int> accepted;
    for (int i = 0; i < kConnections; ++i) {
      const int fd = accept(listener, nullptr, nullptr);
      ASSERT_GE(fd, 0);
      Bound(fd);
      char byte;
      ASSERT_EQ(recv(fd, &byte, 1, 0), 1);
      ASSERT_EQ(send(fd, &byte, 1, 0), 1);
      EXPECT_EQ(ObservedPath(fd), PathName(fast));
      epoll_event interest = {};
      interest.events = EPOLLIN;
      interest.data.fd = fd;
      ASSERT_EQ(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &interest), 0);
      accepted.push_back(fd);
    }
    ASSERT_EQ(Reap(peers, 10000), 0);
    // A hang is caught by the watchdog below (the spin ignored the timeout).
    std::atomic<bool> returned{false};
    std::thread watchdog([&] {
      for (int i = 0; i < 500 && !returned.load(); ++i) usleep(10 * 1000);
      if (!returned.load()) {
        ADD_FAILURE() << "epoll_wait did not return within 5 s";
        std::_Exit(1);
      }
    });
    std::vector<epoll_event> events(kConnections + 8);
    const int n = epoll_wait(epfd, events.data(), int(events.size()), 2000);
    returned.store(true);
    watchdog.join();
    EXPECT_EQ(n, kConnections);
    for (const int fd : accepted) close(fd);
    close(epfd);
    close(listener);
  }
}

// ---- select past FD_SETSIZE: programs allocate larger bit arrays; the kernel reads nfds bits ----

struct BigSet {
  std::vector<unsigned long> bits;
  explicit BigSet(int nfds) : bits((size_t(nfds) + 63) / 64, 0) {}
  void Set(int fd) { bits[size_t(fd) / 64] |= 1ul << (fd % 64); }
  bool IsSet(int fd) const { return (bits[size_t(fd) / 64] >> (fd % 64)) & 1; }
  fd_set *get() { return reinterpret_cast<fd_set *>(bits.data()); }
};

TEST(ReadinessCallsTest, SelectSeesDescriptorsPastFdSetsize) {
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_max < 2100) GTEST_SKIP() << "RLIMIT_NOFILE hard limit below 2100";
  const rlimit saved = limit;
  limit.rlim_cur = std::max<rlim_t>(limit.rlim_cur, 2100);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ConnectedPair pair;
    ASSERT_NO_FATAL_FAILURE(MakeConnectedPair(fast, &pair));
    const int high = 2000 + int(fast) * 10;
    ASSERT_EQ(dup2(pair.server, high), high);
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    const int high_pipe = high + 5;
    ASSERT_EQ(dup2(pipe_fds[0], high_pipe), high_pipe);
    const int nfds = high_pipe + 1;
    BigSet read_set(nfds), write_set(nfds);
    read_set.Set(high);
    read_set.Set(high_pipe);
    timeval none = {0, 0};
    EXPECT_EQ(select(nfds, read_set.get(), nullptr, nullptr, &none), 0);
    ASSERT_TRUE(WriteAll(pair.client, "z", 1));
    ASSERT_EQ(write(pipe_fds[1], "p", 1), 1);
    BigSet ready(nfds);
    ready.Set(high);
    ready.Set(high_pipe);
    write_set.Set(high);
    timeval second = {1, 0};
    EXPECT_EQ(select(nfds, ready.get(), write_set.get(), nullptr, &second), 3);
    EXPECT_TRUE(ready.IsSet(high));
    EXPECT_TRUE(ready.IsSet(high_pipe));
    EXPECT_TRUE(write_set.IsSet(high));
    char byte;
    EXPECT_EQ(recv(high, &byte, 1, 0), 1);
    EXPECT_EQ(ObservedPath(high), PathName(fast));
    for (const int fd : {high, high_pipe, pipe_fds[0], pipe_fds[1]}) close(fd);
  }
  setrlimit(RLIMIT_NOFILE, &saved);
}

}  // namespace
}  // namespace loopfast::test
