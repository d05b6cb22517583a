// Unit tests of the iovec cursor: totals, skipping, walking within a budget, gathering, and the
// rest of an array after a position.
#include "base/iovec_cursor.h"

#include <gtest/gtest.h>

#include <string>

namespace loopfast {
namespace {

// "abc" | "" | "defg" | "h": eight bytes in four parts, one of them empty.
class IovecCursorTest : public ::testing::Test {
 protected:
  char a_[3] = {'a', 'b', 'c'};
  char d_[4] = {'d', 'e', 'f', 'g'};
  char h_[1] = {'h'};
  struct iovec iov_[4] = {{a_, 3}, {nullptr, 0}, {d_, 4}, {h_, 1}};
};

std::string Joined(const std::vector<struct iovec> &parts) {
  std::string text;
  for (const struct iovec &part : parts) {
    text.append(static_cast<const char *>(part.iov_base), part.iov_len);
  }
  return text;
}

TEST_F(IovecCursorTest, TotalCountsEveryPart) {
  EXPECT_EQ(IovecTotal(iov_, 4), 8u);
  EXPECT_EQ(IovecTotal(iov_, 0), 0u);
}

TEST_F(IovecCursorTest, CopyOutGathersAcrossPartsWithinTheBudget) {
  IovecCursor cursor(iov_, 4);
  uint8_t out[8] = {};
  EXPECT_EQ(cursor.CopyOut(out, 5), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(out), 5), "abcde");
  EXPECT_EQ(cursor.CopyOut(out, 8), 3u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(out), 3), "fgh");
  EXPECT_TRUE(cursor.AtEnd());
  EXPECT_EQ(cursor.CopyOut(out, 8), 0u);
}

TEST_F(IovecCursorTest, SkipStartsPartWayAndPassesOverEmptyParts) {
  IovecCursor cursor(iov_, 4, 3);
  uint8_t out[8] = {};
  EXPECT_EQ(cursor.CopyOut(out, 2), 2u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(out), 2), "de");
  cursor.Skip(100);
  EXPECT_TRUE(cursor.AtEnd());
}

TEST_F(IovecCursorTest, WalkVisitsEachRunInOrder) {
  IovecCursor cursor(iov_, 4, 1);
  std::vector<size_t> lengths;
  std::string seen;
  EXPECT_EQ(cursor.Walk(6,
                        [&](uint8_t *bytes, size_t length) {
                          lengths.push_back(length);
                          seen.append(reinterpret_cast<char *>(bytes), length);
                        }),
            6u);
  EXPECT_EQ(seen, "bcdefg");
  EXPECT_EQ(lengths, (std::vector<size_t>{2, 4}));  // the empty part is never visited
}

TEST_F(IovecCursorTest, RestCutsTheFirstPartAtTheCursor) {
  EXPECT_EQ(Joined(IovecCursor(iov_, 4).Rest()), "abcdefgh");
  EXPECT_EQ(IovecCursor(iov_, 4).Rest().size(), 3u);  // without the empty part
  EXPECT_EQ(Joined(IovecCursor(iov_, 4, 4).Rest()), "efgh");
  EXPECT_EQ(IovecCursor(iov_, 4, 3).Rest().size(), 2u);  // at a part's end: the next ones
  EXPECT_TRUE(IovecCursor(iov_, 4, 8).Rest().empty());
  EXPECT_TRUE(IovecCursor(iov_, 4, 9).Rest().empty());
}

}  // namespace
}  // namespace loopfast
