// The host policy (/etc/loopfast.conf) and the environment's narrowing with real, separately
// started programs in transparent mode. Each program that needs a policy runs in its own mount
// namespace with a loopfast.conf laid over /etc, so the host's /etc is never touched.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "peer_process.h"

namespace loopfast::test {
namespace {

constexpr uint64_t kBytes = 1 << 20;

// A port nobody listens on right now.
uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr *>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr *>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// upper/loopfast.conf (with `mode`) and work/, for one program's /etc overlay.
class EtcOverlay {
 public:
  EtcOverlay(const std::string &policy, mode_t mode) {
    char pattern[] = "/tmp/lf-test-etc.XXXXXX";
    if (mkdtemp(pattern) == nullptr) return;
    directory_ = pattern;
    mkdir((directory_ + "/upper").c_str(), 0755);
    mkdir((directory_ + "/work").c_str(), 0755);
    const std::string file = directory_ + "/upper/loopfast.conf";
    std::ofstream(file) << policy;
    chmod(file.c_str(), mode);
  }
  ~EtcOverlay() {
    if (!directory_.empty()) (void)!std::system(("rm -rf " + directory_).c_str());
  }
  EtcOverlay(const EtcOverlay &) = delete;
  EtcOverlay &operator=(const EtcOverlay &) = delete;
  const std::string &path() const { return directory_; }

 private:
  std::string directory_;
};

bool CanOverlayEtc() {
  static const bool can = geteuid() == 0 && std::system(
                                                "/usr/bin/unshare --mount --propagation private "
                                                "/bin/true >/dev/null 2>&1") == 0;
  return can;
}

#define REQUIRE_OVERLAY()                                              \
  if (!CanOverlayEtc())                                                \
    GTEST_SKIP() << "needs root and mount namespaces to lay a policy " \
                    "file over /etc";

std::vector<std::string> Options(uint16_t port) {
  return {"--bytes", std::to_string(kBytes), "--port", std::to_string(port)};
}

std::vector<std::string> ClientOptions() { return {"--bytes", std::to_string(kBytes)}; }

TEST(HostPolicyTest, AnInspectedPortTakesKernelTcpEvenWhenBothSidesOptIn) {
  REQUIRE_OVERLAY();
  const uint16_t port = FreePort();
  const std::string policy = "# test policy\ninspect port " + std::to_string(port) + "\n";
  EtcOverlay server_etc(policy, 0644), client_etc(policy, 0644);
  const Outcome o = RunSides({Options(port), kTransparent, server_etc.path()},
                             {ClientOptions(), kTransparent, client_etc.path()});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
  EXPECT_EQ(o.client.at("after"), "kernel");
  EXPECT_EQ(o.server.at("after"), "kernel");
  EXPECT_NE(o.client.at("reason").find("host policy"), std::string::npos) << o.client_line;
  EXPECT_NE(o.server.at("reason").find("host policy"), std::string::npos) << o.server_line;
}

TEST(HostPolicyTest, EitherSidesPolicyIsEnough) {
  REQUIRE_OVERLAY();
  for (const bool server_has_it : {true, false}) {
    SCOPED_TRACE(server_has_it ? "policy on the server's side" : "policy on the client's side");
    const uint16_t port = FreePort();
    EtcOverlay etc("inspect port " + std::to_string(port) + "\n", 0644);
    const Outcome o = RunSides({Options(port), kTransparent, server_has_it ? etc.path() : ""},
                               {ClientOptions(), kTransparent, server_has_it ? "" : etc.path()});
    ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
    EXPECT_EQ(o.client.at("after"), "kernel");
    EXPECT_EQ(o.server.at("after"), "kernel");
  }
}

TEST(HostPolicyTest, RulesForOtherPortsAddressesAndProgramsChangeNothing) {
  REQUIRE_OVERLAY();
  const uint16_t port = FreePort();
  const std::string policy = "inspect port " + std::to_string(port == 1 ? 2 : port - 1) +
                             "\ninspect address 127.0.0.2\ninspect program redis-server\n";
  EtcOverlay server_etc(policy, 0644), client_etc(policy, 0644);
  const Outcome o = RunSides({Options(port), kTransparent, server_etc.path()},
                             {ClientOptions(), kTransparent, client_etc.path()});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
  EXPECT_EQ(o.client.at("after"), "fast");
  EXPECT_EQ(o.server.at("after"), "fast");
}

TEST(HostPolicyTest, InspectedAddressesProgramsAndUsersTakeKernelTcp) {
  REQUIRE_OVERLAY();
  for (const std::string rule : {"inspect address 127.0.0.0/8", "inspect program stream_peer",
                                 "inspect user root", "disable"}) {
    SCOPED_TRACE(rule);
    const uint16_t port = FreePort();
    EtcOverlay server_etc(rule + "\n", 0644), client_etc(rule + "\n", 0644);
    const Outcome o = RunSides({Options(port), kTransparent, server_etc.path()},
                               {ClientOptions(), kTransparent, client_etc.path()});
    ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
    EXPECT_EQ(o.client.at("after"), "kernel");
    EXPECT_NE(o.client.at("reason").find("host policy"), std::string::npos) << o.client_line;
  }
}

TEST(HostPolicyTest, AnUnsafeOrMalformedPolicyIsRefusedWithAMessageAndNothingGoesFast) {
  REQUIRE_OVERLAY();
  struct Case {
    const char *name;
    std::string text;
    mode_t mode;
    const char *message;
  };
  const Case cases[] = {{"writable by others", "inspect port 1\n", 0666, "writable by group"},
                        {"malformed", "inspect port everything\n", 0644, "line 1"}};
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    const uint16_t port = FreePort();
    EtcOverlay server_etc(c.text, c.mode), client_etc(c.text, c.mode);
    char log_name[] = "/tmp/lf-test-log.XXXXXX";
    const int log_fd = mkstemp(log_name);
    close(log_fd);
    std::vector<std::string> client_environment = kTransparent;
    client_environment.push_back(std::string("LOOPFAST_LOG_FILE=") + log_name);
    const Outcome o = RunSides({Options(port), kTransparent, server_etc.path()},
                               {ClientOptions(), client_environment, client_etc.path()});
    ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
    EXPECT_EQ(o.client.at("after"), "kernel");
    EXPECT_EQ(o.server.at("after"), "kernel");
    std::stringstream log;
    log << std::ifstream(log_name).rdbuf();
    unlink(log_name);
    EXPECT_NE(log.str().find("refusing the host policy"), std::string::npos) << log.str();
    EXPECT_NE(log.str().find(c.message), std::string::npos) << log.str();
  }
}

// No policy file needed: the environment narrows, and cannot widen what a policy inspects.
TEST(HostPolicyTest, TheEnvironmentNarrowsButNeverWidens) {
  const uint16_t port = FreePort();
  const std::string p = std::to_string(port);
  struct Case {
    std::string variable;
    const char *expected;
  };
  const Case cases[] = {{"LOOPFAST_EXCLUDE_PORTS=" + p, "kernel"},
                        {"LOOPFAST_INCLUDE_PORTS=" + p, "fast"},
                        {"LOOPFAST_INCLUDE_PORTS=1-" + std::to_string(port - 1), "kernel"},
                        {"LOOPFAST_EXCLUDE_ADDRESSES=127.0.0.1", "kernel"},
                        {"LOOPFAST_INCLUDE_ADDRESSES=127.0.0.0/8,::1", "fast"},
                        {"LOOPFAST_INCLUDE_PORTS=" + p + ",", "kernel"}};  // malformed: off
  for (const Case &c : cases) {
    SCOPED_TRACE(c.variable);
    std::vector<std::string> environment = kTransparent;
    environment.push_back(c.variable);
    const Outcome o = RunSides({Options(FreePort())}, {ClientOptions(), environment});
    ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
  }
  // The cases above ran against a server on another port; now the port under test.
  for (const Case &c : cases) {
    SCOPED_TRACE(c.variable);
    std::vector<std::string> environment = kTransparent;
    environment.push_back(c.variable);
    const Outcome o = RunSides({Options(port)}, {ClientOptions(), environment});
    ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
    EXPECT_EQ(o.client.at("after"), c.expected) << o.client_line;
  }
  if (!CanOverlayEtc()) return;
  EtcOverlay etc("inspect port " + p + "\n", 0644);
  std::vector<std::string> widen = kTransparent;
  widen.push_back("LOOPFAST_INCLUDE_PORTS=" + p);
  const Outcome o = RunSides({Options(port), widen, etc.path()}, {ClientOptions(), widen});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
  EXPECT_EQ(o.client.at("after"), "kernel");
}

// `require same-user`: a server of one user and a client of another take kernel TCP (with the
// policy's reason), every byte delivered; without the rule the same two go fast.
TEST(HostPolicyTest, RequireSameUserKeepsTwoUsersOnKernelTcp) {
  REQUIRE_OVERLAY();
  const ForNobody nobody;
  for (const bool rule : {true, false}) {
    SCOPED_TRACE(rule ? "require same-user" : "no rule");
    const uint16_t port = FreePort();
    const std::string policy = rule ? "require same-user\n" : "# nothing\n";
    EtcOverlay server_etc(policy, 0644), client_etc(policy, 0644);
    // The server as root, the client as 65534 (setpriv, after the overlay is laid).
    Peer server({"listen", "--bytes", std::to_string(kBytes), "--port", std::to_string(port)},
                kTransparent, server_etc.path());
    const std::string port_line = server.Line();
    ASSERT_EQ(port_line.rfind("port ", 0), 0u) << port_line;
    std::vector<std::string> args = AsUser(65534);
    args.erase(args.begin());  // "setpriv" is the program
    args.insert(args.end(),
                {nobody.peer, "connect", port_line.substr(5), "--bytes", std::to_string(kBytes)});
    // The library as user 65534 can read it (the build tree may be in a 0700 directory).
    std::vector<std::string> environment = kTransparent;
    environment.push_back("LD_PRELOAD=" + nobody.library);
    Peer client(args, environment, client_etc.path(), {}, true, {}, "/usr/bin/setpriv");
    Outcome o;
    o.client_line = client.Line();
    o.server_line = server.Line();
    o.client = Fields(o.client_line);
    o.server = Fields(o.server_line);
    o.client_status = client.Wait();
    o.server_status = server.Wait();
    ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, kBytes));
    EXPECT_EQ(o.client.at("after"), rule ? "kernel" : "fast") << o.client_line;
    EXPECT_EQ(o.server.at("after"), rule ? "kernel" : "fast") << o.server_line;
    if (rule) {
      EXPECT_NE(o.client.at("reason").find("one user"), std::string::npos) << o.client_line;
    }
  }
}

}  // namespace
}  // namespace loopfast::test
