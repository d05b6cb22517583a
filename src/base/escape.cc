// The implementation of escape.h (what it is for is said there).
#include "base/escape.h"

#include <cstdint>

namespace loopfast {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// The length of the well-formed UTF-8 sequence at the start of `text` (1-4) and its code
// point, or 0 when the first byte does not start one (Unicode table 3-7).
size_t DecodeUtf8(std::string_view text, uint32_t *code_point) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  }
  size_t length = 0;
  uint8_t second_low = 0x80, second_high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) second_low = 0xa0;   // no overlong forms
    if (lead == 0xed) second_high = 0x9f;  // no surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) second_low = 0x90;   // no overlong forms
    if (lead == 0xf4) second_high = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < second_low || byte(1) > second_high) return 0;
  uint32_t value = lead & (0x7f >> length);
  for (size_t i = 1; i < length; ++i) {
    if (i > 1 && (byte(i) & 0xc0) != 0x80) return 0;
    value = (value << 6) | (byte(i) & 0x3f);
  }
  *code_point = value;
  return length;
}

// Characters a terminal or a reader could take for something other than text.
bool IsControl(uint32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x200e || c == 0x200f ||
         (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

}  // namespace

size_t EscapeInto(std::string_view text, EscapeStyle style, char *out, size_t capacity,
                  size_t *consumed) {
  size_t written = 0, i = 0;
  while (i < text.size()) {
    uint32_t c = 0;
    size_t length = DecodeUtf8(text.substr(i), &c);
    const bool escaped =
        length == 0 || IsControl(c) || (style == EscapeStyle::kValue && (c == '\\' || c == '"'));
    if (length == 0) length = 1;  // one invalid byte
    const size_t needed = escaped ? 4 * length : length;
    if (capacity - written < needed) break;
    for (size_t k = 0; k < length; ++k) {
      const auto b = static_cast<uint8_t>(text[i + k]);
      if (escaped) {
        out[written++] = '\\';
        out[written++] = 'x';
        out[written++] = kHex[b >> 4];
        out[written++] = kHex[b & 0xf];
      } else {
        out[written++] = static_cast<char>(b);
      }
    }
    i += length;
  }
  if (consumed != nullptr) *consumed = i;
  return written;
}

std::string EscapeText(std::string_view text) {
  std::string out(4 * text.size(), '\0');  // the most an escape can take
  out.resize(EscapeInto(text, EscapeStyle::kValue, out.data(), out.size()));
  return out;
}

std::string JsonQuoted(std::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  for (size_t i = 0; i < text.size();) {
    uint32_t c = 0;
    const size_t length = DecodeUtf8(text.substr(i), &c);
    if (length == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD for the one invalid byte
      ++i;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (IsControl(c)) {
      const char escape[] = {
          '\\',         'u', kHex[(c >> 12) & 0xf], kHex[(c >> 8) & 0xf], kHex[(c >> 4) & 0xf],
          kHex[c & 0xf]};
      out.append(escape, sizeof escape);
    } else {
      out.append(text.substr(i, length));
    }
    i += length;
  }
  return out + "\"";
}

}  // namespace loopfast
