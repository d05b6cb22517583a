// The host policy (policy.h): parsing and checking /etc/loopfast.conf, the environment's
// narrowing lists, and the questions asked of a connection and of a pair of users.
#include "config/policy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "base/escape.h"
#include "config/config.h"

namespace loopfast {
namespace {

constexpr const char *kInspected = "host policy (/etc/loopfast.conf) inspects this connection";
constexpr const char *kProcessInspected = "host policy (/etc/loopfast.conf) inspects this program";
constexpr const char *kUserInspected = "host policy (/etc/loopfast.conf) inspects this user";
constexpr const char *kHostDisabled = "host policy (/etc/loopfast.conf) disables the fast path";
constexpr const char *kSameUserRequired =
    "host policy (/etc/loopfast.conf) requires both ends to run as one user";
constexpr const char *kHostRefused = "host policy file refused (see the log): no fast path";
constexpr const char *kEnvironmentExcluded = "excluded by LOOPFAST_INCLUDE_*/LOOPFAST_EXCLUDE_*";
constexpr const char *kEnvironmentMalformed =
    "malformed LOOPFAST_INCLUDE_*/LOOPFAST_EXCLUDE_* value: fast path off";

bool ParseNumber(const std::string &text, unsigned long max, unsigned long *out) {
  if (text.empty() || text.size() > 10) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  *out = std::strtoul(text.c_str(), nullptr, 10);
  return *out <= max;
}

bool ParsePortRange(const std::string &text, PortRange *out) {
  const size_t dash = text.find('-');
  unsigned long first = 0, last = 0;
  if (!ParseNumber(text.substr(0, dash), 65535, &first)) return false;
  last = first;
  if (dash != std::string::npos && !ParseNumber(text.substr(dash + 1), 65535, &last)) return false;
  if (first == 0 || last < first) return false;
  *out = {static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
  return true;
}

bool ParseAddressRange(const std::string &text, AddressRange *out) {
  const size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  AddressRange range;
  if (inet_pton(AF_INET, address.c_str(), range.bytes) == 1) {
    range.family = AF_INET;
    range.prefix_bits = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), range.bytes) == 1) {
    range.family = AF_INET6;
    range.prefix_bits = 128;
  } else {
    return false;
  }
  if (slash != std::string::npos) {
    unsigned long bits = 0;
    if (!ParseNumber(text.substr(slash + 1), static_cast<unsigned long>(range.prefix_bits),
                     &bits)) {
      return false;
    }
    range.prefix_bits = static_cast<int>(bits);
  }
  *out = range;
  return true;
}

template <typename T, typename ParseOne>
bool ParseList(const char *text, std::vector<T> *out, ParseOne parse_one) {
  const std::string whole(text);
  if (whole.empty() || whole.front() == ',' || whole.back() == ',' ||
      whole.find(",,") != std::string::npos) {
    return false;  // an empty item is a mistake, not "nothing"
  }
  std::stringstream items(whole);
  std::string item;
  std::vector<T> parsed;
  while (std::getline(items, item, ',')) {
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    T value;
    if (!parse_one(item, &value)) return false;
    parsed.push_back(value);
  }
  if (parsed.empty()) return false;
  out->insert(out->end(), parsed.begin(), parsed.end());
  return true;
}

bool InPorts(const std::vector<PortRange> &ranges, uint16_t port) {
  for (const PortRange &range : ranges) {
    if (port >= range.first && port <= range.last) return true;
  }
  return false;
}

// The address as IPv4 when it is one (also an IPv4-mapped IPv6 address), else IPv6.
void Normalise(const struct sockaddr *address, int *family, uint8_t bytes[16], uint16_t *port) {
  if (address->sa_family == AF_INET) {
    const auto *in = reinterpret_cast<const struct sockaddr_in *>(address);
    *family = AF_INET;
    std::memcpy(bytes, &in->sin_addr, 4);
    *port = ntohs(in->sin_port);
    return;
  }
  const auto *in6 = reinterpret_cast<const struct sockaddr_in6 *>(address);
  *port = ntohs(in6->sin6_port);
  if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
    *family = AF_INET;
    std::memcpy(bytes, in6->sin6_addr.s6_addr + 12, 4);
    return;
  }
  *family = AF_INET6;
  std::memcpy(bytes, in6->sin6_addr.s6_addr, 16);
}

bool InAddresses(const std::vector<AddressRange> &ranges, int family, const uint8_t *bytes) {
  for (const AddressRange &range : ranges) {
    if (range.family != family) continue;
    const int whole = range.prefix_bits / 8;
    const int rest = range.prefix_bits % 8;
    if (std::memcmp(range.bytes, bytes, static_cast<size_t>(whole)) != 0) continue;
    if (rest != 0) {
      const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
      if ((range.bytes[whole] & mask) != (bytes[whole] & mask)) continue;
    }
    return true;
  }
  return false;
}

bool LookUpUser(const std::string &name, uid_t *uid) {
  unsigned long number = 0;
  if (ParseNumber(name, 0xfffffffful, &number)) {
    *uid = static_cast<uid_t>(number);
    return true;
  }
  struct passwd entry;
  struct passwd *found = nullptr;
  char buffer[4096];
  if (getpwnam_r(name.c_str(), &entry, buffer, sizeof buffer, &found) != 0 || found == nullptr) {
    return false;
  }
  *uid = found->pw_uid;
  return true;
}

std::string Basename(const std::string &path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string OwnProgram() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : std::string();
}

}  // namespace

bool ParsePortList(const char *text, std::vector<PortRange> *out) {
  return ParseList(text, out, ParsePortRange);
}

bool ParseAddressList(const char *text, std::vector<AddressRange> *out) {
  return ParseList(text, out, ParseAddressRange);
}

bool ParsePolicyText(const std::string &text, Policy *policy, std::string *error) {
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const size_t comment = line.find('#');
    if (comment != std::string::npos) line.erase(comment);
    std::istringstream words(line);
    std::vector<std::string> word;
    for (std::string w; words >> w;) word.push_back(w);
    if (word.empty()) continue;
    auto fail = [&](const char *what) {
      *error = "line " + std::to_string(number) + ": " + what + ": \"" + EscapeText(line) + "\"";
      return false;
    };
    if (word[0] == "disable" && word.size() == 1) {
      policy->off_reason = kHostDisabled;
      continue;
    }
    if (word[0] == "require" && word.size() == 2 && word[1] == "same-user") {
      policy->same_user_only = true;
      continue;
    }
    if (word[0] != "inspect" || word.size() != 3) {
      return fail(
          "expected \"inspect port|address|user|program VALUE\", \"require same-user\" or "
          "\"disable\"");
    }
    const std::string &kind = word[1];
    const std::string &value = word[2];
    if (kind == "port") {
      PortRange range;
      if (!ParsePortRange(value, &range)) return fail("not a port or port range");
      policy->inspected_ports.push_back(range);
    } else if (kind == "address") {
      AddressRange range;
      if (!ParseAddressRange(value, &range)) return fail("not an address or address/prefix");
      policy->inspected_addresses.push_back(range);
    } else if (kind == "user") {
      uid_t uid;
      if (!LookUpUser(value, &uid)) return fail("no such user");
      policy->inspected_users.push_back(uid);
    } else if (kind == "program") {
      policy->inspected_programs.push_back(value);
    } else {
      return fail("unknown kind (port, address, user, program)");
    }
  }
  return true;
}

bool LoadPolicyFile(const char *path, Policy *policy, std::string *error) {
  const std::string shown = EscapeText(path);  // for messages
  const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return true;  // no file, no policy
    *error = shown + ": " + std::strerror(errno);
    return false;
  }
  struct stat info;
  std::string text;
  bool ok = fstat(fd, &info) == 0;
  if (!ok) {
    *error = shown + ": " + std::strerror(errno);
  } else if (!S_ISREG(info.st_mode)) {
    *error = shown + ": not a regular file";
    ok = false;
  } else if (info.st_uid != 0) {
    *error = shown + ": not owned by root";
    ok = false;
  } else if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    *error = shown + ": writable by group or others";
    ok = false;
  } else {
    char buffer[4096];
    for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) {
      text.append(buffer, static_cast<size_t>(n));
      if (text.size() > (1 << 20)) break;
    }
  }
  close(fd);
  if (!ok) return false;
  // Whoever may write the directory may replace the file.
  const std::string directory = std::string(path).substr(0, std::string(path).rfind('/') + 1);
  struct stat dir_info;
  if (stat(directory.empty() ? "." : directory.c_str(), &dir_info) != 0 || dir_info.st_uid != 0 ||
      (dir_info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    *error = shown + ": its directory is not root's alone";
    return false;
  }
  std::string parse_error;
  if (!ParsePolicyText(text, policy, &parse_error)) {
    *error = shown + ": " + parse_error;
    return false;
  }
  return true;
}

void ApplyProcessRules(uid_t uid, const std::string &program, Policy *policy) {
  if (policy->off_reason != nullptr) return;
  for (uid_t inspected : policy->inspected_users) {
    if (inspected == uid) policy->off_reason = kUserInspected;
  }
  for (const std::string &inspected : policy->inspected_programs) {
    const bool matches = inspected.find('/') != std::string::npos ? inspected == program
                                                                  : inspected == Basename(program);
    if (matches) policy->off_reason = kProcessInspected;
  }
}

const char *PolicyDenies(const Policy &policy, const struct sockaddr *address, socklen_t length) {
  if (policy.off_reason != nullptr) return policy.off_reason;
  if (address == nullptr || (address->sa_family != AF_INET && address->sa_family != AF_INET6) ||
      length < (address->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                              : sizeof(struct sockaddr_in6))) {
    return nullptr;
  }
  int family = 0;
  uint8_t bytes[16] = {};
  uint16_t port = 0;
  Normalise(address, &family, bytes, &port);
  if (InPorts(policy.inspected_ports, port) ||
      InAddresses(policy.inspected_addresses, family, bytes)) {
    return kInspected;
  }
  if (InPorts(policy.exclude_ports, port) || InAddresses(policy.exclude_addresses, family, bytes) ||
      (!policy.include_ports.empty() && !InPorts(policy.include_ports, port)) ||
      (!policy.include_addresses.empty() &&
       !InAddresses(policy.include_addresses, family, bytes))) {
    return kEnvironmentExcluded;
  }
  return nullptr;
}

const Policy &GetPolicy() {
  static const Policy policy = [] {
    Policy built;
    std::string error;
    if (!LoadPolicyFile(kHostPolicyPath, &built, &error)) {
      Policy refused;
      refused.off_reason = kHostRefused;
      Log(LogLevel::kError, "refusing the host policy, no fast path: %s", error.c_str());
      return refused;
    }
    struct Narrowing {
      const char *variable;
      bool ports;
      std::vector<PortRange> *port_list;
      std::vector<AddressRange> *address_list;
    } narrowing[] = {
        {"LOOPFAST_INCLUDE_PORTS", true, &built.include_ports, nullptr},
        {"LOOPFAST_EXCLUDE_PORTS", true, &built.exclude_ports, nullptr},
        {"LOOPFAST_INCLUDE_ADDRESSES", false, nullptr, &built.include_addresses},
        {"LOOPFAST_EXCLUDE_ADDRESSES", false, nullptr, &built.exclude_addresses},
    };
    // These only narrow, so they are read in secure execution (setuid) too (config.h).
    for (const Narrowing &n : narrowing) {
      const char *value = std::getenv(n.variable);
      if (value == nullptr || *value == '\0') continue;
      const bool ok =
          n.ports ? ParsePortList(value, n.port_list) : ParseAddressList(value, n.address_list);
      if (!ok) {
        Log(LogLevel::kError, "%s=\"%s\" is malformed: no fast path in this process", n.variable,
            EscapeText(value).c_str());
        built.off_reason = kEnvironmentMalformed;
      }
    }
    ApplyProcessRules(geteuid(), OwnProgram(), &built);
    if (built.off_reason == kUserInspected || built.off_reason == kProcessInspected) {
      Log(LogLevel::kInfo, "%s", built.off_reason);
    }
    return built;
  }();
  return policy;
}

const char *PolicyDeniesUsers(const Policy &policy, uid_t self, uid_t peer) {
  return policy.same_user_only && self != peer ? kSameUserRequired : nullptr;
}

}  // namespace loopfast
