// The explicit API's argument checks and errors (SPEC S1, S2, S14).
#include <gtest/gtest.h>

#include "loopfast/loopfast.h"

namespace loopfast::test {
namespace {

TEST(ApiTest, Version) { EXPECT_STRNE(loopfast_version(), ""); }

}  // namespace
}  // namespace loopfast::test
