// The kernel's per-connection byte counters (TCP_INFO), for readiness on connections whose
// input comes from the kernel socket.
#ifndef LOOPFAST_SYS_TCP_COUNTERS_H_
#define LOOPFAST_SYS_TCP_COUNTERS_H_

#include <cstdint>

namespace loopfast::sys {

// Bytes the kernel connection ever received (tcpi_bytes_received); 0 when unknown.
uint64_t KernelBytesReceived(int fd);

}  // namespace loopfast::sys

#endif  // LOOPFAST_SYS_TCP_COUNTERS_H_
