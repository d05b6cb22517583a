// Which connections may take the fast path (S11): the host's policy file, which only root can
// write and which marks ports, addresses, users and programs as inspected (always kernel TCP),
// narrowed further by the environment, which can never widen it.
//
// /etc/loopfast.conf, one rule per line, '#' starts a comment:
//   inspect port 5432            inspect port 8000-8099
//   inspect address 127.0.0.2    inspect address 127.0.1.0/24    inspect address ::1
//   inspect user postgres        inspect user 1001
//   inspect program /usr/sbin/nginx    inspect program redis-server   (path, or file name)
//   require same-user            (the two ends of a fast connection run as one user)
//   disable                      (no fast path on this host at all)
// A file that is not a regular root-owned file, is writable by group or others, sits in a
// directory others may write, or does not parse is refused with a message, and then nothing
// on the host takes the fast path (the safe choice).
//
// Environment (may only narrow):
//   LOOPFAST_INCLUDE_PORTS=LIST      only these ports ("5432,8000-8099")
//   LOOPFAST_EXCLUDE_PORTS=LIST      never these ports
//   LOOPFAST_INCLUDE_ADDRESSES=LIST  only these addresses ("127.0.0.1,::1,127.0.1.0/24")
//   LOOPFAST_EXCLUDE_ADDRESSES=LIST  never these addresses
// A malformed value turns the fast path off for the process, with a message.
//
// Thread rules: the process's policy is built once, on first use, and never changes; any thread.
#ifndef LOOPFAST_CONFIG_POLICY_H_
#define LOOPFAST_CONFIG_POLICY_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace loopfast {

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
};

struct AddressRange {
  int family = AF_INET;
  uint8_t bytes[16] = {};  // network order; 4 used for AF_INET
  int prefix_bits = 0;
};

struct Policy {
  // Set when the fast path is off for this process; says why (shown by the API and the log).
  const char *off_reason = nullptr;
  std::string off_detail;  // the message logged once
  std::vector<PortRange> inspected_ports;
  std::vector<AddressRange> inspected_addresses;
  std::vector<uid_t> inspected_users;
  std::vector<std::string> inspected_programs;
  // `require same-user`: a connection between processes of two users takes kernel TCP.
  bool same_user_only = false;
  // Environment narrowing; an empty include list means "no restriction".
  std::vector<PortRange> include_ports, exclude_ports;
  std::vector<AddressRange> include_addresses, exclude_addresses;

  // True when some rule looks at a connection's addresses or ports (else PolicyDenies needs
  // no address: callers skip looking them up).
  bool HasConnectionRules() const {
    return off_reason != nullptr || !inspected_ports.empty() || !inspected_addresses.empty() ||
           !include_ports.empty() || !exclude_ports.empty() || !include_addresses.empty() ||
           !exclude_addresses.empty();
  }
};

inline constexpr const char *kHostPolicyPath = "/etc/loopfast.conf";

// Parses the host file's text into `policy` (adding to what is there). False, with `error`
// naming the line, when it does not parse.
bool ParsePolicyText(const std::string &text, Policy *policy, std::string *error);
// Reads and checks the file at `path` (ownership, permissions, syntax). A missing file is no
// policy. False, with `error`, when the file must be refused.
bool LoadPolicyFile(const char *path, Policy *policy, std::string *error);
// "5432,8000-8099" and "127.0.0.1,::1,10.0.0.0/8". False when malformed.
bool ParsePortList(const char *text, std::vector<PortRange> *out);
bool ParseAddressList(const char *text, std::vector<AddressRange> *out);

// Applies the rules that concern this process itself (its user and program): sets off_reason
// when the process is inspected. `uid` and `program` (the executable's path) are passed in so
// tests can ask about others.
void ApplyProcessRules(uid_t uid, const std::string &program, Policy *policy);

// The reason the connection to or from `address` (the other end, or the local end of an
// accepted connection) may not be fast, or nullptr when it may.
const char *PolicyDenies(const Policy &policy, const struct sockaddr *address, socklen_t length);

// The reason a connection between a process of `self` and one of `peer` may not be fast, or
// nullptr when it may.
const char *PolicyDeniesUsers(const Policy &policy, uid_t self, uid_t peer);

// The process's policy: the host file, the environment, this process's user and program.
const Policy &GetPolicy();

}  // namespace loopfast

#endif  // LOOPFAST_CONFIG_POLICY_H_
