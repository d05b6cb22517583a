// `loopfast doctor`: does the fast path work on this host, and if not, why. Runs the host
// checks (doctor_checks.h), then a real fast connection between two processes
// (doctor_probe.h). Exit 0 when the fast path works here, 1 with the reason otherwise.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_output.h"
#include "commands.h"
#include "doctor_checks.h"
#include "doctor_probe.h"
#include "loopfast/loopfast.h"

namespace loopfast::tool {
namespace {

void DoctorUsage(FILE *out) {
  std::fprintf(
      out,
      "NAME\n"
      "    loopfast doctor - check that the fast path works on this host\n"
      "\n"
      "SYNOPSIS\n"
      "    loopfast doctor [--json]\n"
      "\n"
      "DESCRIPTION\n"
      "    Checks what the fast path needs from this host by trying each thing for real:\n"
      "    loopback TCP, sealed memfds, futexes on shared memory, abstract Unix sockets and\n"
      "    descriptor passing, peer credentials, /proc/<pid>/fd, the kernel's socket table\n"
      "    (NETLINK_SOCK_DIAG), what the SYN and SYN-ACK carry on loopback; then the network\n"
      "    namespace, /etc/loopfast.conf (and why it is refused), LOOPFAST_* variables in the\n"
      "    environment, LD_PRELOAD in this process, the descriptor and address-space limits.\n"
      "    Last it makes a fast connection between two processes with the public API and\n"
      "    prints its path, a request/response and a stream figure, beside kernel TCP.\n"
      "    The connection runs without LOOPFAST_* and LD_PRELOAD, so it shows what the host\n"
      "    allows; the environment check says what the variables here change.\n"
      "\n"
      "    Each line is ok, info, warn (the fast path works, with the limit it names) or\n"
      "    fail (no fast path here, and why).\n"
      "\n"
      "OPTIONS\n"
      "    --json                  one JSON document (schema loopfast-doctor/1) on stdout\n"
      "    -h, --help              this text\n"
      "\n"
      "EXIT STATUS\n"
      "    0 when the fast path works here, 1 when it does not, 2 for a usage error.\n"
      "\n"
      "SEE ALSO\n"
      "    loopfast run --help, loopfast.conf(5), loopfast(7)\n");
}

struct Line {
  std::string name;
  CheckStatus status;
  bool required;
  std::string needs;
  std::string detail;
};

std::string Figure(double value, const char *format) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

std::string Ratio(double ratio) { return ratio > 0 ? Figure(ratio, "%.1fx") : std::string("n/a"); }

// The probe's three lines: connection, rr, stream.
void AddProbeLines(const ProbeResult &probe, std::vector<Line> *lines) {
  Line connection{"connection", CheckStatus::kOk, true,
                  "a fast connection between two processes, public API", ""};
  if (!probe.ran) {
    connection.status = CheckStatus::kFail;
    connection.detail = "could not run the connection probe: " + probe.error;
  } else if (!probe.fast()) {
    connection.status = CheckStatus::kFail;
    connection.detail = "not fast (connecting end: " + probe.client_path +
                        ", accepting end: " + probe.server_path + ")" +
                        (probe.reason.empty() ? "" : ": " + probe.reason);
    if (!probe.error.empty()) connection.detail += "; " + probe.error;
  } else if (!probe.error.empty()) {
    connection.status = CheckStatus::kFail;
    connection.detail = "fast, then " + probe.error;
  } else {
    connection.detail = "fast, both ends, over 127.0.0.1; the kernel's connection carried " +
                        std::to_string(probe.kernel_bytes) + " bytes of data";
  }
  lines->push_back(connection);
  if (connection.status != CheckStatus::kOk) return;
  const bool kernel = probe.rr_kernel_us > 0;
  lines->push_back({"rr", CheckStatus::kInfo, false, "request/response latency",
                    Figure(probe.rr_fast_us, "%.2f") + " us per 1-byte round trip, median" +
                        (kernel ? " (kernel TCP " + Figure(probe.rr_kernel_us, "%.1f") +
                                      " us: " + Ratio(probe.rr_kernel_us / probe.rr_fast_us) + ")"
                                : "")});
  lines->push_back(
      {"stream", CheckStatus::kInfo, false, "one-way throughput",
       Figure(probe.stream_fast_gbps, "%.2f") + " GB/s with 64 KiB writes" +
           (probe.stream_kernel_gbps > 0
                ? " (kernel TCP " + Figure(probe.stream_kernel_gbps, "%.2f") +
                      " GB/s: " + Ratio(probe.stream_fast_gbps / probe.stream_kernel_gbps) + ")"
                : "")});
}

void PrintJson(const std::vector<Line> &lines, const ProbeResult &probe, bool works,
               const std::string &reason) {
  JsonWriter json;
  json.BeginObject();
  json.Key("schema");
  json.String("loopfast-doctor/1");
  json.Key("version");
  json.String(loopfast_version());
  json.Key("ok");
  json.Bool(works);
  json.Key("reason");
  json.String(reason);
  json.Key("checks");
  json.BeginArray();
  for (const Line &line : lines) {
    json.BeginObject();
    json.Key("name");
    json.String(line.name);
    json.Key("status");
    json.String(CheckStatusName(line.status));
    json.Key("required");
    json.Bool(line.required);
    json.Key("needed_for");
    json.String(line.needs);
    json.Key("detail");
    json.String(line.detail);
    json.EndObject();
  }
  json.EndArray();
  json.Key("connection");
  json.BeginObject();
  json.Key("path");
  json.String(probe.fast() ? "fast" : probe.ran ? "kernel" : "none");
  json.Key("client_path");
  json.String(probe.client_path);
  json.Key("server_path");
  json.String(probe.server_path);
  json.Key("fallback_reason");
  json.String(probe.reason);
  json.Key("kernel_bytes");
  json.Integer(probe.kernel_bytes);
  json.Key("rr_us");
  json.Number(probe.rr_fast_us);
  json.Key("rr_kernel_us");
  json.Number(probe.rr_kernel_us);
  json.Key("stream_gbps");
  json.Number(probe.stream_fast_gbps);
  json.Key("stream_kernel_gbps");
  json.Number(probe.stream_kernel_gbps);
  json.EndObject();
  json.EndObject();
  std::printf("%s\n", json.text().c_str());
}

}  // namespace

int DoctorCommand(int argc, char **argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
      DoctorUsage(stdout);
      return 0;
    } else if (std::strcmp(argv[i], "--connection-probe") == 0) {
      return ConnectionProbeMain();  // internal: the probe process (doctor_probe.h)
    } else {
      std::fprintf(stderr, "loopfast doctor: unknown option '%s'\n", argv[i]);
      DoctorUsage(stderr);
      return 2;
    }
  }
  std::vector<Line> lines;
  for (const HostCheck &check : HostChecks()) {
    CheckOutcome outcome = check.run();
    if (outcome.status == CheckStatus::kFail && !check.required) {
      outcome.status = CheckStatus::kWarn;
    }
    lines.push_back({check.name, outcome.status, check.required, check.needs, outcome.detail});
    if (!json) {
      std::printf("%-5s %-16s %s\n", CheckStatusName(outcome.status), check.name,
                  outcome.detail.c_str());
      std::fflush(stdout);
    }
  }
  const ProbeResult probe = RunConnectionProbe();
  const size_t before_probe = lines.size();
  AddProbeLines(probe, &lines);
  std::string reason;
  for (const Line &line : lines) {
    if (line.status == CheckStatus::kFail && reason.empty()) {
      reason = line.name + ": " + line.detail;
    }
  }
  const bool works = reason.empty();
  if (json) {
    PrintJson(lines, probe, works, reason);
  } else {
    for (size_t i = before_probe; i < lines.size(); ++i) {
      std::printf("%-5s %-16s %s\n", CheckStatusName(lines[i].status), lines[i].name.c_str(),
                  lines[i].detail.c_str());
    }
    if (works) {
      std::printf("\nloopfast %s: the fast path works here\n", loopfast_version());
    } else {
      std::printf("\nloopfast %s: no fast path here: %s\n", loopfast_version(), reason.c_str());
    }
  }
  return works ? 0 : 1;
}

}  // namespace loopfast::tool
