// Text that comes from outside (the environment, a peer, /proc, a path) made safe to put in a
// log line or on a terminal: nothing in it can end the line, move the cursor, change the
// title, reorder what a reader sees, or pass for one of our own escapes.
//
// What is escaped, each byte as \xNN (two lowercase hex digits):
//   - C0 controls (0x00-0x1f) and DEL (0x7f): newlines, carriage returns, ESC sequences;
//   - bytes that are not part of well-formed UTF-8 (overlong forms, surrogates, stray
//     continuation bytes, truncated sequences, anything above U+10FFFF);
//   - C1 controls (U+0080-U+009F, e.g. U+009B, which some terminals take as CSI) and the
//     invisible line and direction controls (U+200E, U+200F, U+2028-U+202E, U+2066-U+2069):
//     every byte of their UTF-8 encoding;
//   - for values (EscapeText), also the backslash and the double quote, so an escaped value
//     cannot imitate an escape or end a quoted field.
// Every other character, ASCII or well-formed UTF-8, passes unchanged: the result is valid
// UTF-8 with no control character in it.
//
// Thread rules: pure functions. EscapeInto allocates nothing and makes no system call (the
// logger calls it inside interposed libc calls).
#ifndef LOOPFAST_BASE_ESCAPE_H_
#define LOOPFAST_BASE_ESCAPE_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace loopfast {

enum class EscapeStyle {
  kValue,  // a value interpolated into a line: the backslash and '"' are escaped too
  kLine,   // a whole line already made of escaped values: only what could break or spoof it
};

// Writes `text`, escaped, into out[0, capacity) and returns the number of bytes written. Stops
// before the first character or escape that does not fit whole (never cuts a UTF-8 sequence or
// an \xNN in two); `*consumed`, when given, receives how many bytes of `text` were written.
size_t EscapeInto(std::string_view text, EscapeStyle style, char *out, size_t capacity,
                  size_t *consumed = nullptr);

// `text` escaped as a value (EscapeStyle::kValue).
std::string EscapeText(std::string_view text);

// `text` as a JSON string literal, quotes included (RFC 8259): '"' and '\' as \" and \\,
// control characters (C0, DEL, C1) and the invisible line and direction controls as \uXXXX,
// each byte that is not part of well-formed UTF-8 as U+FFFD. Always valid UTF-8.
std::string JsonQuoted(std::string_view text);

}  // namespace loopfast

#endif  // LOOPFAST_BASE_ESCAPE_H_
