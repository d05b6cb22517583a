#include "peer_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

namespace loopfast::test {

Peer::Peer(const std::vector<std::string> &args, const std::vector<std::string> &environment,
           const std::string &etc_upper, const std::vector<std::string> &launcher,
           bool preload_library, const std::vector<std::string> &wrapper,
           const std::string &program) {
  int out[2];
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);
    std::vector<std::string> words = wrapper;
    std::vector<std::string> env = environment;
    const std::string preload = std::string("LD_PRELOAD=") + LOOPFAST_LIBRARY;
    if (!launcher.empty()) {
      words.push_back(LOOPFAST_TOOL);
      words.insert(words.end(), launcher.begin(), launcher.end());
      words.push_back("--");
    } else if (etc_upper.empty()) {
      if (preload_library) env.push_back(preload);
    } else {
      words = {"/usr/bin/unshare",
               "--mount",
               "--propagation",
               "private",
               "/bin/sh",
               "-c",
               "mount -t overlay overlay -o lowerdir=/etc,upperdir=" + etc_upper +
                   "/upper,workdir=" + etc_upper + "/work /etc && export " + preload +
                   " && exec \"$0\" \"$@\""};
    }
    words.push_back(program);
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (std::string &word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    std::vector<char *> envp;
    for (std::string &entry : env) envp.push_back(entry.data());
    envp.push_back(nullptr);
    execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  output_ = fdopen(out[0], "r");
}

Peer::~Peer() {
  if (output_ != nullptr) fclose(output_);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string Peer::Line() {
  char buffer[512];
  if (output_ == nullptr || fgets(buffer, sizeof buffer, output_) == nullptr) return "";
  std::string line(buffer);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

int Peer::Wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

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

Outcome RunSides(const Side &server_side, const Side &client_side) {
  Outcome outcome;
  std::vector<std::string> server_args = {"listen"};
  server_args.insert(server_args.end(), server_side.options.begin(), server_side.options.end());
  Peer server(server_args, server_side.environment, server_side.etc_upper, server_side.launcher,
              server_side.preload, server_side.wrapper, server_side.program);
  const std::string port_line = server.Line();
  EXPECT_EQ(port_line.rfind("port ", 0), 0u) << port_line;
  std::vector<std::string> client_args = {"connect", port_line.substr(5)};
  client_args.insert(client_args.end(), client_side.options.begin(), client_side.options.end());
  Peer client(client_args, client_side.environment, client_side.etc_upper, client_side.launcher,
              client_side.preload, client_side.wrapper, client_side.program);
  outcome.client_line = client.Line();
  outcome.server_line = server.Line();
  outcome.client = Fields(outcome.client_line);
  outcome.server = Fields(outcome.server_line);
  outcome.client_status = client.Wait();
  outcome.server_status = server.Wait();
  EXPECT_EQ(outcome.client.count("ok"), 1u) << "client: " << outcome.client_line;
  EXPECT_EQ(outcome.server.count("ok"), 1u) << "server: " << outcome.server_line;
  return outcome;
}

Outcome RunPair(const std::vector<std::string> &server_options,
                const std::vector<std::string> &client_options) {
  return RunSides(Side{server_options}, Side{client_options});
}

void ExpectWholeStreams(const Outcome &o, uint64_t bytes) {
  EXPECT_EQ(o.client_status, 0);
  EXPECT_EQ(o.server_status, 0);
  const std::string expected = std::to_string(bytes);
  for (const auto *side : {&o.client, &o.server}) {
    EXPECT_EQ(side->count("sent") ? side->at("sent") : "?", expected);
    EXPECT_EQ(side->count("received") ? side->at("received") : "?", expected);
  }
}

}  // namespace loopfast::test
