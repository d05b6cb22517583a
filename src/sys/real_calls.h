// The only way loopfast calls the libc functions it intercepts (real_calls_list.h): the real
// ones, found with dlsym(RTLD_NEXT) past any interposer (ours included), so that loopfast's own
// calls never come back into its wrappers. The table's members (a pointer per entry of the list,
// typed from its return type and parameters) are generated from the list, as are the
// interposer's wrappers (their prototypes, and the uniform ones whole: interpose.cc). Calls it
// does not intercept (mmap, ftruncate, memfd_create, ...) go straight to libc.
#ifndef LOOPFAST_SYS_REAL_CALLS_H_
#define LOOPFAST_SYS_REAL_CALLS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sys/real_calls_list.h"

namespace loopfast::sys {

struct RealCalls {
// `params` is a parenthesised parameter list, not an expression.
#define LOOPFAST_DECLARE_POINTER(ret, name, params, args, shape, verb) \
  ret(*name) params = nullptr;  // NOLINT(bugprone-macro-parentheses)
  LOOPFAST_REAL_CALLS(LOOPFAST_DECLARE_POINTER)
#undef LOOPFAST_DECLARE_POINTER
};

// The table, resolved on first use (safe to call from any thread, at any time, even from
// another library's constructor). Aborts with a message if libc lacks a function.
const RealCalls &Real();

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_REAL_CALLS_H_
