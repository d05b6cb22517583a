// A mutex in shared memory for the threads and processes that share one end of a connection.
//
// The word holds the owner's thread id (plus a "waiters" bit), so a waiter that has slept for a
// while can check whether the owner still exists and, if it died holding the lock (kill -9),
// take the lock over instead of freezing. Uncontended: one compare-and-swap each way.
#ifndef LOOPFAST_WAIT_SHARED_LOCK_H_
#define LOOPFAST_WAIT_SHARED_LOCK_H_

#include <atomic>
#include <cstdint>

namespace loopfast {

class SharedLock {
 public:
  explicit SharedLock(std::atomic<uint32_t> *word) : word_(word) {}

  // Any thread. Blocks until the lock is ours (signals do not interrupt it: the sections it
  // guards never block for long). Returns true if the previous owner had died holding it.
  bool Lock();
  // Any thread. Takes the lock only if it is free now; true when taken.
  bool TryLock();
  // Any thread. True when the calling thread owns the lock (its own signal handler asks).
  bool HeldByThisThread() const;
  // Only the owning thread.
  void Unlock();

  static constexpr uint32_t kWaitersBit = 1u << 31;

 private:
  std::atomic<uint32_t> *word_;
};

// RAII holder.
class SharedLockGuard {
 public:
  explicit SharedLockGuard(std::atomic<uint32_t> *word) : lock_(word) { lock_.Lock(); }
  ~SharedLockGuard() { lock_.Unlock(); }
  SharedLockGuard(const SharedLockGuard &) = delete;
  SharedLockGuard &operator=(const SharedLockGuard &) = delete;

 private:
  SharedLock lock_;
};

}  // namespace loopfast

#endif  // LOOPFAST_WAIT_SHARED_LOCK_H_
