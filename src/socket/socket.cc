#include "socket/socket.h"

#include "sys/owned_fds.h"

namespace loopfast {

Socket::~Socket() { sys::CloseOwned(rendezvous_fd); }

}  // namespace loopfast
