// loopfast: run programs on the TCP loopback fast path, and measure it.
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "loopfast/loopfast.h"

// Read by the library: this process only launches or measures; the startup line belongs to
// the programs it runs.
extern "C" __attribute__((visibility("default"))) const int loopfast_quiet_startup = 1;

namespace {

void Usage(FILE *out) {
  std::fprintf(
      out,
      "usage: loopfast COMMAND [ARGS]\n"
      "\n"
      "commands:\n"
      "  run [OPTIONS] -- PROGRAM [ARGS]   run a program with the fast path on by default\n"
      "  bench rr|stream|conn|many [OPTS]  fast path beside kernel TCP, in one run\n"
      "  capture -w FILE -- PROGRAM [ARGS] run, and write fast-path traffic to a pcap file\n"
      "  stat [--json] [-w]                the host's fast-path connections, like ss\n"
      "  doctor [--json]                   does the fast path work on this host, and if not, why\n"
      "  service enable|disable|status UNIT [RUN OPTIONS]\n"
      "                                    run a systemd service under loopfast\n"
      "  version                           print the version\n"
      "\n"
      "`loopfast COMMAND --help` describes each command; man loopfast, man loopfast-COMMAND.\n");
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    Usage(stderr);
    return 2;
  }
  const char *command = argv[1];
  if (std::strcmp(command, "run") == 0) return loopfast::tool::RunCommand(argc - 1, argv + 1);
  if (std::strcmp(command, "bench") == 0) return loopfast::tool::BenchCommand(argc - 1, argv + 1);
  if (std::strcmp(command, "stat") == 0) return loopfast::tool::StatCommand(argc - 1, argv + 1);
  if (std::strcmp(command, "doctor") == 0) return loopfast::tool::DoctorCommand(argc - 1, argv + 1);
  if (std::strcmp(command, "service") == 0) {
    return loopfast::tool::ServiceCommand(argc - 1, argv + 1);
  }
  if (std::strcmp(command, "capture") == 0) {
    return loopfast::tool::CaptureCommand(argc - 1, argv + 1);
  }
  if (std::strcmp(command, "version") == 0 || std::strcmp(command, "--version") == 0) {
    std::printf("loopfast %s\n", loopfast_version());
    return 0;
  }
  if (std::strcmp(command, "help") == 0 || std::strcmp(command, "--help") == 0 ||
      std::strcmp(command, "-h") == 0) {
    Usage(stdout);
    return 0;
  }
  std::fprintf(stderr, "loopfast: unknown command '%s'\n", command);
  Usage(stderr);
  return 2;
}
