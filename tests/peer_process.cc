#include "peer_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
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
    // An LD_PRELOAD in `environment` names the library (a copy another user can read).
    std::string preload = std::string("LD_PRELOAD=") + LOOPFAST_LIBRARY;
    bool given = false;
    for (const std::string &entry : env) {
      if (entry.rfind("LD_PRELOAD=", 0) == 0) {
        preload = entry;
        given = true;
      }
    }
    if (!launcher.empty()) {
      words.push_back(LOOPFAST_TOOL);
      words.insert(words.end(), launcher.begin(), launcher.end());
      words.push_back("--");
    } else if (etc_upper.empty()) {
      if (preload_library && !given) env.push_back(preload);
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

Held WaitHolding(Peer &peer) {
  for (int i = 0; i < 4; ++i) {
    const std::string line = peer.Line();
    if (line.rfind("holding ", 0) != 0) continue;
    const std::map<std::string, std::string> fields = Fields(line);
    return {static_cast<pid_t>(std::atoi(fields.at("pid").c_str())),
            std::atoi(fields.at("fd").c_str())};
  }
  ADD_FAILURE() << "the peer never held its connection";
  return {};
}

uint16_t PortLine(Peer &server) {
  const std::string line = server.Line();
  EXPECT_EQ(line.rfind("port ", 0), 0u) << line;
  return static_cast<uint16_t>(std::atoi(line.c_str() + 5));
}

std::vector<std::string> AsUser(uid_t uid) {
  const std::string id = std::to_string(uid);
  return {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups"};
}

std::string Join(const std::vector<std::string> &words) {
  std::string line;
  for (const std::string &word : words) line += word + " ";
  return line;
}

ForNobody::ForNobody() {
  const std::string check =
      Join(kAsNobody) + "test -r " + library + " -a -x " + tool + " -a -x " + peer + " 2>/dev/null";
  if (std::system(check.c_str()) == 0) return;
  char path[] = "/tmp/lf-nobody.XXXXXX";
  if (mkdtemp(path) == nullptr) return;
  dir = path;
  namespace fs = std::filesystem;
  fs::permissions(dir, fs::perms(0755));
  const std::pair<std::string *, const char *> files[] = {
      {&library, "/libloopfast.so.0"}, {&tool, "/loopfast"}, {&peer, "/stream_peer"}};
  for (const auto &[file, name] : files) {
    fs::copy_file(*file, dir + name);
    fs::permissions(dir + name, fs::perms(0755));
    *file = dir + name;
  }
  tool_wrapper.insert(tool_wrapper.end(), {"env", "LD_LIBRARY_PATH=" + dir});
}

ForNobody::~ForNobody() {
  if (!dir.empty()) std::filesystem::remove_all(dir);
}

}  // namespace loopfast::test
