// Descriptor → Socket, for every descriptor loopfast tracks: the map every intercepted call
// reads once (descriptor_map.h says how a lookup stays lock-free and keeps its Socket alive
// while another thread closes the descriptor).
//
// Thread rules: any thread; Get and Has never take a lock.
#ifndef LOOPFAST_SOCKET_FD_TABLE_H_
#define LOOPFAST_SOCKET_FD_TABLE_H_

#include "socket/descriptor_map.h"
#include "socket/socket.h"

namespace loopfast {

class FdTable : public DescriptorMap<Socket> {
 public:
  static FdTable &Instance();
};

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_FD_TABLE_H_
