// linux/tcp.h, not glibc's netinet/tcp.h: only the kernel's struct has the byte counters.
#include "sys/tcp_counters.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>

#include "sys/real_calls.h"

namespace loopfast::sys {

uint64_t KernelBytesReceived(int fd) {
  struct tcp_info info {};
  socklen_t length = sizeof info;
  const int saved_errno = errno;
  const int ret = Real().getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length);
  errno = saved_errno;
  if (ret != 0 || length < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(uint64_t)) {
    return 0;
  }
  return info.tcpi_bytes_received;
}

}  // namespace loopfast::sys
