// Pieces of the reliability campaigns (reliability_transfers_test.cc, reliability_kill_test.cc;
// docs/reliability.md): seeds and counts from the environment, and child processes that report
// one line of text to the parent.
#ifndef LOOPFAST_TESTS_CAMPAIGN_H_
#define LOOPFAST_TESTS_CAMPAIGN_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "test_support.h"

namespace loopfast::test {

using Clock = std::chrono::steady_clock;

constexpr int kWaitMs = 10000;  // any single wait longer than this is a hang

double MsBetween(Clock::time_point from, Clock::time_point to);
// The number in environment variable `name`, or `fallback` when it is unset or empty.
uint64_t EnvNumber(const char *name, uint64_t fallback);
uint64_t Mix(uint64_t x);  // splitmix64
std::string Errno();       // strerror(errno)
void SleepUs(long us);     // all of it, across signals

// The seeds of one campaign: LOOPFAST_CAMPAIGN_SEED=N runs the single run N; else `count_name`
// (default `default_count`) runs from LOOPFAST_CAMPAIGN_BASE (default: random), stopping after
// LOOPFAST_CAMPAIGN_MAX_FAILURES (default 5) failures.
struct CampaignSeeds {
  CampaignSeeds(const char *count_name, uint64_t default_count);
  uint64_t Seed(uint64_t run) const { return single ? single : Mix(base + run) | 1; }
  bool Continue(uint64_t run, uint64_t failures) const {
    return run < count && failures < max_failures;
  }
  uint64_t single, count, base, max_failures;
};

// A child process that reports one line of text to the parent.
struct Child {
  pid_t pid = -1;
  Fd report;  // read end of the child's report pipe
};

// Forks; the child runs `body` under alarm(alarm_s), SIGPIPE ignored, and sends its text back.
// The child's text starts with "OK" on success.
Child StartChild(const std::function<std::string()> &body, unsigned alarm_s);
// Waits up to `timeout_ms` (then kills); returns the child's text, or a description of how it
// ended when it did not exit 0.
std::string FinishChild(Child *child, int timeout_ms);

}  // namespace loopfast::test

#endif  // LOOPFAST_TESTS_CAMPAIGN_H_
