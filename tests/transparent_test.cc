// Transparent mode with real, separately started programs (tests/tools/stream_peer, which does
// not link loopfast) under LD_PRELOAD and LOOPFAST_DEFAULT=1, as `loopfast run` starts them:
// moving a fast connection to kernel TCP mid-stream, in both directions at once, with every
// byte checked and the event loops' wake-ups kept.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace loopfast::test {
namespace {

// One stream_peer process and its first lines of output.
class Peer {
 public:
  Peer(const std::vector<std::string> &args, const std::vector<std::string> &environment) {
    int out[2];
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      std::vector<char *> argv;
      std::string program = LOOPFAST_STREAM_PEER;
      argv.push_back(program.data());
      std::vector<std::string> copies = args;
      for (std::string &arg : copies) argv.push_back(arg.data());
      argv.push_back(nullptr);
      std::vector<std::string> env_copies = environment;
      env_copies.push_back(std::string("LD_PRELOAD=") + LOOPFAST_LIBRARY);
      std::vector<char *> envp;
      for (std::string &entry : env_copies) envp.push_back(entry.data());
      envp.push_back(nullptr);
      execve(program.c_str(), argv.data(), envp.data());
      _exit(127);
    }
    close(out[1]);
    output_ = fdopen(out[0], "r");
  }
  ~Peer() {
    if (output_ != nullptr) fclose(output_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Peer(const Peer &) = delete;
  Peer &operator=(const Peer &) = delete;

  // The next line it prints (the peer ends itself after 60 s, so this is bounded).
  std::string Line() {
    char buffer[512];
    if (output_ == nullptr || fgets(buffer, sizeof buffer, output_) == nullptr) return "";
    std::string line(buffer);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    return line;
  }

  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  FILE *output_ = nullptr;
};

// "ok sent=1 received=2 before=fast ..." → {"ok": "", "sent": "1", ...}; reason= takes the rest.
std::map<std::string, std::string> Fields(const std::string &line) {
  std::map<std::string, std::string> fields;
  const size_t reason = line.find(" reason=");
  std::istringstream words(line.substr(0, reason));
  std::string word;
  while (words >> word) {
    const size_t equals = word.find('=');
    fields[word.substr(0, equals)] = equals == std::string::npos ? "" : word.substr(equals + 1);
  }
  if (reason != std::string::npos) fields["reason"] = line.substr(reason + 8);
  return fields;
}

const std::vector<std::string> kTransparent = {"LOOPFAST_DEFAULT=1"};

struct Outcome {
  std::map<std::string, std::string> server, client;
  int server_status = -1, client_status = -1;
};

Outcome RunPair(const std::vector<std::string> &server_options,
                const std::vector<std::string> &client_options) {
  Outcome outcome;
  std::vector<std::string> server_args = {"listen"};
  server_args.insert(server_args.end(), server_options.begin(), server_options.end());
  Peer server(server_args, kTransparent);
  const std::string port_line = server.Line();
  EXPECT_EQ(port_line.rfind("port ", 0), 0u) << port_line;
  std::vector<std::string> client_args = {"connect", port_line.substr(5)};
  client_args.insert(client_args.end(), client_options.begin(), client_options.end());
  Peer client(client_args, kTransparent);
  const std::string client_line = client.Line();
  const std::string server_line = server.Line();
  outcome.client = Fields(client_line);
  outcome.server = Fields(server_line);
  outcome.client_status = client.Wait();
  outcome.server_status = server.Wait();
  EXPECT_EQ(outcome.client.count("ok"), 1u) << "client: " << client_line;
  EXPECT_EQ(outcome.server.count("ok"), 1u) << "server: " << server_line;
  return outcome;
}

constexpr uint64_t kHundredMb = 100ull << 20;

void ExpectWholeStreams(const Outcome &o, uint64_t bytes) {
  EXPECT_EQ(o.client_status, 0);
  EXPECT_EQ(o.server_status, 0);
  EXPECT_EQ(o.client.at("sent"), std::to_string(bytes));
  EXPECT_EQ(o.client.at("received"), std::to_string(bytes));
  EXPECT_EQ(o.server.at("sent"), std::to_string(bytes));
  EXPECT_EQ(o.server.at("received"), std::to_string(bytes));
}

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

TEST(TransparentMoveTest, WithoutAMoveBothEndsStayFast) {
  const std::string bytes = std::to_string(8 << 20);
  const Outcome o = RunPair({"--bytes", bytes, "--loop", "epoll-et"}, {"--bytes", bytes});
  ASSERT_NO_FATAL_FAILURE(ExpectWholeStreams(o, 8 << 20));
  EXPECT_EQ(o.client.at("after"), "fast");
  EXPECT_EQ(o.server.at("after"), "fast");
}

}  // namespace
}  // namespace loopfast::test
