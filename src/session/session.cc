// The implementation of session.h (what it is for is said there).
#include "session/session.h"

#include <arpa/inet.h>
#include <sys/mman.h>

#include <cerrno>

#include "stat/registry.h"
#include "sys/owned_fds.h"

namespace loopfast::session {

Session::Session(int side, void *arena, uint64_t nonce, int own_bell, int peer_bell)
    : arena_(arena),
      side_(side),
      nonce_(nonce),
      own_bell_(own_bell),
      peer_bell_(peer_bell),
      creator_pid_(sys::ThisProcess()) {}

Session::~Session() {
  stat::ReleaseSlot(stat_slot_);
  if (arena_.base() != nullptr) {
    const int saved_errno = errno;
    munmap(arena_.base(), kArenaBytes);
    errno = saved_errno;
  }
}

void Session::PublishStat(uint16_t port) {
  stat_slot_ = stat::AcquireSlot();
  {
    stat::SlotWriter writer(stat_slot_);
    stat::Slot *slot = writer.slot();
    if (slot == nullptr) return;
    slot->state = stat::SlotState::kSession;
    slot->role = side_ == kClientSide ? stat::Role::kConnecting : stat::Role::kAccepting;
    slot->family = 0;
    slot->fd = -1;
    slot->socket_inode = 0;
    slot->peer_uid = static_cast<uint32_t>(peer_uid_);
    slot->peer_pid = static_cast<int32_t>(peer_pid_);
    slot->local_port = htons(port);
    slot->peer_port = 0;
    slot->reason[0] = '\0';
  }
  UpdateStat();
}

void Session::UpdateStat() {
  stat::Slot *slot = stat::SlotAt(stat_slot_);
  if (slot == nullptr) return;
  const uint32_t connections = open_connections.load(std::memory_order_relaxed);
  // The arena's fixed part (header, claim index) and the slots and ring areas in use.
  const uint64_t in_use =
      kSlotsOffset + uint64_t{connections} * kSlotBytes + allocator_.BytesInUse();
  slot->connections.store(connections, std::memory_order_relaxed);
  slot->arena_bytes_in_use.store(in_use, std::memory_order_relaxed);
}

void Session::SetAllocatorState(RegionAllocatorState *state) {
  allocator_ = RegionAllocator(state, arena_.base() + RegionOffsetOf(side_));
}

uint8_t *Session::RingAreas::Allocate(int area, uint32_t bytes, uint64_t *offset) {
  if (!producer_ || area < 1 || area > 2) return nullptr;
  const int64_t taken = session_->allocator_.Allocate(bytes);
  if (taken < 0) return nullptr;
  *offset = static_cast<uint64_t>(taken);
  made_->area_offset[area - 1].store(*offset, std::memory_order_relaxed);
  made_->area_bytes[area - 1].store(bytes, std::memory_order_release);
  return session_->arena_.Area(session_->side_, *offset, bytes);
}

uint8_t *Session::RingAreas::Existing(int area, uint32_t *bytes) {
  if (!producer_ || area < 1 || area > 2) return nullptr;
  *bytes = made_->area_bytes[area - 1].load(std::memory_order_acquire);
  if (*bytes == 0) return nullptr;
  return session_->arena_.Area(
      session_->side_, made_->area_offset[area - 1].load(std::memory_order_relaxed), *bytes);
}

std::vector<TakenArea> Session::RingAreas::taken() const {
  std::vector<TakenArea> areas;
  for (int i = 0; i < 2; ++i) {
    const uint32_t bytes = made_->area_bytes[i].load(std::memory_order_acquire);
    if (bytes != 0) areas.push_back({made_->area_offset[i].load(std::memory_order_relaxed), bytes});
  }
  return areas;
}

uint8_t *Session::RingAreas::Resolve(uint64_t offset, uint32_t window) {
  if (producer_) return nullptr;
  // The producer is the other side: its region, and only there.
  return session_->arena_.Area(1 - session_->side_, offset, window);
}

void Session::ConnectionClosed() {
  const bool last = open_connections.fetch_sub(1, std::memory_order_acq_rel) == 1;
  UpdateStat();
  if (last) Idle();
}

void Session::Retire(uint32_t slot, std::vector<TakenArea> areas, bool peer_gone) {
  const Slot *s = arena_.slot(slot);
  const bool peer_done =
      peer_gone || (s->side[1 - side_].flags.load(std::memory_order_acquire) & kSideReleased) != 0;
  if (peer_done) {
    for (const TakenArea &area : areas) allocator_.Free(area.offset, area.bytes);
    SlotDone(slot);
  } else {
    std::lock_guard<std::mutex> guard(retired_mutex_);
    retired_.push_back(
        {slot, s->header.generation.load(std::memory_order_relaxed), std::move(areas)});
  }
  SweepRetired();
}

void Session::SweepRetired() {
  std::vector<Retired> done;
  {
    std::lock_guard<std::mutex> guard(retired_mutex_);
    for (size_t i = 0; i < retired_.size();) {
      const Slot *s = arena_.slot(retired_[i].slot);
      // Released, or already claimed again by the client (which frees a slot only once both
      // ends let go; the peer may lie about either, at the cost of its own connections only).
      if ((s->side[1 - side_].flags.load(std::memory_order_acquire) & kSideReleased) != 0 ||
          s->header.generation.load(std::memory_order_relaxed) != retired_[i].generation) {
        done.push_back(std::move(retired_[i]));
        retired_[i] = std::move(retired_.back());
        retired_.pop_back();
      } else {
        ++i;
      }
    }
  }
  for (Retired &entry : done) {
    for (const TakenArea &area : entry.areas) allocator_.Free(area.offset, area.bytes);
    SlotDone(entry.slot);
  }
}

}  // namespace loopfast::session
