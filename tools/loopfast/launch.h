// What `loopfast run`, `loopfast capture` and `loopfast service` share: run's options, the
// variables they become, and starting a program with the library preloaded.
#ifndef LOOPFAST_TOOLS_LAUNCH_H_
#define LOOPFAST_TOOLS_LAUNCH_H_

#include <string>
#include <vector>

namespace loopfast::tool {

// One variable a run option sets. `list` variables are comma-separated and joined when the
// option is given again (or, for `loopfast run`, with the value already in the environment).
struct RunVariable {
  std::string name;
  std::string value;
  bool list = false;
};

// The variables a set of run options stands for, in the order first given.
class RunVariables {
 public:
  void Set(const char *name, const std::string &value, bool list);
  const std::vector<RunVariable> &all() const { return variables_; }

 private:
  std::vector<RunVariable> variables_;
};

// If argv[*index] is one of `loopfast run`'s environment options (--spin-us, --log, --log-file,
// --include-port, --exclude-port, --include-address, --exclude-address, --disable), adds its
// LOOPFAST_* variable to `out`, moves *index past its value, and returns true. A missing value
// exits with status 2 and a message naming `command` ("loopfast run").
bool ParseRunOption(const char *command, int argc, char **argv, int *index, RunVariables *out);

// What argv[*index] of a launching command's option loop is, before its own options: "--" ends
// the options (the program follows; *index moves past it), -h and --help ask for the usage.
enum class LaunchArg { kOther, kEndOfOptions, kHelp };
LaunchArg TakeLaunchArg(char **argv, int *index);

// Adds LIST to a comma-separated variable (the option may be given more than once).
void AppendList(const char *variable, const char *list);

// ParseRunOption, then sets the variable in this process's environment (lists are appended to
// what the environment already holds).
bool ApplyRunOption(const char *command, int argc, char **argv, int *index);

// What `loopfast run` sets whatever its options: the switch on by default for every TCP socket.
inline constexpr const char *kDefaultOnVariable = "LOOPFAST_DEFAULT";

// The library this tool is linked with, the one to preload, as an absolute path whose file
// name is the one the dynamic loader opened (the soname, libloopfast.so.0, so that a service
// keeps working after an upgrade replaces libloopfast.so.0.x.y). Its directory is resolved.
std::string LibraryPath();

// Runs `program` (argv-style, null-terminated) with the library preloaded and the switch on
// by default. Returns only on failure: 127, after a message naming `command`.
int ExecWithFastPath(const char *command, char **program);

}  // namespace loopfast::tool

#endif  // LOOPFAST_TOOLS_LAUNCH_H_
