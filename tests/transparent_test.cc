// Transparent mode with real, separately started programs (tests/tools/stream_peer, which does
// not link loopfast) under LD_PRELOAD and LOOPFAST_DEFAULT=1, as `loopfast run` starts them:
// moving a fast connection to kernel TCP mid-stream, in both directions at once, with every
// byte checked and the event loops' wake-ups kept.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "peer_process.h"

namespace loopfast::test {
namespace {

constexpr uint64_t kHundredMb = 100ull << 20;

TEST(TransparentMoveTest, ClientMovesMidwayThrough100MbEachWay) {
  const std::string bytes = std::to_string(kHundredMb);
  const Outcome o = RunPair({"--bytes", bytes, "--loop", "epoll-et"},
                            {"--bytes", bytes, "--loop", "poll", "--move-at",
                             std::to_string(kHundredMb / 2), "--move-how", "filter"});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kHundredMb));
  EXPECT_EQ(o.client.at("before"), "fast");  // it really was fast until the option
  EXPECT_EQ(o.client.at("after"), "kernel");
  EXPECT_NE(o.client.at("reason").find("socket option"), std::string::npos)
      << o.client.at("reason");
  EXPECT_EQ(o.server.at("after"), "kernel");
  EXPECT_NE(o.server.at("reason").find("by the peer"), std::string::npos) << o.server.at("reason");
}

TEST(TransparentMoveTest, ServerMovesMidwayThrough100MbEachWay) {
  const std::string bytes = std::to_string(kHundredMb);
  const Outcome o = RunPair({"--bytes", bytes, "--loop", "blocking", "--move-at",
                             std::to_string(kHundredMb / 2), "--move-how", "rcvlowat"},
                            {"--bytes", bytes, "--loop", "epoll-et"});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kHundredMb));
  EXPECT_EQ(o.server.at("before"), "fast");
  EXPECT_EQ(o.server.at("after"), "kernel");
  EXPECT_EQ(o.client.at("after"), "kernel");
}

TEST(TransparentMoveTest, SpliceIntoAFastSocketMovesItWithEveryByteInOrder) {
  const std::string bytes = std::to_string(8 << 20);
  const Outcome o = RunPair({"--bytes", bytes, "--loop", "poll"},
                            {"--bytes", bytes, "--loop", "poll", "--move-at",
                             std::to_string(3 << 20), "--move-how", "splice"});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 8 << 20));
  EXPECT_EQ(o.client.at("before"), "fast");
  EXPECT_EQ(o.client.at("after"), "kernel");
}

// io_uring's operations never pass through libc: a process that sets one up keeps its sockets
// on kernel TCP, and one that sets it up mid-stream moves its connection there, every byte kept.
TEST(TransparentMoveTest, AProcessThatSetsUpIoUringTakesKernelTcp) {
  const std::string bytes = std::to_string(4 << 20);
  Peer probe({"connect", "1", "--io-uring-first", "yes"}, kTransparent);
  const std::string probe_line = probe.Line();
  if (probe.Wait() == 77) GTEST_SKIP() << probe_line;
  const Outcome first = RunPair({"--bytes", bytes}, {"--bytes", bytes, "--io-uring-first", "yes"});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(first, 4 << 20));
  EXPECT_EQ(first.client.at("after"), "kernel");
  EXPECT_NE(first.client.at("reason").find("io_uring"), std::string::npos)
      << first.client.at("reason");
  const Outcome midway =
      RunPair({"--bytes", bytes, "--loop", "epoll-et"},
              {"--bytes", bytes, "--move-at", std::to_string(1 << 20), "--move-how", "io_uring"});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(midway, 4 << 20));
  EXPECT_EQ(midway.client.at("before"), "fast");
  EXPECT_EQ(midway.client.at("after"), "kernel");
}

// Urgent data exists only on kernel TCP: MSG_OOB moves the connection first, and the stream
// around the urgent byte stays whole and in order.
TEST(TransparentMoveTest, UrgentDataMovesTheConnectionWithEveryByteInOrder) {
  const std::string bytes = std::to_string(16 << 20);
  const Outcome o = RunPair({"--bytes", bytes, "--loop", "blocking"},
                            {"--bytes", bytes, "--loop", "poll", "--move-at",
                             std::to_string(5 << 20), "--move-how", "oob"});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 16 << 20));
  EXPECT_EQ(o.client.at("before"), "fast");
  EXPECT_EQ(o.client.at("after"), "kernel");
  EXPECT_NE(o.client.at("reason").find("MSG_OOB"), std::string::npos) << o.client_line;
}

// The same when the urgent byte comes after the first 128 KiB, before the server program has
// accepted (those bytes wait in the ring, the connection is not bound yet): the client's end
// switches to kernel TCP, the server reads the ring's bytes first, then the kernel's, and the
// urgent byte never joins the stream as an ordinary byte.
TEST(TransparentMoveTest, UrgentDataBeforeTheAcceptKeepsEveryByteInOrder) {
  const std::string bytes = std::to_string(2 << 20);
  for (int i = 0; i < 2; ++i) {
    const Outcome o =
        RunPair({"--bytes", bytes, "--loop", "poll", "--accept-delay-ms", "200"},
                {"--bytes", bytes, "--loop", "poll", "--move-at", std::to_string(128 << 10),
                 "--move-how", "oob", "--move-early", "yes"});
    ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 2 << 20)) << "run " << i;
    EXPECT_EQ(o.client.at("after"), "kernel");
    EXPECT_NE(o.client.at("reason").find("MSG_OOB"), std::string::npos) << o.client_line;
  }
}

// Signal-driven I/O needs the kernel socket's traffic: FIOASYNC moves the connection, and SIGIO
// then comes as on kernel TCP while the stream goes on whole. (It also found defect 8,
// docs/compatibility.md: a poll for room on the server slept on the bell alone after the
// client's switch, 1 run in 10, until its 10 s timeout.)
TEST(TransparentMoveTest, SignalDrivenIoMovesTheConnectionAndSigioArrives) {
  const std::string bytes = std::to_string(16 << 20);
  const Outcome o = RunPair({"--bytes", bytes, "--loop", "poll"},
                            {"--bytes", bytes, "--loop", "poll", "--move-at",
                             std::to_string(4 << 20), "--move-how", "fioasync"});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 16 << 20));
  EXPECT_EQ(o.client.at("before"), "fast");
  EXPECT_EQ(o.client.at("after"), "kernel");
  // SIGIO comes with input after the move; a client that had all its input by then (the server
  // ran ahead) has none to signal, on kernel TCP too.
  if (std::stoull(o.client.at("received_at_move")) < (16u << 20)) {
    EXPECT_GT(std::stoi(o.client.at("sigio")), 0) << o.client_line;
  }
}

// `loopfast run` itself: both ends under it go fast; one end plain is kernel TCP (S3); its
// options narrow; --log info gives the start-up line.
TEST(LauncherTest, BothEndsUnderLoopfastRunGoFastAndOneEndPlainIsKernelTcp) {
  const std::vector<std::string> bytes = {"--bytes", std::to_string(1 << 20)};
  const std::vector<std::string> plain_environment;  // no LD_PRELOAD, no LOOPFAST_*
  char log_name[] = "/tmp/lf-test-launcher.XXXXXX";
  close(mkstemp(log_name));
  const Outcome both =
      RunSides({bytes, plain_environment, "", {"run", "--log", "info", "--log-file", log_name}},
               {bytes, plain_environment, "", {"run"}});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(both, 1 << 20));
  EXPECT_EQ(both.client.at("after"), "fast");
  EXPECT_EQ(both.server.at("after"), "fast");
  std::ifstream log(log_name);
  std::string first_line;
  std::getline(log, first_line);
  unlink(log_name);
  EXPECT_NE(first_line.find("loaded: transparent mode"), std::string::npos) << first_line;

  const Outcome one_plain = RunSides({bytes, plain_environment, "", {"run"}},
                                     {bytes, plain_environment, "", {}, /*preload=*/false});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(one_plain, 1 << 20));
  EXPECT_EQ(one_plain.client.at("after"), "none");  // loopfast is not even loaded there
  EXPECT_EQ(one_plain.server.at("after"), "kernel");

  const Outcome excluded =
      RunSides({bytes, plain_environment, "", {"run"}},
               {bytes, plain_environment, "", {"run", "--exclude-port", "1-65535"}});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(excluded, 1 << 20));
  EXPECT_EQ(excluded.client.at("after"), "kernel");
  EXPECT_NE(excluded.client.at("reason").find("EXCLUDE"), std::string::npos)
      << excluded.client_line;
}

// LOOPFAST_DISABLE=1 (`loopfast run --disable`) turns everything off at once.
TEST(LauncherTest, DisableTurnsEverythingOff) {
  const std::vector<std::string> bytes = {"--bytes", std::to_string(1 << 20)};
  const std::vector<std::string> plain_environment;
  const Outcome o = RunSides({bytes, plain_environment, "", {"run", "--disable"}},
                             {bytes, {"LOOPFAST_DEFAULT=1", "LOOPFAST_DISABLE=1"}});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 1 << 20));
  EXPECT_EQ(o.client.at("after"), "kernel");
  EXPECT_EQ(o.server.at("after"), "kernel");
  EXPECT_NE(o.client.at("reason").find("disabled"), std::string::npos) << o.client_line;
}

// A statically linked program (like a Go program, which makes its own system calls) never
// loads loopfast: it talks plain TCP, also to a fast listener, which then takes kernel TCP.
TEST(LauncherTest, AStaticallyLinkedProgramTalksPlainTcpToAFastListener) {
  const std::vector<std::string> bytes = {"--bytes", std::to_string(4 << 20)};
  Side client{bytes};
  client.program = LOOPFAST_STREAM_PEER_STATIC;
  const Outcome o = RunSides(Side{bytes}, client);
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 4 << 20));
  EXPECT_EQ(o.client.at("after"), "none");  // no loopfast in that process at all
  EXPECT_EQ(o.server.at("after"), "kernel");
  EXPECT_NE(o.server.at("reason").find("did not opt in"), std::string::npos) << o.server_line;
}

// Pairing happens inside one network namespace: two programs in a namespace of their own go
// fast there (the rendezvous channels are abstract Unix sockets, which belong to a namespace).
TEST(LauncherTest, TwoProgramsInAnotherNetworkNamespaceGoFastThere) {
  const char *ip = access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip"
                   : access("/sbin/ip", X_OK) == 0   ? "/sbin/ip"
                                                     : "/usr/bin/ip";
  const std::string name = "lf-test-" + std::to_string(getpid());
  if (geteuid() != 0 ||
      std::system((std::string(ip) + " netns add " + name + " 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "needs root and ip netns";
  }
  ASSERT_EQ(std::system((std::string(ip) + " -n " + name + " link set lo up").c_str()), 0);
  const std::vector<std::string> in_namespace = {ip, "netns", "exec", name};
  const std::vector<std::string> bytes = {"--bytes", std::to_string(4 << 20)};
  Side server{bytes}, client{bytes};
  server.wrapper = client.wrapper = in_namespace;
  const Outcome o = RunSides(server, client);
  (void)!std::system((std::string(ip) + " netns delete " + name).c_str());
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 4 << 20));
  EXPECT_EQ(o.client.at("after"), "fast");
  EXPECT_EQ(o.server.at("after"), "fast");
}

TEST(TransparentMoveTest, WithoutAMoveBothEndsStayFast) {
  const std::string bytes = std::to_string(8 << 20);
  const Outcome o = RunPair({"--bytes", bytes, "--loop", "epoll-et"}, {"--bytes", bytes});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 8 << 20));
  EXPECT_EQ(o.client.at("after"), "fast");
  EXPECT_EQ(o.server.at("after"), "fast");
}

}  // namespace
}  // namespace loopfast::test
