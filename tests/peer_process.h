// Starting tests/tools/stream_peer (a plain program that does not link loopfast) as a separate
// process under LD_PRELOAD, as `loopfast run` does, and reading what it reports.
#ifndef LOOPFAST_TESTS_PEER_PROCESS_H_
#define LOOPFAST_TESTS_PEER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace loopfast::test {

// One stream_peer process and the lines it prints.
class Peer {
 public:
  // `etc_upper`: when set, the program runs in its own mount namespace where that directory's
  // upper/ files (a loopfast.conf) lie over /etc (an overlay; work/ beside it), so a host
  // policy can be tested without touching the host's /etc.
  // `launcher`: when set, the program is started by `loopfast <launcher...> --` (the real
  // tool) instead of with LD_PRELOAD in `environment`.
  // `preload` false: a plain program, loopfast not loaded at all. An LD_PRELOAD entry in
  // `environment` names the library to load instead of the build tree's (a copy that another
  // user can read). `wrapper`: words run before everything else (e.g. {"ip", "netns", "exec",
  // "NAME"}). `program`: another build of stream_peer (e.g. the statically linked one).
  Peer(const std::vector<std::string> &args, const std::vector<std::string> &environment,
       const std::string &etc_upper = "", const std::vector<std::string> &launcher = {},
       bool preload = true, const std::vector<std::string> &wrapper = {},
       const std::string &program = LOOPFAST_STREAM_PEER);
  ~Peer();
  Peer(const Peer &) = delete;
  Peer &operator=(const Peer &) = delete;

  // The next line it prints ("" at its end; the peer ends itself after 60 s).
  std::string Line();
  // Its exit status (128 + signal when killed).
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  FILE *output_ = nullptr;
};

// "ok sent=1 received=2 before=fast ..." → {"ok": "", "sent": "1", ...}; reason= takes the rest.
std::map<std::string, std::string> Fields(const std::string &line);

inline const std::vector<std::string> kTransparent = {"LOOPFAST_DEFAULT=1"};

// How one side is started: its stream_peer options, environment, and /etc overlay.
struct Side {
  std::vector<std::string> options;
  std::vector<std::string> environment = kTransparent;
  std::string etc_upper;
  std::vector<std::string> launcher;  // e.g. {"run", "--log", "info"}: started by the tool
  bool preload = true;                // false: loopfast not loaded at all
  std::vector<std::string> wrapper;   // words before everything else
  std::string program = LOOPFAST_STREAM_PEER;
};

struct Outcome {
  std::map<std::string, std::string> server, client;
  std::string server_line, client_line;
  int server_status = -1, client_status = -1;
};

// A server and a client, one connection, both directions streamed; fails the test unless both
// report "ok".
Outcome RunSides(const Side &server, const Side &client);
Outcome RunPair(const std::vector<std::string> &server_options,
                const std::vector<std::string> &client_options);

// Both sides sent and received `bytes`, every one checked, and exited 0.
void ExpectWholeStreams(const Outcome &outcome, uint64_t bytes);

// A stream_peer started with --hold-ms holds its connection open once done and says so
// ("holding pid=N fd=N"): its process and descriptor (the test fails when no such line comes).
struct Held {
  pid_t pid = 0;
  int fd = -1;
};
Held WaitHolding(Peer &peer);
// The port from a listening peer's first line ("port N").
uint16_t PortLine(Peer &server);

// Words that run a program as another user (a Peer's `wrapper`): setpriv, no groups but its own.
std::vector<std::string> AsUser(uid_t uid);
inline const std::vector<std::string> kAsNobody = AsUser(65534);
std::string Join(const std::vector<std::string> &words);  // "a b c " (for a shell)

// The library, the tool and stream_peer where user 65534 (or any other unprivileged user) can
// run them: the build tree itself, or, when it is not reachable by other users (a checkout in a
// 0700 directory), copies in a directory every user may read, removed again at the end.
// `tool_wrapper`: runs the tool as nobody, finding the copied library.
struct ForNobody {
  std::string dir, library = LOOPFAST_LIBRARY, tool = LOOPFAST_TOOL, peer = LOOPFAST_STREAM_PEER;
  std::vector<std::string> tool_wrapper = kAsNobody;
  ForNobody();
  ~ForNobody();
  ForNobody(const ForNobody &) = delete;
  ForNobody &operator=(const ForNobody &) = delete;
};

}  // namespace loopfast::test

#endif  // LOOPFAST_TESTS_PEER_PROCESS_H_
