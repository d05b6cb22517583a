#include "rendezvous/protocol.h"

#include <cstring>

namespace loopfast::rendezvous {

bool IsMessage(const void *bytes, size_t size, Kind kind, size_t expected_size) {
  if (bytes == nullptr || size != expected_size || size < sizeof(MessageHeader)) return false;
  MessageHeader header;
  std::memcpy(&header, bytes, sizeof header);
  return header.magic == kMessageMagic && header.version == kProtocolVersion && header.kind == kind;
}

}  // namespace loopfast::rendezvous
