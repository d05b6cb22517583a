// Connections caught between states (see transition_fork_test.cc) and a second thread: a pending
// client one thread waits on (poll, epoll_wait, recv) while another sends, closes or forks, and
// a program waiting for input while its non-blocking connect is still under way. Kernel TCP:
// nothing waits for the other thread, every byte arrives, the waiter wakes for it.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"
#include "transition_support.h"

namespace loopfast::test {
namespace {

// The listening program, on a thread: accepts `delay_ms` in, then reads `request` (unless
// empty; its reads then bounded) and answers `reply`. Joined when it goes (or at Join).
class LateServer {
 public:
  LateServer(int listener, int delay_ms, const std::vector<uint8_t> &request,
             const std::vector<uint8_t> &reply)
      : thread_([this, listener, delay_ms, &request, &reply] {
          Nap(delay_ms);
          server_.reset(accept(listener, nullptr, nullptr));
          const int fd = server_.get();
          if (fd < 0) return;
          if (request.empty()) {
            served_ = WriteAll(fd, reply.data(), reply.size());
            return;
          }
          Bound(fd, 3000);
          std::vector<uint8_t> got(request.size());
          served_ = ReadAll(fd, got.data(), got.size()) && got == request &&
                    WriteAll(fd, reply.data(), reply.size());
        }) {}
  ~LateServer() { Join(); }
  LateServer(const LateServer &) = delete;
  LateServer &operator=(const LateServer &) = delete;

  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // After Join: the accepted connection, and whether the exchange went right.
  int server() const { return server_.get(); }
  bool served() const { return served_; }

 private:
  Fd server_;
  bool served_ = false;
  std::thread thread_;
};

// Both ends are on the path the first says, fast or kernel.
void ExpectOnePath(int client, int server) {
  const std::string path = ObservedPath(client);
  EXPECT_TRUE(path == "fast" || path == "kernel") << path;
  EXPECT_EQ(ObservedPath(server), path);
}

// ===== a second thread on a pending socket while the first waits on it =====

// Thread A sleeps in poll(POLLIN) on the pending client; the main thread sends the request
// (blocking send), the listening program accepts 100 ms later and answers. A must wake for the
// answer, which must be exact.
TEST(TransitionTest, SendFromASecondThreadWhileTheFirstPollsAPendingClient) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
  const int client = pending.client.get();
  Bound(client, 3000);
  const std::vector<uint8_t> request = Pattern(41, 0, 1000), reply = Pattern(42, 0, 1000);
  LateServer server(pending.listener.get(), 100, request, reply);
  int polled = -1;
  short revents = 0;
  int64_t woke_ms = 0;
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] {
    const int64_t start = NowMs();
    struct pollfd pfd = {client, POLLIN, 0};
    polled = poll(&pfd, 1, 2500);
    woke_ms = NowMs() - start;
    revents = pfd.revents;
    if (polled == 1) read_ok = ReadAll(client, got.data(), got.size());
  });
  Nap(20);
  EXPECT_TRUE(WriteAll(client, request.data(), request.size()));
  reader.join();
  server.Join();
  EXPECT_TRUE(server.served());
  EXPECT_EQ(polled, 1) << "poll woke after " << woke_ms << " ms";
  EXPECT_TRUE((revents & POLLIN) != 0) << revents;
  EXPECT_TRUE(read_ok && got == reply);
  ASSERT_GE(server.server(), 0);
  ExpectOnePath(client, server.server());
}

// The same with epoll_wait, and a non-blocking send (buffered until the Offer comes).
TEST(TransitionTest, NonBlockingSendFromASecondThreadWhileTheFirstIsInEpollWait) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
  const int client = pending.client.get();
  Bound(client, 3000);
  const Fd epfd(epoll_create1(EPOLL_CLOEXEC));
  ASSERT_GE(epfd.get(), 0);
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = 4242;
  ASSERT_EQ(epoll_ctl(epfd.get(), EPOLL_CTL_ADD, client, &event), 0);
  const std::vector<uint8_t> request = Pattern(43, 0, 1000), reply = Pattern(44, 0, 1000);
  LateServer server(pending.listener.get(), 100, request, reply);
  int waited = -1;
  struct epoll_event woke = {};
  int64_t woke_ms = 0;
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] {
    const int64_t start = NowMs();
    waited = epoll_wait(epfd.get(), &woke, 1, 2500);
    woke_ms = NowMs() - start;
    if (waited == 1) read_ok = ReadAll(client, got.data(), got.size());
  });
  Nap(20);
  EXPECT_EQ(send(client, request.data(), request.size(), MSG_DONTWAIT), ssize_t(request.size()));
  reader.join();
  server.Join();
  EXPECT_TRUE(server.served());
  EXPECT_EQ(waited, 1) << "epoll_wait woke after " << woke_ms << " ms";
  EXPECT_EQ(woke.data.u64, 4242u);
  EXPECT_TRUE(read_ok && got == reply);
  ASSERT_GE(server.server(), 0);
  ExpectOnePath(client, server.server());
}

// Thread A waits in a blocking recv on the pending client (the listening program accepts only
// 600 ms later); the main thread's non-blocking send must not wait for it. Kernel TCP: it
// returns at once.
// Was known defect 3 (docs/compatibility.md): a call waiting for the Offer held the socket's mutex.
// Sessions have no Offer: the client is fast when connect returns.
TEST(TransitionTest, NonBlockingSendIsNotHeldUpByARecvWaitingOnAPendingClient) {
  PendingClient pending;
  ASSERT_NO_FATAL_FAILURE(MakePendingClient(&pending));
  const int client = pending.client.get();
  Bound(client, 3000);
  const std::vector<uint8_t> request = Pattern(45, 0, 1000), reply = Pattern(46, 0, 1000);
  LateServer server(pending.listener.get(), 600, request, reply);
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] { read_ok = ReadAll(client, got.data(), got.size()); });
  Nap(50);
  const int64_t start = NowMs();
  const ssize_t sent = send(client, request.data(), request.size(), MSG_DONTWAIT);
  const int error = errno;
  const int64_t send_ms = NowMs() - start;
  EXPECT_EQ(sent, ssize_t(request.size())) << std::strerror(error);
  EXPECT_LT(send_ms, kQuickMs) << "a non-blocking send() took " << send_ms << " ms";
  if (sent < ssize_t(request.size())) {
    // Bytes the failed call did not take: the server must still get the whole request.
    const size_t done = sent > 0 ? size_t(sent) : 0;
    EXPECT_TRUE(WriteAll(client, request.data() + done, request.size() - done));
  }
  reader.join();
  server.Join();
  EXPECT_TRUE(server.served());
  EXPECT_TRUE(read_ok && got == reply);
}

// A client whose recv waits for data while the listening program has not accepted yet (it
// accepts 600 ms later); `act` runs on another thread 50 ms in and must return at once, as on
// kernel TCP. The recv then gets the server's answer. Returns how long `act` took. `act` may
// close the client (it is given the descriptor to own).
template <typename Act>
int64_t TimeBesideARecvOnAPendingClient(Act act) {
  PendingClient pending;
  MakePendingClient(&pending);
  const int client = pending.client.get();
  Bound(client, 3000);
  const std::vector<uint8_t> reply = Pattern(49, 0, 1000);
  const std::vector<uint8_t> no_request;
  LateServer server(pending.listener.get(), 600, no_request, reply);
  std::vector<uint8_t> got(reply.size());
  bool read_ok = false;
  std::thread reader([&] { read_ok = ReadAll(client, got.data(), got.size()); });
  Nap(50);
  const int64_t start = NowMs();
  act(pending.client);
  const int64_t took = NowMs() - start;
  reader.join();
  server.Join();
  EXPECT_TRUE(server.served());
  EXPECT_TRUE(read_ok && got == reply) << "the recv under way got the answer";
  return took;
}

// close() from another thread while a recv waits on the pending client: kernel TCP closes the
// descriptor at once (the recv goes on with the file).
// Was known defect 3 (docs/compatibility.md): a call waiting for the Offer held the socket's mutex.
// Sessions have no Offer: the client is fast when connect returns.
TEST(TransitionTest, CloseFromASecondThreadIsNotHeldUpByARecvWaitingOnAPendingClient) {
  int closed = -1;
  const int64_t took =
      TimeBesideARecvOnAPendingClient([&](Fd &client) { closed = close(client.release()); });
  EXPECT_EQ(closed, 0);
  EXPECT_LT(took, kQuickMs) << "close() took " << took << " ms";
}

// fork() while another thread's recv waits on the pending client: kernel TCP forks at once.
// Was known defect 3 (docs/compatibility.md): a call waiting for the Offer held the socket's mutex.
// Sessions have no Offer: the client is fast when connect returns.
TEST(TransitionTest, ForkIsNotHeldUpByARecvWaitingOnAPendingClient) {
  pid_t child = -1;
  const int64_t took =
      TimeBesideARecvOnAPendingClient([&](Fd &) { child = Spawn([] { return 0; }); });
  EXPECT_LT(took, kQuickMs) << "fork() took " << took << " ms";
  EXPECT_EQ(Reap(child, 3000), 0);
}

// ===== waiting for input while a non-blocking connect is still under way =====

// The listening program, on a thread, 50 ms in: accepts the filler (and closes it), which makes
// room for the retransmitted SYN, accepts the connection under way and sends `greeting` on it.
class Greeter {
 public:
  Greeter(int listener, const std::vector<uint8_t> &greeting)
      : thread_([this, listener, &greeting] {
          Nap(50);
          {
            const Fd first(accept(listener, nullptr, nullptr));  // room for the retransmission
          }
          server_.reset(accept(listener, nullptr, nullptr));
          if (server_.get() < 0) return;
          Bound(server_.get(), 3000);
          if (WriteAll(server_.get(), greeting.data(), greeting.size())) greeted_at_ = NowMs();
        }) {}
  ~Greeter() { Join(); }
  Greeter(const Greeter &) = delete;
  Greeter &operator=(const Greeter &) = delete;

  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // After Join: the connection accepted, and when the greeting was sent (0: it was not).
  int server() const { return server_.get(); }
  int64_t greeted_at() const { return greeted_at_; }

 private:
  Fd server_;
  int64_t greeted_at_ = 0;
  std::thread thread_;
};

// A non-blocking connect whose SYN the listener dropped (its accept queue was full), so the
// handshake completes only with the retransmission about 1 s later; meanwhile the program
// waits for the server's greeting with poll(POLLIN). Kernel TCP: poll returns as soon as the
// greeting arrives.
TEST(TransitionTest, PollForInputWhileANonBlockingConnectIsStillUnderWay) {
  ConnectUnderWay under_way;
  ASSERT_NO_FATAL_FAILURE(MakeConnectUnderWay(&under_way));
  const int client = under_way.client.get();
  const std::vector<uint8_t> greeting = Pattern(47, 0, 100);
  Greeter server(under_way.listener.get(), greeting);
  const int64_t start = NowMs();
  struct pollfd pfd = {client, POLLIN, 0};
  const int polled = poll(&pfd, 1, 1800);
  const int64_t woke = NowMs();
  server.Join();
  ASSERT_GE(server.server(), 0);
  const int64_t greeted_at = server.greeted_at();
  ASSERT_NE(greeted_at, 0);
  EXPECT_EQ(polled, 1);
  EXPECT_EQ(pfd.revents & POLLIN, POLLIN);
  EXPECT_LT(woke - greeted_at, kQuickMs)
      << "poll returned " << polled << " after " << woke - start << " ms; the greeting was sent "
      << greeted_at - start << " ms in";
  Bound(client, 2000);
  std::vector<uint8_t> got(greeting.size());
  EXPECT_TRUE(ReadAll(client, got.data(), got.size()) && got == greeting);
}

// The same with epoll_wait(EPOLLIN), the socket registered right after connect().
TEST(TransitionTest, EpollWaitForInputWhileANonBlockingConnectIsStillUnderWay) {
  ConnectUnderWay under_way;
  ASSERT_NO_FATAL_FAILURE(MakeConnectUnderWay(&under_way));
  const int client = under_way.client.get();
  const Fd epfd(epoll_create1(EPOLL_CLOEXEC));
  ASSERT_GE(epfd.get(), 0);
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.u64 = 77;
  ASSERT_EQ(epoll_ctl(epfd.get(), EPOLL_CTL_ADD, client, &event), 0);
  const std::vector<uint8_t> greeting = Pattern(48, 0, 100);
  Greeter server(under_way.listener.get(), greeting);
  const int64_t start = NowMs();
  struct epoll_event woke = {};
  const int waited = epoll_wait(epfd.get(), &woke, 1, 1800);
  const int64_t end = NowMs();
  server.Join();
  ASSERT_GE(server.server(), 0);
  const int64_t greeted_at = server.greeted_at();
  ASSERT_NE(greeted_at, 0);
  EXPECT_EQ(waited, 1);
  EXPECT_LT(end - greeted_at, kQuickMs)
      << "epoll_wait returned " << waited << " after " << end - start
      << " ms; the greeting was sent " << greeted_at - start << " ms in";
  EXPECT_EQ(woke.data.u64, waited == 1 ? 77u : 0u);
  Bound(client, 2000);
  std::vector<uint8_t> got(greeting.size());
  EXPECT_TRUE(ReadAll(client, got.data(), got.size()) && got == greeting);
}

}  // namespace
}  // namespace loopfast::test
