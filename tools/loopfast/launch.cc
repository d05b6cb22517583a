// The implementation of launch.h (what it is for is said there).
#include "launch.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "loopfast/loopfast.h"

namespace loopfast::tool {

void RunVariables::Set(const char *name, const std::string &value, bool list) {
  for (RunVariable &variable : variables_) {
    if (variable.name != name) continue;
    variable.value = list && !variable.value.empty() ? variable.value + "," + value : value;
    return;
  }
  variables_.push_back({name, value, list});
}

std::string LibraryPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&loopfast_version), &info) == 0 || !info.dli_fname) {
    return "libloopfast.so";
  }
  std::string loaded = info.dli_fname;
  const size_t slash = loaded.rfind('/');
  const std::string directory = slash == std::string::npos ? "." : loaded.substr(0, slash + 1);
  char resolved[PATH_MAX];
  if (realpath(directory.c_str(), resolved) == nullptr) return loaded;
  return std::string(resolved) + "/" + loaded.substr(slash == std::string::npos ? 0 : slash + 1);
}

LaunchArg TakeLaunchArg(char **argv, int *index) {
  const char *arg = argv[*index];
  if (std::strcmp(arg, "--") == 0) {
    ++*index;
    return LaunchArg::kEndOfOptions;
  }
  if (std::strcmp(arg, "-h") == 0 || std::strcmp(arg, "--help") == 0) return LaunchArg::kHelp;
  return LaunchArg::kOther;
}

void AppendList(const char *variable, const char *list) {
  std::string value = list;
  if (const char *existing = std::getenv(variable); existing != nullptr && *existing != '\0') {
    value = std::string(existing) + "," + value;
  }
  setenv(variable, value.c_str(), 1);
}

bool ParseRunOption(const char *command, int argc, char **argv, int *index, RunVariables *out) {
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
    out->Set("LOOPFAST_SPIN_US", value(arg), false);
  } else if (std::strcmp(arg, "--log") == 0) {
    out->Set("LOOPFAST_LOG", value(arg), false);
  } else if (std::strcmp(arg, "--log-file") == 0) {
    out->Set("LOOPFAST_LOG_FILE", value(arg), false);
  } else if (std::strcmp(arg, "--include-port") == 0) {
    out->Set("LOOPFAST_INCLUDE_PORTS", value(arg), true);
  } else if (std::strcmp(arg, "--exclude-port") == 0) {
    out->Set("LOOPFAST_EXCLUDE_PORTS", value(arg), true);
  } else if (std::strcmp(arg, "--include-address") == 0) {
    out->Set("LOOPFAST_INCLUDE_ADDRESSES", value(arg), true);
  } else if (std::strcmp(arg, "--exclude-address") == 0) {
    out->Set("LOOPFAST_EXCLUDE_ADDRESSES", value(arg), true);
  } else if (std::strcmp(arg, "--disable") == 0) {
    out->Set("LOOPFAST_DISABLE", "1", false);
  } else {
    return false;
  }
  return true;
}

bool ApplyRunOption(const char *command, int argc, char **argv, int *index) {
  RunVariables variables;
  if (!ParseRunOption(command, argc, argv, index, &variables)) return false;
  for (const RunVariable &variable : variables.all()) {
    if (variable.list) {
      AppendList(variable.name.c_str(), variable.value.c_str());
    } else {
      setenv(variable.name.c_str(), variable.value.c_str(), 1);
    }
  }
  return true;
}

int ExecWithFastPath(const char *command, char **program) {
  setenv(kDefaultOnVariable, "1", 1);
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
