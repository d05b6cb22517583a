// Process-wide settings, read once from the environment (the launcher sets them), and the log.
// They sit just above sys, so every layer that reads a setting or logs (capture, session, fast,
// socket) looks down at them.
//   LOOPFAST_DISABLE=1        everything off: every socket is plain kernel TCP
//   LOOPFAST_DEFAULT=1        the switch starts on for every TCP socket (transparent mode)
//   LOOPFAST_SPIN_US=N|auto   a waiter spins N us before it sleeps, always (0: never); unset or
//                             auto: up to 50 us, while its recent waits ended that soon
//   LOOPFAST_LOG=LEVEL        off|error|info|debug, to stderr or LOOPFAST_LOG_FILE
// A process running with AT_SECURE (setuid, setgid, file capabilities) got its environment
// from a user it must not trust: there only settings that narrow are read (LOOPFAST_DISABLE,
// LOOPFAST_LOG=off|error, the LOOPFAST_INCLUDE_*/EXCLUDE_* lists); the others read as unset
// (docs/configuration.md, "Setuid and other privileged programs").
#ifndef LOOPFAST_CONFIG_CONFIG_H_
#define LOOPFAST_CONFIG_CONFIG_H_

#include <cstdint>

namespace loopfast {

enum class LogLevel { kOff = 0, kError = 1, kInfo = 2, kDebug = 3 };

struct Config {
  bool disabled = false;
  bool default_on = false;
  uint32_t spin_ns = 50 * 1000;  // the spin budget
  // Each waiting context learns whether to spin its budget or sleep at once
  // (wait/spin_policy.h); false: a fixed LOOPFAST_SPIN_US, spun on every wait.
  bool spin_adaptive = true;
  LogLevel log_level = LogLevel::kError;
};

// Parsed on first use; never changes afterwards.
const Config &GetConfig();

// Parses from an environment lookup function (tests pass their own). With
// `secure_execution`, only what narrows is read: LOOPFAST_DISABLE, and LOOPFAST_LOG when it
// lowers the level.
Config ParseConfig(const char *(*lookup)(const char *name), bool secure_execution = false);

// True in a process running with AT_SECURE (getauxval): setuid, setgid, file capabilities.
bool SecureExecution();

// getenv for a setting that names a file or widens what loopfast does (LOOPFAST_LOG_FILE,
// LOOPFAST_CAPTURE, ...): unset in secure execution, as secure_getenv(3) does.
const char *WideningSetting(const char *name);

// One line to the log if `level` is enabled: "loopfast[pid]: message". Outside text in the
// arguments (the environment, a peer, /proc, paths) must be escaped by the caller
// (EscapeText, base/escape.h); the line as a whole is escaped again (EscapeStyle::kLine) and
// cut to 512 bytes, so one call is always exactly one line.
void Log(LogLevel level, const char *format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace loopfast

#endif  // LOOPFAST_CONFIG_CONFIG_H_
