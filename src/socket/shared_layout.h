// The shared-memory format of one fast-path connection: a header page, then the two rings.
// Fixed layout, versioned; the peer's copy of it is untrusted input (see ValidateLayout).
#ifndef LOOPFAST_SOCKET_SHARED_LAYOUT_H_
#define LOOPFAST_SOCKET_SHARED_LAYOUT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/cacheline.h"
#include "ring/ring.h"

namespace loopfast {

inline constexpr uint32_t kLayoutMagic = 0x4c465354;  // "LFST"
inline constexpr uint32_t kLayoutVersion = 4;         // 4: small areas next to the header
inline constexpr uint32_t kHeaderBytes = 4096;
// Ring sizes: the smallest (also the most a connecting side buffers before the rendezvous
// completes, so that its early bytes always fit), the default, the largest. A ring starts
// with a small window (kInitialWindowBytes) and grows while streams fill it; memory is only
// spent on the part of the window actually used. The default is large because a ring larger
// than one core's L2 cache streams several times faster (docs/performance.md).
inline constexpr uint32_t kMinRingBytes = 16 * 1024;
inline constexpr uint32_t kInitialWindowBytes = 64 * 1024;
// Each ring's first window: 1 KiB in the header's own page, after the header (at 2 and 3 KiB).
// Request/response traffic of small messages never leaves it, so such a connection's shared
// memory is that one page.
inline constexpr uint32_t kHeaderWindowBytes = 1024;
inline constexpr uint32_t kHeaderWindowOffset = 2048;
inline constexpr uint32_t kDefaultRingBytes = 4 * 1024 * 1024;
inline constexpr uint32_t kMaxRingBytes = 16 * 1024 * 1024;

// Endpoint indices. The connecting side is 0, the accepting side 1.
inline constexpr int kClientSide = 0;
inline constexpr int kServerSide = 1;
// Ring indices: ring 0 carries client→server bytes, ring 1 server→client.
inline constexpr int RingInto(int side) { return 1 - side; }  // the ring `side` reads
inline constexpr int RingFrom(int side) { return side; }      // the ring `side` writes
static_assert(RingFrom(kClientSide) == 0 && RingInto(kServerSide) == 0);

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
  // Moving to kernel TCP while this side's program goes on (an option or call the rings cannot
  // honour): kSideSwitching stops this side's ring writes; kSideRingDone, set once no writer of
  // this side is inside its ring, tells the peer that after the ring's remainder this side's
  // bytes travel the kernel connection. This side still reads what the peer put in its ring;
  // the peer follows (sets its own kSideRingDone) on its next send.
  kSideSwitching = 1u << 6,
  kSideRingDone = 1u << 7,
  // This side found bytes on the kernel connection that bypassed the rings (a raw system call,
  // a child without loopfast): their order against the ring's bytes is unknowable, so the
  // connection is reset for both sides (SPEC guarantee 4: fail loudly, never corrupt).
  kSideBroken = 1u << 8,
};

// Written by one endpoint only. Locks serialise threads/processes sharing that endpoint.
// The peer polls `flags` while it waits, so what changes on every call (locks, counters)
// lives on another cache line.
struct SideBlock {
  // Changes rarely; the peer reads it often.
  alignas(kCacheLine) std::atomic<uint32_t> flags;
  std::atomic<uint32_t> holders;  // processes holding this end (fork adds one)
  uint32_t pid;                   // informational (stat), never trusted
  uint32_t reserved0;
  // The capture file this end writes (capture::Sink::FileId), 0 when none; set before this end
  // moves any byte. Only decides who writes which packets: never trusted for anything else.
  std::atomic<uint64_t> capture_file;
  uint8_t pad0[kCacheLine - 24];
  // Changes on every call; only this end's own threads and `loopfast stat` read it.
  alignas(kCacheLine) std::atomic<uint32_t> send_lock;  // SharedLock word for the producer
  std::atomic<uint32_t> recv_lock;                      // SharedLock word for the consumer
  uint64_t bytes_sent;                                  // informational counters
  uint64_t bytes_received;
  uint8_t pad1[kCacheLine - 24];
};
static_assert(offsetof(SideBlock, flags) == 0);
static_assert(offsetof(SideBlock, holders) == 4);
static_assert(offsetof(SideBlock, capture_file) == 16);
static_assert(offsetof(SideBlock, send_lock) == kCacheLine);
static_assert(offsetof(SideBlock, bytes_sent) == kCacheLine + 8);
static_assert(sizeof(SideBlock) == 2 * kCacheLine);

// Where each ring's bytes live. A ring's first window (1 KiB) is in the header's page; windows
// up to small_bytes use its small area; both small areas sit right after the header page, so
// a connection that streams a little touches neighbouring pages (one page table per mapping)
// rather than pages megabytes apart. Larger windows use the ring's large area, after both small
// areas (SpscRing explains the moves). A ring no larger than its small area has no large area:
// large_offset == small_offset.
struct SharedHeader {
  uint32_t magic;
  uint32_t version;
  uint32_t header_bytes;
  uint32_t reserved;
  uint64_t total_bytes;
  uint64_t large_offset[2];
  uint32_t ring_capacity[2];
  uint32_t small_offset[2];
  uint32_t small_bytes[2];
  SideBlock side[2];
  RingControl ring[2];
};
static_assert(offsetof(SharedHeader, magic) == 0);
static_assert(offsetof(SharedHeader, version) == 4);
static_assert(offsetof(SharedHeader, total_bytes) == 16);
static_assert(offsetof(SharedHeader, large_offset) == 24);
static_assert(offsetof(SharedHeader, ring_capacity) == 40);
static_assert(offsetof(SharedHeader, small_offset) == 48);
static_assert(offsetof(SharedHeader, small_bytes) == 56);
static_assert(offsetof(SharedHeader, side) == kCacheLine);
static_assert(offsetof(SharedHeader, ring) == 5 * kCacheLine);
static_assert(sizeof(SharedHeader) == 9 * kCacheLine);
static_assert(sizeof(SharedHeader) <= kHeaderWindowOffset);
static_assert(kHeaderWindowOffset + 2 * kHeaderWindowBytes <= kHeaderBytes);

// Where everything lives, computed by each side from the two capacities alone.
struct Placement {
  uint32_t capacity[2];
  uint32_t header_window_offset[2];  // the first window, kHeaderWindowBytes, in the header page
  uint32_t small_offset[2];
  uint32_t small_bytes[2];
  uint64_t large_offset[2];  // == small_offset when the ring has no large area
  uint64_t large_start;      // where the large areas start (a page boundary), or total_bytes
  uint64_t total_bytes;
};
Placement PlaceRings(uint32_t capacity_c2s, uint32_t capacity_s2c);

// Bytes of shared memory for rings of these capacities.
uint64_t LayoutBytes(uint32_t capacity_c2s, uint32_t capacity_s2c);

// Each end maps the memory in two parts: the header and both small areas (the first
// NearBytes(total) bytes: the small areas always end within kMaxNearBytes), and the large
// areas, from large_start to the end, apart (nothing touches them until a stream grows a
// window past its small area).
inline constexpr uint64_t kMaxNearBytes =
    uint64_t{kHeaderBytes} + 2 * uint64_t{kInitialWindowBytes};
inline uint64_t NearBytes(uint64_t total_bytes) {
  return total_bytes < kMaxNearBytes ? total_bytes : kMaxNearBytes;
}

// Writes a fresh header into `memory` (at least kHeaderBytes bytes, zeroed).
void InitializeLayout(void *memory, uint32_t capacity_c2s, uint32_t capacity_s2c);

// Checks a header received from the peer against the memory's real size. Every field is
// checked; false means "do not use this memory". On success `placement` (if given) is where
// things are, from this side's own reading: the peer may change the header afterwards.
bool ValidateLayout(const void *memory, uint64_t mapped_bytes, Placement *placement = nullptr);

// Rounds a requested buffer size up to a valid ring capacity in [kMinRingBytes, kMaxRingBytes].
uint32_t RingCapacityFor(uint64_t requested_bytes);

}  // namespace loopfast

#endif  // LOOPFAST_SOCKET_SHARED_LAYOUT_H_
