// Helpers for tests of calls that block on fast sockets (threads_test.cc, signals_test.cc): a
// thread for a call expected to block, watched so that a bug fails instead of hanging; a child
// process for scenarios that could deadlock; filling a connection and draining it checked.
#ifndef LOOPFAST_TESTS_BLOCKED_CALL_H_
#define LOOPFAST_TESTS_BLOCKED_CALL_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace loopfast::test {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start);
void SleepMs(int ms);
const char *PathName(bool fast);  // "fast" or "kernel", as ObservedPath says

// setsockopt of a timeout (SO_RCVTIMEO, SO_SNDTIMEO) on `fd`; fails the test on error.
void SetTimeout(int fd, int option, int ms);

// Sends pattern bytes of stream `seed` from `*offset` with MSG_DONTWAIT until the connection
// has taken nothing more for a while, so that the next blocking send cannot place a single byte.
// Kernel TCP on this machine takes more 40-60 ms and again ~260 ms after the first EAGAIN (its
// timers probe the closed window), so it must stay full for 350 ms; a fast ring only changes
// when its reader reads.
void FillUntilFull(int fd, uint64_t seed, uint64_t *offset);

// What a reader of a whole stream saw.
struct Drained {
  uint64_t bytes = 0;
  bool intact = true;  // every byte was the pattern's
  bool ended = false;  // end of stream seen
  int error = 0;       // or the error that ended it (EAGAIN: SO_RCVTIMEO expired)
};

// Reads `fd` to end of stream, checking every byte against stream `seed`. Bounded by a 2 s
// SO_RCVTIMEO set here.
void DrainAndCheck(int fd, uint64_t seed, Drained *out);
std::string Describe(const Drained &d);

// A call's return value and errno.
struct CallResult {
  ssize_t value = -2;
  int error = 0;
};
std::string Describe(const CallResult &r);

// A call expected to block, on its own thread. The test waits for it with a bound (Finished).
// If it is still running when the object goes, `unblock` runs and a signal whose handler has no
// SA_RESTART is sent repeatedly (a system call sleeping in the kernel ends with EINTR); if even
// that does not free it within 1.5 s the process aborts with a message (a hang becomes a
// failure, not a stuck run). Declare it after everything its body uses.
class BoundedThread {
 public:
  explicit BoundedThread(std::function<void()> body, std::function<void()> unblock = {});
  BoundedThread(const BoundedThread &) = delete;
  BoundedThread &operator=(const BoundedThread &) = delete;
  ~BoundedThread();

  // True if the body has returned, waiting up to `within_ms` for it.
  bool Finished(int within_ms);
  // True once the thread has been asleep in the kernel for three looks in a row (and 20 ms more),
  // i.e. it is blocked in its call, past any spinning.
  bool Blocked(int within_ms = 1000);
  void Signal(int signal_number);

 private:
  std::function<void()> unblock_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

// Runs `body` (which may use gtest assertions) in a child process, so that a deadlock or a crash
// fails this test instead of hanging or ending the run. The child's own gtest prints its failures;
// the parent sees the exit status.
void InChild(const std::function<void()> &body, int timeout_ms = 8000);

}  // namespace loopfast::test

#endif  // LOOPFAST_TESTS_BLOCKED_CALL_H_
