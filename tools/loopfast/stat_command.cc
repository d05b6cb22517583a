// `loopfast stat`: the host's opted-in sockets, in the style of ss. Each process that uses
// loopfast keeps a statistics registry (src/stat/registry_layout.h) that this command finds
// through /proc/<pid>/fd and copies without stopping or attaching to the process; the kernel's
// socket table (sock_diag) adds what each connection carried on kernel TCP. Two ends found in
// view are paired by their addresses, which shows the bytes still in each ring.
#include <dirent.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/escape.h"
#include "commands.h"
#include "stat/registry_reader.h"
#include "stat_kernel_sockets.h"

namespace loopfast::tool {
namespace {

struct Options {
  bool json = false;
  bool watch = false;
  double interval_s = 1.0;
  long count = -1;         // refreshes when watching; -1: until interrupted
  std::vector<long> pids;  // only these processes (empty: all)
};

// One socket of one process, with what the kernel and its peer's registry add.
struct Row {
  pid_t pid = 0;
  std::string program;
  stat::SlotView slot;
  const KernelSocket *kernel = nullptr;
  const Row *peer = nullptr;
};

struct Snapshot {
  std::vector<Row> rows;
  std::vector<Row> sessions;
  std::map<uint64_t, KernelSocket> kernel;
  int hidden_processes = 0;  // registries we may not open (another user's processes)
};

// The process's name as it set it (any bytes but NUL, up to 15), without the newline the
// kernel adds: a newline or ESC in the name itself is kept, for the printers to escape.
std::string ProgramOf(pid_t pid) {
  FILE *file = std::fopen(("/proc/" + std::to_string(pid) + "/comm").c_str(), "r");
  if (file == nullptr) return "?";
  char name[64];
  const size_t length = std::fread(name, 1, sizeof name, file);
  std::fclose(file);
  std::string program(name, length);
  if (!program.empty() && program.back() == '\n') program.pop_back();
  return program;
}

bool IsNumber(const char *text) {
  if (*text == '\0') return false;
  for (; *text != '\0'; ++text) {
    if (*text < '0' || *text > '9') return false;
  }
  return true;
}

// Every registry in view: /proc/<pid>/fd/<n> whose link names the registry memfd.
void ReadRegistries(const Options &options, Snapshot *snapshot) {
  const std::string wanted = std::string("/memfd:") + stat::kRegistryMemfdName + " (deleted)";
  DIR *proc = opendir("/proc");
  if (proc == nullptr) return;
  while (const dirent *process = readdir(proc)) {
    if (!IsNumber(process->d_name)) continue;
    const pid_t pid = static_cast<pid_t>(std::atol(process->d_name));
    if (!options.pids.empty() &&
        std::find(options.pids.begin(), options.pids.end(), pid) == options.pids.end()) {
      continue;
    }
    const std::string fd_dir = std::string("/proc/") + process->d_name + "/fd";
    DIR *fds = opendir(fd_dir.c_str());
    if (fds == nullptr) {
      // Another user's process: its descriptors are closed to us (unless we are root).
      if (errno == EACCES) ++snapshot->hidden_processes;
      continue;
    }
    while (const dirent *fd = readdir(fds)) {
      if (!IsNumber(fd->d_name)) continue;
      const std::string path = fd_dir + "/" + fd->d_name;
      char target[128];
      const ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
      if (n <= 0 || std::string(target, static_cast<size_t>(n)) != wanted) continue;
      Result<stat::RegistryView> view = stat::ReadRegistryFile(path.c_str());
      // A registry whose header names another pid was inherited (fork) and not yet replaced.
      if (!view.ok() || view.value().pid != pid) continue;
      const std::string program = ProgramOf(pid);
      for (stat::SlotView &slot : view.value().sockets) {
        Row row;
        row.pid = pid;
        row.program = program;
        const bool session = slot.state == stat::SlotState::kSession;
        row.slot = std::move(slot);
        (session ? snapshot->sessions : snapshot->rows).push_back(std::move(row));
      }
      break;
    }
    closedir(fds);
  }
  closedir(proc);
}

Snapshot Take(const Options &options) {
  Snapshot snapshot;
  ReadRegistries(options, &snapshot);
  snapshot.kernel = ListKernelTcpSockets();
  for (Row &row : snapshot.rows) {
    auto found = snapshot.kernel.find(row.slot.socket_inode);
    if (found != snapshot.kernel.end()) row.kernel = &found->second;
  }
  // Pair connections: the row whose local end is this row's peer end, and the other way.
  std::map<std::pair<std::string, std::string>, const Row *> by_ends;
  for (const Row &row : snapshot.rows) {
    if (!row.slot.local.empty() && !row.slot.peer.empty()) {
      by_ends[{row.slot.local, row.slot.peer}] = &row;
    }
  }
  for (Row &row : snapshot.rows) {
    if (row.slot.local.empty() || row.slot.peer.empty()) continue;
    auto found = by_ends.find({row.slot.peer, row.slot.local});
    if (found != by_ends.end()) row.peer = found->second;
  }
  return snapshot;
}

const char *StateName(stat::SlotState state) {
  switch (state) {
    case stat::SlotState::kListener:
      return "listening";
    case stat::SlotState::kPending:
      return "pending";
    case stat::SlotState::kFast:
      return "fast";
    case stat::SlotState::kKernel:
      return "kernel";
    case stat::SlotState::kSession:
      return "session";
    default:
      return "free";
  }
}

const char *RoleName(stat::Role role) {
  switch (role) {
    case stat::Role::kConnecting:
      return "connecting";
    case stat::Role::kAccepting:
      return "accepting";
    default:
      return "none";
  }
}

bool Fast(const Row &row) { return row.slot.state == stat::SlotState::kFast; }

// Bytes this end wrote that its peer has not read yet (both ends in view and fast).
bool InRingToPeer(const Row &row, uint64_t *bytes) {
  if (!Fast(row) || row.peer == nullptr || !Fast(*row.peer)) return false;
  const uint64_t sent = row.slot.bytes_sent, read = row.peer->slot.bytes_received;
  *bytes = sent > read ? sent - read : 0;
  return true;
}

std::string JsonOrNull(bool present, const std::string &json) { return present ? json : "null"; }

// Names and addresses come from other processes (/proc/<pid>/comm, their registries) and may
// hold anything: JsonQuoted keeps the document valid UTF-8 with every control escaped.
void PrintJson(const Snapshot &snapshot) {
  std::printf("{\"schema\":\"loopfast-stat/1\",\"time\":%ld,\"hidden_processes\":%d,\"sockets\":[",
              static_cast<long>(time(nullptr)), snapshot.hidden_processes);
  bool first = true;
  for (const Row &row : snapshot.rows) {
    const stat::SlotView &slot = row.slot;
    const bool listener = slot.state == stat::SlotState::kListener;
    uint64_t to_peer = 0, from_peer = 0;
    const bool has_to = InRingToPeer(row, &to_peer);
    const bool has_from = row.peer != nullptr && InRingToPeer(*row.peer, &from_peer);
    std::printf(
        "%s\n{\"pid\":%d,\"program\":%s,\"fd\":%d,\"state\":\"%s\",\"role\":\"%s\","
        "\"family\":\"%s\",\"local\":%s,\"peer\":%s,\"reason\":%s,"
        "\"bytes_sent\":%llu,\"bytes_received\":%llu,"
        "\"kernel_bytes_sent\":%s,\"kernel_bytes_received\":%s,"
        "\"asleep\":{\"receive\":%s,\"send\":%s},\"waits\":{\"spun\":%llu,\"slept\":%llu},"
        "\"peer_pid\":%s,\"peer_program\":%s,\"peer_fd\":%s,"
        "\"in_ring_to_peer\":%s,\"in_ring_from_peer\":%s}",
        first ? "" : ",", static_cast<int>(row.pid), JsonQuoted(row.program).c_str(), slot.fd,
        StateName(slot.state), listener ? "listening" : RoleName(slot.role),
        slot.family == AF_INET6 ? "ipv6" : "ipv4",
        JsonOrNull(!slot.local.empty(), JsonQuoted(slot.local)).c_str(),
        JsonOrNull(!listener && !slot.peer.empty(), JsonQuoted(slot.peer)).c_str(),
        JsonOrNull(!slot.reason.empty(), JsonQuoted(slot.reason)).c_str(),
        static_cast<unsigned long long>(slot.bytes_sent),
        static_cast<unsigned long long>(slot.bytes_received),
        JsonOrNull(row.kernel != nullptr, row.kernel ? std::to_string(row.kernel->bytes_sent) : "")
            .c_str(),
        JsonOrNull(row.kernel != nullptr,
                   row.kernel ? std::to_string(row.kernel->bytes_received) : "")
            .c_str(),
        slot.asleep_to_receive ? "true" : "false", slot.asleep_to_send ? "true" : "false",
        static_cast<unsigned long long>(slot.waits_spun),
        static_cast<unsigned long long>(slot.waits_slept),
        JsonOrNull(row.peer != nullptr, row.peer ? std::to_string(row.peer->pid) : "").c_str(),
        JsonOrNull(row.peer != nullptr, row.peer ? JsonQuoted(row.peer->program) : "").c_str(),
        JsonOrNull(row.peer != nullptr, row.peer ? std::to_string(row.peer->slot.fd) : "").c_str(),
        JsonOrNull(has_to, std::to_string(to_peer)).c_str(),
        JsonOrNull(has_from, std::to_string(from_peer)).c_str());
    first = false;
  }
  std::printf("\n],\"sessions\":[");
  first = true;
  for (const Row &row : snapshot.sessions) {
    const stat::SlotView &slot = row.slot;
    const std::string peer_program = slot.peer_pid > 0 ? ProgramOf(slot.peer_pid) : "?";
    std::printf(
        "%s\n{\"pid\":%d,\"program\":%s,\"side\":\"%s\",\"peer_pid\":%d,"
        "\"peer_program\":%s,\"peer_uid\":%u,\"port\":%d,\"connections\":%u,"
        "\"arena_bytes_in_use\":%llu}",
        first ? "" : ",", static_cast<int>(row.pid), JsonQuoted(row.program).c_str(),
        RoleName(slot.role), slot.peer_pid,
        JsonOrNull(peer_program != "?", JsonQuoted(peer_program)).c_str(), slot.peer_uid, slot.port,
        slot.connections, static_cast<unsigned long long>(slot.arena_bytes_in_use));
    first = false;
  }
  std::printf("\n]}\n");
}

std::string Bytes(uint64_t bytes) {
  char text[32];
  if (bytes < 10000) {
    std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(bytes));
  } else if (bytes < 10000000) {
    std::snprintf(text, sizeof text, "%.1fK", double(bytes) / 1e3);
  } else if (bytes < 10000000000ull) {
    std::snprintf(text, sizeof text, "%.1fM", double(bytes) / 1e6);
  } else {
    std::snprintf(text, sizeof text, "%.1fG", double(bytes) / 1e9);
  }
  return text;
}

// Text for the terminal: what other processes wrote (their names, their registries) reaches
// it escaped, so a process named "\e[2J" cannot clear or retitle the reader's terminal.
void PrintTable(const Snapshot &snapshot) {
  std::printf("%-10s %-22s %-22s %-24s %8s %8s %8s %-6s %13s %s\n", "State", "Local", "Peer",
              "Process", "Sent", "Recv", "InRing", "Asleep", "Spun/Slept", "Peer process / reason");
  for (const Row &row : snapshot.rows) {
    const stat::SlotView &slot = row.slot;
    const std::string local = EscapeText(slot.local), peer = EscapeText(slot.peer);
    const std::string process =
        EscapeText(row.program) + "[" + std::to_string(row.pid) + "]/" + std::to_string(slot.fd);
    const bool fast = Fast(row);
    uint64_t in_ring = 0;
    const bool has_ring = InRingToPeer(row, &in_ring);
    std::string asleep = slot.asleep_to_receive ? "recv" : "";
    if (slot.asleep_to_send) asleep += asleep.empty() ? "send" : "+send";
    std::string tail;
    if (row.peer != nullptr) {
      tail = EscapeText(row.peer->program) + "[" + std::to_string(row.peer->pid) + "]/" +
             std::to_string(row.peer->slot.fd);
    }
    if (!slot.reason.empty()) {
      tail += (tail.empty() ? "" : "  ") + ("(" + EscapeText(slot.reason) + ")");
    }
    if (slot.state == stat::SlotState::kListener && slot.reason.empty()) tail = "fast-capable";
    // How its blocking calls' waits ended: answered while spinning / after sleeping.
    const std::string waits = Bytes(slot.waits_spun) + "/" + Bytes(slot.waits_slept);
    std::printf("%-10s %-22s %-22s %-24s %8s %8s %8s %-6s %13s %s\n", StateName(slot.state),
                local.empty() ? "?" : local.c_str(),
                slot.state == stat::SlotState::kListener ? "*"
                : peer.empty()                           ? "?"
                                                         : peer.c_str(),
                process.c_str(), fast ? Bytes(slot.bytes_sent).c_str() : "-",
                fast ? Bytes(slot.bytes_received).c_str() : "-",
                has_ring ? Bytes(in_ring).c_str() : "-", asleep.empty() ? "-" : asleep.c_str(),
                fast ? waits.c_str() : "-", tail.c_str());
  }
  if (snapshot.rows.empty()) std::printf("(no opted-in sockets in view)\n");
  if (!snapshot.sessions.empty()) {
    // One row per session: this process, the one at the other end (a client sees the
    // listener's first process), the connections it carries here, the arena in use.
    std::printf("\n%-10s %-24s %-30s %6s %6s %10s\n", "Session", "Process", "Peer process", "Port",
                "Conns", "ArenaUsed");
    for (const Row &row : snapshot.sessions) {
      const stat::SlotView &slot = row.slot;
      const std::string process = EscapeText(row.program) + "[" + std::to_string(row.pid) + "]";
      const std::string peer = EscapeText(ProgramOf(slot.peer_pid)) + "[" +
                               std::to_string(slot.peer_pid) + "] uid " +
                               std::to_string(slot.peer_uid);
      std::printf("%-10s %-24s %-30s %6d %6u %10s\n", RoleName(slot.role), process.c_str(),
                  peer.c_str(), slot.port, slot.connections,
                  Bytes(slot.arena_bytes_in_use).c_str());
    }
  }
  if (snapshot.hidden_processes > 0) {
    std::printf("%d processes of other users not shown (run as root to see them)\n",
                snapshot.hidden_processes);
  }
}

void StatUsage(FILE *out) {
  std::fprintf(out,
               "usage: loopfast stat [--json] [-w|--watch [SECONDS]] [--count N] [--pid PID]...\n"
               "\n"
               "The host's opted-in TCP sockets: fast-path connections (both ends' processes,\n"
               "bytes each way, bytes still in each ring, who sleeps), opted-in listeners, and\n"
               "opted-in connections on kernel TCP with the reason; then each session (the\n"
               "process at the other end, its connections, the shared memory in use). Your own\n"
               "processes'; root sees every user's. Reads the programs' statistics without\n"
               "stopping them.\n"
               "\n"
               "  --json          one JSON document (schema loopfast-stat/1, docs/stat.md)\n"
               "  -w, --watch [S] refresh every S seconds (1), until interrupted or --count\n"
               "  --count N       with --watch: stop after N refreshes\n"
               "  --pid PID       only this process's sockets (repeat for more)\n"
               "  -h, --help      this text\n");
}

}  // namespace

int StatCommand(int argc, char **argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    auto number = [&](long *out) {
      if (i + 1 >= argc) return false;
      char *end = nullptr;
      *out = std::strtol(argv[++i], &end, 10);
      return *end == '\0' && *out >= 0;
    };
    if (std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0) {
      StatUsage(stdout);
      return 0;
    } else if (std::strcmp(arg, "--json") == 0) {
      options.json = true;
    } else if (std::strcmp(arg, "-w") == 0 || std::strcmp(arg, "--watch") == 0) {
      options.watch = true;
      if (i + 1 < argc && argv[i + 1][0] != '-') {
        char *end = nullptr;
        options.interval_s = std::strtod(argv[++i], &end);
        if (*end != '\0' || options.interval_s <= 0) {
          std::fprintf(stderr, "loopfast stat: bad interval '%s'\n", argv[i]);
          return 2;
        }
      }
    } else if (std::strcmp(arg, "--count") == 0) {
      if (!number(&options.count)) {
        std::fprintf(stderr, "loopfast stat: --count needs a number\n");
        return 2;
      }
    } else if (std::strcmp(arg, "--pid") == 0) {
      long pid = 0;
      if (!number(&pid) || pid == 0) {
        std::fprintf(stderr, "loopfast stat: --pid needs a process id\n");
        return 2;
      }
      options.pids.push_back(pid);
    } else {
      std::fprintf(stderr, "loopfast stat: unknown option '%s'\n", arg);
      StatUsage(stderr);
      return 2;
    }
  }
  for (long round = 0;; ++round) {
    const Snapshot snapshot = Take(options);
    if (options.watch && !options.json && isatty(STDOUT_FILENO)) std::printf("\033[H\033[2J");
    if (options.json) {
      PrintJson(snapshot);
    } else {
      PrintTable(snapshot);
    }
    std::fflush(stdout);
    if (!options.watch || (options.count >= 0 && round + 1 >= options.count)) break;
    struct timespec pause = {
        static_cast<time_t>(options.interval_s),
        static_cast<long>((options.interval_s - std::floor(options.interval_s)) * 1e9)};
    nanosleep(&pause, nullptr);
  }
  return 0;
}

}  // namespace loopfast::tool
