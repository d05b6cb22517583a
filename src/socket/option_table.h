// What each socket option means for a fast-path connection: one table, the only place that
// decides, which docs/options.md mirrors (a test checks the two agree).
//
// Thread rules: the table is constant; any thread.
#ifndef LOOPFAST_SOCKET_OPTION_TABLE_H_
#define LOOPFAST_SOCKET_OPTION_TABLE_H_

#include <cstddef>

namespace loopfast {

enum class OptionClass {
  kHonoured,  // the program gets what kernel TCP gives (often because the kernel socket does it)
  kNoEffect,  // accepted and kept on the kernel socket; meaningless without a network layer
  kReadOnly,  // getsockopt only; setting it fails exactly as on kernel TCP
  // The rings cannot honour it. Explicit API: EOPNOTSUPP. Transparent mode: the connection
  // (or the listener, or the socket before it connects) moves to kernel TCP first.
  kNeedsKernel,
};

struct OptionInfo {
  int level;
  int name;
  const char *level_name;  // "SOL_SOCKET", "IPPROTO_TCP", "IPPROTO_IP", "IPPROTO_IPV6"
  const char *option_name;
  OptionClass option_class;
  const char *why;  // one line for docs/options.md and the log
};

// The entry for (level, name), or nullptr: an option loopfast does not know needs kernel TCP.
const OptionInfo *FindOption(int level, int name);
OptionClass ClassOf(int level, int name);

// Every entry, for the documentation test and `loopfast options`.
const OptionInfo *AllOptions(size_t *count);

// "honoured", "no effect", "read only", "moves to kernel TCP": the words docs/options.md uses.
const char *ClassName(OptionClass option_class);

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_OPTION_TABLE_H_
