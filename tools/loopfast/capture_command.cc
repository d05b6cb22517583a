// `loopfast capture`: `loopfast run` that also writes the fast-path traffic to a pcap file.
// The tool only creates the file and sets LOOPFAST_CAPTURE; the library in each program writes
// the records (src/capture/capture.h).
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/escape.h"
#include "base/output_file.h"
#include "capture/pcap_format.h"
#include "commands.h"
#include "launch.h"

namespace loopfast::tool {
namespace {

void CaptureUsage(FILE *out) {
  std::fprintf(
      out,
      "NAME\n"
      "    loopfast capture - run a program with the fast path and record its traffic\n"
      "\n"
      "SYNOPSIS\n"
      "    loopfast capture -w FILE [-a] [--port LIST]... [RUN OPTIONS] [--] PROGRAM [ARGS...]\n"
      "\n"
      "DESCRIPTION\n"
      "    Bytes that move through loopfast's shared memory never reach the loopback\n"
      "    interface, so tcpdump on lo cannot see them. This runs PROGRAM as `loopfast run`\n"
      "    does and has the library in it (and in every program it starts that keeps the\n"
      "    environment) write its fast-path connections to FILE as a pcap file that tcpdump,\n"
      "    Wireshark and tshark read: Ethernet/IP/TCP packets with the connections' real\n"
      "    addresses and ports, a handshake, the data, and FINs. Sequence numbers are\n"
      "    synthetic but consistent, so \"Follow TCP Stream\" works. Connections that take\n"
      "    kernel TCP are not in FILE: capture them on lo as usual.\n"
      "\n"
      "    Both ends of a connection may be captured into the same FILE (start the second\n"
      "    with --append, or set LOOPFAST_CAPTURE=FILE by hand); records from several\n"
      "    processes never interleave. Programs already running cannot be attached to.\n"
      "\n"
      "    Cost: every send and receive on a captured connection is copied and written to FILE\n"
      "    (one write(2) each), so throughput drops to what the file system takes.\n"
      "\n"
      "OPTIONS\n"
      "    -w FILE                 the pcap file; created or truncated (mode 0600)\n"
      "                            (LOOPFAST_CAPTURE). Refused when it is a symbolic link,\n"
      "                            belongs to another user, or lies in a directory others may\n"
      "                            write that is not yours (such as /tmp, unless you are\n"
      "                            root): use a directory of your own\n"
      "    -a, --append            add to FILE instead of truncating it\n"
      "    --port LIST             only connections with this local or peer port, e.g. 6379\n"
      "                            or 8000-8099 (LOOPFAST_CAPTURE_PORTS); repeatable\n"
      "    RUN OPTIONS             every option of `loopfast run` (--include-port, --log, ...)\n"
      "    -h, --help              this text\n"
      "\n"
      "EXIT STATUS\n"
      "    PROGRAM's own; 127 if it cannot be run, 2 for a usage error, 1 if FILE cannot be\n"
      "    created.\n"
      "\n"
      "EXAMPLES\n"
      "    loopfast capture -w ~/redis.pcap --port 6379 -- redis-server --port 6379 &\n"
      "    loopfast capture -w ~/redis.pcap -a -- redis-cli -p 6379 ping\n"
      "    tcpdump -r ~/redis.pcap -nn -A\n"
      "\n"
      "SEE ALSO\n"
      "    loopfast run --help, docs/configuration.md (Capturing fast-path traffic)\n");
}

// "6379", "8000-8099", "80,443": what LOOPFAST_CAPTURE_PORTS accepts (ports 1-65535, ranges
// low-high), checked here so a mistake is a usage error rather than a silent empty capture.
bool ValidPortList(const char *text) {
  const char *p = text;
  for (int items = 0; items < 65536; ++items) {
    unsigned long bounds[2] = {0, 0};
    int count = 0;
    for (; count < 2; ++count) {
      if (*p < '0' || *p > '9') return false;
      char *end = nullptr;
      bounds[count] = std::strtoul(p, &end, 10);
      p = end;
      if (*p != '-' || count == 1) break;
      ++p;
    }
    const unsigned long last = count == 1 ? bounds[1] : bounds[0];
    if (bounds[0] == 0 || last > 65535 || last < bounds[0]) return false;
    if (*p == '\0') return true;
    if (*p != ',') return false;
    ++p;
  }
  return false;
}

// Creates `path` (truncated unless `append`) and writes the pcap file header if it is empty;
// the programs append to it. flock: the library's processes may be opening it too. The file
// is opened under the same rules as the library's (base/output_file.h): run as root in /tmp,
// another user's link or file there is refused, not truncated.
bool CreateCaptureFile(const char *path, bool append) {
  const char *refusal = nullptr;
  const Result<int> opened =
      OpenOutputFile(path, append ? OutputMode::kAppend : OutputMode::kTruncate, 0600, &refusal);
  if (!opened.ok()) {
    std::fprintf(stderr, "loopfast capture: cannot create \"%s\": %s\n", EscapeText(path).c_str(),
                 refusal != nullptr ? refusal : std::strerror(opened.error()));
    return false;
  }
  const int fd = opened.value();
  const capture::PcapFileHeader header;
  ssize_t written = sizeof header;
  int write_error = 0;
  struct stat info {};
  flock(fd, LOCK_EX);
  if (fstat(fd, &info) == 0 && info.st_size == 0) {
    written = write(fd, &header, sizeof header);
    write_error = errno;
  }
  close(fd);  // and unlock
  if (written != static_cast<ssize_t>(sizeof header)) {
    std::fprintf(stderr, "loopfast capture: cannot write \"%s\": %s\n", EscapeText(path).c_str(),
                 std::strerror(written < 0 ? write_error : EIO));
    return false;
  }
  return true;
}

}  // namespace

int CaptureCommand(int argc, char **argv) {
  const char *file = nullptr;
  bool append = false;
  int i = 1;
  for (; i < argc; ++i) {
    const LaunchArg kind = TakeLaunchArg(argv, &i);
    if (kind == LaunchArg::kEndOfOptions) break;
    if (kind == LaunchArg::kHelp) {
      CaptureUsage(stdout);
      return 0;
    }
    const char *arg = argv[i];
    if (std::strcmp(arg, "-a") == 0 || std::strcmp(arg, "--append") == 0) {
      append = true;
    } else if (std::strcmp(arg, "-w") == 0 || std::strcmp(arg, "--port") == 0) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "loopfast capture: %s needs a value\n", arg);
        return 2;
      }
      const char *value = argv[++i];
      if (arg[1] == 'w') {
        file = value;
      } else if (!ValidPortList(value)) {
        std::fprintf(stderr, "loopfast capture: --port '%s' is not a port list\n", value);
        return 2;
      } else {
        AppendList("LOOPFAST_CAPTURE_PORTS", value);
      }
    } else if (ApplyRunOption("loopfast capture", argc, argv, &i)) {
      continue;
    } else if (arg[0] == '-') {
      std::fprintf(stderr, "loopfast capture: unknown option '%s'\n", arg);
      CaptureUsage(stderr);
      return 2;
    } else {
      break;  // the program, without "--"
    }
  }
  if (file == nullptr || *file == '\0' || i >= argc) {
    if (file == nullptr || *file == '\0')
      std::fprintf(stderr, "loopfast capture: -w FILE is required\n");
    CaptureUsage(stderr);
    return 2;
  }
  if (!CreateCaptureFile(file, append)) return 1;
  // Absolute, so a program that changes directory still appends to the same file.
  char absolute[PATH_MAX];
  setenv("LOOPFAST_CAPTURE", realpath(file, absolute) != nullptr ? absolute : file, 1);
  return ExecWithFastPath("loopfast capture", argv + i);
}

}  // namespace loopfast::tool
