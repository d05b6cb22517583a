// The implementation of signal_handlers.h (what it is for is said there).
#include "sys/signal_handlers.h"

#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "sys/real_calls.h"

namespace loopfast::sys {
namespace {

// Initial-exec: read and bumped from a signal handler, where a dynamic TLS look-up could
// allocate. The library is linked or preloaded, never dlopen'ed late.
__attribute__((tls_model("initial-exec"))) thread_local uint32_t handled_on_this_thread = 0;

// The program's own action for each signal whose real handler is the trampoline.
struct ProgramAction {
  std::atomic<void *> handler{nullptr};  // sa_handler or sa_sigaction, as the program gave it
  std::atomic<int> flags{0};             // the program's sa_flags (SA_SIGINFO: which of the two)
};
ProgramAction program_actions[NSIG];
std::mutex install_mutex;  // one installation at a time (the real action and the table agree)

bool IsHandler(const struct sigaction &action) {
  if ((action.sa_flags & SA_SIGINFO) != 0) return action.sa_sigaction != nullptr;
  return action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN;
}

void Trampoline(int sig, siginfo_t *info, void *context) {
  ++handled_on_this_thread;
  if (sig <= 0 || sig >= NSIG) return;
  ProgramAction &program = program_actions[sig];
  void *const handler = program.handler.load(std::memory_order_acquire);
  const int flags = program.flags.load(std::memory_order_acquire);
  // SA_RESETHAND: the kernel put SIG_DFL back before this ran; so does the program's view.
  if ((flags & SA_RESETHAND) != 0) program.handler.store(nullptr, std::memory_order_release);
  if (handler == nullptr) return;
  if ((flags & SA_SIGINFO) != 0) {
    reinterpret_cast<void (*)(int, siginfo_t *, void *)>(handler)(sig, info, context);
  } else {
    reinterpret_cast<void (*)(int)>(handler)(sig);
  }
}

bool IsTrampoline(const struct sigaction &action) {
  return (action.sa_flags & SA_SIGINFO) != 0 && action.sa_sigaction == &Trampoline;
}

// What the program installed, as it gave it, from the real action and the table.
void ProgramView(int sig, const struct sigaction &real, struct sigaction *view) {
  *view = real;
  if (!IsTrampoline(real)) return;
  const ProgramAction &program = program_actions[sig];
  void *const handler = program.handler.load(std::memory_order_acquire);
  const int flags = program.flags.load(std::memory_order_acquire);
  view->sa_flags = flags;
  if (handler == nullptr) {
    view->sa_handler = SIG_DFL;  // reset by SA_RESETHAND
    view->sa_flags &= ~SA_SIGINFO;
  } else if ((flags & SA_SIGINFO) != 0) {
    view->sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t *, void *)>(handler);
  } else {
    view->sa_handler = reinterpret_cast<void (*)(int)>(handler);
  }
}

}  // namespace

uint32_t HandledSignals() { return handled_on_this_thread; }

int InstallSignalAction(int sig, const struct sigaction *action, struct sigaction *old) {
  // Signals that cannot be caught, and bad numbers: the kernel's own answer.
  if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP) {
    return Real().sigaction(sig, action, old);
  }
  // sigaction is async-signal-safe: a handler may call it. With every signal held on this
  // thread while it holds the lock, none can run here and wait for the lock it holds.
  sigset_t all, program_mask;
  sigfillset(&all);
  const int saved_errno = errno;
  pthread_sigmask(SIG_BLOCK, &all, &program_mask);
  errno = saved_errno;
  const struct RestoreMask {
    const sigset_t &mask;
    ~RestoreMask() {
      const int kept_errno = errno;
      pthread_sigmask(SIG_SETMASK, &mask, nullptr);
      errno = kept_errno;
    }
  } restore{program_mask};
  std::lock_guard<std::mutex> guard(install_mutex);
  struct sigaction current {};
  if (Real().sigaction(sig, nullptr, &current) != 0) return -1;
  struct sigaction previous {};
  ProgramView(sig, current, &previous);
  if (action != nullptr) {
    if (!IsHandler(*action)) {
      if (Real().sigaction(sig, action, nullptr) != 0) return -1;
    } else {
      ProgramAction &program = program_actions[sig];
      // The table first: a signal right after the real installation finds it.
      void *const handler = (action->sa_flags & SA_SIGINFO) != 0
                                ? reinterpret_cast<void *>(action->sa_sigaction)
                                : reinterpret_cast<void *>(action->sa_handler);
      program.flags.store(action->sa_flags, std::memory_order_release);
      program.handler.store(handler, std::memory_order_release);
      struct sigaction wrapped = *action;
      wrapped.sa_sigaction = &Trampoline;
      wrapped.sa_flags = action->sa_flags | SA_SIGINFO;
      if (Real().sigaction(sig, &wrapped, nullptr) != 0) {
        const int error = errno;
        // Put back what was there (the real action did not change).
        if (IsTrampoline(current)) {
          program.flags.store(previous.sa_flags, std::memory_order_release);
          program.handler.store((previous.sa_flags & SA_SIGINFO) != 0
                                    ? reinterpret_cast<void *>(previous.sa_sigaction)
                                    : reinterpret_cast<void *>(previous.sa_handler),
                                std::memory_order_release);
        }
        errno = error;
        return -1;
      }
    }
  }
  if (old != nullptr) *old = previous;
  return 0;
}

sighandler_t InstallSignalHandler(int sig, sighandler_t handler) {
  // glibc's signal(): BSD semantics, the handler stays and interrupted calls restart.
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  if (sig > 0 && sig < NSIG) sigaddset(&action.sa_mask, sig);
  action.sa_flags = SA_RESTART;
  struct sigaction old {};
  if (InstallSignalAction(sig, &action, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

}  // namespace loopfast::sys
