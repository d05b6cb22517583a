// White-box tests of the socket state machine (socket.h's Stage) through the ops API, in one
// process: which stage each decision leaves, what readiness::Decides says there, and which
// fallback reason is recorded. Connections are loopback connections within this process (a
// listener group and a client session of this process), made without fork or preload.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "loopfast/loopfast.h"
#include "session/test_arena.h"
#include "session/unix_messages.h"
#include "socket/readiness.h"
#include "socket/test_sockets.h"
#include "sys/tcp_counters.h"

namespace loopfast {
namespace {

using sockettest::OpsConnection;
using sockettest::OpsFd;
using sockettest::SocketOf;

const char *ReasonOf(Socket &socket) {
  std::lock_guard<std::mutex> guard(socket.mutex);
  return socket.fallback_reason;
}

// The path API says kernel for `fd`, and its Socket records `why`.
void ExpectKernelBecause(const OpsFd &fd, const char *why) {
  EXPECT_STREQ(ReasonOf(*SocketOf(fd)), why);
  EXPECT_EQ(ops::PathOf(fd.get()), LOOPFAST_PATH_KERNEL);
}

// What `fd` receives within the bounded wait, `size` bytes at most.
std::string Received(const OpsFd &fd, size_t size) {
  std::string got(size, '\0');
  got.resize(sockettest::RecvWithin(fd, got.data(), size));
  return got;
}

// What readiness::Decides says in each stage: loopfast answers while the socket is fast or may
// still become fast; a listener and a kernel socket are the kernel's to answer for.
TEST(SocketStageTest, DecidesIsLoopfastsOnlyWhileTheSocketIsOrMayBecomeFast) {
  struct Case {
    Stage stage;
    bool opted_in;
    bool decides;
  };
  const Case cases[] = {
      {Stage::kUndecided, false, false}, {Stage::kUndecided, true, true},
      {Stage::kListening, true, false},  {Stage::kConnecting, true, true},
      {Stage::kFast, true, true},        {Stage::kKernel, true, false},
  };
  for (const Case &c : cases) {
    Socket socket(AF_INET);
    socket.opted_in.store(c.opted_in);
    socket.stage.store(c.stage);
    EXPECT_EQ(readiness::Decides(socket), c.decides)
        << "stage " << static_cast<int>(c.stage) << " opted in " << c.opted_in;
  }
}

// DecideKernel and BecomeFast on a bare Socket: the stage, Decides, and the reason (recorded
// only for a socket that opted in, or for the global switch).
TEST(SocketStageTest, DecideKernelAndBecomeFastMoveTheStageAndRecordTheReason) {
  session::TestArena arena;  // outlives the fast Socket below
  OpsFd fd = sockettest::TcpSocket(false);
  ASSERT_TRUE(fd.valid());
  Socket opted_out(AF_INET), opted_in(AF_INET), disabled(AF_INET), fast(AF_INET);
  opted_in.opted_in.store(true);
  fast.opted_in.store(true);
  {
    std::lock_guard<std::mutex> a(opted_out.mutex), b(opted_in.mutex), c(disabled.mutex);
    ops::DecideKernel(opted_out, fd.get(), reason::kNotLoopback);
    ops::DecideKernel(opted_in, fd.get(), reason::kNotLoopback);
    ops::DecideKernel(disabled, fd.get(), reason::kDisabled);
  }
  for (Socket *socket : {&opted_out, &opted_in, &disabled}) {
    EXPECT_EQ(socket->stage.load(), Stage::kKernel);
    EXPECT_FALSE(readiness::Decides(*socket));
  }
  EXPECT_STREQ(opted_out.fallback_reason, reason::kNone) << "it never asked for the fast path";
  EXPECT_STREQ(opted_in.fallback_reason, reason::kNotLoopback);
  EXPECT_STREQ(disabled.fallback_reason, reason::kDisabled);

  Result<std::unique_ptr<FastConnection>> connection =
      FastConnection::Open(arena.client, arena.BoundSlot(2, 16384), 16384);
  ASSERT_TRUE(connection.ok());
  FastConnection *raw = connection.value().get();
  {
    std::lock_guard<std::mutex> guard(fast.mutex);
    ops::BecomeFast(fast, fd.get(), std::move(connection.value()));
  }
  EXPECT_EQ(fast.stage.load(), Stage::kFast);
  EXPECT_EQ(fast.fast.load(), raw);
  EXPECT_TRUE(readiness::Decides(fast));
  EXPECT_TRUE(ops::WouldBeFast(fast));
  EXPECT_STREQ(fast.fallback_reason, reason::kNone);
}

TEST(SocketStageTest, AnOptedOutSocketIsTheKernelsAndRecordsNoReason) {
  OpsConnection connection(/*listener_opted_in=*/false, /*client_opted_in=*/false);
  ASSERT_TRUE(connection.ok());
  for (const OpsFd *end : {&connection.client, &connection.server}) {
    std::shared_ptr<Socket> socket = SocketOf(*end);
    ASSERT_NE(socket.get(), nullptr);
    EXPECT_EQ(socket->stage.load(), Stage::kKernel);
    EXPECT_FALSE(readiness::Decides(*socket));
    EXPECT_FALSE(ops::WouldBeFast(*socket));
    EXPECT_STREQ(ReasonOf(*socket), reason::kNone);
    EXPECT_EQ(ops::PathOf(end->get()), LOOPFAST_PATH_KERNEL);
  }
  EXPECT_EQ(SocketOf(connection.listener)->stage.load(), Stage::kListening);
  EXPECT_EQ(SocketOf(connection.listener)->listener.get(), nullptr)
      << "no group for an opted-out one";
}

// An opted-in socket is loopfast's to decide until its connect finds no opted-in listener.
TEST(SocketStageTest, AnOptedInClientOfAKernelListenerTakesKernelTcpAndSaysWhy) {
  OpsFd listener = sockettest::ListenOn(false);
  OpsFd client = sockettest::TcpSocket(true);
  ASSERT_TRUE(listener.valid() && client.valid());
  std::shared_ptr<Socket> socket = SocketOf(client);
  EXPECT_EQ(socket->stage.load(), Stage::kUndecided);
  EXPECT_TRUE(readiness::Decides(*socket));
  EXPECT_TRUE(ops::WouldBeFast(*socket));
  EXPECT_EQ(ops::PathOf(client.get()), LOOPFAST_PATH_NONE);
  ASSERT_EQ(sockettest::ConnectTo(client, sockettest::LocalPort(listener)), 0);
  EXPECT_EQ(socket->stage.load(), Stage::kKernel);
  EXPECT_FALSE(readiness::Decides(*socket));
  ExpectKernelBecause(client, reason::kNoListenerChannel);
  EXPECT_STREQ(ops::FallbackReason(client.get()), reason::kNoListenerChannel);
  EXPECT_EQ(socket->role, stat::Role::kConnecting);
}

// An opted-in listener accepting a connection whose SYN carries no marker.
TEST(SocketStageTest, AnOptedInListenerGivesAnUnmarkedConnectionKernelTcp) {
  OpsConnection connection(/*listener_opted_in=*/true, /*client_opted_in=*/false);
  ASSERT_TRUE(connection.ok());
  std::shared_ptr<Socket> accepted = SocketOf(connection.server);
  EXPECT_EQ(accepted->stage.load(), Stage::kKernel);
  EXPECT_STREQ(ReasonOf(*accepted), reason::kPeerNotOptedIn);
  EXPECT_EQ(accepted->role, stat::Role::kAccepting);
  EXPECT_STREQ(ReasonOf(*SocketOf(connection.client)), reason::kNone);
}

TEST(SocketStageTest, OptedInListenersOnOnePortShareOneGroupUntilMovedToKernel) {
  OpsFd first = sockettest::ListenOn(true, 0, /*reuse_port=*/true);
  ASSERT_TRUE(first.valid());
  const uint16_t port = sockettest::LocalPort(first);
  OpsFd second = sockettest::ListenOn(true, port, /*reuse_port=*/true);
  ASSERT_TRUE(second.valid());
  std::shared_ptr<Socket> a = SocketOf(first), b = SocketOf(second);
  EXPECT_EQ(a->stage.load(), Stage::kListening);
  EXPECT_FALSE(readiness::Decides(*a)) << "a listener's readiness is the kernel's";
  ASSERT_NE(a->listener.get(), nullptr);
  ASSERT_NE(b->listener.get(), nullptr);
  EXPECT_EQ(a->listener->group.get(), b->listener->group.get());
  EXPECT_EQ(a->listener->group->port(), port);
  EXPECT_TRUE(ops::WouldBeFast(*a));
  ops::GoKernel(*a, first.get(), reason::kOptionNeedsKernel);
  EXPECT_EQ(a->listener.get(), nullptr);
  EXPECT_FALSE(ops::WouldBeFast(*a));
  EXPECT_EQ(a->stage.load(), Stage::kListening);
  EXPECT_STREQ(ReasonOf(*a), reason::kOptionNeedsKernel);
  EXPECT_TRUE(ops::WouldBeFast(*b)) << "the other listener still offers the fast path";
}

// Someone else holds the port's rendezvous name: the listener stays on kernel TCP and says who.
TEST(SocketStageTest, ASquattedRendezvousNameKeepsTheListenerOnKernelTcp) {
  OpsFd listener = sockettest::TcpSocket(true);
  ASSERT_TRUE(sockettest::BindLoopback(listener, 0));
  const uint16_t port = sockettest::LocalPort(listener);
  OpsFd squatter(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  struct sockaddr_un address;
  const socklen_t length = session::ChannelAddress(port, &address);
  ASSERT_EQ(bind(squatter.get(), reinterpret_cast<struct sockaddr *>(&address), length), 0);
  ASSERT_EQ(listen(squatter.get(), 4), 0);
  std::shared_ptr<Socket> socket = SocketOf(listener);
  ASSERT_EQ(ops::Listen(*socket, listener.get(), 4), 0);
  EXPECT_EQ(socket->stage.load(), Stage::kListening);
  EXPECT_EQ(socket->listener.get(), nullptr);
  EXPECT_EQ(std::string(ReasonOf(*socket)), "port's rendezvous name held by pid " +
                                                std::to_string(getpid()) + ", user " +
                                                std::to_string(getuid()));
}

// Both ends opted in, in this process: both fast, the bytes through the rings (the kernel
// connection receives none), readiness decided by loopfast.
TEST(SocketStageTest, OptedInEndsInOneProcessGoFastAndMoveBytesThroughTheRings) {
  OpsConnection connection(true, true);
  ASSERT_TRUE(connection.ok());
  std::shared_ptr<Socket> client = SocketOf(connection.client),
                          server = SocketOf(connection.server);
  for (Socket *socket : {client.get(), server.get()}) {
    EXPECT_EQ(socket->stage.load(), Stage::kFast);
    EXPECT_NE(socket->fast.load(), nullptr);
    EXPECT_TRUE(readiness::Decides(*socket));
    EXPECT_TRUE(ops::WouldBeFast(*socket));
    EXPECT_STREQ(ReasonOf(*socket), reason::kNone);
  }
  EXPECT_EQ(ops::PathOf(connection.client.get()), LOOPFAST_PATH_FAST);
  EXPECT_EQ(ops::PathOf(connection.server.get()), LOOPFAST_PATH_FAST);
  const char message[] = "through the ring";
  ASSERT_EQ(sockettest::SendBytes(connection.client, message, sizeof message),
            ssize_t(sizeof message));
  EXPECT_EQ(Received(connection.server, sizeof message), std::string(message, sizeof message));
  EXPECT_EQ(client->fast.load()->bytes_sent(), sizeof message);
  EXPECT_EQ(sys::KernelBytesReceived(connection.server.get()), 0u);
}

// GoKernel on a fast end: it stays kFast (the ring's bytes are still read first) but writes go
// to the kernel from now on, the reason is recorded and the path reads as kernel; every byte
// arrives, in order.
TEST(SocketStageTest, GoKernelSwitchesAFastEndMidStreamKeepingEveryByte) {
  OpsConnection connection(true, true);
  ASSERT_TRUE(connection.ok());
  std::shared_ptr<Socket> client = SocketOf(connection.client);
  ASSERT_EQ(client->stage.load(), Stage::kFast);
  ASSERT_EQ(sockettest::SendBytes(connection.client, "ring,", 5), 5);
  ops::GoKernel(*client, connection.client.get(), reason::kOptionNeedsKernel);
  EXPECT_EQ(client->stage.load(), Stage::kFast);
  EXPECT_TRUE(client->fast.load()->WritesGoToKernel());
  EXPECT_FALSE(ops::WouldBeFast(*client));
  EXPECT_TRUE(readiness::Decides(*client));
  ExpectKernelBecause(connection.client, reason::kOptionNeedsKernel);
  ASSERT_EQ(sockettest::SendBytes(connection.client, "kernel", 6), 6);
  EXPECT_EQ(Received(connection.server, 11), "ring,kernel");
  EXPECT_GT(sys::KernelBytesReceived(connection.server.get()), 0u);
}

// MoveToKernel (exec, SCM_RIGHTS): kernel TCP for good, Decides hands readiness to the kernel;
// the peer's next call hands what it left unread in the ring to the kernel, ahead of the rest.
TEST(SocketStageTest, MoveToKernelDecidesKernelTcpForGood) {
  OpsConnection connection(true, true);
  ASSERT_TRUE(connection.ok());
  std::shared_ptr<Socket> server = SocketOf(connection.server);
  ASSERT_EQ(sockettest::SendBytes(connection.client, "before,", 7), 7);
  ops::MoveToKernel(*server, connection.server.get());
  EXPECT_EQ(server->stage.load(), Stage::kKernel);
  EXPECT_FALSE(readiness::Decides(*server));
  ExpectKernelBecause(connection.server, reason::kHandedOver);
  ASSERT_EQ(sockettest::SendBytes(connection.client, "after", 5), 5);
  EXPECT_EQ(Received(connection.server, 12), "before,after");
}

// A non-blocking connect: kConnecting (its claim held, readiness loopfast's, the sleep naming
// the kernel socket for POLLOUT) until a look after the handshake makes it fast.
TEST(SocketStageTest, ANonBlockingConnectIsConnectingUntilALookFindsItDone) {
  OpsFd listener = sockettest::ListenOn(true);
  OpsFd client = sockettest::TcpSocket(true, /*nonblocking=*/true);
  ASSERT_TRUE(listener.valid() && client.valid());
  ASSERT_EQ(sockettest::ConnectTo(client, sockettest::LocalPort(listener)), -1);
  ASSERT_EQ(errno, EINPROGRESS);
  std::shared_ptr<Socket> socket = SocketOf(client);
  EXPECT_EQ(socket->stage.load(), Stage::kConnecting);
  EXPECT_NE(socket->connecting.get(), nullptr);
  EXPECT_TRUE(readiness::Decides(*socket));
  EXPECT_TRUE(ops::WouldBeFast(*socket));
  readiness::WaitFd wait[readiness::kMaxWaitFds];
  ASSERT_EQ(readiness::PrepareWait(*socket, client.get(), POLLIN, wait), 1);
  EXPECT_EQ(wait[0].fd, client.get());
  EXPECT_NE(wait[0].events & POLLOUT, 0) << "the handshake's end wakes a reader too";
  struct pollfd pfd = {client.get(), POLLOUT, 0};
  ASSERT_EQ(poll(&pfd, 1, 2000), 1);
  EXPECT_EQ(socket->stage.load(), Stage::kConnecting) << "nobody looked yet";
  // A look, as poll and epoll make it: the socket is moved along first, then asked.
  ops::MakeProgress(*socket, client.get());
  const readiness::State state = readiness::Look(*socket, client.get(), POLLOUT);
  EXPECT_EQ(socket->stage.load(), Stage::kFast);
  EXPECT_NE(state.events & POLLOUT, 0);
  EXPECT_EQ(socket->connecting.get(), nullptr);
  OpsFd server = sockettest::AcceptWithin(listener);
  ASSERT_TRUE(server.valid());
  EXPECT_EQ(SocketOf(server)->stage.load(), Stage::kFast);
}

// The connecting end is closed before loopfast saw its handshake end: its claim is declined,
// and the accepting end takes kernel TCP saying so.
TEST(SocketStageTest, AConnectClosedWhileConnectingIsDeclinedForTheAcceptingEnd) {
  OpsFd listener = sockettest::ListenOn(true);
  OpsFd client = sockettest::TcpSocket(true, /*nonblocking=*/true);
  ASSERT_TRUE(listener.valid() && client.valid());
  ASSERT_EQ(sockettest::ConnectTo(client, sockettest::LocalPort(listener)), -1);
  ASSERT_EQ(SocketOf(client)->stage.load(), Stage::kConnecting);
  struct pollfd pfd = {client.get(), POLLOUT, 0};
  ASSERT_EQ(poll(&pfd, 1, 2000), 1);
  client.Reset();
  OpsFd server = sockettest::AcceptWithin(listener);
  ASSERT_TRUE(server.valid());
  std::shared_ptr<Socket> accepted = SocketOf(server);
  EXPECT_EQ(accepted->stage.load(), Stage::kKernel);
  EXPECT_STREQ(ReasonOf(*accepted), reason::kClientDeclined);
}

}  // namespace
}  // namespace loopfast
