// The implementation of messages.h (what it is for is said there).
#include "session/messages.h"

#include <cstring>

#include "session/arena_layout.h"

namespace loopfast::session {

bool IsMessage(const void *bytes, size_t size, Kind kind, size_t expected_size) {
  if (bytes == nullptr || size != expected_size || size < sizeof(MessageHeader)) return false;
  MessageHeader header;
  std::memcpy(&header, bytes, sizeof header);
  return header.magic == kMessageMagic && header.version == kProtocolVersion && header.kind == kind;
}

bool IsUsableSetup(const void *bytes, size_t size) {
  if (!IsMessage(bytes, size, Kind::kSessionSetup, sizeof(SessionSetup))) return false;
  SessionSetup setup;
  std::memcpy(&setup, bytes, sizeof setup);
  return setup.arena_version == kArenaVersion && setup.arena_bytes == kArenaBytes &&
         setup.reserved == 0 && setup.nonce != 0;
}

}  // namespace loopfast::session
