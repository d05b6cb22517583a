#include "launch.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "loopfast/loopfast.h"

namespace loopfast::tool {
namespace {

// The library this tool is linked with: the one to preload.
std::string LibraryPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&loopfast_version), &info) != 0 && info.dli_fname) {
    return info.dli_fname;
  }
  return "libloopfast.so";
}

}  // namespace

void AppendList(const char *variable, const char *list) {
  std::string value = list;
  if (const char *existing = std::getenv(variable); existing != nullptr && *existing != '\0') {
    value = std::string(existing) + "," + value;
  }
  setenv(variable, value.c_str(), 1);
}

bool ApplyRunOption(const char *command, int argc, char **argv, int *index) {
  int &i = *index;
  const char *arg = argv[i];
  auto value = [&](const char *name) -> const char * {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s: %s needs a value\n", command, name);
      std::exit(2);
    }
    return argv[++i];
  };
  if (std::strcmp(arg, "--spin-us") == 0) {
    setenv("LOOPFAST_SPIN_US", value(arg), 1);
  } else if (std::strcmp(arg, "--log") == 0) {
    setenv("LOOPFAST_LOG", value(arg), 1);
  } else if (std::strcmp(arg, "--log-file") == 0) {
    setenv("LOOPFAST_LOG_FILE", value(arg), 1);
  } else if (std::strcmp(arg, "--include-port") == 0) {
    AppendList("LOOPFAST_INCLUDE_PORTS", value(arg));
  } else if (std::strcmp(arg, "--exclude-port") == 0) {
    AppendList("LOOPFAST_EXCLUDE_PORTS", value(arg));
  } else if (std::strcmp(arg, "--include-address") == 0) {
    AppendList("LOOPFAST_INCLUDE_ADDRESSES", value(arg));
  } else if (std::strcmp(arg, "--exclude-address") == 0) {
    AppendList("LOOPFAST_EXCLUDE_ADDRESSES", value(arg));
  } else if (std::strcmp(arg, "--disable") == 0) {
    setenv("LOOPFAST_DISABLE", "1", 1);
  } else {
    return false;
  }
  return true;
}

int ExecWithFastPath(const char *command, char **program) {
  setenv("LOOPFAST_DEFAULT", "1", 1);
  std::string preload = LibraryPath();
  if (const char *existing = std::getenv("LD_PRELOAD"); existing != nullptr && *existing) {
    preload += ":";
    preload += existing;
  }
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(program[0], program);
  std::fprintf(stderr, "%s: cannot run '%s': %s\n", command, program[0], std::strerror(errno));
  return 127;
}

}  // namespace loopfast::tool
