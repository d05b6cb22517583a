// The shared-memory format of one session: the memory a connecting process shares with one
// listener group, holding the rings of every fast connection between them (docs/design.md,
// "Sessions"). The connecting process creates it (a sealed memfd of a fixed, sparse size: only
// pages that are touched cost memory), so that it can write to a new connection at once, before
// any process of the group has accepted it.
//
//   offset 0                ArenaHeader (one page)
//   kHintsOffset            ChangeHints of each side (one page each): which slots changed for it
//   kClaimIndexOffset       claim index: kClaimEntries x ClaimEntry (socket cookie -> slot)
//   kSlotsOffset            kMaxSlots x Slot: one per connection (header, both ends' flags, both
//                           rings' control blocks and first windows)
//   kClientRegionOffset     the connecting side's region: larger windows of client->server rings
//   kServerRegionOffset     the accepting side's region: larger windows of server->client rings
//
// Fixed layout, versioned; both sides compute every offset from the constants here and never
// from the memory. Everything the peer writes is untrusted input: positions and windows are
// checked by the ring (ring/ring.h), area offsets by ValidArea, the rest where it is read.
#ifndef LOOPFAST_SESSION_ARENA_LAYOUT_H_
#define LOOPFAST_SESSION_ARENA_LAYOUT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/cacheline.h"
#include "ring/ring.h"

namespace loopfast::session {

inline constexpr uint32_t kArenaMagic = 0x4c465341;  // "LFSA"
// 8: change hints, and wake-up stamps in RingControl (data_wake_ns, room_wake_ns); 7: ready
// stamps; 6: sessions
inline constexpr uint32_t kArenaVersion = 8;

inline constexpr uint64_t kPageBytes = 4096;
inline constexpr uint32_t kMaxSlots = 16384;
inline constexpr uint32_t kClaimEntries = 2 * kMaxSlots;  // at most half full
inline constexpr uint32_t kSlotBytes = 1536;
// Each ring's first window, inside its slot. Request/response traffic of small messages never
// leaves it, so such a connection costs its 1.5 KiB slot and nothing else.
inline constexpr uint32_t kSlotWindowBytes = 512;
// The two regions where larger windows live, each carved by its producer's own allocator.
inline constexpr uint64_t kRegionBytes = uint64_t{512} << 20;
// Smallest unit the regions are carved into (region_allocator.h).
inline constexpr uint32_t kRegionChunkBytes = 16 * 1024;

// Ring sizes: a consumer's limit (from SO_RCVBUF) is clamped to [kMinRingBytes, kMaxRingBytes];
// before the accepting side has bound a connection, the client->server ring stays within
// kUnboundRingBytes (what kernel TCP lets a client send before the accept is of that order).
inline constexpr uint32_t kMinRingBytes = 16 * 1024;
inline constexpr uint32_t kUnboundRingBytes = 256 * 1024;
inline constexpr uint32_t kDefaultRingBytes = 4 * 1024 * 1024;
inline constexpr uint32_t kMaxRingBytes = 16 * 1024 * 1024;
// A window past the slot's lives in a "medium" area of this size while it fits, then in a
// "large" area of the ring's limit.
inline constexpr uint32_t kMediumAreaBytes = 64 * 1024;

// Endpoint indices. The connecting side is 0, the accepting side 1.
inline constexpr int kClientSide = 0;
inline constexpr int kServerSide = 1;
// Ring 0 carries client->server bytes, ring 1 server->client.
inline constexpr int RingInto(int side) { return 1 - side; }  // the ring `side` reads
inline constexpr int RingFrom(int side) { return side; }      // the ring `side` writes

// Bits of SideBlock::flags: what an endpoint has done, as the other sees it.
enum SideFlag : uint32_t {
  kSideWriteShut = 1u << 0,  // no more bytes will come from this side (shutdown WR or close)
  kSideReadShut = 1u << 1,   // this side reads no more (shutdown RD)
  kSideClosed = 1u << 2,     // the last descriptor of this side was closed
  kSideAborted = 1u << 3,    // closed with unread bytes: the kernel connection is reset
  // Moving to kernel TCP for good (a program that cannot see the rings is about to hold the
  // socket): this side's threads stop using the rings. Then kSideMoved: none is inside any
  // more; the peer writes what this side never read to the kernel connection and uses it.
  kSideMoving = 1u << 4,
  kSideMoved = 1u << 5,
  // Moving to kernel TCP while this side's program goes on: kSideSwitching stops this side's
  // ring writes; kSideRingDone, set once no writer of this side is inside its ring, tells the
  // peer that after the ring's remainder this side's bytes travel the kernel connection.
  kSideSwitching = 1u << 6,
  kSideRingDone = 1u << 7,
  // Bytes reached the kernel connection past the rings: the connection is reset for both.
  kSideBroken = 1u << 8,
  // This side will never touch the slot again (set last, after every other write).
  kSideReleased = 1u << 9,
};

// Slot states (SlotHeader::state). The client moves kFree -> kClaimed -> kConnected, or to
// kDeclined when it took kernel TCP; the accepting side moves kClaimed/kConnected -> kBound.
enum SlotState : uint32_t {
  kSlotFree = 0,
  kSlotClaimed = 1,    // rings ready, socket published, the client is connecting
  kSlotConnected = 2,  // the listener answered with its marker: the client writes to the ring
  kSlotDeclined = 3,   // the client took kernel TCP: the accepting side must too
  kSlotBound = 4,      // a process of the group accepted the connection and uses the slot
};

// Written by one endpoint only; the other reads it.
struct SideBlock {
  std::atomic<uint32_t> flags;
  std::atomic<uint32_t> holders;  // processes holding this end (informational, for stat)
  uint32_t pid;                   // informational (stat), never trusted
  // The most this end lets the peer keep in the ring it reads (its SO_RCVBUF), in bytes; the
  // peer clamps it. 0: not published yet.
  std::atomic<uint32_t> rx_limit;
  // The capture file this end writes (capture::Sink::FileId), 0 when none.
  std::atomic<uint64_t> capture_file;
  uint8_t pad[kCacheLine - 24];
};
static_assert(offsetof(SideBlock, flags) == 0);
static_assert(offsetof(SideBlock, holders) == 4);
static_assert(offsetof(SideBlock, pid) == 8);
static_assert(offsetof(SideBlock, rx_limit) == 12);
static_assert(offsetof(SideBlock, capture_file) == 16);
static_assert(sizeof(SideBlock) == kCacheLine);

struct SlotHeader {
  std::atomic<uint32_t> state;       // SlotState
  std::atomic<uint32_t> generation;  // bumped by the client at every claim
  // The client's TCP socket, as the kernel's socket table names it: its cookie (SO_COOKIE),
  // which it keeps after its process closed it (the socket's inode does not).
  std::atomic<uint64_t> socket_cookie;
  std::atomic<uint32_t> bound_by;  // the accepting process's pid (informational)
  // When the client declined the slot (seconds, CLOCK_MONOTONIC): a declined slot waits for an
  // accept that may still look at it, and is taken back only when the session runs out.
  uint32_t declined_at_s;
  // The capture file of the first end that started capturing (0: none): when both ends capture
  // into one file, that end alone writes the handshake.
  std::atomic<uint64_t> handshake_capture;
  uint8_t pad[kCacheLine - 32];
};
static_assert(offsetof(SlotHeader, state) == 0);
static_assert(offsetof(SlotHeader, socket_cookie) == 8);
static_assert(offsetof(SlotHeader, bound_by) == 16);
static_assert(offsetof(SlotHeader, declined_at_s) == 20);
static_assert(offsetof(SlotHeader, handshake_capture) == 24);
static_assert(sizeof(SlotHeader) == kCacheLine);

struct Slot {
  SlotHeader header;
  SideBlock side[2];
  RingControl ring[2];
  uint8_t pad[512 - 3 * kCacheLine - 2 * sizeof(RingControl)];
  uint8_t window[2][kSlotWindowBytes];  // each ring's first window, by ring index
};
static_assert(offsetof(Slot, side) == kCacheLine);
static_assert(offsetof(Slot, ring) == 3 * kCacheLine);
static_assert(offsetof(Slot, window) == 512);
static_assert(sizeof(Slot) == kSlotBytes);
static_assert(sizeof(RingControl) == 2 * kCacheLine);

// Socket cookie -> slot, open addressing, written by the client only. An entry counts only when
// the slot it names is claimed for the same socket, so a stale entry is simply overwritten.
struct ClaimEntry {
  std::atomic<uint64_t> socket_cookie;  // 0: empty
  std::atomic<uint32_t> slot;
  uint32_t reserved;
};
static_assert(sizeof(ClaimEntry) == 16);
inline constexpr uint32_t kMaxClaimProbes = 32;

struct ArenaHeader {
  uint32_t magic;
  uint32_t version;
  uint64_t total_bytes;
  uint32_t max_slots;
  uint32_t slot_bytes;
  uint64_t region_bytes;
  uint32_t client_pid;  // informational
  uint32_t reserved0;
  uint64_t nonce;  // the session's name in messages and in `loopfast stat`
};
static_assert(offsetof(ArenaHeader, total_bytes) == 8);
static_assert(offsetof(ArenaHeader, region_bytes) == 24);
static_assert(offsetof(ArenaHeader, nonce) == 40);
static_assert(sizeof(ArenaHeader) <= kPageBytes);

// Which slots changed for one side's readiness watchers (poll, select, epoll), so that an epoll
// set looks only at those (session/change_hints.h). Whoever changes what that side may wait for
// (the peer's write into the ring it reads, the peer's read from the ring it writes, either
// side's flags) sets the slot's bit while that side watches the slot (kWatcher in the ring's
// waiting word); the watching process takes the bits of its own slots (several processes of a
// listener group may share a side). `sleepers` counts the watchers of that side asleep (or about
// to be) on its bell; each clears `rung` as it announces itself; a changer that finds a sleeper
// rings the bell once (the first to set `rung`). All of it is the peer's to write too: a hint
// only makes a set look.
struct ChangeHints {
  alignas(kCacheLine) std::atomic<uint32_t> sleepers;
  std::atomic<uint32_t> rung;
  uint8_t pad0[kCacheLine - 8];
  std::atomic<uint64_t> bits[kMaxSlots / 64];
};
static_assert(offsetof(ChangeHints, sleepers) == 0);
static_assert(offsetof(ChangeHints, rung) == 4);
static_assert(offsetof(ChangeHints, bits) == kCacheLine);
static_assert(sizeof(ChangeHints) == kCacheLine + kMaxSlots / 8);
static_assert(sizeof(ChangeHints) <= kPageBytes);

inline constexpr uint64_t AlignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}
inline constexpr uint64_t kHintsOffset = kPageBytes;  // side 0's, then side 1's a page later
inline constexpr uint64_t kClaimIndexOffset = kHintsOffset + 2 * kPageBytes;
inline constexpr uint64_t kSlotsOffset =
    AlignUp(kClaimIndexOffset + uint64_t{kClaimEntries} * sizeof(ClaimEntry), kPageBytes);
inline constexpr uint64_t kClientRegionOffset =
    AlignUp(kSlotsOffset + uint64_t{kMaxSlots} * kSlotBytes, uint64_t{2} << 20);
inline constexpr uint64_t kServerRegionOffset = kClientRegionOffset + kRegionBytes;
inline constexpr uint64_t kArenaBytes = kServerRegionOffset + kRegionBytes;
static_assert(kSlotsOffset % kCacheLine == 0);
static_assert(kClientRegionOffset % kRegionChunkBytes == 0);
static_assert(kRegionBytes % kRegionChunkBytes == 0);

// The region whose windows `side` writes (it is that ring's producer).
inline constexpr uint64_t RegionOffsetOf(int side) {
  return side == kClientSide ? kClientRegionOffset : kServerRegionOffset;
}

// A mapped arena, as this process sees it.
class ArenaView {
 public:
  ArenaView() = default;
  explicit ArenaView(void *base) : base_(static_cast<uint8_t *>(base)) {}

  uint8_t *base() const { return base_; }
  ArenaHeader *header() const { return reinterpret_cast<ArenaHeader *>(base_); }
  ClaimEntry *claims() const { return reinterpret_cast<ClaimEntry *>(base_ + kClaimIndexOffset); }
  ChangeHints *hints(int side) const {
    return reinterpret_cast<ChangeHints *>(base_ + kHintsOffset + uint64_t(side & 1) * kPageBytes);
  }
  Slot *slot(uint32_t index) const {
    return reinterpret_cast<Slot *>(base_ + kSlotsOffset + uint64_t{index} * kSlotBytes);
  }
  // Where [offset, offset + bytes) of `side`'s region is, or null when that range is not
  // wholly inside it (an offset read from the peer).
  uint8_t *Area(int side, uint64_t offset, uint64_t bytes) const;

 private:
  uint8_t *base_ = nullptr;
};

// Writes a fresh header (the memory is zeroed).
void InitializeArena(void *memory, uint64_t nonce, uint32_t client_pid);

// Checks a header received from the peer against the memory's real size.
bool ValidateArena(const void *memory, uint64_t mapped_bytes);

// Where a socket's search starts in the claim index.
inline uint32_t ClaimHome(uint64_t socket_cookie) {
  return static_cast<uint32_t>((socket_cookie * 0x9e3779b97f4a7c15ULL) >> 32) & (kClaimEntries - 1);
}

// What the claim index says of the client socket `socket_cookie`: its slot when a slot is
// claimed (or declined) for it; every index and slot read is the client's and is checked.
enum class ClaimFound { kNone, kClaimed, kDeclined };
ClaimFound FindClaim(const ArenaView &arena, uint64_t socket_cookie, uint32_t *slot);

// Rounds a requested buffer size to a ring limit in [kMinRingBytes, kMaxRingBytes].
uint32_t RingLimitFor(uint64_t requested_bytes);

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_ARENA_LAYOUT_H_
