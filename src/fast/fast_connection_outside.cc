// One end of a fast connection (fast_connection.h), what it tells the outside: its capture
// (`loopfast capture`) and its `loopfast stat` slot.
#include <sys/socket.h>

#include <cerrno>

#include "fast/fast_connection.h"
#include "stat/registry.h"

namespace loopfast {

void FastConnection::StartCapture(capture::Sink *sink, int kernel_fd, bool client) {
  struct sockaddr_storage local {
  }, remote{};
  socklen_t local_length = sizeof local, remote_length = sizeof remote;
  const int saved_errno = errno;
  const bool named =
      getsockname(kernel_fd, reinterpret_cast<struct sockaddr *>(&local), &local_length) == 0 &&
      getpeername(kernel_fd, reinterpret_cast<struct sockaddr *>(&remote), &remote_length) == 0;
  errno = saved_errno;
  if (!named) return;
  self().capture_file.store(sink->FileId(), std::memory_order_release);
  // When both ends capture into one file, the first to start writes the handshake (the peer
  // could write any value here: at worst a capture lacks its handshake).
  uint64_t first = 0;
  const bool peer_captured = !slot_->header.handshake_capture.compare_exchange_strong(
                                 first, sink->FileId(), std::memory_order_acq_rel) &&
                             first == sink->FileId();
  capture_flow_ = sink->Begin(reinterpret_cast<struct sockaddr *>(&local), local_length,
                              reinterpret_cast<struct sockaddr *>(&remote), remote_length, client,
                              peer_captured);
  if (capture_flow_) capture_sink_ = sink;
}

void FastConnection::PublishTo(int slot) {
  stat_slot_.store(slot, std::memory_order_relaxed);
  if (stat::Slot *published = stat::SlotAt(slot)) {
    published->bytes_sent.store(bytes_sent(), std::memory_order_relaxed);
    published->bytes_received.store(bytes_received(), std::memory_order_relaxed);
  }
}

void FastConnection::CountReadinessWait(bool slept) const {
  stat::Slot *slot = StatSlot();
  if (slot == nullptr) return;
  (slept ? slot->waits_slept : slot->waits_spun).fetch_add(1, std::memory_order_relaxed);
}

stat::Slot *FastConnection::StatSlot() const {
  return stat::SlotAt(stat_slot_.load(std::memory_order_relaxed));
}

}  // namespace loopfast
