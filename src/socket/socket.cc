#include "socket/socket.h"

#include "sys/real_calls.h"

namespace loopfast {

Socket::~Socket() {
  if (rendezvous_fd >= 0) {
    const int saved_errno = errno;
    sys::Real().close(rendezvous_fd);
    errno = saved_errno;
  }
}

}  // namespace loopfast
