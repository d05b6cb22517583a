// The hostile-local-process campaign (SPEC guarantee 3, issue 6 item 3): a victim connection
// (client and server in separate processes, fast path, streaming a checked pattern both ways)
// and attacker processes, of the victim's user or of another one, that try to find its shared
// memory (/dev/shm, /proc/<victim>/fd, map_files, maps, mem, pidfd_getfd), to inject through
// the listener's rendezvous channel (forged, replayed, truncated, random messages, descriptors
// attached, a forged Hello raced against a genuine connect), and to read it with
// process_vm_readv; and to get the Offer meant for a victim client by sending a Hello from a
// process whose pid the victim client later reuses (the listener trusts the SO_PEERCRED pid).
// After each attack the victim's streams must be byte-exact and its
// connection still fast. Short form by default; long form:
//   LOOPFAST_CAMPAIGN_ATTACKS=100000 build/tests/e2e_tests --gtest_filter='HostileTest.*'
// Every process is a fork of the test; victims and attackers drop root (setuid) before doing
// anything, and mark themselves dumpable again (PR_SET_DUMPABLE), as a program its user started
// with exec is: otherwise the kernel would hide their /proc entries from their own user and the
// same-user attacks would be tested against a stronger victim than a real one.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
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
#include "rendezvous/protocol.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

constexpr uid_t kVictimUid = 65534;   // nobody
constexpr uid_t kOtherUid = 65533;    // another unprivileged user
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

// Drops root for good, then becomes dumpable again as an exec'd program of that user is.
bool BecomeUser(uid_t uid) {
  return setgroups(0, nullptr) == 0 && setgid(uid) == 0 && setuid(uid) == 0 &&
         prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0 && geteuid() == uid;
}

bool Stopped(int done_fd) {
  pollfd p = {done_fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

sockaddr_in Loopback4(uint16_t port) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
  return in;
}

// The start address of the first loopfast shared-memory mapping in `pid`, or 0.
uintptr_t MemfdMapping(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("memfd:loopfast (deleted)") != std::string::npos)
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

// Starts the victim as `uid`. Its server accepts the streaming connection, then keeps
// accepting checked extra connections (the genuine clients of the race) until stopped.
void StartVictim(uid_t uid, Victim *victim) {
  int info[2], stop[2];
  ASSERT_EQ(pipe(info), 0);
  ASSERT_EQ(pipe(stop), 0);
  victim->server = Spawn([&] {
    close(info[0]);
    close(stop[1]);
    if (!BecomeUser(uid)) return kSetupFailed;
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
    if (!BecomeUser(uid)) return kSetupFailed;
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

// Runs an attacker as `attacker_uid` against a victim of `victim_uid` that scans `rounds`
// times (both victim processes each round); returns what it reached.
void FindTheMemory(uid_t victim_uid, uid_t attacker_uid, long rounds, Reach *reach) {
  std::vector<std::string> shm_before = Entries("/dev/shm");
  std::sort(shm_before.begin(), shm_before.end());
  Victim victim;
  ASSERT_NO_FATAL_FAILURE(StartVictim(victim_uid, &victim));
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const bool other_user = victim_uid != attacker_uid;
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
  FindTheMemory(kVictimUid, kOtherUid, Attacks(3000), &reach);
}

// Attack 1+3, the same user: no file, descriptor or map_files entry gives the memory. What a
// process that may ptrace the victim can read (/proc/<pid>/mem, process_vm_readv, pidfd_getfd)
// is recorded, not failed: it reads every byte of a program, fast path or not.
TEST(HostileTest, SameUserCannotOpenOrMapTheSharedMemory) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as another user";
  Reach reach;
  FindTheMemory(kVictimUid, kVictimUid, Attacks(3000), &reach);
  std::printf(
      "[ info     ] yama ptrace_scope: %s; same-user ptrace-class access: mem_read=%ld "
      "process_vm_readv=%ld pidfd_getfd=%ld (recorded, not a failure)\n",
      PtraceScope().c_str(), reach.mem_read, reach.vm_readv_ok, reach.getfd_ok);
  ::testing::Test::RecordProperty("ptrace_scope", PtraceScope());
}

// ---- attack 2: injection through the rendezvous channel ----

struct Injection {
  long messages = 0, refused = 0, races = 0;
  long rejects = 0, silences = 0;                       // answers: Reject, or nothing / end-of-file
  long descriptors = 0, offers = 0, other_answers = 0;  // must stay 0
};

// Reads every answer on a stranger's channel connection; counts them.
void Collect(int fd, Injection *in) {
  for (int i = 0; i < 8; ++i) {
    char reply[256];
    iovec iov = {reply, sizeof reply};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (message.msg_controllen != 0 && n >= 0) {
      ++in->descriptors;
      for (cmsghdr *c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          for (size_t k = 0; k < count; ++k) {
            int got;
            std::memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof got);
            std::fprintf(stderr, "[ FOUND    ] descriptor from the victim: %s\n",
                         LinkOf("/proc/self/fd/" + std::to_string(got)).c_str());
            close(got);
          }
        }
      }
    }
    if (n <= 0) {
      ++in->silences;
      break;
    }
    rendezvous::MessageHeader header;
    if (size_t(n) < sizeof header) {
      ++in->other_answers;
      continue;
    }
    std::memcpy(&header, reply, sizeof header);
    if (header.magic == rendezvous::kMessageMagic && header.kind == rendezvous::Kind::kReject) {
      ++in->rejects;
    } else if (header.kind == rendezvous::Kind::kOffer) {
      ++in->offers;
    } else {
      ++in->other_answers;
    }
  }
}

// Connects to the channel (non-blocking: a full backlog is counted, not waited for) and sends
// `size` bytes with `fds` attached (`bytes` null: a silent connection). Returns the socket.
int Stranger(const sockaddr_un &channel, socklen_t length, const void *bytes, size_t size,
             const std::vector<int> &fds) {
  const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr *>(&channel), length) != 0) {
    close(fd);
    return -1;
  }
  if (bytes == nullptr) return fd;
  iovec iov = {const_cast<void *>(bytes), size};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (fds.size() + 1)));
  if (!fds.empty()) {
    message.msg_control = control.data();
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  (void)sendmsg(fd, &message, MSG_NOSIGNAL);
  return fd;
}

// One attacker (as `attacker_uid`) against a victim of `victim_uid`: `attacks` hostile
// messages on the victim listener's channel, and every `per_race` of them a race: a forged
// Hello claiming the descriptor number a genuine client (the victim's user) is about to
// connect with, sent just before that client connects. The genuine clients must be fast and
// byte-exact; the attacker must never get an Offer or a descriptor.
void Inject(uid_t victim_uid, uid_t attacker_uid, long attacks, long per_race) {
  Victim victim;
  ASSERT_NO_FATAL_FAILURE(StartVictim(victim_uid, &victim));
  const long races = std::max(1L, attacks / per_race);
  int numbers[2], acks[2], report[2];
  ASSERT_EQ(pipe(numbers), 0);
  ASSERT_EQ(pipe(acks), 0);
  ASSERT_EQ(pipe(report), 0);
  const uint16_t port = victim.port;
  const int64_t start = NowMs();
  const pid_t attacker = Spawn([&] {
    close(numbers[1]);
    close(acks[0]);
    close(report[0]);
    if (!BecomeUser(attacker_uid)) return 10;
    sockaddr_un channel;
    const socklen_t length = ChannelOf(port, &channel);
    std::mt19937_64 random(attacker_uid * 1000003ull + uint64_t(attacks));
    int pair[2], a_pipe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 11;
    if (pipe2(a_pipe, O_CLOEXEC) != 0) return 12;
    const rendezvous::Hello genuine_bytes = {rendezvous::MakeHeader(rendezvous::Kind::kHello),
                                             victim.client_fd_number, 1 << 20};
    Injection in;
    std::vector<int> open_channels;  // a window of connections whose answers are read
    auto keep = [&](int fd) {
      ++in.messages;
      if (fd < 0) {
        ++in.refused;
        return;
      }
      open_channels.push_back(fd);
      if (open_channels.size() >= 48) {
        for (int c : open_channels) {
          Collect(c, &in);
          close(c);
        }
        open_channels.clear();
      }
    };
    long race = 0;
    const int64_t deadline = NowMs() + 4 * 60 * 1000;
    for (long i = 0; i < attacks && NowMs() < deadline; ++i) {
      if (i % per_race == per_race - 1 && race < races) {
        // The race: the genuine client's number, a forged (and a planted) claim, go.
        pollfd p = {numbers[0], POLLIN, 0};
        int32_t number = -1;
        if (poll(&p, 1, 10000) == 1 && read(numbers[0], &number, sizeof number) == 4) {
          rendezvous::Hello claim = genuine_bytes;
          claim.client_fd = number;
          keep(Stranger(channel, length, &claim, sizeof claim, {}));
          bool planted = false;  // hold a socket under that very number, then claim it
          if (fcntl(number, F_GETFD) < 0 && dup2(pair[0], number) == number) planted = true;
          keep(Stranger(channel, length, &claim, sizeof claim, {}));
          keep(Stranger(channel, length, &claim, sizeof claim, {pair[1]}));
          if (planted) close(number);
          ++race;
          ++in.races;
          if (write(acks[1], "x", 1) != 1) return 13;
        }
        continue;
      }
      rendezvous::Hello hello = genuine_bytes;
      char bytes[512];
      switch (random() % 9) {
        case 0:  // replay: the victim client's own Hello, byte for byte
          keep(Stranger(channel, length, &hello, sizeof hello, {}));
          break;
        case 1: {  // random bytes, random length
          const size_t size = random() % sizeof bytes;
          for (size_t k = 0; k < size; ++k) bytes[k] = char(random());
          keep(Stranger(channel, length, bytes, size, {}));
          break;
        }
        case 2: {  // truncated Hello
          keep(Stranger(channel, length, &hello, random() % sizeof hello, {}));
          break;
        }
        case 3: {  // a well-formed Hello with descriptors attached
          std::vector<int> fds;
          const int count = 1 + int(random() % 5);
          for (int k = 0; k < count; ++k) fds.push_back(k % 2 ? a_pipe[0] : pair[1]);
          keep(Stranger(channel, length, &hello, sizeof hello, fds));
          break;
        }
        case 4:  // claims a socket it really holds, which is no end of a connection
          hello.client_fd = pair[0];
          keep(Stranger(channel, length, &hello, sizeof hello, {}));
          break;
        case 5: {  // a Hello with one field mutated at random
          std::memcpy(bytes, &hello, sizeof hello);
          bytes[random() % sizeof hello] ^= char(1 + random() % 255);
          keep(Stranger(channel, length, bytes, sizeof hello, {}));
          break;
        }
        case 6: {  // a Forward naming the victim client, the channel "proof" is its own socket
          rendezvous::Forward forward{};
          forward.header = rendezvous::MakeHeader(rendezvous::Kind::kForward);
          forward.hello = hello;
          forward.client_pid = victim.client;
          forward.client_uid = victim_uid;
          forward.client_inode = random();
          keep(Stranger(channel, length, &forward, sizeof forward, {pair[0], pair[1]}));
          break;
        }
        case 7: {  // an Offer or Reject sent to the listener
          rendezvous::Offer offer{};
          offer.header = rendezvous::MakeHeader(random() % 2 ? rendezvous::Kind::kOffer
                                                             : rendezvous::Kind::kReject);
          offer.capacity_c2s = offer.capacity_s2c = 1 << 16;
          keep(Stranger(channel, length, &offer, sizeof offer, {a_pipe[0], a_pipe[1], pair[1]}));
          break;
        }
        default:  // silent connection, or connect-and-close
          if (random() % 2) {
            keep(Stranger(channel, length, nullptr, 0, {}));
          } else {
            const int fd = Stranger(channel, length, nullptr, 0, {});
            ++in.messages;
            if (fd >= 0) close(fd);
          }
      }
    }
    usleep(200 * 1000);  // let the victim answer what it read
    for (int c : open_channels) {
      Collect(c, &in);
      close(c);
    }
    if (write(report[1], &in, sizeof in) != sizeof in) return 14;
    return 0;
  });
  close(report[1]);
  // The genuine clients, as the victim's user.
  int genuine_report[2];
  ASSERT_EQ(pipe(genuine_report), 0);
  const pid_t genuine = Spawn([&] {
    close(numbers[0]);
    close(acks[1]);
    close(genuine_report[0]);
    if (!BecomeUser(victim_uid)) return 10;
    long fast = 0, failed = 0, attempted = 0;
    for (long i = 0; i < races; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0 || loopfast_set_fast_path(fd, 1) != 0) return 11;
      const int32_t number = fd;
      char byte;
      pollfd p = {acks[0], POLLIN, 0};
      if (write(numbers[1], &number, sizeof number) != sizeof number || poll(&p, 1, 15000) != 1 ||
          read(acks[0], &byte, 1) != 1) {
        close(fd);
        break;  // the attacker is done (deadline)
      }
      ++attempted;
      Bound(fd, 5000);
      const sockaddr_in to = Loopback4(port);
      if (connect(fd, reinterpret_cast<const sockaddr *>(&to), sizeof to) != 0) {
        close(fd);
        ++failed;
        continue;
      }
      const int result = ClientExtra(fd, 9000 + uint64_t(i));
      if (result == kOk) {
        ++fast;
      } else {
        ++failed;
        std::fprintf(stderr, "[ info     ] genuine client %ld: %d\n", i, result);
      }
    }
    const long counts[3] = {attempted, fast, failed};
    if (write(genuine_report[1], counts, sizeof counts) != sizeof counts) return 12;
    return failed == 0 ? 0 : 20;
  });
  close(numbers[0]);
  close(numbers[1]);
  close(acks[0]);
  close(acks[1]);
  close(genuine_report[1]);
  EXPECT_EQ(Reap(attacker, 6 * 60 * 1000), 0) << "attacker could not run";
  EXPECT_EQ(Reap(genuine, 60000), 0) << "a genuine client raced by a forged Hello was not fast "
                                        "and exact";
  Injection in;
  ASSERT_EQ(read(report[0], &in, sizeof in), ssize_t(sizeof in));
  long counts[3] = {0, 0, 0};
  EXPECT_EQ(read(genuine_report[0], counts, sizeof counts), ssize_t(sizeof counts));
  close(report[0]);
  close(genuine_report[0]);
  ASSERT_NO_FATAL_FAILURE(StopVictim(&victim));
  const long ms = long(NowMs() - start);
  std::printf(
      "[ info     ] %s user, %ld ms: messages=%ld refused_connect=%ld races=%ld "
      "answers: reject=%ld none_or_eof=%ld offer=%ld descriptors=%ld other=%ld; "
      "genuine clients %ld/%ld fast and exact\n",
      victim_uid == attacker_uid ? "the same" : "another", ms, in.messages, in.refused, in.races,
      in.rejects, in.silences, in.offers, in.descriptors, in.other_answers, counts[1], counts[0]);
  EXPECT_EQ(in.offers, 0) << "the attacker received an Offer";
  EXPECT_EQ(in.descriptors, 0) << "the attacker received descriptors";
  EXPECT_EQ(in.other_answers, 0);
  EXPECT_EQ(in.races, races);
  EXPECT_EQ(counts[1], counts[0]);
}

TEST(HostileTest, AnotherUserCannotInjectThroughTheRendezvous) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as other users";
  Inject(kVictimUid, kOtherUid, Attacks(3000), std::max(25L, Attacks(3000) / 1000));
}

TEST(HostileTest, SameUserCannotInjectThroughTheRendezvous) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as another user";
  Inject(kVictimUid, kVictimUid, Attacks(3000), std::max(25L, Attacks(3000) / 1000));
}

// ---- the rendezvous identity is bound to a pid: a Hello from a process that has exited ----

namespace reuse {

// Forks a child with exactly pid `pid` (clone3 set_tid; needs root). Returns -1 when the
// kernel refuses (then `*error` says why).
pid_t ForkAs(pid_t pid, int *error) {
  struct {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
  } args{};
  pid_t wanted[1] = {pid};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(wanted);
  args.set_tid_size = 1;
  fflush(nullptr);
  const long got = syscall(SYS_clone3, &args, sizeof args);
  *error = errno;
  return pid_t(got);
}

}  // namespace reuse

// Attacker A (another user) connects to the victim listener's channel, sends a Hello claiming
// descriptor number 50, hands its channel socket to accomplice B (SCM_RIGHTS) and exits. The
// victim's client process then happens to get A's pid (pid reuse; made certain here with
// clone3 set_tid, on a real system by cycling pids) and connects with its TCP socket at
// descriptor 50. The listener checks the Hello by SO_PEERCRED pid (captured at A's connect)
// and /proc/<pid>/fd/50, which now is the victim's socket: it must still not trust A's Hello.
// Expected: B never receives an Offer or a descriptor; the victim's connection is fast and
// exact.
constexpr char kGreeting[32] = "lf-hostile-secret-greeting-0042";

// A child that exits at once, sharing this process's memory until it has (CLONE_VM |
// CLONE_VFORK, no page tables copied): the cheapest way for any unprivileged process to use up
// one pid. A fork of this test process costs ~2 ms on a busy 2-CPU VM: 32,768 of them took 62 s.
pid_t UseUpOnePid() {
  alignas(16) static char stack[64 * 1024];
  const pid_t child = clone([](void *) { return 0; }, stack + sizeof stack,
                            CLONE_VM | CLONE_VFORK | SIGCHLD, nullptr);
  if (child > 0) waitpid(child, nullptr, 0);
  return child;
}

// `cycle`: no clone3 set_tid; an unprivileged process of the attacker's user forks and reaps
// children until the pid counter stands just before A's pid, and the victim client is then an
// ordinary fork: what an attacker without any privilege can do (pid_max is 32768 here).
void HelloFromAReusedPid(uid_t attacker_uid, bool cycle = false) {
  constexpr int kClaimedFd = 50;
  int port_pipe[2], handoff[2], stop[2];
  ASSERT_EQ(pipe(port_pipe), 0);
  ASSERT_EQ(pipe(stop), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, handoff), 0);
  const pid_t server = Spawn([&] {
    close(port_pipe[0]);
    if (!BecomeUser(kVictimUid)) return kSetupFailed;
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
    if (write(port_pipe[1], &port, sizeof port) != sizeof port) return kSetupFailed;
    Bound(listener, 150000);  // longer than the pid cycling may take (120 s)
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return kSetupFailed;
    // The server speaks first (a greeting, as SMTP, MySQL, ... servers do).
    if (!WriteAll(fd, kGreeting, sizeof kGreeting)) return kExtraData;
    const int result = ServeExtra(fd);
    std::fprintf(stderr, "[ info     ] victim server: %d (0 fast and exact, 13 data, 14 kernel)\n",
                 result);
    return result;
  });
  close(port_pipe[1]);
  uint16_t port = 0;
  ASSERT_EQ(read(port_pipe[0], &port, sizeof port), ssize_t(sizeof port));
  close(port_pipe[0]);
  // Accomplice B: waits for A's channel socket, then for whatever the listener sends on it.
  const pid_t accomplice = Spawn([&] {
    close(handoff[0]);
    if (!BecomeUser(attacker_uid)) return 10;
    char byte;
    iovec iov = {&byte, 1};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    Bound(handoff[1], 10000);
    if (recvmsg(handoff[1], &message, 0) != 1 || CMSG_FIRSTHDR(&message) == nullptr) return 11;
    int channel;
    std::memcpy(&channel, CMSG_DATA(CMSG_FIRSTHDR(&message)), sizeof channel);
    close(stop[1]);
    // Until the listener answers, or the victims are done (the parent closes `stop`).
    pollfd p[2] = {{channel, POLLIN, 0}, {stop[0], POLLIN, 0}};
    if (poll(p, 2, 60000) < 1 || (p[0].revents & POLLIN) == 0) return 0;
    // Look at it before Collect closes it: an Offer with descriptors is a way in.
    rendezvous::Offer offer{};
    iovec oiov = {&offer, sizeof offer};
    msghdr omessage{};
    omessage.msg_iov = &oiov;
    omessage.msg_iovlen = 1;
    alignas(cmsghdr) char ocontrol[CMSG_SPACE(sizeof(int) * 8)];
    omessage.msg_control = ocontrol;
    omessage.msg_controllen = sizeof ocontrol;
    const ssize_t n = recvmsg(channel, &omessage, MSG_DONTWAIT);
    int fds[8];
    int count = 0;
    for (cmsghdr *c = CMSG_FIRSTHDR(&omessage); c != nullptr; c = CMSG_NXTHDR(&omessage, c)) {
      const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k && count < 8; ++i) {
        std::memcpy(&fds[count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      }
    }
    if (n <= 0 || count == 0) return 0;  // a Reject, or end-of-file: fine
    std::fprintf(stderr, "[ FOUND    ] accomplice (uid %u) got kind %u, %d descriptors:",
                 unsigned(attacker_uid), unsigned(offer.header.kind), count);
    for (int i = 0; i < count; ++i) {
      std::fprintf(stderr, " %s", LinkOf("/proc/self/fd/" + std::to_string(fds[i])).c_str());
    }
    std::fprintf(stderr, "\n");
    struct stat info {};
    if (fstat(fds[0], &info) == 0 && info.st_size > 0) {
      void *map =
          mmap(nullptr, size_t(info.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
      if (map != MAP_FAILED) {
        std::fprintf(stderr,
                     "[ FOUND    ] accomplice mapped the victim connection's shared "
                     "memory read-write: %lld bytes\n",
                     static_cast<long long>(info.st_size));
        // Holding the doorbells, look for the server's first bytes in the memory.
        int result = 52;
        for (int waited = 0; waited < 3000 && result == 52; waited += 10) {
          if (memmem(map, size_t(info.st_size), kGreeting, sizeof kGreeting) != nullptr) {
            std::fprintf(stderr,
                         "[ FOUND    ] accomplice read the victim server's bytes: "
                         "\"%s\"\n",
                         kGreeting);
            result = 53;
          }
          usleep(10 * 1000);
        }
        munmap(map, size_t(info.st_size));
        return result;
      }
    }
    return 51;
  });
  // Attacker A: Hello claiming descriptor 50, socket handed to B, exit.
  const pid_t attacker = Spawn([&] {
    close(handoff[1]);
    if (!BecomeUser(attacker_uid)) return 10;
    sockaddr_un channel;
    const socklen_t length = ChannelOf(port, &channel);
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<const sockaddr *>(&channel), length) != 0) return 11;
    const rendezvous::Hello hello = {rendezvous::MakeHeader(rendezvous::Kind::kHello), kClaimedFd,
                                     1 << 20};
    if (send(fd, &hello, sizeof hello, MSG_NOSIGNAL) != sizeof hello) return 12;
    char byte = 'x';
    iovec iov = {&byte, 1};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    return sendmsg(handoff[0], &message, 0) == 1 ? 0 : 13;
  });
  close(handoff[0]);
  close(handoff[1]);
  ASSERT_EQ(Reap(attacker, 10000), 0) << "attacker A could not run";
  // The victim's client, with A's pid.
  int error = 0;
  pid_t client;
  if (cycle) {
    const int64_t start = NowMs();
    const pid_t cycler = Spawn([&] {
      if (!BecomeUser(attacker_uid)) return 10;
      // Up to just before A's pid (pids of live processes are skipped by the kernel).
      pid_t last = getpid();
      bool wrapped = false;
      for (int i = 0; i < 100000; ++i) {
        const pid_t child = UseUpOnePid();
        if (child < 0) return 11;
        if (child < last) wrapped = true;
        last = child;
        if ((wrapped || child < attacker) && child >= attacker - 64 && child < attacker) {
          bool next_is_a = true;  // every pid between is taken by a live process
          for (pid_t p = child + 1; p < attacker; ++p) {
            if (kill(p, 0) != 0 && errno == ESRCH) next_is_a = false;
          }
          if (next_is_a) return 0;
        }
        if (wrapped && child > attacker) return 13;  // someone else took A meanwhile
      }
      return 12;
    });
    const int cycled = Reap(cycler, 120000);
    fflush(nullptr);
    client = fork();
    if (client > 0) {
      std::printf(
          "[ info     ] pid cycling by uid %u: %d in %lld ms; victim client got pid %d "
          "(A was %d)\n",
          unsigned(attacker_uid), cycled, static_cast<long long>(NowMs() - start), int(client),
          int(attacker));
    }
  } else {
    client = reuse::ForkAs(attacker, &error);
  }
  if (client == 0) {
    int status = kSetupFailed;
    if (BecomeUser(kVictimUid)) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0 && dup2(fd, kClaimedFd) == kClaimedFd) {
        close(fd);
        loopfast_set_fast_path(kClaimedFd, 1);
        Bound(kClaimedFd, 5000);
        const sockaddr_in to = Loopback4(port);
        char greeting[sizeof kGreeting] = {};
        if (connect(kClaimedFd, reinterpret_cast<const sockaddr *>(&to), sizeof to) != 0) {
          status = kSetupFailed;
        } else if (!ReadAll(kClaimedFd, greeting, sizeof greeting) ||
                   std::memcmp(greeting, kGreeting, sizeof greeting) != 0) {
          status = kExtraData;
        } else {
          status = ClientExtra(kClaimedFd, 4242);
        }
      }
    }
    _exit(status);
  }
  if (client < 0) {
    close(stop[0]);
    close(stop[1]);
    kill(server, SIGKILL);
    kill(accomplice, SIGKILL);
    Reap(server, 1000);
    Reap(accomplice, 1000);
    GTEST_SKIP() << "clone3 with set_tid refused: " << std::strerror(error);
  }
  close(stop[0]);
  const int client_status = Reap(client, 20000);
  const int server_status = Reap(server, 20000);
  usleep(200 * 1000);
  close(stop[1]);
  const int accomplice_status = Reap(accomplice, 20000);
  std::printf("[ info     ] pid %d reused: victim client %d, victim server %d, accomplice %d\n",
              int(attacker), client_status, server_status, accomplice_status);
  EXPECT_EQ(accomplice_status, 0)
      << "51: the accomplice received descriptors for the victim's connection, 52: and mapped "
         "its shared memory read-write, 53: and read the victim server's bytes in it";
  EXPECT_EQ(client_status, kOk) << "victim client: 13 data, 14 not fast";
  EXPECT_EQ(server_status, kOk) << "victim server: 13 data, 14 not fast";
}

TEST(HostileTest, AnotherUsersHelloFromAReusedPidIsNotTrusted) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (other users, clone3 set_tid)";
  HelloFromAReusedPid(kOtherUid);
}

TEST(HostileTest, SameUsersHelloFromAReusedPidIsNotTrusted) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (other users, clone3 set_tid)";
  HelloFromAReusedPid(kVictimUid);
}

}  // namespace
}  // namespace loopfast::test

namespace loopfast::test {
namespace {
// As above without any privilege for the attacker: pid reuse by cycling the pid counter.
TEST(HostileTest, AnotherUsersHelloFromACycledPidIsNotTrusted) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run processes as other users";
  HelloFromAReusedPid(kOtherUid, /*cycle=*/true);
}
}  // namespace
}  // namespace loopfast::test
