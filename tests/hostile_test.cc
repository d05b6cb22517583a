// The hostile-local-process campaign (SPEC guarantee 3, issue 6 item 3, issue 14): a victim
// connection (client and server in separate processes, fast path, streaming a checked pattern
// both ways) and attacker processes, of the victim's user or of another one, that try to find
// its session's shared memory (/dev/shm, /proc/<victim>/fd, map_files, maps, mem, pidfd_getfd,
// process_vm_readv); a third user against a pair of two other users (sessions pair any two
// users); and a third user who binds a port's session channel ("\0loopfast.v2.<port>") before
// the listener does, hoping to be sent the session's memory. After each attack the victim's
// streams must be byte-exact. Short form by default; long form:
//   LOOPFAST_CAMPAIGN_ATTACKS=100000 build/tests/e2e_tests --gtest_filter='HostileTest.*'
// Every process is a fork of the test; victims and attackers drop root (setuid) before doing
// anything, and mark themselves dumpable again (PR_SET_DUMPABLE), as a program its user started
// with exec is: otherwise the kernel would hide their /proc entries from their own user and the
// same-user attacks would be tested against a stronger victim than a real one.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "session/arena_layout.h"
#include "session/messages.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

constexpr uid_t kVictimUid = 65534;   // nobody
constexpr uid_t kOtherUid = 65533;    // another unprivileged user
constexpr uid_t kThirdUid = 65532;    // a third one
constexpr size_t kChunk = 16 * 1024;  // the victim's stream moves in chunks of this size
constexpr uint64_t kUpSeed = 7001, kDownSeed = 7002;

// How many attack attempts each test makes: LOOPFAST_CAMPAIGN_ATTACKS, or the short form.
long Attacks(long short_form) {
  const char *value = std::getenv("LOOPFAST_CAMPAIGN_ATTACKS");
  if (value == nullptr || *value == '\0') return short_form;
  const long n = std::atol(value);
  return n > 0 ? n : short_form;
}

bool Fast(int fd) { return ObservedPath(fd) == "fast"; }

// The start address of the first loopfast shared-memory mapping in `pid`, or 0.
uintptr_t MemfdMapping(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("memfd:loopfast-session (deleted)") != std::string::npos)
      return std::stoull(line, nullptr, 16);
  }
  return 0;
}

// ---- the victim: one streaming fast connection, and a server that keeps accepting ----

// Victim exit codes.
constexpr int kOk = 0, kSetupFailed = 10, kStreamData = 11, kStreamNotFast = 12, kExtraData = 13,
              kExtraNotFast = 14, kStreamTimeout = 15;

// Checked extra connection, server side: seed + kChunk of its pattern, echoed; path checked.
int ServeExtra(int fd) {
  Bound(fd, 5000);
  uint64_t seed = 0;
  std::vector<uint8_t> buffer(kChunk);
  bool ok = ReadAll(fd, &seed, sizeof seed) && ReadAll(fd, buffer.data(), kChunk) &&
            buffer == Pattern(seed, 0, kChunk) && WriteAll(fd, buffer.data(), kChunk);
  char end;
  const bool fast = ok && Fast(fd);
  ok = ok && recv(fd, &end, 1, 0) == 0;
  close(fd);
  if (!ok) return kExtraData;
  return fast ? kOk : kExtraNotFast;
}

// Checked extra connection, client side.
int ClientExtra(int fd, uint64_t seed) {
  Bound(fd, 5000);
  const std::vector<uint8_t> data = Pattern(seed, 0, kChunk);
  std::vector<uint8_t> echoed(kChunk);
  const bool ok = WriteAll(fd, &seed, sizeof seed) && WriteAll(fd, data.data(), kChunk) &&
                  ReadAll(fd, echoed.data(), kChunk);
  const bool fast = ok && Fast(fd);
  close(fd);
  if (!ok || echoed != data) return kExtraData;
  return fast ? kOk : kExtraNotFast;
}

struct Victim {
  pid_t server = -1, client = -1;
  uint16_t port = 0;
  int32_t client_fd_number = -1;  // the client's TCP descriptor number, in its process
  int stop_write = -1;            // closing it ends the stream (and the server's accepting)
  int stop_read = -1;
  uintptr_t client_memory = 0, server_memory = 0;  // where the shared memory is mapped
  LeftoverFiles leftovers;                         // what was there before it started
};

// Starts the victim: its server as `server_uid`, its client as `client_uid`. The server accepts
// the streaming connection, then keeps accepting checked extra connections until stopped.
void StartVictim(uid_t server_uid, uid_t client_uid, Victim *victim) {
  int info[2], stop[2];
  ASSERT_EQ(pipe(info), 0);
  ASSERT_EQ(pipe(stop), 0);
  victim->server = Spawn([&] {
    close(info[0]);
    close(stop[1]);
    if (!BecomeUser(server_uid)) return kSetupFailed;
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in at = Loopback4(0);
    if (listener < 0 || loopfast_set_fast_path(listener, 1) != 0 ||
        bind(listener, reinterpret_cast<const sockaddr *>(&at), sizeof at) != 0 ||
        listen(listener, 128) != 0) {
      return kSetupFailed;
    }
    sockaddr_in bound{};
    socklen_t length = sizeof bound;
    getsockname(listener, reinterpret_cast<sockaddr *>(&bound), &length);
    const uint16_t port = ntohs(bound.sin_port);
    if (write(info[1], &port, sizeof port) != sizeof port) return kSetupFailed;
    Bound(listener, 10000);
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return kSetupFailed;
    Bound(fd, 10000);
    std::atomic<int> stream_result{kOk};
    std::thread stream([&] {
      std::vector<uint8_t> buffer(kChunk);
      for (uint64_t offset = 0;; offset += kChunk) {
        const ssize_t n = recv(fd, buffer.data(), 1, MSG_PEEK);
        if (n == 0) break;  // the client ended the stream
        if (n < 0) {
          stream_result = errno == EAGAIN ? kStreamTimeout : kStreamData;
          return;
        }
        if (!ReadAll(fd, buffer.data(), kChunk) || buffer != Pattern(kUpSeed, offset, kChunk)) {
          stream_result = kStreamData;
          return;
        }
        const std::vector<uint8_t> down = Pattern(kDownSeed, offset, kChunk);
        if (!WriteAll(fd, down.data(), kChunk)) {
          stream_result = kStreamData;
          return;
        }
        if ((offset / kChunk) % 64 == 0 && !Fast(fd)) {
          stream_result = kStreamNotFast;
          return;
        }
      }
      if (!Fast(fd)) stream_result = kStreamNotFast;
    });
    int extra_result = kOk;
    Bound(listener, 100);
    while (!Stopped(stop[0])) {
      const int extra = accept(listener, nullptr, nullptr);
      if (extra < 0) continue;  // EAGAIN every 100 ms: look at the stop pipe
      const int result = ServeExtra(extra);
      if (result != kOk && extra_result == kOk) extra_result = result;
    }
    stream.join();
    close(fd);
    return stream_result != kOk ? int(stream_result) : extra_result;
  });
  close(info[1]);
  ASSERT_EQ(read(info[0], &victim->port, sizeof victim->port), ssize_t(sizeof victim->port))
      << "victim server did not start";
  int client_info[2];
  ASSERT_EQ(pipe(client_info), 0);
  const uint16_t port = victim->port;
  victim->client = Spawn([&] {
    close(client_info[0]);
    close(stop[1]);
    if (!BecomeUser(client_uid)) return kSetupFailed;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in to = Loopback4(port);
    if (fd < 0 || loopfast_set_fast_path(fd, 1) != 0) return kSetupFailed;
    Bound(fd, 10000);
    if (connect(fd, reinterpret_cast<const sockaddr *>(&to), sizeof to) != 0) return kSetupFailed;
    std::vector<uint8_t> buffer(kChunk);
    uint64_t offset = 0;
    bool told = false;
    for (;; offset += kChunk) {
      const std::vector<uint8_t> up = Pattern(kUpSeed, offset, kChunk);
      if (!WriteAll(fd, up.data(), kChunk)) return errno == EAGAIN ? kStreamTimeout : kStreamData;
      if (!ReadAll(fd, buffer.data(), kChunk)) {
        return errno == EAGAIN ? kStreamTimeout : kStreamData;
      }
      if (buffer != Pattern(kDownSeed, offset, kChunk)) return kStreamData;
      if ((offset / kChunk) % 64 == 0 && !Fast(fd)) return kStreamNotFast;
      if (!told) {  // settled and fast: the connection (and its memory) exists now
        const int32_t number = fd;
        if (write(client_info[1], &number, sizeof number) != sizeof number) return kSetupFailed;
        told = true;
      }
      if (Stopped(stop[0])) break;
      if ((offset / kChunk) % 16 == 0) usleep(1000);  // leave the attackers some CPU
    }
    const bool fast = Fast(fd);
    shutdown(fd, SHUT_WR);
    char end;
    const bool clean = recv(fd, &end, 1, 0) == 0;
    close(fd);
    std::fprintf(stderr, "[ info     ] victim stream: %llu bytes each way, checked\n",
                 static_cast<unsigned long long>(offset + kChunk));
    if (!clean) return kStreamData;
    return fast ? kOk : kStreamNotFast;
  });
  close(client_info[1]);
  ASSERT_EQ(read(client_info[0], &victim->client_fd_number, sizeof(int32_t)),
            ssize_t(sizeof(int32_t)))
      << "victim client did not get going";
  close(client_info[0]);
  victim->stop_write = stop[1];
  victim->stop_read = stop[0];
  victim->client_memory = MemfdMapping(victim->client);
  victim->server_memory = MemfdMapping(victim->server);
  ASSERT_NE(victim->client_memory, 0u) << "the victim client maps no loopfast memory";
  ASSERT_NE(victim->server_memory, 0u) << "the victim server maps no loopfast memory";
}

// Stops the victim; both ends must report an intact, fast stream and intact extras.
void StopVictim(Victim *victim) {
  close(victim->stop_write);
  const int client = Reap(victim->client, 20000);
  const int server = Reap(victim->server, 20000);
  close(victim->stop_read);
  EXPECT_EQ(client, kOk) << "victim client (11 data, 12 not fast, 15 timed out)";
  EXPECT_EQ(server, kOk) << "victim server (11 data, 12 not fast, 13/14 an extra connection)";
  EXPECT_EQ(victim->leftovers.New(), std::vector<std::string>{});
}

// ---- attack 1 and 3: finding, opening, mapping, reading the shared memory ----

struct Reach {
  long rounds = 0;
  long shm_opened = 0, shm_loopfast = 0;  // /dev/shm entries opened / named loopfast
  long fd_opened = 0, fd_memfd = 0;       // /proc/<pid>/fd/* opened / memfd ones
  long map_files_opened = 0, map_files_mapped = 0, map_files_memfd = 0;
  long maps_readable = 0, maps_memfd_lines = 0;  // /proc/<pid>/maps readable, memfd lines seen
  long mem_read = 0;                             // /proc/<pid>/mem read at the shared memory
  long vm_readv_ok = 0, vm_readv_eperm = 0, vm_readv_other = 0;
  long vm_writev_ok = 0;
  long getfd_ok = 0;      // pidfd_getfd took a descriptor
  char opened[512] = {};  // what /proc/<pid>/fd/* opened (first seen)
};

std::string Describe(const Reach &r) {
  char text[2048];
  std::snprintf(text, sizeof text,
                "rounds=%ld dev_shm_opened=%ld dev_shm_loopfast=%ld proc_fd_opened=%ld "
                "proc_fd_memfd=%ld map_files_opened=%ld map_files_mapped=%ld "
                "map_files_memfd=%ld maps_readable=%ld maps_memfd_lines=%ld mem_read=%ld "
                "vm_readv_ok=%ld vm_readv_eperm=%ld vm_readv_other=%ld vm_writev_ok=%ld "
                "pidfd_getfd_ok=%ld proc_fd_opened_targets=[%s]",
                r.rounds, r.shm_opened, r.shm_loopfast, r.fd_opened, r.fd_memfd, r.map_files_opened,
                r.map_files_mapped, r.map_files_memfd, r.maps_readable, r.maps_memfd_lines,
                r.mem_read, r.vm_readv_ok, r.vm_readv_eperm, r.vm_readv_other, r.vm_writev_ok,
                r.getfd_ok, r.opened);
  return text;
}

std::vector<std::string> Entries(const std::string &dir) {
  std::vector<std::string> names;
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent *entry = readdir(d)) {
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) {
      names.push_back(entry->d_name);
    }
  }
  closedir(d);
  return names;
}

std::string LinkOf(const std::string &path) {
  char target[512];
  const ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, size_t(n)) : std::string();
}

// Any memfd but the statistics registry (docs/stat.md: it is meant to be read by the same
// user and holds no ring) counts as the connection's memory.
bool IsRingMemfd(const std::string &link) {
  return link.find("memfd:") != std::string::npos &&
         link.find("memfd:loopfast-stat (deleted)") == std::string::npos;
}

// One round of looking for the victim's memory from the attacker's process. `shm_before`:
// the /dev/shm names there before the victim started (sorted), which are not its doing (a
// user's own files named loopfast-something).
void ScanOnce(pid_t pid, uintptr_t memory, bool try_write,
              const std::vector<std::string> &shm_before, Reach *r) {
  for (const std::string &name : Entries("/dev/shm")) {
    const int fd = open(("/dev/shm/" + name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      ++r->shm_opened;
      close(fd);
    }
    if (name.find("loopfast") != std::string::npos &&
        !std::binary_search(shm_before.begin(), shm_before.end(), name)) {
      ++r->shm_loopfast;
    }
  }
  const std::string proc = "/proc/" + std::to_string(pid);
  for (const std::string &name : Entries(proc + "/fd")) {
    const std::string path = proc + "/fd/" + name;
    const std::string target = LinkOf(path);
    // Open read-only and non-blocking: never take bytes from a pipe or socket of the victim.
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd >= 0) {
      ++r->fd_opened;
      if (IsRingMemfd(target)) ++r->fd_memfd;
      const std::string seen = name + "->" + target + " ";
      if (std::strstr(r->opened, seen.c_str()) == nullptr &&
          std::strlen(r->opened) + seen.size() < sizeof r->opened) {
        std::strcat(r->opened, seen.c_str());
      }
      close(fd);
    }
  }
  for (const std::string &name : Entries(proc + "/map_files")) {
    const std::string path = proc + "/map_files/" + name;
    const bool memfd = IsRingMemfd(LinkOf(path));
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ++r->map_files_opened;
    if (memfd) ++r->map_files_memfd;
    void *map = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      ++r->map_files_mapped;
      munmap(map, 4096);
    }
    close(fd);
  }
  {
    std::ifstream maps(proc + "/maps");
    std::string line;
    bool any = false;
    while (std::getline(maps, line)) {
      any = true;
      if (IsRingMemfd(line)) ++r->maps_memfd_lines;
    }
    if (any) ++r->maps_readable;
  }
  {
    const int fd = open((proc + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    char byte;
    if (fd >= 0 && pread(fd, &byte, 1, off_t(memory)) == 1) ++r->mem_read;
    if (fd >= 0) close(fd);
  }
  {
    char buffer[256];
    iovec local = {buffer, sizeof buffer};
    iovec remote = {reinterpret_cast<void *>(memory), sizeof buffer};
    const ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n > 0) {
      ++r->vm_readv_ok;
    } else if (errno == EPERM) {
      ++r->vm_readv_eperm;
    } else {
      ++r->vm_readv_other;
    }
    if (try_write) {
      // Only for another user: must fail. (A same-user process that may ptrace can write any
      // of a program's memory; that is outside the guarantee and would only break the victim.)
      char zero = 0;
      iovec one = {&zero, 0};
      iovec target = {reinterpret_cast<void *>(memory + 4096 * 4), 0};
      one.iov_len = target.iov_len = 1;
      if (n <= 0 && process_vm_writev(pid, &one, 1, &target, 1, 0) == 1) ++r->vm_writev_ok;
    }
  }
  {
    const int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd >= 0) {
      for (int number = 0; number < 16; ++number) {
        const int stolen = int(syscall(SYS_pidfd_getfd, pidfd, number, 0));
        if (stolen >= 0) {
          ++r->getfd_ok;  // taken and closed at once: never used
          close(stolen);
        }
      }
      close(pidfd);
    }
  }
  ++r->rounds;
}

// Runs an attacker as `attacker_uid` against a victim (server as `server_uid`, client as
// `client_uid`) that scans `rounds` times (both victim processes each round); returns what it
// reached.
void FindTheMemory(uid_t server_uid, uid_t client_uid, uid_t attacker_uid, long rounds,
                   Reach *reach) {
  std::vector<std::string> shm_before = Entries("/dev/shm");
  std::sort(shm_before.begin(), shm_before.end());
  Victim victim;
  ASSERT_NO_FATAL_FAILURE(StartVictim(server_uid, client_uid, &victim));
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const bool other_user = server_uid != attacker_uid && client_uid != attacker_uid;
  const int64_t start = NowMs();
  const pid_t attacker = Spawn([&] {
    close(report[0]);
    if (!BecomeUser(attacker_uid)) return 10;
    Reach r;
    const int64_t deadline = NowMs() + 4 * 60 * 1000;
    for (long i = 0; i < rounds && NowMs() < deadline; ++i) {
      ScanOnce(i % 2 == 0 ? victim.client : victim.server,
               i % 2 == 0 ? victim.client_memory : victim.server_memory, other_user, shm_before,
               &r);
    }
    if (write(report[1], &r, sizeof r) != sizeof r) return 11;
    return 0;
  });
  close(report[1]);
  EXPECT_EQ(Reap(attacker, 6 * 60 * 1000), 0) << "attacker could not run";
  ASSERT_EQ(read(report[0], reach, sizeof *reach), ssize_t(sizeof *reach));
  close(report[0]);
  // The victim's memory is still there (the attacks were aimed at something).
  EXPECT_NE(MemfdMapping(victim.client), 0u);
  ASSERT_NO_FATAL_FAILURE(StopVictim(&victim));
  std::printf("[ info     ] %s user, %ld ms: %s\n", other_user ? "another" : "the same",
              long(NowMs() - start), Describe(*reach).c_str());
  ::testing::Test::RecordProperty("reach", Describe(*reach));
  // Nothing named the memory or opened it, whoever the attacker is.
  EXPECT_EQ(reach->shm_loopfast, 0);
  EXPECT_EQ(reach->fd_memfd, 0) << "a victim holds a descriptor for the shared memory";
  EXPECT_EQ(reach->map_files_memfd, 0) << "the shared memory was opened through map_files";
  EXPECT_EQ(reach->map_files_opened, 0) << "map_files opened without CAP_SYS_ADMIN";
  EXPECT_EQ(reach->map_files_mapped, 0);
  if (other_user) {
    EXPECT_EQ(reach->fd_opened, 0);
    EXPECT_EQ(reach->maps_readable, 0);
    EXPECT_EQ(reach->mem_read, 0);
    EXPECT_EQ(reach->vm_readv_ok, 0) << "another user read the victim's memory";
    EXPECT_EQ(reach->vm_readv_eperm, reach->rounds) << "expected EPERM every time";
    EXPECT_EQ(reach->vm_writev_ok, 0) << "another user wrote the victim's memory";
    EXPECT_EQ(reach->getfd_ok, 0) << "another user took a victim's descriptor";
  }
}

std::string PtraceScope() {
  std::ifstream scope("/proc/sys/kernel/yama/ptrace_scope");
  std::string value;
  if (!(scope >> value)) return "absent (no Yama: a same-user process may ptrace)";
  return value;
}

// Attack 1+3, another user: nothing reachable at all (EPERM / EACCES everywhere).
TEST(HostileTest, AnotherUserCannotFindReadOrMapTheSharedMemory) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as other users";
  Reach reach;
  FindTheMemory(kVictimUid, kVictimUid, kOtherUid, Attacks(3000), &reach);
}

// Attack 1+3, the same user: no file, descriptor or map_files entry gives the memory. What a
// process that may ptrace the victim can read (/proc/<pid>/mem, process_vm_readv, pidfd_getfd)
// is recorded, not failed: it reads every byte of a program, fast path or not.
TEST(HostileTest, SameUserCannotOpenOrMapTheSharedMemory) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as another user";
  Reach reach;
  FindTheMemory(kVictimUid, kVictimUid, kVictimUid, Attacks(3000), &reach);
  std::printf(
      "[ info     ] yama ptrace_scope: %s; same-user ptrace-class access: mem_read=%ld "
      "process_vm_readv=%ld pidfd_getfd=%ld (recorded, not a failure)\n",
      PtraceScope().c_str(), reach.mem_read, reach.vm_readv_ok, reach.getfd_ok);
  ::testing::Test::RecordProperty("ptrace_scope", PtraceScope());
}

// Attack 1+3, a third user against a pair of two other users (server 65534, client 65533, a
// cross-user session): nothing reachable either.
TEST(HostileTest, AThirdUserCannotFindReadOrMapTheMemoryOfAPairOfTwoOtherUsers) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as other users";
  Reach reach;
  FindTheMemory(kVictimUid, kOtherUid, kThirdUid, Attacks(3000), &reach);
}

// A third user binds the session channel of a port before the victim's listener listens there
// (an abstract name has no owner: whoever binds it first has it). The listener cannot have its
// channel and takes kernel TCP; the victim client, of yet another user, must not send its
// session (the arena's memfd and its bells) to the squatter, whose channel is not the TCP
// listener's user. The squatter counts every message and descriptor that reaches it: none.
TEST(HostileTest, AThirdUserWhoTakesAPortsChannelFirstIsSentNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as other users";
  constexpr size_t kBytes = 1 << 20;
  int port_pipe[2], go[2], squatting[2], report[2], stop[2];
  for (int *p : {port_pipe, go, squatting, report, stop}) ASSERT_EQ(pipe(p), 0);
  const pid_t server = Spawn([&] {
    for (int fd : {squatting[1], report[1], stop[1], go[1]}) close(fd);
    if (!BecomeUser(kVictimUid)) return kSetupFailed;
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in at = Loopback4(0);
    if (listener < 0 || loopfast_set_fast_path(listener, 1) != 0 ||
        bind(listener, reinterpret_cast<const sockaddr *>(&at), sizeof at) != 0) {
      return kSetupFailed;
    }
    sockaddr_in bound{};
    socklen_t length = sizeof bound;
    getsockname(listener, reinterpret_cast<sockaddr *>(&bound), &length);
    const uint16_t port = ntohs(bound.sin_port);
    pollfd told = {go[0], POLLIN, 0};  // the squatter has the channel
    if (write(port_pipe[1], &port, sizeof port) != sizeof port || poll(&told, 1, 10000) != 1 ||
        listen(listener, 16) != 0 || write(port_pipe[1], "l", 1) != 1) {  // listening now
      return kSetupFailed;
    }
    Bound(listener, 10000);
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return kSetupFailed;
    Bound(fd, 10000);
    std::vector<uint8_t> got(kBytes);
    if (!ReadAll(fd, got.data(), kBytes) || got != Pattern(kUpSeed, 0, kBytes)) return kStreamData;
    if (!WriteAll(fd, got.data(), kBytes)) return kStreamData;
    return ObservedPath(fd) == "kernel" ? kOk : kStreamNotFast;
  });
  close(port_pipe[1]);
  uint16_t port = 0;
  ASSERT_EQ(read(port_pipe[0], &port, sizeof port), ssize_t(sizeof port)) << "no victim server";
  const pid_t squatter = Spawn([&] {
    close(stop[1]);
    if (!BecomeUser(kThirdUid)) return 10;
    sockaddr_un channel;
    const socklen_t length = ChannelOf(port, &channel);
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (bind(fd, reinterpret_cast<const sockaddr *>(&channel), length) != 0 ||
        listen(fd, 64) != 0 || write(squatting[1], "x", 1) != 1) {
      return 11;
    }
    long counts[3] = {0, 0, 0};  // connections, messages (or bytes), descriptors
    std::vector<pollfd> wait = {{stop[0], POLLIN, 0}, {fd, POLLIN, 0}};
    while (poll(wait.data(), wait.size(), 10000) > 0 && wait[0].revents == 0) {
      for (size_t i = 1; i < wait.size(); ++i) {
        if (wait[i].revents == 0) continue;
        if (i == 1) {
          const int connection = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (connection >= 0) wait.push_back({connection, POLLIN, 0});
          counts[0] += connection >= 0;
          continue;
        }
        char bytes[256];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
        iovec iov = {bytes, sizeof bytes};
        msghdr message{};
        message.msg_iov = &iov;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        const ssize_t n = recvmsg(wait[i].fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        counts[1] += n > 0;
        counts[2] += message.msg_controllen > 0 && n >= 0;
        if (n <= 0) wait[i].fd = -1;  // its end: nothing more from it
      }
    }
    return write(report[1], counts, sizeof counts) == sizeof counts ? 0 : 12;
  });
  for (int fd : {squatting[1], report[1], stop[0], go[0]}) close(fd);
  char byte;
  ASSERT_EQ(read(squatting[0], &byte, 1), 1) << "the squatter could not bind the channel";
  ASSERT_EQ(write(go[1], "x", 1), 1);
  ASSERT_EQ(read(port_pipe[0], &byte, 1), 1) << "the victim server did not listen";
  const pid_t client = Spawn([&] {
    if (!BecomeUser(kOtherUid)) return kSetupFailed;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in to = Loopback4(port);
    if (fd < 0 || loopfast_set_fast_path(fd, 1) != 0) return kSetupFailed;
    Bound(fd, 10000);
    if (connect(fd, reinterpret_cast<const sockaddr *>(&to), sizeof to) != 0) return kSetupFailed;
    const std::vector<uint8_t> up = Pattern(kUpSeed, 0, kBytes);
    std::vector<uint8_t> echoed(kBytes);
    bool wrote = false;
    std::thread writer([&] { wrote = WriteAll(fd, up.data(), kBytes); });
    const bool read_all = ReadAll(fd, echoed.data(), kBytes);
    writer.join();
    if (!wrote || !read_all || echoed != up) return kStreamData;
    return ObservedPath(fd) == "kernel" ? kOk : kStreamNotFast;
  });
  EXPECT_EQ(Reap(client, 20000), kOk) << "client (11 data, 12 not on kernel TCP)";
  EXPECT_EQ(Reap(server, 20000), kOk) << "server (11 data, 12 not on kernel TCP)";
  close(stop[1]);
  long counts[3] = {-1, -1, -1};
  EXPECT_EQ(read(report[0], counts, sizeof counts), ssize_t(sizeof counts));
  EXPECT_EQ(Reap(squatter, 20000), 0);
  std::printf("[ info     ] squatter: %ld connections, %ld messages, %ld with descriptors\n",
              counts[0], counts[1], counts[2]);
  EXPECT_EQ(counts[1], 0) << "the victim client sent the squatter a message";
  EXPECT_EQ(counts[2], 0) << "the victim client sent the squatter descriptors";
  for (int fd : {port_pipe[0], go[1], squatting[0], report[0]}) close(fd);
}


// ---- attack 4: forged setups on the channel ----

// Another user's process sends the victim server's channel every kind of bad setup — noise,
// a wrong version, an unsealed memfd, a sealed one of the wrong size, pipes or sockets as
// bells, too many descriptors, silence — again and again, while the victim streams. Then a
// fresh client of the victim's user connects: it is served fast and exact (the victim checks
// every extra connection), and the stream never stopped.
TEST(HostileTest, ForgedSetupsOnTheChannelChangeNothingForRealClients) {
  Victim victim;
  StartVictim(kVictimUid, kVictimUid, &victim);
  const uint16_t port = victim.port;
  const long rounds = Attacks(300);
  const pid_t attacker = Spawn([&] {
    if (!BecomeUser(kOtherUid)) return 2;
    std::mt19937_64 rng(port);
    const int sealed_small = memfd_create("loopfast-session", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    const int unsealed = memfd_create("loopfast-session", MFD_CLOEXEC);
    int pipe_fds[2], pair[2];
    if (sealed_small < 0 || unsealed < 0 || pipe(pipe_fds) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0 || ftruncate(sealed_small, 4096) != 0 ||
        ftruncate(unsealed, int64_t{1} << 30) != 0 ||
        fcntl(sealed_small, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
      return 3;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const int n = std::snprintf(address.sun_path + 1, sizeof address.sun_path - 1,
                                "loopfast.v2.%u", unsigned(port));
    const socklen_t length = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + n);
    std::vector<int> silent;
    for (long round = 0; round < rounds; ++round) {
      const int channel = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
      if (connect(channel, reinterpret_cast<sockaddr *>(&address), length) != 0) {
        close(channel);
        continue;
      }
      // A setup's shape (messages.h): magic, version, kind, then sizes and a nonce; some
      // fields right, some not.
      uint8_t message[64];
      for (auto &byte : message) byte = uint8_t(rng());
      size_t size = 1 + rng() % sizeof message;
      if (round % 2 == 0) {
        // A well-formed SessionSetup of this build: only its descriptors are wrong.
        const session::SessionSetup setup = {session::MakeHeader(session::Kind::kSessionSetup),
                                             session::kArenaVersion, 0, session::kArenaBytes,
                                             rng() | 1};
        std::memcpy(message, &setup, sizeof setup);
        size = sizeof setup;
      }
      int fds[5] = {unsealed, pipe_fds[0], pipe_fds[1], pair[0], sealed_small};
      int count = int(rng() % 6);
      switch (round % 5) {
        case 0: fds[0] = unsealed; break;
        case 1: fds[0] = sealed_small; break;
        case 2: fds[0] = pipe_fds[0]; break;
        case 3: count = 5; break;
        default: silent.push_back(channel); continue;  // connects, never sends
      }
      iovec iov = {message, size};
      msghdr header{};
      header.msg_iov = &iov;
      header.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 5)];
      if (count > 0) {
        header.msg_control = control;
        header.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        cmsghdr *cmsg = CMSG_FIRSTHDR(&header);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
        std::memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * count);
      }
      (void)!sendmsg(channel, &header, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(channel);
      if (silent.size() > 50) {
        close(silent.front());
        silent.erase(silent.begin());
      }
    }
    return 0;
  });
  EXPECT_EQ(Reap(attacker, 60000), 0);
  // Fresh clients of the victim's user, while the attacker's silent connections are still
  // parked: each is served fast and exact (the victim server checks).
  const pid_t client = Spawn([&] {
    if (!BecomeUser(kVictimUid)) return kSetupFailed;
    for (int i = 0; i < 5; ++i) {
      const int fd = TryConnect("127.0.0.1", port, true);
      if (fd < 0) return kSetupFailed;
      const int result = ClientExtra(fd, 900 + uint64_t(i));
      if (result != kOk) return result;
    }
    return kOk;
  });
  EXPECT_EQ(Reap(client, 30000), kOk) << "13 data, 14 not fast";
  StopVictim(&victim);
}

}  // namespace
}  // namespace loopfast::test
