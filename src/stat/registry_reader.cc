// The implementation of registry_reader.h (what it is for is said there).
#include "stat/registry_reader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace loopfast::stat {
namespace {

constexpr int kSeqlockTries = 16;

std::string EndpointText(int family, const uint8_t *address, uint16_t port_be) {
  if (port_be == 0) return "";
  char text[INET6_ADDRSTRLEN] = "";
  if (inet_ntop(family, address, text, sizeof text) == nullptr) return "";
  const std::string port = std::to_string(ntohs(port_be));
  return family == AF_INET6 ? "[" + std::string(text) + "]:" + port
                            : std::string(text) + ":" + port;
}

// Plain copies of a slot's fields, taken between two even and equal sequence numbers.
bool CopySlot(const Slot &slot, SlotView *view) {
  for (int attempt = 0; attempt < kSeqlockTries; ++attempt) {
    const uint32_t before = slot.sequence.load(std::memory_order_acquire);
    if ((before & 1) != 0) continue;
    Slot copy;
    std::memcpy(static_cast<void *>(&copy), &slot, sizeof copy);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.sequence.load(std::memory_order_relaxed) != before) continue;
    view->state = copy.state;
    view->role = copy.role;
    view->family = copy.family;
    view->fd = copy.fd;
    view->socket_inode = copy.socket_inode;
    view->bytes_sent = copy.bytes_sent.load(std::memory_order_relaxed);
    view->bytes_received = copy.bytes_received.load(std::memory_order_relaxed);
    view->asleep_to_receive = copy.asleep_to_receive.load(std::memory_order_relaxed) != 0;
    view->asleep_to_send = copy.asleep_to_send.load(std::memory_order_relaxed) != 0;
    view->waits_spun = copy.waits_spun.load(std::memory_order_relaxed);
    view->waits_slept = copy.waits_slept.load(std::memory_order_relaxed);
    view->reason.assign(copy.reason, strnlen(copy.reason, kReasonBytes));
    view->peer_pid = copy.peer_pid;
    view->peer_uid = copy.peer_uid;
    view->port = ntohs(copy.local_port);
    view->connections = copy.connections.load(std::memory_order_relaxed);
    view->arena_bytes_in_use = copy.arena_bytes_in_use.load(std::memory_order_relaxed);
    if (copy.family == AF_INET || copy.family == AF_INET6) {
      view->local = EndpointText(copy.family, copy.local_address, copy.local_port);
      view->peer = EndpointText(copy.family, copy.peer_address, copy.peer_port);
    }
    return true;
  }
  return false;
}

bool Valid(const SlotView &view) {
  const auto state = static_cast<uint8_t>(view.state);
  const auto role = static_cast<uint8_t>(view.role);
  if (state > static_cast<uint8_t>(SlotState::kSession)) return false;
  if (role > static_cast<uint8_t>(Role::kAccepting)) return false;
  if (view.state == SlotState::kSession) {
    return view.peer_pid >= 0 && view.role != Role::kNone && view.reason.empty();
  }
  if (view.state != SlotState::kFree && view.family != AF_INET && view.family != AF_INET6) {
    return false;
  }
  if (view.fd < 0) return false;
  for (const char c : view.reason) {
    if (c < 0x20 || c == 0x7f) return false;  // printable text only: it reaches a terminal
  }
  return true;
}

}  // namespace

Result<RegistryView> ReadRegistry(const void *memory, size_t size) {
  if (size < sizeof(RegistryHeader)) return Errno{EPROTO};
  const auto &header = *static_cast<const RegistryHeader *>(memory);
  if (header.magic != kRegistryMagic || header.version != kRegistryVersion ||
      header.header_bytes != sizeof(RegistryHeader) || header.slot_bytes != sizeof(Slot) ||
      header.slot_capacity > kRegistrySlots || header.pid <= 0) {
    return Errno{EPROTO};
  }
  const uint32_t in_use = header.slots_in_use.load(std::memory_order_acquire);
  if (in_use > header.slot_capacity ||
      sizeof(RegistryHeader) + size_t{in_use} * sizeof(Slot) > size) {
    return Errno{EPROTO};
  }
  RegistryView view;
  view.pid = header.pid;
  const auto *slots =
      reinterpret_cast<const Slot *>(static_cast<const char *>(memory) + sizeof(RegistryHeader));
  for (uint32_t i = 0; i < in_use; ++i) {
    SlotView slot;
    slot.index = static_cast<int>(i);
    if (!CopySlot(slots[i], &slot) || !Valid(slot)) {
      ++view.skipped;
      continue;
    }
    if (slot.state != SlotState::kFree) view.sockets.push_back(std::move(slot));
  }
  return view;
}

Result<RegistryView> ReadRegistryFile(const char *path) {
  // Copied with pread, never mapped: a process that shrank its registry under a mapping would
  // kill the reader with SIGBUS.
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno{errno};
  RegistryHeader header;
  std::vector<char> copy;
  bool read_ok = pread(fd, &header, sizeof header, 0) == static_cast<ssize_t>(sizeof header);
  if (read_ok) {
    const uint32_t in_use = header.slots_in_use.load(std::memory_order_relaxed);
    const size_t size = sizeof header + size_t{std::min(in_use, kRegistrySlots)} * sizeof(Slot);
    copy.resize(size);
    read_ok = pread(fd, copy.data(), size, 0) == static_cast<ssize_t>(size);
    // The seqlock, across copies: a slot counts when its sequence, read again after the copy,
    // is the same even number. Slots caught mid-rewrite are copied again, a few times.
    for (size_t offset = sizeof header; read_ok && offset < size; offset += sizeof(Slot)) {
      for (int attempt = 0; attempt < kSeqlockTries; ++attempt) {
        uint32_t copied, now;
        std::memcpy(&copied, copy.data() + offset, sizeof copied);
        if (pread(fd, &now, sizeof now, static_cast<off_t>(offset)) != sizeof now) break;
        if ((copied & 1) == 0 && copied == now) break;
        if (pread(fd, copy.data() + offset, sizeof(Slot), static_cast<off_t>(offset)) !=
            static_cast<ssize_t>(sizeof(Slot))) {
          break;
        }
      }
    }
  }
  close(fd);
  if (!read_ok) return Errno{EPROTO};
  return ReadRegistry(copy.data(), copy.size());
}

}  // namespace loopfast::stat
