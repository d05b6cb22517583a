#include "base/escape.h"

#include <gtest/gtest.h>

#include <string>

namespace loopfast {
namespace {

using namespace std::string_literals;

// True when `text` is well-formed UTF-8 without a C0 control or DEL.
bool CleanUtf8(const std::string &text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x20 || b == 0x7f) return false;
    if (b < 0x80) continue;
    const size_t length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    i += length - 1;
  }
  return true;
}

TEST(EscapeTest, PlainTextAndWellFormedUtf8PassUnchanged) {
  EXPECT_EQ(EscapeText("redis-server 127.0.0.1:6379"), "redis-server 127.0.0.1:6379");
  EXPECT_EQ(EscapeText("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(EscapeText(""), "");
}

TEST(EscapeTest, ControlCharactersAndDelBecomeHexEscapes) {
  EXPECT_EQ(EscapeText("a\nb\rc\td"), "a\\x0ab\\x0dc\\x09d");
  EXPECT_EQ(EscapeText("\x1b[2J\x1b]0;title\x07"), "\\x1b[2J\\x1b]0;title\\x07");
  EXPECT_EQ(EscapeText("\x7f"), "\\x7f");
  EXPECT_EQ(EscapeText("nul\0here"s), "nul\\x00here");
}

TEST(EscapeTest, BackslashAndQuoteAreEscapedInValuesOnly) {
  EXPECT_EQ(EscapeText("a\\x0ab\"c"), "a\\x5cx0ab\\x22c");
  char out[64];
  const std::string_view line = "key=\"a\\b\"\n";
  const size_t n = EscapeInto(line, EscapeStyle::kLine, out, sizeof out);
  EXPECT_EQ(std::string(out, n), "key=\"a\\b\"\\x0a");
}

TEST(EscapeTest, BytesThatAreNotUtf8AreEscapedOneByOne) {
  EXPECT_EQ(EscapeText("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(EscapeText("\x80x"), "\\x80x");                           // stray continuation byte
  EXPECT_EQ(EscapeText("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(EscapeText("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");           // overlong, three bytes
  EXPECT_EQ(EscapeText("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(EscapeText("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(EscapeText("\xe2\x82"), "\\xe2\\x82");                    // truncated at the end
  EXPECT_EQ(EscapeText("\xe2\x82x"), "\\xe2\\x82x");                  // truncated in the middle
}

TEST(EscapeTest, C1AndInvisibleLineAndDirectionControlsAreEscaped) {
  EXPECT_EQ(EscapeText("\xc2\x9b"
                       "31m"),
            "\\xc2\\x9b31m");                                // U+009B, CSI on some terminals
  EXPECT_EQ(EscapeText("\xe2\x80\xae"), "\\xe2\\x80\\xae");  // U+202E right-to-left override
  EXPECT_EQ(EscapeText("\xe2\x80\xa8"), "\\xe2\\x80\\xa8");  // U+2028 line separator
  EXPECT_EQ(EscapeText("\xe2\x81\xa6"), "\\xe2\\x81\\xa6");  // U+2066 left-to-right isolate
  EXPECT_EQ(EscapeText("\xc2\xa0"), "\xc2\xa0");             // U+00A0 is text
}

TEST(EscapeTest, EveryByteValueGivesCleanOutput) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_TRUE(CleanUtf8(EscapeText(all)));
  EXPECT_TRUE(CleanUtf8(JsonQuoted(all)));
  for (int a = 0x80; a < 0x100; ++a) {
    for (int b = 0; b < 0x100; b += 7) {
      const std::string pair{static_cast<char>(a), static_cast<char>(b), '\n'};
      EXPECT_TRUE(CleanUtf8(EscapeText(pair))) << a << " " << b;
      EXPECT_TRUE(CleanUtf8(JsonQuoted(pair))) << a << " " << b;
    }
  }
}

TEST(EscapeTest, EscapeIntoNeverCutsAnEscapeOrACharacter) {
  const std::string text = "ab\n\xe2\x82\xac";  // a, b, an escape (4), a 3-byte character
  char out[16];
  size_t consumed = 0;
  EXPECT_EQ(EscapeInto(text, EscapeStyle::kValue, out, 5, &consumed), 2u);
  EXPECT_EQ(consumed, 2u);
  EXPECT_EQ(EscapeInto(text, EscapeStyle::kValue, out, 8, &consumed), 6u);
  EXPECT_EQ(consumed, 3u);
  EXPECT_EQ(std::string(out, 6), "ab\\x0a");
  EXPECT_EQ(EscapeInto(text, EscapeStyle::kValue, out, 9, &consumed), 9u);
  EXPECT_EQ(consumed, text.size());
  EXPECT_EQ(EscapeInto(text, EscapeStyle::kValue, out, 0, &consumed), 0u);
  EXPECT_EQ(consumed, 0u);
}

TEST(EscapeTest, JsonQuotedFollowsRfc8259AndReplacesInvalidBytes) {
  EXPECT_EQ(JsonQuoted("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuoted("q\"b\\"), "\"q\\\"b\\\\\"");
  EXPECT_EQ(JsonQuoted("\n\x1b\x7f"), "\"\\u000a\\u001b\\u007f\"");
  EXPECT_EQ(JsonQuoted("\xc2\x9b\xe2\x80\xae"), "\"\\u009b\\u202e\"");
  EXPECT_EQ(JsonQuoted("a\xff"
                       "b"),
            "\"a\xef\xbf\xbd"
            "b\"");
  EXPECT_EQ(JsonQuoted("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(JsonQuoted("nul\0"s), "\"nul\\u0000\"");
}

}  // namespace
}  // namespace loopfast
