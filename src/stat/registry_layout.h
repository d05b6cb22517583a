// The statistics registry: one memfd per process ("loopfast-stat"), mapped shared, in which the
// library publishes one slot per opted-in socket (listeners and connections, fast or not) and
// the fast path's byte counters. `loopfast stat` finds it through /proc/<pid>/fd, which only the
// same user (or root) may open, and maps it read-only: programs are never stopped or attached
// to. It holds what `ss -p` shows the same user anyway, never a ring or its memory.
//
// Fixed layout, versioned; the reader treats every field as untrusted (registry_reader.h).
// Thread rules: a slot's descriptive fields are written under a seqlock by the thread holding
// its socket's mutex; the counters and the asleep marks are atomics any thread of the owner
// updates.
#ifndef LOOPFAST_STAT_REGISTRY_LAYOUT_H_
#define LOOPFAST_STAT_REGISTRY_LAYOUT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace loopfast::stat {

inline constexpr uint32_t kRegistryMagic = 0x5453464c;  // "LFST"
inline constexpr uint16_t kRegistryVersion = 3;         // 3: waits_spun, waits_slept
inline constexpr char kRegistryMemfdName[] = "loopfast-stat";
// Slots in one registry: the memfd is sized for all of them but is sparse, so only the pages
// of slots ever used take memory (192 bytes a socket).
inline constexpr uint32_t kRegistrySlots = 65536;
inline constexpr size_t kReasonBytes = 80;

enum class SlotState : uint8_t {
  kFree = 0,
  kListener = 1,  // an opted-in listener: fast-capable unless `reason` says why not
  kPending = 2,   // connected, the rendezvous under way
  kFast = 3,      // data moves through shared memory
  kKernel = 4,    // on kernel TCP; `reason` says why
  kSession = 5,   // a session with another process (role: which side this process is on)
};

enum class Role : uint8_t { kNone = 0, kConnecting = 1, kAccepting = 2 };

struct RegistryHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t header_bytes;
  uint32_t slot_bytes;
  uint32_t slot_capacity;
  int32_t pid;
  uint32_t reserved0;
  // Slots [0, slots_in_use) may hold sockets; the reader looks no further.
  std::atomic<uint32_t> slots_in_use;
  uint32_t reserved1;
  uint64_t reserved[4];
};
static_assert(sizeof(RegistryHeader) == 64);
static_assert(offsetof(RegistryHeader, slots_in_use) == 24);

struct Slot {
  std::atomic<uint32_t> sequence;  // seqlock: odd while the fields below are rewritten
  SlotState state;
  Role role;
  uint8_t family;  // AF_INET or AF_INET6
  uint8_t reserved0;
  int32_t fd;             // the descriptor number in the owning process (-1 for a session)
  uint32_t peer_uid;      // sessions: the other process's user
  uint64_t socket_inode;  // the kernel socket's inode: the key to its kernel counters
  // Sessions: bytes of the shared arena in use (slots and ring areas this side made).
  std::atomic<uint64_t> arena_bytes_in_use;
  // Through the rings, by this end (every process holding it), mirrored after each move.
  std::atomic<uint64_t> bytes_sent;
  std::atomic<uint64_t> bytes_received;
  // 1 while a thread of this process sleeps (past its spin) waiting for data / for room.
  std::atomic<uint8_t> asleep_to_receive;
  std::atomic<uint8_t> asleep_to_send;
  uint16_t reserved3;
  int32_t peer_pid;  // sessions: the other process (the listener's, seen from a client)
  // Addresses in network byte order (IPv4 in the first 4 bytes); port 0: not known.
  uint8_t local_address[16];
  uint8_t peer_address[16];
  uint16_t local_port;  // sessions: the listener's port
  uint16_t peer_port;
  std::atomic<uint32_t> connections;  // sessions: connections of it open in this process
  // How this end's blocking sends and receives that waited ended: answered while spinning, or
  // after they stopped spinning (wait/spin_policy.h decides which they try).
  std::atomic<uint64_t> waits_spun;
  std::atomic<uint64_t> waits_slept;
  char reason[kReasonBytes];  // why kernel TCP (NUL-terminated; empty for fast)
};
static_assert(sizeof(Slot) == 192);
static_assert(offsetof(Slot, socket_inode) == 16);
static_assert(offsetof(Slot, bytes_sent) == 32);
static_assert(offsetof(Slot, peer_uid) == 12);
static_assert(offsetof(Slot, arena_bytes_in_use) == 24);
static_assert(offsetof(Slot, asleep_to_receive) == 48);
static_assert(offsetof(Slot, peer_pid) == 52);
static_assert(offsetof(Slot, connections) == 92);
static_assert(offsetof(Slot, local_address) == 56);
static_assert(offsetof(Slot, waits_spun) == 96);
static_assert(offsetof(Slot, waits_slept) == 104);
static_assert(offsetof(Slot, reason) == 112);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint8_t>::is_always_lock_free);

inline constexpr size_t kRegistryBytes = sizeof(RegistryHeader) + sizeof(Slot) * kRegistrySlots;

}  // namespace loopfast::stat

#endif  // LOOPFAST_STAT_REGISTRY_LAYOUT_H_
