#include "socket/socket.h"

#include "sys/owned_fds.h"

namespace loopfast {

Socket::~Socket() {
  sys::CloseOwned(rendezvous_fd);
  sys::CloseOwned(kept_fd.load(std::memory_order_relaxed));
}

}  // namespace loopfast
