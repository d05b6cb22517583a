// Resolving the real functions of real_calls_list.h with dlsym(RTLD_NEXT), once.
#include "sys/real_calls.h"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace loopfast::sys {
namespace {

void *Resolve(const char *name) {
  void *symbol = dlsym(RTLD_NEXT, name);
  if (symbol == nullptr) symbol = dlsym(RTLD_DEFAULT, name);
  if (symbol == nullptr) {
    // Raw system calls: stdio may not be ready, and write() would re-enter the interposer.
    const char *prefix = "loopfast: libc has no ";
    (void)!syscall(SYS_write, 2, prefix, std::strlen(prefix));
    (void)!syscall(SYS_write, 2, name, std::strlen(name));
    (void)!syscall(SYS_write, 2, "\n", 1);
    std::abort();
  }
  return symbol;
}

RealCalls Load() {
  RealCalls calls;
#define LOOPFAST_RESOLVE(ret, name, params, args, shape, verb) \
  calls.name =                                                 \
      reinterpret_cast<ret(*) params>(Resolve(#name));  // NOLINT(bugprone-macro-parentheses)
  LOOPFAST_REAL_CALLS(LOOPFAST_RESOLVE)
#undef LOOPFAST_RESOLVE
  return calls;
}

}  // namespace

const RealCalls &Real() {
  // Racing first calls each resolve the same addresses; the function-local static makes the
  // table itself initialise once.
  static const RealCalls calls = Load();
  return calls;
}

}  // namespace loopfast::sys
