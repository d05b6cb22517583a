#include "sys/signal_handlers.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "wait/sleep.h"

namespace loopfast::sys {
namespace {

std::atomic<int> plain_calls{0};
std::atomic<int> info_signo{0};
void PlainHandler(int) { plain_calls.fetch_add(1); }
void InfoHandler(int, siginfo_t *info, void *) { info_signo.store(info->si_signo); }

// Puts SIGUSR2 back to its default when a test ends.
struct DefaultAfter {
  ~DefaultAfter() {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    InstallSignalAction(SIGUSR2, &action, nullptr);
  }
};

// The program sees what it installed, the handler runs with its own arguments, and each run is
// counted on the thread that ran it.
TEST(SignalHandlersTest, TheProgramSeesItsOwnHandlerAndEachRunIsCounted) {
  DefaultAfter restore;
  struct sigaction action {};
  action.sa_handler = &PlainHandler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ASSERT_EQ(InstallSignalAction(SIGUSR2, &action, nullptr), 0);
  struct sigaction seen {};
  ASSERT_EQ(InstallSignalAction(SIGUSR2, nullptr, &seen), 0);
  EXPECT_EQ(seen.sa_handler, &PlainHandler);
  EXPECT_EQ(seen.sa_flags & (SA_RESTART | SA_SIGINFO), SA_RESTART);
  const uint32_t before = HandledSignals();
  const int calls = plain_calls.load();
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
  EXPECT_EQ(plain_calls.load(), calls + 1);
  EXPECT_EQ(HandledSignals(), before + 1);
  // Another thread's count does not move.
  uint32_t other = 0;
  std::thread([&] { other = HandledSignals(); }).join();
  EXPECT_EQ(other, 0u);

  action.sa_sigaction = &InfoHandler;
  action.sa_flags = SA_SIGINFO;
  struct sigaction previous {};
  ASSERT_EQ(InstallSignalAction(SIGUSR2, &action, &previous), 0);
  EXPECT_EQ(previous.sa_handler, &PlainHandler);
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
  EXPECT_EQ(info_signo.load(), SIGUSR2);
  ASSERT_EQ(InstallSignalAction(SIGUSR2, nullptr, &seen), 0);
  EXPECT_EQ(seen.sa_sigaction, &InfoHandler);
  EXPECT_NE(seen.sa_flags & SA_SIGINFO, 0);
}

// SIG_IGN and SIG_DFL pass through; SA_RESETHAND leaves SIG_DFL after one run; signal() gives
// the previous handler; uncatchable signals get the kernel's error.
TEST(SignalHandlersTest, IgnoreDefaultResetHandAndSignalBehaveAsLibc) {
  DefaultAfter restore;
  EXPECT_EQ(InstallSignalHandler(SIGUSR2, SIG_IGN), SIG_DFL);
  EXPECT_EQ(InstallSignalHandler(SIGUSR2, &PlainHandler), SIG_IGN);
  EXPECT_EQ(InstallSignalHandler(SIGUSR2, SIG_DFL), &PlainHandler);
  struct sigaction action {};
  action.sa_handler = &PlainHandler;
  action.sa_flags = SA_RESETHAND;
  ASSERT_EQ(InstallSignalAction(SIGUSR2, &action, nullptr), 0);
  const int calls = plain_calls.load();
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
  EXPECT_EQ(plain_calls.load(), calls + 1);
  struct sigaction seen {};
  ASSERT_EQ(InstallSignalAction(SIGUSR2, nullptr, &seen), 0);
  EXPECT_EQ(seen.sa_handler, SIG_DFL);
  errno = 0;
  EXPECT_EQ(InstallSignalAction(SIGKILL, &action, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
}

// A handler that runs while a waiter spins (in user space, outside any system call) ends a
// wait that has a timeout, as it would end the system call: before, the waiter spun on and
// then slept until its timeout.
TEST(SignalHandlersTest, AHandlerThatRunsWhileTheWaiterSpinsEndsTheWait) {
  DefaultAfter restore;
  ASSERT_NE(InstallSignalHandler(SIGUSR2, &PlainHandler), SIG_ERR);
  std::atomic<uint32_t> word{0};
  std::atomic<pthread_t> waiter{};
  std::atomic<bool> started{false};
  wait::WakeReason reason = wait::WakeReason::kReady;
  const auto begin = std::chrono::steady_clock::now();
  std::thread thread([&] {
    waiter.store(pthread_self());
    started.store(true);
    wait::SleepSpec spec;
    spec.spin_ns = 2000 * 1000 * 1000u;  // two seconds of spinning
    spec.timeout = {5, 0};
    reason = wait::SleepUntil(
        &word, [] { return false; }, [] { return false; }, spec);
  });
  while (!started.load()) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // well inside the spin
  ASSERT_EQ(pthread_kill(waiter.load(), SIGUSR2), 0);
  thread.join();
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(reason, wait::WakeReason::kInterrupted);
  EXPECT_LT(took, std::chrono::milliseconds(2000)) << "the wait went on after the handler ran";
}

}  // namespace
}  // namespace loopfast::sys
