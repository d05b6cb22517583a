// `loopfast run`: options become LOOPFAST_* variables, then LD_PRELOAD, then exec.
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "launch.h"

namespace loopfast::tool {
namespace {

void RunUsage(FILE *out) {
  std::fprintf(
      out,
      "NAME\n"
      "    loopfast run - run a program with the TCP loopback fast path\n"
      "\n"
      "SYNOPSIS\n"
      "    loopfast run [OPTIONS] [--] PROGRAM [ARGS...]\n"
      "\n"
      "DESCRIPTION\n"
      "    Runs PROGRAM, unmodified and dynamically linked, with libloopfast.so preloaded and\n"
      "    the fast-path switch on by default for its TCP sockets. A loopback connection whose\n"
      "    other end also runs under loopfast (or sets SIO_LOOPBACK_FAST_PATH) moves its data\n"
      "    through shared memory; the program still sees an ordinary TCP socket. Every other\n"
      "    connection - a peer without loopfast, a remote address, a port the host policy\n"
      "    inspects - is plain kernel TCP, with no error and no delay.\n"
      "\n"
      "    Options become LOOPFAST_* environment variables; setting them and\n"
      "    LD_PRELOAD=libloopfast.so by hand does the same. Statically linked programs and\n"
      "    programs that make their own system calls (Go) never opt in and keep working.\n"
      "\n"
      "OPTIONS\n"
      "    --include-port LIST     only these ports may go fast, e.g. 6379,8000-8099\n"
      "                            (LOOPFAST_INCLUDE_PORTS); repeatable\n"
      "    --exclude-port LIST     these ports never go fast (LOOPFAST_EXCLUDE_PORTS)\n"
      "    --include-address LIST  only these addresses, e.g. 127.0.0.1,::1,127.0.1.0/24\n"
      "                            (LOOPFAST_INCLUDE_ADDRESSES)\n"
      "    --exclude-address LIST  never these addresses (LOOPFAST_EXCLUDE_ADDRESSES)\n"
      "    --spin-us N|auto        a waiter spins N microseconds before it sleeps, every time\n"
      "                            (LOOPFAST_SPIN_US; 0 sleeps at once and spends no CPU\n"
      "                            waiting, at the price of ~30 us per wake-up); default auto:\n"
      "                            up to 50, only while that connection's (or epoll set's)\n"
      "                            recent waits mostly ended that soon\n"
      "    --log LEVEL             off|error|info|debug (LOOPFAST_LOG, default error); info\n"
      "                            prints one start-up line and one line per connection that\n"
      "                            could not go fast, with the reason\n"
      "    --log-file PATH         append the log there instead of stderr (LOOPFAST_LOG_FILE);\n"
      "                            not a symbolic link, not another user's file, not in a\n"
      "                            directory others may write unless it is yours (/tmp is\n"
      "                            root's); a refused path logs to stderr, saying why\n"
      "    --disable               everything off: plain kernel TCP (LOOPFAST_DISABLE=1)\n"
      "    -h, --help              this text\n"
      "\n"
      "    The environment can only narrow what the host policy allows, never widen it.\n"
      "\n"
      "FILES\n"
      "    /etc/loopfast.conf      the host policy: ports, addresses, users and programs whose\n"
      "                            connections always take kernel TCP (docs/configuration.md).\n"
      "                            It must be root's alone; otherwise nothing goes fast.\n"
      "\n"
      "EXIT STATUS\n"
      "    PROGRAM's own; 127 if it cannot be run, 2 for a usage error.\n"
      "\n"
      "EXAMPLES\n"
      "    loopfast run -- redis-server --port 6379 &\n"
      "    loopfast run -- redis-benchmark -p 6379 -q     # fast: both ends opted in\n"
      "    redis-benchmark -p 6379 -q                     # plain kernel TCP\n"
      "    loopfast run --log info --exclude-port 5432 -- ./service\n"
      "\n"
      "SEE ALSO\n"
      "    loopfast bench --help, docs/options.md, docs/configuration.md\n");
}

}  // namespace

int RunCommand(int argc, char **argv) {
  int i = 1;
  for (; i < argc; ++i) {
    const LaunchArg kind = TakeLaunchArg(argv, &i);
    if (kind == LaunchArg::kEndOfOptions) break;
    if (kind == LaunchArg::kHelp) {
      RunUsage(stdout);
      return 0;
    }
    const char *arg = argv[i];
    if (ApplyRunOption("loopfast run", argc, argv, &i)) {
      continue;
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
  return ExecWithFastPath("loopfast run", argv + i);
}

}  // namespace loopfast::tool
