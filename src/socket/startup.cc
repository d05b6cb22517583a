// The startup line (startup.h): what loopfast says of itself when a program loads it.
#include "socket/startup.h"

#include <cstdio>
#include <cstdlib>

#include "config/config.h"
#include "config/policy.h"

namespace loopfast {
namespace {

std::string Ports(const std::vector<PortRange> &ranges) {
  std::string text;
  for (const PortRange &range : ranges) {
    if (!text.empty()) text += ",";
    text += std::to_string(range.first);
    if (range.last != range.first) text += "-" + std::to_string(range.last);
  }
  return text;
}

}  // namespace

std::string DescribeStartup() {
  const Config &config = GetConfig();
  std::string line = std::string("loopfast ") + LOOPFAST_VERSION_STRING + " loaded: ";
  if (config.disabled) return line + "disabled (LOOPFAST_DISABLE), every socket is kernel TCP";
  line += config.default_on ? "transparent mode (every TCP socket opts in)"
                            : "explicit API (sockets opt in with SIO_LOOPBACK_FAST_PATH)";
  line += ", spin " + std::string(config.spin_adaptive ? "adaptive, up to " : "") +
          std::to_string(config.spin_ns / 1000) + " us";
  const Policy &policy = GetPolicy();
  if (policy.off_reason != nullptr) return line + ", fast path off: " + policy.off_reason;
  const size_t rules = policy.inspected_ports.size() + policy.inspected_addresses.size() +
                       policy.inspected_users.size() + policy.inspected_programs.size();
  line += rules == 0 ? ", host policy: none" : ", host policy: " + std::to_string(rules) + " rules";
  if (!policy.include_ports.empty()) line += ", only ports " + Ports(policy.include_ports);
  if (!policy.exclude_ports.empty()) line += ", not ports " + Ports(policy.exclude_ports);
  if (!policy.include_addresses.empty()) line += ", only some addresses";
  if (!policy.exclude_addresses.empty()) line += ", not some addresses";
  return line;
}

void LogStartup() {
  if (static_cast<int>(GetConfig().log_level) < static_cast<int>(LogLevel::kInfo)) return;
  Log(LogLevel::kInfo, "%s", DescribeStartup().c_str());
}

}  // namespace loopfast
