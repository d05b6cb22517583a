// Rendezvous messages, exchanged over abstract Unix SEQPACKET sockets that only the two
// endpoints' processes hold. Fixed layout, versioned; every field read from a peer is checked.
//
//   client                                   listener's channel (any process of its group)
//   ──────                                   ──────────────────────────────────────────────
//   connect(U, "\0loopfast.v1.<port>")
//   send(U, Hello{tcp fd number})            (queued in the channel before the SYN exists)
//   TTL/hop-limit marker on, connect(tcp)    listener answers SYN with the MSS marker
//   sees MSS marker → pending                accept(tcp) sees the TTL marker in the saved SYN
//                                            finds the Hello whose sender holds the client end
//                                            of this very connection (/proc + sock_diag)
//   recv(U) → Offer + memfd + 2 doorbells ←  send(U, Offer) → fast
//   attach → fast                            (or Reject → both stay on kernel TCP)
#ifndef LOOPFAST_RENDEZVOUS_PROTOCOL_H_
#define LOOPFAST_RENDEZVOUS_PROTOCOL_H_

#include <cstddef>
#include <cstdint>

namespace loopfast::rendezvous {

inline constexpr uint32_t kMessageMagic = 0x4c465256;  // "LFRV"
inline constexpr uint16_t kProtocolVersion = 1;

// The SYN's IPv4 TTL / IPv6 hop limit that says "this client sent a Hello".
inline constexpr int kClientMarkerTtl = 183;
// The MSS a marked listener advertises in its SYN-ACK; the client reads it back, less the
// 12 bytes of the timestamp option when that is on.
inline constexpr int kListenerMarkerMss = 30011;
inline constexpr int kTimestampOptionBytes = 12;

enum class Kind : uint16_t {
  kHello = 1,
  kOffer = 2,
  kReject = 3,
  kForward = 4,
  kForwardUnread = 5,
};

struct MessageHeader {
  uint32_t magic;
  uint16_t version;
  Kind kind;
};
static_assert(sizeof(MessageHeader) == 8);

struct Hello {
  MessageHeader header;
  int32_t client_fd;     // the client's TCP descriptor number in its own process
  uint32_t rx_capacity;  // ring size the client wants for server→client bytes
};
static_assert(sizeof(Hello) == 16);
static_assert(offsetof(Hello, client_fd) == 8);

// Comes with three descriptors: shared memory, data doorbell, space doorbell.
struct Offer {
  MessageHeader header;
  uint32_t capacity_c2s;
  uint32_t capacity_s2c;
};
static_assert(sizeof(Offer) == 16);

enum class RejectReason : uint32_t {
  kPolicy = 1,
  kUnverified = 2,
  kResources = 3,
};

struct Reject {
  MessageHeader header;
  RejectReason reason;
  uint32_t reserved;
};
static_assert(sizeof(Reject) == 16);

// A Hello handed on to another process of the listener's group (prefork servers, fork after
// listen), with the sender facts the first reader learnt from the kernel. Comes with two
// descriptors: the Hello's channel, and the listener channel itself as proof of membership.
struct Forward {
  MessageHeader header;
  Hello hello;
  int32_t client_pid;
  uint32_t client_uid;
  uint64_t client_inode;  // inode of the socket behind client_fd, read from /proc
};
static_assert(sizeof(Forward) == 40);

// A channel connection whose Hello has not arrived yet, handed on to the group so that it is
// not stranded in a process that goes back to other work; the receiver reads and checks the
// Hello itself. Comes with the same two descriptors as a Forward.
struct ForwardUnread {
  MessageHeader header;
  int64_t accepted_ms;  // CLOCK_MONOTONIC ms when the group accepted it (its grace runs from then)
};
static_assert(sizeof(ForwardUnread) == 16);

inline MessageHeader MakeHeader(Kind kind) { return {kMessageMagic, kProtocolVersion, kind}; }

// True when `bytes` of `size` start with a header of this version and the given kind, and
// `size` is exactly the message's size.
bool IsMessage(const void *bytes, size_t size, Kind kind, size_t expected_size);

}  // namespace loopfast::rendezvous

#endif  // LOOPFAST_RENDEZVOUS_PROTOCOL_H_
