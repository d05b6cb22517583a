// A socket's statistics slot (socket_stat.h): publishing its stage, addresses and reasons.
#include "socket/socket_stat.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <string>

#include "fast/fast_connection.h"
#include "stat/registry.h"

namespace loopfast {

// The longest reasons fit a statistics slot whole (stat::kReasonBytes, with the NUL).
static_assert(std::char_traits<char>::length(reason::kClaimAmbiguous) < stat::kReasonBytes);
static_assert(std::char_traits<char>::length(reason::kChannelNotListeners) < stat::kReasonBytes);

const char *CurrentFallbackReason(const Socket &socket) {
  FastConnection *fast = socket.fast.load(std::memory_order_acquire);
  if (socket.fallback_reason == reason::kNone && fast != nullptr && fast->UsesKernel()) {
    return reason::kPeerMoved;
  }
  return socket.fallback_reason;
}

const char *ReportedFallbackReason(const Socket &socket) { return CurrentFallbackReason(socket); }

const char *InternReason(const char *text) {
  static std::mutex mutex;
  static auto *texts = new std::set<std::string>();  // never destroyed: pointers outlive exit
  constexpr size_t kMaxTexts = 256;
  std::lock_guard<std::mutex> guard(mutex);
  auto found = texts->find(text);
  if (found != texts->end()) return found->c_str();
  if (texts->size() >= kMaxTexts) return "(reason not kept: too many distinct reasons)";
  return texts->insert(text).first->c_str();
}

namespace {

void CopyEndpoint(const struct sockaddr *from, uint8_t *address, uint16_t *port) {
  if (from->sa_family == AF_INET) {
    const auto *in = reinterpret_cast<const struct sockaddr_in *>(from);
    std::memcpy(address, &in->sin_addr, 4);
    *port = in->sin_port;
  } else if (from->sa_family == AF_INET6) {
    const auto *in6 = reinterpret_cast<const struct sockaddr_in6 *>(from);
    std::memcpy(address, &in6->sin6_addr, 16);
    *port = in6->sin6_port;
  }
}

// Copies `known`, or else the address `get` (getsockname or getpeername) reports, into the
// slot's fields.
template <typename Get>
void ReadEndpoint(const struct sockaddr *known, Get get, int fd, uint8_t *address, uint16_t *port) {
  if (known != nullptr) {
    CopyEndpoint(known, address, port);
    return;
  }
  struct sockaddr_storage storage {};
  socklen_t length = sizeof storage;
  if (get(fd, reinterpret_cast<struct sockaddr *>(&storage), &length) != 0) return;
  CopyEndpoint(reinterpret_cast<const struct sockaddr *>(&storage), address, port);
}

}  // namespace

void PublishSocket(Socket &socket, int fd, const KnownEnds &known) {
  const char *why = CurrentFallbackReason(socket);
  FastConnection *fast = socket.fast.load(std::memory_order_acquire);
  stat::SlotState state;
  switch (socket.stage.load(std::memory_order_acquire)) {
    case Stage::kListening:
      state = stat::SlotState::kListener;
      break;
    case Stage::kFast:
      state = why == reason::kNone ? stat::SlotState::kFast : stat::SlotState::kKernel;
      break;
    case Stage::kKernel:
      state = stat::SlotState::kKernel;
      break;
    default:
      return;  // not connected or listening yet
  }
  const bool opted_in = socket.opted_in.load(std::memory_order_relaxed);
  if (!opted_in && why == reason::kNone && state != stat::SlotState::kFast) return;
  const bool first = socket.stat_slot == stat::kNoSlot;
  if (first) {
    socket.stat_slot = stat::AcquireSlot();
    if (socket.stat_slot == stat::kNoSlot) return;
  }
  {
    stat::SlotWriter writer(socket.stat_slot);
    stat::Slot *slot = writer.slot();
    if (slot == nullptr) return;
    // Up to three system calls once per socket (the peer's again until it is known): addresses
    // kept here stay readable after the kernel has let the connection go.
    const int saved_errno = errno;
    if (first) {
      struct stat info;
      if (socket.stat_inode == 0) {
        socket.stat_inode = fstat(fd, &info) == 0 ? static_cast<uint64_t>(info.st_ino) : 0;
      }
      std::memset(slot->local_address, 0, sizeof slot->local_address);
      std::memset(slot->peer_address, 0, sizeof slot->peer_address);
      slot->local_port = slot->peer_port = 0;
      ReadEndpoint(known.local, getsockname, fd, slot->local_address, &slot->local_port);
    }
    if (slot->peer_port == 0 && state != stat::SlotState::kListener) {
      ReadEndpoint(known.peer, getpeername, fd, slot->peer_address, &slot->peer_port);
    }
    errno = saved_errno;
    slot->state = state;
    slot->role = socket.role;
    slot->family = static_cast<uint8_t>(socket.family);
    slot->fd = fd;
    slot->socket_inode = socket.stat_inode;
    std::strncpy(slot->reason, why, stat::kReasonBytes - 1);
    slot->reason[stat::kReasonBytes - 1] = '\0';
  }
  if (fast != nullptr) fast->PublishTo(socket.stat_slot);
  socket.published_fast.store(state == stat::SlotState::kFast, std::memory_order_relaxed);
}

void RepublishIfMoved(Socket &socket, int fd) {
  if (!socket.published_fast.load(std::memory_order_relaxed)) return;
  FastConnection *fast = socket.fast.load(std::memory_order_acquire);
  if (fast == nullptr || !fast->UsesKernel()) return;
  std::lock_guard<std::mutex> guard(socket.mutex);
  PublishSocket(socket, fd);
}

}  // namespace loopfast
