// White-box tests of epoll over fast sockets (epoll_ops.cc, epoll_set.cc), in one process: the
// errors of epoll_ctl as the kernel gives them, level, edge and one-shot reporting, a closed
// descriptor dropped, the order of reports, and a socket that settles on kernel TCP moving into
// the kernel's set. Fast sockets are the two ends of test-arena slots (socket/test_sockets.h).
#include "socket/epoll_set.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vector>

#include "socket/readiness.h"
#include "socket/test_sockets.h"

namespace loopfast {
namespace {

using sockettest::Epoll;
using sockettest::FastSockets;
using Data = std::vector<uint64_t>;

// One epoll_ctl of a script: what it does, and to which descriptor (the socket, or the epoll
// descriptor itself).
struct Step {
  int op;
  uint32_t events = EPOLLIN;
  bool on_epfd = false;
  bool no_event = false;
};

// Runs `steps` against a fresh epoll descriptor over `fd`; each step's errno (0: success).
std::vector<int> RunScript(const std::vector<Step> &steps, int fd) {
  Epoll epoll;
  std::vector<int> results;
  for (const Step &step : steps) {
    results.push_back(
        epoll.Ctl(step.op, step.on_epfd ? epoll.fd() : fd, step.events, 7, step.no_event));
  }
  return results;
}

// Every script gives a fast socket the errors the kernel gives an ordinary TCP socket.
TEST(EpollSetTest, EpollCtlFailsOnAFastSocketAsTheKernelDoesOnAnOrdinaryOne) {
  FastSockets fast(1);
  ASSERT_TRUE(fast.ok());
  sockettest::OpsFd plain(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));  // not tracked
  ASSERT_TRUE(plain.valid());
  const uint32_t exclusive = EPOLLIN | EPOLLEXCLUSIVE;
  const std::vector<std::vector<Step>> scripts = {
      {{EPOLL_CTL_MOD}},                   // ENOENT
      {{EPOLL_CTL_DEL}},                   // ENOENT
      {{EPOLL_CTL_ADD}, {EPOLL_CTL_ADD}},  // EEXIST
      {{EPOLL_CTL_ADD}, {EPOLL_CTL_MOD, EPOLLOUT}, {EPOLL_CTL_DEL}, {EPOLL_CTL_DEL}},
      {{EPOLL_CTL_ADD, exclusive}, {EPOLL_CTL_MOD}},             // EINVAL: exclusive, modified
      {{EPOLL_CTL_ADD}, {EPOLL_CTL_MOD, exclusive}},             // EINVAL: MOD with exclusive
      {{EPOLL_CTL_ADD, exclusive | EPOLLONESHOT}},               // EINVAL: not beside it
      {{EPOLL_CTL_ADD, EPOLLIN, /*on_epfd=*/true}},              // EINVAL: epfd == fd
      {{EPOLL_CTL_ADD, EPOLLIN, false, /*no_event=*/true}},      // EFAULT
      {{EPOLL_CTL_ADD}, {EPOLL_CTL_MOD, EPOLLIN, false, true}},  // EFAULT
      {{EPOLL_CTL_ADD}, {99}},                                   // EINVAL: no such op
  };
  for (size_t i = 0; i < scripts.size(); ++i) {
    const std::vector<int> kernel = RunScript(scripts[i], plain.get());
    EXPECT_EQ(RunScript(scripts[i], fast.server(0).fd), kernel) << "script " << i;
    EXPECT_NE(kernel.back(), 0) << "script " << i << " should end in an error";
  }
}

// The set is loopfast's: the interest is kept in user space, the kernel never sees the socket.
TEST(EpollSetTest, AFastSocketIsKeptInTheLibrarysSetNotTheKernels) {
  FastSockets fast(1);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  EXPECT_FALSE(epoll.kept());
  ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, fast.server(0).fd, EPOLLIN, 1), 0);
  EXPECT_TRUE(epoll.kept());
  // The kernel's own set has only the shadow: deleting the socket there fails.
  EXPECT_NE(epoll_ctl(epoll.fd(), EPOLL_CTL_DEL, fast.server(0).fd, nullptr), 0);
  EXPECT_EQ(errno, ENOENT);
}

// Level-triggered: reported while readable; edge-triggered: once per arrival after everything
// seen was read; one-shot: once, then not again until EPOLL_CTL_MOD re-arms it.
TEST(EpollSetTest, LevelEdgeAndOneShotReportAsTheKernelDoes) {
  FastSockets fast(3);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  const uint32_t modes[] = {EPOLLIN, EPOLLIN | EPOLLET, EPOLLIN | EPOLLONESHOT};
  for (size_t i = 0; i < 3; ++i)
    ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, fast.server(i).fd, modes[i], i), 0);
  EXPECT_EQ(epoll.WaitData(0), Data{}) << "nothing readable yet";
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(fast.Write(i));
  std::vector<struct epoll_event> first = epoll.Wait(0);
  ASSERT_EQ(first.size(), 3u);
  for (const struct epoll_event &event : first) EXPECT_EQ(event.events, uint32_t{EPOLLIN});
  EXPECT_EQ(epoll.WaitData(0), Data{0}) << "only the level-triggered one is still reported";
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(fast.Write(i));
  EXPECT_EQ(epoll.WaitData(0), Data{0}) << "unread input is no new edge; one-shot is disarmed";
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(fast.Drain(i), 2u);
  EXPECT_EQ(epoll.WaitData(0), Data{});
  for (size_t i = 0; i < 3; ++i) ASSERT_TRUE(fast.Write(i));
  EXPECT_EQ(epoll.WaitData(0).size(), 2u) << "level and edge again; one-shot still disarmed";
  ASSERT_EQ(epoll.Ctl(EPOLL_CTL_MOD, fast.server(2).fd, EPOLLIN | EPOLLONESHOT, 2), 0);
  EXPECT_EQ(epoll.WaitData(0), (Data{0, 2})) << "re-armed: its ready state is reported again";
}

// EPOLLOUT on a socket with room is reported at once, and a set mixing fast sockets with an
// ordinary descriptor reports both, never the shadow's own event.
TEST(EpollSetTest, FastAndOrdinaryDescriptorsShareOneSetAndTheShadowNeverShows) {
  FastSockets fast(1);
  ASSERT_TRUE(fast.ok());
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  Epoll epoll;
  ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, fast.server(0).fd, EPOLLOUT, 1), 0);
  ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, pipe_fds[0], EPOLLIN, 2), 0);
  ASSERT_EQ(write(pipe_fds[1], "p", 1), 1);
  const std::vector<struct epoll_event> events = epoll.Wait(0);
  ASSERT_EQ(events.size(), 2u);
  for (const struct epoll_event &event : events) {
    EXPECT_NE(event.data.u64, ops::epoll::Cookie());
    EXPECT_EQ(event.events, event.data.u64 == 1 ? uint32_t{EPOLLOUT} : uint32_t{EPOLLIN});
  }
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

// A descriptor closed without EPOLL_CTL_DEL leaves the set (as the kernel drops it at the
// close): it is not reported, and its number can be added again at once, for another socket.
TEST(EpollSetTest, AClosedDescriptorIsDroppedAndItsNumberCanBeAddedAgain) {
  FastSockets fast(2);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  const int first = fast.server(0).fd, second = fast.server(1).fd;
  ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, first, EPOLLIN, 1), 0);
  ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, second, EPOLLIN, 2), 0);
  ASSERT_TRUE(fast.Write(0));
  ASSERT_TRUE(fast.Write(1));
  // What close() does first: the descriptor table lets go of the Socket.
  std::shared_ptr<Socket> closed_first = FdTable::Instance().Remove(first);
  EXPECT_EQ(epoll.WaitData(0), Data{2}) << "the closed one is not reported";
  // The second number re-used for a new (opted-in, unconnected) socket before any look: no
  // EEXIST, and what the old interest had ready is not reported for it.
  std::shared_ptr<Socket> closed_second = FdTable::Instance().Remove(second);
  auto reused = std::make_shared<Socket>(AF_INET);
  reused->opted_in.store(true);
  FdTable::Instance().Set(second, reused);
  EXPECT_EQ(epoll.Ctl(EPOLL_CTL_ADD, second, EPOLLIN, 3), 0);
  EXPECT_EQ(epoll.WaitData(0), Data{});
  EXPECT_EQ(epoll.Ctl(EPOLL_CTL_DEL, second), 0);
  EXPECT_EQ(epoll.Ctl(EPOLL_CTL_DEL, second), ENOENT);
  FdTable::Instance().Set(first, closed_first);  // the fixture's own again, for its clean-up
  FdTable::Instance().Set(second, closed_second);
}

// Fast sockets are reported in the order their input became ready, not by descriptor.
TEST(EpollSetTest, ReadySocketsAreReportedInTheOrderTheyBecameReady) {
  FastSockets fast(3);
  ASSERT_TRUE(fast.ok());
  Epoll epoll;
  for (size_t i = 0; i < 3; ++i)
    ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, fast.server(i).fd, EPOLLIN, i), 0);
  EXPECT_EQ(epoll.WaitData(0), Data{});
  for (const size_t i : {2, 0, 1}) ASSERT_TRUE(fast.Write(i));
  EXPECT_EQ(epoll.WaitData(0), (Data{2, 0, 1}));
  // Level-triggered ones still ready go back to the tail: the same order again.
  EXPECT_EQ(epoll.WaitData(0), (Data{2, 0, 1}));
  // maxevents 1: one at a time, round-robin, none starved.
  EXPECT_EQ(epoll.WaitData(0, 1), Data{2});
  EXPECT_EQ(epoll.WaitData(0, 1), Data{0});
  EXPECT_EQ(epoll.WaitData(0, 1), Data{1});
}

// An opted-in socket not yet connected is kept by loopfast (a connect may make it fast); once
// it settles on kernel TCP the kernel's set takes it over with its events and data.
TEST(EpollSetTest, ASocketThatSettlesOnKernelTcpMovesToTheKernelsSet) {
  int kernel[2];
  fasttest::KernelConnection(kernel);
  ASSERT_GE(kernel[0], 0);
  auto socket = std::make_shared<Socket>(AF_INET);
  socket->opted_in.store(true);
  FdTable::Instance().Set(kernel[0], socket);
  {
    Epoll epoll;
    ASSERT_EQ(epoll.Ctl(EPOLL_CTL_ADD, kernel[0], EPOLLIN, 42), 0);
    EXPECT_NE(epoll_ctl(epoll.fd(), EPOLL_CTL_DEL, kernel[0], nullptr), 0) << "not the kernel's";
    EXPECT_EQ(epoll.WaitData(0), Data{});
    ASSERT_EQ(write(kernel[1], "k", 1), 1);
    EXPECT_EQ(epoll.WaitData(1000), Data{42}) << "asked of the kernel socket";
    {
      std::lock_guard<std::mutex> guard(socket->mutex);
      ops::DecideKernel(*socket, kernel[0], reason::kNoListenerChannel);
    }
    EXPECT_FALSE(readiness::Decides(*socket));
    EXPECT_EQ(epoll.WaitData(0), Data{42}) << "reported by the kernel's set now";
    EXPECT_EQ(epoll_ctl(epoll.fd(), EPOLL_CTL_DEL, kernel[0], nullptr), 0) << "moved there";
  }
  FdTable::Instance().Remove(kernel[0]);
  close(kernel[0]);
  close(kernel[1]);
}

}  // namespace
}  // namespace loopfast
