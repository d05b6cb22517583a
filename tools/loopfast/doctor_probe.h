// `loopfast doctor`'s real connection: two processes, one fast connection over 127.0.0.1 made
// with the public API (loopfast/loopfast.h), a request/response and a stream figure, and the
// same on kernel TCP for scale. It runs in a fresh process started with neither LOOPFAST_*
// nor LD_PRELOAD in its environment, so that it shows what this host allows (the doctor
// reports the environment separately).
#ifndef LOOPFAST_TOOLS_DOCTOR_PROBE_H_
#define LOOPFAST_TOOLS_DOCTOR_PROBE_H_

#include <cstdint>
#include <string>

namespace loopfast::tool {

struct ProbeResult {
  bool ran = false;         // the probe process reported back
  std::string error;        // why the probe itself failed ("" when it ran to the end)
  std::string client_path;  // "fast", "kernel", "none": loopfast_path_of on each end
  std::string server_path;
  std::string reason;         // loopfast_fallback_reason when not fast
  uint64_t kernel_bytes = 0;  // payload the kernel's TCP connection carried (TCP_INFO)
  double rr_fast_us = 0;      // median round trip, 1-byte request and response
  double rr_kernel_us = 0;
  double stream_fast_gbps = 0;  // 64 KiB writes, GB/s (10^9 bytes)
  double stream_kernel_gbps = 0;
  bool fast() const { return client_path == "fast" && server_path == "fast"; }
};

// Starts the probe process (this executable, `doctor --connection-probe`) and reads its result.
ProbeResult RunConnectionProbe();

// The probe process's body: measures and prints its result on stdout. Returns the exit status.
int ConnectionProbeMain();

}  // namespace loopfast::tool

#endif  // LOOPFAST_TOOLS_DOCTOR_PROBE_H_
