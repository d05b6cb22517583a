// What both halves of a session have in common, as one process sees it: the mapped arena
// (arena_layout.h), which side of it this process is on, the bells, the allocator of this
// side's region, and the bookkeeping that gives a slot's memory back once both ends are done
// with it. ClientSession (client_session.h) and ServerSession (listener_group.h) add how a
// connection gets its slot.
//
// Thread rules: any thread. A FastConnection keeps its session alive (shared_ptr).
#ifndef LOOPFAST_SESSION_SESSION_H_
#define LOOPFAST_SESSION_SESSION_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "ring/ring.h"
#include "session/arena_layout.h"
#include "session/region_allocator.h"
#include "sys/family_memory.h"

namespace loopfast::session {

// An area a ring's producer took from its region (to give back when both ends are done).
struct TakenArea {
  uint64_t offset = 0;
  uint32_t bytes = 0;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  virtual ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  const ArenaView &arena() const { return arena_; }
  int side() const { return side_; }
  uint64_t nonce() const { return nonce_; }
  // Our watchers (poll, select, epoll) register this bell; the peer rings it.
  int own_bell() const { return own_bell_; }
  // Rung to wake the peer's watchers.
  int peer_bell() const { return peer_bell_; }
  uid_t peer_uid() const { return peer_uid_; }
  // The process that made (or received) the session. A forked child shares its memory but not
  // the right to take this side's change hints (change_hints.h): those are its parent's.
  pid_t creator_pid() const { return creator_pid_; }
  pid_t peer_pid() const { return peer_pid_; }

  // For a ring of a slot: areas this side makes (the ring it writes; what it made is kept in
  // `made`, family memory shared with the processes that share this end) and finds (the ring
  // it reads). Owned by the caller; lives no longer than the session.
  class RingAreas : public AreaSource {
   public:
    RingAreas(Session *session, bool producer, sys::LockCell *made)
        : session_(session), producer_(producer), made_(made) {}
    uint8_t *Allocate(int area, uint32_t bytes, uint64_t *offset) override;
    uint8_t *Existing(int area, uint32_t *bytes) override;
    uint8_t *Resolve(uint64_t offset, uint32_t window) override;
    uint32_t medium_bytes() const override { return kMediumAreaBytes; }
    std::vector<TakenArea> taken() const;

   private:
    Session *session_;
    bool producer_;
    sys::LockCell *made_;
  };

  // This side is done with `slot` for good (its kSideReleased is set). Its areas go back once
  // the peer is done too: at once when it is (or is gone), else at a later sweep.
  void Retire(uint32_t slot, std::vector<TakenArea> areas, bool peer_gone);

  // Connections of this session that are open in this process (stat, idle tracking).
  std::atomic<uint32_t> open_connections{0};
  // The last holder of one of them let go. A session whose peer is gone and that no connection
  // uses lets go of its memory and descriptors now (nothing is left behind).
  void ConnectionClosed();

  // `loopfast stat`'s row for the session (the listener's `port`), and its counts kept current.
  void PublishStat(uint16_t port);
  void UpdateStat();

 protected:
  Session(int side, void *arena, uint64_t nonce, int own_bell, int peer_bell);
  // Gives back what retired slots left whose peers are now done too.
  void SweepRetired();
  // The slot itself is the client's to give back (ClientSession frees it).
  virtual void SlotDone(uint32_t slot) = 0;
  // Called when no connection of this process uses the session any more.
  virtual void Idle() {}
  void SetAllocatorState(RegionAllocatorState *state);

  ArenaView arena_;
  const int side_;
  const uint64_t nonce_;
  int own_bell_;
  int peer_bell_;
  uid_t peer_uid_ = 0;
  pid_t peer_pid_ = 0;
  const pid_t creator_pid_;
  RegionAllocator allocator_;
  int stat_slot_ = -1;

 private:
  struct Retired {
    uint32_t slot;
    uint32_t generation;  // the slot's when this end let go: a later one means the peer did too
    std::vector<TakenArea> areas;
  };
  std::mutex retired_mutex_;
  std::vector<Retired> retired_;
};

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_SESSION_H_
