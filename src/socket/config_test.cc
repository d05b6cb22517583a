#include "socket/config.h"

#include <gtest/gtest.h>

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

Config Parse(std::map<std::string, std::string> values) {
  environment = &values;
  return ParseConfig(Lookup);
}

TEST(ConfigTest, DefaultsAreOffWithShortSpin) {
  const Config config = Parse({});
  EXPECT_FALSE(config.disabled);
  EXPECT_FALSE(config.default_on);  // S12: off by default
  EXPECT_EQ(config.spin_ns, 50000u);
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
  EXPECT_FALSE(config.default_on);
}

}  // namespace
}  // namespace loopfast
