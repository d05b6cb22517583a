// The implementation of owned_fds.h (what it is for is said there).
#include "sys/owned_fds.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>

#include "sys/real_calls.h"

namespace loopfast::sys {
namespace {

// One bit per descriptor, in chunks made on first use; a test of an untouched chunk is one load.
constexpr unsigned kChunkBits = 12;  // 4096 descriptors per chunk
constexpr unsigned kWordsPerChunk = (1u << kChunkBits) / 64;
constexpr unsigned kMaxChunks = 1u << 12;  // 16M descriptors

struct Chunk {
  std::atomic<uint64_t> words[kWordsPerChunk] = {};
};

std::atomic<Chunk *> chunks[kMaxChunks];

Chunk *ChunkFor(unsigned fd, bool create) {
  const unsigned index = fd >> kChunkBits;
  if (index >= kMaxChunks) return nullptr;
  Chunk *chunk = chunks[index].load(std::memory_order_acquire);
  if (chunk != nullptr || !create) return chunk;
  auto *fresh = new Chunk();  // never freed: descriptors are reused for the process's life
  if (chunks[index].compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) return fresh;
  delete fresh;
  return chunk;
}

uint64_t BitOf(unsigned fd) { return uint64_t{1} << (fd % 64); }
unsigned WordOf(unsigned fd) { return (fd & ((1u << kChunkBits) - 1)) / 64; }

}  // namespace

void Own(int fd) {
  if (fd < 0) return;
  if (Chunk *chunk = ChunkFor(static_cast<unsigned>(fd), true)) {
    chunk->words[WordOf(fd)].fetch_or(BitOf(fd), std::memory_order_release);
  }
}

void CloseOwned(int fd) {
  if (fd < 0) return;
  if (Chunk *chunk = ChunkFor(static_cast<unsigned>(fd), false)) {
    chunk->words[WordOf(fd)].fetch_and(~BitOf(fd), std::memory_order_release);
  }
  const int saved_errno = errno;
  Real().close(fd);
  errno = saved_errno;
}

int HighBase() {
  // Read once: a program that lowers its limit later only makes MoveHigh fail (and keep the
  // low number); one that raises it keeps loopfast's descriptors where they are.
  static const int base = [] {
    struct rlimit limit {};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    constexpr rlim_t kHighest = 4096, kLowest = 64;
    const rlim_t base = std::min<rlim_t>(limit.rlim_cur / 2, kHighest);
    return base < kLowest ? 0 : static_cast<int>(base);
  }();
  return base;
}

namespace {

std::mutex limit_mutex;

// A copy of `fd` at a number at or above the soft RLIMIT_NOFILE, which the program cannot use
// (the limit is one more than the highest number it may open): the soft limit is raised
// towards the hard one for the one call, then put back. -1 when the hard limit leaves no room
// (or the process may not change its limit).
int DupAboveLimit(int fd) {
  std::lock_guard<std::mutex> guard(limit_mutex);
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max ||
      limit.rlim_cur > (1u << 20)) {
    return -1;
  }
  // Room for a few hundred of loopfast's own above the program's range (its table grows only
  // as far as the numbers used).
  struct rlimit raised = limit;
  raised.rlim_cur = std::min<rlim_t>(limit.rlim_max, limit.rlim_cur + 512);
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) return -1;
  const int moved = Real().fcntl(fd, F_DUPFD_CLOEXEC, static_cast<int>(limit.rlim_cur));
  setrlimit(RLIMIT_NOFILE, &limit);
  return moved;
}

}  // namespace

int MoveHigh(int fd) {
  if (fd < 0) return fd;
  const int saved_errno = errno;
  // Above the program's limit when the hard limit allows: then loopfast's descriptors cost the
  // program none of the numbers it may use.
  int moved = DupAboveLimit(fd);
  const int base = HighBase();
  if (moved < 0 && base != 0 && fd < base) moved = Real().fcntl(fd, F_DUPFD_CLOEXEC, base);
  if (moved >= 0) Real().close(fd);
  errno = saved_errno;
  return moved >= 0 ? moved : fd;
}

namespace {
std::atomic<pid_t> process_pid{0};
}  // namespace

bool InVforkChild() {
  const pid_t actual = static_cast<pid_t>(syscall(SYS_getpid));
  pid_t known = process_pid.load(std::memory_order_relaxed);
  if (known == 0) {
    process_pid.compare_exchange_strong(known, actual, std::memory_order_relaxed);
    return false;  // first asked in this process (a vfork child never asks first: see below)
  }
  return actual != known;
}

pid_t ThisProcess() {
  const pid_t known = process_pid.load(std::memory_order_relaxed);
  if (known != 0) return known;
  const pid_t actual = static_cast<pid_t>(syscall(SYS_getpid));
  process_pid.store(actual, std::memory_order_relaxed);
  return actual;
}

void NoteForkChild() {
  process_pid.store(static_cast<pid_t>(syscall(SYS_getpid)), std::memory_order_relaxed);
}

int TakeHigh(int fd) {
  if (fd < 0) return fd;
  const int moved = MoveHigh(fd);
  const int base = HighBase();
  if (moved != fd || base == 0 || moved >= base) return moved;
  Real().close(moved);
  errno = EMFILE;
  return -1;
}

bool IsOwned(int fd) {
  if (fd < 0) return false;
  const Chunk *chunk = ChunkFor(static_cast<unsigned>(fd), false);
  return chunk != nullptr &&
         (chunk->words[WordOf(fd)].load(std::memory_order_acquire) & BitOf(fd)) != 0;
}

int NextOwned(unsigned from, unsigned to) {
  const unsigned last_fd = (kMaxChunks << kChunkBits) - 1;
  if (to > last_fd) to = last_fd;
  unsigned fd = from;
  while (fd <= to) {
    const Chunk *chunk = ChunkFor(fd, false);
    if (chunk == nullptr) {
      fd = ((fd >> kChunkBits) + 1) << kChunkBits;  // skip the whole chunk
      if (fd == 0) break;                           // wrapped past the last chunk
      continue;
    }
    uint64_t word = chunk->words[WordOf(fd)].load(std::memory_order_acquire);
    word &= ~uint64_t{0} << (fd % 64);  // only descriptors >= fd
    if (word != 0) {
      const unsigned found = (fd & ~63u) + static_cast<unsigned>(__builtin_ctzll(word));
      return found <= to ? static_cast<int>(found) : -1;
    }
    fd = (fd & ~63u) + 64;
  }
  return -1;
}

}  // namespace loopfast::sys
