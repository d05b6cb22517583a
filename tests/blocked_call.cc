// Helpers for tests of calls that block on fast sockets; see blocked_call.h.
#include "blocked_call.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "loopfast/loopfast.h"
#include "test_support.h"

namespace loopfast::test {

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

const char *PathName(bool fast) { return fast ? "fast" : "kernel"; }

void SetTimeout(int fd, int option, int ms) {
  const timeval timeout = {ms / 1000, (ms % 1000) * 1000};
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, option, &timeout, sizeof timeout), 0);
}

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

std::string Describe(const CallResult &r) {
  return std::to_string(r.value) +
         (r.value < 0 ? std::string(" (") + strerrorname_np(r.error) + ")" : std::string());
}

namespace {

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

}  // namespace

BoundedThread::BoundedThread(std::function<void()> body, std::function<void()> unblock)
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

BoundedThread::~BoundedThread() {
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

bool BoundedThread::Finished(int within_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  return done_cv_.wait_for(lock, std::chrono::milliseconds(within_ms), [this] { return done_; });
}

bool BoundedThread::Blocked(int within_ms) {
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

void BoundedThread::Signal(int signal_number) {
  pthread_kill(thread_.native_handle(), signal_number);
}

void InChild(const std::function<void()> &body, int timeout_ms) {
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

}  // namespace loopfast::test
