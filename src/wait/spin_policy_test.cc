// White-box tests of the spin policy (wait/spin_policy.h): what it learns from hits and misses,
// its hysteresis, and the fixed budgets that override it.
#include "wait/spin_policy.h"

#include <gtest/gtest.h>

namespace loopfast::wait {
namespace {

constexpr uint64_t kBudget = 50000;

// Feeds waits of `waited_ns` until the policy stops or starts spinning; returns how many it took
// (a failure past `limit`).
int WaitsUntilSpinning(SpinPolicy &policy, bool spinning, uint64_t waited_ns, int limit = 100) {
  int waits = 0;
  while (policy.spinning() != spinning) {
    policy.Record(waited_ns, kBudget);
    if (++waits > limit) {
      ADD_FAILURE() << "still " << (spinning ? "asleep" : "spinning") << " after " << limit;
      break;
    }
  }
  return waits;
}

TEST(SpinPolicyTest, StartsSpinning) {
  SpinPolicy policy;
  EXPECT_TRUE(policy.spinning());
  EXPECT_EQ(policy.BudgetNs(kBudget, true), kBudget);
}

// Waits within the budget keep it spinning, for ever.
TEST(SpinPolicyTest, HitsKeepItSpinning) {
  SpinPolicy policy;
  for (int i = 0; i < 1000; ++i) {
    policy.Record(800, kBudget);
    ASSERT_EQ(policy.BudgetNs(kBudget, true), kBudget) << "wait " << i;
  }
  EXPECT_GT(policy.score(), SpinPolicy::kOne * 9 / 10);
}

// Waits longer than the budget make it sleep at once within a few waits (from its start at
// 0.5: four misses reach 0.29), and it stays asleep while they go on.
TEST(SpinPolicyTest, LearnsToSleepAfterMisses) {
  SpinPolicy policy;
  EXPECT_EQ(WaitsUntilSpinning(policy, false, 300000), 4);
  EXPECT_EQ(policy.BudgetNs(kBudget, true), 0u);
  for (int i = 0; i < 1000; ++i) {
    policy.Record(300000, kBudget);
    ASSERT_EQ(policy.BudgetNs(kBudget, true), 0u) << "wait " << i;
  }
  EXPECT_EQ(policy.score(), 0u);
}

// A policy that sleeps learns from its own (slept) waits that answers come soon again: six hits
// from a score of 0 bring it back to 0.5.
TEST(SpinPolicyTest, BackToSpinningAfterHits) {
  SpinPolicy policy;
  for (int i = 0; i < 100; ++i) policy.Record(uint64_t{10} * 1000 * 1000 * 1000, kBudget);
  ASSERT_FALSE(policy.spinning());
  EXPECT_EQ(WaitsUntilSpinning(policy, true, 20000), 6);
  EXPECT_EQ(policy.BudgetNs(kBudget, true), kBudget);
}

// A wait that lasts exactly the budget is a hit; one nanosecond more is a miss.
// A hit is an answer within half the budget (what a sleep and a wake-up cost): an answer at the
// limit is one, an answer past it a miss, even within the budget the wait may spin.
TEST(SpinPolicyTest, AnAnswerWithinHalfTheBudgetIsAHit) {
  SpinPolicy hits;
  SpinPolicy misses;
  for (int i = 0; i < 20; ++i) {
    hits.Record(kBudget / 2, kBudget);
    misses.Record(kBudget / 2 + 1, kBudget);
  }
  EXPECT_TRUE(hits.spinning());
  EXPECT_FALSE(misses.spinning());
}

// Between the thresholds it keeps what it does: a policy with about 40% hits neither starts nor
// stops spinning, whichever it did before.
TEST(SpinPolicyTest, Hysteresis) {
  const auto feed_forty_percent = [](SpinPolicy &policy) {
    for (int i = 0; i < 400; ++i) policy.RecordHit(i % 5 == 0 || i % 5 == 2);
  };
  SpinPolicy spinning;
  for (int i = 0; i < 20; ++i) spinning.RecordHit(true);
  SpinPolicy sleeping;
  for (int i = 0; i < 20; ++i) sleeping.RecordHit(false);
  ASSERT_TRUE(spinning.spinning());
  ASSERT_FALSE(sleeping.spinning());
  // A spinning policy leaves 1.0 for 0.4 without stopping (it stays above 0.3)...
  feed_forty_percent(spinning);
  EXPECT_TRUE(spinning.spinning());
  EXPECT_GE(spinning.score(), SpinPolicy::kSleepBelow);
  EXPECT_LT(spinning.score(), SpinPolicy::kSpinFrom);
  // ...and a sleeping one leaves 0 for 0.4 without starting (it stays below 0.5).
  feed_forty_percent(sleeping);
  EXPECT_FALSE(sleeping.spinning());
  EXPECT_GE(sleeping.score(), SpinPolicy::kSleepBelow);
  EXPECT_LT(sleeping.score(), SpinPolicy::kSpinFrom);
}

// A fixed budget (LOOPFAST_SPIN_US=N) and 0 (never spin) ignore what was learned.
TEST(SpinPolicyTest, FixedBudgetsOverrideIt) {
  SpinPolicy policy;
  for (int i = 0; i < 100; ++i) policy.Record(1000000, kBudget);
  ASSERT_FALSE(policy.spinning());
  EXPECT_EQ(policy.BudgetNs(kBudget, false), kBudget);
  EXPECT_EQ(policy.BudgetNs(0, false), 0u);
  for (int i = 0; i < 100; ++i) policy.Record(10, kBudget);
  ASSERT_TRUE(policy.spinning());
  EXPECT_EQ(policy.BudgetNs(0, false), 0u);
  EXPECT_EQ(policy.BudgetNs(7000, false), 7000u);
}

// A waker's stamp shortens a slept wait to when the answer came; a stamp outside the wait (stale,
// or a peer's garbage) is ignored; the clock's 32-bit wrap does not matter.
TEST(SpinPolicyTest, AnsweredAfterTakesOnlyAPlausibleStamp) {
  const uint64_t start = (uint64_t{7} << 32) - 1000;  // 1 us before the low word wraps
  EXPECT_EQ(AnsweredAfterNs(40000, start, static_cast<uint32_t>(start + 5000)), 5000u);
  EXPECT_EQ(AnsweredAfterNs(40000, start, static_cast<uint32_t>(start)), 0u);
  EXPECT_EQ(AnsweredAfterNs(40000, start, static_cast<uint32_t>(start + 40000)), 40000u);
  EXPECT_EQ(AnsweredAfterNs(40000, start, static_cast<uint32_t>(start + 40001)), 40000u);
  EXPECT_EQ(AnsweredAfterNs(40000, start, static_cast<uint32_t>(start - 1)), 40000u);
  EXPECT_EQ(AnsweredAfterNs(40000, start, 0), 1000u);  // just after the wrap: in the wait
  const uint64_t later = uint64_t{123456789012};
  EXPECT_EQ(AnsweredAfterNs(40000, later, 0), 40000u);
  EXPECT_EQ(AnsweredAfterNs(40000, later, ~0u), 40000u);
}

}  // namespace
}  // namespace loopfast::wait
