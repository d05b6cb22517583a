#include "socket/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace loopfast {
namespace {

std::map<std::string, std::string> *environment;

const char *Lookup(const char *name) {
  auto it = environment->find(name);
  return it == environment->end() ? nullptr : it->second.c_str();
}

Config Parse(std::map<std::string, std::string> values, bool secure_execution = false) {
  environment = &values;
  return ParseConfig(Lookup, secure_execution);
}

TEST(ConfigTest, DefaultsAreOffWithShortSpin) {
  const Config config = Parse({});
  EXPECT_FALSE(config.disabled);
  EXPECT_FALSE(config.default_on);  // S12: off by default
  EXPECT_EQ(config.spin_ns, 50000u);
  EXPECT_TRUE(config.spin_adaptive);
}

// LOOPFAST_SPIN_US: unset or auto learns, with a budget of 50 us; a number is a fixed budget,
// spun on every wait; 0 never spins.
TEST(ConfigTest, SpinIsAdaptiveUnlessANumberFixesIt) {
  for (const char *automatic : {"auto", ""}) {
    const Config config = Parse({{"LOOPFAST_SPIN_US", automatic}});
    EXPECT_TRUE(config.spin_adaptive) << automatic;
    EXPECT_EQ(config.spin_ns, 50000u) << automatic;
  }
  const Config fixed = Parse({{"LOOPFAST_SPIN_US", "20"}});
  EXPECT_FALSE(fixed.spin_adaptive);
  EXPECT_EQ(fixed.spin_ns, 20000u);
  const Config fifty = Parse({{"LOOPFAST_SPIN_US", "50"}});
  EXPECT_FALSE(fifty.spin_adaptive);  // the old behaviour, asked for
  EXPECT_EQ(fifty.spin_ns, 50000u);
  const Config never = Parse({{"LOOPFAST_SPIN_US", "0"}});
  EXPECT_FALSE(never.spin_adaptive);
  EXPECT_EQ(never.spin_ns, 0u);
  const Config too_long = Parse({{"LOOPFAST_SPIN_US", "1000001"}});
  EXPECT_TRUE(too_long.spin_adaptive);
  EXPECT_EQ(too_long.spin_ns, 50000u);
}

TEST(ConfigTest, ReadsEachVariable) {
  const Config config = Parse({{"LOOPFAST_DISABLE", "1"},
                               {"LOOPFAST_DEFAULT", "on"},
                               {"LOOPFAST_SPIN_US", "0"},
                               {"LOOPFAST_LOG", "debug"}});
  EXPECT_TRUE(config.disabled);
  EXPECT_TRUE(config.default_on);
  EXPECT_EQ(config.spin_ns, 0u);
  EXPECT_EQ(config.log_level, LogLevel::kDebug);
}

TEST(ConfigTest, MalformedValuesKeepDefaults) {
  const Config config = Parse({{"LOOPFAST_SPIN_US", "12abc"}, {"LOOPFAST_DEFAULT", "maybe"}});
  EXPECT_EQ(config.spin_ns, 50000u);
  EXPECT_TRUE(config.spin_adaptive);
  EXPECT_FALSE(config.default_on);
}

// A setuid program's environment is its caller's: what narrows is read, what widens is not.
TEST(ConfigTest, SecureExecutionReadsOnlyWhatNarrows) {
  const Config widening =
      Parse({{"LOOPFAST_DEFAULT", "1"}, {"LOOPFAST_SPIN_US", "1000000"}, {"LOOPFAST_LOG", "debug"}},
            /*secure_execution=*/true);
  EXPECT_FALSE(widening.default_on);
  EXPECT_EQ(widening.spin_ns, 50000u);
  EXPECT_TRUE(widening.spin_adaptive);
  EXPECT_EQ(widening.log_level, LogLevel::kError);
  EXPECT_EQ(Parse({{"LOOPFAST_LOG", "info"}}, true).log_level, LogLevel::kError);
  EXPECT_EQ(Parse({{"LOOPFAST_LOG", "off"}}, true).log_level, LogLevel::kOff);
  EXPECT_TRUE(Parse({{"LOOPFAST_DISABLE", "1"}}, true).disabled);
}

TEST(ConfigTest, AnOrdinaryProcessIsNotInSecureExecution) {
  EXPECT_FALSE(SecureExecution());
  setenv("LOOPFAST_TEST_WIDENING", "x", 1);
  EXPECT_STREQ(WideningSetting("LOOPFAST_TEST_WIDENING"), "x");
  unsetenv("LOOPFAST_TEST_WIDENING");
}

}  // namespace
}  // namespace loopfast
