// `loopfast run`: options become LOOPFAST_* variables, then LD_PRELOAD, then exec.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"
#include "loopfast/loopfast.h"

namespace loopfast::tool {
namespace {

void RunUsage(FILE *out) {
  std::fprintf(out,
               "usage: loopfast run [OPTIONS] -- PROGRAM [ARGS...]\n"
               "\n"
               "Runs PROGRAM with loopfast preloaded and the fast-path switch on by default for\n"
               "its TCP sockets. A connection is fast only when its other end also runs under\n"
               "loopfast (or sets SIO_LOOPBACK_FAST_PATH); otherwise it is plain kernel TCP.\n"
               "\n"
               "options:\n"
               "  --spin-us N     spin up to N microseconds before sleeping (LOOPFAST_SPIN_US,\n"
               "                  default 50; 0 sleeps at once and spends no CPU waiting)\n"
               "  --log LEVEL     off|error|info|debug (LOOPFAST_LOG, default error)\n"
               "  --log-file PATH write the log there instead of stderr (LOOPFAST_LOG_FILE)\n"
               "  --disable       everything off: plain kernel TCP (LOOPFAST_DISABLE=1)\n"
               "  -h, --help      this text\n"
               "\n"
               "Setting the same variables and LD_PRELOAD=libloopfast.so by hand does the same.\n");
}

// The library this tool is linked with: the one to preload.
std::string LibraryPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&loopfast_version), &info) != 0 && info.dli_fname) {
    return info.dli_fname;
  }
  return "libloopfast.so";
}

}  // namespace

int RunCommand(int argc, char **argv) {
  int i = 1;
  for (; i < argc; ++i) {
    const char *arg = argv[i];
    auto value = [&](const char *name) -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "loopfast run: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (std::strcmp(arg, "--") == 0) {
      ++i;
      break;
    } else if (std::strcmp(arg, "-h") == 0 || std::strcmp(arg, "--help") == 0) {
      RunUsage(stdout);
      return 0;
    } else if (std::strcmp(arg, "--spin-us") == 0) {
      setenv("LOOPFAST_SPIN_US", value(arg), 1);
    } else if (std::strcmp(arg, "--log") == 0) {
      setenv("LOOPFAST_LOG", value(arg), 1);
    } else if (std::strcmp(arg, "--log-file") == 0) {
      setenv("LOOPFAST_LOG_FILE", value(arg), 1);
    } else if (std::strcmp(arg, "--disable") == 0) {
      setenv("LOOPFAST_DISABLE", "1", 1);
    } else if (arg[0] == '-') {
      std::fprintf(stderr, "loopfast run: unknown option '%s'\n", arg);
      RunUsage(stderr);
      return 2;
    } else {
      break;  // the program, without "--"
    }
  }
  if (i >= argc) {
    RunUsage(stderr);
    return 2;
  }
  setenv("LOOPFAST_DEFAULT", "1", 1);
  std::string preload = LibraryPath();
  if (const char *existing = std::getenv("LD_PRELOAD"); existing != nullptr && *existing) {
    preload += ":";
    preload += existing;
  }
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  std::fprintf(stderr, "loopfast run: cannot run '%s': %s\n", argv[i], std::strerror(errno));
  return 127;
}

}  // namespace loopfast::tool
