// The process's one descriptor table (fd_table.h).
#include "socket/fd_table.h"

namespace loopfast {

FdTable &FdTable::Instance() {
  // Never destroyed: descriptors may be used from atexit handlers and other destructors.
  static FdTable *table = new FdTable();
  return *table;
}

}  // namespace loopfast
