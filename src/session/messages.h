// What travels over a listener's channel (an abstract Unix SEQPACKET socket, unix_messages.h):
// one SessionSetup per session, from the connecting process to the listener group, with the
// session's descriptors attached. Nothing ever travels the other way, and nothing per
// connection: connections are claimed in the session's memory (arena_layout.h) and bound to a
// claim by what the kernel vouches for (docs/design.md, "Sessions").
//
//   client (first connection to port P)            listener group of port P
//   ───────────────────────────────────            ────────────────────────
//   memfd arena (sealed, mapped), bells
//   connect(U, "\0loopfast.v2.P"); check that
//   U's owner is the TCP listener's user
//   send(U, SessionSetup + arena, bells)  ───────►  (read when an accept needs it)
//   every connection: claim a slot for the TCP
//   socket (its cookie), TTL marker, connect ─SYN──► listener (MSS marker) answers
//   MSS marker seen: write to the ring at once      accept: TTL marker in the saved SYN,
//                                                   sock_diag: the client socket's user and
//                                                   cookie; the session of that user whose
//                                                   claim names that cookie; bind the slot
//
// Fixed layouts, versioned; every field read from a peer is checked.
#ifndef LOOPFAST_SESSION_MESSAGES_H_
#define LOOPFAST_SESSION_MESSAGES_H_

#include <cstddef>
#include <cstdint>

namespace loopfast::session {

inline constexpr uint32_t kMessageMagic = 0x4c465256;  // "LFRV"
inline constexpr uint16_t kProtocolVersion = 2;        // 2: sessions

// The SYN's IPv4 TTL / IPv6 hop limit that says "this connection's client claimed a slot".
inline constexpr int kClientMarkerTtl = 183;
// The MSS a fast listener advertises in its SYN-ACK; the client reads it back, less the
// 12 bytes of the timestamp option when that is on.
inline constexpr int kListenerMarkerMss = 30011;
inline constexpr int kTimestampOptionBytes = 12;

enum class Kind : uint16_t {
  kSessionSetup = 1,
};

struct MessageHeader {
  uint32_t magic;
  uint16_t version;
  Kind kind;
};
static_assert(sizeof(MessageHeader) == 8);

// Descriptors that come with a SessionSetup, in this order.
enum SetupFd { kSetupArenaFd = 0, kSetupClientBellFd = 1, kSetupGroupBellFd = 2, kSetupFds = 3 };

struct SessionSetup {
  MessageHeader header;
  uint32_t arena_version;  // arena_layout.h's kArenaVersion
  uint32_t reserved;
  uint64_t arena_bytes;
  uint64_t nonce;  // as in the arena's header: the session's name
};
static_assert(sizeof(SessionSetup) == 32);
static_assert(offsetof(SessionSetup, nonce) == 24);

inline MessageHeader MakeHeader(Kind kind) { return {kMessageMagic, kProtocolVersion, kind}; }

// True when `bytes` of `size` start with a header of this version and the given kind, and
// `size` is exactly the message's size.
bool IsMessage(const void *bytes, size_t size, Kind kind, size_t expected_size);

// True when `bytes` of `size` are a SessionSetup this build can use (header, sizes, versions).
bool IsUsableSetup(const void *bytes, size_t size);

}  // namespace loopfast::session

#endif  // LOOPFAST_SESSION_MESSAGES_H_
