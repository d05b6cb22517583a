// `loopfast doctor`: what the fast path needs from this host, as one table of checks. Each
// check tries the real thing (a sealed memfd, an abstract Unix socket, a netlink query, ...)
// rather than reading a version number. When the protocol changes, change the table in
// doctor_checks.cc: add a row, drop one, or flip `required`.
#ifndef LOOPFAST_TOOLS_DOCTOR_CHECKS_H_
#define LOOPFAST_TOOLS_DOCTOR_CHECKS_H_

#include <string>
#include <vector>

namespace loopfast::tool {

enum class CheckStatus { kOk, kInfo, kWarn, kFail };

const char *CheckStatusName(CheckStatus status);  // "ok", "info", "warn", "fail"

struct CheckOutcome {
  CheckStatus status = CheckStatus::kOk;
  std::string detail;  // one short line: what was found, and for warn/fail what follows
};

struct HostCheck {
  const char *name;   // short, stable: used in --json and in the man page
  const char *needs;  // what the fast path uses it for
  // A failing required check means no fast path here (exit 1); any other failure is a
  // warning (the fast path works, with a limit the detail names).
  bool required;
  CheckOutcome (*run)();
};

// The checks, in the order `loopfast doctor` prints them.
const std::vector<HostCheck> &HostChecks();

}  // namespace loopfast::tool

#endif  // LOOPFAST_TOOLS_DOCTOR_CHECKS_H_
