// Reading another process's statistics registry (registry_layout.h) for `loopfast stat`. The
// memory belongs to a process the reader does not trust: every field is checked, and a slot
// that stays mid-rewrite is skipped, never waited for.
//
// Thread rules: any thread; no shared state.
#ifndef LOOPFAST_STAT_REGISTRY_READER_H_
#define LOOPFAST_STAT_REGISTRY_READER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "stat/registry_layout.h"

namespace loopfast::stat {

struct SlotView {
  int index = 0;
  SlotState state = SlotState::kFree;
  Role role = Role::kNone;
  int family = 0;
  int fd = -1;
  uint64_t socket_inode = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  std::string local;  // "127.0.0.1:5000", "[::1]:5000"; "" when not known
  std::string peer;
  bool asleep_to_receive = false;
  bool asleep_to_send = false;
  // Blocking sends and receives that waited: answered while spinning / after they slept.
  uint64_t waits_spun = 0;
  uint64_t waits_slept = 0;
  std::string reason;
  // Sessions (state kSession):
  int peer_pid = 0;
  uint32_t peer_uid = 0;
  int port = 0;  // the listener's
  uint32_t connections = 0;
  uint64_t arena_bytes_in_use = 0;
};

struct RegistryView {
  pid_t pid = 0;
  std::vector<SlotView> sockets;  // slots in use (not free), sessions included
  int skipped = 0;                // slots that stayed mid-rewrite or held invalid values
};

// Reads a registry of `size` bytes at `memory` (mapped read-only). EPROTO when it is not a
// registry of this version or its sizes do not fit in `size`.
Result<RegistryView> ReadRegistry(const void *memory, size_t size);

// Opens and maps the registry behind `path` (e.g. /proc/<pid>/fd/<n>) read-only and reads it.
Result<RegistryView> ReadRegistryFile(const char *path);

}  // namespace loopfast::stat

#endif  // LOOPFAST_STAT_REGISTRY_READER_H_
