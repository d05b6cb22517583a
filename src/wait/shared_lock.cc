// The implementation of shared_lock.h (what it is for is said there).
#include "wait/shared_lock.h"

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "base/cacheline.h"

namespace loopfast {
namespace {

// Cached per thread; a forked child's only thread starts over (it has a new id).
thread_local uint32_t cached_tid = 0;

void ForgetTidInChild() { cached_tid = 0; }

[[maybe_unused]] const int registered = pthread_atfork(nullptr, nullptr, ForgetTidInChild);

uint32_t CurrentTid() {
  if (cached_tid == 0) cached_tid = static_cast<uint32_t>(syscall(SYS_gettid));
  return cached_tid;
}

bool ThreadExists(uint32_t tid) {
  // kill(tid, 0) finds any task by id, threads included; ESRCH means it is gone.
  return !(syscall(SYS_kill, static_cast<pid_t>(tid), 0) != 0 && errno == ESRCH);
}

void FutexWait(std::atomic<uint32_t> *word, uint32_t expected, long nanoseconds) {
  struct timespec timeout = {0, nanoseconds};
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT, expected, &timeout, nullptr,
          0);
}

void FutexWakeOne(std::atomic<uint32_t> *word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

}  // namespace

bool SharedLock::Lock() {
  const uint32_t self = CurrentTid();
  uint32_t expected = 0;
  // Acquire: what the previous owner wrote under the lock is visible to us.
  if (word_->compare_exchange_strong(expected, self, std::memory_order_acquire)) return false;
  for (int spin = 0; spin < 200; ++spin) {
    CpuRelax();
    expected = 0;
    if (word_->compare_exchange_weak(expected, self, std::memory_order_acquire)) return false;
  }
  const int saved_errno = errno;
  bool recovered = false;
  for (;;) {
    uint32_t current = word_->load(std::memory_order_relaxed);
    if (current == 0) {
      // Keep the waiters bit set: others may still sleep behind us.
      if (word_->compare_exchange_weak(current, self | kWaitersBit, std::memory_order_acquire)) {
        break;
      }
      continue;
    }
    if ((current & kWaitersBit) == 0 &&
        !word_->compare_exchange_weak(current, current | kWaitersBit, std::memory_order_relaxed)) {
      continue;
    }
    FutexWait(word_, current | kWaitersBit, 20L * 1000 * 1000);
    const uint32_t owner = word_->load(std::memory_order_relaxed) & ~kWaitersBit;
    if (owner != 0 && !ThreadExists(owner)) {
      uint32_t dead = owner | kWaitersBit;
      uint32_t dead_plain = owner;
      if (word_->compare_exchange_strong(dead, self | kWaitersBit, std::memory_order_acquire) ||
          word_->compare_exchange_strong(dead_plain, self | kWaitersBit,
                                         std::memory_order_acquire)) {
        recovered = true;
        break;
      }
    }
  }
  errno = saved_errno;
  return recovered;
}

bool SharedLock::TryLock() {
  uint32_t expected = 0;
  return word_->compare_exchange_strong(expected, CurrentTid(), std::memory_order_acquire);
}

bool SharedLock::HeldByThisThread() const {
  return (word_->load(std::memory_order_relaxed) & ~kWaitersBit) == CurrentTid();
}

void SharedLock::Unlock() {
  // Release: our writes under the lock happen before the next owner's.
  const uint32_t previous = word_->exchange(0, std::memory_order_release);
  if (previous & kWaitersBit) {
    const int saved_errno = errno;
    FutexWakeOne(word_);
    errno = saved_errno;
  }
}

}  // namespace loopfast
