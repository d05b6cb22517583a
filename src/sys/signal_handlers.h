// Whether a signal handler ran on this thread: a fast-path call that sleeps on a futex must end
// as the system call it stands for would when a handler runs (wait/sleep.h), but a handler can
// also run just outside the futex call (as its sleep period ends, or between two sleeps), where
// the call cannot see it. So loopfast installs the program's handlers behind a trampoline that
// counts, per thread, and then calls the program's own handler with the same arguments. The
// program sees its own handlers and flags in every sigaction() and signal() answer.
//
// Handlers installed without libc's sigaction/signal (a raw system call, Go's runtime) are not
// counted: those calls keep the window this closes.
#ifndef LOOPFAST_SYS_SIGNAL_HANDLERS_H_
#define LOOPFAST_SYS_SIGNAL_HANDLERS_H_

#include <signal.h>

#include <cstdint>

namespace loopfast::sys {

// Handlers of the program that ran on this thread so far (a count that wraps).
uint32_t HandledSignals();

// The interposed sigaction(2) and signal(2).
int InstallSignalAction(int sig, const struct sigaction *action, struct sigaction *old);
sighandler_t InstallSignalHandler(int sig, sighandler_t handler);

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_SIGNAL_HANDLERS_H_
