// Threads and signals on fast sockets, every wait bounded: several threads on one socket, a
// blocked call ended from another thread (shutdown, close), and signals meeting blocking calls
// (with and without SA_RESTART, before and after bytes moved, with socket timeouts, handlers that
// use sockets themselves). Every connection under test is first checked to be fast; where kernel
// TCP can be put in the same state it runs in the same test, and its answer is the expected one.
//
// A bug must fail, never hang: blocked calls run on a BoundedThread (the test waits for them with
// a bound; at the end a stuck one is unblocked, and if nothing frees it the process aborts with a
// message), stream readers have SO_RCVTIMEO, and scenarios that could deadlock inside a signal
// handler run in a child process reaped with a timeout.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

const char *PathName(bool fast) { return fast ? "fast" : "kernel"; }

// Polls `done` every millisecond for up to `within_ms`.
bool WaitFor(const std::function<bool()> &done, int within_ms) {
  const auto start = Clock::now();
  while (!done()) {
    if (MsSince(start) > within_ms) return false;
    SleepMs(1);
  }
  return true;
}

struct ScopedFd {
  int fd = -1;
  explicit ScopedFd(int f) : fd(f) {}
  ~ScopedFd() {
    if (fd >= 0) close(fd);
  }
  ScopedFd(const ScopedFd &) = delete;
  ScopedFd &operator=(const ScopedFd &) = delete;
};

// Both ends in this process.
struct Pair {
  int client = -1;
  int server = -1;
  ~Pair() {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
  }
};

// A connection through `listener` (bound to `port`), settled and checked.
void AcceptPair(int listener, uint16_t port, bool fast, Pair *pair) {
  pair->client = Connect({AF_INET, "127.0.0.1", port}, fast);
  ASSERT_GE(pair->client, 0);
  pair->server = accept(listener, nullptr, nullptr);
  ASSERT_GE(pair->server, 0) << std::strerror(errno);
  Settle(pair->client, pair->server, fast);
}

void MakePair(bool fast, Pair *pair) {
  uint16_t port = 0;
  const ScopedFd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
  ASSERT_GE(listener.fd, 0);
  AcceptPair(listener.fd, port, fast, pair);
}

void SetTimeout(int fd, int option, int ms) {
  const timeval timeout = {ms / 1000, (ms % 1000) * 1000};
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, option, &timeout, sizeof timeout), 0);
}

// Sends pattern bytes of stream `seed` from `*offset` with MSG_DONTWAIT until the connection
// has taken nothing more for a while, so that the next blocking send cannot place a single byte.
// Kernel TCP on this machine takes more 40-60 ms and again ~260 ms after the first EAGAIN (its
// timers probe the closed window), so it must stay full for 350 ms; a fast ring only changes
// when its reader reads.
void FillUntilFull(int fd, uint64_t seed, uint64_t *offset) {
  const double quiet_ms = loopfast_path_of(fd) == LOOPFAST_PATH_FAST ? 30 : 350;
  auto quiet_since = Clock::now();
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 10000; ++i) {
      const std::vector<uint8_t> chunk = Pattern(seed, *offset, 1 << 16);
      const ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n <= 0) {
        ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
        break;
      }
      *offset += size_t(n);
      quiet_since = Clock::now();
    }
    if (MsSince(quiet_since) >= quiet_ms) return;
    SleepMs(10);
  }
  FAIL() << "the connection never stopped taking bytes";
}

// What a reader of a whole stream saw.
struct Drained {
  uint64_t bytes = 0;
  bool intact = true;  // every byte was the pattern's
  bool ended = false;  // end of stream seen
  int error = 0;       // or the error that ended it (EAGAIN: SO_RCVTIMEO expired)
};

// Reads `fd` to end of stream, checking every byte against stream `seed`. Bounded by a 2 s
// SO_RCVTIMEO set here.
void DrainAndCheck(int fd, uint64_t seed, Drained *out) {
  const timeval timeout = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::vector<uint8_t> buffer(1 << 18);
  for (;;) {
    const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
    if (n == 0) {
      out->ended = true;
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      out->error = errno;
      return;
    }
    for (ssize_t i = 0; out->intact && i < n; ++i) {
      out->intact = buffer[size_t(i)] == PatternByte(seed, out->bytes + uint64_t(i));
    }
    out->bytes += uint64_t(n);
  }
}

std::string Describe(const Drained &d) {
  return std::to_string(d.bytes) + " bytes, " + (d.intact ? "intact" : "CORRUPT") + ", " +
         (d.ended ? "ended" : std::string("stopped: ") + std::strerror(d.error));
}

// ---- Watchdog pieces ----

// The signal a stuck call is finally poked with: its handler has no SA_RESTART, so a system call
// sleeping in the kernel ends with EINTR. (Installed at each use: other tests reset handlers.)
const int kRemedySignal = SIGRTMIN + 3;
void IgnoreRemedy(int) {}

void InstallRemedyHandler() {
  struct sigaction action = {};
  action.sa_handler = IgnoreRemedy;
  sigemptyset(&action.sa_mask);
  sigaction(kRemedySignal, &action, nullptr);
}

// The scheduler state of one of our threads ('S': sleeping in the kernel).
char ThreadState(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return '?';
  return line[paren + 2];
}

// A call expected to block, on its own thread. The test waits for it with a bound (Finished).
// If it is still running when the object goes, `unblock` runs and the remedy signal is sent
// repeatedly; if even that does not free it within 1.5 s the process aborts with a message (a hang
// becomes a failure, not a stuck run). Declare it after everything its body uses.
class BoundedThread {
 public:
  explicit BoundedThread(std::function<void()> body, std::function<void()> unblock = {})
      : unblock_(std::move(unblock)) {
    thread_ = std::thread([this, body = std::move(body)] {
      tid_.store(pid_t(syscall(SYS_gettid)));
      body();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        done_ = true;
      }
      done_cv_.notify_all();
    });
  }
  BoundedThread(const BoundedThread &) = delete;
  BoundedThread &operator=(const BoundedThread &) = delete;

  ~BoundedThread() {
    if (!Finished(0)) {
      if (unblock_) unblock_();
      InstallRemedyHandler();
      for (int i = 0; i < 15 && !Finished(100); ++i) {
        pthread_kill(thread_.native_handle(), kRemedySignal);
      }
      if (!Finished(0)) {
        std::fprintf(stderr, "%s: a blocked thread survived every remedy; aborting\n",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
        const rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        std::abort();
      }
    }
    thread_.join();
  }

  // True if the body has returned, waiting up to `within_ms` for it.
  bool Finished(int within_ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    return done_cv_.wait_for(lock, std::chrono::milliseconds(within_ms), [this] { return done_; });
  }

  // True once the thread has been asleep in the kernel for three looks in a row (and 20 ms more),
  // i.e. it is blocked in its call, past any spinning.
  bool Blocked(int within_ms = 1000) {
    const auto start = Clock::now();
    int sleeping = 0;
    while (MsSince(start) < within_ms) {
      const pid_t tid = tid_.load();
      if (tid != 0 && !Finished(0) && ThreadState(tid) == 'S') {
        if (++sleeping == 3) {
          SleepMs(20);
          return !Finished(0);
        }
      } else {
        sleeping = 0;
      }
      SleepMs(3);
    }
    return false;
  }

  void Signal(int signal_number) { pthread_kill(thread_.native_handle(), signal_number); }

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
void InChild(const std::function<void()> &body, int timeout_ms = 8000) {
  const pid_t pid = Spawn([&] {
    body();
    const int status = ::testing::Test::HasFailure() ? 1 : 0;
    std::fflush(nullptr);
    return status;
  });
  ASSERT_GT(pid, 0);
  EXPECT_EQ(Reap(pid, timeout_ms), 0)
      << "the child running this scenario failed (its failures are printed above), hung or died";
}

// A handler counting its signals; set for one scope, the previous one restored after.
std::atomic<int> handled{0};
void CountSignal(int) { handled.fetch_add(1); }

class ScopedHandler {
 public:
  ScopedHandler(int signal_number, void (*handler)(int), bool restart)
      : signal_number_(signal_number) {
    struct sigaction action = {};
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = restart ? SA_RESTART : 0;
    handled = 0;
    EXPECT_EQ(sigaction(signal_number, &action, &previous_), 0);
  }
  ~ScopedHandler() { sigaction(signal_number_, &previous_, nullptr); }
  ScopedHandler(const ScopedHandler &) = delete;
  ScopedHandler &operator=(const ScopedHandler &) = delete;

 private:
  int signal_number_;
  struct sigaction previous_ = {};
};

// A call's return value and errno.
struct CallResult {
  ssize_t value = -2;
  int error = 0;
};

std::string Describe(const CallResult &r) {
  return std::to_string(r.value) +
         (r.value < 0 ? std::string(" (") + strerrorname_np(r.error) + ")" : std::string());
}

// ===================================== Threads =====================================

// Two threads, 2,000 blocking sends of 1,000 bytes each on one fast socket, while a reader with
// random read sizes and pauses keeps the ring near full (so sends keep finding too little room
// and both senders wait on it). Each send
// must arrive whole and in its thread's order: the stream is a sequence of whole messages.
TEST(ThreadTest, ConcurrentBlockingSendsEachArriveWholeAndInOrder) {
  constexpr uint32_t kMessages = 2000;
  constexpr size_t kSize = 1000;
  constexpr size_t kTotal = 2 * kMessages * kSize;
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(true, &pair));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_SNDTIMEO, 3000));  // stall: fail, not hang
  ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.server, SO_RCVTIMEO, 3000));
  auto message = [](int thread, uint32_t index) {
    std::vector<uint8_t> m = Pattern((uint64_t(thread) << 32) | index, 0, kSize);
    m[0] = uint8_t('A' + thread);
    std::memcpy(&m[1], &index, sizeof index);
    return m;
  };
  std::vector<uint8_t> stream;
  stream.reserve(kTotal);
  std::string read_failure;
  BoundedThread reader([&] {
    std::mt19937 rng(7);
    std::vector<uint8_t> buffer(4000);
    while (stream.size() < kTotal) {
      const size_t want = std::min<size_t>(1 + rng() % buffer.size(), kTotal - stream.size());
      const ssize_t n = recv(pair.server, buffer.data(), want, 0);
      if (n <= 0) {
        read_failure = "recv returned " + std::to_string(n) + " after " +
                       std::to_string(stream.size()) + " bytes: " + std::strerror(errno);
        return;
      }
      stream.insert(stream.end(), buffer.begin(), buffer.begin() + n);
      if (rng() % 32 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::atomic<int> started{0};
  std::string send_failure[2];
  auto sender = [&](int thread) {
    std::vector<std::vector<uint8_t>> messages;
    for (uint32_t i = 0; i < kMessages; ++i) messages.push_back(message(thread, i));
    started.fetch_add(1);
    while (started.load() < 2) {
    }
    for (uint32_t i = 0; i < kMessages; ++i) {
      const ssize_t n = send(pair.client, messages[i].data(), kSize, MSG_NOSIGNAL);
      if (n != ssize_t(kSize)) {
        send_failure[thread] = "send of message " + std::to_string(i) + " returned " +
                               std::to_string(n) + ": " + std::strerror(errno);
        return;
      }
    }
  };
  BoundedThread first([&] { sender(0); });
  BoundedThread second([&] { sender(1); });
  ASSERT_TRUE(first.Finished(5000));
  ASSERT_TRUE(second.Finished(5000));
  ASSERT_TRUE(reader.Finished(5000));
  EXPECT_EQ(send_failure[0], "");
  EXPECT_EQ(send_failure[1], "");
  EXPECT_EQ(read_failure, "");
  ASSERT_EQ(stream.size(), kTotal);
  uint32_t next[2] = {0, 0};
  int switches = 0, previous = -1;
  for (size_t k = 0; k < 2 * kMessages; ++k) {
    const uint8_t *m = &stream[k * kSize];
    const int thread = m[0] - 'A';
    uint32_t index = 0;
    std::memcpy(&index, m + 1, sizeof index);
    const bool whole = (thread == 0 || thread == 1) && index == next[thread] &&
                       std::memcmp(m, message(thread, index).data(), kSize) == 0;
    if (!whole) {
      ADD_FAILURE() << "stream bytes " << k * kSize << ".." << (k + 1) * kSize - 1
                    << " are not one whole message (expected A#" << next[0] << " or B#" << next[1]
                    << "; found header '" << char(m[0]) << "' #" << index << ")";
      break;
    }
    switches += previous >= 0 && previous != thread;
    previous = thread;
    ++next[thread];
  }
  EXPECT_EQ(next[0], kMessages);
  EXPECT_EQ(next[1], kMessages);
  RecordProperty("thread_switches_in_stream", switches);
  EXPECT_EQ(ObservedPath(pair.client), "fast");
  EXPECT_EQ(ObservedPath(pair.server), "fast");
}

// One thread sends 64 MiB while another receives 64 MiB on the same socket, from an echo
// process: both directions of one end busy at once, byte-exact.
TEST(ThreadTest, OneThreadSends64MiBWhileAnotherReceivesTheEchoOnTheSameSocket) {
  constexpr size_t kBytes = 64 << 20;
  uint16_t port = 0;
  const int listener = Listen(AF_INET, "127.0.0.1", true, &port);
  ASSERT_GE(listener, 0);
  const pid_t echo = Spawn([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return 90;
    const timeval timeout = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::vector<char> buffer(1 << 18);
    uint64_t echoed = 0;
    for (;;) {
      const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
      if (n == 0) break;
      if (n < 0) return 3;
      if (!WriteAll(fd, buffer.data(), size_t(n))) return 4;
      echoed += uint64_t(n);
    }
    if (ObservedPath(fd) != "fast") return 1;
    close(fd);
    return echoed == kBytes + 1 ? 0 : 5;
  });
  close(listener);
  ScopedFd fd(Connect({AF_INET, "127.0.0.1", port}, true));
  ASSERT_GE(fd.fd, 0);
  char byte = 's';
  ASSERT_TRUE(WriteAll(fd.fd, &byte, 1));
  ASSERT_TRUE(ReadAll(fd.fd, &byte, 1));
  ASSERT_EQ(byte, 's');
  ASSERT_EQ(ObservedPath(fd.fd), "fast");
  ASSERT_NO_FATAL_FAILURE(SetTimeout(fd.fd, SO_RCVTIMEO, 3000));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(fd.fd, SO_SNDTIMEO, 3000));
  const std::vector<uint8_t> data = Pattern(11, 0, kBytes);
  std::string send_failure = "not finished", receive_failure = "not finished";
  uint64_t received = 0;
  auto kill_echo = [&] { kill(echo, SIGKILL); };
  BoundedThread receiver(
      [&] {
        std::vector<uint8_t> buffer(1 << 18);
        while (received < kBytes) {
          const size_t want = std::min<uint64_t>(buffer.size(), kBytes - received);
          const ssize_t n = recv(fd.fd, buffer.data(), want, 0);
          if (n <= 0) {
            receive_failure = "recv returned " + std::to_string(n) + " at byte " +
                              std::to_string(received) + ": " + std::strerror(errno);
            return;
          }
          if (std::memcmp(buffer.data(), data.data() + received, size_t(n)) != 0) {
            receive_failure = "wrong bytes within " + std::to_string(received) + ".." +
                              std::to_string(received + uint64_t(n));
            return;
          }
          received += uint64_t(n);
        }
        char extra;
        const ssize_t n = recv(fd.fd, &extra, 1, 0);
        receive_failure = n == 0 ? "" : "no end of stream after the echo: " + std::to_string(n);
      },
      kill_echo);
  BoundedThread sender(
      [&] {
        std::mt19937 rng(3);
        size_t sent = 0;
        while (sent < kBytes) {
          const size_t chunk = std::min<size_t>(1 + rng() % (1 << 20), kBytes - sent);
          const ssize_t n = send(fd.fd, data.data() + sent, chunk, MSG_NOSIGNAL);
          if (n <= 0) {
            send_failure = "send returned " + std::to_string(n) + " at byte " +
                           std::to_string(sent) + ": " + std::strerror(errno);
            return;
          }
          sent += size_t(n);
        }
        send_failure = shutdown(fd.fd, SHUT_WR) == 0 ? "" : "shutdown failed";
      },
      kill_echo);
  ASSERT_TRUE(sender.Finished(8000));
  ASSERT_TRUE(receiver.Finished(8000));
  EXPECT_EQ(send_failure, "");
  EXPECT_EQ(receive_failure, "");
  EXPECT_EQ(received, kBytes);
  EXPECT_EQ(ObservedPath(fd.fd), "fast");
  EXPECT_EQ(Reap(echo, 5000), 0);
}

// How a call blocked in one thread ended when another thread acted on the socket.
struct Wake {
  bool woke = false;  // within 1 s
  double ms = 0;
  CallResult call;
  uint32_t events = 0;  // for epoll and poll
  CallResult action;    // the shutdown itself
};

std::string Describe(const Wake &w) {
  char events[16];
  std::snprintf(events, sizeof events, "0x%x", w.events);
  return std::string(w.woke ? "woke" : "STILL BLOCKED") + " after " + std::to_string(int(w.ms)) +
         " ms, result " + Describe(w.call) + ", events " + events + "; the action returned " +
         Describe(w.action);
}

// Blocks `call` on a thread, then runs `act` from this one; `unblock` is the watchdog's remedy.
void WakeBy(const std::function<void(CallResult *)> &call, const std::function<int()> &act,
            const std::function<void()> &unblock, Wake *wake) {
  CallResult got;
  BoundedThread blocked([&] { call(&got); }, unblock);
  ASSERT_TRUE(blocked.Blocked()) << "the call did not block";
  const auto start = Clock::now();
  errno = 0;
  wake->action.value = act();
  wake->action.error = errno;
  wake->woke = blocked.Finished(1000);
  wake->ms = MsSince(start);
  if (wake->woke) wake->call = got;
}

// The fast result must be kernel TCP's, and as prompt.
void ExpectSameWake(const Wake &kernel, const Wake &fast) {
  ASSERT_TRUE(kernel.woke) << "reference: " << Describe(kernel);
  EXPECT_TRUE(fast.woke) << Describe(fast);
  EXPECT_LT(fast.ms, 500) << Describe(fast);
  EXPECT_EQ(fast.call.value, kernel.call.value)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  EXPECT_EQ(fast.call.error, kernel.call.error)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  EXPECT_EQ(fast.events, kernel.events)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  EXPECT_EQ(fast.action.value, kernel.action.value)
      << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
}

void RecvEndedByShutdown(bool fast, Wake *wake) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  char byte;
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = recv(pair.client, &byte, 1, 0);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_RDWR); }, [&] { shutdown(pair.server, SHUT_WR); },
      wake);
}

TEST(ThreadTest, ShutdownFromAnotherThreadEndsABlockedRecvAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(RecvEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, 0) << Describe(kernel);  // the reference: end of stream
  ASSERT_NO_FATAL_FAILURE(RecvEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

void SendEndedByShutdown(bool fast, Wake *wake) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  uint64_t offset = 0;
  ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, 5, &offset));
  const std::vector<uint8_t> more = Pattern(5, offset, 1 << 20);
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = send(pair.client, more.data(), more.size(), MSG_NOSIGNAL);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_WR); },
      [&] {
        close(pair.server);
        pair.server = -1;
      },
      wake);
}

TEST(ThreadTest, ShutdownFromAnotherThreadEndsASendBlockedOnAFullRingAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(SendEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, -1) << Describe(kernel);  // the reference: EPIPE
  ASSERT_NO_FATAL_FAILURE(SendEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

void AcceptEndedByShutdown(bool fast, Wake *wake) {
  uint16_t port = 0;
  const ScopedFd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
  ASSERT_GE(listener.fd, 0);
  {
    Pair first;  // the listener has carried a connection of the asked path
    ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.fd, port, fast, &first));
  }
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = accept(listener.fd, nullptr, nullptr);
        r->error = errno;
        if (r->value >= 0) close(int(r->value));
      },
      [&] { return shutdown(listener.fd, SHUT_RDWR); }, {}, wake);
}

TEST(ThreadTest, ShutdownFromAnotherThreadEndsABlockedAcceptAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(AcceptEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, -1) << Describe(kernel);  // the reference: EINVAL
  EXPECT_EQ(kernel.call.error, EINVAL) << Describe(kernel);
  ASSERT_NO_FATAL_FAILURE(AcceptEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

void EpollEndedByShutdown(bool fast, Wake *wake) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  const ScopedFd epfd(epoll_create1(EPOLL_CLOEXEC));
  ASSERT_GE(epfd.fd, 0);
  epoll_event interest = {};
  interest.events = EPOLLIN | EPOLLRDHUP;
  interest.data.u64 = 0x5eed;
  ASSERT_EQ(epoll_ctl(epfd.fd, EPOLL_CTL_ADD, pair.client, &interest), 0);
  epoll_event event = {};
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = epoll_wait(epfd.fd, &event, 1, 3000);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_RDWR); }, {}, wake);
  if (wake->woke && wake->call.value == 1) {
    wake->events = event.events;
    EXPECT_EQ(event.data.u64, 0x5eedu);
  }
}

TEST(ThreadTest, ShutdownFromAnotherThreadWakesABlockedEpollWaitAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(EpollEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, 1) << Describe(kernel);
  EXPECT_EQ(kernel.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP),
            uint32_t(EPOLLIN | EPOLLRDHUP | EPOLLHUP))
      << Describe(kernel);
  ASSERT_NO_FATAL_FAILURE(EpollEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

void PollEndedByShutdown(bool fast, Wake *wake) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  pollfd entry = {pair.client, POLLIN | POLLRDHUP, 0};
  WakeBy(
      [&](CallResult *r) {
        errno = 0;
        r->value = poll(&entry, 1, 3000);
        r->error = errno;
      },
      [&] { return shutdown(pair.client, SHUT_RDWR); }, {}, wake);
  if (wake->woke) wake->events = uint16_t(entry.revents);
}

TEST(ThreadTest, ShutdownFromAnotherThreadWakesABlockedPollAsOnKernelTcp) {
  Wake kernel, fast;
  ASSERT_NO_FATAL_FAILURE(PollEndedByShutdown(false, &kernel));
  EXPECT_EQ(kernel.call.value, 1) << Describe(kernel);
  ASSERT_NO_FATAL_FAILURE(PollEndedByShutdown(true, &fast));
  ExpectSameWake(kernel, fast);
}

// A MSG_DONTWAIT call never waits, even while another thread is blocked in a call of the same
// direction on the same socket (kernel TCP releases the socket while a caller sleeps): recv with
// nothing to read and send into a full connection both fail with EAGAIN at once.
void DontWaitBesideABlockedCall(bool fast, bool sending, CallResult *dontwait, double *ms) {
  constexpr uint64_t kSeed = 61;
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  uint64_t filled = 0;
  std::vector<uint8_t> more;
  if (sending) {
    ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, kSeed, &filled));
    more = Pattern(kSeed, filled, 1 << 20);
  }
  CallResult blocked_result;
  char buffer[16];
  BoundedThread blocked(
      [&] {
        errno = 0;
        blocked_result.value = sending ? send(pair.client, more.data(), more.size(), MSG_NOSIGNAL)
                                       : recv(pair.client, buffer, sizeof buffer, 0);
        blocked_result.error = errno;
      },
      [&] {
        close(pair.server);
        pair.server = -1;
      });
  ASSERT_TRUE(blocked.Blocked());
  char byte = 'd';
  const auto start = Clock::now();
  BoundedThread other([&] {
    errno = 0;
    dontwait->value = sending ? send(pair.client, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL)
                              : recv(pair.client, &byte, 1, MSG_DONTWAIT);
    dontwait->error = errno;
    *ms = MsSince(start);
  });
  EXPECT_TRUE(other.Finished(500)) << "a MSG_DONTWAIT " << (sending ? "send" : "recv")
                                   << " is waiting behind the blocked thread's call";
  EXPECT_FALSE(blocked.Finished(0)) << "the blocked call ended: " << Describe(blocked_result);
  // Then the blocked call completes normally (and frees the other, if it waited for it).
  Drained drained;
  {
    BoundedThread drainer([&] {
      if (sending) DrainAndCheck(pair.server, kSeed, &drained);
    });
    if (!sending) {
      ASSERT_TRUE(WriteAll(pair.server, "wake", 4));
    }
    ASSERT_TRUE(blocked.Finished(2000));
    ASSERT_TRUE(other.Finished(1000));
    if (sending) {
      EXPECT_EQ(blocked_result.value, ssize_t(more.size())) << Describe(blocked_result);
      ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
      ASSERT_TRUE(drainer.Finished(3000));
    } else {
      EXPECT_EQ(blocked_result.value, 4) << Describe(blocked_result);
    }
  }
  if (sending) {
    const uint64_t extra = uint64_t(std::max<ssize_t>(dontwait->value, 0));
    EXPECT_TRUE(drained.ended) << Describe(drained);
    if (extra == 0) {
      EXPECT_TRUE(drained.intact) << Describe(drained);
    }
    EXPECT_EQ(drained.bytes, filled + more.size() + extra) << Describe(drained);
  }
}

TEST(ThreadTest, DontWaitRecvBesideARecvBlockedInAnotherThreadFailsAtOnceAsOnKernelTcp) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    CallResult got;
    double ms = 0;
    ASSERT_NO_FATAL_FAILURE(DontWaitBesideABlockedCall(fast, /*sending=*/false, &got, &ms));
    EXPECT_EQ(got.value, -1) << Describe(got) << " after " << ms << " ms";
    EXPECT_EQ(got.error, EAGAIN) << Describe(got) << " after " << ms << " ms";
    EXPECT_LT(ms, 100);
  }
}

TEST(ThreadTest, DontWaitSendBesideASendBlockedInAnotherThreadFailsAtOnceAsOnKernelTcp) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    CallResult got;
    double ms = 0;
    ASSERT_NO_FATAL_FAILURE(DontWaitBesideABlockedCall(fast, /*sending=*/true, &got, &ms));
    EXPECT_EQ(got.value, -1) << Describe(got) << " after " << ms << " ms";
    EXPECT_EQ(got.error, EAGAIN) << Describe(got) << " after " << ms << " ms";
    EXPECT_LT(ms, 100);
  }
}

// Linux: close() of a socket another thread is blocked reading does not end that read (the call
// holds its own reference to the socket); the read goes on and returns what the peer sends next,
// and the connection ends (the peer reads end of stream) once the read has returned. Run in a
// child: a fast path that tears the connection down under the reader could crash.
struct CloseStory {
  bool returned_at_close = false;
  bool returned_after_data = false;  // within 1 s of the peer's send
  bool returned_after_fin = false;   // if not: within 0.5 s of the peer's shutdown(SHUT_WR)
  CallResult read;
  std::string bytes;
  CallResult peer_after;  // what the peer reads once the reader is done
};

std::string Describe(const CloseStory &c) {
  return std::string(c.returned_at_close ? "recv returned at the close"
                     : c.returned_after_data
                         ? "recv went on and returned after the peer sent"
                         : (c.returned_after_fin
                                ? "recv ignored the peer's bytes; returned on its FIN"
                                : "recv ignored the peer's bytes and its FIN; "
                                  "only a signal ended it")) +
         ", result " + Describe(c.read) + " \"" + c.bytes + "\", the peer then read " +
         Describe(c.peer_after);
}

void CloseUnderABlockedRecv(bool fast, CloseStory *story) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.server, SO_RCVTIMEO, 1000));
  char buffer[16] = {};
  CallResult got;
  {
    BoundedThread reader([&, fd = pair.client] {
      errno = 0;
      got.value = recv(fd, buffer, sizeof buffer, 0);
      got.error = errno;
    });
    ASSERT_TRUE(reader.Blocked());
    ASSERT_EQ(close(pair.client), 0);
    pair.client = -1;
    story->returned_at_close = reader.Finished(200);
    ASSERT_EQ(send(pair.server, "late", 4, MSG_NOSIGNAL), 4);
    story->returned_after_data = reader.Finished(1000);
    if (!story->returned_after_data) {
      shutdown(pair.server, SHUT_WR);
      story->returned_after_fin = reader.Finished(500);
    }
  }  // if still blocked, the watchdog's signal ends the read here (EINTR)
  story->read = got;
  if (got.value > 0) story->bytes.assign(buffer, size_t(got.value));
  char byte;
  errno = 0;
  story->peer_after.value = recv(pair.server, &byte, 1, 0);
  story->peer_after.error = errno;
}

// loopfast keeps the connection for the blocked call (a private copy of the kernel socket) and
// ends it when that call returns.
TEST(ThreadTest, CloseFromAnotherThreadLeavesABlockedRecvAsOnKernelTcp) {
  InChild([] {
    CloseStory kernel, fast;
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedRecv(false, &kernel));
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedRecv(true, &fast));
    // The reference: the read goes on, gets the peer's bytes, then the peer sees end of stream.
    ASSERT_TRUE(!kernel.returned_at_close && kernel.returned_after_data && kernel.bytes == "late")
        << "kernel: " << Describe(kernel);
    EXPECT_EQ(fast.returned_at_close, kernel.returned_at_close) << "fast: " << Describe(fast);
    EXPECT_EQ(fast.returned_after_data, kernel.returned_after_data) << "fast: " << Describe(fast);
    EXPECT_EQ(fast.read.value, kernel.read.value) << "fast: " << Describe(fast);
    EXPECT_EQ(fast.bytes, kernel.bytes);
    EXPECT_EQ(fast.peer_after.value, kernel.peer_after.value)
        << "fast: " << Describe(fast) << "\nkernel: " << Describe(kernel);
  });
}

// The same for a send blocked on a full connection: on Linux it goes on once the peer reads,
// places every byte, and the peer then reads the whole stream and its end.
void CloseUnderABlockedSend(bool fast, CallResult *sent, Drained *peer_read, uint64_t *offered) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  uint64_t offset = 0;
  ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, 11, &offset));
  const std::vector<uint8_t> last = Pattern(11, offset, 1 << 16);
  *offered = offset + last.size();
  {
    BoundedThread writer(
        [&, fd = pair.client] {
          errno = 0;
          sent->value = send(fd, last.data(), last.size(), MSG_NOSIGNAL);
          sent->error = errno;
        },
        [&] { shutdown(pair.server, SHUT_RD); });
    ASSERT_TRUE(writer.Blocked());
    ASSERT_EQ(close(pair.client), 0);
    pair.client = -1;
    EXPECT_FALSE(writer.Finished(100)) << "send returned at the close: " << Describe(*sent);
    DrainAndCheck(pair.server, 11, peer_read);
    EXPECT_TRUE(writer.Finished(1000));
  }
}

TEST(ThreadTest, CloseFromAnotherThreadLeavesABlockedSendAsOnKernelTcp) {
  InChild([] {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(PathName(fast));
      CallResult sent;
      Drained peer_read;
      uint64_t offered = 0;
      ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedSend(fast, &sent, &peer_read, &offered));
      EXPECT_EQ(sent.value, 1 << 16) << Describe(sent);
      EXPECT_EQ(peer_read.bytes, offered) << Describe(peer_read);
      EXPECT_TRUE(peer_read.intact && peer_read.ended) << Describe(peer_read);
    }
  });
}

// close() of a listening socket another thread is blocked accepting on: on Linux the accept
// goes on (it holds the socket, which stays listening) and returns the next connection.
struct AcceptStory {
  bool returned_at_close = false;
  CallResult accepted;
  bool exchanged = false;  // a byte each way over the connection it returned
};

void CloseUnderABlockedAccept(bool fast, AcceptStory *story) {
  uint16_t port = 0;
  int listener = Listen(AF_INET, "127.0.0.1", fast, &port);
  ASSERT_GE(listener, 0);
  {
    BoundedThread acceptor([&, fd = listener] {
      errno = 0;
      story->accepted.value = accept(fd, nullptr, nullptr);
      story->accepted.error = errno;
    });
    ASSERT_TRUE(acceptor.Blocked());
    ASSERT_EQ(close(listener), 0);
    story->returned_at_close = acceptor.Finished(200);
    if (!story->returned_at_close) {
      const ScopedFd client(Connect({AF_INET, "127.0.0.1", port}, fast));
      ASSERT_GE(client.fd, 0);
      ASSERT_TRUE(acceptor.Finished(1000)) << "accept ignored the connection";
      const ScopedFd served(int(story->accepted.value));
      char byte = 0;
      story->exchanged = served.fd >= 0 && send(client.fd, "c", 1, MSG_NOSIGNAL) == 1 &&
                         recv(served.fd, &byte, 1, 0) == 1 && byte == 'c' &&
                         send(served.fd, "s", 1, MSG_NOSIGNAL) == 1 &&
                         recv(client.fd, &byte, 1, 0) == 1 && byte == 's';
    }
  }
}

TEST(ThreadTest, CloseFromAnotherThreadLeavesABlockedAcceptAsOnKernelTcp) {
  InChild([] {
    AcceptStory kernel, fast;
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedAccept(false, &kernel));
    ASSERT_TRUE(!kernel.returned_at_close && kernel.accepted.value >= 0 && kernel.exchanged)
        << "kernel: " << Describe(kernel.accepted);
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedAccept(true, &fast));
    EXPECT_FALSE(fast.returned_at_close) << Describe(fast.accepted);
    EXPECT_GE(fast.accepted.value, 0) << Describe(fast.accepted);
    EXPECT_TRUE(fast.exchanged);
  });
}

// close() of a socket in an epoll set while another thread waits on the set: on Linux the
// close removes the socket from the set (no other descriptor holds it), the wait does not end,
// and the peer's bytes arriving later are no event. The wait then times out.
void CloseUnderABlockedEpollWait(bool fast, bool *returned_at_close, CallResult *waited) {
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  const ScopedFd epfd(epoll_create1(EPOLL_CLOEXEC));
  ASSERT_GE(epfd.fd, 0);
  epoll_event interest = {};
  interest.events = EPOLLIN | EPOLLRDHUP;
  ASSERT_EQ(epoll_ctl(epfd.fd, EPOLL_CTL_ADD, pair.client, &interest), 0);
  epoll_event event = {};
  {
    BoundedThread waiter([&] {
      errno = 0;
      waited->value = epoll_wait(epfd.fd, &event, 1, 600);
      waited->error = errno;
    });
    ASSERT_TRUE(waiter.Blocked());
    ASSERT_EQ(close(pair.client), 0);
    pair.client = -1;
    *returned_at_close = waiter.Finished(100);
    ASSERT_EQ(send(pair.server, "late", 4, MSG_NOSIGNAL), 4);
    ASSERT_TRUE(waiter.Finished(2000));
  }
}

TEST(ThreadTest, CloseFromAnotherThreadUnderABlockedEpollWaitAsOnKernelTcp) {
  InChild([] {
    bool kernel_at_close = true, fast_at_close = true;
    CallResult kernel, fast;
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedEpollWait(false, &kernel_at_close, &kernel));
    ASSERT_TRUE(!kernel_at_close && kernel.value == 0) << "kernel: " << Describe(kernel);
    ASSERT_NO_FATAL_FAILURE(CloseUnderABlockedEpollWait(true, &fast_at_close, &fast));
    EXPECT_FALSE(fast_at_close) << Describe(fast);
    EXPECT_EQ(fast.value, 0) << Describe(fast);
  });
}

// ===================================== Signals =====================================

TEST(SignalTest, RecvInterruptedWithoutSaRestartFailsWithEintr) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    Pair pair;
    ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
    ScopedHandler handler(SIGUSR1, CountSignal, /*restart=*/false);
    char buffer[64];
    CallResult got;
    BoundedThread reader(
        [&] {
          errno = 0;
          got.value = recv(pair.client, buffer, sizeof buffer, 0);
          got.error = errno;
        },
        [&] { shutdown(pair.server, SHUT_WR); });
    ASSERT_TRUE(reader.Blocked());
    const auto start = Clock::now();
    reader.Signal(SIGUSR1);
    ASSERT_TRUE(reader.Finished(1000)) << "recv still blocked 1 s after the signal";
    EXPECT_LT(MsSince(start), 500);
    EXPECT_EQ(handled.load(), 1);
    EXPECT_EQ(got.value, -1) << Describe(got);
    EXPECT_EQ(got.error, EINTR) << Describe(got);
    // Nothing lost or stuck: the connection carries the next bytes.
    ASSERT_TRUE(WriteAll(pair.server, "after", 5));
    char out[5];
    ASSERT_TRUE(ReadAll(pair.client, out, 5));
    EXPECT_EQ(std::string(out, 5), "after");
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  }
}

TEST(SignalTest, RecvInterruptedWithSaRestartResumesAndGetsTheLaterBytes) {
  const std::string later = "sent after the signal";
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    Pair pair;
    ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
    ScopedHandler handler(SIGUSR1, CountSignal, /*restart=*/true);
    char buffer[64];
    CallResult got;
    BoundedThread reader(
        [&] {
          errno = 0;
          got.value = recv(pair.client, buffer, sizeof buffer, 0);
          got.error = errno;
        },
        [&] { shutdown(pair.server, SHUT_WR); });
    ASSERT_TRUE(reader.Blocked());
    reader.Signal(SIGUSR1);
    ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
    EXPECT_FALSE(reader.Finished(150)) << "recv returned " << Describe(got) << " on a signal";
    ASSERT_TRUE(WriteAll(pair.server, later.data(), later.size()));
    ASSERT_TRUE(reader.Finished(1000)) << "recv still blocked after the bytes came";
    ASSERT_GT(got.value, 0) << Describe(got);
    std::string received(buffer, size_t(got.value));
    if (received.size() < later.size()) {  // a short read is TCP too; gather the rest
      std::string rest(later.size() - received.size(), '\0');
      ASSERT_TRUE(ReadAll(pair.client, rest.data(), rest.size()));
      received += rest;
    }
    EXPECT_EQ(received, later);
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  }
}

// A MSG_WAITALL recv that already holds some bytes returns them when a signal comes, with or
// without SA_RESTART (tcp_recvmsg stops on a pending signal once it has copied anything).
TEST(SignalTest, WaitAllRecvHoldingBytesReturnsThemWhenInterruptedEvenWithSaRestart) {
  for (const bool restart : {false, true}) {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(std::string(PathName(fast)) + (restart ? ", SA_RESTART" : ", no SA_RESTART"));
      Pair pair;
      ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
      ScopedHandler handler(SIGUSR1, CountSignal, restart);
      ASSERT_TRUE(WriteAll(pair.server, "0123456789", 10));
      SleepMs(5);
      char buffer[100];
      CallResult got;
      BoundedThread reader(
          [&] {
            errno = 0;
            got.value = recv(pair.client, buffer, sizeof buffer, MSG_WAITALL);
            got.error = errno;
          },
          [&] { shutdown(pair.server, SHUT_WR); });
      ASSERT_TRUE(reader.Blocked());
      reader.Signal(SIGUSR1);
      ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
      EXPECT_TRUE(reader.Finished(500)) << "MSG_WAITALL recv holding 10 bytes went on waiting";
      ASSERT_TRUE(WriteAll(pair.server, std::string(90, 'z').data(), 90));  // frees it if not
      ASSERT_TRUE(reader.Finished(1000));
      EXPECT_EQ(got.value, 10) << Describe(got);
      EXPECT_EQ(std::string(buffer, 10), "0123456789");
      EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
    }
  }
}

// A blocking send that could not place a byte (full ring): without SA_RESTART it fails with
// EINTR; with SA_RESTART it goes on and completes once the peer reads. The stream is exactly the
// fill plus what the call reported sent.
void SendIntoAFullConnection(bool fast, bool restart) {
  constexpr uint64_t kSeed = 41;
  Pair pair;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
  uint64_t filled = 0;
  ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, kSeed, &filled));
  const std::vector<uint8_t> more = Pattern(kSeed, filled, 1 << 20);
  ScopedHandler handler(SIGUSR1, CountSignal, restart);
  CallResult got;
  BoundedThread writer(
      [&] {
        errno = 0;
        got.value = send(pair.client, more.data(), more.size(), MSG_NOSIGNAL);
        got.error = errno;
      },
      [&] {
        close(pair.server);
        pair.server = -1;
      });
  ASSERT_TRUE(writer.Blocked());
  writer.Signal(SIGUSR1);
  ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
  if (restart) {
    EXPECT_FALSE(writer.Finished(150)) << "send returned " << Describe(got) << " on a signal";
  } else {
    ASSERT_TRUE(writer.Finished(500)) << "send still blocked after the signal";
    EXPECT_EQ(got.value, -1) << Describe(got);  // not a byte fitted before the signal
    EXPECT_EQ(got.error, EINTR) << Describe(got);
  }
  Drained drained;
  BoundedThread drainer([&] { DrainAndCheck(pair.server, kSeed, &drained); });
  ASSERT_TRUE(writer.Finished(2000)) << "send did not complete while the peer read";
  if (restart) {
    EXPECT_EQ(got.value, ssize_t(more.size())) << Describe(got);
  }
  ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
  ASSERT_TRUE(drainer.Finished(3000));
  EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
  EXPECT_EQ(drained.bytes, filled + uint64_t(std::max<ssize_t>(got.value, 0))) << Describe(drained);
  EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
}

TEST(SignalTest, SendBlockedOnAFullRingWithoutSaRestartFailsWithEintr) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ASSERT_NO_FATAL_FAILURE(SendIntoAFullConnection(fast, /*restart=*/false));
  }
}

TEST(SignalTest, SendBlockedOnAFullRingWithSaRestartCompletesAfterThePeerDrains) {
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    ASSERT_NO_FATAL_FAILURE(SendIntoAFullConnection(fast, /*restart=*/true));
  }
}

// A blocking send that has already placed bytes returns their count when a signal comes, with or
// without SA_RESTART (tcp_sendmsg: a pending signal ends the wait; copied bytes are reported, and
// a positive count is never restarted).
TEST(SignalTest, SendThatPlacedBytesReturnsTheirCountWhenInterruptedEvenWithSaRestart) {
  constexpr uint64_t kSeed = 43;
  const std::vector<uint8_t> big = Pattern(kSeed, 0, 16 << 20);
  for (const bool restart : {false, true}) {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(std::string(PathName(fast)) + (restart ? ", SA_RESTART" : ", no SA_RESTART"));
      Pair pair;
      ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
      ScopedHandler handler(SIGUSR1, CountSignal, restart);
      CallResult got;
      BoundedThread writer(
          [&] {
            errno = 0;
            got.value = send(pair.client, big.data(), big.size(), MSG_NOSIGNAL);
            got.error = errno;
          },
          [&] {
            close(pair.server);
            pair.server = -1;
          });
      ASSERT_TRUE(writer.Blocked());
      writer.Signal(SIGUSR1);
      ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
      const bool prompt = writer.Finished(500);
      EXPECT_TRUE(prompt) << "a send that had placed bytes went on waiting after the signal";
      Drained drained;
      BoundedThread drainer([&] { DrainAndCheck(pair.server, kSeed, &drained); });
      ASSERT_TRUE(writer.Finished(3000));
      if (prompt) {
        EXPECT_GT(got.value, 0) << Describe(got);
        EXPECT_LT(got.value, ssize_t(big.size())) << Describe(got);
      }
      ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
      ASSERT_TRUE(drainer.Finished(3000));
      EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
      EXPECT_EQ(drained.bytes, uint64_t(std::max<ssize_t>(got.value, 0))) << Describe(drained);
      EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
    }
  }
}

// connect blocks while the listener's accept queue is full (the kernel drops the SYN and sends
// it again after about a second). signal(7) lists connect among the calls SA_RESTART resumes;
// without it connect fails with EINTR, the handshake goes on, and a second connect waits for it
// and returns 0. Either way the connection then takes the path both ends chose.
void ConnectBehindAFullBacklog(bool fast, bool restart, CallResult *first, CallResult *second) {
  uint16_t port = 0;
  const ScopedFd listener(Listen(AF_INET, "127.0.0.1", fast, &port, /*backlog=*/0));
  ASSERT_GE(listener.fd, 0);
  ScopedFd filler(Connect({AF_INET, "127.0.0.1", port}, fast));  // fills the accept queue
  ASSERT_GE(filler.fd, 0);
  SleepMs(5);
  const ScopedFd client(TcpSocket(AF_INET, fast));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto *to = reinterpret_cast<const sockaddr *>(&address);
  ScopedHandler handler(SIGUSR1, CountSignal, restart);
  {
    BoundedThread connector([&] {
      errno = 0;
      first->value = connect(client.fd, to, sizeof address);
      first->error = errno;
    });
    ASSERT_TRUE(connector.Blocked());
    connector.Signal(SIGUSR1);
    ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
    if (restart) {
      EXPECT_FALSE(connector.Finished(100)) << "connect ended on the signal: " << Describe(*first);
    } else {
      EXPECT_TRUE(connector.Finished(500)) << "connect went on after the signal";
    }
    const ScopedFd served_filler(accept(listener.fd, nullptr, nullptr));  // makes room
    ASSERT_GE(served_filler.fd, 0);
    ASSERT_TRUE(connector.Finished(4000)) << "connect never completed";
  }
  if (first->value != 0) {
    errno = 0;
    second->value = connect(client.fd, to, sizeof address);
    second->error = errno;
  }
  const int server = accept(listener.fd, nullptr, nullptr);
  ASSERT_GE(server, 0);
  const ScopedFd served(server);
  Settle(client.fd, served.fd, fast);
}

void ConnectInterruptedBesideKernelTcp(bool restart) {
  InChild([restart] {
    CallResult kernel_first, kernel_second, fast_first, fast_second;
    ASSERT_NO_FATAL_FAILURE(
        ConnectBehindAFullBacklog(false, restart, &kernel_first, &kernel_second));
    ASSERT_NO_FATAL_FAILURE(ConnectBehindAFullBacklog(true, restart, &fast_first, &fast_second));
    if (restart) {
      EXPECT_EQ(kernel_first.value, 0) << "kernel: " << Describe(kernel_first);
    } else {
      EXPECT_EQ(kernel_first.error, EINTR) << "kernel: " << Describe(kernel_first);
      EXPECT_EQ(kernel_second.value, 0) << "kernel: " << Describe(kernel_second);
    }
    EXPECT_EQ(fast_first.value, kernel_first.value) << "fast: " << Describe(fast_first);
    EXPECT_EQ(fast_first.error, kernel_first.error) << "fast: " << Describe(fast_first);
    EXPECT_EQ(fast_second.value, kernel_second.value) << "fast: " << Describe(fast_second);
    EXPECT_EQ(fast_second.error, kernel_second.error) << "fast: " << Describe(fast_second);
  });
}

TEST(SignalTest, ConnectInterruptedWithoutSaRestartFailsWithEintrAndTheHandshakeGoesOn) {
  ConnectInterruptedBesideKernelTcp(false);
}

TEST(SignalTest, ConnectInterruptedWithSaRestartResumes) {
  ConnectInterruptedBesideKernelTcp(true);
}

// accept on a fast listener: EINTR without SA_RESTART (and the listener goes on working); with
// SA_RESTART it goes on waiting and returns the connection that comes later, fast.
TEST(SignalTest, AcceptInterruptedFailsWithEintrOrWithSaRestartReturnsTheLaterConnection) {
  for (const bool restart : {false, true}) {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(std::string(PathName(fast)) + (restart ? ", SA_RESTART" : ", no SA_RESTART"));
      uint16_t port = 0;
      const ScopedFd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
      ASSERT_GE(listener.fd, 0);
      {
        Pair first;
        ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.fd, port, fast, &first));
      }
      ScopedHandler handler(SIGUSR1, CountSignal, restart);
      CallResult got;
      BoundedThread acceptor(
          [&] {
            errno = 0;
            got.value = accept(listener.fd, nullptr, nullptr);
            got.error = errno;
          },
          [&] { shutdown(listener.fd, SHUT_RDWR); });
      ASSERT_TRUE(acceptor.Blocked());
      acceptor.Signal(SIGUSR1);
      ASSERT_TRUE(WaitFor([] { return handled.load() == 1; }, 1000));
      Pair next;
      if (!restart) {
        ASSERT_TRUE(acceptor.Finished(500)) << "accept still blocked after the signal";
        EXPECT_EQ(got.value, -1) << Describe(got);
        EXPECT_EQ(got.error, EINTR) << Describe(got);
        if (got.value >= 0) close(int(got.value));
        ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.fd, port, fast, &next));
      } else {
        EXPECT_FALSE(acceptor.Finished(150)) << "accept returned " << Describe(got);
        next.client = Connect({AF_INET, "127.0.0.1", port}, fast);
        ASSERT_TRUE(acceptor.Finished(1000)) << "accept did not return the new connection";
        ASSERT_GE(got.value, 0) << Describe(got);
        next.server = int(got.value);
        ASSERT_NO_FATAL_FAILURE(Settle(next.client, next.server, fast));
      }
    }
  }
}

TEST(SignalTest, ReceiveAndSendTimeoutsExpireOnTimeAndTheConnectionGoesOn) {
  constexpr uint64_t kSeed = 47;
  const std::vector<uint8_t> big = Pattern(kSeed, 0, 16 << 20);
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    Pair pair;
    ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_RCVTIMEO, 200));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_SNDTIMEO, 200));
    char buffer[8];
    // recv with nothing to read: EAGAIN after the timeout.
    auto start = Clock::now();
    errno = 0;
    EXPECT_EQ(recv(pair.client, buffer, 1, 0), -1);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << std::strerror(errno);
    double waited = MsSince(start);
    EXPECT_GE(waited, 180);
    EXPECT_LT(waited, 1000);
    // The timeout is per call: bytes that come within it are returned.
    std::thread late([&] {
      SleepMs(50);
      WriteAll(pair.server, "late", 4);
    });
    start = Clock::now();
    const ssize_t n = recv(pair.client, buffer, 4, MSG_WAITALL);
    waited = MsSince(start);
    late.join();
    EXPECT_EQ(n, 4);
    EXPECT_EQ(std::string(buffer, 4), "late");
    EXPECT_LT(waited, 180);
    // A send larger than the room, nobody reading: what fits, counted, after the timeout.
    start = Clock::now();
    errno = 0;
    CallResult sent{send(pair.client, big.data(), big.size(), MSG_NOSIGNAL), errno};
    waited = MsSince(start);
    EXPECT_GT(sent.value, 0) << Describe(sent);
    EXPECT_LT(sent.value, ssize_t(big.size())) << Describe(sent);
    EXPECT_GE(waited, 180) << Describe(sent);
    EXPECT_LT(waited, 1000) << Describe(sent);
    uint64_t total = uint64_t(std::max<ssize_t>(sent.value, 0));
    // Again, now full: EAGAIN after the timeout (or a count, if kernel TCP found room meanwhile).
    const std::vector<uint8_t> more = Pattern(kSeed, total, 1 << 20);
    start = Clock::now();
    errno = 0;
    sent = {send(pair.client, more.data(), more.size(), MSG_NOSIGNAL), errno};
    waited = MsSince(start);
    EXPECT_TRUE((sent.value == -1 && (sent.error == EAGAIN || sent.error == EWOULDBLOCK)) ||
                (sent.value > 0 && sent.value < ssize_t(more.size())))
        << Describe(sent);
    if (fast) {
      EXPECT_EQ(sent.value, -1) << Describe(sent);  // a full ring does not change by itself
    }
    EXPECT_GE(waited, 180) << Describe(sent);
    EXPECT_LT(waited, 1000) << Describe(sent);
    total += uint64_t(std::max<ssize_t>(sent.value, 0));
    // Nothing lost, nothing doubled.
    ASSERT_EQ(shutdown(pair.client, SHUT_WR), 0);
    Drained drained;
    BoundedThread drainer([&] { DrainAndCheck(pair.server, kSeed, &drained); });
    ASSERT_TRUE(drainer.Finished(3000));
    EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
    EXPECT_EQ(drained.bytes, total) << Describe(drained);
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  }
}

// signal(7): socket calls with a timeout set (SO_RCVTIMEO for recv and accept, SO_SNDTIMEO for
// send) are not restarted after a handler even with SA_RESTART: they fail with EINTR at once.
TEST(SignalTest, SaRestartDoesNotRestartSocketCallsThatHaveATimeout) {
  constexpr uint64_t kSeed = 53;
  for (const bool fast : {false, true}) {
    SCOPED_TRACE(PathName(fast));
    Pair pair;
    ASSERT_NO_FATAL_FAILURE(MakePair(fast, &pair));
    uint16_t port = 0;
    const ScopedFd listener(Listen(AF_INET, "127.0.0.1", fast, &port));
    ASSERT_GE(listener.fd, 0);
    {
      Pair first;
      ASSERT_NO_FATAL_FAILURE(AcceptPair(listener.fd, port, fast, &first));
    }
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_RCVTIMEO, 1500));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(pair.client, SO_SNDTIMEO, 1500));
    ASSERT_NO_FATAL_FAILURE(SetTimeout(listener.fd, SO_RCVTIMEO, 1500));
    uint64_t filled = 0;
    ASSERT_NO_FATAL_FAILURE(FillUntilFull(pair.client, kSeed, &filled));
    const std::vector<uint8_t> more = Pattern(kSeed, filled, 1 << 20);
    char byte;
    const std::pair<const char *, std::function<ssize_t()>> calls[] = {
        {"recv", [&] { return recv(pair.client, &byte, 1, 0); }},
        {"send", [&] { return send(pair.client, more.data(), more.size(), MSG_NOSIGNAL); }},
        {"accept", [&] { return ssize_t(accept(listener.fd, nullptr, nullptr)); }},
    };
    for (const auto &[name, call] : calls) {
      SCOPED_TRACE(name);
      ScopedHandler handler(SIGUSR1, CountSignal, /*restart=*/true);
      CallResult got;
      BoundedThread blocked([&, call = call] {
        errno = 0;
        got.value = call();
        got.error = errno;
      });
      ASSERT_TRUE(blocked.Blocked());
      const auto start = Clock::now();
      blocked.Signal(SIGUSR1);
      ASSERT_TRUE(blocked.Finished(2500));
      const double waited = MsSince(start);
      EXPECT_EQ(handled.load(), 1);
      EXPECT_EQ(got.value, -1) << Describe(got);
      EXPECT_EQ(got.error, EINTR) << Describe(got) << " after " << waited << " ms";
      EXPECT_LT(waited, 500) << Describe(got);
      if (got.value >= 0 && std::string(name) == "accept") close(int(got.value));
    }
    EXPECT_EQ(ObservedPath(pair.client), PathName(fast));
  }
}

// ---- Handlers that use sockets themselves ----

// What the SIGUSR1 handler does: one call on a socket, its result kept. All lock-free atomics.
struct HandlerCall {
  std::atomic<int> fd{-1};
  std::atomic<bool> receive{false};  // recv(MSG_DONTWAIT) instead of send
  std::atomic<int> flags{MSG_NOSIGNAL};
  std::atomic<ssize_t> result{-2};
  std::atomic<int> error{0};
  std::atomic<int> runs{0};
};
HandlerCall handler_call;

void HandlerThatUsesASocket(int) {
  const int saved = errno;
  char bytes[8] = {'p', 'i', 'n', 'g'};
  const ssize_t n = handler_call.receive.load()
                        ? recv(handler_call.fd.load(), bytes, sizeof bytes, MSG_DONTWAIT)
                        : send(handler_call.fd.load(), bytes, 4, handler_call.flags.load());
  handler_call.result.store(n);
  handler_call.error.store(n < 0 ? errno : 0);
  handler_call.runs.fetch_add(1);
  errno = saved;
}

struct HandlerScenario {
  bool blocked_in_send;   // else blocked in recv
  bool handler_receives;  // else the handler sends "ping"
  bool other_socket;      // the handler uses a second connection, else the blocked one
  int handler_flags;
  ssize_t expected;  // what the handler's call returns (kernel TCP's answer)
  int expected_error;
};

// A thread blocked in recv (empty ring) or send (full ring) on connection A gets SIGUSR1
// (SA_RESTART); the handler makes its call; then the blocked call must complete normally.
void RunHandlerScenario(bool fast, const HandlerScenario &s) {
  constexpr uint64_t kSeed = 59;
  Pair a, b;
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &a));
  ASSERT_NO_FATAL_FAILURE(MakePair(fast, &b));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(a.server, SO_RCVTIMEO, 1000));
  ASSERT_NO_FATAL_FAILURE(SetTimeout(b.server, SO_RCVTIMEO, 1000));
  uint64_t filled = 0;
  std::vector<uint8_t> more;
  if (s.blocked_in_send) {
    ASSERT_NO_FATAL_FAILURE(FillUntilFull(a.client, kSeed, &filled));
    more = Pattern(kSeed, filled, 1 << 20);
  }
  handler_call.fd = s.other_socket ? b.client : a.client;
  handler_call.receive = s.handler_receives;
  handler_call.flags = s.handler_flags;
  handler_call.result = -2;
  handler_call.runs = 0;
  ScopedHandler handler(SIGUSR1, HandlerThatUsesASocket, /*restart=*/true);
  char buffer[16] = {};
  CallResult got;
  BoundedThread blocked(
      [&] {
        errno = 0;
        got.value = s.blocked_in_send ? send(a.client, more.data(), more.size(), MSG_NOSIGNAL)
                                      : recv(a.client, buffer, sizeof buffer, 0);
        got.error = errno;
      },
      [&] {
        close(a.server);
        a.server = -1;
      });
  ASSERT_TRUE(blocked.Blocked());
  blocked.Signal(SIGUSR1);
  ASSERT_TRUE(WaitFor([] { return handler_call.runs.load() == 1; }, 1000))
      << "the handler did not finish its socket call (deadlocked?)";
  const CallResult in_handler{handler_call.result.load(), handler_call.error.load()};
  EXPECT_EQ(in_handler.value, s.expected) << "handler's call: " << Describe(in_handler);
  if (s.expected < 0) {
    EXPECT_EQ(in_handler.error, s.expected_error) << "handler's call: " << Describe(in_handler);
  }
  if (!s.handler_receives && in_handler.value == 4) {  // the handler's bytes reach the peer
    char ping[4];
    ASSERT_TRUE(ReadAll(s.other_socket ? b.server : a.server, ping, 4));
    EXPECT_EQ(std::string(ping, 4), "ping");
  }
  EXPECT_FALSE(blocked.Finished(50))
      << "SA_RESTART: the blocked call goes on; got " << Describe(got);
  if (!s.blocked_in_send) {
    ASSERT_TRUE(WriteAll(a.server, "pong", 4));
    ASSERT_TRUE(blocked.Finished(1000)) << "recv did not return the bytes sent after the handler";
    EXPECT_EQ(got.value, 4) << Describe(got);
    EXPECT_EQ(std::string(buffer, 4), "pong");
  } else {
    Drained drained;
    BoundedThread drainer([&] { DrainAndCheck(a.server, kSeed, &drained); });
    ASSERT_TRUE(blocked.Finished(2000)) << "send did not complete while the peer read";
    EXPECT_EQ(got.value, ssize_t(more.size())) << Describe(got);
    ASSERT_EQ(shutdown(a.client, SHUT_WR), 0);
    ASSERT_TRUE(drainer.Finished(3000));
    EXPECT_TRUE(drained.ended && drained.intact) << Describe(drained);
    EXPECT_EQ(drained.bytes, filled + more.size()) << Describe(drained);
  }
  EXPECT_EQ(ObservedPath(a.client), PathName(fast));
  EXPECT_EQ(ObservedPath(b.client), PathName(fast));
}

void HandlerScenarioOnBothPaths(const HandlerScenario &s) {
  InChild([&] {
    for (const bool fast : {false, true}) {
      SCOPED_TRACE(PathName(fast));
      ASSERT_NO_FATAL_FAILURE(RunHandlerScenario(fast, s));
    }
  });
}

TEST(SignalTest, HandlerSendingOnTheSocketBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, false, false, MSG_NOSIGNAL, 4, 0});
}

TEST(SignalTest, HandlerReceivingOnTheSocketBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, true, false, 0, -1, EAGAIN});
}

TEST(SignalTest, HandlerSendingOnAnotherSocketWhileBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, false, true, MSG_NOSIGNAL, 4, 0});
}

TEST(SignalTest, HandlerReceivingOnAnotherSocketWhileBlockedInRecvDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({false, true, true, 0, -1, EAGAIN});
}

TEST(SignalTest, HandlerSendingOnAnotherSocketWhileBlockedInSendDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({true, false, true, MSG_NOSIGNAL, 4, 0});
}

TEST(SignalTest, HandlerSendingOnTheFullSocketBlockedInSendGetsEagainAndDoesNotDeadlock) {
  HandlerScenarioOnBothPaths({true, false, false, MSG_NOSIGNAL | MSG_DONTWAIT, -1, EAGAIN});
}

}  // namespace
}  // namespace loopfast::test
