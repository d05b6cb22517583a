// The implementation of socket.h (what it is for is said there).
#include "socket/socket.h"

#include "stat/registry.h"
#include "sys/owned_fds.h"

namespace loopfast {

Socket::~Socket() {
  sys::CloseOwned(kept_fd.load(std::memory_order_relaxed));
  stat::ReleaseSlot(stat_slot);
}

}  // namespace loopfast
